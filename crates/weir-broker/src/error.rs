//! The broker's error type, and the mapping of failures to Kafka error codes.

use kafka_protocol::error::ResponseError;
use weir_log::LogError;

/// Errors that stop the broker from starting or from serving a request.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A broker or topic config is missing, unknown or has a bad value.
    #[error("config `{key}`: {reason}")]
    Config {
        /// The config name, as Kafka spells it.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The metadata catalog could not be read or written.
    #[error("metadata catalog {path}: {reason}")]
    Catalog {
        /// The catalog file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A broken invariant: a bug in Weir.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The Kafka error code for a storage error.
pub fn log_error_code(err: &LogError) -> i16 {
    let e = match err {
        LogError::CorruptMessage { .. } => ResponseError::CorruptMessage,
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::InvalidRecord { .. } => ResponseError::InvalidRecord,
        LogError::InvalidTimestamp { .. }
        | LogError::InvalidRecords {
            timestamp: true, ..
        } => ResponseError::InvalidTimestamp,
        LogError::InvalidRecords { .. } => ResponseError::InvalidRecord,
        LogError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Removed(_) => ResponseError::UnknownTopicOrPartition,
        LogError::Io { .. } => ResponseError::KafkaStorageError,
        LogError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        LogError::Internal(_) => ResponseError::UnknownServerError,
    };
    e.code()
}

/// Shorthand for a Kafka error code.
pub const fn code(e: ResponseError) -> i16 {
    e.code()
}

/// Kafka's "no error" code.
pub const NONE: i16 = 0;

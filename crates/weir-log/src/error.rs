//! The log's error type. Each variant maps to one Kafka error code.

/// Errors from the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch failed its checksum or framing (Kafka `CORRUPT_MESSAGE`).
    #[error("corrupt record batch at byte {position}: {reason}")]
    CorruptMessage {
        /// Byte position of the bad batch within the request's records.
        position: usize,
        /// What was wrong.
        reason: String,
    },
    /// A batch is larger than `max.message.bytes` (`MESSAGE_TOO_LARGE`).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge {
        /// Size of the batch.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// A batch is well framed but not acceptable (`INVALID_RECORD`).
    #[error("invalid record: {reason}")]
    InvalidRecord {
        /// What was wrong.
        reason: String,
    },
    /// A timestamp is outside the allowed window (`INVALID_TIMESTAMP`).
    #[error("timestamp {timestamp} is outside the allowed range")]
    InvalidTimestamp {
        /// The offending timestamp.
        timestamp: i64,
    },
    /// Records of a batch are not acceptable (KIP-467): `INVALID_RECORD`,
    /// or `INVALID_TIMESTAMP` when a timestamp is among the reasons, with
    /// each bad record so that clients fail only those records.
    #[error("{} of the batch's records rejected, the first: {}", records.len(), records.first().map_or("", |r| r.message.as_str()))]
    InvalidRecords {
        /// Whether a timestamp outside the allowed range is among the reasons.
        timestamp: bool,
        /// Each bad record.
        records: Vec<RecordError>,
    },
    /// A magic byte other than 2 (`UNSUPPORTED_FOR_MESSAGE_FORMAT`).
    #[error("unsupported record batch magic {magic}")]
    UnsupportedMagic {
        /// The magic byte seen.
        magic: i8,
    },
    /// A read or DeleteRecords outside the log (`OFFSET_OUT_OF_RANGE`).
    #[error("offset {offset} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// First offset in the log.
        log_start: i64,
        /// Log end offset.
        log_end: i64,
    },
    /// The partition was removed while in use (`UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("partition {0} was removed")]
    Removed(String),
    /// An I/O failure (`KAFKA_STORAGE_ERROR`).
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A producer's batch does not follow its previous one
    /// (`OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// A producer epoch older than the partition has seen
    /// (`INVALID_PRODUCER_EPOCH`).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// A broken invariant: a bug in Weir.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One rejected record of a batch (Kafka's `RecordError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's position within its batch, from 0.
    pub batch_index: i32,
    /// Why it was rejected.
    pub message: String,
}

//! The broker's error type, and the one place where failures become Kafka
//! error codes ([`BrokerError::code`], [`log_error_code`]).
//!
//! Variants are grouped by who is at fault: the client (its request asks
//! for something Kafka refuses, answered with that request's error code),
//! the operator (a config), the environment (storage, the catalog), or
//! Weir itself (`Internal`, a bug).

use kafka_protocol::error::ResponseError;
use weir_log::LogError;

/// Errors of the broker's services and handlers.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    // The client's fault: the request asks for something not acceptable.
    /// A topic name Kafka's `Topic.validate` refuses.
    #[error("{reason}")]
    InvalidTopicName {
        /// The name asked for.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A new topic's name equals an existing one once `.` and `_` are
    /// treated alike (they share metric names in Kafka).
    #[error("Topic '{topic}' collides with existing topic: {existing}")]
    TopicCollision {
        /// The name asked for.
        topic: String,
        /// The topic it collides with.
        existing: String,
    },
    /// CreateTopics for a name in use.
    #[error("Topic '{topic}' already exists.")]
    TopicExists {
        /// The topic.
        topic: String,
    },
    /// The request names a topic that does not exist.
    #[error("Topic '{topic}' does not exist.")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// An internal topic cannot be deleted.
    #[error("internal topic `{topic}` cannot be deleted")]
    InternalTopic {
        /// The topic.
        topic: String,
    },
    /// DeleteTopics while `delete.topic.enable=false`.
    #[error("delete.topic.enable is false")]
    TopicDeletionDisabled,
    /// A partition count that cannot be created.
    #[error("{reason}")]
    InvalidPartitions {
        /// The topic.
        topic: String,
        /// Why the count is refused.
        reason: String,
    },
    /// A manual replica assignment a single node cannot honour.
    #[error("{reason}")]
    InvalidReplicaAssignment {
        /// Why the assignment is refused.
        reason: String,
    },
    /// A replication factor other than 1.
    #[error("{reason}")]
    InvalidReplicationFactor {
        /// Why the factor is refused.
        reason: String,
    },
    /// An unknown config name, or a value its type refuses.
    #[error("{reason}")]
    InvalidConfig {
        /// The config, as Kafka names it.
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// A broker config that exists but cannot change at run time.
    #[error("Cannot update these configs dynamically: {key}")]
    ReadOnlyConfig {
        /// The config.
        key: String,
    },
    /// A request whose fields contradict each other or Kafka's rules.
    #[error("{reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// A record the broker refuses (schema validation, a control batch
    /// from a client).
    #[error("{reason}")]
    InvalidRecord {
        /// Why it is refused.
        reason: String,
    },
    /// Records that do not decode.
    #[error("{reason}")]
    CorruptRecords {
        /// What the decoder said.
        reason: String,
    },
    /// A transactional batch without a transactional id.
    #[error("transactional batch without a transactional id")]
    TransactionalIdMissing,
    /// A transactional write the coordinator did not expect (KIP-890's
    /// verification), with the coordinator's answer.
    #[error("partition {topic}-{partition} is not part of an open transaction of {transactional_id} with this producer epoch")]
    NotInTransaction {
        /// The coordinator's error for this producer.
        code: ResponseError,
        /// The producer's transactional id.
        transactional_id: String,
        /// The topic written to.
        topic: String,
        /// The partition written to.
        partition: i32,
    },
    /// The session may not do this (the error depends on the resource).
    #[error("{message}")]
    Unauthorized {
        /// Kafka's error for the resource type.
        code: ResponseError,
        /// The message Kafka sends with it.
        message: &'static str,
    },
    /// A SASL/SCRAM mechanism code Weir does not know.
    #[error("Unknown SCRAM mechanism")]
    UnsupportedSaslMechanism {
        /// The mechanism code sent.
        mechanism: i8,
    },
    /// A SCRAM credential Kafka refuses.
    #[error("{reason}")]
    UnacceptableCredential {
        /// Why.
        reason: &'static str,
    },
    /// An acknowledgement of a record the member does not hold (any more).
    #[error("{reason}")]
    InvalidRecordState {
        /// Which record, and why.
        reason: String,
    },
    /// A share request for a share session the broker does not have.
    #[error("the share session was not found")]
    ShareSessionNotFound,
    /// A share request whose session epoch is not the next one.
    #[error("the share session epoch is invalid")]
    InvalidShareSessionEpoch,
    /// A new share session while `group.share.max.share.sessions` are open.
    #[error("the limit of share sessions has been reached")]
    ShareSessionLimitReached,
    /// The same resource twice in one request.
    #[error("{reason}")]
    DuplicateResource {
        /// Kafka's message for the case.
        reason: &'static str,
    },
    /// A change to something that does not exist.
    #[error("{reason}")]
    ResourceNotFound {
        /// Kafka's message for the case.
        reason: &'static str,
    },

    // The operator's fault.
    /// A broker or topic config is missing, unknown or has a bad value.
    #[error("config `{key}`: {reason}")]
    Config {
        /// The config name, as Kafka spells it.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    // The environment's fault.
    /// The metadata catalog could not be read or written.
    #[error("metadata catalog {path}: {reason}")]
    Catalog {
        /// The catalog file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Cluster mode: another broker saved the shared catalog between
    /// this change's read and its write (retried from the new catalog;
    /// answered only when retries run out).
    #[error("another broker changed the metadata catalog at the same time; retry")]
    CatalogConflict,
    /// A change written but not yet in effect on this broker within
    /// the time the broker waits for it (cluster mode: the follower of
    /// `__weir_security` has not applied it). It may still take effect.
    #[error("{what} was written but not applied within {waited_ms} ms; it may still take effect")]
    NotAppliedInTime {
        /// What was being changed.
        what: String,
        /// How long the broker waited.
        waited_ms: u64,
    },
    /// The storage engine failed (or refused a batch: [`log_error_code`]
    /// says whose fault each case is).
    #[error(transparent)]
    Log(#[from] LogError),

    // Weir's fault.
    /// A broken invariant: a bug in Weir.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    /// The Kafka error code a response carries for this error.
    pub fn code(&self) -> ResponseError {
        match self {
            Self::InvalidTopicName { .. }
            | Self::TopicCollision { .. }
            | Self::InternalTopic { .. } => ResponseError::InvalidTopicException,
            Self::TopicExists { .. } => ResponseError::TopicAlreadyExists,
            Self::UnknownTopic { .. } => ResponseError::UnknownTopicOrPartition,
            Self::TopicDeletionDisabled => ResponseError::TopicDeletionDisabled,
            Self::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
            Self::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
            Self::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
            Self::InvalidConfig { .. } => ResponseError::InvalidConfig,
            Self::ReadOnlyConfig { .. } | Self::InvalidRequest { .. } => {
                ResponseError::InvalidRequest
            }
            Self::InvalidRecord { .. } => ResponseError::InvalidRecord,
            Self::CorruptRecords { .. } => ResponseError::CorruptMessage,
            Self::TransactionalIdMissing => ResponseError::TransactionalIdNotFound,
            Self::NotInTransaction { code, .. } | Self::Unauthorized { code, .. } => *code,
            Self::NotAppliedInTime { .. } => ResponseError::RequestTimedOut,
            Self::UnsupportedSaslMechanism { .. } => ResponseError::UnsupportedSaslMechanism,
            Self::UnacceptableCredential { .. } => ResponseError::UnacceptableCredential,
            Self::DuplicateResource { .. } => ResponseError::DuplicateResource,
            Self::ResourceNotFound { .. } => ResponseError::ResourceNotFound,
            Self::InvalidRecordState { .. } => ResponseError::InvalidRecordState,
            Self::ShareSessionNotFound => ResponseError::ShareSessionNotFound,
            Self::InvalidShareSessionEpoch => ResponseError::InvalidShareSessionEpoch,
            Self::ShareSessionLimitReached => ResponseError::ShareSessionLimitReached,
            Self::Config { .. } => ResponseError::InvalidConfig,
            Self::Catalog { .. } | Self::CatalogConflict => ResponseError::KafkaStorageError,
            Self::Log(e) => log_error(e),
            Self::Internal(_) => ResponseError::UnknownServerError,
        }
    }

    /// The code and message a response carries for this error.
    pub fn response(&self) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
        (
            self.code().code(),
            Some(kafka_protocol::protocol::StrBytes::from_string(
                self.to_string(),
            )),
        )
    }

    /// An invalid request, with Kafka's message.
    pub fn invalid_request(reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason: reason.into(),
        }
    }
}

/// The Kafka error for a storage error.
fn log_error(err: &LogError) -> ResponseError {
    match err {
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
        LogError::Removed { .. } => ResponseError::UnknownTopicOrPartition,
        LogError::Io { .. } | LogError::Closed | LogError::Failed { .. } => {
            ResponseError::KafkaStorageError
        }
        LogError::CorruptState { .. } | LogError::UnsupportedFormat { .. } => {
            ResponseError::KafkaStorageError
        }
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::Internal { .. } => ResponseError::UnknownServerError,
    }
}

/// The Kafka error code for a storage error.
pub fn log_error_code(err: &LogError) -> i16 {
    log_error(err).code()
}

/// Kafka's "no error" code.
pub const NONE: i16 = 0;

//! The runtime's error type, by who is at fault: the user's request or
//! connector config, the connector's data, the Kafka cluster, or the
//! runtime itself.

/// What went wrong in the Connect runtime.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A worker setting is missing or invalid.
    #[error("worker config `{key}`: {reason}")]
    WorkerConfig { key: String, reason: String },
    /// A connector config failed validation (REST answers 400).
    #[error("{message}")]
    BadConfig { message: String },
    /// The request names a connector, task or plugin that does not exist
    /// (REST answers 404).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The request conflicts with the cluster's state (REST answers 409).
    #[error("{message}")]
    Conflict { message: String },
    /// The request is malformed (REST answers 400).
    #[error("{message}")]
    BadRequest { message: String },
    /// Record data a converter or transform cannot handle.
    #[error("{message}")]
    Data { message: String },
    /// A connector's own failure (its file, its system).
    #[error("{connector}: {message}")]
    Connector { connector: String, message: String },
    /// A connector's transient failure (Kafka's `RetriableException`):
    /// retried for `errors.retry.timeout` before the tolerance decides.
    #[error("{message}")]
    Retriable { message: String },
    /// An operation failed where Kafka Connect answers 500 with the
    /// message alone (a connector refusing an offsets change, a consumer
    /// group that still has members).
    #[error("{message}")]
    Failed { message: String },
    /// The Kafka cluster refused or failed a request.
    #[error("kafka: {message}")]
    Kafka { message: String },
    /// The cluster's ACLs denied the worker's principal. `cause` is the
    /// exception Kafka's clients raise for it (class and message), which a
    /// failed task's trace names as Kafka Connect's does.
    #[error("{message}: {cause}")]
    Authorization { message: String, cause: String },
    /// weir-client failed (group membership, admin requests).
    #[error(transparent)]
    Client(#[from] weir_client::ClientError),
    /// The worker is not ready yet or is rebalancing (REST answers 409, as
    /// Kafka does while a rebalance is in progress).
    #[error("{message}")]
    Unavailable { message: String },
    /// Local I/O (files, sockets).
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl ConnectError {
    /// A data error.
    pub fn data(message: impl Into<String>) -> Self {
        Self::Data {
            message: message.into(),
        }
    }

    /// A bad-config error.
    pub fn bad_config(message: impl Into<String>) -> Self {
        Self::BadConfig {
            message: message.into(),
        }
    }

    /// A bad-request error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
        }
    }

    /// A Kafka error.
    pub fn kafka(message: impl std::fmt::Display) -> Self {
        Self::Kafka {
            message: message.to_string(),
        }
    }

    /// A failure answered with 500 and `message` alone.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
        }
    }

    /// A not-found error about `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// The HTTP status Kafka Connect's REST API gives this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadConfig { .. } | Self::BadRequest { .. } | Self::Data { .. } => 400,
            Self::NotFound { .. } => 404,
            Self::Conflict { .. } | Self::Unavailable { .. } => 409,
            _ => 500,
        }
    }
}

/// Kafka's exception class for an authorization error librdkafka reports.
#[cfg(feature = "runtime")]
pub fn authorization_exception(e: &rdkafka::error::KafkaError) -> Option<&'static str> {
    use rdkafka::types::RDKafkaErrorCode as C;
    Some(match e.rdkafka_error_code()? {
        C::TopicAuthorizationFailed => "org.apache.kafka.common.errors.TopicAuthorizationException",
        C::GroupAuthorizationFailed => "org.apache.kafka.common.errors.GroupAuthorizationException",
        C::ClusterAuthorizationFailed => {
            "org.apache.kafka.common.errors.ClusterAuthorizationException"
        }
        C::TransactionalIdAuthorizationFailed => {
            "org.apache.kafka.common.errors.TransactionalIdAuthorizationException"
        }
        C::SaslAuthenticationFailed => "org.apache.kafka.common.errors.SaslAuthenticationException",
        _ => return None,
    })
}

#[cfg(feature = "runtime")]
impl From<rdkafka::error::KafkaError> for ConnectError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        match authorization_exception(&e) {
            Some(class) => Self::Authorization {
                message: "Unrecoverable exception from the Kafka client".into(),
                cause: format!("{class}: {e}"),
            },
            None => Self::kafka(e),
        }
    }
}

/// The runtime's result type.
pub type Result<T, E = ConnectError> = std::result::Result<T, E>;

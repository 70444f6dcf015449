//! The proxy's error type: each variant is an HTTP status and one of
//! Confluent REST Proxy's error codes, and answers as its error body
//! `{"error_code": N, "message": "..."}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use weir_client::{error_name, ClientError};

/// What went wrong, by who is at fault: the caller (4xx), their
/// credentials (401, 403) or the cluster (5xx).
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// A malformed request or one Kafka refused as invalid (400, with
    /// 400 or 40002 for Kafka's refusals).
    #[error("{message}")]
    BadRequest { code: u32, message: String },
    /// No such cluster, topic, partition, group or consumer instance.
    #[error("{message}")]
    NotFound { code: u32, message: String },
    /// The requested embedded format does not match the consumer's (40601).
    #[error("{message}")]
    NotAcceptable { code: u32, message: String },
    /// The resource's state forbids the request (409, 4090x).
    #[error("{message}")]
    Conflict { code: u32, message: String },
    /// The request body is larger than allowed (413).
    #[error("{message}")]
    TooLarge { message: String },
    /// The body's content type is not one this resource reads (415).
    #[error("HTTP 415 Unsupported Media Type")]
    UnsupportedMediaType,
    /// Well-formed but unusable: a missing or invalid schema, a record
    /// that does not serialize, an invalid consumer config (422, 422xx).
    #[error("{message}")]
    Unprocessable { code: u32, message: String },
    /// Kafka refused the credentials (401, 40101).
    #[error("{message}")]
    Unauthenticated { message: String },
    /// Kafka's ACLs refused the operation (403, 40301).
    #[error("{message}")]
    Forbidden { message: String },
    /// A quota was exceeded (429, 42901).
    #[error("{message}")]
    Throttled { message: String },
    /// Kafka failed the request (500; 50003 when retrying may help,
    /// 50002 otherwise).
    #[error("{message}")]
    Kafka { retriable: bool, message: String },
    /// No broker could be reached (503, 50302).
    #[error("{message}")]
    Unavailable { message: String },
    /// A bug in the proxy (500).
    #[error("{0}")]
    Internal(String),
}

/// Confluent's "This server does not host this topic-partition."
pub const UNKNOWN_TOPIC_OR_PARTITION: u32 = 40403;

impl RestError {
    /// HTTP status and Confluent error code.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            RestError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code),
            RestError::NotFound { code, .. } => (StatusCode::NOT_FOUND, *code),
            RestError::NotAcceptable { code, .. } => (StatusCode::NOT_ACCEPTABLE, *code),
            RestError::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            RestError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, 413),
            RestError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 415),
            RestError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            RestError::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, 40101),
            RestError::Forbidden { .. } => (StatusCode::FORBIDDEN, 40301),
            RestError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, 42901),
            RestError::Kafka { retriable, .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                if *retriable { 50003 } else { 50002 },
            ),
            RestError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, 50302),
            RestError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 500),
        }
    }

    /// The error body, `{"error_code": N, "message": "..."}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error_code": self.status_and_code().1, "message": self.to_string()})
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        RestError::BadRequest {
            code: 400,
            message: message.into(),
        }
    }

    pub fn not_found(code: u32, message: impl Into<String>) -> Self {
        RestError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// Confluent's catch-all for an unknown route.
    pub(crate) fn no_route() -> Self {
        Self::not_found(404, "HTTP 404 Not Found")
    }

    pub(crate) fn unknown_topic_or_partition() -> Self {
        Self::not_found(
            UNKNOWN_TOPIC_OR_PARTITION,
            "This server does not host this topic-partition.",
        )
    }

    /// The error for Kafka error `code` about `what`.
    pub fn from_kafka_code(code: i16, what: &str) -> Self {
        let message = format!("{what}: {}", error_name(code));
        match code {
            3 | 100 => RestError::not_found(UNKNOWN_TOPIC_OR_PARTITION, message),
            29 | 30 | 31 | 53 => RestError::Forbidden { message },
            58 => RestError::Unauthenticated { message },
            10 => RestError::TooLarge { message },
            89 => RestError::Throttled { message },
            // Refusals Confluent maps to 400 with its Kafka bad-request code.
            -1 | 17 | 35 | 36 | 37 | 38 | 39 | 40 | 42 | 44 | 54 | 73 => RestError::BadRequest {
                code: 40002,
                message,
            },
            // Group and coordinator states that go away on their own.
            5 | 6 | 7 | 13 | 14 | 15 | 16 | 19 | 20 | 27 | 72 => RestError::Kafka {
                retriable: true,
                message,
            },
            _ => RestError::Kafka {
                retriable: false,
                message,
            },
        }
    }
}

impl From<ClientError> for RestError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Kafka { code, message, .. } => {
                let mut r = RestError::from_kafka_code(*code, &e.to_string());
                if let (Some(m), RestError::BadRequest { message, .. }) = (message, &mut r) {
                    // Kafka's own message says what was wrong (e.g. a config).
                    if !m.is_empty() {
                        *message = m.clone();
                    }
                }
                r
            }
            ClientError::Invalid(m) => RestError::bad_request(m.clone()),
            ClientError::Authentication { .. } => RestError::Unauthenticated {
                message: format!("Authentication failed: {e}"),
            },
            ClientError::Conflict(m) => RestError::Conflict {
                code: 40903,
                message: m.clone(),
            },
            ClientError::Connect { .. } | ClientError::EmptyBootstrap => RestError::Unavailable {
                message: e.to_string(),
            },
            ClientError::Io { .. } | ClientError::Timeout { .. } => RestError::Kafka {
                retriable: true,
                message: e.to_string(),
            },
            _ => RestError::Kafka {
                retriable: false,
                message: e.to_string(),
            },
        }
    }
}

impl From<KafkaError> for RestError {
    fn from(e: KafkaError) -> Self {
        let message = e.to_string();
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition)
            | Some(RDKafkaErrorCode::UnknownTopic)
            | Some(RDKafkaErrorCode::UnknownPartition) => {
                RestError::not_found(UNKNOWN_TOPIC_OR_PARTITION, message)
            }
            Some(RDKafkaErrorCode::TopicAuthorizationFailed)
            | Some(RDKafkaErrorCode::GroupAuthorizationFailed)
            | Some(RDKafkaErrorCode::ClusterAuthorizationFailed)
            | Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed) => {
                RestError::Forbidden { message }
            }
            Some(RDKafkaErrorCode::Authentication)
            | Some(RDKafkaErrorCode::SaslAuthenticationFailed) => {
                RestError::Unauthenticated { message }
            }
            Some(RDKafkaErrorCode::MessageSizeTooLarge) => RestError::TooLarge { message },
            Some(RDKafkaErrorCode::ThrottlingQuotaExceeded) => RestError::Throttled { message },
            Some(RDKafkaErrorCode::InvalidRecord) | Some(RDKafkaErrorCode::InvalidRequest) => {
                RestError::BadRequest {
                    code: 40002,
                    message,
                }
            }
            Some(
                RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::QueueFull
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::BrokerTransportFailure,
            ) => RestError::Kafka {
                retriable: true,
                message,
            },
            Some(RDKafkaErrorCode::AllBrokersDown) => RestError::Unavailable { message },
            _ => RestError::Kafka {
                retriable: false,
                message,
            },
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(error = %self, "REST request failed");
        }
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body().to_string(),
        )
            .into_response();
        if let RestError::Unauthenticated { .. } = self {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"weir\""),
            );
        }
        resp
    }
}

/// The proxy's result type.
pub type Result<T, E = RestError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_codes_map_to_confluents_statuses() {
        let s = |code| RestError::from_kafka_code(code, "x").status_and_code();
        assert_eq!(s(3), (StatusCode::NOT_FOUND, 40403));
        assert_eq!(s(29), (StatusCode::FORBIDDEN, 40301));
        assert_eq!(s(36), (StatusCode::BAD_REQUEST, 40002));
        assert_eq!(s(89), (StatusCode::TOO_MANY_REQUESTS, 42901));
        assert_eq!(s(7), (StatusCode::INTERNAL_SERVER_ERROR, 50003));
        assert_eq!(s(48), (StatusCode::INTERNAL_SERVER_ERROR, 50002));
    }

    #[test]
    fn bodies_carry_code_and_message() {
        let b = RestError::unknown_topic_or_partition().body();
        assert_eq!(b["error_code"], 40403);
        assert_eq!(
            b["message"],
            "This server does not host this topic-partition."
        );
    }
}

//! The client's error type and Kafka's error names.

use kafka_protocol::ResponseError;

/// What went wrong talking to a cluster, by who is at fault: the caller
/// (bad arguments), the network, or the broker (an error code or a reply
/// that does not decode).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The caller asked for something that cannot be done as asked (an
    /// unknown mechanism, a partition the topic does not have).
    #[error("{0}")]
    Invalid(String),
    /// The cluster's current state forbids the request (resetting the
    /// offsets of a group with active members).
    #[error("{0}")]
    Conflict(String),
    /// The bootstrap list names no address.
    #[error("the bootstrap address list is empty")]
    EmptyBootstrap,
    /// A client setting is missing or invalid.
    #[error("client config `{key}`: {reason}")]
    Config { key: String, reason: String },
    /// The broker refused the SASL login, or the client refused the broker.
    #[error("authentication with {addr} failed: {reason}")]
    Authentication { addr: String, reason: String },
    /// A TCP connection could not be made in time or at all.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The connection failed while a request was in flight.
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// No answer within the client's timeout.
    #[error("{addr} did not answer within {secs}s")]
    Timeout { addr: String, secs: u64 },
    /// The broker does not serve an API this request needs.
    #[error("the broker at {addr} does not support {api}")]
    Unsupported { addr: String, api: String },
    /// Broker and client share no version of an API.
    #[error("no version of {api} that both weir and the broker at {addr} speak")]
    NoCommonVersion { addr: String, api: String },
    /// A request could not be encoded (a value out of the version's range).
    #[error("cannot encode {api} request: {reason}")]
    Encode { api: String, reason: String },
    /// The broker's reply did not decode or did not match the request.
    #[error("bad response from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// A broker named by the caller or by a coordinator lookup is unknown.
    #[error("broker {0} is not in the cluster metadata")]
    UnknownNode(i32),
    /// The broker answered with a Kafka error code.
    #[error("{what}: {}", describe(*.code, .message.as_deref()))]
    Kafka {
        what: String,
        code: i16,
        message: Option<String>,
    },
}

impl ClientError {
    /// The Kafka error code, when the broker gave one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn describe(code: i16, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{}: {m}", error_name(code)),
        None => error_text(code),
    }
}

/// Kafka's name of an error code, or `error code N` for one Kafka does not
/// define.
pub fn error_text(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(_) => error_name(code),
        None => format!("error code {code}"),
    }
}

/// Kafka's upper-case name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`).
pub fn error_name(code: i16) -> String {
    let Some(e) = ResponseError::try_from_code(code) else {
        return format!("UNKNOWN_{code}");
    };
    let camel = format!("{e:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `Ok` for code 0, else [`ClientError::Kafka`] about `what`.
pub fn check(code: i16, what: &str, message: Option<&str>) -> Result<(), ClientError> {
    if code == 0 {
        return Ok(());
    }
    Err(ClientError::Kafka {
        what: what.to_string(),
        code,
        message: message.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_text(3), "UNKNOWN_TOPIC_OR_PARTITION");
    }

    #[test]
    fn kafka_errors_read_like_the_cli_printed_them() {
        let e = check(36, "topic `t`", Some("exists")).unwrap_err();
        assert_eq!(e.to_string(), "topic `t`: TOPIC_ALREADY_EXISTS: exists");
        assert_eq!(e.code(), Some(36));
        let e = check(3, "topic `t`", None).unwrap_err();
        assert_eq!(e.to_string(), "topic `t`: UNKNOWN_TOPIC_OR_PARTITION");
    }
}

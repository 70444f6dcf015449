//! The crate's error type.

/// Why authentication or a security setting failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The client's credentials were refused. The message is safe to send
    /// back to the client: it never says which part was wrong.
    #[error("authentication failed: {reason}")]
    Authentication {
        /// What to tell the client.
        reason: String,
    },
    /// The client broke the mechanism's protocol (a malformed message).
    #[error("malformed SASL message for {mechanism}: {detail}")]
    Malformed {
        /// The mechanism being spoken.
        mechanism: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A security setting (file, key, rule) cannot be used.
    #[error("invalid security configuration {name}: {detail}")]
    Config {
        /// The setting.
        name: String,
        /// Why it cannot be used.
        detail: String,
    },
    /// A setting's value does not parse (the operator's fault); the
    /// caller names the setting, so the message is only what is wrong.
    #[error("{detail}")]
    BadValue {
        /// What is wrong with the value.
        detail: String,
    },
    /// An ACL binding Kafka refuses to store (the client's fault). The
    /// message is Kafka's.
    #[error("{reason}")]
    InvalidAcl {
        /// Kafka's message.
        reason: String,
    },
    /// A bearer token was refused (the client's fault). The reason goes
    /// to logs and the audit trail; clients get a generic answer.
    #[error("{reason}")]
    InvalidToken {
        /// Why the token was refused.
        reason: String,
    },
    /// A bug in Weir.
    #[error("internal error: {0}")]
    Internal(String),
}

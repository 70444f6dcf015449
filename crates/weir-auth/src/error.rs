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
    /// A bug in Weir.
    #[error("internal error: {0}")]
    Internal(String),
}

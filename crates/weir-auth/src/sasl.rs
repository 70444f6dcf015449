//! The server side of a SASL mechanism, as a state machine over the
//! client's messages. The connection code (weir-server) feeds it the bytes
//! of each SaslAuthenticate request and sends back what it returns.

use crate::{AuthError, KafkaPrincipal};

/// One step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes to the client and wait for its next message.
    Challenge(Vec<u8>),
    /// The client is authenticated.
    Done {
        /// Who it is.
        principal: KafkaPrincipal,
        /// Final bytes for the client (SCRAM's server-final-message),
        /// possibly empty.
        message: Vec<u8>,
        /// When the credential expires (epoch ms), for KIP-368: an
        /// OAUTHBEARER token's `exp`. The session lifetime is the earlier
        /// of this and `connections.max.reauth.ms`.
        expires_at_ms: Option<i64>,
    },
}

/// One exchange in progress on one connection.
pub trait SaslServer: Send + std::fmt::Debug {
    /// Takes the client's next message.
    fn step(&mut self, client_message: &[u8]) -> Result<SaslStep, AuthError>;
}

/// A mechanism the broker offers; it starts one [`SaslServer`] per
/// authentication.
pub trait Mechanism: Send + Sync + std::fmt::Debug {
    /// The IANA name (`PLAIN`, `SCRAM-SHA-256`, `OAUTHBEARER`).
    fn name(&self) -> &'static str;
    /// Starts an exchange.
    fn start(&self) -> Box<dyn SaslServer>;
}

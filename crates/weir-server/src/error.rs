//! Why a connection closes, by who is at fault.

use std::time::Duration;

/// Why the server closed a connection. The client at fault: a bad frame
/// or request, or a request its authentication state does not allow.
/// The network: the peer went away. Weir: a response it cannot encode.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A frame announced a negative size.
    #[error("negative frame size {len}")]
    NegativeFrameSize {
        /// The size read.
        len: i32,
    },
    /// A frame is larger than `socket.request.max.bytes`.
    #[error("frame of {len} bytes is larger than socket.request.max.bytes ({max})")]
    FrameTooLarge {
        /// The size announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The client closed the connection in the middle of a frame.
    #[error("frame of {len} bytes truncated")]
    Truncated {
        /// The size announced.
        len: usize,
    },
    /// The client started a frame and did not finish it in time.
    #[error("frame of {len} bytes not completed within {timeout:?}")]
    SlowFrame {
        /// The size announced.
        len: usize,
        /// `connections.max.idle.ms`.
        timeout: Duration,
    },
    /// No request within `connections.max.idle.ms`.
    #[error("idle for {timeout:?}")]
    Idle {
        /// The limit.
        timeout: Duration,
    },
    /// A frame that is not a request Weir serves (the decoder's verdict).
    #[error("bad request (api key {api:?}): {detail}")]
    BadRequest {
        /// The API key, when the header could be read.
        api: Option<i16>,
        /// What the decoder said.
        detail: String,
    },
    /// A request the connection's authentication state does not allow
    /// (before SASL authentication, during re-authentication, after the
    /// session expired).
    #[error("api key {api}: {reason}")]
    NotAuthenticated {
        /// The request's API key.
        api: i16,
        /// Which rule.
        reason: &'static str,
    },
    /// The SASL exchange failed; its answer has been sent.
    #[error("SASL authentication failed")]
    SaslFailed,
    /// The client closed the connection, or the network failed.
    #[error("connection closed by the client")]
    Closed,
    /// A response Weir could not encode: a bug.
    #[error("response to api key {api} could not be encoded: {detail}")]
    Encode {
        /// The API key.
        api: i16,
        /// What the encoder said.
        detail: String,
    },
    /// An acks=0 Produce failed: closing is how its client hears of it.
    #[error("acks=0 produce failed")]
    ProduceFailed,
    /// Test builds only: a Produce was applied and its answer dropped.
    #[cfg(feature = "fault-injection")]
    #[error("fault injection: closing the connection instead of answering a produce")]
    InjectedFault,
}

impl ServerError {
    /// Whether this is worth a warning in the log (the client misbehaved
    /// or Weir did), rather than ordinary connection churn.
    pub fn is_warning(&self) -> bool {
        !matches!(
            self,
            Self::Idle { .. }
                | Self::Closed
                | Self::SaslFailed
                | Self::NotAuthenticated { .. }
                | Self::ProduceFailed
        )
    }
}

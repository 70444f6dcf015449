//! A connection's authentication state: the SASL exchange driven by
//! SaslHandshake and SaslAuthenticate, as Kafka's server authenticator
//! does it, including re-authentication (KIP-368).
//!
//! States: on a SASL listener a connection starts *unauthenticated* (only
//! ApiVersions, SaslHandshake and SaslAuthenticate are allowed; anything
//! else closes it), moves to *authenticating* after a handshake naming an
//! enabled mechanism, and to *authenticated* when the mechanism accepts
//! the client. An authenticated connection may re-authenticate with a new
//! handshake and exchange (same mechanism, same principal); once its
//! session lifetime has passed, its next other request closes it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info};
use weir_auth::sasl::{SaslServer, SaslStep};
use weir_auth::{AuthError, Session};
use weir_broker::security::AuditEvent;
use weir_broker::Broker;

/// Where the exchange is.
#[derive(Debug)]
enum Exchange {
    /// Waiting for a SaslHandshake.
    Idle,
    /// A mechanism was chosen; waiting for SaslAuthenticate (or, after a
    /// v0 handshake, raw tokens).
    Running {
        mechanism: String,
        server: Box<dyn SaslServer>,
        raw: bool,
    },
}

/// One connection's authentication.
#[derive(Debug)]
pub(crate) struct ConnAuth {
    /// Whether the listener requires SASL.
    sasl: bool,
    /// Who the connection acts as.
    pub session: Session,
    exchange: Exchange,
    /// Whether a SASL exchange has succeeded on this connection.
    authenticated: bool,
    /// The mechanism of the last successful exchange.
    mechanism: Option<String>,
    /// When the session ends (KIP-368).
    expires: Option<Instant>,
}

/// What to do with a SASL request.
pub(crate) struct SaslReply {
    /// The response to send.
    pub response: ResponseKind,
    /// Close the connection after sending it.
    pub close: bool,
}

/// What a request may do in the current state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Hand it to the broker.
    Pass,
    /// Close the connection, with the reason for the log.
    Close(&'static str),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Kafka's session lifetime: the earlier of the credential's expiry and
/// `connections.max.reauth.ms` (0 = no limit); 0 means "no expiry".
pub(crate) fn session_lifetime_ms(max_reauth_ms: i64, expires_at_ms: Option<i64>, now: i64) -> i64 {
    let reauth = (max_reauth_ms > 0).then_some(max_reauth_ms);
    let cred = expires_at_ms.map(|e| e.saturating_sub(now).max(0));
    match (reauth, cred) {
        (None, None) => 0,
        (Some(r), None) => r,
        (None, Some(c)) => c,
        (Some(r), Some(c)) => r.min(c),
    }
}

impl ConnAuth {
    pub(crate) fn new(sasl: bool, session: Session) -> Self {
        Self {
            sasl,
            session,
            exchange: Exchange::Idle,
            authenticated: false,
            mechanism: None,
            expires: None,
        }
    }

    /// Whether the next frame is a raw SASL token (after a v0 handshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(self.exchange, Exchange::Running { raw: true, .. })
    }

    /// Whether a request other than ApiVersions and the SASL ones may go
    /// to the broker now.
    pub(crate) fn gate(&self) -> Gate {
        if !self.sasl {
            return Gate::Pass;
        }
        if !self.authenticated {
            return Gate::Close("request before SASL authentication");
        }
        if matches!(self.exchange, Exchange::Running { .. }) {
            return Gate::Close("request during SASL re-authentication");
        }
        if self.expires.is_some_and(|e| Instant::now() >= e) {
            return Gate::Close("SASL session expired without re-authentication");
        }
        Gate::Pass
    }

    fn audit(&self, broker: &Broker, mechanism: &str, outcome: &'static str, detail: String) {
        let mut e = AuditEvent::new("authentication", &self.session, outcome);
        e.operation = mechanism.to_string();
        e.resource = format!("listener:{}", self.session.listener);
        e.detail = detail;
        broker.security().audit(e);
    }

    /// Handles a SaslHandshake request.
    pub(crate) fn handshake(
        &mut self,
        broker: &Broker,
        req: SaslHandshakeRequest,
        version: i16,
    ) -> SaslReply {
        let enabled: Vec<StrBytes> = broker
            .security()
            .sasl_mechanisms()
            .into_iter()
            .map(StrBytes::from_string)
            .collect();
        let reply = |code: Option<ResponseError>, close| SaslReply {
            response: ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(code.map_or(0, |c| c.code()))
                    .with_mechanisms(enabled.clone()),
            ),
            close,
        };
        if !self.sasl {
            // Kafka's answer on a listener without SASL.
            return reply(Some(ResponseError::IllegalSaslState), false);
        }
        if matches!(self.exchange, Exchange::Running { .. }) {
            return reply(Some(ResponseError::IllegalSaslState), true);
        }
        let mechanism = req.mechanism.to_string();
        if self.authenticated && self.mechanism.as_deref() != Some(mechanism.as_str()) {
            self.audit(
                broker,
                &mechanism,
                "failure",
                "re-authentication tried another mechanism".into(),
            );
            return reply(Some(ResponseError::IllegalSaslState), true);
        }
        let Some(server) = broker.security().sasl_start(&mechanism) else {
            self.audit(
                broker,
                &mechanism,
                "failure",
                "mechanism not enabled".into(),
            );
            return reply(Some(ResponseError::UnsupportedSaslMechanism), true);
        };
        self.exchange = Exchange::Running {
            mechanism,
            server,
            raw: version == 0,
        };
        reply(None, false)
    }

    /// Feeds the client's message to the mechanism. Returns the bytes to
    /// send back, the session lifetime on success, or the error.
    fn step(&mut self, broker: &Broker, token: &[u8]) -> StepOutcome {
        let Exchange::Running {
            mechanism, server, ..
        } = &mut self.exchange
        else {
            return StepOutcome::Illegal;
        };
        let mechanism = mechanism.clone();
        match server.step(token) {
            Ok(SaslStep::Challenge(c)) => StepOutcome::Challenge(c),
            Ok(SaslStep::Done {
                principal,
                message,
                expires_at_ms,
            }) => {
                self.exchange = Exchange::Idle;
                if self.authenticated && principal != self.session.principal {
                    let tried = principal.to_string();
                    self.audit(
                        broker,
                        &mechanism,
                        "failure",
                        format!("re-authentication as another principal ({tried})"),
                    );
                    return StepOutcome::Failed(
                        "Cannot change principals during re-authentication".into(),
                    );
                }
                let lifetime = session_lifetime_ms(
                    broker.settings().get_i64("connections.max.reauth.ms"),
                    expires_at_ms,
                    now_ms(),
                );
                let reauth = self.authenticated;
                self.session.principal = principal;
                self.authenticated = true;
                self.mechanism = Some(mechanism.clone());
                self.expires = if lifetime > 0 {
                    Some(
                        Instant::now()
                            + Duration::from_millis(u64::try_from(lifetime).unwrap_or(0)),
                    )
                } else {
                    // A credential already past its expiry ends the session
                    // at once; otherwise there is no limit.
                    expires_at_ms.map(|_| Instant::now())
                };
                info!(
                    principal = %self.session.principal,
                    mechanism,
                    client = %self.session.host(),
                    reauth,
                    session_lifetime_ms = lifetime,
                    "SASL authentication succeeded"
                );
                let detail = if reauth { "re-authentication" } else { "" };
                self.audit(broker, &mechanism, "success", detail.into());
                StepOutcome::Done { message, lifetime }
            }
            Err(e) => {
                self.exchange = Exchange::Idle;
                debug!(error = %e, mechanism, client = %self.session.host(), "SASL authentication failed");
                self.audit(broker, &mechanism, "failure", e.to_string());
                // What the client may see: the mechanism's own refusal
                // text, or a generic one; never internal details.
                let msg = match e {
                    AuthError::Authentication { reason } => reason,
                    AuthError::Malformed { mechanism, .. } => {
                        format!("Authentication failed: invalid {mechanism} message")
                    }
                    _ => "Authentication failed".to_string(),
                };
                let msg = if msg.starts_with("Authentication failed") {
                    msg
                } else {
                    format!("Authentication failed: {msg}")
                };
                StepOutcome::Failed(msg)
            }
        }
    }

    /// Handles a SaslAuthenticate request.
    pub(crate) fn authenticate(
        &mut self,
        broker: &Broker,
        req: SaslAuthenticateRequest,
        version: i16,
    ) -> SaslReply {
        let resp = SaslAuthenticateResponse::default;
        let illegal = |close| SaslReply {
            response: ResponseKind::SaslAuthenticate(
                resp()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate is not expected at this stage",
                    ))),
            ),
            close,
        };
        if !self.sasl {
            return illegal(false);
        }
        if !matches!(self.exchange, Exchange::Running { raw: false, .. }) {
            return illegal(true);
        }
        match self.step(broker, &req.auth_bytes) {
            StepOutcome::Illegal => illegal(true),
            StepOutcome::Challenge(c) => SaslReply {
                response: ResponseKind::SaslAuthenticate(resp().with_auth_bytes(Bytes::from(c))),
                close: false,
            },
            StepOutcome::Done { message, lifetime } => {
                let mut r = resp().with_auth_bytes(Bytes::from(message));
                if version >= 1 {
                    r.session_lifetime_ms = lifetime;
                }
                SaslReply {
                    response: ResponseKind::SaslAuthenticate(r),
                    close: false,
                }
            }
            StepOutcome::Failed(msg) => SaslReply {
                response: ResponseKind::SaslAuthenticate(
                    resp()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_string(msg))),
                ),
                close: true,
            },
        }
    }

    /// Handles a raw token after a v0 handshake: `Ok(bytes)` to send back
    /// (length-prefixed, without Kafka framing), `Err` to close.
    pub(crate) fn raw_token(&mut self, broker: &Broker, token: &[u8]) -> Result<Vec<u8>, ()> {
        match self.step(broker, token) {
            StepOutcome::Challenge(c) => Ok(c),
            StepOutcome::Done { message, .. } => Ok(message),
            StepOutcome::Failed(_) | StepOutcome::Illegal => Err(()),
        }
    }
}

enum StepOutcome {
    Illegal,
    Challenge(Vec<u8>),
    Done { message: Vec<u8>, lifetime: i64 },
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_lifetime_is_the_earlier_of_reauth_and_credential_expiry() {
        assert_eq!(session_lifetime_ms(0, None, 1_000), 0);
        assert_eq!(session_lifetime_ms(5_000, None, 1_000), 5_000);
        assert_eq!(session_lifetime_ms(0, Some(3_000), 1_000), 2_000);
        assert_eq!(session_lifetime_ms(5_000, Some(3_000), 1_000), 2_000);
        assert_eq!(session_lifetime_ms(1_000, Some(30_000), 1_000), 1_000);
        assert_eq!(session_lifetime_ms(0, Some(10), 1_000), 0);
    }
}

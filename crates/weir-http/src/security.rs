//! TLS and authentication for Weir's HTTP listeners (admin and schema
//! registry), shared so every HTTP listener behaves alike.
//!
//! Authentication (`http.authentication`): `basic` checks
//! `Authorization: Basic` against the broker's users
//! ([`Broker::verify_password`]: the PLAIN users, and SCRAM users where
//! the SCRAM store adds them); `bearer` checks `Authorization: Bearer` JWTs
//! like OAUTHBEARER does (same JWKS, issuer, audience and principal
//! claim). Health checks (`/health/live`, `/health/ready`) stay open, so
//! orchestrator probes need no credentials. Failures answer 401 with a
//! `WWW-Authenticate` challenge and are audited.
//!
//! TLS (`http.ssl.enabled`) uses the Kafka listeners' certificate and key
//! and follows their reloads; handshakes run off the accept loop so a slow
//! client delays no one.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tracing::debug;
use weir_auth::oauth::{Jwks, TokenRules};
use weir_auth::{KafkaPrincipal, SecurityProtocol, Session};
use weir_broker::security::AuditEvent;
use weir_broker::Broker;
use weir_server::tls::TlsSource;

/// How HTTP clients must authenticate.
#[derive(Debug, Default)]
pub struct HttpAuth {
    /// Accept `Authorization: Basic`.
    pub basic: bool,
    /// Accept `Authorization: Bearer` tokens checked against this JWKS.
    pub bearer: Option<(Jwks, TokenRules)>,
    /// The broker whose users basic authentication checks; set once open.
    pub broker: OnceLock<Arc<Broker>>,
}

/// Paths that need no credentials.
fn open_path(path: &str) -> bool {
    path.starts_with("/health/")
}

impl HttpAuth {
    /// Whether any method is required.
    pub fn enabled(&self) -> bool {
        self.basic || self.bearer.is_some()
    }

    fn challenge(&self) -> String {
        let mut c = Vec::new();
        if self.basic {
            c.push("Basic realm=\"weir\"");
        }
        if self.bearer.is_some() {
            c.push("Bearer realm=\"weir\"");
        }
        c.join(", ")
    }

    /// The principal behind `headers`, or why not (for the audit log).
    pub fn check(&self, headers: &HeaderMap) -> Result<(KafkaPrincipal, &'static str), String> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or("no credentials")?;
        let (scheme, rest) = value.split_once(' ').ok_or("malformed Authorization")?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") && self.basic {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| "malformed basic credentials")?;
            let text = String::from_utf8(decoded).map_err(|_| "malformed basic credentials")?;
            let (user, password) = text.split_once(':').ok_or("malformed basic credentials")?;
            let broker = self.broker.get().ok_or("broker not open yet")?;
            if broker.verify_password(user, password) {
                return Ok((KafkaPrincipal::user(user), "HTTP-BASIC"));
            }
            return Err("invalid username or password".into());
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some((jwks, rules)) = &self.bearer {
                let t = jwks.validate(rest, rules)?;
                return Ok((KafkaPrincipal::user(t.subject), "HTTP-BEARER"));
            }
        }
        Err("authentication scheme not accepted".into())
    }
}

/// Wraps `router` so every request but the health checks must
/// authenticate. A no-op when `auth` requires nothing.
pub fn protect(router: Router, auth: Arc<HttpAuth>) -> Router {
    if !auth.enabled() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(auth, require_auth))
}

async fn require_auth(State(auth): State<Arc<HttpAuth>>, req: Request, next: Next) -> Response {
    if open_path(req.uri().path()) {
        return next.run(req).await;
    }
    match auth.check(req.headers()) {
        Ok(_) => next.run(req).await,
        Err(why) => {
            if let Some(b) = auth.broker.get() {
                let session = Session {
                    principal: KafkaPrincipal::anonymous(),
                    client_host: None,
                    listener: "HTTP".into(),
                    protocol: SecurityProtocol::Plaintext,
                };
                let mut e = AuditEvent::new("authentication", &session, "failure");
                e.operation = "HTTP".into();
                e.resource = req.uri().path().to_string();
                e.detail = why;
                b.audit(e);
            }
            (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, auth.challenge()),
                    (header::CONTENT_TYPE, "application/json".to_string()),
                ],
                r#"{"error_code":401,"message":"Unauthorized"}"#,
            )
                .into_response()
        }
    }
}

/// A TLS listener for axum: TCP connections are accepted here and their
/// handshakes completed in their own tasks.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` with the certificate of `tls`.
    pub fn new(tcp: TcpListener, tls: Arc<TlsSource>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (socket, peer) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let acceptor = tls.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket))
                        .await
                    {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        _ => debug!(%peer, "HTTP TLS handshake failed"),
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task never stops while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `router` on `tcp`, over TLS when `tls` is given, until
/// `shutdown` resolves.
pub async fn serve_router(
    tcp: TcpListener,
    router: Router,
    tls: Option<Arc<TlsSource>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => {
            axum::serve(TlsListener::new(tcp, tls)?, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(tcp, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_checks_stay_open() {
        assert!(open_path("/health/live"));
        assert!(open_path("/health/ready"));
        assert!(!open_path("/metrics"));
        assert!(!open_path("/subjects"));
    }

    #[test]
    fn missing_or_unknown_credentials_are_refused() {
        let auth = HttpAuth {
            basic: true,
            ..HttpAuth::default()
        };
        let mut h = HeaderMap::new();
        assert!(auth.check(&h).is_err());
        h.insert(header::AUTHORIZATION, "Digest abc".parse().unwrap());
        assert!(auth.check(&h).is_err());
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(auth.check(&h).is_err());
        h.insert(header::AUTHORIZATION, "Bearer a.b.c".parse().unwrap());
        assert!(auth.check(&h).is_err(), "bearer is not enabled");
        assert_eq!(auth.challenge(), "Basic realm=\"weir\"");
    }
}

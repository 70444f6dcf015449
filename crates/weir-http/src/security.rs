//! Authentication for Weir's HTTP services, and TLS on their sockets.
//!
//! `http.authentication`: `basic` checks `Authorization: Basic` with a
//! [`PasswordVerifier`]; `bearer` checks `Authorization: Bearer` JWTs as
//! OAUTHBEARER does (same JWKS, issuer, audience and principal claim).
//! Health checks (`/health/...`) stay open, so orchestrator probes need no
//! credentials. Refusals answer 401 with a `WWW-Authenticate` challenge
//! and go to the [`AuthAudit`] sink, if any.
//!
//! TLS uses a `weir_tls::TlsSource` and follows its reloads; handshakes
//! run in their own tasks so a slow client delays no one.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::Router;
use base64::Engine as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tracing::debug;
use weir_auth::oauth::{Jwks, TokenRules};
use weir_auth::plain::PlainCredentials;
use weir_auth::KafkaPrincipal;
use weir_tls::TlsSource;

use crate::HttpError;

/// A boxed future, for the object-safe traits here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Checks a user name and password (HTTP basic authentication).
pub trait PasswordVerifier: Send + Sync + std::fmt::Debug {
    /// `Ok(true)` when `user` may log in with `password`, `Ok(false)` when
    /// not, `Err` when the check cannot be made now (the request is
    /// refused and the error audited).
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<bool, HttpError>>;
}

/// The users of a PLAIN credentials file (`username=password` lines).
impl PasswordVerifier for PlainCredentials {
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<bool, HttpError>> {
        Box::pin(async move { Ok(PlainCredentials::verify(self, user, password)) })
    }
}

/// A refused HTTP request, for the audit trail.
#[derive(Debug)]
pub struct Refusal<'a> {
    /// The request path.
    pub path: &'a str,
    /// The client, when known.
    pub client: Option<SocketAddr>,
    /// Why (never a secret).
    pub reason: &'a str,
}

/// Where refused HTTP authentications are recorded.
pub trait AuthAudit: Send + Sync + std::fmt::Debug {
    /// Records one refusal.
    fn refused(&self, refusal: &Refusal<'_>);
}

/// How HTTP clients must authenticate (`http.authentication`).
#[derive(Debug, Default)]
pub struct HttpAuth {
    /// Accept `Authorization: Basic`, checked by this verifier.
    pub basic: Option<Arc<dyn PasswordVerifier>>,
    /// Accept `Authorization: Bearer` tokens checked against this JWKS.
    pub bearer: Option<(Jwks, TokenRules)>,
    /// Where refusals are recorded.
    pub audit: Option<Arc<dyn AuthAudit>>,
}

/// Who made a request, for handlers: `Authenticated` is an axum
/// extractor. Without `http.authentication` every request is
/// `User:ANONYMOUS` with no method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The principal (`User:alice`).
    pub principal: KafkaPrincipal,
    /// `HTTP-BASIC` or `HTTP-BEARER`; `None` when nothing was required.
    pub method: Option<&'static str>,
}

impl Default for Authenticated {
    fn default() -> Self {
        Self {
            principal: KafkaPrincipal::anonymous(),
            method: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// Paths that need no credentials.
fn open_path(path: &str) -> bool {
    path.starts_with("/health/")
}

impl HttpAuth {
    /// Whether any method is required.
    pub fn enabled(&self) -> bool {
        self.basic.is_some() || self.bearer.is_some()
    }

    fn challenge(&self) -> String {
        let mut c = Vec::new();
        if self.basic.is_some() {
            c.push("Basic realm=\"weir\"");
        }
        if self.bearer.is_some() {
            c.push("Bearer realm=\"weir\"");
        }
        c.join(", ")
    }

    /// Who is behind `headers`, or why not (for the audit trail).
    pub async fn check(&self, headers: &HeaderMap) -> Result<Authenticated, HttpError> {
        let malformed = |what| HttpError::MalformedCredentials { what };
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(HttpError::NoCredentials)?
            .to_str()
            .map_err(|_| malformed("Authorization"))?;
        let (scheme, rest) = value
            .split_once(' ')
            .ok_or_else(|| malformed("Authorization"))?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            if let Some(verifier) = &self.basic {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .map_err(|_| malformed("basic credentials"))?;
                let text =
                    String::from_utf8(decoded).map_err(|_| malformed("basic credentials"))?;
                let (user, password) = text
                    .split_once(':')
                    .ok_or_else(|| malformed("basic credentials"))?;
                if verifier.verify(user, password).await? {
                    return Ok(Authenticated {
                        principal: KafkaPrincipal::user(user),
                        method: Some("HTTP-BASIC"),
                    });
                }
                return Err(HttpError::BadPassword);
            }
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some((jwks, rules)) = &self.bearer {
                let t = jwks
                    .validate(rest, rules)
                    .map_err(|e| HttpError::InvalidToken {
                        reason: e.to_string(),
                    })?;
                return Ok(Authenticated {
                    principal: KafkaPrincipal::user(t.subject),
                    method: Some("HTTP-BEARER"),
                });
            }
        }
        Err(HttpError::SchemeNotAccepted)
    }
}

/// Wraps `router` so every request but the health checks must
/// authenticate. A no-op when `auth` requires nothing.
pub(crate) fn protect(router: Router, auth: Arc<HttpAuth>) -> Router {
    if !auth.enabled() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(auth, require_auth))
}

async fn require_auth(State(auth): State<Arc<HttpAuth>>, mut req: Request, next: Next) -> Response {
    if open_path(req.uri().path()) {
        return next.run(req).await;
    }
    match auth.check(req.headers()).await {
        Ok(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Err(refused) => {
            if let Some(audit) = &auth.audit {
                let client = req
                    .extensions()
                    .get::<ConnectInfo<ClientAddr>>()
                    .map(|c| c.0 .0);
                audit.refused(&Refusal {
                    path: req.uri().path(),
                    client,
                    reason: &refused.to_string(),
                });
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

/// The client's address, for plain and TLS listeners alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, PlainListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A plain TCP listener whose connections send without Nagle's algorithm.
#[derive(Debug)]
pub(crate) struct PlainListener(pub TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((mut socket, peer)) => {
                    no_delay(&mut socket);
                    return (socket, peer);
                }
                // Out of file descriptors and the like: back off, as the
                // TLS listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Turns Nagle's algorithm off: a response written in more than one piece
/// (a chunked body's last chunk, streamed rows) would otherwise wait for
/// the client's delayed ACK, some 40 ms on Linux.
fn no_delay(s: &mut TcpStream) {
    if let Err(e) = s.set_nodelay(true) {
        debug!(error = %e, "setting TCP_NODELAY on an HTTP connection failed");
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A TLS listener for axum: TCP connections are accepted here and their
/// handshakes completed in their own tasks.
#[derive(Debug)]
pub(crate) struct TlsListener {
    local: std::io::Result<SocketAddr>,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` with the certificate of `tls`; the accept task
    /// ends when the listener is dropped.
    pub(crate) fn new(tcp: TcpListener, tls: Arc<TlsSource>) -> Self {
        let local = tcp.local_addr();
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = tx.closed() => break,
                    a = tcp.accept() => a,
                };
                let (mut socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of file descriptors and the like: back off.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                no_delay(&mut socket);
                let tls = tls.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tls.accept(socket).await {
                        Ok(s) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Err(e) => debug!(%peer, error = %e, "HTTP TLS handshake failed"),
                    }
                });
            }
        });
        Self { local, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task stops only once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct OneUser;

    impl PasswordVerifier for OneUser {
        fn verify<'a>(
            &'a self,
            user: &'a str,
            password: &'a str,
        ) -> BoxFuture<'a, Result<bool, HttpError>> {
            Box::pin(async move { Ok(user == "alice" && password == "pw") })
        }
    }

    fn basic(user_password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(user_password);
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        h
    }

    #[test]
    fn health_checks_stay_open() {
        assert!(open_path("/health/live"));
        assert!(open_path("/health/ready"));
        assert!(!open_path("/metrics"));
        assert!(!open_path("/subjects"));
    }

    #[tokio::test]
    async fn missing_or_unknown_credentials_are_refused() {
        let auth = HttpAuth {
            basic: Some(Arc::new(OneUser)),
            ..HttpAuth::default()
        };
        let mut h = HeaderMap::new();
        assert!(matches!(
            auth.check(&h).await,
            Err(HttpError::NoCredentials)
        ));
        h.insert(header::AUTHORIZATION, "Digest abc".parse().unwrap());
        assert!(matches!(
            auth.check(&h).await,
            Err(HttpError::SchemeNotAccepted)
        ));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(matches!(
            auth.check(&h).await,
            Err(HttpError::MalformedCredentials { .. })
        ));
        h.insert(header::AUTHORIZATION, "Bearer a.b.c".parse().unwrap());
        assert!(
            matches!(auth.check(&h).await, Err(HttpError::SchemeNotAccepted)),
            "bearer is not enabled"
        );
        assert_eq!(auth.challenge(), "Basic realm=\"weir\"");
    }

    #[tokio::test]
    async fn the_verifier_decides_basic_logins() {
        let auth = HttpAuth {
            basic: Some(Arc::new(OneUser)),
            ..HttpAuth::default()
        };
        let who = auth.check(&basic("alice:pw")).await.unwrap();
        assert_eq!(who.principal, KafkaPrincipal::user("alice"));
        assert_eq!(who.method, Some("HTTP-BASIC"));
        assert!(matches!(
            auth.check(&basic("alice:wrong")).await,
            Err(HttpError::BadPassword)
        ));
        assert!(matches!(
            auth.check(&basic("bob:pw")).await,
            Err(HttpError::BadPassword)
        ));
    }

    #[tokio::test]
    async fn a_plain_credentials_file_verifies_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        std::fs::write(&path, "alice=secret\n").unwrap();
        let users = PlainCredentials::open(&path).unwrap();
        assert!(matches!(
            PasswordVerifier::verify(&users, "alice", "secret").await,
            Ok(true)
        ));
        assert!(matches!(
            PasswordVerifier::verify(&users, "alice", "nope").await,
            Ok(false)
        ));
    }
}

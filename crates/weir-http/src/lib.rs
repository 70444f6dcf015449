//! `weir-http` owns HTTP for every Weir service, with no broker inside:
//!
//! - [`serve`]: the one entry point a service calls to serve an axum
//!   `Router` with the node's HTTP security ([`HttpSecurity`]: TLS from
//!   `weir-tls` when `http.ssl.enabled`, and `http.authentication` basic
//!   and/or bearer). Handlers read who called through [`Authenticated`].
//! - [`security`]: the authentication itself; basic credentials are
//!   checked by a [`PasswordVerifier`] the caller supplies (the embedded
//!   node passes the broker's PLAIN/SCRAM users, a standalone service a
//!   PLAIN credentials file or anything else).
//! - [`metrics`]: the [`MetricsRegistry`] every service adds its
//!   Prometheus text renderers to, and the text format helpers.
//! - [`admin`]: the admin routes (`/metrics`, `/health/live`,
//!   `/health/ready`).

pub mod admin;
pub mod metrics;
pub mod security;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use weir_tls::TlsSource;

pub use metrics::MetricsRegistry;
pub use security::{Authenticated, HttpAuth, PasswordVerifier};

/// What went wrong, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The operator's HTTP settings cannot be used.
    #[error("config `{key}`: {detail}")]
    Config {
        /// The setting.
        key: &'static str,
        /// Why.
        detail: String,
    },
    /// A socket could not be used (bind, local address, serve).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The client sent no `Authorization` header.
    #[error("no credentials")]
    NoCredentials,
    /// The client's `Authorization` header cannot be read.
    #[error("malformed {what}")]
    MalformedCredentials {
        /// `Authorization` or `basic credentials`.
        what: &'static str,
    },
    /// The client's scheme is not one `http.authentication` accepts.
    #[error("authentication scheme not accepted")]
    SchemeNotAccepted,
    /// The client's user name or password is wrong.
    #[error("invalid username or password")]
    BadPassword,
    /// The client's bearer token is refused.
    #[error("{reason}")]
    InvalidToken {
        /// Why (expired, wrong issuer, bad signature, ...).
        reason: String,
    },
    /// The node cannot check credentials yet (the broker holding the
    /// users is not open): not the client's fault.
    #[error("{what}")]
    Unavailable {
        /// What is missing.
        what: &'static str,
    },
}

/// The HTTP security of a node, shared by all of its HTTP services.
#[derive(Debug, Clone, Default)]
pub struct HttpSecurity {
    /// TLS (`http.ssl.enabled`), with the Kafka listeners' certificate.
    pub tls: Option<Arc<TlsSource>>,
    /// Authentication (`http.authentication`).
    pub auth: Arc<HttpAuth>,
}

impl HttpSecurity {
    /// `https` or `http`, for logs and URLs.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Serves `router` on `listener` with `security` until `shutdown`
/// resolves, then finishes the requests in flight and returns.
///
/// Every request but the health checks must authenticate when
/// `security.auth` asks for it; handlers see the principal as
/// [`Authenticated`]. TLS handshakes run off the accept loop, so a slow
/// client delays no one.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    security: &HttpSecurity,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let local = local_addr(&listener)?;
    let app = security::protect(router, security.auth.clone())
        .into_make_service_with_connect_info::<security::ClientAddr>();
    let served = match &security.tls {
        Some(tls) => {
            axum::serve(security::TlsListener::new(listener, tls.clone()), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(security::PlainListener(listener), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    served.map_err(|source| HttpError::Io {
        what: format!("serving HTTP on {local}"),
        source,
    })
}

/// A listener's bound address, as an [`HttpError`] when it has none.
pub fn local_addr(listener: &TcpListener) -> Result<SocketAddr, HttpError> {
    listener.local_addr().map_err(|source| HttpError::Io {
        what: "reading a listener's address".into(),
        source,
    })
}

//! `weir-service` owns the service lifecycle: the contract every part of
//! a Weir node implements (the Kafka listeners, the admin listener, the
//! log, the schema registry, and the platform services: Connect, SQL,
//! REST proxy) and the [`Node`] that composes them.
//!
//! A [`Service`] is started once with a [`Context`] and returns, once it
//! serves, a [`Running`] future that finishes when the service has
//! drained after its [`Shutdown`] fires. The [`Node`] starts services in
//! the order they were added and stops them in the reverse order, so
//! whatever a service uses (the log, the Kafka listener its clients talk
//! to) outlives it:
//!
//! - a failure to start stops the services already started, newest
//!   first, and `run` returns the error;
//! - a signal (SIGTERM, SIGINT) or a service that ends by itself stops
//!   every service, newest first, each drained before the next is told.
//!
//! The context gives a service what the node provides: its shutdown
//! signal, the Kafka client settings to reach the node's own Kafka
//! listener ([`Context::kafka_client`]), the node's HTTP security for
//! `weir_http::serve`, and the metrics registry behind `/metrics`.

mod context;
mod kafka;
mod node;

use std::future::Future;
use std::pin::Pin;

pub use context::{Context, Shutdown};
pub use kafka::{KafkaAccess, KafkaClientConfig, KafkaEndpoint};
pub use node::Node;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error a service's own code reports (its crate's error type).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The operator's configuration cannot be used.
    #[error("config `{key}`: {detail}")]
    Config {
        /// The setting, as the operator spells it.
        key: String,
        /// Why it cannot be used.
        detail: String,
    },
    /// An address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {address} ({what}): {source}")]
    Bind {
        /// What was to listen there (`admin`, `schema registry`).
        what: String,
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A service could not start (its storage, a dependency).
    #[error("{service}: {source}")]
    Start {
        /// The service.
        service: String,
        /// Its own error.
        source: BoxError,
    },
    /// A running service failed, or stopped without being asked to.
    #[error("{service} failed: {source}")]
    Failed {
        /// The service.
        service: String,
        /// What it reported.
        source: BoxError,
    },
}

impl ServiceError {
    /// A start failure of `service`.
    pub fn start(service: &str, source: impl Into<BoxError>) -> Self {
        Self::Start {
            service: service.to_string(),
            source: source.into(),
        }
    }

    /// A run-time failure of `service`.
    pub fn failed(service: &str, source: impl Into<BoxError>) -> Self {
        Self::Failed {
            service: service.to_string(),
            source: source.into(),
        }
    }
}

/// A part of a node that is started once and runs until shut down.
///
/// `start` does what must happen before the service counts as serving
/// (open its state, spawn its tasks) and returns a [`Running`] whose
/// future finishes once the service has stopped accepting work and
/// drained after [`Context::shutdown`] fired. Sockets are bound before
/// the service is built (see [`bind`]), so a busy port fails before the
/// node opens its log.
pub trait Service: Send + 'static {
    /// The name in logs, errors and client settings (`connect`).
    fn name(&self) -> &str;

    /// Starts the service; resolves once it serves.
    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<Running, ServiceError>>;
}

/// A started service: the future that finishes when it has drained.
pub struct Running {
    done: BoxFuture<'static, Result<(), ServiceError>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// A service that runs `done` (typically: serve until the shutdown
    /// signal, then drain).
    pub fn new(done: impl Future<Output = Result<(), ServiceError>> + Send + 'static) -> Self {
        Self {
            done: Box::pin(done),
        }
    }

    /// A service with nothing to run: it waits for `shutdown`, then runs
    /// `stop` (closing what `start` opened).
    pub fn until(
        shutdown: Shutdown,
        stop: impl FnOnce() -> Result<(), ServiceError> + Send + 'static,
    ) -> Self {
        Self::new(async move {
            shutdown.wait().await;
            stop()
        })
    }
}

/// A service from a name and a start function, for services the binary
/// composes inline.
pub fn service_fn<F, Fut>(name: impl Into<String>, start: F) -> impl Service
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Running, ServiceError>> + Send + 'static,
{
    FnService {
        name: name.into(),
        start,
    }
}

struct FnService<F> {
    name: String,
    start: F,
}

impl<F, Fut> Service for FnService<F>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Running, ServiceError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<Running, ServiceError>> {
        Box::pin((self.start)(ctx))
    }
}

/// Binds `address` for `what` (`admin`, `connect`), with an error that
/// names both.
pub async fn bind(address: &str, what: &str) -> Result<tokio::net::TcpListener, ServiceError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServiceError::Bind {
            what: what.to_string(),
            address: address.to_string(),
            source,
        })
}

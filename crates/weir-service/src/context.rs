//! What a service is started with.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;
use weir_http::{HttpSecurity, MetricsRegistry};

use crate::kafka::{KafkaAccess, KafkaClientConfig};
use crate::ServiceError;

/// Fires when the node tells a service to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the sender that fires it.
    pub(crate) fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether the service has been told to stop.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the service is told to stop (at once if it was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            // A dropped sender means the node is gone: stop as well.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// What the node shares with every service.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) http: HttpSecurity,
    pub(crate) metrics: MetricsRegistry,
    pub(crate) kafka: Option<KafkaAccess>,
    pub(crate) ready: watch::Receiver<bool>,
}

/// A service's view of the node.
#[derive(Debug, Clone)]
pub struct Context {
    name: String,
    shutdown: Shutdown,
    shared: Arc<Shared>,
}

impl Context {
    pub(crate) fn new(name: String, shutdown: Shutdown, shared: Arc<Shared>) -> Self {
        Self {
            name,
            shutdown,
            shared,
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This service's stop signal: serve until it fires, then drain.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The Kafka client settings for this service: `bootstrap.servers`
    /// of the node's own Kafka listener, and the security settings the
    /// operator configured for the service (required when no listener
    /// accepts clients without authentication).
    pub fn kafka_client(&self) -> Result<KafkaClientConfig, ServiceError> {
        match &self.shared.kafka {
            Some(k) => k.for_service(&self.name),
            None => Err(ServiceError::Config {
                key: "bootstrap.servers".into(),
                detail: format!("{}: no Kafka cluster to connect to", self.name),
            }),
        }
    }

    /// The node's HTTP security, for `weir_http::serve`.
    pub fn http(&self) -> &HttpSecurity {
        &self.shared.http
    }

    /// Serves `router` on `listener` with the node's HTTP security until
    /// this service's shutdown, then finishes the requests in flight.
    /// Logs the address it serves.
    pub fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        router: axum::Router,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send + 'static {
        let name = self.name.clone();
        let http = self.shared.http.clone();
        let shutdown = self.shutdown.wait();
        async move {
            if let Ok(addr) = listener.local_addr() {
                info!(service = %name, "serving {}://{addr}", http.scheme());
            }
            weir_http::serve(listener, router, &http, shutdown)
                .await
                .map_err(|e| ServiceError::failed(&name, e))
        }
    }

    /// The registry behind the admin listener's `/metrics`.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.shared.metrics
    }

    /// Whether the node serves: true once every service has started,
    /// false again once shutdown begins (`/health/ready`).
    pub fn node_ready(&self) -> watch::Receiver<bool> {
        self.shared.ready.clone()
    }
}

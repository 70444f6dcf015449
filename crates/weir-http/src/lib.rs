//! `weir-http` owns the admin HTTP listener of `weir serve`: Prometheus
//! metrics on `/metrics` and health checks on `/health/live` and
//! `/health/ready`.
//!
//! It only reads: the broker and server count into
//! [`weir_broker::metrics::Metrics`] and the log engine into its
//! [`weir_log::EngineStats`]; this crate renders them, plus per-partition
//! log sizes, consumer group lag and process RSS and CPU, in the
//! Prometheus text exposition format (version 0.0.4) on each scrape.
//!
//! [`security`] gives every Weir HTTP listener (this one and the schema
//! registry's) optional TLS and basic or bearer authentication.

mod render;
pub mod security;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use weir_broker::Broker;

pub use render::render_metrics;

/// What the admin endpoints look at. The listener starts before the broker
/// is open (so liveness answers during a long log recovery); the broker is
/// attached once open and readiness is set once the Kafka listener serves.
#[derive(Debug, Default)]
pub struct AdminState {
    broker: OnceLock<Arc<Broker>>,
    ready: AtomicBool,
}

impl AdminState {
    /// Attaches the open broker.
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    /// Marks the broker as serving (or not, when shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Open, listening and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.broker.get().is_some_and(|b| !b.is_stopping())
    }
}

/// The admin routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(state)
}

/// Serves the admin endpoints on `listener`, with `auth` and optional
/// TLS, until `shutdown` resolves.
pub async fn serve_secure(
    listener: TcpListener,
    state: Arc<AdminState>,
    auth: Arc<security::HttpAuth>,
    tls: Option<Arc<weir_server::TlsSource>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    security::serve_router(
        listener,
        security::protect(router(state), auth),
        tls,
        shutdown,
    )
    .await
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let body = render_metrics(state.broker.get().map(Arc::as_ref));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if state.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

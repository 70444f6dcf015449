//! The admin routes: `/metrics` renders the node's [`MetricsRegistry`];
//! `/health/live` answers 200 while the process runs (also while the log
//! recovers); `/health/ready` answers 200 while `ready` holds (the node
//! has started every service and is not shutting down), 503 otherwise.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::MetricsRegistry;

#[derive(Debug)]
struct Admin {
    metrics: MetricsRegistry,
    ready: watch::Receiver<bool>,
}

/// The admin routes over `metrics`, ready while `ready` is true.
pub fn router(metrics: MetricsRegistry, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/health/live", get(live))
        .route("/health/ready", get(is_ready))
        .with_state(Arc::new(Admin { metrics, ready }))
}

async fn render(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.metrics.render(),
    )
}

async fn live() -> &'static str {
    "ok\n"
}

async fn is_ready(State(admin): State<Arc<Admin>>) -> (StatusCode, &'static str) {
    if *admin.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

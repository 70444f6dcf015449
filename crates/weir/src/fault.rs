//! Fault injection for the integration tests, compiled only with the
//! `fault-injection` feature (never in release builds), configured by
//! environment variables:
//!
//! - `WEIR_FAULT_CLOSE_AFTER_PRODUCE_EVERY=N`: every Nth Produce is
//!   applied and its connection closed instead of answered (a lost
//!   response, for the idempotence tests);
//! - `WEIR_FAULT_FAIL_START=SERVICE`: that service fails to start, after
//!   the ones before it have (for the lifecycle tests).

use tracing::warn;
use weir_service::{BoxFuture, Context, Running, Service, ServiceError};

/// The Kafka listeners' faults.
pub fn server_faults() -> weir_server::Faults {
    let every = std::env::var("WEIR_FAULT_CLOSE_AFTER_PRODUCE_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if every > 0 {
        warn!(
            every,
            "fault injection on: closing connections after produce requests"
        );
    }
    weir_server::Faults {
        close_after_produce_every: every,
    }
}

/// A service whose start fails when `WEIR_FAULT_FAIL_START` names it.
pub struct FailStart<S>(pub S);

impl<S: Service> Service for FailStart<S> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<Running, ServiceError>> {
        let name = self.0.name().to_string();
        if std::env::var("WEIR_FAULT_FAIL_START").is_ok_and(|v| v == name) {
            warn!(service = %name, "fault injection: failing the start");
            return Box::pin(
                async move { Err(ServiceError::start(&name, "injected start failure")) },
            );
        }
        Box::new(self.0).start(ctx)
    }
}

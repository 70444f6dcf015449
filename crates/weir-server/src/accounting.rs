//! Per-request accounting: the request metrics (count, latency, error
//! codes) and the sampled request log, recorded once the response is
//! ready.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseKind};
use tracing::info;
use weir_broker::Broker;

/// Requests seen, for request-log sampling.
static REQUESTS_SEEN: AtomicU64 = AtomicU64::new(0);

/// One request being served.
pub(crate) struct Accounting {
    broker: Arc<Broker>,
    api: i16,
    started: Instant,
    client: Option<String>,
    peer: SocketAddr,
    sample: u64,
}

impl Accounting {
    /// Starts the clock on a request read from `peer`.
    pub(crate) fn start(
        broker: &Arc<Broker>,
        header: &RequestHeader,
        peer: SocketAddr,
        sample: u64,
    ) -> Self {
        Self {
            broker: broker.clone(),
            api: header.request_api_key,
            started: Instant::now(),
            client: header.client_id.as_ref().map(|c| c.to_string()),
            peer,
            sample,
        }
    }

    /// Records the request's metrics and, if sampled, logs it.
    pub(crate) fn finish(self, resp: Option<&ResponseKind>) {
        let elapsed = self.started.elapsed();
        let code = self
            .broker
            .metrics()
            .record_request(self.api, elapsed, resp);
        if self.sample > 0 && REQUESTS_SEEN.fetch_add(1, Ordering::Relaxed) % self.sample == 0 {
            let api = ApiKey::try_from(self.api)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|()| self.api.to_string());
            info!(
                target: "weir::request",
                api,
                client_id = self.client.as_deref().unwrap_or(""),
                client = %self.peer,
                latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                error_code = code,
                "request"
            );
        }
    }
}

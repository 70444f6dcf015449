//! This node's identity, clock and shutdown state: what a handler asks of
//! "the broker itself" (its id, advertised address, data directory, the
//! time, whether it is stopping), as a service of its own so that no
//! handler depends on the `Broker`.

use std::path::PathBuf;

use tokio::sync::watch;
use weir_log::Clock;

/// This node: who it is, where it is reached, its clock and whether it is
/// shutting down.
#[derive(Debug)]
pub struct Node {
    /// `node.id`.
    pub id: i32,
    /// The host clients are told to connect to (the default listener).
    pub host: String,
    /// The port clients are told to connect to.
    pub port: i32,
    /// Where data and metadata live.
    pub data_dir: PathBuf,
    /// Wall-clock time for the coordinators, quotas and record timestamps.
    pub clock: Clock,
    /// Set when shutdown begins: parked requests answer at once.
    stopping: watch::Sender<bool>,
}

impl Node {
    /// A node that is not stopping.
    pub fn new(id: i32, host: String, port: i32, data_dir: PathBuf, clock: Clock) -> Self {
        Self {
            id,
            host,
            port,
            data_dir,
            clock,
            stopping: watch::channel(false).0,
        }
    }

    /// The clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The default advertised host and port.
    pub fn advertised(&self) -> (&str, i32) {
        (&self.host, self.port)
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Marks the start of shutdown (idempotent).
    pub(crate) fn begin_stopping(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub(crate) fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

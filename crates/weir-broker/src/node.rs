//! This node's identity, clock and shutdown state: what a handler asks of
//! "the broker itself" (its id, advertised address, data directory, the
//! time, whether it is stopping), as a service of its own so that no
//! handler depends on the `Broker`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;
use weir_log::{BrokerAddr, Clock, SharedCatalog};

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
    /// Cluster mode: the membership this node is one of.
    cluster: OnceLock<Arc<dyn SharedCatalog>>,
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
            cluster: OnceLock::new(),
        }
    }

    /// Makes this node one broker of a cluster (set once, at open).
    pub(crate) fn join_cluster(&self, cluster: Arc<dyn SharedCatalog>) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster this node is a broker of, if any.
    pub(crate) fn cluster(&self) -> Option<&Arc<dyn SharedCatalog>> {
        self.cluster.get()
    }

    /// Whether this node is one broker of a cluster.
    pub fn in_cluster(&self) -> bool {
        self.cluster.get().is_some()
    }

    /// The brokers clients may use, by node id: the live brokers of the
    /// cluster (this one always among them), or this node alone.
    pub fn brokers(&self) -> Vec<BrokerAddr> {
        let me = BrokerAddr {
            node_id: self.id,
            host: self.host.clone(),
            port: self.port,
        };
        let Some(cluster) = self.cluster.get() else {
            return vec![me];
        };
        let mut all = cluster.brokers();
        if !all.iter().any(|b| b.node_id == self.id) {
            all.push(me);
            all.sort_by_key(|b| b.node_id);
        }
        all
    }

    /// The broker Metadata names as leader of a partition: partitions are
    /// spread over `brokers` (any broker serves any partition in cluster
    /// mode; leadership only spreads the clients' load, and a broker's
    /// loss moves it).
    pub fn leader_of(brokers: &[BrokerAddr], topic: &str, partition: i32) -> i32 {
        weir_log::spread(brokers, topic, partition)
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
    /// Watches shutdown: true once it has begun.
    pub(crate) fn stopping_watch(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub(crate) fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

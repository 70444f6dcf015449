//! What an engine that several brokers share offers besides partitions:
//! one broker catalog for all of them, and who the live brokers are.
//! The local engine has neither; cluster mode's engine keeps both in
//! PostgreSQL.

use tokio::sync::watch;

use crate::error::LogError;

/// A live broker as clients should reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// The broker's `node.id`.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// The broker catalog, stored once for every broker of a cluster.
pub trait SharedCatalog: Send + Sync + std::fmt::Debug {
    /// The stored catalog and its version, or `None` before the first save.
    fn load(&self) -> Result<Option<(i64, Vec<u8>)>, LogError>;

    /// Stores `body` if the stored version is still `expected` (0 when
    /// nothing is stored yet) and answers the new version; `None` if
    /// another broker saved first (the caller reloads and tries again).
    fn save(&self, expected: i64, body: &[u8]) -> Result<Option<i64>, LogError>;

    /// The newest version any broker saved, as notifications report it.
    fn watch(&self) -> watch::Receiver<i64>;

    /// The live brokers (heartbeating), ordered by node id.
    fn brokers(&self) -> Vec<BrokerAddr>;
}

//! What an engine that several brokers share offers besides partitions:
//! one broker catalog for all of them, and who the live brokers are.
//! The local engine has neither; cluster mode's engine keeps both in
//! PostgreSQL.

use std::collections::BTreeMap;

use tokio::sync::watch;

use crate::api::BoxFuture;
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

/// Names the leases of a topic's share-partitions: the lease of partition
/// `p` under `share_lease(topic)` makes its holder the owner of every share
/// group's in-flight state of `topic`-`p` (KIP-932's share-partitions).
/// `:` cannot appear in a topic name, so no real partition is named so.
pub fn share_lease(topic: &str) -> String {
    format!("{SHARE_LEASE_PREFIX}{topic}")
}

/// The prefix of [`share_lease`] names.
pub const SHARE_LEASE_PREFIX: &str = "weir:share:";

/// A lease a write is made under: the write goes in only while the lease
/// of (`topic`, `partition`) is still at `epoch` and held by the writer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lease {
    /// The leased name (a coordinator topic or a [`share_lease`] name).
    pub topic: String,
    /// The leased partition.
    pub partition: i32,
    /// The epoch the writer holds it at.
    pub epoch: i64,
}

/// The broker a partition falls to among `brokers` (sorted by node id):
/// partition leadership in Metadata and coordinator leases spread the
/// same way, so every broker computes the same answer; -1 if none. A
/// share lease spreads as its topic's partition does, so a
/// share-partition's owner is the leader Metadata names.
pub fn spread(brokers: &[BrokerAddr], topic: &str, partition: i32) -> i32 {
    let topic = topic.strip_prefix(SHARE_LEASE_PREFIX).unwrap_or(topic);
    if brokers.is_empty() {
        return -1;
    }
    // FNV-1a of the topic, plus the partition.
    let h = topic.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let i = h.wrapping_add(u64::from(partition.unsigned_abs())) % brokers.len() as u64;
    brokers[usize::try_from(i).unwrap_or(0)].node_id
}

/// A partition a transactional write added to its producer's transaction
/// at whichever broker took it (KIP-890 part 2 in a cluster), as the
/// coordinator reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedPartition {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id of the write.
    pub producer_id: i64,
    /// The producer epoch of the write.
    pub producer_epoch: i16,
    /// The topic written to.
    pub topic: String,
    /// The partition written to.
    pub partition: i32,
    /// When it was added (broker time, ms).
    pub joined_ms: i64,
}

/// Why a transaction's gate refused a write's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefused {
    /// The gate knows another producer id, or none.
    UnknownProducer,
    /// The gate is at another epoch: the write is from an ended
    /// transaction or a fenced producer.
    StaleEpoch,
    /// The coordinator is ending the transaction.
    Closed,
}

/// A cluster-wide lock this broker holds ([`SharedCatalog::lock`]);
/// dropping it releases it.
pub struct ClusterLock {
    _held: Box<dyn Send + Sync>,
}

impl ClusterLock {
    /// A lock held for as long as `held` lives.
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl std::fmt::Debug for ClusterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLock").finish_non_exhaustive()
    }
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

    /// Reserves a block of producer ids no other broker will hand out and
    /// answers it as `first..end`; `None` if this store has no allocator
    /// of its own (the caller then reserves through the catalog).
    fn reserve_producer_ids(&self) -> Result<Option<std::ops::Range<i64>>, LogError> {
        Ok(None)
    }

    /// Starts holding coordinator leases for the partitions of `topic`
    /// (a coordinator's internal topic, `partitions` of them) that fall
    /// to this broker, and fences this broker's appends to them by the
    /// lease; answers the partitions held, each with its lease epoch.
    /// `None` when the store has no leases (one node coordinates all).
    fn lead_coordinators(
        &self,
        _topic: &str,
        _partitions: i32,
    ) -> Option<watch::Receiver<BTreeMap<i32, i64>>> {
        None
    }

    /// The lease epoch this broker holds now for `topic`'s `partition`,
    /// if it holds it (and its lease has not run out by its own clock).
    fn coordinator_epoch(&self, _topic: &str, _partition: i32) -> Option<i64> {
        None
    }

    /// The broker holding the lease of `topic`'s `partition` (as of the
    /// last heartbeat, or read from the database when that did not know
    /// it); `None` if nobody holds an unexpired lease.
    fn coordinator_of(&self, _topic: &str, _partition: i32) -> Option<i32> {
        None
    }

    /// KIP-890 part 2 in a cluster: adds `partitions` to the transaction
    /// of `transactional_id` (whose `__transaction_state` partition is
    /// `coordinator`) for a write by `producer` (id, epoch), if the
    /// transaction's gate, which its coordinator keeps, is open at that
    /// producer id and epoch; the partitions are stored, so the coordinator
    /// reads them back at the end. Answers why not otherwise; `Ok(None)`
    /// also when the store has no gates (one node adds in memory).
    fn join_transaction(
        &self,
        _transactional_id: &str,
        _coordinator: i32,
        _producer: (i64, i16),
        _partitions: &[(String, i32)],
        _now_ms: i64,
    ) -> Result<Option<JoinRefused>, LogError> {
        Ok(None)
    }

    /// The coordinator, under `lease`: closes the gate of
    /// `transactional_id` (writes wait for it to open again) and answers
    /// every partition joined, all joins before the close included.
    fn seal_transaction(
        &self,
        _transactional_id: &str,
        _lease: &Lease,
    ) -> Result<Vec<JoinedPartition>, LogError> {
        Ok(Vec::new())
    }

    /// The coordinator, under `lease`: opens the gate of
    /// `transactional_id` to writes by `producer` (id, epoch), forgetting
    /// the joined partitions, except those of `producer` itself when
    /// `keep_current` (a transaction still open).
    fn open_transaction(
        &self,
        _transactional_id: &str,
        _lease: &Lease,
        _producer: (i64, i16),
        _keep_current: bool,
    ) -> Result<(), LogError> {
        Ok(())
    }

    /// The partitions joined to transactions whose `__transaction_state`
    /// partition is one of `coordinators`, for their coordinator to learn
    /// of open transactions (and time them out).
    fn joined_transactions(&self, _coordinators: &[i32]) -> Result<Vec<JoinedPartition>, LogError> {
        Ok(Vec::new())
    }

    /// Takes the cluster-wide exclusive lock `name`, waiting while another
    /// broker holds it (for a bounded time, then an error). It is held
    /// until the answer is dropped or this broker's process ends, so a
    /// broker that dies holding it does not keep it. `None` when the store
    /// has no other brokers to exclude (one node).
    fn lock(&self, _name: &str) -> Option<BoxFuture<'static, Result<ClusterLock, LogError>>> {
        None
    }
}

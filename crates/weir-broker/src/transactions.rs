//! The transaction coordinator at run time: the pure state machine of
//! [`crate::txn_coordinator`] plus its I/O. State changes are appended to
//! `__transaction_state` and made durable before they count; COMMIT and
//! ABORT markers are written to every partition of a transaction and made
//! durable before the transaction is recorded as complete, so a crash at
//! any point leaves either the decision unrecorded (the transaction stays
//! open, later aborted by its timeout) or recorded and its markers
//! rewritten on restart.
//!
//! In a cluster each broker coordinates the transactional ids of the
//! `__transaction_state` partitions whose leases it holds: it loads a
//! partition's ids when it takes the lease and forgets them when it
//! loses it; its state writes are fenced by the lease epoch in the
//! engine, and only the holder aborts timed-out transactions.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tracing::{info, warn};
use weir_log::producer::{marker_batch, ControlType};
use weir_log::shared::{JoinRefused, JoinedPartition, Lease};
use weir_log::{BoxFuture, Clock};

use crate::error::BrokerError;
use crate::group_store::OFFSETS_TOPIC;
use crate::groups::Groups;
use crate::internal_log::{self, Durable, InternalLog};
use crate::topics::Topics;
use crate::txn_coordinator::{
    compat_error, produce_error, MarkerJob, TxnApi, TxnConfig, TxnCoordinator, TxnMetadata,
    TxnRecord, TxnState,
};
use crate::txn_store::{self, TXN_TOPIC};

/// A result that may wait for storage.
pub type Pending<T> = BoxFuture<'static, T>;

/// Settings, from broker configs with Kafka's names.
#[derive(Debug, Clone)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`, used when the topic is
    /// created.
    pub partitions: i32,
    /// The state machine's settings.
    pub coordinator: TxnConfig,
}

struct Inner {
    coord: TxnCoordinator,
    /// Marker jobs found unfinished at load, run at the first tick.
    pending_jobs: Vec<MarkerJob>,
    last_expiry_check: i64,
}

/// The run-time transaction coordinator.
pub struct Transactions {
    settings: TxnSettings,
    inner: Mutex<Inner>,
    /// `__transaction_state`.
    log: Arc<dyn InternalLog>,
    /// The partitions markers go to, and producer id blocks.
    topics: Arc<Topics>,
    /// Offsets committed inside transactions complete with their markers.
    groups: Arc<Groups>,
    clock: Clock,
    /// Cluster mode: the shared catalog whose leases say which
    /// transactional ids this broker coordinates.
    cluster: OnceLock<Arc<dyn weir_log::SharedCatalog>>,
    /// Cluster mode: the `__transaction_state` partitions loaded, with the
    /// lease epoch each was loaded at.
    loaded: Mutex<BTreeMap<i32, i64>>,
    /// Cluster mode at transaction version 2: the partitions this broker
    /// joined to transactions it does not coordinate (transactional id,
    /// producer id, epoch, topic, partition), so that only the first
    /// write of each to a partition asks the database.
    joined: Mutex<HashSet<Joined>>,
    /// Cluster mode at transaction version 2: when the coordinator last
    /// read the partitions other brokers joined to its transactions.
    last_discovery: Mutex<i64>,
}

/// A partition joined to a transaction at another broker's gate.
type Joined = (String, i64, i16, String, i32);

/// The most joins remembered; past it they are forgotten and asked again.
const JOINED_LIMIT: usize = 50_000;

/// How often a coordinator reads the partitions joined elsewhere (ms).
const DISCOVERY_MS: i64 = 1_000;

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn ready<T: Send + 'static>(v: T) -> Pending<T> {
    Box::pin(std::future::ready(v))
}

/// Every wait of `waits`, in turn.
fn all(mut waits: Vec<Durable>) -> Option<Durable> {
    match waits.len() {
        0 => None,
        1 => waits.pop(),
        _ => Some(Box::pin(async move {
            for w in waits {
                w.await?;
            }
            Ok(())
        })),
    }
}

async fn durable(wait: Option<Durable>) -> Result<(), ResponseError> {
    match wait {
        None => Ok(()),
        Some(w) => w.await.map_err(|e| {
            warn!(error = %e, "transaction state not durable");
            ResponseError::CoordinatorNotAvailable
        }),
    }
}

impl Transactions {
    /// A coordinator with no state yet, over `__transaction_state` in
    /// `log`; [`Transactions::load`] reads it back.
    pub fn new(
        settings: TxnSettings,
        log: Arc<dyn InternalLog>,
        topics: Arc<Topics>,
        groups: Arc<Groups>,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                coord: TxnCoordinator::new(settings.coordinator.clone()),
                pending_jobs: Vec::new(),
                last_expiry_check: 0,
            }),
            settings,
            log,
            topics,
            groups,
            clock,
            cluster: OnceLock::new(),
            loaded: Mutex::new(BTreeMap::new()),
            joined: Mutex::new(HashSet::new()),
            last_discovery: Mutex::new(0),
        }
    }

    /// Cluster mode at transaction version 2: writes add their partitions
    /// to transactions at whichever broker takes them, through the gate
    /// each transaction has in the database (`SharedCatalog::join_transaction`),
    /// which the coordinator closes to end the transaction and reads back.
    fn gated(&self) -> Option<&Arc<dyn weir_log::SharedCatalog>> {
        self.cluster
            .get()
            .filter(|_| self.transaction_version() >= 2)
    }

    /// The lease this broker coordinates `txn_id` under, if it does.
    fn lease(&self, txn_id: &str) -> Option<Lease> {
        let partition = self.partition_of(txn_id);
        let epoch = *self.loaded().get(&partition)?;
        Some(Lease {
            topic: TXN_TOPIC.to_string(),
            partition,
            epoch,
        })
    }

    /// Adds `partitions` to the transaction of `txn_id`, coordinated by
    /// another broker, through its gate ([`Transactions::gated`]): the
    /// database refuses a producer id or epoch other than the
    /// coordinator's (a fenced producer, or a transaction already ended)
    /// and a transaction being ended. Errors are the coordinator's, as
    /// AddPartitionsToTxn would answer them.
    fn join_elsewhere(
        &self,
        cluster: &Arc<dyn weir_log::SharedCatalog>,
        txn_id: &str,
        (producer_id, epoch): (i64, i16),
        partitions: &[(String, i32)],
    ) -> Result<(), ResponseError> {
        let key = |(t, p): &(String, i32)| (txn_id.to_string(), producer_id, epoch, t.clone(), *p);
        let missing: Vec<(String, i32)> = {
            let joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
            partitions
                .iter()
                .filter(|p| !joined.contains(&key(p)))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let refused = cluster
            .join_transaction(
                txn_id,
                self.partition_of(txn_id),
                (producer_id, epoch),
                &missing,
                self.now_ms(),
            )
            .map_err(|e| {
                warn!(error = %e, "cannot add partitions to a transaction");
                ResponseError::CoordinatorNotAvailable
            })?;
        match refused {
            None => {
                let mut joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
                if joined.len() >= JOINED_LIMIT {
                    joined.clear();
                }
                joined.extend(missing.iter().map(key));
                Ok(())
            }
            Some(JoinRefused::UnknownProducer) => Err(ResponseError::InvalidProducerIdMapping),
            Some(JoinRefused::StaleEpoch) => Err(ResponseError::ProducerFenced),
            Some(JoinRefused::Closed) => Err(ResponseError::ConcurrentTransactions),
        }
    }

    /// Adds partitions joined through the gates of transactions this broker
    /// coordinates to their metadata, when they are of the producer id and
    /// epoch the coordinator has (others are from transactions already
    /// ended), so that the state machine sees them as added; each
    /// transaction starts when its first partition joined.
    fn merge(&self, rows: &[JoinedPartition]) -> Option<Durable> {
        let mut by_id: BTreeMap<&str, Vec<&JoinedPartition>> = BTreeMap::new();
        for r in rows {
            by_id
                .entry(r.transactional_id.as_str())
                .or_default()
                .push(r);
        }
        let mut records = Vec::new();
        let mut inner = self.lock();
        for (id, rows) in by_id {
            if !self.owns(id) {
                continue;
            }
            let Some(meta) = inner.coord.describe(id) else {
                continue;
            };
            let (pid, epoch) = (meta.producer_id, meta.producer_epoch);
            let current: Vec<&&JoinedPartition> = rows
                .iter()
                .filter(|r| r.producer_id == pid && r.producer_epoch == epoch)
                .collect();
            let parts: Vec<(String, i32)> = current
                .iter()
                .map(|r| (r.topic.clone(), r.partition))
                .filter(|p| meta.state != TxnState::Ongoing || !meta.partitions.contains(p))
                .collect();
            if parts.is_empty() {
                continue;
            }
            let since = current.iter().map(|r| r.joined_ms).min().unwrap_or(0);
            let step = inner.coord.add_partitions(id, pid, epoch, &parts, 2, since);
            if step.reply.is_ok() {
                records.extend(step.records);
            }
        }
        self.persist(records)
    }

    /// Closes the gate of `txn_id` (cluster mode at transaction version 2)
    /// and adds what joined through it to the metadata; answers the joined
    /// partitions and the wait for the metadata's record.
    fn seal(&self, txn_id: &str) -> Result<(Vec<JoinedPartition>, Option<Durable>), ResponseError> {
        let Some(cluster) = self.gated() else {
            return Ok((Vec::new(), None));
        };
        let lease = self.lease(txn_id).ok_or(ResponseError::NotCoordinator)?;
        let rows = cluster.seal_transaction(txn_id, &lease).map_err(|e| {
            warn!(error = %e, transactional_id = txn_id, "cannot close the transaction's gate");
            ResponseError::CoordinatorNotAvailable
        })?;
        let wait = self.merge(&rows);
        Ok((rows, wait))
    }

    /// Opens the gate of `txn_id` again, at the producer id and epoch of
    /// its metadata, unless a transaction is being ended (its completion
    /// opens it); `keep_current` keeps what joined at them (a transaction
    /// still open).
    fn reopen(&self, txn_id: &str, keep_current: bool) {
        let Some(cluster) = self.gated() else {
            return;
        };
        let Some(meta) = self.describe(txn_id) else {
            return;
        };
        if matches!(
            meta.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        ) {
            return;
        }
        let Some(lease) = self.lease(txn_id) else {
            return;
        };
        let producer = (meta.producer_id, meta.producer_epoch);
        if let Err(e) = cluster.open_transaction(txn_id, &lease, producer, keep_current) {
            warn!(error = %e, transactional_id = txn_id, "cannot open the transaction's gate");
        }
    }

    /// Reads the partitions other brokers joined to the transactions this
    /// broker coordinates (at most every [`DISCOVERY_MS`]), so that their
    /// timeouts run and DescribeTransactions lists them.
    fn discover(self: &Arc<Self>, rt: &tokio::runtime::Handle, now: i64) {
        if self.gated().is_none() {
            return;
        }
        {
            let mut last = self
                .last_discovery
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if now - *last < DISCOVERY_MS {
                return;
            }
            *last = now;
        }
        let owned: Vec<i32> = self.loaded().keys().copied().collect();
        if owned.is_empty() {
            return;
        }
        let me = self.clone();
        rt.spawn_blocking(move || {
            let Some(cluster) = me.gated() else { return };
            match cluster.joined_transactions(&owned) {
                Ok(rows) => detach("joined partitions", me.merge(&rows)),
                Err(e) => tracing::debug!(error = %e, "cannot read joined partitions"),
            }
        });
    }

    fn loaded(&self) -> MutexGuard<'_, BTreeMap<i32, i64>> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cluster mode: transactional ids are served by the broker holding
    /// their `__transaction_state` partition's lease
    /// (`crate::leases::follow`).
    pub fn join_cluster(&self, cluster: Arc<dyn weir_log::SharedCatalog>) {
        let _ = self.cluster.set(cluster);
    }

    /// The `__transaction_state` partition of a transactional id.
    pub fn partition_of(&self, txn_id: &str) -> i32 {
        txn_store::partition_for(txn_id, self.partitions())
    }

    /// Whether this broker coordinates `txn_id` now: always on one node;
    /// in a cluster, while it holds the lease of the id's partition at the
    /// epoch it loaded the partition at.
    pub fn owns(&self, txn_id: &str) -> bool {
        let Some(cluster) = self.cluster.get() else {
            return true;
        };
        let p = self.partition_of(txn_id);
        let loaded = self.loaded().get(&p).copied();
        loaded.is_some() && cluster.coordinator_epoch(TXN_TOPIC, p) == loaded
    }

    /// Creates `__transaction_state` if missing; answers its partition
    /// count (cluster mode, where partitions load as leases are taken).
    pub async fn prepare(&self, segment_bytes: String) -> Result<i32, BrokerError> {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), segment_bytes),
        ]);
        self.log
            .ensure_topic(TXN_TOPIC, self.settings.partitions, configs)
            .await
    }

    /// Cluster mode: this broker took the lease of partition `p` at
    /// `epoch`; reads the partition's transactional ids back and finishes
    /// the transactions left preparing (at the next tick).
    pub async fn load_partition(&self, p: i32, epoch: i64) -> Result<(), BrokerError> {
        self.drop_partition(p);
        let records = internal_log::read_records(&*self.log, TXN_TOPIC, p).await?;
        let n = self.partitions();
        let mut inner = self.lock();
        for (key, value) in records {
            if let Some(key) = key {
                inner.coord.load(&key, value.as_ref());
            }
        }
        let jobs: Vec<MarkerJob> = inner
            .coord
            .pending_markers()
            .into_iter()
            .filter(|j| txn_store::partition_for(&j.transactional_id, n) == p)
            .collect();
        info!(
            partition = p,
            epoch,
            unfinished = jobs.len(),
            "took over transaction coordinator partition"
        );
        inner.pending_jobs.extend(jobs);
        drop(inner);
        self.loaded().insert(p, epoch);
        Ok(())
    }

    /// Cluster mode: this broker no longer holds partition `p`'s lease;
    /// forgets its transactional ids (their clients get NOT_COORDINATOR
    /// and find the new coordinator, which reads them back).
    pub fn drop_partition(&self, p: i32) {
        self.loaded().remove(&p);
        let n = self.partitions();
        let mut inner = self.lock();
        let ids: Vec<String> = inner
            .coord
            .iter()
            .map(|m| m.transactional_id.clone())
            .filter(|id| txn_store::partition_for(id, n) == p)
            .collect();
        for id in &ids {
            inner.coord.load(&txn_store::key(id), None);
        }
        inner
            .pending_jobs
            .retain(|j| txn_store::partition_for(&j.transactional_id, n) != p);
        if !ids.is_empty() {
            info!(
                partition = p,
                ids = ids.len(),
                "transaction coordinator moved away"
            );
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Partitions of `__transaction_state` as it exists: its count is
    /// fixed at creation, as in Kafka, whatever the setting says later.
    fn partitions(&self) -> i32 {
        self.log.partitions(TXN_TOPIC).unwrap_or(1)
    }

    /// The settings.
    pub fn settings(&self) -> &TxnSettings {
        &self.settings
    }

    /// The finalized `transaction.version` feature level.
    pub fn transaction_version(&self) -> i16 {
        self.settings.coordinator.transaction_version
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates `__transaction_state` if missing (compacted, with
    /// `segment_bytes` segments) and reads it back; transactions left in
    /// PrepareCommit or PrepareAbort get their markers written at the first
    /// tick.
    pub async fn load(&self, segment_bytes: String) -> Result<(), BrokerError> {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), segment_bytes),
        ]);
        let partitions = self
            .log
            .ensure_topic(TXN_TOPIC, self.settings.partitions, configs)
            .await?;
        let mut records = Vec::new();
        for p in 0..partitions {
            records.extend(internal_log::read_records(&*self.log, TXN_TOPIC, p).await?);
        }
        let mut inner = self.lock();
        let mut loaded = 0usize;
        for (key, value) in records {
            if let Some(key) = key {
                loaded += 1;
                inner.coord.load(&key, value.as_ref());
            }
        }
        let jobs = inner.coord.pending_markers();
        info!(
            records = loaded,
            unfinished = jobs.len(),
            "loaded transaction coordinator state"
        );
        inner.pending_jobs = jobs;
        Ok(())
    }

    /// Appends state records, each to its transactional id's partition;
    /// the returned wait covers all of them. Called with the state lock
    /// held, so records reach the log in the order they were made.
    fn persist(&self, records: Vec<TxnRecord>) -> Option<Durable> {
        let mut by_partition: BTreeMap<i32, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
        let n = self.partitions();
        for r in records {
            let p = txn_store::partition_for(&r.transactional_id, n);
            by_partition.entry(p).or_default().push((r.key, r.value));
        }
        let waits = by_partition
            .into_iter()
            .map(|(p, kvs)| {
                let kvs = kvs.into_iter().map(|(k, v)| (Some(k), v)).collect();
                let appended = self.log.append(TXN_TOPIC, p, kvs, None);
                Box::pin(async move { appended.await?.durable.await }) as Durable
            })
            .collect();
        all(waits)
    }

    /// InitProducerId for a transactional id.
    pub fn init_producer_id(
        self: &Arc<Self>,
        txn_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: i16,
    ) -> Pending<Result<(i64, i16), ResponseError>> {
        if !self.owns(txn_id) {
            return ready(Err(ResponseError::NotCoordinator));
        }
        // An open transaction whose partitions joined elsewhere must be
        // seen, to be fenced and aborted.
        let merged = match self.seal(txn_id) {
            Ok((_, wait)) => wait,
            Err(e) => return ready(Err(compat_error(TxnApi::InitProducerId, version, e))),
        };
        let now = self.now_ms();
        let mut inner = self.lock();
        let mut alloc_err = None;
        let mut alloc = || match self.topics.next_producer_id() {
            Ok(id) => id,
            Err(e) => {
                alloc_err = Some(e);
                -1
            }
        };
        let step = inner
            .coord
            .init_producer_id(txn_id, timeout_ms, expected, &mut alloc, now);
        if let Some(e) = alloc_err {
            drop(inner);
            warn!(error = %e, "cannot reserve producer ids");
            self.reopen(txn_id, true);
            return ready(Err(ResponseError::CoordinatorNotAvailable));
        }
        let wait = all(merged
            .into_iter()
            .chain(self.persist(step.records))
            .collect());
        drop(inner);
        let me = self.clone();
        let reply = step
            .reply
            .map(|p| (p.producer_id, p.producer_epoch))
            .map_err(|e| compat_error(TxnApi::InitProducerId, version, e));
        let markers = step.markers;
        let txn_id = txn_id.to_string();
        Box::pin(async move {
            durable(wait).await?;
            if markers.is_empty() {
                me.reopen(&txn_id, true);
            }
            // Fencing an open transaction: its abort is finished before the
            // client's retry (the reply is CONCURRENT_TRANSACTIONS).
            for job in markers {
                me.clone().finish(job).await;
            }
            reply
        })
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's partition).
    pub fn add_partitions(
        &self,
        txn_id: &str,
        producer: (i64, i16),
        partitions: Vec<(String, i32)>,
        api: TxnApi,
        version: i16,
    ) -> Pending<Result<(), ResponseError>> {
        // Brokers add partitions for version 2 producers with v5.
        let client_version = if api == TxnApi::AddPartitionsToTxn && version >= 5 {
            2
        } else {
            0
        };
        match self.add(txn_id, producer, &partitions, client_version) {
            Ok(wait) => Box::pin(durable(wait)),
            Err(e) => ready(Err(compat_error(api, version, e))),
        }
    }

    /// KIP-890 part 2: a transactional write at transaction version 2
    /// (Produce v12+, TxnOffsetCommit v5+) adds its partitions to the
    /// producer's transaction itself. The state record is appended before
    /// the caller appends the data (so the log never holds data of a
    /// transaction its coordinator does not know), and the returned wait,
    /// which the caller's answer must await, makes it durable. Errors are
    /// the coordinator's, as [`Transactions::verify`] gives them.
    pub fn add_implicitly(
        &self,
        txn_id: &str,
        producer: (i64, i16),
        partitions: &[(String, i32)],
    ) -> Result<Pending<Result<(), ResponseError>>, ResponseError> {
        if let Some(cluster) = self.gated().filter(|_| !self.owns(txn_id)) {
            self.join_elsewhere(cluster, txn_id, producer, partitions)?;
            return Ok(ready(Ok(())));
        }
        let wait = self.add(txn_id, producer, partitions, 2)?;
        Ok(Box::pin(durable(wait)))
    }

    fn add(
        &self,
        txn_id: &str,
        (producer_id, epoch): (i64, i16),
        partitions: &[(String, i32)],
        client_version: i16,
    ) -> Result<Option<Durable>, ResponseError> {
        if !self.owns(txn_id) {
            return Err(ResponseError::NotCoordinator);
        }
        let now = self.now_ms();
        let mut inner = self.lock();
        let step =
            inner
                .coord
                .add_partitions(txn_id, producer_id, epoch, partitions, client_version, now);
        step.reply?;
        Ok(self.persist(step.records))
    }

    /// KIP-890 verification of a transactional write to one partition,
    /// with the coordinator's error (see `produce_error` for Produce).
    /// `join`: a write at another broker's transaction joins it
    /// ([`Transactions::gated`]); AddPartitionsToTxn's `verify_only`
    /// checks without.
    pub fn verify(
        &self,
        txn_id: &str,
        (producer_id, epoch): (i64, i16),
        topic: &str,
        partition: i32,
        join: bool,
    ) -> Result<(), ResponseError> {
        if !self.owns(txn_id) {
            // In a cluster the write may reach a broker that does not
            // coordinate the id, and brokers do not ask each other. At
            // transaction version 2 the partition must have joined the
            // transaction through its gate; at version 1 the engine fences
            // the batch by the producer's epoch (as Kafka before KIP-890).
            return match self.gated().filter(|_| join) {
                Some(cluster) => self.join_elsewhere(
                    cluster,
                    txn_id,
                    (producer_id, epoch),
                    &[(topic.to_string(), partition)],
                ),
                None => Ok(()),
            };
        }
        self.lock()
            .coord
            .verify(
                txn_id,
                producer_id,
                epoch,
                &[(topic.to_string(), partition)],
            )
            .pop()
            .map_or(Err(ResponseError::InvalidTxnState), |(_, r)| r)
    }

    /// [`Transactions::verify`] for a Produce request at `version`.
    pub fn verify_produce(
        &self,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
        version: i16,
    ) -> Result<(), ResponseError> {
        self.verify(txn_id, (producer_id, epoch), topic, partition, true)
            .map_err(|e| produce_error(e, version))
    }

    /// EndTxn: records the decision, writes the markers, records the end.
    /// Answers the producer id and epoch the client continues with (new
    /// ones from EndTxn v5, transaction version 2).
    pub fn end_txn(
        self: &Arc<Self>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        version: i16,
    ) -> Pending<Result<(i64, i16), ResponseError>> {
        if !self.owns(txn_id) {
            return ready(Err(compat_error(
                TxnApi::EndTxn,
                version,
                ResponseError::NotCoordinator,
            )));
        }
        // The partitions that joined elsewhere are this transaction's too.
        let merged = match self.seal(txn_id) {
            Ok((_, wait)) => wait,
            Err(e) => return ready(Err(compat_error(TxnApi::EndTxn, version, e))),
        };
        let now = self.now_ms();
        let mut inner = self.lock();
        let mut alloc = || match self.topics.next_producer_id() {
            Ok(id) => id,
            Err(e) => {
                warn!(error = %e, "cannot reserve producer ids");
                -1
            }
        };
        let step = inner.coord.end_txn(
            txn_id,
            (producer_id, epoch),
            commit,
            version >= 5,
            &mut alloc,
            now,
        );
        let wait = all(merged
            .into_iter()
            .chain(self.persist(step.records))
            .collect());
        drop(inner);
        let reply = match step.reply {
            Ok(p) => (p.producer_id, p.producer_epoch),
            Err(e) => {
                self.reopen(txn_id, true);
                let e = compat_error(TxnApi::EndTxn, version, e);
                return Box::pin(async move { durable(wait).await.and(Err(e)) });
            }
        };
        let me = self.clone();
        let markers = step.markers;
        let txn_id = txn_id.to_string();
        Box::pin(async move {
            durable(wait).await?;
            if markers.is_empty() {
                me.reopen(&txn_id, true);
            }
            for job in markers {
                me.clone().finish(job).await;
            }
            Ok(reply)
        })
    }

    /// Aborts timed-out transactions, finishes those left unfinished at
    /// load, and forgets expired transactional ids.
    pub fn tick(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let now = self.now_ms();
        self.discover(&rt, now);
        let mut inner = self.lock();
        let mut jobs = std::mem::take(&mut inner.pending_jobs);
        let fx = inner.coord.abort_timed_out(now);
        detach("transaction timeouts", self.persist(fx.records));
        for job in &fx.markers {
            info!(transactional_id = %job.transactional_id, "aborting timed-out transaction");
        }
        jobs.extend(fx.markers);
        if now - inner.last_expiry_check >= 60_000 {
            inner.last_expiry_check = now;
            let expired = inner.coord.expire_ids(now);
            detach("transactional id expiry", self.persist(expired));
        }
        drop(inner);
        // In a cluster, only the current holder of the id's lease.
        jobs.retain(|j| self.owns(&j.transactional_id));
        for job in jobs {
            rt.spawn(self.clone().finish(job));
        }
    }

    /// The transaction of a transactional id (DescribeTransactions).
    pub fn describe(&self, txn_id: &str) -> Option<TxnMetadata> {
        self.lock().coord.describe(txn_id).cloned()
    }

    /// Transactions matching the filters (ListTransactions).
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<TxnMetadata> {
        let now = self.now_ms();
        self.lock()
            .coord
            .list(states, producer_ids, min_duration_ms, now)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Writes a transaction's markers, waits until they are durable, then
    /// records the transaction as complete. Idempotent: rerun after a
    /// crash, it writes markers again, which partitions treat as no-ops.
    async fn finish(self: Arc<Self>, mut job: MarkerJob) {
        if self.gated().is_some() {
            // Closed, so nothing joins while the markers go out; whatever
            // joined before is marked too. The markers carry the bumped
            // epoch: what joined at it belongs to the next transaction.
            match self.seal(&job.transactional_id) {
                Ok((rows, _)) => {
                    job.partitions.extend(
                        rows.into_iter()
                            .filter(|r| {
                                r.producer_id == job.producer_id
                                    && r.producer_epoch < job.producer_epoch
                            })
                            .map(|r| (r.topic, r.partition)),
                    );
                    job.partitions.sort_unstable();
                    job.partitions.dedup();
                }
                Err(e) => {
                    warn!(transactional_id = %job.transactional_id, error = ?e, "transaction markers postponed");
                    self.lock().pending_jobs.push(job);
                    return;
                }
            }
        }
        let kind = if job.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let now = self.now_ms();
        let mut appends = Vec::with_capacity(job.partitions.len());
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &job.partitions {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        for (topic, parts) in by_topic {
            let Some(t) = self.topics.topic(topic) else {
                // Deleted since: nothing to mark.
                continue;
            };
            for p in parts {
                let Some(log) = t.partition(p) else { continue };
                let batch = marker_batch(
                    job.producer_id,
                    job.producer_epoch,
                    kind,
                    job.coordinator_epoch,
                    now,
                );
                // Every append is queued before any is awaited: an engine
                // that gathers appends writes them in one flush.
                let append = log.append(batch, crate::LEADER_EPOCH);
                appends.push((topic, p, log.clone(), append));
            }
        }
        let mut failed = false;
        for (topic, p, log, append) in appends {
            let written = match append.await {
                Ok(info) => log.wait_durable(info.last_offset + 1).await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => {
                    if topic == OFFSETS_TOPIC {
                        self.groups.end_txn(job.producer_id, job.commit);
                    }
                }
                Err(e) => {
                    warn!(topic, partition = p, error = %e, "transaction marker not written");
                    failed = true;
                }
            }
        }
        if failed {
            // The decision stays recorded as Prepare*: the markers are
            // written again at the next tick (markers already written
            // are no-ops the second time), or at the next start.
            self.lock().pending_jobs.push(job);
            return;
        }
        // Written under the lock, so records reach the log in the order the
        // state machine made them.
        let written = {
            let mut inner = self.lock();
            let record = inner.coord.complete(&job.transactional_id, self.now_ms());
            self.persist(record.into_iter().collect())
        };
        if durable(written).await.is_ok() {
            // The transaction's joins are done with: the gate opens to the
            // producer's next epoch.
            self.reopen(&job.transactional_id, false);
        }
    }
}

/// Lets a state write complete on its own; a failure is logged.
fn detach(what: &'static str, wait: Option<Durable>) {
    if let Some(w) = wait {
        internal_log::detach(
            what,
            Box::pin(async move {
                w.await?;
                Ok(())
            }),
        );
    }
}

impl crate::leases::LeasedState for Transactions {
    const WHAT: &'static str = "transactional ids";

    fn loaded_leases(&self) -> BTreeMap<i32, i64> {
        self.loaded().clone()
    }

    fn load(
        self: &Arc<Self>,
        p: i32,
        epoch: i64,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send {
        self.load_partition(p, epoch)
    }

    fn forget(&self, p: i32) {
        self.drop_partition(p);
    }
}

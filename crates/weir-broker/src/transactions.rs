//! The transaction coordinator at run time: the pure state machine of
//! [`crate::txn_coordinator`] plus its I/O. State changes are appended to
//! `__transaction_state` and made durable before they count; COMMIT and
//! ABORT markers are written to every partition of a transaction and made
//! durable before the transaction is recorded as complete, so a crash at
//! any point leaves either the decision unrecorded (the transaction stays
//! open, later aborted by its timeout) or recorded and its markers
//! rewritten on restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tracing::{info, warn};
use weir_log::producer::{marker_batch, ControlType};
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
}

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
            warn!(error = %e, "cannot reserve producer ids");
            return ready(Err(ResponseError::CoordinatorNotAvailable));
        }
        let wait = self.persist(step.records);
        drop(inner);
        let me = self.clone();
        let reply = step
            .reply
            .map(|p| (p.producer_id, p.producer_epoch))
            .map_err(|e| compat_error(TxnApi::InitProducerId, version, e));
        let markers = step.markers;
        Box::pin(async move {
            durable(wait).await?;
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
    pub fn verify(
        &self,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
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
        self.verify(txn_id, producer_id, epoch, topic, partition)
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
        let reply = match step.reply {
            Ok(p) => (p.producer_id, p.producer_epoch),
            Err(e) => return ready(Err(compat_error(TxnApi::EndTxn, version, e))),
        };
        let wait = self.persist(step.records);
        drop(inner);
        let me = self.clone();
        let markers = step.markers;
        Box::pin(async move {
            durable(wait).await?;
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
    async fn finish(self: Arc<Self>, job: MarkerJob) {
        let kind = if job.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let now = self.now_ms();
        let mut waits = Vec::with_capacity(job.partitions.len());
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
                match log.append(batch, crate::LEADER_EPOCH).await {
                    Ok(info) => waits.push(log.wait_durable(info.last_offset + 1)),
                    Err(e) => {
                        warn!(topic, partition = p, error = %e, "transaction marker not written");
                    }
                }
                if topic == OFFSETS_TOPIC {
                    self.groups.end_txn(job.producer_id, job.commit);
                }
            }
        }
        for w in waits {
            if let Err(e) = w.await {
                // The decision stays recorded as Prepare*: the markers are
                // written again at the next start.
                warn!(error = %e, "transaction marker not durable");
                return;
            }
        }
        // Written under the lock, so records reach the log in the order the
        // state machine made them.
        let written = {
            let mut inner = self.lock();
            let record = inner.coord.complete(&job.transactional_id, self.now_ms());
            self.persist(record.into_iter().collect())
        };
        let _ = durable(written).await;
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

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
use weir_log::BoxFuture;

use crate::broker::Broker;
use crate::group_store::OFFSETS_TOPIC;
use crate::groups::now_ms;
use crate::txn_coordinator::{
    compat_error, produce_error, MarkerJob, TxnApi, TxnConfig, TxnCoordinator, TxnMetadata,
    TxnRecord, TxnState,
};
use crate::txn_store::{self, TXN_TOPIC};

/// A result that may wait for storage.
pub type Pending<T> = BoxFuture<'static, T>;

type Durable = BoxFuture<'static, Result<(), weir_log::LogError>>;

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
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Partitions of `__transaction_state` as it exists: its count is fixed at
/// creation, as in Kafka, whatever the setting says later.
fn partitions(broker: &Broker) -> i32 {
    broker
        .topic(TXN_TOPIC)
        .and_then(|t| i32::try_from(t.partitions.len()).ok())
        .unwrap_or(1)
}

fn ready<T: Send + 'static>(v: T) -> Pending<T> {
    Box::pin(std::future::ready(v))
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
    /// A coordinator with no state yet; [`Transactions::load`] reads it back.
    pub fn new(settings: TxnSettings) -> Self {
        Self {
            inner: Mutex::new(Inner {
                coord: TxnCoordinator::new(settings.coordinator.clone()),
                pending_jobs: Vec::new(),
                last_expiry_check: 0,
            }),
            settings,
        }
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

    /// Reads `__transaction_state` back; transactions left in
    /// PrepareCommit or PrepareAbort get their markers written at the first
    /// tick.
    pub fn load(&self, broker: &Broker) -> Result<(), crate::BrokerError> {
        let mut inner = self.lock();
        let mut records = 0usize;
        for p in 0..partitions(broker) {
            for (key, value) in broker.read_records(TXN_TOPIC, p)? {
                if let Some(key) = key {
                    records += 1;
                    inner.coord.load(&key, value.as_ref());
                }
            }
        }
        let jobs = inner.coord.pending_markers();
        info!(
            records,
            unfinished = jobs.len(),
            "loaded transaction coordinator state"
        );
        inner.pending_jobs = jobs;
        Ok(())
    }

    /// Appends state records, each to its transactional id's partition;
    /// the returned wait covers all of them. Called with the state lock
    /// held, so records reach the log in the order they were made.
    fn persist(
        &self,
        broker: &Broker,
        records: Vec<TxnRecord>,
    ) -> Result<Option<Durable>, ResponseError> {
        let mut by_partition: BTreeMap<i32, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
        for r in records {
            let p = txn_store::partition_for(&r.transactional_id, partitions(broker));
            by_partition.entry(p).or_default().push((r.key, r.value));
        }
        let mut waits = Vec::new();
        for (p, kvs) in by_partition {
            waits.push(self.append(broker, p, kvs)?);
        }
        Ok(match waits.len() {
            0 => None,
            1 => waits.pop(),
            _ => Some(Box::pin(async move {
                for w in waits {
                    w.await?;
                }
                Ok(())
            })),
        })
    }

    fn append(
        &self,
        broker: &Broker,
        p: i32,
        kvs: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<Durable, ResponseError> {
        let kvs = kvs.into_iter().map(|(k, v)| (Some(k), v)).collect();
        match broker.append_records(TXN_TOPIC, p, kvs) {
            Ok((_, wait)) => Ok(wait),
            Err(e) => {
                warn!(error = %e, "cannot write transaction state");
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    /// InitProducerId for a transactional id.
    pub fn init_producer_id(
        &self,
        broker: &Arc<Broker>,
        txn_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: i16,
    ) -> Pending<Result<(i64, i16), ResponseError>> {
        let now = now_ms();
        let mut inner = self.lock();
        let mut alloc_err = None;
        let mut alloc = || match broker.next_producer_id() {
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
        let wait = match self.persist(broker, step.records) {
            Ok(w) => w,
            Err(e) => return ready(Err(e)),
        };
        drop(inner);
        let broker = broker.clone();
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
                finish(broker.clone(), job).await;
            }
            reply
        })
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's partition).
    pub fn add_partitions(
        &self,
        broker: &Arc<Broker>,
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
        match self.add(broker, txn_id, producer, &partitions, client_version) {
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
        broker: &Broker,
        txn_id: &str,
        producer: (i64, i16),
        partitions: &[(String, i32)],
    ) -> Result<Pending<Result<(), ResponseError>>, ResponseError> {
        let wait = self.add(broker, txn_id, producer, partitions, 2)?;
        Ok(Box::pin(durable(wait)))
    }

    fn add(
        &self,
        broker: &Broker,
        txn_id: &str,
        (producer_id, epoch): (i64, i16),
        partitions: &[(String, i32)],
        client_version: i16,
    ) -> Result<Option<Durable>, ResponseError> {
        let now = now_ms();
        let mut inner = self.lock();
        let step =
            inner
                .coord
                .add_partitions(txn_id, producer_id, epoch, partitions, client_version, now);
        step.reply?;
        self.persist(broker, step.records)
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
        &self,
        broker: &Arc<Broker>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        version: i16,
    ) -> Pending<Result<(i64, i16), ResponseError>> {
        let now = now_ms();
        let mut inner = self.lock();
        let mut alloc = || match broker.next_producer_id() {
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
        let wait = match self.persist(broker, step.records) {
            Ok(w) => w,
            Err(e) => return ready(Err(e)),
        };
        drop(inner);
        let broker = broker.clone();
        let markers = step.markers;
        Box::pin(async move {
            durable(wait).await?;
            for job in markers {
                finish(broker.clone(), job).await;
            }
            Ok(reply)
        })
    }

    /// Aborts timed-out transactions, finishes those left unfinished at
    /// load, and forgets expired transactional ids.
    pub fn tick(&self, broker: &Arc<Broker>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let now = now_ms();
        let mut inner = self.lock();
        let mut jobs = std::mem::take(&mut inner.pending_jobs);
        let fx = inner.coord.abort_timed_out(now);
        if let Err(e) = self.persist(broker, fx.records) {
            warn!(error = ?e, "cannot record transaction timeouts");
        }
        for job in &fx.markers {
            info!(transactional_id = %job.transactional_id, "aborting timed-out transaction");
        }
        jobs.extend(fx.markers);
        if now - inner.last_expiry_check >= 60_000 {
            inner.last_expiry_check = now;
            let expired = inner.coord.expire_ids(now);
            if let Err(e) = self.persist(broker, expired) {
                warn!(error = ?e, "cannot write transactional id expiry");
            }
        }
        drop(inner);
        for job in jobs {
            rt.spawn(finish(broker.clone(), job));
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
        let now = now_ms();
        self.lock()
            .coord
            .list(states, producer_ids, min_duration_ms, now)
            .into_iter()
            .cloned()
            .collect()
    }
}

/// Writes a transaction's markers, waits until they are durable, then
/// records the transaction as complete. Idempotent: rerun after a crash,
/// it writes markers again, which partitions treat as no-ops.
async fn finish(broker: Arc<Broker>, job: MarkerJob) {
    let kind = if job.commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let now = now_ms();
    let mut waits = Vec::with_capacity(job.partitions.len());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &job.partitions {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    for (topic, parts) in by_topic {
        let Some(t) = broker.topic(topic) else {
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
            match log.append(batch, crate::LEADER_EPOCH) {
                Ok(info) => waits.push(log.wait_durable(info.last_offset + 1)),
                Err(e) => {
                    warn!(topic, partition = p, error = %e, "transaction marker not written");
                }
            }
            if topic == OFFSETS_TOPIC {
                broker.groups.end_txn(job.producer_id, job.commit);
            }
        }
    }
    broker.notify_data();
    for w in waits {
        if let Err(e) = w.await {
            // The decision stays recorded as Prepare*: the markers are
            // written again at the next start.
            warn!(error = %e, "transaction marker not durable");
            return;
        }
    }
    let txns = &broker.txns;
    // Written under the lock, so records reach the log in the order the
    // state machine made them.
    let written = {
        let mut inner = txns.lock();
        let record = inner.coord.complete(&job.transactional_id, now_ms());
        txns.persist(&broker, record.into_iter().collect())
    };
    match written {
        Ok(wait) => {
            let _ = durable(wait).await;
        }
        Err(e) => warn!(error = ?e, "cannot record transaction completion"),
    }
}

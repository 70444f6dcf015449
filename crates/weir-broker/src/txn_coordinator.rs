//! The transaction coordinator, as a pure state machine.
//!
//! It owns the metadata of every transactional id (producer id and epoch,
//! state, partitions, timestamps) and decides InitProducerId,
//! AddPartitionsToTxn (and its KIP-890 verification form), EndTxn, the
//! completion of a transaction once its markers are written, the abort of
//! timed-out transactions and the expiry of idle transactional ids. There
//! is no I/O and no clock: time comes in as `now_ms`, producer ids come
//! from the caller's allocator, and what must be persisted (records of
//! `__transaction_state`, see [`crate::txn_store`]) and written (COMMIT or
//! ABORT control markers, [`MarkerJob`]) comes out.
//!
//! The rules are Apache Kafka's `TransactionCoordinator` and
//! `TransactionMetadata` (KIP-98, KIP-360 epoch bumps and retries, KIP-588
//! epoch-exhaustion rotation, KIP-890 part 1 verification, and KIP-890
//! part 2, transaction version 2: every EndTxn bumps the epoch, handing
//! a new producer id out when the epoch is exhausted, and partitions are
//! added by the transactional writes themselves): the same state ids and
//! names, the same error for each refusal, and the same records. Which
//! version a request follows is the client's choice, by the request's
//! version (EndTxn v5+, Produce v12+, TxnOffsetCommit v5+ are version 2);
//! the coordinator's own aborts (timeouts, fencing) follow the broker's
//! finalized `transaction.version`, as Kafka's do.
//!
//! Contract with the runtime: every operation applies its change to memory
//! at once and returns the records to append; the runtime appends them (in
//! order, before answering the client or writing markers). For each
//! [`MarkerJob`] it writes the control marker to every listed partition and
//! then calls [`TxnCoordinator::complete`], appending the record that
//! returns. Kafka holds a "pending" state while its append replicates; on
//! one node the append is local, so a failed append is a storage failure
//! for the whole broker rather than a state to retry.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::txn_store::{self, TxnValue};

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Coordinator settings, named after Kafka's broker configs.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// The finalized `transaction.version` feature level (0 to
    /// [`MAX_TRANSACTION_VERSION`]): from 1, records are written in the
    /// flexible format; at 2, the coordinator's own aborts bump the epoch
    /// as version 2's EndTxn does.
    pub transaction_version: i16,
}

/// The highest `transaction.version` this coordinator supports.
pub const MAX_TRANSACTION_VERSION: i16 = 2;

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            transaction_version: MAX_TRANSACTION_VERSION,
        }
    }
}

/// A transaction's state, with Kafka's ids (the `TransactionStatus` byte
/// of `__transaction_state`) and names (as DescribeTransactions and
/// ListTransactions show them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    /// No transaction in progress.
    Empty,
    /// Partitions have been added; the transaction is open.
    Ongoing,
    /// EndTxn(commit) accepted; COMMIT markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a fence or a timeout; ABORT markers are being written.
    PrepareAbort,
    /// COMMIT markers written.
    CompleteCommit,
    /// ABORT markers written.
    CompleteAbort,
    /// Being expired (never held here: expiry removes at once).
    Dead,
    /// Fencing an epoch (never held here: a fence goes straight to
    /// `PrepareAbort`, as Kafka's does before anything is persisted).
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in id order.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// Kafka's state id.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state with Kafka's id `id`.
    pub fn from_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name` (exact, as ListTransactions filters match).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether an idle transactional id in this state may expire.
    fn expirable(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// Kafka refuses to hand out the last two epochs of a producer id, so that
/// it can always fence the holder of the last one.
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The `__transaction_state` value version Kafka writes at
/// `transaction_version`: the flexible version 1 from 1 on.
pub fn value_version(transaction_version: i16) -> i16 {
    i16::from(transaction_version >= 1)
}

/// The metadata of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id in use.
    pub producer_id: i64,
    /// The producer id before the last epoch bump or rotation, or -1.
    pub prev_producer_id: i64,
    /// The producer id a version 2 transaction ending with an exhausted
    /// epoch hands out once it completes, or -1.
    pub next_producer_id: i64,
    /// The current epoch of `producer_id`.
    pub producer_epoch: i16,
    /// The epoch before the last client-requested bump (KIP-360), or -1.
    /// Not persisted (as in Kafka), so it is -1 after a restart.
    pub last_producer_epoch: i16,
    /// Transaction timeout (ms).
    pub timeout_ms: i32,
    /// State.
    pub state: TxnState,
    /// Partitions of the open transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the transaction started (ms), or -1.
    pub start_ms: i64,
    /// When the metadata last changed (ms).
    pub last_update_ms: i64,
    /// The transaction version of the request that last added partitions
    /// or ended the transaction (0, or 2).
    pub client_version: i16,
}

impl TxnMetadata {
    /// The `__transaction_state` value for this metadata (Kafka writes a
    /// null partition array for `Empty`).
    pub fn to_value(&self) -> TxnValue {
        let partitions = (self.state != TxnState::Empty).then(|| {
            let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
            for (topic, p) in &self.partitions {
                match topics.last_mut() {
                    Some((t, ids)) if t == topic => ids.push(*p),
                    _ => topics.push((topic.clone(), vec![*p])),
                }
            }
            topics
        });
        TxnValue {
            producer_id: self.producer_id,
            previous_producer_id: self.prev_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            status: self.state.id(),
            partitions,
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            client_transaction_version: self.client_version,
        }
    }

    /// Metadata from a stored value; `None` for an unknown state id.
    /// Partitions of an `Empty` record are ignored, as Kafka does.
    pub fn from_value(transactional_id: &str, v: &TxnValue) -> Option<Self> {
        let state = TxnState::from_id(v.status)?;
        let partitions = if state == TxnState::Empty {
            BTreeSet::new()
        } else {
            v.partitions
                .iter()
                .flatten()
                .flat_map(|(t, ids)| ids.iter().map(move |p| (t.clone(), *p)))
                .collect()
        };
        Some(Self {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            prev_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.timeout_ms,
            state,
            partitions,
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            client_version: v.client_transaction_version,
        })
    }

    /// The record that persists this metadata, its value at `log_version`
    /// ([`value_version`]).
    pub fn record(&self, log_version: i16) -> TxnRecord {
        TxnRecord {
            transactional_id: self.transactional_id.clone(),
            key: txn_store::key(&self.transactional_id),
            value: Some(txn_store::value(&self.to_value(), log_version)),
        }
    }

    /// The markers that finish this transaction, if it is preparing.
    fn marker_job(&self) -> Option<MarkerJob> {
        let commit = match self.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return None,
        };
        Some(MarkerJob {
            transactional_id: self.transactional_id.clone(),
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            commit,
            partitions: self.partitions.iter().cloned().collect(),
            coordinator_epoch: 0,
        })
    }

    /// Kafka's `prepareAbortOrCommit`: moves the transaction to
    /// PrepareCommit or PrepareAbort. At transaction version 2 the epoch is
    /// bumped (the markers carry the new one, fencing any late write of the
    /// old), and `next_producer_id` is the id to rotate to on completion
    /// when the epoch is exhausted. A version 2 abort may come with no
    /// partition added, and then starts its transaction now.
    fn prepare_end(
        &mut self,
        commit: bool,
        client_version: i16,
        next_producer_id: i64,
        now_ms: i64,
        log_version: i16,
    ) -> (TxnRecord, MarkerJob) {
        if client_version >= 2 {
            self.last_producer_epoch = self.producer_epoch;
            // Epochs handed out stay below the last two, so this never
            // saturates (a fence's second bump may reach the last one).
            self.producer_epoch = self.producer_epoch.saturating_add(1);
            if self.state != TxnState::Ongoing {
                self.start_ms = now_ms;
            }
        }
        self.next_producer_id = next_producer_id;
        self.client_version = client_version;
        self.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.last_update_ms = now_ms;
        let job = MarkerJob {
            transactional_id: self.transactional_id.clone(),
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            commit,
            partitions: self.partitions.iter().cloned().collect(),
            coordinator_epoch: 0,
        };
        (self.record(log_version), job)
    }

    /// Kafka's `prepareFenceProducerEpoch` followed by the abort it starts
    /// at the broker's `transaction_version`: the epoch is bumped so the
    /// current holder is fenced, and the transaction goes to PrepareAbort
    /// (at version 2 bumping once more, as that abort does). `None` if the
    /// epoch cannot grow (unreachable: epochs are handed out below the
    /// last two).
    fn fence_and_abort(
        &mut self,
        transaction_version: i16,
        now_ms: i64,
    ) -> Option<(TxnRecord, MarkerJob)> {
        self.producer_epoch = self.producer_epoch.checked_add(1)?;
        self.last_producer_epoch = NO_PRODUCER_EPOCH;
        Some(self.prepare_end(
            false,
            transaction_version,
            NO_PRODUCER_ID,
            now_ms,
            value_version(transaction_version),
        ))
    }

    /// The producer id and epoch the client continues with once this
    /// version 2 transaction completes (the rotated id at epoch 0 after an
    /// exhausted epoch).
    fn after_completion(&self) -> ProducerIdAndEpoch {
        if self.next_producer_id == NO_PRODUCER_ID {
            ProducerIdAndEpoch {
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
            }
        } else {
            ProducerIdAndEpoch {
                producer_id: self.next_producer_id,
                producer_epoch: 0,
            }
        }
    }
}

/// One record for `__transaction_state`: append `key`/`value` (a `None`
/// value is a tombstone) to partition
/// [`txn_store::partition_for`]`(transactional_id, partitions)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    /// The transactional id, to choose the partition.
    pub transactional_id: String,
    /// Encoded key.
    pub key: Bytes,
    /// Encoded value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// Control markers the runtime must write: a COMMIT (`commit`) or ABORT
/// marker for `producer_id`/`producer_epoch` to every partition, then call
/// [`TxnCoordinator::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    /// The transactional id.
    pub transactional_id: String,
    /// Producer id of the marker batch.
    pub producer_id: i64,
    /// Producer epoch of the marker batch.
    pub producer_epoch: i16,
    /// COMMIT if true, ABORT otherwise.
    pub commit: bool,
    /// The partitions to write to, sorted.
    pub partitions: Vec<(String, i32)>,
    /// The coordinator epoch in the marker (always 0 on one node).
    pub coordinator_epoch: i32,
}

/// The outcome of an operation: the answer for the client, plus what the
/// runtime must persist and write, which may be non-empty even when the
/// answer is an error (a fencing InitProducerId answers
/// CONCURRENT_TRANSACTIONS while it aborts the open transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<T> {
    /// The answer.
    pub reply: Result<T, ResponseError>,
    /// Records to append to `__transaction_state`, in order, before
    /// answering.
    pub records: Vec<TxnRecord>,
    /// Markers to write after the records are appended.
    pub markers: Vec<MarkerJob>,
}

impl<T> Step<T> {
    fn err(e: ResponseError) -> Self {
        Self {
            reply: Err(e),
            records: Vec::new(),
            markers: Vec::new(),
        }
    }
    fn ok(v: T, records: Vec<TxnRecord>) -> Self {
        Self {
            reply: Ok(v),
            records,
            markers: Vec::new(),
        }
    }
}

/// Records and markers from a periodic task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Records to append to `__transaction_state`, in order.
    pub records: Vec<TxnRecord>,
    /// Markers to write after the records are appended.
    pub markers: Vec<MarkerJob>,
}

/// A producer id and epoch handed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    /// Producer id.
    pub producer_id: i64,
    /// Epoch.
    pub producer_epoch: i16,
}

/// The transactional APIs whose old versions know INVALID_PRODUCER_EPOCH
/// but not PRODUCER_FENCED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnApi {
    /// InitProducerId (PRODUCER_FENCED from version 4).
    InitProducerId,
    /// AddPartitionsToTxn (from version 2).
    AddPartitionsToTxn,
    /// AddOffsetsToTxn (from version 2).
    AddOffsetsToTxn,
    /// EndTxn (from version 2).
    EndTxn,
}

/// The error a client of `api` at `version` understands: Kafka answers
/// INVALID_PRODUCER_EPOCH instead of PRODUCER_FENCED to versions older
/// than the one that introduced it.
pub fn compat_error(api: TxnApi, version: i16, e: ResponseError) -> ResponseError {
    let fenced_since = match api {
        TxnApi::InitProducerId => 4,
        TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn => 2,
    };
    if e == ResponseError::ProducerFenced && version < fenced_since {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

/// The error a Produce at `produce_version` gets for a partition whose
/// KIP-890 verification ([`TxnCoordinator::verify`]) failed with `e`, as
/// Kafka's `AddPartitionsToTxnManager` and `ReplicaManager` translate it:
/// producers expect INVALID_PRODUCER_EPOCH for a fenced epoch; clients
/// before Produce v11 do not know TRANSACTION_ABORTABLE and get
/// INVALID_TXN_STATE; retriable coordinator errors become
/// NOT_ENOUGH_REPLICAS, which every client retries without a metadata
/// refresh.
pub fn produce_error(e: ResponseError, produce_version: i16) -> ResponseError {
    match e {
        ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        ResponseError::TransactionAbortable if produce_version <= 10 => {
            ResponseError::InvalidTxnState
        }
        ResponseError::ConcurrentTransactions
        | ResponseError::NetworkException
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::NotCoordinator => ResponseError::NotEnoughReplicas,
        e => e,
    }
}

/// The transaction coordinator of this node: the metadata of every
/// transactional id.
#[derive(Debug, Default)]
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMetadata>,
}

impl TxnCoordinator {
    /// An empty coordinator.
    pub fn new(config: TxnConfig) -> Self {
        Self {
            config,
            txns: BTreeMap::new(),
        }
    }

    /// InitProducerId for a transactional id (the runtime answers requests
    /// without one with a fresh id and epoch 0 itself). `expected` is the
    /// KIP-360 `(producer_id, producer_epoch)` of a producer recovering
    /// from an error. On `Ok` the client gets the returned id and epoch.
    /// An open transaction is fenced: its epoch is bumped, its abort starts
    /// (a record and a [`MarkerJob`]), and the reply is
    /// CONCURRENT_TRANSACTIONS so that the client retries once the abort
    /// is complete.
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        alloc: &mut dyn FnMut() -> i64,
        now_ms: i64,
    ) -> Step<ProducerIdAndEpoch> {
        if transactional_id.is_empty() {
            return Step::err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Step::err(ResponseError::InvalidTransactionTimeout);
        }
        let tv = self.config.transaction_version;
        let meta = self
            .txns
            .entry(transactional_id.to_string())
            .or_insert_with(|| TxnMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id: alloc(),
                prev_producer_id: NO_PRODUCER_ID,
                next_producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                last_producer_epoch: NO_PRODUCER_EPOCH,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
                client_version: 0,
            });

        // KIP-360: an expected id other than ours is fenced, unless the
        // metadata is new, or it is the id we just rotated away from and
        // its epoch was exhausted (a retry of that rotation).
        if let Some((pid, epoch)) = expected {
            let valid = meta.producer_epoch == NO_PRODUCER_EPOCH
                || pid == meta.producer_id
                || (pid == meta.prev_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Step::err(ResponseError::ProducerFenced);
            }
        }

        match meta.state {
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::PrepareEpochFence
            | TxnState::Dead => Step::err(ResponseError::ConcurrentTransactions),
            TxnState::Ongoing => match meta.fence_and_abort(tv, now_ms) {
                Some((record, job)) => Step {
                    reply: Err(ResponseError::ConcurrentTransactions),
                    records: vec![record],
                    markers: vec![job],
                },
                None => Step::err(ResponseError::UnknownServerError),
            },
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let expected_epoch = expected.map(|(_, e)| e);
                let (pid, epoch, last_epoch) = if epoch_exhausted(meta.producer_epoch)
                    && expected_epoch.is_none_or(|e| e == meta.producer_epoch)
                {
                    // KIP-588: no epochs left; rotate to a new producer id.
                    let last = if expected.is_some() {
                        meta.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                    (alloc(), 0, last)
                } else {
                    match bump(meta, expected_epoch) {
                        Ok((epoch, last)) => (meta.producer_id, epoch, last),
                        Err(e) => return Step::err(e),
                    }
                };
                meta.prev_producer_id = meta.producer_id;
                meta.producer_id = pid;
                meta.producer_epoch = epoch;
                meta.last_producer_epoch = last_epoch;
                meta.timeout_ms = timeout_ms;
                meta.state = TxnState::Empty;
                meta.partitions.clear();
                meta.start_ms = -1;
                meta.last_update_ms = now_ms;
                Step::ok(
                    ProducerIdAndEpoch {
                        producer_id: pid,
                        producer_epoch: epoch,
                    },
                    vec![meta.record(value_version(tv))],
                )
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, whose partition is the
    /// group's `__consumer_offsets` partition), or at transaction version 2
    /// (`client_version` 2) a transactional write adding its own
    /// partitions. No record when the partitions are already in the open
    /// transaction.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        client_version: i16,
        now_ms: i64,
    ) -> Step<()> {
        let log_version = value_version(self.config.transaction_version);
        let Some(meta) = self.txns.get_mut(transactional_id) else {
            return Step::err(ResponseError::InvalidProducerIdMapping);
        };
        if meta.producer_id != producer_id {
            return Step::err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return Step::err(ResponseError::ProducerFenced);
        }
        match meta.state {
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::PrepareEpochFence
            | TxnState::Dead => Step::err(ResponseError::ConcurrentTransactions),
            TxnState::Ongoing if partitions.iter().all(|p| meta.partitions.contains(p)) => {
                Step::ok((), Vec::new())
            }
            TxnState::Ongoing
            | TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort => {
                if meta.state != TxnState::Ongoing {
                    meta.start_ms = now_ms;
                }
                meta.state = TxnState::Ongoing;
                meta.partitions.extend(partitions.iter().cloned());
                meta.last_update_ms = now_ms;
                meta.client_version = client_version;
                Step::ok((), vec![meta.record(log_version)])
            }
        }
    }

    /// KIP-890 part 1: whether a transactional Produce by
    /// `producer_id`/`producer_epoch` may write to each partition, in the
    /// order given. Errors are the coordinator's (as AddPartitionsToTxn
    /// v4 `verify_only` answers them); a Produce answers
    /// [`produce_error`] of them.
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Vec<((String, i32), Result<(), ResponseError>)> {
        let all = |e: ResponseError| partitions.iter().map(|p| (p.clone(), Err(e))).collect();
        if transactional_id.is_empty() {
            return all(ResponseError::InvalidRequest);
        }
        let Some(meta) = self.txns.get(transactional_id) else {
            return all(ResponseError::InvalidProducerIdMapping);
        };
        if meta.producer_id != producer_id {
            return all(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return all(ResponseError::ProducerFenced);
        }
        if matches!(
            meta.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        ) {
            return all(ResponseError::ConcurrentTransactions);
        }
        // Partitions are only held while the transaction is Ongoing, so
        // membership alone says "added to the open transaction".
        partitions
            .iter()
            .map(|p| {
                let r = if meta.partitions.contains(p) {
                    Ok(())
                } else {
                    Err(ResponseError::TransactionAbortable)
                };
                (p.clone(), r)
            })
            .collect()
    }

    /// EndTxn: starts the commit or abort of the open transaction (a
    /// record and a [`MarkerJob`]). At transaction version 2 (`version2`,
    /// EndTxn v5+) the epoch is bumped (a new producer id is taken from
    /// `alloc` when it is exhausted; a negative one means none could be
    /// reserved: COORDINATOR_NOT_AVAILABLE, nothing changed) and the reply
    /// is the producer id and epoch the client continues with; at version
    /// 0/1 it is the current ones. A retry after the same outcome completed is `Ok` with nothing
    /// to do. Map PRODUCER_FENCED for old clients with [`compat_error`].
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        commit: bool,
        version2: bool,
        alloc: &mut dyn FnMut() -> i64,
        now_ms: i64,
    ) -> Step<ProducerIdAndEpoch> {
        if transactional_id.is_empty() {
            return Step::err(ResponseError::InvalidRequest);
        }
        let log_version = value_version(self.config.transaction_version);
        let Some(meta) = self.txns.get_mut(transactional_id) else {
            return Step::err(ResponseError::InvalidProducerIdMapping);
        };
        if version2 {
            return end_txn_v2(
                meta,
                producer_id,
                producer_epoch,
                commit,
                alloc,
                now_ms,
                log_version,
            );
        }
        if meta.producer_id != producer_id {
            return Step::err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return Step::err(ResponseError::ProducerFenced);
        }
        let current = ProducerIdAndEpoch {
            producer_id,
            producer_epoch,
        };
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                let (record, job) =
                    meta.prepare_end(commit, 0, NO_PRODUCER_ID, now_ms, log_version);
                Step {
                    reply: Ok(current),
                    records: vec![record],
                    markers: vec![job],
                }
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Step::ok(current, Vec::new())
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Step::err(ResponseError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence | TxnState::Dead, _) => {
                Step::err(ResponseError::ConcurrentTransactions)
            }
            (
                TxnState::Empty
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
                | TxnState::PrepareCommit
                | TxnState::PrepareAbort,
                _,
            ) => Step::err(ResponseError::InvalidTxnState),
        }
    }

    /// Called once the markers of a [`MarkerJob`] are written:
    /// PrepareCommit becomes CompleteCommit and PrepareAbort CompleteAbort,
    /// with no partitions (and a version 2 transaction that exhausted its
    /// epoch moves to its next producer id, at epoch 0). Returns the record
    /// to append, or `None` if the transaction is not preparing (nothing to
    /// do).
    pub fn complete(&mut self, transactional_id: &str, now_ms: i64) -> Option<TxnRecord> {
        let log_version = value_version(self.config.transaction_version);
        let meta = self.txns.get_mut(transactional_id)?;
        meta.state = match meta.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        if meta.next_producer_id != NO_PRODUCER_ID {
            // The client's last epoch stays the one it was last given.
            meta.prev_producer_id = meta.producer_id;
            meta.producer_id = meta.next_producer_id;
            meta.producer_epoch = 0;
            meta.next_producer_id = NO_PRODUCER_ID;
        }
        meta.partitions.clear();
        meta.last_update_ms = now_ms;
        Some(meta.record(log_version))
    }

    /// Aborts every Ongoing transaction whose timeout has passed. As in
    /// Kafka the epoch is bumped first, so the producer that let it time
    /// out is fenced (its EndTxn gets PRODUCER_FENCED).
    pub fn abort_timed_out(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let tv = self.config.transaction_version;
        for meta in self.txns.values_mut() {
            let deadline = meta.start_ms.saturating_add(i64::from(meta.timeout_ms));
            if meta.state == TxnState::Ongoing && deadline < now_ms {
                if let Some((record, job)) = meta.fence_and_abort(tv, now_ms) {
                    fx.records.push(record);
                    fx.markers.push(job);
                }
            }
        }
        fx
    }

    /// Removes transactional ids idle (Empty, CompleteCommit or
    /// CompleteAbort) for `transactional.id.expiration.ms`; returns their
    /// tombstones.
    pub fn expire_ids(&mut self, now_ms: i64) -> Vec<TxnRecord> {
        let cutoff = now_ms.saturating_sub(self.config.id_expiration_ms);
        let expired: Vec<String> = self
            .txns
            .values()
            .filter(|m| m.state.expirable() && m.last_update_ms <= cutoff)
            .map(|m| m.transactional_id.clone())
            .collect();
        expired
            .into_iter()
            .map(|id| {
                self.txns.remove(&id);
                TxnRecord {
                    key: txn_store::key(&id),
                    transactional_id: id,
                    value: None,
                }
            })
            .collect()
    }

    /// Replays one `__transaction_state` record at start-up: the latest
    /// record of an id wins and a tombstone (or a `Dead` record) removes it.
    /// Returns false for a record that cannot be decoded (it is skipped).
    pub fn load(&mut self, key: &Bytes, value: Option<&Bytes>) -> bool {
        let Some(id) = txn_store::decode_key(key) else {
            return false;
        };
        let Some(value) = value else {
            self.txns.remove(&id);
            return true;
        };
        let Some(meta) =
            txn_store::decode_value(value).and_then(|v| TxnMetadata::from_value(&id, &v))
        else {
            return false;
        };
        match meta.state {
            TxnState::Dead => {
                self.txns.remove(&id);
            }
            // Kafka never persists a fence in progress; refuse rather than
            // guess.
            TxnState::PrepareEpochFence => return false,
            _ => {
                self.txns.insert(id, meta);
            }
        }
        true
    }

    /// The markers of every transaction left preparing (after [`load`],
    /// these finish what a crash interrupted); call [`complete`] after each.
    ///
    /// [`load`]: TxnCoordinator::load
    /// [`complete`]: TxnCoordinator::complete
    pub fn pending_markers(&self) -> Vec<MarkerJob> {
        self.txns
            .values()
            .filter_map(TxnMetadata::marker_job)
            .collect()
    }

    /// The metadata of a transactional id (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// ListTransactions: ids matching every filter given (an empty `states`
    /// or `producer_ids` matches all; `min_duration_ms` < 0 matches all,
    /// else only transactions running longer than it), sorted by id.
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
        now_ms: i64,
    ) -> Vec<&TxnMetadata> {
        self.txns
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| states.is_empty() || states.contains(&m.state))
            .filter(|m| min_duration_ms < 0 || now_ms.saturating_sub(m.start_ms) > min_duration_ms)
            .collect()
    }

    /// The transactional id holding `producer_id` (a scan: there are few
    /// transactional ids and this serves admin requests).
    pub fn by_producer(&self, producer_id: i64) -> Option<&TxnMetadata> {
        self.txns.values().find(|m| m.producer_id == producer_id)
    }

    /// Every transactional id's metadata, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }
}

/// EndTxn at transaction version 2, Kafka's `endTransaction`: the epoch
/// of the request tells a retry from the next EndTxn (a retry carries the
/// epoch before the bump, or the last epoch of a rotated producer id), and
/// an abort with no transaction open still bumps the epoch:
///
/// | state          | abort, retry | abort, current | commit, retry | commit, current |
/// |----------------|--------------|----------------|---------------|-----------------|
/// | Empty          | fenced       | bump           | fenced        | invalid state   |
/// | CompleteAbort  | ok           | bump           | invalid state | invalid state   |
/// | CompleteCommit | invalid state| bump           | ok            | invalid state   |
fn end_txn_v2(
    meta: &mut TxnMetadata,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    alloc: &mut dyn FnMut() -> i64,
    now_ms: i64,
    log_version: i16,
) -> Step<ProducerIdAndEpoch> {
    let retry_on_overflow = meta.prev_producer_id == producer_id
        && producer_epoch == i16::MAX - 1
        && meta.producer_epoch == 0;
    let retry_on_bump = producer_epoch.checked_add(1) == Some(meta.producer_epoch);
    let retry = retry_on_bump || retry_on_overflow;
    let valid_epoch = match meta.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
        TxnState::CompleteCommit | TxnState::CompleteAbort => {
            retry || producer_epoch == meta.producer_epoch
        }
        _ => producer_epoch == meta.producer_epoch,
    };
    if meta.producer_id != producer_id && !retry_on_overflow {
        return Step::err(ResponseError::InvalidProducerIdMapping);
    }
    if !valid_epoch {
        return Step::err(ResponseError::ProducerFenced);
    }
    let prepare_commit = match (meta.state, commit) {
        (TxnState::Ongoing, _) => Some(commit),
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if retry => {
            let current = ProducerIdAndEpoch {
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
            };
            return Step::ok(current, Vec::new());
        }
        (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) if !retry => {
            Some(false)
        }
        (TxnState::PrepareCommit, true)
        | (TxnState::PrepareAbort, false)
        | (TxnState::PrepareEpochFence | TxnState::Dead, _) => None,
        _ => return Step::err(ResponseError::InvalidTxnState),
    };
    let Some(commit) = prepare_commit else {
        return Step::err(ResponseError::ConcurrentTransactions);
    };
    let next = if epoch_exhausted(meta.producer_epoch) {
        match alloc() {
            id if id < 0 => return Step::err(ResponseError::CoordinatorNotAvailable),
            id => id,
        }
    } else {
        NO_PRODUCER_ID
    };
    let (record, job) = meta.prepare_end(commit, 2, next, now_ms, log_version);
    Step {
        reply: Ok(meta.after_completion()),
        records: vec![record],
        markers: vec![job],
    }
}

/// Kafka's `prepareIncrementProducerEpoch`: the (epoch, last epoch) after
/// an InitProducerId with the KIP-360 expected epoch `expected`.
fn bump(meta: &TxnMetadata, expected: Option<i16>) -> Result<(i16, i16), ResponseError> {
    // Kafka throws when asked to bump an exhausted epoch here (an expected
    // epoch that is not the current one); that producer is fenced.
    let bumped = || {
        if epoch_exhausted(meta.producer_epoch) {
            None
        } else {
            meta.producer_epoch.checked_add(1)
        }
    };
    match expected {
        None => bumped()
            .map(|e| (e, NO_PRODUCER_EPOCH))
            .ok_or(ResponseError::ProducerFenced),
        Some(e) if meta.producer_epoch == NO_PRODUCER_EPOCH || e == meta.producer_epoch => bumped()
            .map(|b| (b, meta.producer_epoch))
            .ok_or(ResponseError::ProducerFenced),
        // A retry of a bump whose answer was lost: same epoch, no bump.
        Some(e) if e == meta.last_producer_epoch => {
            Ok((meta.producer_epoch, meta.last_producer_epoch))
        }
        Some(_) => Err(ResponseError::ProducerFenced),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "txn";
    const TIMEOUT: i32 = 60_000;

    /// A coordinator and a producer-id allocator counting from 1000.
    struct Fixture {
        c: TxnCoordinator,
        next_pid: i64,
        /// Every record persisted, in order, as the runtime would append.
        log: Vec<TxnRecord>,
    }

    impl Fixture {
        /// At `transaction.version` 1 (clients at version 0/1), as most
        /// tests below are.
        fn new() -> Self {
            Self::at(1)
        }

        /// At `transaction.version` `tv`; at 2 the fixture's clients speak
        /// version 2 too (EndTxn v5, partitions added by their writes).
        fn at(tv: i16) -> Self {
            Self {
                c: TxnCoordinator::new(TxnConfig {
                    transaction_version: tv,
                    ..TxnConfig::default()
                }),
                next_pid: 1000,
                log: Vec::new(),
            }
        }

        fn v2(&self) -> bool {
            self.c.config.transaction_version >= 2
        }

        fn init(&mut self, expected: Option<(i64, i16)>, now: i64) -> Step<ProducerIdAndEpoch> {
            let mut next = self.next_pid;
            let mut alloc = || {
                next += 1;
                next - 1
            };
            let step = self
                .c
                .init_producer_id(T, TIMEOUT, expected, &mut alloc, now);
            self.next_pid = next;
            self.log.extend(step.records.iter().cloned());
            step
        }

        fn init_ok(&mut self, now: i64) -> ProducerIdAndEpoch {
            match self.init(None, now).reply {
                Ok(p) => p,
                Err(e) => panic!("init failed: {e:?}"),
            }
        }

        fn add(&mut self, p: ProducerIdAndEpoch, parts: &[(&str, i32)], now: i64) -> Step<()> {
            let parts: Vec<(String, i32)> =
                parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
            let client_version = if self.v2() { 2 } else { 0 };
            let step = self.c.add_partitions(
                T,
                p.producer_id,
                p.producer_epoch,
                &parts,
                client_version,
                now,
            );
            self.log.extend(step.records.iter().cloned());
            step
        }

        /// EndTxn; at version 2 the reply is the producer id and epoch to
        /// continue with.
        fn end_v(
            &mut self,
            p: ProducerIdAndEpoch,
            commit: bool,
            now: i64,
        ) -> Step<ProducerIdAndEpoch> {
            let v2 = self.v2();
            let mut next = self.next_pid;
            let mut alloc = || {
                next += 1;
                next - 1
            };
            let step = self.c.end_txn(
                T,
                (p.producer_id, p.producer_epoch),
                commit,
                v2,
                &mut alloc,
                now,
            );
            self.next_pid = next;
            self.log.extend(step.records.iter().cloned());
            step
        }

        fn end(&mut self, p: ProducerIdAndEpoch, commit: bool, now: i64) -> Step<()> {
            let s = self.end_v(p, commit, now);
            Step {
                reply: s.reply.map(|_| ()),
                records: s.records,
                markers: s.markers,
            }
        }

        fn complete(&mut self, now: i64) {
            let r = self.c.complete(T, now);
            assert!(r.is_some(), "nothing to complete");
            self.log.extend(r);
        }

        fn state(&self) -> Option<TxnState> {
            self.c.describe(T).map(|m| m.state)
        }

        /// A coordinator rebuilt from the persisted records, as at start-up.
        fn replay(&self) -> TxnCoordinator {
            let mut c = TxnCoordinator::new(self.c.config.clone());
            for r in &self.log {
                assert!(c.load(&r.key, r.value.as_ref()));
            }
            c
        }
    }

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    #[test]
    fn state_ids_and_names_are_kafkas() {
        let named: Vec<(i8, &str)> = TxnState::ALL.iter().map(|s| (s.id(), s.name())).collect();
        assert_eq!(
            named,
            vec![
                (0, "Empty"),
                (1, "Ongoing"),
                (2, "PrepareCommit"),
                (3, "PrepareAbort"),
                (4, "CompleteCommit"),
                (5, "CompleteAbort"),
                (6, "Dead"),
                (7, "PrepareEpochFence"),
            ]
        );
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_name("ongoing"), None);
    }

    #[test]
    fn new_id_gets_fresh_producer_id_at_epoch_zero() {
        let mut f = Fixture::new();
        let p = f.init_ok(1);
        assert_eq!((p.producer_id, p.producer_epoch), (1000, 0));
        assert_eq!(f.state(), Some(TxnState::Empty));
        assert_eq!(f.log.len(), 1);
        // A second init of an idle id bumps the epoch of the same id.
        let p = f.init_ok(2);
        assert_eq!((p.producer_id, p.producer_epoch), (1000, 1));
    }

    #[test]
    fn timeout_is_validated() {
        let mut f = Fixture::new();
        let mut alloc = || 1;
        for bad in [0, -5, 900_001] {
            let s = f.c.init_producer_id(T, bad, None, &mut alloc, 0);
            assert_eq!(s.reply, Err(ResponseError::InvalidTransactionTimeout));
            assert!(s.records.is_empty());
        }
        let s = f.c.init_producer_id(T, 900_000, None, &mut alloc, 0);
        assert!(s.reply.is_ok());
        let s = f.c.init_producer_id("", 1000, None, &mut alloc, 0);
        assert_eq!(s.reply, Err(ResponseError::InvalidRequest));
    }

    #[test]
    fn happy_commit() {
        let mut f = Fixture::new();
        let p = f.init_ok(1);
        let s = f.add(p, &[("a", 0), ("b", 1)], 10);
        assert_eq!((s.reply, s.records.len()), (Ok(()), 1));
        assert_eq!(f.state(), Some(TxnState::Ongoing));
        assert_eq!(f.c.describe(T).map(|m| m.start_ms), Some(10));
        // Adding partitions already present persists nothing.
        let s = f.add(p, &[("a", 0)], 11);
        assert_eq!((s.reply, s.records.len()), (Ok(()), 0));
        // A new partition keeps the start time.
        f.add(p, &[("a", 1)], 12);
        assert_eq!(f.c.describe(T).map(|m| m.start_ms), Some(10));

        let s = f.end(p, true, 20);
        assert_eq!(s.reply, Ok(()));
        assert_eq!(s.records.len(), 1);
        assert_eq!(
            s.markers,
            vec![MarkerJob {
                transactional_id: T.into(),
                producer_id: 1000,
                producer_epoch: 0,
                commit: true,
                partitions: vec![tp("a", 0), tp("a", 1), tp("b", 1)],
                coordinator_epoch: 0,
            }]
        );
        assert_eq!(f.state(), Some(TxnState::PrepareCommit));
        f.complete(21);
        let m = f.c.describe(T).cloned();
        assert_eq!(m.as_ref().map(|m| m.state), Some(TxnState::CompleteCommit));
        assert_eq!(m.map(|m| m.partitions.is_empty()), Some(true));
        // A retried commit is fine and does nothing; an abort is refused.
        let s = f.end(p, true, 22);
        assert_eq!((s.reply, s.records.len(), s.markers.len()), (Ok(()), 0, 0));
        assert_eq!(
            f.end(p, false, 22).reply,
            Err(ResponseError::InvalidTxnState)
        );
        // The next transaction starts from CompleteCommit.
        f.add(p, &[("c", 0)], 30);
        assert_eq!(f.c.describe(T).map(|m| m.start_ms), Some(30));
        assert_eq!(f.state(), Some(TxnState::Ongoing));
    }

    #[test]
    fn happy_abort() {
        let mut f = Fixture::new();
        let p = f.init_ok(1);
        f.add(p, &[("a", 0)], 10);
        let s = f.end(p, false, 20);
        assert_eq!(s.reply, Ok(()));
        assert_eq!(s.markers.len(), 1);
        assert!(!s.markers[0].commit);
        assert_eq!(f.state(), Some(TxnState::PrepareAbort));
        f.complete(21);
        assert_eq!(f.state(), Some(TxnState::CompleteAbort));
        assert_eq!(f.end(p, false, 22).reply, Ok(()));
        assert_eq!(
            f.end(p, true, 22).reply,
            Err(ResponseError::InvalidTxnState)
        );
        // Nothing left to complete.
        assert_eq!(f.c.complete(T, 23), None);
    }

    #[test]
    fn end_txn_refusals() {
        let mut f = Fixture::new();
        let p = f.init_ok(1);
        // Empty: no transaction to end.
        assert_eq!(f.end(p, true, 2).reply, Err(ResponseError::InvalidTxnState));
        f.add(p, &[("a", 0)], 3);
        let wrong_pid = ProducerIdAndEpoch {
            producer_id: 7,
            producer_epoch: 0,
        };
        assert_eq!(
            f.end(wrong_pid, true, 4).reply,
            Err(ResponseError::InvalidProducerIdMapping)
        );
        let old = ProducerIdAndEpoch {
            producer_epoch: 5,
            ..p
        };
        assert_eq!(
            f.end(old, true, 4).reply,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            f.c.end_txn("nope", (1, 0), true, false, &mut || 0, 4).reply,
            Err(ResponseError::InvalidProducerIdMapping)
        );
        // Mismatched outcome while preparing.
        f.end(p, true, 5);
        assert_eq!(
            f.end(p, false, 6).reply,
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(f.state(), Some(TxnState::PrepareCommit));
    }

    #[test]
    fn concurrent_transactions_while_preparing() {
        for commit in [true, false] {
            let mut f = Fixture::new();
            let p = f.init_ok(1);
            f.add(p, &[("a", 0)], 2);
            f.end(p, commit, 3);
            let before = f.log.len();
            assert_eq!(
                f.end(p, commit, 4).reply,
                Err(ResponseError::ConcurrentTransactions)
            );
            assert_eq!(
                f.add(p, &[("b", 0)], 4).reply,
                Err(ResponseError::ConcurrentTransactions)
            );
            assert_eq!(
                f.init(None, 4).reply,
                Err(ResponseError::ConcurrentTransactions)
            );
            assert_eq!(
                f.init(Some((p.producer_id, p.producer_epoch)), 4).reply,
                Err(ResponseError::ConcurrentTransactions)
            );
            assert_eq!(f.log.len(), before, "refusals persist nothing");
            f.complete(5);
            // Once complete, the retried init succeeds with a bump.
            assert_eq!(f.init_ok(6).producer_epoch, 1);
        }
    }

    #[test]
    fn add_partitions_refusals() {
        let mut f = Fixture::new();
        let parts = [tp("a", 0)];
        assert_eq!(
            f.c.add_partitions(T, 1000, 0, &parts, 0, 1).reply,
            Err(ResponseError::InvalidProducerIdMapping)
        );
        let p = f.init_ok(1);
        assert_eq!(
            f.c.add_partitions(T, 999, 0, &parts, 0, 1).reply,
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            f.c.add_partitions(T, p.producer_id, 3, &parts, 0, 1).reply,
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn second_init_while_ongoing_fences_and_aborts() {
        let mut f = Fixture::new();
        let zombie = f.init_ok(1);
        f.add(zombie, &[("a", 0), ("b", 2)], 2);
        let s = f.init(None, 3);
        assert_eq!(s.reply, Err(ResponseError::ConcurrentTransactions));
        assert_eq!(s.records.len(), 1);
        assert_eq!(
            s.markers,
            vec![MarkerJob {
                transactional_id: T.into(),
                producer_id: 1000,
                producer_epoch: 1,
                commit: false,
                partitions: vec![tp("a", 0), tp("b", 2)],
                coordinator_epoch: 0,
            }]
        );
        assert_eq!(f.state(), Some(TxnState::PrepareAbort));
        // The persisted record says PrepareAbort at the bumped epoch.
        let v = s.records[0]
            .value
            .as_ref()
            .and_then(txn_store::decode_value);
        assert_eq!(v.map(|v| (v.status, v.producer_epoch)), Some((3, 1)));
        // The zombie is fenced everywhere.
        assert_eq!(
            f.end(zombie, true, 4).reply,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            f.add(zombie, &[("c", 0)], 4).reply,
            Err(ResponseError::ProducerFenced)
        );
        // Client retries until the abort is complete, then gets epoch 2.
        assert_eq!(
            f.init(None, 4).reply,
            Err(ResponseError::ConcurrentTransactions)
        );
        f.complete(5);
        assert_eq!(f.state(), Some(TxnState::CompleteAbort));
        let p = f.init_ok(6);
        assert_eq!((p.producer_id, p.producer_epoch), (1000, 2));
        assert_eq!(f.state(), Some(TxnState::Empty));
    }

    #[test]
    fn epoch_exhaustion_rotates_producer_id() {
        let mut f = Fixture::new();
        f.init_ok(1);
        // Jump to the last epoch Kafka hands out.
        if let Some(m) = f.c.txns.get_mut(T) {
            m.producer_epoch = i16::MAX - 2;
        }
        let p = f.init_ok(2);
        assert_eq!((p.producer_id, p.producer_epoch), (1000, i16::MAX - 1));
        let p = f.init_ok(3);
        assert_eq!((p.producer_id, p.producer_epoch), (1001, 0));
        let m = f.c.describe(T).cloned();
        assert_eq!(m.as_ref().map(|m| m.prev_producer_id), Some(1000));
        assert_eq!(m.map(|m| m.last_producer_epoch), Some(NO_PRODUCER_EPOCH));
    }

    #[test]
    fn exhausted_epoch_kip360_retry_of_rotation() {
        let mut f = Fixture::new();
        f.init_ok(1);
        if let Some(m) = f.c.txns.get_mut(T) {
            m.producer_epoch = i16::MAX - 1;
        }
        let old = (1000, i16::MAX - 1);
        let p = f.init(Some(old), 2).reply;
        assert_eq!(
            p,
            Ok(ProducerIdAndEpoch {
                producer_id: 1001,
                producer_epoch: 0
            })
        );
        // The response was lost; the same request again gets the same
        // answer without another rotation.
        let again = f.init(Some(old), 3).reply;
        assert_eq!(again, p);
        assert_eq!(f.next_pid, 1002);
    }

    #[test]
    fn kip360_bump_and_retry() {
        let mut f = Fixture::new();
        let p0 = f.init_ok(1);
        let expected = Some((p0.producer_id, p0.producer_epoch));
        let p1 = f.init(expected, 2).reply;
        assert_eq!(p1.map(|p| p.producer_epoch), Ok(1));
        // Retry of the same request (answer lost): no second bump.
        assert_eq!(f.init(expected, 3).reply.map(|p| p.producer_epoch), Ok(1));
        // The producer now at epoch 1 may bump again.
        assert_eq!(
            f.init(Some((1000, 1)), 4).reply.map(|p| p.producer_epoch),
            Ok(2)
        );
        // A stale epoch, or another producer id, is fenced.
        assert_eq!(
            f.init(Some((1000, 0)), 5).reply,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            f.init(Some((77, 2)), 5).reply,
            Err(ResponseError::ProducerFenced)
        );
        // A plain init (new producer) resets the retry window.
        assert_eq!(f.init_ok(6).producer_epoch, 3);
        assert_eq!(
            f.init(Some((1000, 2)), 7).reply,
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn kip360_expected_on_new_id_is_accepted() {
        // A producer recovering from UNKNOWN_PRODUCER_ID after its id
        // expired: the metadata is new, so any expected id is fine.
        let mut f = Fixture::new();
        let p = f.init(Some((5, 3)), 1).reply;
        assert_eq!(
            p,
            Ok(ProducerIdAndEpoch {
                producer_id: 1000,
                producer_epoch: 0
            })
        );
    }

    #[test]
    fn timeout_abort_bumps_epoch_and_fences_the_zombie() {
        let mut f = Fixture::new();
        let p = f.init_ok(0);
        f.add(p, &[("a", 0)], 100);
        // Not yet: the deadline is start + timeout, exclusive.
        assert_eq!(
            f.c.abort_timed_out(100 + i64::from(TIMEOUT)),
            Effects::default()
        );
        let fx = f.c.abort_timed_out(101 + i64::from(TIMEOUT));
        assert_eq!(fx.records.len(), 1);
        assert_eq!(fx.markers.len(), 1);
        assert_eq!(
            (fx.markers[0].producer_epoch, fx.markers[0].commit),
            (1, false)
        );
        f.log.extend(fx.records);
        assert_eq!(f.state(), Some(TxnState::PrepareAbort));
        f.complete(100_000);
        assert_eq!(
            f.end(p, true, 100_001).reply,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            f.end(p, false, 100_001).reply,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            compat_error(TxnApi::EndTxn, 1, ResponseError::ProducerFenced),
            ResponseError::InvalidProducerEpoch
        );
        // Nothing else times out.
        assert_eq!(f.c.abort_timed_out(1_000_000), Effects::default());
    }

    #[test]
    fn v2_every_end_bumps_the_epoch_and_retries_are_answered() {
        let mut f = Fixture::at(2);
        let p0 = f.init_ok(1);
        assert_eq!(p0.producer_epoch, 0);
        f.add(p0, &[("a", 0)], 2);
        let s = f.end_v(p0, true, 3);
        let p1 = ProducerIdAndEpoch {
            producer_epoch: 1,
            ..p0
        };
        assert_eq!(s.reply, Ok(p1));
        // The markers carry the new epoch, fencing late writes of the old.
        assert_eq!(
            s.markers
                .iter()
                .map(|j| (j.producer_epoch, j.commit))
                .collect::<Vec<_>>(),
            vec![(1, true)]
        );
        // A write of the old epoch arriving now is fenced.
        assert_eq!(
            f.c.verify(T, p0.producer_id, 0, &[tp("a", 0)])[0].1,
            Err(ResponseError::ProducerFenced)
        );
        // A retry (the old epoch) while the markers are written.
        assert_eq!(
            f.end_v(p0, true, 4).reply,
            Err(ResponseError::ConcurrentTransactions)
        );
        f.complete(5);
        // A retry after completion gets the same answer, with nothing to do.
        let s = f.end_v(p0, true, 6);
        assert_eq!((s.reply, s.records.len()), (Ok(p1), 0));
        // A retry with the other outcome is refused.
        assert_eq!(
            f.end_v(p0, false, 6).reply,
            Err(ResponseError::InvalidTxnState)
        );
        // The next transaction runs at the new epoch; the old one is fenced.
        assert_eq!(
            f.add(p0, &[("b", 0)], 7).reply,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(f.add(p1, &[("b", 0)], 7).reply, Ok(()));
        assert_eq!(
            f.c.describe(T).map(|m| m.client_version),
            Some(2),
            "the transaction records its client's version"
        );
        let p2 = ProducerIdAndEpoch {
            producer_epoch: 2,
            ..p1
        };
        assert_eq!(f.end_v(p1, false, 8).reply, Ok(p2));
        f.complete(9);
        assert_eq!(f.state(), Some(TxnState::CompleteAbort));
        let c = f.replay();
        assert_eq!(
            c.describe(T),
            f.c.describe(T)
                .map(|m| TxnMetadata {
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                    ..m.clone()
                })
                .as_ref()
        );
    }

    #[test]
    fn v2_abort_without_a_transaction_bumps_commit_is_refused() {
        let mut f = Fixture::at(2);
        let p0 = f.init_ok(1);
        assert_eq!(
            f.end_v(p0, true, 2).reply,
            Err(ResponseError::InvalidTxnState)
        );
        let s = f.end_v(p0, false, 2);
        assert_eq!(s.reply.map(|p| p.producer_epoch), Ok(1));
        // Nothing was written, so no partition gets a marker.
        assert_eq!(
            s.markers.iter().map(|j| j.partitions.len()).sum::<usize>(),
            0
        );
        f.complete(3);
        assert_eq!(f.state(), Some(TxnState::CompleteAbort));
        // A stale epoch from before the init is fenced, an unknown id is
        // not ours.
        let stale = ProducerIdAndEpoch {
            producer_epoch: 5,
            ..p0
        };
        assert_eq!(
            f.end_v(stale, false, 4).reply,
            Err(ResponseError::ProducerFenced)
        );
        let other = ProducerIdAndEpoch {
            producer_id: 7,
            ..p0
        };
        assert_eq!(
            f.end_v(other, false, 4).reply,
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn v2_exhausted_epoch_rotates_the_producer_id_at_the_end() {
        let mut f = Fixture::at(2);
        let p0 = f.init_ok(1);
        let last = i16::MAX - 1;
        if let Some(m) = f.c.txns.get_mut(T) {
            m.producer_epoch = last;
        }
        let old = ProducerIdAndEpoch {
            producer_epoch: last,
            ..p0
        };
        f.add(old, &[("a", 0)], 2);
        let s = f.end_v(old, true, 3);
        let rotated = ProducerIdAndEpoch {
            producer_id: 1001,
            producer_epoch: 0,
        };
        assert_eq!(s.reply, Ok(rotated));
        assert_eq!(
            s.markers
                .iter()
                .map(|j| (j.producer_id, j.producer_epoch))
                .collect::<Vec<_>>(),
            vec![(p0.producer_id, i16::MAX)]
        );
        f.complete(4);
        let m = f.c.describe(T).cloned();
        assert_eq!(
            m.map(|m| (
                m.producer_id,
                m.producer_epoch,
                m.prev_producer_id,
                m.next_producer_id
            )),
            Some((1001, 0, p0.producer_id, NO_PRODUCER_ID))
        );
        // A retry with the exhausted id and epoch gets the rotated ones.
        let s = f.end_v(old, true, 5);
        assert_eq!((s.reply, s.records.len()), (Ok(rotated), 0));
        // The rotated producer carries on.
        assert_eq!(f.add(rotated, &[("a", 0)], 6).reply, Ok(()));
        let c = f.replay();
        assert_eq!(
            c.describe(T).map(|m| (m.producer_id, m.producer_epoch)),
            Some((1001, 0))
        );
    }

    #[test]
    fn v2_timeout_abort_fences_then_bumps_again() {
        let mut f = Fixture::at(2);
        let p = f.init_ok(0);
        f.add(p, &[("a", 0)], 100);
        let fx = f.c.abort_timed_out(101 + i64::from(TIMEOUT));
        assert_eq!(
            fx.markers
                .iter()
                .map(|j| (j.producer_epoch, j.commit))
                .collect::<Vec<_>>(),
            vec![(2, false)]
        );
        f.log.extend(fx.records);
        f.complete(100_000);
        assert_eq!(
            f.end_v(p, true, 100_001).reply,
            Err(ResponseError::ProducerFenced)
        );
        // Records are written at value version 1 from transaction.version 1.
        assert!(f
            .log
            .iter()
            .filter_map(|r| r.value.as_ref())
            .all(|v| v.get(..2) == Some(&[0, 1][..])));
    }

    #[test]
    fn verify_cases() {
        let mut f = Fixture::new();
        let a = [tp("a", 0)];
        let ab = [tp("a", 0), tp("b", 0)];
        assert_eq!(
            f.c.verify(T, 1000, 0, &a),
            vec![(tp("a", 0), Err(ResponseError::InvalidProducerIdMapping))]
        );
        let p = f.init_ok(1);
        // Not added (the transaction is Empty).
        assert_eq!(
            f.c.verify(T, 1000, 0, &a),
            vec![(tp("a", 0), Err(ResponseError::TransactionAbortable))]
        );
        f.add(p, &[("a", 0)], 2);
        assert_eq!(
            f.c.verify(T, 1000, 0, &ab),
            vec![
                (tp("a", 0), Ok(())),
                (tp("b", 0), Err(ResponseError::TransactionAbortable))
            ]
        );
        assert_eq!(
            f.c.verify(T, 999, 0, &a),
            vec![(tp("a", 0), Err(ResponseError::InvalidProducerIdMapping))]
        );
        assert_eq!(
            f.c.verify(T, 1000, 1, &a),
            vec![(tp("a", 0), Err(ResponseError::ProducerFenced))]
        );
        f.end(p, true, 3);
        assert_eq!(
            f.c.verify(T, 1000, 0, &a),
            vec![(tp("a", 0), Err(ResponseError::ConcurrentTransactions))]
        );
        f.complete(4);
        // After the commit the partition is no longer in a transaction.
        assert_eq!(
            f.c.verify(T, 1000, 0, &a),
            vec![(tp("a", 0), Err(ResponseError::TransactionAbortable))]
        );
    }

    #[test]
    fn produce_error_translation() {
        use ResponseError::*;
        assert_eq!(produce_error(ProducerFenced, 9), InvalidProducerEpoch);
        assert_eq!(produce_error(TransactionAbortable, 10), InvalidTxnState);
        assert_eq!(
            produce_error(TransactionAbortable, 11),
            TransactionAbortable
        );
        assert_eq!(produce_error(ConcurrentTransactions, 9), NotEnoughReplicas);
        assert_eq!(
            produce_error(InvalidProducerIdMapping, 9),
            InvalidProducerIdMapping
        );
        assert_eq!(
            compat_error(TxnApi::InitProducerId, 3, ProducerFenced),
            InvalidProducerEpoch
        );
        assert_eq!(
            compat_error(TxnApi::InitProducerId, 4, ProducerFenced),
            ProducerFenced
        );
        assert_eq!(
            compat_error(TxnApi::AddPartitionsToTxn, 1, InvalidTxnState),
            InvalidTxnState
        );
    }

    /// Drives a fixture into `state` (with partitions a-0 and b-1 where the
    /// state holds any).
    fn fixture_in(state: TxnState) -> (Fixture, ProducerIdAndEpoch) {
        let mut f = Fixture::new();
        let p = f.init_ok(1);
        if state != TxnState::Empty {
            f.add(p, &[("a", 0), ("b", 1)], 10);
        }
        match state {
            TxnState::PrepareCommit | TxnState::CompleteCommit => {
                f.end(p, true, 20);
            }
            TxnState::PrepareAbort | TxnState::CompleteAbort => {
                f.end(p, false, 20);
            }
            _ => {}
        }
        if matches!(state, TxnState::CompleteCommit | TxnState::CompleteAbort) {
            f.complete(30);
        }
        assert_eq!(f.state(), Some(state));
        (f, p)
    }

    #[test]
    fn restart_in_every_state_restores_it() {
        for state in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            let (f, _) = fixture_in(state);
            let c = f.replay();
            let (before, after) = (f.c.describe(T), c.describe(T));
            // Everything but the KIP-360 last epoch and previous producer
            // id, which version 0 records do not hold (nor do Kafka's).
            let strip = |m: Option<&TxnMetadata>| {
                m.cloned().map(|m| TxnMetadata {
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                    prev_producer_id: NO_PRODUCER_ID,
                    ..m
                })
            };
            assert_eq!(strip(after), strip(before), "{state:?}");
            assert_eq!(c.pending_markers(), f.c.pending_markers(), "{state:?}");
        }
    }

    #[test]
    fn restart_while_preparing_finishes_the_markers() {
        for commit in [true, false] {
            let state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            let (f, p) = fixture_in(state);
            let mut c = f.replay();
            let jobs = c.pending_markers();
            assert_eq!(
                jobs,
                vec![MarkerJob {
                    transactional_id: T.into(),
                    producer_id: p.producer_id,
                    producer_epoch: p.producer_epoch,
                    commit,
                    partitions: vec![tp("a", 0), tp("b", 1)],
                    coordinator_epoch: 0,
                }]
            );
            assert!(c.complete(T, 40).is_some());
            let done = if commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            };
            assert_eq!(c.describe(T).map(|m| m.state), Some(done));
            assert!(c.pending_markers().is_empty());
            // The producer carries on at the same epoch.
            assert_eq!(
                c.end_txn(
                    T,
                    (p.producer_id, p.producer_epoch),
                    commit,
                    false,
                    &mut || 0,
                    41
                )
                .reply,
                Ok(p)
            );
        }
    }

    #[test]
    fn restart_while_ongoing_continues_or_times_out() {
        let (f, p) = fixture_in(TxnState::Ongoing);
        let mut c = f.replay();
        assert!(c.pending_markers().is_empty());
        // The producer may carry on...
        let s = c.end_txn(
            T,
            (p.producer_id, p.producer_epoch),
            true,
            false,
            &mut || 0,
            50,
        );
        assert_eq!((s.reply, s.markers.len()), (Ok(p), 1));
        // ...or, left alone, the transaction times out from its start.
        let mut c = f.replay();
        assert_eq!(
            c.abort_timed_out(10 + i64::from(TIMEOUT)),
            Effects::default()
        );
        let fx = c.abort_timed_out(11 + i64::from(TIMEOUT));
        assert_eq!(fx.markers.len(), 1);
        assert_eq!(fx.markers[0].producer_epoch, p.producer_epoch + 1);
    }

    #[test]
    fn restart_after_fence_keeps_bumped_epoch() {
        let mut f = Fixture::new();
        let p = f.init_ok(1);
        f.add(p, &[("a", 0)], 2);
        f.init(None, 3);
        let mut c = f.replay();
        assert_eq!(
            c.pending_markers()
                .iter()
                .map(|j| j.producer_epoch)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(
            c.end_txn(
                T,
                (p.producer_id, p.producer_epoch),
                true,
                false,
                &mut || 0,
                4
            )
            .reply,
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn id_expiration_writes_tombstones() {
        let cfg = TxnConfig::default();
        for state in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            let (mut f, _) = fixture_in(state);
            let last =
                f.c.describe(T)
                    .map(|m| m.last_update_ms)
                    .unwrap_or_default();
            assert!(f.c.expire_ids(last + cfg.id_expiration_ms - 1).is_empty());
            let tombs = f.c.expire_ids(last + cfg.id_expiration_ms);
            if state.expirable() {
                assert_eq!(
                    tombs,
                    vec![TxnRecord {
                        transactional_id: T.into(),
                        key: txn_store::key(T),
                        value: None
                    }],
                    "{state:?}"
                );
                assert_eq!(f.state(), None);
                // Replaying the log with the tombstone forgets the id.
                f.log.extend(tombs);
                assert_eq!(f.replay().describe(T), None);
            } else {
                assert!(tombs.is_empty(), "{state:?}");
                assert_eq!(f.state(), Some(state));
            }
        }
    }

    #[test]
    fn load_refuses_garbage_and_latest_record_wins() {
        let mut c = TxnCoordinator::new(TxnConfig::default());
        assert!(!c.load(&Bytes::from_static(b"\x00"), None));
        assert!(!c.load(&txn_store::key(T), Some(&Bytes::from_static(b"\x00\x00"))));
        let (f, _) = fixture_in(TxnState::CompleteCommit);
        for r in &f.log {
            assert!(c.load(&r.key, r.value.as_ref()));
        }
        assert_eq!(
            c.describe(T).map(|m| m.state),
            Some(TxnState::CompleteCommit)
        );
    }

    #[test]
    fn records_follow_kafkas_layout_per_state() {
        let (f, _) = fixture_in(TxnState::CompleteCommit);
        let decoded: Vec<(i8, Option<usize>)> = f
            .log
            .iter()
            .filter_map(|r| r.value.as_ref().and_then(txn_store::decode_value))
            .map(|v| (v.status, v.partitions.map(|p| p.len())))
            .collect();
        // Empty has a null partition array, Complete* an empty one.
        assert_eq!(
            decoded,
            vec![(0, None), (1, Some(2)), (2, Some(2)), (4, Some(0))]
        );
        assert!(f
            .log
            .iter()
            .all(|r| txn_store::decode_key(&r.key).as_deref() == Some(T)));
    }

    #[test]
    fn load_dead_removes_and_epoch_fence_is_refused() {
        let (f, _) = fixture_in(TxnState::Empty);
        let mut c = f.replay();
        let meta = c.describe(T).cloned();
        let with_state = |state: TxnState| {
            meta.clone()
                .map(|m| txn_store::value(&TxnMetadata { state, ..m }.to_value(), 1))
        };
        let key = txn_store::key(T);
        assert!(!c.load(&key, with_state(TxnState::PrepareEpochFence).as_ref()));
        assert_eq!(c.describe(T).map(|m| m.state), Some(TxnState::Empty));
        assert!(c.load(&key, with_state(TxnState::Dead).as_ref()));
        assert_eq!(c.describe(T), None);
    }

    #[test]
    fn list_and_describe_filters() {
        let (mut f, p) = fixture_in(TxnState::Ongoing);
        let mut alloc = || 5000;
        let s = f.c.init_producer_id("other", TIMEOUT, None, &mut alloc, 1);
        assert!(s.reply.is_ok());
        let ids = |v: Vec<&TxnMetadata>| -> Vec<String> {
            v.into_iter().map(|m| m.transactional_id.clone()).collect()
        };
        assert_eq!(ids(f.c.list(&[], &[], -1, 100)), vec!["other", T]);
        assert_eq!(ids(f.c.list(&[TxnState::Ongoing], &[], -1, 100)), vec![T]);
        assert_eq!(ids(f.c.list(&[], &[5000], -1, 100)), vec!["other"]);
        // Started at 10: running 90 ms at 100.
        assert_eq!(ids(f.c.list(&[TxnState::Ongoing], &[], 89, 100)), vec![T]);
        assert!(f.c.list(&[TxnState::Ongoing], &[], 90, 100).is_empty());
        assert_eq!(
            f.c.by_producer(p.producer_id)
                .map(|m| m.transactional_id.as_str()),
            Some(T)
        );
        assert_eq!(f.c.by_producer(1), None);
        assert_eq!(f.c.iter().count(), 2);
    }

    #[test]
    fn metadata_value_round_trip() {
        let (f, _) = fixture_in(TxnState::Ongoing);
        let m = f.c.describe(T).cloned();
        let back = m
            .as_ref()
            .and_then(|m| TxnMetadata::from_value(T, &m.to_value()));
        assert_eq!(
            back,
            m.map(|m| TxnMetadata {
                last_producer_epoch: NO_PRODUCER_EPOCH,
                ..m
            })
        );
        let v = f.c.describe(T).map(TxnMetadata::to_value);
        assert_eq!(
            v.and_then(|v| v.partitions),
            Some(vec![("a".to_string(), vec![0]), ("b".to_string(), vec![1])])
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Init(Option<(i64, i16)>),
        InitCurrent,
        Add(i32),
        AddStale(i32),
        End(bool),
        Complete,
        Wait(i64),
        Timeout,
        Expire,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::option::of((999i64..1003, -1i16..3)).prop_map(Op::Init),
            Just(Op::InitCurrent),
            (0i32..3).prop_map(Op::Add),
            (0i32..3).prop_map(Op::AddStale),
            any::<bool>().prop_map(Op::End),
            Just(Op::Complete),
            (0i64..100_000).prop_map(Op::Wait),
            Just(Op::Timeout),
            Just(Op::Expire),
        ]
    }

    proptest::proptest! {
        /// Whatever the clients do, the state machine never panics, keeps
        /// Kafka's invariants, and the records it asked to persist replay
        /// to the same state with the same pending markers.
        #[test]
        fn replay_always_matches_memory(
            tv in 1i16..=2,
            ops in proptest::collection::vec(op(), 0..40),
        ) {
            let mut f = Fixture::at(tv);
            f.c.config.id_expiration_ms = 150_000;
            let mut now = 0i64;
            for op in ops {
                now += 1;
                let cur = f.c.describe(T).map(|m| ProducerIdAndEpoch {
                    producer_id: m.producer_id,
                    producer_epoch: m.producer_epoch,
                });
                match op {
                    Op::Init(expected) => {
                        f.init(expected, now);
                    }
                    Op::InitCurrent => {
                        f.init(cur.map(|p| (p.producer_id, p.producer_epoch)), now);
                    }
                    Op::Add(n) | Op::AddStale(n) => {
                        if let Some(mut p) = cur {
                            if matches!(op, Op::AddStale(_)) {
                                p.producer_epoch -= 1;
                            }
                            f.add(p, &[("t", n)], now);
                        }
                    }
                    Op::End(commit) => {
                        if let Some(p) = cur {
                            f.end(p, commit, now);
                        }
                    }
                    Op::Complete => f.log.extend(f.c.complete(T, now)),
                    Op::Wait(ms) => now += ms,
                    Op::Timeout => {
                        let fx = f.c.abort_timed_out(now);
                        f.log.extend(fx.records);
                    }
                    Op::Expire => {
                        let tombs = f.c.expire_ids(now);
                        f.log.extend(tombs);
                    }
                }
                if let Some(m) = f.c.describe(T) {
                    proptest::prop_assert!(m.producer_epoch >= 0);
                    proptest::prop_assert!(!matches!(
                        m.state,
                        TxnState::Dead | TxnState::PrepareEpochFence
                    ));
                    if !matches!(
                        m.state,
                        TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
                    ) {
                        proptest::prop_assert!(m.partitions.is_empty());
                    }
                }
                let c = f.replay();
                let strip = |m: Option<&TxnMetadata>| {
                    m.cloned().map(|m| TxnMetadata {
                        last_producer_epoch: NO_PRODUCER_EPOCH,
                        prev_producer_id: NO_PRODUCER_ID,
                        ..m
                    })
                };
                proptest::prop_assert_eq!(strip(c.describe(T)), strip(f.c.describe(T)));
                proptest::prop_assert_eq!(c.pending_markers(), f.c.pending_markers());
            }
        }
    }
}

//! The one write path for internal topics: the coordinators' topics
//! (`__consumer_offsets`, `__transaction_state`), `__weir_security`, the
//! audit trail and the schema registry's `_schemas` append keyed records,
//! await their durability as an acks=all produce does, and read a
//! partition back at start-up, all through [`InternalLog`].
//!
//! The trait speaks in keys, values and transaction markers, not in record
//! batches or partition logs, so the same users can run over another
//! implementation (the topics service of this node implements it over the
//! storage engine; a cluster mode or a Kafka-protocol client could too).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_log::{BoxFuture, ReadLimit};

use crate::error::BrokerError;
use crate::topics::Topics;

/// A key and an optional value (`None`: a tombstone).
pub type KeyValue = (Option<Bytes>, Option<Bytes>);

/// Resolves once the records of an append are durable.
pub type Durable = BoxFuture<'static, Result<(), BrokerError>>;

/// The producer of transactional records (TxnOffsetCommit writes offsets
/// inside the producer's transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
}

/// What an [`Topics::append_fenced`] append goes in under.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard<'a> {
    /// Only while this lease is still the writer's (none: always).
    Fenced(Option<&'a weir_log::shared::Lease>),
    /// Superseding the state loaded under this lease (name, partition):
    /// see `PartitionLog::append_superseding`.
    Superseding(&'a str, i32),
}

/// An append whose offsets are assigned.
pub struct Appended {
    /// The first record's offset.
    pub base_offset: i64,
    /// The last record's offset.
    pub last_offset: i64,
    /// Resolves once the records are durable (what an acks=all produce
    /// waits for).
    pub durable: Durable,
}

impl std::fmt::Debug for Appended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appended")
            .field("base_offset", &self.base_offset)
            .field("last_offset", &self.last_offset)
            .finish_non_exhaustive()
    }
}

/// One entry of a partition read back, in offset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A data record.
    Record {
        /// Its key.
        key: Option<Bytes>,
        /// Its value (`None`: a tombstone).
        value: Option<Bytes>,
        /// The producer, when the record belongs to a transaction.
        transactional_producer: Option<i64>,
    },
    /// A transaction marker: the producer's records before it are
    /// committed or aborted.
    Marker {
        /// The producer.
        producer_id: i64,
        /// COMMIT (else ABORT).
        commit: bool,
    },
}

/// Appends keyed records to internal topics and reads them back.
///
/// Appends to one partition take effect in the order `append` is called,
/// whether or not (and whenever) the returned future is polled, so a
/// caller may append under its own lock and await outside it; dropping the
/// future does not undo the append.
pub trait InternalLog: Send + Sync + std::fmt::Debug {
    /// Creates `topic` with `partitions` partitions and `configs` unless it
    /// exists; returns its partition count (which an existing topic keeps,
    /// as Kafka's coordinators keep theirs).
    fn ensure_topic(
        &self,
        topic: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<i32, BrokerError>>;

    /// The partition count of an existing topic.
    fn partitions(&self, topic: &str) -> Option<i32>;

    /// Appends `records` to one partition as one batch (inside `txn`'s
    /// transaction when given).
    fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        txn: Option<TxnProducer>,
    ) -> BoxFuture<'static, Result<Appended, BrokerError>>;

    /// Every entry of one partition from its start, in offset order.
    fn read(&self, topic: &str, partition: i32) -> BoxFuture<'_, Result<Vec<Entry>, BrokerError>>;
}

/// The live records of a partition: data records outside transactions,
/// as keys and values in offset order.
pub async fn read_records(
    log: &dyn InternalLog,
    topic: &str,
    partition: i32,
) -> Result<Vec<KeyValue>, BrokerError> {
    Ok(live_records(log.read(topic, partition).await?))
}

/// The data records outside transactions among `entries`, in order.
pub fn live_records(entries: Vec<Entry>) -> Vec<KeyValue> {
    entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Record {
                key,
                value,
                transactional_producer: None,
            } => Some((key, value)),
            _ => None,
        })
        .collect()
}

/// Encodes `records` as one uncompressed v2 batch stamped `now_ms`.
fn encode(
    records: Vec<KeyValue>,
    txn: Option<TxnProducer>,
    now_ms: i64,
) -> Result<Bytes, BrokerError> {
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Record {
                transactional: txn.is_some(),
                control: false,
                partition_leader_epoch: crate::LEADER_EPOCH,
                producer_id: txn.map_or(-1, |t| t.producer_id),
                producer_epoch: txn.map_or(-1, |t| t.epoch),
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // The encoder starts a new batch when offset - sequence
                // changes; this keeps one batch whose base sequence is -1
                // (coordinator writes are fenced by epoch, not sequence).
                sequence: i - 1,
                timestamp: now_ms,
                key,
                value,
                headers: IndexMap::new(),
                delete_horizon: false,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| BrokerError::Internal(format!("cannot encode records: {e}")))?;
    Ok(buf.freeze())
}

/// A control record's key is (version i16, type i16); type 1 is COMMIT.
fn is_commit(key: Option<&Bytes>) -> bool {
    key.is_some_and(|k| k.get(3) == Some(&1))
}

fn missing(topic: &str, partition: i32) -> BrokerError {
    BrokerError::Internal(format!("{topic}-{partition} is missing"))
}

impl InternalLog for Topics {
    fn ensure_topic(
        &self,
        topic: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<i32, BrokerError>> {
        Box::pin(std::future::ready(Topics::ensure_topic(
            self, topic, partitions, configs,
        )))
    }

    fn partitions(&self, topic: &str) -> Option<i32> {
        self.topic(topic).map(|t| t.partition_count())
    }

    fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        txn: Option<TxnProducer>,
    ) -> BoxFuture<'static, Result<Appended, BrokerError>> {
        let log = match self
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
        {
            Some(log) => log,
            None => return Box::pin(std::future::ready(Err(missing(topic, partition)))),
        };
        let mut appending = match encode(records, txn, self.now_ms()) {
            Ok(batch) => log.append(batch, crate::LEADER_EPOCH),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        // The local engine has appended by now; an engine that appends
        // later (cluster mode, where the future resolves once the
        // records are committed) took its place in the partition's order
        // at the call, so awaiting later keeps it.
        if let Some(r) = ready_now(&mut appending) {
            return Box::pin(std::future::ready(r.map_err(BrokerError::from).map(
                |info| {
                    let durable = log.wait_durable(info.last_offset + 1);
                    Appended {
                        base_offset: info.base_offset,
                        last_offset: info.last_offset,
                        durable: Box::pin(async move { Ok(durable.await?) }),
                    }
                },
            )));
        }
        Box::pin(async move {
            let info = appending.await?;
            let durable = log.wait_durable(info.last_offset + 1);
            Ok(Appended {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                durable: Box::pin(async move { Ok(durable.await?) }),
            })
        })
    }

    fn read(&self, topic: &str, partition: i32) -> BoxFuture<'_, Result<Vec<Entry>, BrokerError>> {
        let log = self
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned());
        let topic = topic.to_string();
        Box::pin(async move {
            let log = log.ok_or_else(|| missing(&topic, partition))?;
            Ok(read_all(&*log, &topic)
                .await?
                .into_iter()
                .map(|(_, e)| e)
                .collect())
        })
    }
}

impl Topics {
    /// [`InternalLog::append`] on this node's storage, done before it
    /// returns (the local engine appends synchronously).
    pub(crate) fn append_now(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        txn: Option<TxnProducer>,
    ) -> Result<Appended, BrokerError> {
        let log = self
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .ok_or_else(|| missing(topic, partition))?;
        let mut appending = log.append(encode(records, txn, self.now_ms())?, crate::LEADER_EPOCH);
        // Share-group state needs its offsets now; the local engine
        // appends at call time, an engine that does not is refused here
        // until share groups await their appends.
        let info = ready_now(&mut appending).ok_or_else(|| {
            BrokerError::Internal(format!(
                "the storage engine did not append to {topic}-{partition} at once"
            ))
        })??;
        let durable = log.wait_durable(info.last_offset + 1);
        Ok(Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            durable: Box::pin(async move { Ok(durable.await?) }),
        })
    }

    /// Appends `records` to one partition, in call order, as `guard`
    /// says (see [`Guard`]); the future resolves once they are durable.
    /// Share-group state in a cluster goes this way.
    pub(crate) fn append_fenced(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        guard: Guard<'_>,
    ) -> BoxFuture<'static, Result<(), BrokerError>> {
        let log = match self
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
        {
            Some(l) => l,
            None => return Box::pin(std::future::ready(Err(missing(topic, partition)))),
        };
        let encoded = match encode(records, None, self.now_ms()) {
            Ok(b) => b,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let appending = match guard {
            Guard::Fenced(Some(l)) => log.append_fenced(encoded, crate::LEADER_EPOCH, l),
            Guard::Fenced(None) => log.append(encoded, crate::LEADER_EPOCH),
            Guard::Superseding(lease, p) => {
                log.append_superseding(encoded, crate::LEADER_EPOCH, lease, p)
            }
        };
        Box::pin(async move {
            let info = appending.await?;
            log.wait_durable(info.last_offset + 1).await?;
            Ok(())
        })
    }

    /// The data records of one partition with their offsets (share-group
    /// state replays by offset).
    pub(crate) async fn read_records_at(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<(i64, KeyValue)>, BrokerError> {
        let log = self
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .ok_or_else(|| missing(topic, partition))?;
        Ok(read_all(&*log, topic)
            .await?
            .into_iter()
            .filter_map(|(offset, e)| match e {
                Entry::Record { key, value, .. } => Some((offset, (key, value))),
                Entry::Marker { .. } => None,
            })
            .collect())
    }
}

/// Reads a whole partition log into entries with their offsets.
async fn read_all(
    log: &dyn weir_log::PartitionLog,
    topic: &str,
) -> Result<Vec<(i64, Entry)>, BrokerError> {
    read_from(log, topic, log.offsets().log_start).await
}

/// The entries of a partition from `offset` (at least the log start) to
/// its end, with their offsets.
pub(crate) async fn read_from(
    log: &dyn weir_log::PartitionLog,
    topic: &str,
    offset: i64,
) -> Result<Vec<(i64, Entry)>, BrokerError> {
    let mut out = Vec::new();
    let mut offset = offset.max(log.offsets().log_start);
    loop {
        let r = log.read(offset, 1 << 20, ReadLimit::LogEnd).await?;
        if r.records.is_empty() {
            break;
        }
        let mut buf = r.records.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| {
            BrokerError::Internal(format!("{topic} holds an undecodable batch: {e}"))
        })?;
        let mut next = offset;
        for set in sets {
            for rec in set.records {
                next = next.max(rec.offset + 1);
                // The first batch may start before `offset`.
                if rec.offset < offset {
                    continue;
                }
                out.push((
                    rec.offset,
                    if rec.control {
                        Entry::Marker {
                            producer_id: rec.producer_id,
                            commit: is_commit(rec.key.as_ref()),
                        }
                    } else {
                        Entry::Record {
                            transactional_producer: rec.transactional.then_some(rec.producer_id),
                            key: rec.key,
                            value: rec.value,
                        }
                    },
                ));
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(out)
}

/// Partition 0 of an internal topic read as it grows. In cluster mode
/// every broker appends to the same log, so a broker keeping state built
/// from it (the schema registry) follows what the others append.
pub struct Tail {
    topics: Arc<Topics>,
    topic: String,
    next: i64,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("topic", &self.topic)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Tail {
    pub(crate) fn new(topics: Arc<Topics>, topic: &str, from: i64) -> Self {
        Self {
            topics,
            topic: topic.to_string(),
            next: from,
        }
    }

    fn log(&self) -> Option<Arc<dyn weir_log::PartitionLog>> {
        let topic = self.topics.topic(&self.topic)?;
        topic.open_partition(0).ok().flatten().cloned()
    }

    /// The entries appended since the last call (from `from` at first),
    /// up to the log end as this broker knows it; none while the topic
    /// does not exist.
    pub async fn read_new(&mut self) -> Result<Vec<Entry>, BrokerError> {
        self.read(false).await
    }

    /// [`read_new`](Self::read_new) up to the log end as the store has it
    /// now, not as the last notification reported it: under a cluster
    /// lock that every writer of the topic holds, this reads every append
    /// made before the lock was taken.
    pub async fn read_to_store_end(&mut self) -> Result<Vec<Entry>, BrokerError> {
        self.read(true).await
    }

    async fn read(&mut self, reread_end: bool) -> Result<Vec<Entry>, BrokerError> {
        let Some(log) = self.log() else {
            return Ok(Vec::new());
        };
        if reread_end {
            log.current_offsets().await?;
        }
        let entries = read_from(&*log, &self.topic, self.next).await?;
        if let Some((last, _)) = entries.last() {
            self.next = last + 1;
        }
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    /// Changes whenever the log end moves (the engine's commit
    /// notifications in cluster mode), once the topic exists.
    pub fn changes(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        self.log().map(|log| log.subscribe())
    }
}

/// Resolves at the next change `changes` reports, or after `poll` (a
/// follower's wait: notifications may be missed, or not subscribed yet).
pub async fn changed_or_after(
    changes: Option<&mut tokio::sync::watch::Receiver<i64>>,
    poll: std::time::Duration,
) {
    let changed = async {
        if let Some(c) = changes {
            if c.changed().await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = changed => {}
        () = tokio::time::sleep(poll) => {}
    }
}

/// The internal log of a topics service, as the trait object its users
/// hold.
pub fn of(topics: &Arc<Topics>) -> Arc<dyn InternalLog> {
    topics.clone()
}

/// Lets an append (or a wait on one) complete without a caller waiting:
/// a failure is logged as `what` not written. The append itself already
/// happened when it was called.
pub(crate) fn detach<T: Send + 'static>(
    what: &'static str,
    mut fut: BoxFuture<'static, Result<T, BrokerError>>,
) {
    let report = move |r: Result<T, BrokerError>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "{what} not written");
        }
    };
    // The local engine answers at once; an engine that answers later is
    // awaited on the runtime.
    match ready_now(&mut fut) {
        Some(r) => report(r),
        None => {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { report(fut.await) });
            }
        }
    }
}

/// Polls `fut` once: its output if it is ready now. Lets a handler answer
/// at once when the engine did (the local engine appends at call time)
/// and fall back to awaiting when it did not.
pub(crate) fn ready_now<T>(fut: &mut BoxFuture<'static, T>) -> Option<T> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}

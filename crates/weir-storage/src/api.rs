//! The storage contract: what the broker needs from a partition log.
//!
//! The broker reaches storage only through [`LogEngine`] and [`PartitionLog`],
//! so a later object-store engine can stand in for the local one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use crate::config::LogConfig;
use crate::error::LogError;
use crate::producer::{AbortedTxn, ProducerEntry};

/// A boxed future, so the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Identifies one partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name, already validated by the caller.
    pub topic: String,
    /// Partition index, `>= 0`.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic-partition pair.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The offsets that describe a partition's log at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOffsets {
    /// First offset still in the log (retention and DeleteRecords move it).
    pub log_start: i64,
    /// Offset up to which consumers may read (exclusive). On a single node
    /// it equals `log_end` as in Kafka with a one-replica ISR.
    pub high_watermark: i64,
    /// Last stable offset (exclusive). Equals the high watermark until
    /// transactions hold it back.
    pub last_stable: i64,
    /// Offset the next appended record will get.
    pub log_end: i64,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// The broker's time stamped into the batches when the topic uses
    /// LogAppendTime, else `-1` (Kafka's convention in ProduceResponse).
    pub log_append_time: i64,
    /// The log start offset after the append.
    pub log_start: i64,
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole record batches, exactly as stored. The first batch contains the
    /// requested offset (it may start before it). Empty at the log end.
    pub records: Bytes,
    /// The partition's offsets when the read happened.
    pub offsets: LogOffsets,
}

/// A record offset found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The record's timestamp.
    pub timestamp: i64,
    /// The record's offset.
    pub offset: i64,
    /// Leader epoch of the batch holding it.
    pub leader_epoch: i32,
}

/// Up to where a read may return data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Up to the high watermark (read_uncommitted consumers).
    HighWatermark,
    /// Up to the last stable offset (read_committed consumers).
    LastStable,
    /// Up to the log end (replicas and internal readers).
    LogEnd,
}

impl ReadLimit {
    /// The first offset this limit keeps a reader from (exclusive bound).
    pub fn upper(self, offsets: &LogOffsets) -> i64 {
        match self {
            ReadLimit::HighWatermark => offsets.high_watermark,
            ReadLimit::LastStable => offsets.last_stable,
            ReadLimit::LogEnd => offsets.log_end,
        }
    }
}

/// One partition's log.
///
/// The calls that may wait on storage (append, read, the timestamp lookups,
/// DeleteRecords) return futures, so an engine whose storage is a network
/// away can implement them without blocking a tokio worker; the local
/// engine answers at call time. What every engine keeps in
/// memory (offsets, producer state, epochs) is answered at once. The
/// futures own what they need (`'static`), so the broker can await them
/// after the request's synchronous part has returned.
pub trait PartitionLog: Send + Sync + std::fmt::Debug {
    /// Validates `records` (one or more v2 record batches as a producer sent
    /// them), assigns offsets, stamps `leader_epoch` and appends them.
    /// On error the log is unchanged.
    ///
    /// Offsets are assigned in call order, not in the order the futures are
    /// polled: the broker appends a connection's pipelined requests one
    /// after another and may await them later, so an engine must take its
    /// place in the log (or a queue that keeps the order) before returning.
    /// The future resolves once the batches are readable; durability is
    /// [`wait_durable`](Self::wait_durable).
    fn append(
        &self,
        records: Bytes,
        leader_epoch: i32,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>>;

    /// [`append`](Self::append) that goes in only while `lease` is
    /// still the writer's (checked where the append commits, so a paused
    /// former holder's write is refused once another broker took the
    /// lease); [`LogError::Io`] if it is not. Engines without leases (one
    /// node owns everything) append unconditionally.
    fn append_fenced(
        &self,
        records: Bytes,
        leader_epoch: i32,
        _lease: &crate::shared::Lease,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        self.append(records, leader_epoch)
    }

    /// [`append`](Self::append) that supersedes the state a broker loaded
    /// under the lease of (`lease_topic`, `lease_partition`): where the
    /// append commits, the lease's epoch moves on (its holder and expiry
    /// kept), so the holder's fenced appends are refused from then on and
    /// it loads the state again. Resolves once the holder serves nothing
    /// it loaded before. Share-group state rewritten by the group
    /// coordinator (AlterShareGroupOffsets, deletion) goes this way.
    /// Engines without leases append unconditionally.
    fn append_superseding(
        &self,
        records: Bytes,
        leader_epoch: i32,
        _lease_topic: &str,
        _lease_partition: i32,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        self.append(records, leader_epoch)
    }

    /// Resolves once every offset below `end_offset` is durable.
    /// Concurrent waiters share one flush (group commit).
    fn wait_durable(&self, end_offset: i64) -> BoxFuture<'static, Result<(), LogError>>;

    /// Reads whole batches starting with the one that contains `offset`,
    /// up to `max_bytes`, but always at least one whole batch if any is
    /// readable. `offset` outside `[log_start, log_end]` is
    /// [`LogError::OffsetOutOfRange`].
    fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: ReadLimit,
    ) -> BoxFuture<'static, Result<ReadResult, LogError>>;

    /// The current offsets.
    fn offsets(&self) -> LogOffsets;

    /// The offsets as the store has them now: an engine whose
    /// [`offsets`](Self::offsets) is a cache of shared state rereads them.
    fn current_offsets(&self) -> BoxFuture<'static, Result<LogOffsets, LogError>> {
        let o = self.offsets();
        Box::pin(async move { Ok(o) })
    }

    /// Watches the log end offset, for long-polling fetches.
    fn subscribe(&self) -> watch::Receiver<i64>;

    /// The first record whose timestamp is `>= timestamp` (ListOffsets).
    fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>>;

    /// The record with the largest timestamp (ListOffsets `-3`, KIP-734);
    /// the earliest such record on ties.
    fn max_timestamp(&self) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>>;

    /// The largest epoch `<= epoch` and the offset where it ends
    /// (OffsetForLeaderEpoch); `None` when the log has no epoch `<= epoch`.
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)>;

    /// Moves the log start offset forward to `offset` (DeleteRecords),
    /// which must be `<= high watermark`. Returns the new log start.
    fn delete_records(&self, offset: i64) -> BoxFuture<'static, Result<i64, LogError>>;

    /// Bytes the partition takes in storage.
    fn size_bytes(&self) -> u64;

    /// [`size_bytes`](Self::size_bytes) as the store has it now: an engine
    /// whose size is a cache of shared state (updated only by the appends
    /// through this broker and by notifications) rereads it.
    fn current_size_bytes(&self) -> BoxFuture<'static, Result<u64, LogError>> {
        let size = self.size_bytes();
        Box::pin(async move { Ok(size) })
    }

    /// The producers whose state this partition keeps (DescribeProducers).
    /// An engine that keeps them elsewhere may fail to reach them.
    fn producers(&self) -> Result<Vec<(i64, ProducerEntry)>, LogError>;

    /// Aborted transactions that overlap `[from, to)`: those whose ABORT
    /// marker is at or after `from` and whose first record is before `to`
    /// (what a `read_committed` fetch of that range must skip).
    fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn>;

    /// Applies a changed topic config.
    fn set_config(&self, config: LogConfig);
}

/// A set of partition logs; the broker's handle on storage.
pub trait LogEngine: Send + Sync + std::fmt::Debug {
    /// Opens the partition's log, creating it if missing.
    fn open(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionLog>, LogError>;

    /// Removes the partition and its data. Open handles stop working.
    fn remove(&self, tp: &TopicPartition) -> Result<(), LogError>;

    /// Partitions present in storage, for start-up.
    fn partitions(&self) -> Result<Vec<TopicPartition>, LogError>;

    /// Flushes everything and marks a clean shutdown, so the next open
    /// skips recovery.
    fn shutdown(&self) -> Result<(), LogError>;

    /// The engine's own measurements (fsync latency), if it keeps any.
    fn stats(&self) -> Option<Arc<crate::EngineStats>> {
        None
    }

    /// The catalog and membership every broker on this storage shares,
    /// if the engine is shared (cluster mode); `None` for a single node,
    /// whose catalog is a file of its own.
    fn shared(&self) -> Option<Arc<dyn crate::SharedCatalog>> {
        None
    }
}

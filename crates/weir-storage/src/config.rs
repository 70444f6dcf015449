//! Per-topic storage settings, named after Kafka's topic configs.

/// How record timestamps are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamp is kept (`CreateTime`).
    CreateTime,
    /// The broker overwrites the batch timestamp on append (`LogAppendTime`).
    LogAppendTime,
}

/// The storage-relevant topic configs. Defaults are Kafka's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment after this age.
    pub segment_ms: i64,
    /// `segment.index.bytes`: maximum size of one offset index file.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes between offset index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments older than this; `-1` keeps them.
    pub retention_ms: i64,
    /// `retention.bytes`: delete old segments past this size; `-1` keeps them.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: u64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime may be.
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains `delete`.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long tombstones survive compaction.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `flush.messages`: fsync after this many messages; `i64::MAX` never forces.
    pub flush_messages: i64,
    /// `flush.ms`: fsync after this long; `i64::MAX` never forces.
    pub flush_ms: i64,
    /// `file.delete.delay.ms`: how long removed segments linger before unlink.
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3600 * 1000,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
        }
    }
}

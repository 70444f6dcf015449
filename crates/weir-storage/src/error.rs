//! The log's error type. Variants are grouped by who is at fault: the
//! producer (its batch), the caller (an offset outside the log, a removed
//! partition), the environment (disk, damaged files) or Weir (`Internal`,
//! a bug). The broker maps each to one Kafka error code.

/// Errors from the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    // The producer's fault: its batch.
    /// A batch failed its checksum or framing (Kafka `CORRUPT_MESSAGE`).
    #[error("corrupt record batch at byte {position}: {reason}")]
    CorruptMessage {
        /// Byte position of the bad batch within the request's records.
        position: usize,
        /// What was wrong.
        reason: String,
    },
    /// A batch is larger than `max.message.bytes` (`MESSAGE_TOO_LARGE`).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge {
        /// Size of the batch.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// A batch is well framed but not acceptable (`INVALID_RECORD`).
    #[error("invalid record: {reason}")]
    InvalidRecord {
        /// What was wrong.
        reason: String,
    },
    /// A timestamp is outside the allowed window (`INVALID_TIMESTAMP`).
    #[error("timestamp {timestamp} is outside the allowed range")]
    InvalidTimestamp {
        /// The offending timestamp.
        timestamp: i64,
    },
    /// Records of a batch are not acceptable (KIP-467): `INVALID_RECORD`,
    /// or `INVALID_TIMESTAMP` when a timestamp is among the reasons, with
    /// each bad record so that clients fail only those records.
    #[error("{} of the batch's records rejected, the first: {}", records.len(), records.first().map_or("", |r| r.message.as_str()))]
    InvalidRecords {
        /// Whether a timestamp outside the allowed range is among the reasons.
        timestamp: bool,
        /// Each bad record.
        records: Vec<RecordError>,
    },
    /// A magic byte other than 2 (`UNSUPPORTED_FOR_MESSAGE_FORMAT`).
    #[error("unsupported record batch magic {magic}")]
    UnsupportedMagic {
        /// The magic byte seen.
        magic: i8,
    },
    /// A producer's batch does not follow its previous one
    /// (`OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("out of order sequence: producer {producer_id} epoch {epoch} sent sequence {sequence}, expected {expected}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// Its epoch in the batch.
        epoch: i16,
        /// The batch's first sequence.
        sequence: i32,
        /// The sequence the partition expected (0 for a new epoch).
        expected: i32,
    },
    /// A producer epoch older than the partition has seen
    /// (`INVALID_PRODUCER_EPOCH`).
    #[error("invalid producer epoch: producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The epoch in the batch (or marker).
        epoch: i16,
        /// The epoch the partition has seen.
        current: i16,
    },

    // The caller's fault.
    /// A read or DeleteRecords outside the log (`OFFSET_OUT_OF_RANGE`).
    #[error("offset {offset} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// First offset in the log.
        log_start: i64,
        /// Log end offset.
        log_end: i64,
    },
    /// The partition was removed while in use (`UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("partition {partition} was removed")]
    Removed {
        /// The partition, as `topic-index`.
        partition: String,
    },

    // The environment's fault.
    /// An I/O failure (`KAFKA_STORAGE_ERROR`).
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The partition stopped accepting writes after an I/O error (an fsync
    /// that failed may have lost data the page cache held).
    #[error("partition {partition} is read-only after an I/O error")]
    Failed {
        /// The partition, as `topic-index`.
        partition: String,
    },
    /// The engine was shut down.
    #[error("the log engine is shut down")]
    Closed,
    /// The data directory was written in an on-disk format this build does
    /// not read (a newer Weir, or not Weir's).
    #[error("{path} says format version {found}; this build of Weir reads version {supported} only, so it will not touch this data directory (start the Weir that wrote it, or point the log at another directory)")]
    UnsupportedFormat {
        /// The version file.
        path: String,
        /// What it holds.
        found: String,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A state file (producer snapshot, checkpoint) does not parse.
    #[error("damaged state file {path}: {reason}")]
    CorruptState {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    // Weir's fault.
    /// A broken invariant: a bug in Weir.
    #[error("internal error: {reason}")]
    Internal {
        /// What broke.
        reason: String,
    },
}

/// One rejected record of a batch (Kafka's `RecordError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's position within its batch, from 0.
    pub batch_index: i32,
    /// Why it was rejected.
    pub message: String,
}

//! `weir-log` owns a partition's log on local disk: segment files of Kafka
//! RecordBatch v2 bytes, their offset and time indexes, validation on
//! append, durability (flush policy and group commit), crash recovery,
//! retention and compaction.
//!
//! It knows nothing about networking. The broker reaches it through the
//! [`LogEngine`] and [`PartitionLog`] traits in [`api`], so that a later
//! object-store engine can replace [`local::LocalEngine`] without the broker
//! changing. The on-disk format is documented byte by byte in
//! `docs/storage-format.md`.

pub mod api;
pub mod batch;
pub mod config;
pub mod error;
pub mod local;
pub mod producer;
pub mod stats;

pub use api::{
    AppendInfo, BoxFuture, LogEngine, LogOffsets, PartitionLog, ReadLimit, ReadResult,
    TimestampOffset, TopicPartition,
};
pub use config::{LogConfig, TimestampType};
pub use error::{LogError, RecordError};
pub use local::{EngineConfig, LocalEngine};
pub use stats::{EngineStats, HistogramSnapshot, LatencyHistogram};

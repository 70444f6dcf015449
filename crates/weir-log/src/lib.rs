//! `weir-log` owns a partition's log on local disk: segment files of Kafka
//! RecordBatch v2 bytes, their offset and time indexes, validation on
//! append, durability (flush policy and group commit), crash recovery,
//! retention and compaction.
//!
//! It knows nothing about networking. The broker reaches it through the
//! [`LogEngine`] and [`PartitionLog`] traits in [`api`], so that a later
//! object-store engine can replace [`local::LocalEngine`] without the broker
//! changing. The traits and the code every engine shares (batch
//! validation, producer state, configs, errors) are in `weir-storage`,
//! re-exported here. The on-disk format is documented byte by byte in
//! `docs/storage-format.md`.

pub mod local;

// The contract and the format code live in weir-storage, shared with
// other engines; re-exported so `weir_log::batch` and friends keep
// naming them.
pub use weir_storage::{api, batch, clock, config, error, producer, shared, stats};

pub use api::{
    AppendInfo, BoxFuture, LogEngine, LogOffsets, PartitionLog, ReadLimit, ReadResult,
    TimestampOffset, TopicPartition,
};
pub use clock::Clock;
pub use config::{LogConfig, TimestampType};
pub use error::{LogError, RecordError};
pub use local::{EngineConfig, LocalEngine};
pub use shared::{spread, BrokerAddr, ClusterLock, SharedCatalog};
pub use stats::{EngineStats, HistogramSnapshot, LatencyHistogram};

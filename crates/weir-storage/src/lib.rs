//! `weir-storage` is what every storage engine shares, apart from any one
//! engine: the async storage contract ([`LogEngine`], [`PartitionLog`] in
//! [`api`]), Kafka record batch parsing, validation and recompression
//! ([`batch`]), producer state for idempotence and transactions
//! ([`producer`]), per-partition configs ([`config`]), the error type
//! ([`LogError`]), the [`Clock`], the engine measurements ([`stats`]) and,
//! for engines several brokers share, the shared catalog ([`shared`]).
//!
//! The local engine (`weir-log`) builds on it; a second engine (cluster
//! mode's object-store partitions) implements the same traits with the
//! same validation and producer-state code, so both accept and refuse
//! exactly the same batches.

pub mod api;
pub mod batch;
pub mod clock;
pub mod config;
pub mod error;
pub mod producer;
pub mod shared;
pub mod stats;

pub use api::{
    AppendInfo, BoxFuture, LogEngine, LogOffsets, PartitionLog, ReadLimit, ReadResult,
    TimestampOffset, TopicPartition,
};
pub use clock::Clock;
pub use config::{LogConfig, TimestampType};
pub use error::{LogError, RecordError};
pub use shared::{
    share_lease, spread, BrokerAddr, ClusterLock, JoinRefused, JoinedPartition, Lease,
    SharedCatalog, SHARE_LEASE_PREFIX,
};
pub use stats::{EngineStats, HistogramSnapshot, LatencyHistogram};

//! `weir-cluster` is cluster mode's storage engine: the `weir-storage`
//! contract over an object store (data) and PostgreSQL (offsets and the
//! index), so that brokers keep no state and any broker serves any
//! partition.
//!
//! - Writes: appends from every partition gather for `flush_ms` (or until
//!   `flush_bytes`), are written as one intake object ([`format`]), and one
//!   PostgreSQL transaction then gives each partition's batches their
//!   offsets and indexes them; only then does an append's future resolve.
//!   A batch is stored with its offset relative to its chunk, so offsets
//!   can be decided after the object exists and no offset is ever taken
//!   by an object that failed to be written.
//! - Reads: the index (`weir.batches`) maps offsets to byte ranges of
//!   objects; recent chunks stay in a bounded memory cache; commits
//!   notify every broker (LISTEN/NOTIFY), which moves offsets and wakes
//!   long polls.
//! - Background work (`jobs.rs`, under leases): retention and
//!   DeleteRecords delete index rows, compaction copies intake chunks
//!   into per-partition objects and merges small adjacent ones, compacted
//!   topics are cleaned in bounded memory, and the collector deletes
//!   objects no row references after a grace period.
//!
//! The tables are in [`schema`]; ARCHITECTURE.md and
//! docs/cluster-format.md describe the design and the formats.

pub mod engine;
pub mod error;
pub mod format;
mod jobs;
mod pg_tls;
pub mod schema;

pub use engine::{open_store, ClusterConfig, ClusterEngine, ClusterPartition};
pub use error::ClusterError;

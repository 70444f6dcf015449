//! Weir's Kafka Connect compatible runtime.
//!
//! A worker is a Kafka client only: records go through librdkafka
//! (`rdkafka`), group membership through Weir's protocol client
//! (`weir-client`), so the same runtime serves inside `weir serve` and
//! standalone against any Kafka-compatible cluster. It owns:
//!
//! - the connector and task interfaces ([`connector`]) and the plugins
//!   ([`plugins`], [`file`], [`datagen`], [`postgres`]: change data
//!   capture compatible with Debezium's PostgreSQL connector, [`jdbc`]:
//!   a JDBC sink for PostgreSQL compatible with Confluent's,
//!   [`http_sink`]: Confluent's HTTP sink, and [`s3`]: the object-store
//!   sink compatible with Confluent's S3 sink);
//! - Connect's data model ([`data`]) and converters ([`converter`]), with
//!   JSON written as Kafka writes it ([`json`]);
//! - the internal topics in Kafka Connect's formats ([`storage`]);
//! - Kafka Connect's group protocol and assignor ([`protocol`]), and the
//!   herder that keeps the cluster's state and runs assigned work
//!   ([`herder`], [`worker`]);
//! - the REST API ([`rest`]), connector offsets (KIP-875, [`offsets`]),
//!   run-time log levels ([`loggers`]) and per-task metrics ([`metrics`]).
//!
//! Entry points: [`run`] serves one worker on a bound listener until a
//! shutdown future completes; [`Worker`] is the same in parts, for a host
//! that serves the router itself (`weir serve`).

pub mod avro_data;
pub mod config;
pub mod connector;
pub mod converter;
pub mod data;
pub mod datagen;
pub mod error;
pub mod file;
#[cfg(feature = "runtime")]
pub mod herder;
#[cfg(feature = "runtime")]
pub mod http;
pub mod http_sink;
#[cfg(feature = "runtime")]
pub mod internal_log;
pub mod jdbc;
pub mod json;
pub mod json_schema_data;
pub mod loggers;
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod offsets;
pub mod plugins;
pub mod postgres;
pub mod protobuf_data;
pub mod protocol;
pub mod registry_converter;
#[cfg(feature = "runtime")]
pub mod rest;
#[cfg(feature = "runtime")]
mod runtime;
#[cfg(feature = "runtime")]
pub mod s3;
pub mod storage;
pub mod timefmt;
pub mod transform_config;
pub mod transforms;
pub mod tz;
pub mod unwrap;
#[cfg(feature = "runtime")]
pub mod worker;
#[cfg(feature = "runtime")]
pub use runtime::{rest_url, run, Worker};

pub use config::WorkerConfig;
pub use error::{ConnectError, Result};

/// The Kafka Connect version whose REST API and formats this runtime
/// follows (`GET /` reports it).
pub const KAFKA_VERSION: &str = "4.3.0";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

//! Streaming SQL over Kafka topics, compatible with ksqlDB: its statement
//! language, its per-record semantics for streams and tables, and its REST
//! API.
//!
//! The crate owns the language (lexer, parser, types, functions), the
//! pure streaming operators that turn input records into output records
//! and state changes, the runtime that drives them as Kafka clients
//! (through `rdkafka`, one transaction per batch), and the HTTP server.
//! It reaches Kafka only over the protocol, so it runs against any
//! Kafka-compatible cluster.

pub mod aggregate;
pub mod ast;
pub mod catalog;
pub mod decimal;
#[cfg(feature = "server")]
pub mod engine;
pub mod error;
pub mod expr;
pub mod format;
pub mod functions;
pub mod join;
pub mod json;
pub mod lexer;
pub mod parser;
pub mod plan;
pub mod print;
pub mod processing_log;
#[cfg(feature = "server")]
pub mod registry;
#[cfg(feature = "server")]
pub mod rest;
#[cfg(feature = "server")]
pub mod runtime;
pub mod sr;
pub mod state;
pub mod task;
pub mod time;
pub mod types;

pub use error::{Result, SqlError};

#[cfg(feature = "server")]
pub use engine::{Engine, EngineConfig};
#[cfg(feature = "server")]
pub use runtime::KafkaSettings;

//! `weir-formats` owns Confluent's schema formats for every Weir service
//! that reads or writes schema'd records (Connect's converters, streaming
//! SQL's formats, the REST proxy's embedded formats) and for the schema
//! registry itself:
//!
//! - [`wire`]: Confluent's wire format (magic byte, schema id, Protobuf
//!   message indexes);
//! - [`client`]: an async schema registry client with Confluent's caching;
//! - [`serdes`]: subject name strategies and serializer settings;
//! - [`avro`]: Avro schemas, binary and JSON encodings on `apache-avro`,
//!   and the Avro serializer and deserializer;
//! - [`protobuf`]: `.proto` compiled by `protox`, dynamic messages of
//!   `prost-reflect` picked by message indexes, canonical JSON;
//! - [`json_schema`]: JSON Schema compiled and validated by `jsonschema`,
//!   the JSON_SR serializer and deserializer;
//! - [`compat`]: the schema registry's compatibility rules for the three
//!   types, used by the registry and by the serializers'
//!   `latest.compatibility.strict` check.
//!
//! The libraries are re-exported so users name their types without
//! matching versions.
//!
//! It is a library: no networking beyond the registry client, and no
//! dependency on the broker.

pub mod avro;
mod avro_check;
pub mod client;
pub mod compat;
mod error;
pub mod json_schema;
pub mod protobuf;
pub mod schema;
pub mod serdes;
pub mod wire;

pub use {apache_avro, jsonschema, prost_reflect};

pub use client::{Auth, RegistryConfig, SchemaRegistryClient};
pub use error::FormatError;
pub use schema::{Reference, RegisteredSchema, ResolvedReference, Schema, SchemaType};
pub use serdes::{Field, SerdeConfig, SubjectNameStrategy};

//! What a connector implements, shaped like Kafka Connect's API so native
//! connectors (files here; databases and object stores later) plug in the
//! same way Java connectors do:
//!
//! - a [`Connector`] validates its config and computes its tasks' configs;
//! - a [`SourceTask`] polls records, each with a source partition and
//!   offset; the runtime writes records and offsets together (in one
//!   transaction under exactly-once support) and hands the last committed
//!   offsets back to a restarted task through an [`OffsetReader`];
//! - a [`SinkTask`] is given records with `put`, and `flush`es before the
//!   runtime commits the consumer offsets that cover them (`pre_commit`
//!   may commit less); records it cannot deliver it reports as errant
//!   ([`SinkTask::errant_records`], Kafka's `ErrantRecordReporter`), and
//!   the runtime fails the task or dead-letters them per
//!   `errors.tolerance` before committing offsets past them.
//!
//! Tasks run on threads of their own, so they may block in `poll` and
//! `put` (for a bounded time: a second or so, so stops are prompt).

use std::collections::BTreeMap;

use crate::config::ConfigDef;
use crate::data::SchemaAndValue;
use crate::error::{ConnectError, Result};
use crate::json::Json;

/// A connector or task config: Kafka Connect's string properties.
pub type Props = BTreeMap<String, String>;

/// Props from literal pairs, for tests.
#[cfg(test)]
pub(crate) fn props(pairs: &[(&str, &str)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A record header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: SchemaAndValue,
}

/// What sources produce and sinks receive (Kafka's `ConnectRecord`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: SchemaAndValue,
    pub value: SchemaAndValue,
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

impl ConnectRecord {
    /// A record for `topic` with a schemaless null key.
    pub fn new(topic: &str, value: SchemaAndValue) -> Self {
        Self {
            topic: topic.to_string(),
            partition: None,
            key: SchemaAndValue::null(),
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }
}

/// A record from a source task with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// The source partition, a JSON object (`{"filename": ...}`).
    pub source_partition: Json,
    /// The position after this record, a JSON object (`{"position": ...}`).
    pub source_offset: Json,
    pub record: ConnectRecord,
}

/// A record given to a sink task, with its Kafka coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    pub record: ConnectRecord,
    pub kafka_offset: i64,
    /// Where it was read, before transforms renamed anything.
    pub original_topic: String,
    pub original_partition: i32,
}

/// A record a sink task could not deliver, and why (what Kafka's
/// `ErrantRecordReporter.report` takes, KIP-610).
pub type ErrantRecord = (SinkRecord, ConnectError);

/// Topic partition → the next offset to read.
pub type SinkOffsets = BTreeMap<(String, i32), i64>;

/// Committed source offsets, for a task starting up.
pub trait OffsetReader: Send + Sync {
    /// The last committed offset of `partition`, as JSON.
    fn offset(&self, partition: &Json) -> Option<serde_json::Value>;
}

/// Source or sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    Source,
    Sink,
}

impl ConnectorType {
    /// Kafka's REST spelling.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

/// A connector instance: validates, then computes task configs.
pub trait Connector: Send + Sync {
    /// Starts with a validated config.
    fn start(&mut self, config: &Props) -> Result<()>;
    /// Configs for at most `max_tasks` tasks.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>>;
    /// Stops; releases whatever `start` took.
    fn stop(&mut self) {}
    /// Checks an alteration of the connector's offsets (KIP-875; a `None`
    /// offset resets its partition) before the runtime writes it, as
    /// Kafka's `alterOffsets`: called on a fresh instance with the
    /// connector's config. Sink partitions and offsets come as Kafka's
    /// REST API spells them (`kafka_topic`, `kafka_partition`,
    /// `kafka_offset`). `Ok(true)`: the connector keeps no offsets of its
    /// own elsewhere, so the change is complete; `Ok(false)` (the
    /// default) makes the answer warn that external offsets may need the
    /// same change.
    fn alter_offsets(&self, config: &Props, offsets: &[OffsetChange]) -> Result<bool> {
        let _ = (config, offsets);
        Ok(false)
    }
}

/// One partition of an offsets alteration: the partition, and its new
/// offset or `None` to reset it.
pub type OffsetChange = (serde_json::Value, Option<serde_json::Value>);

/// A source task.
pub trait SourceTask: Send {
    /// Starts from the committed offsets.
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<()>;
    /// The next records; may be empty; should return within about a second.
    fn poll(&mut self) -> Result<Vec<SourceRecord>>;
    /// Offsets to commit without a record, as (source partition, offset)
    /// (what Kafka's `SourceTask.updateOffsets` of KIP-910 allows), taken
    /// after `start` and after every poll, placed after that poll's
    /// records. The runtime
    /// commits them at once (in a transaction under exactly-once support,
    /// after the records before them are acknowledged otherwise), then
    /// calls `commit`: a task can make a decision durable before acting
    /// on it.
    fn offsets_without_records(&mut self) -> Vec<(Json, Json)> {
        Vec::new()
    }
    /// Called after the records polled so far and their offsets are
    /// committed.
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }
    /// Stops.
    fn stop(&mut self) {}
}

/// A sink task.
pub trait SinkTask: Send {
    /// Starts.
    fn start(&mut self, config: &Props) -> Result<()>;
    /// Takes records; may buffer them until `flush`.
    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()>;
    /// Makes durable everything put so far, up to `offsets`.
    fn flush(&mut self, offsets: &SinkOffsets) -> Result<()>;
    /// The offsets safe to commit; by default flushes and commits all.
    fn pre_commit(&mut self, offsets: &SinkOffsets) -> Result<SinkOffsets> {
        self.flush(offsets)?;
        Ok(offsets.clone())
    }
    /// A string committed with the offsets (Kafka's offset metadata),
    /// read after a flush; lets a sink tie its own state to the commit.
    fn commit_metadata(&mut self) -> Option<String> {
        None
    }
    /// The records the task gave up on since the last call (Kafka's
    /// `ErrantRecordReporter`, stage `TASK_PUT`). The runtime takes them
    /// after every `put` and `pre_commit`: under `errors.tolerance=none`
    /// the task fails with the cause; under `all` they are logged and
    /// written to the dead-letter queue as they are in Kafka (read back by
    /// offset), acknowledged before the offsets covering them are
    /// committed.
    fn errant_records(&mut self) -> Vec<ErrantRecord> {
        Vec::new()
    }
    /// Given before `start`: set once the runtime asks the task to stop,
    /// so a task blocked in `put` or `flush` (retrying a request) can give
    /// up by returning an error. The runtime then commits nothing past
    /// what earlier flushes covered and does not report the task failed.
    fn watch_stop(&mut self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let _ = stop;
    }
    /// Called after `start` with the metadata of the last commit, before
    /// any `put`.
    fn restore(&mut self, metadata: Option<&str>) -> Result<()> {
        let _ = metadata;
        Ok(())
    }
    /// Stops.
    fn stop(&mut self) {}
}

/// A connector plugin: its class name, aliases, kind, version, config
/// definition and constructors.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// Kafka's class name, `org.apache.kafka.connect.file.FileStreamSourceConnector`.
    pub class: &'static str,
    pub kind: ConnectorType,
    pub version: &'static str,
    /// The connector's own configs (the runtime adds the common ones).
    pub config_def: fn() -> ConfigDef,
    pub connector: fn() -> Box<dyn Connector>,
    /// For sources.
    pub source_task: Option<fn() -> Box<dyn SourceTask>>,
    /// For sinks.
    pub sink_task: Option<fn() -> Box<dyn SinkTask>>,
}

impl Plugin {
    /// The simple class name (`FileStreamSourceConnector`).
    pub fn simple_name(&self) -> &'static str {
        self.class.rsplit('.').next().unwrap_or(self.class)
    }

    /// Whether `name` refers to this plugin: the class name, the simple
    /// name, or the simple name without `Connector`, as Kafka's plugin
    /// aliases.
    pub fn matches(&self, name: &str) -> bool {
        let simple = self.simple_name();
        name == self.class || name == simple || Some(name) == simple.strip_suffix("Connector")
    }
}

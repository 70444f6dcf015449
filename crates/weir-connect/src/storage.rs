//! The three internal topics, in Kafka Connect's formats, so a cluster's
//! state reads the same to Weir and to Kafka's own tools:
//!
//! - config topic (one compacted partition): `connector-<c>` →
//!   `{"properties":{...}}`, `task-<c>-<n>` → `{"properties":{...}}`,
//!   `commit-<c>` → `{"tasks":N}` (the task configs before it take effect
//!   only with it), `target-state-<c>` → `{"state":"PAUSED","state.v2":"STOPPED"}`,
//!   `restart-connector-<c>` → `{"include-tasks":b,"only-failed":b}`; a
//!   deleted connector is a tombstone for `connector-<c>` and
//!   `target-state-<c>`.
//! - status topic (compacted): `status-connector-<c>` and
//!   `status-task-<c>-<n>` → `{"state":..,"trace":..,"worker_id":..,"generation":..}`;
//!   `status-topic-<t>:connector-<c>` → `{"topic":{"name",..}}`.
//! - offset topic (compacted): `["<c>",{partition}]` → `{offset}`.
//!
//! Values are what Kafka's JsonConverter writes without schemas, byte for
//! byte. [`TopicLog`] reads a topic from its start on a thread of its own
//! and knows when it has read to the end; writes go through an idempotent
//! `acks=all` producer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::WorkerConfig;
use crate::connector::Props;
use crate::error::{ConnectError, Result};
use crate::json::Json;
use crate::worker::Quiet;

/// A connector's target state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

impl TargetState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Started => "STARTED",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "STARTED" => Some(Self::Started),
            "PAUSED" => Some(Self::Paused),
            "STOPPED" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// `{"properties":{...}}`.
pub fn properties_value(props: &Props) -> Vec<u8> {
    Json::obj([(
        "properties",
        Json::Obj(
            props
                .iter()
                .map(|(k, v)| (k.clone(), Json::str(v.clone())))
                .collect(),
        ),
    )])
    .to_text()
    .into_bytes()
}

/// `{"tasks":N}`.
pub fn commit_value(tasks: usize) -> Vec<u8> {
    Json::obj([("tasks", Json::Int(tasks as i64))])
        .to_text()
        .into_bytes()
}

/// Kafka 3.5+'s target state record: older workers read `state` (STOPPED
/// reads as PAUSED there), newer ones `state.v2`.
pub fn target_state_value(state: TargetState) -> Vec<u8> {
    let v1 = if state == TargetState::Stopped {
        TargetState::Paused
    } else {
        state
    };
    Json::obj([
        ("state", Json::str(v1.name())),
        ("state.v2", Json::str(state.name())),
    ])
    .to_text()
    .into_bytes()
}

/// `{"include-tasks":b,"only-failed":b}`.
pub fn restart_value(include_tasks: bool, only_failed: bool) -> Vec<u8> {
    Json::obj([
        ("include-tasks", Json::Bool(include_tasks)),
        ("only-failed", Json::Bool(only_failed)),
    ])
    .to_text()
    .into_bytes()
}

/// A status record's value.
pub fn status_value(state: &str, trace: Option<&str>, worker_id: &str, generation: i32) -> Vec<u8> {
    Json::obj([
        ("state", Json::str(state)),
        ("trace", trace.map_or(Json::Null, Json::str)),
        ("worker_id", Json::str(worker_id)),
        ("generation", Json::Int(i64::from(generation))),
    ])
    .to_text()
    .into_bytes()
}

/// A topic status record (`status-topic-<t>:connector-<c>`).
pub fn topic_status_value(topic: &str, connector: &str, task: i32, now_ms: i64) -> Vec<u8> {
    Json::obj([(
        "topic",
        Json::obj([
            ("name", Json::str(topic)),
            ("connector", Json::str(connector)),
            ("task", Json::Int(i64::from(task))),
            ("discoverTimestamp", Json::Int(now_ms)),
        ]),
    )])
    .to_text()
    .into_bytes()
}

/// The offset topic's key for a connector's source partition.
pub fn offset_key(connector: &str, partition: &Json) -> Vec<u8> {
    Json::Arr(vec![Json::str(connector), partition.clone()])
        .to_text()
        .into_bytes()
}

/// A connector's and its tasks' state as the status topic tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: String,
    pub trace: Option<String>,
    pub worker_id: String,
    pub generation: i32,
}

/// Parses a status value.
pub fn parse_status(v: &[u8]) -> Option<Status> {
    let j: serde_json::Value = serde_json::from_slice(v).ok()?;
    Some(Status {
        state: j.get("state")?.as_str()?.to_string(),
        trace: j.get("trace").and_then(|t| t.as_str()).map(str::to_string),
        worker_id: j
            .get("worker_id")
            .and_then(|w| w.as_str())
            .unwrap_or_default()
            .to_string(),
        generation: j
            .get("generation")
            .and_then(|g| g.as_i64())
            .and_then(|g| i32::try_from(g).ok())
            .unwrap_or(-1),
    })
}

/// A restart request from the config topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    pub connector: String,
    pub include_tasks: bool,
    pub only_failed: bool,
}

/// The cluster's configuration, as the config topic builds it.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// The config topic offset after the last record applied.
    pub offset: i64,
    pub connectors: BTreeMap<String, Props>,
    /// Committed task configs.
    pub tasks: BTreeMap<String, Vec<Props>>,
    pub targets: BTreeMap<String, TargetState>,
    /// Task configs written but not committed yet.
    deferred: BTreeMap<String, BTreeMap<usize, Props>>,
    /// Restart requests not yet handled, in order.
    pub restarts: Vec<RestartRequest>,
}

fn parse_props(v: &[u8]) -> Option<Props> {
    let j: serde_json::Value = serde_json::from_slice(v).ok()?;
    let props = j.get("properties")?.as_object()?;
    Some(
        props
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
    )
}

impl ClusterConfig {
    /// Applies one config topic record at `offset`.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>, offset: i64) {
        self.offset = offset + 1;
        if let Some(name) = key.strip_prefix("connector-") {
            match value.and_then(parse_props) {
                Some(p) => {
                    self.connectors.insert(name.to_string(), p);
                    self.targets
                        .entry(name.to_string())
                        .or_insert(TargetState::Started);
                }
                None => {
                    self.connectors.remove(name);
                    self.tasks.remove(name);
                    self.targets.remove(name);
                    self.deferred.remove(name);
                }
            }
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let state = value
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                .and_then(|j| {
                    j.get("state.v2")
                        .or_else(|| j.get("state"))
                        .and_then(|s| s.as_str())
                        .and_then(TargetState::parse)
                });
            match state {
                Some(s) => {
                    self.targets.insert(name.to_string(), s);
                }
                None if value.is_none() => {
                    self.targets.remove(name);
                }
                None => warn!(key, "unreadable target state record"),
            }
        } else if let Some(rest) = key.strip_prefix("task-") {
            // `task-<connector>-<n>`: the connector name may contain `-`.
            let Some((name, n)) = rest.rsplit_once('-') else {
                return;
            };
            let (Ok(n), Some(p)) = (n.parse::<usize>(), value.and_then(parse_props)) else {
                return;
            };
            self.deferred
                .entry(name.to_string())
                .or_default()
                .insert(n, p);
        } else if let Some(name) = key.strip_prefix("commit-") {
            let count = value
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                .and_then(|j| j.get("tasks").and_then(|t| t.as_u64()));
            let Some(count) = count else { return };
            let deferred = self.deferred.remove(name).unwrap_or_default();
            let tasks: Vec<Props> = (0..count as usize)
                .map_while(|i| deferred.get(&i).cloned())
                .collect();
            if tasks.len() == count as usize {
                self.tasks.insert(name.to_string(), tasks);
            } else {
                warn!(connector = name, "task commit without all its task configs");
            }
        } else if let Some(name) = key.strip_prefix("restart-connector-") {
            if let Some(j) = value.and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            {
                self.restarts.push(RestartRequest {
                    connector: name.to_string(),
                    include_tasks: j.get("include-tasks").and_then(|b| b.as_bool()) == Some(true),
                    only_failed: j.get("only-failed").and_then(|b| b.as_bool()) == Some(true),
                });
            }
        }
    }
}

/// One record read from an internal topic.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Next offset to read, per partition.
    positions: HashMap<i32, i64>,
    /// When each partition last reported its end (read_committed: the LSO).
    eof_at: HashMap<i32, Instant>,
    failed: Option<String>,
}

/// Reads one topic from its start, forever, into a channel, remembering
/// how far it got.
pub struct TopicLog {
    topic: String,
    progress: Arc<Mutex<Progress>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    meta: BaseConsumer<Quiet>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TopicLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TopicLog({})", self.topic)
    }
}

impl TopicLog {
    /// Starts reading `topic` (read_committed) into `tx`.
    pub fn start(
        worker: &WorkerConfig,
        topic: &str,
        tx: mpsc::UnboundedSender<LogRecord>,
    ) -> Result<Self> {
        let mut overrides = Props::new();
        overrides.insert("group.id".into(), format!("{}-reader", worker.group_id));
        overrides.insert("enable.auto.commit".into(), "false".into());
        overrides.insert("enable.partition.eof".into(), "true".into());
        overrides.insert("isolation.level".into(), "read_committed".into());
        overrides.insert("auto.offset.reset".into(), "earliest".into());
        let consumer: BaseConsumer<Quiet> = worker
            .rdkafka("consumer.", &overrides)
            .create_with_context(Quiet)?;
        let meta: BaseConsumer<Quiet> = worker
            .rdkafka("consumer.", &overrides)
            .create_with_context(Quiet)?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(ConnectError::kafka)?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            return Err(ConnectError::kafka(format!(
                "topic {topic} has no partitions"
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(ConnectError::kafka)?;
        }
        consumer.assign(&tpl)?;
        let progress = Arc::new(Mutex::new(Progress {
            positions: parts.iter().map(|p| (*p, 0)).collect(),
            ..Progress::default()
        }));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p2, s2, name) = (progress.clone(), stop.clone(), topic.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("connect-log-{topic}"))
            .spawn(move || read_loop(consumer, name, tx, p2, s2))
            .map_err(|e| ConnectError::Io {
                context: "cannot start a reader thread".into(),
                source: e,
            })?;
        Ok(Self {
            topic: topic.to_string(),
            progress,
            stop,
            meta,
            thread: Some(thread),
        })
    }

    /// Waits until everything written to the topic before this call has
    /// been read (or `timeout` passes).
    pub async fn read_to_end(&self, timeout: Duration) -> Result<()> {
        let asked = Instant::now();
        let mut ends = HashMap::new();
        {
            let parts: Vec<i32> = self.lock().positions.keys().copied().collect();
            for p in parts {
                let (_, high) = self
                    .meta
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                    .map_err(ConnectError::kafka)?;
                ends.insert(p, high);
            }
        }
        let deadline = asked + timeout;
        loop {
            {
                let g = self.lock();
                if let Some(why) = &g.failed {
                    return Err(ConnectError::kafka(format!(
                        "reading {} failed: {why}",
                        self.topic
                    )));
                }
                let done = ends.iter().all(|(p, end)| {
                    g.positions.get(p).copied().unwrap_or(0) >= *end
                        || g.eof_at.get(p).is_some_and(|t| *t > asked)
                });
                if done {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(ConnectError::Unavailable {
                    message: format!("timed out reading to the end of {}", self.topic),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(
    consumer: BaseConsumer<Quiet>,
    topic: String,
    tx: mpsc::UnboundedSender<LogRecord>,
    progress: Arc<Mutex<Progress>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let rec = LogRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                };
                progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .positions
                    .insert(m.partition(), m.offset() + 1);
                if tx.send(rec).is_err() {
                    return;
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                let mut g = progress.lock().unwrap_or_else(|e| e.into_inner());
                g.eof_at.insert(p, Instant::now());
            }
            Some(Err(e)) => {
                debug!(%topic, error = %e, "internal topic reader");
                if matches!(
                    e,
                    rdkafka::error::KafkaError::MessageConsumption(
                        rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                    )
                ) {
                    progress.lock().unwrap_or_else(|e| e.into_inner()).failed = Some(e.to_string());
                }
            }
        }
    }
}

/// Writes records to the internal topics: idempotent, `acks=all`.
#[derive(Clone)]
pub struct LogWriter {
    producer: FutureProducer,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWriter")
    }
}

impl LogWriter {
    /// A producer for the worker's internal writes.
    pub fn new(worker: &WorkerConfig) -> Result<Self> {
        let mut o = Props::new();
        o.insert("enable.idempotence".into(), "true".into());
        o.insert("acks".into(), "all".into());
        o.insert("linger.ms".into(), "0".into());
        Ok(Self {
            producer: worker.rdkafka("producer.", &o).create()?,
        })
    }

    /// Writes one record and waits for its acknowledgement.
    pub async fn send(&self, topic: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key);
        if let Some(v) = value {
            r = r.payload(v);
        }
        self.producer
            .send(r, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| ConnectError::kafka(format!("writing to {topic}: {e}")))?;
        Ok(())
    }
}

/// Creates the internal topics that are missing, compacted, with the
/// worker's partition counts and replication factors.
pub async fn ensure_topics(worker: &WorkerConfig) -> Result<()> {
    let config = weir_client::ClientConfig {
        timeout: Duration::from_secs(30),
        client_id: "weir-connect".into(),
        security: worker.security.clone(),
    };
    let mut admin = weir_client::Admin::connect_with(&worker.bootstrap, config).await?;
    let topics = [
        (&worker.config_topic, 1, worker.config_replication),
        (
            &worker.offset_topic,
            worker.offset_partitions,
            worker.offset_replication,
        ),
        (
            &worker.status_topic,
            worker.status_partitions,
            worker.status_replication,
        ),
    ];
    for (name, partitions, rf) in topics {
        let t = weir_client::NewTopic {
            name: name.clone(),
            partitions,
            replication_factor: rf,
            configs: vec![("cleanup.policy".into(), "compact".into())],
        };
        match admin.create_topic(&t, false).await {
            Ok(_) => {}
            // TOPIC_ALREADY_EXISTS
            Err(e) if e.code() == Some(36) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kafka_s_json() {
        let mut p = Props::new();
        p.insert("connector.class".into(), "FileStreamSource".into());
        p.insert("tasks.max".into(), "1".into());
        assert_eq!(
            String::from_utf8(properties_value(&p)).unwrap(),
            r#"{"properties":{"connector.class":"FileStreamSource","tasks.max":"1"}}"#
        );
        assert_eq!(commit_value(2), br#"{"tasks":2}"#);
        assert_eq!(
            target_state_value(TargetState::Stopped),
            br#"{"state":"PAUSED","state.v2":"STOPPED"}"#
        );
        assert_eq!(
            status_value("RUNNING", None, "127.0.0.1:8083", 3),
            br#"{"state":"RUNNING","trace":null,"worker_id":"127.0.0.1:8083","generation":3}"#
        );
        assert_eq!(
            offset_key("c", &Json::obj([("filename", Json::str("/a"))])),
            br#"["c",{"filename":"/a"}]"#
        );
    }

    #[test]
    fn task_configs_take_effect_with_their_commit() {
        let mut c = ClusterConfig::default();
        let p = properties_value(&[("a".to_string(), "b".to_string())].into());
        c.apply("connector-my-conn", Some(&p), 0);
        c.apply("task-my-conn-0", Some(&p), 1);
        assert!(!c.tasks.contains_key("my-conn"));
        c.apply("commit-my-conn", Some(&commit_value(1)), 2);
        assert_eq!(c.tasks["my-conn"].len(), 1);
        assert_eq!(c.targets["my-conn"], TargetState::Started);
        c.apply(
            "target-state-my-conn",
            Some(&target_state_value(TargetState::Stopped)),
            3,
        );
        assert_eq!(c.targets["my-conn"], TargetState::Stopped);
        c.apply("connector-my-conn", None, 4);
        assert!(c.connectors.is_empty() && c.tasks.is_empty());
        assert_eq!(c.offset, 5);
    }
}

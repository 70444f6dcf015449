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
//! byte. Reading and writing the topics is `internal_log`'s business.

use std::collections::BTreeMap;

use tracing::warn;

use crate::connector::Props;
use crate::json::Json;

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
    /// The most tasks each connector has had committed: the transactional
    /// ids to fence before its source offsets change under exactly-once
    /// support (a stopped connector has no task configs left).
    pub task_peak: BTreeMap<String, usize>,
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
                    self.task_peak.remove(name);
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
                let peak = self.task_peak.entry(name.to_string()).or_default();
                *peak = (*peak).max(tasks.len());
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
        // Stopping commits no tasks; the peak still names the ids to fence.
        c.apply("commit-my-conn", Some(&commit_value(0)), 4);
        assert!(c.tasks["my-conn"].is_empty());
        assert_eq!(c.task_peak["my-conn"], 1);
        c.apply("connector-my-conn", None, 5);
        assert!(c.connectors.is_empty() && c.tasks.is_empty() && c.task_peak.is_empty());
        assert_eq!(c.offset, 6);
    }
}

//! Connector offsets as KIP-875's REST API shows and changes them: a
//! source connector's are its records in the offset topic, a sink
//! connector's are the committed offsets of its consumer group
//! (`connect-<name>`), read and changed through the Kafka protocol as an
//! admin client does. Changes are only made to a STOPPED connector; the
//! herder checks that and calls [`alter`].

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;
use weir_client::{Admin, ClientConfig};

use crate::config::WorkerConfig;
use crate::connector::{ConnectorType, OffsetChange, Props};
use crate::error::{ConnectError, Result};
use crate::internal_log::LogWriter;
use crate::json::Json;
use crate::plugins;
use crate::storage::offset_key;

/// The consumer group of a sink connector's tasks.
pub fn sink_group(connector: &str) -> String {
    format!("connect-{connector}")
}

async fn admin(w: &WorkerConfig) -> Result<Admin> {
    Ok(Admin::connect_with(
        &w.bootstrap,
        ClientConfig {
            timeout: Duration::from_secs(30),
            client_id: format!("connect-{}-offsets", w.worker_id()),
            security: w.security.clone(),
        },
    )
    .await?)
}

fn kind(config: &Props) -> Result<ConnectorType> {
    config
        .get("connector.class")
        .and_then(|c| plugins::find(c))
        .map(|p| p.kind)
        .ok_or_else(|| ConnectError::failed("unknown connector class"))
}

/// `GET /connectors/{c}/offsets`: `{"offsets":[{"partition","offset"}]}`,
/// in partition order.
pub async fn list(w: &Arc<WorkerConfig>, name: &str, config: &Props) -> Result<Json> {
    let entries: Vec<Json> = match kind(config)? {
        ConnectorType::Source => {
            let (w, n) = (w.clone(), name.to_string());
            let found =
                tokio::task::spawn_blocking(move || crate::worker::read_source_offsets(&w, &n))
                    .await
                    .map_err(|e| ConnectError::failed(format!("reading offsets: {e}")))?
                    .map_err(|e| {
                        ConnectError::failed(format!(
                            "Failed to retrieve offsets for source connector {name}: {e}"
                        ))
                    })?;
            let mut found: Vec<(String, serde_json::Value)> = found.into_iter().collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found
                .into_iter()
                .filter_map(|(p, o)| {
                    let p: serde_json::Value = serde_json::from_str(&p).ok()?;
                    Some(entry(Json::from_serde(&p), Json::from_serde(&o)))
                })
                .collect()
        }
        ConnectorType::Sink => {
            let committed = async {
                Ok::<_, ConnectError>(admin(w).await?.committed_offsets(&sink_group(name)).await?)
            }
            .await
            .map_err(|e| {
                ConnectError::failed(format!(
                    "Failed to retrieve consumer group offsets for sink connector {name}: {e}"
                ))
            })?;
            committed
                .into_iter()
                .map(|((t, p), o)| entry(sink_partition(&t, p), sink_offset(o)))
                .collect()
        }
    };
    Ok(Json::obj([("offsets", Json::Arr(entries))]))
}

fn entry(partition: Json, offset: Json) -> Json {
    Json::obj([("partition", partition), ("offset", offset)])
}

fn sink_partition(topic: &str, partition: i32) -> Json {
    Json::obj([
        ("kafka_topic", Json::str(topic)),
        ("kafka_partition", Json::Int(i64::from(partition))),
    ])
}

fn sink_offset(offset: i64) -> Json {
    Json::obj([("kafka_offset", Json::Int(offset))])
}

/// The body of `PATCH /connectors/{c}/offsets`: its `offsets`, which must
/// not be empty.
pub fn parse_request(body: &serde_json::Value) -> Result<Vec<OffsetChange>> {
    let entries = body
        .get("offsets")
        .and_then(|o| o.as_array())
        .filter(|o| !o.is_empty())
        .ok_or_else(|| {
            ConnectError::bad_request(
                "Partitions / offsets need to be provided for an alter offsets request",
            )
        })?;
    Ok(entries
        .iter()
        .map(|e| {
            let partition = e.get("partition").cloned().unwrap_or_default();
            let offset = e.get("offset").cloned().filter(|o| !o.is_null());
            (partition, offset)
        })
        .collect())
}

/// A value Kafka parses with `Integer.parseInt`/`Long.parseLong` of its
/// string form.
fn java_integer(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn java_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A sink alteration as topic partitions and offsets, with Kafka's
/// messages for what does not parse.
type SinkChange = ((String, i32), Option<i64>);

fn parse_sink(offsets: &[OffsetChange]) -> Result<Vec<SinkChange>> {
    let mut out = Vec::new();
    for (partition, offset) in offsets {
        if partition.is_null() {
            return Err(ConnectError::bad_request(
                "The partition for a sink connector offset cannot be null or missing",
            ));
        }
        let (Some(topic), Some(part)) = (
            partition.get("kafka_topic"),
            partition.get("kafka_partition"),
        ) else {
            return Err(ConnectError::bad_request(
                "The partition for a sink connector offset must contain the keys 'kafka_topic' and 'kafka_partition'",
            ));
        };
        let part = java_integer(part)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| {
                ConnectError::bad_request(format!(
                    "Failed to parse the following Kafka partition value in the provided offsets: '{}'. Partition values for sink connectors need to be integers.",
                    java_text(part)
                ))
            })?;
        let offset = match offset {
            None => None,
            Some(o) => {
                let Some(v) = o.get("kafka_offset") else {
                    return Err(ConnectError::bad_request(
                        "The offset for a sink connector should either be null or contain the key 'kafka_offset'",
                    ));
                };
                Some(java_integer(v).ok_or_else(|| {
                    ConnectError::bad_request(format!(
                        "Failed to parse the following Kafka offset value in the provided offsets: '{}'. Offset values for sink connectors need to be integers.",
                        java_text(v)
                    ))
                })?)
            }
        };
        out.push(((java_text(topic), part), offset));
    }
    Ok(out)
}

/// The answer to a successful change: whether the connector vouched for
/// it (`complete`) decides Kafka's wording.
pub fn message(complete: bool, reset: bool) -> String {
    let what = if reset { "reset" } else { "altered" };
    if complete {
        format!("The offsets for this connector have been {what} successfully")
    } else {
        format!("The Connect framework-managed offsets for this connector have been {what} successfully. However, if this connector manages offsets externally, they will need to be manually {what} in the system that the connector uses.")
    }
}

/// Alters (`Some`) or resets (`None`) a stopped connector's offsets;
/// `Ok(complete)` as [`crate::connector::Connector::alter_offsets`].
/// Under exactly-once source support a source connector's `task_peak`
/// tasks (the most it has had) are fenced first and the offsets written in
/// a transaction.
pub async fn alter(
    w: &Arc<WorkerConfig>,
    writer: &LogWriter,
    name: &str,
    config: &Props,
    task_peak: usize,
    change: Option<Vec<OffsetChange>>,
) -> Result<bool> {
    let plugin = config
        .get("connector.class")
        .and_then(|c| plugins::find(c))
        .ok_or_else(|| ConnectError::failed("unknown connector class"))?;
    let instance = (plugin.connector)();
    let reset = change.is_none();
    match plugin.kind {
        ConnectorType::Source if w.exactly_once_source => {
            let (w, name, config) = (w.clone(), name.to_string(), config.clone());
            let tasks = task_peak;
            tokio::task::spawn_blocking(move || {
                crate::worker::alter_source_offsets_fenced(
                    &w,
                    &name,
                    &config,
                    tasks,
                    change,
                    |offsets| instance.alter_offsets(&config, offsets),
                )
            })
            .await
            .map_err(|e| ConnectError::failed(format!("changing offsets: {e}")))?
        }
        ConnectorType::Source => {
            let offsets = match change {
                Some(c) => c,
                None => {
                    let (w2, n) = (w.clone(), name.to_string());
                    let found = tokio::task::spawn_blocking(move || {
                        crate::worker::read_source_offsets(&w2, &n)
                    })
                    .await
                    .map_err(|e| ConnectError::failed(format!("reading offsets: {e}")))??;
                    found
                        .into_keys()
                        .filter_map(|p| serde_json::from_str(&p).ok())
                        .map(|p| (p, None))
                        .collect()
                }
            };
            let complete = instance.alter_offsets(config, &offsets)?;
            for (partition, offset) in &offsets {
                let key = offset_key(name, &Json::from_serde(partition));
                let value = offset.as_ref().map(|o| Json::from_serde(o).to_text());
                writer
                    .send(&w.offset_topic, &key, value.as_deref().map(str::as_bytes))
                    .await
                    .map_err(|e| {
                        ConnectError::failed(format!(
                            "Failed to modify offsets for source connector {name}: {e}"
                        ))
                    })?;
            }
            Ok(complete)
        }
        ConnectorType::Sink => {
            let group = sink_group(name);
            let mut admin = admin(w).await?;
            let changes = match change {
                Some(c) => parse_sink(&c)?,
                None => admin
                    .committed_offsets(&group)
                    .await
                    .map_err(|e| {
                        ConnectError::failed(format!(
                            "Failed to list offsets prior to resetting offsets for sink connector {name}: {e}"
                        ))
                    })?
                    .into_keys()
                    .map(|tp| (tp, None))
                    .collect(),
            };
            let as_json: Vec<OffsetChange> = changes
                .iter()
                .map(|((t, p), o)| {
                    let p = serde_json::json!({"kafka_topic": t, "kafka_partition": p});
                    (p, o.map(|o| serde_json::json!({ "kafka_offset": o })))
                })
                .collect();
            let complete = instance.alter_offsets(config, &as_json)?;
            let zombie = |e: weir_client::ClientError| {
                warn!(connector = name, error = %e, "changing a sink connector's group offsets");
                let what = if reset { "reset" } else { "alter" };
                ConnectError::failed(format!(
                    "Failed to {what} consumer group offsets for connector {name} either because its tasks haven't stopped completely yet or the connector was resumed before the request to {what} its offsets could be successfully completed. If the connector is in a stopped state, this operation can be safely retried. If it doesn't eventually succeed, the Connect cluster may need to be restarted to get rid of the zombie sink tasks."
                ))
            };
            let commits: Vec<(String, i32, i64)> = changes
                .iter()
                .filter_map(|((t, p), o)| o.map(|o| (t.clone(), *p, o)))
                .collect();
            if !commits.is_empty() {
                admin
                    .commit_offsets(&group, &commits)
                    .await
                    .map_err(zombie)?;
            }
            let mut deletes: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
            for ((t, p), o) in &changes {
                if o.is_none() {
                    deletes.entry(t.clone()).or_default().push(*p);
                }
            }
            if !deletes.is_empty() {
                let selection: Vec<(String, Option<Vec<i32>>)> =
                    deletes.into_iter().map(|(t, ps)| (t, Some(ps))).collect();
                admin
                    .delete_offsets(&group, &selection)
                    .await
                    .map_err(zombie)?;
            }
            Ok(complete)
        }
    }
}

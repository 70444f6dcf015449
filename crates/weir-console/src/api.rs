//! The console's own API: what the REST proxy's does not offer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{json, Value};
use weir_client::{OffsetTarget, EARLIEST, LATEST};
use weir_formats::{Field, SchemaType};
use weir_rest::{RestError, Result};

use crate::{Console, Metrics};

type C = State<Arc<Console>>;

/// Counters of the broker's Prometheus text, summed over their labels.
fn counters(text: &str) -> Value {
    let mut sums: HashMap<&str, f64> = HashMap::new();
    let mut by_api: HashMap<String, f64> = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let key = match name {
            "weir_topic_bytes_in_total" => "bytes_in",
            "weir_topic_bytes_out_total" => "bytes_out",
            "weir_topic_messages_in_total" => "messages_in",
            "weir_topic_messages_out_total" => "messages_out",
            "weir_requests_total" => {
                if let Some(api) = series
                    .split("api=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                {
                    *by_api.entry(api.to_string()).or_default() += v;
                }
                "requests"
            }
            "weir_log_size_bytes" => "log_bytes",
            "weir_active_connections" => "connections",
            _ => continue,
        };
        *sums.entry(key).or_default() += v;
    }
    json!({"totals": sums, "requests_by_api": by_api})
}

/// The broker's metrics, or `null` when the console has none.
async fn metrics(c: &Console) -> Value {
    let text = match &c.metrics {
        Metrics::None => return Value::Null,
        Metrics::Local(render) => render(),
        Metrics::Url(url) => match c.http.get(url).timeout(Duration::from_secs(5)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => return json!({"error": e.to_string()}),
        },
    };
    counters(&text)
}

/// `GET /api/overview`: brokers, topic and partition counts, disk use,
/// and the broker's counters now (the page charts their rates).
pub(crate) async fn overview(State(c): C, headers: HeaderMap) -> Result<Json<Value>> {
    let clients = c.proxy.clients_for(&headers)?;
    let (cluster, topics, dirs) = clients
        .admin(async |a| {
            let cluster = a.describe_cluster().await?;
            let topics = a.topics(None).await?;
            // Not every cluster lets every user describe log dirs.
            let dirs = a.log_dirs().await.unwrap_or_default();
            Ok((cluster, topics, dirs))
        })
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(Json(json!({
        "cluster_id": cluster.cluster_id,
        "controller_id": cluster.controller_id,
        "brokers": cluster.brokers.iter().map(|b| json!({"id": b.id, "host": b.host, "port": b.port, "rack": b.rack})).collect::<Vec<_>>(),
        "topics": topics.iter().filter(|t| !t.internal).count(),
        "internal_topics": topics.iter().filter(|t| t.internal).count(),
        "partitions": topics.iter().map(|t| t.partitions.len()).sum::<usize>(),
        "log_dirs": dirs.iter().map(|d| json!({
            "broker": d.broker, "path": d.path, "total_bytes": d.total_bytes, "usable_bytes": d.usable_bytes,
            "used_bytes": d.partitions.iter().map(|p| p.2).sum::<i64>(),
        })).collect::<Vec<_>>(),
        "time_ms": now,
        "metrics": metrics(&c).await,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /api/topics/{topic}/partitions?offset=&limit=`: a page of
/// partitions with leader, start and end offsets and size.
pub(crate) async fn partitions(
    State(c): C,
    headers: HeaderMap,
    Path(topic): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let clients = c.proxy.clients_for(&headers)?;
    let from = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let (total, rows) = clients
        .admin(async |a| {
            let t = a.topic(&topic).await?;
            let parts: Vec<(i32, i32)> = t
                .partitions
                .iter()
                .skip(from)
                .take(limit)
                .map(|p| (p.partition, p.leader))
                .collect();
            let starts = a.list_offsets(&topic, &parts, EARLIEST).await?;
            let ends = a.list_offsets(&topic, &parts, LATEST).await?;
            let ids: Vec<i32> = parts.iter().map(|p| p.0).collect();
            let sizes = a.log_dir_sizes_of(&topic, &ids).await.unwrap_or_default();
            let rows: Vec<Value> = t
                .partitions
                .iter()
                .skip(from)
                .take(limit)
                .map(|p| {
                    let start = starts.get(&p.partition).and_then(|r| r.ok());
                    let end = ends.get(&p.partition).and_then(|r| r.ok());
                    json!({
                        "partition": p.partition, "leader": p.leader, "replicas": p.replicas, "isr": p.isr,
                        "start_offset": start, "end_offset": end,
                        "messages": start.zip(end).map(|(s, e)| e - s),
                        "size_bytes": sizes.get(&p.partition),
                    })
                })
                .collect();
            Ok((t.partitions.len(), rows))
        })
        .await?;
    Ok(Json(
        json!({"total": total, "offset": from, "partitions": rows}),
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Browse {
    /// A partition, or every partition when absent.
    partition: Option<i32>,
    /// `newest` (default), `earliest`, an offset, or `time` with `timestamp`.
    from: Option<String>,
    /// Milliseconds since the epoch, with `from=time`.
    timestamp: Option<i64>,
    limit: Option<usize>,
    /// Keep records whose key or value contains this text.
    filter: Option<String>,
}

/// How long a browse may read.
const BROWSE_TIME: Duration = Duration::from_secs(5);

/// A key, value or header as the browser shows it.
async fn shown(c: &Console, topic: &str, field: Field, bytes: Option<&[u8]>) -> Value {
    let Some(b) = bytes else {
        return Value::Null;
    };
    if b.first() == Some(&0) && b.len() > 5 {
        if let Some(d) = &c.registry {
            let id = i32::from_be_bytes([b[1], b[2], b[3], b[4]]);
            // An id the registry does not know: not a framed record after all.
            if let Ok(schema) = d.client.schema_by_id(id).await {
                let decoded = match schema.schema_type {
                    SchemaType::Json => d.json.deserialize(b).await.map(|(_, v)| ("jsonschema", v)),
                    SchemaType::Protobuf => d
                        .protobuf
                        .deserialize_json(b)
                        .await
                        .map(|v| ("protobuf", v)),
                    _ => d
                        .avro
                        .deserialize_json(topic, field, b, weir_formats::avro::JsonEncoding::Plain)
                        .await
                        .map(|v| ("avro", v)),
                };
                if let Ok((kind, v)) = decoded {
                    return json!({"kind": kind, "schema_id": id, "value": v});
                }
            }
        }
    }
    match std::str::from_utf8(b) {
        Ok(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) if s.trim_start().starts_with(['{', '[']) => json!({"kind": "json", "value": v}),
            _ => json!({"kind": "text", "value": s}),
        },
        Err(_) => {
            json!({"kind": "binary", "value": base64::engine::general_purpose::STANDARD.encode(b)})
        }
    }
}

fn contains(v: &Value, needle: &str) -> bool {
    match v.get("value") {
        Some(Value::String(s)) => s.contains(needle),
        Some(other) => other.to_string().contains(needle),
        None => false,
    }
}

/// `GET /api/topics/{topic}/messages`: records of one or every partition
/// from the newest (default), the earliest, an offset or a time, decoded.
pub(crate) async fn messages(
    State(c): C,
    headers: HeaderMap,
    Path(topic): Path<String>,
    Query(q): Query<Browse>,
) -> Result<Json<Value>> {
    let clients = c.proxy.clients_for(&headers)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500) as i64;
    let t = topic.clone();
    let (parts, starts, ends) = clients
        .admin(async |a| {
            let info = a.topic(&t).await?;
            let parts: Vec<(i32, i32)> = info
                .partitions
                .iter()
                .filter(|p| q.partition.is_none_or(|x| x == p.partition))
                .map(|p| (p.partition, p.leader))
                .collect();
            let starts = a.list_offsets(&t, &parts, EARLIEST).await?;
            let ends = a.list_offsets(&t, &parts, LATEST).await?;
            Ok((parts, starts, ends))
        })
        .await?;
    if parts.is_empty() {
        return Err(RestError::not_found(40402, "Partition not found."));
    }
    let bound =
        |m: &HashMap<i32, Result<i64, i16>>, p: i32| m.get(&p).and_then(|r| r.ok()).unwrap_or(0);
    let from = q.from.as_deref().unwrap_or("newest");
    let mut tpl = TopicPartitionList::new();
    let mut todo = 0;
    for (p, _) in &parts {
        let (lo, hi) = (bound(&starts, *p), bound(&ends, *p));
        let start = match from {
            "newest" => Offset::Offset((hi - limit).max(lo)),
            "earliest" => Offset::Offset(lo),
            "time" => Offset::Offset(q.timestamp.unwrap_or(0)),
            o => Offset::Offset(
                o.parse::<i64>()
                    .map_err(|_| {
                        RestError::bad_request(format!(
                            "from={o} is not newest, earliest, time or an offset"
                        ))
                    })?
                    .clamp(lo, hi),
            ),
        };
        tpl.add_partition_offset(&topic, *p, start)
            .map_err(RestError::from)?;
        if hi > lo {
            todo += 1;
        }
    }
    let mut config = clients.rdkafka_config(&Default::default())?;
    config
        .set("group.id", "weir-console")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = config.create().map_err(RestError::from)?;
    let by_time = from == "time";
    let raw =
        tokio::task::spawn_blocking(move || -> Result<Vec<rdkafka::message::OwnedMessage>> {
            let tpl = if by_time {
                consumer.offsets_for_times(tpl, Duration::from_secs(10))?
            } else {
                tpl
            };
            consumer.assign(&tpl)?;
            let mut out = Vec::new();
            let mut eof = 0;
            let deadline = Instant::now() + BROWSE_TIME;
            // Enough to fill a page after filtering, without reading forever.
            let cap = (limit as usize) * 20;
            while eof < todo && out.len() < cap && Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => out.push(m.detach()),
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
                    Some(Err(e)) => return Err(RestError::from(e)),
                    None => {}
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| RestError::Internal(e.to_string()))??;
    let mut records = Vec::new();
    for m in &raw {
        let key = shown(&c, &topic, Field::Key, m.key()).await;
        let value = shown(&c, &topic, Field::Value, m.payload()).await;
        if let Some(f) = q.filter.as_deref().filter(|f| !f.is_empty()) {
            if !contains(&key, f) && !contains(&value, f) {
                continue;
            }
        }
        let headers: Vec<Value> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| json!({"key": h.key, "value": h.value.map(|v| String::from_utf8_lossy(v).into_owned())}))
                    .collect()
            })
            .unwrap_or_default();
        records.push(json!({
            "partition": m.partition(), "offset": m.offset(),
            "timestamp": m.timestamp().to_millis(),
            "key": key, "value": value, "headers": headers,
        }));
    }
    // Newest last within the page, at most `limit` of them.
    records.sort_by_key(|r| {
        (
            r["timestamp"].as_i64(),
            r["partition"].as_i64(),
            r["offset"].as_i64(),
        )
    });
    let skip = if from == "newest" {
        records.len().saturating_sub(limit as usize)
    } else {
        0
    };
    let records: Vec<Value> = records
        .into_iter()
        .skip(skip)
        .take(limit as usize)
        .collect();
    Ok(Json(json!({ "records": records })))
}

/// `PreparingRebalance` → `PREPARING_REBALANCE`, as the REST API spells states.
fn upper_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `GET /api/groups/{group}`: state, members with their assignments and
/// lag per partition in one answer (one describe, one offset fetch and the
/// end offsets), so a group of 1,000 members loads at once.
pub(crate) async fn group(
    State(c): C,
    headers: HeaderMap,
    Path(group): Path<String>,
) -> Result<Json<Value>> {
    let clients = c.proxy.clients_for(&headers)?;
    let (d, committed, ends) = clients
        .admin(async |a| {
            let d = a.describe_group(&group).await?;
            let committed = a.committed_offsets(&group).await?;
            let mut topics: Vec<String> = committed.keys().map(|k| k.0.clone()).collect();
            topics.extend(
                d.members
                    .iter()
                    .flat_map(|m| m.assignment.iter().map(|a| a.0.clone())),
            );
            topics.sort();
            topics.dedup();
            let ends = a.end_offsets(&topics).await?;
            Ok((d, committed, ends))
        })
        .await?;
    if d.state == "Dead" && committed.is_empty() {
        return Err(RestError::not_found(
            40403,
            format!("Consumer group {group} not found."),
        ));
    }
    let owner: HashMap<(&str, i32), &str> = d
        .members
        .iter()
        .flat_map(|m| {
            m.assignment
                .iter()
                .map(move |(t, p)| ((t.as_str(), *p), m.client_id.as_str()))
        })
        .collect();
    let lags: Vec<Value> = committed
        .iter()
        .map(|((t, p), current)| {
            let end = ends.get(&(t.clone(), *p)).copied();
            json!({
                "topic": t, "partition": p, "current_offset": current, "log_end_offset": end,
                "lag": end.map(|e| (e - current).max(0)),
                "client_id": owner.get(&(t.as_str(), *p)),
            })
        })
        .collect();
    Ok(Json(json!({
        "group_id": d.group_id,
        "state": upper_snake(&d.state),
        "protocol": match d.protocol { weir_client::GroupProtocol::Classic => "CLASSIC", weir_client::GroupProtocol::Consumer => "CONSUMER" },
        "assignor": d.assignor,
        "members": d.members.iter().map(|m| json!({
            "member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id, "host": m.host,
            "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "lags": lags,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Reset {
    /// One topic, or every topic the group has offsets for.
    topic: Option<String>,
    /// Some partitions of `topic`, or all of them.
    partitions: Option<Vec<i32>>,
    /// `earliest`, `latest`, `offset`, `time` or `shift`.
    to: String,
    /// The offset, time (ms) or shift of `offset`, `time` and `shift`.
    value: Option<i64>,
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/groups/{group}/reset-offsets`: moves an inactive group's
/// offsets (or, with `dry_run`, only shows where they would go).
pub(crate) async fn reset_offsets(
    State(c): C,
    headers: HeaderMap,
    Path(group): Path<String>,
    Json(r): Json<Reset>,
) -> Result<Json<Value>> {
    let clients = c.proxy.clients_for(&headers)?;
    let value = || {
        r.value
            .ok_or_else(|| RestError::bad_request(format!("to={} needs a value", r.to)))
    };
    let target = match r.to.as_str() {
        "earliest" => OffsetTarget::Earliest,
        "latest" => OffsetTarget::Latest,
        "offset" => OffsetTarget::Offset(value()?),
        "time" => OffsetTarget::Time(value()?),
        "shift" => OffsetTarget::Shift(value()?),
        other => {
            return Err(RestError::bad_request(format!(
                "to={other} is not earliest, latest, offset, time or shift"
            )))
        }
    };
    let selection: Vec<(String, Option<Vec<i32>>)> = r
        .topic
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| (t.clone(), r.partitions.clone().filter(|p| !p.is_empty())))
        .collect();
    let plan = clients
        .admin(async |a| a.reset_offsets(&group, &selection, target, r.dry_run).await)
        .await?;
    Ok(Json(json!({
        "dry_run": r.dry_run,
        "offsets": plan.iter().map(|p| json!({
            "topic": p.topic, "partition": p.partition, "current": p.current, "new": p.new,
        })).collect::<Vec<_>>(),
    })))
}

/// `DELETE /api/groups/{group}`: deletes an empty group.
pub(crate) async fn delete_group(
    State(c): C,
    headers: HeaderMap,
    Path(group): Path<String>,
) -> Result<axum::http::StatusCode> {
    let clients = c.proxy.clients_for(&headers)?;
    clients
        .admin(async |a| a.delete_group(&group).await)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /api/scram-users`: every SCRAM user and their mechanisms.
pub(crate) async fn scram_users(State(c): C, headers: HeaderMap) -> Result<Json<Value>> {
    let clients = c.proxy.clients_for(&headers)?;
    let users = clients
        .admin(async |a| a.describe_scram_users().await)
        .await?;
    Ok(Json(json!({"users": users.iter().map(|u| json!({
        "user": u.user,
        "credentials": u.credentials.iter().map(|(m, i)| json!({"mechanism": m, "iterations": i})).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScramUpsert {
    user: String,
    mechanism: String,
    password: String,
    iterations: Option<i32>,
}

/// `POST /api/scram-users`: sets a user's password for a mechanism (salted
/// here; the broker never sees the password).
pub(crate) async fn upsert_scram_user(
    State(c): C,
    headers: HeaderMap,
    Json(u): Json<ScramUpsert>,
) -> Result<axum::http::StatusCode> {
    if u.user.is_empty() || u.password.is_empty() {
        return Err(RestError::bad_request(
            "a SCRAM user needs a name and a password",
        ));
    }
    let clients = c.proxy.clients_for(&headers)?;
    let iterations = u.iterations.unwrap_or(4096);
    clients
        .admin(async |a| {
            a.upsert_scram_user(&u.user, &u.mechanism, &u.password, iterations)
                .await
        })
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `DELETE /api/scram-users/{user}/{mechanism}`.
pub(crate) async fn delete_scram_user(
    State(c): C,
    headers: HeaderMap,
    Path((user, mechanism)): Path<(String, String)>,
) -> Result<axum::http::StatusCode> {
    let clients = c.proxy.clients_for(&headers)?;
    clients
        .admin(async |a| a.delete_scram_user(&user, &mechanism).await)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A quota entity as JSON: `[{"type": "user", "name": "alice"}]`, a null
/// name for the default entity.
fn entity_json(e: &[(String, Option<String>)]) -> Value {
    e.iter()
        .map(|(t, n)| json!({"type": t, "name": n}))
        .collect::<Vec<_>>()
        .into()
}

/// `GET /api/quotas`: every entity's quotas.
pub(crate) async fn quotas(State(c): C, headers: HeaderMap) -> Result<Json<Value>> {
    let clients = c.proxy.clients_for(&headers)?;
    let entries = clients.admin(async |a| a.describe_quotas().await).await?;
    Ok(Json(json!({"quotas": entries.iter().map(|q| json!({
        "entity": entity_json(&q.entity),
        "values": q.values.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })).collect::<Vec<_>>()})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EntityPart {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QuotaChange {
    entity: Vec<EntityPart>,
    key: String,
    /// `None` removes the quota.
    value: Option<f64>,
}

/// `POST /api/quotas`: sets or removes one quota of one entity.
pub(crate) async fn alter_quota(
    State(c): C,
    headers: HeaderMap,
    Json(q): Json<QuotaChange>,
) -> Result<axum::http::StatusCode> {
    if q.entity.is_empty() || q.key.is_empty() {
        return Err(RestError::bad_request("a quota needs an entity and a key"));
    }
    let clients = c.proxy.clients_for(&headers)?;
    let entity: Vec<(String, Option<String>)> = q
        .entity
        .into_iter()
        .map(|p| (p.kind, p.name.filter(|n| !n.is_empty())))
        .collect();
    clients
        .admin(async |a| a.alter_quota(&entity, &q.key, q.value).await)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_labels() {
        let text = "# HELP x\nweir_topic_bytes_in_total{topic=\"a\"} 10\nweir_topic_bytes_in_total{topic=\"b\"} 5\n\
                    weir_requests_total{api=\"Produce\"} 3\nweir_requests_total{api=\"Fetch\"} 4\nother 1\n";
        let v = counters(text);
        assert_eq!(v["totals"]["bytes_in"], 15.0);
        assert_eq!(v["totals"]["requests"], 7.0);
        assert_eq!(v["requests_by_api"]["Fetch"], 4.0);
    }

    #[test]
    fn states_are_spelled_as_the_rest_api_does() {
        assert_eq!(upper_snake("PreparingRebalance"), "PREPARING_REBALANCE");
        assert_eq!(upper_snake("Empty"), "EMPTY");
    }
}

//! Topics, partitions, replicas and partition offsets.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use weir_client::{NewTopic, PartitionInfo, TopicInfo, EARLIEST, LATEST};

use super::{parse_body, with, Ctx};
use crate::error::{RestError, Result};

pub(super) fn topic_data(ctx: &Ctx, t: &TopicInfo) -> Value {
    let name = t.name.as_str();
    with(
        ctx.resource("KafkaTopic", &["topics", name], &[("topic", name)]),
        json!({
            "topic_name": name,
            "is_internal": t.internal,
            "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
            "partitions_count": t.partitions.len(),
            "partitions": ctx.related(&["topics", name, "partitions"]),
            "configs": ctx.related(&["topics", name, "configs"]),
            "partition_reassignments": ctx.related(&["topics", name, "partitions", "-", "reassignment"]),
        }),
    )
}

/// `GET .../topics`.
pub(super) async fn list_topics(ctx: Ctx) -> Result<Json<Value>> {
    let topics = ctx.clients.admin(async |a| a.topics(None).await).await?;
    let data = topics.iter().map(|t| topic_data(&ctx, t)).collect();
    Ok(ctx.list("KafkaTopicList", &["topics"], data))
}

/// The topic, or Kafka's error for it (40403 when unknown).
pub(super) async fn find_topic(ctx: &Ctx, name: &str) -> Result<TopicInfo> {
    let name = name.to_string();
    ctx.clients.admin(async |a| a.topic(&name).await).await
}

/// `GET .../topics/{topic_name}`.
pub(super) async fn get_topic(
    ctx: Ctx,
    Path((_, topic)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let t = find_topic(&ctx, &topic).await?;
    Ok(Json(topic_data(&ctx, &t)))
}

#[derive(Debug, Deserialize)]
struct NameValue {
    name: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CreateTopic {
    topic_name: String,
    partitions_count: Option<i32>,
    replication_factor: Option<i16>,
    replicas_assignments: Option<Value>,
    #[serde(default)]
    configs: Vec<NameValue>,
    #[serde(default)]
    validate_only: bool,
}

/// `POST .../topics`: 201 with the topic, or 200 with `validate_only`.
pub(super) async fn create_topic(ctx: Ctx, body: Bytes) -> Result<Response> {
    let req: CreateTopic = parse_body(&body)?;
    if req.replicas_assignments.is_some() {
        return Err(RestError::BadRequest {
            code: 40002,
            message: "replicas_assignments is not supported: give partitions_count and replication_factor".into(),
        });
    }
    let new = NewTopic {
        name: req.topic_name.clone(),
        partitions: req.partitions_count.unwrap_or(-1),
        replication_factor: req.replication_factor.unwrap_or(-1),
        configs: req
            .configs
            .into_iter()
            .filter_map(|c| Some((c.name, c.value?)))
            .collect(),
    };
    let validate_only = req.validate_only;
    let created = ctx
        .clients
        .admin(async |a| a.create_topic(&new, validate_only).await)
        .await?;
    let info = if validate_only {
        TopicInfo {
            name: created.name.clone(),
            internal: false,
            partitions: (0..created.partitions.max(0))
                .map(|p| PartitionInfo {
                    partition: p,
                    leader: -1,
                    replicas: vec![-1; created.replication_factor.max(0) as usize],
                    isr: Vec::new(),
                })
                .collect(),
        }
    } else {
        find_topic(&ctx, &created.name).await?
    };
    let data = topic_data(&ctx, &info);
    let status = if validate_only {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let location = ctx.url(&["topics", &created.name]);
    Ok((status, [(header::LOCATION, location)], Json(data)).into_response())
}

#[derive(Debug, Deserialize)]
struct PartitionsCount {
    partitions_count: i32,
}

/// `PATCH .../topics/{topic_name}`: grows the partition count.
pub(super) async fn update_partition_count(
    ctx: Ctx,
    Path((_, topic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>> {
    let req: PartitionsCount = parse_body(&body)?;
    let t = topic.clone();
    ctx.clients
        .admin(async |a| a.create_partitions(&t, req.partitions_count, false).await)
        .await?;
    let info = find_topic(&ctx, &topic).await?;
    Ok(Json(topic_data(&ctx, &info)))
}

/// `DELETE .../topics/{topic_name}`: 204.
pub(super) async fn delete_topic(
    ctx: Ctx,
    Path((_, topic)): Path<(String, String)>,
) -> Result<StatusCode> {
    ctx.clients
        .admin(async |a| a.delete_topic(&topic).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn partition_data(ctx: &Ctx, topic: &str, p: &PartitionInfo) -> Value {
    let id = p.partition.to_string();
    let leader = (p.leader >= 0).then(|| {
        ctx.related(&[
            "topics",
            topic,
            "partitions",
            &id,
            "replicas",
            &p.leader.to_string(),
        ])
    });
    with(
        ctx.resource(
            "KafkaPartition",
            &["topics", topic, "partitions", &id],
            &[("topic", topic), ("partition", &id)],
        ),
        json!({
            "topic_name": topic,
            "partition_id": p.partition,
            "leader": leader,
            "replicas": ctx.related(&["topics", topic, "partitions", &id, "replicas"]),
            "reassignment": ctx.related(&["topics", topic, "partitions", &id, "reassignment"]),
        }),
    )
}

/// `GET .../topics/{topic_name}/partitions`.
pub(super) async fn list_partitions(
    ctx: Ctx,
    Path((_, topic)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let t = find_topic(&ctx, &topic).await?;
    let data = t
        .partitions
        .iter()
        .map(|p| partition_data(&ctx, &topic, p))
        .collect();
    Ok(ctx.list(
        "KafkaPartitionList",
        &["topics", &topic, "partitions"],
        data,
    ))
}

/// The partition, or 404.
async fn find_partition(ctx: &Ctx, topic: &str, partition: i32) -> Result<PartitionInfo> {
    find_topic(ctx, topic)
        .await?
        .partitions
        .into_iter()
        .find(|p| p.partition == partition)
        .ok_or_else(|| {
            RestError::not_found(
                404,
                format!("Partition {partition} of topic {topic} cannot be found."),
            )
        })
}

/// `GET .../topics/{topic_name}/partitions/{partition_id}`.
pub(super) async fn get_partition(
    ctx: Ctx,
    Path((_, topic, partition)): Path<(String, String, i32)>,
) -> Result<Json<Value>> {
    let part = find_partition(&ctx, &topic, partition).await?;
    Ok(Json(partition_data(&ctx, &topic, &part)))
}

#[derive(Debug, Deserialize)]
pub(super) struct OffsetType {
    offset_type: Option<String>,
}

/// `GET .../partitions/{partition_id}/offset`: earliest and latest.
pub(super) async fn partition_offsets(
    ctx: Ctx,
    Path((_, topic, partition)): Path<(String, String, i32)>,
    Query(q): Query<OffsetType>,
) -> Result<Json<Value>> {
    let kind = q.offset_type.as_deref().unwrap_or("earliest_and_latest");
    if kind != "earliest_and_latest" {
        return Err(RestError::bad_request(format!(
            "offset_type:{kind} is invalid"
        )));
    }
    let part = find_partition(&ctx, &topic, partition).await?;
    let t = topic.clone();
    let (lo, hi) = ctx
        .clients
        .admin(async |a| {
            let parts = [(part.partition, part.leader)];
            let lo = a.list_offsets(&t, &parts, EARLIEST).await?;
            let hi = a.list_offsets(&t, &parts, LATEST).await?;
            Ok((lo.get(&partition).copied(), hi.get(&partition).copied()))
        })
        .await?;
    let offset = |r: Option<Result<i64, i16>>| -> Result<i64> {
        match r {
            Some(Ok(o)) => Ok(o),
            Some(Err(code)) => Err(RestError::from_kafka_code(
                code,
                &format!("{topic}-{partition}"),
            )),
            None => Err(RestError::unknown_topic_or_partition()),
        }
    };
    let id = partition.to_string();
    Ok(Json(with(
        ctx.resource(
            "KafkaPartitionWithOffsets",
            &["topics", &topic, "partitions", &id, "offset"],
            &[("topic", &topic), ("partition", &id), ("offset", "")],
        ),
        json!({
            "topic_name": topic,
            "partition_id": partition,
            "earliest_offset": offset(lo)?,
            "latest_offset": offset(hi)?,
        }),
    )))
}

fn replica_data(ctx: &Ctx, topic: &str, p: &PartitionInfo, broker: i32) -> Value {
    let (id, b) = (p.partition.to_string(), broker.to_string());
    with(
        ctx.resource(
            "KafkaReplica",
            &["topics", topic, "partitions", &id, "replicas", &b],
            &[("topic", topic), ("partition", &id), ("replica", &b)],
        ),
        json!({
            "topic_name": topic,
            "partition_id": p.partition,
            "broker_id": broker,
            "is_leader": p.leader == broker,
            "is_in_sync": p.isr.contains(&broker),
            "broker": ctx.related(&["brokers", &b]),
        }),
    )
}

/// `GET .../partitions/{partition_id}/replicas`.
pub(super) async fn list_replicas(
    ctx: Ctx,
    Path((_, topic, partition)): Path<(String, String, i32)>,
) -> Result<Json<Value>> {
    let part = find_partition(&ctx, &topic, partition).await?;
    let data = part
        .replicas
        .iter()
        .map(|b| replica_data(&ctx, &topic, &part, *b))
        .collect();
    let id = partition.to_string();
    Ok(ctx.list(
        "KafkaReplicaList",
        &["topics", &topic, "partitions", &id, "replicas"],
        data,
    ))
}

/// `GET .../partitions/{partition_id}/replicas/{broker_id}`.
pub(super) async fn get_replica(
    ctx: Ctx,
    Path((_, topic, partition, broker)): Path<(String, String, i32, i32)>,
) -> Result<Json<Value>> {
    let part = find_partition(&ctx, &topic, partition).await?;
    if !part.replicas.contains(&broker) {
        return Err(RestError::not_found(
            404,
            format!("Broker {broker} holds no replica of {topic}-{partition}."),
        ));
    }
    Ok(Json(replica_data(&ctx, &topic, &part, broker)))
}

/// `GET .../brokers/{broker_id}/partition-replicas`: every replica the
/// broker holds.
pub(super) async fn replicas_of_broker(
    ctx: Ctx,
    Path((_, broker)): Path<(String, i32)>,
) -> Result<Json<Value>> {
    super::cluster::find_broker(&ctx, broker).await?;
    let topics = ctx.clients.admin(async |a| a.topics(None).await).await?;
    let mut data = Vec::new();
    for t in &topics {
        for part in t.partitions.iter().filter(|p| p.replicas.contains(&broker)) {
            data.push(replica_data(&ctx, &t.name, part, broker));
        }
    }
    Ok(ctx.list(
        "KafkaReplicaList",
        &["brokers", &broker.to_string(), "partition-replicas"],
        data,
    ))
}

fn reassignment_data(ctx: &Ctx, r: &weir_client::Reassignment) -> Value {
    let id = r.partition.to_string();
    with(
        ctx.resource(
            "KafkaReassignment",
            &["topics", &r.topic, "partitions", &id, "reassignment"],
            &[
                ("topic", &r.topic),
                ("partition", &id),
                ("reassignment", ""),
            ],
        ),
        json!({
            "topic_name": r.topic,
            "partition_id": r.partition,
            "adding_replicas": r.adding,
            "removing_replicas": r.removing,
            "replicas": ctx.related(&["topics", &r.topic, "partitions", &id, "replicas"]),
        }),
    )
}

/// `GET .../topics/-/partitions/-/reassignment`.
pub(super) async fn list_all_reassignments(ctx: Ctx) -> Result<Json<Value>> {
    let all = ctx.clients.admin(async |a| a.reassignments().await).await?;
    let data = all.iter().map(|r| reassignment_data(&ctx, r)).collect();
    Ok(ctx.list(
        "KafkaReassignmentList",
        &["topics", "-", "partitions", "-", "reassignment"],
        data,
    ))
}

/// `GET .../topics/{topic_name}/partitions/-/reassignment`.
pub(super) async fn list_topic_reassignments(
    ctx: Ctx,
    Path((_, topic)): Path<(String, String)>,
) -> Result<Json<Value>> {
    find_topic(&ctx, &topic).await?;
    let all = ctx.clients.admin(async |a| a.reassignments().await).await?;
    let data = all
        .iter()
        .filter(|r| r.topic == topic)
        .map(|r| reassignment_data(&ctx, r))
        .collect();
    Ok(ctx.list(
        "KafkaReassignmentList",
        &["topics", &topic, "partitions", "-", "reassignment"],
        data,
    ))
}

/// `GET .../topics/{topic_name}/partitions/{partition_id}/reassignment`:
/// 404 when none is in progress.
pub(super) async fn get_reassignment(
    ctx: Ctx,
    Path((_, topic, partition)): Path<(String, String, i32)>,
) -> Result<Json<Value>> {
    find_partition(&ctx, &topic, partition).await?;
    let all = ctx.clients.admin(async |a| a.reassignments().await).await?;
    all.iter()
        .find(|r| r.topic == topic && r.partition == partition)
        .map(|r| Json(reassignment_data(&ctx, r)))
        .ok_or_else(|| {
            RestError::not_found(
                404,
                format!("No reassignment of {topic}-{partition} is in progress."),
            )
        })
}

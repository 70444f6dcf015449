//! v2 metadata: brokers, topics with their configs, partitions and their
//! offsets.

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use weir_client::{ConfigResource, PartitionInfo, TopicInfo, EARLIEST, LATEST};

use crate::clients::ClientSet;
use crate::error::{RestError, Result};
use crate::Proxy;

/// `GET /` and `POST /`: an empty object, as Confluent's root resource.
pub(super) async fn root() -> Json<Value> {
    Json(json!({}))
}

/// `GET /brokers`: `{"brokers": [ids]}`.
pub(super) async fn list_brokers(p: Proxy, headers: HeaderMap) -> Result<Json<Value>> {
    let clients = p.clients_for(&headers)?;
    let info = clients.admin(async |a| a.describe_cluster().await).await?;
    let ids: Vec<i32> = info.brokers.iter().map(|b| b.id).collect();
    Ok(Json(json!({ "brokers": ids })))
}

/// `GET /topics`: topic names.
pub(super) async fn list_topics(p: Proxy, headers: HeaderMap) -> Result<Json<Value>> {
    let clients = p.clients_for(&headers)?;
    let topics = clients.admin(async |a| a.topics(None).await).await?;
    Ok(Json(json!(topics
        .iter()
        .map(|t| &t.name)
        .collect::<Vec<_>>())))
}

fn topic_not_found() -> RestError {
    RestError::not_found(40401, "Topic not found.")
}

pub(super) fn partition_not_found() -> RestError {
    RestError::not_found(40402, "Partition not found.")
}

/// The topic, or v2's 40401.
pub(super) async fn find_topic(clients: &ClientSet, topic: &str) -> Result<TopicInfo> {
    let t = topic.to_string();
    match clients.admin(async |a| a.topic(&t).await).await {
        Err(RestError::NotFound { .. }) => Err(topic_not_found()),
        other => other,
    }
}

fn partition_json(p: &PartitionInfo) -> Value {
    json!({
        "partition": p.partition,
        "leader": p.leader,
        "replicas": p.replicas.iter().map(|b| json!({
            "broker": b, "leader": *b == p.leader, "in_sync": p.isr.contains(b),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /topics/{topic}`: name, configs and partitions.
pub(super) async fn get_topic(
    p: Proxy,
    headers: HeaderMap,
    Path(topic): Path<String>,
) -> Result<Json<Value>> {
    let clients = p.clients_for(&headers)?;
    let t = find_topic(&clients, &topic).await?;
    let r = ConfigResource::Topic(topic.clone());
    let configs: BTreeMap<String, Option<String>> = clients
        .admin(async |a| a.describe_configs(&r).await)
        .await?
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect();
    Ok(Json(json!({
        "name": t.name,
        "configs": configs,
        "partitions": t.partitions.iter().map(partition_json).collect::<Vec<_>>(),
    })))
}

/// `GET /topics/{topic}/partitions`.
pub(super) async fn list_partitions(
    p: Proxy,
    headers: HeaderMap,
    Path(topic): Path<String>,
) -> Result<Json<Value>> {
    let clients = p.clients_for(&headers)?;
    let t = find_topic(&clients, &topic).await?;
    Ok(Json(json!(t
        .partitions
        .iter()
        .map(partition_json)
        .collect::<Vec<_>>())))
}

async fn find_partition(clients: &ClientSet, topic: &str, partition: i32) -> Result<PartitionInfo> {
    find_topic(clients, topic)
        .await?
        .partitions
        .into_iter()
        .find(|p| p.partition == partition)
        .ok_or_else(partition_not_found)
}

/// `GET /topics/{topic}/partitions/{partition}`.
pub(super) async fn get_partition(
    p: Proxy,
    headers: HeaderMap,
    Path((topic, partition)): Path<(String, i32)>,
) -> Result<Json<Value>> {
    let clients = p.clients_for(&headers)?;
    let part = find_partition(&clients, &topic, partition).await?;
    Ok(Json(partition_json(&part)))
}

/// `GET /topics/{topic}/partitions/{partition}/offsets`:
/// `{"beginning_offset", "end_offset"}`.
pub(super) async fn partition_offsets(
    p: Proxy,
    headers: HeaderMap,
    Path((topic, partition)): Path<(String, i32)>,
) -> Result<Json<Value>> {
    let clients = p.clients_for(&headers)?;
    let part = find_partition(&clients, &topic, partition).await?;
    let (lo, hi) = clients
        .admin(async |a| {
            let parts = [(part.partition, part.leader)];
            let lo = a.list_offsets(&topic, &parts, EARLIEST).await?;
            let hi = a.list_offsets(&topic, &parts, LATEST).await?;
            Ok((lo.get(&partition).copied(), hi.get(&partition).copied()))
        })
        .await?;
    let offset = |r: Option<Result<i64, i16>>| match r {
        Some(Ok(o)) => Ok(o),
        Some(Err(code)) => Err(RestError::from_kafka_code(code, "ListOffsets")),
        None => Err(partition_not_found()),
    };
    Ok(Json(
        json!({"beginning_offset": offset(lo)?, "end_offset": offset(hi)?}),
    ))
}

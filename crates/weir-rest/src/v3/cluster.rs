//! Clusters and brokers.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use weir_client::{BrokerInfo, ClusterInfo};

use super::{collection, with, Ctx};
use crate::error::{RestError, Result};
use crate::Proxy;

fn cluster_data(ctx: &Ctx, info: &ClusterInfo) -> Value {
    let controller = (info.controller_id >= 0)
        .then(|| ctx.related(&["brokers", &info.controller_id.to_string()]));
    with(
        ctx.resource("KafkaCluster", &[], &[]),
        json!({
            "controller": controller,
            "acls": ctx.related(&["acls"]),
            "brokers": ctx.related(&["brokers"]),
            "broker_configs": ctx.related(&["broker-configs"]),
            "consumer_groups": ctx.related(&["consumer-groups"]),
            "topics": ctx.related(&["topics"]),
            "partition_reassignments": ctx.related(&["topics", "-", "partitions", "-", "reassignment"]),
        }),
    )
}

/// `GET /v3/clusters`: the one cluster the proxy is connected to.
pub(super) async fn list_clusters(p: Proxy, headers: HeaderMap) -> Result<Json<Value>> {
    let id = p.cluster_id(&*p.clients_for(&headers)?).await?;
    let ctx = p.v3(&headers, &id).await?;
    let info = ctx
        .clients
        .admin(async |a| a.describe_cluster().await)
        .await?;
    let url = format!("{}/v3/clusters", p.base_url(&headers));
    Ok(Json(collection(
        "KafkaClusterList",
        url,
        vec![cluster_data(&ctx, &info)],
    )))
}

/// `GET /v3/clusters/{cluster_id}`.
pub(super) async fn get_cluster(ctx: Ctx) -> Result<Json<Value>> {
    let info = ctx
        .clients
        .admin(async |a| a.describe_cluster().await)
        .await?;
    Ok(Json(cluster_data(&ctx, &info)))
}

fn broker_data(ctx: &Ctx, b: &BrokerInfo) -> Value {
    let id = b.id.to_string();
    with(
        ctx.resource("KafkaBroker", &["brokers", &id], &[("broker", &id)]),
        json!({
            "broker_id": b.id,
            "host": b.host,
            "port": b.port,
            "rack": b.rack,
            "configs": ctx.related(&["brokers", &id, "configs"]),
            "partition_replicas": ctx.related(&["brokers", &id, "partition-replicas"]),
        }),
    )
}

/// `GET .../brokers`.
pub(super) async fn list_brokers(ctx: Ctx) -> Result<Json<Value>> {
    let info = ctx
        .clients
        .admin(async |a| a.describe_cluster().await)
        .await?;
    let data = info.brokers.iter().map(|b| broker_data(&ctx, b)).collect();
    Ok(ctx.list("KafkaBrokerList", &["brokers"], data))
}

/// The broker `id`, or Confluent's 404.
pub(super) async fn find_broker(ctx: &Ctx, id: i32) -> Result<BrokerInfo> {
    let info = ctx
        .clients
        .admin(async |a| a.describe_cluster().await)
        .await?;
    info.brokers
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| RestError::not_found(404, format!("Broker {id} cannot be found.")))
}

/// `GET .../brokers/{broker_id}`.
pub(super) async fn get_broker(
    ctx: Ctx,
    Path((_, broker)): Path<(String, i32)>,
) -> Result<Json<Value>> {
    let b = find_broker(&ctx, broker).await?;
    Ok(Json(broker_data(&ctx, &b)))
}

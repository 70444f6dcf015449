//! Topic configs, broker configs and the cluster-wide dynamic broker
//! configs (`broker-configs`): list, get, update, reset and batch alter.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use weir_client::{AlterConfigOp, ConfigEntry, ConfigResource};

use super::{collection, parse_body, with, Ctx};
use crate::error::{RestError, Result};

/// Which configs a request is about, and how they are shown.
enum Scope {
    Topic(String),
    Broker(i32),
    /// The cluster-wide dynamic broker defaults.
    Cluster,
}

impl Scope {
    fn resource(&self) -> ConfigResource {
        match self {
            Scope::Topic(t) => ConfigResource::Topic(t.clone()),
            Scope::Broker(b) => ConfigResource::Broker(*b),
            Scope::Cluster => ConfigResource::BrokerDefault,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Scope::Topic(_) => "KafkaTopicConfig",
            Scope::Broker(_) => "KafkaBrokerConfig",
            Scope::Cluster => "KafkaClusterConfig",
        }
    }

    /// URL path of the collection.
    fn path(&self) -> Vec<String> {
        match self {
            Scope::Topic(t) => vec!["topics".into(), t.clone(), "configs".into()],
            Scope::Broker(b) => vec!["brokers".into(), b.to_string(), "configs".into()],
            Scope::Cluster => vec!["broker-configs".into()],
        }
    }

    fn data(&self, ctx: &Ctx, c: &ConfigEntry) -> Value {
        let mut path = self.path();
        path.push(c.name.clone());
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let (crn, extra) = match self {
            Scope::Topic(t) => (
                vec![("topic", t.clone()), ("config", c.name.clone())],
                json!({"topic_name": t}),
            ),
            Scope::Broker(b) => (
                vec![("broker", b.to_string()), ("config", c.name.clone())],
                json!({"broker_id": b}),
            ),
            Scope::Cluster => (
                vec![("broker-config", c.name.clone())],
                json!({"config_type": "BROKER"}),
            ),
        };
        let crn: Vec<(&str, &str)> = crn.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let data = with(
            ctx.resource(self.kind(), &path, &crn),
            json!({
                "name": c.name,
                "value": c.value,
                "is_default": c.is_default,
                "is_read_only": c.read_only,
                "is_sensitive": c.sensitive,
                "source": c.source,
                "synonyms": c.synonyms.iter().map(|s| json!({
                    "name": s.name, "value": s.value, "source": s.source,
                })).collect::<Vec<_>>(),
            }),
        );
        match data {
            Value::Object(m) => with(m, extra),
            other => other,
        }
    }

    /// The configs shown: for the cluster, only dynamic defaults.
    async fn list(&self, ctx: &Ctx) -> Result<Vec<ConfigEntry>> {
        let r = self.resource();
        let all = ctx
            .clients
            .admin(async |a| a.describe_configs(&r).await)
            .await?;
        Ok(match self {
            Scope::Cluster => all
                .into_iter()
                .filter(|c| c.source == "DYNAMIC_DEFAULT_BROKER_CONFIG")
                .collect(),
            _ => all,
        })
    }

    async fn get(&self, ctx: &Ctx, name: &str) -> Result<ConfigEntry> {
        self.list(ctx)
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| RestError::not_found(404, format!("Config {name} cannot be found.")))
    }

    async fn alter(
        &self,
        ctx: &Ctx,
        ops: Vec<(String, AlterConfigOp)>,
        validate_only: bool,
    ) -> Result<()> {
        let r = self.resource();
        ctx.clients
            .admin(async |a| a.alter_configs(&r, &ops, validate_only).await)
            .await
    }

    async fn list_json(&self, ctx: &Ctx) -> Result<Json<Value>> {
        let data = self
            .list(ctx)
            .await?
            .iter()
            .map(|c| self.data(ctx, c))
            .collect();
        let path = self.path();
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        Ok(Json(collection(
            &format!("{}List", self.kind()),
            ctx.url(&path),
            data,
        )))
    }

    async fn get_json(&self, ctx: &Ctx, name: &str) -> Result<Json<Value>> {
        let c = self.get(ctx, name).await?;
        Ok(Json(self.data(ctx, &c)))
    }
}

#[derive(Debug, Deserialize)]
struct UpdateConfig {
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlterEntry {
    name: String,
    value: Option<String>,
    operation: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlterBatch {
    data: Vec<AlterEntry>,
    #[serde(default)]
    validate_only: bool,
}

/// `{"data": [{name, value, operation: SET|DELETE}], validate_only}`.
fn batch_ops(body: &[u8]) -> Result<(Vec<(String, AlterConfigOp)>, bool)> {
    let req: AlterBatch = parse_body(body)?;
    let ops = req
        .data
        .into_iter()
        .map(|e| {
            let op = match e
                .operation
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("SET") => AlterConfigOp::Set(e.value.unwrap_or_default()),
                Some("DELETE") => AlterConfigOp::Delete,
                Some(other) => {
                    return Err(RestError::bad_request(format!(
                        "operation {other} is invalid: use SET or DELETE"
                    )))
                }
            };
            Ok((e.name, op))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((ops, req.validate_only))
}

async fn update(scope: Scope, ctx: &Ctx, name: String, body: &[u8]) -> Result<StatusCode> {
    let req: UpdateConfig = parse_body(body)?;
    let op = AlterConfigOp::Set(req.value.unwrap_or_default());
    scope.alter(ctx, vec![(name, op)], false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(scope: Scope, ctx: &Ctx, name: String) -> Result<StatusCode> {
    scope
        .alter(ctx, vec![(name, AlterConfigOp::Delete)], false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn alter_batch(scope: Scope, ctx: &Ctx, body: &[u8]) -> Result<StatusCode> {
    let (ops, validate_only) = batch_ops(body)?;
    scope.alter(ctx, ops, validate_only).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../topics/{topic_name}/configs`.
pub(super) async fn list_topic_configs(
    ctx: Ctx,
    Path((_, topic)): Path<(String, String)>,
) -> Result<Json<Value>> {
    Scope::Topic(topic).list_json(&ctx).await
}

/// `GET .../topics/-/configs`: every topic's configs.
pub(super) async fn list_all_topic_configs(ctx: Ctx) -> Result<Json<Value>> {
    let topics = ctx.clients.admin(async |a| a.topics(None).await).await?;
    let mut data = Vec::new();
    for t in topics {
        let scope = Scope::Topic(t.name);
        for c in scope.list(&ctx).await? {
            data.push(scope.data(&ctx, &c));
        }
    }
    Ok(ctx.list("KafkaTopicConfigList", &["topics", "-", "configs"], data))
}

/// `GET .../topics/{topic_name}/configs/{name}`.
pub(super) async fn get_topic_config(
    ctx: Ctx,
    Path((_, topic, name)): Path<(String, String, String)>,
) -> Result<Json<Value>> {
    Scope::Topic(topic).get_json(&ctx, &name).await
}

/// `PUT .../topics/{topic_name}/configs/{name}`: 204.
pub(super) async fn update_topic_config(
    ctx: Ctx,
    Path((_, topic, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    update(Scope::Topic(topic), &ctx, name, &body).await
}

/// `DELETE .../topics/{topic_name}/configs/{name}`: back to the default.
pub(super) async fn reset_topic_config(
    ctx: Ctx,
    Path((_, topic, name)): Path<(String, String, String)>,
) -> Result<StatusCode> {
    reset(Scope::Topic(topic), &ctx, name).await
}

/// `POST .../topics/{topic_name}/configs:alter`.
pub(super) async fn alter_topic_configs(
    ctx: Ctx,
    Path((_, topic)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    alter_batch(Scope::Topic(topic), &ctx, &body).await
}

/// `GET .../brokers/{broker_id}/configs`.
pub(super) async fn list_broker_configs(
    ctx: Ctx,
    Path((_, broker)): Path<(String, i32)>,
) -> Result<Json<Value>> {
    super::cluster::find_broker(&ctx, broker).await?;
    Scope::Broker(broker).list_json(&ctx).await
}

/// `GET .../brokers/-/configs`: every broker's configs.
pub(super) async fn list_all_broker_configs(ctx: Ctx) -> Result<Json<Value>> {
    let info = ctx
        .clients
        .admin(async |a| a.describe_cluster().await)
        .await?;
    let mut data = Vec::new();
    for b in info.brokers {
        let scope = Scope::Broker(b.id);
        for c in scope.list(&ctx).await? {
            data.push(scope.data(&ctx, &c));
        }
    }
    Ok(ctx.list("KafkaBrokerConfigList", &["brokers", "-", "configs"], data))
}

/// `GET .../brokers/{broker_id}/configs/{name}`.
pub(super) async fn get_broker_config(
    ctx: Ctx,
    Path((_, broker, name)): Path<(String, i32, String)>,
) -> Result<Json<Value>> {
    Scope::Broker(broker).get_json(&ctx, &name).await
}

/// `PUT .../brokers/{broker_id}/configs/{name}`.
pub(super) async fn update_broker_config(
    ctx: Ctx,
    Path((_, broker, name)): Path<(String, i32, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    update(Scope::Broker(broker), &ctx, name, &body).await
}

/// `DELETE .../brokers/{broker_id}/configs/{name}`.
pub(super) async fn reset_broker_config(
    ctx: Ctx,
    Path((_, broker, name)): Path<(String, i32, String)>,
) -> Result<StatusCode> {
    reset(Scope::Broker(broker), &ctx, name).await
}

/// `POST .../brokers/{broker_id}/configs:alter`.
pub(super) async fn alter_broker_configs(
    ctx: Ctx,
    Path((_, broker)): Path<(String, i32)>,
    body: Bytes,
) -> Result<StatusCode> {
    alter_batch(Scope::Broker(broker), &ctx, &body).await
}

/// `GET .../broker-configs`: the dynamic cluster-wide broker configs.
pub(super) async fn list_cluster_configs(ctx: Ctx) -> Result<Json<Value>> {
    Scope::Cluster.list_json(&ctx).await
}

/// `GET .../broker-configs/{name}`.
pub(super) async fn get_cluster_config(
    ctx: Ctx,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    Scope::Cluster.get_json(&ctx, &name).await
}

/// `PUT .../broker-configs/{name}`.
pub(super) async fn update_cluster_config(
    ctx: Ctx,
    Path((_, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    update(Scope::Cluster, &ctx, name, &body).await
}

/// `DELETE .../broker-configs/{name}`.
pub(super) async fn reset_cluster_config(
    ctx: Ctx,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    reset(Scope::Cluster, &ctx, name).await
}

/// `POST .../broker-configs:alter`.
pub(super) async fn alter_cluster_configs(ctx: Ctx, body: Bytes) -> Result<StatusCode> {
    alter_batch(Scope::Cluster, &ctx, &body).await
}

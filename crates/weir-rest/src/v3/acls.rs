//! ACLs: search, create (one or a batch) and delete.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use weir_auth::acl::{
    AclBinding, AclBindingFilter, AclOperation, PatternType, PermissionType, ResourceType,
};

use super::{encode, parse_body, Ctx};
use crate::error::{RestError, Result};

fn acl_data(ctx: &Ctx, a: &AclBinding) -> Value {
    let q = [
        ("resource_type", a.resource_type.name()),
        ("resource_name", a.name.as_str()),
        ("pattern_type", a.pattern_type.name()),
        ("principal", a.principal.as_str()),
        ("host", a.host.as_str()),
        ("operation", a.operation.name()),
        ("permission", a.permission.name()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode(v).replace("%2A", "*")))
    .collect::<Vec<_>>()
    .join("&");
    json!({
        "kind": "KafkaAcl",
        "metadata": {"self": format!("{}?{q}", ctx.url(&["acls"]))},
        "cluster_id": ctx.cluster_id,
        "resource_type": a.resource_type.name(),
        "resource_name": a.name,
        "pattern_type": a.pattern_type.name(),
        "principal": a.principal,
        "host": a.host,
        "operation": a.operation.name(),
        "permission": a.permission.name(),
    })
}

/// An enum query parameter: absent means ANY; `required` refuses that.
fn param<T>(
    q: &HashMap<String, String>,
    name: &str,
    any: T,
    parse: impl Fn(&str) -> Option<T>,
    required: bool,
) -> Result<T> {
    match q.get(name).map(String::as_str) {
        None | Some("") if required => Err(RestError::bad_request(format!(
            "{name} cannot be unspecified or UNKNOWN"
        ))),
        None | Some("") => Ok(any),
        Some(v) if v.eq_ignore_ascii_case("UNKNOWN") => Err(RestError::bad_request(format!(
            "{name} cannot be unspecified or UNKNOWN"
        ))),
        Some(v) => parse(v).ok_or_else(|| RestError::bad_request(format!("{name}={v} is invalid"))),
    }
}

/// The filter of a search or delete, from its query parameters.
fn filter(q: &HashMap<String, String>, required: bool) -> Result<AclBindingFilter> {
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(AclBindingFilter {
        resource_type: param(
            q,
            "resource_type",
            ResourceType::Any,
            ResourceType::parse,
            required,
        )?,
        name: text("resource_name"),
        pattern_type: param(
            q,
            "pattern_type",
            PatternType::Any,
            PatternType::parse,
            required,
        )?,
        principal: text("principal"),
        host: text("host"),
        operation: param(
            q,
            "operation",
            AclOperation::Any,
            AclOperation::parse,
            required,
        )?,
        permission: param(
            q,
            "permission",
            PermissionType::Any,
            PermissionType::parse,
            required,
        )?,
    })
}

/// `GET .../acls`.
pub(super) async fn search_acls(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let f = filter(&q, false)?;
    let acls = ctx
        .clients
        .admin(async |a| a.describe_acls(&f).await)
        .await?;
    let data = acls.iter().map(|a| acl_data(&ctx, a)).collect();
    Ok(ctx.list("KafkaAclList", &["acls"], data))
}

#[derive(Debug, Deserialize)]
struct CreateAcl {
    resource_type: String,
    resource_name: String,
    pattern_type: String,
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

impl CreateAcl {
    fn binding(self) -> Result<AclBinding> {
        let bad = |field: &str, v: &str| RestError::bad_request(format!("{field}={v} is invalid"));
        let resource_type = ResourceType::parse(&self.resource_type)
            .ok_or_else(|| bad("resource_type", &self.resource_type))?;
        if resource_type == ResourceType::Cluster && self.resource_name != "kafka-cluster" {
            return Err(RestError::BadRequest {
                code: 40002,
                message: "The only valid name for the CLUSTER resource is kafka-cluster".into(),
            });
        }
        let b = AclBinding {
            resource_type,
            pattern_type: PatternType::parse(&self.pattern_type)
                .ok_or_else(|| bad("pattern_type", &self.pattern_type))?,
            operation: AclOperation::parse(&self.operation)
                .ok_or_else(|| bad("operation", &self.operation))?,
            permission: PermissionType::parse(&self.permission)
                .ok_or_else(|| bad("permission", &self.permission))?,
            name: self.resource_name,
            principal: self.principal,
            host: self.host,
        };
        b.validate().map_err(|e| RestError::BadRequest {
            code: 40002,
            message: e.to_string(),
        })?;
        Ok(b)
    }
}

/// `POST .../acls`: 201.
pub(super) async fn create_acl(ctx: Ctx, body: Bytes) -> Result<StatusCode> {
    let acl = parse_body::<CreateAcl>(&body)?.binding()?;
    ctx.clients
        .admin(async |a| a.create_acls(&[acl]).await)
        .await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize)]
struct CreateAclBatch {
    data: Vec<CreateAcl>,
}

/// `POST .../acls:batch`: 201.
pub(super) async fn create_acls_batch(ctx: Ctx, body: Bytes) -> Result<StatusCode> {
    let acls = parse_body::<CreateAclBatch>(&body)?
        .data
        .into_iter()
        .map(CreateAcl::binding)
        .collect::<Result<Vec<_>>>()?;
    ctx.clients
        .admin(async |a| a.create_acls(&acls).await)
        .await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE .../acls`: resource type, pattern type, operation and
/// permission are required; answers the ACLs deleted.
pub(super) async fn delete_acls(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let f = filter(&q, true)?;
    let deleted = ctx
        .clients
        .admin(async |a| a.delete_acls(&[f]).await)
        .await?;
    let data: Vec<Value> = deleted.iter().map(|a| acl_data(&ctx, a)).collect();
    Ok(Json(json!({ "data": data })))
}

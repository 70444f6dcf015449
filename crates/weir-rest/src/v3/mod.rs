//! API v3: `/v3/clusters/{cluster_id}/...`, with Confluent's resource
//! shapes: every resource has a `kind` and `metadata` (`self` URL and
//! `resource_name` CRN), related resources are `{"related": URL}` links,
//! and collections are `{kind, metadata, data}`.

mod acls;
mod cluster;
mod configs;
mod groups;
mod records;
mod topics;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::clients::ClientSet;
use crate::error::{RestError, Result};
use crate::RestProxy;

/// The v3 routes.
pub(crate) fn router() -> Router<Arc<RestProxy>> {
    let c = "/v3/clusters/{cluster_id}";
    Router::new()
        .route("/v3/clusters", get(cluster::list_clusters))
        .route(c, get(cluster::get_cluster))
        .route(&format!("{c}/brokers"), get(cluster::list_brokers))
        .route(&format!("{c}/brokers/{{broker_id}}"), get(cluster::get_broker))
        .route(
            &format!("{c}/brokers/{{broker_id}}/partition-replicas"),
            get(topics::replicas_of_broker),
        )
        .route(&format!("{c}/brokers/-/configs"), get(configs::list_all_broker_configs))
        .route(&format!("{c}/brokers/{{broker_id}}/configs"), get(configs::list_broker_configs))
        .route(
            &format!("{c}/brokers/{{broker_id}}/configs:alter"),
            post(configs::alter_broker_configs),
        )
        .route(
            &format!("{c}/brokers/{{broker_id}}/configs/{{name}}"),
            get(configs::get_broker_config)
                .put(configs::update_broker_config)
                .delete(configs::reset_broker_config),
        )
        .route(&format!("{c}/broker-configs"), get(configs::list_cluster_configs))
        .route(&format!("{c}/broker-configs:alter"), post(configs::alter_cluster_configs))
        .route(
            &format!("{c}/broker-configs/{{name}}"),
            get(configs::get_cluster_config)
                .put(configs::update_cluster_config)
                .delete(configs::reset_cluster_config),
        )
        .route(
            &format!("{c}/topics"),
            get(topics::list_topics).post(topics::create_topic),
        )
        .route(&format!("{c}/topics/-/configs"), get(configs::list_all_topic_configs))
        .route(
            &format!("{c}/topics/{{topic_name}}"),
            get(topics::get_topic)
                .patch(topics::update_partition_count)
                .delete(topics::delete_topic),
        )
        .route(&format!("{c}/topics/{{topic_name}}/configs"), get(configs::list_topic_configs))
        .route(
            &format!("{c}/topics/{{topic_name}}/configs:alter"),
            post(configs::alter_topic_configs),
        )
        .route(
            &format!("{c}/topics/{{topic_name}}/configs/{{name}}"),
            get(configs::get_topic_config)
                .put(configs::update_topic_config)
                .delete(configs::reset_topic_config),
        )
        .route(
            &format!("{c}/topics/-/partitions/-/reassignment"),
            get(topics::list_all_reassignments),
        )
        .route(
            &format!("{c}/topics/{{topic_name}}/partitions/-/reassignment"),
            get(topics::list_topic_reassignments),
        )
        .route(
            &format!("{c}/topics/{{topic_name}}/partitions/{{partition_id}}/reassignment"),
            get(topics::get_reassignment),
        )
        .route(&format!("{c}/topics/{{topic_name}}/partitions"), get(topics::list_partitions))
        .route(
            &format!("{c}/topics/{{topic_name}}/partitions/{{partition_id}}"),
            get(topics::get_partition),
        )
        .route(
            &format!("{c}/topics/{{topic_name}}/partitions/{{partition_id}}/offset"),
            get(topics::partition_offsets),
        )
        .route(
            &format!("{c}/topics/{{topic_name}}/partitions/{{partition_id}}/replicas"),
            get(topics::list_replicas),
        )
        .route(
            &format!("{c}/topics/{{topic_name}}/partitions/{{partition_id}}/replicas/{{broker_id}}"),
            get(topics::get_replica),
        )
        .route(&format!("{c}/topics/{{topic_name}}/records"), post(records::produce))
        .route(
            &format!("{c}/topics/{{topic_name}}/records:batch"),
            post(records::produce_batch),
        )
        .route(&format!("{c}/consumer-groups"), get(groups::list_groups))
        .route(&format!("{c}/consumer-groups/{{group}}"), get(groups::get_group))
        .route(
            &format!("{c}/consumer-groups/{{group}}/consumers"),
            get(groups::list_consumers),
        )
        .route(
            &format!("{c}/consumer-groups/{{group}}/consumers/{{consumer}}"),
            get(groups::get_consumer),
        )
        .route(
            &format!("{c}/consumer-groups/{{group}}/consumers/{{consumer}}/assignments"),
            get(groups::list_assignments),
        )
        .route(
            &format!(
                "{c}/consumer-groups/{{group}}/consumers/{{consumer}}/assignments/{{topic_name}}/partitions/{{partition_id}}"
            ),
            get(groups::get_assignment),
        )
        .route(&format!("{c}/consumer-groups/{{group}}/lag-summary"), get(groups::lag_summary))
        .route(&format!("{c}/consumer-groups/{{group}}/lags"), get(groups::list_lags))
        .route(
            &format!("{c}/consumer-groups/{{group}}/lags/{{topic_name}}/partitions/{{partition_id}}"),
            get(groups::get_lag),
        )
        .route(
            &format!("{c}/acls"),
            get(acls::search_acls)
                .post(acls::create_acl)
                .delete(acls::delete_acls),
        )
        .route(&format!("{c}/acls:batch"), post(acls::create_acls_batch))
}

/// One v3 request's clients and URL builder.
pub(crate) struct Ctx {
    pub clients: Arc<ClientSet>,
    pub cluster_id: String,
    /// `http://host/v3/clusters/{cluster_id}`.
    base: String,
}

impl axum::extract::FromRequestParts<Arc<RestProxy>> for Ctx {
    type Rejection = RestError;

    /// The request's identity and the cluster its `{cluster_id}` names.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        proxy: &Arc<RestProxy>,
    ) -> Result<Self> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, proxy)
            .await
            .map_err(|_| RestError::no_route())?;
        let cluster_id = params
            .iter()
            .find(|(k, _)| *k == "cluster_id")
            .map(|(_, v)| v.to_string())
            .ok_or_else(RestError::no_route)?;
        proxy.v3(&parts.headers, &cluster_id).await
    }
}

impl RestProxy {
    /// The context of a v3 request on `cluster_id`: 404 unless it names
    /// the cluster the proxy is connected to.
    pub(crate) async fn v3(&self, headers: &HeaderMap, cluster_id: &str) -> Result<Ctx> {
        let clients = self.clients_for(headers)?;
        let id = self.cluster_id(&clients).await?;
        if id != cluster_id {
            return Err(RestError::not_found(
                404,
                format!("Cluster {cluster_id} cannot be found."),
            ));
        }
        Ok(Ctx {
            clients,
            base: format!("{}/v3/clusters/{}", self.base_url(headers), encode(&id)),
            cluster_id: id,
        })
    }
}

/// Percent-encodes a path segment (group ids and config names may hold
/// anything).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Ctx {
    /// The URL of `path` (segments, encoded) under the cluster.
    pub fn url(&self, path: &[&str]) -> String {
        let mut u = self.base.clone();
        for s in path {
            u.push('/');
            u.push_str(&encode(s));
        }
        u
    }

    /// `crn:///kafka={cluster}/type=name/...`.
    pub fn crn(&self, parts: &[(&str, &str)]) -> String {
        let mut c = format!("crn:///kafka={}", self.cluster_id);
        for (t, n) in parts {
            c.push('/');
            c.push_str(t);
            if !n.is_empty() {
                c.push('=');
                c.push_str(n);
            }
        }
        c
    }

    /// A collection of `kind` at `path`.
    pub fn list(&self, kind: &str, path: &[&str], data: Vec<Value>) -> axum::Json<Value> {
        axum::Json(collection(kind, self.url(path), data))
    }

    /// `{"related": URL}`.
    pub fn related(&self, path: &[&str]) -> Value {
        json!({ "related": self.url(path) })
    }

    /// A resource's `kind` and `metadata`, to which its fields are added.
    pub fn resource(&self, kind: &str, path: &[&str], crn: &[(&str, &str)]) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kind".into(), json!(kind));
        m.insert(
            "metadata".into(),
            json!({"self": self.url(path), "resource_name": self.crn(crn)}),
        );
        m.insert("cluster_id".into(), json!(self.cluster_id));
        m
    }
}

/// A collection: `{kind, metadata: {self, next: null}, data}`.
pub(crate) fn collection(kind: &str, self_url: String, data: Vec<Value>) -> Value {
    json!({"kind": kind, "metadata": {"self": self_url, "next": null}, "data": data})
}

/// Adds `fields` to a resource map.
pub(crate) fn with(mut m: Map<String, Value>, fields: Value) -> Value {
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    Value::Object(m)
}

/// Parses a JSON request body, with Confluent's 400 for malformed JSON.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::bad_request(
            "Request body is empty. Data is required.",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| RestError::bad_request(format!("Error processing JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode("orders.v1_a-b"), "orders.v1_a-b");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}

//! `weir-console` owns Weir's web console: pages for the cluster,
//! topics (with a message browser), consumer groups, schemas, Connect,
//! SQL and security, written in plain HTML, CSS and JavaScript modules and built
//! into the binary (no Node.js, no download, no external font or script).
//!
//! The console is a client of the platform's APIs, so it runs against any
//! Kafka-compatible cluster (`weir console --bootstrap`) as well as inside
//! `weir serve` (`--console-listen`):
//!
//! - `/api/rest/...`: the REST proxy's API (`weir-rest`), for topics,
//!   configs, partitions, groups, lags, ACLs and producing, with the REST
//!   proxy's principal propagation, so a user sees what their ACLs allow;
//! - `/api/...` ([`api`]): what the REST API lacks: an overview with the
//!   broker's metrics, partition offsets and sizes page by page, the
//!   message browser (records decoded as text, JSON, or Avro, JSON Schema
//!   and Protobuf through the registry), group offset resets and deletion, SCRAM users and quotas;
//! - `/api/upstream/{registry,connect,sql}/...` ([`upstream`]): those
//!   services' own REST APIs, forwarded with the caller's credentials;
//! - `/` and `/assets/...` ([`assets`]): the pages.

mod api;
mod assets;
pub mod service;
mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::routing::{any, delete, get, post};
use axum::Router;
use weir_rest::{RestConfig, RestProxy};

pub use service::ConsoleService;

/// Where the console reads the broker's Prometheus metrics from.
#[derive(Clone)]
pub enum Metrics {
    /// None: the overview has no charts.
    None,
    /// Rendered in this process (the node's own registry).
    Local(Arc<dyn Fn() -> String + Send + Sync>),
    /// Scraped from an admin listener's `/metrics` URL.
    Url(String),
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metrics::None => f.write_str("None"),
            Metrics::Local(_) => f.write_str("Local"),
            Metrics::Url(u) => write!(f, "Url({u})"),
        }
    }
}

/// The message browser's decoders of Confluent's wire format, one per
/// schema type, over one registry client.
#[derive(Debug)]
pub(crate) struct Decoders {
    pub client: Arc<weir_formats::SchemaRegistryClient>,
    pub avro: weir_formats::avro::AvroDeserializer,
    pub json: weir_formats::json_schema::JsonSchemaDeserializer,
    pub protobuf: weir_formats::protobuf::ProtobufDeserializer,
}

/// The console's shared state.
#[derive(Debug)]
pub struct Console {
    proxy: Arc<RestProxy>,
    metrics: Metrics,
    http: reqwest::Client,
    registry: Option<Decoders>,
    /// Base URLs of the registry, Connect and SQL by service name.
    upstreams: BTreeMap<&'static str, String>,
}

impl Console {
    /// A console over the cluster `rest` reaches, with `metrics`, and the
    /// registry (`schema.registry.url` of `rest`), Connect (`connect.url`)
    /// and SQL server (`sql.url`) of `urls` when set.
    pub fn new(
        mut rest: RestConfig,
        metrics: Metrics,
        urls: &BTreeMap<String, String>,
    ) -> Result<Arc<Self>, String> {
        rest.base_path = "/api/rest".into();
        let mut upstreams = BTreeMap::new();
        for (name, setting, _) in upstream::SERVICES {
            if let Some(url) = urls.get(*setting).or_else(|| rest.registry.get(*setting)) {
                upstreams.insert(*name, url.clone());
            }
        }
        let registry = match rest.registry.get("schema.registry.url") {
            Some(_) => {
                let props = rest
                    .registry
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let config = weir_formats::RegistryConfig::from_properties(&props)
                    .map_err(|e| e.to_string())?;
                let client =
                    weir_formats::SchemaRegistryClient::new(config).map_err(|e| e.to_string())?;
                let client = Arc::new(client);
                let config = weir_formats::SerdeConfig::default;
                Some(Decoders {
                    avro: weir_formats::avro::AvroDeserializer::new(client.clone(), config()),
                    json: weir_formats::json_schema::JsonSchemaDeserializer::new(
                        client.clone(),
                        config(),
                    ),
                    protobuf: weir_formats::protobuf::ProtobufDeserializer::new(
                        client.clone(),
                        config(),
                    ),
                    client,
                })
            }
            None => None,
        };
        Ok(Arc::new(Self {
            proxy: RestProxy::new(rest),
            metrics,
            http: reqwest::Client::new(),
            registry,
            upstreams,
        }))
    }

    /// The REST proxy behind `/api/rest`.
    pub fn proxy(&self) -> &Arc<RestProxy> {
        &self.proxy
    }
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    let api = Router::new()
        .route("/api/overview", get(api::overview))
        .route("/api/topics/{topic}/partitions", get(api::partitions))
        .route("/api/topics/{topic}/messages", get(api::messages))
        .route(
            "/api/groups/{group}",
            get(api::group).delete(api::delete_group),
        )
        .route(
            "/api/groups/{group}/reset-offsets",
            post(api::reset_offsets),
        )
        .route(
            "/api/scram-users",
            get(api::scram_users).post(api::upsert_scram_user),
        )
        .route(
            "/api/scram-users/{user}/{mechanism}",
            delete(api::delete_scram_user),
        )
        .route("/api/quotas", get(api::quotas).post(api::alter_quota))
        .route("/api/services", get(upstream::services))
        .route("/api/upstream/{service}/{*path}", any(upstream::forward))
        .with_state(console.clone());
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*file}", get(assets::file))
        .nest("/api/rest", weir_rest::router(console.proxy.clone()))
        .merge(api)
}

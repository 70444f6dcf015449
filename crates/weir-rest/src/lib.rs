//! `weir-rest` owns Weir's REST proxy: Confluent REST Proxy's HTTP APIs
//! over any Kafka-compatible cluster, as a Kafka client only.
//!
//! - API v3 (`/v3/clusters/...`, [`v3`]): clusters, brokers, topics,
//!   partitions, topic and broker configs, consumer groups with consumers,
//!   lags and lag summaries, ACLs, and producing records (one JSON object
//!   per record, streamed both ways on one connection).
//! - API v2 (`/topics`, `/consumers`, ..., [`v2`]): producing with the
//!   `application/vnd.kafka.{binary,json,...}.v2+json` embedded formats,
//!   and consumer instances (subscriptions, assignments, positions,
//!   records, offset commits) that expire after
//!   `consumer.instance.timeout.ms`.
//!
//! Admin requests go through `weir-client`; producing and consuming
//! through librdkafka. [`clients`] keeps one set of clients per identity,
//! so with principal propagation the brokers see the HTTP user.
//! [`run`] serves the API on a listener until shutdown and then closes
//! every consumer instance; [`RestService`] is the same as a service of
//! `weir serve`.

pub mod clients;
mod config;
pub mod error;
mod formats;
mod produce;
pub mod service;
mod time;
pub mod v2;
pub mod v3;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;

pub use clients::{ClientSet, Clients, Identity, KafkaSettings};
pub use error::{RestError, Result};
pub use service::RestService;

/// The proxy's settings, with Confluent REST Proxy's names and defaults
/// where it has them.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// How to reach the cluster.
    pub kafka: KafkaSettings,
    /// Act as the HTTP user: their credentials become the Kafka clients'
    /// SASL login, so their ACLs and quotas apply.
    pub propagate_principal: bool,
    /// `consumer.instance.timeout.ms`: idle consumer instances are closed
    /// after this long.
    pub consumer_instance_timeout: Duration,
    /// `consumer.request.timeout.ms`: the longest a records read waits.
    pub consumer_request_timeout: Duration,
    /// `consumer.request.max.bytes`: the most a records read returns.
    pub consumer_request_max_bytes: u64,
    /// `producer.batch.maximum.entries` of `records:batch` requests.
    pub produce_batch_max_entries: usize,
    /// Requests arrive over TLS (for the URLs the API returns).
    pub https: bool,
    /// At most this many identities keep clients open.
    pub max_identities: usize,
    /// `schema.registry.*` settings of the schema-based formats (Confluent's
    /// names; none without `schema.registry.url`).
    pub registry: std::collections::BTreeMap<String, String>,
    /// The path the API is mounted under (the console serves it at
    /// `/api/rest`), for the URLs in responses.
    pub base_path: String,
}

impl RestConfig {
    /// Confluent's defaults against `kafka`.
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            propagate_principal: false,
            consumer_instance_timeout: Duration::from_millis(300_000),
            consumer_request_timeout: Duration::from_millis(1_000),
            consumer_request_max_bytes: 64 * 1024 * 1024,
            produce_batch_max_entries: 10,
            https: false,
            max_identities: 256,
            registry: Default::default(),
            base_path: String::new(),
        }
    }
}

/// The proxy's shared state.
#[derive(Debug)]
pub struct RestProxy {
    config: RestConfig,
    clients: Clients,
    consumers: v2::consumers::Consumers,
    cluster_id: OnceLock<String>,
    schemas: Option<formats::Schemas>,
}

impl RestProxy {
    /// A proxy with `config`; nothing connects until the first request.
    pub fn new(config: RestConfig) -> Arc<Self> {
        Arc::new(Self {
            clients: Clients::new(config.kafka.clone(), config.max_identities),
            consumers: v2::consumers::Consumers::default(),
            cluster_id: OnceLock::new(),
            // Checked when the settings were read.
            schemas: formats::Schemas::from_properties(&config.registry)
                .ok()
                .flatten(),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    /// The schema registry, for the schema-based formats.
    pub(crate) fn schemas(&self) -> Result<&formats::Schemas> {
        self.schemas.as_ref().ok_or_else(|| RestError::Unprocessable {
            code: 42207,
            message: "Error serializing message. Schema-based formats need a schema registry (schema.registry.url), and none is configured.".into(),
        })
    }

    /// The clients of the identity behind `headers`.
    pub fn clients_for(&self, headers: &HeaderMap) -> Result<Arc<ClientSet>> {
        let identity = Identity::from_headers(headers, self.config.propagate_principal)?;
        Ok(self.clients.get(&identity))
    }

    /// The cluster's id (asked once; it never changes).
    pub async fn cluster_id(&self, clients: &ClientSet) -> Result<String> {
        if let Some(id) = self.cluster_id.get() {
            return Ok(id.clone());
        }
        let info = clients.admin(async |a| a.describe_cluster().await).await?;
        let _ = self.cluster_id.set(info.cluster_id.clone());
        Ok(info.cluster_id)
    }

    /// `http(s)://host` of a request, for the URLs in responses.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let scheme = if self.config.https { "https" } else { "http" };
        format!("{scheme}://{host}{}", self.config.base_path)
    }

    /// Closes every consumer instance (leaving their groups).
    pub async fn shutdown(&self) {
        self.consumers.close_all().await;
    }
}

/// The whole API: v3 and v2, with Confluent's error bodies for unknown
/// routes and methods.
pub fn router(proxy: Arc<RestProxy>) -> Router {
    Router::new()
        .merge(v3::router())
        .merge(v2::router())
        .fallback(async || RestError::no_route())
        .layer(axum::middleware::from_fn(method_not_allowed))
        .with_state(proxy)
}

/// axum answers a known path with a wrong method with an empty 405;
/// Confluent's body says so.
async fn method_not_allowed(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED
        && resp.headers().get(header::CONTENT_TYPE).is_none()
    {
        return (
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#,
        )
            .into_response();
    }
    resp
}

/// Serves the REST proxy on `listener` until `shutdown` resolves, then
/// closes every consumer instance. Expired consumer instances are closed
/// in the background meanwhile.
pub async fn run(
    listener: TcpListener,
    config: RestConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let proxy = RestProxy::new(config);
    serve(listener, proxy, shutdown).await
}

/// [`run`] with a proxy the caller keeps.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<RestProxy>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let expiry = tokio::spawn(v2::consumers::expire_loop(Arc::downgrade(&proxy)));
    let result = axum::serve(listener, router(proxy.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    expiry.abort();
    proxy.shutdown().await;
    result
}

/// Parses `State` for handlers: the proxy.
pub(crate) type Proxy = State<Arc<RestProxy>>;

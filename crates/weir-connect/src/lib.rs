//! Weir's Kafka Connect compatible runtime.
//!
//! A worker is a Kafka client only: records go through librdkafka
//! (`rdkafka`), group membership through Weir's protocol client
//! (`weir-client`), so the same runtime serves inside `weir serve` and
//! standalone against any Kafka-compatible cluster. It owns:
//!
//! - the connector and task interfaces ([`connector`]) and the plugins
//!   ([`plugins`], [`file`]);
//! - Connect's data model ([`data`]) and converters ([`converter`]), with
//!   JSON written as Kafka writes it ([`json`]);
//! - the internal topics in Kafka Connect's formats ([`storage`]);
//! - Kafka Connect's group protocol and assignor ([`protocol`]), and the
//!   herder that keeps the cluster's state and runs assigned work
//!   ([`herder`], [`worker`]);
//! - the REST API ([`rest`]) and per-task metrics ([`metrics`]).
//!
//! Entry point: [`run`] serves one worker on a bound listener until a
//! shutdown future completes.

pub mod config;
pub mod connector;
pub mod converter;
pub mod data;
pub mod error;
pub mod file;
pub mod herder;
pub mod http;
pub mod json;
pub mod metrics;
pub mod plugins;
pub mod protocol;
pub mod rest;
pub mod storage;
pub mod worker;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

pub use config::WorkerConfig;
pub use error::{ConnectError, Result};

/// The Kafka Connect version whose REST API and formats this runtime
/// follows (`GET /` reports it).
pub const KAFKA_VERSION: &str = "4.3.0";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The REST URL of a bound listener: its address, or 127.0.0.1 for an
/// unspecified one (set `rest.advertised.host.name` for other hosts).
fn rest_url(listener: &TcpListener) -> Result<String> {
    let addr = listener.local_addr().map_err(|e| ConnectError::Io {
        context: "the REST listener".into(),
        source: e,
    })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    Ok(format!("http://{host}:{}/", addr.port()))
}

/// Runs one Connect worker with Kafka Connect's worker settings `props`,
/// serving the REST API on `listener`, until `shutdown` completes; then
/// stops its tasks (committing what they did) and leaves the group.
pub async fn run(
    listener: TcpListener,
    props: BTreeMap<String, String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let worker = Arc::new(WorkerConfig::from_props(props, &rest_url(&listener)?)?);
    let cluster_id = cluster_id(&worker).await?;
    let (tx, rx) = mpsc::channel(64);
    let shared = Arc::new(herder::Shared {
        worker: worker.clone(),
        config: RwLock::default(),
        statuses: RwLock::default(),
        leader_url: RwLock::default(),
        is_leader: AtomicBool::new(false),
        local: RwLock::default(),
        metrics: Arc::default(),
        requests: tx,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = watch::channel(false);
    let herder = tokio::spawn(herder::run(shared.clone(), rx, stop_rx, ready_tx));
    let api = rest::Api {
        shared: shared.clone(),
        cluster_id,
        ready: ready_rx,
    };
    info!(url = %worker.advertised_url, group = %worker.group_id, "Connect worker REST API listening");
    let mut herder_done = stop_tx.subscribe();
    let serve = axum::serve(listener, rest::router(api)).with_graceful_shutdown(async move {
        tokio::select! {
            () = shutdown => {}
            // The herder ended by itself (it failed): stop serving too.
            () = async { let _ = herder_done.wait_for(|s| *s).await; } => {}
        }
    });
    let stop_on_herder_end = {
        let stop_tx = stop_tx.clone();
        async move {
            let r = herder.await;
            let _ = stop_tx.send(true);
            r
        }
    };
    let (served, herder_result) = tokio::join!(
        async {
            let r = serve.await;
            let _ = stop_tx.send(true);
            r
        },
        stop_on_herder_end
    );
    if let Err(e) = served {
        error!(error = %e, "Connect REST listener failed");
    }
    match herder_result {
        Ok(r) => r,
        Err(e) => Err(ConnectError::Connector {
            connector: "herder".into(),
            message: e.to_string(),
        }),
    }
}

/// The Kafka cluster's id, for `GET /`; waits up to a minute for the
/// cluster to answer.
async fn cluster_id(worker: &WorkerConfig) -> Result<String> {
    let config = weir_client::ClientConfig {
        timeout: Duration::from_secs(10),
        client_id: "weir-connect".into(),
        security: worker.security.clone(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut admin =
                weir_client::Admin::connect_with(&worker.bootstrap, config.clone()).await?;
            let md = admin.metadata(Some(&[])).await?;
            Ok::<_, weir_client::ClientError>(
                md.cluster_id.map(|c| c.to_string()).unwrap_or_default(),
            )
        };
        match attempt.await {
            Ok(id) => return Ok(id),
            Err(e @ weir_client::ClientError::Authentication { .. }) => return Err(e.into()),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e.into()),
            Err(e) => {
                info!(error = %e, "waiting for the Kafka cluster");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

//! Running a worker: [`Worker`] (start, router, metrics, stop) and [`run`]
//! (a worker serving its own listener).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use crate::config::WorkerConfig;
use crate::error::{ConnectError, Result};
use crate::{herder, metrics, rest};

/// The REST URL of a bound listener: its address, or 127.0.0.1 for an
/// unspecified one (set `rest.advertised.host.name` for other hosts).
pub fn rest_url(listener: &TcpListener) -> Result<String> {
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

/// A started worker: its herder runs; serve [`Worker::router`] for its
/// REST API, then [`Worker::stop`] it.
#[derive(Debug)]
pub struct Worker {
    shared: Arc<herder::Shared>,
    api: rest::Api,
    stop_tx: watch::Sender<bool>,
    herder: tokio::task::JoinHandle<Result<()>>,
}

impl Worker {
    /// Starts a worker with Kafka Connect's worker settings `props`, whose
    /// REST API will be reached at `rest_url` (unless `rest.advertised.*`
    /// says otherwise). Waits for the Kafka cluster (up to a minute, or
    /// until `cancel` completes).
    pub async fn start(
        props: BTreeMap<String, String>,
        rest_url: &str,
        cancel: impl Future<Output = ()>,
    ) -> Result<Self> {
        let worker = Arc::new(WorkerConfig::from_props(props, rest_url)?);
        let cluster_id = tokio::select! {
            id = cluster_id(&worker) => id?,
            () = cancel => {
                return Err(ConnectError::Unavailable {
                    message: "stopped while waiting for the Kafka cluster".into(),
                })
            }
        };
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
        let ended = stop_tx.clone();
        let herder = tokio::spawn({
            let shared = shared.clone();
            async move {
                let r = herder::run(shared, rx, stop_rx, ready_tx).await;
                if let Err(e) = &r {
                    error!(error = %e, "the Connect worker stopped");
                }
                let _ = ended.send(true);
                r
            }
        });
        info!(url = %worker.advertised_url, group = %worker.group_id, "Connect worker started");
        Ok(Self {
            api: rest::Api {
                shared: shared.clone(),
                cluster_id,
                ready: ready_rx,
            },
            shared,
            stop_tx,
            herder,
        })
    }

    /// The REST API's router.
    pub fn router(&self) -> axum::Router {
        rest::router(self.api.clone())
    }

    /// The worker's per-task metrics.
    pub fn metrics(&self) -> Arc<metrics::Metrics> {
        self.shared.metrics.clone()
    }

    /// Completes if the herder ends by itself (it failed); the caller
    /// should then stop serving.
    pub fn failed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop_tx.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Stops every task (committing what it did), leaves the group, and
    /// returns the herder's result.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop_tx.send(true);
        match self.herder.await {
            Ok(r) => r,
            Err(e) => Err(ConnectError::Connector {
                connector: "herder".into(),
                message: e.to_string(),
            }),
        }
    }
}

/// Runs one Connect worker with Kafka Connect's worker settings `props`,
/// serving the REST API on `listener`, until `shutdown` completes; then
/// stops its tasks (committing what they did) and leaves the group.
pub async fn run(
    listener: TcpListener,
    props: BTreeMap<String, String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let worker =
        Worker::start(props, &rest_url(&listener)?, until_stopped(stopped.clone())).await?;
    let failed = worker.failed();
    let served = axum::serve(listener, worker.router())
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = until_stopped(stopped) => {}
                () = failed => {}
            }
        })
        .await;
    if let Err(e) = served {
        error!(error = %e, "Connect REST listener failed");
    }
    worker.stop().await
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

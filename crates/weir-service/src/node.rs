//! The supervisor: starts services in order, stops them in reverse.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use weir_http::{HttpSecurity, MetricsRegistry};

use crate::context::{Context, Shared, Shutdown};
use crate::kafka::KafkaAccess;
use crate::{Service, ServiceError};

/// The services of one process, composed: `add` them in start order,
/// then `run`.
pub struct Node {
    services: Vec<Box<dyn Service>>,
    http: HttpSecurity,
    metrics: MetricsRegistry,
    kafka: Option<KafkaAccess>,
    /// How many services must have started for the node to be ready.
    ready_after: Option<usize>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|s| s.name()).collect();
        f.debug_struct("Node")
            .field("services", &names)
            .field("kafka", &self.kafka)
            .finish_non_exhaustive()
    }
}

/// A started service.
struct Started {
    name: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServiceError>>,
}

impl Node {
    /// A node whose HTTP services use `http` and publish metrics in
    /// `metrics`.
    pub fn new(http: HttpSecurity, metrics: MetricsRegistry) -> Self {
        Self {
            services: Vec::new(),
            http,
            metrics,
            kafka: None,
            ready_after: None,
        }
    }

    /// Makes the node ready (`/health/ready`) once the services added so
    /// far have started, before the ones added next: the Kafka listeners
    /// mark this point, so services that are clients of them need not be
    /// up for the node to serve Kafka. Without it, the node is ready once
    /// every service has started.
    pub fn ready_here(&mut self) -> &mut Self {
        self.ready_after = Some(self.services.len());
        self
    }

    /// Where services find Kafka ([`crate::Context::kafka_client`]).
    pub fn set_kafka(&mut self, kafka: KafkaAccess) {
        self.kafka = Some(kafka);
    }

    /// Adds a service; services start in the order they are added.
    pub fn add(&mut self, service: impl Service) -> &mut Self {
        self.services.push(Box::new(service));
        self
    }

    /// Starts every service in order, serves until `signal` resolves or
    /// a service ends by itself, then stops them newest first, each
    /// drained before the next is told. A service that fails to start
    /// stops those already started the same way. Returns the first
    /// failure.
    pub async fn run(self, signal: impl Future<Output = ()>) -> Result<(), ServiceError> {
        self.warn_unused_client_settings();
        let (ready_tx, ready) = watch::channel(false);
        let shared = Arc::new(Shared {
            http: self.http,
            metrics: self.metrics,
            kafka: self.kafka,
            ready,
        });
        let (ended_tx, mut ended) = mpsc::unbounded_channel::<usize>();
        let mut started: Vec<Started> = Vec::new();
        let mut failure = None;
        let mut signalled = false;
        let ready_after = self.ready_after.unwrap_or(self.services.len());
        if ready_after == 0 {
            ready_tx.send_replace(true);
        }
        tokio::pin!(signal);
        for service in self.services {
            let name = service.name().to_string();
            let (stop, shutdown) = Shutdown::new();
            info!(service = %name, "starting");
            let start = service.start(Context::new(name.clone(), shutdown, shared.clone()));
            tokio::pin!(start);
            let result = tokio::select! {
                // A start that is done wins over a signal that is too.
                biased;
                r = &mut start => r,
                () = &mut signal => {
                    // Let it finish starting (or see its signal and give
                    // up), then stop everything.
                    signalled = true;
                    info!(service = %name, "shutdown requested while starting");
                    let _ = stop.send(true);
                    start.await
                }
            };
            match result {
                Ok(running) => {
                    let index = started.len();
                    // Ready before the service runs: a client it answers
                    // then finds the node ready.
                    if index + 1 == ready_after && !signalled {
                        ready_tx.send_replace(true);
                        info!("ready");
                    }
                    let ended_tx = ended_tx.clone();
                    let task = tokio::spawn(async move {
                        let r = running.done.await;
                        let _ = ended_tx.send(index);
                        r
                    });
                    started.push(Started { name, stop, task });
                }
                Err(e) => {
                    error!(service = %name, error = %e, "failed to start; stopping the others");
                    failure = Some(e);
                    break;
                }
            }
            if signalled {
                break;
            }
        }
        let mut ended_early = None;
        if failure.is_none() && !signalled {
            ready_tx.send_replace(true);
            info!("every service started");
            tokio::select! {
                () = &mut signal => {}
                Some(i) = ended.recv() => {
                    warn!(service = %started[i].name, "stopped by itself; stopping the others");
                    ended_early = Some(i);
                }
            }
        }
        ready_tx.send_replace(false);
        for (i, s) in started.into_iter().enumerate().rev() {
            info!(service = %s.name, "stopping");
            let _ = s.stop.send(true);
            let result = match s.task.await {
                Ok(Ok(())) if ended_early == Some(i) => Err(ServiceError::failed(
                    &s.name,
                    "stopped without being asked to",
                )),
                Ok(r) => r,
                Err(join) => Err(ServiceError::failed(&s.name, join)),
            };
            match result {
                Ok(()) => info!(service = %s.name, "stopped"),
                Err(e) => {
                    error!(service = %s.name, error = %e, "stopped with an error");
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Client settings for a service that does not run here are a typo,
    /// or for a service turned off: say so, and go on.
    fn warn_unused_client_settings(&self) {
        let Some(kafka) = &self.kafka else {
            return;
        };
        for configured in kafka.configured_services() {
            if !self.services.iter().any(|s| s.name() == configured) {
                let names: Vec<&str> = self.services.iter().map(|s| s.name()).collect();
                warn!(
                    service = configured,
                    running = %names.join(","),
                    "client settings for a service that does not run here are ignored"
                );
            }
        }
    }
}

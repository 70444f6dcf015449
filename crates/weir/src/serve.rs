//! `weir serve`: the node as a composition of services.
//!
//! Every socket is bound first, so a busy port fails before the log
//! spends time recovering. Then the services start in this order and stop
//! in the reverse one (each drained before the next is told):
//!
//! 1. `admin`: `/metrics` and health checks, live during recovery;
//! 2. `log`: opens the storage engine and the broker, closes them last;
//! 3. `schema-registry`, over the broker's internal topics;
//! 4. `kafka`: the Kafka listeners; the node is ready once they serve;
//! 5. the platform services, Kafka clients of the node's own listener,
//!    which stop before it.
//!
//! A platform service is one flag in `config.rs` (its `--x-listen`
//! address, or `off`) and one `http_service` line below.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tracing::info;
use weir_broker::{Broker, BrokerConfig};
use weir_service::{
    service_fn, Context, KafkaAccess, KafkaEndpoint, Node, Running, Service, ServiceError,
};

use crate::config::Settings;
use crate::security::{self, BrokerSlot};

/// Runs the node until SIGTERM or SIGINT, then drains it.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let signal = shutdown_signal().context("cannot watch for SIGTERM and SIGINT")?;
    let tls = security::tls_source(&settings)?;
    let broker = BrokerSlot::default();
    let mut node = Node::new(
        security::http_security(&settings, tls.clone(), &broker)?,
        weir_http::MetricsRegistry::default(),
    );

    let admin = weir_service::bind(&settings.admin_listen, "admin").await?;
    let kafka = KafkaListeners::bind(&settings, tls).await?;
    node.set_kafka(
        KafkaAccess::node(kafka.endpoints.clone()).with_clients(service_clients(&settings)),
    );
    add(&mut node, admin_service(admin));
    add(&mut node, log_service(&settings, &kafka, &broker));
    http_service(
        &mut node,
        settings.registry_listen.as_deref(),
        "schema registry",
        |l| registry_service(l, &broker),
    )
    .await?;
    add(&mut node, kafka_service(&settings, kafka, &broker));
    // Ready once Kafka clients are served; the platform services below
    // are clients of the Kafka listener and start after it.
    node.ready_here();
    http_service(
        &mut node,
        settings.rest_listen.as_deref(),
        "REST proxy",
        weir_rest::RestService::new,
    )
    .await?;
    http_service(
        &mut node,
        settings.connect_listen.as_deref(),
        "connect",
        crate::connect::service,
    )
    .await?;
    http_service(
        &mut node,
        settings.console_listen.as_deref(),
        "console",
        weir_console::ConsoleService::new,
    )
    .await?;
    http_service(
        &mut node,
        settings.sql_listen.as_deref(),
        "sql",
        crate::sql::service,
    )
    .await?;

    node.run(signal).await?;
    info!("stopped cleanly");
    Ok(())
}

/// The services' client settings, with the node's own schema registry as
/// the REST proxy's, the console's and the SQL server's, and the node's Connect and SQL
/// server as the console's, unless the operator named others.
fn service_clients(settings: &Settings) -> crate::config::ClientConfigs {
    let mut clients = settings.clients.clone();
    let scheme = if settings.broker.get_bool("http.ssl.enabled") {
        "https"
    } else {
        "http"
    };
    // A wildcard bind is reached over loopback.
    let url = |addr: &str| {
        let addr = addr
            .replacen("0.0.0.0", "127.0.0.1", 1)
            .replacen("[::]", "[::1]", 1);
        format!("{scheme}://{addr}")
    };
    let mut set = |service: &str, key: &str, value: String| {
        clients
            .entry(service.to_string())
            .or_default()
            .entry(key.to_string())
            .or_insert(value);
    };
    if let Some(addr) = &settings.registry_listen {
        for service in [weir_rest::service::NAME, weir_console::service::NAME] {
            set(service, "schema.registry.url", url(addr));
        }
        // The SQL server's AVRO, PROTOBUF and JSON_SR formats.
        set("sql", "ksql.schema.registry.url", url(addr));
    }
    if let Some(addr) = &settings.connect_listen {
        set(weir_console::service::NAME, "connect.url", url(addr));
    }
    if let Some(addr) = &settings.sql_listen {
        set(weir_console::service::NAME, "sql.url", url(addr));
    }
    clients
}

/// Adds a service (in test builds, one whose start can be made to fail).
fn add(node: &mut Node, service: impl Service) {
    #[cfg(feature = "fault-injection")]
    let service = crate::fault::FailStart(service);
    node.add(service);
}

/// Binds `address` (when the service is on) and adds the service built
/// on the bound socket.
async fn http_service<S: Service>(
    node: &mut Node,
    address: Option<&str>,
    what: &str,
    service: impl FnOnce(tokio::net::TcpListener) -> S,
) -> Result<(), ServiceError> {
    if let Some(address) = address {
        add(node, service(weir_service::bind(address, what).await?));
    }
    Ok(())
}

fn admin_service(listener: tokio::net::TcpListener) -> impl Service {
    service_fn("admin", move |ctx: Context| async move {
        let router = weir_http::admin::router(ctx.metrics().clone(), ctx.node_ready());
        Ok(Running::new(ctx.serve_http(listener, router)))
    })
}

/// Opens the storage engine and the broker over it; closes the log
/// cleanly once every later service has stopped.
fn log_service(settings: &Settings, kafka: &KafkaListeners, slot: &BrokerSlot) -> impl Service {
    let settings = settings.clone();
    let advertised = kafka.advertised.clone();
    let sasl = kafka.listeners.iter().any(|l| l.protocol.uses_sasl());
    let slot = slot.clone();
    service_fn("log", move |ctx: Context| async move {
        let fail = |e: anyhow::Error| ServiceError::start("log", format!("{e:#}"));
        let (_, host, port) = advertised[0].clone();
        let config = BrokerConfig {
            node_id: i32::try_from(settings.broker.get_i64("node.id")).unwrap_or(0),
            data_dir: settings.data_dir.clone(),
            advertised_host: host,
            advertised_port: port,
            settings: settings.broker.clone(),
            clock: weir_log::Clock::system(),
        };
        let engine_config = settings.engine_config();
        // Cluster mode: the shared engine instead of the local one.
        let cluster_engine: Option<Arc<dyn weir_log::LogEngine>> = match &settings.cluster {
            Some(c) => {
                let mut cc = weir_cluster::ClusterConfig::new(
                    c.postgres.clone(),
                    c.object_store.clone(),
                    config.node_id,
                );
                cc.flush_ms = c.flush_ms;
                cc.overlap_commits = !c.serial_flush;
                cc.coordinator_lease_ms = c.lease_ms;
                cc.producer_id_expiration_ms = settings.broker.get_i64("producer.id.expiration.ms");
                // Retention, compaction of intake objects and the collector
                // run at the retention check interval, at least every 30 s
                // (intake objects should not pile up for Kafka's 5
                // minutes); unreferenced objects linger for
                // `log.segment.delete.delay.ms`, as deleted segments do.
                let check = settings.broker.get_i64("log.retention.check.interval.ms");
                cc.job_interval_ms = u64::try_from(check).unwrap_or(300_000).min(30_000);
                cc.compact_after_ms = cc.job_interval_ms;
                cc.cleaner_buffer_bytes = engine_config.cleaner_buffer_bytes;
                cc.collect_grace_ms = settings
                    .broker
                    .get("log.segment.delete.delay.ms")
                    .parse()
                    .unwrap_or(60_000);
                cc.advertised = Some((config.advertised_host.clone(), config.advertised_port));
                let engine = weir_cluster::ClusterEngine::connect(cc, weir_log::Clock::system())
                    .await
                    .map_err(|e| fail(anyhow::anyhow!("cannot open cluster storage: {e}")))?;
                Some(Arc::new(engine))
            }
            None => None,
        };
        // Recovery reads the whole log: off the async workers, so the
        // admin listener answers meanwhile.
        let broker = tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Broker>> {
            let engine: Arc<dyn weir_log::LogEngine> = match cluster_engine {
                Some(e) => e,
                None => {
                    weir_log::LocalEngine::open(engine_config).context("cannot open the log")?
                }
            };
            tokio::runtime::Handle::current()
                .block_on(Broker::open(config, engine))
                .context("cannot open the broker")
        })
        .await
        .map_err(|e| ServiceError::start("log", e))?
        .map_err(fail)?;
        broker.security().set_advertised_listeners(advertised);
        if let Err(e) = security::configure(&broker, &settings, sasl) {
            close(&broker)?;
            return Err(fail(e));
        }
        let b = broker.clone();
        ctx.metrics()
            .register("broker", move |out| crate::broker_metrics::render(out, &b));
        let _ = slot.set(broker.clone());
        Ok(Running::until(ctx.shutdown().clone(), move || {
            info!("closing the log");
            close(&broker)
        }))
    })
}

fn close(broker: &Broker) -> Result<(), ServiceError> {
    broker
        .shutdown()
        .map_err(|e| ServiceError::failed("log", format!("clean shutdown of the log failed: {e}")))
}

/// The open broker, for services started after `log`.
fn opened(slot: &BrokerSlot, service: &str) -> Result<Arc<Broker>, ServiceError> {
    slot.get()
        .cloned()
        .ok_or_else(|| ServiceError::start(service, "started before the log"))
}

/// The Kafka listeners, bound.
struct KafkaListeners {
    listeners: Vec<weir_server::Listener>,
    /// `(listener, host, port)` advertised to clients, in listener order.
    advertised: Vec<(String, String, i32)>,
    /// What services connect to.
    endpoints: Vec<KafkaEndpoint>,
}

impl KafkaListeners {
    async fn bind(
        settings: &Settings,
        tls: Option<Arc<weir_tls::TlsSource>>,
    ) -> anyhow::Result<Self> {
        let mut out = Self {
            listeners: Vec::new(),
            advertised: Vec::new(),
            endpoints: Vec::new(),
        };
        for l in security::plan_listeners(settings)? {
            let socket = weir_service::bind(&l.bind, &l.name).await?;
            let local = socket.local_addr()?;
            let (host, port) = match &l.advertised {
                Some(a) => a.clone(),
                None if l.from_listen => settings.advertised(local),
                // `--advertised-listener` names one address; with `listeners`
                // each unlisted listener advertises what it bound.
                None => security::bound_address(local),
            };
            // One parsable line per listener, for people and test harnesses.
            info!(
                listener = %l.name,
                protocol = l.protocol.name(),
                address = %local,
                advertised = %format!("{host}:{port}"),
                "kafka listener bound"
            );
            let tls = if l.protocol.uses_tls() {
                let source = tls
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("TLS listener without TLS material"))?;
                Some(weir_server::ListenerTls {
                    source,
                    principal_mapper: security::principal_mapper(settings)?,
                })
            } else {
                None
            };
            out.advertised.push((l.name.clone(), host, port));
            out.endpoints.push(KafkaEndpoint {
                listener: l.name.clone(),
                protocol: l.protocol,
                address: local,
            });
            out.listeners.push(weir_server::Listener {
                name: l.name,
                protocol: l.protocol,
                socket,
                tls,
            });
        }
        Ok(out)
    }
}

/// Serves Kafka clients on every listener; on shutdown stops accepting,
/// answers what each connection has read, and closes them.
fn kafka_service(settings: &Settings, kafka: KafkaListeners, slot: &BrokerSlot) -> impl Service {
    let request_log_sample = settings.request_log_sample;
    let slot = slot.clone();
    let data_dir = settings.data_dir.clone();
    service_fn("kafka", move |ctx: Context| async move {
        let broker = opened(&slot, "kafka")?;
        let config = weir_server::ServerConfig {
            request_log_sample,
            #[cfg(feature = "fault-injection")]
            faults: crate::fault::server_faults(),
            ..weir_server::ServerConfig::from_broker(&broker)
        };
        let local = kafka.endpoints[0].address;
        let (_, host, port) = &kafka.advertised[0];
        info!(data_dir = %data_dir.display(), advertised = %format!("{host}:{port}"), "listening on {local}");
        let shutdown = ctx.shutdown().wait();
        Ok(Running::new(async move {
            weir_server::serve(kafka.listeners, broker, config, shutdown).await;
            Ok(())
        }))
    })
}

/// The schema registry over the open broker.
fn registry_service(listener: tokio::net::TcpListener, slot: &BrokerSlot) -> impl Service {
    let slot = slot.clone();
    service_fn("schema-registry", move |ctx: Context| async move {
        let broker = opened(&slot, "schema-registry")?;
        let registry = weir_registry::Registry::open(&broker)
            .await
            .map_err(|e| ServiceError::start("schema-registry", e))?;
        let router = weir_registry::api::router(registry);
        Ok(Running::new(ctx.serve_http(listener, router)))
    })
}

/// Registers for SIGTERM and SIGINT now, so a signal that arrives before
/// the returned future is first polled still stops the node gracefully.
pub(crate) fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => info!("SIGINT received"),
                _ = term.recv() => info!("SIGTERM received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

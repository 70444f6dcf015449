//! The `weir` binary: command line, configuration and process lifecycle.
//!
//! `weir serve` resolves its settings (flag, then environment variable, then
//! the TOML config file, then the default), opens storage and the broker,
//! and serves until SIGTERM or SIGINT, then drains connections and closes
//! the log cleanly. A bad config prints one line naming the key and exits
//! with status 2.

mod bench;
mod cli;
mod config;
mod security;
mod sql;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::config::{LogFormat, ServeArgs, Settings};

/// Weir: a Kafka-compatible event streaming platform in one binary.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a single-node broker.
    ///
    /// Examples:
    ///   weir serve
    ///   weir serve --data-dir /var/lib/weir --listen 0.0.0.0:9092 --advertised-listener kafka.example.com:9092
    ///   weir serve --set num.partitions=6 --set log.retention.hours=24
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Create, list, describe, delete and alter topics.
    Topic(cli::topic::TopicArgs),
    /// Write records from stdin or a file to a topic, one a line.
    ///
    /// Examples:
    ///   echo hello | weir produce orders
    ///   weir produce orders --key-separator : < keyed-lines.txt
    ///   weir produce orders -H source=import -H version=2 --acks 1 --compression zstd --file data.txt
    ///   echo '{"key":"k1","value":"v1","headers":{"h":"x"},"timestamp":1700000000000}' | weir produce orders --format json
    #[command(verbatim_doc_comment)]
    Produce(cli::produce::ProduceArgs),
    /// Print a topic's records, with or without a consumer group.
    ///
    /// Examples:
    ///   weir consume orders                         # from the end, follow
    ///   weir consume orders --from earliest --exit  # everything there is, then stop
    ///   weir consume orders --from 42 -n 10 --partition 0
    ///   weir consume orders --from 15m              # from 15 minutes ago
    ///   weir consume orders --from 2024-05-01T12:00:00Z
    ///   weir consume orders --group billing --exit
    ///   weir consume orders --format '%p:%o %k=%v %h\n'
    ///   weir consume orders --format json --from earliest -n 100
    #[command(verbatim_doc_comment)]
    Consume(cli::consume::ConsumeArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    Group(cli::group::GroupArgs),
    /// Show the cluster's brokers, features and APIs.
    Cluster(cli::cluster::ClusterArgs),
    /// Measure a Kafka-compatible broker: produce throughput, catch-up
    /// reads, end-to-end latency (through librdkafka).
    ///
    /// Examples:
    ///   weir bench produce --partitions 8 --records 1000000 --acks all
    ///   weir bench produce --partitions 100 --producers 4 --duration 60s
    ///   weir bench consume --topic weir-bench             # read the backlog
    ///   weir bench e2e --rate 50000 --duration 60s --json  # latency at a fixed rate
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
    /// Run the streaming SQL server (ksqlDB's REST API) against a Kafka
    /// cluster.
    ///
    /// Examples:
    ///   weir sql-server --bootstrap 127.0.0.1:9092
    ///   weir sql-server --listen 0.0.0.0:8088 --set ksql.service.id=prod_ --set ksql.streams.auto.offset.reset=earliest
    #[command(verbatim_doc_comment)]
    SqlServer(sql::SqlServerArgs),
    /// Print shell completions.
    ///
    /// Examples:
    ///   weir completions bash > /etc/bash_completion.d/weir
    ///   weir completions zsh > "${fpath[1]}/_weir"
    ///   weir completions fish > ~/.config/fish/completions/weir.fish
    #[command(verbatim_doc_comment)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Runs a client command: errors are one line on stderr and exit 1.
fn client(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_logs(LogFormat::Human, "warn");
    match cli::block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, levels from RUST_LOG (default `default_level`).
fn init_logs(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        // Colour only for a terminal; log files and collectors get plain text.
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Topic(a) => client(cli::topic::run(a)),
        Command::Produce(a) => client(cli::produce::run(a)),
        Command::Consume(a) => client(cli::consume::run(a)),
        Command::Group(a) => client(cli::group::run(a)),
        Command::Cluster(a) => client(cli::cluster::run(a)),
        Command::Bench(a) => client(bench::run(a)),
        Command::SqlServer(args) => {
            init_logs(LogFormat::Human, "info");
            sql::main(args)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "weir", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Serve(args) => {
            let settings = match Settings::resolve(args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = security::check(&settings) {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
            init_logs(settings.log_format, "info");
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    // The admin listener comes first, so liveness answers while the log
    // recovers; readiness waits for the Kafka listener.
    let admin_listener = TcpListener::bind(&settings.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", settings.admin_listen))?;
    let admin_local = admin_listener.local_addr()?;
    let admin = Arc::new(weir_http::AdminState::default());
    let tls = security::tls_source(&settings)?;
    let http_tls = settings
        .broker
        .get_bool("http.ssl.enabled")
        .then(|| tls.clone())
        .flatten();
    let http_auth = Arc::new(security::http_auth(&settings)?);
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(weir_http::serve_secure(
        admin_listener,
        admin.clone(),
        http_auth.clone(),
        http_tls.clone(),
        async {
            let _ = admin_stopped.await;
        },
    ));
    let scheme = if http_tls.is_some() { "https" } else { "http" };
    info!("admin listener on {scheme}://{admin_local}");
    let plan = security::plan_listeners(&settings)?;
    let mut listeners = Vec::new();
    let mut advertised = Vec::new();
    for l in plan {
        let socket = TcpListener::bind(&l.bind)
            .await
            .with_context(|| format!("cannot listen on {} ({})", l.bind, l.name))?;
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
        advertised.push((l.name.clone(), host, port));
        listeners.push(weir_server::Listener {
            name: l.name,
            protocol: l.protocol,
            socket,
            tls: None,
        });
    }
    let local = listeners[0].socket.local_addr()?;
    // Bound before the log is opened, like the Kafka listener, so a busy
    // port fails fast.
    let registry_listener = match &settings.registry_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (schema registry)"))?,
        ),
        None => None,
    };
    let (_, host, port) = advertised[0].clone();
    let engine =
        weir_log::LocalEngine::open(settings.engine_config()).context("cannot open the log")?;
    let broker = weir_broker::Broker::open(
        weir_broker::BrokerConfig {
            node_id: i32::try_from(settings.broker.get_i64("node.id")).unwrap_or(0),
            data_dir: settings.data_dir.clone(),
            advertised_host: host.clone(),
            advertised_port: port,
            settings: settings.broker.clone(),
        },
        engine.clone(),
    )
    .context("cannot open the broker")?;
    broker.set_advertised_listeners(advertised);
    let _ = http_auth.broker.set(Arc::clone(&broker));
    if let Err(e) = security::configure(&broker, &settings, &mut listeners, tls) {
        if let Err(close) = broker.shutdown() {
            error!("clean shutdown of the log failed: {close}");
        }
        return Err(e);
    }
    let mut server_config = weir_server::ServerConfig {
        request_log_sample: settings.request_log_sample,
        ..weir_server::ServerConfig::from_broker(&broker)
    };
    // Fault injection for the idempotence tests; never set in production.
    if let Some(n) = std::env::var("WEIR_FAULT_CLOSE_AFTER_PRODUCE_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        warn!(
            every = n,
            "fault injection on: closing connections after produce requests"
        );
        server_config.close_after_produce_every = n;
    }
    let shutdown = shutdown_signal().context("cannot watch for SIGTERM and SIGINT")?;
    // One signal stops the Kafka listener and the registry's.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let registry = match registry_listener {
        Some(l) => match start_registry(&broker, l, stop_rx, http_auth.clone(), http_tls.clone()) {
            Ok(task) => Some(task),
            Err(e) => {
                // Close the log cleanly so the next start needs no recovery.
                if let Err(close) = broker.shutdown() {
                    error!("clean shutdown of the log failed: {close}");
                }
                return Err(e);
            }
        },
        None => None,
    };
    info!(data_dir = %settings.data_dir.display(), advertised = %format!("{host}:{port}"), "listening on {local}");
    admin.set_broker(Arc::clone(&broker));
    admin.set_ready(true);
    weir_server::serve(listeners, Arc::clone(&broker), server_config, shutdown).await;
    if let Some(task) = registry {
        if let Ok(Err(e)) = task.await {
            error!("schema registry listener failed: {e}");
        }
    }
    admin.set_ready(false);
    let _ = admin_stop.send(());
    match admin_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(error = %e, "admin listener failed"),
        Err(e) => error!(error = %e, "admin listener task failed"),
    }
    info!("connections drained; closing the log");
    broker
        .shutdown()
        .context("clean shutdown of the log failed")?;
    info!("stopped cleanly");
    Ok(())
}

/// Opens the schema registry over the broker and serves it on `listener`
/// until `stop` turns true.
fn start_registry(
    broker: &Arc<weir_broker::Broker>,
    listener: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    auth: Arc<weir_http::security::HttpAuth>,
    tls: Option<Arc<weir_server::TlsSource>>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    use anyhow::Context;
    let registry = weir_registry::Registry::open(Arc::clone(broker))
        .context("cannot open the schema registry")?;
    info!("schema registry serving HTTP at {}", listener.local_addr()?);
    let router = weir_http::security::protect(weir_registry::api::router(registry), auth);
    Ok(tokio::spawn(weir_http::security::serve_router(
        listener,
        router,
        tls,
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    )))
}

/// Registers for SIGTERM and SIGINT now, so a signal that arrives before
/// the returned future is first polled still stops the broker gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
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

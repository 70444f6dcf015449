//! `weir sql-server`: the streaming SQL server (ksqlDB-compatible REST
//! API) standalone, against any Kafka-compatible cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tracing::info;

/// Flags of `weir sql-server`.
#[derive(Debug, Args)]
pub struct SqlServerArgs {
    /// Kafka cluster to connect to (`bootstrap.servers`).
    #[arg(
        long,
        short = 'b',
        env = "WEIR_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    bootstrap: String,
    /// Address the REST API binds (ksqlDB's `listeners`).
    #[arg(
        long,
        env = "WEIR_SQL_LISTEN",
        default_value = "127.0.0.1:8088",
        value_name = "HOST:PORT"
    )]
    listen: String,
    /// A ksqlDB server properties file (`key=value` lines).
    #[arg(long, env = "WEIR_SQL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// A setting by ksqlDB's name, e.g. `--set ksql.service.id=prod_`,
    /// `--set ksql.streams.auto.offset.reset=earliest`, or a Kafka client
    /// setting (`security.protocol`, `sasl.*`, `ssl.*`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Kafka client settings librdkafka takes, also under `ksql.streams.`.
fn is_client_key(k: &str) -> bool {
    k == "bootstrap.servers"
        || k == "security.protocol"
        || k == "client.id"
        || k.starts_with("sasl.")
        || k.starts_with("ssl.")
        || k.starts_with("socket.")
}

/// Splits settings into the engine's: `ksql.*` settings, and Kafka client
/// settings (also accepted under `ksql.streams.`) for librdkafka.
fn split_settings(
    all: BTreeMap<String, String>,
    mut client: BTreeMap<String, String>,
) -> anyhow::Result<weir_sql::EngineConfig> {
    let mut properties = BTreeMap::new();
    for (k, v) in all {
        let stripped = k.strip_prefix("ksql.streams.").unwrap_or(&k);
        if is_client_key(stripped) {
            client.insert(stripped.to_string(), v.clone());
        }
        if k.starts_with("ksql.") {
            properties.insert(k, v);
        } else if !is_client_key(&k) {
            anyhow::bail!(
                "unknown setting `{k}`: use ksqlDB's `ksql.*` names or Kafka client settings"
            );
        }
    }
    let service_id = properties
        .get("ksql.service.id")
        .cloned()
        .unwrap_or_else(|| "default_".to_string());
    properties.insert("ksql.service.id".to_string(), service_id.clone());
    Ok(weir_sql::EngineConfig {
        service_id,
        kafka: weir_sql::KafkaSettings { client },
        properties,
    })
}

/// Resolves settings: the file, then `--set`, then `--bootstrap` unless set.
pub fn engine_config(args: &SqlServerArgs) -> anyhow::Result<weir_sql::EngineConfig> {
    let mut all: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        {
            let (k, v) = line
                .split_once(['=', ':'])
                .with_context(|| format!("{}: not a key=value line: {line}", path.display()))?;
            all.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    for s in &args.set {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s}: expected KEY=VALUE"))?;
        all.insert(k.trim().to_string(), v.trim().to_string());
    }
    let mut client = BTreeMap::new();
    client.insert("bootstrap.servers".to_string(), args.bootstrap.clone());
    split_settings(all, client)
}

/// The SQL server as a service of `weir serve`: a Kafka client of the
/// node's own listener (settings from `--client-set sql.KEY=VALUE`,
/// `ksql.*` ones included), serving the REST API with the node's HTTP TLS
/// and authentication.
pub fn service(listener: tokio::net::TcpListener) -> impl weir_service::Service {
    use weir_service::{Running, ServiceError};
    weir_service::service_fn("sql", move |ctx: weir_service::Context| async move {
        let client = ctx.kafka_client()?;
        let (ksql, kafka): (BTreeMap<_, _>, BTreeMap<_, _>) = client
            .properties()
            .clone()
            .into_iter()
            .partition(|(k, _)| k.starts_with("ksql."));
        let config = split_settings(ksql, kafka)
            .map_err(|e| ServiceError::start("sql", format!("{e:#}")))?;
        let engine = tokio::select! {
            e = weir_sql::Engine::open(config) => e.map_err(|e| ServiceError::start("sql", e))?,
            _ = ctx.shutdown().wait() => return Ok(Running::new(async { Ok(()) })),
        };
        if let Ok(addr) = listener.local_addr() {
            engine.set_listener(addr);
        }
        let serve = ctx.serve_http(listener, weir_sql::rest::router(engine.clone()));
        Ok(Running::new(async move {
            let served = serve.await;
            engine.shutdown().await;
            served
        }))
    })
}

/// `weir sql-server`: runs until SIGTERM or SIGINT.
pub fn main(args: SqlServerArgs) -> std::process::ExitCode {
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = crate::serve::shutdown_signal()?;
                run(args, shutdown).await
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the server until `shutdown` completes.
pub async fn run(
    args: SqlServerArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = engine_config(&args)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (sql)", args.listen))?;
    let local = listener.local_addr()?;
    let engine = weir_sql::Engine::open(config)
        .await
        .context("cannot start the SQL engine")?;
    info!(address = %local, "sql server listening on http://{local}");
    weir_sql::rest::serve(listener, engine.clone(), shutdown).await?;
    engine.shutdown().await;
    info!("sql server stopped");
    Ok(())
}

//! The `weir` binary: command line, configuration and process lifecycle.
//!
//! `weir serve` resolves its settings (flag, then environment variable, then
//! the TOML config file, then the default) and runs the node's services
//! (`serve.rs`) until SIGTERM or SIGINT, then drains them and closes the
//! log cleanly. A bad config prints one line naming the key and exits
//! with status 2.

mod bench;
mod broker_metrics;
mod cli;
mod config;
mod connect;
#[cfg(feature = "fault-injection")]
mod fault;
mod rest;
mod security;
mod serve;
mod sql;
mod sql_shell;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::error;

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
    /// An interactive shell for the streaming SQL server, like ksqlDB's
    /// CLI: multi-line statements, history, tables, streaming push rows,
    /// `RUN SCRIPT`; or non-interactive with --file/--execute.
    ///
    /// Examples:
    ///   weir sql                                  # http://127.0.0.1:8088
    ///   weir sql http://sql.example.com:8088 -u alice -p secret
    ///   weir sql --execute "SHOW STREAMS; SELECT * FROM totals WHERE item='x';"
    ///   weir sql --file setup.sql --define env=prod --output json
    #[command(verbatim_doc_comment)]
    Sql(sql_shell::SqlShellArgs),
    /// Run a Kafka Connect worker against any Kafka-compatible cluster,
    /// or manage connectors through a Connect REST API.
    ///
    /// Examples:
    ///   weir connect --bootstrap 127.0.0.1:9092                   # a worker, REST on 127.0.0.1:8083
    ///   weir connect --config worker.properties --listen 0.0.0.0:8083
    ///   weir connect list
    ///   weir connect create --file file-source.json
    ///   weir connect status file-source
    ///   weir connect restart file-source --include-tasks --only-failed
    #[command(verbatim_doc_comment)]
    Connect(connect::ConnectArgs),
    /// Serve Confluent REST Proxy's API (v2 and v3) for a Kafka-compatible
    /// cluster.
    ///
    /// Examples:
    ///   weir rest-proxy --bootstrap 127.0.0.1:9092
    ///   weir rest-proxy -b kafka:9092 --listen 0.0.0.0:8082 --set consumer.instance.timeout.ms=60000
    #[command(verbatim_doc_comment)]
    RestProxy(rest::RestProxyArgs),
    /// Serve the web console for a Kafka-compatible cluster.
    ///
    /// Examples:
    ///   weir console --bootstrap 127.0.0.1:9092
    ///   weir console -b kafka:9092 --set metrics.url=http://kafka:9644/metrics --set schema.registry.url=http://kafka:8081
    ///   weir console -b kafka:9092 --set connect.url=http://connect:8083 --set sql.url=http://ksql:8088
    #[command(verbatim_doc_comment)]
    Console(rest::ConsoleArgs),
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

/// Runs a long-lived service command on a multi-threaded runtime, with
/// logs at info: errors are one line on stderr and exit 1.
fn service(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_logs(LogFormat::Human, "info");
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(f));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A service command's setting cannot be used: exit 2 naming it.
fn bad_setting(e: String) -> ExitCode {
    eprintln!("error: bad setting {e}");
    ExitCode::from(2)
}

/// Logs go to stderr, levels from RUST_LOG (default `default_level`).
fn init_logs(format: LogFormat, default_level: &str) {
    let initial = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| tracing_subscriber::EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| default_level.to_string());
    let filter = tracing_subscriber::EnvFilter::new(&initial);
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    // Connect's `/admin/loggers` changes levels at run time. The reload
    // handle's type depends on the formatter, so it is taken per format.
    macro_rules! reloadable {
        ($b:expr) => {{
            let b = $b.with_env_filter(filter).with_filter_reloading();
            let handle = b.reload_handle();
            weir_connect::loggers::install(&initial, move |directives| {
                let f = tracing_subscriber::EnvFilter::try_new(directives)
                    .map_err(|e| e.to_string())?;
                handle.reload(f).map_err(|e| e.to_string())
            });
            b.init()
        }};
    }
    match format {
        LogFormat::Json => reloadable!(builder.json().with_current_span(false)),
        // Colour only for a terminal; log files and collectors get plain text.
        LogFormat::Human => {
            reloadable!(builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())))
        }
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
        Command::Sql(args) => {
            init_logs(LogFormat::Human, "warn");
            sql_shell::main(args)
        }
        Command::SqlServer(args) => {
            init_logs(LogFormat::Human, "info");
            sql::main(args)
        }
        Command::Connect(a) => connect::run(a),
        Command::RestProxy(a) => match a.properties() {
            Ok(props) => service(rest::run(a, props)),
            Err(e) => bad_setting(e),
        },
        Command::Console(a) => match a.properties() {
            Ok(props) => service(rest::run_console(a, props)),
            Err(e) => bad_setting(e),
        },
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
            match runtime.block_on(serve::serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("error: {e:#}");
                    // A setting only a starting service could check is
                    // still a bad config.
                    match e.downcast_ref() {
                        Some(weir_service::ServiceError::Config { .. }) => ExitCode::from(2),
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}

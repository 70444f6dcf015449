//! `weir connect`: a Kafka Connect worker against any Kafka-compatible
//! cluster, and the commands that drive any Connect REST API (Weir's or
//! Kafka's).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use weir_connect::http;

/// Flags of `weir connect`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConnectArgs {
    #[command(subcommand)]
    command: Option<ConnectCommand>,
    #[command(flatten)]
    worker: WorkerArgs,
}

/// Running a worker.
#[derive(Debug, Args)]
struct WorkerArgs {
    /// Kafka broker(s) to bootstrap from (`bootstrap.servers`).
    #[arg(long, short = 'b', env = "WEIR_BOOTSTRAP", value_name = "HOST:PORT")]
    bootstrap: Option<String>,
    /// Kafka Connect worker settings (`worker.properties`): `group.id`,
    /// `config.storage.topic`, `key.converter`, `security.protocol`, ...
    #[arg(long, env = "WEIR_CONNECT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address the REST API binds.
    #[arg(
        long,
        env = "WEIR_CONNECT_LISTEN",
        default_value = "127.0.0.1:8083",
        value_name = "HOST:PORT"
    )]
    listen: String,
    /// A worker setting, e.g. `--set group.id=etl`; wins over the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, Args, Clone)]
struct Rest {
    /// The Connect REST API.
    #[arg(
        long,
        env = "WEIR_CONNECT_URL",
        default_value = "http://127.0.0.1:8083",
        value_name = "URL"
    )]
    url: String,
    /// Print the REST API's JSON as it is.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ConnectCommand {
    /// List connectors with their states.
    List {
        #[command(flatten)]
        rest: Rest,
    },
    /// A connector's and its tasks' states (with traces of failures).
    Status {
        name: String,
        #[command(flatten)]
        rest: Rest,
    },
    /// Create a connector (or update it with --update) from a JSON file
    /// (`{"name": ..., "config": {...}}` or just the config), a
    /// .properties file, and/or `-c KEY=VALUE`.
    ///
    /// Examples:
    ///   weir connect create --file file-source.json
    ///   weir connect create lines -c connector.class=FileStreamSource -c file=in.txt -c topic=lines
    #[command(verbatim_doc_comment)]
    Create {
        /// The connector name (else the file's `name`).
        name: Option<String>,
        /// JSON or .properties file.
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
        /// A config setting.
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Replace the config of an existing connector (PUT) instead of
        /// failing when it exists.
        #[arg(long)]
        update: bool,
        #[command(flatten)]
        rest: Rest,
    },
    /// Run a connector's transforms and predicates over records, offline,
    /// as a worker applies them: to try a `transforms` config before
    /// creating the connector. Records are JSON lines on stdin
    /// (`{"topic", "partition", "offset", "timestamp", "key", "value",
    /// "headers": [{"key", "value"}]}`, key, value and header values as
    /// Kafka's JsonConverter reads them); one line out per record: the
    /// record with them as the JsonConverter writes them,
    /// `{"dropped":true}`, or `{"error": ...}`.
    ///
    /// Example:
    ///   echo '{"topic":"orders","value":{"id":"7"}}' | weir connect transform --schemas-enable false \
    ///     -c transforms=c -c transforms.c.type=org.apache.kafka.connect.transforms.Cast\$Value -c transforms.c.spec=id:int32
    #[command(verbatim_doc_comment)]
    Transform {
        /// The connector config (JSON or .properties).
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
        /// A config setting.
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// The JsonConverter's `schemas.enable` for keys, values and
        /// headers.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        schemas_enable: bool,
    },
    /// Delete a connector.
    Delete {
        name: String,
        #[command(flatten)]
        rest: Rest,
    },
    /// Pause a connector and its tasks.
    Pause {
        name: String,
        #[command(flatten)]
        rest: Rest,
    },
    /// Resume a paused or stopped connector.
    Resume {
        name: String,
        #[command(flatten)]
        rest: Rest,
    },
    /// Restart a connector, or with --task one task.
    Restart {
        name: String,
        /// Also restart its tasks.
        #[arg(long)]
        include_tasks: bool,
        /// Only what has failed.
        #[arg(long)]
        only_failed: bool,
        /// Restart this task only.
        #[arg(long, value_name = "N")]
        task: Option<i32>,
        #[command(flatten)]
        rest: Rest,
    },
}

/// Runs `weir connect`.
pub fn run(args: ConnectArgs) -> std::process::ExitCode {
    match args.command {
        Some(cmd) => crate::client(command(cmd)),
        None => worker(args.worker),
    }
}

fn worker(args: WorkerArgs) -> std::process::ExitCode {
    crate::init_logs(crate::config::LogFormat::Human, "info");
    let result = (|| -> anyhow::Result<()> {
        let mut props = BTreeMap::new();
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            props = weir_client::parse_properties(&text);
        }
        for kv in &args.set {
            let (k, v) = crate::cli::key_value(kv).map_err(anyhow::Error::msg)?;
            props.insert(k, v);
        }
        if let Some(b) = &args.bootstrap {
            props.insert("bootstrap.servers".into(), b.clone());
        }
        props
            .entry("bootstrap.servers".into())
            .or_insert_with(|| "127.0.0.1:9092".into());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("cannot listen on {} (connect)", args.listen))?;
            let shutdown = crate::serve::shutdown_signal()?;
            weir_connect::run(listener, props, shutdown).await?;
            Ok(())
        })
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One REST call; a non-2xx answer is an error with the API's message.
async fn call(
    rest: &Rest,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", rest.url.trim_end_matches('/'));
    let body = body.map(|b| b.to_string().into_bytes());
    let r = http::request(method, &url, body, &[], Duration::from_secs(60)).await?;
    let v: serde_json::Value = if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&r.body).into_owned())
        })
    };
    if !(200..300).contains(&r.status) {
        let msg = v
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        bail!("{} (HTTP {})", msg, r.status);
    }
    Ok(v)
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    #[allow(clippy::print_stdout)]
    {
        println!("{}", serde_json::to_string_pretty(v)?);
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_status(v: &serde_json::Value) {
    let s = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
    };
    let c = &v["connector"];
    println!(
        "{} ({}): {} on {}",
        s(v, "name"),
        s(v, "type"),
        s(c, "state"),
        s(c, "worker_id")
    );
    if let Some(t) = c.get("trace").and_then(|t| t.as_str()) {
        println!("  {}", t.trim_end().replace('\n', "\n  "));
    }
    for t in v["tasks"].as_array().into_iter().flatten() {
        println!(
            "  task {}: {} on {}",
            t["id"],
            s(t, "state"),
            s(t, "worker_id")
        );
        if let Some(tr) = t.get("trace").and_then(|t| t.as_str()) {
            println!("    {}", tr.trim_end().replace('\n', "\n    "));
        }
    }
}

/// A call on one connector that prints `<done> <name>`.
#[allow(clippy::print_stdout)]
async fn simple(
    rest: &Rest,
    method: &str,
    name: &str,
    suffix: &str,
    done: &str,
) -> anyhow::Result<()> {
    let path = format!("/connectors/{}{suffix}", path_segment(name));
    call(rest, method, &path, None).await?;
    println!("{done} {name}");
    Ok(())
}

fn path_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[allow(clippy::print_stdout)]
async fn command(cmd: ConnectCommand) -> anyhow::Result<()> {
    match cmd {
        ConnectCommand::List { rest } => {
            let v = call(&rest, "GET", "/connectors?expand=status", None).await?;
            if rest.json {
                return print_json(&v);
            }
            if let Some(m) = v.as_object() {
                for (name, e) in m {
                    let st = &e["status"];
                    let tasks = st["tasks"].as_array().map_or(0, Vec::len);
                    println!(
                        "{name}\t{}\t{}\t{tasks} task(s)",
                        st["type"].as_str().unwrap_or(""),
                        st["connector"]["state"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        ConnectCommand::Status { name, rest } => {
            let v = call(
                &rest,
                "GET",
                &format!("/connectors/{}/status", path_segment(&name)),
                None,
            )
            .await?;
            if rest.json {
                return print_json(&v);
            }
            print_status(&v);
            Ok(())
        }
        ConnectCommand::Create {
            name,
            file,
            config,
            update,
            rest,
        } => {
            let (props, file_name) = read_props(file.as_deref(), &config)?;
            let name = name
                .or(file_name)
                .or_else(|| {
                    props
                        .get("name")
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                })
                .context("a connector name is needed (argument, or `name` in the file)")?;
            let v = if update {
                call(
                    &rest,
                    "PUT",
                    &format!("/connectors/{}/config", path_segment(&name)),
                    Some(serde_json::Value::Object(props)),
                )
                .await?
            } else {
                let body = serde_json::json!({"name": name, "config": props});
                call(&rest, "POST", "/connectors", Some(body)).await?
            };
            if rest.json {
                return print_json(&v);
            }
            println!("{} {name}", if update { "updated" } else { "created" });
            Ok(())
        }
        ConnectCommand::Transform {
            file,
            config,
            schemas_enable,
        } => {
            let (props, _) = read_props(file.as_deref(), &config)?;
            let props: weir_connect::connector::Props = props
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect();
            let chain = weir_connect::transforms::Chain::from_config(&props)?;
            let conv = weir_connect::converter::JsonConverter::new(schemas_enable);
            use std::io::{BufRead, Write};
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for (i, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("reading stdin")?;
                if line.trim().is_empty() {
                    continue;
                }
                let answer = match weir_connect::json::Doc::parse(&line) {
                    Ok(record) => weir_connect::transforms::apply_json(
                        &chain,
                        &conv,
                        &record,
                        i64::try_from(i).unwrap_or(i64::MAX),
                    ),
                    Err(e) => weir_connect::json::Json::obj([(
                        "error",
                        weir_connect::json::Json::str(format!("not a JSON record: {e}")),
                    )]),
                };
                writeln!(out, "{}", answer.to_text())?;
            }
            Ok(())
        }
        ConnectCommand::Delete { name, rest } => {
            simple(&rest, "DELETE", &name, "", "deleted").await
        }
        ConnectCommand::Pause { name, rest } => {
            simple(&rest, "PUT", &name, "/pause", "paused").await
        }
        ConnectCommand::Resume { name, rest } => {
            simple(&rest, "PUT", &name, "/resume", "resumed").await
        }
        ConnectCommand::Restart {
            name,
            include_tasks,
            only_failed,
            task,
            rest,
        } => {
            let path = match task {
                Some(t) => format!("/connectors/{}/tasks/{t}/restart", path_segment(&name)),
                None => format!(
                    "/connectors/{}/restart?includeTasks={include_tasks}&onlyFailed={only_failed}",
                    path_segment(&name)
                ),
            };
            let v = call(&rest, "POST", &path, None).await?;
            if rest.json && !v.is_null() {
                return print_json(&v);
            }
            println!("restarted {name}");
            Ok(())
        }
    }
}

/// A connector config from a JSON file (`{"name", "config"}` or the config
/// itself) or a .properties file, then `-c KEY=VALUE`s; with the file's
/// connector name.
fn read_props(
    file: Option<&std::path::Path>,
    config: &[String],
) -> anyhow::Result<(serde_json::Map<String, serde_json::Value>, Option<String>)> {
    let mut props = serde_json::Map::new();
    let mut file_name = None;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&text) {
            match (o.get("name"), o.get("config")) {
                (Some(n), Some(serde_json::Value::Object(c))) => {
                    file_name = n.as_str().map(str::to_string);
                    props = c.clone();
                }
                _ => props = o,
            }
        } else {
            for (k, v) in weir_client::parse_properties(&text) {
                props.insert(k, serde_json::Value::String(v));
            }
        }
    }
    for kv in config {
        let (k, v) = crate::cli::key_value(kv).map_err(anyhow::Error::msg)?;
        props.insert(k, serde_json::Value::String(v));
    }
    Ok((props, file_name))
}

/// Kafka Connect inside `weir serve`: a worker that is a client of the
/// node's own Kafka listener (with the operator's `[client.connect]`
/// settings, which may also hold worker settings such as `group.id`),
/// serving its REST API with the node's HTTP TLS and authentication, and
/// its metrics on the admin listener's `/metrics`.
pub fn service(listener: tokio::net::TcpListener) -> impl weir_service::Service {
    use weir_service::{service_fn, Context, Running, ServiceError};
    service_fn("connect", move |ctx: Context| async move {
        let props = ctx.kafka_client()?.properties().clone();
        let url =
            weir_connect::rest_url(&listener).map_err(|e| ServiceError::start("connect", e))?;
        let worker = weir_connect::Worker::start(props, &url, ctx.shutdown().wait())
            .await
            .map_err(|e| ServiceError::start("connect", e))?;
        let metrics = worker.metrics();
        ctx.metrics()
            .register("connect", move |out| out.push_str(&metrics.render()));
        let serve = ctx.serve_http(listener, worker.router());
        Ok(Running::new(async move {
            let served = serve.await;
            let stopped = worker
                .stop()
                .await
                .map_err(|e| ServiceError::failed("connect", e));
            served.and(stopped)
        }))
    })
}

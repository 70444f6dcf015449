//! `weir serve` settings: flags, environment variables and the TOML file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use weir_broker::BrokerSettings;

/// Flags of `weir serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where data and metadata live [default: ./weir-data].
    #[arg(long, env = "WEIR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address the Kafka listener binds [default: 127.0.0.1:9092].
    #[arg(long, env = "WEIR_LISTEN", value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address the schema registry's HTTP listener binds, or `off`
    /// [default: 127.0.0.1:8081].
    #[arg(long, env = "WEIR_REGISTRY_LISTEN", value_name = "HOST:PORT")]
    registry_listen: Option<String>,
    /// Address the streaming SQL server (ksqlDB's REST API) binds, or
    /// `off` [default: 127.0.0.1:8088].
    #[arg(long, env = "WEIR_SQL_LISTEN", value_name = "HOST:PORT")]
    sql_listen: Option<String>,
    /// Address the Kafka Connect REST API binds, or `off`
    /// [default: 127.0.0.1:8083].
    #[arg(long, env = "WEIR_CONNECT_LISTEN", value_name = "HOST:PORT")]
    connect_listen: Option<String>,
    /// Address the REST proxy (Confluent REST Proxy's API) binds, or `off`
    /// [default: 127.0.0.1:8082].
    #[arg(long, env = "WEIR_REST_LISTEN", value_name = "HOST:PORT")]
    rest_listen: Option<String>,
    /// Address the web console binds, or `off` [default: 127.0.0.1:9021].
    #[arg(long, env = "WEIR_CONSOLE_LISTEN", value_name = "HOST:PORT")]
    console_listen: Option<String>,
    /// Address clients are told to connect to [default: the listen address].
    #[arg(long, env = "WEIR_ADVERTISED_LISTENER", value_name = "HOST:PORT")]
    advertised_listener: Option<String>,
    /// Address the admin HTTP listener (/metrics, /health/live,
    /// /health/ready) binds [default: 127.0.0.1:9644].
    #[arg(long, env = "WEIR_ADMIN_LISTEN", value_name = "HOST:PORT")]
    admin_listen: Option<String>,
    /// Log format on stderr: `human` or `json` (one object a line)
    /// [default: human]. Levels come from RUST_LOG.
    #[arg(long, env = "WEIR_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log 1 in N requests at info (api, client, latency, error code)
    /// [default: 0, off].
    #[arg(long, env = "WEIR_REQUEST_LOG_SAMPLE", value_name = "N")]
    request_log_sample: Option<u64>,
    /// A TOML config file (keys `data-dir`, `listen`, `advertised-listener`,
    /// `registry-listen`, `rest-listen`, `console-listen`, `admin-listen`, `log-format`, `request-log-sample`,
    /// a `[broker]` table of Kafka broker configs and `[client.SERVICE]`
    /// tables of Kafka client configs).
    #[arg(long, env = "WEIR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// A broker config with Kafka's name, e.g. `--set num.partitions=3`.
    /// Repeatable; wins over the config file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A Kafka client config for one of the node's services, which are
    /// clients of its Kafka listener, e.g. `--client-set
    /// connect.sasl.mechanism=SCRAM-SHA-256`. Needed when no listener is
    /// PLAINTEXT. Repeatable; wins over the config file.
    #[arg(long = "client-set", value_name = "SERVICE.KEY=VALUE")]
    client_set: Vec<String>,
    /// Cluster mode: the PostgreSQL database every broker of the cluster
    /// shares (offsets, the index, topics and configs, membership), as
    /// `postgres://USER@HOST[:PORT]/DB`. Needs `--object-store`.
    #[arg(
        long,
        env = "WEIR_CLUSTER",
        value_name = "URL",
        requires = "object_store"
    )]
    cluster: Option<String>,
    /// Cluster mode: where record batches go, `s3://BUCKET/PREFIX`
    /// (endpoint, region and credentials from the usual AWS variables:
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY) or `file:///DIR` for local trials.
    #[arg(
        long,
        env = "WEIR_OBJECT_STORE",
        value_name = "URL",
        requires = "cluster"
    )]
    object_store: Option<String>,
    /// Cluster mode: how long produced batches gather before one object
    /// is written [default: 25].
    #[arg(long, env = "WEIR_CLUSTER_FLUSH_MS", value_name = "MS")]
    cluster_flush_ms: Option<u64>,
    /// Cluster mode: how long a coordinator or background-job lease lasts
    /// unless its broker renews it (every heartbeat, 2 s). A killed
    /// broker's groups, transactions and jobs move to another broker
    /// once its leases run out; a broker stopped with SIGTERM gives them
    /// up at once. From 6000 (the heartbeat timeout) to 3600000
    /// [default: 15000].
    #[arg(long, env = "WEIR_CLUSTER_LEASE_MS", value_name = "MS")]
    cluster_lease_ms: Option<u64>,
    /// Cluster mode: write and commit one object at a time instead of
    /// uploading the next while the current one commits (the benchmark's
    /// baseline for the pipeline).
    #[arg(long, hide = true, requires = "cluster")]
    cluster_serial_flush: bool,
}

/// Cluster mode's settings (`--cluster`, `--object-store`).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// The PostgreSQL URL.
    pub postgres: String,
    /// The object store URL.
    pub object_store: String,
    /// The gather window.
    pub flush_ms: u64,
    /// No upload while a commit runs.
    pub serial_flush: bool,
    /// The coordinator and job lease length.
    pub lease_ms: u64,
}

/// The shortest lease: a broker's heartbeat timeout. A lease shorter than
/// that would not move a killed broker's work any sooner (it counts as
/// live, and keeps its share, until its heartbeat times out) and would
/// leave fewer renewals between a holder's last renewal and the point
/// where it must stop acting on the lease.
pub const MIN_CLUSTER_LEASE_MS: u64 = 6_000;
/// The longest lease: beyond an hour a crash would stall groups for
/// longer than any client waits.
pub const MAX_CLUSTER_LEASE_MS: u64 = 3_600_000;

/// Kafka client configs by service name.
pub type ClientConfigs = BTreeMap<String, BTreeMap<String, String>>;

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: String,
    /// Cluster mode, when `--cluster` is given.
    pub cluster: Option<ClusterSettings>,
    /// The schema registry's listen address; `None` when turned off.
    pub registry_listen: Option<String>,
    /// The SQL server's listen address; `None` when turned off.
    pub sql_listen: Option<String>,
    /// Kafka Connect's REST listen address; `None` when turned off.
    pub connect_listen: Option<String>,
    /// The REST proxy's listen address; `None` when turned off.
    pub rest_listen: Option<String>,
    /// The web console's listen address; `None` when turned off.
    pub console_listen: Option<String>,
    pub admin_listen: String,
    pub log_format: LogFormat,
    pub request_log_sample: u64,
    advertised: Option<(String, i32)>,
    pub broker: BrokerSettings,
    /// Kafka client configs of the services (`--client-set`, `[client.X]`).
    pub clients: ClientConfigs,
}

/// How `weir serve` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object a line.
    Json,
}

/// A config problem, named by key.
#[derive(Debug)]
pub struct ConfigError {
    key: String,
    reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config `{}`: {}", self.key, self.reason)
    }
}

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// A service's listen address (`value`, else `default`), or `None` for
/// `off`.
fn optional_listen(
    key: &str,
    value: Option<String>,
    default: &str,
) -> Result<Option<String>, ConfigError> {
    let v = value.unwrap_or_else(|| default.to_string());
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_host_port(key, &v)?;
    Ok(Some(v))
}

/// The config file's contents.
#[derive(Debug, Default)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    registry_listen: Option<String>,
    sql_listen: Option<String>,
    connect_listen: Option<String>,
    rest_listen: Option<String>,
    console_listen: Option<String>,
    advertised_listener: Option<String>,
    admin_listen: Option<String>,
    log_format: Option<String>,
    request_log_sample: Option<u64>,
    broker: BTreeMap<String, String>,
    clients: ClientConfigs,
}

/// A TOML value as a config string.
fn scalar(key: &str, v: &toml::Value) -> Result<String, ConfigError> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(err(key, "must be a string, number or boolean")),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let key = "--config";
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(key, format!("{}: {}", path.display(), e.message())))?;
    let mut out = FileConfig::default();
    let string = |k: &str, v: &toml::Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| err(k, "must be a string"))
    };
    for (k, v) in &table {
        match k.as_str() {
            "data-dir" => out.data_dir = Some(PathBuf::from(string(k, v)?)),
            "listen" => out.listen = Some(string(k, v)?),
            "registry-listen" => out.registry_listen = Some(string(k, v)?),
            "sql-listen" => out.sql_listen = Some(string(k, v)?),
            "connect-listen" => out.connect_listen = Some(string(k, v)?),
            "rest-listen" => out.rest_listen = Some(string(k, v)?),
            "console-listen" => out.console_listen = Some(string(k, v)?),
            "advertised-listener" => out.advertised_listener = Some(string(k, v)?),
            "admin-listen" => out.admin_listen = Some(string(k, v)?),
            "log-format" => out.log_format = Some(string(k, v)?),
            "request-log-sample" => {
                let n = v
                    .as_integer()
                    .and_then(|i| u64::try_from(i).ok())
                    .ok_or_else(|| err(k, "must be a non-negative integer"))?;
                out.request_log_sample = Some(n);
            }
            "broker" => {
                let t = v
                    .as_table()
                    .ok_or_else(|| err(k, "must be a table of broker configs"))?;
                for (bk, bv) in t {
                    out.broker.insert(bk.clone(), scalar(bk, bv)?);
                }
            }
            "client" => {
                let services = v
                    .as_table()
                    .ok_or_else(|| err(k, "must hold a table of Kafka client configs per service"))?;
                for (service, configs) in services {
                    let key = format!("client.{service}");
                    let configs = configs
                        .as_table()
                        .ok_or_else(|| err(&key, "must be a table of Kafka client configs"))?;
                    for (ck, cv) in configs {
                        let value = scalar(&format!("{key}.{ck}"), cv)?;
                        out.clients
                            .entry(service.clone())
                            .or_default()
                            .insert(ck.clone(), value);
                    }
                }
            }
            other => {
                return Err(err(
                    other,
                    "unknown key (expected data-dir, listen, advertised-listener, registry-listen, rest-listen, connect-listen, console-listen, sql-listen, admin-listen, log-format, request-log-sample, [broker] or [client.SERVICE])",
                ))
            }
        }
    }
    Ok(out)
}

fn parse_host_port(key: &str, s: &str) -> Result<(String, i32), ConfigError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| err(key, format!("`{s}` is not HOST:PORT")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| err(key, format!("`{port}` is not a port number")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(err(key, format!("`{s}` has no host")));
    }
    Ok((host.to_string(), i32::from(port)))
}

impl Settings {
    /// Resolves settings: flag, environment variable, config file, default.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./weir-data"));
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9092".to_string());
        parse_host_port("listen", &listen)?;
        let registry_listen = optional_listen(
            "registry-listen",
            args.registry_listen.or(file.registry_listen),
            "127.0.0.1:8081",
        )?;
        let sql_listen = optional_listen(
            "sql-listen",
            args.sql_listen.or(file.sql_listen),
            "127.0.0.1:8088",
        )?;
        let connect_listen = optional_listen(
            "connect-listen",
            args.connect_listen.or(file.connect_listen),
            "127.0.0.1:8083",
        )?;
        let rest_listen = optional_listen(
            "rest-listen",
            args.rest_listen.or(file.rest_listen),
            "127.0.0.1:8082",
        )?;
        let console_listen = optional_listen(
            "console-listen",
            args.console_listen.or(file.console_listen),
            "127.0.0.1:9021",
        )?;
        let admin_listen = args
            .admin_listen
            .or(file.admin_listen)
            .unwrap_or_else(|| "127.0.0.1:9644".to_string());
        parse_host_port("admin-listen", &admin_listen)?;
        let log_format = match args
            .log_format
            .or(file.log_format)
            .as_deref()
            .unwrap_or("human")
        {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "log-format",
                    format!("`{other}` is not `human` or `json`"),
                ))
            }
        };
        let request_log_sample = args
            .request_log_sample
            .or(file.request_log_sample)
            .unwrap_or(0);
        let advertised = args
            .advertised_listener
            .or(file.advertised_listener)
            .map(|a| parse_host_port("advertised-listener", &a))
            .transpose()?;
        let mut pairs = file.broker;
        for kv in &args.set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| err(kv, "--set takes KEY=VALUE"))?;
            pairs.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut clients = file.clients;
        for kv in &args.client_set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| err(kv, "--client-set takes SERVICE.KEY=VALUE"))?;
            let (service, key) = k
                .trim()
                .split_once('.')
                .filter(|(s, k)| !s.is_empty() && !k.is_empty())
                .ok_or_else(|| err(k, "--client-set takes SERVICE.KEY=VALUE"))?;
            clients
                .entry(service.to_string())
                .or_default()
                .insert(key.to_string(), v.trim().to_string());
        }
        let broker = BrokerSettings::from_static(pairs).map_err(|e| match e {
            weir_broker::BrokerError::Config { key, reason } => err(&key, reason),
            other => err("broker", other.to_string()),
        })?;
        let lease_ms = args.cluster_lease_ms.unwrap_or(15_000);
        if !(MIN_CLUSTER_LEASE_MS..=MAX_CLUSTER_LEASE_MS).contains(&lease_ms) {
            return Err(err(
                "cluster-lease-ms",
                format!(
                    "{lease_ms} is out of range: a lease lasts from {MIN_CLUSTER_LEASE_MS} ms \
                     (the broker heartbeat timeout) to {MAX_CLUSTER_LEASE_MS} ms"
                ),
            ));
        }
        let cluster = match (args.cluster, args.object_store) {
            (Some(postgres), Some(object_store)) => Some(ClusterSettings {
                postgres,
                object_store,
                flush_ms: args.cluster_flush_ms.unwrap_or(25),
                serial_flush: args.cluster_serial_flush,
                lease_ms,
            }),
            (None, None) => None,
            _ => return Err(err("cluster", "--cluster and --object-store go together")),
        };
        Ok(Self {
            data_dir,
            listen,
            cluster,
            registry_listen,
            sql_listen,
            connect_listen,
            rest_listen,
            console_listen,
            admin_listen,
            log_format,
            request_log_sample,
            advertised,
            broker,
            clients,
        })
    }

    /// The advertised host and port; by default the listen address, with
    /// the port actually bound (the listen port may be 0).
    pub fn advertised(&self, bound: SocketAddr) -> (String, i32) {
        if let Some(a) = &self.advertised {
            return a.clone();
        }
        let host = if bound.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            bound.ip().to_string()
        };
        (host, i32::from(bound.port()))
    }

    /// The storage engine's settings.
    pub fn engine_config(&self) -> weir_log::EngineConfig {
        let b = &self.broker;
        weir_log::EngineConfig {
            data_dir: self.data_dir.clone(),
            retention_check_interval_ms: u64::try_from(
                b.get_i64("log.retention.check.interval.ms"),
            )
            .unwrap_or(300_000),
            cleaner_enabled: b.get_bool("log.cleaner.enable"),
            cleaner_buffer_bytes: usize::try_from(b.get_i64("log.cleaner.dedupe.buffer.size"))
                .unwrap_or(16 << 20),
            producer_id_expiration_ms: b.get_i64("producer.id.expiration.ms"),
            ..weir_log::EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn resolve(args: &[&str]) -> Result<Settings, ConfigError> {
        let cmd = Cmd::try_parse_from(std::iter::once("weir").chain(args.iter().copied()))
            .expect("arguments parse");
        Settings::resolve(cmd.serve)
    }

    #[test]
    fn client_settings_come_from_the_file_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "[client.connect]\n\"sasl.mechanism\" = \"PLAIN\"\n\"sasl.username\" = \"file\"\n",
        )
        .unwrap();
        let s = resolve(&[
            "--config",
            file.to_str().unwrap(),
            "--client-set",
            "connect.sasl.username=flag",
            "--client-set",
            "sql.security.protocol=SASL_SSL",
        ])
        .unwrap();
        let connect = &s.clients["connect"];
        assert_eq!(connect["sasl.mechanism"], "PLAIN");
        assert_eq!(connect["sasl.username"], "flag");
        assert_eq!(s.clients["sql"]["security.protocol"], "SASL_SSL");
    }

    #[test]
    fn a_client_setting_without_a_service_is_refused() {
        for bad in ["sasl.username", "nodot=x", ".x=y", "connect.=y"] {
            let e = resolve(&["--client-set", bad]).unwrap_err().to_string();
            assert!(e.contains("SERVICE.KEY=VALUE"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_cluster_lease_is_a_flag_within_bounds() {
        let cluster = [
            "--cluster",
            "postgres://weir@db/weir",
            "--object-store",
            "file:///tmp/weir-objects",
        ];
        let lease = |extra: &[&str]| {
            resolve(&[&cluster[..], extra].concat()).map(|s| s.cluster.unwrap().lease_ms)
        };
        assert_eq!(lease(&[]).unwrap(), 15_000);
        assert_eq!(lease(&["--cluster-lease-ms", "6000"]).unwrap(), 6_000);
        assert_eq!(
            lease(&["--cluster-lease-ms", "3600000"]).unwrap(),
            3_600_000
        );
        for bad in ["5999", "0", "3600001"] {
            let e = lease(&["--cluster-lease-ms", bad]).unwrap_err().to_string();
            assert!(
                e.contains("cluster-lease-ms") && e.contains("6000"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_rest_proxy_listens_by_default_unless_off() {
        assert_eq!(
            resolve(&[]).unwrap().rest_listen.as_deref(),
            Some("127.0.0.1:8082")
        );
        assert_eq!(
            resolve(&["--rest-listen", "off"]).unwrap().rest_listen,
            None
        );
        let e = resolve(&["--rest-listen", "nowhere"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("rest-listen"), "{e}");
    }
}

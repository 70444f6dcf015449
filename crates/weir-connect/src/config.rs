//! Configuration: the worker's settings by Kafka Connect's names, and
//! config definitions with validation in the shape of Kafka's
//! `/connector-plugins/{p}/config/validate`.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_client::ClientSecurity;

use crate::connector::Props;
use crate::error::{ConnectError, Result};
use crate::json::Json;

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Every setting as given (client overrides read their prefixes here).
    pub props: Props,
    pub bootstrap: String,
    pub group_id: String,
    pub config_topic: String,
    pub offset_topic: String,
    pub status_topic: String,
    /// -1: the broker's default.
    pub config_replication: i16,
    pub offset_replication: i16,
    pub status_replication: i16,
    pub offset_partitions: i32,
    pub status_partitions: i32,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rebalance_timeout: Duration,
    pub scheduled_rebalance_max_delay: Duration,
    pub offset_flush_interval: Duration,
    /// KIP-618 exactly-once source support (Weir's default: enabled).
    pub exactly_once_source: bool,
    /// The security of every client the worker makes.
    pub security: ClientSecurity,
    /// The URL other workers reach this one's REST API at.
    pub advertised_url: String,
    /// Failed tasks restart by themselves with backoff (Weir's addition).
    pub task_auto_restart: bool,
    /// `connector.client.config.override.policy`.
    pub override_policy: OverridePolicy,
}

/// `connector.client.config.override.policy`: which client settings a
/// connector may set with `producer.override.*`, `consumer.override.*` and
/// `admin.override.*` (Kafka 4.3's policies; `All` is its default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverridePolicy {
    /// No overrides.
    None,
    /// Only the principal: `sasl.jaas.config`, `sasl.mechanism`,
    /// `security.protocol`.
    Principal,
    /// Any setting.
    All,
    /// The settings of `connector.client.config.override.allowlist`.
    Allowlist(Vec<String>),
}

/// The client settings a connector type overrides, as Kafka validates
/// them: a source's producer, a sink's consumer, and both's admin client.
const OVERRIDE_PREFIXES: [(&str, ConnectorTypeFilter); 3] = [
    ("producer.override.", ConnectorTypeFilter::Source),
    ("consumer.override.", ConnectorTypeFilter::Sink),
    ("admin.override.", ConnectorTypeFilter::Any),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectorTypeFilter {
    Source,
    Sink,
    Any,
}

impl OverridePolicy {
    /// The worker setting: a policy's alias or class name.
    pub fn from_props(p: &Props) -> Result<Self> {
        let raw = get(p, "connector.client.config.override.policy").unwrap_or("All");
        let simple = raw
            .rsplit('.')
            .next()
            .unwrap_or(raw)
            .trim_end_matches("ConnectorClientConfigOverridePolicy");
        Ok(match simple {
            "None" => Self::None,
            "Principal" => Self::Principal,
            "All" => Self::All,
            "Allowlist" => Self::Allowlist(list(p, "connector.client.config.override.allowlist")),
            _ => {
                return Err(ConnectError::WorkerConfig {
                    key: "connector.client.config.override.policy".into(),
                    reason: format!("`{raw}` is not None, Principal, All or Allowlist"),
                })
            }
        })
    }

    /// The name Kafka's policy reports in its errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Principal => "Principal",
            Self::All => "All",
            Self::Allowlist(_) => "Allowlist",
        }
    }

    fn allows(&self, key: &str) -> bool {
        match self {
            Self::None => false,
            Self::Principal => {
                matches!(
                    key,
                    "sasl.jaas.config" | "sasl.mechanism" | "security.protocol"
                )
            }
            Self::All => true,
            Self::Allowlist(keys) => keys.iter().any(|k| k == key),
        }
    }

    /// The override settings of a connector config that Kafka validates
    /// for this connector type (`sink`), each with the policy's error if it
    /// refuses it.
    pub fn check(&self, config: &Props, sink: bool) -> Vec<(String, String, Option<String>)> {
        let mut out = Vec::new();
        for (prefix, applies) in OVERRIDE_PREFIXES {
            let applies = match applies {
                ConnectorTypeFilter::Source => !sink,
                ConnectorTypeFilter::Sink => sink,
                ConnectorTypeFilter::Any => true,
            };
            if !applies {
                continue;
            }
            for (key, value) in with_prefix(config, prefix) {
                let error = (!self.allows(&key)).then(|| {
                    format!(
                        "The '{}' policy does not allow '{key}' to be overridden in the connector configuration.",
                        self.name()
                    )
                });
                out.push((format!("{prefix}{key}"), value, error));
            }
        }
        out
    }
}

fn get<'a>(p: &'a Props, k: &str) -> Option<&'a str> {
    p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn num<T: std::str::FromStr>(p: &Props, k: &str, default: T) -> Result<T> {
    match get(p, k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConnectError::WorkerConfig {
            key: k.to_string(),
            reason: format!("`{v}` is not a number"),
        }),
    }
}

fn ms(p: &Props, k: &str, default: u64) -> Result<Duration> {
    Ok(Duration::from_millis(num(p, k, default)?))
}

impl WorkerConfig {
    /// Reads Kafka Connect's worker settings; `rest_url` is where this
    /// worker's REST API listens, unless `rest.advertised.*` says otherwise.
    pub fn from_props(props: Props, rest_url: &str) -> Result<Self> {
        let p = &props;
        let bootstrap = get(p, "bootstrap.servers")
            .ok_or_else(|| ConnectError::WorkerConfig {
                key: "bootstrap.servers".into(),
                reason: "required".into(),
            })?
            .to_string();
        let security = ClientSecurity::from_properties(p)?;
        let advertised_url = match (
            get(p, "rest.advertised.host.name"),
            get(p, "rest.advertised.port"),
        ) {
            (None, None) => rest_url.to_string(),
            (host, port) => {
                let scheme = get(p, "rest.advertised.listener").unwrap_or("http");
                let (default_host, default_port) = rest_url
                    .rsplit_once("://")
                    .map(|(_, hp)| hp)
                    .unwrap_or(rest_url)
                    .trim_end_matches('/')
                    .rsplit_once(':')
                    .unwrap_or(("localhost", "8083"));
                format!(
                    "{scheme}://{}:{}/",
                    host.unwrap_or(default_host),
                    port.unwrap_or(default_port)
                )
            }
        };
        let exactly_once_source = match get(p, "exactly.once.source.support") {
            None | Some("enabled") => true,
            Some("disabled") | Some("preparing") => false,
            Some(other) => {
                return Err(ConnectError::WorkerConfig {
                    key: "exactly.once.source.support".into(),
                    reason: format!("`{other}` is not enabled, preparing or disabled"),
                })
            }
        };
        Ok(Self {
            bootstrap,
            group_id: get(p, "group.id").unwrap_or("connect-cluster").to_string(),
            config_topic: get(p, "config.storage.topic")
                .unwrap_or("connect-configs")
                .to_string(),
            offset_topic: get(p, "offset.storage.topic")
                .unwrap_or("connect-offsets")
                .to_string(),
            status_topic: get(p, "status.storage.topic")
                .unwrap_or("connect-status")
                .to_string(),
            config_replication: num(p, "config.storage.replication.factor", -1)?,
            offset_replication: num(p, "offset.storage.replication.factor", -1)?,
            status_replication: num(p, "status.storage.replication.factor", -1)?,
            offset_partitions: num(p, "offset.storage.partitions", 25)?,
            status_partitions: num(p, "status.storage.partitions", 5)?,
            session_timeout: ms(p, "session.timeout.ms", 10_000)?,
            heartbeat_interval: ms(p, "heartbeat.interval.ms", 3_000)?,
            rebalance_timeout: ms(p, "rebalance.timeout.ms", 60_000)?,
            scheduled_rebalance_max_delay: ms(p, "scheduled.rebalance.max.delay.ms", 300_000)?,
            offset_flush_interval: ms(p, "offset.flush.interval.ms", 60_000)?,
            exactly_once_source,
            security,
            advertised_url,
            task_auto_restart: get(p, "task.auto.restart.enable") == Some("true"),
            override_policy: OverridePolicy::from_props(p)?,
            props,
        })
    }

    /// The worker id Kafka writes in statuses: the advertised URL's
    /// `host:port`.
    pub fn worker_id(&self) -> String {
        self.advertised_url
            .rsplit_once("://")
            .map(|(_, hp)| hp)
            .unwrap_or(&self.advertised_url)
            .trim_end_matches('/')
            .to_string()
    }

    /// librdkafka settings for one of the worker's clients: bootstrap,
    /// security, then `prefix`-ed worker settings (`producer.`,
    /// `consumer.`), then `overrides`.
    #[cfg(feature = "runtime")]
    pub fn rdkafka(&self, prefix: &str, overrides: &Props) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in self.security.librdkafka_properties() {
            c.set(k, v);
        }
        for (k, v) in &self.props {
            if let Some(k) = k.strip_prefix(prefix) {
                if RDKAFKA_PASSTHROUGH.contains(&k) {
                    c.set(k, v);
                }
            }
        }
        for (k, v) in overrides {
            c.set(k, v);
        }
        c
    }
}

/// Client settings passed from `producer.*` / `consumer.*` (and the
/// connector's overrides) to librdkafka, which shares these names with
/// Kafka's Java clients.
pub const RDKAFKA_PASSTHROUGH: &[&str] = &[
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "max.in.flight.requests.per.connection",
    "enable.idempotence",
    "client.id",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "auto.offset.reset",
    "isolation.level",
    "request.timeout.ms",
    "message.max.bytes",
    "transaction.timeout.ms",
    "partitioner",
    "retries",
    "retry.backoff.ms",
];

/// Kafka's config types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    fn name(self) -> &'static str {
        match self {
            Self::Boolean => "BOOLEAN",
            Self::String => "STRING",
            Self::Int => "INT",
            Self::Short => "SHORT",
            Self::Long => "LONG",
            Self::Double => "DOUBLE",
            Self::List => "LIST",
            Self::Class => "CLASS",
            Self::Password => "PASSWORD",
        }
    }
}

/// One config's definition.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    pub name: &'static str,
    pub ty: ConfigType,
    /// `None`: required.
    pub default: Option<&'static str>,
    pub importance: &'static str,
    pub doc: &'static str,
    pub group: Option<&'static str>,
    pub order: i32,
    pub width: &'static str,
    pub display: &'static str,
    /// Allowed values, when the set is closed.
    pub choices: &'static [&'static str],
    /// Lower bound for numbers.
    pub min: Option<i64>,
    /// Optional although it has no default (`default_value: null`).
    pub nullable: bool,
}

impl ConfigKey {
    /// A config with the usual defaults for the rest.
    pub const fn new(
        name: &'static str,
        ty: ConfigType,
        default: Option<&'static str>,
        importance: &'static str,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            ty,
            default,
            importance,
            doc,
            group: None,
            order: -1,
            width: "NONE",
            display: name,
            choices: &[],
            min: None,
            nullable: false,
        }
    }
}

/// A set of config definitions.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

/// One config's validation result.
#[derive(Debug, Clone)]
pub struct ConfigValue {
    pub key: ConfigKey,
    pub value: Option<String>,
    pub errors: Vec<String>,
    /// Whether the setting applies given the others (Kafka's `visible`).
    pub visible: bool,
    /// Set for a transform's or predicate's key, reported under its alias.
    pub embedded: Option<Embedded>,
}

/// Where a plugin's own key is reported, as Kafka's `ConfigDef.embed`
/// does: its name after `prefix`, in `group`, with `display` when the
/// runtime names it (the key's own otherwise).
#[derive(Debug, Clone)]
pub struct Embedded {
    pub prefix: String,
    pub group: String,
    pub display: Option<String>,
}

impl ConfigValue {
    /// The name the REST API reports.
    pub fn full_name(&self) -> String {
        match &self.embedded {
            Some(e) => format!("{}{}", e.prefix, self.key.name),
            None => self.key.name.to_string(),
        }
    }
}

impl ConfigDef {
    /// Validates `props` against every key.
    pub fn validate(&self, props: &Props) -> Vec<ConfigValue> {
        self.keys
            .iter()
            .map(|k| {
                let raw = props.get(k.name).cloned();
                let value = raw.clone().or_else(|| k.default.map(str::to_string));
                let mut errors = Vec::new();
                match &value {
                    None if k.nullable => {}
                    None => errors.push(format!(
                        "Missing required configuration \"{}\" which has no default value.",
                        k.name
                    )),
                    Some(v) => {
                        if let Err(e) = check_value(k, v) {
                            errors.push(e);
                        }
                    }
                }
                // A value that does not parse as its type is reported with
                // no value, as Kafka's ConfigDef does; one that parses but
                // fails a check (a minimum, a choice) keeps it.
                let value = match (&value, k.ty) {
                    (Some(v), ConfigType::Int | ConfigType::Short | ConfigType::Long)
                        if v.trim().parse::<i64>().is_err() =>
                    {
                        None
                    }
                    (Some(v), ConfigType::Double) if v.trim().parse::<f64>().is_err() => None,
                    (Some(v), ConfigType::Boolean)
                        if !matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "false") =>
                    {
                        None
                    }
                    _ => value,
                };
                ConfigValue {
                    key: k.clone(),
                    value: match k.ty {
                        ConfigType::Password => value.map(|_| "[hidden]".to_string()),
                        _ => value,
                    },
                    errors,
                    visible: true,
                    embedded: None,
                }
            })
            .collect()
    }
}

fn check_value(k: &ConfigKey, v: &str) -> std::result::Result<(), String> {
    let invalid = |why: &str| format!("Invalid value {v} for configuration {}: {why}", k.name);
    match k.ty {
        ConfigType::Int | ConfigType::Short | ConfigType::Long => {
            let n: i64 = v.trim().parse().map_err(|_| {
                invalid(match k.ty {
                    ConfigType::Long => "Not a number of type LONG",
                    ConfigType::Short => "Not a number of type SHORT",
                    _ => "Not a number of type INT",
                })
            })?;
            if k.ty == ConfigType::Int && i32::try_from(n).is_err() {
                return Err(invalid("Not a number of type INT"));
            }
            if let Some(min) = k.min {
                if n < min {
                    return Err(format!(
                        "Invalid value {n} for configuration {}: Value must be at least {min}",
                        k.name
                    ));
                }
            }
        }
        ConfigType::Double => {
            v.trim()
                .parse::<f64>()
                .map_err(|_| invalid("Not a number of type DOUBLE"))?;
        }
        ConfigType::Boolean
            if !matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "false") =>
        {
            return Err(invalid("Expected value to be either true or false"));
        }
        _ => {}
    }
    if !k.choices.is_empty() && !k.choices.iter().any(|c| c.eq_ignore_ascii_case(v.trim())) {
        // Kafka's case-insensitive validator lists its choices upper-case.
        let insensitive = k.choices.iter().all(|c| !c.chars().any(char::is_lowercase));
        return Err(invalid(&format!(
            "String must be one of{}: {}",
            if insensitive {
                " (case insensitive)"
            } else {
                ""
            },
            k.choices.join(", ")
        )));
    }
    Ok(())
}

/// The REST shape of a validation (`ConfigInfos`).
pub fn config_infos(plugin: &str, groups: &[&str], values: &[ConfigValue]) -> Json {
    let error_count = values.iter().map(|v| v.errors.len()).sum::<usize>();
    Json::obj([
        ("name", Json::str(plugin)),
        ("error_count", Json::Int(error_count as i64)),
        (
            "groups",
            Json::Arr(groups.iter().map(|g| Json::str(*g)).collect()),
        ),
        (
            "configs",
            Json::Arr(values.iter().map(config_info).collect()),
        ),
    ])
}

fn opt(s: Option<&str>) -> Json {
    s.map_or(Json::Null, Json::str)
}

/// One config's definition in Kafka's REST shape (`ConfigKeyInfo`).
pub fn config_key_info(k: &ConfigKey) -> Json {
    key_info(k, None)
}

fn key_info(k: &ConfigKey, embedded: Option<&Embedded>) -> Json {
    let (name, group, display) = match embedded {
        Some(e) => (
            format!("{}{}", e.prefix, k.name),
            Some(e.group.as_str()),
            e.display.as_deref().unwrap_or(k.display),
        ),
        None => (k.name.to_string(), k.group, k.display),
    };
    Json::obj([
        ("name", Json::str(name)),
        ("type", Json::str(k.ty.name())),
        ("required", Json::Bool(k.default.is_none() && !k.nullable)),
        ("default_value", opt(k.default)),
        ("importance", Json::str(k.importance)),
        ("documentation", Json::str(k.doc)),
        ("group", opt(group)),
        ("order_in_group", Json::Int(i64::from(k.order))),
        ("width", Json::str(k.width)),
        ("display_name", Json::str(display)),
        ("dependents", Json::Arr(vec![])),
    ])
}

fn config_info(v: &ConfigValue) -> Json {
    let name = v.full_name();
    Json::obj([
        ("definition", key_info(&v.key, v.embedded.as_ref())),
        (
            "value",
            Json::obj([
                ("name", Json::str(name.clone())),
                ("value", opt(v.value.as_deref())),
                // Kafka recommends classes for class-valued settings (the
                // converters, a transform's or predicate's type); a closed
                // set of strings is a validator there, with nothing
                // recommended.
                (
                    "recommended_values",
                    Json::Arr(if name.ends_with(".plugin.version") {
                        // The versions installed: this runtime has one.
                        v.key.default.into_iter().map(Json::str).collect()
                    } else if v.key.ty == ConfigType::Class {
                        let mut classes = match name.split('.').next() {
                            Some("transforms") if v.embedded.is_some() => {
                                crate::transforms::TRANSFORM_CLASSES.to_vec()
                            }
                            Some("predicates") if v.embedded.is_some() => {
                                crate::transforms::PREDICATE_CLASSES.to_vec()
                            }
                            _ => crate::converter::CONVERTER_CLASSES.to_vec(),
                        };
                        classes.sort_unstable();
                        classes.into_iter().map(Json::str).collect()
                    } else {
                        Vec::new()
                    }),
                ),
                (
                    "errors",
                    Json::Arr(v.errors.iter().map(|e| Json::str(e.clone())).collect()),
                ),
                ("visible", Json::Bool(v.visible)),
            ]),
        ),
    ])
}

/// Parses a duration-ish integer setting of a connector config.
pub fn prop_i64(p: &Props, k: &str, default: i64) -> Result<i64> {
    match p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ConnectError::bad_config(format!("Invalid value {v} for configuration {k}"))
        }),
    }
}

/// Splits a LIST setting (comma-separated, trimmed, empty items dropped).
pub fn list(p: &Props, k: &str) -> Vec<String> {
    p.get(k)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The settings under `prefix`, with the prefix removed.
pub fn with_prefix(p: &Props, prefix: &str) -> BTreeMap<String, String> {
    p.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_settings_by_kafka_names() {
        let mut p = Props::new();
        p.insert("bootstrap.servers".into(), "127.0.0.1:9092".into());
        p.insert("group.id".into(), "g".into());
        p.insert("rest.advertised.host.name".into(), "w1".into());
        let c = WorkerConfig::from_props(p.clone(), "http://127.0.0.1:8083/").unwrap();
        assert_eq!(c.group_id, "g");
        assert_eq!(c.config_topic, "connect-configs");
        assert_eq!(c.advertised_url, "http://w1:8083/");
        assert_eq!(c.worker_id(), "w1:8083");
        assert!(c.exactly_once_source);
        p.insert("session.timeout.ms".into(), "soon".into());
        let e = WorkerConfig::from_props(p, "http://x:1/").unwrap_err();
        assert!(e.to_string().contains("session.timeout.ms"));
    }

    #[test]
    fn validation_reports_per_field_errors() {
        let def = ConfigDef {
            keys: vec![
                ConfigKey::new("file", ConfigType::String, None, "HIGH", "f"),
                ConfigKey {
                    min: Some(1),
                    ..ConfigKey::new("batch.size", ConfigType::Int, Some("2000"), "LOW", "b")
                },
            ],
        };
        let mut p = Props::new();
        p.insert("batch.size".into(), "0".into());
        let v = def.validate(&p);
        assert_eq!(
            v[0].errors,
            vec!["Missing required configuration \"file\" which has no default value."]
        );
        assert_eq!(
            v[1].errors,
            vec!["Invalid value 0 for configuration batch.size: Value must be at least 1"]
        );
    }
}

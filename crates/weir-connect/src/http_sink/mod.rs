//! An HTTP sink compatible with Confluent's HTTP Sink connector
//! (`io.confluent.connect.http.HttpSinkConnector`), by class name and
//! configuration names: records are sent in batches of `batch.max.size`
//! to `http.api.url` (`${topic}` and `${key}` filled in), each batch's
//! body the records' values (`request.body.format` string or json)
//! between `batch.prefix` and `batch.suffix`, separated by
//! `batch.separator` (or a JSON array with `batch.json.as.array`).
//!
//! Failures: a connection error, a timeout, 408, 429 and the statuses of
//! `retry.on.status.codes` are retried `max.retries` times after
//! `retry.backoff.ms` (`retry.backoff.policy`); any other status, or the
//! last retry failing, ends the batch, and `behavior.on.error` decides:
//! `fail` reports every record of the batch to the runtime as errant
//! (the task fails under `errors.tolerance=none`, the records go to the
//! dead-letter queue under `all`), `log` logs and goes on, `ignore` goes
//! on. Delivery is at least once: records sent after the last offset
//! commit are sent again after a crash.
//!
//! This part is the pure one (config, batching rules, bodies); the task
//! that talks HTTP is in `task` (the `runtime` feature).

#[cfg(feature = "runtime")]
mod task;

use crate::config::{ConfigDef, ConfigKey, ConfigType};
use crate::connector::{Connector, ConnectorType, OffsetChange, Plugin, Props};
use crate::converter::{java_to_string, JsonConverter};
use crate::data::{SchemaAndValue, Value};
use crate::error::{ConnectError, Result};

/// The Confluent release whose configuration this connector follows.
pub const VERSION: &str = "1.7.6";

/// The plugin.
pub const HTTP_SINK: Plugin = Plugin {
    class: "io.confluent.connect.http.HttpSinkConnector",
    kind: ConnectorType::Sink,
    version: VERSION,
    config_def: def,
    connector: || Box::new(HttpSinkConnector::default()),
    source_task: None,
    #[cfg(feature = "runtime")]
    sink_task: Some(|| Box::new(task::HttpSinkTask::default())),
    #[cfg(not(feature = "runtime"))]
    sink_task: None,
};

fn def() -> ConfigDef {
    let s = |name, default, imp, doc| ConfigKey::new(name, ConfigType::String, default, imp, doc);
    let i = |name, default, doc| ConfigKey {
        min: Some(0),
        ..ConfigKey::new(name, ConfigType::Int, Some(default), "MEDIUM", doc)
    };
    ConfigDef {
        keys: vec![
            s("http.api.url", None, "HIGH", "HTTP API URL; `${topic}` and `${key}` are replaced by the record's topic and key."),
            ConfigKey { choices: &["POST", "PUT", "PATCH", "DELETE"], ..s("request.method", Some("POST"), "HIGH", "HTTP request method: POST, PUT, PATCH or DELETE.") },
            s("headers", Some(""), "LOW", "HTTP headers sent with every request, `Name:value`, separated by `header.separator`."),
            s("header.separator", Some("|"), "LOW", "Separator of the headers in `headers`."),
            i("http.connect.timeout.ms", "30000", "Time to wait for a connection to be established, in milliseconds."),
            i("http.request.timeout.ms", "30000", "Time to wait for a request's response, in milliseconds."),
            ConfigKey { choices: &["NONE", "BASIC"], ..s("auth.type", Some("NONE"), "HIGH", "Authentication: NONE or BASIC (with connection.user and connection.password).") },
            ConfigKey { nullable: true, ..s("connection.user", None, "HIGH", "User name for basic authentication.") },
            ConfigKey { nullable: true, ..ConfigKey::new("connection.password", ConfigType::Password, None, "HIGH", "Password for basic authentication.") },
            ConfigKey { min: Some(1), ..ConfigKey::new("batch.max.size", ConfigType::Int, Some("1"), "HIGH", "The number of records accumulated in a batch before the HTTP API is invoked.") },
            s("batch.prefix", Some(""), "HIGH", "Prefix added once at the beginning of a batch's body."),
            s("batch.suffix", Some(""), "HIGH", "Suffix added once at the end of a batch's body."),
            s("batch.separator", Some(","), "HIGH", "Separator of the records in a batch's body."),
            ConfigKey::new("batch.json.as.array", ConfigType::Boolean, Some("false"), "HIGH", "With request.body.format=json, send each batch as a JSON array (prefix, suffix and separator unused)."),
            ConfigKey { choices: &["string", "json"], ..s("request.body.format", Some("string"), "MEDIUM", "How a record's value becomes the body: string (its text) or json (as JsonConverter writes it without schemas).") },
            i("max.retries", "10", "The maximum number of times to retry a failed request before giving up on its batch."),
            i("retry.backoff.ms", "3000", "The time in milliseconds to wait after a failed request before the retry."),
            ConfigKey { choices: &["CONSTANT_VALUE", "EXPONENTIAL_WITH_JITTER"], ..s("retry.backoff.policy", Some("EXPONENTIAL_WITH_JITTER"), "MEDIUM", "CONSTANT_VALUE waits retry.backoff.ms between attempts; EXPONENTIAL_WITH_JITTER doubles it each retry (at most a minute), minus up to half at random.") },
            s("retry.on.status.codes", Some("400-"), "MEDIUM", "HTTP statuses to retry: codes and inclusive ranges, comma-separated (`404,408,500-`). 408 and 429 are always retried, as are connection errors and timeouts."),
            ConfigKey { choices: &["fail", "ignore", "log"], ..s("behavior.on.error", Some("fail"), "MEDIUM", "When a batch fails for good: fail (report its records as errant: the task fails, or under errors.tolerance=all they go to the dead-letter queue), log (log and go on) or ignore (go on).") },
            ConfigKey { choices: &["ignore", "delete", "fail"], ..s("behavior.on.null.values", Some("ignore"), "LOW", "Records with a null value: ignore (skip), delete (a DELETE request to the URL) or fail (report as errant).") },
        ],
    }
}

/// The connector: every task gets the connector's config.
#[derive(Debug, Default)]
struct HttpSinkConnector {
    props: Props,
}

impl Connector for HttpSinkConnector {
    fn start(&mut self, config: &Props) -> Result<()> {
        Settings::from_props(config)?;
        self.props = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone(); max_tasks.max(1)])
    }

    /// Offsets live in the consumer group only.
    fn alter_offsets(&self, _config: &Props, _offsets: &[OffsetChange]) -> Result<bool> {
        Ok(true)
    }
}

/// The request body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    String,
    Json,
}

/// What a record with a null value does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnNull {
    Ignore,
    Delete,
    Fail,
}

/// What a batch that failed for good does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Fail,
    Log,
    Ignore,
}

/// The task's settings, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub basic_auth: Option<(String, String)>,
    pub batch_max_size: usize,
    pub prefix: String,
    pub suffix: String,
    pub separator: String,
    pub json_array: bool,
    pub format: BodyFormat,
    pub max_retries: u32,
    pub backoff_ms: u64,
    pub exponential: bool,
    pub retry_codes: StatusCodes,
    pub on_error: OnError,
    pub on_null: OnNull,
}

fn get<'a>(p: &'a Props, k: &str, default: &'a str) -> &'a str {
    p.get(k).map(String::as_str).unwrap_or(default)
}

fn non_negative(p: &Props, k: &str, default: i64) -> Result<u64> {
    let v = crate::config::prop_i64(p, k, default)?;
    u64::try_from(v).map_err(|_| {
        ConnectError::bad_config(format!(
            "Invalid value {v} for configuration {k}: Value must be at least 0"
        ))
    })
}

impl Settings {
    /// Parses a connector or task config.
    pub fn from_props(p: &Props) -> Result<Self> {
        let url = p
            .get("http.api.url")
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                ConnectError::bad_config(
                    "Missing required configuration \"http.api.url\" which has no default value.",
                )
            })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConnectError::bad_config(format!(
                "Invalid value {url} for configuration http.api.url: not an http:// or https:// URL"
            )));
        }
        let method = get(p, "request.method", "POST").trim().to_ascii_uppercase();
        if !["POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            return Err(ConnectError::bad_config(format!(
                "Invalid value {method} for configuration request.method"
            )));
        }
        let separator = get(p, "header.separator", "|");
        let mut headers = Vec::new();
        let raw = get(p, "headers", "");
        if !raw.trim().is_empty() {
            let parts: Vec<&str> = if separator.is_empty() {
                vec![raw]
            } else {
                raw.split(separator).collect()
            };
            for h in parts.into_iter().filter(|h| !h.trim().is_empty()) {
                let (name, value) = h.split_once(':').ok_or_else(|| {
                    ConnectError::bad_config(format!(
                        "Invalid value {raw} for configuration headers: `{h}` is not `Name:value`"
                    ))
                })?;
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let basic_auth = match get(p, "auth.type", "NONE").trim().to_ascii_uppercase().as_str() {
            "NONE" => None,
            "BASIC" => Some((
                get(p, "connection.user", "").to_string(),
                get(p, "connection.password", "").to_string(),
            )),
            other => {
                return Err(ConnectError::bad_config(format!(
                    "Invalid value {other} for configuration auth.type: Weir's HTTP sink supports NONE and BASIC"
                )))
            }
        };
        let format = match get(p, "request.body.format", "string").trim().to_ascii_lowercase().as_str() {
            "string" => BodyFormat::String,
            "json" => BodyFormat::Json,
            other => {
                return Err(ConnectError::bad_config(format!(
                    "Invalid value {other} for configuration request.body.format: String must be one of: string, json"
                )))
            }
        };
        let on_error = match get(p, "behavior.on.error", "fail").trim().to_ascii_lowercase().as_str() {
            "fail" => OnError::Fail,
            "log" => OnError::Log,
            "ignore" => OnError::Ignore,
            other => {
                return Err(ConnectError::bad_config(format!(
                    "Invalid value {other} for configuration behavior.on.error: String must be one of: fail, ignore, log"
                )))
            }
        };
        let on_null = match get(p, "behavior.on.null.values", "ignore").trim().to_ascii_lowercase().as_str() {
            "ignore" => OnNull::Ignore,
            "delete" => OnNull::Delete,
            "fail" => OnNull::Fail,
            other => {
                return Err(ConnectError::bad_config(format!(
                    "Invalid value {other} for configuration behavior.on.null.values: String must be one of: ignore, delete, fail"
                )))
            }
        };
        let exponential = match get(p, "retry.backoff.policy", "EXPONENTIAL_WITH_JITTER")
            .trim()
            .to_ascii_uppercase()
            .as_str()
        {
            "CONSTANT_VALUE" => false,
            "EXPONENTIAL_WITH_JITTER" => true,
            other => {
                return Err(ConnectError::bad_config(format!(
                    "Invalid value {other} for configuration retry.backoff.policy"
                )))
            }
        };
        let batch_max_size = crate::config::prop_i64(p, "batch.max.size", 1)?;
        if batch_max_size < 1 {
            return Err(ConnectError::bad_config(format!(
                "Invalid value {batch_max_size} for configuration batch.max.size: Value must be at least 1"
            )));
        }
        Ok(Self {
            url,
            method,
            headers,
            connect_timeout_ms: non_negative(p, "http.connect.timeout.ms", 30_000)?,
            request_timeout_ms: non_negative(p, "http.request.timeout.ms", 30_000)?,
            basic_auth,
            batch_max_size: batch_max_size as usize,
            prefix: get(p, "batch.prefix", "").to_string(),
            suffix: get(p, "batch.suffix", "").to_string(),
            separator: get(p, "batch.separator", ",").to_string(),
            json_array: get(p, "batch.json.as.array", "false")
                .trim()
                .eq_ignore_ascii_case("true"),
            format,
            max_retries: u32::try_from(non_negative(p, "max.retries", 10)?).unwrap_or(u32::MAX),
            backoff_ms: non_negative(p, "retry.backoff.ms", 3000)?,
            exponential,
            retry_codes: StatusCodes::parse(get(p, "retry.on.status.codes", "400-"))?,
            on_error,
            on_null,
        })
    }

    /// The URL for a record: `${topic}` and `${key}` filled in.
    pub fn url_for(&self, topic: &str, key: &SchemaAndValue) -> String {
        if !self.url.contains("${") {
            return self.url.clone();
        }
        let key = match &key.value {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => java_to_string(other),
        };
        self.url.replace("${topic}", topic).replace("${key}", &key)
    }

    /// One record's part of a body.
    pub fn record_body(&self, value: &SchemaAndValue) -> Result<String> {
        match self.format {
            BodyFormat::String => Ok(match &value.value {
                Value::String(s) => s.clone(),
                // Bytes as their text, rather than Java's `[B@...`.
                Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                other => java_to_string(other),
            }),
            BodyFormat::Json => {
                let mut out = String::new();
                JsonConverter::new(false).write_value(
                    value.schema.as_deref(),
                    &value.value,
                    &mut out,
                )?;
                Ok(out)
            }
        }
    }

    /// A batch's body from its records' parts.
    pub fn batch_body(&self, parts: &[String]) -> String {
        if self.json_array && self.format == BodyFormat::Json {
            return format!("[{}]", parts.join(","));
        }
        let mut out = String::with_capacity(
            self.prefix.len()
                + self.suffix.len()
                + parts.iter().map(|p| p.len() + 1).sum::<usize>(),
        );
        out.push_str(&self.prefix);
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.separator);
            }
            out.push_str(p);
        }
        out.push_str(&self.suffix);
        out
    }

    /// The content type sent unless `headers` names one.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            BodyFormat::Json => "application/json",
            BodyFormat::String => "text/plain; charset=utf-8",
        }
    }

    /// Whether a response status is retried.
    pub fn retriable(&self, status: u16) -> bool {
        status == 408 || status == 429 || self.retry_codes.contains(status)
    }

    /// The wait before retry number `attempt` (0 for the first retry),
    /// `jitter` in [0, 1).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> std::time::Duration {
        let ms = if self.exponential {
            let full = self
                .backoff_ms
                .saturating_mul(1u64 << attempt.min(20))
                .min(self.backoff_ms.max(60_000));
            full - (full as f64 * jitter.clamp(0.0, 1.0) / 2.0) as u64
        } else {
            self.backoff_ms
        };
        std::time::Duration::from_millis(ms)
    }
}

/// `retry.on.status.codes`: codes and inclusive ranges (`400-`, `500-599`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCodes(Vec<(u16, u16)>);

impl StatusCodes {
    /// Parses the setting.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |item: &str| {
            ConnectError::bad_config(format!(
                "Invalid value {s} for configuration retry.on.status.codes: `{item}` is not a status code or a range of them"
            ))
        };
        let mut out = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let range = match item.split_once('-') {
                None => {
                    let c = item.parse::<u16>().map_err(|_| bad(item))?;
                    (c, c)
                }
                Some((a, b)) => {
                    let a = a.trim().parse::<u16>().map_err(|_| bad(item))?;
                    let b = match b.trim() {
                        "" => u16::MAX,
                        b => b.parse::<u16>().map_err(|_| bad(item))?,
                    };
                    if b < a {
                        return Err(bad(item));
                    }
                    (a, b)
                }
            };
            out.push(range);
        }
        Ok(Self(out))
    }

    /// Whether `status` is listed.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&status))
    }
}

/// A short, printable excerpt of a response body for an error message.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, Struct, Type};
    use std::sync::Arc;

    use crate::connector::props;

    #[test]
    fn status_code_lists() {
        let c = StatusCodes::parse("404,408,500-").unwrap();
        assert!(c.contains(404) && c.contains(500) && c.contains(599));
        assert!(!c.contains(400) && !c.contains(499));
        let c = StatusCodes::parse("400-403").unwrap();
        assert!(c.contains(403) && !c.contains(404));
        assert!(StatusCodes::parse("5xx").is_err());
        assert!(StatusCodes::parse("500-400").is_err());
    }

    #[test]
    fn settings_and_defaults() {
        let s = Settings::from_props(&props(&[("http.api.url", "http://h/p")])).unwrap();
        assert_eq!(s.method, "POST");
        assert_eq!(s.batch_max_size, 1);
        assert_eq!(s.max_retries, 10);
        // Confluent's default retries every 4xx and 5xx.
        assert!(s.retriable(400) && s.retriable(503));
        let s = Settings::from_props(&props(&[
            ("http.api.url", "http://h/${topic}/${key}"),
            ("headers", "X-A: 1|Authorization:Bearer t:x"),
            ("retry.on.status.codes", "500-"),
        ]))
        .unwrap();
        assert_eq!(
            s.headers,
            vec![
                ("X-A".to_string(), "1".to_string()),
                ("Authorization".to_string(), "Bearer t:x".to_string())
            ]
        );
        assert!(s.retriable(429) && s.retriable(408) && !s.retriable(404));
        let key = SchemaAndValue::schemaless(Value::String("k1".into()));
        assert_eq!(s.url_for("t", &key), "http://h/t/k1");
        for bad in [
            vec![("http.api.url", "ftp://h")],
            vec![("http.api.url", "http://h"), ("auth.type", "OAUTH2")],
            vec![("http.api.url", "http://h"), ("batch.max.size", "0")],
            vec![("http.api.url", "http://h"), ("headers", "nocolon")],
        ] {
            assert!(Settings::from_props(&props(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bodies() {
        let s = Settings::from_props(&props(&[
            ("http.api.url", "http://h"),
            ("batch.prefix", "["),
            ("batch.suffix", "]"),
            ("request.body.format", "json"),
        ]))
        .unwrap();
        let schema = Arc::new(Schema::structure(vec![
            ("a".into(), Schema::of(Type::Int32)),
            ("b".into(), Schema::of(Type::String)),
        ]));
        let mut st = Struct::new(schema.clone());
        st.put("a", Value::Int32(1)).unwrap();
        st.put("b", Value::String("x".into())).unwrap();
        let v = SchemaAndValue {
            schema: Some(schema),
            value: Value::Struct(st),
        };
        let part = s.record_body(&v).unwrap();
        assert_eq!(part, r#"{"a":1,"b":"x"}"#);
        assert_eq!(
            s.batch_body(&[part.clone(), part]),
            r#"[{"a":1,"b":"x"},{"a":1,"b":"x"}]"#
        );
        let s = Settings::from_props(&props(&[("http.api.url", "http://h")])).unwrap();
        let text = SchemaAndValue::schemaless(Value::String("hello".into()));
        assert_eq!(s.record_body(&text).unwrap(), "hello");
        assert_eq!(s.batch_body(&["a".into(), "b".into()]), "a,b");
    }

    #[test]
    fn backoff_policies() {
        let mut s = Settings::from_props(&props(&[
            ("http.api.url", "http://h"),
            ("retry.backoff.ms", "100"),
        ]))
        .unwrap();
        assert_eq!(s.backoff(0, 0.0).as_millis(), 100);
        assert_eq!(s.backoff(3, 0.0).as_millis(), 800);
        assert_eq!(s.backoff(3, 0.999).as_millis(), 401);
        assert_eq!(s.backoff(30, 0.0).as_millis(), 60_000);
        s.exponential = false;
        assert_eq!(s.backoff(5, 0.5).as_millis(), 100);
    }
}

//! A JDBC sink for PostgreSQL compatible with Confluent's
//! `io.confluent.connect.jdbc.JdbcSinkConnector`: its configuration names
//! and defaults (`connection.url` as a `jdbc:postgresql://` URL,
//! `insert.mode`, `pk.mode`, `pk.fields`, `fields.whitelist`,
//! `table.name.format`, `auto.create`, `auto.evolve`, `delete.enabled`,
//! `batch.size`, `max.retries`, `retry.backoff.ms`,
//! `quote.sql.identifiers`), its PostgreSQL dialect's type mapping and
//! statements (upsert as `INSERT ... ON CONFLICT (pk) DO UPDATE`).
//!
//! - this module: the configuration and the SQL (pure, unit-tested);
//! - `task`: the sink task, on the CDC connector's PostgreSQL client
//!   (the extended query protocol, pipelined: one Parse per statement
//!   shape, a Bind/Execute per record, a Sync per `batch.size` records).
//!
//! Each `put` is one transaction, committed before `put` returns, so the
//! consumer offsets the runtime commits afterwards never cover rows that
//! are not in the database; a redelivery after a crash repeats upserts
//! and deletes, which leave the same rows.

#[cfg(feature = "runtime")]
mod task;

use std::sync::Arc;

use crate::config::{list, ConfigDef, ConfigKey, ConfigType};
use crate::connector::{ConnectRecord, Connector, ConnectorType, Plugin, Props};
use crate::data::{logical, Schema, Type, Value};
use crate::error::{ConnectError, Result};
use crate::timefmt::{civil, MS_PER_DAY};
use crate::tz::Zone;

/// The Confluent release whose configuration this sink follows.
pub const VERSION: &str = "10.8.4";

/// The plugin.
pub const JDBC_SINK: Plugin = Plugin {
    class: "io.confluent.connect.jdbc.JdbcSinkConnector",
    kind: ConnectorType::Sink,
    version: VERSION,
    config_def: def,
    connector: || Box::new(JdbcSinkConnector::default()),
    source_task: None,
    #[cfg(feature = "runtime")]
    sink_task: Some(|| Box::new(task::JdbcSinkTask::default())),
    #[cfg(not(feature = "runtime"))]
    sink_task: None,
};

fn def() -> ConfigDef {
    let s = |name, default, imp, doc| ConfigKey::new(name, ConfigType::String, default, imp, doc);
    let b = |name, default, doc| {
        ConfigKey::new(name, ConfigType::Boolean, Some(default), "MEDIUM", doc)
    };
    let i = |name, default, doc| ConfigKey {
        min: Some(0),
        ..ConfigKey::new(name, ConfigType::Int, Some(default), "MEDIUM", doc)
    };
    ConfigDef {
        keys: vec![
            s("connection.url", None, "HIGH", "JDBC connection URL, jdbc:postgresql://host:port/database."),
            ConfigKey { nullable: true, ..s("connection.user", None, "HIGH", "JDBC connection user.") },
            ConfigKey { nullable: true, ..ConfigKey::new("connection.password", ConfigType::Password, None, "HIGH", "JDBC connection password.") },
            i("connection.attempts", "3", "Maximum number of attempts to retrieve a valid JDBC connection."),
            ConfigKey::new("connection.backoff.ms", ConfigType::Long, Some("10000"), "LOW", "Backoff time in milliseconds between connection attempts."),
            ConfigKey { choices: &["insert", "upsert", "update"], ..s("insert.mode", Some("insert"), "HIGH", "The insertion mode to use: insert, upsert or update.") },
            ConfigKey { min: Some(1), ..i("batch.size", "3000", "Specifies how many records to attempt to batch together for insertion into the destination table, when possible.") },
            b("delete.enabled", "false", "Whether to treat null record values as deletes. Requires pk.mode to be record_key."),
            s("table.name.format", Some("${topic}"), "MEDIUM", "A format string for the destination table name, which may contain '${topic}' as a placeholder for the originating topic name."),
            ConfigKey { choices: &["none", "kafka", "record_key", "record_value"], ..s("pk.mode", Some("none"), "HIGH", "The primary key mode: none, kafka, record_key or record_value.") },
            ConfigKey::new("pk.fields", ConfigType::List, Some(""), "MEDIUM", "List of comma-separated primary key field names. The runtime interpretation of this config depends on the pk.mode."),
            ConfigKey::new("fields.whitelist", ConfigType::List, Some(""), "MEDIUM", "List of comma-separated record value field names. If empty, all fields from the record value are utilized, otherwise used to filter to the desired fields."),
            b("auto.create", "false", "Whether to automatically create the destination table based on record schema if it is found to be missing by issuing CREATE."),
            b("auto.evolve", "false", "Whether to automatically add columns in the table schema when found to be missing relative to the record schema by issuing ALTER."),
            ConfigKey { choices: &["always", "never"], ..s("quote.sql.identifiers", Some("always"), "MEDIUM", "When to quote table names, column names, and other identifiers in SQL statements.") },
            i("max.retries", "10", "The maximum number of times to retry on errors before failing the task."),
            i("retry.backoff.ms", "3000", "The time in milliseconds to wait following an error before a retry attempt is made."),
            s("db.timezone", Some("UTC"), "MEDIUM", "Name of the JDBC timezone that should be used in the connector when inserting time-based values. Defaults to UTC."),
        ],
    }
}

/// The connector: checks the config; every task writes every topic's
/// partitions it is given.
#[derive(Debug, Default)]
struct JdbcSinkConnector {
    props: Props,
}

impl Connector for JdbcSinkConnector {
    fn start(&mut self, config: &Props) -> Result<()> {
        SinkConfig::from_props(config)?;
        self.props = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone(); max_tasks.max(1)])
    }
}

/// `insert.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    Insert,
    Upsert,
    Update,
}

/// `pk.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

/// Where and as whom to connect, from `connection.url|user|password`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: String,
    /// PgJDBC's `sslmode` (libpq's names); `prefer` by default, and
    /// `verify-full` for a bare `ssl=true`, as PgJDBC reads it.
    pub sslmode: String,
    /// `sslrootcert`, `sslcert`, `sslkey`: files (PEM; the key also as
    /// PgJDBC's DER PKCS#8 `.pk8`).
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    /// `currentSchema`: the session's `search_path`.
    pub current_schema: Option<String>,
    /// `ApplicationName`: the session's `application_name`.
    pub application_name: Option<String>,
}

/// libpq's and PgJDBC's `sslmode` values.
pub const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// A URL query value with its `%XX` escapes (and `+`) decoded.
fn url_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The sink's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    pub target: Target,
    pub insert_mode: InsertMode,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub whitelist: Vec<String>,
    pub table_format: String,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub delete_enabled: bool,
    pub batch_size: usize,
    pub max_retries: u32,
    pub retry_backoff_ms: u64,
    pub quote: bool,
    /// `db.timezone`: the zone dates, times and timestamps are written in.
    pub zone: Zone,
}

fn bad(msg: impl Into<String>) -> ConnectError {
    ConnectError::bad_config(msg)
}

/// Parses `jdbc:postgresql://host[:port][/database][?key=value&...]`.
pub fn parse_url(url: &str) -> Result<Target> {
    let rest = url.trim().strip_prefix("jdbc:postgresql:").ok_or_else(|| {
        bad(format!(
            "Invalid value {url} for configuration connection.url: only jdbc:postgresql:// URLs are supported"
        ))
    })?;
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (hostport, dbname) = match main.strip_prefix("//") {
        Some(hp) => match hp.split_once('/') {
            Some((h, d)) => (h, d),
            None => (hp, ""),
        },
        // `jdbc:postgresql:database` means localhost.
        None => ("", main),
    };
    // Only the first host of a multi-host URL.
    let hostport = hostport.split(',').next().unwrap_or_default();
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            p.parse::<u16>()
                .map_err(|_| bad(format!("Invalid port in connection.url {url}")))?,
        ),
        _ => (hostport.to_string(), 5432),
    };
    let mut t = Target {
        host: if host.is_empty() {
            "localhost".into()
        } else {
            host
        },
        port,
        dbname: dbname.to_string(),
        user: String::new(),
        password: String::new(),
        sslmode: "prefer".into(),
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        current_schema: None,
        application_name: None,
    };
    let (mut sslmode, mut ssl) = (None, None);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = url_decode(v);
        let some = || Some(v.clone()).filter(|v| !v.is_empty());
        match k {
            "user" => t.user = v.clone(),
            "password" => t.password = v.clone(),
            "sslmode" => sslmode = Some(v.to_ascii_lowercase()),
            "ssl" => ssl = Some(v.to_ascii_lowercase()),
            "sslrootcert" => t.sslrootcert = some(),
            "sslcert" => t.sslcert = some(),
            "sslkey" => t.sslkey = some(),
            "currentSchema" => t.current_schema = some(),
            "ApplicationName" => t.application_name = some(),
            _ => {}
        }
    }
    t.sslmode = match (sslmode, ssl.as_deref()) {
        (Some(m), _) => {
            if !SSL_MODES.contains(&m.as_str()) {
                return Err(bad(format!(
                    "Invalid sslmode {m} in connection.url: one of {}",
                    SSL_MODES.join(", ")
                )));
            }
            m
        }
        // PgJDBC: `ssl` (or `ssl=true`) without `sslmode` checks the
        // certificate and the host name.
        (None, Some("" | "true")) => "verify-full".into(),
        _ => "prefer".into(),
    };
    Ok(t)
}

impl SinkConfig {
    /// From a connector or task config.
    pub fn from_props(p: &Props) -> Result<SinkConfig> {
        let get = |k: &str, d: &str| {
            p.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_string())
        };
        let url = get("connection.url", "");
        if url.is_empty() {
            return Err(bad(
                "Missing required configuration \"connection.url\" which has no default value.",
            ));
        }
        let mut target = parse_url(&url)?;
        if let Some(u) = p.get("connection.user").filter(|u| !u.is_empty()) {
            target.user = u.clone();
        }
        if let Some(pw) = p.get("connection.password").filter(|u| !u.is_empty()) {
            target.password = pw.clone();
        }
        if target.dbname.is_empty() {
            target.dbname = target.user.clone();
        }
        let bool_of = |k: &str, d: bool| -> Result<bool> {
            match get(k, if d { "true" } else { "false" }).to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                v => Err(bad(format!(
                    "Invalid value {v} for configuration {k}: Expected value to be either true or false"
                ))),
            }
        };
        let num = |k: &str, d: u64| -> Result<u64> {
            get(k, &d.to_string()).parse::<u64>().map_err(|_| {
                bad(format!(
                    "Invalid value {} for configuration {k}: Not a number of type INT",
                    get(k, "")
                ))
            })
        };
        let insert_mode = match get("insert.mode", "insert").to_ascii_lowercase().as_str() {
            "insert" => InsertMode::Insert,
            "upsert" => InsertMode::Upsert,
            "update" => InsertMode::Update,
            v => {
                return Err(bad(format!(
                    "Invalid value {v} for configuration insert.mode"
                )))
            }
        };
        let pk_mode = match get("pk.mode", "none").to_ascii_lowercase().as_str() {
            "none" => PkMode::None,
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            v => return Err(bad(format!("Invalid value {v} for configuration pk.mode"))),
        };
        let delete_enabled = bool_of("delete.enabled", false)?;
        if delete_enabled && pk_mode != PkMode::RecordKey {
            return Err(bad(
                "Primary key mode must be 'record_key' when delete support is enabled",
            ));
        }
        let mut pk_fields = list(p, "pk.fields");
        if pk_mode == PkMode::Kafka {
            if pk_fields.is_empty() {
                pk_fields = vec![
                    "__connect_topic".into(),
                    "__connect_partition".into(),
                    "__connect_offset".into(),
                ];
            } else if pk_fields.len() != 3 {
                return Err(bad(
                    "PK mode for table is KAFKA so there should either be no field names defined for defaults to be applicable, or exactly 3, defined fields are: ".to_string()
                        + &pk_fields.join(","),
                ));
            }
        }
        if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
            return Err(bad(format!(
                "insert.mode={} requires a primary key: set pk.mode to kafka, record_key or record_value",
                get("insert.mode", "")
            )));
        }
        let batch_size = num("batch.size", 3000)?;
        if batch_size == 0 {
            return Err(bad(
                "Invalid value 0 for configuration batch.size: Value must be at least 1",
            ));
        }
        Ok(SinkConfig {
            target,
            insert_mode,
            pk_mode,
            pk_fields,
            whitelist: list(p, "fields.whitelist"),
            table_format: get("table.name.format", "${topic}"),
            auto_create: bool_of("auto.create", false)?,
            auto_evolve: bool_of("auto.evolve", false)?,
            delete_enabled,
            batch_size: batch_size as usize,
            max_retries: num("max.retries", 10)? as u32,
            retry_backoff_ms: num("retry.backoff.ms", 3000)?,
            zone: Zone::parse(&get("db.timezone", "UTC"), "db.timezone")?,
            quote: match get("quote.sql.identifiers", "always")
                .to_ascii_lowercase()
                .as_str()
            {
                "always" => true,
                "never" => false,
                v => {
                    return Err(bad(format!(
                        "Invalid value {v} for configuration quote.sql.identifiers"
                    )))
                }
            },
        })
    }

    /// An identifier as the statements write it.
    pub fn ident(&self, s: &str) -> String {
        if self.quote {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }

    /// The destination table of `topic`: (schema, table); a dotted name is
    /// `schema.table` (a third part in front names the database).
    pub fn table_of(&self, topic: &str) -> TableId {
        let name = self.table_format.replace("${topic}", topic);
        let mut parts: Vec<&str> = name.split('.').collect();
        let table = parts.pop().unwrap_or_default().to_string();
        let schema = parts.pop().map(str::to_string);
        TableId { schema, table }
    }

    /// The table's name in SQL.
    pub fn table_sql(&self, t: &TableId) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.ident(s), self.ident(&t.table)),
            None => self.ident(&t.table),
        }
    }
}

/// A destination table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub schema: Option<String>,
    pub table: String,
}

/// A column a record writes, with its Connect schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub schema: Arc<Schema>,
    pub pk: bool,
}

/// What one record does to its table.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert, upsert or update with the columns' values (keys first).
    Write(Vec<Column>, Vec<Value>),
    /// Delete by the key columns.
    Delete(Vec<Column>, Vec<Value>),
}

impl Op {
    /// Whether it deletes, and its columns.
    pub fn parts(&self) -> (bool, &[Column]) {
        match self {
            Op::Write(c, _) => (false, c),
            Op::Delete(c, _) => (true, c),
        }
    }
}

fn where_is(topic: &str, partition: i32, offset: i64) -> String {
    format!("(topic='{topic}',partition={partition},offset={offset})")
}

fn struct_cols(
    schema: &Arc<Schema>,
    v: &Value,
    pk: bool,
    only: &[String],
) -> Result<(Vec<Column>, Vec<Value>)> {
    let Value::Struct(s) = v else {
        return Err(ConnectError::data("expected a Struct"));
    };
    let mut cols = Vec::new();
    let mut vals = Vec::new();
    if only.is_empty() {
        for f in &schema.fields {
            cols.push(Column {
                name: f.name.clone(),
                schema: f.schema.clone(),
                pk,
            });
            vals.push(s.values[f.index].clone());
        }
    } else {
        for name in only {
            let f = schema.field(name).ok_or_else(|| {
                bad(format!(
                    "PK mode for table is {} with configured PK fields [{}], but record has no field named {name}",
                    if pk { "RECORD_KEY or RECORD_VALUE" } else { "set" },
                    only.join(", ")
                ))
            })?;
            cols.push(Column {
                name: f.name.clone(),
                schema: f.schema.clone(),
                pk,
            });
            vals.push(s.values[f.index].clone());
        }
    }
    Ok((cols, vals))
}

impl SinkConfig {
    /// The columns and values `r` writes (or the key it deletes), as
    /// Confluent's FieldsMetadata picks them; `None`: nothing to do.
    pub fn op_of(&self, r: &ConnectRecord, partition: i32, offset: i64) -> Result<Op> {
        let at = || where_is(&r.topic, partition, offset);
        let mut cols = Vec::new();
        let mut vals = Vec::new();
        // The key part.
        match self.pk_mode {
            PkMode::None => {}
            PkMode::Kafka => {
                let str_s = Arc::new(Schema::of(Type::String));
                cols.push(Column {
                    name: self.pk_fields[0].clone(),
                    schema: str_s,
                    pk: true,
                });
                vals.push(Value::String(r.topic.clone()));
                cols.push(Column {
                    name: self.pk_fields[1].clone(),
                    schema: Arc::new(Schema::of(Type::Int32)),
                    pk: true,
                });
                vals.push(Value::Int32(partition));
                cols.push(Column {
                    name: self.pk_fields[2].clone(),
                    schema: Arc::new(Schema::of(Type::Int64)),
                    pk: true,
                });
                vals.push(Value::Int64(offset));
            }
            PkMode::RecordKey => {
                let schema = r.key.schema.as_ref().filter(|_| !r.key.value.is_null()).ok_or_else(|| {
                    ConnectError::data(format!(
                        "PK mode for table is RECORD_KEY, but record key schema is missing or the key is null at {}",
                        at()
                    ))
                })?;
                if schema.ty == Type::Struct {
                    let (c, v) = struct_cols(schema, &r.key.value, true, &self.pk_fields)?;
                    cols.extend(c);
                    vals.extend(v);
                } else {
                    if self.pk_fields.len() > 1 {
                        return Err(bad(
                            "Need exactly one PK column defined since the key schema for records is a primitive type",
                        ));
                    }
                    let name = self
                        .pk_fields
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "__connect_key".into());
                    cols.push(Column {
                        name,
                        schema: schema.clone(),
                        pk: true,
                    });
                    vals.push(r.key.value.clone());
                }
            }
            PkMode::RecordValue => {}
        }
        if r.value.value.is_null() {
            if self.delete_enabled {
                return Ok(Op::Delete(cols, vals));
            }
            return Err(ConnectError::data(format!(
                "Sink connector is configured with 'delete.enabled=false' and 'pk.mode={}' and therefore requires records with a non-null Struct value and non-null Struct schema, but found record at {} with a null value and null value schema.",
                pk_mode_name(self.pk_mode),
                at()
            )));
        }
        let schema = match &r.value.schema {
            Some(s) if s.ty == Type::Struct && matches!(r.value.value, Value::Struct(_)) => s,
            _ => {
                return Err(ConnectError::data(format!(
                    "Sink connector is configured with 'delete.enabled={}' and 'pk.mode={}' and therefore requires records with a non-null Struct value and non-null Struct schema, but found record at {} with a {} value and {} value schema.",
                    self.delete_enabled,
                    pk_mode_name(self.pk_mode),
                    at(),
                    r.value.value.type_name(),
                    if r.value.schema.is_some() { "non-struct" } else { "null" }
                )))
            }
        };
        if self.pk_mode == PkMode::RecordValue {
            let (c, v) = struct_cols(schema, &r.value.value, true, &self.pk_fields)?;
            cols.extend(c);
            vals.extend(v);
        }
        let Value::Struct(s) = &r.value.value else {
            return Err(ConnectError::data("expected a Struct"));
        };
        for f in &schema.fields {
            if cols.iter().any(|c| c.pk && c.name == f.name) {
                continue;
            }
            if !self.whitelist.is_empty() && !self.whitelist.contains(&f.name) {
                continue;
            }
            cols.push(Column {
                name: f.name.clone(),
                schema: f.schema.clone(),
                pk: false,
            });
            vals.push(s.values[f.index].clone());
        }
        Ok(Op::Write(cols, vals))
    }

    /// `INSERT`, upsert or `UPDATE` with `$n` parameters in `cols` order
    /// (for UPDATE: the non-key values, then the keys; see [`Self::params`]).
    pub fn write_sql(&self, table: &TableId, cols: &[Column]) -> String {
        self.write_sql_rows(table, cols, 1)
    }

    /// [`Self::write_sql`] writing `rows` rows at once: one `VALUES` list
    /// of `rows` tuples, parameters row after row (as PgJDBC's
    /// `reWriteBatchedInserts` rewrites a batch). Only for `insert` and
    /// `upsert`; `update` is one row per statement.
    pub fn write_sql_rows(&self, table: &TableId, cols: &[Column], rows: usize) -> String {
        let t = self.table_sql(table);
        let names: Vec<String> = cols.iter().map(|c| self.ident(&c.name)).collect();
        let keys: Vec<String> = cols
            .iter()
            .filter(|c| c.pk)
            .map(|c| self.ident(&c.name))
            .collect();
        let non_keys: Vec<String> = cols
            .iter()
            .filter(|c| !c.pk)
            .map(|c| self.ident(&c.name))
            .collect();
        let n = cols.len();
        let tuples = (0..rows.max(1))
            .map(|r| {
                let ps: Vec<String> = (1..=n).map(|i| format!("${}", r * n + i)).collect();
                ps.join(",")
            })
            .collect::<Vec<_>>()
            .join("),(");
        match self.insert_mode {
            InsertMode::Insert => {
                format!("INSERT INTO {t} ({}) VALUES ({tuples})", names.join(","),)
            }
            InsertMode::Upsert => {
                let action = if non_keys.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!(
                        "DO UPDATE SET {}",
                        non_keys
                            .iter()
                            .map(|c| format!("{c}=EXCLUDED.{c}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                };
                format!(
                    "INSERT INTO {t} ({}) VALUES ({tuples}) ON CONFLICT ({}) {action}",
                    names.join(","),
                    keys.join(",")
                )
            }
            InsertMode::Update => {
                let mut n = 0;
                let mut next = || {
                    n += 1;
                    format!("${n}")
                };
                let set: Vec<String> = non_keys
                    .iter()
                    .map(|c| format!("{c} = {}", next()))
                    .collect();
                let cond: Vec<String> = keys.iter().map(|c| format!("{c} = {}", next())).collect();
                format!(
                    "UPDATE {t} SET {} WHERE {}",
                    set.join(", "),
                    cond.join(" AND ")
                )
            }
        }
    }

    /// The parameter order of [`Self::write_sql`]'s statement.
    pub fn params<'a>(
        &self,
        cols: &'a [Column],
        vals: &'a [Value],
    ) -> Vec<(&'a Column, &'a Value)> {
        let pairs = cols.iter().zip(vals);
        if self.insert_mode == InsertMode::Update {
            pairs
                .clone()
                .filter(|(c, _)| !c.pk)
                .chain(pairs.filter(|(c, _)| c.pk))
                .collect()
        } else {
            pairs.collect()
        }
    }

    /// `DELETE ... WHERE` the keys are one of `rows` tuples of
    /// parameters (`(k1,k2) IN (($1,$2),($3,$4))`).
    pub fn delete_sql_rows(&self, table: &TableId, keys: &[Column], rows: usize) -> String {
        if rows <= 1 {
            return self.delete_sql(table, keys);
        }
        let n = keys.len();
        let names: Vec<String> = keys.iter().map(|c| self.ident(&c.name)).collect();
        let tuples = (0..rows)
            .map(|r| {
                let ps: Vec<String> = (1..=n).map(|i| format!("${}", r * n + i)).collect();
                ps.join(",")
            })
            .collect::<Vec<_>>()
            .join("),(");
        format!(
            "DELETE FROM {} WHERE ({}) IN (({tuples}))",
            self.table_sql(table),
            names.join(",")
        )
    }

    /// `DELETE ... WHERE` the keys.
    pub fn delete_sql(&self, table: &TableId, keys: &[Column]) -> String {
        let cond: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ${}", self.ident(&c.name), i + 1))
            .collect();
        format!(
            "DELETE FROM {} WHERE {}",
            self.table_sql(table),
            cond.join(" AND ")
        )
    }

    /// `CREATE TABLE` for `cols`, as Confluent's PostgreSQL dialect writes it.
    pub fn create_sql(&self, table: &TableId, cols: &[Column]) -> Result<String> {
        let mut defs = Vec::new();
        for c in cols {
            defs.push(self.column_def(c)?);
        }
        let keys: Vec<String> = cols
            .iter()
            .filter(|c| c.pk)
            .map(|c| self.ident(&c.name))
            .collect();
        if !keys.is_empty() {
            defs.push(format!("PRIMARY KEY({})", keys.join(",")));
        }
        Ok(format!(
            "CREATE TABLE {} (\n{})",
            self.table_sql(table),
            defs.join(",\n")
        ))
    }

    /// `ALTER TABLE ... ADD` for missing columns; they must be optional or
    /// have a default.
    pub fn alter_sql(&self, table: &TableId, missing: &[Column]) -> Result<String> {
        let mut adds = Vec::new();
        for c in missing {
            if !c.schema.optional && c.schema.default.is_none() {
                return Err(ConnectError::failed(format!(
                    "Cannot ALTER TABLE {} to add missing field {} (type {}), as the field is not optional and does not have a default value",
                    self.table_sql(table),
                    c.name,
                    c.schema.ty.name()
                )));
            }
            adds.push(format!("ADD {}", self.column_def(c)?));
        }
        Ok(format!(
            "ALTER TABLE {} \n{}",
            self.table_sql(table),
            adds.join(",\n")
        ))
    }

    fn column_def(&self, c: &Column) -> Result<String> {
        let mut d = format!("{} {}", self.ident(&c.name), sql_type(&c.schema)?);
        if let Some(v) = &c.schema.default {
            if let Some(text) = param_text_in(&c.schema, v, &self.zone)? {
                d.push_str(&format!(" DEFAULT '{}'", text.replace('\'', "''")));
            }
        }
        // Key columns are NOT NULL whatever the schema says.
        d.push_str(if c.schema.optional && !c.pk {
            " NULL"
        } else {
            " NOT NULL"
        });
        Ok(d)
    }
}

fn pk_mode_name(m: PkMode) -> &'static str {
    match m {
        PkMode::None => "none",
        PkMode::Kafka => "kafka",
        PkMode::RecordKey => "record_key",
        PkMode::RecordValue => "record_value",
    }
}

/// The PostgreSQL type of a Connect schema, as Confluent's PostgreSQL
/// dialect maps it.
pub fn sql_type(s: &Schema) -> Result<String> {
    Ok(match s.name.as_deref() {
        Some(logical::DECIMAL) => "DECIMAL".into(),
        Some(logical::DATE) => "DATE".into(),
        Some(logical::TIME) => "TIME".into(),
        Some(logical::TIMESTAMP) => "TIMESTAMP".into(),
        _ => match s.ty {
            Type::Int8 | Type::Int16 => "SMALLINT".into(),
            Type::Int32 => "INT".into(),
            Type::Int64 => "BIGINT".into(),
            Type::Float32 => "REAL".into(),
            Type::Float64 => "DOUBLE PRECISION".into(),
            Type::Boolean => "BOOLEAN".into(),
            Type::String => "TEXT".into(),
            Type::Bytes => "BYTEA".into(),
            Type::Array => {
                let items = s.value.as_deref().ok_or_else(|| unsupported(s))?;
                if !items.ty.is_primitive() {
                    return Err(unsupported(s));
                }
                format!("{}[]", sql_type(items)?)
            }
            Type::Map | Type::Struct => return Err(unsupported(s)),
        },
    })
}

fn unsupported(s: &Schema) -> ConnectError {
    ConnectError::failed(format!(
        "Dialect does not support the schema type {} ({})",
        s.ty.name(),
        s.name.as_deref().unwrap_or("no name")
    ))
}

/// A Decimal's unscaled two's-complement bytes as decimal text at `scale`.
pub fn decimal_text(unscaled: &[u8], scale: i32) -> String {
    let neg = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude: the two's complement negated when negative.
    let mut mag: Vec<u8> = if neg {
        let mut m: Vec<u8> = unscaled.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        unscaled.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    let digits = String::from_utf8(digits).unwrap_or_default();
    let text = if scale <= 0 {
        format!("{digits}{}", "0".repeat(scale.unsigned_abs() as usize))
    } else {
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (i, f) = padded.split_at(padded.len() - scale);
        format!("{i}.{f}")
    };
    if neg {
        format!("-{text}")
    } else {
        text
    }
}

/// A date as PostgreSQL reads it: `yyyy-mm-dd`, and whether it is BC.
fn ymd(days: i64) -> (String, bool) {
    let (y, m, d) = civil(days);
    if y <= 0 {
        (format!("{:04}-{m:02}-{d:02}", 1 - y), true)
    } else {
        (format!("{y:04}-{m:02}-{d:02}"), false)
    }
}

fn date_text(days: i64) -> String {
    match ymd(days) {
        (d, true) => format!("{d} BC"),
        (d, false) => d,
    }
}

fn time_text(ms_of_day: i64) -> String {
    let ms = ms_of_day.rem_euclid(MS_PER_DAY);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// An offset from UTC as PostgreSQL reads it: `+hh:mm[:ss]`.
fn offset_text(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let s = ms.abs() / 1000;
    if s % 60 == 0 {
        format!("{sign}{:02}:{:02}", s / 3600, s / 60 % 60)
    } else {
        format!("{sign}{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

fn array_item(s: &Schema, v: &Value, zone: &Zone) -> Result<String> {
    Ok(match param_text_in(s, v, zone)? {
        None => "NULL".into(),
        Some(t) => format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\"")),
    })
}

/// A value as the text PostgreSQL reads for a parameter of `s`'s SQL type
/// (`None`: NULL), times in UTC.
pub fn param_text(s: &Schema, v: &Value) -> Result<Option<String>> {
    param_text_in(s, v, &Zone::default())
}

/// A value as the text PostgreSQL reads for a parameter of `s`'s SQL type
/// (`None`: NULL), with dates, times and timestamps in `zone`
/// (`db.timezone`) as Confluent's sink binds them (PgJDBC's `setDate`,
/// `setTime`, `setTimestamp` with a calendar of the zone): the wall-clock
/// of the instant in the zone, and for times and timestamps the zone's
/// offset, which a `timestamptz` or `timetz` column uses and a column
/// without time zone ignores.
pub fn param_text_in(s: &Schema, v: &Value, zone: &Zone) -> Result<Option<String>> {
    let mismatch = || {
        ConnectError::data(format!(
            "Value {} does not match the schema type {}",
            v.type_name(),
            s.ty.name()
        ))
    };
    if v.is_null() {
        return Ok(None);
    }
    if v.inferred_type() != Some(s.ty) {
        return Err(mismatch());
    }
    Ok(Some(match (s.name.as_deref(), v) {
        (Some(logical::DECIMAL), Value::Bytes(b)) => {
            decimal_text(b, s.decimal_scale().unwrap_or(0))
        }
        (Some(logical::DATE), Value::Int32(d)) => {
            let ms = i64::from(*d) * MS_PER_DAY;
            date_text(zone.local_ms(ms).div_euclid(MS_PER_DAY))
        }
        (Some(logical::TIME), Value::Int32(ms)) => {
            let ms = i64::from(*ms);
            let off = zone.offset_ms(ms);
            format!("{}{}", time_text(ms + off), offset_text(off))
        }
        (Some(logical::TIMESTAMP), Value::Int64(ms)) => {
            let off = zone.offset_ms(*ms);
            let local = ms.saturating_add(off);
            let (date, bc) = ymd(local.div_euclid(MS_PER_DAY));
            format!(
                "{date} {}{}{}",
                time_text(local.rem_euclid(MS_PER_DAY)),
                offset_text(off),
                if bc { " BC" } else { "" }
            )
        }
        (_, Value::Int8(i)) => i.to_string(),
        (_, Value::Int16(i)) => i.to_string(),
        (_, Value::Int32(i)) => i.to_string(),
        (_, Value::Int64(i)) => i.to_string(),
        (_, Value::Float32(f)) => float_text(f64::from(*f), f.to_string()),
        (_, Value::Float64(f)) => float_text(*f, f.to_string()),
        (_, Value::Boolean(b)) => b.to_string(),
        (_, Value::String(t)) => t.clone(),
        (_, Value::Bytes(b)) => {
            let mut out = String::with_capacity(2 + b.len() * 2);
            out.push_str("\\x");
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        (_, Value::Array(items)) => {
            let item_schema = s.value.as_deref().ok_or_else(mismatch)?;
            let parts: Result<Vec<String>> = items
                .iter()
                .map(|i| array_item(item_schema, i, zone))
                .collect();
            format!("{{{}}}", parts?.join(","))
        }
        _ => return Err(mismatch()),
    }))
}

fn float_text(f: f64, shown: String) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SchemaAndValue, Struct};

    use crate::connector::props;

    #[test]
    fn urls_and_settings() {
        let t = parse_url("jdbc:postgresql://db.example:6543/shop?user=u&password=p&ssl=false")
            .unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.dbname.as_str(),
                t.user.as_str(),
                t.password.as_str()
            ),
            ("db.example", 6543, "shop", "u", "p")
        );
        assert_eq!(t.sslmode, "prefer");
        let t = parse_url("jdbc:postgresql://h/x").unwrap();
        assert_eq!((t.port, t.dbname.as_str()), (5432, "x"));
        let t = parse_url(
            "jdbc:postgresql://h/x?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&sslcert=c.pem&sslkey=k.pk8&currentSchema=shop,public&ApplicationName=orders+sink",
        )
        .unwrap();
        assert_eq!(t.sslmode, "verify-ca");
        assert_eq!(t.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            (t.sslcert.as_deref(), t.sslkey.as_deref()),
            (Some("c.pem"), Some("k.pk8"))
        );
        assert_eq!(t.current_schema.as_deref(), Some("shop,public"));
        assert_eq!(t.application_name.as_deref(), Some("orders sink"));
        assert_eq!(
            parse_url("jdbc:postgresql://h/x?ssl=true").unwrap().sslmode,
            "verify-full"
        );
        assert!(parse_url("jdbc:postgresql://h/x?sslmode=sometimes").is_err());
        assert!(parse_url("jdbc:mysql://h/x").is_err());
        let base = [("connection.url", "jdbc:postgresql://h/x")];
        assert!(SinkConfig::from_props(&props(&[base[0], ("delete.enabled", "true")])).is_err());
        assert!(SinkConfig::from_props(&props(&[base[0], ("insert.mode", "upsert")])).is_err());
        let c = SinkConfig::from_props(&props(&[base[0], ("pk.mode", "kafka")])).unwrap();
        assert_eq!(
            c.pk_fields,
            ["__connect_topic", "__connect_partition", "__connect_offset"]
        );
        assert!(SinkConfig::from_props(&props(&[])).is_err());
    }

    fn record(key: Option<i32>, value: Option<(i32, &str)>) -> ConnectRecord {
        let ks = Arc::new(Schema::structure(vec![(
            "id".into(),
            Schema::of(Type::Int32),
        )]));
        let vs = Arc::new(Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int32)),
            ("name".into(), Schema::of(Type::String).optional()),
        ]));
        let mut r = ConnectRecord::new(
            "shop.items",
            match value {
                None => SchemaAndValue::null(),
                Some((id, n)) => SchemaAndValue {
                    schema: Some(vs.clone()),
                    value: Value::Struct(Struct {
                        schema: vs,
                        values: vec![Value::Int32(id), Value::String(n.into())],
                    }),
                },
            },
        );
        if let Some(k) = key {
            r.key = SchemaAndValue {
                schema: Some(ks.clone()),
                value: Value::Struct(Struct {
                    schema: ks,
                    values: vec![Value::Int32(k)],
                }),
            };
        }
        r
    }

    #[test]
    fn statements_as_confluents_postgres_dialect() {
        let c = SinkConfig::from_props(&props(&[
            ("connection.url", "jdbc:postgresql://h/x"),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("delete.enabled", "true"),
        ]))
        .unwrap();
        let t = c.table_of("shop.items");
        assert_eq!(c.table_sql(&t), "\"shop\".\"items\"");
        let Op::Write(cols, vals) = c.op_of(&record(Some(1), Some((1, "a"))), 0, 5).unwrap() else {
            panic!()
        };
        assert_eq!(
            cols.iter()
                .map(|c| (c.name.as_str(), c.pk))
                .collect::<Vec<_>>(),
            [("id", true), ("name", false)]
        );
        assert_eq!(vals[1], Value::String("a".into()));
        assert_eq!(
            c.write_sql(&t, &cols),
            "INSERT INTO \"shop\".\"items\" (\"id\",\"name\") VALUES ($1,$2) ON CONFLICT (\"id\") DO UPDATE SET \"name\"=EXCLUDED.\"name\""
        );
        assert_eq!(
            c.create_sql(&t, &cols).unwrap(),
            "CREATE TABLE \"shop\".\"items\" (\n\"id\" INT NOT NULL,\n\"name\" TEXT NULL,\nPRIMARY KEY(\"id\"))"
        );
        assert_eq!(
            c.write_sql_rows(&t, &cols, 2),
            "INSERT INTO \"shop\".\"items\" (\"id\",\"name\") VALUES ($1,$2),($3,$4) ON CONFLICT (\"id\") DO UPDATE SET \"name\"=EXCLUDED.\"name\""
        );
        let Op::Delete(keys, _) = c.op_of(&record(Some(1), None), 0, 6).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.delete_sql(&t, &keys),
            "DELETE FROM \"shop\".\"items\" WHERE \"id\" = $1"
        );
        assert_eq!(
            c.delete_sql_rows(&t, &keys, 3),
            "DELETE FROM \"shop\".\"items\" WHERE (\"id\") IN (($1),($2),($3))"
        );
        let u = SinkConfig {
            insert_mode: InsertMode::Update,
            quote: false,
            ..c.clone()
        };
        assert_eq!(
            u.write_sql(&t, &cols),
            "UPDATE shop.items SET name = $1 WHERE id = $2"
        );
        assert_eq!(u.params(&cols, &vals)[0].1, &Value::String("a".into()));
        // A non-optional column cannot be added to existing rows.
        assert!(c.alter_sql(&t, &cols[..1]).is_err());
        assert_eq!(
            c.alter_sql(&t, &cols[1..]).unwrap(),
            "ALTER TABLE \"shop\".\"items\" \nADD \"name\" TEXT NULL"
        );
        // A tombstone without delete.enabled is an error naming where it is.
        let n = SinkConfig {
            delete_enabled: false,
            ..c
        };
        let e = n
            .op_of(&record(Some(1), None), 3, 9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("partition=3,offset=9"), "{e}");
    }

    #[test]
    fn values_as_postgres_reads_them() {
        assert_eq!(decimal_text(&[0x04, 0xd2], 2), "12.34");
        assert_eq!(decimal_text(&[0xfb, 0x2e], 2), "-12.34");
        assert_eq!(decimal_text(&[0x00], 0), "0");
        assert_eq!(decimal_text(&[0x05], 3), "0.005");
        assert_eq!(
            decimal_text(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0], 0),
            "-2361183241434822606848"
        );
        let t = |s: Schema, v: Value| param_text(&s, &v).unwrap().unwrap();
        assert_eq!(
            t(
                Schema::of(Type::Int32).named(logical::DATE),
                Value::Int32(19782)
            ),
            "2024-02-29"
        );
        assert_eq!(
            t(
                Schema::of(Type::Int64).named(logical::TIMESTAMP),
                Value::Int64(1709210096789)
            ),
            "2024-02-29 12:34:56.789+00:00"
        );
        assert_eq!(
            t(
                Schema::of(Type::Int32).named(logical::TIME),
                Value::Int32(45296789)
            ),
            "12:34:56.789+00:00"
        );
        assert_eq!(
            t(Schema::of(Type::Bytes), Value::Bytes(vec![0, 255])),
            "\\x00ff"
        );
        assert_eq!(
            t(Schema::of(Type::Float64), Value::Float64(f64::NAN)),
            "NaN"
        );
        assert_eq!(
            t(
                Schema::array(Schema::of(Type::String).optional()),
                Value::Array(vec![Value::String("a\"b".into()), Value::Null])
            ),
            "{\"a\\\"b\",NULL}"
        );
        assert!(param_text(&Schema::of(Type::Int32), &Value::String("x".into())).is_err());
        // db.timezone: the wall-clock in the zone, with its offset then.
        let ny = Zone::parse("America/New_York", "db.timezone").unwrap();
        let z = |s: Schema, v: Value| param_text_in(&s, &v, &ny).unwrap().unwrap();
        let ts = Schema::of(Type::Int64).named(logical::TIMESTAMP);
        assert_eq!(
            z(ts.clone(), Value::Int64(1709210096789)),
            "2024-02-29 07:34:56.789-05:00"
        );
        assert_eq!(
            z(ts.clone(), Value::Int64(1_721_044_800_000)),
            "2024-07-15 08:00:00.000-04:00"
        );
        // Before 1883 New York kept local mean time.
        assert_eq!(
            z(ts.clone(), Value::Int64(-3_000_000_000_000)),
            "1874-12-07 13:43:58.000-04:56:02"
        );
        assert_eq!(
            t(ts, Value::Int64(-62_198_755_200_000)),
            "0002-01-01 00:00:00.000+00:00 BC"
        );
        // Midnight UTC is the evening before in New York, as PgJDBC's
        // setDate with the zone's calendar writes it.
        assert_eq!(
            z(
                Schema::of(Type::Int32).named(logical::DATE),
                Value::Int32(19782)
            ),
            "2024-02-28"
        );
        assert_eq!(
            z(
                Schema::of(Type::Int32).named(logical::TIME),
                Value::Int32(45296789)
            ),
            "07:34:56.789-05:00"
        );
        assert!(SinkConfig::from_props(&props(&[
            ("connection.url", "jdbc:postgresql://h/x"),
            ("db.timezone", "Nowhere/Else"),
        ]))
        .is_err());
        assert_eq!(
            sql_type(&Schema::of(Type::Float64)).unwrap(),
            "DOUBLE PRECISION"
        );
        assert!(sql_type(&Schema::map(
            Schema::of(Type::String),
            Schema::of(Type::String)
        ))
        .is_err());
    }
}

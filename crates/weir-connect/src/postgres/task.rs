//! The source task: snapshot, then streaming from the slot (see the
//! module docs of `postgres`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pgoutput::{self, CopyMessage, Datum, Message};
use super::types::{self, Conv, DecimalMode, PgType, TimeMode};
use super::wire::{ident, literal, ConnConfig, PgConn, PgError, SslMode, TlsConfig};
use super::{Filters, DEBEZIUM_VERSION};
use crate::connector::{ConnectRecord, OffsetReader, Props, SourceRecord, SourceTask};
use crate::data::{Schema, SchemaAndValue, Struct, Type, Value};
use crate::error::{ConnectError, Result};
use crate::json::Json;

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// How often the slot hears from us when nothing else prompts it.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Debezium's placeholder for a TOASTed value an update did not carry.
const UNAVAILABLE: &str = "__debezium_unavailable_value";

fn err(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Connector {
        connector: "PostgresConnector".into(),
        message: e.to_string(),
    }
}

impl From<PgError> for ConnectError {
    /// A lost connection is retriable (the task reconnects, as Debezium
    /// restarts on the errors its `PostgresErrorHandler` calls retriable);
    /// anything else fails the task.
    fn from(e: PgError) -> Self {
        if connection_lost(&e) {
            ConnectError::Retriable {
                message: format!("PostgresConnector: {e}"),
            }
        } else {
            err(e)
        }
    }
}

/// Whether `e` means the connection is gone rather than a statement or the
/// stream failing: I/O errors, the server ending the stream, and the
/// SQLSTATEs of a connection exception (class 08) or an operator
/// intervention (57P01..57P03: terminated backend, shutdown, starting up).
fn connection_lost(e: &PgError) -> bool {
    match e {
        PgError::Io { .. } => true,
        PgError::Protocol(m) => m.contains("ended the replication stream"),
        PgError::Server { code, .. } => {
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
        }
        PgError::Tls(_) => false,
    }
}

/// A failure that is not retried any more: reported as the connector's.
fn fatal(e: ConnectError) -> ConnectError {
    match e {
        ConnectError::Retriable { message } => ConnectError::Connector {
            connector: "PostgresConnector".into(),
            message: message
                .strip_prefix("PostgresConnector: ")
                .unwrap_or(&message)
                .to_string(),
        },
        e => e,
    }
}

/// The offset a reconnecting task resumes from: the last one it handed to
/// the runtime.
struct Handed(Option<Json>);

impl OffsetReader for Handed {
    fn offset(&self, _partition: &Json) -> Option<serde_json::Value> {
        serde_json::from_str(&self.0.as_ref()?.to_text()).ok()
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A captured column.
#[derive(Debug)]
struct Col {
    /// Position in the relation's tuples.
    pos: usize,
    conv: Conv,
}

/// A captured table: its topic and schemas.
#[derive(Debug)]
struct Table {
    schema: String,
    name: String,
    topic: String,
    cols: Vec<Col>,
    /// Indexes into `cols` of the primary key, in key order.
    key_cols: Vec<usize>,
    key_schema: Option<Arc<Schema>>,
    value_schema: Arc<Schema>,
    envelope: Arc<Schema>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    #[default]
    Initial,
    NoData,
    InitialOnly,
    Always,
    /// Snapshot when there is no offset, or its position is gone (the
    /// slot was dropped).
    WhenNeeded,
}

#[derive(Debug, Default)]
struct Settings {
    conn: Option<ConnConfig>,
    tls: TlsConfig,
    prefix: String,
    slot: String,
    publication: String,
    autocreate: String,
    mode: Mode,
    heartbeat: Option<Duration>,
    heartbeat_topic: String,
    decimal: DecimalMode,
    time: TimeMode,
    tombstones: bool,
    skipped: Vec<String>,
    batch: usize,
    filters: Filters,
    /// `errors.max.retries`: reconnections after a lost connection
    /// (negative: no limit).
    max_retries: i64,
    /// `retriable.restart.connector.wait.ms`.
    retry_wait: Duration,
}

/// The snapshot in progress.
struct Snapshot {
    tables: Vec<(String, String)>,
    idx: usize,
    cursor_open: bool,
    table: Option<Arc<Table>>,
    /// The row read ahead, to know which row is a table's last, and
    /// whether it is the table's first.
    pending: Option<(Vec<Option<String>>, bool)>,
    first_done: bool,
    lsn: u64,
    txid: i64,
    ts_us: i64,
    /// Where streaming starts.
    start: u64,
    /// Whether a record carried the completed snapshot's offset (not when
    /// the last table is empty).
    completion_recorded: bool,
}

struct Txn {
    xid: u32,
    commit_us: i64,
    skip: bool,
}

/// Stored streaming offset: what a restart skips.
#[derive(Debug, Clone, Copy)]
struct Resume {
    lsn_commit: Option<u64>,
    lsn: u64,
    xid: i64,
}

#[derive(Default)]
pub(super) struct PostgresTask {
    s: Settings,
    query: Option<PgConn>,
    repl: Option<PgConn>,
    streaming: bool,
    idle: bool,
    snapshot: Option<Snapshot>,
    types: HashMap<u32, PgType>,
    rels: HashMap<u32, Option<Arc<Table>>>,
    txn: Option<Txn>,
    last_commit: Option<u64>,
    resume: Option<Resume>,
    /// Everything up to here has been polled (whole transactions).
    polled_upto: u64,
    /// Kafka has acknowledged everything up to here.
    confirmed: u64,
    sent_confirmed: u64,
    outstanding: bool,
    last_status: Option<Instant>,
    last_heartbeat: Option<Instant>,
    last_offset: Option<Json>,
    /// The offset of the last record handed to the runtime (or the stored
    /// one): where a reconnection resumes.
    handed: Option<Json>,
    /// After a lost connection: when to reconnect.
    reconnect_at: Option<Instant>,
    retries: i64,
    /// An offset for the runtime to commit without a record.
    unrecorded: Option<Json>,
    /// A snapshot replacing a completed one, held back until its marker
    /// (`unrecorded`) is committed.
    deferred: Option<Vec<(String, String)>>,
}

impl PostgresTask {
    fn partition(&self) -> Json {
        Json::obj([("server", Json::str(&self.s.prefix))])
    }

    fn load_types(&mut self) -> Result<()> {
        let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
        let r = q.query_one(
            "SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype, \
             coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) \
             FROM pg_enum e WHERE e.enumtypid = t.oid), '') FROM pg_type t",
        )?;
        self.types = r
            .rows
            .into_iter()
            .filter_map(|row| {
                let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
                let labels = get(5);
                Some((
                    get(0).parse().ok()?,
                    PgType {
                        name: get(1),
                        typtype: get(2).bytes().next().unwrap_or(b'b'),
                        elem: get(3).parse().unwrap_or(0),
                        base: get(4).parse().unwrap_or(0),
                        labels: if labels.is_empty() {
                            Vec::new()
                        } else {
                            labels.split(',').map(str::to_string).collect()
                        },
                    },
                ))
            })
            .collect();
        Ok(())
    }

    /// Builds a table's description from its columns as the stream or a
    /// query names them (name, type, modifier), with the catalog's
    /// nullability, defaults and primary key.
    fn build_table(
        &mut self,
        schema: &str,
        name: &str,
        columns: &[(String, u32, i32)],
    ) -> Result<Arc<Table>> {
        let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
        let rel = format!("{}.{}", ident(schema), ident(name));
        let cat = q.query_one(&format!(
            "SELECT a.attname, a.attnotnull, pg_get_expr(d.adbin, d.adrelid), \
             (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i \
              WHERE i.indrelid = a.attrelid AND i.indisprimary) \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = {}::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            literal(&rel)
        ))?;
        let mut meta: HashMap<String, (bool, Option<String>, Option<i64>)> = HashMap::new();
        for row in cat.rows {
            let get = |i: usize| row.get(i).cloned().flatten();
            meta.insert(
                get(0).unwrap_or_default(),
                (
                    get(1).as_deref() == Some("t"),
                    get(2),
                    get(3).and_then(|p| p.parse().ok()),
                ),
            );
        }
        let topic = format!("{}.{schema}.{name}", self.s.prefix);
        let mut cols = Vec::new();
        let mut fields = Vec::new();
        let mut keys: Vec<(i64, usize)> = Vec::new();
        for (pos, (cname, oid, typmod)) in columns.iter().enumerate() {
            if !self.s.filters.column(schema, name, cname) {
                continue;
            }
            let Some((mut sch, conv)) =
                types::column_schema(*oid, *typmod, &self.types, self.s.decimal, self.s.time)
            else {
                continue;
            };
            let (not_null, default, key_pos) = meta.get(cname).cloned().unwrap_or_default();
            sch.optional = !not_null;
            if let Some(d) = default
                .as_deref()
                .and_then(|d| types::default_value(&conv, d))
            {
                sch.default = Some(d);
            }
            if let Some(k) = key_pos {
                keys.push((k, cols.len()));
            }
            fields.push((cname.clone(), sch));
            cols.push(Col { pos, conv });
        }
        keys.sort();
        let key_cols: Vec<usize> = keys.into_iter().map(|(_, i)| i).collect();
        let key_schema = (!key_cols.is_empty()).then(|| {
            Arc::new(
                Schema::structure(
                    key_cols
                        .iter()
                        .map(|&i| {
                            let (n, s) = &fields[i];
                            (n.clone(), s.clone())
                        })
                        .collect(),
                )
                .named(&format!("{topic}.Key")),
            )
        });
        let value_schema = Schema::structure(fields).named(&format!("{topic}.Value"));
        let row_schema = Arc::new(value_schema.clone().optional());
        let envelope = {
            let mut e = Schema::structure(vec![
                ("before".into(), value_schema.clone().optional()),
                ("after".into(), value_schema.clone().optional()),
                ("source".into(), source_schema()),
                ("transaction".into(), transaction_schema()),
                ("op".into(), Schema::of(Type::String)),
                ("ts_ms".into(), Schema::of(Type::Int64).optional()),
                ("ts_us".into(), Schema::of(Type::Int64).optional()),
                ("ts_ns".into(), Schema::of(Type::Int64).optional()),
            ])
            .named(&format!("{topic}.Envelope"));
            e.version = Some(2);
            // The row structs carry `row_schema`: the same Arc lets the
            // converter see they match without comparing the schemas.
            e.fields[0].schema = row_schema.clone();
            e.fields[1].schema = row_schema.clone();
            e
        };
        Ok(Arc::new(Table {
            schema: schema.to_string(),
            name: name.to_string(),
            topic,
            cols,
            key_cols,
            key_schema,
            value_schema: row_schema,
            envelope: Arc::new(envelope),
        }))
    }

    fn row_struct(&self, t: &Table, row: &[Datum]) -> Result<Struct> {
        let mut s = Struct::new(t.value_schema.clone());
        for (i, c) in t.cols.iter().enumerate() {
            s.values[i] = match row.get(c.pos) {
                None | Some(Datum::Null) => t.value_schema.fields[i]
                    .schema
                    .default
                    .clone()
                    .filter(|_| !t.value_schema.fields[i].schema.optional)
                    .unwrap_or(Value::Null),
                Some(Datum::Unchanged) => match c.conv {
                    Conv::Text => Value::String(UNAVAILABLE.into()),
                    Conv::Bytea => Value::Bytes(UNAVAILABLE.as_bytes().to_vec()),
                    _ => Value::Null,
                },
                Some(Datum::Text(text)) => match types::convert(&c.conv, text) {
                    // A VariableScaleDecimal: its struct carries the field's
                    // own schema (the converter compares them).
                    Ok(Value::Struct(mut st)) => {
                        st.schema = t.value_schema.fields[i].schema.clone();
                        Value::Struct(st)
                    }
                    Ok(v) => v,
                    Err(e) => {
                        return Err(ConnectError::data(format!("{}.{}: {e}", t.schema, t.name)))
                    }
                },
                Some(Datum::Binary(_)) => {
                    return Err(ConnectError::data("binary tuple data is not requested"))
                }
            };
        }
        Ok(s)
    }

    fn key_of(&self, t: &Table, row: &Struct) -> SchemaAndValue {
        match &t.key_schema {
            None => SchemaAndValue::null(),
            Some(ks) => {
                let mut k = Struct::new(ks.clone());
                for (j, &i) in t.key_cols.iter().enumerate() {
                    k.values[j] = row.values[i].clone();
                }
                SchemaAndValue {
                    schema: Some(ks.clone()),
                    value: Value::Struct(k),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn source(
        &self,
        t: &Table,
        ts_us: i64,
        snapshot: &str,
        sequence: String,
        txid: i64,
        lsn: u64,
    ) -> Struct {
        // The envelope's own `source` schema, not one built per record.
        let mut s = Struct::new(t.envelope.fields[2].schema.clone());
        s.values = vec![
            Value::String(DEBEZIUM_VERSION.into()),
            Value::String("postgresql".into()),
            Value::String(self.s.prefix.clone()),
            Value::Int64(ts_us.div_euclid(1000)),
            Value::String(snapshot.into()),
            Value::String(
                self.s
                    .conn
                    .as_ref()
                    .map(|c| c.dbname.clone())
                    .unwrap_or_default(),
            ),
            Value::String(sequence),
            Value::Int64(ts_us),
            Value::Int64(ts_us.saturating_mul(1000)),
            Value::String(t.schema.clone()),
            Value::String(t.name.clone()),
            Value::Int64(txid),
            Value::Int64(lsn as i64),
            Value::Null,
            Value::Null,
            Value::Null,
        ];
        s
    }

    fn envelope(
        &self,
        t: &Table,
        op: &str,
        before: Option<Struct>,
        after: Option<Struct>,
        source: Struct,
    ) -> SchemaAndValue {
        let mut e = Struct::new(t.envelope.clone());
        let now = now_us();
        e.values = vec![
            before.map(Value::Struct).unwrap_or(Value::Null),
            after.map(Value::Struct).unwrap_or(Value::Null),
            Value::Struct(source),
            Value::Null,
            Value::String(op.into()),
            Value::Int64(now / 1000),
            Value::Int64(now),
            Value::Int64(now.saturating_mul(1000)),
        ];
        SchemaAndValue {
            schema: Some(t.envelope.clone()),
            value: Value::Struct(e),
        }
    }

    fn record(
        &self,
        topic: &str,
        key: SchemaAndValue,
        value: SchemaAndValue,
        offset: Json,
    ) -> SourceRecord {
        let mut r = ConnectRecord::new(topic, value);
        r.key = key;
        SourceRecord {
            source_partition: self.partition(),
            source_offset: offset,
            record: r,
        }
    }

    // --- start -----------------------------------------------------------

    fn setup(&mut self, offsets: &dyn OffsetReader) -> Result<()> {
        let cfg = self
            .s
            .conn
            .clone()
            .ok_or_else(|| err("no connection settings"))?;
        let tls = self.s.tls.clone();
        let mut q = PgConn::connect_tls(&cfg, &tls, false).map_err(|e| {
            let message = format!(
                "Error while connecting to PostgreSQL at {}:{} as {} (database {}): {e}",
                cfg.host, cfg.port, cfg.user, cfg.dbname
            );
            if connection_lost(&e) {
                ConnectError::Retriable {
                    message: format!("PostgresConnector: {message}"),
                }
            } else {
                err(message)
            }
        })?;
        let wal = q.query_one("SHOW wal_level")?;
        if wal
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .as_deref()
            != Some("logical")
        {
            return Err(err("Postgres server wal_level property must be 'logical'"));
        }
        self.query = Some(q);
        self.load_types()?;
        let tables = self.captured_tables()?;
        self.ensure_publication(&tables)?;
        let stored = offsets.offset(&self.partition());
        let completed = stored.as_ref().is_some_and(|o| {
            o.get("snapshot_completed").and_then(|v| v.as_bool()) != Some(false)
                && o.get("lsn").is_some()
        });
        if let Some(o) = &stored {
            if o.get("lsn_proc").is_some() {
                self.resume = Some(Resume {
                    lsn_commit: o.get("lsn_commit").and_then(|v| v.as_u64()),
                    lsn: o.get("lsn").and_then(|v| v.as_u64()).unwrap_or(0),
                    xid: o.get("txId").and_then(|v| v.as_i64()).unwrap_or(-1),
                });
            }
            self.last_commit = o.get("lsn_commit").and_then(|v| v.as_u64());
            self.last_offset = Some(Json::from_serde(o));
        }
        if self.s.mode == Mode::InitialOnly && completed {
            self.idle = true;
            return Ok(());
        }
        let slot_exists = self.slot_exists()?;
        // Streaming resumes from the slot: without it the changes since the
        // stored offset are gone. Debezium logs this and streams on from a
        // new slot; failing instead keeps the loss from passing unnoticed.
        let position_lost = completed && !slot_exists;
        let snapshot = match self.s.mode {
            Mode::Always => true,
            Mode::Initial | Mode::InitialOnly => !completed,
            Mode::NoData => false,
            Mode::WhenNeeded => !completed || position_lost,
        };
        if position_lost && !snapshot {
            let lsn = stored
                .as_ref()
                .and_then(|o| o.get("lsn_commit").or_else(|| o.get("lsn")))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            return Err(err(format!(
                "The connector is trying to read change stream starting at LSN {}, but this is no \
                 longer available on the server: the replication slot '{}' does not exist. \
                 Reconfigure the connector to use a snapshot when needed \
                 (snapshot.mode=when_needed) if you want to recover.",
                pgoutput::lsn_text(lsn),
                self.s.slot
            )));
        }
        if snapshot && completed {
            // The stored offsets say the snapshot completed: a task started
            // after this one created the slot, but before its snapshot
            // committed anything, would take that slot for its own and
            // stream on, losing what happened while there was no slot.
            // Record first that a snapshot is under way (as Debezium's
            // offsets do during one), so such a task snapshots again.
            self.unrecorded = Some(Json::obj([
                ("last_snapshot_record", Json::Bool(false)),
                ("ts_usec", Json::Int(now_us())),
                ("snapshot", Json::str("INITIAL")),
                ("snapshot_completed", Json::Bool(false)),
            ]));
            self.deferred = Some(tables);
            return Ok(());
        }
        if snapshot {
            return self.begin_snapshot(tables, slot_exists);
        }
        let mut repl = PgConn::connect_tls(&cfg, &tls, true)?;
        if !slot_exists {
            repl.query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                ident(&self.s.slot)
            ))?;
        }
        let start = self.resume.map(|r| r.lsn_commit.unwrap_or(0)).unwrap_or(0);
        self.repl = Some(repl);
        self.start_streaming(start)
    }

    fn slot_exists(&mut self) -> Result<bool> {
        let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
        Ok(!q
            .query_one(&format!(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = {}",
                literal(&self.s.slot)
            ))?
            .rows
            .is_empty())
    }

    /// Creates the slot with an exported snapshot (replacing `slot_exists`)
    /// and opens the snapshot's transaction at it.
    fn begin_snapshot(&mut self, tables: Vec<(String, String)>, slot_exists: bool) -> Result<()> {
        let cfg = self
            .s
            .conn
            .clone()
            .ok_or_else(|| err("no connection settings"))?;
        let mut repl = PgConn::connect_tls(&cfg, &self.s.tls, true)?;
        if slot_exists {
            // A snapshot needs the slot's exported snapshot to start
            // streaming exactly where it ends.
            repl.query(&format!(
                "DROP_REPLICATION_SLOT {} WAIT",
                ident(&self.s.slot)
            ))?;
        }
        self.resume = None;
        self.last_commit = None;
        let r = repl.query_one(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
            ident(&self.s.slot)
        ))?;
        let row = r
            .rows
            .first()
            .ok_or_else(|| err("CREATE_REPLICATION_SLOT returned nothing"))?;
        let lsn = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|l| pgoutput::parse_lsn(&l))
            .ok_or_else(|| err("no consistent point"))?;
        let name = row
            .get(2)
            .cloned()
            .flatten()
            .ok_or_else(|| err("no exported snapshot"))?;
        let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
        q.query("BEGIN ISOLATION LEVEL REPEATABLE READ")?;
        q.query(&format!("SET TRANSACTION SNAPSHOT {}", literal(&name)))?;
        let txid = q
            .query_one("SELECT txid_current()")?
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        self.snapshot = Some(Snapshot {
            tables,
            idx: 0,
            cursor_open: false,
            table: None,
            pending: None,
            first_done: false,
            lsn,
            txid,
            ts_us: now_us(),
            start: lsn,
            completion_recorded: false,
        });
        self.repl = Some(repl);
        Ok(())
    }

    fn captured_tables(&mut self) -> Result<Vec<(String, String)>> {
        let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
        let r = q.query_one(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND NOT c.relispartition ORDER BY 1, 2",
        )?;
        Ok(r.rows
            .into_iter()
            .filter_map(|row| Some((row.first()?.clone()?, row.get(1)?.clone()?)))
            .filter(|(s, t)| self.s.filters.table(s, t))
            .collect())
    }

    fn ensure_publication(&mut self, tables: &[(String, String)]) -> Result<()> {
        let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
        let exists = !q
            .query_one(&format!(
                "SELECT 1 FROM pg_publication WHERE pubname = {}",
                literal(&self.s.publication)
            ))?
            .rows
            .is_empty();
        let list = tables
            .iter()
            .map(|(s, t)| format!("{}.{}", ident(s), ident(t)))
            .collect::<Vec<_>>()
            .join(", ");
        let p = ident(&self.s.publication);
        match self.s.autocreate.as_str() {
            "disabled" if !exists => Err(err(format!(
                "Publication '{}' does not exist and publication.autocreate.mode is disabled",
                self.s.publication
            ))),
            "all_tables" if !exists => {
                q.query(&format!("CREATE PUBLICATION {p} FOR ALL TABLES"))?;
                Ok(())
            }
            "filtered" if tables.is_empty() => {
                Err(err("No table filters found for filtered publication"))
            }
            "filtered" if exists => {
                q.query(&format!("ALTER PUBLICATION {p} SET TABLE {list}"))?;
                Ok(())
            }
            "filtered" => {
                q.query(&format!("CREATE PUBLICATION {p} FOR TABLE {list}"))?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn start_streaming(&mut self, from: u64) -> Result<()> {
        let repl = self.repl.as_mut().ok_or_else(|| err("not connected"))?;
        repl.start_copy_both(&format!(
            "START_REPLICATION SLOT {} LOGICAL {} (\"proto_version\" '1', \"publication_names\" {})",
            ident(&self.s.slot),
            pgoutput::lsn_text(from),
            literal(&self.s.publication)
        ))
        .map_err(|e| err(format!("Failed to start replication stream on slot '{}': {e}", self.s.slot)))?;
        self.streaming = true;
        self.polled_upto = from;
        self.confirmed = from;
        self.sent_confirmed = from;
        Ok(())
    }

    // --- snapshot --------------------------------------------------------

    fn poll_snapshot(&mut self) -> Result<Vec<SourceRecord>> {
        let mut out = Vec::new();
        let Some(mut snap) = self.snapshot.take() else {
            return Ok(out);
        };
        let result = self.snapshot_batch(&mut snap, &mut out);
        let done = snap.idx >= snap.tables.len();
        let start = snap.start;
        let recorded = snap.completion_recorded;
        let completion = Self::snapshot_offset(&snap, true);
        if !done {
            self.snapshot = Some(snap);
        }
        result?;
        if done {
            let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
            q.query("COMMIT")?;
            if !recorded {
                // The last table is empty (or all are): no record carried
                // the completion, so it is committed on its own.
                self.unrecorded = Some(completion.clone());
            }
            // What heartbeats carry until a change does.
            self.last_offset = Some(completion);
            if self.s.mode == Mode::InitialOnly {
                self.idle = true;
                if let Some(r) = self.repl.take() {
                    r.close();
                }
            } else {
                self.start_streaming(start)?;
            }
        }
        Ok(out)
    }

    fn snapshot_batch(&mut self, snap: &mut Snapshot, out: &mut Vec<SourceRecord>) -> Result<()> {
        while out.len() < self.s.batch && snap.idx < snap.tables.len() {
            let (schema, name) = snap.tables[snap.idx].clone();
            if !snap.cursor_open {
                let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
                let desc = q.query_one(&format!(
                    "SELECT * FROM {}.{} LIMIT 0",
                    ident(&schema),
                    ident(&name)
                ))?;
                let cols: Vec<_> = desc
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.type_oid, c.type_modifier))
                    .collect();
                snap.table = Some(self.build_table(&schema, &name, &cols)?);
                let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
                q.query(&format!(
                    "DECLARE weir_snapshot NO SCROLL CURSOR FOR SELECT * FROM {}.{}",
                    ident(&schema),
                    ident(&name)
                ))?;
                snap.cursor_open = true;
                snap.pending = None;
                snap.first_done = false;
            }
            let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
            let rows = q
                .query_one(&format!("FETCH {} FROM weir_snapshot", self.s.batch))?
                .rows;
            let table = snap.table.clone().ok_or_else(|| err("no table"))?;
            let exhausted = rows.is_empty();
            for row in rows {
                let first = !snap.first_done;
                snap.first_done = true;
                if let Some((prev, prev_first)) = snap.pending.replace((row, first)) {
                    out.push(self.snapshot_record(snap, &table, prev, prev_first, false)?);
                }
            }
            if exhausted {
                if let Some((prev, first)) = snap.pending.take() {
                    out.push(self.snapshot_record(snap, &table, prev, first, true)?);
                    snap.completion_recorded |= snap.idx + 1 == snap.tables.len();
                }
                let q = self.query.as_mut().ok_or_else(|| err("not connected"))?;
                q.query("CLOSE weir_snapshot")?;
                snap.cursor_open = false;
                snap.idx += 1;
            }
        }
        Ok(())
    }

    fn snapshot_record(
        &self,
        snap: &Snapshot,
        t: &Table,
        row: Vec<Option<String>>,
        first_in_table: bool,
        last_in_table: bool,
    ) -> Result<SourceRecord> {
        let datums: Vec<Datum> = row
            .into_iter()
            .map(|v| v.map(Datum::Text).unwrap_or(Datum::Null))
            .collect();
        let after = self.row_struct(t, &datums)?;
        let first_table = snap.idx == 0;
        let last_table = snap.idx + 1 == snap.tables.len();
        let marker = if last_in_table && last_table {
            "last"
        } else if first_in_table && first_table {
            "first"
        } else if last_in_table {
            "last_in_data_collection"
        } else if first_in_table {
            "first_in_data_collection"
        } else {
            "true"
        };
        let completed = last_in_table && last_table;
        let source = self.source(
            t,
            snap.ts_us,
            marker,
            format!("[null,\"{}\"]", snap.lsn),
            snap.txid,
            snap.lsn,
        );
        let key = self.key_of(t, &after);
        let value = self.envelope(t, "r", None, Some(after), source);
        let offset = Self::snapshot_offset(snap, completed);
        Ok(self.record(&t.topic, key, value, offset))
    }

    fn snapshot_offset(snap: &Snapshot, completed: bool) -> Json {
        Json::obj([
            ("last_snapshot_record", Json::Bool(completed)),
            ("lsn", Json::Int(snap.lsn as i64)),
            ("txId", Json::Int(snap.txid)),
            ("ts_usec", Json::Int(snap.ts_us)),
            ("snapshot", Json::str("INITIAL")),
            ("snapshot_completed", Json::Bool(completed)),
        ])
    }

    // --- streaming -------------------------------------------------------

    fn send_status(&mut self, reply: bool) -> Result<()> {
        let lsn = self.confirmed;
        if let Some(repl) = self.repl.as_mut() {
            let now = now_us() - PG_EPOCH_US;
            repl.send_copy(&pgoutput::status_update(lsn, now, reply))?;
            self.sent_confirmed = lsn;
            self.last_status = Some(Instant::now());
        }
        Ok(())
    }

    fn table_for(&mut self, rel: u32) -> Option<Arc<Table>> {
        self.rels.get(&rel).cloned().flatten()
    }

    fn poll_stream(&mut self) -> Result<Vec<SourceRecord>> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(500);
        while out.len() < self.s.batch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let repl = self.repl.as_mut().ok_or_else(|| err("not connected"))?;
            let Some(data) = repl.read_copy(left.min(Duration::from_millis(100)))? else {
                if !out.is_empty() {
                    break;
                }
                continue;
            };
            match pgoutput::decode_copy(&data).map_err(err)? {
                CopyMessage::Keepalive { wal_end, reply } => {
                    if self.txn.is_none() && !self.outstanding && out.is_empty() {
                        // Every transaction before this position was
                        // received and acknowledged.
                        self.polled_upto = self.polled_upto.max(wal_end);
                        self.confirmed = self.confirmed.max(wal_end);
                    }
                    if reply {
                        self.send_status(false)?;
                    }
                }
                CopyMessage::XLogData {
                    wal_start, data, ..
                } => {
                    let msg = pgoutput::decode(&data).map_err(err)?;
                    self.handle(wal_start, msg, &mut out)?;
                }
            }
        }
        if self
            .last_status
            .is_none_or(|t| t.elapsed() >= STATUS_INTERVAL)
        {
            self.send_status(false)?;
        }
        if out.is_empty()
            && !self.outstanding
            && self.confirmed < self.polled_upto
            && self.txn.is_none()
        {
            self.confirmed = self.polled_upto;
        }
        if let (Some(every), true) = (self.s.heartbeat, out.is_empty()) {
            if self.last_heartbeat.is_none_or(|t| t.elapsed() >= every) {
                self.last_heartbeat = Some(Instant::now());
                if let Some(off) = self.last_offset.clone() {
                    out.push(self.heartbeat(off));
                }
            }
        }
        if !out.is_empty() {
            self.outstanding = true;
        }
        Ok(out)
    }

    fn heartbeat(&self, offset: Json) -> SourceRecord {
        let ks = Arc::new(
            Schema::structure(vec![("serverName".into(), Schema::of(Type::String))])
                .named("io.debezium.connector.common.ServerNameKey"),
        );
        let vs = Arc::new(
            Schema::structure(vec![("ts_ms".into(), Schema::of(Type::Int64))])
                .named("io.debezium.connector.common.Heartbeat"),
        );
        let mut k = Struct::new(ks.clone());
        k.values = vec![Value::String(self.s.prefix.clone())];
        let mut v = Struct::new(vs.clone());
        v.values = vec![Value::Int64(crate::now_ms())];
        self.record(
            &self.s.heartbeat_topic,
            SchemaAndValue {
                schema: Some(ks),
                value: Value::Struct(k),
            },
            SchemaAndValue {
                schema: Some(vs),
                value: Value::Struct(v),
            },
            offset,
        )
    }

    fn handle(&mut self, lsn: u64, msg: Message, out: &mut Vec<SourceRecord>) -> Result<()> {
        match msg {
            Message::Begin {
                final_lsn,
                commit_ts,
                xid,
            } => {
                let skip = self
                    .resume
                    .and_then(|r| r.lsn_commit)
                    .is_some_and(|c| final_lsn < c);
                self.txn = Some(Txn {
                    xid,
                    commit_us: commit_ts + PG_EPOCH_US,
                    skip,
                });
            }
            Message::Commit { end_lsn, .. } => {
                self.txn = None;
                self.last_commit = Some(end_lsn);
                self.polled_upto = self.polled_upto.max(end_lsn);
            }
            Message::Relation(rel) => {
                let table = if self.s.filters.table(&rel.namespace, &rel.name) {
                    let cols: Vec<_> = rel
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), c.type_oid, c.type_modifier))
                        .collect();
                    Some(self.build_table(&rel.namespace, &rel.name, &cols)?)
                } else {
                    None
                };
                self.rels.insert(rel.oid, table);
            }
            Message::Type { .. } => self.load_types()?,
            Message::Insert { rel, new } => {
                if let Some(t) = self.table_for(rel) {
                    if self.skip_change(lsn) || self.skipped("c") {
                        return Ok(());
                    }
                    let after = self.row_struct(&t, &new)?;
                    let key = self.key_of(&t, &after);
                    self.change(&t, lsn, "c", "INSERT", key, None, Some(after), out);
                }
            }
            Message::Update { rel, old, new } => {
                if let Some(t) = self.table_for(rel) {
                    if self.skip_change(lsn) || self.skipped("u") {
                        return Ok(());
                    }
                    let after = self.row_struct(&t, &new)?;
                    let before = match &old {
                        Some(o) => Some(self.row_struct(&t, o)?),
                        None => None,
                    };
                    let key = self.key_of(&t, &after);
                    // A changed primary key: Debezium writes a delete (and
                    // tombstone) for the old key, then a create.
                    if let Some(b) = before.as_ref() {
                        let old_key = self.key_of(&t, b);
                        if t.key_schema.is_some() && old_key != key {
                            self.change(
                                &t,
                                lsn,
                                "d",
                                "UPDATE",
                                old_key.clone(),
                                before.clone(),
                                None,
                                out,
                            );
                            if self.s.tombstones {
                                self.tombstone(&t, old_key, out);
                            }
                            self.change(&t, lsn, "c", "UPDATE", key, None, Some(after), out);
                            return Ok(());
                        }
                    }
                    // pgoutput sends the old row only under REPLICA
                    // IDENTITY FULL (or a changed key, handled above).
                    self.change(&t, lsn, "u", "UPDATE", key, before, Some(after), out);
                }
            }
            Message::Delete { rel, old } => {
                if let Some(t) = self.table_for(rel) {
                    if self.skip_change(lsn) || self.skipped("d") {
                        return Ok(());
                    }
                    let before = self.row_struct(&t, &old)?;
                    let key = self.key_of(&t, &before);
                    self.change(&t, lsn, "d", "DELETE", key.clone(), Some(before), None, out);
                    if self.s.tombstones && t.key_schema.is_some() {
                        self.tombstone(&t, key, out);
                    }
                }
            }
            Message::Truncate { rels, .. } => {
                if self.skip_change(lsn) || self.skipped("t") {
                    return Ok(());
                }
                for rel in rels {
                    if let Some(t) = self.table_for(rel) {
                        self.change(
                            &t,
                            lsn,
                            "t",
                            "TRUNCATE",
                            SchemaAndValue::null(),
                            None,
                            None,
                            out,
                        );
                    }
                }
            }
            Message::Origin | Message::Other(_) => {}
        }
        Ok(())
    }

    fn skipped(&self, op: &str) -> bool {
        self.s.skipped.iter().any(|s| s == op)
    }

    /// Whether a change at `lsn` was written before a restart.
    fn skip_change(&self, lsn: u64) -> bool {
        let Some(txn) = &self.txn else {
            return false;
        };
        if txn.skip {
            return true;
        }
        match self.resume {
            Some(r) if i64::from(txn.xid) == r.xid => lsn <= r.lsn,
            _ => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        t: &Table,
        lsn: u64,
        op: &str,
        kind: &str,
        key: SchemaAndValue,
        before: Option<Struct>,
        after: Option<Struct>,
        out: &mut Vec<SourceRecord>,
    ) {
        let (xid, commit_us) = self
            .txn
            .as_ref()
            .map(|t| (i64::from(t.xid), t.commit_us))
            .unwrap_or((0, now_us()));
        let commit_text = self
            .last_commit
            .map(|c| format!("\"{c}\""))
            .unwrap_or_else(|| "null".into());
        let source = self.source(
            t,
            commit_us,
            "false",
            format!("[{commit_text},\"{lsn}\"]"),
            xid,
            lsn,
        );
        let value = self.envelope(t, op, before, after, source);
        let mut offset = vec![
            ("lsn_proc".to_string(), Json::Int(lsn as i64)),
            ("messageType".to_string(), Json::str(kind)),
        ];
        if let Some(c) = self.last_commit {
            offset.push(("lsn_commit".into(), Json::Int(c as i64)));
        }
        offset.extend([
            ("lsn".to_string(), Json::Int(lsn as i64)),
            ("txId".to_string(), Json::Int(xid)),
            ("ts_usec".to_string(), Json::Int(commit_us)),
        ]);
        let offset = Json::Obj(offset);
        self.last_offset = Some(offset.clone());
        out.push(self.record(&t.topic, key, value, offset));
    }

    fn tombstone(&self, t: &Table, key: SchemaAndValue, out: &mut Vec<SourceRecord>) {
        let offset = self.last_offset.clone().unwrap_or(Json::Null);
        out.push(self.record(&t.topic, key, SchemaAndValue::null(), offset));
    }
}

/// Debezium's `io.debezium.connector.postgresql.Source` schema.
fn source_schema() -> Schema {
    let s = |opt: bool| {
        let x = Schema::of(Type::String);
        if opt {
            x.optional()
        } else {
            x
        }
    };
    let l = |opt: bool| {
        let x = Schema::of(Type::Int64);
        if opt {
            x.optional()
        } else {
            x
        }
    };
    let mut snapshot = Schema::of(Type::String)
        .optional()
        .named("io.debezium.data.Enum");
    snapshot.version = Some(1);
    snapshot.parameters = Some(
        [(
            "allowed".to_string(),
            "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"
                .to_string(),
        )]
        .into(),
    );
    snapshot.default = Some(Value::String("false".into()));
    let mut schema = Schema::structure(vec![
        ("version".into(), s(false)),
        ("connector".into(), s(false)),
        ("name".into(), s(false)),
        ("ts_ms".into(), l(false)),
        ("snapshot".into(), snapshot),
        ("db".into(), s(false)),
        ("sequence".into(), s(true)),
        ("ts_us".into(), l(true)),
        ("ts_ns".into(), l(true)),
        ("schema".into(), s(false)),
        ("table".into(), s(false)),
        ("txId".into(), l(true)),
        ("lsn".into(), l(true)),
        ("xmin".into(), l(true)),
        ("origin".into(), s(true)),
        ("origin_lsn".into(), l(true)),
    ])
    .named("io.debezium.connector.postgresql.Source");
    schema.version = Some(1);
    schema
}

fn transaction_schema() -> Schema {
    let mut t = Schema::structure(vec![
        ("id".into(), Schema::of(Type::String)),
        ("total_order".into(), Schema::of(Type::Int64)),
        ("data_collection_order".into(), Schema::of(Type::Int64)),
    ])
    .optional()
    .named("event.block");
    t.version = Some(1);
    t
}

impl SourceTask for PostgresTask {
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<()> {
        let get = |k: &str, d: &str| {
            config
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_string())
        };
        let port = get("database.port", "5432").parse().map_err(|_| {
            ConnectError::bad_config("Invalid value for configuration database.port")
        })?;
        let sslmode = get("database.sslmode", "prefer");
        let path = |k: &str| Some(get(k, "")).filter(|v| !v.is_empty()).map(Into::into);
        let tls = TlsConfig {
            mode: SslMode::parse(&sslmode).ok_or_else(|| {
                ConnectError::bad_config(format!(
                    "Invalid value {sslmode} for configuration database.sslmode"
                ))
            })?,
            rootcert: path("database.sslrootcert"),
            cert: path("database.sslcert"),
            key: path("database.sslkey"),
        };
        // The files are read now, so a bad one fails the start, named.
        tls.client_config().map_err(|e| {
            ConnectError::bad_config(format!(
                "Invalid TLS settings (database.sslmode, database.sslrootcert, database.sslcert, database.sslkey): {e}"
            ))
        })?;
        let prefix = get("topic.prefix", "");
        self.s = Settings {
            tls,
            conn: Some(ConnConfig {
                host: get("database.hostname", "localhost"),
                port,
                user: get("database.user", "postgres"),
                password: config.get("database.password").cloned().unwrap_or_default(),
                dbname: get("database.dbname", "postgres"),
            }),
            slot: get("slot.name", "debezium"),
            publication: get("publication.name", "dbz_publication"),
            autocreate: get("publication.autocreate.mode", "all_tables"),
            mode: match get("snapshot.mode", "initial").as_str() {
                "initial" => Mode::Initial,
                "never" | "no_data" => Mode::NoData,
                "initial_only" => Mode::InitialOnly,
                "always" => Mode::Always,
                "when_needed" => Mode::WhenNeeded,
                other => {
                    return Err(ConnectError::bad_config(format!(
                        "Invalid value {other} for configuration snapshot.mode"
                    )))
                }
            },
            heartbeat: match crate::config::prop_i64(config, "heartbeat.interval.ms", 0)? {
                n if n > 0 => Some(Duration::from_millis(n as u64)),
                _ => None,
            },
            heartbeat_topic: format!(
                "{}.{prefix}",
                get("topic.heartbeat.prefix", "__debezium-heartbeat")
            ),
            decimal: match get("decimal.handling.mode", "precise").as_str() {
                "double" => DecimalMode::Double,
                "string" => DecimalMode::String,
                _ => DecimalMode::Precise,
            },
            time: match get("time.precision.mode", "adaptive").as_str() {
                "connect" => TimeMode::Connect,
                "adaptive_time_microseconds" => TimeMode::AdaptiveMicros,
                _ => TimeMode::Adaptive,
            },
            tombstones: get("tombstones.on.delete", "true").eq_ignore_ascii_case("true"),
            skipped: match config.get("skipped.operations") {
                None => vec!["t".into()],
                Some(_) => crate::config::list(config, "skipped.operations")
                    .into_iter()
                    .filter(|s| s != "none")
                    .collect(),
            },
            batch: crate::config::prop_i64(config, "max.batch.size", 2048)?.max(1) as usize,
            filters: Filters::from_props(config)?,
            max_retries: crate::config::prop_i64(config, "errors.max.retries", -1)?,
            retry_wait: Duration::from_millis(
                crate::config::prop_i64(config, "retriable.restart.connector.wait.ms", 10_000)?
                    .max(0) as u64,
            ),
            prefix,
        };
        self.handed = offsets
            .offset(&self.partition())
            .map(|o| Json::from_serde(&o));
        self.setup(offsets).map_err(fatal)
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        if let Some(at) = self.reconnect_at {
            let left = at.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                std::thread::sleep(left.min(Duration::from_millis(200)));
                return Ok(Vec::new());
            }
            self.reconnect_at = None;
            let from = Handed(self.handed.clone());
            match self.setup(&from) {
                Ok(()) => {
                    tracing::info!(slot = %self.s.slot, "reconnected to PostgreSQL");
                    self.retries = 0;
                }
                Err(e @ ConnectError::Retriable { .. }) => return self.lost_connection(e),
                Err(e) => return Err(e),
            }
        }
        if self.deferred.is_some() {
            // The snapshot begins in `commit`, once the runtime committed
            // the marker it takes after this poll.
            if self.unrecorded.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            return Ok(Vec::new());
        }
        let polled = if self.idle {
            std::thread::sleep(Duration::from_millis(500));
            Ok(Vec::new())
        } else if self.snapshot.is_some() {
            self.poll_snapshot()
        } else if self.streaming {
            self.poll_stream()
        } else {
            std::thread::sleep(Duration::from_millis(100));
            Ok(Vec::new())
        };
        match polled {
            Ok(out) => {
                if let Some(r) = out.last() {
                    self.handed = Some(r.source_offset.clone());
                }
                Ok(out)
            }
            Err(e @ ConnectError::Retriable { .. }) => self.lost_connection(e),
            Err(e) => Err(e),
        }
    }

    fn offsets_without_records(&mut self) -> Vec<(Json, Json)> {
        let Some(offset) = self.unrecorded.take() else {
            return Vec::new();
        };
        self.handed = Some(offset.clone());
        vec![(self.partition(), offset)]
    }

    fn commit(&mut self) -> Result<()> {
        if self.unrecorded.is_none() {
            // The marker is committed: the snapshot can create the slot.
            if let Some(tables) = self.deferred.take() {
                let started = self
                    .slot_exists()
                    .and_then(|exists| self.begin_snapshot(tables, exists));
                match started {
                    Ok(()) => {}
                    Err(e @ ConnectError::Retriable { .. }) => {
                        self.lost_connection(e)?;
                    }
                    Err(e) => return Err(fatal(e)),
                }
            }
        }
        self.outstanding = false;
        // `polled_upto` only moves at transaction ends, so a transaction
        // split across polls is confirmed once it is whole.
        self.confirmed = self.confirmed.max(self.polled_upto);
        if self.streaming && self.confirmed > self.sent_confirmed {
            self.send_status(false)?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(r) = self.repl.take() {
            r.close();
        }
        if let Some(q) = self.query.take() {
            q.close();
        }
    }
}

impl PostgresTask {
    /// The connection is gone: drop what was read but not handed over and
    /// reconnect after `retriable.restart.connector.wait.ms`, resuming from
    /// the last record handed to the runtime (the slot has not been
    /// confirmed past what Kafka acknowledged), up to `errors.max.retries`
    /// times in a row.
    fn lost_connection(&mut self, e: ConnectError) -> Result<Vec<SourceRecord>> {
        self.retries += 1;
        if self.s.max_retries >= 0 && self.retries > self.s.max_retries {
            return Err(fatal(e));
        }
        tracing::warn!(error = %e, attempt = self.retries, wait = ?self.s.retry_wait,
            "lost the connection to PostgreSQL; reconnecting");
        SourceTask::stop(self);
        self.streaming = false;
        self.idle = false;
        self.snapshot = None;
        self.txn = None;
        self.rels.clear();
        self.resume = None;
        self.deferred = None;
        self.unrecorded = None;
        // Records handed before the loss may still be unacknowledged: keep
        // keepalives from confirming past them until the next commit.
        self.outstanding = true;
        self.reconnect_at = Some(Instant::now() + self.s.retry_wait);
        Ok(Vec::new())
    }
}

//! The JDBC sink task: each `put` is one PostgreSQL transaction of
//! pipelined statements, committed before `put` returns.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{param_text_in, Column, InsertMode, Op, SinkConfig, TableId};
use crate::connector::{ErrantRecord, Props, SinkOffsets, SinkRecord, SinkTask};
use crate::error::{ConnectError, Result};
use crate::postgres::wire::{
    ident, literal, ConnConfig, PgConn, PgError, Pipeline, SslMode, TlsConfig,
};

fn failure(message: String) -> ConnectError {
    ConnectError::Connector {
        connector: "JdbcSinkConnector".into(),
        message,
    }
}

/// A failed write: the error, and whether trying again may help.
struct WriteError {
    message: String,
    retriable: bool,
    /// The server refused a record's statement (not DDL, not the
    /// connection): the records can be tried one by one.
    statement: bool,
}

impl WriteError {
    fn of(e: &PgError, context: &str) -> WriteError {
        let retriable = match e {
            PgError::Io { .. } => true,
            // Connection failures, shutdowns, serialization failures,
            // deadlocks, resources; a table or column another task just
            // created.
            PgError::Server { code, .. } => {
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53")
                    || matches!(code.as_str(), "40001" | "40P01" | "42P07" | "42701")
            }
            // Settings or certificates that will not change by waiting.
            PgError::Protocol(_) | PgError::Tls(_) => false,
        };
        WriteError {
            message: format!("{context}: {e}"),
            retriable,
            statement: false,
        }
    }

    fn fatal(e: ConnectError) -> WriteError {
        WriteError {
            message: e.to_string(),
            retriable: false,
            statement: false,
        }
    }
}

/// Parameters per statement at most (Bind counts them in 16 bits).
const MAX_PARAMS: usize = 32_767;

/// Prepared statements kept per connection; past this they are all
/// closed (the shape of a put's last partial batch varies).
const MAX_PREPARED: usize = 64;

/// Statements prepared on the connection: by their one-row SQL and the
/// rows they write, the name they were prepared under.
#[derive(Default)]
struct Prepared {
    names: HashMap<(Arc<str>, usize), Arc<str>>,
    next: u64,
}

impl Prepared {
    /// The name of the statement writing `rows` rows of `one`, queueing
    /// its Parse (made by `sql`) when it is new.
    fn get(
        &mut self,
        pipeline: &mut Pipeline,
        one: &Arc<str>,
        rows: usize,
        sql: impl FnOnce() -> String,
    ) -> Arc<str> {
        if let Some(n) = self.names.get(&(one.clone(), rows)) {
            return n.clone();
        }
        if self.names.len() >= MAX_PREPARED {
            for (_, n) in self.names.drain() {
                pipeline.close_named(&n);
            }
        }
        self.next += 1;
        let name: Arc<str> = format!("weir_jdbc_{}", self.next).into();
        pipeline.parse_named(&name, &sql());
        self.names.insert((one.clone(), rows), name.clone());
        name
    }
}

/// Whether two records write the same columns (one statement for both).
fn same_shape(a: &Op, b: &Op) -> bool {
    let (da, ca) = a.parts();
    let (db, cb) = b.parts();
    da == db
        && ca.len() == cb.len()
        && ca
            .iter()
            .zip(cb)
            .all(|(x, y)| x.pk == y.pk && x.name == y.name)
}

/// A record's parameters, in its statement's order.
fn texts_of(cfg: &SinkConfig, op: &Op) -> Result<Vec<Option<String>>> {
    match op {
        Op::Delete(cols, vals) => cols
            .iter()
            .zip(vals)
            .map(|(c, v)| param_text_in(&c.schema, v, &cfg.zone))
            .collect(),
        Op::Write(cols, vals) => cfg
            .params(cols, vals)
            .into_iter()
            .map(|(c, v)| param_text_in(&c.schema, v, &cfg.zone))
            .collect(),
    }
}

/// Runs what is queued; an error names the statement and the record.
fn flush(
    conn: &mut PgConn,
    pipeline: &mut Pipeline,
    queued: &mut Vec<(&SinkRecord, Arc<str>)>,
) -> std::result::Result<(), WriteError> {
    if pipeline.is_empty() {
        return Ok(());
    }
    let out = conn.run_pipeline(pipeline).map(|_| ()).map_err(|(i, e)| {
        let at = match queued.get(i).or(queued.last()) {
            Some((r, sql)) => format!(
                " in {sql} (record topic={}, partition={}, offset={})",
                r.original_topic, r.original_partition, r.kafka_offset
            ),
            None => String::new(),
        };
        let mut w = WriteError::of(&e, &format!("writing{at}"));
        w.statement = !w.retriable && matches!(e, PgError::Server { .. });
        w
    });
    queued.clear();
    out
}

/// The sink task.
#[derive(Default)]
pub struct JdbcSinkTask {
    cfg: Option<SinkConfig>,
    conn: Option<PgConn>,
    /// Known tables' column names (lower-cased when identifiers are not
    /// quoted, as PostgreSQL folds them).
    tables: HashMap<TableId, HashSet<String>>,
    /// Records given up on, for the runtime's reporter.
    errant: Vec<ErrantRecord>,
    /// Set when the runtime stops the task: retries give up.
    stop: Option<Arc<AtomicBool>>,
    /// Statements prepared on `conn`.
    prepared: Prepared,
}

impl JdbcSinkTask {
    fn cfg(&self) -> Result<&SinkConfig> {
        self.cfg
            .as_ref()
            .ok_or_else(|| ConnectError::failed("task not started"))
    }

    /// The TLS settings of `connection.url`.
    fn tls(cfg: &SinkConfig) -> TlsConfig {
        let t = &cfg.target;
        TlsConfig {
            mode: SslMode::parse(&t.sslmode).unwrap_or_default(),
            rootcert: t.sslrootcert.as_ref().map(Into::into),
            cert: t.sslcert.as_ref().map(Into::into),
            key: t.sslkey.as_ref().map(Into::into),
        }
    }

    fn connect(cfg: &SinkConfig) -> std::result::Result<PgConn, PgError> {
        let t = &cfg.target;
        let mut conn = PgConn::connect_tls(
            &ConnConfig {
                host: t.host.clone(),
                port: t.port,
                user: t.user.clone(),
                password: t.password.clone(),
                dbname: t.dbname.clone(),
            },
            &Self::tls(cfg),
            false,
        )?;
        // PgJDBC sends these as startup parameters; the session settings
        // are the same.
        if let Some(schemas) = &t.current_schema {
            let list: Vec<String> = schemas.split(',').map(|s| ident(s.trim())).collect();
            conn.query(&format!("SET search_path TO {}", list.join(", ")))?;
        }
        if let Some(name) = &t.application_name {
            conn.query(&format!("SET application_name TO {}", literal(name)))?;
        }
        Ok(conn)
    }

    fn column_key(cfg: &SinkConfig, name: &str) -> String {
        if cfg.quote {
            name.to_string()
        } else {
            name.to_lowercase()
        }
    }

    /// Makes sure `table` exists with `cols` (creating or altering it as
    /// configured); `Ok(false)`: it does not exist and `cols` only delete.
    fn ensure_table(
        cfg: &SinkConfig,
        conn: &mut PgConn,
        tables: &mut HashMap<TableId, HashSet<String>>,
        table: &TableId,
        cols: &[Column],
        deleting: bool,
    ) -> std::result::Result<bool, WriteError> {
        if !tables.contains_key(table) {
            let schema = match &table.schema {
                Some(s) => literal(&Self::column_key(cfg, s)),
                None => "current_schema()".into(),
            };
            let sql = format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = {schema} AND table_name = {}",
                literal(&Self::column_key(cfg, &table.table))
            );
            let found = conn
                .query_one(&sql)
                .map_err(|e| WriteError::of(&e, "reading the table's columns"))?;
            let names: HashSet<String> = found
                .rows
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .collect();
            if names.is_empty() {
                if deleting {
                    return Ok(false);
                }
                if !cfg.auto_create {
                    return Err(WriteError::fatal(failure(format!(
                        "Table {} is missing and auto-creation is disabled",
                        cfg.table_sql(table)
                    ))));
                }
                let sql = cfg.create_sql(table, cols).map_err(WriteError::fatal)?;
                conn.query(&sql)
                    .map_err(|e| WriteError::of(&e, &format!("creating the table: {sql}")))?;
                tables.insert(
                    table.clone(),
                    cols.iter()
                        .map(|c| Self::column_key(cfg, &c.name))
                        .collect(),
                );
                return Ok(true);
            }
            tables.insert(table.clone(), names);
        }
        let known = tables.get_mut(table).expect("inserted above");
        let missing: Vec<Column> = cols
            .iter()
            .filter(|c| !known.contains(&Self::column_key(cfg, &c.name)))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(true);
        }
        if !cfg.auto_evolve {
            return Err(WriteError::fatal(failure(format!(
                "Table {} is missing fields ({}) and auto-evolution is disabled",
                cfg.table_sql(table),
                missing
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
        let sql = cfg.alter_sql(table, &missing).map_err(WriteError::fatal)?;
        conn.query(&sql)
            .map_err(|e| WriteError::of(&e, &format!("altering the table: {sql}")))?;
        known.extend(missing.iter().map(|c| Self::column_key(cfg, &c.name)));
        Ok(true)
    }

    /// One attempt at writing `ops` in one transaction.
    ///
    /// Consecutive records of one table and one column shape are a run.
    /// A run is written by multi-row statements (`INSERT ... VALUES
    /// (..),(..) [ON CONFLICT ...]`, `DELETE ... WHERE (k) IN (..)`) of up
    /// to `batch.size` rows, prepared once per connection and pipelined
    /// until `batch.size` rows wait for their answer. Within a run of
    /// upserts or deletes only a key's last record is written: one
    /// statement may not touch a row twice, and the last one is what
    /// writing them in order leaves. `update` is a statement per row.
    ///
    /// `one_by_one`: each record behind a savepoint, and those the server
    /// refuses are returned instead of failing the whole (Kafka's errant
    /// records; the slow path, taken after a batch failed).
    fn write(
        &mut self,
        ops: &[(TableId, Op, &SinkRecord)],
        one_by_one: bool,
    ) -> std::result::Result<Vec<ErrantRecord>, WriteError> {
        let cfg = self
            .cfg
            .clone()
            .ok_or_else(|| WriteError::fatal(ConnectError::failed("task not started")))?;
        if self.conn.is_none() {
            self.prepared = Prepared::default();
            self.conn = Some(
                Self::connect(&cfg).map_err(|e| WriteError::of(&e, "connecting to PostgreSQL"))?,
            );
        }
        let conn = self.conn.as_mut().expect("connected above");
        let prepared = &mut self.prepared;
        conn.query("BEGIN")
            .map_err(|e| WriteError::of(&e, "BEGIN"))?;
        let mut pipeline = Pipeline::default();
        // The first record and the statement of each queued execute.
        let mut queued: Vec<(&SinkRecord, Arc<str>)> = Vec::new();
        // Rows sent since the last round trip.
        let mut waiting;
        let mut refused = Vec::new();
        let mut i = 0;
        while i < ops.len() {
            let (table, op, _) = &ops[i];
            let mut end = i + 1;
            while end < ops.len() && ops[end].0 == *table && same_shape(&ops[end].1, op) {
                end += 1;
            }
            let run = &ops[i..end];
            i = end;
            let (deleting, cols) = op.parts();
            // DDL and the run's statements come after what is queued.
            flush(conn, &mut pipeline, &mut queued)?;
            waiting = 0;
            if !Self::ensure_table(&cfg, conn, &mut self.tables, table, cols, deleting)? {
                continue;
            }
            let one: Arc<str> = if deleting {
                cfg.delete_sql(table, cols)
            } else {
                cfg.write_sql(table, cols)
            }
            .into();
            let mut rows = Vec::with_capacity(run.len());
            for (_, op, rec) in run {
                rows.push((*rec, texts_of(&cfg, op).map_err(WriteError::fatal)?));
            }
            if one_by_one {
                for (rec, texts) in &rows {
                    // A simple query drops the unnamed statement: parse
                    // it for each record.
                    pipeline.parse(&one);
                    pipeline.execute(&texts.iter().map(|t| t.as_deref()).collect::<Vec<_>>());
                    queued.push((rec, one.clone()));
                    conn.query("SAVEPOINT weir_record")
                        .map_err(|e| WriteError::of(&e, "SAVEPOINT"))?;
                    match flush(conn, &mut pipeline, &mut queued) {
                        Ok(()) => {}
                        Err(e) if e.statement => {
                            conn.query("ROLLBACK TO SAVEPOINT weir_record")
                                .map_err(|e| WriteError::of(&e, "ROLLBACK TO SAVEPOINT"))?;
                            refused.push(((*rec).clone(), failure(e.message)));
                        }
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let per_row = !deleting && cfg.insert_mode == InsertMode::Update;
            if deleting || cfg.insert_mode == InsertMode::Upsert {
                let keys: Vec<usize> = (0..cols.len())
                    .filter(|&c| deleting || cols[c].pk)
                    .collect();
                let mut last: HashMap<Vec<Option<&str>>, usize> = HashMap::new();
                for (n, (_, texts)) in rows.iter().enumerate() {
                    last.insert(keys.iter().map(|&k| texts[k].as_deref()).collect(), n);
                }
                if last.len() < rows.len() {
                    let keep: HashSet<usize> = last.into_values().collect();
                    let mut n = 0;
                    rows.retain(|_| {
                        n += 1;
                        keep.contains(&(n - 1))
                    });
                }
            }
            let per = if per_row {
                1
            } else {
                (MAX_PARAMS / cols.len().max(1)).clamp(1, cfg.batch_size)
            };
            for chunk in rows.chunks(per) {
                let name = prepared.get(&mut pipeline, &one, chunk.len(), || {
                    if deleting {
                        cfg.delete_sql_rows(table, cols, chunk.len())
                    } else {
                        cfg.write_sql_rows(table, cols, chunk.len())
                    }
                });
                let params: Vec<Option<&str>> = chunk
                    .iter()
                    .flat_map(|(_, t)| t.iter().map(|t| t.as_deref()))
                    .collect();
                pipeline.execute_named(&name, params.into_iter());
                let what: Arc<str> = if chunk.len() == 1 {
                    one.clone()
                } else {
                    format!("{one} [one statement for {} rows, the first]", chunk.len()).into()
                };
                queued.push((chunk[0].0, what));
                waiting += chunk.len();
                if waiting >= cfg.batch_size {
                    flush(conn, &mut pipeline, &mut queued)?;
                    waiting = 0;
                }
            }
        }
        flush(conn, &mut pipeline, &mut queued)?;
        conn.query("COMMIT")
            .map_err(|e| WriteError::of(&e, "COMMIT"))?;
        Ok(refused)
    }
}

impl SinkTask for JdbcSinkTask {
    fn start(&mut self, config: &Props) -> Result<()> {
        let cfg = SinkConfig::from_props(config)?;
        // The files are read now, so a bad one fails the start, named.
        Self::tls(&cfg).client_config().map_err(|e| {
            ConnectError::bad_config(format!(
                "Invalid TLS settings in connection.url (sslmode, sslrootcert, sslcert, sslkey): {e}"
            ))
        })?;
        // Fail early, with the server's word, on wrong credentials or an
        // unreachable database.
        let conn =
            Self::connect(&cfg).map_err(|e| failure(format!("connecting to PostgreSQL: {e}")))?;
        self.conn = Some(conn);
        self.cfg = Some(cfg);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let cfg = self.cfg()?.clone();
        let mut ops = Vec::with_capacity(records.len());
        for r in &records {
            let partition = r.record.partition.unwrap_or(r.original_partition);
            match cfg.op_of(&r.record, partition, r.kafka_offset) {
                Ok(op) => ops.push((cfg.table_of(&r.record.topic), op, r)),
                // A record the sink cannot write (no schema, a tombstone
                // without delete.enabled): errant, as Confluent reports it.
                Err(e) => self.errant.push((r.clone(), e)),
            }
        }
        let mut attempt = 0;
        let mut one_by_one = false;
        loop {
            match self.write(&ops, one_by_one) {
                Ok(refused) => {
                    self.errant.extend(refused);
                    return Ok(());
                }
                Err(e) => {
                    // The transaction is rolled back (or the connection is
                    // gone); what DDL it did is undone with it.
                    self.tables.clear();
                    // Parses after the failure were skipped: forget what
                    // was prepared, on the server too.
                    self.prepared = Prepared::default();
                    if let Some(mut c) = self.conn.take() {
                        if c.query("ROLLBACK").is_ok() && c.query("DEALLOCATE ALL").is_ok() {
                            self.conn = Some(c);
                        }
                    }
                    if e.statement && !one_by_one {
                        // Find the records the server refuses; the rest
                        // are written.
                        one_by_one = true;
                        continue;
                    }
                    if !e.retriable || attempt >= cfg.max_retries {
                        let tries = if e.retriable {
                            format!(" (after {attempt} retries)")
                        } else {
                            String::new()
                        };
                        return Err(failure(format!("{}{tries}", e.message)));
                    }
                    attempt += 1;
                    self.conn = None;
                    let until =
                        std::time::Instant::now() + Duration::from_millis(cfg.retry_backoff_ms);
                    while std::time::Instant::now() < until {
                        if self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
                            return Err(failure(format!("stopped while retrying: {}", e.message)));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
    }

    fn errant_records(&mut self) -> Vec<ErrantRecord> {
        std::mem::take(&mut self.errant)
    }

    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Some(stop);
    }

    fn flush(&mut self, _offsets: &SinkOffsets) -> Result<()> {
        // Every put committed its transaction already.
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }
}

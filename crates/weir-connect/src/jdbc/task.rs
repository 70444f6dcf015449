//! The JDBC sink task: each `put` is one PostgreSQL transaction of
//! pipelined statements, committed before `put` returns.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{param_text, Column, Op, SinkConfig, TableId};
use crate::connector::{ErrantRecord, Props, SinkOffsets, SinkRecord, SinkTask};
use crate::error::{ConnectError, Result};
use crate::postgres::wire::{literal, ConnConfig, PgConn, PgError, Pipeline};

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
            PgError::Protocol(_) => false,
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

/// The statement being pipelined: its table, whether it deletes, the
/// columns' names and key flags, and its SQL.
type Run<'a> = (&'a TableId, bool, Vec<(&'a str, bool)>, Arc<str>);

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
}

impl JdbcSinkTask {
    fn cfg(&self) -> Result<&SinkConfig> {
        self.cfg
            .as_ref()
            .ok_or_else(|| ConnectError::failed("task not started"))
    }

    fn connect(cfg: &SinkConfig) -> std::result::Result<PgConn, PgError> {
        let t = &cfg.target;
        PgConn::connect(
            &ConnConfig {
                host: t.host.clone(),
                port: t.port,
                user: t.user.clone(),
                password: t.password.clone(),
                dbname: t.dbname.clone(),
            },
            false,
        )
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

    /// One attempt at writing `ops` in one transaction. `one_by_one`: each
    /// record behind a savepoint, and those the server refuses are
    /// returned instead of failing the whole (Kafka's errant records; the
    /// slow path, taken after a batch failed).
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
            self.conn = Some(
                Self::connect(&cfg).map_err(|e| WriteError::of(&e, "connecting to PostgreSQL"))?,
            );
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.query("BEGIN")
            .map_err(|e| WriteError::of(&e, "BEGIN"))?;
        let mut pipeline = Pipeline::default();
        // The record and statement of each queued execute.
        let mut queued: Vec<(&SinkRecord, Arc<str>)> = Vec::new();
        let mut current: Option<Run> = None;
        let mut refused = Vec::new();
        for (table, op, rec) in ops {
            let (deleting, cols, vals) = match op {
                Op::Write(c, v) => (false, c, v),
                Op::Delete(c, v) => (true, c, v),
            };
            let shape: Vec<(&str, bool)> = cols.iter().map(|c| (c.name.as_str(), c.pk)).collect();
            let same = current
                .as_ref()
                .is_some_and(|(t, d, s, _)| *t == table && *d == deleting && *s == shape);
            if !same {
                // DDL and the next statement come after what is queued.
                flush(conn, &mut pipeline, &mut queued)?;
                if !Self::ensure_table(&cfg, conn, &mut self.tables, table, cols, deleting)? {
                    current = None;
                    continue;
                }
                let sql: Arc<str> = if deleting {
                    cfg.delete_sql(table, cols)
                } else {
                    cfg.write_sql(table, cols)
                }
                .into();
                pipeline.parse(&sql);
                current = Some((table, deleting, shape, sql));
            }
            let texts: Vec<Option<String>> = if deleting {
                cols.iter()
                    .zip(vals)
                    .map(|(c, v)| param_text(&c.schema, v))
                    .collect::<Result<_>>()
            } else {
                cfg.params(cols, vals)
                    .into_iter()
                    .map(|(c, v)| param_text(&c.schema, v))
                    .collect::<Result<_>>()
            }
            .map_err(WriteError::fatal)?;
            pipeline.execute(&texts.iter().map(|t| t.as_deref()).collect::<Vec<_>>());
            let sql = current
                .as_ref()
                .map(|c| c.3.clone())
                .unwrap_or_else(|| "".into());
            queued.push((rec, sql));
            if one_by_one {
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
                current = None;
                continue;
            }
            if pipeline.len() >= cfg.batch_size {
                flush(conn, &mut pipeline, &mut queued)?;
                // The next batch parses its statement again.
                current = None;
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
                    if let Some(mut c) = self.conn.take() {
                        if c.query("ROLLBACK").is_ok() {
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

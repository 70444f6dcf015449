//! The pure streaming engine: a `Task` takes input records one at a time
//! and returns the rows to emit and the state changes to log, with
//! ksqlDB's per-record semantics. No I/O happens here; the runtime feeds
//! records in and writes what comes out, so every rule is unit-tested
//! without Kafka.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::ast::JoinType;
use crate::error::{Result, SqlError};
use crate::expr::Node;
use crate::format::Window;
use crate::join::{self, Joined, StageState};
use crate::plan::{nulls, AggSpec, Feed, Op, Plan, Rekey, WindowSpec};
use crate::state;
use crate::types::Value;

/// A record read from an input topic.
#[derive(Debug, Clone, Copy)]
pub struct InRecord<'a> {
    /// Which input of the plan (0, or 1 for a join's table).
    pub input: usize,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The record's headers, in order (read by header columns).
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// A row to emit: key values, value values (`None` is a tombstone), the
/// record timestamp and, for windowed results, the window.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRow {
    pub key: Vec<Value>,
    pub value: Option<Vec<Value>>,
    pub timestamp: i64,
    pub window: Option<Window>,
}

/// What processing one record produced.
#[derive(Debug, Default)]
pub struct Effects {
    pub rows: Vec<OutRow>,
    /// Changelog writes: (key, value or tombstone).
    pub changelog: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Rows a join stage emitted for a repartition topic (the next
    /// stage's left side re-keys).
    pub rekeyed: Vec<Repartitioned>,
}

/// A row on its way through a repartition topic: the new key, what the
/// aggregation reads of the row (the key, the aggregates' arguments, the
/// event time; in the state encoding), and its event time.
#[derive(Debug, Clone, PartialEq)]
pub struct Repartitioned {
    /// Which of [`Plan::repartitions`] it goes to.
    pub topic: usize,
    pub key: Vec<Value>,
    pub value: Vec<u8>,
    pub timestamp: i64,
}

/// One aggregate's state for a key (and window).
#[derive(Debug, Clone, PartialEq)]
pub struct AggEntry {
    pub key: Vec<Value>,
    pub window: Option<Window>,
    pub states: Vec<Value>,
    /// The largest timestamp that contributed.
    pub timestamp: i64,
    /// EMIT FINAL: already emitted.
    pub emitted: bool,
}

/// State keyed by encoded keys. foldhash rather than the standard
/// SipHash: hashing was about 4 % of a windowed count's query thread.
/// Its seed comes from address-space randomization (foldhash is built
/// without `std` here, as hashbrown already builds it), so it still
/// differs per process.
pub type KeyMap<V> = HashMap<Vec<u8>, V, foldhash::fast::RandomState>;

/// A table kept as versions by timestamp, as Kafka Streams' versioned
/// key-value stores keep one for its stream–table join: a lookup at time
/// `t` answers the latest version before `t` (at equal times the stream
/// row goes first, as in the timestamp merge). Versions older than the
/// history retention behind the latest table time are dropped, except
/// the one still valid at that horizon, so a lookup within retention is
/// exact and one older answers that version if it was already valid, else
/// no row.
#[derive(Debug)]
pub struct History {
    versions: KeyMap<Vec<(i64, Option<Vec<Value>>)>>,
    /// The largest version timestamp put.
    time: i64,
    /// How far behind `time` versions are kept (milliseconds).
    pub retention: i64,
}

/// The default history retention: one hour of table time.
pub const HISTORY_RETENTION_MS: i64 = 3_600_000;

impl Default for History {
    fn default() -> Self {
        History {
            versions: KeyMap::default(),
            time: i64::MIN,
            retention: HISTORY_RETENTION_MS,
        }
    }
}

impl History {
    /// Puts key `k`'s version at `ts` (`None`: deleted); a later put at
    /// the same time replaces it, as it would the latest row.
    pub fn put(&mut self, k: Vec<u8>, row: Option<Vec<Value>>, ts: i64) {
        self.time = self.time.max(ts);
        let horizon = self.time.saturating_sub(self.retention.max(0));
        // Only a delete can leave a key with no version: it keeps its
        // key to remove it then.
        let deleted = match row {
            None if !self.versions.contains_key(&k) => return,
            None => Some(k.clone()),
            Some(_) => None,
        };
        let v = self.versions.entry(k).or_default();
        let i = v.partition_point(|(t, _)| *t <= ts);
        match i.checked_sub(1).and_then(|j| v.get_mut(j)) {
            Some(last) if last.0 == ts => last.1 = row,
            _ => v.insert(i, (ts, row)),
        }
        // The newest version at or before the horizon answers every
        // lookup from there on; older ones answer none within retention.
        let valid = v.partition_point(|(t, _)| *t <= horizon).saturating_sub(1);
        // A delete at or before the horizon with nothing before it
        // answers as no version does (a later one stays: a version put
        // out of order before it must still end at it).
        let leading = v[valid..]
            .iter()
            .take_while(|(t, r)| *t <= horizon && r.is_none())
            .count();
        v.drain(..valid + leading);
        if let (true, Some(k)) = (v.is_empty(), deleted) {
            self.versions.remove(&k);
        }
    }

    /// Key `k`'s row as of time `ts`: the latest version before it.
    pub fn at(&self, k: &[u8], ts: i64) -> Option<&Vec<Value>> {
        let v = self.versions.get(k)?;
        let i = v.partition_point(|(t, _)| *t < ts);
        v.get(i.checked_sub(1)?)?.1.as_ref()
    }

    /// How many versions are kept, over every key.
    pub fn len(&self) -> usize {
        self.versions.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

/// One stage of a chain of table–table joins: the result so far (left)
/// and the next table (right), by encoded join key, with each row's
/// timestamp.
#[derive(Debug, Default)]
pub struct ChainStage {
    pub left: KeyMap<(Vec<Value>, i64)>,
    pub right: KeyMap<(Vec<Value>, i64)>,
}

/// A query's running state.
#[derive(Debug)]
pub struct Task {
    pub plan: Arc<Plan>,
    /// The plan's repartition topics ([`Plan::repartitions`]).
    rekeys: Arc<Vec<Rekey>>,
    /// Aggregations: by slot (see [`slot`]). A hash map: every record
    /// an aggregation reads looks its entry up, and only sessions and pull
    /// queries need a key's windows in order (`windows`).
    pub aggs: KeyMap<AggEntry>,
    /// Windowed aggregations: each encoded key's window starts, ascending.
    windows: KeyMap<Vec<i64>>,
    /// Joins: the table side's rows by encoded key.
    pub table: KeyMap<Vec<Value>>,
    /// A stream–table join through `Join-repartition`: the table's rows
    /// by encoded key as versions by timestamp (`None` a delete),
    /// ascending, so a row read back meets the table as of its own time
    /// whenever the table has gone ahead of it (see [`History`]).
    pub history: History,
    /// Table-table joins: the left table's rows by encoded key.
    pub left: KeyMap<Vec<Value>>,
    /// Foreign-key joins: the left keys (encoded) by the right key they
    /// name (encoded).
    pub by_foreign_key: KeyMap<BTreeSet<Vec<u8>>>,
    /// Stream–stream joins and chains: each stage's state.
    pub stages: Vec<StageState>,
    /// Chains of table–table joins: each stage's state.
    pub chain: Vec<ChainStage>,
    /// Window slots by the time they close (end + grace): EMIT FINAL
    /// emits them then. Filled when a window is created (or a session
    /// changes), not per update.
    closing: BTreeMap<i64, Vec<Vec<u8>>>,
    /// Window slots by the time their state may go (end + retention).
    expiring: BTreeMap<i64, Vec<Vec<u8>>>,
    /// Scratch for building slots to look up.
    slot_buf: Vec<u8>,
    /// The largest timestamp seen (Kafka Streams' stream time).
    pub stream_time: i64,
    /// Records skipped: undeserializable, or late for their window.
    pub skipped: u64,
    pub last_error: Option<String>,
    /// Per input, the value columns the plan reads (`None`: all). The
    /// others are checked when a record is decoded but not kept.
    kept: Vec<Option<Vec<bool>>>,
}

/// Which value columns of each input the plan reads: for a stream read
/// by a projection, an aggregation or a stream–table join (a table's rows
/// are kept whole, and other plans read every column).
fn kept_columns(plan: &Plan) -> Vec<Option<Vec<bool>>> {
    let mut kept: Vec<Option<Vec<bool>>> = vec![None; plan.inputs.len()];
    let nodes: Vec<&Node> = match &plan.op {
        Op::Select {
            filter,
            key,
            values,
        }
        | Op::StreamTable {
            filter,
            key,
            values,
            ..
        } => {
            let mut n: Vec<&Node> = filter.iter().chain(key).chain(values).collect();
            if let Op::StreamTable { left_key, .. } = &plan.op {
                n.push(left_key);
            }
            n
        }
        Op::Aggregate {
            filter,
            group,
            aggs,
            ..
        } => filter
            .iter()
            .chain(group)
            .chain(aggs.iter().filter_map(|a| a.arg.as_ref()))
            .collect(),
        _ => return kept,
    };
    let Some(input) = plan.inputs.first() else {
        return kept;
    };
    if input.source.is_table() {
        return kept;
    }
    // A join's row is the stream's row then the table's: indexes past the
    // stream's width are the table's and fall outside `used`.
    let mut used = vec![false; input.width()];
    for n in nodes {
        n.mark_columns(&mut used);
    }
    if let Some((i, _)) = &input.timestamp {
        if let Some(u) = used.get_mut(*i) {
            *u = true;
        }
    }
    let from = input.source.key.len();
    kept[0] = used
        .get(from..from + input.source.value.len())
        .map(<[bool]>::to_vec);
    kept
}

fn key_bytes(key: &[Value]) -> Vec<u8> {
    state::encode(key)
}

/// An aggregate entry's slot: the encoded group key, then the window start
/// (`i64::MIN` unwindowed) as 8 bytes whose order is the numbers' order.
/// Encoded keys are complete JSON texts, so none is a prefix of another:
/// slots sort as (key bytes, start) pairs do.
pub fn slot(kb: &[u8], start: i64) -> Vec<u8> {
    let mut s = Vec::with_capacity(kb.len() + 8);
    push_slot(&mut s, kb, start);
    s
}

fn push_slot(s: &mut Vec<u8>, kb: &[u8], start: i64) {
    s.extend_from_slice(kb);
    s.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
}

impl Task {
    /// A task whose joins re-key in memory (a push query's: it has no
    /// repartition topics), or a persistent query's first halves.
    pub fn new(plan: Plan) -> Task {
        let stages = match &plan.op {
            Op::Joins { stages, .. } => stages.iter().map(|_| StageState::default()).collect(),
            _ => Vec::new(),
        };
        let chain = match &plan.op {
            Op::TableChain { kinds, .. } => kinds.iter().map(|_| ChainStage::default()).collect(),
            _ => Vec::new(),
        };
        Task {
            rekeys: Arc::new(Vec::new()),
            kept: kept_columns(&plan),
            stages,
            chain,
            plan: Arc::new(plan),
            closing: BTreeMap::new(),
            expiring: BTreeMap::new(),
            slot_buf: Vec::new(),
            aggs: KeyMap::default(),
            windows: KeyMap::default(),
            table: KeyMap::default(),
            history: History::default(),
            left: KeyMap::default(),
            by_foreign_key: KeyMap::default(),
            stream_time: i64::MIN,
            skipped: 0,
            last_error: None,
        }
    }

    /// A task of a query that re-keys through its repartition topics
    /// ([`Plan::repartitions`]): a join input or a chain stage's rows
    /// that re-key go out as [`Repartitioned`] rows and come back through
    /// [`Task::process_rekeyed`].
    pub fn through_topics(plan: Plan) -> Task {
        let rekeys = Arc::new(plan.repartitions());
        Task {
            rekeys,
            ..Task::new(plan)
        }
    }

    /// Decodes a record into its row, or records why it could not be.
    fn row(&self, rec: &InRecord<'_>) -> Result<Option<(Vec<Value>, i64)>> {
        let input = &self.plan.inputs[rec.input];
        let src = &input.source;
        let (key_bytes, window) = match (rec.key, src.window) {
            (Some(k), Some((wt, size))) => {
                let (k, w) = crate::format::split_windowed_key(
                    k,
                    wt == crate::format::WindowType::Session,
                    size.unwrap_or(0),
                )?;
                (Some(k), Some(w))
            }
            (k, _) => (k, None),
        };
        let key = match input.key_codec.decode(key_bytes)? {
            Some(k) => k,
            None => nulls(src.key.len()),
        };
        let kept = self.kept.get(rec.input).and_then(Option::as_deref);
        let Some(value) = input.value_codec.decode_kept(rec.value, kept)? else {
            return Ok(None);
        };
        let mut row = Vec::with_capacity(input.width());
        row.extend(key);
        row.extend(value);
        row.extend(src.headers.iter().map(|h| h.read(rec.headers)));
        row.push(Value::Bigint(rec.timestamp));
        row.push(Value::Int(rec.partition));
        row.push(Value::Bigint(rec.offset));
        if let Some(w) = window {
            row.push(Value::Bigint(w.start));
            row.push(Value::Bigint(w.end));
        }
        let ts = match &input.timestamp {
            None => rec.timestamp,
            Some((i, fmt)) => match (&row[*i], fmt) {
                (Value::Bigint(t) | Value::Timestamp(t), _) => *t,
                (Value::String(s), Some(f)) => crate::time::parse_pattern(s, f, 0)
                    .map_err(|e| SqlError::serde("TIMESTAMP", e))?,
                (Value::Null, _) => {
                    return Err(SqlError::serde("TIMESTAMP", "the TIMESTAMP column is NULL"))
                }
                (v, _) => {
                    return Err(SqlError::serde(
                        "TIMESTAMP",
                        format!("cannot use {v:?} as a timestamp"),
                    ))
                }
            },
        };
        row[src.rowtime_index()] = Value::Bigint(ts);
        Ok(Some((row, ts)))
    }

    /// Which part of a record that did not deserialize is at fault
    /// (`"key"` or `"value"`), for the processing log.
    pub fn undecodable_part(&self, rec: &InRecord<'_>) -> &'static str {
        let input = &self.plan.inputs[rec.input];
        let key = match (rec.key, input.source.window) {
            (Some(k), Some((wt, size))) => match crate::format::split_windowed_key(
                k,
                wt == crate::format::WindowType::Session,
                size.unwrap_or(0),
            ) {
                Ok((k, _)) => Some(k),
                Err(_) => return "key",
            },
            (k, _) => k,
        };
        if input.key_codec.decode(key).is_err() {
            "key"
        } else {
            "value"
        }
    }

    /// The key part of a record, decoded (for table tombstones).
    fn key_of(&self, rec: &InRecord<'_>) -> Result<Vec<Value>> {
        let input = &self.plan.inputs[rec.input];
        Ok(input
            .key_codec
            .decode(rec.key)?
            .unwrap_or_else(|| nulls(input.source.key.len())))
    }

    /// Processes one record. A record that does not deserialize is an
    /// `Err(SqlError::Serde)`: the caller skips and counts it.
    pub fn process(&mut self, rec: &InRecord<'_>, fx: &mut Effects) -> Result<()> {
        let decoded = self.row(rec)?;
        if let Some((_, ts)) = &decoded {
            self.stream_time = self.stream_time.max(*ts);
        }
        let table_input = self.plan.inputs[rec.input].source.is_table();
        let plan = self.plan.clone();
        match &plan.op {
            Op::Select {
                filter,
                key,
                values,
            } => {
                let Some((row, ts)) = decoded else {
                    if table_input {
                        // A table tombstone passes through as one.
                        let k = self.key_of(rec)?;
                        let out_key = key.iter().map(|n| n.eval(&k)).collect();
                        fx.rows.push(OutRow {
                            key: out_key,
                            value: None,
                            timestamp: rec.timestamp,
                            window: None,
                        });
                    }
                    return Ok(());
                };
                let pass = filter
                    .as_ref()
                    .is_none_or(|f| f.eval(&row) == Value::Boolean(true));
                let out_key: Vec<Value> = key.iter().map(|n| n.eval(&row)).collect();
                let window = self.source_window(&row, rec.input);
                if pass {
                    fx.rows.push(OutRow {
                        key: out_key,
                        value: Some(values.iter().map(|n| n.eval(&row)).collect()),
                        timestamp: ts,
                        window,
                    });
                } else if table_input {
                    // A table row that no longer matches is deleted downstream.
                    fx.rows.push(OutRow {
                        key: out_key,
                        value: None,
                        timestamp: ts,
                        window,
                    });
                }
            }
            Op::Aggregate { .. } if table_input => {
                let k = self.key_of(rec)?;
                self.table_aggregate(k, decoded, rec.timestamp, fx);
            }
            Op::Aggregate { .. } => {
                if let Some((row, ts)) = decoded {
                    self.aggregate(&row, ts, fx);
                }
            }
            Op::StreamTable { .. } => {
                if rec.input == 1 {
                    let k = key_bytes(&self.key_of(rec)?);
                    self.table_put(k, decoded, rec.timestamp);
                } else if let Some((row, ts)) = decoded {
                    self.stream_table(row, ts, fx);
                }
            }
            Op::Joins { .. } => self.joins(rec, decoded, fx)?,
            Op::TableTable { .. } => {
                let k = self.key_of(rec)?;
                let row = decoded.map(|(row, _)| row);
                self.table_table(rec.input, k, row, rec.timestamp, fx);
            }
            Op::TableChain { .. } => {
                let k = self.key_of(rec)?;
                self.table_chain(rec.input, k, decoded, rec.timestamp, fx);
            }
        }
        Ok(())
    }

    /// The first half of a re-keying aggregation or join (see
    /// [`Plan::repartition_suffix`]): a source record's row, filtered by
    /// `WHERE` (aggregations; a join filters the joined row), with its new
    /// key. `None` when the filter drops it or the
    /// key is NULL (counted as skipped, as ksqlDB drops it). The row goes
    /// to the repartition topic in the state encoding; stream time is
    /// left to the second half, which sees the rows in repartitioned order.
    pub fn repartition(&mut self, rec: &InRecord<'_>, out: &mut Vec<Repartitioned>) -> Result<()> {
        if self.plan.is_table_aggregate() {
            return self.repartition_table(rec, out);
        }
        let Some((row, ts)) = self.row(rec)? else {
            return Ok(());
        };
        let (filter, group, aggs) = match &self.plan.op {
            Op::Aggregate {
                filter,
                group,
                aggs,
                ..
            } => (filter, group, aggs),
            Op::StreamTable { left_key, .. } => {
                // A join re-keys by its `ON` expression and sends the
                // stream's row as it was read (the columns the join reads;
                // ksqlDB's `Join-repartition` carries the row too). A NULL
                // join key is dropped, as the direct join drops it.
                let key = left_key.eval(&row);
                if key.is_null() {
                    return Ok(());
                }
                let value = state::encode_parts(&[&row, &[Value::Bigint(ts)]]);
                out.push(Repartitioned {
                    topic: 0,
                    key: vec![key],
                    value,
                    timestamp: ts,
                });
                return Ok(());
            }
            Op::Joins { stages, .. } => {
                // A join input re-keyed by the side of the stage it enters.
                let Some((topic, (s, side))) = self.rekeys.iter().enumerate().find_map(|(j, r)| {
                    (r.feed == Feed::Input(rec.input)).then_some((j, r.enters?))
                }) else {
                    return Ok(());
                };
                let key = match side {
                    0 => stages[s].left_key.eval(&row),
                    _ => stages[s].right_key.eval(&row),
                };
                if key.is_null() {
                    // Counted as the direct join counts it.
                    self.skipped += 1;
                    return Ok(());
                }
                let value = state::encode_parts(&[&row, &[Value::Bigint(ts)]]);
                out.push(Repartitioned {
                    topic,
                    key: vec![key],
                    value,
                    timestamp: ts,
                });
                return Ok(());
            }
            _ => return Ok(()),
        };
        if filter
            .as_ref()
            .is_some_and(|f| f.eval(&row) != Value::Boolean(true))
        {
            return Ok(());
        }
        let key: Vec<Value> = group.iter().map(|g| g.eval(&row)).collect();
        if key.iter().any(Value::is_null) {
            self.skipped += 1;
            return Ok(());
        }
        // What the aggregation reads, as ksqlDB's `Aggregate-Prepare`
        // projects it: the grouping key, the aggregates' arguments and the
        // event time.
        let args: Vec<Value> = aggs
            .iter()
            .map(|a| a.arg.as_ref().map_or(Value::Null, |n| n.eval(&row)))
            .collect();
        let value = state::encode_parts(&[&key, &args, &[Value::Bigint(ts)]]);
        out.push(Repartitioned {
            topic: 0,
            key,
            value,
            timestamp: ts,
        });
        Ok(())
    }

    /// The first half of a `GROUP BY` over a table, as Kafka Streams'
    /// table `groupBy` sends it: each update's old row (to undo) and new
    /// row (to add), by their group keys; one record when both have the
    /// same key, else one to each key's partition (the old first). The
    /// table's rows stay here (restored by replaying the table's topic up
    /// to the committed offsets); the aggregates live in the second half.
    fn repartition_table(
        &mut self,
        rec: &InRecord<'_>,
        out: &mut Vec<Repartitioned>,
    ) -> Result<()> {
        let decoded = self.row(rec)?;
        let kb = key_bytes(&self.key_of(rec)?);
        let old = match &decoded {
            Some((row, _)) => self.table.insert(kb, row.clone()),
            None => self.table.remove(&kb),
        };
        let ts = decoded.as_ref().map_or(rec.timestamp, |(_, t)| *t);
        let old = old.as_deref().and_then(|r| self.contribution(r));
        let new = decoded.as_ref().and_then(|(r, _)| self.contribution(r));
        let width = match &self.plan.op {
            Op::Aggregate { aggs, .. } => aggs.len(),
            _ => return Ok(()),
        };
        let mut push = |key: Vec<Value>, undo: Option<Vec<Value>>, add: Option<Vec<Value>>| {
            let flag = |v: &Option<Vec<Value>>| [Value::Boolean(v.is_some())];
            let value = state::encode_parts(&[
                &key,
                &flag(&undo),
                &undo.clone().unwrap_or_else(|| nulls(width)),
                &flag(&add),
                &add.clone().unwrap_or_else(|| nulls(width)),
                &[Value::Bigint(ts)],
            ]);
            out.push(Repartitioned {
                topic: 0,
                key,
                value,
                timestamp: ts,
            });
        };
        match (old, new) {
            (Some((ok, undo)), Some((nk, add))) if key_bytes(&ok) == key_bytes(&nk) => {
                push(nk, Some(undo), Some(add));
            }
            (old, new) => {
                if let Some((ok, undo)) = old {
                    push(ok, Some(undo), None);
                }
                if let Some((nk, add)) = new {
                    push(nk, None, Some(add));
                }
            }
        }
        Ok(())
    }

    /// A table row's part in an aggregation over the table: its group key
    /// and the aggregates' arguments, or `None` when the filter drops it
    /// or its key is NULL.
    fn contribution(&self, row: &[Value]) -> Option<(Vec<Value>, Vec<Value>)> {
        let Op::Aggregate {
            filter,
            group,
            aggs,
            ..
        } = &self.plan.op
        else {
            return None;
        };
        if filter
            .as_ref()
            .is_some_and(|f| f.eval(row) != Value::Boolean(true))
        {
            return None;
        }
        let key: Vec<Value> = group.iter().map(|g| g.eval(row)).collect();
        if key.iter().any(Value::is_null) {
            return None;
        }
        let args = aggs
            .iter()
            .map(|a| a.arg.as_ref().map_or(Value::Null, |n| n.eval(row)))
            .collect();
        Some((key, args))
    }

    /// The second half: a record read back from the repartition topic
    /// (its value, partition and offset), aggregated or joined as a
    /// source record would be.
    pub fn process_repartitioned(&mut self, rec: &InRecord<'_>, fx: &mut Effects) -> Result<()> {
        self.process_rekeyed(0, rec, fx)
    }

    /// A record read back from repartition topic `topic` (an index of
    /// [`Plan::repartitions`]).
    pub fn process_rekeyed(
        &mut self,
        topic: usize,
        rec: &InRecord<'_>,
        fx: &mut Effects,
    ) -> Result<()> {
        let mut row = state::decode(rec.value.unwrap_or_default())?;
        let plan = self.plan.clone();
        let (keys, args) = match &plan.op {
            Op::Aggregate { group, aggs, .. } if plan.is_table_aggregate() => {
                // [key.., undo?, undo args.., add?, add args.., time]
                let (k, n) = (group.len(), aggs.len());
                let (ts, add, undo) = match (row.pop(), row.len() == k + 2 + 2 * n) {
                    (Some(Value::Bigint(t)), true) => {
                        let add = row.split_off(k + 1 + n);
                        let undo = row.split_off(k);
                        (t, add, undo)
                    }
                    _ => {
                        return Err(SqlError::serde(
                            "repartition",
                            "not a repartitioned row of this query",
                        ))
                    }
                };
                let part = |mut v: Vec<Value>| match v.first() {
                    Some(Value::Boolean(true)) => Some(v.split_off(1)),
                    _ => None,
                };
                let (undo, add) = (part(undo), part(add));
                self.stream_time = self.stream_time.max(ts);
                self.table_update(&row, aggs, undo.as_deref(), add.as_deref(), ts, fx);
                return Ok(());
            }
            Op::Aggregate { group, aggs, .. } => (group.len(), aggs.len()),
            Op::StreamTable { .. } => {
                let ts = match row.pop() {
                    Some(Value::Bigint(t)) if row.len() == self.plan.inputs[0].width() => t,
                    _ => {
                        return Err(SqlError::serde(
                            "repartition",
                            "not a repartitioned row of this query",
                        ))
                    }
                };
                self.stream_time = self.stream_time.max(ts);
                self.stream_table(row, ts, fx);
                return Ok(());
            }
            Op::Joins { stages, .. } => {
                let rekey = self.rekeys.get(topic);
                let (Some((s, side)), Some(feed)) =
                    (rekey.and_then(|r| r.enters), rekey.map(|r| r.feed))
                else {
                    return Ok(());
                };
                let width = match side {
                    0 => stages[s].left_width,
                    _ => stages[s].right_width,
                };
                let ts = match row.pop() {
                    Some(Value::Bigint(t)) if row.len() == width => t,
                    _ => {
                        return Err(SqlError::serde(
                            "repartition",
                            "not a repartitioned row of this query",
                        ))
                    }
                };
                self.stream_time = self.stream_time.max(ts);
                // Buffered rows are named by the repartition record that
                // brought them (its partition and offset), stable across
                // replays as a source record's are; a stage's rows by one
                // more input number per stage, after the plan's inputs.
                let origin = match feed {
                    Feed::Input(i) => i,
                    Feed::Stage(k) => plan.inputs.len() + k,
                };
                self.join_rows(
                    (s, side),
                    (origin, rec.partition, rec.offset),
                    vec![(row, ts)],
                    fx,
                );
                return Ok(());
            }
            _ => return Ok(()),
        };
        let ts = match row.pop() {
            Some(Value::Bigint(t)) if row.len() == keys + args => t,
            _ => {
                return Err(SqlError::serde(
                    "repartition",
                    "not a repartitioned row of this query",
                ))
            }
        };
        let args = row.split_off(keys);
        self.stream_time = self.stream_time.max(ts);
        self.aggregate_keyed(row, args, ts, fx);
        Ok(())
    }

    /// One update of a table of a chain of table–table joins. Input 0 is
    /// the first stage's left side, input `i` the right side of stage
    /// `i - 1`; what a stage emits (a joined row or a tombstone) updates
    /// the next stage's left side, as each join of a Kafka Streams
    /// topology feeds the next, and the last stage's output is the result.
    fn table_chain(
        &mut self,
        input: usize,
        key: Vec<Value>,
        row: Option<(Vec<Value>, i64)>,
        ts: i64,
        fx: &mut Effects,
    ) {
        let plan = self.plan.clone();
        let Op::TableChain {
            kinds,
            synthetic_key,
            filter,
            values,
            ..
        } = &plan.op
        else {
            return;
        };
        let kb = key_bytes(&key);
        let (mut stage, mut from_left) = match input {
            0 => (0, true),
            i => (i - 1, false),
        };
        let mut update = row;
        let mut ts = update.as_ref().map_or(ts, |(_, t)| *t);
        loop {
            let lw: usize = plan.inputs[..=stage].iter().map(|i| i.width()).sum();
            let rw = plan.inputs[stage + 1].width();
            let st = &mut self.chain[stage];
            let (this, other) = if from_left {
                (&mut st.left, &st.right)
            } else {
                (&mut st.right, &st.left)
            };
            let old = match &update {
                Some(r) => this.insert(kb.clone(), r.clone()),
                None => this.remove(&kb),
            };
            if update.is_none() && old.is_none() {
                // Deleting a row that was never there changes nothing.
                return;
            }
            let other = other.get(&kb).cloned();
            let (l, r) = if from_left {
                (update.clone(), other.clone())
            } else {
                (other.clone(), update.clone())
            };
            let kind = kinds[stage];
            let emit = match kind {
                JoinType::Inner => other.is_some(),
                JoinType::Left => l.is_some() || (from_left && old.is_some()),
                JoinType::Right => r.is_some() || (!from_left && old.is_some()),
                JoinType::Full => true,
            };
            if !emit {
                return;
            }
            ts = other.as_ref().map_or(ts, |(_, t)| ts.max(*t));
            let present = match kind {
                JoinType::Inner => l.is_some() && r.is_some(),
                JoinType::Left => l.is_some(),
                JoinType::Right => r.is_some(),
                JoinType::Full => l.is_some() || r.is_some(),
            };
            update = present.then(|| {
                let joined = l
                    .map_or_else(|| nulls(lw), |(row, _)| row)
                    .into_iter()
                    .chain(r.map_or_else(|| nulls(rw), |(row, _)| row))
                    .collect();
                (joined, ts)
            });
            if stage + 1 == kinds.len() {
                break;
            }
            stage += 1;
            from_left = true;
        }
        // A row the WHERE clause rejects is a tombstone, as for any
        // filtered table.
        let value = update
            .map(|(mut j, _)| {
                if *synthetic_key {
                    j.push(key[0].clone());
                }
                j
            })
            .filter(|j| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.eval(j) == Value::Boolean(true))
            });
        fx.rows.push(OutRow {
            key,
            value: value.map(|j| values.iter().map(|n| n.eval(&j)).collect()),
            timestamp: ts,
            window: None,
        });
    }

    /// A table row's timestamp (its ROWTIME column).
    fn row_time(&self, input: usize, row: &[Value]) -> i64 {
        let src = &self.plan.inputs[input].source;
        match row.get(src.rowtime_index()) {
            Some(Value::Bigint(t)) => *t,
            _ => i64::MIN,
        }
    }

    /// One update of either table of a table-table join, with Kafka
    /// Streams' rules (as ksqlDB runs them): an inner join emits only when
    /// both sides have the key, a left (right) join whenever the left
    /// (right) side has it, a full join always; a deleted row becomes a
    /// tombstone; the result's timestamp is the later of the two rows'.
    fn table_table(
        &mut self,
        input: usize,
        key: Vec<Value>,
        row: Option<Vec<Value>>,
        ts: i64,
        fx: &mut Effects,
    ) {
        let plan = self.plan.clone();
        let Op::TableTable {
            kind,
            foreign_key,
            synthetic_key,
            ..
        } = &plan.op
        else {
            return;
        };
        let kb = key_bytes(&key);
        if let Some(fk) = foreign_key {
            self.foreign_key_join(input, kb, row, ts, *kind, fk, fx);
            return;
        }
        let old = if input == 0 {
            match &row {
                Some(r) => self.left.insert(kb.clone(), r.clone()),
                None => self.left.remove(&kb),
            }
        } else {
            match &row {
                Some(r) => self.table.insert(kb.clone(), r.clone()),
                None => self.table.remove(&kb),
            }
        };
        if row.is_none() && old.is_none() {
            // Deleting a row that was never there changes nothing.
            return;
        }
        let other_input = 1 - input;
        let other = if input == 0 {
            self.table.get(&kb)
        } else {
            self.left.get(&kb)
        }
        .cloned();
        let (l, r) = if input == 0 {
            (row.clone(), other.clone())
        } else {
            (other.clone(), row.clone())
        };
        let emit = match kind {
            JoinType::Inner => other.is_some(),
            JoinType::Left => l.is_some() || (input == 0 && old.is_some()),
            JoinType::Right => r.is_some() || (input == 1 && old.is_some()),
            JoinType::Full => true,
        };
        if !emit {
            return;
        }
        let out_ts = other
            .as_ref()
            .map_or(ts, |o| ts.max(self.row_time(other_input, o)));
        let present = match kind {
            JoinType::Inner => l.is_some() && r.is_some(),
            JoinType::Left => l.is_some(),
            JoinType::Right => r.is_some(),
            JoinType::Full => l.is_some() || r.is_some(),
        };
        let joined = present.then(|| {
            let mut j = self.joined_row(l, r);
            if *synthetic_key {
                j.push(key[0].clone());
            }
            j
        });
        self.emit_joined(vec![key[0].clone()], joined, out_ts, fx);
    }

    fn joined_row(&self, l: Option<Vec<Value>>, r: Option<Vec<Value>>) -> Vec<Value> {
        let lw = self.plan.inputs[0].width();
        let rw = self.plan.inputs[1].width();
        l.unwrap_or_else(|| nulls(lw))
            .into_iter()
            .chain(r.unwrap_or_else(|| nulls(rw)))
            .collect()
    }

    /// Emits a join result (or its tombstone); a row the WHERE clause
    /// rejects is a tombstone too, as for any filtered table.
    fn emit_joined(&self, key: Vec<Value>, joined: Option<Vec<Value>>, ts: i64, fx: &mut Effects) {
        let Op::TableTable { filter, values, .. } = &self.plan.op else {
            return;
        };
        let value = joined.filter(|j| {
            filter
                .as_ref()
                .is_none_or(|f| f.eval(j) == Value::Boolean(true))
        });
        fx.rows.push(OutRow {
            key,
            value: value.map(|j| values.iter().map(|n| n.eval(&j)).collect()),
            timestamp: ts,
            window: None,
        });
    }

    /// A foreign-key join: left rows name a right key through `fk`; the
    /// result is keyed by the left key.
    #[allow(clippy::too_many_arguments)]
    fn foreign_key_join(
        &mut self,
        input: usize,
        kb: Vec<u8>,
        row: Option<Vec<Value>>,
        ts: i64,
        kind: JoinType,
        fk: &Node,
        fx: &mut Effects,
    ) {
        let plan = self.plan.clone();
        let Op::TableTable { key, .. } = &plan.op else {
            return;
        };
        let fk_of = |r: &[Value]| -> Option<Vec<u8>> {
            let v = fk.eval(r);
            (!v.is_null()).then(|| key_bytes(&[v]))
        };
        if input == 0 {
            let old = match &row {
                Some(r) => self.left.insert(kb.clone(), r.clone()),
                None => self.left.remove(&kb),
            };
            let old_fk = old.as_deref().and_then(fk_of);
            if let Some(f) = &old_fk {
                if let Some(set) = self.by_foreign_key.get_mut(f) {
                    set.remove(&kb);
                    if set.is_empty() {
                        self.by_foreign_key.remove(f);
                    }
                }
            }
            let old_matched = old_fk.as_ref().is_some_and(|f| self.table.contains_key(f));
            let Some(new) = row else {
                if let Some(o) = old {
                    if old_matched || kind == JoinType::Left {
                        let j = self.joined_row(Some(o), None);
                        let k = key.iter().map(|n| n.eval(&j)).collect();
                        self.emit_joined(k, None, ts, fx);
                    }
                }
                return;
            };
            let new_fk = fk_of(&new);
            if let Some(f) = &new_fk {
                self.by_foreign_key
                    .entry(f.clone())
                    .or_default()
                    .insert(kb.clone());
            }
            let right = new_fk.as_ref().and_then(|f| self.table.get(f)).cloned();
            let out_ts = right.as_ref().map_or(ts, |r| ts.max(self.row_time(1, r)));
            let out_key: Vec<Value> = key
                .iter()
                .map(|n| n.eval(&self.joined_row(Some(new.clone()), None)))
                .collect();
            match (right, kind) {
                (Some(r), _) => {
                    let j = self.joined_row(Some(new), Some(r));
                    self.emit_joined(out_key, Some(j), out_ts, fx);
                }
                (None, JoinType::Left) => {
                    let j = self.joined_row(Some(new), None);
                    self.emit_joined(out_key, Some(j), out_ts, fx);
                }
                // An inner join's row that stops matching is deleted.
                (None, _) if old_matched => self.emit_joined(out_key, None, out_ts, fx),
                (None, _) => {}
            }
            return;
        }
        let old = match &row {
            Some(r) => self.table.insert(kb.clone(), r.clone()),
            None => self.table.remove(&kb),
        };
        if row.is_none() && old.is_none() {
            return;
        }
        let lefts: Vec<Vec<Value>> = self
            .by_foreign_key
            .get(&kb)
            .into_iter()
            .flatten()
            .filter_map(|lk| self.left.get(lk).cloned())
            .collect();
        for l in lefts {
            let out_ts = ts.max(self.row_time(0, &l));
            let out_key: Vec<Value> = key
                .iter()
                .map(|n| n.eval(&self.joined_row(Some(l.clone()), None)))
                .collect();
            let joined = match (&row, kind) {
                (Some(r), _) => Some(self.joined_row(Some(l), Some(r.clone()))),
                (None, JoinType::Left) => Some(self.joined_row(Some(l), None)),
                (None, _) => None,
            };
            self.emit_joined(out_key, joined, out_ts, fx);
        }
    }

    /// A record of a join chain: input 0 is the first stage's left side,
    /// input `i` the right side of stage `i - 1`; what a stage emits is the
    /// left side of the next, and the last stage's rows are the output,
    /// keyed by its join key.
    fn joins(
        &mut self,
        rec: &InRecord<'_>,
        decoded: Option<(Vec<Value>, i64)>,
        fx: &mut Effects,
    ) -> Result<()> {
        let plan = self.plan.clone();
        let Op::Joins { stages, .. } = &plan.op else {
            return Ok(());
        };
        let (idx, side) = match rec.input {
            0 => (0, 0),
            i => (i - 1, 1),
        };
        if stages[idx].window.is_none() && side == 1 {
            let k = key_bytes(&self.key_of(rec)?);
            self.stages[idx].table_update(k, decoded.map(|(row, _)| row));
            return Ok(());
        }
        let Some((row, ts)) = decoded else {
            return Ok(());
        };
        self.join_rows(
            (idx, side),
            (rec.input, rec.partition, rec.offset),
            vec![(row, ts)],
            fx,
        );
        Ok(())
    }

    /// Rows entering stage `at.0` on side `at.1`, named by the record that
    /// brought them (`from`: input, partition, offset), and through the
    /// following stages; when a stage's rows re-key for the next one,
    /// they go to its repartition topic (`fx.rekeyed`) instead.
    fn join_rows(
        &mut self,
        at: (usize, usize),
        from: (usize, i32, i64),
        mut rows: Vec<(Vec<Value>, i64)>,
        fx: &mut Effects,
    ) {
        let plan = self.plan.clone();
        let Op::Joins {
            stages,
            synthetic_key,
            filter,
            values,
            ..
        } = &plan.op
        else {
            return;
        };
        let (mut idx, mut side) = at;
        let mut rank = 0u32;
        loop {
            let mut out: Vec<Joined> = Vec::new();
            for (row, ts) in rows {
                let origin = (from.0 as u32, from.1, from.2, rank);
                rank += 1;
                let kept = self.stages[idx].process(
                    idx,
                    &stages[idx],
                    side,
                    row,
                    ts,
                    origin,
                    &mut fx.changelog,
                    &mut out,
                );
                if !kept {
                    self.skipped += 1;
                }
            }
            if idx + 1 == stages.len() {
                for mut j in out {
                    if *synthetic_key {
                        j.row.push(j.key.clone());
                    }
                    if filter
                        .as_ref()
                        .is_some_and(|f| f.eval(&j.row) != Value::Boolean(true))
                    {
                        continue;
                    }
                    // The key is the join key, whichever side is present.
                    fx.rows.push(OutRow {
                        key: vec![j.key],
                        value: Some(values.iter().map(|n| n.eval(&j.row)).collect()),
                        timestamp: j.ts,
                        window: None,
                    });
                }
                return;
            }
            if out.is_empty() {
                return;
            }
            if let Some(topic) = self.rekeys.iter().position(|r| r.feed == Feed::Stage(idx)) {
                // The next stage joins on another expression: its left
                // side goes through its repartition topic, re-keyed; a
                // NULL key is dropped and counted, as the direct join does.
                let next = &stages[idx + 1];
                for j in out {
                    let key = next.left_key.eval(&j.row);
                    if key.is_null() {
                        self.skipped += 1;
                        continue;
                    }
                    fx.rekeyed.push(Repartitioned {
                        topic,
                        key: vec![key],
                        value: state::encode_parts(&[&j.row, &[Value::Bigint(j.ts)]]),
                        timestamp: j.ts,
                    });
                }
                return;
            }
            rows = out.into_iter().map(|j| (j.row, j.ts)).collect();
            idx += 1;
            side = 0;
        }
    }

    /// Writes state that is not logged record by record (each join
    /// stage's stream time), once per transaction.
    pub fn checkpoint(&mut self, fx: &mut Effects) {
        for (i, st) in self.stages.iter_mut().enumerate() {
            st.checkpoint(i, &mut fx.changelog);
        }
    }

    fn source_window(&self, row: &[Value], input: usize) -> Option<Window> {
        let src = &self.plan.inputs[input].source;
        src.window?;
        let base = src.rowtime_index() + 3;
        match (&row[base], &row[base + 1]) {
            (Value::Bigint(s), Value::Bigint(e)) => Some(Window { start: *s, end: *e }),
            _ => None,
        }
    }

    /// Restores a table-table join's state from one record of either
    /// table (replaying their topics up to the committed offsets); what
    /// it would emit was emitted before the restart.
    pub fn restore_join_record(&mut self, rec: &InRecord<'_>) -> Result<()> {
        self.process(rec, &mut Effects::default())
    }

    /// Restores a table-side row (replaying the table's topic).
    pub fn restore_table(&mut self, rec: &InRecord<'_>) -> Result<()> {
        let k = key_bytes(&self.key_of(rec)?);
        if matches!(self.plan.op, Op::Joins { .. }) {
            let row = self.row(rec)?.map(|(row, _)| row);
            if let Some(st) = self.stages.get_mut(rec.input.wrapping_sub(1)) {
                st.table_update(k, row);
            }
            return Ok(());
        }
        let row = self.row(rec)?;
        self.table_put(k, row, rec.timestamp);
        Ok(())
    }

    /// A stream–table join's table record: a new version when the join
    /// goes through `Join-repartition`, else the row replaced.
    fn table_put(&mut self, k: Vec<u8>, row: Option<(Vec<Value>, i64)>, record_ts: i64) {
        if self.versioned() {
            let ts = row.as_ref().map_or(record_ts, |(_, t)| *t);
            self.history.put(k, row.map(|(r, _)| r), ts);
            return;
        }
        match row {
            Some((row, _)) => {
                self.table.insert(k, row);
            }
            None => {
                self.table.remove(&k);
            }
        }
    }

    /// Whether the join's table is kept as versions: a stream–table join
    /// whose stream is re-keyed through its topic. Its rows come back
    /// after the table has moved on (and, split into tasks, from other
    /// threads in no time order), so each looks the table up as of its
    /// own time; a direct join meets the table in timestamp order.
    fn versioned(&self) -> bool {
        matches!(self.plan.op, Op::StreamTable { .. }) && !self.rekeys.is_empty()
    }

    fn stream_table(&mut self, row: Vec<Value>, ts: i64, fx: &mut Effects) {
        let plan = self.plan.clone();
        let Op::StreamTable {
            kind,
            left_key,
            filter,
            key,
            values,
        } = &plan.op
        else {
            return;
        };
        let k = left_key.eval(&row);
        if k.is_null() {
            // ksqlDB drops stream records with a NULL join key.
            return;
        }
        let right_width = self.plan.inputs[1].width();
        let kb = key_bytes(&[k]);
        let right = match self.versioned() {
            true => self.history.at(&kb, ts),
            false => self.table.get(&kb),
        };
        let joined: Vec<Value> = match (right, kind) {
            (Some(r), _) => row.into_iter().chain(r.iter().cloned()).collect(),
            (None, JoinType::Left) => row.into_iter().chain(nulls(right_width)).collect(),
            (None, _) => return,
        };
        if filter
            .as_ref()
            .is_some_and(|f| f.eval(&joined) != Value::Boolean(true))
        {
            return;
        }
        fx.rows.push(OutRow {
            key: key.iter().map(|n| n.eval(&joined)).collect(),
            value: Some(values.iter().map(|n| n.eval(&joined)).collect()),
            timestamp: ts,
            window: None,
        });
    }

    fn aggregate(&mut self, row: &[Value], ts: i64, fx: &mut Effects) {
        let plan = self.plan.clone();
        let Op::Aggregate {
            filter,
            group,
            aggs,
            ..
        } = &plan.op
        else {
            return;
        };
        if filter
            .as_ref()
            .is_some_and(|f| f.eval(row) != Value::Boolean(true))
        {
            return;
        }
        let key: Vec<Value> = group.iter().map(|g| g.eval(row)).collect();
        if key.iter().any(Value::is_null) {
            // ksqlDB drops rows whose grouping key is NULL.
            self.skipped += 1;
            return;
        }
        let args: Vec<Value> = aggs
            .iter()
            .map(|a| a.arg.as_ref().map_or(Value::Null, |n| n.eval(row)))
            .collect();
        self.aggregate_keyed(key, args, ts, fx);
    }

    /// Aggregates one row's grouping key and aggregate arguments.
    fn aggregate_keyed(&mut self, key: Vec<Value>, args: Vec<Value>, ts: i64, fx: &mut Effects) {
        let plan = self.plan.clone();
        let Op::Aggregate { aggs, window, .. } = &plan.op else {
            return;
        };
        let kb = key_bytes(&key);
        match window {
            None => self.update(&kb, i64::MIN, &key, None, aggs, &args, ts, fx),
            Some(spec) => match spec.kind {
                crate::ast::WindowKind::Tumbling { size_ms } => {
                    let start = ts - ts.rem_euclid(size_ms);
                    self.update_window(
                        &kb,
                        &key,
                        Window {
                            start,
                            end: start + size_ms,
                        },
                        spec,
                        aggs,
                        &args,
                        ts,
                        fx,
                    );
                }
                crate::ast::WindowKind::Hopping {
                    size_ms,
                    advance_ms,
                } => {
                    let last = ts - ts.rem_euclid(advance_ms);
                    let mut start = last;
                    let mut windows = Vec::new();
                    while start > ts - size_ms {
                        if start >= 0 || ts < 0 {
                            windows.push(start);
                        }
                        start -= advance_ms;
                    }
                    for s in windows.into_iter().rev() {
                        self.update_window(
                            &kb,
                            &key,
                            Window {
                                start: s,
                                end: s + size_ms,
                            },
                            spec,
                            aggs,
                            &args,
                            ts,
                            fx,
                        );
                    }
                }
                crate::ast::WindowKind::Session { gap_ms } => {
                    self.session(&kb, &key, gap_ms, spec, aggs, &args, ts, fx);
                }
            },
        }
        self.expire_windows(fx);
    }

    /// One update of an aggregated table, as Kafka Streams' KTable
    /// aggregation runs it for ksqlDB: the old row's contribution is undone
    /// and the new row's added. When both fall in the same group one row is
    /// emitted; otherwise the old group's (after the undo) comes first, then
    /// the new group's. Rows the WHERE drops or whose group key is NULL
    /// contribute nothing; a group whose rows all went stays, at zero.
    fn table_aggregate(
        &mut self,
        key: Vec<Value>,
        new: Option<(Vec<Value>, i64)>,
        ts: i64,
        fx: &mut Effects,
    ) {
        let plan = self.plan.clone();
        let Op::Aggregate { aggs, .. } = &plan.op else {
            return;
        };
        let kb = key_bytes(&key);
        let old = match &new {
            Some((row, _)) => self.table.insert(kb, row.clone()),
            None => self.table.remove(&kb),
        };
        let ts = new.as_ref().map_or(ts, |(_, t)| *t);
        let old = old.as_deref().and_then(|r| self.contribution(r));
        let new = new.as_ref().and_then(|(row, _)| self.contribution(row));
        match (old, new) {
            (Some((ok, undo)), Some((nk, add))) if key_bytes(&ok) == key_bytes(&nk) => {
                self.table_update(&nk, aggs, Some(&undo), Some(&add), ts, fx);
            }
            (old, new) => {
                if let Some((ok, undo)) = old {
                    self.table_update(&ok, aggs, Some(&undo), None, ts, fx);
                }
                if let Some((nk, add)) = new {
                    self.table_update(&nk, aggs, None, Some(&add), ts, fx);
                }
            }
        }
    }

    /// Undoes and/or adds one row's aggregate arguments in a group, logs
    /// the group's state and emits its result.
    fn table_update(
        &mut self,
        key: &[Value],
        aggs: &[AggSpec],
        undo: Option<&[Value]>,
        add: Option<&[Value]>,
        ts: i64,
        fx: &mut Effects,
    ) {
        let sl = slot(&key_bytes(key), i64::MIN);
        if !self.aggs.contains_key(&sl) {
            if add.is_none() {
                return;
            }
            let e = AggEntry {
                key: key.to_vec(),
                window: None,
                states: aggs.iter().map(|a| (a.func.init)(&a.call)).collect(),
                timestamp: ts,
                emitted: false,
            };
            self.insert_slot(sl.clone(), e);
        }
        let plan = self.plan.clone();
        let Some(entry) = self.aggs.get_mut(&sl) else {
            return;
        };
        for (i, (a, s)) in aggs.iter().zip(entry.states.iter_mut()).enumerate() {
            // The planner only accepts undoable aggregates over tables.
            if let (Some(args), Some(undo_fn)) = (undo, a.func.undo) {
                undo_fn(&a.call, s, &args[i]);
            }
            if let Some(args) = add {
                (a.func.add)(&a.call, s, &args[i]);
            }
        }
        entry.timestamp = entry.timestamp.max(ts);
        log_entry(entry, fx);
        fx.rows.push(entry_row(&plan, entry));
    }

    /// Whether a window is closed: its end plus the grace period is at or
    /// before stream time.
    fn closed(&self, w: &Window, spec: &WindowSpec) -> bool {
        w.end.saturating_add(spec.grace_ms) <= self.stream_time
    }

    #[allow(clippy::too_many_arguments)]
    fn update_window(
        &mut self,
        kb: &[u8],
        key: &[Value],
        w: Window,
        spec: &WindowSpec,
        aggs: &[AggSpec],
        args: &[Value],
        ts: i64,
        fx: &mut Effects,
    ) {
        if self.closed(&w, spec) {
            self.skipped += 1;
            return;
        }
        self.update(kb, w.start, key, Some(w), aggs, args, ts, fx);
    }

    /// Adds one record's arguments to its group's (and window's) entry,
    /// in place: the changelog value and the result row are made from
    /// the entry, not from a copy of it.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        kb: &[u8],
        start: i64,
        key: &[Value],
        window: Option<Window>,
        aggs: &[AggSpec],
        args: &[Value],
        ts: i64,
        fx: &mut Effects,
    ) {
        self.slot_buf.clear();
        push_slot(&mut self.slot_buf, kb, start);
        if !self.aggs.contains_key(self.slot_buf.as_slice()) {
            let e = AggEntry {
                key: key.to_vec(),
                window,
                states: aggs.iter().map(|a| (a.func.init)(&a.call)).collect(),
                timestamp: ts,
                emitted: false,
            };
            self.insert_slot(self.slot_buf.clone(), e);
        }
        let plan = self.plan.clone();
        let Some(entry) = self.aggs.get_mut(self.slot_buf.as_slice()) else {
            return;
        };
        for ((a, s), v) in aggs.iter().zip(entry.states.iter_mut()).zip(args) {
            (a.func.add)(&a.call, s, v);
        }
        entry.timestamp = entry.timestamp.max(ts);
        log_entry(entry, fx);
        if !emits_final(&plan) {
            fx.rows.push(entry_row(&plan, entry));
        }
    }

    /// Stores an entry. A new window, or a session whose window changed,
    /// is indexed under its key and scheduled to close and expire; an
    /// update of a window already there is not (its end is the same).
    fn insert_slot(&mut self, sl: Vec<u8>, e: AggEntry) {
        let window = e.window;
        let old = self.aggs.insert(sl.clone(), e);
        let Some(w) = window else {
            return;
        };
        match &old {
            Some(o) if o.window == window => return,
            Some(_) => {}
            None => {
                let kb = &sl[..sl.len() - 8];
                match self.windows.get_mut(kb) {
                    Some(starts) => {
                        if let Err(i) = starts.binary_search(&w.start) {
                            starts.insert(i, w.start);
                        }
                    }
                    None => {
                        self.windows.insert(kb.to_vec(), vec![w.start]);
                    }
                }
            }
        }
        self.schedule(w, sl);
    }

    /// Removes an entry (and its key's index of windows).
    fn remove_slot(&mut self, sl: &[u8]) -> Option<AggEntry> {
        let e = self.aggs.remove(sl)?;
        if let Some(w) = e.window {
            let kb = &sl[..sl.len() - 8];
            if let Some(starts) = self.windows.get_mut(kb) {
                starts.retain(|s| *s != w.start);
                if starts.is_empty() {
                    self.windows.remove(kb);
                }
            }
        }
        Some(e)
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        kb: &[u8],
        key: &[Value],
        gap: i64,
        spec: &WindowSpec,
        aggs: &[AggSpec],
        args: &[Value],
        ts: i64,
        fx: &mut Effects,
    ) {
        // Sessions of this key that the record touches: start - gap <= ts <= end + gap.
        let hi = ts.saturating_add(gap);
        let touching: Vec<Vec<u8>> = self
            .windows
            .get(kb)
            .into_iter()
            .flatten()
            .take_while(|s| **s <= hi)
            .map(|s| slot(kb, *s))
            .filter(|sl| {
                self.aggs
                    .get(sl)
                    .is_some_and(|e| e.window.is_some_and(|w| w.end.saturating_add(gap) >= ts))
            })
            .collect();
        let plan = self.plan.clone();
        let mut merged = Window { start: ts, end: ts };
        let mut states: Vec<Value> = aggs.iter().map(|a| (a.func.init)(&a.call)).collect();
        let mut max_ts = ts;
        let mut first = true;
        for k in &touching {
            if let Some(e) = self.remove_slot(k) {
                let w = e.window.unwrap_or(merged);
                merged.start = merged.start.min(w.start);
                merged.end = merged.end.max(w.end);
                max_ts = max_ts.max(e.timestamp);
                // The merged-away session is deleted downstream, stamped
                // with its window's end as Kafka Streams does.
                log_delete(&e, fx);
                if !emits_final(&plan) {
                    fx.rows.push(OutRow {
                        key: e.key.clone(),
                        value: None,
                        timestamp: w.end,
                        window: e.window,
                    });
                }
                if first {
                    states = e.states;
                    first = false;
                } else {
                    for ((a, s), o) in aggs.iter().zip(states.iter_mut()).zip(&e.states) {
                        (a.func.merge)(&a.call, s, o);
                    }
                }
            }
        }
        if self.closed(&merged, spec) {
            self.skipped += 1;
            return;
        }
        for ((a, s), v) in aggs.iter().zip(states.iter_mut()).zip(args) {
            (a.func.add)(&a.call, s, v);
        }
        let entry = AggEntry {
            key: key.to_vec(),
            window: Some(merged),
            states,
            timestamp: max_ts,
            emitted: false,
        };
        log_entry(&entry, fx);
        if !emits_final(&plan) {
            fx.rows.push(entry_row(&plan, &entry));
        }
        self.insert_slot(slot(kb, merged.start), entry);
    }

    fn emit_final(&self) -> bool {
        emits_final(&self.plan)
    }

    /// Indexes a window slot by when it closes and when its state may go.
    fn schedule(&mut self, w: Window, sl: Vec<u8>) {
        let Some(spec) = self.plan.window.as_ref() else {
            return;
        };
        let close = w.end.saturating_add(spec.grace_ms);
        let keep = w.end.saturating_add(spec.retention_ms.max(spec.grace_ms));
        if self.emit_final() {
            self.closing.entry(close).or_default().push(sl.clone());
        }
        self.expiring.entry(keep).or_default().push(sl);
    }

    /// EMIT FINAL: emits windows that have closed; drops window state past
    /// its retention (and at least its grace period). Slots due at the
    /// same time go in slot order.
    fn expire_windows(&mut self, fx: &mut Effects) {
        let plan = self.plan.clone();
        let now = self.stream_time;
        let grace = plan.window.as_ref().map_or(0, |s| s.grace_ms);
        while let Some(due) = self.closing.first_entry() {
            if *due.key() > now {
                break;
            }
            let mut slots = due.remove();
            slots.sort_unstable();
            for sl in slots {
                let Some(e) = self.aggs.get_mut(&sl) else {
                    continue;
                };
                let still_open = e.window.is_some_and(|w| w.end.saturating_add(grace) > now);
                if e.emitted || still_open {
                    continue;
                }
                e.emitted = true;
                fx.rows.push(entry_row(&plan, e));
                log_entry(e, fx);
            }
        }
        let retention = plan
            .window
            .as_ref()
            .map_or(0, |s| s.retention_ms.max(s.grace_ms));
        while let Some(due) = self.expiring.first_entry() {
            if *due.key() >= now {
                break;
            }
            let mut slots = due.remove();
            slots.sort_unstable();
            for sl in slots {
                let Some(e) = self.aggs.get(&sl) else {
                    continue;
                };
                // A session that grew since it was scheduled stays.
                if e.window
                    .is_some_and(|w| w.end.saturating_add(retention) >= now)
                {
                    continue;
                }
                if let Some(e) = self.remove_slot(&sl) {
                    log_delete(&e, fx);
                }
            }
        }
    }

    /// The output row of an aggregate entry (HAVING false: a tombstone).
    pub fn result_row(&self, e: &AggEntry) -> OutRow {
        entry_row(&self.plan, e)
    }

    /// Applies a changelog record (restoring state).
    pub fn restore_changelog(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        if matches!(self.plan.op, Op::Joins { .. }) {
            return join::restore(&mut self.stages, key, value);
        }
        let mut k = state::decode(key)?;
        let window = if self.plan.window.is_some() {
            let end = k.pop().and_then(|v| v.as_i64());
            let start = k.pop().and_then(|v| v.as_i64());
            match (start, end) {
                (Some(start), Some(end)) => Some(Window { start, end }),
                _ => {
                    return Err(SqlError::serde(
                        "STATE",
                        "windowed changelog key without window",
                    ))
                }
            }
        } else {
            None
        };
        let sl = slot(&key_bytes(&k), window.map_or(i64::MIN, |w| w.start));
        match value {
            None => {
                self.remove_slot(&sl);
            }
            Some(v) => {
                let mut states = state::decode(v)?;
                let emitted = states.pop().and_then(|v| v.as_bool()).unwrap_or(false);
                let timestamp = states.pop().and_then(|v| v.as_i64()).unwrap_or(0);
                self.stream_time = self.stream_time.max(timestamp);
                let entry = AggEntry {
                    key: k,
                    window,
                    states,
                    timestamp,
                    emitted,
                };
                self.insert_slot(sl, entry);
            }
        }
        Ok(())
    }

    /// Every current result row (pull queries), in key order.
    pub fn results(&self) -> Vec<OutRow> {
        let mut entries: Vec<(&Vec<u8>, &AggEntry)> = self.aggs.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
            .into_iter()
            .map(|(_, e)| self.result_row(e))
            .collect()
    }

    /// The results of one group key, every window of it in order (pull
    /// queries by key): point lookups, no scan.
    pub fn results_for(&self, key: &[Value]) -> Vec<OutRow> {
        let kb = key_bytes(key);
        let unwindowed = [i64::MIN];
        let starts: &[i64] = if self.plan.window.is_some() {
            self.windows.get(&kb).map_or(&[][..], Vec::as_slice)
        } else {
            &unwindowed
        };
        starts
            .iter()
            .filter_map(|s| self.aggs.get(&slot(&kb, *s)))
            .map(|e| self.result_row(e))
            .collect()
    }
}

fn emits_final(plan: &Plan) -> bool {
    matches!(
        plan.op,
        Op::Aggregate {
            emit_final: true,
            ..
        }
    )
}

/// The output row of an aggregate entry (HAVING false: a tombstone).
fn entry_row(plan: &Plan, e: &AggEntry) -> OutRow {
    let Op::Aggregate {
        aggs,
        having,
        values,
        ..
    } = &plan.op
    else {
        return OutRow {
            key: e.key.clone(),
            value: None,
            timestamp: e.timestamp,
            window: e.window,
        };
    };
    let post = post_row(e, aggs);
    let pass = having
        .as_ref()
        .is_none_or(|h| h.eval(&post) == Value::Boolean(true));
    OutRow {
        key: e.key.clone(),
        value: pass.then(|| values.iter().map(|n| n.eval(&post)).collect()),
        timestamp: e.timestamp,
        window: e.window,
    }
}

/// An entry's changelog key: the group key, then the window's start and
/// end when windowed.
fn changelog_key(e: &AggEntry) -> Vec<u8> {
    match e.window {
        Some(w) => state::encode_parts(&[
            e.key.as_slice(),
            &[Value::Bigint(w.start), Value::Bigint(w.end)][..],
        ]),
        None => state::encode(&e.key),
    }
}

fn log_entry(e: &AggEntry, fx: &mut Effects) {
    let value = state::encode_parts(&[
        e.states.as_slice(),
        &[Value::Bigint(e.timestamp), Value::Boolean(e.emitted)][..],
    ]);
    fx.changelog.push((changelog_key(e), Some(value)));
}

fn log_delete(e: &AggEntry, fx: &mut Effects) {
    fx.changelog.push((changelog_key(e), None));
}

/// The post-aggregation row: group keys, aggregate results, WINDOWSTART,
/// WINDOWEND, ROWTIME.
fn post_row(e: &AggEntry, aggs: &[AggSpec]) -> Vec<Value> {
    let mut row = e.key.clone();
    for (a, s) in aggs.iter().zip(&e.states) {
        row.push((a.func.result)(&a.call, s));
    }
    match e.window {
        Some(w) => {
            row.push(Value::Bigint(w.start));
            row.push(Value::Bigint(w.end));
        }
        None => {
            row.push(Value::Null);
            row.push(Value::Null);
        }
    }
    row.push(Value::Bigint(e.timestamp));
    row
}

/// Evaluates a node list against a row (helper for callers).
pub fn eval_all(nodes: &[Node], row: &[Value]) -> Vec<Value> {
    nodes.iter().map(|n| n.eval(row)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Statement;
    use crate::catalog::{source_from_create, MetaStore};
    use crate::parser::parse_one;
    use crate::types::SqlType;

    /// A record read back from a repartition topic.
    fn read_back(value: &[u8], offset: i64) -> InRecord<'_> {
        InRecord {
            input: 99,
            partition: 0,
            offset,
            timestamp: 0,
            key: None,
            value: Some(value),
            headers: &[],
        }
    }

    /// Plans the CREATE ... AS SELECT `sql` over the sources `ddls` create.
    fn plan_over(ddls: &[&str], sql: &str) -> crate::error::Result<crate::plan::Plan> {
        let mut meta = MetaStore::default();
        for ddl in ddls {
            let p = parse_one(ddl, &Default::default()).unwrap();
            let Statement::CreateSource(c) = &p.statement else {
                panic!("not a CREATE")
            };
            let (s, _) = source_from_create(c, &p.text).unwrap();
            meta.sources.insert(s.name.clone(), s);
        }
        let p = parse_one(sql, &Default::default()).unwrap();
        let Statement::CreateAsSelect(c) = &p.statement else {
            panic!("not a CREATE AS SELECT")
        };
        crate::plan::plan(&c.query, &meta, Some("OUT"))
    }

    fn task(sql: &str) -> Task {
        let ddls = [
            "CREATE STREAM L (ID INT KEY, A STRING) WITH (KAFKA_TOPIC='l', VALUE_FORMAT='JSON');",
            "CREATE STREAM R (ID INT KEY, B STRING) WITH (KAFKA_TOPIC='r', VALUE_FORMAT='JSON');",
            "CREATE STREAM C (ID INT KEY, C STRING) WITH (KAFKA_TOPIC='c', VALUE_FORMAT='JSON');",
            "CREATE TABLE T (ID INT PRIMARY KEY, C STRING) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');",
        ];
        Task::new(plan_over(&ddls, sql).unwrap())
    }

    /// (side, id, text, timestamp); each record at its own offset.
    type Input = (usize, i32, &'static str, i64);

    #[test]
    fn plans_split_into_tasks_by_partition_when_state_is_per_partition() {
        let split = |sql: &str| task(sql).plan.partitioned();
        // No state; a stream's key; the repartition topic; a table's GROUP BY
        // (always re-keyed); a stream–table join on the stream's key.
        assert!(split(
            "CREATE STREAM OUT AS SELECT ID, A FROM L WHERE A <> 'x';"
        ));
        assert!(split(
            "CREATE TABLE OUT AS SELECT ID, COUNT(*) AS N FROM L GROUP BY ID;"
        ));
        assert!(split(
            "CREATE TABLE OUT AS SELECT A, COUNT(*) AS N FROM L \
             WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY A;"
        ));
        assert!(split(
            "CREATE TABLE OUT AS SELECT C, COUNT(*) AS N FROM T GROUP BY C;"
        ));
        assert!(split(
            "CREATE STREAM OUT AS SELECT L.ID, A, C FROM L JOIN T ON L.ID = T.ID;"
        ));
        // A join through `Join-repartition` too: its table is versioned,
        // so rows read back from other tasks meet it as of their time.
        let rekeyed = task(
            "CREATE STREAM OUT AS SELECT T.ID, L.ID AS LID, C FROM L JOIN T ON CAST(L.A AS INT) = T.ID;",
        );
        assert_eq!(
            rekeyed.plan.repartition_suffix().as_deref(),
            Some("Join-repartition")
        );
        assert!(split(
            "CREATE STREAM OUT AS SELECT T.ID, L.ID AS LID, C FROM L JOIN T ON CAST(L.A AS INT) = T.ID;"
        ));
        // One task: a stream–stream join.
        assert!(!split(
            "CREATE STREAM OUT AS SELECT L.ID, A, B FROM L JOIN R WITHIN 1 MINUTE ON L.ID = R.ID;"
        ));
    }

    fn feed(t: &mut Task, inputs: &[Input], fx: &mut Effects) {
        for (i, (side, id, text, ts)) in inputs.iter().enumerate() {
            let key = (*id).to_be_bytes();
            let col = ["A", "B", "C"][*side];
            let value = format!("{{\"{col}\":\"{text}\"}}");
            let rec = InRecord {
                input: *side,
                partition: 0,
                offset: i as i64 + 1000 * *ts,
                timestamp: *ts,
                key: Some(&key),
                value: Some(value.as_bytes()),
                headers: &[],
            };
            t.process(&rec, fx).unwrap();
        }
    }

    /// Output rows as (key, A, B, timestamp).
    fn rows(fx: &Effects) -> Vec<(i32, Option<String>, Option<String>, i64)> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        fx.rows
            .iter()
            .map(|r| {
                let v = r.value.clone().unwrap();
                let Value::Int(k) = r.key[0] else {
                    panic!("key {:?}", r.key)
                };
                (k, text(&v[0]), text(&v[1]), r.timestamp)
            })
            .collect()
    }

    fn q(kind: &str, within: &str) -> String {
        // A FULL join's key is the synthetic ROWKEY (either side's key).
        let key = if kind.starts_with("FULL") {
            "ROWKEY"
        } else {
            "L.ID"
        };
        format!("CREATE STREAM OUT AS SELECT {key}, A, B FROM L {kind} JOIN R WITHIN {within} ON L.ID = R.ID;")
    }

    const INPUTS: &[Input] = &[
        (0, 1, "a", 1000),
        (1, 1, "x", 5000),
        (1, 2, "y", 6000),
        (0, 3, "c", 7000),
        (0, 1, "b", 30000),
        (1, 9, "z", 60000),
        // Late: past every window's retention.
        (0, 4, "late", 1000),
    ];

    fn s(x: &str) -> Option<String> {
        Some(x.to_string())
    }

    #[test]
    fn repartitioned_aggregation_equals_the_direct_one() {
        // GROUP BY a value column re-keys; GROUP BY the key does not.
        let by_key = task("CREATE TABLE OUT AS SELECT ID, COUNT(*) AS N FROM L GROUP BY ID;");
        assert_eq!(by_key.plan.repartition_suffix(), None);
        let sql = "CREATE TABLE OUT AS SELECT A, COUNT(*) AS N, MAX(ID) AS M FROM L \
                   WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS) \
                   WHERE A <> 'skip' GROUP BY A;";
        let mut direct = task(sql);
        let mut split = task(sql);
        assert_eq!(
            split.plan.repartition_suffix().as_deref(),
            Some("Aggregate-GroupBy-repartition")
        );
        let inputs: &[(i32, &str, i64)] = &[
            (1, "a", 1000),
            (2, "b", 2000),
            (3, "a", 15000),
            (4, "skip", 16000),
            (5, "a", 3000), // late: its window closed at 10,000 + 0 grace
            (6, "b", 17000),
        ];
        let (mut fx1, mut fx2) = (Effects::default(), Effects::default());
        for (i, (id, a, ts)) in inputs.iter().enumerate() {
            let key = id.to_be_bytes();
            let value = format!("{{\"A\":\"{a}\"}}");
            let rec = InRecord {
                input: 0,
                partition: 0,
                offset: i as i64,
                timestamp: *ts,
                key: Some(&key),
                value: Some(value.as_bytes()),
                headers: &[],
            };
            direct.process(&rec, &mut fx1).unwrap();
            let mut out = Vec::new();
            split.repartition(&rec, &mut out).unwrap();
            if let [r] = &out[..] {
                assert_eq!(r.timestamp, *ts);
                assert_eq!(r.key, vec![Value::String(a.to_string())]);
                split
                    .process_repartitioned(&read_back(&r.value, 0), &mut fx2)
                    .unwrap();
            } else {
                assert!(out.is_empty());
                assert_eq!(*a, "skip");
            }
        }
        assert_eq!(fx1.rows, fx2.rows);
        assert_eq!(fx1.changelog, fx2.changelog);
        assert_eq!(direct.skipped, split.skipped);
        assert_eq!(fx2.rows.len(), 4, "{:?}", fx2.rows);
        assert!(split
            .process_repartitioned(&read_back(b"not state", 0), &mut fx2)
            .is_err());
    }

    #[test]
    fn repartitioned_stream_table_join_equals_the_direct_one() {
        let ddls = [
            "CREATE STREAM O (OID INT KEY, USR INT, AMT INT) WITH (KAFKA_TOPIC='o', VALUE_FORMAT='JSON');",
            "CREATE TABLE U (ID INT PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='u', VALUE_FORMAT='JSON');",
        ];
        let on_key = plan_over(
            &ddls,
            "CREATE STREAM OUT AS SELECT O.OID, U.NAME FROM O JOIN U ON O.OID = U.ID;",
        )
        .unwrap();
        assert_eq!(on_key.repartition_suffix(), None);
        let sql = "CREATE STREAM OUT AS SELECT O.USR, O.AMT, U.NAME FROM O LEFT JOIN U \
                   ON O.USR = U.ID WHERE O.AMT <> 3;";
        let mut direct = Task::new(plan_over(&ddls, sql).unwrap());
        let mut split = Task::new(plan_over(&ddls, sql).unwrap());
        assert_eq!(
            split.plan.repartition_suffix().as_deref(),
            Some("Join-repartition")
        );
        assert_eq!(split.plan.repartition_counts(&[3, 5]), vec![5]);
        let (mut fx1, mut fx2) = (Effects::default(), Effects::default());
        let user = |id: i32, name: Option<&str>, ts: i64, d: &mut Task, s: &mut Task| {
            let key = id.to_be_bytes();
            let value = name.map(|n| format!("{{\"NAME\":\"{n}\"}}"));
            let rec = InRecord {
                input: 1,
                partition: 0,
                offset: ts,
                timestamp: ts,
                key: Some(&key),
                value: value.as_deref().map(str::as_bytes),
                headers: &[],
            };
            let mut fx = Effects::default();
            d.process(&rec, &mut fx).unwrap();
            s.process(&rec, &mut fx).unwrap();
            assert!(fx.rows.is_empty());
        };
        user(1, Some("ann"), 1, &mut direct, &mut split);
        user(2, Some("bob"), 2, &mut direct, &mut split);
        // (order id, user or NULL, amount, timestamp)
        let orders: &[(i32, Option<i32>, i32, i64)] = &[
            (10, Some(1), 1, 100),
            (11, Some(2), 2, 200),
            (12, Some(1), 3, 300), // filtered after the join
            (13, None, 4, 400),    // NULL join key: dropped
            (14, Some(9), 5, 500), // no user: a left join's NULLs
        ];
        for (i, (oid, usr, amt, ts)) in orders.iter().enumerate() {
            if *ts == 300 {
                user(1, None, 250, &mut direct, &mut split);
            }
            let key = oid.to_be_bytes();
            let usr = usr.map_or("null".to_string(), |u| u.to_string());
            let value = format!("{{\"USR\":{usr},\"AMT\":{amt}}}");
            let rec = InRecord {
                input: 0,
                partition: 0,
                offset: i as i64,
                timestamp: *ts,
                key: Some(&key),
                value: Some(value.as_bytes()),
                headers: &[],
            };
            direct.process(&rec, &mut fx1).unwrap();
            let mut out = Vec::new();
            split.repartition(&rec, &mut out).unwrap();
            match &out[..] {
                [r] => {
                    assert_eq!(r.timestamp, *ts);
                    split
                        .process_repartitioned(&read_back(&r.value, 0), &mut fx2)
                        .unwrap();
                }
                _ => assert_eq!(*oid, 13),
            }
        }
        assert_eq!(fx1.rows, fx2.rows);
        let names: Vec<(Value, Value)> = fx2
            .rows
            .iter()
            .map(|r| {
                let v = r.value.as_ref().unwrap();
                (r.key[0].clone(), v[1].clone())
            })
            .collect();
        assert_eq!(
            names,
            vec![
                (Value::Int(1), Value::String("ann".into())),
                (Value::Int(2), Value::String("bob".into())),
                (Value::Int(9), Value::Null),
            ]
        );
        assert!(split
            .process_repartitioned(&read_back(b"[1]", 0), &mut fx2)
            .is_err());
    }

    #[test]
    fn repartitioned_stream_stream_join_equals_the_direct_one() {
        let ddls = [
            "CREATE STREAM L (ID INT KEY, A STRING, RID INT) WITH (KAFKA_TOPIC='l', VALUE_FORMAT='JSON');",
            "CREATE STREAM R (ID INT KEY, B STRING, LID INT) WITH (KAFKA_TOPIC='r', VALUE_FORMAT='JSON');",
        ];
        let plan = |sql: &str| plan_over(&ddls, sql).unwrap();
        // Both sides keyed by the join: nothing to re-key.
        let q = |on: &str| {
            format!(
                "CREATE STREAM OUT AS SELECT {on}, L.A, R.B FROM L LEFT JOIN R \
                 WITHIN 10 SECONDS GRACE PERIOD 5 SECONDS ON {on} = "
            )
        };
        assert_eq!(plan(&(q("L.ID") + "R.ID;")).repartition_suffix(), None);
        for (sql, suffixes) in [
            (q("L.RID") + "R.ID;", &["Join-left-repartition"][..]),
            (q("L.ID") + "R.LID;", &["Join-right-repartition"]),
            (
                q("L.RID") + "R.LID;",
                &["Join-left-repartition", "Join-right-repartition"],
            ),
        ] {
            let mut direct = Task::new(plan(&sql));
            let mut split = Task::through_topics(plan(&sql));
            let names: Vec<String> = split.rekeys.iter().map(|r| r.suffix.clone()).collect();
            assert_eq!(names, suffixes, "{sql}");
            let (mut fx1, mut fx2) = (Effects::default(), Effects::default());
            // (side, key, join column, timestamp): matches, a late one, a
            // NULL join column, an unmatched left row.
            let inputs: &[(usize, i32, Option<i32>, i64)] = &[
                (0, 1, Some(5), 1000),
                (1, 5, Some(1), 2000),
                (0, 2, Some(5), 3000),
                (0, 3, None, 4000),
                (1, 6, Some(2), 9000),
                (0, 4, Some(7), 30000),
                (1, 5, Some(1), 2500),
            ];
            let mut read = 0;
            for (i, (input, id, jc, ts)) in inputs.iter().enumerate() {
                let key = id.to_be_bytes();
                let jc = jc.map_or("null".to_string(), |v| v.to_string());
                let value = match input {
                    0 => format!("{{\"A\":\"a{id}\",\"RID\":{jc}}}"),
                    _ => format!("{{\"B\":\"b{id}\",\"LID\":{jc}}}"),
                };
                let rec = InRecord {
                    input: *input,
                    partition: 0,
                    offset: i as i64,
                    timestamp: *ts,
                    key: Some(&key),
                    value: Some(value.as_bytes()),
                    headers: &[],
                };
                direct.process(&rec, &mut fx1).unwrap();
                through_topics(&mut split, &rec, &mut fx2, &mut read);
            }
            assert!(!fx2.rows.is_empty());
            assert_eq!(fx1.rows, fx2.rows, "{sql}");
            assert_eq!(direct.skipped, split.skipped);
        }
    }

    /// Feeds `rec` to a task that re-keys through topics, reading every
    /// re-keyed row back at once (named by a running offset), as the
    /// runtime does once the row's transaction commits.
    fn through_topics(t: &mut Task, rec: &InRecord<'_>, fx: &mut Effects, read: &mut i64) {
        let mut out = Vec::new();
        if t.rekeys.iter().any(|r| r.feed == Feed::Input(rec.input)) {
            t.repartition(rec, &mut out).unwrap();
        } else {
            t.process(rec, fx).unwrap();
            out.append(&mut fx.rekeyed);
        }
        let mut i = 0;
        while i < out.len() {
            *read += 1;
            let r = out[i].clone();
            t.process_rekeyed(r.topic, &read_back(&r.value, *read), fx)
                .unwrap();
            out.append(&mut fx.rekeyed);
            i += 1;
        }
    }

    #[test]
    fn chains_re_key_each_stage_as_ksqldb_names_it() {
        let ddls = [
            "CREATE STREAM S1 (ID INT KEY, K INT, V INT) WITH (KAFKA_TOPIC='s1', VALUE_FORMAT='JSON', PARTITIONS=2);",
            "CREATE STREAM S2 (ID INT KEY, K INT, V INT) WITH (KAFKA_TOPIC='s2', VALUE_FORMAT='JSON', PARTITIONS=3);",
            "CREATE STREAM S3 (ID INT KEY, V INT) WITH (KAFKA_TOPIC='s3', VALUE_FORMAT='JSON', PARTITIONS=4);",
            "CREATE TABLE T2 (ID INT PRIMARY KEY, V INT) WITH (KAFKA_TOPIC='t2', VALUE_FORMAT='JSON', PARTITIONS=5);",
            "CREATE TABLE T3 (ID INT PRIMARY KEY, V INT) WITH (KAFKA_TOPIC='t3', VALUE_FORMAT='JSON', PARTITIONS=6);",
        ];
        let topics = |sql: &str| {
            let p = plan_over(&ddls, sql).unwrap();
            let counts = p.repartition_counts(&[2, 3, 4]);
            p.repartitions()
                .into_iter()
                .zip(counts)
                .map(|(r, n)| (r.suffix, n))
                .collect::<Vec<_>>()
        };
        let t = |s: &str, n: i32| (s.to_string(), n);
        // ksqlDB's shapes (its multi-joins tests): both sides of the first
        // stage, then a key-equivalent column: no third topic.
        assert_eq!(
            topics(
                "CREATE STREAM O AS SELECT S3.ID, S1.V, S2.V AS V2, S3.V AS V3 FROM S1 \
                 JOIN S2 WITHIN 10 SECONDS ON S1.K = S2.K JOIN S3 WITHIN 10 SECONDS ON S2.K = S3.ID;"
            ),
            vec![
                t("L_Join-left-repartition", 3),
                t("L_Join-right-repartition", 3),
            ]
        );
        // The stage's rows joined on another column re-key for the next.
        assert_eq!(
            topics(
                "CREATE STREAM O AS SELECT S1.V, S2.V AS V2, S3.V AS V3 FROM S1 \
                 JOIN S2 WITHIN 10 SECONDS ON S1.ID = S2.ID JOIN S3 WITHIN 10 SECONDS ON S1.V = S3.V;"
            ),
            vec![
                t("Join-left-repartition", 4),
                t("Join-right-repartition", 4),
            ]
        );
        // Stream–table stages: `Join-repartition`, sized as the table.
        let p = plan_over(
            &ddls,
            "CREATE STREAM O AS SELECT S1.K, T2.V AS V2, T3.V AS V3 FROM S1 \
             JOIN T2 ON S1.V = T2.ID JOIN T3 ON S1.K = T3.ID;",
        )
        .unwrap();
        let names: Vec<String> = p.repartitions().into_iter().map(|r| r.suffix).collect();
        assert_eq!(names, ["L_Join-repartition", "Join-repartition"]);
        assert_eq!(p.repartition_counts(&[2, 5, 6]), vec![5, 6]);
    }

    #[test]
    fn a_chain_through_its_repartition_topics_equals_the_direct_one() {
        let ddls = [
            "CREATE STREAM S1 (ID INT KEY, K INT, V INT) WITH (KAFKA_TOPIC='s1', VALUE_FORMAT='JSON');",
            "CREATE STREAM S2 (ID INT KEY, K INT, V INT) WITH (KAFKA_TOPIC='s2', VALUE_FORMAT='JSON');",
            "CREATE STREAM S3 (ID INT KEY, K INT, V INT) WITH (KAFKA_TOPIC='s3', VALUE_FORMAT='JSON');",
        ];
        // Every side re-keys: S1 and S2 by K, their rows by S1.V, S3 by V.
        let sql = "CREATE STREAM O AS SELECT S1.V, S1.ID AS I1, S2.ID AS I2, S3.ID AS I3 FROM S1 \
                   JOIN S2 WITHIN 10 SECONDS ON S1.K = S2.K \
                   LEFT JOIN S3 WITHIN 5 SECONDS GRACE PERIOD 1 SECOND ON S1.V = S3.V;";
        let plan = plan_over(&ddls, sql).unwrap();
        let names: Vec<String> = plan.repartitions().into_iter().map(|r| r.suffix).collect();
        assert_eq!(
            names,
            [
                "L_Join-left-repartition",
                "L_Join-right-repartition",
                "Join-left-repartition",
                "Join-right-repartition"
            ]
        );
        let mut direct = Task::new(plan.clone());
        let mut split = Task::through_topics(plan);
        let (mut fx1, mut fx2) = (Effects::default(), Effects::default());
        // (input, id, k, v, timestamp)
        let inputs: &[(usize, i32, Option<i32>, i32, i64)] = &[
            (0, 1, Some(10), 100, 1000),
            (1, 2, Some(10), 0, 2000),
            (2, 3, Some(0), 100, 2500),
            (0, 4, Some(20), 200, 3000),
            (1, 5, Some(20), 0, 4000),
            (1, 6, None, 0, 4500),
            (0, 7, Some(10), 300, 5000),
            (2, 8, Some(0), 100, 6000),
            (0, 9, Some(30), 400, 30000),
        ];
        let mut read = 0;
        for (i, (input, id, k, v, ts)) in inputs.iter().enumerate() {
            let key = id.to_be_bytes();
            let k = k.map_or("null".to_string(), |k| k.to_string());
            let value = format!("{{\"K\":{k},\"V\":{v}}}");
            let rec = InRecord {
                input: *input,
                partition: 0,
                offset: i as i64,
                timestamp: *ts,
                key: Some(&key),
                value: Some(value.as_bytes()),
                headers: &[],
            };
            direct.process(&rec, &mut fx1).unwrap();
            through_topics(&mut split, &rec, &mut fx2, &mut read);
        }
        assert!(fx1.rows.len() >= 2, "{:?}", fx1.rows);
        assert_eq!(fx1.rows, fx2.rows);
        assert_eq!(direct.skipped, split.skipped);
    }

    #[test]
    fn inner_stream_join_matches_within_the_window() {
        let mut t = task(&q("INNER", "10 SECONDS GRACE PERIOD 5 SECONDS"));
        let mut fx = Effects::default();
        feed(&mut t, INPUTS, &mut fx);
        assert_eq!(rows(&fx), vec![(1, s("a"), s("x"), 5000)]);
        // Buffers past before + after + grace are gone.
        assert_eq!(
            t.stages[0].buffers[0].len() + t.stages[0].buffers[1].len(),
            1
        );
    }

    #[test]
    fn left_join_with_grace_emits_unmatched_rows_when_the_window_closes() {
        let mut t = task(&q("LEFT", "10 SECONDS GRACE PERIOD 5 SECONDS"));
        let mut fx = Effects::default();
        feed(&mut t, INPUTS, &mut fx);
        assert_eq!(
            rows(&fx),
            vec![
                (1, s("a"), s("x"), 5000),
                (3, s("c"), None, 7000),
                (1, s("b"), None, 30000),
                (4, s("late"), None, 1000),
            ]
        );
    }

    #[test]
    fn left_join_without_grace_emits_unmatched_rows_at_once() {
        let mut t = task(&q("LEFT", "10 SECONDS"));
        let mut fx = Effects::default();
        feed(&mut t, INPUTS, &mut fx);
        assert_eq!(
            rows(&fx),
            vec![
                (1, s("a"), None, 1000),
                (1, s("a"), s("x"), 5000),
                (3, s("c"), None, 7000),
                (1, s("b"), None, 30000),
                (4, s("late"), None, 1000),
            ]
        );
    }

    #[test]
    fn full_outer_join_emits_both_sides_keyed_by_the_join_key() {
        let mut t = task(&q(
            "FULL OUTER",
            "(5 SECONDS, 10 SECONDS) GRACE PERIOD 5 SECONDS",
        ));
        let mut fx = Effects::default();
        feed(&mut t, INPUTS, &mut fx);
        // Right rows close at t + before + grace, left rows at t + after +
        // grace; the unmatched right row y is keyed by its own key.
        assert_eq!(
            rows(&fx),
            vec![
                (1, s("a"), s("x"), 5000),
                (2, None, s("y"), 6000),
                (3, s("c"), None, 7000),
                (1, s("b"), None, 30000),
                (4, s("late"), None, 1000),
            ]
        );
    }

    #[test]
    fn full_joins_are_keyed_by_a_synthetic_rowkey() {
        let ddls = [
            "CREATE STREAM L (ID INT KEY, A STRING) WITH (KAFKA_TOPIC='l', VALUE_FORMAT='JSON');",
            "CREATE STREAM R (ID INT KEY, ROWKEY STRING) WITH (KAFKA_TOPIC='r', VALUE_FORMAT='JSON');",
            "CREATE TABLE A (ID INT PRIMARY KEY, X STRING) WITH (KAFKA_TOPIC='a', VALUE_FORMAT='JSON');",
            "CREATE TABLE B (ID INT PRIMARY KEY, Y STRING) WITH (KAFKA_TOPIC='b', VALUE_FORMAT='JSON');",
        ];
        let plan = |sql: &str| plan_over(&ddls, sql);
        let err = |sql: &str| plan(sql).unwrap_err().to_string();
        // Either side's key column is not the key: ROWKEY is, aliased or not.
        let missing =
            err("CREATE TABLE OUT AS SELECT A.ID, X, Y FROM A FULL JOIN B ON A.ID = B.ID;");
        assert!(missing.starts_with("Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query used to build OUT must include the join expression ROWKEY in its projection"), "{missing}");
        let p =
            plan("CREATE TABLE OUT AS SELECT ROWKEY AS K, X, Y FROM A FULL JOIN B ON A.ID = B.ID;")
                .unwrap();
        assert_eq!(p.key, vec![("K".to_string(), SqlType::Int)]);
        let p = plan("CREATE TABLE OUT AS SELECT * FROM A FULL JOIN B ON A.ID = B.ID;").unwrap();
        assert_eq!(p.key[0].0, "ROWKEY");
        let names: Vec<&str> = p.value.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["A_ID", "A_X", "B_ID", "B_Y"]);
        // A source with a ROWKEY column moves the name on.
        assert!(err("CREATE STREAM OUT AS SELECT L.ID, A FROM L FULL JOIN R WITHIN 1 SECOND ON L.ID = R.ID;")
            .contains("must include the join expression ROWKEY_1 in its projection"));
        let p = plan("CREATE STREAM OUT AS SELECT ROWKEY_1 AS K, R.ROWKEY AS RK FROM L FULL JOIN R WITHIN 1 SECOND ON L.ID = R.ID;").unwrap();
        assert!(matches!(
            p.op,
            Op::Joins {
                synthetic_key: true,
                ..
            }
        ));
        // Inner and left joins keep a source column as the key.
        let p = plan("CREATE TABLE OUT AS SELECT A.ID, X, Y FROM A LEFT JOIN B ON A.ID = B.ID;")
            .unwrap();
        assert!(matches!(
            p.op,
            Op::TableTable {
                synthetic_key: false,
                ..
            }
        ));
        // The key of a join on expressions of both sides is synthetic too.
        assert!(err("CREATE STREAM OUT AS SELECT L.ID, A FROM L JOIN R WITHIN 1 SECOND ON ABS(L.ID) = ABS(R.ID);")
            .contains("ROWKEY_1 was added as a synthetic key column"));
        // Rows carry the key whichever side is present.
        let mut t = Task::new(plan("CREATE TABLE OUT AS SELECT ROWKEY AS K, ROWKEY + 1 AS K1, X, Y FROM A FULL JOIN B ON A.ID = B.ID;").unwrap());
        let mut fx = Effects::default();
        let key = 5i32.to_be_bytes();
        let rec = InRecord {
            input: 1,
            partition: 0,
            offset: 0,
            timestamp: 7,
            key: Some(&key),
            value: Some(br#"{"Y":"y"}"#),
            headers: &[],
        };
        t.process(&rec, &mut fx).unwrap();
        assert_eq!(fx.rows[0].key, vec![Value::Int(5)]);
        assert_eq!(
            fx.rows[0].value,
            Some(vec![Value::Int(6), Value::Null, Value::String("y".into())])
        );
    }

    #[test]
    fn join_chains_take_their_key_as_ksqldb_does() {
        let ddls = [
            "CREATE STREAM S1 (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='s1', VALUE_FORMAT='JSON');",
            "CREATE STREAM S2 (ID INT KEY, W STRING) WITH (KAFKA_TOPIC='s2', VALUE_FORMAT='JSON');",
            "CREATE STREAM S3 (ID INT KEY, X STRING) WITH (KAFKA_TOPIC='s3', VALUE_FORMAT='JSON');",
            "CREATE TABLE T1 (ID INT PRIMARY KEY, V STRING) WITH (KAFKA_TOPIC='t1', VALUE_FORMAT='JSON');",
            "CREATE TABLE T2 (ID INT PRIMARY KEY, W STRING) WITH (KAFKA_TOPIC='t2', VALUE_FORMAT='JSON');",
            "CREATE TABLE T3 (ID INT PRIMARY KEY, X STRING) WITH (KAFKA_TOPIC='t3', VALUE_FORMAT='JSON');",
        ];
        let plan = |sql: &str| plan_over(&ddls, sql);
        let key = |sql: &str| plan(sql).unwrap().key[0].0.clone();
        let err = |sql: &str| plan(sql).unwrap_err().to_string();
        let w = "WITHIN 10 SECONDS";
        // Inner joins chained on equal columns: any of them is the key,
        // the first in join order the projection has.
        let chain = format!("FROM S1 JOIN S2 {w} ON S1.ID = S2.ID JOIN S3 {w} ON S2.ID = S3.ID");
        assert_eq!(
            key(&format!("CREATE STREAM OUT AS SELECT S1.ID, X {chain};")),
            "ID"
        );
        assert_eq!(
            key(&format!(
                "CREATE STREAM OUT AS SELECT S3.ID AS K, V {chain};"
            )),
            "K"
        );
        let p = plan(&format!(
            "CREATE STREAM OUT AS SELECT S3.ID AS C, S1.ID AS A, V {chain};"
        ))
        .unwrap();
        assert_eq!(p.key[0].0, "A");
        assert_eq!(p.value[0].0, "C");
        assert_eq!(
            key(&format!("CREATE STREAM OUT AS SELECT * {chain};")),
            "S1_ID"
        );
        // A FULL join earlier in the chain: its sides are no longer the
        // key, the later join's are.
        let chain =
            format!("FROM S1 FULL JOIN S2 {w} ON S1.ID = S2.ID JOIN S3 {w} ON S1.ID = S3.ID");
        assert!(
            err(&format!("CREATE STREAM OUT AS SELECT S2.ID, X {chain};"))
                .contains("must include the join expression S1.ID in its projection")
        );
        assert_eq!(
            key(&format!("CREATE STREAM OUT AS SELECT S3.ID, X {chain};")),
            "ID"
        );
        // Ending with a FULL join: the synthetic ROWKEY, in `*` too.
        let chain =
            format!("FROM S1 JOIN S2 {w} ON S1.ID = S2.ID FULL JOIN S3 {w} ON S1.ID = S3.ID");
        assert!(
            err(&format!("CREATE STREAM OUT AS SELECT S1.ID, X {chain};"))
                .contains("ROWKEY was added as a synthetic key column")
        );
        assert_eq!(
            key(&format!(
                "CREATE STREAM OUT AS SELECT ROWKEY AS ID, V, X {chain};"
            )),
            "ID"
        );
        let p = plan(&format!("CREATE STREAM OUT AS SELECT * {chain};")).unwrap();
        assert_eq!(p.key, vec![("ROWKEY".to_string(), SqlType::Int)]);
        // A join on an expression: only columns are keys.
        let chain =
            format!("FROM S1 JOIN S2 {w} ON ABS(S1.ID) = S2.ID JOIN S3 {w} ON S2.ID = S3.ID");
        assert!(err(&format!(
            "CREATE STREAM OUT AS SELECT ABS(S1.ID) AS K, X {chain};"
        ))
        .contains("must include the join expression S2.ID"));
        assert_eq!(
            key(&format!("CREATE STREAM OUT AS SELECT S3.ID, V {chain};")),
            "ID"
        );
        // Tables: the same rules.
        let chain = "FROM T1 FULL JOIN T2 ON T1.ID = T2.ID JOIN T3 ON T1.ID = T3.ID";
        assert!(
            err(&format!("CREATE TABLE OUT AS SELECT T2.ID, X {chain};"))
                .contains("must include the join expression T1.ID")
        );
        assert_eq!(
            key(&format!(
                "CREATE TABLE OUT AS SELECT T3.ID AS K, X {chain};"
            )),
            "K"
        );
        let chain = "FROM T1 JOIN T2 ON T1.ID = T2.ID FULL JOIN T3 ON T1.ID = T3.ID";
        assert_eq!(
            key(&format!("CREATE TABLE OUT AS SELECT * {chain};")),
            "ROWKEY"
        );
        let chain = "FROM T1 JOIN T2 ON T1.ID = T2.ID JOIN T3 ON T2.ID = T3.ID";
        assert_eq!(
            key(&format!(
                "CREATE TABLE OUT AS SELECT T1.ID AS K, X {chain};"
            )),
            "K"
        );
        // ksqlDB has no JOINKEY function (removed before its first
        // release): the synthetic key is named ROWKEY.
        let e = err(&format!(
            "CREATE TABLE OUT AS SELECT JOINKEY(T1.ID, T3.ID) AS ID, X {chain};"
        ));
        assert!(
            e.contains("Can't find any functions with the name 'JOINKEY'"),
            "{e}"
        );
    }

    #[test]
    fn right_join_emits_unmatched_right_rows() {
        let mut t = task(&q("RIGHT", "10 SECONDS GRACE PERIOD 5 SECONDS"));
        let mut fx = Effects::default();
        feed(&mut t, INPUTS, &mut fx);
        assert_eq!(
            rows(&fx),
            vec![(1, s("a"), s("x"), 5000), (2, None, s("y"), 6000)]
        );
    }

    #[test]
    fn join_state_restores_from_its_changelog() {
        let sql = q("FULL OUTER", "10 SECONDS GRACE PERIOD 5 SECONDS");
        let mut whole = task(&sql);
        let mut all = Effects::default();
        feed(&mut whole, INPUTS, &mut all);
        for cut in 1..INPUTS.len() {
            let mut first = task(&sql);
            let mut fx = Effects::default();
            feed(&mut first, &INPUTS[..cut], &mut fx);
            first.checkpoint(&mut fx);
            let mut restored = task(&sql);
            for (k, v) in &fx.changelog {
                restored.restore_changelog(k, v.as_deref()).unwrap();
            }
            let mut rest = Effects::default();
            // Offsets must stay those of the uninterrupted run.
            for (i, inp) in INPUTS.iter().enumerate().skip(cut) {
                let mut one = Effects::default();
                let shifted = (inp.0, inp.1, inp.2, inp.3);
                let key = shifted.1.to_be_bytes();
                let col = ["A", "B", "C"][shifted.0];
                let value = format!("{{\"{col}\":\"{}\"}}", shifted.2);
                restored
                    .process(
                        &InRecord {
                            input: shifted.0,
                            partition: 0,
                            offset: i as i64 + 1000 * shifted.3,
                            timestamp: shifted.3,
                            key: Some(&key),
                            value: Some(value.as_bytes()),
                            headers: &[],
                        },
                        &mut one,
                    )
                    .unwrap();
                rest.rows.extend(one.rows);
            }
            let mut got = rows(&fx);
            got.extend(rows(&rest));
            assert_eq!(got, rows(&all), "cut after {cut} records");
        }
    }

    #[test]
    fn a_chain_of_stream_joins_feeds_each_stage_into_the_next() {
        let mut t = task(
            "CREATE STREAM OUT AS SELECT L.ID, A, B, C.C FROM L JOIN R WITHIN 10 SECONDS ON L.ID = R.ID \
             JOIN C WITHIN 10 SECONDS GRACE PERIOD 0 SECONDS ON L.ID = C.ID;",
        );
        let mut fx = Effects::default();
        feed(
            &mut t,
            &[
                (0, 1, "a", 1000),
                (2, 1, "p", 1500),
                (1, 1, "x", 2000),
                (2, 1, "q", 3000),
                (2, 1, "r", 50000),
            ],
            &mut fx,
        );
        let got: Vec<(Vec<Value>, Vec<Value>, i64)> = fx
            .rows
            .iter()
            .map(|r| (r.key.clone(), r.value.clone().unwrap(), r.timestamp))
            .collect();
        let v = |a: &str, b: &str, c: &str| {
            vec![
                Value::String(a.into()),
                Value::String(b.into()),
                Value::String(c.into()),
            ]
        };
        assert_eq!(
            got,
            vec![
                (vec![Value::Int(1)], v("a", "x", "p"), 2000),
                (vec![Value::Int(1)], v("a", "x", "q"), 3000),
            ]
        );
        // Both stages log their windows; a restored task holds them.
        t.checkpoint(&mut fx);
        let mut restored = task(
            "CREATE STREAM OUT AS SELECT L.ID, A, B, C.C FROM L JOIN R WITHIN 10 SECONDS ON L.ID = R.ID \
             JOIN C WITHIN 10 SECONDS GRACE PERIOD 0 SECONDS ON L.ID = C.ID;",
        );
        for (k, v) in &fx.changelog {
            restored.restore_changelog(k, v.as_deref()).unwrap();
        }
        for (a, b) in t.stages.iter().zip(&restored.stages) {
            assert_eq!(a.buffers, b.buffers);
            assert_eq!(a.pending, b.pending);
            assert_eq!(a.stream_time, b.stream_time);
        }
    }

    #[test]
    fn stream_joins_are_checked_when_planned() {
        let meta_err = |sql: &str| {
            let ddls = [
                "CREATE STREAM L (ID INT KEY, A STRING) WITH (KAFKA_TOPIC='l', VALUE_FORMAT='JSON');",
                "CREATE STREAM R (ID INT KEY, B STRING) WITH (KAFKA_TOPIC='r', VALUE_FORMAT='JSON');",
                "CREATE STREAM R2 (ID STRING KEY, B STRING) WITH (KAFKA_TOPIC='r2', VALUE_FORMAT='JSON');",
            ];
            plan_over(&ddls, sql).unwrap_err().to_string()
        };
        assert!(
            meta_err("CREATE STREAM OUT AS SELECT L.ID, A FROM L JOIN R ON L.ID = R.ID;")
                .contains("must have a WITHIN clause")
        );
        assert!(meta_err(
            "CREATE STREAM OUT AS SELECT L.ID, A FROM L JOIN R2 WITHIN 1 SECOND ON L.ID = R2.ID;"
        )
        .contains("types don't match"));
        assert!(meta_err(
            "CREATE STREAM OUT AS SELECT L.ID, A FROM L JOIN L AS M WITHIN 1 SECOND ON L.ID = M.ID;"
        )
        .contains("self joins"));
    }

    #[test]
    fn a_chain_may_end_with_a_table() {
        let sql = "CREATE STREAM OUT AS SELECT L.ID, A, B, T.C FROM L LEFT JOIN R WITHIN 10 SECONDS GRACE PERIOD 5 SECONDS ON L.ID = R.ID \
                   JOIN T ON L.ID = T.ID;";
        let mut t = task(sql);
        let mut fx = Effects::default();
        feed(
            &mut t,
            &[(2, 1, "one", 0), (0, 1, "a", 1000), (1, 1, "x", 5000)],
            &mut fx,
        );
        assert_eq!(fx.rows.len(), 1, "{:?} {:?}", fx.rows, t.last_error);
    }

    /// Table aggregation: records of table `T` (ID INT key, C STRING) as
    /// (id, group or None for a tombstone, timestamp).
    fn feed_table(t: &mut Task, inputs: &[(i32, Option<&str>, i64)], fx: &mut Effects) {
        for (i, (id, c, ts)) in inputs.iter().enumerate() {
            let key = id.to_be_bytes();
            let value = c.map(|c| format!("{{\"C\":\"{c}\"}}"));
            let rec = InRecord {
                input: 0,
                partition: 0,
                offset: i as i64,
                timestamp: *ts,
                key: Some(&key),
                value: value.as_deref().map(str::as_bytes),
                headers: &[],
            };
            t.process(&rec, fx).unwrap();
        }
    }

    /// Output rows as (group, count or None for a tombstone, timestamp).
    fn counts(fx: &Effects) -> Vec<(String, Option<i64>, i64)> {
        fx.rows
            .iter()
            .map(|r| {
                let Value::String(g) = &r.key[0] else {
                    panic!("key {:?}", r.key)
                };
                let n = r.value.as_ref().map(|v| v[0].as_i64().unwrap());
                (g.clone(), n, r.timestamp)
            })
            .collect()
    }

    /// Windowed rows as (group, count or None, window start, window end).
    fn windowed(rows: &[OutRow]) -> Vec<(String, Option<i64>, i64, i64)> {
        rows.iter()
            .map(|r| {
                let Value::String(g) = &r.key[0] else {
                    panic!("key {:?}", r.key)
                };
                let w = r.window.unwrap();
                let n = r.value.as_ref().map(|v| v[0].as_i64().unwrap());
                (g.clone(), n, w.start, w.end)
            })
            .collect()
    }

    #[test]
    fn tumbling_windows_count_expire_and_restore() {
        let sql = "CREATE TABLE OUT AS SELECT A, COUNT(*) AS N FROM L \
                   WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 10 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY A;";
        let mut t = task(sql);
        let mut fx = Effects::default();
        feed(
            &mut t,
            &[
                (0, 1, "y", 1000),
                (0, 2, "x", 2000),
                (0, 3, "x", 3000),
                (0, 4, "x", 12000),
                // Late: its window closed at 10 s.
                (0, 5, "x", 4000),
            ],
            &mut fx,
        );
        let g = |x: &str| x.to_string();
        assert_eq!(
            windowed(&fx.rows),
            vec![
                (g("y"), Some(1), 0, 10000),
                (g("x"), Some(1), 0, 10000),
                (g("x"), Some(2), 0, 10000),
                (g("x"), Some(1), 10000, 20000),
            ]
        );
        assert_eq!(t.skipped, 1);
        // Every window of a key, in order; a key with none.
        assert_eq!(
            windowed(&t.results_for(&[Value::String(g("x"))])),
            vec![(g("x"), Some(2), 0, 10000), (g("x"), Some(1), 10000, 20000)]
        );
        assert!(t.results_for(&[Value::String(g("z"))]).is_empty());
        // All results in (key, window) order.
        let all = windowed(&t.results());
        assert_eq!(
            all,
            vec![
                (g("x"), Some(2), 0, 10000),
                (g("x"), Some(1), 10000, 20000),
                (g("y"), Some(1), 0, 10000),
            ]
        );
        // A restart rebuilds the same state from the changelog.
        let mut r = task(sql);
        for (k, v) in &fx.changelog {
            r.restore_changelog(k, v.as_deref()).unwrap();
        }
        assert_eq!(windowed(&r.results()), all);
        // Past the first windows' retention their state goes, with a
        // tombstone each, in key order.
        let mut fx = Effects::default();
        feed(&mut t, &[(0, 6, "y", 25000)], &mut fx);
        let deleted: Vec<Vec<Value>> = fx
            .changelog
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| state::decode(k).unwrap())
            .collect();
        assert_eq!(
            deleted,
            vec![
                vec![
                    Value::String(g("x")),
                    Value::Bigint(0),
                    Value::Bigint(10000)
                ],
                vec![
                    Value::String(g("y")),
                    Value::Bigint(0),
                    Value::Bigint(10000)
                ],
            ]
        );
        assert_eq!(
            windowed(&t.results()),
            vec![
                (g("x"), Some(1), 10000, 20000),
                (g("y"), Some(1), 20000, 30000),
            ]
        );
    }

    #[test]
    fn sessions_merge_through_the_key_index() {
        let sql = "CREATE TABLE OUT AS SELECT A, COUNT(*) AS N FROM L WINDOW SESSION (5 SECONDS) GROUP BY A;";
        let mut t = task(sql);
        let mut fx = Effects::default();
        feed(
            &mut t,
            &[
                (0, 1, "x", 1000),
                (0, 2, "x", 10000),
                (0, 3, "y", 5000),
                // Within the gap of both of x's sessions: one session.
                (0, 4, "x", 5500),
            ],
            &mut fx,
        );
        let g = |x: &str| x.to_string();
        assert_eq!(
            windowed(&fx.rows),
            vec![
                (g("x"), Some(1), 1000, 1000),
                (g("x"), Some(1), 10000, 10000),
                (g("y"), Some(1), 5000, 5000),
                (g("x"), None, 1000, 1000),
                (g("x"), None, 10000, 10000),
                (g("x"), Some(3), 1000, 10000),
            ]
        );
        assert_eq!(
            windowed(&t.results_for(&[Value::String(g("x"))])),
            vec![(g("x"), Some(3), 1000, 10000)]
        );
        let mut r = task(sql);
        for (k, v) in &fx.changelog {
            r.restore_changelog(k, v.as_deref()).unwrap();
        }
        assert_eq!(windowed(&r.results()), windowed(&t.results()));
    }

    #[test]
    fn table_aggregation_undoes_the_old_row() {
        let sql = "CREATE TABLE OUT AS SELECT C, COUNT(*) AS N FROM T GROUP BY C;";
        let mut t = task(sql);
        let mut fx = Effects::default();
        feed_table(
            &mut t,
            &[
                (1, Some("bob"), 1),
                (1, Some("john"), 2),
                (2, Some("john"), 3),
                (2, Some("john"), 4),
                (2, None, 5),
                (7, None, 6),
            ],
            &mut fx,
        );
        let g = |x: &str| x.to_string();
        assert_eq!(
            counts(&fx),
            vec![
                (g("bob"), Some(1), 1),
                (g("bob"), Some(0), 2),
                (g("john"), Some(1), 2),
                (g("john"), Some(2), 3),
                // The same group: the update is one row.
                (g("john"), Some(2), 4),
                (g("john"), Some(1), 5),
            ]
        );
        // A restart: aggregates from the changelog, rows from the topic.
        let mut r = task(sql);
        for (k, v) in &fx.changelog {
            r.restore_changelog(k, v.as_deref()).unwrap();
        }
        let key = 1i32.to_be_bytes();
        r.restore_table(&InRecord {
            input: 0,
            partition: 0,
            offset: 1,
            timestamp: 2,
            key: Some(&key),
            value: Some(br#"{"C":"john"}"#),
            headers: &[],
        })
        .unwrap();
        let mut fx = Effects::default();
        feed_table(&mut r, &[(1, None, 9)], &mut fx);
        assert_eq!(counts(&fx), vec![(g("john"), Some(0), 9)]);
    }

    #[test]
    fn repartitioned_table_aggregation_sends_old_and_new_rows() {
        let sql = "CREATE TABLE OUT AS SELECT C, COUNT(*) AS N FROM T GROUP BY C;";
        let mut direct = task(sql);
        let mut split = task(sql);
        assert_eq!(
            split.plan.repartition_suffix().as_deref(),
            Some("Aggregate-GroupBy-repartition")
        );
        let inputs: &[(i32, Option<&str>, i64)] = &[
            (1, Some("bob"), 1),
            (1, Some("john"), 2), // moves: an undo for bob, an add for john
            (2, Some("john"), 3),
            (2, Some("john"), 4), // the same group: one record
            (2, None, 5),         // deleted: an undo only
            (7, None, 6),         // nothing to undo: no record
        ];
        let (mut fx1, mut fx2) = (Effects::default(), Effects::default());
        let mut sent = Vec::new();
        for (i, (id, c, ts)) in inputs.iter().enumerate() {
            let key = id.to_be_bytes();
            let value = c.map(|c| format!("{{\"C\":\"{c}\"}}"));
            let rec = InRecord {
                input: 0,
                partition: 0,
                offset: i as i64,
                timestamp: *ts,
                key: Some(&key),
                value: value.as_deref().map(str::as_bytes),
                headers: &[],
            };
            direct.process(&rec, &mut fx1).unwrap();
            let mut out = Vec::new();
            split.repartition(&rec, &mut out).unwrap();
            sent.push(out.len());
            for r in out {
                split
                    .process_repartitioned(&read_back(&r.value, 0), &mut fx2)
                    .unwrap();
            }
        }
        assert_eq!(sent, vec![1, 2, 1, 1, 1, 0]);
        assert_eq!(fx1.rows, fx2.rows);
        assert_eq!(fx1.changelog, fx2.changelog);
        assert!(split
            .process_repartitioned(&read_back(b"[1,2]", 0), &mut fx2)
            .is_err());
    }

    #[test]
    fn table_aggregation_refuses_what_cannot_undo() {
        let ddls = [
            "CREATE TABLE T (ID INT PRIMARY KEY, C STRING, V INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');",
        ];
        let err = |sql: &str| plan_over(&ddls, sql).unwrap_err().to_string();
        assert!(err("CREATE TABLE OUT AS SELECT C, MAX(V) AS M FROM T GROUP BY C;").contains(
            "The aggregation function MAX cannot be applied to a table source, only to a stream source."
        ));
        assert!(err(
            "CREATE TABLE OUT AS SELECT C, TOPK(V, 2) AS A, MAX(V) AS M, MAX(ID) AS I, LATEST_BY_OFFSET(V) AS L FROM T GROUP BY C;"
        )
        .contains("functions TOPK, MAX and LATEST_BY_OFFSET cannot"));
        assert!(
            err("CREATE TABLE OUT AS SELECT C, COUNT(*) AS N FROM T WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY C;")
                .contains("Windowing not supported for table aggregations.")
        );
        assert!(plan_over(
            &ddls,
            "CREATE TABLE OUT AS SELECT C, COUNT(*) AS N, SUM(V) AS S, AVG(V) AS A, COLLECT_LIST(V) AS L, HISTOGRAM(C) AS H FROM T GROUP BY C;"
        )
        .is_ok());
    }

    #[test]
    fn table_chains_join_on_primary_keys_only() {
        let ddls = [
            "CREATE TABLE A (ID INT PRIMARY KEY, X STRING, F INT) WITH (KAFKA_TOPIC='a', VALUE_FORMAT='JSON');",
            "CREATE TABLE B (ID INT PRIMARY KEY, Y STRING) WITH (KAFKA_TOPIC='b', VALUE_FORMAT='JSON');",
            "CREATE TABLE C (ID INT PRIMARY KEY, Z STRING) WITH (KAFKA_TOPIC='c', VALUE_FORMAT='JSON');",
            "CREATE STREAM S (ID INT KEY, W STRING) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');",
        ];
        let plan = |sql: &str| plan_over(&ddls, sql);
        let p = plan("CREATE TABLE OUT AS SELECT B.ID, X, Y, Z FROM A FULL JOIN B ON A.ID = B.ID JOIN C ON B.ID = C.ID;")
            .unwrap();
        assert!(
            matches!(&p.op, Op::TableChain { kinds, .. } if kinds == &[JoinType::Full, JoinType::Inner])
        );
        let err = |sql: &str| plan(sql).unwrap_err().to_string();
        assert!(err("CREATE TABLE OUT AS SELECT A.ID, X, Y, Z FROM A JOIN B ON A.F = B.ID JOIN C ON A.ID = C.ID;")
            .contains("foreign-key joins cannot be chained"));
        assert!(err("CREATE TABLE OUT AS SELECT A.ID, X, Y, W FROM A JOIN B ON A.ID = B.ID JOIN S ON A.ID = S.ID;")
            .contains("table-stream joins are not supported"));
        assert!(err("CREATE TABLE OUT AS SELECT X, Y, Z FROM A JOIN B ON A.ID = B.ID JOIN C ON A.ID = C.ID;")
            .contains("Key missing from projection"));
    }

    fn row(name: &str) -> Option<Vec<Value>> {
        Some(vec![Value::String(name.into())])
    }

    fn name_at(h: &History, k: &[u8], ts: i64) -> Option<String> {
        h.at(k, ts).map(|r| match &r[0] {
            Value::String(s) => s.clone(),
            v => format!("{v:?}"),
        })
    }

    #[test]
    fn history_answers_each_time_its_version() {
        let mut h = History::default();
        h.put(b"k".to_vec(), row("a"), 10);
        h.put(b"k".to_vec(), row("b"), 20);
        h.put(b"k".to_vec(), None, 30);
        h.put(b"k".to_vec(), row("c"), 40);
        // Put out of order: a version between the others.
        h.put(b"k".to_vec(), row("x"), 15);
        let at = |ts| name_at(&h, b"k", ts);
        assert_eq!(at(10), None, "at equal times the stream row goes first");
        assert_eq!(at(11).as_deref(), Some("a"));
        assert_eq!(at(16).as_deref(), Some("x"));
        assert_eq!(at(25).as_deref(), Some("b"));
        assert_eq!(at(35), None, "deleted at 30");
        assert_eq!(at(41).as_deref(), Some("c"));
        // A second put at one time replaces the first, as the latest row.
        h.put(b"k".to_vec(), row("d"), 40);
        assert_eq!(name_at(&h, b"k", 41).as_deref(), Some("d"));
        assert_eq!(name_at(&h, b"other", 41), None);
    }

    #[test]
    fn history_keeps_the_version_valid_at_its_horizon() {
        let mut h = History {
            retention: 100,
            ..History::default()
        };
        for (i, ts) in [0, 50, 120, 180].into_iter().enumerate() {
            h.put(b"k".to_vec(), row(&format!("v{i}")), ts);
        }
        // Table time 180, horizon 80: v1 (from 50) is still valid there;
        // v0 answers nothing within retention and is gone.
        assert_eq!(h.len(), 3);
        assert_eq!(name_at(&h, b"k", 80).as_deref(), Some("v1"));
        assert_eq!(name_at(&h, b"k", 60).as_deref(), Some("v1"));
        assert_eq!(name_at(&h, b"k", 130).as_deref(), Some("v2"));
        // Older than what is kept: no row rather than a later version.
        assert_eq!(name_at(&h, b"k", 40), None);
        // A delete past the horizon with nothing before it goes with the
        // key; a key only ever deleted keeps nothing.
        h.put(b"k".to_vec(), None, 400);
        h.put(b"k".to_vec(), row("w"), 600);
        h.put(b"gone".to_vec(), None, 600);
        assert_eq!(h.len(), 1);
        assert_eq!(name_at(&h, b"k", 601).as_deref(), Some("w"));
        assert_eq!(name_at(&h, b"k", 550), None);
    }
}

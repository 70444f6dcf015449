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
use crate::plan::{nulls, AggSpec, Op, Plan, WindowSpec};
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

/// One stage of a chain of table–table joins: the result so far (left)
/// and the next table (right), by encoded join key, with each row's
/// timestamp.
#[derive(Debug, Default)]
pub struct ChainStage {
    pub left: HashMap<Vec<u8>, (Vec<Value>, i64)>,
    pub right: HashMap<Vec<u8>, (Vec<Value>, i64)>,
}

/// A query's running state.
#[derive(Debug)]
pub struct Task {
    pub plan: Arc<Plan>,
    /// Aggregations: by (encoded key, window start).
    pub aggs: BTreeMap<(Vec<u8>, i64), AggEntry>,
    /// Joins: the table side's rows by encoded key.
    pub table: HashMap<Vec<u8>, Vec<Value>>,
    /// Table-table joins: the left table's rows by encoded key.
    pub left: HashMap<Vec<u8>, Vec<Value>>,
    /// Foreign-key joins: the left keys (encoded) by the right key they
    /// name (encoded).
    pub by_foreign_key: HashMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    /// Stream–stream joins and chains: each stage's state.
    pub stages: Vec<StageState>,
    /// Chains of table–table joins: each stage's state.
    pub chain: Vec<ChainStage>,
    /// Windows by the time they close (end + grace): EMIT FINAL emits them
    /// then.
    closing: BTreeSet<(i64, (Vec<u8>, i64))>,
    /// Windows by the time their state may go (end + retention).
    expiring: BTreeSet<(i64, (Vec<u8>, i64))>,
    /// The largest timestamp seen (Kafka Streams' stream time).
    pub stream_time: i64,
    /// Records skipped: undeserializable, or late for their window.
    pub skipped: u64,
    pub last_error: Option<String>,
}

fn key_bytes(key: &[Value]) -> Vec<u8> {
    state::encode(key)
}

impl Task {
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
            stages,
            chain,
            plan: Arc::new(plan),
            closing: BTreeSet::new(),
            expiring: BTreeSet::new(),
            aggs: BTreeMap::new(),
            table: HashMap::new(),
            left: HashMap::new(),
            by_foreign_key: HashMap::new(),
            stream_time: i64::MIN,
            skipped: 0,
            last_error: None,
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
        let Some(value) = input.value_codec.decode(rec.value)? else {
            return Ok(None);
        };
        let mut row = Vec::with_capacity(input.width());
        row.extend(key);
        row.extend(value);
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
        row[src.key.len() + src.value.len()] = Value::Bigint(ts);
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
                    match decoded {
                        Some((row, _)) => {
                            self.table.insert(k, row);
                        }
                        None => {
                            self.table.remove(&k);
                        }
                    }
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
        let value = update.map(|(j, _)| j).filter(|j| {
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
        match row.get(src.key.len() + src.value.len()) {
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
            kind, foreign_key, ..
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
        let joined = present.then(|| self.joined_row(l, r));
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
        let Op::Joins {
            stages,
            filter,
            values,
            ..
        } = &plan.op
        else {
            return Ok(());
        };
        let (mut idx, mut side) = match rec.input {
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
        let mut rank = 0u32;
        let mut rows = vec![(row, ts)];
        loop {
            let mut out: Vec<Joined> = Vec::new();
            for (row, ts) in rows {
                let origin = (rec.input as u32, rec.partition, rec.offset, rank);
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
                for j in out {
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
                return Ok(());
            }
            if out.is_empty() {
                return Ok(());
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
        let base = src.key.len() + src.value.len() + 3;
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
        match self.row(rec)? {
            Some((row, _)) => {
                self.table.insert(k, row);
            }
            None => {
                self.table.remove(&k);
            }
        }
        Ok(())
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
        let right = self.table.get(&key_bytes(&[k]));
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
            window,
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
        let Op::Aggregate {
            filter,
            group,
            aggs,
            ..
        } = &plan.op
        else {
            return;
        };
        let kb = key_bytes(&key);
        let old = match &new {
            Some((row, _)) => self.table.insert(kb, row.clone()),
            None => self.table.remove(&kb),
        };
        let ts = new.as_ref().map_or(ts, |(_, t)| *t);
        let contribution = |row: &[Value]| -> Option<(Vec<Value>, Vec<Value>)> {
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
        };
        let old = old.as_deref().and_then(contribution);
        let new = new.as_ref().and_then(|(row, _)| contribution(row));
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
        let slot = (key_bytes(key), i64::MIN);
        if add.is_none() && !self.aggs.contains_key(&slot) {
            return;
        }
        let entry = self.aggs.entry(slot).or_insert_with(|| AggEntry {
            key: key.to_vec(),
            window: None,
            states: aggs.iter().map(|a| (a.func.init)(&a.call)).collect(),
            timestamp: ts,
            emitted: false,
        });
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
        let entry = entry.clone();
        self.log_entry(&entry, fx);
        fx.rows.push(self.result_row(&entry));
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
        let entry = self
            .aggs
            .entry((kb.to_vec(), start))
            .or_insert_with(|| AggEntry {
                key: key.to_vec(),
                window,
                states: aggs.iter().map(|a| (a.func.init)(&a.call)).collect(),
                timestamp: ts,
                emitted: false,
            });
        for ((a, s), v) in aggs.iter().zip(entry.states.iter_mut()).zip(args) {
            (a.func.add)(&a.call, s, v);
        }
        entry.timestamp = entry.timestamp.max(ts);
        let entry = entry.clone();
        self.schedule(&entry, kb, start);
        self.log_entry(&entry, fx);
        if !self.emit_final() {
            fx.rows.push(self.result_row(&entry));
        }
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
        let lo = (kb.to_vec(), i64::MIN);
        let hi = (kb.to_vec(), ts.saturating_add(gap));
        let touching: Vec<(Vec<u8>, i64)> = self
            .aggs
            .range(lo..=hi)
            .filter(|(_, e)| e.window.is_some_and(|w| w.end.saturating_add(gap) >= ts))
            .map(|(k, _)| k.clone())
            .collect();
        let mut merged = Window { start: ts, end: ts };
        let mut states: Vec<Value> = aggs.iter().map(|a| (a.func.init)(&a.call)).collect();
        let mut max_ts = ts;
        let mut first = true;
        for k in &touching {
            if let Some(e) = self.aggs.remove(k) {
                let w = e.window.unwrap_or(merged);
                merged.start = merged.start.min(w.start);
                merged.end = merged.end.max(w.end);
                max_ts = max_ts.max(e.timestamp);
                if first {
                    states = e.states.clone();
                    first = false;
                } else {
                    for ((a, s), o) in aggs.iter().zip(states.iter_mut()).zip(&e.states) {
                        (a.func.merge)(&a.call, s, o);
                    }
                }
                // The merged-away session is deleted downstream, stamped
                // with its window's end as Kafka Streams does.
                self.log_delete(&e, fx);
                if !self.emit_final() {
                    fx.rows.push(OutRow {
                        key: e.key.clone(),
                        value: None,
                        timestamp: w.end,
                        window: e.window,
                    });
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
        self.aggs.insert((kb.to_vec(), merged.start), entry.clone());
        self.schedule(&entry, kb, merged.start);
        self.log_entry(&entry, fx);
        if !self.emit_final() {
            fx.rows.push(self.result_row(&entry));
        }
    }

    fn emit_final(&self) -> bool {
        matches!(
            self.plan.op,
            Op::Aggregate {
                emit_final: true,
                ..
            }
        )
    }

    /// Indexes a window by when it closes and when its state may go.
    fn schedule(&mut self, e: &AggEntry, kb: &[u8], start: i64) {
        let (Some(w), Some(spec)) = (e.window, self.plan.window.as_ref()) else {
            return;
        };
        let slot = (kb.to_vec(), start);
        let close = w.end.saturating_add(spec.grace_ms);
        if self.emit_final() {
            self.closing.insert((close, slot.clone()));
        }
        let keep = w.end.saturating_add(spec.retention_ms.max(spec.grace_ms));
        self.expiring.insert((keep, slot));
    }

    /// EMIT FINAL: emits windows that have closed; drops window state past
    /// its retention (and at least its grace period).
    fn expire_windows(&mut self, fx: &mut Effects) {
        while let Some((close, slot)) = self.closing.first().cloned() {
            if close > self.stream_time {
                break;
            }
            self.closing.pop_first();
            let Some(e) = self.aggs.get_mut(&slot) else {
                continue;
            };
            let still_open = e.window.is_some_and(|w| {
                w.end
                    .saturating_add(self.plan.window.as_ref().map_or(0, |s| s.grace_ms))
                    > self.stream_time
            });
            if e.emitted || still_open {
                continue;
            }
            e.emitted = true;
            let e = e.clone();
            fx.rows.push(self.result_row(&e));
            self.log_entry(&e, fx);
        }
        while let Some((keep, slot)) = self.expiring.first().cloned() {
            if keep >= self.stream_time {
                break;
            }
            self.expiring.pop_first();
            let Some(e) = self.aggs.get(&slot) else {
                continue;
            };
            let retention = self
                .plan
                .window
                .as_ref()
                .map_or(0, |s| s.retention_ms.max(s.grace_ms));
            // A session that grew since it was scheduled stays.
            if e.window
                .is_some_and(|w| w.end.saturating_add(retention) >= self.stream_time)
            {
                continue;
            }
            if let Some(e) = self.aggs.remove(&slot) {
                self.log_delete(&e, fx);
            }
        }
    }

    /// The output row of an aggregate entry (HAVING false: a tombstone).
    pub fn result_row(&self, e: &AggEntry) -> OutRow {
        let Op::Aggregate {
            aggs,
            having,
            values,
            ..
        } = &self.plan.op
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

    fn changelog_key(e: &AggEntry) -> Vec<u8> {
        let mut k = e.key.clone();
        if let Some(w) = e.window {
            k.push(Value::Bigint(w.start));
            k.push(Value::Bigint(w.end));
        }
        state::encode(&k)
    }

    fn log_entry(&self, e: &AggEntry, fx: &mut Effects) {
        let mut v = e.states.clone();
        v.push(Value::Bigint(e.timestamp));
        v.push(Value::Boolean(e.emitted));
        fx.changelog
            .push((Self::changelog_key(e), Some(state::encode(&v))));
    }

    fn log_delete(&self, e: &AggEntry, fx: &mut Effects) {
        fx.changelog.push((Self::changelog_key(e), None));
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
        let slot = (key_bytes(&k), window.map_or(i64::MIN, |w| w.start));
        match value {
            None => {
                self.aggs.remove(&slot);
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
                self.schedule(&entry, &slot.0, slot.1);
                self.aggs.insert(slot, entry);
            }
        }
        Ok(())
    }

    /// Every current result row (pull queries), in key order.
    pub fn results(&self) -> Vec<OutRow> {
        self.aggs.values().map(|e| self.result_row(e)).collect()
    }

    /// The results of one group key, every window of it (pull queries by
    /// key).
    pub fn results_for(&self, key: &[Value]) -> Vec<OutRow> {
        let kb = key_bytes(key);
        self.aggs
            .range((kb.clone(), i64::MIN)..=(kb, i64::MAX))
            .map(|(_, e)| self.result_row(e))
            .collect()
    }
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
        format!("CREATE STREAM OUT AS SELECT L.ID, A, B FROM L {kind} JOIN R WITHIN {within} ON L.ID = R.ID;")
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
        })
        .unwrap();
        let mut fx = Effects::default();
        feed_table(&mut r, &[(1, None, 9)], &mut fx);
        assert_eq!(counts(&fx), vec![(g("john"), Some(0), 9)]);
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
        let p = plan("CREATE TABLE OUT AS SELECT A.ID, X, Y, Z FROM A FULL JOIN B ON A.ID = B.ID JOIN C ON B.ID = C.ID;")
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
}

//! Joins that start from a stream: a stream–stream join within a time
//! window, and chains (`a JOIN b WITHIN ... ON ... JOIN c ON ...`) where
//! each stage joins the rows so far to one more stream (within a window)
//! or table (on its key). Each stage keeps its own state and stream time,
//! as each join node of a Kafka Streams topology does; the rows a stage
//! emits are the left input of the next.
//!
//! A window stage follows Kafka Streams as ksqlDB runs it: each side keeps
//! its records for before + after + grace; a left record at `t` joins the
//! right records in `[t - before, t + after]` (a right record: the left
//! records in `[t - after, t + before]`), and the result is stamped with
//! the later of the two timestamps. An unmatched left (LEFT, FULL) or
//! right (RIGHT, FULL) record is emitted with NULLs for the other side: at
//! once without a grace period (the legacy `JoinWindows.of`), else when
//! its window closes — stream time past `t + after + grace` (right: `t +
//! before + grace`) — unless a match arrived meanwhile (ksqlDB >= 0.23).

use std::collections::{BTreeMap, BTreeSet};

use crate::ast::JoinType;
use crate::error::{Result, SqlError};
use crate::expr::Node;
use crate::plan::nulls;
use crate::state;
use crate::types::{SqlType, Value};

/// Where a buffered row came from: the input record that made it (input,
/// partition, offset) and its rank among the rows that record made, so
/// replays after a restart name every row the same way.
pub type Origin = (u32, i32, i64, u32);

/// A buffered row: (encoded join key, timestamp, origin).
pub type Slot = (Vec<u8>, i64, Origin);

/// A changelog write: (key, value or tombstone).
pub type Log = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// The time bounds of a stream–stream join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindow {
    pub before_ms: i64,
    pub after_ms: i64,
    pub grace_ms: i64,
    /// With GRACE PERIOD, unmatched rows wait for their window to close.
    pub deferred: bool,
}

impl JoinWindow {
    /// How long each side keeps its records.
    fn retention(&self) -> i64 {
        self.before_ms
            .saturating_add(self.after_ms)
            .saturating_add(self.grace_ms)
    }
}

/// One join of a chain.
#[derive(Debug, Clone)]
pub struct Stage {
    pub kind: JoinType,
    /// The join expression over the left row (every input so far).
    pub left_key: Node,
    /// The join expression over the right input's row.
    pub right_key: Node,
    /// `None`: the right input is a table, joined on its key.
    pub window: Option<JoinWindow>,
    pub left_width: usize,
    pub right_width: usize,
    /// The join key's type (a repartition topic's key column).
    pub key_type: SqlType,
}

impl Stage {
    fn joined(&self, l: Option<Vec<Value>>, r: Option<Vec<Value>>) -> Vec<Value> {
        let mut row = l.unwrap_or_else(|| nulls(self.left_width));
        row.extend(r.unwrap_or_else(|| nulls(self.right_width)));
        row
    }

    fn outer(&self, side: usize) -> bool {
        match self.kind {
            JoinType::Inner => false,
            JoinType::Left => side == 0,
            JoinType::Right => side == 1,
            JoinType::Full => true,
        }
    }
}

/// A row a stage emits: the join key, the joined row (left, then right),
/// and its timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub key: Value,
    pub row: Vec<Value>,
    pub ts: i64,
}

/// Changelog tags within a stage: a side's window buffer (0, 1) and a
/// side's unmatched rows waiting for their window to close (2, 3). Stream
/// time is tagged `-1 - stage`.
const TAG_PENDING: i32 = 2;
const TAGS: i32 = 4;

fn log_key(stage: usize, tag: i32, slot: &Slot) -> Vec<u8> {
    let (kb, ts, (input, partition, offset, rank)) = slot;
    state::encode(&[
        Value::Int(stage as i32 * TAGS + tag),
        Value::Bytes(kb.clone()),
        Value::Bigint(*ts),
        Value::Int(*input as i32),
        Value::Int(*partition),
        Value::Bigint(*offset),
        Value::Int(*rank as i32),
    ])
}

/// The running state of one stage.
#[derive(Debug)]
pub struct StageState {
    /// The largest timestamp this stage has seen.
    pub stream_time: i64,
    logged_stream_time: i64,
    /// Each side's window buffer.
    pub buffers: [BTreeMap<Slot, Vec<Value>>; 2],
    /// The buffered rows by (timestamp, side), for expiry.
    times: BTreeSet<(i64, usize, Slot)>,
    /// Unmatched rows by (timestamp, side, slot), waiting for their window
    /// to close.
    pub pending: BTreeMap<(i64, usize, Slot), Vec<Value>>,
    /// A table stage: the table's rows by encoded key.
    pub table: crate::task::KeyMap<Vec<Value>>,
}

impl Default for StageState {
    fn default() -> Self {
        StageState {
            stream_time: i64::MIN,
            logged_stream_time: i64::MIN,
            buffers: [BTreeMap::new(), BTreeMap::new()],
            times: BTreeSet::new(),
            pending: BTreeMap::new(),
            table: crate::task::KeyMap::default(),
        }
    }
}

impl StageState {
    /// A table stage's update (`None` deletes the key).
    pub fn table_update(&mut self, key: Vec<u8>, row: Option<Vec<Value>>) {
        match row {
            Some(r) => {
                self.table.insert(key, r);
            }
            None => {
                self.table.remove(&key);
            }
        }
    }

    /// A row on one side (for a table stage, the left side only). Returns
    /// false if it was dropped for a NULL join key.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        idx: usize,
        stage: &Stage,
        side: usize,
        row: Vec<Value>,
        ts: i64,
        origin: Origin,
        log: &mut Log,
        out: &mut Vec<Joined>,
    ) -> bool {
        let jk = if side == 0 {
            &stage.left_key
        } else {
            &stage.right_key
        }
        .eval(&row);
        if jk.is_null() {
            // ksqlDB drops records with a NULL join key.
            return false;
        }
        let kb = state::encode(std::slice::from_ref(&jk));
        let Some(w) = stage.window else {
            // A stream–table stage: a lookup of the table's current row.
            let right = self.table.get(&kb).cloned();
            if right.is_some() || stage.kind == JoinType::Left {
                out.push(Joined {
                    key: jk,
                    row: stage.joined(Some(row), right),
                    ts,
                });
            }
            return true;
        };
        self.stream_time = self.stream_time.max(ts);
        self.purge(idx, &w, log);
        if w.deferred && ts == self.stream_time {
            self.emit_closed(idx, stage, &w, log, out);
        }
        if ts.saturating_add(w.retention()) > self.stream_time {
            let slot = (kb.clone(), ts, origin);
            log.push((log_key(idx, side as i32, &slot), Some(state::encode(&row))));
            self.buffers[side].insert(slot.clone(), row.clone());
            self.times.insert((ts, side, slot));
        }
        let (back, ahead) = if side == 0 {
            (w.before_ms, w.after_ms)
        } else {
            (w.after_ms, w.before_ms)
        };
        let lo = ts.saturating_sub(back).max(0);
        let hi = ts.saturating_add(ahead).max(0);
        let other = 1 - side;
        let first = (kb.clone(), lo, (0, i32::MIN, i64::MIN, 0));
        let last = (kb.clone(), hi, (u32::MAX, i32::MAX, i64::MAX, u32::MAX));
        let matches: Vec<(Slot, Vec<Value>)> = self.buffers[other]
            .range(first..=last)
            .map(|(s, r)| (s.clone(), r.clone()))
            .collect();
        if matches.is_empty() {
            if !stage.outer(side) {
                return true;
            }
            if w.deferred && hi >= self.stream_time {
                let slot = (kb, ts, origin);
                log.push((
                    log_key(idx, TAG_PENDING + side as i32, &slot),
                    Some(state::encode(&row)),
                ));
                self.pending.insert((ts, side, slot), row);
            } else {
                let (l, r) = if side == 0 {
                    (Some(row), None)
                } else {
                    (None, Some(row))
                };
                out.push(Joined {
                    key: jk,
                    row: stage.joined(l, r),
                    ts,
                });
            }
            return true;
        }
        for (slot, other_row) in matches {
            if w.deferred {
                // Matched now: never emitted with NULLs.
                if self
                    .pending
                    .remove(&(slot.1, other, slot.clone()))
                    .is_some()
                {
                    log.push((log_key(idx, TAG_PENDING + other as i32, &slot), None));
                }
            }
            let (l, r) = if side == 0 {
                (Some(row.clone()), Some(other_row))
            } else {
                (Some(other_row), Some(row.clone()))
            };
            out.push(Joined {
                key: jk.clone(),
                row: stage.joined(l, r),
                ts: ts.max(slot.1),
            });
        }
        true
    }

    /// Emits the unmatched rows whose window closed, oldest first.
    fn emit_closed(
        &mut self,
        idx: usize,
        stage: &Stage,
        w: &JoinWindow,
        log: &mut Log,
        out: &mut Vec<Joined>,
    ) {
        let shortest = w.before_ms.min(w.after_ms).saturating_add(w.grace_ms);
        let mut closed = Vec::new();
        for k in self.pending.keys() {
            if k.0.saturating_add(shortest) >= self.stream_time {
                break;
            }
            let look = if k.1 == 0 { w.after_ms } else { w.before_ms };
            if k.0.saturating_add(look).saturating_add(w.grace_ms) < self.stream_time {
                closed.push(k.clone());
            }
        }
        for k in closed {
            let Some(row) = self.pending.remove(&k) else {
                continue;
            };
            log.push((log_key(idx, TAG_PENDING + k.1 as i32, &k.2), None));
            let (jk, l, r) = if k.1 == 0 {
                (stage.left_key.eval(&row), Some(row), None)
            } else {
                (stage.right_key.eval(&row), None, Some(row))
            };
            out.push(Joined {
                key: jk,
                row: stage.joined(l, r),
                ts: k.0,
            });
        }
    }

    /// Drops buffered rows past the retention, logging their deletion.
    fn purge(&mut self, idx: usize, w: &JoinWindow, log: &mut Log) {
        let retention = w.retention();
        while let Some((t, _, _)) = self.times.first() {
            if t.saturating_add(retention) > self.stream_time {
                break;
            }
            let Some((_, side, slot)) = self.times.pop_first() else {
                break;
            };
            self.buffers[side].remove(&slot);
            log.push((log_key(idx, side as i32, &slot), None));
        }
    }

    /// Logs stream time if it moved since it was last logged.
    pub fn checkpoint(&mut self, idx: usize, log: &mut Log) {
        if self.stream_time != self.logged_stream_time {
            self.logged_stream_time = self.stream_time;
            log.push((
                state::encode(&[Value::Int(-1 - idx as i32)]),
                Some(state::encode(&[Value::Bigint(self.stream_time)])),
            ));
        }
    }
}

/// Applies one changelog record to the stages it names.
pub fn restore(stages: &mut [StageState], key: &[u8], value: Option<&[u8]>) -> Result<()> {
    let bad = || SqlError::serde("STATE", "malformed join changelog record");
    let k = state::decode(key)?;
    let Some(Value::Int(tag)) = k.first() else {
        return Err(bad());
    };
    if *tag < 0 {
        let st = stages.get_mut((-1 - *tag) as usize).ok_or_else(bad)?;
        if let Some(v) = value {
            let t = state::decode(v)?
                .first()
                .and_then(Value::as_i64)
                .ok_or_else(bad)?;
            st.stream_time = st.stream_time.max(t);
            st.logged_stream_time = st.stream_time;
        }
        return Ok(());
    }
    let (
        Some(Value::Bytes(kb)),
        Some(Value::Bigint(ts)),
        Some(Value::Int(input)),
        Some(Value::Int(partition)),
        Some(Value::Bigint(offset)),
        Some(Value::Int(rank)),
    ) = (k.get(1), k.get(2), k.get(3), k.get(4), k.get(5), k.get(6))
    else {
        return Err(bad());
    };
    let slot: Slot = (
        kb.clone(),
        *ts,
        (*input as u32, *partition, *offset, *rank as u32),
    );
    let st = stages.get_mut((*tag / TAGS) as usize).ok_or_else(bad)?;
    let row = value.map(state::decode).transpose()?;
    match tag % TAGS {
        t @ (0 | 1) => {
            let side = t as usize;
            match row {
                Some(r) => {
                    st.buffers[side].insert(slot.clone(), r);
                    st.times.insert((*ts, side, slot));
                }
                None => {
                    st.buffers[side].remove(&slot);
                    st.times.remove(&(*ts, side, slot));
                }
            }
        }
        t => {
            let key = (*ts, (t - TAG_PENDING) as usize, slot);
            match row {
                Some(r) => {
                    st.pending.insert(key, r);
                }
                None => {
                    st.pending.remove(&key);
                }
            }
        }
    }
    Ok(())
}

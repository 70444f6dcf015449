//! One share-partition (KIP-932): the delivery state of a topic partition
//! for one share group, as a pure state machine.
//!
//! The share-partition start offset (SPSO) is the first offset not yet
//! delivered for good; below it every record is done. From the SPSO up to
//! the end of what has been read from the log (the SPEO) each offset is
//! *in flight* with a state and a delivery count:
//!
//! - `Available`: waiting to be delivered (again);
//! - `Acquired`: delivered to one member, locked until its acquisition
//!   lock expires (`group.share.record.lock.duration.ms`);
//! - `Acknowledged` (ACCEPT) and `Archived` (REJECT, a gap, or out of
//!   delivery attempts): done.
//!
//! Acquiring increments the delivery count. A released or expired record
//! becomes available again, unless its delivery count has reached
//! `group.share.delivery.count.limit`, when it is archived instead. The
//! SPSO moves past every leading done record. New records are acquired
//! only while the in-flight window is below
//! `group.share.partition.max.record.locks`.
//!
//! The machine holds offsets, never record bytes: the runtime reads
//! batches from the log starting at [`SharePartition::next_fetch_offset`]
//! and passes their offset ranges to [`SharePartition::acquire`], which
//! decides what the member gets. Batches that can never be delivered
//! (transaction markers, aborted records under read_committed) come in
//! marked `skip` and are archived at once. Time comes in as milliseconds.
//!
//! What must survive a restart comes out of [`SharePartition::take_update`]
//! as state batches in `__share_group_state`'s form (see
//! [`crate::share_state_store`]): the SPSO and the changed ranges, with
//! acquired records written as available with their delivery count.
//! Acquisitions themselves are not persisted, as in Kafka: after a crash a
//! record that was out with a consumer is delivered again, with the
//! delivery count of its last persisted state.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::BrokerError;

/// A record's delivery state, with Kafka's ids (`SharePartition.RecordState`,
/// also the `DeliveryState` byte of `__share_group_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordState {
    /// Waiting to be delivered.
    Available,
    /// Delivered to a member and locked.
    Acquired,
    /// Accepted by a member.
    Acknowledged,
    /// Rejected, a gap, or out of delivery attempts.
    Archived,
}

impl RecordState {
    /// Kafka's id for the state.
    pub fn id(self) -> i8 {
        match self {
            RecordState::Available => 0,
            RecordState::Acquired => 1,
            RecordState::Acknowledged => 2,
            RecordState::Archived => 4,
        }
    }

    /// The state with Kafka's id `id`.
    pub fn from_id(id: i8) -> Option<Self> {
        match id {
            0 => Some(RecordState::Available),
            1 => Some(RecordState::Acquired),
            2 => Some(RecordState::Acknowledged),
            4 => Some(RecordState::Archived),
            _ => None,
        }
    }

    /// Whether delivery of the record is over.
    pub fn is_done(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// An acknowledgement type, as ShareFetch and ShareAcknowledge carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// The offset holds no record the consumer could deliver.
    Gap,
    /// Processed: done.
    Accept,
    /// Give it back for another delivery attempt.
    Release,
    /// Unprocessable: done, never delivered again.
    Reject,
    /// Keep it locked for another lock duration (KIP-1222).
    Renew,
}

impl AckType {
    /// The type with wire value `v`.
    pub fn from_wire(v: i8) -> Option<Self> {
        match v {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            4 => Some(AckType::Renew),
            _ => None,
        }
    }
}

/// The settings a share-partition works with: the group's configs
/// (`share.*`), falling back to the broker's (`group.share.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareConfig {
    /// `share.record.lock.duration.ms`.
    pub lock_duration_ms: i64,
    /// `share.delivery.count.limit`.
    pub delivery_count_limit: i16,
    /// `share.partition.max.record.locks`: the most in-flight records.
    pub max_in_flight: i64,
    /// `share.renew.acknowledge.enable`.
    pub renew_enabled: bool,
}

impl Default for ShareConfig {
    fn default() -> Self {
        Self {
            lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            max_in_flight: 2000,
            renew_enabled: true,
        }
    }
}

/// How many records one fetch may acquire (ShareFetch's `ShareAcquireMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireMode {
    /// Whole log batches, possibly past the record limit (the default).
    BatchOptimized,
    /// Never more than the record limit (KIP-1206).
    RecordLimit,
}

/// The offsets of one record batch read from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBatch {
    /// Base offset.
    pub first: i64,
    /// Last offset.
    pub last: i64,
    /// Never deliverable: a control batch, or aborted under read_committed.
    pub skip: bool,
}

/// A range acquired by a fetch (ShareFetch's `AcquiredRecords`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// First offset.
    pub first: i64,
    /// Last offset.
    pub last: i64,
    /// Delivery count of these records, this delivery included.
    pub delivery_count: i16,
}

/// One acknowledgement batch: a single type for the whole range, or one
/// type per offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    /// First offset.
    pub first: i64,
    /// Last offset.
    pub last: i64,
    /// Wire acknowledge types.
    pub types: Vec<i8>,
}

/// A range of offsets with one persisted state (`__share_group_state`'s
/// `StateBatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    /// First offset.
    pub first_offset: i64,
    /// Last offset.
    pub last_offset: i64,
    /// Available, Acknowledged or Archived.
    pub state: RecordState,
    /// Delivery count.
    pub delivery_count: i16,
}

/// A share-partition's durable state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersistedState {
    /// Bumped whenever the state is reset (offsets altered or deleted).
    pub state_epoch: i32,
    /// The SPSO.
    pub start_offset: i64,
    /// In-flight ranges at or above the SPSO, sorted, not overlapping.
    pub batches: Vec<StateBatch>,
}

/// What changed since the last [`SharePartition::take_update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    /// The SPSO now.
    pub start_offset: i64,
    /// The changed ranges' states now.
    pub batches: Vec<StateBatch>,
    /// Done offsets at or above the SPSO (KIP-1226).
    pub delivery_complete_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    last: i64,
    state: RecordState,
    count: i16,
    owner: Option<Arc<str>>,
    lock_until: i64,
}

impl Span {
    fn new(last: i64, state: RecordState, count: i16) -> Self {
        Self {
            last,
            state,
            count,
            owner: None,
            lock_until: 0,
        }
    }

    fn same_as(&self, o: &Span) -> bool {
        self.state == o.state
            && self.count == o.count
            && self.owner == o.owner
            && self.lock_until == o.lock_until
    }

    /// Gives an acquired record back: available, or archived once out of
    /// delivery attempts.
    fn release(&mut self, cfg: &ShareConfig) {
        self.state = if self.count >= cfg.delivery_count_limit {
            RecordState::Archived
        } else {
            RecordState::Available
        };
        self.owner = None;
        self.lock_until = 0;
    }
}

/// The delivery state of one topic partition for one share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    state_epoch: i32,
    start: i64,
    end: i64,
    /// In-flight offsets `[start, end)`, contiguous, by first offset.
    spans: BTreeMap<i64, Span>,
    /// Ranges changed since the last update was taken.
    dirty: Vec<(i64, i64)>,
    start_moved: bool,
}

impl SharePartition {
    /// A share-partition starting at `start_offset` with nothing in flight.
    pub fn new(start_offset: i64) -> Self {
        Self::from_persisted(&PersistedState {
            state_epoch: 0,
            start_offset,
            batches: Vec::new(),
        })
    }

    /// Rebuilds a share-partition from its durable state. Offsets between
    /// persisted batches are available and never delivered.
    pub fn from_persisted(p: &PersistedState) -> Self {
        let start = p.start_offset.max(0);
        let mut spans = BTreeMap::new();
        let mut end = start;
        let mut batches: Vec<&StateBatch> = p.batches.iter().collect();
        batches.sort_by_key(|b| b.first_offset);
        for b in batches {
            let first = b.first_offset.max(end);
            if b.last_offset < first {
                continue;
            }
            if first > end {
                spans.insert(end, Span::new(first - 1, RecordState::Available, 0));
            }
            let state = match b.state {
                RecordState::Acquired => RecordState::Available,
                s => s,
            };
            spans.insert(
                first,
                Span::new(b.last_offset, state, b.delivery_count.max(0)),
            );
            end = b.last_offset + 1;
        }
        let mut sp = Self {
            state_epoch: p.state_epoch,
            start,
            end,
            spans,
            dirty: Vec::new(),
            start_moved: false,
        };
        sp.coalesce(start, end);
        sp.advance_start();
        sp.start_moved = false;
        sp
    }

    /// The share-partition start offset.
    pub fn start_offset(&self) -> i64 {
        self.start
    }

    /// One past the last offset read into the in-flight window.
    pub fn end_offset(&self) -> i64 {
        self.end
    }

    /// The state epoch.
    pub fn state_epoch(&self) -> i32 {
        self.state_epoch
    }

    /// Where the next fetch should read the log from: the first available
    /// in-flight record, else the end of the window if it may grow; `None`
    /// when nothing can be acquired now.
    pub fn next_fetch_offset(&self, cfg: &ShareConfig) -> Option<i64> {
        self.spans
            .iter()
            .find(|(_, s)| s.state == RecordState::Available)
            .map(|(k, _)| *k)
            .or_else(|| (self.end - self.start < cfg.max_in_flight).then_some(self.end))
    }

    /// When the earliest acquisition lock expires, if any record is acquired.
    pub fn next_lock_expiry(&self) -> Option<i64> {
        self.spans
            .values()
            .filter(|s| s.state == RecordState::Acquired)
            .map(|s| s.lock_until)
            .min()
    }

    /// Acquires records for `member` from the batches read at
    /// [`Self::next_fetch_offset`]: available in-flight records first, then
    /// new ones past the window, up to `max_records` (which whole batches
    /// may exceed in [`AcquireMode::BatchOptimized`]).
    pub fn acquire(
        &mut self,
        member: &str,
        batches: &[LogBatch],
        max_records: i64,
        mode: AcquireMode,
        cfg: &ShareConfig,
        now: i64,
    ) -> Vec<Acquired> {
        let owner: Arc<str> = Arc::from(member);
        let lock_until = now.saturating_add(cfg.lock_duration_ms);
        let mut got = 0i64;
        let mut out: Vec<Acquired> = Vec::new();
        let mut sorted: Vec<LogBatch> = batches.to_vec();
        sorted.sort_by_key(|b| b.first);
        let (lo_all, hi_all) = (self.start, self.end);
        'batches: for b in sorted {
            if b.last < self.start || b.first > b.last {
                continue;
            }
            if got >= max_records {
                break;
            }
            // Records already in flight: take what is available.
            let lo = b.first.max(self.start);
            let hi = b.last.min(self.end - 1);
            if lo <= hi {
                self.split(lo);
                self.split(hi + 1);
                let keys: Vec<i64> = self.spans.range(lo..=hi).map(|(k, _)| *k).collect();
                for k in keys {
                    let Some(span_last) = self
                        .spans
                        .get(&k)
                        .filter(|s| s.state == RecordState::Available)
                        .map(|s| s.last)
                    else {
                        continue;
                    };
                    if b.skip {
                        if let Some(s) = self.spans.get_mut(&k) {
                            s.state = RecordState::Archived;
                        }
                        continue;
                    }
                    let remaining = max_records - got;
                    if remaining <= 0 {
                        break 'batches;
                    }
                    let mut last = span_last;
                    if mode == AcquireMode::RecordLimit && last - k + 1 > remaining {
                        last = k + remaining - 1;
                        self.split(last + 1);
                    }
                    let Some(s) = self.spans.get_mut(&k) else {
                        continue;
                    };
                    s.state = RecordState::Acquired;
                    s.count = s.count.saturating_add(1);
                    s.owner = Some(owner.clone());
                    s.lock_until = lock_until;
                    got += last - k + 1;
                    push_acquired(&mut out, k, last, s.count);
                }
            }
            // New records past the window.
            if b.last >= self.end {
                if self.end - self.start >= cfg.max_in_flight {
                    break;
                }
                let lo = b.first.max(self.end);
                if lo > self.end {
                    // Offsets no batch holds (compacted away).
                    self.spans
                        .insert(self.end, Span::new(lo - 1, RecordState::Archived, 0));
                    self.end = lo;
                }
                if b.skip {
                    self.spans
                        .insert(lo, Span::new(b.last, RecordState::Archived, 0));
                    self.end = b.last + 1;
                    continue;
                }
                let remaining = max_records - got;
                if mode == AcquireMode::RecordLimit && remaining <= 0 {
                    break;
                }
                let last = if mode == AcquireMode::RecordLimit {
                    b.last.min(lo + remaining - 1)
                } else {
                    b.last
                };
                self.spans.insert(
                    lo,
                    Span {
                        last,
                        state: RecordState::Acquired,
                        count: 1,
                        owner: Some(owner.clone()),
                        lock_until,
                    },
                );
                self.end = last + 1;
                got += last - lo + 1;
                push_acquired(&mut out, lo, last, 1);
                if last < b.last {
                    break;
                }
            }
        }
        self.coalesce(lo_all, self.end.max(hi_all));
        self.advance_start();
        out
    }

    /// Applies `member`'s acknowledgements. Either all of them apply or,
    /// on error, none.
    pub fn acknowledge(
        &mut self,
        member: &str,
        acks: &[AckBatch],
        cfg: &ShareConfig,
        now: i64,
    ) -> Result<(), BrokerError> {
        // Validate everything first.
        let mut prev_last: Option<i64> = None;
        for a in acks {
            if a.first > a.last {
                return Err(BrokerError::invalid_request(format!(
                    "acknowledgement batch {}..{} has its first offset after its last",
                    a.first, a.last
                )));
            }
            if prev_last.is_some_and(|p| a.first <= p) {
                return Err(BrokerError::invalid_request(
                    "acknowledgement batches overlap or are out of order",
                ));
            }
            prev_last = Some(a.last);
            let len = a.last - a.first + 1;
            if a.types.is_empty() || (a.types.len() != 1 && a.types.len() as i64 != len) {
                return Err(BrokerError::invalid_request(format!(
                    "{} acknowledge types for {} offsets",
                    a.types.len(),
                    len
                )));
            }
            for &t in &a.types {
                match AckType::from_wire(t) {
                    None => {
                        return Err(BrokerError::invalid_request(format!(
                            "unknown acknowledge type {t}"
                        )))
                    }
                    Some(AckType::Renew) if !cfg.renew_enabled => {
                        return Err(record_state(
                            "renew acknowledgements are disabled for this group (share.renew.acknowledge.enable)",
                        ))
                    }
                    Some(_) => {}
                }
            }
            if a.last < self.start {
                continue;
            }
            if a.last >= self.end {
                return Err(record_state(format!(
                    "offset {} was never delivered",
                    a.last
                )));
            }
            let lo = a.first.max(self.start);
            let mut off = lo;
            while off <= a.last {
                let Some((_, s)) = self.spans.range(..=off).next_back() else {
                    return Err(record_state(format!("offset {off} is not in flight")));
                };
                if s.state != RecordState::Acquired || s.owner.as_deref() != Some(member) {
                    return Err(record_state(format!(
                        "offset {off} is not acquired by this member"
                    )));
                }
                off = s.last + 1;
            }
        }
        // Apply, one run of equal types at a time.
        for a in acks {
            if a.last < self.start {
                continue;
            }
            let lo = a.first.max(self.start);
            let mut off = lo;
            while off <= a.last {
                let t = type_at(a, off);
                let mut run_end = off;
                while run_end < a.last && type_at(a, run_end + 1) == t {
                    run_end += 1;
                }
                self.apply_ack(off, run_end, t, cfg, now);
                off = run_end + 1;
            }
        }
        let (lo, hi) = (self.start, self.end);
        self.coalesce(lo, hi);
        self.advance_start();
        Ok(())
    }

    fn apply_ack(&mut self, lo: i64, hi: i64, t: AckType, cfg: &ShareConfig, now: i64) {
        self.split(lo);
        self.split(hi + 1);
        for (_, s) in self.spans.range_mut(lo..=hi) {
            match t {
                AckType::Accept => s.state = RecordState::Acknowledged,
                AckType::Gap | AckType::Reject => s.state = RecordState::Archived,
                AckType::Release => s.release(cfg),
                AckType::Renew => {
                    s.lock_until = now.saturating_add(cfg.lock_duration_ms);
                    continue;
                }
            }
            s.owner = None;
            s.lock_until = 0;
        }
        if t != AckType::Renew {
            self.dirty.push((lo, hi));
        }
    }

    /// Releases every record whose acquisition lock has expired by `now`.
    /// Returns whether any did.
    pub fn expire_locks(&mut self, cfg: &ShareConfig, now: i64) -> bool {
        self.release_where(cfg, |s| s.lock_until <= now)
    }

    /// Releases every record `member` holds (its share session closed or it
    /// left the group). Returns whether it held any.
    pub fn release_member(&mut self, member: &str, cfg: &ShareConfig) -> bool {
        self.release_where(cfg, |s| s.owner.as_deref() == Some(member))
    }

    fn release_where(&mut self, cfg: &ShareConfig, pick: impl Fn(&Span) -> bool) -> bool {
        let mut changed = Vec::new();
        for (k, s) in self.spans.iter_mut() {
            if s.state == RecordState::Acquired && pick(s) {
                s.release(cfg);
                changed.push((*k, s.last));
            }
        }
        if changed.is_empty() {
            return false;
        }
        self.dirty.extend(changed);
        let (lo, hi) = (self.start, self.end);
        self.coalesce(lo, hi);
        self.advance_start();
        true
    }

    /// Restarts delivery at `offset` with nothing in flight, under a new
    /// state epoch (AlterShareGroupOffsets).
    pub fn reset(&mut self, offset: i64) {
        self.state_epoch = self.state_epoch.saturating_add(1);
        self.spans.clear();
        self.start = offset.max(0);
        self.end = self.start;
        self.dirty.clear();
        self.start_moved = true;
    }

    /// The log start offset moved to `log_start` (retention, DeleteRecords):
    /// what lies below it can never be delivered. Returns whether the SPSO
    /// moved.
    pub fn advance_log_start(&mut self, log_start: i64) -> bool {
        if log_start <= self.start {
            return false;
        }
        if log_start >= self.end {
            self.spans.clear();
            self.end = log_start;
        } else {
            self.split(log_start);
            self.spans = self.spans.split_off(&log_start);
        }
        self.start = log_start;
        self.start_moved = true;
        self.advance_start();
        true
    }

    /// The changes to persist since the last call, if any.
    pub fn take_update(&mut self) -> Option<StateUpdate> {
        if self.dirty.is_empty() && !self.start_moved {
            return None;
        }
        let mut ranges = std::mem::take(&mut self.dirty);
        self.start_moved = false;
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(m) if lo <= m.1 + 1 => m.1 = m.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let mut batches = Vec::new();
        for (lo, hi) in merged {
            let lo = lo.max(self.start);
            let hi = hi.min(self.end - 1);
            if lo > hi {
                continue;
            }
            for (k, s) in self.spans.range(..=hi) {
                if s.last < lo {
                    continue;
                }
                push_state(&mut batches, (*k).max(lo), s.last.min(hi), s);
            }
        }
        Some(StateUpdate {
            start_offset: self.start,
            batches,
            delivery_complete_count: self.delivery_complete_count(),
        })
    }

    /// The whole durable state, for a snapshot. Taking it also clears the
    /// pending update, which it contains.
    pub fn snapshot(&mut self) -> PersistedState {
        self.dirty.clear();
        self.start_moved = false;
        let mut batches = Vec::new();
        for (k, s) in &self.spans {
            if s.state == RecordState::Available && s.count == 0 {
                continue;
            }
            push_state(&mut batches, *k, s.last, s);
        }
        PersistedState {
            state_epoch: self.state_epoch,
            start_offset: self.start,
            batches,
        }
    }

    /// In-flight offsets whose delivery is done.
    pub fn delivery_complete_count(&self) -> i64 {
        self.spans
            .iter()
            .filter(|(_, s)| s.state.is_done())
            .map(|(k, s)| s.last - k + 1)
            .sum()
    }

    /// Records not yet delivered for good below `log_end` (the high
    /// watermark or, for read_committed groups, the last stable offset).
    pub fn lag(&self, log_end: i64) -> i64 {
        let done = self
            .spans
            .range(..log_end)
            .filter(|(_, s)| s.state.is_done())
            .map(|(k, s)| s.last.min(log_end - 1) - k + 1)
            .sum::<i64>();
        (log_end - self.start - done).max(0)
    }

    /// Records currently acquired.
    pub fn acquired_count(&self) -> i64 {
        self.spans
            .iter()
            .filter(|(_, s)| s.state == RecordState::Acquired)
            .map(|(k, s)| s.last - k + 1)
            .sum()
    }

    /// The state and delivery count of `offset` (for tests and describe).
    pub fn state_of(&self, offset: i64) -> Option<(RecordState, i16)> {
        if offset < self.start {
            return None;
        }
        self.spans
            .range(..=offset)
            .next_back()
            .filter(|(_, s)| s.last >= offset)
            .map(|(_, s)| (s.state, s.count))
    }

    /// Makes a span start at `at`, if one covers it.
    fn split(&mut self, at: i64) {
        let Some((&k, s)) = self.spans.range(..at).next_back() else {
            return;
        };
        if s.last < at {
            return;
        }
        let right = s.clone();
        if let Some(left) = self.spans.get_mut(&k) {
            left.last = at - 1;
        }
        self.spans.insert(at, right);
    }

    /// Merges neighbouring spans in `[lo, hi]` that are alike.
    fn coalesce(&mut self, lo: i64, hi: i64) {
        let from = self.spans.range(..=lo).next_back().map_or(lo, |(k, _)| *k);
        let keys: Vec<i64> = self.spans.range(from..=hi).map(|(k, _)| *k).collect();
        let mut cur: Option<i64> = None;
        for k in keys {
            match cur {
                Some(c) => {
                    let merge = matches!(
                        (self.spans.get(&c), self.spans.get(&k)),
                        (Some(a), Some(b)) if a.last + 1 == k && a.same_as(b)
                    );
                    if merge {
                        if let Some(b) = self.spans.remove(&k) {
                            if let Some(a) = self.spans.get_mut(&c) {
                                a.last = b.last;
                            }
                        }
                    } else {
                        cur = Some(k);
                    }
                }
                None => cur = Some(k),
            }
        }
    }

    /// Moves the SPSO past every leading done record.
    fn advance_start(&mut self) {
        while let Some(entry) = self.spans.first_entry() {
            if !entry.get().state.is_done() {
                break;
            }
            let s = entry.remove();
            self.start = s.last + 1;
            self.start_moved = true;
        }
        if self.spans.is_empty() && self.start < self.end {
            self.start = self.end;
            self.start_moved = true;
        }
    }
}

fn record_state(reason: impl Into<String>) -> BrokerError {
    BrokerError::InvalidRecordState {
        reason: reason.into(),
    }
}

fn type_at(a: &AckBatch, off: i64) -> AckType {
    let t = if a.types.len() == 1 {
        a.types[0]
    } else {
        a.types[usize::try_from(off - a.first).unwrap_or(0)]
    };
    // Validated before anything is applied.
    AckType::from_wire(t).unwrap_or(AckType::Release)
}

fn push_acquired(out: &mut Vec<Acquired>, first: i64, last: i64, count: i16) {
    match out.last_mut() {
        Some(a) if a.last + 1 == first && a.delivery_count == count => a.last = last,
        _ => out.push(Acquired {
            first,
            last,
            delivery_count: count,
        }),
    }
}

fn push_state(out: &mut Vec<StateBatch>, first: i64, last: i64, s: &Span) {
    let state = match s.state {
        RecordState::Acquired => RecordState::Available,
        st => st,
    };
    match out.last_mut() {
        Some(b)
            if b.last_offset + 1 == first && b.state == state && b.delivery_count == s.count =>
        {
            b.last_offset = last;
        }
        _ => out.push(StateBatch {
            first_offset: first,
            last_offset: last,
            state,
            delivery_count: s.count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError;
    use proptest::prelude::*;

    fn cfg() -> ShareConfig {
        ShareConfig {
            lock_duration_ms: 1000,
            delivery_count_limit: 3,
            max_in_flight: 100,
            renew_enabled: true,
        }
    }

    fn batch(first: i64, last: i64) -> LogBatch {
        LogBatch {
            first,
            last,
            skip: false,
        }
    }

    fn ack(first: i64, last: i64, t: i8) -> AckBatch {
        AckBatch {
            first,
            last,
            types: vec![t],
        }
    }

    fn acq(first: i64, last: i64, delivery_count: i16) -> Acquired {
        Acquired {
            first,
            last,
            delivery_count,
        }
    }

    const ACCEPT: i8 = 1;
    const RELEASE: i8 = 2;
    const REJECT: i8 = 3;
    const RENEW: i8 = 4;

    /// A share-partition at 0 with `a` holding offsets 0..=9 (two batches).
    fn with_ten_acquired() -> SharePartition {
        let mut sp = SharePartition::new(0);
        let got = sp.acquire(
            "a",
            &[batch(0, 4), batch(5, 9)],
            100,
            AcquireMode::BatchOptimized,
            &cfg(),
            0,
        );
        assert_eq!(got, vec![acq(0, 9, 1)]);
        sp
    }

    #[test]
    fn new_records_are_acquired_with_delivery_count_one() {
        let sp = with_ten_acquired();
        assert_eq!(sp.end_offset(), 10);
        assert_eq!(sp.state_of(3), Some((RecordState::Acquired, 1)));
        assert_eq!(sp.acquired_count(), 10);
        assert_eq!(sp.next_fetch_offset(&cfg()), Some(10));
    }

    #[test]
    fn batch_mode_takes_whole_batches_past_the_record_limit() {
        let mut sp = SharePartition::new(0);
        let got = sp.acquire(
            "a",
            &[batch(0, 4), batch(5, 9)],
            3,
            AcquireMode::BatchOptimized,
            &cfg(),
            0,
        );
        assert_eq!(got, vec![acq(0, 4, 1)]);
        assert_eq!(sp.end_offset(), 5);
    }

    #[test]
    fn record_limit_mode_splits_batches() {
        let mut sp = SharePartition::new(0);
        let got = sp.acquire("a", &[batch(0, 9)], 3, AcquireMode::RecordLimit, &cfg(), 0);
        assert_eq!(got, vec![acq(0, 2, 1)]);
        assert_eq!(sp.end_offset(), 3);
        let got = sp.acquire("b", &[batch(0, 9)], 4, AcquireMode::RecordLimit, &cfg(), 0);
        assert_eq!(got, vec![acq(3, 6, 1)]);
    }

    #[test]
    fn acquired_records_go_to_nobody_else() {
        let mut sp = with_ten_acquired();
        let got = sp.acquire(
            "b",
            &[batch(0, 4), batch(5, 9)],
            100,
            AcquireMode::BatchOptimized,
            &cfg(),
            0,
        );
        assert!(got.is_empty());
        assert_eq!(sp.state_of(0), Some((RecordState::Acquired, 1)));
    }

    #[test]
    fn accepting_moves_the_start_offset() {
        let mut sp = with_ten_acquired();
        sp.acknowledge("a", &[ack(0, 3, ACCEPT)], &cfg(), 10)
            .unwrap();
        assert_eq!(sp.start_offset(), 4);
        sp.acknowledge("a", &[ack(6, 9, ACCEPT)], &cfg(), 10)
            .unwrap();
        assert_eq!(sp.start_offset(), 4);
        assert_eq!(sp.state_of(7), Some((RecordState::Acknowledged, 1)));
        sp.acknowledge("a", &[ack(4, 5, ACCEPT)], &cfg(), 10)
            .unwrap();
        assert_eq!(sp.start_offset(), 10);
        assert_eq!(sp.acquired_count(), 0);
    }

    #[test]
    fn released_records_come_back_with_a_higher_delivery_count() {
        let mut sp = with_ten_acquired();
        sp.acknowledge("a", &[ack(2, 3, RELEASE)], &cfg(), 10)
            .unwrap();
        assert_eq!(sp.state_of(2), Some((RecordState::Available, 1)));
        assert_eq!(sp.next_fetch_offset(&cfg()), Some(2));
        let got = sp.acquire(
            "b",
            &[batch(0, 4)],
            100,
            AcquireMode::BatchOptimized,
            &cfg(),
            20,
        );
        assert_eq!(got, vec![acq(2, 3, 2)]);
    }

    #[test]
    fn rejected_and_gap_records_are_archived() {
        let mut sp = with_ten_acquired();
        let mixed = AckBatch {
            first: 0,
            last: 3,
            types: vec![REJECT, 0, ACCEPT, REJECT],
        };
        sp.acknowledge("a", &[mixed], &cfg(), 10).unwrap();
        assert_eq!(sp.start_offset(), 4);
        sp.acknowledge("a", &[ack(5, 5, REJECT)], &cfg(), 10)
            .unwrap();
        assert_eq!(sp.state_of(5), Some((RecordState::Archived, 1)));
    }

    #[test]
    fn records_out_of_delivery_attempts_are_archived_on_release() {
        let mut sp = SharePartition::new(0);
        for n in 1..=3 {
            let got = sp.acquire(
                "a",
                &[batch(0, 0)],
                10,
                AcquireMode::BatchOptimized,
                &cfg(),
                0,
            );
            assert_eq!(got, vec![acq(0, 0, n)]);
            sp.acknowledge("a", &[ack(0, 0, RELEASE)], &cfg(), 0)
                .unwrap();
        }
        // The third delivery was the last: the record is archived.
        assert_eq!(sp.start_offset(), 1);
        assert!(sp
            .acquire(
                "a",
                &[batch(0, 0)],
                10,
                AcquireMode::BatchOptimized,
                &cfg(),
                0
            )
            .is_empty());
    }

    #[test]
    fn expired_locks_make_records_available_or_archived() {
        let mut sp = with_ten_acquired();
        assert_eq!(sp.next_lock_expiry(), Some(1000));
        assert!(!sp.expire_locks(&cfg(), 999));
        assert!(sp.expire_locks(&cfg(), 1000));
        assert_eq!(sp.state_of(0), Some((RecordState::Available, 1)));
        let c = ShareConfig {
            delivery_count_limit: 2,
            ..cfg()
        };
        sp.acquire(
            "b",
            &[batch(0, 9)],
            100,
            AcquireMode::BatchOptimized,
            &c,
            2000,
        );
        assert!(sp.expire_locks(&c, 3000));
        assert_eq!(sp.start_offset(), 10, "two deliveries, limit two: archived");
    }

    #[test]
    fn renew_extends_the_lock() {
        let mut sp = with_ten_acquired();
        sp.acknowledge("a", &[ack(0, 4, RENEW)], &cfg(), 900)
            .unwrap();
        assert!(sp.expire_locks(&cfg(), 1000));
        assert_eq!(sp.state_of(0), Some((RecordState::Acquired, 1)));
        assert_eq!(sp.state_of(5), Some((RecordState::Available, 1)));
        assert_eq!(sp.take_update().map(|u| u.batches.len()), Some(1));
        let off = ShareConfig {
            renew_enabled: false,
            ..cfg()
        };
        let e = sp
            .acknowledge("a", &[ack(0, 4, RENEW)], &off, 950)
            .unwrap_err();
        assert_eq!(e.code(), ResponseError::InvalidRecordState);
    }

    #[test]
    fn acknowledging_records_of_another_member_fails_and_changes_nothing() {
        let mut sp = with_ten_acquired();
        sp.acquire(
            "b",
            &[batch(10, 12)],
            100,
            AcquireMode::BatchOptimized,
            &cfg(),
            0,
        );
        let before = sp.clone();
        let e = sp
            .acknowledge("a", &[ack(0, 1, ACCEPT), ack(9, 10, ACCEPT)], &cfg(), 5)
            .unwrap_err();
        assert_eq!(e.code(), ResponseError::InvalidRecordState);
        assert_eq!(sp, before);
        let e = sp
            .acknowledge("a", &[ack(20, 21, ACCEPT)], &cfg(), 5)
            .unwrap_err();
        assert_eq!(e.code(), ResponseError::InvalidRecordState);
    }

    #[test]
    fn malformed_acknowledgements_are_invalid_requests() {
        let mut sp = with_ten_acquired();
        let bad = [
            vec![AckBatch {
                first: 0,
                last: 2,
                types: vec![1, 1],
            }],
            vec![ack(0, 1, 9)],
            vec![ack(3, 2, ACCEPT)],
            vec![ack(0, 3, ACCEPT), ack(3, 4, ACCEPT)],
        ];
        for acks in bad {
            let e = sp.acknowledge("a", &acks, &cfg(), 0).unwrap_err();
            assert_eq!(e.code(), ResponseError::InvalidRequest, "{acks:?}");
        }
    }

    #[test]
    fn acknowledgements_below_the_start_offset_are_ignored() {
        let mut sp = with_ten_acquired();
        sp.acknowledge("a", &[ack(0, 4, ACCEPT)], &cfg(), 0)
            .unwrap();
        sp.acknowledge("a", &[ack(0, 4, ACCEPT)], &cfg(), 0)
            .unwrap();
        sp.acknowledge("a", &[ack(3, 6, ACCEPT)], &cfg(), 0)
            .unwrap();
        assert_eq!(sp.start_offset(), 7);
    }

    #[test]
    fn the_in_flight_window_caps_new_acquisitions() {
        let c = ShareConfig {
            max_in_flight: 10,
            ..cfg()
        };
        let mut sp = with_ten_acquired();
        assert_eq!(sp.next_fetch_offset(&c), None);
        assert!(sp
            .acquire(
                "b",
                &[batch(10, 20)],
                100,
                AcquireMode::BatchOptimized,
                &c,
                0
            )
            .is_empty());
        sp.acknowledge("a", &[ack(0, 0, ACCEPT)], &c, 0).unwrap();
        assert_eq!(sp.next_fetch_offset(&c), Some(10));
    }

    #[test]
    fn markers_aborted_batches_and_holes_are_archived_without_delivery() {
        let mut sp = SharePartition::new(0);
        let marker = LogBatch {
            first: 3,
            last: 3,
            skip: true,
        };
        let got = sp.acquire(
            "a",
            &[batch(0, 2), marker, batch(6, 7)],
            100,
            AcquireMode::BatchOptimized,
            &cfg(),
            0,
        );
        assert_eq!(got, vec![acq(0, 2, 1), acq(6, 7, 1)]);
        assert_eq!(sp.state_of(3), Some((RecordState::Archived, 0)));
        assert_eq!(sp.state_of(4), Some((RecordState::Archived, 0)));
        sp.acknowledge("a", &[ack(0, 2, ACCEPT)], &cfg(), 0)
            .unwrap();
        assert_eq!(sp.start_offset(), 6);
    }

    #[test]
    fn a_departing_member_releases_what_it_holds() {
        let mut sp = with_ten_acquired();
        sp.acquire(
            "b",
            &[batch(10, 11)],
            100,
            AcquireMode::BatchOptimized,
            &cfg(),
            0,
        );
        assert!(sp.release_member("a", &cfg()));
        assert_eq!(sp.state_of(0), Some((RecordState::Available, 1)));
        assert_eq!(sp.state_of(10), Some((RecordState::Acquired, 1)));
        assert!(!sp.release_member("a", &cfg()));
    }

    #[test]
    fn updates_carry_the_changed_ranges_and_the_start_offset() {
        let mut sp = with_ten_acquired();
        assert_eq!(sp.take_update(), None, "acquisitions are not persisted");
        sp.acknowledge("a", &[ack(0, 1, ACCEPT), ack(5, 6, REJECT)], &cfg(), 0)
            .unwrap();
        let u = sp.take_update().unwrap();
        assert_eq!(u.start_offset, 2);
        assert_eq!(
            u.batches,
            vec![StateBatch {
                first_offset: 5,
                last_offset: 6,
                state: RecordState::Archived,
                delivery_count: 1,
            }]
        );
        assert_eq!(u.delivery_complete_count, 2);
        assert_eq!(sp.take_update(), None);
    }

    #[test]
    fn a_snapshot_restores_everything_but_the_locks() {
        let mut sp = with_ten_acquired();
        sp.acknowledge(
            "a",
            &[ack(1, 1, ACCEPT), ack(4, 4, RELEASE), ack(7, 7, REJECT)],
            &cfg(),
            0,
        )
        .unwrap();
        let snap = sp.snapshot();
        let back = SharePartition::from_persisted(&snap);
        assert_eq!(back.start_offset(), 0);
        assert_eq!(back.end_offset(), 10);
        assert_eq!(
            back.state_of(0),
            Some((RecordState::Available, 1)),
            "was acquired"
        );
        assert_eq!(back.state_of(1), Some((RecordState::Acknowledged, 1)));
        assert_eq!(back.state_of(4), Some((RecordState::Available, 1)));
        assert_eq!(back.state_of(7), Some((RecordState::Archived, 1)));
        assert_eq!(back.acquired_count(), 0);
    }

    #[test]
    fn unpersisted_offsets_below_the_end_are_available_after_restart() {
        let back = SharePartition::from_persisted(&PersistedState {
            state_epoch: 1,
            start_offset: 5,
            batches: vec![StateBatch {
                first_offset: 8,
                last_offset: 9,
                state: RecordState::Acknowledged,
                delivery_count: 1,
            }],
        });
        assert_eq!(back.state_of(5), Some((RecordState::Available, 0)));
        assert_eq!(back.next_fetch_offset(&cfg()), Some(5));
        assert_eq!(back.end_offset(), 10);
        assert_eq!(back.lag(12), 5);
    }

    #[test]
    fn log_start_moving_past_the_start_offset_drops_what_is_below() {
        let mut sp = with_ten_acquired();
        assert!(sp.advance_log_start(6));
        assert_eq!(sp.start_offset(), 6);
        assert_eq!(sp.acquired_count(), 4);
        assert!(sp.advance_log_start(50));
        assert_eq!((sp.start_offset(), sp.end_offset()), (50, 50));
        assert_eq!(sp.take_update().map(|u| u.start_offset), Some(50));
    }

    #[test]
    fn reset_starts_over_under_a_new_state_epoch() {
        let mut sp = with_ten_acquired();
        sp.reset(3);
        assert_eq!(
            (sp.start_offset(), sp.end_offset(), sp.state_epoch()),
            (3, 3, 1)
        );
        assert_eq!(sp.acquired_count(), 0);
    }

    #[test]
    fn lag_counts_what_is_not_done_below_the_log_end() {
        let mut sp = with_ten_acquired();
        sp.acknowledge("a", &[ack(0, 2, ACCEPT), ack(5, 5, ACCEPT)], &cfg(), 0)
            .unwrap();
        assert_eq!(sp.lag(10), 6);
        assert_eq!(sp.lag(15), 11);
        assert_eq!(sp.delivery_complete_count(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Fetch(usize, i64, bool),
        /// Acknowledges one of the ranges the member was given.
        Ack(usize, usize, i8),
        /// Acknowledges any range.
        AckAny(usize, i64, i64, i8),
        Tick(i64),
        Leave(usize),
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 1..8i64, any::<bool>()).prop_map(|(m, n, r)| Op::Fetch(m, n, r)),
            (0..3usize, any::<usize>(), 0..4i8).prop_map(|(m, i, t)| Op::Ack(m, i, t)),
            (0..3usize, 0..40i64, 0..6i64, 0..4i8).prop_map(|(m, f, l, t)| Op::AckAny(
                m,
                f,
                f + l,
                t
            )),
            (1..700i64).prop_map(Op::Tick),
            (0..3usize).prop_map(Op::Leave),
            Just(Op::Restart),
        ]
    }

    proptest! {
        /// Against any interleaving of fetches, acknowledgements, lock
        /// expiry, departures and restarts from persisted state: no record
        /// done is delivered again, no record is held by two members, the
        /// start offset is the first record not done, and draining the log
        /// at the end delivers every remaining record.
        #[test]
        fn delivery_invariants_hold(
            sizes in proptest::collection::vec(1..5i64, 1..10),
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let c = ShareConfig { lock_duration_ms: 1000, delivery_count_limit: 3, max_in_flight: 12, renew_enabled: false };
            let mut log = Vec::new();
            let mut next = 0;
            for s in sizes {
                log.push(batch(next, next + s - 1));
                next += s;
            }
            let log_end = next;
            let members = ["a", "b", "c"];
            let mut sp = SharePartition::new(0);
            let mut persisted = sp.snapshot();
            let mut done = std::collections::BTreeSet::new();
            let mut given: [Vec<(i64, i64)>; 3] = Default::default();
            let mut now = 0;
            for op in ops {
                match op {
                    Op::Fetch(m, n, record_limit) => {
                        let Some(from) = sp.next_fetch_offset(&c) else { continue };
                        let read: Vec<LogBatch> = log.iter().copied().filter(|b| b.last >= from).collect();
                        let mode = if record_limit { AcquireMode::RecordLimit } else { AcquireMode::BatchOptimized };
                        for a in sp.acquire(members[m], &read, n, mode, &c, now) {
                            given[m].push((a.first, a.last));
                            for o in a.first..=a.last {
                                prop_assert!(!done.contains(&o), "done offset {o} delivered again");
                                prop_assert!(a.delivery_count <= c.delivery_count_limit);
                            }
                        }
                    }
                    Op::Ack(..) | Op::AckAny(..) => {
                        let (m, f, l, t) = match op {
                            Op::Ack(m, i, t) if !given[m].is_empty() => {
                                let (f, l) = given[m][i % given[m].len()];
                                (m, f, l, t)
                            }
                            Op::AckAny(m, f, l, t) => (m, f, l, t),
                            _ => continue,
                        };
                        let held: Vec<i64> = (f..=l).filter(|o| sp.state_of(*o).is_some_and(|s| s.0 == RecordState::Acquired)).collect();
                        let before = sp.clone();
                        if sp.acknowledge(members[m], &[ack(f, l, t)], &c, now).is_ok() {
                            if t == ACCEPT || t == REJECT || t == 0 {
                                done.extend(held);
                            }
                        } else {
                            prop_assert_eq!(&sp, &before);
                        }
                    }
                    Op::Tick(d) => {
                        now += d;
                        sp.expire_locks(&c, now);
                    }
                    Op::Leave(m) => {
                        sp.release_member(members[m], &c);
                    }
                    Op::Restart => {
                        sp = SharePartition::from_persisted(&persisted);
                    }
                }
                // Persist as the runtime does: updates folded over the
                // last snapshot.
                if let Some(u) = sp.take_update() {
                    persisted = crate::share_partition::tests::fold(persisted, &u);
                }
                prop_assert_eq!(Some(sp.start_offset()), (sp.start_offset()..).find(|o| !done.contains(o)));
                prop_assert!(sp.start_offset() <= sp.end_offset());
            }
            // Drain: everything not done is delivered, and can be accepted.
            sp.release_member("a", &c);
            sp.release_member("b", &c);
            sp.release_member("c", &c);
            for _ in 0..=log_end {
                let Some(from) = sp.next_fetch_offset(&c) else { break };
                if from >= log_end { break; }
                let read: Vec<LogBatch> = log.iter().copied().filter(|b| b.last >= from).collect();
                let got = sp.acquire("z", &read, 1000, AcquireMode::BatchOptimized, &c, now);
                prop_assert!(!got.is_empty(), "stuck at {from}");
                for a in got {
                    sp.acknowledge("z", &[ack(a.first, a.last, ACCEPT)], &c, now).unwrap();
                }
            }
            prop_assert_eq!(sp.start_offset(), log_end);
        }
    }

    /// The fold of an update over persisted state, as replay does it.
    pub(super) fn fold(mut p: PersistedState, u: &StateUpdate) -> PersistedState {
        crate::share_state_store::apply_update(&mut p, u.start_offset, &u.batches);
        p
    }
}

//! Kafka Connect's group protocol (protocol type `connect`): the member
//! metadata and assignments of the `sessioned` (v2) and `compatible` (v1)
//! subprotocols, byte for byte as Kafka's `IncrementalCooperativeConnectProtocol`
//! encodes them, and the leader's incremental cooperative assignor.
//!
//! Metadata: version (INT16), url (STRING), config offset (INT64), the
//! member's current assignment (NULLABLE_BYTES: an assignment as below, or
//! null). Assignment: version (INT16), error (INT16), leader (STRING),
//! leader url (STRING), config offset (INT64), assigned and revoked
//! (nullable ARRAY of {connector STRING, tasks ARRAY of INT32}; task -1
//! stands for the connector itself), scheduled delay (INT32, ms).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{ConnectError, Result};

/// `sessioned`: v2, with internal request signing (KIP-507).
pub const SESSIONED: &str = "sessioned";
/// `compatible`: v1, incremental cooperative rebalancing (KIP-415).
pub const COMPATIBLE: &str = "compatible";

/// The task id Kafka uses for the connector instance itself.
pub const CONNECTOR_TASK: i32 = -1;

/// One unit of work: a connector instance or one of its tasks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Work {
    Connector(String),
    Task(String, i32),
}

impl Work {
    /// The connector this work belongs to.
    pub fn connector(&self) -> &str {
        match self {
            Work::Connector(c) | Work::Task(c, _) => c,
        }
    }
}

/// A member's assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub error: i16,
    pub leader: String,
    pub leader_url: String,
    pub config_offset: i64,
    pub assigned: BTreeSet<Work>,
    pub revoked: BTreeSet<Work>,
    /// Rejoin after this many ms (lost work waits this long).
    pub delay_ms: i32,
}

/// Error code: the leader's config is behind a member's.
pub const CONFIG_MISMATCH: i16 = 1;

/// A member's metadata in JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub version: i16,
    pub url: String,
    pub config_offset: i64,
    pub current: Option<Assignment>,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn get_str(b: &mut Bytes) -> Result<String> {
    let n = get_i16(b)?;
    let n = usize::try_from(n).map_err(|_| bad("negative string length"))?;
    if b.remaining() < n {
        return Err(bad("string past the end"));
    }
    let s = b.split_to(n);
    String::from_utf8(s.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

fn bad(why: &str) -> ConnectError {
    ConnectError::kafka(format!("bad Connect protocol data: {why}"))
}

fn get_i16(b: &mut Bytes) -> Result<i16> {
    if b.remaining() < 2 {
        return Err(bad("short"));
    }
    Ok(b.get_i16())
}

fn get_i32(b: &mut Bytes) -> Result<i32> {
    if b.remaining() < 4 {
        return Err(bad("short"));
    }
    Ok(b.get_i32())
}

fn get_i64(b: &mut Bytes) -> Result<i64> {
    if b.remaining() < 8 {
        return Err(bad("short"));
    }
    Ok(b.get_i64())
}

fn put_works(b: &mut BytesMut, works: &BTreeSet<Work>) {
    let mut by_conn: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for w in works {
        let e = by_conn.entry(w.connector()).or_default();
        if let Work::Task(_, t) = w {
            e.push(*t);
        } else {
            e.push(CONNECTOR_TASK);
        }
    }
    b.put_i32(by_conn.len() as i32);
    for (c, tasks) in by_conn {
        put_str(b, c);
        b.put_i32(tasks.len() as i32);
        for t in tasks {
            b.put_i32(t);
        }
    }
}

fn get_works(b: &mut Bytes) -> Result<BTreeSet<Work>> {
    let mut out = BTreeSet::new();
    let n = get_i32(b)?;
    if n < 0 {
        return Ok(out);
    }
    for _ in 0..n {
        let c = get_str(b)?;
        let k = get_i32(b)?;
        if k < 0 || k as usize > b.remaining() / 4 {
            return Err(bad("task count"));
        }
        for _ in 0..k {
            let t = get_i32(b)?;
            out.insert(if t == CONNECTOR_TASK {
                Work::Connector(c.clone())
            } else {
                Work::Task(c.clone(), t)
            });
        }
    }
    Ok(out)
}

impl Assignment {
    /// Encodes at protocol `version` (1 or 2).
    pub fn encode(&self, version: i16) -> Bytes {
        let mut b = BytesMut::with_capacity(128);
        b.put_i16(version);
        b.put_i16(self.error);
        put_str(&mut b, &self.leader);
        put_str(&mut b, &self.leader_url);
        b.put_i64(self.config_offset);
        put_works(&mut b, &self.assigned);
        put_works(&mut b, &self.revoked);
        b.put_i32(self.delay_ms);
        b.freeze()
    }

    /// Decodes an assignment (an empty buffer is the empty assignment).
    pub fn decode(mut b: Bytes) -> Result<Self> {
        if b.is_empty() {
            return Ok(Self::default());
        }
        let version = get_i16(&mut b)?;
        if version < 1 {
            return Err(bad("eager (v0) assignments are not supported"));
        }
        let mut a = Assignment {
            error: get_i16(&mut b)?,
            leader: get_str(&mut b)?,
            leader_url: get_str(&mut b)?,
            config_offset: get_i64(&mut b)?,
            ..Assignment::default()
        };
        if b.has_remaining() {
            a.assigned = get_works(&mut b)?;
        }
        if b.has_remaining() {
            a.revoked = get_works(&mut b)?;
        }
        if b.remaining() >= 4 {
            a.delay_ms = b.get_i32();
        }
        Ok(a)
    }
}

impl MemberMetadata {
    /// Encodes for a subprotocol (`sessioned` writes version 2).
    pub fn encode(&self, version: i16) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_i16(version);
        put_str(&mut b, &self.url);
        b.put_i64(self.config_offset);
        match &self.current {
            Some(a) if !a.assigned.is_empty() => {
                let inner = a.encode(version);
                b.put_i32(inner.len() as i32);
                b.put_slice(&inner);
            }
            _ => b.put_i32(-1),
        }
        b.freeze()
    }

    /// Decodes a member's metadata.
    pub fn decode(mut b: Bytes) -> Result<Self> {
        let version = get_i16(&mut b)?;
        let url = get_str(&mut b)?;
        let config_offset = get_i64(&mut b)?;
        let mut current = None;
        if version >= 1 && b.remaining() >= 4 {
            let n = b.get_i32();
            if n >= 0 {
                let n = n as usize;
                if b.remaining() < n {
                    return Err(bad("allocation past the end"));
                }
                current = Some(Assignment::decode(b.split_to(n))?);
            }
        }
        Ok(Self {
            version,
            url,
            config_offset,
            current,
        })
    }
}

/// What the leader remembers between rebalances: work whose worker left,
/// and when it may be given to another (`scheduled.rebalance.max.delay.ms`).
#[derive(Debug, Default)]
pub struct AssignorState {
    lost: HashMap<Work, Instant>,
}

/// The leader's assignment for a generation: every member keeps the work
/// it runs (so a join stops nothing); work of members that left waits up
/// to `delay` for them to come back, then goes, with new work, to the
/// least-loaded members; work that no longer exists is revoked.
pub fn assign(
    state: &mut AssignorState,
    members: &BTreeMap<String, MemberMetadata>,
    all_work: &BTreeSet<Work>,
    now: Instant,
) -> BTreeMap<String, (BTreeSet<Work>, BTreeSet<Work>, i32)> {
    let mut owned: BTreeMap<&str, BTreeSet<Work>> = BTreeMap::new();
    let mut taken: BTreeSet<Work> = BTreeSet::new();
    let mut revoked: BTreeMap<&str, BTreeSet<Work>> = BTreeMap::new();
    for (id, m) in members {
        let mine = owned.entry(id.as_str()).or_default();
        for w in m.current.iter().flat_map(|a| a.assigned.iter()) {
            if !all_work.contains(w) || taken.contains(w) {
                revoked.entry(id.as_str()).or_default().insert(w.clone());
            } else {
                taken.insert(w.clone());
                mine.insert(w.clone());
            }
        }
    }
    // Work nobody runs: was it lost with a member, or is it new?
    state
        .lost
        .retain(|w, _| all_work.contains(w) && !taken.contains(w));
    let mut next_delay: Option<Duration> = None;
    let mut to_assign = Vec::new();
    for w in all_work {
        if taken.contains(w) {
            continue;
        }
        match state.lost.get(w) {
            Some(deadline) if *deadline > now => {
                let left = *deadline - now;
                next_delay = Some(next_delay.map_or(left, |d| d.min(left)));
            }
            _ => {
                state.lost.remove(w);
                to_assign.push(w.clone());
            }
        }
    }
    // Connectors first, then tasks, each to the member running the fewest
    // of its kind (as Kafka's incremental cooperative assignor balances
    // connectors and tasks apart: counted together, connectors created one
    // by one could all land on one worker and their tasks on the other).
    to_assign.sort_by_key(|w| matches!(w, Work::Task(..)));
    for w in to_assign {
        let task = matches!(w, Work::Task(..));
        let least = owned.iter_mut().min_by_key(|(id, set)| {
            let same = set
                .iter()
                .filter(|x| matches!(x, Work::Task(..)) == task)
                .count();
            (same, set.len(), **id)
        });
        if let Some((_, set)) = least {
            set.insert(w);
        }
    }
    let delay_ms = next_delay.map_or(0, |d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX));
    owned
        .into_iter()
        .map(|(id, set)| {
            let r = revoked.remove(id).unwrap_or_default();
            (id.to_string(), (set, r, delay_ms))
        })
        .collect()
}

/// Remembers work that was running on members who left: it waits `delay`
/// before anyone else runs it.
pub fn note_departures(
    state: &mut AssignorState,
    previous: &BTreeMap<String, BTreeSet<Work>>,
    members: &BTreeMap<String, MemberMetadata>,
    delay: Duration,
    now: Instant,
) {
    let present: BTreeSet<&str> = members.values().map(|m| m.url.as_str()).collect();
    for (url, works) in previous {
        if !present.contains(url.as_str()) {
            for w in works {
                state.lost.entry(w.clone()).or_insert(now + delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(url: &str, works: &[Work]) -> MemberMetadata {
        MemberMetadata {
            version: 2,
            url: url.into(),
            config_offset: 5,
            current: Some(Assignment {
                assigned: works.iter().cloned().collect(),
                ..Assignment::default()
            }),
        }
    }

    #[test]
    fn metadata_and_assignments_round_trip() {
        let m = meta(
            "http://a:8083/",
            &[Work::Connector("c".into()), Work::Task("c".into(), 0)],
        );
        let b = m.encode(2);
        assert_eq!(&b[..2], &[0, 2]);
        assert_eq!(
            MemberMetadata::decode(b)
                .unwrap()
                .current
                .unwrap()
                .assigned
                .len(),
            2
        );
        let empty = MemberMetadata {
            current: None,
            ..m.clone()
        };
        let b = empty.encode(1);
        assert_eq!(&b[b.len() - 4..], &[0xff, 0xff, 0xff, 0xff]);
        let a = Assignment {
            error: 0,
            leader: "m1".into(),
            leader_url: "http://a:8083/".into(),
            config_offset: 7,
            assigned: [Work::Task("x".into(), 3)].into(),
            revoked: [Work::Connector("y".into())].into(),
            delay_ms: 100,
        };
        assert_eq!(Assignment::decode(a.encode(1)).unwrap(), a);
        assert!(Assignment::decode(Bytes::from_static(&[0, 1, 0])).is_err());
    }

    #[test]
    fn joins_stop_nothing_and_new_work_goes_to_the_least_loaded() {
        let c = |n: &str| Work::Connector(n.into());
        let t = |n: &str, i| Work::Task(n.into(), i);
        let all: BTreeSet<Work> = [c("a"), t("a", 0), t("a", 1), c("b"), t("b", 0)].into();
        let mut members = BTreeMap::new();
        members.insert(
            "m1".to_string(),
            meta("u1", &[c("a"), t("a", 0), t("a", 1)]),
        );
        members.insert("m2".to_string(), meta("u2", &[]));
        let mut st = AssignorState::default();
        let now = Instant::now();
        let out = assign(&mut st, &members, &all, now);
        assert!(out["m1"].0.contains(&t("a", 0)), "running work stays put");
        assert_eq!(out["m2"].0, [c("b"), t("b", 0)].into());
    }

    #[test]
    fn connectors_and_tasks_are_balanced_apart() {
        // Connectors created one by one: each rebalance places a new
        // connector, the next its task. Counted together, every connector
        // went to one member and every task to the other.
        let c = |n: &str| Work::Connector(n.into());
        let t = |n: &str, i| Work::Task(n.into(), i);
        let mut members = BTreeMap::new();
        members.insert("m1".to_string(), meta("u1", &[]));
        members.insert("m2".to_string(), meta("u2", &[]));
        let mut st = AssignorState::default();
        let mut all = BTreeSet::new();
        for n in ["a", "b", "c", "d"] {
            for w in [c(n), t(n, 0)] {
                all.insert(w);
                let out = assign(&mut st, &members, &all, Instant::now());
                for (id, (set, _, _)) in out {
                    members.insert(id.clone(), meta(&id, &set.into_iter().collect::<Vec<_>>()));
                }
            }
        }
        for m in members.values() {
            let set = &m.current.as_ref().unwrap().assigned;
            let tasks = set.iter().filter(|w| matches!(w, Work::Task(..))).count();
            assert_eq!((set.len() - tasks, tasks), (2, 2), "{set:?}");
        }
    }

    #[test]
    fn lost_work_waits_for_the_scheduled_delay() {
        let c = |n: &str| Work::Connector(n.into());
        let all: BTreeSet<Work> = [c("a")].into();
        let mut members = BTreeMap::new();
        members.insert("m2".to_string(), meta("u2", &[]));
        let mut st = AssignorState::default();
        let now = Instant::now();
        let previous = [("u1".to_string(), all.clone())].into();
        note_departures(&mut st, &previous, &members, Duration::from_secs(10), now);
        let out = assign(&mut st, &members, &all, now);
        assert!(out["m2"].0.is_empty());
        assert!(out["m2"].2 > 9000);
        let later = now + Duration::from_secs(11);
        let out = assign(&mut st, &members, &all, later);
        assert_eq!(out["m2"].0, all);
    }
}

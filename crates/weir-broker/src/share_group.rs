//! Share-group membership and assignment (KIP-932), as a pure state
//! machine.
//!
//! Members join, stay and leave through ShareGroupHeartbeat, as in
//! KIP-848: the member id is the client's own (a UUID it generates), epoch
//! 0 joins, -1 leaves, and a member not heard from for the session timeout
//! is removed. Any change to the membership, a subscription or a
//! subscribed topic's partition count bumps the group epoch and recomputes
//! the target assignment. Unlike a consumer group, a partition may belong
//! to several members and nothing has to be revoked first: a member simply
//! gets its new target, and moves to the new epoch, with its next
//! heartbeat. As in Kafka, a heartbeat at the member's previous epoch is
//! accepted too (the answer that moved it on may have been lost) and gets
//! the assignment again.
//!
//! The assignor is Kafka's `simple` one in behaviour: every subscribed
//! partition goes to at least one member and every member gets at least
//! one partition when it can; with more members than partitions the
//! members spread over the partitions evenly, with fewer each partition
//! has one member and the partitions spread evenly; current assignments
//! are kept where the balance allows.
//!
//! The membership is persisted as Kafka persists it, in its
//! ShareGroup* records of `__consumer_offsets` ([`ShareGroups::take_changes`]
//! and [`ShareGroups::restore`]), so members keep their ids and epochs
//! across a restart or a coordinator move. Time comes in as
//! milliseconds; departures come out so the runtime can release what the
//! departed members held.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::group_store::{
    self, Change, ConsumerKey, ConsumerValue, CurrentRecord, MemberRecord, StateRecords,
};

pub use crate::consumer_group::{Assignment, HeartbeatAnswer, TopicMeta};

/// The assignor's name, as ShareGroupDescribe reports it.
pub const ASSIGNOR: &str = "simple";

/// The settings of one group (`share.*` group configs over the broker's
/// `group.share.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipConfig {
    /// `share.session.timeout.ms`.
    pub session_timeout_ms: i64,
    /// `share.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.share.max.size`.
    pub max_size: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
        }
    }
}

/// A ShareGroupHeartbeat, decoded.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Group.
    pub group_id: String,
    /// The member's own id.
    pub member_id: String,
    /// 0 to join, -1 to leave, otherwise the member's epoch.
    pub member_epoch: i32,
    /// Rack, if given.
    pub rack_id: Option<String>,
    /// The subscription, if it changed.
    pub subscribed: Option<Vec<String>>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
}

/// A member as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// Member id.
    pub member_id: String,
    /// Rack.
    pub rack_id: Option<String>,
    /// Epoch.
    pub epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed: Vec<String>,
    /// Assignment.
    pub assigned: Assignment,
}

/// A group as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    /// `Empty` or `Stable`.
    pub state: &'static str,
    /// Group epoch.
    pub epoch: i32,
    /// Epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Members, by id.
    pub members: Vec<MemberView>,
}

#[derive(Debug, Clone)]
struct Member {
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: Vec<String>,
    epoch: i32,
    /// The epoch before the last bump (Kafka's PreviousMemberEpoch).
    previous_epoch: i32,
    assigned: Assignment,
    /// What the member was last told, to send only changes.
    last_sent: Option<Assignment>,
    last_heard: i64,
}

#[derive(Debug, Clone, Default)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// Subscribed topics' metadata when the target was computed.
    topics_seen: BTreeMap<String, TopicMeta>,
}

/// Every share group's membership.
#[derive(Debug, Default)]
pub struct ShareGroups {
    groups: BTreeMap<String, Group>,
    /// What was last written of each group's records.
    records: StateRecords,
}

fn fail(e: ResponseError, msg: impl Into<String>, epoch: i32, interval: i32) -> HeartbeatAnswer {
    HeartbeatAnswer {
        error: e.code(),
        message: Some(msg.into()),
        member_id: String::new(),
        member_epoch: epoch,
        interval_ms: interval,
        assignment: None,
    }
}

impl ShareGroups {
    /// Whether `group_id` is a share group (with or without members).
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    /// Whether `group_id` has members.
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Makes an empty group exist (one with persisted share state).
    pub fn ensure(&mut self, group_id: &str) {
        self.groups.entry(group_id.to_string()).or_default();
    }

    /// Forgets an empty group. Refused with NON_EMPTY_GROUP while it has
    /// members, GROUP_ID_NOT_FOUND if there is none.
    pub fn delete(&mut self, group_id: &str) -> Result<(), ResponseError> {
        match self.groups.get(group_id) {
            None => Err(ResponseError::GroupIdNotFound),
            Some(g) if !g.members.is_empty() => Err(ResponseError::NonEmptyGroup),
            Some(_) => {
                self.groups.remove(group_id);
                self.records.mark(group_id);
                Ok(())
            }
        }
    }

    /// Every group: id and state name.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), state_name(g)))
            .collect()
    }

    /// Topic names the group's members subscribe to.
    pub fn subscribed_topics(&self, group_id: &str) -> BTreeSet<String> {
        self.groups
            .get(group_id)
            .map(|g| {
                g.members
                    .values()
                    .flat_map(|m| m.subscribed.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Partitions assigned to any member of the group.
    pub fn assigned_partitions(&self, group_id: &str) -> Assignment {
        let mut out = Assignment::new();
        for m in self
            .groups
            .get(group_id)
            .into_iter()
            .flat_map(|g| g.members.values())
        {
            for (t, ps) in &m.assigned {
                out.entry(*t).or_default().extend(ps);
            }
        }
        out
    }

    /// Handles a heartbeat; `topics` maps topic names to their metadata.
    /// The caller has already checked that no group of another type owns
    /// the id.
    pub fn heartbeat(
        &mut self,
        hb: &Heartbeat,
        topics: &BTreeMap<String, TopicMeta>,
        cfg: &MembershipConfig,
        now: i64,
    ) -> HeartbeatAnswer {
        let answer = self.answer(hb, topics, cfg, now);
        if answer.error == 0 {
            // Compared with what was written at the next take_changes.
            self.records.mark(&hb.group_id);
        }
        HeartbeatAnswer {
            member_id: hb.member_id.clone(),
            ..answer
        }
    }

    fn answer(
        &mut self,
        hb: &Heartbeat,
        topics: &BTreeMap<String, TopicMeta>,
        cfg: &MembershipConfig,
        now: i64,
    ) -> HeartbeatAnswer {
        let interval = cfg.heartbeat_interval_ms;
        let invalid = |msg: &str| {
            fail(
                ResponseError::InvalidRequest,
                msg,
                hb.member_epoch,
                interval,
            )
        };
        if hb.group_id.is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if hb.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if hb.member_epoch < -1 {
            return invalid("MemberEpoch is invalid.");
        }
        if hb.member_epoch == 0 && hb.subscribed.as_ref().is_none_or(|s| s.is_empty()) {
            return invalid("SubscribedTopicNames must be set in first request.");
        }

        if hb.member_epoch == -1 {
            if let Some(g) = self.groups.get_mut(&hb.group_id) {
                if g.members.remove(&hb.member_id).is_some() {
                    g.epoch += 1;
                    recompute(g);
                }
            }
            return HeartbeatAnswer {
                error: 0,
                message: None,
                member_id: String::new(),
                member_epoch: -1,
                interval_ms: 0,
                assignment: None,
            };
        }

        let g = self.groups.entry(hb.group_id.clone()).or_default();
        let mut changed = false;
        if hb.member_epoch == 0 {
            // A (re)join with the member's own id: it starts over.
            if !g.members.contains_key(&hb.member_id) && g.members.len() >= cfg.max_size {
                return fail(
                    ResponseError::GroupMaxSizeReached,
                    format!("the group has reached its maximum size of {}", cfg.max_size),
                    0,
                    interval,
                );
            }
            g.members.insert(
                hb.member_id.clone(),
                Member {
                    rack_id: hb.rack_id.clone(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    subscribed: hb.subscribed.clone().unwrap_or_default(),
                    epoch: 0,
                    previous_epoch: -1,
                    assigned: Assignment::new(),
                    last_sent: None,
                    last_heard: now,
                },
            );
            changed = true;
        } else {
            let Some(m) = g.members.get_mut(&hb.member_id) else {
                return fail(
                    ResponseError::UnknownMemberId,
                    format!("member {} is not in the group", hb.member_id),
                    hb.member_epoch,
                    interval,
                );
            };
            if hb.member_epoch == m.previous_epoch && hb.member_epoch != m.epoch {
                // The answer that moved it on may have been lost: send
                // the assignment again.
                m.last_sent = None;
            } else if hb.member_epoch != m.epoch {
                return fail(
                    ResponseError::FencedMemberEpoch,
                    format!(
                        "member epoch {} does not match the current {}",
                        hb.member_epoch, m.epoch
                    ),
                    hb.member_epoch,
                    interval,
                );
            }
            m.last_heard = now;
            if let Some(r) = &hb.rack_id {
                m.rack_id = Some(r.clone());
            }
            if let Some(s) = &hb.subscribed {
                if *s != m.subscribed {
                    m.subscribed.clone_from(s);
                    changed = true;
                }
            }
        }

        // A subscribed topic that appeared, vanished or grew changes the target.
        let wanted: BTreeSet<&String> = g.members.values().flat_map(|m| &m.subscribed).collect();
        let seen: BTreeMap<String, TopicMeta> = wanted
            .into_iter()
            .filter_map(|t| topics.get(t).map(|m| (t.clone(), m.clone())))
            .collect();
        if seen != g.topics_seen {
            g.topics_seen = seen;
            changed = true;
        }
        if changed {
            g.epoch += 1;
            recompute(g);
        }
        let Some(m) = g.members.get_mut(&hb.member_id) else {
            return fail(
                ResponseError::UnknownServerError,
                "member vanished",
                0,
                interval,
            );
        };
        // A member moves to the group's epoch when it hears of it, as in
        // Kafka: until then it heartbeats at the epoch it was last told.
        if m.epoch != g.epoch {
            m.previous_epoch = m.epoch;
            m.epoch = g.epoch;
        }
        let assignment = (m.last_sent.as_ref() != Some(&m.assigned)).then(|| m.assigned.clone());
        if assignment.is_some() {
            m.last_sent = Some(m.assigned.clone());
        }
        HeartbeatAnswer {
            error: 0,
            message: None,
            member_id: String::new(),
            member_epoch: m.epoch,
            interval_ms: interval,
            assignment,
        }
    }

    /// Removes members whose session expired. Returns `(group, member)`
    /// of each one removed.
    pub fn tick(
        &mut self,
        now: i64,
        cfg: impl Fn(&str) -> MembershipConfig,
    ) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        for (id, g) in &mut self.groups {
            let timeout = cfg(id).session_timeout_ms;
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| now - m.last_heard >= timeout)
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for m in expired {
                g.members.remove(&m);
                gone.push((id.clone(), m));
            }
            g.epoch += 1;
            recompute(g);
            self.records.mark(id);
        }
        gone
    }

    /// Forgets a group whatever its members (cluster mode: its
    /// coordinator moved to another broker).
    pub fn forget(&mut self, group_id: &str) {
        self.groups.remove(group_id);
        self.records.forget(group_id);
    }

    /// The `__consumer_offsets` records of every group changed since the
    /// last call, by group, in Kafka's order ([`StateRecords::take_changes`]).
    pub fn take_changes(&mut self) -> Vec<(String, Vec<Change>)> {
        let groups = &self.groups;
        self.records.take_changes(|id| {
            records(groups.get(id))
                .iter()
                .filter_map(|(k, v)| {
                    Some((group_store::share_key(id, k)?, group_store::share_value(v)))
                })
                .collect()
        })
    }

    /// A write of the group's records failed: hand them all out again at
    /// the next [`ShareGroups::take_changes`].
    pub fn invalidate(&mut self, group_id: &str) {
        self.records.invalidate(group_id);
    }

    /// Rebuilds a group from its live records in `__consumer_offsets`, as
    /// Kafka's coordinator replays them when it loads the partition.
    /// Sessions start again at `now`. Kafka keeps no record of the
    /// subscribed topics' metadata (it compares a hash): the topics as
    /// they are now (`topics`) count as the ones the target was computed
    /// for, so a topic that grew while the coordinator was down changes
    /// the target only at its next change.
    pub fn restore(
        &mut self,
        group_id: &str,
        records: BTreeMap<Bytes, Bytes>,
        topics: &BTreeMap<String, TopicMeta>,
        now: i64,
    ) {
        self.forget(group_id);
        let mut d = group_store::decode_group_records(group_id, &records);
        let mut g = Group {
            epoch: d.epoch,
            assignment_epoch: d.assignment_epoch,
            ..Group::default()
        };
        if g.epoch <= 0 {
            return;
        }
        for (id, s) in d.members {
            let c = d.current.remove(&id);
            let (epoch, previous_epoch, assigned) = c.map_or((0, -1, Assignment::new()), |c| {
                (c.epoch, c.previous_epoch, c.assigned)
            });
            g.members.insert(
                id,
                Member {
                    rack_id: s.rack_id,
                    client_id: s.client_id,
                    client_host: s.client_host,
                    subscribed: s.subscribed,
                    epoch,
                    previous_epoch,
                    assigned,
                    last_sent: None,
                    last_heard: now,
                },
            );
        }
        let wanted: BTreeSet<&String> = g.members.values().flat_map(|m| &m.subscribed).collect();
        g.topics_seen = wanted
            .into_iter()
            .filter_map(|t| topics.get(t).map(|m| (t.clone(), m.clone())))
            .collect();
        self.groups.insert(group_id.to_string(), g);
        self.records.loaded(group_id, records);
    }

    /// The group as ShareGroupDescribe shows it.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let g = self.groups.get(group_id)?;
        Some(GroupView {
            state: state_name(g),
            epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberView {
                    member_id: id.clone(),
                    rack_id: m.rack_id.clone(),
                    epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    assigned: m.assigned.clone(),
                })
                .collect(),
        })
    }
}

/// The records that make up a group's state, in the order Kafka writes
/// them: subscriptions, group epoch, targets, target epoch, current
/// assignments. An empty group keeps its epochs, as in Kafka.
fn records(g: Option<&Group>) -> Vec<(ConsumerKey, ConsumerValue)> {
    let Some(g) = g.filter(|g| g.epoch > 0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (id, m) in &g.members {
        let mut subscribed = m.subscribed.clone();
        subscribed.sort();
        out.push((
            ConsumerKey::Member(id.clone()),
            ConsumerValue::Member(MemberRecord {
                instance_id: None,
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed,
                regex: None,
                rebalance_timeout_ms: 0,
                assignor: None,
            }),
        ));
    }
    out.push((ConsumerKey::Metadata, ConsumerValue::Metadata(g.epoch)));
    for (id, m) in &g.members {
        out.push((
            ConsumerKey::Target(id.clone()),
            ConsumerValue::Target(m.assigned.clone()),
        ));
    }
    out.push((
        ConsumerKey::TargetMetadata,
        ConsumerValue::TargetMetadata(g.assignment_epoch),
    ));
    for (id, m) in &g.members {
        out.push((
            ConsumerKey::Current(id.clone()),
            ConsumerValue::Current(CurrentRecord {
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                state: 0,
                assigned: m.assigned.clone(),
                revoking: Assignment::new(),
            }),
        ));
    }
    out
}

fn state_name(g: &Group) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else {
        "Stable"
    }
}

/// Computes the target assignment at the group's epoch; each member moves
/// to it with its own next heartbeat.
fn recompute(g: &mut Group) {
    let subs: BTreeMap<String, BTreeSet<(Uuid, i32)>> = g
        .members
        .iter()
        .map(|(id, m)| {
            let parts = m
                .subscribed
                .iter()
                .filter_map(|t| g.topics_seen.get(t))
                .flat_map(|t| (0..t.partitions).map(move |p| (t.id, p)))
                .collect();
            (id.clone(), parts)
        })
        .collect();
    let current: BTreeMap<String, BTreeSet<(Uuid, i32)>> = g
        .members
        .iter()
        .map(|(id, m)| {
            let parts = m
                .assigned
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .collect();
            (id.clone(), parts)
        })
        .collect();
    let target = assign(&subs, &current);
    for (id, m) in &mut g.members {
        let mut a = Assignment::new();
        for (t, p) in target.get(id).into_iter().flatten() {
            a.entry(*t).or_default().insert(*p);
        }
        m.assigned = a;
    }
    g.assignment_epoch = g.epoch;
}

type Part = (Uuid, i32);

/// The simple assignor. `eligible` holds each member's subscribed
/// partitions, `current` what each member has now. When every member
/// subscribes to the same topics, all their partitions form one pool;
/// otherwise each topic is shared among its subscribers on its own.
pub fn assign(
    eligible: &BTreeMap<String, BTreeSet<Part>>,
    current: &BTreeMap<String, BTreeSet<Part>>,
) -> BTreeMap<String, BTreeSet<Part>> {
    let mut out: BTreeMap<String, BTreeSet<Part>> = eligible
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    let same = eligible.values().collect::<BTreeSet<_>>().len() <= 1;
    let pools: Vec<(Vec<String>, Vec<Part>)> = if same {
        let parts = eligible.values().next().cloned().unwrap_or_default();
        vec![(
            eligible.keys().cloned().collect(),
            parts.into_iter().collect(),
        )]
    } else {
        let topics: BTreeSet<Uuid> = eligible.values().flatten().map(|p| p.0).collect();
        topics
            .into_iter()
            .map(|t| {
                let members = eligible
                    .iter()
                    .filter(|(_, el)| el.iter().any(|p| p.0 == t))
                    .map(|(m, _)| m.clone())
                    .collect();
                let parts = eligible.values().flatten().filter(|p| p.0 == t).copied();
                (
                    members,
                    parts.collect::<BTreeSet<_>>().into_iter().collect(),
                )
            })
            .collect()
    };
    for (members, parts) in pools {
        if members.is_empty() || parts.is_empty() {
            continue;
        }
        for (m, ps) in assign_pool(&members, &parts, current) {
            out.entry(m).or_default().extend(ps);
        }
    }
    out
}

/// Shares `parts` among `members` (both sorted): with at least as many
/// members as partitions each member gets one partition and partitions
/// get equally many members; with fewer, each partition gets one member
/// and members equally many partitions. Current holdings are kept where
/// the quotas allow.
fn assign_pool(
    members: &[String],
    parts: &[Part],
    current: &BTreeMap<String, BTreeSet<Part>>,
) -> BTreeMap<String, BTreeSet<Part>> {
    let held = |m: &String, p: &Part| current.get(m).is_some_and(|c| c.contains(p));
    let (m_count, p_count) = (members.len(), parts.len());
    let mut out: BTreeMap<String, BTreeSet<Part>> = BTreeMap::new();
    if m_count >= p_count {
        // Members to partitions: keep one current partition per member.
        let mut on: BTreeMap<Part, Vec<String>> = parts.iter().map(|p| (*p, Vec::new())).collect();
        let mut free = Vec::new();
        for m in members {
            match parts.iter().find(|p| held(m, p)) {
                Some(p) => on.entry(*p).or_default().push(m.clone()),
                None => free.push(m.clone()),
            }
        }
        // The partitions holding the most members get the larger quota.
        let (base, extra) = (m_count / p_count, m_count % p_count);
        let mut order: Vec<Part> = parts.to_vec();
        order.sort_by_key(|p| (std::cmp::Reverse(on[p].len()), *p));
        let quota: BTreeMap<Part, usize> = order
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, base + usize::from(i < extra)))
            .collect();
        for p in parts {
            let list = on.entry(*p).or_default();
            while list.len() > quota[p] {
                if let Some(m) = list.pop() {
                    free.push(m);
                }
            }
        }
        free.sort();
        let mut free = free.into_iter();
        for p in parts {
            let list = on.entry(*p).or_default();
            while list.len() < quota[p] {
                match free.next() {
                    Some(m) => list.push(m),
                    None => break,
                }
            }
        }
        for (p, ms) in on {
            for m in ms {
                out.entry(m).or_default().insert(p);
            }
        }
    } else {
        // Partitions to members: keep each partition's first current holder.
        let mut has: BTreeMap<String, Vec<Part>> =
            members.iter().map(|m| (m.clone(), Vec::new())).collect();
        let mut free = Vec::new();
        for p in parts {
            match members.iter().find(|m| held(m, p)) {
                Some(m) => has.entry(m.clone()).or_default().push(*p),
                None => free.push(*p),
            }
        }
        let (base, extra) = (p_count / m_count, p_count % m_count);
        let mut order: Vec<String> = members.to_vec();
        order.sort_by_key(|m| (std::cmp::Reverse(has[m].len()), m.clone()));
        let quota: BTreeMap<String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), base + usize::from(i < extra)))
            .collect();
        for m in members {
            let list = has.entry(m.clone()).or_default();
            while list.len() > quota[m] {
                if let Some(p) = list.pop() {
                    free.push(p);
                }
            }
        }
        free.sort();
        let mut free = free.into_iter();
        for m in members {
            let list = has.entry(m.clone()).or_default();
            while list.len() < quota[m] {
                match free.next() {
                    Some(p) => list.push(p),
                    None => break,
                }
            }
        }
        for (m, ps) in has {
            out.entry(m).or_default().extend(ps);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Uuid = Uuid::from_u128(7);

    fn topics(n: i32) -> BTreeMap<String, TopicMeta> {
        BTreeMap::from([(
            "t".to_string(),
            TopicMeta {
                id: T,
                partitions: n,
            },
        )])
    }

    fn hb(member: &str, epoch: i32) -> Heartbeat {
        Heartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rack_id: None,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            client_id: "c".into(),
            client_host: "/h".into(),
        }
    }

    fn parts(a: &Option<Assignment>) -> Vec<i32> {
        a.as_ref()
            .and_then(|a| a.get(&T))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    fn cfg() -> MembershipConfig {
        MembershipConfig::default()
    }

    #[test]
    fn a_first_heartbeat_joins_and_gets_every_partition() {
        let mut g = ShareGroups::default();
        let a = g.heartbeat(&hb("m1", 0), &topics(3), &cfg(), 0);
        assert_eq!(a.error, 0);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(parts(&a.assignment), vec![0, 1, 2]);
        assert_eq!(g.list(), vec![("g".to_string(), "Stable")]);
    }

    #[test]
    fn members_share_a_single_partition() {
        let mut g = ShareGroups::default();
        for m in ["m1", "m2", "m3"] {
            let a = g.heartbeat(&hb(m, 0), &topics(1), &cfg(), 0);
            assert_eq!(parts(&a.assignment), vec![0]);
        }
        let d = g.describe("g").unwrap();
        assert_eq!(d.epoch, 3);
        assert!(d.members.iter().all(|m| m.assigned[&T].len() == 1));
    }

    #[test]
    fn partitions_spread_over_fewer_members() {
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("m1", 0), &topics(4), &cfg(), 0);
        let a2 = g.heartbeat(&hb("m2", 0), &topics(4), &cfg(), 0);
        assert_eq!(parts(&a2.assignment).len(), 2);
        // m1 learns its new target and epoch with its next heartbeat.
        let a1 = g.heartbeat(&hb("m1", 1), &topics(4), &cfg(), 0);
        assert_eq!(a1.member_epoch, 2);
        let mut all = parts(&a1.assignment);
        all.extend(parts(&a2.assignment));
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_member_that_has_not_heard_of_a_join_is_not_fenced() {
        // Two consumers joining at once: m1's heartbeat at the epoch it
        // was told races m2's join. Fencing m1 there made each rejoin
        // fence the other, and the partition moving between them was
        // never delivered to either.
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("m1", 0), &topics(3), &cfg(), 0);
        let a2 = g.heartbeat(&hb("m2", 0), &topics(3), &cfg(), 0);
        assert_eq!((a2.error, a2.member_epoch), (0, 2));
        let a1 = g.heartbeat(&hb("m1", 1), &topics(3), &cfg(), 0);
        assert_eq!((a1.error, a1.member_epoch), (0, 2));
        let again = g.heartbeat(&hb("m2", 2), &topics(3), &cfg(), 0);
        assert_eq!((again.error, again.assignment), (0, None));
        let mut all = parts(&a1.assignment);
        all.extend(parts(&a2.assignment));
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
        // The answer to m1 may have been lost: its previous epoch is
        // still accepted and the assignment sent again; older ones fence.
        let lost = g.heartbeat(&hb("m1", 1), &topics(3), &cfg(), 0);
        assert_eq!((lost.error, lost.member_epoch), (0, 2));
        assert_eq!(lost.assignment, a1.assignment);
        g.heartbeat(&hb("m3", 0), &topics(3), &cfg(), 0);
        g.heartbeat(&hb("m1", 2), &topics(3), &cfg(), 0);
        let stale = g.heartbeat(&hb("m1", 1), &topics(3), &cfg(), 0);
        assert_eq!(stale.error, ResponseError::FencedMemberEpoch.code());
    }

    #[test]
    fn an_unchanged_assignment_is_not_sent_again() {
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("m1", 0), &topics(2), &cfg(), 0);
        let a = g.heartbeat(&hb("m1", 1), &topics(2), &cfg(), 10);
        assert_eq!((a.error, a.assignment), (0, None));
    }

    #[test]
    fn new_partitions_bump_the_epoch() {
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("m1", 0), &topics(1), &cfg(), 0);
        let a = g.heartbeat(&hb("m1", 1), &topics(2), &cfg(), 10);
        assert_eq!(a.member_epoch, 2);
        assert_eq!(parts(&a.assignment), vec![0, 1]);
    }

    #[test]
    fn unknown_members_and_stale_epochs_are_refused() {
        let mut g = ShareGroups::default();
        let a = g.heartbeat(&hb("m1", 4), &topics(1), &cfg(), 0);
        assert_eq!(a.error, ResponseError::UnknownMemberId.code());
        g.heartbeat(&hb("m1", 0), &topics(1), &cfg(), 0);
        let a = g.heartbeat(&hb("m1", 7), &topics(1), &cfg(), 0);
        assert_eq!(a.error, ResponseError::FencedMemberEpoch.code());
        // Rejoining with epoch 0 under the same id is always allowed.
        assert_eq!(g.heartbeat(&hb("m1", 0), &topics(1), &cfg(), 0).error, 0);
    }

    #[test]
    fn malformed_heartbeats_are_invalid_requests() {
        let mut g = ShareGroups::default();
        let mut no_subscription = hb("m1", 0);
        no_subscription.subscribed = None;
        let mut no_id = hb("", 0);
        no_id.member_id.clear();
        let mut no_group = hb("m1", 0);
        no_group.group_id.clear();
        for h in [no_subscription, no_id, no_group, hb("m1", -2)] {
            let a = g.heartbeat(&h, &topics(1), &cfg(), 0);
            assert_eq!(a.error, ResponseError::InvalidRequest.code(), "{h:?}");
        }
        assert!(g.list().is_empty());
    }

    #[test]
    fn a_full_group_refuses_new_members() {
        let mut g = ShareGroups::default();
        let c = MembershipConfig {
            max_size: 1,
            ..cfg()
        };
        g.heartbeat(&hb("m1", 0), &topics(1), &c, 0);
        let a = g.heartbeat(&hb("m2", 0), &topics(1), &c, 0);
        assert_eq!(a.error, ResponseError::GroupMaxSizeReached.code());
    }

    #[test]
    fn leaving_bumps_the_epoch_and_empties_the_group() {
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("m1", 0), &topics(1), &cfg(), 0);
        let a = g.heartbeat(&hb("m1", -1), &topics(1), &cfg(), 0);
        assert_eq!((a.error, a.member_epoch), (0, -1));
        let d = g.describe("g").unwrap();
        assert_eq!((d.state, d.epoch), ("Empty", 2));
        assert!(g.delete("g").is_ok());
        assert_eq!(g.delete("g"), Err(ResponseError::GroupIdNotFound));
    }

    #[test]
    fn silent_members_are_removed_after_the_session_timeout() {
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("m1", 0), &topics(1), &cfg(), 0);
        g.heartbeat(&hb("m2", 0), &topics(1), &cfg(), 30_000);
        assert!(g.tick(44_999, |_| cfg()).is_empty());
        assert_eq!(
            g.tick(45_000, |_| cfg()),
            vec![("g".to_string(), "m1".to_string())]
        );
        assert_eq!(g.delete("g"), Err(ResponseError::NonEmptyGroup));
    }

    #[test]
    fn assignments_stay_put_when_nothing_changes() {
        let el: BTreeMap<String, BTreeSet<Part>> = ["a", "b"]
            .iter()
            .map(|m| (m.to_string(), (0..4).map(|p| (T, p)).collect()))
            .collect();
        let first = assign(&el, &BTreeMap::new());
        assert_eq!(assign(&el, &first), first);
    }

    fn apply(log: &mut BTreeMap<Bytes, Bytes>, changes: Vec<(String, Vec<Change>)>) {
        for (_, kvs) in changes {
            for (k, v) in kvs {
                match v {
                    Some(v) => log.insert(k, v),
                    None => log.remove(&k),
                };
            }
        }
    }

    fn types(changes: &[(String, Vec<Change>)]) -> Vec<(u8, bool)> {
        changes
            .iter()
            .flat_map(|(_, kvs)| kvs.iter().map(|(k, v)| (k[1], v.is_some())))
            .collect()
    }

    #[test]
    fn a_restored_group_keeps_members_epochs_and_assignments() {
        let mut g = ShareGroups::default();
        let mut log = BTreeMap::new();
        g.heartbeat(&hb("a", 0), &topics(4), &cfg(), 0);
        g.heartbeat(&hb("b", 0), &topics(4), &cfg(), 0);
        g.heartbeat(&hb("b", -1), &topics(4), &cfg(), 0);
        // a hears of epoch 3 at its next heartbeat.
        assert_eq!(g.describe("g").unwrap().members[0].epoch, 1);
        g.heartbeat(&hb("a", 1), &topics(4), &cfg(), 0);
        apply(&mut log, g.take_changes());
        let before = g.describe("g").unwrap();
        assert_eq!(before.epoch, 3);

        let mut back = ShareGroups::default();
        back.restore("g", log.clone(), &topics(4), 100);
        assert_eq!(back.describe("g"), Some(before.clone()));
        // Nothing changed, so nothing to write.
        assert!(back.take_changes().is_empty());
        // The member goes on at its epoch; the assignment comes again.
        let a = back.heartbeat(&hb("a", 3), &topics(4), &cfg(), 200);
        assert_eq!((a.error, a.member_epoch), (0, 3));
        assert_eq!(parts(&a.assignment), vec![0, 1, 2, 3]);
        assert!(back.take_changes().is_empty());
        // Its session restarted at the restore.
        assert!(back.tick(100 + 44_999, |_| cfg()).is_empty());
    }

    #[test]
    fn leaving_and_deleting_tombstone_the_records_in_kafkas_order() {
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("a", 0), &topics(1), &cfg(), 0);
        g.heartbeat(&hb("b", 0), &topics(1), &cfg(), 0);
        let written = g.take_changes();
        assert_eq!(
            types(&written),
            [10, 10, 11, 13, 13, 12, 14, 14].map(|t| (t, true))
        );
        g.heartbeat(&hb("b", -1), &topics(1), &cfg(), 0);
        // b's 14, 13, 10 first, then the new epochs; a's own record
        // changes when it hears of its new epoch.
        assert_eq!(
            types(&g.take_changes()),
            [
                (14, false),
                (13, false),
                (10, false),
                (11, true),
                (12, true)
            ]
        );
        g.heartbeat(&hb("a", 1), &topics(1), &cfg(), 0);
        assert_eq!(types(&g.take_changes()), [(14, true)]);
        g.heartbeat(&hb("a", -1), &topics(1), &cfg(), 0);
        g.take_changes();
        g.delete("g").unwrap();
        assert_eq!(types(&g.take_changes()), [(12, false), (11, false)]);
    }

    #[test]
    fn a_failed_write_is_handed_out_whole_again() {
        let mut g = ShareGroups::default();
        g.heartbeat(&hb("a", 0), &topics(1), &cfg(), 0);
        let first = g.take_changes();
        g.invalidate("g");
        assert_eq!(types(&g.take_changes()), types(&first));
    }

    #[test]
    fn different_subscriptions_share_each_topic_among_its_subscribers() {
        const U: Uuid = Uuid::from_u128(8);
        let el = BTreeMap::from([
            ("a".to_string(), BTreeSet::from([(T, 0), (T, 1), (U, 0)])),
            ("b".to_string(), BTreeSet::from([(T, 0), (T, 1)])),
        ]);
        let a = assign(&el, &BTreeMap::new());
        assert_eq!(a["a"], BTreeSet::from([(T, 0), (U, 0)]));
        assert_eq!(a["b"], BTreeSet::from([(T, 1)]));
    }

    proptest! {
        /// With one subscription for all: every partition has a member,
        /// every member a partition, loads differ by at most one, and the
        /// result is stable.
        #[test]
        fn the_simple_assignor_covers_and_balances(
            members in 1..9usize,
            partitions in 1..9i32,
            current in proptest::collection::vec((0..9usize, 0..9i32), 0..20),
        ) {
            let names: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
            let el: BTreeMap<String, BTreeSet<Part>> = names
                .iter()
                .map(|m| (m.clone(), (0..partitions).map(|p| (T, p)).collect()))
                .collect();
            let mut cur: BTreeMap<String, BTreeSet<Part>> = BTreeMap::new();
            for (m, p) in current {
                if m < members {
                    cur.entry(names[m].clone()).or_default().insert((T, p));
                }
            }
            let a = assign(&el, &cur);
            let holders = |p: i32| a.values().filter(|s| s.contains(&(T, p))).count();
            for p in 0..partitions {
                prop_assert!(holders(p) >= 1);
            }
            let loads: Vec<usize> = a.values().map(BTreeSet::len).collect();
            prop_assert!(loads.iter().all(|l| *l >= 1));
            if members >= partitions as usize {
                prop_assert!(loads.iter().all(|l| *l == 1));
                let counts: Vec<usize> = (0..partitions).map(holders).collect();
                prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
            } else {
                prop_assert!((0..partitions).all(|p| holders(p) == 1));
                prop_assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1);
            }
            prop_assert_eq!(assign(&el, &a), a);
        }
    }
}

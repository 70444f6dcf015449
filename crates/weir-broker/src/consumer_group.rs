//! The KIP-848 consumer group protocol (`group.protocol=consumer`), as a
//! pure state machine.
//!
//! The broker owns the assignment. Each ConsumerGroupHeartbeat carries the
//! member's epoch, subscription and owned partitions; any change to the
//! membership, a subscription or a subscribed topic's partitions bumps the
//! group epoch and recomputes the target assignment with a server-side
//! assignor (`uniform`, sticky and balanced, or `range`). Each member then
//! reconciles towards its target: first it is told to give up partitions
//! that moved, and only once it reports them released are they handed to
//! their new owner, so no partition ever has two owners.
//!
//! The state is persisted as Kafka persists it: [`ConsumerGroups::take_changes`]
//! hands out the `__consumer_offsets` records (Kafka's `ConsumerGroup*`
//! formats, [`crate::group_store`]) that changed since the last call, and
//! [`ConsumerGroups::restore`] rebuilds a group from them, so members
//! keep their id, epoch and assignment when the coordinator restarts or
//! moves.
//!
//! Differences from Apache Kafka, on purpose for now: regex subscriptions
//! are refused with INVALID_REQUEST, and static members are treated as
//! dynamic ones.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::group_store::{
    self, ConsumerKey, ConsumerValue, CurrentRecord, MemberRecord, StateRecords,
};

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// A topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic id.
    pub id: Uuid,
    /// Partition count.
    pub partitions: i32,
}

/// Coordinator-wide settings (Kafka's `group.consumer.*`), or one group's
/// (its `consumer.*` group configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i64,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
        }
    }
}

/// A heartbeat, decoded.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Group.
    pub group_id: String,
    /// Member id (empty on a v0 first join).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave,
    /// otherwise the member's current epoch.
    pub member_epoch: i32,
    /// Rebalance timeout: how long revocation may take.
    pub rebalance_timeout_ms: i32,
    /// New subscription, if changed.
    pub subscribed: Option<Vec<String>>,
    /// Regex subscription, if any.
    pub regex: Option<String>,
    /// Requested assignor.
    pub assignor: Option<String>,
    /// Partitions the member owns, if changed.
    pub owned: Option<Assignment>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatAnswer {
    /// Error code.
    pub error: i16,
    /// Error message.
    pub message: Option<String>,
    /// The member's id.
    pub member_id: String,
    /// The member's epoch after this heartbeat.
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub interval_ms: i32,
    /// The member's assignment, when it changed.
    pub assignment: Option<Assignment>,
}

/// A member as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Epoch.
    pub epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topics.
    pub subscribed: Vec<String>,
    /// Current assignment.
    pub assigned: Assignment,
    /// Target assignment.
    pub target: Assignment,
}

/// A group as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// `Empty`, `Reconciling` or `Stable`.
    pub state: &'static str,
    /// Group epoch.
    pub epoch: i32,
    /// Epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Assignor in use.
    pub assignor: String,
    /// Members.
    pub members: Vec<MemberView>,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: Vec<String>,
    epoch: i32,
    previous_epoch: i32,
    /// What the member has been told it owns.
    assigned: Assignment,
    /// What it was last sent, to send only changes.
    last_sent: Option<Assignment>,
    /// Partitions it was told to give up and has not yet confirmed
    /// released; nobody else gets them meanwhile.
    revoking: Assignment,
    /// The member epoch at which each partition of `assigned` and
    /// `revoking` was given to it (KIP-1251's assignment epochs).
    assignment_epochs: BTreeMap<(Uuid, i32), i32>,
    /// Since when it has been revoking.
    revoking_since: Option<i64>,
    rebalance_timeout_ms: i64,
    last_heard: i64,
}

#[derive(Debug, Clone, Default)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    assignor: String,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, Assignment>,
    /// Subscribed topics' metadata when the target was computed.
    topics_seen: BTreeMap<String, TopicMeta>,
}

pub use crate::group_store::Change;

/// The assignors Weir serves.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// All KIP-848 consumer groups.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    config: ConsumerConfig,
    /// Groups whose group configs differ from `config`.
    overrides: BTreeMap<String, ConsumerConfig>,
    groups: BTreeMap<String, Group>,
    /// What was last written of each group's records.
    records: StateRecords,
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = ps
            .iter()
            .filter(|p| !b.get(t).is_some_and(|s| s.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(other) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(other).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

impl ConsumerGroups {
    /// A coordinator with no groups.
    pub fn new(config: ConsumerConfig) -> Self {
        Self {
            config,
            overrides: BTreeMap::new(),
            groups: BTreeMap::new(),
            records: StateRecords::default(),
        }
    }

    /// Sets a group's own settings (from its group configs): its members'
    /// heartbeat interval from their next heartbeat, and its session
    /// timeout from the next expiry check.
    pub fn configure(&mut self, group_id: &str, config: ConsumerConfig) {
        if config == self.config {
            self.overrides.remove(group_id);
        } else {
            self.overrides.insert(group_id.to_string(), config);
        }
    }

    fn config_of(&self, group_id: &str) -> &ConsumerConfig {
        self.overrides.get(group_id).unwrap_or(&self.config)
    }

    /// Whether `group_id` is a consumer-protocol group with members.
    pub fn is_active(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Handles a heartbeat. `topics` maps every topic name to its metadata.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &BTreeMap<String, TopicMeta>,
        new_member_id: impl FnOnce() -> String,
        now: i64,
    ) -> HeartbeatAnswer {
        let interval = self.config_of(&hb.group_id).heartbeat_interval_ms;
        let fail = |e: ResponseError, msg: &str, id: &str, epoch: i32| HeartbeatAnswer {
            error: e.code(),
            message: Some(msg.to_string()),
            member_id: id.to_string(),
            member_epoch: epoch,
            interval_ms: interval,
            assignment: None,
        };
        if hb.group_id.is_empty() {
            return fail(
                ResponseError::InvalidGroupId,
                "group id is empty",
                &hb.member_id,
                hb.member_epoch,
            );
        }
        if hb.regex.is_some() {
            return fail(
                ResponseError::InvalidRequest,
                "regex subscriptions are not supported yet",
                &hb.member_id,
                hb.member_epoch,
            );
        }
        if let Some(a) = &hb.assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return fail(
                    ResponseError::UnsupportedAssignor,
                    "unknown server assignor",
                    &hb.member_id,
                    hb.member_epoch,
                );
            }
        }
        self.records.mark(&hb.group_id);
        let group = self.groups.entry(hb.group_id.clone()).or_default();
        if let Some(a) = &hb.assignor {
            group.assignor.clone_from(a);
        }
        if group.assignor.is_empty() {
            group.assignor = ASSIGNORS[0].to_string();
        }

        // Leaving.
        if hb.member_epoch < 0 {
            if group.members.remove(&hb.member_id).is_some() {
                group.target.remove(&hb.member_id);
                group.epoch += 1;
            }
            return HeartbeatAnswer {
                error: 0,
                message: None,
                member_id: hb.member_id,
                member_epoch: hb.member_epoch,
                interval_ms: 0,
                assignment: None,
            };
        }

        let member_id = if hb.member_id.is_empty() {
            new_member_id()
        } else {
            hb.member_id.clone()
        };
        // Membership, subscriptions and topic metadata: any change is one
        // new group epoch.
        let mut changed = false;
        if hb.member_epoch == 0 {
            // A (re)join: a member that lost its state starts again empty.
            let subscribed = hb.subscribed.clone().unwrap_or_default();
            if hb.subscribed.is_none() {
                return fail(
                    ResponseError::InvalidRequest,
                    "a joining member must send its subscription",
                    &member_id,
                    0,
                );
            }
            group.members.insert(
                member_id.clone(),
                Member {
                    id: member_id.clone(),
                    instance_id: hb.instance_id.clone(),
                    rack_id: hb.rack_id.clone(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    subscribed,
                    epoch: 0,
                    previous_epoch: -1,
                    assigned: Assignment::new(),
                    last_sent: None,
                    revoking: Assignment::new(),
                    assignment_epochs: BTreeMap::new(),
                    revoking_since: None,
                    rebalance_timeout_ms: i64::from(hb.rebalance_timeout_ms.max(0)),
                    last_heard: now,
                },
            );
            changed = true;
        } else {
            let Some(m) = group.members.get_mut(&member_id) else {
                return fail(
                    ResponseError::UnknownMemberId,
                    "unknown member",
                    &member_id,
                    hb.member_epoch,
                );
            };
            let lost_response = hb.member_epoch == m.previous_epoch
                && hb
                    .owned
                    .as_ref()
                    .is_some_and(|o| minus(o, &m.assigned).is_empty());
            // A revoking member keeps its epoch; that is not staleness.
            if hb.member_epoch != m.epoch && !lost_response {
                return fail(
                    ResponseError::FencedMemberEpoch,
                    "the member epoch is stale",
                    &member_id,
                    hb.member_epoch,
                );
            }
            m.last_heard = now;
            if lost_response {
                // The member missed our last answer: send it again.
                m.last_sent = None;
            }
            if let Some(s) = &hb.subscribed {
                if *s != m.subscribed {
                    m.subscribed.clone_from(s);
                    changed = true;
                }
            }
        }

        // A subscribed topic that appeared, vanished or grew changes the target.
        let wanted: BTreeSet<&String> = group
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        let seen: BTreeMap<String, TopicMeta> = wanted
            .iter()
            .filter_map(|t| topics.get(*t).map(|m| ((*t).clone(), m.clone())))
            .collect();
        if seen != group.topics_seen {
            group.topics_seen = seen;
            changed = true;
        }
        if changed {
            group.epoch += 1;
        }
        if group.assignment_epoch != group.epoch {
            group.target = compute_target(group);
            group.assignment_epoch = group.epoch;
        }

        reconcile(group, &member_id, hb.owned.clone(), now);
        let Some(m) = group.members.get_mut(&member_id) else {
            return fail(
                ResponseError::UnknownServerError,
                "member vanished",
                &member_id,
                0,
            );
        };
        let assignment = (m.last_sent.as_ref() != Some(&m.assigned)).then(|| m.assigned.clone());
        if assignment.is_some() {
            m.last_sent = Some(m.assigned.clone());
        }
        HeartbeatAnswer {
            error: 0,
            message: None,
            member_id,
            member_epoch: m.epoch,
            interval_ms: interval,
            assignment,
        }
    }

    /// Expires members that stopped heartbeating or did not revoke in
    /// time.
    pub fn tick(&mut self, now: i64) {
        for (group_id, g) in self.groups.iter_mut() {
            let session = self
                .overrides
                .get(group_id)
                .unwrap_or(&self.config)
                .session_timeout_ms;
            let gone: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    m.last_heard + session <= now
                        || m.revoking_since
                            .is_some_and(|t| t + m.rebalance_timeout_ms <= now)
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &gone {
                g.members.remove(id);
                g.target.remove(id);
            }
            if !gone.is_empty() {
                g.epoch += 1;
                self.records.mark(group_id);
            }
        }
        let records = &mut self.records;
        self.groups.retain(|id, g| {
            let keep = !g.members.is_empty() || g.epoch == 0;
            if !keep {
                records.mark(id);
            }
            keep
        });
    }

    /// Checks an offset commit from a member of a consumer group, as Kafka
    /// 4.3 does (KIP-1251): the member's current epoch may commit anything;
    /// an older epoch (a commit sent before the member learnt its new
    /// epoch) only the partitions it has held since that epoch or earlier,
    /// returned as `Some`; the others are STALE_MEMBER_EPOCH.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<Option<BTreeSet<(Uuid, i32)>>, ResponseError> {
        let Some(g) = self.groups.get(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        let Some(m) = g.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if epoch == m.epoch {
            return Ok(None);
        }
        if epoch > m.epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(Some(
            m.assignment_epochs
                .iter()
                .filter(|&(_, &since)| since <= epoch)
                .map(|(&tp, _)| tp)
                .collect(),
        ))
    }

    /// Describes a group.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let g = self.groups.get(group_id)?;
        let reconciling = g
            .members
            .values()
            .any(|m| m.epoch != g.epoch || Some(&m.assigned) != g.target.get(&m.id));
        Some(GroupView {
            state: if g.members.is_empty() {
                "Empty"
            } else if reconciling {
                "Reconciling"
            } else {
                "Stable"
            },
            epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    assigned: m.assigned.clone(),
                    target: g.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Group ids with their state.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.groups
            .keys()
            .filter_map(|id| self.describe(id).map(|v| (id.clone(), v.state)))
            .collect()
    }

    /// Forgets a group whatever its members (cluster mode: its
    /// coordinator moved to another broker).
    pub fn forget(&mut self, group_id: &str) {
        self.groups.remove(group_id);
        self.overrides.remove(group_id);
        self.records.forget(group_id);
    }

    /// The records that make up a group's state, in the order Kafka
    /// writes them: subscriptions, topics, group epoch, targets, target
    /// epoch, current assignments.
    fn records(g: Option<&Group>) -> Vec<(ConsumerKey, ConsumerValue)> {
        let Some(g) = g.filter(|g| g.epoch > 0) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in g.members.values() {
            let mut subscribed = m.subscribed.clone();
            subscribed.sort();
            out.push((
                ConsumerKey::Member(m.id.clone()),
                ConsumerValue::Member(MemberRecord {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed,
                    regex: None,
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout_ms).unwrap_or(i32::MAX),
                    assignor: Some(g.assignor.clone()),
                }),
            ));
        }
        out.push((
            ConsumerKey::Topics,
            ConsumerValue::Topics(g.topics_seen.clone()),
        ));
        out.push((ConsumerKey::Metadata, ConsumerValue::Metadata(g.epoch)));
        for (id, target) in &g.target {
            out.push((
                ConsumerKey::Target(id.clone()),
                ConsumerValue::Target(target.clone()),
            ));
        }
        out.push((
            ConsumerKey::TargetMetadata,
            ConsumerValue::TargetMetadata(g.assignment_epoch),
        ));
        for m in g.members.values() {
            let state = if !m.revoking.is_empty() {
                1
            } else if m.epoch == g.epoch && Some(&m.assigned) != g.target.get(&m.id) {
                2
            } else {
                0
            };
            out.push((
                ConsumerKey::Current(m.id.clone()),
                ConsumerValue::Current(CurrentRecord {
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    state,
                    assigned: m.assigned.clone(),
                    revoking: m.revoking.clone(),
                }),
            ));
        }
        out
    }

    /// The `__consumer_offsets` records of every group changed since the
    /// last call, by group, in Kafka's order ([`StateRecords::take_changes`]).
    pub fn take_changes(&mut self) -> Vec<(String, Vec<Change>)> {
        let groups = &self.groups;
        self.records.take_changes(|id| {
            Self::records(groups.get(id))
                .iter()
                .map(|(k, v)| {
                    (
                        group_store::consumer_key(id, k),
                        group_store::consumer_value(v),
                    )
                })
                .collect()
        })
    }

    /// A write of the group's records failed: hand them all out again at
    /// the next [`ConsumerGroups::take_changes`].
    pub fn invalidate(&mut self, group_id: &str) {
        self.records.invalidate(group_id);
    }

    /// Rebuilds a group from its live records in `__consumer_offsets`
    /// (the latest value of each key, tombstoned keys left out), as
    /// Kafka's coordinator replays them when it loads the partition.
    /// Session and revocation timers start again at `now`. The epochs at
    /// which the member got each partition it holds (KIP-1251) are not in
    /// Kafka's records: they count from the member's current epoch.
    pub fn restore(&mut self, group_id: &str, records: BTreeMap<Bytes, Bytes>, now: i64) {
        self.forget(group_id);
        let mut d = group_store::decode_group_records(group_id, &records);
        let mut g = Group {
            epoch: d.epoch,
            assignment_epoch: d.assignment_epoch,
            topics_seen: d.topics,
            target: d.targets,
            ..Group::default()
        };
        if g.epoch <= 0 {
            return;
        }
        for (id, s) in d.members {
            if g.assignor.is_empty() {
                g.assignor = s.assignor.clone().unwrap_or_default();
            }
            let c = d.current.remove(&id);
            let (epoch, previous_epoch, assigned, revoking) = c
                .map_or((0, -1, Assignment::new(), Assignment::new()), |c| {
                    (c.epoch, c.previous_epoch, c.assigned, c.revoking)
                });
            let mut m = Member {
                id: id.clone(),
                instance_id: s.instance_id,
                rack_id: s.rack_id,
                client_id: s.client_id,
                client_host: s.client_host,
                subscribed: s.subscribed,
                epoch,
                previous_epoch,
                assigned,
                last_sent: None,
                revoking_since: (!revoking.is_empty()).then_some(now),
                revoking,
                assignment_epochs: BTreeMap::new(),
                rebalance_timeout_ms: i64::from(s.rebalance_timeout_ms.max(0)),
                last_heard: now,
            };
            note_assignment_epochs(&mut m);
            g.members.insert(id, m);
        }
        if !ASSIGNORS.contains(&g.assignor.as_str()) {
            g.assignor = ASSIGNORS[0].to_string();
        }
        g.target.retain(|id, _| g.members.contains_key(id));
        self.groups.insert(group_id.to_string(), g);
        self.records.loaded(group_id, records);
    }

    /// Subscribed topic names of a group.
    pub fn subscribed_topics(&self, group_id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .groups
            .get(group_id)
            .into_iter()
            .flat_map(|g| g.members.values().flat_map(|m| m.subscribed.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Removes an empty group.
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
}

/// Moves one member towards its target: revoke first, then assign what
/// no other member still holds.
fn reconcile(group: &mut Group, member_id: &str, owned: Option<Assignment>, now: i64) {
    let target = group.target.get(member_id).cloned().unwrap_or_default();
    // Partitions other members hold or are still releasing.
    let mut others = Assignment::new();
    for m in group.members.values().filter(|m| m.id != member_id) {
        for (t, ps) in m.assigned.iter().chain(m.revoking.iter()) {
            others.entry(*t).or_default().extend(ps.iter().copied());
        }
    }
    let epoch = group.epoch;
    let Some(m) = group.members.get_mut(member_id) else {
        return;
    };
    if !m.revoking.is_empty() {
        // Released once the member reports owning none of them.
        if owned
            .as_ref()
            .is_some_and(|o| intersect(o, &m.revoking).is_empty())
        {
            m.revoking.clear();
            m.revoking_since = None;
        } else {
            return;
        }
    }
    let to_revoke = minus(&m.assigned, &target);
    if !to_revoke.is_empty() {
        // The member keeps only what stays; it revokes the rest and
        // reports what it owns in its next heartbeat. Its epoch waits.
        m.assigned = intersect(&m.assigned, &target);
        m.revoking = to_revoke;
        m.revoking_since = Some(now);
        return;
    }
    if m.epoch != epoch {
        m.previous_epoch = m.epoch;
        m.epoch = epoch;
    }
    m.assigned = minus(&target, &others);
    note_assignment_epochs(m);
}

/// Keeps the assignment epochs of what the member still holds; what it
/// was just given counts from its current epoch.
fn note_assignment_epochs(m: &mut Member) {
    let held: BTreeSet<(Uuid, i32)> = m
        .assigned
        .iter()
        .chain(m.revoking.iter())
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect();
    m.assignment_epochs.retain(|tp, _| held.contains(tp));
    for tp in held {
        m.assignment_epochs.entry(tp).or_insert(m.epoch);
    }
}

/// Computes every member's target with the group's assignor.
fn compute_target(g: &Group) -> BTreeMap<String, Assignment> {
    let members: Vec<&Member> = g.members.values().collect();
    let mut target: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.clone(), Assignment::new()))
        .collect();
    if g.assignor == "range" {
        for (name, meta) in &g.topics_seen {
            let subs: Vec<&&Member> = members
                .iter()
                .filter(|m| m.subscribed.contains(name))
                .collect();
            let n = i32::try_from(subs.len()).unwrap_or(i32::MAX);
            if n == 0 {
                continue;
            }
            let (per, extra) = (meta.partitions / n, meta.partitions % n);
            let mut next = 0;
            for (i, m) in subs.iter().enumerate() {
                let i = i32::try_from(i).unwrap_or(i32::MAX);
                let take = per + i32::from(i < extra);
                let parts: BTreeSet<i32> = (next..next + take).collect();
                next += take;
                if !parts.is_empty() {
                    target
                        .entry(m.id.clone())
                        .or_default()
                        .insert(meta.id, parts);
                }
            }
        }
        return target;
    }
    // Uniform: keep what each member had (sticky), shed what is over its
    // fair share, then give the rest to the least loaded subscriber.
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    let all: Vec<(Uuid, i32, &String)> = g
        .topics_seen
        .iter()
        .flat_map(|(name, meta)| (0..meta.partitions).map(move |p| (meta.id, p, name)))
        .collect();
    let subscribers = |topic: &String| {
        members
            .iter()
            .filter(|m| m.subscribed.contains(topic))
            .count()
    };
    let total = all.len();
    let quota = if members.is_empty() {
        0
    } else {
        total.div_ceil(members.len())
    };
    for m in &members {
        let prev = g.target.get(&m.id).cloned().unwrap_or_default();
        let mut kept = 0;
        for (t, ps) in &prev {
            let Some((name, meta)) = g.topics_seen.iter().find(|(_, meta)| meta.id == *t) else {
                continue;
            };
            if !m.subscribed.contains(name) {
                continue;
            }
            for &p in ps {
                if p < meta.partitions && kept < quota && !owner.contains_key(&(*t, p)) {
                    owner.insert((*t, p), m.id.clone());
                    kept += 1;
                }
            }
        }
    }
    let mut load: BTreeMap<String, usize> = members.iter().map(|m| (m.id.clone(), 0)).collect();
    for id in owner.values() {
        *load.entry(id.clone()).or_default() += 1;
    }
    // Topics with fewer subscribers first, so narrow subscriptions get served.
    let mut rest: Vec<&(Uuid, i32, &String)> = all
        .iter()
        .filter(|(t, p, _)| !owner.contains_key(&(*t, *p)))
        .collect();
    rest.sort_by_key(|(t, p, name)| (subscribers(name), *t, *p));
    for (t, p, name) in rest {
        let best = members
            .iter()
            .filter(|m| m.subscribed.contains(name))
            .min_by_key(|m| (load.get(&m.id).copied().unwrap_or(0), m.id.clone()));
        if let Some(m) = best {
            owner.insert((*t, *p), m.id.clone());
            *load.entry(m.id.clone()).or_default() += 1;
        }
    }
    for ((t, p), id) in owner {
        target
            .entry(id)
            .or_default()
            .entry(t)
            .or_default()
            .insert(p);
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: i32) -> (Uuid, BTreeMap<String, TopicMeta>) {
        let id = Uuid::from_u128(7);
        (
            id,
            BTreeMap::from([("t".to_string(), TopicMeta { id, partitions: n })]),
        )
    }

    fn hb(member: &str, epoch: i32, owned: Option<Assignment>) -> Heartbeat {
        Heartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            regex: None,
            assignor: None,
            owned,
            client_id: "c".into(),
            client_host: "/h".into(),
            instance_id: None,
            rack_id: None,
        }
    }

    fn parts(a: &Option<Assignment>) -> Vec<i32> {
        a.as_ref()
            .map(|a| a.values().flatten().copied().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_single_member_gets_everything() {
        let (_, t) = topics(4);
        let mut c = ConsumerGroups::default();
        let a = c.heartbeat(hb("", 0, None), &t, || "m1".into(), 0);
        assert_eq!(
            (a.error, a.member_id.as_str(), a.member_epoch),
            (0, "m1", 1)
        );
        assert_eq!(parts(&a.assignment), vec![0, 1, 2, 3]);
        // Unchanged: no assignment in the answer.
        let a = c.heartbeat(hb("m1", 1, None), &t, String::new, 1);
        assert_eq!((a.error, a.assignment), (0, None));
    }

    #[test]
    fn partitions_move_only_after_they_are_revoked() {
        let (id, t) = topics(4);
        let mut c = ConsumerGroups::default();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        let b = c.heartbeat(hb("", 0, None), &t, || "b".into(), 1);
        assert_eq!(b.member_epoch, 2);
        assert!(parts(&b.assignment).is_empty(), "a still holds everything");
        // a learns it must give up two partitions; its epoch stays.
        let a = c.heartbeat(hb("a", 1, None), &t, String::new, 2);
        let kept = parts(&a.assignment);
        assert_eq!((a.member_epoch, kept.len()), (1, 2));
        // b still gets nothing while a has not confirmed.
        let b = c.heartbeat(hb("b", 2, None), &t, String::new, 3);
        assert!(b.assignment.is_none() || parts(&b.assignment).is_empty());
        // a confirms: it now owns only what it kept, and moves to epoch 2.
        let owned = Assignment::from([(id, kept.iter().copied().collect())]);
        let a = c.heartbeat(hb("a", 1, Some(owned)), &t, String::new, 4);
        assert_eq!(a.member_epoch, 2);
        let b = c.heartbeat(hb("b", 2, None), &t, String::new, 5);
        let mut all: Vec<i32> = kept.into_iter().chain(parts(&b.assignment)).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_commit_from_an_older_epoch_covers_partitions_held_since_then() {
        let (id, t) = topics(4);
        let mut c = ConsumerGroups::default();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        assert_eq!(c.check_commit("g", "a", 1), Ok(None));
        c.heartbeat(hb("", 0, None), &t, || "b".into(), 1);
        let kept: BTreeSet<i32> =
            parts(&c.heartbeat(hb("a", 1, None), &t, String::new, 2).assignment)
                .into_iter()
                .collect();
        let owned = Assignment::from([(id, kept.clone())]);
        assert_eq!(
            c.heartbeat(hb("a", 1, Some(owned)), &t, String::new, 3)
                .member_epoch,
            2
        );
        // A commit sent at epoch 1 before a learnt epoch 2 still covers
        // what a has held since epoch 1, and nothing else.
        let since_1: BTreeSet<(Uuid, i32)> = kept.iter().map(|p| (id, *p)).collect();
        assert_eq!(c.check_commit("g", "a", 1), Ok(Some(since_1)));
        assert_eq!(c.check_commit("g", "a", 2), Ok(None));
        assert_eq!(
            c.check_commit("g", "a", 3),
            Err(ResponseError::StaleMemberEpoch)
        );
        // b got its partitions at epoch 2: an epoch-1 commit covers none.
        let b = c.heartbeat(hb("b", 2, None), &t, String::new, 4);
        assert_eq!(parts(&b.assignment).len(), 2);
        assert_eq!(c.check_commit("g", "b", 1), Ok(Some(BTreeSet::new())));
    }

    #[test]
    fn fencing_and_leaving() {
        let (_, t) = topics(2);
        let mut c = ConsumerGroups::default();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        assert_eq!(
            c.heartbeat(hb("a", 7, None), &t, String::new, 1).error,
            ResponseError::FencedMemberEpoch.code()
        );
        assert_eq!(
            c.heartbeat(hb("zz", 1, None), &t, String::new, 1).error,
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(c.check_commit("g", "a", 1), Ok(None));
        // Epoch 0 predates every partition a holds: none may be committed.
        assert_eq!(c.check_commit("g", "a", 0), Ok(Some(BTreeSet::new())));
        let left = c.heartbeat(hb("a", -1, None), &t, String::new, 2);
        assert_eq!((left.error, left.member_epoch), (0, -1));
        assert_eq!(c.describe("g").map(|g| g.state), Some("Empty"));
        assert_eq!(c.delete("g"), Ok(()));
    }

    #[test]
    fn expired_members_free_their_partitions() {
        let (_, t) = topics(2);
        let mut c = ConsumerGroups::new(ConsumerConfig {
            session_timeout_ms: 100,
            heartbeat_interval_ms: 10,
        });
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        c.heartbeat(hb("", 0, None), &t, || "b".into(), 0);
        c.heartbeat(hb("a", 1, None), &t, String::new, 50);
        c.tick(120);
        let b = c.heartbeat(hb("b", 2, None), &t, String::new, 120);
        assert_eq!(
            b.error,
            ResponseError::UnknownMemberId.code(),
            "b stopped heartbeating and is gone"
        );
        // a gets everything once its revocation (if any) is settled.
        let a = c.heartbeat(hb("a", 1, None), &t, String::new, 121);
        assert_eq!(a.error, 0);
    }

    #[test]
    fn a_group_config_sets_its_own_interval_and_session_timeout() {
        let (_, t) = topics(2);
        let mut c = ConsumerGroups::new(ConsumerConfig {
            session_timeout_ms: 100,
            heartbeat_interval_ms: 10,
        });
        c.configure(
            "g",
            ConsumerConfig {
                session_timeout_ms: 1000,
                heartbeat_interval_ms: 70,
            },
        );
        let a = c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        assert_eq!(a.interval_ms, 70);
        c.tick(500);
        let a = c.heartbeat(hb("a", 1, None), &t, String::new, 500);
        assert_eq!(a.error, 0, "heard 500 ms ago, within the group's 1 s");
        c.tick(1600);
        let a = c.heartbeat(hb("a", 1, None), &t, String::new, 1600);
        assert_eq!(a.error, ResponseError::UnknownMemberId.code());
        // Back to the coordinator's settings.
        c.configure(
            "g",
            ConsumerConfig {
                session_timeout_ms: 100,
                heartbeat_interval_ms: 10,
            },
        );
        let b = c.heartbeat(hb("", 0, None), &t, || "b".into(), 1700);
        assert_eq!(b.interval_ms, 10);
    }

    #[test]
    fn growing_a_topic_bumps_the_epoch() {
        let (id, t) = topics(2);
        let mut c = ConsumerGroups::default();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        let grown = BTreeMap::from([("t".to_string(), TopicMeta { id, partitions: 3 })]);
        let a = c.heartbeat(hb("a", 1, None), &grown, String::new, 1);
        assert_eq!((a.member_epoch, parts(&a.assignment)), (2, vec![0, 1, 2]));
    }

    /// Applies handed-out changes to a model of the compacted topic.
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

    #[test]
    fn a_restored_group_keeps_members_epochs_and_assignments() {
        let (id, t) = topics(4);
        let mut c = ConsumerGroups::default();
        let mut log = BTreeMap::new();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        c.heartbeat(hb("", 0, None), &t, || "b".into(), 1);
        // a is told to revoke two partitions; the restart comes meanwhile.
        let kept = parts(&c.heartbeat(hb("a", 1, None), &t, String::new, 2).assignment);
        apply(&mut log, c.take_changes());
        assert!(c.take_changes().is_empty(), "nothing changed since");

        let mut back = ConsumerGroups::default();
        back.restore("g", log.clone(), 100);
        let (x, y) = (c.describe("g").unwrap(), back.describe("g").unwrap());
        assert_eq!(
            (x.epoch, x.assignment_epoch, x.state),
            (y.epoch, y.assignment_epoch, y.state)
        );
        let view = |g: &GroupView| -> Vec<_> {
            g.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.epoch,
                        m.assigned.clone(),
                        m.target.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(view(&x), view(&y));
        // The members carry on at their epochs: a confirms the revocation,
        // and b then gets the partitions a gave up.
        let owned = Assignment::from([(id, kept.iter().copied().collect())]);
        let a = back.heartbeat(hb("a", 1, Some(owned)), &t, String::new, 101);
        assert_eq!((a.error, a.member_epoch), (0, 2));
        let b = back.heartbeat(hb("b", 2, None), &t, String::new, 102);
        assert_eq!((b.error, parts(&b.assignment).len()), (0, 2));
        // Nothing rewritten that did not change: the group epoch stays.
        let changed: Vec<i16> = back
            .take_changes()
            .into_iter()
            .flat_map(|(_, kvs)| kvs)
            .map(|(k, _)| i16::from_be_bytes([k[0], k[1]]))
            .collect();
        assert!(!changed.contains(&3), "{changed:?}");
    }

    #[test]
    fn sessions_restart_when_a_group_is_restored() {
        let (_, t) = topics(2);
        let config = ConsumerConfig {
            session_timeout_ms: 100,
            heartbeat_interval_ms: 10,
        };
        let mut c = ConsumerGroups::new(config.clone());
        let mut log = BTreeMap::new();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        apply(&mut log, c.take_changes());
        // Loaded long after a's last heartbeat: its session counts from
        // the load, as Kafka re-arms timers on replay.
        let mut back = ConsumerGroups::new(config);
        back.restore("g", log, 1_000);
        back.tick(1_050);
        assert_eq!(
            back.heartbeat(hb("a", 1, None), &t, String::new, 1_050)
                .error,
            0
        );
        back.tick(1_200);
        assert_eq!(back.describe("g").map(|g| g.members.len()), None);
    }

    #[test]
    fn leaving_and_deleting_tombstone_the_records_in_kafkas_order() {
        let (_, t) = topics(2);
        let mut c = ConsumerGroups::default();
        let mut log = BTreeMap::new();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        c.heartbeat(hb("", 0, None), &t, || "b".into(), 0);
        apply(&mut log, c.take_changes());
        let types = |kvs: &[Change]| -> Vec<(i16, bool)> {
            kvs.iter()
                .map(|(k, v)| (i16::from_be_bytes([k[0], k[1]]), v.is_some()))
                .collect()
        };
        c.heartbeat(hb("b", -1, None), &t, String::new, 1);
        let changes = c.take_changes();
        let kvs = &changes[0].1;
        // b's current assignment, target and subscription go first.
        assert_eq!(types(&kvs[..3]), vec![(8, false), (7, false), (5, false)]);
        assert!(types(kvs).contains(&(3, true)), "a new group epoch");
        apply(&mut log, changes);
        c.heartbeat(hb("a", -1, None), &t, String::new, 2);
        c.tick(3);
        let changes = c.take_changes();
        let kvs = &changes[0].1;
        assert_eq!(
            types(kvs).last().copied(),
            Some((3, false)),
            "the group's epoch record goes last"
        );
        apply(&mut log, changes);
        assert!(log.is_empty(), "every record tombstoned: {log:?}");
        let mut back = ConsumerGroups::default();
        back.restore("g", log, 4);
        assert!(back.describe("g").is_none());
    }

    #[test]
    fn a_failed_write_is_handed_out_whole_again() {
        let (_, t) = topics(2);
        let mut c = ConsumerGroups::default();
        c.heartbeat(hb("", 0, None), &t, || "a".into(), 0);
        let first = c.take_changes();
        c.invalidate("g");
        assert_eq!(c.take_changes(), first);
    }

    #[test]
    fn range_assigns_contiguous_blocks() {
        let (_, t) = topics(5);
        let mut c = ConsumerGroups::default();
        let mut first = hb("", 0, None);
        first.assignor = Some("range".into());
        c.heartbeat(first, &t, || "a".into(), 0);
        c.heartbeat(hb("", 0, None), &t, || "b".into(), 0);
        let g = c.describe("g").unwrap();
        let targets: Vec<Vec<i32>> = g
            .members
            .iter()
            .map(|m| m.target.values().flatten().copied().collect())
            .collect();
        assert_eq!(targets, vec![vec![0, 1, 2], vec![3, 4]]);
        let mut bad = hb("", 0, None);
        bad.assignor = Some("magic".into());
        assert_eq!(
            c.heartbeat(bad, &t, || "x".into(), 0).error,
            ResponseError::UnsupportedAssignor.code()
        );
    }
}

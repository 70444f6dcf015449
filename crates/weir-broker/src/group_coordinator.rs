//! The classic consumer group coordinator, as a pure state machine.
//!
//! Events go in (a JoinGroup, a SyncGroup, a heartbeat, a leave, the clock
//! ticking) and effects come out: responses for requests that were waiting,
//! and snapshots of group state to persist. There is no I/O and no clock
//! here, so every fencing rule and timeout is tested without sockets; the
//! broker wraps it with persistence and timers.
//!
//! The states and rules follow Apache Kafka's classic protocol: `Empty`,
//! `PreparingRebalance`, `CompletingRebalance`, `Stable` and `Dead`, with
//! generation and member-id fencing, session and rebalance timeouts, static
//! membership (KIP-345), the member-id round trip of JoinGroup v4+
//! (KIP-394) and `group.initial.rebalance.delay.ms`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

/// A token for a request whose response is deferred.
pub type Waiter = u64;

/// Coordinator-wide settings, named after Kafka's broker configs.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`.
    pub max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
        }
    }
}

/// A group's state, as DescribeGroups and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignments.
    Stable,
    /// Removed.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The group.
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The member's session timeout.
    pub session_timeout_ms: i32,
    /// The member's rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// e.g. `consumer`.
    pub protocol_type: String,
    /// The assignors the member supports, in preference order, with its
    /// subscription metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

/// A member as a JoinGroup response lists it for the leader.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Subscription metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    /// Error code, 0 on success.
    pub error: i16,
    /// The new generation.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol (assignor).
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The member's id (new for a first join).
    pub member_id: String,
    /// All members, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    /// A failed join: only the error and the member id are set.
    pub(crate) fn error(e: ResponseError, member_id: &str) -> Self {
        Self {
            error: e.code(),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    /// Error code, 0 on success.
    pub error: i16,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(e: ResponseError) -> Self {
        Self {
            error: e.code(),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Something for the caller to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Answer a waiting JoinGroup.
    Join(Waiter, JoinResult),
    /// Answer a waiting SyncGroup.
    Sync(Waiter, SyncResult),
    /// Persist the group's state (after a completed rebalance, or when it
    /// becomes empty).
    Persist(GroupSnapshot),
}

/// A member as persisted (Kafka's GroupMetadataValue member).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSnapshot {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Subscription for the chosen protocol.
    pub subscription: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group as persisted (Kafka's GroupMetadataValue).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    /// Group id.
    pub group_id: String,
    /// Protocol type; empty for a group that only commits offsets.
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Chosen protocol.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the state last changed (ms).
    pub state_timestamp: i64,
    /// Members, with their assignments.
    pub members: Vec<MemberSnapshot>,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscription for the chosen protocol.
    pub metadata: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDescription {
    /// State.
    pub state: GroupState,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<Waiter>,
    sync_waiter: Option<Waiter>,
    /// When the member was last heard from (join, sync or heartbeat).
    last_heard: i64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// Members in join order (the first is the default leader).
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending: HashMap<String, i64>,
    /// When the rebalance must complete even if members are missing.
    rebalance_deadline: i64,
    /// The initial delay for a group rebalancing from empty.
    delay_until: i64,
    state_timestamp: i64,
}

impl Group {
    fn new(id: &str, now: i64) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            rebalance_deadline: 0,
            delay_until: 0,
            state_timestamp: now,
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    fn static_member(&self, instance: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    fn set_state(&mut self, s: GroupState, now: i64) {
        self.state = s;
        self.state_timestamp = now;
    }

    /// Protocols every member supports, in the first member's order.
    fn common_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    /// Whether a joining member's protocols fit the group.
    fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(n, _)| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
    }

    /// Kafka's vote: each member votes for its most preferred protocol
    /// among the common ones; the most votes win.
    fn select_protocol(&self) -> Option<String> {
        let common = self.common_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &self.members {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| common.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        // Ties go to the protocol the first member prefers.
        let best = votes.values().copied().max()?;
        common
            .into_iter()
            .find(|c| votes.get(c.as_str()) == Some(&best))
    }

    fn rebalance_timeout(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupSnapshot {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp,
            members: self
                .members
                .iter()
                .map(|m| MemberSnapshot {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// All classic groups.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: HashMap<String, Group>,
    next_member: u64,
    /// Mixed into member ids so they differ across restarts; the caller
    /// chooses it (random in the broker, fixed in tests).
    member_id_seed: u64,
}

/// Effects of one event.
pub type Effects = Vec<Effect>;

impl GroupCoordinator {
    /// A coordinator with no groups; `member_id_seed` makes the member ids
    /// it hands out unique to this instance.
    pub fn new(config: GroupConfig, member_id_seed: u64) -> Self {
        Self {
            config,
            groups: HashMap::new(),
            next_member: 0,
            member_id_seed,
        }
    }

    /// Restores a persisted group (at start-up). Members must heartbeat
    /// within their session timeout, counted from `now`, to stay.
    pub fn restore(&mut self, snap: GroupSnapshot, now: i64) {
        let mut g = Group::new(&snap.group_id, now);
        g.generation = snap.generation;
        g.protocol_type = (!snap.protocol_type.is_empty()).then_some(snap.protocol_type);
        g.protocol = snap.protocol.clone();
        g.leader = snap.leader;
        let protocol = snap.protocol.unwrap_or_default();
        g.members = snap
            .members
            .into_iter()
            .map(|m| Member {
                id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                last_heard: now,
            })
            .collect();
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.groups.insert(g.id.clone(), g);
    }

    /// Removes a group known only from persisted state (a tombstone).
    pub fn forget(&mut self, group_id: &str) {
        self.groups.remove(group_id);
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member += 1;
        // Kafka's shape: client id, a dash, a unique suffix.
        format!(
            "{client_id}-{:016x}{:016x}",
            mix(self.member_id_seed ^ self.next_member),
            self.next_member
        )
    }

    /// Handles a JoinGroup. The response may come now or later, as an
    /// [`Effect::Join`] for `waiter`.
    pub fn join(&mut self, waiter: Waiter, req: JoinRequest, now: i64) -> Effects {
        let mut fx = Vec::new();
        let reply =
            |e: ResponseError, id: &str| vec![Effect::Join(waiter, JoinResult::error(e, id))];
        if req.group_id.is_empty() {
            return reply(ResponseError::InvalidGroupId, &req.member_id);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return reply(ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        let max_size = self.config.max_size;
        let delay = self.config.initial_rebalance_delay_ms;
        let fresh_id = if req.member_id.is_empty() {
            Some(self.new_member_id(&req.client_id))
        } else {
            None
        };
        let g = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, now));
        if g.state == GroupState::Dead {
            return reply(ResponseError::CoordinatorNotAvailable, &req.member_id);
        }
        if !g.accepts(&req.protocol_type, &req.protocols) {
            return reply(ResponseError::InconsistentGroupProtocol, &req.member_id);
        }

        if let Some(new_id) = fresh_id {
            // A static member rejoining with a new process replaces its old
            // member id, keeping its assignment (KIP-345).
            if let Some(instance) = req.instance_id.as_deref() {
                if let Some(old) = g.static_member(instance).map(|m| m.id.clone()) {
                    return replace_static_member(g, waiter, &old, new_id, req, now, delay);
                }
            }
            if g.members.len() + g.pending.len() >= max_size {
                return reply(ResponseError::GroupMaxSizeReached, "");
            }
            if req.require_known_member_id && req.instance_id.is_none() {
                g.pending
                    .insert(new_id.clone(), now + i64::from(req.session_timeout_ms));
                return reply(ResponseError::MemberIdRequired, &new_id);
            }
            add_member(g, waiter, new_id, &req, now);
            prepare_rebalance(g, now, delay, &mut fx);
            try_complete_join(g, now, &mut fx);
            return fx;
        }

        let member_id = req.member_id.clone();
        if g.pending.remove(&member_id).is_some() {
            add_member(g, waiter, member_id, &req, now);
            prepare_rebalance(g, now, delay, &mut fx);
            try_complete_join(g, now, &mut fx);
            return fx;
        }
        if let Some(instance) = req.instance_id.as_deref() {
            if g.static_member(instance).is_some_and(|m| m.id != member_id) {
                return reply(ResponseError::FencedInstanceId, &member_id);
            }
        }
        let Some(m) = g.member_mut(&member_id) else {
            return reply(ResponseError::UnknownMemberId, &member_id);
        };
        m.last_heard = now;
        let changed = m.protocols != req.protocols;
        m.protocols = req.protocols.clone();
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        // A second join from the same member replaces the first.
        if let Some(old) = m.join_waiter.replace(waiter) {
            fx.push(Effect::Join(
                old,
                JoinResult::error(ResponseError::UnknownMemberId, &member_id),
            ));
        }
        match g.state {
            GroupState::PreparingRebalance => {}
            GroupState::CompletingRebalance | GroupState::Stable
                if !changed && g.leader.as_deref() != Some(member_id.as_str()) =>
            {
                // A resend, or a follower rejoining unchanged: answer with
                // the current generation without a rebalance.
                let result = join_result(g, &member_id);
                if let Some(m) = g.member_mut(&member_id) {
                    m.join_waiter = None;
                }
                fx.push(Effect::Join(waiter, result));
                return fx;
            }
            _ => prepare_rebalance(g, now, delay, &mut fx),
        }
        try_complete_join(g, now, &mut fx);
        fx
    }

    /// Handles a SyncGroup; the response may come later as an
    /// [`Effect::Sync`].
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        waiter: Waiter,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> Effects {
        let reply = |e: ResponseError| vec![Effect::Sync(waiter, SyncResult::error(e))];
        let Some(g) = self.groups.get_mut(group_id) else {
            return reply(ResponseError::UnknownMemberId);
        };
        if let Err(e) = check_member(g, member_id, instance_id) {
            return reply(e);
        }
        if generation != g.generation {
            return reply(ResponseError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|p| Some(p) != g.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != g.protocol.as_deref())
        {
            return reply(ResponseError::InconsistentGroupProtocol);
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_heard = now;
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => reply(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => reply(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let assignment = g
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                vec![Effect::Sync(waiter, sync_ok(g, assignment))]
            }
            GroupState::CompletingRebalance => {
                let mut fx = Vec::new();
                if let Some(m) = g.member_mut(member_id) {
                    if let Some(old) = m.sync_waiter.replace(waiter) {
                        fx.push(Effect::Sync(
                            old,
                            SyncResult::error(ResponseError::UnknownMemberId),
                        ));
                    }
                }
                if g.leader.as_deref() == Some(member_id) {
                    for m in &mut g.members {
                        m.assignment = assignments
                            .iter()
                            .find(|(id, _)| *id == m.id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    g.set_state(GroupState::Stable, now);
                    fx.push(Effect::Persist(g.snapshot()));
                    let done: Vec<(Waiter, Bytes)> = g
                        .members
                        .iter_mut()
                        .filter_map(|m| m.sync_waiter.take().map(|w| (w, m.assignment.clone())))
                        .collect();
                    for (w, a) in done {
                        fx.push(Effect::Sync(w, sync_ok(g, a)));
                    }
                }
                fx
            }
        }
    }

    /// Handles a Heartbeat; the answer is immediate.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
    ) -> i16 {
        let Some(g) = self.groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if let Err(e) = check_member(g, member_id, instance_id) {
            return e.code();
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_heard = now;
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => ResponseError::UnknownMemberId.code(),
            _ if generation != g.generation => ResponseError::IllegalGeneration.code(),
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            GroupState::CompletingRebalance | GroupState::Stable => 0,
        }
    }

    /// Handles a LeaveGroup for each `(member id, instance id)`; returns
    /// one error code per member and effects.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now: i64,
    ) -> (i16, Vec<i16>, Effects) {
        let mut fx = Vec::new();
        let Some(g) = self.groups.get_mut(group_id) else {
            return (
                ResponseError::UnknownMemberId.code(),
                vec![ResponseError::UnknownMemberId.code(); members.len()],
                fx,
            );
        };
        let mut codes = Vec::with_capacity(members.len());
        let mut removed = false;
        for (member_id, instance) in members {
            // A static member may leave by instance id alone.
            let target = match instance.as_deref() {
                Some(i) => match g.static_member(i) {
                    Some(m) if member_id.is_empty() || m.id == *member_id => Some(m.id.clone()),
                    Some(_) => {
                        codes.push(ResponseError::FencedInstanceId.code());
                        continue;
                    }
                    None => None,
                },
                None => g.member(member_id).map(|m| m.id.clone()),
            };
            if g.pending.remove(member_id).is_some() {
                codes.push(0);
                continue;
            }
            match target {
                Some(id) => {
                    remove_member(g, &id, &mut fx);
                    removed = true;
                    codes.push(0);
                }
                None => codes.push(ResponseError::UnknownMemberId.code()),
            }
        }
        if removed {
            after_removal(g, now, self.config.initial_rebalance_delay_ms, &mut fx);
        }
        (0, codes, fx)
    }

    /// Advances time: expires sessions and pending member ids, and
    /// completes rebalances whose delay or timeout has passed.
    pub fn tick(&mut self, now: i64) -> Effects {
        let mut fx = Vec::new();
        let delay = self.config.initial_rebalance_delay_ms;
        for g in self.groups.values_mut() {
            g.pending.retain(|_, expiry| *expiry > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| {
                    m.join_waiter.is_none() && m.last_heard + i64::from(m.session_timeout_ms) <= now
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                remove_member(g, id, &mut fx);
            }
            if !expired.is_empty() {
                after_removal(g, now, delay, &mut fx);
            }
            try_complete_join(g, now, &mut fx);
        }
        fx
    }

    /// The state of a group, if it exists.
    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// Checks that a member may commit offsets at `generation` (classic
    /// rules). A commit with generation -1 and no member id is a
    /// standalone commit, allowed while the group has no members.
    pub fn check_commit(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
    ) -> Result<(), ResponseError> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return if generation < 0 && member_id.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        if generation < 0 && member_id.is_empty() {
            return if g.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        check_member(g, member_id, instance_id)?;
        if generation != g.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_heard = now;
        }
        Ok(())
    }

    /// Describes a group; unknown groups are `Dead` with no members, as
    /// in Kafka.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group_id) else {
            return GroupDescription {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        // Kafka shows member metadata only once the group is stable.
        let members = g
            .members
            .iter()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if g.state == GroupState::Stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if g.state == GroupState::Stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable {
                protocol
            } else {
                String::new()
            },
            members,
        }
    }

    /// For a group with no members: whether it has a protocol type (a
    /// consumer group rather than standalone commits) and since when it has
    /// been empty. `None` while it has members.
    pub fn empty_since(&self, group_id: &str) -> Option<(bool, i64)> {
        match self.groups.get(group_id) {
            None => Some((false, 0)),
            Some(g) if g.members.is_empty() => Some((g.protocol_type.is_some(), g.state_timestamp)),
            Some(_) => None,
        }
    }

    /// Every group with its state and protocol type.
    pub fn list(&self) -> Vec<(String, GroupState, String)> {
        let mut v: Vec<_> = self
            .groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| {
                (
                    g.id.clone(),
                    g.state,
                    g.protocol_type.clone().unwrap_or_default(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Deletes an empty group; `NON_EMPTY_GROUP` if it has members.
    pub fn delete(&mut self, group_id: &str) -> Result<(), ResponseError> {
        match self.groups.get(group_id) {
            None => Err(ResponseError::GroupIdNotFound),
            Some(g) if g.state != GroupState::Empty => Err(ResponseError::NonEmptyGroup),
            Some(_) => {
                self.groups.remove(group_id);
                Ok(())
            }
        }
    }

    /// Makes sure a group exists (a standalone offset commit creates an
    /// empty one, as in Kafka).
    pub fn ensure(&mut self, group_id: &str, now: i64) {
        self.groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now));
    }

    /// Topics a stable consumer group is subscribed to, from its members'
    /// subscriptions (for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn subscribed_topics(&self, group_id: &str) -> Vec<String> {
        let Some(g) = self.groups.get(group_id) else {
            return Vec::new();
        };
        if g.protocol_type.as_deref() != Some("consumer") || g.members.is_empty() {
            return Vec::new();
        }
        let protocol = g.protocol.clone().unwrap_or_default();
        let mut topics: Vec<String> = g
            .members
            .iter()
            .flat_map(|m| consumer_subscription_topics(&m.metadata_for(&protocol)))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// The topic names in a consumer protocol subscription (version, then an
/// array of strings); empty if it does not parse.
pub fn consumer_subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut b = metadata;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (b.get(..n)?, b.get(n..)?);
        b = tail;
        Some(head)
    };
    let mut out = Vec::new();
    let Some(_version) = take(2) else { return out };
    let Some(count) = take(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])) else {
        return out;
    };
    for _ in 0..count.max(0) {
        let Some(len) = take(2).map(|l| i16::from_be_bytes([l[0], l[1]])) else {
            break;
        };
        let Ok(len) = usize::try_from(len) else { break };
        let Some(name) = take(len) else { break };
        out.push(String::from_utf8_lossy(name).into_owned());
    }
    out
}

/// SplitMix64's finalizer: member ids need to be unique, not secret.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn check_member(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if let Some(instance) = instance_id {
        if let Some(m) = g.static_member(instance) {
            if m.id != member_id {
                return Err(ResponseError::FencedInstanceId);
            }
        }
    }
    if g.member(member_id).is_none() {
        return Err(ResponseError::UnknownMemberId);
    }
    Ok(())
}

fn sync_ok(g: &Group, assignment: Bytes) -> SyncResult {
    SyncResult {
        error: 0,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol.clone(),
        assignment,
    }
}

fn add_member(g: &mut Group, waiter: Waiter, id: String, req: &JoinRequest, now: i64) {
    if g.members.is_empty() {
        g.protocol_type = Some(req.protocol_type.clone());
    }
    g.members.push(Member {
        id,
        instance_id: req.instance_id.clone(),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        protocols: req.protocols.clone(),
        assignment: Bytes::new(),
        join_waiter: Some(waiter),
        sync_waiter: None,
        last_heard: now,
    });
}

fn replace_static_member(
    g: &mut Group,
    waiter: Waiter,
    old: &str,
    new_id: String,
    req: JoinRequest,
    now: i64,
    delay: i64,
) -> Effects {
    let mut fx = Vec::new();
    let Some(m) = g.member_mut(old) else {
        return fx;
    };
    // The old incarnation's waiting requests are fenced.
    if let Some(w) = m.join_waiter.take() {
        fx.push(Effect::Join(
            w,
            JoinResult::error(ResponseError::FencedInstanceId, old),
        ));
    }
    if let Some(w) = m.sync_waiter.take() {
        fx.push(Effect::Sync(
            w,
            SyncResult::error(ResponseError::FencedInstanceId),
        ));
    }
    let changed = m.protocols != req.protocols;
    m.id = new_id.clone();
    m.protocols = req.protocols.clone();
    m.session_timeout_ms = req.session_timeout_ms;
    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();
    m.last_heard = now;
    if g.leader.as_deref() == Some(old) {
        g.leader = Some(new_id.clone());
    }
    match g.state {
        GroupState::Stable if !changed => {
            // KIP-345: no rebalance; the member keeps its assignment and
            // learns its new id from this response. It is told it is not
            // the leader, so it does not reassign.
            let mut result = join_result(g, &new_id);
            result.members.clear();
            if result.leader == new_id {
                result.leader = String::new();
            }
            fx.push(Effect::Join(waiter, result));
            fx.push(Effect::Persist(g.snapshot()));
        }
        _ => {
            if let Some(m) = g.member_mut(&new_id) {
                m.join_waiter = Some(waiter);
            }
            prepare_rebalance(g, now, delay, &mut fx);
            try_complete_join(g, now, &mut fx);
        }
    }
    fx
}

fn remove_member(g: &mut Group, id: &str, fx: &mut Effects) {
    if let Some(pos) = g.members.iter().position(|m| m.id == id) {
        let m = g.members.remove(pos);
        if let Some(w) = m.join_waiter {
            fx.push(Effect::Join(
                w,
                JoinResult::error(ResponseError::UnknownMemberId, id),
            ));
        }
        if let Some(w) = m.sync_waiter {
            fx.push(Effect::Sync(
                w,
                SyncResult::error(ResponseError::UnknownMemberId),
            ));
        }
    }
    if g.leader.as_deref() == Some(id) {
        g.leader = g.members.first().map(|m| m.id.clone());
    }
}

fn after_removal(g: &mut Group, now: i64, delay: i64, fx: &mut Effects) {
    if g.members.is_empty() && g.state != GroupState::PreparingRebalance {
        g.generation += 1;
        g.protocol = None;
        g.leader = None;
        g.set_state(GroupState::Empty, now);
        fx.push(Effect::Persist(g.snapshot()));
        return;
    }
    match g.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(g, now, delay, fx)
        }
        _ => {}
    }
    try_complete_join(g, now, fx);
}

fn prepare_rebalance(g: &mut Group, now: i64, delay: i64, fx: &mut Effects) {
    if g.state == GroupState::PreparingRebalance {
        // A member joining during the initial delay extends it, up to the
        // rebalance timeout (Kafka's InitialDelayedJoin).
        if g.delay_until > now {
            g.delay_until = (now + delay).min(g.rebalance_deadline);
        }
        return;
    }
    // Members waiting for an assignment learn that it is void.
    for m in &mut g.members {
        if let Some(w) = m.sync_waiter.take() {
            fx.push(Effect::Sync(
                w,
                SyncResult::error(ResponseError::RebalanceInProgress),
            ));
        }
    }
    let from_empty = g.state == GroupState::Empty;
    g.set_state(GroupState::PreparingRebalance, now);
    g.rebalance_deadline = now + g.rebalance_timeout();
    g.delay_until = if from_empty {
        (now + delay).min(g.rebalance_deadline)
    } else {
        0
    };
}

fn join_result(g: &Group, member_id: &str) -> JoinResult {
    let protocol = g.protocol.clone().unwrap_or_default();
    let leader = g.leader.clone().unwrap_or_default();
    let members = if leader == member_id {
        g.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResult {
        error: 0,
        generation: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol.clone(),
        leader,
        member_id: member_id.to_string(),
        members,
    }
}

fn try_complete_join(g: &mut Group, now: i64, fx: &mut Effects) {
    if g.state != GroupState::PreparingRebalance || now < g.delay_until {
        return;
    }
    let all_joined = g.members.iter().all(|m| m.join_waiter.is_some());
    if !all_joined && now < g.rebalance_deadline {
        return;
    }
    // Members that did not rejoin in time are out.
    let missing: Vec<String> = g
        .members
        .iter()
        .filter(|m| m.join_waiter.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in &missing {
        remove_member(g, id, fx);
    }
    g.generation += 1;
    if g.members.is_empty() {
        g.protocol = None;
        g.leader = None;
        g.set_state(GroupState::Empty, now);
        fx.push(Effect::Persist(g.snapshot()));
        return;
    }
    g.protocol = g.select_protocol();
    if g.leader.as_ref().is_none_or(|l| g.member(l).is_none()) {
        g.leader = g.members.first().map(|m| m.id.clone());
    }
    g.set_state(GroupState::CompletingRebalance, now);
    let waiters: Vec<(String, Waiter)> = g
        .members
        .iter_mut()
        .filter_map(|m| m.join_waiter.take().map(|w| (m.id.clone(), w)))
        .collect();
    for (id, w) in waiters {
        fx.push(Effect::Join(w, join_result(g, &id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: fn(ResponseError) -> i16 = |e| e.code();

    fn req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member.into(),
            instance_id: instance.map(str::to_string),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
        }
    }

    fn joins(fx: &Effects) -> Vec<(Waiter, JoinResult)> {
        fx.iter()
            .filter_map(|e| {
                if let Effect::Join(w, r) = e {
                    Some((*w, r.clone()))
                } else {
                    None
                }
            })
            .collect()
    }

    fn syncs(fx: &Effects) -> Vec<(Waiter, SyncResult)> {
        fx.iter()
            .filter_map(|e| {
                if let Effect::Sync(w, r) = e {
                    Some((*w, r.clone()))
                } else {
                    None
                }
            })
            .collect()
    }

    fn coordinator() -> GroupCoordinator {
        GroupCoordinator::new(
            GroupConfig {
                initial_rebalance_delay_ms: 100,
                ..GroupConfig::default()
            },
            7,
        )
    }

    /// Joins `n` dynamic members through the MEMBER_ID_REQUIRED round trip
    /// and completes the rebalance; returns member ids (leader first).
    fn stable_group(c: &mut GroupCoordinator, n: usize) -> (i32, Vec<String>) {
        let mut ids = Vec::new();
        for i in 0..n {
            let fx = c.join(i as u64, req("", None), 0);
            let (_, r) = &joins(&fx)[0];
            assert_eq!(r.error, E(ResponseError::MemberIdRequired));
            ids.push(r.member_id.clone());
            assert!(
                joins(&c.join(i as u64, req(&r.member_id, None), 0)).is_empty(),
                "waits for the initial delay"
            );
        }
        let done = joins(&c.tick(100));
        assert_eq!(done.len(), n);
        let gen = done[0].1.generation;
        let leader = done[0].1.leader.clone();
        for (_, r) in &done {
            assert_eq!(r.members.len(), if r.member_id == leader { n } else { 0 });
        }
        let assignments: Vec<_> = ids
            .iter()
            .map(|id| (id.clone(), Bytes::from(format!("a-{id}"))))
            .collect();
        let fx = c.sync(
            99,
            "g",
            gen,
            &leader,
            None,
            Some("consumer"),
            Some("range"),
            assignments,
            100,
        );
        assert!(syncs(&fx)
            .iter()
            .any(|(w, r)| *w == 99 && r.error == 0 && r.assignment == format!("a-{leader}")));
        assert_eq!(c.state("g"), Some(GroupState::Stable));
        ids.sort_by_key(|id| id != &leader);
        (gen, ids)
    }

    #[test]
    fn members_join_once_each_and_the_leader_sees_all() {
        let mut c = coordinator();
        let (gen, ids) = stable_group(&mut c, 3);
        assert_eq!(gen, 1);
        for id in &ids {
            assert_eq!(c.heartbeat("g", gen, id, None, 200), 0);
        }
    }

    #[test]
    fn followers_waiting_in_sync_get_the_leaders_assignment() {
        let mut c = coordinator();
        let a = joins(&c.join(1, req("", None), 0))[0].1.member_id.clone();
        let b = joins(&c.join(2, req("", None), 0))[0].1.member_id.clone();
        c.join(1, req(&a, None), 0);
        c.join(2, req(&b, None), 0);
        let done = joins(&c.tick(100));
        let leader = done[0].1.leader.clone();
        let follower = if leader == a { b.clone() } else { a.clone() };
        assert!(
            c.sync(10, "g", 1, &follower, None, None, None, vec![], 100)
                .is_empty(),
            "follower waits"
        );
        let fx = c.sync(
            11,
            "g",
            1,
            &leader,
            None,
            None,
            None,
            vec![(follower.clone(), Bytes::from_static(b"F"))],
            100,
        );
        let got = syncs(&fx);
        assert!(got.contains(&(
            10,
            SyncResult {
                error: 0,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"F")
            }
        )));
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::Persist(s) if s.generation == 1 && s.members.len() == 2)));
    }

    #[test]
    fn heartbeat_fencing_errors() {
        let mut c = coordinator();
        let (gen, ids) = stable_group(&mut c, 2);
        assert_eq!(
            c.heartbeat("g", gen, "nobody", None, 1),
            E(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.heartbeat("other", gen, &ids[0], None, 1),
            E(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.heartbeat("g", gen + 1, &ids[0], None, 1),
            E(ResponseError::IllegalGeneration)
        );
        // A new member starts a rebalance: old members are told to rejoin.
        c.join(7, req("", None), 1);
        let newcomer = joins(&c.join(7, req("", None), 1))[0].1.member_id.clone();
        c.join(8, req(&newcomer, None), 1);
        assert_eq!(
            c.heartbeat("g", gen, &ids[0], None, 2),
            E(ResponseError::RebalanceInProgress)
        );
    }

    #[test]
    fn sync_fencing_errors() {
        let mut c = coordinator();
        let (gen, ids) = stable_group(&mut c, 2);
        let e = |fx: Effects| syncs(&fx)[0].1.error;
        assert_eq!(
            e(c.sync(1, "g", gen, "nobody", None, None, None, vec![], 1)),
            E(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            e(c.sync(1, "g", gen - 1, &ids[1], None, None, None, vec![], 1)),
            E(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            e(c.sync(1, "g", gen, &ids[1], None, Some("connect"), None, vec![], 1)),
            E(ResponseError::InconsistentGroupProtocol)
        );
        assert_eq!(
            e(c.sync(1, "g", gen, &ids[1], None, None, None, vec![], 1)),
            0
        );
    }

    #[test]
    fn joins_are_validated() {
        let mut c = coordinator();
        let r = |fx: Effects| joins(&fx)[0].1.error;
        let mut bad = req("", None);
        bad.session_timeout_ms = 10;
        assert_eq!(
            r(c.join(1, bad, 0)),
            E(ResponseError::InvalidSessionTimeout)
        );
        let mut bad = req("", None);
        bad.group_id.clear();
        assert_eq!(r(c.join(1, bad, 0)), E(ResponseError::InvalidGroupId));
        stable_group(&mut c, 1);
        let mut other = req("", None);
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert_eq!(
            r(c.join(1, other, 0)),
            E(ResponseError::InconsistentGroupProtocol)
        );
        assert_eq!(
            r(c.join(1, req("made-up", None), 0)),
            E(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn an_expired_session_removes_the_member_and_rebalances() {
        let mut c = coordinator();
        let (gen, ids) = stable_group(&mut c, 2);
        // Only the first member keeps heartbeating.
        assert_eq!(c.heartbeat("g", gen, &ids[0], None, 9_000), 0);
        c.tick(10_100);
        assert_eq!(
            c.heartbeat("g", gen, &ids[1], None, 10_100),
            E(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.heartbeat("g", gen, &ids[0], None, 10_100),
            E(ResponseError::RebalanceInProgress)
        );
        let done = joins(&c.join(5, req(&ids[0], None), 10_200));
        assert_eq!(done[0].1.generation, gen + 1);
        assert_eq!(done[0].1.members.len(), 1);
    }

    #[test]
    fn members_that_do_not_rejoin_in_time_are_dropped() {
        let mut c = coordinator();
        let (gen, ids) = stable_group(&mut c, 2);
        c.leave("g", &[(ids[1].clone(), None)], 1_000);
        // Rebalance started; member 0 never rejoins, keeps heartbeating.
        assert_eq!(
            c.heartbeat("g", gen, &ids[0], None, 1_000),
            E(ResponseError::RebalanceInProgress)
        );
        c.tick(1_000 + 30_000);
        assert_eq!(c.state("g"), Some(GroupState::Empty));
    }

    #[test]
    fn a_new_join_voids_pending_syncs() {
        let mut c = coordinator();
        let a = joins(&c.join(1, req("", None), 0))[0].1.member_id.clone();
        let b = joins(&c.join(2, req("", None), 0))[0].1.member_id.clone();
        c.join(1, req(&a, None), 0);
        c.join(2, req(&b, None), 0);
        let leader = joins(&c.tick(100))[0].1.leader.clone();
        let follower = if leader == a { b } else { a };
        assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
        assert!(
            c.sync(5, "g", 1, &follower, None, None, None, vec![], 100)
                .is_empty(),
            "follower waits for the leader"
        );
        let mut newcomer = req("", None);
        newcomer.require_known_member_id = false;
        let fx = c.join(6, newcomer, 100);
        assert!(
            syncs(&fx)
                .iter()
                .any(|(w, r)| *w == 5 && r.error == E(ResponseError::RebalanceInProgress)),
            "{fx:?}"
        );
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    }

    #[test]
    fn static_members_rejoin_without_a_rebalance_and_fence_the_old_id() {
        let mut c = coordinator();
        let first = joins(&c.join(1, req("", Some("i-1")), 0));
        assert_eq!(
            first.len(),
            0,
            "static members skip MEMBER_ID_REQUIRED and wait for the delay"
        );
        let done = joins(&c.tick(100));
        let (old_id, gen) = (done[0].1.member_id.clone(), done[0].1.generation);
        c.sync(
            2,
            "g",
            gen,
            &old_id,
            Some("i-1"),
            None,
            None,
            vec![(old_id.clone(), Bytes::from_static(b"A"))],
            100,
        );
        // The process restarts and rejoins with the same instance id.
        let fx = c.join(3, req("", Some("i-1")), 200);
        let (_, r) = joins(&fx).into_iter().find(|(w, _)| *w == 3).unwrap();
        assert_eq!(
            (r.error, r.generation),
            (0, gen),
            "same generation: no rebalance"
        );
        assert_ne!(r.member_id, old_id);
        assert_eq!(c.state("g"), Some(GroupState::Stable));
        assert_eq!(
            c.heartbeat("g", gen, &old_id, Some("i-1"), 201),
            E(ResponseError::FencedInstanceId)
        );
        assert_eq!(c.heartbeat("g", gen, &r.member_id, Some("i-1"), 201), 0);
        let sync = syncs(&c.sync(
            4,
            "g",
            gen,
            &r.member_id,
            Some("i-1"),
            None,
            None,
            vec![],
            202,
        ));
        assert_eq!(
            sync[0].1.assignment,
            Bytes::from_static(b"A"),
            "keeps its assignment"
        );
    }

    #[test]
    fn leave_by_member_and_by_instance() {
        let mut c = coordinator();
        let (_, ids) = stable_group(&mut c, 2);
        let (_, codes, _) = c.leave("g", &[(ids[1].clone(), None), ("ghost".into(), None)], 1);
        assert_eq!(codes, vec![0, E(ResponseError::UnknownMemberId)]);
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    }

    #[test]
    fn offset_commit_rules() {
        let mut c = coordinator();
        assert_eq!(c.check_commit("solo", -1, "", None, 0), Ok(()));
        let (gen, ids) = stable_group(&mut c, 1);
        assert_eq!(
            c.check_commit("g", -1, "", None, 1),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.check_commit("g", gen, "ghost", None, 1),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.check_commit("g", gen + 1, &ids[0], None, 1),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(c.check_commit("g", gen, &ids[0], None, 1), Ok(()));
    }

    #[test]
    fn only_empty_groups_can_be_deleted() {
        let mut c = coordinator();
        assert_eq!(c.delete("nope"), Err(ResponseError::GroupIdNotFound));
        let (_, ids) = stable_group(&mut c, 1);
        assert_eq!(c.delete("g"), Err(ResponseError::NonEmptyGroup));
        c.leave("g", &[(ids[0].clone(), None)], 1);
        c.tick(1);
        assert_eq!(c.state("g"), Some(GroupState::Empty));
        assert_eq!(c.delete("g"), Ok(()));
    }

    #[test]
    fn subscriptions_are_parsed_for_offset_delete() {
        // version 0, topics ["a", "bc"], no user data
        let meta = [0, 0, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0, 0, 0, 0];
        assert_eq!(
            consumer_subscription_topics(&meta),
            vec!["a".to_string(), "bc".to_string()]
        );
        assert!(consumer_subscription_topics(&[0, 0, 0xff]).is_empty());
    }
}

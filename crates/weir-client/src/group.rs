//! Membership of a classic group with any protocol type (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup), for the members librdkafka cannot
//! be: Kafka Connect workers (protocol type `connect`) and anything else
//! that assigns its own kind of work through the group coordinator.
//!
//! The member speaks to the coordinator on a connection of its own, one
//! request at a time; the caller drives the loop (join, sync, heartbeat
//! every `heartbeat.interval.ms`, rejoin when told to) and decides what the
//! protocol metadata and assignments mean.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::connect_any;
use crate::conn::{ClientConfig, Conn};
use crate::error::{check, ClientError};
use crate::Result;

/// Kafka's error codes a member acts on.
pub mod codes {
    /// The coordinator is loading or moved: look it up again.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// No coordinator right now: look it up again.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// This broker is not the coordinator: look it up again.
    pub const NOT_COORDINATOR: i16 = 16;
    /// The generation moved on: rejoin.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// The member was removed: rejoin with no member id.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// A rebalance started: rejoin.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// JoinGroup v4+: retry with the member id the answer carries.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// What a JoinGroup round gave this member.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The new generation.
    pub generation_id: i32,
    /// The protocol the coordinator chose among every member's.
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Every member's metadata for the chosen protocol (leader only).
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    /// Whether this member leads the generation and assigns the work.
    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

/// A member of one group, on a connection to its coordinator.
#[derive(Debug)]
pub struct GroupMember {
    bootstrap: String,
    config: ClientConfig,
    conn: Option<Conn>,
    group_id: String,
    protocol_type: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    member_id: String,
    generation_id: i32,
}

/// Whether `e` means the coordinator must be looked up again.
pub fn coordinator_lost(e: &ClientError) -> bool {
    match e {
        ClientError::Kafka { code, .. } => matches!(
            *code,
            codes::NOT_COORDINATOR
                | codes::COORDINATOR_NOT_AVAILABLE
                | codes::COORDINATOR_LOAD_IN_PROGRESS
        ),
        ClientError::Io { .. } | ClientError::Timeout { .. } | ClientError::Connect { .. } => true,
        _ => false,
    }
}

impl GroupMember {
    /// A member of `group_id` with `protocol_type` (e.g. `connect`); no
    /// connection is made until the first request.
    pub fn new(
        bootstrap: &str,
        config: ClientConfig,
        group_id: &str,
        protocol_type: &str,
        session_timeout: Duration,
        rebalance_timeout: Duration,
    ) -> Self {
        Self {
            bootstrap: bootstrap.to_string(),
            config,
            conn: None,
            group_id: group_id.to_string(),
            protocol_type: protocol_type.to_string(),
            session_timeout,
            rebalance_timeout,
            member_id: String::new(),
            generation_id: -1,
        }
    }

    /// This member's id (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation of the last successful join (-1 before).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Forgets the member id, after UNKNOWN_MEMBER_ID.
    pub fn reset_member_id(&mut self) {
        self.member_id.clear();
        self.generation_id = -1;
    }

    /// Drops the coordinator connection; the next request looks it up.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// The coordinator's connection, looked up and opened when missing.
    async fn coordinator(&mut self) -> Result<&mut Conn> {
        if self.conn.is_none() {
            let mut boot = connect_any(&self.bootstrap, &self.config).await?;
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(self.group_id.clone()))
                .with_key_type(0);
            // v3 answers one coordinator with its address, enough here.
            let resp = boot.send(req, 3, self.config.timeout).await?;
            check(
                resp.error_code,
                &format!("cannot find the coordinator of group `{}`", self.group_id),
                resp.error_message.as_deref(),
            )?;
            let addr = format!("{}:{}", resp.host, resp.port);
            // A single broker behind a forwarded port is often reachable
            // only at the bootstrap address: reuse that connection then.
            let conn = if addr == boot.addr {
                boot
            } else {
                match Conn::open(&addr, &self.config).await {
                    Ok(c) => c,
                    Err(_) => boot,
                }
            };
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or(ClientError::UnknownNode(-1))
    }

    /// A lost coordinator drops the connection, so the next request looks
    /// it up again.
    fn after<T>(&mut self, r: &Result<T>) {
        if let Err(e) = r {
            if coordinator_lost(e) {
                self.conn = None;
            }
        }
    }

    /// JoinGroup with `protocols` (name and metadata, in preference order).
    /// Waits for the rebalance to complete (up to the rebalance timeout).
    pub async fn join(&mut self, protocols: &[(String, Bytes)]) -> Result<Joined> {
        let r = self.join_inner(protocols).await;
        self.after(&r);
        r
    }

    async fn join_inner(&mut self, protocols: &[(String, Bytes)]) -> Result<Joined> {
        let wait = self.rebalance_timeout + self.config.timeout;
        for _ in 0..3 {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
                .with_session_timeout_ms(millis(self.session_timeout))
                .with_rebalance_timeout_ms(millis(self.rebalance_timeout))
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_protocol_type(StrBytes::from_string(self.protocol_type.clone()))
                .with_protocols(
                    protocols
                        .iter()
                        .map(|(name, meta)| {
                            JoinGroupRequestProtocol::default()
                                .with_name(StrBytes::from_string(name.clone()))
                                .with_metadata(meta.clone())
                        })
                        .collect(),
                );
            let group = self.group_id.clone();
            let resp = self.coordinator().await?.send(req, 7, wait).await?;
            if resp.error_code == codes::MEMBER_ID_REQUIRED {
                self.member_id = resp.member_id.to_string();
                continue;
            }
            if resp.error_code == codes::UNKNOWN_MEMBER_ID {
                self.reset_member_id();
            }
            check(resp.error_code, &format!("joining group `{group}`"), None)?;
            self.member_id = resp.member_id.to_string();
            self.generation_id = resp.generation_id;
            return Ok(Joined {
                generation_id: resp.generation_id,
                protocol: resp
                    .protocol_name
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                leader: resp.leader.to_string(),
                member_id: resp.member_id.to_string(),
                members: resp
                    .members
                    .into_iter()
                    .map(|m| (m.member_id.to_string(), m.metadata))
                    .collect(),
            });
        }
        Err(ClientError::Protocol {
            addr: self.bootstrap.clone(),
            reason: "the coordinator kept asking for a member id".into(),
        })
    }

    /// SyncGroup: the leader passes every member's assignment, the others
    /// none; each gets its own back.
    pub async fn sync(
        &mut self,
        protocol: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes> {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(Some(StrBytes::from_string(self.protocol_type.clone())))
            .with_protocol_name(Some(StrBytes::from_string(protocol.to_string())))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        let wait = self.rebalance_timeout + self.config.timeout;
        let group = self.group_id.clone();
        let r = async {
            let resp = self.coordinator().await?.send(req, 5, wait).await?;
            check(resp.error_code, &format!("syncing group `{group}`"), None)?;
            Ok(resp.assignment)
        }
        .await;
        self.after(&r);
        r
    }

    /// Heartbeat: `Ok` while the generation stands; REBALANCE_IN_PROGRESS,
    /// ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID mean rejoin.
    pub async fn heartbeat(&mut self) -> Result<()> {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let t = self.config.timeout;
        let group = self.group_id.clone();
        let r = async {
            let resp = self.coordinator().await?.send(req, 4, t).await?;
            check(
                resp.error_code,
                &format!("heartbeat in group `{group}`"),
                None,
            )
        }
        .await;
        if let Err(ClientError::Kafka {
            code: codes::UNKNOWN_MEMBER_ID,
            ..
        }) = &r
        {
            self.reset_member_id();
        }
        self.after(&r);
        r
    }

    /// LeaveGroup, so the others rebalance at once instead of after the
    /// session timeout.
    pub async fn leave(&mut self) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let member = StrBytes::from_string(self.member_id.clone());
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_member_id(member.clone())
            .with_members(vec![MemberIdentity::default().with_member_id(member)]);
        let t = self.config.timeout;
        let resp = self.coordinator().await?.send(req, 4, t).await?;
        self.reset_member_id();
        check(resp.error_code, "leaving the group", None)
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

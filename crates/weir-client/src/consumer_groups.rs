//! Consumer groups: listing, describing (members and assignments of both
//! the classic protocol and KIP-848's), committed offsets, deletion, and
//! offset resets as `kafka-consumer-groups.sh` does them.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::error::{check, error_text, ClientError};
use crate::topics::topic_name;
use crate::{Admin, Result, EARLIEST, LATEST};

fn gid(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    /// The state (`Stable`, `Empty`, ...), empty when the broker does not say.
    pub state: String,
    /// `consumer`, `connect`, ... (empty for groups without members).
    pub protocol_type: String,
    /// `classic`, `consumer` or `share` (ListGroups v5); empty when the
    /// broker does not say.
    pub group_type: String,
}

/// Which group protocol a group speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup.
    Classic,
    /// KIP-848's ConsumerGroupHeartbeat.
    Consumer,
}

/// A group's state and members.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    /// The classic protocol's spelling: `Stable`, `Empty`, `Dead`, ...
    pub state: String,
    pub protocol: GroupProtocol,
    /// `consumer`, `connect`, ...
    pub protocol_type: String,
    /// The assignor (`range`, `cooperative-sticky`, `uniform`, ...).
    pub assignor: String,
    /// The broker coordinating the group.
    pub coordinator: i32,
    pub members: Vec<MemberDescription>,
}

/// One member of a group.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    /// `group.instance.id` of static members.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Assigned (topic, partition)s.
    pub assignment: Vec<(String, i32)>,
    /// The member epoch (KIP-848 groups only).
    pub member_epoch: Option<i32>,
}

/// Where an offset reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetTarget {
    /// The log start offset.
    Earliest,
    /// The end of the log.
    Latest,
    /// This offset (kept within the log's start and end).
    Offset(i64),
    /// The first offset at or after this time (ms since the epoch).
    Time(i64),
    /// The committed offset moved by this much.
    Shift(i64),
}

/// One partition's new offset in a reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOffset {
    pub topic: String,
    pub partition: i32,
    /// The committed offset before the reset, if any.
    pub current: Option<i64>,
    pub new: i64,
}

/// `stable` → `Stable`, the classic protocol's spelling of states.
pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A member from the wire's (member id, client id, host).
fn member(
    [id, client, host]: [&StrBytes; 3],
    instance: Option<&StrBytes>,
    assignment: Vec<(String, i32)>,
) -> MemberDescription {
    MemberDescription {
        member_id: id.to_string(),
        instance_id: instance.map(|i| i.to_string()),
        client_id: client.to_string(),
        host: host.to_string(),
        assignment,
        member_epoch: None,
    }
}

/// The partitions in a consumer protocol assignment (version-prefixed).
fn decode_assignment(bytes: &Bytes) -> Vec<(String, i32)> {
    let mut b = bytes.clone();
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = bytes::Buf::get_i16(&mut b);
    ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
                .collect()
        })
        .unwrap_or_default()
}

impl Admin {
    /// Every group of the cluster (each broker lists those it coordinates),
    /// sorted by id.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        self.metadata(Some(&[])).await?;
        let mut groups: BTreeMap<String, GroupListing> = BTreeMap::new();
        for node in self.nodes() {
            let (resp, _) = self
                .send_to(node.id, ListGroupsRequest::default(), 5)
                .await?;
            check(resp.error_code, "cannot list groups", None)?;
            for g in resp.groups {
                groups.insert(
                    g.group_id.to_string(),
                    GroupListing {
                        group_id: g.group_id.to_string(),
                        state: g.group_state.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        group_type: g.group_type.to_string(),
                    },
                );
            }
        }
        Ok(groups.into_values().collect())
    }

    /// Describes `group`: KIP-848 groups through ConsumerGroupDescribe where
    /// the broker has it, classic groups through DescribeGroups. A group
    /// that does not exist is `Dead` with no members, as Kafka reports it.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let node = self.coordinator(group).await?;
        // A classic group is GROUP_ID_NOT_FOUND to ConsumerGroupDescribe.
        if self
            .node_supports::<ConsumerGroupDescribeRequest>(node)
            .await
        {
            let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid(group)]);
            if let Ok((resp, _)) = self.send_to(node, req, 0).await {
                if let Some(g) = resp.groups.into_iter().next() {
                    if g.error_code == 0 && !g.group_state.eq_ignore_ascii_case("dead") {
                        return Ok(GroupDescription {
                            group_id: group.to_string(),
                            state: capitalize(&g.group_state),
                            protocol: GroupProtocol::Consumer,
                            protocol_type: "consumer".into(),
                            assignor: g.assignor_name.to_string(),
                            coordinator: node,
                            members: g
                                .members
                                .iter()
                                .map(|m| {
                                    let assignment = m
                                        .assignment
                                        .topic_partitions
                                        .iter()
                                        .flat_map(|t| {
                                            t.partitions
                                                .iter()
                                                .map(|p| (t.topic_name.to_string(), *p))
                                        })
                                        .collect();
                                    MemberDescription {
                                        member_epoch: Some(m.member_epoch),
                                        ..member(
                                            [&m.member_id, &m.client_id, &m.client_host],
                                            m.instance_id.as_ref(),
                                            assignment,
                                        )
                                    }
                                })
                                .collect(),
                        });
                    }
                }
            }
        }
        let req = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
        let (resp, _) = self.send_to(node, req, 5).await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol {
                addr: self.bootstrap_addr().to_string(),
                reason: format!("no answer for group `{group}`"),
            })?;
        check(
            g.error_code,
            &format!("cannot describe group `{group}`"),
            g.error_message.as_deref(),
        )?;
        let consumer = g.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            protocol: GroupProtocol::Classic,
            protocol_type: g.protocol_type.to_string(),
            assignor: g.protocol_data.to_string(),
            coordinator: node,
            members: g
                .members
                .iter()
                .map(|m| {
                    let assignment = if consumer {
                        decode_assignment(&m.member_assignment)
                    } else {
                        Vec::new()
                    };
                    member(
                        [&m.member_id, &m.client_id, &m.client_host],
                        m.group_instance_id.as_ref(),
                        assignment,
                    )
                })
                .collect(),
        })
    }

    /// Committed offsets of `group`, by topic and partition.
    pub async fn committed_offsets(&mut self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        let node = self.coordinator(group).await?;
        let req = OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(None);
        let (resp, _) = self.send_to(node, req, 7).await?;
        check(
            resp.error_code,
            &format!("cannot fetch offsets of group `{group}`"),
            None,
        )?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` (topic, partition, offset) for `group` as an
    /// admin client does: outside any generation, so the group must have
    /// no active members.
    pub async fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<()> {
        let node = self.coordinator(group).await?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (t, p, o) in offsets {
            by_topic.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let (resp, _) = self.send_to(node, req, 8).await?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    &format!(
                        "cannot commit {}-{} for group `{group}`",
                        t.name.as_str(),
                        p.partition_index
                    ),
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// Deletes `group` (it must have no active members) and its offsets.
    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        let node = self.coordinator(group).await?;
        let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]);
        let (resp, _) = self.send_to(node, req, 2).await?;
        for r in &resp.results {
            check(
                r.error_code,
                &format!("cannot delete group `{group}`"),
                None,
            )?;
        }
        Ok(())
    }

    /// Deletes `group`'s committed offsets of the `selection` (topic, and
    /// `None` for every partition or some partitions), as
    /// `kafka-consumer-groups.sh --delete-offsets` does (OffsetDelete):
    /// refused for topics the group is consuming.
    pub async fn delete_offsets(
        &mut self,
        group: &str,
        selection: &[(String, Option<Vec<i32>>)],
    ) -> Result<()> {
        use kafka_protocol::messages::offset_delete_request::{
            OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
        };
        use kafka_protocol::messages::OffsetDeleteRequest;
        let mut topics = Vec::new();
        for (t, only) in selection {
            let parts: Vec<i32> = match only {
                Some(ps) => ps.clone(),
                None => self.partitions(t).await?.iter().map(|p| p.0).collect(),
            };
            topics.push(
                OffsetDeleteRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|p| {
                                OffsetDeleteRequestPartition::default().with_partition_index(p)
                            })
                            .collect(),
                    ),
            );
        }
        let node = self.coordinator(group).await?;
        let req = OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(topics);
        let (resp, _) = self.send_to(node, req, 0).await?;
        check(
            resp.error_code,
            &format!("cannot delete offsets of group `{group}`"),
            None,
        )?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    &format!(
                        "cannot delete the offset of {}-{} in group `{group}`",
                        t.name.as_str(),
                        p.partition_index
                    ),
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// High watermarks of every partition of `topics`; topics that no
    /// longer exist are left out.
    pub async fn end_offsets(&mut self, topics: &[String]) -> Result<HashMap<(String, i32), i64>> {
        let mut out = HashMap::new();
        for t in topics {
            let Ok(parts) = self.partitions(t).await else {
                continue;
            };
            for (p, r) in self.list_offsets(t, &parts, LATEST).await? {
                if let Ok(o) = r {
                    out.insert((t.clone(), p), o);
                }
            }
        }
        Ok(out)
    }

    /// Moves `group`'s committed offsets of the `selection` (topic, and
    /// `None` for every partition or some partitions; an empty selection
    /// means every topic the group has offsets for) to `target`, as
    /// `kafka-consumer-groups.sh --reset-offsets` does: only for a group
    /// without active members, new offsets kept within each partition's
    /// start and end. With `dry_run` nothing is committed. Returns the plan.
    pub async fn reset_offsets(
        &mut self,
        group: &str,
        selection: &[(String, Option<Vec<i32>>)],
        target: OffsetTarget,
        dry_run: bool,
    ) -> Result<Vec<PlannedOffset>> {
        let d = self.describe_group(group).await?;
        if !matches!(d.state.as_str(), "Empty" | "Dead") {
            return Err(ClientError::Conflict(format!(
                "assignments can only be reset if group `{group}` is inactive, but its state is {} ({} members); stop its consumers first",
                d.state,
                d.members.len()
            )));
        }
        let current = self.committed_offsets(group).await?;
        let plan = self
            .plan_offsets(group, selection, target, &current)
            .await?;
        if !dry_run {
            let offsets: Vec<(String, i32, i64)> = plan
                .iter()
                .map(|p| (p.topic.clone(), p.partition, p.new))
                .collect();
            self.commit_offsets(group, &offsets).await?;
        }
        Ok(plan)
    }

    /// The new offsets of an offset reset: `selection` as in
    /// [`Admin::reset_offsets`], `current` the group's offsets now (those
    /// an empty selection means, and those `Shift` moves).
    pub(crate) async fn plan_offsets(
        &mut self,
        group: &str,
        selection: &[(String, Option<Vec<i32>>)],
        target: OffsetTarget,
        current: &BTreeMap<(String, i32), i64>,
    ) -> Result<Vec<PlannedOffset>> {
        let mut wanted: Vec<(String, Option<Vec<i32>>)> = selection.to_vec();
        if wanted.is_empty() {
            let mut ts: Vec<String> = current.keys().map(|k| k.0.clone()).collect();
            ts.dedup();
            if ts.is_empty() {
                return Err(ClientError::Invalid(format!(
                    "group `{group}` has no offsets; name the topics to reset"
                )));
            }
            wanted.extend(ts.into_iter().map(|t| (t, None)));
        }
        let mut plan = Vec::new();
        for (topic, only) in wanted {
            let all = self.partitions(&topic).await?;
            let parts: Vec<(i32, i32)> = match &only {
                None => all,
                Some(ps) => {
                    if let Some(p) = ps.iter().find(|p| !all.iter().any(|a| a.0 == **p)) {
                        return Err(ClientError::Invalid(format!(
                            "topic `{topic}` has no partition {p}"
                        )));
                    }
                    all.into_iter().filter(|a| ps.contains(&a.0)).collect()
                }
            };
            let starts = self.list_offsets(&topic, &parts, EARLIEST).await?;
            let ends = self.list_offsets(&topic, &parts, LATEST).await?;
            let times = match target {
                OffsetTarget::Time(t) => Some(self.list_offsets(&topic, &parts, t).await?),
                _ => None,
            };
            let at = |m: &HashMap<i32, Result<i64, i16>>, p: i32, what: &str| -> Result<i64> {
                match m.get(&p) {
                    Some(Ok(o)) => Ok(*o),
                    Some(Err(c)) => Err(ClientError::Invalid(format!(
                        "{what} of {topic}-{p}: {}",
                        error_text(*c)
                    ))),
                    None => Err(ClientError::Invalid(format!("no {what} for {topic}-{p}"))),
                }
            };
            for &(p, _) in &parts {
                let (lo, hi) = (at(&starts, p, "start offset")?, at(&ends, p, "end offset")?);
                let cur = current.get(&(topic.clone(), p)).copied();
                let new = match target {
                    OffsetTarget::Earliest => lo,
                    OffsetTarget::Latest => hi,
                    OffsetTarget::Offset(o) => o,
                    // No record at or after the time: the end, as Kafka.
                    OffsetTarget::Time(_) => match times.as_ref().and_then(|t| t.get(&p)) {
                        Some(Ok(o)) if *o >= 0 => *o,
                        Some(Err(c)) => {
                            return Err(ClientError::Invalid(format!(
                                "offset for time of {topic}-{p}: {}",
                                error_text(*c)
                            )))
                        }
                        _ => hi,
                    },
                    OffsetTarget::Shift(n) => match cur {
                        Some(c) => c.saturating_add(n),
                        None => {
                            return Err(ClientError::Invalid(format!(
                            "group `{group}` has no committed offset for {topic}-{p} to shift from"
                        )))
                        }
                    },
                };
                plan.push(PlannedOffset {
                    topic: topic.clone(),
                    partition: p,
                    current: cur,
                    // Out-of-range offsets are clamped, as kafka-consumer-groups.sh does.
                    new: new.clamp(lo, hi),
                });
            }
        }
        Ok(plan)
    }
}

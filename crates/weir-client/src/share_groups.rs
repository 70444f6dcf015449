//! Share groups (KIP-932): describing them (ShareGroupDescribe), their
//! share-partition start offsets and lag (DescribeShareGroupOffsets), and
//! moving or deleting those offsets (AlterShareGroupOffsets,
//! DeleteShareGroupOffsets), as `kafka-share-groups.sh` does.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequest, GroupId, ShareGroupDescribeRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::consumer_groups::{capitalize, OffsetTarget, PlannedOffset};
use crate::error::{check, ClientError};
use crate::topics::topic_name;
use crate::{Admin, Result};

fn gid(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

/// A share group as ShareGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct ShareGroupDescription {
    pub group_id: String,
    /// `Stable`, `Empty`, ... (capitalized as the classic states are).
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The assignor (`simple`).
    pub assignor: String,
    /// The broker coordinating the group.
    pub coordinator: i32,
    pub members: Vec<ShareMember>,
}

/// One member of a share group.
#[derive(Debug, Clone)]
pub struct ShareMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub rack: Option<String>,
    pub member_epoch: i32,
    pub subscribed_topics: Vec<String>,
    /// Assigned (topic, partition)s; a partition may be assigned to
    /// several members of a share group.
    pub assignment: Vec<(String, i32)>,
}

/// One share-partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareOffset {
    /// The share-partition start offset: every record before it is done.
    pub start_offset: i64,
    pub leader_epoch: i32,
    /// Records not yet acknowledged (DescribeShareGroupOffsets v1,
    /// KIP-1226); `None` from brokers that do not report it.
    pub lag: Option<i64>,
}

impl Admin {
    /// Describes share group `group`; `None` when there is no share group
    /// of that id (or the broker does not serve share groups).
    pub async fn describe_share_group(
        &mut self,
        group: &str,
    ) -> Result<Option<ShareGroupDescription>> {
        let node = self.coordinator(group).await?;
        if !self.node_supports::<ShareGroupDescribeRequest>(node).await {
            return Ok(None);
        }
        let req = ShareGroupDescribeRequest::default().with_group_ids(vec![gid(group)]);
        let (resp, _) = self.send_to(node, req, 1).await?;
        let Some(g) = resp.groups.into_iter().next() else {
            return Ok(None);
        };
        if g.error_code == ResponseError::GroupIdNotFound.code()
            || g.group_state.eq_ignore_ascii_case("dead")
        {
            return Ok(None);
        }
        check(
            g.error_code,
            &format!("cannot describe share group `{group}`"),
            g.error_message.as_deref(),
        )?;
        let members = g
            .members
            .iter()
            .map(|m| ShareMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                rack: m.rack_id.as_ref().map(|r| r.to_string()),
                member_epoch: m.member_epoch,
                subscribed_topics: m
                    .subscribed_topic_names
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
                assignment: m
                    .assignment
                    .topic_partitions
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.to_string(), *p)))
                    .collect(),
            })
            .collect();
        Ok(Some(ShareGroupDescription {
            group_id: group.to_string(),
            state: capitalize(&g.group_state),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor_name.to_string(),
            coordinator: node,
            members,
        }))
    }

    /// The share-partition start offsets (and lag) of `group`: of every
    /// partition it has state for, or of every partition of `topics`.
    /// Partitions without state are left out.
    pub async fn share_group_offsets(
        &mut self,
        group: &str,
        topics: Option<&[String]>,
    ) -> Result<BTreeMap<(String, i32), ShareOffset>> {
        let node = self.coordinator(group).await?;
        let wanted = match topics {
            None => None,
            Some(ts) => {
                let mut out = Vec::new();
                for t in ts {
                    let parts = self.partitions(t).await?;
                    out.push(
                        DescribeShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(topic_name(t))
                            .with_partitions(parts.iter().map(|p| p.0).collect()),
                    );
                }
                Some(out)
            }
        };
        let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(gid(group))
                .with_topics(wanted),
        ]);
        let (resp, version) = self.send_to(node, req, 1).await?;
        let mut out = BTreeMap::new();
        for g in resp.groups {
            // A group without share-partition state does not exist yet.
            if topics.is_none() && g.error_code == ResponseError::GroupIdNotFound.code() {
                continue;
            }
            check(
                g.error_code,
                &format!("cannot describe the offsets of share group `{group}`"),
                g.error_message.as_deref(),
            )?;
            for t in g.topics {
                for p in t.partitions {
                    // No state for the partition: -1, as Kafka answers.
                    if p.start_offset < 0 {
                        continue;
                    }
                    check(
                        p.error_code,
                        &format!(
                            "offsets of {}-{} in share group `{group}`",
                            t.topic_name.as_str(),
                            p.partition_index
                        ),
                        p.error_message.as_deref(),
                    )?;
                    out.insert(
                        (t.topic_name.to_string(), p.partition_index),
                        ShareOffset {
                            start_offset: p.start_offset,
                            leader_epoch: p.leader_epoch,
                            lag: (version >= 1 && p.lag >= 0).then_some(p.lag),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Sets share-partition start offsets (topic, partition, offset) of
    /// `group`, which must have no members.
    pub async fn alter_share_group_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<()> {
        let node = self.coordinator(group).await?;
        let mut by_topic: BTreeMap<&str, Vec<AlterShareGroupOffsetsRequestPartition>> =
            BTreeMap::new();
        for (t, p, o) in offsets {
            by_topic.entry(t).or_default().push(
                AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(*p)
                    .with_start_offset(*o),
            );
        }
        let req = AlterShareGroupOffsetsRequest::default()
            .with_group_id(gid(group))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        AlterShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let (resp, _) = self.send_to(node, req, 0).await?;
        check(
            resp.error_code,
            &format!("cannot alter the offsets of share group `{group}`"),
            resp.error_message.as_deref(),
        )?;
        for t in &resp.responses {
            for p in &t.partitions {
                check(
                    p.error_code,
                    &format!(
                        "cannot alter {}-{} of share group `{group}`",
                        t.topic_name.as_str(),
                        p.partition_index
                    ),
                    p.error_message.as_deref(),
                )?;
            }
        }
        Ok(())
    }

    /// Deletes the share-partition state of `topics` in `group` (which
    /// must have no members): the group starts them afresh, by
    /// `share.auto.offset.reset`, when it next consumes them.
    pub async fn delete_share_group_offsets(
        &mut self,
        group: &str,
        topics: &[String],
    ) -> Result<()> {
        let node = self.coordinator(group).await?;
        let req = DeleteShareGroupOffsetsRequest::default()
            .with_group_id(gid(group))
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        DeleteShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(topic_name(t))
                    })
                    .collect(),
            );
        let (resp, _) = self.send_to(node, req, 0).await?;
        check(
            resp.error_code,
            &format!("cannot delete the offsets of share group `{group}`"),
            resp.error_message.as_deref(),
        )?;
        for t in &resp.responses {
            check(
                t.error_code,
                &format!(
                    "cannot delete the offsets of `{}` in share group `{group}`",
                    t.topic_name.as_str()
                ),
                t.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Moves share group `group`'s start offsets of the `selection` (as in
    /// [`Admin::reset_offsets`]; empty: every topic the group has state
    /// for) to `target`, as `kafka-share-groups.sh --reset-offsets` does:
    /// only for a group without members, new offsets kept within each
    /// partition's start and end. With `dry_run` nothing is changed.
    /// Returns the plan (`current` is the start offset before).
    pub async fn reset_share_group_offsets(
        &mut self,
        group: &str,
        selection: &[(String, Option<Vec<i32>>)],
        target: OffsetTarget,
        dry_run: bool,
    ) -> Result<Vec<PlannedOffset>> {
        if let Some(d) = self.describe_share_group(group).await? {
            if !d.members.is_empty() {
                return Err(ClientError::Conflict(format!(
                    "offsets can only be reset if share group `{group}` is inactive, but its state is {} ({} members); stop its consumers first",
                    d.state,
                    d.members.len()
                )));
            }
        }
        let current: BTreeMap<(String, i32), i64> = self
            .share_group_offsets(group, None)
            .await?
            .into_iter()
            .map(|(k, o)| (k, o.start_offset))
            .collect();
        let plan = self
            .plan_offsets(group, selection, target, &current)
            .await?;
        if !dry_run {
            let offsets: Vec<(String, i32, i64)> = plan
                .iter()
                .map(|p| (p.topic.clone(), p.partition, p.new))
                .collect();
            self.alter_share_group_offsets(group, &offsets).await?;
        }
        Ok(plan)
    }
}

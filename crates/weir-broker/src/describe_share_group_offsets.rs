//! DescribeShareGroupOffsets: each share-partition's start offset, and
//! (v1, KIP-1226) its lag.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclOperation, ResourceType};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::ResponseKind;
use weir_auth::Session;

use crate::context::{Reply, RequestContext};
use crate::groups::Groups;
use crate::security::Security;
use crate::share_session::TopicIdPartition;
use crate::shares::PartitionOffsets;
use crate::shares::Shares;
use crate::topics::Topics;

/// A group's share-partitions and their offsets, as far as asked for.
type Offsets = Option<BTreeMap<TopicIdPartition, PartitionOffsets>>;

/// Answers a DescribeShareGroupOffsets. On one node the state is in this
/// broker's memory; in a cluster the group coordinator (NOT_COORDINATOR
/// elsewhere) reads what the share-partitions' owners last persisted.
pub fn handle(
    topics: &Arc<Topics>,
    groups: &Groups,
    shares: &Arc<Shares>,
    security: &Arc<Security>,
    ctx: &RequestContext<'_>,
    r: DescribeShareGroupOffsetsRequest,
) -> Reply {
    if !shares.in_cluster() {
        let offsets = |g: &str, w: Option<&[TopicIdPartition]>| shares.offsets(g, w);
        return Reply::Ready(ResponseKind::DescribeShareGroupOffsets(describe(
            topics,
            security,
            ctx.session,
            r,
            &offsets,
            &|_| true,
        )));
    }
    let owned: HashMap<String, bool> = r
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), groups.owns(&g.group_id)))
        .collect();
    let (topics, shares, security) = (topics.clone(), shares.clone(), security.clone());
    let session = ctx.session.clone();
    Reply::Later(Box::pin(async move {
        let mut found: HashMap<String, Result<Offsets, ()>> = HashMap::new();
        for (g, owns) in &owned {
            if *owns {
                let read = shares.persisted_offsets(g, None).await.map_err(|e| {
                    tracing::warn!(group = %g, error = %e, "cannot read share group state");
                });
                found.insert(g.clone(), read);
            }
        }
        let offsets = |g: &str, w: Option<&[TopicIdPartition]>| -> Offsets {
            let all = found.get(g)?.as_ref().ok()?.as_ref()?;
            Some(match w {
                None => all.clone(),
                Some(tps) => tps
                    .iter()
                    .map(|tp| {
                        let o = all.get(tp).copied().unwrap_or(PartitionOffsets {
                            start_offset: -1,
                            lag: -1,
                        });
                        (*tp, o)
                    })
                    .collect(),
            })
        };
        let available = |g: &str| found.get(g).is_some_and(Result::is_ok);
        ResponseKind::DescribeShareGroupOffsets(describe(
            &topics, &security, &session, r, &offsets, &available,
        ))
    }))
}

/// The answer from `offsets` (a group's share-partitions; `None` if the
/// group is unknown) for the groups `coordinated` (else NOT_COORDINATOR).
/// With authorization on, each group needs DESCRIBE and each topic
/// DESCRIBE (topics without it are left out of "all", or fail with
/// TOPIC_AUTHORIZATION_FAILED when named).
fn describe(
    topics: &Topics,
    security: &Security,
    session: &Session,
    r: DescribeShareGroupOffsetsRequest,
    offsets: &dyn Fn(&str, Option<&[TopicIdPartition]>) -> Offsets,
    coordinated: &dyn Fn(&str) -> bool,
) -> DescribeShareGroupOffsetsResponse {
    let describable =
        |t: &str| security.is_authorized(session, AclOperation::Describe, ResourceType::Topic, t);
    let groups = r
        .groups
        .into_iter()
        .map(|g| {
            let out =
                DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
            if !security.authorize(
                session,
                AclOperation::Describe,
                ResourceType::Group,
                &g.group_id,
            ) {
                return out.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let group = g.group_id.to_string();
            if !coordinated(&group) {
                return out.with_error_code(ResponseError::NotCoordinator.code());
            }
            let partition = |p: i32, o: PartitionOffsets| {
                DescribeShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p)
                    .with_start_offset(o.start_offset)
                    .with_leader_epoch(crate::LEADER_EPOCH)
                    .with_lag(o.lag)
            };
            let topics: Vec<DescribeShareGroupOffsetsResponseTopic> = match g.topics {
                Some(wanted) => {
                    let mut out_topics = Vec::new();
                    for t in wanted {
                        let name = t.topic_name.to_string();
                        let topic = topics.topic(&name);
                        let error = if !describable(&name) {
                            Some(ResponseError::TopicAuthorizationFailed)
                        } else if topic.is_none() {
                            Some(ResponseError::UnknownTopicOrPartition)
                        } else {
                            None
                        };
                        let id = topic.as_ref().map(|t| t.id).unwrap_or_default();
                        let tps: Vec<(uuid::Uuid, i32)> =
                            t.partitions.iter().map(|p| (id, *p)).collect();
                        let found = match error {
                            None => offsets(&group, Some(&tps)),
                            Some(_) => None,
                        };
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|&p| match (error, &found) {
                                (Some(e), _) => partition(
                                    p,
                                    PartitionOffsets {
                                        start_offset: -1,
                                        lag: -1,
                                    },
                                )
                                .with_error_code(e.code()),
                                (None, Some(f)) => partition(p, f[&(id, p)]),
                                (None, None) => partition(
                                    p,
                                    PartitionOffsets {
                                        start_offset: -1,
                                        lag: -1,
                                    },
                                ),
                            })
                            .collect();
                        out_topics.push(
                            DescribeShareGroupOffsetsResponseTopic::default()
                                .with_topic_name(t.topic_name)
                                .with_topic_id(id)
                                .with_partitions(partitions),
                        );
                    }
                    out_topics
                }
                None => {
                    let Some(all) = offsets(&group, None) else {
                        return out
                            .with_error_code(ResponseError::GroupIdNotFound.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Group {group} not found."
                            ))));
                    };
                    let mut by_topic: Vec<DescribeShareGroupOffsetsResponseTopic> = Vec::new();
                    for ((id, p), o) in all {
                        let Some(name) = topics.topic_by_id(&id).map(|t| t.name.clone()) else {
                            continue;
                        };
                        if !describable(&name) {
                            continue;
                        }
                        match by_topic.iter_mut().find(|t| t.topic_id == id) {
                            Some(t) => t.partitions.push(partition(p, o)),
                            None => by_topic.push(
                                DescribeShareGroupOffsetsResponseTopic::default()
                                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                                    .with_topic_id(id)
                                    .with_partitions(vec![partition(p, o)]),
                            ),
                        }
                    }
                    by_topic
                }
            };
            out.with_topics(topics)
        })
        .collect();
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

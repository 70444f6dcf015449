//! OffsetCommit: store consumer positions, answered once durable.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::{Reply, RequestContext};
use crate::group_store::Committed;
use crate::groups::Groups;
use crate::node::Node;
use crate::security::Security;
use crate::topics::Topics;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers an OffsetCommit request. With authorization on, the group
/// needs READ (else every partition fails with GROUP_AUTHORIZATION_FAILED)
/// and each topic READ (else TOPIC_AUTHORIZATION_FAILED for its
/// partitions, whose offsets are not committed).
pub fn handle(
    topics: &Topics,
    groups: &Arc<Groups>,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    r: OffsetCommitRequest,
) -> Reply {
    let (version, session) = (ctx.version, ctx.session);
    let refused = if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else if !groups.owns(&r.group_id) {
        // In a cluster, the group's coordinator is another broker now.
        Some(ResponseError::NotCoordinator)
    } else {
        None
    };
    if let Some(refused) = refused {
        let topics = r
            .topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(refused.code())
                            })
                            .collect(),
                    )
            })
            .collect();
        return Reply::Ready(ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(topics),
        ));
    }
    let mut denied = std::collections::HashSet::new();
    let now = node.now_ms();
    // v10 names topics by id.
    let mut names = Vec::with_capacity(r.topics.len());
    let mut entries = Vec::new();
    let mut unknown_ids = Vec::new();
    for t in &r.topics {
        let name = if version >= 10 {
            topics.topic_by_id(&t.topic_id).map(|t| t.name.clone())
        } else {
            Some(t.name.to_string())
        };
        names.push(name.clone());
        if let Some(n) = &name {
            if !security.authorize(session, AclOperation::Read, ResourceType::Topic, n) {
                denied.insert(n.clone());
                continue;
            }
        }
        for p in &t.partitions {
            match &name {
                Some(n) => entries.push((
                    n.clone(),
                    p.partition_index,
                    Committed {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        commit_timestamp: now,
                    },
                )),
                None => unknown_ids.push((t.topic_id, p.partition_index)),
            }
        }
    }
    let (outcome, wait) = if entries.is_empty() && !denied.is_empty() {
        (Vec::new(), None)
    } else {
        groups.commit(
            &r.group_id,
            if version >= 1 {
                r.generation_id_or_member_epoch
            } else {
                -1
            },
            &r.member_id,
            r.group_instance_id.as_deref(),
            entries,
            None,
        )
    };
    let topics: Vec<OffsetCommitResponseTopic> = r
        .topics
        .iter()
        .zip(names)
        .map(|(t, name)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match &name {
                        None => ResponseError::UnknownTopicId.code(),
                        Some(n) if denied.contains(n) => {
                            ResponseError::TopicAuthorizationFailed.code()
                        }
                        Some(n) => outcome
                            .iter()
                            .find(|(ot, op, _)| ot == n && *op == p.partition_index)
                            .map_or(ResponseError::UnknownServerError.code(), |o| o.2),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.unwrap_or_default())))
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    let resp = OffsetCommitResponse::default().with_topics(topics);
    let (groups, group_id) = (groups.clone(), r.group_id.to_string());
    match wait {
        None => Reply::Ready(ResponseKind::OffsetCommit(resp)),
        Some(wait) => Reply::Later(Box::pin(async move {
            let owned = || groups.owns(&group_id);
            let mut resp = resp;
            if let Err(e) = wait.await {
                tracing::error!(error = %e, "offset commit not durable");
                // Refused by the lease fence: the coordinator moved.
                let code = if owned() {
                    ResponseError::KafkaStorageError.code()
                } else {
                    ResponseError::NotCoordinator.code()
                };
                for p in resp
                    .topics
                    .iter_mut()
                    .flat_map(|t| t.partitions.iter_mut())
                    .filter(|p| p.error_code == 0)
                {
                    p.error_code = code;
                }
            }
            ResponseKind::OffsetCommit(resp)
        })),
    }
}

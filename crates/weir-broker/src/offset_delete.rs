//! OffsetDelete: drop a group's committed offsets for some partitions.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers an OffsetDelete request. Partitions of topics the group is
/// subscribed to get GROUP_SUBSCRIBED_TO_TOPIC, as in Kafka.
///
/// With authorization on, the group needs DELETE and each topic READ.
pub fn handle(
    groups: &Groups,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Delete,
        ResourceType::Group,
        &r.group_id,
    ) {
        return OffsetDeleteResponse::default().with_error_code(
            kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code(),
        );
    }
    // In a cluster, only the broker holding the group's coordinator
    // lease serves it; the client finds the new one.
    if !groups.owns(&r.group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::NotCoordinator.code());
    }
    let mut denied_topics = std::collections::HashSet::new();
    for t in &r.topics {
        if !security.authorize(session, AclOperation::Read, ResourceType::Topic, &t.name) {
            denied_topics.insert(t.name.to_string());
        }
    }
    let parts: Vec<(String, i32)> = r
        .topics
        .iter()
        .filter(|t| !denied_topics.contains(t.name.as_str()))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let mut result = if parts.is_empty() && !denied_topics.is_empty() {
        Vec::new()
    } else {
        match groups.delete_offsets(&r.group_id, parts) {
            Ok(r) => r,
            Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        }
    };
    for t in r
        .topics
        .iter()
        .filter(|t| denied_topics.contains(t.name.as_str()))
    {
        for p in &t.partitions {
            result.push((
                t.name.to_string(),
                p.partition_index,
                kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code(),
            ));
        }
    }
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (t, p, code) in result {
        if topics.last().is_none_or(|x| x.name.as_str() != t) {
            topics.push(
                OffsetDeleteResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))),
            );
        }
        if let Some(last) = topics.last_mut() {
            last.partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(code),
            );
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

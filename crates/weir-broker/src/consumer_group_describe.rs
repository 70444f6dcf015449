//! ConsumerGroupDescribe: KIP-848 groups with epochs and assignments.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::consumer_group::Assignment;
use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use crate::topics::Topics;
use weir_auth::acl::{AclOperation, ResourceType};

/// `member_type` of a consumer-protocol member.
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// An assignment with each topic's name, as the describe APIs show it.
pub(crate) fn named(topics: &Topics, a: Assignment) -> Vec<(uuid::Uuid, TopicName, Vec<i32>)> {
    a.into_iter()
        .map(|(id, ps)| {
            let name = topics
                .topic_by_id(&id)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            (
                id,
                TopicName(StrBytes::from_string(name)),
                ps.into_iter().collect(),
            )
        })
        .collect()
}

fn wire(topics: &Topics, a: Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        named(topics, a)
            .into_iter()
            .map(|(id, name, ps)| {
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(name)
                    .with_partitions(ps)
            })
            .collect(),
    )
}

/// Answers a ConsumerGroupDescribe request.
///
/// With authorization on, each group needs DESCRIBE.
pub fn handle(
    topics: &Topics,
    groups: &Groups,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let session = ctx.session;
    let include_ops = r.include_authorized_operations;
    let groups = r
        .group_ids
        .into_iter()
        .map(|id| {
            let out = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if !security.authorize(session, AclOperation::Describe, ResourceType::Group, &id) {
                return out.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if !groups.owns(&id) {
                return out.with_error_code(ResponseError::NotCoordinator.code());
            }
            let out = if include_ops {
                out.with_authorized_operations(security.authorized_operations(
                    session,
                    ResourceType::Group,
                    &id,
                ))
            } else {
                out
            };
            let Some(g) = groups.consumer_describe(&id) else {
                return out
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "group `{}` is not a consumer-protocol group",
                        id.as_str()
                    ))));
            };
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_rack_id(m.rack_id.map(StrBytes::from_string))
                        .with_member_epoch(m.epoch)
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed
                                .into_iter()
                                .map(|t| TopicName(StrBytes::from_string(t)))
                                .collect(),
                        )
                        .with_assignment(wire(topics, m.assigned))
                        .with_target_assignment(wire(topics, m.target))
                        .with_member_type(MEMBER_TYPE_CONSUMER)
                })
                .collect();
            out.with_group_state(StrBytes::from_static_str(g.state))
                .with_group_epoch(g.epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(StrBytes::from_string(g.assignor))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

//! ShareGroupDescribe: a share group's state, epochs and members with
//! their assignments.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclOperation, ResourceType};

use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use crate::share_group::{Assignment as Partitions, ASSIGNOR};
use crate::shares::Shares;
use crate::topics::Topics;

fn assignment(topics: &Topics, a: Partitions) -> Assignment {
    Assignment::default().with_topic_partitions(
        crate::consumer_group_describe::named(topics, a)
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

/// Answers a ShareGroupDescribe. With authorization on, each group needs
/// DESCRIBE, and the topics its members subscribe to need DESCRIBE too.
pub fn handle(
    topics: &Topics,
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let session = ctx.session;
    let groups = r
        .group_ids
        .into_iter()
        .map(|id| {
            let out = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            let fail = |e: ResponseError, msg: String| {
                out.clone()
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(msg)))
            };
            if !security.authorize(session, AclOperation::Describe, ResourceType::Group, &id) {
                return fail(ResponseError::GroupAuthorizationFailed, String::new());
            }
            if !groups.owns(&id) {
                return fail(
                    ResponseError::NotCoordinator,
                    format!("this broker does not coordinate {}", id.as_str()),
                );
            }
            let Some(g) = shares.describe(&id) else {
                let msg = if groups.exists(&id) {
                    format!("Group {} is not a share group.", id.as_str())
                } else {
                    format!("Group {} not found.", id.as_str())
                };
                return fail(ResponseError::GroupIdNotFound, msg);
            };
            let hidden = g.members.iter().flat_map(|m| &m.subscribed).any(|t| {
                !security.is_authorized(session, AclOperation::Describe, ResourceType::Topic, t)
            });
            if hidden {
                return fail(
                    ResponseError::TopicAuthorizationFailed,
                    "the group subscribes to topics this principal may not describe".into(),
                );
            }
            let out = if r.include_authorized_operations {
                out.with_authorized_operations(security.authorized_operations(
                    session,
                    ResourceType::Group,
                    &id,
                ))
            } else {
                out
            };
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
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
                        .with_assignment(assignment(topics, m.assigned))
                })
                .collect();
            out.with_group_state(StrBytes::from_static_str(g.state))
                .with_group_epoch(g.epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(StrBytes::from_static_str(ASSIGNOR))
                .with_members(members)
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

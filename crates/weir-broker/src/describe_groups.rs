//! DescribeGroups: state, protocol and members of classic groups.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::group_coordinator::GroupState;
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::Shares;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a DescribeGroups request.
///
/// With authorization on, each group needs DESCRIBE.
pub fn handle(
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version;
    let session = ctx.session;
    let include_ops = r.include_authorized_operations;
    let groups = r
        .groups
        .into_iter()
        .map(|id| {
            if !security.authorize(session, AclOperation::Describe, ResourceType::Group, &id) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                    .with_authorized_operations(i32::MIN);
            }
            if !groups.owns(&id) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::NotCoordinator.code())
                    .with_authorized_operations(i32::MIN);
            }
            let ops = if include_ops {
                security.authorized_operations(session, ResourceType::Group, &id)
            } else {
                i32::MIN
            };
            let d = groups.describe(&id);
            let out = DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str(d.state.name()))
                .with_protocol_type(StrBytes::from_string(d.protocol_type))
                .with_protocol_data(StrBytes::from_string(d.protocol))
                .with_authorized_operations(ops);
            // KIP-1043: v6 reports an unknown group as such; older
            // versions describe it as Dead with no error.
            if d.state == GroupState::Dead && version >= 6 {
                let msg = if shares.contains(out.group_id.as_str()) {
                    format!("Group {} is not a classic group.", out.group_id.as_str())
                } else {
                    "group not found".to_string()
                };
                return out
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(msg)));
            }
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            out.with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

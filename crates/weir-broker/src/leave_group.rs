//! LeaveGroup: one member (v0-2) or a batch (v3+, KIP-345).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a LeaveGroup request.
pub fn handle(
    groups: &Groups,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = ctx.version;
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        return LeaveGroupResponse::default().with_error_code(
            kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code(),
        );
    }
    // In a cluster, only the broker holding the group's coordinator
    // lease serves it; the client finds the new one.
    if !groups.owns(&r.group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::NotCoordinator.code());
    }
    if version < 3 {
        let (_, codes) = groups.leave(&r.group_id, &[(r.member_id.to_string(), None)]);
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    let members: Vec<(String, Option<String>)> = r
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|i| i.to_string()),
            )
        })
        .collect();
    let (top, codes) = groups.leave(&r.group_id, &members);
    let members = r
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(top)
        .with_members(members)
}

//! Heartbeat: keeps a member's session alive and tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a Heartbeat request.
pub fn handle(
    groups: &Groups,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: HeartbeatRequest,
) -> HeartbeatResponse {
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        return HeartbeatResponse::default().with_error_code(
            kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code(),
        );
    }
    // In a cluster, only the broker holding the group's coordinator
    // lease serves it; the client finds the new one.
    if !groups.owns(&r.group_id) {
        return HeartbeatResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::NotCoordinator.code());
    }
    let code = groups.heartbeat(
        &r.group_id,
        r.generation_id,
        &r.member_id,
        r.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code)
}

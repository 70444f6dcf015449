//! SyncGroup: the leader hands out assignments; followers wait for them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::Reply;
use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a SyncGroup request once the leader's assignment is in.
pub fn handle(
    groups: &Groups,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: SyncGroupRequest,
) -> Reply {
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        return Reply::Ready(ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
        ));
    }
    // In a cluster, only the broker holding the group's coordinator
    // lease serves it; the client finds the new one.
    if !groups.owns(&r.group_id) {
        return Reply::Ready(ResponseKind::SyncGroup(
            SyncGroupResponse::default().with_error_code(ResponseError::NotCoordinator.code()),
        ));
    }
    let assignments = r
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let rx = groups.sync(
        &r.group_id,
        r.generation_id,
        &r.member_id,
        r.group_instance_id.as_deref(),
        r.protocol_type.as_deref(),
        r.protocol_name.as_deref(),
        assignments,
    );
    Reply::Later(Box::pin(async move {
        let resp = match rx.await {
            Ok(s) => SyncGroupResponse::default()
                .with_error_code(s.error)
                .with_protocol_type(s.protocol_type.map(StrBytes::from_string))
                .with_protocol_name(s.protocol_name.map(StrBytes::from_string))
                .with_assignment(s.assignment),
            Err(_) => SyncGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
        };
        ResponseKind::SyncGroup(resp)
    }))
}

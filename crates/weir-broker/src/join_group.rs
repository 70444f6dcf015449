//! JoinGroup: the response waits for the rebalance to complete.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::context::{Reply, RequestContext};
use crate::group_coordinator::{JoinRequest, JoinResult};
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::Shares;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a JoinGroup request once the group's rebalance completes.
pub fn handle(
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: JoinGroupRequest,
) -> Reply {
    let (version, session) = (ctx.version, ctx.session);
    if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        return Reply::Ready(ResponseKind::JoinGroup(response(
            JoinResult::error(ResponseError::GroupAuthorizationFailed, ""),
            version,
        )));
    }
    // In a cluster, only the broker holding the group's coordinator
    // lease serves it; the client finds the new one.
    if !groups.owns(&r.group_id) {
        return Reply::Ready(ResponseKind::JoinGroup(response(
            JoinResult::error(ResponseError::NotCoordinator, ""),
            version,
        )));
    }
    if shares.contains(&r.group_id) {
        // Kafka refuses a classic member of a group of another type so.
        return Reply::Ready(ResponseKind::JoinGroup(response(
            JoinResult::error(ResponseError::InconsistentGroupProtocol, ""),
            version,
        )));
    }
    let req = JoinRequest {
        group_id: r.group_id.to_string(),
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|s| s.to_string()),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        client_id: ctx.client_id.to_string(),
        client_host: format!("/{}", session.host()),
        require_known_member_id: version >= 4,
    };
    let member_id = req.member_id.clone();
    let rx = groups.join(req);
    Reply::Later(Box::pin(async move {
        let result = rx.await.unwrap_or_else(|_| {
            JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id)
        });
        ResponseKind::JoinGroup(response(result, version))
    }))
}

fn response(r: JoinResult, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let out = JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                out.with_group_instance_id(m.instance_id.map(StrBytes::from_string))
            } else {
                out
            }
        })
        .collect();
    let resp = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_leader(StrBytes::from_string(r.leader))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(members);
    if version >= 7 {
        resp.with_protocol_type(r.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
    } else {
        // Before v7 the protocol name is not nullable.
        resp.with_protocol_name(Some(StrBytes::from_string(
            r.protocol_name.unwrap_or_default(),
        )))
    }
}

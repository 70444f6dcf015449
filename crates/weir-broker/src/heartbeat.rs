//! Heartbeat: keeps a member's session alive and tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;

/// Answers a Heartbeat request.
pub fn handle(broker: &Broker, r: HeartbeatRequest, session: &Session) -> HeartbeatResponse {
    if !broker.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        return HeartbeatResponse::default().with_error_code(
            kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code(),
        );
    }
    let code = broker.groups.heartbeat(
        &r.group_id,
        r.generation_id,
        &r.member_id,
        r.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code)
}

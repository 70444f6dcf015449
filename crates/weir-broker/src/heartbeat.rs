//! Heartbeat: keeps a member's session alive and tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;

/// Answers a Heartbeat request.
pub fn handle(broker: &Broker, r: HeartbeatRequest) -> HeartbeatResponse {
    let code = broker.groups.heartbeat(
        &r.group_id,
        r.generation_id,
        &r.member_id,
        r.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code)
}

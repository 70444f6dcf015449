//! SyncGroup: the leader hands out assignments; followers wait for them.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{Broker, Reply};
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;

/// Answers a SyncGroup request once the leader's assignment is in.
pub fn handle(broker: &Arc<Broker>, r: SyncGroupRequest, session: &Session) -> Reply {
    if !broker.authorize(
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
    let assignments = r
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let rx = broker.groups.sync(
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

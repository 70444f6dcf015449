//! FindCoordinator: this node coordinates every group and transaction.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::node::Node;
use crate::security::Security;
use weir_auth::acl::{AclOperation, ResourceType};

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// Answers a FindCoordinator request (one key before v4, a batch after).
pub fn handle(
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (version, session) = (ctx.version, ctx.session);
    let (host, port) = node.advertised();
    let answer = |key: &StrBytes| -> (i16, Option<String>) {
        match req.key_type {
            KEY_GROUP if key.is_empty() => (
                ResponseError::InvalidGroupId.code(),
                Some("group id is empty".into()),
            ),
            KEY_TRANSACTION if key.is_empty() => (
                ResponseError::InvalidRequest.code(),
                Some("transactional id is empty".into()),
            ),
            // Kafka: DESCRIBE on the group or transactional id.
            KEY_GROUP
                if !security.authorize(
                    session,
                    AclOperation::Describe,
                    ResourceType::Group,
                    key,
                ) =>
            {
                (ResponseError::GroupAuthorizationFailed.code(), None)
            }
            KEY_TRANSACTION
                if !security.authorize(
                    session,
                    AclOperation::Describe,
                    ResourceType::TransactionalId,
                    key,
                ) =>
            {
                (
                    ResponseError::TransactionalIdAuthorizationFailed.code(),
                    None,
                )
            }
            KEY_GROUP | KEY_TRANSACTION => (0, None),
            // Share groups come with their own issue.
            other => (
                ResponseError::CoordinatorNotAvailable.code(),
                Some(format!("no coordinator for key type {other}")),
            ),
        }
    };
    let node = BrokerId(node.id);
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (error, msg) = answer(k);
                let c = Coordinator::default()
                    .with_key(k.clone())
                    .with_error_code(error)
                    .with_error_message(msg.map(StrBytes::from_string));
                if error == 0 {
                    c.with_node_id(node)
                        .with_host(StrBytes::from_string(host.to_string()))
                        .with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1)).with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (error, msg) = answer(&req.key);
    let resp = FindCoordinatorResponse::default().with_error_code(error);
    let resp = if version >= 1 {
        resp.with_error_message(msg.map(StrBytes::from_string))
    } else {
        resp
    };
    if error == 0 {
        resp.with_node_id(node)
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port)
    } else {
        resp.with_node_id(BrokerId(-1)).with_port(-1)
    }
}

/// The answer in cluster mode, which has no coordinators yet:
/// COORDINATOR_NOT_AVAILABLE for every key.
pub fn unavailable(
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let code = ResponseError::CoordinatorNotAvailable.code();
    let msg = || {
        Some(StrBytes::from_static_str(
            "cluster mode has no group or transaction coordinator yet",
        ))
    };
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|k| {
                Coordinator::default()
                    .with_key(k)
                    .with_error_code(code)
                    .with_error_message(msg())
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(-1))
        .with_port(-1);
    if ctx.version >= 1 {
        resp.with_error_message(msg())
    } else {
        resp
    }
}

//! FindCoordinator: on one node, this node coordinates every group and
//! transaction; in a cluster, the holder of the coordinator lease of the
//! group's or transactional id's partition.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::group_store::OFFSETS_TOPIC;
use crate::groups::Groups;
use crate::node::Node;
use crate::security::Security;
use crate::transactions::Transactions;
use crate::txn_store::TXN_TOPIC;
use weir_auth::acl::{AclOperation, ResourceType};

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// Answers a FindCoordinator request (one key before v4, a batch after).
/// On one node this node coordinates everything; in a cluster a group's
/// coordinator is the broker holding its `__consumer_offsets`
/// partition's lease, a transactional id's the one holding its
/// `__transaction_state` partition's.
pub fn handle(
    security: &Security,
    node: &Node,
    groups: &Groups,
    txns: &Transactions,
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (version, session) = (ctx.version, ctx.session);
    let (host, port) = node.advertised();
    let here = || Ok((node.id, host.to_string(), port));
    // Where a coordinator is in a cluster: the holder of the partition's
    // lease, if it is live (a dead holder's lease runs out, then another
    // takes it).
    let locate = |topic: &str, p: i32| -> Result<(i32, String, i32), (i16, Option<String>)> {
        let Some(cluster) = node.cluster() else {
            return here();
        };
        let unavailable = || {
            (
                ResponseError::CoordinatorNotAvailable.code(),
                Some(format!("no live broker holds {topic}-{p} now")),
            )
        };
        let holder = cluster.coordinator_of(topic, p).ok_or_else(unavailable)?;
        node.brokers()
            .into_iter()
            .find(|b| b.node_id == holder)
            .map(|b| (b.node_id, b.host, b.port))
            .ok_or_else(unavailable)
    };
    let answer = |key: &StrBytes| -> Result<(i32, String, i32), (i16, Option<String>)> {
        match req.key_type {
            KEY_GROUP if key.is_empty() => Err((
                ResponseError::InvalidGroupId.code(),
                Some("group id is empty".into()),
            )),
            KEY_TRANSACTION if key.is_empty() => Err((
                ResponseError::InvalidRequest.code(),
                Some("transactional id is empty".into()),
            )),
            // Kafka: DESCRIBE on the group or transactional id.
            KEY_GROUP
                if !security.authorize(
                    session,
                    AclOperation::Describe,
                    ResourceType::Group,
                    key,
                ) =>
            {
                Err((ResponseError::GroupAuthorizationFailed.code(), None))
            }
            KEY_TRANSACTION
                if !security.authorize(
                    session,
                    AclOperation::Describe,
                    ResourceType::TransactionalId,
                    key,
                ) =>
            {
                Err((
                    ResponseError::TransactionalIdAuthorizationFailed.code(),
                    None,
                ))
            }
            KEY_GROUP => locate(OFFSETS_TOPIC, groups.offsets_partition(key)),
            KEY_TRANSACTION => locate(TXN_TOPIC, txns.partition_of(key)),
            // Share groups come with their own issue.
            other => Err((
                ResponseError::CoordinatorNotAvailable.code(),
                Some(format!("no coordinator for key type {other}")),
            )),
        }
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let c = Coordinator::default().with_key(k.clone());
                match answer(k) {
                    Ok((id, host, port)) => c
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port),
                    Err((error, msg)) => c
                        .with_error_code(error)
                        .with_error_message(msg.map(StrBytes::from_string))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match answer(&req.key) {
        Ok((id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
        Err((error, msg)) => {
            let resp = FindCoordinatorResponse::default()
                .with_error_code(error)
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if version >= 1 {
                resp.with_error_message(msg.map(StrBytes::from_string))
            } else {
                resp
            }
        }
    }
}

//! AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the
//! transaction, before TxnOffsetCommit (`send_offsets_to_transaction`).

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ResponseKind};

use crate::context::Reply;
use crate::context::RequestContext;
use crate::group_store::OFFSETS_TOPIC;
use crate::groups::Groups;
use crate::security::Security;
use crate::transactions::Transactions;
use crate::txn_coordinator::TxnApi;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers an AddOffsetsToTxn request. With authorization on, needs WRITE
/// on the transactional id and READ on the group.
pub fn handle(
    groups: &Groups,
    txns: &Transactions,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: AddOffsetsToTxnRequest,
) -> Reply {
    let version = ctx.version;
    let session = ctx.session;
    let denied = if !security.authorize(
        session,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed)
    } else if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        Some(kafka_protocol::error::ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(e) = denied {
        return Reply::Ready(ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default().with_error_code(e.code()),
        ));
    }
    let p = groups.offsets_partition(&req.group_id);
    let wait = txns.add_partitions(
        &req.transactional_id,
        (req.producer_id.0, req.producer_epoch),
        vec![(OFFSETS_TOPIC.to_string(), p)],
        TxnApi::AddOffsetsToTxn,
        version,
    );
    Reply::Later(Box::pin(async move {
        let code = wait.await.err().map_or(0, |e| e.code());
        ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
    }))
}

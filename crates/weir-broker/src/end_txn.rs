//! EndTxn: commit or abort. The coordinator records the decision, writes a
//! COMMIT or ABORT marker to every partition of the transaction, and
//! answers once the markers are durable. From v5 (transaction version 2)
//! the epoch is bumped and the answer carries the new producer id and
//! epoch.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};

use crate::context::Reply;
use crate::context::RequestContext;
use crate::security::Security;
use crate::transactions::Transactions;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers an EndTxn request. With authorization on, needs WRITE on the
/// transactional id.
pub fn handle(
    txns: &std::sync::Arc<Transactions>,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: EndTxnRequest,
) -> Reply {
    let version = ctx.version;
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        return Reply::Ready(ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(
                    kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code(),
                )
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ));
    }
    let wait = txns.end_txn(
        &req.transactional_id,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        version,
    );
    Reply::Later(Box::pin(async move {
        // v5+ (transaction version 2) carries the producer id and epoch
        // the client continues with; earlier versions have no such fields.
        let (code, (id, epoch)) = match wait.await {
            Ok(p) => (0, p),
            Err(e) => (e.code(), (-1, -1)),
        };
        ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
        )
    }))
}

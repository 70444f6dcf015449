//! EndTxn: commit or abort. The coordinator records the decision, writes a
//! COMMIT or ABORT marker to every partition of the transaction, and
//! answers once the markers are durable.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};

use crate::broker::{Broker, Reply};
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;

/// Answers an EndTxn request. With authorization on, needs WRITE on the
/// transactional id.
pub fn handle(broker: &Arc<Broker>, req: EndTxnRequest, version: i16, session: &Session) -> Reply {
    if !broker.authorize(
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
    let wait = broker.txns.end_txn(
        &req.transactional_id,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        version,
    );
    Reply::Later(Box::pin(async move {
        let code = wait.await.err().map_or(0, |e| e.code());
        ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    }))
}

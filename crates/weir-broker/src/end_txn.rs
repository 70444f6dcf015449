//! EndTxn: commit or abort. The coordinator records the decision, writes a
//! COMMIT or ABORT marker to every partition of the transaction, and
//! answers once the markers are durable.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};

use crate::broker::{Broker, Reply};

/// Answers an EndTxn request.
pub fn handle(broker: &Arc<Broker>, req: EndTxnRequest, version: i16) -> Reply {
    let wait = broker.txns.end_txn(
        broker,
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

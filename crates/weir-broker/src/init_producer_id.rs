//! InitProducerId: a producer id and epoch for an idempotent producer, or
//! for a transactional one through the transaction coordinator (which
//! bumps the epoch and fences the previous instance).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};

use crate::broker::{Broker, Reply};

fn answer(result: Result<(i64, i16), ResponseError>) -> ResponseKind {
    let resp = match result {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    };
    ResponseKind::InitProducerId(resp)
}

/// Answers an InitProducerId request.
pub fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest, version: i16) -> Reply {
    let Some(txn_id) = req.transactional_id else {
        // Idempotence only: a fresh id every time, as Kafka does.
        let result = broker.next_producer_id().map(|id| (id, 0)).map_err(|e| {
            tracing::error!(error = %e, "cannot reserve producer ids");
            ResponseError::CoordinatorNotAvailable
        });
        return Reply::Ready(answer(result));
    };
    if txn_id.is_empty() {
        return Reply::Ready(answer(Err(ResponseError::InvalidRequest)));
    }
    // KIP-360 (v3+): a producer that already has an id says which.
    let expected =
        (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let wait = broker.txns.init_producer_id(
        broker,
        &txn_id,
        req.transaction_timeout_ms,
        expected,
        version,
    );
    Reply::Later(Box::pin(async move { answer(wait.await) }))
}

//! InitProducerId: a producer id and epoch for an idempotent producer, or
//! for a transactional one through the transaction coordinator (which
//! bumps the epoch and fences the previous instance).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};

use crate::context::Reply;
use crate::context::RequestContext;
use crate::security::Security;
use crate::topics::Topics;
use crate::transactions::Transactions;
use weir_auth::acl::{AclOperation, ResourceType};

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

/// Answers an InitProducerId request. With authorization on, a
/// transactional producer needs WRITE on its transactional id; an
/// idempotent one IDEMPOTENT_WRITE on the cluster or WRITE on some topic,
/// as in Kafka.
pub fn handle(
    topics: &Topics,
    txns: &std::sync::Arc<Transactions>,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> Reply {
    let version = ctx.version;
    let session = ctx.session;
    match &req.transactional_id {
        Some(t)
            if !security.authorize(
                session,
                AclOperation::Write,
                ResourceType::TransactionalId,
                t,
            ) =>
        {
            return Reply::Ready(answer(Err(
                ResponseError::TransactionalIdAuthorizationFailed,
            )));
        }
        None if !security.is_authorized(
            session,
            AclOperation::IdempotentWrite,
            ResourceType::Cluster,
            weir_auth::acl::CLUSTER_NAME,
        ) && !security.authorize_any(session, AclOperation::Write, ResourceType::Topic) =>
        {
            return Reply::Ready(answer(Err(ResponseError::ClusterAuthorizationFailed)));
        }
        _ => {}
    }
    let Some(txn_id) = req.transactional_id else {
        // Idempotence only: a fresh id every time, as Kafka does.
        let result = topics.next_producer_id().map(|id| (id, 0)).map_err(|e| {
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
    let wait = txns.init_producer_id(&txn_id, req.transaction_timeout_ms, expected, version);
    Reply::Later(Box::pin(async move { answer(wait.await) }))
}

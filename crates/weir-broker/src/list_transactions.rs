//! ListTransactions: transactional ids known to the coordinator, filtered
//! by state, producer id and (v1+, KIP-994) minimum running time.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::security::Security;
use crate::transactions::Transactions;
use crate::txn_coordinator::TxnState;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a ListTransactions request.
pub fn handle(
    txns: &Transactions,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let version = ctx.version;
    let session = ctx.session;
    let (known, unknown): (Vec<String>, Vec<String>) = req
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .partition(|s| TxnState::from_name(s).is_some());
    let known: Vec<TxnState> = known
        .iter()
        .filter_map(|s| TxnState::from_name(s))
        .collect();
    // Unknown state names match nothing but are reported back, as Kafka
    // does; if every filter is unknown nothing is listed.
    let states = if !unknown.is_empty() && known.is_empty() {
        return ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown.into_iter().map(StrBytes::from_string).collect());
    } else {
        known
    };
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let listed = txns
        .list(&states, &pids, min_duration)
        .into_iter()
        // Only the transactional ids the client may DESCRIBE, as in Kafka.
        .filter(|m| {
            security.is_authorized(
                session,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &m.transactional_id,
            )
        })
        .map(|m| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(StrBytes::from_string).collect())
        .with_transaction_states(listed)
}

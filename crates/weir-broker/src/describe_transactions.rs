//! DescribeTransactions: the coordinator's view of transactional ids.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::security::Security;
use crate::transactions::Transactions;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a DescribeTransactions request. With authorization on, each
/// transactional id needs DESCRIBE, and only the topics the client may
/// DESCRIBE are listed, as in Kafka.
pub fn handle(
    txns: &Transactions,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let session = ctx.session;
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            if !security.authorize(
                session,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &id,
            ) {
                return state
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            let Some(m) = txns.describe(&id) else {
                return state.with_error_code(ResponseError::TransactionalIdNotFound.code());
            };
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in m.partitions.iter().filter(|(t, _)| {
                security.is_authorized(session, AclOperation::Describe, ResourceType::Topic, t)
            }) {
                topics.entry(t.as_str()).or_default().push(*p);
            }
            state
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(ps)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

//! AddPartitionsToTxn: a transactional producer names the partitions it is
//! about to write (v0-3, one transaction), or a broker asks the coordinator
//! to add or verify partitions for many transactions (v4+, KIP-890).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ResponseKind,
};

use crate::context::{Reply, RequestContext};
use crate::security::Security;
use crate::topics::Topics;
use crate::transactions::Transactions;
use crate::txn_coordinator::TxnApi;
use weir_auth::acl::{AclOperation, ResourceType};

/// Topics a v0-3 request names that the client may not WRITE.
type Denied = std::collections::HashSet<String>;

/// Partitions of a request, and whether any is unknown or denied.
fn split(
    catalog: &Topics,
    topics: &[AddPartitionsToTxnTopic],
    denied: &Denied,
) -> (Vec<(String, i32)>, bool) {
    let mut parts = Vec::new();
    let mut unknown = !denied.is_empty();
    for t in topics {
        let topic = catalog.topic(&t.name);
        for &p in &t.partitions {
            unknown |= topic.as_ref().and_then(|x| x.partition(p)).is_none();
            parts.push((t.name.to_string(), p));
        }
    }
    (parts, unknown)
}

/// Per-partition results: Kafka reports TOPIC_AUTHORIZATION_FAILED for
/// denied topics, UNKNOWN_TOPIC_OR_PARTITION for the unknown ones and
/// OPERATION_NOT_ATTEMPTED for the rest, or one error for all.
fn results(
    catalog: &Topics,
    topics: &[AddPartitionsToTxnTopic],
    unknown: bool,
    error: Option<ResponseError>,
    denied: &Denied,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let topic = catalog.topic(&t.name);
            let results_by_partition = t
                .partitions
                .iter()
                .map(|&p| {
                    let code = if unknown {
                        if denied.contains(t.name.as_str()) {
                            ResponseError::TopicAuthorizationFailed.code()
                        } else if topic.as_ref().and_then(|x| x.partition(p)).is_none() {
                            ResponseError::UnknownTopicOrPartition.code()
                        } else {
                            ResponseError::OperationNotAttempted.code()
                        }
                    } else {
                        error.map_or(0, |e| e.code())
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results_by_partition)
        })
        .collect()
}

/// Answers an AddPartitionsToTxn request. With authorization on, v0-3
/// (from producers) need WRITE on the transactional id and on each topic;
/// v4+ (between brokers) need CLUSTER_ACTION, as in Kafka.
pub fn handle(
    catalog: &Arc<Topics>,
    txns: &Transactions,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: AddPartitionsToTxnRequest,
) -> Reply {
    let (version, session) = (ctx.version, ctx.session);
    let none = Denied::new();
    if version <= 3 {
        let topics = req.v3_and_below_topics;
        if !security.authorize(
            session,
            AclOperation::Write,
            ResourceType::TransactionalId,
            &req.v3_and_below_transactional_id,
        ) {
            let r = results(
                catalog,
                &topics,
                false,
                Some(ResponseError::TransactionalIdAuthorizationFailed),
                &none,
            );
            return Reply::Ready(ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(r),
            ));
        }
        let denied: Denied = topics
            .iter()
            .filter(|t| {
                !security.authorize(session, AclOperation::Write, ResourceType::Topic, &t.name)
            })
            .map(|t| t.name.to_string())
            .collect();
        let (parts, unknown) = split(catalog, &topics, &denied);
        if unknown {
            let r = results(catalog, &topics, true, None, &denied);
            return Reply::Ready(ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(r),
            ));
        }
        let wait = txns.add_partitions(
            &req.v3_and_below_transactional_id,
            (
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
            ),
            parts,
            TxnApi::AddPartitionsToTxn,
            version,
        );
        let catalog = catalog.clone();
        return Reply::Later(Box::pin(async move {
            let error = wait.await.err();
            ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results(
                    &catalog,
                    &topics,
                    false,
                    error,
                    &Denied::new(),
                )),
            )
        }));
    }
    // v4+: many transactions; verify_only checks without adding.
    if !security.authorize_cluster(session, AclOperation::ClusterAction) {
        return Reply::Ready(ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
        ));
    }
    let mut waits = Vec::with_capacity(req.transactions.len());
    for t in req.transactions {
        let (parts, unknown) = split(catalog, &t.topics, &none);
        let outcome: crate::transactions::Pending<Result<(), ResponseError>> = if unknown {
            Box::pin(std::future::ready(Ok(())))
        } else if t.verify_only {
            let r = parts.iter().try_for_each(|(topic, p)| {
                txns.verify(
                    &t.transactional_id,
                    (t.producer_id.0, t.producer_epoch),
                    topic,
                    *p,
                    false,
                )
            });
            Box::pin(std::future::ready(r))
        } else {
            txns.add_partitions(
                &t.transactional_id,
                (t.producer_id.0, t.producer_epoch),
                parts,
                TxnApi::AddPartitionsToTxn,
                version,
            )
        };
        waits.push((t.transactional_id, t.topics, unknown, outcome));
    }
    let catalog = catalog.clone();
    Reply::Later(Box::pin(async move {
        let mut out = Vec::with_capacity(waits.len());
        for (id, topics, unknown, wait) in waits {
            let error = wait.await.err();
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(id)
                    .with_topic_results(results(&catalog, &topics, unknown, error, &Denied::new())),
            );
        }
        ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_results_by_transaction(out),
        )
    }))
}

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

use crate::broker::{Broker, Reply};
use crate::txn_coordinator::TxnApi;

/// Partitions of a request, with those of unknown topics set apart.
fn split(broker: &Broker, topics: &[AddPartitionsToTxnTopic]) -> (Vec<(String, i32)>, bool) {
    let mut parts = Vec::new();
    let mut unknown = false;
    for t in topics {
        let topic = broker.topic(&t.name);
        for &p in &t.partitions {
            unknown |= topic.as_ref().and_then(|x| x.partition(p)).is_none();
            parts.push((t.name.to_string(), p));
        }
    }
    (parts, unknown)
}

/// Per-partition results: Kafka reports UNKNOWN_TOPIC_OR_PARTITION for the
/// unknown ones and OPERATION_NOT_ATTEMPTED for the rest, or one error for
/// all.
fn results(
    broker: &Broker,
    topics: &[AddPartitionsToTxnTopic],
    unknown: bool,
    error: Option<ResponseError>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let topic = broker.topic(&t.name);
            let results_by_partition = t
                .partitions
                .iter()
                .map(|&p| {
                    let code = if unknown {
                        if topic.as_ref().and_then(|x| x.partition(p)).is_none() {
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

/// Answers an AddPartitionsToTxn request.
pub fn handle(broker: &Arc<Broker>, req: AddPartitionsToTxnRequest, version: i16) -> Reply {
    if version <= 3 {
        let topics = req.v3_and_below_topics;
        let (parts, unknown) = split(broker, &topics);
        if unknown {
            let r = results(broker, &topics, true, None);
            return Reply::Ready(ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(r),
            ));
        }
        let wait = broker.txns.add_partitions(
            broker,
            &req.v3_and_below_transactional_id,
            (
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
            ),
            parts,
            TxnApi::AddPartitionsToTxn,
            version,
        );
        let broker = broker.clone();
        return Reply::Later(Box::pin(async move {
            let error = wait.await.err();
            ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default()
                    .with_results_by_topic_v3_and_below(results(&broker, &topics, false, error)),
            )
        }));
    }
    // v4+: many transactions; verify_only checks without adding.
    let mut waits = Vec::with_capacity(req.transactions.len());
    for t in req.transactions {
        let (parts, unknown) = split(broker, &t.topics);
        let outcome: crate::transactions::Pending<Result<(), ResponseError>> = if unknown {
            Box::pin(std::future::ready(Ok(())))
        } else if t.verify_only {
            let r = parts.iter().try_for_each(|(topic, p)| {
                broker.txns.verify(
                    &t.transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    topic,
                    *p,
                )
            });
            Box::pin(std::future::ready(r))
        } else {
            broker.txns.add_partitions(
                broker,
                &t.transactional_id,
                (t.producer_id.0, t.producer_epoch),
                parts,
                TxnApi::AddPartitionsToTxn,
                version,
            )
        };
        waits.push((t.transactional_id, t.topics, unknown, outcome));
    }
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let mut out = Vec::with_capacity(waits.len());
        for (id, topics, unknown, wait) in waits {
            let error = wait.await.err();
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(id)
                    .with_topic_results(results(&broker, &topics, unknown, error)),
            );
        }
        ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_results_by_transaction(out),
        )
    }))
}

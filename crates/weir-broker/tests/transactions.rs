//! Idempotence and transactions through the broker's API handlers, plus
//! restarts in every transaction state.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_broker::Broker;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_string()))
}

fn create(b: &Broker, topic: &str, partitions: i32) {
    b.create_topic(topic, partitions, BTreeMap::new(), false)
        .unwrap();
}

async fn init(b: &Arc<Broker>, id: Option<&str>) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(id.map(txn_id))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let Some(ResponseKind::InitProducerId(r)) = call(b, 4, RequestKind::InitProducerId(req)).await
    else {
        panic!()
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

async fn produce(
    b: &Arc<Broker>,
    txn: Option<&str>,
    topic: &str,
    p: i32,
    records: Bytes,
) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_transactional_id(txn.map(txn_id))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(records))])]);
    let Some(ResponseKind::Produce(r)) = call(b, 9, RequestKind::Produce(req)).await else {
        panic!()
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn add_partitions(
    b: &Arc<Broker>,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    ps: &[i32],
) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(name(topic))
            .with_partitions(ps.to_vec())]);
    let Some(ResponseKind::AddPartitionsToTxn(r)) =
        call(b, 3, RequestKind::AddPartitionsToTxn(req)).await
    else {
        panic!()
    };
    r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|x| x.partition_error_code)
        .collect()
}

async fn end(b: &Arc<Broker>, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let Some(ResponseKind::EndTxn(r)) = call(b, 3, RequestKind::EndTxn(req)).await else {
        panic!()
    };
    r.error_code
}

/// (error, high watermark, last stable offset, aborted (pid, first offset), bytes)
async fn fetch_committed(
    b: &Arc<Broker>,
    topic: &str,
    p: i32,
) -> (i16, i64, i64, Vec<(i64, i64)>, usize) {
    fetch_committed_from(b, topic, p, 0).await
}

/// A fetch may stop after any whole batch, so aborted transactions are
/// checked from the offset where they start.
async fn fetch_committed_from(
    b: &Arc<Broker>,
    topic: &str,
    p: i32,
    offset: i64,
) -> (i16, i64, i64, Vec<(i64, i64)>, usize) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_isolation_level(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let Some(ResponseKind::Fetch(r)) = call(b, 12, RequestKind::Fetch(req)).await else {
        panic!()
    };
    let d = &r.responses[0].partitions[0];
    (
        d.error_code,
        d.high_watermark,
        d.last_stable_offset,
        d.aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect(),
        d.records.as_ref().map_or(0, |r| r.len()),
    )
}

async fn describe_state(b: &Arc<Broker>, id: &str) -> String {
    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]);
    let Some(ResponseKind::DescribeTransactions(r)) =
        call(b, 0, RequestKind::DescribeTransactions(req)).await
    else {
        panic!()
    };
    r.transaction_states[0].transaction_state.to_string()
}

#[tokio::test]
async fn idempotent_produce_dedupes_retries_and_refuses_gaps() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1);
    let (err, pid, epoch) = init(&t.broker, None).await;
    assert_eq!((err, epoch), (0, 0));
    assert!(pid >= 0);
    let (_, pid2, _) = init(&t.broker, None).await;
    assert_ne!(pid, pid2, "each idempotent producer gets its own id");
    let b = producer_batch(3, 1000, pid, 0, 0, false);
    assert_eq!(produce(&t.broker, None, "t", 0, b.clone()).await, (0, 0));
    assert_eq!(
        produce(&t.broker, None, "t", 0, b).await,
        (0, 0),
        "a retry is answered with the original offset"
    );
    assert_eq!(
        produce(
            &t.broker,
            None,
            "t",
            0,
            producer_batch(1, 1000, pid, 0, 3, false)
        )
        .await,
        (0, 3)
    );
    let (err, _) = produce(
        &t.broker,
        None,
        "t",
        0,
        producer_batch(1, 1000, pid, 0, 9, false),
    )
    .await;
    assert_eq!(err, ResponseError::OutOfOrderSequenceNumber.code());
    let (_, hw, ..) = fetch_committed(&t.broker, "t", 0).await;
    assert_eq!(hw, 4);
}

#[tokio::test]
async fn commit_and_abort_through_the_apis() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 2);
    let (err, pid, epoch) = init(&t.broker, Some("tx")).await;
    assert_eq!(err, 0);
    // Verification: a transactional write to a partition not added first
    // is refused (no hanging transaction can start that way).
    let (err, _) = produce(
        &t.broker,
        Some("tx"),
        "t",
        0,
        producer_batch(2, 1000, pid, epoch, 0, true),
    )
    .await;
    assert_ne!(err, 0);
    assert_eq!(
        add_partitions(&t.broker, "tx", pid, epoch, "t", &[0, 1]).await,
        vec![0, 0]
    );
    assert_eq!(
        produce(
            &t.broker,
            Some("tx"),
            "t",
            0,
            producer_batch(2, 1000, pid, epoch, 0, true)
        )
        .await,
        (0, 0)
    );
    assert_eq!(describe_state(&t.broker, "tx").await, "Ongoing");
    let (_, hw, lso, _, bytes) = fetch_committed(&t.broker, "t", 0).await;
    assert_eq!((hw, lso, bytes), (2, 0, 0), "nothing readable while open");
    assert_eq!(end(&t.broker, "tx", pid, epoch, true).await, 0);
    assert_eq!(describe_state(&t.broker, "tx").await, "CompleteCommit");
    let (_, hw, lso, aborted, bytes) = fetch_committed(&t.broker, "t", 0).await;
    assert_eq!((hw, lso), (3, 3), "data plus the COMMIT marker");
    assert!(aborted.is_empty());
    assert!(bytes > 0);

    assert_eq!(
        add_partitions(&t.broker, "tx", pid, epoch, "t", &[0]).await,
        vec![0]
    );
    assert_eq!(
        produce(
            &t.broker,
            Some("tx"),
            "t",
            0,
            producer_batch(2, 1000, pid, epoch, 2, true)
        )
        .await,
        (0, 3)
    );
    assert_eq!(end(&t.broker, "tx", pid, epoch, false).await, 0);
    let (_, hw, lso, aborted, _) = fetch_committed_from(&t.broker, "t", 0, 3).await;
    assert_eq!((hw, lso), (6, 6));
    assert_eq!(aborted, vec![(pid, 3)]);
    // A late write of the aborted transaction is refused.
    let (err, _) = produce(
        &t.broker,
        Some("tx"),
        "t",
        0,
        producer_batch(1, 1000, pid, epoch, 4, true),
    )
    .await;
    assert_ne!(err, 0);
    // Ending again with the other outcome is not allowed; repeating is.
    assert_eq!(end(&t.broker, "tx", pid, epoch, false).await, 0);
    assert_eq!(
        end(&t.broker, "tx", pid, epoch, true).await,
        ResponseError::InvalidTxnState.code()
    );

    // A second InitProducerId bumps the epoch and fences the first.
    let (err, pid_b, epoch_b) = init(&t.broker, Some("tx")).await;
    assert_eq!((err, pid_b, epoch_b), (0, pid, epoch + 1));
    assert_eq!(
        add_partitions(&t.broker, "tx", pid, epoch, "t", &[0]).await,
        vec![ResponseError::ProducerFenced.code()]
    );

    // Describe and list.
    let req = DescribeProducersRequest::default().with_topics(vec![
        kafka_protocol::messages::describe_producers_request::TopicRequest::default()
            .with_name(name("t"))
            .with_partition_indexes(vec![0]),
    ]);
    let Some(ResponseKind::DescribeProducers(r)) =
        call(&t.broker, 0, RequestKind::DescribeProducers(req)).await
    else {
        panic!()
    };
    let ps = &r.topics[0].partitions[0].active_producers;
    assert_eq!(ps.len(), 1);
    assert_eq!(
        (
            ps[0].producer_id.0,
            ps[0].last_sequence,
            ps[0].current_txn_start_offset
        ),
        (pid, 3, -1)
    );
    let req = ListTransactionsRequest::default();
    let Some(ResponseKind::ListTransactions(r)) =
        call(&t.broker, 1, RequestKind::ListTransactions(req)).await
    else {
        panic!()
    };
    assert_eq!(r.transaction_states.len(), 1);
    assert_eq!(r.transaction_states[0].transactional_id.to_string(), "tx");
    let req = ListTransactionsRequest::default().with_state_filters(vec![
        StrBytes::from_static_str("Ongoing"),
        StrBytes::from_static_str("Bogus"),
    ]);
    let Some(ResponseKind::ListTransactions(r)) =
        call(&t.broker, 1, RequestKind::ListTransactions(req)).await
    else {
        panic!()
    };
    assert!(r.transaction_states.is_empty());
    assert_eq!(r.unknown_state_filters.len(), 1);
}

/// Ticks until no transaction is unfinished and the last stable offset
/// reached the high watermark; returns (hw, lso, aborted from offset 0).
async fn settle(b: &Arc<Broker>, id: &str, topic: &str, p: i32) -> (i64, i64, Vec<(i64, i64)>) {
    for _ in 0..200 {
        b.tick();
        let (_, hw, lso, aborted, _) = fetch_committed(b, topic, p).await;
        let busy = ["Ongoing", "PrepareCommit", "PrepareAbort"];
        if lso == hw && !busy.contains(&describe_state(b, id).await.as_str()) {
            return (hw, lso, aborted);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("transactions never settled");
}

/// Writes a state record straight into `__transaction_state`, as if the
/// broker died right after recording it.
async fn force_state(
    b: &Broker,
    id: &str,
    pid: i64,
    epoch: i16,
    status: i8,
    topic: &str,
    parts: Vec<i32>,
) {
    use weir_broker::txn_store::{self, TxnValue};
    let value = txn_store::value(
        &TxnValue {
            producer_id: pid,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: epoch,
            timeout_ms: 60_000,
            status,
            partitions: Some(vec![(topic.to_string(), parts)]),
            last_update_ms: 0,
            start_ms: 0,
            client_transaction_version: 0,
        },
        0,
    );
    let p = txn_store::partition_for(id, 50);
    b.internal_log()
        .append(
            txn_store::TXN_TOPIC,
            p,
            vec![(Some(txn_store::key(id)), Some(value))],
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_transaction_state_survives_a_restart() {
    // Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort.
    for (state, status, clean) in [
        ("Ongoing", None, false),
        ("PrepareCommit", Some(2i8), false),
        ("PrepareAbort", Some(3i8), true),
        ("CompleteCommit", None, false),
        ("CompleteAbort", None, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path(), &[]).await;
        create(&b, "t", 1);
        let (_, pid, epoch) = init(&b, Some("tx")).await;
        assert_eq!(
            add_partitions(&b, "tx", pid, epoch, "t", &[0]).await,
            vec![0]
        );
        assert_eq!(
            produce(
                &b,
                Some("tx"),
                "t",
                0,
                producer_batch(2, 1000, pid, epoch, 0, true)
            )
            .await
            .0,
            0
        );
        match state {
            "CompleteCommit" => assert_eq!(end(&b, "tx", pid, epoch, true).await, 0),
            "CompleteAbort" => assert_eq!(end(&b, "tx", pid, epoch, false).await, 0),
            _ => {}
        }
        if let Some(s) = status {
            force_state(&b, "tx", pid, epoch, s, "t", vec![0]).await;
        }
        if clean {
            b.begin_shutdown();
            b.shutdown().unwrap();
        }
        drop(b);
        let b = open(dir.path(), &[]).await;
        match state {
            "Ongoing" => {
                assert_eq!(describe_state(&b, "tx").await, "Ongoing", "{state}");
                let (_, hw, lso, ..) = fetch_committed(&b, "t", 0).await;
                assert_eq!((hw, lso), (2, 0), "{state}: still held back");
                assert_eq!(end(&b, "tx", pid, epoch, true).await, 0, "{state}");
                let (hw, lso, aborted) = settle(&b, "tx", "t", 0).await;
                assert_eq!((hw, lso, aborted.len()), (3, 3, 0));
            }
            "PrepareCommit" | "CompleteCommit" => {
                let (hw, _, aborted) = settle(&b, "tx", "t", 0).await;
                assert_eq!((hw, aborted.len()), (3, 0), "{state}");
                assert_eq!(describe_state(&b, "tx").await, "CompleteCommit", "{state}");
            }
            _ => {
                let (hw, _, aborted) = settle(&b, "tx", "t", 0).await;
                assert_eq!((hw, aborted), (3, vec![(pid, 0)]), "{state}");
                assert_eq!(describe_state(&b, "tx").await, "CompleteAbort", "{state}");
            }
        }
        // The same producer id continues (or is fenced by a new instance).
        let (err, pid2, epoch2) = init(&b, Some("tx")).await;
        assert_eq!((err, pid2, epoch2), (0, pid, epoch + 1), "{state}");
    }
}

#[tokio::test]
async fn timed_out_transactions_are_aborted_and_the_producer_fenced() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1);
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id("slow")))
        .with_transaction_timeout_ms(100)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let Some(ResponseKind::InitProducerId(r)) =
        call(&t.broker, 4, RequestKind::InitProducerId(req)).await
    else {
        panic!()
    };
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(
        add_partitions(&t.broker, "slow", pid, epoch, "t", &[0]).await,
        vec![0]
    );
    produce(
        &t.broker,
        Some("slow"),
        "t",
        0,
        producer_batch(1, 1000, pid, epoch, 0, true),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, _, aborted) = settle(&t.broker, "slow", "t", 0).await;
    assert_eq!(aborted, vec![(pid, 0)]);
    assert_ne!(
        end(&t.broker, "slow", pid, epoch, true).await,
        0,
        "the zombie is fenced"
    );
    // Too long a timeout is refused.
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id("greedy")))
        .with_transaction_timeout_ms(900_001);
    let Some(ResponseKind::InitProducerId(r)) =
        call(&t.broker, 4, RequestKind::InitProducerId(req)).await
    else {
        panic!()
    };
    assert_eq!(
        r.error_code,
        ResponseError::InvalidTransactionTimeout.code()
    );
}

#[tokio::test]
async fn add_partitions_v4_batches_transactions_and_verifies() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 2);
    let (_, pid_a, epoch_a) = init(&t.broker, Some("a")).await;
    let (_, pid_b, epoch_b) = init(&t.broker, Some("b")).await;
    let txn = |id: &str, pid: i64, epoch: i16, verify_only: bool, parts: Vec<i32>| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name("t"))
                .with_partitions(parts)])
    };
    let send = |txns: Vec<AddPartitionsToTxnTransaction>| {
        let b = t.broker.clone();
        async move {
            let req = AddPartitionsToTxnRequest::default().with_transactions(txns);
            let Some(ResponseKind::AddPartitionsToTxn(r)) =
                call(&b, 4, RequestKind::AddPartitionsToTxn(req)).await
            else {
                panic!()
            };
            r.results_by_transaction
                .iter()
                .map(|x| {
                    x.topic_results[0]
                        .results_by_partition
                        .iter()
                        .map(|p| p.partition_error_code)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        }
    };
    // Verifying before anything was added fails; adding two at once works.
    let r = send(vec![txn("a", pid_a, epoch_a, true, vec![0])]).await;
    assert_ne!(r[0][0], 0);
    let r = send(vec![
        txn("a", pid_a, epoch_a, false, vec![0]),
        txn("b", pid_b, epoch_b, false, vec![0, 1]),
    ])
    .await;
    assert_eq!(r, vec![vec![0], vec![0, 0]]);
    let r = send(vec![
        txn("a", pid_a, epoch_a, true, vec![0]),
        txn("b", pid_b, epoch_b + 1, true, vec![1]),
    ])
    .await;
    assert_eq!(r[0], vec![0]);
    assert_ne!(r[1][0], 0, "a wrong epoch does not verify");
    assert_eq!(describe_state(&t.broker, "b").await, "Ongoing");
}

#[tokio::test]
async fn internal_topic_partition_counts_are_fixed_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path(), &[]).await;
    create(&b, "t", 1);
    let (_, pid, epoch) = init(&b, Some("tx")).await;
    drop(b);
    // A later, different setting must not lose or misplace the state.
    let b = open(
        dir.path(),
        &[
            ("transaction.state.log.num.partitions", "3"),
            ("offsets.topic.num.partitions", "3"),
        ],
    )
    .await;
    assert_eq!(describe_state(&b, "tx").await, "Empty");
    let (err, pid2, epoch2) = init(&b, Some("tx")).await;
    assert_eq!((err, pid2, epoch2), (0, pid, epoch + 1));
    drop(b);
    let b = open(dir.path(), &[]).await;
    let (_, pid3, epoch3) = init(&b, Some("tx")).await;
    assert_eq!((pid3, epoch3), (pid, epoch + 2));
    assert_eq!(
        b.topic(weir_broker::txn_store::TXN_TOPIC)
            .unwrap()
            .partition_count(),
        50
    );
}

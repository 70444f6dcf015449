//! Behaviour of the Kafka APIs through `Broker::handle`, without sockets.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{batch, broker_with, call};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create(
    b: &std::sync::Arc<weir_broker::Broker>,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    let t = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(1000);
    let Some(ResponseKind::CreateTopics(r)) = call(b, 7, RequestKind::CreateTopics(req)).await
    else {
        panic!()
    };
    r.topics[0].error_code
}

async fn produce(
    b: &std::sync::Arc<weir_broker::Broker>,
    topic: &str,
    p: i32,
    acks: i16,
    records: Bytes,
) -> Option<(i16, i64)> {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(records))])]);
    match call(b, 9, RequestKind::Produce(req)).await {
        Some(ResponseKind::Produce(r)) => {
            let p = &r.responses[0].partition_responses[0];
            Some((p.error_code, p.base_offset))
        }
        None => None,
        other => panic!("{other:?}"),
    }
}

fn fetch_req(
    topic: &str,
    partitions: &[(i32, i64)],
    session: (i32, i32),
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(session.0)
        .with_session_epoch(session.1)
        .with_topics(if partitions.is_empty() {
            vec![]
        } else {
            vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(o)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                )]
        })
}

async fn fetch(b: &std::sync::Arc<weir_broker::Broker>, req: FetchRequest) -> FetchResponse {
    let Some(ResponseKind::Fetch(r)) = call(b, 12, RequestKind::Fetch(req)).await else {
        panic!()
    };
    r
}

#[tokio::test]
async fn produce_then_fetch_mid_batch_returns_the_containing_batch() {
    let t = broker_with(&[]).await;
    assert_eq!(create(&t.broker, "t", 1, &[]).await, 0);
    let first = batch(10, 1000);
    assert_eq!(
        produce(&t.broker, "t", 0, -1, first.clone()).await,
        Some((0, 0))
    );
    assert_eq!(
        produce(&t.broker, "t", 0, 1, batch(5, 2000)).await,
        Some((0, 10))
    );
    let r = fetch(&t.broker, fetch_req("t", &[(0, 5)], (0, -1), 0)).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.log_start_offset),
        (0, 15, 0)
    );
    let records = p.records.clone().unwrap();
    // The batch holding offset 5 comes back byte for byte (base offset 0
    // and leader epoch 0 are what the producer's encoder wrote too).
    assert!(records.len() >= first.len());
    assert_eq!(&records[..first.len()], &first[..]);
}

#[tokio::test]
async fn acks_zero_sends_no_response_but_appends() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1, &[]).await;
    assert_eq!(produce(&t.broker, "t", 0, 0, batch(3, 0)).await, None);
    assert_eq!(
        t.broker
            .topic("t")
            .unwrap()
            .partition_offsets(0)
            .unwrap()
            .log_end,
        3
    );
}

/// Kafka's rule for acks=0: no answer, but a partition that failed closes
/// the connection so that the client refreshes its metadata.
#[tokio::test]
async fn acks_zero_closes_the_connection_when_a_partition_fails() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1, &[]).await;
    let reply = |topic: &str, p: i32| {
        let req = ProduceRequest::default()
            .with_acks(0)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(batch(1, 0)))])]);
        let header = common::header(ApiKey::Produce, 9);
        t.broker.handle(&header, RequestKind::Produce(req))
    };
    assert!(matches!(reply("t", 0), weir_broker::Reply::None));
    assert!(matches!(reply("nope", 0), weir_broker::Reply::Close));
    assert!(matches!(reply("t", 7), weir_broker::Reply::Close));
}

#[tokio::test]
async fn produce_errors_map_to_kafka_codes() {
    let t = broker_with(&[]).await;
    create(&t.broker, "small", 1, &[("max.message.bytes", "100")]).await;
    assert_eq!(
        produce(&t.broker, "small", 0, -1, batch(50, 0))
            .await
            .unwrap()
            .0,
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(
        produce(&t.broker, "nope", 0, -1, batch(1, 0))
            .await
            .unwrap()
            .0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&t.broker, "small", 7, -1, batch(1, 0))
            .await
            .unwrap()
            .0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let mut corrupt = batch(2, 0).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        produce(&t.broker, "small", 0, -1, Bytes::from(corrupt))
            .await
            .unwrap()
            .0,
        ResponseError::CorruptMessage.code()
    );
    assert_eq!(
        produce(&t.broker, "small", 0, 2, batch(1, 0))
            .await
            .unwrap()
            .0,
        ResponseError::InvalidRequiredAcks.code()
    );
    assert_eq!(
        t.broker
            .topic("small")
            .unwrap()
            .partition_offsets(0)
            .unwrap()
            .log_end,
        0
    );
}

/// Whether the partitions are read at once (their own limits fit in the
/// response's) or in turn (they do not), only the first partition with
/// data may go past its limit (KIP-74), and what fits is answered.
#[tokio::test]
async fn only_the_first_partition_with_data_may_exceed_its_limit() {
    let t = broker_with(&[]).await;
    assert_eq!(create(&t.broker, "t", 3, &[]).await, 0);
    for p in 0..3 {
        assert_eq!(
            produce(&t.broker, "t", p, 1, batch(10, 1000)).await,
            Some((0, 0))
        );
    }
    let sizes = |r: FetchResponse| -> Vec<usize> {
        r.responses[0]
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, Bytes::len))
            .collect()
    };
    let whole = batch(10, 1000).len();
    for (partition_max, max) in [(16, 48), (16, 40), (1 << 20, 3 << 20), (1 << 20, 1 << 20)] {
        let mut req = fetch_req("t", &[(0, 0), (1, 0), (2, 0)], (0, -1), 0).with_max_bytes(max);
        for part in &mut req.topics[0].partitions {
            part.partition_max_bytes = partition_max;
        }
        let expected = if partition_max < 100 {
            vec![whole, 0, 0]
        } else {
            vec![whole; 3]
        };
        assert_eq!(
            sizes(fetch(&t.broker, req).await),
            expected,
            "partition limit {partition_max}, response limit {max}"
        );
    }
}

#[tokio::test]
async fn fetch_out_of_range_and_at_the_end() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1, &[]).await;
    produce(&t.broker, "t", 0, -1, batch(3, 0)).await;
    let r = fetch(&t.broker, fetch_req("t", &[(0, 4)], (0, -1), 0)).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    let r = fetch(&t.broker, fetch_req("t", &[(0, 3)], (0, -1), 0)).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.records.as_ref().map(Bytes::len)),
        (0, Some(0))
    );
}

#[tokio::test]
async fn long_poll_wakes_when_data_arrives() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1, &[]).await;
    let b = t.broker.clone();
    let waiter =
        tokio::spawn(async move { fetch(&b, fetch_req("t", &[(0, 0)], (0, -1), 30_000)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    produce(&t.broker, "t", 0, 1, batch(2, 0)).await;
    let r = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("fetch should wake")
        .unwrap();
    assert!(!r.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
}

/// Lets every ready task on this (current-thread) runtime run.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn an_append_wakes_only_the_fetches_waiting_on_its_partition() {
    let t = broker_with(&[]).await;
    create(&t.broker, "a", 2, &[]).await;
    create(&t.broker, "b", 1, &[]).await;
    let wakeups = |b: &std::sync::Arc<weir_broker::Broker>| {
        b.metrics()
            .fetch_wakeups
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let b = t.broker.clone();
    let on_b =
        tokio::spawn(async move { fetch(&b, fetch_req("b", &[(0, 0)], (0, -1), 30_000)).await });
    let b = t.broker.clone();
    let on_a0 =
        tokio::spawn(async move { fetch(&b, fetch_req("a", &[(0, 0)], (0, -1), 30_000)).await });
    settle().await;
    assert_eq!(t.broker.metrics().fetch_purgatory.get(), 2);
    // Appends to a-1 (the same topic as a waiting fetch, another
    // partition) wake nobody.
    for _ in 0..3 {
        produce(&t.broker, "a", 1, 1, batch(1, 0)).await;
    }
    settle().await;
    assert_eq!(wakeups(&t.broker), 0);
    assert!(!on_b.is_finished() && !on_a0.is_finished());
    // An append to b wakes the fetch on b, and only it.
    produce(&t.broker, "b", 0, 1, batch(2, 0)).await;
    let r = tokio::time::timeout(Duration::from_secs(10), on_b)
        .await
        .expect("the fetch on b should wake")
        .unwrap();
    assert!(!r.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    settle().await;
    assert_eq!(wakeups(&t.broker), 1);
    assert!(!on_a0.is_finished());
    assert_eq!(t.broker.metrics().fetch_purgatory.get(), 1);
    on_a0.abort();
}

#[tokio::test]
async fn incremental_sessions_send_only_changes() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 2, &[]).await;
    produce(&t.broker, "t", 0, -1, batch(2, 0)).await;
    // A full fetch creates the session and answers both partitions.
    let r = fetch(&t.broker, fetch_req("t", &[(0, 0), (1, 0)], (0, 0), 0)).await;
    let id = r.session_id;
    assert!(id > 0);
    assert_eq!(r.responses[0].partitions.len(), 2);
    // Nothing changed: an empty incremental request gets an empty answer.
    let r = fetch(&t.broker, fetch_req("t", &[(0, 2)], (id, 1), 0)).await;
    assert_eq!(r.error_code, 0);
    assert!(r.responses.is_empty(), "{r:?}");
    // New data in partition 1 is reported although the request omits it.
    produce(&t.broker, "t", 1, -1, batch(1, 0)).await;
    let r = fetch(&t.broker, fetch_req("t", &[], (id, 2), 0)).await;
    let parts: Vec<_> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
        .collect();
    assert_eq!(parts, [1]);
    // Wrong epoch and unknown session are refused.
    let r = fetch(&t.broker, fetch_req("t", &[], (id, 9), 0)).await;
    assert_eq!(r.error_code, ResponseError::InvalidFetchSessionEpoch.code());
    let r = fetch(&t.broker, fetch_req("t", &[], (id + 100, 1), 0)).await;
    assert_eq!(r.error_code, ResponseError::FetchSessionIdNotFound.code());
    // Forgetting a partition removes it from the session.
    let mut req = fetch_req("t", &[(1, 1)], (id, 3), 0);
    req.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(name("t"))
        .with_partitions(vec![0])];
    fetch(&t.broker, req).await;
    produce(&t.broker, "t", 0, -1, batch(1, 0)).await;
    let r = fetch(&t.broker, fetch_req("t", &[], (id, 4), 0)).await;
    assert!(r.responses.is_empty(), "{r:?}");
}

#[tokio::test]
async fn create_topics_validates_like_kafka() {
    let t = broker_with(&[]).await;
    assert_eq!(
        create(&t.broker, "ok.topic", 3, &[("retention.ms", "1000")]).await,
        0
    );
    assert_eq!(
        create(&t.broker, "ok.topic", 3, &[]).await,
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        create(&t.broker, "ok_topic", 1, &[]).await,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create(&t.broker, "bad name", 1, &[]).await,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create(&t.broker, "..", 1, &[]).await,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create(&t.broker, &"x".repeat(250), 1, &[]).await,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create(&t.broker, "zero", 0, &[]).await,
        ResponseError::InvalidPartitions.code()
    );
    assert_eq!(
        create(&t.broker, "cfg", 1, &[("no.such.config", "1")]).await,
        ResponseError::InvalidConfig.code()
    );
    assert_eq!(
        create(&t.broker, "cfg", 1, &[("retention.ms", "soon")]).await,
        ResponseError::InvalidConfig.code()
    );
    assert!(t.broker.topic("cfg").is_none());
}

#[tokio::test]
async fn metadata_auto_creates_only_when_enabled() {
    for (enabled, expect) in [
        ("true", 0),
        ("false", ResponseError::UnknownTopicOrPartition.code()),
    ] {
        let t = broker_with(&[
            ("auto.create.topics.enable", enabled),
            ("num.partitions", "4"),
        ])
        .await;
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("auto")))
            ]))
            .with_allow_auto_topic_creation(true);
        let Some(ResponseKind::Metadata(r)) = call(&t.broker, 12, RequestKind::Metadata(req)).await
        else {
            panic!()
        };
        assert_eq!(r.topics[0].error_code, expect);
        if expect == 0 {
            assert_eq!(r.topics[0].partitions.len(), 4);
            assert!(!r.topics[0].topic_id.is_nil());
        }
    }
}

#[tokio::test]
async fn metadata_by_topic_id_wins_over_an_empty_name() {
    let t = broker_with(&[]).await;
    assert_eq!(create(&t.broker, "by-id", 3, &[]).await, 0);
    let id = t.broker.topic("by-id").unwrap().id;
    // The Java admin client's describeTopics(TopicCollection.ofTopicIds):
    // v12+, a topic id and an empty name.
    let by_id = |id| {
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(name("")))
            .with_topic_id(id)]))
    };
    let Some(ResponseKind::Metadata(r)) =
        call(&t.broker, 12, RequestKind::Metadata(by_id(id))).await
    else {
        panic!()
    };
    let topic = &r.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.name.as_deref().map(|n| n.as_str()), Some("by-id"));
    assert_eq!((topic.topic_id, topic.partitions.len()), (id, 3));
    let unknown = uuid::Uuid::from_u128(42);
    let Some(ResponseKind::Metadata(r)) =
        call(&t.broker, 12, RequestKind::Metadata(by_id(unknown))).await
    else {
        panic!()
    };
    assert_eq!(
        (r.topics[0].error_code, r.topics[0].topic_id),
        (ResponseError::UnknownTopicId.code(), unknown)
    );
}

#[tokio::test]
async fn describe_topic_partitions_pages_by_partition_limit() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let t = broker_with(&[]).await;
    assert_eq!(create(&t.broker, "dtp-a", 3, &[]).await, 0);
    assert_eq!(create(&t.broker, "dtp-b", 2, &[]).await, 0);
    let page = |cursor: Option<(&str, i32)>| {
        let b = t.broker.clone();
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(
                ["dtp-b", "dtp-a", "dtp-none"]
                    .iter()
                    .map(|n| TopicRequest::default().with_name(name(n)))
                    .collect(),
            )
            .with_response_partition_limit(2)
            .with_cursor(cursor.map(|(n, p)| {
                Cursor::default()
                    .with_topic_name(name(n))
                    .with_partition_index(p)
            }));
        async move {
            let Some(ResponseKind::DescribeTopicPartitions(r)) =
                call(&b, 0, RequestKind::DescribeTopicPartitions(req)).await
            else {
                panic!()
            };
            let seen: Vec<(String, i16, Vec<i32>)> = r
                .topics
                .iter()
                .map(|t| {
                    let n = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                    let ps = t.partitions.iter().map(|p| p.partition_index).collect();
                    (n, t.error_code, ps)
                })
                .collect();
            let next = r
                .next_cursor
                .map(|c| (c.topic_name.to_string(), c.partition_index));
            (seen, next)
        }
    };
    let s = |n: &str| n.to_string();
    assert_eq!(
        page(None).await,
        (vec![(s("dtp-a"), 0, vec![0, 1])], Some((s("dtp-a"), 2)))
    );
    assert_eq!(
        page(Some(("dtp-a", 2))).await,
        (
            vec![(s("dtp-a"), 0, vec![2]), (s("dtp-b"), 0, vec![0])],
            Some((s("dtp-b"), 1))
        )
    );
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        page(Some(("dtp-b", 1))).await,
        (
            vec![(s("dtp-b"), 0, vec![1]), (s("dtp-none"), unknown, vec![])],
            None
        )
    );
}

#[tokio::test]
async fn describe_log_dirs_reports_the_volume() {
    let t = broker_with(&[]).await;
    let Some(ResponseKind::DescribeLogDirs(r)) = call(
        &t.broker,
        5,
        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
    )
    .await
    else {
        panic!()
    };
    let dir = &r.results[0];
    assert!(dir.total_bytes > 0, "{dir:?}");
    assert!((0..=dir.total_bytes).contains(&dir.usable_bytes), "{dir:?}");
}

#[tokio::test]
async fn topics_and_configs_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = common::open(dir.path(), &[]).await;
        create(&b, "kept", 3, &[("cleanup.policy", "compact")]).await;
        produce(&b, "kept", 2, -1, batch(4, 0)).await;
        b.shutdown().unwrap();
    }
    let b = common::open(dir.path(), &[]).await;
    let t = b.topic("kept").expect("topic survives");
    assert_eq!(t.partition_count(), 3);
    assert_eq!(
        t.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert_eq!(t.partition_offsets(2).unwrap().log_end, 4);
}

#[tokio::test]
async fn deleted_topics_can_be_recreated_empty() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1, &[]).await;
    produce(&t.broker, "t", 0, -1, batch(4, 0)).await;
    let id = t.broker.topic("t").unwrap().id;
    t.broker.delete_topic("t").unwrap();
    assert!(t.broker.topic("t").is_none());
    assert!(t.broker.topic_by_id(&id).is_none());
    create(&t.broker, "t", 1, &[]).await;
    assert_eq!(
        t.broker
            .topic("t")
            .unwrap()
            .partition_offsets(0)
            .unwrap()
            .log_end,
        0
    );
}

#[tokio::test]
async fn shutdown_answers_parked_long_polls_at_once() {
    let t = broker_with(&[]).await;
    create(&t.broker, "t", 1, &[]).await;
    let b = t.broker.clone();
    let waiter =
        tokio::spawn(async move { fetch(&b, fetch_req("t", &[(0, 0)], (0, -1), 60_000)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    t.broker.begin_shutdown();
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("fetch answers on shutdown")
        .unwrap();
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
}

/// A partition whose storage cannot be opened answers KAFKA_STORAGE_ERROR
/// (as Kafka does for a partition on an offline log directory), not
/// UNKNOWN_TOPIC_OR_PARTITION: the partition exists, its storage failed.
/// The topic's other partitions keep working.
#[tokio::test]
async fn a_partition_that_cannot_be_opened_answers_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = common::open(dir.path(), &[]).await;
        create(&b, "broken", 2, &[]).await;
        produce(&b, "broken", 1, -1, batch(2, 0)).await;
        b.shutdown().unwrap();
    }
    // Partition 1's directory becomes a file: the local engine cannot
    // open it (lazily, on first use).
    let part = dir.path().join("broken-1");
    std::fs::remove_dir_all(&part).unwrap();
    std::fs::write(&part, b"not a partition").unwrap();
    let b = common::open(dir.path(), &[]).await;
    let storage = ResponseError::KafkaStorageError.code();
    assert_eq!(
        produce(&b, "broken", 1, -1, batch(1, 0)).await,
        Some((storage, -1))
    );
    let r = fetch(&b, fetch_req("broken", &[(1, 0)], (0, -1), 0)).await;
    assert_eq!(r.responses[0].partitions[0].error_code, storage);
    let req = ListOffsetsRequest::default().with_topics(vec![
        kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
            .with_name(name("broken"))
            .with_partitions(vec![
                kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(-1),
            ]),
    ]);
    let Some(ResponseKind::ListOffsets(r)) = call(&b, 7, RequestKind::ListOffsets(req)).await
    else {
        panic!()
    };
    assert_eq!(r.topics[0].partitions[0].error_code, storage);
    // The other partition is unaffected, and a partition the topic does
    // not have is still unknown.
    assert_eq!(
        produce(&b, "broken", 0, -1, batch(1, 0)).await,
        Some((0, 0))
    );
    assert_eq!(
        produce(&b, "broken", 2, -1, batch(1, 0)).await,
        Some((ResponseError::UnknownTopicOrPartition.code(), -1))
    );
}

/// Defines module `$module` running each named test of this file with the
/// storage engine `$engine`, so one list serves every engine.
macro_rules! over_engine {
    ($module:ident, $engine:ident, [$($test:ident),+ $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::common::ENGINE.with(|e| e.set(super::common::Engine::$engine));
                    super::$test();
                }
            )+
        }
    };
}

/// Runs the storage-touching tests above over the engines other than the
/// local one: `Later` answers every storage call later (`common::LaterEngine`),
/// proving the handlers await the storage contract instead of relying on the
/// local engine answering at once; `Memory` keeps batches in memory
/// (`common::memory`), sharing no storage code with the local engine, so the
/// broker needs only the storage contract.
macro_rules! over_other_engines {
    ($($test:ident),+ $(,)?) => {
        over_engine!(over_an_engine_that_answers_later, Later, [$($test),+]);
        over_engine!(over_the_in_memory_engine, Memory, [$($test),+]);
    };
}

over_other_engines!(
    produce_then_fetch_mid_batch_returns_the_containing_batch,
    acks_zero_sends_no_response_but_appends,
    acks_zero_closes_the_connection_when_a_partition_fails,
    produce_errors_map_to_kafka_codes,
    fetch_out_of_range_and_at_the_end,
    long_poll_wakes_when_data_arrives,
    an_append_wakes_only_the_fetches_waiting_on_its_partition,
    incremental_sessions_send_only_changes,
    create_topics_validates_like_kafka,
    metadata_auto_creates_only_when_enabled,
    metadata_by_topic_id_wins_over_an_empty_name,
    describe_topic_partitions_pages_by_partition_limit,
    describe_log_dirs_reports_the_volume,
    topics_and_configs_survive_reopen,
    deleted_topics_can_be_recreated_empty,
    shutdown_answers_parked_long_polls_at_once,
);

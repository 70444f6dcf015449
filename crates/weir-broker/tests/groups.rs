//! Consumer groups through `Broker::handle`: commits survive a reopen.

mod common;

use common::call;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

async fn commit(
    b: &std::sync::Arc<weir_broker::Broker>,
    group: &str,
    topic: &str,
    p: i32,
    offset: i64,
    meta: &str,
) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(0)
                .with_committed_metadata(Some(s(meta)))])]);
    let Some(ResponseKind::OffsetCommit(r)) = call(b, 8, RequestKind::OffsetCommit(req)).await
    else {
        panic!()
    };
    r.topics[0].partitions[0].error_code
}

async fn fetch(
    b: &std::sync::Arc<weir_broker::Broker>,
    group: &str,
    topic: &str,
    p: i32,
) -> (i64, String) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![p])]));
    let Some(ResponseKind::OffsetFetch(r)) = call(b, 7, RequestKind::OffsetFetch(req)).await else {
        panic!()
    };
    let part = &r.topics[0].partitions[0];
    (
        part.committed_offset,
        part.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn committed_offsets_survive_reopen_and_later_commits_win() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = common::open(dir.path(), &[("offsets.topic.num.partitions", "3")]).await;
        b.create_topic("t", 2, Default::default(), false).unwrap();
        assert_eq!(commit(&b, "g", "t", 0, 5, "first").await, 0);
        assert_eq!(commit(&b, "g", "t", 0, 9, "second").await, 0);
        assert_eq!(commit(&b, "g", "t", 1, 3, "").await, 0);
        assert_eq!(commit(&b, "other", "t", 1, 1, "").await, 0);
        // Unknown partitions are refused, and nothing is stored for them.
        assert_eq!(
            commit(&b, "g", "t", 7, 1, "").await,
            kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(
            commit(&b, "g", "t", 0, 1, &"m".repeat(5000)).await,
            kafka_protocol::error::ResponseError::OffsetMetadataTooLarge.code()
        );
        assert_eq!(fetch(&b, "g", "t", 0).await, (9, "second".into()));
        // No shutdown: the reopen below must not depend on a clean stop.
    }
    let b = common::open(dir.path(), &[("offsets.topic.num.partitions", "3")]).await;
    assert_eq!(b.topic("__consumer_offsets").unwrap().partition_count(), 3);
    assert_eq!(fetch(&b, "g", "t", 0).await, (9, "second".into()));
    assert_eq!(fetch(&b, "g", "t", 1).await.0, 3);
    assert_eq!(fetch(&b, "other", "t", 1).await.0, 1);
    assert_eq!(fetch(&b, "nobody", "t", 1).await.0, -1);
    // Deleting the (empty) group drops its offsets, also across a reopen.
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    let Some(ResponseKind::DeleteGroups(r)) = call(&b, 2, RequestKind::DeleteGroups(req)).await
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, 0);
    drop(b);
    let b = common::open(dir.path(), &[("offsets.topic.num.partitions", "3")]).await;
    assert_eq!(fetch(&b, "g", "t", 0).await.0, -1);
    assert_eq!(fetch(&b, "other", "t", 1).await.0, 1);
}

#[tokio::test]
async fn internal_topics_cannot_be_deleted() {
    let t = common::broker_with(&[]).await;
    assert!(t.broker.delete_topic("__consumer_offsets").is_err());
}

#[tokio::test]
async fn lag_is_high_watermark_minus_committed() {
    let t = common::broker_with(&[("offsets.topic.num.partitions", "1")]).await;
    t.broker
        .create_topic("t", 2, Default::default(), false)
        .unwrap();
    let records = (0..10)
        .map(|_| (None, Some(bytes::Bytes::from_static(b"v"))))
        .collect();
    t.broker
        .internal_log()
        .append("t", 1, records, None)
        .await
        .unwrap();
    assert_eq!(commit(&t.broker, "g", "t", 1, 4, "").await, 0);
    let lag = t.broker.group_lag("g");
    assert_eq!(lag.len(), 1);
    assert_eq!(
        (
            lag[0].partition,
            lag[0].committed,
            lag[0].high_watermark,
            lag[0].lag
        ),
        (1, 4, Some(10), Some(6))
    );
}

#[tokio::test]
async fn standalone_offsets_expire_after_retention_and_survive_before() {
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        ("offsets.topic.num.partitions", "1"),
        ("offsets.retention.minutes", "1"),
    ];
    let b = common::open(dir.path(), &settings).await;
    b.create_topic("t", 1, Default::default(), false).unwrap();
    assert_eq!(commit(&b, "g", "t", 0, 5, "").await, 0);
    let now = b.now_ms();
    b.expire_offsets_at(now + 30_000);
    assert_eq!(
        fetch(&b, "g", "t", 0).await.0,
        5,
        "not expired within retention"
    );
    b.expire_offsets_at(now + 61_000);
    assert_eq!(
        fetch(&b, "g", "t", 0).await.0,
        -1,
        "expired after retention"
    );
    // The expiry is persisted: a reopen does not bring the offset back.
    drop(b);
    let b = common::open(dir.path(), &settings).await;
    assert_eq!(fetch(&b, "g", "t", 0).await.0, -1);
}

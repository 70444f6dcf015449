//! The share-group messages Weir patched into the codec (ShareFetch and
//! ShareAcknowledge v2, DescribeShareGroupOffsets v1) encode byte for byte
//! as kafka-clients 4.3's generated message classes do. The expected bytes
//! were produced by those classes (`Message.write`) from the same values.

use bytes::BytesMut;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsResponse, GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
    ShareFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

fn hex(m: &impl Encodable, version: i16) -> String {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version).unwrap();
    assert_eq!(m.compute_size(version).unwrap(), buf.len());
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> bytes::Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

/// Kafka's `new Uuid(1, 2)`.
fn uuid_1_2() -> Uuid {
    Uuid::from_u64_pair(1, 2)
}

#[test]
fn share_fetch_v2_matches_kafka() {
    let req = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
        .with_member_id(Some(StrBytes::from_static_str("m")))
        .with_share_session_epoch(3)
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1000)
        .with_max_records(10)
        .with_batch_size(5)
        .with_share_acquire_mode(1)
        .with_is_renew_ack(true)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(uuid_1_2())
            .with_partitions(vec![FetchPartition::default()
                .with_partition_index(7)
                .with_acknowledgement_batches(vec![
                    AcknowledgementBatch::default()
                        .with_first_offset(4)
                        .with_last_offset(6)
                        .with_acknowledge_types(vec![4]),
                ])])]);
    let expected = "0267026d00000003000001f400000001000003e80000000a00000005010102000000000000000100000000000000020200000007020000000000000004000000000000000602040000000100";
    assert_eq!(hex(&req, 2), expected);
    let back = ShareFetchRequest::decode(&mut unhex(expected), 2).unwrap();
    assert_eq!(back, req);
    // v1 has neither field: a renew flag cannot be encoded there.
    assert!(req.encode(&mut BytesMut::new(), 1).is_err());
}

#[test]
fn share_acknowledge_v2_matches_kafka() {
    let req = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
        .with_member_id(Some(StrBytes::from_static_str("m")))
        .with_share_session_epoch(2)
        .with_is_renew_ack(true);
    assert_eq!(hex(&req, 2), "0267026d00000002010100");
    let resp = ShareAcknowledgeResponse::default().with_acquisition_lock_timeout_ms(1234);
    assert_eq!(hex(&resp, 2), "00000000000000000004d2010100");
    // v1 silently drops the ignorable field, as Kafka does.
    assert_eq!(hex(&resp, 1), "00000000000000010100");
}

#[test]
fn describe_share_group_offsets_v1_carries_lag() {
    let resp = DescribeShareGroupOffsetsResponse::default().with_groups(vec![
        DescribeShareGroupOffsetsResponseGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("t")))
                .with_topic_id(uuid_1_2())
                .with_partitions(vec![
                    DescribeShareGroupOffsetsResponsePartition::default()
                        .with_partition_index(0)
                        .with_start_offset(5)
                        .with_leader_epoch(0)
                        .with_lag(9),
                ])]),
    ]);
    assert_eq!(
        hex(&resp, 1),
        "00000000020267020274000000000000000100000000000000020200000000000000000000000500000000000000000000000900000000000000000000"
    );
}

//! Shared helpers: a broker on a temporary directory, and record batches.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_broker::{Broker, BrokerConfig, BrokerSettings, Reply};

pub struct TestBroker {
    pub broker: Arc<Broker>,
    pub dir: tempfile::TempDir,
}

pub fn broker_with(settings: &[(&str, &str)]) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), settings);
    TestBroker { broker, dir }
}

pub fn open(path: &std::path::Path, settings: &[(&str, &str)]) -> Arc<Broker> {
    let settings =
        BrokerSettings::from_static(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap();
    let engine = weir_log::LocalEngine::open(weir_log::EngineConfig {
        data_dir: path.to_path_buf(),
        ..weir_log::EngineConfig::default()
    })
    .unwrap();
    Broker::open(
        BrokerConfig {
            node_id: 0,
            data_dir: path.to_path_buf(),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            settings,
        },
        engine,
    )
    .unwrap()
}

pub fn header(api: kafka_protocol::messages::ApiKey, version: i16) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_client_id(Some(StrBytes::from_static_str("test")))
}

/// Sends a request through the broker and waits for the response.
pub async fn call(broker: &Arc<Broker>, version: i16, body: RequestKind) -> Option<ResponseKind> {
    let api = api_of(&body);
    match broker.handle(&header(api, version), body) {
        Reply::None => None,
        Reply::Ready(r) => Some(r),
        Reply::Later(f) => Some(f.await),
    }
}

fn api_of(body: &RequestKind) -> kafka_protocol::messages::ApiKey {
    use kafka_protocol::messages::ApiKey;
    match body {
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
        RequestKind::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
        RequestKind::CreatePartitions(_) => ApiKey::CreatePartitions,
        RequestKind::OffsetForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
        RequestKind::DeleteRecords(_) => ApiKey::DeleteRecords,
        RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
        RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        RequestKind::DeleteGroups(_) => ApiKey::DeleteGroups,
        RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
        RequestKind::AddPartitionsToTxn(_) => ApiKey::AddPartitionsToTxn,
        RequestKind::AddOffsetsToTxn(_) => ApiKey::AddOffsetsToTxn,
        RequestKind::EndTxn(_) => ApiKey::EndTxn,
        RequestKind::TxnOffsetCommit(_) => ApiKey::TxnOffsetCommit,
        RequestKind::DescribeProducers(_) => ApiKey::DescribeProducers,
        RequestKind::DescribeTransactions(_) => ApiKey::DescribeTransactions,
        RequestKind::ListTransactions(_) => ApiKey::ListTransactions,
        RequestKind::DescribeLogDirs(_) => ApiKey::DescribeLogDirs,
        RequestKind::DescribeTopicPartitions(_) => ApiKey::DescribeTopicPartitions,
        other => panic!("add {other:?} to api_of"),
    }
}

/// One batch of `n` records with values `v{i}` and keys `k{i}`.
pub fn batch(n: usize, timestamp: i64) -> Bytes {
    producer_batch(n, timestamp, -1, -1, -1, false)
}

/// [`batch`] from a producer: id, epoch, first sequence, transactional.
pub fn producer_batch(
    n: usize,
    timestamp: i64,
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence
            // changes; without a producer this keeps one batch with base
            // sequence -1.
            sequence: if producer_id < 0 {
                i as i32 - 1
            } else {
                first_seq + i as i32
            },
            timestamp: timestamp + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// One record with the given key and value, in its own batch.
pub fn keyed_batch(key: Bytes, value: Bytes) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1000,
        key: Some(key),
        value: Some(value),
        headers: IndexMap::new(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

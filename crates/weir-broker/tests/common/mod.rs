//! Shared helpers: a broker on a temporary directory, and record batches.

#![allow(dead_code)]

pub mod memory;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_broker::{Broker, BrokerConfig, BrokerSettings, Reply};
use weir_log::{
    AppendInfo, BoxFuture, LogConfig, LogEngine, LogError, LogOffsets, PartitionLog, ReadLimit,
    ReadResult, TimestampOffset, TopicPartition,
};

/// An engine that answers every storage call later, as one whose storage
/// is a network away does: each future is pending when first polled, an
/// append takes its place in the log at call time (as the contract asks)
/// and the other calls do their work only when awaited. The broker must
/// give the same answers over it as over the local engine.
#[derive(Debug)]
pub struct LaterEngine(pub Arc<weir_log::LocalEngine>);

#[derive(Debug)]
struct LaterPartition(Arc<dyn PartitionLog>);

/// `fut`, pending once before it is polled.
fn later<T: Send + 'static>(
    fut: BoxFuture<'static, Result<T, LogError>>,
) -> BoxFuture<'static, Result<T, LogError>> {
    Box::pin(async move {
        tokio::task::yield_now().await;
        fut.await
    })
}

impl PartitionLog for LaterPartition {
    fn append(
        &self,
        records: Bytes,
        epoch: i32,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        later(self.0.append(records, epoch))
    }
    fn wait_durable(&self, end: i64) -> BoxFuture<'static, Result<(), LogError>> {
        later(self.0.wait_durable(end))
    }
    fn read(
        &self,
        offset: i64,
        max: usize,
        limit: ReadLimit,
    ) -> BoxFuture<'static, Result<ReadResult, LogError>> {
        let log = self.0.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            log.read(offset, max, limit).await
        })
    }
    fn offsets(&self) -> LogOffsets {
        self.0.offsets()
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.0.subscribe()
    }
    fn offset_for_timestamp(
        &self,
        ts: i64,
    ) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        let log = self.0.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            log.offset_for_timestamp(ts).await
        })
    }
    fn max_timestamp(&self) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        let log = self.0.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            log.max_timestamp().await
        })
    }
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.0.end_offset_for_epoch(epoch)
    }
    fn delete_records(&self, offset: i64) -> BoxFuture<'static, Result<i64, LogError>> {
        let log = self.0.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            log.delete_records(offset).await
        })
    }
    fn size_bytes(&self) -> u64 {
        self.0.size_bytes()
    }
    fn producers(&self) -> Result<Vec<(i64, weir_log::producer::ProducerEntry)>, LogError> {
        self.0.producers()
    }
    fn aborted_transactions(&self, from: i64, to: i64) -> Vec<weir_log::producer::AbortedTxn> {
        self.0.aborted_transactions(from, to)
    }
    fn set_config(&self, config: LogConfig) {
        self.0.set_config(config);
    }
}

impl LogEngine for LaterEngine {
    fn open(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionLog>, LogError> {
        let inner: Arc<dyn PartitionLog> = self.0.open(tp, config)?;
        Ok(Arc::new(LaterPartition(inner)))
    }
    fn remove(&self, tp: &TopicPartition) -> Result<(), LogError> {
        self.0.remove(tp)
    }
    fn partitions(&self) -> Result<Vec<TopicPartition>, LogError> {
        self.0.partitions()
    }
    fn shutdown(&self) -> Result<(), LogError> {
        self.0.shutdown()
    }
}

pub struct TestBroker {
    pub broker: Arc<Broker>,
    pub dir: tempfile::TempDir,
}

pub async fn broker_with(settings: &[(&str, &str)]) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), settings).await;
    TestBroker { broker, dir }
}

pub async fn open(path: &std::path::Path, settings: &[(&str, &str)]) -> Arc<Broker> {
    open_over(path, settings, ENGINE.with(std::cell::Cell::get)).await
}

/// The storage engine a test's brokers run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// weir-log's local engine.
    Local,
    /// The local engine behind [`LaterEngine`].
    Later,
    /// [`memory::MemoryEngine`].
    Memory,
}

thread_local! {
    /// Set by a test to run its brokers over another engine; tokio's test
    /// runtime runs the test on its own thread.
    pub static ENGINE: std::cell::Cell<Engine> = const { std::cell::Cell::new(Engine::Local) };
}

/// A broker on `path` over `engine`.
pub async fn open_over(
    path: &std::path::Path,
    settings: &[(&str, &str)],
    engine: Engine,
) -> Arc<Broker> {
    let settings =
        BrokerSettings::from_static(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap();
    let local = || {
        weir_log::LocalEngine::open(weir_log::EngineConfig {
            data_dir: path.to_path_buf(),
            ..weir_log::EngineConfig::default()
        })
        .unwrap()
    };
    let engine: Arc<dyn LogEngine> = match engine {
        Engine::Local => local(),
        Engine::Later => Arc::new(LaterEngine(local())),
        Engine::Memory => memory::engine_for(path),
    };
    Broker::open(
        BrokerConfig {
            node_id: 0,
            data_dir: path.to_path_buf(),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            settings,
            clock: weir_log::Clock::system(),
        },
        engine,
    )
    .await
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
        Reply::None | Reply::Close => None,
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

//! In-process access to internal topics for services built into the
//! binary (the schema registry): create a compacted topic, append keyed
//! records and wait for their durability as an acks=all produce does, and
//! read a partition back from the start. Also the hook through which such a
//! service checks produced records ([`RecordValidator`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_log::{BoxFuture, ReadLimit};

use crate::broker::{Broker, Topic};
use crate::BrokerError;

/// A key and an optional value (`None`: a tombstone).
pub type KeyValue = (Option<Bytes>, Option<Bytes>);

/// Topic configs that turn on broker-side schema validation of record keys
/// and values (Confluent Server's names).
pub const KEY_VALIDATION: &str = "confluent.key.schema.validation";
/// See [`KEY_VALIDATION`].
pub const VALUE_VALIDATION: &str = "confluent.value.schema.validation";

/// Checks produced records; installed by the schema registry.
pub trait RecordValidator: Send + Sync + std::fmt::Debug {
    /// Checks one record's key (`is_key`) or value produced to `topic`;
    /// a refusal is [`BrokerError::InvalidRecord`] with the message
    /// returned to the producer.
    fn check(&self, topic: &str, is_key: bool, data: &[u8]) -> Result<(), BrokerError>;
}

/// Decodes every record of `records` (v2 batches, any compression).
pub fn decode_records(records: &Bytes) -> Result<Vec<KeyValue>, BrokerError> {
    let mut buf = records.clone();
    let sets =
        RecordBatchDecoder::decode_all(&mut buf).map_err(|e| BrokerError::CorruptRecords {
            reason: e.to_string(),
        })?;
    Ok(sets
        .into_iter()
        .flat_map(|s| s.records)
        .filter(|r| !r.control)
        .map(|r| (r.key, r.value))
        .collect())
}

/// The produce-path check: an error when the topic asks for schema
/// validation and a record fails it. Topics without the configs pay one
/// map lookup per config.
pub(crate) fn validate_produce(
    broker: &Broker,
    topic: &Topic,
    records: &Bytes,
) -> Result<(), BrokerError> {
    let on = |k: &str| topic.configs.get(k).is_some_and(|v| v == "true");
    let (keys, values) = (on(KEY_VALIDATION), on(VALUE_VALIDATION));
    if !keys && !values {
        return Ok(());
    }
    let Some(validator) = broker.record_validator() else {
        return Err(BrokerError::InvalidRecord {
            reason: format!(
                "topic {} requires schema validation but no schema registry is running",
                topic.name
            ),
        });
    };
    for (key, value) in decode_records(records)? {
        // A null key or value carries no data to validate (tombstones on
        // compacted topics, unkeyed records).
        if let Some(k) = key.filter(|_| keys) {
            validator.check(&topic.name, true, &k)?;
        }
        if let Some(v) = value.filter(|_| values) {
            validator.check(&topic.name, false, &v)?;
        }
    }
    Ok(())
}

impl Broker {
    /// Creates a compacted internal topic with `partitions` partitions if
    /// it does not exist yet.
    pub fn ensure_compacted_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        if self.topic(name).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        match self.create_topic(name, partitions, configs, false) {
            Ok(_) | Err(BrokerError::TopicExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Appends keyed records to one partition in one batch, returning the
    /// offset of the first and the wait for durability (what an acks=all
    /// produce waits for).
    pub fn append_records(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
    ) -> Result<(i64, BoxFuture<'static, Result<(), weir_log::LogError>>), BrokerError> {
        let log = self
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .ok_or_else(|| BrokerError::Internal(format!("{topic}-{partition} is missing")))?;
        let ts = crate::groups::now_ms();
        let records: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let i = i32::try_from(i).unwrap_or(i32::MAX);
                Record {
                    transactional: false,
                    control: false,
                    partition_leader_epoch: crate::LEADER_EPOCH,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i64::from(i),
                    // One batch with base sequence -1 (no idempotence).
                    sequence: i - 1,
                    timestamp: ts,
                    key,
                    value,
                    headers: IndexMap::new(),
                    delete_horizon: false,
                }
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
        .map_err(|e| BrokerError::Internal(format!("cannot encode records: {e}")))?;
        let info = log.append(buf.freeze(), crate::LEADER_EPOCH)?;
        self.notify_data();
        Ok((info.base_offset, log.wait_durable(info.last_offset + 1)))
    }

    /// Every record of one partition from its start, in offset order.
    pub fn read_records(&self, topic: &str, partition: i32) -> Result<Vec<KeyValue>, BrokerError> {
        Ok(self
            .read_records_at(topic, partition)?
            .into_iter()
            .map(|(_, kv)| kv)
            .collect())
    }

    /// [`Broker::read_records`] with each record's offset.
    pub fn read_records_at(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<(i64, KeyValue)>, BrokerError> {
        let log = self
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .ok_or_else(|| BrokerError::Internal(format!("{topic}-{partition} is missing")))?;
        let mut out = Vec::new();
        let mut offset = log.offsets().log_start;
        loop {
            let r = log.read(offset, 1 << 20, ReadLimit::LogEnd)?;
            if r.records.is_empty() {
                break;
            }
            let mut buf = r.records.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| {
                BrokerError::Internal(format!("{topic} holds an undecodable batch: {e}"))
            })?;
            let mut last = offset;
            for set in sets {
                for rec in set.records {
                    // The first batch may start before `offset`.
                    if rec.offset >= offset && !rec.control {
                        out.push((rec.offset, (rec.key, rec.value)));
                    }
                    last = last.max(rec.offset + 1);
                }
            }
            if last <= offset {
                break;
            }
            offset = last;
        }
        Ok(out)
    }

    /// Installs the produce-path validator (once; later calls are ignored).
    pub fn set_record_validator(&self, v: Arc<dyn RecordValidator>) {
        let _ = self.validator.set(v);
    }

    /// The installed validator.
    pub fn record_validator(&self) -> Option<&Arc<dyn RecordValidator>> {
        self.validator.get()
    }
}

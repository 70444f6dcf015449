//! Broker-side record validation: the hook through which a service built
//! into the binary (the schema registry) checks produced records, for
//! topics that ask for it.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::error::BrokerError;
use crate::internal_log::KeyValue;
use crate::topics::Topic;

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
    validator: Option<&Arc<dyn RecordValidator>>,
    topic: &Topic,
    records: &Bytes,
) -> Result<(), BrokerError> {
    let on = |k: &str| topic.configs.get(k).is_some_and(|v| v == "true");
    let (keys, values) = (on(KEY_VALIDATION), on(VALUE_VALIDATION));
    if !keys && !values {
        return Ok(());
    }
    let Some(validator) = validator else {
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

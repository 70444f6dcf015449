//! The in-process internal-topic API and the produce-path validator hook.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{batch, broker_with, call, open};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_broker::internal_topic::{RecordValidator, VALUE_VALIDATION};
use weir_broker::BrokerError;

async fn produce(b: &Arc<weir_broker::Broker>, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let Some(ResponseKind::Produce(r)) = call(b, 9, RequestKind::Produce(req)).await else {
        panic!()
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test]
async fn append_is_durable_and_reads_back_after_reopen() {
    let t = broker_with(&[]);
    t.broker.ensure_compacted_topic("_internal", 1).unwrap();
    // Idempotent.
    t.broker.ensure_compacted_topic("_internal", 1).unwrap();
    let kv = |k: &str, v: Option<&str>| {
        (
            Some(Bytes::from(k.to_string())),
            v.map(|v| Bytes::from(v.to_string())),
        )
    };
    let (base, durable) = t
        .broker
        .append_records("_internal", 0, vec![kv("a", Some("1")), kv("b", None)])
        .unwrap();
    assert_eq!(base, 0);
    durable.await.unwrap();
    let (base, durable) = t
        .broker
        .append_records("_internal", 0, vec![kv("a", Some("2"))])
        .unwrap();
    assert_eq!(base, 2);
    durable.await.unwrap();
    assert!(t.broker.append_records("missing", 0, vec![]).is_err());
    t.broker.shutdown().unwrap();
    drop(t.broker);
    let b = open(t.dir.path(), &[]);
    let back = b.read_records("_internal", 0).unwrap();
    assert_eq!(
        back,
        vec![kv("a", Some("1")), kv("b", None), kv("a", Some("2"))]
    );
    let topic = b.topic("_internal").unwrap();
    assert_eq!(topic.configs.get("cleanup.policy").unwrap(), "compact");
}

#[derive(Debug)]
struct OnlyV0;

impl RecordValidator for OnlyV0 {
    fn check(&self, _topic: &str, is_key: bool, data: &[u8]) -> Result<(), BrokerError> {
        assert!(!is_key, "keys are not validated on this topic");
        if data == b"v0" {
            Ok(())
        } else {
            Err(BrokerError::InvalidRecord {
                reason: format!("{} refused", String::from_utf8_lossy(data)),
            })
        }
    }
}

#[tokio::test]
async fn validation_refuses_whole_batches_only_where_configured() {
    let t = broker_with(&[]);
    let configs = [(VALUE_VALIDATION.to_string(), "true".to_string())];
    t.broker
        .create_topic("checked", 1, configs.into_iter().collect(), false)
        .unwrap();
    t.broker
        .create_topic("free", 1, Default::default(), false)
        .unwrap();
    // Asked for but no validator installed: refused, not let through.
    assert_eq!(
        produce(&t.broker, "checked", batch(1, 0)).await.0,
        ResponseError::InvalidRecord.code()
    );
    t.broker.set_record_validator(Arc::new(OnlyV0));
    // batch(2) holds v0 and v1: refused whole, nothing appended.
    assert_eq!(
        produce(&t.broker, "checked", batch(2, 0)).await.0,
        ResponseError::InvalidRecord.code()
    );
    assert_eq!(
        t.broker.topic("checked").unwrap().partitions[0]
            .offsets()
            .log_end,
        0
    );
    // batch(1) holds only v0.
    assert_eq!(produce(&t.broker, "checked", batch(1, 0)).await, (0, 0));
    assert_eq!(produce(&t.broker, "free", batch(2, 0)).await, (0, 0));
}

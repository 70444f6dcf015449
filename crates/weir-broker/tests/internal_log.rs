//! The internal log (one write path for internal topics) over the topics
//! service, and the produce-path validator hook.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::{batch, broker_with, call, open};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_broker::internal_log::{read_records, Entry, TxnProducer};
use weir_broker::validation::{RecordValidator, VALUE_VALIDATION};
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
    let t = broker_with(&[]).await;
    let log = t.broker.internal_log();
    let compact = || BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    assert_eq!(
        log.ensure_topic("_internal", 1, compact()).await.unwrap(),
        1
    );
    // Idempotent, and an existing topic keeps its partition count.
    assert_eq!(
        log.ensure_topic("_internal", 3, compact()).await.unwrap(),
        1
    );
    let kv = |k: &str, v: Option<&str>| {
        (
            Some(Bytes::from(k.to_string())),
            v.map(|v| Bytes::from(v.to_string())),
        )
    };
    let appended = log
        .append(
            "_internal",
            0,
            vec![kv("a", Some("1")), kv("b", None)],
            None,
        )
        .await
        .unwrap();
    assert_eq!((appended.base_offset, appended.last_offset), (0, 1));
    appended.durable.await.unwrap();
    let appended = log
        .append("_internal", 0, vec![kv("a", Some("2"))], None)
        .await
        .unwrap();
    assert_eq!(appended.base_offset, 2);
    appended.durable.await.unwrap();
    assert!(log.append("missing", 0, vec![], None).await.is_err());
    t.broker.shutdown().unwrap();
    drop((t.broker, log));
    let b = open(t.dir.path(), &[]).await;
    let back = read_records(&*b.internal_log(), "_internal", 0)
        .await
        .unwrap();
    assert_eq!(
        back,
        vec![kv("a", Some("1")), kv("b", None), kv("a", Some("2"))]
    );
    let topic = b.topic("_internal").unwrap();
    assert_eq!(topic.configs.get("cleanup.policy").unwrap(), "compact");
}

#[tokio::test]
async fn transactional_records_read_back_with_their_producer() {
    let t = broker_with(&[]).await;
    let log = t.broker.internal_log();
    log.ensure_topic("_txn", 1, BTreeMap::new()).await.unwrap();
    let k = |s: &str| (Some(Bytes::from(s.to_string())), None);
    let txn = TxnProducer {
        producer_id: 42,
        epoch: 3,
    };
    log.append("_txn", 0, vec![k("plain")], None).await.unwrap();
    log.append("_txn", 0, vec![k("in-txn")], Some(txn))
        .await
        .unwrap();
    let entries = log.read("_txn", 0).await.unwrap();
    assert_eq!(
        entries,
        vec![
            Entry::Record {
                key: Some(Bytes::from("plain")),
                value: None,
                transactional_producer: None
            },
            Entry::Record {
                key: Some(Bytes::from("in-txn")),
                value: None,
                transactional_producer: Some(42)
            },
        ]
    );
    // Records inside transactions are not "live" records.
    let live = read_records(&*log, "_txn", 0).await.unwrap();
    assert_eq!(live, vec![k("plain")]);
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
    let t = broker_with(&[]).await;
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
        t.broker
            .topic("checked")
            .unwrap()
            .partition_offsets(0)
            .unwrap()
            .log_end,
        0
    );
    // batch(1) holds only v0.
    assert_eq!(produce(&t.broker, "checked", batch(1, 0)).await, (0, 0));
    assert_eq!(produce(&t.broker, "free", batch(2, 0)).await, (0, 0));
}

//! Sending one record through an identity's producer, for v2 and v3.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, Timestamp};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::error::{RestError, Result};
use crate::time::now_ms;

/// A record to produce, already serialized.
#[derive(Debug, Default, Clone)]
pub(crate) struct Record {
    /// `None`: the producer's partitioner picks (murmur2 of the key, as
    /// Kafka's Java producer, or any partition without a key).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch; now when `None`.
    pub timestamp: Option<i64>,
}

/// Where a record landed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivered {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
}

/// How long a record may wait for room in the producer's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// A record in the producer's queue, not yet acknowledged.
pub(crate) struct Pending {
    delivery: DeliveryFuture,
    timestamp: i64,
}

/// Puts `record` in `producer`'s queue for `topic` (waiting while the
/// queue is full). Records enqueued one after the other keep that order
/// within a partition.
pub(crate) async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    record: &Record,
) -> Result<Pending> {
    let timestamp = record.timestamp.unwrap_or_else(now_ms);
    let headers = (!record.headers.is_empty()).then(|| {
        let mut h = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            h = h.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        h
    });
    let deadline = Instant::now() + QUEUE_TIMEOUT;
    loop {
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).timestamp(timestamp);
        fr.partition = record.partition;
        fr.key = record.key.as_deref();
        fr.payload = record.value.as_deref();
        fr.headers = headers.clone();
        match producer.send_result(fr) {
            Ok(delivery) => {
                return Ok(Pending {
                    delivery,
                    timestamp,
                })
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(RestError::from(e)),
        }
    }
}

impl Pending {
    /// Waits for the record's acknowledgement.
    pub(crate) async fn delivered(self) -> Result<Delivered> {
        match self.delivery.await {
            Ok(Ok(d)) => Ok(Delivered {
                partition: d.partition,
                offset: d.offset,
                timestamp: match d.timestamp {
                    Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
                    Timestamp::NotAvailable => self.timestamp,
                },
            }),
            Ok(Err((e, _))) => Err(RestError::from(e)),
            Err(_) => Err(RestError::Internal("the producer went away".into())),
        }
    }
}

/// librdkafka producer settings the proxy applies unless configured.
pub(crate) const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // Batches concurrent HTTP requests into shared produce requests
    // without delaying a lone one noticeably.
    ("linger.ms", "5"),
    // Kafka's Java producer (which Confluent's proxy uses) partitions keys
    // with murmur2: the same key lands where a Java client would put it.
    ("partitioner", "murmur2_random"),
];

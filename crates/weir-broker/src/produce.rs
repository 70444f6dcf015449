//! Produce: append record batches as they arrive, answering acks=all only
//! once they are durable.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;
use weir_log::{AppendInfo, BoxFuture, LogError, PartitionLog};

use crate::context::{Reply, RequestContext};
use crate::error::log_error_code;
use crate::internal_log::{self, ready_now};
use crate::metrics::{Metrics, TopicCounters};
use crate::security::Security;
use crate::topics::{Topic, Topics};
use crate::transactions::Transactions;
use crate::txn_coordinator::produce_error;
use crate::validation::RecordValidator;
use crate::BrokerError;

/// A pending fsync for one partition's append.
type DurableWait = BoxFuture<'static, Result<(), weir_log::LogError>>;

/// An append the engine took in order but has not answered yet.
struct Pending {
    /// Indexes of its topic and partition in the response.
    at: (usize, usize),
    log: Arc<dyn PartitionLog>,
    appending: BoxFuture<'static, Result<AppendInfo, LogError>>,
    /// The topic's counters, with the request's bytes and records.
    counted: Option<(Arc<TopicCounters>, usize, u64)>,
    topic: String,
    partition: i32,
}

/// The partition's answer to an append's result, and the offset its
/// durability wait must reach when it succeeded.
fn settle(
    topic: &str,
    partition: i32,
    resp: PartitionProduceResponse,
    result: Result<AppendInfo, LogError>,
    counted: Option<(Arc<TopicCounters>, usize, u64)>,
) -> (PartitionProduceResponse, Option<i64>) {
    match result {
        Ok(info) => {
            if let Some((c, bytes, messages)) = counted {
                c.record_in(bytes, messages);
            }
            let resp = resp
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start);
            (resp, Some(info.last_offset + 1))
        }
        Err(e) => {
            tracing::debug!(topic, partition, error = %e, "append rejected");
            let code = log_error_code(&e);
            let resp = resp
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
                .with_record_errors(record_errors(&e));
            (resp, None)
        }
    }
}

/// Answers a Produce request. Appends happen now, in request order; with
/// acks=all the reply waits for the group commit that makes them durable.
///
/// With authorization on, a transactional producer needs WRITE on its
/// transactional id (else every partition fails with
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and each topic needs WRITE
/// (else TOPIC_AUTHORIZATION_FAILED for its partitions), as in Kafka.
pub fn handle(
    topics: &Topics,
    txns: &Transactions,
    security: &Security,
    metrics: &Metrics,
    validator: Option<&Arc<dyn RecordValidator>>,
    ctx: &RequestContext<'_>,
    req: ProduceRequest,
) -> Reply {
    let (version, session) = (ctx.version, ctx.session);
    let acks = req.acks;
    let txn_denied = req.transactional_id.as_ref().is_some_and(|t| {
        !security.authorize(
            session,
            AclOperation::Write,
            ResourceType::TransactionalId,
            t,
        )
    });
    let txn_added = if version >= 12 && !txn_denied && matches!(acks, -1..=1) {
        add_to_transaction(topics, txns, security, &req, version, session)
    } else {
        None
    };
    let mut waits: Vec<(usize, usize, DurableWait)> = Vec::new();
    let mut later: Vec<Pending> = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        let topic = if version >= 13 {
            topics.topic_by_id(&td.topic_id)
        } else {
            topics.topic(&td.name)
        };
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let counters = topic.as_ref().map(|t| metrics.topic(&t.name));
        // An unknown topic id is reported as such; a name is checked
        // whether or not the topic exists, so existence does not leak.
        let denied = if txn_denied {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else {
            let name = topic
                .as_ref()
                .map(|t| t.name.as_str())
                .or((version < 13).then_some(td.name.as_str()));
            name.filter(|n| {
                !security.authorize(session, AclOperation::Write, ResourceType::Topic, n)
            })
            .map(|_| ResponseError::TopicAuthorizationFailed)
        };
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for (pi, pd) in td.partition_data.into_iter().enumerate() {
            let resp = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1);
            let fail = |e: ResponseError, msg: Option<String>| {
                resp.clone()
                    .with_error_code(e.code())
                    .with_error_message(msg.map(StrBytes::from_string))
            };
            if !matches!(acks, -1..=1) {
                parts.push(fail(ResponseError::InvalidRequiredAcks, None));
                continue;
            }
            if let Some(e) = denied {
                parts.push(fail(e, None));
                continue;
            }
            let log = match topic.as_ref().map(|t| t.open_partition(pd.index)) {
                Some(Ok(Some(log))) => log,
                Some(Err(e)) => {
                    parts.push(fail(ResponseError::KafkaStorageError, Some(e.to_string())));
                    continue;
                }
                None | Some(Ok(None)) => {
                    parts.push(fail(unknown, None));
                    continue;
                }
            };
            let Some(records) = pd.records else {
                parts.push(fail(
                    ResponseError::CorruptMessage,
                    Some("produce request without records".into()),
                ));
                continue;
            };
            let (bytes, messages) = (records.len(), crate::metrics::count_records(&records));
            let topic_name = topic.as_ref().map_or("", |t| t.name.as_str());
            let checked = check_producer(
                txns,
                version,
                req.transactional_id.as_ref().map(|t| t.as_str()),
                topic_name,
                pd.index,
                &records,
            )
            .and_then(|()| match &topic {
                Some(t) => crate::validation::validate_produce(validator, t, &records),
                None => Ok(()),
            });
            if let Err(e) = checked {
                parts.push(fail(e.code(), Some(e.to_string())));
                continue;
            }
            let records = match topic.as_ref().and_then(|t| compression_for(topics, t)) {
                None => records,
                Some((codec, level)) => match weir_log::batch::recompress(&records, codec, level) {
                    Ok(r) => r,
                    Err(e) => {
                        let e = BrokerError::Log(e);
                        parts.push(fail(e.code(), Some(e.to_string())));
                        continue;
                    }
                },
            };
            // Appended now, in request order; the engine may answer later.
            let mut appending = log.append(records, crate::LEADER_EPOCH);
            match ready_now(&mut appending) {
                Some(result) => {
                    let counted = counters.as_ref().map(|c| (c.clone(), bytes, messages));
                    let (done, end) = settle(&td.name, pd.index, resp, result, counted);
                    parts.push(done);
                    if let (-1, Some(end)) = (acks, end) {
                        waits.push((ti, pi, log.wait_durable(end)));
                    }
                }
                None => {
                    later.push(Pending {
                        at: (ti, pi),
                        log: log.clone(),
                        appending,
                        counted: counters.as_ref().map(|c| (c.clone(), bytes, messages)),
                        topic: td.name.to_string(),
                        partition: pd.index,
                    });
                    parts.push(resp);
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_topic_id(td.topic_id)
                .with_partition_responses(parts),
        );
    }
    let resp = ProduceResponse::default().with_responses(responses);
    if acks == 0 {
        if !later.is_empty() {
            // Nobody waits for the answer, but the appends must complete.
            internal_log::detach(
                "produce (acks=0)",
                Box::pin(async move {
                    for p in later {
                        let result = p.appending.await;
                        let resp = PartitionProduceResponse::default();
                        settle(&p.topic, p.partition, resp, result, p.counted);
                    }
                    Ok(())
                }),
            );
        }
        // As Kafka: the client expects no answer, so a partition that
        // failed now closes the connection, which makes it refresh its
        // metadata. Failures of the appends completing later go unseen.
        let failed = resp
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|p| p.error_code != 0);
        return if failed { Reply::Close } else { Reply::None };
    }
    if waits.is_empty() && txn_added.is_none() && later.is_empty() {
        return Reply::Ready(ResponseKind::Produce(resp));
    }
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0).max(1));
    let parked = metrics.produce_purgatory.enter();
    Reply::Later(Box::pin(async move {
        let _parked = parked;
        let mut resp = resp;
        let mut waits = waits;
        let deadline = tokio::time::Instant::now() + timeout;
        for p in later {
            let Ok(result) = tokio::time::timeout_at(deadline, p.appending).await else {
                if let Some(slot) = resp
                    .responses
                    .get_mut(p.at.0)
                    .and_then(|t| t.partition_responses.get_mut(p.at.1))
                {
                    slot.error_code = ResponseError::RequestTimedOut.code();
                }
                continue;
            };
            let Some(slot) = resp
                .responses
                .get_mut(p.at.0)
                .and_then(|t| t.partition_responses.get_mut(p.at.1))
            else {
                continue;
            };
            let (done, end) = settle(&p.topic, p.partition, slot.clone(), result, p.counted);
            *slot = done;
            if let (-1, Some(end)) = (acks, end) {
                waits.push((p.at.0, p.at.1, p.log.wait_durable(end)));
            }
        }
        if let Some(added) = txn_added {
            if let Err(e) = added.await {
                // The data is in the log but the coordinator's record of
                // its partitions is not durable: the producer must retry
                // (its sequence numbers make the retry a duplicate).
                let code = produce_error(e, version).code();
                for p in resp
                    .responses
                    .iter_mut()
                    .flat_map(|t| t.partition_responses.iter_mut())
                {
                    if p.error_code == 0 {
                        p.error_code = code;
                    }
                }
            }
        }
        for (ti, pi, wait) in waits {
            let code = match tokio::time::timeout_at(deadline, wait).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "fsync failed; acks=all produce not acknowledged");
                    ResponseError::KafkaStorageError
                }
                Err(_) => ResponseError::RequestTimedOut,
            };
            if let Some(p) = resp
                .responses
                .get_mut(ti)
                .and_then(|t| t.partition_responses.get_mut(pi))
            {
                p.error_code = code.code();
            }
        }
        ResponseKind::Produce(resp)
    }))
}

/// The codec and level the broker compresses `topic`'s batches with (its
/// `compression.type` and `compression.<codec>.level`, each the topic's
/// own or else the broker's), or `None` for `producer`: batches are then
/// stored as sent.
fn compression_for(topics: &Topics, topic: &Topic) -> Option<(Compression, i32)> {
    let value = |name: &str| {
        topic.configs.get(name).cloned().unwrap_or_else(|| {
            let v = topics.setting(name);
            match crate::config::topic_def(name) {
                Some(d) if v.is_empty() => d.default.to_string(),
                _ => v,
            }
        })
    };
    let (codec, level) = match value("compression.type").as_str() {
        "uncompressed" => (Compression::None, None),
        "gzip" => (Compression::Gzip, Some("compression.gzip.level")),
        "snappy" => (Compression::Snappy, None),
        "lz4" => (Compression::Lz4, Some("compression.lz4.level")),
        "zstd" => (Compression::Zstd, Some("compression.zstd.level")),
        _ => return None,
    };
    Some((
        codec,
        level.map_or(0, |l| value(l).parse().unwrap_or_default()),
    ))
}

/// KIP-467: each rejected record's index in its batch and why, so that
/// clients fail only those records (and the rest of the batch with a
/// different error, which they may retry).
fn record_errors(e: &weir_log::LogError) -> Vec<BatchIndexAndErrorMessage> {
    match e {
        weir_log::LogError::InvalidRecords { records, .. } => records
            .iter()
            .map(|r| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(r.batch_index)
                    .with_batch_index_error_message(Some(StrBytes::from_string(r.message.clone())))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// KIP-890 part 2 (Produce v12+, transaction version 2): the producer sends
/// no AddPartitionsToTxn, so the partitions its transactional batches go to
/// join its transaction here, in one coordinator record appended before any
/// of them (the per-partition verification then passes for them). Returns
/// the wait that makes that record durable, which the answer awaits; `None`
/// when there is nothing to add or the coordinator refused (the
/// verification then answers why, partition by partition).
fn add_to_transaction(
    topics: &Topics,
    txns: &Transactions,
    security: &Security,
    req: &ProduceRequest,
    version: i16,
    session: &Session,
) -> Option<crate::transactions::Pending<Result<(), ResponseError>>> {
    let txn_id = req.transactional_id.as_deref().filter(|t| !t.is_empty())?;
    let mut producer = None;
    let mut partitions = Vec::new();
    for td in &req.topic_data {
        let topic = if version >= 13 {
            topics.topic_by_id(&td.topic_id)
        } else {
            topics.topic(&td.name)
        };
        let Some(topic) = topic.filter(|t| {
            security.is_authorized(session, AclOperation::Write, ResourceType::Topic, &t.name)
        }) else {
            continue;
        };
        for pd in &td.partition_data {
            let header = pd
                .records
                .as_ref()
                .and_then(|r| weir_log::batch::BatchHeader::parse(r));
            let Some(h) = header.filter(|h| h.is_transactional() && !h.is_control()) else {
                continue;
            };
            // Batches of another producer id or epoch are left to the
            // verification, which refuses them.
            let this = (h.producer_id, h.producer_epoch);
            if topic.partition(pd.index).is_some() && *producer.get_or_insert(this) == this {
                partitions.push((topic.name.clone(), pd.index));
            }
        }
    }
    txns.add_implicitly(txn_id, producer?, &partitions).ok()
}

/// Checks a partition's records against what only the broker may write
/// (control batches) and, for transactional batches, that the coordinator
/// has the partition in this producer's open transaction (KIP-890's
/// verification: a late write from an aborted or fenced transaction would
/// otherwise leave a hanging transaction).
fn check_producer(
    txns: &Transactions,
    version: i16,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: &bytes::Bytes,
) -> Result<(), BrokerError> {
    let Some(h) = weir_log::batch::BatchHeader::parse(records) else {
        return Ok(());
    };
    if h.is_control() {
        return Err(BrokerError::InvalidRecord {
            reason: "control batches are written only by the transaction coordinator".into(),
        });
    }
    if !h.is_transactional() {
        return Ok(());
    }
    let Some(txn_id) = transactional_id.filter(|t| !t.is_empty()) else {
        return Err(BrokerError::TransactionalIdMissing);
    };
    txns.verify_produce(
        txn_id,
        h.producer_id,
        h.producer_epoch,
        topic,
        partition,
        version,
    )
    .map_err(|code| BrokerError::NotInTransaction {
        code,
        transactional_id: txn_id.to_string(),
        topic: topic.to_string(),
        partition,
    })
}

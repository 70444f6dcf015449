//! Fetch: long polling, byte limits, incremental sessions and isolation.
//! Record bytes go from the log to the response without being decoded.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use uuid::Uuid;
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;
use weir_log::{LogError, ReadLimit};

use crate::error::log_error_code;
use crate::fetch_session::{FetchKey, FetchSessions, SessionError, SessionPartition};
use crate::metrics::Metrics;
use crate::node::Node;
use crate::security::Security;
use crate::topics::Topics;

/// `isolation_level` of a read_committed consumer.
const READ_COMMITTED: i8 = 1;

/// How this fetch relates to a session.
enum Mode {
    /// No session: answer every partition asked for.
    Sessionless,
    /// A session was just created (or none could be): answer every partition.
    Full { session_id: i32 },
    /// An existing session: answer what changed.
    Incremental { session_id: i32 },
}

/// The services a Fetch uses, owned by its (long-polling) future.
#[derive(Debug, Clone)]
pub struct Services {
    /// Where the partitions are.
    pub topics: Arc<Topics>,
    /// Incremental fetch sessions.
    pub sessions: Arc<Mutex<FetchSessions>>,
    /// Topic READ checks.
    pub security: Arc<Security>,
    /// Whether the node is stopping (parked fetches answer at once).
    pub node: Arc<Node>,
    /// The fetch purgatory and per-topic byte counters.
    pub metrics: Arc<Metrics>,
}

/// Answers a Fetch request, waiting up to `max_wait_ms` for `min_bytes`.
/// With authorization on, each topic needs READ (else its partitions fail
/// with TOPIC_AUTHORIZATION_FAILED).
pub async fn handle(
    svc: Services,
    version: i16,
    session: Session,
    req: FetchRequest,
) -> FetchResponse {
    let Services {
        topics,
        sessions,
        security,
        node,
        metrics,
    } = &svc;
    let key_of = |name: &TopicName, id: Uuid, partition: i32| {
        let topic = if version >= 13 {
            topics
                .topic_by_id(&id)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        } else {
            name.to_string()
        };
        FetchKey {
            topic,
            topic_id: id,
            partition,
        }
    };
    let requested: Vec<SessionPartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| SessionPartition {
                key: key_of(&t.topic, t.topic_id, p.partition),
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                last_sent: None,
            })
        })
        .collect();
    // Leader epochs the consumer believes in; checked per partition.
    let epochs: Vec<(FetchKey, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    key_of(&t.topic, t.topic_id, p.partition),
                    p.current_leader_epoch,
                )
            })
        })
        .collect();
    let forgotten: Vec<FetchKey> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| key_of(&t.topic, t.topic_id, p))
        })
        .collect();

    let slots: usize = topics
        .setting("max.incremental.fetch.session.cache.slots")
        .parse()
        .unwrap_or(0);
    let (mode, partitions) = {
        let Ok(mut sessions) = sessions.lock() else {
            return FetchResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code());
        };
        match (req.session_id, req.session_epoch) {
            (0, -1) => (Mode::Sessionless, requested),
            (id, -1) => {
                sessions.remove(id);
                (Mode::Sessionless, requested)
            }
            (id, 0) => {
                if id != 0 {
                    sessions.remove(id);
                }
                let session_id = sessions.create(requested.clone(), slots);
                (Mode::Full { session_id }, requested)
            }
            (id, epoch) => match sessions.use_session(id, epoch) {
                Ok(s) => {
                    s.update(requested, &forgotten);
                    (Mode::Incremental { session_id: id }, s.partitions.clone())
                }
                Err(e) => {
                    let code = match e {
                        SessionError::NotFound => ResponseError::FetchSessionIdNotFound,
                        SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch,
                    };
                    return FetchResponse::default().with_error_code(code.code());
                }
            },
        }
    };

    let mut denied = std::collections::HashSet::new();
    for p in &partitions {
        let t = &p.key.topic;
        if !t.is_empty()
            && !denied.contains(t)
            && !security.authorize(&session, AclOperation::Read, ResourceType::Topic, t)
        {
            denied.insert(t.clone());
        }
    }
    let limit = if req.isolation_level == READ_COMMITTED {
        ReadLimit::LastStable
    } else {
        ReadLimit::HighWatermark
    };
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let stopping = node.stopping();
    tokio::pin!(stopping);
    // Counted in the fetch purgatory from the first wait on.
    let mut parked = None;
    // Watches on the partitions this fetch reads, taken only once it has
    // to wait: only those partitions can wake it.
    let mut grown = None;
    let results = loop {
        let results = read_all(topics, &partitions, &epochs, &denied, limit, max_bytes).await;
        let bytes: usize = results
            .iter()
            .map(|r| r.records.as_ref().map_or(0, Bytes::len))
            .sum();
        let errors = results.iter().any(|r| r.error_code != 0);
        if bytes >= min_bytes.max(1) || errors || tokio::time::Instant::now() >= deadline {
            break results;
        }
        let Some(wait) = grown.take() else {
            // Subscribe, then read again: an append between the read above
            // and the subscription is seen by that second read.
            grown = Some(any_grew(subscribe(topics, &partitions, &denied)));
            continue;
        };
        parked.get_or_insert_with(|| metrics.fetch_purgatory.enter());
        tokio::select! {
            r = tokio::time::timeout_at(deadline, wait) => match r {
                Ok(()) => {
                    metrics.fetch_wakeups.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(_) => break read_all(topics, &partitions, &epochs, &denied, limit, max_bytes).await,
            },
            () = &mut stopping => break read_all(topics, &partitions, &epochs, &denied, limit, max_bytes).await,
        }
    };

    let (session_id, answered): (i32, Vec<(&SessionPartition, PartitionData)>) = match mode {
        Mode::Sessionless => (0, partitions.iter().zip(results).collect()),
        Mode::Full { session_id } => {
            remember(sessions, session_id, &partitions, &results, false);
            (session_id, partitions.iter().zip(results).collect())
        }
        Mode::Incremental { session_id } => {
            let keep = remember(sessions, session_id, &partitions, &results, true);
            let answered = partitions
                .iter()
                .zip(results)
                .zip(keep)
                .filter_map(|(pr, k)| k.then_some(pr))
                .collect();
            (session_id, answered)
        }
    };

    // Group partitions by topic, keeping their order.
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    for (p, data) in answered {
        let same = responses.last().is_some_and(|t| {
            if version >= 13 {
                t.topic_id == p.key.topic_id
            } else {
                t.topic.as_str() == p.key.topic
            }
        });
        if !same {
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(p.key.topic.clone())))
                    .with_topic_id(p.key.topic_id),
            );
        }
        if let Some(t) = responses.last_mut() {
            t.partitions.push(data);
        }
    }
    drop(parked);
    metrics.record_fetch(&responses);
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses)
}

/// Watches on the log end of every partition the fetch may read.
fn subscribe(
    topics: &Topics,
    partitions: &[SessionPartition],
    denied: &std::collections::HashSet<String>,
) -> Vec<watch::Receiver<i64>> {
    partitions
        .iter()
        .filter(|p| !denied.contains(&p.key.topic))
        .filter_map(|p| {
            let topic = topics.topic(&p.key.topic)?;
            topic.partition(p.key.partition).map(|log| log.subscribe())
        })
        .collect()
}

/// Resolves when any watched log end moves (or its partition goes away,
/// which the next read reports). Never resolves for no watches.
pub(crate) async fn any_grew(watches: Vec<watch::Receiver<i64>>) {
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = watches
        .into_iter()
        .map(|mut rx| {
            Box::pin(async move {
                let _ = rx.changed().await;
            }) as Pin<Box<dyn Future<Output = ()> + Send>>
        })
        .collect();
    std::future::poll_fn(|cx| {
        if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Reads every partition under the response byte limit.
async fn read_all(
    topics: &Topics,
    partitions: &[SessionPartition],
    epochs: &[(FetchKey, i32)],
    denied: &std::collections::HashSet<String>,
    limit: ReadLimit,
    max_bytes: usize,
) -> Vec<PartitionData> {
    let own_limits = partitions.iter().try_fold(0usize, |sum, p| {
        sum.checked_add(usize::try_from(p.max_bytes).ok()?)
    });
    if own_limits.is_some_and(|sum| sum <= max_bytes) {
        // The response limit cannot bind, except through a first batch
        // larger than its partition's limit (KIP-74): read every
        // partition at once, since a cluster broker's read waits on the
        // database and the object store; then, as the limit demands,
        // drop what is past it after the first partition with data.
        let mut out = join_all(
            partitions
                .iter()
                .map(|p| read_partition(topics, p, epochs, denied, limit, max_bytes, false)),
        )
        .await;
        let mut remaining = max_bytes;
        let mut any = false;
        for data in &mut out {
            let n = data.records.as_ref().map_or(0, Bytes::len);
            if any && n > remaining {
                data.records = Some(Bytes::new());
                data.aborted_transactions = data.aborted_transactions.take().map(|_| Vec::new());
                continue;
            }
            remaining = remaining.saturating_sub(n);
            any |= n > 0;
        }
        return out;
    }
    let mut remaining = max_bytes;
    let mut any = false;
    let mut out = Vec::with_capacity(partitions.len());
    for p in partitions {
        let remaining_now = if any { remaining } else { remaining.max(1) };
        let data = read_partition(topics, p, epochs, denied, limit, remaining_now, any).await;
        let n = data.records.as_ref().map_or(0, Bytes::len);
        remaining = remaining.saturating_sub(n);
        any |= n > 0;
        out.push(data);
    }
    out
}

/// One partition of `read_all`.
async fn read_partition(
    topics: &Topics,
    p: &SessionPartition,
    epochs: &[(FetchKey, i32)],
    denied: &std::collections::HashSet<String>,
    limit: ReadLimit,
    remaining: usize,
    have_data: bool,
) -> PartitionData {
    if denied.contains(&p.key.topic) {
        return PartitionData::default()
            .with_partition_index(p.key.partition)
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(Bytes::new()));
    }
    let epoch = epochs
        .iter()
        .find(|(k, _)| *k == p.key)
        .map_or(-1, |(_, e)| *e);
    read_one(topics, p, epoch, limit, remaining, have_data).await
}

async fn read_one(
    topics: &Topics,
    p: &SessionPartition,
    current_leader_epoch: i32,
    limit: ReadLimit,
    remaining: usize,
    have_data: bool,
) -> PartitionData {
    let out = PartitionData::default()
        .with_partition_index(p.key.partition)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(if limit == ReadLimit::LastStable {
            Some(Vec::new())
        } else {
            None
        })
        .with_records(Some(Bytes::new()));
    let opened = match topics.topic(&p.key.topic) {
        Some(t) => t.open_partition(p.key.partition).map(|l| l.cloned()),
        None => Ok(None),
    };
    let Ok(Some(log)) = opened else {
        let e = if opened.is_err() {
            ResponseError::KafkaStorageError
        } else if p.key.topic_id.is_nil() {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::UnknownTopicId
        };
        return out
            .with_error_code(e.code())
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
    };
    let offsets = log.offsets();
    let out = out
        .with_high_watermark(offsets.high_watermark)
        .with_last_stable_offset(offsets.last_stable)
        .with_log_start_offset(offsets.log_start);
    if let Some(e) = crate::check_leader_epoch(current_leader_epoch) {
        return out.with_error_code(e.code());
    }
    // KIP-74: only the first partition with data may exceed the limits.
    let max = usize::try_from(p.max_bytes).unwrap_or(0).min(remaining);
    if max == 0 && have_data {
        return out;
    }
    match log.read(p.fetch_offset, max, limit).await {
        Ok(r) if have_data && r.records.len() > max => out,
        Ok(r) => {
            let aborted = if limit == ReadLimit::LastStable && !r.records.is_empty() {
                // The transactions a read_committed consumer must skip in
                // what it gets: those overlapping [fetch offset, end of data).
                let end = weir_log::batch::iter_batches(&r.records)
                    .last()
                    .map_or(p.fetch_offset, |(_, h)| h.last_offset() + 1);
                Some(
                    log.aborted_transactions(p.fetch_offset, end)
                        .into_iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect(),
                )
            } else {
                out.aborted_transactions.clone()
            };
            out.with_high_watermark(r.offsets.high_watermark)
                .with_last_stable_offset(r.offsets.last_stable)
                .with_log_start_offset(r.offsets.log_start)
                .with_aborted_transactions(aborted)
                .with_records(Some(r.records))
        }
        Err(e @ LogError::OffsetOutOfRange { .. }) => out.with_error_code(log_error_code(&e)),
        Err(e) => {
            tracing::warn!(topic = %p.key.topic, partition = p.key.partition, error = %e, "fetch read failed");
            out.with_error_code(log_error_code(&e))
        }
    }
}

/// Records what was sent in the session; for incremental fetches returns,
/// per partition, whether it belongs in the response.
fn remember(
    sessions: &Mutex<FetchSessions>,
    session_id: i32,
    partitions: &[SessionPartition],
    results: &[PartitionData],
    incremental: bool,
) -> Vec<bool> {
    let Ok(mut sessions) = sessions.lock() else {
        return vec![true; results.len()];
    };
    let Some(session) = sessions.get_mut(session_id) else {
        return vec![true; results.len()];
    };
    let mut keep = Vec::with_capacity(results.len());
    let mut served = Vec::new();
    for (p, r) in partitions.iter().zip(results) {
        let now = (r.high_watermark, r.last_stable_offset, r.log_start_offset);
        let has_records = r.records.as_ref().is_some_and(|b| !b.is_empty());
        let Some(sp) = session.partitions.iter_mut().find(|s| s.key == p.key) else {
            keep.push(true);
            continue;
        };
        let changed = sp.last_sent != Some(now);
        sp.last_sent = Some(now);
        keep.push(!incremental || has_records || r.error_code != 0 || changed);
        if has_records {
            served.push(p.key.clone());
        }
    }
    // Partitions that returned records go to the back: the next response
    // starts with the others, so a busy partition cannot starve the rest.
    let (mut back, mut front): (Vec<_>, Vec<_>) = std::mem::take(&mut session.partitions)
        .into_iter()
        .partition(|s| served.contains(&s.key));
    front.append(&mut back);
    session.partitions = front;
    keep
}

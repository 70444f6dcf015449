//! ShareFetch: acknowledgements piggy-backed on a fetch, then records
//! acquired for the member, long-polling up to `max_wait_ms` (KIP-932).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ResponseKind, ShareFetchRequest, ShareFetchResponse};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;

use crate::context::{Reply, RequestContext};
use crate::metrics::Metrics;
use crate::node::Node;
use crate::security::Security;
use crate::share_partition::{AckBatch, AcquireMode};
use crate::share_session::{FetchKind, TopicIdPartition};
use crate::shares::{Durable, FetchBudget, PartitionFetch, Shares};
use crate::topics::Topics;

/// `ShareAcquireMode` of record-limit fetches (KIP-1206).
const RECORD_LIMIT: i8 = 1;

/// Answers a ShareFetch. With authorization on, it needs READ on the group
/// and READ on each topic (else that topic's partitions fail with
/// TOPIC_AUTHORIZATION_FAILED).
pub fn handle(
    topics: &Arc<Topics>,
    shares: &Arc<Shares>,
    security: &Arc<Security>,
    node: &Arc<Node>,
    metrics: &Arc<Metrics>,
    ctx: &RequestContext<'_>,
    r: ShareFetchRequest,
) -> Reply {
    let svc = Services {
        topics: topics.clone(),
        shares: shares.clone(),
        security: security.clone(),
        node: node.clone(),
        metrics: metrics.clone(),
    };
    let session = ctx.session.clone();
    Reply::Later(Box::pin(async move {
        ResponseKind::ShareFetch(fetch(svc, r, session).await)
    }))
}

/// What a ShareFetch uses, owned by its (long-polling) future.
struct Services {
    topics: Arc<Topics>,
    shares: Arc<Shares>,
    security: Arc<Security>,
    node: Arc<Node>,
    metrics: Arc<Metrics>,
}

fn top_error(code: i16, msg: &str) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(code)
        .with_error_message((!msg.is_empty()).then(|| StrBytes::from_string(msg.to_string())))
}

/// The outcome of acknowledging one partition.
pub(crate) struct AckOutcome {
    pub(crate) code: i16,
    pub(crate) message: Option<String>,
    pub(crate) wait: Option<Durable>,
}

/// Applies acknowledgements per partition (topic READ checked first) and,
/// for a closing session, releases what the member still holds.
pub(crate) fn acknowledge_all(
    shares: &Shares,
    group: &str,
    member: &str,
    acks: Vec<(TopicIdPartition, Vec<AckBatch>)>,
    readable: &dyn Fn(&TopicIdPartition) -> Option<ResponseError>,
) -> BTreeMap<TopicIdPartition, AckOutcome> {
    let mut out = BTreeMap::new();
    for (tp, batches) in acks {
        let outcome = match readable(&tp) {
            Some(e) => AckOutcome {
                code: e.code(),
                message: None,
                wait: None,
            },
            None => {
                let (code, message, wait) = shares.acknowledge(group, member, tp, &batches);
                AckOutcome {
                    code,
                    message,
                    wait,
                }
            }
        };
        out.insert(tp, outcome);
    }
    out
}

/// Waits for every acknowledgement to be durable; a failed write turns
/// the partition's outcome into KAFKA_STORAGE_ERROR.
pub(crate) async fn settle(
    outcomes: &mut BTreeMap<TopicIdPartition, AckOutcome>,
    extra: Vec<Durable>,
) {
    for o in outcomes.values_mut() {
        if let Some(w) = o.wait.take() {
            if let Err(e) = w.await {
                tracing::warn!(error = %e, "acknowledgement not durable");
                o.code = ResponseError::KafkaStorageError.code();
                o.message = Some(e.to_string());
            }
        }
    }
    for w in extra {
        if let Err(e) = w.await {
            tracing::warn!(error = %e, "released records not durable");
        }
    }
}

/// Topic-level checks: `None` if the member may read the topic's partition.
pub(crate) fn topic_check<'a>(
    topics: &'a Topics,
    security: &'a Security,
    session: &Session,
) -> impl Fn(&TopicIdPartition) -> Option<ResponseError> + 'a {
    let session = session.clone();
    move |tp: &TopicIdPartition| match topics.topic_by_id(&tp.0) {
        None => Some(ResponseError::UnknownTopicId),
        Some(t)
            if !security.authorize(&session, AclOperation::Read, ResourceType::Topic, &t.name) =>
        {
            Some(ResponseError::TopicAuthorizationFailed)
        }
        Some(t) if t.partition(tp.1).is_none() => Some(ResponseError::UnknownTopicOrPartition),
        Some(_) => None,
    }
}

/// Converts acknowledgement batches off the wire.
pub(crate) fn ack_batches(batches: impl IntoIterator<Item = (i64, i64, Vec<i8>)>) -> Vec<AckBatch> {
    batches
        .into_iter()
        .map(|(first, last, types)| AckBatch { first, last, types })
        .collect()
}

/// The group and member a share request names: both are required.
pub(crate) fn member_of(
    group: Option<&kafka_protocol::messages::GroupId>,
    member: Option<&StrBytes>,
) -> Result<(String, String), (i16, &'static str)> {
    match (group, member) {
        (Some(g), Some(m)) if !g.is_empty() && !m.is_empty() => Ok((g.to_string(), m.to_string())),
        _ => Err((
            ResponseError::InvalidRequest.code(),
            "GroupId and MemberId are required",
        )),
    }
}

async fn fetch(svc: Services, r: ShareFetchRequest, session: Session) -> ShareFetchResponse {
    let Services {
        topics,
        shares,
        security,
        node,
        ..
    } = &svc;
    let (group, member) = match member_of(r.group_id.as_ref(), r.member_id.as_ref()) {
        Ok(gm) => gm,
        Err((code, msg)) => return top_error(code, msg),
    };
    if !security.authorize(&session, AclOperation::Read, ResourceType::Group, &group) {
        return top_error(ResponseError::GroupAuthorizationFailed.code(), "");
    }
    let lock_ms = shares.group_settings(&group).partition.lock_duration_ms;
    let mut added = Vec::new();
    let mut acks = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            let tp = (t.topic_id, p.partition_index);
            added.push(tp);
            if !p.acknowledgement_batches.is_empty() {
                let batches = ack_batches(
                    p.acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                );
                acks.push((tp, batches));
            }
        }
    }
    let forgotten: Vec<TopicIdPartition> = r
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let epoch = r.share_session_epoch;
    if epoch == 0 && !acks.is_empty() {
        // Kafka's rule: nothing can be acquired before a session opens.
        return top_error(
            ResponseError::InvalidRequest.code(),
            "Acknowledge data present in the initial share fetch request",
        );
    }
    let opened = shares.sessions(|s| s.fetch(&group, &member, epoch, &added, &forgotten));
    let (kind, partitions) = match opened {
        Ok(s) => s,
        Err(e) => return top_error(e.code().code(), &e.to_string()),
    };
    let check = topic_check(topics, security, &session);
    let mut outcomes = acknowledge_all(shares, &group, &member, acks, &check);
    let mut extra = Vec::new();
    if kind == FetchKind::Final {
        extra = shares.close_session(&group, &member);
    }

    // Acquire, long-polling until something is acquired or the wait ends.
    // A renew-only request (KIP-1222) fetches nothing.
    let fetching = kind != FetchKind::Final && !r.is_renew_ack;
    let results = if fetching {
        long_poll(&svc, &r, &group, &member, &partitions, &check).await
    } else {
        Vec::new()
    };
    let served: Vec<TopicIdPartition> = results
        .iter()
        .filter(|(_, p)| !p.acquired.is_empty())
        .map(|(tp, _)| *tp)
        .collect();
    if !served.is_empty() {
        shares.served(&group, &member, &served);
    }
    settle(&mut outcomes, extra).await;

    // Full responses name every partition; incremental ones only those with
    // something to say.
    let mut answered: BTreeMap<TopicIdPartition, PartitionData> = BTreeMap::new();
    let mut order: Vec<TopicIdPartition> = Vec::new();
    let leader = LeaderIdAndEpoch::default()
        .with_leader_id(node.id)
        .with_leader_epoch(crate::LEADER_EPOCH);
    let blank = |p: i32| {
        PartitionData::default()
            .with_partition_index(p)
            .with_current_leader(leader.clone())
            .with_records(Some(Bytes::new()))
    };
    let mut seen = HashSet::new();
    for (tp, pf) in results {
        let quiet = pf.acquired.is_empty() && pf.error == 0;
        if kind == FetchKind::Incremental && quiet && !outcomes.contains_key(&tp) {
            continue;
        }
        let mut data = blank(tp.1);
        if pf.error == ResponseError::NotLeaderOrFollower.code() {
            // Where the share-partition is owned: its partition's leader.
            let leader_id = topics.topic_by_id(&tp.0).map_or(-1, |t| {
                crate::node::Node::leader_of(&node.brokers(), &t.name, tp.1)
            });
            data.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(leader_id)
                .with_leader_epoch(crate::LEADER_EPOCH);
        }
        let data = data
            .with_error_code(pf.error)
            .with_records(Some(pf.records))
            .with_acquired_records(
                pf.acquired
                    .into_iter()
                    .map(|a| {
                        AcquiredRecords::default()
                            .with_first_offset(a.first)
                            .with_last_offset(a.last)
                            .with_delivery_count(a.delivery_count)
                    })
                    .collect(),
            );
        seen.insert(tp);
        order.push(tp);
        answered.insert(tp, data);
    }
    if kind == FetchKind::Full {
        for tp in &partitions {
            if seen.insert(*tp) {
                order.push(*tp);
                answered.insert(*tp, blank(tp.1));
            }
        }
    }
    for (tp, o) in outcomes {
        if seen.insert(tp) {
            order.push(tp);
            answered.insert(tp, blank(tp.1));
        }
        if let Some(d) = answered.get_mut(&tp) {
            d.acknowledge_error_code = o.code;
            d.acknowledge_error_message = o.message.map(StrBytes::from_string);
        }
    }
    let mut responses: Vec<ShareFetchableTopicResponse> = Vec::new();
    for tp in order {
        let Some(data) = answered.remove(&tp) else {
            continue;
        };
        match responses.iter_mut().find(|t| t.topic_id == tp.0) {
            Some(t) => t.partitions.push(data),
            None => responses.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(tp.0)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(i32::try_from(lock_ms).unwrap_or(i32::MAX))
        .with_responses(responses)
}

/// Acquires from every session partition, waiting up to `max_wait_ms` for
/// `min_bytes` of records (or an error).
async fn long_poll(
    svc: &Services,
    r: &ShareFetchRequest,
    group: &str,
    member: &str,
    partitions: &[TopicIdPartition],
    check: &(dyn Fn(&TopicIdPartition) -> Option<ResponseError> + Sync),
) -> Vec<(TopicIdPartition, PartitionFetch)> {
    let mode = if r.share_acquire_mode == RECORD_LIMIT {
        AcquireMode::RecordLimit
    } else {
        AcquireMode::BatchOptimized
    };
    let Services {
        topics,
        shares,
        node,
        metrics,
        ..
    } = svc;
    let min_bytes = usize::try_from(r.min_bytes).unwrap_or(0).max(1);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0));
    // Records become acquirable by an append to one of these partitions
    // or by a release (acknowledgement, lock expiry, a member leaving).
    let mut released = shares.released_watch();
    let stopping = node.stopping();
    tokio::pin!(stopping);
    let mut parked = None;
    loop {
        released.borrow_and_update();
        // Taken before acquiring, so an append in between still wakes us.
        let grown = crate::fetch::any_grew(
            partitions
                .iter()
                .filter_map(|(id, p)| {
                    let topic = topics.topic_by_id(id)?;
                    topic.partition(*p).map(|log| log.subscribe())
                })
                .collect(),
        );
        let mut budget = FetchBudget {
            records: i64::from(r.max_records.max(1)),
            bytes: usize::try_from(r.max_bytes).unwrap_or(0),
            mode,
        };
        let mut results: Vec<(TopicIdPartition, PartitionFetch)> =
            Vec::with_capacity(partitions.len());
        for tp in partitions {
            let pf = match check(tp) {
                Some(e) => PartitionFetch {
                    error: e.code(),
                    ..PartitionFetch::default()
                },
                None => shares.acquire(group, member, *tp, &mut budget).await,
            };
            results.push((*tp, pf));
        }
        let bytes: usize = results.iter().map(|(_, p)| p.records.len()).sum();
        let errors = results.iter().any(|(_, p)| p.error != 0);
        if bytes >= min_bytes || errors || tokio::time::Instant::now() >= deadline {
            return results;
        }
        parked.get_or_insert_with(|| metrics.fetch_purgatory.enter());
        tokio::select! {
            r = tokio::time::timeout_at(deadline, released.changed()) => {
                // Released records or the deadline: look again (the loop
                // ends at the deadline); a closed watch means the broker
                // is gone.
                if let Ok(Err(_)) = r {
                    return results;
                }
            }
            _ = tokio::time::timeout_at(deadline, grown) => {}
            () = &mut stopping => return results,
        }
    }
}

//! OffsetForLeaderEpoch: where a leader epoch ends, so clients can detect
//! log truncation (KIP-320).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::security::Security;
use crate::topics::Topics;

/// Answers an OffsetForLeaderEpoch request.
///
/// With authorization on, each topic needs DESCRIBE unless the client has
/// CLUSTER_ACTION (a follower).
pub async fn handle(
    topics: &Topics,
    security: &Security,
    session: &weir_auth::Session,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let replica = security.is_authorized(
        session,
        weir_auth::acl::AclOperation::ClusterAction,
        weir_auth::acl::ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    );
    let mut out = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = topics.topic(&t.topic);
        let denied = !replica
            && !security.authorize(
                session,
                weir_auth::acl::AclOperation::Describe,
                weir_auth::acl::ResourceType::Topic,
                &t.topic,
            );
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let out = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            if denied {
                partitions
                    .push(out.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            let Some(log) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                partitions.push(out.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            if let Some(e) = crate::check_leader_epoch(p.current_leader_epoch) {
                partitions.push(out.with_error_code(e.code()));
                continue;
            }
            // The current epoch ends at the log end, even before it has
            // data; an older one where the log says it does. The log end
            // is read fresh: on a cluster this broker's cached end may
            // trail what a client already fetched through another broker,
            // and a client takes an end below its position for truncation
            // and rewinds.
            let answer = if p.leader_epoch == crate::LEADER_EPOCH {
                match log.current_offsets().await {
                    Ok(o) => out
                        .with_leader_epoch(crate::LEADER_EPOCH)
                        .with_end_offset(o.log_end),
                    Err(_) => out.with_error_code(ResponseError::KafkaStorageError.code()),
                }
            } else {
                match (p.leader_epoch < crate::LEADER_EPOCH)
                    .then(|| log.end_offset_for_epoch(p.leader_epoch))
                    .flatten()
                {
                    Some((epoch, end)) => out.with_leader_epoch(epoch).with_end_offset(end),
                    None => out,
                }
            };
            partitions.push(answer);
        }
        out.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(out)
}

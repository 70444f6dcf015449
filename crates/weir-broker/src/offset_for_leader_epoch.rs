//! OffsetForLeaderEpoch: where a leader epoch ends, so clients can detect
//! log truncation (KIP-320).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::context::RequestContext;
use crate::security::Security;
use crate::topics::Topics;

/// Answers an OffsetForLeaderEpoch request.
///
/// With authorization on, each topic needs DESCRIBE unless the client has
/// CLUSTER_ACTION (a follower).
pub fn handle(
    topics: &Topics,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let session = ctx.session;
    let replica = security.is_authorized(
        session,
        weir_auth::acl::AclOperation::ClusterAction,
        weir_auth::acl::ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    );
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = topics.topic(&t.topic);
            let denied = !replica
                && !security.authorize(
                    session,
                    weir_auth::acl::AclOperation::Describe,
                    weir_auth::acl::ResourceType::Topic,
                    &t.topic,
                );
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if denied {
                        return out.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(log) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Some(e) = crate::check_leader_epoch(p.current_leader_epoch) {
                        return out.with_error_code(e.code());
                    }
                    // The current epoch ends at the log end, even before it
                    // has data; an older one where the log says it does.
                    if p.leader_epoch == crate::LEADER_EPOCH {
                        return out
                            .with_leader_epoch(crate::LEADER_EPOCH)
                            .with_end_offset(log.offsets().log_end);
                    }
                    match (p.leader_epoch < crate::LEADER_EPOCH)
                        .then(|| log.end_offset_for_epoch(p.leader_epoch))
                        .flatten()
                    {
                        Some((epoch, end)) => out.with_leader_epoch(epoch).with_end_offset(end),
                        None => out,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

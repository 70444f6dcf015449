//! ShareAcknowledge: acknowledgements without a fetch, answered once they
//! are durable (KIP-932). Epoch -1 also closes the share session and gives
//! back what the member still holds.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ResponseKind, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclOperation, ResourceType};

use crate::context::{Reply, RequestContext};
use crate::node::Node;
use crate::security::Security;
use crate::share_fetch::{ack_batches, acknowledge_all, member_of, settle, topic_check};
use crate::shares::Shares;
use crate::topics::Topics;

fn top_error(code: i16, msg: String) -> Reply {
    Reply::Ready(ResponseKind::ShareAcknowledge(
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message((!msg.is_empty()).then(|| StrBytes::from_string(msg))),
    ))
}

/// Answers a ShareAcknowledge. With authorization on, it needs READ on the
/// group and on each topic.
pub fn handle(
    topics: &Topics,
    shares: &Shares,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    r: ShareAcknowledgeRequest,
) -> Reply {
    let session = ctx.session;
    let (group, member) = match member_of(r.group_id.as_ref(), r.member_id.as_ref()) {
        Ok(gm) => gm,
        Err((code, msg)) => return top_error(code, msg.into()),
    };
    if !security.authorize(session, AclOperation::Read, ResourceType::Group, &group) {
        return top_error(
            ResponseError::GroupAuthorizationFailed.code(),
            String::new(),
        );
    }
    let epoch = r.share_session_epoch;
    let closing = match shares.sessions(|s| s.acknowledge(&group, &member, epoch)) {
        Ok(c) => c,
        Err(e) => return top_error(e.code().code(), e.to_string()),
    };
    let acks = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let batches = ack_batches(
                    p.acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                );
                ((t.topic_id, p.partition_index), batches)
            })
        })
        .collect();
    let check = topic_check(topics, security, session);
    let mut outcomes = acknowledge_all(shares, &group, &member, acks, &check);
    let released = if closing {
        shares.close_session(&group, &member)
    } else {
        Vec::new()
    };
    let lock_ms = shares.group_settings(&group).partition.lock_duration_ms;
    let node = node.id;
    Reply::Later(Box::pin(async move {
        settle(&mut outcomes, released).await;
        let mut responses: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
        for (tp, o) in outcomes {
            let data = PartitionData::default()
                .with_partition_index(tp.1)
                .with_error_code(o.code)
                .with_error_message(o.message.map(StrBytes::from_string))
                .with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(node)
                        .with_leader_epoch(crate::LEADER_EPOCH),
                );
            match responses.iter_mut().find(|t| t.topic_id == tp.0) {
                Some(t) => t.partitions.push(data),
                None => responses.push(
                    ShareAcknowledgeTopicResponse::default()
                        .with_topic_id(tp.0)
                        .with_partitions(vec![data]),
                ),
            }
        }
        ResponseKind::ShareAcknowledge(
            ShareAcknowledgeResponse::default()
                .with_acquisition_lock_timeout_ms(i32::try_from(lock_ms).unwrap_or(i32::MAX))
                .with_responses(responses),
        )
    }))
}

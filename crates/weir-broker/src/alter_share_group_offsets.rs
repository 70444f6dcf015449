//! AlterShareGroupOffsets: restart an empty share group's partitions at
//! given start offsets (`kafka-share-groups.sh --reset-offsets`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclOperation, ResourceType};

use crate::context::Reply;
use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::{Rewrite, Shares};
use crate::topics::Topics;

fn top_error(e: ResponseError, msg: String) -> ResponseKind {
    ResponseKind::AlterShareGroupOffsets(
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message((!msg.is_empty()).then(|| StrBytes::from_string(msg))),
    )
}

/// Answers an AlterShareGroupOffsets once the new state is durable. With
/// authorization on, it needs READ on the group and on each topic.
pub fn handle(
    topics: &Topics,
    groups: &Groups,
    shares: &Arc<Shares>,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: AlterShareGroupOffsetsRequest,
) -> Reply {
    let session = ctx.session;
    let group = r.group_id.to_string();
    if !security.authorize(session, AclOperation::Read, ResourceType::Group, &group) {
        return Reply::Ready(top_error(
            ResponseError::GroupAuthorizationFailed,
            String::new(),
        ));
    }
    if !groups.owns(&group) {
        return Reply::Ready(top_error(ResponseError::NotCoordinator, String::new()));
    }
    let mut responses = Vec::new();
    let mut offsets = Vec::new();
    for t in r.topics {
        let name = t.topic_name.to_string();
        let topic = topics.topic(&name);
        let id = topic.as_ref().map(|t| t.id).unwrap_or_default();
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let e =
                    if !security.authorize(session, AclOperation::Read, ResourceType::Topic, &name)
                    {
                        Some(ResponseError::TopicAuthorizationFailed)
                    } else if topic
                        .as_ref()
                        .and_then(|t| t.partition(p.partition_index))
                        .is_none()
                    {
                        Some(ResponseError::UnknownTopicOrPartition)
                    } else if p.start_offset < 0 {
                        Some(ResponseError::InvalidRequest)
                    } else {
                        offsets.push(((id, p.partition_index), p.start_offset));
                        None
                    };
                AlterShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(e.map_or(0, |e| e.code()))
            })
            .collect();
        responses.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name)
                .with_topic_id(id)
                .with_partitions(partitions),
        );
    }
    let shares = shares.clone();
    Reply::Later(Box::pin(async move {
        let waits = match shares.rewrite(&group, Rewrite::Alter(&offsets)).await {
            Ok(w) => w,
            Err(e) => return top_error(e, format!("cannot alter the offsets of group {group}")),
        };
        let mut code = 0;
        for w in waits {
            if let Err(e) = w.await {
                tracing::warn!(error = %e, "altered share offsets not durable");
                code = ResponseError::KafkaStorageError.code();
            }
        }
        ResponseKind::AlterShareGroupOffsets(
            AlterShareGroupOffsetsResponse::default()
                .with_error_code(code)
                .with_responses(responses),
        )
    }))
}

//! DeleteShareGroupOffsets: forget an empty share group's state for some
//! topics; it starts again by `share.auto.offset.reset` when next assigned.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::{
    DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse, ResponseKind,
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
    ResponseKind::DeleteShareGroupOffsets(
        DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message((!msg.is_empty()).then(|| StrBytes::from_string(msg))),
    )
}

/// Answers a DeleteShareGroupOffsets once the deletions are durable. With
/// authorization on, it needs DELETE on the group and READ on each topic.
pub fn handle(
    topics: &Topics,
    groups: &Groups,
    shares: &Arc<Shares>,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: DeleteShareGroupOffsetsRequest,
) -> Reply {
    let session = ctx.session;
    let group = r.group_id.to_string();
    if !security.authorize(session, AclOperation::Delete, ResourceType::Group, &group) {
        return Reply::Ready(top_error(
            ResponseError::GroupAuthorizationFailed,
            String::new(),
        ));
    }
    if !groups.owns(&group) {
        return Reply::Ready(top_error(ResponseError::NotCoordinator, String::new()));
    }
    let mut ids = Vec::new();
    let responses: Vec<DeleteShareGroupOffsetsResponseTopic> = r
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic_name.to_string();
            let topic = topics.topic(&name);
            let id = topic.as_ref().map(|t| t.id).unwrap_or_default();
            let e = if !security.authorize(session, AclOperation::Read, ResourceType::Topic, &name)
            {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if topic.is_none() {
                Some(ResponseError::UnknownTopicOrPartition)
            } else {
                ids.push(id);
                None
            };
            DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name)
                .with_topic_id(id)
                .with_error_code(e.map_or(0, |e| e.code()))
        })
        .collect();
    let shares = shares.clone();
    Reply::Later(Box::pin(async move {
        let waits = match shares.rewrite(&group, Rewrite::DeleteTopics(&ids)).await {
            Ok(w) => w,
            Err(e) => return top_error(e, format!("cannot delete the offsets of group {group}")),
        };
        let mut code = 0;
        for w in waits {
            if let Err(e) = w.await {
                tracing::warn!(error = %e, "deleted share offsets not durable");
                code = ResponseError::KafkaStorageError.code();
            }
        }
        ResponseKind::DeleteShareGroupOffsets(
            DeleteShareGroupOffsetsResponse::default()
                .with_error_code(code)
                .with_responses(responses),
        )
    }))
}

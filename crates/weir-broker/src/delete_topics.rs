//! DeleteTopics, by name (v0-5) or by name or id (v6+).

use std::sync::Mutex;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::fetch_session::FetchSessions;
use crate::metrics::Metrics;
use crate::security::Security;
use crate::topics::Topics;

/// Answers a DeleteTopics request.
///
/// With authorization on, each topic needs DELETE (and DESCRIBE when named
/// by id), else TOPIC_AUTHORIZATION_FAILED.
pub fn handle(
    topics: &Topics,
    sessions: &Mutex<FetchSessions>,
    metrics: &Metrics,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let (version, session) = (ctx.version, ctx.session);
    use weir_auth::acl::{AclOperation, ResourceType};
    let wanted: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let out = DeletableTopicResult::default()
                .with_name(name.clone())
                .with_topic_id(id);
            let by_id = name.is_none();
            let name = match name {
                Some(n) => Some(n.to_string()),
                None => topics.topic_by_id(&id).map(|t| t.name.clone()),
            };
            let Some(name) = name else {
                return out.with_error_code(ResponseError::UnknownTopicId.code());
            };
            let denied = |out: DeletableTopicResult| {
                out.with_error_code(ResponseError::TopicAuthorizationFailed.code())
            };
            if by_id
                && !security.authorize(session, AclOperation::Describe, ResourceType::Topic, &name)
            {
                return denied(out);
            }
            if !security.authorize(session, AclOperation::Delete, ResourceType::Topic, &name) {
                return denied(if by_id {
                    out
                } else {
                    out.with_name(Some(TopicName(StrBytes::from_string(name))))
                });
            }
            match delete(topics, sessions, metrics, &name) {
                Ok(id) => out
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_topic_id(if version >= 6 { id } else { Uuid::nil() }),
                Err(e) => {
                    let (code, message) = e.response();
                    out.with_error_code(code).with_error_message(message)
                }
            }
        })
        .collect();
    let resp = DeleteTopicsResponse::default().with_responses(responses);
    for t in &resp.responses {
        let resource = match &t.name {
            Some(n) => format!("topic:{}", n.as_str()),
            None => format!("topic-id:{}", t.topic_id),
        };
        security.audit_admin(session, "DeleteTopics", resource, t.error_code);
    }
    resp
}

/// Deletes a topic, its data and what fetch sessions and metrics kept of
/// it.
pub fn delete(
    topics: &Topics,
    sessions: &Mutex<FetchSessions>,
    metrics: &Metrics,
    name: &str,
) -> Result<Uuid, crate::BrokerError> {
    let id = topics.delete_topic(name)?;
    if let Ok(mut sessions) = sessions.lock() {
        sessions.forget_topic(name);
    }
    metrics.forget_topic(name);
    Ok(id)
}

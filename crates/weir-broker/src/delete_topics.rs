//! DeleteTopics, by name (v0-5) or by name or id (v6+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use weir_auth::Session;

use crate::broker::Broker;

/// Answers a DeleteTopics request.
pub fn handle(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
    session: &Session,
) -> DeleteTopicsResponse {
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
            let name = match name {
                Some(n) => Some(n.to_string()),
                None => broker.topic_by_id(&id).map(|t| t.name.clone()),
            };
            let Some(name) = name else {
                return out.with_error_code(ResponseError::UnknownTopicId.code());
            };
            match broker.delete_topic(&name) {
                Ok(id) => out
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_topic_id(if version >= 6 { id } else { Uuid::nil() }),
                Err((e, msg)) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(msg))),
            }
        })
        .collect();
    let resp = DeleteTopicsResponse::default().with_responses(responses);
    for t in &resp.responses {
        let resource = match &t.name {
            Some(n) => format!("topic:{}", n.as_str()),
            None => format!("topic-id:{}", t.topic_id),
        };
        broker.audit_admin(session, "DeleteTopics", resource, t.error_code);
    }
    resp
}

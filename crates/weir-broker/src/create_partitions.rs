//! CreatePartitions: grow a topic.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::context::RequestContext;
use crate::node::Node;
use crate::replicas;
use crate::security::Security;
use crate::topics::Topics;
use crate::BrokerError;

/// Answers a CreatePartitions request.
///
/// With authorization on, each topic needs ALTER.
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let session = ctx.session;
    let validate_only = req.validate_only;
    let live = replicas::live_ids(node);
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let may_alter = security.authorize(
                session,
                weir_auth::acl::AclOperation::Alter,
                weir_auth::acl::ResourceType::Topic,
                &t.name,
            );
            let result = if may_alter {
                check_assignments(topics, &live, &t).and_then(|()| {
                    topics.create_partitions(
                        &t.name,
                        t.count,
                        t.assignments
                            .iter()
                            .flatten()
                            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                            .collect(),
                        req.validate_only,
                    )
                })
            } else {
                Err(BrokerError::Unauthorized {
                    code: ResponseError::TopicAuthorizationFailed,
                    message: "The topic authorization is failed.",
                })
            };
            match result {
                Ok(()) => out,
                Err(e) => {
                    let (code, message) = e.response();
                    out.with_error_code(code).with_error_message(message)
                }
            }
        })
        .collect();
    let resp = CreatePartitionsResponse::default().with_results(results);
    if !validate_only {
        for t in &resp.results {
            let resource = format!("topic:{}", t.name.as_str());
            security.audit_admin(session, "CreatePartitions", resource, t.error_code);
        }
    }
    resp
}

/// Checks the new partitions' manual assignments as Kafka does: one per
/// new partition, each over distinct live brokers, as many as the topic's
/// replication factor. Left to `create_partitions` when the topic is
/// unknown or the count does not grow it.
fn check_assignments(
    topics: &Topics,
    live: &[i32],
    t: &CreatePartitionsTopic,
) -> Result<(), BrokerError> {
    let (Some(assignments), Some(topic)) = (&t.assignments, topics.topic(&t.name)) else {
        return Ok(());
    };
    let added = t.count - topic.partition_count();
    if added <= 0 {
        return Ok(());
    }
    if usize::try_from(added).ok() != Some(assignments.len()) {
        return Err(BrokerError::InvalidReplicaAssignment {
            reason: format!(
                "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                assignments.len()
            ),
        });
    }
    let rf = usize::try_from(topic.replication_factor).ok();
    assignments
        .iter()
        .try_for_each(|a| replicas::check_assignment(&a.broker_ids, live, rf))
}

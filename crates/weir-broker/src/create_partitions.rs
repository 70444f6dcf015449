//! CreatePartitions: grow a topic.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::context::RequestContext;
use crate::node::Node;
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
    let node = node.id;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let bad_assignment = t.assignments.as_ref().and_then(|a| {
                a.iter()
                    .find(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>() != [node])
            });
            let may_alter = security.authorize(
                session,
                weir_auth::acl::AclOperation::Alter,
                weir_auth::acl::ResourceType::Topic,
                &t.name,
            );
            let result = match bad_assignment {
                _ if !may_alter => Err(BrokerError::Unauthorized {
                    code: ResponseError::TopicAuthorizationFailed,
                    message: "The topic authorization is failed.",
                }),
                Some(a) => Err(BrokerError::InvalidReplicaAssignment {
                    reason: format!(
                        "assignment to brokers {:?}; this cluster has only broker {node}",
                        a.broker_ids
                    ),
                }),
                None => topics.create_partitions(&t.name, t.count, req.validate_only),
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

//! CreateTopics, with configs, manual assignments and `validate_only`.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::config::validate_topic_config;
use crate::context::RequestContext;
use crate::node::Node;
use crate::replicas;
use crate::security::Security;
use crate::topics::Topics;
use crate::BrokerError;

/// Answers a CreateTopics request.
///
/// With authorization on, each topic needs CREATE on the cluster or on
/// the topic (TOPIC_AUTHORIZATION_FAILED otherwise), and its configs are
/// returned only with DESCRIBE_CONFIGS on it, as in Kafka.
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let (version, session) = (ctx.version, ctx.session);
    use weir_auth::acl::{AclOperation, ResourceType};
    let validate_only = req.validate_only;
    let cluster_create = security.is_authorized(
        session,
        AclOperation::Create,
        ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    );
    let settings = topics.settings();
    let live = replicas::live_ids(node);
    let names: Vec<_> = req.topics.iter().map(|t| t.name.to_string()).collect();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.to_string();
            let out = CreatableTopicResult::default().with_name(t.name.clone());
            let fail = |e: ResponseError, msg: String| {
                out.clone().with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(msg)))
            };
            if names.iter().filter(|n| **n == name).count() > 1 {
                return fail(ResponseError::InvalidRequest, format!("Create topics request from client contains multiple entries for topic {name}"));
            }
            if !cluster_create && !security.authorize(session, AclOperation::Create, ResourceType::Topic, &name) {
                return fail(ResponseError::TopicAuthorizationFailed, "Authorization failed.".into())
                    .with_topic_config_error_code(
                        if security.is_authorized(session, AclOperation::DescribeConfigs, ResourceType::Topic, &name) {
                            0
                        } else {
                            ResponseError::TopicAuthorizationFailed.code()
                        },
                    );
            }
            let may_describe_configs =
                security.is_authorized(session, AclOperation::DescribeConfigs, ResourceType::Topic, &name);
            let assigned_rf = match check_assignments(&t, &live) {
                Ok(rf) => rf,
                Err(e) => return fail(e.code(), e.to_string()),
            };
            let partitions = if assigned_rf.is_some() {
                i32::try_from(t.assignments.len()).unwrap_or(i32::MAX)
            } else if t.num_partitions == -1 {
                i32::try_from(settings.get_i64("num.partitions")).unwrap_or(1)
            } else {
                t.num_partitions
            };
            let rf = match assigned_rf {
                Some(rf) => rf,
                None if t.replication_factor == -1 => {
                    i16::try_from(settings.get_i64("default.replication.factor")).unwrap_or(1)
                }
                None => t.replication_factor,
            };
            if let Err(e) = replicas::check_factor(rf, live.len()) {
                return fail(e.code(), e.to_string());
            }
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                let Some(value) = &c.value else {
                    return fail(ResponseError::InvalidConfig, format!("Null value not supported for topic configs: {}", c.name.as_str()));
                };
                match validate_topic_config(&c.name, value) {
                    Ok(v) => {
                        configs.insert(c.name.to_string(), v);
                    }
                    Err(e) => return fail(e.code(), e.to_string()),
                }
            }
            match topics.create_topic(&name, partitions, rf, assigned(&t.assignments), configs, req.validate_only) {
                Ok(rec) => {
                    let mut out = out.with_topic_id(rec.id).with_num_partitions(rec.partitions).with_replication_factor(rf);
                    if version >= 5 && !may_describe_configs {
                        out = out.with_topic_config_error_code(ResponseError::TopicAuthorizationFailed.code());
                    } else if version >= 5 {
                        let configs = settings
                            .resolve_all(&rec.configs)
                            .into_iter()
                            .map(|r| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(r.def.name))
                                    .with_value(Some(StrBytes::from_string(r.value)))
                                    .with_config_source(r.source as i8)
                            })
                            .collect();
                        out = out.with_configs(Some(configs));
                    }
                    if req.validate_only {
                        out = out.with_topic_id(uuid::Uuid::nil());
                    }
                    out
                }
                Err(e) => fail(e.code(), e.to_string()),
            }
        })
        .collect();
    let resp = CreateTopicsResponse::default().with_topics(topics);
    if !validate_only {
        for t in &resp.topics {
            let resource = format!("topic:{}", t.name.as_str());
            security.audit_admin(session, "CreateTopics", resource, t.error_code);
        }
    }
    resp
}

/// Checks a topic's manual assignments as Kafka does (numbered from 0,
/// each over distinct live brokers, all of one length) and returns that
/// length as the replication factor; `None` without assignments.
fn check_assignments(t: &CreatableTopic, live: &[i32]) -> Result<Option<i16>, BrokerError> {
    if t.assignments.is_empty() {
        return Ok(None);
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err(BrokerError::InvalidRequest {
            reason: "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
        });
    }
    let mut seen: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        return Err(BrokerError::InvalidReplicaAssignment {
            reason: format!(
                "Found multiple manual partition assignments for partition {}",
                w[0]
            ),
        });
    }
    if seen
        .iter()
        .enumerate()
        .any(|(i, &p)| usize::try_from(p).ok() != Some(i))
    {
        return Err(BrokerError::InvalidReplicaAssignment {
            reason: "partitions should be a consecutive 0-based integer sequence".into(),
        });
    }
    let mut rf = None;
    for a in &t.assignments {
        replicas::check_assignment(&a.broker_ids, live, rf)?;
        rf = Some(a.broker_ids.len());
    }
    Ok(rf.map(|rf| i16::try_from(rf).unwrap_or(i16::MAX)))
}

/// Manual assignments as the catalog keeps them: by partition, in order.
fn assigned(assignments: &[CreatableReplicaAssignment]) -> Vec<Vec<i32>> {
    let mut out = vec![Vec::new(); assignments.len()];
    for a in assignments {
        if let Some(slot) = usize::try_from(a.partition_index)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot = a.broker_ids.iter().map(|b| b.0).collect();
        }
    }
    out
}

//! Metadata: brokers, cluster id, controller and topics, with auto-create.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;

use crate::context::RequestContext;
use crate::node::Node;
use crate::security::Security;
use crate::topics::{Topic, Topics};
use crate::BrokerError;

/// Kafka's marker for "authorized operations not requested".
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Answers a Metadata request. With authorization on, topics the client
/// may not DESCRIBE are left out of "all topics" and answered with
/// TOPIC_AUTHORIZATION_FAILED when named; auto-creation needs CREATE on
/// the cluster or the topic.
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: MetadataRequest,
) -> MetadataResponse {
    let session = ctx.session;
    let mut resp = answer(topics, security, node, &req, ctx.version, session);
    if req.include_cluster_authorized_operations
        && security.authorize_cluster(session, AclOperation::Describe)
    {
        resp.cluster_authorized_operations = security.authorized_operations(
            session,
            ResourceType::Cluster,
            weir_auth::acl::CLUSTER_NAME,
        );
    }
    if req.include_topic_authorized_operations {
        for t in resp.topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations =
                    security.authorized_operations(session, ResourceType::Topic, name);
            }
        }
    }
    resp
}

fn answer(
    topics: &Topics,
    security: &Security,
    node: &Node,
    req: &MetadataRequest,
    version: i16,
    session: &Session,
) -> MetadataResponse {
    // In cluster mode, every live broker; the controller (which clients
    // only send admin requests to, and which any broker serves) is the
    // one answering.
    let brokers = node
        .brokers()
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
        })
        .collect();
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(topics.cluster_id())))
        .with_controller_id(BrokerId(node.id))
        .with_cluster_authorized_operations(OPS_NOT_REQUESTED);
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    if all {
        resp.topics = describable_topics(topics, security, session)
            .iter()
            .map(|t| describe(node, t))
            .collect();
        return resp;
    }
    let auto_create =
        req.allow_auto_topic_creation && topics.setting("auto.create.topics.enable") == "true";
    let denied = |name: &str| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
            .with_topic_id(Uuid::nil())
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_topic_authorized_operations(OPS_NOT_REQUESTED)
    };
    let may_describe =
        |name: &str| security.authorize(session, AclOperation::Describe, ResourceType::Topic, name);
    // Auto-creation needs CREATE on the cluster, or on the topic (checked
    // only when the cluster check fails, as Kafka does).
    let may_create = |name: &str| {
        security.is_authorized(
            session,
            AclOperation::Create,
            ResourceType::Cluster,
            weir_auth::acl::CLUSTER_NAME,
        ) || security.authorize(session, AclOperation::Create, ResourceType::Topic, name)
    };
    for wanted in req.topics.clone().unwrap_or_default() {
        // v12+ may name a topic by id, with a null or empty name: as in
        // Kafka, a non-zero id wins over the name.
        let name = wanted.name.filter(|_| wanted.topic_id.is_nil());
        let entry = match name {
            Some(name) if !may_describe(&name) => denied(&name),
            Some(name) if auto_create && topics.topic(&name).is_none() && !may_create(&name) => {
                denied(&name)
            }
            Some(name) => by_name(topics, node, &name, auto_create),
            None => match topics.topic_by_id(&wanted.topic_id) {
                // Topic ids are not secret: Kafka answers with the id and
                // no name.
                Some(t) if !may_describe(&t.name) => MetadataResponseTopic::default()
                    .with_topic_id(t.id)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_topic_authorized_operations(OPS_NOT_REQUESTED),
                Some(t) => describe(node, &t),
                None => MetadataResponseTopic::default()
                    .with_topic_id(wanted.topic_id)
                    .with_error_code(ResponseError::UnknownTopicId.code()),
            },
        };
        resp.topics.push(entry);
    }
    resp
}

fn by_name(
    topics: &Topics,
    node: &Node,
    name: &TopicName,
    auto_create: bool,
) -> MetadataResponseTopic {
    if let Some(t) = topics.topic(name) {
        return describe(node, &t);
    }
    let missing = |e: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_topic_id(Uuid::nil())
            .with_error_code(e.code())
    };
    if !auto_create {
        return missing(ResponseError::UnknownTopicOrPartition);
    }
    let partitions = topics.setting("num.partitions").parse().unwrap_or(1);
    // Kafka gives an auto-created topic the default replication factor;
    // here it is capped at the live brokers rather than refused.
    let live = i16::try_from(node.brokers().len()).unwrap_or(i16::MAX);
    let rf = topics
        .setting("default.replication.factor")
        .parse::<i16>()
        .unwrap_or(1)
        .clamp(1, live.max(1));
    match topics.create_topic(name, partitions, rf, Vec::new(), BTreeMap::new(), false) {
        Ok(_) => topics.topic(name).map_or_else(
            || missing(ResponseError::LeaderNotAvailable),
            |t| describe(node, &t),
        ),
        // Another request created it first.
        Err(BrokerError::TopicExists { .. }) => topics.topic(name).map_or_else(
            || missing(ResponseError::LeaderNotAvailable),
            |t| describe(node, &t),
        ),
        Err(e) => missing(e.code()),
    }
}

/// Every topic the session may DESCRIBE (unauthorized ones are left out
/// silently, as Kafka does for "all topics").
pub(crate) fn describable_topics(
    topics: &Topics,
    security: &Security,
    session: &Session,
) -> Vec<Arc<Topic>> {
    topics
        .topics()
        .into_iter()
        .filter(|t| {
            security.is_authorized(
                session,
                AclOperation::Describe,
                ResourceType::Topic,
                &t.name,
            )
        })
        .collect()
}

fn describe(node: &Node, topic: &Topic) -> MetadataResponseTopic {
    let brokers = node.brokers();
    let live: Vec<i32> = brokers.iter().map(|b| b.node_id).collect();
    let partitions = (0..topic.partition_count())
        .map(|p| {
            let (leader, replicas) = crate::replicas::placement(&brokers, &live, topic, p);
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(crate::LEADER_EPOCH)
                .with_isr_nodes(replicas.clone())
                .with_replica_nodes(replicas)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(crate::INTERNAL_TOPICS.contains(&topic.name.as_str()))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}

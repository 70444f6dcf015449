//! DescribeTopicPartitions (KIP-966): topics and their partitions, paged by
//! a partition limit and a cursor; the Java admin client's describeTopics
//! prefers it to Metadata.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_request::Cursor;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor as NextCursor, DescribeTopicPartitionsResponsePartition,
    DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;

use crate::context::RequestContext;
use crate::node::Node;
use crate::security::Security;
use crate::topics::{Topic, Topics};

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one answer carries, whatever the client asks.
const MAX_PARTITIONS: usize = 2000;

/// Answers a DescribeTopicPartitions request. Named topics come back in
/// name order, each unknown one as UNKNOWN_TOPIC_OR_PARTITION and each one
/// without DESCRIBE as TOPIC_AUTHORIZATION_FAILED; no names means every
/// topic the client may describe. Partitions past the limit are left for
/// the next request, named by `next_cursor`.
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let session = ctx.session;
    let limit = usize::try_from(req.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, MAX_PARTITIONS);
    let mut names: Vec<String> = if req.topics.is_empty() {
        crate::metadata::describable_topics(topics, security, session)
            .iter()
            .map(|t| t.name.clone())
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, mut start_partition) = match &req.cursor {
        Some(Cursor {
            topic_name,
            partition_index,
            ..
        }) => (topic_name.to_string(), (*partition_index).max(0)),
        None => (String::new(), 0),
    };
    let mut resp = DescribeTopicPartitionsResponse::default();
    let mut left = limit;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        if name != start_topic {
            start_partition = 0;
        }
        let failed = |e: ResponseError| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(e.code())
                .with_name(Some(topic_name(&name)))
                .with_topic_id(Uuid::nil())
        };
        if !req.topics.is_empty()
            && !security.authorize(session, AclOperation::Describe, ResourceType::Topic, &name)
        {
            resp.topics
                .push(failed(ResponseError::TopicAuthorizationFailed));
            continue;
        }
        let Some(topic) = topics.topic(&name) else {
            resp.topics
                .push(failed(ResponseError::UnknownTopicOrPartition));
            continue;
        };
        if left == 0 {
            resp.next_cursor = Some(cursor(&name, start_partition));
            break;
        }
        let count = topic.partition_count();
        let end = start_partition.saturating_add(i32::try_from(left).unwrap_or(i32::MAX));
        let shown = start_partition.min(count)..end.min(count);
        left -= shown.len();
        resp.topics
            .push(describe(security, node, session, &topic, shown.clone()));
        if shown.end < count {
            resp.next_cursor = Some(cursor(&name, shown.end));
            break;
        }
    }
    resp
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn cursor(name: &str, partition: i32) -> NextCursor {
    NextCursor::default()
        .with_topic_name(topic_name(name))
        .with_partition_index(partition)
}

fn describe(
    security: &Security,
    node: &Node,
    session: &Session,
    topic: &Topic,
    partitions: std::ops::Range<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let brokers = node.brokers();
    let live: Vec<i32> = brokers.iter().map(|b| b.node_id).collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(crate::INTERNAL_TOPICS.contains(&topic.name.as_str()))
        .with_partitions(
            partitions
                .map(|p| {
                    // The same leader and replicas as Metadata.
                    let (leader, replicas) = crate::replicas::placement(&brokers, &live, topic, p);
                    DescribeTopicPartitionsResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(crate::LEADER_EPOCH)
                        .with_isr_nodes(replicas.clone())
                        .with_replica_nodes(replicas)
                        .with_eligible_leader_replicas(Some(Vec::new()))
                        .with_last_known_elr(Some(Vec::new()))
                })
                .collect(),
        )
        .with_topic_authorized_operations(security.authorized_operations(
            session,
            ResourceType::Topic,
            &topic.name,
        ))
}

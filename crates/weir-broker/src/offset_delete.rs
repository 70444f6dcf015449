//! OffsetDelete: drop a group's committed offsets for some partitions.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// Answers an OffsetDelete request. Partitions of topics the group is
/// subscribed to get GROUP_SUBSCRIBED_TO_TOPIC, as in Kafka.
pub fn handle(broker: &Broker, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let parts: Vec<(String, i32)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let result = match broker.groups.delete_offsets(broker, &r.group_id, parts) {
        Ok(r) => r,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (t, p, code) in result {
        if topics.last().is_none_or(|x| x.name.as_str() != t) {
            topics.push(
                OffsetDeleteResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))),
            );
        }
        if let Some(last) = topics.last_mut() {
            last.partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(code),
            );
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

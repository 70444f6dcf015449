//! OffsetFetch: committed positions, for one group (v0-7) or many (v8+).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use kafka_protocol::error::ResponseError;
use weir_auth::acl::{AclOperation, ResourceType};

const UNSTABLE: i16 = kafka_protocol::error::ResponseError::UnstableOffsetCommit.code();
use crate::context::RequestContext;
use crate::group_store::Committed;
use crate::groups::Groups;
use crate::groups::TopicOffsets as Fetched;
use crate::security::Security;
use crate::topics::Topics;

fn parts(c: Option<Committed>, version: i16) -> (i64, i32, String) {
    match c {
        Some(c) => (
            c.offset,
            if version >= 5 { c.leader_epoch } else { -1 },
            c.metadata,
        ),
        None => (-1, -1, String::new()),
    }
}

/// Answers an OffsetFetch request. Unknown groups and partitions without a
/// commit get offset -1, as in Kafka.
///
/// With authorization on, the group needs DESCRIBE (else
/// GROUP_AUTHORIZATION_FAILED); topics the client may not DESCRIBE are left
/// out when it asked for all, and answered with TOPIC_AUTHORIZATION_FAILED
/// when it named them, as in Kafka.
pub fn handle(
    topics: &Topics,
    groups: &Groups,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = ctx.version;
    let session = ctx.session;
    let group_ok =
        |g: &str| security.authorize(session, AclOperation::Describe, ResourceType::Group, g);
    // None: the topic may be described; Some: it may not, and was named.
    let topic_ok = |t: &str, named: bool| -> Option<bool> {
        if named {
            Some(security.authorize(session, AclOperation::Describe, ResourceType::Topic, t))
        } else {
            security
                .is_authorized(session, AclOperation::Describe, ResourceType::Topic, t)
                .then_some(true)
        }
    };
    const DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
    // KIP-447: a read_committed consumer asks not to be given an offset a
    // transaction may still change.
    let require_stable = version >= 7 && r.require_stable;
    let unstable = |group: &str, t: &str, p: i32| require_stable && groups.has_pending(group, t, p);
    if version < 8 {
        if !group_ok(&r.group_id) {
            return OffsetFetchResponse::default()
                .with_error_code(ResponseError::GroupAuthorizationFailed.code());
        }
        if !groups.owns(&r.group_id) {
            return OffsetFetchResponse::default()
                .with_error_code(ResponseError::NotCoordinator.code());
        }
        let named = r.topics.is_some();
        let wanted = r.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        let fetched: Fetched = groups.committed(&r.group_id, wanted);
        let topics = fetched
            .into_iter()
            .filter_map(|(t, ps)| Some((topic_ok(&t, named)?, t, ps)))
            .map(|(allowed, t, ps)| {
                let partitions = ps
                    .into_iter()
                    .map(|(p, c)| {
                        if !allowed {
                            return OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_error_code(DENIED);
                        }
                        if unstable(&r.group_id, &t, p) {
                            return OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_error_code(UNSTABLE);
                        }
                        let (offset, epoch, metadata) = parts(c, version);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(StrBytes::from_string(metadata)))
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let groups = r
        .groups
        .into_iter()
        .map(|g| {
            if !group_ok(&g.group_id) {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if !groups.owns(&g.group_id) {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(ResponseError::NotCoordinator.code());
            }
            let named = g.topics.is_some();
            // v10 names topics by id.
            let mut ids: Vec<(String, Uuid)> = Vec::new();
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| {
                        let name = if version >= 10 {
                            topics
                                .topic_by_id(&t.topic_id)
                                .map(|x| x.name.clone())
                                .unwrap_or_default()
                        } else {
                            t.name.to_string()
                        };
                        ids.push((name.clone(), t.topic_id));
                        (name, t.partition_indexes)
                    })
                    .collect()
            });
            let fetched: Fetched = groups.committed(&g.group_id, wanted);
            let topics = fetched
                .into_iter()
                .filter_map(|(t, ps)| Some((topic_ok(&t, named)?, t, ps)))
                .map(|(allowed, t, ps)| {
                    let id = ids
                        .iter()
                        .find(|(n, _)| *n == t)
                        .map(|(_, id)| *id)
                        .or_else(|| {
                            (version >= 10)
                                .then(|| topics.topic(&t).map(|x| x.id))
                                .flatten()
                        })
                        .unwrap_or_default();
                    let partitions = ps
                        .into_iter()
                        .map(|(p, c)| {
                            if !allowed {
                                return OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_error_code(DENIED);
                            }
                            if unstable(&g.group_id, &t, p) {
                                return OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_error_code(UNSTABLE);
                            }
                            let (offset, epoch, metadata) = parts(c, version);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(StrBytes::from_string(metadata)))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

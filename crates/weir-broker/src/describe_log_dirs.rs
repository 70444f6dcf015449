//! DescribeLogDirs: the one data directory and the size of each partition
//! this broker holds.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use std::sync::Arc;

use futures_util::future::join_all;
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_log::PartitionLog;

use crate::context::{Reply, RequestContext};
use crate::node::Node;
use crate::security::Security;
use crate::topics::Topic;
use crate::topics::Topics;
use weir_auth::acl::{AclOperation, ResourceType};

/// Kafka's value for "volume size unknown".
const UNKNOWN_BYTES: i64 = -1;

/// The total and usable bytes of the volume holding `dir`, as Java's
/// `FileStore.getTotalSpace`/`getUsableSpace` (which Kafka reports) count
/// them: all blocks, and the blocks available to unprivileged users.
fn volume_bytes(dir: &std::path::Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX);
            (bytes(s.f_blocks), bytes(s.f_bavail))
        }
        Err(_) => (UNKNOWN_BYTES, UNKNOWN_BYTES),
    }
}

/// A topic's name and the partitions listed for it, with their logs.
type Held = (String, Vec<(i32, Arc<dyn PartitionLog>)>);

/// The partitions of `topic` this broker lists, with their logs: on one
/// node all of them; in a cluster those Metadata names it leader of, since
/// Kafka lists a partition only on the brokers holding a replica and the
/// leader is a cluster partition's one replica. Every broker thus lists
/// each partition once between them.
fn held(
    topic: &Topic,
    only: Option<&[i32]>,
    node: &Node,
    brokers: &[weir_log::BrokerAddr],
) -> Held {
    let logs = (0..topic.partition_count())
        .filter(|p| only.is_none_or(|o| o.contains(p)))
        .filter(|&p| !node.in_cluster() || Node::leader_of(brokers, &topic.name, p) == node.id)
        .filter_map(|p| Some((p, topic.partition(p)?.clone())))
        .collect();
    (topic.name.clone(), logs)
}

/// Answers a DescribeLogDirs request. A partition's size is the store's
/// (in a cluster, PostgreSQL's account of the partition's chunks, which
/// every broker's appends update).
///
/// With authorization on, needs DESCRIBE on the cluster (else
/// CLUSTER_AUTHORIZATION_FAILED and no directories).
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: DescribeLogDirsRequest,
) -> Reply {
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Describe,
        ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    ) {
        return Reply::Ready(ResponseKind::DescribeLogDirs(
            DescribeLogDirsResponse::default().with_error_code(
                kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code(),
            ),
        ));
    }
    let brokers = node.brokers();
    let held: Vec<_> = match req.topics {
        None => topics
            .topics()
            .iter()
            .map(|t| held(t, None, node, &brokers))
            .collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|w| {
                topics
                    .topic(&w.topic)
                    .map(|t| held(&t, Some(&w.partitions), node, &brokers))
            })
            .collect(),
    };
    let dir = std::path::absolute(&node.data_dir).unwrap_or_else(|_| node.data_dir.to_path_buf());
    let (total, usable) = volume_bytes(&dir);
    Reply::Later(Box::pin(async move {
        let mut topics = Vec::with_capacity(held.len());
        for (name, logs) in held {
            let sizes = join_all(logs.iter().map(|(_, log)| log.current_size_bytes())).await;
            let partitions = logs
                .iter()
                .zip(sizes)
                .map(|((p, log), size)| {
                    // The store unreachable: the size last known here.
                    let size = size.unwrap_or_else(|_| log.size_bytes());
                    DescribeLogDirsPartition::default()
                        .with_partition_index(*p)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                })
                .collect();
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions),
            );
        }
        ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                .with_topics(topics)
                .with_total_bytes(total)
                .with_usable_bytes(usable),
        ]))
    }))
}

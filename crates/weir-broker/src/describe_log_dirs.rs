//! DescribeLogDirs: the one data directory and the size of each partition.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
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

fn describe(topic: &Topic, only: Option<&[i32]>) -> DescribeLogDirsTopic {
    let partitions = (0..topic.partition_count())
        .filter(|p| only.is_none_or(|o| o.contains(p)))
        .filter_map(|p| {
            let log = topic.partition(p)?;
            Some(
                DescribeLogDirsPartition::default()
                    .with_partition_index(p)
                    .with_partition_size(i64::try_from(log.size_bytes()).unwrap_or(i64::MAX)),
            )
        })
        .collect();
    DescribeLogDirsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
        .with_partitions(partitions)
}

/// Answers a DescribeLogDirs request.
///
/// With authorization on, needs DESCRIBE on the cluster (else
/// CLUSTER_AUTHORIZATION_FAILED and no directories).
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Describe,
        ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    ) {
        return DescribeLogDirsResponse::default().with_error_code(
            kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code(),
        );
    }
    let topics = match req.topics {
        None => topics.topics().iter().map(|t| describe(t, None)).collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|w| {
                topics
                    .topic(&w.topic)
                    .map(|t| describe(&t, Some(&w.partitions)))
            })
            .collect(),
    };
    let dir = std::path::absolute(&node.data_dir).unwrap_or_else(|_| node.data_dir.to_path_buf());
    let (total, usable) = volume_bytes(&dir);
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}

//! The cluster's shape: its id, brokers and controller (DescribeCluster,
//! or Metadata where that is missing), topics with their partitions'
//! leaders, replicas and in-sync replicas, and log directories.

use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeLogDirsRequest, ListPartitionReassignmentsRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::error::check;
use crate::{Admin, Result};

/// The cluster as a whole.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster_id: String,
    /// `-1` when unknown.
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

/// One broker.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// A topic and its partitions, from Metadata.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// One partition's replicas.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    /// `-1` without a leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A partition reassignment in progress.
#[derive(Debug, Clone)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// One log directory of one broker.
#[derive(Debug, Clone)]
pub struct LogDirInfo {
    pub broker: i32,
    pub path: String,
    /// Bytes of the volume, `-1` when the broker does not say.
    pub total_bytes: i64,
    pub usable_bytes: i64,
    /// (topic, partition, bytes) of every replica in the directory.
    pub partitions: Vec<(String, i32, i64)>,
}

impl Admin {
    /// The cluster id, controller and brokers.
    pub async fn describe_cluster(&mut self) -> Result<ClusterInfo> {
        if self.version::<DescribeClusterRequest>(1).is_ok() {
            let (resp, _) = self.send(DescribeClusterRequest::default(), 1).await?;
            check(
                resp.error_code,
                "cannot describe the cluster",
                resp.error_message.as_deref(),
            )?;
            let brokers = resp
                .brokers
                .iter()
                .map(|b| (b.broker_id.0, &b.host, b.port, b.rack.as_ref()));
            return Ok(cluster_info(
                resp.cluster_id.to_string(),
                resp.controller_id.0,
                brokers,
            ));
        }
        let md = self.metadata(Some(&[])).await?;
        let brokers = md
            .brokers
            .iter()
            .map(|b| (b.node_id.0, &b.host, b.port, b.rack.as_ref()));
        Ok(cluster_info(
            md.cluster_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            md.controller_id.0,
            brokers,
        ))
    }

    /// Topics (`None`: every topic) with their partitions, sorted by name
    /// and partition. Topics the broker reports an error for (unknown,
    /// unauthorized) are left out.
    pub async fn topics(&mut self, names: Option<&[String]>) -> Result<Vec<TopicInfo>> {
        let md = self.metadata(names).await?;
        let mut out: Vec<TopicInfo> = md
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(topic_info)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One topic, or Kafka's error for it (UNKNOWN_TOPIC_OR_PARTITION, ...).
    pub async fn topic(&mut self, name: &str) -> Result<TopicInfo> {
        let md = self.metadata(Some(&[name.to_string()])).await?;
        let what = format!("topic `{name}`");
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name));
        match t {
            Some(t) => {
                check(t.error_code, &what, None)?;
                topic_info(t).ok_or_else(|| unknown(what))
            }
            None => Err(unknown(what)),
        }
    }

    /// The partition reassignments in progress, sorted. A cluster that
    /// does not serve ListPartitionReassignments cannot reassign, so it
    /// has none.
    pub async fn reassignments(&mut self) -> Result<Vec<Reassignment>> {
        if self
            .version::<ListPartitionReassignmentsRequest>(0)
            .is_err()
        {
            return Ok(Vec::new());
        }
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(None);
        let (resp, _) = self.send(req, 0).await?;
        check(
            resp.error_code,
            "cannot list partition reassignments",
            resp.error_message.as_deref(),
        )?;
        let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
        let mut out: Vec<Reassignment> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| Reassignment {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Every log directory of every broker, with the size of each replica.
    pub async fn log_dirs(&mut self) -> Result<Vec<LogDirInfo>> {
        if self.nodes().is_empty() {
            self.metadata(Some(&[])).await?;
        }
        let mut out = Vec::new();
        for node in self.nodes() {
            let req = DescribeLogDirsRequest::default().with_topics(None);
            let (resp, _) = self.send_to(node.id, req, 4).await?;
            check(resp.error_code, "cannot describe log directories", None)?;
            for dir in resp.results {
                if dir.error_code != 0 {
                    continue;
                }
                out.push(LogDirInfo {
                    broker: node.id,
                    path: dir.log_dir.to_string(),
                    total_bytes: dir.total_bytes,
                    usable_bytes: dir.usable_bytes,
                    partitions: dir
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (t.name.to_string(), p.partition_index, p.partition_size))
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }
}

fn cluster_info<'a>(
    cluster_id: String,
    controller_id: i32,
    brokers: impl Iterator<Item = (i32, &'a StrBytes, i32, Option<&'a StrBytes>)>,
) -> ClusterInfo {
    let mut brokers: Vec<BrokerInfo> = brokers
        .map(|(id, host, port, rack)| BrokerInfo {
            id,
            host: host.to_string(),
            port,
            rack: rack.map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    ClusterInfo {
        cluster_id,
        controller_id,
        brokers,
    }
}

fn unknown(what: String) -> crate::ClientError {
    crate::ClientError::Kafka {
        what,
        code: 3, // UNKNOWN_TOPIC_OR_PARTITION
        message: None,
    }
}

fn topic_info(t: &MetadataResponseTopic) -> Option<TopicInfo> {
    let name = t.name.as_ref()?.to_string();
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    Some(TopicInfo {
        name,
        internal: t.is_internal,
        partitions,
    })
}

//! The admin session.
//!
//! Wire structs and framing come from `kafka-protocol`. Each request is
//! sent at the highest version both this client and the broker speak
//! (capped where newer versions change the shape of what we send), to the
//! right node: partition leaders for ListOffsets, the group coordinator
//! for group requests, every broker for DescribeLogDirs.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::conn::{ClientConfig, Conn};
use crate::error::{check, ClientError};
use crate::Result;

/// Brokers of the cluster, as Metadata describes them.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

/// An admin session with a cluster.
#[derive(Debug)]
pub struct Admin {
    bootstrap: Conn,
    nodes: HashMap<i32, Node>,
    conns: HashMap<i32, Conn>,
    timeout: Duration,
    config: ClientConfig,
}

/// Connects to the first address of a comma-separated `bootstrap` list that
/// answers.
pub(crate) async fn connect_any(bootstrap: &str, config: &ClientConfig) -> Result<Conn> {
    let mut last = None;
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match Conn::open(addr, config).await {
            Ok(c) => return Ok(c),
            // A refused login will be refused by every broker.
            Err(e @ ClientError::Authentication { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClientError::EmptyBootstrap))
}

impl Admin {
    /// Connects to the bootstrap broker over plaintext and negotiates
    /// versions.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Self> {
        Self::connect_with(bootstrap, ClientConfig::plaintext(timeout)).await
    }

    /// Connects with `config`'s security, client id and timeout.
    pub async fn connect_with(bootstrap: &str, config: ClientConfig) -> Result<Self> {
        Ok(Self {
            bootstrap: connect_any(bootstrap, &config).await?,
            nodes: HashMap::new(),
            conns: HashMap::new(),
            timeout: config.timeout,
            config,
        })
    }

    /// `(api key, min, max)` the bootstrap broker advertises.
    pub fn api_versions(&self) -> Vec<(i16, i16, i16)> {
        let mut v: Vec<_> = self
            .bootstrap
            .versions
            .iter()
            .map(|(k, (a, b))| (*k, *a, *b))
            .collect();
        v.sort();
        v
    }

    /// How long each request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The address of the bootstrap connection.
    pub fn bootstrap_addr(&self) -> &str {
        &self.bootstrap.addr
    }

    /// Sends to the bootstrap broker at the best version up to `cap`.
    pub async fn send<R: Request>(&mut self, req: R, cap: i16) -> Result<(R::Response, i16)> {
        let v = self.bootstrap.version::<R>(cap)?;
        let t = self.timeout;
        Ok((self.bootstrap.send_at(req, v, t).await?, v))
    }

    /// The version `R` would be sent at to the bootstrap broker.
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        self.bootstrap.version::<R>(cap)
    }

    /// Sends to broker `node` (connecting on first use).
    pub async fn send_to<R: Request>(
        &mut self,
        node: i32,
        req: R,
        cap: i16,
    ) -> Result<(R::Response, i16)> {
        if !self.conns.contains_key(&node) {
            if self.nodes.is_empty() {
                self.metadata(Some(&[])).await?;
            }
            let n = self
                .nodes
                .get(&node)
                .ok_or(ClientError::UnknownNode(node))?;
            let addr = format!("{}:{}", n.host, n.port);
            // The bootstrap address often is the only reachable name of a
            // single broker (e.g. behind port forwarding): reuse it when the
            // cluster has one node.
            let conn = if self.nodes.len() == 1 {
                Conn::open(&self.bootstrap.addr.clone(), &self.config).await?
            } else {
                Conn::open(&addr, &self.config).await?
            };
            self.conns.insert(node, conn);
        }
        let t = self.timeout;
        let c = self
            .conns
            .get_mut(&node)
            .ok_or(ClientError::UnknownNode(node))?;
        let v = c.version::<R>(cap)?;
        Ok((c.send_at(req, v, t).await?, v))
    }

    /// Whether broker `node` serves `R` at a version this client speaks.
    pub async fn node_supports<R: Request>(&mut self, node: i32) -> bool {
        if !self.conns.contains_key(&node) {
            // Connect through a harmless request.
            let req = ApiVersionsRequest::default();
            if self.send_to(node, req, 0).await.is_err() {
                return false;
            }
        }
        self.conns
            .get(&node)
            .is_some_and(|c| c.version::<R>(i16::MAX).is_ok())
    }

    /// Metadata for `topics` (`None`: all topics), without creating any.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let v = self.bootstrap.version::<MetadataRequest>(12)?;
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect()
        });
        if v >= 4 {
            req.allow_auto_topic_creation = false;
        }
        let t = self.timeout;
        let resp = self.bootstrap.send_at(req, v, t).await?;
        self.nodes = resp
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    Node {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                    },
                )
            })
            .collect();
        Ok(resp)
    }

    /// Brokers seen in the last Metadata.
    pub fn nodes(&self) -> Vec<Node> {
        let mut v: Vec<Node> = self.nodes.values().cloned().collect();
        v.sort_by_key(|n| n.id);
        v
    }

    /// The coordinator of consumer group `group`.
    pub async fn coordinator(&mut self, group: &str) -> Result<i32> {
        let v = self.bootstrap.version::<FindCoordinatorRequest>(3)?;
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_string()))
            .with_key_type(0);
        let t = self.timeout;
        let resp = self.bootstrap.send_at(req, v, t).await?;
        check(
            resp.error_code,
            &format!("cannot find the coordinator of group `{group}`"),
            None,
        )?;
        if self.nodes.is_empty() {
            self.metadata(Some(&[])).await?;
        }
        let BrokerId(id) = resp.node_id;
        Ok(id)
    }
}

/// `ListOffsets` timestamp for the log start offset.
pub const EARLIEST: i64 = -2;
/// `ListOffsets` timestamp for the high watermark.
pub const LATEST: i64 = -1;

/// A partition's answer to ListOffsets: the offset, or an error code.
pub type OffsetAnswer = Result<i64, i16>;

impl Admin {
    /// Partitions of `topic` and their leaders, or Kafka's error code.
    pub async fn partitions(&mut self, topic: &str) -> Result<Vec<(i32, i32)>> {
        let md = self.metadata(Some(&[topic.to_string()])).await?;
        let t = md
            .topics
            .into_iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            .ok_or_else(|| ClientError::Protocol {
                addr: self.bootstrap.addr.clone(),
                reason: format!("topic `{topic}` is not in the metadata response"),
            })?;
        check(t.error_code, &format!("topic `{topic}`"), None)?;
        let mut v: Vec<(i32, i32)> = t
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect();
        v.sort();
        Ok(v)
    }

    /// The offset for `timestamp` (or [`EARLIEST`]/[`LATEST`]) of each
    /// partition, asking each partition's leader. `-1` when no record is at
    /// or after the timestamp.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[(i32, i32)],
        timestamp: i64,
    ) -> Result<HashMap<i32, OffsetAnswer>> {
        use kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        use kafka_protocol::messages::ListOffsetsRequest;
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for &(p, leader) in partitions {
            by_leader.entry(leader).or_default().push(p);
        }
        let mut out = HashMap::new();
        for (leader, parts) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let (resp, _) = self.send_to(leader, req, 7).await?;
            for t in resp.topics {
                for p in t.partitions {
                    let answer = if p.error_code == 0 {
                        Ok(p.offset)
                    } else {
                        Err(p.error_code)
                    };
                    out.insert(p.partition_index, answer);
                }
            }
        }
        Ok(out)
    }

    /// Bytes on disk of each partition of `topic`, summed over the log
    /// directories of every broker (so over replicas too).
    pub async fn log_dir_sizes(&mut self, topic: &str) -> Result<HashMap<i32, i64>> {
        let parts: Vec<i32> = self.partitions(topic).await?.iter().map(|p| p.0).collect();
        self.log_dir_sizes_of(topic, &parts).await
    }

    /// [`Admin::log_dir_sizes`] of some partitions only (a page of a
    /// topic with thousands).
    pub async fn log_dir_sizes_of(
        &mut self,
        topic: &str,
        parts: &[i32],
    ) -> Result<HashMap<i32, i64>> {
        use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
        use kafka_protocol::messages::DescribeLogDirsRequest;
        let parts = parts.to_vec();
        let mut out = HashMap::new();
        for node in self.nodes() {
            let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(parts.clone()),
            ]));
            let (resp, _) = self.send_to(node.id, req, 4).await?;
            for dir in resp.results {
                for t in dir.topics {
                    for p in t.partitions {
                        *out.entry(p.partition_index).or_insert(0) += p.partition_size;
                    }
                }
            }
        }
        Ok(out)
    }
}

//! Connections and the admin session.
//!
//! Wire structs and framing come from `kafka-protocol`. Each request is
//! sent at the highest version both this client and the broker speak
//! (capped where newer versions change the shape of what we send), to the
//! right node: partition leaders for ListOffsets, the group coordinator
//! for group requests, every broker for DescribeLogDirs.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FindCoordinatorRequest,
    MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{check, ClientError};
use crate::Result;

/// How long connecting to a broker may take before we give up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to one broker.
#[derive(Debug)]
struct Conn {
    addr: String,
    stream: TcpStream,
    next_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    async fn open(addr: &str, timeout: Duration) -> Result<Self> {
        let connect_error = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_error("timed out".into()))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut c = Conn {
            addr: addr.to_string(),
            stream,
            next_id: 1,
            versions: HashMap::new(),
        };
        // ApiVersions v0 works everywhere (and is what a newer broker
        // answers an unknown version with), so negotiate from there.
        let resp: ApiVersionsResponse =
            c.send_at(ApiVersionsRequest::default(), 0, timeout).await?;
        check(
            resp.error_code,
            &format!("{addr} refused ApiVersions"),
            None,
        )?;
        c.versions = resp
            .api_keys
            .iter()
            .map(|k: &ApiVersion| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(c)
    }

    /// The version to send `R` at: the highest both sides speak, at most `cap`.
    fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        let &(min, max) = self
            .versions
            .get(&R::KEY)
            .ok_or_else(|| ClientError::Unsupported {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
            })?;
        let v = max.min(cap).min(R::VERSIONS.max);
        if v < min.max(R::VERSIONS.min) {
            return Err(ClientError::NoCommonVersion {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
            });
        }
        Ok(v)
    }

    async fn send_at<R: Request>(
        &mut self,
        req: R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("weir-cli")));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .and_then(|()| req.encode(&mut buf, version))
            .map_err(|e| ClientError::Encode {
                api: api_name(R::KEY),
                reason: e.to_string(),
            })?;
        let len = i32::try_from(buf.len() - 4).map_err(|_| ClientError::Encode {
            api: api_name(R::KEY),
            reason: "request larger than 2 GiB".into(),
        })?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let addr = self.addr.clone();
        let io = async {
            self.stream.write_all(&buf).await?;
            let n = self.stream.read_i32().await?;
            let n = usize::try_from(n).map_err(|_| std::io::Error::other("negative frame"))?;
            let mut frame = BytesMut::zeroed(n);
            self.stream.read_exact(&mut frame).await?;
            Ok::<_, std::io::Error>(frame.freeze())
        };
        let mut frame = tokio::time::timeout(timeout, io)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.clone(),
                secs: timeout.as_secs(),
            })?
            .map_err(|source| ClientError::Io {
                addr: addr.clone(),
                source,
            })?;
        let protocol = |reason: String| ClientError::Protocol {
            addr: addr.clone(),
            reason,
        };
        let rh = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| protocol(format!("bad response header: {e}")))?;
        if rh.correlation_id != id {
            return Err(protocol("answered out of order".into()));
        }
        let resp = R::Response::decode(&mut frame, version)
            .map_err(|e| protocol(format!("{} v{version}: {e}", api_name(R::KEY))))?;
        let _ = frame.remaining();
        Ok(resp)
    }
}

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
}

impl Admin {
    /// Connects to the bootstrap broker and negotiates versions.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Self> {
        let mut last = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Conn::open(addr, timeout).await {
                Ok(c) => {
                    return Ok(Self {
                        bootstrap: c,
                        nodes: HashMap::new(),
                        conns: HashMap::new(),
                        timeout,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::EmptyBootstrap))
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
                Conn::open(&self.bootstrap.addr.clone(), self.timeout).await?
            } else {
                Conn::open(&addr, self.timeout).await?
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
        use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
        use kafka_protocol::messages::DescribeLogDirsRequest;
        let parts: Vec<i32> = self.partitions(topic).await?.iter().map(|p| p.0).collect();
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

/// The API's name as kafka-protocol spells it (`OffsetFetch`), or its key.
fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("API {key}"))
}

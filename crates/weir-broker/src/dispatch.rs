//! Request dispatch: the one table from a decoded request to its API's
//! handler module. Adding an API adds a module and a row here (and its
//! versions in `api_versions.rs`). Each row hands its handler the request's
//! [`RequestContext`] and exactly the services it uses (topics, groups,
//! transactions, shares, security, node, metrics, fetch sessions); no
//! handler knows the `Broker`, so the handlers depend on the services and
//! nothing depends back on them. Client quotas are applied here, around
//! each request.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use tracing::warn;
use weir_auth::Session;

use crate::broker::{Broker, Reply};
use crate::context::RequestContext;
use crate::security::client_quotas::raise_throttle;
use crate::security::quotas::QuotaType;

impl Broker {
    /// Handles one decoded request from an in-process, anonymous caller.
    /// Work that must follow request order (appends) is done before this
    /// returns.
    pub fn handle(self: &Arc<Self>, header: &RequestHeader, body: RequestKind) -> Reply {
        self.handle_as(header, body, &Session::anonymous(None))
    }

    /// [`Broker::handle`] for the client behind `session`, within the
    /// client's quotas (crate::security::client_quotas).
    pub fn handle_as(
        self: &Arc<Self>,
        header: &RequestHeader,
        body: RequestKind,
        session: &Session,
    ) -> Reply {
        self.with_quotas(header, body, session, |body| {
            self.dispatch(header, body, session)
        })
    }

    /// Answers one request.
    fn dispatch(
        self: &Arc<Self>,
        header: &RequestHeader,
        body: RequestKind,
        session: &Session,
    ) -> Reply {
        let v = header.request_api_version;
        let client_id = header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let ctx = RequestContext {
            version: v,
            client_id: &client_id,
            session,
        };
        let (topics, security, node) = (&self.topics, &self.security, &self.node);
        let (groups, txns, shares) = (&self.groups, &self.txns, &self.shares);
        let metrics = &self.metrics;
        let mut reply = match body {
            RequestKind::ApiVersions(r) => Reply::Ready(ResponseKind::ApiVersions(
                crate::api_versions::handle(&r, v, txns.transaction_version(), node.in_cluster()),
            )),
            RequestKind::Metadata(r) => Reply::Ready(ResponseKind::Metadata(
                crate::metadata::handle(topics, security, node, &ctx, r),
            )),
            RequestKind::Produce(r) => crate::produce::handle(
                topics,
                txns,
                security,
                metrics,
                self.validator.get(),
                &ctx,
                r,
            ),
            RequestKind::Fetch(r) => {
                let svc = crate::fetch::Services {
                    topics: topics.clone(),
                    sessions: self.sessions.clone(),
                    security: security.clone(),
                    node: node.clone(),
                    metrics: metrics.clone(),
                };
                let session = session.clone();
                Reply::Later(Box::pin(async move {
                    ResponseKind::Fetch(crate::fetch::handle(svc, v, session, r).await)
                }))
            }
            RequestKind::ListOffsets(r) => {
                let (topics, security) = (topics.clone(), security.clone());
                let session = session.clone();
                Reply::Later(Box::pin(async move {
                    ResponseKind::ListOffsets(
                        crate::list_offsets::handle(&topics, &security, v, &session, r).await,
                    )
                }))
            }
            RequestKind::OffsetForLeaderEpoch(r) => {
                let (topics, security) = (topics.clone(), security.clone());
                let session = session.clone();
                Reply::Later(Box::pin(async move {
                    ResponseKind::OffsetForLeaderEpoch(
                        crate::offset_for_leader_epoch::handle(&topics, &security, &session, r)
                            .await,
                    )
                }))
            }
            RequestKind::CreateTopics(r) => Reply::Ready(ResponseKind::CreateTopics(
                crate::create_topics::handle(topics, security, node, &ctx, r),
            )),
            RequestKind::DeleteTopics(r) => Reply::Ready(ResponseKind::DeleteTopics(
                crate::delete_topics::handle(topics, &self.sessions, metrics, security, &ctx, r),
            )),
            RequestKind::CreatePartitions(r) => Reply::Ready(ResponseKind::CreatePartitions(
                crate::create_partitions::handle(topics, security, node, &ctx, r),
            )),
            RequestKind::DescribeConfigs(r) => Reply::Ready(ResponseKind::DescribeConfigs(
                crate::describe_configs::handle(topics, security, node, &ctx, r),
            )),
            RequestKind::AlterConfigs(r) => Reply::Ready(ResponseKind::AlterConfigs(
                crate::alter_configs::handle(topics, security, node, &ctx, r),
            )),
            RequestKind::IncrementalAlterConfigs(r) => {
                Reply::Ready(ResponseKind::IncrementalAlterConfigs(
                    crate::alter_configs::handle_incremental(topics, security, node, &ctx, r),
                ))
            }
            RequestKind::DescribeCluster(r) => Reply::Ready(ResponseKind::DescribeCluster(
                crate::describe_cluster::handle(topics, security, node, &ctx, r),
            )),
            RequestKind::DescribeTopicPartitions(r) => {
                Reply::Ready(ResponseKind::DescribeTopicPartitions(
                    crate::describe_topic_partitions::handle(topics, security, node, &ctx, r),
                ))
            }
            RequestKind::DescribeLogDirs(r) => {
                crate::describe_log_dirs::handle(topics, security, node, &ctx, r)
            }
            RequestKind::DeleteRecords(r) => {
                let (topics, security) = (topics.clone(), security.clone());
                let session = session.clone();
                Reply::Later(Box::pin(async move {
                    ResponseKind::DeleteRecords(
                        crate::delete_records::handle(&topics, &security, &session, r).await,
                    )
                }))
            }
            RequestKind::FindCoordinator(r) => Reply::Ready(ResponseKind::FindCoordinator(
                crate::find_coordinator::handle(security, node, groups, txns, &ctx, r),
            )),
            RequestKind::JoinGroup(r) => {
                crate::join_group::handle(groups, shares, security, &ctx, r)
            }
            RequestKind::SyncGroup(r) => crate::sync_group::handle(groups, security, &ctx, r),
            RequestKind::Heartbeat(r) => Reply::Ready(ResponseKind::Heartbeat(
                crate::heartbeat::handle(groups, security, &ctx, r),
            )),
            RequestKind::LeaveGroup(r) => Reply::Ready(ResponseKind::LeaveGroup(
                crate::leave_group::handle(groups, security, &ctx, r),
            )),
            RequestKind::OffsetCommit(r) => {
                crate::offset_commit::handle(topics, groups, security, node, &ctx, r)
            }
            RequestKind::OffsetFetch(r) => Reply::Ready(ResponseKind::OffsetFetch(
                crate::offset_fetch::handle(topics, groups, security, &ctx, r),
            )),
            RequestKind::DescribeGroups(r) => Reply::Ready(ResponseKind::DescribeGroups(
                crate::describe_groups::handle(groups, shares, security, &ctx, r),
            )),
            RequestKind::ListGroups(r) => Reply::Ready(ResponseKind::ListGroups(
                crate::list_groups::handle(groups, shares, security, &ctx, r),
            )),
            RequestKind::DeleteGroups(r) => {
                crate::delete_groups::handle(groups, shares, security, &ctx, r)
            }
            RequestKind::ConsumerGroupHeartbeat(r) => {
                crate::consumer_group_heartbeat::handle(groups, shares, security, &ctx, r)
            }
            RequestKind::ConsumerGroupDescribe(r) => {
                Reply::Ready(ResponseKind::ConsumerGroupDescribe(
                    crate::consumer_group_describe::handle(topics, groups, security, &ctx, r),
                ))
            }
            RequestKind::OffsetDelete(r) => Reply::Ready(ResponseKind::OffsetDelete(
                crate::offset_delete::handle(groups, security, &ctx, r),
            )),
            RequestKind::InitProducerId(r) => {
                crate::init_producer_id::handle(topics, txns, security, &ctx, r)
            }
            RequestKind::AddPartitionsToTxn(r) => {
                crate::add_partitions_to_txn::handle(topics, txns, security, &ctx, r)
            }
            RequestKind::AddOffsetsToTxn(r) => {
                crate::add_offsets_to_txn::handle(groups, txns, security, &ctx, r)
            }
            RequestKind::EndTxn(r) => crate::end_txn::handle(txns, security, &ctx, r),
            RequestKind::TxnOffsetCommit(r) => {
                crate::txn_offset_commit::handle(groups, txns, security, node, &ctx, r)
            }
            RequestKind::DescribeProducers(r) => Reply::Ready(ResponseKind::DescribeProducers(
                crate::describe_producers::handle(topics, security, &ctx, r),
            )),
            RequestKind::DescribeTransactions(r) => {
                Reply::Ready(ResponseKind::DescribeTransactions(
                    crate::describe_transactions::handle(txns, security, &ctx, r),
                ))
            }
            RequestKind::ListTransactions(r) => Reply::Ready(ResponseKind::ListTransactions(
                crate::list_transactions::handle(txns, security, &ctx, r),
            )),
            RequestKind::CreateAcls(r) => crate::create_acls::handle(security, &ctx, r),
            RequestKind::DescribeAcls(r) => Reply::Ready(ResponseKind::DescribeAcls(
                crate::describe_acls::handle(security, &ctx, r),
            )),
            RequestKind::DeleteAcls(r) => crate::delete_acls::handle(security, &ctx, r),
            RequestKind::DescribeUserScramCredentials(r) => {
                Reply::Ready(ResponseKind::DescribeUserScramCredentials(
                    crate::describe_user_scram_credentials::handle(security, &ctx, r),
                ))
            }
            RequestKind::AlterUserScramCredentials(r) => {
                crate::alter_user_scram_credentials::handle(security, &ctx, r)
            }
            RequestKind::DescribeClientQuotas(r) => {
                Reply::Ready(ResponseKind::DescribeClientQuotas(
                    crate::describe_client_quotas::handle(security, &ctx, r),
                ))
            }
            RequestKind::AlterClientQuotas(r) => {
                crate::alter_client_quotas::handle(security, &ctx, r)
            }
            RequestKind::ShareGroupHeartbeat(r) => {
                crate::share_group_heartbeat::handle(groups, shares, security, &ctx, r)
            }
            RequestKind::ShareGroupDescribe(r) => Reply::Ready(ResponseKind::ShareGroupDescribe(
                crate::share_group_describe::handle(topics, groups, shares, security, &ctx, r),
            )),
            RequestKind::ShareFetch(r) => {
                crate::share_fetch::handle(topics, shares, security, node, metrics, &ctx, r)
            }
            RequestKind::ShareAcknowledge(r) => {
                crate::share_acknowledge::handle(topics, shares, security, node, &ctx, r)
            }
            RequestKind::DescribeShareGroupOffsets(r) => {
                crate::describe_share_group_offsets::handle(
                    topics, groups, shares, security, &ctx, r,
                )
            }
            RequestKind::AlterShareGroupOffsets(r) => {
                crate::alter_share_group_offsets::handle(topics, groups, shares, security, &ctx, r)
            }
            RequestKind::DeleteShareGroupOffsets(r) => {
                crate::delete_share_group_offsets::handle(topics, groups, shares, security, &ctx, r)
            }
            other => {
                // The codec only lets through what api_versions lists.
                warn!(request = ?std::mem::discriminant(&other), "request for an API without a handler");
                Reply::None
            }
        };
        // Kafka answers with the address of the listener the client used.
        if let Reply::Ready(resp) = &mut reply {
            self.security.localize_endpoints(resp, &session.listener);
        }
        reply
    }

    /// Whether the client that sent `header` is over its produce or
    /// request quota now. Its connection then reads nothing more until
    /// the answer is out and the throttle time has passed, as Kafka, which
    /// reads one request per connection at a time, mutes it; otherwise
    /// requests answered later (a cluster's commit, durability) would go
    /// on being read, and a pipelining producer would outrun its quota.
    pub fn over_quota(&self, header: &RequestHeader, session: &Session) -> bool {
        let q = &self.security.quotas;
        if !q.enabled() {
            return false;
        }
        let client = header.client_id.as_ref().map_or("", |c| c.as_str());
        let user = session.principal.name.as_str();
        let now = self.now_ms();
        // Recording nothing measures the rate as it stands.
        [QuotaType::Produce, QuotaType::Request]
            .into_iter()
            .any(|qt| q.record(qt, user, client, 0.0, now) > 0)
    }

    /// Runs `dispatch` for one request and applies the client's quotas to
    /// its reply. Without any quota set this costs one atomic load.
    pub(crate) fn with_quotas(
        self: &Arc<Self>,
        header: &RequestHeader,
        mut body: RequestKind,
        session: &Session,
        dispatch: impl FnOnce(RequestKind) -> Reply,
    ) -> Reply {
        if !self.security.quotas.enabled() {
            return dispatch(body);
        }
        let user = session.principal.name.clone();
        let client = header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let q = &self.security.quotas;
        if let RequestKind::Fetch(r) = &mut body {
            // As Kafka: a fetch larger than the quota window allows would
            // always be throttled and answered empty, so a consumer behind
            // by more than that would never progress. Shrink it instead.
            if let Some(cap) = q.max_value_in_window(QuotaType::Fetch, &user, &client) {
                cap_fetch(r, cap);
            }
        }
        let produced = match &body {
            RequestKind::Produce(r) => r
                .topic_data
                .iter()
                .flat_map(|t| &t.partition_data)
                .map(|p| p.records.as_ref().map_or(0, Bytes::len))
                .sum::<usize>(),
            _ => 0,
        };
        let started = Instant::now();
        let reply = dispatch(body);
        let busy = started.elapsed();
        let now = self.now_ms();
        // Kafka's unit: percent of one thread, per second.
        let percent = busy.as_secs_f64() * 100.0;
        let mut throttle = q.record(QuotaType::Request, &user, &client, percent, now);
        if produced > 0 {
            throttle =
                throttle.max(q.record(QuotaType::Produce, &user, &client, produced as f64, now));
        }
        match reply {
            Reply::Ready(mut resp) => {
                raise_throttle(&mut resp, throttle);
                Reply::Ready(resp)
            }
            Reply::Later(fut) => {
                let broker = self.clone();
                Reply::Later(Box::pin(async move {
                    let mut resp = fut.await;
                    let mut throttle = throttle;
                    if let ResponseKind::Fetch(f) = &mut resp {
                        let bytes: usize = f
                            .responses
                            .iter()
                            .flat_map(|t| &t.partitions)
                            .map(|p| p.records.as_ref().map_or(0, Bytes::len))
                            .sum();
                        let q = &broker.security.quotas;
                        let now = broker.now_ms();
                        let t = q.record(QuotaType::Fetch, &user, &client, bytes as f64, now);
                        throttle = throttle.max(t);
                        if throttle > 0 {
                            // As Kafka: a throttled fetch returns nothing,
                            // and what it would have returned is not
                            // counted.
                            q.unrecord(QuotaType::Fetch, &user, &client, bytes as f64, now);
                            f.responses.clear();
                        }
                    }
                    raise_throttle(&mut resp, throttle);
                    resp
                }))
            }
            Reply::None => Reply::None,
            Reply::Close => Reply::Close,
        }
    }
}

/// Kafka's `handleFetchRequest`: `max_bytes` is at most the quota window's
/// worth of bytes, and `min_bytes` at most `max_bytes`.
fn cap_fetch(r: &mut kafka_protocol::messages::FetchRequest, window_bytes: f64) {
    // Kafka's `.toInt`: saturating, as `as` is.
    let cap = window_bytes as i32;
    r.max_bytes = r.max_bytes.min(cap);
    r.min_bytes = r.min_bytes.min(r.max_bytes);
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::FetchRequest;

    use super::cap_fetch;

    #[test]
    fn a_fetch_is_capped_to_the_quota_window() {
        let mut r = FetchRequest::default();
        r.max_bytes = 52_428_800;
        r.min_bytes = 8192;
        cap_fetch(&mut r, 5120.0);
        assert_eq!((r.max_bytes, r.min_bytes), (5120, 5120));
        // A window larger than the request leaves it alone.
        r.max_bytes = 1000;
        r.min_bytes = 1;
        cap_fetch(&mut r, 5120.0);
        assert_eq!((r.max_bytes, r.min_bytes), (1000, 1));
        cap_fetch(&mut r, f64::MAX);
        assert_eq!((r.max_bytes, r.min_bytes), (1000, 1));
    }
}

//! Client quotas in the broker: the `quota` records of `__weir_security`,
//! enforcement around each request, and [`Mute`], the hook with which the
//! server holds back a throttled connection.
//!
//! Enforcement follows Kafka's request path: a Produce records its
//! request's record bytes, a Fetch its response's record bytes (and a
//! throttled Fetch is answered empty, its bytes taken back, as Kafka's
//! `getThrottledResponse`), and every request records the time the
//! broker spent handling it for `request_percentage` (Kafka measures
//! request-handler thread time; Weir measures the synchronous part of
//! `handle_as`, which is where a request occupies a worker). The largest
//! throttle goes into the response's `throttle_time_ms`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use tracing::warn;
use weir_auth::Session;

use crate::broker::{Broker, Reply};
use crate::error::BrokerError;
use crate::internal_log::Durable;
use crate::quotas::{QuotaEntity, QuotaManager, QuotaType, QuotaWindow, QUOTA_KIND};

impl Broker {
    /// Loads the quota records and the measurement window.
    pub(crate) async fn open_quotas(&self) -> Result<(), BrokerError> {
        let s = self.settings();
        self.security.quotas.set_window(QuotaWindow {
            samples: usize::try_from(s.get_i64("quota.window.num"))
                .unwrap_or(11)
                .max(1),
            window_ms: s.get_i64("quota.window.size.seconds").max(1) * 1000,
        });
        for (id, value) in self.security_records(QUOTA_KIND).await? {
            let parsed: Option<(QuotaEntity, BTreeMap<String, f64>)> =
                serde_json::from_slice(&value).ok();
            match parsed {
                Some((entity, values)) => self.security.quotas.set(entity, values),
                None => warn!(id, "ignoring an unreadable quota record"),
            }
        }
        Ok(())
    }

    /// The client quotas.
    pub fn quotas(&self) -> &QuotaManager {
        &self.security.quotas
    }

    /// Replaces one entity's quotas (empty: removes them), durably once
    /// the returned future resolves; enforcement sees them at once.
    pub fn set_client_quotas(
        &self,
        entity: QuotaEntity,
        values: BTreeMap<String, f64>,
    ) -> Result<Durable, BrokerError> {
        let value = if values.is_empty() {
            None
        } else {
            let json = serde_json::to_vec(&(&entity, &values))
                .map_err(|e| BrokerError::Internal(e.to_string()))?;
            Some(Bytes::from(json))
        };
        let durable = self.put_security_record(QUOTA_KIND, &entity.record_id(), value)?;
        self.security.quotas.set(entity, values);
        Ok(durable)
    }

    /// Runs `dispatch` for one request and applies the client's quotas to
    /// its reply. Without any quota set this costs one atomic load.
    pub(crate) fn with_quotas(
        self: &Arc<Self>,
        header: &RequestHeader,
        body: RequestKind,
        session: &Session,
        dispatch: impl FnOnce(RequestKind) -> Reply,
    ) -> Reply {
        if !self.security.quotas.enabled() {
            return dispatch(body);
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
        let user = session.principal.name.clone();
        let client = header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let q = &self.security.quotas;
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
        }
    }
}

macro_rules! throttle_fields {
    ($($v:ident),* $(,)?) => {
        /// The response's `throttle_time_ms`, for every API Weir serves
        /// that has one (versions without the field ignore it when
        /// encoding).
        fn throttle_time_ms(resp: &mut ResponseKind) -> Option<&mut i32> {
            match resp {
                $(ResponseKind::$v(r) => Some(&mut r.throttle_time_ms),)*
                _ => None,
            }
        }

        /// The response's `throttle_time_ms` (0 without the field).
        pub fn response_throttle_ms(resp: &ResponseKind) -> i32 {
            match resp {
                $(ResponseKind::$v(r) => r.throttle_time_ms,)*
                _ => 0,
            }
        }
    };
}

throttle_fields!(
    Produce,
    Fetch,
    ListOffsets,
    Metadata,
    CreateTopics,
    DeleteTopics,
    DeleteRecords,
    OffsetForLeaderEpoch,
    DescribeConfigs,
    AlterConfigs,
    DescribeLogDirs,
    CreatePartitions,
    IncrementalAlterConfigs,
    DescribeCluster,
    FindCoordinator,
    JoinGroup,
    SyncGroup,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    DescribeGroups,
    ListGroups,
    DeleteGroups,
    OffsetDelete,
    ConsumerGroupHeartbeat,
    ConsumerGroupDescribe,
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
    TxnOffsetCommit,
    DescribeProducers,
    DescribeTransactions,
    ListTransactions,
    DescribeUserScramCredentials,
    AlterUserScramCredentials,
    DescribeClientQuotas,
    AlterClientQuotas,
    DescribeAcls,
    CreateAcls,
    DeleteAcls,
);

fn raise_throttle(resp: &mut ResponseKind, ms: i32) {
    if ms > 0 {
        if let Some(t) = throttle_time_ms(resp) {
            *t = (*t).max(ms);
        }
    }
}

/// A connection's mute (KIP-219): the server notes each response and
/// waits before reading the next request until the longest throttle it
/// carried has passed.
#[derive(Debug, Clone, Default)]
pub struct Mute(Arc<Mutex<Option<tokio::time::Instant>>>);

impl Mute {
    /// Notes a response about to be sent.
    pub fn note(&self, resp: &ResponseKind) {
        let resp_ms = response_throttle_ms(resp);
        if resp_ms <= 0 {
            return;
        }
        let until = tokio::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(resp_ms).unwrap_or(0));
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.is_none_or(|u| u < until) {
            *m = Some(until);
        }
    }

    /// Resolves once the connection may be read again.
    pub async fn wait(&self) {
        let until = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = until {
            tokio::time::sleep_until(u).await;
        }
    }
}

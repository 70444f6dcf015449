//! Client quotas in the broker: the `quota` records of `__weir_security`,
//! the throttle fields of responses, and [`Mute`], the hook with which the
//! server holds back a throttled connection.
//!
//! Enforcement, around each request in `dispatch.rs`, follows Kafka's request path: a Produce records its
//! request's record bytes, a Fetch its response's record bytes (and a
//! throttled Fetch is answered empty, its bytes taken back, as Kafka's
//! `getThrottledResponse`), and every request records the time the
//! broker spent handling it for `request_percentage` (Kafka measures
//! request-handler thread time; Weir measures the synchronous part of
//! `handle_as`, which is where a request occupies a worker). The largest
//! throttle goes into the response's `throttle_time_ms`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;
use tracing::warn;

use crate::error::BrokerError;
use crate::internal_log::Durable;
use crate::security::quotas::{QuotaEntity, QuotaManager, QuotaWindow, QUOTA_KIND};
use crate::security::Security;

impl Security {
    /// Loads the quota records and the measurement window.
    pub(crate) async fn open_quotas(&self) -> Result<(), BrokerError> {
        let s = self.topics.settings();
        self.quotas.set_window(QuotaWindow {
            samples: usize::try_from(s.get_i64("quota.window.num"))
                .unwrap_or(11)
                .max(1),
            window_ms: s.get_i64("quota.window.size.seconds").max(1) * 1000,
        });
        for (id, value) in self.security_records(QUOTA_KIND).await? {
            self.apply_quota(&id, Some(&value));
        }
        Ok(())
    }

    /// Sets (or with `None`, removes) the quotas of one record; the record
    /// id is the entity, so a tombstone names whose quotas go.
    pub(crate) fn apply_quota(&self, id: &str, value: Option<&Bytes>) {
        let parsed: Option<(QuotaEntity, BTreeMap<String, f64>)> = match value {
            Some(v) => serde_json::from_slice(v).ok(),
            None => serde_json::from_str(id).ok().map(|e| (e, BTreeMap::new())),
        };
        match parsed {
            Some((entity, values)) => self.quotas.set(entity, values),
            None => warn!(id, "ignoring an unreadable quota record"),
        }
    }

    /// The client quotas.
    pub fn quotas(&self) -> &QuotaManager {
        &self.quotas
    }

    /// Replaces one entity's quotas (empty: removes them), durably once
    /// the returned future resolves; enforcement sees them at once on a
    /// single node, and when the future resolves in cluster mode.
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
        if self.applies_own_writes() {
            self.quotas.set(entity, values);
        }
        Ok(durable)
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

pub(crate) fn raise_throttle(resp: &mut ResponseKind, ms: i32) {
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

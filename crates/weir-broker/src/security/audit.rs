//! The audit topic: every [`AuditEvent`](crate::security::AuditEvent) is
//! appended as one JSON record to `__weir_audit`, besides going to the
//! `weir::audit` tracing target.
//!
//! The topic has one partition, `cleanup.policy=delete` and seven days of
//! retention (its configs can be changed like any topic's). It is created
//! when the broker opens, never lazily: events are recorded from inside
//! admin operations, which must not re-enter topic creation.
//!
//! Appends do not wait for durability: the request path never waits for
//! an fsync on the audit's behalf. The record reaches disk with the
//! engine's next flush, like an acks=1 produce; a crash can lose the last
//! events of the topic (the tracing log has them too).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::error::BrokerError;
use crate::security::Security;

/// The internal topic holding the audit trail.
pub const AUDIT_TOPIC: &str = "__weir_audit";

/// How long audit events are kept unless the topic's `retention.ms` says
/// otherwise: seven days, Kafka's default retention.
const AUDIT_RETENTION_MS: &str = "604800000";

impl Security {
    /// Creates `__weir_audit` if it does not exist.
    pub(crate) fn open_audit_topic(&self) -> Result<(), BrokerError> {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "delete".to_string()),
            ("retention.ms".to_string(), AUDIT_RETENTION_MS.to_string()),
        ]);
        self.topics.ensure_topic(AUDIT_TOPIC, 1, configs)?;
        Ok(())
    }

    /// Appends one JSON event to the audit topic, without waiting for it
    /// to be durable. Failures are logged, never returned: auditing must
    /// not fail the request it records.
    pub(crate) fn append_audit(&self, json: String) {
        if self.topics.topic(AUDIT_TOPIC).is_none() {
            return;
        }
        crate::internal_log::detach(
            "audit event",
            self.log
                .append(AUDIT_TOPIC, 0, vec![(None, Some(Bytes::from(json)))], None),
        );
    }
}

impl Security {
    /// Records one admin change (or attempt) made by `session`: outcome
    /// `success` when `error_code` is 0, else `failure` with the error's
    /// name in the detail.
    pub fn audit_admin(
        &self,
        session: &weir_auth::Session,
        operation: &str,
        resource: String,
        error_code: i16,
    ) {
        let ok = error_code == 0;
        let mut event = crate::security::AuditEvent::new(
            "admin",
            session,
            if ok { "success" } else { "failure" },
        );
        event.operation = operation.to_string();
        event.resource = resource;
        if !ok {
            event.detail = match ResponseError::try_from_code(error_code) {
                Some(e) => format!("{e:?}"),
                None => format!("error {error_code}"),
            };
        }
        self.audit(event);
    }
}

/// Kafka's resource type codes in config APIs, as audit resource prefixes.
pub(crate) fn config_resource(resource_type: i8, name: &str) -> String {
    let kind = match resource_type {
        2 => "topic",
        4 => "broker",
        8 => "broker-logger",
        16 => "client-metrics",
        32 => "group",
        _ => "unknown",
    };
    format!("{kind}:{name}")
}

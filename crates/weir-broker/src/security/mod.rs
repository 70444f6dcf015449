//! The security service: the SASL mechanisms the broker offers, the
//! `__weir_security` topic that holds credentials, ACLs and quotas, the
//! audit trail, and the advertised listeners. It depends on the topics
//! service and the internal log, never on `Broker`; its ACL, SCRAM,
//! quota and audit parts are `impl Security` blocks in crate::security::authz,
//! crate::security::scram_credentials, crate::security::client_quotas and crate::security::audit.
//!
//! `__weir_security` is one compacted partition. Each record's key is
//! `<kind>/<id>` (`scram/alice/SCRAM-SHA-256`, `acl/...`, `quota/...`)
//! and its value the kind's own encoding; a null value deletes the key.
//! Each feature reads back only its own kind at start-up. In cluster
//! mode every broker then follows the topic ([`Security::follow`]), so a
//! change made through one broker reaches the others; there a broker's
//! state moves only as its follower applies the log, in order, even for
//! the changes it writes itself.

pub mod audit;
pub mod authz;
pub mod client_quotas;
pub mod quotas;
pub mod scram_credentials;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use tracing::info;
use weir_auth::plain::PlainCredentials;
use weir_auth::sasl::{Mechanism, SaslServer};
use weir_auth::Session;

use crate::error::BrokerError;
use crate::internal_log::{self, Durable, InternalLog};
use crate::node::Node;
use crate::topics::Topics;

/// The internal topic holding security metadata.
pub const SECURITY_TOPIC: &str = "__weir_security";

/// The security service: authentication state, ACLs, quotas and audit.
#[derive(Debug)]
pub struct Security {
    /// `__weir_security` and `__weir_audit` live here.
    pub(crate) topics: Arc<Topics>,
    pub(crate) log: Arc<dyn InternalLog>,
    node: Arc<Node>,
    mechanisms: RwLock<Vec<Arc<dyn Mechanism>>>,
    /// ACLs and the authorizer (off unless `authorizer.class.name` is set).
    pub(crate) acls: crate::security::authz::Acls,
    /// SCRAM credentials (crate::security::scram_credentials).
    pub(crate) scram: Arc<crate::security::scram_credentials::ScramStore>,
    /// Client quotas (crate::security::client_quotas).
    pub(crate) quotas: crate::security::quotas::QuotaManager,
    /// Advertised `(listener, host, port)`, set by the binary.
    endpoints: RwLock<Vec<(String, String, i32)>>,
    /// The PLAIN users, for HTTP basic authentication.
    plain: RwLock<Option<PlainCredentials>>,
    /// The `__weir_security` log end before the state was read back at
    /// open: where following the topic starts.
    loaded_from: i64,
    /// Cluster mode: the follower applies every record, this broker's
    /// own included, and a write waits for it instead of applying at once.
    following: AtomicBool,
    /// The offset the follower has applied up to (exclusive).
    applied: tokio::sync::watch::Sender<i64>,
    /// Wakes the follower for a record this broker just wrote.
    wake: Arc<tokio::sync::Notify>,
    /// Cluster mode: how long a write waits for the follower to apply it
    /// before the request is answered REQUEST_TIMED_OUT (milliseconds).
    apply_timeout_ms: AtomicU64,
}

/// How long a security write waits for this broker's follower to apply
/// it (cluster mode). None of the requests that write (CreateAcls,
/// DeleteAcls, AlterUserScramCredentials, AlterClientQuotas) carries a
/// timeout, so this is half the clients' default `request.timeout.ms`
/// (30 s): the client gets the broker's answer rather than its own
/// timeout.
pub const APPLY_TIMEOUT_MS: u64 = 15_000;

/// One audited event, written as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// `authentication`, `authorization` or `admin`.
    pub kind: &'static str,
    /// `User:alice`.
    pub principal: String,
    /// The client's address.
    pub client: String,
    /// What was acted on (`topic:orders`, `cluster`, `user:bob`).
    pub resource: String,
    /// What was attempted (`SCRAM-SHA-256`, `Write`, `CreateTopics`).
    pub operation: String,
    /// `success`, `failure` or `denied`.
    pub outcome: &'static str,
    /// Anything else worth keeping (never a secret).
    pub detail: String,
}

impl AuditEvent {
    /// An event for `session`, with empty resource, operation and detail.
    pub fn new(kind: &'static str, session: &Session, outcome: &'static str) -> Self {
        Self {
            kind,
            principal: session.principal.to_string(),
            client: session.host(),
            resource: String::new(),
            operation: String::new(),
            outcome,
            detail: String::new(),
        }
    }
}

impl Security {
    /// Opens the service: turns on the authorizer and loads the ACLs,
    /// creates the audit topic, loads the SCRAM credentials (offering
    /// both SCRAM mechanisms) and the client quotas.
    pub(crate) async fn open(
        topics: Arc<Topics>,
        log: Arc<dyn InternalLog>,
        node: Arc<Node>,
    ) -> Result<Arc<Self>, BrokerError> {
        let loaded_from = match security_log(&topics) {
            Some(l) => l.current_offsets().await?.log_end,
            None => 0,
        };
        let security = Arc::new(Self {
            loaded_from,
            following: AtomicBool::new(false),
            applied: tokio::sync::watch::Sender::new(loaded_from),
            wake: Arc::default(),
            apply_timeout_ms: AtomicU64::new(APPLY_TIMEOUT_MS),
            topics,
            log,
            node,
            mechanisms: RwLock::default(),
            acls: crate::security::authz::Acls::default(),
            scram: Arc::default(),
            quotas: crate::security::quotas::QuotaManager::default(),
            endpoints: RwLock::default(),
            plain: RwLock::default(),
        });
        security.open_acls().await?;
        security.open_audit_topic()?;
        security.open_scram().await?;
        security.open_quotas().await?;
        Ok(security)
    }

    /// Offers a SASL mechanism; a later one with the same name replaces it.
    pub fn register_mechanism(&self, m: Arc<dyn Mechanism>) {
        let mut ms = self.mechanisms.write().unwrap_or_else(|e| e.into_inner());
        ms.retain(|x| x.name() != m.name());
        ms.push(m);
    }

    /// Stops offering a mechanism (one that `sasl.enabled.mechanisms`
    /// leaves out).
    pub fn unregister_mechanism(&self, name: &str) {
        self.mechanisms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|m| m.name() != name);
    }

    /// The names of the mechanisms offered, in registration order.
    pub fn sasl_mechanisms(&self) -> Vec<String> {
        self.mechanisms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    /// Starts an exchange with `mechanism`, if it is offered.
    pub fn sasl_start(&self, mechanism: &str) -> Option<Box<dyn SaslServer>> {
        self.mechanisms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|m| m.name() == mechanism)
            .map(|m| m.start())
    }

    /// Sets the address advertised for each listener. Metadata,
    /// DescribeCluster and FindCoordinator answer with the entry of the
    /// listener the request came in on; without one they keep
    /// the broker's `advertised.listeners` default.
    pub fn set_advertised_listeners(&self, endpoints: Vec<(String, String, i32)>) {
        *self.endpoints.write().unwrap_or_else(|e| e.into_inner()) = endpoints;
    }

    /// The advertised host and port of `listener`.
    pub fn advertised_for(&self, listener: &str) -> (String, i32) {
        let eps = self.endpoints.read().unwrap_or_else(|e| e.into_inner());
        match eps.iter().find(|(n, _, _)| n == listener) {
            Some((_, h, p)) => (h.clone(), *p),
            None => (self.node.host.clone(), self.node.port),
        }
    }

    /// Rewrites this node's address in a response to the one of
    /// `listener`.
    pub fn localize_endpoints(&self, resp: &mut ResponseKind, listener: &str) {
        if self
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            return;
        }
        let (host, port) = self.advertised_for(listener);
        let node = self.node.id;
        let h = || StrBytes::from_string(host.clone());
        match resp {
            ResponseKind::Metadata(m) => {
                for b in m.brokers.iter_mut().filter(|b| b.node_id.0 == node) {
                    b.host = h();
                    b.port = port;
                }
            }
            ResponseKind::DescribeCluster(d) => {
                for b in d.brokers.iter_mut().filter(|b| b.broker_id.0 == node) {
                    b.host = h();
                    b.port = port;
                }
            }
            ResponseKind::FindCoordinator(f) => {
                // v4+ answers in `coordinators` only: the top-level fields
                // must keep their defaults there or the response does not
                // encode.
                if f.coordinators.is_empty() && f.node_id.0 == node {
                    f.host = h();
                    f.port = port;
                }
                for c in f.coordinators.iter_mut().filter(|c| c.node_id.0 == node) {
                    c.host = h();
                    c.port = port;
                }
            }
            _ => {}
        }
    }

    /// Sets the PLAIN users that HTTP basic authentication checks.
    pub fn set_plain_credentials(&self, credentials: Option<PlainCredentials>) {
        *self.plain.write().unwrap_or_else(|e| e.into_inner()) = credentials;
    }

    /// Whether `user` may log in with `password` (HTTP basic
    /// authentication): checks the PLAIN users, then the SCRAM users.
    pub fn verify_password(&self, user: &str, password: &str) -> bool {
        let plain = self
            .plain
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| c.verify(user, password));
        plain || self.verify_scram_password(user, password)
    }

    /// Records an audit event: to the `weir::audit` tracing target and
    /// to the `__weir_audit` topic (crate::security::audit).
    pub fn audit(&self, event: AuditEvent) {
        if let Ok(json) = serde_json::to_string(&event) {
            info!(target: "weir::audit", "{json}");
            self.append_audit(json);
        }
    }

    /// Whether a write updates the in-memory state itself (single node),
    /// rather than leaving it to the follower (cluster mode).
    pub(crate) fn applies_own_writes(&self) -> bool {
        !self.following.load(Ordering::Acquire)
    }

    /// Writes (or with `None`, deletes) one `__weir_security` record,
    /// creating the topic on first use. The future resolves once the
    /// record is durable and, in cluster mode, once this broker's
    /// follower has applied it: the client that made a change sees it
    /// in effect here when answered, and the state never goes back to
    /// an older record.
    pub fn put_security_record(
        &self,
        kind: &str,
        id: &str,
        value: Option<Bytes>,
    ) -> Result<Durable, BrokerError> {
        let compact = [("cleanup.policy".to_string(), "compact".to_string())];
        self.topics
            .ensure_topic(SECURITY_TOPIC, 1, compact.into_iter().collect())?;
        let key = Bytes::from(format!("{kind}/{id}"));
        let appended = self
            .log
            .append(SECURITY_TOPIC, 0, vec![(Some(key), value)], None);
        let following =
            (!self.applies_own_writes()).then(|| (self.applied.subscribe(), self.wake.clone()));
        let bound = self.apply_timeout_ms.load(Ordering::Relaxed);
        let what = format!("{kind}/{id}");
        Ok(Box::pin(async move {
            let appended = appended.await?;
            appended.durable.await?;
            if let Some((mut applied, wake)) = following {
                wake.notify_one();
                let last = appended.last_offset;
                // Bounded: a follower that cannot read the log (the
                // database or the store down) must not hold the request
                // forever. The record is durable and applies later.
                let wait = applied.wait_for(|&next| next > last);
                match tokio::time::timeout(std::time::Duration::from_millis(bound), wait).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => {
                        return Err(BrokerError::Internal(format!(
                            "{SECURITY_TOPIC} is not followed"
                        )))
                    }
                    Err(_) => {
                        return Err(BrokerError::NotAppliedInTime {
                            what,
                            waited_ms: bound,
                        })
                    }
                }
            }
            Ok(())
        }))
    }

    /// Sets how long a write waits for the follower to apply it.
    pub fn set_apply_timeout(&self, timeout: std::time::Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.apply_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Cluster mode: applies the records other brokers append to
    /// `__weir_security` from where open read it, woken by the engine's
    /// commit notifications (and polling, for a topic not yet created or
    /// a notification missed, or woken by a write of its own), until
    /// `stopping`. From then on writes leave applying to it.
    pub(crate) fn follow(
        self: &Arc<Self>,
        stopping: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.following.store(true, Ordering::Release);
        let security = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stopping);
            let mut next = security.loaded_from;
            let mut changes = None;
            loop {
                let log = security_log(&security.topics);
                if let Some(log) = &log {
                    let changes = changes.get_or_insert_with(|| log.subscribe());
                    changes.borrow_and_update();
                    match internal_log::read_from(&**log, SECURITY_TOPIC, next).await {
                        Ok(entries) => {
                            for (offset, entry) in entries {
                                if let internal_log::Entry::Record { key, value, .. } = entry {
                                    security.apply_record(key.as_deref(), value.as_ref());
                                }
                                next = offset + 1;
                            }
                            security.applied.send_replace(next);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot read {SECURITY_TOPIC}"),
                    }
                }
                let poll = std::time::Duration::from_millis(if log.is_some() { 2000 } else { 300 });
                tokio::select! {
                    () = &mut stopping => return,
                    () = internal_log::changed_or_after(changes.as_mut(), poll) => {}
                    () = security.wake.notified() => {}
                }
            }
        });
    }

    /// Applies one `__weir_security` record to the in-memory state, as
    /// the broker that wrote it did.
    fn apply_record(&self, key: Option<&[u8]>, value: Option<&Bytes>) {
        let Some((kind, id)) = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.split_once('/'))
        else {
            return;
        };
        match kind {
            crate::security::authz::ACL_KIND => self.apply_acl(id, value),
            crate::security::scram_credentials::SCRAM_KIND => self.apply_scram(id, value),
            crate::security::quotas::QUOTA_KIND => self.apply_quota(id, value),
            _ => {}
        }
    }

    /// The live records of one kind, as `(id, value)` in key order.
    pub async fn security_records(&self, kind: &str) -> Result<Vec<(String, Bytes)>, BrokerError> {
        if self.topics.topic(SECURITY_TOPIC).is_none() {
            return Ok(Vec::new());
        }
        let prefix = format!("{kind}/");
        let mut live = std::collections::BTreeMap::new();
        let records = internal_log::read_records(&*self.log, SECURITY_TOPIC, 0).await?;
        for (key, value) in records {
            let Some(key) = key else { continue };
            let Some(id) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix(&prefix))
            else {
                continue;
            };
            match value {
                Some(v) => live.insert(id.to_string(), v),
                None => live.remove(id),
            };
        }
        Ok(live.into_iter().collect())
    }
}

/// `__weir_security`'s partition, if the topic exists.
fn security_log(topics: &Topics) -> Option<Arc<dyn weir_log::PartitionLog>> {
    let topic = topics.topic(SECURITY_TOPIC)?;
    topic.open_partition(0).ok().flatten().cloned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use weir_auth::acl::{AclBinding, ResourceType};
    use weir_auth::acl::{AclBindingFilter, AclOperation, PatternType, PermissionType};
    use weir_auth::scram::{ScramAlgorithm, ScramCredential, ScramCredentialStore};
    use weir_auth::Session;

    use super::*;
    use crate::broker::{Broker, BrokerConfig};
    use crate::security::quotas::QuotaEntity;

    async fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let settings = crate::config::BrokerSettings::from_static([(
            "authorizer.class.name".to_string(),
            "StandardAuthorizer".to_string(),
        )])
        .unwrap();
        let engine = weir_log::LocalEngine::open(weir_log::EngineConfig {
            data_dir: dir.to_path_buf(),
            ..weir_log::EngineConfig::default()
        })
        .unwrap();
        let config = BrokerConfig {
            node_id: 0,
            data_dir: dir.to_path_buf(),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            settings,
            clock: weir_log::Clock::system(),
        };
        Broker::open(config, engine).await.unwrap()
    }

    fn acl(topic: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: topic.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: PermissionType::Allow,
        }
    }

    fn state(s: &Security) -> impl PartialEq + std::fmt::Debug {
        let scram = s.scram.users();
        let key = s
            .scram
            .scram_credential("alice", ScramAlgorithm::Sha256)
            .map(|c| c.encode());
        let quotas: Vec<_> = s
            .quotas
            .all()
            .into_iter()
            .map(|(e, v)| (e, v.into_iter().collect::<Vec<_>>()))
            .collect();
        let acls = s.describe_acls(&AclBindingFilter::any());
        (scram, key, format!("{quotas:?}"), acls)
    }

    /// A broker applying another's records, twice over (a follower
    /// re-reads what it applied), ends with the writer's state,
    /// tombstones included.
    #[tokio::test]
    async fn applying_the_records_rebuilds_the_writers_state() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (writer, reader) = (broker(d1.path()).await, broker(d2.path()).await);
        let w = writer.security();
        let session = Session::anonymous(None);
        let cred = |pw| ScramCredential::from_password(ScramAlgorithm::Sha256, pw, b"salt", 4096);
        w.create_acls(&session, &[acl("a"), acl("b")])
            .unwrap()
            .await
            .unwrap();
        let only_a = AclBindingFilter {
            name: Some("a".into()),
            ..AclBindingFilter::any()
        };
        w.delete_acls(&session, &[only_a]).unwrap().1.await.unwrap();
        let scram = [
            ("alice", ScramAlgorithm::Sha256, Some(cred("one"))),
            ("alice", ScramAlgorithm::Sha256, Some(cred("two"))),
            ("bob", ScramAlgorithm::Sha512, Some(cred("x"))),
            ("bob", ScramAlgorithm::Sha512, None),
        ];
        for (user, alg, c) in scram {
            w.put_scram_credential(user, alg, c).unwrap().await.unwrap();
        }
        let user = |u: &str| QuotaEntity {
            user: Some(Some(u.into())),
            client_id: None,
        };
        let rate = BTreeMap::from([("producer_byte_rate".to_string(), 1024.0)]);
        for (u, values) in [
            ("alice", rate.clone()),
            ("bob", rate),
            ("bob", BTreeMap::new()),
        ] {
            w.set_client_quotas(user(u), values).unwrap().await.unwrap();
        }

        let records = internal_log::read_records(&*w.log, SECURITY_TOPIC, 0)
            .await
            .unwrap();
        let r = reader.security();
        for _ in 0..2 {
            for (key, value) in &records {
                r.apply_record(key.as_deref(), value.as_ref());
            }
            assert_eq!(state(r), state(w));
        }
        assert_eq!(
            r.describe_acls(&AclBindingFilter::any()),
            Some(vec![acl("b")])
        );
        assert!(r.verify_scram_password("alice", "two"));
        assert!(!r.scram.users().contains_key("bob"));
        assert_eq!(r.quotas.all().len(), 1);
    }

    /// A following broker whose follower does not apply a write (here:
    /// none runs) answers the write with REQUEST_TIMED_OUT once the
    /// bound passes instead of holding the request; the record is
    /// durable and takes effect when a follower applies it.
    #[tokio::test]
    async fn a_write_the_follower_does_not_apply_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path()).await;
        let s = b.security().clone();
        s.following.store(true, Ordering::Release);
        s.set_apply_timeout(std::time::Duration::from_millis(200));
        let session = Session::anonymous(None);
        let err = s
            .create_acls(&session, &[acl("late")])
            .unwrap()
            .await
            .unwrap_err();
        assert!(
            matches!(err, BrokerError::NotAppliedInTime { waited_ms: 200, .. }),
            "{err}"
        );
        assert_eq!(
            err.code(),
            kafka_protocol::error::ResponseError::RequestTimedOut
        );
        assert_eq!(s.describe_acls(&AclBindingFilter::any()), Some(vec![]));
        // Written all the same: a follower starting now applies it.
        s.follow(std::future::pending());
        s.create_acls(&session, &[acl("next")])
            .unwrap()
            .await
            .unwrap();
        assert_eq!(
            s.describe_acls(&AclBindingFilter::any()),
            Some(vec![acl("late"), acl("next")])
        );
    }

    /// A following broker's own writes take effect only through its
    /// follower, in log order. When a change is acknowledged it is in
    /// effect and the follower has applied the log through it, so no
    /// older record is left to re-apply: an ACL whose deletion was
    /// acknowledged is never granted again, not even for a moment.
    #[tokio::test]
    async fn a_following_broker_never_goes_back_to_an_older_record() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path()).await;
        let s = b.security().clone();
        s.follow(std::future::pending());
        let session = Session::anonymous(None);
        let deleted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let observer = {
            let (s, deleted, stop) = (s.clone(), deleted.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut granted_again = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let upto = deleted.load(Ordering::Acquire);
                    let acls = s.describe_acls(&AclBindingFilter::any()).unwrap();
                    granted_again
                        .extend((0..upto).filter(|i| acls.contains(&acl(&format!("t{i}")))));
                }
                granted_again
            })
        };
        let caught_up = async || {
            let log = security_log(&s.topics).unwrap();
            *s.applied.borrow() >= log.current_offsets().await.unwrap().log_end
        };
        for i in 0..100 {
            let topic = format!("t{i}");
            let only = AclBindingFilter {
                name: Some(topic.clone()),
                ..AclBindingFilter::any()
            };
            s.create_acls(&session, &[acl(&topic)])
                .unwrap()
                .await
                .unwrap();
            assert_eq!(s.describe_acls(&only), Some(vec![acl(&topic)]));
            assert!(
                caught_up().await,
                "round {i}: the create is acknowledged before it is applied"
            );
            // Two filters matching the same ACL: the first reports it.
            let (gone, durable) = s
                .delete_acls(&session, &[only.clone(), only.clone()])
                .unwrap();
            assert_eq!(gone, vec![vec![acl(&topic)], vec![]]);
            durable.await.unwrap();
            deleted.store(i + 1, Ordering::Release);
            assert_eq!(s.describe_acls(&only), Some(vec![]));
            assert!(
                caught_up().await,
                "round {i}: the delete is acknowledged before it is applied"
            );
        }
        stop.store(true, Ordering::Release);
        assert_eq!(observer.join().unwrap(), Vec::<usize>::new());
    }
}

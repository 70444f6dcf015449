//! Authorization: the broker's ACLs (kept as `acl` records in
//! `__weir_security`) and the checks every API handler calls.
//!
//! Authorization is on when `authorizer.class.name` is set; without it
//! every check passes, as in Kafka without an authorizer. The decision
//! logic is `weir_auth::acl::Authorizer`; this module loads and stores
//! ACLs and audits denials.
//!
//! Handlers call [`Security::authorize`] for a resource the client named
//! (a denial is audited, as Kafka logs it), and [`Security::is_authorized`]
//! to filter resources the client did not name (Metadata listing all
//! topics, ListGroups), which Kafka does not log either.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use tracing::warn;
use weir_auth::acl::{
    AclBinding, AclBindingFilter, AclOperation, Authorizer, AuthorizerConfig, PatternType,
    PermissionType, ResourceType, CLUSTER_NAME,
};
use weir_auth::Session;

use crate::error::BrokerError;
use crate::internal_log::Durable;
use crate::security::{AuditEvent, Security};

/// The `__weir_security` record kind holding ACLs.
pub const ACL_KIND: &str = "acl";

/// The `authorizer.class.name` values that turn ACLs on.
pub const AUTHORIZER_NAMES: &[&str] = &[
    "StandardAuthorizer",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// The same denial is audited at most once in this window: a client
/// retrying a refused request would otherwise flood the audit trail.
const DENIAL_AUDIT_WINDOW: Duration = Duration::from_secs(10);

/// ACL state owned by the broker.
#[derive(Debug, Default)]
pub struct Acls {
    /// `None` when authorization is off.
    authorizer: RwLock<Option<Authorizer>>,
    /// Serialises ACL changes so the log order is the memory order.
    changes: Mutex<()>,
    /// When each (principal, host, operation, resource) denial was last
    /// audited.
    recent_denials: Mutex<HashMap<String, Instant>>,
}

/// An ACL as stored in `__weir_security` (JSON, names not codes, so the
/// records read well with `weir consume`).
#[derive(Debug, Serialize, Deserialize)]
struct StoredAcl {
    resource_type: String,
    name: String,
    pattern_type: String,
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

impl StoredAcl {
    fn from_binding(b: &AclBinding) -> Self {
        Self {
            resource_type: b.resource_type.name().into(),
            name: b.name.clone(),
            pattern_type: b.pattern_type.name().into(),
            principal: b.principal.clone(),
            host: b.host.clone(),
            operation: b.operation.name().into(),
            permission: b.permission.name().into(),
        }
    }

    fn to_binding(&self) -> Option<AclBinding> {
        let b = AclBinding {
            resource_type: ResourceType::parse(&self.resource_type)?,
            name: self.name.clone(),
            pattern_type: PatternType::parse(&self.pattern_type)?,
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: AclOperation::parse(&self.operation)?,
            permission: PermissionType::parse(&self.permission)?,
        };
        b.validate().ok()?;
        Some(b)
    }
}

/// The record id of an ACL: every field, so each distinct ACL has its own
/// key and compaction keeps exactly the live ones.
fn record_id(b: &AclBinding) -> String {
    serde_json::to_string(&StoredAcl::from_binding(b)).unwrap_or_default()
}

/// How audit events name a resource (`topic:orders`, `cluster`).
pub fn resource_label(rt: ResourceType, name: &str) -> String {
    if rt == ResourceType::Cluster {
        "cluster".into()
    } else {
        format!("{}:{name}", rt.name().to_ascii_lowercase())
    }
}

/// The error Kafka returns when `op` on a resource of type `rt` is denied.
pub fn denied_error(rt: ResourceType) -> ResponseError {
    match rt {
        ResourceType::Topic => ResponseError::TopicAuthorizationFailed,
        ResourceType::Group => ResponseError::GroupAuthorizationFailed,
        ResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
        ResourceType::DelegationToken => ResponseError::DelegationTokenAuthorizationFailed,
        ResourceType::Cluster | ResourceType::User | ResourceType::Any => {
            ResponseError::ClusterAuthorizationFailed
        }
    }
}

impl Security {
    /// Turns authorization on or off from the settings and loads the
    /// ACLs from `__weir_security`. Called once at open.
    pub(crate) async fn open_acls(&self) -> Result<(), BrokerError> {
        let s = self.topics.settings();
        let class = s.get("authorizer.class.name");
        if class.trim().is_empty() {
            return Ok(());
        }
        let config = AuthorizerConfig {
            super_users: AuthorizerConfig::parse_super_users(&s.get("super.users")).map_err(
                |e| BrokerError::Config {
                    key: "super.users".into(),
                    reason: e.to_string(),
                },
            )?,
            allow_everyone_if_no_acl_found: s.get_bool("allow.everyone.if.no.acl.found"),
        };
        *self
            .acls
            .authorizer
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Authorizer::new(config));
        for (id, value) in self.security_records(ACL_KIND).await? {
            self.apply_acl(&id, Some(&value));
        }
        Ok(())
    }

    /// Adds (or with `None`, removes) the ACL of one record; the record
    /// id is the ACL itself, so a tombstone names what it removes.
    pub(crate) fn apply_acl(&self, id: &str, value: Option<&Bytes>) {
        let stored = match value {
            Some(v) => serde_json::from_slice::<StoredAcl>(v),
            None => serde_json::from_str::<StoredAcl>(id),
        };
        let Some(b) = stored.ok().and_then(|s| s.to_binding()) else {
            warn!(id, "ignoring an unreadable ACL record");
            return;
        };
        self.change_acl(&b, value.is_some());
    }

    /// Adds (`add`) or removes one ACL in memory, if authorization is on.
    fn change_acl(&self, b: &AclBinding, add: bool) {
        let mut guard = self
            .acls
            .authorizer
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(a) = guard.as_mut() {
            if add {
                a.add(b.clone());
            } else {
                a.remove(b);
            }
        }
    }

    /// Whether `authorizer.class.name` is set.
    pub fn authorizer_enabled(&self) -> bool {
        self.acls
            .authorizer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Checks `op` on a resource the client asked for; a denial is
    /// audited. Always true when authorization is off.
    pub fn authorize(
        &self,
        session: &Session,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_authorized(session, op, resource_type, name) {
            return true;
        }
        self.audit_denial(session, op, &resource_label(resource_type, name));
        false
    }

    /// Checks `op` on the cluster; a denial is audited.
    pub fn authorize_cluster(&self, session: &Session, op: AclOperation) -> bool {
        self.authorize(session, op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// [`Security::authorize`] without auditing a denial: for filtering
    /// resources the client did not name.
    pub fn is_authorized(
        &self,
        session: &Session,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let guard = self
            .acls
            .authorizer
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            None => true,
            Some(a) => a.authorize(
                &session.principal,
                session.client_host,
                op,
                resource_type,
                name,
            ),
        }
    }

    /// Whether `op` is allowed on at least one resource of the type
    /// (Kafka's `authorizeByResourceType`); a denial is audited.
    pub fn authorize_any(
        &self,
        session: &Session,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let allowed = {
            let guard = self
                .acls
                .authorizer
                .read()
                .unwrap_or_else(|e| e.into_inner());
            guard.as_ref().is_none_or(|a| {
                a.authorize_by_resource_type(
                    &session.principal,
                    session.client_host,
                    op,
                    resource_type,
                )
            })
        };
        if !allowed {
            self.audit_denial(session, op, &format!("{}:*", resource_type.name()));
        }
        allowed
    }

    /// The "authorized operations" bit field for a resource (Kafka
    /// reports every operation as allowed when there is no authorizer).
    pub fn authorized_operations(
        &self,
        session: &Session,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        let guard = self
            .acls
            .authorizer
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(a) => a.authorized_operations(
                &session.principal,
                session.client_host,
                resource_type,
                name,
            ),
            None => everything(resource_type),
        }
    }

    fn audit_denial(&self, session: &Session, op: AclOperation, resource: &str) {
        let key = format!(
            "{}|{}|{}|{resource}",
            session.principal,
            session.host(),
            op.name()
        );
        let now = Instant::now();
        {
            let mut recent = self
                .acls
                .recent_denials
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if recent
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < DENIAL_AUDIT_WINDOW)
            {
                return;
            }
            if recent.len() > 10_000 {
                recent.retain(|_, t| now.duration_since(*t) < DENIAL_AUDIT_WINDOW);
            }
            recent.insert(key, now);
        }
        let mut event = AuditEvent::new("authorization", session, "denied");
        event.resource = resource.to_string();
        event.operation = op.name().to_string();
        self.audit(event);
    }

    /// The ACLs passing `filter`, or `None` when authorization is off.
    pub fn describe_acls(&self, filter: &AclBindingFilter) -> Option<Vec<AclBinding>> {
        self.acls
            .authorizer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|a| a.acls(filter))
    }

    /// Stores new ACLs (validated by the caller); the future resolves when
    /// they are durable. ACLs already present are not written again.
    pub fn create_acls(
        &self,
        session: &Session,
        bindings: &[AclBinding],
    ) -> Result<Durable, BrokerError> {
        let _change = self.acls.changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut durable = Vec::new();
        for b in bindings {
            let value = serde_json::to_vec(&StoredAcl::from_binding(b))
                .map_err(|e| BrokerError::Internal(e.to_string()))?;
            durable.push(self.put_security_record(ACL_KIND, &record_id(b), Some(value.into()))?);
            if self.applies_own_writes() {
                self.change_acl(b, true);
            }
            self.audit_acl_change(session, "CreateAcls", b);
        }
        Ok(all_durable(durable))
    }

    /// Deletes the ACLs passing each filter, returning what each filter
    /// deleted (an ACL matched by two filters is reported by the first);
    /// the future resolves when the deletions are durable.
    #[allow(clippy::type_complexity)]
    pub fn delete_acls(
        &self,
        session: &Session,
        filters: &[AclBindingFilter],
    ) -> Result<(Vec<Vec<AclBinding>>, Durable), BrokerError> {
        let _change = self.acls.changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut durable = Vec::new();
        let mut results = Vec::new();
        for f in filters {
            // In cluster mode memory changes only when the follower
            // applies the tombstones, so drop what an earlier filter took.
            let matched: Vec<_> = (self.describe_acls(f).unwrap_or_default().into_iter())
                .filter(|b| !results.iter().flatten().any(|d: &AclBinding| d == b))
                .collect();
            for b in &matched {
                durable.push(self.put_security_record(ACL_KIND, &record_id(b), None::<Bytes>)?);
                if self.applies_own_writes() {
                    self.change_acl(b, false);
                }
                self.audit_acl_change(session, "DeleteAcls", b);
            }
            results.push(matched);
        }
        Ok((results, all_durable(durable)))
    }

    fn audit_acl_change(&self, session: &Session, api: &str, b: &AclBinding) {
        let mut event = AuditEvent::new("admin", session, "success");
        event.resource = format!(
            "acl:{}",
            resource_label(b.resource_type, &format!("{}:{}", b.pattern_type, b.name))
        );
        event.operation = api.to_string();
        event.detail = b.to_string();
        self.audit(event);
    }
}

/// Every operation of a resource type, as a bit field.
fn everything(rt: ResourceType) -> i32 {
    AclOperation::supported_by(rt)
        .iter()
        .fold(0, |bits, op| bits | (1 << op.code()))
}

fn all_durable(futs: Vec<Durable>) -> Durable {
    Box::pin(async move {
        for f in futs {
            f.await?;
        }
        Ok(())
    })
}

impl Security {
    /// Checks `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config
    /// resource as Kafka's config APIs do: a topic on the topic, a broker
    /// or broker logger on the cluster, a group on the group. Returns the
    /// error to report when denied.
    pub fn authorize_config_resource(
        &self,
        session: &Session,
        op: AclOperation,
        config_resource_type: i8,
        name: &str,
    ) -> Option<ResponseError> {
        let (rt, name) = match config_resource_type {
            2 => (ResourceType::Topic, name),
            4 | 8 => (ResourceType::Cluster, CLUSTER_NAME),
            32 => (ResourceType::Group, name),
            _ => return None,
        };
        (!self.authorize(session, op, rt, name)).then(|| denied_error(rt))
    }
}

//! The broker's state and request dispatch.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;
use weir_auth::Session;
use weir_log::{BoxFuture, LogEngine, PartitionLog, TopicPartition};

use crate::catalog::{catalog_path, Catalog, TopicRecord};
use crate::config::BrokerSettings;
use crate::fetch_session::FetchSessions;
use crate::groups::{GroupSettings, Groups};
use crate::transactions::{Transactions, TxnSettings};
use crate::txn_coordinator::TxnConfig;
use crate::BrokerError;

/// What the broker needs to know about itself.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// This broker's id (`node.id`).
    pub node_id: i32,
    /// Where data and metadata live.
    pub data_dir: PathBuf,
    /// The host clients are told to connect to.
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: i32,
    /// Static broker configs.
    pub settings: BrokerSettings,
}

/// A topic and its open partition logs.
#[derive(Debug)]
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// The topic's id.
    pub id: Uuid,
    /// Config overrides set on the topic.
    pub configs: BTreeMap<String, String>,
    /// The partition logs, by index.
    pub partitions: Vec<Arc<dyn PartitionLog>>,
}

impl Topic {
    /// The log of partition `p`, if it exists.
    pub fn partition(&self, p: i32) -> Option<&Arc<dyn PartitionLog>> {
        usize::try_from(p).ok().and_then(|i| self.partitions.get(i))
    }
}

#[derive(Debug)]
struct State {
    catalog: Catalog,
    settings: BrokerSettings,
    topics: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// The answer to a request.
// One Reply is built and consumed per request; boxing the ready variant
// would add an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// No response is sent (Produce with acks=0).
    None,
    /// The response is ready.
    Ready(ResponseKind),
    /// The response comes later (durability, long polling). The work that
    /// must happen in request order has already been done.
    Later(BoxFuture<'static, ResponseKind>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::None => f.write_str("Reply::None"),
            Reply::Ready(r) => write!(f, "Reply::Ready({r:?})"),
            Reply::Later(_) => f.write_str("Reply::Later(..)"),
        }
    }
}

/// A single-node Kafka broker over a [`LogEngine`].
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    engine: Arc<dyn LogEngine>,
    state: RwLock<State>,
    /// Serialises metadata changes so each is persisted before the next.
    admin: Mutex<()>,
    pub(crate) sessions: Mutex<FetchSessions>,
    /// Bumped after every append, so long-polling fetches wake up.
    data_version: watch::Sender<u64>,
    /// The consumer group coordinator.
    pub(crate) groups: Groups,
    /// The transaction coordinator.
    pub(crate) txns: Transactions,
    /// Share groups (KIP-932).
    pub(crate) shares: crate::shares::Shares,
    /// Set when shutdown begins: parked requests answer at once.
    stopping: watch::Sender<bool>,
    /// Producer ids: `(next, end of the reserved block)`.
    producer_ids: Mutex<(i64, i64)>,
    /// Checks produced records of topics that ask for it (schema registry).
    pub(crate) validator: std::sync::OnceLock<Arc<dyn crate::internal_topic::RecordValidator>>,
    /// Request, topic and purgatory counters, read by the admin listener.
    metrics: crate::metrics::Metrics,
    /// SASL mechanisms and the audit trail.
    pub(crate) security: crate::security::Security,
    /// ACLs and the authorizer (off unless `authorizer.class.name` is set).
    pub(crate) acls: crate::authz::Acls,
}

/// The most partitions one topic may have.
const MAX_PARTITIONS: i32 = 100_000;

/// Producer ids reserved per catalog write.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Why a topic name is not acceptable, as Kafka's `Topic.validate` says.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    let invalid = |reason: String| {
        Err(BrokerError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name cannot be `{name}`"));
    }
    if name.len() > 249 {
        return invalid(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!("topic name `{name}` has the illegal character {c:?}; legal are ASCII letters, digits, `.`, `_` and `-`"));
    }
    Ok(())
}

impl Broker {
    /// Opens the broker: loads the catalog and opens every partition.
    pub fn open(
        config: BrokerConfig,
        engine: Arc<dyn LogEngine>,
    ) -> Result<Arc<Self>, BrokerError> {
        let catalog = Catalog::load_or_create(&catalog_path(&config.data_dir))?;
        let mut settings = config.settings.clone();
        settings.dynamic_broker = catalog.dynamic_broker.clone();
        settings.dynamic_default = catalog.dynamic_default.clone();
        let mut topics = HashMap::new();
        let mut by_id = HashMap::new();
        for rec in catalog.topics.values() {
            let topic = Arc::new(open_topic(engine.as_ref(), &settings, rec)?);
            by_id.insert(rec.id, topic.clone());
            topics.insert(rec.name.clone(), topic);
        }
        // Partitions without a catalog entry are left from a delete or a
        // create that crashed half-way: the catalog is the truth.
        for tp in engine.partitions()? {
            let known = catalog
                .topics
                .get(&tp.topic)
                .is_some_and(|t| tp.partition < t.partitions);
            if !known {
                warn!(partition = %tp, "removing partition that is not in the catalog");
                engine.remove(&tp)?;
            }
        }
        info!(topics = topics.len(), cluster_id = %catalog.cluster_id, "broker opened");
        let (data_version, _) = watch::channel(0);
        let groups = Groups::new(group_settings(&settings));
        let txns = Transactions::new(txn_settings(&settings));
        let shares =
            crate::shares::Shares::new(crate::shares::ShareSettings::from_broker(&settings)?);
        let id_block_end = catalog.producer_id_block_end;
        let broker = Arc::new(Self {
            config,
            engine,
            state: RwLock::new(State {
                catalog,
                settings,
                topics,
                by_id,
            }),
            admin: Mutex::new(()),
            sessions: Mutex::new(FetchSessions::default()),
            data_version,
            groups,
            txns,
            shares,
            stopping: watch::channel(false).0,
            producer_ids: Mutex::new((id_block_end, id_block_end)),
            validator: std::sync::OnceLock::new(),
            metrics: crate::metrics::Metrics::default(),
            security: crate::security::Security::default(),
            acls: crate::authz::Acls::default(),
        });
        broker.open_offsets_topic()?;
        broker.open_txn_topic()?;
        broker.open_acls()?;
        broker.open_audit_topic()?;
        broker.open_scram()?;
        broker.open_quotas()?;
        broker.shares.load(&broker)?;
        Ok(broker)
    }

    /// Creates `__consumer_offsets` if missing and loads group state.
    fn open_offsets_topic(&self) -> Result<(), BrokerError> {
        use crate::group_store::OFFSETS_TOPIC;
        if self.topic(OFFSETS_TOPIC).is_none() {
            let s = self.settings();
            let configs = BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    s.get("offsets.topic.segment.bytes"),
                ),
            ]);
            let partitions = self.groups.settings().offsets_partitions;
            self.create_topic(OFFSETS_TOPIC, partitions, configs, false)?;
        }
        let logs = self
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        self.groups.load(&logs)
    }

    /// Creates `__transaction_state` if missing and loads transactions.
    fn open_txn_topic(&self) -> Result<(), BrokerError> {
        use crate::txn_store::TXN_TOPIC;
        if self.topic(TXN_TOPIC).is_none() {
            let s = self.settings();
            let configs = BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    s.get("transaction.state.log.segment.bytes"),
                ),
            ]);
            self.create_topic(TXN_TOPIC, self.txns.settings().partitions, configs, false)?;
        }
        self.txns.load(self)
    }

    /// A consumer group's lag per partition (committed offset against the
    /// high watermark), for the CLI and metrics.
    pub fn group_lag(&self, group_id: &str) -> Vec<crate::groups::PartitionLag> {
        self.groups.lag(self, group_id)
    }

    /// Runs offset expiry as if the clock read `now_ms` (tests use this to
    /// jump past `offsets.retention.minutes`).
    pub fn expire_offsets_at(&self, now_ms: i64) {
        self.groups.expire_offsets_at(self, now_ms);
    }

    /// Ids of every consumer group this broker coordinates.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.list().into_iter().map(|g| g.0).collect()
    }

    /// The broker's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The storage engine's own measurements (fsync latency).
    pub fn engine_stats(&self) -> Option<Arc<weir_log::EngineStats>> {
        self.engine.stats()
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Advances the group coordinator's timers; call about every 100 ms.
    pub fn tick(self: &Arc<Self>) {
        self.groups.tick(self);
        self.txns.tick(self);
        self.shares.tick(self);
    }

    /// Starts shutting down: long-polling fetches answer with what they
    /// have, and waiting JoinGroup/SyncGroup requests are told to find the
    /// coordinator again, so connections drain at once.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
        self.groups.fail_waiters();
    }

    /// Resolves once shutdown has begun.
    pub(crate) fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Flushes and closes storage so the next start is a clean start.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        Ok(self.engine.shutdown()?)
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The advertised host and port.
    pub fn advertised(&self) -> (&str, i32) {
        (&self.config.advertised_host, self.config.advertised_port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> String {
        self.state
            .read()
            .map(|s| s.catalog.cluster_id.clone())
            .unwrap_or_default()
    }

    /// One broker-only config's current value, read without copying the
    /// settings (this is on the Fetch and Metadata paths).
    pub fn setting(&self, name: &str) -> String {
        self.state
            .read()
            .map(|s| s.settings.get(name))
            .unwrap_or_default()
    }

    /// The broker's current settings (static and dynamic).
    pub fn settings(&self) -> BrokerSettings {
        self.state
            .read()
            .map(|s| s.settings.clone())
            .unwrap_or_default()
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.state.read().ok()?.topics.get(name).cloned()
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.state.read().ok()?.by_id.get(id).cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self
            .state
            .read()
            .map(|s| s.topics.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Tells long-polling fetches that data arrived.
    pub(crate) fn notify_data(&self) {
        self.data_version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Watches for appends.
    pub(crate) fn data_watch(&self) -> watch::Receiver<u64> {
        self.data_version.subscribe()
    }

    /// Creates a topic. `validate_only` checks without creating. Returns the
    /// new topic's record.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicRecord, BrokerError> {
        validate_topic_name(name)?;
        let invalid = |reason: String| {
            Err(BrokerError::InvalidPartitions {
                topic: name.to_string(),
                reason,
            })
        };
        if partitions < 1 {
            return invalid(format!(
                "number of partitions must be at least 1, got {partitions}"
            ));
        }
        if partitions > MAX_PARTITIONS {
            return invalid(format!(
                "{partitions} partitions is more than one topic may have ({MAX_PARTITIONS})"
            ));
        }
        let _admin = self
            .admin
            .lock()
            .map_err(|_| internal("admin lock poisoned"))?;
        let state = self
            .state
            .read()
            .map_err(|_| internal("state lock poisoned"))?;
        if state.topics.contains_key(name) {
            return Err(BrokerError::TopicExists {
                topic: name.to_string(),
            });
        }
        let collides = |other: &str| other.replace('.', "_") == name.replace('.', "_");
        if let Some(other) = state.topics.keys().find(|o| collides(o)) {
            return Err(BrokerError::TopicCollision {
                topic: name.to_string(),
                existing: other.clone(),
            });
        }
        let rec = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        if validate_only {
            return Ok(rec);
        }
        let mut catalog = state.catalog.clone();
        let settings = state.settings.clone();
        drop(state);
        catalog.topics.insert(name.to_string(), rec.clone());
        self.install_topic(catalog, &settings, &rec)?;
        info!(topic = name, partitions, "created topic");
        Ok(rec)
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, BrokerError> {
        if crate::INTERNAL_TOPICS.contains(&name) {
            return Err(BrokerError::InternalTopic {
                topic: name.to_string(),
            });
        }
        if self.setting("delete.topic.enable") != "true" {
            return Err(BrokerError::TopicDeletionDisabled);
        }
        let _admin = self
            .admin
            .lock()
            .map_err(|_| internal("admin lock poisoned"))?;
        let mut catalog = self
            .state
            .read()
            .map_err(|_| internal("state lock poisoned"))?
            .catalog
            .clone();
        let Some(rec) = catalog.topics.remove(name) else {
            return Err(unknown(name));
        };
        self.persist(&catalog).map_err(storage)?;
        {
            let mut state = self
                .state
                .write()
                .map_err(|_| internal("state lock poisoned"))?;
            state.catalog = catalog;
            state.topics.remove(name);
            state.by_id.remove(&rec.id);
        }
        for p in 0..rec.partitions {
            if let Err(e) = self.engine.remove(&TopicPartition::new(name, p)) {
                // The catalog no longer names it, so the next start removes it.
                warn!(topic = name, partition = p, error = %e, "could not remove partition data");
            }
        }
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.forget_topic(name);
        }
        self.metrics.forget_topic(name);
        info!(topic = name, "deleted topic");
        Ok(rec.id)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self
            .admin
            .lock()
            .map_err(|_| internal("admin lock poisoned"))?;
        let state = self
            .state
            .read()
            .map_err(|_| internal("state lock poisoned"))?;
        let Some(rec) = state.catalog.topics.get(name).cloned() else {
            return Err(unknown(name));
        };
        let invalid = |reason: String| {
            Err(BrokerError::InvalidPartitions {
                topic: name.to_string(),
                reason,
            })
        };
        if count == rec.partitions {
            return invalid(format!("Topic already has {count} partitions."));
        }
        if count < rec.partitions {
            return invalid(format!(
                "Topic currently has {} partitions, which is higher than the requested {count}.",
                rec.partitions
            ));
        }
        if count > MAX_PARTITIONS {
            return invalid(format!(
                "{count} partitions is more than one topic may have ({MAX_PARTITIONS})"
            ));
        }
        if validate_only {
            return Ok(());
        }
        let mut catalog = state.catalog.clone();
        let settings = state.settings.clone();
        drop(state);
        let rec = TopicRecord {
            partitions: count,
            ..rec
        };
        catalog.topics.insert(name.to_string(), rec.clone());
        self.install_topic(catalog, &settings, &rec)?;
        info!(topic = name, count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (already validated).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let _admin = self
            .admin
            .lock()
            .map_err(|_| internal("admin lock poisoned"))?;
        let state = self
            .state
            .read()
            .map_err(|_| internal("state lock poisoned"))?;
        let (Some(rec), Some(old)) = (
            state.catalog.topics.get(name).cloned(),
            state.topics.get(name).cloned(),
        ) else {
            return Err(unknown(name));
        };
        let mut catalog = state.catalog.clone();
        let log_config = state.settings.log_config(&configs);
        drop(state);
        catalog.topics.insert(
            name.to_string(),
            TopicRecord {
                configs: configs.clone(),
                ..rec
            },
        );
        self.persist(&catalog).map_err(storage)?;
        for p in &old.partitions {
            p.set_config(log_config.clone());
        }
        let topic = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            configs,
            partitions: old.partitions.clone(),
        });
        let mut state = self
            .state
            .write()
            .map_err(|_| internal("state lock poisoned"))?;
        state.catalog = catalog;
        state.by_id.insert(topic.id, topic.clone());
        state.topics.insert(name.to_string(), topic);
        Ok(())
    }

    /// Replaces the dynamic broker configs (`default` for the cluster-wide
    /// layer), re-applying topic settings that follow broker defaults.
    pub fn set_broker_configs(
        &self,
        default: bool,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let _admin = self
            .admin
            .lock()
            .map_err(|_| internal("admin lock poisoned"))?;
        let mut state = self
            .state
            .write()
            .map_err(|_| internal("state lock poisoned"))?;
        let mut catalog = state.catalog.clone();
        if default {
            catalog.dynamic_default = configs.clone();
        } else {
            catalog.dynamic_broker = configs.clone();
        }
        self.persist(&catalog).map_err(storage)?;
        state.catalog = catalog;
        if default {
            state.settings.dynamic_default = configs;
        } else {
            state.settings.dynamic_broker = configs;
        }
        for topic in state.topics.values() {
            let c = state.settings.log_config(&topic.configs);
            for p in &topic.partitions {
                p.set_config(c.clone());
            }
        }
        Ok(())
    }

    /// The configs set on group `group_id` (GROUP config resources).
    pub fn group_configs(&self, group_id: &str) -> BTreeMap<String, String> {
        self.state
            .read()
            .ok()
            .and_then(|s| s.catalog.group_configs.get(group_id).cloned())
            .unwrap_or_default()
    }

    /// Replaces the configs set on group `group_id` (already validated).
    pub fn set_group_configs(
        &self,
        group_id: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let _admin = self
            .admin
            .lock()
            .map_err(|_| internal("admin lock poisoned"))?;
        let mut state = self
            .state
            .write()
            .map_err(|_| internal("state lock poisoned"))?;
        let mut catalog = state.catalog.clone();
        if configs.is_empty() {
            catalog.group_configs.remove(group_id);
        } else {
            catalog.group_configs.insert(group_id.to_string(), configs);
        }
        self.persist(&catalog).map_err(storage)?;
        state.catalog = catalog;
        Ok(())
    }

    /// Persists `catalog` (which already holds `rec`), then opens the
    /// topic's partitions (existing ones are reused) and makes it visible.
    fn install_topic(
        &self,
        catalog: Catalog,
        settings: &BrokerSettings,
        rec: &TopicRecord,
    ) -> Result<(), BrokerError> {
        self.persist(&catalog).map_err(storage)?;
        let topic = Arc::new(open_topic(self.engine.as_ref(), settings, rec).map_err(storage)?);
        let mut state = self
            .state
            .write()
            .map_err(|_| internal("state lock poisoned"))?;
        state.catalog = catalog;
        state.by_id.insert(rec.id, topic.clone());
        state.topics.insert(rec.name.clone(), topic);
        Ok(())
    }

    /// A producer id never handed out before, on this broker, even across
    /// crashes (ids are reserved in durable blocks, like Kafka's
    /// ProducerIdManager).
    pub fn next_producer_id(&self) -> Result<i64, BrokerError> {
        let mut ids = self
            .producer_ids
            .lock()
            .map_err(|_| BrokerError::Internal("producer id lock poisoned".into()))?;
        if ids.0 >= ids.1 {
            let _admin = self
                .admin
                .lock()
                .map_err(|_| BrokerError::Internal("admin lock poisoned".into()))?;
            let mut state = self
                .state
                .write()
                .map_err(|_| BrokerError::Internal("state lock poisoned".into()))?;
            let mut catalog = state.catalog.clone();
            catalog.producer_id_block_end = ids.1 + PRODUCER_ID_BLOCK;
            self.persist(&catalog)?;
            state.catalog = catalog;
            ids.1 += PRODUCER_ID_BLOCK;
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    fn persist(&self, catalog: &Catalog) -> Result<(), BrokerError> {
        catalog.save(&catalog_path(&self.config.data_dir))
    }

    /// Handles one decoded request from an in-process, anonymous caller.
    /// Work that must follow request order (appends) is done before this
    /// returns.
    pub fn handle(self: &Arc<Self>, header: &RequestHeader, body: RequestKind) -> Reply {
        self.handle_as(header, body, &Session::anonymous(None))
    }

    /// [`Broker::handle`] for the client behind `session`, within the
    /// client's quotas (crate::client_quotas).
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
        let client_host = session.host();
        let client_host = client_host.as_str();
        let v = header.request_api_version;
        let client_id = header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let mut reply = match body {
            RequestKind::ApiVersions(r) => Reply::Ready(ResponseKind::ApiVersions(
                crate::api_versions::handle(&r, v, self.txns.transaction_version()),
            )),
            RequestKind::Metadata(r) => Reply::Ready(ResponseKind::Metadata(
                crate::metadata::handle(self, r, v, session),
            )),
            RequestKind::Produce(r) => crate::produce::handle(self, r, v, session),
            RequestKind::Fetch(r) => {
                let broker = self.clone();
                let session = session.clone();
                Reply::Later(Box::pin(async move {
                    ResponseKind::Fetch(crate::fetch::handle(broker, r, v, session).await)
                }))
            }
            RequestKind::ListOffsets(r) => Reply::Ready(ResponseKind::ListOffsets(
                crate::list_offsets::handle(self, r, v, session),
            )),
            RequestKind::OffsetForLeaderEpoch(r) => {
                Reply::Ready(ResponseKind::OffsetForLeaderEpoch(
                    crate::offset_for_leader_epoch::handle(self, r, session),
                ))
            }
            RequestKind::CreateTopics(r) => Reply::Ready(ResponseKind::CreateTopics(
                crate::create_topics::handle(self, r, v, session),
            )),
            RequestKind::DeleteTopics(r) => Reply::Ready(ResponseKind::DeleteTopics(
                crate::delete_topics::handle(self, r, v, session),
            )),
            RequestKind::CreatePartitions(r) => Reply::Ready(ResponseKind::CreatePartitions(
                crate::create_partitions::handle(self, r, session),
            )),
            RequestKind::DescribeConfigs(r) => Reply::Ready(ResponseKind::DescribeConfigs(
                crate::describe_configs::handle(self, r, v, session),
            )),
            RequestKind::AlterConfigs(r) => Reply::Ready(ResponseKind::AlterConfigs(
                crate::alter_configs::handle(self, r, session),
            )),
            RequestKind::IncrementalAlterConfigs(r) => {
                Reply::Ready(ResponseKind::IncrementalAlterConfigs(
                    crate::alter_configs::handle_incremental(self, r, session),
                ))
            }
            RequestKind::DescribeCluster(r) => Reply::Ready(ResponseKind::DescribeCluster(
                crate::describe_cluster::handle(self, r, session),
            )),
            RequestKind::DescribeTopicPartitions(r) => {
                Reply::Ready(ResponseKind::DescribeTopicPartitions(
                    crate::describe_topic_partitions::handle(self, r, session),
                ))
            }
            RequestKind::DescribeLogDirs(r) => Reply::Ready(ResponseKind::DescribeLogDirs(
                crate::describe_log_dirs::handle(self, r, session),
            )),
            RequestKind::DeleteRecords(r) => Reply::Ready(ResponseKind::DeleteRecords(
                crate::delete_records::handle(self, r, session),
            )),
            RequestKind::FindCoordinator(r) => Reply::Ready(ResponseKind::FindCoordinator(
                crate::find_coordinator::handle(self, r, v, session),
            )),
            RequestKind::JoinGroup(r) => {
                crate::join_group::handle(self, r, v, client_id, client_host, session)
            }
            RequestKind::SyncGroup(r) => crate::sync_group::handle(self, r, session),
            RequestKind::Heartbeat(r) => Reply::Ready(ResponseKind::Heartbeat(
                crate::heartbeat::handle(self, r, session),
            )),
            RequestKind::LeaveGroup(r) => Reply::Ready(ResponseKind::LeaveGroup(
                crate::leave_group::handle(self, r, v, session),
            )),
            RequestKind::OffsetCommit(r) => crate::offset_commit::handle(self, r, v, session),
            RequestKind::OffsetFetch(r) => Reply::Ready(ResponseKind::OffsetFetch(
                crate::offset_fetch::handle(self, r, v, session),
            )),
            RequestKind::DescribeGroups(r) => Reply::Ready(ResponseKind::DescribeGroups(
                crate::describe_groups::handle(self, r, v, session),
            )),
            RequestKind::ListGroups(r) => Reply::Ready(ResponseKind::ListGroups(
                crate::list_groups::handle(self, r, session),
            )),
            RequestKind::DeleteGroups(r) => crate::delete_groups::handle(self, r, session),
            RequestKind::ConsumerGroupHeartbeat(r) => Reply::Ready(
                ResponseKind::ConsumerGroupHeartbeat(crate::consumer_group_heartbeat::handle(
                    self,
                    r,
                    v,
                    client_id,
                    client_host,
                    session,
                )),
            ),
            RequestKind::ConsumerGroupDescribe(r) => {
                Reply::Ready(ResponseKind::ConsumerGroupDescribe(
                    crate::consumer_group_describe::handle(self, r, session),
                ))
            }
            RequestKind::OffsetDelete(r) => Reply::Ready(ResponseKind::OffsetDelete(
                crate::offset_delete::handle(self, r, session),
            )),
            RequestKind::InitProducerId(r) => crate::init_producer_id::handle(self, r, v, session),
            RequestKind::AddPartitionsToTxn(r) => {
                crate::add_partitions_to_txn::handle(self, r, v, session)
            }
            RequestKind::AddOffsetsToTxn(r) => {
                crate::add_offsets_to_txn::handle(self, r, v, session)
            }
            RequestKind::EndTxn(r) => crate::end_txn::handle(self, r, v, session),
            RequestKind::TxnOffsetCommit(r) => {
                crate::txn_offset_commit::handle(self, r, v, session)
            }
            RequestKind::DescribeProducers(r) => Reply::Ready(ResponseKind::DescribeProducers(
                crate::describe_producers::handle(self, r, session),
            )),
            RequestKind::DescribeTransactions(r) => {
                Reply::Ready(ResponseKind::DescribeTransactions(
                    crate::describe_transactions::handle(self, r, session),
                ))
            }
            RequestKind::ListTransactions(r) => Reply::Ready(ResponseKind::ListTransactions(
                crate::list_transactions::handle(self, r, v, session),
            )),
            RequestKind::CreateAcls(r) => crate::create_acls::handle(self, r, session),
            RequestKind::DescribeAcls(r) => Reply::Ready(ResponseKind::DescribeAcls(
                crate::describe_acls::handle(self, r, session),
            )),
            RequestKind::DeleteAcls(r) => crate::delete_acls::handle(self, r, session),
            RequestKind::DescribeUserScramCredentials(r) => {
                Reply::Ready(ResponseKind::DescribeUserScramCredentials(
                    crate::describe_user_scram_credentials::handle(self, r, session),
                ))
            }
            RequestKind::AlterUserScramCredentials(r) => {
                crate::alter_user_scram_credentials::handle(self, r, session)
            }
            RequestKind::DescribeClientQuotas(r) => {
                Reply::Ready(ResponseKind::DescribeClientQuotas(
                    crate::describe_client_quotas::handle(self, r, session),
                ))
            }
            RequestKind::AlterClientQuotas(r) => {
                crate::alter_client_quotas::handle(self, r, session)
            }
            RequestKind::ShareGroupHeartbeat(r) => {
                crate::share_group_heartbeat::handle(self, r, client_id, client_host, session)
            }
            RequestKind::ShareGroupDescribe(r) => Reply::Ready(ResponseKind::ShareGroupDescribe(
                crate::share_group_describe::handle(self, r, session),
            )),
            RequestKind::ShareFetch(r) => crate::share_fetch::handle(self, r, session),
            RequestKind::ShareAcknowledge(r) => crate::share_acknowledge::handle(self, r, session),
            RequestKind::DescribeShareGroupOffsets(r) => {
                Reply::Ready(ResponseKind::DescribeShareGroupOffsets(
                    crate::describe_share_group_offsets::handle(self, r, session),
                ))
            }
            RequestKind::AlterShareGroupOffsets(r) => {
                crate::alter_share_group_offsets::handle(self, r, session)
            }
            RequestKind::DeleteShareGroupOffsets(r) => {
                crate::delete_share_group_offsets::handle(self, r, session)
            }
            other => {
                // The codec only lets through what api_versions lists.
                warn!(request = ?std::mem::discriminant(&other), "request for an API without a handler");
                Reply::None
            }
        };
        // Kafka answers with the address of the listener the client used.
        if let Reply::Ready(resp) = &mut reply {
            self.localize_endpoints(resp, &session.listener);
        }
        reply
    }
}

fn txn_settings(s: &BrokerSettings) -> TxnSettings {
    let int = |k: &str| i32::try_from(s.get_i64(k)).unwrap_or(i32::MAX);
    TxnSettings {
        partitions: int("transaction.state.log.num.partitions"),
        coordinator: TxnConfig {
            max_timeout_ms: int("transaction.max.timeout.ms"),
            id_expiration_ms: s.get_i64("transactional.id.expiration.ms"),
            transaction_version: i16::try_from(s.get_i64("transaction.version"))
                .unwrap_or(crate::txn_coordinator::MAX_TRANSACTION_VERSION),
        },
    }
}

fn group_settings(s: &BrokerSettings) -> GroupSettings {
    let int = |k: &str| i32::try_from(s.get_i64(k)).unwrap_or(i32::MAX);
    GroupSettings {
        offsets_partitions: int("offsets.topic.num.partitions"),
        retention_ms: s
            .get_i64("offsets.retention.minutes")
            .saturating_mul(60_000),
        metadata_max_bytes: usize::try_from(s.get_i64("offset.metadata.max.bytes")).unwrap_or(4096),
        group: crate::group_coordinator::GroupConfig {
            min_session_timeout_ms: int("group.min.session.timeout.ms"),
            max_session_timeout_ms: int("group.max.session.timeout.ms"),
            initial_rebalance_delay_ms: s.get_i64("group.initial.rebalance.delay.ms"),
            max_size: usize::try_from(s.get_i64("group.max.size")).unwrap_or(usize::MAX),
        },
        consumer: crate::consumer_group::ConsumerConfig {
            session_timeout_ms: s.get_i64("group.consumer.session.timeout.ms"),
            heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms"),
        },
    }
}

fn internal(what: &str) -> BrokerError {
    BrokerError::Internal(what.to_string())
}

fn storage(e: BrokerError) -> BrokerError {
    warn!(error = %e, "metadata change failed");
    e
}

fn unknown(topic: &str) -> BrokerError {
    BrokerError::UnknownTopic {
        topic: topic.to_string(),
    }
}

fn open_topic(
    engine: &dyn LogEngine,
    settings: &BrokerSettings,
    rec: &TopicRecord,
) -> Result<Topic, BrokerError> {
    let config = settings.log_config(&rec.configs);
    let partitions = (0..rec.partitions)
        .map(|p| engine.open(&TopicPartition::new(rec.name.clone(), p), config.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Topic {
        name: rec.name.clone(),
        id: rec.id,
        configs: rec.configs.clone(),
        partitions,
    })
}

//! The broker: the services wired together. It holds no state of its
//! own; dispatch (dispatch.rs) hands each handler the services it uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use uuid::Uuid;
use weir_log::{Clock, LogEngine};

use crate::catalog::TopicRecord;
use crate::config::BrokerSettings;
pub use crate::context::Reply;
use crate::error::BrokerError;
use crate::fetch_session::FetchSessions;
use crate::groups::{GroupSettings, Groups};
use crate::internal_log::InternalLog;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::security::Security;
use crate::topics::{Topic, Topics};
use crate::transactions::{Transactions, TxnSettings};
use crate::txn_coordinator::TxnConfig;

/// Locks every broker of a cluster shares ([`Broker::cluster_locks`]).
#[derive(Debug, Clone)]
pub struct ClusterLocks(Arc<dyn weir_log::SharedCatalog>);

impl ClusterLocks {
    /// Takes the lock `name`, waiting while another broker holds it; held
    /// until the answer is dropped (or this broker dies). `None` if the
    /// storage engine has no such locks.
    pub async fn lock(&self, name: &str) -> Result<Option<weir_log::ClusterLock>, BrokerError> {
        match self.0.lock(name) {
            Some(taking) => Ok(Some(taking.await?)),
            None => Ok(None),
        }
    }
}

/// Cluster mode: applies the catalog other brokers save, on each
/// notification and every few seconds (notifications can be missed while
/// the database connection is down).
fn follow_shared_catalog(
    topics: Arc<Topics>,
    shared: Arc<dyn weir_log::SharedCatalog>,
    stopping: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut changes = shared.watch();
    tokio::spawn(async move {
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => return,
                r = changes.changed() => if r.is_err() { return },
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
            let t = topics.clone();
            let synced = move || -> Result<(), crate::BrokerError> {
                t.sync_shared()?;
                // Every partition open, with its config: the engine's
                // background jobs (retention, compaction) run on whichever
                // broker holds their lease, for partitions this broker may
                // never have served. Opening is once per partition.
                for topic in t.topics() {
                    topic.logs().for_each(drop);
                }
                Ok(())
            };
            match tokio::task::spawn_blocking(synced).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the cluster catalog"),
                Err(e) => tracing::warn!(error = %e, "cluster catalog reader failed"),
                Ok(Ok(())) => {}
            }
        }
    });
}

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
    /// Wall-clock time for the coordinators, quotas and record timestamps.
    pub clock: Clock,
}

/// A single-node Kafka broker over a [`LogEngine`].
#[derive(Debug)]
pub struct Broker {
    /// This node's id, address, clock and shutdown state.
    pub(crate) node: Arc<Node>,
    /// Topics, configs and the storage engine.
    pub(crate) topics: Arc<Topics>,
    /// Incremental fetch sessions (KIP-227).
    pub(crate) sessions: Arc<Mutex<FetchSessions>>,
    /// The consumer group coordinator.
    pub(crate) groups: Arc<Groups>,
    /// The transaction coordinator.
    pub(crate) txns: Arc<Transactions>,
    /// Share groups (KIP-932).
    pub(crate) shares: Arc<crate::shares::Shares>,
    /// Checks produced records of topics that ask for it (schema registry).
    pub(crate) validator: std::sync::OnceLock<Arc<dyn crate::validation::RecordValidator>>,
    /// Request, topic and purgatory counters, read by the admin listener.
    pub(crate) metrics: Arc<Metrics>,
    /// SASL, SCRAM, ACLs, quotas, audit and the advertised listeners.
    pub(crate) security: Arc<Security>,
}

impl Broker {
    /// Opens the broker: loads the catalog, opens the partitions and reads
    /// the coordinators' and security state back.
    pub async fn open(
        config: BrokerConfig,
        engine: Arc<dyn LogEngine>,
    ) -> Result<Arc<Self>, BrokerError> {
        let topics = Arc::new(Topics::open(
            &config.data_dir,
            &config.settings,
            engine,
            config.clock.clone(),
        )?);
        let settings = topics.settings();
        let log = crate::internal_log::of(&topics);
        let groups = Arc::new(Groups::new(
            group_settings(&settings),
            log.clone(),
            topics.clone(),
            config.clock.clone(),
        ));
        let txn_config = txn_settings(&settings);
        let txns = Arc::new(Transactions::new(
            txn_config,
            log,
            topics.clone(),
            groups.clone(),
            config.clock.clone(),
        ));
        // In a cluster, each broker serves the groups of the partitions
        // whose leases it holds, loaded when it takes them.
        let group_leases = match topics.shared() {
            Some(shared) => {
                let n = groups
                    .prepare(settings.get("offsets.topic.segment.bytes"))
                    .await?;
                groups.join_cluster(shared.clone());
                shared.lead_coordinators(crate::group_store::OFFSETS_TOPIC, n)
            }
            None => {
                groups
                    .load(settings.get("offsets.topic.segment.bytes"))
                    .await?;
                None
            }
        };
        // The same for transactional ids and `__transaction_state`.
        let txn_leases = match topics.shared() {
            Some(shared) => {
                let n = txns
                    .prepare(settings.get("transaction.state.log.segment.bytes"))
                    .await?;
                txns.join_cluster(shared.clone());
                shared.lead_coordinators(crate::txn_store::TXN_TOPIC, n)
            }
            None => {
                txns.load(settings.get("transaction.state.log.segment.bytes"))
                    .await?;
                None
            }
        };
        let shares = Arc::new(crate::shares::Shares::new(
            crate::shares::ShareSettings::from_broker(&settings)?,
            topics.clone(),
            groups.clone(),
            config.clock.clone(),
        ));
        let node = Arc::new(Node::new(
            config.node_id,
            config.advertised_host,
            config.advertised_port,
            config.data_dir,
            config.clock,
        ));
        if let Some(shared) = topics.shared() {
            node.join_cluster(shared.clone());
            shares.join_cluster(shared.clone(), node.stopping_watch());
            follow_shared_catalog(topics.clone(), shared, node.stopping());
        }
        if let Some(held) = group_leases {
            crate::leases::follow(groups.clone(), held, node.stopping());
        }
        if let Some(held) = txn_leases {
            crate::leases::follow(txns.clone(), held, node.stopping());
        }
        let security = Security::open(
            topics.clone(),
            crate::internal_log::of(&topics),
            node.clone(),
        )
        .await?;
        if topics.shared().is_some() {
            security.follow(node.stopping());
        }
        let broker = Arc::new(Self {
            node,
            topics,
            sessions: Arc::default(),
            groups,
            txns,
            shares,
            validator: std::sync::OnceLock::new(),
            metrics: Arc::default(),
            security,
        });
        broker.shares.load().await?;
        // Requests open their partitions on first use; the rest open in
        // the background, so that retention and compaction reach them.
        let topics = broker.topics.clone();
        tokio::task::spawn_blocking(move || topics.open_all());
        Ok(broker)
    }

    /// Internal topics, for services built into the binary (the schema
    /// registry): one write path with the coordinators' own.
    pub fn internal_log(&self) -> Arc<dyn InternalLog> {
        crate::internal_log::of(&self.topics)
    }

    /// The broker's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.node.now_ms()
    }

    /// A consumer group's lag per partition (committed offset against the
    /// high watermark), for the CLI and metrics.
    pub fn group_lag(&self, group_id: &str) -> Vec<crate::groups::PartitionLag> {
        self.groups.lag(group_id)
    }

    /// Runs offset expiry as if the clock read `now_ms` (tests use this to
    /// jump past `offsets.retention.minutes`).
    pub fn expire_offsets_at(&self, now_ms: i64) {
        self.groups.expire_offsets_at(now_ms);
    }

    /// Ids of every consumer group this broker coordinates.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.list().into_iter().map(|g| g.0).collect()
    }

    /// The security service (SASL, SCRAM, ACLs, quotas, audit, advertised
    /// listeners).
    pub fn security(&self) -> &Arc<Security> {
        &self.security
    }

    /// The broker's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The storage engine's own measurements (fsync latency).
    pub fn engine_stats(&self) -> Option<Arc<weir_log::EngineStats>> {
        self.topics.engine_stats()
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.node.is_stopping()
    }

    /// Resolves once shutdown has begun.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.node.stopping()
    }

    /// Cluster mode: partition 0 of the internal `topic` read from
    /// `from` as every broker appends to it. `None` on a single node,
    /// where this broker is the only writer.
    pub fn tail(&self, topic: &str, from: i64) -> Option<crate::internal_log::Tail> {
        self.topics.shared()?;
        Some(crate::internal_log::Tail::new(
            self.topics.clone(),
            topic,
            from,
        ))
    }

    /// Cluster mode: the cluster-wide locks, for a service whose writes
    /// must be serialised across brokers (the schema registry). `None` on
    /// a single node, where a local lock serialises them.
    pub fn cluster_locks(&self) -> Option<ClusterLocks> {
        self.topics.shared().map(ClusterLocks)
    }

    /// Advances the group coordinator's timers; call about every 100 ms.
    pub fn tick(self: &Arc<Self>) {
        self.groups.tick();
        self.txns.tick();
        self.shares.tick();
    }

    /// Starts shutting down: long-polling fetches answer with what they
    /// have, and waiting JoinGroup/SyncGroup requests are told to find the
    /// coordinator again, so connections drain at once.
    pub fn begin_shutdown(&self) {
        self.node.begin_stopping();
        self.groups.fail_waiters();
    }

    /// Flushes and closes storage so the next start is a clean start.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        self.topics.shutdown()
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.node.id
    }

    /// The advertised host and port.
    pub fn advertised(&self) -> (&str, i32) {
        self.node.advertised()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.node.data_dir
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> String {
        self.topics.cluster_id()
    }

    /// One broker-only config's current value.
    pub fn setting(&self, name: &str) -> String {
        self.topics.setting(name)
    }

    /// The broker's current settings (static and dynamic).
    pub fn settings(&self) -> BrokerSettings {
        self.topics.settings()
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.topic(name)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.topics.topic_by_id(id)
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.topics()
    }

    /// Creates a topic. `validate_only` checks without creating.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicRecord, BrokerError> {
        self.topics
            .create_topic(name, partitions, 1, Vec::new(), configs, validate_only)
    }

    /// Deletes a topic, its data and what fetch sessions and metrics kept
    /// of it.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, BrokerError> {
        crate::delete_topics::delete(&self.topics, &self.sessions, &self.metrics, name)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.topics
            .create_partitions(name, count, Vec::new(), validate_only)
    }

    /// Replaces a topic's config overrides (already validated).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        self.topics.set_topic_configs(name, configs)
    }

    /// Replaces the dynamic broker configs (`default` for the cluster-wide
    /// layer).
    pub fn set_broker_configs(
        &self,
        default: bool,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        self.topics.set_broker_configs(default, configs)
    }

    /// The configs set on group `group_id` (GROUP config resources).
    pub fn group_configs(&self, group_id: &str) -> BTreeMap<String, String> {
        self.topics.group_configs(group_id)
    }

    /// Replaces the configs set on group `group_id` (already validated).
    pub fn set_group_configs(
        &self,
        group_id: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        self.topics.set_group_configs(group_id, configs)
    }

    /// A producer id never handed out before.
    pub fn next_producer_id(&self) -> Result<i64, BrokerError> {
        self.topics.next_producer_id()
    }

    /// Installs the produce-path validator (once; later calls are ignored).
    pub fn set_record_validator(&self, v: Arc<dyn crate::validation::RecordValidator>) {
        let _ = self.validator.set(v);
    }

    /// The installed validator.
    pub fn record_validator(&self) -> Option<&Arc<dyn crate::validation::RecordValidator>> {
        self.validator.get()
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

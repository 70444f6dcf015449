//! The topics service: the catalog (topics with ids, partition counts and
//! config overrides, dynamic broker configs, producer id blocks, the
//! cluster id), the configs resolved from it, and the storage engine the
//! partitions live in.
//!
//! Every metadata change is serialised and persisted to the catalog before
//! it becomes visible.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use tracing::{info, warn};
use uuid::Uuid;
use weir_log::SharedCatalog;
use weir_log::{Clock, LogConfig, LogEngine, LogError, PartitionLog, TopicPartition};

use crate::catalog::{catalog_path, Catalog, TopicRecord};
use crate::config::BrokerSettings;
use crate::error::BrokerError;

/// A topic and its partition logs.
#[derive(Debug)]
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// The topic's id.
    pub id: Uuid,
    /// Config overrides set on the topic.
    pub configs: BTreeMap<String, String>,
    /// The replication factor asked for at creation (reported, not acted
    /// on: data is stored once).
    pub replication_factor: i16,
    /// Manual replica assignments by partition, as given (empty: none).
    pub assignments: Vec<Vec<i32>>,
    /// The partitions, by index, each opened on first use.
    partitions: Vec<Arc<Slot>>,
}

/// One partition of a topic: its log once something used it. Opening on
/// first use keeps a broker with many partitions from opening them all
/// before it answers.
#[derive(Debug)]
struct Slot {
    tp: TopicPartition,
    engine: Arc<dyn LogEngine>,
    /// The config to open with (and to apply once open).
    config: Mutex<LogConfig>,
    log: OnceLock<Arc<dyn PartitionLog>>,
}

impl Slot {
    fn log(&self) -> Option<&Arc<dyn PartitionLog>> {
        self.open().ok()
    }

    /// The log, opening it if need be; the engine's error (logged) if it
    /// cannot be opened. A later use tries again.
    fn open(&self) -> Result<&Arc<dyn PartitionLog>, LogError> {
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        // Held while opening, so a config change cannot slip in between
        // reading the config and installing the log.
        let config = self
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        match self.engine.open(&self.tp, config.clone()) {
            Ok(log) => Ok(self.log.get_or_init(|| log)),
            Err(e) => {
                warn!(partition = %self.tp, error = %e, "cannot open partition");
                Err(e)
            }
        }
    }

    fn set_config(&self, config: LogConfig) {
        let mut c = self
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(log) = self.log.get() {
            log.set_config(config.clone());
        }
        *c = config;
    }
}

impl Topic {
    /// A partition's manual assignment, as given (empty: none).
    pub fn assigned(&self, partition: i32) -> &[i32] {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.assignments.get(p))
            .map_or(&[], Vec::as_slice)
    }

    /// The log of partition `p`, opened now if this is its first use;
    /// `None` if the topic has no such partition (or it cannot be opened,
    /// which is logged). Crate-private: records enter a partition only
    /// through Produce (ACLs, quotas, metrics, validation) and the
    /// internal log.
    pub(crate) fn partition(&self, p: i32) -> Option<&Arc<dyn PartitionLog>> {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(|s| s.log())
    }

    /// Partition `p`'s log, opened now if this is its first use:
    /// `Ok(None)` if the topic has no such partition, the engine's error
    /// if storage cannot open it. Request handlers answer that error with
    /// KAFKA_STORAGE_ERROR, as Kafka does for a partition whose log
    /// directory is offline.
    pub(crate) fn open_partition(
        &self,
        p: i32,
    ) -> Result<Option<&Arc<dyn PartitionLog>>, LogError> {
        let Some(slot) = usize::try_from(p).ok().and_then(|i| self.partitions.get(i)) else {
            return Ok(None);
        };
        slot.open().map(Some)
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// Every partition's log with its index, opening those not yet open.
    pub(crate) fn logs(&self) -> impl Iterator<Item = (i32, &Arc<dyn PartitionLog>)> {
        (0..self.partition_count()).filter_map(|p| self.partition(p).map(|l| (p, l)))
    }

    /// Partition `p`'s log start, high watermark and log end (opening it
    /// if this is its first use).
    pub fn partition_offsets(&self, p: i32) -> Option<weir_log::LogOffsets> {
        self.partition(p).map(|l| l.offsets())
    }

    /// The bytes partition `p`'s log takes in storage.
    pub fn partition_size_bytes(&self, p: i32) -> Option<u64> {
        self.partition(p).map(|l| l.size_bytes())
    }

    /// Opens every partition not yet open; false once one cannot be (the
    /// engine shut down meanwhile, or the error is logged).
    fn open_all(&self) -> bool {
        self.partitions.iter().all(|s| s.log().is_some())
    }
}

#[derive(Debug)]
struct State {
    catalog: Catalog,
    settings: BrokerSettings,
    topics: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// The most partitions one topic may have.
const MAX_PARTITIONS: i32 = 100_000;

/// Producer ids reserved per catalog write.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The topics service.
#[derive(Debug)]
pub struct Topics {
    data_dir: PathBuf,
    engine: Arc<dyn LogEngine>,
    state: RwLock<State>,
    /// Serialises metadata changes so each is persisted before the next.
    admin: Mutex<()>,
    /// Producer ids: `(next, end of the reserved block)`.
    producer_ids: Mutex<(i64, i64)>,
    clock: Clock,
    /// Cluster mode: the catalog every broker shares, in place of the
    /// file; `version` is the shared version `state.catalog` is.
    shared: Option<Arc<dyn SharedCatalog>>,
    version: AtomicI64,
}

/// How the shared catalog is named in errors.
const SHARED_ORIGIN: &str = "cluster catalog";

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

impl Topics {
    /// Loads the catalog of `data_dir` (or starts one) over `engine`.
    /// Partitions open on first use ([`Topics::open_all`] opens the rest);
    /// partitions in storage that the catalog does not name are removed.
    pub(crate) fn open(
        data_dir: &Path,
        static_settings: &BrokerSettings,
        engine: Arc<dyn LogEngine>,
        clock: Clock,
    ) -> Result<Self, BrokerError> {
        let shared = engine.shared();
        let (catalog, version) = match &shared {
            Some(s) => load_shared(s.as_ref())?,
            None => (Catalog::load_or_create(&catalog_path(data_dir))?, 0),
        };
        let mut settings = static_settings.clone();
        settings.dynamic_broker = catalog.dynamic_broker.clone();
        settings.dynamic_default = catalog.dynamic_default.clone();
        let mut topics = HashMap::new();
        let mut by_id = HashMap::new();
        for rec in catalog.topics.values() {
            let topic = Arc::new(open_topic(&engine, &settings, rec)?);
            by_id.insert(rec.id, topic.clone());
            topics.insert(rec.name.clone(), topic);
        }
        // Partitions without a catalog entry are left from a delete or a
        // create that crashed half-way: the catalog is the truth. Not in
        // cluster mode: another broker may be creating a topic right now,
        // and the broker that deletes a topic removes its partitions.
        if shared.is_none() {
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
        }
        info!(topics = topics.len(), cluster_id = %catalog.cluster_id, "topics loaded");
        let id_block_end = catalog.producer_id_block_end;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            engine,
            state: RwLock::new(State {
                catalog,
                settings,
                topics,
                by_id,
            }),
            admin: Mutex::new(()),
            producer_ids: Mutex::new((id_block_end, id_block_end)),
            clock,
            shared,
            version: AtomicI64::new(version),
        })
    }

    /// Opens every partition not yet open, so that retention and
    /// compaction (which the engine runs on open partitions) reach them;
    /// blocking, for a background task after start.
    pub fn open_all(&self) {
        for t in self.topics() {
            if !t.open_all() {
                return;
            }
        }
    }

    /// The broker's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The storage engine's own measurements (fsync latency).
    pub fn engine_stats(&self) -> Option<Arc<weir_log::EngineStats>> {
        self.engine.stats()
    }

    /// Creates `name` unless it exists; returns its partition count.
    pub(crate) fn ensure_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<i32, BrokerError> {
        if let Some(t) = self.topic(name) {
            return Ok(t.partition_count());
        }
        // In cluster mode brokers starting together race to create the
        // internal topics: the loser finds the winner's.
        match self.create_topic(name, partitions, 1, Vec::new(), configs, false) {
            Ok(rec) => Ok(rec.partitions),
            Err(BrokerError::TopicExists { .. }) => self
                .topic(name)
                .map(|t| t.partition_count())
                .ok_or_else(|| {
                    BrokerError::Internal(format!("{name} vanished while being created"))
                }),
            Err(e) => Err(e),
        }
    }

    /// Flushes and closes storage so the next start is a clean start.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        Ok(self.engine.shutdown()?)
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

    /// Creates a topic. `validate_only` checks without creating. Returns the
    /// new topic's record.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicRecord, BrokerError> {
        self.retrying(|| {
            self.create_topic_once(
                name,
                partitions,
                replication_factor,
                assignments.clone(),
                configs.clone(),
                validate_only,
            )
        })
    }

    fn create_topic_once(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignments: Vec<Vec<i32>>,
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
        let _admin = self.admin()?;
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
            replication_factor,
            assignments,
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
        self.retrying(|| self.delete_topic_once(name))
    }

    fn delete_topic_once(&self, name: &str) -> Result<Uuid, BrokerError> {
        if crate::INTERNAL_TOPICS.contains(&name) {
            return Err(BrokerError::InternalTopic {
                topic: name.to_string(),
            });
        }
        if self.setting("delete.topic.enable") != "true" {
            return Err(BrokerError::TopicDeletionDisabled);
        }
        let _admin = self.admin()?;
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
        info!(topic = name, "deleted topic");
        Ok(rec.id)
    }

    /// Grows a topic to `count` partitions, with the new partitions'
    /// manual assignments if given (already checked).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.retrying(|| {
            self.create_partitions_once(name, count, assignments.clone(), validate_only)
        })
    }

    fn create_partitions_once(
        &self,
        name: &str,
        count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin()?;
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
        let old = usize::try_from(rec.partitions).unwrap_or_default();
        let mut rec = TopicRecord {
            partitions: count,
            ..rec
        };
        if !assignments.is_empty() {
            rec.assignments.resize(old, Vec::new());
            rec.assignments.extend(assignments);
        }
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
        self.retrying(|| self.set_topic_configs_once(name, configs.clone()))
    }

    fn set_topic_configs_once(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin()?;
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
            replication_factor: old.replication_factor,
            assignments: old.assignments.clone(),
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
        self.retrying(|| self.set_broker_configs_once(default, configs.clone()))
    }

    fn set_broker_configs_once(
        &self,
        default: bool,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin()?;
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
        self.retrying(|| self.set_group_configs_once(group_id, configs.clone()))
    }

    fn set_group_configs_once(
        &self,
        group_id: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin()?;
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
        let topic = Arc::new(open_topic(&self.engine, settings, rec).map_err(storage)?);
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
            // A cluster reserves blocks from its database's sequence, so
            // brokers asking at the same moment never conflict.
            if let Some(block) = match &self.shared {
                Some(s) => s.reserve_producer_ids()?,
                None => None,
            } {
                *ids = (block.start, block.end);
                let id = ids.0;
                ids.0 += 1;
                return Ok(id);
            }
            let _admin = self.admin()?;
            let mut state = self
                .state
                .write()
                .map_err(|_| BrokerError::Internal("state lock poisoned".into()))?;
            let mut catalog = state.catalog.clone();
            // In cluster mode other brokers reserve blocks too: the next
            // block starts where the shared catalog's last one ended.
            let start = ids.1.max(catalog.producer_id_block_end);
            catalog.producer_id_block_end = start + PRODUCER_ID_BLOCK;
            self.persist(&catalog)?;
            state.catalog = catalog;
            *ids = (start, start + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    fn persist(&self, catalog: &Catalog) -> Result<(), BrokerError> {
        let Some(shared) = &self.shared else {
            return catalog.save(&catalog_path(&self.data_dir));
        };
        let body = serde_json::to_vec(catalog).map_err(|e| internal(&e.to_string()))?;
        match shared.save(self.version.load(Ordering::SeqCst), &body)? {
            Some(v) => {
                self.version.store(v, Ordering::SeqCst);
                Ok(())
            }
            // Only two brokers changing metadata at the same moment get
            // here, since every change first reads the shared catalog.
            None => Err(BrokerError::CatalogConflict),
        }
    }

    /// Runs a metadata change again from the newest shared catalog while
    /// another broker's change gets in between its read and its write
    /// (cluster mode), as Kafka's controller serialises them: two brokers
    /// creating topics at once both succeed, or one learns the topic
    /// exists.
    fn retrying<T>(
        &self,
        mut change: impl FnMut() -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        let mut tries = 0;
        loop {
            match change() {
                // Each retry reads the catalog anew, and a conflict means
                // another change was saved: the cluster progresses.
                Err(BrokerError::CatalogConflict) if tries < 20 => tries += 1,
                r => return r,
            }
        }
    }

    /// The admin lock, held by every metadata change; in cluster mode,
    /// taken with the shared catalog read first, so that a change starts
    /// from what every broker has saved.
    fn admin(&self) -> Result<MutexGuard<'_, ()>, BrokerError> {
        let guard = self
            .admin
            .lock()
            .map_err(|_| internal("admin lock poisoned"))?;
        self.sync_locked()?;
        Ok(guard)
    }

    /// Cluster mode: applies the shared catalog if another broker changed
    /// it (the broker calls this on every catalog notification and every
    /// few seconds). Blocking: it reads the database.
    pub fn sync_shared(&self) -> Result<(), BrokerError> {
        self.admin().map(drop)
    }

    /// The shared catalog, if this broker is one of a cluster.
    pub fn shared(&self) -> Option<Arc<dyn SharedCatalog>> {
        self.shared.clone()
    }

    fn sync_locked(&self) -> Result<(), BrokerError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let Some((version, body)) = shared.load()? else {
            return Ok(());
        };
        if version == self.version.load(Ordering::SeqCst) {
            return Ok(());
        }
        let catalog = Catalog::parse(&body, Path::new(SHARED_ORIGIN))?;
        self.apply(catalog)?;
        self.version.store(version, Ordering::SeqCst);
        Ok(())
    }

    /// Makes `catalog` (saved by another broker) this broker's: topics
    /// added, changed or gone, dynamic configs.
    fn apply(&self, catalog: Catalog) -> Result<(), BrokerError> {
        let mut state = self
            .state
            .write()
            .map_err(|_| internal("state lock poisoned"))?;
        let mut settings = state.settings.clone();
        settings.dynamic_broker = catalog.dynamic_broker.clone();
        settings.dynamic_default = catalog.dynamic_default.clone();
        let configs_changed = settings.dynamic_broker != state.settings.dynamic_broker
            || settings.dynamic_default != state.settings.dynamic_default;
        for rec in catalog.topics.values() {
            if configs_changed || state.catalog.topics.get(&rec.name) != Some(rec) {
                let topic = Arc::new(open_topic(&self.engine, &settings, rec)?);
                if let Some(old) = state.topics.get(&rec.name).map(|t| t.id) {
                    state.by_id.remove(&old);
                }
                state.by_id.insert(rec.id, topic.clone());
                state.topics.insert(rec.name.clone(), topic);
            }
        }
        let gone: Vec<String> = state
            .catalog
            .topics
            .keys()
            .filter(|n| !catalog.topics.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(t) = state.topics.remove(&name) {
                state.by_id.remove(&t.id);
            }
        }
        state.settings = settings;
        state.catalog = catalog;
        Ok(())
    }
}

/// Reads the shared catalog, or saves a fresh one if no broker has yet.
fn load_shared(shared: &dyn SharedCatalog) -> Result<(Catalog, i64), BrokerError> {
    loop {
        if let Some((version, body)) = shared.load()? {
            return Ok((Catalog::parse(&body, Path::new(SHARED_ORIGIN))?, version));
        }
        let catalog = Catalog::fresh();
        let body = serde_json::to_vec(&catalog).map_err(|e| internal(&e.to_string()))?;
        if let Some(version) = shared.save(0, &body)? {
            return Ok((catalog, version));
        }
        // Another broker saved the first catalog meanwhile: read it.
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
    engine: &Arc<dyn LogEngine>,
    settings: &BrokerSettings,
    rec: &TopicRecord,
) -> Result<Topic, BrokerError> {
    let config = settings.log_config(&rec.configs);
    let partitions = (0..rec.partitions)
        .map(|p| {
            Arc::new(Slot {
                tp: TopicPartition::new(rec.name.clone(), p),
                engine: engine.clone(),
                config: Mutex::new(config.clone()),
                log: OnceLock::new(),
            })
        })
        .collect();
    Ok(Topic {
        name: rec.name.clone(),
        id: rec.id,
        configs: rec.configs.clone(),
        replication_factor: rec.replication_factor,
        assignments: rec.assignments.clone(),
        partitions,
    })
}

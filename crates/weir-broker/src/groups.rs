//! The group coordinator at run time: the pure state machine of
//! [`crate::group_coordinator`] plus deferred responses, committed offsets
//! and their persistence in `__consumer_offsets`.
//!
//! Offset commits are appended to the group's partition of
//! `__consumer_offsets` and answered once durable, like an acks=all
//! produce, so a consumer that restarts (or a broker killed with -9)
//! resumes exactly where it committed. Group metadata is appended after
//! each completed rebalance, and a KIP-848 group's changed records at
//! each heartbeat that changed it (answered once they are durable). At
//! start-up the topic is read back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tracing::info;
use weir_log::Clock;

use crate::consumer_group::{
    ConsumerConfig, ConsumerGroups, GroupView, Heartbeat, HeartbeatAnswer, TopicMeta,
};
use crate::error::BrokerError;
use crate::group_coordinator::{
    Effect, Effects, GroupConfig, GroupCoordinator, GroupDescription, GroupState, JoinRequest,
    JoinResult, SyncResult, Waiter,
};
use crate::group_store::{self, Change, Committed, Key, OFFSETS_TOPIC};
use crate::internal_log::{self, Durable, Entry, InternalLog, KeyValue, TxnProducer};
use crate::topics::Topics;

/// Settings of the coordinator, from broker configs with Kafka's names.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `offsets.topic.num.partitions`.
    pub offsets_partitions: i32,
    /// `offsets.retention.minutes`, in ms.
    pub retention_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub metadata_max_bytes: usize,
    /// The state machine's settings.
    pub group: GroupConfig,
    /// The KIP-848 protocol's settings.
    pub consumer: ConsumerConfig,
}

enum Waiting {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
}

struct Inner {
    coord: GroupCoordinator,
    consumer: ConsumerGroups,
    offsets: HashMap<String, BTreeMap<(String, i32), Committed>>,
    /// TxnOffsetCommit offsets awaiting their transaction's end, by
    /// producer id then group.
    pending_txn: HashMap<i64, PendingOffsets>,
    /// Waiting JoinGroup and SyncGroup responses, with their group.
    waiters: HashMap<Waiter, (String, Waiting)>,
    next_waiter: Waiter,
    last_expiry_check: i64,
    /// Share groups' live records read from the log, until the share
    /// coordinator takes them ([`Groups::take_share_records`]).
    share_loaded: HashMap<String, BTreeMap<Bytes, Bytes>>,
    /// Cluster mode: partitions dropped since the share coordinator last
    /// took them, so it forgets their share groups before it rebuilds
    /// any loaded since.
    share_dropped: Vec<i32>,
}

type PendingOffsets = HashMap<String, BTreeMap<(String, i32), Committed>>;

/// The run-time group coordinator.
pub struct Groups {
    settings: GroupSettings,
    inner: Mutex<Inner>,
    /// `__consumer_offsets`.
    log: Arc<dyn InternalLog>,
    /// Topic metadata and high watermarks (commits, KIP-848 assignment, lag).
    topics: Arc<Topics>,
    clock: Clock,
    /// Cluster mode: the coordinator leases, and the lease epoch at which
    /// each `__consumer_offsets` partition held was loaded. A group is
    /// served only while its partition's lease is held at that epoch.
    cluster: OnceLock<Arc<dyn weir_log::SharedCatalog>>,
    loaded: Mutex<HashMap<i32, i64>>,
    /// Cluster mode: per loaded partition, the next offset its tail reads.
    tails: Mutex<HashMap<i32, i64>>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A group's lag on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset.
    pub committed: i64,
    /// High watermark; `None` if the partition no longer exists.
    pub high_watermark: Option<i64>,
    /// `high_watermark - committed`.
    pub lag: Option<i64>,
}

/// One partition's outcome of an offset commit.
pub type CommitOutcome = Vec<(String, i32, i16)>;

/// [`Groups::take_share_records`]: dropped `__consumer_offsets`
/// partitions, then loaded share groups' records by group.
pub type ShareRecords = (Vec<i32>, Vec<(String, BTreeMap<Bytes, Bytes>)>);

/// Committed offsets by topic: partition and offset, if any.
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// A member id as Kafka makes them for KIP-848 members: a random UUID in
/// URL-safe base64.
fn new_member_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// A seed for member ids, so they differ across restarts.
fn random_seed() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Every topic as the server-side assignors see it, by name.
pub(crate) fn topic_metas(topics: &Topics) -> BTreeMap<String, TopicMeta> {
    topics
        .topics()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TopicMeta {
                    id: t.id,
                    partitions: t.partition_count(),
                },
            )
        })
        .collect()
}

fn answer_waiter(w: Waiting, code: ResponseError) {
    match w {
        Waiting::Join(tx) => {
            let _ = tx.send(JoinResult::error(code, ""));
        }
        Waiting::Sync(tx) => {
            let _ = tx.send(SyncResult {
                error: code.code(),
                protocol_type: None,
                protocol_name: None,
                assignment: Bytes::new(),
            });
        }
    }
}

fn lock_map<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn finish_txn(inner: &mut Inner, producer_id: i64, commit: bool) {
    let Some(pending) = inner.pending_txn.remove(&producer_id) else {
        return;
    };
    if !commit {
        return;
    }
    for (group, offsets) in pending {
        let entry = inner.offsets.entry(group).or_default();
        for (k, c) in offsets {
            entry.insert(k, c);
        }
    }
}

/// Cluster mode: one entry another broker may have caused, read by a
/// partition's tail: a transactional offset commit becomes pending, a
/// marker ends its producer's pending offsets. Anything else was applied
/// when this broker wrote it.
fn apply_txn_entry(inner: &mut Inner, entry: Entry) {
    match entry {
        Entry::Marker {
            producer_id,
            commit,
        } => finish_txn(inner, producer_id, commit),
        Entry::Record {
            key,
            value,
            transactional_producer: Some(pid),
        } => {
            if let Some(Key::Offset {
                group,
                topic,
                partition,
            }) = key.as_ref().and_then(group_store::decode_key)
            {
                let pending = inner
                    .pending_txn
                    .entry(pid)
                    .or_default()
                    .entry(group)
                    .or_default();
                match value.as_ref().and_then(group_store::decode_offset) {
                    Some(c) => {
                        pending.insert((topic, partition), c);
                    }
                    None => {
                        pending.remove(&(topic, partition));
                    }
                }
            }
        }
        Entry::Record { .. } => {}
    }
}

/// Keeps the latest value of a group's record; a tombstone removes it.
fn keep_live(
    live: &mut HashMap<String, BTreeMap<Bytes, Bytes>>,
    group: String,
    key: Bytes,
    value: Option<Bytes>,
) {
    let records = live.entry(group).or_default();
    match value {
        Some(v) => records.insert(key, v),
        None => records.remove(&key),
    };
}

impl Groups {
    /// A coordinator with no state yet, over `__consumer_offsets` in `log`;
    /// [`Groups::load`] reads the state back.
    pub fn new(
        settings: GroupSettings,
        log: Arc<dyn InternalLog>,
        topics: Arc<Topics>,
        clock: Clock,
    ) -> Self {
        let coord = GroupCoordinator::new(settings.group.clone(), random_seed());
        let consumer = ConsumerGroups::new(settings.consumer.clone());
        Self {
            log,
            topics,
            clock,
            settings,
            cluster: OnceLock::new(),
            loaded: Mutex::default(),
            tails: Mutex::default(),
            inner: Mutex::new(Inner {
                coord,
                consumer,
                offsets: HashMap::new(),
                pending_txn: HashMap::new(),
                waiters: HashMap::new(),
                next_waiter: 0,
                last_expiry_check: 0,
                share_loaded: HashMap::new(),
                share_dropped: Vec::new(),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The `__consumer_offsets` partition of a group, by the topic's actual
    /// partition count (fixed at creation, as in Kafka, whatever
    /// `offsets.topic.num.partitions` says later).
    pub fn offsets_partition(&self, group: &str) -> i32 {
        let n = self.log.partitions(OFFSETS_TOPIC).unwrap_or(1);
        group_store::partition_for(group, n)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug; the state is still the
        // best we have, so keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates `__consumer_offsets` if missing (compacted, with
    /// `segment_bytes` segments) and reads it back.
    pub async fn load(&self, segment_bytes: String) -> Result<(), BrokerError> {
        let partitions = self.prepare(segment_bytes).await?;
        let mut entries = Vec::new();
        for p in 0..partitions {
            entries.extend(self.log.read(OFFSETS_TOPIC, p).await?);
        }
        self.apply_entries(entries);
        Ok(())
    }

    /// Creates `__consumer_offsets` if missing; answers its partition
    /// count.
    pub async fn prepare(&self, segment_bytes: String) -> Result<i32, BrokerError> {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), segment_bytes),
        ]);
        self.log
            .ensure_topic(OFFSETS_TOPIC, self.settings.offsets_partitions, configs)
            .await
    }

    /// Cluster mode: groups are served by the broker holding their
    /// `__consumer_offsets` partition's lease ([`Groups::load_partition`]
    /// and [`Groups::drop_partition`] follow the leases).
    pub fn join_cluster(&self, cluster: Arc<dyn weir_log::SharedCatalog>) {
        let _ = self.cluster.set(cluster);
    }

    /// Whether this broker coordinates `group_id` now: always on one
    /// node; in a cluster, while it holds the lease of the group's
    /// partition at the epoch it loaded the partition at.
    pub fn owns(&self, group_id: &str) -> bool {
        let Some(cluster) = self.cluster.get() else {
            return true;
        };
        let p = self.offsets_partition(group_id);
        let loaded = lock_map(&self.loaded).get(&p).copied();
        loaded.is_some() && cluster.coordinator_epoch(OFFSETS_TOPIC, p) == loaded
    }

    /// Cluster mode: this broker took the lease of partition `p` at
    /// `epoch`; reads the partition's groups and offsets back (as Kafka's
    /// coordinator does on election) and serves them from then on.
    pub async fn load_partition(&self, p: i32, epoch: i64) -> Result<(), BrokerError> {
        self.drop_partition(p);
        let log = self.offsets_log(p)?;
        let entries = crate::internal_log::read_from(&*log, OFFSETS_TOPIC, 0).await?;
        let next = entries
            .last()
            .map_or(log.offsets().log_start, |(o, _)| o + 1);
        self.apply_entries(entries.into_iter().map(|(_, e)| e).collect());
        lock_map(&self.tails).insert(p, next);
        lock_map(&self.loaded).insert(p, epoch);
        Ok(())
    }

    fn offsets_log(&self, p: i32) -> Result<Arc<dyn weir_log::PartitionLog>, BrokerError> {
        self.topics
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partition(p).cloned())
            .ok_or_else(|| BrokerError::Internal(format!("{OFFSETS_TOPIC}-{p} is missing")))
    }

    /// Cluster mode: follows a loaded partition's log for what other
    /// brokers write to it, the transaction coordinators' markers, and
    /// applies in log order the transactional offset commits and the
    /// markers that end them, until the partition is dropped or loaded
    /// again. Log order keeps a marker of an earlier transaction from
    /// ending a later one's offsets.
    fn tail(self: &Arc<Self>, p: i32, epoch: i64) {
        let groups = self.clone();
        tokio::spawn(async move {
            let Ok(log) = groups.offsets_log(p) else {
                return;
            };
            let mut end = log.subscribe();
            loop {
                let current = || lock_map(&groups.loaded).get(&p) == Some(&epoch);
                if !current() {
                    return;
                }
                let from = lock_map(&groups.tails).get(&p).copied().unwrap_or(0);
                let mut retry = std::time::Duration::from_secs(1);
                if log.offsets().log_end > from {
                    match crate::internal_log::read_from(&*log, OFFSETS_TOPIC, from).await {
                        Ok(entries) => {
                            if let Some((last, _)) = entries.last() {
                                let next = last + 1;
                                let mut inner = groups.lock();
                                if !current() {
                                    return;
                                }
                                for (_, e) in entries {
                                    apply_txn_entry(&mut inner, e);
                                }
                                drop(inner);
                                lock_map(&groups.tails).insert(p, next);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, partition = p, "cannot follow consumer offsets");
                            retry = std::time::Duration::from_millis(200);
                        }
                    }
                }
                tokio::select! {
                    r = end.changed() => if r.is_err() { return },
                    () = tokio::time::sleep(retry) => {}
                }
            }
        });
    }

    /// Cluster mode: this broker no longer holds partition `p`'s lease;
    /// forgets its groups (waiting joins and syncs get NOT_COORDINATOR
    /// and the clients find the new coordinator).
    pub fn drop_partition(&self, p: i32) {
        lock_map(&self.loaded).remove(&p);
        let mut inner = self.lock();
        let mut ids: Vec<String> = inner.coord.list().into_iter().map(|g| g.0).collect();
        ids.extend(inner.consumer.list().into_iter().map(|g| g.0));
        ids.extend(inner.offsets.keys().cloned());
        ids.extend(inner.pending_txn.values().flat_map(|g| g.keys().cloned()));
        ids.retain(|g| self.offsets_partition(g) == p);
        inner
            .share_loaded
            .retain(|g, _| self.offsets_partition(g) != p);
        inner.share_dropped.push(p);
        ids.sort();
        ids.dedup();
        for g in &ids {
            inner.coord.forget(g);
            inner.consumer.forget(g);
            inner.offsets.remove(g);
            for pending in inner.pending_txn.values_mut() {
                pending.remove(g);
            }
        }
        inner.pending_txn.retain(|_, g| !g.is_empty());
        let gone: Vec<Waiter> = inner
            .waiters
            .iter()
            .filter(|(_, (g, _))| self.offsets_partition(g) == p)
            .map(|(w, _)| *w)
            .collect();
        for w in gone {
            if let Some((_, waiting)) = inner.waiters.remove(&w) {
                answer_waiter(waiting, ResponseError::NotCoordinator);
            }
        }
        if !ids.is_empty() {
            info!(partition = p, groups = ids.len(), "coordinator moved away");
        }
    }

    /// Applies records read from `__consumer_offsets`, in offset order.
    fn apply_entries(&self, entries: Vec<Entry>) {
        let now = self.now_ms();
        let mut groups: HashMap<String, Option<Bytes>> = HashMap::new();
        // KIP-848 and share groups' live records, by group then key.
        let mut consumer: HashMap<String, BTreeMap<Bytes, Bytes>> = HashMap::new();
        let mut share: HashMap<String, BTreeMap<Bytes, Bytes>> = HashMap::new();
        let mut inner = self.lock();
        let mut records = 0usize;
        for entry in entries {
            let (key, value, txn) = match entry {
                // A transaction marker: its offsets become committed or
                // are dropped.
                Entry::Marker {
                    producer_id,
                    commit,
                } => {
                    finish_txn(&mut inner, producer_id, commit);
                    continue;
                }
                Entry::Record {
                    key,
                    value,
                    transactional_producer,
                } => (key, value, transactional_producer),
            };
            let Some(decoded) = key.as_ref().and_then(group_store::decode_key) else {
                continue;
            };
            records += 1;
            let key = match (decoded, key) {
                (Key::Consumer { group, .. }, Some(raw)) => {
                    keep_live(&mut consumer, group, raw, value);
                    continue;
                }
                (Key::Share { group, .. }, Some(raw)) => {
                    keep_live(&mut share, group, raw, value);
                    continue;
                }
                (decoded, _) => decoded,
            };
            match key {
                Key::Offset {
                    group,
                    topic,
                    partition,
                } => {
                    let entry = match txn {
                        Some(pid) => inner
                            .pending_txn
                            .entry(pid)
                            .or_default()
                            .entry(group)
                            .or_default(),
                        None => inner.offsets.entry(group).or_default(),
                    };
                    match value.as_ref().and_then(group_store::decode_offset) {
                        Some(c) => {
                            entry.insert((topic, partition), c);
                        }
                        None => {
                            entry.remove(&(topic, partition));
                        }
                    }
                }
                Key::Group(g) => {
                    groups.insert(g, value);
                }
                Key::Consumer { .. } | Key::Share { .. } => {}
            }
        }
        inner.share_loaded.extend(share);
        for (id, live) in consumer {
            inner.consumer.restore(&id, live, now);
            if inner.consumer.is_active(&id) {
                inner.coord.ensure(&id, now);
            }
        }
        inner.offsets.retain(|_, o| !o.is_empty());
        for (id, value) in groups {
            match value
                .as_ref()
                .and_then(|v| group_store::decode_group(&id, v))
            {
                Some(snap) => inner.coord.restore(snap, now),
                None => inner.coord.forget(&id),
            }
        }
        for g in inner.offsets.keys().cloned().collect::<Vec<_>>() {
            inner.coord.ensure(&g, now);
        }
        info!(
            records,
            groups = inner.coord.list().len(),
            "loaded consumer group state"
        );
    }

    fn apply(&self, inner: &mut Inner, fx: Effects) {
        for e in fx {
            match e {
                Effect::Join(w, r) => {
                    if let Some((_, Waiting::Join(tx))) = inner.waiters.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::Sync(w, r) => {
                    if let Some((_, Waiting::Sync(tx))) = inner.waiters.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::Persist(snap) => {
                    let key = group_store::group_key(&snap.group_id);
                    let value = group_store::group_value(&snap);
                    self.write_detached(&snap.group_id, vec![(key, Some(value))], "group metadata");
                }
            }
        }
    }

    /// Appends the KIP-848 groups' changed records, each group's to its
    /// partition of `__consumer_offsets`, in the order of the changes
    /// (the caller holds the lock); answers the waits for their
    /// durability by group.
    fn persist_consumer(&self, inner: &mut Inner) -> Vec<(String, Durable)> {
        inner
            .consumer
            .take_changes()
            .into_iter()
            .map(|(group, kvs)| {
                let wait = self.write(&group, kvs, None);
                (group, wait)
            })
            .collect()
    }

    /// [`Groups::persist_consumer`] that nobody waits for: a failed write
    /// is logged, and the group's records are written whole at its next
    /// change.
    fn persist_consumer_detached(self: &Arc<Self>, inner: &mut Inner) {
        for (group, wait) in self.persist_consumer(inner) {
            let groups = self.clone();
            tokio::spawn(async move {
                if let Err(e) = wait.await {
                    tracing::warn!(error = %e, group, "consumer group state not written");
                    groups.consumer_write_failed(&group);
                }
            });
        }
    }

    /// A write of a KIP-848 group's records failed: the next change
    /// writes all of them again.
    pub fn consumer_write_failed(&self, group: &str) {
        self.lock().consumer.invalidate(group);
    }

    /// What the share coordinator must apply, in this order: the
    /// `__consumer_offsets` partitions dropped since the last call (their
    /// share groups are no longer this broker's), then the share groups'
    /// records loaded since (all groups', or `group`'s only), to rebuild
    /// them. Taken together, so a partition dropped and loaded again
    /// meanwhile ends up loaded.
    pub fn take_share_records(&self, group: Option<&str>) -> ShareRecords {
        let mut inner = self.lock();
        let dropped = std::mem::take(&mut inner.share_dropped);
        let loaded = match group {
            Some(g) => inner.share_loaded.remove_entry(g).into_iter().collect(),
            None => inner.share_loaded.drain().collect(),
        };
        (dropped, loaded)
    }

    /// Appends a share group's records to its partition of
    /// `__consumer_offsets`, through the same fenced path as offset
    /// commits; returns the wait for their durability.
    pub fn write_share_records(&self, group: &str, kvs: Vec<Change>) -> Durable {
        self.write(group, kvs, None)
    }

    /// Appends records to the group's partition of `__consumer_offsets`,
    /// returning the wait for their durability.
    fn write(
        &self,
        group: &str,
        kvs: Vec<(Bytes, Option<Bytes>)>,
        txn: Option<TxnProducer>,
    ) -> Durable {
        let p = self.offsets_partition(group);
        let records: Vec<KeyValue> = kvs.into_iter().map(|(k, v)| (Some(k), v)).collect();
        let appended = self.log.append(OFFSETS_TOPIC, p, records, txn);
        Box::pin(async move { appended.await?.durable.await })
    }

    /// [`Groups::write`] that nobody waits for; a failure is logged.
    fn write_detached(&self, group: &str, kvs: Vec<(Bytes, Option<Bytes>)>, what: &'static str) {
        let p = self.offsets_partition(group);
        let records: Vec<KeyValue> = kvs.into_iter().map(|(k, v)| (Some(k), v)).collect();
        internal_log::detach(what, self.log.append(OFFSETS_TOPIC, p, records, None));
    }

    /// JoinGroup: the response arrives on the returned channel.
    pub fn join(&self, req: JoinRequest) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        inner.next_waiter += 1;
        let w = inner.next_waiter;
        inner
            .waiters
            .insert(w, (req.group_id.clone(), Waiting::Join(tx)));
        let fx = inner.coord.join(w, req, self.now_ms());
        self.apply(&mut inner, fx);
        rx
    }

    /// SyncGroup: the response arrives on the returned channel.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        inner.next_waiter += 1;
        let w = inner.next_waiter;
        inner
            .waiters
            .insert(w, (group_id.to_string(), Waiting::Sync(tx)));
        let fx = inner.coord.sync(
            w,
            group_id,
            generation,
            member_id,
            instance_id,
            protocol_type,
            protocol_name,
            assignments,
            self.now_ms(),
        );
        self.apply(&mut inner, fx);
        rx
    }

    /// Answers every waiting JoinGroup and SyncGroup with
    /// COORDINATOR_NOT_AVAILABLE (the broker is stopping; clients retry).
    pub fn fail_waiters(&self) {
        let mut inner = self.lock();
        for (_, (_, w)) in inner.waiters.drain() {
            answer_waiter(w, ResponseError::CoordinatorNotAvailable);
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        self.lock()
            .coord
            .heartbeat(group_id, generation, member_id, instance_id, self.now_ms())
    }

    /// LeaveGroup: top-level error and one code per member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> (i16, Vec<i16>) {
        let mut inner = self.lock();
        let (top, codes, fx) = inner.coord.leave(group_id, members, self.now_ms());
        self.apply(&mut inner, fx);
        (top, codes)
    }

    /// Advances timers, and expires offsets now and then.
    pub fn tick(self: &Arc<Self>) {
        let now = self.now_ms();
        let mut inner = self.lock();
        let fx = inner.coord.tick(now);
        self.apply(&mut inner, fx);
        inner.consumer.tick(now);
        if now - inner.last_expiry_check >= 60_000 {
            inner.last_expiry_check = now;
            self.expire_offsets(&mut inner, now);
        }
        self.persist_consumer_detached(&mut inner);
    }

    /// Lag of every partition a group has committed: committed offset,
    /// high watermark, and their difference (never negative).
    pub fn lag(&self, group_id: &str) -> Vec<PartitionLag> {
        let committed = self.committed(group_id, None);
        let mut out = Vec::new();
        for (topic, parts) in committed {
            let t = self.topics.topic(&topic);
            for (partition, c) in parts {
                let Some(c) = c else { continue };
                let hw = t
                    .as_ref()
                    .and_then(|t| t.partition(partition))
                    .map(|l| l.offsets().high_watermark);
                out.push(PartitionLag {
                    topic: topic.clone(),
                    partition,
                    committed: c.offset,
                    high_watermark: hw,
                    lag: hw.map(|hw| (hw - c.offset).max(0)),
                });
            }
        }
        out
    }

    /// Runs offset expiry at `now`.
    pub fn expire_offsets_at(self: &Arc<Self>, now: i64) {
        let mut inner = self.lock();
        self.expire_offsets(&mut inner, now);
        self.persist_consumer_detached(&mut inner);
    }

    /// Kafka's rule (KIP-211): a consumer group's offsets expire once the
    /// group has been empty for the retention period; standalone commits
    /// expire by their commit time.
    fn expire_offsets(&self, inner: &mut Inner, now: i64) {
        let retention = self.settings.retention_ms;
        // Empty classic groups without offsets have nothing left to keep.
        let idle: Vec<String> = inner
            .coord
            .list()
            .into_iter()
            .filter(|(id, state, _)| {
                *state == GroupState::Empty
                    && !inner.offsets.contains_key(id)
                    && !inner.consumer.is_active(id)
            })
            .map(|(id, _, _)| id)
            .collect();
        for g in idle {
            if inner.coord.delete(&g).is_ok() {
                let _ = inner.consumer.delete(&g);
                self.write_detached(
                    &g,
                    vec![(group_store::group_key(&g), None)],
                    "group removal",
                );
            }
        }
        let groups: Vec<String> = inner.offsets.keys().cloned().collect();
        for g in groups {
            if inner.consumer.is_active(&g) {
                continue;
            }
            let Some((consumer, since)) = inner.coord.empty_since(&g) else {
                continue;
            };
            let Some(offsets) = inner.offsets.get_mut(&g) else {
                continue;
            };
            let expired: Vec<(String, i32)> = offsets
                .iter()
                .filter(|(_, c)| {
                    if consumer {
                        since + retention <= now
                    } else {
                        c.commit_timestamp + retention <= now
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            let mut kvs: Vec<(Bytes, Option<Bytes>)> = Vec::new();
            for (t, p) in &expired {
                offsets.remove(&(t.clone(), *p));
                kvs.push((group_store::offset_key(&g, t, *p), None));
            }
            if offsets.is_empty() {
                inner.offsets.remove(&g);
                if inner.coord.delete(&g).is_ok() {
                    kvs.push((group_store::group_key(&g), None));
                }
            }
            info!(group = %g, partitions = expired.len(), "expired committed offsets");
            self.write_detached(&g, kvs, "offset expiry");
        }
    }

    /// OffsetCommit: validates, appends and updates memory at once; the
    /// returned future resolves when the commit is durable.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        entries: Vec<(String, i32, Committed)>,
        txn: Option<TxnProducer>,
    ) -> (CommitOutcome, Option<Durable>) {
        let now = self.now_ms();
        let mut inner = self.lock();
        // TxnOffsetCommit without member information (before v3, or from a
        // producer outside the group) skips the generation check.
        // `Some(partitions)`: a KIP-848 member with an older epoch may
        // commit only these.
        let checked = if txn.is_some() && (generation < 0 || member_id.is_empty()) {
            Ok(None)
        } else if inner.consumer.is_active(group_id) {
            inner.consumer.check_commit(group_id, member_id, generation)
        } else {
            inner
                .coord
                .check_commit(group_id, generation, member_id, instance_id, now)
                .map(|()| None)
        };
        let allowed = match checked {
            Ok(allowed) => allowed,
            Err(e) => {
                return (
                    entries
                        .into_iter()
                        .map(|(t, p, _)| (t, p, e.code()))
                        .collect(),
                    None,
                )
            }
        };
        inner.coord.ensure(group_id, now);
        let mut outcome = Vec::with_capacity(entries.len());
        let mut kvs = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, c) in entries {
            let known = self.topics.topic(&topic);
            let code = if known
                .as_ref()
                .is_none_or(|t| t.partition(partition).is_none())
            {
                ResponseError::UnknownTopicOrPartition.code()
            } else if allowed.as_ref().is_some_and(|a| {
                known
                    .as_ref()
                    .is_none_or(|t| !a.contains(&(t.id, partition)))
            }) {
                ResponseError::StaleMemberEpoch.code()
            } else if c.metadata.len() > self.settings.metadata_max_bytes {
                ResponseError::OffsetMetadataTooLarge.code()
            } else {
                kvs.push((
                    group_store::offset_key(group_id, &topic, partition),
                    Some(group_store::offset_value(&c)),
                ));
                accepted.push((topic.clone(), partition, c));
                0
            };
            outcome.push((topic, partition, code));
        }
        if kvs.is_empty() {
            return (outcome, None);
        }
        // Memory follows the log in call order; a failed append answers
        // like a failed fsync (the commit is not acknowledged).
        let wait = self.write(group_id, kvs, txn);
        if txn.is_some() && self.cluster.get().is_some() {
            // In a cluster the marker may come from another broker: the
            // partition's tail applies these in log order, with it.
            return (outcome, Some(wait));
        }
        let offsets = match txn {
            Some(t) => inner
                .pending_txn
                .entry(t.producer_id)
                .or_default()
                .entry(group_id.to_string())
                .or_default(),
            None => inner.offsets.entry(group_id.to_string()).or_default(),
        };
        for (t, p, c) in accepted {
            offsets.insert((t, p), c);
        }
        (outcome, Some(wait))
    }

    /// A transaction marker reached `__consumer_offsets`: the producer's
    /// pending offsets become committed, or are dropped.
    pub fn end_txn(&self, producer_id: i64, commit: bool) {
        if self.cluster.get().is_some() {
            // The partition's tail reads the marker from the log.
            return;
        }
        finish_txn(&mut self.lock(), producer_id, commit);
    }

    /// Whether a transaction holds uncommitted offsets for the partition
    /// (OffsetFetch `require_stable`, KIP-447).
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.lock()
            .pending_txn
            .values()
            .any(|g| g.get(group_id).is_some_and(|o| o.contains_key(&key)))
    }

    /// Committed offsets of a group: for `wanted` partitions, or all.
    pub fn committed(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> TopicOffsets {
        let inner = self.lock();
        let offsets = inner.offsets.get(group_id);
        match wanted {
            Some(w) => w
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| (p, offsets.and_then(|o| o.get(&(t.clone(), p)).cloned())))
                        .collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
                for ((t, p), c) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(t.clone())
                        .or_default()
                        .push((*p, Some(c.clone())));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// ConsumerGroupHeartbeat (KIP-848): the answer, and the wait for the
    /// durability of the group's changed records, which the response must
    /// follow (a member must not act on an epoch a restart would forget).
    pub fn consumer_heartbeat(&self, hb: Heartbeat) -> (HeartbeatAnswer, Option<Durable>) {
        let topics = topic_metas(&self.topics);
        // The group's own configs, read before the groups' lock is taken;
        // most groups have none, and then the broker's settings apply
        // without copying them per heartbeat.
        let overrides = self.topics.group_configs(&hb.group_id);
        let config = if overrides.is_empty() {
            self.settings.consumer.clone()
        } else {
            crate::group_config::consumer_settings(&self.topics.settings(), &overrides)
        };
        let mut inner = self.lock();
        let group_id = hb.group_id.clone();
        if inner
            .coord
            .state(&group_id)
            .is_some_and(|s| s != GroupState::Empty)
        {
            let answer = HeartbeatAnswer {
                error: ResponseError::GroupIdNotFound.code(),
                message: Some(format!(
                    "group `{group_id}` is a classic group with members"
                )),
                member_id: hb.member_id,
                member_epoch: hb.member_epoch,
                interval_ms: self.settings.consumer.heartbeat_interval_ms,
                assignment: None,
            };
            return (answer, None);
        }
        let now = self.now_ms();
        inner.consumer.configure(&group_id, config);
        let answer = inner.consumer.heartbeat(hb, &topics, new_member_id, now);
        inner.coord.ensure(&group_id, now);
        // Only this group changed (every other change persists at once).
        let wait = self
            .persist_consumer(&mut inner)
            .into_iter()
            .map(|(_, w)| w)
            .reduce(|a, b| Box::pin(async move { a.await.and(b.await) }));
        (answer, wait)
    }

    /// Whether a classic or consumer group of this id exists (share groups
    /// live in the same namespace and must not take its id).
    pub fn exists(&self, group_id: &str) -> bool {
        let inner = self.lock();
        inner.coord.state(group_id).is_some()
            || inner.consumer.is_active(group_id)
            || inner.offsets.contains_key(group_id)
    }

    /// ConsumerGroupDescribe.
    pub fn consumer_describe(&self, group_id: &str) -> Option<GroupView> {
        self.lock().consumer.describe(group_id)
    }

    /// DescribeGroups.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        self.lock().coord.describe(group_id)
    }

    /// ListGroups: id, state name, protocol type, group type.
    pub fn list(&self) -> Vec<(String, String, String, &'static str)> {
        let inner = self.lock();
        let consumer: BTreeMap<String, &'static str> = inner.consumer.list().into_iter().collect();
        let mut out: Vec<_> = inner
            .coord
            .list()
            .into_iter()
            .map(|(id, state, ptype)| match consumer.get(&id) {
                Some(s) => (id, (*s).to_string(), "consumer".to_string(), "consumer"),
                None => (id, state.name().to_string(), ptype, "classic"),
            })
            .collect();
        for (id, s) in consumer {
            if !out.iter().any(|o| o.0 == id) {
                out.push((id, s.to_string(), "consumer".to_string(), "consumer"));
            }
        }
        out.sort();
        out
    }

    /// DeleteGroups: removes an empty group and its offsets.
    pub fn delete(&self, group_id: &str) -> Result<(), ResponseError> {
        let mut inner = self.lock();
        // Sessions due by now end before the emptiness check, as Kafka's
        // exact timers would have ended them, not at the next tick.
        let now = self.now_ms();
        let fx = inner.coord.tick(now);
        self.apply(&mut inner, fx);
        inner.consumer.tick(now);
        if inner.consumer.is_active(group_id) {
            return Err(ResponseError::NonEmptyGroup);
        }
        let _ = inner.consumer.delete(group_id);
        // The consumer group's tombstones go before the offsets' ones.
        for (g, kvs) in inner.consumer.take_changes() {
            self.write_detached(&g, kvs, "consumer group removal");
        }
        inner.coord.delete(group_id)?;
        let mut kvs: Vec<(Bytes, Option<Bytes>)> = inner
            .offsets
            .remove(group_id)
            .into_iter()
            .flatten()
            .map(|((t, p), _)| (group_store::offset_key(group_id, &t, p), None))
            .collect();
        kvs.push((group_store::group_key(group_id), None));
        self.write_detached(group_id, kvs, "group deletion");
        Ok(())
    }

    /// OffsetDelete: removes committed offsets of partitions the group is
    /// not subscribed to. Returns per-partition codes.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        parts: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, i16)>, ResponseError> {
        let mut inner = self.lock();
        if inner.coord.state(group_id).is_none() {
            return Err(ResponseError::GroupIdNotFound);
        }
        let mut subscribed = inner.coord.subscribed_topics(group_id);
        subscribed.extend(inner.consumer.subscribed_topics(group_id));
        let mut out = Vec::new();
        let mut kvs = Vec::new();
        for (t, p) in parts {
            if subscribed.contains(&t) {
                out.push((t, p, ResponseError::GroupSubscribedToTopic.code()));
                continue;
            }
            if let Some(o) = inner.offsets.get_mut(group_id) {
                if o.remove(&(t.clone(), p)).is_some() {
                    kvs.push((group_store::offset_key(group_id, &t, p), None));
                }
            }
            out.push((t, p, 0));
        }
        if !kvs.is_empty() {
            self.write_detached(group_id, kvs, "offset deletion");
        }
        Ok(out)
    }
}

impl crate::leases::LeasedState for Groups {
    const WHAT: &'static str = "consumer groups";

    fn loaded_leases(&self) -> BTreeMap<i32, i64> {
        lock_map(&self.loaded)
            .iter()
            .map(|(p, e)| (*p, *e))
            .collect()
    }

    async fn load(self: &Arc<Self>, p: i32, epoch: i64) -> Result<(), BrokerError> {
        self.load_partition(p, epoch).await?;
        self.tail(p, epoch);
        Ok(())
    }

    fn forget(&self, p: i32) {
        self.drop_partition(p);
    }
}

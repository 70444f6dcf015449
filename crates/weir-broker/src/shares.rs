//! Share groups at run time: the membership machine
//! ([`crate::share_group`]), the share sessions ([`crate::share_session`])
//! and one [`SharePartition`] per (group, topic partition), with their
//! state persisted in `__share_group_state` ([`crate::share_state_store`]).
//!
//! Durability: every change to a share-partition's state other than an
//! acquisition (acknowledgements, releases, lock expiry, start offset
//! moves, resets) is appended to `__share_group_state` before the request
//! that caused it is answered, and an acknowledgement is answered only
//! once it is fsynced, as an acks=all produce. At start the topic is
//! replayed, so a restart or kill -9 neither loses an acknowledgement nor
//! redelivers an acknowledged record; records that were out with a
//! consumer come back available, with their last persisted delivery count.
//!
//! A share-partition is created (its start offset chosen by
//! `share.auto.offset.reset`, and persisted) at its first ShareFetch, as
//! Kafka's share-partition leader resolves an uninitialized start offset
//! when it first loads the partition (`SharePartition.maybeInitialize`):
//! with `latest`, records produced between the assignment and that fetch
//! are not delivered. One node and a cluster do the same.
//!
//! Everything runs under one lock except the log reads of a fetch: the
//! read happens between deciding where to read and acquiring, and
//! acquisition takes only records still available or past the window
//! (so a read made stale by another fetch meanwhile is harmless).
//!
//! In a cluster, each share-partition is owned by the broker holding its
//! topic partition's share lease (`weir_log::shared::share_lease`), which
//! spreads as Metadata's partition leadership does: it loads the
//! partition's state of every group from `__share_group_state` when it
//! takes the lease, forgets it when the lease goes, and writes state only
//! under the lease, fenced where the write commits. Other brokers answer
//! NOT_LEADER_OR_FOLLOWER for it. Membership stays with the group
//! coordinator (the group's `__consumer_offsets` lease holder).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tracing::{info, warn};
use uuid::Uuid;
use weir_log::shared::{share_lease, Lease};
use weir_log::{BoxFuture, LogError, ReadLimit, SharedCatalog};

use crate::group_config::{share_settings, OffsetReset, ShareGroupSettings};
use crate::internal_log::{self, Guard};
use crate::share_group::{GroupView, Heartbeat, HeartbeatAnswer, ShareGroups};
use crate::share_partition::{AckBatch, AcquireMode, Acquired, LogBatch, SharePartition};
use crate::share_session::{ShareSessions, TopicIdPartition};
use crate::share_state_store::{
    encode_key, encode_snapshot, encode_update, ShareKey, Snapshot, StateLog, Update,
    SHARE_STATE_TOPIC,
};
use crate::topics::Topics;
use crate::BrokerError;

/// A wait for records to reach disk.
pub type Durable = BoxFuture<'static, Result<(), LogError>>;

/// Broker-wide settings of the share coordinator (Kafka's
/// `share.coordinator.*` and `group.share.max.share.sessions`).
#[derive(Debug, Clone)]
pub struct ShareSettings {
    /// `share.coordinator.state.topic.num.partitions`.
    pub state_partitions: i32,
    /// `share.coordinator.state.topic.segment.bytes`.
    pub segment_bytes: i64,
    /// `share.coordinator.snapshot.update.records.per.snapshot`.
    pub snapshot_every: u32,
    /// `share.coordinator.state.topic.prune.interval.ms`.
    pub prune_interval_ms: i64,
    /// `group.share.max.share.sessions`.
    pub max_sessions: usize,
}

impl ShareSettings {
    /// Reads the settings, refusing inconsistent bounds as Kafka's
    /// `ShareGroupConfig` does at start-up.
    pub fn from_broker(s: &crate::BrokerSettings) -> Result<Self, BrokerError> {
        for (lo, mid, hi) in [
            (
                "group.share.min.session.timeout.ms",
                "group.share.session.timeout.ms",
                "group.share.max.session.timeout.ms",
            ),
            (
                "group.share.min.heartbeat.interval.ms",
                "group.share.heartbeat.interval.ms",
                "group.share.max.heartbeat.interval.ms",
            ),
            (
                "group.share.min.record.lock.duration.ms",
                "group.share.record.lock.duration.ms",
                "group.share.max.record.lock.duration.ms",
            ),
            (
                "group.share.min.delivery.count.limit",
                "group.share.delivery.count.limit",
                "group.share.max.delivery.count.limit",
            ),
        ] {
            let (l, m, h) = (s.get_i64(lo), s.get_i64(mid), s.get_i64(hi));
            if !(l <= m && m <= h) {
                return Err(BrokerError::Config {
                    key: mid.to_string(),
                    reason: format!("{m} must lie between {lo} ({l}) and {hi} ({h})"),
                });
            }
        }
        if s.get_i64("group.share.max.delivery.count.limit") > i64::from(i16::MAX) {
            return Err(BrokerError::Config {
                key: "group.share.max.delivery.count.limit".into(),
                reason: "must fit a delivery count (int16)".into(),
            });
        }
        Ok(Self {
            state_partitions: i32::try_from(
                s.get_i64("share.coordinator.state.topic.num.partitions"),
            )
            .unwrap_or(50),
            segment_bytes: s.get_i64("share.coordinator.state.topic.segment.bytes"),
            snapshot_every: u32::try_from(
                s.get_i64("share.coordinator.snapshot.update.records.per.snapshot"),
            )
            .unwrap_or(500),
            prune_interval_ms: s.get_i64("share.coordinator.state.topic.prune.interval.ms"),
            max_sessions: usize::try_from(s.get_i64("group.share.max.share.sessions"))
                .unwrap_or(2000),
        })
    }
}

/// One share-partition and where its state stands in the topic.
#[derive(Debug)]
struct Entry {
    sp: SharePartition,
    snapshot_epoch: i32,
    create_timestamp: i64,
    updates_since_snapshot: u32,
    /// `(state partition, offset)` of its latest snapshot.
    snapshot_at: (i32, i64),
}

impl Entry {
    /// A share-partition as `__share_group_state` left it.
    fn replayed(ks: &crate::share_state_store::KeyState) -> Self {
        Self {
            sp: SharePartition::from_persisted(&ks.state),
            snapshot_epoch: ks.snapshot_epoch,
            create_timestamp: ks.create_timestamp,
            updates_since_snapshot: ks.updates_since_snapshot,
            snapshot_at: ks.snapshot_at,
        }
    }
}

#[derive(Debug)]
struct Inner {
    groups: ShareGroups,
    sessions: ShareSessions,
    partitions: HashMap<ShareKey, Entry>,
    last_prune: i64,
}

/// What one partition of a ShareFetch got.
#[derive(Debug, Default)]
pub struct PartitionFetch {
    /// Whole batches covering the acquired records.
    pub records: Bytes,
    /// The acquired ranges.
    pub acquired: Vec<Acquired>,
    /// A fetch error code (0 if none).
    pub error: i16,
}

/// Limits of one ShareFetch across its partitions.
#[derive(Debug, Clone, Copy)]
pub struct FetchBudget {
    /// Records still to acquire.
    pub records: i64,
    /// Bytes still to return (the first partition with data may exceed).
    pub bytes: usize,
    /// Batch-optimized or record-limit acquisition.
    pub mode: AcquireMode,
}

/// A share-partition's offsets, as DescribeShareGroupOffsets reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The SPSO, or -1 if the group has no state for the partition.
    pub start_offset: i64,
    /// Records not yet delivered for good, or -1 if unknown.
    pub lag: i64,
}

/// What [`Shares::rewrite`] does to a share group's state.
#[derive(Debug, Clone, Copy)]
pub enum Rewrite<'a> {
    /// AlterShareGroupOffsets: each partition restarts at its offset.
    Alter(&'a [(TopicIdPartition, i64)]),
    /// DeleteShareGroupOffsets: the state of these topics goes; they
    /// start again by `share.auto.offset.reset`.
    DeleteTopics(&'a [Uuid]),
    /// DeleteGroups: the group and all its state go.
    DeleteGroup,
}

/// The run-time share coordinator.
#[derive(Debug)]
pub struct Shares {
    settings: ShareSettings,
    inner: Mutex<Inner>,
    /// `__share_group_state`, the shared topics' metadata and the
    /// group configs.
    topics: std::sync::Arc<Topics>,
    clock: weir_log::Clock,
    /// Bumped when records become acquirable again without an append
    /// (released, acknowledged for redelivery, locks expired), so parked
    /// ShareFetches look again.
    released: tokio::sync::watch::Sender<u64>,
    /// Cluster mode: the shared catalog (share leases), this coordinator
    /// and the broker's shutdown.
    cluster: OnceLock<ClusterLink>,
    /// Cluster mode: per topic name, the partitions whose state this
    /// broker loaded, at the share lease epoch it loaded them.
    loaded: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
    /// Cluster mode: topics whose share leases are followed, with the
    /// partition count asked for.
    followed: Mutex<HashMap<String, i32>>,
    /// Cluster mode: a pruning replay is running.
    pruning: std::sync::atomic::AtomicBool,
    /// The group coordinator: the membership is written to and loaded
    /// from its `__consumer_offsets` partitions.
    groups: Arc<crate::groups::Groups>,
    /// Groups whose membership records failed to be written: their next
    /// change writes them whole.
    failed: Arc<Mutex<BTreeSet<String>>>,
}

struct ClusterLink {
    catalog: Arc<dyn SharedCatalog>,
    me: Weak<Shares>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink").finish_non_exhaustive()
    }
}

/// One topic's share leases, followed by [`crate::leases::follow`].
struct TopicLeases {
    shares: Arc<Shares>,
    topic: String,
}

impl crate::leases::LeasedState for TopicLeases {
    const WHAT: &'static str = "share-partition state";

    fn loaded_leases(&self) -> BTreeMap<i32, i64> {
        lock_map(&self.shares.loaded)
            .get(&self.topic)
            .cloned()
            .unwrap_or_default()
    }

    async fn load(self: &Arc<Self>, p: i32, epoch: i64) -> Result<(), BrokerError> {
        self.shares.load_partition(&self.topic, p, epoch).await
    }

    fn forget(&self, p: i32) {
        self.shares.forget_partition(&self.topic, p);
    }
}

fn lock_map<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error_code(e: ResponseError) -> i16 {
    e.code()
}

fn not_owner(e: ResponseError) -> String {
    match e {
        ResponseError::NotLeaderOrFollower => {
            "this broker does not own the share-partition now".into()
        }
        e => e.to_string(),
    }
}

impl Shares {
    /// A coordinator with no state; [`Shares::load`] reads it back.
    pub fn new(
        settings: ShareSettings,
        topics: std::sync::Arc<Topics>,
        groups: Arc<crate::groups::Groups>,
        clock: weir_log::Clock,
    ) -> Self {
        let max_sessions = settings.max_sessions;
        let now = clock.now_ms();
        Self {
            settings,
            topics,
            clock,
            released: tokio::sync::watch::channel(0).0,
            cluster: OnceLock::new(),
            loaded: Mutex::default(),
            followed: Mutex::default(),
            pruning: std::sync::atomic::AtomicBool::new(false),
            groups,
            failed: Arc::default(),
            inner: Mutex::new(Inner {
                groups: ShareGroups::default(),
                sessions: ShareSessions::new(max_sessions),
                partitions: HashMap::new(),
                last_prune: now,
            }),
        }
    }

    /// Cluster mode: share-partitions are owned under share leases from
    /// now on (see the module's documentation); `stopping` turns true at
    /// shutdown.
    pub(crate) fn join_cluster(
        self: &Arc<Self>,
        catalog: Arc<dyn SharedCatalog>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) {
        let _ = self.cluster.set(ClusterLink {
            catalog,
            me: Arc::downgrade(self),
            stopping,
        });
    }

    /// Whether share-partitions are owned under leases (cluster mode).
    pub(crate) fn in_cluster(&self) -> bool {
        self.cluster.get().is_some()
    }

    /// The share lease this broker serves `topic_id`'s `partition` under:
    /// `Ok(None)` on one node (it owns everything); in a cluster, the
    /// lease if it holds it at the epoch it loaded the state at, else
    /// NOT_LEADER_OR_FOLLOWER (and it starts following the topic's
    /// leases, so the partition's leader takes the lease).
    pub(crate) fn lease_for(
        &self,
        topic_id: &Uuid,
        partition: i32,
    ) -> Result<Option<Lease>, ResponseError> {
        let Some(link) = self.cluster.get() else {
            return Ok(None);
        };
        let topic = self
            .topics
            .topic_by_id(topic_id)
            .ok_or(ResponseError::UnknownTopicId)?;
        self.follow_topic(link, &topic.name, topic.partition_count());
        let name = share_lease(&topic.name);
        let loaded = lock_map(&self.loaded)
            .get(&topic.name)
            .and_then(|m| m.get(&partition).copied());
        match (loaded, link.catalog.coordinator_epoch(&name, partition)) {
            (Some(l), Some(e)) if l == e => Ok(Some(Lease {
                topic: name,
                partition,
                epoch: e,
            })),
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }

    /// Starts (once per topic and partition count) holding the share
    /// leases of `topic`'s partitions that fall to this broker and loading
    /// their state as they come.
    fn follow_topic(&self, link: &ClusterLink, topic: &str, partitions: i32) {
        {
            let mut f = lock_map(&self.followed);
            if f.get(topic) == Some(&partitions) {
                return;
            }
            let first = f.insert(topic.to_string(), partitions).is_none();
            let held = link
                .catalog
                .lead_coordinators(&share_lease(topic), partitions);
            if !first {
                return;
            }
            let (Some(held), Some(me)) = (held, link.me.upgrade()) else {
                return;
            };
            let mut stopping = link.stopping.clone();
            crate::leases::follow(
                Arc::new(TopicLeases {
                    shares: me,
                    topic: topic.to_string(),
                }),
                held,
                async move {
                    let _ = stopping.wait_for(|s| *s).await;
                },
            );
        }
    }

    /// Cluster mode: this broker took the share lease of `topic`'s
    /// partition `p` at `epoch`; reads every group's state of the
    /// partition back from `__share_group_state` (its offsets reread
    /// first, so whatever the former owner committed is seen) and owns
    /// it from then on.
    async fn load_partition(&self, topic: &str, p: i32, epoch: i64) -> Result<(), BrokerError> {
        self.forget_partition(topic, p);
        let Some(id) = self.topics.topic(topic).map(|t| t.id) else {
            lock_map(&self.loaded)
                .entry(topic.to_string())
                .or_default()
                .insert(p, epoch);
            return Ok(());
        };
        let log = self
            .replay_state(|k| k.topic_id == id && k.partition == p)
            .await?;
        let mut inner = self.lock();
        for (key, ks) in log.states {
            inner.partitions.insert(key, Entry::replayed(&ks));
        }
        lock_map(&self.loaded)
            .entry(topic.to_string())
            .or_default()
            .insert(p, epoch);
        drop(inner);
        info!(topic, partition = p, epoch, "share-partitions loaded");
        // What was in flight with the former owner is available again.
        self.notify_released();
        Ok(())
    }

    /// Cluster mode: the share lease of `topic`'s partition `p` went; its
    /// state is the next owner's now.
    fn forget_partition(&self, topic: &str, p: i32) {
        if let Some(m) = lock_map(&self.loaded).get_mut(topic) {
            m.remove(&p);
        }
        let Some(id) = self.topics.topic(topic).map(|t| t.id) else {
            return;
        };
        self.lock()
            .partitions
            .retain(|k, _| !(k.topic_id == id && k.partition == p));
    }

    /// Replays `__share_group_state` for the keys `wanted` keeps, each
    /// partition's offsets reread first (another broker may have written).
    async fn replay_state(
        &self,
        wanted: impl Fn(&ShareKey) -> bool,
    ) -> Result<StateLog, BrokerError> {
        let mut log = StateLog::default();
        let Some(topic) = self.topics.topic(SHARE_STATE_TOPIC) else {
            return Ok(log);
        };
        let mut skipped = 0usize;
        for p in 0..topic.partition_count() {
            if let Some(l) = topic.partition(p) {
                l.current_offsets().await?;
            }
            for (offset, (key, value)) in self.topics.read_records_at(SHARE_STATE_TOPIC, p).await? {
                let Some(key) = key else {
                    skipped += 1;
                    continue;
                };
                if !log.replay(p, offset, &key, value.as_ref()) {
                    skipped += 1;
                }
            }
        }
        if skipped > 0 {
            warn!(
                skipped,
                "{SHARE_STATE_TOPIC} held records that do not decode"
            );
        }
        log.states.retain(|k, _| wanted(k));
        Ok(log)
    }

    /// Cluster mode: the share-partitions of `group` as their owners last
    /// persisted them (DescribeShareGroupOffsets at the group coordinator,
    /// which does not own them); `None` if the group is unknown. Asked
    /// for every partition, it also lists those assigned but without
    /// state, as [`Shares::offsets`] does: the coordinator holds the
    /// assignment (restored from `__consumer_offsets` when it moves).
    pub(crate) async fn persisted_offsets(
        &self,
        group: &str,
        wanted: Option<&[TopicIdPartition]>,
    ) -> Result<Option<BTreeMap<TopicIdPartition, PartitionOffsets>>, BrokerError> {
        let log = self.replay_state(|k| k.group_id == group).await?;
        let assigned = {
            let mut inner = self.lock();
            self.restore_membership(&mut inner, Some(group));
            if !inner.groups.contains(group) && log.states.is_empty() {
                return Ok(None);
            }
            inner.groups.assigned_partitions(group)
        };
        let states: HashMap<TopicIdPartition, SharePartition> = log
            .states
            .into_iter()
            .map(|(k, ks)| {
                (
                    (k.topic_id, k.partition),
                    SharePartition::from_persisted(&ks.state),
                )
            })
            .collect();
        let read_committed = self.group_settings(group).read_committed;
        let tps: BTreeSet<TopicIdPartition> = match wanted {
            Some(w) => w.iter().copied().collect(),
            None => states
                .keys()
                .copied()
                .chain(
                    assigned
                        .iter()
                        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p))),
                )
                .collect(),
        };
        Ok(Some(
            tps.into_iter()
                .map(|tp| {
                    (
                        tp,
                        self.describe_partition(&tp, states.get(&tp), read_committed),
                    )
                })
                .collect(),
        ))
    }

    /// One share-partition's offsets against its log's end.
    fn describe_partition(
        &self,
        tp: &TopicIdPartition,
        sp: Option<&SharePartition>,
        read_committed: bool,
    ) -> PartitionOffsets {
        let Some(sp) = sp else {
            return PartitionOffsets {
                start_offset: -1,
                lag: -1,
            };
        };
        let end = self
            .topics
            .topic_by_id(&tp.0)
            .and_then(|t| t.partition(tp.1).map(|l| l.offsets()))
            .map(|o| {
                if read_committed {
                    o.last_stable
                } else {
                    o.high_watermark
                }
            });
        PartitionOffsets {
            start_offset: sp.start_offset(),
            lag: end.map_or(-1, |end| sp.lag(end)),
        }
    }

    /// Wakes parked ShareFetches: records became acquirable again.
    fn notify_released(&self) {
        self.released.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Watches for records becoming acquirable again without an append.
    pub(crate) fn released_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.released.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock is a bug; the state is still the best we
        // have, so keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replays `__share_group_state`, if it exists (on one node; in a
    /// cluster each partition's state is loaded with its share lease),
    /// and rebuilds the groups' membership from `__consumer_offsets`.
    pub async fn load(&self) -> Result<(), BrokerError> {
        if self.in_cluster() {
            return Ok(());
        }
        let log = self.replay_state(|_| true).await?;
        let mut inner = self.lock();
        self.restore_membership(&mut inner, None);
        for (key, ks) in log.states {
            inner.groups.ensure(&key.group_id);
            inner.partitions.insert(key, Entry::replayed(&ks));
        }
        info!(
            share_partitions = inner.partitions.len(),
            groups = inner.groups.list().len(),
            "loaded share group state"
        );
        Ok(())
    }

    /// Rebuilds the membership of the groups (all, or `group` only) that
    /// the group coordinator loaded from `__consumer_offsets` since the
    /// last call: at start-up, and in a cluster when it took a partition's
    /// lease. In a cluster, first forgets the groups of the partitions
    /// whose lease went, as Kafka unloads a partition it resigns: their
    /// members are the new coordinator's to expire. Also marks for a
    /// whole rewrite the groups whose last write failed.
    fn restore_membership(&self, inner: &mut Inner, group: Option<&str>) {
        for g in std::mem::take(&mut *lock_map(&self.failed)) {
            inner.groups.invalidate(&g);
        }
        let (dropped, loaded) = self.groups.take_share_records(group);
        if !dropped.is_empty() {
            let gone: Vec<String> = inner
                .groups
                .list()
                .into_iter()
                .map(|(g, _)| g)
                .filter(|g| dropped.contains(&self.groups.offsets_partition(g)))
                .collect();
            for g in gone {
                inner.groups.forget(&g);
            }
        }
        if loaded.is_empty() {
            return;
        }
        let topics = crate::groups::topic_metas(&self.topics);
        let now = self.clock.now_ms();
        for (g, records) in loaded {
            inner.groups.restore(&g, records, &topics, now);
        }
    }

    /// Appends the changed groups' membership records; answers the waits
    /// for their durability. A failed write has the group's records
    /// written whole at its next change.
    fn persist_membership(&self, inner: &mut Inner) -> Vec<Durable> {
        inner
            .groups
            .take_changes()
            .into_iter()
            .map(|(group, kvs)| {
                let wait = self.groups.write_share_records(&group, kvs);
                let failed = self.failed.clone();
                let wait: Durable = Box::pin(async move {
                    wait.await.map_err(|e| {
                        warn!(error = %e, group, "share group membership not written");
                        lock_map(&failed).insert(group);
                        match e {
                            BrokerError::Log(e) => e,
                            e => LogError::Internal {
                                reason: e.to_string(),
                            },
                        }
                    })
                });
                wait
            })
            .collect()
    }

    /// Whether `group_id` is a share group.
    pub fn contains(&self, group_id: &str) -> bool {
        let mut inner = self.lock();
        self.restore_membership(&mut inner, Some(group_id));
        inner.groups.contains(group_id)
    }

    /// Every share group: id and state.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        let mut inner = self.lock();
        self.restore_membership(&mut inner, None);
        inner.groups.list()
    }

    /// The group as ShareGroupDescribe shows it.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let mut inner = self.lock();
        self.restore_membership(&mut inner, Some(group_id));
        inner.groups.describe(group_id)
    }

    /// The group's effective settings.
    pub fn group_settings(&self, group_id: &str) -> ShareGroupSettings {
        share_settings(
            &self.topics.settings(),
            &self.topics.group_configs(group_id),
        )
    }

    /// ShareGroupHeartbeat; the waits are for the membership records and
    /// what a departing member released.
    pub fn heartbeat(&self, hb: &Heartbeat) -> (HeartbeatAnswer, Vec<Durable>) {
        let topics = crate::groups::topic_metas(&self.topics);
        let gs = self.group_settings(&hb.group_id);
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        self.restore_membership(&mut inner, Some(&hb.group_id));
        let answer = inner.groups.heartbeat(hb, &topics, &gs.membership, now);
        // The answer follows the membership's durability: a member must
        // not act on an epoch a restart would forget.
        let mut waits = self.persist_membership(&mut inner);
        if answer.error != 0 {
            return (answer, waits);
        }
        if hb.member_epoch == -1 {
            // What a departed member held goes back to the others.
            inner.sessions.remove(&hb.group_id, &hb.member_id);
            waits.extend(self.release(&mut inner, &hb.group_id, &hb.member_id));
            return (answer, waits);
        }
        // A share-partition is created at its first fetch
        // ([`Shares::acquire`]), not here.
        (answer, waits)
    }

    fn release(&self, inner: &mut Inner, group: &str, member: &str) -> Vec<Durable> {
        let cfg = self.group_settings(group).partition;
        let keys: Vec<ShareKey> = inner
            .partitions
            .iter_mut()
            .filter(|(k, _)| k.group_id == group)
            .filter_map(|(k, e)| e.sp.release_member(member, &cfg).then(|| k.clone()))
            .collect();
        let waits: Vec<Durable> = keys.iter().filter_map(|k| self.persist(inner, k)).collect();
        if !waits.is_empty() {
            self.notify_released();
        }
        waits
    }

    /// Creates the share-partition of `key`, starting where
    /// `share.auto.offset.reset` says, and persists it. `by_time`: for
    /// `by_duration`, the first offset at or after that age, looked up
    /// beforehand (`None`: no such record, start at the latest).
    fn initialize(
        &self,
        inner: &mut Inner,
        key: ShareKey,
        gs: &ShareGroupSettings,
        now: i64,
        by_time: Option<i64>,
    ) -> Option<Durable> {
        let log = self
            .topics
            .topic_by_id(&key.topic_id)
            .and_then(|t| t.partition(key.partition).cloned())?;
        let o = log.offsets();
        let latest = if gs.read_committed {
            o.last_stable
        } else {
            o.high_watermark
        };
        let start = match gs.offset_reset {
            OffsetReset::Earliest => o.log_start,
            OffsetReset::Latest => latest,
            OffsetReset::ByDuration(_) => by_time.unwrap_or(latest),
        };
        let entry = self.new_entry(&key, start, now);
        inner.partitions.insert(key.clone(), entry);
        self.write_snapshot(inner, &key)
    }

    /// A new share-partition starting at `start`. Until its first snapshot
    /// is written, pruning keeps its state partition whole.
    fn new_entry(&self, key: &ShareKey, start: i64, now: i64) -> Entry {
        Entry {
            sp: SharePartition::new(start),
            snapshot_epoch: -1,
            create_timestamp: now,
            updates_since_snapshot: 0,
            snapshot_at: (self.state_partition(key), 0),
        }
    }

    /// Appends what changed in `key`'s state: an update, or a snapshot
    /// every `snapshot_every` updates.
    fn persist(&self, inner: &mut Inner, key: &ShareKey) -> Option<Durable> {
        let every = self.settings.snapshot_every;
        let entry = inner.partitions.get_mut(key)?;
        if entry.updates_since_snapshot >= every {
            return self.write_snapshot(inner, key);
        }
        let u = entry.sp.take_update()?;
        entry.updates_since_snapshot += 1;
        let value = encode_update(&Update {
            snapshot_epoch: entry.snapshot_epoch,
            leader_epoch: crate::LEADER_EPOCH,
            start_offset: u.start_offset,
            delivery_complete_count: i32::try_from(u.delivery_complete_count).unwrap_or(i32::MAX),
            batches: u.batches,
        });
        self.append(key, false, Some(value)).map(|(_, w)| w)
    }

    fn write_snapshot(&self, inner: &mut Inner, key: &ShareKey) -> Option<Durable> {
        let entry = inner.partitions.get_mut(key)?;
        let value = self.snapshot_value(entry);
        let (at, wait) = self.append(key, true, Some(value))?;
        if let (Some(at), Some(e)) = (at, inner.partitions.get_mut(key)) {
            e.snapshot_at = at;
        }
        Some(wait)
    }

    /// The next snapshot of `entry`'s state (counted as written).
    fn snapshot_value(&self, entry: &mut Entry) -> Bytes {
        let state = entry.sp.snapshot();
        entry.snapshot_epoch += 1;
        entry.updates_since_snapshot = 0;
        let complete = entry.sp.delivery_complete_count();
        encode_snapshot(&Snapshot {
            snapshot_epoch: entry.snapshot_epoch,
            state_epoch: state.state_epoch,
            leader_epoch: crate::LEADER_EPOCH,
            start_offset: state.start_offset,
            create_timestamp: entry.create_timestamp,
            write_timestamp: self.clock.now_ms(),
            delivery_complete_count: i32::try_from(complete).unwrap_or(i32::MAX),
            batches: state.batches,
        })
    }

    /// The `__share_group_state` partition of `key`.
    fn state_partition(&self, key: &ShareKey) -> i32 {
        let n = self
            .topics
            .topic(SHARE_STATE_TOPIC)
            .map_or(self.settings.state_partitions, |t| t.partition_count());
        key.state_partition(n)
    }

    /// Appends one record for `key` ([`Shares::append_records`]).
    fn append(
        &self,
        key: &ShareKey,
        snapshot: bool,
        value: Option<Bytes>,
    ) -> Option<(Option<(i32, i64)>, Durable)> {
        self.append_records(key, vec![(Some(encode_key(key, snapshot)), value)], false)
    }

    /// Appends records of `key`; returns where the first went (when
    /// known at once) and the wait for their durability. A failed append
    /// is logged: the state in memory stays, and the next change of the
    /// key tries again. In a cluster the records go in only under the
    /// share lease this broker loaded the key's partition at (without
    /// it, nothing is written and the wait fails), or, `superseding`,
    /// superseding whoever holds that lease.
    fn append_records(
        &self,
        key: &ShareKey,
        records: Vec<internal_log::KeyValue>,
        superseding: bool,
    ) -> Option<(Option<(i32, i64)>, Durable)> {
        if let Err(e) = self.ensure_topic() {
            warn!(error = %e, "cannot create {SHARE_STATE_TOPIC}");
            return None;
        }
        let p = self.state_partition(key);
        let to_log_error = |e: BrokerError| match e {
            BrokerError::Log(e) => e,
            e => LogError::Internal {
                reason: e.to_string(),
            },
        };
        if self.in_cluster() {
            let lease_name = self
                .topics
                .topic_by_id(&key.topic_id)
                .map(|t| share_lease(&t.name));
            let appending = match (superseding, lease_name) {
                (true, Some(name)) => Ok(self.topics.append_fenced(
                    SHARE_STATE_TOPIC,
                    p,
                    records,
                    Guard::Superseding(&name, key.partition),
                )),
                (true, None) => Err(ResponseError::UnknownTopicId),
                (false, _) => self.lease_for(&key.topic_id, key.partition).map(|lease| {
                    self.topics.append_fenced(
                        SHARE_STATE_TOPIC,
                        p,
                        records,
                        Guard::Fenced(lease.as_ref()),
                    )
                }),
            };
            let wait: Durable = match appending {
                Ok(appending) => Box::pin(async move { appending.await.map_err(to_log_error) }),
                Err(e) => Box::pin(std::future::ready(Err(LogError::Internal {
                    reason: format!("share-partition state not written: {e}"),
                }))),
            };
            return Some((None, wait));
        }
        match self.topics.append_now(SHARE_STATE_TOPIC, p, records, None) {
            Ok(a) => {
                let durable = a.durable;
                let wait: Durable = Box::pin(async move { durable.await.map_err(to_log_error) });
                Some((Some((p, a.base_offset)), wait))
            }
            Err(e) => {
                warn!(group = %key.group_id, error = %e, "share-partition state not written");
                None
            }
        }
    }

    fn ensure_topic(&self) -> Result<(), BrokerError> {
        if self.topics.topic(SHARE_STATE_TOPIC).is_some() {
            return Ok(());
        }
        // Kafka's settings: delete policy, kept forever, pruned by the
        // coordinator (a compacted topic would drop updates behind the
        // snapshot they apply to).
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "delete".to_string()),
            ("retention.ms".to_string(), "-1".to_string()),
            (
                "segment.bytes".to_string(),
                self.settings.segment_bytes.to_string(),
            ),
        ]);
        match self.topics.create_topic(
            SHARE_STATE_TOPIC,
            self.settings.state_partitions,
            1,
            Vec::new(),
            configs,
            false,
        ) {
            Ok(_) | Err(BrokerError::TopicExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs `f` on the share sessions.
    pub fn sessions<T>(&self, f: impl FnOnce(&mut ShareSessions) -> T) -> T {
        f(&mut self.lock().sessions)
    }

    /// The member's share session closed: what it holds goes back.
    pub fn close_session(&self, group: &str, member: &str) -> Vec<Durable> {
        let mut inner = self.lock();
        self.release(&mut inner, group, member)
    }

    /// Applies `member`'s acknowledgements for one partition: error code
    /// and message, and the wait for their durability.
    pub fn acknowledge(
        &self,
        group: &str,
        member: &str,
        tp: TopicIdPartition,
        acks: &[AckBatch],
    ) -> (i16, Option<String>, Option<Durable>) {
        let cfg = self.group_settings(group).partition;
        let key = ShareKey {
            group_id: group.to_string(),
            topic_id: tp.0,
            partition: tp.1,
        };
        if let Err(e) = self.lease_for(&tp.0, tp.1) {
            return (e.code(), Some(not_owner(e)), None);
        }
        let mut inner = self.lock();
        let Some(entry) = inner.partitions.get_mut(&key) else {
            let e = if self.topics.topic_by_id(&tp.0).is_none() {
                ResponseError::UnknownTopicId
            } else {
                ResponseError::InvalidRecordState
            };
            return (
                e.code(),
                Some("no records of this partition are in flight".into()),
                None,
            );
        };
        let now = self.clock.now_ms();
        entry.sp.expire_locks(&cfg, now);
        let result = entry.sp.acknowledge(member, acks, &cfg, now);
        // Persist lock expiry even when the acknowledgement was refused.
        let wait = self.persist(&mut inner, &key);
        if wait.is_some() {
            self.notify_released();
        }
        match result {
            Ok(()) => (0, None, wait),
            Err(e) => (e.code().code(), Some(e.to_string()), wait),
        }
    }

    /// Acquires records of one partition for `member` within `budget`.
    pub async fn acquire(
        &self,
        group: &str,
        member: &str,
        tp: TopicIdPartition,
        budget: &mut FetchBudget,
    ) -> PartitionFetch {
        let failed = |e: ResponseError| PartitionFetch {
            error: error_code(e),
            ..PartitionFetch::default()
        };
        let gs = self.group_settings(group);
        let cfg = gs.partition;
        let Some(topic) = self.topics.topic_by_id(&tp.0) else {
            return failed(ResponseError::UnknownTopicId);
        };
        let Some(log) = topic.partition(tp.1).cloned() else {
            return failed(ResponseError::UnknownTopicOrPartition);
        };
        let lease = match self.lease_for(&tp.0, tp.1) {
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        let key = ShareKey {
            group_id: group.to_string(),
            topic_id: tp.0,
            partition: tp.1,
        };
        let now = self.clock.now_ms();
        // A new share-partition reset by duration starts at the first
        // offset of that age: looked up before the lock is taken, since
        // the lookup may be a query (the cluster's index in PostgreSQL).
        // A failed lookup fails this fetch (the consumer retries) rather
        // than start the partition at the latest offset for good.
        let by_time = match gs.offset_reset {
            OffsetReset::ByDuration(d) if !self.lock().partitions.contains_key(&key) => {
                match log.offset_for_timestamp(now.saturating_sub(d)).await {
                    Ok(found) => found.map(|t| t.offset),
                    Err(e) => return failed(BrokerError::from(e).code()),
                }
            }
            _ => None,
        };
        let (from, end, limit) = {
            let mut inner = self.lock();
            if !inner.partitions.contains_key(&key) {
                if lease.is_none() {
                    // On one node the coordinator is the owner: the group
                    // exists where its state is.
                    inner.groups.ensure(group);
                }
                // The first fetch resolves where the partition starts.
                let _ = self.initialize(&mut inner, key.clone(), &gs, now, by_time);
            }
            let Some(entry) = inner.partitions.get_mut(&key) else {
                return failed(ResponseError::UnknownServerError);
            };
            let offsets = log.offsets();
            let mut changed = entry.sp.advance_log_start(offsets.log_start);
            changed |= entry.sp.expire_locks(&cfg, now);
            let (limit, end) = if gs.read_committed {
                (ReadLimit::LastStable, offsets.last_stable)
            } else {
                (ReadLimit::HighWatermark, offsets.high_watermark)
            };
            let from = entry.sp.next_fetch_offset(&cfg).filter(|f| *f < end);
            if changed {
                // Start offset moves and expiries; nobody waits for them.
                let _ = self.persist(&mut inner, &key);
            }
            (from, end, limit)
        };
        let mut out = PartitionFetch::default();
        let Some(from) = from.filter(|_| budget.records > 0) else {
            return out;
        };
        // Read outside the lock: another engine's reads go over the
        // network. Acquisition below takes only what is still available.
        let read = log.read(from, budget.bytes.max(1), limit).await;
        let r = match read {
            Ok(r) => r,
            Err(e) => {
                warn!(group, topic = %topic.name, partition = tp.1, error = %e, "share fetch read failed");
                out.error = crate::error::log_error_code(&e);
                return out;
            }
        };
        let aborted = if gs.read_committed {
            log.aborted_transactions(from, end)
        } else {
            Vec::new()
        };
        let batches: Vec<(usize, usize, LogBatch)> = weir_log::batch::iter_batches(&r.records)
            .map(|(pos, h)| {
                let aborted = h.is_transactional()
                    && aborted.iter().any(|a| {
                        a.producer_id == h.producer_id
                            && a.first_offset <= h.base_offset
                            && h.base_offset < a.last_offset
                    });
                let len = h.total_size().unwrap_or(0);
                let b = LogBatch {
                    first: h.base_offset,
                    last: h.last_offset(),
                    skip: h.is_control() || aborted,
                };
                (pos, pos + len, b)
            })
            .collect();
        let logged: Vec<LogBatch> = batches.iter().map(|b| b.2).collect();
        let mut inner = self.lock();
        // The lease may have gone while reading: its state is no longer
        // this broker's to change.
        if lease.is_some() && self.lease_for(&tp.0, tp.1).ok().flatten() != lease {
            return failed(ResponseError::NotLeaderOrFollower);
        }
        let Some(entry) = inner.partitions.get_mut(&key) else {
            return out;
        };
        let now = self.clock.now_ms();
        let acquired = entry
            .sp
            .acquire(member, &logged, budget.records, budget.mode, &cfg, now);
        let overlaps = |b: &LogBatch| {
            acquired
                .iter()
                .any(|a| a.first <= b.last && b.first <= a.last)
        };
        let lo = batches.iter().find(|b| overlaps(&b.2)).map(|b| b.0);
        let hi = batches.iter().rev().find(|b| overlaps(&b.2)).map(|b| b.1);
        if let (Some(lo), Some(hi)) = (lo, hi) {
            out.records = r.records.slice(lo..hi);
        }
        let n: i64 = acquired.iter().map(|a| a.last - a.first + 1).sum();
        budget.records -= n;
        budget.bytes = budget.bytes.saturating_sub(out.records.len());
        out.acquired = acquired;
        // Acquisitions are not persisted, but what acquiring archived
        // (control batches, aborted records) is.
        let _ = self.persist(&mut inner, &key);
        out
    }

    /// Puts partitions that returned records at the back of the member's
    /// session.
    pub fn served(&self, group: &str, member: &str, with_records: &[TopicIdPartition]) {
        self.lock().sessions.served(group, member, with_records);
    }

    /// The share-partitions of a group: `(topic id, partition)` to offsets,
    /// for the partitions asked for (`None`: every one with state).
    pub fn offsets(
        &self,
        group: &str,
        wanted: Option<&[TopicIdPartition]>,
    ) -> Option<BTreeMap<TopicIdPartition, PartitionOffsets>> {
        let read_committed = self.group_settings(group).read_committed;
        let inner = self.lock();
        if !inner.groups.contains(group) {
            return None;
        }
        let describe = |tp: &TopicIdPartition, e: Option<&Entry>| {
            self.describe_partition(tp, e.map(|e| &e.sp), read_committed)
        };
        let key = |tp: &TopicIdPartition| ShareKey {
            group_id: group.to_string(),
            topic_id: tp.0,
            partition: tp.1,
        };
        Some(match wanted {
            Some(tps) => tps
                .iter()
                .map(|tp| (*tp, describe(tp, inner.partitions.get(&key(tp)))))
                .collect(),
            None => {
                let mut all: BTreeMap<TopicIdPartition, PartitionOffsets> = inner
                    .partitions
                    .iter()
                    .filter(|(k, _)| k.group_id == group)
                    .map(|(k, e)| {
                        let tp = (k.topic_id, k.partition);
                        (tp, describe(&tp, Some(e)))
                    })
                    .collect();
                // A partition assigned but not fetched yet has no state,
                // and is listed as Kafka lists one whose state is
                // initialized without a start offset: -1.
                for (topic, parts) in inner.groups.assigned_partitions(group) {
                    for p in parts {
                        all.entry((topic, p))
                            .or_insert_with(|| describe(&(topic, p), None));
                    }
                }
                all
            }
        })
    }

    /// AlterShareGroupOffsets, DeleteShareGroupOffsets or the deletion of
    /// a share group (see [`Rewrite`]); the group must have no members
    /// (NON_EMPTY_GROUP) and exist (GROUP_ID_NOT_FOUND). Answers the waits
    /// for the new state to be durable.
    ///
    /// On one node the state is in memory and changes at once. In a
    /// cluster the group coordinator rewrites state that the
    /// share-partitions' owners hold: it starts from what they persisted
    /// and appends each key's new records superseding the key's share
    /// lease, so the owner's in-flight state writes are refused and it
    /// loads the state again before it serves the partition (no request
    /// between brokers, whichever broker owns what).
    pub async fn rewrite(
        &self,
        group: &str,
        change: Rewrite<'_>,
    ) -> Result<Vec<Durable>, ResponseError> {
        let persisted = if self.in_cluster() {
            let log = self
                .replay_state(|k| k.group_id == group)
                .await
                .map_err(|e| {
                    warn!(group, error = %e, "cannot read share group state");
                    ResponseError::CoordinatorNotAvailable
                })?;
            Some(log.states)
        } else {
            None
        };
        let mut inner = self.lock();
        self.restore_membership(&mut inner, Some(group));
        // In a cluster a group whose coordinator moved is known by its
        // persisted state until a member joins again.
        let known =
            inner.groups.contains(group) || persisted.as_ref().is_some_and(|p| !p.is_empty());
        if !known {
            return Err(ResponseError::GroupIdNotFound);
        }
        if inner.groups.has_members(group) {
            return Err(ResponseError::NonEmptyGroup);
        }
        if let Rewrite::DeleteGroup = change {
            if inner.groups.contains(group) {
                inner.groups.delete(group)?;
            }
            inner.sessions.remove_group(group);
            // Kafka tombstones the group's records before its share state.
            for w in self.persist_membership(&mut inner) {
                internal_log::detach("share group removal", Box::pin(async move { Ok(w.await?) }));
            }
        }
        let mut prior: HashMap<ShareKey, Entry> = match persisted {
            Some(states) => states
                .iter()
                .map(|(k, ks)| (k.clone(), Entry::replayed(ks)))
                .collect(),
            None => {
                let keys: Vec<ShareKey> = inner
                    .partitions
                    .keys()
                    .filter(|k| k.group_id == group)
                    .cloned()
                    .collect();
                keys.into_iter()
                    .filter_map(|k| inner.partitions.remove_entry(&k))
                    .collect()
            }
        };
        let changes: Vec<(ShareKey, Option<i64>)> = match change {
            Rewrite::Alter(offsets) => offsets
                .iter()
                .map(|&(tp, o)| {
                    (
                        ShareKey {
                            group_id: group.to_string(),
                            topic_id: tp.0,
                            partition: tp.1,
                        },
                        Some(o),
                    )
                })
                .collect(),
            Rewrite::DeleteTopics(ids) => prior
                .keys()
                .filter(|k| ids.contains(&k.topic_id))
                .map(|k| (k.clone(), None))
                .collect(),
            Rewrite::DeleteGroup => prior.keys().map(|k| (k.clone(), None)).collect(),
        };
        let now = self.clock.now_ms();
        let mut waits = Vec::new();
        for (key, start) in changes {
            let old = prior.remove(&key);
            let (entry, records) = match start {
                Some(o) => {
                    let mut e = old.unwrap_or_else(|| self.new_entry(&key, o, now));
                    e.sp.reset(o);
                    let value = self.snapshot_value(&mut e);
                    (Some(e), vec![(Some(encode_key(&key, true)), Some(value))])
                }
                None => (
                    None,
                    vec![
                        (Some(encode_key(&key, true)), None),
                        (Some(encode_key(&key, false)), None),
                    ],
                ),
            };
            let appended = self.append_records(&key, records, true);
            let mut at = None;
            if let Some((a, wait)) = appended {
                waits.push(wait);
                at = a;
            }
            // In a cluster the owner loads the new state; on one node it
            // is this broker's (and stays, as after any failed append).
            if let (Some(mut e), false) = (entry, self.in_cluster()) {
                if let Some(at) = at {
                    e.snapshot_at = at;
                }
                inner.partitions.insert(key, e);
            }
        }
        if !self.in_cluster() {
            // What the change left alone stays.
            inner.partitions.extend(prior);
        }
        Ok(waits)
    }

    /// Expires acquisition locks and silent members; now and then deletes
    /// state records no key needs. Call about every 100 ms.
    pub fn tick(&self) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        // Groups loaded with a lease get their session timers, and those
        // of a lease that went stop here.
        self.restore_membership(&mut inner, None);
        let departed = inner
            .groups
            .tick(now, |g| self.group_settings(g).membership);
        for (g, m) in departed {
            info!(group = %g, member = %m, "share group member session expired");
            inner.sessions.remove(&g, &m);
            let _ = self.release(&mut inner, &g, &m);
        }
        for w in self.persist_membership(&mut inner) {
            internal_log::detach(
                "share group membership",
                Box::pin(async move { Ok(w.await?) }),
            );
        }
        let mut configs: HashMap<String, crate::share_partition::ShareConfig> = HashMap::new();
        let mut expired = BTreeSet::new();
        for (k, e) in inner.partitions.iter_mut() {
            if e.sp.next_lock_expiry().is_some_and(|t| t <= now) {
                let cfg = configs
                    .entry(k.group_id.clone())
                    .or_insert_with(|| self.group_settings(&k.group_id).partition);
                if e.sp.expire_locks(cfg, now) {
                    expired.insert(k.clone());
                }
            }
        }
        for k in &expired {
            let _ = self.persist(&mut inner, k);
        }
        if !expired.is_empty() {
            self.notify_released();
        }
        if now - inner.last_prune >= self.settings.prune_interval_ms {
            inner.last_prune = now;
            if self.in_cluster() {
                self.prune_cluster();
            } else {
                self.prune(&inner);
            }
        }
    }

    /// Cluster mode: no broker knows every key's latest snapshot, so a
    /// broker holding share leases replays the whole topic and deletes,
    /// in each state partition, the records before the oldest latest
    /// snapshot of a live key. Safe whoever runs it and whenever: a
    /// record appended after the replay only lands above that point.
    fn prune_cluster(&self) {
        if lock_map(&self.loaded).values().all(BTreeMap::is_empty) {
            return;
        }
        let Some(me) = self.cluster.get().and_then(|l| l.me.upgrade()) else {
            return;
        };
        if me.pruning.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        internal_log::detach(
            "share state pruning",
            Box::pin(async move {
                let done = me.prune_replayed().await;
                me.pruning
                    .store(false, std::sync::atomic::Ordering::Release);
                if let Err(e) = done {
                    warn!(error = %e, "cannot prune {SHARE_STATE_TOPIC}");
                }
                Ok(())
            }),
        );
    }

    async fn prune_replayed(&self) -> Result<(), BrokerError> {
        let Some(topic) = self.topics.topic(SHARE_STATE_TOPIC) else {
            return Ok(());
        };
        let mut log = StateLog::default();
        let mut read_to: BTreeMap<i32, i64> = BTreeMap::new();
        for p in 0..topic.partition_count() {
            let Some(l) = topic.partition(p) else {
                continue;
            };
            // Taken before the read: everything below it is replayed.
            read_to.insert(p, l.current_offsets().await?.high_watermark);
            for (offset, (key, value)) in self.topics.read_records_at(SHARE_STATE_TOPIC, p).await? {
                if let Some(key) = key {
                    log.replay(p, offset, &key, value.as_ref());
                }
            }
        }
        for ks in log.states.values() {
            let (p, o) = ks.snapshot_at;
            if let Some(upto) = read_to.get_mut(&p) {
                *upto = (*upto).min(o);
            }
        }
        for (p, upto) in read_to {
            if let Some(l) = topic.partition(p) {
                if upto > l.offsets().log_start {
                    l.delete_records(upto).await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes, in each state partition, the records before the oldest
    /// snapshot any live key still needs.
    fn prune(&self, inner: &Inner) {
        let Some(topic) = self.topics.topic(SHARE_STATE_TOPIC) else {
            return;
        };
        let mut keep: BTreeMap<i32, i64> = BTreeMap::new();
        for e in inner.partitions.values() {
            let (p, o) = e.snapshot_at;
            keep.entry(p).and_modify(|m| *m = (*m).min(o)).or_insert(o);
        }
        for (p, log) in topic.logs() {
            // A partition no key lives in is wholly redundant.
            let upto = keep
                .get(&p)
                .copied()
                .unwrap_or(log.offsets().high_watermark);
            if upto > log.offsets().log_start {
                let log = log.clone();
                internal_log::detach(
                    "share state pruning",
                    Box::pin(async move {
                        if let Err(e) = log.delete_records(upto).await {
                            warn!(partition = p, error = %e, "cannot prune {SHARE_STATE_TOPIC}");
                        }
                        Ok(())
                    }),
                );
            }
        }
    }
}

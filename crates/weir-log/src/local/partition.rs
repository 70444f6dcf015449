//! One partition's log: the [`PartitionLog`] implementation.

use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use tokio::sync::watch;

use super::checkpoint;
use super::segment::{self, lock, Indexes, Segment};
use super::txn_index;
use super::{io_err, Deferred, Shared};
use crate::api::{
    AppendInfo, BoxFuture, LogOffsets, PartitionLog, ReadLimit, ReadResult, TimestampOffset,
    TopicPartition,
};
use crate::batch::{self, HEADER_SIZE};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::producer::{self, AbortedTxn, ProducerEntry, ProducerStates, Verdict};

/// Name of the per-partition leader epoch checkpoint.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Name of the per-partition log start offset file (DeleteRecords).
pub const LOG_START_FILE: &str = "log-start-offset";

const FLUSH_IDLE: u8 = 0;
const FLUSH_QUEUED: u8 = 1;
const FLUSH_RUNNING: u8 = 2;
const FLUSH_RERUN: u8 = 3;

/// The durable point, as published to `wait_durable` futures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    /// Every offset below this is on stable storage.
    pub(crate) offset: i64,
    /// An fsync failed; the partition accepts no more writes.
    pub(crate) failed: bool,
    /// The partition was removed or the engine shut down.
    pub(crate) closed: bool,
}

/// Who waits for durability, for the flusher's linger.
#[derive(Debug, Default)]
struct GroupCommit {
    /// Targets of `wait_durable` callers not yet released.
    pending: Vec<i64>,
    /// How many the last flush released.
    released: usize,
    /// Callers that started waiting since then.
    arrivals_since_release: usize,
}

/// Mutable state guarded by the partition's append lock.
#[derive(Debug)]
pub(crate) struct State {
    /// Segments by base offset; the last one is active. Replaced, never
    /// mutated in place, so readers can take a cheap snapshot.
    pub(crate) segments: Arc<Vec<Arc<Segment>>>,
    pub(crate) log_start: i64,
    pub(crate) log_end: i64,
    /// Producers' sequences and open transactions (idempotence, LSO).
    pub(crate) producers: ProducerStates,
    /// Aborted transactions of all segments, by marker offset (the
    /// in-memory copy of the `.txnindex` files).
    pub(crate) aborted: Vec<AbortedTxn>,
    /// A transaction index write failed: rewrite them all from `aborted`
    /// before the next snapshot vouches for them.
    pub(crate) txn_index_dirty: bool,
    /// Leader epoch cache: `(epoch, start offset)`, increasing.
    pub(crate) epochs: Vec<(i32, i64)>,
    /// Max timestamp of the active segment's first batch (Kafka's
    /// `rollingBasedTimestamp`); `-1` when empty or without timestamps.
    pub(crate) first_batch_ts: i64,
    /// Wall-clock time the active segment was created (or loaded).
    pub(crate) segment_created_ms: i64,
    /// A segment file was created or deleted since the last directory fsync.
    pub(crate) dir_dirty: bool,
    /// The partition directory itself was created and the data directory
    /// not fsynced since.
    pub(crate) parent_dirty: bool,
    /// The leader epoch cache changed and its checkpoint awaits the flusher.
    pub(crate) epochs_dirty: bool,
}

impl State {
    pub(crate) fn active(&self) -> &Arc<Segment> {
        // `segments` is never empty: opening creates a segment if none.
        &self.segments[self.segments.len() - 1]
    }

    pub(crate) fn offsets(&self) -> LogOffsets {
        let hw = self.log_end;
        let lso = self
            .producers
            .first_unstable()
            .map_or(hw, |l| l.clamp(self.log_start, hw));
        LogOffsets {
            log_start: self.log_start,
            high_watermark: hw,
            last_stable: lso,
            log_end: self.log_end,
        }
    }
}

/// A partition's log on local disk.
pub struct LocalPartition {
    me: Weak<LocalPartition>,
    tp: TopicPartition,
    dir: PathBuf,
    pub(crate) shared: Arc<Shared>,
    config: RwLock<Arc<LogConfig>>,
    pub(crate) state: Mutex<State>,
    end_tx: watch::Sender<i64>,
    durable_tx: watch::Sender<Durable>,
    removed: AtomicBool,
    failed: AtomicBool,
    flush_sched: AtomicU8,
    /// When the sync now queued or running was first asked for
    /// (`Shared::elapsed_ns`), for the queue-wait histogram.
    queued_at_ns: std::sync::atomic::AtomicU64,
    unflushed_msgs: AtomicI64,
    last_flush_ms: AtomicI64,
    /// Number of completed flushes that synced something (for tests and
    /// benchmarks: group commit shows as fewer flushes than appends).
    flushes: std::sync::atomic::AtomicU64,
    /// Group commit bookkeeping (see `linger`).
    group_commit: Mutex<GroupCommit>,
    group_commit_cv: std::sync::Condvar,
    /// Serializes cleaner passes on this partition.
    pub(crate) cleaning: Mutex<()>,
    /// Data directory generation at which this partition's directory was
    /// created (see `Shared::sync_data_dir`); 0 when it already existed.
    created_gen: u64,
}

impl std::fmt::Debug for LocalPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPartition")
            .field("tp", &self.tp)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Pieces recovery hands to [`LocalPartition::new`].
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) segments: Vec<Arc<Segment>>,
    pub(crate) log_start: i64,
    pub(crate) log_end: i64,
    pub(crate) epochs: Vec<(i32, i64)>,
    pub(crate) first_batch_ts: i64,
    /// Everything below this offset is known to be on stable storage.
    pub(crate) durable: i64,
    pub(crate) epochs_dirty: bool,
    pub(crate) dir_dirty: bool,
    pub(crate) parent_dirty: bool,
    pub(crate) created_gen: u64,
    pub(crate) producers: super::txn_index::Rebuilt,
}

impl LocalPartition {
    pub(crate) fn new(
        shared: Arc<Shared>,
        tp: TopicPartition,
        dir: PathBuf,
        config: LogConfig,
        loaded: Loaded,
    ) -> Arc<Self> {
        let now = shared.now_ms();
        let (end_tx, _) = watch::channel(loaded.log_end);
        let (durable_tx, _) = watch::channel(Durable {
            offset: loaded.durable,
            failed: false,
            closed: false,
        });
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            tp,
            dir,
            shared,
            config: RwLock::new(Arc::new(config)),
            state: Mutex::new(State {
                segments: Arc::new(loaded.segments),
                log_start: loaded.log_start,
                log_end: loaded.log_end,
                producers: loaded.producers.states,
                aborted: loaded.producers.aborted,
                txn_index_dirty: false,
                epochs: loaded.epochs,
                first_batch_ts: loaded.first_batch_ts,
                segment_created_ms: now,
                dir_dirty: loaded.dir_dirty,
                parent_dirty: loaded.parent_dirty,
                epochs_dirty: loaded.epochs_dirty,
            }),
            end_tx,
            durable_tx,
            removed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            flush_sched: AtomicU8::new(FLUSH_IDLE),
            queued_at_ns: std::sync::atomic::AtomicU64::new(0),
            unflushed_msgs: AtomicI64::new(i64::from(loaded.durable < loaded.log_end)),
            last_flush_ms: AtomicI64::new(now),
            flushes: std::sync::atomic::AtomicU64::new(0),
            group_commit: Mutex::new(GroupCommit::default()),
            group_commit_cv: std::sync::Condvar::new(),
            cleaning: Mutex::new(()),
            created_gen: loaded.created_gen,
        })
    }

    /// The partition's name.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current topic config.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes a producer state snapshot at the log end, after making the
    /// transaction indexes it vouches for durable (see `txn_index`).
    fn snapshot_producers(&self, st: &mut State) -> Result<(), LogError> {
        // Older segments' indexes were synced when they were active.
        let segs = st.segments.clone();
        let from = if st.txn_index_dirty {
            0
        } else {
            segs.len() - 1
        };
        for (i, seg) in segs.iter().enumerate().skip(from) {
            let path = txn_index::index_path(&self.dir, seg.base_offset());
            if st.txn_index_dirty {
                let end = segs.get(i + 1).map_or(i64::MAX, |s| s.base_offset());
                let mine: Vec<AbortedTxn> = st
                    .aborted
                    .iter()
                    .filter(|a| a.last_offset >= seg.base_offset() && a.last_offset < end)
                    .copied()
                    .collect();
                txn_index::write(&path, &mine)?;
            } else {
                txn_index::sync(&path)?;
            }
        }
        st.txn_index_dirty = false;
        txn_index::write_snapshot(&self.dir, &st.producers, st.log_end)
    }

    /// Every offset below this is fsynced.
    pub fn durable_offset(&self) -> i64 {
        self.durable_tx.borrow().offset
    }

    /// Number of flushes that synced data so far.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        lock(&self.state).segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        lock(&self.state)
            .segments
            .iter()
            .map(|s| s.base_offset())
            .collect()
    }

    /// Bytes of index memory currently loaded.
    pub fn index_memory(&self) -> usize {
        let segs = lock(&self.state).segments.clone();
        segs.iter().map(|s| s.index_memory()).sum()
    }

    /// The leader epoch cache, `(epoch, start offset)`.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        lock(&self.state).epochs.clone()
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    fn check_usable(&self) -> Result<(), LogError> {
        if self.removed.load(Ordering::Acquire) {
            return Err(LogError::Removed {
                partition: self.tp.to_string(),
            });
        }
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        if self.failed.load(Ordering::Acquire) {
            return Err(LogError::Failed {
                partition: self.tp.to_string(),
            });
        }
        Ok(())
    }

    fn interval(&self) -> u64 {
        self.config().index_interval_bytes
    }

    fn fail(&self, err: &std::io::Error) {
        tracing::error!(partition = %self.tp, error = %err, "I/O failure; partition is now read-only");
        self.failed.store(true, Ordering::Release);
        self.durable_tx.send_modify(|d| d.failed = true);
    }

    /// Marks the partition removed: operations fail from now on.
    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
        let st = lock(&self.state);
        for s in st.segments.iter() {
            s.release_resources();
        }
        drop(st);
        self.durable_tx.send_modify(|d| d.closed = true);
    }

    /// Releases resources when the engine is dropped without shutdown.
    pub(crate) fn detach(&self) {
        let st = lock(&self.state);
        for s in st.segments.iter() {
            s.release_resources();
        }
        drop(st);
        self.durable_tx.send_modify(|d| d.closed = true);
    }

    fn index_limits(config: &LogConfig) -> (usize, usize) {
        let bytes = usize::try_from(config.segment_index_bytes).unwrap_or(usize::MAX);
        (
            (bytes / super::index::OFFSET_ENTRY_SIZE).max(1),
            (bytes / super::index::TIME_ENTRY_SIZE).max(1),
        )
    }

    /// Whether the active segment must roll before taking `size` more bytes
    /// whose last offset is `last_offset` (Kafka's `shouldRoll`).
    fn should_roll(
        &self,
        st: &State,
        config: &LogConfig,
        size: u64,
        last_offset: i64,
        incoming_max_ts: i64,
        now: i64,
    ) -> Result<bool, LogError> {
        let active = st.active();
        let cur = active.size();
        if cur == 0 {
            return Ok(false);
        }
        let max_seg = config
            .segment_bytes
            .clamp(HEADER_SIZE as u64, i32::MAX as u64);
        if cur.saturating_add(size) > max_seg {
            return Ok(true);
        }
        // segment.ms, as Kafka: the incoming batch's timestamp against the
        // first batch's, or the segment's age when there is no timestamp.
        let waited = if st.first_batch_ts >= 0 {
            incoming_max_ts.saturating_sub(st.first_batch_ts)
        } else {
            now.saturating_sub(st.segment_created_ms)
        };
        if waited > config.segment_ms {
            return Ok(true);
        }
        if last_offset - active.base_offset() > i64::from(i32::MAX) {
            return Ok(true);
        }
        let (max_off, max_time) = Self::index_limits(config);
        let full = active
            .with_indexes(config.index_interval_bytes, |i| {
                i.offsets.len() >= max_off || i.times.len() >= max_time
            })
            .map_err(|e| io_err(&active.log_path(), e))?;
        Ok(full)
    }

    /// Rolls the active segment (caller holds the lock). The new segment
    /// starts at the log end.
    pub(crate) fn roll_locked(&self, st: &mut State) -> Result<(), LogError> {
        let old = st.active().clone();
        if old.size() == 0 {
            return Ok(());
        }
        // Kafka snapshots producer state at every roll, so a restart after
        // a crash replays at most the newest segment.
        self.snapshot_producers(st)?;
        let base = st.log_end;
        let path = self.dir.join(format!("{}.log", segment::file_stem(base)));
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        old.roll_off().map_err(|e| io_err(&old.log_path(), e))?;
        let seg = Segment::new(
            &self.dir,
            base,
            self.shared.new_segment_id(),
            self.shared.budget.clone(),
            0,
            true,
            Some(Indexes::empty()),
        );
        let mut segs: Vec<_> = st.segments.as_ref().clone();
        segs.push(seg);
        st.segments = Arc::new(segs);
        st.dir_dirty = true;
        st.first_batch_ts = -1;
        st.segment_created_ms = self.shared.now_ms();
        Ok(())
    }

    /// Scheduler tick: `flush.ms` and `segment.ms`.
    pub(crate) fn on_tick(&self, now: i64) {
        if self.is_removed() || self.failed.load(Ordering::Acquire) {
            return;
        }
        let config = self.config();
        if self.unflushed_msgs.load(Ordering::Acquire) > 0
            && now.saturating_sub(self.last_flush_ms.load(Ordering::Acquire)) >= config.flush_ms
        {
            self.request_flush();
        }
        let mut st = lock(&self.state);
        st.producers
            .expire(now, self.shared.config.producer_id_expiration_ms);
        // Background roll by age: a quiet active segment older than
        // segment.ms is rolled so retention can eventually remove it.
        if st.active().size() > 0 && now.saturating_sub(st.segment_created_ms) > config.segment_ms {
            if let Err(e) = self.roll_locked(&mut st) {
                tracing::warn!(partition = %self.tp, error = %e, "time-based roll failed");
            }
        }
    }

    fn request_flush(&self) {
        let Some(me) = self.me.upgrade() else { return };
        loop {
            match self.flush_sched.load(Ordering::Acquire) {
                FLUSH_IDLE => {
                    if self
                        .flush_sched
                        .compare_exchange(
                            FLUSH_IDLE,
                            FLUSH_QUEUED,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                    {
                        self.queued_at_ns
                            .store(self.shared.elapsed_ns(), Ordering::Release);
                        self.shared.queue_flush(me);
                        return;
                    }
                }
                FLUSH_RUNNING => {
                    if self
                        .flush_sched
                        .compare_exchange(
                            FLUSH_RUNNING,
                            FLUSH_RERUN,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                    {
                        self.queued_at_ns
                            .store(self.shared.elapsed_ns(), Ordering::Release);
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Called by a flusher thread for a queued partition. Returns the
    /// partition when it was asked to sync again meanwhile: the caller
    /// queues it again (see `Shared::requeue_flush`).
    pub(crate) fn run_scheduled_flush(self: Arc<Self>) -> Option<Arc<Self>> {
        self.flush_sched.store(FLUSH_RUNNING, Ordering::Release);
        let queued_at = self.queued_at_ns.load(Ordering::Acquire);
        let waited = self.shared.elapsed_ns().saturating_sub(queued_at);
        self.shared
            .stats
            .flush_queue_wait
            .observe(std::time::Duration::from_nanos(waited));
        if let Err(e) = self.flush_now() {
            tracing::error!(partition = %self.tp, error = %e, "flush failed");
        }
        if self
            .flush_sched
            .compare_exchange(
                FLUSH_RUNNING,
                FLUSH_IDLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return None;
        }
        // Someone asked again while we were syncing: their data may have
        // missed this fsync. Requesters seeing QUEUED leave it to us.
        self.flush_sched.store(FLUSH_QUEUED, Ordering::Release);
        Some(self)
    }

    /// Before syncing a partition again right after its last sync, with no
    /// other partition waiting: the producers that sync just released are
    /// about to append and wait again; give them a moment (until as many
    /// have come back as were released, at most `group_commit_linger_us`)
    /// so that the next fsync covers them too instead of producers
    /// splitting into alternating cohorts.
    pub(crate) fn linger(&self) {
        let max = self.shared.config.group_commit_linger_us;
        if max == 0 {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_micros(max);
        let mut gc = lock(&self.group_commit);
        while gc.arrivals_since_release < gc.released {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            gc = self
                .group_commit_cv
                .wait_timeout(gc, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A `wait_durable` caller is about to wait for `target`.
    fn register_waiter(&self, target: i64) {
        let mut gc = lock(&self.group_commit);
        gc.pending.push(target);
        gc.arrivals_since_release += 1;
        if gc.arrivals_since_release >= gc.released {
            self.group_commit_cv.notify_one();
        }
    }

    /// The durable offset reached `end`: count and forget the waiters it
    /// releases.
    fn release_waiters(&self, end: i64) {
        let mut gc = lock(&self.group_commit);
        let before = gc.pending.len();
        gc.pending.retain(|&t| t > end);
        gc.released = before - gc.pending.len();
        gc.arrivals_since_release = 0;
    }

    /// Makes everything appended so far durable: fdatasync of every segment
    /// with unsynced bytes (oldest first), index files of rolled segments,
    /// the directory when files were created or removed. Does not hold the
    /// append lock while syncing.
    pub fn flush_now(&self) -> Result<(), LogError> {
        if self.is_removed() {
            return Ok(());
        }
        let (segs, end, dir_dirty, parent_dirty, epochs) = {
            let mut st = lock(&self.state);
            let end = st.log_end;
            let mut segs = Vec::new();
            for s in st.segments.iter().rev() {
                let size = s.size();
                if s.flushed() < size || (!s.is_active() && !s.index_synced()) {
                    segs.push((s.clone(), size));
                } else if !s.is_active() {
                    break;
                }
            }
            segs.reverse();
            let dd = std::mem::take(&mut st.dir_dirty);
            let pd = std::mem::take(&mut st.parent_dirty);
            let epochs = std::mem::take(&mut st.epochs_dirty).then(|| st.epochs.clone());
            self.unflushed_msgs.store(0, Ordering::Release);
            (segs, end, dd, pd, epochs)
        };
        let now = self.shared.now_ms();
        let result = (|| -> Result<(), LogError> {
            for (seg, size) in &segs {
                let started = std::time::Instant::now();
                seg.sync().map_err(|e| io_err(&seg.log_path(), e))?;
                self.shared.stats.fsync.observe(started.elapsed());
                seg.set_flushed(*size);
                seg.sync_index_files()
                    .map_err(|e| io_err(&seg.log_path(), e))?;
            }
            if let Some(epochs) = &epochs {
                self.persist_epochs(epochs)?;
            }
            if dir_dirty || epochs.is_some() {
                segment::sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
            }
            if parent_dirty {
                let parent = &self.shared.config.data_dir;
                self.shared
                    .sync_data_dir(self.created_gen)
                    .map_err(|e| io_err(parent, e))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if !segs.is_empty() {
                    self.flushes.fetch_add(1, Ordering::Relaxed);
                }
                self.last_flush_ms.store(now, Ordering::Release);
                self.release_waiters(end);
                self.durable_tx.send_if_modified(|d| {
                    if end > d.offset {
                        d.offset = end;
                        true
                    } else {
                        false
                    }
                });
                Ok(())
            }
            Err(e) => {
                if self.is_removed() {
                    return Ok(());
                }
                if let LogError::Io { source, .. } = &e {
                    self.fail(source);
                }
                let mut st = lock(&self.state);
                st.dir_dirty |= dir_dirty;
                st.parent_dirty |= parent_dirty;
                st.epochs_dirty |= epochs.is_some();
                Err(e)
            }
        }
    }

    /// Flush at clean shutdown: everything synced, active indexes written.
    pub(crate) fn close_clean(&self) -> Result<(), LogError> {
        if self.is_removed() {
            return Ok(());
        }
        self.flush_now()?;
        let active = lock(&self.state).active().clone();
        active
            .persist_active_indexes()
            .map_err(|e| io_err(&active.log_path(), e))?;
        self.snapshot_producers(&mut lock(&self.state))?;
        self.durable_tx.send_modify(|d| d.closed = true);
        for s in lock(&self.state).segments.iter() {
            s.release_resources();
        }
        Ok(())
    }

    fn persist_epochs(&self, epochs: &[(i32, i64)]) -> Result<(), LogError> {
        let path = self.dir.join(LEADER_EPOCH_FILE);
        checkpoint::write_epochs(&path, epochs).map_err(|e| io_err(&path, e))
    }

    /// Deletes `doomed` segments (already unlinked from the list by the
    /// caller): renames to `*.deleted` now, unlinks after
    /// `file.delete.delay.ms`.
    pub(crate) fn retire_segments(&self, doomed: Vec<Arc<Segment>>, config: &LogConfig) {
        let due = self
            .shared
            .now_ms()
            .saturating_add(config.file_delete_delay_ms.max(0));
        for s in doomed {
            if let Err(e) = s.mark_deleted() {
                tracing::warn!(segment = %s.log_path().display(), error = %e, "rename for delete failed");
            }
            s.release_resources();
            self.shared.defer(due, Deferred::Segment(s));
        }
    }

    /// Drops epoch entries wholly below the log start (Kafka's
    /// `truncateFromStart`).
    pub(crate) fn truncate_epochs_from_start(epochs: &mut Vec<(i32, i64)>, log_start: i64) -> bool {
        let below = epochs.iter().take_while(|&&(_, o)| o <= log_start).count();
        if below == 0 {
            return false;
        }
        let (last_epoch, last_start) = epochs[below - 1];
        let changed = below > 1 || last_start != log_start;
        epochs.drain(..below - 1);
        epochs[0] = (last_epoch, log_start);
        changed
    }

    /// Time- and size-based retention (and segments below the log start):
    /// deletes whole segments from the oldest, rolling the active segment
    /// first when it must go too.
    pub(crate) fn apply_retention(&self, now: i64) -> Result<(), LogError> {
        if self.is_removed() {
            return Ok(());
        }
        let config = self.config();
        let interval = config.index_interval_bytes;
        // Decide on a snapshot, without the append lock (deciding may load
        // indexes from disk), then re-check under the lock.
        let (segs, log_start, log_end) = {
            let st = lock(&self.state);
            (st.segments.clone(), st.log_start, st.log_end)
        };
        let total: u64 = segs.iter().map(|s| s.size()).sum();
        let mut size_excess: i64 = if config.cleanup_delete && config.retention_bytes >= 0 {
            i64::try_from(total).unwrap_or(i64::MAX) - config.retention_bytes
        } else {
            i64::MIN
        };
        let mut doomed = 0usize;
        for (i, s) in segs.iter().enumerate() {
            let size = s.size();
            let is_last = i + 1 == segs.len();
            if is_last && size == 0 {
                break;
            }
            let next_base = segs.get(i + 1).map_or(log_end, |n| n.base_offset());
            let below_start = next_base <= log_start && !is_last;
            let by_time = config.cleanup_delete && config.retention_ms >= 0 && {
                let (max_ts, _) = s
                    .max_timestamp(interval)
                    .map_err(|e| io_err(&s.log_path(), e))?;
                let ts = if max_ts >= 0 {
                    max_ts
                } else {
                    file_mtime_ms(&s.log_path()).unwrap_or(now)
                };
                now.saturating_sub(ts) > config.retention_ms
            };
            let size_i = i64::try_from(size).unwrap_or(i64::MAX);
            let by_size = size_excess != i64::MIN && size_excess - size_i >= 0;
            if below_start || by_time || by_size {
                if by_size {
                    size_excess -= size_i;
                }
                doomed += 1;
            } else {
                break;
            }
        }
        let mut st = lock(&self.state);
        // Segments may have changed meanwhile (roll, compaction, DeleteRecords):
        // only act on the part of the decision that still holds.
        let still = segs[..doomed]
            .iter()
            .zip(st.segments.iter())
            .take_while(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        doomed = doomed.min(still);
        let segs = st.segments.clone();
        if doomed == 0 {
            return Ok(());
        }
        if doomed == segs.len() {
            // The active segment goes too: roll first so a fresh one remains.
            self.roll_locked(&mut st)?;
        }
        let segs = st.segments.clone();
        let doomed = doomed.min(segs.len() - 1);
        if doomed == 0 {
            return Ok(());
        }
        let removed: Vec<_> = segs[..doomed].to_vec();
        let kept: Vec<_> = segs[doomed..].to_vec();
        let new_start = kept[0].base_offset().max(st.log_start);
        let first_kept = kept[0].base_offset();
        st.aborted.retain(|a| a.last_offset >= first_kept);
        st.segments = Arc::new(kept);
        if new_start > st.log_start {
            st.log_start = new_start;
        }
        st.dir_dirty = true;
        let log_start = st.log_start;
        if Self::truncate_epochs_from_start(&mut st.epochs, log_start) {
            st.epochs_dirty = true;
        }
        drop(st);
        tracing::debug!(partition = %self.tp, count = removed.len(), "retention deleting segments");
        self.retire_segments(removed, &config);
        Ok(())
    }

    /// Takes a consistent snapshot for readers.
    fn snapshot(&self) -> (Arc<Vec<Arc<Segment>>>, LogOffsets) {
        let st = lock(&self.state);
        (st.segments.clone(), st.offsets())
    }

    /// First record with timestamp `>= ts` within batches of `seg` from
    /// `from_pos`, skipping offsets below `min_offset`.
    fn search_timestamp(
        seg: &Arc<Segment>,
        from_pos: u64,
        min_offset: i64,
        max_offset: i64,
        matches: impl Fn(i64) -> bool,
        batch_may_match: impl Fn(&batch::BatchHeader) -> bool,
    ) -> std::io::Result<Option<TimestampOffset>> {
        let mut found = None;
        seg.for_each_batch(from_pos, |_, h, bytes| {
            if h.base_offset >= max_offset {
                return false;
            }
            if h.last_offset() < min_offset || !batch_may_match(h) {
                return true;
            }
            match batch::decode_batch(&bytes) {
                Ok((_, records)) => {
                    for r in records {
                        if r.offset >= min_offset && r.offset < max_offset && matches(r.timestamp) {
                            found = Some(TimestampOffset {
                                timestamp: r.timestamp,
                                offset: r.offset,
                                leader_epoch: h.partition_leader_epoch,
                            });
                            return false;
                        }
                    }
                    true
                }
                Err(e) => {
                    // Undecodable batch: answer at batch granularity.
                    tracing::debug!(error = %e, "timestamp lookup on undecodable batch");
                    if matches(h.max_timestamp) {
                        found = Some(TimestampOffset {
                            timestamp: h.max_timestamp,
                            offset: h.base_offset.max(min_offset),
                            leader_epoch: h.partition_leader_epoch,
                        });
                        return false;
                    }
                    true
                }
            }
        })?;
        Ok(found)
    }
}

fn file_mtime_ms(path: &Path) -> Option<i64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    let d = m.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// The blocking forms of the storage contract, which [`PartitionLog`]
/// wraps and the engine's own tests and tools call directly.
impl LocalPartition {
    pub fn append(&self, records: Bytes, leader_epoch: i32) -> Result<AppendInfo, LogError> {
        self.check_usable()?;
        let config = self.config();
        let now = self.shared.now_ms();
        let v = batch::validate_append(&records, &config, now)?;
        // A batch with a producer id must come alone, as Kafka requires of
        // v3+ produce requests, so that its sequence check is exact.
        let producer_batch = match v.batches.as_slice() {
            [b] => batch::BatchHeader::parse(&b.header).filter(|h| h.producer_id >= 0),
            many => {
                if many
                    .iter()
                    .filter_map(|b| batch::BatchHeader::parse(&b.header))
                    .any(|h| h.producer_id >= 0)
                {
                    return Err(LogError::InvalidRecord {
                        reason:
                            "a batch with a producer id must be the only batch for its partition"
                                .into(),
                    });
                }
                None
            }
        };
        let control = match (&producer_batch, v.batches.first()) {
            (Some(h), Some(b)) if h.is_control() => Some(
                producer::control_type(&records.slice(b.range.clone())).ok_or_else(|| {
                    LogError::InvalidRecord {
                        reason: "control batch without a valid control record".into(),
                    }
                })?,
            ),
            _ => None,
        };
        let mut st = lock(&self.state);
        self.check_usable()?;
        if let Some(h) = &producer_batch {
            if control.is_some() {
                st.producers.check_marker(h)?;
            } else if let Verdict::Duplicate(m) = st.producers.check(h)? {
                return Ok(AppendInfo {
                    base_offset: m.first_offset,
                    last_offset: m.last_offset,
                    log_append_time: -1,
                    log_start: st.log_start,
                });
            }
        }
        let last_offset = st.log_end + v.offset_count - 1;
        let incoming_max_ts = v
            .batches
            .iter()
            .map(|b| b.max_timestamp)
            .max()
            .unwrap_or(-1);
        if self.should_roll(
            &st,
            &config,
            v.size as u64,
            last_offset,
            incoming_max_ts,
            now,
        )? {
            self.roll_locked(&mut st)?;
        }
        let seg = st.active().clone();
        let base_offset = st.log_end;
        // Headers with the log's offsets and epoch; bodies straight from
        // the request.
        let mut headers: Vec<[u8; HEADER_SIZE]> = Vec::with_capacity(v.batches.len());
        let mut next = base_offset;
        for b in &v.batches {
            let mut h = b.header;
            batch::set_base_offset(&mut h, next);
            batch::set_partition_leader_epoch(&mut h, leader_epoch);
            headers.push(h);
            next += b.offset_count;
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(v.batches.len() * 2);
        for (h, b) in headers.iter().zip(&v.batches) {
            slices.push(IoSlice::new(h));
            slices.push(IoSlice::new(
                &records[b.range.start + HEADER_SIZE..b.range.end],
            ));
        }
        let start_pos = seg.size();
        if let Err(e) = seg.write_batches(&mut slices, v.size as u64) {
            let err = io_err(&seg.log_path(), e);
            return Err(err);
        }
        drop(slices);
        // Indexes.
        let interval = config.index_interval_bytes;
        let index_result = seg.with_indexes(interval, |idx| {
            let mut pos = start_pos;
            for h in &headers {
                if let Some(hdr) = batch::BatchHeader::parse(h) {
                    let size = hdr.total_size().unwrap_or(HEADER_SIZE) as u64;
                    idx.on_batch(seg.base_offset(), pos, &hdr, size, interval);
                    pos += size;
                }
            }
        });
        if let Err(e) = index_result {
            tracing::warn!(partition = %self.tp, error = %e, "index update failed");
        }
        if st.first_batch_ts < 0 && start_pos == 0 {
            st.first_batch_ts = v.batches.first().map_or(-1, |b| b.max_timestamp);
        }
        st.log_end = next;
        if let Some(mut h) = producer_batch {
            h.base_offset = base_offset;
            if let Some(a) = st.producers.apply(&h, control, now) {
                let path = txn_index::index_path(&self.dir, seg.base_offset());
                if let Err(e) = txn_index::append(&path, &a) {
                    // Rebuilt from the log on the next unclean open; a
                    // clean close rewrites it from memory.
                    tracing::warn!(partition = %self.tp, error = %e, "transaction index append failed");
                    st.txn_index_dirty = true;
                }
                st.aborted.push(a);
            }
        }
        if leader_epoch >= 0 && st.epochs.last().is_none_or(|&(e, _)| leader_epoch > e) {
            // Checkpointed by the flusher before the durable point passes
            // this offset (and rebuilt from the log by crash recovery).
            st.epochs.push((leader_epoch, base_offset));
            st.epochs_dirty = true;
        }
        let log_start = st.log_start;
        self.end_tx.send_replace(next);
        drop(st);
        let records_added: i64 = v.batches.iter().map(|b| i64::from(b.records_count)).sum();
        let pending = self
            .unflushed_msgs
            .fetch_add(records_added, Ordering::AcqRel)
            + records_added;
        if pending >= config.flush_messages {
            self.request_flush();
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: v.log_append_time,
            log_start,
        })
    }

    pub fn wait_durable(&self, end_offset: i64) -> BoxFuture<'static, Result<(), LogError>> {
        let mut rx = self.durable_tx.subscribe();
        let target = end_offset.min(*self.end_tx.borrow());
        let current = *rx.borrow_and_update();
        if current.offset >= target {
            return Box::pin(std::future::ready(Ok(())));
        }
        if let Err(e) = self.check_usable() {
            return Box::pin(std::future::ready(Err(e)));
        }
        self.register_waiter(target);
        self.request_flush();
        let started = std::time::Instant::now();
        let stats = self.shared.stats.clone();
        // The name is built only for an error, not on every wait.
        // (`me` upgrades: `self` lives in an `Arc` while it is borrowed.)
        let me = self.me.upgrade();
        let name = move || me.as_ref().map_or_else(String::new, |p| p.tp.to_string());
        Box::pin(async move {
            loop {
                let d = *rx.borrow_and_update();
                if d.offset >= target {
                    stats.durable_wait.observe(started.elapsed());
                    return Ok(());
                }
                if d.failed {
                    return Err(LogError::Failed { partition: name() });
                }
                if d.closed {
                    return Err(LogError::Removed { partition: name() });
                }
                if rx.changed().await.is_err() {
                    return Err(LogError::Removed { partition: name() });
                }
            }
        })
    }

    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: ReadLimit,
    ) -> Result<ReadResult, LogError> {
        if self.is_removed() {
            return Err(LogError::Removed {
                partition: self.tp.to_string(),
            });
        }
        let interval = self.interval();
        for _attempt in 0..4 {
            let (segs, offsets) = self.snapshot();
            if offset < offsets.log_start || offset > offsets.log_end {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: offsets.log_start,
                    log_end: offsets.log_end,
                });
            }
            let max_offset = limit.upper(&offsets);
            if offset >= max_offset {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    offsets,
                });
            }
            let first = segs
                .partition_point(|s| s.base_offset() <= offset)
                .saturating_sub(1);
            let mut retry = false;
            for seg in &segs[first..] {
                if seg.base_offset() >= max_offset {
                    break;
                }
                match seg.read(offset, max_bytes, max_offset, interval) {
                    Ok(Some(records)) => return Ok(ReadResult { records, offsets }),
                    Ok(None) => continue,
                    Err(e) if seg.is_deleted() || e.kind() == std::io::ErrorKind::NotFound => {
                        retry = true;
                        break;
                    }
                    Err(e) => return Err(io_err(&seg.log_path(), e)),
                }
            }
            if !retry {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    offsets,
                });
            }
        }
        Err(LogError::Internal {
            reason: format!("{}: segments kept changing during a read", self.tp),
        })
    }

    pub fn offsets(&self) -> LogOffsets {
        lock(&self.state).offsets()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.end_tx.subscribe()
    }

    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        if self.is_removed() {
            return Err(LogError::Removed {
                partition: self.tp.to_string(),
            });
        }
        let interval = self.interval();
        let (segs, offsets) = self.snapshot();
        for (i, seg) in segs.iter().enumerate() {
            let next_base = segs.get(i + 1).map_or(offsets.log_end, |n| n.base_offset());
            if next_base <= offsets.log_start {
                continue;
            }
            let (max_ts, _) = seg
                .max_timestamp(interval)
                .map_err(|e| io_err(&seg.log_path(), e))?;
            if max_ts < timestamp {
                continue;
            }
            let from_offset = seg
                .time_lookup(timestamp, interval)
                .map_err(|e| io_err(&seg.log_path(), e))?
                .unwrap_or(seg.base_offset())
                .max(offsets.log_start);
            let pos = seg
                .index_position(from_offset, interval)
                .map_err(|e| io_err(&seg.log_path(), e))?;
            let found = Self::search_timestamp(
                seg,
                pos,
                offsets.log_start,
                offsets.log_end,
                |ts| ts >= timestamp,
                |h| h.max_timestamp >= timestamp,
            )
            .map_err(|e| io_err(&seg.log_path(), e))?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        if self.is_removed() {
            return Err(LogError::Removed {
                partition: self.tp.to_string(),
            });
        }
        let interval = self.interval();
        let (segs, offsets) = self.snapshot();
        // Largest timestamp per segment. Segments wholly at or above the log
        // start use their index's maximum; the segment the log start falls
        // into (after DeleteRecords) is scanned exactly.
        let mut best: Option<(i64, usize)> = None;
        for (i, seg) in segs.iter().enumerate() {
            let next_base = segs.get(i + 1).map_or(offsets.log_end, |n| n.base_offset());
            if next_base <= offsets.log_start || seg.size() == 0 {
                continue;
            }
            let max_ts = if seg.base_offset() < offsets.log_start {
                let mut m: Option<i64> = None;
                let mut err = None;
                seg.for_each_batch(0, |_, h, bytes| {
                    if h.last_offset() < offsets.log_start {
                        return true;
                    }
                    if h.base_offset >= offsets.log_start {
                        m = Some(m.map_or(h.max_timestamp, |x| x.max(h.max_timestamp)));
                        return true;
                    }
                    match batch::decode_batch(&bytes) {
                        Ok((_, recs)) => {
                            for r in recs.iter().filter(|r| r.offset >= offsets.log_start) {
                                m = Some(m.map_or(r.timestamp, |x| x.max(r.timestamp)));
                            }
                        }
                        Err(e) => err = Some(e),
                    }
                    true
                })
                .map_err(|e| io_err(&seg.log_path(), e))?;
                if let Some(e) = err {
                    tracing::debug!(error = %e, "max timestamp on undecodable batch");
                }
                match m {
                    Some(m) => m,
                    None => continue,
                }
            } else {
                seg.max_timestamp(interval)
                    .map_err(|e| io_err(&seg.log_path(), e))?
                    .0
            };
            if best.is_none_or(|(b, _)| max_ts > b) {
                best = Some((max_ts, i));
            }
        }
        let Some((best_ts, idx)) = best else {
            return Ok(None);
        };
        let seg = &segs[idx];
        Self::search_timestamp(
            seg,
            0,
            offsets.log_start,
            offsets.log_end,
            |ts| ts == best_ts,
            |h| h.max_timestamp >= best_ts,
        )
        .map_err(|e| io_err(&seg.log_path(), e))
    }

    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let st = lock(&self.state);
        let idx = st.epochs.partition_point(|&(e, _)| e <= epoch);
        if idx == 0 {
            return None;
        }
        let (found, _) = st.epochs[idx - 1];
        let end = st.epochs.get(idx).map_or(st.log_end, |&(_, start)| start);
        Some((found, end))
    }

    pub fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        self.check_usable()?;
        let config = self.config();
        let mut st = lock(&self.state);
        let offsets = st.offsets();
        if offset > offsets.high_watermark || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: offsets.log_start,
                log_end: offsets.log_end,
            });
        }
        if offset <= st.log_start {
            return Ok(st.log_start);
        }
        let path = self.dir.join(LOG_START_FILE);
        checkpoint::write_single(&path, offset).map_err(|e| io_err(&path, e))?;
        st.log_start = offset;
        // Whole segments below the new start go right away.
        let segs = st.segments.clone();
        let mut doomed = 0;
        for i in 0..segs.len() {
            match segs.get(i + 1) {
                Some(n) if n.base_offset() <= offset => doomed += 1,
                _ => break,
            }
        }
        let removed: Vec<_> = segs[..doomed].to_vec();
        if doomed > 0 {
            st.segments = Arc::new(segs[doomed..].to_vec());
            st.dir_dirty = true;
        }
        if Self::truncate_epochs_from_start(&mut st.epochs, offset) {
            st.epochs_dirty = true;
        }
        drop(st);
        self.retire_segments(removed, &config);
        Ok(offset)
    }

    pub fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        lock(&self.state)
            .producers
            .producers()
            .map(|(id, e)| (id, e.clone()))
            .collect()
    }

    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let st = lock(&self.state);
        let start = st.aborted.partition_point(|a| a.last_offset < from);
        st.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    pub fn size_bytes(&self) -> u64 {
        lock(&self.state).segments.iter().map(|s| s.size()).sum()
    }

    pub fn set_config(&self, config: LogConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}

impl PartitionLog for LocalPartition {
    fn append(
        &self,
        records: Bytes,
        leader_epoch: i32,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        // At call time, so appends keep call order; the write goes to the
        // page cache, and the fsync runs on the flusher thread.
        now(LocalPartition::append(self, records, leader_epoch))
    }

    fn wait_durable(&self, end_offset: i64) -> BoxFuture<'static, Result<(), LogError>> {
        LocalPartition::wait_durable(self, end_offset)
    }

    fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: ReadLimit,
    ) -> BoxFuture<'static, Result<ReadResult, LogError>> {
        now(LocalPartition::read(self, offset, max_bytes, limit))
    }

    fn offsets(&self) -> LogOffsets {
        LocalPartition::offsets(self)
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        LocalPartition::subscribe(self)
    }

    fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        now(LocalPartition::offset_for_timestamp(self, timestamp))
    }

    fn max_timestamp(&self) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        now(LocalPartition::max_timestamp(self))
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        LocalPartition::end_offset_for_epoch(self, epoch)
    }

    fn delete_records(&self, offset: i64) -> BoxFuture<'static, Result<i64, LogError>> {
        now(LocalPartition::delete_records(self, offset))
    }

    fn size_bytes(&self) -> u64 {
        LocalPartition::size_bytes(self)
    }

    fn producers(&self) -> Result<Vec<(i64, ProducerEntry)>, LogError> {
        Ok(LocalPartition::producers(self))
    }

    fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        LocalPartition::aborted_transactions(self, from, to)
    }

    fn set_config(&self, config: LogConfig) {
        LocalPartition::set_config(self, config);
    }
}

/// The local engine answers every call at call time: appends must keep
/// call order, and the readers that still hold a lock while they read
/// (share groups) need the answer at once. Writes go to the page cache
/// and fsyncs run on the flusher thread; a read of data no longer cached
/// may wait on the disk through the mmap (see the issue note).
fn now<T: Send + 'static>(r: Result<T, LogError>) -> BoxFuture<'static, Result<T, LogError>> {
    Box::pin(std::future::ready(r))
}

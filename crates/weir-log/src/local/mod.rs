//! The local-disk engine: one directory per partition under a data
//! directory, in Kafka's layout.
//!
//! ```text
//! <data_dir>/
//!   .clean-shutdown                     present only between a clean shutdown and the next open
//!   recovery-point-offset-checkpoint    last fsynced offset per partition
//!   <topic>-<partition>/
//!     00000000000000000000.log          record batches
//!     00000000000000000000.index        offset index
//!     00000000000000000000.timeindex    time index
//!     leader-epoch-checkpoint           epoch -> start offset
//!     log-start-offset                  written by DeleteRecords
//!     cleaner-offset-checkpoint         first dirty offset (compacted topics)
//! ```
//!
//! Background threads: a small pool of flushers (group commit, see
//! [`flusher_loop`]), one scheduler (flush.ms, segment.ms, retention, checkpoints, deferred file
//! deletes) and, when enabled, one cleaner (compaction).

mod budget;
mod checkpoint;
mod cleaner;
pub mod index;
mod mmap;
mod partition;
mod recovery;
mod segment;
mod txn_index;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use partition::LocalPartition;

use crate::api::{LogEngine, PartitionLog, TopicPartition};
use crate::clock::Clock;
use crate::config::LogConfig;
use crate::error::LogError;
use budget::FileBudget;
use segment::{lock, Segment};

/// Name of the engine-wide clean shutdown marker.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Threads flushing partitions in parallel during `shutdown()`.
const SHUTDOWN_FLUSH_THREADS: usize = 16;

/// Name of the engine-wide recovery point checkpoint.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";

/// Name of the file holding the data directory's on-disk format version.
pub const FORMAT_VERSION_FILE: &str = "format-version";

/// The on-disk format this build reads and writes, as described in
/// `docs/storage-format.md`. Bumped by any change an older build would
/// misread.
pub const FORMAT_VERSION: u32 = 1;

/// Refuses a data directory in another format; records the version in a
/// directory without one (new, or written before the file existed, which
/// is format 1).
fn check_format_version(dir: &Path) -> Result<(), LogError> {
    let path = dir.join(FORMAT_VERSION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim() == FORMAT_VERSION.to_string() => Ok(()),
        Ok(s) => Err(LogError::UnsupportedFormat {
            path: path.display().to_string(),
            found: s.trim().chars().take(40).collect(),
            supported: FORMAT_VERSION,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join(format!("{FORMAT_VERSION_FILE}.tmp"));
            std::fs::write(&tmp, format!("{FORMAT_VERSION}\n"))
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .map_err(|e| io_err(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
            segment::sync_dir(dir).map_err(|e| io_err(dir, e))
        }
        Err(e) => Err(io_err(&path, e)),
    }
}

/// Settings of the local engine (broker-level, not per topic).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Directory holding one sub-directory per partition.
    pub data_dir: PathBuf,
    /// Budget of open segment resources (file descriptors and mappings)
    /// across all partitions; least recently used ones are closed beyond it.
    pub max_open_files: usize,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub retention_check_interval_ms: u64,
    /// `log.cleaner.enable`: run the compaction thread.
    pub cleaner_enabled: bool,
    /// `log.cleaner.dedupe.buffer.size`: bytes of the cleaner's offset map.
    pub cleaner_buffer_bytes: usize,
    /// `log.cleaner.backoff.ms`: sleep between cleaner passes with nothing to do.
    pub cleaner_backoff_ms: u64,
    /// Number of flusher threads doing fsyncs (group commit). Several
    /// partitions' fdatasyncs in flight at once share the file system's
    /// journal commits; a thread waiting on the disk costs no CPU.
    pub flush_threads: usize,
    /// `log.flush.offset.checkpoint.interval.ms`: how often recovery points
    /// are checkpointed. Smaller means less to scan after a crash.
    pub recovery_point_checkpoint_interval_ms: u64,
    /// How often the scheduler looks at `flush.ms` and `segment.ms`.
    pub scheduler_tick_ms: u64,
    /// Group commit: before an fsync that directly follows another one, the
    /// flusher waits while appends keep arriving, up to this long, so the
    /// waiters the previous fsync released share the next one. 0 disables.
    pub group_commit_linger_us: u64,
    /// `producer.id.expiration.ms`: idempotence state of a producer idle
    /// this long (and without an open transaction) is forgotten.
    pub producer_id_expiration_ms: i64,
    /// Time source.
    pub clock: Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./weir-data"),
            max_open_files: 1024,
            retention_check_interval_ms: 300_000,
            cleaner_enabled: true,
            cleaner_buffer_bytes: 16 << 20,
            cleaner_backoff_ms: 15_000,
            flush_threads: 2,
            recovery_point_checkpoint_interval_ms: 10_000,
            scheduler_tick_ms: 100,
            group_commit_linger_us: 300,
            producer_id_expiration_ms: 86_400_000,
            clock: Clock::system(),
        }
    }
}

/// Something to unlink once its time comes.
#[derive(Debug)]
pub(crate) enum Deferred {
    /// A segment already renamed to `*.deleted`.
    Segment(Arc<Segment>),
    /// A partition directory already renamed to `*-delete`.
    Dir(PathBuf),
}

/// State shared by the engine, its partitions and its threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) budget: Arc<FileBudget>,
    pub(crate) next_segment_id: AtomicU64,
    /// Set once `shutdown()` ran: partitions refuse writes.
    pub(crate) closed: AtomicBool,
    pub(crate) partitions: Mutex<HashMap<TopicPartition, Arc<LocalPartition>>>,
    /// Whether the data directory was shut down cleanly before this open.
    pub(crate) was_clean: bool,
    /// Recovery points read at open, kept for partitions not opened since.
    pub(crate) recovery_points: Mutex<HashMap<TopicPartition, i64>>,
    pub(crate) deferred: Mutex<Vec<(i64, Deferred)>>,
    /// Partitions waiting for a sync, in the order they asked.
    flush_queue: Mutex<std::collections::VecDeque<Arc<LocalPartition>>>,
    flush_cv: Condvar,
    /// Origin of the partitions' `queued_at` stamps.
    epoch: std::time::Instant,
    stop: Mutex<bool>,
    stop_cv: Condvar,
    checkpoint_lock: Mutex<()>,
    /// Bumped when a partition directory is created.
    data_dir_gen: AtomicU64,
    /// Generation covered by the last fsync of the data directory.
    data_dir_synced: Mutex<u64>,
    /// fsync latency and the like, read by the broker's metrics.
    pub(crate) stats: Arc<crate::EngineStats>,
}

impl Shared {
    pub(crate) fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    pub(crate) fn new_segment_id(&self) -> u64 {
        self.next_segment_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn queue_flush(&self, p: Arc<LocalPartition>) {
        lock(&self.flush_queue).push_back(p);
        self.flush_cv.notify_one();
    }

    /// Puts a partition that was asked to sync again while syncing back in
    /// the queue, behind every partition already waiting: one busy
    /// partition must not keep a flusher while the others' waiters queue
    /// up (each round syncs every partition with pending data once). When
    /// nobody else waits, it lingers first (see `LocalPartition::linger`).
    fn requeue_flush(&self, p: Arc<LocalPartition>) {
        if lock(&self.flush_queue).is_empty() {
            p.linger();
        }
        self.queue_flush(p);
    }

    /// Nanoseconds since the engine opened, for queue-wait stamps.
    pub(crate) fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    /// Records that the data directory gained an entry; returns the
    /// generation a flush must see synced.
    pub(crate) fn data_dir_changed(&self) -> u64 {
        self.data_dir_gen.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// fsyncs the data directory unless a sync covering `needed` already
    /// happened; concurrent flushers share one sync.
    pub(crate) fn sync_data_dir(&self, needed: u64) -> std::io::Result<()> {
        let mut synced = lock(&self.data_dir_synced);
        if *synced >= needed {
            return Ok(());
        }
        let generation = self.data_dir_gen.load(Ordering::Acquire);
        segment::sync_dir(&self.config.data_dir)?;
        *synced = generation;
        Ok(())
    }

    pub(crate) fn defer(&self, due_ms: i64, item: Deferred) {
        lock(&self.deferred).push((due_ms, item));
    }

    fn stopping(&self) -> bool {
        *lock(&self.stop)
    }

    /// Sleeps up to `ms` or until stop; returns whether stopping.
    fn sleep(&self, ms: u64) -> bool {
        let guard = lock(&self.stop);
        if *guard {
            return true;
        }
        let (guard, _) = self
            .stop_cv
            .wait_timeout(guard, Duration::from_millis(ms))
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    fn partitions_snapshot(&self) -> Vec<Arc<LocalPartition>> {
        lock(&self.partitions).values().cloned().collect()
    }

    /// Writes the recovery point checkpoint: durable offsets of open
    /// partitions, earlier values for the others.
    pub(crate) fn write_recovery_checkpoint(&self) -> Result<(), LogError> {
        let _g = lock(&self.checkpoint_lock);
        let mut map = lock(&self.recovery_points).clone();
        for p in self.partitions_snapshot() {
            if !p.is_removed() {
                map.insert(p.topic_partition().clone(), p.durable_offset());
            }
        }
        let path = self.config.data_dir.join(RECOVERY_POINT_FILE);
        checkpoint::write_offsets(&path, &map).map_err(|e| io_err(&path, e))
    }

    fn run_deferred(&self, now: i64, all: bool) {
        let due: Vec<Deferred> = {
            let mut d = lock(&self.deferred);
            let (due, keep): (Vec<_>, Vec<_>) = d.drain(..).partition(|(t, _)| all || *t <= now);
            *d = keep;
            due.into_iter().map(|(_, x)| x).collect()
        };
        for item in due {
            match item {
                Deferred::Segment(s) => s.unlink_deleted(),
                Deferred::Dir(p) => {
                    if let Err(e) = std::fs::remove_dir_all(&p) {
                        tracing::warn!(dir = %p.display(), error = %e, "failed to delete directory");
                    }
                }
            }
        }
    }
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> LogError {
    LogError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The local-disk [`LogEngine`].
pub struct LocalEngine {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for LocalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("data_dir", &self.shared.config.data_dir)
            .finish()
    }
}

/// Parses a partition directory name `<topic>-<partition>`; `None` for
/// anything else (including `*-delete` directories and broker metadata).
pub fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, part) = name.rsplit_once('-')?;
    if topic.is_empty() || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let p: i32 = part.parse().ok()?;
    Some(TopicPartition::new(topic, p))
}

impl LocalEngine {
    /// Opens (creating if needed) the data directory and starts the
    /// background threads. Partitions are recovered lazily, when the broker
    /// opens them.
    pub fn open(config: EngineConfig) -> Result<Arc<LocalEngine>, LogError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        check_format_version(&dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let was_clean = marker.exists();
        let rp_path = dir.join(RECOVERY_POINT_FILE);
        let recovery_points =
            checkpoint::read_offsets(&rp_path).map_err(|e| io_err(&rp_path, e))?;
        // Leftovers of removed partitions and interrupted checkpoint writes.
        let entries = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with("-delete") && path.is_dir() {
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(dir = %path.display(), error = %e, "failed to delete removed partition");
                }
            } else if name == format!("{RECOVERY_POINT_FILE}.tmp") && path.is_file() {
                // Only our own interrupted checkpoint write: other files in
                // the data directory belong to the broker.
                let _ = std::fs::remove_file(&path);
            }
        }
        if was_clean {
            // From now on a crash must not be mistaken for a clean shutdown.
            std::fs::remove_file(&marker).map_err(|e| io_err(&marker, e))?;
            segment::sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
        }
        let shared = Arc::new(Shared {
            budget: Arc::new(FileBudget::new(config.max_open_files)),
            config,
            next_segment_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            partitions: Mutex::new(HashMap::new()),
            was_clean,
            recovery_points: Mutex::new(recovery_points),
            deferred: Mutex::new(Vec::new()),
            flush_queue: Mutex::new(Default::default()),
            flush_cv: Condvar::new(),
            epoch: std::time::Instant::now(),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            checkpoint_lock: Mutex::new(()),
            stats: Arc::default(),
            data_dir_gen: AtomicU64::new(0),
            data_dir_synced: Mutex::new(0),
        });
        let mut threads = Vec::new();
        for i in 0..shared.config.flush_threads.max(1) {
            let s = shared.clone();
            threads.push(spawn(&format!("weir-log-flush-{i}"), move || {
                flusher_loop(&s)
            })?);
        }
        let s = shared.clone();
        threads.push(spawn("weir-log-scheduler", move || scheduler_loop(&s))?);
        if shared.config.cleaner_enabled {
            let s = shared.clone();
            threads.push(spawn("weir-log-cleaner", move || cleaner_loop(&s))?);
        }
        Ok(Arc::new(LocalEngine {
            shared,
            threads: Mutex::new(threads),
        }))
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The open partition, if any, as its concrete type.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<LocalPartition>> {
        lock(&self.shared.partitions).get(tp).cloned()
    }

    /// Opens the partition's log, creating it if missing, as the engine's
    /// own type (whose blocking methods the engine's tests and tools call).
    pub fn open_partition(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<LocalPartition>, LogError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        if tp.partition < 0 || tp.topic.is_empty() || tp.topic.contains('/') {
            return Err(LogError::InvalidRecord {
                reason: format!("invalid partition {tp}"),
            });
        }
        let mut map = lock(&self.shared.partitions);
        if let Some(p) = map.get(tp) {
            p.set_config(config);
            return Ok(p.clone());
        }
        let dir = self.partition_dir(tp);
        let recovery_point = lock(&self.shared.recovery_points).get(tp).copied();
        let p = recovery::open_partition(&self.shared, tp.clone(), dir, config, recovery_point)?;
        map.insert(tp.clone(), p.clone());
        Ok(p)
    }

    /// Runs retention once on every open partition (normally done by the
    /// scheduler every `retention_check_interval_ms`).
    pub fn run_retention(&self) -> Result<(), LogError> {
        let now = self.shared.now_ms();
        for p in self.shared.partitions_snapshot() {
            p.apply_retention(now)?;
        }
        self.shared.run_deferred(now, false);
        Ok(())
    }

    /// Runs one cleaner pass over every compacted partition that needs it
    /// (normally done by the cleaner thread). Returns how many partitions
    /// were cleaned.
    pub fn run_cleaner(&self) -> Result<usize, LogError> {
        cleaner::clean_all(&self.shared, true)
    }

    /// Unlinks every segment file waiting out `file.delete.delay.ms` now.
    pub fn purge_deleted_files(&self) {
        self.shared.run_deferred(i64::MAX, true);
    }

    /// Number of segments currently holding open resources (descriptors or
    /// mappings); bounded by `max_open_files`.
    pub fn open_segment_resources(&self) -> usize {
        self.shared.budget.open_count()
    }

    fn stop_threads(&self) {
        *lock(&self.shared.stop) = true;
        self.shared.stop_cv.notify_all();
        self.shared.flush_cv.notify_all();
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.shared.config.data_dir.join(tp.to_string())
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, LogError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| LogError::Io {
            path: name.to_string(),
            source: e,
        })
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        // Handles the broker still holds stop working: no flusher is left.
        self.shared.closed.store(true, Ordering::Release);
        self.stop_threads();
        for p in self.shared.partitions_snapshot() {
            p.detach();
        }
        lock(&self.shared.partitions).clear();
    }
}

impl LogEngine for LocalEngine {
    fn open(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionLog>, LogError> {
        Ok(self.open_partition(tp, config)?)
    }

    fn remove(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let p = lock(&self.shared.partitions).remove(tp);
        if let Some(p) = &p {
            p.mark_removed();
        }
        lock(&self.shared.recovery_points).remove(tp);
        let dir = self.partition_dir(tp);
        if dir.exists() {
            let unique = format!(
                "{:x}{:x}",
                self.shared.now_ms(),
                self.shared.next_segment_id.fetch_add(1, Ordering::Relaxed)
            );
            let target = self
                .shared
                .config
                .data_dir
                .join(format!("{tp}.{unique}-delete"));
            std::fs::rename(&dir, &target).map_err(|e| io_err(&dir, e))?;
            let data_dir = &self.shared.config.data_dir;
            segment::sync_dir(data_dir).map_err(|e| io_err(data_dir, e))?;
            self.shared.defer(0, Deferred::Dir(target));
        }
        // Forget the old incarnation's recovery point on disk too, so a
        // re-created partition of the same name is never trusted by it.
        self.shared.write_recovery_checkpoint()?;
        self.shared.stop_cv.notify_all();
        Ok(())
    }

    fn partitions(&self) -> Result<Vec<TopicPartition>, LogError> {
        let dir = &self.shared.config.data_dir;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .flatten()
        {
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if !is_dir {
                continue;
            }
            if let Some(tp) = parse_partition_dir(&entry.file_name().to_string_lossy()) {
                out.push(tp);
            }
        }
        out.sort();
        Ok(out)
    }

    fn stats(&self) -> Option<Arc<crate::EngineStats>> {
        Some(self.shared.stats.clone())
    }

    fn shutdown(&self) -> Result<(), LogError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_threads();
        // Flush every partition, several at a time: fsyncs overlap well on
        // SSDs and this bounds shutdown time with many partitions.
        let parts = self.shared.partitions_snapshot();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let first_err: Mutex<Option<LogError>> = Mutex::new(None);
        let workers = SHUTDOWN_FLUSH_THREADS.min(parts.len()).max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = parts.get(i) else { break };
                    if let Err(e) = p.close_clean() {
                        tracing::error!(partition = %p.topic_partition(), error = %e, "flush at shutdown failed");
                        lock(&first_err).get_or_insert(e);
                    }
                });
            }
        });
        let first_err = first_err.into_inner().unwrap_or_else(|e| e.into_inner());
        self.shared.run_deferred(i64::MAX, true);
        if let Some(e) = first_err {
            return Err(e);
        }
        self.shared.write_recovery_checkpoint()?;
        let dir = &self.shared.config.data_dir;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(&marker, e))?;
        segment::sync_dir(dir).map_err(|e| io_err(dir, e))?;
        Ok(())
    }
}

/// One flusher thread. Partitions queue when a sync is first asked for and
/// leave the queue when a flusher starts it, so a sync covers everything
/// appended up to its start: every acks=all wait on the partition by then
/// shares it, and each is released as soon as its own partition is
/// durable, not when a whole round is. A partition asked again during its
/// sync goes to the back of the queue.
fn flusher_loop(shared: &Arc<Shared>) {
    loop {
        let next = {
            let mut q = lock(&shared.flush_queue);
            loop {
                if let Some(p) = q.pop_front() {
                    break Some(p);
                }
                if shared.stopping() {
                    break None;
                }
                q = shared
                    .flush_cv
                    .wait_timeout(q, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        match next {
            Some(p) => {
                if let Some(again) = p.run_scheduled_flush() {
                    shared.requeue_flush(again);
                }
            }
            None => return,
        }
    }
}

fn scheduler_loop(shared: &Arc<Shared>) {
    let tick = shared.config.scheduler_tick_ms.max(1);
    let mut next_retention = shared
        .now_ms()
        .saturating_add(shared.config.retention_check_interval_ms as i64);
    let mut next_checkpoint = shared
        .now_ms()
        .saturating_add(shared.config.recovery_point_checkpoint_interval_ms as i64);
    loop {
        if shared.sleep(tick) {
            return;
        }
        let now = shared.now_ms();
        let parts = shared.partitions_snapshot();
        for p in &parts {
            p.on_tick(now);
        }
        if now >= next_retention {
            for p in &parts {
                if let Err(e) = p.apply_retention(now) {
                    tracing::warn!(partition = %p.topic_partition(), error = %e, "retention failed");
                }
            }
            next_retention = now.saturating_add(shared.config.retention_check_interval_ms as i64);
        }
        if now >= next_checkpoint {
            if let Err(e) = shared.write_recovery_checkpoint() {
                tracing::warn!(error = %e, "recovery point checkpoint failed");
            }
            next_checkpoint =
                now.saturating_add(shared.config.recovery_point_checkpoint_interval_ms as i64);
        }
        drop(parts);
        shared.run_deferred(now, false);
    }
}

fn cleaner_loop(shared: &Arc<Shared>) {
    loop {
        if shared.stopping() {
            return;
        }
        let cleaned = match cleaner::clean_all(shared, false) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cleaner pass failed");
                0
            }
        };
        if cleaned == 0 && shared.sleep(shared.config.cleaner_backoff_ms.max(1)) {
            return;
        }
    }
}

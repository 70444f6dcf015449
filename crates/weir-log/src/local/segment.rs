//! One segment: a `.log` file of record batches plus its indexes.
//!
//! A segment opens nothing until it is used. Its file descriptor, mapping
//! and (for inactive segments) loaded indexes are resources governed by the
//! engine's [`FileBudget`]; they are dropped when evicted and reopened on
//! demand.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::budget::FileBudget;
use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::mmap::{MapSlice, SegmentMap};
use crate::batch::{check_stored_batch, BatchHeader, StoredBatch};

/// Active segments are mapped this far past their end, so appends rarely
/// force a remap.
const MAP_CHUNK: u64 = 16 << 20;

/// `<20-digit zero-padded base offset>`, Kafka's file name stem.
/// The files of one segment, by extension.
pub(crate) const SEGMENT_EXTS: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Parses a segment file stem.
pub(crate) fn parse_stem(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// In-memory indexes and the running values that go with them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Indexes {
    pub(crate) offsets: OffsetIndex,
    pub(crate) times: TimeIndex,
    /// Bytes appended since the last offset index entry.
    pub(crate) bytes_since_entry: u64,
    /// Largest batch max timestamp seen, `-1` when none.
    pub(crate) max_timestamp: i64,
    /// Last offset of the batch that first reached `max_timestamp`.
    pub(crate) offset_of_max: i64,
    /// Last offset of the last batch, `-1` when empty.
    pub(crate) last_offset: i64,
}

impl Indexes {
    pub(crate) fn empty() -> Self {
        Self {
            max_timestamp: -1,
            offset_of_max: -1,
            last_offset: -1,
            ..Self::default()
        }
    }

    /// Records one appended batch at `position`, like Kafka's
    /// `LogSegment.append`: the max timestamp first, then an index entry
    /// when more than `interval` bytes went by since the last one.
    pub(crate) fn on_batch(
        &mut self,
        base_offset: i64,
        position: u64,
        header: &BatchHeader,
        size: u64,
        interval: u64,
    ) {
        let last = header.last_offset();
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max = last;
        }
        if self.bytes_since_entry > interval {
            if let (Ok(rel), Ok(pos)) = (u32::try_from(last - base_offset), u32::try_from(position))
            {
                self.offsets.push(OffsetEntry {
                    relative_offset: rel,
                    position: pos,
                });
            }
            self.push_time_entry(base_offset);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += size;
        self.last_offset = self.last_offset.max(last);
    }

    /// Adds a time index entry for the max timestamp so far, if it grew.
    pub(crate) fn push_time_entry(&mut self, base_offset: i64) {
        if self.max_timestamp >= 0 {
            if let Ok(rel) = u32::try_from(self.offset_of_max - base_offset) {
                self.times.maybe_push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: rel,
                });
            }
        }
    }

    fn memory(&self) -> usize {
        self.offsets.memory() + self.times.memory()
    }
}

#[derive(Debug, Default)]
struct Handles {
    writer: Option<Arc<File>>,
    map: Option<Arc<SegmentMap>>,
}

/// Where a segment's files currently live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    Live,
    /// Renamed to `*.deleted`, to be unlinked later.
    Deleted,
    /// Unlinked.
    Gone,
}

/// The state found when scanning a segment's batches.
#[derive(Debug, Clone)]
pub(crate) struct ScanOutcome {
    /// Bytes of valid batches from the start.
    pub(crate) valid_bytes: u64,
    /// Rebuilt indexes.
    pub(crate) indexes: Indexes,
    /// Whether the scan stopped at bytes that are not a valid batch.
    pub(crate) stopped_early: bool,
    /// `(epoch, base offset)` of each batch whose leader epoch is larger than
    /// every earlier one's.
    pub(crate) epoch_starts: Vec<(i32, i64)>,
}

/// A log segment.
pub(crate) struct Segment {
    base_offset: i64,
    id: u64,
    dir: PathBuf,
    budget: Arc<FileBudget>,
    /// Bytes written and readable.
    size: AtomicU64,
    /// Bytes known to be on stable storage.
    flushed: AtomicU64,
    active: AtomicBool,
    /// Whether the index files on disk are complete and synced (inactive
    /// segments only).
    index_synced: AtomicBool,
    files: Mutex<FileState>,
    handles: Mutex<Handles>,
    indexes: Mutex<Option<Indexes>>,
    /// Cached `(max timestamp, offset)` for an inactive segment whose
    /// indexes are not loaded; `i64::MIN` when unknown.
    cached_max_ts: AtomicI64,
    cached_max_ts_offset: AtomicI64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("base_offset", &self.base_offset)
            .field("size", &self.size())
            .field("active", &self.is_active())
            .finish()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.budget.forget(self.id);
    }
}

impl Segment {
    /// A segment handle over files that exist (or are created by the caller).
    pub(crate) fn new(
        dir: &Path,
        base_offset: i64,
        id: u64,
        budget: Arc<FileBudget>,
        size: u64,
        active: bool,
        indexes: Option<Indexes>,
    ) -> Arc<Self> {
        Arc::new(Self {
            base_offset,
            id,
            dir: dir.to_path_buf(),
            budget,
            size: AtomicU64::new(size),
            flushed: AtomicU64::new(size),
            active: AtomicBool::new(active),
            index_synced: AtomicBool::new(!active),
            files: Mutex::new(FileState::Live),
            handles: Mutex::new(Handles::default()),
            indexes: Mutex::new(indexes),
            cached_max_ts: AtomicI64::new(i64::MIN),
            cached_max_ts_offset: AtomicI64::new(-1),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Recovery: the bytes may only be in the page cache (a killed process
    /// leaves them there); the next flush syncs them.
    pub(crate) fn mark_unflushed(&self) {
        self.flushed.store(0, Ordering::Release);
    }

    /// Recovery rewrote the index files; the flusher syncs them.
    pub(crate) fn mark_index_unsynced(&self) {
        if !self.is_active() {
            self.index_synced.store(false, Ordering::Release);
        }
    }

    pub(crate) fn set_flushed(&self, at_least: u64) {
        self.flushed.fetch_max(at_least, Ordering::AcqRel);
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn index_synced(&self) -> bool {
        self.index_synced.load(Ordering::Acquire)
    }

    fn suffix(&self) -> &'static str {
        match *lock(&self.files) {
            FileState::Live => "",
            FileState::Deleted | FileState::Gone => ".deleted",
        }
    }

    pub(crate) fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.{ext}{}",
            file_stem(self.base_offset),
            self.suffix()
        ))
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.path("log")
    }

    pub(crate) fn is_deleted(&self) -> bool {
        *lock(&self.files) != FileState::Live
    }

    /// Renames the segment's files to `*.deleted` (Kafka's asynchronous
    /// delete). Later reads through existing mappings keep working.
    pub(crate) fn mark_deleted(&self) -> io::Result<()> {
        let mut st = lock(&self.files);
        if *st != FileState::Live {
            return Ok(());
        }
        let stem = file_stem(self.base_offset);
        for ext in SEGMENT_EXTS {
            let from = self.dir.join(format!("{stem}.{ext}"));
            let to = self.dir.join(format!("{stem}.{ext}.deleted"));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        *st = FileState::Deleted;
        Ok(())
    }

    /// Unlinks the `*.deleted` files.
    pub(crate) fn unlink_deleted(&self) {
        let mut st = lock(&self.files);
        if *st != FileState::Deleted {
            return;
        }
        let stem = file_stem(self.base_offset);
        for ext in SEGMENT_EXTS {
            let _ = std::fs::remove_file(self.dir.join(format!("{stem}.{ext}.deleted")));
        }
        *st = FileState::Gone;
        drop(st);
        self.release_resources();
    }

    /// Drops descriptors, mappings and (for inactive segments whose index
    /// files are complete) the loaded indexes.
    pub(crate) fn release_resources(&self) {
        let taken = {
            let mut h = lock(&self.handles);
            (h.writer.take(), h.map.take())
        };
        drop(taken);
        // Index files of inactive segments are always complete (written at
        // roll, recovery or compaction), so the in-memory copy can go. Skip
        // it when another thread is using it (try_lock: a thread loading
        // indexes may itself be evicting, and must not wait on us).
        if !self.is_active() {
            if let Ok(mut idx) = self.indexes.try_lock() {
                if let Some(i) = idx.as_ref() {
                    self.cached_max_ts.store(i.max_timestamp, Ordering::Release);
                    self.cached_max_ts_offset
                        .store(i.offset_of_max, Ordering::Release);
                }
                *idx = None;
            }
        }
        self.budget.forget(self.id);
    }

    /// The writer descriptor, opened for append on demand. Only the append
    /// path (under the partition lock) calls this: it is the one place that
    /// may cut the file back to the committed size.
    fn writer(self: &Arc<Self>) -> io::Result<Arc<File>> {
        let file = {
            let mut h = lock(&self.handles);
            match &h.writer {
                Some(f) => f.clone(),
                None => {
                    let f = OpenOptions::new().append(true).open(self.log_path())?;
                    // Keep "file length == committed size" so that
                    // append-mode writes land where the log expects. Only
                    // bytes past the committed size (a failed write) go.
                    let committed = self.size();
                    if f.metadata()?.len() != committed {
                        f.set_len(committed)?;
                    }
                    let f = Arc::new(f);
                    h.writer = Some(f.clone());
                    f
                }
            }
        };
        self.budget.touch(self);
        Ok(file)
    }

    /// Appends `bufs` (whole batches) at the end of the file; the caller
    /// holds the partition's append lock. On failure the file is cut back
    /// to its committed size.
    pub(crate) fn write_batches(
        self: &Arc<Self>,
        bufs: &mut [IoSlice<'_>],
        total: u64,
    ) -> io::Result<()> {
        let file = self.writer()?;
        let res = write_all_vectored(&file, bufs);
        if let Err(e) = res {
            let _ = file.set_len(self.size());
            return Err(e);
        }
        self.size.fetch_add(total, Ordering::AcqRel);
        Ok(())
    }

    /// fdatasync of the log file. Used by the flusher, never under the
    /// partition lock; uses the writer's descriptor when open, else a
    /// transient read-only one (fdatasync works on any descriptor).
    pub(crate) fn sync(self: &Arc<Self>) -> io::Result<()> {
        if self.is_deleted() {
            return Ok(());
        }
        let writer = lock(&self.handles).writer.clone();
        let file = match writer {
            Some(f) => f,
            None => match File::open(self.log_path()) {
                Ok(f) => Arc::new(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.is_deleted() => return Ok(()),
                Err(e) => return Err(e),
            },
        };
        file.sync_data()
    }

    /// Syncs the index files of an inactive segment once.
    pub(crate) fn sync_index_files(&self) -> io::Result<()> {
        if self.is_active() || self.index_synced() || self.is_deleted() {
            return Ok(());
        }
        for ext in ["index", "timeindex"] {
            match File::open(self.path(ext)) {
                Ok(f) => f.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.index_synced.store(true, Ordering::Release);
        Ok(())
    }

    /// A mapping covering at least the first `need` bytes.
    pub(crate) fn map(self: &Arc<Self>, need: u64) -> io::Result<Arc<SegmentMap>> {
        let map = {
            let mut h = lock(&self.handles);
            match &h.map {
                Some(m) if m.len() as u64 >= need => m.clone(),
                _ => {
                    let file = File::open(self.log_path())?;
                    let len = if self.is_active() {
                        need.div_ceil(MAP_CHUNK).max(1) * MAP_CHUNK
                    } else {
                        need.max(file.metadata()?.len())
                    };
                    let len =
                        usize::try_from(len).map_err(|_| io::Error::other("segment too large"))?;
                    let m = Arc::new(SegmentMap::new(&file, len.max(1), false)?);
                    h.map = Some(m.clone());
                    m
                }
            }
        };
        self.budget.touch(self);
        Ok(map)
    }

    /// Runs `f` on the loaded indexes, loading (or rebuilding) them first.
    pub(crate) fn with_indexes<R>(
        self: &Arc<Self>,
        interval: u64,
        f: impl FnOnce(&mut Indexes) -> R,
    ) -> io::Result<R> {
        let mut guard = lock(&self.indexes);
        let loaded_now = guard.is_none();
        if loaded_now {
            *guard = Some(self.load_indexes(interval)?);
        }
        let r = f(guard
            .as_mut()
            .ok_or_else(|| io::Error::other("indexes missing"))?);
        drop(guard);
        if loaded_now && !self.is_active() {
            self.budget.touch(self);
        }
        Ok(r)
    }

    /// Sets the in-memory indexes (active segments, recovery).
    pub(crate) fn set_indexes(&self, idx: Indexes) {
        *lock(&self.indexes) = Some(idx);
    }

    /// Loads the index files, or rebuilds them by scanning the log when they
    /// are missing or fail their checks.
    fn load_indexes(self: &Arc<Self>, interval: u64) -> io::Result<Indexes> {
        let size = self.size();
        let offsets = read_optional(&self.path("index"))?;
        let times = read_optional(&self.path("timeindex"))?;
        if let (Some(o), Some(t)) = (offsets, times) {
            if let Ok(offsets) = OffsetIndex::parse(&o, size) {
                if let Ok(times) = TimeIndex::parse(&t, None) {
                    // Cheap consistency check: the last offset entry must
                    // point at a batch whose last offset matches.
                    if self.entry_matches(offsets.last(), size)?
                        && self.time_entry_matches(&offsets, times.last(), size)?
                    {
                        let mut idx = Indexes::empty();
                        if let Some(t) = times.last() {
                            idx.max_timestamp = t.timestamp;
                            idx.offset_of_max = self.base_offset + i64::from(t.relative_offset);
                        }
                        idx.offsets = offsets;
                        idx.times = times;
                        return Ok(idx);
                    }
                }
            }
        }
        tracing::info!(segment = %self.log_path().display(), "rebuilding segment indexes");
        let outcome = self.scan(interval, true, size)?;
        let idx = outcome.indexes;
        if !self.is_active() {
            self.write_index_files(&idx)?;
        }
        Ok(idx)
    }

    fn entry_matches(self: &Arc<Self>, entry: Option<OffsetEntry>, size: u64) -> io::Result<bool> {
        let Some(e) = entry else { return Ok(true) };
        if size == 0 {
            return Ok(false);
        }
        let map = self.map(size)?;
        let data = map.prefix(size as usize);
        let pos = e.position as usize;
        Ok(
            match check_stored_batch(data.get(pos..).unwrap_or(&[]), false) {
                StoredBatch::Valid(h) => {
                    h.last_offset() == self.base_offset + i64::from(e.relative_offset)
                }
                _ => false,
            },
        )
    }

    /// Checks the last time index entry against the batch it names: that
    /// batch must end at the entry's offset and carry its timestamp.
    pub(crate) fn time_entry_matches(
        self: &Arc<Self>,
        offsets: &OffsetIndex,
        entry: Option<TimeEntry>,
        size: u64,
    ) -> io::Result<bool> {
        let Some(e) = entry else { return Ok(true) };
        if size == 0 {
            return Ok(false);
        }
        let target = self.base_offset + i64::from(e.relative_offset);
        let from = offsets
            .lookup(u64::from(e.relative_offset))
            .map_or(0, |x| x.position as usize);
        let map = self.map(size)?;
        let data = map.prefix(size as usize);
        Ok(match find_batch(data, from, target) {
            Found::At(p) => match check_stored_batch(&data[p..], false) {
                StoredBatch::Valid(h) => {
                    h.last_offset() == target && h.max_timestamp == e.timestamp
                }
                _ => false,
            },
            _ => false,
        })
    }

    /// Writes the index files from `idx` (not synced).
    pub(crate) fn write_index_files(&self, idx: &Indexes) -> io::Result<()> {
        write_file(&self.path("index"), &idx.offsets.to_bytes())?;
        write_file(&self.path("timeindex"), &idx.times.to_bytes())?;
        Ok(())
    }

    /// Turns the active segment into an inactive one: final time index
    /// entry, index files written. The caller syncs them later.
    pub(crate) fn roll_off(&self) -> io::Result<()> {
        let mut guard = lock(&self.indexes);
        if let Some(idx) = guard.as_mut() {
            idx.push_time_entry(self.base_offset);
            self.write_index_files(idx)?;
        }
        self.active.store(false, Ordering::Release);
        self.index_synced.store(false, Ordering::Release);
        Ok(())
    }

    /// Writes the active segment's index files (clean shutdown).
    pub(crate) fn persist_active_indexes(&self) -> io::Result<()> {
        let guard = lock(&self.indexes);
        if let Some(idx) = guard.as_ref() {
            let mut copy = idx.clone();
            copy.push_time_entry(self.base_offset);
            // Not fsynced: after a clean shutdown the active segment's index
            // is checked before it is trusted (entries against the batches
            // they name, CRCs of the tail), and an older or damaged copy
            // only costs a rescan.
            self.write_index_files(&copy)?;
        }
        Ok(())
    }

    /// Scans batches from the start, validating framing, offsets and (when
    /// `verify_crc`) CRCs, rebuilding the indexes. Stops at the first bad batch.
    pub(crate) fn scan(
        self: &Arc<Self>,
        interval: u64,
        verify_crc: bool,
        size: u64,
    ) -> io::Result<ScanOutcome> {
        let mut idx = Indexes::empty();
        let mut epoch_starts = Vec::new();
        let mut last_epoch = i32::MIN;
        if size == 0 {
            return Ok(ScanOutcome {
                valid_bytes: 0,
                indexes: idx,
                stopped_early: false,
                epoch_starts,
            });
        }
        let file = File::open(self.log_path())?;
        let len = usize::try_from(size).map_err(|_| io::Error::other("segment too large"))?;
        let map = SegmentMap::new(&file, len, true)?;
        let data = map.prefix(len);
        let mut pos = 0usize;
        let mut next_offset = self.base_offset;
        let mut stopped_early = false;
        while pos < data.len() {
            match check_stored_batch(&data[pos..], verify_crc) {
                StoredBatch::Valid(h) => {
                    let size = h.total_size().unwrap_or(usize::MAX);
                    let last = h.last_offset();
                    if h.base_offset < next_offset
                        || last - self.base_offset > i64::from(u32::MAX >> 1)
                        || u32::try_from(pos).is_err()
                    {
                        stopped_early = true;
                        break;
                    }
                    idx.on_batch(self.base_offset, pos as u64, &h, size as u64, interval);
                    if h.partition_leader_epoch >= 0 && h.partition_leader_epoch > last_epoch {
                        last_epoch = h.partition_leader_epoch;
                        epoch_starts.push((h.partition_leader_epoch, h.base_offset));
                    }
                    next_offset = last + 1;
                    pos += size;
                }
                StoredBatch::Truncated | StoredBatch::Corrupt(_) => {
                    stopped_early = true;
                    break;
                }
            }
        }
        Ok(ScanOutcome {
            valid_bytes: pos as u64,
            indexes: idx,
            stopped_early,
            epoch_starts,
        })
    }

    /// Cuts the log file to `len` bytes. Only during recovery, before any
    /// reader exists.
    pub(crate) fn truncate_file(&self, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.log_path())?;
        f.set_len(len)?;
        f.sync_all()?;
        self.size.store(len, Ordering::Release);
        self.flushed.store(len, Ordering::Release);
        Ok(())
    }

    /// The largest timestamp in the segment and the offset of its batch,
    /// `(-1, -1)` when none. Loads as little as possible.
    pub(crate) fn max_timestamp(self: &Arc<Self>, interval: u64) -> io::Result<(i64, i64)> {
        if let Some(idx) = lock(&self.indexes).as_ref() {
            return Ok((idx.max_timestamp, idx.offset_of_max));
        }
        let cached = self.cached_max_ts.load(Ordering::Acquire);
        if cached != i64::MIN {
            return Ok((cached, self.cached_max_ts_offset.load(Ordering::Acquire)));
        }
        self.with_indexes(interval, |i| (i.max_timestamp, i.offset_of_max))
    }

    /// Bytes of index memory held.
    pub(crate) fn index_memory(&self) -> usize {
        lock(&self.indexes).as_ref().map_or(0, Indexes::memory)
    }

    /// Reads whole batches starting with the first whose last offset is
    /// `>= offset`, stopping before any batch with base offset `>= max_offset`
    /// and (after the first) before exceeding `max_bytes`. `Ok(None)` when
    /// this segment has no such batch.
    pub(crate) fn read(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        interval: u64,
    ) -> io::Result<Option<Bytes>> {
        let size = self.size();
        if size == 0 {
            return Ok(None);
        }
        let rel = u64::try_from(offset - self.base_offset).unwrap_or(0);
        let hint = self.with_indexes(interval, |i| {
            i.offsets.lookup(rel).map_or(0, |e| e.position)
        })?;
        let map = self.map(size)?;
        let len = usize::try_from(size).map_err(|_| io::Error::other("segment too large"))?;
        let data = map.prefix(len);
        let start = match find_batch(data, hint as usize, offset) {
            Found::At(p) => Some(p),
            Found::NotHere => None,
            Found::BadHint if hint != 0 => match find_batch(data, 0, offset) {
                Found::At(p) => Some(p),
                _ => None,
            },
            Found::BadHint => None,
        };
        let Some(start) = start else { return Ok(None) };
        let mut end = start;
        while end < data.len() {
            let StoredBatch::Valid(h) = check_stored_batch(&data[end..], false) else {
                break;
            };
            if h.base_offset >= max_offset {
                break;
            }
            let Some(sz) = h.total_size() else { break };
            if end > start && end - start + sz > max_bytes {
                break;
            }
            end += sz;
        }
        if end == start {
            return Ok(Some(Bytes::new()));
        }
        Ok(Some(Bytes::from_owner(MapSlice { map, start, end })))
    }

    /// Iterates over the batches of the segment (for timestamp lookups and
    /// the cleaner): calls `f(position, header, bytes)` from `from_pos`
    /// until it returns `false`.
    pub(crate) fn for_each_batch(
        self: &Arc<Self>,
        from_pos: u64,
        mut f: impl FnMut(u64, &BatchHeader, Bytes) -> bool,
    ) -> io::Result<()> {
        let size = self.size();
        if size == 0 {
            return Ok(());
        }
        let map = self.map(size)?;
        let len = usize::try_from(size).map_err(|_| io::Error::other("segment too large"))?;
        let data = map.prefix(len);
        let mut pos = usize::try_from(from_pos).unwrap_or(usize::MAX);
        while pos < data.len() {
            let StoredBatch::Valid(h) = check_stored_batch(&data[pos..], false) else {
                break;
            };
            let Some(sz) = h.total_size() else { break };
            let bytes = Bytes::from_owner(MapSlice {
                map: map.clone(),
                start: pos,
                end: pos + sz,
            });
            if !f(pos as u64, &h, bytes) {
                break;
            }
            pos += sz;
        }
        Ok(())
    }

    /// Position of the batch holding `offset` according to the index.
    pub(crate) fn index_position(self: &Arc<Self>, offset: i64, interval: u64) -> io::Result<u64> {
        let rel = u64::try_from(offset - self.base_offset).unwrap_or(0);
        self.with_indexes(interval, |i| {
            u64::from(i.offsets.lookup(rel).map_or(0, |e| e.position))
        })
    }

    /// Time index lookup: the offset to start scanning from for `timestamp`.
    pub(crate) fn time_lookup(
        self: &Arc<Self>,
        timestamp: i64,
        interval: u64,
    ) -> io::Result<Option<i64>> {
        let base = self.base_offset;
        self.with_indexes(interval, |i| {
            i.times
                .lookup(timestamp)
                .map(|e| base + i64::from(e.relative_offset))
        })
    }

    /// Reads the header of the first batch (for segment.ms after a restart).
    pub(crate) fn first_batch_header(self: &Arc<Self>) -> io::Result<Option<BatchHeader>> {
        let mut out = None;
        self.for_each_batch(0, |_, h, _| {
            out = Some(*h);
            false
        })?;
        Ok(out)
    }
}

enum Found {
    At(usize),
    NotHere,
    BadHint,
}

/// From `from`, skips batches whose last offset is below `offset`.
fn find_batch(data: &[u8], from: usize, offset: i64) -> Found {
    let mut pos = from;
    let mut first = true;
    while pos < data.len() {
        let StoredBatch::Valid(h) = check_stored_batch(&data[pos..], false) else {
            return if first {
                Found::BadHint
            } else {
                Found::NotHere
            };
        };
        if first && from != 0 && h.base_offset > offset {
            return Found::BadHint;
        }
        first = false;
        if h.last_offset() >= offset {
            return Found::At(pos);
        }
        let Some(sz) = h.total_size() else {
            return Found::NotHere;
        };
        pos += sz;
    }
    if first && from != 0 {
        Found::BadHint
    } else {
        Found::NotHere
    }
}

fn write_all_vectored(file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut f = file;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match f.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Scans a log file outside any segment (a compaction swap file): returns
/// the bytes of valid batches from the start and the offset after the last.
pub(crate) fn scan_log_file(path: &Path, base_offset: i64) -> io::Result<(u64, u64, i64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((0, 0, base_offset));
    }
    let n = usize::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    let map = SegmentMap::new(&file, n, true)?;
    let data = map.prefix(n);
    let mut pos = 0usize;
    let mut next = base_offset;
    while pos < data.len() {
        match check_stored_batch(&data[pos..], true) {
            StoredBatch::Valid(h) if h.base_offset >= next => {
                next = h.last_offset() + 1;
                pos += h.total_size().unwrap_or(data.len());
            }
            _ => break,
        }
    }
    Ok((pos as u64, len, next))
}

/// Reads a whole file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match File::open(path) {
        Ok(mut f) => {
            let mut v = Vec::new();
            f.read_to_end(&mut v)?;
            Ok(Some(v))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates or replaces a file with `data` (no sync).
pub(crate) fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(data)?;
    Ok(())
}

/// Writes a file atomically: temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    replace_file(path, data)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Like [`write_atomic`] without the directory fsync, which the caller
/// does (sharing it with other changes in the directory).
pub(crate) fn replace_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// fsync of a directory, so that creates, renames and unlinks in it persist.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

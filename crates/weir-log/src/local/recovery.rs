//! Opening a partition directory: leftover cleanup, swap completion, crash
//! recovery.
//!
//! After a clean shutdown only the active segment's tail (from its last
//! index entry) is checked. After a crash, every segment from the one
//! holding the recovery point onwards is scanned batch by batch (length,
//! magic, CRC-32C, offsets increasing); the first bad batch and everything
//! after it is cut off, indexes are rebuilt, and the surviving tail is
//! fsynced before the partition is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checkpoint;
use super::partition::{Loaded, LocalPartition, LEADER_EPOCH_FILE, LOG_START_FILE};
use super::segment::{self, file_stem, parse_stem, Indexes, Segment, SEGMENT_EXTS};
use super::{io_err, Shared};
use crate::api::TopicPartition;
use crate::config::LogConfig;
use crate::error::LogError;

/// Per-file facts gathered from a directory listing.
#[derive(Debug, Default)]
struct Listing {
    logs: BTreeMap<i64, u64>,
    swaps: Vec<i64>,
}

fn ext_of(name: &str) -> Option<(&str, &str)> {
    // "<stem>.<rest>" where rest may be "log", "index.swap", ...
    let (stem, rest) = name.split_once('.')?;
    Some((stem, rest))
}

/// Removes leftovers and lists segment files.
fn list_dir(dir: &Path) -> Result<Listing, LogError> {
    let mut listing = Listing::default();
    let mut swap_indexes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if name.ends_with(".deleted") || name.ends_with(".cleaned") || name.ends_with(".tmp") {
            // Interrupted delete, unfinished compaction output, or an
            // interrupted checkpoint write: never part of the log.
            std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            continue;
        }
        let Some((stem, rest)) = ext_of(&name) else {
            continue;
        };
        let Some(base) = parse_stem(stem) else {
            continue;
        };
        match rest {
            "log" => {
                let len = entry.metadata().map_err(|e| io_err(&path, e))?.len();
                listing.logs.insert(base, len);
            }
            "log.swap" => listing.swaps.push(base),
            "index.swap" | "timeindex.swap" | "txnindex.swap" => swap_indexes.push((base, path)),
            _ => {}
        }
    }
    // Index swap files without their log swap are incomplete: drop them.
    for (base, path) in swap_indexes {
        if !listing.swaps.contains(&base) {
            std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
    }
    listing.swaps.sort_unstable();
    Ok(listing)
}

/// Finishes an interrupted compaction swap: the `.swap` segment (complete
/// and fsynced before it was renamed to `.swap`) replaces every old segment
/// whose base offset lies in `[swap base, swap next offset)`.
fn complete_swaps(dir: &Path, listing: &mut Listing) -> Result<(), LogError> {
    for base in std::mem::take(&mut listing.swaps) {
        let stem = file_stem(base);
        let swap_log = dir.join(format!("{stem}.log.swap"));
        let (valid, len, next) =
            segment::scan_log_file(&swap_log, base).map_err(|e| io_err(&swap_log, e))?;
        if valid != len {
            // A swap file is synced before its rename, so this means
            // damage; keep the originals instead.
            tracing::warn!(file = %swap_log.display(), "discarding damaged compaction swap file");
            for ext in SEGMENT_EXTS {
                let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}.swap")));
            }
            continue;
        }
        let replaced: Vec<i64> = listing
            .logs
            .range(base..next.max(base + 1))
            .map(|(b, _)| *b)
            .collect();
        for b in replaced {
            let s = file_stem(b);
            for ext in SEGMENT_EXTS {
                let p = dir.join(format!("{s}.{ext}"));
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&p, e)),
                }
            }
            listing.logs.remove(&b);
        }
        // Index files under the final names may belong to either side of
        // the swap: drop them (rebuilt on demand) unless a swap copy exists.
        for ext in ["index", "timeindex"] {
            let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}")));
        }
        for ext in ["index", "timeindex", "txnindex", "log"] {
            let from = dir.join(format!("{stem}.{ext}.swap"));
            let to = dir.join(format!("{stem}.{ext}"));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&from, e)),
            }
        }
        listing.logs.insert(base, len);
        segment::sync_dir(dir).map_err(|e| io_err(dir, e))?;
        tracing::info!(dir = %dir.display(), base, "completed interrupted compaction swap");
    }
    Ok(())
}

/// Opens (recovering if needed) or creates a partition.
pub(crate) fn open_partition(
    shared: &Arc<Shared>,
    tp: TopicPartition,
    dir: PathBuf,
    config: LogConfig,
    recovery_point: Option<i64>,
) -> Result<Arc<LocalPartition>, LogError> {
    let created = !dir.exists();
    if created {
        // Made durable by the first flush (the data directory is synced
        // before any offset of this partition counts as durable).
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    }
    let created_gen = if created {
        shared.data_dir_changed()
    } else {
        0
    };
    let mut listing = list_dir(&dir)?;
    complete_swaps(&dir, &mut listing)?;
    let interval = config.index_interval_bytes;
    let log_start_file = checkpoint::read_single(&dir.join(LOG_START_FILE))
        .ok()
        .flatten();

    let mut segments: Vec<Arc<Segment>> = listing
        .logs
        .iter()
        .map(|(&base, &len)| {
            Segment::new(
                &dir,
                base,
                shared.new_segment_id(),
                shared.budget.clone(),
                len,
                false,
                None,
            )
        })
        .collect();

    // Where scanning starts.
    let clean = shared.was_clean && !created;
    let first_scan = if clean || segments.is_empty() {
        segments.len().saturating_sub(1)
    } else {
        match recovery_point {
            Some(rp) => segments
                .partition_point(|s| s.base_offset() <= rp)
                .saturating_sub(1),
            None => 0,
        }
    };
    let mut scanned_epochs: Vec<(i32, i64)> = Vec::new();
    let mut dir_changed = false;
    let mut i = first_scan;
    let mut cut_after: Option<usize> = None;
    let mut prev_last: Option<i64> = None;
    let mut first_scanned: Option<i64> = None;
    while i < segments.len() {
        let seg = segments[i].clone();
        if let Some(pl) = prev_last {
            if seg.base_offset() <= pl {
                tracing::warn!(segment = %seg.log_path().display(), "segment overlaps its predecessor");
                cut_after = Some(i - 1);
                break;
            }
        }
        let is_last = i + 1 == segments.len();
        let size = seg.size();
        // Clean shutdown: trust the active segment's index, check only the
        // tail after its last entry.
        if clean && is_last {
            if let Some(idx) = trusted_tail(&seg, interval)? {
                seg.set_indexes(idx);
                break;
            }
        }
        let outcome = seg
            .scan(interval, true, size)
            .map_err(|e| io_err(&seg.log_path(), e))?;
        if outcome.valid_bytes < size {
            tracing::warn!(
                segment = %seg.log_path().display(),
                valid = outcome.valid_bytes,
                size,
                "truncating torn or corrupt segment tail"
            );
            seg.truncate_file(outcome.valid_bytes)
                .map_err(|e| io_err(&seg.log_path(), e))?;
            dir_changed = true;
            cut_after = Some(i);
        } else if outcome.stopped_early {
            cut_after = Some(i);
        }
        scanned_epochs.extend(outcome.epoch_starts.iter().copied());
        if !is_last || cut_after.is_some() {
            // Inactive (or becoming the last): persist rebuilt indexes.
            let mut idx = outcome.indexes.clone();
            idx.push_time_entry(seg.base_offset());
            seg.write_index_files(&idx)
                .map_err(|e| io_err(&seg.log_path(), e))?;
        }
        // The bytes may so far only be in the page cache (a killed process
        // leaves them there): the next flush syncs them, and the durable
        // point starts before them.
        first_scanned.get_or_insert(seg.base_offset());
        seg.mark_unflushed();
        seg.mark_index_unsynced();
        if outcome.indexes.last_offset >= 0 {
            prev_last = Some(outcome.indexes.last_offset);
        }
        seg.set_indexes(outcome.indexes);
        if cut_after.is_some() {
            break;
        }
        i += 1;
    }
    if let Some(k) = cut_after {
        // Everything after a torn segment was never acknowledged.
        for seg in segments.drain(k + 1..) {
            for ext in SEGMENT_EXTS {
                let p = seg.path(ext);
                let _ = std::fs::remove_file(&p);
            }
            dir_changed = true;
        }
    }
    // Offsets must increase across segments; a segment whose first batch
    // is below the previous segment's end is damage (drop it and the rest).
    if segments.is_empty() {
        let base = log_start_file.unwrap_or(0).max(0);
        let path = dir.join(format!("{}.log", file_stem(base)));
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        dir_changed = true;
        segments.push(Segment::new(
            &dir,
            base,
            shared.new_segment_id(),
            shared.budget.clone(),
            0,
            true,
            Some(Indexes::empty()),
        ));
    }
    // The last segment is the active one; make sure its indexes are in
    // memory (they are never evicted while active).
    let active = segments[segments.len() - 1].clone();
    let active_idx = active
        .with_indexes(interval, |i| i.clone())
        .map_err(|e| io_err(&active.log_path(), e))?;
    let active = Segment::new(
        &dir,
        active.base_offset(),
        shared.new_segment_id(),
        shared.budget.clone(),
        active.size(),
        true,
        Some(active_idx.clone()),
    );
    if first_scanned.is_some_and(|b| b <= active.base_offset()) {
        active.mark_unflushed();
    }
    let n = segments.len();
    segments[n - 1] = active.clone();
    let log_end = if active_idx.last_offset >= 0 {
        active_idx.last_offset + 1
    } else {
        active.base_offset()
    };
    if dir_changed && !created {
        segment::sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
    }
    let first_base = segments[0].base_offset();
    let log_start = log_start_file
        .unwrap_or(first_base)
        .max(first_base)
        .min(log_end);

    // Leader epochs: the checkpoint, cut to the log, plus epochs seen in
    // the scanned batches.
    let epoch_path = dir.join(LEADER_EPOCH_FILE);
    let stored = checkpoint::read_epochs(&epoch_path).map_err(|e| io_err(&epoch_path, e))?;
    let mut epochs: Vec<(i32, i64)> = stored
        .iter()
        .copied()
        .filter(|&(_, o)| o < log_end)
        .collect();
    for (e, o) in scanned_epochs {
        if o < log_end && epochs.last().is_none_or(|&(le, _)| e > le) {
            epochs.push((e, o));
        }
    }
    LocalPartition::truncate_epochs_from_start(&mut epochs, log_start);
    let epochs_dirty = epochs != stored;
    let first_batch_ts = match active.first_batch_header() {
        Ok(Some(h)) => h.max_timestamp,
        _ => -1,
    };
    let producers = super::txn_index::rebuild(&dir, &segments, log_end, shared.now_ms())?;
    let loaded = Loaded {
        segments,
        log_start,
        log_end,
        epochs,
        first_batch_ts,
        durable: first_scanned.unwrap_or(log_end).min(log_end),
        epochs_dirty,
        dir_dirty: created,
        parent_dirty: created,
        created_gen,
        producers,
    };
    tracing::debug!(partition = %tp, log_start, log_end, clean, "opened partition");
    Ok(LocalPartition::new(shared.clone(), tp, dir, config, loaded))
}

/// After a clean shutdown: loads the active segment's indexes from disk and
/// checks the batches after the last index entry. `None` when the index is
/// unusable or the tail is bad (the caller then scans the whole segment).
fn trusted_tail(seg: &Arc<Segment>, interval: u64) -> Result<Option<Indexes>, LogError> {
    let size = seg.size();
    let offsets =
        segment::read_optional(&seg.path("index")).map_err(|e| io_err(&seg.log_path(), e))?;
    let times =
        segment::read_optional(&seg.path("timeindex")).map_err(|e| io_err(&seg.log_path(), e))?;
    let (Some(o), Some(t)) = (offsets, times) else {
        return Ok(None);
    };
    let Ok(offsets) = super::index::OffsetIndex::parse(&o, size.max(1)) else {
        return Ok(None);
    };
    let Ok(times) = super::index::TimeIndex::parse(&t, None) else {
        return Ok(None);
    };
    if size == 0 {
        let mut idx = Indexes::empty();
        idx.offsets = offsets;
        idx.times = times;
        return Ok(if idx.offsets.is_empty() {
            Some(idx)
        } else {
            None
        });
    }
    let start = offsets.last().map_or(0, |e| u64::from(e.position));
    let mut idx = Indexes::empty();
    if let Some(t) = times.last() {
        idx.max_timestamp = t.timestamp;
        idx.offset_of_max = seg.base_offset() + i64::from(t.relative_offset);
    }
    let mut ok = true;
    let mut pos = start;
    let mut first = true;
    let mut bytes_since = 0u64;
    seg.for_each_batch(start, |p, h, bytes| {
        if first {
            first = false;
            if let Some(e) = offsets.last() {
                if h.last_offset() != seg.base_offset() + i64::from(e.relative_offset) {
                    ok = false;
                    return false;
                }
            }
        }
        if crate::batch::compute_crc(&bytes) != h.crc {
            ok = false;
            return false;
        }
        let sz = bytes.len() as u64;
        if h.max_timestamp > idx.max_timestamp {
            idx.max_timestamp = h.max_timestamp;
            idx.offset_of_max = h.last_offset();
        }
        idx.last_offset = h.last_offset();
        if p > start {
            bytes_since += sz;
        } else {
            bytes_since = sz;
        }
        pos = p + sz;
        true
    })
    .map_err(|e| io_err(&seg.log_path(), e))?;
    let _ = interval;
    if !ok || pos != size {
        return Ok(None);
    }
    if !seg
        .time_entry_matches(&offsets, times.last(), size)
        .map_err(|e| io_err(&seg.log_path(), e))?
    {
        return Ok(None);
    }
    idx.offsets = offsets;
    idx.times = times;
    idx.bytes_since_entry = bytes_since;
    Ok(Some(idx))
}

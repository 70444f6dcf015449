//! Log compaction (`cleanup.policy=compact`), after Kafka's log cleaner.
//!
//! One pass over a partition:
//!
//! 1. The *dirty section* runs from the first dirty offset (the cleaner
//!    checkpoint, at least the log start) to the first uncleanable offset:
//!    the active segment's base, the first segment younger than
//!    `min.compaction.lag.ms`, and the last stable offset. The pass runs
//!    when dirty bytes / (clean + dirty bytes) reaches
//!    `min.cleanable.dirty.ratio`, or when the dirty section is older than
//!    `max.compaction.lag.ms`.
//! 2. An offset map (fixed size, `cleaner_buffer_bytes`: 128-bit key hash →
//!    latest offset) is built over the dirty section. When it fills up, the
//!    pass stops at that batch ("clean the part that fits"); records past
//!    that point are left for the next pass.
//! 3. Every segment from the start up to the end of the map is rewritten,
//!    in groups no bigger than `segment.bytes`. A record is kept when its
//!    offset is past the map, or its key's latest offset is its own (or the
//!    key is not in the map). Records without a key are dropped. A
//!    tombstone (null value) is dropped once it has been through a pass
//!    (it lies before the first dirty offset) and its segment's largest
//!    timestamp is older than `delete.retention.ms`.
//!    Batches keep their base offset, last offset delta, base timestamp,
//!    producer id/epoch/sequence and codec; the surviving records' bytes are
//!    copied unchanged and recompressed with kafka-protocol's codec. Batches
//!    left empty are dropped. Control batches and transactional batches are
//!    kept as they are for now: aborted-transaction removal and marker
//!    cleanup arrive with transactions.
//! 4. Output goes to `*.cleaned` files, which are fsynced and renamed to
//!    `*.swap` (the `.log.swap` last); then, holding the partition lock only
//!    for this, the replaced segments are renamed to `*.deleted`, the swap
//!    files to their final names, and the directory fsynced. Recovery
//!    deletes `*.cleaned` files and completes a swap it finds.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::checkpoint;
use super::partition::LocalPartition;
use super::segment::{self, file_stem, lock, Indexes, Segment, SEGMENT_EXTS};
use super::{io_err, Shared};
use crate::batch::{self, BatchHeader, OffsetMap};
use crate::config::LogConfig;
use crate::error::LogError;

/// Name of the per-partition cleaner checkpoint (first dirty offset).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// What the cleaner knows about a partition before a pass.
#[derive(Debug)]
struct Plan {
    segments: Vec<Arc<Segment>>,
    first_dirty: i64,
    first_uncleanable: i64,
    ratio: f64,
}

fn read_checkpoint(p: &LocalPartition) -> i64 {
    checkpoint::read_single(&p.dir().join(CLEANER_CHECKPOINT_FILE))
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn plan(p: &LocalPartition, config: &LogConfig, now: i64) -> Result<Option<Plan>, LogError> {
    let interval = config.index_interval_bytes;
    let (segments, log_start, lso) = {
        let st = lock(&p.state);
        (
            st.segments.as_ref().clone(),
            st.log_start,
            st.offsets().last_stable,
        )
    };
    if segments.len() < 2 {
        return Ok(None);
    }
    let active_base = segments[segments.len() - 1].base_offset();
    let mut first_uncleanable = active_base.min(lso);
    let first_dirty = read_checkpoint(p)
        .max(log_start)
        .max(segments[0].base_offset());
    if config.min_compaction_lag_ms > 0 {
        for (i, s) in segments[..segments.len() - 1].iter().enumerate() {
            if segments[i + 1].base_offset() <= first_dirty {
                continue;
            }
            let (max_ts, _) = s
                .max_timestamp(interval)
                .map_err(|e| io_err(&s.log_path(), e))?;
            if max_ts > now.saturating_sub(config.min_compaction_lag_ms) {
                first_uncleanable = first_uncleanable.min(s.base_offset());
                break;
            }
        }
    }
    if first_dirty >= first_uncleanable {
        return Ok(None);
    }
    let mut clean_bytes = 0u64;
    let mut dirty_bytes = 0u64;
    let mut dirty_first_ts: Option<i64> = None;
    for (i, s) in segments.iter().enumerate() {
        let next = segments.get(i + 1).map_or(i64::MAX, |n| n.base_offset());
        if s.base_offset() >= first_uncleanable {
            break;
        }
        if next <= first_dirty {
            clean_bytes += s.size();
        } else {
            dirty_bytes += s.size();
            if dirty_first_ts.is_none() {
                dirty_first_ts = s
                    .first_batch_header()
                    .ok()
                    .flatten()
                    .map(|h| h.max_timestamp);
            }
        }
    }
    let total = clean_bytes + dirty_bytes;
    let ratio = if total == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total as f64
    };
    let overdue = config.max_compaction_lag_ms < i64::MAX
        && dirty_first_ts.is_some_and(|ts| now.saturating_sub(ts) > config.max_compaction_lag_ms);
    if dirty_bytes == 0 || (ratio < config.min_cleanable_dirty_ratio && !overdue) {
        return Ok(None);
    }
    Ok(Some(Plan {
        segments,
        first_dirty,
        first_uncleanable,
        ratio,
    }))
}

/// Runs one pass over every compacted partition that needs it, dirtiest
/// first. Returns how many partitions were cleaned.
pub(crate) fn clean_all(shared: &Arc<Shared>, _force: bool) -> Result<usize, LogError> {
    let now = shared.now_ms();
    let mut candidates = Vec::new();
    for p in shared.partitions_snapshot() {
        if p.is_removed() {
            continue;
        }
        let config = p.config();
        if !config.cleanup_compact {
            continue;
        }
        match plan(&p, &config, now) {
            Ok(Some(plan)) => candidates.push((plan.ratio, p)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(partition = %p.topic_partition(), error = %e, "cleaner planning failed")
            }
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut map = OffsetMap::new(shared.config.cleaner_buffer_bytes);
    let mut cleaned = 0;
    for (_, p) in candidates {
        if shared.stopping() {
            break;
        }
        map.clear();
        match clean_partition(shared, &p, &mut map, now) {
            Ok(true) => cleaned += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(partition = %p.topic_partition(), error = %e, "cleaning failed")
            }
        }
    }
    Ok(cleaned)
}

/// Cleans one partition if its plan still holds. Returns whether anything
/// was rewritten.
pub(crate) fn clean_partition(
    shared: &Arc<Shared>,
    p: &Arc<LocalPartition>,
    map: &mut OffsetMap,
    now: i64,
) -> Result<bool, LogError> {
    let _guard = lock(&p.cleaning);
    let config = p.config();
    if !config.cleanup_compact {
        return Ok(false);
    }
    let Some(plan) = plan(p, &config, now)? else {
        return Ok(false);
    };
    let interval = config.index_interval_bytes;

    // 2. Offset map over the dirty section.
    let mut map_end = plan.first_dirty;
    let mut full = false;
    for (i, s) in plan.segments.iter().enumerate() {
        let next = plan
            .segments
            .get(i + 1)
            .map_or(i64::MAX, |n| n.base_offset());
        if next <= plan.first_dirty {
            continue;
        }
        if s.base_offset() >= plan.first_uncleanable || full {
            break;
        }
        let from = s
            .index_position(plan.first_dirty.max(s.base_offset()), interval)
            .unwrap_or(0);
        let mut err = None;
        s.for_each_batch(from, |_, h, bytes| {
            if h.base_offset >= plan.first_uncleanable || shared.stopping() {
                return false;
            }
            if h.last_offset() < plan.first_dirty {
                return true;
            }
            if h.is_control() || h.is_transactional() {
                map_end = h.last_offset() + 1;
                return true;
            }
            if map.room() < usize::try_from(h.records_count.max(0)).unwrap_or(usize::MAX) {
                full = true;
                return false;
            }
            // Undecodable batches are kept as they are; they add nothing.
            if let Err(e) = batch::walk_records(&bytes, |r| {
                if let Some(k) = r.key {
                    map.put(k, r.offset);
                }
            }) {
                err = Some(e);
            }
            map_end = h.last_offset() + 1;
            true
        })
        .map_err(|e| io_err(&s.log_path(), e))?;
        if let Some(e) = err {
            tracing::debug!(partition = %p.topic_partition(), error = %e, "skipping undecodable batch");
        }
    }
    if shared.stopping() {
        return Ok(false);
    }
    if map_end <= plan.first_dirty {
        tracing::warn!(
            partition = %p.topic_partition(),
            "cleaner buffer too small for one batch; raise cleaner_buffer_bytes"
        );
        return Ok(false);
    }

    // 3. Rewrite segments below map_end in groups.
    let candidates: Vec<Arc<Segment>> = plan
        .segments
        .iter()
        .filter(|s| s.base_offset() < map_end)
        .cloned()
        .collect();
    let candidates: Vec<Arc<Segment>> = {
        // Never the active segment.
        let n = plan.segments.len();
        let active = &plan.segments[n - 1];
        candidates
            .into_iter()
            .filter(|s| !Arc::ptr_eq(s, active))
            .collect()
    };
    let max_group = config
        .segment_bytes
        .clamp(batch::HEADER_SIZE as u64, i32::MAX as u64);
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    for s in candidates {
        match groups.last_mut() {
            Some(g)
                if g.iter().map(|x| x.size()).sum::<u64>() + s.size() <= max_group
                    && s.base_offset() - g[0].base_offset() < i64::from(i32::MAX) / 2 =>
            {
                g.push(s)
            }
            _ => groups.push(vec![s]),
        }
    }
    let delete_horizon = now.saturating_sub(config.delete_retention_ms);
    let ctx = Ctx {
        map,
        map_end,
        first_dirty: plan.first_dirty,
        delete_horizon,
        interval,
    };
    for group in groups {
        if shared.stopping() {
            return Ok(false);
        }
        if !clean_group(p, &group, &ctx, &config)? {
            return Ok(false);
        }
    }
    let cp = p.dir().join(CLEANER_CHECKPOINT_FILE);
    checkpoint::write_single(&cp, map_end).map_err(|e| io_err(&cp, e))?;
    tracing::debug!(partition = %p.topic_partition(), map_end, "cleaned");
    Ok(true)
}

struct Ctx<'a> {
    map: &'a OffsetMap,
    map_end: i64,
    first_dirty: i64,
    delete_horizon: i64,
    interval: u64,
}

/// Removes the `.cleaned`/`.swap` files of an abandoned group.
fn remove_outputs(dir: &std::path::Path, stem: &str) {
    for ext in SEGMENT_EXTS {
        for suffix in ["cleaned", "swap"] {
            let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}.{suffix}")));
        }
    }
}

/// Filters one batch; `None` when nothing survives.
fn filter_batch(h: &BatchHeader, bytes: &Bytes, seg_max_ts: i64, ctx: &Ctx<'_>) -> Option<Bytes> {
    let rules = batch::CleanRules {
        latest: |k: &[u8]| ctx.map.get(k),
        map_end: ctx.map_end,
        first_dirty: ctx.first_dirty,
        delete_horizon: ctx.delete_horizon,
    };
    batch::clean_batch(h, bytes, seg_max_ts, &rules).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "re-encoding a cleaned batch failed; keeping it whole");
        Some(bytes.clone())
    })
}

/// Rewrites one group of segments into one and swaps it in. Returns
/// `false` when the partition changed underneath and the group was dropped.
fn clean_group(
    p: &Arc<LocalPartition>,
    group: &[Arc<Segment>],
    ctx: &Ctx<'_>,
    config: &LogConfig,
) -> Result<bool, LogError> {
    let dir = p.dir().to_path_buf();
    let base = group[0].base_offset();
    let stem = file_stem(base);
    let cleaned = |ext: &str| dir.join(format!("{stem}.{ext}.cleaned"));
    let swap = |ext: &str| dir.join(format!("{stem}.{ext}.swap"));
    let log_path = cleaned("log");
    let result = (|| -> Result<(u64, Indexes), LogError> {
        let file = File::create(&log_path).map_err(|e| io_err(&log_path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut idx = Indexes::empty();
        let mut pos = 0u64;
        for seg in group {
            let (seg_max_ts, _) = seg
                .max_timestamp(ctx.interval)
                .map_err(|e| io_err(&seg.log_path(), e))?;
            let mut werr = None;
            seg.for_each_batch(0, |_, h, bytes| {
                let Some(out) = filter_batch(h, &bytes, seg_max_ts, ctx) else {
                    return true;
                };
                let Some(oh) = BatchHeader::parse(&out) else {
                    return true;
                };
                if let Err(e) = w.write_all(&out) {
                    werr = Some(e);
                    return false;
                }
                idx.on_batch(base, pos, &oh, out.len() as u64, ctx.interval);
                pos += out.len() as u64;
                true
            })
            .map_err(|e| io_err(&seg.log_path(), e))?;
            if let Some(e) = werr {
                return Err(io_err(&log_path, e));
            }
        }
        let file = w
            .into_inner()
            .map_err(|e| io_err(&log_path, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&log_path, e))?;
        idx.push_time_entry(base);
        // Control and transactional batches survive cleaning unchanged, so
        // the group's aborted transactions carry over as they are.
        let mut txns = Vec::new();
        for seg in group {
            for e in super::txn_index::read(&super::txn_index::index_path(&dir, seg.base_offset()))?
            {
                txns.extend_from_slice(&super::txn_index::encode(&e));
            }
        }
        for (ext, data) in [
            ("index", idx.offsets.to_bytes()),
            ("timeindex", idx.times.to_bytes()),
            ("txnindex", txns),
        ] {
            let path = cleaned(ext);
            let mut f = File::create(&path).map_err(|e| io_err(&path, e))?;
            f.write_all(&data)
                .and_then(|_| f.sync_all())
                .map_err(|e| io_err(&path, e))?;
        }
        // The log swap file last: its presence means the swap is complete.
        for ext in ["index", "timeindex", "txnindex", "log"] {
            std::fs::rename(cleaned(ext), swap(ext)).map_err(|e| io_err(&swap(ext), e))?;
        }
        segment::sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
        Ok((pos, idx))
    })();
    let (size, idx) = match result {
        Ok(v) => v,
        Err(e) => {
            remove_outputs(&dir, &stem);
            return Err(e);
        }
    };

    // 4. Swap, under the partition lock.
    let mut st = lock(&p.state);
    let segs = st.segments.clone();
    let Some(first) = segs.iter().position(|s| Arc::ptr_eq(s, &group[0])) else {
        drop(st);
        remove_outputs(&dir, &stem);
        return Ok(false);
    };
    let still_there = group.iter().enumerate().all(|(i, g)| {
        segs.get(first + i).is_some_and(|s| Arc::ptr_eq(s, g)) && first + i + 1 < segs.len()
    });
    if !still_there || p.is_removed() {
        drop(st);
        remove_outputs(&dir, &stem);
        return Ok(false);
    }
    let swap_result = (|| -> Result<(), LogError> {
        for old in group {
            old.mark_deleted().map_err(|e| io_err(&old.log_path(), e))?;
        }
        for ext in ["index", "timeindex", "txnindex", "log"] {
            let to: PathBuf = dir.join(format!("{stem}.{ext}"));
            std::fs::rename(swap(ext), &to).map_err(|e| io_err(&to, e))?;
        }
        segment::sync_dir(&dir).map_err(|e| io_err(&dir, e))
    })();
    if let Err(e) = swap_result {
        // The on-disk state is still recoverable (recovery completes the
        // swap); stop using the partition until it is reopened.
        drop(st);
        tracing::error!(partition = %p.topic_partition(), error = %e, "compaction swap failed");
        return Err(e);
    }
    let new_seg = Segment::new(
        &dir,
        base,
        p.shared.new_segment_id(),
        p.shared.budget.clone(),
        size,
        false,
        Some(idx),
    );
    let mut v: Vec<Arc<Segment>> = Vec::with_capacity(segs.len() - group.len() + 1);
    v.extend_from_slice(&segs[..first]);
    v.push(new_seg.clone());
    v.extend_from_slice(&segs[first + group.len()..]);
    st.segments = Arc::new(v);
    drop(st);
    new_seg.release_resources();
    p.retire_segments(group.to_vec(), config);
    Ok(true)
}

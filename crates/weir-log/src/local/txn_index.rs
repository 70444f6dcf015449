//! Per-segment files of producer state: the aborted-transaction index
//! (`<base>.txnindex`, Kafka's layout) and producer state snapshots
//! (`<offset>.snapshot`), plus rebuilding producer state when a partition
//! opens.
//!
//! Consistency rule: a snapshot at offset `S` is written only after the
//! transaction indexes of the segments below `S` are fsynced, so on open
//! every index entry below the snapshot is trusted, and entries at or above
//! it are dropped and rebuilt by replaying the log from `S`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::io_err;
use super::segment::{self, file_stem, Segment};
use crate::error::LogError;
use crate::producer::{self, AbortedTxn, ProducerStates};

/// Size of one transaction index entry.
pub(crate) const ENTRY_SIZE: usize = 34;
/// Snapshots kept per partition (older ones are the fallback when a crash
/// cut the log below a newer one).
const SNAPSHOTS_KEPT: usize = 3;

pub(crate) fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.txnindex", file_stem(base)))
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{}.snapshot", file_stem(offset)))
}

pub(crate) fn encode(e: &AbortedTxn) -> [u8; ENTRY_SIZE] {
    let mut b = [0u8; ENTRY_SIZE];
    // Version 0, then the four fields, big-endian.
    b[2..10].copy_from_slice(&e.producer_id.to_be_bytes());
    b[10..18].copy_from_slice(&e.first_offset.to_be_bytes());
    b[18..26].copy_from_slice(&e.last_offset.to_be_bytes());
    b[26..34].copy_from_slice(&e.last_stable_offset.to_be_bytes());
    b
}

fn decode(b: &[u8]) -> Option<AbortedTxn> {
    let i64_at = |at: usize| -> Option<i64> {
        Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    if b.get(0..2)? != [0, 0] {
        return None;
    }
    Some(AbortedTxn {
        producer_id: i64_at(2)?,
        first_offset: i64_at(10)?,
        last_offset: i64_at(18)?,
        last_stable_offset: i64_at(26)?,
    })
}

/// Reads a transaction index; a torn last entry is ignored.
pub(crate) fn read(path: &Path) -> Result<Vec<AbortedTxn>, LogError> {
    let Some(data) = segment::read_optional(path).map_err(|e| io_err(path, e))? else {
        return Ok(Vec::new());
    };
    Ok(data.chunks_exact(ENTRY_SIZE).filter_map(decode).collect())
}

/// Appends one entry (made durable by the next snapshot or clean close).
pub(crate) fn append(path: &Path, e: &AbortedTxn) -> Result<(), LogError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&encode(e)))
        .map_err(|err| io_err(path, err))
}

/// Replaces a transaction index with `entries` (removing it when empty),
/// fsynced.
pub(crate) fn write(path: &Path, entries: &[AbortedTxn]) -> Result<(), LogError> {
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path, e)),
            _ => Ok(()),
        };
    }
    let data: Vec<u8> = entries.iter().flat_map(encode).collect();
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&data).and_then(|()| f.sync_data()))
        .map_err(|e| io_err(path, e))
}

/// Fsyncs a transaction index if it exists.
pub(crate) fn sync(path: &Path) -> Result<(), LogError> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data().map_err(|e| io_err(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(o) = name.strip_suffix(".snapshot").and_then(segment::parse_stem) {
            v.push(o);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Writes a snapshot of `states` at `offset` and prunes old ones. The
/// caller has fsynced the transaction indexes below `offset`.
pub(crate) fn write_snapshot(
    dir: &Path,
    states: &ProducerStates,
    offset: i64,
) -> Result<(), LogError> {
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    let data = states.encode_snapshot(offset);
    // Not fsynced: a snapshot lost or torn by a crash fails its checksum
    // and the open falls back to an older one or a full replay.
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&data))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| io_err(&path, e))?;
    let all = snapshot_offsets(dir)?;
    for o in all.iter().rev().skip(SNAPSHOTS_KEPT) {
        let _ = std::fs::remove_file(snapshot_path(dir, *o));
    }
    Ok(())
}

/// Producer state and aborted transactions of a partition being opened.
#[derive(Debug, Default)]
pub(crate) struct Rebuilt {
    pub(crate) states: ProducerStates,
    pub(crate) aborted: Vec<AbortedTxn>,
}

/// Loads the newest usable snapshot and replays the log after it up to
/// `log_end`, rebuilding the transaction index entries from there on.
/// Replayed producers count as active at `now_ms`.
pub(crate) fn rebuild(
    dir: &Path,
    segments: &[Arc<Segment>],
    log_end: i64,
    now_ms: i64,
) -> Result<Rebuilt, LogError> {
    let first_base = segments.first().map_or(0, |s| s.base_offset());
    let mut snapshot = None;
    for o in snapshot_offsets(dir)?.into_iter().rev() {
        let path = snapshot_path(dir, o);
        if o > log_end {
            // Taken before a crash cut the log below it.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let data = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        match ProducerStates::decode_snapshot(&data) {
            Ok((off, s)) if off == o => {
                snapshot = Some((o, s));
                break;
            }
            _ => tracing::warn!(file = %path.display(), "ignoring damaged producer snapshot"),
        }
    }
    let (start, mut states) = snapshot.unwrap_or((first_base, ProducerStates::default()));
    let start = start.max(first_base);
    let mut aborted = Vec::new();
    for seg in segments {
        let entries = read(&index_path(dir, seg.base_offset()))?;
        aborted.extend(
            entries
                .into_iter()
                .filter(|e| e.last_offset < start && e.last_offset >= first_base),
        );
    }
    let trusted = aborted.len();
    if start < log_end {
        let from = segments
            .partition_point(|s| s.base_offset() <= start)
            .saturating_sub(1);
        for seg in &segments[from..] {
            seg.for_each_batch(0, |_, h, bytes| {
                if h.last_offset() < start || h.producer_id < 0 {
                    return true;
                }
                let control = if h.is_control() {
                    producer::control_type(&bytes)
                } else {
                    None
                };
                if h.is_control() && control.is_none() {
                    return true;
                }
                if let Some(a) = states.apply(h, control, now_ms) {
                    aborted.push(a);
                }
                true
            })
            .map_err(|e| io_err(&seg.log_path(), e))?;
        }
        // Rewrite the indexes of the replayed segments.
        for (i, seg) in segments.iter().enumerate().skip(from) {
            let end = segments.get(i + 1).map_or(i64::MAX, |s| s.base_offset());
            let mine: Vec<AbortedTxn> = aborted
                .iter()
                .filter(|e| e.last_offset >= seg.base_offset() && e.last_offset < end)
                .copied()
                .collect();
            write(&index_path(dir, seg.base_offset()), &mine)?;
        }
        tracing::debug!(dir = %dir.display(), from = start, rebuilt = aborted.len() - trusted, "replayed producer state");
    }
    aborted.sort_by_key(|e| e.last_offset);
    Ok(Rebuilt { states, aborted })
}

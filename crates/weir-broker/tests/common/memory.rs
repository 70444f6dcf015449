//! An in-memory storage engine for the broker's tests: record batches in
//! a `Vec`, validated and tracked with weir-log's format code
//! (`weir_log::batch`, `weir_log::producer`), sharing nothing with the
//! local engine's storage. Running the API tests over it shows the broker
//! needs only the storage contract.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;
use weir_log::batch::{self, BatchHeader, HEADER_SIZE};
use weir_log::producer::{self, AbortedTxn, ProducerEntry, ProducerStates, Verdict};
use weir_log::{
    AppendInfo, BoxFuture, LogConfig, LogEngine, LogError, LogOffsets, PartitionLog, ReadLimit,
    ReadResult, TimestampOffset, TopicPartition,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now<T: Send + 'static>(r: Result<T, LogError>) -> BoxFuture<'static, Result<T, LogError>> {
    Box::pin(std::future::ready(r))
}

/// One engine per data directory for the whole test process, so a broker
/// reopened on the same directory finds its data (as after a restart).
pub fn engine_for(dir: &Path) -> Arc<MemoryEngine> {
    static ENGINES: OnceLock<Mutex<HashMap<PathBuf, Arc<MemoryEngine>>>> = OnceLock::new();
    lock(ENGINES.get_or_init(Default::default))
        .entry(dir.to_path_buf())
        .or_default()
        .clone()
}

/// Partitions kept in memory.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    partitions: Mutex<HashMap<TopicPartition, Arc<MemoryPartition>>>,
}

#[derive(Debug)]
struct MemoryPartition {
    tp: TopicPartition,
    config: Mutex<LogConfig>,
    state: Mutex<State>,
    end: watch::Sender<i64>,
}

#[derive(Debug, Default)]
struct State {
    /// Whole batches as stored, with their first and last offsets.
    batches: Vec<(i64, i64, Bytes)>,
    log_start: i64,
    log_end: i64,
    producers: ProducerStates,
    aborted: Vec<AbortedTxn>,
    /// Leader epochs and the offsets where they start.
    epochs: Vec<(i32, i64)>,
    removed: bool,
}

impl State {
    fn offsets(&self) -> LogOffsets {
        let lso = self
            .producers
            .first_unstable()
            .map_or(self.log_end, |o| o.min(self.log_end));
        LogOffsets {
            log_start: self.log_start,
            high_watermark: self.log_end,
            last_stable: lso,
            log_end: self.log_end,
        }
    }
}

impl MemoryPartition {
    fn state(&self) -> Result<MutexGuard<'_, State>, LogError> {
        let st = lock(&self.state);
        if st.removed {
            return Err(LogError::Removed {
                partition: self.tp.to_string(),
            });
        }
        Ok(st)
    }

    fn append_now(&self, records: &Bytes, epoch: i32) -> Result<AppendInfo, LogError> {
        let config = lock(&self.config).clone();
        let now_ms = weir_log::Clock::system().now_ms();
        let v = batch::validate_append(records, &config, now_ms)?;
        let headers: Vec<Option<BatchHeader>> = v
            .batches
            .iter()
            .map(|b| BatchHeader::parse(&b.header))
            .collect();
        let producer_batch = match headers.as_slice() {
            [Some(h)] if h.producer_id >= 0 => Some(*h),
            many if many.iter().flatten().any(|h| h.producer_id >= 0) => {
                return Err(LogError::InvalidRecord {
                    reason: "a batch with a producer id must be the only batch for its partition"
                        .into(),
                })
            }
            _ => None,
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
        let mut st = self.state()?;
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
        let base_offset = st.log_end;
        let mut next = base_offset;
        for b in &v.batches {
            let mut header = b.header;
            batch::set_base_offset(&mut header, next);
            batch::set_partition_leader_epoch(&mut header, epoch);
            let mut whole = BytesMut::with_capacity(b.range.len());
            whole.extend_from_slice(&header);
            whole.extend_from_slice(&records[b.range.start + HEADER_SIZE..b.range.end]);
            st.batches
                .push((next, next + b.offset_count - 1, whole.freeze()));
            next += b.offset_count;
        }
        st.log_end = next;
        if let Some(mut h) = producer_batch {
            h.base_offset = base_offset;
            if let Some(a) = st.producers.apply(&h, control, now_ms) {
                st.aborted.push(a);
            }
        }
        if epoch >= 0 && st.epochs.last().is_none_or(|&(e, _)| epoch > e) {
            st.epochs.push((epoch, base_offset));
        }
        let log_start = st.log_start;
        drop(st);
        self.end.send_replace(next);
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: v.log_append_time,
            log_start,
        })
    }

    fn read_now(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: ReadLimit,
    ) -> Result<ReadResult, LogError> {
        let st = self.state()?;
        let offsets = st.offsets();
        if offset < st.log_start || offset > st.log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: st.log_start,
                log_end: st.log_end,
            });
        }
        let upper = limit.upper(&offsets);
        let mut out = BytesMut::new();
        for (base, last, bytes) in &st.batches {
            if *last < offset {
                continue;
            }
            if *base >= upper || (!out.is_empty() && out.len() + bytes.len() > max_bytes) {
                break;
            }
            out.extend_from_slice(bytes);
        }
        Ok(ReadResult {
            records: out.freeze(),
            offsets,
        })
    }

    /// The first record at or after `log_start` that `pick` chooses among
    /// batches (by their max timestamp), then within the chosen batch.
    fn find(
        &self,
        pick: impl Fn(&[(i64, i64, Bytes)]) -> Option<(usize, i64)>,
    ) -> Result<Option<TimestampOffset>, LogError> {
        let st = self.state()?;
        let Some((i, ts)) = pick(&st.batches) else {
            return Ok(None);
        };
        let bytes = st.batches[i].2.clone();
        let mut found = None;
        let h = batch::walk_records(&bytes, |r| {
            if found.is_none() && r.timestamp >= ts && r.offset >= st.log_start {
                found = Some((r.timestamp, r.offset));
            }
        })?;
        Ok(found.map(|(timestamp, offset)| TimestampOffset {
            timestamp,
            offset,
            leader_epoch: h.partition_leader_epoch,
        }))
    }
}

fn header(bytes: &Bytes) -> Option<BatchHeader> {
    BatchHeader::parse(bytes)
}

impl PartitionLog for MemoryPartition {
    fn append(
        &self,
        records: Bytes,
        epoch: i32,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        now(self.append_now(&records, epoch))
    }
    fn wait_durable(&self, _end: i64) -> BoxFuture<'static, Result<(), LogError>> {
        // Memory is as durable as this engine gets.
        now(self.state().map(|_| ()))
    }
    fn read(
        &self,
        offset: i64,
        max: usize,
        limit: ReadLimit,
    ) -> BoxFuture<'static, Result<ReadResult, LogError>> {
        now(self.read_now(offset, max, limit))
    }
    fn offsets(&self) -> LogOffsets {
        lock(&self.state).offsets()
    }
    fn subscribe(&self) -> watch::Receiver<i64> {
        self.end.subscribe()
    }
    fn offset_for_timestamp(
        &self,
        ts: i64,
    ) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        now(self.find(|batches| {
            batches
                .iter()
                .position(|(_, _, b)| header(b).is_some_and(|h| h.max_timestamp >= ts))
                .map(|i| (i, ts))
        }))
    }
    fn max_timestamp(&self) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        now(self.find(|batches| {
            let mut best: Option<(usize, i64)> = None;
            for (i, (_, _, b)) in batches.iter().enumerate() {
                let ts = header(b).map_or(-1, |h| h.max_timestamp);
                if best.is_none_or(|(_, t)| ts > t) {
                    best = Some((i, ts));
                }
            }
            best
        }))
    }
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let st = lock(&self.state);
        let idx = st.epochs.partition_point(|&(e, _)| e <= epoch);
        let (found, _) = *st.epochs.get(idx.checked_sub(1)?)?;
        Some((found, st.epochs.get(idx).map_or(st.log_end, |&(_, s)| s)))
    }
    fn delete_records(&self, offset: i64) -> BoxFuture<'static, Result<i64, LogError>> {
        now(self.state().and_then(|mut st| {
            if offset > st.log_end {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: st.log_start,
                    log_end: st.log_end,
                });
            }
            st.log_start = st.log_start.max(offset);
            let start = st.log_start;
            st.batches.retain(|(_, last, _)| *last >= start);
            Ok(start)
        }))
    }
    fn size_bytes(&self) -> u64 {
        lock(&self.state)
            .batches
            .iter()
            .map(|(_, _, b)| b.len() as u64)
            .sum()
    }
    fn producers(&self) -> Result<Vec<(i64, ProducerEntry)>, LogError> {
        Ok(lock(&self.state)
            .producers
            .producers()
            .map(|(id, e)| (id, e.clone()))
            .collect())
    }
    fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        lock(&self.state)
            .aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }
    fn set_config(&self, config: LogConfig) {
        *lock(&self.config) = config;
    }
}

impl LogEngine for MemoryEngine {
    fn open(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionLog>, LogError> {
        let mut parts = lock(&self.partitions);
        let p = parts.entry(tp.clone()).or_insert_with(|| {
            Arc::new(MemoryPartition {
                tp: tp.clone(),
                config: Mutex::new(config.clone()),
                state: Mutex::default(),
                end: watch::channel(0).0,
            })
        });
        p.set_config(config);
        Ok(p.clone())
    }
    fn remove(&self, tp: &TopicPartition) -> Result<(), LogError> {
        if let Some(p) = lock(&self.partitions).remove(tp) {
            lock(&p.state).removed = true;
        }
        Ok(())
    }
    fn partitions(&self) -> Result<Vec<TopicPartition>, LogError> {
        let mut v: Vec<_> = lock(&self.partitions).keys().cloned().collect();
        v.sort();
        Ok(v)
    }
    fn shutdown(&self) -> Result<(), LogError> {
        Ok(())
    }
}

//! Per-partition producer state: idempotence and open transactions.
//!
//! This is Kafka's `ProducerStateManager` as pure logic. For each producer
//! id it keeps the epoch and the last [`MAX_CACHED_BATCHES`] batches'
//! sequence ranges and offsets, so that a retried batch is answered with its
//! original offsets instead of being written twice, and a gap in sequences
//! is refused (`OUT_OF_ORDER_SEQUENCE_NUMBER`). It also tracks each
//! producer's open transaction (its first offset), which holds back the last
//! stable offset, and turns ABORT markers into aborted-transaction entries
//! for `read_committed` fetches.
//!
//! The rules follow Kafka's `ProducerAppendInfo`: an older epoch is fenced
//! (`INVALID_PRODUCER_EPOCH`); a new epoch must start at sequence 0 unless
//! the producer is unknown here; a producer with no state here (new, or its
//! state expired) may start at any sequence.
//!
//! Snapshots ([`ProducerStates::encode_snapshot`]) let a restart skip
//! replaying the whole log; their layout is in `docs/storage-format.md`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{self, BatchHeader};
use crate::error::LogError;

/// How many recent batches per producer are kept for duplicate detection
/// (Kafka's `max.in.flight.requests.per.connection` limit for idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;

/// The kind of a control record (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// Ends a transaction whose records must be skipped.
    Abort,
    /// Ends a transaction whose records become visible.
    Commit,
}

/// Sequence range and offsets of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First sequence number.
    pub first_seq: i32,
    /// Last sequence number.
    pub last_seq: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub timestamp: i64,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// Most recent batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// Broker time of its last batch or marker (for expiration). Kafka
    /// uses the batch's own timestamp; the broker's clock keeps a producer
    /// with a skewed clock from losing its deduplication state early.
    pub last_timestamp: i64,
    /// Coordinator epoch of the last marker, or -1.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction.
    pub txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    /// Last sequence number written, or -1.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }
}

/// A transaction that ended with an ABORT marker (one entry of Kafka's
/// transaction index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of its first record in this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset once the marker was written.
    pub last_stable_offset: i64,
}

/// Outcome of checking a batch against producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Append,
    /// Already written: answer with these offsets, write nothing.
    Duplicate(BatchMeta),
}

/// Producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset.
    ongoing: BTreeMap<i64, i64>,
}

fn out_of_order(h: &BatchHeader, expected: i32) -> LogError {
    LogError::OutOfOrderSequence {
        producer_id: h.producer_id,
        epoch: h.producer_epoch,
        sequence: h.base_sequence,
        expected,
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

fn batch_last_seq(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX (Kafka's DefaultRecordBatch.incrementSequence).
    let delta = h.last_offset_delta;
    if h.base_sequence > i32::MAX - delta {
        delta - (i32::MAX - h.base_sequence) - 1
    } else {
        h.base_sequence + delta
    }
}

impl ProducerStates {
    /// Checks a data batch (not a control batch) that carries a producer id.
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict, LogError> {
        let pid = h.producer_id;
        let Some(e) = self.producers.get(&pid) else {
            return Ok(Verdict::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: pid,
                epoch: h.producer_epoch,
                current: e.epoch,
            });
        }
        if h.base_sequence < 0 {
            // Written by a coordinator (TxnOffsetCommit), not a client:
            // fenced by epoch only, as Kafka's non-client origins are.
            return Ok(Verdict::Append);
        }
        let last_seq = batch_last_seq(h);
        if h.producer_epoch == e.epoch {
            if let Some(dup) = e
                .batches
                .iter()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
            {
                return Ok(Verdict::Duplicate(*dup));
            }
            let last = e.last_seq();
            if e.batches.is_empty() || in_sequence(last, h.base_sequence) {
                return Ok(Verdict::Append);
            }
            return Err(out_of_order(h, last.wrapping_add(1).max(0)));
        }
        if h.base_sequence != 0 {
            // A new epoch starts at sequence 0.
            return Err(out_of_order(h, 0));
        }
        Ok(Verdict::Append)
    }

    /// Checks a control batch (transaction marker): an older epoch than the
    /// producer's is refused, as Kafka refuses a zombie coordinator's marker.
    pub fn check_marker(&self, h: &BatchHeader) -> Result<(), LogError> {
        match self.producers.get(&h.producer_id) {
            Some(e) if h.producer_epoch < e.epoch => Err(LogError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: e.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records an appended batch at broker time `now_ms`. `h.base_offset`
    /// must be the offset it was given; `control` is set for transaction
    /// markers. Returns the aborted transaction an ABORT marker closed.
    pub fn apply(
        &mut self,
        h: &BatchHeader,
        control: Option<ControlType>,
        now_ms: i64,
    ) -> Option<AbortedTxn> {
        let pid = h.producer_id;
        if pid < 0 {
            return None;
        }
        let e = self.producers.entry(pid).or_default();
        if h.producer_epoch > e.epoch {
            e.batches.clear();
            e.epoch = h.producer_epoch;
        }
        e.last_timestamp = e.last_timestamp.max(now_ms);
        if let Some(kind) = control {
            let first = e.txn_first_offset.take();
            if let Some(f) = first {
                self.ongoing.remove(&f);
            }
            let marker = h.base_offset;
            let lso = self.first_unstable().unwrap_or(marker + 1);
            return match (kind, first) {
                (ControlType::Abort, Some(first_offset)) => Some(AbortedTxn {
                    producer_id: pid,
                    first_offset,
                    last_offset: marker,
                    last_stable_offset: lso,
                }),
                _ => None,
            };
        }
        if h.base_sequence < 0 {
            return self.open_txn(h);
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: batch_last_seq(h),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp: h.max_timestamp,
        });
        while e.batches.len() > MAX_CACHED_BATCHES {
            e.batches.pop_front();
        }
        self.open_txn(h)
    }

    fn open_txn(&mut self, h: &BatchHeader) -> Option<AbortedTxn> {
        if let Some(e) = self.producers.get_mut(&h.producer_id) {
            if h.is_transactional() && e.txn_first_offset.is_none() {
                e.txn_first_offset = Some(h.base_offset);
                self.ongoing.insert(h.base_offset, h.producer_id);
            }
        }
        None
    }

    /// Offset of the first record of the oldest open transaction: the last
    /// stable offset cannot pass it.
    pub fn first_unstable(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Forgets producers idle for `max_idle_ms` without an open transaction
    /// (`producer.id.expiration.ms`).
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < max_idle_ms
        });
    }

    /// Puts back one producer's state as stored elsewhere (cluster mode
    /// keeps it in PostgreSQL rather than in snapshots).
    pub fn restore(&mut self, producer_id: i64, entry: ProducerEntry) {
        if let Some(first) = entry.txn_first_offset {
            self.ongoing.insert(first, producer_id);
        }
        self.producers.insert(producer_id, entry);
    }

    /// One producer's state, if this partition knows it.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Producers and their state, for DescribeProducers.
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(k, v)| (*k, v))
    }

    /// Serializes the state as of `offset` (the next offset to replay).
    pub fn encode_snapshot(&self, offset: i64) -> Bytes {
        let mut body = BytesMut::new();
        body.put_i64(offset);
        body.put_u32(u32::try_from(self.producers.len()).unwrap_or(u32::MAX));
        let mut pids: Vec<&i64> = self.producers.keys().collect();
        pids.sort_unstable();
        for pid in pids {
            let e = &self.producers[pid];
            body.put_i64(*pid);
            body.put_i16(e.epoch);
            body.put_i64(e.last_timestamp);
            body.put_i32(e.coordinator_epoch);
            body.put_i64(e.txn_first_offset.unwrap_or(-1));
            body.put_u8(u8::try_from(e.batches.len()).unwrap_or(u8::MAX));
            for b in &e.batches {
                body.put_i32(b.first_seq);
                body.put_i32(b.last_seq);
                body.put_i64(b.first_offset);
                body.put_i64(b.last_offset);
                body.put_i64(b.timestamp);
            }
        }
        let mut out = BytesMut::with_capacity(body.len() + 6);
        out.put_u16(SNAPSHOT_VERSION);
        out.put_u32(crc32c::crc32c(&body));
        out.extend_from_slice(&body);
        out.freeze()
    }

    /// Parses a snapshot, returning the offset it was taken at. Never
    /// panics; a damaged snapshot is [`LogError::CorruptState`].
    pub fn decode_snapshot(buf: &[u8]) -> Result<(i64, Self), LogError> {
        Self::decode(buf).map_err(|reason| LogError::CorruptState {
            path: "producer state snapshot".into(),
            reason: reason.into(),
        })
    }

    fn decode(buf: &[u8]) -> Result<(i64, Self), &'static str> {
        let mut r = Cursor { buf, pos: 0 };
        if r.u16()? != SNAPSHOT_VERSION {
            return Err("unknown snapshot version");
        }
        let crc = r.u32()?;
        if crc32c::crc32c(&buf[r.pos..]) != crc {
            return Err("snapshot checksum mismatch");
        }
        let offset = r.i64()?;
        let count = r.u32()?;
        let mut s = Self::default();
        for _ in 0..count {
            let pid = r.i64()?;
            let mut e = ProducerEntry {
                epoch: r.i16()?,
                last_timestamp: r.i64()?,
                coordinator_epoch: r.i32()?,
                txn_first_offset: Some(r.i64()?).filter(|&o| o >= 0),
                batches: VecDeque::new(),
            };
            let n = r.u8()?;
            for _ in 0..n {
                e.batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            if let Some(f) = e.txn_first_offset {
                s.ongoing.insert(f, pid);
            }
            s.producers.insert(pid, e);
        }
        if r.pos != buf.len() {
            return Err("trailing bytes in snapshot");
        }
        Ok((offset, s))
    }
}

/// Version of the snapshot layout.
pub const SNAPSHOT_VERSION: u16 = 1;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let end = self.pos.checked_add(N).ok_or("overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("truncated snapshot")?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn i16(&mut self) -> Result<i16, &'static str> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

/// The control record type of a control batch (its single record's key:
/// version i16, type i16). `None` for anything else.
pub fn control_type(whole_batch: &Bytes) -> Option<ControlType> {
    let mut kind = None;
    batch::walk_records(whole_batch, |r| {
        if kind.is_none() {
            kind = match r.key {
                Some([_, _, 0, 0]) => Some(ControlType::Abort),
                Some([_, _, 0, 1]) => Some(ControlType::Commit),
                _ => None,
            };
        }
    })
    .ok()?;
    kind
}

/// Builds a transaction marker batch (one control record, uncompressed),
/// as a coordinator writes it to each partition of a transaction.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Bytes {
    let key: [u8; 4] = [0, 0, 0, u8::from(kind == ControlType::Commit)];
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    // Record body: attributes, timestamp delta, offset delta, key, value,
    // no headers. Every varint here fits in one byte (zigzag of 4 and 6).
    let mut body = vec![0u8, 0, 0, 8];
    body.extend_from_slice(&key);
    body.push(12);
    body.extend_from_slice(&value);
    body.push(0);
    let mut records = Vec::with_capacity(body.len() + 1);
    records.push(u8::try_from(body.len() * 2).unwrap_or(0));
    records.extend_from_slice(&body);
    let template = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: batch::MAGIC_V2,
        crc: 0,
        attributes: batch::ATTR_CONTROL | batch::ATTR_TRANSACTIONAL,
        last_offset_delta: 0,
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        producer_id,
        producer_epoch,
        base_sequence: -1,
        records_count: 1,
    };
    // Uncompressed building cannot fail for a batch this small.
    batch::build_batch(&template, &records, 1, timestamp).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base: i64, txn: bool) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: if txn { batch::ATTR_TRANSACTIONAL } else { 0 },
            last_offset_delta: count - 1,
            base_timestamp: 1000,
            max_timestamp: 1000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn retried_batch_is_a_duplicate_with_its_original_offsets() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, 0, 3, 10, false);
        assert_eq!(s.check(&h).unwrap(), Verdict::Append);
        s.apply(&h, None, 1000);
        match s.check(&header(7, 0, 0, 3, 99, false)).unwrap() {
            Verdict::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (10, 12)),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            s.apply(&header(7, 0, i, 1, i64::from(i), false), None, 1000);
        }
        assert!(matches!(
            s.check(&header(7, 0, 1, 1, 0, false)).unwrap(),
            Verdict::Duplicate(_)
        ));
        assert!(matches!(
            s.check(&header(7, 0, 0, 1, 0, false)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn gaps_and_old_epochs_are_refused() {
        let mut s = ProducerStates::default();
        s.apply(&header(7, 1, 0, 2, 0, false), None, 1000);
        assert!(matches!(
            s.check(&header(7, 1, 3, 1, 0, false)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            s.check(&header(7, 1, 2, 1, 0, false)).unwrap(),
            Verdict::Append
        );
        assert!(matches!(
            s.check(&header(7, 0, 2, 1, 0, false)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        // A new epoch starts at 0.
        assert!(matches!(
            s.check(&header(7, 2, 5, 1, 0, false)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            s.check(&header(7, 2, 0, 1, 0, false)).unwrap(),
            Verdict::Append
        );
        // An unknown producer may start anywhere (its state may have expired).
        assert_eq!(
            s.check(&header(8, 0, 40, 1, 0, false)).unwrap(),
            Verdict::Append
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, i32::MAX - 1, 3, 0, false);
        assert_eq!(batch_last_seq(&h), 0);
        s.apply(&h, None, 1000);
        assert_eq!(
            s.check(&header(7, 0, 1, 1, 3, false)).unwrap(),
            Verdict::Append
        );
    }

    #[test]
    fn transactions_hold_the_stable_offset_and_aborts_are_indexed() {
        let mut s = ProducerStates::default();
        s.apply(&header(1, 0, 0, 2, 5, true), None, 1000);
        s.apply(&header(2, 0, 0, 1, 7, true), None, 1000);
        s.apply(&header(1, 0, 2, 1, 8, true), None, 1000);
        assert_eq!(s.first_unstable(), Some(5));
        let mut m = header(1, 0, -1, 1, 9, true);
        m.attributes |= batch::ATTR_CONTROL;
        let aborted = s.apply(&m, Some(ControlType::Abort), 1000).unwrap();
        assert_eq!(
            aborted,
            AbortedTxn {
                producer_id: 1,
                first_offset: 5,
                last_offset: 9,
                last_stable_offset: 7
            }
        );
        assert_eq!(s.first_unstable(), Some(7));
        m.producer_id = 2;
        m.base_offset = 10;
        assert_eq!(s.apply(&m, Some(ControlType::Commit), 1000), None);
        assert_eq!(s.first_unstable(), None);
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut s = ProducerStates::default();
        s.apply(&header(1, 3, 0, 2, 5, true), None, 1000);
        s.apply(&header(2, 0, 10, 4, 7, false), None, 1000);
        let snap = s.encode_snapshot(11);
        let (off, back) = ProducerStates::decode_snapshot(&snap).unwrap();
        assert_eq!((off, &back), (11, &s));
        let mut bad = snap.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(ProducerStates::decode_snapshot(&bad).is_err());
        assert!(ProducerStates::decode_snapshot(&snap[..snap.len() - 3]).is_err());
    }

    #[test]
    fn expiry_keeps_producers_with_open_transactions() {
        let mut s = ProducerStates::default();
        s.apply(&header(1, 0, 0, 1, 0, true), None, 1000);
        s.apply(&header(2, 0, 0, 1, 1, false), None, 1000);
        s.expire(1000 + 10_000, 5_000);
        let kept: Vec<(i64, bool)> = s
            .producers()
            .map(|(id, e)| (id, e.txn_first_offset.is_some()))
            .collect();
        assert_eq!(kept, vec![(1, true)]);
    }

    #[test]
    fn marker_batches_parse_back() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let b = marker_batch(42, 3, kind, 0, 1234);
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (42, 3));
            assert_eq!(batch::compute_crc(&b), h.crc);
            assert_eq!(control_type(&b), Some(kind));
        }
    }

    proptest::proptest! {
        #[test]
        fn snapshot_decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = ProducerStates::decode_snapshot(&bytes);
        }
    }
}

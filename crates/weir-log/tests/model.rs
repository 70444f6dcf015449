//! Property tests: random operation sequences against an in-memory model.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};
use proptest::prelude::*;
use weir_log::Clock;
use weir_log::{
    EngineConfig, LocalEngine, LogConfig, LogEngine, LogError, ReadLimit, TopicPartition,
};

/// A record as the model keeps it.
#[derive(Debug, Clone, PartialEq)]
struct MRec {
    offset: i64,
    ts: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

#[derive(Debug, Clone)]
struct GenRecord {
    ts: i64,
    key: Option<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(u8, Option<Vec<u8>>)>,
}

#[derive(Debug, Clone)]
struct GenBatch {
    compression: u8,
    records: Vec<GenRecord>,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<GenBatch>),
    Read { at: u16, max_bytes: u16 },
    ReopenClean,
    ReopenCrash,
    DeleteRecords(u16),
    RetainBytes(u16),
    RetainTime(u16),
    Timestamp(u16),
    Compact,
}

fn gen_record(keyed: bool) -> impl Strategy<Value = GenRecord> {
    let key = if keyed {
        (0u8..12).prop_map(Some).boxed()
    } else {
        proptest::option::of(0u8..12).boxed()
    };
    (
        0i64..5000,
        key,
        proptest::option::weighted(0.85, proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::collection::vec(
            (
                0u8..4,
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
            ),
            0..3,
        ),
    )
        .prop_map(|(ts, key, value, headers)| GenRecord {
            ts,
            key,
            value,
            headers,
        })
}

fn gen_batch(keyed: bool) -> impl Strategy<Value = GenBatch> {
    (0u8..5, proptest::collection::vec(gen_record(keyed), 1..6)).prop_map(
        |(compression, records)| GenBatch {
            compression,
            records,
        },
    )
}

fn gen_op(keyed: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(gen_batch(keyed), 1..4).prop_map(Op::Append),
        3 => (any::<u16>(), 1u16..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::ReopenClean),
        1 => Just(Op::ReopenCrash),
        1 => any::<u16>().prop_map(Op::DeleteRecords),
        1 => (200u16..4000).prop_map(Op::RetainBytes),
        1 => (0u16..6000).prop_map(Op::RetainTime),
        1 => any::<u16>().prop_map(Op::Timestamp),
        2 => Just(Op::Compact),
    ]
}

fn codec(c: u8) -> Compression {
    match c % 5 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        _ => Compression::Zstd,
    }
}

fn to_records(b: &GenBatch) -> (Vec<Record>, Vec<MRec>) {
    let mut recs = Vec::new();
    let mut model = Vec::new();
    for (i, r) in b.records.iter().enumerate() {
        let mut headers = IndexMap::new();
        for (k, v) in &r.headers {
            headers.insert(
                StrBytes::from_string(format!("h{k}")),
                v.clone().map(Bytes::from),
            );
        }
        let key = r.key.map(|k| Bytes::from(format!("key-{k}")));
        let value = r.value.clone().map(Bytes::from);
        recs.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: r.ts,
            key: key.clone(),
            value: value.clone(),
            headers: headers.clone(),
        });
        model.push(MRec {
            offset: i as i64,
            ts: r.ts,
            key,
            value,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
    }
    (recs, model)
}

fn decode(records: &Bytes) -> Vec<(i64, i64, MRec)> {
    let mut out = Vec::new();
    for (base, last, raw) in split_batches(records) {
        let (_, recs) =
            weir_log::batch::decode_batch(&Bytes::from(raw)).expect("stored batch decodes");
        for r in recs {
            out.push((
                base,
                last,
                MRec {
                    offset: r.offset,
                    ts: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                },
            ));
        }
    }
    out
}

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<AtomicI64>,
    engine: Option<Arc<LocalEngine>>,
    log: Option<Arc<weir_log::local::LocalPartition>>,
    tp: TopicPartition,
    config: LogConfig,
}

impl Harness {
    fn new(config: LogConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AtomicI64::new(10_000));
        let mut h = Harness {
            dir,
            clock,
            engine: None,
            log: None,
            tp: TopicPartition::new("prop-t", 0),
            config,
        };
        h.open();
        h
    }

    fn open(&mut self) {
        let c = self.clock.clone();
        let cfg = EngineConfig {
            data_dir: self.dir.path().to_path_buf(),
            cleaner_enabled: false,
            max_open_files: 8,
            cleaner_buffer_bytes: 24 * 64,
            retention_check_interval_ms: 1 << 40,
            clock: Clock::from_fn(move || c.load(Ordering::SeqCst)),
            ..EngineConfig::default()
        };
        let engine = LocalEngine::open(cfg).unwrap();
        let log = engine
            .open_partition(&self.tp, self.config.clone())
            .unwrap();
        self.engine = Some(engine);
        self.log = Some(log);
    }

    fn log(&self) -> &weir_log::local::LocalPartition {
        self.log.as_deref().unwrap()
    }

    fn engine(&self) -> &LocalEngine {
        self.engine.as_deref().unwrap()
    }

    fn reopen(&mut self, clean: bool) {
        if clean {
            self.engine().shutdown().unwrap();
        }
        self.log = None;
        self.engine = None;
        self.open();
    }

    fn set_config(&mut self, config: LogConfig) {
        self.config = config.clone();
        self.log().set_config(config);
    }
}

/// Reads the whole readable log batch by batch.
fn read_everything(log: &weir_log::local::LocalPartition) -> Vec<(i64, i64, MRec)> {
    let o = log.offsets();
    let mut out = Vec::new();
    let mut off = o.log_start;
    while off < o.log_end {
        let r = log.read(off, 1 << 16, ReadLimit::HighWatermark).unwrap();
        if r.records.is_empty() {
            break;
        }
        let recs = decode(&r.records);
        let last = split_batches(&r.records).last().unwrap().1;
        out.extend(recs);
        off = last + 1;
    }
    out
}

fn run_delete_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 300,
        segment_index_bytes: 8 * 6,
        ..LogConfig::default()
    };
    let mut h = Harness::new(config);
    // The model: every record ever appended, by offset, plus batch bounds.
    let mut records: BTreeMap<i64, MRec> = BTreeMap::new();
    let mut batches: BTreeMap<i64, i64> = BTreeMap::new();
    let mut next = 0i64;
    let mut log_start = 0i64;
    for op in ops {
        match op {
            Op::Append(bs) => {
                let mut raw = Vec::new();
                let mut pending = Vec::new();
                let mut base = next;
                for b in &bs {
                    let (recs, model) = to_records(b);
                    raw.extend_from_slice(&encode(&recs, codec(b.compression)));
                    let n = model.len() as i64;
                    pending.push((base, model));
                    base += n;
                }
                let info = h.log().append(Bytes::from(raw), 3).unwrap();
                prop_assert_eq!(info.base_offset, next);
                prop_assert_eq!(info.last_offset, base - 1);
                for (b, model) in pending {
                    batches.insert(b, b + model.len() as i64 - 1);
                    for mut m in model {
                        m.offset += b;
                        records.insert(m.offset, m);
                    }
                }
                next = base;
            }
            Op::Read { at, max_bytes } => {
                let span = next - log_start + 1;
                let off = log_start + i64::from(at) % span;
                let r = h
                    .log()
                    .read(off, usize::from(max_bytes), ReadLimit::HighWatermark)
                    .unwrap();
                if off == next {
                    prop_assert!(r.records.is_empty());
                } else {
                    let got = decode(&r.records);
                    prop_assert!(!got.is_empty());
                    let (b0, l0, _) = &got[0];
                    prop_assert!(
                        *b0 <= off && off <= *l0,
                        "batch {}..{} for offset {}",
                        b0,
                        l0,
                        off
                    );
                    prop_assert!(
                        r.records.len() <= usize::from(max_bytes)
                            || split_batches(&r.records).len() == 1
                    );
                    for (_, _, m) in &got {
                        prop_assert_eq!(Some(m), records.get(&m.offset));
                    }
                }
                if log_start > 0 {
                    let below = h.log().read(log_start - 1, 100, ReadLimit::HighWatermark);
                    let out_of_range = matches!(below, Err(LogError::OffsetOutOfRange { .. }));
                    prop_assert!(out_of_range);
                }
            }
            Op::ReopenClean => h.reopen(true),
            Op::ReopenCrash => h.reopen(false),
            Op::DeleteRecords(x) => {
                let target = log_start + i64::from(x) % (next - log_start + 1);
                let got = h.log().delete_records(target).unwrap();
                prop_assert_eq!(got, target.max(log_start));
                log_start = got;
            }
            Op::RetainBytes(bytes) => {
                let mut c = h.config.clone();
                c.retention_bytes = i64::from(bytes);
                h.set_config(c.clone());
                h.engine().run_retention().unwrap();
                c.retention_bytes = -1;
                h.set_config(c);
                let new_start = h.log().offsets().log_start;
                prop_assert!(new_start >= log_start);
                prop_assert!(
                    new_start == log_start || batches.contains_key(&new_start) || new_start == next
                );
                log_start = new_start;
            }
            Op::RetainTime(cut) => {
                // Model: delete the oldest segments whose largest timestamp
                // is older than the cutoff.
                let now = h.clock.load(Ordering::SeqCst);
                let retention_ms = now - i64::from(cut);
                let local = h.engine().partition(&h.tp).unwrap();
                let bases = local.segment_base_offsets();
                let mut expected = log_start;
                for (i, b) in bases.iter().enumerate() {
                    let end = bases.get(i + 1).copied().unwrap_or(next);
                    if end == *b {
                        break;
                    }
                    // A segment wholly below the log start (DeleteRecords)
                    // goes whatever its timestamps, before time is looked
                    // at, as in Kafka's retention pass.
                    if i + 1 < bases.len() && end <= log_start {
                        expected = expected.max(end);
                        continue;
                    }
                    let max_ts = records
                        .range(*b..end)
                        .map(|(_, r)| r.ts)
                        .max()
                        .unwrap_or(-1);
                    if now - max_ts > retention_ms {
                        expected = expected.max(end);
                    } else {
                        break;
                    }
                }
                let mut c = h.config.clone();
                c.retention_ms = retention_ms;
                h.set_config(c.clone());
                h.engine().run_retention().unwrap();
                c.retention_ms = -1;
                h.set_config(c);
                let new_start = h.log().offsets().log_start;
                prop_assert_eq!(new_start, expected);
                log_start = new_start;
            }
            Op::Timestamp(t) => {
                let target = i64::from(t) % 5200;
                let want = records
                    .range(log_start..)
                    .find(|(_, r)| r.ts >= target)
                    .map(|(o, r)| (*o, r.ts));
                let got = h
                    .log()
                    .offset_for_timestamp(target)
                    .unwrap()
                    .map(|x| (x.offset, x.timestamp));
                prop_assert_eq!(got, want, "offset_for_timestamp({})", target);
                let max = records.range(log_start..).map(|(_, r)| r.ts).max();
                let want_max = max
                    .and_then(|m| records.range(log_start..).find(|(_, r)| r.ts == m))
                    .map(|(o, r)| (*o, r.ts));
                let got_max = h
                    .log()
                    .max_timestamp()
                    .unwrap()
                    .map(|x| (x.offset, x.timestamp));
                prop_assert_eq!(got_max, want_max);
            }
            Op::Compact => {}
        }
        let o = h.log().offsets();
        prop_assert_eq!(o.log_end, next);
        prop_assert_eq!(o.log_start, log_start);
        prop_assert_eq!(o.high_watermark, next);
    }
    // Everything readable matches the model exactly.
    let all: Vec<MRec> = read_everything(h.log()).into_iter().map(|x| x.2).collect();
    let first_batch = batches
        .range(..=log_start)
        .next_back()
        .map_or(
            log_start,
            |(b, l)| if *l >= log_start { *b } else { log_start },
        );
    let want: Vec<MRec> = records
        .range(first_batch..)
        .map(|(_, r)| r.clone())
        .collect();
    prop_assert_eq!(all, want);
    h.reopen(false);
    prop_assert_eq!(h.log().offsets().log_end, next);
    Ok(())
}

fn run_compact_model(ops: Vec<Op>, tombstone_ms: i64) -> Result<(), TestCaseError> {
    let config = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        segment_bytes: 1200,
        index_interval_bytes: 256,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: tombstone_ms,
        ..LogConfig::default()
    };
    let mut h = Harness::new(config);
    let mut records: BTreeMap<i64, MRec> = BTreeMap::new();
    let mut next = 0i64;
    for op in ops {
        match op {
            Op::Append(bs) => {
                let mut raw = Vec::new();
                let mut base = next;
                let mut pending = Vec::new();
                for b in &bs {
                    let (recs, model) = to_records(b);
                    raw.extend_from_slice(&encode(&recs, codec(b.compression)));
                    let n = model.len() as i64;
                    pending.push((base, model));
                    base += n;
                }
                let info = h.log().append(Bytes::from(raw), 0).unwrap();
                prop_assert_eq!(info.base_offset, next);
                for (b, model) in pending {
                    for mut m in model {
                        m.offset += b;
                        records.insert(m.offset, m);
                    }
                }
                next = base;
            }
            Op::Compact => {
                h.engine().run_cleaner().unwrap();
            }
            Op::ReopenClean => h.reopen(true),
            Op::ReopenCrash => h.reopen(false),
            Op::Read { at, max_bytes } => {
                let off = i64::from(at) % (next + 1);
                let r = h
                    .log()
                    .read(off, usize::from(max_bytes), ReadLimit::HighWatermark)
                    .unwrap();
                for (b, l, m) in decode(&r.records) {
                    prop_assert!(l >= off || b > off);
                    prop_assert_eq!(Some(&m), records.get(&m.offset));
                }
            }
            _ => {}
        }
        prop_assert_eq!(h.log().offsets().log_end, next);
    }
    h.engine().run_cleaner().unwrap();
    let all: Vec<MRec> = read_everything(h.log()).into_iter().map(|x| x.2).collect();
    prop_assert!(all.windows(2).all(|w| w[0].offset < w[1].offset));
    for r in &all {
        prop_assert_eq!(Some(r), records.get(&r.offset));
    }
    // Latest record per key in the model must be the latest seen, unless
    // it is a tombstone (which may be gone).
    let mut latest: HashMap<Bytes, &MRec> = HashMap::new();
    for r in records.values() {
        latest.insert(r.key.clone().unwrap(), r);
    }
    let mut seen: HashMap<Bytes, &MRec> = HashMap::new();
    for r in &all {
        seen.insert(r.key.clone().unwrap(), r);
    }
    for (k, want) in &latest {
        match (want.value.is_some(), seen.get(k)) {
            (true, Some(got)) => prop_assert_eq!(*got, *want),
            (true, None) => prop_assert!(false, "latest value of {:?} lost", k),
            (false, Some(got)) => prop_assert_eq!(*got, *want),
            (false, None) => {}
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("WEIR_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn delete_policy_matches_model(ops in proptest::collection::vec(gen_op(false), 1..30)) {
        run_delete_model(ops)?;
    }

    #[test]
    fn compaction_matches_model(
        ops in proptest::collection::vec(gen_op(true), 1..30),
        tombstone_ms in prop_oneof![Just(0i64), Just(1i64 << 50)],
    ) {
        run_compact_model(ops, tombstone_ms)?;
    }
}

//! Log compaction.

mod common;

use std::collections::BTreeMap;

use common::*;
use kafka_protocol::records::Compression;
use weir_log::{LogConfig, LogEngine, ReadLimit, TopicPartition};

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        segment_bytes: 1024,
        index_interval_bytes: 256,
        min_cleanable_dirty_ratio: 0.01,
        delete_retention_ms: 0,
        ..LogConfig::default()
    }
}

fn read_all(
    log: &weir_log::local::LocalPartition,
) -> Vec<(i64, i64, Option<bytes::Bytes>, Option<bytes::Bytes>)> {
    let mut out = Vec::new();
    let mut off = log.offsets().log_start;
    let end = log.offsets().log_end;
    while off < end {
        let r = log.read(off, 1 << 20, ReadLimit::LogEnd).unwrap();
        if r.records.is_empty() {
            break;
        }
        let batches = split_batches(&r.records);
        off = batches.last().unwrap().1 + 1;
        out.extend(decode_all(&r.records));
    }
    out
}

#[test]
fn keeps_latest_value_per_key_and_drops_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("c", 0);
    let log = engine.open_partition(&tp, compact_config()).unwrap();
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut model: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    let mut next = 0i64;
    for round in 0..40 {
        let mut recs = Vec::new();
        for j in 0..5 {
            let key = format!("key{}", (round * 7 + j * 3) % 11);
            let value = if (round + j) % 9 == 0 {
                None
            } else {
                Some(format!("v{round}-{j}"))
            };
            recs.push(record(
                j as i64,
                1000,
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
            ));
            model.insert(key, (next + j as i64, value));
        }
        let info = log
            .append(encode(&recs, codecs[round % codecs.len()]), 0)
            .unwrap();
        assert_eq!(info.base_offset, next);
        next += 5;
    }
    let before = log.size_bytes();
    let segs_before = engine.partition(&tp).unwrap().segment_count();
    assert!(segs_before > 3);
    assert!(engine.run_cleaner().unwrap() >= 1);
    assert!(log.size_bytes() < before);
    // Second pass removes tombstones that went through the first one.
    log.append(batch(1, 1000, "roll"), 0).unwrap();
    engine.run_cleaner().unwrap();
    let all = read_all(log.as_ref());
    // Offsets are increasing and never renumbered.
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let active_base = *engine
        .partition(&tp)
        .unwrap()
        .segment_base_offsets()
        .last()
        .unwrap();
    let mut seen: BTreeMap<String, (i64, Option<bytes::Bytes>)> = BTreeMap::new();
    for (off, _, k, v) in &all {
        let k = String::from_utf8(k.clone().unwrap().to_vec()).unwrap();
        if *off < active_base {
            assert!(!seen.contains_key(&k) || seen[&k].0 < *off);
        }
        seen.insert(k, (*off, v.clone()));
    }
    for (k, (off, v)) in &model {
        match v {
            Some(v) => {
                let got = &seen[k];
                assert_eq!(got.0, *off, "key {k}");
                assert_eq!(got.1.as_deref(), Some(v.as_bytes()));
            }
            None => {
                if let Some(got) = seen.get(k) {
                    assert!(got.1.is_none(), "deleted key {k} came back with a value");
                }
            }
        }
    }
    // The cleaned log still survives a clean restart and a crash.
    drop(log);
    engine.shutdown().unwrap();
    drop(engine);
    let engine = open(dir.path());
    let log = engine.open_partition(&tp, compact_config()).unwrap();
    assert_eq!(read_all(log.as_ref()), all);
}

#[test]
fn honours_dirty_ratio_and_compaction_lag() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("lag", 0);
    let cfg = LogConfig {
        min_compaction_lag_ms: 3_600_000,
        ..compact_config()
    };
    let log = engine.open_partition(&tp, cfg).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..30 {
        log.append(batch(3, now - 10 + i, "x"), 0).unwrap();
    }
    assert_eq!(
        engine.run_cleaner().unwrap(),
        0,
        "records younger than the lag stay"
    );
    log.set_config(LogConfig {
        min_cleanable_dirty_ratio: 1.1,
        ..compact_config()
    });
    assert_eq!(engine.run_cleaner().unwrap(), 0, "ratio not reached");
    log.set_config(compact_config());
    assert_eq!(engine.run_cleaner().unwrap(), 1);
    assert_eq!(engine.run_cleaner().unwrap(), 0, "nothing dirty left");
}

#[test]
fn small_buffer_cleans_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = weir_log::EngineConfig {
        cleaner_buffer_bytes: 24 * 40,
        ..engine_config(dir.path())
    };
    let engine = weir_log::LocalEngine::open(cfg).unwrap();
    let tp = TopicPartition::new("small", 0);
    let log = engine.open_partition(&tp, compact_config()).unwrap();
    for i in 0..100 {
        let k = format!("k{}", i % 60);
        log.append(
            encode(
                &[record(0, 0, Some(k.as_bytes()), Some(b"value"))],
                Compression::None,
            ),
            0,
        )
        .unwrap();
    }
    let mut passes = 0;
    while engine.run_cleaner().unwrap() > 0 {
        passes += 1;
        assert!(passes < 50);
    }
    assert!(passes > 1, "needed several passes");
    let all = read_all(log.as_ref());
    let active_base = *engine
        .partition(&tp)
        .unwrap()
        .segment_base_offsets()
        .last()
        .unwrap();
    let cleaned: Vec<_> = all.iter().filter(|r| r.0 < active_base).collect();
    let mut keys: Vec<_> = cleaned.iter().map(|r| r.2.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        cleaned.len(),
        "one record per key in the cleaned part"
    );
}

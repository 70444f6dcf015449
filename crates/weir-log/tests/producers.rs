//! Producer state: idempotent deduplication, open transactions holding the
//! last stable offset, the aborted-transaction index, and all of it across
//! clean and unclean restarts and compaction.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::records::{Compression, Record};
use weir_log::producer::{marker_batch, ControlType};
use weir_log::{LogConfig, LogEngine, LogError, ReadLimit, TopicPartition};

fn producer_batch(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool, key: &str) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| {
            let mut r = record(i as i64, 1000, Some(key.as_bytes()), Some(b"v"));
            r.producer_id = pid;
            r.producer_epoch = epoch;
            r.sequence = seq + i as i32;
            r.transactional = txn;
            r
        })
        .collect();
    encode(&recs, Compression::None)
}

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        ..LogConfig::default()
    }
}

fn reopen(
    dir: &std::path::Path,
    engine: std::sync::Arc<weir_log::LocalEngine>,
    clean: bool,
) -> std::sync::Arc<weir_log::LocalEngine> {
    if clean {
        engine.shutdown().unwrap();
    } else {
        for tp in engine.partitions().unwrap() {
            engine.partition(&tp).unwrap().flush_now().unwrap();
        }
    }
    drop(engine);
    open(dir)
}

#[test]
fn duplicates_are_answered_with_original_offsets_across_restarts() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("t", 0);
        let mut engine = open(dir.path());
        let log = engine.open_partition(&tp, cfg()).unwrap();
        // Enough batches to roll segments (snapshots at each roll).
        let mut offsets = Vec::new();
        for i in 0..12 {
            let info = log
                .append(producer_batch(5, 0, i * 2, 2, false, "k"), 0)
                .unwrap();
            offsets.push(info.base_offset);
        }
        let end = log.offsets().log_end;
        drop(log);
        engine = reopen(dir.path(), engine, clean);
        let log = engine.open_partition(&tp, cfg()).unwrap();
        // The last five batches are recognised; nothing is written twice.
        for i in 7..12 {
            let info = log
                .append(producer_batch(5, 0, i * 2, 2, false, "k"), 0)
                .unwrap();
            assert_eq!(info.base_offset, offsets[i as usize], "clean={clean}");
        }
        assert_eq!(log.offsets().log_end, end);
        assert!(matches!(
            log.append(producer_batch(5, 0, 30, 1, false, "k"), 0),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            log.append(producer_batch(5, -0, 24, 1, false, "k").clone(), 0)
                .map(|i| i.base_offset),
            Ok(24)
        ));
        let producers = log.producers();
        assert_eq!(producers.len(), 1);
        assert_eq!(producers[0].1.last_seq(), 24);
    }
}

#[test]
fn open_transactions_hold_the_stable_offset_and_aborts_are_indexed_across_restarts() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("t", 0);
        let mut engine = open(dir.path());
        let log = engine.open_partition(&tp, cfg()).unwrap();
        log.append(batch(2, 1000, "plain"), 0).unwrap(); // 0..1
        log.append(producer_batch(1, 0, 0, 3, true, "a"), 0)
            .unwrap(); // 2..4
        log.append(producer_batch(2, 0, 0, 2, true, "b"), 0)
            .unwrap(); // 5..6
        for i in 0..6 {
            log.append(batch(3, 1000, &format!("fill{i}")), 0).unwrap(); // 7..24
        }
        assert_eq!(log.offsets().last_stable, 2);
        let m = log
            .append(marker_batch(1, 0, ControlType::Abort, 0, 2000), 0)
            .unwrap();
        assert_eq!(m.base_offset, 25);
        assert_eq!(log.offsets().last_stable, 5);
        let r = log.read(0, 1 << 20, ReadLimit::LastStable).unwrap();
        assert!(decode_all(&r.records).iter().all(|(o, ..)| *o < 5));
        drop(log);
        engine = reopen(dir.path(), engine, clean);
        let log = engine.open_partition(&tp, cfg()).unwrap();
        assert_eq!(log.offsets().last_stable, 5, "clean={clean}");
        let aborted = log.aborted_transactions(0, 100);
        assert_eq!(aborted.len(), 1);
        assert_eq!(
            (
                aborted[0].producer_id,
                aborted[0].first_offset,
                aborted[0].last_offset
            ),
            (1, 2, 25)
        );
        assert!(log.aborted_transactions(26, 100).is_empty());
        assert!(log.aborted_transactions(0, 2).is_empty());
        log.append(marker_batch(2, 0, ControlType::Commit, 0, 2000), 0)
            .unwrap();
        assert_eq!(log.offsets().last_stable, log.offsets().high_watermark);
        // A zombie marker with an older epoch is refused.
        log.append(producer_batch(2, 1, 0, 1, true, "b"), 0)
            .unwrap();
        assert!(matches!(
            log.append(marker_batch(2, 0, ControlType::Abort, 0, 2000), 0),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        drop(log);
        engine = reopen(dir.path(), engine, clean);
        let log = engine.open_partition(&tp, cfg()).unwrap();
        assert_eq!(log.aborted_transactions(0, 100).len(), 1);
        assert!(
            log.offsets().last_stable < log.offsets().high_watermark,
            "pid 2 epoch 1 still open"
        );
    }
}

#[test]
fn clients_cannot_mix_producer_batches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let log = engine
        .open_partition(&TopicPartition::new("t", 0), cfg())
        .unwrap();
    let mut two = producer_batch(1, 0, 0, 1, false, "a").to_vec();
    two.extend_from_slice(&producer_batch(1, 0, 1, 1, false, "a"));
    assert!(matches!(
        log.append(Bytes::from(two), 0),
        Err(LogError::InvalidRecord { .. })
    ));
}

#[test]
fn compaction_keeps_markers_and_the_aborted_index() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("c", 0);
    let config = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        segment_bytes: 600,
        min_cleanable_dirty_ratio: 0.01,
        delete_retention_ms: 0,
        ..LogConfig::default()
    };
    let log = engine.open_partition(&tp, config).unwrap();
    log.append(producer_batch(9, 0, 0, 2, true, "x"), 0)
        .unwrap(); // 0..1 aborted
    for i in 0..4 {
        log.append(batch(3, 1000, &format!("r{i}")), 0).unwrap(); // overwritten keys k0..k2
    }
    log.append(marker_batch(9, 0, ControlType::Abort, 0, 2000), 0)
        .unwrap();
    for i in 0..8 {
        log.append(batch(3, 1000, &format!("s{i}")), 0).unwrap();
    }
    engine.partition(&tp).unwrap().flush_now().unwrap();
    assert!(engine.run_cleaner().unwrap() >= 1);
    let r = log.read(0, 1 << 20, ReadLimit::LogEnd).unwrap();
    let batches = split_batches(&r.records);
    assert_eq!(batches[0].0, 0, "the aborted batch survives cleaning");
    assert_eq!(log.aborted_transactions(0, 100).len(), 1);
    drop(log);
    engine.shutdown().unwrap();
    drop(engine);
    let engine = open(dir.path());
    let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
    let a = log.aborted_transactions(0, 100);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].first_offset, a[0].last_offset), (0, 14));
}

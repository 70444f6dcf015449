//! End-to-end behaviour of the local engine through the public traits.

mod common;

use common::*;
use weir_log::{LogConfig, LogEngine, LogError, ReadLimit, TopicPartition};

#[tokio::test]
async fn append_read_durable_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("my.topic-with-dash", 3);
    {
        let engine = open(dir.path());
        let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
        let now = 1_700_000_000_000;
        let a = log.append(batch(3, now, "a"), 5).unwrap();
        assert_eq!(
            (a.base_offset, a.last_offset, a.log_append_time),
            (0, 2, -1)
        );
        let b = log.append(batch(2, now, "b"), 5).unwrap();
        assert_eq!((b.base_offset, b.last_offset), (3, 4));
        log.wait_durable(5).await.unwrap();
        let r = log.read(4, 1 << 20, ReadLimit::HighWatermark).unwrap();
        let batches = split_batches(&r.records);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].0, 3);
        let r = log.read(0, 1, ReadLimit::HighWatermark).unwrap();
        assert_eq!(
            split_batches(&r.records).len(),
            1,
            "at least one whole batch"
        );
        let r = log.read(0, 1 << 20, ReadLimit::HighWatermark).unwrap();
        let recs = decode_all(&r.records);
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[4].0, 4);
        assert_eq!(log.offsets().log_end, 5);
        assert!(matches!(
            log.read(6, 100, ReadLimit::LogEnd),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(log
            .read(5, 100, ReadLimit::LogEnd)
            .unwrap()
            .records
            .is_empty());
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 5)));
        assert_eq!(log.end_offset_for_epoch(4), None);
        let ts = log.offset_for_timestamp(now + 1).unwrap().unwrap();
        assert_eq!(ts.offset, 1);
        let mx = log.max_timestamp().unwrap().unwrap();
        assert_eq!(mx.timestamp, now + 2);
        assert_eq!(mx.offset, 2);
        engine.shutdown().unwrap();
    }
    {
        let engine = open(dir.path());
        assert_eq!(engine.partitions().unwrap(), vec![tp.clone()]);
        let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
        assert_eq!(log.offsets().log_end, 5);
        let r = log.read(0, 1 << 20, ReadLimit::HighWatermark).unwrap();
        assert_eq!(decode_all(&r.records).len(), 5);
        let c = log.append(batch(1, 0, "c"), 6).unwrap();
        assert_eq!(c.base_offset, 5);
        // Dropped without shutdown: a crash as far as the next open knows.
    }
    {
        let engine = open(dir.path());
        let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
        assert_eq!(log.offsets().log_end, 6);
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 5)));
        engine.remove(&tp).unwrap();
        assert!(matches!(
            log.append(batch(1, 0, "x"), 6),
            Err(LogError::Removed { .. })
        ));
        assert!(engine.partitions().unwrap().is_empty());
        let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
        assert_eq!(log.offsets().log_end, 0);
    }
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

#[test]
fn rolls_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("t", 0);
    let log = engine.open_partition(&tp, small_segments()).unwrap();
    let mut expected = Vec::new();
    for i in 0..60 {
        let n = 1 + (i % 4);
        let info = log
            .append(batch(n, 1000 + i as i64, &format!("b{i}")), 0)
            .unwrap();
        expected.push((info.base_offset, info.last_offset));
    }
    let local = engine.partition(&tp).unwrap();
    assert!(
        local.segment_count() > 5,
        "segments: {}",
        local.segment_count()
    );
    // Every offset, including mid-batch ones, returns the batch holding it.
    for &(base, last) in &expected {
        for off in base..=last {
            let r = log.read(off, 1, ReadLimit::HighWatermark).unwrap();
            let b = split_batches(&r.records);
            assert_eq!(b.len(), 1);
            assert_eq!((b[0].0, b[0].1), (base, last), "offset {off}");
        }
    }
    // A big read stays within one segment and returns whole batches.
    let r = log.read(0, 1 << 20, ReadLimit::HighWatermark).unwrap();
    let b = split_batches(&r.records);
    assert!(!b.is_empty() && b.len() < expected.len());
    assert!(r.records.len() <= 1024);
    // Index files of rolled segments exist.
    let names: Vec<String> = std::fs::read_dir(local.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "00000000000000000000.index"));
    assert!(names.iter().any(|n| n == "00000000000000000000.timeindex"));
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("lat", 0);
    let cfg = LogConfig {
        timestamp_type: weir_log::TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = engine.open_partition(&tp, cfg).unwrap();
    let info = log.append(batch(3, 5, "x"), 0).unwrap();
    assert!(info.log_append_time > 1_600_000_000_000);
    let r = log.read(0, 1 << 20, ReadLimit::LogEnd).unwrap();
    let h = weir_log::batch::BatchHeader::parse(&r.records).unwrap();
    assert_eq!(h.max_timestamp, info.log_append_time);
    assert_eq!(h.base_timestamp, 5);
    assert_eq!(h.timestamp_type(), weir_log::TimestampType::LogAppendTime);
    assert_eq!(weir_log::batch::compute_crc(&r.records), h.crc);
    let recs = decode_all(&r.records);
    assert!(recs.iter().all(|r| r.1 == info.log_append_time));
    let found = log
        .offset_for_timestamp(info.log_append_time)
        .unwrap()
        .unwrap();
    assert_eq!(found.offset, 0);
}

#[test]
fn invalid_appends_leave_the_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("v", 0);
    let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
    log.append(batch(2, 0, "ok"), 0).unwrap();
    let good = batch(2, 0, "g");
    let mut bad = good.to_vec();
    let n = bad.len();
    bad[n - 2] ^= 0xff;
    let mut two = good.to_vec();
    two.extend_from_slice(&bad);
    assert!(matches!(
        log.append(bytes::Bytes::from(two), 0),
        Err(LogError::CorruptMessage { .. })
    ));
    assert_eq!(log.offsets().log_end, 2);
    assert_eq!(log.size_bytes() as usize, batch(2, 0, "ok").len());
    let compact = LogConfig {
        cleanup_compact: true,
        ..LogConfig::default()
    };
    log.set_config(compact);
    let keyless = encode(
        &[record(0, 0, None, Some(b"v"))],
        kafka_protocol::records::Compression::Gzip,
    );
    assert!(matches!(
        log.append(keyless, 0),
        Err(LogError::InvalidRecords {
            timestamp: false,
            ..
        })
    ));
    assert_eq!(log.offsets().log_end, 2);
}

#[test]
fn delete_records_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("r", 1);
    {
        let engine = open(dir.path());
        let log = engine.open_partition(&tp, small_segments()).unwrap();
        for i in 0..40 {
            log.append(batch(2, 1000 + i, "x"), 0).unwrap();
        }
        assert_eq!(log.delete_records(81).err().map(|_| ()), Some(()));
        assert_eq!(log.delete_records(7).unwrap(), 7);
        assert_eq!(log.offsets().log_start, 7);
        assert!(matches!(
            log.read(6, 100, ReadLimit::LogEnd),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        let r = log.read(7, 1, ReadLimit::LogEnd).unwrap();
        assert_eq!(
            split_batches(&r.records)[0].0,
            6,
            "batch containing 7 starts at 6"
        );
        let segs_before = engine.partition(&tp).unwrap().segment_count();
        assert_eq!(log.delete_records(50).unwrap(), 50);
        assert!(engine.partition(&tp).unwrap().segment_count() < segs_before);
        assert!(log.offset_for_timestamp(0).unwrap().unwrap().offset >= 50);
        engine.shutdown().unwrap();
    }
    {
        let engine = open(dir.path());
        // Retention by bytes: keep about two segments.
        let cfg = LogConfig {
            retention_bytes: 2048,
            ..small_segments()
        };
        let log = engine.open_partition(&tp, cfg).unwrap();
        assert_eq!(log.offsets().log_start, 50, "log start survives restart");
        engine.run_retention().unwrap();
        assert!(log.size_bytes() <= 2048 + 1024);
        let start = log.offsets().log_start;
        assert!(start > 50);
        assert!(log.read(start, 10, ReadLimit::LogEnd).is_ok());
        // Retention by time: every record is old, so the active segment is
        // rolled and everything goes.
        log.set_config(LogConfig {
            retention_ms: 1000,
            ..small_segments()
        });
        engine.run_retention().unwrap();
        let o = log.offsets();
        assert_eq!(o.log_start, o.log_end);
        assert_eq!(log.size_bytes(), 0);
        let info = log.append(batch(1, 0, "after"), 0).unwrap();
        assert_eq!(info.base_offset, 80);
        engine.purge_deleted_files();
        let logs = std::fs::read_dir(engine.partition(&tp).unwrap().dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".log")
            })
            .count();
        assert_eq!(logs, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_waiters_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("gc", 0);
    let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let info = log.append(batch(2, 0, &format!("{t}-{i}")), 0).unwrap();
                log.wait_durable(info.last_offset + 1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let local = engine.partition(&tp).unwrap();
    assert_eq!(local.durable_offset(), 400);
    // 200 durable appends; group commit makes them share fsyncs.
    assert!(
        local.flush_count() < 200,
        "{} fsyncs for 200 appends",
        local.flush_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_partition_does_not_starve_others() {
    // One flusher, and partition `busy` gets appends and acks=all waits
    // without pause, up to 64 not yet durable per task (as pipelined
    // produce requests do), so it is asked to sync again during each of
    // its syncs.
    // Waits on `quiet` must still be served: before the round-robin queue,
    // the flusher kept syncing `busy` until it had a quiet moment.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = engine_config(dir.path());
    cfg.flush_threads = 1;
    let engine = weir_log::LocalEngine::open(cfg).unwrap();
    let busy = engine
        .open_partition(&TopicPartition::new("busy", 0), LogConfig::default())
        .unwrap();
    let quiet = engine
        .open_partition(&TopicPartition::new("quiet", 0), LogConfig::default())
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (log, stop) = (busy.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut waits = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let info = log.append(batch(1, 0, &format!("{t}-{i}")), 0).unwrap();
                waits.push(tokio::spawn(log.wait_durable(info.last_offset + 1)));
                if waits.len() >= 64 {
                    for w in waits.drain(..32) {
                        w.await.unwrap().unwrap();
                    }
                }
                tokio::task::yield_now().await;
                i += 1;
            }
            for w in waits {
                w.await.unwrap().unwrap();
            }
        }));
    }
    while busy.flush_count() < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    for round in 0..20 {
        let info = quiet.append(batch(1, 0, &format!("q{round}")), 0).unwrap();
        // A liveness bound, not a latency target: starved, this never ends.
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            quiet.wait_durable(info.last_offset + 1),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: quiet partition starved"))
        .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(busy.durable_offset(), busy.offsets().log_end);
    let stats = engine.stats().unwrap();
    assert!(stats.flush_queue_wait.count() >= 20);
    assert!(stats.durable_wait.count() >= 20);
}

#[test]
fn flush_messages_forces_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("fm", 0);
    let log = engine
        .open_partition(
            &tp,
            LogConfig {
                flush_messages: 3,
                ..LogConfig::default()
            },
        )
        .unwrap();
    log.append(batch(3, 0, "a"), 0).unwrap();
    let local = engine.partition(&tp).unwrap();
    for _ in 0..200 {
        if local.durable_offset() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(local.durable_offset(), 3);
    log.set_config(LogConfig {
        flush_ms: 50,
        ..LogConfig::default()
    });
    log.append(batch(1, 0, "b"), 0).unwrap();
    for _ in 0..200 {
        if local.durable_offset() == 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(local.durable_offset(), 4);
}

#[test]
fn segment_ms_rolls_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("sm", 0);
    let log = engine
        .open_partition(
            &tp,
            LogConfig {
                segment_ms: 100,
                ..LogConfig::default()
            },
        )
        .unwrap();
    log.append(batch(1, 0, "a"), 0).unwrap();
    let local = engine.partition(&tp).unwrap();
    for _ in 0..200 {
        if local.segment_count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(local.segment_count(), 2);
}

#[test]
fn epochs_and_partitions_listing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("meta")).unwrap();
    std::fs::create_dir_all(dir.path().join("not-a-partition-x")).unwrap();
    let engine = open(dir.path());
    let tp = TopicPartition::new("a-b_c.d-7", 12);
    let log = engine.open_partition(&tp, LogConfig::default()).unwrap();
    log.append(batch(2, 0, "a"), 1).unwrap();
    log.append(batch(2, 0, "b"), 1).unwrap();
    log.append(batch(2, 0, "c"), 4).unwrap();
    assert_eq!(log.end_offset_for_epoch(0), None);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(3), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 6)));
    assert_eq!(log.end_offset_for_epoch(9), Some((4, 6)));
    assert_eq!(engine.partitions().unwrap(), vec![tp]);
}

//! 10,000 partitions on one engine: open file descriptors stay within the
//! budget, before and after a restart.

mod common;

use common::*;
use weir_log::{EngineConfig, LocalEngine, LogConfig, LogEngine, ReadLimit, TopicPartition};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn tp(i: usize) -> TopicPartition {
    TopicPartition::new(format!("topic-{}", i % 100), (i / 100) as i32)
}

#[test]
fn ten_thousand_partitions_stay_within_the_fd_budget() {
    if !std::path::Path::new("/proc/self/fd").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let budget = 256;
    let margin = 64;
    let baseline = open_fds();
    let cfg = EngineConfig {
        max_open_files: budget,
        ..engine_config(dir.path())
    };
    let n = 10_000;
    let limit = baseline + budget + margin;
    {
        let engine = LocalEngine::open(cfg.clone()).unwrap();
        let mut logs = Vec::with_capacity(n);
        for i in 0..n {
            let log = engine.open_partition(&tp(i), LogConfig::default()).unwrap();
            log.append(batch(2, 1000, "v"), -1).unwrap();
            logs.push(log);
            if i % 1000 == 0 {
                assert!(
                    open_fds() < limit,
                    "{} fds after {i} partitions",
                    open_fds()
                );
            }
        }
        for (i, log) in logs.iter().enumerate().step_by(7) {
            let r = log.read(1, 1 << 20, ReadLimit::HighWatermark).unwrap();
            assert_eq!(split_batches(&r.records).len(), 1, "partition {i}");
        }
        let fds = open_fds();
        assert!(fds < limit, "{fds} open fds with a budget of {budget}");
        assert!(engine.open_segment_resources() <= budget);
        // Dropped without shutdown: the next open recovers lazily.
    }
    assert!(
        open_fds() < baseline + margin,
        "descriptors leaked: {}",
        open_fds()
    );
    let engine = LocalEngine::open(cfg).unwrap();
    assert_eq!(engine.partitions().unwrap().len(), n);
    let mut logs = Vec::new();
    for i in (0..n).step_by(10) {
        let log = engine.open_partition(&tp(i), LogConfig::default()).unwrap();
        assert_eq!(log.offsets().log_end, 2);
        log.append(batch(1, 1000, "w"), -1).unwrap();
        let r = log.read(0, 1 << 20, ReadLimit::HighWatermark).unwrap();
        assert_eq!(split_batches(&r.records).len(), 2);
        logs.push(log);
    }
    assert!(open_fds() < limit, "{} fds after reopen", open_fds());
    engine.shutdown().unwrap();
    assert!(open_fds() < baseline + margin);
}

//! Crash safety: a child process appends and reports each batch once
//! `wait_durable` resolved; the test SIGKILLs it at random points, reopens
//! the log and checks every acknowledged batch is present and intact.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use weir_log::{LogConfig, ReadLimit, TopicPartition};

const CHILD_ENV: &str = "WEIR_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    // Small segments so that kills land around rolls too.
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("crash", 0)
}

/// The child: appends forever from several tasks, printing
/// `ACK <base> <last> <crc>` after each durable append.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let engine =
            weir_log::LocalEngine::open(engine_config(std::path::Path::new(&dir))).unwrap();
        let log = engine.open_partition(&tp(), config()).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for t in 0..4 {
            let log = log.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                loop {
                    let n = 1 + (i % 7) as usize;
                    let b = batch(
                        n,
                        1_000 + i as i64,
                        &format!("t{t}-{i}-{}", "x".repeat((i % 50) as usize)),
                    );
                    let info = log.append(b, 1).unwrap();
                    log.wait_durable(info.last_offset + 1).await.unwrap();
                    let crc = weir_log::batch::BatchHeader::parse(
                        &log.read(info.base_offset, 1, ReadLimit::LogEnd)
                            .unwrap()
                            .records,
                    )
                    .unwrap()
                    .crc;
                    let _ = tx.send(format!(
                        "ACK {} {} {crc}",
                        info.base_offset, info.last_offset
                    ));
                    i += 1;
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    });
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_never_loses_acknowledged_batches() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed | 1);
    let mut acked: BTreeMap<i64, (i64, u32)> = BTreeMap::new();
    let rounds = 6;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let v: Vec<&str> = rest.split(' ').collect();
                    lines.push((
                        v[0].parse::<i64>().unwrap(),
                        v[1].parse::<i64>().unwrap(),
                        v[2].parse::<u32>().unwrap(),
                    ));
                }
            }
            lines
        });
        // Let it write for a random while (startup includes recovery).
        let wait = 150 + rng.next() % 600;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(wait) {
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for (base, last, crc) in lines {
            acked.insert(base, (last, crc));
        }

        // Reopen as after a crash and check.
        let engine = open(dir.path());
        let log = engine.open_partition(&tp(), config()).unwrap();
        let o = log.offsets();
        for (&base, &(last, crc)) in &acked {
            assert!(
                last < o.log_end,
                "round {round}: acknowledged batch {base}..{last} beyond log end {}",
                o.log_end
            );
            let r = log.read(base, 1, ReadLimit::LogEnd).unwrap();
            let b = split_batches(&r.records);
            assert_eq!((b[0].0, b[0].1), (base, last), "round {round}");
            let h = weir_log::batch::BatchHeader::parse(&b[0].2).unwrap();
            assert_eq!(h.crc, crc, "round {round}: batch {base} changed");
            assert_eq!(
                weir_log::batch::compute_crc(&b[0].2),
                crc,
                "round {round}: batch {base} corrupt"
            );
        }
        // Everything served is whole, valid and contiguous.
        let mut off = o.log_start;
        while off < o.log_end {
            let r = log.read(off, 1 << 20, ReadLimit::LogEnd).unwrap();
            assert!(!r.records.is_empty());
            for (base, last, raw) in split_batches(&r.records) {
                assert_eq!(base, off);
                let h = weir_log::batch::BatchHeader::parse(&raw).unwrap();
                assert_eq!(weir_log::batch::compute_crc(&raw), h.crc);
                off = last + 1;
            }
        }
        drop(log);
        drop(engine);
        assert!(
            !acked.is_empty() || round == 0 || rounds < 2,
            "child made no progress"
        );
    }
    assert!(
        acked.len() > 10,
        "too few acknowledged batches: {}",
        acked.len()
    );
}

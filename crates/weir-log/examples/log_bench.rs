//! Log engine benchmark.
//!
//! ```text
//! cargo run --release -p weir-log --example log_bench -- --dir DIR [--mib 1024] [--appenders 4] [--reps 3] [--batch-kib 16,1024] [--drop-caches]
//! ```
//!
//! Measures, on the disk holding DIR:
//! - raw sequential write + fdatasync (one sync at the end, like
//!   `dd conv=fdatasync`; and one sync per `appenders` batches, the best a
//!   group commit of that many waiters can do),
//! - append throughput with 1 KiB records in 16 KiB and 1 MiB batches,
//!   `appenders` concurrent producers each waiting on `wait_durable`,
//! - sequential read throughput from the page cache,
//! - recovery time per GiB (crash without clean marker, no recovery point),
//!   with a warm page cache and, with `--drop-caches` (Linux, root), a cold one.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_log::{EngineConfig, LocalEngine, LogConfig, LogEngine, ReadLimit, TopicPartition};

struct Args {
    dir: PathBuf,
    mib: u64,
    appenders: usize,
    reps: usize,
    drop_caches: bool,
    batch_kib: Vec<usize>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("./bench-data"),
        mib: 1024,
        appenders: 4,
        reps: 3,
        drop_caches: false,
        batch_kib: vec![16, 1024],
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--drop-caches" {
            a.drop_caches = true;
            continue;
        }
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--dir" => a.dir = PathBuf::from(v),
            "--mib" => a.mib = v.parse().expect("--mib N"),
            "--appenders" => a.appenders = v.parse().expect("--appenders N"),
            "--reps" => a.reps = v.parse().expect("--reps N"),
            "--batch-kib" => {
                a.batch_kib = v
                    .split(',')
                    .map(|x| x.parse().expect("--batch-kib 16,1024"))
                    .collect()
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn batch(records_per_batch: usize) -> Bytes {
    let value = Bytes::from(vec![0x5a; 1024 - 16]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let recs: Vec<Record> = (0..records_per_batch)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(Bytes::from(format!("key-{i:08}"))),
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Writes back all dirty data so that one run does not pay for the last.
fn settle() {
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(std::time::Duration::from_millis(500));
}

/// Empties the page cache (Linux, root only); returns whether it worked.
fn drop_caches() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", b"1").is_ok()
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Sequential write of `total` bytes in `chunk` writes, fdatasync every
/// `sync_every` chunks (0 = once at the end).
fn raw_write(dir: &Path, total: u64, chunk: usize, sync_every: usize) -> f64 {
    let path = dir.join("raw.tmp");
    let buf = vec![0x5au8; chunk];
    let mut f = std::fs::File::create(&path).unwrap();
    let start = Instant::now();
    let mut written = 0u64;
    let mut n = 0usize;
    while written < total {
        f.write_all(&buf).unwrap();
        written += chunk as u64;
        n += 1;
        if sync_every > 0 && n % sync_every == 0 {
            f.sync_data().unwrap();
        }
    }
    f.sync_data().unwrap();
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    mbps(written, secs)
}

fn engine(dir: &Path) -> Arc<LocalEngine> {
    LocalEngine::open(EngineConfig {
        data_dir: dir.to_path_buf(),
        cleaner_enabled: false,
        ..EngineConfig::default()
    })
    .unwrap()
}

fn log_config() -> LogConfig {
    LogConfig {
        max_message_bytes: 4 << 20,
        ..LogConfig::default()
    }
}

/// `appenders` tasks append `b` until `total` bytes went in, each waiting
/// for durability after every append. Returns MB/s.
fn append_bench(
    rt: &tokio::runtime::Runtime,
    log: Arc<weir_log::local::LocalPartition>,
    b: Bytes,
    total: u64,
    appenders: usize,
) -> f64 {
    let written = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..appenders {
            let log = log.clone();
            let b = b.clone();
            let written = written.clone();
            tasks.push(tokio::spawn(async move {
                while written.fetch_add(b.len() as u64, Ordering::Relaxed) < total {
                    let info = log.append(b.clone(), 0).unwrap();
                    log.wait_durable(info.last_offset + 1).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let secs = start.elapsed().as_secs_f64();
    mbps(log.size_bytes(), secs)
}

fn main() {
    let a = args();
    std::fs::create_dir_all(&a.dir).unwrap();
    let total = a.mib << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# weir-log benchmark: {} MiB per run, {} appenders, dir {}",
        a.mib,
        a.appenders,
        a.dir.display()
    );

    settle();
    let raw_once = raw_write(&a.dir, total, 1 << 20, 0);
    println!("raw write, 1 MiB writes, one fdatasync at the end: {raw_once:.0} MB/s");

    // Alternate raw and engine runs and report medians: virtual disks are noisy.
    let reps = a.reps.max(1);
    let mut results = Vec::new();
    for records in a.batch_kib.clone() {
        let label = if records >= 1024 {
            format!("{} MiB", records / 1024)
        } else {
            format!("{records} KiB")
        };
        let b = batch(records);
        let mut raw = Vec::new();
        let mut eng = Vec::new();
        let mut per_sync = Vec::new();
        let data = a.dir.join(format!("engine-{records}"));
        for _ in 0..reps {
            settle();
            raw.push(raw_write(&a.dir, total, b.len(), a.appenders));
            let _ = std::fs::remove_dir_all(&data);
            settle();
            let e = engine(&data);
            let log = e
                .open_partition(&TopicPartition::new("bench", 0), log_config())
                .unwrap();
            eng.push(append_bench(
                &rt,
                log.clone(),
                b.clone(),
                total,
                a.appenders,
            ));
            let appends = log.offsets().log_end / records as i64;
            let flushes = e
                .partition(&TopicPartition::new("bench", 0))
                .unwrap()
                .flush_count();
            per_sync.push(appends as f64 / flushes.max(1) as f64);
            e.shutdown().unwrap();
        }
        let (raw_m, eng_m, ps) = (median(&mut raw), median(&mut eng), median(&mut per_sync));
        println!(
            "{label} batches: raw write+fdatasync every {} batches {raw_m:.0} MB/s (runs {raw:.0?}); engine appends, acks=all {eng_m:.0} MB/s (runs {eng:.0?}), {ps:.1} appends per fsync => {:.0}% of raw",
            a.appenders,
            eng_m / raw_m * 100.0
        );
        results.push((label, data));
    }

    // Reads from the page cache: the 1 MiB-batch log just written.
    let data = results.last().unwrap().1.clone();
    let e = engine(&data);
    let tp = TopicPartition::new("bench", 0);
    let log = e.open_partition(&tp, log_config()).unwrap();
    let end = log.offsets().log_end;
    let mut sink = vec![0u8; 2 << 20];
    for (label, copy) in [
        ("zero-copy (Bytes handed out)", false),
        ("copied into a buffer", true),
    ] {
        for _warm in 0..2 {
            let start = Instant::now();
            let mut off = 0;
            let mut bytes = 0u64;
            let mut checksum = 0u64;
            while off < end {
                let r = log.read(off, 1 << 20, ReadLimit::HighWatermark).unwrap();
                let recs = r.records;
                if copy {
                    sink[..recs.len()].copy_from_slice(&recs);
                    checksum = checksum.wrapping_add(u64::from(sink[recs.len() / 2]));
                }
                bytes += recs.len() as u64;
                let mut last = off;
                let mut rest = &recs[..];
                while rest.len() >= 61 {
                    let h = weir_log::batch::BatchHeader::parse(rest).unwrap();
                    last = h.last_offset();
                    rest = &rest[h.total_size().unwrap()..];
                }
                off = last + 1;
            }
            let secs = start.elapsed().as_secs_f64();
            if _warm == 1 {
                println!(
                    "reads from page cache, {label}: {:.0} MB/s ({checksum})",
                    mbps(bytes, secs)
                );
            }
        }
    }
    drop(log);
    drop(e);

    // Recovery: crash (no clean marker, no recovery point) and reopen.
    let size: u64 = std::fs::read_dir(data.join("bench-0"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let gib = size as f64 / (1u64 << 30) as f64;
    for cold in [false, true] {
        if cold && !(a.drop_caches && drop_caches()) {
            println!("recovery with a cold page cache: skipped (needs --drop-caches and root)");
            continue;
        }
        let _ = std::fs::remove_file(data.join(".clean-shutdown"));
        let _ = std::fs::remove_file(data.join("recovery-point-offset-checkpoint"));
        let start = Instant::now();
        let e = engine(&data);
        let log = e.open_partition(&tp, log_config()).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(log.offsets().log_end, end);
        println!(
            "recovery after a crash (full scan, no recovery point), page cache {}: {secs:.2} s for {gib:.2} GiB = {:.2} s/GiB",
            if cold { "cold" } else { "warm" },
            secs / gib
        );
        // Drop without shutdown so that the next round recovers again.
        drop(log);
        drop(e);
    }
    {
        let e = engine(&data);
        let _log = e.open_partition(&tp, log_config()).unwrap();
        e.shutdown().unwrap();
    }
    let start = Instant::now();
    let e = engine(&data);
    let _log = e.open_partition(&tp, log_config()).unwrap();
    println!(
        "open after a clean shutdown: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    drop(_log);
    drop(e);
    for (_, d) in results {
        let _ = std::fs::remove_dir_all(d);
    }
}

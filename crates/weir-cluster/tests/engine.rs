//! The cluster engine against a real PostgreSQL (Debian's packages, a
//! throwaway server per test) and a `file://` object store: two engines
//! on one database and store stand for two brokers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_cluster::{ClusterConfig, ClusterEngine};
use weir_storage::producer::{marker_batch, ControlType};
use weir_storage::{
    Clock, JoinRefused, Lease, LogConfig, LogEngine, LogError, PartitionLog, ReadLimit,
    TopicPartition,
};

/// A throwaway PostgreSQL server, stopped (and its files removed) on drop.
struct Pg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

impl Pg {
    fn cmd(&self, prog: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(prog));
            c
        } else {
            Command::new(self.bin.join(prog))
        }
    }

    /// Starts one, or `None` (the test is skipped) where PostgreSQL is
    /// not installed, unless CI is set.
    fn start() -> Option<Self> {
        let Some(bin) = pg_bin() else {
            assert!(
                std::env::var("CI").is_err(),
                "these tests need PostgreSQL (Debian's postgresql)"
            );
            eprintln!("PostgreSQL is not installed: skipping");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        // initdb refuses root: run the server as Debian's postgres user.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_postgres {
            Command::new("chown")
                .args(["postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pg = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = pg.dir.path().join("data");
        let st = pg
            .cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ])
            .output()
            .expect("initdb");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        pg.run_server();
        Some(pg)
    }

    /// Starts the server on its data directory and port.
    fn run_server(&self) {
        let opts = format!(
            // synchronous_commit=off as a server default: the engine
            // turns it on for its own sessions (a crash would otherwise
            // lose acknowledged commits; see the restart test).
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.path().display()
        );
        let st = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }

    /// Stops the server as a crash would (`-m immediate`: no checkpoint,
    /// every connection cut).
    fn crash(&self) {
        let st = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("pg_ctl");
        assert!(st.status.success());
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn record(offset: i64, ts: i64, value: &str) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // Base sequence -1 (no idempotence): the encoder derives it from
        // the first record and keeps the records in one batch.
        sequence: (offset as i32).wrapping_sub(1),
        timestamp: ts,
        key: None,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: Default::default(),
    }
}

/// One batch of `n` records `"{tag}-{i}"`, timestamps from `ts`.
fn batch(n: usize, ts: i64, tag: &str) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| record(i as i64, ts + i as i64, &format!("{tag}-{i}")))
        .collect();
    encode(&recs)
}

/// `recs` as one uncompressed v2 batch.
fn encode(recs: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// Every record's (offset, value) in stored bytes, checking that batch
/// base offsets are where the records say.
fn values(mut b: Bytes) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let recs = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).expect("decode");
        out.extend(recs.records.into_iter().map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        }));
    }
    out
}

async fn engine(pg: &Pg, store: &Path, node: i32) -> Arc<ClusterEngine> {
    engine_flushing(pg, store, node, 10).await
}

/// An engine whose gatherings last `flush_ms`.
async fn engine_flushing(pg: &Pg, store: &Path, node: i32, flush_ms: u64) -> Arc<ClusterEngine> {
    let mut c = ClusterConfig::new(pg.url(), format!("file://{}", store.display()), node);
    c.flush_ms = flush_ms;
    Arc::new(
        ClusterEngine::connect(c, Clock::system())
            .await
            .expect("connect"),
    )
}

/// Opens `tps` on `engine` with the default config.
fn open_all(engine: &ClusterEngine, tps: &[TopicPartition]) -> Vec<Arc<dyn PartitionLog>> {
    tps.iter()
        .map(|tp| engine.open(tp, LogConfig::default()).unwrap())
        .collect()
}

async fn read_all(log: &Arc<dyn PartitionLog>, from: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let r = log
            .read(at, 1 << 20, ReadLimit::HighWatermark)
            .await
            .expect("read");
        if r.records.is_empty() {
            return out;
        }
        let v = values(r.records);
        at = v.last().unwrap().0 + 1;
        out.extend(v.into_iter().filter(|(o, _)| *o >= from));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_on_one_broker_are_read_on_another_in_call_order() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    let a0 = a.open(&tp0, LogConfig::default()).unwrap();
    let a1 = a.open(&tp1, LogConfig::default()).unwrap();
    let b0 = b.open(&tp0, LogConfig::default()).unwrap();
    let mut wake = b0.subscribe();

    // Appends called in order take offsets in that order, whatever order
    // their futures are awaited in; several partitions share one object.
    let futs: Vec<_> = (0..20)
        .map(|i| {
            let log = if i % 2 == 0 { &a0 } else { &a1 };
            log.append(batch(3, 1000 + i, &format!("m{i}")), 0)
        })
        .collect();
    let mut infos = Vec::new();
    for f in futs.into_iter().rev() {
        infos.push(f.await.expect("append"));
    }
    infos.reverse();
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info.base_offset, (i as i64 / 2) * 3, "append {i}");
        assert_eq!(info.last_offset, info.base_offset + 2);
    }
    assert_eq!(a0.offsets().log_end, 30);

    // The other broker hears of the commit and reads the same records.
    tokio::time::timeout(Duration::from_secs(5), wake.wait_for(|&e| e == 30))
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(b0.offsets().high_watermark, 30);
    let got = read_all(&b0, 0).await;
    let want: Vec<(i64, String)> = (0..10)
        .flat_map(|i| (0..3).map(move |j| (i * 3 + j, format!("m{}-{j}", i * 2))))
        .collect();
    assert_eq!(got, want);
    // A read from the middle starts with the batch holding the offset.
    assert_eq!(read_all(&b0, 4).await[0], (4, "m2-1".to_string()));
    // Beyond the end is out of range, at the end is empty.
    assert!(matches!(
        b0.read(31, 100, ReadLimit::HighWatermark).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(b0
        .read(30, 100, ReadLimit::HighWatermark)
        .await
        .unwrap()
        .records
        .is_empty());

    // Timestamps, from the broker that did not write.
    let t = b0.offset_for_timestamp(1004).await.unwrap().unwrap();
    assert_eq!((t.offset, t.timestamp), (5, 1004));
    let m = b0.max_timestamp().await.unwrap().unwrap();
    assert_eq!((m.offset, m.timestamp), (29, 1020));
    assert!(b0.offset_for_timestamp(5000).await.unwrap().is_none());

    // One append of two batches is one chunk: a read of that chunk alone
    // from its second batch starts there, both on the writer (its cache)
    // and on the other broker (the store), at the chunk's offsets.
    let mut two = BytesMut::from(&batch(3, 2000, "x")[..]);
    two.extend_from_slice(&batch(2, 2003, "y"));
    let info = a0.append(two.freeze(), 0).await.expect("append");
    assert_eq!((info.base_offset, info.last_offset), (30, 34));
    tokio::time::timeout(Duration::from_secs(5), wake.wait_for(|&e| e == 35))
        .await
        .expect("notified")
        .unwrap();
    for log in [&a0, &b0, &b0] {
        let r = log.read(33, 1, ReadLimit::HighWatermark).await.unwrap();
        assert_eq!(
            values(r.records),
            vec![(33, "y-0".to_string()), (34, "y-1".to_string())]
        );
    }
    assert_eq!(read_all(&a0, 30).await.len(), 5);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// A read answered from the store loads the rows after it into the
/// cache, and the next read waits for that load rather than reading the
/// store again: once loaded, those rows are read with their objects gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_the_store_loads_the_next_rows_ahead() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let tp = TopicPartition::new("ahead", 0);
    let a0 = a.open(&tp, LogConfig::default()).unwrap();
    let b0 = b.open(&tp, LogConfig::default()).unwrap();
    let mut wake = b0.subscribe();
    // One object, and one index row, per append.
    for i in 0..5 {
        a0.append(batch(2, 1000 + i, &format!("m{i}")), 0)
            .await
            .expect("append");
    }
    tokio::time::timeout(Duration::from_secs(5), wake.wait_for(|&e| e == 10))
        .await
        .expect("notified")
        .unwrap();
    let row = |at: i64| {
        let (b0, at) = (&b0, at);
        async move {
            let r = b0.read(at, 1, ReadLimit::HighWatermark).await?;
            Ok::<_, LogError>(values(r.records))
        }
    };
    let want = |at: i64| {
        vec![
            (at, format!("m{}-0", at / 2)),
            (at + 1, format!("m{}-1", at / 2)),
        ]
    };
    // Broker 2 wrote nothing: these come from the store.
    assert_eq!(row(0).await.unwrap(), want(0));
    assert_eq!(row(2).await.unwrap(), want(2));
    for key in stored(store.path(), "intake") {
        std::fs::remove_file(store.path().join(key)).unwrap();
    }
    for at in [4, 6, 8] {
        assert_eq!(row(at).await.unwrap(), want(at), "offset {at}");
    }
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_the_store_caches_the_other_partitions_chunks_of_its_intake_object() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let tps: Vec<_> = (0..3).map(|p| TopicPartition::new("whole", p)).collect();
    let logs_a = open_all(&a, &tps);
    let logs_b = open_all(&b, &tps);
    // Appended together: one flush, one intake object with a chunk of
    // each partition.
    let appends: Vec<_> = logs_a
        .iter()
        .enumerate()
        .map(|(p, log)| log.append(batch(2, 1000, &format!("p{p}")), 0))
        .collect();
    for f in appends {
        f.await.expect("append");
    }
    assert_eq!(stored(store.path(), "intake").len(), 1);
    for log in &logs_b {
        log.current_offsets().await.unwrap();
    }
    let want = |p: usize| vec![(0, format!("p{p}-0")), (1, format!("p{p}-1"))];
    // Broker 2 wrote nothing: partition 0 comes from the store.
    let r = logs_b[0]
        .read(0, 1, ReadLimit::HighWatermark)
        .await
        .unwrap();
    assert_eq!(values(r.records), want(0));
    for key in stored(store.path(), "intake") {
        std::fs::remove_file(store.path().join(key)).unwrap();
    }
    for p in [1, 2] {
        let r = logs_b[p].read(0, 1, ReadLimit::HighWatermark).await;
        assert_eq!(values(r.expect("read").records), want(p), "partition {p}");
    }
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_uploading_at_once_commit_in_the_order_their_appends_were_called() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let logs: Vec<_> = (0..2)
        .map(|p| {
            a.open(&TopicPartition::new("o", p), LogConfig::default())
                .unwrap()
        })
        .collect();
    // Appends spread over many gatherings (10 ms windows), so several
    // objects upload while earlier ones commit.
    let mut pending = Vec::new();
    for i in 0..120 {
        let log = &logs[i % 2];
        pending.push((i % 2, log.append(batch(1 + i % 3, 0, &format!("a{i}")), 0)));
        if i % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let mut last = [-1i64, -1];
    for (p, f) in pending {
        let info = f.await.unwrap();
        assert_eq!(info.base_offset, last[p] + 1, "partition {p}");
        last[p] = info.last_offset;
    }
    let objects = std::fs::read_dir(store.path().join("intake/1"))
        .unwrap()
        .count();
    assert!(objects > 3, "{objects} objects");
    for (p, log) in logs.iter().enumerate() {
        let got = read_all(log, 0).await;
        assert_eq!(got.len() as i64, last[p] + 1);
        assert!(got.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_appending_to_one_partition_get_distinct_contiguous_offsets() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let tp = TopicPartition::new("shared", 0);
    let logs = [
        a.open(&tp, LogConfig::default()).unwrap(),
        b.open(&tp, LogConfig::default()).unwrap(),
    ];
    let mut wake = logs[0].subscribe();
    let tasks: Vec<_> = (0..2)
        .map(|w| {
            let log = logs[w].clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..15 {
                    let info = log
                        .append(batch(2, 0, &format!("w{w}-{i}")), 0)
                        .await
                        .unwrap();
                    got.push((info.base_offset, format!("w{w}-{i}")));
                }
                got
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort();
    let bases: Vec<i64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(bases, (0..30).map(|i| i * 2).collect::<Vec<_>>());
    // Broker a reads b's last appends once their commit's notification
    // has reached it (its cached end moves then, not at b's answer).
    tokio::time::timeout(Duration::from_secs(10), wake.wait_for(|&e| e == 60))
        .await
        .expect("notified")
        .unwrap();
    let got = read_all(&logs[0], 0).await;
    assert_eq!(got.len(), 60);
    for (base, tag) in acked {
        assert_eq!(got[base as usize], (base, format!("{tag}-0")));
        assert_eq!(got[base as usize + 1], (base + 1, format!("{tag}-1")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_a_restart_and_delete_records_moves_the_start() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("keep", 0);
    {
        let a = engine(&pg, store.path(), 1).await;
        let log = a.open(&tp, LogConfig::default()).unwrap();
        for i in 0..4 {
            log.append(batch(5, 0, &format!("b{i}")), 0).await.unwrap();
        }
        a.shutdown().unwrap();
    }
    let a = engine(&pg, store.path(), 1).await;
    assert_eq!(a.partitions().unwrap(), vec![tp.clone()]);
    let log = a.open(&tp, LogConfig::default()).unwrap();
    assert_eq!(log.offsets().log_end, 20);
    assert!(log.size_bytes() > 0);
    assert_eq!(log.delete_records(12).await.unwrap(), 12);
    assert_eq!(log.offsets().log_start, 12);
    assert!(matches!(
        log.read(3, 100, ReadLimit::HighWatermark).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // The batch holding offset 12 starts at 10 and is still whole.
    let got = read_all(&log, 12).await;
    assert_eq!(got.first(), Some(&(12, "b2-2".to_string())));
    assert_eq!(got.len(), 8);
    assert!(log.delete_records(21).await.is_err());
    // Removing the partition removes its rows; the handle stops working.
    a.remove(&tp).unwrap();
    assert!(a.partitions().unwrap().is_empty());
    assert!(matches!(
        log.append(batch(1, 0, "x"), 0).await,
        Err(LogError::Removed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_object_write_is_not_acknowledged_and_takes_no_offsets() {
    let Some(pg) = Pg::start() else { return };
    let base = tempfile::tempdir().unwrap();
    let store = base.path().join("store");
    let a = engine(&pg, &store, 1).await;
    let tp = TopicPartition::new("f", 0);
    let log = a.open(&tp, LogConfig::default()).unwrap();
    log.append(batch(1, 0, "ok"), 0).await.unwrap();
    // Make the store unwritable: its intake directory becomes a file.
    std::fs::remove_dir_all(store.join("intake")).unwrap();
    std::fs::write(store.join("intake"), b"in the way").unwrap();
    let err = log.append(batch(1, 0, "lost"), 0).await.unwrap_err();
    assert!(matches!(err, LogError::Io { .. }), "{err:?}");
    assert_eq!(log.offsets().log_end, 1);
    std::fs::remove_file(store.join("intake")).unwrap();
    let info = log.append(batch(1, 0, "again"), 0).await.unwrap();
    assert_eq!(info.base_offset, 1);
    let got = read_all(&log, 0).await;
    assert_eq!(
        got,
        vec![(0, "ok-0".to_string()), (1, "again-0".to_string())]
    );
}

/// One batch of `n` records from producer `pid` at `epoch`, sequences
/// from `seq`; `transactional` marks it part of a transaction.
fn producer_batch(
    pid: i64,
    epoch: i16,
    seq: i32,
    n: usize,
    tag: &str,
    transactional: bool,
) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| {
            let mut r = record(i as i64, i as i64, &format!("{tag}-{i}"));
            r.producer_id = pid;
            r.producer_epoch = epoch;
            r.sequence = seq + i as i32;
            r.transactional = transactional;
            r
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
    .expect("encode");
    buf.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_batches_are_checked_against_the_stored_producer_state() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let tp = TopicPartition::new("i", 0);
    let la = a.open(&tp, LogConfig::default()).unwrap();
    let lb = b.open(&tp, LogConfig::default()).unwrap();
    let first = la
        .append(producer_batch(7, 0, 0, 2, "p7s0", false), 0)
        .await
        .unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 1));
    // The retry reaches the other broker: answered with the original
    // offsets, nothing written.
    let dup = lb
        .append(producer_batch(7, 0, 0, 2, "p7s0", false), 0)
        .await
        .unwrap();
    assert_eq!((dup.base_offset, dup.last_offset), (0, 1));
    let next = lb
        .append(producer_batch(7, 0, 2, 1, "p7s2", false), 0)
        .await
        .unwrap();
    assert_eq!(next.base_offset, 2);

    // In one flush: a gap is refused, and the appends around it, of this
    // partition and another, are written.
    let other = a
        .open(&TopicPartition::new("i", 1), LogConfig::default())
        .unwrap();
    let gap = la.append(producer_batch(7, 0, 5, 1, "gap", false), 0);
    let fresh = la.append(producer_batch(8, 0, 0, 1, "p8s0", false), 0);
    let plain = other.append(batch(1, 0, "plain"), 0);
    let err = gap.await.unwrap_err();
    assert!(
        matches!(err, LogError::OutOfOrderSequence { expected: 3, .. }),
        "{err:?}"
    );
    assert_eq!(fresh.await.unwrap().base_offset, 3);
    assert_eq!(plain.await.unwrap().base_offset, 0);

    // A new epoch starts at 0; the old epoch is then fenced.
    let bumped = la
        .append(producer_batch(7, 1, 0, 1, "e1s0", false), 0)
        .await
        .unwrap();
    assert_eq!(bumped.base_offset, 4);
    let err = lb
        .append(producer_batch(7, 0, 3, 1, "zombie", false), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::InvalidProducerEpoch { .. }),
        "{err:?}"
    );
    let err = la
        .append(producer_batch(7, 2, 4, 1, "e2s4", false), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::OutOfOrderSequence { expected: 0, .. }),
        "{err:?}"
    );

    // Only the last five batches are remembered.
    for seq in 1..=6 {
        let tag = format!("e1s{seq}");
        let info = lb
            .append(producer_batch(7, 1, seq, 1, &tag, false), 0)
            .await
            .unwrap();
        assert_eq!(info.base_offset, 4 + i64::from(seq));
    }
    let dup = la
        .append(producer_batch(7, 1, 2, 1, "e1s2", false), 0)
        .await
        .unwrap();
    assert_eq!(dup.base_offset, 6);
    let err = la
        .append(producer_batch(7, 1, 1, 1, "e1s1", false), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::OutOfOrderSequence { .. }),
        "{err:?}"
    );

    // A producer whose state is unknown here may start anywhere (its
    // state expired), as in Kafka.
    let late = la
        .append(producer_batch(9, 0, 40, 1, "p9s40", false), 0)
        .await
        .unwrap();
    assert_eq!(late.base_offset, 11);

    // The last append went through the other broker: wait for its
    // notification before reading here.
    let mut wake = lb.subscribe();
    tokio::time::timeout(Duration::from_secs(5), wake.wait_for(|&e| e >= 12))
        .await
        .expect("notified")
        .unwrap();
    let tags: Vec<String> = read_all(&lb, 0).await.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        tags,
        [
            "p7s0-0", "p7s0-1", "p7s2-0", "p8s0-0", "e1s0-0", "e1s1-0", "e1s2-0", "e1s3-0",
            "e1s4-0", "e1s5-0", "e1s6-0", "p9s40-0"
        ]
    );
    assert_eq!(la.offsets().log_end, 12);

    // Producer ids: blocks from the database's sequence never overlap.
    let ra = a.shared().unwrap().reserve_producer_ids().unwrap().unwrap();
    let rb = b.shared().unwrap().reserve_producer_ids().unwrap().unwrap();
    assert!(!ra.is_empty() && !rb.is_empty());
    assert!(ra.end <= rb.start || rb.end <= ra.start, "{ra:?} {rb:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_saved_by_compare_and_swap_and_brokers_heartbeat() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let member = |node: i32| {
        let mut c =
            ClusterConfig::new(pg.url(), format!("file://{}", store.path().display()), node);
        c.advertised = Some(("127.0.0.1".into(), 9000 + node));
        c.broker_timeout_ms = 900;
        c
    };
    let a = ClusterEngine::connect(member(1), Clock::system())
        .await
        .unwrap();
    let b = ClusterEngine::connect(member(2), Clock::system())
        .await
        .unwrap();
    let (ca, cb) = (a.shared().unwrap(), b.shared().unwrap());
    assert_eq!(ca.load().unwrap(), None);
    assert_eq!(ca.save(0, b"one").unwrap(), Some(1));
    // The second first save loses; so does a save over a stale version.
    assert_eq!(cb.save(0, b"two").unwrap(), None);
    let mut seen = cb.watch();
    tokio::time::timeout(Duration::from_secs(5), seen.wait_for(|&v| v >= 1))
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(cb.load().unwrap(), Some((1, b"one".to_vec())));
    assert_eq!(cb.save(1, b"two").unwrap(), Some(2));
    assert_eq!(ca.save(1, b"stale").unwrap(), None);
    assert_eq!(ca.load().unwrap(), Some((2, b"two".to_vec())));

    // Both brokers see both; one that leaves is gone at once.
    let ids = |c: &Arc<dyn weir_storage::SharedCatalog>| {
        c.brokers()
            .iter()
            .map(|b| (b.node_id, b.port))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ids(&ca) != [(1, 9001), (2, 9002)] && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids(&ca), [(1, 9001), (2, 9002)]);
    b.shutdown().unwrap();
    drop(b);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ids(&ca) != [(1, 9001)] && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids(&ca), [(1, 9001)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_fails_appends_retriably_and_every_connection_comes_back() {
    let Some(pg) = Pg::start() else { return };
    let base = tempfile::tempdir().unwrap();
    let store = base.path().join("store");
    let a = engine(&pg, &store, 1).await;
    let b = engine(&pg, &store, 2).await;
    let tp = TopicPartition::new("pgr", 0);
    let la = a.open(&tp, LogConfig::default()).unwrap();
    let lb = b.open(&tp, LogConfig::default()).unwrap();
    la.append(batch(2, 0, "before"), 0).await.unwrap();
    // At once: an acknowledged commit must be on disk, not in WAL buffers
    // (the server's synchronous_commit is off; the engine's sessions
    // turn it on, and without that this test loses "before").
    pg.crash();
    // While the database is down nothing is acknowledged: the flush's
    // transaction (or its connection) fails and so does the append.
    for i in 0..3 {
        let err = la.append(batch(1, 0, "down"), 0).await.unwrap_err();
        assert!(matches!(err, LogError::Io { .. }), "{i}: {err:?}");
    }
    // Reads that need the database fail too, without hanging.
    assert!(la.producers().is_err());
    pg.run_server();
    // The committer, the pooled connection and the listener reconnect by
    // themselves (with backoff, so the first attempts may still fail).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let info = loop {
        match la.append(batch(1, 0, "after"), 0).await {
            Ok(info) => break info,
            Err(e) => {
                assert!(matches!(e, LogError::Io { .. }), "{e:?}");
                assert!(std::time::Instant::now() < deadline, "no reconnect: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // The failed appends took no offsets.
    assert_eq!(info.base_offset, 2);
    // The other broker hears of commits again (its LISTEN connection is
    // back): its long poll is woken by a commit made after the restart.
    let mut end = lb.subscribe();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        la.append(batch(1, 0, "more"), 0).await.unwrap();
        if tokio::time::timeout(Duration::from_secs(1), end.wait_for(|e| *e >= 4))
            .await
            .is_ok()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no notification");
    }
    let got: Vec<String> = read_all(&lb, 0).await.into_iter().map(|(_, v)| v).collect();
    assert_eq!(&got[..4], &["before-0", "before-1", "after-0", "more-0"]);
    assert!(lb.producers().unwrap().is_empty());
}

/// Hands lease (`topic`, `p`) to broker 2 at the next epoch behind the
/// brokers' backs (as if broker 1 had paused past its lease); answers the
/// connection used.
async fn take_lease_for_broker_2(pg: &Pg, topic: &str, p: i32) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "UPDATE weir.coordinators SET holder = 2, epoch = epoch + 1 \
             WHERE topic = $1 AND partition = $2",
            &[&topic, &p],
        )
        .await
        .unwrap();
    client
}

/// Brokers 1 and 2 with short broker timeouts and leases (900 ms,
/// 1.5 s); broker 1 gathers for 400 ms, so a takeover can happen between
/// an append and its commit.
async fn lease_brokers(pg: &Pg, store: &Path) -> (ClusterEngine, ClusterEngine) {
    let member = |node: i32, flush_ms: u64| {
        let mut c = ClusterConfig::new(pg.url(), format!("file://{}", store.display()), node);
        c.advertised = Some(("127.0.0.1".into(), 9000 + node));
        c.broker_timeout_ms = 900;
        c.coordinator_lease_ms = 1500;
        c.flush_ms = flush_ms;
        c
    };
    let a = ClusterEngine::connect(member(1, 400), Clock::system())
        .await
        .unwrap();
    let b = ClusterEngine::connect(member(2, 10), Clock::system())
        .await
        .unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_leases_fence_a_stale_holders_writes() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, b) = lease_brokers(&pg, store.path()).await;
    let topic = "__consumer_offsets";
    let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new(topic, p)).collect();
    let a_logs = open_all(&a, &tps);
    let b_logs = open_all(&b, &tps);
    let (ca, cb) = (a.shared().unwrap(), b.shared().unwrap());
    let held_a = ca.lead_coordinators(topic, 2).unwrap();
    let held_b = cb.lead_coordinators(topic, 2).unwrap();
    // The two partitions spread over the two brokers, one each.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (ha, hb) = (held_a.borrow().clone(), held_b.borrow().clone());
        if ha.len() == 1 && hb.len() == 1 && ha.keys().ne(hb.keys()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ha:?} {hb:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (&p, &epoch) = held_a.borrow().iter().next().unwrap();
    let pi = usize::try_from(p).unwrap();
    assert_eq!(ca.coordinator_epoch(topic, p), Some(epoch));
    assert_eq!(cb.coordinator_epoch(topic, p), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cb.coordinator_of(topic, p) != Some(1) {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The holder writes; a broker without the lease is refused at once.
    a_logs[pi]
        .append(batch(1, 1, "by-holder"), 0)
        .await
        .expect("the holder writes");
    assert!(matches!(
        b_logs[pi].append(batch(1, 1, "not-holder"), 0).await,
        Err(LogError::Io { .. })
    ));

    // Broker 1 appends, then (as if it were paused) another broker takes
    // its lease before the append's transaction runs: the commit is
    // refused and takes no offset.
    let stale = a_logs[pi].append(batch(1, 2, "stale"), 0);
    let client = take_lease_for_broker_2(&pg, topic, p).await;
    let refused = stale.await;
    assert!(matches!(refused, Err(LogError::Io { .. })), "{refused:?}");
    let next: i64 = client
        .query_one(
            "SELECT next_offset FROM weir.partitions WHERE topic = $1 AND partition = $2",
            &[&topic, &p],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 1, "the fenced append took no offset");
    // Broker 1 learns at its next renewal that it lost the lease.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ca.coordinator_epoch(topic, p).is_some() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Hand the row back to broker 1 as a lease that ran out, then stop
    // broker 1: broker 2 takes both partitions at new epochs and reads
    // what was committed under the old ones.
    client
        .execute(
            "UPDATE weir.coordinators SET holder = 1, expires_at = now() \
             WHERE topic = $1 AND partition = $2",
            &[&topic, &p],
        )
        .await
        .unwrap();
    a.shutdown().unwrap();
    drop(a_logs);
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while held_b.borrow().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            held_b.borrow()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_epoch = held_b.borrow()[&p];
    assert!(new_epoch > epoch + 1, "{new_epoch} after {epoch}");
    b_logs[pi]
        .append(batch(1, 3, "new-holder"), 0)
        .await
        .expect("the new holder writes");
    let got: Vec<String> = read_all(&b_logs[pi], 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, ["by-holder-0", "new-holder-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_gates_admit_the_coordinators_producer_epoch_while_open() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, b) = lease_brokers(&pg, store.path()).await;
    let topic = "__transaction_state";
    let (ca, cb) = (a.shared().unwrap(), b.shared().unwrap());
    let held_a = ca.lead_coordinators(topic, 1).unwrap();
    let held_b = cb.lead_coordinators(topic, 1).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (coord, other, epoch) = loop {
        if let Some(&e) = held_a.borrow().get(&0) {
            break (&ca, &cb, e);
        }
        if let Some(&e) = held_b.borrow().get(&0) {
            break (&cb, &ca, e);
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lease = Lease {
        topic: topic.into(),
        partition: 0,
        epoch,
    };
    let tp = |p: i32| ("out".to_string(), p);
    let join = |producer: (i64, i16), p: i32| other.join_transaction("t", 0, producer, &[tp(p)], 5);
    // No gate yet: the coordinator opens it at InitProducerId.
    assert_eq!(join((7, 0), 0).unwrap(), Some(JoinRefused::UnknownProducer));
    coord.open_transaction("t", &lease, (7, 0), true).unwrap();
    assert_eq!(join((7, 0), 0).unwrap(), None);
    assert_eq!(join((7, 0), 1).unwrap(), None);
    assert_eq!(join((7, 0), 1).unwrap(), None, "joining again is harmless");
    assert_eq!(join((7, 1), 2).unwrap(), Some(JoinRefused::StaleEpoch));
    assert_eq!(join((8, 0), 2).unwrap(), Some(JoinRefused::UnknownProducer));
    // Sealed: every partition joined is read back, and nothing joins now.
    let sealed = coord.seal_transaction("t", &lease).unwrap();
    let mut parts: Vec<(i64, i16, i32)> = sealed
        .iter()
        .map(|r| (r.producer_id, r.producer_epoch, r.partition))
        .collect();
    parts.sort_unstable();
    assert_eq!(parts, [(7, 0, 0), (7, 0, 1)]);
    assert_eq!(join((7, 0), 2).unwrap(), Some(JoinRefused::Closed));
    // Opened at the bumped epoch once the transaction completed: the old
    // epoch's writes are refused and its partitions forgotten.
    coord.open_transaction("t", &lease, (7, 1), false).unwrap();
    assert_eq!(join((7, 0), 2).unwrap(), Some(JoinRefused::StaleEpoch));
    assert_eq!(join((7, 1), 2).unwrap(), None);
    let joined = coord.joined_transactions(&[0]).unwrap();
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert_eq!((joined[0].producer_epoch, joined[0].partition), (1, 2));
    // Still open: a reopen that keeps the current epoch's partitions.
    coord.open_transaction("t", &lease, (7, 1), true).unwrap();
    assert_eq!(coord.seal_transaction("t", &lease).unwrap().len(), 1);
    // Only the lease holder, at its epoch, closes or opens the gate.
    let stale = Lease {
        epoch: epoch - 1,
        ..lease.clone()
    };
    assert!(coord.open_transaction("t", &stale, (7, 1), true).is_err());
    assert!(other.seal_transaction("t", &lease).is_err());
    assert_eq!(join((7, 1), 3).unwrap(), Some(JoinRefused::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_leases_follow_leadership_and_fence_state_writes_to_another_partition() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, b, lease, held_a, held_b) = share_lease_brokers(&pg, store.path()).await;
    let ca = a.shared().unwrap();
    // Each share lease goes to the broker Metadata names leader of the
    // topic's partition.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let brokers = ca.brokers();
        let (ha, hb) = (held_a.borrow().clone(), held_b.borrow().clone());
        let agrees = brokers.len() == 2
            && (0..4).all(|p| {
                let holder = if ha.contains_key(&p) {
                    1
                } else if hb.contains_key(&p) {
                    2
                } else {
                    -1
                };
                holder == weir_storage::spread(&brokers, "events", p)
            });
        if agrees {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ha:?} {hb:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (&p, &epoch) = held_a.borrow().iter().next().expect("broker 1 leads one");
    let (a_log, b_log, held) = owner_writes_state(&a, &b, &lease, p, epoch).await;
    // A broker not holding the lease is refused when its write commits.
    let refused = b_log.append_fenced(batch(1, 1, "other"), 0, &held).await;
    assert!(matches!(refused, Err(LogError::Io { .. })), "{refused:?}");
    // A paused owner: another broker takes the lease between its append
    // and the commit, which is refused and takes no offset.
    let stale = a_log.append_fenced(batch(1, 2, "stale"), 0, &held);
    take_lease_for_broker_2(&pg, &lease, p).await;
    let refused = stale.await;
    assert!(matches!(refused, Err(LogError::Io { .. })), "{refused:?}");
    // Unfenced appends to the state partition are not affected.
    a_log
        .append(batch(1, 3, "plain"), 0)
        .await
        .expect("no lease asked");
    wait_end(&b_log, 2).await;
    let got: Vec<String> = read_all(&b_log, 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, ["owner-0", "plain-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseding_append_fences_the_share_lease_holder_until_it_reloads() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, b, lease, held_a, _held_b) = share_lease_brokers(&pg, store.path()).await;
    let ca = a.shared().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (p, epoch) = loop {
        if let Some((&p, &e)) = held_a.borrow().iter().next() {
            break (p, e);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "broker 1 leads nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (a_log, b_log, held) = owner_writes_state(&a, &b, &lease, p, epoch).await;
    // Broker 2, which does not hold the lease, supersedes broker 1's
    // state: answered only once broker 1 no longer holds it at `epoch`.
    b_log
        .append_superseding(batch(1, 2, "altered"), 0, &lease, p)
        .await
        .expect("superseded");
    assert_ne!(ca.coordinator_epoch(&lease, p), Some(epoch));
    // The former state's writes are refused from then on.
    let refused = a_log.append_fenced(batch(1, 3, "stale"), 0, &held).await;
    assert!(matches!(refused, Err(LogError::Io { .. })), "{refused:?}");
    // Broker 1 keeps the lease, at a later epoch (it reloads at that one).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while held_a.borrow().get(&p).is_none_or(|e| *e <= epoch + 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            held_a.borrow()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A lease nobody took yet: its row is made, expired, at epoch 1, so
    // whoever takes it later reloads after this append.
    b_log
        .append_superseding(batch(1, 4, "unowned"), 0, "weir:share:nobody", 0)
        .await
        .expect("nobody to wait for");
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT holder, epoch, expires_at < now() FROM weir.coordinators \
             WHERE topic = 'weir:share:nobody' AND partition = 0",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, i64>(1), row.get(2)),
        (-1, 1, true)
    );
    wait_end(&a_log, 3).await;
    let got: Vec<String> = read_all(&a_log, 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, ["owner-0", "altered-0", "unowned-0"]);
}

/// Two brokers following the share leases of topic `events` (4
/// partitions): the lease name and what each holds.
async fn share_lease_brokers(
    pg: &Pg,
    store: &Path,
) -> (
    ClusterEngine,
    ClusterEngine,
    String,
    tokio::sync::watch::Receiver<std::collections::BTreeMap<i32, i64>>,
    tokio::sync::watch::Receiver<std::collections::BTreeMap<i32, i64>>,
) {
    let (a, b) = lease_brokers(pg, store).await;
    let lease = weir_storage::share_lease("events");
    let held_a = a.shared().unwrap().lead_coordinators(&lease, 4).unwrap();
    let held_b = b.shared().unwrap().lead_coordinators(&lease, 4).unwrap();
    (a, b, lease, held_a, held_b)
}

/// `__share_group_state`-0 on brokers `a` and `b` (the state lives in a
/// partition of another topic, not itself leased), after `a`, holding
/// share lease `lease` of partition `p` at `epoch`, wrote "owner" to it.
async fn owner_writes_state(
    a: &ClusterEngine,
    b: &ClusterEngine,
    lease: &str,
    p: i32,
    epoch: i64,
) -> (
    Arc<dyn PartitionLog>,
    Arc<dyn PartitionLog>,
    weir_storage::Lease,
) {
    let state = TopicPartition::new("__share_group_state", 0);
    let a_log = a.open(&state, LogConfig::default()).unwrap();
    let b_log = b.open(&state, LogConfig::default()).unwrap();
    let held = weir_storage::Lease {
        topic: lease.to_string(),
        partition: p,
        epoch,
    };
    a_log
        .append_fenced(batch(1, 1, "owner"), 0, &held)
        .await
        .expect("the owner writes");
    (a_log, b_log, held)
}

/// Waits until `log` knows the log end `end` (another broker's commit
/// arrives by notification).
async fn wait_end(log: &Arc<dyn PartitionLog>, end: i64) {
    let mut w = log.subscribe();
    tokio::time::timeout(Duration::from_secs(10), w.wait_for(|e| *e >= end))
        .await
        .expect("the commit's notification")
        .expect("watch");
}

fn marker(pid: i64, epoch: i16, kind: ControlType) -> Bytes {
    marker_batch(pid, epoch, kind, 0, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_hold_the_last_stable_offset_and_aborts_are_read_on_any_broker() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let tp = TopicPartition::new("t", 0);
    let la = a.open(&tp, LogConfig::default()).unwrap();
    let lb = b.open(&tp, LogConfig::default()).unwrap();
    la.append(batch(2, 0, "plain"), 0).await.unwrap();
    // Producer 10 opens a transaction at offset 2 through broker a: the
    // last stable offset stops there, on both brokers.
    let t10 = la
        .append(producer_batch(10, 0, 0, 2, "t10", true), 0)
        .await
        .unwrap();
    assert_eq!(t10.base_offset, 2);
    assert_eq!(la.offsets().last_stable, 2);
    wait_end(&lb, 4).await;
    assert_eq!(
        (lb.offsets().last_stable, lb.offsets().high_watermark),
        (2, 4)
    );
    let r = lb.read(0, 1 << 20, ReadLimit::LastStable).await.unwrap();
    assert_eq!(
        values(r.records),
        vec![(0, "plain-0".to_string()), (1, "plain-1".to_string())]
    );
    // Producer 11 opens another through broker b; 10's ABORT marker, also
    // through b, leaves the last stable offset at 11's first offset.
    let t11 = lb
        .append(producer_batch(11, 0, 0, 1, "t11", true), 0)
        .await
        .unwrap();
    assert_eq!(t11.base_offset, 4);
    let abort = lb
        .append(marker(10, 0, ControlType::Abort), 0)
        .await
        .unwrap();
    assert_eq!(abort.base_offset, 5);
    assert_eq!(lb.offsets().last_stable, 4);
    let commit = la
        .append(marker(11, 0, ControlType::Commit), 0)
        .await
        .unwrap();
    assert_eq!(commit.base_offset, 6);
    assert_eq!(la.offsets().last_stable, 7);
    wait_end(&lb, 7).await;
    assert_eq!(lb.offsets().last_stable, 7);

    // Producer 10 at its next epoch opens a transaction; its zombie at
    // the old epoch is fenced in the sequencing transaction, data and
    // marker alike, whichever broker takes them.
    la.append(producer_batch(10, 1, 0, 1, "t10e1", true), 0)
        .await
        .unwrap();
    let err = lb
        .append(producer_batch(10, 0, 2, 1, "zombie", true), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::InvalidProducerEpoch { .. }),
        "{err:?}"
    );
    let err = lb
        .append(marker(10, 0, ControlType::Commit), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::InvalidProducerEpoch { .. }),
        "{err:?}"
    );
    // A broker starting now reads the open transaction's hold from
    // PostgreSQL.
    let c = engine(&pg, store.path(), 3).await;
    let lc = c.open(&tp, LogConfig::default()).unwrap();
    assert_eq!((lc.offsets().last_stable, lc.offsets().log_end), (7, 8));
    la.append(marker(10, 1, ControlType::Commit), 0)
        .await
        .unwrap();
    wait_end(&lc, 9).await;
    assert_eq!(lc.offsets().last_stable, 9);

    // The aborted transaction, as a read_committed fetch asks for it on
    // any broker: producer 10 from offset 2, its marker at 5.
    for log in [&la, &lb, &lc] {
        wait_end(log, 9).await;
        let r = log.read(0, 1 << 20, ReadLimit::LastStable).await.unwrap();
        assert_eq!(values(r.records).len(), 9);
        let aborted = log.aborted_transactions(0, 9);
        assert_eq!(aborted.len(), 1, "{aborted:?}");
        assert_eq!(
            (
                aborted[0].producer_id,
                aborted[0].first_offset,
                aborted[0].last_offset
            ),
            (10, 2, 5)
        );
        assert!(log.aborted_transactions(6, 9).is_empty());
    }
    // DescribeProducers shows no open transaction left.
    let producers = la.producers().unwrap();
    assert!(
        producers.iter().all(|(_, e)| e.txn_first_offset.is_none()),
        "{producers:?}"
    );
    for e in [a, b, c] {
        e.shutdown().unwrap();
    }
}

/// Every object key under `dir` of a `file://` store.
fn stored(store: &Path, dir: &str) -> Vec<String> {
    fn walk(p: &Path, out: &mut Vec<String>, root: &Path) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out, root);
            } else if !path.to_string_lossy().contains("#") {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&store.join(dir), &mut out, store);
    out.sort();
    out
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_jobs_compact_retain_collect_and_move_when_their_holder_dies() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let member = |node: i32| {
        let mut c =
            ClusterConfig::new(pg.url(), format!("file://{}", store.path().display()), node);
        c.advertised = Some(("127.0.0.1".into(), 9000 + node));
        c.broker_timeout_ms = 900;
        c.coordinator_lease_ms = 1500;
        c.flush_ms = 5;
        c.job_interval_ms = 200;
        c.job_slots = 1;
        c.collect_grace_ms = 500;
        // Short, for the stray object to go within the test: a flush or
        // job whose row goes in later than half of this after its upload
        // began rolls back (it fails or retries, never commits a row to
        // an object the collector took).
        c.orphan_grace_ms = 2000;
        c.compact_after_ms = 0;
        c
    };
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let a = ClusterEngine::connect(member(1), Clock::system())
        .await
        .unwrap();
    let b = ClusterEngine::connect(member(2), Clock::system())
        .await
        .unwrap();
    let tp = TopicPartition::new("jobs", 0);
    let keep = LogConfig {
        retention_ms: -1,
        ..LogConfig::default()
    };
    let la = a.open(&tp, keep.clone()).unwrap();
    let lb = b.open(&tp, keep.clone()).unwrap();
    // Many small intake objects, written through both brokers, with
    // ancient timestamps (retention is off for now), while compaction
    // runs.
    for i in 0..12 {
        let log = if i % 2 == 0 { &la } else { &lb };
        log.append(batch(3, 1, &format!("b{i}")), 0).await.unwrap();
    }
    let before: Vec<(i64, String)> = (0..12)
        .flat_map(|i| (0..3).map(move |j| (3 * i + j, format!("b{i}-{j}"))))
        .collect();
    let holder = || async {
        client
            .query_opt(
                "SELECT holder FROM weir.coordinators WHERE topic = 'weir:jobs' AND expires_at > now()",
                &[],
            )
            .await
            .unwrap()
            .map(|r| r.get::<_, i32>(0))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while holder().await.is_none() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let compacted = || async {
        client
            .query_one(
                "SELECT count(*) FILTER (WHERE o.key LIKE 'compacted/%'), count(*) \
                 FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id",
                &[],
            )
            .await
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Readers on both brokers see every record once, at its offset,
        // before, during and after the swap.
        assert_eq!(read_all(&la, 0).await, before);
        assert_eq!(read_all(&lb, 0).await, before);
        let (moved, rows) = compacted().await;
        if moved == rows {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{moved} of {rows}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // The intake objects are unreferenced now: collected after the
    // grace; the compacted object, referenced, stays. A stray upload no
    // transaction recorded goes too, once older than its grace.
    std::fs::write(store.path().join("intake").join("stray"), b"x").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !stored(store.path(), "intake").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            stored(store.path(), "intake")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every referenced object is in the store throughout; unreferenced
    // ones (a compaction whose rows went meanwhile) go after their grace.
    let referenced = || async {
        client
            .query(
                "SELECT DISTINCT o.key FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    // An object referenced both before and after the listing was
    // referenced throughout it (rows only move to newer objects), so it
    // must be listed; one referenced only before may have been replaced
    // and collected in between.
    let settled = || async {
        let before = referenced().await;
        let have = stored(store.path(), "compacted");
        let want = referenced().await;
        let kept: Vec<&String> = want.iter().filter(|k| before.contains(k)).collect();
        assert!(kept.iter().all(|k| have.contains(k)), "{kept:?} {have:?}");
        want == have
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !settled().await {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read_all(&la, 0).await, before);
    assert_eq!(read_all(&lb, 0).await, before);

    // Kill the job holder (no clean shutdown: its lease runs out): the
    // other broker takes the slot and applies retention. Recent records
    // stay; the ancient ones go, and then their object.
    let first = holder().await.unwrap();
    let (killed, killed_log, survivor_log) = if first == 1 { (a, la, lb) } else { (b, lb, la) };
    drop(killed_log);
    drop(killed);
    let fresh = now_ms();
    survivor_log
        .append(batch(2, fresh, "fresh"), 0)
        .await
        .unwrap();
    survivor_log.set_config(LogConfig {
        retention_ms: 3_600_000,
        ..keep.clone()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while survivor_log.offsets().log_start != 36 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            survivor_log.offsets()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(holder().await, Some(3 - first));
    let got: Vec<String> = read_all(&survivor_log, 36)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, ["fresh-0", "fresh-1"]);
    assert!(matches!(
        survivor_log
            .read(0, 1 << 20, ReadLimit::HighWatermark)
            .await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // The ancient records' objects go; the fresh ones' stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if settled().await && stored(store.path(), "compacted").len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bytes_deletes_the_oldest_rows_while_the_rest_still_reach_it() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let mut c = ClusterConfig::new(pg.url(), format!("file://{}", store.path().display()), 1);
    c.advertised = Some(("127.0.0.1".into(), 9001));
    c.broker_timeout_ms = 900;
    c.coordinator_lease_ms = 1500;
    c.flush_ms = 5;
    c.job_interval_ms = 200;
    c.job_slots = 1;
    let a = ClusterEngine::connect(c, Clock::system()).await.unwrap();
    let tp = TopicPartition::new("sized", 0);
    let one = batch(2, now_ms(), "r0").len();
    // Kafka's rule: the oldest segment goes while what remains without
    // it is still at least retention.bytes; here a row is a segment.
    let log = a
        .open(
            &tp,
            LogConfig {
                retention_bytes: i64::try_from(3 * one).unwrap(),
                ..LogConfig::default()
            },
        )
        .unwrap();
    for i in 0..10 {
        log.append(batch(2, now_ms(), &format!("r{i}")), 0)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while log.offsets().log_start != 14 {
        assert!(std::time::Instant::now() < deadline, "{:?}", log.offsets());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(log.size_bytes(), 3 * one as u64);
    let got: Vec<String> = read_all(&log, 14)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, ["r7-0", "r7-1", "r8-0", "r8-1", "r9-0", "r9-1"]);
    a.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_lease_was_taken_over_commits_nothing() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let mut c = ClusterConfig::new(pg.url(), format!("file://{}", store.path().display()), 1);
    c.advertised = Some(("127.0.0.1".into(), 9001));
    c.broker_timeout_ms = 900;
    c.coordinator_lease_ms = 1500;
    c.flush_ms = 5;
    c.job_interval_ms = 200;
    c.job_slots = 1;
    c.compact_after_ms = 0;
    let a = ClusterEngine::connect(c, Clock::system()).await.unwrap();
    let (mut client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    wait_for_job_slot(&client).await;
    // Hold the job lease row, so the compaction's transaction waits at
    // its fence (as if the holder were paused there), then hand the lease
    // to another broker before letting it go on.
    let tx = hold_job_lease(&mut client).await;
    let tp = TopicPartition::new("fenced", 0);
    let log = a.open(&tp, LogConfig::default()).unwrap();
    for i in 0..3 {
        log.append(batch(2, now_ms(), &format!("f{i}")), 0)
            .await
            .unwrap();
    }
    let watch = connect(&pg).await;
    wait_at_fence(&watch).await;
    hand_job_lease_away(tx).await;
    // The fenced compaction recorded nothing: every row is still in its
    // intake object, and the object it uploaded is named by no row.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_compacted = || async {
        watch
            .query_one(
                "SELECT count(*) FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id \
                 WHERE o.key LIKE 'compacted/%'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(in_compacted().await, 0);
    assert!(!stored(store.path(), "compacted").is_empty());
    // Once the lease comes back (the other holder's runs out), this
    // broker takes it at a new epoch and compacts.
    client
        .execute(
            "UPDATE weir.coordinators SET expires_at = now() WHERE topic = 'weir:jobs'",
            &[],
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while in_compacted().await != 3 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<String> = read_all(&log, 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, ["f0-0", "f0-1", "f1-0", "f1-1", "f2-0", "f2-1"]);
    a.shutdown().unwrap();
}

/// One broker whose collector takes unrecorded uploads after
/// `orphan_grace_ms` (its orphan pass runs every second) and deletes
/// unreferenced objects `collect_grace_ms` after; compaction is off, so
/// the store holds the flushes' objects only.
async fn collector(
    pg: &Pg,
    store: &Path,
    orphan_grace_ms: u64,
    collect_grace_ms: u64,
) -> (ClusterEngine, tokio_postgres::Client) {
    let mut c = ClusterConfig::new(pg.url(), format!("file://{}", store.display()), 1);
    c.advertised = Some(("127.0.0.1".into(), 9001));
    c.broker_timeout_ms = 900;
    c.coordinator_lease_ms = 1500;
    c.flush_ms = 5;
    c.job_interval_ms = 100;
    c.job_slots = 1;
    c.orphan_grace_ms = orphan_grace_ms;
    c.collect_grace_ms = collect_grace_ms;
    c.compact_after_ms = 3_600_000;
    let engine = ClusterEngine::connect(c, Clock::system()).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    wait_for_job_slot(&client).await;
    (engine, client)
}

/// Until the store holds `n` intake objects.
async fn wait_stored(store: &Path, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stored(store, "intake").len() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            stored(store, "intake")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Object rows no index row references (uploads the collector adopted).
async fn unreferenced(client: &impl tokio_postgres::GenericClient) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM weir.objects o \
             WHERE NOT EXISTS (SELECT 1 FROM weir.batches b WHERE b.object_id = o.id)",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A flush whose transaction stalls (here on its partition's row lock)
/// until its object is older than the orphan grace: the collector takes
/// the object, and the flush must then fail rather than acknowledge
/// records whose bytes are gone. Both ways the flush can learn it: the
/// collector's row for the key is still there (the insert conflicts), or
/// it went with the object (the insert is past its deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_stalled_until_its_object_was_collected_is_not_acknowledged() {
    for (collect_grace_ms, why) in [
        (3_600_000, "collected before its transaction"),
        (200, "waited too long"),
    ] {
        let Some(pg) = Pg::start() else { return };
        let store = tempfile::tempdir().unwrap();
        let (a, mut client) = collector(&pg, store.path(), 2000, collect_grace_ms).await;
        let tp = TopicPartition::new("stalled", 0);
        let log = a.open(&tp, LogConfig::default()).unwrap();
        log.append(batch(2, now_ms(), "first"), 0).await.unwrap();
        let tx = client.transaction().await.unwrap();
        tx.execute(
            "SELECT 1 FROM weir.partitions WHERE topic = 'stalled' FOR UPDATE",
            &[],
        )
        .await
        .unwrap();
        let late = tokio::spawn(log.append(batch(2, now_ms(), "late"), 0));
        wait_stored(store.path(), 2).await;
        // Adopted and kept (the long grace) or deleted with its row: the
        // stalled upload is no longer there for the flush to record.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (objects, adopted) = (
                stored(store.path(), "intake").len(),
                unreferenced(&tx).await,
            );
            let taken = if collect_grace_ms > 60_000 {
                adopted == 1 || objects == 1
            } else {
                adopted == 0 && objects == 1
            };
            if taken {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{objects} objects, {adopted} adopted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tx.rollback().await.unwrap();
        let got = late.await.unwrap();
        assert!(
            matches!(&got, Err(e @ LogError::Io { .. }) if e.to_string().contains(why)),
            "an append whose object the collector took: {got:?}"
        );
        // It took no offsets; the partition goes on.
        assert_eq!(log.offsets().log_end, 2);
        let info = log.append(batch(1, now_ms(), "next"), 0).await.unwrap();
        assert_eq!(info.base_offset, 2);
        let values: Vec<String> = read_all(&log, 0)
            .await
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(values, ["first-0", "first-1", "next-0"]);
        a.shutdown().unwrap();
    }
}

/// A flush that has inserted its object's row but not committed when the
/// collector lists the object as old and unrecorded: the collector waits
/// for that transaction and, once it commits, leaves the object alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_waits_for_a_transaction_recording_the_object() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, client) = collector(&pg, store.path(), 2000, 200).await;
    let tp = TopicPartition::new("held", 0);
    let log = a.open(&tp, LogConfig::default()).unwrap();
    log.append(batch(2, now_ms(), "first"), 0).await.unwrap();
    // Hold the next flush's transaction after its index rows went in (as
    // a stalled server or a lost COMMIT round trip would).
    client
        .batch_execute(
            "SELECT pg_advisory_lock(4242);
             CREATE FUNCTION public.hold() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$;
             CREATE TRIGGER hold AFTER INSERT ON weir.batches
                 FOR EACH STATEMENT EXECUTE FUNCTION public.hold();",
        )
        .await
        .unwrap();
    let held = tokio::spawn(log.append(batch(2, now_ms(), "held"), 0));
    wait_stored(store.path(), 2).await;
    let waiting = || async {
        client
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                 AND wait_event_type = 'Lock' AND query LIKE '%ON CONFLICT (key)%'",
                &[],
            )
            .await
            .unwrap()
            .is_some()
    };
    // Until the collector waits on the flush, or took its object.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !waiting().await && stored(store.path(), "intake").len() == 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the collector never reached the held object"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();
    let info = held.await.unwrap().unwrap();
    assert_eq!(info.base_offset, 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while waiting().await {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The acknowledged records' object is in the store and its row was
    // not adopted: reads are served from the store, not from memory.
    let row = client
        .query_one(
            "SELECT o.key, o.dropped_at IS NULL FROM weir.batches b JOIN weir.objects o \
             ON o.id = b.object_id WHERE b.topic = 'held' AND b.base_offset = 2",
            &[],
        )
        .await
        .unwrap();
    let key: String = row.get(0);
    assert!(row.get::<_, bool>(1), "{key} was adopted");
    assert!(
        stored(store.path(), "intake").contains(&key),
        "{key} is gone"
    );
    assert_eq!(unreferenced(&client).await, 0);
    a.shutdown().unwrap();
}

/// Waits until broker 1 holds the (single) background job slot.
async fn wait_for_job_slot(client: &tokio_postgres::Client) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while client
        .query_opt(
            "SELECT 1 FROM weir.coordinators WHERE topic = 'weir:jobs' AND holder = 1 AND expires_at > now()",
            &[],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "no job slot taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A broker that holds the single job slot and runs its jobs every
/// 100 ms on chunks committed at once; compaction moves at most
/// `compact_object_bytes` (at least one chunk) per pass.
async fn job_runner(
    pg: &Pg,
    store: &Path,
    compact_object_bytes: usize,
) -> (ClusterEngine, tokio_postgres::Client) {
    let mut c = ClusterConfig::new(pg.url(), format!("file://{}", store.display()), 1);
    c.advertised = Some(("127.0.0.1".into(), 9001));
    c.broker_timeout_ms = 900;
    c.coordinator_lease_ms = 1500;
    c.flush_ms = 5;
    c.job_interval_ms = 100;
    c.job_slots = 1;
    c.compact_after_ms = 0;
    c.compact_object_bytes = compact_object_bytes;
    // A map of 20 slots: 18 keys before it is full.
    c.cleaner_buffer_bytes = 24 * 20;
    let engine = ClusterEngine::connect(c, Clock::system()).await.unwrap();
    let client = connect(pg).await;
    wait_for_job_slot(&client).await;
    (engine, client)
}

/// The compacted objects the rows of `topic` point at, and how many of
/// its rows are still in intake objects.
async fn compacted_objects(client: &tokio_postgres::Client, topic: &str) -> (Vec<i64>, i64) {
    let rows = client
        .query(
            "SELECT o.id, o.key LIKE 'compacted/%' FROM weir.batches b \
             JOIN weir.objects o ON o.id = b.object_id WHERE b.topic = $1 ORDER BY b.base_offset",
            &[&topic],
        )
        .await
        .unwrap();
    let mut ids: Vec<i64> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(1))
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let intake = rows.iter().filter(|r| !r.get::<_, bool>(1)).count();
    (ids, i64::try_from(intake).unwrap())
}

/// Intake compaction writes one object per chunk here (24 of them);
/// merging groups adjacent ones up to the topic's `segment.bytes` (8
/// chunks), while readers on two brokers, one of them caching chunks,
/// read every record once at its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_compacted_objects_keeps_every_record_readable_on_two_brokers() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, client) = job_runner(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let tp = TopicPartition::new("merged", 0);
    let ts = now_ms();
    let one = batch(3, ts, "m00").len();
    let config = LogConfig {
        segment_bytes: 8 * one as u64,
        ..LogConfig::default()
    };
    let la = a.open(&tp, config.clone()).unwrap();
    let lb = b.open(&tp, config).unwrap();
    let mut want = Vec::new();
    for i in 0..24 {
        let tag = format!("m{i:02}");
        let info = la.append(batch(3, ts, &tag), 0).await.unwrap();
        want.extend((0..3).map(|j| (info.base_offset + j, format!("{tag}-{j}"))));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert_eq!(read_all(&la, 0).await, want);
        assert_eq!(read_all(&lb, 0).await, want);
        let (objects, in_intake) = compacted_objects(&client, "merged").await;
        if in_intake == 0 && objects.len() <= 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} compacted objects, {in_intake} rows in intake objects",
            objects.len()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(read_all(&la, 0).await, want);
    assert_eq!(read_all(&lb, 0).await, want);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// A merge whose job lease is taken over while it waits at its fence
/// (as a paused or killed holder's would be) records nothing: every row
/// stays in the object it was in, each record is read once, and the
/// merged object it uploaded is named by no row. The next holder merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_whose_lease_was_taken_over_commits_nothing() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, mut client) = job_runner(&pg, store.path(), 1).await;
    let tp = TopicPartition::new("fenced-merge", 0);
    let ts = now_ms();
    let one = batch(2, ts, "g0").len();
    // No two objects fit in one segment: nothing merges yet.
    let small = LogConfig {
        segment_bytes: one as u64,
        ..LogConfig::default()
    };
    let log = a.open(&tp, small.clone()).unwrap();
    let mut want = Vec::new();
    for i in 0..4 {
        let tag = format!("g{i}");
        let info = log.append(batch(2, ts, &tag), 0).await.unwrap();
        want.extend((0..2).map(|j| (info.base_offset + j, format!("{tag}-{j}"))));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let before = loop {
        let (objects, in_intake) = compacted_objects(&client, "fenced-merge").await;
        if in_intake == 0 {
            break objects;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(before.len(), 4);
    let uploaded = stored(store.path(), "compacted").len();
    let tx = hold_job_lease(&mut client).await;
    log.set_config(LogConfig {
        segment_bytes: 8 * one as u64,
        ..small
    });
    let watch = connect(&pg).await;
    wait_at_fence(&watch).await;
    // The merged object is in the store before its transaction.
    assert!(stored(store.path(), "compacted").len() > uploaded);
    hand_job_lease_away(tx).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while at_fence(&watch).await {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(compacted_objects(&watch, "fenced-merge").await, (before, 0));
    assert_eq!(read_all(&log, 0).await, want);
    // The lease comes back (the other holder's runs out): this broker
    // takes it at a new epoch and merges.
    watch
        .execute(
            "UPDATE weir.coordinators SET expires_at = now() WHERE topic = 'weir:jobs'",
            &[],
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while compacted_objects(&watch, "fenced-merge").await.0.len() != 1 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read_all(&log, 0).await, want);
    a.shutdown().unwrap();
}

/// One batch of keyed records (`None`: a tombstone), timestamps `ts`.
fn keyed(records: &[(String, Option<String>)], ts: i64) -> Bytes {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: v.as_ref().map(|v| Bytes::copy_from_slice(v.as_bytes())),
            ..record(i as i64, ts, "")
        })
        .collect();
    encode(&recs)
}

type Kv = (i64, String, Option<String>);

/// Appends `records` as one batch and notes them in `written` at their
/// offsets; answers the batch's size.
async fn append_keyed(
    log: &Arc<dyn PartitionLog>,
    written: &mut Vec<Kv>,
    records: Vec<(String, Option<String>)>,
    ts: i64,
) -> usize {
    let b = keyed(&records, ts);
    let size = b.len();
    let info = log.append(b, 0).await.unwrap();
    for (i, (k, v)) in records.into_iter().enumerate() {
        written.push((info.base_offset + i as i64, k, v));
    }
    size
}

/// Every record from offset 0 as (offset, key, value).
async fn read_keyed(log: &Arc<dyn PartitionLog>) -> Vec<Kv> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let r = log
            .read(at, 1 << 20, ReadLimit::HighWatermark)
            .await
            .expect("read");
        if r.records.is_empty() {
            return out;
        }
        let mut b = r.records;
        while !b.is_empty() {
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).expect("decode");
            for rec in set.records {
                at = rec.offset + 1;
                let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((rec.offset, text(rec.key).unwrap(), text(rec.value)));
            }
        }
    }
}

/// What one unbounded cleaning pass over `written` keeps: each key's
/// latest record (tombstones too, unless `drop_tombstones`), in offset
/// order.
fn latest_per_key(written: &[Kv], drop_tombstones: bool) -> Vec<Kv> {
    let mut latest = std::collections::HashMap::new();
    for (o, k, _) in written {
        latest.insert(k.clone(), *o);
    }
    written
        .iter()
        .filter(|(o, k, v)| latest[k] == *o && !(drop_tombstones && v.is_none()))
        .cloned()
        .collect()
}

/// A compacted partition many times larger than the cleaner reads at
/// once (and than the old in-memory limit of four compaction objects),
/// whose dirty records overflow the cleaner's map many times over, ends
/// up as one unbounded pass would leave it: each key's latest record,
/// tombstones kept for `delete.retention.ms` and then removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaning_in_bounded_memory_keeps_what_an_unbounded_pass_keeps() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, client) = job_runner(&pg, store.path(), 300).await;
    let tp = TopicPartition::new("cleaned", 0);
    let config = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    let log = a.open(&tp, config.clone()).unwrap();
    let ts = now_ms() - 1000;
    let mut written: Vec<Kv> = Vec::new();
    let mut bytes = 0;
    // Ten rounds over twelve keys, four keys a batch; in the last round
    // every third key is deleted.
    for round in 0..10 {
        for part in 0..3 {
            let recs: Vec<(String, Option<String>)> = (0..4)
                .map(|j| {
                    let key = 4 * part + j;
                    let value = (round < 9 || key % 3 != 0).then(|| format!("k{key}-r{round}"));
                    (format!("k{key:02}"), value)
                })
                .collect();
            bytes += append_keyed(&log, &mut written, recs, ts).await;
        }
    }
    assert!(bytes > 8 * 300, "{bytes} bytes");
    // The last row is never cleaned (Kafka's active segment).
    append_keyed(
        &log,
        &mut written,
        vec![("end".into(), Some("1".into()))],
        ts,
    )
    .await;
    let end_base = written.last().unwrap().0;
    let cleaned_to = || async {
        client
            .query_one(
                "SELECT cleaned_to FROM weir.partitions WHERE topic = 'cleaned'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let want = latest_per_key(&written, false);
    assert_eq!(want.len(), 13);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = read_keyed(&log).await;
        if got == want && cleaned_to().await == end_base {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got:?} (cleaned to {})",
            cleaned_to().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once past delete.retention.ms, the next pass drops the tombstones,
    // which have been through a pass.
    log.set_config(LogConfig {
        delete_retention_ms: 0,
        ..config
    });
    append_keyed(
        &log,
        &mut written,
        vec![("end2".into(), Some("2".into()))],
        ts,
    )
    .await;
    let want = latest_per_key(&written, true);
    assert_eq!(want.len(), 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = read_keyed(&log).await;
        if got == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.shutdown().unwrap();
}

/// A connection of the test's own.
async fn connect(pg: &Pg) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Locks the job lease row, so a job's transaction waits at its fence
/// (as if its broker were paused there) until the transaction ends.
async fn hold_job_lease(client: &mut tokio_postgres::Client) -> tokio_postgres::Transaction<'_> {
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM weir.coordinators WHERE topic = 'weir:jobs' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    tx
}

/// Whether a job's transaction waits at its fence.
async fn at_fence(watch: &tokio_postgres::Client) -> bool {
    watch
        .query_opt(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE '%FOR SHARE%' AND query LIKE '%weir.coordinators%'",
            &[],
        )
        .await
        .unwrap()
        .is_some()
}

/// Until a job's transaction waits at its fence.
async fn wait_at_fence(watch: &tokio_postgres::Client) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !at_fence(watch).await {
        assert!(
            std::time::Instant::now() < deadline,
            "no job waits at its fence"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Gives the held job lease to broker 99 for an hour, at a new epoch.
async fn hand_job_lease_away(tx: tokio_postgres::Transaction<'_>) {
    tx.execute(
        "UPDATE weir.coordinators SET holder = 99, epoch = epoch + 1, \
         expires_at = now() + interval '1 hour' WHERE topic = 'weir:jobs'",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_gathered_before_its_topic_was_deleted_never_reaches_the_topic_created_again() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("again", 0);
    // Gathering for an hour: the append waits until the shutdown flushes.
    let a = engine_flushing(&pg, store.path(), 1, 3_600_000).await;
    let old = a.open(&tp, LogConfig::default()).unwrap();
    // Gathered under the first topic, sequenced after the second exists.
    let late = tokio::spawn(old.append(batch(1, 0, "old"), 0));
    a.remove(&tp).unwrap();
    let _new = a.open(&tp, LogConfig::default()).unwrap();
    a.shutdown().unwrap();
    let answer = late.await.unwrap();
    assert!(
        matches!(answer, Err(LogError::Removed { .. })),
        "{answer:?}"
    );
    let b = engine(&pg, store.path(), 2).await;
    let log = b.open(&tp, LogConfig::default()).unwrap();
    assert_eq!(log.current_offsets().await.unwrap().log_end, 0);
    starts_afresh(&log, &log).await;
}

/// A partition created again: the first append through `writer` takes
/// offset 0 and is all `reader` finds.
async fn starts_afresh(writer: &Arc<dyn PartitionLog>, reader: &Arc<dyn PartitionLog>) {
    let info = writer.append(batch(1, 0, "new"), 0).await.unwrap();
    assert_eq!(info.base_offset, 0);
    // Read from the database: another broker's notification may be late.
    assert_eq!(reader.current_offsets().await.unwrap().log_end, 1);
    assert_eq!(read_all(reader, 0).await, vec![(0, "new-0".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_missed_a_delete_cannot_write_into_the_topic_created_again() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("again", 0);
    let a = engine(&pg, store.path(), 1).await;
    let b = engine(&pg, store.path(), 2).await;
    let stale = b.open(&tp, LogConfig::default()).unwrap();
    stale.append(batch(1, 0, "first"), 0).await.unwrap();
    // Broker 1 deletes the topic and creates it again; broker 2 has not
    // heard yet and still holds the first topic's partition.
    a.remove(&tp).unwrap();
    let fresh = a.open(&tp, LogConfig::default()).unwrap();
    let answer = stale.append(batch(1, 0, "stale"), 0).await;
    assert!(
        matches!(answer, Err(LogError::Removed { .. })),
        "{answer:?}"
    );
    assert!(matches!(
        stale.delete_records(0).await,
        Err(LogError::Removed { .. })
    ));
    assert_eq!(fresh.current_offsets().await.unwrap().log_end, 0);
    // Opened again, broker 2 writes to the new topic.
    let reopened = b.open(&tp, LogConfig::default()).unwrap();
    starts_afresh(&reopened, &fresh).await;
}

/// Until a statement whose text contains `needle` waits for a lock.
async fn wait_for_lock_wait(watch: &tokio_postgres::Client, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let pattern = format!("%{needle}%");
    while watch
        .query_opt(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
            &[&pattern],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing waits at {needle}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_partition_waits_for_the_flush_holding_its_row_and_leaves_no_rows() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("gone", 0);
    let a = engine(&pg, store.path(), 1).await;
    let log = a.open(&tp, LogConfig::default()).unwrap();
    let mut holder = connect(&pg).await;
    let watch = connect(&pg).await;
    // Holding the partition's row stops the flush at its lock, as a slow
    // transaction would.
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM weir.partitions WHERE topic = 'gone' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let flushed = tokio::spawn(log.append(batch(3, 0, "old"), 0));
    wait_for_lock_wait(&watch, "FOR UPDATE OF p").await;
    let remover = a.clone();
    let tp2 = tp.clone();
    let removed = tokio::task::spawn_blocking(move || remover.remove(&tp2));
    wait_for_lock_wait(&watch, "DELETE FROM weir.partitions").await;
    tx.commit().await.unwrap();
    // The flush went first: acknowledged, then removed with the topic.
    assert_eq!(flushed.await.unwrap().unwrap().base_offset, 0);
    removed.await.unwrap().unwrap();
    for table in ["batches", "producers", "aborted", "partitions"] {
        let n: i64 = watch
            .query_one(
                &format!("SELECT count(*) FROM weir.{table} WHERE topic = 'gone'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "weir.{table} keeps rows of the removed partition");
    }
    let again = a.open(&tp, LogConfig::default()).unwrap();
    starts_afresh(&again, &again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_decided_for_a_deleted_topic_does_not_touch_the_topic_created_again() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    // Broker 1 runs the jobs; broker 2 (no jobs) deletes and creates.
    let (b, _client) = job_runner(&pg, store.path(), 64 << 20).await;
    let a = engine(&pg, store.path(), 2).await;
    let everything = LogConfig {
        retention_bytes: 0,
        ..LogConfig::default()
    };
    let tp = TopicPartition::new("kept", 0);
    let control = b
        .open(&TopicPartition::new("ctl", 0), everything.clone())
        .unwrap();
    // Broker 1 still holds the first topic, whose retention keeps nothing.
    let _stale = b.open(&tp, everything).unwrap();
    a.remove(&tp).unwrap();
    let fresh = a.open(&tp, LogConfig::default()).unwrap();
    fresh.append(batch(3, now_ms(), "new"), 0).await.unwrap();
    // Three passes emptying the control partition: at least one whole
    // pass ran after the append.
    for i in 0..3 {
        let end = control
            .append(batch(1, now_ms(), &format!("c{i}")), 0)
            .await
            .unwrap()
            .last_offset
            + 1;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while control.offsets().log_start < end {
            assert!(std::time::Instant::now() < deadline, "no retention pass");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let o = fresh.current_offsets().await.unwrap();
    assert_eq!((o.log_start, o.log_end), (0, 3));
    assert_eq!(read_all(&fresh, 0).await.len(), 3);
    b.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_version_gets_an_incarnation_per_partition() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let tps = [TopicPartition::new("old", 0), TopicPartition::new("old", 1)];
    {
        let a = engine(&pg, store.path(), 1).await;
        for log in open_all(&a, &tps) {
            log.append(batch(2, 0, "before"), 0).await.unwrap();
        }
        a.shutdown().unwrap();
    }
    // The tables as the previous version created them.
    let client = connect(&pg).await;
    client
        .batch_execute(
            "ALTER TABLE weir.partitions DROP COLUMN incarnation; DROP SEQUENCE weir.incarnations",
        )
        .await
        .unwrap();
    let b = engine(&pg, store.path(), 2).await;
    let distinct: i64 = client
        .query_one(
            "SELECT count(DISTINCT incarnation) FROM weir.partitions WHERE topic = 'old'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, 2);
    for log in open_all(&b, &tps) {
        assert_eq!(
            log.append(batch(1, 0, "after"), 0)
                .await
                .unwrap()
                .base_offset,
            2
        );
        let got: Vec<String> = read_all(&log, 0)
            .await
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, ["before-0", "before-1", "after-0"]);
    }
    // A partition created now gets a number no existing row has.
    b.remove(&tps[0]).unwrap();
    let again = b.open(&tps[0], LogConfig::default()).unwrap();
    assert_eq!(again.current_offsets().await.unwrap().log_end, 0);
    let incarnations: Vec<i64> = client
        .query(
            "SELECT incarnation FROM weir.partitions WHERE topic = 'old'",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(incarnations.len(), 2);
    assert_ne!(incarnations[0], incarnations[1]);
}

/// The cluster lock excludes another broker until its holder drops it,
/// or until the holder's session ends without it (a broker killed while
/// holding it); other names do not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_lock_excludes_other_brokers_until_its_holder_lets_go_or_dies() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let (a, b) = (
        engine(&pg, store.path(), 1).await,
        engine(&pg, store.path(), 2).await,
    );
    let (ca, cb) = (a.shared().unwrap(), b.shared().unwrap());
    let client = connect(&pg).await;
    let lock_wait = "pg_advisory_lock(6172";

    let held = ca.lock("weir.test").unwrap().await.unwrap();
    let waiting = tokio::spawn(cb.lock("weir.test").unwrap());
    wait_for_lock_wait(&client, lock_wait).await;
    // Another name is free meanwhile, and the waiter still waits.
    drop(cb.lock("weir.other").unwrap().await.unwrap());
    assert!(!waiting.is_finished());
    drop(held);
    let held = waiting.await.unwrap().unwrap();

    // The holder's session ends while it still holds the lock.
    let waiting = tokio::spawn(ca.lock("weir.test").unwrap());
    wait_for_lock_wait(&client, lock_wait).await;
    assert!(!waiting.is_finished());
    let ended: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND classid = 6172 AND objsubid = 2 AND granted) t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    let again = waiting.await.unwrap().unwrap();
    drop((held, again));
}

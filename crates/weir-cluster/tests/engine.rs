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
use weir_storage::{
    Clock, LogConfig, LogEngine, LogError, PartitionLog, ReadLimit, TopicPartition,
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
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            pg.dir.path().display()
        );
        let st = pg
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(pg.dir.path().join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        Some(pg)
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
    let mut c = ClusterConfig::new(pg.url(), format!("file://{}", store.display()), node);
    c.flush_ms = 10;
    Arc::new(
        ClusterEngine::connect(c, Clock::system())
            .await
            .expect("connect"),
    )
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
    a.shutdown().unwrap();
    b.shutdown().unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_batches_are_refused_until_supported() {
    let Some(pg) = Pg::start() else { return };
    let store = tempfile::tempdir().unwrap();
    let a = engine(&pg, store.path(), 1).await;
    let log = a
        .open(&TopicPartition::new("i", 0), LogConfig::default())
        .unwrap();
    let mut r = record(0, 0, "v");
    r.producer_id = 7;
    r.producer_epoch = 0;
    r.sequence = 0;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[r],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    let err = log.append(buf.freeze(), 0).await.unwrap_err();
    assert!(matches!(err, LogError::InvalidRecord { .. }), "{err:?}");
    assert_eq!(log.offsets().log_end, 0);
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

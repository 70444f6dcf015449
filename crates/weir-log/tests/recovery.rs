//! Recovery: torn tails, corruption of logs and indexes, leftovers.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use weir_log::{LogConfig, LogEngine, ReadLimit, TopicPartition};

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// Writes `n` batches of 3 records, makes them durable, drops the engine
/// without shutdown (a crash as far as the next open is concerned) or
/// with one. Returns the partition directory.
fn populate(dir: &Path, tp: &TopicPartition, n: usize, clean: bool) -> PathBuf {
    let engine = open(dir);
    let log = engine.open_partition(tp, cfg()).unwrap();
    for i in 0..n {
        log.append(batch(3, 1000 + i as i64, &format!("p{i}")), 0)
            .unwrap();
    }
    engine.partition(tp).unwrap().flush_now().unwrap();
    let pdir = engine.partition(tp).unwrap().dir().to_path_buf();
    if clean {
        engine.shutdown().unwrap();
    }
    pdir
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

/// Reads everything and checks offsets are contiguous from log start.
fn check_all(log: &weir_log::local::LocalPartition) -> i64 {
    let o = log.offsets();
    let mut off = o.log_start;
    while off < o.log_end {
        let r = log.read(off, 1 << 16, ReadLimit::LogEnd).unwrap();
        assert!(
            !r.records.is_empty(),
            "no data at {off} below log end {}",
            o.log_end
        );
        for (base, last, raw) in split_batches(&r.records) {
            assert_eq!(base, off);
            let h = weir_log::batch::BatchHeader::parse(&raw).unwrap();
            assert_eq!(weir_log::batch::compute_crc(&raw), h.crc);
            off = last + 1;
        }
    }
    assert_eq!(off, o.log_end);
    off
}

#[test]
fn torn_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("torn", 0);
    let pdir = populate(dir.path(), &tp, 10, false);
    let last_log = files(&pdir, ".log").pop().unwrap();
    let good_len = fs::metadata(&last_log).unwrap().len();
    // Half a batch at the end, as a crash mid-write leaves it.
    let half = batch(3, 0, "torn");
    OpenOptions::new()
        .append(true)
        .open(&last_log)
        .unwrap()
        .write_all(&half[..half.len() / 2])
        .unwrap();
    let engine = open(dir.path());
    let log = engine.open_partition(&tp, cfg()).unwrap();
    assert_eq!(log.offsets().log_end, 30);
    assert_eq!(fs::metadata(&last_log).unwrap().len(), good_len);
    assert_eq!(check_all(log.as_ref()), 30);
    assert_eq!(log.append(batch(1, 0, "next"), 0).unwrap().base_offset, 30);
}

#[test]
fn corrupt_batch_cuts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("flip", 0);
    let pdir = populate(dir.path(), &tp, 40, false);
    // No recovery point: recovery scans from the first segment.
    fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).ok();
    let logs = files(&pdir, ".log");
    assert!(logs.len() >= 3);
    let victim = &logs[1];
    let mut data = fs::read(victim).unwrap();
    let pos = data.len() / 2;
    data[pos] ^= 0x40;
    fs::write(victim, &data).unwrap();
    let engine = open(dir.path());
    let log = engine.open_partition(&tp, cfg()).unwrap();
    let end = check_all(log.as_ref());
    let first_seg_end: i64 = {
        let name = logs[1].file_stem().unwrap().to_string_lossy().to_string();
        name.parse().unwrap()
    };
    assert!(end >= first_seg_end && end < 120, "end {end}");
    assert_eq!(files(&pdir, ".log").len(), 2, "later segments removed");
}

#[test]
fn indexes_are_rebuilt_when_missing_or_damaged() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("idx", 0);
        let pdir = populate(dir.path(), &tp, 40, clean);
        let idx = files(&pdir, ".index");
        let tidx = files(&pdir, ".timeindex");
        assert!(idx.len() >= 2);
        fs::remove_file(&idx[0]).unwrap();
        fs::write(&idx[1], b"0123456789abc").unwrap(); // wrong size
        if idx.len() > 2 {
            fs::write(&idx[2], [0xffu8; 16]).unwrap(); // garbage entries
        }
        fs::write(&tidx[0], [7u8; 12]).unwrap();
        if let Some(last) = idx.last() {
            let _ = fs::write(last, [0u8; 8]); // active index, inconsistent
        }
        let engine = open(dir.path());
        let log = engine.open_partition(&tp, cfg()).unwrap();
        assert_eq!(log.offsets().log_end, 120);
        assert_eq!(check_all(log.as_ref()), 120);
        for off in [0, 1, 31, 59, 60, 119] {
            let r = log.read(off, 1, ReadLimit::LogEnd).unwrap();
            let b = split_batches(&r.records);
            assert!(b[0].0 <= off && off <= b[0].1);
        }
        // Batch i holds timestamps 1000+i ..= 1002+i: 1020 is first at
        // offset 3*18+2.
        let t = log.offset_for_timestamp(1020).unwrap().unwrap();
        assert_eq!((t.offset, t.timestamp), (56, 1020));
        let m = log.max_timestamp().unwrap().unwrap();
        assert_eq!((m.offset, m.timestamp), (119, 1041));
    }
}

#[test]
fn truncated_index_and_log_files() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("trunc", 0);
    let pdir = populate(dir.path(), &tp, 40, true);
    for f in files(&pdir, ".index") {
        let len = fs::metadata(&f).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    }
    let last = files(&pdir, ".log").pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let engine = open(dir.path());
    let log = engine.open_partition(&tp, cfg()).unwrap();
    let end = check_all(log.as_ref());
    assert_eq!(
        end, 117,
        "the damaged last batch is cut even after a clean shutdown"
    );
}

#[test]
fn empty_dirs_zero_length_segments_and_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    // Empty partition directory.
    fs::create_dir_all(dir.path().join("empty-0")).unwrap();
    // Leftovers of a removed partition.
    fs::create_dir_all(dir.path().join("gone-0.abc-delete")).unwrap();
    fs::write(
        dir.path()
            .join("gone-0.abc-delete/00000000000000000000.log"),
        b"x",
    )
    .unwrap();
    let tp = TopicPartition::new("left", 0);
    let pdir = populate(dir.path(), &tp, 20, false);
    // A zero-length segment after the last one, a log without index, and
    // interrupted compaction/delete leftovers.
    let next: i64 = 60;
    fs::write(pdir.join(format!("{next:020}.log")), b"").unwrap();
    for f in files(&pdir, ".index") {
        fs::remove_file(f).unwrap();
    }
    fs::write(pdir.join("00000000000000000000.log.cleaned"), b"junk").unwrap();
    fs::write(pdir.join("00000000000000000000.index.swap"), b"junk").unwrap();
    fs::write(pdir.join("00000000000000000003.log.deleted"), b"junk").unwrap();
    fs::write(pdir.join("leader-epoch-checkpoint.tmp"), b"junk").unwrap();
    let engine = open(dir.path());
    assert!(!dir.path().join("gone-0.abc-delete").exists());
    let e = engine
        .open_partition(&TopicPartition::new("empty", 0), cfg())
        .unwrap();
    assert_eq!(e.offsets().log_end, 0);
    assert_eq!(e.append(batch(1, 0, "e"), 0).unwrap().base_offset, 0);
    let log = engine.open_partition(&tp, cfg()).unwrap();
    assert_eq!(log.offsets().log_end, 60);
    assert_eq!(check_all(log.as_ref()), 60);
    let names: Vec<String> = fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".cleaned")
            && !n.ends_with(".swap")
            && !n.ends_with(".deleted")
            && !n.ends_with(".tmp")),
        "{names:?}"
    );
    assert_eq!(log.append(batch(1, 0, "z"), 0).unwrap().base_offset, 60);
}

#[test]
fn interrupted_compaction_swap_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("swap", 0);
    let pdir = populate(dir.path(), &tp, 40, true);
    let logs = files(&pdir, ".log");
    assert!(logs.len() >= 3);
    // Pretend a cleaner rewrote segments 0 and 1 into one swap file that
    // keeps only the first segment's data, then crashed before the swap.
    let seg0 = fs::read(&logs[0]).unwrap();
    fs::write(pdir.join("00000000000000000000.log.swap"), &seg0).unwrap();
    let engine = open(dir.path());
    let log = engine.open_partition(&tp, cfg()).unwrap();
    assert!(!pdir.join("00000000000000000000.log.swap").exists());
    // Data of segment 0 is there; the log end is unchanged.
    assert_eq!(log.offsets().log_end, 120);
    let r = log.read(0, 1, ReadLimit::LogEnd).unwrap();
    assert_eq!(split_batches(&r.records)[0].0, 0);
}

/// Power loss can cut unsynced data at any byte, or leave zeros where the
/// filesystem extended the file without writing data. Try them all on the
/// last batch.
#[test]
fn torn_write_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("every", 0);
    let pdir = populate(dir.path(), &tp, 3, false);
    let last_log = files(&pdir, ".log").pop().unwrap();
    let durable = fs::read(&last_log).unwrap();
    let mut extra = batch(2, 5, "unsynced").to_vec();
    extra[..8].copy_from_slice(&9i64.to_be_bytes());
    for cut in 0..=extra.len() {
        for zeros in [false, true] {
            let mut data = durable.clone();
            if zeros {
                data.extend(std::iter::repeat_n(0u8, cut));
            } else {
                data.extend_from_slice(&extra[..cut]);
            }
            fs::write(&last_log, &data).unwrap();
            fs::remove_file(dir.path().join(".clean-shutdown")).ok();
            let engine = open(dir.path());
            let log = engine.open_partition(&tp, cfg()).unwrap();
            let end = log.offsets().log_end;
            if cut == extra.len() && !zeros {
                assert_eq!(end, 11);
            } else {
                assert_eq!(end, 9, "cut {cut} zeros {zeros}");
            }
            assert_eq!(check_all(log.as_ref()), end);
        }
    }
}

#[test]
fn a_data_directory_in_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("v", 0);
    populate(dir.path(), &tp, 2, true);
    let version = dir.path().join(weir_log::local::FORMAT_VERSION_FILE);
    assert_eq!(fs::read_to_string(&version).unwrap().trim(), "1");
    // A directory written before the version file existed is format 1.
    fs::remove_file(&version).unwrap();
    drop(open(dir.path()));
    assert_eq!(fs::read_to_string(&version).unwrap().trim(), "1");
    fs::write(&version, "2\n").unwrap();
    let err = weir_log::LocalEngine::open(weir_log::EngineConfig {
        data_dir: dir.path().to_path_buf(),
        ..weir_log::EngineConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(&err, weir_log::LogError::UnsupportedFormat { found, supported: 1, .. } if found == "2"),
        "{err}"
    );
    assert!(err.to_string().contains("format version 2"), "{err}");
    // Refusing touched nothing: the partition is still there for the
    // build that wrote it.
    assert!(dir.path().join(tp.to_string()).is_dir());
}

//! Kafka-format checkpoint files.
//!
//! ```text
//! 0                      <- version
//! 2                      <- number of entries
//! orders 0 1234          <- one entry per line, space separated
//! orders 1 99
//! ```
//!
//! Offset checkpoints (`recovery-point-offset-checkpoint` in the data
//! directory) hold `topic partition offset` lines; the leader epoch
//! checkpoint (`leader-epoch-checkpoint` in a partition directory) holds
//! `epoch startOffset` lines. Files are replaced atomically (write to
//! `*.tmp`, fsync, rename, fsync the directory).

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::segment::{read_optional, replace_file, write_atomic};
use crate::api::TopicPartition;

/// Parses the body of a checkpoint file into its entry lines, or `None`
/// when the header is malformed.
fn entries(text: &str) -> Option<Vec<Vec<&str>>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let n: usize = lines.next()?.trim().parse().ok()?;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        out.push(lines.next()?.split_whitespace().collect());
    }
    Some(out)
}

fn render(lines: &[String]) -> String {
    let mut s = format!("0\n{}\n", lines.len());
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Reads `topic partition offset` entries; a missing or malformed file
/// reads as empty (the caller then recovers from scratch).
pub(crate) fn read_offsets(path: &Path) -> io::Result<HashMap<TopicPartition, i64>> {
    let mut map = HashMap::new();
    let Some(bytes) = read_optional(path)? else {
        return Ok(map);
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(lines) = entries(&text) else {
        tracing::warn!(path = %path.display(), "ignoring malformed checkpoint file");
        return Ok(map);
    };
    for l in lines {
        if let [topic, part, off] = l.as_slice() {
            if let (Ok(p), Ok(o)) = (part.parse::<i32>(), off.parse::<i64>()) {
                map.insert(TopicPartition::new(*topic, p), o);
            }
        }
    }
    Ok(map)
}

/// Atomically writes `topic partition offset` entries.
pub(crate) fn write_offsets(path: &Path, map: &HashMap<TopicPartition, i64>) -> io::Result<()> {
    let mut items: Vec<_> = map.iter().collect();
    items.sort();
    let lines: Vec<String> = items
        .iter()
        .map(|(tp, o)| format!("{} {} {o}", tp.topic, tp.partition))
        .collect();
    write_atomic(path, render(&lines).as_bytes())
}

/// Reads `epoch startOffset` entries.
pub(crate) fn read_epochs(path: &Path) -> io::Result<Vec<(i32, i64)>> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(lines) = entries(&text) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(i32, i64)> = Vec::new();
    for l in lines {
        if let [e, o] = l.as_slice() {
            if let (Ok(e), Ok(o)) = (e.parse::<i32>(), o.parse::<i64>()) {
                if out.last().is_none_or(|&(pe, po)| e > pe && o >= po) {
                    out.push((e, o));
                }
            }
        }
    }
    Ok(out)
}

/// Atomically writes `epoch startOffset` entries.
/// The directory is not fsynced: the caller does it.
pub(crate) fn write_epochs(path: &Path, epochs: &[(i32, i64)]) -> io::Result<()> {
    let lines: Vec<String> = epochs.iter().map(|(e, o)| format!("{e} {o}")).collect();
    replace_file(path, render(&lines).as_bytes())
}

/// Reads a single-offset file (`log-start-offset`, `cleaner-offset-checkpoint`).
pub(crate) fn read_single(path: &Path) -> io::Result<Option<i64>> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(entries(&text).and_then(|l| {
        l.first()
            .and_then(|v| v.first().and_then(|s| s.parse().ok()))
    }))
}

/// Atomically writes a single-offset file.
pub(crate) fn write_single(path: &Path, offset: i64) -> io::Result<()> {
    write_atomic(path, render(&[offset.to_string()]).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("recovery-point-offset-checkpoint");
        let mut m = HashMap::new();
        m.insert(TopicPartition::new("a-b.c", 3), 42);
        m.insert(TopicPartition::new("x", 0), 7);
        write_offsets(&p, &m).unwrap();
        assert_eq!(read_offsets(&p).unwrap(), m);
        let e = dir.path().join("leader-epoch-checkpoint");
        write_epochs(&e, &[(0, 0), (3, 10)]).unwrap();
        assert_eq!(read_epochs(&e).unwrap(), vec![(0, 0), (3, 10)]);
        let s = dir.path().join("log-start-offset");
        write_single(&s, 99).unwrap();
        assert_eq!(read_single(&s).unwrap(), Some(99));
        std::fs::write(&p, "garbage").unwrap();
        assert!(read_offsets(&p).unwrap().is_empty());
    }
}

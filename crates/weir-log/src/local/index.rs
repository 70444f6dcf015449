//! Sparse offset and time indexes of a segment (Kafka's `.index` and
//! `.timeindex` files).
//!
//! Offset index entry (8 bytes, big-endian): relative offset `u32` (the last
//! offset of a batch minus the segment's base offset), file position `u32`
//! of that batch. Time index entry (12 bytes): timestamp `i64` (the largest
//! timestamp seen so far in the segment), relative offset `u32` (last offset
//! of the batch that first reached it).
//!
//! Indexes are hints: a lookup gives a position from which to scan batch
//! headers. They are kept in memory while a segment is in use and checked
//! when loaded; a file that fails the checks is rebuilt from the log.

/// Size of one offset index entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Size of one time index entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp in the segment up to `relative_offset`.
    pub timestamp: i64,
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
}

/// Why an index file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexError(pub String);

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A segment's offset index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and checks an index file: whole entries, relative offsets and
    /// positions strictly increasing, positions inside a log of `log_size`
    /// bytes.
    pub fn parse(bytes: &[u8], log_size: u64) -> Result<Self, IndexError> {
        if bytes.len() % OFFSET_ENTRY_SIZE != 0 {
            return Err(IndexError(format!(
                "offset index size {} is not a multiple of {OFFSET_ENTRY_SIZE}",
                bytes.len()
            )));
        }
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_SIZE);
        let mut prev: Option<OffsetEntry> = None;
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_SIZE) {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if u64::from(e.position) >= log_size {
                return Err(IndexError(format!(
                    "offset index entry position {} beyond log size {log_size}",
                    e.position
                )));
            }
            if let Some(p) = prev {
                if e.relative_offset <= p.relative_offset || e.position <= p.position {
                    return Err(IndexError("offset index entries are not increasing".into()));
                }
            }
            prev = Some(e);
            entries.push(e);
        }
        Ok(Self { entries })
    }

    /// Serializes the index in file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_SIZE);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// The entry with the largest relative offset `<= relative_offset`.
    pub fn lookup(&self, relative_offset: u64) -> Option<OffsetEntry> {
        let n = self
            .entries
            .partition_point(|e| u64::from(e.relative_offset) <= relative_offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// Appends an entry if it keeps the index increasing; returns whether it did.
    pub fn push(&mut self, entry: OffsetEntry) -> bool {
        if let Some(last) = self.entries.last() {
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                return false;
            }
        }
        self.entries.push(entry);
        true
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry.
    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// All entries.
    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<OffsetEntry>()
    }
}

/// A segment's time index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and checks a time index file: whole entries, timestamps and
    /// relative offsets non-decreasing, offsets `<= max_relative` when given.
    pub fn parse(bytes: &[u8], max_relative: Option<u64>) -> Result<Self, IndexError> {
        if bytes.len() % TIME_ENTRY_SIZE != 0 {
            return Err(IndexError(format!(
                "time index size {} is not a multiple of {TIME_ENTRY_SIZE}",
                bytes.len()
            )));
        }
        let mut entries = Vec::with_capacity(bytes.len() / TIME_ENTRY_SIZE);
        let mut prev: Option<TimeEntry> = None;
        for c in bytes.chunks_exact(TIME_ENTRY_SIZE) {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if let Some(max) = max_relative {
                if u64::from(e.relative_offset) > max {
                    return Err(IndexError("time index offset beyond the segment".into()));
                }
            }
            if let Some(p) = prev {
                if e.timestamp < p.timestamp || e.relative_offset < p.relative_offset {
                    return Err(IndexError("time index entries are not increasing".into()));
                }
            }
            prev = Some(e);
            entries.push(e);
        }
        Ok(Self { entries })
    }

    /// Serializes the index in file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_SIZE);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// The entry with the largest timestamp `<= timestamp`.
    pub fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        let n = self.entries.partition_point(|e| e.timestamp <= timestamp);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// Appends an entry when its timestamp is larger than the last one's
    /// (Kafka's `maybeAppend`); returns whether it did.
    pub fn maybe_push(&mut self, entry: TimeEntry) -> bool {
        if let Some(last) = self.entries.last() {
            if entry.timestamp <= last.timestamp || entry.relative_offset < last.relative_offset {
                return false;
            }
        }
        self.entries.push(entry);
        true
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry.
    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// All entries.
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<TimeEntry>()
    }
}

/// Parses arbitrary bytes as both index kinds and runs lookups; the entry
/// point of the `index_reader` fuzz target. Never panics.
pub fn fuzz_index_bytes(bytes: &[u8]) {
    let log_size = bytes.len() as u64 * 4096;
    if let Ok(idx) = OffsetIndex::parse(bytes, log_size) {
        let round = OffsetIndex::parse(&idx.to_bytes(), log_size);
        debug_assert_eq!(round.as_ref().ok(), Some(&idx));
        for e in idx.entries().iter().take(64) {
            let hit = idx.lookup(u64::from(e.relative_offset));
            debug_assert_eq!(hit, Some(*e));
        }
        let _ = idx.lookup(0);
        let _ = idx.lookup(u64::MAX);
    }
    if let Ok(idx) = TimeIndex::parse(bytes, None) {
        for e in idx.entries().iter().take(64) {
            let hit = idx.lookup(e.timestamp);
            debug_assert!(hit.is_some_and(|h| h.timestamp == e.timestamp));
        }
        let _ = idx.lookup(i64::MIN);
        let _ = idx.lookup(i64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_roundtrip_and_lookup() {
        let mut idx = OffsetIndex::new();
        assert!(idx.push(OffsetEntry {
            relative_offset: 10,
            position: 4100
        }));
        assert!(idx.push(OffsetEntry {
            relative_offset: 20,
            position: 8300
        }));
        assert!(!idx.push(OffsetEntry {
            relative_offset: 20,
            position: 9000
        }));
        let parsed = OffsetIndex::parse(&idx.to_bytes(), 10_000).unwrap();
        assert_eq!(parsed, idx);
        assert_eq!(idx.lookup(5), None);
        assert_eq!(idx.lookup(10).unwrap().position, 4100);
        assert_eq!(idx.lookup(19).unwrap().position, 4100);
        assert_eq!(idx.lookup(1000).unwrap().position, 8300);
        assert!(OffsetIndex::parse(&idx.to_bytes(), 8000).is_err());
        assert!(OffsetIndex::parse(&[0; 7], 10).is_err());
        assert!(OffsetIndex::parse(&[0; 16], 10).is_err());
    }

    #[test]
    fn time_index_roundtrip_and_lookup() {
        let mut idx = TimeIndex::new();
        assert!(idx.maybe_push(TimeEntry {
            timestamp: 100,
            relative_offset: 3
        }));
        assert!(!idx.maybe_push(TimeEntry {
            timestamp: 100,
            relative_offset: 5
        }));
        assert!(idx.maybe_push(TimeEntry {
            timestamp: 200,
            relative_offset: 9
        }));
        let parsed = TimeIndex::parse(&idx.to_bytes(), Some(9)).unwrap();
        assert_eq!(parsed, idx);
        assert!(TimeIndex::parse(&idx.to_bytes(), Some(8)).is_err());
        assert_eq!(idx.lookup(99), None);
        assert_eq!(idx.lookup(150).unwrap().relative_offset, 3);
        assert_eq!(idx.lookup(200).unwrap().relative_offset, 9);
    }
}

//! The one place that maps segment files into memory.
//!
//! Reads return `Bytes` that borrow straight from these mappings, so a fetch
//! served from the page cache copies nothing.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::Arc;

use memmap2::{Advice, Mmap, MmapOptions};

/// A read-only shared mapping of (a prefix of, or more than) a segment file.
///
/// The active segment is mapped past its current end so that it need not be
/// remapped after every append; only the prefix that has been written (the
/// segment's committed size, which callers pass in) may be touched.
pub(crate) struct SegmentMap {
    map: Mmap,
}

impl std::fmt::Debug for SegmentMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentMap")
            .field("len", &self.map.len())
            .finish()
    }
}

impl SegmentMap {
    /// Maps `len` bytes of `file` read-only. `len` may exceed the file's size.
    pub(crate) fn new(file: &File, len: usize, sequential: bool) -> io::Result<Self> {
        // SAFETY: memmap2 is unsafe because another process or thread could
        // truncate or modify the file while it is mapped, invalidating the
        // slice (SIGBUS) or changing bytes under a shared reference. Weir
        // never truncates or rewrites a segment file in place while it is
        // mapped: segments are append-only; retention, compaction and
        // partition removal replace files by rename/unlink, which keeps the
        // mapped inode alive; the only truncations happen during recovery
        // before any reader exists, or beyond the committed size (after a
        // failed write), a region readers never access. Bytes beyond the
        // file's end are never accessed: every access goes through
        // `prefix(committed)` where `committed` never exceeds what has been
        // written. The data directory is owned by this process.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        if sequential {
            // Only a hint; failure is harmless.
            let _ = map.advise(Advice::Sequential);
        }
        Ok(Self { map })
    }

    /// The mapped length (possibly past the file's end).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The first `committed` bytes, which the caller guarantees are written.
    pub(crate) fn prefix(&self, committed: usize) -> &[u8] {
        &self.map[..committed.min(self.map.len())]
    }
}

/// A `Bytes` owner for a written range of a mapping.
pub(crate) struct MapSlice {
    pub(crate) map: Arc<SegmentMap>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        let end = self.end.min(self.map.len());
        let start = self.start.min(end);
        &self.map.map[start..end]
    }
}

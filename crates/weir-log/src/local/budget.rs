//! The engine-wide budget of open segment resources.
//!
//! Every segment that holds an open file descriptor, a mapping or a loaded
//! index of an inactive segment is an entry in one LRU. When the LRU grows
//! past `max_open_files`, the least recently used segments give their
//! resources back (writers and mappings are reopened on demand; outstanding
//! `Bytes` keep their mapping alive until dropped).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use super::segment::Segment;

#[derive(Default)]
struct Lru {
    tick: u64,
    by_id: HashMap<u64, (u64, Weak<Segment>)>,
    by_tick: BTreeMap<u64, u64>,
}

/// An LRU of segments holding open resources, bounded by a count.
pub(crate) struct FileBudget {
    max: usize,
    lru: Mutex<Lru>,
}

impl std::fmt::Debug for FileBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBudget")
            .field("max", &self.max)
            .field("open", &self.open_count())
            .finish()
    }
}

impl FileBudget {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(2),
            lru: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of segments currently holding resources.
    pub(crate) fn open_count(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Marks `seg` as just used and evicts the least recently used segments
    /// beyond the budget. Must not be called while holding a segment's
    /// handle lock.
    pub(crate) fn touch(&self, seg: &Arc<Segment>) {
        let victims: Vec<Weak<Segment>> = {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            let id = seg.id();
            if let Some((old, _)) = lru.by_id.insert(id, (tick, Arc::downgrade(seg))) {
                lru.by_tick.remove(&old);
            }
            lru.by_tick.insert(tick, id);
            let mut victims = Vec::new();
            while lru.by_id.len() > self.max {
                let Some((&t, &vid)) = lru.by_tick.iter().next() else {
                    break;
                };
                lru.by_tick.remove(&t);
                if vid == id {
                    // Never evict the segment being touched; requeue it.
                    lru.by_tick.insert(t, vid);
                    break;
                }
                if let Some((_, w)) = lru.by_id.remove(&vid) {
                    victims.push(w);
                }
            }
            victims
        };
        // Release outside the LRU lock: dropping an upgraded Arc may run
        // Segment::drop, which calls `forget`.
        for v in victims {
            if let Some(s) = v.upgrade() {
                s.release_resources();
            }
        }
    }

    /// Removes a segment (it released its resources or is being dropped).
    pub(crate) fn forget(&self, id: u64) {
        let mut lru = self.lock();
        if let Some((t, _)) = lru.by_id.remove(&id) {
            lru.by_tick.remove(&t);
        }
    }
}

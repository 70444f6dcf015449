//! Counters the engine keeps about itself, for the broker's metrics.
//!
//! Plain atomics: the engine fills them on its own threads and whoever
//! exports metrics reads them, so this crate needs no metrics or HTTP
//! dependency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the latency histogram buckets (Prometheus
/// `le` labels). From 100 µs (a request answered from memory, an fsync on
/// fast NVMe) to 10 s (a stalled disk).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram of atomic counters: recording is a few relaxed
/// atomic adds, never a lock.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A consistent-enough copy of a histogram, cumulative like Prometheus'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)` per bucket, `+Inf` last (as `f64::INFINITY`).
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of observations in seconds.
    pub sum_seconds: f64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Reads the histogram, with cumulative buckets.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((le, acc));
        }
        HistogramSnapshot {
            // The count is the +Inf bucket, so the two always agree.
            count: acc,
            buckets,
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

/// What the engine measures about itself.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Time of each `fdatasync` of a segment file by the flushers (group
    /// commit), `flush.ms`/`flush.messages` flushes and shutdown.
    pub fsync: LatencyHistogram,
    /// From a partition's first request for a sync (an acks=all wait,
    /// `flush.messages`, `flush.ms`) to a flusher starting the sync that
    /// serves it: the queue in front of the disk.
    pub flush_queue_wait: LatencyHistogram,
    /// From an acks=all wait starting (the data was not yet durable) to
    /// its future seeing the data durable: queue, sync and the wake-up of
    /// the waiting task.
    pub durable_wait: LatencyHistogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_matches() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.0001, 1));
        let at_5ms = s.buckets.iter().find(|b| b.0 == 0.005).map(|b| b.1);
        assert_eq!(at_5ms, Some(2));
        assert_eq!(s.buckets.last().map(|b| b.1), Some(3));
        assert!((s.sum_seconds - 20.00305).abs() < 1e-9);
    }
}

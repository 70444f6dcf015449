//! The pieces of `weir bench` that do not talk to a broker: the record
//! payload's embedded timestamp, rate pacing and latency histograms.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Bytes at the start of every bench record: the intended send time
/// (nanoseconds since the Unix epoch) and the sequence number, both u64
/// little-endian.
pub const HEADER_LEN: usize = 16;

/// Nanoseconds since the Unix epoch, now.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A payload of `size` bytes: random capital letters (as
/// kafka-producer-perf-test sends, so compression sees realistic, not
/// all-zero, data) behind room for the header.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| b'A' + (xorshift64(&mut x) % 26) as u8)
        .collect()
}

/// xorshift64: cheap, spread, not unpredictable (filler and keys only).
/// `x` must not be zero.
pub fn xorshift64(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Writes the header into `buf` (at least [`HEADER_LEN`] bytes).
pub fn stamp(buf: &mut [u8], intended_ns: u64, seq: u64) {
    buf[..8].copy_from_slice(&intended_ns.to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
}

/// The intended send time in a record written by [`stamp`], if the
/// payload is long enough to hold one.
pub fn intended_ns(payload: &[u8]) -> Option<u64> {
    let b: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// When each record of one producer is due.
///
/// At a fixed rate record `i` is due at `start + offset + i * interval`;
/// latency is measured from that *intended* time, not from the moment the
/// producer got round to sending it, so a stall that delays the records
/// behind it is counted against all of them (the correction for
/// coordinated omission that wrk2 and HdrHistogram describe). Without a
/// rate every record is due at once and is stamped with its actual send
/// time.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    start_unix_ns: u64,
    /// Zero means as fast as possible.
    interval_ns: u64,
    offset_ns: u64,
}

impl Pacer {
    /// A pacer for producer `index` of `producers` sharing `rate` records a
    /// second in total (0 = no limit). Producers are staggered by one
    /// interval of the total rate so that they do not send in lockstep.
    pub fn new(rate: u64, producers: u32, index: u32, start: Instant, start_unix_ns: u64) -> Self {
        let (interval_ns, offset_ns) = if rate == 0 {
            (0, 0)
        } else {
            let total = 1_000_000_000 / rate.max(1);
            (
                total.saturating_mul(u64::from(producers.max(1))),
                total * u64::from(index),
            )
        };
        Pacer {
            start,
            start_unix_ns,
            interval_ns,
            offset_ns,
        }
    }

    /// True when sending is paced.
    pub fn paced(&self) -> bool {
        self.interval_ns > 0
    }

    /// How far after the start record `i` is due (zero when unpaced).
    pub fn due_after_start(&self, i: u64) -> Duration {
        if self.interval_ns == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(
            self.offset_ns
                .saturating_add(i.saturating_mul(self.interval_ns)),
        )
    }

    /// The instant record `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + self.due_after_start(i)
    }

    /// The timestamp to embed in record `i`: its intended send time when
    /// paced, else `now_unix_ns`.
    pub fn intended_unix_ns(&self, i: u64, now_unix_ns: u64) -> u64 {
        if self.paced() {
            self.start_unix_ns
                .saturating_add(u64::try_from(self.due_after_start(i).as_nanos()).unwrap_or(0))
        } else {
            now_unix_ns
        }
    }

    /// How long to wait before sending record `i` at `now`; `None` when it
    /// is due (or overdue: a producer that fell behind catches up at full
    /// speed rather than skipping records).
    pub fn wait(&self, i: u64, now: Instant) -> Option<Duration> {
        let due = self.due(i);
        (due > now).then(|| due - now)
    }
}

/// Latencies in microseconds, 1 µs to 1 hour, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// Percentiles of a [`Latency`], in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        // Constant bounds that new_with_bounds accepts (low >= 1, high >=
        // 2 * low, sigfig <= 5), so this cannot fail.
        Latency(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid constant bounds"))
    }

    /// Records one latency in microseconds; values beyond the range count
    /// as the largest trackable value.
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so add cannot fail; if it ever did,
        // the percentiles would undercount rather than crash.
        let _ = self.0.add(&other.0);
    }

    /// The summary, or `None` if nothing was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Some(Percentiles {
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p99_9_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_short_payloads_have_none() {
        let mut p = payload(64, 7);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        stamp(&mut p, 123_456_789, 42);
        assert_eq!(intended_ns(&p), Some(123_456_789));
        assert_eq!(u64::from_le_bytes(p[8..16].try_into().unwrap()), 42);
        assert_eq!(intended_ns(&p[..7]), None);
    }

    #[test]
    fn unpaced_records_are_due_at_once_and_stamped_now() {
        let start = Instant::now();
        let p = Pacer::new(0, 4, 2, start, 1000);
        assert!(!p.paced());
        assert_eq!(p.wait(1_000_000, start), None);
        assert_eq!(p.intended_unix_ns(5, 99_999), 99_999);
    }

    #[test]
    fn paced_records_are_spread_over_producers() {
        let start = Instant::now();
        // 1000 records/s over 2 producers: each sends every 2 ms, the
        // second 1 ms after the first.
        let a = Pacer::new(1000, 2, 0, start, 5_000_000_000);
        let b = Pacer::new(1000, 2, 1, start, 5_000_000_000);
        assert_eq!(a.due_after_start(0), Duration::ZERO);
        assert_eq!(a.due_after_start(3), Duration::from_millis(6));
        assert_eq!(b.due_after_start(3), Duration::from_millis(7));
        assert_eq!(b.intended_unix_ns(3, 0), 5_007_000_000);
        // Early: wait the rest; late: send now (the latency still counts
        // from the intended time).
        assert_eq!(
            a.wait(3, start + Duration::from_millis(4)),
            Some(Duration::from_millis(2))
        );
        assert_eq!(a.wait(3, start + Duration::from_millis(60)), None);
        assert_eq!(a.intended_unix_ns(3, 9_999_999_999), 5_006_000_000);
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = Latency::new();
        assert_eq!(h.percentiles(), None);
        for us in 1..=1000 {
            h.record_us(us);
        }
        let mut other = Latency::new();
        other.record_us(50_000);
        h.merge(&other);
        let p = h.percentiles().unwrap();
        assert_eq!(p.count, 1001);
        assert!((p.p50_ms - 0.5).abs() < 0.01, "{p:?}");
        assert!((p.p99_ms - 0.99).abs() < 0.01, "{p:?}");
        assert!((p.max_ms - 50.0).abs() < 0.1, "{p:?}");
        // Out of range saturates instead of failing.
        h.record_us(u64::MAX);
        assert!(h.percentiles().unwrap().max_ms >= 3_600_000.0);
    }
}

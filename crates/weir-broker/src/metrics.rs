//! The broker's metrics: plain atomics filled on the request path and read
//! by whoever exports them (the admin HTTP listener renders them in the
//! Prometheus text format).
//!
//! Hot-path cost: a request costs a few relaxed atomic adds on its API's
//! slot (an array indexed by API key, no lookup); per-topic byte and
//! message counters are looked up once per topic of a request under a read
//! lock, and counting messages reads batch headers, never records.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::ResponseKind;
use weir_log::LatencyHistogram;

/// API keys below this get a counter slot (Kafka's keys are all below 100).
const API_SLOTS: usize = 128;

/// Requests and latency of one API.
#[derive(Debug, Default)]
pub struct ApiStats {
    /// Requests answered (or, for acks=0 produce, handled).
    pub requests: AtomicU64,
    /// From the request being decoded to its response being ready.
    pub latency: LatencyHistogram,
}

/// Bytes and messages in and out of one topic.
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Record batch bytes appended by Produce (whole batches as sent).
    pub bytes_in: AtomicU64,
    /// Records appended by Produce (the batches' record counts).
    pub messages_in: AtomicU64,
    /// Record batch bytes returned by Fetch.
    pub bytes_out: AtomicU64,
    /// Records in the batches returned by Fetch.
    pub messages_out: AtomicU64,
}

impl TopicCounters {
    /// Counts an append of `bytes` holding `messages` records.
    pub fn record_in(&self, bytes: usize, messages: u64) {
        self.bytes_in
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Ordering::Relaxed);
        self.messages_in.fetch_add(messages, Ordering::Relaxed);
    }
}

/// A gauge of things in flight; [`Gauge::enter`] counts one until dropped.
#[derive(Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

/// Holds one unit of a [`Gauge`].
#[derive(Debug)]
pub struct GaugeGuard(Arc<AtomicI64>);

impl Gauge {
    /// Counts one until the guard is dropped.
    pub fn enter(&self) -> GaugeGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(self.0.clone())
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything the broker and the server count.
#[derive(Debug)]
pub struct Metrics {
    apis: Vec<ApiStats>,
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    /// Non-zero error codes in responses, by (API key, error code).
    errors: Mutex<BTreeMap<(i16, i16), u64>>,
    /// Produce requests with acks=all waiting for their fsync.
    pub produce_purgatory: Gauge,
    /// Fetch requests parked waiting for `min.bytes` or `max.wait.ms`.
    pub fetch_purgatory: Gauge,
    /// Times a parked fetch woke because a partition it reads grew.
    pub fetch_wakeups: AtomicU64,
    /// Open client connections.
    pub connections: Gauge,
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            apis: (0..API_SLOTS).map(|_| ApiStats::default()).collect(),
            topics: RwLock::default(),
            errors: Mutex::default(),
            produce_purgatory: Gauge::default(),
            fetch_purgatory: Gauge::default(),
            fetch_wakeups: AtomicU64::new(0),
            connections: Gauge::default(),
            connections_accepted: AtomicU64::new(0),
        }
    }
}

/// Records in the whole batches of `records` (from their headers).
pub fn count_records(records: &[u8]) -> u64 {
    weir_log::batch::iter_batches(records)
        .map(|(_, h)| u64::try_from(h.records_count).unwrap_or(0))
        .sum()
}

impl Metrics {
    /// The counters of `topic`, created on first use. Call once per topic
    /// of a request, and only for topics that exist (names from clients
    /// must not grow the label set).
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        if let Ok(map) = self.topics.read() {
            if let Some(c) = map.get(topic) {
                return c.clone();
            }
        }
        let mut map = self.topics.write().unwrap_or_else(|e| e.into_inner());
        map.entry(topic.to_string()).or_default().clone()
    }

    /// Counts what a Fetch response carries, per topic.
    pub fn record_fetch(&self, responses: &[FetchableTopicResponse]) {
        for t in responses {
            let (mut bytes, mut messages) = (0u64, 0u64);
            for p in &t.partitions {
                if let Some(r) = &p.records {
                    bytes += u64::try_from(r.len()).unwrap_or(0);
                    messages += count_records(r);
                }
            }
            if bytes > 0 {
                let c = self.topic(t.topic.as_str());
                c.bytes_out.fetch_add(bytes, Ordering::Relaxed);
                c.messages_out.fetch_add(messages, Ordering::Relaxed);
            }
        }
    }

    /// Drops the counters of a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        if let Ok(mut map) = self.topics.write() {
            map.remove(topic);
        }
    }

    /// Every topic's counters, by name.
    pub fn topics(&self) -> BTreeMap<String, Arc<TopicCounters>> {
        self.topics
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// The stats of API `key`, if it has a slot.
    pub fn api(&self, key: i16) -> Option<&ApiStats> {
        usize::try_from(key).ok().and_then(|i| self.apis.get(i))
    }

    /// `(api key, stats)` of every API that served a request.
    pub fn apis(&self) -> impl Iterator<Item = (i16, &ApiStats)> {
        self.apis
            .iter()
            .enumerate()
            .filter(|(_, s)| s.requests.load(Ordering::Relaxed) > 0)
            .filter_map(|(i, s)| i16::try_from(i).ok().map(|k| (k, s)))
    }

    /// Error counts by (API key, error code).
    pub fn errors(&self) -> BTreeMap<(i16, i16), u64> {
        self.errors.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Records a finished request: count, latency and the error codes of
    /// its response (`None` when no response is sent). Returns the first
    /// non-zero error code, for request logs.
    pub fn record_request(
        &self,
        key: i16,
        elapsed: Duration,
        response: Option<&ResponseKind>,
    ) -> i16 {
        if let Some(s) = self.api(key) {
            s.requests.fetch_add(1, Ordering::Relaxed);
            s.latency.observe(elapsed);
        }
        let mut first = 0;
        if let Some(r) = response {
            let mut codes = Vec::new();
            error_codes(r, &mut codes);
            if let Some(&c) = codes.first() {
                first = c;
                let mut map = self.errors.lock().unwrap_or_else(|e| e.into_inner());
                for c in codes {
                    *map.entry((key, c)).or_default() += 1;
                }
            }
        }
        first
    }

    /// Counts a request that could not be decoded (its connection closes).
    pub fn record_bad_request(&self, key: i16) {
        let mut map = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        // INVALID_REQUEST, as Kafka counts requests it cannot parse.
        *map.entry((key, 42)).or_default() += 1;
    }
}

/// Pushes the non-zero error codes of a response (top level and per
/// partition, as Kafka's `errorCounts`) for the APIs clients use most.
fn error_codes(r: &ResponseKind, out: &mut Vec<i16>) {
    let mut push = |c: i16| {
        if c != 0 {
            out.push(c);
        }
    };
    match r {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| push(p.error_code)),
        ResponseKind::Fetch(r) => {
            push(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| push(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| push(p.error_code)),
        ResponseKind::Metadata(r) => r.topics.iter().for_each(|t| push(t.error_code)),
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| push(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            push(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| push(p.error_code));
            for g in &r.groups {
                push(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| push(p.error_code));
            }
        }
        ResponseKind::FindCoordinator(r) => {
            push(r.error_code);
            r.coordinators.iter().for_each(|c| push(c.error_code));
        }
        ResponseKind::JoinGroup(r) => push(r.error_code),
        ResponseKind::SyncGroup(r) => push(r.error_code),
        ResponseKind::Heartbeat(r) => push(r.error_code),
        ResponseKind::LeaveGroup(r) => push(r.error_code),
        ResponseKind::ListGroups(r) => push(r.error_code),
        ResponseKind::ApiVersions(r) => push(r.error_code),
        ResponseKind::ConsumerGroupHeartbeat(r) => push(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| push(g.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| push(g.error_code)),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| push(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| push(t.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| push(t.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|t| push(t.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|t| push(t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|t| push(t.error_code))
        }
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| push(p.error_code)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::ProduceResponse;

    #[test]
    fn errors_are_counted_per_partition() {
        let m = Metrics::default();
        let resp = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(vec![
                PartitionProduceResponse::default().with_error_code(3),
                PartitionProduceResponse::default(),
                PartitionProduceResponse::default().with_error_code(3),
            ]),
        ]));
        assert_eq!(
            m.record_request(0, Duration::from_millis(1), Some(&resp)),
            3
        );
        assert_eq!(m.errors().get(&(0, 3)), Some(&2));
        assert_eq!(
            m.api(0).map(|a| a.requests.load(Ordering::Relaxed)),
            Some(1)
        );
        assert_eq!(m.apis().count(), 1);
    }

    /// Hot-path cost, run with
    /// `cargo test --release -p weir-broker --lib metrics -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, not a check"]
    fn hot_path_cost() {
        use std::time::Instant;
        let m = Metrics::default();
        let resp = ResponseKind::Produce(
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_partition_responses(vec![PartitionProduceResponse::default()])]),
        );
        let n = 2_000_000u32;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(m.record_request(0, Duration::from_micros(250), Some(&resp)));
        }
        let per_request = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            m.topic(std::hint::black_box("orders"))
                .record_in(16_384, 100);
        }
        let per_topic = t.elapsed() / n;
        // A 16 KiB batch header claiming 100 records (CRCs are not checked).
        let mut batch = vec![0u8; 16_384];
        batch[8..12].copy_from_slice(&(16_384i32 - 12).to_be_bytes());
        batch[16] = 2;
        batch[23..27].copy_from_slice(&99i32.to_be_bytes());
        batch[57..61].copy_from_slice(&100i32.to_be_bytes());
        assert_eq!(count_records(&batch), 100);
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(count_records(std::hint::black_box(&batch)));
        }
        let per_batch = t.elapsed() / n;
        eprintln!(
            "record_request {per_request:?}, topic lookup + record_in {per_topic:?}, count_records (1 batch) {per_batch:?}"
        );
    }

    #[test]
    fn gauge_counts_until_dropped() {
        let g = Gauge::default();
        let a = g.enter();
        let b = g.enter();
        assert_eq!(g.get(), 2);
        drop(a);
        assert_eq!(g.get(), 1);
        drop(b);
        assert_eq!(g.get(), 0);
    }
}

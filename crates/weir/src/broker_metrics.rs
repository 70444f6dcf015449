//! The broker's contribution to `/metrics`: per-topic traffic, per-API
//! requests, errors and latency, purgatories, connections, log sizes and
//! end offsets, fsync latency and consumer group lag, read from the
//! broker's counters at scrape time.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use kafka_protocol::messages::ApiKey;
use weir_broker::Broker;
use weir_client::error_name;
use weir_http::metrics::{escape_label, head, histogram};
use weir_log::HistogramSnapshot;

fn snapshot(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    histogram(out, name, labels, &h.buckets, h.sum_seconds, h.count);
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|()| format!("Unknown{key}"))
}

/// Reads one counter of a topic.
type CounterOf = fn(&weir_broker::metrics::TopicCounters) -> u64;

/// Appends the broker's metric families to a scrape.
pub fn render(out: &mut String, b: &Broker) {
    let m = b.metrics();

    let topics = m.topics();
    let per_topic: [(&str, &str, CounterOf); 4] = [
        (
            "weir_topic_bytes_in_total",
            "Record batch bytes appended by Produce, per topic (whole batches as sent, batch headers included).",
            |c| c.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "weir_topic_messages_in_total",
            "Records appended by Produce, per topic.",
            |c| c.messages_in.load(Ordering::Relaxed),
        ),
        (
            "weir_topic_bytes_out_total",
            "Record batch bytes returned by Fetch, per topic (consumers and offsets reads alike).",
            |c| c.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "weir_topic_messages_out_total",
            "Records in the batches returned by Fetch, per topic.",
            |c| c.messages_out.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in per_topic {
        head(out, name, "counter", help);
        for (t, c) in &topics {
            let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", escape_label(t), get(c));
        }
    }

    head(
        out,
        "weir_requests_total",
        "counter",
        "Requests handled, per API.",
    );
    let apis: Vec<(i16, &weir_broker::metrics::ApiStats)> = m.apis().collect();
    for (k, s) in &apis {
        let _ = writeln!(
            out,
            "weir_requests_total{{api=\"{}\"}} {}",
            api_name(*k),
            s.requests.load(Ordering::Relaxed)
        );
    }
    head(
        out,
        "weir_request_errors_total",
        "counter",
        "Error codes in responses (top level and per partition), per API and error; requests that cannot be parsed count as INVALID_REQUEST.",
    );
    for ((k, code), n) in m.errors() {
        let _ = writeln!(
            out,
            "weir_request_errors_total{{api=\"{}\",error=\"{}\"}} {n}",
            api_name(k),
            error_name(code)
        );
    }
    head(
        out,
        "weir_request_duration_seconds",
        "histogram",
        "Time from a request being read to its response being ready, per API.",
    );
    for (k, s) in &apis {
        let labels = format!("api=\"{}\"", api_name(*k));
        snapshot(
            out,
            "weir_request_duration_seconds",
            &labels,
            &s.latency.snapshot(),
        );
    }

    head(
        out,
        "weir_produce_purgatory_size",
        "gauge",
        "Produce requests with acks=all waiting for their records to be fsynced.",
    );
    let _ = writeln!(
        out,
        "weir_produce_purgatory_size {}",
        m.produce_purgatory.get()
    );
    head(
        out,
        "weir_fetch_purgatory_size",
        "gauge",
        "Fetch requests waiting for fetch.min.bytes or fetch.max.wait.ms.",
    );
    let _ = writeln!(out, "weir_fetch_purgatory_size {}", m.fetch_purgatory.get());

    head(
        out,
        "weir_active_connections",
        "gauge",
        "Open client connections.",
    );
    let _ = writeln!(out, "weir_active_connections {}", m.connections.get());
    head(
        out,
        "weir_connections_accepted_total",
        "counter",
        "Client connections accepted since start.",
    );
    let _ = writeln!(
        out,
        "weir_connections_accepted_total {}",
        m.connections_accepted.load(Ordering::Relaxed)
    );

    head(
        out,
        "weir_log_size_bytes",
        "gauge",
        "Bytes of a partition's log on disk (all segments).",
    );
    let mut all = b.topics();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &all {
        for p in 0..t.partition_count() {
            let Some(size) = t.partition_size_bytes(p) else {
                continue;
            };
            let _ = writeln!(
                out,
                "weir_log_size_bytes{{topic=\"{}\",partition=\"{p}\"}} {size}",
                escape_label(&t.name),
            );
        }
    }
    head(
        out,
        "weir_log_end_offset",
        "gauge",
        "A partition's high watermark (next offset to be written).",
    );
    for t in &all {
        for p in 0..t.partition_count() {
            let Some(offsets) = t.partition_offsets(p) else {
                continue;
            };
            let _ = writeln!(
                out,
                "weir_log_end_offset{{topic=\"{}\",partition=\"{p}\"}} {}",
                escape_label(&t.name),
                offsets.high_watermark
            );
        }
    }

    if let Some(stats) = b.engine_stats() {
        head(
            out,
            "weir_log_fsync_duration_seconds",
            "histogram",
            "Time of each fdatasync of a segment file by the log engine.",
        );
        snapshot(
            out,
            "weir_log_fsync_duration_seconds",
            "",
            &stats.fsync.snapshot(),
        );
        head(
            out,
            "weir_log_flush_queue_wait_seconds",
            "histogram",
            "From a partition's request for a sync to a flusher starting it.",
        );
        snapshot(
            out,
            "weir_log_flush_queue_wait_seconds",
            "",
            &stats.flush_queue_wait.snapshot(),
        );
        head(
            out,
            "weir_log_durable_wait_seconds",
            "histogram",
            "From an acks=all wait starting to the waiting task seeing its data durable.",
        );
        snapshot(
            out,
            "weir_log_durable_wait_seconds",
            "",
            &stats.durable_wait.snapshot(),
        );
    }

    head(
        out,
        "weir_consumer_group_lag",
        "gauge",
        "High watermark minus committed offset, per group and partition.",
    );
    let mut groups = b.group_ids();
    groups.sort();
    for g in groups {
        for l in b.group_lag(&g) {
            if let Some(lag) = l.lag {
                let _ = writeln!(
                    out,
                    "weir_consumer_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {lag}",
                    escape_label(&g),
                    escape_label(&l.topic),
                    l.partition
                );
            }
        }
    }
}

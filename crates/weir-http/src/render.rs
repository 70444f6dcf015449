//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use weir_broker::Broker;
use weir_log::HistogramSnapshot;

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/self/stat`. It
/// is 100 on every architecture Linux supports today (the kernel exports
/// a fixed value whatever its internal tick rate), so no `sysconf` call.
const USER_HZ: f64 = 100.0;

/// Renders every metric; without a broker (still opening) only the
/// process metrics.
pub fn render_metrics(broker: Option<&Broker>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    if let Some(b) = broker {
        broker_metrics(&mut out, b);
    }
    process_metrics(&mut out);
    out
}

/// Escapes a label value: backslash, double quote and newline.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, n) in &h.buckets {
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            le.to_string()
        };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|()| format!("Unknown{key}"))
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`, Kafka's name.
fn error_name(code: i16) -> String {
    let Some(e) = ResponseError::try_from_code(code) else {
        return format!("UNKNOWN_{code}");
    };
    let camel = format!("{e:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Reads one counter of a topic.
type CounterOf = fn(&weir_broker::metrics::TopicCounters) -> u64;

fn broker_metrics(out: &mut String, b: &Broker) {
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
            let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", esc(t), get(c));
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
        histogram(
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
        for (p, log) in t.partitions.iter().enumerate() {
            let _ = writeln!(
                out,
                "weir_log_size_bytes{{topic=\"{}\",partition=\"{p}\"}} {}",
                esc(&t.name),
                log.size_bytes()
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
        for (p, log) in t.partitions.iter().enumerate() {
            let _ = writeln!(
                out,
                "weir_log_end_offset{{topic=\"{}\",partition=\"{p}\"}} {}",
                esc(&t.name),
                log.offsets().high_watermark
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
        histogram(
            out,
            "weir_log_fsync_duration_seconds",
            "",
            &stats.fsync.snapshot(),
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
                    esc(&g),
                    esc(&l.topic),
                    l.partition
                );
            }
        }
    }
}

fn process_metrics(out: &mut String) {
    // Fields after the parenthesised command name, which may hold spaces.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12
    // and starttime (22) is 19.
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    if let (Some(u), Some(s)) = (num(11), num(12)) {
        head(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {}", (u + s) / USER_HZ);
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(start), Some(boot)) = (num(19), boot) {
        head(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        let _ = writeln!(out, "process_start_time_seconds {}", boot + start / USER_HZ);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
    };
    if let Some(rss) = kb("VmRSS:") {
        head(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * 1024);
    }
    if let Some(vm) = kb("VmSize:") {
        head(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        let _ = writeln!(out, "process_virtual_memory_bytes {}", vm * 1024);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        head(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(42), "INVALID_REQUEST");
    }

    #[test]
    fn process_metrics_are_present_on_linux() {
        let mut s = String::new();
        process_metrics(&mut s);
        if cfg!(target_os = "linux") {
            assert!(s.contains("process_resident_memory_bytes "));
            assert!(s.contains("process_cpu_seconds_total "));
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

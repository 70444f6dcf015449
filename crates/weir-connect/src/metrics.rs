//! Per-connector and per-task metrics, rendered in Prometheus's text
//! format for the admin listener's `/metrics` (names shaped after Kafka
//! Connect's JMX metrics: `source-record-poll-total`,
//! `sink-record-send-total`, `total-record-errors`,
//! `deadletterqueue-produce-requests`, `offset-commit-avg-time-ms`,
//! `total-retries`, `sink-record-lag-max`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default, Clone)]
struct TaskMetrics {
    polled: u64,
    written: u64,
    errors: u64,
    dead_lettered: u64,
    failures: u64,
    commits: u64,
    commit_seconds: f64,
    retries: u64,
    /// A sink task's largest lag of a partition, as of its last commit.
    lag_max: i64,
}

/// A metric's name, type, help and how to read it.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TaskMetrics) -> f64,
);

/// The worker's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    tasks: Mutex<BTreeMap<(String, i32), TaskMetrics>>,
}

impl Metrics {
    fn with(&self, connector: &str, task: i32, f: impl FnOnce(&mut TaskMetrics)) {
        let mut g = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        f(g.entry((connector.to_string(), task)).or_default());
    }

    /// Records a source task polled and sent.
    pub fn source_polled(&self, connector: &str, task: i32, n: u64) {
        self.with(connector, task, |m| m.polled += n);
    }

    /// Records a sink task was given.
    pub fn sink_written(&self, connector: &str, task: i32, n: u64) {
        self.with(connector, task, |m| m.written += n);
    }

    /// A record that failed conversion or delivery.
    pub fn record_error(&self, connector: &str, task: i32) {
        self.with(connector, task, |m| m.errors += 1);
    }

    /// A record sent to the dead-letter queue.
    pub fn dead_lettered(&self, connector: &str, task: i32) {
        self.with(connector, task, |m| m.dead_lettered += 1);
    }

    /// A task that failed.
    pub fn task_failed(&self, connector: &str, task: i32) {
        self.with(connector, task, |m| m.failures += 1);
    }

    /// One offset commit and how long it took.
    pub fn offset_commit(&self, connector: &str, task: i32, took: Duration) {
        self.with(connector, task, |m| {
            m.commits += 1;
            m.commit_seconds += took.as_secs_f64();
        });
    }

    /// One retry of a retriable failure (`errors.retry.timeout`).
    pub fn retried(&self, connector: &str, task: i32) {
        self.with(connector, task, |m| m.retries += 1);
    }

    /// A sink task's largest partition lag (high watermark minus the next
    /// offset it reads).
    pub fn sink_lag(&self, connector: &str, task: i32, lag_max: i64) {
        self.with(connector, task, |m| m.lag_max = lag_max);
    }

    /// Drops a deleted connector's series.
    pub fn forget(&self, connector: &str) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(c, _), _| c != connector);
    }

    /// The Prometheus text of every series.
    pub fn render(&self) -> String {
        let g = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let series: [Series; 9] = [
            (
                "weir_connect_source_records_polled_total",
                "counter",
                "records a source task polled and sent",
                |m| m.polled as f64,
            ),
            (
                "weir_connect_sink_records_written_total",
                "counter",
                "records given to a sink task's put",
                |m| m.written as f64,
            ),
            (
                "weir_connect_record_errors_total",
                "counter",
                "records that failed conversion",
                |m| m.errors as f64,
            ),
            (
                "weir_connect_dead_letter_records_total",
                "counter",
                "records sent to the dead-letter queue",
                |m| m.dead_lettered as f64,
            ),
            (
                "weir_connect_task_failures_total",
                "counter",
                "times a task failed",
                |m| m.failures as f64,
            ),
            (
                "weir_connect_offset_commits_total",
                "counter",
                "offset commits",
                |m| m.commits as f64,
            ),
            (
                "weir_connect_offset_commit_seconds_total",
                "counter",
                "time spent committing offsets (divide by the commits for the average latency)",
                |m| m.commit_seconds,
            ),
            (
                "weir_connect_retries_total",
                "counter",
                "retries of retriable failures (Kafka's total-retries)",
                |m| m.retries as f64,
            ),
            (
                "weir_connect_sink_record_lag_max",
                "gauge",
                "a sink task's largest partition lag in records at its last commit (Kafka's sink-record-lag-max)",
                |m| m.lag_max as f64,
            ),
        ];
        for (name, kind, help, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((c, t), m) in g.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",task=\"{t}\"}} {}",
                    escape(c),
                    get(m)
                );
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

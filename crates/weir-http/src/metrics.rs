//! The metrics every service publishes on the admin listener's
//! `/metrics`, in the Prometheus text exposition format (version 0.0.4).
//!
//! A service registers a renderer (a function appending its metric
//! families to the page) with the node's [`MetricsRegistry`]; each scrape
//! runs every renderer in registration order, then appends the process
//! metrics (CPU, memory, file descriptors from `/proc/self`). Renderers
//! read their state at scrape time, so metrics cost nothing between
//! scrapes. Metric family names must be unique on the page: each service
//! prefixes its own (`weir_connect_...`).

use std::fmt::Write;
use std::sync::{Arc, RwLock};

/// Appends metric families to a scrape.
pub type Renderer = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The renderers of a node's services.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    renderers: Arc<RwLock<Vec<(String, Renderer)>>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.read().iter().map(|(n, _)| n.clone()).collect();
        f.debug_struct("MetricsRegistry")
            .field("renderers", &names)
            .finish()
    }
}

impl MetricsRegistry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, Renderer)>> {
        self.renderers.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `render` under `name` (a service name), replacing an earlier
    /// renderer of that name.
    pub fn register(&self, name: &str, render: impl Fn(&mut String) + Send + Sync + 'static) {
        let mut r = self.renderers.write().unwrap_or_else(|e| e.into_inner());
        let render: Renderer = Arc::new(render);
        match r.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = render,
            None => r.push((name.to_string(), render)),
        }
    }

    /// Removes the renderer registered under `name`.
    pub fn unregister(&self, name: &str) {
        let mut r = self.renderers.write().unwrap_or_else(|e| e.into_inner());
        r.retain(|(n, _)| n != name);
    }

    /// One scrape: every renderer, then the process metrics.
    pub fn render(&self) -> String {
        let renderers: Vec<Renderer> = self.read().iter().map(|(_, r)| r.clone()).collect();
        let mut out = String::with_capacity(16 * 1024);
        for r in renderers {
            r(&mut out);
        }
        process_metrics(&mut out);
        out
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes a family's `# HELP` and `# TYPE` lines.
pub fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one histogram series: `buckets` are `(le, cumulative count)`
/// with `+Inf` (`f64::INFINITY`) last; `labels` is `k="v",...` or empty.
pub fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    buckets: &[(f64, u64)],
    sum: f64,
    count: u64,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, n) in buckets {
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
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {count}");
}

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/self/stat`. It
/// is 100 on every architecture Linux supports today (the kernel exports
/// a fixed value whatever its internal tick rate), so no `sysconf` call.
const USER_HZ: f64 = 100.0;

/// The process's CPU, memory, start time and file descriptors.
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
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn renderers_run_in_order_and_replace_by_name() {
        let r = MetricsRegistry::default();
        r.register("a", |o| o.push_str("a_total 1\n"));
        r.register("b", |o| o.push_str("b_total 2\n"));
        r.register("a", |o| o.push_str("a_total 3\n"));
        let page = r.render();
        let a = page.find("a_total 3").unwrap();
        let b = page.find("b_total 2").unwrap();
        assert!(a < b, "{page}");
        assert!(!page.contains("a_total 1"));
        r.unregister("a");
        assert!(!r.render().contains("a_total"));
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut s = String::new();
        histogram(
            &mut s,
            "x_seconds",
            "api=\"P\"",
            &[(0.1, 1), (f64::INFINITY, 3)],
            0.5,
            3,
        );
        assert_eq!(
            s,
            "x_seconds_bucket{api=\"P\",le=\"0.1\"} 1\nx_seconds_bucket{api=\"P\",le=\"+Inf\"} 3\nx_seconds_sum{api=\"P\"} 0.5\nx_seconds_count{api=\"P\"} 3\n"
        );
    }
}

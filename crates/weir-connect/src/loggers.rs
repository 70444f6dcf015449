//! Log levels changed at run time, as Kafka Connect's `/admin/loggers`
//! (KIP-495): loggers are `tracing` targets (`weir_connect`,
//! `weir_connect::worker`, ...) and `root`; setting a namespace's level
//! sets it for the namespace and every logger below it. The binary that
//! owns the `tracing` subscriber installs how a set of directives is
//! applied ([`install`]); until it has, changes are only remembered.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// The root logger's name, as Kafka's.
pub const ROOT: &str = "root";

type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct Loggers {
    /// Logger → (level as Kafka spells it, last modification in ms).
    levels: BTreeMap<String, (String, Option<i64>)>,
    /// Directives that are not a plain `target=level` (span or field
    /// filters from `RUST_LOG`), kept as they are.
    other: Vec<String>,
    apply: Option<Apply>,
}

fn state() -> &'static Mutex<Loggers> {
    static STATE: OnceLock<Mutex<Loggers>> = OnceLock::new();
    STATE.get_or_init(|| {
        Mutex::new(Loggers {
            levels: BTreeMap::from([(ROOT.to_string(), ("INFO".to_string(), None))]),
            other: Vec::new(),
            apply: None,
        })
    })
}

fn lock() -> std::sync::MutexGuard<'static, Loggers> {
    state().lock().unwrap_or_else(|e| e.into_inner())
}

/// Kafka's (log4j's) level for a `tracing` one.
fn kafka_level(tracing: &str) -> Option<&'static str> {
    Some(match tracing.to_ascii_lowercase().as_str() {
        "off" => "OFF",
        "error" => "ERROR",
        "warn" => "WARN",
        "info" => "INFO",
        "debug" => "DEBUG",
        "trace" => "TRACE",
        _ => return None,
    })
}

/// A log4j level name as `tracing` knows it (FATAL is ERROR, ALL is
/// TRACE); `None` for what log4j would not know either.
fn tracing_level(kafka: &str) -> Option<&'static str> {
    Some(match kafka.to_ascii_uppercase().as_str() {
        "OFF" => "off",
        "FATAL" | "ERROR" => "error",
        "WARN" => "warn",
        "INFO" => "info",
        "DEBUG" => "debug",
        "TRACE" | "ALL" => "trace",
        _ => return None,
    })
}

/// Whether `level` is a level log4j knows (any case).
pub fn is_level(level: &str) -> bool {
    tracing_level(level).is_some()
}

/// Installs the subscriber's reload: `initial` is the directives it
/// started with (`RUST_LOG` or the default level).
pub fn install(initial: &str, apply: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    let mut l = lock();
    for d in initial.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            None if kafka_level(d).is_some() => {
                l.levels
                    .insert(ROOT.into(), (kafka_level(d).unwrap_or("INFO").into(), None));
            }
            Some((t, lv)) if !t.contains(['[', '{']) && kafka_level(lv).is_some() => {
                l.levels.insert(
                    t.to_string(),
                    (kafka_level(lv).unwrap_or("INFO").into(), None),
                );
            }
            _ => l.other.push(d.to_string()),
        }
    }
    l.apply = Some(Box::new(apply));
}

/// Every logger with a level set: name → (level, last modified).
pub fn all() -> BTreeMap<String, (String, Option<i64>)> {
    lock().levels.clone()
}

/// One logger's level, if it has one set.
pub fn level(name: &str) -> Option<(String, Option<i64>)> {
    lock().levels.get(name).cloned()
}

/// Whether `name` is `namespace` or below it.
fn under(name: &str, namespace: &str) -> bool {
    namespace == ROOT
        || name == namespace
        || name
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.starts_with("::") || rest.starts_with('.'))
}

/// Why a level could not be set.
#[derive(Debug, PartialEq, Eq)]
pub enum SetError {
    /// Not a level log4j knows.
    InvalidLevel,
    /// The subscriber refused the directives.
    Refused(String),
}

/// Sets `namespace` and every logger below it to `level`; answers the
/// loggers affected, sorted.
pub fn set(namespace: &str, level: &str, now_ms: i64) -> Result<Vec<String>, SetError> {
    let canonical = tracing_level(level).ok_or(SetError::InvalidLevel)?;
    let canonical = kafka_level(canonical).unwrap_or("INFO");
    // FATAL and ALL are kept as asked, as log4j reports them.
    let shown = match level.to_ascii_uppercase().as_str() {
        l @ ("FATAL" | "ALL") => l.to_string(),
        _ => canonical.to_string(),
    };
    let mut l = lock();
    let mut next = l.levels.clone();
    let mut affected: Vec<String> = next
        .keys()
        .filter(|n| under(n, namespace))
        .cloned()
        .collect();
    if !affected.iter().any(|a| a == namespace) {
        affected.push(namespace.to_string());
    }
    affected.sort();
    for a in &affected {
        let changed = next.get(a).is_none_or(|(lv, _)| *lv != shown);
        let modified = if changed {
            Some(now_ms)
        } else {
            next.get(a).and_then(|(_, m)| *m)
        };
        next.insert(a.clone(), (shown.clone(), modified));
    }
    if let Some(apply) = &l.apply {
        apply(&directives(&next, &l.other)).map_err(SetError::Refused)?;
    }
    l.levels = next;
    Ok(affected)
}

/// `tracing` directives for these levels: the root's level first, then
/// each target's.
fn directives(levels: &BTreeMap<String, (String, Option<i64>)>, other: &[String]) -> String {
    let mut out = Vec::new();
    if let Some((lv, _)) = levels.get(ROOT) {
        out.push(tracing_level(lv).unwrap_or("info").to_string());
    }
    for (name, (lv, _)) in levels {
        if name != ROOT {
            // Kafka's dotted names map onto Rust's `::` paths.
            let target = name.replace('.', "::");
            out.push(format!("{target}={}", tracing_level(lv).unwrap_or("info")));
        }
    }
    out.extend(other.iter().cloned());
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_directives_and_namespaces() {
        let mut levels = BTreeMap::new();
        levels.insert(ROOT.to_string(), ("WARN".to_string(), None));
        levels.insert("weir_connect".to_string(), ("DEBUG".to_string(), Some(1)));
        assert_eq!(
            directives(&levels, &["a[span]=trace".into()]),
            "warn,weir_connect=debug,a[span]=trace"
        );
        assert!(under("weir_connect::worker", "weir_connect"));
        assert!(under("a.b", "a"));
        assert!(!under("weir_connector", "weir_connect"));
        assert!(under("anything", ROOT));
        assert_eq!(tracing_level("fatal"), Some("error"));
        assert_eq!(tracing_level("verbose"), None);
    }
}

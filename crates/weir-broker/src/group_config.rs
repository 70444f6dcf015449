//! Group configs (`ConfigResource` type GROUP): the `consumer.*` settings
//! a consumer-protocol group and the `share.*` settings a share group may
//! override, with Kafka's names, types and defaults.
//!
//! A group config's default is the broker config it overrides
//! (`share.record.lock.duration.ms` defaults to
//! `group.share.record.lock.duration.ms`), and where the broker bounds it
//! (`group.share.min/max.*`), a value outside the bounds is refused, as
//! Kafka's `GroupConfig` does. Groups need not exist to be configured:
//! setting `share.auto.offset.reset` before the first consumer starts is
//! the usual way to read a topic from its beginning.

use std::collections::BTreeMap;

use crate::config::{invalid, BrokerSettings, ConfigType};
use crate::error::BrokerError;

/// The group config whose values name a reset policy.
const OFFSET_RESET: &str = "share.auto.offset.reset";

/// `ConfigSource` of a group config set on the group (Kafka's
/// `GROUP_CONFIG`).
pub const SOURCE_GROUP: i8 = 8;
/// `ConfigSource` of a default.
pub const SOURCE_DEFAULT: i8 = 5;

/// How a value is bounded.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// Between two broker configs.
    Broker(&'static str, &'static str),
    /// Between two fixed values.
    Fixed(i64, i64),
    /// One of these words.
    Words(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// `share.auto.offset.reset`'s syntax.
    OffsetReset,
}

/// One group config.
#[derive(Debug)]
pub struct GroupConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    /// The type reported to clients.
    pub kind: ConfigType,
    /// The broker config giving the default, or the default itself.
    default: Default,
    bound: Bound,
    /// One line of documentation.
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Default {
    Broker(&'static str),
    Value(&'static str),
}

/// The group configs Weir implements.
pub static GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        kind: ConfigType::Int,
        default: Default::Broker("group.consumer.heartbeat.interval.ms"),
        bound: Bound::Broker(
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
        ),
        doc: "The heartbeat interval given to the members of a consumer-protocol (KIP-848) group.",
    },
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        kind: ConfigType::Int,
        default: Default::Broker("group.consumer.session.timeout.ms"),
        bound: Bound::Broker(
            "group.consumer.min.session.timeout.ms",
            "group.consumer.max.session.timeout.ms",
        ),
        doc: "A consumer-protocol (KIP-848) group member not heard from for this long is removed.",
    },
    GroupConfigDef {
        name: "share.auto.offset.reset",
        kind: ConfigType::String,
        default: Default::Value("latest"),
        bound: Bound::OffsetReset,
        doc: "Where a share-partition starts when the group first consumes it: earliest, latest, or by_duration:<ISO-8601 duration> before now.",
    },
    GroupConfigDef {
        name: "share.delivery.count.limit",
        kind: ConfigType::Int,
        default: Default::Broker("group.share.delivery.count.limit"),
        bound: Bound::Broker(
            "group.share.min.delivery.count.limit",
            "group.share.max.delivery.count.limit",
        ),
        doc: "Delivery attempts after which a record is archived.",
    },
    GroupConfigDef {
        name: "share.heartbeat.interval.ms",
        kind: ConfigType::Int,
        default: Default::Broker("group.share.heartbeat.interval.ms"),
        bound: Bound::Broker(
            "group.share.min.heartbeat.interval.ms",
            "group.share.max.heartbeat.interval.ms",
        ),
        doc: "The heartbeat interval given to the members.",
    },
    GroupConfigDef {
        name: "share.isolation.level",
        kind: ConfigType::String,
        default: Default::Value("read_uncommitted"),
        bound: Bound::Words(&["read_committed", "read_uncommitted"]),
        doc: "read_committed delivers only committed transactional records.",
    },
    GroupConfigDef {
        name: "share.partition.max.record.locks",
        kind: ConfigType::Int,
        default: Default::Broker("group.share.partition.max.record.locks"),
        bound: Bound::Fixed(100, 10_000),
        doc: "The most records in flight in one share-partition.",
    },
    GroupConfigDef {
        name: "share.record.lock.duration.ms",
        kind: ConfigType::Int,
        default: Default::Broker("group.share.record.lock.duration.ms"),
        bound: Bound::Broker(
            "group.share.min.record.lock.duration.ms",
            "group.share.max.record.lock.duration.ms",
        ),
        doc: "How long a delivered record stays locked to its consumer.",
    },
    GroupConfigDef {
        name: "share.renew.acknowledge.enable",
        kind: ConfigType::Boolean,
        default: Default::Value("true"),
        bound: Bound::Bool,
        doc: "Whether consumers may renew acquisition locks (RENEW acknowledgements, KIP-1222).",
    },
    GroupConfigDef {
        name: "share.session.timeout.ms",
        kind: ConfigType::Int,
        default: Default::Broker("group.share.session.timeout.ms"),
        bound: Bound::Broker(
            "group.share.min.session.timeout.ms",
            "group.share.max.session.timeout.ms",
        ),
        doc: "A member not heard from for this long is removed.",
    },
];

/// Finds a group config by name.
pub fn group_def(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Where a share-partition starts (`share.auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The end of the log.
    Latest,
    /// The first record no older than this many milliseconds.
    ByDuration(i64),
}

/// Parses `share.auto.offset.reset`.
pub fn parse_offset_reset(v: &str) -> Result<OffsetReset, BrokerError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "earliest" => Ok(OffsetReset::Earliest),
        "latest" => Ok(OffsetReset::Latest),
        s => match s.strip_prefix("by_duration:") {
            Some(d) => parse_iso_duration(d).map(OffsetReset::ByDuration),
            None => Err(invalid(
                OFFSET_RESET,
                "must be earliest, latest or by_duration:<duration>".into(),
            )),
        },
    }
}

/// Parses an ISO-8601 duration as Java's `Duration.parse` reads it
/// (`PnDTnHnMn.nS`), into milliseconds. Negative durations are refused
/// (as values of `share.auto.offset.reset`, its one use).
pub fn parse_iso_duration(s: &str) -> Result<i64, BrokerError> {
    let bad = || {
        invalid(
            OFFSET_RESET,
            format!("`{s}` is not an ISO-8601 duration such as P1DT2H30M"),
        )
    };
    let negative = || invalid(OFFSET_RESET, "a negative duration is not allowed".into());
    let up = s.trim().to_ascii_uppercase();
    let body = up.strip_prefix('+').unwrap_or(&up);
    if body.starts_with('-') {
        return Err(negative());
    }
    let body = body.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };
    let mut ms: i64 = 0;
    let mut any = false;
    let mut add = |n: f64, unit_ms: f64| -> Result<(), BrokerError> {
        if !(n >= 0.0 && n.is_finite()) {
            return Err(negative());
        }
        ms = ms.saturating_add((n * unit_ms).round() as i64);
        any = true;
        Ok(())
    };
    if !days.is_empty() {
        let n = days.strip_suffix('D').ok_or_else(bad)?;
        add(n.parse::<u32>().map_err(|_| bad())?.into(), 86_400_000.0)?;
    }
    if let Some(mut t) = time {
        for (unit, unit_ms) in [('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)] {
            if let Some(i) = t.find(unit) {
                let n = &t[..i];
                let v: f64 = if unit == 'S' {
                    n.replace(',', ".").parse().map_err(|_| bad())?
                } else {
                    f64::from(n.parse::<u32>().map_err(|_| bad())?)
                };
                add(v, unit_ms)?;
                t = &t[i + 1..];
            }
        }
        if !t.is_empty() {
            return Err(bad());
        }
    }
    if any {
        Ok(ms)
    } else {
        Err(bad())
    }
}

/// Checks a group config value, returning it normalised.
pub fn validate_group_config(
    settings: &BrokerSettings,
    name: &str,
    value: &str,
) -> Result<String, BrokerError> {
    let refuse = |reason: String| invalid(name, reason);
    let def =
        group_def(name).ok_or_else(|| refuse(format!("Unknown group config name: {name}")))?;
    let v = value.trim();
    let int = || {
        v.parse::<i32>()
            .map(i64::from)
            .map_err(|_| refuse(format!("{name}: `{value}` is not an int")))
    };
    let within = |n: i64, lo: i64, hi: i64| {
        if (lo..=hi).contains(&n) {
            Ok(n.to_string())
        } else {
            Err(refuse(format!("{name} must be between {lo} and {hi}")))
        }
    };
    match def.bound {
        Bound::Broker(lo, hi) => within(int()?, settings.get_i64(lo), settings.get_i64(hi)),
        Bound::Fixed(lo, hi) => within(int()?, lo, hi),
        Bound::Words(words) => words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(v))
            .map(|w| (*w).to_string())
            .ok_or_else(|| refuse(format!("{name} must be one of {}", words.join(", ")))),
        Bound::Bool => match v.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => Err(refuse(format!("{name} must be true or false"))),
        },
        Bound::OffsetReset => parse_offset_reset(v)
            .map(|_| v.to_string())
            .map_err(|e| refuse(format!("{name}: {e}"))),
    }
}

/// A group's configs: every one with its value and source.
pub fn resolve_all(
    settings: &BrokerSettings,
    overrides: &BTreeMap<String, String>,
) -> Vec<(&'static GroupConfigDef, String, i8)> {
    GROUP_CONFIGS
        .iter()
        .map(|d| match overrides.get(d.name) {
            Some(v) => (d, v.clone(), SOURCE_GROUP),
            None => (d, default_of(settings, d), SOURCE_DEFAULT),
        })
        .collect()
}

fn default_of(settings: &BrokerSettings, d: &GroupConfigDef) -> String {
    match d.default {
        Default::Broker(key) => settings.get(key),
        Default::Value(v) => v.to_string(),
    }
}

/// One share group's effective settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareGroupSettings {
    /// The share-partition settings.
    pub partition: crate::share_partition::ShareConfig,
    /// The membership settings.
    pub membership: crate::share_group::MembershipConfig,
    /// `share.auto.offset.reset`.
    pub offset_reset: OffsetReset,
    /// `share.isolation.level` is read_committed.
    pub read_committed: bool,
}

/// A consumer-protocol group's settings: its `consumer.*` group configs
/// over the broker's `group.consumer.*`.
pub fn consumer_settings(
    settings: &BrokerSettings,
    overrides: &BTreeMap<String, String>,
) -> crate::consumer_group::ConsumerConfig {
    let int = |name: &str, broker: &str| {
        overrides
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| settings.get_i64(broker))
    };
    crate::consumer_group::ConsumerConfig {
        session_timeout_ms: int(
            "consumer.session.timeout.ms",
            "group.consumer.session.timeout.ms",
        ),
        heartbeat_interval_ms: i32::try_from(int(
            "consumer.heartbeat.interval.ms",
            "group.consumer.heartbeat.interval.ms",
        ))
        .unwrap_or(5000),
    }
}

/// The effective share settings of a group with `overrides`.
pub fn share_settings(
    settings: &BrokerSettings,
    overrides: &BTreeMap<String, String>,
) -> ShareGroupSettings {
    let get = |name: &str| {
        overrides.get(name).cloned().unwrap_or_else(|| {
            group_def(name)
                .map(|d| default_of(settings, d))
                .unwrap_or_default()
        })
    };
    let int = |name: &str| get(name).parse::<i64>().unwrap_or(0);
    ShareGroupSettings {
        partition: crate::share_partition::ShareConfig {
            lock_duration_ms: int("share.record.lock.duration.ms"),
            delivery_count_limit: i16::try_from(int("share.delivery.count.limit")).unwrap_or(5),
            max_in_flight: int("share.partition.max.record.locks"),
            renew_enabled: get("share.renew.acknowledge.enable") == "true",
        },
        membership: crate::share_group::MembershipConfig {
            session_timeout_ms: int("share.session.timeout.ms"),
            heartbeat_interval_ms: i32::try_from(int("share.heartbeat.interval.ms"))
                .unwrap_or(5000),
            max_size: usize::try_from(settings.get_i64("group.share.max.size")).unwrap_or(200),
        },
        offset_reset: parse_offset_reset(&get("share.auto.offset.reset"))
            .unwrap_or(OffsetReset::Latest),
        read_committed: get("share.isolation.level") == "read_committed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_java_reads_them() {
        assert_eq!(parse_iso_duration("PT1H").ok(), Some(3_600_000));
        assert_eq!(parse_iso_duration("P1DT2H3M4.5S").ok(), Some(93_784_500));
        assert_eq!(parse_iso_duration("pt15m").ok(), Some(900_000));
        assert_eq!(parse_iso_duration("P2D").ok(), Some(172_800_000));
        for bad in [
            "", "P", "PT", "1H", "PT1X", "P1H", "-PT1H", "PT-1H", "PT1H2",
        ] {
            assert!(parse_iso_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offset_reset_accepts_kafkas_three_forms() {
        assert_eq!(
            parse_offset_reset("Earliest").ok(),
            Some(OffsetReset::Earliest)
        );
        assert_eq!(parse_offset_reset("latest").ok(), Some(OffsetReset::Latest));
        assert_eq!(
            parse_offset_reset("by_duration:PT10M").ok(),
            Some(OffsetReset::ByDuration(600_000))
        );
        assert!(matches!(
            parse_offset_reset("none"),
            Err(BrokerError::InvalidConfig { key, .. }) if key == OFFSET_RESET
        ));
    }

    #[test]
    fn values_are_bounded_by_the_broker() {
        let s = BrokerSettings::default();
        assert_eq!(
            validate_group_config(&s, "share.record.lock.duration.ms", "20000").ok(),
            Some("20000".into())
        );
        assert!(validate_group_config(&s, "share.record.lock.duration.ms", "1000").is_err());
        assert!(validate_group_config(&s, "share.delivery.count.limit", "11").is_err());
        assert!(validate_group_config(&s, "share.isolation.level", "dirty").is_err());
        assert!(validate_group_config(&s, "consumer.session.timeout.ms", "1").is_err());
        let low = BrokerSettings::from_static([(
            "group.share.min.record.lock.duration.ms".to_string(),
            "1000".to_string(),
        )])
        .unwrap();
        assert!(validate_group_config(&low, "share.record.lock.duration.ms", "1000").is_ok());
    }

    #[test]
    fn defaults_follow_the_broker_and_overrides_win() {
        let s = BrokerSettings::from_static([(
            "group.share.record.lock.duration.ms".to_string(),
            "20000".to_string(),
        )])
        .unwrap();
        let d = share_settings(&s, &BTreeMap::new());
        assert_eq!(d.partition.lock_duration_ms, 20_000);
        assert_eq!(d.partition.delivery_count_limit, 5);
        assert_eq!(d.offset_reset, OffsetReset::Latest);
        let o = BTreeMap::from([
            (
                "share.auto.offset.reset".to_string(),
                "earliest".to_string(),
            ),
            (
                "share.isolation.level".to_string(),
                "read_committed".to_string(),
            ),
        ]);
        let g = share_settings(&s, &o);
        assert_eq!(
            (g.offset_reset, g.read_committed),
            (OffsetReset::Earliest, true)
        );
        let sources: Vec<i8> = resolve_all(&s, &o).iter().map(|r| r.2).collect();
        assert_eq!(sources.iter().filter(|s| **s == SOURCE_GROUP).count(), 2);
    }
}

//! Confluent's partitioners: where in the bucket a record's object goes
//! (the "encoded partition" between the topic directory and the file name).
//!
//! - `DefaultPartitioner`: `partition=<kafka partition>`;
//! - `FieldPartitioner`: `<field>=<value>` for each `partition.field.name`;
//! - `TimeBasedPartitioner` (and its `HourlyPartitioner` and
//!   `DailyPartitioner` presets): the record's time, floored to
//!   `partition.duration.ms` in `timezone`, formatted with `path.format`
//!   (a Joda pattern, as Confluent's).
//!
//! Time zones are UTC, fixed offsets (`+02:00`, `GMT-5`) or IANA names
//! (`America/New_York`): the floor is taken on the local time at the
//! record's instant, so daylight saving time moves the boundaries as it
//! does in Confluent's (Joda's) zones.

use crate::connector::{Props, SinkRecord};
use crate::data::Value;
use crate::error::{ConnectError, Result};
use crate::timefmt::Pattern;
use crate::tz::Zone;

const PREFIX: &str = "io.confluent.connect.storage.partitioner.";

/// Where a record's time comes from (`timestamp.extractor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampExtractor {
    /// The worker's clock when the record is written (Confluent's default).
    Wallclock,
    /// The Kafka record's timestamp.
    Record,
    /// A field of the value (`timestamp.field`): a Timestamp, a number of
    /// milliseconds, or an ISO-8601 string.
    RecordField(String),
}

impl TimestampExtractor {
    /// From `timestamp.extractor` and `timestamp.field`.
    pub fn from_config(p: &Props) -> Result<Self> {
        let name = p
            .get("timestamp.extractor")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or("Wallclock");
        let simple = name.rsplit('.').next().unwrap_or(name);
        Ok(match simple.trim_end_matches("TimestampExtractor") {
            "Wallclock" => Self::Wallclock,
            "Record" => Self::Record,
            "RecordField" => Self::RecordField(
                p.get("timestamp.field")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "timestamp".into()),
            ),
            _ => {
                return Err(ConnectError::bad_config(format!(
                    "Invalid value {name} for configuration timestamp.extractor: expected Wallclock, Record or RecordField"
                )))
            }
        })
    }

    /// The record's time in milliseconds since the epoch.
    pub fn extract(&self, r: &SinkRecord) -> Result<i64> {
        match self {
            Self::Wallclock => Ok(crate::now_ms()),
            Self::Record => r.record.timestamp.ok_or_else(|| {
                ConnectError::data(format!(
                    "Unable to determine timestamp using timestamp.extractor Record for record at offset {}: the record has no timestamp",
                    r.kafka_offset
                ))
            }),
            Self::RecordField(field) => {
                let v = field_value(&r.record.value.value, field).ok_or_else(|| {
                    ConnectError::data(format!(
                        "Unable to find timestamp field {field} in the value of the record at offset {}",
                        r.kafka_offset
                    ))
                })?;
                match v {
                    Value::Int64(n) => Ok(*n),
                    Value::Int32(n) => Ok(i64::from(*n)),
                    Value::String(s) => parse_iso(s).ok_or_else(|| {
                        ConnectError::data(format!(
                            "timestamp field {field}: cannot parse {s:?} as an ISO-8601 time"
                        ))
                    }),
                    other => Err(ConnectError::data(format!(
                        "timestamp field {field} has unsupported type {}",
                        other.type_name()
                    ))),
                }
            }
        }
    }
}

/// An ISO-8601 time with milliseconds and a zone, or without them.
fn parse_iso(s: &str) -> Option<i64> {
    ["yyyy-MM-dd'T'HH:mm:ss.SSSX", "yyyy-MM-dd'T'HH:mm:ssX"]
        .iter()
        .find_map(|p| Pattern::parse(p).ok()?.parse_ms(s))
}

/// A (possibly dotted) field of a struct or map value.
fn field_value<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Struct(s) => s.get(part)?,
            Value::Map(_) => cur.map_get(part)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A partitioner.
#[derive(Debug, Clone)]
pub enum Partitioner {
    Default,
    Field(Vec<String>),
    Time {
        pattern: Pattern,
        duration_ms: i64,
        zone: Zone,
    },
}

impl Partitioner {
    /// From `partitioner.class` and its settings.
    pub fn from_config(p: &Props) -> Result<Self> {
        let class = p
            .get("partitioner.class")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or("io.confluent.connect.storage.partitioner.DefaultPartitioner");
        let simple = class.strip_prefix(PREFIX).unwrap_or(class);
        let time = |format: Option<&str>, duration: Option<i64>| -> Result<Partitioner> {
            let format = match format {
                Some(f) => f.to_string(),
                None => p
                    .get("path.format")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        ConnectError::bad_config("Path format cannot be empty (path.format)")
                    })?,
            };
            let duration_ms = match duration {
                Some(d) => d,
                None => crate::config::prop_i64(p, "partition.duration.ms", -1)?,
            };
            if duration_ms <= 0 {
                return Err(ConnectError::bad_config(
                    "Partition duration needs to be a positive number (partition.duration.ms)",
                ));
            }
            let tz = p.get("timezone").map(|s| s.trim()).unwrap_or("");
            if tz.is_empty() {
                return Err(ConnectError::bad_config(
                    "Timezone cannot be empty (timezone)",
                ));
            }
            if p.get("locale").is_none_or(|l| l.trim().is_empty()) {
                return Err(ConnectError::bad_config("Locale cannot be empty (locale)"));
            }
            Ok(Partitioner::Time {
                pattern: joda_pattern(&format)?,
                duration_ms,
                zone: Zone::parse(tz, "timezone")?,
            })
        };
        match simple {
            "DefaultPartitioner" => Ok(Self::Default),
            "FieldPartitioner" => {
                let fields = crate::config::list(p, "partition.field.name");
                if fields.is_empty() {
                    return Err(ConnectError::bad_config(
                        "FieldPartitioner needs partition.field.name",
                    ));
                }
                Ok(Self::Field(fields))
            }
            "TimeBasedPartitioner" => time(None, None),
            "HourlyPartitioner" => time(
                Some("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH"),
                Some(3_600_000),
            ),
            "DailyPartitioner" => time(Some("'year'=YYYY/'month'=MM/'day'=dd"), Some(86_400_000)),
            _ => Err(ConnectError::bad_config(format!(
                "Invalid value {class} for configuration partitioner.class: expected {PREFIX}DefaultPartitioner, FieldPartitioner, TimeBasedPartitioner, HourlyPartitioner or DailyPartitioner"
            ))),
        }
    }

    /// The encoded partition of `r`, whose time (for the time-based ones)
    /// is `ts`.
    pub fn encode(&self, r: &SinkRecord, ts: i64, delim: &str) -> Result<String> {
        match self {
            Self::Default => Ok(format!("partition={}", r.original_partition)),
            Self::Field(fields) => {
                let v = &r.record.value.value;
                if !matches!(v, Value::Struct(_) | Value::Map(_)) {
                    return Err(ConnectError::data(format!(
                        "FieldPartitioner needs a struct or map value, got {} at offset {}",
                        v.type_name(),
                        r.kafka_offset
                    )));
                }
                let mut parts = Vec::new();
                for f in fields {
                    let text = match field_value(v, f) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Int8(n)) => n.to_string(),
                        Some(Value::Int16(n)) => n.to_string(),
                        Some(Value::Int32(n)) => n.to_string(),
                        Some(Value::Int64(n)) => n.to_string(),
                        Some(Value::Boolean(b)) => b.to_string(),
                        Some(other) => {
                            return Err(ConnectError::data(format!(
                                "FieldPartitioner: field {f} has unsupported type {} at offset {}",
                                other.type_name(),
                                r.kafka_offset
                            )))
                        }
                        None => {
                            return Err(ConnectError::data(format!(
                                "FieldPartitioner: the value at offset {} has no field {f}",
                                r.kafka_offset
                            )))
                        }
                    };
                    parts.push(format!("{f}={text}"));
                }
                Ok(parts.join(delim))
            }
            Self::Time {
                pattern,
                duration_ms,
                zone,
            } => {
                let local = zone.local_ms(ts);
                let floored = local.div_euclid(*duration_ms) * duration_ms;
                Ok(pattern.format(floored))
            }
        }
    }

    /// Whether it needs the record's time.
    pub fn is_time_based(&self) -> bool {
        matches!(self, Self::Time { .. })
    }
}

/// A Joda pattern (Confluent's `path.format`) as the Java pattern
/// [`Pattern`] reads: Joda's `Y` is the year of era, Java's `y`.
fn joda_pattern(format: &str) -> Result<Pattern> {
    let mut out = String::with_capacity(format.len());
    let mut quoted = false;
    for c in format.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(if !quoted && c == 'Y' { 'y' } else { c });
    }
    Pattern::parse(&out).map_err(|e| {
        ConnectError::bad_config(format!(
            "Invalid value {format} for configuration path.format: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::ConnectRecord;
    use crate::data::SchemaAndValue;

    use crate::connector::props;

    fn record(v: Value) -> SinkRecord {
        SinkRecord {
            record: ConnectRecord::new("t", SchemaAndValue::schemaless(v)),
            kafka_offset: 7,
            original_topic: "t".into(),
            original_partition: 3,
        }
    }

    #[test]
    fn time_based_paths_floor_in_the_zone() {
        let p = Partitioner::from_config(&props(&[
            (
                "partitioner.class",
                "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
            ),
            ("path.format", "'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH"),
            ("partition.duration.ms", "3600000"),
            ("locale", "en-US"),
            ("timezone", "GMT+2"),
        ]))
        .unwrap();
        // 2024-02-29T23:59:59Z is 01:59 on March 1st at +02:00.
        let ts = 1_709_251_199_000;
        let r = record(Value::Null);
        assert_eq!(
            p.encode(&r, ts, "/").unwrap(),
            "year=2024/month=03/day=01/hour=01"
        );
        let utc = Partitioner::from_config(&props(&[
            ("partitioner.class", "DailyPartitioner"),
            ("locale", "en"),
            ("timezone", "UTC"),
        ]))
        .unwrap();
        assert_eq!(
            utc.encode(&r, ts, "/").unwrap(),
            "year=2024/month=02/day=29"
        );
        let ny = |class: &str| {
            Partitioner::from_config(&props(&[
                ("partitioner.class", class),
                ("locale", "en"),
                ("timezone", "America/New_York"),
            ]))
            .unwrap()
        };
        // 23:59:59Z is 18:59 EST on February 29th, 19:59 EDT on July 1st.
        assert_eq!(
            ny("HourlyPartitioner").encode(&r, ts, "/").unwrap(),
            "year=2024/month=02/day=29/hour=18"
        );
        assert_eq!(
            ny("HourlyPartitioner")
                .encode(&r, 1_719_878_399_000, "/")
                .unwrap(),
            "year=2024/month=07/day=01/hour=19"
        );
        // 2024-03-01T04:30Z is still February 29th in New York.
        assert_eq!(
            ny("DailyPartitioner")
                .encode(&r, 1_709_267_400_000, "/")
                .unwrap(),
            "year=2024/month=02/day=29"
        );
    }

    #[test]
    fn default_and_field_paths() {
        let r = record(Value::Map(vec![
            (Value::String("region".into()), Value::String("eu".into())),
            (Value::String("n".into()), Value::Int64(4)),
        ]));
        let d = Partitioner::from_config(&Props::new()).unwrap();
        assert_eq!(d.encode(&r, 0, "/").unwrap(), "partition=3");
        let f = Partitioner::from_config(&props(&[
            (
                "partitioner.class",
                "io.confluent.connect.storage.partitioner.FieldPartitioner",
            ),
            ("partition.field.name", "region,n"),
        ]))
        .unwrap();
        assert_eq!(f.encode(&r, 0, "/").unwrap(), "region=eu/n=4");
        assert!(f.encode(&record(Value::Int32(1)), 0, "/").is_err());
    }
}

//! A data-generator source for demos and benchmarks
//! (`weir.connect.DataGenSourceConnector`, or `DataGenSource`).
//!
//! Each task writes records numbered from 0 to `topic`: with
//! `quickstart=orders` (default) a struct `{order_id, customer, item,
//! quantity, price, ts}`; `users` a struct `{user_id, name, region,
//! registered_at}`; `lines` a string of `line.bytes` bytes (a number, then
//! filler), for file-like throughput tests. Values are a pure function of
//! the record number, so a restarted task that resumes from its committed
//! offset (`{"task": n}` → `{"position": next}`) writes exactly what it
//! would have. `iterations` bounds the records per task (`-1`: forever);
//! `max.interval` pauses up to that many milliseconds between polls, as
//! Confluent's datagen paces its records.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{prop_i64, ConfigDef, ConfigKey, ConfigType};
use crate::connector::{
    ConnectRecord, Connector, ConnectorType, OffsetChange, OffsetReader, Plugin, Props,
    SourceRecord, SourceTask,
};
use crate::data::{logical, Schema, SchemaAndValue, Struct, Type, Value};
use crate::error::{ConnectError, Result};
use crate::json::Json;

/// The plugin.
pub const DATAGEN_SOURCE: Plugin = Plugin {
    class: "weir.connect.DataGenSourceConnector",
    kind: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    config_def: def,
    connector: || Box::new(DataGenConnector::default()),
    source_task: Some(|| Box::new(DataGenTask::default())),
    sink_task: None,
};

const QUICKSTARTS: &[&str] = &["orders", "users", "lines"];

fn def() -> ConfigDef {
    ConfigDef {
        keys: vec![
            ConfigKey::new("topic", ConfigType::String, None, "HIGH", "The topic to write to"),
            ConfigKey {
                choices: QUICKSTARTS,
                ..ConfigKey::new(
                    "quickstart",
                    ConfigType::String,
                    Some("orders"),
                    "HIGH",
                    "What to generate: orders or users (structs), or lines (strings of line.bytes bytes)",
                )
            },
            ConfigKey::new(
                "iterations",
                ConfigType::Long,
                Some("-1"),
                "MEDIUM",
                "Records per task; -1 for no end",
            ),
            ConfigKey {
                min: Some(0),
                ..ConfigKey::new(
                    "max.interval",
                    ConfigType::Long,
                    Some("500"),
                    "MEDIUM",
                    "Longest pause between polls, in milliseconds (0: as fast as the topic takes them)",
                )
            },
            ConfigKey {
                min: Some(1),
                ..ConfigKey::new(
                    "batch.size",
                    ConfigType::Int,
                    Some("2000"),
                    "LOW",
                    "Most records per poll",
                )
            },
            ConfigKey {
                min: Some(1),
                ..ConfigKey::new(
                    "line.bytes",
                    ConfigType::Int,
                    Some("1024"),
                    "LOW",
                    "Length of each line, for quickstart=lines",
                )
            },
        ],
    }
}

#[derive(Debug, Default)]
struct DataGenConnector {
    props: Props,
}

impl Connector for DataGenConnector {
    fn start(&mut self, config: &Props) -> Result<()> {
        if config.get("topic").is_none_or(|t| t.trim().is_empty()) {
            return Err(ConnectError::bad_config(
                "Missing required configuration \"topic\" which has no default value.",
            ));
        }
        self.props = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>> {
        Ok((0..max_tasks.max(1))
            .map(|i| {
                let mut p = self.props.clone();
                p.insert("task.index".into(), i.to_string());
                p
            })
            .collect())
    }

    /// Records are a function of their number: the offsets topic is the
    /// only state there is.
    fn alter_offsets(&self, _config: &Props, _offsets: &[OffsetChange]) -> Result<bool> {
        Ok(true)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Quickstart {
    #[default]
    Orders,
    Users,
    Lines,
}

#[derive(Debug, Default)]
struct DataGenTask {
    topic: String,
    kind: Quickstart,
    task: i64,
    next: i64,
    iterations: i64,
    max_interval: u64,
    batch: i64,
    line_bytes: usize,
    schema: Option<Arc<Schema>>,
}

/// SplitMix64: a fixed, fast function of the record number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const NAMES: &[&str] = &[
    "ann", "bob", "chen", "dana", "emre", "fatima", "gus", "hana",
];
const REGIONS: &[&str] = &["eu-west", "eu-north", "us-east", "us-west", "ap-south"];
const ITEMS: &[&str] = &[
    "widget",
    "gadget",
    "sprocket",
    "gizmo",
    "doohickey",
    "thingamajig",
];

fn pick<'a>(list: &[&'a str], r: u64) -> &'a str {
    list[(r % list.len() as u64) as usize]
}

impl DataGenTask {
    fn value(&self, n: i64) -> SchemaAndValue {
        let r = mix(((self.task as u64) << 48) ^ n as u64);
        // Timestamps advance a second per record from 2024-01-01.
        let ts = 1_704_067_200_000 + n * 1000;
        match self.kind {
            Quickstart::Lines => {
                let mut s = format!("{:012} ", n);
                let fill = b"abcdefghijklmnopqrstuvwxyz";
                while s.len() < self.line_bytes {
                    s.push(fill[(s.len() + n as usize) % fill.len()] as char);
                }
                s.truncate(self.line_bytes);
                SchemaAndValue {
                    schema: self.schema.clone(),
                    value: Value::String(s),
                }
            }
            Quickstart::Orders | Quickstart::Users => {
                let schema = self
                    .schema
                    .clone()
                    .unwrap_or_else(|| Arc::new(Schema::of(Type::Struct)));
                let mut st = Struct::new(schema.clone());
                let values = if self.kind == Quickstart::Orders {
                    vec![
                        Value::Int64(n),
                        Value::String(format!("{}-{}", pick(NAMES, r), r % 1000)),
                        Value::String(pick(ITEMS, r >> 8).into()),
                        Value::Int32(1 + ((r >> 16) % 9) as i32),
                        Value::Float64(((r >> 24) % 100_000) as f64 / 100.0),
                        Value::Int64(ts),
                    ]
                } else {
                    vec![
                        Value::String(format!("user_{n}")),
                        Value::String(pick(NAMES, r).into()),
                        Value::String(pick(REGIONS, r >> 8).into()),
                        Value::Int64(ts),
                    ]
                };
                st.values = values;
                SchemaAndValue {
                    schema: Some(schema),
                    value: Value::Struct(st),
                }
            }
        }
    }

    fn key(&self, n: i64) -> SchemaAndValue {
        let s = Schema::of(Type::String);
        let k = match self.kind {
            Quickstart::Lines => return SchemaAndValue::null(),
            Quickstart::Orders => n.to_string(),
            Quickstart::Users => format!("user_{n}"),
        };
        SchemaAndValue {
            schema: Some(Arc::new(s)),
            value: Value::String(k),
        }
    }
}

fn ts_schema() -> Schema {
    let mut s = Schema::of(Type::Int64).named(logical::TIMESTAMP);
    s.version = Some(1);
    s
}

impl SourceTask for DataGenTask {
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<()> {
        self.topic = config.get("topic").cloned().unwrap_or_default();
        self.kind = match config.get("quickstart").map(|s| s.trim()) {
            None | Some("orders") => Quickstart::Orders,
            Some("users") => Quickstart::Users,
            Some("lines") => Quickstart::Lines,
            Some(other) => {
                return Err(ConnectError::bad_config(format!(
                    "Invalid value {other} for configuration quickstart: String must be one of: {}",
                    QUICKSTARTS.join(", ")
                )))
            }
        };
        self.task = prop_i64(config, "task.index", 0)?;
        self.iterations = prop_i64(config, "iterations", -1)?;
        self.max_interval = u64::try_from(prop_i64(config, "max.interval", 500)?).unwrap_or(0);
        self.batch = prop_i64(config, "batch.size", 2000)?.max(1);
        self.line_bytes = usize::try_from(prop_i64(config, "line.bytes", 1024)?)
            .unwrap_or(1024)
            .max(1);
        self.next = offsets
            .offset(&self.partition())
            .and_then(|o| o.get("position").and_then(serde_json::Value::as_i64))
            .unwrap_or(0);
        let named = |name: &str, fields: Vec<(&str, Schema)>| {
            Schema::structure(
                fields
                    .into_iter()
                    .map(|(k, s)| (k.to_string(), s))
                    .collect(),
            )
            .named(name)
        };
        self.schema = Some(Arc::new(match self.kind {
            Quickstart::Lines => Schema::of(Type::String),
            Quickstart::Orders => named(
                "weir.datagen.Order",
                vec![
                    ("order_id", Schema::of(Type::Int64)),
                    ("customer", Schema::of(Type::String)),
                    ("item", Schema::of(Type::String)),
                    ("quantity", Schema::of(Type::Int32)),
                    ("price", Schema::of(Type::Float64)),
                    ("ts", ts_schema()),
                ],
            ),
            Quickstart::Users => named(
                "weir.datagen.User",
                vec![
                    ("user_id", Schema::of(Type::String)),
                    ("name", Schema::of(Type::String)),
                    ("region", Schema::of(Type::String)),
                    ("registered_at", ts_schema()),
                ],
            ),
        }));
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let left = if self.iterations < 0 {
            self.batch
        } else {
            (self.iterations - self.next).min(self.batch)
        };
        if left <= 0 {
            // Done: idle without spinning.
            std::thread::sleep(Duration::from_millis(200));
            return Ok(Vec::new());
        }
        if self.max_interval > 0 {
            let pause = mix(self.next as u64) % (self.max_interval + 1);
            std::thread::sleep(Duration::from_millis(pause.min(1000)));
        }
        // Paced generators send one record per pause, as datagen does.
        let n = if self.max_interval > 0 { 1 } else { left };
        let partition = self.partition();
        let out = (self.next..self.next + n)
            .map(|i| {
                let mut record = ConnectRecord::new(&self.topic, self.value(i));
                record.key = self.key(i);
                record.timestamp = Some(crate::now_ms());
                SourceRecord {
                    source_partition: partition.clone(),
                    source_offset: Json::obj([("position", Json::Int(i + 1))]),
                    record,
                }
            })
            .collect();
        self.next += n;
        Ok(out)
    }
}

impl DataGenTask {
    fn partition(&self) -> Json {
        Json::obj([("task", Json::Int(self.task))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct From(Option<i64>);
    impl OffsetReader for From {
        fn offset(&self, _p: &Json) -> Option<serde_json::Value> {
            self.0.map(|n| serde_json::json!({ "position": n }))
        }
    }

    fn task(cfg: &[(&str, &str)], from: Option<i64>) -> DataGenTask {
        let mut p: Props = cfg
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p.insert("topic".into(), "t".into());
        p.insert("max.interval".into(), "0".into());
        let mut t = DataGenTask::default();
        t.start(&p, &From(from)).unwrap();
        t
    }

    #[test]
    fn records_are_a_function_of_their_number() {
        let mut a = task(&[("iterations", "10"), ("batch.size", "4")], None);
        let mut all = Vec::new();
        for _ in 0..4 {
            all.extend(a.poll().unwrap());
        }
        assert_eq!(all.len(), 10);
        let mut b = task(&[("iterations", "10")], Some(6));
        let rest = b.poll().unwrap();
        assert_eq!(rest.len(), 4);
        assert_eq!(rest[0].record.value, all[6].record.value);
        assert_eq!(rest[3].source_offset.to_text(), r#"{"position":10}"#);
        let Value::Struct(s) = &all[0].record.value.value else {
            panic!("orders are structs")
        };
        s.schema.validate(&all[0].record.value.value).unwrap();
        assert_eq!(s.get("order_id"), Some(&Value::Int64(0)));
        let mut lines = task(
            &[
                ("quickstart", "lines"),
                ("line.bytes", "1024"),
                ("iterations", "2"),
            ],
            None,
        );
        let l = lines.poll().unwrap();
        assert_eq!(l[1].record.value.value.as_str().map(str::len), Some(1024));
        assert!(l[1]
            .record
            .value
            .value
            .as_str()
            .unwrap()
            .starts_with("000000000001 "));
    }
}

//! Kafka's single message transforms and predicates, by their class names
//! (`org.apache.kafka.connect.transforms.InsertField$Value`, ...), built
//! from a connector's `transforms` and `predicates` settings and applied
//! in order to each record (sources: before conversion; sinks: after).
//!
//! Transforms here: Cast, DropHeaders, ExtractField, Filter, Flatten,
//! HeaderFrom, HoistField, InsertField, InsertHeader, MaskField,
//! RegexRouter, ReplaceField, SetSchemaMetadata, TimestampConverter,
//! TimestampRouter, ValueToKey, and Debezium's ExtractNewRecordState
//! ([`crate::unwrap`]). Predicates: TopicNameMatches,
//! HasHeaderKey, RecordIsTombstone, each with `negate`.

use std::sync::Arc;

use regex::Regex;

use crate::config::{list, with_prefix};
use crate::connector::{ConnectRecord, Header, Props};
use crate::data::{logical, Schema, SchemaAndValue, Struct, Type, Value};
use crate::error::{ConnectError, Result};
use crate::timefmt::{Pattern, MS_PER_DAY};

const PKG: &str = "org.apache.kafka.connect.transforms.";
const PREDICATES_PKG: &str = "org.apache.kafka.connect.transforms.predicates.";

/// The transform classes this runtime has (for `/connector-plugins`).
pub const TRANSFORM_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.transforms.Filter",
    "org.apache.kafka.connect.transforms.RegexRouter",
    "org.apache.kafka.connect.transforms.InsertField$Key",
    "org.apache.kafka.connect.transforms.InsertField$Value",
    "org.apache.kafka.connect.transforms.ReplaceField$Key",
    "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "org.apache.kafka.connect.transforms.MaskField$Key",
    "org.apache.kafka.connect.transforms.MaskField$Value",
    "org.apache.kafka.connect.transforms.ValueToKey",
    "org.apache.kafka.connect.transforms.ExtractField$Key",
    "org.apache.kafka.connect.transforms.ExtractField$Value",
    "org.apache.kafka.connect.transforms.HoistField$Key",
    "org.apache.kafka.connect.transforms.HoistField$Value",
    "org.apache.kafka.connect.transforms.InsertHeader",
    "org.apache.kafka.connect.transforms.DropHeaders",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Key",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
    "org.apache.kafka.connect.transforms.Cast$Key",
    "org.apache.kafka.connect.transforms.Cast$Value",
    "org.apache.kafka.connect.transforms.Flatten$Key",
    "org.apache.kafka.connect.transforms.Flatten$Value",
    "org.apache.kafka.connect.transforms.HeaderFrom$Key",
    "org.apache.kafka.connect.transforms.HeaderFrom$Value",
    "org.apache.kafka.connect.transforms.TimestampConverter$Key",
    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
    "org.apache.kafka.connect.transforms.TimestampRouter",
    crate::unwrap::CLASS,
];

/// The predicate classes this runtime has.
pub const PREDICATE_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
];

#[derive(Debug)]
enum Predicate {
    TopicNameMatches(Regex),
    HasHeaderKey(String),
    RecordIsTombstone,
}

impl Predicate {
    fn test(&self, r: &ConnectRecord) -> bool {
        match self {
            Predicate::TopicNameMatches(re) => re.is_match(&r.topic),
            Predicate::HasHeaderKey(k) => r.headers.iter().any(|h| &h.key == k),
            Predicate::RecordIsTombstone => r.value.value.is_null(),
        }
    }
}

/// Which part of the record a `$Key`/`$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Key,
    Value,
}

#[derive(Debug)]
enum Kind {
    Filter,
    RegexRouter {
        regex: Regex,
        replacement: String,
    },
    InsertField {
        topic: Option<String>,
        partition: Option<String>,
        offset: Option<String>,
        timestamp: Option<String>,
        static_field: Option<(String, String)>,
    },
    ReplaceField {
        exclude: Vec<String>,
        include: Vec<String>,
        renames: Vec<(String, String)>,
    },
    MaskField {
        fields: Vec<String>,
        replacement: Option<String>,
    },
    ValueToKey {
        fields: Vec<String>,
    },
    ExtractField {
        field: String,
    },
    HoistField {
        field: String,
    },
    InsertHeader {
        header: String,
        value: String,
    },
    DropHeaders {
        headers: Vec<String>,
    },
    SetSchemaMetadata {
        name: Option<String>,
        version: Option<i32>,
    },
    Cast {
        /// The type the whole key or value is cast to.
        whole: Option<Type>,
        fields: Vec<(String, Type)>,
        replace_null_with_default: bool,
    },
    Flatten {
        delimiter: String,
    },
    HeaderFrom {
        fields: Vec<String>,
        headers: Vec<String>,
        moving: bool,
        replace_null_with_default: bool,
    },
    TimestampConverter {
        /// `None`: the whole key or value.
        field: Option<String>,
        target: TsType,
        format: Option<Pattern>,
        /// Milliseconds per unit of `unix` values, as (multiplier, divisor).
        precision: Precision,
        replace_null_with_default: bool,
    },
    TimestampRouter {
        topic_format: String,
        timestamp_format: Pattern,
    },
    Unwrap(Box<crate::unwrap::ExtractNewRecordState>),
}

/// TimestampConverter's `target.type` (and the kinds it reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsType {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

/// TimestampConverter's `unix.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Precision {
    fn to_ms(self, v: i64) -> i64 {
        // Java's TimeUnit conversions: truncation toward zero, saturating.
        match self {
            Precision::Seconds => v.saturating_mul(1000),
            Precision::Milliseconds => v,
            Precision::Microseconds => v / 1000,
            Precision::Nanoseconds => v / 1_000_000,
        }
    }

    fn of_ms(self, ms: i64) -> i64 {
        match self {
            Precision::Seconds => ms / 1000,
            Precision::Milliseconds => ms,
            Precision::Microseconds => ms.saturating_mul(1000),
            Precision::Nanoseconds => ms.saturating_mul(1_000_000),
        }
    }
}

/// One configured transform with its optional predicate.
#[derive(Debug)]
struct Step {
    kind: Kind,
    part: Part,
    predicate: Option<(Arc<Predicate>, bool)>,
}

/// A connector's transform chain.
#[derive(Debug, Default)]
pub struct Chain {
    steps: Vec<Step>,
}

fn bad(msg: impl Into<String>) -> ConnectError {
    ConnectError::bad_config(msg)
}

fn required(p: &Props, key: &str, alias: &str) -> Result<String> {
    p.get(key)
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_string())
        .ok_or_else(|| {
            bad(format!(
                "Missing required configuration \"{key}\" which has no default value. (transform {alias})"
            ))
        })
}

fn opt(p: &Props, key: &str) -> Option<String> {
    p.get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Java regex replacement `$1` → Rust's `${1}`.
fn replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            let mut n = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            out.push_str(&format!("${{{n}}}"));
        } else if c == '\\' {
            if let Some(n) = chars.next() {
                if n == '$' {
                    out.push_str("$$");
                } else {
                    out.push(n);
                }
            }
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

fn full_regex(pattern: &str, what: &str) -> Result<Regex> {
    // Java's `matches` needs the whole string to match.
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| bad(format!("Invalid regex {pattern} for {what}: {e}")))
}

impl Chain {
    /// Builds the chain from a connector config; an unknown class or a bad
    /// setting is a config error naming it.
    pub fn from_config(config: &Props) -> Result<Chain> {
        let mut predicates = std::collections::BTreeMap::new();
        for alias in list(config, "predicates") {
            let p = with_prefix(config, &format!("predicates.{alias}."));
            let class = required(&p, "type", &alias)?;
            let simple = class.strip_prefix(PREDICATES_PKG).unwrap_or(&class);
            let pred = match simple {
                "TopicNameMatches" => {
                    Predicate::TopicNameMatches(full_regex(&required(&p, "pattern", &alias)?, "pattern")?)
                }
                "HasHeaderKey" => Predicate::HasHeaderKey(required(&p, "name", &alias)?),
                "RecordIsTombstone" => Predicate::RecordIsTombstone,
                _ => {
                    return Err(bad(format!(
                        "Invalid value {class} for configuration predicates.{alias}.type: Class {class} could not be found."
                    )))
                }
            };
            predicates.insert(alias, Arc::new(pred));
        }
        let mut steps = Vec::new();
        for alias in list(config, "transforms") {
            let p = with_prefix(config, &format!("transforms.{alias}."));
            let class = required(&p, "type", &alias)?;
            let simple = match class.as_str() {
                crate::unwrap::CLASS => "ExtractNewRecordState",
                c => c.strip_prefix(PKG).unwrap_or(c),
            };
            let (name, part) = match simple.split_once('$') {
                Some((n, "Key")) => (n, Part::Key),
                Some((n, "Value")) => (n, Part::Value),
                Some(_) => ("", Part::Value),
                None => (simple, Part::Value),
            };
            let fields = |k: &str| list(&p, k);
            let kind = match name {
                "Filter" => Kind::Filter,
                "RegexRouter" => Kind::RegexRouter {
                    regex: full_regex(&required(&p, "regex", &alias)?, "regex")?,
                    replacement: replacement(&required(&p, "replacement", &alias)?),
                },
                "InsertField" => Kind::InsertField {
                    topic: opt(&p, "topic.field"),
                    partition: opt(&p, "partition.field"),
                    offset: opt(&p, "offset.field"),
                    timestamp: opt(&p, "timestamp.field"),
                    static_field: opt(&p, "static.field")
                        .map(|f| (f, opt(&p, "static.value").unwrap_or_default())),
                },
                "ReplaceField" => Kind::ReplaceField {
                    exclude: [fields("exclude"), fields("blacklist")].concat(),
                    include: [fields("include"), fields("whitelist")].concat(),
                    renames: fields("renames")
                        .iter()
                        .map(|r| {
                            r.split_once(':')
                                .map(|(a, b)| (a.to_string(), b.to_string()))
                                .ok_or_else(|| {
                                    bad(format!("Invalid rename mapping: {r} (transform {alias})"))
                                })
                        })
                        .collect::<Result<_>>()?,
                },
                "MaskField" => Kind::MaskField {
                    fields: fields("fields"),
                    replacement: opt(&p, "replacement"),
                },
                "ValueToKey" => Kind::ValueToKey {
                    fields: fields("fields"),
                },
                "ExtractField" => Kind::ExtractField {
                    field: required(&p, "field", &alias)?,
                },
                "HoistField" => Kind::HoistField {
                    field: required(&p, "field", &alias)?,
                },
                "InsertHeader" => Kind::InsertHeader {
                    header: required(&p, "header", &alias)?,
                    value: required(&p, "value.literal", &alias)?,
                },
                "DropHeaders" => Kind::DropHeaders {
                    headers: fields("headers"),
                },
                "SetSchemaMetadata" => Kind::SetSchemaMetadata {
                    name: opt(&p, "schema.name"),
                    version: opt(&p, "schema.version").and_then(|v| v.parse().ok()),
                },
                "Cast" => cast_config(&p, &alias)?,
                "Flatten" => Kind::Flatten {
                    delimiter: p.get("delimiter").cloned().unwrap_or_else(|| ".".into()),
                },
                "HeaderFrom" => {
                    let (fields, headers) = (fields("fields"), fields("headers"));
                    if fields.len() != headers.len() {
                        return Err(bad(format!(
                            "'fields' config must have the same number of elements as 'headers' config. (transform {alias})"
                        )));
                    }
                    let moving = match required(&p, "operation", &alias)?.as_str() {
                        "move" => true,
                        "copy" => false,
                        other => {
                            return Err(bad(format!(
                                "Invalid value {other} for configuration operation: String must be one of: move, copy (transform {alias})"
                            )))
                        }
                    };
                    Kind::HeaderFrom {
                        fields,
                        headers,
                        moving,
                        replace_null_with_default: null_default(&p),
                    }
                }
                "TimestampConverter" => timestamp_converter_config(&p, &alias)?,
                "ExtractNewRecordState" if class == crate::unwrap::CLASS => Kind::Unwrap(Box::new(
                    crate::unwrap::ExtractNewRecordState::from_props(&p)?,
                )),
                "TimestampRouter" => Kind::TimestampRouter {
                    topic_format: opt(&p, "topic.format")
                        .unwrap_or_else(|| "${topic}-${timestamp}".into()),
                    timestamp_format: Pattern::parse(
                        &opt(&p, "timestamp.format").unwrap_or_else(|| "yyyyMMdd".into()),
                    )?,
                },
                _ => {
                    return Err(bad(format!(
                        "Invalid value {class} for configuration transforms.{alias}.type: Class {class} could not be found."
                    )))
                }
            };
            let predicate = match opt(&p, "predicate") {
                None => None,
                Some(name) => {
                    let pred = predicates.get(&name).cloned().ok_or_else(|| {
                        bad(format!(
                            "Invalid value {name} for configuration transforms.{alias}.predicate: the predicate is not defined"
                        ))
                    })?;
                    Some((pred, opt(&p, "negate").as_deref() == Some("true")))
                }
            };
            steps.push(Step {
                kind,
                part,
                predicate,
            });
        }
        Ok(Chain { steps })
    }

    /// Whether the chain does nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every step; `None` when a step dropped the record.
    /// `kafka_offset` is the record's offset for sinks (InsertField's
    /// `offset.field`).
    pub fn apply(
        &self,
        mut r: ConnectRecord,
        kafka_offset: Option<i64>,
    ) -> Result<Option<ConnectRecord>> {
        for step in &self.steps {
            if let Some((pred, negate)) = &step.predicate {
                if pred.test(&r) == *negate {
                    continue;
                }
            }
            match step.apply(r, kafka_offset)? {
                Some(next) => r = next,
                None => return Ok(None),
            }
        }
        Ok(Some(r))
    }
}

/// A struct field or map entry: name, schema (structs only), value.
type FieldValue = (String, Option<Arc<Schema>>, Value);

/// A value's map entries or struct fields.
fn fields_of(d: &SchemaAndValue) -> Result<Vec<FieldValue>> {
    match (&d.schema, &d.value) {
        (Some(_), Value::Struct(s)) => Ok(s
            .schema
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    Some(f.schema.clone()),
                    s.values[f.index].clone(),
                )
            })
            .collect()),
        (None, Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| {
                k.as_str()
                    .map(|k| (k.to_string(), None, v.clone()))
                    .ok_or_else(|| {
                        ConnectError::data("Only Map objects with String keys are supported")
                    })
            })
            .collect(),
        (Some(s), _) if s.ty != Type::Struct => Err(ConnectError::data(format!(
            "Only Struct objects supported for [field insertion], found: {}",
            d.value.type_name()
        ))),
        _ => Err(ConnectError::data(format!(
            "Only Map objects supported in absence of schema for [field insertion], found: {}",
            d.value.type_name()
        ))),
    }
}

/// Builds a struct (with schema) or a map (schemaless) from fields.
fn build(
    schemaful: bool,
    base: Option<&Schema>,
    fields: Vec<FieldValue>,
) -> Result<SchemaAndValue> {
    if !schemaful {
        return Ok(SchemaAndValue::schemaless(Value::Map(
            fields
                .into_iter()
                .map(|(k, _, v)| (Value::String(k), v))
                .collect(),
        )));
    }
    let mut schema = Schema::structure(
        fields
            .iter()
            .map(|(k, s, _)| {
                (
                    k.clone(),
                    s.as_deref()
                        .cloned()
                        .unwrap_or_else(|| Schema::of(Type::String).optional()),
                )
            })
            .collect(),
    );
    if let Some(b) = base {
        schema.name = b.name.clone();
        schema.version = b.version;
        schema.doc = b.doc.clone();
        schema.optional = b.optional;
    }
    let schema = Arc::new(schema);
    let values = fields.into_iter().map(|(_, _, v)| v).collect();
    Ok(SchemaAndValue {
        schema: Some(schema.clone()),
        value: Value::Struct(Struct { schema, values }),
    })
}

fn masked(v: &Value, replacement: Option<&str>) -> Result<Value> {
    Ok(match (v, replacement) {
        (Value::Null, _) => Value::Null,
        (Value::String(_), r) => Value::String(r.unwrap_or("").to_string()),
        (Value::Boolean(_), None) => Value::Boolean(false),
        (Value::Int8(_), None) => Value::Int8(0),
        (Value::Int16(_), None) => Value::Int16(0),
        (Value::Int32(_), None) => Value::Int32(0),
        (Value::Int64(_), None) => Value::Int64(0),
        (Value::Float32(_), None) => Value::Float32(0.0),
        (Value::Float64(_), None) => Value::Float64(0.0),
        (Value::Int8(_), Some(r)) => Value::Int8(r.parse().map_err(|_| rep(r))?),
        (Value::Int16(_), Some(r)) => Value::Int16(r.parse().map_err(|_| rep(r))?),
        (Value::Int32(_), Some(r)) => Value::Int32(r.parse().map_err(|_| rep(r))?),
        (Value::Int64(_), Some(r)) => Value::Int64(r.parse().map_err(|_| rep(r))?),
        (Value::Float32(_), Some(r)) => Value::Float32(r.parse().map_err(|_| rep(r))?),
        (Value::Float64(_), Some(r)) => Value::Float64(r.parse().map_err(|_| rep(r))?),
        (Value::Array(_), None) => Value::Array(Vec::new()),
        (Value::Map(_), None) => Value::Map(Vec::new()),
        (other, _) => {
            return Err(ConnectError::data(format!(
                "Cannot mask value of type {}",
                other.type_name()
            )))
        }
    })
}

fn rep(r: &str) -> ConnectError {
    ConnectError::data(format!("Unable to convert {r} to the field's type"))
}

fn null_default(p: &Props) -> bool {
    opt(p, "replace.null.with.default").as_deref() != Some("false")
}

fn cast_type(name: &str) -> Option<Type> {
    let t = Type::parse(name)?;
    (t.is_primitive() && t != Type::Bytes).then_some(t)
}

fn cast_config(p: &Props, alias: &str) -> Result<Kind> {
    let spec = list(p, "spec");
    if spec.is_empty() {
        return Err(bad(format!(
            "Must specify at least one field to cast. (transform {alias})"
        )));
    }
    let invalid = |t: &str| {
        bad(format!(
            "Invalid type found in casting spec: {t} (transform {alias})"
        ))
    };
    let mut whole = None;
    let mut fields = Vec::new();
    for entry in &spec {
        match entry.split_once(':') {
            Some((f, t)) => fields.push((
                f.trim().to_string(),
                cast_type(t.trim()).ok_or_else(|| invalid(t.trim()))?,
            )),
            None => whole = Some(cast_type(entry).ok_or_else(|| invalid(entry))?),
        }
    }
    if whole.is_some() && spec.len() > 1 {
        return Err(bad(format!(
            "Cast transformations that specify a type to cast the entire value to may ony specify a single cast in their spec (transform {alias})"
        )));
    }
    Ok(Kind::Cast {
        whole,
        fields,
        replace_null_with_default: null_default(p),
    })
}

fn timestamp_converter_config(p: &Props, alias: &str) -> Result<Kind> {
    let target = match required(p, "target.type", alias)?.as_str() {
        "string" => TsType::String,
        "unix" => TsType::Unix,
        "Date" => TsType::Date,
        "Time" => TsType::Time,
        "Timestamp" => TsType::Timestamp,
        other => {
            return Err(bad(format!(
                "Unknown timestamp type in TimestampConverter: {other}. Valid values are string, unix, Date, Time, Timestamp."
            )))
        }
    };
    let format = match opt(p, "format") {
        Some(f) => Some(Pattern::parse(&f).map_err(|_| {
            bad(format!(
                "TimestampConverter requires a SimpleDateFormat-compatible pattern for string timestamps: {f}"
            ))
        })?),
        None if target == TsType::String => {
            return Err(bad(
                "TimestampConverter requires format option to be specified when using string timestamps",
            ))
        }
        None => None,
    };
    let precision = match opt(p, "unix.precision").as_deref().unwrap_or("milliseconds") {
        "seconds" => Precision::Seconds,
        "milliseconds" => Precision::Milliseconds,
        "microseconds" => Precision::Microseconds,
        "nanoseconds" => Precision::Nanoseconds,
        other => {
            return Err(bad(format!(
                "Invalid value {other} for configuration unix.precision: String must be one of: nanoseconds, microseconds, milliseconds, seconds (transform {alias})"
            )))
        }
    };
    Ok(Kind::TimestampConverter {
        field: opt(p, "field"),
        target,
        format,
        precision,
        replace_null_with_default: null_default(p),
    })
}

/// The default of `schema` for a null value, when the transform replaces
/// nulls with defaults.
fn or_default(v: Value, schema: &Schema, replace: bool) -> Value {
    match (v, &schema.default) {
        (Value::Null, Some(d)) if replace => d.clone(),
        (v, _) => v,
    }
}

/// A schema that keeps `orig`'s name, version, doc and parameters (Kafka's
/// `SchemaUtil.copySchemaBasics`) over type `ty`.
fn basics(orig: &Schema, ty: Type) -> Schema {
    Schema {
        name: orig.name.clone(),
        version: orig.version,
        doc: orig.doc.clone(),
        parameters: orig.parameters.clone(),
        ..Schema::of(ty)
    }
}

/// A logical value's physical number as Kafka's Cast sees it (dates and
/// times in their INT32/INT64 encodings; a decimal as its number).
enum Num {
    Int(i64),
    Float(f64),
}

fn decimal_f64(unscaled: &[u8], scale: i32) -> f64 {
    let mut v: i128 = if unscaled.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in unscaled.iter().take(16) {
        v = (v << 8) | i128::from(*b);
    }
    v as f64 / 10f64.powi(scale)
}

fn cast_err(v: &Value) -> ConnectError {
    ConnectError::data(format!(
        "Unexpected type in Cast transformation: class {}",
        v.type_name()
    ))
}

/// Kafka's `Cast.castValueToType`: Java's narrowing conversions for
/// numbers, 1/0 for booleans, `parseX` for strings, `toString` (ISO dates,
/// base64 bytes) for STRING.
fn cast_value(schema: Option<&Schema>, v: &Value, to: Type) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let from = schema.map(|s| s.ty).or_else(|| v.inferred_type());
    if !from.is_some_and(Type::is_primitive) {
        return Err(ConnectError::data(format!(
            "Cast transformation does not support casting from {}; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]",
            from.map_or("null", Type::name)
        )));
    }
    let logical_name = schema.and_then(|s| s.name.as_deref());
    if to == Type::String {
        let text = match (logical_name, v) {
            (Some(logical::DATE), Value::Int32(d)) => {
                crate::timefmt::iso(i64::from(*d) * MS_PER_DAY)
            }
            (Some(logical::TIME), Value::Int32(t)) => crate::timefmt::iso(i64::from(*t)),
            (Some(logical::TIMESTAMP), Value::Int64(t)) => crate::timefmt::iso(*t),
            (Some(logical::DECIMAL), Value::Bytes(b)) => {
                let scale = schema.and_then(Schema::decimal_scale).unwrap_or(0);
                crate::json::Json::Double(decimal_f64(b, scale)).to_text()
            }
            (_, Value::Bytes(b)) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(b)
            }
            (_, other) => crate::converter::java_to_string(other),
        };
        return Ok(Value::String(text));
    }
    let num = match v {
        Value::Int8(x) => Num::Int(i64::from(*x)),
        Value::Int16(x) => Num::Int(i64::from(*x)),
        Value::Int32(x) => Num::Int(i64::from(*x)),
        Value::Int64(x) => Num::Int(*x),
        Value::Float32(x) => Num::Float(f64::from(*x)),
        Value::Float64(x) => Num::Float(*x),
        Value::Boolean(b) => Num::Int(i64::from(*b)),
        Value::Bytes(b) if logical_name == Some(logical::DECIMAL) => Num::Float(decimal_f64(
            b,
            schema.and_then(Schema::decimal_scale).unwrap_or(0),
        )),
        Value::String(s) => {
            let s = s.as_str();
            let parse_err = || {
                ConnectError::data(format!(
                    "Cast transformation cannot parse \"{s}\" as {}",
                    to.name()
                ))
            };
            return Ok(match to {
                Type::Int8 => Value::Int8(s.parse().map_err(|_| parse_err())?),
                Type::Int16 => Value::Int16(s.parse().map_err(|_| parse_err())?),
                Type::Int32 => Value::Int32(s.parse().map_err(|_| parse_err())?),
                Type::Int64 => Value::Int64(s.parse().map_err(|_| parse_err())?),
                Type::Float32 => Value::Float32(s.trim().parse().map_err(|_| parse_err())?),
                Type::Float64 => Value::Float64(s.trim().parse().map_err(|_| parse_err())?),
                Type::Boolean => Value::Boolean(s.eq_ignore_ascii_case("true")),
                _ => return Err(cast_err(v)),
            });
        }
        other => return Err(cast_err(other)),
    };
    // Java's narrowing: floats to int (saturating), then integer truncation.
    let as_long = |n: &Num| match n {
        Num::Int(i) => *i,
        Num::Float(f) => *f as i64,
    };
    let as_int = |n: &Num| match n {
        Num::Int(i) => *i as i32,
        Num::Float(f) => *f as i32,
    };
    Ok(match to {
        Type::Int8 => Value::Int8(as_int(&num) as i8),
        Type::Int16 => Value::Int16(as_int(&num) as i16),
        Type::Int32 => Value::Int32(as_int(&num)),
        Type::Int64 => Value::Int64(as_long(&num)),
        Type::Float32 => Value::Float32(match num {
            Num::Int(i) => i as f32,
            Num::Float(f) => f as f32,
        }),
        Type::Float64 => Value::Float64(match num {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }),
        Type::Boolean => Value::Boolean(as_long(&num) != 0),
        _ => return Err(cast_err(v)),
    })
}

/// The schema a Cast of `orig` to `to` gives: the new type, optional and
/// with a cast default as the original.
fn cast_schema(orig: &Schema, to: Type) -> Result<Schema> {
    let mut s = Schema::of(to);
    s.optional = orig.optional;
    if let Some(d) = &orig.default {
        s.default = Some(cast_value(Some(orig), d, to)?);
    }
    Ok(s)
}

/// Flatten's schema: nested structs' fields lifted with joined names,
/// optional under an optional parent.
fn flatten_schema(
    schema: &Schema,
    prefix: &str,
    delimiter: &str,
    optional: bool,
    out: &mut Vec<(String, Schema)>,
) {
    for f in &schema.fields {
        let name = if prefix.is_empty() {
            f.name.clone()
        } else {
            format!("{prefix}{delimiter}{}", f.name)
        };
        let opt = optional || f.schema.optional;
        if f.schema.ty == Type::Struct {
            flatten_schema(&f.schema, &name, delimiter, opt, out);
        } else {
            let mut s = (*f.schema).clone();
            s.optional = opt;
            out.push((name, s));
        }
    }
}

fn flatten_struct(s: Option<&Struct>, schema: &Schema, out: &mut Vec<Value>) {
    for f in &schema.fields {
        let v = s.map_or(Value::Null, |s| {
            or_default(s.values[f.index].clone(), &f.schema, true)
        });
        if f.schema.ty == Type::Struct {
            let inner = match &v {
                Value::Struct(inner) => Some(inner),
                _ => None,
            };
            flatten_struct(inner, &f.schema, out);
        } else {
            out.push(v);
        }
    }
}

fn flatten_map(
    entries: &[(Value, Value)],
    prefix: &str,
    delimiter: &str,
    out: &mut Vec<(Value, Value)>,
) -> Result<()> {
    for (k, v) in entries {
        let k = k.as_str().ok_or_else(|| {
            ConnectError::data("Only Map objects with String keys are supported for [flattening]")
        })?;
        let name = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}{delimiter}{k}")
        };
        match v {
            Value::Map(inner) => flatten_map(inner, &name, delimiter, out)?,
            Value::Struct(_) => {
                return Err(ConnectError::data(format!(
                    "Flatten transformation does not support class org.apache.kafka.connect.data.Struct for record without schemas (for field {name})."
                )))
            }
            other => out.push((Value::String(name), other.clone())),
        }
    }
    Ok(())
}

/// The milliseconds a TimestampConverter input stands for, and which kind
/// it was.
fn timestamp_in(
    schema: Option<&Schema>,
    v: &Value,
    format: Option<&Pattern>,
    precision: Precision,
) -> Result<i64> {
    let kind = match schema {
        Some(s) => match s.name.as_deref() {
            Some(logical::TIMESTAMP) => TsType::Timestamp,
            Some(logical::DATE) => TsType::Date,
            Some(logical::TIME) => TsType::Time,
            _ if s.ty == Type::String => TsType::String,
            _ if s.ty == Type::Int64 => TsType::Unix,
            _ => {
                return Err(ConnectError::data(format!(
                    "Schema {} does not correspond to a known timestamp type format",
                    s.ty.name()
                )))
            }
        },
        None => match v {
            Value::String(_) => TsType::String,
            Value::Int64(_) => TsType::Unix,
            other => {
                return Err(ConnectError::data(format!(
                    "TimestampConverter does not support {} objects as timestamps",
                    other.type_name()
                )))
            }
        },
    };
    let bad = || {
        ConnectError::data(format!(
            "Expected a timestamp value, found {}",
            v.type_name()
        ))
    };
    Ok(match kind {
        TsType::String => {
            let text = v.as_str().ok_or_else(bad)?;
            let p = format.ok_or_else(|| {
                ConnectError::data("TimestampConverter requires format option to be specified when using string timestamps")
            })?;
            p.parse_ms(text).ok_or_else(|| {
                ConnectError::data(format!(
                    "Could not parse timestamp: value ({text}) does not match pattern"
                ))
            })?
        }
        TsType::Unix => precision.to_ms(v.as_i64().ok_or_else(bad)?),
        TsType::Date => v.as_i64().ok_or_else(bad)? * MS_PER_DAY,
        TsType::Time | TsType::Timestamp => v.as_i64().ok_or_else(bad)?,
    })
}

fn timestamp_schema(target: TsType, optional: bool) -> Schema {
    let logical = |ty: Type, name: &str| {
        let mut s = Schema::of(ty).named(name);
        s.version = Some(1);
        s
    };
    let mut s = match target {
        TsType::String => Schema::of(Type::String),
        TsType::Unix => Schema::of(Type::Int64),
        TsType::Date => logical(Type::Int32, logical::DATE),
        TsType::Time => logical(Type::Int32, logical::TIME),
        TsType::Timestamp => logical(Type::Int64, logical::TIMESTAMP),
    };
    s.optional = optional;
    s
}

fn timestamp_out(ms: i64, target: TsType, format: Option<&Pattern>, precision: Precision) -> Value {
    match target {
        TsType::String => Value::String(format.map(|p| p.format(ms)).unwrap_or_default()),
        TsType::Unix => Value::Int64(precision.of_ms(ms)),
        TsType::Date => Value::Int32(ms.div_euclid(MS_PER_DAY) as i32),
        TsType::Time => Value::Int32(ms.rem_euclid(MS_PER_DAY) as i32),
        TsType::Timestamp => Value::Int64(ms),
    }
}

impl Step {
    fn apply(
        &self,
        mut r: ConnectRecord,
        kafka_offset: Option<i64>,
    ) -> Result<Option<ConnectRecord>> {
        let target = |r: &mut ConnectRecord| -> SchemaAndValue {
            match self.part {
                Part::Key => std::mem::replace(&mut r.key, SchemaAndValue::null()),
                Part::Value => std::mem::replace(&mut r.value, SchemaAndValue::null()),
            }
        };
        let put = |r: &mut ConnectRecord, d: SchemaAndValue| match self.part {
            Part::Key => r.key = d,
            Part::Value => r.value = d,
        };
        match &self.kind {
            Kind::Filter => return Ok(None),
            Kind::Unwrap(t) => return t.apply(r),
            Kind::RegexRouter { regex, replacement } => {
                if regex.is_match(&r.topic) {
                    r.topic = regex.replace(&r.topic, replacement.as_str()).into_owned();
                }
            }
            Kind::InsertHeader { header, value } => r.headers.push(Header {
                key: header.clone(),
                value: SchemaAndValue {
                    schema: Some(Arc::new(Schema::of(Type::String))),
                    value: Value::String(value.clone()),
                },
            }),
            Kind::DropHeaders { headers } => r.headers.retain(|h| !headers.contains(&h.key)),
            Kind::TimestampRouter {
                topic_format,
                timestamp_format,
            } => {
                let ts = r.timestamp.ok_or_else(|| {
                    ConnectError::data(format!("Timestamp missing on record: {}", r.topic))
                })?;
                r.topic = topic_format
                    .replace("${topic}", &r.topic)
                    .replace("${timestamp}", &timestamp_format.format(ts));
            }
            Kind::Cast {
                whole,
                fields,
                replace_null_with_default,
            } => {
                let d = target(&mut r);
                if d.value.is_null() {
                    put(&mut r, d);
                    return Ok(Some(r));
                }
                let out = match (whole, &d.schema, &d.value) {
                    (Some(to), Some(s), v) => SchemaAndValue {
                        value: cast_value(Some(s), v, *to)?,
                        schema: Some(Arc::new(cast_schema(s, *to)?)),
                    },
                    (Some(to), None, v) => SchemaAndValue::schemaless(cast_value(None, v, *to)?),
                    (None, None, Value::Map(entries)) => SchemaAndValue::schemaless(Value::Map(
                        entries
                            .iter()
                            .map(|(k, v)| {
                                let to = k
                                    .as_str()
                                    .and_then(|k| fields.iter().find(|(f, _)| f == k))
                                    .map(|(_, t)| *t);
                                Ok((k.clone(), match to {
                                    Some(t) => cast_value(None, v, t)?,
                                    None => v.clone(),
                                }))
                            })
                            .collect::<Result<_>>()?,
                    )),
                    (None, Some(schema), Value::Struct(st)) => {
                        let mut out_fields = Vec::new();
                        let mut values = Vec::new();
                        for f in &schema.fields {
                            let v = st.values[f.index].clone();
                            match fields.iter().find(|(n, _)| *n == f.name) {
                                Some((_, to)) => {
                                    let v = or_default(v, &f.schema, *replace_null_with_default);
                                    values.push(cast_value(Some(&f.schema), &v, *to)?);
                                    out_fields.push((f.name.clone(), cast_schema(&f.schema, *to)?));
                                }
                                None => {
                                    values.push(v);
                                    out_fields.push((f.name.clone(), (*f.schema).clone()));
                                }
                            }
                        }
                        let mut s = basics(schema, Type::Struct);
                        s.fields = Schema::structure(out_fields).fields;
                        s.optional = schema.optional;
                        let s = Arc::new(s);
                        SchemaAndValue {
                            schema: Some(s.clone()),
                            value: Value::Struct(Struct { schema: s, values }),
                        }
                    }
                    (None, Some(_), v) => {
                        return Err(ConnectError::data(format!(
                            "Only Struct objects supported for [cast types], found: {}",
                            v.type_name()
                        )))
                    }
                    (None, None, v) => {
                        return Err(ConnectError::data(format!(
                            "Only Map objects supported in absence of schema for [cast types], found: {}",
                            v.type_name()
                        )))
                    }
                };
                put(&mut r, out);
            }
            Kind::Flatten { delimiter } => {
                let d = target(&mut r);
                let out = match (&d.schema, &d.value) {
                    (_, Value::Null) => d,
                    (Some(schema), Value::Struct(st)) => {
                        let mut fields = Vec::new();
                        flatten_schema(schema, "", delimiter, schema.optional, &mut fields);
                        let mut values = Vec::new();
                        flatten_struct(Some(st), schema, &mut values);
                        let mut s = basics(schema, Type::Struct);
                        s.fields = Schema::structure(fields).fields;
                        let s = Arc::new(s);
                        SchemaAndValue {
                            schema: Some(s.clone()),
                            value: Value::Struct(Struct { schema: s, values }),
                        }
                    }
                    (None, Value::Map(entries)) => {
                        let mut out = Vec::new();
                        flatten_map(entries, "", delimiter, &mut out)?;
                        SchemaAndValue::schemaless(Value::Map(out))
                    }
                    (Some(_), v) => {
                        return Err(ConnectError::data(format!(
                            "Only Struct objects supported for [flattening], found: {}",
                            v.type_name()
                        )))
                    }
                    (None, v) => {
                        return Err(ConnectError::data(format!(
                            "Only Map objects supported in absence of schema for [flattening], found: {}",
                            v.type_name()
                        )))
                    }
                };
                put(&mut r, out);
            }
            Kind::HeaderFrom {
                fields,
                headers,
                moving,
                replace_null_with_default,
            } => {
                let d = target(&mut r);
                // As MaskField: a schemaless null is not a map.
                if d.value.is_null() && d.schema.is_some() {
                    put(&mut r, d);
                    return Ok(Some(r));
                }
                let all = fields_of(&d)?;
                for (field, header) in fields.iter().zip(headers) {
                    let found = all.iter().find(|(k, _, _)| k == field);
                    let value = match (found, &d.schema) {
                        (Some((_, Some(s), v)), Some(_)) => SchemaAndValue {
                            schema: Some(s.clone()),
                            value: or_default(v.clone(), s, *replace_null_with_default),
                        },
                        (Some((_, _, v)), None) => SchemaAndValue::schemaless(v.clone()),
                        (None, None) => SchemaAndValue::null(),
                        _ => {
                            return Err(ConnectError::data(format!(
                                "{field} is not a valid field name"
                            )))
                        }
                    };
                    r.headers.push(Header {
                        key: header.clone(),
                        value,
                    });
                }
                let out = if *moving {
                    let kept = all
                        .into_iter()
                        .filter(|(k, _, _)| !fields.contains(k))
                        .collect();
                    build(d.schema.is_some(), d.schema.as_deref(), kept)?
                } else {
                    d
                };
                put(&mut r, out);
            }
            Kind::TimestampConverter {
                field,
                target: to,
                format,
                precision,
                replace_null_with_default,
            } => {
                let d = target(&mut r);
                let convert = |schema: Option<&Schema>, v: &Value| -> Result<Value> {
                    if v.is_null() {
                        return Ok(Value::Null);
                    }
                    let ms = timestamp_in(schema, v, format.as_ref(), *precision)?;
                    Ok(timestamp_out(ms, *to, format.as_ref(), *precision))
                };
                let out = match field {
                    None => match &d.schema {
                        Some(s) => SchemaAndValue {
                            value: convert(
                                Some(s),
                                &or_default(d.value.clone(), s, *replace_null_with_default),
                            )?,
                            schema: Some(Arc::new(timestamp_schema(*to, s.optional))),
                        },
                        None => SchemaAndValue::schemaless(convert(None, &d.value)?),
                    },
                    Some(_) if d.value.is_null() => d,
                    Some(name) => {
                        let all = fields_of(&d)?
                            .into_iter()
                            .map(|(k, s, v)| {
                                if k != *name {
                                    return Ok((k, s, v));
                                }
                                match s {
                                    Some(s) => {
                                        let v = or_default(v, &s, *replace_null_with_default);
                                        let v = convert(Some(&s), &v)?;
                                        Ok((
                                            k,
                                            Some(Arc::new(timestamp_schema(*to, s.optional))),
                                            v,
                                        ))
                                    }
                                    None => Ok((k, None, convert(None, &v)?)),
                                }
                            })
                            .collect::<Result<Vec<_>>>()?;
                        build(d.schema.is_some(), d.schema.as_deref(), all)?
                    }
                };
                put(&mut r, out);
            }
            Kind::SetSchemaMetadata { name, version } => {
                let mut d = target(&mut r);
                if let Some(s) = &d.schema {
                    let mut s = (**s).clone();
                    if name.is_some() {
                        s.name = name.clone();
                    }
                    if version.is_some() {
                        s.version = *version;
                    }
                    let s = Arc::new(s);
                    if let Value::Struct(st) = &mut d.value {
                        st.schema = s.clone();
                    }
                    d.schema = Some(s);
                }
                put(&mut r, d);
            }
            Kind::ExtractField { field } => {
                let d = target(&mut r);
                if d.value.is_null() {
                    put(&mut r, d);
                    return Ok(Some(r));
                }
                let out = fields_of(&d)?
                    .into_iter()
                    .find(|(k, _, _)| k == field)
                    .map(|(_, s, v)| SchemaAndValue {
                        schema: s,
                        value: v,
                    })
                    .ok_or_else(|| ConnectError::data(format!("Unknown field: {field}")));
                let out = match (out, &d.schema) {
                    (Ok(o), _) => o,
                    // Schemaless maps without the field give null, as Kafka.
                    (Err(_), None) => SchemaAndValue::null(),
                    (Err(e), Some(_)) => return Err(e),
                };
                put(&mut r, out);
            }
            Kind::HoistField { field } => {
                let d = target(&mut r);
                let out = match &d.schema {
                    Some(s) => build(true, None, vec![(field.clone(), Some(s.clone()), d.value)])?,
                    None => build(false, None, vec![(field.clone(), None, d.value)])?,
                };
                put(&mut r, out);
            }
            Kind::ValueToKey { fields } => {
                let d = r.value.clone();
                let all = fields_of(&d)?;
                let picked = fields
                    .iter()
                    .map(|f| {
                        all.iter()
                            .find(|(k, _, _)| k == f)
                            .cloned()
                            .ok_or_else(|| ConnectError::data(format!("Unknown field: {f}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                r.key = build(d.schema.is_some(), None, picked)?;
            }
            Kind::ReplaceField {
                exclude,
                include,
                renames,
            } => {
                let d = target(&mut r);
                if d.value.is_null() {
                    put(&mut r, d);
                    return Ok(Some(r));
                }
                let kept = fields_of(&d)?
                    .into_iter()
                    .filter(|(k, _, _)| {
                        !exclude.contains(k) && (include.is_empty() || include.contains(k))
                    })
                    .map(|(k, s, v)| {
                        let k = renames
                            .iter()
                            .find(|(from, _)| *from == k)
                            .map(|(_, to)| to.clone())
                            .unwrap_or(k);
                        (k, s, v)
                    })
                    .collect();
                let out = build(d.schema.is_some(), d.schema.as_deref(), kept)?;
                put(&mut r, out);
            }
            Kind::MaskField {
                fields,
                replacement,
            } => {
                let d = target(&mut r);
                // Kafka refuses a schemaless null (it requires a map).
                if d.value.is_null() && d.schema.is_some() {
                    put(&mut r, d);
                    return Ok(Some(r));
                }
                let all = fields_of(&d)?
                    .into_iter()
                    .map(|(k, s, v)| {
                        let v = if fields.contains(&k) {
                            masked(&v, replacement.as_deref())?
                        } else {
                            v
                        };
                        Ok((k, s, v))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out = build(d.schema.is_some(), d.schema.as_deref(), all)?;
                put(&mut r, out);
            }
            Kind::InsertField {
                topic,
                partition,
                offset,
                timestamp,
                static_field,
            } => {
                let d = target(&mut r);
                // Tombstones pass untouched, as Kafka's.
                if d.value.is_null() {
                    put(&mut r, d);
                    return Ok(Some(r));
                }
                let schemaful = d.schema.is_some();
                let mut all = fields_of(&d)?;
                let opt_schema = |t: Type| Some(Arc::new(Schema::of(t).optional()));
                if let Some(f) = topic {
                    all.push((
                        f.clone(),
                        opt_schema(Type::String),
                        Value::String(r.topic.clone()),
                    ));
                }
                if let Some(f) = partition {
                    all.push((
                        f.clone(),
                        opt_schema(Type::Int32),
                        r.partition.map_or(Value::Null, Value::Int32),
                    ));
                }
                if let (Some(f), Some(o)) = (offset, kafka_offset) {
                    all.push((f.clone(), opt_schema(Type::Int64), Value::Int64(o)));
                }
                if let Some(f) = timestamp {
                    let mut s = Schema::of(Type::Int64).optional();
                    s.name = Some(crate::data::logical::TIMESTAMP.into());
                    s.version = Some(1);
                    all.push((
                        f.clone(),
                        Some(Arc::new(s)),
                        r.timestamp.map_or(Value::Null, Value::Int64),
                    ));
                }
                if let Some((f, v)) = static_field {
                    all.push((
                        f.clone(),
                        opt_schema(Type::String),
                        Value::String(v.clone()),
                    ));
                }
                let out = build(schemaful, d.schema.as_deref(), all)?;
                put(&mut r, out);
            }
        }
        Ok(Some(r))
    }
}

/// Applies `chain` to one record given as JSON, the way `weir connect
/// transform` and the differential tests against Kafka's transforms do:
/// `{"topic", "partition", "offset", "timestamp", "key", "value",
/// "headers": [{"key", "value"}]}` in, with key, value and header values as
/// `conv` reads them; out the record with them as `conv` writes them (text
/// or null), `{"dropped": true}`, or `{"error": message}`.
pub fn apply_json(
    chain: &Chain,
    conv: &dyn crate::converter::Converter,
    record: &crate::json::Doc,
    offset: i64,
) -> crate::json::Json {
    use crate::json::{Doc, Json};
    let run = || -> Result<Option<ConnectRecord>> {
        let field = |d: &Doc, k: &str| d.get(k).cloned().unwrap_or(Doc::Null);
        let topic = field(record, "topic")
            .as_str()
            .unwrap_or("topic")
            .to_string();
        // The record's key and value are given as the JSON the converter
        // reads, written again in their document order.
        let read = |v: &Doc| -> Result<SchemaAndValue> {
            if v.is_null() {
                return conv.deserialize(&topic, None);
            }
            conv.deserialize(&topic, Some(v.to_text().as_bytes()))
        };
        let mut r = ConnectRecord::new(&topic, read(&field(record, "value"))?);
        r.key = read(&field(record, "key"))?;
        r.partition = Some(
            field(record, "partition")
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
        );
        r.timestamp = field(record, "timestamp").as_i64();
        if let Some(hs) = record.get("headers").and_then(Doc::as_array) {
            for h in hs {
                r.headers.push(Header {
                    key: field(h, "key").as_str().unwrap_or_default().to_string(),
                    value: read(&field(h, "value"))?,
                });
            }
        }
        let offset = field(record, "offset").as_i64().unwrap_or(offset);
        chain.apply(r, Some(offset))
    };
    let text = |topic: &str, d: &SchemaAndValue| -> Result<Json> {
        Ok(match conv.serialize(topic, d)? {
            Some(b) => Json::Str(String::from_utf8_lossy(&b).into_owned()),
            None => Json::Null,
        })
    };
    let describe = |r: &ConnectRecord| -> Result<Json> {
        let headers = r
            .headers
            .iter()
            .map(|h| {
                Ok(Json::obj([
                    ("key", Json::str(h.key.clone())),
                    ("value", text(&r.topic, &h.value)?),
                ]))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Json::obj([
            ("topic", Json::str(r.topic.clone())),
            (
                "partition",
                r.partition.map_or(Json::Null, |p| Json::Int(i64::from(p))),
            ),
            ("timestamp", r.timestamp.map_or(Json::Null, Json::Int)),
            ("key", text(&r.topic, &r.key)?),
            ("value", text(&r.topic, &r.value)?),
            ("headers", Json::Arr(headers)),
        ]))
    };
    match run().and_then(|r| r.as_ref().map(describe).transpose()) {
        Ok(Some(j)) => j,
        Ok(None) => Json::obj([("dropped", Json::Bool(true))]),
        Err(e) => Json::obj([("error", Json::str(e.to_string()))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn map(pairs: &[(&str, Value)]) -> SchemaAndValue {
        SchemaAndValue::schemaless(Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::String(k.to_string()), v.clone()))
                .collect(),
        ))
    }

    #[test]
    fn a_chain_with_a_negated_predicate() {
        let chain = Chain::from_config(&cfg(&[
            ("transforms", "route,ins,drop"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.route.regex", "orders-(.*)"),
            ("transforms.route.replacement", "o-$1"),
            (
                "transforms.ins.type",
                "org.apache.kafka.connect.transforms.InsertField$Value",
            ),
            ("transforms.ins.topic.field", "t"),
            (
                "transforms.drop.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.drop.predicate", "keep-eu"),
            ("transforms.drop.negate", "true"),
            ("predicates", "keep-eu"),
            (
                "predicates.keep-eu.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            ),
            ("predicates.keep-eu.pattern", "o-eu"),
        ]))
        .unwrap();
        let rec = |topic: &str| {
            let mut r = ConnectRecord::new(topic, map(&[("id", Value::Int64(1))]));
            r.partition = Some(0);
            r
        };
        let out = chain.apply(rec("orders-eu"), None).unwrap().unwrap();
        assert_eq!(out.topic, "o-eu");
        assert_eq!(
            out.value.value.map_get("t"),
            Some(&Value::String("o-eu".into()))
        );
        assert!(chain.apply(rec("orders-us"), None).unwrap().is_none());
    }

    #[test]
    fn struct_fields_are_replaced_masked_and_moved_to_the_key() {
        let schema = Arc::new(Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int32)),
            ("ssn".into(), Schema::of(Type::String)),
            ("tmp".into(), Schema::of(Type::String)),
        ]));
        let mut s = Struct::new(schema.clone());
        s.put("id", Value::Int32(7)).unwrap();
        s.put("ssn", Value::String("123".into())).unwrap();
        s.put("tmp", Value::String("x".into())).unwrap();
        let value = SchemaAndValue {
            schema: Some(schema),
            value: Value::Struct(s),
        };
        let chain = Chain::from_config(&cfg(&[
            ("transforms", "rf,mask,key,ex"),
            (
                "transforms.rf.type",
                "org.apache.kafka.connect.transforms.ReplaceField$Value",
            ),
            ("transforms.rf.exclude", "tmp"),
            ("transforms.rf.renames", "id:user_id"),
            (
                "transforms.mask.type",
                "org.apache.kafka.connect.transforms.MaskField$Value",
            ),
            ("transforms.mask.fields", "ssn"),
            (
                "transforms.key.type",
                "org.apache.kafka.connect.transforms.ValueToKey",
            ),
            ("transforms.key.fields", "user_id"),
            (
                "transforms.ex.type",
                "org.apache.kafka.connect.transforms.ExtractField$Key",
            ),
            ("transforms.ex.field", "user_id"),
        ]))
        .unwrap();
        let out = chain
            .apply(ConnectRecord::new("t", value), None)
            .unwrap()
            .unwrap();
        let Value::Struct(v) = &out.value.value else {
            panic!("a struct")
        };
        assert_eq!(v.get("user_id"), Some(&Value::Int32(7)));
        assert_eq!(v.get("ssn"), Some(&Value::String(String::new())));
        assert_eq!(v.get("tmp"), None);
        assert_eq!(out.key.value, Value::Int32(7));
    }

    #[test]
    fn unknown_classes_and_missing_settings_are_config_errors() {
        let e = Chain::from_config(&cfg(&[
            ("transforms", "x"),
            ("transforms.x.type", "com.example.Nope"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("could not be found"), "{e}");
        let e = Chain::from_config(&cfg(&[
            ("transforms", "x"),
            (
                "transforms.x.type",
                "org.apache.kafka.connect.transforms.ExtractField$Value",
            ),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("\"field\""), "{e}");
        assert_eq!(replacement("a-$1-$$"), "a-${1}-$$$$");
    }
    #[test]
    fn cast_flatten_header_from_and_timestamps() {
        let inner = Schema::structure(vec![("zip".into(), Schema::of(Type::String))]).optional();
        let schema = Arc::new(Schema::structure(vec![
            ("id".into(), Schema::of(Type::String)),
            ("amount".into(), Schema::of(Type::Float64)),
            ("addr".into(), inner.clone()),
            ("ts".into(), Schema::of(Type::Int64)),
        ]));
        let mut addr = Struct::new(Arc::new(inner));
        addr.put("zip", Value::String("1234".into())).unwrap();
        let mut s = Struct::new(schema.clone());
        s.put("id", Value::String("42".into())).unwrap();
        s.put("amount", Value::Float64(-3.99)).unwrap();
        s.put("addr", Value::Struct(addr)).unwrap();
        s.put("ts", Value::Int64(1_709_210_096_789)).unwrap();
        let mut rec = ConnectRecord::new(
            "orders",
            SchemaAndValue {
                schema: Some(schema),
                value: Value::Struct(s),
            },
        );
        rec.timestamp = Some(1_709_210_096_789);
        let chain = Chain::from_config(&cfg(&[
            ("transforms", "cast,flat,hdr,ts,route"),
            (
                "transforms.cast.type",
                "org.apache.kafka.connect.transforms.Cast$Value",
            ),
            ("transforms.cast.spec", "id:int32,amount:int64"),
            (
                "transforms.flat.type",
                "org.apache.kafka.connect.transforms.Flatten$Value",
            ),
            ("transforms.flat.delimiter", "_"),
            (
                "transforms.hdr.type",
                "org.apache.kafka.connect.transforms.HeaderFrom$Value",
            ),
            ("transforms.hdr.fields", "addr_zip"),
            ("transforms.hdr.headers", "zip"),
            ("transforms.hdr.operation", "move"),
            (
                "transforms.ts.type",
                "org.apache.kafka.connect.transforms.TimestampConverter$Value",
            ),
            ("transforms.ts.field", "ts"),
            ("transforms.ts.target.type", "string"),
            ("transforms.ts.format", "yyyy-MM-dd HH:mm"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.TimestampRouter",
            ),
        ]))
        .unwrap();
        let out = chain.apply(rec, None).unwrap().unwrap();
        assert_eq!(out.topic, "orders-20240229");
        let Value::Struct(v) = &out.value.value else {
            panic!("a struct")
        };
        assert_eq!(v.get("id"), Some(&Value::Int32(42)));
        assert_eq!(v.get("amount"), Some(&Value::Int64(-3)));
        assert_eq!(v.get("addr_zip"), None);
        assert_eq!(v.get("ts"), Some(&Value::String("2024-02-29 12:34".into())));
        assert_eq!(out.headers[0].key, "zip");
        assert_eq!(out.headers[0].value.value, Value::String("1234".into()));
        let ts_schema = &out
            .value
            .schema
            .as_ref()
            .unwrap()
            .field("ts")
            .unwrap()
            .schema;
        assert_eq!(ts_schema.ty, Type::String);

        // Schemaless: whole-value casts and nested maps.
        let chain = Chain::from_config(&cfg(&[
            ("transforms", "flat,cast"),
            (
                "transforms.flat.type",
                "org.apache.kafka.connect.transforms.Flatten$Value",
            ),
            (
                "transforms.cast.type",
                "org.apache.kafka.connect.transforms.Cast$Key",
            ),
            ("transforms.cast.spec", "string"),
        ]))
        .unwrap();
        let mut rec = ConnectRecord::new(
            "t",
            map(&[(
                "a",
                Value::Map(vec![(Value::String("b".into()), Value::Int64(1))]),
            )]),
        );
        rec.key = SchemaAndValue::schemaless(Value::Float64(1.5));
        let out = chain.apply(rec, None).unwrap().unwrap();
        assert_eq!(out.key.value, Value::String("1.5".into()));
        assert_eq!(out.value.value.map_get("a.b"), Some(&Value::Int64(1)));

        for bad_cfg in [
            vec![
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.Cast$Value",
                ),
                ("transforms.x.spec", "a:uuid"),
            ],
            vec![
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.Cast$Value",
                ),
                ("transforms.x.spec", "int8,a:int8"),
            ],
            vec![
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
                ),
                ("transforms.x.target.type", "string"),
            ],
            vec![
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.HeaderFrom$Value",
                ),
                ("transforms.x.fields", "a,b"),
                ("transforms.x.headers", "a"),
                ("transforms.x.operation", "copy"),
            ],
        ] {
            let mut c = bad_cfg;
            c.push(("transforms", "x"));
            assert!(Chain::from_config(&cfg(&c)).is_err(), "{c:?}");
        }
    }

    #[test]
    fn timestamp_converter_between_unix_and_logical_types() {
        let chain = |target: &str, precision: &str| {
            Chain::from_config(&cfg(&[
                ("transforms", "ts"),
                (
                    "transforms.ts.type",
                    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
                ),
                ("transforms.ts.target.type", target),
                ("transforms.ts.unix.precision", precision),
            ]))
            .unwrap()
        };
        let rec = ConnectRecord::new(
            "t",
            SchemaAndValue {
                schema: Some(Arc::new(Schema::of(Type::Int64))),
                value: Value::Int64(1_709_210_096),
            },
        );
        let out = chain("Date", "seconds")
            .apply(rec.clone(), None)
            .unwrap()
            .unwrap();
        assert_eq!(out.value.value, Value::Int32(19_782));
        assert_eq!(
            out.value.schema.as_ref().unwrap().name.as_deref(),
            Some(logical::DATE)
        );
        let out = chain("Time", "seconds")
            .apply(rec.clone(), None)
            .unwrap()
            .unwrap();
        assert_eq!(out.value.value, Value::Int32(45_296_000));
        let out = chain("unix", "microseconds")
            .apply(rec, None)
            .unwrap()
            .unwrap();
        assert_eq!(out.value.value, Value::Int64(1_709_210_000));
    }
}

//! Kafka's single message transforms and predicates, by their class names
//! (`org.apache.kafka.connect.transforms.InsertField$Value`, ...), built
//! from a connector's `transforms` and `predicates` settings and applied
//! in order to each record (sources: before conversion; sinks: after).
//!
//! Transforms here: Filter, RegexRouter, InsertField, ReplaceField,
//! MaskField, ValueToKey, ExtractField, HoistField, InsertHeader,
//! DropHeaders, SetSchemaMetadata. Predicates: TopicNameMatches,
//! HasHeaderKey, RecordIsTombstone, each with `negate`.

use std::sync::Arc;

use regex::Regex;

use crate::config::{list, with_prefix};
use crate::connector::{ConnectRecord, Header, Props};
use crate::data::{Schema, SchemaAndValue, Struct, Type, Value};
use crate::error::{ConnectError, Result};

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
            let simple = class.strip_prefix(PKG).unwrap_or(&class);
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
                if d.value.is_null() {
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
}

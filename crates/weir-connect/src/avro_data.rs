//! Connect schemas and values to and from Avro, as Confluent's `AvroData`
//! maps them (its defaults: `connect.meta.data=true`, enhanced schema
//! support off):
//!
//! - INT8/INT16 are Avro `int` annotated `"connect.type":"int8"`/`"int16"`;
//!   Decimal is `bytes` with `scale`, `precision` (64 unless the
//!   `connect.decimal.precision` parameter says otherwise) and
//!   `logicalType` `decimal`; Date, Time and Timestamp are `date`,
//!   `time-millis` and `timestamp-millis`;
//! - a schema's doc, version, parameters, default and name are kept in
//!   `connect.doc`, `connect.version`, `connect.parameters`,
//!   `connect.default` and `connect.name`;
//! - STRUCT is a record named after the schema (unnamed:
//!   `io.confluent.connect.avro.ConnectDefault`), an optional schema a
//!   union with null (null first, unless it has a default), a MAP with
//!   other than required string keys an array of
//!   `io.confluent.connect.avro.MapEntry` records;
//! - reading, an Avro union other than with null is a STRUCT named
//!   `io.confluent.connect.avro.Union` with one optional field per branch,
//!   an enum a STRING with `io.confluent.connect.avro.Enum` parameters.
//!
//! The Avro side is the schema's JSON text, written as Avro's Java library
//! writes it (so the registry sees the text Confluent's converter
//! registers), and `apache-avro` values, which `weir-formats` encodes.

use std::collections::HashMap;
use std::sync::Arc;

use weir_formats::apache_avro::types::Value as AValue;
use weir_formats::apache_avro::Decimal as ADecimal;

use crate::data::{logical, Field, Parameters, Schema, Struct, Type, Value};
use crate::error::{ConnectError, Result};
use crate::json::{Json, ParamOrder};

const NAMESPACE: &str = "io.confluent.connect.avro";
const DEFAULT_NAME: &str = "ConnectDefault";
const DEFAULT_FULL_NAME: &str = "io.confluent.connect.avro.ConnectDefault";
const MAP_ENTRY: &str = "MapEntry";
const UNION: &str = "io.confluent.connect.avro.Union";
const ENUM: &str = "io.confluent.connect.avro.Enum";
const RECORD_DOC: &str = "io.confluent.connect.avro.record.doc";
const FIELD_DOC: &str = "io.confluent.connect.avro.field.doc.";
const FIELD_DEFAULT_FLAG: &str = "io.confluent.connect.avro.field.default";
const DECIMAL_PRECISION: &str = "connect.decimal.precision";
const DECIMAL_PRECISION_DEFAULT: i64 = 64;
/// How deep schemas and values may nest (bounds recursion on hostile input).
const MAX_DEPTH: usize = 64;

fn err(m: impl Into<String>) -> ConnectError {
    ConnectError::data(m)
}

fn deeper(depth: usize) -> Result<usize> {
    if depth >= MAX_DEPTH {
        return Err(err("Avro schema or value nests too deeply"));
    }
    Ok(depth + 1)
}

fn split_name(full: &str) -> (Option<&str>, &str) {
    match full.rfind('.') {
        Some(i) => (Some(&full[..i]), &full[i + 1..]),
        None => (None, full),
    }
}

// ---------------------------------------------------------------------------
// Connect → Avro schema text

/// The Avro schema text for a Connect schema, as Confluent's converter
/// registers it.
pub fn avro_schema_text(schema: &Schema) -> Result<String> {
    let mut w = SchemaWriter::default();
    Ok(w.schema(schema, None, false, 0)?.to_text())
}

#[derive(Default)]
struct SchemaWriter {
    /// Named types already written, by full name: later uses are references.
    defined: HashMap<String, Schema>,
}

impl SchemaWriter {
    /// `ns`: the namespace of the enclosing record (Avro writes a nested
    /// type's namespace only where it differs).
    fn schema(
        &mut self,
        s: &Schema,
        ns: Option<&str>,
        ignore_optional: bool,
        depth: usize,
    ) -> Result<Json> {
        let depth = deeper(depth)?;
        if s.ty == Type::Struct && s.name.as_deref() == Some(UNION) {
            let mut branches = Vec::new();
            if s.optional {
                branches.push(Json::str("null"));
            }
            for f in &s.fields {
                let mut inner = (*f.schema).clone();
                inner.optional = false;
                branches.push(self.schema(&inner, ns, true, depth)?);
            }
            return Ok(Json::Arr(branches));
        }
        if s.ty == Type::Struct && s.optional && !ignore_optional {
            let mut inner = s.clone();
            inner.optional = false;
            return Ok(Json::Arr(vec![
                Json::str("null"),
                self.schema(&inner, ns, false, depth)?,
            ]));
        }
        let mut props: Vec<(String, Json)> = Vec::new();
        let mut connect_type = None;
        let mut obj: Vec<(String, Json)> = Vec::new();
        let mut is_record = false;
        match s.ty {
            Type::Int8 | Type::Int16 | Type::Int32 => {
                obj.push(("type".into(), Json::str("int")));
                connect_type = match s.ty {
                    Type::Int8 => Some("int8"),
                    Type::Int16 => Some("int16"),
                    _ => None,
                };
            }
            Type::Int64 => obj.push(("type".into(), Json::str("long"))),
            Type::Float32 => obj.push(("type".into(), Json::str("float"))),
            Type::Float64 => obj.push(("type".into(), Json::str("double"))),
            Type::Boolean => obj.push(("type".into(), Json::str("boolean"))),
            Type::String => obj.push(("type".into(), Json::str("string"))),
            Type::Bytes => {
                obj.push(("type".into(), Json::str("bytes")));
                if is_decimal(s) {
                    let (scale, precision) = decimal_params(s)?;
                    props.push(("scale".into(), Json::Int(scale)));
                    props.push(("precision".into(), Json::Int(precision)));
                }
            }
            Type::Array => {
                let items = s
                    .value
                    .as_deref()
                    .ok_or_else(|| err("array items missing"))?;
                obj.push(("type".into(), Json::str("array")));
                obj.push(("items".into(), self.schema(items, ns, false, depth)?));
            }
            Type::Map => {
                let k = s.key.as_deref().ok_or_else(|| err("map key missing"))?;
                let v = s.value.as_deref().ok_or_else(|| err("map value missing"))?;
                if k.ty == Type::String && !k.optional {
                    obj.push(("type".into(), Json::str("map")));
                    obj.push(("values".into(), self.schema(v, ns, false, depth)?));
                } else {
                    let (space, name) = match &s.name {
                        None => (Some(NAMESPACE), MAP_ENTRY),
                        Some(n) => split_name(n),
                    };
                    let entry = Schema::structure(vec![
                        ("key".to_string(), k.clone()),
                        ("value".to_string(), v.clone()),
                    ]);
                    let mut rec = self.record(&entry, space, name, ns, depth)?;
                    if s.name.is_some() {
                        if let Json::Obj(pairs) = &mut rec {
                            pairs.push(("connect.internal.type".into(), Json::str(MAP_ENTRY)));
                        }
                    }
                    obj.push(("type".into(), Json::str("array")));
                    obj.push(("items".into(), rec));
                }
            }
            Type::Struct => {
                let (space, name) = match &s.name {
                    None => (Some(NAMESPACE), DEFAULT_NAME),
                    Some(n) => split_name(n),
                };
                let full = match space {
                    Some(sp) => format!("{sp}.{name}"),
                    None => name.to_string(),
                };
                if let Some(prev) = self.defined.get(&full) {
                    if prev != s {
                        return Err(err(format!("Can't redefine: {full}")));
                    }
                    // Avro writes a type seen before by its name, short
                    // when it is in the enclosing namespace.
                    return Ok(Json::str(if space == ns { name.to_string() } else { full }));
                }
                self.defined.insert(full, s.clone());
                let rec = self.record(s, space, name, ns, depth)?;
                let Json::Obj(pairs) = rec else {
                    unreachable!("a record is an object")
                };
                obj = pairs;
                is_record = true;
            }
        }
        // Connect's metadata, in the order Confluent adds it.
        if let Some(d) = &s.doc {
            props.push(("connect.doc".into(), Json::str(d.clone())));
        }
        if let Some(v) = s.version {
            props.push(("connect.version".into(), Json::Int(i64::from(v))));
        }
        if let Some(p) = s.parameters.as_ref().filter(|p| !p.is_empty()) {
            props.push((
                "connect.parameters".into(),
                Json::Obj(
                    p.iter()
                        .map(|(k, v)| (k.clone(), Json::str(v.clone())))
                        .collect(),
                ),
            ));
        }
        if let Some(d) = &s.default {
            let flagged = s
                .parameters
                .as_ref()
                .is_some_and(|p| p.contains_key(FIELD_DEFAULT_FLAG));
            if !flagged {
                props.push(("connect.default".into(), default_json(s, d, depth)?));
            }
        }
        if let Some(n) = &s.name {
            props.push(("connect.name".into(), Json::str(n.clone())));
        }
        if let Some(t) = connect_type {
            props.push(("connect.type".into(), Json::str(t)));
        }
        match s.name.as_deref() {
            Some(logical::DECIMAL) if s.ty == Type::Bytes => {
                props.push(("logicalType".into(), Json::str("decimal")))
            }
            Some(logical::DATE) if s.ty == Type::Int32 => {
                props.push(("logicalType".into(), Json::str("date")))
            }
            Some(logical::TIME) if s.ty == Type::Int32 => {
                props.push(("logicalType".into(), Json::str("time-millis")))
            }
            Some(logical::TIMESTAMP) if s.ty == Type::Int64 => {
                props.push(("logicalType".into(), Json::str("timestamp-millis")))
            }
            _ => {}
        }
        let base = if props.is_empty() && !is_record && obj.len() == 1 {
            // A primitive without properties is its bare name.
            obj.pop().map(|(_, t)| t).unwrap_or(Json::Null)
        } else {
            obj.extend(props);
            Json::Obj(obj)
        };
        if s.optional && !ignore_optional {
            return Ok(Json::Arr(if s.default.is_some() {
                vec![base, Json::str("null")]
            } else {
                vec![Json::str("null"), base]
            }));
        }
        Ok(base)
    }

    /// A record's type, name, namespace, doc and fields (its properties
    /// follow, added by the caller).
    fn record(
        &mut self,
        s: &Schema,
        space: Option<&str>,
        name: &str,
        ns: Option<&str>,
        depth: usize,
    ) -> Result<Json> {
        let mut obj = vec![
            ("type".to_string(), Json::str("record")),
            ("name".to_string(), Json::str(name)),
        ];
        match space {
            Some(sp) if Some(sp) != ns => obj.push(("namespace".into(), Json::str(sp))),
            None if ns.is_some() => obj.push(("namespace".into(), Json::str(""))),
            _ => {}
        }
        let param = |k: &str| s.parameters.as_ref().and_then(|p| p.get(k)).cloned();
        if let Some(doc) = param(RECORD_DOC) {
            obj.push(("doc".into(), Json::Str(doc)));
        }
        let mut fields = Vec::new();
        for f in &s.fields {
            let mut fj = vec![
                ("name".to_string(), Json::str(f.name.clone())),
                (
                    "type".to_string(),
                    self.schema(&f.schema, space, false, depth)?,
                ),
            ];
            if let Some(doc) = param(&format!("{FIELD_DOC}{}", f.name)) {
                fj.push(("doc".into(), Json::Str(doc)));
            }
            if let Some(d) = &f.schema.default {
                fj.push(("default".into(), default_json(&f.schema, d, depth)?));
            } else if f.schema.optional {
                fj.push(("default".into(), Json::Null));
            }
            fields.push(Json::Obj(fj));
        }
        obj.push(("fields".into(), Json::Arr(fields)));
        Ok(Json::Obj(obj))
    }
}

fn is_decimal(s: &Schema) -> bool {
    s.name.as_deref() == Some(logical::DECIMAL)
}

fn decimal_params(s: &Schema) -> Result<(i64, i64)> {
    let p = s.parameters.clone().unwrap_or_default();
    let num = |k: &str, d: Option<i64>| -> Result<i64> {
        match p.get(k) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| err(format!("Invalid Decimal parameter {k}: {v}"))),
            None => d.ok_or_else(|| err(format!("Decimal schema without {k}"))),
        }
    };
    Ok((
        num(logical::SCALE, None)?,
        num(DECIMAL_PRECISION, Some(DECIMAL_PRECISION_DEFAULT))?,
    ))
}

/// Bytes as Avro's JSON writes them: one code point per byte.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|c| char::from(*c)).collect()
}

/// A Connect value as an Avro default (JSON).
fn default_json(s: &Schema, v: &Value, depth: usize) -> Result<Json> {
    let depth = deeper(depth)?;
    Ok(match (s.ty, v) {
        (_, Value::Null) => Json::Null,
        (_, Value::Int8(x)) => Json::Int(i64::from(*x)),
        (_, Value::Int16(x)) => Json::Int(i64::from(*x)),
        (_, Value::Int32(x)) => Json::Int(i64::from(*x)),
        (_, Value::Int64(x)) => Json::Int(*x),
        (_, Value::Float32(x)) => Json::Float(*x),
        (_, Value::Float64(x)) => Json::Double(*x),
        (_, Value::Boolean(x)) => Json::Bool(*x),
        (_, Value::String(x)) => Json::Str(x.clone()),
        (_, Value::Bytes(x)) => Json::Str(latin1(x)),
        (Type::Array, Value::Array(items)) => {
            let is = s
                .value
                .as_deref()
                .ok_or_else(|| err("array items missing"))?;
            Json::Arr(
                items
                    .iter()
                    .map(|i| default_json(is, i, depth))
                    .collect::<Result<_>>()?,
            )
        }
        (Type::Map, Value::Map(entries)) => {
            let ks = s.key.as_deref().ok_or_else(|| err("map key missing"))?;
            let vs = s.value.as_deref().ok_or_else(|| err("map value missing"))?;
            if ks.ty == Type::String && !ks.optional {
                Json::Obj(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok((
                                k.as_str().unwrap_or_default().to_string(),
                                default_json(vs, v, depth)?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                )
            } else {
                Json::Arr(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(Json::obj([
                                ("key", default_json(ks, k, depth)?),
                                ("value", default_json(vs, v, depth)?),
                            ]))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        }
        (Type::Struct, Value::Struct(st)) => Json::Obj(
            s.fields
                .iter()
                .map(|f| {
                    Ok((
                        f.name.clone(),
                        default_json(&f.schema, &st.values[f.index], depth)?,
                    ))
                })
                .collect::<Result<_>>()?,
        ),
        _ => return Err(err(format!("Invalid default for {}", s.ty.name()))),
    })
}

// ---------------------------------------------------------------------------
// Connect value → Avro value

/// A Connect value of `schema` as the Avro value of the schema
/// [`avro_schema_text`] writes for it.
pub fn to_avro(schema: &Schema, v: &Value) -> Result<AValue> {
    to_avro_in(schema, v, false, 0)
}

fn to_avro_in(s: &Schema, v: &Value, ignore_optional: bool, depth: usize) -> Result<AValue> {
    let depth = deeper(depth)?;
    if s.ty == Type::Struct && s.name.as_deref() == Some(UNION) {
        let offset = u32::from(s.optional);
        if let Value::Struct(st) = v {
            for f in &s.fields {
                let fv = &st.values[f.index];
                if !fv.is_null() {
                    let mut inner = (*f.schema).clone();
                    inner.optional = false;
                    let idx = u32::try_from(f.index).unwrap_or(u32::MAX) + offset;
                    return Ok(AValue::Union(
                        idx,
                        Box::new(to_avro_in(&inner, fv, true, depth)?),
                    ));
                }
            }
        }
        if s.optional {
            return Ok(AValue::Union(0, Box::new(AValue::Null)));
        }
        return Err(err("Union value without a set branch"));
    }
    if s.optional && !ignore_optional {
        let value_first = s.default.is_some() && s.ty != Type::Struct;
        let (vi, ni) = if value_first { (0, 1) } else { (1, 0) };
        if v.is_null() {
            return Ok(AValue::Union(ni, Box::new(AValue::Null)));
        }
        return Ok(AValue::Union(vi, Box::new(to_avro_in(s, v, true, depth)?)));
    }
    if v.is_null() {
        if let Some(d) = &s.default {
            return to_avro_in(s, d, true, depth);
        }
        return Err(err(format!(
            "Conversion error: null value for field that is required and has no default value ({})",
            s.ty.name()
        )));
    }
    let bad = || {
        err(format!(
            "Invalid type for {}: {}",
            s.ty.name(),
            v.type_name()
        ))
    };
    Ok(match (s.ty, v) {
        (Type::Int8, Value::Int8(x)) => AValue::Int(i32::from(*x)),
        (Type::Int16, Value::Int16(x)) => AValue::Int(i32::from(*x)),
        (Type::Int32, Value::Int32(x)) => match s.name.as_deref() {
            Some(logical::DATE) => AValue::Date(*x),
            Some(logical::TIME) => AValue::TimeMillis(*x),
            _ => AValue::Int(*x),
        },
        (Type::Int64, Value::Int64(x)) => match s.name.as_deref() {
            Some(logical::TIMESTAMP) => AValue::TimestampMillis(*x),
            _ => AValue::Long(*x),
        },
        (Type::Float32, Value::Float32(x)) => AValue::Float(*x),
        (Type::Float64, Value::Float64(x)) => AValue::Double(*x),
        (Type::Boolean, Value::Boolean(x)) => AValue::Boolean(*x),
        (Type::String, Value::String(x)) => AValue::String(x.clone()),
        (Type::Bytes, Value::Bytes(x)) if is_decimal(s) => {
            AValue::Decimal(ADecimal::from(x.as_slice()))
        }
        (Type::Bytes, Value::Bytes(x)) => AValue::Bytes(x.clone()),
        (Type::Array, Value::Array(items)) => {
            let is = s
                .value
                .as_deref()
                .ok_or_else(|| err("array items missing"))?;
            AValue::Array(
                items
                    .iter()
                    .map(|i| to_avro_in(is, i, false, depth))
                    .collect::<Result<_>>()?,
            )
        }
        (Type::Map, Value::Map(entries)) => {
            let ks = s.key.as_deref().ok_or_else(|| err("map key missing"))?;
            let vs = s.value.as_deref().ok_or_else(|| err("map value missing"))?;
            if ks.ty == Type::String && !ks.optional {
                AValue::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            let k = k.as_str().ok_or_else(bad)?.to_string();
                            Ok((k, to_avro_in(vs, v, false, depth)?))
                        })
                        .collect::<Result<_>>()?,
                )
            } else {
                AValue::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(AValue::Record(vec![
                                ("key".into(), to_avro_in(ks, k, false, depth)?),
                                ("value".into(), to_avro_in(vs, v, false, depth)?),
                            ]))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        }
        (Type::Struct, Value::Struct(st)) => {
            if st.schema.fields.len() != s.fields.len() {
                return Err(err("Mismatching struct schema"));
            }
            AValue::Record(
                s.fields
                    .iter()
                    .map(|f| {
                        Ok((
                            f.name.clone(),
                            to_avro_in(&f.schema, &st.values[f.index], false, depth)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        _ => return Err(bad()),
    })
}

// ---------------------------------------------------------------------------
// Avro schema text → Connect schema, Avro value → Connect value

type J = serde_json::Value;

/// The schema Confluent's AvroConverter writes schemaless data with (a
/// null Connect schema): a record with one optional field per kind of
/// value, arrays and maps of itself. Text as Confluent's AvroData prints it.
pub const ANYTHING_SCHEMA: &str = r#"{"type":"record","name":"Anything","namespace":"io.confluent.connect.avro","fields":[{"name":"boolean","type":["null","boolean"],"default":null},{"name":"bytes","type":["null","bytes"],"default":null},{"name":"double","type":["null","double"],"default":null},{"name":"float","type":["null","float"],"default":null},{"name":"int","type":["null","int"],"default":null},{"name":"long","type":["null","long"],"default":null},{"name":"string","type":["null","string"],"default":null},{"name":"array","type":["null",{"type":"array","items":"Anything"}],"default":null},{"name":"map","type":["null",{"type":"array","items":{"type":"record","name":"MapEntry","fields":[{"name":"key","type":"Anything"},{"name":"value","type":"Anything"}]}}],"default":null}]}"#;

const ANYTHING_FIELDS: [&str; 9] = [
    "boolean", "bytes", "double", "float", "int", "long", "string", "array", "map",
];

/// Whether an Avro schema text is Confluent's schemaless `Anything` record.
pub fn is_anything(text: &str) -> bool {
    serde_json::from_str::<J>(text).is_ok_and(|j| {
        let name = j.get("name").and_then(J::as_str);
        let ns = j.get("namespace").and_then(J::as_str);
        matches!(
            (name, ns),
            (Some("io.confluent.connect.avro.Anything"), _)
                | (Some("Anything"), Some("io.confluent.connect.avro"))
        )
    })
}

/// A schemaless value as an `Anything` record, as Confluent writes it.
pub fn anything_to_avro(v: &Value) -> Result<AValue> {
    anything_in(v, 0)
}

fn anything_in(v: &Value, depth: usize) -> Result<AValue> {
    let depth = deeper(depth)?;
    let (slot, inner) = match v {
        Value::Null => (None, AValue::Null),
        Value::Boolean(b) => (Some(0), AValue::Boolean(*b)),
        Value::Bytes(b) => (Some(1), AValue::Bytes(b.clone())),
        Value::Float64(f) => (Some(2), AValue::Double(*f)),
        Value::Float32(f) => (Some(3), AValue::Float(*f)),
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) => {
            (Some(4), AValue::Int(v.as_i64().unwrap_or_default() as i32))
        }
        Value::Int64(i) => (Some(5), AValue::Long(*i)),
        Value::String(s) => (Some(6), AValue::String(s.clone())),
        Value::Array(items) => (
            Some(7),
            AValue::Array(
                items
                    .iter()
                    .map(|i| anything_in(i, depth))
                    .collect::<Result<_>>()?,
            ),
        ),
        Value::Map(entries) => (
            Some(8),
            AValue::Array(
                entries
                    .iter()
                    .map(|(k, v)| {
                        Ok(AValue::Record(vec![
                            ("key".into(), anything_in(k, depth)?),
                            ("value".into(), anything_in(v, depth)?),
                        ]))
                    })
                    .collect::<Result<_>>()?,
            ),
        ),
        Value::Struct(_) => {
            return Err(err(
                "A Struct needs its schema: schemaless data cannot hold one",
            ))
        }
    };
    let mut inner = Some(inner);
    Ok(AValue::Record(
        ANYTHING_FIELDS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mine = if slot == Some(i) { inner.take() } else { None };
                let f = match mine {
                    Some(x) => AValue::Union(1, Box::new(x)),
                    None => AValue::Union(0, Box::new(AValue::Null)),
                };
                (name.to_string(), f)
            })
            .collect(),
    ))
}

/// An `Anything` record read back as a schemaless value (all fields null:
/// null), as Confluent's converter reads it.
pub fn anything_from_avro(v: &AValue) -> Result<Value> {
    anything_out(v, 0)
}

fn anything_out(v: &AValue, depth: usize) -> Result<Value> {
    let depth = deeper(depth)?;
    let AValue::Record(fields) = v else {
        return Err(err("an Anything value must be a record"));
    };
    for (name, f) in fields {
        let f = match f {
            AValue::Union(_, inner) => inner.as_ref(),
            other => other,
        };
        let out = match (name.as_str(), f) {
            (_, AValue::Null) => continue,
            ("boolean", AValue::Boolean(b)) => Value::Boolean(*b),
            ("bytes", AValue::Bytes(b)) => Value::Bytes(b.clone()),
            ("double", AValue::Double(d)) => Value::Float64(*d),
            ("float", AValue::Float(d)) => Value::Float32(*d),
            ("int", AValue::Int(i)) => Value::Int32(*i),
            ("long", AValue::Long(i)) => Value::Int64(*i),
            ("string", AValue::String(s)) => Value::String(s.clone()),
            ("array", AValue::Array(items)) => Value::Array(
                items
                    .iter()
                    .map(|i| anything_out(i, depth))
                    .collect::<Result<_>>()?,
            ),
            ("map", AValue::Array(entries)) => {
                let mut out = Vec::with_capacity(entries.len());
                for e in entries {
                    let AValue::Record(kv) = e else {
                        return Err(err("an Anything map entry must be a record"));
                    };
                    let get = |n: &str| kv.iter().find(|(k, _)| k == n).map(|(_, v)| v);
                    let k = get("key").map(|k| anything_out(k, depth)).transpose()?;
                    let v = get("value").map(|v| anything_out(v, depth)).transpose()?;
                    out.push((k.unwrap_or(Value::Null), v.unwrap_or(Value::Null)));
                }
                Value::Map(out)
            }
            (n, other) => return Err(err(format!("Anything field {n} holds {other:?}"))),
        };
        return Ok(out);
    }
    Ok(Value::Null)
}

/// An Avro schema (JSON) read for Connect: its named types and the
/// Connect schema it maps to.
#[derive(Debug)]
pub struct AvroReadSchema {
    avro: J,
    /// Named types by full name, each with the namespace it was defined in.
    names: HashMap<String, (J, Option<String>)>,
    connect: Arc<Schema>,
}

impl AvroReadSchema {
    /// Reads an Avro schema's text (and its references', dependencies
    /// first).
    pub fn parse(text: &str, references: &[&str]) -> Result<Self> {
        let parse = |t: &str| -> Result<J> {
            serde_json::from_str(t).map_err(|e| err(format!("Invalid Avro schema: {e}")))
        };
        let mut names = HashMap::new();
        let mut order = ParamOrder::default();
        for r in references {
            collect_names(&parse(r)?, None, &mut names, 0)?;
            order.add(r, "connect.parameters");
        }
        let avro = parse(text)?;
        collect_names(&avro, None, &mut names, 0)?;
        order.add(text, "connect.parameters");
        let mut reader = Reader {
            names: &names,
            building: Vec::new(),
            order: &order,
        };
        let connect = reader.schema(&avro, None, false, None, 0)?;
        Ok(Self {
            connect: Arc::new(connect),
            avro,
            names,
        })
    }

    /// The Connect schema.
    pub fn connect(&self) -> &Arc<Schema> {
        &self.connect
    }

    /// The full name of the root record, enum or fixed.
    pub fn record_name(&self) -> Option<String> {
        match self.avro.get("type").and_then(J::as_str) {
            Some("record" | "error" | "enum" | "fixed") => named_full_name(&self.avro, None),
            _ => None,
        }
    }

    /// Gives the root schema `version` unless `connect.version` set one,
    /// as Confluent's converter does with the registry's version.
    pub fn set_version(&mut self, version: i32) {
        if self.connect.version.is_none() {
            Arc::make_mut(&mut self.connect).version = Some(version);
        }
    }

    /// A decoded Avro value as Connect data.
    pub fn value(&self, v: &AValue) -> Result<Value> {
        self.value_in(&self.avro, None, &self.connect, v, 0)
    }

    fn resolve<'a>(&'a self, j: &'a J, ns: Option<&'a str>) -> (&'a J, Option<&'a str>) {
        let name = match j {
            J::String(s) if !is_primitive(s) => Some(s.as_str()),
            J::Object(o) => match o.get("type") {
                Some(J::String(t)) if !is_keyword(t) => Some(t.as_str()),
                _ => None,
            },
            _ => None,
        };
        if let Some(n) = name {
            if let Some((def, dns)) = self.names.get(&full_name(n, ns)) {
                return (def, dns.as_deref());
            }
            if let Some((def, dns)) = self.names.get(n) {
                return (def, dns.as_deref());
            }
        }
        (j, ns)
    }

    fn value_in(
        &self,
        avro: &J,
        ns: Option<&str>,
        s: &Schema,
        v: &AValue,
        depth: usize,
    ) -> Result<Value> {
        let depth = deeper(depth)?;
        let (avro, ns) = self.resolve(avro, ns);
        if let J::Array(branches) = avro {
            let AValue::Union(idx, inner) = v else {
                return Err(err("expected an Avro union value"));
            };
            let idx = usize::try_from(*idx).unwrap_or(usize::MAX);
            let branch = branches
                .get(idx)
                .ok_or_else(|| err("Avro union branch out of range"))?;
            if matches!(**inner, AValue::Null) {
                return Ok(Value::Null);
            }
            if s.ty == Type::Struct && s.name.as_deref() == Some(UNION) {
                let field = branches[..idx].iter().filter(|b| !is_null(b)).count();
                let f = s
                    .fields
                    .get(field)
                    .ok_or_else(|| err("Avro union branch out of range"))?;
                let mut st = Struct::new(Arc::new(s.clone()));
                st.values[field] = self.value_in(branch, ns, &f.schema, inner, depth)?;
                return Ok(Value::Struct(st));
            }
            return self.value_in(branch, ns, s, inner, depth);
        }
        let v = match v {
            // A union read where the schema has none cannot happen; a
            // value that is one is unwrapped defensively.
            AValue::Union(_, inner) => inner.as_ref(),
            other => other,
        };
        let bad = || err(format!("Invalid Avro value for {}", s.ty.name()));
        Ok(match (s.ty, v) {
            (Type::Int8, AValue::Int(x)) => Value::Int8(i8::try_from(*x).map_err(|_| bad())?),
            (Type::Int16, AValue::Int(x)) => Value::Int16(i16::try_from(*x).map_err(|_| bad())?),
            (Type::Int32, AValue::Int(x) | AValue::Date(x) | AValue::TimeMillis(x)) => {
                Value::Int32(*x)
            }
            (
                Type::Int64,
                AValue::Long(x)
                | AValue::TimestampMillis(x)
                | AValue::TimestampMicros(x)
                | AValue::TimestampNanos(x)
                | AValue::LocalTimestampMillis(x)
                | AValue::LocalTimestampMicros(x)
                | AValue::LocalTimestampNanos(x)
                | AValue::TimeMicros(x),
            ) => Value::Int64(*x),
            (Type::Float32, AValue::Float(x)) => Value::Float32(*x),
            (Type::Float64, AValue::Double(x)) => Value::Float64(*x),
            (Type::Boolean, AValue::Boolean(x)) => Value::Boolean(*x),
            (Type::String, AValue::String(x)) => Value::String(x.clone()),
            (Type::String, AValue::Enum(_, x)) => Value::String(x.clone()),
            (Type::String, AValue::Uuid(x)) => Value::String(x.to_string()),
            (Type::Bytes, AValue::Bytes(x) | AValue::Fixed(_, x)) => Value::Bytes(x.clone()),
            (Type::Bytes, AValue::Decimal(d)) => {
                Value::Bytes(Vec::<u8>::try_from(d).map_err(|e| err(e.to_string()))?)
            }
            (Type::Array, AValue::Array(items)) => {
                let item_avro = avro.get("items").ok_or_else(bad)?;
                let is = s.value.as_deref().ok_or_else(bad)?;
                Value::Array(
                    items
                        .iter()
                        .map(|i| self.value_in(item_avro, ns, is, i, depth))
                        .collect::<Result<_>>()?,
                )
            }
            (Type::Map, AValue::Map(entries)) => {
                let va = avro.get("values").ok_or_else(bad)?;
                let vs = s.value.as_deref().ok_or_else(bad)?;
                let mut out: Vec<(Value, Value)> = entries
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            Value::String(k.clone()),
                            self.value_in(va, ns, vs, v, depth)?,
                        ))
                    })
                    .collect::<Result<_>>()?;
                // The decoder's map has no order; a stable one.
                out.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
                Value::Map(out)
            }
            (Type::Map, AValue::Array(entries)) => {
                let (entry, ens) = self.resolve(avro.get("items").ok_or_else(bad)?, ns);
                let ens = record_namespace(entry, ens);
                let fa = |n: &str| field_type(entry, n).ok_or_else(bad);
                let (ka, va) = (fa("key")?, fa("value")?);
                let ks = s.key.as_deref().ok_or_else(bad)?;
                let vs = s.value.as_deref().ok_or_else(bad)?;
                Value::Map(
                    entries
                        .iter()
                        .map(|e| {
                            let AValue::Record(fields) = e else {
                                return Err(bad());
                            };
                            let get = |n: &str| {
                                fields
                                    .iter()
                                    .find(|(f, _)| f == n)
                                    .map(|(_, v)| v)
                                    .ok_or_else(bad)
                            };
                            Ok((
                                self.value_in(ka, ens.as_deref(), ks, get("key")?, depth)?,
                                self.value_in(va, ens.as_deref(), vs, get("value")?, depth)?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                )
            }
            (Type::Struct, AValue::Record(fields)) => {
                let rns = record_namespace(avro, ns);
                let schema = Arc::new(s.clone());
                let mut st = Struct::new(Arc::clone(&schema));
                for f in &s.fields {
                    let (_, fv) = fields.iter().find(|(n, _)| *n == f.name).ok_or_else(bad)?;
                    let fa = field_type(avro, &f.name).ok_or_else(bad)?;
                    st.values[f.index] = self.value_in(fa, rns.as_deref(), &f.schema, fv, depth)?;
                }
                Value::Struct(st)
            }
            _ => return Err(bad()),
        })
    }
}

fn is_null(j: &J) -> bool {
    j.as_str() == Some("null") || j.get("type").and_then(J::as_str) == Some("null")
}

fn is_primitive(s: &str) -> bool {
    matches!(
        s,
        "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string"
    )
}

fn is_keyword(s: &str) -> bool {
    is_primitive(s) || matches!(s, "record" | "error" | "enum" | "array" | "map" | "fixed")
}

fn full_name(name: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

/// The namespace a named type defines (its own, or the enclosing one).
fn record_namespace(j: &J, ns: Option<&str>) -> Option<String> {
    let name = j.get("name").and_then(J::as_str).unwrap_or_default();
    if let Some(i) = name.rfind('.') {
        return Some(name[..i].to_string());
    }
    match j.get("namespace").and_then(J::as_str) {
        Some(n) => Some(n.to_string()),
        None => ns.map(str::to_string),
    }
}

fn named_full_name(j: &J, ns: Option<&str>) -> Option<String> {
    let name = j.get("name").and_then(J::as_str)?;
    if name.contains('.') {
        return Some(name.to_string());
    }
    Some(match record_namespace(j, ns).filter(|n| !n.is_empty()) {
        Some(n) => format!("{n}.{name}"),
        None => name.to_string(),
    })
}

fn field_type<'a>(record: &'a J, name: &str) -> Option<&'a J> {
    record
        .get("fields")?
        .as_array()?
        .iter()
        .find(|f| f.get("name").and_then(J::as_str) == Some(name))?
        .get("type")
}

fn collect_names(
    j: &J,
    ns: Option<&str>,
    out: &mut HashMap<String, (J, Option<String>)>,
    depth: usize,
) -> Result<()> {
    let depth = deeper(depth)?;
    match j {
        J::Array(bs) => {
            for b in bs {
                collect_names(b, ns, out, depth)?;
            }
        }
        J::Object(o) => {
            let t = o.get("type");
            match t.and_then(J::as_str) {
                Some("record" | "error" | "enum" | "fixed") => {
                    let full =
                        named_full_name(j, ns).ok_or_else(|| err("named type without name"))?;
                    let own = record_namespace(j, ns);
                    out.insert(full, (j.clone(), own.clone()));
                    if let Some(fs) = o.get("fields").and_then(J::as_array) {
                        for f in fs {
                            if let Some(ft) = f.get("type") {
                                collect_names(ft, own.as_deref(), out, depth)?;
                            }
                        }
                    }
                }
                Some("array") => {
                    if let Some(i) = o.get("items") {
                        collect_names(i, ns, out, depth)?;
                    }
                }
                Some("map") => {
                    if let Some(v) = o.get("values") {
                        collect_names(v, ns, out, depth)?;
                    }
                }
                _ => {
                    if let Some(t @ (J::Object(_) | J::Array(_))) = t {
                        collect_names(t, ns, out, depth)?;
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

struct Reader<'a> {
    names: &'a HashMap<String, (J, Option<String>)>,
    /// Records being read (recursive schemas cannot be Connect schemas).
    building: Vec<String>,
    /// `connect.parameters` in the text's order (serde sorts them).
    order: &'a ParamOrder,
}

impl Reader<'_> {
    fn lookup(&self, n: &str, ns: Option<&str>) -> Result<(J, Option<String>)> {
        self.names
            .get(&full_name(n, ns))
            .or_else(|| self.names.get(n))
            .cloned()
            .ok_or_else(|| err(format!("Undefined Avro name: {n}")))
    }

    fn schema(
        &mut self,
        j: &J,
        ns: Option<&str>,
        force_optional: bool,
        field_default: Option<&J>,
        depth: usize,
    ) -> Result<Schema> {
        let depth = deeper(depth)?;
        let obj = match j {
            J::String(t) if is_primitive(t) => None,
            J::String(n) => {
                let (def, dns) = self.lookup(n, ns)?;
                return self.schema(&def, dns.as_deref(), force_optional, field_default, depth);
            }
            J::Array(branches) => {
                let non_null: Vec<&J> = branches.iter().filter(|b| !is_null(b)).collect();
                let has_null = non_null.len() < branches.len();
                if branches.len() == 2 && has_null {
                    return self.schema(non_null[0], ns, true, None, depth);
                }
                let mut fields = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for b in non_null {
                    let name = self.branch_name(b, ns)?;
                    if !seen.insert(name.clone()) {
                        return Err(err(
                            "Multiple union schemas map to the Connect union field name",
                        ));
                    }
                    fields.push((name, self.schema(b, ns, true, None, depth)?));
                }
                let mut s = Schema::structure(fields).named(UNION);
                s.optional = has_null || force_optional;
                return Ok(s);
            }
            J::Object(o) => Some(o),
            _ => return Err(err(format!("Invalid Avro schema: {j}"))),
        };
        let t = match (obj, j) {
            (None, J::String(t)) => t.as_str(),
            (Some(o), _) => match o.get("type") {
                Some(J::String(t)) if is_keyword(t) => t.as_str(),
                Some(inner) => {
                    // {"type": <a name, union or schema>}
                    return self.schema(inner, ns, force_optional, field_default, depth);
                }
                None => return Err(err("Avro schema without type")),
            },
            _ => unreachable!("strings and objects only"),
        };
        let prop = |k: &str| obj.and_then(|o| o.get(k));
        let prop_str = |k: &str| prop(k).and_then(J::as_str);
        let logical_type = prop_str("logicalType");
        let mut params = Parameters::new();
        let mut s = match t {
            "null" => {
                return Err(err(
                    "Standalone null schemas are not supported by this converter",
                ))
            }
            "boolean" => Schema::of(Type::Boolean),
            "bytes" | "fixed" if logical_type == Some("decimal") => {
                let scale = prop("scale")
                    .and_then(J::as_i64)
                    .ok_or_else(|| err("scale must be specified and must be a number."))?;
                params.insert(logical::SCALE.into(), scale.to_string());
                if let Some(p) = prop("precision") {
                    let p = p
                        .as_i64()
                        .ok_or_else(|| err("precision property must be a JSON Integer."))?;
                    if p != DECIMAL_PRECISION_DEFAULT {
                        params.insert(DECIMAL_PRECISION.into(), p.to_string());
                    }
                }
                let mut s = Schema::of(Type::Bytes).named(logical::DECIMAL);
                s.version = Some(1);
                s
            }
            "bytes" | "fixed" => Schema::of(Type::Bytes),
            "double" => Schema::of(Type::Float64),
            "float" => Schema::of(Type::Float32),
            "int" => match (prop_str("connect.type"), logical_type) {
                (_, Some("date")) => logical_schema(Type::Int32, logical::DATE),
                (_, Some("time-millis")) => logical_schema(Type::Int32, logical::TIME),
                (Some("int8"), None) => Schema::of(Type::Int8),
                (Some("int16"), None) => Schema::of(Type::Int16),
                (Some(other), None) => {
                    return Err(err(format!("Unknown Connect type annotation {other}")))
                }
                _ => Schema::of(Type::Int32),
            },
            "long" => match logical_type {
                Some("timestamp-millis") => logical_schema(Type::Int64, logical::TIMESTAMP),
                _ => Schema::of(Type::Int64),
            },
            "string" => Schema::of(Type::String),
            "array" => {
                let items = prop("items").ok_or_else(|| err("array without items"))?;
                let (ri, rns) = match items {
                    J::String(n) if !is_primitive(n) => {
                        let (d, dns) = self.lookup(n, ns)?;
                        (d, dns)
                    }
                    other => (other.clone(), ns.map(str::to_string)),
                };
                if is_map_entry(&ri, rns.as_deref()) {
                    let ens = record_namespace(&ri, rns.as_deref());
                    let k = field_type(&ri, "key").ok_or_else(|| err("Found map encoded as array of key-value pairs, but array elements do not match the expected format."))?;
                    let v = field_type(&ri, "value").ok_or_else(|| err("Found map encoded as array of key-value pairs, but array elements do not match the expected format."))?;
                    let k = self.schema(k, ens.as_deref(), false, None, depth)?;
                    let v = self.schema(v, ens.as_deref(), false, None, depth)?;
                    Schema::map(k, v)
                } else {
                    Schema::array(self.schema(items, ns, false, None, depth)?)
                }
            }
            "map" => {
                let v = prop("values").ok_or_else(|| err("map without values"))?;
                Schema::map(
                    Schema::of(Type::String),
                    self.schema(v, ns, false, None, depth)?,
                )
            }
            "record" | "error" => {
                let full = named_full_name(j, ns).ok_or_else(|| err("record without name"))?;
                if self.building.contains(&full) {
                    return Err(err(format!(
                        "Recursive Avro record {full} cannot be a Connect schema"
                    )));
                }
                self.building.push(full.clone());
                let rns = record_namespace(j, ns);
                if let Some(d) = prop_str("doc") {
                    params.insert(RECORD_DOC.into(), d.to_string());
                }
                let mut fields = Vec::new();
                for f in prop("fields")
                    .and_then(J::as_array)
                    .ok_or_else(|| err("record without fields"))?
                {
                    let name = f
                        .get("name")
                        .and_then(J::as_str)
                        .ok_or_else(|| err("record field without name"))?;
                    if let Some(d) = f.get("doc").and_then(J::as_str) {
                        params.insert(format!("{FIELD_DOC}{name}"), d.to_string());
                    }
                    let ft = f
                        .get("type")
                        .ok_or_else(|| err("record field without type"))?;
                    let fs = self.schema(ft, rns.as_deref(), false, f.get("default"), depth)?;
                    fields.push((name.to_string(), fs));
                }
                self.building.pop();
                let mut s = Schema::structure(fields);
                if full != DEFAULT_FULL_NAME {
                    s.name = Some(full);
                }
                s
            }
            "enum" => {
                let full = named_full_name(j, ns).ok_or_else(|| err("enum without name"))?;
                let simple = prop_str("name")
                    .map(|n| split_name(n).1)
                    .unwrap_or_default();
                if let Some(d) = prop_str("doc") {
                    params.insert(
                        format!("io.confluent.connect.avro.enum.doc.{simple}"),
                        d.into(),
                    );
                }
                if let Some(d) = prop_str("default") {
                    params.insert(
                        format!("io.confluent.connect.avro.enum.default.{simple}"),
                        d.into(),
                    );
                }
                params.insert(ENUM.into(), full.clone());
                for sym in prop("symbols").and_then(J::as_array).into_iter().flatten() {
                    if let Some(sym) = sym.as_str() {
                        params.insert(format!("{ENUM}.{sym}"), sym.to_string());
                    }
                }
                Schema::of(Type::String).named(&full)
            }
            other => {
                return Err(err(format!(
                    "Couldn't translate unsupported schema type {other}."
                )))
            }
        };
        if let Some(d) = prop_str("connect.doc") {
            s.doc = Some(d.to_string());
        }
        if let Some(v) = prop("connect.version") {
            let v = v
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| err(format!("Invalid Connect version found: {v}")))?;
            s.version = Some(v);
        }
        if let Some(p) = prop("connect.parameters") {
            let p = p.as_object().ok_or_else(|| {
                err(format!(
                    "Expected JSON object for schema parameters but found: {p}"
                ))
            })?;
            for (k, v) in self.order.ordered(p) {
                let v = v.as_str().ok_or_else(|| {
                    err(format!(
                        "Expected schema parameter values to be strings but found: {v}"
                    ))
                })?;
                params.insert(k.clone(), v.to_string());
            }
        }
        let connect_default = prop("connect.default");
        let default = match (field_default, connect_default) {
            (None, d) => d,
            (Some(d), None) => {
                params.insert(FIELD_DEFAULT_FLAG.into(), "true".into());
                Some(d)
            }
            (Some(d), Some(_)) => Some(d),
        };
        if let Some(n) = prop_str("connect.name") {
            s.name = Some(n.to_string());
        }
        if !params.is_empty() {
            s.parameters = Some(params);
        }
        if force_optional {
            s.optional = true;
        }
        if let Some(d) = default.filter(|d| !d.is_null()) {
            s.default = Some(default_value(&s, d, depth)?);
        }
        Ok(s)
    }

    fn branch_name(&self, b: &J, ns: Option<&str>) -> Result<String> {
        Ok(match b {
            J::String(t) if is_primitive(t) => t.clone(),
            J::String(n) => {
                let (def, dns) = self.lookup(n, ns)?;
                return self.branch_name(&def, dns.as_deref());
            }
            J::Object(o) => match o.get("type").and_then(J::as_str) {
                Some("record" | "error" | "enum" | "fixed") => o
                    .get("name")
                    .and_then(J::as_str)
                    .map(|n| split_name(n).1.to_string())
                    .unwrap_or_default(),
                Some(t) => t.to_string(),
                None => return Err(err("union branch without type")),
            },
            _ => return Err(err("nested unions are not allowed")),
        })
    }
}

fn logical_schema(ty: Type, name: &str) -> Schema {
    let mut s = Schema::of(ty).named(name);
    s.version = Some(1);
    s
}

fn is_map_entry(j: &J, ns: Option<&str>) -> bool {
    j.get("type").and_then(J::as_str) == Some("record")
        && (named_full_name(j, ns).as_deref() == Some("io.confluent.connect.avro.MapEntry")
            || j.get("connect.internal.type").and_then(J::as_str) == Some(MAP_ENTRY))
}

/// An Avro default (JSON) as a Connect value of `s`.
fn default_value(s: &Schema, d: &J, depth: usize) -> Result<Value> {
    let depth = deeper(depth)?;
    if d.is_null() {
        return Ok(Value::Null);
    }
    let bad = || err(format!("Invalid default value {d} for {}", s.ty.name()));
    Ok(match s.ty {
        Type::Int8 => Value::Int8(
            d.as_i64()
                .and_then(|v| i8::try_from(v).ok())
                .ok_or_else(bad)?,
        ),
        Type::Int16 => Value::Int16(
            d.as_i64()
                .and_then(|v| i16::try_from(v).ok())
                .ok_or_else(bad)?,
        ),
        Type::Int32 => Value::Int32(
            d.as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(bad)?,
        ),
        Type::Int64 => Value::Int64(d.as_i64().ok_or_else(bad)?),
        #[allow(clippy::cast_possible_truncation)]
        Type::Float32 => Value::Float32(d.as_f64().ok_or_else(bad)? as f32),
        Type::Float64 => Value::Float64(d.as_f64().ok_or_else(bad)?),
        Type::Boolean => Value::Boolean(d.as_bool().ok_or_else(bad)?),
        Type::String => Value::String(d.as_str().ok_or_else(bad)?.to_string()),
        Type::Bytes => Value::Bytes(
            d.as_str()
                .ok_or_else(bad)?
                .chars()
                .map(|c| u8::try_from(u32::from(c)).map_err(|_| bad()))
                .collect::<Result<_>>()?,
        ),
        Type::Array => {
            let is = s.value.as_deref().ok_or_else(bad)?;
            Value::Array(
                d.as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|i| default_value(is, i, depth))
                    .collect::<Result<_>>()?,
            )
        }
        Type::Map => {
            let ks = s.key.as_deref().ok_or_else(bad)?;
            let vs = s.value.as_deref().ok_or_else(bad)?;
            match d {
                J::Object(o) => Value::Map(
                    o.iter()
                        .map(|(k, v)| Ok((Value::String(k.clone()), default_value(vs, v, depth)?)))
                        .collect::<Result<_>>()?,
                ),
                J::Array(a) => Value::Map(
                    a.iter()
                        .map(|e| {
                            Ok((
                                default_value(ks, e.get("key").ok_or_else(bad)?, depth)?,
                                default_value(vs, e.get("value").ok_or_else(bad)?, depth)?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                ),
                _ => return Err(bad()),
            }
        }
        Type::Struct => {
            let o = d.as_object().ok_or_else(bad)?;
            let mut st = Struct::new(Arc::new(s.clone()));
            for Field {
                name,
                index,
                schema,
            } in &s.fields
            {
                st.values[*index] = match o.get(name) {
                    Some(v) => default_value(schema, v, depth)?,
                    None => schema.default.clone().unwrap_or(Value::Null),
                };
            }
            Value::Struct(st)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemaless_values_are_anything_records_as_confluent_writes_them() {
        let avro = weir_formats::avro::AvroSchema::parse(ANYTHING_SCHEMA).unwrap();
        assert!(is_anything(ANYTHING_SCHEMA) && !is_anything(r#"{"type":"string"}"#));
        // The payload Confluent's AvroConverter 7.0 wrote for the
        // schemaless list [1, null] (JsonConverter's longs).
        let v = Value::Array(vec![Value::Int64(1), Value::Null]);
        let bytes = avro.encode(&anything_to_avro(&v).unwrap()).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "000000000000000204000000000002020000000000000000000000000000"
        );
        assert_eq!(
            anything_from_avro(&avro.decode(&bytes).unwrap()).unwrap(),
            v
        );
        let map = Value::Map(vec![
            (Value::String("a".into()), Value::Float32(1.5)),
            (Value::Int16(2), Value::Bytes(vec![1])),
        ]);
        let back = avro.decode(&avro.encode(&anything_to_avro(&map).unwrap()).unwrap());
        let Value::Map(entries) = anything_from_avro(&back.unwrap()).unwrap() else {
            panic!()
        };
        // INT8/INT16 are written as int and read back as INT32.
        assert_eq!(entries[1].0, Value::Int32(2));
        assert_eq!(entries[0].1, Value::Float32(1.5));
        assert!(
            anything_to_avro(&Value::Struct(Struct::new(Arc::new(Schema::structure(
                vec![]
            )))))
            .is_err()
        );
    }
    use weir_formats::avro::AvroSchema;

    fn decimal(scale: i32) -> Schema {
        let mut s = Schema::of(Type::Bytes).named(logical::DECIMAL);
        s.version = Some(1);
        s.parameters = Some([(logical::SCALE.to_string(), scale.to_string())].into());
        s
    }

    #[test]
    fn schema_text_as_confluent_writes_it() {
        let mut s = Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int64)),
            ("small".into(), Schema::of(Type::Int8)),
            ("name".into(), Schema::of(Type::String).optional()),
            ("price".into(), decimal(2)),
            ("day".into(), logical_schema(Type::Int32, logical::DATE)),
            ("at".into(), logical_schema(Type::Int64, logical::TIMESTAMP)),
            (
                "tags".into(),
                Schema::map(Schema::of(Type::String), Schema::of(Type::Int32)),
            ),
            (
                "by_id".into(),
                Schema::map(Schema::of(Type::Int32), Schema::of(Type::String)),
            ),
        ])
        .named("shop.Order");
        let mut with_default = Schema::of(Type::Int32).optional();
        with_default.default = Some(Value::Int32(7));
        s.fields.push(Field {
            name: "qty".into(),
            index: s.fields.len(),
            schema: Arc::new(with_default),
        });
        let text = avro_schema_text(&s).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"type":"record","name":"Order","namespace":"shop","fields":["#,
                r#"{"name":"id","type":"long"},"#,
                r#"{"name":"small","type":{"type":"int","connect.type":"int8"}},"#,
                r#"{"name":"name","type":["null","string"],"default":null},"#,
                r#"{"name":"price","type":{"type":"bytes","scale":2,"precision":64,"connect.version":1,"connect.parameters":{"scale":"2"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}},"#,
                r#"{"name":"day","type":{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Date","logicalType":"date"}},"#,
                r#"{"name":"at","type":{"type":"long","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Timestamp","logicalType":"timestamp-millis"}},"#,
                r#"{"name":"tags","type":{"type":"map","values":"int"}},"#,
                r#"{"name":"by_id","type":{"type":"array","items":{"type":"record","name":"MapEntry","namespace":"io.confluent.connect.avro","fields":[{"name":"key","type":"int"},{"name":"value","type":"string"}]}}},"#,
                r#"{"name":"qty","type":[{"type":"int","connect.default":7},"null"],"default":7}"#,
                r#"],"connect.name":"shop.Order"}"#
            )
        );
        // apache-avro takes it, and it reads back as the same Connect schema.
        AvroSchema::parse(&text).unwrap();
        let back = AvroReadSchema::parse(&text, &[]).unwrap();
        let mut expect = s.clone();
        // Reading marks field defaults that had no connect.default.
        let _ = &mut expect;
        assert_eq!(back.connect().fields.len(), s.fields.len());
        for (a, b) in back.connect().fields.iter().zip(&s.fields) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.schema.ty, b.schema.ty, "{}", a.name);
            assert_eq!(a.schema.name, b.schema.name, "{}", a.name);
            assert_eq!(a.schema.optional, b.schema.optional, "{}", a.name);
            assert_eq!(a.schema.default, b.schema.default, "{}", a.name);
            assert_eq!(a.schema.parameters, b.schema.parameters, "{}", a.name);
        }
        assert_eq!(back.connect().name.as_deref(), Some("shop.Order"));
        // A value round trip through the binary encoding.
        let schema = Arc::new(s);
        let v = Value::Struct(Struct {
            schema: Arc::clone(&schema),
            values: vec![
                Value::Int64(1),
                Value::Int8(-3),
                Value::Null,
                Value::Bytes(vec![0x30, 0x39]),
                Value::Int32(19000),
                Value::Int64(1_700_000_000_000),
                Value::Map(vec![(Value::String("a".into()), Value::Int32(1))]),
                Value::Map(vec![(Value::Int32(5), Value::String("five".into()))]),
                Value::Int32(9),
            ],
        });
        let avro = AvroSchema::parse(&text).unwrap();
        let bytes = avro.encode(&to_avro(&schema, &v).unwrap()).unwrap();
        let decoded = avro.decode(&bytes).unwrap();
        let Value::Struct(got) = back.value(&decoded).unwrap() else {
            panic!("not a struct")
        };
        let Value::Struct(want) = v else {
            unreachable!()
        };
        assert_eq!(got.values, want.values);
    }

    #[test]
    fn optional_logical_types_defaults_and_nested_defaults() {
        // The text Confluent's AvroData (7.0) makes of this schema, seen
        // through the differential harness of the Connect converter tests.
        let mut date = logical_schema(Type::Int32, logical::DATE).optional();
        date.version = Some(1);
        let mut q = Schema::of(Type::Int32).optional();
        q.default = Some(Value::Int32(7));
        let inner = Schema::structure(vec![("y".into(), Schema::of(Type::Int32))]).optional();
        let s = Schema::structure(vec![
            ("x".into(), Schema::of(Type::Int8)),
            ("d".into(), decimal(2)),
            ("dt".into(), date),
            ("q".into(), q),
            (
                "m".into(),
                Schema::map(Schema::of(Type::Int32), Schema::of(Type::String)),
            ),
            ("inner".into(), inner),
        ])
        .named("a.B");
        assert_eq!(
            avro_schema_text(&s).unwrap(),
            concat!(
                r#"{"type":"record","name":"B","namespace":"a","fields":[{"name":"x","type":{"type":"int","connect.type":"int8"}},"#,
                r#"{"name":"d","type":{"type":"bytes","scale":2,"precision":64,"connect.version":1,"connect.parameters":{"scale":"2"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}},"#,
                r#"{"name":"dt","type":["null",{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Date","logicalType":"date"}],"default":null},"#,
                r#"{"name":"q","type":[{"type":"int","connect.default":7},"null"],"default":7},"#,
                r#"{"name":"m","type":{"type":"array","items":{"type":"record","name":"MapEntry","namespace":"io.confluent.connect.avro","fields":[{"name":"key","type":"int"},{"name":"value","type":"string"}]}}},"#,
                r#"{"name":"inner","type":["null",{"type":"record","name":"ConnectDefault","namespace":"io.confluent.connect.avro","fields":[{"name":"y","type":"int"}]}],"default":null}],"connect.name":"a.B"}"#
            )
        );
    }

    #[test]
    fn decimal_parameters_keep_their_order_both_ways() {
        // Debezium's Decimal: `scale`, then `connect.decimal.precision`.
        let mut d = decimal(2);
        if let Some(p) = &mut d.parameters {
            p.insert(DECIMAL_PRECISION.into(), "10".into());
        }
        let s = Schema::structure(vec![("d".into(), d)]).named("a.B");
        let text = avro_schema_text(&s).unwrap();
        assert!(
            text.contains(r#""connect.parameters":{"scale":"2","connect.decimal.precision":"10"}"#),
            "{text}"
        );
        let read = AvroReadSchema::parse(&text, &[]).unwrap();
        let keys: Vec<&String> = read.connect().fields[0]
            .schema
            .parameters
            .iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [logical::SCALE, DECIMAL_PRECISION]);
        // Other parameters in the text's order, after the ones the Avro
        // type itself implies.
        let text = r#"{"type":"string","connect.parameters":{"z":"1","a":"2","m":"3"}}"#;
        let read = AvroReadSchema::parse(text, &[]).unwrap();
        let keys: Vec<&str> = read
            .connect()
            .parameters
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn unions_enums_and_unnamed_structs() {
        let text = r#"{"type":"record","name":"R","fields":[
            {"name":"u","type":["null","int","string"]},
            {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
            {"name":"n","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}},
            {"name":"again","type":"Inner"}]}"#;
        let r = AvroReadSchema::parse(text, &[]).unwrap();
        let u = &r.connect().fields[0].schema;
        assert_eq!(u.name.as_deref(), Some(UNION));
        assert!(u.optional);
        assert_eq!(u.fields[1].name, "string");
        let e = &r.connect().fields[1].schema;
        assert_eq!(
            e.parameters.as_ref().unwrap().get(ENUM).map(String::as_str),
            Some("Color")
        );
        let avro = AvroSchema::parse(text).unwrap();
        let value = AValue::Record(vec![
            (
                "u".into(),
                AValue::Union(2, Box::new(AValue::String("s".into()))),
            ),
            ("e".into(), AValue::Enum(1, "GREEN".into())),
            (
                "n".into(),
                AValue::Record(vec![("x".into(), AValue::Int(4))]),
            ),
            (
                "again".into(),
                AValue::Record(vec![("x".into(), AValue::Int(5))]),
            ),
        ]);
        let decoded = avro.decode(&avro.encode(&value).unwrap()).unwrap();
        let Value::Struct(s) = r.value(&decoded).unwrap() else {
            panic!()
        };
        let Value::Struct(u) = &s.values[0] else {
            panic!()
        };
        assert_eq!(u.values, vec![Value::Null, Value::String("s".into())]);
        assert_eq!(s.values[1], Value::String("GREEN".into()));
        // Written back, the union is a union again.
        let back = avro_schema_text(r.connect()).unwrap();
        assert!(
            back.contains(r#"{"name":"u","type":["null","int","string"],"default":null}"#),
            "{back}"
        );
        assert!(back.contains(r#""again","type":"Inner""#), "{back}");
        // Two different unnamed structs cannot both be ConnectDefault.
        let a = Schema::structure(vec![("x".into(), Schema::of(Type::Int32))]);
        let b = Schema::structure(vec![("y".into(), Schema::of(Type::Int32))]);
        let outer = Schema::structure(vec![("a".into(), a), ("b".into(), b)]);
        assert!(avro_schema_text(&outer).is_err());
        // Hostile texts fail cleanly.
        for bad in [
            "",
            "[",
            r#""null""#,
            r#"{"type":"Nope"}"#,
            r#"{"type":"record","name":"X","fields":[{"name":"x","type":"X"}]}"#,
        ] {
            assert!(AvroReadSchema::parse(bad, &[]).is_err(), "{bad}");
        }
    }
}

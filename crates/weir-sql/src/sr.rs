//! The schema-registry formats `AVRO`, `PROTOBUF` and `JSON_SR`: SQL
//! columns to and from registry schemas, and rows to and from Confluent's
//! wire frame, on `weir-formats` (its Avro, Protobuf and JSON Schema
//! parsers and encoders; nothing is parsed twice here).
//!
//! Rows go through JSON on both sides so the column matching and type
//! conversions of the `JSON` format apply unchanged: a decoded datum
//! becomes JSON (Avro's plain encoding, Protobuf with declared field
//! names), and a row's JSON becomes a datum of the write schema.
//!
//! Schemas are named as ksqlDB names them: Avro records
//! `io.confluent.ksql.avro_schemas.KsqlDataSourceSchema` (nested records
//! `KsqlDataSourceSchema_<FIELD>`), every field an optional union with
//! null; Protobuf messages `ConnectDefault1`, `ConnectDefault2`, ...;
//! JSON Schema objects with `connect.type` hints. Inferred columns are
//! upper-cased (unquoted identifiers then name them); a non-record schema
//! gives one column, `ROWKEY` for keys and `ROWVAL` for values.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value as J};
use weir_formats::avro::{AvroSchema, JsonEncoding};
use weir_formats::json_schema::parse_document;
use weir_formats::prost_reflect::{
    DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};
use weir_formats::protobuf::{field_meta, ProtobufSchema};
use weir_formats::{wire, ResolvedReference, Schema, SchemaType};

use crate::decimal::Dec;
use crate::error::{Result, SqlError};
use crate::types::SqlType;

const PB_DECIMAL: &str = "confluent.type.Decimal";
const PB_DATE: &str = "google.type.Date";
const PB_TIME: &str = "google.type.TimeOfDay";
const PB_TIMESTAMP: &str = "google.protobuf.Timestamp";

/// The registry formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrKind {
    Avro,
    Protobuf,
    JsonSr,
}

impl SrKind {
    pub fn name(self) -> &'static str {
        match self {
            SrKind::Avro => "AVRO",
            SrKind::Protobuf => "PROTOBUF",
            SrKind::JsonSr => "JSON_SR",
        }
    }

    pub fn schema_type(self) -> SchemaType {
        match self {
            SrKind::Avro => SchemaType::Avro,
            SrKind::Protobuf => SchemaType::Protobuf,
            SrKind::JsonSr => SchemaType::Json,
        }
    }

    /// Checks that the format can carry these columns.
    pub fn check(self, columns: &[(String, SqlType)]) -> Result<()> {
        for (name, ty) in columns {
            check_type(self, name, ty)?;
        }
        Ok(())
    }
}

fn check_type(kind: SrKind, col: &str, ty: &SqlType) -> Result<()> {
    let refuse = |why: &str| {
        Err(SqlError::invalid(format!(
            "The '{}' format does not support {why}, column: `{col}`",
            kind.name()
        )))
    };
    match ty {
        SqlType::Map(k, v) => {
            if **k != SqlType::String {
                return refuse("maps with non-STRING keys");
            }
            check_type(kind, col, v)
        }
        SqlType::Array(t) => check_type(kind, col, t),
        SqlType::Struct(fields) => fields
            .iter()
            .try_for_each(|(_, t)| check_type(kind, col, t)),
        _ => Ok(()),
    }
}

/// The payload of a frame (after the magic byte and schema id) as JSON,
/// read with its writer schema.
pub fn decode_payload(parsed: &Parsed, kind: SrKind, rest: &[u8]) -> Result<J> {
    let bad = |e: weir_formats::FormatError| SqlError::serde(kind.name(), e);
    match parsed {
        Parsed::Avro(s) => {
            let v = s.decode(rest).map_err(bad)?;
            s.to_json(&v, JsonEncoding::Plain).map_err(bad)
        }
        Parsed::Protobuf(p, _) => {
            let (indexes, rest) = wire::read_message_indexes(rest).map_err(bad)?;
            let m = p.message_at(&indexes).map_err(bad)?;
            let msg = p.decode(m, rest).map_err(bad)?;
            protobuf_json(&msg, kind)
        }
        Parsed::JsonSr => serde_json::from_slice(rest).map_err(|e| SqlError::serde(kind.name(), e)),
    }
}

/// A body without the registry frame (`AVRO_NOSR`, `PROTOBUF_NOSR`: no
/// schema id and, for Protobuf, no message indexes) as JSON.
pub fn decode_nosr(parsed: &Parsed, kind: SrKind, bytes: &[u8]) -> Result<J> {
    match parsed {
        Parsed::Protobuf(p, m) => {
            let msg = p
                .decode(m.clone(), bytes)
                .map_err(|e| SqlError::serde(kind.name(), e))?;
            protobuf_json(&msg, kind)
        }
        _ => decode_payload(parsed, kind, bytes),
    }
}

/// Fetches schemas by id (the registry; a fixed set in tests).
pub trait SchemaLookup: Send + Sync {
    /// The schema with this id and its references resolved.
    fn by_id(&self, id: i32) -> Result<(Schema, Vec<ResolvedReference>)>;
}

/// `AVRO_NOSR`: records carry no schema id, so there is nothing to look up.
#[derive(Debug)]
pub struct NoLookup;

impl SchemaLookup for NoLookup {
    fn by_id(&self, id: i32) -> Result<(Schema, Vec<ResolvedReference>)> {
        Err(SqlError::serde(
            "AVRO_NOSR",
            format!("no schema registry: schema id {id}"),
        ))
    }
}

/// A parsed schema, ready to read or write.
#[derive(Debug)]
pub enum Parsed {
    Avro(AvroSchema),
    /// The file and the message written (the first).
    Protobuf(ProtobufSchema, MessageDescriptor),
    JsonSr,
}

impl Parsed {
    /// Parses a registry schema of `kind`.
    pub fn parse(kind: SrKind, schema: &Schema, refs: &[ResolvedReference]) -> Result<Parsed> {
        let bad = |e: weir_formats::FormatError| SqlError::serde(kind.name(), e);
        if schema.schema_type != kind.schema_type() {
            return Err(SqlError::serde(
                kind.name(),
                format!(
                    "the registry holds a {} schema, not {}",
                    schema.schema_type.name(),
                    kind.schema_type().name()
                ),
            ));
        }
        Ok(match kind {
            SrKind::Avro => {
                Parsed::Avro(AvroSchema::parse_with_references(&schema.schema, refs).map_err(bad)?)
            }
            SrKind::Protobuf => {
                let p = ProtobufSchema::parse_with_references(&schema.schema, refs).map_err(bad)?;
                let m = p.default_message().map_err(bad)?;
                Parsed::Protobuf(p, m)
            }
            SrKind::JsonSr => {
                parse_document(&schema.schema).map_err(bad)?;
                Parsed::JsonSr
            }
        })
    }
}

/// A registry format bound to a subject: the schema rows are written with
/// and the schemas records were written with, by id.
pub struct Bound {
    pub write_id: i32,
    pub write: Parsed,
    /// Avro: the write schema as JSON and its named types, to give a
    /// row's columns the schema's field names.
    avro: Option<(J, HashMap<String, J>)>,
    lookup: Arc<dyn SchemaLookup>,
    read: Mutex<HashMap<i32, Arc<Parsed>>>,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("write_id", &self.write_id)
            .finish()
    }
}

/// At most this many writer schemas are kept per format.
const READ_CACHE: usize = 1000;

impl Bound {
    pub fn new(write_id: i32, write: Parsed, lookup: Arc<dyn SchemaLookup>) -> Bound {
        let avro = match &write {
            Parsed::Avro(s) => serde_json::to_value(s.root()).ok().map(|root| {
                let mut names = HashMap::new();
                for r in s.referenced() {
                    if let Ok(r) = serde_json::to_value(r) {
                        collect_avro_names(&r, None, &mut names, 0);
                    }
                }
                collect_avro_names(&root, None, &mut names, 0);
                (root, names)
            }),
            _ => None,
        };
        Bound {
            avro,
            write_id,
            write,
            lookup,
            read: Mutex::new(HashMap::new()),
        }
    }

    fn reader(&self, kind: SrKind, id: i32) -> Result<Arc<Parsed>> {
        if let Some(p) = self.read.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(p.clone());
        }
        let (schema, refs) = self.lookup.by_id(id)?;
        let parsed = Arc::new(Parsed::parse(kind, &schema, &refs)?);
        let mut cache = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= READ_CACHE {
            cache.clear();
        }
        cache.insert(id, parsed.clone());
        Ok(parsed)
    }

    /// A frame's payload as JSON.
    pub fn decode(&self, kind: SrKind, frame: &[u8]) -> Result<J> {
        let bad = |e: weir_formats::FormatError| SqlError::serde(kind.name(), e);
        let (id, rest) = wire::split(frame).map_err(bad)?;
        let parsed = self.reader(kind, id)?;
        decode_payload(&parsed, kind, rest)
    }

    /// A JSON_SR frame's JSON text, once its schema id is known.
    pub fn json_sr_payload<'a>(&self, frame: &'a [u8]) -> Result<&'a [u8]> {
        let kind = SrKind::JsonSr;
        let (id, rest) = wire::split(frame).map_err(|e| SqlError::serde(kind.name(), e))?;
        self.reader(kind, id)?;
        Ok(rest)
    }

    /// A frame of the write schema around JSON text already written.
    pub fn json_sr_frame(&self, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 5);
        wire::write_header(self.write_id, &mut out);
        out.extend_from_slice(text);
        out
    }

    /// A row's JSON as a frame of the write schema.
    pub fn encode(&self, kind: SrKind, json: &J) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        wire::write_header(self.write_id, &mut out);
        self.encode_into(kind, json, &mut out)?;
        Ok(out)
    }

    /// A row's JSON in the write schema, without the wire frame
    /// (`AVRO_NOSR`, `PROTOBUF_NOSR`: no message indexes either).
    pub fn encode_payload(&self, kind: SrKind, json: &J) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        self.encode_body(kind, json, &mut out, false)?;
        Ok(out)
    }

    fn encode_into(&self, kind: SrKind, json: &J, out: &mut Vec<u8>) -> Result<()> {
        self.encode_body(kind, json, out, true)
    }

    fn encode_body(&self, kind: SrKind, json: &J, out: &mut Vec<u8>, framed: bool) -> Result<()> {
        let bad = |e: weir_formats::FormatError| SqlError::serde(kind.name(), e);
        match &self.write {
            Parsed::Avro(s) => {
                let fitted;
                let json = match &self.avro {
                    Some((root, names)) => {
                        fitted = fit_avro(json, root, names, 0);
                        &fitted
                    }
                    None => json,
                };
                let v = s.from_json(json, JsonEncoding::Plain).map_err(bad)?;
                s.encode_into(&v, out).map_err(bad)?;
            }
            Parsed::Protobuf(p, m) => {
                use weir_formats::prost_reflect::prost::Message;
                if framed {
                    let indexes = p.indexes_of(m).map_err(bad)?;
                    wire::write_message_indexes(&indexes, out);
                }
                let json = protobuf_input(json, m);
                let msg = ProtobufSchema::from_json(m.clone(), &json).map_err(bad)?;
                msg.encode(out)
                    .map_err(|e| SqlError::serde(kind.name(), e))?;
            }
            Parsed::JsonSr => {
                serde_json::to_writer(&mut *out, json)
                    .map_err(|e| SqlError::serde(kind.name(), e))?;
            }
        }
        Ok(())
    }
}

/// Named Avro types by short and full name.
fn collect_avro_names(s: &J, ns: Option<&str>, names: &mut HashMap<String, J>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match s {
        J::Array(branches) => branches
            .iter()
            .for_each(|b| collect_avro_names(b, ns, names, depth + 1)),
        J::Object(o) => {
            let ns = o.get("namespace").and_then(J::as_str).or(ns);
            if let Some(n) = o.get("name").and_then(J::as_str) {
                if let Some(ns) = ns.filter(|_| !n.contains('.')) {
                    names.insert(format!("{ns}.{n}"), s.clone());
                }
                names.insert(n.to_string(), s.clone());
            }
            for f in o.get("fields").and_then(J::as_array).into_iter().flatten() {
                if let Some(t) = f.get("type") {
                    collect_avro_names(t, ns, names, depth + 1);
                }
            }
            for k in ["items", "values"] {
                if let Some(t) = o.get(k) {
                    collect_avro_names(t, ns, names, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// A row's JSON with record fields renamed to the schema's spelling
/// (columns are upper-cased; a producer's schema may not be).
fn fit_avro(v: &J, s: &J, names: &HashMap<String, J>, depth: usize) -> J {
    if depth > MAX_DEPTH || v.is_null() {
        return v.clone();
    }
    match s {
        J::String(n) => match names.get(n) {
            Some(def) => fit_avro(v, def, names, depth + 1),
            None => v.clone(),
        },
        J::Array(branches) => {
            let resolve = |b: &J| match b {
                J::String(n) => names.get(n).cloned().unwrap_or_else(|| b.clone()),
                b => b.clone(),
            };
            let kind = |b: &J| {
                b.get("type")
                    .and_then(J::as_str)
                    .map(str::to_string)
                    .or_else(|| b.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let fits = |b: &J| match (v, kind(b).as_str()) {
                (J::Object(_), k) => k == "record" || k == "map",
                (J::Array(_), k) => k == "array",
                (_, "null") => false,
                _ => true,
            };
            let resolved: Vec<J> = branches.iter().map(resolve).collect();
            match resolved.iter().find(|b| fits(b)) {
                Some(b) => fit_avro(v, b, names, depth + 1),
                None => v.clone(),
            }
        }
        J::Object(o) if o.get("logicalType").and_then(J::as_str) == Some("decimal") => {
            // Rows carry decimals as text; Avro's JSON form is the
            // unscaled two's-complement bytes (base64 here).
            let scale = o.get("scale").and_then(J::as_u64).unwrap_or(0) as u32;
            let text = match v {
                J::String(t) => t.clone(),
                J::Number(n) => n.to_string(),
                _ => return v.clone(),
            };
            match Dec::parse(&text).and_then(|d| d.rescale(scale)) {
                Some(d) => J::String(base64_encode(&d.to_be_bytes())),
                None => v.clone(),
            }
        }
        J::Object(o) => match (o.get("type").and_then(J::as_str), v) {
            (Some("record"), J::Object(obj)) => {
                let mut out = serde_json::Map::new();
                for f in o.get("fields").and_then(J::as_array).into_iter().flatten() {
                    let Some(name) = f.get("name").and_then(J::as_str) else {
                        continue;
                    };
                    let found = obj.get(name).or_else(|| {
                        obj.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v)
                    });
                    if let Some(fv) = found {
                        out.insert(
                            name.to_string(),
                            fit_avro(fv, f.get("type").unwrap_or(&J::Null), names, depth + 1),
                        );
                    }
                }
                J::Object(out)
            }
            (Some("array"), J::Array(items)) => {
                let t = o.get("items").unwrap_or(&J::Null);
                J::Array(
                    items
                        .iter()
                        .map(|i| fit_avro(i, t, names, depth + 1))
                        .collect(),
                )
            }
            (Some("map"), J::Object(obj)) => {
                let t = o.get("values").unwrap_or(&J::Null);
                J::Object(
                    obj.iter()
                        .map(|(k, i)| (k.clone(), fit_avro(i, t, names, depth + 1)))
                        .collect(),
                )
            }
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

/// A Protobuf message as JSON with the declared field names, every field
/// present (proto3 scalars have no null: an absent one is its default).
fn protobuf_json(msg: &DynamicMessage, kind: SrKind) -> Result<J> {
    let opts = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    let mut json = msg
        .serialize_with_options(serde_json::value::Serializer, &opts)
        .map_err(|e| SqlError::serde(kind.name(), e))?;
    timestamps_to_millis(&mut json, &msg.descriptor());
    Ok(json)
}

/// A decoded `confluent.type.Decimal` as decimal text.
fn pb_decimal_text(v: &J) -> Option<J> {
    let bytes = crate::functions::base64_decode(v.get("value")?.as_str().unwrap_or(""))?;
    let scale = v.get("scale").and_then(J::as_i64).unwrap_or(0);
    let d = Dec::from_be_bytes(&bytes, u32::try_from(scale).ok()?)?;
    Some(J::String(d.to_plain_string()))
}

/// A decoded `google.type.Date` as days since the epoch.
fn pb_date_days(v: &J) -> Option<J> {
    let f = |k: &str| v.get(k).and_then(J::as_i64).unwrap_or(0);
    let (m, d) = (
        u32::try_from(f("month")).ok()?,
        u32::try_from(f("day")).ok()?,
    );
    Some(J::from(crate::time::days_from_civil(f("year"), m, d)))
}

/// A decoded `google.type.TimeOfDay` as milliseconds since midnight.
fn pb_time_millis(v: &J) -> J {
    let f = |k: &str| v.get(k).and_then(J::as_i64).unwrap_or(0);
    J::from(
        f("hours") * 3_600_000
            + f("minutes") * 60_000
            + f("seconds") * 1000
            + f("nanos") / 1_000_000,
    )
}

/// `google.protobuf.Timestamp` fields are RFC 3339 text in the canonical
/// JSON; rows carry milliseconds. Decimals become their text, dates days
/// and times of day milliseconds.
fn timestamps_to_millis(json: &mut J, m: &MessageDescriptor) {
    let J::Object(obj) = json else { return };
    for f in m.fields() {
        let Some(v) = obj.get_mut(f.name()) else {
            continue;
        };
        let Kind::Message(inner) = f.kind() else {
            continue;
        };
        if f.is_map() {
            continue;
        }
        let fix = |v: &mut J| match inner.full_name() {
            PB_TIMESTAMP => {
                if let Some(ms) = v.as_str().and_then(rfc3339_millis) {
                    *v = J::from(ms);
                }
            }
            PB_DECIMAL => *v = pb_decimal_text(v).unwrap_or(J::Null),
            PB_DATE => *v = pb_date_days(v).unwrap_or(J::Null),
            PB_TIME => *v = pb_time_millis(v),
            _ => timestamps_to_millis(v, &inner),
        };
        match v {
            J::Array(items) => items.iter_mut().for_each(fix),
            v => fix(v),
        }
    }
}

fn rfc3339_millis(s: &str) -> Option<i64> {
    crate::time::parse_timestamp_text(s.trim_end_matches('Z'))
}

/// A row's JSON for a Protobuf message: nulls left out (proto3 has none),
/// TIMESTAMP milliseconds as RFC 3339 text.
fn protobuf_input(json: &J, m: &MessageDescriptor) -> J {
    let J::Object(obj) = json else {
        return json.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        let field = m
            .get_field_by_name(k)
            .or_else(|| m.fields().find(|f| f.name().eq_ignore_ascii_case(k)));
        let Some(field) = field else { continue };
        let v = match (field.kind(), v) {
            (Kind::Message(inner), v) if !field.is_map() => {
                let scale = field_meta(&field)
                    .get("scale")
                    .and_then(|s| s.parse::<u32>().ok());
                let conv = |v: &J| match inner.full_name() {
                    PB_TIMESTAMP => v.as_i64().map_or(v.clone(), |ms| {
                        J::String(format!("{}Z", crate::time::format_timestamp(ms)))
                    }),
                    PB_DECIMAL => pb_decimal_json(v, scale).unwrap_or(J::Null),
                    PB_DATE => v.as_i64().map_or(J::Null, |d| {
                        let (y, m, d) = crate::time::civil_from_days(d);
                        json!({"year": y, "month": m, "day": d})
                    }),
                    PB_TIME => v.as_i64().map_or(J::Null, |ms| {
                        json!({"hours": ms / 3_600_000, "minutes": ms / 60_000 % 60,
                            "seconds": ms / 1000 % 60, "nanos": ms % 1000 * 1_000_000})
                    }),
                    _ => protobuf_input(v, &inner),
                };
                match v {
                    J::Array(items) => {
                        J::Array(items.iter().filter(|i| !i.is_null()).map(conv).collect())
                    }
                    v => conv(v),
                }
            }
            (_, v) => v.clone(),
        };
        out.insert(field.name().to_string(), v);
    }
    J::Object(out)
}

/// A row's decimal (text) as `confluent.type.Decimal` JSON: the unscaled
/// bytes, their digit count as the precision (as Confluent's converter
/// writes it) and the scale (the field's declared one when it has one).
fn pb_decimal_json(v: &J, scale: Option<u32>) -> Option<J> {
    let d = match v {
        J::String(t) => Dec::parse(t)?,
        J::Number(n) => Dec::parse(&n.to_string())?,
        _ => return None,
    };
    let d = match scale {
        Some(s) => d.rescale(s)?,
        None => d,
    };
    let digits = d.unscaled.unsigned_abs().to_string().len();
    Some(json!({
        "value": base64_encode(&d.to_be_bytes()),
        "precision": digits,
        "scale": d.scale,
    }))
}

fn base64_encode(b: &[u8]) -> String {
    crate::functions::base64_encode(b)
}

// ---- Inference: registry schema to columns. ----

/// The columns a schema gives (`single` names the column of a non-record
/// schema), and whether the record was unwrapped from a single column.
pub fn columns_of(parsed: &Parsed, single: &str) -> Result<(Vec<(String, SqlType)>, bool)> {
    let ty = match parsed {
        Parsed::Avro(s) => {
            // The canonical form drops logical types: walk the full JSON.
            let json = |x: &weir_formats::apache_avro::Schema| {
                serde_json::to_value(x).map_err(|e| SqlError::serde("AVRO", e))
            };
            let mut names = HashMap::new();
            for r in s.referenced() {
                avro_type(&json(r)?, &mut names, 0)?;
            }
            avro_type(&json(s.root())?, &mut names, 0)?
        }
        Parsed::Protobuf(_, m) => proto_message_type(m, 0)?,
        Parsed::JsonSr => {
            return Err(SqlError::Internal {
                message: "JSON_SR columns come from the schema text".into(),
            })
        }
    };
    Ok(split_columns(ty, single))
}

/// Columns from a JSON Schema text.
pub fn json_schema_columns(text: &str, single: &str) -> Result<(Vec<(String, SqlType)>, bool)> {
    let doc = parse_document(text).map_err(|e| SqlError::serde("JSON_SR", e))?;
    Ok(split_columns(json_schema_type(&doc, 0)?, single))
}

fn split_columns(ty: SqlType, single: &str) -> (Vec<(String, SqlType)>, bool) {
    match ty {
        SqlType::Struct(fields) => (fields, true),
        t => (vec![(single.to_string(), t)], false),
    }
}

const MAX_DEPTH: usize = 64;

fn too_deep() -> SqlError {
    SqlError::invalid("the schema nests too deeply")
}

fn unsupported(format: &str, what: impl fmt::Display) -> SqlError {
    SqlError::invalid(format!(
        "Cannot infer columns from the {format} schema: {what} has no SQL type in Weir"
    ))
}

fn avro_type(s: &J, names: &mut HashMap<String, SqlType>, depth: usize) -> Result<SqlType> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match s {
        J::String(name) => match name.as_str() {
            "boolean" => Ok(SqlType::Boolean),
            "int" => Ok(SqlType::Int),
            "long" => Ok(SqlType::Bigint),
            "float" | "double" => Ok(SqlType::Double),
            "string" => Ok(SqlType::String),
            "bytes" => Ok(SqlType::Bytes),
            named => names
                .get(named)
                .cloned()
                .ok_or_else(|| unsupported("AVRO", format!("type {named}"))),
        },
        J::Array(branches) => {
            let non_null: Vec<&J> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            match non_null.as_slice() {
                [one] => avro_type(one, names, depth + 1),
                _ => Err(unsupported("AVRO", "a union of several non-null types")),
            }
        }
        J::Object(o) => {
            let ty = o.get("type").and_then(J::as_str).unwrap_or_default();
            let logical = o.get("logicalType").and_then(J::as_str);
            let t = match (ty, logical) {
                ("long", Some("timestamp-millis")) => SqlType::Timestamp,
                ("int", Some("date")) => SqlType::Date,
                ("int", Some("time-millis")) => SqlType::Time,
                (_, Some("decimal")) => {
                    let p = o.get("precision").and_then(J::as_u64).unwrap_or(0);
                    let sc = o.get("scale").and_then(J::as_u64).unwrap_or(0);
                    inferred_decimal("AVRO", p, sc)?
                }
                ("record", _) => {
                    let mut fields = Vec::new();
                    for f in o.get("fields").and_then(J::as_array).into_iter().flatten() {
                        let name = f.get("name").and_then(J::as_str).unwrap_or_default();
                        let t = avro_type(f.get("type").unwrap_or(&J::Null), names, depth + 1)?;
                        fields.push((name.to_ascii_uppercase(), t));
                    }
                    SqlType::Struct(fields)
                }
                ("enum", _) => SqlType::String,
                ("fixed", _) => SqlType::Bytes,
                ("array", _) => SqlType::Array(Box::new(avro_type(
                    o.get("items").unwrap_or(&J::Null),
                    names,
                    depth + 1,
                )?)),
                ("map", _) => SqlType::Map(
                    Box::new(SqlType::String),
                    Box::new(avro_type(
                        o.get("values").unwrap_or(&J::Null),
                        names,
                        depth + 1,
                    )?),
                ),
                (t, _) => return avro_type(&J::String(t.to_string()), names, depth + 1),
            };
            if let Some(n) = o.get("name").and_then(J::as_str) {
                if let Some(ns) = o.get("namespace").and_then(J::as_str) {
                    names.insert(format!("{ns}.{n}"), t.clone());
                }
                names.insert(n.to_string(), t.clone());
            }
            Ok(t)
        }
        other => Err(unsupported("AVRO", other)),
    }
}

fn proto_message_type(m: &MessageDescriptor, depth: usize) -> Result<SqlType> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut fields = Vec::new();
    for f in m.fields() {
        let t = match f.kind() {
            Kind::Message(inner) if inner.full_name() == PB_DECIMAL => {
                // ksqlDB reads precision and scale from the field's metadata.
                let meta = field_meta(&f);
                let num = |k: &str| meta.get(k).and_then(|v| v.parse::<u64>().ok());
                let scale = num("scale").unwrap_or(0);
                inferred_decimal("PROTOBUF", num("precision").unwrap_or(64), scale)?
            }
            k => proto_kind(&k, depth)?,
        };
        let t = if f.is_map() {
            t
        } else if f.is_list() {
            SqlType::Array(Box::new(t))
        } else {
            t
        };
        fields.push((f.name().to_ascii_uppercase(), t));
    }
    Ok(SqlType::Struct(fields))
}

fn proto_kind(k: &Kind, depth: usize) -> Result<SqlType> {
    Ok(match k {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => SqlType::Int,
        Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => SqlType::Bigint,
        Kind::Float | Kind::Double => SqlType::Double,
        Kind::Bool => SqlType::Boolean,
        Kind::String | Kind::Enum(_) => SqlType::String,
        Kind::Bytes => SqlType::Bytes,
        Kind::Message(m) if m.is_map_entry() => {
            let key = m.map_entry_key_field().kind();
            if !matches!(key, Kind::String) {
                return Err(unsupported("PROTOBUF", "a map with non-string keys"));
            }
            SqlType::Map(
                Box::new(SqlType::String),
                Box::new(proto_kind(&m.map_entry_value_field().kind(), depth + 1)?),
            )
        }
        Kind::Message(m) if m.full_name() == PB_TIMESTAMP => SqlType::Timestamp,
        Kind::Message(m) if m.full_name() == PB_DATE => SqlType::Date,
        Kind::Message(m) if m.full_name() == PB_TIME => SqlType::Time,
        Kind::Message(m) if m.full_name() == PB_DECIMAL => {
            return Err(unsupported("PROTOBUF", "a decimal inside a map or list"))
        }
        Kind::Message(m) => proto_message_type(m, depth + 1)?,
    })
}

/// A DECIMAL found in a registry schema; Weir holds at most 38 digits.
fn inferred_decimal(format: &str, precision: u64, scale: u64) -> Result<SqlType> {
    if precision == 0 || scale > precision || precision > u64::from(crate::decimal::MAX_PRECISION) {
        return Err(unsupported(
            format,
            format!(
                "DECIMAL({precision}, {scale}) (Weir holds DECIMAL of 1 to {} digits)",
                crate::decimal::MAX_PRECISION
            ),
        ));
    }
    Ok(SqlType::Decimal(precision as u32, scale as u32))
}

fn json_schema_type(s: &J, depth: usize) -> Result<SqlType> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let Some(o) = s.as_object() else {
        return Err(unsupported("JSON_SR", s));
    };
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = o.get(key).and_then(J::as_array) {
            let non_null: Vec<&J> = branches
                .iter()
                .filter(|b| b.get("type").and_then(J::as_str) != Some("null"))
                .collect();
            return match non_null.as_slice() {
                [one] => json_schema_type(one, depth + 1),
                _ => Err(unsupported("JSON_SR", format!("a {key} of several types"))),
            };
        }
    }
    let ty = match o.get("type") {
        Some(J::String(t)) => t.as_str(),
        Some(J::Array(ts)) => {
            let mut non_null = ts.iter().filter_map(J::as_str).filter(|t| *t != "null");
            match (non_null.next(), non_null.next()) {
                (Some(one), None) => one,
                _ => return Err(unsupported("JSON_SR", "a type list of several types")),
            }
        }
        _ if o.contains_key("properties") => "object",
        _ => return Err(unsupported("JSON_SR", s)),
    };
    let connect = o.get("connect.type").and_then(J::as_str);
    let title = o.get("title").and_then(J::as_str);
    Ok(match (ty, connect, title) {
        ("integer", _, Some("org.apache.kafka.connect.data.Timestamp")) => SqlType::Timestamp,
        ("integer", _, Some("org.apache.kafka.connect.data.Date")) => SqlType::Date,
        ("integer", _, Some("org.apache.kafka.connect.data.Time")) => SqlType::Time,
        ("integer", Some("int8" | "int16" | "int32"), _) => SqlType::Int,
        ("integer", _, _) => SqlType::Bigint,
        ("number", _, Some("org.apache.kafka.connect.data.Decimal")) => {
            let params = o.get("connect.parameters");
            let num = |k: &str| {
                params
                    .and_then(|p| p.get(k))
                    .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))
            };
            inferred_decimal(
                "JSON_SR",
                num("connect.decimal.precision").unwrap_or(64),
                num("scale").unwrap_or(0),
            )?
        }
        ("number", _, _) => SqlType::Double,
        ("boolean", _, _) => SqlType::Boolean,
        ("string", Some("bytes"), _) => SqlType::Bytes,
        ("string", _, _) => SqlType::String,
        ("array", _, _) => SqlType::Array(Box::new(json_schema_type(
            o.get("items").unwrap_or(&J::Null),
            depth + 1,
        )?)),
        ("object", _, _) => match o.get("properties").and_then(J::as_object) {
            Some(props) => {
                // Properties come back in name order; `connect.index`
                // (in schemas Connect and ksqlDB write) restores theirs.
                let mut props: Vec<(&String, &J)> = props.iter().collect();
                props.sort_by_key(|(_, v)| {
                    v.get("connect.index")
                        .and_then(J::as_u64)
                        .unwrap_or(u64::MAX)
                });
                SqlType::Struct(
                    props
                        .into_iter()
                        .map(|(k, v)| Ok((k.to_ascii_uppercase(), json_schema_type(v, depth + 1)?)))
                        .collect::<Result<_>>()?,
                )
            }
            None => match o.get("additionalProperties") {
                Some(v @ J::Object(_)) => SqlType::Map(
                    Box::new(SqlType::String),
                    Box::new(json_schema_type(v, depth + 1)?),
                ),
                _ => return Err(unsupported("JSON_SR", "an object without properties")),
            },
        },
        (t, _, _) => return Err(unsupported("JSON_SR", format!("type {t}"))),
    })
}

// ---- Generation: columns to a registry schema, as ksqlDB writes them. ----

/// The schema ksqlDB registers for these columns (`wrapped`: a record of
/// the columns; otherwise the single column's type alone).
pub fn schema_for(kind: SrKind, columns: &[(String, SqlType)], wrapped: bool) -> Schema {
    schema_named(kind, columns, wrapped, None)
}

/// As [`schema_for`], the Protobuf message named by a full name
/// (`VALUE_SCHEMA_FULL_NAME`: `package.Message`) rather than
/// `ConnectDefault1`.
pub fn schema_named(
    kind: SrKind,
    columns: &[(String, SqlType)],
    wrapped: bool,
    full_name: Option<&str>,
) -> Schema {
    let text = match kind {
        SrKind::Avro => {
            let s = if wrapped {
                avro_record("KsqlDataSourceSchema", columns, true)
            } else {
                avro_schema(&columns[0].1, "KsqlDataSourceSchema")
            };
            s.to_string()
        }
        SrKind::Protobuf => {
            let mut n = 0;
            let fields: Vec<(String, SqlType)> = if wrapped {
                columns.to_vec()
            } else {
                // Protobuf has no bare scalars: one field of the column.
                columns[..1].to_vec()
            };
            let body = proto_message(&fields, &mut n, 0);
            let mut imports = String::new();
            for (file, wanted) in [
                (
                    "confluent/meta.proto",
                    &(|t: &SqlType| matches!(t, SqlType::Decimal(..))) as &dyn Fn(&SqlType) -> bool,
                ),
                ("confluent/type/decimal.proto", &|t| {
                    matches!(t, SqlType::Decimal(..))
                }),
                ("google/protobuf/timestamp.proto", &|t| {
                    *t == SqlType::Timestamp
                }),
                ("google/type/date.proto", &|t| *t == SqlType::Date),
                ("google/type/timeofday.proto", &|t| *t == SqlType::Time),
            ] {
                if fields.iter().any(|(_, t)| t.mentions(wanted)) {
                    imports.push_str(&format!("import \"{file}\";\n"));
                }
            }
            if !imports.is_empty() {
                imports.push('\n');
            }
            let (package, body) = match full_name {
                Some(full) => {
                    let (package, name) = full.rsplit_once('.').unwrap_or(("", full));
                    let package = if package.is_empty() {
                        String::new()
                    } else {
                        format!("package {package};\n\n")
                    };
                    let body = body.replacen(
                        "message ConnectDefault1 {",
                        &format!("message {name} {{"),
                        1,
                    );
                    (package, body)
                }
                None => (String::new(), body),
            };
            format!("syntax = \"proto3\";\n\n{package}{imports}{body}")
        }
        SrKind::JsonSr => {
            let s = if wrapped {
                json_schema_of(&SqlType::Struct(columns.to_vec()), false)
            } else {
                json_schema_of(&columns[0].1, true)
            };
            s.to_string()
        }
    };
    Schema::new(kind.schema_type(), text)
}

fn avro_record(name: &str, fields: &[(String, SqlType)], top: bool) -> J {
    let mut r = json!({
        "type": "record",
        "name": name,
        "fields": fields.iter().map(|(n, t)| json!({
            "name": n,
            "type": avro_schema(t, &format!("{name}_{n}")),
            "default": null,
        })).collect::<Vec<_>>(),
    });
    if top {
        r["namespace"] = json!("io.confluent.ksql.avro_schemas");
        r["connect.name"] = json!("io.confluent.ksql.avro_schemas.KsqlDataSourceSchema");
    }
    r
}

/// An optional Avro type (a union with null first).
fn avro_schema(t: &SqlType, name: &str) -> J {
    let inner = match t {
        SqlType::Boolean => json!("boolean"),
        SqlType::Int => json!("int"),
        SqlType::Bigint => json!("long"),
        SqlType::Double => json!("double"),
        // As Connect's AvroData writes a Decimal schema (ksqlDB's).
        SqlType::Decimal(p, s) => json!({
            "type": "bytes",
            "scale": s,
            "precision": p,
            "connect.version": 1,
            "connect.parameters": {"scale": s.to_string(), "connect.decimal.precision": p.to_string()},
            "connect.name": "org.apache.kafka.connect.data.Decimal",
            "logicalType": "decimal",
        }),
        SqlType::String => json!("string"),
        SqlType::Bytes => json!("bytes"),
        SqlType::Timestamp => json!({"type": "long", "logicalType": "timestamp-millis"}),
        SqlType::Date => json!({"type": "int", "logicalType": "date"}),
        SqlType::Time => json!({"type": "int", "logicalType": "time-millis"}),
        SqlType::Array(e) => json!({"type": "array", "items": avro_schema(e, name)}),
        SqlType::Map(_, v) => json!({"type": "map", "values": avro_schema(v, name)}),
        SqlType::Struct(fields) => avro_record(name, fields, false),
    };
    json!(["null", inner])
}

fn proto_message(fields: &[(String, SqlType)], n: &mut usize, depth: usize) -> String {
    *n += 1;
    let name = format!("ConnectDefault{n}");
    let pad = "  ".repeat(depth);
    let mut nested = String::new();
    let mut lines = String::new();
    for (i, (fname, t)) in fields.iter().enumerate() {
        let ty = proto_field_type(t, n, depth + 1, &mut nested);
        let opts = match t {
            SqlType::Decimal(p, s) => format!(
                " [(confluent.field_meta) = {{ params: [{{ key: \"precision\", value: \"{p}\" }}, {{ key: \"scale\", value: \"{s}\" }}] }}]"
            ),
            _ => String::new(),
        };
        lines.push_str(&format!("{pad}  {ty} {fname} = {}{opts};\n", i + 1));
    }
    format!("{pad}message {name} {{\n{lines}{nested}{pad}}}\n")
}

fn proto_field_type(t: &SqlType, n: &mut usize, depth: usize, nested: &mut String) -> String {
    match t {
        SqlType::Boolean => "bool".into(),
        SqlType::Int => "int32".into(),
        SqlType::Bigint => "int64".into(),
        SqlType::Double => "double".into(),
        SqlType::Decimal(..) => PB_DECIMAL.into(),
        SqlType::String => "string".into(),
        SqlType::Bytes => "bytes".into(),
        SqlType::Timestamp => PB_TIMESTAMP.into(),
        SqlType::Date => PB_DATE.into(),
        SqlType::Time => PB_TIME.into(),
        SqlType::Array(e) => format!("repeated {}", proto_field_type(e, n, depth, nested)),
        SqlType::Map(_, v) => format!("map<string, {}>", proto_field_type(v, n, depth, nested)),
        SqlType::Struct(fields) => {
            let before = *n + 1;
            nested.push_str(&proto_message(fields, n, depth));
            format!("ConnectDefault{before}")
        }
    }
}

fn json_schema_of(t: &SqlType, optional: bool) -> J {
    let inner = match t {
        SqlType::Boolean => json!({"type": "boolean"}),
        SqlType::Int => json!({"type": "integer", "connect.type": "int32"}),
        SqlType::Bigint => json!({"type": "integer", "connect.type": "int64"}),
        SqlType::Double => json!({"type": "number", "connect.type": "float64"}),
        // As Connect's JsonSchemaData writes a Decimal (a JSON number).
        SqlType::Decimal(p, s) => json!({
            "type": "number",
            "title": "org.apache.kafka.connect.data.Decimal",
            "connect.version": 1,
            "connect.type": "bytes",
            "connect.parameters": {"scale": s.to_string(), "connect.decimal.precision": p.to_string()},
        }),
        SqlType::String => json!({"type": "string"}),
        SqlType::Bytes => json!({"type": "string", "connect.type": "bytes"}),
        SqlType::Timestamp => {
            json!({"type": "integer", "connect.type": "int64", "title": "org.apache.kafka.connect.data.Timestamp"})
        }
        SqlType::Date => {
            json!({"type": "integer", "connect.type": "int32", "title": "org.apache.kafka.connect.data.Date"})
        }
        SqlType::Time => {
            json!({"type": "integer", "connect.type": "int32", "title": "org.apache.kafka.connect.data.Time"})
        }
        SqlType::Array(e) => json!({"type": "array", "items": json_schema_of(e, true)}),
        SqlType::Map(_, v) => {
            json!({"type": "object", "connect.type": "map", "additionalProperties": json_schema_of(v, true)})
        }
        SqlType::Struct(fields) => {
            let props: serde_json::Map<String, J> = fields
                .iter()
                .enumerate()
                .map(|(i, (n, t))| {
                    let mut s = json_schema_of(t, true);
                    s["connect.index"] = json!(i);
                    (n.clone(), s)
                })
                .collect();
            json!({"type": "object", "properties": props})
        }
    };
    if optional {
        json!({"oneOf": [{"type": "null"}, inner]})
    } else {
        inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(HashMap<i32, Schema>);

    impl SchemaLookup for Fixed {
        fn by_id(&self, id: i32) -> Result<(Schema, Vec<ResolvedReference>)> {
            self.0
                .get(&id)
                .cloned()
                .map(|s| (s, Vec::new()))
                .ok_or_else(|| SqlError::serde("AVRO", format!("unknown schema id {id}")))
        }
    }

    fn cols() -> Vec<(String, SqlType)> {
        vec![
            ("ID".into(), SqlType::Bigint),
            ("NAME".into(), SqlType::String),
            ("AT".into(), SqlType::Timestamp),
            ("TAGS".into(), SqlType::Array(Box::new(SqlType::String))),
            (
                "ADDR".into(),
                SqlType::Struct(vec![
                    ("CITY".into(), SqlType::String),
                    ("N".into(), SqlType::Int),
                ]),
            ),
            (
                "M".into(),
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Double)),
            ),
        ]
    }

    #[test]
    fn generated_schemas_round_trip_and_infer_the_same_columns() {
        let row = json!({"ID": 7, "NAME": "x", "AT": 1_700_000_000_123i64, "TAGS": ["a"],
            "ADDR": {"CITY": "c", "N": 3}, "M": {"k": 1.5}});
        for kind in [SrKind::Avro, SrKind::Protobuf, SrKind::JsonSr] {
            let schema = schema_for(kind, &cols(), true);
            let parsed = Parsed::parse(kind, &schema, &[]).unwrap();
            if kind == SrKind::JsonSr {
                assert_eq!(
                    json_schema_columns(&schema.schema, "ROWVAL").unwrap().0,
                    cols()
                );
            } else {
                assert_eq!(columns_of(&parsed, "ROWVAL").unwrap().0, cols(), "{kind:?}");
            }
            let lookup = Arc::new(Fixed(HashMap::from([(5, schema.clone())])));
            let bound = Bound::new(5, parsed, lookup);
            let frame = bound.encode(kind, &row).unwrap();
            assert_eq!(&frame[..5], &[0, 0, 0, 0, 5]);
            let back = bound.decode(kind, &frame).unwrap();
            for k in ["ID", "NAME", "AT", "TAGS", "ADDR", "M"] {
                assert_eq!(back[k], row[k], "{kind:?} {k}: {back}");
            }
            assert!(bound.decode(kind, &[0, 0, 0, 0, 9, 1]).is_err());
            assert!(bound.decode(kind, &[1]).is_err());
        }
    }

    #[test]
    fn avro_names_follow_ksqldb() {
        let s = schema_for(SrKind::Avro, &cols(), true);
        let doc: J = serde_json::from_str(&s.schema).unwrap();
        assert_eq!(doc["name"], "KsqlDataSourceSchema");
        assert_eq!(doc["namespace"], "io.confluent.ksql.avro_schemas");
        assert_eq!(doc["fields"][0]["type"], json!(["null", "long"]));
        assert_eq!(
            doc["fields"][4]["type"][1]["name"],
            "KsqlDataSourceSchema_ADDR"
        );
        let p = schema_for(SrKind::Protobuf, &cols(), true);
        assert!(
            p.schema.contains("message ConnectDefault1 {"),
            "{}",
            p.schema
        );
        assert!(
            p.schema.contains("ConnectDefault2 ADDR = 5;"),
            "{}",
            p.schema
        );
    }
}

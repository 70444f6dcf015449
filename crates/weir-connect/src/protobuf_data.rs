//! Connect schemas and values to and from Protobuf, as Confluent's
//! `ProtobufData` (its `ProtobufConverter`) maps them.
//!
//! Writing: a root STRUCT becomes a proto3 message named after the schema
//! (the part after the last dot; the rest is the package), unnamed:
//! `ConnectDefault1`, further unnamed types `ConnectDefault2`, ... Fields
//! are numbered 1, 2, ... in order unless their schema carries
//! `io.confluent.connect.protobuf.Tag`. Nested structs are nested messages
//! (named `<Name>Message` when a field has the same name), arrays are
//! `repeated`, maps are repeated `<Name>Entry` messages with `key` = 1 and
//! `value` = 2, INT8/INT16 are `int32` with `connect.type` in Confluent's
//! field metadata, Decimal is `confluent.type.Decimal` (`precision`,
//! `scale` in the metadata), Date `google.type.Date`, Time
//! `google.type.TimeOfDay`, Timestamp `google.protobuf.Timestamp`; structs
//! named `io.confluent.connect.protobuf.Union.<name>` are `oneof`s and
//! strings with `io.confluent.connect.protobuf.Enum` are enums. Optional
//! primitives are plain proto3 fields (null: unset), or wrapper messages
//! (`google.protobuf.Int32Value`, ...) with `wrapper.for.nullables`; with
//! `optional.for.nullables` every optional field that is not repeated
//! carries proto3's `optional` label, as Confluent's ProtobufData writes it.
//!
//! Reading: every field optional with its number in
//! `io.confluent.connect.protobuf.Tag`, oneofs as `<name>_<index>` union
//! structs, enums as strings with their symbols in parameters, map entries
//! as MAPs, the logical types back; unset scalars read as proto3 defaults,
//! unset messages as null.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use weir_formats::prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _,
    Value as PValue,
};
use weir_formats::protobuf::field_meta;

use crate::data::{logical, Parameters, Schema, Struct, Type, Value};
use crate::error::{ConnectError, Result};

const DEFAULT_NAME: &str = "ConnectDefault";
/// Enum type name parameter (in Confluent's `io.confluent.connect.protobuf`
/// namespace); `<this>.<SYMBOL>` holds each number.
pub const ENUM: &str = "io.confluent.connect.protobuf.Enum";
/// Struct name prefix of a oneof.
pub const UNION_PREFIX: &str = "io.confluent.connect.protobuf.Union.";
/// Field number parameter.
pub const TAG: &str = "io.confluent.connect.protobuf.Tag";
const CONNECT_TYPE: &str = "connect.type";
const CONNECT_PRECISION: &str = "connect.decimal.precision";
const DECIMAL: &str = "confluent.type.Decimal";
const DATE: &str = "google.type.Date";
const TIME: &str = "google.type.TimeOfDay";
const TIMESTAMP: &str = "google.protobuf.Timestamp";
const META_IMPORT: &str = "confluent/meta.proto";
const MAX_DEPTH: usize = 64;

fn err(m: impl Into<String>) -> ConnectError {
    ConnectError::data(m)
}

/// `ProtobufData`'s options, by Confluent's setting names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtobufDataConfig {
    /// `enhanced.protobuf.schema.support`: struct names read with the
    /// package.
    pub enhanced: bool,
    /// `scrub.invalid.names`: names made valid Protobuf identifiers.
    pub scrub_invalid_names: bool,
    /// `wrapper.for.nullables`: optional primitives as wrapper messages.
    pub wrapper_for_nullables: bool,
    /// `optional.for.nullables`: optional fields written with proto3's
    /// `optional` label, so a default value (0, "") is told from null.
    pub optional_for_nullables: bool,
    /// `generate.index.for.unions`: oneof fields named `<name>_<index>`.
    pub index_for_unions: bool,
}

impl Default for ProtobufDataConfig {
    fn default() -> Self {
        Self {
            enhanced: false,
            scrub_invalid_names: false,
            wrapper_for_nullables: false,
            optional_for_nullables: false,
            index_for_unions: true,
        }
    }
}

impl ProtobufDataConfig {
    /// Reads the settings from a converter's config (prefix removed).
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self> {
        let flag = |k: &str, d: bool| -> Result<bool> {
            match props.get(k).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(d),
                Some(v) if v == "true" => Ok(true),
                Some(v) if v == "false" => Ok(false),
                Some(v) => Err(ConnectError::bad_config(format!(
                    "Invalid value {v} for configuration {k}: Expected value to be either true or false"
                ))),
            }
        };
        Ok(Self {
            enhanced: flag("enhanced.protobuf.schema.support", false)?,
            scrub_invalid_names: flag("scrub.invalid.names", false)?,
            wrapper_for_nullables: flag("wrapper.for.nullables", false)?,
            optional_for_nullables: flag("optional.for.nullables", false)?,
            index_for_unions: flag("generate.index.for.unions", true)?,
        })
    }

    fn scrub(&self, name: &str) -> String {
        if self.scrub_invalid_names {
            scrub_name(name)
        } else {
            name.to_string()
        }
    }
}

/// Confluent's name scrubbing: URL-encoded, characters other than
/// `[A-Za-z0-9_]` replaced by `_`, `x` before a name not starting with a
/// letter.
pub fn scrub_name(name: &str) -> String {
    let mut enc = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                enc.push(b as char)
            }
            b' ' => enc.push('+'),
            _ => {
                let _ = write!(enc, "%{b:02X}");
            }
        }
    }
    if !enc.starts_with(|c: char| c.is_ascii_alphabetic()) {
        enc.insert(0, 'x');
    }
    enc.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `lower_underscore` to `UpperCamel` (Guava's conversion, which
/// Confluent uses for map entry names).
fn upper_camel(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

/// `UpperCamel` to `lower_underscore`.
fn lower_underscore(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn map_entry_name(s: &str) -> String {
    let s = if s.contains('_') {
        upper_camel(s)
    } else {
        s.to_string()
    };
    s + "Entry"
}

fn map_field_name(entry: &str) -> String {
    lower_underscore(entry.strip_suffix("Entry").unwrap_or(entry))
}

fn param<'a>(s: &'a Schema, k: &str) -> Option<&'a str> {
    s.parameters
        .as_ref()
        .and_then(|p| p.get(k))
        .map(String::as_str)
}

fn is_union(s: &Schema) -> bool {
    s.ty == Type::Struct
        && s.name
            .as_deref()
            .is_some_and(|n| n.starts_with(UNION_PREFIX))
}

fn is_enum(s: &Schema) -> bool {
    s.ty == Type::String && param(s, ENUM).is_some()
}

fn is_logical(s: &Schema, name: &str) -> bool {
    s.name.as_deref() == Some(name)
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

// ---------------------------------------------------------------- writing

#[derive(Default)]
struct MessageDef {
    name: String,
    fields: Vec<String>,
    oneofs: Vec<(String, Vec<String>)>,
    nested: Vec<MessageDef>,
    enums: Vec<(String, Vec<(String, i32)>)>,
}

impl MessageDef {
    fn render(&self, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        let _ = writeln!(out, "{pad}message {} {{", self.name);
        for f in &self.fields {
            let _ = writeln!(out, "{pad}  {f}");
        }
        for (name, fields) in &self.oneofs {
            let _ = writeln!(out, "{pad}  oneof {name} {{");
            for f in fields {
                let _ = writeln!(out, "{pad}    {f}");
            }
            let _ = writeln!(out, "{pad}  }}");
        }
        for m in &self.nested {
            out.push('\n');
            m.render(indent + 1, out);
        }
        for (name, values) in &self.enums {
            let _ = writeln!(out, "\n{pad}  enum {name} {{");
            for (v, n) in values {
                let _ = writeln!(out, "{pad}    {v} = {n};");
            }
            let _ = writeln!(out, "{pad}  }}");
        }
        let _ = writeln!(out, "{pad}}}");
    }
}

struct SchemaWriter {
    cfg: ProtobufDataConfig,
    defaults: u32,
    imports: BTreeSet<&'static str>,
}

impl SchemaWriter {
    fn name_or_default(&mut self, name: Option<&str>) -> String {
        match name {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                self.defaults += 1;
                format!("{DEFAULT_NAME}{}", self.defaults)
            }
        }
    }

    fn unqualified(&mut self, name: Option<&str>) -> String {
        let full = self.name_or_default(name);
        let last = full.rsplit('.').next().unwrap_or(&full).to_string();
        self.cfg.scrub(&last)
    }

    fn message(&mut self, name: String, s: &Schema, depth: usize) -> Result<MessageDef> {
        if depth > MAX_DEPTH {
            return Err(err("schema nests too deeply for Protobuf"));
        }
        let mut m = MessageDef {
            name,
            ..MessageDef::default()
        };
        let mut next = 1;
        for f in &s.fields {
            let tag = match param(&f.schema, TAG) {
                Some(t) => t
                    .parse::<u32>()
                    .map_err(|_| err(format!("invalid {TAG} {t} on field {}", f.name)))?,
                None => {
                    let t = next;
                    next += 1;
                    t
                }
            };
            let fname = self.cfg.scrub(&f.name);
            if is_union(&f.schema) {
                let full = f.schema.name.as_deref().unwrap_or_default();
                let union = self.unqualified(Some(&full[UNION_PREFIX.len()..]));
                let mut members = Vec::new();
                for uf in &f.schema.fields {
                    // Confluent leaves a member without a tag at 0, which
                    // no compiler accepts: it takes the next number instead.
                    let utag = match param(&uf.schema, TAG).and_then(|t| t.parse::<u32>().ok()) {
                        Some(t) => t,
                        None => {
                            next += 1;
                            next - 1
                        }
                    };
                    let uname = self.cfg.scrub(&uf.name);
                    if let Some(line) = self.field(&mut m, &uf.schema, &uname, utag, depth)? {
                        members.push(line);
                    }
                }
                m.oneofs.push((union, members));
                continue;
            }
            if let Some(line) = self.field(&mut m, &f.schema, &fname, tag, depth)? {
                m.fields.push(line);
            }
        }
        Ok(m)
    }

    /// One field's line; nested types it needs go into `m`.
    fn field(
        &mut self,
        m: &mut MessageDef,
        schema: &Schema,
        name: &str,
        tag: u32,
        depth: usize,
    ) -> Result<Option<String>> {
        let (label, s) = match schema.ty {
            Type::Array => {
                let items = schema
                    .value
                    .as_deref()
                    .ok_or_else(|| err("ARRAY schema without items"))?;
                if matches!(items.ty, Type::Array | Type::Map) {
                    return Err(err("Array cannot be nested"));
                }
                ("repeated ", items)
            }
            Type::Map => ("repeated ", schema),
            _ if self.cfg.optional_for_nullables && schema.optional => ("optional ", schema),
            _ => ("", schema),
        };
        let mut params: BTreeMap<&str, String> = BTreeMap::new();
        let ty = self.data_type(s, name, &mut params)?;
        match s.ty {
            // A type named twice in one message is defined once.
            Type::Struct if !is_logical_any(s) && !m.nested.iter().any(|n| n.name == ty) => {
                let def = self.message(ty.clone(), s, depth + 1)?;
                m.nested.push(def);
            }
            Type::Map => {
                let mut entry = MessageDef {
                    name: ty.clone(),
                    ..MessageDef::default()
                };
                for (fname, n, sub) in [("key", 1, &s.key), ("value", 2, &s.value)] {
                    let sub = sub
                        .as_deref()
                        .ok_or_else(|| err("MAP schema without key or value"))?;
                    if let Some(line) = self.field(&mut entry, sub, fname, n, depth + 1)? {
                        entry.fields.push(line);
                    }
                }
                m.nested.push(entry);
            }
            Type::String if is_enum(s) => {
                let ename = self.unqualified(s.name.as_deref());
                if !m.enums.iter().any(|(n, _)| *n == ename) {
                    let prefix = format!("{ENUM}.");
                    let mut values: Vec<(String, i32)> = s
                        .parameters
                        .iter()
                        .flatten()
                        .filter_map(|(k, v)| {
                            let sym = k.strip_prefix(&prefix)?;
                            Some((sym.to_string(), v.parse().ok()?))
                        })
                        .collect();
                    values.sort_by_key(|(_, n)| *n);
                    m.enums.push((ename, values));
                }
            }
            _ => {}
        }
        let mut line = format!("{label}{ty} {name} = {tag}");
        if !params.is_empty() {
            self.imports.insert(META_IMPORT);
            let entries: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{{ key: {}, value: {} }}", quote(k), quote(v)))
                .collect();
            let _ = write!(
                line,
                " [(confluent.field_meta) = {{ params: [{}] }}]",
                entries.join(", ")
            );
        }
        line.push(';');
        Ok(Some(line))
    }

    fn data_type(
        &mut self,
        s: &Schema,
        field: &str,
        params: &mut BTreeMap<&'static str, String>,
    ) -> Result<String> {
        if is_logical(s, logical::DECIMAL) {
            if let Some(p) = param(s, CONNECT_PRECISION) {
                params.insert("precision", p.to_string());
            }
            if let Some(sc) = param(s, logical::SCALE) {
                params.insert("scale", sc.to_string());
            }
            self.imports.insert("confluent/type/decimal.proto");
            return Ok(DECIMAL.into());
        }
        if is_logical(s, logical::DATE) {
            self.imports.insert("google/type/date.proto");
            return Ok(DATE.into());
        }
        if is_logical(s, logical::TIME) {
            self.imports.insert("google/type/timeofday.proto");
            return Ok(TIME.into());
        }
        if is_logical(s, logical::TIMESTAMP) {
            self.imports.insert("google/protobuf/timestamp.proto");
            return Ok(TIMESTAMP.into());
        }
        let wrap = self.cfg.wrapper_for_nullables && s.optional;
        let (plain, wrapper) = match s.ty {
            Type::Int8 | Type::Int16 | Type::Int32 => {
                match s.ty {
                    Type::Int8 => {
                        params.insert(CONNECT_TYPE, "int8".into());
                    }
                    Type::Int16 => {
                        params.insert(CONNECT_TYPE, "int16".into());
                    }
                    _ => {}
                }
                ("int32", "Int32Value")
            }
            Type::Int64 => ("int64", "Int64Value"),
            Type::Float32 => ("float", "FloatValue"),
            Type::Float64 => ("double", "DoubleValue"),
            Type::Boolean => ("bool", "BoolValue"),
            Type::String => {
                if let Some(e) = param(s, ENUM) {
                    return Ok(e.to_string());
                }
                ("string", "StringValue")
            }
            Type::Bytes => ("bytes", "BytesValue"),
            Type::Array => return Err(err("Array cannot be nested")),
            Type::Map => return Ok(map_entry_name(&self.unqualified(s.name.as_deref()))),
            Type::Struct => {
                let mut name = self.unqualified(s.name.as_deref());
                if name == field {
                    // A message type cannot share its field's name.
                    name.push_str("Message");
                }
                return Ok(name);
            }
        };
        if wrap {
            self.imports.insert("google/protobuf/wrappers.proto");
            Ok(format!("google.protobuf.{wrapper}"))
        } else {
            Ok(plain.into())
        }
    }
}

fn is_logical_any(s: &Schema) -> bool {
    [
        logical::DECIMAL,
        logical::DATE,
        logical::TIME,
        logical::TIMESTAMP,
    ]
    .iter()
    .any(|n| is_logical(s, n))
}

/// The `.proto` text Confluent's converter registers for a Connect schema
/// (a STRUCT), and the full name of its message.
pub fn proto_schema_text(schema: &Schema, cfg: &ProtobufDataConfig) -> Result<(String, String)> {
    if schema.ty != Type::Struct {
        return Err(err(format!(
            "Unsupported root schema of type {}",
            schema.ty.name()
        )));
    }
    let mut w = SchemaWriter {
        cfg: *cfg,
        defaults: 0,
        imports: BTreeSet::new(),
    };
    let full = w.name_or_default(schema.name.as_deref());
    let (package, name) = match full.rfind('.') {
        Some(i) => (Some(full[..i].to_string()), cfg.scrub(&full[i + 1..])),
        None => (None, cfg.scrub(&full)),
    };
    let msg = w.message(name.clone(), schema, 0)?;
    let mut out = String::from("syntax = \"proto3\";\n");
    if let Some(p) = &package {
        let _ = writeln!(out, "package {p};");
    }
    if !w.imports.is_empty() {
        out.push('\n');
        for i in &w.imports {
            let _ = writeln!(out, "import {};", quote(i));
        }
    }
    out.push('\n');
    msg.render(0, &mut out);
    let full_name = match package {
        Some(p) => format!("{p}.{name}"),
        None => name,
    };
    Ok((out, full_name))
}

/// A Connect value of `schema` as a message of `desc` (the message
/// [`proto_schema_text`] made of `schema`).
pub fn to_message(
    desc: &MessageDescriptor,
    schema: &Schema,
    value: &Value,
    cfg: &ProtobufDataConfig,
) -> Result<DynamicMessage> {
    match value {
        Value::Struct(st) => struct_message(desc, schema, st, cfg, 0),
        other => Err(err(format!(
            "Invalid type for STRUCT: {}",
            other.type_name()
        ))),
    }
}

fn struct_message(
    desc: &MessageDescriptor,
    schema: &Schema,
    st: &Struct,
    cfg: &ProtobufDataConfig,
    depth: usize,
) -> Result<DynamicMessage> {
    if depth > MAX_DEPTH {
        return Err(err("value nests too deeply for Protobuf"));
    }
    if st.schema.as_ref() != schema {
        return Err(err("Mismatching struct schema"));
    }
    let mut m = DynamicMessage::new(desc.clone());
    for (f, v) in schema.fields.iter().zip(&st.values) {
        if v.is_null() {
            continue;
        }
        let (fs, v, fname) = if is_union(&f.schema) {
            let Value::Struct(u) = v else {
                return Err(err(format!("Invalid type for union field {}", f.name)));
            };
            let Some((uf, uv)) = f
                .schema
                .fields
                .iter()
                .zip(&u.values)
                .find(|(_, uv)| !uv.is_null())
            else {
                return Err(err("Cannot find non-null field"));
            };
            (&uf.schema, uv, cfg.scrub(&uf.name))
        } else {
            (&f.schema, v, cfg.scrub(&f.name))
        };
        let fd = desc
            .get_field_by_name(&fname)
            .ok_or_else(|| err(format!("Cannot find field with name {fname}")))?;
        if let Some(pv) = field_value(&fd, fs, v, cfg, depth)? {
            m.try_set_field(&fd, pv).map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(m)
}

fn field_value(
    fd: &FieldDescriptor,
    s: &Schema,
    v: &Value,
    cfg: &ProtobufDataConfig,
    depth: usize,
) -> Result<Option<PValue>> {
    match (s.ty, v) {
        (Type::Array, Value::Array(items)) => {
            if items.is_empty() {
                return Ok(None);
            }
            let is = s
                .value
                .as_deref()
                .ok_or_else(|| err("ARRAY without items"))?;
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                if it.is_null() {
                    return Err(err(format!("null element in repeated field {}", fd.name())));
                }
                out.push(single(&fd.kind(), is, it, cfg, depth)?);
            }
            Ok(Some(PValue::List(out)))
        }
        (Type::Map, Value::Map(entries)) => {
            let Kind::Message(entry) = fd.kind() else {
                return Err(err(format!("field {} is not a map", fd.name())));
            };
            let (ks, vs) = match (&s.key, &s.value) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err(err("MAP without key or value schema")),
            };
            let kf = entry
                .get_field_by_name("key")
                .ok_or_else(|| err("map entry without key"))?;
            let vf = entry
                .get_field_by_name("value")
                .ok_or_else(|| err("map entry without value"))?;
            if fd.is_map() {
                let mut map = std::collections::HashMap::new();
                for (k, v) in entries {
                    let key = match single(&kf.kind(), ks, k, cfg, depth)? {
                        PValue::Bool(b) => MapKey::Bool(b),
                        PValue::I32(i) => MapKey::I32(i),
                        PValue::I64(i) => MapKey::I64(i),
                        PValue::U32(i) => MapKey::U32(i),
                        PValue::U64(i) => MapKey::U64(i),
                        PValue::String(s) => MapKey::String(s),
                        _ => return Err(err("invalid map key type")),
                    };
                    let val = if v.is_null() {
                        vf.default_value()
                    } else {
                        single(&vf.kind(), vs, v, cfg, depth)?
                    };
                    map.insert(key, val);
                }
                return Ok(Some(PValue::Map(map)));
            }
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let mut e = DynamicMessage::new(entry.clone());
                if !k.is_null() {
                    e.try_set_field(&kf, single(&kf.kind(), ks, k, cfg, depth)?)
                        .map_err(|x| err(x.to_string()))?;
                }
                if !v.is_null() {
                    e.try_set_field(&vf, single(&vf.kind(), vs, v, cfg, depth)?)
                        .map_err(|x| err(x.to_string()))?;
                }
                out.push(PValue::Message(e));
            }
            Ok(Some(PValue::List(out)))
        }
        _ => single(&fd.kind(), s, v, cfg, depth).map(Some),
    }
}

/// A non-repeated value of protobuf kind `kind`.
fn single(
    kind: &Kind,
    s: &Schema,
    v: &Value,
    cfg: &ProtobufDataConfig,
    depth: usize,
) -> Result<PValue> {
    let bad = || {
        err(format!(
            "Invalid type for {}: {}",
            s.ty.name(),
            v.type_name()
        ))
    };
    if let Kind::Message(md) = kind {
        let full = md.full_name();
        let mut m = DynamicMessage::new(md.clone());
        let mut set = |name: &str, pv: PValue| -> Result<()> {
            let f = md
                .get_field_by_name(name)
                .ok_or_else(|| err(format!("{full} has no field {name}")))?;
            m.try_set_field(&f, pv).map_err(|e| err(e.to_string()))
        };
        match full {
            DECIMAL if is_logical(s, logical::DECIMAL) => {
                let Value::Bytes(unscaled) = v else {
                    return Err(bad());
                };
                let scale = s.decimal_scale().unwrap_or(0);
                set("value", PValue::Bytes(unscaled.clone().into()))?;
                set("precision", PValue::U32(decimal_digits(unscaled)))?;
                set("scale", PValue::I32(scale))?;
            }
            DATE if is_logical(s, logical::DATE) => {
                let days = v.as_i64().ok_or_else(bad)?;
                let (y, mo, d) = civil_from_days(days);
                set("year", PValue::I32(y as i32))?;
                set("month", PValue::I32(mo as i32))?;
                set("day", PValue::I32(d as i32))?;
            }
            TIME if is_logical(s, logical::TIME) => {
                let ms = v.as_i64().ok_or_else(bad)?;
                if !(0..=86_400_000).contains(&ms) {
                    return Err(err(
                        "Time values must use number of millis greater than 0 and less than 86400000",
                    ));
                }
                set("hours", PValue::I32((ms / 3_600_000) as i32))?;
                set("minutes", PValue::I32((ms / 60_000 % 60) as i32))?;
                set("seconds", PValue::I32((ms / 1000 % 60) as i32))?;
                set("nanos", PValue::I32((ms % 1000 * 1_000_000) as i32))?;
            }
            TIMESTAMP if is_logical(s, logical::TIMESTAMP) => {
                let ms = v.as_i64().ok_or_else(bad)?;
                set("seconds", PValue::I64(ms.div_euclid(1000)))?;
                set(
                    "nanos",
                    PValue::I32((ms.rem_euclid(1000) * 1_000_000) as i32),
                )?;
            }
            _ if full.starts_with("google.protobuf.")
                && full.ends_with("Value")
                && s.ty.is_primitive() =>
            {
                let f = md
                    .get_field_by_name("value")
                    .ok_or_else(|| err(format!("{full} has no value")))?;
                let inner = single(&f.kind(), s, v, cfg, depth)?;
                set("value", inner)?;
            }
            _ => {
                let Value::Struct(st) = v else {
                    return Err(bad());
                };
                return Ok(PValue::Message(struct_message(md, s, st, cfg, depth + 1)?));
            }
        }
        return Ok(PValue::Message(m));
    }
    let int = || v.as_i64().ok_or_else(bad);
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            PValue::I32(i32::try_from(int()?).map_err(|_| bad())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(int()?),
        Kind::Uint32 | Kind::Fixed32 => PValue::U32(int()? as u32),
        Kind::Uint64 | Kind::Fixed64 => PValue::U64(int()? as u64),
        Kind::Float => match v {
            Value::Float32(f) => PValue::F32(*f),
            Value::Float64(f) => PValue::F32(*f as f32),
            _ => return Err(bad()),
        },
        Kind::Double => match v {
            Value::Float64(f) => PValue::F64(*f),
            Value::Float32(f) => PValue::F64(f64::from(*f)),
            _ => return Err(bad()),
        },
        Kind::Bool => match v {
            Value::Boolean(b) => PValue::Bool(*b),
            _ => return Err(bad()),
        },
        Kind::String => match v {
            Value::String(x) => PValue::String(x.clone()),
            _ => return Err(bad()),
        },
        Kind::Bytes => match v {
            Value::Bytes(b) => PValue::Bytes(b.clone().into()),
            _ => return Err(bad()),
        },
        Kind::Enum(e) => {
            let sym = v.as_str().ok_or_else(bad)?;
            let n = param(s, &format!("{ENUM}.{sym}"))
                .and_then(|n| n.parse().ok())
                .or_else(|| e.get_value_by_name(sym).map(|ev| ev.number()))
                .ok_or_else(|| err(format!("{sym} is not a symbol of enum {}", e.name())))?;
            PValue::EnumNumber(n)
        }
        Kind::Message(_) => unreachable!("handled above"),
    })
}

/// Decimal digits of a big-endian two's complement integer (Java's
/// `BigDecimal.precision()`: 1 for zero).
fn decimal_digits(bytes: &[u8]) -> u32 {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude, big-endian.
    let mut mag: Vec<u8> = if negative {
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (n, carry) = b.overflowing_add(1);
            *b = n;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    let mut digits = 0;
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits += 1;
    }
    digits.max(1)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------- reading

/// A Protobuf message type read as a Connect schema.
#[derive(Debug, Clone)]
pub struct ProtobufReadSchema {
    connect: Arc<Schema>,
    cfg: ProtobufDataConfig,
}

impl ProtobufReadSchema {
    /// The Connect schema of message `desc`.
    pub fn new(desc: &MessageDescriptor, cfg: &ProtobufDataConfig) -> Result<Self> {
        let mut seen = HashSet::new();
        let connect = Arc::new(message_schema(desc, cfg, &mut seen)?);
        Ok(Self { connect, cfg: *cfg })
    }

    /// The Connect schema.
    pub fn connect(&self) -> &Arc<Schema> {
        &self.connect
    }

    /// Sets the root schema's version (the registry's, as Confluent's
    /// converter gives it).
    pub fn set_version(&mut self, version: i32) {
        Arc::make_mut(&mut self.connect).version = Some(version);
    }

    /// A message of this type as a Connect value.
    pub fn value(&self, m: &DynamicMessage) -> Result<Value> {
        message_value(&self.connect, m, &self.cfg)
    }
}

fn message_schema(
    desc: &MessageDescriptor,
    cfg: &ProtobufDataConfig,
    seen: &mut HashSet<String>,
) -> Result<Schema> {
    if !seen.insert(desc.full_name().to_string()) || seen.len() > MAX_DEPTH {
        return Err(err(format!(
            "message {} is recursive, which Connect schemas cannot express",
            desc.full_name()
        )));
    }
    let mut fields: Vec<(String, Schema)> = Vec::new();
    for (i, o) in desc.oneofs().filter(|o| !o.is_synthetic()).enumerate() {
        let mut members = Vec::new();
        for f in o.fields() {
            members.push((f.name().to_string(), field_schema(&f, cfg, seen)?));
        }
        let mut u = Schema::structure(members).optional();
        u.name = Some(format!("{UNION_PREFIX}{}", o.name()));
        let name = if cfg.index_for_unions {
            format!("{}_{i}", o.name())
        } else {
            o.name().to_string()
        };
        fields.push((name, u));
    }
    for f in desc.fields() {
        if f.containing_oneof().is_some_and(|o| !o.is_synthetic()) {
            continue;
        }
        fields.push((f.name().to_string(), field_schema(&f, cfg, seen)?));
    }
    let mut s = Schema::structure(fields);
    s.name = Some(if cfg.enhanced {
        desc.full_name().to_string()
    } else {
        desc.name().to_string()
    });
    seen.remove(desc.full_name());
    Ok(s)
}

fn is_map_entry(md: &MessageDescriptor) -> bool {
    let fs: Vec<_> = md.fields().collect();
    md.is_map_entry()
        || (md.name().ends_with("Entry")
            && fs.len() == 2
            && fs[0].name() == "key"
            && fs[1].name() == "value")
}

fn field_schema(
    fd: &FieldDescriptor,
    cfg: &ProtobufDataConfig,
    seen: &mut HashSet<String>,
) -> Result<Schema> {
    let meta = field_meta(fd);
    let mut s = match fd.kind() {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            match meta.get(CONNECT_TYPE).map(String::as_str) {
                Some("int8") => Schema::of(Type::Int8),
                Some("int16") => Schema::of(Type::Int16),
                _ => Schema::of(Type::Int32),
            }
        }
        Kind::Uint32
        | Kind::Fixed32
        | Kind::Int64
        | Kind::Uint64
        | Kind::Sint64
        | Kind::Fixed64
        | Kind::Sfixed64 => Schema::of(Type::Int64),
        Kind::Float => Schema::of(Type::Float32),
        Kind::Double => Schema::of(Type::Float64),
        Kind::Bool => Schema::of(Type::Boolean),
        Kind::String => Schema::of(Type::String),
        Kind::Bytes => Schema::of(Type::Bytes),
        Kind::Enum(e) => {
            let mut p = Parameters::new();
            p.insert(ENUM.to_string(), e.name().to_string());
            for v in e.values() {
                p.insert(format!("{ENUM}.{}", v.name()), v.number().to_string());
            }
            let mut s = Schema::of(Type::String).named(e.name()).optional();
            s.parameters = Some(p);
            s
        }
        Kind::Message(md) => {
            let mut s = match md.full_name() {
                DECIMAL => {
                    let scale = meta
                        .get("scale")
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    let mut p = Parameters::new();
                    p.insert(logical::SCALE.to_string(), scale.to_string());
                    if let Some(prec) = meta.get("precision").and_then(|v| v.parse::<i32>().ok()) {
                        p.insert(CONNECT_PRECISION.to_string(), prec.to_string());
                    }
                    let mut s = Schema::of(Type::Bytes).named(logical::DECIMAL);
                    s.version = Some(1);
                    s.parameters = Some(p);
                    s
                }
                DATE => logical_schema(Type::Int32, logical::DATE),
                TIME => logical_schema(Type::Int32, logical::TIME),
                TIMESTAMP => logical_schema(Type::Int64, logical::TIMESTAMP),
                n if cfg.wrapper_for_nullables && wrapper_type(n).is_some() => {
                    Schema::of(wrapper_type(n).unwrap_or(Type::String))
                }
                _ if is_map_entry(&md) => {
                    let fs: Vec<_> = md.fields().collect();
                    let mut m = Schema::map(
                        field_schema(&fs[0], cfg, seen)?,
                        field_schema(&fs[1], cfg, seen)?,
                    );
                    m.name = Some(map_field_name(md.name()));
                    m
                }
                _ => message_schema(&md, cfg, seen)?,
            };
            s.optional = true;
            s
        }
    };
    if fd.is_list() && s.ty != Type::Map {
        s.optional = true;
        s = Schema::array(s).optional();
    }
    if !cfg.wrapper_for_nullables {
        s.optional = true;
    }
    s.parameters
        .get_or_insert_with(Parameters::new)
        .insert(TAG.to_string(), fd.number().to_string());
    Ok(s)
}

fn wrapper_type(full: &str) -> Option<Type> {
    Some(match full {
        "google.protobuf.DoubleValue" => Type::Float64,
        "google.protobuf.FloatValue" => Type::Float32,
        "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.UInt32Value" => Type::Int64,
        "google.protobuf.Int32Value" => Type::Int32,
        "google.protobuf.BoolValue" => Type::Boolean,
        "google.protobuf.StringValue" => Type::String,
        "google.protobuf.BytesValue" => Type::Bytes,
        _ => return None,
    })
}

fn logical_schema(ty: Type, name: &str) -> Schema {
    let mut s = Schema::of(ty).named(name);
    s.version = Some(1);
    s
}

fn message_value(
    schema: &Arc<Schema>,
    m: &DynamicMessage,
    cfg: &ProtobufDataConfig,
) -> Result<Value> {
    let desc = m.descriptor();
    let mut st = Struct::new(Arc::clone(schema));
    let mut oneof_index = 0;
    for o in desc.oneofs() {
        if o.is_synthetic() {
            continue;
        }
        let i = oneof_index;
        oneof_index += 1;
        let Some(f) = o.fields().find(|f| m.has_field(f)) else {
            continue;
        };
        let uname = if cfg.index_for_unions {
            format!("{}_{i}", o.name())
        } else {
            o.name().to_string()
        };
        let Some(uf) = schema.field(&uname) else {
            continue;
        };
        let mut u = Struct::new(Arc::clone(&uf.schema));
        if let Some(mf) = uf.schema.field(f.name()) {
            u.values[mf.index] = field_to_connect(&mf.schema, &f, &m.get_field(&f), cfg)?;
        }
        st.values[uf.index] = Value::Struct(u);
    }
    for f in desc.fields() {
        if f.containing_oneof().is_some_and(|o| !o.is_synthetic()) {
            continue;
        }
        let Some(sf) = schema.field(f.name()) else {
            continue;
        };
        let unset_message =
            matches!(f.kind(), Kind::Message(_)) && !f.is_list() && !f.is_map() && !m.has_field(&f);
        if unset_message || (f.supports_presence() && !m.has_field(&f)) {
            continue;
        }
        st.values[sf.index] = field_to_connect(&sf.schema, &f, &m.get_field(&f), cfg)?;
    }
    Ok(Value::Struct(st))
}

fn field_to_connect(
    s: &Arc<Schema>,
    fd: &FieldDescriptor,
    v: &PValue,
    cfg: &ProtobufDataConfig,
) -> Result<Value> {
    match v {
        PValue::List(items) if s.ty == Type::Array => {
            let is = s.value.as_ref().ok_or_else(|| err("ARRAY without items"))?;
            items
                .iter()
                .map(|i| to_connect(is, i, cfg))
                .collect::<Result<_>>()
                .map(Value::Array)
        }
        PValue::List(items) if s.ty == Type::Map => {
            let (ks, vs) = map_schemas(s)?;
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                let Some(e) = it.as_message() else {
                    return Err(err(format!("map field {} holds a non-message", fd.name())));
                };
                let k = e
                    .get_field_by_name("key")
                    .map(|k| to_connect(ks, &k, cfg))
                    .transpose()?;
                let v = e
                    .get_field_by_name("value")
                    .map(|v| to_connect(vs, &v, cfg))
                    .transpose()?;
                out.push((k.unwrap_or(Value::Null), v.unwrap_or(Value::Null)));
            }
            Ok(Value::Map(out))
        }
        PValue::Map(map) => {
            let (ks, vs) = map_schemas(s)?;
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                let k = match k {
                    MapKey::Bool(b) => PValue::Bool(*b),
                    MapKey::I32(i) => PValue::I32(*i),
                    MapKey::I64(i) => PValue::I64(*i),
                    MapKey::U32(i) => PValue::U32(*i),
                    MapKey::U64(i) => PValue::U64(*i),
                    MapKey::String(x) => PValue::String(x.clone()),
                };
                out.push((to_connect(ks, &k, cfg)?, to_connect(vs, v, cfg)?));
            }
            Ok(Value::Map(out))
        }
        other => to_connect(s, other, cfg),
    }
}

fn map_schemas(s: &Schema) -> Result<(&Arc<Schema>, &Arc<Schema>)> {
    match (&s.key, &s.value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(err("MAP without key or value schema")),
    }
}

fn to_connect(s: &Arc<Schema>, v: &PValue, cfg: &ProtobufDataConfig) -> Result<Value> {
    let bad = || err(format!("Invalid value for {}: {v:?}", s.ty.name()));
    if let PValue::Message(m) = v {
        let get = |n: &str| m.get_field_by_name(n).map(|c| c.into_owned());
        let int = |n: &str| -> i64 {
            match get(n) {
                Some(PValue::I32(i)) => i64::from(i),
                Some(PValue::I64(i)) => i,
                Some(PValue::U32(i)) => i64::from(i),
                _ => 0,
            }
        };
        match s.name.as_deref() {
            Some(logical::DECIMAL) => {
                let bytes = match get("value") {
                    Some(PValue::Bytes(b)) => b.to_vec(),
                    _ => Vec::new(),
                };
                let want = i64::from(s.decimal_scale().unwrap_or(0));
                let have = int("scale");
                let bytes = if bytes.is_empty() { vec![0] } else { bytes };
                return if have == want {
                    Ok(Value::Bytes(bytes))
                } else if have < want {
                    Ok(Value::Bytes(rescale(&bytes, (want - have) as u32)))
                } else {
                    Err(err(format!(
                        "decimal with scale {have} does not fit the schema's scale {want}"
                    )))
                };
            }
            Some(logical::DATE) => {
                let d = days_from_civil(int("year"), int("month"), int("day"));
                return i32::try_from(d).map(Value::Int32).map_err(|_| bad());
            }
            Some(logical::TIME) => {
                let ms = int("hours") * 3_600_000
                    + int("minutes") * 60_000
                    + int("seconds") * 1000
                    + int("nanos") / 1_000_000;
                return i32::try_from(ms).map(Value::Int32).map_err(|_| bad());
            }
            Some(logical::TIMESTAMP) => {
                return Ok(Value::Int64(
                    int("seconds").saturating_mul(1000) + int("nanos").div_euclid(1_000_000),
                ));
            }
            _ => {}
        }
        if s.ty == Type::Struct {
            return message_value(s, m, cfg);
        }
        if s.ty.is_primitive() && wrapper_type(m.descriptor().full_name()).is_some() {
            return match get("value") {
                Some(inner) => to_connect(s, &inner, cfg),
                None => Ok(Value::Null),
            };
        }
        return Err(bad());
    }
    Ok(match (s.ty, v) {
        (Type::Int8, PValue::I32(i)) => Value::Int8(*i as i8),
        (Type::Int16, PValue::I32(i)) => Value::Int16(*i as i16),
        (Type::Int32, PValue::I32(i)) => Value::Int32(*i),
        (Type::Int64, PValue::I64(i)) => Value::Int64(*i),
        (Type::Int64, PValue::U32(i)) => Value::Int64(i64::from(*i)),
        (Type::Int64, PValue::U64(i)) => Value::Int64(*i as i64),
        (Type::Int64, PValue::I32(i)) => Value::Int64(i64::from(*i)),
        (Type::Float32, PValue::F32(f)) => Value::Float32(*f),
        (Type::Float64, PValue::F64(f)) => Value::Float64(*f),
        (Type::Boolean, PValue::Bool(b)) => Value::Boolean(*b),
        (Type::String, PValue::String(x)) => Value::String(x.clone()),
        (Type::Bytes, PValue::Bytes(b)) => Value::Bytes(b.to_vec()),
        (Type::String, PValue::EnumNumber(n)) => {
            // The symbol, from the enum parameters the schema was read with.
            let prefix = format!("{ENUM}.");
            let sym = s.parameters.iter().flatten().find_map(|(k, v)| {
                k.strip_prefix(&prefix)
                    .filter(|_| v.parse::<i32>().ok() == Some(*n))
            });
            Value::String(sym.map_or_else(|| n.to_string(), str::to_string))
        }
        _ => return Err(bad()),
    })
}

/// Multiplies a big-endian two's complement integer by 10^`by`.
fn rescale(bytes: &[u8], by: u32) -> Vec<u8> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // Little-endian, sign-extended by enough bytes for the product.
    let extra = (by as usize) / 2 + 2;
    let fill = if negative { 0xff } else { 0 };
    let mut le: Vec<u8> = bytes.iter().rev().copied().collect();
    le.extend(std::iter::repeat_n(fill, extra));
    for _ in 0..by {
        let mut carry = 0u32;
        for b in le.iter_mut() {
            let cur = u32::from(*b) * 10 + carry;
            *b = cur as u8;
            carry = cur >> 8;
        }
    }
    // Trim redundant sign bytes.
    while le.len() > 1 {
        let top = le[le.len() - 1];
        let next = le[le.len() - 2];
        if (top == 0 && next & 0x80 == 0) || (top == 0xff && next & 0x80 != 0) {
            le.pop();
        } else {
            break;
        }
    }
    le.reverse();
    le
}

/// A Connect field's schema without the read-side tag (for tests).
#[cfg(test)]
fn untagged(f: &crate::data::Field) -> Schema {
    let mut s = (*f.schema).clone();
    if let Some(p) = &mut s.parameters {
        p.shift_remove(TAG);
        if p.is_empty() {
            s.parameters = None;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_formats::protobuf::ProtobufSchema;

    fn decimal(scale: i32) -> Schema {
        let mut s = Schema::of(Type::Bytes).named(logical::DECIMAL);
        s.version = Some(1);
        s.parameters = Some(Parameters::from([(
            logical::SCALE.into(),
            scale.to_string(),
        )]));
        s
    }

    fn orders() -> Schema {
        let line = Schema::structure(vec![
            ("sku".into(), Schema::of(Type::String)),
            ("qty".into(), Schema::of(Type::Int16)),
        ])
        .named("Line");
        let mut s = Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int64)),
            ("note".into(), Schema::of(Type::String).optional()),
            ("price".into(), decimal(2)),
            ("day".into(), logical_schema(Type::Int32, logical::DATE)),
            ("at".into(), logical_schema(Type::Int32, logical::TIME)),
            ("ts".into(), logical_schema(Type::Int64, logical::TIMESTAMP)),
            ("tags".into(), Schema::array(Schema::of(Type::String))),
            (
                "counts".into(),
                Schema::map(Schema::of(Type::String), Schema::of(Type::Int32)),
            ),
            ("line".into(), line.optional()),
            ("tiny".into(), Schema::of(Type::Int8)),
        ]);
        s.name = Some("weir.shop.Order".into());
        s
    }

    #[test]
    fn schema_text_is_confluents_shape() {
        let (text, name) = proto_schema_text(&orders(), &ProtobufDataConfig::default()).unwrap();
        assert_eq!(name, "weir.shop.Order");
        assert_eq!(
            text,
            r#"syntax = "proto3";
package weir.shop;

import "confluent/meta.proto";
import "confluent/type/decimal.proto";
import "google/protobuf/timestamp.proto";
import "google/type/date.proto";
import "google/type/timeofday.proto";

message Order {
  int64 id = 1;
  string note = 2;
  confluent.type.Decimal price = 3 [(confluent.field_meta) = { params: [{ key: "scale", value: "2" }] }];
  google.type.Date day = 4;
  google.type.TimeOfDay at = 5;
  google.protobuf.Timestamp ts = 6;
  repeated string tags = 7;
  repeated ConnectDefault1Entry counts = 8;
  Line line = 9;
  int32 tiny = 10 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int8" }] }];

  message ConnectDefault1Entry {
    string key = 1;
    int32 value = 2;
  }

  message Line {
    string sku = 1;
    int32 qty = 2 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int16" }] }];
  }
}
"#
        );
        // Unnamed: ConnectDefault1, no package; a struct named as its field
        // gets `Message`.
        let inner = Schema::structure(vec![("a".into(), Schema::of(Type::Int32))]).named("x.inner");
        let s = Schema::structure(vec![("inner".into(), inner)]);
        let (text, name) = proto_schema_text(&s, &ProtobufDataConfig::default()).unwrap();
        assert_eq!(name, "ConnectDefault1");
        assert!(text.contains("innerMessage inner = 1;"), "{text}");
        assert!(ProtobufSchema::parse(&text).is_ok());
        assert!(
            proto_schema_text(&Schema::of(Type::String), &ProtobufDataConfig::default()).is_err()
        );
    }

    #[test]
    fn values_round_trip_through_the_compiled_schema() {
        let cfg = ProtobufDataConfig::default();
        let schema = Arc::new(orders());
        let (text, name) = proto_schema_text(&schema, &cfg).unwrap();
        let compiled = ProtobufSchema::parse(&text).unwrap();
        let desc = compiled.message_by_name(&name).unwrap();
        let mut st = Struct::new(Arc::clone(&schema));
        let line_schema = Arc::clone(&schema.field("line").unwrap().schema);
        let mut line = Struct::new(line_schema);
        line.values = vec![Value::String("k".into()), Value::Int16(-3)];
        st.values = vec![
            Value::Int64(7),
            Value::Null,
            Value::Bytes(vec![0xfe, 0x0c]), // -500 -> -5.00
            Value::Int32(19_000),
            Value::Int32(3_723_004),
            Value::Int64(-1_500),
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            Value::Map(vec![(Value::String("x".into()), Value::Int32(2))]),
            Value::Struct(line),
            Value::Int8(-8),
        ];
        let m = to_message(&desc, &schema, &Value::Struct(st), &cfg).unwrap();
        let bytes = weir_formats::prost_reflect::prost::Message::encode_to_vec(&m);
        let back = compiled.decode(desc.clone(), &bytes).unwrap();
        let read = ProtobufReadSchema::new(&desc, &cfg).unwrap();
        let rs = read.connect();
        assert_eq!(rs.name.as_deref(), Some("Order"));
        assert_eq!(
            untagged(rs.field("tiny").unwrap()),
            Schema::of(Type::Int8).optional()
        );
        assert_eq!(untagged(rs.field("price").unwrap()), decimal(2).optional());
        assert_eq!(
            rs.field("counts").unwrap().schema.name.as_deref(),
            Some("connect_default1")
        );
        assert_eq!(param(&rs.field("id").unwrap().schema, TAG), Some("1"));
        let Value::Struct(v) = read.value(&back).unwrap() else {
            panic!()
        };
        assert_eq!(v.get("id"), Some(&Value::Int64(7)));
        // proto3 has no presence for plain strings: null reads as "".
        assert_eq!(v.get("note"), Some(&Value::String(String::new())));
        assert_eq!(v.get("price"), Some(&Value::Bytes(vec![0xfe, 0x0c])));
        assert_eq!(v.get("day"), Some(&Value::Int32(19_000)));
        assert_eq!(v.get("at"), Some(&Value::Int32(3_723_004)));
        assert_eq!(v.get("ts"), Some(&Value::Int64(-1_500)));
        assert_eq!(
            v.get("counts"),
            Some(&Value::Map(vec![(
                Value::String("x".into()),
                Value::Int32(2)
            )]))
        );
        assert_eq!(v.get("tiny"), Some(&Value::Int8(-8)));
        let Some(Value::Struct(l)) = v.get("line") else {
            panic!()
        };
        assert_eq!(l.get("qty"), Some(&Value::Int16(-3)));
    }

    #[test]
    fn wrappers_oneofs_and_enums() {
        let cfg = ProtobufDataConfig {
            wrapper_for_nullables: true,
            ..ProtobufDataConfig::default()
        };
        let mut color = Schema::of(Type::String).named("Color").optional();
        color.parameters = Some(Parameters::from([
            (ENUM.into(), "Color".into()),
            (format!("{ENUM}.RED"), "0".into()),
            (format!("{ENUM}.BLUE"), "1".into()),
        ]));
        let mut pay = Schema::structure(vec![
            ("card".into(), Schema::of(Type::String).optional()),
            ("cash".into(), Schema::of(Type::Boolean).optional()),
        ])
        .optional();
        pay.name = Some(format!("{UNION_PREFIX}pay"));
        let schema = Arc::new(
            Schema::structure(vec![
                ("n".into(), Schema::of(Type::Int32).optional()),
                ("color".into(), color),
                ("pay".into(), pay),
            ])
            .named("P"),
        );
        let (text, name) = proto_schema_text(&schema, &cfg).unwrap();
        assert!(text.contains("google.protobuf.Int32Value n = 1;"), "{text}");
        assert!(text.contains("oneof pay {"), "{text}");
        assert!(text.contains("enum Color {"), "{text}");
        let compiled = ProtobufSchema::parse(&text).unwrap();
        let desc = compiled.message_by_name(&name).unwrap();
        let mut u = Struct::new(Arc::clone(&schema.fields[2].schema));
        u.values[1] = Value::Boolean(true);
        let mut st = Struct::new(Arc::clone(&schema));
        st.values = vec![
            Value::Int32(0),
            Value::String("BLUE".into()),
            Value::Struct(u),
        ];
        let m = to_message(&desc, &schema, &Value::Struct(st), &cfg).unwrap();
        let read = ProtobufReadSchema::new(&desc, &cfg).unwrap();
        let Value::Struct(v) = read.value(&m).unwrap() else {
            panic!()
        };
        // A wrapper keeps a zero apart from null.
        assert_eq!(v.get("n"), Some(&Value::Int32(0)));
        assert_eq!(v.get("color"), Some(&Value::String("BLUE".into())));
        let Some(Value::Struct(p)) = v.get("pay_0") else {
            panic!("{v:?}")
        };
        assert_eq!(p.get("cash"), Some(&Value::Boolean(true)));
        assert_eq!(
            p.schema.name.as_deref(),
            Some("io.confluent.connect.protobuf.Union.pay")
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(scrub_name("1a b.c"), "x1a_b_c");
        assert_eq!(map_entry_name("connect_default2"), "ConnectDefault2Entry");
        assert_eq!(map_field_name("ConnectDefault2Entry"), "connect_default2");
        assert_eq!(decimal_digits(&[0]), 1);
        assert_eq!(decimal_digits(&[0xfe, 0x0c]), 3);
        assert_eq!(decimal_digits(&[0x01, 0x00]), 3);
        assert_eq!(rescale(&[0xfb], 2), vec![0xfe, 0x0c]);
        for d in [-1_000_000, -1, 0, 1, 19_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }
}

//! Converters, by Kafka's class names: between Connect's data and the bytes
//! of record keys and values.
//!
//! - `org.apache.kafka.connect.json.JsonConverter` (`schemas.enable`,
//!   `decimal.format`, `replace.null.with.default`), byte for byte as
//!   Kafka's.
//! - `org.apache.kafka.connect.storage.StringConverter`
//!   (`converter.encoding` UTF-8).
//! - `org.apache.kafka.connect.converters.ByteArrayConverter`.
//! - The number converters (`IntegerConverter`, `LongConverter`,
//!   `ShortConverter`, `FloatConverter`, `DoubleConverter`,
//!   `BooleanConverter`), big-endian as Kafka's serializers.
//! - Confluent's `io.confluent.connect.avro.AvroConverter` and
//!   `io.confluent.connect.json.JsonSchemaConverter`, through a schema
//!   registry ([`crate::registry_converter`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::data::{logical, Schema, SchemaAndValue, Struct, Type, Value};
use crate::error::{ConnectError, Result};
use crate::json::{self, Doc, Envelope, Json};
use crate::registry_converter::{Format, RegistryConverter};

/// Turns Connect data into record bytes and back.
pub trait Converter: Send + Sync + std::fmt::Debug {
    /// Serializes `data` for `topic` (`None`: a null key or value).
    fn serialize(&self, topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>>;
    /// Deserializes `bytes` read from `topic`.
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue>;
}

/// The converter classes this runtime has, by Kafka's names.
pub const CONVERTER_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.json.JsonConverter",
    "org.apache.kafka.connect.storage.StringConverter",
    "org.apache.kafka.connect.converters.ByteArrayConverter",
    "org.apache.kafka.connect.converters.IntegerConverter",
    "org.apache.kafka.connect.converters.LongConverter",
    "org.apache.kafka.connect.converters.ShortConverter",
    "org.apache.kafka.connect.converters.FloatConverter",
    "org.apache.kafka.connect.converters.DoubleConverter",
    "org.apache.kafka.connect.converters.BooleanConverter",
    crate::registry_converter::AVRO_CONVERTER,
    crate::registry_converter::JSON_SCHEMA_CONVERTER,
    crate::registry_converter::PROTOBUF_CONVERTER,
];

/// Makes the converter `class` with its `config` (the `key.converter.` or
/// `value.converter.` settings with the prefix removed).
pub fn make_converter(
    class: &str,
    config: &BTreeMap<String, String>,
    is_key: bool,
) -> Result<Arc<dyn Converter>> {
    let simple = class.rsplit('.').next().unwrap_or(class);
    let known = CONVERTER_CLASSES
        .iter()
        .any(|c| *c == class || c.ends_with(&format!(".{simple}")));
    if !known {
        return Err(ConnectError::bad_config(format!(
            "Class {class} could not be found: converters are {}",
            CONVERTER_CLASSES.join(", ")
        )));
    }
    let flag = |k: &str, default: bool| {
        config
            .get(k)
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
            .unwrap_or(default)
    };
    Ok(match simple {
        "JsonConverter" => {
            let decimal_numeric = match config.get("decimal.format").map(|s| s.to_uppercase()) {
                None => false,
                Some(f) if f == "BASE64" => false,
                Some(f) if f == "NUMERIC" => true,
                Some(f) => {
                    return Err(ConnectError::bad_config(format!(
                        "Invalid value {f} for configuration decimal.format: String must be one of: BASE64, NUMERIC"
                    )))
                }
            };
            let schemas_cache_size = match config.get("schemas.cache.size") {
                None => DEFAULT_SCHEMAS_CACHE_SIZE,
                Some(v) => v.trim().parse::<usize>().map_err(|_| {
                    ConnectError::bad_config(format!(
                        "Invalid value {v} for configuration schemas.cache.size: Not a number of type INT"
                    ))
                })?,
            };
            Arc::new(JsonConverter {
                schemas_enable: flag("schemas.enable", true),
                decimal_numeric,
                replace_null_with_default: flag("replace.null.with.default", true),
                schemas_cache_size,
                schema_cache: SchemaCache::default(),
                written: WrittenSchemas::default(),
            })
        }
        "StringConverter" => Arc::new(StringConverter),
        "ByteArrayConverter" => Arc::new(ByteArrayConverter),
        "IntegerConverter" => Arc::new(NumberConverter(Type::Int32)),
        "LongConverter" => Arc::new(NumberConverter(Type::Int64)),
        "ShortConverter" => Arc::new(NumberConverter(Type::Int16)),
        "FloatConverter" => Arc::new(NumberConverter(Type::Float32)),
        "DoubleConverter" => Arc::new(NumberConverter(Type::Float64)),
        "BooleanConverter" => Arc::new(NumberConverter(Type::Boolean)),
        "AvroConverter" => Arc::new(RegistryConverter::new(Format::Avro, config, is_key)?),
        "JsonSchemaConverter" => {
            Arc::new(RegistryConverter::new(Format::JsonSchema, config, is_key)?)
        }
        "ProtobufConverter" => Arc::new(RegistryConverter::new(Format::Protobuf, config, is_key)?),
        _ => {
            return Err(ConnectError::bad_config(format!(
                "Class {class} could not be found"
            )));
        }
    })
}

/// Kafka's JsonConverter.
#[derive(Debug, Clone)]
pub struct JsonConverter {
    pub schemas_enable: bool,
    pub decimal_numeric: bool,
    pub replace_null_with_default: bool,
    /// `schemas.cache.size`: how many written schemas are kept.
    pub schemas_cache_size: usize,
    /// Envelope schemas already converted, newest last.
    pub schema_cache: SchemaCache,
    /// Envelope schemas already written, as text.
    pub written: WrittenSchemas,
}

/// Kafka's default `schemas.cache.size`.
pub const DEFAULT_SCHEMAS_CACHE_SIZE: usize = 1000;

/// How many envelope schemas a JsonConverter keeps converted.
const SCHEMA_CACHE_SIZE: usize = 16;

/// Converted envelope schemas by their JSON, as Kafka's JsonConverter
/// keeps them (`schemas.cache.size`): a topic's records repeat one schema,
/// and comparing the parsed tree is much cheaper than converting it again
/// (in a debug build that conversion led a JDBC sink's profile).
#[derive(Debug, Clone, Default)]
pub struct SchemaCache(Arc<std::sync::Mutex<Vec<CachedSchema>>>);

/// An envelope's schema, as read, and its conversion.
type CachedSchema = (Doc, Option<Arc<Schema>>);

/// The schema texts a JsonConverter has written, as Kafka's converter
/// caches them per schema: a source's records share a few schemas, and a
/// CDC envelope's schema (about 2.5 KB of JSON) cost more to build and
/// write than the record's payload. Found first by the `Arc`'s address
/// (a source hands every record of a table the same `Arc`; the entry holds
/// it, so the address cannot be reused by another schema), then by a hash
/// of the schema's shape and a comparison that also checks parameter
/// order, which the text shows. At `schemas.cache.size` entries it starts
/// over.
#[derive(Debug, Clone, Default)]
pub struct WrittenSchemas(Arc<Mutex<WrittenInner>>);

/// A schema and its text (the entry holds the `Arc`).
type WrittenSchema = (Arc<Schema>, Arc<str>);

#[derive(Debug, Default)]
struct WrittenInner {
    by_address: HashMap<usize, WrittenSchema>,
    by_shape: HashMap<u64, Vec<WrittenSchema>>,
    len: usize,
}

impl WrittenSchemas {
    fn lock(&self) -> MutexGuard<'_, WrittenInner> {
        // Nothing under the lock can panic half-way; a poisoned cache is
        // still consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A hash of what most distinguishes schemas (types, names, fields),
/// cheaper than hashing everything; [`same_text`] decides.
fn shape_hash(s: &Schema, h: &mut impl Hasher) {
    s.ty.hash(h);
    s.optional.hash(h);
    s.name.hash(h);
    s.version.hash(h);
    s.fields.len().hash(h);
    for f in &s.fields {
        f.name.hash(h);
        shape_hash(&f.schema, h);
    }
    for inner in [&s.key, &s.value].into_iter().flatten() {
        shape_hash(inner, h);
    }
}

/// Whether two schemas are written as the same text: equal, with the
/// parameters in the same order (`Schema`'s equality ignores that order,
/// as Java's maps do).
fn same_text(a: &Schema, b: &Schema) -> bool {
    if std::ptr::eq(a, b) {
        return true;
    }
    let same_opt = |x: &Option<Arc<Schema>>, y: &Option<Arc<Schema>>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => same_text(x, y),
        _ => false,
    };
    a.ty == b.ty
        && a.optional == b.optional
        && a.name == b.name
        && a.version == b.version
        && a.doc == b.doc
        && a.default == b.default
        && match (&a.parameters, &b.parameters) {
            (None, None) => true,
            (Some(x), Some(y)) => x.iter().eq(y.iter()),
            _ => false,
        }
        && a.fields.len() == b.fields.len()
        && a.fields
            .iter()
            .zip(&b.fields)
            .all(|(x, y)| x.name == y.name && x.index == y.index && same_text(&x.schema, &y.schema))
        && same_opt(&a.key, &b.key)
        && same_opt(&a.value, &b.value)
}

impl JsonConverter {
    /// `schemas.enable` as given, the other settings at their defaults.
    pub fn new(schemas_enable: bool) -> Self {
        Self {
            schemas_enable,
            decimal_numeric: false,
            replace_null_with_default: true,
            schemas_cache_size: DEFAULT_SCHEMAS_CACHE_SIZE,
            schema_cache: SchemaCache::default(),
            written: WrittenSchemas::default(),
        }
    }

    /// The envelope's schema text for `schema`, through the cache.
    pub fn written_schema(&self, schema: &Arc<Schema>) -> Result<Arc<str>> {
        if self.schemas_cache_size == 0 {
            return Ok(self.schema_json(schema)?.to_text().into());
        }
        let address = Arc::as_ptr(schema) as usize;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        {
            let cache = self.written.lock();
            if let Some((_, text)) = cache.by_address.get(&address) {
                return Ok(text.clone());
            }
            shape_hash(schema, &mut hasher);
            let bucket = cache.by_shape.get(&hasher.finish());
            if let Some((_, text)) = bucket
                .into_iter()
                .flatten()
                .find(|(s, _)| same_text(s, schema))
            {
                // An equal schema in another `Arc` (a source that builds
                // one per record): not added by address, which would fill
                // the cache with copies.
                return Ok(text.clone());
            }
        }
        let text: Arc<str> = self.schema_json(schema)?.to_text().into();
        let mut cache = self.written.lock();
        if cache.len >= self.schemas_cache_size {
            *cache = WrittenInner::default();
        }
        cache
            .by_address
            .insert(address, (schema.clone(), text.clone()));
        cache
            .by_shape
            .entry(hasher.finish())
            .or_default()
            .push((schema.clone(), text.clone()));
        cache.len += 1;
        Ok(text)
    }

    /// Connect data as JSON text appended to `out`, written straight to
    /// text (a record's payload is written once, so a tree would only be
    /// allocation).
    pub fn write_value(
        &self,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut String,
    ) -> Result<()> {
        let Some(schema) = schema else {
            return write_schemaless(value, out);
        };
        if value.is_null() {
            if let (Some(d), true) = (&schema.default, self.replace_null_with_default) {
                return self.write_value(Some(schema), d, out);
            }
            if schema.optional {
                out.push_str("null");
                return Ok(());
            }
            return Err(ConnectError::data(
                "Conversion error: null value for field that is required and has no default value",
            ));
        }
        if schema.name.as_deref() == Some(logical::DECIMAL) {
            if let Value::Bytes(b) = value {
                if self.decimal_numeric {
                    let scale = schema.decimal_scale().unwrap_or(0);
                    decimal_number(b, scale).write(out);
                } else {
                    write_base64(b, out);
                }
                return Ok(());
            }
        }
        let mismatch = || {
            ConnectError::data(format!(
                "Invalid type for {}: {}",
                schema.ty.name(),
                value.type_name()
            ))
        };
        match (schema.ty, value) {
            (Type::Int8, Value::Int8(v)) => {
                let _ = write!(out, "{v}");
            }
            (Type::Int16, Value::Int16(v)) => {
                let _ = write!(out, "{v}");
            }
            (Type::Int32, Value::Int32(v)) => {
                let _ = write!(out, "{v}");
            }
            (Type::Int64, Value::Int64(v)) => {
                let _ = write!(out, "{v}");
            }
            (Type::Float32, Value::Float32(v)) => json::java_float(out, *v),
            (Type::Float64, Value::Float64(v)) => json::java_double(out, *v),
            (Type::Boolean, Value::Boolean(v)) => out.push_str(if *v { "true" } else { "false" }),
            (Type::String, Value::String(v)) => json::write_str(out, v),
            (Type::Bytes, Value::Bytes(v)) => write_base64(v, out),
            (Type::Array, Value::Array(items)) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_value(schema.value.as_deref(), v, out)?;
                }
                out.push(']');
            }
            (Type::Map, Value::Map(entries)) => {
                let string_keys = schema.key.as_ref().is_some_and(|k| k.ty == Type::String);
                out.push(if string_keys { '{' } else { '[' });
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if string_keys {
                        json::write_str(out, k.as_str().ok_or_else(mismatch)?);
                        out.push(':');
                        self.write_value(schema.value.as_deref(), v, out)?;
                    } else {
                        out.push('[');
                        self.write_value(schema.key.as_deref(), k, out)?;
                        out.push(',');
                        self.write_value(schema.value.as_deref(), v, out)?;
                        out.push(']');
                    }
                }
                out.push(if string_keys { '}' } else { ']' });
            }
            (Type::Struct, Value::Struct(s)) => {
                if !std::ptr::eq(s.schema.as_ref(), schema) && s.schema.as_ref() != schema {
                    return Err(ConnectError::data("Mismatching schema."));
                }
                out.push('{');
                for (i, f) in schema.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json::write_str(out, &f.name);
                    out.push(':');
                    self.write_value(Some(&f.schema), &s.values[f.index], out)?;
                }
                out.push('}');
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    /// Connect data as a node of a JSON tree (without the envelope): the
    /// text [`Self::write_value`] writes.
    pub fn to_json(&self, schema: Option<&Schema>, value: &Value) -> Result<Json> {
        let mut out = String::new();
        self.write_value(schema, value, &mut out)?;
        Ok(Json::Raw(out))
    }

    /// The JSON schema Kafka writes in the envelope.
    pub fn schema_json(&self, schema: &Schema) -> Result<Json> {
        let type_name = match schema.ty {
            Type::Boolean => "boolean",
            Type::Bytes => "bytes",
            Type::Float64 => "double",
            Type::Float32 => "float",
            Type::Int8 => "int8",
            Type::Int16 => "int16",
            Type::Int32 => "int32",
            Type::Int64 => "int64",
            Type::String => "string",
            Type::Array => "array",
            Type::Map => "map",
            Type::Struct => "struct",
        };
        let mut obj = vec![("type".to_string(), Json::str(type_name))];
        let missing = |what: &str| ConnectError::data(format!("{what} schema missing"));
        match schema.ty {
            Type::Array => {
                let items = schema
                    .value
                    .as_deref()
                    .ok_or_else(|| missing("array items"))?;
                obj.push(("items".into(), self.schema_json(items)?));
            }
            Type::Map => {
                let k = schema.key.as_deref().ok_or_else(|| missing("map key"))?;
                let v = schema
                    .value
                    .as_deref()
                    .ok_or_else(|| missing("map value"))?;
                obj.push(("keys".into(), self.schema_json(k)?));
                obj.push(("values".into(), self.schema_json(v)?));
            }
            Type::Struct => {
                let fields = schema
                    .fields
                    .iter()
                    .map(|f| {
                        let mut j = self.schema_json(&f.schema)?;
                        if let Json::Obj(pairs) = &mut j {
                            pairs.push(("field".into(), Json::str(f.name.clone())));
                        }
                        Ok(j)
                    })
                    .collect::<Result<_>>()?;
                obj.push(("fields".into(), Json::Arr(fields)));
            }
            _ => {}
        }
        obj.push(("optional".into(), Json::Bool(schema.optional)));
        if let Some(n) = &schema.name {
            obj.push(("name".into(), Json::str(n.clone())));
        }
        if let Some(v) = schema.version {
            obj.push(("version".into(), Json::Int(i64::from(v))));
        }
        if let Some(d) = &schema.doc {
            obj.push(("doc".into(), Json::str(d.clone())));
        }
        if let Some(p) = &schema.parameters {
            obj.push((
                "parameters".into(),
                Json::Obj(
                    p.iter()
                        .map(|(k, v)| (k.clone(), Json::str(v.clone())))
                        .collect(),
                ),
            ));
        }
        if let Some(d) = &schema.default {
            obj.push(("default".into(), self.to_json(Some(schema), d)?));
        }
        Ok(Json::Obj(obj))
    }

    /// [`Self::parse_schema`] through the cache.
    fn cached_schema(&self, j: &Doc) -> Result<Option<Arc<Schema>>> {
        if let Ok(cache) = self.schema_cache.0.lock() {
            if let Some((_, s)) = cache.iter().rev().find(|(k, _)| k == j) {
                return Ok(s.clone());
            }
        }
        let s = self.parse_schema(j)?.map(Arc::new);
        if let Ok(mut cache) = self.schema_cache.0.lock() {
            if cache.len() >= SCHEMA_CACHE_SIZE {
                cache.remove(0);
            }
            cache.push((j.clone(), s.clone()));
        }
        Ok(s)
    }

    /// Parses a JSON schema of the envelope (`null`: no schema), read in
    /// document order so that parameters keep Kafka's order.
    pub fn parse_schema(&self, j: &Doc) -> Result<Option<Schema>> {
        if j.is_null() {
            return Ok(None);
        }
        if j.as_object().is_none() {
            return Err(ConnectError::data("Schema must be a JSON object"));
        }
        let obj = j;
        let type_name = obj
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| ConnectError::data("Schema must contain 'type' field"))?;
        let ty = match type_name {
            "boolean" => Type::Boolean,
            "int8" => Type::Int8,
            "int16" => Type::Int16,
            "int32" => Type::Int32,
            "int64" => Type::Int64,
            "float" => Type::Float32,
            "double" => Type::Float64,
            "bytes" => Type::Bytes,
            "string" => Type::String,
            "array" => Type::Array,
            "map" => Type::Map,
            "struct" => Type::Struct,
            other => return Err(ConnectError::data(format!("Unknown schema type: {other}"))),
        };
        let mut schema = Schema::of(ty);
        let sub = |k: &str| -> Result<Arc<Schema>> {
            let v = obj.get(k).ok_or_else(|| {
                ConnectError::data(format!("{type_name} schema must contain '{k}' field"))
            })?;
            self.parse_schema(v)?
                .map(Arc::new)
                .ok_or_else(|| ConnectError::data(format!("{type_name} '{k}' schema is null")))
        };
        match ty {
            Type::Array => schema.value = Some(sub("items")?),
            Type::Map => {
                schema.key = Some(sub("keys")?);
                schema.value = Some(sub("values")?);
            }
            Type::Struct => {
                let fields = obj
                    .get("fields")
                    .and_then(|f| f.as_array())
                    .ok_or_else(|| {
                        ConnectError::data("Struct schema's \"fields\" argument is not an array.")
                    })?;
                for (index, f) in fields.iter().enumerate() {
                    let name = f.get("field").and_then(|n| n.as_str()).ok_or_else(|| {
                        ConnectError::data("Struct schema's field name not specified properly")
                    })?;
                    let s = self
                        .parse_schema(f)?
                        .ok_or_else(|| ConnectError::data("null field schema"))?;
                    schema.fields.push(crate::data::Field {
                        name: name.to_string(),
                        index,
                        schema: Arc::new(s),
                    });
                }
            }
            _ => {}
        }
        schema.optional = obj
            .get("optional")
            .and_then(|o| o.as_bool())
            .unwrap_or(false);
        schema.name = obj.get("name").and_then(|n| n.as_str()).map(str::to_string);
        schema.version = obj
            .get("version")
            .and_then(|v| v.as_i64())
            .and_then(|v| i32::try_from(v).ok());
        schema.doc = obj.get("doc").and_then(|n| n.as_str()).map(str::to_string);
        if let Some(p) = obj.get("parameters").and_then(|p| p.as_object()) {
            schema.parameters = Some(
                p.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
            );
        }
        if let Some(d) = obj.get("default") {
            if !d.is_null() {
                schema.default = Some(self.to_value(Some(&schema), &d.to_serde())?);
            }
        }
        Ok(Some(schema))
    }

    /// A JSON payload as Connect data of `schema`.
    pub fn to_value(&self, schema: Option<&Schema>, j: &serde_json::Value) -> Result<Value> {
        use serde_json::Value as J;
        let Some(schema) = schema else {
            return Ok(schemaless_value(j));
        };
        if j.is_null() {
            if let (Some(d), true) = (&schema.default, self.replace_null_with_default) {
                return Ok(d.clone());
            }
            if schema.optional {
                return Ok(Value::Null);
            }
            return Err(ConnectError::data(format!(
                "Invalid null value for required {} field",
                schema.ty.name()
            )));
        }
        let bad = || {
            ConnectError::data(format!(
                "Invalid JSON for {} schema: {}",
                schema.ty.name(),
                j
            ))
        };
        Ok(match schema.ty {
            Type::Boolean => Value::Boolean(j.as_bool().ok_or_else(bad)?),
            Type::Int8 => Value::Int8(int(j).and_then(|i| i8::try_from(i).ok()).ok_or_else(bad)?),
            Type::Int16 => {
                Value::Int16(int(j).and_then(|i| i16::try_from(i).ok()).ok_or_else(bad)?)
            }
            Type::Int32 => {
                Value::Int32(int(j).and_then(|i| i32::try_from(i).ok()).ok_or_else(bad)?)
            }
            Type::Int64 => Value::Int64(int(j).ok_or_else(bad)?),
            Type::Float32 => Value::Float32(j.as_f64().ok_or_else(bad)? as f32),
            Type::Float64 => Value::Float64(j.as_f64().ok_or_else(bad)?),
            Type::String => Value::String(j.as_str().ok_or_else(bad)?.to_string()),
            Type::Bytes => {
                if schema.name.as_deref() == Some(logical::DECIMAL) && j.is_number() {
                    let scale = schema.decimal_scale().unwrap_or(0);
                    Value::Bytes(decimal_bytes(&j.to_string(), scale).ok_or_else(bad)?)
                } else {
                    let s = j.as_str().ok_or_else(bad)?;
                    Value::Bytes(B64.decode(s).map_err(|_| bad())?)
                }
            }
            Type::Array => {
                let items = j.as_array().ok_or_else(bad)?;
                Value::Array(
                    items
                        .iter()
                        .map(|v| self.to_value(schema.value.as_deref(), v))
                        .collect::<Result<_>>()?,
                )
            }
            Type::Map => {
                let string_keys = schema.key.as_ref().is_some_and(|k| k.ty == Type::String);
                match j {
                    J::Object(o) if string_keys => Value::Map(
                        o.iter()
                            .map(|(k, v)| {
                                Ok((
                                    Value::String(k.clone()),
                                    self.to_value(schema.value.as_deref(), v)?,
                                ))
                            })
                            .collect::<Result<_>>()?,
                    ),
                    J::Array(pairs) => Value::Map(
                        pairs
                            .iter()
                            .map(|p| match p.as_array().map(|a| a.as_slice()) {
                                Some([k, v]) => Ok((
                                    self.to_value(schema.key.as_deref(), k)?,
                                    self.to_value(schema.value.as_deref(), v)?,
                                )),
                                _ => Err(ConnectError::data(
                                    "Found invalid map entry instead of array tuple",
                                )),
                            })
                            .collect::<Result<_>>()?,
                    ),
                    _ => return Err(bad()),
                }
            }
            Type::Struct => {
                let o = j.as_object().ok_or_else(bad)?;
                let schema = Arc::new(schema.clone());
                let mut s = Struct::new(schema.clone());
                for f in &schema.fields {
                    let v = o.get(&f.name).unwrap_or(&J::Null);
                    s.values[f.index] = self.to_value(Some(&f.schema), v)?;
                }
                Value::Struct(s)
            }
        })
    }
}

fn int(j: &serde_json::Value) -> Option<i64> {
    j.as_i64()
}

/// Kafka's inference for schemaless JSON: integers are INT64, other
/// numbers FLOAT64, objects maps with string keys.
fn schemaless_value(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(a) => Value::Array(a.iter().map(schemaless_value).collect()),
        J::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), schemaless_value(v)))
                .collect(),
        ),
    }
}

/// `bytes` as a JSON string of their base64 (no character needs escaping).
fn write_base64(bytes: &[u8], out: &mut String) {
    out.push('"');
    B64.encode_string(bytes, out);
    out.push('"');
}

/// Data without a schema as JSON text: integers, floats, strings, bytes as
/// base64, maps with string keys as objects and other maps as arrays of
/// pairs, as Kafka's JsonConverter writes them with `schemas.enable=false`.
fn write_schemaless(value: &Value, out: &mut String) -> Result<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Int8(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int16(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int32(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int64(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float32(v) => json::java_float(out, *v),
        Value::Float64(v) => json::java_double(out, *v),
        Value::Boolean(v) => out.push_str(if *v { "true" } else { "false" }),
        Value::String(v) => json::write_str(out, v),
        Value::Bytes(v) => write_base64(v, out),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schemaless(v, out)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let string_keys = entries.iter().all(|(k, _)| k.as_str().is_some());
            out.push(if string_keys { '{' } else { '[' });
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if string_keys {
                    json::write_str(out, k.as_str().unwrap_or_default());
                    out.push(':');
                    write_schemaless(v, out)?;
                } else {
                    out.push('[');
                    write_schemaless(k, out)?;
                    out.push(',');
                    write_schemaless(v, out)?;
                    out.push(']');
                }
            }
            out.push(if string_keys { '}' } else { ']' });
        }
        Value::Struct(s) => JsonConverter::new(false).write_value(Some(&s.schema), value, out)?,
    }
    Ok(())
}

/// The decimal `unscaled × 10^-scale` as a JSON number (NUMERIC format).
pub(crate) fn decimal_number(unscaled: &[u8], scale: i32) -> Json {
    // Values beyond i64 are rare in Connect's sources; they keep their
    // exact digits as a string.
    let mut v: i128 = if unscaled.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in unscaled.iter().take(16) {
        v = (v << 8) | i128::from(*b);
    }
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let text = if scale <= 0 {
        format!("{digits}{}", "0".repeat(scale.unsigned_abs() as usize))
    } else {
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int_part, frac) = padded.split_at(padded.len() - scale);
        format!("{int_part}.{frac}")
    };
    let text = if neg { format!("-{text}") } else { text };
    match text.parse::<i64>() {
        Ok(i) => Json::Int(i),
        Err(_) => Json::Double(text.parse().unwrap_or(0.0)),
    }
}

/// A decimal number's text as unscaled two's-complement bytes at `scale`.
pub(crate) fn decimal_bytes(text: &str, scale: i32) -> Option<Vec<u8>> {
    let (int_part, frac) = text.split_once('.').unwrap_or((text, ""));
    let scale = usize::try_from(scale).ok()?;
    let mut frac = frac.to_string();
    frac.truncate(scale);
    while frac.len() < scale {
        frac.push('0');
    }
    let v: i128 = format!("{int_part}{frac}").parse().ok()?;
    let bytes = v.to_be_bytes();
    // Minimal two's complement, as BigInteger.toByteArray.
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Some(bytes[start..].to_vec())
}

impl Converter for JsonConverter {
    fn serialize(&self, _topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        if data.schema.is_none() && data.value.is_null() {
            return Ok(None);
        }
        let mut out = String::new();
        if self.schemas_enable {
            // Schema first, as Kafka's converter builds the envelope.
            let schema = data
                .schema
                .as_ref()
                .map(|s| self.written_schema(s))
                .transpose()?;
            let schema = schema.as_deref().unwrap_or("null");
            out.reserve(schema.len() + 256);
            out.push_str("{\"schema\":");
            out.push_str(schema);
            out.push_str(",\"payload\":");
            self.write_value(data.schema.as_deref(), &data.value, &mut out)?;
            out.push('}');
        } else {
            self.write_value(data.schema.as_deref(), &data.value, &mut out)?;
        }
        Ok(Some(out.into_bytes()))
    }

    fn deserialize(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue::null());
        };
        if bytes.is_empty() {
            return Ok(SchemaAndValue::null());
        }
        let failed = |e: serde_json::Error| {
            ConnectError::data(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        };
        if !self.schemas_enable {
            let j: serde_json::Value = serde_json::from_slice(bytes).map_err(failed)?;
            return Ok(SchemaAndValue::schemaless(schemaless_value(&j)));
        }
        // One pass that keeps the schema's key order (its parameters).
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(failed)?;
        let (true, Some(schema), Some(payload), 0) = (
            envelope.is_object,
            envelope.schema,
            envelope.payload,
            envelope.others,
        ) else {
            return Err(ConnectError::data(
                "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.",
            ));
        };
        let schema = self.cached_schema(&schema)?;
        let value = self.to_value(schema.as_deref(), &payload)?;
        Ok(SchemaAndValue { schema, value })
    }
}

/// Kafka's StringConverter: UTF-8 text; any value is written through its
/// string form.
#[derive(Debug, Clone)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn serialize(&self, _topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        Ok(match &data.value {
            Value::Null => None,
            Value::String(s) => Some(s.clone().into_bytes()),
            other => Some(java_to_string(other).into_bytes()),
        })
    }

    fn deserialize(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let schema = Some(Arc::new(Schema::of(Type::String).optional()));
        Ok(SchemaAndValue {
            schema,
            value: match bytes {
                None => Value::Null,
                Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            },
        })
    }
}

/// How Java's `toString` prints a value (StringConverter's fallback).
pub fn java_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Int8(x) => x.to_string(),
        Value::Int16(x) => x.to_string(),
        Value::Int32(x) => x.to_string(),
        Value::Int64(x) => x.to_string(),
        Value::Float32(x) => Json::Float(*x).to_text(),
        Value::Float64(x) => Json::Double(*x).to_text(),
        Value::Boolean(x) => x.to_string(),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => format!("[B@{:x}", b.len()),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(java_to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}={}", java_to_string(k), java_to_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Struct(s) => format!(
            "Struct{{{}}}",
            s.schema
                .fields
                .iter()
                .filter(|f| !s.values[f.index].is_null())
                .map(|f| format!("{}={}", f.name, java_to_string(&s.values[f.index])))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Kafka's ByteArrayConverter: bytes as they are.
#[derive(Debug, Clone)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn serialize(&self, _topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        if let Some(s) = &data.schema {
            if s.ty != Type::Bytes {
                return Err(ConnectError::data(format!(
                    "Invalid schema type for ByteArrayConverter: {}",
                    s.ty.name()
                )));
            }
        }
        match &data.value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConnectError::data(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                other.type_name()
            ))),
        }
    }

    fn deserialize(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        Ok(SchemaAndValue {
            schema: Some(Arc::new(Schema::of(Type::Bytes).optional())),
            value: bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        })
    }
}

/// Kafka's number converters (and BooleanConverter): the big-endian bytes
/// of Kafka's IntegerSerializer, LongSerializer, ...
#[derive(Debug, Clone)]
pub struct NumberConverter(pub Type);

impl Converter for NumberConverter {
    fn serialize(&self, topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        let bad = || {
            ConnectError::data(format!(
                "Failed to serialize to {} (was {}) for topic {topic}",
                self.0.name(),
                data.value.type_name()
            ))
        };
        Ok(Some(match (self.0, &data.value) {
            (_, Value::Null) => return Ok(None),
            (Type::Int16, Value::Int16(v)) => v.to_be_bytes().to_vec(),
            (Type::Int32, Value::Int32(v)) => v.to_be_bytes().to_vec(),
            (Type::Int64, Value::Int64(v)) => v.to_be_bytes().to_vec(),
            (Type::Float32, Value::Float32(v)) => v.to_be_bytes().to_vec(),
            (Type::Float64, Value::Float64(v)) => v.to_be_bytes().to_vec(),
            (Type::Boolean, Value::Boolean(v)) => vec![u8::from(*v)],
            _ => return Err(bad()),
        }))
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let schema = Some(Arc::new(Schema::of(self.0).optional()));
        let Some(b) = bytes else {
            return Ok(SchemaAndValue {
                schema,
                value: Value::Null,
            });
        };
        let bad = || {
            ConnectError::data(format!(
                "Failed to deserialize {} for topic {topic}: size of data received is {}",
                self.0.name(),
                b.len()
            ))
        };
        let value = match self.0 {
            Type::Int16 => Value::Int16(i16::from_be_bytes(b.try_into().map_err(|_| bad())?)),
            Type::Int32 => Value::Int32(i32::from_be_bytes(b.try_into().map_err(|_| bad())?)),
            Type::Int64 => Value::Int64(i64::from_be_bytes(b.try_into().map_err(|_| bad())?)),
            Type::Float32 => Value::Float32(f32::from_be_bytes(b.try_into().map_err(|_| bad())?)),
            Type::Float64 => Value::Float64(f64::from_be_bytes(b.try_into().map_err(|_| bad())?)),
            Type::Boolean => match b {
                [0] => Value::Boolean(false),
                [1] => Value::Boolean(true),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        };
        Ok(SchemaAndValue { schema, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_schemas_are_converted_once() {
        let c = JsonConverter::new(true);
        let rec = |schema: &str, v: i32| {
            format!(r#"{{"schema":{schema},"payload":{{"id":{v}}}}}"#).into_bytes()
        };
        let a = r#"{"type":"struct","fields":[{"field":"id","type":"int32"}]}"#;
        let b = r#"{"type":"struct","fields":[{"field":"id","type":"int32","optional":true}]}"#;
        let one = c.deserialize("t", Some(&rec(a, 1))).unwrap();
        let two = c.deserialize("t", Some(&rec(a, 2))).unwrap();
        let other = c.deserialize("t", Some(&rec(b, 3))).unwrap();
        let (s1, s2, s3) = (
            one.schema.unwrap(),
            two.schema.unwrap(),
            other.schema.unwrap(),
        );
        assert!(Arc::ptr_eq(&s1, &s2));
        assert!(!Arc::ptr_eq(&s1, &s3));
        assert!(!s1.fields[0].schema.optional && s3.fields[0].schema.optional);
        assert_eq!(
            two.value,
            Value::Struct(crate::data::Struct {
                schema: s2.clone(),
                values: vec![Value::Int32(2)],
            })
        );
    }

    /// A Debezium-like envelope: nested row structs, a Decimal with its
    /// parameters, a default, arrays and maps of both key kinds.
    fn envelope(params_reversed: bool) -> Arc<Schema> {
        let mut price = Schema::of(Type::Bytes).named(logical::DECIMAL).optional();
        let mut params = vec![
            ("scale".to_string(), "2".to_string()),
            ("connect.decimal.precision".to_string(), "10".to_string()),
        ];
        if params_reversed {
            params.reverse();
        }
        price.parameters = Some(params.into_iter().collect());
        price.version = Some(1);
        let mut qty = Schema::of(Type::Int64);
        qty.default = Some(Value::Int64(7));
        let row = Arc::new(
            Schema::structure(vec![
                ("id".into(), Schema::of(Type::Int32)),
                ("name".into(), Schema::of(Type::String).optional()),
                ("qty".into(), qty),
                ("price".into(), price),
                ("ratio".into(), Schema::of(Type::Float64).optional()),
                ("small".into(), Schema::of(Type::Float32).optional()),
                ("blob".into(), Schema::of(Type::Bytes).optional()),
                (
                    "tags".into(),
                    Schema::array(Schema::of(Type::String)).optional(),
                ),
                (
                    "attrs".into(),
                    Schema::map(Schema::of(Type::String), Schema::of(Type::Int16)).optional(),
                ),
                (
                    "codes".into(),
                    Schema::map(Schema::of(Type::Int8), Schema::of(Type::Boolean)).optional(),
                ),
            ])
            .named("srv.public.t.Value")
            .optional(),
        );
        let mut env = Schema::structure(vec![
            ("before".into(), (*row).clone()),
            ("after".into(), (*row).clone()),
            ("op".into(), Schema::of(Type::String)),
            ("ts_ms".into(), Schema::of(Type::Int64).optional()),
        ])
        .named("srv.public.t.Envelope");
        env.version = Some(2);
        env.doc = Some("a \"doc\"\twith escapes".into());
        // The row schemas are shared, as the CDC source shares them.
        env.fields[0].schema = row.clone();
        env.fields[1].schema = row;
        Arc::new(env)
    }

    fn row_value(env: &Arc<Schema>, id: i32, text: &str) -> Value {
        let row_schema = env.fields[1].schema.clone();
        let mut row = Struct::new(row_schema);
        row.put("id", Value::Int32(id)).unwrap();
        row.put("name", Value::String(text.into())).unwrap();
        row.put("price", Value::Bytes(decimal_bytes("-123.45", 2).unwrap()))
            .unwrap();
        row.put("ratio", Value::Float64(f64::from(id) * 1.0e-4))
            .unwrap();
        row.put("small", Value::Float32(1.1)).unwrap();
        row.put("blob", Value::Bytes(vec![0, 0xff, id as u8]))
            .unwrap();
        row.put(
            "tags",
            Value::Array(vec![Value::String("x".into()), Value::String(text.into())]),
        )
        .unwrap();
        row.put(
            "attrs",
            Value::Map(vec![(Value::String("k\u{1}".into()), Value::Int16(-3))]),
        )
        .unwrap();
        row.put(
            "codes",
            Value::Map(vec![(Value::Int8(1), Value::Boolean(true))]),
        )
        .unwrap();
        let mut e = Struct::new(env.clone());
        e.put("after", Value::Struct(row)).unwrap();
        e.put("op", Value::String("c".into())).unwrap();
        Value::Struct(e)
    }

    #[test]
    fn written_schemas_are_cached_and_the_text_is_unchanged() {
        let cached = JsonConverter::new(true);
        let uncached = JsonConverter {
            schemas_cache_size: 0,
            ..JsonConverter::new(true)
        };
        let numeric = JsonConverter {
            decimal_numeric: true,
            ..JsonConverter::new(true)
        };
        let env = envelope(false);
        let texts = ["plain", "quote \" back\\slash\n\u{7}é€😀", ""];
        for (id, t) in texts.iter().enumerate() {
            let d = SchemaAndValue {
                schema: Some(env.clone()),
                value: row_value(&env, id as i32, t),
            };
            let want = text(&uncached, &d);
            // The text the tree gives, as before the cache.
            let tree = Json::obj([
                ("schema", cached.schema_json(&env).unwrap()),
                ("payload", cached.to_json(Some(&env), &d.value).unwrap()),
            ])
            .to_text();
            assert_eq!(want, tree);
            assert_eq!(text(&cached, &d), want);
            assert_eq!(text(&cached, &d), want, "second time, from the cache");
            assert_eq!(
                text(&numeric, &d),
                Json::obj([
                    ("schema", numeric.schema_json(&env).unwrap()),
                    ("payload", numeric.to_json(Some(&env), &d.value).unwrap()),
                ])
                .to_text()
            );
            // Read back, written again: the same bytes.
            let back = cached.deserialize("t", Some(want.as_bytes())).unwrap();
            assert_eq!(text(&cached, &back), want);
        }
        // One entry for the Arc; an equal schema in another Arc finds it.
        let a = cached.written_schema(&env).unwrap();
        let copy = Arc::new((*env).clone());
        assert!(Arc::ptr_eq(&a, &cached.written_schema(&copy).unwrap()));
        assert_eq!(cached.written.lock().by_address.len(), 1);
        // Equal by `==`, but its parameters are written in another order.
        let reversed = envelope(true);
        assert_eq!(*reversed, *env);
        let r = cached.written_schema(&reversed).unwrap();
        assert_ne!(r, a);
        assert_eq!(r, uncached.written_schema(&reversed).unwrap());
        assert!(r.contains(r#""parameters":{"connect.decimal.precision":"10","scale":"2"}"#));
        // Bounded: at the size, the cache starts over.
        let small = JsonConverter {
            schemas_cache_size: 2,
            ..JsonConverter::new(true)
        };
        for i in 0..5 {
            let s = Arc::new(Schema::of(Type::String).named(&format!("n{i}")));
            let t = small.written_schema(&s).unwrap();
            assert_eq!(
                &*t,
                format!(r#"{{"type":"string","optional":false,"name":"n{i}"}}"#)
            );
            assert!(small.written.lock().len <= 2);
        }
    }

    #[test]
    fn values_are_written_as_kafka_writes_them() {
        let c = JsonConverter::new(false);
        // Schemaless values: Java's float texts, base64 bytes, a map with
        // string keys as an object and one with other keys as pairs.
        let schemaless = Value::Array(vec![
            Value::Null,
            Value::Int8(-1),
            Value::Float32(3.5e-5),
            Value::Float64(1e21),
            Value::Boolean(false),
            Value::Bytes(vec![1, 2, 3]),
            Value::Map(vec![(Value::String("k".into()), Value::Int64(i64::MIN))]),
            Value::Map(vec![(Value::Int32(1), Value::String("\r".into()))]),
        ]);
        let mut out = String::new();
        c.write_value(None, &schemaless, &mut out).unwrap();
        assert_eq!(
            out,
            r#"[null,-1,3.5E-5,1.0E21,false,"AQID",{"k":-9223372036854775808},[[1,"\r"]]]"#
        );
        // A tree node holds the same text.
        assert_eq!(c.to_json(None, &schemaless).unwrap().to_text(), out);
        let required = Schema::of(Type::Int32);
        let e = c.write_value(Some(&required), &Value::Null, &mut out);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("null value for field that is required"));
        let e = c.write_value(Some(&required), &Value::String("x".into()), &mut out);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("Invalid type for INT32"));
        // A struct whose schema differs from the field's.
        let env = envelope(false);
        let other = Arc::new(Schema::structure(vec![(
            "id".into(),
            Schema::of(Type::Int32),
        )]));
        let e = c.write_value(Some(&env), &Value::Struct(Struct::new(other)), &mut out);
        assert!(e.unwrap_err().to_string().contains("Mismatching schema"));
    }

    fn text(c: &dyn Converter, d: &SchemaAndValue) -> String {
        String::from_utf8(c.serialize("t", d).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn json_envelope_matches_kafka() {
        let schema = Arc::new(Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int32)),
            ("name".into(), Schema::of(Type::String).optional()),
            ("tags".into(), Schema::array(Schema::of(Type::String))),
        ]));
        let mut s = Struct::new(schema.clone());
        s.put("id", Value::Int32(1)).unwrap();
        s.put("tags", Value::Array(vec![Value::String("a".into())]))
            .unwrap();
        let d = SchemaAndValue {
            schema: Some(schema),
            value: Value::Struct(s),
        };
        let c = JsonConverter::new(true);
        let out = text(&c, &d);
        assert_eq!(
            out,
            r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"},{"type":"array","items":{"type":"string","optional":false},"optional":false,"field":"tags"}],"optional":false},"payload":{"id":1,"name":null,"tags":["a"]}}"#
        );
        let back = c.deserialize("t", Some(out.as_bytes())).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            text(&JsonConverter::new(false), &d),
            r#"{"id":1,"name":null,"tags":["a"]}"#
        );
    }

    #[test]
    fn schema_parameters_keep_their_order() {
        // Debezium's Decimal: `scale` first, as Kafka's ConnectSchema keeps
        // insertion order; a reversed order is kept too.
        let c = JsonConverter::new(true);
        for params in [
            r#"{"scale":"2","connect.decimal.precision":"10"}"#,
            r#"{"connect.decimal.precision":"10","scale":"2"}"#,
        ] {
            let text = format!(
                r#"{{"schema":{{"type":"struct","fields":[{{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{params},"field":"price"}}],"optional":false}},"payload":{{"price":"AMs="}}}}"#
            );
            let d = c.deserialize("t", Some(text.as_bytes())).unwrap();
            assert_eq!(self::text(&c, &d), text);
        }
        // Not an envelope: refused as before, whatever the shape.
        for bad in [
            &b"[1,2]"[..],
            b"3",
            b"{\"schema\":null}",
            b"{\"schema\":null,\"payload\":1,\"x\":2}",
        ] {
            assert!(c.deserialize("t", Some(bad)).is_err());
        }
        let d = c
            .deserialize("t", Some(br#"{"schema":null,"payload":{"a":[1,2.5]}}"#))
            .unwrap();
        assert!(d.schema.is_none());
    }

    #[test]
    fn plain_strings_get_the_string_schema_envelope() {
        let d = SchemaAndValue {
            schema: Some(Arc::new(Schema::of(Type::String).optional())),
            value: Value::String("hello".into()),
        };
        assert_eq!(
            text(&JsonConverter::new(true), &d),
            r#"{"schema":{"type":"string","optional":true},"payload":"hello"}"#
        );
        assert_eq!(text(&JsonConverter::new(false), &d), r#""hello""#);
    }

    #[test]
    fn json_errors_read_as_kafka_s() {
        let c = JsonConverter::new(true);
        let e = c.deserialize("t", Some(b"{\"a\":1}")).unwrap_err();
        assert!(e
            .to_string()
            .contains("requires \"schema\" and \"payload\""));
        let e = c.deserialize("t", Some(b"{not json")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Converting byte[] to Kafka Connect data failed"));
        let v = JsonConverter::new(false)
            .deserialize("t", Some(b"{\"a\":1,\"b\":1.5}"))
            .unwrap();
        assert_eq!(v.value.map_get("a"), Some(&Value::Int64(1)));
        assert_eq!(v.value.map_get("b"), Some(&Value::Float64(1.5)));
    }

    #[test]
    fn decimals_round_trip_both_formats() {
        let mut schema = Schema::of(Type::Bytes).named(logical::DECIMAL);
        schema.parameters = Some([("scale".to_string(), "2".to_string())].into());
        let bytes = decimal_bytes("-123.45", 2).unwrap();
        assert_eq!(bytes, (-12345i32).to_be_bytes()[2..].to_vec());
        assert_eq!(decimal_number(&bytes, 2), Json::Double(-123.45));
        let numeric = JsonConverter {
            decimal_numeric: true,
            ..JsonConverter::new(false)
        };
        let j = numeric
            .to_json(Some(&schema), &Value::Bytes(bytes.clone()))
            .unwrap();
        assert_eq!(j.to_text(), "-123.45");
        let base64 = JsonConverter::new(false)
            .to_json(Some(&schema), &Value::Bytes(bytes))
            .unwrap();
        assert_eq!(base64.to_text(), "\"z8c=\"");
    }

    #[test]
    fn number_converters_are_big_endian() {
        let c = make_converter(
            "org.apache.kafka.connect.converters.LongConverter",
            &BTreeMap::new(),
            true,
        )
        .unwrap();
        let d = SchemaAndValue::schemaless(Value::Int64(258));
        let b = c.serialize("t", &d).unwrap().unwrap();
        assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            c.deserialize("t", Some(&b)).unwrap().value,
            Value::Int64(258)
        );
        assert!(c.deserialize("t", Some(&[1, 2])).is_err());
        assert!(make_converter("com.example.Nope", &BTreeMap::new(), false).is_err());
    }
}

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

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::data::{logical, Schema, SchemaAndValue, Struct, Type, Value};
use crate::error::{ConnectError, Result};
use crate::json::{Doc, Envelope, Json};
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
            Arc::new(JsonConverter {
                schemas_enable: flag("schemas.enable", true),
                decimal_numeric,
                replace_null_with_default: flag("replace.null.with.default", true),
                schema_cache: SchemaCache::default(),
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
    /// Envelope schemas already converted, newest last.
    pub schema_cache: SchemaCache,
}

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

impl JsonConverter {
    /// `schemas.enable` as given, the other settings at their defaults.
    pub fn new(schemas_enable: bool) -> Self {
        Self {
            schemas_enable,
            decimal_numeric: false,
            replace_null_with_default: true,
            schema_cache: SchemaCache::default(),
        }
    }

    /// Connect data as a JSON tree (without the envelope).
    pub fn to_json(&self, schema: Option<&Schema>, value: &Value) -> Result<Json> {
        let Some(schema) = schema else {
            return schemaless_json(value);
        };
        if value.is_null() {
            if let (Some(d), true) = (&schema.default, self.replace_null_with_default) {
                return self.to_json(Some(schema), d);
            }
            if schema.optional {
                return Ok(Json::Null);
            }
            return Err(ConnectError::data(
                "Conversion error: null value for field that is required and has no default value",
            ));
        }
        if schema.name.as_deref() == Some(logical::DECIMAL) {
            if let Value::Bytes(b) = value {
                if self.decimal_numeric {
                    let scale = schema.decimal_scale().unwrap_or(0);
                    return Ok(decimal_number(b, scale));
                }
                return Ok(Json::Str(B64.encode(b)));
            }
        }
        let mismatch = || {
            ConnectError::data(format!(
                "Invalid type for {}: {}",
                schema.ty.name(),
                value.type_name()
            ))
        };
        Ok(match (schema.ty, value) {
            (Type::Int8, Value::Int8(v)) => Json::Int(i64::from(*v)),
            (Type::Int16, Value::Int16(v)) => Json::Int(i64::from(*v)),
            (Type::Int32, Value::Int32(v)) => Json::Int(i64::from(*v)),
            (Type::Int64, Value::Int64(v)) => Json::Int(*v),
            (Type::Float32, Value::Float32(v)) => Json::Float(*v),
            (Type::Float64, Value::Float64(v)) => Json::Double(*v),
            (Type::Boolean, Value::Boolean(v)) => Json::Bool(*v),
            (Type::String, Value::String(v)) => Json::Str(v.clone()),
            (Type::Bytes, Value::Bytes(v)) => Json::Str(B64.encode(v)),
            (Type::Array, Value::Array(items)) => Json::Arr(
                items
                    .iter()
                    .map(|v| self.to_json(schema.value.as_deref(), v))
                    .collect::<Result<_>>()?,
            ),
            (Type::Map, Value::Map(entries)) => {
                let string_keys = schema.key.as_ref().is_some_and(|k| k.ty == Type::String);
                if string_keys {
                    Json::Obj(
                        entries
                            .iter()
                            .map(|(k, v)| {
                                let k = k.as_str().map(str::to_string).ok_or_else(mismatch)?;
                                Ok((k, self.to_json(schema.value.as_deref(), v)?))
                            })
                            .collect::<Result<_>>()?,
                    )
                } else {
                    Json::Arr(
                        entries
                            .iter()
                            .map(|(k, v)| {
                                Ok(Json::Arr(vec![
                                    self.to_json(schema.key.as_deref(), k)?,
                                    self.to_json(schema.value.as_deref(), v)?,
                                ]))
                            })
                            .collect::<Result<_>>()?,
                    )
                }
            }
            (Type::Struct, Value::Struct(s)) => {
                if s.schema.as_ref() != schema {
                    return Err(ConnectError::data("Mismatching schema."));
                }
                Json::Obj(
                    schema
                        .fields
                        .iter()
                        .map(|f| {
                            Ok((
                                f.name.clone(),
                                self.to_json(Some(&f.schema), &s.values[f.index])?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                )
            }
            _ => return Err(mismatch()),
        })
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

fn schemaless_json(value: &Value) -> Result<Json> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Int8(v) => Json::Int(i64::from(*v)),
        Value::Int16(v) => Json::Int(i64::from(*v)),
        Value::Int32(v) => Json::Int(i64::from(*v)),
        Value::Int64(v) => Json::Int(*v),
        Value::Float32(v) => Json::Float(*v),
        Value::Float64(v) => Json::Double(*v),
        Value::Boolean(v) => Json::Bool(*v),
        Value::String(v) => Json::Str(v.clone()),
        Value::Bytes(v) => Json::Str(B64.encode(v)),
        Value::Array(items) => Json::Arr(items.iter().map(schemaless_json).collect::<Result<_>>()?),
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| k.as_str().is_some()) {
                Json::Obj(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok((
                                k.as_str().unwrap_or_default().to_string(),
                                schemaless_json(v)?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                )
            } else {
                Json::Arr(
                    entries
                        .iter()
                        .map(|(k, v)| Ok(Json::Arr(vec![schemaless_json(k)?, schemaless_json(v)?])))
                        .collect::<Result<_>>()?,
                )
            }
        }
        Value::Struct(s) => JsonConverter::new(false).to_json(Some(&s.schema), value)?,
    })
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
        let payload = self.to_json(data.schema.as_deref(), &data.value)?;
        let json = if self.schemas_enable {
            let schema = match &data.schema {
                Some(s) => self.schema_json(s)?,
                None => Json::Null,
            };
            Json::obj([("schema", schema), ("payload", payload)])
        } else {
            payload
        };
        Ok(Some(json.to_text().into_bytes()))
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

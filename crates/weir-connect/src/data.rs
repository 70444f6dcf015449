//! Kafka Connect's data model: schemas (the primitive types, ARRAY, MAP,
//! STRUCT, optional, defaults, names, versions, parameters, and the
//! logical types Decimal, Date, Time and Timestamp by their names) and the
//! values converters produce and transforms rewrite.
//!
//! Logical values keep their physical form (Decimal: the unscaled
//! big-endian two's complement bytes, with `scale` in the parameters; Date:
//! days since the epoch as INT32; Time: milliseconds of the day as INT32;
//! Timestamp: milliseconds since the epoch as INT64), as they are on the
//! wire, so no precision is lost between converters.

use std::sync::Arc;

use crate::error::{ConnectError, Result};

/// A schema's parameters: insertion-ordered, and equal regardless of order
/// (as Java's `LinkedHashMap`). Remove with `shift_remove` to keep the order.
pub type Parameters = indexmap::IndexMap<String, String>;

/// Connect's schema types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl Type {
    /// Kafka's upper-case name (`INT32`).
    pub fn name(self) -> &'static str {
        match self {
            Type::Int8 => "INT8",
            Type::Int16 => "INT16",
            Type::Int32 => "INT32",
            Type::Int64 => "INT64",
            Type::Float32 => "FLOAT32",
            Type::Float64 => "FLOAT64",
            Type::Boolean => "BOOLEAN",
            Type::String => "STRING",
            Type::Bytes => "BYTES",
            Type::Array => "ARRAY",
            Type::Map => "MAP",
            Type::Struct => "STRUCT",
        }
    }

    /// Parses Kafka's name, case-insensitively.
    pub fn parse(s: &str) -> Option<Type> {
        Some(match s.to_ascii_uppercase().as_str() {
            "INT8" => Type::Int8,
            "INT16" => Type::Int16,
            "INT32" => Type::Int32,
            "INT64" => Type::Int64,
            "FLOAT32" => Type::Float32,
            "FLOAT64" => Type::Float64,
            "BOOLEAN" => Type::Boolean,
            "STRING" => Type::String,
            "BYTES" => Type::Bytes,
            "ARRAY" => Type::Array,
            "MAP" => Type::Map,
            "STRUCT" => Type::Struct,
            _ => return None,
        })
    }

    /// Whether values of this type are primitive (not ARRAY, MAP, STRUCT).
    pub fn is_primitive(self) -> bool {
        !matches!(self, Type::Array | Type::Map | Type::Struct)
    }
}

/// The logical type names Kafka defines.
pub mod logical {
    /// `org.apache.kafka.connect.data.Decimal` over BYTES, parameter `scale`.
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    /// `org.apache.kafka.connect.data.Date` over INT32 (days).
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    /// `org.apache.kafka.connect.data.Time` over INT32 (ms of the day).
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    /// `org.apache.kafka.connect.data.Timestamp` over INT64 (ms).
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
    /// The Decimal schema's scale parameter.
    pub const SCALE: &str = "scale";
}

/// A struct field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Arc<Schema>,
}

/// A Connect schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub ty: Type,
    pub optional: bool,
    pub default: Option<Value>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    /// In insertion order, as Kafka's `ConnectSchema` keeps them (a
    /// Debezium Decimal: `scale`, then `connect.decimal.precision`).
    pub parameters: Option<Parameters>,
    /// STRUCT fields, in order.
    pub fields: Vec<Field>,
    /// MAP keys.
    pub key: Option<Arc<Schema>>,
    /// ARRAY items and MAP values.
    pub value: Option<Arc<Schema>>,
}

impl Schema {
    /// A required schema of `ty` with nothing else set.
    pub fn of(ty: Type) -> Schema {
        Schema {
            ty,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: None,
            fields: Vec::new(),
            key: None,
            value: None,
        }
    }

    /// The same schema, optional.
    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }

    /// With a name.
    pub fn named(mut self, name: &str) -> Schema {
        self.name = Some(name.to_string());
        self
    }

    /// An ARRAY of `items`.
    pub fn array(items: Schema) -> Schema {
        Schema {
            value: Some(Arc::new(items)),
            ..Schema::of(Type::Array)
        }
    }

    /// A MAP.
    pub fn map(key: Schema, value: Schema) -> Schema {
        Schema {
            key: Some(Arc::new(key)),
            value: Some(Arc::new(value)),
            ..Schema::of(Type::Map)
        }
    }

    /// A STRUCT of `fields` (name, schema).
    pub fn structure(fields: Vec<(String, Schema)>) -> Schema {
        Schema {
            fields: fields
                .into_iter()
                .enumerate()
                .map(|(index, (name, s))| Field {
                    name,
                    index,
                    schema: Arc::new(s),
                })
                .collect(),
            ..Schema::of(Type::Struct)
        }
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The Decimal scale, for a Decimal schema.
    pub fn decimal_scale(&self) -> Option<i32> {
        if self.name.as_deref() != Some(logical::DECIMAL) {
            return None;
        }
        self.parameters
            .as_ref()
            .and_then(|p| p.get(logical::SCALE))
            .and_then(|s| s.parse().ok())
    }

    /// Checks that `value` fits this schema, as Kafka's
    /// `ConnectSchema.validateValue` does.
    pub fn validate(&self, value: &Value) -> Result<()> {
        let bad = |what: &str| {
            Err(ConnectError::data(format!(
                "Invalid Java object for schema with type {}: {what}",
                self.ty.name()
            )))
        };
        match (self.ty, value) {
            (_, Value::Null) => {
                if self.optional || self.default.is_some() {
                    Ok(())
                } else {
                    Err(ConnectError::data(
                        "Invalid value: null used for required field",
                    ))
                }
            }
            (Type::Int8, Value::Int8(_))
            | (Type::Int16, Value::Int16(_))
            | (Type::Int32, Value::Int32(_))
            | (Type::Int64, Value::Int64(_))
            | (Type::Float32, Value::Float32(_))
            | (Type::Float64, Value::Float64(_))
            | (Type::Boolean, Value::Boolean(_))
            | (Type::String, Value::String(_))
            | (Type::Bytes, Value::Bytes(_)) => Ok(()),
            (Type::Array, Value::Array(items)) => {
                if let Some(s) = &self.value {
                    for v in items {
                        s.validate(v)?;
                    }
                }
                Ok(())
            }
            (Type::Map, Value::Map(entries)) => {
                for (k, v) in entries {
                    if let Some(s) = &self.key {
                        s.validate(k)?;
                    }
                    if let Some(s) = &self.value {
                        s.validate(v)?;
                    }
                }
                Ok(())
            }
            (Type::Struct, Value::Struct(s)) => {
                if s.schema.as_ref() != self {
                    return Err(ConnectError::data(
                        "Struct schemas do not match.".to_string(),
                    ));
                }
                Ok(())
            }
            (_, other) => bad(other.type_name()),
        }
    }
}

/// A struct value: its schema and one value per field.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    pub schema: Arc<Schema>,
    pub values: Vec<Value>,
}

impl Struct {
    /// A struct of `schema` with every field null.
    pub fn new(schema: Arc<Schema>) -> Struct {
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    /// The value of field `name` (`None`: no such field).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.field(name).map(|f| &self.values[f.index])
    }

    /// Sets field `name`.
    pub fn put(&mut self, name: &str, value: Value) -> Result<()> {
        let f = self
            .schema
            .field(name)
            .ok_or_else(|| ConnectError::data(format!("{name} is not a valid field name")))?;
        f.schema.validate(&value)?;
        self.values[f.index] = value;
        Ok(())
    }
}

/// A Connect value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Boolean(bool),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Entries in order.
    Map(Vec<(Value, Value)>),
    Struct(Struct),
}

impl Value {
    /// The Java class name Kafka's error messages use for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int8(_) => "java.lang.Byte",
            Value::Int16(_) => "java.lang.Short",
            Value::Int32(_) => "java.lang.Integer",
            Value::Int64(_) => "java.lang.Long",
            Value::Float32(_) => "java.lang.Float",
            Value::Float64(_) => "java.lang.Double",
            Value::Boolean(_) => "java.lang.Boolean",
            Value::String(_) => "java.lang.String",
            Value::Bytes(_) => "[B",
            Value::Array(_) => "java.util.ArrayList",
            Value::Map(_) => "java.util.HashMap",
            Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
        }
    }

    /// The schema type a schemaless value would have.
    pub fn inferred_type(&self) -> Option<Type> {
        Some(match self {
            Value::Null => return None,
            Value::Int8(_) => Type::Int8,
            Value::Int16(_) => Type::Int16,
            Value::Int32(_) => Type::Int32,
            Value::Int64(_) => Type::Int64,
            Value::Float32(_) => Type::Float32,
            Value::Float64(_) => Type::Float64,
            Value::Boolean(_) => Type::Boolean,
            Value::String(_) => Type::String,
            Value::Bytes(_) => Type::Bytes,
            Value::Array(_) => Type::Array,
            Value::Map(_) => Type::Map,
            Value::Struct(_) => Type::Struct,
        })
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, for a STRING value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Integer values of any width, as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int8(v) => Some(i64::from(*v)),
            Value::Int16(v) => Some(i64::from(*v)),
            Value::Int32(v) => Some(i64::from(*v)),
            Value::Int64(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of map key `key` (a string key), for a MAP value.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A value and its schema (`None` for schemaless data).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaAndValue {
    pub schema: Option<Arc<Schema>>,
    pub value: Value,
}

impl SchemaAndValue {
    /// A schemaless value.
    pub fn schemaless(value: Value) -> Self {
        Self {
            schema: None,
            value,
        }
    }

    /// Null without a schema.
    pub fn null() -> Self {
        Self::schemaless(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_validate_their_fields() {
        let schema = Arc::new(Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int32)),
            ("name".into(), Schema::of(Type::String).optional()),
        ]));
        let mut s = Struct::new(schema.clone());
        s.put("id", Value::Int32(7)).unwrap();
        assert!(s.put("id", Value::String("x".into())).is_err());
        assert!(s.put("id", Value::Null).is_err());
        s.put("name", Value::Null).unwrap();
        assert!(s.put("nope", Value::Null).is_err());
        assert_eq!(s.get("id"), Some(&Value::Int32(7)));
        schema.validate(&Value::Struct(s)).unwrap();
    }
}

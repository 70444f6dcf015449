//! The object formats of Confluent's S3 sink (`format.class`): what one
//! object holds and its file extension.
//!
//! - `JsonFormat`: each value as JsonConverter writes it without schemas,
//!   one per line (`.json`);
//! - `ByteArrayFormat`: each value's bytes followed by
//!   `format.bytearray.separator` (`.bin` or `format.bytearray.extension`);
//! - `AvroFormat`: an Avro object container file of the value schema as
//!   Confluent's AvroData converts it (`.avro`);
//! - `ParquetFormat`: a Parquet file whose columns are the value struct's
//!   fields, compressed with `parquet.codec` (`.snappy.parquet`, ...).
//!
//! Avro and Parquet need one schema per object: the task starts a new
//! object when a record's schema differs from the open one's.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, ListArray, MapArray, RecordBatch,
    StringArray, StructArray, Time32MillisecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field as AField, Fields, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::connector::{Props, SinkRecord};
use crate::converter::JsonConverter;
use crate::data::{logical, Schema, Type, Value};
use crate::error::{ConnectError, Result};

const PREFIX: &str = "io.confluent.connect.s3.format.";

/// The child of a null struct.
static NULL: Value = Value::Null;

/// An object format.
#[derive(Debug, Clone)]
pub enum Format {
    Json,
    ByteArray {
        extension: String,
        separator: Vec<u8>,
    },
    Avro,
    Parquet {
        codec: Compression,
        ext: &'static str,
    },
}

impl Format {
    /// From `format.class` and its settings.
    pub fn from_config(p: &Props) -> Result<Self> {
        let class = p.get("format.class").map(|s| s.trim()).unwrap_or("");
        let simple = class.rsplit('.').next().unwrap_or(class);
        match simple {
            "JsonFormat" => Ok(Self::Json),
            "ByteArrayFormat" => Ok(Self::ByteArray {
                extension: p
                    .get("format.bytearray.extension")
                    .cloned()
                    .unwrap_or_else(|| ".bin".into()),
                separator: unescape(
                    p.get("format.bytearray.separator")
                        .map(String::as_str)
                        .unwrap_or("\n"),
                )
                .into_bytes(),
            }),
            "AvroFormat" => {
                let codec = p.get("avro.codec").map(|s| s.trim()).unwrap_or("null");
                if codec != "null" && !codec.is_empty() {
                    return Err(ConnectError::bad_config(format!(
                        "Invalid value {codec} for configuration avro.codec: Weir writes Avro objects uncompressed (null)"
                    )));
                }
                Ok(Self::Avro)
            }
            "ParquetFormat" => {
                let name = p.get("parquet.codec").map(|s| s.trim()).unwrap_or("snappy");
                let (codec, ext) = match name {
                    "none" | "uncompressed" => (Compression::UNCOMPRESSED, ""),
                    "snappy" | "" => (Compression::SNAPPY, ".snappy"),
                    "gzip" => (Compression::GZIP(GzipLevel::default()), ".gz"),
                    "zstd" => (Compression::ZSTD(ZstdLevel::default()), ".zstd"),
                    _ => {
                        return Err(ConnectError::bad_config(format!(
                            "Invalid value {name} for configuration parquet.codec: Weir offers none, snappy, gzip and zstd"
                        )))
                    }
                };
                Ok(Self::Parquet { codec, ext })
            }
            "" => Err(ConnectError::bad_config(
                "Missing required configuration \"format.class\" which has no default value.",
            )),
            _ => Err(ConnectError::bad_config(format!(
                "Invalid value {class} for configuration format.class: expected {PREFIX}json.JsonFormat, {PREFIX}avro.AvroFormat, {PREFIX}parquet.ParquetFormat or {PREFIX}bytearray.ByteArrayFormat"
            ))),
        }
    }

    /// The file extension, with its dot.
    pub fn extension(&self) -> String {
        match self {
            Self::Json => ".json".into(),
            Self::ByteArray { extension, .. } => extension.clone(),
            Self::Avro => ".avro".into(),
            Self::Parquet { ext, .. } => format!("{ext}.parquet"),
        }
    }

    /// Whether an object holds one value schema only.
    pub fn needs_schema(&self) -> bool {
        matches!(self, Self::Avro | Self::Parquet { .. })
    }

    /// One object's bytes for `records` (all of one schema when
    /// [`Self::needs_schema`]).
    pub fn encode(&self, records: &[SinkRecord]) -> Result<Vec<u8>> {
        match self {
            Self::Json => {
                let conv = JsonConverter::new(false);
                let mut out = String::new();
                for r in records {
                    let v = &r.record.value;
                    conv.write_value(v.schema.as_deref(), &v.value, &mut out)?;
                    out.push('\n');
                }
                Ok(out.into_bytes())
            }
            Self::ByteArray { separator, .. } => {
                let mut out = Vec::new();
                for r in records {
                    match &r.record.value.value {
                        Value::Bytes(b) => out.extend_from_slice(b),
                        other => {
                            return Err(ConnectError::data(format!(
                                "ByteArrayFormat needs BYTES values (ByteArrayConverter), got {} at offset {}",
                                other.type_name(),
                                r.kafka_offset
                            )))
                        }
                    }
                    out.extend_from_slice(separator);
                }
                Ok(out)
            }
            Self::Avro => {
                let schema = value_schema(records)?;
                let text = crate::avro_data::avro_schema_text(&schema)?;
                let avro = weir_formats::apache_avro::Schema::parse_str(&text)
                    .map_err(|e| ConnectError::data(format!("Avro schema: {e}")))?;
                let mut w = weir_formats::apache_avro::Writer::new(&avro, Vec::new());
                for r in records {
                    let v = crate::avro_data::to_avro(&schema, &r.record.value.value)?;
                    w.append(v)
                        .map_err(|e| ConnectError::data(format!("Avro: {e}")))?;
                }
                w.into_inner()
                    .map_err(|e| ConnectError::data(format!("Avro: {e}")))
            }
            Self::Parquet { codec, .. } => parquet_bytes(records, *codec),
        }
    }
}

/// Java-style escapes a separator setting may carry (`\n`, `\t`, `\r`).
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\r", "\r")
        .replace("\\t", "\t")
}

/// The value schema every record shares (checked by the task).
fn value_schema(records: &[SinkRecord]) -> Result<Arc<Schema>> {
    records
        .first()
        .and_then(|r| r.record.value.schema.clone())
        .ok_or_else(|| {
            ConnectError::data(
                "Avro and Parquet objects need values with a schema (a schema-carrying converter such as AvroConverter or JsonConverter with schemas.enable=true)",
            )
        })
}

/// A Parquet file of `records`' struct values, one column per field.
fn parquet_bytes(records: &[SinkRecord], codec: Compression) -> Result<Vec<u8>> {
    let schema = value_schema(records)?;
    if schema.ty != Type::Struct {
        return Err(ConnectError::data(format!(
            "ParquetFormat needs STRUCT values, got {}",
            schema.ty.name()
        )));
    }
    let values: Vec<&Value> = records.iter().map(|r| &r.record.value.value).collect();
    let (fields, columns) = struct_children(&schema, &values)?;
    let batch = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
        .map_err(|e| ConnectError::data(format!("Parquet: {e}")))?;
    let props = WriterProperties::builder().set_compression(codec).build();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
        .map_err(|e| ConnectError::data(format!("Parquet: {e}")))?;
    w.write(&batch)
        .map_err(|e| ConnectError::data(format!("Parquet: {e}")))?;
    w.into_inner()
        .map_err(|e| ConnectError::data(format!("Parquet: {e}")))
}

/// The Arrow type of a Connect schema (logical types included).
fn arrow_type(s: &Schema) -> Result<DataType> {
    Ok(match (s.ty, s.name.as_deref()) {
        (Type::Int32, Some(logical::DATE)) => DataType::Date32,
        (Type::Int32, Some(logical::TIME)) => DataType::Time32(TimeUnit::Millisecond),
        (Type::Int64, Some(logical::TIMESTAMP)) => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        (Type::Bytes, Some(logical::DECIMAL)) => {
            DataType::Decimal128(38, s.decimal_scale().unwrap_or(0).clamp(0, 38) as i8)
        }
        (Type::Int8, _) => DataType::Int8,
        (Type::Int16, _) => DataType::Int16,
        (Type::Int32, _) => DataType::Int32,
        (Type::Int64, _) => DataType::Int64,
        (Type::Float32, _) => DataType::Float32,
        (Type::Float64, _) => DataType::Float64,
        (Type::Boolean, _) => DataType::Boolean,
        (Type::String, _) => DataType::Utf8,
        (Type::Bytes, _) => DataType::Binary,
        (Type::Array, _) => DataType::List(Arc::new(AField::new(
            "element",
            arrow_type(child(s.value.as_deref())?)?,
            true,
        ))),
        (Type::Map, _) => DataType::Map(Arc::new(map_entries(s)?), false),
        (Type::Struct, _) => DataType::Struct(
            s.fields
                .iter()
                .map(|f| {
                    Ok(AField::new(
                        &f.name,
                        arrow_type(&f.schema)?,
                        f.schema.optional,
                    ))
                })
                .collect::<Result<Fields>>()?,
        ),
    })
}

fn child(s: Option<&Schema>) -> Result<&Schema> {
    s.ok_or_else(|| ConnectError::data("an ARRAY or MAP schema without its item schema"))
}

fn map_entries(s: &Schema) -> Result<AField> {
    let key = child(s.key.as_deref())?;
    let value = child(s.value.as_deref())?;
    Ok(AField::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            AField::new("key", arrow_type(key)?, false),
            AField::new("value", arrow_type(value)?, true),
        ])),
        false,
    ))
}

fn mismatch(s: &Schema, v: &Value) -> ConnectError {
    ConnectError::data(format!(
        "a {} value where the schema has {}",
        v.type_name(),
        s.ty.name()
    ))
}

/// The fields and columns of struct `values` (a null parent nulls its
/// children).
fn struct_children(s: &Schema, values: &[&Value]) -> Result<(Vec<AField>, Vec<ArrayRef>)> {
    let mut fields = Vec::with_capacity(s.fields.len());
    let mut columns = Vec::with_capacity(s.fields.len());
    for f in &s.fields {
        let col: Vec<&Value> = values
            .iter()
            .map(|v| match v {
                Value::Struct(st) => Ok(st.values.get(f.index).unwrap_or(&NULL)),
                Value::Null => Ok(&NULL),
                other => Err(mismatch(s, other)),
            })
            .collect::<Result<_>>()?;
        fields.push(AField::new(
            &f.name,
            arrow_type(&f.schema)?,
            f.schema.optional,
        ));
        columns.push(column(&f.schema, &col)?);
    }
    Ok((fields, columns))
}

macro_rules! prim {
    ($arr:ty, $s:expr, $values:expr, $pat:pat => $out:expr) => {{
        let v: Vec<_> = $values
            .iter()
            .map(|v| match v {
                Value::Null => Ok(None),
                $pat => Ok(Some($out)),
                other => Err(mismatch($s, other)),
            })
            .collect::<Result<_>>()?;
        Arc::new(<$arr>::from(v)) as ArrayRef
    }};
}

fn nulls(values: &[&Value]) -> Option<arrow_buffer::NullBuffer> {
    values.iter().any(|v| v.is_null()).then(|| {
        arrow_buffer::NullBuffer::from(values.iter().map(|v| !v.is_null()).collect::<Vec<bool>>())
    })
}

/// One Arrow column of `values` of schema `s`.
fn column(s: &Schema, values: &[&Value]) -> Result<ArrayRef> {
    let err = |e: arrow_schema::ArrowError| ConnectError::data(format!("Parquet: {e}"));
    Ok(match (s.ty, s.name.as_deref()) {
        (Type::Int32, Some(logical::DATE)) => {
            prim!(Date32Array, s, values, Value::Int32(n) => *n)
        }
        (Type::Int32, Some(logical::TIME)) => {
            prim!(Time32MillisecondArray, s, values, Value::Int32(n) => *n)
        }
        (Type::Int64, Some(logical::TIMESTAMP)) => Arc::new(
            prim!(TimestampMillisecondArray, s, values, Value::Int64(n) => *n)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .map(|a| a.clone().with_timezone("UTC"))
                .ok_or_else(|| ConnectError::data("timestamp column"))?,
        ),
        (Type::Bytes, Some(logical::DECIMAL)) => {
            let DataType::Decimal128(p, sc) = arrow_type(s)? else {
                return Err(ConnectError::data("decimal column"));
            };
            let v: Vec<Option<i128>> = values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Bytes(b) if b.len() <= 16 && !b.is_empty() => {
                        // Connect's Decimal: a big-endian two's complement
                        // unscaled value.
                        let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
                        let mut buf = [fill; 16];
                        buf[16 - b.len()..].copy_from_slice(b);
                        Ok(Some(i128::from_be_bytes(buf)))
                    }
                    other => Err(ConnectError::data(format!(
                        "a Decimal that does not fit 128 bits ({})",
                        other.type_name()
                    ))),
                })
                .collect::<Result<_>>()?;
            Arc::new(
                Decimal128Array::from(v)
                    .with_precision_and_scale(p, sc)
                    .map_err(err)?,
            )
        }
        (Type::Int8, _) => prim!(Int8Array, s, values, Value::Int8(n) => *n),
        (Type::Int16, _) => prim!(Int16Array, s, values, Value::Int16(n) => *n),
        (Type::Int32, _) => prim!(Int32Array, s, values, Value::Int32(n) => *n),
        (Type::Int64, _) => prim!(Int64Array, s, values, Value::Int64(n) => *n),
        (Type::Float32, _) => prim!(Float32Array, s, values, Value::Float32(n) => *n),
        (Type::Float64, _) => prim!(Float64Array, s, values, Value::Float64(n) => *n),
        (Type::Boolean, _) => prim!(BooleanArray, s, values, Value::Boolean(b) => *b),
        (Type::String, _) => prim!(StringArray, s, values, Value::String(t) => t.as_str()),
        (Type::Bytes, _) => prim!(BinaryArray, s, values, Value::Bytes(b) => b.as_slice()),
        (Type::Struct, _) => {
            let (fields, columns) = struct_children(s, values)?;
            Arc::new(
                StructArray::try_new(Fields::from(fields), columns, nulls(values)).map_err(err)?,
            )
        }
        (Type::Array, _) => {
            let item = child(s.value.as_deref())?;
            let mut offsets = vec![0i32];
            let mut items: Vec<&Value> = Vec::new();
            for v in values {
                match v {
                    Value::Null => {}
                    Value::Array(a) => items.extend(a.iter()),
                    other => return Err(mismatch(s, other)),
                }
                offsets.push(
                    i32::try_from(items.len())
                        .map_err(|_| ConnectError::data("array column over 2^31 items"))?,
                );
            }
            let field = Arc::new(AField::new("element", arrow_type(item)?, true));
            Arc::new(
                ListArray::try_new(
                    field,
                    arrow_buffer::OffsetBuffer::new(offsets.into()),
                    column(item, &items)?,
                    nulls(values),
                )
                .map_err(err)?,
            )
        }
        (Type::Map, _) => {
            let (ks, vs) = (child(s.key.as_deref())?, child(s.value.as_deref())?);
            let mut offsets = vec![0i32];
            let (mut keys, mut vals): (Vec<&Value>, Vec<&Value>) = (Vec::new(), Vec::new());
            for v in values {
                match v {
                    Value::Null => {}
                    Value::Map(m) => {
                        for (k, x) in m {
                            keys.push(k);
                            vals.push(x);
                        }
                    }
                    other => return Err(mismatch(s, other)),
                }
                offsets.push(
                    i32::try_from(keys.len())
                        .map_err(|_| ConnectError::data("map column over 2^31 entries"))?,
                );
            }
            let entries = map_entries(s)?;
            let DataType::Struct(entry_fields) = entries.data_type().clone() else {
                return Err(ConnectError::data("map entries"));
            };
            let entries_array = StructArray::try_new(
                entry_fields,
                vec![column(ks, &keys)?, column(vs, &vals)?],
                None,
            )
            .map_err(err)?;
            Arc::new(
                MapArray::try_new(
                    Arc::new(entries),
                    arrow_buffer::OffsetBuffer::new(offsets.into()),
                    entries_array,
                    nulls(values),
                    false,
                )
                .map_err(err)?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::ConnectRecord;
    use crate::data::{SchemaAndValue, Struct};

    fn rec(schema: &Arc<Schema>, id: i64, name: Option<&str>) -> SinkRecord {
        let mut st = Struct::new(schema.clone());
        st.put("id", Value::Int64(id)).unwrap();
        st.put(
            "name",
            name.map_or(Value::Null, |n| Value::String(n.into())),
        )
        .unwrap();
        st.put("tags", Value::Array(vec![Value::String("a".into())]))
            .unwrap();
        SinkRecord {
            record: ConnectRecord::new(
                "t",
                SchemaAndValue {
                    schema: Some(schema.clone()),
                    value: Value::Struct(st),
                },
            ),
            kafka_offset: id,
            original_topic: "t".into(),
            original_partition: 0,
        }
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int64)),
            ("name".into(), Schema::of(Type::String).optional()),
            ("tags".into(), Schema::array(Schema::of(Type::String))),
        ]))
    }

    #[test]
    fn parquet_has_the_struct_fields_as_columns() {
        let s = schema();
        let records = vec![rec(&s, 1, Some("x")), rec(&s, 2, None)];
        let p = Props::from([(
            "format.class".to_string(),
            "io.confluent.connect.s3.format.parquet.ParquetFormat".to_string(),
        )]);
        let f = Format::from_config(&p).unwrap();
        assert_eq!(f.extension(), ".snappy.parquet");
        let bytes = f.encode(&records).unwrap();
        let reader =
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        use parquet::file::reader::FileReader;
        let md = reader.metadata();
        assert_eq!(md.file_metadata().num_rows(), 2);
        let cols: Vec<_> = md
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.path().string())
            .collect();
        assert_eq!(cols, ["id", "name", "tags.list.element"]);
    }

    #[test]
    fn json_and_avro_objects() {
        let s = schema();
        let records = vec![rec(&s, 1, Some("x"))];
        let json = Format::Json.encode(&records).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"id\":1,\"name\":\"x\",\"tags\":[\"a\"]}\n"
        );
        let avro = Format::Avro.encode(&records).unwrap();
        let reader = weir_formats::apache_avro::Reader::new(&avro[..]).unwrap();
        assert_eq!(reader.count(), 1);
        assert!(Format::from_config(&Props::from([
            ("format.class".to_string(), "ParquetFormat".to_string()),
            ("parquet.codec".to_string(), "lzo".to_string())
        ]))
        .is_err());
    }
}

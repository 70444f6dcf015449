//! Key and value formats: `JSON`, `KAFKA`, `DELIMITED` and `NONE`, with
//! ksqlDB's byte layouts, and windowed keys.
//!
//! - `KAFKA`: one column; INT as 4 bytes big-endian, BIGINT 8, DOUBLE an
//!   IEEE-754 double in 8, STRING UTF-8, BYTES as is (Kafka's serializers).
//! - `JSON`: an object of column name to value; with one column and
//!   `WRAP_SINGLE_VALUE=false` (the default for keys) the value alone.
//!   Field names are matched case-insensitively on read, as ksqlDB does.
//!   TIMESTAMP is milliseconds, DATE days and TIME milliseconds; BYTES are
//!   base64 text.
//! - `DELIMITED`: one field a column, separated by `VALUE_DELIMITER`
//!   (`,` by default), empty for NULL, quoted as CSV when needed.
//! - `NONE`: no columns (the key of an unkeyed stream).
//! - `AVRO`, `PROTOBUF`, `JSON_SR`: Confluent's wire frame with a schema
//!   of the registry (see [`crate::sr`]); single columns follow
//!   `WRAP_SINGLE_VALUE` as in JSON.
//! - Windowed keys: the key's bytes, then the window start as 8 bytes
//!   big-endian; session windows: the key, the end, then the start.

use std::sync::Arc;

use crate::decimal::Dec;
use crate::error::{Result, SqlError};
use crate::sr::{Bound, SrKind};
use crate::types::{SqlType, Value};

/// A serialization format.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Json,
    Kafka,
    Delimited(char),
    None,
    /// A schema-registry format, bound to its subject's schema once the
    /// statement is applied.
    Registry(RegistryFormat),
}

/// A schema-registry format and, once bound, its schemas.
#[derive(Debug, Clone)]
pub struct RegistryFormat {
    pub kind: SrKind,
    pub bound: Option<Arc<Bound>>,
    /// Confluent's wire frame (magic byte, schema id) around each record;
    /// `false` for `AVRO_NOSR` and `PROTOBUF_NOSR`, whose schema comes
    /// from the columns.
    pub framed: bool,
}

impl RegistryFormat {
    /// The bound schemas (a statement's format is bound once applied).
    fn schemas(&self) -> Result<&Arc<Bound>> {
        self.bound.as_ref().ok_or_else(|| SqlError::Internal {
            message: format!("the {} format has no schema", self.kind.name()),
        })
    }
}

impl PartialEq for RegistryFormat {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.framed == other.framed
    }
}

impl Format {
    /// Parses a format name (and delimiter) as given in `WITH`.
    pub fn parse(name: &str, delimiter: Option<&str>) -> Result<Format> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "JSON" => Format::Json,
            "KAFKA" => Format::Kafka,
            "NONE" => Format::None,
            "DELIMITED" => Format::Delimited(match delimiter.map(str::to_ascii_uppercase).as_deref() {
                None => ',',
                Some("TAB") => '\t',
                Some("SPACE") => ' ',
                Some(d) if d.chars().count() == 1 => d.chars().next().unwrap_or(','),
                Some(d) => {
                    return Err(SqlError::invalid(format!(
                        "Invalid delimiter value: '{d}'. Delimiter must be a single character or TAB or SPACE"
                    )))
                }
            }),
            "AVRO" => Format::registry(SrKind::Avro),
            "PROTOBUF" => Format::registry(SrKind::Protobuf),
            "JSON_SR" => Format::registry(SrKind::JsonSr),
            "AVRO_NOSR" => Format::Registry(RegistryFormat {
                kind: SrKind::Avro,
                bound: None,
                framed: false,
            }),
            "PROTOBUF_NOSR" => Format::Registry(RegistryFormat {
                kind: SrKind::Protobuf,
                bound: None,
                framed: false,
            }),
            other => {
                return Err(SqlError::invalid(format!(
                    "Unknown format: {other}. Supported formats: JSON, JSON_SR, AVRO, PROTOBUF, DELIMITED, KAFKA, NONE"
                )))
            }
        })
    }

    fn registry(kind: SrKind) -> Format {
        Format::Registry(RegistryFormat {
            kind,
            bound: None,
            framed: true,
        })
    }

    /// A registry format's schema without the registry (`AVRO_NOSR`,
    /// `PROTOBUF_NOSR`).
    pub fn is_nosr(&self) -> bool {
        matches!(self, Format::Registry(r) if !r.framed)
    }

    /// The registry format, if this is one.
    pub fn sr_kind(&self) -> Option<SrKind> {
        match self {
            Format::Registry(r) => Some(r.kind),
            _ => None,
        }
    }

    /// The format's name.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Registry(r) if !r.framed && r.kind == SrKind::Protobuf => "PROTOBUF_NOSR",
            Format::Registry(r) if !r.framed => "AVRO_NOSR",
            Format::Registry(r) => r.kind.name(),
            Format::Json => "JSON",
            Format::Kafka => "KAFKA",
            Format::Delimited(_) => "DELIMITED",
            Format::None => "NONE",
        }
    }

    /// Checks that the format can carry these columns.
    pub fn check(&self, columns: &[(String, SqlType)], what: &str) -> Result<()> {
        match self {
            Format::None if !columns.is_empty() => Err(SqlError::invalid(format!(
                "The 'NONE' format can only be used when no columns are defined. Got: {}",
                columns
                    .iter()
                    .map(|(n, t)| format!("`{n}` {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Format::Kafka if columns.len() > 1 => Err(SqlError::invalid(format!(
                "The 'KAFKA' format only supports a single field. Got: {} {what} columns",
                columns.len()
            ))),
            Format::Kafka => match columns.first().map(|c| &c.1) {
                None
                | Some(
                    SqlType::Int
                    | SqlType::Bigint
                    | SqlType::Double
                    | SqlType::String
                    | SqlType::Bytes,
                ) => Ok(()),
                Some(t) => Err(SqlError::invalid(format!(
                    "The 'KAFKA' format does not support type '{}'",
                    t.rest_name()
                ))),
            },
            Format::Delimited(_) => match columns.iter().find(|(_, t)| {
                matches!(t, SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_))
            }) {
                Some((n, t)) => Err(SqlError::invalid(format!(
                    "The 'DELIMITED' format does not support type '{}', column: `{n}`",
                    t.rest_name()
                ))),
                None => Ok(()),
            },
            Format::Registry(r) => r.kind.check(columns),
            _ => Ok(()),
        }
    }
}

/// Serializes and deserializes rows of fixed columns in one format.
#[derive(Debug, Clone)]
pub struct Codec {
    pub format: Format,
    pub columns: Vec<(String, SqlType)>,
    /// JSON: whether a single column is wrapped in an object.
    pub wrap_single: bool,
}

impl Codec {
    pub fn new(format: Format, columns: Vec<(String, SqlType)>, wrap_single: bool) -> Codec {
        Codec {
            format,
            columns,
            wrap_single,
        }
    }

    /// Serializes, or fails when a registry schema cannot carry the row
    /// (a schema of `*_SCHEMA_ID` narrower than the columns).
    pub fn try_encode(&self, values: &[Value]) -> Result<Option<Vec<u8>>> {
        match &self.format {
            // JSON_SR is JSON text in a frame, decimals exact as in JSON.
            Format::Registry(r) if r.kind == SrKind::JsonSr && r.framed => {
                let bound = r.schemas()?;
                Ok(self.json_text(values).map(|t| bound.json_sr_frame(&t)))
            }
            Format::Registry(r) => {
                let Some(json) = self.row_json(values) else {
                    return Ok(None);
                };
                let bound = r.schemas()?;
                if r.framed {
                    bound.encode(r.kind, &json).map(Some)
                } else {
                    bound.encode_payload(r.kind, &json).map(Some)
                }
            }
            _ => Ok(self.encode(values)),
        }
    }

    /// Serializes; `None` is a null record part (and, for registry
    /// formats, a row [`Self::try_encode`] refuses).
    pub fn encode(&self, values: &[Value]) -> Option<Vec<u8>> {
        match &self.format {
            Format::None => None,
            Format::Registry(_) => self.try_encode(values).ok().flatten(),
            Format::Kafka => match values.first() {
                None | Some(Value::Null) => None,
                Some(v) => Some(kafka_bytes(v)),
            },
            Format::Json => self.json_text(values),
            Format::Delimited(d) => {
                if self.columns.len() == 1 && values[0].is_null() {
                    return None;
                }
                let fields: Vec<String> = values
                    .iter()
                    .map(|v| {
                        let s = match v {
                            Value::Null => return String::new(),
                            Value::Timestamp(t) => t.to_string(),
                            Value::Date(d) => d.to_string(),
                            Value::Time(t) => t.to_string(),
                            v => v.to_sql_string(),
                        };
                        if s.contains(*d) || s.contains('"') || s.contains('\n') {
                            format!("\"{}\"", s.replace('"', "\"\""))
                        } else {
                            s
                        }
                    })
                    .collect();
                Some(fields.join(&d.to_string()).into_bytes())
            }
        }
    }

    /// The row as JSON text (see [`Self::row_json`]), decimals exact.
    fn json_text(&self, values: &[Value]) -> Option<Vec<u8>> {
        if self.columns.len() != 1 || self.wrap_single {
            return Some(crate::json::encode_row(&self.columns, values));
        }
        if values[0].is_null() {
            return None;
        }
        let mut out = Vec::with_capacity(16);
        crate::json::write_value(&mut out, &values[0]);
        Some(out)
    }

    /// JSON text as a document for [`Self::json_row`], the numbers of
    /// DECIMALs kept as their text ([`crate::json::exact_tree`]).
    fn json_tree(&self, bytes: &[u8], name: &'static str) -> Result<serde_json::Value> {
        let bad = |e: &dyn std::fmt::Display| SqlError::serde(name, e.to_string());
        if !self.columns.iter().any(|(_, t)| t.has_decimal()) {
            return serde_json::from_slice(bytes).map_err(|e| bad(&e));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| bad(&e))?;
        let object = text.trim_start().starts_with('{');
        // The shape `json_row` reads: one column's value, or an object.
        let row = SqlType::Struct(self.columns.clone());
        let ty = match self.columns.as_slice() {
            [(_, t)] if !object => t,
            [(_, t @ (SqlType::Struct(_) | SqlType::Map(..)))] if !self.wrap_single => t,
            _ => &row,
        };
        crate::json::exact_tree(text, ty).map_err(|e| bad(&e))
    }

    /// The row as JSON: an object of the columns, or the single column's
    /// value when unwrapped (`None` for a null one).
    fn row_json(&self, values: &[Value]) -> Option<serde_json::Value> {
        // AVRO and PROTOBUF write decimals from their exact text (JSON
        // and JSON_SR are written as text, see `json_text`).
        if self.columns.len() == 1 && !self.wrap_single {
            if values[0].is_null() {
                return None;
            }
            return Some(to_json_exact(&values[0]));
        }
        let mut obj = serde_json::Map::with_capacity(self.columns.len());
        for ((name, _), v) in self.columns.iter().zip(values) {
            obj.insert(name.clone(), to_json_exact(v));
        }
        Some(serde_json::Value::Object(obj))
    }

    /// Columns from a decoded JSON row (see [`Self::row_json`]).
    fn json_row(&self, json: serde_json::Value, name: &'static str) -> Result<Option<Vec<Value>>> {
        if json.is_null() {
            return Ok(None);
        }
        // Avro's JSON form of a decimal is its unscaled bytes.
        let avro = matches!(&self.format, Format::Registry(r) if r.kind == SrKind::Avro);
        let from_json = |j: &serde_json::Value, ty: &SqlType| from_json_in(j, ty, avro);
        let unwrapped = self.columns.len() == 1 && (!self.wrap_single || !json.is_object());
        if unwrapped {
            let (col, ty) = &self.columns[0];
            // A record of one field written by another producer.
            if let (serde_json::Value::Object(o), false) =
                (&json, matches!(ty, SqlType::Struct(_) | SqlType::Map(..)))
            {
                if let Some((_, v)) = o.iter().find(|(k, _)| k.eq_ignore_ascii_case(col)) {
                    return Ok(Some(vec![from_json(v, ty)?]));
                }
            }
            return Ok(Some(vec![from_json(&json, ty)?]));
        }
        let serde_json::Value::Object(obj) = json else {
            return Err(SqlError::serde(name, "expected a JSON object"));
        };
        let mut out = Vec::with_capacity(self.columns.len());
        for (col, ty) in &self.columns {
            let v = match obj.get(col) {
                Some(v) => Some(v),
                None => obj
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(col))
                    .map(|(_, v)| v),
            };
            out.push(match v {
                Some(v) => from_json(v, ty)?,
                None => Value::Null,
            });
        }
        Ok(Some(out))
    }

    /// Deserializes; `Ok(None)` for a null value (a tombstone).
    pub fn decode(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>> {
        self.decode_kept(bytes, None)
    }

    /// Deserializes as [`Self::decode`] does; with `keep`, the columns
    /// marked `false` (those a query never reads) may come back NULL
    /// without their values being copied out of the record.
    pub fn decode_kept(
        &self,
        bytes: Option<&[u8]>,
        keep: Option<&[bool]>,
    ) -> Result<Option<Vec<Value>>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let name = self.format.name();
        match &self.format {
            Format::None => Ok(Some(Vec::new())),
            Format::Kafka => match self.columns.first() {
                None => Ok(Some(Vec::new())),
                Some((_, t)) => Ok(Some(vec![from_kafka_bytes(bytes, t)?])),
            },
            // Straight into the columns; a single column may be unwrapped,
            // which needs the whole value first.
            Format::Json if self.columns.len() != 1 => {
                crate::json::decode_row(&self.columns, keep, bytes)
            }
            Format::Json => self.json_row(self.json_tree(bytes, name)?, name),
            Format::Registry(r) if r.kind == SrKind::JsonSr && r.framed => {
                let bound = r.schemas()?;
                let text = bound.json_sr_payload(bytes)?;
                self.json_row(self.json_tree(text, name)?, name)
            }
            Format::Registry(r) => {
                let bound = r.schemas()?;
                let json = if r.framed {
                    bound.decode(r.kind, bytes)?
                } else {
                    crate::sr::decode_nosr(&bound.write, r.kind, bytes)?
                };
                self.json_row(json, name)
            }
            Format::Delimited(d) => {
                let text = std::str::from_utf8(bytes).map_err(|e| SqlError::serde(name, e))?;
                let fields = split_delimited(text, *d);
                if fields.len() != self.columns.len() {
                    return Err(SqlError::serde(
                        name,
                        format!(
                            "Unexpected field count, csvFields:{} schemaFields:{}",
                            fields.len(),
                            self.columns.len()
                        ),
                    ));
                }
                let mut out = Vec::with_capacity(fields.len());
                for (f, (col, ty)) in fields.iter().zip(&self.columns) {
                    out.push(if f.is_empty() {
                        Value::Null
                    } else {
                        parse_text(f, ty).ok_or_else(|| {
                            SqlError::serde(
                                name,
                                format!("cannot read '{f}' as {ty} for column {col}"),
                            )
                        })?
                    });
                }
                Ok(Some(out))
            }
        }
    }
}

fn split_delimited(text: &str, d: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.is_empty() {
            quoted = true;
        } else if c == d {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn parse_text(f: &str, ty: &SqlType) -> Option<Value> {
    Some(match ty {
        SqlType::String => Value::String(f.to_string()),
        SqlType::Int => Value::Int(f.trim().parse().ok()?),
        SqlType::Bigint => Value::Bigint(f.trim().parse().ok()?),
        SqlType::Double => Value::Double(f.trim().parse().ok()?),
        SqlType::Decimal(p, s) => Value::Decimal(Dec::parse(f)?.fit(*p, *s)?),
        SqlType::Boolean => Value::Boolean(f.trim().eq_ignore_ascii_case("true")),
        SqlType::Timestamp => Value::Timestamp(f.trim().parse().ok()?),
        SqlType::Date => Value::Date(f.trim().parse().ok()?),
        SqlType::Time => Value::Time(f.trim().parse().ok()?),
        SqlType::Bytes => Value::Bytes(crate::functions::base64_decode(f.trim())?),
        _ => return None,
    })
}

fn kafka_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Int(i) => i.to_be_bytes().to_vec(),
        Value::Bigint(i) | Value::Timestamp(i) | Value::Time(i) => i.to_be_bytes().to_vec(),
        Value::Double(d) => d.to_be_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        v => v.to_sql_string().into_bytes(),
    }
}

fn from_kafka_bytes(b: &[u8], ty: &SqlType) -> Result<Value> {
    let exact = |n: usize| -> Result<()> {
        if b.len() == n {
            Ok(())
        } else {
            Err(SqlError::serde(
                "KAFKA",
                format!(
                    "size of data received by {} is not {n}: {} bytes",
                    ty.rest_name(),
                    b.len()
                ),
            ))
        }
    };
    Ok(match ty {
        SqlType::Int => {
            exact(4)?;
            Value::Int(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        SqlType::Bigint => {
            exact(8)?;
            Value::Bigint(i64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
        }
        SqlType::Double => {
            exact(8)?;
            Value::Double(f64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
        }
        SqlType::String => {
            Value::String(String::from_utf8(b.to_vec()).map_err(|e| SqlError::serde("KAFKA", e))?)
        }
        SqlType::Bytes => Value::Bytes(b.to_vec()),
        t => return Err(SqlError::serde("KAFKA", format!("unsupported type {t}"))),
    })
}

/// A value as JSON (ksqlDB's JSON mapping).
pub fn to_json(v: &Value) -> serde_json::Value {
    json_of(v, false)
}

/// As [`to_json`], with decimals as their exact text.
pub fn to_json_exact(v: &Value) -> serde_json::Value {
    json_of(v, true)
}

fn json_of(v: &Value, exact: bool) -> serde_json::Value {
    use serde_json::Value as J;
    let to_json = |v: &Value| json_of(v, exact);
    match v {
        Value::Decimal(d) if exact => J::String(d.to_plain_string()),
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Bigint(i) | Value::Timestamp(i) | Value::Time(i) => J::from(*i),
        Value::Date(d) => J::from(*d),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        // A JSON number, as ksqlDB writes DECIMAL. serde_json's numbers
        // are doubles here, so past 15 significant digits the text is the
        // nearest double's and trailing zeros of the scale are not kept.
        Value::Decimal(d) => serde_json::Number::from_f64(d.to_f64()).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(crate::functions::base64_encode(b)),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (k.to_sql_string(), to_json(v)))
                .collect(),
        ),
        Value::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

/// A JSON value read as `ty` (numbers convert between numeric types,
/// strings parse into numbers and times, as ksqlDB's JSON reader does).
pub fn from_json(j: &serde_json::Value, ty: &SqlType) -> Result<Value> {
    from_json_in(j, ty, false)
}

/// As [`from_json`]; `avro`: a decimal's string is its unscaled bytes in
/// base64 (Avro's JSON form here), not its text.
fn from_json_in(j: &serde_json::Value, ty: &SqlType, avro: bool) -> Result<Value> {
    use serde_json::Value as J;
    let from_json = |j: &J, ty: &SqlType| from_json_in(j, ty, avro);
    let bad = || {
        SqlError::serde(
            "JSON",
            format!(
                "Can't convert type. sourceType: {}, requiredType: {ty}",
                json_kind(j)
            ),
        )
    };
    if j.is_null() {
        return Ok(Value::Null);
    }
    Ok(match ty {
        SqlType::Boolean => match j {
            J::Bool(b) => Value::Boolean(*b),
            J::String(s) => Value::Boolean(s.eq_ignore_ascii_case("true")),
            _ => return Err(bad()),
        },
        SqlType::Int => match j {
            J::Number(n) => Value::Int(
                n.as_i64()
                    .map(|v| v as i32)
                    .or_else(|| n.as_f64().map(|f| f as i32))
                    .ok_or_else(bad)?,
            ),
            J::String(s) => Value::Int(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        SqlType::Bigint => match j {
            J::Number(n) => Value::Bigint(
                n.as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .ok_or_else(bad)?,
            ),
            J::String(s) => Value::Bigint(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        SqlType::Double => match j {
            J::Number(n) => Value::Double(n.as_f64().ok_or_else(bad)?),
            J::String(s) => Value::Double(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        SqlType::Decimal(p, s) => match j {
            J::Number(n) => Value::Decimal(
                Dec::parse(&n.to_string())
                    .and_then(|d| d.fit(*p, *s))
                    .ok_or_else(bad)?,
            ),
            J::String(t) if avro => Value::Decimal(
                crate::functions::base64_decode(t)
                    .and_then(|b| Dec::from_be_bytes(&b, *s))
                    .and_then(|d| d.fit(*p, *s))
                    .ok_or_else(bad)?,
            ),
            J::String(t) => {
                Value::Decimal(Dec::parse(t).and_then(|d| d.fit(*p, *s)).ok_or_else(bad)?)
            }
            _ => return Err(bad()),
        },
        SqlType::String => match j {
            J::String(s) => Value::String(s.clone()),
            // ksqlDB keeps the JSON text of non-string values.
            other => Value::String(other.to_string()),
        },
        SqlType::Bytes => match j {
            J::String(s) => Value::Bytes(crate::functions::base64_decode(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        SqlType::Timestamp => match j {
            J::Number(n) => Value::Timestamp(n.as_i64().ok_or_else(bad)?),
            J::String(s) => Value::Timestamp(
                s.parse::<i64>()
                    .ok()
                    .or_else(|| crate::time::parse_timestamp_text(s))
                    .ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        },
        SqlType::Date => match j {
            J::Number(n) => Value::Date(n.as_i64().ok_or_else(bad)? as i32),
            J::String(s) => Value::Date(crate::time::parse_date_text(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        SqlType::Time => match j {
            J::Number(n) => Value::Time(n.as_i64().ok_or_else(bad)?),
            J::String(s) => Value::Time(crate::time::parse_time_text(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        SqlType::Array(elem) => match j {
            J::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| from_json(i, elem))
                    .collect::<Result<_>>()?,
            ),
            _ => return Err(bad()),
        },
        SqlType::Map(kt, vt) => match j {
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| {
                        let key = parse_text(k, kt).ok_or_else(bad)?;
                        Ok((key, from_json(v, vt)?))
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => return Err(bad()),
        },
        SqlType::Struct(fields) => match j {
            J::Object(o) => Value::Struct(
                fields
                    .iter()
                    .map(|(name, t)| {
                        let v = o.get(name).or_else(|| {
                            o.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v)
                        });
                        Ok((
                            name.clone(),
                            v.map_or(Ok(Value::Null), |v| from_json(v, t))?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => return Err(bad()),
        },
    })
}

fn json_kind(j: &serde_json::Value) -> &'static str {
    match j {
        serde_json::Value::Null => "NULL",
        serde_json::Value::Bool(_) => "BOOLEAN",
        serde_json::Value::Number(_) => "NUMBER",
        serde_json::Value::String(_) => "STRING",
        serde_json::Value::Array(_) => "ARRAY",
        serde_json::Value::Object(_) => "OBJECT",
    }
}

/// A window a windowed key carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// Whether keys carry a time window or a session window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    Tumbling,
    Hopping,
    Session,
}

impl WindowType {
    pub fn name(self) -> &'static str {
        match self {
            WindowType::Tumbling => "TUMBLING",
            WindowType::Hopping => "HOPPING",
            WindowType::Session => "SESSION",
        }
    }
}

/// Appends the window to serialized key bytes.
pub fn windowed_key(key: Option<Vec<u8>>, w: Window, session: bool) -> Vec<u8> {
    let mut out = key.unwrap_or_default();
    if session {
        out.extend_from_slice(&w.end.to_be_bytes());
    }
    out.extend_from_slice(&w.start.to_be_bytes());
    out
}

/// Splits windowed key bytes into the key and the window (`size_ms`
/// gives a time window's end).
pub fn split_windowed_key(bytes: &[u8], session: bool, size_ms: i64) -> Result<(&[u8], Window)> {
    let need = if session { 16 } else { 8 };
    if bytes.len() < need {
        return Err(SqlError::serde("KAFKA", "windowed key too short"));
    }
    let (key, tail) = bytes.split_at(bytes.len() - need);
    let read = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    Ok(if session {
        (
            key,
            Window {
                end: read(&tail[..8]),
                start: read(&tail[8..]),
            },
        )
    } else {
        let start = read(tail);
        (
            key,
            Window {
                start,
                end: start.saturating_add(size_ms),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_nosr_rows_round_trip_without_a_frame() {
        let columns = cols(&[("NAME", SqlType::String), ("N", SqlType::Bigint)]);
        let schema = crate::sr::schema_for(SrKind::Avro, &columns, true);
        let parsed = crate::sr::Parsed::parse(SrKind::Avro, &schema, &[]).unwrap();
        let bound = crate::sr::Bound::new(0, parsed, Arc::new(crate::sr::NoLookup));
        let format = Format::Registry(RegistryFormat {
            kind: SrKind::Avro,
            bound: Some(Arc::new(bound)),
            framed: false,
        });
        assert_eq!(format.name(), "AVRO_NOSR");
        let codec = Codec::new(format, columns, true);
        let row = vec![Value::String("a".into()), Value::Bigint(5)];
        let bytes = codec.try_encode(&row).unwrap().unwrap();
        // Avro's body only: union index 1, string "a", union index 1, long 5.
        assert_eq!(bytes, [2, 2, b'a', 2, 10]);
        assert_eq!(codec.decode(Some(&bytes)).unwrap(), Some(row));
        assert!(Format::parse("AVRO_NOSR", None).unwrap().is_nosr());
        let p = Format::parse("PROTOBUF_NOSR", None).unwrap();
        assert!(p.is_nosr() && p.name() == "PROTOBUF_NOSR");
    }

    fn cols(c: &[(&str, SqlType)]) -> Vec<(String, SqlType)> {
        c.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()
    }

    #[test]
    fn kafka_keys_are_big_endian() {
        let c = Codec::new(Format::Kafka, cols(&[("K", SqlType::Int)]), false);
        assert_eq!(c.encode(&[Value::Int(1)]).unwrap(), vec![0, 0, 0, 1]);
        let c = Codec::new(Format::Kafka, cols(&[("K", SqlType::Bigint)]), false);
        assert_eq!(
            c.encode(&[Value::Bigint(258)]).unwrap(),
            vec![0, 0, 0, 0, 0, 0, 1, 2]
        );
        assert_eq!(
            c.decode(Some(&[0, 0, 0, 0, 0, 0, 1, 2])).unwrap(),
            Some(vec![Value::Bigint(258)])
        );
        assert!(c.decode(Some(&[1, 2])).is_err());
    }

    #[test]
    fn json_wraps_and_matches_case_insensitively() {
        let c = Codec::new(
            Format::Json,
            cols(&[("ID", SqlType::Int), ("NAME", SqlType::String)]),
            true,
        );
        let b = c
            .encode(&[Value::Int(1), Value::String("a".into())])
            .unwrap();
        assert_eq!(b, br#"{"ID":1,"NAME":"a"}"#);
        assert_eq!(
            c.decode(Some(br#"{"id":2,"Name":"b","other":1}"#)).unwrap(),
            Some(vec![Value::Int(2), Value::String("b".into())])
        );
        assert!(c.decode(Some(b"{nope")).is_err());
        let single = Codec::new(Format::Json, cols(&[("ID", SqlType::Int)]), false);
        assert_eq!(single.encode(&[Value::Int(5)]).unwrap(), b"5");
    }

    #[test]
    fn delimited_quotes_and_counts_fields() {
        let c = Codec::new(
            Format::Delimited(','),
            cols(&[("A", SqlType::String), ("B", SqlType::Int)]),
            true,
        );
        assert_eq!(
            c.encode(&[Value::String("x,y".into()), Value::Null])
                .unwrap(),
            b"\"x,y\","
        );
        assert_eq!(
            c.decode(Some(b"\"x,y\",3")).unwrap(),
            Some(vec![Value::String("x,y".into()), Value::Int(3)])
        );
        assert!(c.decode(Some(b"1,2,3")).is_err());
    }

    #[test]
    fn windowed_keys() {
        let w = Window {
            start: 1000,
            end: 2000,
        };
        let b = windowed_key(Some(vec![0, 0, 0, 7]), w, true);
        assert_eq!(b.len(), 20);
        let (k, back) = split_windowed_key(&b, true, 0).unwrap();
        assert_eq!((k, back), (&[0u8, 0, 0, 7][..], w));
        let b = windowed_key(Some(vec![1]), w, false);
        assert_eq!(
            split_windowed_key(&b, false, 1000).unwrap(),
            (&[1u8][..], w)
        );
    }
}

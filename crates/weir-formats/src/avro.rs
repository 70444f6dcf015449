//! Avro on `apache-avro`: schemas with named types from references
//! (Confluent's schema references), the binary encoding of datums, Avro's
//! JSON encoding (unions as `{"type": value}`, bytes as code points 0-255,
//! as Confluent's REST proxy and ksqlDB read and write it), and plain JSON
//! (unions unwrapped, bytes in base64) for users who want neither.

use std::collections::HashMap;

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use base64::Engine;
use serde_json::{Map, Number, Value as Json};

use std::sync::Arc;

use crate::client::SchemaRegistryClient;
use crate::schema::{ResolvedReference, Schema as Schema_, SchemaType};
use crate::serdes::{Field, Resolver, SerdeConfig};
use crate::{avro_check, wire, FormatError};

const AVRO: &str = "AVRO";

/// How deeply values may nest in JSON conversions (bounds recursion).
const MAX_DEPTH: usize = 128;

/// A parsed Avro schema with the named types of its references.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    root: Schema,
    /// Each referenced schema, dependencies first, then the root (the
    /// order in which `apache-avro` resolves names).
    all: Vec<Schema>,
    /// The named types of `all` by full name, for checking datums.
    named: avro_check::Named,
}

/// Which JSON shape a conversion reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonEncoding {
    /// Avro's JSON encoding: a non-null union value is an object whose one
    /// key names the branch; bytes and fixed are strings of code points
    /// 0-255.
    Avro,
    /// Plain JSON: union values bare (the first branch that fits is
    /// taken), bytes and fixed in base64.
    Plain,
}

/// How a conversion treats unions and bytes (field defaults are written
/// as the union's first branch, bytes as code points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Avro,
    Plain,
    Default,
}

impl From<JsonEncoding> for Mode {
    fn from(e: JsonEncoding) -> Self {
        match e {
            JsonEncoding::Avro => Mode::Avro,
            JsonEncoding::Plain => Mode::Plain,
        }
    }
}

type Names<'a> = HashMap<String, &'a Schema>;

impl AvroSchema {
    /// Parses a schema that references nothing.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        Self::parse_with_references(text, &[])
    }

    /// Parses a schema seeing the named types of `references` (Avro
    /// schemas, dependencies first, as the registry client resolves them).
    pub fn parse_with_references(
        text: &str,
        references: &[ResolvedReference],
    ) -> Result<Self, FormatError> {
        let texts: Vec<&str> = references
            .iter()
            .filter(|r| r.schema_type == SchemaType::Avro)
            .map(|r| r.schema.as_str())
            .collect();
        for t in texts.iter().chain(std::iter::once(&text)) {
            check_names(t)?;
        }
        let (root, named) = if texts.is_empty() {
            (
                Schema::parse_str(text).map_err(|e| FormatError::schema(AVRO, e))?,
                Vec::new(),
            )
        } else {
            Schema::parse_str_with_list(text, texts).map_err(|e| FormatError::schema(AVRO, e))?
        };
        let mut all = named;
        all.push(root.clone());
        // Unresolvable names fail here rather than at the first datum.
        ResolvedSchema::try_from(all.iter().collect::<Vec<_>>())
            .map_err(|e| FormatError::schema(AVRO, e))?;
        let mut schema = Self {
            root,
            all,
            named: avro_check::Named::new(),
        };
        schema.named = schema
            .names()?
            .into_iter()
            .map(|(n, s)| (n, s.clone()))
            .collect();
        Ok(schema)
    }

    /// The root schema.
    pub fn root(&self) -> &Schema {
        &self.root
    }

    /// The schemas of the references, whose named types the root may use.
    pub fn referenced(&self) -> &[Schema] {
        &self.all[..self.all.len() - 1]
    }

    /// The root's full name when it is a named type (record, enum, fixed):
    /// the record name of `RecordNameStrategy`.
    pub fn full_name(&self) -> Option<String> {
        self.root.name().map(|n| n.fullname(None))
    }

    /// The schema's Parsing Canonical Form.
    pub fn canonical_form(&self) -> String {
        self.root.canonical_form()
    }

    fn schemata(&self) -> Vec<&Schema> {
        self.all.iter().collect()
    }

    fn names(&self) -> Result<Names<'_>, FormatError> {
        let rs =
            ResolvedSchema::try_from(self.schemata()).map_err(|e| FormatError::schema(AVRO, e))?;
        Ok(rs
            .get_names()
            .iter()
            .map(|(n, s)| (n.fullname(None), *s))
            .collect())
    }

    /// Appends the binary encoding of `value`.
    pub fn encode_into(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let bytes = apache_avro::to_avro_datum_schemata(&self.root, self.schemata(), value.clone())
            .map_err(FormatError::value)?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    /// The binary encoding of `value`.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// Decodes a datum written with this schema. Bytes after the datum are
    /// ignored, as Confluent's deserializers ignore them.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, FormatError> {
        self.decode_as(bytes, None)
    }

    /// Decodes a datum written with this schema, resolved to `reader`
    /// (the specification's schema resolution: promotions, defaults for
    /// missing fields, dropped fields) when one is given.
    pub fn decode_as(&self, bytes: &[u8], reader: Option<&Self>) -> Result<Value, FormatError> {
        avro_check::check(&self.root, &self.named, bytes)
            .map_err(|reason| FormatError::InvalidPayload { id: 0, reason })?;
        let mut r = bytes;
        apache_avro::from_avro_datum_reader_schemata(
            &self.root,
            self.schemata(),
            &mut r,
            reader.map(|x| &x.root),
            reader.map(Self::schemata).unwrap_or_default(),
        )
        .map_err(|e| FormatError::InvalidPayload {
            id: 0,
            reason: e.to_string(),
        })
    }

    /// `value` as JSON in the chosen encoding.
    pub fn to_json(&self, value: &Value, encoding: JsonEncoding) -> Result<Json, FormatError> {
        let names = self.names()?;
        to_json(value, &self.root, &names, encoding.into(), 0)
    }

    /// A value of this schema from JSON in the chosen encoding. Missing
    /// record fields take their defaults; unknown ones are ignored.
    pub fn from_json(&self, json: &Json, encoding: JsonEncoding) -> Result<Value, FormatError> {
        let names = self.names()?;
        from_json(json, &self.root, &names, encoding.into(), 0)
    }
}

impl crate::serdes::Parsed for AvroSchema {
    const TYPE: SchemaType = SchemaType::Avro;

    fn parse(schema: &Schema_, references: &[ResolvedReference]) -> Result<Self, FormatError> {
        Self::parse_with_references(&schema.schema, references)
    }

    fn record_name(&self) -> Option<String> {
        self.full_name()
    }
}

/// A record key or value decoded from Confluent's wire format.
#[derive(Debug, Clone)]
pub struct AvroRecord {
    /// The writer schema's id.
    pub schema_id: i32,
    /// The schema the value has: the writer's, or the reader schema it was
    /// resolved to.
    pub schema: Arc<AvroSchema>,
    /// The value.
    pub value: Value,
}

/// Confluent's Avro serializer (`KafkaAvroSerializer`): finds the schema
/// id as the settings say, then writes the framed binary datum.
#[derive(Debug)]
pub struct AvroSerializer {
    resolver: Resolver<AvroSchema>,
}

impl AvroSerializer {
    /// A serializer using `client` with `config`.
    pub fn new(client: Arc<SchemaRegistryClient>, config: SerdeConfig) -> Self {
        Self {
            resolver: Resolver::new(client, config),
        }
    }

    async fn writer(
        &self,
        topic: &str,
        field: Field,
        schema: &Schema_,
    ) -> Result<(i32, Arc<AvroSchema>), FormatError> {
        self.resolver
            .writer(topic, field, schema, |refs| {
                AvroSchema::parse_with_references(&schema.schema, refs)
            })
            .await
    }

    /// Frames `value` of `schema` (Avro schema text and references) for
    /// `topic`'s key or value.
    pub async fn serialize(
        &self,
        topic: &str,
        field: Field,
        schema: &Schema_,
        value: &Value,
    ) -> Result<Vec<u8>, FormatError> {
        let (id, writer) = self.writer(topic, field, schema).await?;
        let mut out = Vec::new();
        wire::write_header(id, &mut out);
        writer.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// Frames a JSON value (in `encoding`) of `schema`.
    pub async fn serialize_json(
        &self,
        topic: &str,
        field: Field,
        schema: &Schema_,
        json: &Json,
        encoding: JsonEncoding,
    ) -> Result<Vec<u8>, FormatError> {
        let (id, writer) = self.writer(topic, field, schema).await?;
        let value = writer.from_json(json, encoding)?;
        let mut out = Vec::new();
        wire::write_header(id, &mut out);
        writer.encode_into(&value, &mut out)?;
        Ok(out)
    }

    /// Frames a JSON value with the schema registered under `id`, as the
    /// REST proxy does for `value_schema_id`.
    pub async fn serialize_json_with_id(
        &self,
        id: i32,
        json: &Json,
        encoding: JsonEncoding,
    ) -> Result<Vec<u8>, FormatError> {
        let writer = self.resolver.by_id(id).await?;
        let value = writer.from_json(json, encoding)?;
        let mut out = Vec::new();
        wire::write_header(id, &mut out);
        writer.encode_into(&value, &mut out)?;
        Ok(out)
    }
}

/// Confluent's Avro deserializer (`KafkaAvroDeserializer`): reads the
/// schema id, fetches the writer schema, decodes (resolving to the latest
/// version with `use.latest.version`).
#[derive(Debug)]
pub struct AvroDeserializer {
    resolver: Resolver<AvroSchema>,
}

impl AvroDeserializer {
    /// A deserializer using `client` with `config`.
    pub fn new(client: Arc<SchemaRegistryClient>, config: SerdeConfig) -> Self {
        Self {
            resolver: Resolver::new(client, config),
        }
    }

    /// Decodes a framed key or value of `topic`.
    pub async fn deserialize(
        &self,
        topic: &str,
        field: Field,
        frame: &[u8],
    ) -> Result<AvroRecord, FormatError> {
        let (id, payload) = wire::split(frame)?;
        let writer = self.resolver.by_id(id).await?;
        let reader = self.resolver.reader(topic, field, &writer).await?;
        let value = writer
            .decode_as(payload, reader.as_deref())
            .map_err(|e| match e {
                FormatError::InvalidPayload { reason, .. } => {
                    FormatError::InvalidPayload { id, reason }
                }
                other => other,
            })?;
        Ok(AvroRecord {
            schema_id: id,
            schema: reader.unwrap_or(writer),
            value,
        })
    }

    /// Decodes a framed key or value of `topic` into JSON.
    pub async fn deserialize_json(
        &self,
        topic: &str,
        field: Field,
        frame: &[u8],
        encoding: JsonEncoding,
    ) -> Result<Json, FormatError> {
        let r = self.deserialize(topic, field, frame).await?;
        r.schema.to_json(&r.value, encoding)
    }
}

fn valid_name(s: &str) -> bool {
    s.split('.').all(|part| {
        let mut c = part.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    })
}

/// Refuses invalid names before `apache-avro` sees them: its parser
/// unwraps the result of validating a name, type name or alias, so an
/// invalid one would panic rather than fail.
fn check_names(text: &str) -> Result<(), FormatError> {
    fn walk(v: &Json, type_position: bool, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the schema nests too deeply".into());
        }
        match v {
            Json::String(s) if type_position && !valid_name(s) => {
                Err(format!("invalid type name {s:?}"))
            }
            Json::Array(a) => a.iter().try_for_each(|b| walk(b, type_position, depth + 1)),
            Json::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("name", Json::String(n)) if !valid_name(n) => {
                            return Err(format!("invalid name {n:?}"))
                        }
                        ("namespace", Json::String(n)) if !n.is_empty() && !valid_name(n) => {
                            return Err(format!("invalid namespace {n:?}"))
                        }
                        ("aliases", Json::Array(a)) => {
                            for al in a {
                                if let Json::String(n) = al {
                                    if !valid_name(n) {
                                        return Err(format!("invalid alias {n:?}"));
                                    }
                                }
                            }
                        }
                        ("type" | "items" | "values", x) => walk(x, true, depth + 1)?,
                        ("fields", x) => walk(x, false, depth + 1)?,
                        _ => {}
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    // Text that is not JSON is left to apache-avro's own error.
    match serde_json::from_str::<Json>(text) {
        Ok(v) => walk(&v, true, 0).map_err(|e| FormatError::schema(AVRO, e)),
        Err(_) => Ok(()),
    }
}

fn lookup<'a>(names: &Names<'a>, name: &Name) -> Result<&'a Schema, FormatError> {
    names
        .get(&name.fullname(None))
        .copied()
        .ok_or_else(|| FormatError::schema(AVRO, format!("undefined name {}", name.fullname(None))))
}

/// The name a union branch is labelled with in Avro's JSON encoding.
fn branch_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String | Schema::Uuid => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Decimal(d) => branch_name(&d.inner),
        Schema::Duration => "fixed".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) => f.name.fullname(None),
        Schema::Ref { name } => name.fullname(None),
    }
}

fn bytes_to_json(b: &[u8], mode: Mode) -> Json {
    match mode {
        Mode::Plain => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Mode::Avro | Mode::Default => Json::String(b.iter().map(|&c| char::from(c)).collect()),
    }
}

fn bytes_from_json(j: &Json, mode: Mode) -> Result<Vec<u8>, FormatError> {
    let s = j
        .as_str()
        .ok_or_else(|| FormatError::value(format!("expected bytes as a string, found {j}")))?;
    match mode {
        Mode::Plain => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| FormatError::value(format!("bytes are not base64: {e}"))),
        Mode::Avro | Mode::Default => s
            .chars()
            .map(|c| {
                u8::try_from(u32::from(c)).map_err(|_| {
                    FormatError::value(format!("byte string holds {c:?} above U+00FF"))
                })
            })
            .collect(),
    }
}

fn float_to_json(f: f64) -> Json {
    // Avro's Java JSON encoder writes the non-finite values as strings.
    Number::from_f64(f).map_or_else(
        || {
            Json::String(if f.is_nan() {
                "NaN".into()
            } else if f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            })
        },
        Json::Number,
    )
}

fn float_from_json(j: &Json) -> Result<f64, FormatError> {
    match j {
        Json::Number(n) => n
            .as_f64()
            .ok_or_else(|| FormatError::value(format!("bad number {n}"))),
        Json::String(s) if s == "NaN" => Ok(f64::NAN),
        Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(FormatError::value(format!("expected a number, found {j}"))),
    }
}

/// The next nesting level, refused past `MAX_DEPTH`.
fn deeper(depth: usize) -> Result<usize, FormatError> {
    if depth >= MAX_DEPTH {
        return Err(FormatError::value("the value nests too deeply"));
    }
    Ok(depth + 1)
}

/// A union branch's label, through references.
fn branch_label(branch: &Schema, names: &Names<'_>) -> Result<String, FormatError> {
    Ok(match branch {
        Schema::Ref { name } => branch_name(lookup(names, name)?),
        b => branch_name(b),
    })
}

fn mismatch(v: &Value, s: &Schema) -> FormatError {
    FormatError::value(format!("{v:?} is not a value of {}", branch_name(s)))
}

fn to_json(
    v: &Value,
    s: &Schema,
    names: &Names<'_>,
    mode: Mode,
    depth: usize,
) -> Result<Json, FormatError> {
    let d = deeper(depth)?;
    Ok(match (s, v) {
        (Schema::Ref { name }, _) => return to_json(v, lookup(names, name)?, names, mode, d),
        (Schema::Union(u), Value::Union(i, inner)) => {
            let branch = usize::try_from(*i)
                .ok()
                .and_then(|i| u.variants().get(i))
                .ok_or_else(|| FormatError::value(format!("union branch {i} does not exist")))?;
            let inner = to_json(inner, branch, names, mode, d)?;
            match (mode, branch) {
                (_, Schema::Null) | (Mode::Plain | Mode::Default, _) => inner,
                (Mode::Avro, b) => {
                    let label = branch_label(b, names)?;
                    let mut m = Map::new();
                    m.insert(label, inner);
                    Json::Object(m)
                }
            }
        }
        (Schema::Union(u), v) => {
            // A bare value: the first branch it fits.
            let mut last = None;
            for (i, b) in u.variants().iter().enumerate() {
                let wrapped =
                    Value::Union(u32::try_from(i).unwrap_or(u32::MAX), Box::new(v.clone()));
                match to_json(&wrapped, s, names, mode, d) {
                    Ok(j) => return Ok(j),
                    Err(e) => last = Some((e, b)),
                }
            }
            return Err(last.map_or_else(|| mismatch(v, s), |(e, _)| e));
        }
        (Schema::Null, Value::Null) => Json::Null,
        (Schema::Boolean, Value::Boolean(b)) => Json::Bool(*b),
        (
            Schema::Int | Schema::Date | Schema::TimeMillis,
            Value::Int(i) | Value::Date(i) | Value::TimeMillis(i),
        ) => Json::from(*i),
        (
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos,
            Value::Long(i)
            | Value::TimeMicros(i)
            | Value::TimestampMillis(i)
            | Value::TimestampMicros(i)
            | Value::TimestampNanos(i)
            | Value::LocalTimestampMillis(i)
            | Value::LocalTimestampMicros(i)
            | Value::LocalTimestampNanos(i),
        ) => Json::from(*i),
        (Schema::Long, Value::Int(i)) => Json::from(*i),
        (Schema::Float | Schema::Double, Value::Float(f)) => float_to_json(f64::from(*f)),
        (Schema::Double, Value::Double(f)) => float_to_json(*f),
        (Schema::Bytes, Value::Bytes(b)) | (Schema::Fixed(_), Value::Fixed(_, b)) => {
            bytes_to_json(b, mode)
        }
        (Schema::Decimal(_), Value::Decimal(dec)) => {
            let b: Vec<u8> = dec.try_into().map_err(FormatError::value)?;
            bytes_to_json(&b, mode)
        }
        (Schema::Decimal(_), Value::Bytes(b) | Value::Fixed(_, b)) => bytes_to_json(b, mode),
        (Schema::Duration, Value::Duration(du)) => {
            let b: [u8; 12] = (*du).into();
            bytes_to_json(&b, mode)
        }
        (Schema::String, Value::String(s)) | (Schema::Uuid, Value::String(s)) => {
            Json::String(s.clone())
        }
        (Schema::Uuid, Value::Uuid(u)) => Json::String(u.to_string()),
        (Schema::Enum(e), Value::Enum(_, sym)) if e.symbols.contains(sym) => {
            Json::String(sym.clone())
        }
        (Schema::Enum(e), Value::String(sym)) if e.symbols.contains(sym) => {
            Json::String(sym.clone())
        }
        (Schema::Array(a), Value::Array(items)) => Json::Array(
            items
                .iter()
                .map(|x| to_json(x, &a.items, names, mode, d))
                .collect::<Result<_, _>>()?,
        ),
        (Schema::Map(m), Value::Map(entries)) => {
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), to_json(&entries[k], &m.types, names, mode, d)?);
            }
            Json::Object(out)
        }
        (Schema::Record(r), Value::Record(fields)) => {
            let mut out = Map::new();
            for f in &r.fields {
                let fv = fields
                    .iter()
                    .find(|(n, _)| *n == f.name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| FormatError::value(format!("field {} is missing", f.name)))?;
                out.insert(f.name.clone(), to_json(fv, &f.schema, names, mode, d)?);
            }
            Json::Object(out)
        }
        _ => return Err(mismatch(v, s)),
    })
}

fn int_from_json(j: &Json) -> Result<i32, FormatError> {
    j.as_i64()
        .and_then(|i| i32::try_from(i).ok())
        .ok_or_else(|| FormatError::value(format!("expected an int, found {j}")))
}

fn long_from_json(j: &Json) -> Result<i64, FormatError> {
    j.as_i64()
        .ok_or_else(|| FormatError::value(format!("expected a long, found {j}")))
}

fn from_json(
    j: &Json,
    s: &Schema,
    names: &Names<'_>,
    mode: Mode,
    depth: usize,
) -> Result<Value, FormatError> {
    let d = deeper(depth)?;
    Ok(match s {
        Schema::Ref { name } => return from_json(j, lookup(names, name)?, names, mode, d),
        Schema::Union(u) => {
            let variants = u.variants();
            let pick = |i: usize, b: &Schema, inner: &Json| -> Result<Value, FormatError> {
                Ok(Value::Union(
                    u32::try_from(i).unwrap_or(u32::MAX),
                    Box::new(from_json(inner, b, names, mode, d)?),
                ))
            };
            if j.is_null() {
                if let Some(i) = variants.iter().position(|b| matches!(b, Schema::Null)) {
                    return Ok(Value::Union(
                        u32::try_from(i).unwrap_or(u32::MAX),
                        Box::new(Value::Null),
                    ));
                }
            }
            match mode {
                Mode::Default => {
                    let b = variants
                        .first()
                        .ok_or_else(|| FormatError::schema(AVRO, "empty union"))?;
                    pick(0, b, j)?
                }
                Mode::Plain => {
                    let mut last = None;
                    for (i, b) in variants.iter().enumerate() {
                        match pick(i, b, j) {
                            Ok(v) => return Ok(v),
                            Err(e) => last = Some(e),
                        }
                    }
                    return Err(last.unwrap_or_else(|| FormatError::value("empty union")));
                }
                Mode::Avro => {
                    let (label, inner) = match j {
                        Json::Object(o) if o.len() == 1 => {
                            o.iter().next().unwrap_or_else(|| unreachable!())
                        }
                        _ => {
                            return Err(FormatError::value(format!(
                                "a union value is null or an object naming its branch, found {j}"
                            )))
                        }
                    };
                    let mut found = None;
                    for (i, b) in variants.iter().enumerate() {
                        let name = branch_label(b, names)?;
                        let short = name.rsplit('.').next().unwrap_or(&name);
                        if name == *label || short == label.as_str() {
                            found = Some((i, b));
                            break;
                        }
                    }
                    let (i, b) = found.ok_or_else(|| {
                        FormatError::value(format!("the union has no branch {label}"))
                    })?;
                    pick(i, b, inner)?
                }
            }
        }
        Schema::Null if j.is_null() => Value::Null,
        Schema::Null => return Err(FormatError::value(format!("expected null, found {j}"))),
        Schema::Boolean => Value::Boolean(
            j.as_bool()
                .ok_or_else(|| FormatError::value(format!("expected a boolean, found {j}")))?,
        ),
        Schema::Int => Value::Int(int_from_json(j)?),
        Schema::Date => Value::Date(int_from_json(j)?),
        Schema::TimeMillis => Value::TimeMillis(int_from_json(j)?),
        Schema::Long => Value::Long(long_from_json(j)?),
        Schema::TimeMicros => Value::TimeMicros(long_from_json(j)?),
        Schema::TimestampMillis => Value::TimestampMillis(long_from_json(j)?),
        Schema::TimestampMicros => Value::TimestampMicros(long_from_json(j)?),
        Schema::TimestampNanos => Value::TimestampNanos(long_from_json(j)?),
        Schema::LocalTimestampMillis => Value::LocalTimestampMillis(long_from_json(j)?),
        Schema::LocalTimestampMicros => Value::LocalTimestampMicros(long_from_json(j)?),
        Schema::LocalTimestampNanos => Value::LocalTimestampNanos(long_from_json(j)?),
        #[allow(clippy::cast_possible_truncation)]
        Schema::Float => Value::Float(float_from_json(j)? as f32),
        Schema::Double => Value::Double(float_from_json(j)?),
        Schema::Bytes => Value::Bytes(bytes_from_json(j, mode)?),
        Schema::Fixed(f) => {
            let b = bytes_from_json(j, mode)?;
            if b.len() != f.size {
                return Err(FormatError::value(format!(
                    "fixed {} holds {} bytes, not {}",
                    f.name.fullname(None),
                    f.size,
                    b.len()
                )));
            }
            Value::Fixed(f.size, b)
        }
        Schema::Decimal(_) => Value::Decimal(apache_avro::Decimal::from(bytes_from_json(j, mode)?)),
        Schema::Duration => {
            let b: [u8; 12] = bytes_from_json(j, mode)?
                .try_into()
                .map_err(|_| FormatError::value("a duration is 12 bytes"))?;
            Value::Duration(apache_avro::Duration::from(b))
        }
        Schema::BigDecimal => {
            return Err(FormatError::value(
                "big-decimal values are not supported in JSON",
            ))
        }
        Schema::String => Value::String(
            j.as_str()
                .ok_or_else(|| FormatError::value(format!("expected a string, found {j}")))?
                .to_string(),
        ),
        Schema::Uuid => {
            let t = j
                .as_str()
                .ok_or_else(|| FormatError::value(format!("expected a uuid string, found {j}")))?;
            Value::Uuid(
                apache_avro::Uuid::parse_str(t)
                    .map_err(|e| FormatError::value(format!("bad uuid {t}: {e}")))?,
            )
        }
        Schema::Enum(e) => {
            let sym = j
                .as_str()
                .ok_or_else(|| FormatError::value(format!("expected an enum symbol, found {j}")))?;
            let i = e.symbols.iter().position(|x| x == sym).ok_or_else(|| {
                FormatError::value(format!(
                    "{sym} is not a symbol of {}",
                    e.name.fullname(None)
                ))
            })?;
            Value::Enum(u32::try_from(i).unwrap_or(u32::MAX), sym.to_string())
        }
        Schema::Array(a) => Value::Array(
            j.as_array()
                .ok_or_else(|| FormatError::value(format!("expected an array, found {j}")))?
                .iter()
                .map(|x| from_json(x, &a.items, names, mode, d))
                .collect::<Result<_, _>>()?,
        ),
        Schema::Map(m) => Value::Map(
            j.as_object()
                .ok_or_else(|| FormatError::value(format!("expected an object, found {j}")))?
                .iter()
                .map(|(k, x)| Ok((k.clone(), from_json(x, &m.types, names, mode, d)?)))
                .collect::<Result<_, FormatError>>()?,
        ),
        Schema::Record(r) => {
            let o = j
                .as_object()
                .ok_or_else(|| FormatError::value(format!("expected an object, found {j}")))?;
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let v = match (o.get(&f.name), &f.default) {
                    (Some(x), _) => from_json(x, &f.schema, names, mode, d)?,
                    (None, Some(def)) => from_json(def, &f.schema, names, Mode::Default, d)?,
                    (None, None) => {
                        return Err(FormatError::value(format!(
                            "field {} of {} is missing and has no default",
                            f.name,
                            r.name.fullname(None)
                        )))
                    }
                };
                fields.push((f.name.clone(), v));
            }
            Value::Record(fields)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const USER: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[
        {"name":"name","type":"string"},
        {"name":"age","type":"int"},
        {"name":"email","type":["null","string"],"default":null},
        {"name":"tags","type":{"type":"array","items":"string"},"default":[]},
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]},"default":"A"},
        {"name":"raw","type":"bytes","default":"\u00ff"},
        {"name":"score","type":["null","double","t.Kind"],"default":null}
    ]}"#;

    #[test]
    fn json_encodings_round_trip_through_binary() {
        let s = AvroSchema::parse(USER).unwrap();
        assert_eq!(s.full_name().as_deref(), Some("t.User"));
        let avro_json = json!({"name":"ann","age":3,"email":{"string":"a@x"},"tags":["x"],
            "kind":"B","raw":"\u{0}\u{ff}","score":{"t.Kind":"A"}});
        let v = s.from_json(&avro_json, JsonEncoding::Avro).unwrap();
        let bytes = s.encode(&v).unwrap();
        let back = s.decode(&bytes).unwrap();
        assert_eq!(s.to_json(&back, JsonEncoding::Avro).unwrap(), avro_json);
        assert_eq!(
            s.to_json(&back, JsonEncoding::Plain).unwrap(),
            json!({"name":"ann","age":3,"email":"a@x","tags":["x"],"kind":"B","raw":"AP8=","score":"A"})
        );
        // Defaults fill missing fields; the union default is its first branch.
        let v = s
            .from_json(&json!({"name":"b","age":1}), JsonEncoding::Avro)
            .unwrap();
        assert_eq!(
            s.to_json(&v, JsonEncoding::Avro).unwrap(),
            json!({"name":"b","age":1,"email":null,"tags":[],"kind":"A","raw":"\u{ff}","score":null})
        );
        let plain = json!({"name":"c","age":2,"email":"e","score":1.5});
        let v = s.from_json(&plain, JsonEncoding::Plain).unwrap();
        assert_eq!(
            s.to_json(&v, JsonEncoding::Avro).unwrap()["score"],
            json!({"double":1.5})
        );
        for bad in [
            json!({"name":"b"}),
            json!({"name":"b","age":"x"}),
            json!({"name":"b","age":1,"email":"bare"}),
            json!({"name":"b","age":1,"kind":"Z"}),
            json!({"name":"b","age":1,"raw":"\u{100}"}),
            json!({"name":"b","age":1,"email":{"int":1}}),
            json!([1]),
        ] {
            assert!(s.from_json(&bad, JsonEncoding::Avro).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_supply_named_types() {
        let addr = ResolvedReference {
            name: "t.Addr".into(),
            schema_type: SchemaType::Avro,
            schema: r#"{"type":"record","name":"Addr","namespace":"t","fields":[{"name":"street","type":"string"}]}"#.into(),
        };
        let person = r#"{"type":"record","name":"Person","namespace":"t","fields":[{"name":"home","type":"Addr"}]}"#;
        assert!(AvroSchema::parse(person).is_err());
        let s = AvroSchema::parse_with_references(person, &[addr]).unwrap();
        let v = s
            .from_json(&json!({"home":{"street":"Main"}}), JsonEncoding::Avro)
            .unwrap();
        let back = s.decode(&s.encode(&v).unwrap()).unwrap();
        assert_eq!(
            s.to_json(&back, JsonEncoding::Plain).unwrap(),
            json!({"home":{"street":"Main"}})
        );
    }

    #[test]
    fn reader_schema_resolution_and_bad_payloads() {
        let w = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        )
        .unwrap();
        let r = AvroSchema::parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string","default":"d"}]}"#).unwrap();
        let bytes = w
            .encode(&Value::Record(vec![("a".into(), Value::Int(7))]))
            .unwrap();
        let v = w.decode_as(&bytes, Some(&r)).unwrap();
        assert_eq!(
            r.to_json(&v, JsonEncoding::Plain).unwrap(),
            json!({"a":7,"b":"d"})
        );
        assert!(w.decode(&[]).is_err());
        // Invalid names are errors, not apache-avro's panics.
        for bad in [
            r#"{"type":"record","name":"1x","fields":[]}"#,
            r#"{"type":"1x"}"#,
            r#"["null","a-b"]"#,
            r#"{"type":"enum","name":"E","aliases":["9"],"symbols":["A"]}"#,
            r#"{"type":"record","name":"R","namespace":"a..b","fields":[]}"#,
        ] {
            assert!(AvroSchema::parse(bad).is_err(), "{bad}");
        }
        assert!(w
            .encode(&Value::Record(vec![(
                "a".into(),
                Value::String("x".into())
            )]))
            .is_err());
        let s = AvroSchema::parse(r#""string""#).unwrap();
        // A string claiming 2^62 bytes.
        assert!(s
            .decode(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
            .is_err());
    }

    #[test]
    fn logical_types_in_json() {
        let s = AvroSchema::parse(
            r#"{"type":"record","name":"L","fields":[
            {"name":"d","type":{"type":"int","logicalType":"date"}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"m","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"o","type":["null",{"type":"long","logicalType":"timestamp-micros"}]}]}"#,
        )
        .unwrap();
        let j = json!({"d":19000,"ts":1700000000000_i64,"u":"0d2a4a5c-8a3b-4a4f-9d7e-9d2f1c3b4a5e",
            "m":"\u{1}\u{2}","o":{"long":5}});
        let v = s.from_json(&j, JsonEncoding::Avro).unwrap();
        let back = s.decode(&s.encode(&v).unwrap()).unwrap();
        assert_eq!(s.to_json(&back, JsonEncoding::Avro).unwrap(), j);
    }

    fn arb_user() -> impl Strategy<Value = Json> {
        (
            ".{0,12}",
            any::<i32>(),
            proptest::option::of("[a-z@.]{0,8}"),
            proptest::collection::vec(".{0,4}", 0..4),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..8),
            proptest::option::of(-1e9f64..1e9),
        )
            .prop_map(|(name, age, email, tags, b, raw, score)| {
                json!({"name": name, "age": age,
                    "email": email.map_or(Json::Null, |e| json!({"string": e})),
                    "tags": tags, "kind": if b {"A"} else {"B"},
                    "raw": raw.iter().map(|&c| char::from(c)).collect::<String>(),
                    "score": score.map_or(Json::Null, |s| json!({"double": s}))})
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_the_value_back(j in arb_user()) {
            let s = AvroSchema::parse(USER).unwrap();
            let v = s.from_json(&j, JsonEncoding::Avro).unwrap();
            let back = s.decode(&s.encode(&v).unwrap()).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(s.to_json(&back, JsonEncoding::Avro).unwrap(), j);
        }

        #[test]
        fn decoding_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = AvroSchema::parse(USER).unwrap();
            let _ = s.decode(&b);
        }
    }
}

//! The schema registry converters, by Confluent's class names:
//! `io.confluent.connect.avro.AvroConverter`,
//! `io.confluent.connect.json.JsonSchemaConverter` and
//! `io.confluent.connect.protobuf.ProtobufConverter`, over `weir-formats`
//! (its registry client, serializers and deserializers; the mapping of
//! Connect's schemas is in [`crate::avro_data`],
//! [`crate::json_schema_data`] and [`crate::protobuf_data`]).
//!
//! Settings by Confluent's names (the converter's prefix removed):
//! `schema.registry.url`, `basic.auth.credentials.source`,
//! `basic.auth.user.info`, `bearer.auth.*`, `auto.register.schemas`,
//! `use.latest.version` with `latest.compatibility.strict` (checked by the
//! schema registry's own rules, `weir_formats::compat`),
//! `key.subject.name.strategy`, `value.subject.name.strategy`
//! (TopicNameStrategy, RecordNameStrategy, TopicRecordNameStrategy); for
//! Protobuf also `enhanced.protobuf.schema.support`, `scrub.invalid.names`,
//! `wrapper.for.nullables`, `optional.for.nullables` and
//! `generate.index.for.unions`; for JSON Schema `use.optional.for.nonrequired`. Protobuf
//! frames carry the message indexes after the schema id.
//!
//! Converters are called from task threads, which are not async: each
//! converter runs the registry calls on a small runtime of its own, made
//! at first use (so validating a config makes none).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use weir_formats::avro::{AvroDeserializer, AvroSerializer};
use weir_formats::json_schema::{JsonSchemaDeserializer, JsonSchemaSerializer};
use weir_formats::prost_reflect::ReflectMessage as _;
use weir_formats::protobuf::{ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};
use weir_formats::{
    Field, FormatError, RegistryConfig, Schema as RegistrySchema, SchemaRegistryClient, SchemaType,
    SerdeConfig,
};

use crate::avro_data::{self, AvroReadSchema};
use crate::converter::Converter;
use crate::data::{Schema, SchemaAndValue};
use crate::error::{ConnectError, Result};
use crate::json_schema_data::{self, JsonReadSchema};
use crate::protobuf_data::{self, ProtobufDataConfig, ProtobufReadSchema};

/// Confluent's Avro converter class.
pub const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
/// Confluent's JSON Schema converter class.
pub const JSON_SCHEMA_CONVERTER: &str = "io.confluent.connect.json.JsonSchemaConverter";
/// Confluent's Protobuf converter class.
pub const PROTOBUF_CONVERTER: &str = "io.confluent.connect.protobuf.ProtobufConverter";

/// The schema formats a registry converter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Avro.
    Avro,
    /// JSON Schema.
    JsonSchema,
    /// Protobuf.
    Protobuf,
}

enum Codec {
    Avro(AvroSerializer, AvroDeserializer),
    /// With `use.optional.for.nonrequired`.
    Json(JsonSchemaSerializer, JsonSchemaDeserializer, bool),
    Protobuf(ProtobufSerializer, ProtobufDeserializer, ProtobufDataConfig),
}

/// A converter writing and reading Confluent's wire format through a
/// schema registry.
pub struct RegistryConverter {
    format: Format,
    field: Field,
    client: Arc<SchemaRegistryClient>,
    codec: Codec,
    strategy: weir_formats::SubjectNameStrategy,
    runtime: OnceLock<std::result::Result<tokio::runtime::Runtime, String>>,
    /// Schemas read, by topic and id.
    read: Mutex<HashMap<(String, i32), Arc<ReadSchema>>>,
    /// Registry schema texts written, by Connect schema (compared by its
    /// debug text, as Connect schemas are not hashable).
    written: Mutex<HashMap<String, Written>>,
}

/// A schema as registered, and for Protobuf its compiled form and the
/// message a value is written as.
#[derive(Clone)]
struct Written {
    registry: RegistrySchema,
    proto: Option<(Arc<ProtobufSchema>, String)>,
}

enum ReadSchema {
    Avro(AvroReadSchema),
    Json(JsonReadSchema),
    Protobuf(ProtobufReadSchema),
    /// Confluent's schemaless `Anything` record: read as schemaless data.
    Anything,
}

impl std::fmt::Debug for RegistryConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConverter")
            .field("format", &self.format)
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

fn fmt_err(e: FormatError) -> ConnectError {
    ConnectError::data(e.to_string())
}

/// How many schemas each converter remembers before starting over.
const CACHE_CAPACITY: usize = 1000;

impl RegistryConverter {
    /// The converter for `format` with Confluent's settings `config`.
    pub fn new(format: Format, config: &BTreeMap<String, String>, is_key: bool) -> Result<Self> {
        let props: HashMap<String, String> =
            config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if props
            .get("schema.registry.url")
            .is_none_or(|u| u.trim().is_empty())
        {
            return Err(ConnectError::bad_config(
                "Missing required configuration \"schema.registry.url\" which has no default value.",
            ));
        }
        let field = if is_key { Field::Key } else { Field::Value };
        let bad = |e: FormatError| ConnectError::bad_config(e.to_string());
        let registry = RegistryConfig::from_properties(&props).map_err(bad)?;
        let serde = SerdeConfig::from_properties(&props, field).map_err(bad)?;
        let client = Arc::new(SchemaRegistryClient::new(registry).map_err(bad)?);
        let strategy = serde.subject_name_strategy;
        let codec = match format {
            Format::Avro => Codec::Avro(
                AvroSerializer::new(Arc::clone(&client), serde.clone()),
                AvroDeserializer::new(Arc::clone(&client), serde),
            ),
            Format::JsonSchema => Codec::Json(
                JsonSchemaSerializer::new(Arc::clone(&client), serde.clone()),
                JsonSchemaDeserializer::new(Arc::clone(&client), serde),
                match props
                    .get("use.optional.for.nonrequired")
                    .map(|v| v.trim().to_ascii_lowercase())
                    .as_deref()
                {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(v) => {
                        return Err(ConnectError::bad_config(format!(
                            "Invalid value {v} for configuration use.optional.for.nonrequired: Expected value to be either true or false"
                        )))
                    }
                },
            ),
            Format::Protobuf => Codec::Protobuf(
                ProtobufSerializer::new(Arc::clone(&client), serde.clone()),
                ProtobufDeserializer::new(Arc::clone(&client), serde),
                ProtobufDataConfig::from_properties(config)?,
            ),
        };
        Ok(Self {
            format,
            field,
            client,
            codec,
            strategy,
            runtime: OnceLock::new(),
            read: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output> {
        let rt = self
            .runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| ConnectError::data(format!("cannot start the registry client: {e}")))?;
        // Called from inside an async context (the offline transform
        // command), the runtime must not block a worker of another one.
        if tokio::runtime::Handle::try_current().is_ok() {
            Ok(tokio::task::block_in_place(|| rt.block_on(f)))
        } else {
            Ok(rt.block_on(f))
        }
    }

    fn registry_schema(&self, schema: &Schema) -> Result<Written> {
        let key = format!("{schema:?}");
        if let Some(s) = lock(&self.written).get(&key) {
            return Ok(s.clone());
        }
        let plain = |registry| Written {
            registry,
            proto: None,
        };
        let s = match &self.codec {
            Codec::Avro(..) => plain(RegistrySchema::new(
                SchemaType::Avro,
                avro_data::avro_schema_text(schema)?,
            )),
            Codec::Json(..) => plain(RegistrySchema::new(
                SchemaType::Json,
                json_schema_data::json_schema_text(schema)?,
            )),
            Codec::Protobuf(_, _, cfg) => {
                let (text, message) = protobuf_data::proto_schema_text(schema, cfg)?;
                // Imports are Confluent's built-in files only, which are
                // never registered as references.
                let compiled = ProtobufSchema::parse(&text).map_err(fmt_err)?;
                Written {
                    registry: RegistrySchema::new(SchemaType::Protobuf, text),
                    proto: Some((Arc::new(compiled), message)),
                }
            }
        };
        let mut w = lock(&self.written);
        if w.len() >= CACHE_CAPACITY {
            w.clear();
        }
        w.insert(key, s.clone());
        Ok(s)
    }

    /// The schema registered under `id`, read for Connect. Its root gets
    /// the version it has under the subject the strategy names for
    /// `topic`, as Confluent's converters give it (when the registry knows
    /// it there).
    async fn read_schema(
        &self,
        topic: &str,
        id: i32,
        indexes: &[i32],
        record_name: Option<&str>,
    ) -> Result<Arc<ReadSchema>> {
        // A Protobuf schema's messages are told apart by their indexes.
        let key = (format!("{topic}\0{indexes:?}"), id);
        if let Some(s) = lock(&self.read).get(&key) {
            return Ok(Arc::clone(s));
        }
        let schema = self.client.schema_by_id(id).await.map_err(fmt_err)?;
        let refs = self
            .client
            .resolve_references(&schema)
            .await
            .map_err(fmt_err)?;
        let ref_texts: Vec<&str> = refs.iter().map(|r| r.schema.as_str()).collect();
        let mut parsed = match self.format {
            Format::Avro if avro_data::is_anything(&schema.schema) => ReadSchema::Anything,
            Format::Avro => ReadSchema::Avro(AvroReadSchema::parse(&schema.schema, &ref_texts)?),
            Format::JsonSchema => {
                let nonrequired = matches!(self.codec, Codec::Json(_, _, true));
                ReadSchema::Json(JsonReadSchema::parse(&schema.schema, &refs, nonrequired)?)
            }
            Format::Protobuf => {
                let Codec::Protobuf(_, _, cfg) = &self.codec else {
                    unreachable!("a Protobuf converter has a Protobuf codec")
                };
                let compiled = ProtobufSchema::parse_with_references(&schema.schema, &refs)
                    .map_err(fmt_err)?;
                let desc = compiled.message_at(indexes).map_err(fmt_err)?;
                ReadSchema::Protobuf(ProtobufReadSchema::new(&desc, cfg)?)
            }
        };
        let record = match &parsed {
            ReadSchema::Anything => None,
            ReadSchema::Avro(a) => a.record_name(),
            ReadSchema::Json(j) => j.connect().name.clone(),
            // The record name strategies name a Protobuf subject after the
            // message's full name.
            ReadSchema::Protobuf(_) => record_name.map(str::to_string),
        };
        if let Ok(subject) = self.strategy.subject(topic, self.field, record.as_deref()) {
            if let Ok(reg) = self.client.lookup(&subject, &schema, false).await {
                match &mut parsed {
                    ReadSchema::Anything => {}
                    ReadSchema::Avro(a) => a.set_version(reg.version),
                    ReadSchema::Json(j) => j.set_version(reg.version),
                    ReadSchema::Protobuf(p) => p.set_version(reg.version),
                }
            }
        }
        let parsed = Arc::new(parsed);
        let mut r = lock(&self.read);
        if r.len() >= CACHE_CAPACITY {
            r.clear();
        }
        r.insert(key, Arc::clone(&parsed));
        Ok(parsed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Converter for RegistryConverter {
    fn serialize(&self, topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        if data.value.is_null() {
            // A tombstone stays one, as Confluent's converters write it.
            return Ok(None);
        }
        if let (None, Codec::Avro(ser, _)) = (&data.schema, &self.codec) {
            // Schemaless data: Confluent's AvroConverter writes it with its
            // recursive `Anything` schema. Weir's JSON Schema and Protobuf
            // converters refuse it.
            let registry = RegistrySchema::new(SchemaType::Avro, avro_data::ANYTHING_SCHEMA);
            let value = avro_data::anything_to_avro(&data.value)?;
            let bytes = self
                .block_on(ser.serialize(topic, self.field, &registry, &value))?
                .map_err(fmt_err)?;
            return Ok(Some(bytes));
        }
        let schema = data.schema.as_deref().ok_or_else(|| {
            ConnectError::data(format!(
                "The {} converter needs data with a schema",
                match self.format {
                    Format::Avro => "Avro",
                    Format::JsonSchema => "JSON Schema",
                    Format::Protobuf => "Protobuf",
                }
            ))
        })?;
        schema.validate(&data.value)?;
        let written = self.registry_schema(schema)?;
        let registry = &written.registry;
        let bytes = match &self.codec {
            Codec::Avro(ser, _) => {
                let value = avro_data::to_avro(schema, &data.value)?;
                self.block_on(ser.serialize(topic, self.field, registry, &value))?
            }
            Codec::Json(ser, _, _) => {
                let value = json_schema_data::to_json(schema, &data.value)?;
                self.block_on(ser.serialize(topic, self.field, registry, &value))?
            }
            Codec::Protobuf(ser, _, cfg) => {
                let Some((compiled, message)) = &written.proto else {
                    unreachable!("Protobuf schemas are written compiled")
                };
                let desc = compiled.message_by_name(message).map_err(fmt_err)?;
                let value = protobuf_data::to_message(&desc, schema, &data.value, cfg)?;
                self.block_on(ser.serialize(topic, self.field, registry, &value))?
            }
        }
        .map_err(fmt_err)?;
        Ok(Some(bytes))
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue {
                schema: None,
                value: crate::data::Value::Null,
            });
        };
        match &self.codec {
            Codec::Avro(_, de) => self.block_on(async {
                let rec = de
                    .deserialize(topic, self.field, bytes)
                    .await
                    .map_err(fmt_err)?;
                let read = self.read_schema(topic, rec.schema_id, &[], None).await?;
                if let ReadSchema::Anything = read.as_ref() {
                    return Ok(SchemaAndValue::schemaless(avro_data::anything_from_avro(
                        &rec.value,
                    )?));
                }
                let ReadSchema::Avro(r) = read.as_ref() else {
                    unreachable!("an Avro converter reads Avro schemas")
                };
                Ok(SchemaAndValue {
                    schema: Some(Arc::clone(r.connect())),
                    value: r.value(&rec.value)?,
                })
            })?,
            Codec::Json(_, de, _) => self.block_on(async {
                let (id, value) = de.deserialize(bytes).await.map_err(fmt_err)?;
                let read = self.read_schema(topic, id, &[], None).await?;
                let ReadSchema::Json(r) = read.as_ref() else {
                    unreachable!("a JSON Schema converter reads JSON schemas")
                };
                Ok(SchemaAndValue {
                    schema: Some(Arc::clone(r.connect())),
                    value: r.value(&value)?,
                })
            })?,
            Codec::Protobuf(_, de, _) => self.block_on(async {
                let rec = de.deserialize(bytes).await.map_err(fmt_err)?;
                let desc = rec.message.descriptor();
                let indexes = rec.schema.indexes_of(&desc).map_err(fmt_err)?;
                let read = self
                    .read_schema(topic, rec.schema_id, &indexes, Some(desc.full_name()))
                    .await?;
                let ReadSchema::Protobuf(r) = read.as_ref() else {
                    unreachable!("a Protobuf converter reads Protobuf schemas")
                };
                Ok(SchemaAndValue {
                    schema: Some(Arc::clone(r.connect())),
                    value: r.value(&rec.message)?,
                })
            })?,
        }
    }
}

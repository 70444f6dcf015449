//! Schema'd keys and values for `weir produce` and `weir consume`, as
//! Confluent's `kafka-avro-console-producer`, `kafka-protobuf-console-producer`
//! and `kafka-json-schema-console-producer` (and consumers) do them: input
//! lines are JSON in the format's JSON encoding, serialized with
//! Confluent's wire format through the schema registry; consumed records
//! are decoded back to JSON.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::Value as Json;
use weir_formats::avro::{AvroDeserializer, AvroSerializer, JsonEncoding};
use weir_formats::json_schema::{JsonSchemaDeserializer, JsonSchemaSerializer};
use weir_formats::protobuf::{ProtobufDeserializer, ProtobufSerializer};
use weir_formats::{Field, RegistryConfig, SchemaRegistryClient, SchemaType, SerdeConfig};

use super::key_value;

/// A schema format of Confluent's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaFormat {
    /// Avro; JSON lines in Avro's JSON encoding (unions as `{"type": value}`).
    Avro,
    /// Protobuf (the schema's first message); JSON lines in protobuf's
    /// canonical JSON mapping.
    Protobuf,
    /// JSON Schema; JSON lines as they are.
    JsonSchema,
}

impl SchemaFormat {
    fn schema_type(self) -> SchemaType {
        match self {
            Self::Avro => SchemaType::Avro,
            Self::Protobuf => SchemaType::Protobuf,
            Self::JsonSchema => SchemaType::Json,
        }
    }
}

/// Flags for schema'd keys and values.
#[derive(Debug, Args, Clone)]
pub struct SchemaArgs {
    /// Keys in Confluent's wire format with this schema format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    key_format: Option<SchemaFormat>,
    /// Values in Confluent's wire format with this schema format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    value_format: Option<SchemaFormat>,
    /// The key schema (to produce): its text, or @FILE.
    #[arg(long, value_name = "SCHEMA")]
    key_schema: Option<String>,
    /// The value schema (to produce): its text, or @FILE.
    #[arg(long, value_name = "SCHEMA")]
    value_schema: Option<String>,
    /// Produce keys with the schema registered under this id.
    #[arg(long, value_name = "ID")]
    key_schema_id: Option<i32>,
    /// Produce values with the schema registered under this id.
    #[arg(long, value_name = "ID")]
    value_schema_id: Option<i32>,
    /// The schema registry.
    #[arg(
        long,
        env = "WEIR_SCHEMA_REGISTRY",
        default_value = "http://127.0.0.1:8081",
        value_name = "URL"
    )]
    schema_registry: String,
    /// A schema registry client or serializer property by Confluent's name
    /// (`basic.auth.user.info`, `auto.register.schemas`,
    /// `value.subject.name.strategy`, ...); repeatable.
    #[arg(long = "schema-property", value_name = "KEY=VALUE", value_parser = key_value)]
    schema_property: Vec<(String, String)>,
}

/// One field's serializer and deserializer, and the schema (or id) to
/// produce with.
#[derive(Debug)]
struct Codec {
    serdes: Serdes,
    schema: Option<weir_formats::Schema>,
    id: Option<i32>,
}

#[derive(Debug)]
enum Serdes {
    Avro(AvroSerializer, AvroDeserializer),
    Protobuf(ProtobufSerializer, ProtobufDeserializer),
    JsonSchema(JsonSchemaSerializer, JsonSchemaDeserializer),
}

/// The key and value codecs of one command.
#[derive(Debug)]
pub struct Codecs {
    key: Option<Codec>,
    value: Option<Codec>,
    runtime: tokio::runtime::Handle,
}

fn schema_text(arg: &str) -> Result<String> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(arg.to_string()),
    }
}

impl SchemaArgs {
    /// Whether any field is schema'd.
    pub fn any(&self) -> bool {
        self.key_format.is_some() || self.value_format.is_some()
    }

    /// Builds the codecs; call on the runtime the command runs on.
    pub fn codecs(&self) -> Result<Codecs> {
        let mut props: HashMap<String, String> = self.schema_property.iter().cloned().collect();
        props
            .entry("schema.registry.url".into())
            .or_insert_with(|| self.schema_registry.clone());
        let client = Arc::new(SchemaRegistryClient::new(RegistryConfig::from_properties(
            &props,
        )?)?);
        let make = |field: Field,
                    format: Option<SchemaFormat>,
                    schema: &Option<String>,
                    id: Option<i32>|
         -> Result<Option<Codec>> {
            let Some(format) = format else {
                if schema.is_some() || id.is_some() {
                    bail!(
                        "a {field:?} schema was given without --{}-format",
                        name(field)
                    );
                }
                return Ok(None);
            };
            let config = SerdeConfig::from_properties(&props, field)?;
            let schema = schema
                .as_deref()
                .map(schema_text)
                .transpose()?
                .map(|t| weir_formats::Schema::new(format.schema_type(), t));
            let c = Arc::clone(&client);
            let serdes = match format {
                SchemaFormat::Avro => Serdes::Avro(
                    AvroSerializer::new(Arc::clone(&c), config.clone()),
                    AvroDeserializer::new(c, config),
                ),
                SchemaFormat::Protobuf => Serdes::Protobuf(
                    ProtobufSerializer::new(Arc::clone(&c), config.clone()),
                    ProtobufDeserializer::new(c, config),
                ),
                SchemaFormat::JsonSchema => Serdes::JsonSchema(
                    JsonSchemaSerializer::new(Arc::clone(&c), config.clone()),
                    JsonSchemaDeserializer::new(c, config),
                ),
            };
            Ok(Some(Codec { serdes, schema, id }))
        };
        Ok(Codecs {
            key: make(
                Field::Key,
                self.key_format,
                &self.key_schema,
                self.key_schema_id,
            )?,
            value: make(
                Field::Value,
                self.value_format,
                &self.value_schema,
                self.value_schema_id,
            )?,
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

fn name(field: Field) -> &'static str {
    match field {
        Field::Key => "key",
        Field::Value => "value",
    }
}

impl Codecs {
    fn codec(&self, field: Field) -> Option<&Codec> {
        match field {
            Field::Key => self.key.as_ref(),
            Field::Value => self.value.as_ref(),
        }
    }

    /// Whether `field` is schema'd.
    pub fn has(&self, field: Field) -> bool {
        self.codec(field).is_some()
    }

    /// Serializes a JSON text (from a blocking thread).
    pub fn encode(&self, topic: &str, field: Field, text: &[u8]) -> Result<Vec<u8>> {
        let Some(codec) = self.codec(field) else {
            return Ok(text.to_vec());
        };
        let json: Json = serde_json::from_slice(text)
            .map_err(|e| anyhow!("the {} is not JSON: {e}", name(field)))?;
        let missing = || {
            anyhow!(
                "--{0}-format needs --{0}-schema or --{0}-schema-id",
                name(field)
            )
        };
        self.runtime.block_on(async {
            Ok(match (&codec.serdes, codec.id, &codec.schema) {
                (Serdes::Avro(ser, _), Some(id), _) => {
                    ser.serialize_json_with_id(id, &json, JsonEncoding::Avro)
                        .await?
                }
                (Serdes::Avro(ser, _), None, Some(s)) => {
                    ser.serialize_json(topic, field, s, &json, JsonEncoding::Avro)
                        .await?
                }
                (Serdes::Protobuf(ser, _), Some(id), _) => {
                    ser.serialize_json_with_id(id, None, &json).await?
                }
                (Serdes::Protobuf(ser, _), None, Some(s)) => {
                    ser.serialize_json(topic, field, s, None, &json).await?
                }
                (Serdes::JsonSchema(ser, _), Some(id), _) => {
                    ser.serialize_with_id(id, &json).await?
                }
                (Serdes::JsonSchema(ser, _), None, Some(s)) => {
                    ser.serialize(topic, field, s, &json).await?
                }
                (_, None, None) => return Err(missing()),
            })
        })
    }

    /// Decodes a framed key or value to JSON (from a blocking thread).
    pub fn decode(&self, topic: &str, field: Field, bytes: &[u8]) -> Result<Option<Json>> {
        let Some(codec) = self.codec(field) else {
            return Ok(None);
        };
        self.runtime.block_on(async {
            Ok(Some(match &codec.serdes {
                Serdes::Avro(_, de) => {
                    de.deserialize_json(topic, field, bytes, JsonEncoding::Avro)
                        .await?
                }
                Serdes::Protobuf(_, de) => de.deserialize_json(bytes).await?,
                Serdes::JsonSchema(_, de) => de.deserialize(bytes).await?.1,
            }))
        })
    }
}

//! The schema-based embedded formats (Avro, JSON Schema and Protobuf), on
//! `weir-formats`: which schema a key or value is written with (inline, by
//! id, by version, or the subject's latest) and the conversion between
//! the JSON the REST API speaks (Avro's JSON encoding, plain JSON,
//! protobuf's canonical JSON) and Confluent's wire format.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value as Json;
use weir_formats::avro::{AvroDeserializer, AvroSchema, AvroSerializer, JsonEncoding};
use weir_formats::json_schema::{JsonSchema, JsonSchemaDeserializer, JsonSchemaSerializer};
use weir_formats::protobuf::{ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};
use weir_formats::{
    Field, FormatError, RegistryConfig, Schema, SchemaRegistryClient, SchemaType, SerdeConfig,
    SubjectNameStrategy,
};

use crate::error::RestError;

/// Which schema a key or value is written with, as a request gives it.
#[derive(Debug, Default, Clone)]
pub(crate) struct SchemaSpec {
    /// The schema text.
    pub raw: Option<String>,
    pub id: Option<i32>,
    pub version: Option<i32>,
    pub subject: Option<String>,
    pub strategy: Option<SubjectNameStrategy>,
}

/// The schema a key or value was written with.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub bytes: Vec<u8>,
    pub subject: String,
    pub id: i32,
    /// `None` when the schema (given by id) is not registered under the
    /// subject.
    pub version: Option<i32>,
}

/// The registry client and the serdes over it.
#[derive(Debug)]
pub(crate) struct Schemas {
    client: Arc<SchemaRegistryClient>,
    avro_ser: AvroSerializer,
    avro_de: AvroDeserializer,
    json_ser: JsonSchemaSerializer,
    json_de: JsonSchemaDeserializer,
    proto_ser: ProtobufSerializer,
    proto_de: ProtobufDeserializer,
}

/// A format error as the proxy answers it.
pub(crate) fn format_error(e: FormatError) -> RestError {
    match e {
        FormatError::InvalidSchema { .. } => RestError::Unprocessable {
            code: 42205,
            message: format!("Invalid schema: {e}"),
        },
        FormatError::InvalidValue { .. } => RestError::Unprocessable {
            code: 42203,
            message: format!("Conversion of JSON to Object failed: {e}"),
        },
        FormatError::UnknownSchemaId { .. } => {
            RestError::not_found(40403, format!("Schema not found: {e}"))
        }
        FormatError::Registry { status: 404, .. } => {
            RestError::not_found(40403, format!("Schema not found: {e}"))
        }
        FormatError::NoSubject { .. } => RestError::Unprocessable {
            code: 42207,
            message: format!("Error serializing message. {e}"),
        },
        other => RestError::Kafka {
            retriable: true,
            message: format!("Schema registry: {other}"),
        },
    }
}

impl Schemas {
    /// The registry client of `props` (`schema.registry.*`, Confluent's
    /// names), or `None` without `schema.registry.url`.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Option<Self>, String> {
        let own: HashMap<String, String> = props
            .iter()
            .filter(|(k, _)| k.starts_with("schema.registry."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !own.contains_key("schema.registry.url") {
            return Ok(None);
        }
        let config = RegistryConfig::from_properties(&own).map_err(|e| e.to_string())?;
        let client = Arc::new(SchemaRegistryClient::new(config).map_err(|e| e.to_string())?);
        Ok(Some(Self {
            avro_ser: AvroSerializer::new(client.clone(), SerdeConfig::default()),
            avro_de: AvroDeserializer::new(client.clone(), SerdeConfig::default()),
            // Confluent's proxy refuses a value its JSON schema does not
            // accept (42203) rather than writing it.
            json_ser: JsonSchemaSerializer::new(
                client.clone(),
                SerdeConfig {
                    json_fail_invalid_schema: true,
                    ..SerdeConfig::default()
                },
            ),
            json_de: JsonSchemaDeserializer::new(client.clone(), SerdeConfig::default()),
            proto_ser: ProtobufSerializer::new(client.clone(), SerdeConfig::default()),
            proto_de: ProtobufDeserializer::new(client.clone(), SerdeConfig::default()),
            client,
        }))
    }

    /// The record name `RecordNameStrategy` uses: Avro's full name, JSON
    /// Schema's `title`, Protobuf's first message.
    fn record_name(kind: SchemaType, raw: &str) -> Result<Option<String>, FormatError> {
        Ok(match kind {
            SchemaType::Json => JsonSchema::parse(raw)?.title().map(str::to_string),
            SchemaType::Protobuf => Some(
                ProtobufSchema::parse(raw)?
                    .default_message()?
                    .full_name()
                    .to_string(),
            ),
            _ => AvroSchema::parse(raw)?.full_name(),
        })
    }

    /// Serializes `data` (the JSON of `kind`: Avro's JSON encoding, plain
    /// JSON, protobuf's canonical JSON) for `topic`'s key or value with the
    /// schema `spec` names: an inline schema is registered under the
    /// subject; without schema, id or version the subject's latest schema
    /// is used.
    pub async fn write(
        &self,
        kind: SchemaType,
        topic: &str,
        field: Field,
        spec: &SchemaSpec,
        data: &Json,
    ) -> Result<Written, RestError> {
        let c = &self.client;
        let raw = match (&spec.raw, spec.id) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(id)) => Some(c.schema_by_id(id).await.map_err(format_error)?.schema),
            _ => None,
        };
        let subject = match &spec.subject {
            Some(s) => s.clone(),
            None => {
                let record = match raw.as_deref() {
                    Some(r) => Self::record_name(kind, r).map_err(format_error)?,
                    None => None,
                };
                spec.strategy
                    .unwrap_or(SubjectNameStrategy::TopicName)
                    .subject(topic, field, record.as_deref())
                    .map_err(format_error)?
            }
        };
        let (id, version) = match (spec.id, &spec.raw, spec.version) {
            (Some(id), _, _) => {
                let schema = Schema::new(kind, raw.clone().unwrap_or_default());
                (
                    id,
                    c.lookup(&subject, &schema, false)
                        .await
                        .ok()
                        .map(|r| r.version),
                )
            }
            (None, Some(r), _) => {
                let schema = Schema::new(kind, r.clone());
                // Parse first, so a bad schema is the caller's error.
                Self::record_name(kind, r).map_err(format_error)?;
                let id = c
                    .register(&subject, &schema, false)
                    .await
                    .map_err(format_error)?;
                (
                    id,
                    c.lookup(&subject, &schema, false)
                        .await
                        .ok()
                        .map(|r| r.version),
                )
            }
            (None, None, Some(v)) => {
                let r = c.version(&subject, v).await.map_err(format_error)?;
                (r.id, Some(r.version))
            }
            (None, None, None) => {
                let r = c.latest(&subject).await.map_err(format_error)?;
                (r.id, Some(r.version))
            }
        };
        let bytes = match kind {
            SchemaType::Json => self.json_ser.serialize_with_id(id, data).await,
            SchemaType::Protobuf => self.proto_ser.serialize_json_with_id(id, None, data).await,
            _ => {
                self.avro_ser
                    .serialize_json_with_id(id, data, JsonEncoding::Avro)
                    .await
            }
        }
        .map_err(format_error)?;
        Ok(Written {
            bytes,
            subject,
            id,
            version,
        })
    }

    /// A framed JSON Schema or Protobuf key or value as JSON (Avro's goes
    /// through [`Schemas::read_avro`], which needs the topic).
    pub async fn read(&self, kind: SchemaType, bytes: &[u8]) -> Result<Json, FormatError> {
        match kind {
            SchemaType::Protobuf => self.proto_de.deserialize_json(bytes).await,
            _ => Ok(self.json_de.deserialize(bytes).await?.1),
        }
    }

    /// A framed Avro key or value of `topic` as Avro's JSON encoding.
    pub async fn read_avro(
        &self,
        topic: &str,
        field: Field,
        bytes: &[u8],
    ) -> Result<Json, FormatError> {
        self.avro_de
            .deserialize_json(topic, field, bytes, JsonEncoding::Avro)
            .await
    }
}

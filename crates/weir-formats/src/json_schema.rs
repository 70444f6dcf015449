//! JSON Schema: documents checked against their draft's meta-schema and
//! compiled with `jsonschema` (references resolved from the schema's
//! registry references, nothing fetched over the network), validation of
//! payloads, and the JSON_SR serializer and deserializer (Confluent's
//! framing around the JSON text), which validate when
//! `json.fail.invalid.schema` is set, as Confluent's do.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::client::SchemaRegistryClient;
use crate::schema::{ResolvedReference, Schema, SchemaType};
use crate::serdes::{Field, Resolver, SerdeConfig};
use crate::{wire, FormatError};

const JSON: &str = "JSON";

/// The base URI of a document without `$id`, against which `jsonschema`
/// resolves relative references such as `address.json`.
const DEFAULT_BASE: &str = "json-schema:///";

/// A compiled JSON Schema.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    doc: Json,
    references: Arc<HashMap<String, Json>>,
    validator: Arc<jsonschema::Validator>,
}

/// Hands referenced documents to `jsonschema` by the name they were
/// registered under: the full URI, its path, or its last segment.
struct References(Arc<HashMap<String, Json>>);

impl jsonschema::Retrieve for References {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Json, Box<dyn std::error::Error + Send + Sync>> {
        let full = uri.as_str();
        let path = uri.path().as_str().trim_start_matches('/');
        let last = path.rsplit('/').next().unwrap_or(path);
        let trimmed = full.strip_prefix(DEFAULT_BASE).unwrap_or(full);
        [full, trimmed, path, last]
            .iter()
            .find_map(|k| self.0.get(*k))
            .cloned()
            .ok_or_else(|| format!("{full} is not among the schema's references").into())
    }
}

/// Parses a JSON Schema document and checks it against its draft's
/// meta-schema (the latest draft when `$schema` names none), without
/// resolving its references.
pub fn parse_document(text: &str) -> Result<Json, FormatError> {
    let doc: Json = serde_json::from_str(text)
        .map_err(|e| FormatError::schema(JSON, format!("not JSON: {e}")))?;
    if !doc.is_object() && !doc.is_boolean() {
        return Err(FormatError::schema(
            JSON,
            "a JSON Schema is an object or a boolean",
        ));
    }
    jsonschema::meta::validate(&doc).map_err(|e| FormatError::schema(JSON, e))?;
    Ok(doc)
}

impl JsonSchema {
    /// Parses a schema that references nothing.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        Self::parse_with_references(text, &[])
    }

    /// Parses a schema whose `$ref`s may name `references`.
    pub fn parse_with_references(
        text: &str,
        references: &[ResolvedReference],
    ) -> Result<Self, FormatError> {
        let doc = parse_document(text)?;
        let mut refs = HashMap::new();
        for r in references {
            refs.insert(r.name.clone(), parse_document(&r.schema)?);
        }
        let refs = Arc::new(refs);
        let validator = jsonschema::options()
            .with_retriever(References(Arc::clone(&refs)))
            .build(&doc)
            .map_err(|e| FormatError::schema(JSON, e))?;
        Ok(Self {
            doc,
            references: refs,
            validator: Arc::new(validator),
        })
    }

    /// The document.
    pub fn document(&self) -> &Json {
        &self.doc
    }

    /// The referenced documents by reference name.
    pub fn references(&self) -> &HashMap<String, Json> {
        &self.references
    }

    /// The document's `title`: the record name of `RecordNameStrategy`.
    pub fn title(&self) -> Option<&str> {
        self.doc.get("title").and_then(Json::as_str)
    }

    /// Checks `value` against the schema; the first violation.
    pub fn validate(&self, value: &Json) -> Result<(), FormatError> {
        self.validator
            .validate(value)
            .map_err(|e| FormatError::value(format!("{e} (at {})", e.instance_path())))
    }
}

impl crate::serdes::Parsed for JsonSchema {
    const TYPE: SchemaType = SchemaType::Json;

    fn parse(schema: &Schema, references: &[ResolvedReference]) -> Result<Self, FormatError> {
        Self::parse_with_references(&schema.schema, references)
    }

    fn record_name(&self) -> Option<String> {
        self.title().map(str::to_string)
    }
}

/// Confluent's JSON Schema serializer (`KafkaJsonSchemaSerializer`).
#[derive(Debug)]
pub struct JsonSchemaSerializer {
    resolver: Resolver<JsonSchema>,
}

impl JsonSchemaSerializer {
    /// A serializer using `client` with `config`.
    pub fn new(client: Arc<SchemaRegistryClient>, config: SerdeConfig) -> Self {
        Self {
            resolver: Resolver::new(client, config),
        }
    }

    fn frame(&self, id: i32, schema: &JsonSchema, value: &Json) -> Result<Vec<u8>, FormatError> {
        if self.resolver.config.json_fail_invalid_schema {
            schema.validate(value)?;
        }
        let mut out = Vec::new();
        wire::write_header(id, &mut out);
        serde_json::to_writer(&mut out, value).map_err(FormatError::value)?;
        Ok(out)
    }

    /// Frames `value` of `schema` for `topic`'s key or value.
    pub async fn serialize(
        &self,
        topic: &str,
        field: Field,
        schema: &Schema,
        value: &Json,
    ) -> Result<Vec<u8>, FormatError> {
        let (id, writer) = self
            .resolver
            .writer(topic, field, schema, |refs| {
                JsonSchema::parse_with_references(&schema.schema, refs)
            })
            .await?;
        self.frame(id, &writer, value)
    }

    /// Frames `value` with the schema registered under `id`.
    pub async fn serialize_with_id(&self, id: i32, value: &Json) -> Result<Vec<u8>, FormatError> {
        let writer = self.resolver.by_id(id).await?;
        self.frame(id, &writer, value)
    }
}

/// Confluent's JSON Schema deserializer (`KafkaJsonSchemaDeserializer`).
#[derive(Debug)]
pub struct JsonSchemaDeserializer {
    resolver: Resolver<JsonSchema>,
}

impl JsonSchemaDeserializer {
    /// A deserializer using `client` with `config`.
    pub fn new(client: Arc<SchemaRegistryClient>, config: SerdeConfig) -> Self {
        Self {
            resolver: Resolver::new(client, config),
        }
    }

    /// Decodes a framed key or value: its schema id and JSON value.
    pub async fn deserialize(&self, frame: &[u8]) -> Result<(i32, Json), FormatError> {
        let (id, payload) = wire::split(frame)?;
        let value: Json =
            serde_json::from_slice(payload).map_err(|e| FormatError::InvalidPayload {
                id,
                reason: e.to_string(),
            })?;
        if self.resolver.config.json_fail_invalid_schema {
            self.resolver.by_id(id).await?.validate(&value)?;
        } else {
            // The id must still name a JSON schema.
            self.resolver.by_id(id).await?;
        }
        Ok((id, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_validates_and_follows_references() {
        for bad in ["[]", r#"{"minimum":"x"}"#, r#"{"enum":5}"#, "{"] {
            assert!(JsonSchema::parse(bad).is_err(), "{bad}");
        }
        let s = JsonSchema::parse(
            r#"{"title":"T","type":"object","properties":{"a":{"type":"integer","minimum":0}},"required":["a"]}"#,
        )
        .unwrap();
        assert_eq!(s.title(), Some("T"));
        assert!(s.validate(&json!({"a": 1})).is_ok());
        let e = s.validate(&json!({"a": -1})).unwrap_err().to_string();
        assert!(e.contains("/a"), "{e}");
        assert!(s.validate(&json!({})).is_err());
        let addr = ResolvedReference {
            name: "address.json".into(),
            schema_type: SchemaType::Json,
            schema: r#"{"type":"object","properties":{"street":{"type":"string"}},"required":["street"]}"#.into(),
        };
        let person = r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#;
        assert!(JsonSchema::parse(person).is_err());
        let p = JsonSchema::parse_with_references(person, &[addr]).unwrap();
        assert!(p.validate(&json!({"home": {"street": "Main"}})).is_ok());
        assert!(p.validate(&json!({"home": {}})).is_err());
        assert!(JsonSchema::parse("true")
            .unwrap()
            .validate(&json!(1))
            .is_ok());
    }
}

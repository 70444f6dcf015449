//! Schemas as Confluent Schema Registry holds them: a type, the schema
//! text, and references to other subjects' versions.

use serde::{Deserialize, Serialize};

/// A schema's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SchemaType {
    /// Apache Avro (the default when a request names none).
    #[default]
    #[serde(rename = "AVRO")]
    Avro,
    /// JSON Schema.
    #[serde(rename = "JSON")]
    Json,
    /// Protocol Buffers.
    #[serde(rename = "PROTOBUF")]
    Protobuf,
}

impl SchemaType {
    /// From the REST name, case-insensitively.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Some(Self::Avro),
            "JSON" => Some(Self::Json),
            "PROTOBUF" => Some(Self::Protobuf),
            _ => None,
        }
    }

    /// The REST name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Json => "JSON",
            Self::Protobuf => "PROTOBUF",
        }
    }

    /// Whether this is AVRO (omitted from REST bodies, as Confluent does).
    pub fn is_avro(&self) -> bool {
        *self == Self::Avro
    }
}

/// A reference to another subject's version, under a name the schema uses
/// (an Avro full name, a JSON Schema `$ref` URL, a `.proto` import path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The name the referencing schema uses.
    pub name: String,
    /// The subject holding the referenced schema.
    pub subject: String,
    /// Its version (-1 for the latest).
    pub version: i32,
}

/// A schema: its type, text and references, in the REST API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    /// The type; AVRO when absent.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    /// The schema text (Avro or JSON Schema JSON, `.proto` text or a base64
    /// `FileDescriptorProto`).
    pub schema: String,
    /// References, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

impl Schema {
    /// A schema without references.
    pub fn new(schema_type: SchemaType, schema: impl Into<String>) -> Self {
        Self {
            schema_type,
            schema: schema.into(),
            references: Vec::new(),
        }
    }

    /// With references.
    pub fn with_references(mut self, references: Vec<Reference>) -> Self {
        self.references = references;
        self
    }
}

/// A schema registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version within the subject.
    pub version: i32,
    /// The global id.
    pub id: i32,
    /// The schema.
    pub schema: Schema,
}

/// A referenced schema with its dependencies resolved: what parsers need
/// besides the schema itself. Lists of these are in dependency order
/// (every schema after the schemas it references).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedReference {
    /// The name the referencing schema uses.
    pub name: String,
    /// The referenced schema's type.
    pub schema_type: SchemaType,
    /// Its text.
    pub schema: String,
}

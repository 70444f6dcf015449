//! Protobuf on `protox` and `prost-reflect`: `.proto` text (or a base64
//! `FileDescriptorProto`, as confluent-kafka's Python serializer
//! registers) compiled with its imports taken from the schema's
//! references and the well-known types; dynamic messages picked by the
//! message-index path, encoded, decoded, and mapped to and from
//! protobuf's canonical JSON; the Protobuf serializer and deserializer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, FileDescriptor, MapKey, MessageDescriptor,
    ReflectMessage,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde::Serialize as _;
use serde_json::Value as Json;

use crate::client::SchemaRegistryClient;
use crate::schema::{ResolvedReference, Schema, SchemaType};
use crate::serdes::{Field, Resolver, SerdeConfig};
use crate::{wire, FormatError};

const PROTOBUF: &str = "PROTOBUF";

/// The file name a schema's own text is compiled under (references keep
/// their names, which its imports use).
const ROOT_FILE: &str = "__weir_schema__.proto";

/// A compiled Protobuf schema: its file and every file it imports.
#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    pool: DescriptorPool,
    file: FileDescriptor,
    /// The message a serializer writes (its full name), when not the first.
    message: Option<String>,
}

/// Decodes `text` as a base64 `FileDescriptorProto` when it is one.
fn descriptor_proto(text: &str) -> Option<prost_types::FileDescriptorProto> {
    let t = text.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Whether a schema's text is a base64 `FileDescriptorProto` rather than
/// `.proto` text.
pub fn is_descriptor(text: &str) -> bool {
    descriptor_proto(text).is_some()
}

fn to_file(name: &str, text: &str) -> Result<File, protox::Error> {
    match descriptor_proto(text) {
        Some(mut fd) => {
            // Decoded from its bytes, the descriptor keeps its extension
            // options (Confluent's `confluent.field_meta`, which a decoded
            // `FileDescriptorProto` drops). The name is appended: the last
            // value of a singular field wins.
            let mut bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .unwrap_or_default();
            prost::encoding::string::encode(1, &name.to_string(), &mut bytes);
            match File::decode_file_descriptor_proto(bytes.as_slice()) {
                Ok(f) => Ok(f),
                Err(_) => {
                    fd.name = Some(name.to_string());
                    Ok(File::from_file_descriptor_proto(fd))
                }
            }
        }
        None => File::from_source(name, text),
    }
}

/// The files Confluent's serializers treat as built in (never registered
/// as references): its field metadata and decimal types, and the Google
/// calendar types its Connect converter maps Date and Time to. Written
/// from their published definitions (names and field numbers are the
/// wire contract).
const BUILTINS: &[(&str, &str)] = &[
    (
        "confluent/meta.proto",
        r#"syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
option go_package = "../confluent";
message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
  repeated Rule rules = 4;
}
message Rule {
  string name = 1;
  string doc = 2;
  string expr = 3;
  string sql = 4;
}
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
"#,
    ),
    (
        "confluent/type/decimal.proto",
        r#"syntax = "proto3";
package confluent.type;
message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#,
    ),
    (
        "google/type/date.proto",
        r#"syntax = "proto3";
package google.type;
message Date {
  int32 year = 1;
  int32 month = 2;
  int32 day = 3;
}
"#,
    ),
    (
        "google/type/timeofday.proto",
        r#"syntax = "proto3";
package google.type;
message TimeOfDay {
  int32 hours = 1;
  int32 minutes = 2;
  int32 seconds = 3;
  int32 nanos = 4;
}
"#,
    ),
];

/// Whether an import path names a file every Confluent client knows
/// without a reference (as confluent-kafka's `_is_builtin` decides).
pub fn is_builtin(name: &str) -> bool {
    name.starts_with("confluent/")
        || name.starts_with("google/protobuf/")
        || name.starts_with("google/type/")
}

/// Confluent's field metadata parameters (`confluent.field_meta`'s
/// `params`), empty when the field has none.
pub fn field_meta(fd: &FieldDescriptor) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(ext) = fd
        .parent_pool()
        .get_extension_by_name("confluent.field_meta")
    else {
        return out;
    };
    let opts = fd.options();
    if !opts.has_extension(&ext) {
        return out;
    }
    let meta = opts.get_extension(&ext);
    let params = meta
        .as_message()
        .and_then(|m| m.get_field_by_name("params"));
    if let Some(map) = params.as_ref().and_then(|p| p.as_map()) {
        for (k, v) in map {
            if let (MapKey::String(k), Some(v)) = (k, v.as_str()) {
                out.insert(k.clone(), v.to_string());
            }
        }
    }
    out
}

struct Builtins;

impl FileResolver for Builtins {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match BUILTINS.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => File::from_source(n, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Files by import path: the schema and its references.
struct Sources(HashMap<String, String>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(text) => to_file(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

impl ProtobufSchema {
    /// Compiles a schema that imports nothing but well-known types.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        Self::parse_with_references(text, &[])
    }

    /// Compiles a schema whose imports are `references` (by import path)
    /// or well-known types (`google/protobuf/*.proto`).
    pub fn parse_with_references(
        text: &str,
        references: &[ResolvedReference],
    ) -> Result<Self, FormatError> {
        let mut sources: HashMap<String, String> = references
            .iter()
            .map(|r| (r.name.clone(), r.schema.clone()))
            .collect();
        sources.insert(ROOT_FILE.to_string(), text.to_string());
        let mut chain = ChainFileResolver::new();
        chain.add(Sources(sources));
        chain.add(Builtins);
        chain.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        compiler
            .open_file(ROOT_FILE)
            .map_err(|e| FormatError::schema(PROTOBUF, e))?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(ROOT_FILE)
            .ok_or_else(|| FormatError::schema(PROTOBUF, "the schema did not compile"))?;
        Ok(Self {
            pool,
            file,
            message: None,
        })
    }

    /// The same schema, writing `message` (a full name) rather than the
    /// first message.
    pub fn with_message(mut self, message: &str) -> Result<Self, FormatError> {
        let m = self.message_by_name(message)?;
        self.message = Some(m.full_name().to_string());
        Ok(self)
    }

    /// The schema's own file.
    pub fn file(&self) -> &FileDescriptor {
        &self.file
    }

    /// The schema's file as a base64 `FileDescriptorProto` (the form
    /// Confluent's registry serves for `format=serialized`).
    pub fn to_descriptor_base64(&self) -> String {
        // `FileDescriptor::encode_to_vec` keeps extension options (such
        // as Confluent's field metadata), which the prost form drops.
        base64::engine::general_purpose::STANDARD.encode(self.file.encode_to_vec())
    }

    /// Every file: the schema's, its references' and well-known types'.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// A message by full name (with or without the package).
    pub fn message_by_name(&self, name: &str) -> Result<MessageDescriptor, FormatError> {
        let name = name.trim_start_matches('.');
        self.pool
            .get_message_by_name(name)
            .or_else(|| {
                let pkg = self.file.package_name();
                self.pool.get_message_by_name(&format!("{pkg}.{name}"))
            })
            .ok_or_else(|| FormatError::value(format!("the schema has no message {name}")))
    }

    /// The message a serializer writes: the one chosen, else the file's
    /// first.
    pub fn default_message(&self) -> Result<MessageDescriptor, FormatError> {
        match &self.message {
            Some(m) => self.message_by_name(m),
            None => self
                .file
                .messages()
                .next()
                .ok_or_else(|| FormatError::schema(PROTOBUF, "the schema has no message")),
        }
    }

    /// `message` by full name, or the default message.
    pub fn pick(&self, message: Option<&str>) -> Result<MessageDescriptor, FormatError> {
        match message {
            Some(m) => self.message_by_name(m),
            None => self.default_message(),
        }
    }

    /// The message at a message-index path of this file.
    pub fn message_at(&self, indexes: &[i32]) -> Result<MessageDescriptor, FormatError> {
        let bad = || FormatError::InvalidMessageIndexes {
            reason: format!("{indexes:?} names no message of the schema"),
        };
        let mut it = indexes.iter();
        let first = usize::try_from(*it.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let mut m = self.file.messages().nth(first).ok_or_else(bad)?;
        for i in it {
            let i = usize::try_from(*i).map_err(|_| bad())?;
            let next = m.child_messages().nth(i);
            m = next.ok_or_else(bad)?;
        }
        Ok(m)
    }

    /// The message-index path of a message of this file.
    pub fn indexes_of(&self, m: &MessageDescriptor) -> Result<Vec<i32>, FormatError> {
        if m.parent_file() != self.file {
            return Err(FormatError::value(format!(
                "message {} is not declared in the schema's own file",
                m.full_name()
            )));
        }
        let mut path = Vec::new();
        let mut cur = m.clone();
        loop {
            let (pos, parent) = match cur.parent_message() {
                Some(p) => {
                    let pos = p.child_messages().position(|c| c == cur);
                    (pos, Some(p))
                }
                None => (self.file.messages().position(|c| c == cur), None),
            };
            path.push(i32::try_from(pos.unwrap_or(0)).unwrap_or(i32::MAX));
            match parent {
                Some(p) => cur = p,
                None => break,
            }
        }
        path.reverse();
        Ok(path)
    }

    /// Decodes a `message` from its binary encoding.
    pub fn decode(
        &self,
        message: MessageDescriptor,
        bytes: &[u8],
    ) -> Result<DynamicMessage, FormatError> {
        DynamicMessage::decode(message, bytes).map_err(|e| FormatError::InvalidPayload {
            id: 0,
            reason: e.to_string(),
        })
    }

    /// A message in protobuf's canonical JSON mapping (lowerCamelCase
    /// names, default values left out).
    pub fn to_json(message: &DynamicMessage) -> Result<Json, FormatError> {
        message
            .serialize(serde_json::value::Serializer)
            .map_err(FormatError::value)
    }

    /// A `message` from protobuf's canonical JSON mapping (field names in
    /// either lowerCamelCase or as declared).
    pub fn from_json(
        message: MessageDescriptor,
        json: &Json,
    ) -> Result<DynamicMessage, FormatError> {
        DynamicMessage::deserialize(message, json).map_err(FormatError::value)
    }
}

impl crate::serdes::Parsed for ProtobufSchema {
    const TYPE: SchemaType = SchemaType::Protobuf;

    fn parse(schema: &Schema, references: &[ResolvedReference]) -> Result<Self, FormatError> {
        Self::parse_with_references(&schema.schema, references)
    }

    fn record_name(&self) -> Option<String> {
        self.default_message()
            .ok()
            .map(|m| m.full_name().to_string())
    }
}

/// A record key or value decoded from Confluent's wire format.
#[derive(Debug, Clone)]
pub struct ProtobufRecord {
    /// The writer schema's id.
    pub schema_id: i32,
    /// The writer schema.
    pub schema: Arc<ProtobufSchema>,
    /// The message.
    pub message: DynamicMessage,
}

/// Confluent's Protobuf serializer (`KafkaProtobufSerializer`): schema id,
/// message indexes, then the message.
#[derive(Debug)]
pub struct ProtobufSerializer {
    resolver: Resolver<ProtobufSchema>,
}

fn frame(
    id: i32,
    schema: &ProtobufSchema,
    message: &DynamicMessage,
) -> Result<Vec<u8>, FormatError> {
    let indexes = schema.indexes_of(&message.descriptor())?;
    let mut out = Vec::new();
    wire::write_header(id, &mut out);
    wire::write_message_indexes(&indexes, &mut out);
    message.encode(&mut out).map_err(FormatError::value)?;
    Ok(out)
}

impl ProtobufSerializer {
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
        schema: &Schema,
        message: Option<&str>,
    ) -> Result<(i32, Arc<ProtobufSchema>), FormatError> {
        self.resolver
            .writer(topic, field, schema, |refs| {
                let s = ProtobufSchema::parse_with_references(&schema.schema, refs)?;
                match message {
                    Some(m) => s.with_message(m),
                    None => Ok(s),
                }
            })
            .await
    }

    /// Frames a JSON `message` (a full name; None: the first) of `schema`
    /// (`.proto` text and references) for `topic`'s key or value.
    pub async fn serialize_json(
        &self,
        topic: &str,
        field: Field,
        schema: &Schema,
        message: Option<&str>,
        json: &Json,
    ) -> Result<Vec<u8>, FormatError> {
        let (id, writer) = self.writer(topic, field, schema, message).await?;
        frame(
            id,
            &writer,
            &ProtobufSchema::from_json(writer.pick(message)?, json)?,
        )
    }

    /// Frames a JSON message with the schema registered under `id`.
    pub async fn serialize_json_with_id(
        &self,
        id: i32,
        message: Option<&str>,
        json: &Json,
    ) -> Result<Vec<u8>, FormatError> {
        let writer = self.resolver.by_id(id).await?;
        frame(
            id,
            &writer,
            &ProtobufSchema::from_json(writer.pick(message)?, json)?,
        )
    }

    /// Frames `message`, whose descriptor must come from `schema`'s file.
    pub async fn serialize(
        &self,
        topic: &str,
        field: Field,
        schema: &Schema,
        message: &DynamicMessage,
    ) -> Result<Vec<u8>, FormatError> {
        let desc = message.descriptor();
        let (id, writer) = self
            .writer(topic, field, schema, Some(desc.full_name()))
            .await?;
        // The registry's copy of the schema describes the same message.
        let ours = writer.message_by_name(desc.full_name())?;
        let bytes = message.encode_to_vec();
        frame(id, &writer, &writer.decode(ours, &bytes)?)
    }
}

/// Confluent's Protobuf deserializer (`KafkaProtobufDeserializer`).
#[derive(Debug)]
pub struct ProtobufDeserializer {
    resolver: Resolver<ProtobufSchema>,
}

impl ProtobufDeserializer {
    /// A deserializer using `client` with `config`.
    pub fn new(client: Arc<SchemaRegistryClient>, config: SerdeConfig) -> Self {
        Self {
            resolver: Resolver::new(client, config),
        }
    }

    /// Decodes a framed key or value.
    pub async fn deserialize(&self, frame: &[u8]) -> Result<ProtobufRecord, FormatError> {
        let (id, rest) = wire::split(frame)?;
        let (indexes, payload) = wire::read_message_indexes(rest)?;
        let schema = self.resolver.by_id(id).await?;
        let desc = schema.message_at(&indexes)?;
        let message = schema.decode(desc, payload).map_err(|e| match e {
            FormatError::InvalidPayload { reason, .. } => {
                FormatError::InvalidPayload { id, reason }
            }
            other => other,
        })?;
        Ok(ProtobufRecord {
            schema_id: id,
            schema,
            message,
        })
    }

    /// Decodes a framed key or value into protobuf's canonical JSON.
    pub async fn deserialize_json(&self, frame: &[u8]) -> Result<Json, FormatError> {
        ProtobufSchema::to_json(&self.deserialize(frame).await?.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SHOP: &str = r#"
        syntax = "proto3";
        package weir.shop;
        import "google/protobuf/timestamp.proto";
        import "common/money.proto";
        message Order {
          int64 id = 1;
          repeated string tags = 2;
          weir.common.Money total = 3;
          google.protobuf.Timestamp at = 4;
          map<string, int32> counts = 5;
          message Line { string sku = 1; int32 qty = 2; }
          repeated Line lines = 6;
          oneof pay { string card = 7; bool cash = 8; }
        }
        message Refund { int64 order = 1; }
    "#;
    const MONEY: &str =
        "syntax = \"proto3\"; package weir.common; message Money { int64 cents = 1; string currency = 2; }";

    fn money() -> ResolvedReference {
        ResolvedReference {
            name: "common/money.proto".into(),
            schema_type: SchemaType::Protobuf,
            schema: MONEY.into(),
        }
    }

    #[test]
    fn compiles_with_references_and_well_known_types() {
        assert!(ProtobufSchema::parse(SHOP).is_err());
        let s = ProtobufSchema::parse_with_references(SHOP, &[money()]).unwrap();
        assert_eq!(s.default_message().unwrap().full_name(), "weir.shop.Order");
        // Nested types count in descriptor order, the map entry
        // `CountsEntry` (declared first) included, as Confluent counts them.
        let line = s.message_by_name("weir.shop.Order.Line").unwrap();
        assert_eq!(s.indexes_of(&line).unwrap(), vec![0, 1]);
        assert_eq!(s.message_at(&[0, 1]).unwrap(), line);
        assert_eq!(s.message_at(&[1]).unwrap().name(), "Refund");
        assert!(s.message_at(&[2]).is_err() && s.message_at(&[0, 3]).is_err());
        // The registry may hold the reference as a base64 descriptor.
        let fd = ProtobufSchema::parse(MONEY)
            .unwrap()
            .file()
            .file_descriptor_proto()
            .clone();
        let b64 = base64::engine::general_purpose::STANDARD.encode(fd.encode_to_vec());
        let r = ResolvedReference {
            schema: b64.clone(),
            ..money()
        };
        assert!(ProtobufSchema::parse_with_references(SHOP, &[r]).is_ok());
        assert!(is_descriptor(&b64) && !is_descriptor(MONEY));
        for bad in [
            "message {",
            "syntax = \"proto3\"; message M { int32 a = 1; int32 b = 1; }",
            "import \"nope.proto\";",
        ] {
            assert!(ProtobufSchema::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn confluent_builtin_types_resolve_without_references() {
        let s = ProtobufSchema::parse(
            r#"syntax = "proto3";
            import "confluent/meta.proto";
            import "confluent/type/decimal.proto";
            import "google/type/date.proto";
            import "google/type/timeofday.proto";
            message M {
              int32 a = 1 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int8" }] }];
              confluent.type.Decimal d = 2;
              google.type.Date day = 3;
              google.type.TimeOfDay at = 4;
            }"#,
        )
        .unwrap();
        let m = s.default_message().unwrap();
        let ext = s
            .pool()
            .get_extension_by_name("confluent.field_meta")
            .unwrap();
        let opts = m.get_field_by_name("a").unwrap().options();
        let meta = opts.get_extension(&ext);
        let params = meta
            .as_message()
            .unwrap()
            .get_field_by_name("params")
            .unwrap();
        assert_eq!(params.as_map().unwrap().len(), 1);
        assert!(is_builtin("confluent/meta.proto") && !is_builtin("shop/order.proto"));
        // The same schema as a base64 descriptor (as confluent-kafka
        // registers it) keeps the field's metadata.
        let again = ProtobufSchema::parse(&s.to_descriptor_base64()).unwrap();
        let f = again
            .default_message()
            .unwrap()
            .get_field_by_name("a")
            .unwrap();
        let ext = again
            .pool()
            .get_extension_by_name("confluent.field_meta")
            .unwrap();
        assert!(f.options().has_extension(&ext));
    }

    #[test]
    fn json_and_binary_round_trip() {
        let s = ProtobufSchema::parse_with_references(SHOP, &[money()]).unwrap();
        let j = json!({"id": "7", "tags": ["a"], "total": {"cents": "150", "currency": "EUR"},
            "at": "2024-05-01T12:00:00Z", "counts": {"x": 2}, "lines": [{"sku": "s", "qty": 1}],
            "cash": true});
        let m = ProtobufSchema::from_json(s.default_message().unwrap(), &j).unwrap();
        let back = s
            .decode(s.default_message().unwrap(), &m.encode_to_vec())
            .unwrap();
        assert_eq!(ProtobufSchema::to_json(&back).unwrap(), j);
        assert!(
            ProtobufSchema::from_json(s.default_message().unwrap(), &json!({"nope": 1})).is_err()
        );
        assert!(s
            .decode(s.default_message().unwrap(), &[0x0a, 0xff])
            .is_err());
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_the_message_back(id in any::<i64>(), tags in proptest::collection::vec(".{0,5}", 0..4), qty in any::<i32>()) {
            let s = ProtobufSchema::parse_with_references(SHOP, &[money()]).unwrap();
            let j = json!({"id": id.to_string(), "tags": tags, "lines": [{"sku": "k", "qty": qty}]});
            let m = ProtobufSchema::from_json(s.default_message().unwrap(), &j).unwrap();
            let bytes = m.encode_to_vec();
            let back = s.decode(s.default_message().unwrap(), &bytes).unwrap();
            prop_assert_eq!(back.encode_to_vec(), bytes);
            prop_assert_eq!(ProtobufSchema::to_json(&back).unwrap(), ProtobufSchema::to_json(&m).unwrap());
        }
    }
}

//! weir-formats on arbitrary input: Confluent frames (magic byte, schema
//! id, Protobuf message indexes), schema texts for the three schema types
//! (what the registry accepts from clients), and record payloads decoded
//! with fixed schemas (what the services read from topics) and shown as JSON. Errors,
//! never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weir_formats::avro::{AvroSchema, JsonEncoding};
use weir_formats::json_schema::JsonSchema;
use weir_formats::protobuf::ProtobufSchema;
use weir_formats::wire;

const AVRO: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
  {"name":"attrs","type":{"type":"map","values":"double"}}]}"#;

const PROTO: &str = r#"syntax = "proto3";
message Outer { int64 id = 1; string name = 2; repeated Inner items = 3; map<string, int32> counts = 4;
  message Inner { bytes data = 1; oneof v { sint32 s = 2; double d = 3; } } }
message Other { bool flag = 1; }"#;

fn schemas() -> &'static (AvroSchema, ProtobufSchema) {
    static S: OnceLock<(AvroSchema, ProtobufSchema)> = OnceLock::new();
    S.get_or_init(|| {
        (
            AvroSchema::parse(AVRO).expect("Avro schema"),
            ProtobufSchema::parse(PROTO).expect("Protobuf schema"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (avro, proto) = schemas();
    match selector % 6 {
        0 => {
            if let Ok((_, payload)) = wire::split(rest) {
                if let Ok((indexes, body)) = wire::read_message_indexes(payload) {
                    if let Ok(m) = proto.message_at(&indexes) {
                        let _ = proto.decode(m, body);
                    }
                }
            }
        }
        1 => {
            if let Ok(v) = avro.decode(rest) {
                // As the services show a record: Avro's JSON and plain JSON.
                let _ = avro.to_json(&v, JsonEncoding::Avro);
                let _ = avro.to_json(&v, JsonEncoding::Plain);
            }
        }
        2 => {
            if let Ok(m) = proto.default_message() {
                if let Ok(msg) = proto.decode(m, rest) {
                    let _ = ProtobufSchema::to_json(&msg);
                }
            }
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(s) = AvroSchema::parse(text) {
                    let _ = s.canonical_form();
                }
            }
        }
        4 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = ProtobufSchema::parse(text);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(s) = JsonSchema::parse(text) {
                    let _ = s.validate(&serde_json::json!({"a": [1, "x", null]}));
                }
            }
        }
    }
});

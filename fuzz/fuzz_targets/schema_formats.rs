//! weir-formats on arbitrary input: Confluent frames (magic byte, schema
//! id, Protobuf message indexes), schema texts for the three schema types
//! (what the registry accepts from clients), and record payloads decoded
//! with fixed schemas (what the services read from topics) and shown as JSON,
//! and the Connect converters' side: Avro and JSON Schema texts read as
//! Connect schemas (and written back), payloads read as Connect data; the
//! same for Protobuf texts and payloads, and schemaless Avro (Anything).
//! Errors, never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weir_formats::avro::{AvroSchema, JsonEncoding};
use weir_formats::json_schema::JsonSchema;
use weir_formats::protobuf::ProtobufSchema;
use weir_formats::wire;
use weir_connect::avro_data::{
    anything_from_avro, anything_to_avro, avro_schema_text, to_avro, AvroReadSchema,
    ANYTHING_SCHEMA,
};
use weir_connect::json_schema_data::{json_schema_text, to_json, JsonReadSchema};
use weir_connect::protobuf_data::{
    proto_schema_text, to_message, ProtobufDataConfig, ProtobufReadSchema,
};

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

fn connect_avro() -> &'static AvroReadSchema {
    static S: OnceLock<AvroReadSchema> = OnceLock::new();
    S.get_or_init(|| AvroReadSchema::parse(AVRO, &[]).expect("Connect Avro schema"))
}

fn connect_json() -> &'static JsonReadSchema {
    static S: OnceLock<JsonReadSchema> = OnceLock::new();
    S.get_or_init(|| {
        JsonReadSchema::parse(
            r#"{"type":"object","properties":{"a":{"type":"integer","connect.type":"int8"},
              "b":{"oneOf":[{"type":"null"},{"type":"string","connect.type":"bytes"}]},
              "c":{"type":"array","items":{"type":"object","properties":{"key":{"type":"integer"},"value":{"type":"number"}}},"connect.type":"map"},
              "d":{"type":"number","title":"org.apache.kafka.connect.data.Decimal","connect.type":"bytes","connect.parameters":{"scale":"3"}},
              "e":{"oneOf":[{"type":"string"},{"type":"boolean"}]}}}"#,
            &[],
            false,
        )
        .expect("Connect JSON schema")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (avro, proto) = schemas();
    // 13 selectors: the last (validation) was unreachable with 9.
    match selector % 13 {
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
        5 => {
            // A registry's Avro schema as the AvroConverter reads it, and
            // back as the converter would register it.
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(r) = AvroReadSchema::parse(text, &[]) {
                    let _ = avro_schema_text(r.connect());
                }
            }
        }
        6 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                // Both readings of properties left out of `required`.
                for optional_for_nonrequired in [false, true] {
                    if let Ok(r) = JsonReadSchema::parse(text, &[], optional_for_nonrequired) {
                        let _ = json_schema_text(r.connect());
                    }
                }
            }
        }
        7 => {
            // A payload of the fixed Avro schema read as Connect data and
            // written back as an Avro value.
            let r = connect_avro();
            if let Ok(v) = avro.decode(rest) {
                if let Ok(c) = r.value(&v) {
                    let _ = to_avro(r.connect(), &c);
                }
            }
        }
        8 => {
            if let Ok(j) = serde_json::from_slice::<serde_json::Value>(rest) {
                let r = connect_json();
                if let Ok(c) = r.value(&j) {
                    let _ = to_json(r.connect(), &c);
                }
            }
        }
        9 => {
            // A registry's Protobuf schema as the ProtobufConverter reads
            // each message, and back as it would register it.
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(s) = ProtobufSchema::parse(text) {
                    let cfg = ProtobufDataConfig::default();
                    for m in s.file().messages() {
                        if let Ok(r) = ProtobufReadSchema::new(&m, &cfg) {
                            let _ = proto_schema_text(r.connect(), &cfg);
                        }
                    }
                }
            }
        }
        10 => {
            // A payload of the fixed Protobuf schema read as Connect data
            // (as the converter decodes) and written back as a message.
            let cfg = ProtobufDataConfig {
                wrapper_for_nullables: rest.first().is_some_and(|b| b & 1 == 1),
                ..ProtobufDataConfig::default()
            };
            if let Ok(m) = proto.message_at(&[0]) {
                if let (Ok(msg), Ok(r)) = (proto.decode(m.clone(), rest), ProtobufReadSchema::new(&m, &cfg)) {
                    if let Ok(c) = r.value(&msg) {
                        let _ = to_message(&m, r.connect(), &c, &cfg);
                    }
                }
            }
        }
        11 => {
            // Schemaless Avro data (Confluent's Anything record) read and
            // written back.
            static ANY: OnceLock<AvroSchema> = OnceLock::new();
            let any = ANY.get_or_init(|| AvroSchema::parse(ANYTHING_SCHEMA).expect("Anything"));
            if let Ok(v) = any.decode(rest) {
                if let Ok(c) = anything_from_avro(&v) {
                    let _ = anything_to_avro(&c).map(|a| any.encode(&a));
                }
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

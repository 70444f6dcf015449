//! The streaming SQL record decoders (JSON, KAFKA, DELIMITED, AVRO,
//! PROTOBUF, JSON_SR frames, AVRO_NOSR bodies, windowed keys, the state
//! encoding) and the
//! inference of columns from registry schema texts, on arbitrary bytes:
//! errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

use weir_formats::{ResolvedReference, Schema};
use weir_sql::format::{split_windowed_key, Codec, Format, RegistryFormat};
use weir_sql::sr::{self, Bound, Parsed, SchemaLookup, SrKind};
use weir_sql::types::SqlType;

/// Schema id 1 of each format: the one its columns give.
struct Fixed(Schema);

impl SchemaLookup for Fixed {
    fn by_id(&self, id: i32) -> weir_sql::Result<(Schema, Vec<ResolvedReference>)> {
        if id == 1 {
            Ok((self.0.clone(), Vec::new()))
        } else {
            Err(weir_sql::SqlError::serde("AVRO", "unknown id"))
        }
    }
}

fn registry_codecs(columns: &[(String, SqlType)]) -> &'static [Codec] {
    static CODECS: OnceLock<Vec<Codec>> = OnceLock::new();
    CODECS.get_or_init(|| {
        // AVRO, PROTOBUF and JSON_SR frames, and AVRO_NOSR bodies.
        [
            (SrKind::Avro, true),
            (SrKind::Protobuf, true),
            (SrKind::JsonSr, true),
            (SrKind::Avro, false),
        ]
        .into_iter()
        .map(|(kind, framed)| {
            let schema = sr::schema_for(kind, columns, true);
            let parsed = Parsed::parse(kind, &schema, &[]).expect("generated schema parses");
            let bound = Bound::new(1, parsed, Arc::new(Fixed(schema)));
            let format = Format::Registry(RegistryFormat {
                kind,
                bound: Some(Arc::new(bound)),
                framed,
            });
            Codec::new(format, columns.to_vec(), true)
        })
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let columns = vec![
        ("I".to_string(), SqlType::Int),
        ("S".to_string(), SqlType::String),
        ("D".to_string(), SqlType::Double),
        ("T".to_string(), SqlType::Timestamp),
        ("A".to_string(), SqlType::Array(Box::new(SqlType::Bigint))),
        ("M".to_string(), SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Int))),
        ("R".to_string(), SqlType::Struct(vec![("X".to_string(), SqlType::Boolean)])),
        ("N".to_string(), SqlType::Decimal(10, 2)),
    ];
    let decimal = columns[7].clone();
    let _ = Codec::new(Format::Json, columns.clone(), true).decode(Some(data));
    let _ = Codec::new(Format::Json, columns[..1].to_vec(), false).decode(Some(data));
    let mut flat: Vec<_> = columns[..4].to_vec();
    flat.push(decimal.clone());
    let _ = Codec::new(Format::Delimited(','), flat, true).decode(Some(data));
    for t in [SqlType::Int, SqlType::Bigint, SqlType::Double, SqlType::String, SqlType::Bytes] {
        let _ = Codec::new(Format::Kafka, vec![("K".to_string(), t)], false).decode(Some(data));
    }
    // Half the inputs get a frame header naming the known schema.
    let mut framed = vec![0, 0, 0, 0, 1];
    framed.extend_from_slice(data);
    let mut protobuf_columns: Vec<_> = columns[..5].to_vec();
    protobuf_columns.push(decimal);
    for codec in registry_codecs(&protobuf_columns) {
        let _ = codec.decode(Some(data));
        let _ = codec.decode(Some(&framed));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sr::json_schema_columns(text, "ROWVAL");
        for kind in [SrKind::Avro, SrKind::Protobuf] {
            if let Ok(p) = Parsed::parse(kind, &Schema::new(kind.schema_type(), text), &[]) {
                let _ = sr::columns_of(&p, "ROWVAL");
            }
        }
    }
    let _ = split_windowed_key(data, true, 0);
    let _ = split_windowed_key(data, false, 1000);
    let _ = weir_sql::state::decode(data);
});

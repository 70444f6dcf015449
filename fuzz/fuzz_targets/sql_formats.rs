//! The streaming SQL record decoders (JSON, KAFKA, DELIMITED, windowed
//! keys, the state encoding) on arbitrary bytes: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_sql::format::{split_windowed_key, Codec, Format};
use weir_sql::types::SqlType;

fuzz_target!(|data: &[u8]| {
    let columns = vec![
        ("I".to_string(), SqlType::Int),
        ("S".to_string(), SqlType::String),
        ("D".to_string(), SqlType::Double),
        ("T".to_string(), SqlType::Timestamp),
        ("A".to_string(), SqlType::Array(Box::new(SqlType::Bigint))),
        ("M".to_string(), SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Int))),
        ("R".to_string(), SqlType::Struct(vec![("X".to_string(), SqlType::Boolean)])),
    ];
    let _ = Codec::new(Format::Json, columns.clone(), true).decode(Some(data));
    let _ = Codec::new(Format::Json, columns[..1].to_vec(), false).decode(Some(data));
    let flat: Vec<_> = columns[..4].to_vec();
    let _ = Codec::new(Format::Delimited(','), flat, true).decode(Some(data));
    for t in [SqlType::Int, SqlType::Bigint, SqlType::Double, SqlType::String, SqlType::Bytes] {
        let _ = Codec::new(Format::Kafka, vec![("K".to_string(), t)], false).decode(Some(data));
    }
    let _ = split_windowed_key(data, true, 0);
    let _ = split_windowed_key(data, false, 1000);
    let _ = weir_sql::state::decode(data);
});

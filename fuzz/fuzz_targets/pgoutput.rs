//! What a PostgreSQL server streams to the CDC source: replication copy
//! messages (XLogData, keepalives), pgoutput messages, and column values
//! in their text output through Debezium's type mapping. Errors, never a
//! crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_connect::postgres::pgoutput::{decode, decode_copy, parse_lsn, CopyMessage};
use weir_connect::postgres::types::{convert, default_value, unscaled, Conv};

fuzz_target!(|data: &[u8]| {
    if let Ok(CopyMessage::XLogData { data: inner, .. }) = decode_copy(data) {
        let _ = decode(&inner);
    }
    let _ = decode(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_lsn(text);
    let _ = unscaled(text, None);
    let scale = data.first().map(|b| i32::from(*b % 40) - 4).unwrap_or(0);
    let convs = [
        Conv::Bool, Conv::Int16, Conv::Int32, Conv::Int64, Conv::Float32, Conv::Float64,
        Conv::Text, Conv::Bytea, Conv::Decimal(scale), Conv::VarDecimal, Conv::DecimalDouble,
        Conv::DecimalString, Conv::Date, Conv::TimeMillis, Conv::TimeMicros,
        Conv::TimestampMillis, Conv::TimestampMicros, Conv::ConnectTime,
        Conv::ConnectTimestamp, Conv::TimestampTz(6), Conv::TimeTz, Conv::Interval,
        Conv::Array(Box::new(Conv::Int32)), Conv::Array(Box::new(Conv::Text)),
    ];
    for c in &convs {
        let _ = convert(c, text);
        let _ = default_value(c, text);
    }
});

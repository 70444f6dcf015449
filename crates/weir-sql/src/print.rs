//! `PRINT topic`: any topic's records as text lines, with the key and
//! value formats guessed from the bytes, as ksqlDB's `PRINT` does (it has
//! no schema to go by). Bytes that are a schema registry frame the
//! registry can read are shown decoded, as AVRO, PROTOBUF or JSON_SR.

use crate::time::format_pattern;

/// The formats `bytes` could be in, most specific first.
pub fn candidates(bytes: Option<&[u8]>) -> Vec<&'static str> {
    let Some(b) = bytes else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if serde_json::from_slice::<serde_json::Value>(b).is_ok() {
        out.push("JSON");
    }
    match b.len() {
        4 => out.push("KAFKA_INT"),
        8 => out.extend(["KAFKA_BIGINT", "KAFKA_DOUBLE"]),
        _ => {}
    }
    if printable(b).is_some() {
        out.push("KAFKA_STRING");
    }
    out
}

/// One side of a record as the registry decoded it: the format's name
/// and the payload as JSON text.
pub type Decoded = Option<(&'static str, String)>;

/// The header line for one side: `Key format: JSON or KAFKA_STRING`.
pub fn format_line(side: &str, bytes: Option<&[u8]>, decoded: &Decoded) -> String {
    if let Some((format, _)) = decoded {
        return format!("{side} format: {format}");
    }
    let c = candidates(bytes);
    if c.is_empty() {
        // What ksqlDB prints when a side has shown no bytes yet.
        format!("{side} format: ¯\\_(ツ)_/¯ - no data processed")
    } else {
        format!("{side} format: {}", c.join(" or "))
    }
}

fn printable(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b)
        .ok()
        .filter(|s| !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
}

/// One side's bytes as text: JSON and text as they are, 4- and 8-byte
/// binary as big-endian integers, anything else as hex.
pub fn render(bytes: Option<&[u8]>) -> String {
    let Some(b) = bytes else {
        return "<null>".to_string();
    };
    if let Some(s) = printable(b) {
        return s.to_string();
    }
    match b.len() {
        4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]).to_string(),
        8 => i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).to_string(),
        _ => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// `rowtime: 2024/05/01 12:00:00.000 Z, key: k, value: {...}, partition: 0`.
pub fn record_line(
    timestamp: i64,
    key: (Option<&[u8]>, &Decoded),
    value: (Option<&[u8]>, &Decoded),
    partition: i32,
) -> String {
    let time = format_pattern(timestamp, "yyyy/MM/dd HH:mm:ss.SSS", 0)
        .unwrap_or_else(|_| timestamp.to_string());
    let side = |(bytes, decoded): (Option<&[u8]>, &Decoded)| match decoded {
        Some((_, text)) => text.clone(),
        None => render(bytes),
    };
    format!(
        "rowtime: {time} Z, key: {}, value: {}, partition: {partition}",
        side(key),
        side(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_and_renders_like_ksqldb() {
        assert_eq!(
            format_line("Value", Some(br#"{"A":1}"#), &None),
            "Value format: JSON or KAFKA_STRING"
        );
        assert_eq!(
            format_line("Key", Some(&1i32.to_be_bytes()), &None),
            "Key format: KAFKA_INT"
        );
        let avro = Some(("AVRO", r#"{"A":1}"#.to_string()));
        assert_eq!(
            format_line("Value", Some(&[0, 0, 0, 0, 1, 2]), &avro),
            "Value format: AVRO"
        );
        assert_eq!(
            record_line(0, (None, &None), (Some(&[0, 0, 0, 0, 1, 2]), &avro), 0),
            r#"rowtime: 1970/01/01 00:00:00.000 Z, key: <null>, value: {"A":1}, partition: 0"#
        );
        assert_eq!(render(Some(&7i32.to_be_bytes())), "7");
        assert_eq!(render(Some(&(-2i64).to_be_bytes())), "-2");
        assert_eq!(render(Some(&[0, 1, 2])), "0x000102");
        assert_eq!(
            record_line(1_714_564_800_000, (Some(b"k1"), &None), (None, &None), 2),
            "rowtime: 2024/05/01 12:00:00.000 Z, key: k1, value: <null>, partition: 2"
        );
    }
}

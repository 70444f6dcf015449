//! A self-describing encoding of values for state stores and their
//! changelog topics: JSON where each value keeps its SQL type, so
//! aggregate states (whose types differ from the columns') restore exactly.
//!
//! `null`, `true`/`false` and JSON strings are themselves; other values
//! are one-entry objects: `{"i":INT}`, `{"l":BIGINT}`, `{"d":"DOUBLE"}`
//! (decimal text, `NaN`, `inf`, `-inf`), `{"b":BASE64}`, `{"ts":MS}`,
//! `{"dt":DAYS}`, `{"tm":MS}`, `{"dec":"1.50"}` (with all its scale's digits), `{"m":[[K,V],...]}`,
//! `{"st":[[NAME,V],...]}`; arrays are JSON arrays.

use std::io::Write;

use serde_json::{json, Value as J};

use crate::error::{Result, SqlError};
use crate::functions::{base64_decode, base64_encode};
use crate::types::Value;

/// Encodes one value.
pub fn to_tagged(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::String(s) => J::String(s.clone()),
        Value::Int(i) => json!({"i": i}),
        Value::Bigint(i) => json!({"l": i}),
        // As text: Rust prints the shortest string that parses back to the
        // same double, which JSON numbers do not guarantee.
        Value::Double(d) => json!({"d": d.to_string()}),
        Value::Decimal(d) => json!({"dec": d.to_plain_string()}),
        Value::Bytes(b) => json!({"b": base64_encode(b)}),
        Value::Timestamp(t) => json!({"ts": t}),
        Value::Date(d) => json!({"dt": d}),
        Value::Time(t) => json!({"tm": t}),
        Value::Array(items) => J::Array(items.iter().map(to_tagged).collect()),
        Value::Map(entries) => {
            json!({"m": entries.iter().map(|(k, v)| json!([to_tagged(k), to_tagged(v)])).collect::<Vec<_>>()})
        }
        Value::Struct(fields) => {
            json!({"st": fields.iter().map(|(k, v)| json!([k, to_tagged(v)])).collect::<Vec<_>>()})
        }
    }
}

fn bad(what: &str) -> SqlError {
    SqlError::serde("STATE", format!("malformed state value: {what}"))
}

/// Decodes one value.
pub fn from_tagged(j: &J) -> Result<Value> {
    Ok(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(*b),
        J::String(s) => Value::String(s.clone()),
        J::Number(_) => return Err(bad("bare number")),
        J::Array(items) => Value::Array(items.iter().map(from_tagged).collect::<Result<_>>()?),
        J::Object(o) => {
            let (tag, v) = o.iter().next().ok_or_else(|| bad("empty object"))?;
            let int = || v.as_i64().ok_or_else(|| bad(tag));
            match tag.as_str() {
                "i" => Value::Int(int()? as i32),
                "l" => Value::Bigint(int()?),
                "d" => Value::Double(match v {
                    J::String(s) => s.parse().map_err(|_| bad("double"))?,
                    n => n.as_f64().ok_or_else(|| bad("double"))?,
                }),
                "b" => Value::Bytes(
                    v.as_str()
                        .and_then(base64_decode)
                        .ok_or_else(|| bad("bytes"))?,
                ),
                "dec" => Value::Decimal(
                    v.as_str()
                        .and_then(crate::decimal::Dec::parse)
                        .ok_or_else(|| bad("decimal"))?,
                ),
                "ts" => Value::Timestamp(int()?),
                "dt" => Value::Date(int()? as i32),
                "tm" => Value::Time(int()?),
                "m" => Value::Map(
                    v.as_array()
                        .ok_or_else(|| bad("map"))?
                        .iter()
                        .map(|e| match e.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((from_tagged(k)?, from_tagged(v)?)),
                            _ => Err(bad("map entry")),
                        })
                        .collect::<Result<_>>()?,
                ),
                "st" => Value::Struct(
                    v.as_array()
                        .ok_or_else(|| bad("struct"))?
                        .iter()
                        .map(|e| match e.as_array().map(Vec::as_slice) {
                            Some([J::String(k), v]) => Ok((k.clone(), from_tagged(v)?)),
                            _ => Err(bad("struct field")),
                        })
                        .collect::<Result<_>>()?,
                ),
                other => return Err(bad(other)),
            }
        }
    })
}

/// Encodes a list of values as bytes.
pub fn encode(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * values.len() + 2);
    encode_into(&mut out, values);
    out
}

/// Appends the encoding of a list of values: the bytes `serde_json` writes
/// for the [`to_tagged`] documents, written directly (state keys and
/// changelog values are encoded for every record an aggregation reads).
pub fn encode_into(out: &mut Vec<u8>, values: &[Value]) {
    encode_parts_into(out, &[values]);
}

/// Encodes the concatenation of lists of values, as [`encode`] encodes
/// the one list they make.
pub fn encode_parts(parts: &[&[Value]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * parts.iter().map(|p| p.len()).sum::<usize>() + 2);
    encode_parts_into(&mut out, parts);
    out
}

fn encode_parts_into(out: &mut Vec<u8>, parts: &[&[Value]]) {
    out.push(b'[');
    for (i, v) in parts.iter().flat_map(|p| p.iter()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_tagged(out, v);
    }
    out.push(b']');
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_int(out: &mut Vec<u8>, tag: &str, n: i64) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"\":");
    let _ = write!(out, "{n}");
    out.push(b'}');
}

fn write_tagged(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::String(s) => write_str(out, s),
        Value::Int(i) => write_int(out, "i", i64::from(*i)),
        Value::Bigint(i) => write_int(out, "l", *i),
        Value::Double(d) => {
            // Display's text is digits, '.', 'e', '-', "NaN" or "inf":
            // nothing JSON escapes.
            let _ = write!(out, "{{\"d\":\"{d}\"}}");
        }
        Value::Decimal(d) => {
            out.extend_from_slice(b"{\"dec\":");
            write_str(out, &d.to_plain_string());
            out.push(b'}');
        }
        Value::Bytes(b) => {
            out.extend_from_slice(b"{\"b\":");
            write_str(out, &base64_encode(b));
            out.push(b'}');
        }
        Value::Timestamp(t) => write_int(out, "ts", *t),
        Value::Date(d) => write_int(out, "dt", i64::from(*d)),
        Value::Time(t) => write_int(out, "tm", *t),
        Value::Array(items) => encode_into(out, items),
        Value::Map(entries) => {
            out.extend_from_slice(b"{\"m\":[");
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                write_tagged(out, k);
                out.push(b',');
                write_tagged(out, v);
                out.push(b']');
            }
            out.extend_from_slice(b"]}");
        }
        Value::Struct(fields) => {
            out.extend_from_slice(b"{\"st\":[");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                write_str(out, k);
                out.push(b',');
                write_tagged(out, v);
                out.push(b']');
            }
            out.extend_from_slice(b"]}");
        }
    }
}

/// Decodes bytes made by `encode`.
pub fn decode(bytes: &[u8]) -> Result<Vec<Value>> {
    let j: J = serde_json::from_slice(bytes).map_err(|e| SqlError::serde("STATE", e))?;
    match from_tagged(&j)? {
        Value::Array(items) => Ok(items),
        _ => Err(bad("not a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            any::<i32>().prop_map(Value::Int),
            any::<i64>().prop_map(Value::Bigint),
            any::<f64>()
                .prop_filter("NaN never equals itself", |d| !d.is_nan())
                .prop_map(Value::Double),
            ".*".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
            any::<i64>().prop_map(Value::Timestamp),
            any::<i32>().prop_map(Value::Date),
            (any::<i128>(), 0u32..40)
                .prop_map(|(u, s)| Value::Decimal(crate::decimal::Dec::new(u, s))),
            any::<i64>().prop_map(Value::Time),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner.clone()), 0..3)
                    .prop_map(Value::Map),
                proptest::collection::vec(("[A-Z]{1,3}", inner), 0..3).prop_map(Value::Struct),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips(values in proptest::collection::vec(value(), 0..5)) {
            prop_assert_eq!(decode(&encode(&values)).unwrap(), values);
        }

        /// The direct writer gives the bytes of the documents (existing
        /// changelogs and state keys stay readable and equal).
        #[test]
        fn writes_the_documents_bytes(values in proptest::collection::vec(value(), 0..5)) {
            let doc = J::Array(values.iter().map(to_tagged).collect());
            prop_assert_eq!(encode(&values), serde_json::to_vec(&doc).unwrap());
        }
    }
}

//! JSON rows without an intermediate document: records are read field by
//! field straight into the declared columns (serde_json's streaming
//! deserializer), and rows are written column by column.
//!
//! Both give exactly what going through a `serde_json::Value` gives (the
//! per-record cost the profile showed): the same column matching (exact
//! name first, else case-insensitively, the first such key in sorted
//! order), the same conversions ([`from_json`]) and errors, and objects
//! written with their keys sorted, as a `serde_json::Map` orders them.
//! Columns a query does not read are still type-checked, so a record is
//! skipped or processed exactly as before; only their values are not kept.
//!
//! DECIMALs are the exception to "as a document would": serde_json's
//! numbers are doubles, so a DECIMAL's number, at the top or nested in
//! structs, arrays and maps, is read from its text ([`exact_tree`]) and
//! written with its scale (`1.10` for `DECIMAL(4, 2)`), as ksqlDB's
//! exact-BigDecimal JSON does, never through a double.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value as J;

use crate::error::{Result, SqlError};
use crate::format::{from_json, to_json};
use crate::types::{SqlType, Value};

/// Where a JSON key goes: the column it names exactly, and the columns
/// it names case-insensitively only.
#[derive(Default)]
struct Target {
    exact: Option<usize>,
    inexact: Vec<usize>,
}

/// What a column received: a value by its exact name, or the
/// case-insensitive match whose key sorts first.
enum Slot {
    Empty,
    Exact(J),
    Inexact(String, J),
}

struct KeySeed<'a> {
    columns: &'a [(String, SqlType)],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = (Target, Option<String>);

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = (Target, Option<String>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, k: &str) -> std::result::Result<Self::Value, E> {
        let mut t = Target::default();
        for (i, (name, _)) in self.columns.iter().enumerate() {
            if name == k {
                t.exact = Some(i);
            } else if name.eq_ignore_ascii_case(k) {
                t.inexact.push(i);
            }
        }
        // The key itself is kept only to order case-insensitive matches.
        let key = (!t.inexact.is_empty()).then(|| k.to_string());
        Ok((t, key))
    }
}

/// The top level of a record: null, an object's fields, or anything else.
enum Top {
    Null,
    Fields(Vec<Slot>),
    NotObject,
}

struct RowSeed<'a> {
    columns: &'a [(String, SqlType)],
    keep: Option<&'a [bool]>,
    /// Some column holds a DECIMAL (only then are values' texts kept).
    decimals: bool,
}

impl RowSeed<'_> {
    /// A column whose value is not kept and that accepts any JSON (a
    /// STRING keeps the text of other values) needs no reading.
    fn skippable(&self, i: usize) -> bool {
        self.keep
            .is_some_and(|k| !k.get(i).copied().unwrap_or(true))
            && self.columns[i].1 == SqlType::String
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Top, E> {
        Ok(Top::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Top, E> {
        Ok(Top::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<Top, E> {
        Ok(Top::NotObject)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<Top, E> {
        Ok(Top::NotObject)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<Top, E> {
        Ok(Top::NotObject)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<Top, E> {
        Ok(Top::NotObject)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<Top, E> {
        Ok(Top::NotObject)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::NotObject)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Top, A::Error> {
        let mut slots: Vec<Slot> = self.columns.iter().map(|_| Slot::Empty).collect();
        while let Some((t, key)) = map.next_key_seed(KeySeed {
            columns: self.columns,
        })? {
            let wanted = t
                .exact
                .iter()
                .chain(&t.inexact)
                .any(|&i| !self.skippable(i));
            if !wanted {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // The column the key names (exactly, else the first one) says
            // which numbers are DECIMALs, to be kept as their text.
            let decimal = self.decimals
                && t.exact
                    .or(t.inexact.first().copied())
                    .is_some_and(|i| self.columns[i].1.has_decimal());
            let v: J = if decimal {
                let raw: &RawValue = map.next_value()?;
                let i = t.exact.or(t.inexact.first().copied()).unwrap_or_default();
                exact_tree(raw.get(), &self.columns[i].1).map_err(serde::de::Error::custom)?
            } else {
                map.next_value()?
            };
            for &i in &t.inexact {
                let k = key.as_deref().unwrap_or_default();
                match &slots[i] {
                    Slot::Exact(_) => {}
                    // A repeated key replaces its value, as in a map.
                    Slot::Inexact(prev, _) if prev.as_str() < k => {}
                    _ => slots[i] = Slot::Inexact(k.to_string(), v.clone()),
                }
            }
            if let Some(i) = t.exact {
                slots[i] = Slot::Exact(v);
            }
        }
        Ok(Top::Fields(slots))
    }
}

/// JSON text as a document for [`from_json`] to read as `ty`, with each
/// number where `ty` has a DECIMAL as a string of its exact text (which
/// `from_json` reads as the decimal's digits, as it reads strings).
/// Object keys pick their field's type as [`from_json`] matches them:
/// the field of that name, else the first of that name in any case.
pub fn exact_tree(text: &str, ty: &SqlType) -> serde_json::Result<J> {
    if !ty.has_decimal() {
        return serde_json::from_str(text);
    }
    let t = text.trim();
    match (ty, t.as_bytes().first()) {
        (SqlType::Decimal(..), Some(b'-' | b'0'..=b'9')) => {
            // Checked as JSON, kept as text.
            serde_json::from_str::<IgnoredAny>(t)?;
            Ok(J::String(t.to_string()))
        }
        (SqlType::Array(elem), Some(b'[')) => {
            let items: Vec<&RawValue> = serde_json::from_str(t)?;
            items
                .iter()
                .map(|i| exact_tree(i.get(), elem))
                .collect::<serde_json::Result<_>>()
                .map(J::Array)
        }
        (SqlType::Map(_, vt), Some(b'{')) => {
            let entries: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(t)?;
            entries
                .into_iter()
                .map(|(k, v)| Ok((k, exact_tree(v.get(), vt)?)))
                .collect::<serde_json::Result<_>>()
                .map(J::Object)
        }
        (SqlType::Struct(fields), Some(b'{')) => {
            let entries: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(t)?;
            entries
                .into_iter()
                .map(|(k, v)| {
                    let field = fields
                        .iter()
                        .find(|(n, _)| *n == k)
                        .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(&k)));
                    let v = match field {
                        Some((_, ft)) => exact_tree(v.get(), ft)?,
                        None => serde_json::from_str(v.get())?,
                    };
                    Ok((k, v))
                })
                .collect::<serde_json::Result<_>>()
                .map(J::Object)
        }
        _ => serde_json::from_str(t),
    }
}

/// A JSON value read as `ty`, moving strings rather than copying them.
fn convert(j: J, ty: &SqlType) -> Result<Value> {
    match (j, ty) {
        (J::String(s), SqlType::String) => Ok(Value::String(s)),
        (j, ty) => from_json(&j, ty),
    }
}

/// Reads a JSON record into `columns` (an object of their names; `null`
/// is `None`). With `keep`, columns marked `false` are checked but come
/// back NULL.
pub fn decode_row(
    columns: &[(String, SqlType)],
    keep: Option<&[bool]>,
    bytes: &[u8],
) -> Result<Option<Vec<Value>>> {
    let bad = |e: serde_json::Error| SqlError::serde("JSON", e);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let top = serde::Deserializer::deserialize_any(
        &mut de,
        RowSeed {
            columns,
            keep,
            decimals: columns.iter().any(|(_, t)| t.has_decimal()),
        },
    )
    .map_err(bad)?;
    de.end().map_err(bad)?;
    let slots = match top {
        Top::Null => return Ok(None),
        Top::NotObject => return Err(SqlError::serde("JSON", "expected a JSON object")),
        Top::Fields(slots) => slots,
    };
    let mut out = Vec::with_capacity(columns.len());
    for (i, (slot, (_, ty))) in slots.into_iter().zip(columns).enumerate() {
        let v = match slot {
            Slot::Empty => Value::Null,
            Slot::Exact(j) | Slot::Inexact(_, j) => convert(j, ty)?,
        };
        let kept = keep.is_none_or(|k| k.get(i).copied().unwrap_or(true));
        out.push(if kept { v } else { Value::Null });
    }
    Ok(Some(out))
}

/// Writes a row as a JSON object of `columns`, keys in sorted order.
pub fn encode_row(columns: &[(String, SqlType)], values: &[Value]) -> Vec<u8> {
    let mut order: Vec<usize> = (0..columns.len().min(values.len())).collect();
    order.sort_by(|&a, &b| columns[a].0.cmp(&columns[b].0));
    let mut out = Vec::with_capacity(16 * order.len() + 2);
    out.push(b'{');
    for (n, &i) in order.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, columns[i].0.as_str());
        out.push(b':');
        write_value(&mut out, &values[i]);
    }
    out.push(b'}');
    out
}

/// A value's JSON text (see [`write_value`]).
pub fn value_text(v: &Value) -> String {
    let mut out = Vec::with_capacity(16);
    write_value(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// Values as the text of a JSON array, as ksqlDB's REST API writes rows:
/// like [`write_value`] but TIMESTAMP, DATE and TIME at any depth as
/// their SQL text (`2024-01-02T03:04:05.006`, `2024-01-02`, `03:04:05`).
pub fn array_text(values: &[Value]) -> String {
    let mut out = Vec::with_capacity(16 * values.len() + 2);
    write_array(&mut out, values, Temporal::Text);
    String::from_utf8(out).unwrap_or_default()
}

/// How TIMESTAMP, DATE and TIME values are written: topics carry them as
/// numbers, the REST API as text.
#[derive(Clone, Copy, PartialEq)]
enum Temporal {
    Number,
    Text,
}

fn write_array(out: &mut Vec<u8>, items: &[Value], temporal: Temporal) {
    out.push(b'[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_with(out, item, temporal);
    }
    out.push(b']');
}

/// One value as [`to_json`] maps it, scalars without a JSON tree and
/// DECIMALs as exact numbers.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    write_with(out, v, Temporal::Number)
}

fn write_with(out: &mut Vec<u8>, v: &Value, temporal: Temporal) {
    let _ = match v {
        Value::Null => serde_json::to_writer(&mut *out, &()),
        Value::Boolean(b) => serde_json::to_writer(&mut *out, b),
        Value::Int(i) => serde_json::to_writer(&mut *out, i),
        Value::Timestamp(_) | Value::Date(_) | Value::Time(_) if temporal == Temporal::Text => {
            serde_json::to_writer(&mut *out, &v.to_sql_string())
        }
        Value::Bigint(i) | Value::Timestamp(i) | Value::Time(i) => {
            serde_json::to_writer(&mut *out, i)
        }
        Value::Date(d) => serde_json::to_writer(&mut *out, d),
        Value::Double(d) if d.is_finite() => serde_json::to_writer(&mut *out, d),
        Value::String(s) => serde_json::to_writer(&mut *out, s.as_str()),
        // A number with the scale's digits, as ksqlDB's JSON writer
        // (exact BigDecimals) writes it.
        Value::Decimal(d) => {
            out.extend_from_slice(d.to_plain_string().as_bytes());
            Ok(())
        }
        Value::Array(items) => {
            write_array(out, items, temporal);
            Ok(())
        }
        // Fields and map keys sorted, the last of equal keys kept, as a
        // `serde_json::Map` would have them.
        Value::Struct(fields) => {
            let sorted: std::collections::BTreeMap<&str, &Value> =
                fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
            write_object(out, sorted.into_iter(), temporal);
            Ok(())
        }
        Value::Map(entries) => {
            let sorted: std::collections::BTreeMap<String, &Value> = entries
                .iter()
                .map(|(k, v)| (k.to_sql_string(), v))
                .collect();
            write_object(out, sorted.iter().map(|(k, v)| (k.as_str(), *v)), temporal);
            Ok(())
        }
        other => serde_json::to_writer(&mut *out, &to_json(other)),
    };
}

fn write_object<'a>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'a str, &'a Value)>,
    temporal: Temporal,
) {
    out.push(b'{');
    for (n, (k, v)) in fields.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        write_with(out, v, temporal);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Dec;

    fn cols() -> Vec<(String, SqlType)> {
        [
            ("ID", SqlType::Bigint),
            ("NAME", SqlType::String),
            ("AMOUNT", SqlType::Double),
            ("TAGS", SqlType::Array(Box::new(SqlType::Int))),
            ("b", SqlType::Int),
            ("B", SqlType::String),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
    }

    /// The reading every format used before: a `serde_json::Value` first.
    fn through_document(c: &[(String, SqlType)], bytes: &[u8]) -> Result<Option<Vec<Value>>> {
        let json: J = serde_json::from_slice(bytes).map_err(|e| SqlError::serde("JSON", e))?;
        if json.is_null() {
            return Ok(None);
        }
        let J::Object(obj) = json else {
            return Err(SqlError::serde("JSON", "expected a JSON object"));
        };
        c.iter()
            .map(|(col, ty)| {
                let v = obj.get(col).or_else(|| {
                    obj.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(col))
                        .map(|(_, v)| v)
                });
                v.map_or(Ok(Value::Null), |v| from_json(v, ty))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    #[test]
    fn reads_as_the_document_did() {
        let c = cols();
        for text in [
            r#"{"ID":1,"NAME":"a","AMOUNT":2.5,"TAGS":[1,2],"b":3,"B":"x"}"#,
            r#"{"id":"7","name":12,"amount":1,"Tags":null,"extra":{"x":[1,{}]}}"#,
            r#"{"Id":1,"iD":2,"NAME":"first","NAME":"second"}"#,
            r#"{"b":1,"B":2}"#,
            r#"{"B":"only the upper one"}"#,
            r#"{"NAME":{"nested":true},"AMOUNT":"3.25"}"#,
            r#"{"ID":"x"}"#,
            r#"{"TAGS":{"a":1}}"#,
            r#"{"NAME":"\u00e9\"q"}"#,
            "null",
            "[1,2]",
            "3",
            "{}",
            r#"{"ID":1"#,
            r#"{"ID":1} x"#,
        ] {
            let want = through_document(&c, text.as_bytes()).map_err(|e| e.to_string());
            let got = decode_row(&c, None, text.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn columns_not_kept_are_checked_and_null() {
        let c = cols();
        let keep = [true, false, false, true, true, true];
        let row = decode_row(&c, Some(&keep), br#"{"ID":1,"NAME":"a","AMOUNT":2}"#).unwrap();
        assert_eq!(
            row,
            Some(vec![
                Value::Bigint(1),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ])
        );
        // A bad value in a column not kept still makes the record bad.
        assert!(decode_row(&c, Some(&keep), br#"{"AMOUNT":"x"}"#).is_err());
    }

    #[test]
    fn decimals_are_read_and_written_without_a_double() {
        let c: Vec<(String, SqlType)> = vec![
            ("D".into(), SqlType::Decimal(20, 2)),
            ("d".into(), SqlType::Decimal(38, 20)),
            ("X".into(), SqlType::Double),
            (
                "S".into(),
                SqlType::Struct(vec![("E".into(), SqlType::Decimal(4, 3))]),
            ),
        ];
        // 19 and 21 significant digits: a double keeps about 16.
        let text =
            br#"{"D":12345678901234567.89,"d":0.12345678901234567891,"X":0.1,"S":{"E":1.5}}"#;
        let row = decode_row(&c, None, text).unwrap().unwrap();
        let dec = |v: &Value| match v {
            Value::Decimal(d) => d.to_plain_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(dec(&row[0]), "12345678901234567.89");
        assert_eq!(dec(&row[1]), "0.12345678901234567891");
        assert_eq!(row[2], Value::Double(0.1));
        // Strings, exponents and fewer digits than the scale.
        let row = decode_row(&c, None, br#"{"D":"98765432109876543.21","d":1.5E-19}"#)
            .unwrap()
            .unwrap();
        assert_eq!(dec(&row[0]), "98765432109876543.21");
        assert_eq!(dec(&row[1]), "0.00000000000000000015");
        // Too many digits for the type: the conversion's error, as before.
        assert!(decode_row(&c, None, br#"{"D":1234567890123456789.5}"#).is_err());
        assert!(decode_row(&c, None, br#"{"D":true}"#).is_err());
        // Written as numbers with the scale's digits, nested ones too.
        let out = vec![
            Value::Decimal(
                Dec::parse("12345678901234567.8")
                    .unwrap()
                    .fit(20, 2)
                    .unwrap(),
            ),
            Value::Decimal(Dec::parse("-0.5").unwrap()),
            Value::Null,
            Value::Struct(vec![(
                "E".into(),
                Value::Array(vec![Value::Decimal(Dec::parse("1.230").unwrap())]),
            )]),
        ];
        assert_eq!(
            String::from_utf8(encode_row(&c, &out)).unwrap(),
            r#"{"D":12345678901234567.80,"S":{"E":[1.230]},"X":null,"d":-0.5}"#
        );
    }

    #[test]
    fn nested_decimals_keep_their_digits() {
        let d = || SqlType::Decimal(20, 2);
        let c: Vec<(String, SqlType)> = vec![
            (
                "S".into(),
                SqlType::Struct(vec![("E".into(), d()), ("N".into(), SqlType::Int)]),
            ),
            ("A".into(), SqlType::Array(Box::new(d()))),
            (
                "M".into(),
                SqlType::Map(Box::new(SqlType::String), Box::new(d())),
            ),
            (
                "X".into(),
                SqlType::Array(Box::new(SqlType::Struct(vec![(
                    "Y".into(),
                    SqlType::Map(Box::new(SqlType::String), Box::new(d())),
                )]))),
            ),
        ];
        let text = br#"{"S":{"e":12345678901234567.89,"N":1.5},"A":[12345678901234567.8,null,"1"],
            "M":{"k":-12345678901234567.89},"X":[{"Y":{"z":1.5E1}}]}"#;
        let row = decode_row(&c, None, text).unwrap().unwrap();
        let dec = |t: &str| Value::Decimal(Dec::parse(t).unwrap().fit(20, 2).unwrap());
        assert_eq!(
            row[0],
            Value::Struct(vec![
                ("E".into(), dec("12345678901234567.89")),
                ("N".into(), Value::Int(1))
            ])
        );
        assert_eq!(
            row[1],
            Value::Array(vec![dec("12345678901234567.80"), Value::Null, dec("1")])
        );
        assert_eq!(
            row[2],
            Value::Map(vec![(
                Value::String("k".into()),
                dec("-12345678901234567.89")
            )])
        );
        assert_eq!(
            row[3],
            Value::Array(vec![Value::Struct(vec![(
                "Y".into(),
                Value::Map(vec![(Value::String("z".into()), dec("15"))])
            )])])
        );
        // Written back with the scale's digits.
        assert_eq!(
            String::from_utf8(encode_row(&c, &row)).unwrap(),
            r#"{"A":[12345678901234567.80,null,1.00],"M":{"k":-12345678901234567.89},"#.to_string()
                + r#""S":{"E":12345678901234567.89,"N":1},"X":[{"Y":{"z":15.00}}]}"#
        );
        assert_eq!(array_text(&row[1..2]), "[[12345678901234567.80,null,1.00]]");
        // Bad JSON and values that do not fit are still errors.
        assert!(decode_row(&c, None, br#"{"A":[1.5.5]}"#).is_err());
        assert!(decode_row(&c, None, br#"{"A":[1234567890123456789.5]}"#).is_err());
        assert!(decode_row(&c, None, br#"{"S":{"E":true}}"#).is_err());
    }

    #[test]
    fn writes_as_the_document_did() {
        let c = cols();
        let rows = [
            vec![
                Value::Bigint(-3),
                Value::String("é \"q\"\n".into()),
                Value::Double(1.0),
                Value::Array(vec![Value::Int(1), Value::Null]),
                Value::Null,
                Value::String(String::new()),
            ],
            vec![
                Value::Timestamp(5),
                Value::Null,
                Value::Double(f64::NAN),
                Value::Null,
                Value::Int(i32::MIN),
                Value::Boolean(true),
            ],
        ];
        for row in rows {
            let mut obj = serde_json::Map::new();
            for ((n, _), v) in c.iter().zip(&row) {
                obj.insert(n.clone(), to_json(v));
            }
            let want = serde_json::to_vec(&J::Object(obj)).unwrap();
            assert_eq!(
                String::from_utf8(encode_row(&c, &row)).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }
}

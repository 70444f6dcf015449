//! JSON written byte for byte as Kafka Connect's Jackson writes it: object
//! keys in insertion order, no spaces, Java's number formatting and
//! Jackson's string escapes. Kafka's internal topics and JsonConverter's
//! output are compared byte for byte against a real worker, so the runtime
//! writes all its JSON through this.

use std::fmt::Write as _;

/// A JSON tree whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A double, printed as Java's `Double.toString`.
    Double(f64),
    /// A float, printed as Java's `Float.toString`.
    Float(f32),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in order.
    Obj(Vec<(String, Json)>),
    /// Text this module's writer already wrote (a converted value placed
    /// in a tree), copied as is.
    Raw(String),
}

impl Json {
    /// An object from `(key, value)` pairs.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    /// The compact text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Appends the compact text to `out`.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Double(d) => java_double(out, *d),
            Json::Float(f) => java_float(out, *f),
            Json::Str(s) => write_str(out, s),
            Json::Raw(text) => out.push_str(text),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// From a parsed serde value (object keys in serde's order).
    pub fn from_serde(v: &serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Json::Int(i),
                None => Json::Double(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Json::Str(s.clone()),
            serde_json::Value::Array(a) => Json::Arr(a.iter().map(Json::from_serde).collect()),
            serde_json::Value::Object(o) => Json::Obj(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_serde(v)))
                    .collect(),
            ),
        }
    }
}

/// Jackson's escaping: `"`, `\`, the short escapes, other control
/// characters as `\u00XX` with upper-case hex; everything else as UTF-8.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    // Runs without escapes are copied whole; every escaped character is
    // ASCII, so each cut falls on a character boundary.
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if short.is_empty() {
            let _ = write!(out, "\\u{:04X}", b);
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Java's `Double.toString`: plain between 10^-3 and 10^7, otherwise
/// `d.dddE±n`; always a fraction digit; `NaN` and `Infinity` as Java
/// spells them (Jackson writes those as strings only when told to, and
/// Connect never produces them in its own records).
pub(crate) fn java_double(out: &mut String, d: f64) {
    java_number(
        out,
        d.is_nan(),
        d.is_infinite(),
        d < 0.0,
        &format!("{d:e}"),
        {
            let a = d.abs();
            (1e-3..1e7).contains(&a)
        },
    );
}

pub(crate) fn java_float(out: &mut String, f: f32) {
    java_number(
        out,
        f.is_nan(),
        f.is_infinite(),
        f < 0.0,
        &format!("{f:e}"),
        {
            let a = f.abs();
            (1e-3..1e7).contains(&a)
        },
    );
}

/// Formats from Rust's shortest scientific form (`1.2345e3`).
fn java_number(out: &mut String, nan: bool, inf: bool, neg: bool, sci: &str, plain: bool) {
    if nan {
        out.push_str("NaN");
        return;
    }
    if inf {
        out.push_str(if neg { "-Infinity" } else { "Infinity" });
        return;
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if digits.chars().all(|c| c == '0') {
        out.push_str("0.0");
        return;
    }
    if plain {
        // The decimal point sits after digit `exp + 1`.
        let point = exp + 1;
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..(-point) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                for _ in digits.len()..point {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        let _ = write!(out, "E{exp}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> String {
        Json::Double(x).to_text()
    }

    #[test]
    fn doubles_print_as_java() {
        assert_eq!(d(1.0), "1.0");
        assert_eq!(d(1.5), "1.5");
        assert_eq!(d(100.0), "100.0");
        assert_eq!(d(-0.25), "-0.25");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.0001), "1.0E-4");
        assert_eq!(d(1e7), "1.0E7");
        assert_eq!(d(12345678.9), "1.23456789E7");
        assert_eq!(d(9999999.0), "9999999.0");
        assert_eq!(d(0.0), "0.0");
        assert_eq!(Json::Float(1.1).to_text(), "1.1");
    }

    #[test]
    fn strings_and_objects_print_as_jackson() {
        let j = Json::obj([
            ("b", Json::str("a\"b\\c\n\u{1}/é")),
            (
                "a",
                Json::Arr(vec![Json::Int(1), Json::Null, Json::Bool(true)]),
            ),
        ]);
        assert_eq!(
            j.to_text(),
            r#"{"b":"a\"b\\c\n\u0001/é","a":[1,null,true]}"#
        );
    }
}

/// A parsed JSON document whose objects keep their document order.
///
/// The workspace's serde_json sorts object keys (no `preserve_order`), which
/// loses the order Kafka keeps for schema parameters; the few readers where
/// that order shows parse the schema part of a document as this instead.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<Doc>),
    /// Keys in document order; a repeated key keeps its last value, as
    /// serde_json's and Jackson's trees do.
    Obj(Vec<(String, Doc)>),
}

impl Doc {
    /// Parses `text`.
    pub fn parse(text: &str) -> serde_json::Result<Doc> {
        serde_json::from_str(text)
    }

    /// The value of `key`, for an object.
    pub fn get(&self, key: &str) -> Option<&Doc> {
        self.as_object()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    pub fn as_object(&self) -> Option<&[(String, Doc)]> {
        match self {
            Doc::Obj(pairs) => Some(pairs),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Doc]> {
        match self {
            Doc::Arr(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Doc::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Doc::Num(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }

    /// The compact text, keys in document order (numbers and strings as
    /// serde_json writes them).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
        match self {
            Doc::Null => out.push_str("null"),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Num(n) => out.push_str(&n.to_string()),
            Doc::Str(s) => out.push_str(&quoted(s)),
            Doc::Arr(items) => {
                out.push('[');
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    d.write(out);
                }
                out.push(']');
            }
            Doc::Obj(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quoted(k));
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// As a serde tree (keys sorted again).
    pub fn to_serde(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Doc::Null => J::Null,
            Doc::Bool(b) => J::Bool(*b),
            Doc::Num(n) => J::Number(n.clone()),
            Doc::Str(s) => J::String(s.clone()),
            Doc::Arr(items) => J::Array(items.iter().map(Doc::to_serde).collect()),
            Doc::Obj(pairs) => J::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_serde()))
                    .collect(),
            ),
        }
    }

    /// Every object under the key `key`, anywhere in the document, in
    /// document order.
    pub fn objects_under<'a>(&'a self, key: &str, out: &mut Vec<&'a [(String, Doc)]>) {
        match self {
            Doc::Arr(items) => items.iter().for_each(|d| d.objects_under(key, out)),
            Doc::Obj(pairs) => {
                for (k, v) in pairs {
                    if k == key {
                        if let Some(o) = v.as_object() {
                            out.push(o);
                        }
                    }
                    v.objects_under(key, out);
                }
            }
            _ => {}
        }
    }
}

/// The document order of the string-valued objects found under one key
/// (such as `connect.parameters`) of a schema text, for readers that walk
/// the text as a serde tree: [`ParamOrder::ordered`] gives a sorted object's
/// entries back in the order the text had them.
#[derive(Debug, Default, Clone)]
pub struct ParamOrder {
    seen: Vec<Vec<(String, String)>>,
}

impl ParamOrder {
    /// Adds the objects under `key` in `text` (nothing if it does not
    /// parse; the caller's own parse reports that). Objects of one entry
    /// have no order to keep and are skipped.
    pub fn add(&mut self, text: &str, key: &str) {
        let Ok(doc) = Doc::parse(text) else {
            return;
        };
        let mut objs = Vec::new();
        doc.objects_under(key, &mut objs);
        self.seen
            .extend(objs.into_iter().filter(|o| o.len() > 1).filter_map(|o| {
                o.iter()
                    .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect::<Option<Vec<_>>>()
            }));
    }

    /// `obj`'s entries in the order of the first object of the text with
    /// the same entries (serde's order if there is none, or a value is not
    /// a string).
    pub fn ordered<'a>(
        &self,
        obj: &'a serde_json::Map<String, serde_json::Value>,
    ) -> Vec<(&'a String, &'a serde_json::Value)> {
        let same = |o: &Vec<(String, String)>| {
            o.len() == obj.len()
                && o.iter()
                    .all(|(k, v)| obj.get(k).and_then(|x| x.as_str()) == Some(v.as_str()))
        };
        match self.seen.iter().find(|o| same(o)) {
            Some(order) => order
                .iter()
                .filter_map(|(k, _)| obj.get_key_value(k))
                .collect(),
            None => obj.iter().collect(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Doc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> serde::de::Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Doc, E> {
        Ok(Doc::Num(i.into()))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Doc, E> {
        Ok(Doc::Num(u.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Doc, E> {
        Ok(serde_json::Number::from_f64(f).map_or(Doc::Null, Doc::Num))
    }
    fn visit_str<E>(self, s: &str) -> Result<Doc, E> {
        Ok(Doc::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Doc, E> {
        Ok(Doc::Str(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut items = Vec::new();
        while let Some(d) = seq.next_element()? {
            items.push(d);
        }
        Ok(Doc::Arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut pairs: Vec<(String, Doc)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Doc>()? {
            match pairs.iter_mut().find(|(pk, _)| *pk == k) {
                Some(slot) => slot.1 = v,
                None => pairs.push((k, v)),
            }
        }
        Ok(Doc::Obj(pairs))
    }
}

/// JsonConverter's envelope as read in one pass: the schema in document
/// order, the payload as a serde tree, and how many other keys there were.
#[derive(Debug, Default)]
pub struct Envelope {
    /// False when the document is not an object.
    pub is_object: bool,
    pub schema: Option<Doc>,
    pub payload: Option<serde_json::Value>,
    pub others: usize,
}

impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Envelope, D::Error> {
        d.deserialize_any(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Envelope, E> {
        Ok(Envelope::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Envelope, E> {
        Ok(Envelope::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Envelope, E> {
        Ok(Envelope::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Envelope, E> {
        Ok(Envelope::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Envelope, E> {
        Ok(Envelope::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Envelope, E> {
        Ok(Envelope::default())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Envelope, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Envelope::default())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut env = Envelope {
            is_object: true,
            ..Envelope::default()
        };
        let mut other_keys: Vec<String> = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "schema" => env.schema = Some(map.next_value()?),
                "payload" => env.payload = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if !other_keys.contains(&k) {
                        other_keys.push(k);
                    }
                }
            }
        }
        env.others = other_keys.len();
        Ok(env)
    }
}

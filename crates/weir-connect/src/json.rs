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
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Java's `Double.toString`: plain between 10^-3 and 10^7, otherwise
/// `d.dddE±n`; always a fraction digit; `NaN` and `Infinity` as Java
/// spells them (Jackson writes those as strings only when told to, and
/// Connect never produces them in its own records).
fn java_double(out: &mut String, d: f64) {
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

fn java_float(out: &mut String, f: f32) {
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

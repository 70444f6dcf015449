//! SQL types and values, with ksqlDB's names and conversions.

use std::cmp::Ordering;
use std::fmt;

use crate::decimal::Dec;

/// A ksqlDB column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    Boolean,
    Int,
    Bigint,
    Double,
    /// `DECIMAL(precision, scale)`.
    Decimal(u32, u32),
    String,
    Bytes,
    Timestamp,
    Date,
    Time,
    Array(Box<SqlType>),
    Map(Box<SqlType>, Box<SqlType>),
    Struct(Vec<(String, SqlType)>),
}

impl SqlType {
    /// Whether the type is or holds one that `wanted` picks.
    pub fn mentions(&self, wanted: &dyn Fn(&SqlType) -> bool) -> bool {
        wanted(self)
            || match self {
                SqlType::Array(t) => t.mentions(wanted),
                SqlType::Map(_, v) => v.mentions(wanted),
                SqlType::Struct(f) => f.iter().any(|(_, t)| t.mentions(wanted)),
                _ => false,
            }
    }

    /// Whether the type is or holds a DECIMAL.
    pub fn has_decimal(&self) -> bool {
        self.mentions(&|t| matches!(t, SqlType::Decimal(..)))
    }

    /// Whether values of this type are numbers.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            SqlType::Int | SqlType::Bigint | SqlType::Double | SqlType::Decimal(..)
        )
    }

    /// The rank of a numeric type in widening order (INT < BIGINT <
    /// DECIMAL < DOUBLE).
    fn numeric_rank(&self) -> Option<u8> {
        match self {
            SqlType::Int => Some(0),
            SqlType::Bigint => Some(1),
            SqlType::Decimal(..) => Some(2),
            SqlType::Double => Some(3),
            _ => None,
        }
    }

    /// An exact numeric type as the DECIMAL that holds it (ksqlDB: INT is
    /// `DECIMAL(10, 0)`, BIGINT `DECIMAL(19, 0)`).
    pub fn as_decimal(&self) -> Option<(u32, u32)> {
        match self {
            SqlType::Int => Some((10, 0)),
            SqlType::Bigint => Some((19, 0)),
            SqlType::Decimal(p, s) => Some((*p, *s)),
            _ => None,
        }
    }

    /// The wider of two numeric types, as arithmetic promotes them; two
    /// exact types of which one is DECIMAL widen to a DECIMAL holding both.
    pub fn wider(a: &SqlType, b: &SqlType) -> Option<SqlType> {
        let (ra, rb) = (a.numeric_rank()?, b.numeric_rank()?);
        if ra.max(rb) == 2 {
            let ((p1, s1), (p2, s2)) = (a.as_decimal()?, b.as_decimal()?);
            let scale = s1.max(s2);
            return Some(SqlType::Decimal((p1 - s1).max(p2 - s2) + scale, scale));
        }
        Some(if ra >= rb { a.clone() } else { b.clone() })
    }

    /// Whether a value of `self` may be used where `to` is expected without
    /// an explicit cast (ksqlDB's implicit numeric widening).
    pub fn widens_to(&self, to: &SqlType) -> bool {
        if self == to {
            return true;
        }
        match (self.numeric_rank(), to.numeric_rank()) {
            // A DECIMAL target takes what fits its digits on both sides of
            // the point (ksqlDB's `DecimalUtil.canImplicitlyCast`).
            (Some(a), Some(2)) if a <= 2 => match (self.as_decimal(), to.as_decimal()) {
                (Some((p1, s1)), Some((p2, s2))) => s1 <= s2 && p1 - s1 <= p2 - s2,
                _ => false,
            },
            (Some(a), Some(b)) => a <= b,
            _ => match (self, to) {
                (SqlType::Array(a), SqlType::Array(b)) => a.widens_to(b),
                (SqlType::Map(ak, av), SqlType::Map(bk, bv)) => {
                    ak.widens_to(bk) && av.widens_to(bv)
                }
                _ => false,
            },
        }
    }

    /// ksqlDB's schema JSON for REST answers: `{"type", "fields", "memberSchema"}`.
    pub fn rest_schema(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            SqlType::Array(t) => {
                json!({"type": "ARRAY", "fields": null, "memberSchema": t.rest_schema()})
            }
            SqlType::Map(_, v) => {
                json!({"type": "MAP", "fields": null, "memberSchema": v.rest_schema()})
            }
            SqlType::Struct(fields) => json!({
                "type": "STRUCT",
                "fields": fields.iter().map(|(n, t)| json!({"name": n, "schema": t.rest_schema()})).collect::<Vec<_>>(),
                "memberSchema": null,
            }),
            SqlType::Decimal(p, s) => json!({
                "type": "DECIMAL", "fields": null, "memberSchema": null,
                "parameters": {"precision": p, "scale": s},
            }),
            t => json!({"type": t.rest_name(), "fields": null, "memberSchema": null}),
        }
    }

    /// The type's name in REST schemas (`INTEGER` rather than `INT`).
    pub fn rest_name(&self) -> &'static str {
        match self {
            SqlType::Boolean => "BOOLEAN",
            SqlType::Int => "INTEGER",
            SqlType::Bigint => "BIGINT",
            SqlType::Double => "DOUBLE",
            SqlType::Decimal(..) => "DECIMAL",
            SqlType::String => "STRING",
            SqlType::Bytes => "BYTES",
            SqlType::Timestamp => "TIMESTAMP",
            SqlType::Date => "DATE",
            SqlType::Time => "TIME",
            SqlType::Array(_) => "ARRAY",
            SqlType::Map(..) => "MAP",
            SqlType::Struct(_) => "STRUCT",
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
            SqlType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            SqlType::Struct(fields) => {
                write!(f, "STRUCT<")?;
                for (i, (n, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "`{n}` {t}")?;
                }
                write!(f, ">")
            }
            t => f.write_str(t.rest_name()),
        }
    }
}

/// A value of some `SqlType`, or NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i32),
    Bigint(i64),
    Double(f64),
    Decimal(Dec),
    String(String),
    Bytes(Vec<u8>),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Days since the Unix epoch.
    Date(i32),
    /// Milliseconds since midnight.
    Time(i64),
    Array(Vec<Value>),
    /// Entries in insertion order, keys unique.
    Map(Vec<(Value, Value)>),
    /// Field values in the order of the struct type's fields.
    Struct(Vec<(String, Value)>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an i64 when it is an integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::Bigint(v) | Value::Timestamp(v) | Value::Time(v) => Some(*v),
            Value::Date(v) => Some(i64::from(*v)),
            _ => None,
        }
    }

    /// The value as an f64 when it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(f64::from(*v)),
            Value::Bigint(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal(d) => Some(d.to_f64()),
            _ => None,
        }
    }

    /// The value as a decimal when it is an exact number.
    pub fn as_dec(&self) -> Option<Dec> {
        match self {
            Value::Int(v) => Some(Dec::from_int(i64::from(*v))),
            Value::Bigint(v) => Some(Dec::from_int(*v)),
            Value::Decimal(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// SQL comparison; `None` when either side is NULL or they do not compare.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => None,
            (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
            (Value::Double(_), _) | (_, Value::Double(_)) => {
                self.as_f64()?.partial_cmp(&other.as_f64()?)
            }
            (Value::Decimal(_), _) | (_, Value::Decimal(_)) => {
                Some(self.as_dec()?.cmp_dec(&other.as_dec()?))
            }
            (Value::Timestamp(a), Value::Timestamp(b))
            | (Value::Time(a), Value::Time(b))
            | (Value::Bigint(a), Value::Bigint(b)) => Some(a.cmp(b)),
            (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
            (Value::Int(_) | Value::Bigint(_), Value::Int(_) | Value::Bigint(_)) => {
                Some(self.as_i64()?.cmp(&other.as_i64()?))
            }
            (Value::Array(a), Value::Array(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.sql_cmp(y)? {
                        Ordering::Equal => {}
                        o => return Some(o),
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            (Value::Struct(_), Value::Struct(_)) | (Value::Map(_), Value::Map(_))
                if self == other =>
            {
                Some(Ordering::Equal)
            }
            _ => None,
        }
    }

    /// A total order for sorting and set semantics (NULL first; numbers by
    /// value across types).
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            _ => match self.sql_cmp(other) {
                Some(o) => o,
                None => format!("{self:?}").cmp(&format!("{other:?}")),
            },
        }
    }

    /// The value as ksqlDB prints it in strings (CAST to STRING, CONCAT).
    pub fn to_sql_string(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Boolean(b) => b.to_string(),
            Value::Int(v) => v.to_string(),
            Value::Bigint(v) => v.to_string(),
            Value::Double(v) => format_double(*v),
            Value::Decimal(d) => d.to_plain_string(),
            Value::String(s) => s.clone(),
            Value::Bytes(b) => crate::functions::base64_encode(b),
            Value::Timestamp(ms) => crate::time::format_timestamp(*ms),
            Value::Date(d) => crate::time::format_date(*d),
            Value::Time(ms) => crate::time::format_time(*ms),
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(Value::to_sql_string).collect();
                format!("[{}]", parts.join(", "))
            }
            Value::Map(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}={}", k.to_sql_string(), v.to_sql_string()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            Value::Struct(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.to_sql_string()))
                    .collect();
                format!("Struct{{{}}}", parts.join(","))
            }
        }
    }

    /// Looks up a map entry.
    pub fn map_get(&self, key: &Value) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Doubles print as Java does: a fraction always, `1.0E10` past 10^7.
pub fn format_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-3..1e7).contains(&abs) {
        let s = format!("{v:E}");
        // Rust writes `1E10` / `1.5E-5`; Java `1.0E10` / `1.5E-5`.
        match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        }
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(format_double(1.0), "1.0");
        assert_eq!(format_double(0.5), "0.5");
        assert_eq!(format_double(1e10), "1.0E10");
        assert_eq!(format_double(-2.5e-5), "-2.5E-5");
    }

    #[test]
    fn numbers_compare_across_types() {
        assert_eq!(
            Value::Int(2).sql_cmp(&Value::Bigint(3)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Double(2.0).sql_cmp(&Value::Int(2)),
            Some(Ordering::Equal)
        );
        assert_eq!(Value::Null.sql_cmp(&Value::Int(2)), None);
    }

    #[test]
    fn widening() {
        assert!(SqlType::Int.widens_to(&SqlType::Double));
        assert!(!SqlType::Double.widens_to(&SqlType::Int));
        assert_eq!(
            SqlType::wider(&SqlType::Int, &SqlType::Bigint),
            Some(SqlType::Bigint)
        );
    }
}

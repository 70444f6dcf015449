//! Debezium's default mapping of PostgreSQL types to Connect schemas and of
//! their text output (the form both the snapshot's queries and pgoutput
//! give) to Connect values: `decimal.handling.mode=precise`,
//! `time.precision.mode=adaptive`, `binary.handling.mode=bytes`,
//! `interval.handling.mode=numeric`, timestamps with a zone as ISO strings
//! in UTC (the connections run with `TimeZone=UTC`).

use crate::data::{logical, Schema, Type, Value};

/// What the catalog says about a type.
#[derive(Debug, Clone, Default)]
pub struct PgType {
    pub name: String,
    /// `b` base, `e` enum, `d` domain, ...
    pub typtype: u8,
    /// Element type of an array type (0: not an array).
    pub elem: u32,
    /// Enum labels in order.
    pub labels: Vec<String>,
    /// A domain's base type.
    pub base: u32,
}

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMode {
    #[default]
    Precise,
    Double,
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeMode {
    #[default]
    Adaptive,
    AdaptiveMicros,
    Connect,
}

/// How one column's values are converted.
#[derive(Debug, Clone, PartialEq)]
pub enum Conv {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Text,
    Bytea,
    /// numeric with a fixed scale.
    Decimal(i32),
    /// numeric without one.
    VarDecimal,
    DecimalDouble,
    DecimalString,
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    ConnectTime,
    ConnectTimestamp,
    /// With the column's fractional digits (Debezium pads to them).
    TimestampTz(u32),
    TimeTz,
    Interval,
    Array(Box<Conv>),
}

/// The Connect schema (required; the caller makes it optional) and the
/// conversion of a column of type `oid` with modifier `typmod`, or `None`
/// for a type Debezium does not map by default (the column is left out).
pub fn column_schema(
    oid: u32,
    typmod: i32,
    types: &std::collections::HashMap<u32, PgType>,
    decimal: DecimalMode,
    time: TimeMode,
) -> Option<(Schema, Conv)> {
    let named = |ty: Type, name: &str| {
        let mut s = Schema::of(ty).named(name);
        s.version = Some(1);
        s
    };
    // Fractional-second precision of time types (-1: unspecified = 6).
    let precision = if typmod < 0 { 6 } else { typmod };
    Some(match oid {
        16 => (Schema::of(Type::Boolean), Conv::Bool),
        21 => (Schema::of(Type::Int16), Conv::Int16),
        23 => (Schema::of(Type::Int32), Conv::Int32),
        20 | 26 => (Schema::of(Type::Int64), Conv::Int64),
        700 => (Schema::of(Type::Float32), Conv::Float32),
        701 => (Schema::of(Type::Float64), Conv::Float64),
        18 | 19 | 25 | 1042 | 1043 | 869 | 650 | 829 | 774 => {
            (Schema::of(Type::String), Conv::Text)
        }
        17 => (Schema::of(Type::Bytes), Conv::Bytea),
        2950 => (named(Type::String, "io.debezium.data.Uuid"), Conv::Text),
        114 | 3802 => (named(Type::String, "io.debezium.data.Json"), Conv::Text),
        142 => (named(Type::String, "io.debezium.data.Xml"), Conv::Text),
        1700 => match decimal {
            DecimalMode::Double => (Schema::of(Type::Float64), Conv::DecimalDouble),
            DecimalMode::String => (Schema::of(Type::String), Conv::DecimalString),
            DecimalMode::Precise if typmod >= 4 => {
                let p = ((typmod - 4) >> 16) & 0xFFFF;
                let s = (typmod - 4) & 0xFFFF;
                let mut schema = named(Type::Bytes, logical::DECIMAL);
                schema.parameters = Some(
                    [
                        ("scale".to_string(), s.to_string()),
                        ("connect.decimal.precision".to_string(), p.to_string()),
                    ]
                    .into(),
                );
                (schema, Conv::Decimal(s))
            }
            DecimalMode::Precise => {
                let mut schema = Schema::structure(vec![
                    ("scale".into(), Schema::of(Type::Int32)),
                    ("value".into(), Schema::of(Type::Bytes)),
                ])
                .named("io.debezium.data.VariableScaleDecimal");
                schema.version = Some(1);
                schema.doc = Some("Variable scaled decimal".into());
                (schema, Conv::VarDecimal)
            }
        },
        1082 => match time {
            TimeMode::Connect => {
                let mut s = Schema::of(Type::Int32).named(logical::DATE);
                s.version = Some(1);
                (s, Conv::Date)
            }
            _ => (named(Type::Int32, "io.debezium.time.Date"), Conv::Date),
        },
        1083 => match time {
            TimeMode::Connect => {
                let mut s = Schema::of(Type::Int32).named(logical::TIME);
                s.version = Some(1);
                (s, Conv::ConnectTime)
            }
            TimeMode::Adaptive if precision <= 3 => (
                named(Type::Int32, "io.debezium.time.Time"),
                Conv::TimeMillis,
            ),
            _ => (
                named(Type::Int64, "io.debezium.time.MicroTime"),
                Conv::TimeMicros,
            ),
        },
        1114 => match time {
            TimeMode::Connect => {
                let mut s = Schema::of(Type::Int64).named(logical::TIMESTAMP);
                s.version = Some(1);
                (s, Conv::ConnectTimestamp)
            }
            _ if precision <= 3 => (
                named(Type::Int64, "io.debezium.time.Timestamp"),
                Conv::TimestampMillis,
            ),
            _ => (
                named(Type::Int64, "io.debezium.time.MicroTimestamp"),
                Conv::TimestampMicros,
            ),
        },
        1184 => (
            named(Type::String, "io.debezium.time.ZonedTimestamp"),
            Conv::TimestampTz(precision.clamp(0, 6) as u32),
        ),
        1266 => (
            named(Type::String, "io.debezium.time.ZonedTime"),
            Conv::TimeTz,
        ),
        1186 => (
            named(Type::Int64, "io.debezium.time.MicroDuration"),
            Conv::Interval,
        ),
        _ => {
            let t = types.get(&oid)?;
            if t.typtype == b'e' {
                let mut s = named(Type::String, "io.debezium.data.Enum");
                s.parameters = Some([("allowed".to_string(), t.labels.join(","))].into());
                (s, Conv::Text)
            } else if t.elem != 0 && t.name.starts_with('_') {
                let (item, conv) = column_schema(t.elem, -1, types, decimal, time)?;
                (Schema::array(item.optional()), Conv::Array(Box::new(conv)))
            } else if t.typtype == b'd' && t.base != 0 {
                return column_schema(t.base, typmod, types, decimal, time);
            } else {
                return None;
            }
        }
    })
}

/// Converts a column's text output.
pub fn convert(conv: &Conv, text: &str) -> Result<Value, String> {
    let bad = || format!("cannot convert {text:?} ({conv:?})");
    Ok(match conv {
        Conv::Bool => Value::Boolean(text == "t" || text == "true"),
        Conv::Int16 => Value::Int16(text.parse().map_err(|_| bad())?),
        Conv::Int32 => Value::Int32(text.parse().map_err(|_| bad())?),
        Conv::Int64 => Value::Int64(text.parse().map_err(|_| bad())?),
        Conv::Float32 => Value::Float32(parse_float(text).ok_or_else(bad)? as f32),
        Conv::Float64 => Value::Float64(parse_float(text).ok_or_else(bad)?),
        Conv::Text => Value::String(text.to_string()),
        Conv::Bytea => Value::Bytes(parse_bytea(text).ok_or_else(bad)?),
        Conv::Decimal(scale) => match unscaled(text, Some(*scale)) {
            Some((v, _)) => Value::Bytes(v),
            // NaN and infinities have no Decimal.
            None if is_special(text) => Value::Null,
            None => return Err(bad()),
        },
        // Debezium drops the fraction's trailing zeros (never below scale 0).
        Conv::VarDecimal => match unscaled(trim_fraction(text), None) {
            Some((v, scale)) => {
                let schema = std::sync::Arc::new(
                    Schema::structure(vec![
                        ("scale".into(), Schema::of(Type::Int32)),
                        ("value".into(), Schema::of(Type::Bytes)),
                    ])
                    .named("io.debezium.data.VariableScaleDecimal"),
                );
                let mut s = crate::data::Struct::new(schema);
                s.values = vec![Value::Int32(scale), Value::Bytes(v)];
                Value::Struct(s)
            }
            None if is_special(text) => Value::Null,
            None => return Err(bad()),
        },
        Conv::DecimalDouble => Value::Float64(parse_float(text).ok_or_else(bad)?),
        Conv::DecimalString => Value::String(text.to_string()),
        Conv::Date => Value::Int32(parse_date(text).ok_or_else(bad)? as i32),
        Conv::TimeMillis | Conv::ConnectTime => {
            Value::Int32((parse_time(text).ok_or_else(bad)? / 1000) as i32)
        }
        Conv::TimeMicros => Value::Int64(parse_time(text).ok_or_else(bad)?),
        Conv::TimestampMillis | Conv::ConnectTimestamp => {
            Value::Int64(parse_timestamp(text).ok_or_else(bad)?.0.div_euclid(1000))
        }
        Conv::TimestampMicros => Value::Int64(parse_timestamp(text).ok_or_else(bad)?.0),
        Conv::TimestampTz(digits) => {
            let (us, offset) = parse_timestamp(text).ok_or_else(bad)?;
            let utc = us.checked_sub(offset * 1_000_000).ok_or_else(bad)?;
            Value::String(format_utc_timestamp(utc, *digits))
        }
        Conv::TimeTz => {
            let (time, zone) = split_zone(text);
            let us = parse_time(time).ok_or_else(bad)?;
            let off = zone.map(parse_offset).unwrap_or(Some(0)).ok_or_else(bad)?;
            let utc = (us - off * 1_000_000).rem_euclid(86_400_000_000);
            Value::String(format!("{}Z", format_time(utc)))
        }
        Conv::Interval => Value::Int64(parse_interval(text).ok_or_else(bad)?),
        Conv::Array(item) => {
            let items = parse_array(text).ok_or_else(bad)?;
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(match i {
                    None => Value::Null,
                    Some(t) => convert(item, &t)?,
                });
            }
            Value::Array(out)
        }
    })
}

fn trim_fraction(t: &str) -> &str {
    match t.split_once('.') {
        Some((int, frac)) => {
            let f = frac.trim_end_matches('0');
            if f.is_empty() {
                int
            } else {
                &t[..int.len() + 1 + f.len()]
            }
        }
        None => t,
    }
}

fn is_special(t: &str) -> bool {
    matches!(t, "NaN" | "Infinity" | "-Infinity")
}

fn parse_float(t: &str) -> Option<f64> {
    match t {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => t.parse().ok(),
    }
}

fn parse_bytea(t: &str) -> Option<Vec<u8>> {
    let hex = t.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The unscaled value of a decimal text as big-endian two's complement
/// (Java's `BigInteger.toByteArray`), and its scale: `scale` if given
/// (the text rescaled to it), else the text's own.
pub fn unscaled(text: &str, scale: Option<i32>) -> Option<(Vec<u8>, i32)> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let own = frac.len() as i32;
    let scale = scale.unwrap_or(own);
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    if scale >= own {
        if scale - own > 10_000 {
            return None;
        }
        digits.extend(std::iter::repeat_n(0, (scale - own) as usize));
    } else if (own - scale) as usize > digits.len() {
        return None;
    } else {
        // PostgreSQL gives the column's scale already; a longer text is
        // truncated rather than rounded.
        digits.truncate(digits.len() - (own - scale) as usize);
    }
    // Base-10 digits to base-256, most significant first.
    let mut mag: Vec<u8> = Vec::new();
    for d in digits {
        let mut carry = d as u32;
        for b in mag.iter_mut().rev() {
            let v = *b as u32 * 10 + carry;
            *b = (v & 0xFF) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xFF) as u8);
            carry >>= 8;
        }
    }
    if mag.is_empty() {
        return Some((vec![0], scale));
    }
    if neg {
        // Two's complement: invert and add one.
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, o) = b.overflowing_add(1);
            *b = v;
            if !o {
                break;
            }
        }
        if mag[0] & 0x80 == 0 {
            mag.insert(0, 0xFF);
        }
        while mag.len() > 1 && mag[0] == 0xFF && mag[1] & 0x80 != 0 {
            mag.remove(0);
        }
    } else if mag[0] & 0x80 != 0 {
        mag.insert(0, 0);
    }
    Some((mag, scale))
}

fn num(s: &str) -> Option<i64> {
    // Nine digits keep every product below i64's range.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
        return None;
    }
    s.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn parse_date(t: &str) -> Option<i64> {
    let (t, bc) = match t.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (t, false),
    };
    let mut it = t.splitn(3, '-');
    let mut y = num(it.next()?)?;
    let m = num(it.next()?)?;
    let d = num(it.next()?)?;
    if bc {
        y = 1 - y;
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Microseconds of the day of `HH:MM:SS[.ffffff]`.
fn parse_time(t: &str) -> Option<i64> {
    let mut it = t.splitn(3, ':');
    let h = num(it.next()?)?;
    let m = num(it.next()?)?;
    let s = it.next()?;
    let (s, frac) = s.split_once('.').unwrap_or((s, ""));
    let s = num(s)?;
    let mut us = 0;
    if !frac.is_empty() {
        if frac.len() > 6 {
            return None;
        }
        us = num(frac)? * 10i64.pow(6 - frac.len() as u32);
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + us)
}

/// `+HH[:MM[:SS]]` as seconds east of UTC.
fn parse_offset(z: &str) -> Option<i64> {
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let mut secs = 0;
    for (i, part) in rest.split(':').enumerate() {
        secs += num(part)? * [3600, 60, 1].get(i)?;
    }
    Some(sign * secs)
}

/// Splits `13:45:56.5+02` into time and zone.
fn split_zone(t: &str) -> (&str, Option<&str>) {
    match t.rfind(['+', '-']) {
        Some(i) if i > 0 => (&t[..i], Some(&t[i..])),
        _ => (t, None),
    }
}

/// Microseconds since the epoch of `YYYY-MM-DD HH:MM:SS[.f][+zone][ BC]`
/// (as local time), and the zone's offset in seconds.
fn parse_timestamp(t: &str) -> Option<(i64, i64)> {
    let (t, bc) = match t.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (t, false),
    };
    let (date, rest) = t.split_once(' ')?;
    let (time, zone) = split_zone(rest);
    let offset = match zone {
        Some(z) => parse_offset(z)?,
        None => 0,
    };
    let days = parse_date(&if bc {
        format!("{date} BC")
    } else {
        date.to_string()
    })?;
    let us = days
        .checked_mul(86_400_000_000)?
        .checked_add(parse_time(time)?)?;
    Some((us, offset))
}

fn format_time(us: i64) -> String {
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    let mut out = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out
}

/// ISO-8601 in UTC with `digits` fractional digits (Debezium's
/// ZonedTimestamp).
fn format_utc_timestamp(us: i64, digits: u32) -> String {
    let days = us.div_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else {
        format!("{y:+05}")
    };
    let day_us = us.rem_euclid(86_400_000_000);
    let s = day_us / 1_000_000;
    let mut out = format!(
        "{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    if digits > 0 {
        let frac = format!("{:06}", day_us % 1_000_000);
        out.push('.');
        out.push_str(&frac[..digits.min(6) as usize]);
    }
    out.push('Z');
    out
}

/// An interval's text (IntervalStyle `postgres`) in microseconds, months
/// counted as 30.4375 days and years as 365.25, as Debezium does.
fn parse_interval(t: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let words: Vec<&str> = t.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if w.contains(':') {
            let (neg, w) = match w.strip_prefix('-') {
                Some(w) => (true, w),
                None => (false, w.strip_prefix('+').unwrap_or(w)),
            };
            let us = parse_time(w)? as f64;
            total += if neg { -us } else { us };
            i += 1;
            continue;
        }
        let n: f64 = w.parse().ok()?;
        let unit = words.get(i + 1)?;
        let day = 86_400_000_000.0;
        total += n * match unit.trim_end_matches('s') {
            "year" => 365.25 * day,
            "mon" => 30.4375 * day,
            "day" => day,
            _ => return None,
        };
        i += 2;
    }
    Some(total.round() as i64)
}

/// The elements of a one-dimensional array literal (`{a,"b c",NULL}`).
fn parse_array(t: &str) -> Option<Vec<Option<String>>> {
    let inner = t.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'{') {
            return None; // multi-dimensional
        }
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
        }
        out.push(if !quoted && item == "NULL" {
            None
        } else {
            Some(item)
        });
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// A column default the catalog gives as `pg_get_expr` text, as a value
/// of `conv`, when it is a constant Debezium would also report.
pub fn default_value(conv: &Conv, expr: &str) -> Option<Value> {
    let e = expr.trim();
    let e = e
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(e);
    let lit = if let Some(rest) = e.strip_prefix('\'') {
        let end = rest
            .find("'::")
            .or_else(|| rest.strip_suffix('\'').map(|r| r.len()))?;
        rest[..end].replace("''", "'")
    } else {
        if e.contains('(') {
            return None;
        }
        e.to_string()
    };
    match conv {
        Conv::Bool
        | Conv::Int16
        | Conv::Int32
        | Conv::Int64
        | Conv::Float32
        | Conv::Float64
        | Conv::Text => convert(conv, &lit).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_java_big_integers() {
        assert_eq!(unscaled("12.34", Some(2)).unwrap().0, vec![0x04, 0xD2]);
        assert_eq!(
            unscaled("3.14159", None).unwrap(),
            (vec![0x04, 0xCB, 0x2F], 5)
        );
        assert_eq!(unscaled("1.00", Some(2)).unwrap().0, vec![0x64]);
        assert_eq!(unscaled("-1", Some(0)).unwrap().0, vec![0xFF]);
        assert_eq!(unscaled("-128", Some(0)).unwrap().0, vec![0x80]);
        assert_eq!(unscaled("-129", Some(0)).unwrap().0, vec![0xFF, 0x7F]);
        assert_eq!(unscaled("128", Some(0)).unwrap().0, vec![0x00, 0x80]);
        assert_eq!(unscaled("0", Some(0)).unwrap().0, vec![0]);
        assert!(unscaled("1e5", None).is_none());
        assert_eq!(trim_fraction("-123.000"), "-123");
        assert_eq!(trim_fraction("1.500"), "1.5");
        assert_eq!(trim_fraction("100"), "100");
    }

    #[test]
    fn times_as_debezium() {
        assert_eq!(parse_date("2024-02-29"), Some(19782));
        assert_eq!(parse_time("13:45:56.123456"), Some(49_556_123_456));
        assert_eq!(
            convert(&Conv::TimestampTz(6), "2024-02-29 13:45:56.123456+02").unwrap(),
            Value::String("2024-02-29T11:45:56.123456Z".into())
        );
        assert_eq!(
            convert(&Conv::TimeTz, "13:45:56.5+02").unwrap(),
            Value::String("11:45:56.5Z".into())
        );
        assert_eq!(parse_interval("1 day 02:03:04"), Some(93_784_000_000));
        assert_eq!(
            convert(&Conv::TimestampMicros, "2024-02-29 13:45:56.123456").unwrap(),
            Value::Int64(1_709_214_356_123_456)
        );
    }

    #[test]
    fn arrays_and_defaults() {
        assert_eq!(
            parse_array(r#"{x,"y z",NULL,"a\"b"}"#).unwrap(),
            vec![
                Some("x".into()),
                Some("y z".into()),
                None,
                Some("a\"b".into())
            ]
        );
        assert_eq!(default_value(&Conv::Int32, "7"), Some(Value::Int32(7)));
        assert_eq!(
            default_value(&Conv::Text, "'it''s'::text"),
            Some(Value::String("it's".into()))
        );
        assert_eq!(default_value(&Conv::Int64, "nextval('s'::regclass)"), None);
    }
}

//! Dates and times: the civil calendar, ISO-8601 text, and the subset of
//! Java's `DateTimeFormatter` patterns ksqlDB's functions take.
//!
//! Time zones are `UTC` (also `Z`, `GMT`) and fixed offsets (`+02:00`,
//! `-0530`, `UTC+3`); region names need a time-zone database Weir does
//! not carry.

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds in a time unit (`MILLISECOND(S)`, `SECOND(S)`,
/// `MINUTE(S)`, `HOUR(S)`, `DAY(S)`, any case).
pub fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => MS_PER_DAY,
        _ => return None,
    })
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-05-01T12:00:00.000` (ksqlDB's TIMESTAMP text, UTC).
pub fn format_timestamp(ms: i64) -> String {
    format_pattern(ms, "yyyy-MM-dd'T'HH:mm:ss.SSS", 0).unwrap_or_default()
}

/// `2024-05-01`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `12:00:00` (with `.SSS` when there are milliseconds).
pub fn format_time(ms: i64) -> String {
    let s = ms.rem_euclid(MS_PER_DAY);
    let (h, mi, se, milli) = (s / 3_600_000, s / 60_000 % 60, s / 1000 % 60, s % 1000);
    if milli == 0 {
        format!("{h:02}:{mi:02}:{se:02}")
    } else {
        format!("{h:02}:{mi:02}:{se:02}.{milli:03}")
    }
}

/// A zone name as an offset in milliseconds.
pub fn zone_offset_ms(zone: &str) -> Option<i64> {
    let z = zone.trim();
    let rest = if z.eq_ignore_ascii_case("UTC") || z.eq_ignore_ascii_case("GMT") || z == "Z" {
        return Some(0);
    } else if let Some(r) = z
        .strip_prefix("UTC")
        .or_else(|| z.strip_prefix("GMT"))
        .or_else(|| z.strip_prefix("Etc/GMT"))
    {
        r
    } else {
        z
    };
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = if digits.len() <= 2 {
        (digits.parse::<i64>().ok()?, 0)
    } else {
        let split = digits.len() - 2;
        (
            digits[..split].parse::<i64>().ok()?,
            digits[split..].parse::<i64>().ok()?,
        )
    };
    (h <= 18 && m < 60).then_some(sign * (h * 3_600_000 + m * 60_000))
}

/// Pattern tokens: letters repeated, or literal text.
fn pattern_tokens(pattern: &str) -> Result<Vec<(char, usize)>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '\'' {
                out.push(('\0', '\'' as usize));
                i += 2;
                continue;
            }
            while j < chars.len() && chars[j] != '\'' {
                out.push(('\0', chars[j] as usize));
                j += 1;
            }
            if j >= chars.len() {
                return Err(format!("unterminated quote in pattern '{pattern}'"));
            }
            i = j + 1;
        } else if c.is_ascii_alphabetic() {
            let mut n = 1;
            while i + n < chars.len() && chars[i + n] == c {
                n += 1;
            }
            if !"yuMdHhmsSaEXxZD".contains(c) {
                return Err(format!("Unknown pattern letter: {c}"));
            }
            out.push((c, n));
            i += n;
        } else {
            out.push(('\0', c as usize));
            i += 1;
        }
    }
    Ok(out)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

fn format_offset(off: i64, colon: bool, z_for_zero: bool) -> String {
    if off == 0 && z_for_zero {
        return "Z".into();
    }
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs() / 60_000;
    if colon {
        format!("{sign}{:02}:{:02}", a / 60, a % 60)
    } else {
        format!("{sign}{:02}{:02}", a / 60, a % 60)
    }
}

/// Formats `ms` (UTC epoch millis) at `offset_ms` with a Java pattern.
pub fn format_pattern(ms: i64, pattern: &str, offset_ms: i64) -> Result<String, String> {
    let local = ms + offset_ms;
    let days = local.div_euclid(MS_PER_DAY);
    let in_day = local.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let mut out = String::new();
    for (c, n) in pattern_tokens(pattern)? {
        match c {
            '\0' => out.push(char::from_u32(n as u32).unwrap_or('?')),
            'y' | 'u' if n == 2 => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            'y' | 'u' => out.push_str(&format!("{y:0n$}")),
            'M' if n >= 4 => out.push_str(MONTHS[mo as usize - 1]),
            'M' if n == 3 => out.push_str(&MONTHS[mo as usize - 1][..3]),
            'M' => out.push_str(&format!("{mo:0n$}")),
            'd' => out.push_str(&format!("{d:0n$}")),
            'D' => {
                let doy = days - days_from_civil(y, 1, 1) + 1;
                out.push_str(&format!("{doy:0n$}"))
            }
            'H' => out.push_str(&format!("{h:0n$}")),
            'h' => out.push_str(&format!("{:0n$}", if h % 12 == 0 { 12 } else { h % 12 })),
            'a' => out.push_str(if h < 12 { "AM" } else { "PM" }),
            'm' => out.push_str(&format!("{mi:0n$}")),
            's' => out.push_str(&format!("{s:0n$}")),
            'S' => {
                let frac = format!("{milli:03}000000");
                out.push_str(&frac[..n.min(9)]);
            }
            'E' => {
                let name = DAYS[days.rem_euclid(7) as usize];
                out.push_str(if n >= 4 { name } else { &name[..3] })
            }
            'X' if n == 1 && offset_ms % 3_600_000 == 0 => {
                let o = format_offset(offset_ms, false, true);
                out.push_str(&o[..o.len().min(3)]);
            }
            'X' => out.push_str(&format_offset(offset_ms, n >= 3, true)),
            'x' => out.push_str(&format_offset(offset_ms, n >= 3, false)),
            'Z' => out.push_str(&format_offset(offset_ms, n >= 4, false)),
            _ => return Err(format!("Unknown pattern letter: {c}")),
        }
    }
    Ok(out)
}

/// Parses `text` with a Java pattern into UTC epoch millis, the text's
/// fields taken at `offset_ms` unless it carries its own offset.
pub fn parse_pattern(text: &str, pattern: &str, offset_ms: i64) -> Result<i64, String> {
    let bad = || format!("Text '{text}' could not be parsed with pattern '{pattern}'");
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut milli) =
        (1970i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0i64);
    let mut pm = None;
    let mut offset = offset_ms;
    let tokens = pattern_tokens(pattern)?;
    for (idx, (c, n)) in tokens.iter().copied().enumerate() {
        let next_is_number = tokens.get(idx + 1).is_some_and(|(c2, n2)| {
            *c2 != '\0' && !(*c2 == 'M' && *n2 >= 3) && !"EaXxZ".contains(*c2)
        });
        let mut number = |max: usize| -> Result<i64, String> {
            let start = i;
            let sign = if i < chars.len() && chars[i] == '-' && c == 'y' {
                i += 1;
                -1
            } else {
                1
            };
            let limit = if next_is_number { max.max(n) } else { 10 };
            while i < chars.len() && chars[i].is_ascii_digit() && i - start < limit {
                i += 1;
            }
            let digits: String = chars[start..i]
                .iter()
                .filter(|c| c.is_ascii_digit())
                .collect();
            digits.parse::<i64>().map(|v| sign * v).map_err(|_| bad())
        };
        match c {
            '\0' => {
                if chars.get(i).copied() != char::from_u32(n as u32) {
                    return Err(bad());
                }
                i += 1;
            }
            'y' | 'u' => {
                let v = number(n.max(4))?;
                y = if n == 2 { 2000 + v } else { v };
            }
            'M' if n >= 3 => {
                let rest: String = chars[i..].iter().collect();
                let found = MONTHS.iter().enumerate().find_map(|(k, m)| {
                    let name = if n >= 4 { *m } else { &m[..3] };
                    rest.to_ascii_lowercase()
                        .starts_with(&name.to_ascii_lowercase())
                        .then_some((k, name.chars().count()))
                });
                let (k, len) = found.ok_or_else(bad)?;
                mo = k as u32 + 1;
                i += len;
            }
            'M' => mo = u32::try_from(number(2)?).map_err(|_| bad())?,
            'd' => d = u32::try_from(number(2)?).map_err(|_| bad())?,
            'D' => {
                let doy = number(3)?;
                let base = days_from_civil(y, 1, 1) + doy - 1;
                let (_, m2, d2) = civil_from_days(base);
                mo = m2;
                d = d2;
            }
            'H' | 'h' => h = number(2)?,
            'm' => mi = number(2)?,
            's' => s = number(2)?,
            'S' => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() && i - start < n {
                    i += 1;
                }
                let digits: String = chars[start..i].iter().collect();
                let padded = format!("{digits:0<3}");
                milli = padded[..3].parse().map_err(|_| bad())?;
            }
            'a' => {
                let rest: String = chars[i..].iter().take(2).collect();
                pm = Some(rest.eq_ignore_ascii_case("PM"));
                i += 2;
            }
            'E' => {
                while i < chars.len() && chars[i].is_ascii_alphabetic() {
                    i += 1;
                }
            }
            'X' | 'x' | 'Z' => {
                let start = i;
                if chars.get(i) == Some(&'Z') {
                    i += 1;
                    offset = 0;
                } else {
                    while i < chars.len() && (chars[i].is_ascii_digit() || "+-:".contains(chars[i]))
                    {
                        i += 1;
                    }
                    let t: String = chars[start..i].iter().collect();
                    offset = zone_offset_ms(&t).ok_or_else(bad)?;
                }
            }
            _ => return Err(bad()),
        }
    }
    if i != chars.len() {
        return Err(bad());
    }
    if let Some(pm) = pm {
        h = h % 12 + if pm { 12 } else { 0 };
    }
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    Ok(days * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + s * 1000 + milli - offset)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// ksqlDB's TIMESTAMP literal forms: `2024-05-01T12:00:00.000` with
/// optional parts and an optional zone, or a date alone.
pub fn parse_timestamp_text(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, rest) = match t.split_once('T') {
        Some((d, r)) => (d, r),
        None => (t, ""),
    };
    let days = parse_date_text(date)?;
    if rest.is_empty() {
        return Some(i64::from(days) * MS_PER_DAY);
    }
    let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let offset = if zone.is_empty() {
        0
    } else {
        zone_offset_ms(zone)?
    };
    Some(i64::from(days) * MS_PER_DAY + parse_time_text(time)? - offset)
}

/// `yyyy-MM-dd` (also `yyyy-MM` and `yyyy`) as days since the epoch.
pub fn parse_date_text(text: &str) -> Option<i32> {
    let mut parts = text.trim().split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next().map_or(Some(1), |p| p.parse().ok())?;
    let d: u32 = parts.next().map_or(Some(1), |p| p.parse().ok())?;
    if parts.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// `HH:mm[:ss[.SSS]]` as milliseconds since midnight.
pub fn parse_time_text(text: &str) -> Option<i64> {
    let mut parts = text.trim().split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let (s, ms) = match parts.next() {
        None => (0, 0),
        Some(p) => match p.split_once('.') {
            None => (p.parse().ok()?, 0),
            Some((s, f)) => (
                s.parse().ok()?,
                format!("{:0<3}", f).get(..3)?.parse::<i64>().ok()?,
            ),
        },
    };
    if parts.next().is_some() || h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some(h * 3_600_000 + m * 60_000 + s * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn timestamp_text() {
        assert_eq!(
            format_timestamp(1_700_000_000_123),
            "2023-11-14T22:13:20.123"
        );
        assert_eq!(
            parse_timestamp_text("2023-11-14T22:13:20.123"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_text("2023-11-14T23:13:20.123+01:00"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_timestamp_text("1970-01-02"), Some(86_400_000));
    }

    #[test]
    fn patterns_format_and_parse() {
        let ms = 1_700_000_000_123;
        let p = "yyyy-MM-dd HH:mm:ss.SSS";
        let s = format_pattern(ms, p, 0).unwrap();
        assert_eq!(s, "2023-11-14 22:13:20.123");
        assert_eq!(parse_pattern(&s, p, 0).unwrap(), ms);
        assert_eq!(
            format_pattern(0, "dd MMM yyyy hh a X", 3_600_000).unwrap(),
            "01 Jan 1970 01 AM +01"
        );
        assert_eq!(
            parse_pattern("20231114", "yyyyMMdd", 0).unwrap(),
            1_699_920_000_000
        );
        assert!(parse_pattern("2023-13-01", "yyyy-MM-dd", 0).is_err());
    }

    #[test]
    fn zones() {
        assert_eq!(zone_offset_ms("UTC"), Some(0));
        assert_eq!(zone_offset_ms("+05:30"), Some(19_800_000));
        assert_eq!(zone_offset_ms("GMT-2"), Some(-7_200_000));
        assert_eq!(zone_offset_ms("Europe/Paris"), None);
    }
}

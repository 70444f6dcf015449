//! Java's `SimpleDateFormat` patterns in UTC, for the transforms that take
//! one (TimestampConverter's `format`, TimestampRouter's
//! `timestamp.format`) and for the ISO forms Kafka's `Values` prints dates
//! in. Connector configs carry Java patterns, so they are read as Java
//! reads them: `yyyy-MM-dd'T'HH:mm:ss.SSSZ`, quoted literals, `''`.
//!
//! Letters: `y` `M` `d` `D` `E` `a` `H` `k` `K` `h` `m` `s` `S` `Z` `X`
//! `z`; any other ASCII letter is refused as Java refuses an unknown one.
//! Dates are proleptic Gregorian (Java switches to the Julian calendar
//! before 1582; connectors' timestamps are not that old).

use crate::error::{ConnectError, Result};

/// Milliseconds per day.
pub const MS_PER_DAY: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Field(char, usize),
    Literal(String),
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
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
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Days since the epoch → (year, month 1-12, day 1-31).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month 1-12, day) → days since the epoch.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Pattern {
    /// Parses a Java pattern; an unknown letter or an unterminated quote
    /// is an error, as `new SimpleDateFormat(pattern)` throws.
    pub fn parse(pattern: &str) -> Result<Pattern> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    lit.push('\'');
                    i += 2;
                    continue;
                }
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ConnectError::bad_config(format!(
                                "Unterminated quote in date format pattern {pattern}"
                            )))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            lit.push(ch);
                            i += 1;
                        }
                    }
                }
            } else if c.is_ascii_alphabetic() {
                if !"yMdDEaHkKhmsSZXz".contains(c) {
                    return Err(ConnectError::bad_config(format!(
                        "Illegal pattern character '{c}' in {pattern}"
                    )));
                }
                let mut n = 0;
                while chars.get(i) == Some(&c) {
                    n += 1;
                    i += 1;
                }
                if !lit.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut lit)));
                }
                tokens.push(Token::Field(c, n));
            } else {
                lit.push(c);
                i += 1;
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Literal(lit));
        }
        Ok(Pattern { tokens })
    }

    /// Formats `ms` since the epoch, in UTC.
    pub fn format(&self, ms: i64) -> String {
        let days = ms.div_euclid(MS_PER_DAY);
        let tod = ms.rem_euclid(MS_PER_DAY);
        let (y, mo, d) = civil(days);
        let (h, mi, s, milli) = (
            tod / 3_600_000,
            tod / 60_000 % 60,
            tod / 1000 % 60,
            tod % 1000,
        );
        let mut out = String::new();
        let num = |out: &mut String, v: i64, n: usize| out.push_str(&format!("{v:0n$}"));
        for t in &self.tokens {
            match t {
                Token::Literal(l) => out.push_str(l),
                Token::Field(c, n) => {
                    let n = *n;
                    match c {
                        'y' if n == 2 => num(&mut out, y.rem_euclid(100), 2),
                        'y' => num(&mut out, y, n),
                        'M' if n >= 4 => out.push_str(MONTHS[mo as usize - 1]),
                        'M' if n == 3 => out.push_str(&MONTHS[mo as usize - 1][..3]),
                        'M' => num(&mut out, i64::from(mo), n),
                        'd' => num(&mut out, i64::from(d), n),
                        'D' => num(&mut out, days - days_from_civil(y, 1, 1) + 1, n),
                        'E' => {
                            let wd = (days + 3).rem_euclid(7) as usize;
                            if n >= 4 {
                                out.push_str(DAYS[wd]);
                            } else {
                                out.push_str(&DAYS[wd][..3]);
                            }
                        }
                        'a' => out.push_str(if h < 12 { "AM" } else { "PM" }),
                        'H' => num(&mut out, h, n),
                        'k' => num(&mut out, if h == 0 { 24 } else { h }, n),
                        'K' => num(&mut out, h % 12, n),
                        'h' => num(&mut out, if h % 12 == 0 { 12 } else { h % 12 }, n),
                        'm' => num(&mut out, mi, n),
                        's' => num(&mut out, s, n),
                        'S' => num(&mut out, milli, n),
                        'Z' => out.push_str("+0000"),
                        'X' => out.push('Z'),
                        _ => out.push_str(if n >= 4 {
                            "Coordinated Universal Time"
                        } else {
                            "UTC"
                        }),
                    }
                }
            }
        }
        out
    }

    /// Parses `text` as a UTC time, as `SimpleDateFormat.parse` with the
    /// time zone UTC; `None` when it does not match.
    pub fn parse_ms(&self, text: &str) -> Option<i64> {
        let b = text.as_bytes();
        let mut pos = 0;
        let (mut y, mut mo, mut d) = (1970i64, 1u32, 1u32);
        let (mut h, mut pm, mut mi, mut s, mut milli) = (0i64, None::<bool>, 0i64, 0i64, 0i64);
        let mut offset_min = 0i64;
        let mut doy: Option<i64> = None;
        for (idx, t) in self.tokens.iter().enumerate() {
            match t {
                Token::Literal(l) => {
                    if !text[pos..].starts_with(l.as_str()) {
                        return None;
                    }
                    pos += l.len();
                }
                Token::Field(c, n) => {
                    // Abutting numeric fields take exactly their width.
                    let abut = matches!(self.tokens.get(idx + 1), Some(Token::Field(nc, _)) if "yMdDHkKhmsS".contains(*nc));
                    let number = |pos: &mut usize| -> Option<i64> {
                        let start = *pos;
                        let mut neg = false;
                        if *c == 'y' && b.get(*pos) == Some(&b'-') {
                            neg = true;
                            *pos += 1;
                        }
                        let digits_start = *pos;
                        while *pos < b.len()
                            && b[*pos].is_ascii_digit()
                            && (!abut || *pos - digits_start < *n)
                        {
                            *pos += 1;
                        }
                        if *pos == digits_start {
                            *pos = start;
                            return None;
                        }
                        let v: i64 = text[digits_start..*pos].parse().ok()?;
                        Some(if neg { -v } else { v })
                    };
                    match c {
                        'y' => {
                            let start = pos;
                            let v = number(&mut pos)?;
                            // Two digits under `yy` are within 80 years
                            // before and 20 after now, as Java's default
                            // century; 2000 + v covers today's data.
                            y = if *n <= 2 && pos - start == 2 {
                                2000 + v
                            } else {
                                v
                            };
                        }
                        'M' if *n >= 3 => {
                            let rest = &text[pos..];
                            let (i, len) = MONTHS.iter().enumerate().find_map(|(i, m)| {
                                if rest.starts_with(m) {
                                    Some((i, m.len()))
                                } else if rest.starts_with(&m[..3]) {
                                    Some((i, 3))
                                } else {
                                    None
                                }
                            })?;
                            mo = i as u32 + 1;
                            pos += len;
                        }
                        'M' => mo = u32::try_from(number(&mut pos)?).ok()?,
                        'd' => d = u32::try_from(number(&mut pos)?).ok()?,
                        'D' => doy = Some(number(&mut pos)?),
                        'E' => {
                            let rest = &text[pos..];
                            let len = DAYS.iter().find_map(|dn| {
                                if rest.starts_with(dn) {
                                    Some(dn.len())
                                } else if rest.starts_with(&dn[..3]) {
                                    Some(3)
                                } else {
                                    None
                                }
                            })?;
                            pos += len;
                        }
                        'a' => {
                            let rest = &text[pos..];
                            if rest.starts_with("AM") || rest.starts_with("am") {
                                pm = Some(false);
                            } else if rest.starts_with("PM") || rest.starts_with("pm") {
                                pm = Some(true);
                            } else {
                                return None;
                            }
                            pos += 2;
                        }
                        'H' | 'k' | 'K' | 'h' => {
                            let v = number(&mut pos)?;
                            h = match c {
                                'k' if v == 24 => 0,
                                'h' if v == 12 => 0,
                                _ => v,
                            };
                        }
                        'm' => mi = number(&mut pos)?,
                        's' => s = number(&mut pos)?,
                        'S' => milli = number(&mut pos)?,
                        'Z' | 'X' | 'z' => {
                            let rest = &text[pos..];
                            if rest.starts_with('Z') {
                                pos += 1;
                            } else if rest.starts_with("UTC") || rest.starts_with("GMT") {
                                pos += 3;
                            } else {
                                let sign = match rest.as_bytes().first()? {
                                    b'+' => 1,
                                    b'-' => -1,
                                    _ => return None,
                                };
                                let digits: String = rest[1..]
                                    .chars()
                                    .filter(|ch| *ch != ':')
                                    .take_while(char::is_ascii_digit)
                                    .take(4)
                                    .collect();
                                let consumed = rest[1..]
                                    .char_indices()
                                    .scan(0, |seen, (i, ch)| {
                                        if ch.is_ascii_digit() && *seen < digits.len() {
                                            *seen += 1;
                                            Some(i + 1)
                                        } else if ch == ':' && *seen == 2 {
                                            Some(i + 1)
                                        } else {
                                            None
                                        }
                                    })
                                    .last()
                                    .unwrap_or(0);
                                let (hh, mm) = match digits.len() {
                                    2 => (digits.parse::<i64>().ok()?, 0),
                                    4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
                                    _ => return None,
                                };
                                offset_min = sign * (hh * 60 + mm);
                                pos += 1 + consumed;
                            }
                        }
                        _ => return None,
                    }
                }
            }
        }
        if let Some(true) = pm {
            h = h % 12 + 12;
        } else if let Some(false) = pm {
            h %= 12;
        }
        // Lenient as Java's default: out-of-range fields roll over.
        let days = match doy {
            Some(n) => days_from_civil(y, 1, 1) + n - 1,
            None => {
                let months = y * 12 + i64::from(mo) - 1;
                let (yy, mm) = (months.div_euclid(12), months.rem_euclid(12) as u32 + 1);
                days_from_civil(yy, mm, 1) + i64::from(d) - 1
            }
        };
        Some(
            days * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + s * 1000 + milli
                - offset_min * 60_000,
        )
    }
}

/// How Kafka's `Values.dateFormatFor` prints a `java.util.Date`: a time of
/// day before the first day's end, a date at midnight, else a timestamp.
pub fn iso(ms: i64) -> String {
    let pattern = if (0..MS_PER_DAY).contains(&ms) {
        "HH:mm:ss.SSS'Z'"
    } else if ms % MS_PER_DAY == 0 {
        "yyyy-MM-dd"
    } else {
        "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    };
    Pattern::parse(pattern)
        .map(|p| p.format(ms))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 365, 10_957, 19_723, 2_000_000] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil(19_723), (2024, 1, 1));
    }

    #[test]
    fn java_patterns_format_and_parse() {
        let p = Pattern::parse("yyyy-MM-dd'T'HH:mm:ss.SSSZ").unwrap();
        let ms = 1_709_210_096_789; // 2024-02-29T12:34:56.789Z
        assert_eq!(p.format(ms), "2024-02-29T12:34:56.789+0000");
        assert_eq!(p.parse_ms("2024-02-29T12:34:56.789+0000"), Some(ms));
        assert_eq!(p.parse_ms("2024-02-29T14:34:56.789+0200"), Some(ms));
        let compact = Pattern::parse("yyyyMMdd").unwrap();
        assert_eq!(compact.format(ms), "20240229");
        assert_eq!(compact.parse_ms("20240229"), Some(ms - ms % MS_PER_DAY));
        let words = Pattern::parse("EEE, d MMM yyyy hh:mm a ''yy").unwrap();
        assert_eq!(words.format(ms), "Thu, 29 Feb 2024 12:34 PM '24");
        assert!(Pattern::parse("yyyy-qq").is_err());
        assert!(Pattern::parse("'open").is_err());
        assert_eq!(p.parse_ms("nope"), None);
        assert_eq!(iso(ms), "2024-02-29T12:34:56.789Z");
        assert_eq!(iso(19_723 * MS_PER_DAY), "2024-01-01");
        assert_eq!(iso(3_600_000), "01:00:00.000Z");
    }
}

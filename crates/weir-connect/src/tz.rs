//! Time zones for the sinks' settings: the JDBC sink's `db.timezone` and
//! the S3 sink's `timezone`, from one time zone database (chrono-tz's
//! compiled-in copy of the IANA database, so a worker's answer does not
//! depend on the host's zoneinfo files).
//!
//! A zone is UTC, a fixed offset (`+02:00`, `-0530`, `GMT+2`, `UTC-03:00`)
//! or an IANA name (`America/New_York`, `Etc/GMT+5`), as Java's and Joda's
//! zone ids are.

use chrono::{Offset, TimeZone};

use crate::error::{ConnectError, Result};

/// A time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A fixed offset from UTC, in milliseconds.
    Fixed(i64),
    /// A zone of the IANA database: its offset depends on the instant.
    Named(chrono_tz::Tz),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::Fixed(0)
    }
}

impl Zone {
    /// Parses `tz`; the error names the setting `key`.
    pub fn parse(tz: &str, key: &str) -> Result<Zone> {
        let tz = tz.trim();
        if let Some(ms) = fixed_offset_ms(tz) {
            return Ok(Zone::Fixed(ms));
        }
        tz.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            ConnectError::bad_config(format!(
                "Invalid value {tz} for configuration {key}: not a time zone id (UTC, an offset such as +02:00, or a name such as America/New_York)"
            ))
        })
    }

    /// The zone's offset from UTC, in milliseconds, at the instant `utc_ms`
    /// (milliseconds since the epoch).
    pub fn offset_ms(&self, utc_ms: i64) -> i64 {
        match self {
            Zone::Fixed(ms) => *ms,
            Zone::Named(tz) => {
                // Instants past chrono's range take the range's end.
                let at = chrono::DateTime::from_timestamp_millis(utc_ms)
                    .unwrap_or(if utc_ms < 0 {
                        chrono::DateTime::<chrono::Utc>::MIN_UTC
                    } else {
                        chrono::DateTime::<chrono::Utc>::MAX_UTC
                    })
                    .naive_utc();
                i64::from(tz.offset_from_utc_datetime(&at).fix().local_minus_utc()) * 1000
            }
        }
    }

    /// The local wall-clock time of `utc_ms`, as milliseconds since the
    /// local epoch.
    pub fn local_ms(&self, utc_ms: i64) -> i64 {
        utc_ms.saturating_add(self.offset_ms(utc_ms))
    }
}

/// The offset of a fixed zone: `UTC`, `GMT`, `UT`, `Z`, `+02:00`, `-0530`,
/// `GMT+2`, `UTC-03:00`; `None` for anything else (a name).
fn fixed_offset_ms(tz: &str) -> Option<i64> {
    let rest = ["UTC", "GMT", "UT", "Z"]
        .iter()
        .find_map(|p| tz.strip_prefix(p))
        .unwrap_or(tz);
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, digits) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    if h > 18 || m > 59 {
        return None;
    }
    Some(sign * (h * 3_600_000 + m * 60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_named_zones() {
        let z = |s: &str| Zone::parse(s, "timezone").unwrap();
        assert_eq!(z("UTC"), Zone::Fixed(0));
        assert_eq!(z("GMT+2").offset_ms(0), 7_200_000);
        assert_eq!(z("-05:30").offset_ms(0), -19_800_000);
        assert_eq!(z("+0100").offset_ms(0), 3_600_000);
        // 2024-01-15 and 2024-07-15, 12:00 UTC: EST, then EDT.
        let ny = z("America/New_York");
        assert_eq!(ny.offset_ms(1_705_320_000_000), -5 * 3_600_000);
        assert_eq!(ny.offset_ms(1_721_044_800_000), -4 * 3_600_000);
        // The change itself: 2024-03-10 07:00 UTC is 03:00 EDT.
        assert_eq!(ny.offset_ms(1_710_053_999_999), -5 * 3_600_000);
        assert_eq!(ny.offset_ms(1_710_054_000_000), -4 * 3_600_000);
        // POSIX-style names have the sign inverted, as the database says.
        assert_eq!(z("Etc/GMT+5").offset_ms(0), -5 * 3_600_000);
        assert_eq!(z("Asia/Kolkata").offset_ms(0), 19_800_000);
        assert!(Zone::parse("Mars/Olympus", "db.timezone")
            .unwrap_err()
            .to_string()
            .contains("db.timezone"));
        assert!(Zone::parse("GMT+x", "timezone").is_err());
        // Far instants do not panic.
        let _ = ny.offset_ms(i64::MAX);
        let _ = ny.offset_ms(i64::MIN);
    }
}

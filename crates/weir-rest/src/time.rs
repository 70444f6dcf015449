//! RFC 3339 timestamps, as the v3 API writes and reads them.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the epoch as `2021-02-05T19:14:42.123Z`.
pub(crate) fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time as milliseconds since the epoch.
pub(crate) fn parse_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_ms("2021-02-05T19:14:42Z"), Some(1_612_552_482_000));
        assert_eq!(
            parse_ms("2021-02-05T20:14:42.5+01:00"),
            Some(1_612_552_482_500)
        );
        assert_eq!(format_ms(1_612_552_482_000), "2021-02-05T19:14:42Z");
        assert_eq!(
            parse_ms(&format_ms(1_612_552_482_123)),
            Some(1_612_552_482_123)
        );
        assert_eq!(parse_ms("yesterday"), None);
    }
}

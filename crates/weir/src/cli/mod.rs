//! The client commands of `weir`: topics, produce, consume, groups and
//! cluster info, against any Kafka-compatible broker.
//!
//! Admin requests go through [`weir_client`] (kafka-protocol over TCP);
//! producing and consuming through librdkafka (`rdkafka`). Every command
//! prints an aligned table for people or, with `--output json`, JSON for
//! scripts; an error is one line on stderr and exit status 1.

pub mod cluster;
pub mod consume;
pub mod group;
pub mod output;
pub mod produce;
pub mod schemas;
pub mod topic;

use std::time::Duration;

use clap::Args;

use weir_client::{parse_properties, Admin, ClientConfig, ClientSecurity};

/// Flags every client command takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Broker(s) to bootstrap from, comma-separated.
    #[arg(
        long,
        short = 'b',
        env = "WEIR_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    pub bootstrap: String,
    /// Give up on a broker that does not answer within this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// Kafka client settings for secured listeners, as Kafka's tools take
    /// them: `security.protocol`, `sasl.mechanism`, `sasl.jaas.config`,
    /// `ssl.truststore.location` (PEM), ...
    #[arg(long, env = "WEIR_COMMAND_CONFIG", value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
}

impl Common {
    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    /// The security settings of `--command-config` (plaintext without).
    pub fn security(&self) -> anyhow::Result<ClientSecurity> {
        let Some(path) = &self.command_config else {
            return Ok(ClientSecurity::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Ok(ClientSecurity::from_properties(&parse_properties(&text))?)
    }

    /// An admin session with the cluster.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let config = ClientConfig {
            security: self.security()?,
            ..ClientConfig::plaintext(self.timeout())
        };
        Ok(Admin::connect_with(&self.bootstrap, config).await?)
    }

    /// librdkafka settings: the bootstrap servers and the security of
    /// `--command-config`.
    pub fn rdkafka_config(&self) -> anyhow::Result<rdkafka::config::ClientConfig> {
        let mut cfg = rdkafka::config::ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap);
        if self.command_config.is_some() {
            let security = self.security()?;
            if matches!(
                security.sasl,
                Some(weir_client::SaslLogin::OAuthBearer { .. })
            ) {
                anyhow::bail!(
                    "OAUTHBEARER works with the admin commands only, not with produce and consume"
                );
            }
            for (k, v) in security.librdkafka_properties() {
                cfg.set(k, v);
            }
        }
        Ok(cfg)
    }
}

/// Runs an async command on a small runtime.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Parses `KEY=VALUE`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Parses a duration like `90s`, `15m`, `2h`, `7d` or `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s, 15m, 2h or 1d"))?;
    let ms = match unit {
        "ms" => n,
        "s" | "" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h or d)")),
    };
    Ok(Duration::from_millis(ms))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses a point in time: Unix milliseconds, or an RFC 3339 date-time
/// (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.250+02:00`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || format!("`{s}` is not Unix milliseconds or an RFC 3339 time like 2024-05-01T12:00:00Z");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        let f = &r[..digits];
        let padded: String = f.chars().chain(std::iter::repeat('0')).take(3).collect();
        frac_ms = padded.parse::<i64>().map_err(|_| bad())?;
        rest = &r[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh: i64 = o[1..3].parse().map_err(|_| bad())?;
            let om: i64 = o[4..6].parse().map_err(|_| bad())?;
            let m = oh * 60 + om;
            if o.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Ok(secs * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_time("2024-05-01T12:00:00.250Z"),
            Ok(1_714_564_800_250)
        );
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00"),
            Ok(1_714_564_800_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2024-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}

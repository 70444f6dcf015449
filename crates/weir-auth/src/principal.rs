//! Principals and sessions.

use std::fmt;
use std::net::IpAddr;

/// Who a connection acts as, in Kafka's `Type:name` form (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    /// `User` for every principal Kafka's own builders make.
    pub principal_type: String,
    /// The name within the type.
    pub name: String,
}

impl KafkaPrincipal {
    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: "User".into(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`, the principal of an unauthenticated connection.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// Parses `Type:name` (the name may itself hold colons).
    pub fn parse(s: &str) -> Option<Self> {
        let (t, n) = s.split_once(':')?;
        (!t.is_empty() && !n.is_empty()).then(|| Self {
            principal_type: t.into(),
            name: n.into(),
        })
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// A listener's security protocol (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    Plaintext,
    /// TLS, optionally with client certificates.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name for it (`SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Parses Kafka's name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    /// Whether clients must authenticate with SASL first.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// Whether the connection is wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// What the broker knows about the client behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The authenticated principal (`User:ANONYMOUS` without security).
    pub principal: KafkaPrincipal,
    /// The client's address; `None` for in-process callers.
    pub client_host: Option<IpAddr>,
    /// The listener's name (`PLAINTEXT`, `EXTERNAL`, ...).
    pub listener: String,
    /// The listener's protocol.
    pub protocol: SecurityProtocol,
}

impl Session {
    /// An unauthenticated session from `client_host` on a PLAINTEXT
    /// listener.
    pub fn anonymous(client_host: Option<IpAddr>) -> Self {
        Self {
            principal: KafkaPrincipal::anonymous(),
            client_host,
            listener: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
        }
    }

    /// The client's address as text, `""` when unknown.
    pub fn host(&self) -> String {
        self.client_host.map(|h| h.to_string()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_print_in_kafka_form() {
        let p = KafkaPrincipal::parse("User:CN=a,O=b:c").unwrap();
        assert_eq!(p.principal_type, "User");
        assert_eq!(p.name, "CN=a,O=b:c");
        assert_eq!(p.to_string(), "User:CN=a,O=b:c");
        assert!(KafkaPrincipal::parse("alice").is_none());
        assert!(KafkaPrincipal::parse(":alice").is_none());
        assert_eq!(KafkaPrincipal::anonymous().to_string(), "User:ANONYMOUS");
    }

    #[test]
    fn protocols_round_trip_their_names() {
        for p in [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ] {
            assert_eq!(SecurityProtocol::parse(p.name()), Some(p));
        }
        assert_eq!(
            SecurityProtocol::parse("sasl_ssl"),
            Some(SecurityProtocol::SaslSsl)
        );
        assert_eq!(SecurityProtocol::parse("TLS"), None);
    }
}

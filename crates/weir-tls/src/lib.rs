//! `weir-tls` owns TLS configuration for every Weir listener, Kafka and
//! HTTP alike: the server certificate and key from PEM files, optional
//! client certificates checked against a PEM CA bundle
//! (`ssl.client.auth`), the rustls server config, the handshake, and a
//! client certificate's subject in RFC 2253 form.
//!
//! The files are re-read when their modification time changes, checked
//! on each new connection, so a renewed certificate is served without a
//! restart. A reload that fails keeps the previous certificate (and says
//! so in the log).
//!
//! [`client`] is the other side, for Weir's connections to PostgreSQL.
//!
//! What a subject *means* (Kafka's `ssl.principal.mapping.rules`) is the
//! Kafka listener's business, not this crate's.

pub mod client;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The operator's TLS settings or files cannot be used.
    #[error("invalid security configuration {key}: {detail}")]
    Config {
        /// The setting (`ssl.certificate.location`, ...).
        key: &'static str,
        /// Why it cannot be used.
        detail: String,
    },
    /// The client did not complete the handshake (plaintext sent to a TLS
    /// port, a refused client certificate, a closed connection).
    #[error("TLS handshake failed: {source}")]
    Handshake {
        /// What the handshake reported.
        source: std::io::Error,
    },
    /// The client did not finish the handshake within [`HANDSHAKE_TIMEOUT`].
    #[error("TLS handshake not completed within {limit:?}")]
    HandshakeTimeout {
        /// The limit.
        limit: Duration,
    },
    /// A TLS client's settings cannot be used.
    #[error("invalid TLS client settings: {0}")]
    Client(String),
    /// PostgreSQL TLS settings (`sslmode`, `sslrootcert`, ...) that cannot
    /// be used; the message names the setting and the file.
    #[error("{0}")]
    PgSettings(String),
    /// A bug in Weir (rustls refusing its own safe defaults).
    #[error("internal TLS error: {0}")]
    Internal(String),
}

/// Whether TLS clients must present a certificate (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates.
    None,
    /// Asked for, not required.
    Requested,
    /// Required.
    Required,
}

impl ClientAuth {
    /// Parses Kafka's value.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "" => Some(Self::None),
            "requested" => Some(Self::Requested),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// Where a TLS listener's material comes from.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain (`ssl.certificate.location`).
    pub certificate: PathBuf,
    /// PEM private key (`ssl.key.location`).
    pub key: PathBuf,
    /// PEM CA bundle for client certificates (`ssl.truststore.location`).
    pub truststore: Option<PathBuf>,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
}

type Stamps = Vec<Option<SystemTime>>;

/// A TLS acceptor that follows its files.
pub struct TlsSource {
    settings: TlsSettings,
    current: Mutex<(TlsAcceptor, Stamps)>,
}

fn config_err(key: &'static str, detail: String) -> TlsError {
    TlsError::Config { key, detail }
}

fn stamp(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl TlsSettings {
    /// The settings from Kafka's config names, looked up with `get` (an
    /// absent or blank value is unset): `ssl.certificate.location`,
    /// `ssl.key.location`, `ssl.truststore.location`, `ssl.client.auth`.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, TlsError> {
        let path = |k: &str| {
            get(k)
                .filter(|v| !v.trim().is_empty())
                .map(|v| PathBuf::from(v.trim()))
        };
        let certificate = path("ssl.certificate.location").ok_or_else(|| {
            config_err(
                "ssl.certificate.location",
                "a TLS listener needs a PEM certificate".into(),
            )
        })?;
        let key = path("ssl.key.location").ok_or_else(|| {
            config_err(
                "ssl.key.location",
                "a TLS listener needs a PEM private key".into(),
            )
        })?;
        let client_auth = ClientAuth::parse(&get("ssl.client.auth").unwrap_or_default())
            .ok_or_else(|| {
                config_err(
                    "ssl.client.auth",
                    "expected none, requested or required".into(),
                )
            })?;
        Ok(Self {
            certificate,
            key,
            truststore: path("ssl.truststore.location"),
            client_auth,
        })
    }

    fn files(&self) -> Vec<&Path> {
        let mut v = vec![self.certificate.as_path(), self.key.as_path()];
        if let Some(t) = &self.truststore {
            v.push(t);
        }
        v
    }

    fn stamps(&self) -> Stamps {
        self.files().into_iter().map(stamp).collect()
    }

    /// Builds a rustls server config from the files.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.certificate)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| {
                config_err(
                    "ssl.certificate.location",
                    format!("{}: {e}", self.certificate.display()),
                )
            })?;
        if certs.is_empty() {
            return Err(config_err(
                "ssl.certificate.location",
                format!("{}: no certificate", self.certificate.display()),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| config_err("ssl.key.location", format!("{}: {e}", self.key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Internal(e.to_string()))?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Requested | ClientAuth::Required => {
                let path = self.truststore.as_ref().ok_or_else(|| {
                    config_err(
                        "ssl.truststore.location",
                        "ssl.client.auth needs a CA bundle to check client certificates".into(),
                    )
                })?;
                let bad = |e: &dyn std::fmt::Display| {
                    config_err(
                        "ssl.truststore.location",
                        format!("{}: {e}", path.display()),
                    )
                };
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(path)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| bad(&e))?;
                for ca in cas {
                    roots.add(ca).map_err(|e| bad(&e))?;
                }
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let v = if self.client_auth == ClientAuth::Requested {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                let verifier = v
                    .build()
                    .map_err(|e| config_err("ssl.truststore.location", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        builder
            .with_single_cert(certs, key)
            .map_err(|e| config_err("ssl.key.location", format!("key does not fit: {e}")))
    }
}

impl std::fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSource")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsSource {
    /// Loads the files; fails if they cannot be used.
    pub fn load(settings: TlsSettings) -> Result<Self, TlsError> {
        let stamps = settings.stamps();
        let acceptor = TlsAcceptor::from(Arc::new(settings.server_config()?));
        Ok(Self {
            settings,
            current: Mutex::new((acceptor, stamps)),
        })
    }

    /// The settings this source follows.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The acceptor for a new connection, reloaded first if a file changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.settings.stamps();
        if now != cur.1 {
            match self.settings.server_config() {
                Ok(c) => {
                    info!(certificate = %self.settings.certificate.display(), "TLS certificate reloaded");
                    *cur = (TlsAcceptor::from(Arc::new(c)), now);
                }
                Err(e) => {
                    // Keep serving the old certificate; try again when the
                    // files change next.
                    warn!(error = %e, "TLS reload failed; keeping the previous certificate");
                    cur.1 = now;
                }
            }
        }
        cur.0.clone()
    }

    /// Completes the server side of a handshake on `io`, within
    /// [`HANDSHAKE_TIMEOUT`]. Run it in the connection's own task so a
    /// slow client delays no one.
    pub async fn accept<IO>(&self, io: IO) -> Result<TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = self.acceptor();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(TlsError::Handshake { source }),
            Err(_) => Err(TlsError::HandshakeTimeout {
                limit: HANDSHAKE_TIMEOUT,
            }),
        }
    }
}

/// The first certificate the client presented, if any.
pub fn peer_certificate<IO>(stream: &TlsStream<IO>) -> Option<CertificateDer<'static>> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
}

/// A certificate's subject in RFC 2253 form (last RDN first, `,` between
/// RDNs, `+` inside one), as Java's `X500Principal.getName()` gives it.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let rdns: Vec<String> = c
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let name = match oid.as_str() {
                        "2.5.4.3" => "CN".to_string(),
                        "2.5.4.7" => "L".into(),
                        "2.5.4.8" => "ST".into(),
                        "2.5.4.10" => "O".into(),
                        "2.5.4.11" => "OU".into(),
                        "2.5.4.6" => "C".into(),
                        "2.5.4.9" => "STREET".into(),
                        "0.9.2342.19200300.100.1.25" => "DC".into(),
                        "0.9.2342.19200300.100.1.1" => "UID".into(),
                        other => other.to_string(),
                    };
                    let value = match atv.as_str() {
                        Ok(s) => escape_rfc2253(s),
                        Err(_) => {
                            let hex: String = atv
                                .attr_value()
                                .data
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            format!("#{hex}")
                        }
                    };
                    format!("{name}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// Escapes an attribute value as RFC 2253 requires.
fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2253_escapes_specials() {
        assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc2253("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc2253("plain"), "plain");
    }

    #[test]
    fn settings_name_the_missing_key() {
        let none = |_: &str| None;
        let err = TlsSettings::from_config(none).unwrap_err().to_string();
        assert!(err.contains("ssl.certificate.location"), "{err}");
        let some = |k: &str| match k {
            "ssl.certificate.location" | "ssl.key.location" => Some("x.pem".to_string()),
            "ssl.client.auth" => Some("sometimes".to_string()),
            _ => None,
        };
        let err = TlsSettings::from_config(some).unwrap_err().to_string();
        assert!(err.contains("ssl.client.auth"), "{err}");
    }

    #[test]
    fn unreadable_files_are_configuration_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let settings = TlsSettings {
            certificate: missing.clone(),
            key: missing,
            truststore: None,
            client_auth: ClientAuth::None,
        };
        match TlsSource::load(settings) {
            Err(TlsError::Config { key, .. }) => assert_eq!(key, "ssl.certificate.location"),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn client_auth_parses_kafka_values() {
        assert_eq!(ClientAuth::parse("required"), Some(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("REQUESTED"), Some(ClientAuth::Requested));
        assert_eq!(ClientAuth::parse("none"), Some(ClientAuth::None));
        assert_eq!(ClientAuth::parse("maybe"), None);
    }
}

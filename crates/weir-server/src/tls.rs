//! TLS for listeners: the server certificate and key from PEM files,
//! optional client certificates checked against a PEM CA bundle, and the
//! client's principal from its certificate's subject.
//!
//! The files are re-read when their modification time changes, checked
//! on each new connection, so a renewed certificate is served without a
//! restart. A reload that fails keeps the previous certificate (and says
//! so in the log).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};
use weir_auth::ssl_mapping::PrincipalMapper;
use weir_auth::AuthError;

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
    /// `ssl.principal.mapping.rules`.
    pub mapping_rules: String,
}

type Stamps = Vec<Option<SystemTime>>;

/// A TLS acceptor that follows its files.
pub struct TlsSource {
    settings: TlsSettings,
    mapper: PrincipalMapper,
    current: Mutex<(TlsAcceptor, Stamps)>,
}

fn config_err(name: &str, detail: String) -> AuthError {
    AuthError::Config {
        name: name.into(),
        detail,
    }
}

fn stamp(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl TlsSettings {
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
    pub fn server_config(&self) -> Result<rustls::ServerConfig, AuthError> {
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
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Requested | ClientAuth::Required => {
                let path = self.truststore.as_ref().ok_or_else(|| {
                    config_err(
                        "ssl.truststore.location",
                        "ssl.client.auth needs a CA bundle to check client certificates".into(),
                    )
                })?;
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(path)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        config_err(
                            "ssl.truststore.location",
                            format!("{}: {e}", path.display()),
                        )
                    })?;
                for ca in cas {
                    roots.add(ca).map_err(|e| {
                        config_err(
                            "ssl.truststore.location",
                            format!("{}: {e}", path.display()),
                        )
                    })?;
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
    pub fn load(settings: TlsSettings) -> Result<Self, AuthError> {
        let mapper = PrincipalMapper::parse(&settings.mapping_rules)?;
        let stamps = settings.stamps();
        let acceptor = TlsAcceptor::from(Arc::new(settings.server_config()?));
        Ok(Self {
            settings,
            mapper,
            current: Mutex::new((acceptor, stamps)),
        })
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

    /// The principal name for a client certificate, `None` when no
    /// mapping rule matches or the certificate cannot be read.
    pub fn principal_name(&self, cert: &CertificateDer<'_>) -> Option<String> {
        let dn = subject_dn(cert)?;
        self.mapper.map(&dn)
    }
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
    fn client_auth_parses_kafka_values() {
        assert_eq!(ClientAuth::parse("required"), Some(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("REQUESTED"), Some(ClientAuth::Requested));
        assert_eq!(ClientAuth::parse("none"), Some(ClientAuth::None));
        assert_eq!(ClientAuth::parse("maybe"), None);
    }
}

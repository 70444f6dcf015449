//! The client side, for Weir's own connections to other servers (the
//! PostgreSQL connectors and the cluster engine): a rustls client config
//! that checks the server as much as the caller asks, with an optional
//! client certificate, and libpq's `sslmode` with its certificate files.
//!
//! PostgreSQL's `sslmode` needs two checks rustls does not offer on its
//! own: none at all (`require` without a root certificate, as libpq does)
//! and the chain without the host name (`verify-ca`). Both still verify
//! the handshake's signatures, so the session is bound to the key of the
//! certificate the server presented.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::TlsError;

/// How much of the server's certificate a client checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCheck {
    /// Nothing: encryption against passive eavesdropping only.
    None,
    /// The chain up to one of the roots, not the host name.
    Chain,
    /// The chain and the host name (or IP address).
    Full,
}

/// A client certificate chain and its key.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A rustls client config: `roots` (needed unless `check` is
/// [`ServerCheck::None`]) and an optional client `identity`.
pub fn client_config(
    check: ServerCheck,
    roots: Vec<CertificateDer<'static>>,
    identity: Option<Identity>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A system bundle may hold certificates webpki cannot parse; skip
    // them, as an empty store is refused below when roots are needed.
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(roots);
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        ServerCheck::None => Arc::new(NoCheck(provider.clone())),
        ServerCheck::Chain | ServerCheck::Full => {
            if store.is_empty() {
                return Err(TlsError::Client(
                    "checking the server's certificate needs a root certificate".into(),
                ));
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Client(e.to_string()))?;
            if check == ServerCheck::Full {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Internal(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::Client(format!("client key does not fit its certificate: {e}"))),
    }
}

/// libpq's `sslmode`, for Weir's PostgreSQL clients (the CDC source, the
/// JDBC sink, the cluster engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext; TLS if the server refuses the plaintext connection.
    Allow,
    /// TLS if the server offers it (or the handshake or the login over it
    /// fails), else plaintext. libpq's and PgJDBC's default.
    #[default]
    Prefer,
    /// TLS; the certificate is checked (as `verify-ca`) only when a root
    /// certificate is given, as libpq does.
    Require,
    /// TLS; the server's chain must lead to the root certificate.
    VerifyCa,
    /// `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's value.
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's name.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS settings: the mode and PEM files (libpq's `sslrootcert`, `sslcert`,
/// `sslkey`; a DER PKCS#8 key, PgJDBC's `.pk8`, is read too).
#[derive(Debug, Clone, Default)]
pub struct PgTlsConfig {
    pub mode: SslMode,
    pub rootcert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl PgTlsConfig {
    /// The rustls config, `None` for `disable`. Reads the files, so a bad
    /// setting shows before the first connection.
    pub fn client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
            TlsError::PgSettings(format!("{what} {}: {e}", path.display()))
        };
        let roots = match &self.rootcert {
            None => Vec::new(),
            Some(p) => {
                let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p)
                    .and_then(|i| i.collect::<Result<_, _>>())
                    .map_err(|e| bad("sslrootcert", p, &e))?;
                if roots.is_empty() {
                    return Err(bad("sslrootcert", p, &"no certificate in the file"));
                }
                roots
            }
        };
        let check = match self.mode {
            SslMode::VerifyFull => ServerCheck::Full,
            SslMode::VerifyCa => ServerCheck::Chain,
            SslMode::Require if !roots.is_empty() => ServerCheck::Chain,
            _ => ServerCheck::None,
        };
        if check != ServerCheck::None && roots.is_empty() {
            return Err(TlsError::PgSettings(format!(
                "sslmode={} needs a root certificate (sslrootcert) to check the server's",
                self.mode.name()
            )));
        }
        let identity = match (&self.cert, &self.key) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(TlsError::PgSettings(
                    "a client certificate needs both sslcert and sslkey".into(),
                ))
            }
            (Some(c), Some(k)) => {
                let raw = std::fs::read(k).map_err(|e| bad("sslkey", k, &e))?;
                let text = String::from_utf8_lossy(&raw);
                if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED")
                {
                    return Err(bad(
                        "sslkey",
                        k,
                        &"encrypted keys (sslpassword) are not supported; give the key unencrypted",
                    ));
                }
                let key = if text.contains("-----BEGIN") {
                    PrivateKeyDer::from_pem_slice(&raw).map_err(|e| bad("sslkey", k, &e))?
                } else {
                    PrivateKeyDer::Pkcs8(raw.into())
                };
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(c)
                    .and_then(|i| i.collect::<Result<_, _>>())
                    .map_err(|e| bad("sslcert", c, &e))?;
                if certs.is_empty() {
                    return Err(bad("sslcert", c, &"no certificate in the file"));
                }
                Some((certs, key))
            }
        };
        client_config(check, roots, identity).map(|c| Some(Arc::new(c)))
    }
}

/// Accepts any certificate; checks the handshake's signatures.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// WebPKI's check without the name: webpki checks the chain first, so a
/// name mismatch means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checking_needs_a_root() {
        assert!(client_config(ServerCheck::None, vec![], None).is_ok());
        for check in [ServerCheck::Chain, ServerCheck::Full] {
            let err = client_config(check, vec![], None).unwrap_err().to_string();
            assert!(err.contains("root certificate"), "{err}");
        }
    }

    #[test]
    fn sslmode_names_round_trip() {
        for m in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(m.name()), Some(m));
        }
        assert_eq!(SslMode::parse("VERIFY-FULL"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("on"), None);
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }

    #[test]
    fn unusable_settings_fail_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let msg = |t: PgTlsConfig| t.client_config().unwrap_err().to_string();
        let none = PgTlsConfig::default();
        assert!(none.client_config().unwrap().is_some());
        let off = PgTlsConfig {
            mode: SslMode::Disable,
            ..PgTlsConfig::default()
        };
        assert!(off.client_config().unwrap().is_none());
        let e = msg(PgTlsConfig {
            mode: SslMode::VerifyFull,
            ..PgTlsConfig::default()
        });
        assert!(
            e.contains("sslrootcert") && e.contains("verify-full"),
            "{e}"
        );
        let e = msg(PgTlsConfig {
            mode: SslMode::VerifyCa,
            rootcert: Some(dir.path().join("missing.pem")),
            ..PgTlsConfig::default()
        });
        assert!(e.contains("missing.pem"), "{e}");
        let e = msg(PgTlsConfig {
            cert: Some(dir.path().join("c.pem")),
            ..PgTlsConfig::default()
        });
        assert!(e.contains("sslkey"), "{e}");
        let key = dir.path().join("k.pem");
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "").unwrap();
        let e = msg(PgTlsConfig {
            cert: Some(cert),
            key: Some(key),
            ..PgTlsConfig::default()
        });
        assert!(e.contains("sslpassword") && e.contains("k.pem"), "{e}");
    }
}

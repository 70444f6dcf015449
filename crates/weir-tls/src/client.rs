//! The client side, for Weir's own connections to other servers (the
//! PostgreSQL connectors): a rustls client config that checks the server
//! as much as the caller asks, with an optional client certificate.
//!
//! PostgreSQL's `sslmode` needs two checks rustls does not offer on its
//! own: none at all (`require` without a root certificate, as libpq does)
//! and the chain without the host name (`verify-ca`). Both still verify
//! the handshake's signatures, so the session is bound to the key of the
//! certificate the server presented.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
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
}

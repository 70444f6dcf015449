//! Arbitrary bytes as what HTTP clients and TLS peers hand Weir's HTTP
//! services: an `Authorization` header (basic and bearer) checked by
//! `weir_http::HttpAuth`, and a DER certificate whose subject
//! `weir_tls::subject_dn` prints. Bad input must be refused, never crash.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use weir_http::security::{BoxFuture, PasswordVerifier};

#[derive(Debug)]
struct OneUser;

impl PasswordVerifier for OneUser {
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<bool, weir_http::HttpError>> {
        Box::pin(async move { Ok(user == "alice" && password == "secret") })
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn auth() -> &'static weir_http::HttpAuth {
    static AUTH: OnceLock<weir_http::HttpAuth> = OnceLock::new();
    AUTH.get_or_init(|| {
        // An empty key set: every token is refused, after being parsed.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys":[]}"#).expect("JWKS file");
        let jwks = weir_auth::oauth::Jwks::open(&format!("file://{}", path.display()))
            .expect("empty JWKS");
        // The JWKS file stays for the process; the guard must not delete it.
        let _ = dir.keep();
        let rules = weir_auth::oauth::TokenRules {
            subject_claim: "sub".into(),
            ..Default::default()
        };
        weir_http::HttpAuth {
            basic: Some(Arc::new(OneUser)),
            bearer: Some((jwks, rules)),
            audit: None,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let cert = rustls::pki_types::CertificateDer::from(data);
    let _ = weir_tls::subject_dn(&cert);
    for prefix in [&b""[..], b"Basic ", b"Bearer "] {
        let value = [prefix, data].concat();
        let Ok(value) = axum::http::HeaderValue::from_bytes(&value) else {
            continue;
        };
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, value);
        let _ = runtime().block_on(auth().check(&headers));
    }
});

//! SASL OAUTHBEARER (RFC 7628, KIP-255) with unsecured-free validation:
//! the client's JWT must be signed by a key of the configured JWKS.
//!
//! Checks, as Kafka's `OAuthBearerValidatorCallbackHandler` does: the
//! signature (RS256/384/512, PS256/384/512, ES256/384, chosen by the
//! key's `kid`), `exp` (required), `nbf` and `iat` (not in the future),
//! optional expected issuer and audience, and the principal claim
//! (`sasl.oauthbearer.sub.claim.name`, default `sub`), with 30 seconds of
//! clock skew. A refused token gets RFC 7628's error challenge
//! `{"status":"invalid_token"}`; the client answers `\x01` and the
//! exchange fails, as in Kafka's `OAuthBearerSaslServer`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::sasl::{Mechanism, SaslServer, SaslStep};
use crate::{AuthError, KafkaPrincipal};

/// Allowed clock skew, in seconds (Kafka's
/// `sasl.oauthbearer.clock.skew.seconds` default).
const CLOCK_SKEW_SECS: u64 = 30;

/// The parsed client message.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientMessage<'a> {
    /// `a=` of the GS2 header, if any.
    pub authzid: Option<&'a str>,
    /// The bearer token.
    pub token: &'a str,
}

fn malformed(detail: &str) -> AuthError {
    AuthError::Malformed {
        mechanism: "OAUTHBEARER",
        detail: detail.into(),
    }
}

/// Parses RFC 7628's client initial response:
/// `n,[a=authzid],\x01auth=Bearer <token>\x01[key=value\x01]*\x01`.
pub fn parse_client_message(msg: &[u8]) -> Result<ClientMessage<'_>, AuthError> {
    let text = std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))?;
    let rest = text
        .strip_prefix("n,")
        .ok_or_else(|| malformed("GS2 header must start with `n,`"))?;
    let (authz, rest) = rest
        .split_once(',')
        .ok_or_else(|| malformed("GS2 header is not terminated"))?;
    let authzid = match authz {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .filter(|a| !a.is_empty())
                .ok_or_else(|| malformed("bad authorization id"))?,
        ),
    };
    let body = rest
        .strip_prefix('\x01')
        .and_then(|r| r.strip_suffix("\x01\x01"))
        .ok_or_else(|| malformed("key/value pairs must be framed by \\x01"))?;
    let mut token = None;
    for kv in body.split('\x01') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| malformed("a key/value pair has no `=`"))?;
        if k == "auth" {
            let (scheme, t) = v
                .split_once(' ')
                .ok_or_else(|| malformed("auth value is not `Bearer <token>`"))?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(malformed("auth scheme is not Bearer"));
            }
            let t = t.trim_start_matches(' ');
            if t.is_empty()
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(malformed("token has characters outside the JWT alphabet"));
            }
            token = Some(t);
        } else if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(malformed("bad extension key"));
        }
    }
    let token = token.ok_or_else(|| malformed("no auth=Bearer pair"))?;
    Ok(ClientMessage { authzid, token })
}

/// What a token must satisfy.
#[derive(Debug, Clone, Default)]
pub struct TokenRules {
    /// Expected `iss`; `None` accepts any.
    pub issuer: Option<String>,
    /// Audiences of which `aud` must hold one; empty accepts any.
    pub audience: Vec<String>,
    /// The claim naming the principal (`sub`).
    pub subject_claim: String,
}

/// A validated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal name.
    pub subject: String,
    /// `exp`, in epoch milliseconds.
    pub expires_at_ms: i64,
}

#[derive(Debug, Default)]
struct LoadedJwks {
    set: Option<JwkSet>,
    modified: Option<SystemTime>,
}

/// A JWKS from a file, re-read when it changes.
#[derive(Debug, Clone)]
pub struct Jwks {
    path: PathBuf,
    loaded: Arc<RwLock<LoadedJwks>>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Jwks {
    /// Opens `url`, a `file://` URL or a plain path. HTTP endpoints are
    /// not fetched (see the README).
    pub fn open(url: &str) -> Result<Self, AuthError> {
        let config = |detail: String| AuthError::Config {
            name: "sasl.oauthbearer.jwks.endpoint.url".into(),
            detail,
        };
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(config(
                "only file:// JWKS are supported; save the issuer's JWKS to a file".into(),
            ));
        }
        let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        let j = Self {
            path,
            loaded: Arc::default(),
        };
        j.reload().map_err(|e| config(e.to_string()))?;
        Ok(j)
    }

    /// Parses a JWKS document.
    pub fn parse(text: &str) -> Result<JwkSet, AuthError> {
        serde_json::from_str(text).map_err(|e| AuthError::BadValue {
            detail: format!("not a JWKS: {e}"),
        })
    }

    fn reload(&self) -> Result<(), AuthError> {
        let stamp = modified(&self.path);
        let text = std::fs::read_to_string(&self.path).map_err(|e| AuthError::BadValue {
            detail: format!("cannot read {}: {e}", self.path.display()),
        })?;
        let set = Self::parse(&text)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = LoadedJwks {
            set: Some(set),
            modified: stamp,
        };
        Ok(())
    }

    /// The current key set (re-read first if the file changed; a bad new
    /// file keeps the previous keys).
    fn current(&self) -> Option<JwkSet> {
        let seen = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .modified;
        if modified(&self.path) != seen {
            let _ = self.reload();
        }
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .clone()
    }

    /// Validates `token` against the current keys and `rules`.
    pub fn validate(&self, token: &str, rules: &TokenRules) -> Result<ValidToken, AuthError> {
        let set = self.current().ok_or_else(|| invalid("no JWKS loaded"))?;
        validate_token(&set, token, rules, now_secs())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Validates `token` against `set` at time `now` (epoch seconds).
pub fn validate_token(
    set: &JwkSet,
    token: &str,
    rules: &TokenRules,
    now: u64,
) -> Result<ValidToken, AuthError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("bad JWT: {e}")))?;
    let alg = header.alg;
    if !matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
    ) {
        return Err(invalid(format!("algorithm {alg:?} is not accepted")));
    }
    let candidates: Vec<_> = match &header.kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid.as_str()))
            .collect(),
        None => set.keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(invalid("no JWKS key matches the token's kid"));
    }
    let mut v = Validation::new(alg);
    v.leeway = CLOCK_SKEW_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp"]);
    match &rules.issuer {
        Some(i) => v.set_issuer(&[i]),
        None => v.iss = None,
    }
    if rules.audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&rules.audience);
    }
    // jsonwebtoken checks exp/nbf against the system clock; `now` is
    // only used for iat here (tests pass real time).
    let mut last = String::from("signature does not verify");
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<serde_json::Value>(token, &key, &v) {
            Ok(data) => {
                let claims = data.claims;
                if let Some(iat) = claims.get("iat").and_then(serde_json::Value::as_f64) {
                    if iat > (now + CLOCK_SKEW_SECS) as f64 {
                        return Err(invalid("token issued in the future"));
                    }
                }
                let subject = claims
                    .get(&rules.subject_claim)
                    .and_then(serde_json::Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| invalid(format!("no `{}` claim", rules.subject_claim)))?;
                let exp = claims
                    .get("exp")
                    .and_then(serde_json::Value::as_f64)
                    .ok_or_else(|| invalid("no exp claim"))?;
                return Ok(ValidToken {
                    subject: subject.to_string(),
                    expires_at_ms: (exp * 1000.0) as i64,
                });
            }
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                last = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired".into(),
                    ErrorKind::ImmatureSignature => "token not yet valid".into(),
                    ErrorKind::InvalidIssuer => "unexpected issuer".into(),
                    ErrorKind::InvalidAudience => "unexpected audience".into(),
                    ErrorKind::InvalidSignature => "signature does not verify".into(),
                    ErrorKind::MissingRequiredClaim(c) => format!("no {c} claim"),
                    other => format!("{other:?}"),
                };
                // A wrong key tries the next; anything else is final.
                if !matches!(
                    e.kind(),
                    ErrorKind::InvalidSignature | ErrorKind::InvalidKeyFormat
                ) {
                    return Err(invalid(last));
                }
            }
        }
    }
    Err(invalid(last))
}

/// A refused token.
fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken {
        reason: reason.into(),
    }
}

/// The OAUTHBEARER mechanism.
#[derive(Debug, Clone)]
pub struct OAuthBearer {
    jwks: Jwks,
    rules: Arc<TokenRules>,
}

impl OAuthBearer {
    /// OAUTHBEARER over `jwks` with `rules`.
    pub fn new(jwks: Jwks, rules: TokenRules) -> Self {
        Self {
            jwks,
            rules: Arc::new(rules),
        }
    }
}

impl Mechanism for OAuthBearer {
    fn name(&self) -> &'static str {
        "OAUTHBEARER"
    }

    fn start(&self) -> Box<dyn SaslServer> {
        Box::new(OAuthServer {
            mech: self.clone(),
            error: None,
            done: false,
        })
    }
}

#[derive(Debug)]
struct OAuthServer {
    mech: OAuthBearer,
    /// Why the token was refused, once the error challenge was sent.
    error: Option<String>,
    done: bool,
}

/// RFC 7628's error challenge for an invalid token.
pub const INVALID_TOKEN_CHALLENGE: &[u8] = br#"{"status":"invalid_token"}"#;

impl SaslServer for OAuthServer {
    fn step(&mut self, client_message: &[u8]) -> Result<SaslStep, AuthError> {
        if self.done {
            return Err(malformed("the exchange is over"));
        }
        if let Some(reason) = self.error.take() {
            self.done = true;
            // The client acknowledges the error challenge with \x01.
            return Err(AuthError::Authentication {
                reason: format!("Authentication failed: {reason}"),
            });
        }
        let msg = parse_client_message(client_message)?;
        match self.mech.jwks.validate(msg.token, &self.mech.rules) {
            Ok(t) => {
                if msg.authzid.is_some_and(|a| a != t.subject) {
                    self.error = Some("authorization id differs from the token's principal".into());
                    return Ok(SaslStep::Challenge(INVALID_TOKEN_CHALLENGE.to_vec()));
                }
                self.done = true;
                Ok(SaslStep::Done {
                    principal: KafkaPrincipal::user(t.subject),
                    message: Vec::new(),
                    expires_at_ms: Some(t.expires_at_ms),
                })
            }
            Err(reason) => {
                self.error = Some(reason.to_string());
                Ok(SaslStep::Challenge(INVALID_TOKEN_CHALLENGE.to_vec()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_per_rfc_7628() {
        let m = parse_client_message(b"n,,\x01auth=Bearer abc.def-_.ghi\x01\x01").unwrap();
        assert_eq!(m.token, "abc.def-_.ghi");
        assert_eq!(m.authzid, None);
        let m = parse_client_message(b"n,a=alice,\x01auth=Bearer t.t.t\x01ext=1\x01\x01").unwrap();
        assert_eq!(m.authzid, Some("alice"));
        for bad in [
            &b""[..],
            b"y,,\x01auth=Bearer t\x01\x01",
            b"n,,auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01auth=Bearer a b\x01\x01",
            b"n,,\x01other=1\x01\x01",
            b"n,x,\x01auth=Bearer t\x01\x01",
            b"\xff",
        ] {
            assert!(parse_client_message(bad).is_err(), "{bad:?}");
        }
    }

    use base64::Engine as _;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// A fresh P-256 key: its encoding key and its JWK (kid `kid`).
    fn key(kid: &str) -> (jsonwebtoken::EncodingKey, serde_json::Value) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        });
        (jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn token(k: &jsonwebtoken::EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims, k).unwrap()
    }

    fn rules() -> TokenRules {
        TokenRules {
            subject_claim: "sub".into(),
            ..TokenRules::default()
        }
    }

    #[test]
    fn tokens_signed_by_a_jwks_key_validate_and_others_do_not() {
        let (k1, jwk1) = key("k1");
        let (k2, _) = key("k2");
        let set: JwkSet = serde_json::from_value(serde_json::json!({ "keys": [jwk1] })).unwrap();
        let now = now_secs();
        let exp = now + 600;
        let good = token(
            &k1,
            "k1",
            serde_json::json!({"sub": "alice", "exp": exp, "iat": now}),
        );
        let t = validate_token(&set, &good, &rules(), now).unwrap();
        assert_eq!(t.subject, "alice");
        assert_eq!(t.expires_at_ms, i64::try_from(exp).unwrap() * 1000);

        let expired = token(
            &k1,
            "k1",
            serde_json::json!({"sub": "alice", "exp": now - 120}),
        );
        assert_eq!(
            validate_token(&set, &expired, &rules(), now)
                .unwrap_err()
                .to_string(),
            "token expired"
        );
        let wrong_key = token(&k2, "k1", serde_json::json!({"sub": "alice", "exp": exp}));
        assert!(validate_token(&set, &wrong_key, &rules(), now).is_err());
        let unknown_kid = token(&k2, "k2", serde_json::json!({"sub": "alice", "exp": exp}));
        assert!(validate_token(&set, &unknown_kid, &rules(), now).is_err());
        let no_exp = token(&k1, "k1", serde_json::json!({"sub": "alice"}));
        assert!(validate_token(&set, &no_exp, &rules(), now).is_err());
        let no_sub = token(&k1, "k1", serde_json::json!({"exp": exp}));
        assert!(validate_token(&set, &no_sub, &rules(), now).is_err());
        let future = token(
            &k1,
            "k1",
            serde_json::json!({"sub": "a", "exp": exp, "nbf": now + 300}),
        );
        assert!(validate_token(&set, &future, &rules(), now).is_err());
        let future_iat = token(
            &k1,
            "k1",
            serde_json::json!({"sub": "a", "exp": exp, "iat": now + 300}),
        );
        assert!(validate_token(&set, &future_iat, &rules(), now).is_err());
        // A tampered payload fails the signature.
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"sub":"admin","exp":{exp}}}"#));
        parts[1] = &evil;
        assert!(validate_token(&set, &parts.join("."), &rules(), now).is_err());
    }

    #[test]
    fn issuer_audience_and_subject_claim_are_checked() {
        let (k, jwk) = key("k");
        let set: JwkSet = serde_json::from_value(serde_json::json!({ "keys": [jwk] })).unwrap();
        let now = now_secs();
        let r = TokenRules {
            issuer: Some("https://idp".into()),
            audience: vec!["weir".into()],
            subject_claim: "client_id".into(),
        };
        let ok = token(
            &k,
            "k",
            serde_json::json!({
            "client_id": "svc", "iss": "https://idp", "aud": ["x", "weir"], "exp": now + 60}),
        );
        assert_eq!(validate_token(&set, &ok, &r, now).unwrap().subject, "svc");
        let bad_iss = token(
            &k,
            "k",
            serde_json::json!({
            "client_id": "svc", "iss": "https://evil", "aud": "weir", "exp": now + 60}),
        );
        assert!(validate_token(&set, &bad_iss, &r, now).is_err());
        let bad_aud = token(
            &k,
            "k",
            serde_json::json!({
            "client_id": "svc", "iss": "https://idp", "aud": "other", "exp": now + 60}),
        );
        assert!(validate_token(&set, &bad_aud, &r, now).is_err());
    }

    #[test]
    fn the_mechanism_sends_the_error_challenge_then_fails() {
        let (k, jwk) = key("k");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
        let m = OAuthBearer::new(
            Jwks::open(&format!("file://{}", path.display())).unwrap(),
            rules(),
        );
        let now = now_secs();
        let good = token(
            &k,
            "k",
            serde_json::json!({"sub": "alice", "exp": now + 60}),
        );
        let msg = format!("n,,\x01auth=Bearer {good}\x01\x01");
        match m.start().step(msg.as_bytes()).unwrap() {
            SaslStep::Done {
                principal,
                expires_at_ms,
                ..
            } => {
                assert_eq!(principal.to_string(), "User:alice");
                assert!(expires_at_ms.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
        let expired = token(
            &k,
            "k",
            serde_json::json!({"sub": "alice", "exp": now - 100}),
        );
        let mut s = m.start();
        let msg = format!("n,,\x01auth=Bearer {expired}\x01\x01");
        assert_eq!(
            s.step(msg.as_bytes()).unwrap(),
            SaslStep::Challenge(INVALID_TOKEN_CHALLENGE.to_vec())
        );
        assert!(s.step(b"\x01").is_err());
        // An authorization id other than the subject is refused too.
        let mut s = m.start();
        let msg = format!("n,a=bob,\x01auth=Bearer {good}\x01\x01");
        assert!(matches!(
            s.step(msg.as_bytes()).unwrap(),
            SaslStep::Challenge(_)
        ));
        assert!(s.step(b"\x01").is_err());
    }

    #[test]
    fn garbage_tokens_are_refused_without_panicking() {
        let set = Jwks::parse(r#"{"keys":[]}"#).unwrap();
        let rules = TokenRules {
            subject_claim: "sub".into(),
            ..TokenRules::default()
        };
        for t in ["", "a", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "....."] {
            assert!(validate_token(&set, t, &rules, now_secs()).is_err(), "{t}");
        }
    }
}

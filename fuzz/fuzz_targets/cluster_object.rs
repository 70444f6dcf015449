//! Cluster mode's intake objects (header and chunk placement) on
//! arbitrary bytes: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_cluster::format::{decode_header, place};

fuzz_target!(|data: &[u8]| {
    if let Ok((entries, start)) = decode_header(data) {
        let mut at = start;
        for e in entries {
            let end = at + e.size as usize;
            let _ = place(&data[at..end], i64::from(e.partition));
            at = end;
        }
    }
    // A chunk on its own, placed at a base taken from the input.
    if data.len() >= 8 {
        let base = i64::from_be_bytes(data[..8].try_into().unwrap_or_default());
        let _ = place(&data[8..], base);
    }
});

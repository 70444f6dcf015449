//! Arbitrary bytes as offset and time index files: load checks and lookups.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weir_log::local::index::fuzz_index_bytes(data);
});

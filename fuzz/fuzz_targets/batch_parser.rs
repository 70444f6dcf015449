//! Arbitrary bytes through the append validation path and the stored-batch
//! helpers (recovery check, record walk, kafka-protocol decode).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weir_log::batch::fuzz_batch_bytes(data);
});

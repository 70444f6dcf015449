//! The fuzz targets' functions, fed random and mutated input on every test
//! run (the `fuzz/` crate runs them under libFuzzer).

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;

fn valid_batches() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..5,
        1usize..6,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..30),
    )
        .prop_map(|(c, n, keyed, value)| {
            let recs: Vec<_> = (0..n)
                .map(|i| {
                    let k = format!("k{i}");
                    record(
                        i as i64,
                        1_700_000_000_000 + i as i64,
                        keyed.then_some(k.as_bytes()),
                        Some(&value),
                    )
                })
                .collect();
            let codec = weir_log::batch::CODECS[usize::from(c)];
            encode(&recs, codec).to_vec()
        })
}

/// A valid batch with some bytes changed; with `fix_crc`, the CRC is
/// recomputed so the damage reaches the record decoder.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        valid_batches(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<bool>(),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(mut b, flips, fix_crc, cut)| {
            for (i, v) in flips {
                let at = i.index(b.len());
                b[at] = v;
            }
            if fix_crc && b.len() >= 61 {
                let crc = weir_log::batch::compute_crc(&b);
                b[17..21].copy_from_slice(&crc.to_be_bytes());
            }
            if let Some(c) = cut {
                b.truncate(c.index(b.len() + 1));
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn batch_parser_never_panics_on_random_bytes(selector in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut input = vec![selector];
        input.extend_from_slice(&data);
        weir_log::batch::fuzz_batch_bytes(&input);
    }

    #[test]
    fn batch_parser_never_panics_on_mutated_batches(selector in any::<u8>(), data in mutated()) {
        let mut input = vec![selector];
        input.extend_from_slice(&data);
        weir_log::batch::fuzz_batch_bytes(&input);
        // The untouched path must accept the batch when nothing changed.
        let _ = weir_log::batch::validate_append(&Bytes::from(data), &weir_log::LogConfig::default(), 0);
    }

    #[test]
    fn index_reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        weir_log::local::index::fuzz_index_bytes(&data);
    }

    #[test]
    fn index_reader_on_sorted_entries(mut entries in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..50)) {
        entries.sort();
        let mut data = Vec::new();
        for (a, b) in entries {
            data.extend_from_slice(&a.to_be_bytes());
            data.extend_from_slice(&b.to_be_bytes());
        }
        weir_log::local::index::fuzz_index_bytes(&data);
    }
}

#[test]
fn valid_batches_pass_validation() {
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&valid_batches(), |b| {
            let v = weir_log::batch::validate_append(
                &Bytes::from(b),
                &weir_log::LogConfig::default(),
                1_700_000_000_000,
            );
            prop_assert!(v.is_ok(), "{:?}", v.err());
            Ok(())
        })
        .unwrap();
}

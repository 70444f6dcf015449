//! Arbitrary bytes as the broker's and log's own state records: producer
//! state snapshots, `__transaction_state` and `__consumer_offsets` keys and
//! values. A damaged data directory must give errors, never a crash.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = weir_log::producer::ProducerStates::decode_snapshot(data);
    let b = Bytes::copy_from_slice(data);
    let _ = weir_broker::txn_store::decode_key(&b);
    let _ = weir_broker::txn_store::decode_value(&b);
    let _ = weir_broker::group_store::decode_key(&b);
    let _ = weir_broker::group_store::decode_offset(&b);
    let _ = weir_broker::group_store::decode_group("g", &b);
    // KIP-848 consumer and share group records: every key type's value decoders.
    use weir_broker::group_store::{decode_consumer, decode_share, ConsumerKey};
    for key in [
        ConsumerKey::Metadata,
        ConsumerKey::Topics,
        ConsumerKey::Member(String::new()),
        ConsumerKey::TargetMetadata,
        ConsumerKey::Target(String::new()),
        ConsumerKey::Current(String::new()),
    ] {
        let _ = decode_consumer(&key, &b);
        let _ = decode_share(&key, &b);
    }
    let _ = weir_log::producer::control_type(&b);
});

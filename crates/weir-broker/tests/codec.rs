//! The request decoder never panics, whatever the bytes.

use bytes::Bytes;
use proptest::prelude::*;
use weir_broker::codec::decode_request;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_frames_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(Bytes::from(bytes));
    }

    /// Every served API key and version, with a random body: errors only.
    #[test]
    fn random_bodies_for_every_served_api(key in 0i16..80, version in 0i16..20, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut frame = Vec::with_capacity(10 + body.len());
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&1i32.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes());
        frame.extend_from_slice(&body);
        let _ = decode_request(Bytes::from(frame));
    }
}

#[test]
fn huge_array_counts_do_not_allocate() {
    // Metadata v1: header (client id null) then a topics array claiming
    // two billion entries. Unpatched kafka-protocol aborts the process here.
    let mut frame = vec![0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff];
    frame.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert!(decode_request(Bytes::from(frame)).is_err());
    // Metadata v9 (flexible): a compact array with a count near 2^32.
    let mut frame = vec![0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0];
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode_request(Bytes::from(frame)).is_err());
}

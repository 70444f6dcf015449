//! Records of the `__transaction_state` topic, in Kafka's own formats
//! (`TransactionLogKey` / `TransactionLogValue`), so that tools which read
//! the topic understand Weir's as they do Kafka's.
//!
//! Key version 0 is `(transactional_id)`. Values are written as Kafka
//! writes them: version 0 at `transaction.version` 0 (producer id, epoch,
//! timeout, status, partitions (null when the state is `Empty`), last update
//! and start timestamps), version 1 from `transaction.version` 1 (the same,
//! flexible, plus the tagged previous/next producer ids and client
//! transaction version, each written only when not at its default). Both are
//! decoded; unknown tagged fields are skipped. A null value is a tombstone.
//! Decoders never panic: bad bytes give `None`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::internal_records::{
    put_compact_len, put_compact_str, put_len, put_str, put_uvarint, Reader,
};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Kafka's default `transaction.state.log.num.partitions`.
pub const DEFAULT_PARTITIONS: i32 = 50;

/// The `__transaction_state` partition of a transactional id: Kafka's
/// `abs(transactionalId.hashCode()) % partitions`, the same rule as for
/// groups in `__consumer_offsets`.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group_store::partition_for(transactional_id, partitions)
}

/// A decoded `TransactionLogValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// Producer id in use by the transactional id.
    pub producer_id: i64,
    /// Producer id of the last committed transaction (version 1 tag 0; -1
    /// when absent).
    pub previous_producer_id: i64,
    /// Latest producer id sent to the producer (version 1 tag 1; -1 when
    /// absent).
    pub next_producer_id: i64,
    /// Epoch of `producer_id`.
    pub producer_epoch: i16,
    /// Transaction timeout (ms).
    pub timeout_ms: i32,
    /// Kafka's transaction state id (0 Empty .. 7 PrepareEpochFence).
    pub status: i8,
    /// Partitions of the transaction, per topic; `None` is written as a
    /// null array (Kafka does so for `Empty`).
    pub partitions: Option<Vec<(String, Vec<i32>)>>,
    /// When the transaction was last updated (ms).
    pub last_update_ms: i64,
    /// When the transaction started (ms), or -1.
    pub start_ms: i64,
    /// The client's transaction version (version 1 tag 2; 0 when absent).
    pub client_transaction_version: i16,
}

/// Encodes a key (version 0).
pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

/// Encodes a value at `version` 0 (the tagged version 1 fields are
/// dropped, as Kafka drops them when it writes version 0) or 1.
pub fn value(v: &TxnValue, version: i16) -> Bytes {
    let flexible = version >= 1;
    let len = |b: &mut BytesMut, n: usize| {
        if flexible {
            put_compact_len(b, n);
        } else {
            put_len(b, n);
        }
    };
    let mut b = BytesMut::new();
    b.put_i16(i16::from(flexible));
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.timeout_ms);
    b.put_i8(v.status);
    match &v.partitions {
        None if flexible => b.put_u8(0),
        None => b.put_i32(-1),
        Some(topics) => {
            len(&mut b, topics.len());
            for (topic, ids) in topics {
                if flexible {
                    put_compact_str(&mut b, topic);
                } else {
                    put_str(&mut b, topic);
                }
                len(&mut b, ids.len());
                for id in ids {
                    b.put_i32(*id);
                }
                if flexible {
                    b.put_u8(0); // no tagged fields
                }
            }
        }
    }
    b.put_i64(v.last_update_ms);
    b.put_i64(v.start_ms);
    if flexible {
        // Tagged fields in tag order, each only when not at its default.
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != -1 {
            tags.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
        }
        if v.next_producer_id != -1 {
            tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
        }
        if v.client_transaction_version != 0 {
            tags.push((2, v.client_transaction_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut b, u32::try_from(tags.len()).unwrap_or(u32::MAX));
        for (tag, data) in tags {
            put_uvarint(&mut b, tag);
            put_uvarint(&mut b, u32::try_from(data.len()).unwrap_or(u32::MAX));
            b.put_slice(&data);
        }
    }
    b.freeze()
}

/// Decodes a key to its transactional id; `None` for unknown versions or
/// bad bytes.
pub fn decode_key(key: &Bytes) -> Option<String> {
    let mut r = Reader(key.clone());
    match r.i16()? {
        0 => r.str(),
        _ => None,
    }
}

/// Decodes a value (versions 0 and 1); `None` for unknown versions or bad
/// bytes.
pub fn decode_value(value: &Bytes) -> Option<TxnValue> {
    let mut r = Reader(value.clone());
    let flexible = match r.i16()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let partitions = match r.array_len(flexible)? {
        None => None,
        Some(count) => {
            let mut topics = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                let topic = if flexible { r.compact_str()? } else { r.str()? };
                // A null partition list is not valid Kafka; refuse it.
                let n = r.array_len(flexible)??;
                let mut ids = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    ids.push(r.i32()?);
                }
                if flexible {
                    r.tagged(|_, _| Some(()))?;
                }
                topics.push((topic, ids));
            }
            Some(topics)
        }
    };
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut v = TxnValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms,
        start_ms,
        client_transaction_version: 0,
    };
    if flexible {
        r.tagged(|tag, mut data| {
            match tag {
                0 if data.len() == 8 => v.previous_producer_id = data.get_i64(),
                1 if data.len() == 8 => v.next_producer_id = data.get_i64(),
                2 if data.len() == 2 => v.client_transaction_version = data.get_i16(),
                0..=2 => return None,
                _ => {}
            }
            Some(())
        })?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TxnValue {
        TxnValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: 1,
            partitions: Some(vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])]),
            last_update_ms: 7,
            start_ms: 5,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn key_round_trips_in_kafka_layout() {
        let k = key("txn-1");
        assert_eq!(&k[..], b"\x00\x00\x00\x05txn-1");
        assert_eq!(decode_key(&k), Some("txn-1".to_string()));
        assert_eq!(decode_key(&Bytes::from_static(b"\x00\x01\x00\x00")), None);
    }

    #[test]
    fn value_round_trips() {
        let v = sample();
        assert_eq!(decode_value(&value(&v, 0)), Some(v.clone()));
        let tagged = TxnValue {
            previous_producer_id: 900,
            next_producer_id: 1001,
            client_transaction_version: 2,
            ..sample()
        };
        assert_eq!(decode_value(&value(&tagged, 1)), Some(tagged));
        let empty = TxnValue {
            status: 0,
            partitions: None,
            start_ms: -1,
            ..sample()
        };
        assert_eq!(decode_value(&value(&empty, 0)), Some(empty.clone()));
        assert_eq!(decode_value(&value(&empty, 1)), Some(empty));
    }

    #[test]
    fn value_v0_layout_matches_kafka() {
        let v = TxnValue {
            partitions: Some(vec![("t".into(), vec![4])]),
            ..sample()
        };
        let mut want = Vec::new();
        want.extend_from_slice(&0i16.to_be_bytes());
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1);
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(b"\x00\x01t");
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&5i64.to_be_bytes());
        assert_eq!(&value(&v, 0)[..], &want[..]);
    }

    #[test]
    fn value_v1_layout_matches_kafka() {
        let v = TxnValue {
            previous_producer_id: 900,
            client_transaction_version: 2,
            partitions: Some(vec![("t".into(), vec![4])]),
            ..sample()
        };
        let mut want = Vec::new();
        want.extend_from_slice(&1i16.to_be_bytes());
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1);
        want.push(2); // one topic (compact: n + 1)
        want.extend_from_slice(&[2, b't']);
        want.push(2); // one partition
        want.extend_from_slice(&4i32.to_be_bytes());
        want.push(0); // no tags in the topic
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&5i64.to_be_bytes());
        want.push(2); // two tags: next_producer_id is at its default
        want.extend_from_slice(&[0, 8]);
        want.extend_from_slice(&900i64.to_be_bytes());
        want.extend_from_slice(&[2, 2, 0, 2]);
        assert_eq!(&value(&v, 1)[..], &want[..]);
    }

    /// A version 1 value as Kafka's generated code writes it, with an
    /// unknown tagged field in the partition struct and at the top level.
    fn v1_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1000i64.to_be_bytes());
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&60_000i32.to_be_bytes());
        b.push(2);
        b.push(2); // one topic (compact: n + 1)
        b.extend_from_slice(&[2, b't']); // compact string "t"
        b.push(3); // two partitions
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&9i32.to_be_bytes());
        b.extend_from_slice(&[1, 7, 1, 0xaa]); // unknown tag 7, 1 byte
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&5i64.to_be_bytes());
        b.push(4); // four tagged fields
        b.extend_from_slice(&[0, 8]);
        b.extend_from_slice(&900i64.to_be_bytes());
        b.extend_from_slice(&[1, 8]);
        b.extend_from_slice(&1001i64.to_be_bytes());
        b.extend_from_slice(&[2, 2, 0, 2]);
        b.extend_from_slice(&[9, 0]); // unknown tag 9, empty
        b
    }

    #[test]
    fn decodes_flexible_v1_and_skips_unknown_tags() {
        let v = decode_value(&Bytes::from(v1_bytes()));
        assert_eq!(
            v,
            Some(TxnValue {
                producer_id: 1000,
                previous_producer_id: 900,
                next_producer_id: 1001,
                producer_epoch: 3,
                timeout_ms: 60_000,
                status: 2,
                partitions: Some(vec![("t".into(), vec![0, 9])]),
                last_update_ms: 7,
                start_ms: 5,
                client_transaction_version: 2,
            })
        );
        // Truncated anywhere: refused, never a panic.
        let full = v1_bytes();
        for n in 0..full.len() {
            assert_eq!(decode_value(&Bytes::from(full[..n].to_vec())), None);
        }
    }

    #[test]
    fn v1_with_null_partitions_and_no_tags() {
        let mut b = Vec::new();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1i64.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&100i32.to_be_bytes());
        b.push(0);
        b.push(0); // null array
        b.extend_from_slice(&2i64.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.push(0);
        let v = decode_value(&Bytes::from(b));
        assert_eq!(v.as_ref().map(|v| v.partitions.is_none()), Some(true));
        assert_eq!(v.map(|v| v.previous_producer_id), Some(-1));
    }

    #[test]
    fn partition_is_the_group_rule() {
        assert_eq!(partition_for("test-group", 50), 627_841_412 % 50);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let b = Bytes::from(bytes);
            let _ = decode_key(&b);
            let _ = decode_value(&b);
        }

        #[test]
        fn decoders_never_panic_on_v1_prefix(tail in proptest::collection::vec(any::<u8>(), 0..96)) {
            let mut b = vec![0u8, 1];
            b.extend_from_slice(&tail);
            let _ = decode_value(&Bytes::from(b));
        }
    }
}

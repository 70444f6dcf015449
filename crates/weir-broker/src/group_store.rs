//! Records of the `__consumer_offsets` topic, in Kafka's own formats, so
//! that tools which read the topic (Burrow, kcat with a decoder) understand
//! Weir's as they do Kafka's.
//!
//! Keys: version 1 is an offset commit `(group, topic, partition)`,
//! version 2 a group's metadata `(group)`. Values: offset commit version 3
//! `(offset, leader epoch, metadata, commit timestamp)` and group metadata
//! version 3 (protocol type, generation, protocol, leader, state timestamp,
//! members). A null value is a tombstone.

use bytes::{BufMut, Bytes, BytesMut};

use crate::internal_records::{put_bytes, put_nullable_str, put_str, Reader};

use crate::group_coordinator::{GroupSnapshot, MemberSnapshot};

/// The internal topic holding offsets and group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The offset.
    pub offset: i64,
    /// The leader epoch of the record at `offset - 1`, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
}

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// An offset commit.
    Offset {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's metadata.
    Group(String),
}

/// The `__consumer_offsets` partition of a group: Kafka's
/// `abs(groupId.hashCode()) % partitions`, with Java's string hash.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs: Math.abs, with 0 for Integer.MIN_VALUE.
    let positive = if h == i32::MIN { 0 } else { h.abs() };
    positive % partitions.max(1)
}

/// Encodes an offset commit key.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

/// Encodes a group metadata key.
pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(2);
    put_str(&mut b, group);
    b.freeze()
}

/// Encodes an offset commit value (version 3).
pub fn offset_value(c: &Committed) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(c.offset);
    b.put_i32(c.leader_epoch);
    put_str(&mut b, &c.metadata);
    b.put_i64(c.commit_timestamp);
    b.freeze()
}

/// Encodes a group metadata value (version 3).
pub fn group_value(g: &GroupSnapshot) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable_str(&mut b, g.protocol.as_deref());
    put_nullable_str(&mut b, g.leader.as_deref());
    b.put_i64(g.state_timestamp);
    b.put_i32(i32::try_from(g.members.len()).unwrap_or(i32::MAX));
    for m in &g.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// Decodes a key; `None` for unknown versions or bad bytes.
pub fn decode_key(key: &Bytes) -> Option<Key> {
    let mut r = Reader(key.clone());
    match r.i16()? {
        0 | 1 => Some(Key::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Some(Key::Group(r.str()?)),
        _ => None,
    }
}

/// Decodes an offset commit value (versions 1 and 3).
pub fn decode_offset(value: &Bytes) -> Option<Committed> {
    let mut r = Reader(value.clone());
    match r.i16()? {
        v @ (0 | 1) => {
            let offset = r.i64()?;
            let metadata = r.str()?;
            let commit_timestamp = if v == 1 { r.i64()? } else { 0 };
            Some(Committed {
                offset,
                leader_epoch: -1,
                metadata,
                commit_timestamp,
            })
        }
        3 => Some(Committed {
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            metadata: r.str()?,
            commit_timestamp: r.i64()?,
        }),
        _ => None,
    }
}

/// Decodes a group metadata value (version 3).
pub fn decode_group(group_id: &str, value: &Bytes) -> Option<GroupSnapshot> {
    let mut r = Reader(value.clone());
    if r.i16()? != 3 {
        return None;
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let state_timestamp = r.i64()?;
    let count = usize::try_from(r.i32()?).ok()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        members.push(MemberSnapshot {
            member_id: r.str()?,
            instance_id: r.nullable_str()?,
            client_id: r.str()?,
            client_host: r.str()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Some(GroupSnapshot {
        group_id: group_id.to_string(),
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partition_matches_java_string_hash() {
        // Java: "test-group".hashCode() == 627841412, "my-group".hashCode() == -1906497762.
        assert_eq!(partition_for("test-group", 50), 627_841_412 % 50);
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
    }

    #[test]
    fn round_trips() {
        let c = Committed {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        assert_eq!(decode_offset(&offset_value(&c)), Some(c));
        assert_eq!(
            decode_key(&offset_key("g", "t", 3)),
            Some(Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            })
        );
        assert_eq!(decode_key(&group_key("g")), Some(Key::Group("g".into())));
        let g = GroupSnapshot {
            group_id: "g".into(),
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: None,
            state_timestamp: 9,
            members: vec![MemberSnapshot {
                member_id: "m".into(),
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::new(),
            }],
        };
        assert_eq!(decode_group("g", &group_value(&g)), Some(g));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let b = Bytes::from(bytes);
            let _ = decode_key(&b);
            let _ = decode_offset(&b);
            let _ = decode_group("g", &b);
        }
    }
}

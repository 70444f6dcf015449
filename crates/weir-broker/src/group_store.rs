//! Records of the `__consumer_offsets` topic, in Kafka's own formats, so
//! that tools which read the topic (Burrow, kcat with a decoder) understand
//! Weir's as they do Kafka's.
//!
//! Keys: version 1 is an offset commit `(group, topic, partition)`,
//! version 2 a group's metadata `(group)`. Values: offset commit version 3
//! `(offset, leader epoch, metadata, commit timestamp)` and group metadata
//! version 3 (protocol type, generation, protocol, leader, state timestamp,
//! members). A null value is a tombstone.
//!
//! KIP-848 consumer groups use keys 3 to 8 (Kafka's
//! `ConsumerGroup*Key` records, whose key version is the record type),
//! each with a flexible value of version 0: the group epoch (3), the
//! subscribed topics' metadata (4), each member's subscription (5), the
//! target assignment's epoch (6), each member's target (7), and each
//! member's epoch and current assignment (8).
//!
//! Share groups (KIP-932) use keys 10 to 14 (Kafka's `ShareGroup*Key`)
//! with the same shapes minus what share groups lack: each member's
//! subscription (10), the group epoch (11), the target assignment's epoch
//! (12), each member's target (13) and each member's epoch and current
//! assignment (14). [`StateRecords`] turns either kind of group's state
//! into the values and tombstones to append.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};

use crate::consumer_group::{Assignment, TopicMeta};
use crate::internal_records::{
    put_bytes, put_compact_len, put_compact_nullable_str, put_compact_str, put_nullable_str,
    put_str, Reader,
};

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
    /// A record of a KIP-848 consumer group.
    Consumer {
        /// Group.
        group: String,
        /// Which record.
        key: ConsumerKey,
    },
    /// A record of a share group (the same records, keys 10 to 14).
    Share {
        /// Group.
        group: String,
        /// Which record.
        key: ConsumerKey,
    },
}

impl Key {
    /// A consumer or share group's record: the group and which record.
    pub fn group_state(&self) -> Option<(&str, &ConsumerKey)> {
        match self {
            Self::Consumer { group, key } | Self::Share { group, key } => Some((group, key)),
            _ => None,
        }
    }
}

/// The records of a KIP-848 consumer group, by key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsumerKey {
    /// ConsumerGroupMetadata (key version 3): the group epoch.
    Metadata,
    /// ConsumerGroupPartitionMetadata (4): the subscribed topics.
    Topics,
    /// ConsumerGroupMemberMetadata (5): a member's subscription.
    Member(String),
    /// ConsumerGroupTargetAssignmentMetadata (6): the assignment epoch.
    TargetMetadata,
    /// ConsumerGroupTargetAssignmentMember (7): a member's target.
    Target(String),
    /// ConsumerGroupCurrentMemberAssignment (8): a member's epochs and
    /// current assignment.
    Current(String),
}

impl ConsumerKey {
    /// The key version, which is the record type.
    pub fn version(&self) -> i16 {
        match self {
            Self::Metadata => 3,
            Self::Topics => 4,
            Self::Member(_) => 5,
            Self::TargetMetadata => 6,
            Self::Target(_) => 7,
            Self::Current(_) => 8,
        }
    }

    /// The share group key version; share groups have no topics record
    /// (Kafka 4.1 replaced ShareGroupPartitionMetadata, key 9, by a hash).
    pub fn share_version(&self) -> Option<i16> {
        match self {
            Self::Member(_) => Some(10),
            Self::Metadata => Some(11),
            Self::TargetMetadata => Some(12),
            Self::Target(_) => Some(13),
            Self::Current(_) => Some(14),
            Self::Topics => None,
        }
    }

    /// The member the record is about, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            Self::Member(m) | Self::Target(m) | Self::Current(m) => Some(m),
            _ => None,
        }
    }
}

/// A member's subscription (ConsumerGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names, sorted.
    pub subscribed: Vec<String>,
    /// Regex subscription.
    pub regex: Option<String>,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Server assignor.
    pub assignor: Option<String>,
}

/// A member's epochs and assignment
/// (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRecord {
    /// Member epoch.
    pub epoch: i32,
    /// Previous member epoch.
    pub previous_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked, 2 unreleased partitions.
    pub state: i8,
    /// Partitions the member owns.
    pub assigned: Assignment,
    /// Partitions it must revoke.
    pub revoking: Assignment,
}

/// The value of a consumer group record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerValue {
    /// Group epoch.
    Metadata(i32),
    /// Subscribed topics' metadata, by name.
    Topics(BTreeMap<String, TopicMeta>),
    /// A member's subscription.
    Member(MemberRecord),
    /// Assignment epoch.
    TargetMetadata(i32),
    /// A member's target assignment.
    Target(Assignment),
    /// A member's current assignment.
    Current(CurrentRecord),
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

/// Encodes a consumer group record's key.
pub fn consumer_key(group: &str, key: &ConsumerKey) -> Bytes {
    state_key(key.version(), group, key)
}

/// Encodes a share group record's key; `None` for the topics record,
/// which share groups do not have.
pub fn share_key(group: &str, key: &ConsumerKey) -> Option<Bytes> {
    Some(state_key(key.share_version()?, group, key))
}

fn state_key(version: i16, group: &str, key: &ConsumerKey) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version);
    put_str(&mut b, group);
    if let Some(m) = key.member() {
        put_str(&mut b, m);
    }
    b.freeze()
}

fn put_partitions(b: &mut BytesMut, a: &Assignment) {
    put_compact_len(b, a.len());
    for (topic, parts) in a {
        b.put_slice(topic.as_bytes());
        put_compact_len(b, parts.len());
        for p in parts {
            b.put_i32(*p);
        }
        b.put_u8(0);
    }
}

fn read_partitions(r: &mut Reader) -> Option<Assignment> {
    let n = r.array_len(true)??;
    let mut a = Assignment::new();
    for _ in 0..n {
        let topic = r.uuid()?;
        let count = r.array_len(true)??;
        let parts = a.entry(topic).or_default();
        for _ in 0..count {
            parts.insert(r.i32()?);
        }
        r.tagged(|_, _| Some(()))?;
    }
    a.retain(|_, ps| !ps.is_empty());
    Some(a)
}

/// Encodes a consumer group record's value (version 0, flexible).
pub fn consumer_value(value: &ConsumerValue) -> Bytes {
    state_value(value, false)
}

/// Encodes a share group record's value (version 0, flexible): a member
/// record holds only rack, client id, host and subscription, a current
/// assignment nothing being revoked.
pub fn share_value(value: &ConsumerValue) -> Bytes {
    state_value(value, true)
}

fn state_value(value: &ConsumerValue, share: bool) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    match value {
        ConsumerValue::Metadata(epoch) | ConsumerValue::TargetMetadata(epoch) => b.put_i32(*epoch),
        ConsumerValue::Topics(topics) => {
            put_compact_len(&mut b, topics.len());
            for (name, meta) in topics {
                b.put_slice(meta.id.as_bytes());
                put_compact_str(&mut b, name);
                b.put_i32(meta.partitions);
                // PartitionMetadata (racks): empty, as Kafka 4 leaves it.
                put_compact_len(&mut b, 0);
                b.put_u8(0);
            }
        }
        ConsumerValue::Member(m) => {
            if !share {
                put_compact_nullable_str(&mut b, m.instance_id.as_deref());
            }
            put_compact_nullable_str(&mut b, m.rack_id.as_deref());
            put_compact_str(&mut b, &m.client_id);
            put_compact_str(&mut b, &m.client_host);
            put_compact_len(&mut b, m.subscribed.len());
            for t in &m.subscribed {
                put_compact_str(&mut b, t);
            }
            if share {
                b.put_u8(0);
                return b.freeze();
            }
            put_compact_nullable_str(&mut b, m.regex.as_deref());
            b.put_i32(m.rebalance_timeout_ms);
            put_compact_nullable_str(&mut b, m.assignor.as_deref());
        }
        ConsumerValue::Target(a) => put_partitions(&mut b, a),
        ConsumerValue::Current(c) => {
            b.put_i32(c.epoch);
            b.put_i32(c.previous_epoch);
            b.put_i8(c.state);
            put_partitions(&mut b, &c.assigned);
            if !share {
                put_partitions(&mut b, &c.revoking);
            }
        }
    }
    // No tagged fields.
    b.put_u8(0);
    b.freeze()
}

/// Decodes a consumer group record's value; `None` for unknown versions
/// or bad bytes. Tagged fields (Kafka's later additions) are skipped.
pub fn decode_consumer(key: &ConsumerKey, value: &Bytes) -> Option<ConsumerValue> {
    decode_state(key, value, false)
}

/// Decodes a share group record's value, as [`decode_consumer`] does;
/// the fields share groups lack come back empty.
pub fn decode_share(key: &ConsumerKey, value: &Bytes) -> Option<ConsumerValue> {
    decode_state(key, value, true)
}

fn decode_state(key: &ConsumerKey, value: &Bytes, share: bool) -> Option<ConsumerValue> {
    let mut r = Reader(value.clone());
    if r.i16()? != 0 {
        return None;
    }
    let v = match key {
        ConsumerKey::Metadata => ConsumerValue::Metadata(r.i32()?),
        ConsumerKey::TargetMetadata => ConsumerValue::TargetMetadata(r.i32()?),
        ConsumerKey::Topics => {
            let n = r.array_len(true)??;
            let mut topics = BTreeMap::new();
            for _ in 0..n {
                let id = r.uuid()?;
                let name = r.compact_str()?;
                let partitions = r.i32()?;
                let racks = r.array_len(true)?.unwrap_or(0);
                for _ in 0..racks {
                    r.i32()?;
                    for _ in 0..r.array_len(true)?.unwrap_or(0) {
                        r.compact_str()?;
                    }
                    r.tagged(|_, _| Some(()))?;
                }
                r.tagged(|_, _| Some(()))?;
                topics.insert(name, TopicMeta { id, partitions });
            }
            ConsumerValue::Topics(topics)
        }
        ConsumerKey::Member(_) => {
            let instance_id = if share {
                None
            } else {
                r.compact_nullable_str()?
            };
            let rack_id = r.compact_nullable_str()?;
            let client_id = r.compact_str()?;
            let client_host = r.compact_str()?;
            let n = r.array_len(true)?.unwrap_or(0);
            let mut subscribed = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                subscribed.push(r.compact_str()?);
            }
            let (regex, rebalance_timeout_ms, assignor) = if share {
                (None, 0, None)
            } else {
                (
                    r.compact_nullable_str()?,
                    r.i32()?,
                    r.compact_nullable_str()?,
                )
            };
            ConsumerValue::Member(MemberRecord {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed,
                regex,
                rebalance_timeout_ms,
                assignor,
            })
        }
        ConsumerKey::Target(_) => ConsumerValue::Target(read_partitions(&mut r)?),
        ConsumerKey::Current(_) => ConsumerValue::Current(CurrentRecord {
            epoch: r.i32()?,
            previous_epoch: r.i32()?,
            state: r.i8()?,
            assigned: read_partitions(&mut r)?,
            revoking: if share {
                Assignment::new()
            } else {
                read_partitions(&mut r)?
            },
        }),
    };
    r.tagged(|_, _| Some(()))?;
    Some(v)
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
        v @ 3..=8 => {
            let group = r.str()?;
            let key = match v {
                3 => ConsumerKey::Metadata,
                4 => ConsumerKey::Topics,
                6 => ConsumerKey::TargetMetadata,
                5 => ConsumerKey::Member(r.str()?),
                7 => ConsumerKey::Target(r.str()?),
                _ => ConsumerKey::Current(r.str()?),
            };
            Some(Key::Consumer { group, key })
        }
        v @ 10..=14 => {
            let group = r.str()?;
            let key = match v {
                11 => ConsumerKey::Metadata,
                12 => ConsumerKey::TargetMetadata,
                10 => ConsumerKey::Member(r.str()?),
                13 => ConsumerKey::Target(r.str()?),
                _ => ConsumerKey::Current(r.str()?),
            };
            Some(Key::Share { group, key })
        }
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

/// A consumer or share group's live records, decoded.
#[derive(Debug, Default)]
pub struct GroupRecords {
    /// Group epoch (0 if none).
    pub epoch: i32,
    /// Target assignment epoch.
    pub assignment_epoch: i32,
    /// Subscribed topics' metadata (consumer groups).
    pub topics: BTreeMap<String, TopicMeta>,
    /// Members' subscriptions.
    pub members: BTreeMap<String, MemberRecord>,
    /// Members' targets.
    pub targets: BTreeMap<String, Assignment>,
    /// Members' epochs and current assignments.
    pub current: BTreeMap<String, CurrentRecord>,
}

/// Decodes a group's live records (by encoded key), as its coordinator
/// replays them when it loads the partition; unreadable ones are logged
/// and skipped.
pub fn decode_group_records(group_id: &str, records: &BTreeMap<Bytes, Bytes>) -> GroupRecords {
    let mut out = GroupRecords::default();
    for (k, v) in records {
        let decoded = match decode_key(k) {
            Some(Key::Consumer { key, .. }) => (decode_consumer(&key, v), key),
            Some(Key::Share { key, .. }) => (decode_share(&key, v), key),
            _ => continue,
        };
        match decoded {
            (Some(ConsumerValue::Metadata(e)), _) => out.epoch = e,
            (Some(ConsumerValue::TargetMetadata(e)), _) => out.assignment_epoch = e,
            (Some(ConsumerValue::Topics(t)), _) => out.topics = t,
            (Some(ConsumerValue::Member(m)), ConsumerKey::Member(id)) => {
                out.members.insert(id, m);
            }
            (Some(ConsumerValue::Target(a)), ConsumerKey::Target(id)) => {
                out.targets.insert(id, a);
            }
            (Some(ConsumerValue::Current(c)), ConsumerKey::Current(id)) => {
                out.current.insert(id, c);
            }
            _ => tracing::warn!(group = group_id, "unreadable group record"),
        }
    }
    out
}

/// A record to append: key and value, `None` for a tombstone.
pub type Change = (Bytes, Option<Bytes>);

/// What a coordinator last wrote of each group's records, to append only
/// what changed: consumer and share groups alike.
#[derive(Debug, Default)]
pub struct StateRecords {
    /// Each group's records as last handed out or loaded, by encoded key.
    persisted: BTreeMap<String, BTreeMap<Bytes, Bytes>>,
    /// Groups changed since the last [`StateRecords::take_changes`].
    dirty: BTreeSet<String>,
}

impl StateRecords {
    /// The group changed: its records are compared at the next
    /// [`StateRecords::take_changes`].
    pub fn mark(&mut self, group_id: &str) {
        self.dirty.insert(group_id.to_string());
    }

    /// Forgets what was written of the group (its coordinator moved).
    pub fn forget(&mut self, group_id: &str) {
        self.persisted.remove(group_id);
        self.dirty.remove(group_id);
    }

    /// The group's live records as loaded from the log.
    pub fn loaded(&mut self, group_id: &str, records: BTreeMap<Bytes, Bytes>) {
        self.persisted.insert(group_id.to_string(), records);
    }

    /// The records of every group changed since the last call, by group,
    /// given each group's current encoded records: new or changed values,
    /// and tombstones for what is gone, in Kafka's order (a member's
    /// current assignment, target and subscription are removed before the
    /// new group epoch is written; a deleted group's target epoch and
    /// epoch last).
    pub fn take_changes(
        &mut self,
        mut records: impl FnMut(&str) -> Vec<(Bytes, Bytes)>,
    ) -> Vec<(String, Vec<Change>)> {
        let mut out = Vec::new();
        for group_id in std::mem::take(&mut self.dirty) {
            let wanted = records(&group_id);
            let old = self.persisted.remove(&group_id).unwrap_or_default();
            let kept: BTreeSet<&Bytes> = wanted.iter().map(|(k, _)| k).collect();
            // A member's records go first, highest type first (8, 7, 5 or
            // 14, 13, 10); the group's (6, 4, 3 or 12, 11) last.
            let member_level = |k: &Bytes| {
                decode_key(k)
                    .as_ref()
                    .and_then(Key::group_state)
                    .is_some_and(|(_, key)| key.member().is_some())
            };
            let mut gone: Vec<&Bytes> = old.keys().filter(|k| !kept.contains(k)).collect();
            gone.sort_by_key(|k| std::cmp::Reverse(k.get(1).copied()));
            let mut kvs: Vec<Change> = gone
                .iter()
                .filter(|k| member_level(k))
                .map(|k| ((*k).clone(), None))
                .collect();
            kvs.extend(
                wanted
                    .iter()
                    .filter(|(k, v)| old.get(k) != Some(v))
                    .map(|(k, v)| (k.clone(), Some(v.clone()))),
            );
            kvs.extend(
                gone.iter()
                    .filter(|k| !member_level(k))
                    .map(|k| ((*k).clone(), None)),
            );
            if !wanted.is_empty() {
                self.persisted
                    .insert(group_id.clone(), wanted.into_iter().collect());
            }
            if !kvs.is_empty() {
                out.push((group_id, kvs));
            }
        }
        out
    }

    /// A write of the group's records failed: hand them all out again at
    /// the next [`StateRecords::take_changes`].
    pub fn invalidate(&mut self, group_id: &str) {
        if let Some(records) = self.persisted.get_mut(group_id) {
            for v in records.values_mut() {
                // No encoded value is empty, so every record differs.
                *v = Bytes::new();
            }
        }
        self.dirty.insert(group_id.to_string());
    }
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

    #[test]
    fn consumer_records_match_kafkas_bytes() {
        // ConsumerGroupMetadataKey (version 3) "g", value version 0 epoch 7,
        // no tagged fields.
        assert_eq!(
            consumer_key("g", &ConsumerKey::Metadata),
            Bytes::from_static(b"\x00\x03\x00\x01g")
        );
        assert_eq!(
            consumer_value(&ConsumerValue::Metadata(7)),
            Bytes::from_static(b"\x00\x00\x00\x00\x00\x07\x00")
        );
        assert_eq!(
            consumer_key("g", &ConsumerKey::Current("m".into())),
            Bytes::from_static(b"\x00\x08\x00\x01g\x00\x01m")
        );
        // A target of partition 2 of topic id 1: one topic (compact length
        // 2), the id, one partition, no tags; no tags at the end.
        let a = Assignment::from([(uuid::Uuid::from_u128(1), [2].into())]);
        let mut want = vec![0u8, 0, 2];
        want.extend_from_slice(uuid::Uuid::from_u128(1).as_bytes());
        want.extend_from_slice(&[2, 0, 0, 0, 2, 0, 0]);
        assert_eq!(consumer_value(&ConsumerValue::Target(a)).to_vec(), want);
    }

    fn assignment() -> impl Strategy<Value = Assignment> {
        proptest::collection::btree_map(
            any::<u128>().prop_map(uuid::Uuid::from_u128),
            proptest::collection::btree_set(0..1000i32, 1..4),
            0..3,
        )
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z.\\-]{0,12}"
    }

    fn consumer_record() -> impl Strategy<Value = (ConsumerKey, ConsumerValue)> {
        prop_oneof![
            any::<i32>().prop_map(|e| (ConsumerKey::Metadata, ConsumerValue::Metadata(e))),
            any::<i32>().prop_map(|e| (
                ConsumerKey::TargetMetadata,
                ConsumerValue::TargetMetadata(e)
            )),
            proptest::collection::btree_map(name(), (any::<u128>(), any::<i32>()), 0..3).prop_map(
                |t| {
                    let t = t
                        .into_iter()
                        .map(|(n, (id, partitions))| {
                            let id = uuid::Uuid::from_u128(id);
                            (n, TopicMeta { id, partitions })
                        })
                        .collect();
                    (ConsumerKey::Topics, ConsumerValue::Topics(t))
                }
            ),
            (
                name(),
                proptest::option::of(name()),
                proptest::option::of(name()),
                name(),
                proptest::collection::vec(name(), 0..3),
                any::<i32>(),
                proptest::option::of(name())
            )
                .prop_map(
                    |(m, instance_id, rack_id, client_id, subscribed, t, assignor)| (
                        ConsumerKey::Member(m),
                        ConsumerValue::Member(MemberRecord {
                            instance_id,
                            rack_id,
                            client_host: format!("/{client_id}"),
                            client_id,
                            subscribed,
                            regex: None,
                            rebalance_timeout_ms: t,
                            assignor,
                        })
                    )
                ),
            (name(), assignment())
                .prop_map(|(m, a)| (ConsumerKey::Target(m), ConsumerValue::Target(a))),
            (name(), any::<(i32, i32, i8)>(), assignment(), assignment()).prop_map(
                |(m, (epoch, previous_epoch, state), assigned, revoking)| (
                    ConsumerKey::Current(m),
                    ConsumerValue::Current(CurrentRecord {
                        epoch,
                        previous_epoch,
                        state,
                        assigned,
                        revoking,
                    })
                )
            ),
        ]
    }

    /// Consumer records cut down to what share groups hold.
    fn share_record() -> impl Strategy<Value = (ConsumerKey, ConsumerValue)> {
        consumer_record()
            .prop_filter("share groups have no topics record", |(k, _)| {
                k.share_version().is_some()
            })
            .prop_map(|(k, v)| {
                let v = match v {
                    ConsumerValue::Member(m) => ConsumerValue::Member(MemberRecord {
                        instance_id: None,
                        regex: None,
                        rebalance_timeout_ms: 0,
                        assignor: None,
                        ..m
                    }),
                    ConsumerValue::Current(c) => ConsumerValue::Current(CurrentRecord {
                        revoking: Assignment::new(),
                        ..c
                    }),
                    v => v,
                };
                (k, v)
            })
    }

    #[test]
    fn share_records_match_kafkas_bytes() {
        // ShareGroupMemberMetadataKey (version 10) "g", "m"; its value:
        // version 0, null rack, client id "c", host "h", topics ["t"], no
        // tagged fields.
        let key = ConsumerKey::Member("m".into());
        assert_eq!(
            share_key("g", &key).unwrap(),
            Bytes::from_static(b"\x00\x0a\x00\x01g\x00\x01m")
        );
        let value = ConsumerValue::Member(MemberRecord {
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            subscribed: vec!["t".into()],
            regex: None,
            rebalance_timeout_ms: 0,
            assignor: None,
        });
        assert_eq!(
            share_value(&value),
            Bytes::from_static(b"\x00\x00\x00\x02c\x02h\x02\x02t\x00")
        );
        // ShareGroupCurrentMemberAssignmentValue: epoch 5, previous 4,
        // state 0, no partitions.
        let current = ConsumerValue::Current(CurrentRecord {
            epoch: 5,
            previous_epoch: 4,
            state: 0,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
        });
        assert_eq!(
            share_value(&current),
            Bytes::from_static(b"\x00\x00\x00\x00\x00\x05\x00\x00\x00\x04\x00\x01\x00")
        );
        assert_eq!(share_key("g", &ConsumerKey::Topics), None);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let b = Bytes::from(bytes);
            let _ = decode_key(&b);
            let _ = decode_offset(&b);
            let _ = decode_group("g", &b);
            for key in [ConsumerKey::Metadata, ConsumerKey::Topics, ConsumerKey::Member("m".into()),
                        ConsumerKey::TargetMetadata, ConsumerKey::Target("m".into()),
                        ConsumerKey::Current("m".into())] {
                let _ = decode_consumer(&key, &b);
                let _ = decode_share(&key, &b);
            }
        }

        #[test]
        fn consumer_records_round_trip((key, value) in consumer_record(), group in name()) {
            prop_assert_eq!(
                decode_key(&consumer_key(&group, &key)),
                Some(Key::Consumer { group, key: key.clone() })
            );
            prop_assert_eq!(decode_consumer(&key, &consumer_value(&value)), Some(value));
        }

        #[test]
        fn share_records_round_trip((key, value) in share_record(), group in name()) {
            let raw = share_key(&group, &key).unwrap();
            prop_assert_eq!(decode_key(&raw), Some(Key::Share { group, key: key.clone() }));
            prop_assert_eq!(decode_share(&key, &share_value(&value)), Some(value.clone()));
            let bytes = share_value(&value);
            for cut in 0..bytes.len() {
                prop_assert_eq!(decode_share(&key, &bytes.slice(..cut)), None);
            }
        }

        #[test]
        fn truncated_consumer_values_are_refused((key, value) in consumer_record(), cut in 0usize..64) {
            let bytes = consumer_value(&value);
            let cut = cut.min(bytes.len() - 1);
            prop_assert_eq!(decode_consumer(&key, &bytes.slice(..cut)), None);
        }
    }
}

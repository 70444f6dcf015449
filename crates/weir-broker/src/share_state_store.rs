//! `__share_group_state`: the durable state of every share-partition, in
//! Kafka's record formats (the share coordinator's `ShareSnapshot` and
//! `ShareUpdate` records, Kafka 4.2).
//!
//! Each share-partition (group, topic id, partition) has a key; its state
//! is its latest snapshot with every later update applied in order. A
//! snapshot holds the whole state; an update holds the new start offset
//! and the ranges that changed, overriding what was there. A null value
//! (tombstone) deletes the share-partition's state.
//!
//! Byte layout (big-endian; strings are an int16 length then UTF-8;
//! "compact" lengths are an unsigned varint of n + 1; every struct of a
//! flexible value ends with a tagged-field section, a varint count then
//! `tag, size, bytes` per field):
//!
//! ```text
//! key:    int16 record type (0 snapshot, 1 update)
//!         string group id, 16 bytes topic id, int32 partition
//! snapshot value (type 0):
//!         int16 version = 0
//!         int32 snapshot epoch, int32 state epoch, int32 leader epoch,
//!         int64 start offset, int64 create timestamp, int64 write timestamp,
//!         compact array of state batches,
//!         tagged fields: tag 0 = int32 delivery-complete count (KIP-1226)
//! update value (type 1):
//!         int16 version = 0
//!         int32 snapshot epoch, int32 leader epoch, int64 start offset,
//!         compact array of state batches,
//!         tagged fields: tag 0 = int32 delivery-complete count
//! state batch:
//!         int64 first offset, int64 last offset,
//!         int8 delivery state (0 available, 2 acknowledged, 4 archived),
//!         int16 delivery count, tagged fields (none)
//! ```
//!
//! The topic keeps Kafka's `cleanup.policy=delete` with unlimited
//! retention: the runtime deletes the records before the oldest snapshot
//! still needed ([`StateLog`] tracks it), as Kafka's share coordinator
//! prunes with DeleteRecords.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::internal_records::{put_compact_len, put_str, put_uvarint, Reader};
use crate::share_partition::{PersistedState, RecordState, StateBatch};

/// The topic's name.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

const SNAPSHOT: i16 = 0;
const UPDATE: i16 = 1;
/// The tag of `DeliveryCompleteCount` in both values.
const TAG_DELIVERY_COMPLETE: u32 = 0;
/// More batches than this in one record is not something Weir writes.
const MAX_BATCHES: usize = 1 << 20;

/// A share-partition: group, topic id and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    /// Group id.
    pub group_id: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
}

impl ShareKey {
    /// Kafka's coordinator key, `group:topicId:partition`, with the topic
    /// id in Kafka's form (URL-safe base64 without padding).
    pub fn coordinator_key(&self) -> String {
        use base64::Engine;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.topic_id.as_bytes());
        format!("{}:{id}:{}", self.group_id, self.partition)
    }

    /// The `__share_group_state` partition holding this key: Kafka's
    /// `abs(coordinatorKey.hashCode()) % partitions`.
    pub fn state_partition(&self, partitions: i32) -> i32 {
        crate::group_store::partition_for(&self.coordinator_key(), partitions)
    }
}

/// A decoded record value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    /// The whole state.
    Snapshot(Snapshot),
    /// Changes on top of the state.
    Update(Update),
}

/// A `ShareSnapshot` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Counts snapshots of this key.
    pub snapshot_epoch: i32,
    /// The state epoch.
    pub state_epoch: i32,
    /// Leader epoch (always 0 on one node).
    pub leader_epoch: i32,
    /// The SPSO.
    pub start_offset: i64,
    /// When the state was created (ms).
    pub create_timestamp: i64,
    /// When this snapshot was written (ms).
    pub write_timestamp: i64,
    /// Done offsets at or above the SPSO, or -1 if unknown.
    pub delivery_complete_count: i32,
    /// In-flight ranges.
    pub batches: Vec<StateBatch>,
}

/// A `ShareUpdate` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The snapshot epoch this update applies to.
    pub snapshot_epoch: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// The new SPSO, or -1 if it did not move.
    pub start_offset: i64,
    /// Done offsets at or above the SPSO, or -1 if unknown.
    pub delivery_complete_count: i32,
    /// Changed ranges.
    pub batches: Vec<StateBatch>,
}

/// Encodes the key of a snapshot (`snapshot = true`) or update record.
pub fn encode_key(key: &ShareKey, snapshot: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + key.group_id.len());
    b.put_i16(if snapshot { SNAPSHOT } else { UPDATE });
    put_str(&mut b, &key.group_id);
    b.put_slice(key.topic_id.as_bytes());
    b.put_i32(key.partition);
    b.freeze()
}

/// Decodes a key: the share-partition and whether it is a snapshot's.
pub fn decode_key(bytes: &Bytes) -> Option<(ShareKey, bool)> {
    let mut r = Reader(bytes.clone());
    let snapshot = match r.i16()? {
        SNAPSHOT => true,
        UPDATE => false,
        _ => return None,
    };
    let group_id = r.str()?;
    r.need(16)?;
    let topic_id = Uuid::from_slice(&r.0.split_to(16)).ok()?;
    let partition = r.i32()?;
    Some((
        ShareKey {
            group_id,
            topic_id,
            partition,
        },
        snapshot,
    ))
}

fn put_batches(b: &mut BytesMut, batches: &[StateBatch]) {
    put_compact_len(b, batches.len());
    for s in batches {
        b.put_i64(s.first_offset);
        b.put_i64(s.last_offset);
        b.put_i8(s.state.id());
        b.put_i16(s.delivery_count);
        put_uvarint(b, 0);
    }
}

fn put_complete_count(b: &mut BytesMut, count: i32) {
    // Tagged fields are written only when not at their default.
    if count == -1 {
        put_uvarint(b, 0);
        return;
    }
    put_uvarint(b, 1);
    put_uvarint(b, TAG_DELIVERY_COMPLETE);
    put_uvarint(b, 4);
    b.put_i32(count);
}

/// Encodes a snapshot value.
pub fn encode_snapshot(s: &Snapshot) -> Bytes {
    let mut b = BytesMut::with_capacity(48 + 21 * s.batches.len());
    b.put_i16(0);
    b.put_i32(s.snapshot_epoch);
    b.put_i32(s.state_epoch);
    b.put_i32(s.leader_epoch);
    b.put_i64(s.start_offset);
    b.put_i64(s.create_timestamp);
    b.put_i64(s.write_timestamp);
    put_batches(&mut b, &s.batches);
    put_complete_count(&mut b, s.delivery_complete_count);
    b.freeze()
}

/// Encodes an update value.
pub fn encode_update(u: &Update) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + 21 * u.batches.len());
    b.put_i16(0);
    b.put_i32(u.snapshot_epoch);
    b.put_i32(u.leader_epoch);
    b.put_i64(u.start_offset);
    put_batches(&mut b, &u.batches);
    put_complete_count(&mut b, u.delivery_complete_count);
    b.freeze()
}

fn read_batches(r: &mut Reader) -> Option<Vec<StateBatch>> {
    let n = r.array_len(true)??;
    if n > MAX_BATCHES {
        return None;
    }
    // Each batch takes at least 20 bytes: never trust the count further.
    let mut out = Vec::with_capacity(n.min(r.0.len() / 20));
    for _ in 0..n {
        let first_offset = r.i64()?;
        let last_offset = r.i64()?;
        let state = RecordState::from_id(r.i8()?)?;
        let delivery_count = r.i16()?;
        r.tagged(|_, _| Some(()))?;
        if last_offset < first_offset || state == RecordState::Acquired {
            return None;
        }
        out.push(StateBatch {
            first_offset,
            last_offset,
            state,
            delivery_count,
        });
    }
    Some(out)
}

fn read_complete_count(r: &mut Reader) -> Option<i32> {
    let mut count = -1;
    r.tagged(|tag, mut data| {
        if tag == TAG_DELIVERY_COMPLETE {
            if data.len() != 4 {
                return None;
            }
            count = bytes::Buf::get_i32(&mut data);
        }
        Some(())
    })?;
    Some(count)
}

/// Decodes the value of a snapshot (`snapshot = true`) or update record.
pub fn decode_value(bytes: &Bytes, snapshot: bool) -> Option<StateRecord> {
    let mut r = Reader(bytes.clone());
    if r.i16()? != 0 {
        return None;
    }
    if snapshot {
        let snapshot_epoch = r.i32()?;
        let state_epoch = r.i32()?;
        let leader_epoch = r.i32()?;
        let start_offset = r.i64()?;
        let create_timestamp = r.i64()?;
        let write_timestamp = r.i64()?;
        let batches = read_batches(&mut r)?;
        let delivery_complete_count = read_complete_count(&mut r)?;
        Some(StateRecord::Snapshot(Snapshot {
            snapshot_epoch,
            state_epoch,
            leader_epoch,
            start_offset,
            create_timestamp,
            write_timestamp,
            delivery_complete_count,
            batches,
        }))
    } else {
        let snapshot_epoch = r.i32()?;
        let leader_epoch = r.i32()?;
        let start_offset = r.i64()?;
        let batches = read_batches(&mut r)?;
        let delivery_complete_count = read_complete_count(&mut r)?;
        Some(StateRecord::Update(Update {
            snapshot_epoch,
            leader_epoch,
            start_offset,
            delivery_complete_count,
            batches,
        }))
    }
}

/// Applies an update to persisted state: a new start offset (unless -1),
/// then each batch over what was there, and nothing kept below the start.
pub fn apply_update(state: &mut PersistedState, start_offset: i64, batches: &[StateBatch]) {
    if start_offset >= 0 {
        state.start_offset = start_offset;
    }
    let mut by_first: BTreeMap<i64, StateBatch> = BTreeMap::new();
    for b in state.batches.drain(..) {
        by_first.insert(b.first_offset, b);
    }
    for nb in batches {
        // Cut what the new batch covers out of the old ones.
        let overlapping: Vec<i64> = by_first
            .range(..=nb.last_offset)
            .filter(|(_, b)| b.last_offset >= nb.first_offset)
            .map(|(k, _)| *k)
            .collect();
        for k in overlapping {
            let Some(old) = by_first.remove(&k) else {
                continue;
            };
            if old.first_offset < nb.first_offset {
                by_first.insert(
                    old.first_offset,
                    StateBatch {
                        last_offset: nb.first_offset - 1,
                        ..old
                    },
                );
            }
            if old.last_offset > nb.last_offset {
                by_first.insert(
                    nb.last_offset + 1,
                    StateBatch {
                        first_offset: nb.last_offset + 1,
                        ..old
                    },
                );
            }
        }
        by_first.insert(nb.first_offset, *nb);
    }
    let start = state.start_offset;
    state.batches = by_first
        .into_values()
        .filter(|b| b.last_offset >= start)
        .map(|b| StateBatch {
            first_offset: b.first_offset.max(start),
            ..b
        })
        .collect();
}

/// What replaying the topic rebuilds: the state of every share-partition,
/// and per key where its latest snapshot lies, for pruning.
#[derive(Debug, Default)]
pub struct StateLog {
    /// Each share-partition's state.
    pub states: BTreeMap<ShareKey, KeyState>,
}

/// One share-partition as replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The state.
    pub state: PersistedState,
    /// The snapshot epoch.
    pub snapshot_epoch: i32,
    /// When the state was created.
    pub create_timestamp: i64,
    /// Updates written since the latest snapshot.
    pub updates_since_snapshot: u32,
    /// `(state partition, offset)` of the latest snapshot.
    pub snapshot_at: (i32, i64),
}

impl StateLog {
    /// Replays one record read from state partition `partition` at `offset`.
    /// Returns false for a record that does not decode (it is skipped).
    pub fn replay(
        &mut self,
        partition: i32,
        offset: i64,
        key: &Bytes,
        value: Option<&Bytes>,
    ) -> bool {
        let Some((key, snapshot)) = decode_key(key) else {
            return false;
        };
        let Some(value) = value else {
            self.states.remove(&key);
            return true;
        };
        match decode_value(value, snapshot) {
            Some(StateRecord::Snapshot(s)) => {
                self.states.insert(
                    key,
                    KeyState {
                        state: PersistedState {
                            state_epoch: s.state_epoch,
                            start_offset: s.start_offset,
                            batches: s.batches,
                        },
                        snapshot_epoch: s.snapshot_epoch,
                        create_timestamp: s.create_timestamp,
                        updates_since_snapshot: 0,
                        snapshot_at: (partition, offset),
                    },
                );
                true
            }
            Some(StateRecord::Update(u)) => {
                // An update without a snapshot before it has nothing to
                // apply to; Kafka drops it too.
                if let Some(ks) = self.states.get_mut(&key) {
                    apply_update(&mut ks.state, u.start_offset, &u.batches);
                    ks.updates_since_snapshot = ks.updates_since_snapshot.saturating_add(1);
                }
                true
            }
            None => false,
        }
    }

    /// For each state partition, the first offset still needed: the
    /// oldest latest-snapshot of its keys (records before it may go).
    pub fn prune_points(&self) -> BTreeMap<i32, i64> {
        let mut out: BTreeMap<i32, i64> = BTreeMap::new();
        for ks in self.states.values() {
            let (p, o) = ks.snapshot_at;
            out.entry(p).and_modify(|m| *m = (*m).min(o)).or_insert(o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sb(first: i64, last: i64, state: RecordState, count: i16) -> StateBatch {
        StateBatch {
            first_offset: first,
            last_offset: last,
            state,
            delivery_count: count,
        }
    }

    fn key() -> ShareKey {
        ShareKey {
            group_id: "g".into(),
            topic_id: Uuid::from_u64_pair(1, 2),
            partition: 3,
        }
    }

    #[test]
    fn keys_and_values_round_trip() {
        let k = key();
        assert_eq!(decode_key(&encode_key(&k, true)), Some((k.clone(), true)));
        assert_eq!(decode_key(&encode_key(&k, false)), Some((k, false)));
        let s = Snapshot {
            snapshot_epoch: 4,
            state_epoch: 2,
            leader_epoch: 0,
            start_offset: 10,
            create_timestamp: 1000,
            write_timestamp: 2000,
            delivery_complete_count: 3,
            batches: vec![
                sb(10, 12, RecordState::Available, 2),
                sb(13, 15, RecordState::Acknowledged, 1),
            ],
        };
        assert_eq!(
            decode_value(&encode_snapshot(&s), true),
            Some(StateRecord::Snapshot(s))
        );
        let u = Update {
            snapshot_epoch: 4,
            leader_epoch: 0,
            start_offset: -1,
            delivery_complete_count: -1,
            batches: vec![sb(20, 20, RecordState::Archived, 5)],
        };
        assert_eq!(
            decode_value(&encode_update(&u), false),
            Some(StateRecord::Update(u))
        );
    }

    #[test]
    fn the_key_layout_is_kafkas() {
        let bytes = encode_key(&key(), false);
        let mut expected = vec![0, 1, 0, 1, b'g'];
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(&[0, 0, 0, 3]);
        assert_eq!(&bytes[..], &expected[..]);
        // Kafka's Uuid(1, 2).toString() is "AAAAAAAAAAEAAAAAAAAAAg".
        assert_eq!(key().coordinator_key(), "g:AAAAAAAAAAEAAAAAAAAAAg:3");
    }

    #[test]
    fn an_update_overrides_what_it_covers_and_drops_what_is_below_the_start() {
        let mut st = PersistedState {
            state_epoch: 0,
            start_offset: 0,
            batches: vec![sb(0, 9, RecordState::Available, 1)],
        };
        apply_update(&mut st, -1, &[sb(3, 4, RecordState::Acknowledged, 1)]);
        assert_eq!(
            st.batches,
            vec![
                sb(0, 2, RecordState::Available, 1),
                sb(3, 4, RecordState::Acknowledged, 1),
                sb(5, 9, RecordState::Available, 1),
            ]
        );
        apply_update(&mut st, 4, &[sb(9, 12, RecordState::Archived, 2)]);
        assert_eq!(st.start_offset, 4);
        assert_eq!(
            st.batches,
            vec![
                sb(4, 4, RecordState::Acknowledged, 1),
                sb(5, 8, RecordState::Available, 1),
                sb(9, 12, RecordState::Archived, 2),
            ]
        );
    }

    #[test]
    fn replay_applies_updates_to_the_latest_snapshot_and_tombstones_delete() {
        let k = key();
        let mut log = StateLog::default();
        let snap = |start| {
            encode_snapshot(&Snapshot {
                snapshot_epoch: 0,
                state_epoch: 0,
                leader_epoch: 0,
                start_offset: start,
                create_timestamp: 0,
                write_timestamp: 0,
                delivery_complete_count: -1,
                batches: vec![],
            })
        };
        let upd = encode_update(&Update {
            snapshot_epoch: 0,
            leader_epoch: 0,
            start_offset: 7,
            delivery_complete_count: 0,
            batches: vec![sb(8, 8, RecordState::Acknowledged, 1)],
        });
        assert!(log.replay(0, 0, &encode_key(&k, true), Some(&snap(5))));
        assert!(log.replay(0, 1, &encode_key(&k, false), Some(&upd)));
        let ks = &log.states[&k];
        assert_eq!(ks.state.start_offset, 7);
        assert_eq!(ks.updates_since_snapshot, 1);
        assert!(log.replay(0, 2, &encode_key(&k, true), Some(&snap(9))));
        assert_eq!(log.states[&k].state.start_offset, 9);
        assert_eq!(log.prune_points(), BTreeMap::from([(0, 2)]));
        assert!(log.replay(0, 3, &encode_key(&k, true), None));
        assert!(log.states.is_empty());
        assert!(!log.replay(0, 4, &Bytes::from_static(b"\x00\x07"), Some(&snap(1))));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160), snapshot in any::<bool>()) {
            let b = Bytes::from(bytes);
            let _ = decode_key(&b);
            let _ = decode_value(&b, snapshot);
        }
    }
}

//! Incremental fetch sessions (KIP-227).
//!
//! A consumer that fetches many partitions sends the full list once; the
//! broker remembers it in a session, and later requests carry only the
//! partitions whose fetch position changed. Responses likewise carry only
//! partitions with something new: records, an error, or a changed high
//! watermark, last stable offset or log start offset.

use std::collections::HashMap;

use uuid::Uuid;

/// A partition as a fetch names it: by topic name (v12 and older) or by
/// topic id (v13+), with the other half filled in when known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchKey {
    /// The topic's name (empty if only the id was given and it is unknown).
    pub topic: String,
    /// The topic's id (nil before v13).
    pub topic_id: Uuid,
    /// The partition.
    pub partition: i32,
}

/// What the session remembers of one partition.
#[derive(Debug, Clone)]
pub struct SessionPartition {
    /// The partition.
    pub key: FetchKey,
    /// Where the consumer fetches from.
    pub fetch_offset: i64,
    /// The consumer's per-partition byte limit.
    pub max_bytes: i32,
    /// The offsets (high watermark, last stable, log start) last sent;
    /// `None` until the partition has been in a response.
    pub last_sent: Option<(i64, i64, i64)>,
}

/// One session.
#[derive(Debug)]
pub struct Session {
    /// The epoch the next request must carry.
    pub next_epoch: i32,
    /// The partitions, in the order they are served; partitions that
    /// returned records move to the back so all get a turn.
    pub partitions: Vec<SessionPartition>,
    last_used: u64,
}

/// The session cache.
#[derive(Debug, Default)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    last_id: i32,
    /// A logical clock for least-recently-used eviction.
    tick: u64,
}

/// Why a session request cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// `FETCH_SESSION_ID_NOT_FOUND`.
    NotFound,
    /// `INVALID_FETCH_SESSION_EPOCH`.
    InvalidEpoch,
}

/// Kafka's rule for the epoch after `e`: it wraps to 1, never to 0.
pub fn next_epoch(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

impl FetchSessions {
    /// Creates a session, evicting the least recently used one when the
    /// cache holds `slots` already. Returns 0 (no session) if `slots` is 0.
    pub fn create(&mut self, partitions: Vec<SessionPartition>, slots: usize) -> i32 {
        if slots == 0 {
            return 0;
        }
        if self.sessions.len() >= slots {
            if let Some(&oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id)
            {
                self.sessions.remove(&oldest);
            }
        }
        let mut id = self.last_id;
        loop {
            id = if id == i32::MAX { 1 } else { id + 1 };
            if !self.sessions.contains_key(&id) {
                break;
            }
        }
        self.last_id = id;
        self.tick += 1;
        self.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: self.tick,
            },
        );
        id
    }

    /// Removes a session.
    pub fn remove(&mut self, id: i32) {
        self.sessions.remove(&id);
    }

    /// Checks an incremental request's id and epoch, advances the epoch and
    /// returns the session.
    pub fn use_session(&mut self, id: i32, epoch: i32) -> Result<&mut Session, SessionError> {
        let s = self.sessions.get_mut(&id).ok_or(SessionError::NotFound)?;
        if s.next_epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        s.next_epoch = next_epoch(epoch);
        self.tick += 1;
        s.last_used = self.tick;
        Ok(s)
    }

    /// A session by id, without using it.
    pub fn get_mut(&mut self, id: i32) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    /// Drops a deleted topic's partitions from every session.
    pub fn forget_topic(&mut self, topic: &str) {
        for s in self.sessions.values_mut() {
            s.partitions.retain(|p| p.key.topic != topic);
        }
    }
}

impl Session {
    /// Applies an incremental request: updates or adds `changed`, removes
    /// `forgotten`.
    pub fn update(&mut self, changed: Vec<SessionPartition>, forgotten: &[FetchKey]) {
        self.partitions.retain(|p| !forgotten.contains(&p.key));
        for c in changed {
            match self.partitions.iter_mut().find(|p| p.key == c.key) {
                Some(p) => {
                    p.fetch_offset = c.fetch_offset;
                    p.max_bytes = c.max_bytes;
                }
                None => self.partitions.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(topic: &str, p: i32, offset: i64) -> SessionPartition {
        SessionPartition {
            key: FetchKey {
                topic: topic.into(),
                topic_id: Uuid::nil(),
                partition: p,
            },
            fetch_offset: offset,
            max_bytes: 1024,
            last_sent: None,
        }
    }

    #[test]
    fn epochs_must_follow_in_order() {
        let mut c = FetchSessions::default();
        let id = c.create(vec![part("a", 0, 0)], 10);
        assert!(id > 0);
        assert_eq!(c.use_session(id, 2).err(), Some(SessionError::InvalidEpoch));
        assert!(c.use_session(id, 1).is_ok());
        assert!(c.use_session(id, 2).is_ok());
        assert_eq!(c.use_session(id + 1, 1).err(), Some(SessionError::NotFound));
        c.remove(id);
        assert_eq!(c.use_session(id, 3).err(), Some(SessionError::NotFound));
        assert_eq!(next_epoch(i32::MAX), 1);
    }

    #[test]
    fn updates_add_change_and_forget_partitions() {
        let mut c = FetchSessions::default();
        let id = c.create(vec![part("a", 0, 0), part("a", 1, 0)], 10);
        let s = c.use_session(id, 1).unwrap();
        s.update(
            vec![part("a", 1, 7), part("b", 0, 3)],
            &[part("a", 0, 0).key],
        );
        let got: Vec<_> = s
            .partitions
            .iter()
            .map(|p| (p.key.topic.as_str(), p.key.partition, p.fetch_offset))
            .collect();
        assert_eq!(got, [("a", 1, 7), ("b", 0, 3)]);
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used() {
        let mut c = FetchSessions::default();
        let a = c.create(vec![], 2);
        let b = c.create(vec![], 2);
        c.use_session(a, 1).unwrap();
        let d = c.create(vec![], 2);
        assert!(c.use_session(b, 1).is_err());
        assert!(c.use_session(a, 2).is_ok() && c.use_session(d, 1).is_ok());
        assert_eq!(c.create(vec![], 0), 0);
    }
}

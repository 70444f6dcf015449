//! Share sessions (KIP-932): the partitions a member fetches from this
//! broker, so that ShareFetch requests after the first name only changes.
//!
//! A session belongs to a (group, member) pair. ShareFetch with epoch 0
//! opens it with the partitions it names (replacing any older session of
//! the member); each later ShareFetch or ShareAcknowledge carries the next
//! epoch and a ShareFetch adds partitions or forgets them; epoch -1 closes
//! it, after which the runtime releases what the member still holds. The
//! cache is pure: no clock, no I/O.

use std::collections::HashMap;

use uuid::Uuid;

use crate::BrokerError;

/// A topic partition by id.
pub type TopicIdPartition = (Uuid, i32);

/// What a ShareFetch is, given its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    /// It opened a session: answer every partition.
    Full,
    /// It continued one: answer the partitions with something to say.
    Incremental,
    /// It closed one: acknowledge, fetch nothing.
    Final,
}

#[derive(Debug, Clone)]
struct Session {
    next_epoch: i32,
    /// In the order they are served; those that returned records go last.
    partitions: Vec<TopicIdPartition>,
}

/// The broker's share sessions.
#[derive(Debug)]
pub struct ShareSessions {
    max: usize,
    sessions: HashMap<(String, String), Session>,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl ShareSessions {
    /// A cache of at most `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            sessions: HashMap::new(),
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Applies a ShareFetch's epoch and partition changes; returns what
    /// kind of fetch it is and the session's partitions in serving order.
    pub fn fetch(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        added: &[TopicIdPartition],
        forgotten: &[TopicIdPartition],
    ) -> Result<(FetchKind, Vec<TopicIdPartition>), BrokerError> {
        let key = (group.to_string(), member.to_string());
        match epoch {
            0 => {
                // A new session starts from what it names; there is nothing
                // to forget yet, as in Kafka.
                if !self.sessions.contains_key(&key) && self.sessions.len() >= self.max {
                    return Err(BrokerError::ShareSessionLimitReached);
                }
                let mut partitions: Vec<TopicIdPartition> = Vec::new();
                for p in added {
                    if !partitions.contains(p) {
                        partitions.push(*p);
                    }
                }
                self.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions: partitions.clone(),
                    },
                );
                Ok((FetchKind::Full, partitions))
            }
            // Partitions named here only carry acknowledgements.
            -1 => self
                .sessions
                .remove(&key)
                .map(|_| (FetchKind::Final, Vec::new()))
                .ok_or(BrokerError::ShareSessionNotFound),
            e if e < 0 => Err(BrokerError::InvalidShareSessionEpoch),
            e => {
                let s = self
                    .sessions
                    .get_mut(&key)
                    .ok_or(BrokerError::ShareSessionNotFound)?;
                if e != s.next_epoch {
                    return Err(BrokerError::InvalidShareSessionEpoch);
                }
                s.next_epoch = next(e);
                s.partitions.retain(|p| !forgotten.contains(p));
                for p in added {
                    if !s.partitions.contains(p) {
                        s.partitions.push(*p);
                    }
                }
                Ok((FetchKind::Incremental, s.partitions.clone()))
            }
        }
    }

    /// Applies a ShareAcknowledge's epoch; returns whether it closed the
    /// session.
    pub fn acknowledge(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<bool, BrokerError> {
        let key = (group.to_string(), member.to_string());
        match epoch {
            -1 => self
                .sessions
                .remove(&key)
                .map(|_| true)
                .ok_or(BrokerError::ShareSessionNotFound),
            e if e <= 0 => Err(BrokerError::InvalidShareSessionEpoch),
            e => {
                let s = self
                    .sessions
                    .get_mut(&key)
                    .ok_or(BrokerError::ShareSessionNotFound)?;
                if e != s.next_epoch {
                    return Err(BrokerError::InvalidShareSessionEpoch);
                }
                s.next_epoch = next(e);
                Ok(false)
            }
        }
    }

    /// Puts the partitions that just returned records at the back, so the
    /// next fetch serves the others first.
    pub fn served(&mut self, group: &str, member: &str, with_records: &[TopicIdPartition]) {
        let key = (group.to_string(), member.to_string());
        if let Some(s) = self.sessions.get_mut(&key) {
            let (mut back, mut front): (Vec<_>, Vec<_>) = std::mem::take(&mut s.partitions)
                .into_iter()
                .partition(|p| with_records.contains(p));
            front.append(&mut back);
            s.partitions = front;
        }
    }

    /// Drops the member's session (it left the group). Returns whether it
    /// had one.
    pub fn remove(&mut self, group: &str, member: &str) -> bool {
        self.sessions
            .remove(&(group.to_string(), member.to_string()))
            .is_some()
    }

    /// Drops every session of a group's members.
    pub fn remove_group(&mut self, group: &str) {
        self.sessions.retain(|(g, _), _| g != group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError;

    /// The refusal's Kafka error, if refused.
    fn refused<T>(r: Result<T, BrokerError>) -> Option<ResponseError> {
        r.err().map(|e| e.code())
    }

    const T: Uuid = Uuid::from_u128(9);

    #[test]
    fn epoch_zero_opens_and_later_epochs_continue_in_order() {
        let mut s = ShareSessions::new(10);
        let (k, ps) = s.fetch("g", "m", 0, &[(T, 0), (T, 1)], &[]).unwrap();
        assert_eq!((k, ps.len()), (FetchKind::Full, 2));
        let (k, ps) = s.fetch("g", "m", 1, &[(T, 2)], &[(T, 0)]).unwrap();
        assert_eq!((k, ps), (FetchKind::Incremental, vec![(T, 1), (T, 2)]));
        assert!(!s.acknowledge("g", "m", 2).unwrap());
        assert_eq!(
            s.fetch("g", "m", 3, &[], &[]).unwrap().1,
            vec![(T, 1), (T, 2)]
        );
    }

    #[test]
    fn wrong_epochs_and_missing_sessions_are_refused() {
        let mut s = ShareSessions::new(10);
        assert_eq!(
            refused(s.fetch("g", "m", 1, &[], &[])),
            Some(ResponseError::ShareSessionNotFound)
        );
        assert_eq!(
            refused(s.acknowledge("g", "m", 1)),
            Some(ResponseError::ShareSessionNotFound)
        );
        s.fetch("g", "m", 0, &[(T, 0)], &[]).unwrap();
        assert_eq!(
            refused(s.fetch("g", "m", 2, &[], &[])),
            Some(ResponseError::InvalidShareSessionEpoch)
        );
        assert_eq!(
            refused(s.acknowledge("g", "m", 0)),
            Some(ResponseError::InvalidShareSessionEpoch)
        );
        assert_eq!(
            refused(s.fetch("g", "m", -3, &[], &[])),
            Some(ResponseError::InvalidShareSessionEpoch)
        );
        // A refused epoch does not advance the session.
        assert!(s.fetch("g", "m", 1, &[], &[]).is_ok());
    }

    #[test]
    fn epoch_minus_one_closes() {
        let mut s = ShareSessions::new(10);
        s.fetch("g", "m", 0, &[(T, 0)], &[]).unwrap();
        assert_eq!(
            s.fetch("g", "m", -1, &[(T, 0)], &[]).unwrap().0,
            FetchKind::Final
        );
        assert!(s.is_empty());
        s.fetch("g", "m", 0, &[(T, 0)], &[]).unwrap();
        assert!(s.acknowledge("g", "m", -1).unwrap());
        assert_eq!(
            refused(s.acknowledge("g", "m", -1)),
            Some(ResponseError::ShareSessionNotFound)
        );
    }

    #[test]
    fn the_cache_is_bounded_but_a_member_may_reopen() {
        let mut s = ShareSessions::new(1);
        s.fetch("g", "a", 0, &[(T, 0)], &[]).unwrap();
        assert_eq!(
            refused(s.fetch("g", "b", 0, &[(T, 0)], &[])),
            Some(ResponseError::ShareSessionLimitReached)
        );
        assert!(s.fetch("g", "a", 0, &[(T, 1)], &[]).is_ok());
        assert!(s.remove("g", "a"));
        assert!(s.fetch("g", "b", 0, &[(T, 0)], &[]).is_ok());
        s.remove_group("g");
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn partitions_that_returned_records_are_served_last() {
        let mut s = ShareSessions::new(10);
        s.fetch("g", "m", 0, &[(T, 0), (T, 1), (T, 2)], &[])
            .unwrap();
        s.served("g", "m", &[(T, 0)]);
        assert_eq!(
            s.fetch("g", "m", 1, &[], &[]).unwrap().1,
            vec![(T, 1), (T, 2), (T, 0)]
        );
    }
}

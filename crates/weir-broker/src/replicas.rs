//! Replication factors and replica lists. Data is stored once (the log
//! engine, or the object store in cluster mode) whatever a topic's
//! replication factor says; the factor is kept so that tools creating
//! topics as on Kafka work and Metadata reports what they asked for.

use kafka_protocol::messages::BrokerId;

use crate::node::Node;
use crate::topics::Topic;
use crate::BrokerError;

/// The node ids of the live brokers, in order.
pub(crate) fn live_ids(node: &Node) -> Vec<i32> {
    node.brokers().iter().map(|b| b.node_id).collect()
}

/// Partition `p`'s leader (spread over the live `brokers`, whose node ids
/// are `live`) and its replica list, as Metadata and
/// DescribeTopicPartitions both report them.
pub(crate) fn placement(
    brokers: &[weir_log::BrokerAddr],
    live: &[i32],
    topic: &Topic,
    p: i32,
) -> (i32, Vec<BrokerId>) {
    let leader = Node::leader_of(brokers, &topic.name, p);
    let replicas = replicas(live, leader, topic.replication_factor, topic.assigned(p));
    (leader, replicas)
}

/// Refuses a replication factor below 1 or above the live brokers, with
/// Kafka's messages.
pub(crate) fn check_factor(rf: i16, live: usize) -> Result<(), BrokerError> {
    let reason = if rf < 1 {
        "Replication factor must be larger than 0, or -1 to use the default value.".to_string()
    } else if usize::try_from(rf).is_ok_and(|rf| rf > live) {
        format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {live} broker(s) are registered.")
    } else {
        return Ok(());
    };
    Err(BrokerError::InvalidReplicationFactor { reason })
}

/// Checks one partition's manual assignment as Kafka does: not empty, only
/// live brokers, none twice, and as many replicas as `expected` (the
/// other partitions').
pub(crate) fn check_assignment(
    replicas: &[BrokerId],
    live: &[i32],
    expected: Option<usize>,
) -> Result<(), BrokerError> {
    let refuse = |reason: String| Err(BrokerError::InvalidReplicaAssignment { reason });
    if replicas.is_empty() {
        return refuse("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted: Vec<i32> = replicas.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    for (i, b) in sorted.iter().enumerate() {
        if !live.contains(b) {
            return refuse(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
        if i > 0 && sorted[i - 1] == *b {
            return refuse(format!(
                "The manual partition assignment includes the broker {b} more than once."
            ));
        }
    }
    match expected {
        Some(n) if n != sorted.len() => refuse(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {n} replica(s).",
            sorted.len()
        )),
        _ => Ok(()),
    }
}

/// A partition's replicas: its manual assignment's live brokers in the
/// order given when the leader is one of them; otherwise its leader
/// first, then the next live brokers in node-id order, wrapping, `rf` in
/// all or as many as are live (a broker that left is not listed).
pub(crate) fn replicas(live: &[i32], leader: i32, rf: i16, assigned: &[i32]) -> Vec<BrokerId> {
    if assigned.contains(&leader) {
        return assigned
            .iter()
            .filter(|b| live.contains(b))
            .map(|&b| BrokerId(b))
            .collect();
    }
    let start = live.iter().position(|&b| b == leader).unwrap_or(0);
    let n = usize::try_from(rf).unwrap_or(1).clamp(1, live.len().max(1));
    live.iter()
        .cycle()
        .skip(start)
        .take(n)
        .map(|&b| BrokerId(b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[BrokerId]) -> Vec<i32> {
        v.iter().map(|b| b.0).collect()
    }

    #[test]
    fn replicas_start_at_the_leader_and_wrap() {
        assert_eq!(ids(&replicas(&[1, 2, 3], 2, 3, &[])), [2, 3, 1]);
        assert_eq!(ids(&replicas(&[1, 2, 3], 3, 2, &[])), [3, 1]);
        assert_eq!(ids(&replicas(&[1, 2, 3], 1, 1, &[])), [1]);
        // A broker left: only the live ones.
        assert_eq!(ids(&replicas(&[1, 3], 3, 3, &[])), [3, 1]);
        // As assigned when the leader is among them; else as above.
        assert_eq!(ids(&replicas(&[1, 2, 3], 2, 3, &[3, 2, 1])), [3, 2, 1]);
        assert_eq!(ids(&replicas(&[1, 3], 3, 3, &[2, 3, 1])), [3, 1]);
        assert_eq!(ids(&replicas(&[1, 2, 3], 3, 2, &[1, 2])), [3, 1]);
    }

    #[test]
    fn factors_and_assignments_are_checked_as_kafka_does() {
        assert!(check_factor(3, 3).is_ok());
        let e = check_factor(4, 3).unwrap_err().to_string();
        assert!(e.ends_with("only 3 broker(s) are registered."), "{e}");
        assert!(check_factor(0, 3).is_err());
        let b = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
        assert!(check_assignment(&b(&[3, 1, 2]), &[1, 2, 3], Some(3)).is_ok());
        let e = check_assignment(&b(&[1, 4]), &[1, 2, 3], None).unwrap_err();
        assert!(
            e.to_string().contains("broker 4, but no such broker"),
            "{e}"
        );
        let e = check_assignment(&b(&[2, 2]), &[1, 2, 3], None).unwrap_err();
        assert!(e.to_string().contains("broker 2 more than once"), "{e}");
        let e = check_assignment(&b(&[1]), &[1, 2, 3], Some(2)).unwrap_err();
        assert!(e.to_string().contains("with 1 replica(s)"), "{e}");
        assert!(check_assignment(&[], &[1], None).is_err());
    }
}

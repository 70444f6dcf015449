//! `weir-broker` owns the Kafka API: one module per API, each turning a
//! decoded request into a response over the partition logs, plus the
//! broker's metadata (topics, configs, cluster id) and fetch sessions.
//!
//! It knows nothing of sockets: [`codec`] turns frames into requests and
//! responses into frames, and [`Broker::handle`] answers a request. The
//! server crate moves frames; tests and fuzzers call these directly.
//!
//! With `authorizer.class.name` set, every handler checks the request's
//! [`weir_auth::Session`] against the ACLs as Kafka does ([`security::authz`]).
//!
//! Single-node facts: this broker is the leader of every partition, at
//! leader epoch [`LEADER_EPOCH`], and its only replica.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_share_group_offsets;
pub mod alter_user_scram_credentials;
pub mod api_versions;
mod broker;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod consumer_group;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod context;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_share_group_offsets;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_share_group_offsets;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
mod dispatch;
pub mod end_txn;
pub mod error;
pub mod fetch;
pub mod fetch_session;
pub mod find_coordinator;
pub mod group_config;
pub mod group_coordinator;
pub mod group_store;
pub mod groups;
pub mod heartbeat;
pub mod init_producer_id;
pub mod internal_log;
mod internal_records;
pub mod join_group;
mod leases;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
mod replicas;
pub mod security;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod share_partition;
pub mod share_session;
pub mod share_state_store;
pub mod shares;
pub mod sync_group;
pub mod topics;
pub mod transactions;
pub mod txn_coordinator;
pub mod txn_offset_commit;
pub mod txn_store;
pub mod validation;

pub use broker::{Broker, BrokerConfig, ClusterLocks};
pub use config::BrokerSettings;
pub use context::{Reply, RequestContext};
pub use error::BrokerError;
pub use topics::{validate_topic_name, Topic};

/// The leader epoch of every partition. A single node never changes
/// leaders, so the epoch stays 0 (as for a new partition in Kafka).
pub const LEADER_EPOCH: i32 = 0;

/// Checks the leader epoch a client believes in (`-1`: not given):
/// `UNKNOWN_LEADER_EPOCH` if it is ahead of ours, `FENCED_LEADER_EPOCH` if
/// it is behind.
pub fn check_leader_epoch(current: i32) -> Option<kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError;
    if current < 0 {
        return None;
    }
    match current.cmp(&LEADER_EPOCH) {
        std::cmp::Ordering::Greater => Some(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Less => Some(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Equal => None,
    }
}

/// Kafka's internal topics, reported with `is_internal`.
pub const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    security::SECURITY_TOPIC,
    security::audit::AUDIT_TOPIC,
    share_state_store::SHARE_STATE_TOPIC,
];

//! Weir's own Kafka protocol client, for what librdkafka does not offer:
//! typed requests of any API (through `kafka-protocol`'s message structs)
//! sent at the best version both sides speak, to the right broker (the
//! bootstrap, a partition leader, a group coordinator, every node), over
//! plaintext, TLS (rustls) or SASL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER)
//! configured by Kafka's client settings, membership of classic groups
//! of any protocol type (Kafka Connect's workers use it), and the admin
//! side of consumer and share groups (describing, offsets, resets).
//!
//! The `weir` command line's admin commands use it, and so do the platform
//! services (Connect, SQL, the REST proxy and the console) where they need
//! requests librdkafka has no API for. It knows nothing of the broker's
//! internals: everything goes over the wire, so it works against any
//! Kafka-compatible cluster.

mod acls;
mod admin;
mod cluster;
mod configs;
mod conn;
mod consumer_groups;
mod error;
pub mod group;
mod properties;
mod quotas;
mod sasl;
mod scram;
pub mod security;
mod share_groups;
mod topics;

pub use admin::{Admin, Node, OffsetAnswer, EARLIEST, LATEST};
pub use cluster::{BrokerInfo, ClusterInfo, LogDirInfo, PartitionInfo, Reassignment, TopicInfo};
pub use configs::{config_source_name, AlterConfigOp, ConfigEntry, ConfigResource, ConfigSynonym};
pub use conn::ClientConfig;
pub use consumer_groups::{
    GroupDescription, GroupListing, GroupProtocol, MemberDescription, OffsetTarget, PlannedOffset,
};
pub use error::{check, error_name, error_text, ClientError};
pub use group::{GroupMember, Joined};
pub use properties::parse_properties;
pub use quotas::{QuotaEntity, QuotaEntry};
pub use scram::ScramUser;
pub use security::{ClientSecurity, Protocol, SaslLogin, TlsSettings};
pub use share_groups::{ShareGroupDescription, ShareMember, ShareOffset};
pub use topics::{CreatedTopic, NewTopic};

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

//! Topic and broker configs, with Kafka's names, defaults, types, synonyms
//! and validation.
//!
//! A topic config's value comes from the first of these that sets it, which
//! is also what DescribeConfigs reports as its source and synonyms: the
//! topic's own override, a dynamic broker config (AlterConfigs on broker
//! `0`), a dynamic cluster default (AlterConfigs on broker ``), the static
//! broker config (`--set` or the config file), and Kafka's default.

use std::collections::BTreeMap;

use weir_log::{LogConfig, TimestampType};

use crate::BrokerError;

/// Kafka's config types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    /// `BOOLEAN`.
    Boolean = 1,
    /// `STRING`.
    String = 2,
    /// `INT`.
    Int = 3,
    /// `LONG`.
    Long = 5,
    /// `DOUBLE`.
    Double = 6,
    /// `LIST`.
    List = 7,
}

/// Where a config value came from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(i8)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic = 1,
    /// Set dynamically for this broker.
    DynamicBroker = 2,
    /// Set dynamically as the cluster-wide default.
    DynamicDefaultBroker = 3,
    /// Set in the broker's static config.
    StaticBroker = 4,
    /// Kafka's default.
    #[default]
    Default = 5,
}

/// How a value is checked.
#[derive(Debug, Clone, Copy)]
enum Check {
    Int {
        min: i64,
    },
    Long {
        min: i64,
    },
    Ratio,
    Bool,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    /// `;`-separated principals (`super.users`).
    Principals,
    /// Any text; cross-checked where it is used (at start-up).
    Text,
    /// Checked by a function returning the normalised value, or the
    /// refusal ([`refused`]: the config's name is added by the caller).
    Custom(fn(&str) -> Result<String, BrokerError>),
}

/// One config: its name, type, default and checks.
#[derive(Debug)]
pub struct ConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    /// For a topic config, the broker configs that set its default, the
    /// first one winning, each with the factor that turns its unit into the
    /// topic config's (e.g. `log.retention.hours`).
    pub synonyms: &'static [(&'static str, i64)],
    /// The type reported to clients.
    pub kind: ConfigType,
    /// Kafka's default.
    pub default: &'static str,
    check: Check,
    /// Whether AlterConfigs may change it (broker configs only).
    pub dynamic: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

macro_rules! def {
    ($name:expr, [$($syn:expr),*], $kind:ident, $default:expr, $check:expr, $doc:expr) => {
        ConfigDef {
            name: $name,
            synonyms: &[$($syn),*],
            kind: ConfigType::$kind,
            default: $default,
            check: $check,
            dynamic: true,
            doc: $doc,
        }
    };
}

const LONG_MAX: &str = "9223372036854775807";

/// Topic configs Weir implements.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    def!(
        "cleanup.policy",
        [("log.cleanup.policy", 1)],
        List,
        "delete",
        Check::ListOf(&["compact", "delete"]),
        "Retention policy: delete old segments, compact by key, or both."
    ),
    def!(
        "compression.gzip.level",
        [("compression.gzip.level", 1)],
        Int,
        "-1",
        Check::Custom(gzip_level),
        "Gzip level (1 to 9, -1 for the codec's default) when the broker compresses."
    ),
    def!(
        "compression.lz4.level",
        [("compression.lz4.level", 1)],
        Int,
        "9",
        Check::Custom(lz4_level),
        "LZ4 level (1 to 17) when the broker compresses."
    ),
    def!(
        "compression.type",
        [("compression.type", 1)],
        String,
        "producer",
        Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "Codec batches are stored in: `producer` keeps the producer's; any other recompresses batches in another codec."
    ),
    def!(
        "compression.zstd.level",
        [("compression.zstd.level", 1)],
        Int,
        "3",
        Check::Custom(zstd_level),
        "Zstandard level (-131072 to 22) when the broker compresses."
    ),
    def!(
        "confluent.key.schema.validation",
        [],
        Boolean,
        "false",
        Check::Bool,
        "Reject records whose key lacks a schema id registered under `<topic>-key`."
    ),
    def!(
        "confluent.value.schema.validation",
        [],
        Boolean,
        "false",
        Check::Bool,
        "Reject records whose value lacks a schema id registered under `<topic>-value`."
    ),
    def!(
        "delete.retention.ms",
        [("log.cleaner.delete.retention.ms", 1)],
        Long,
        "86400000",
        Check::Long { min: 0 },
        "How long tombstones are kept on compacted topics."
    ),
    def!(
        "file.delete.delay.ms",
        [("log.segment.delete.delay.ms", 1)],
        Long,
        "60000",
        Check::Long { min: 0 },
        "Delay before a deleted segment's files are removed."
    ),
    def!(
        "flush.messages",
        [("log.flush.interval.messages", 1)],
        Long,
        LONG_MAX,
        Check::Long { min: 1 },
        "Force an fsync after this many messages (acks=all is always synced)."
    ),
    def!(
        "flush.ms",
        [("log.flush.interval.ms", 1)],
        Long,
        LONG_MAX,
        Check::Long { min: 0 },
        "Force an fsync after this many milliseconds (acks=all is always synced)."
    ),
    def!(
        "follower.replication.throttled.replicas",
        [],
        List,
        "",
        Check::Text,
        "Accepted and inert: a single node has no followers."
    ),
    def!(
        "index.interval.bytes",
        [("log.index.interval.bytes", 1)],
        Int,
        "4096",
        Check::Int { min: 0 },
        "Bytes of log between offset index entries."
    ),
    def!(
        "leader.replication.throttled.replicas",
        [],
        List,
        "",
        Check::Text,
        "Accepted and inert: a single node has no followers."
    ),
    def!(
        "local.retention.bytes",
        [("log.local.retention.bytes", 1)],
        Long,
        "-2",
        Check::Long { min: -2 },
        "Accepted and inert: local retention under tiered storage, which Weir does not offer."
    ),
    def!(
        "local.retention.ms",
        [("log.local.retention.ms", 1)],
        Long,
        "-2",
        Check::Long { min: -2 },
        "Accepted and inert: local retention under tiered storage, which Weir does not offer."
    ),
    def!(
        "max.compaction.lag.ms",
        [("log.cleaner.max.compaction.lag.ms", 1)],
        Long,
        LONG_MAX,
        Check::Long { min: 1 },
        "Longest time a record stays uncompacted."
    ),
    def!(
        "max.message.bytes",
        [("message.max.bytes", 1)],
        Int,
        "1048588",
        Check::Int { min: 0 },
        "Largest record batch accepted."
    ),
    def!(
        "message.downconversion.enable",
        [("log.message.downconversion.enable", 1)],
        Boolean,
        "true",
        Check::Bool,
        "Deprecated (removed in Kafka 4); accepted and inert, as Weir never down-converts."
    ),
    def!(
        "message.format.version",
        [("log.message.format.version", 1)],
        String,
        "3.0-IV1",
        Check::Text,
        "Deprecated (removed in Kafka 4); accepted and inert: batches are always v2."
    ),
    def!(
        "message.timestamp.after.max.ms",
        [("log.message.timestamp.after.max.ms", 1)],
        Long,
        "3600000",
        Check::Long { min: 0 },
        "How far ahead of the broker's clock a CreateTime may be."
    ),
    def!(
        "message.timestamp.before.max.ms",
        [("log.message.timestamp.before.max.ms", 1)],
        Long,
        LONG_MAX,
        Check::Long { min: 0 },
        "How far behind the broker's clock a CreateTime may be."
    ),
    def!(
        "message.timestamp.difference.max.ms",
        [("log.message.timestamp.difference.max.ms", 1)],
        Long,
        LONG_MAX,
        Check::Long { min: 0 },
        "Deprecated (removed in Kafka 4); accepted and inert: use message.timestamp.before/after.max.ms."
    ),
    def!(
        "message.timestamp.type",
        [("log.message.timestamp.type", 1)],
        String,
        "CreateTime",
        Check::OneOf(&["CreateTime", "LogAppendTime"]),
        "Whether records keep the producer's time or get the broker's."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        [("log.cleaner.min.cleanable.ratio", 1)],
        Double,
        "0.5",
        Check::Ratio,
        "Share of uncompacted log that triggers compaction."
    ),
    def!(
        "min.compaction.lag.ms",
        [("log.cleaner.min.compaction.lag.ms", 1)],
        Long,
        "0",
        Check::Long { min: 0 },
        "Shortest time a record stays uncompacted."
    ),
    def!(
        "min.insync.replicas",
        [("min.insync.replicas", 1)],
        Int,
        "1",
        Check::Int { min: 1 },
        "Replicas that must acknowledge acks=all writes (a single node has one)."
    ),
    def!(
        "preallocate",
        [("log.preallocate", 1)],
        Boolean,
        "false",
        Check::Bool,
        "Accepted and inert: segment files grow as written."
    ),
    def!(
        "remote.log.copy.disable",
        [],
        Boolean,
        "false",
        Check::Bool,
        "Accepted and inert: tiered storage is not offered."
    ),
    def!(
        "remote.log.delete.on.disable",
        [],
        Boolean,
        "false",
        Check::Bool,
        "Accepted and inert: tiered storage is not offered."
    ),
    def!(
        "remote.storage.enable",
        [],
        Boolean,
        "false",
        Check::Custom(remote_storage),
        "Tiered storage is not offered: only false is accepted."
    ),
    def!(
        "retention.bytes",
        [("log.retention.bytes", 1)],
        Long,
        "-1",
        Check::Long { min: i64::MIN },
        "Largest size of a partition before old segments go; -1 for no limit."
    ),
    def!(
        "retention.ms",
        [
            ("log.retention.ms", 1),
            ("log.retention.minutes", MINUTE),
            ("log.retention.hours", HOUR)
        ],
        Long,
        "604800000",
        Check::Long { min: -1 },
        "How long segments are kept; -1 for ever."
    ),
    def!(
        "segment.bytes",
        [("log.segment.bytes", 1)],
        Int,
        "1073741824",
        // Kafka 3.9's minimum (one legacy record's overhead); Kafka 4 raised
        // it to 1 MiB, which refuses tools that test with small segments.
        Check::Int { min: 14 },
        "Size at which the active segment rolls."
    ),
    def!(
        "segment.index.bytes",
        [("log.index.size.max.bytes", 1)],
        Int,
        "10485760",
        Check::Int { min: 4 },
        "Largest offset index of one segment."
    ),
    def!(
        "segment.jitter.ms",
        [("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", HOUR)],
        Long,
        "0",
        Check::Long { min: 0 },
        "Accepted and inert: segments roll at exactly segment.ms."
    ),
    def!(
        "segment.ms",
        [("log.roll.ms", 1), ("log.roll.hours", HOUR)],
        Long,
        "604800000",
        Check::Long { min: 1 },
        "Age at which the active segment rolls."
    ),
    def!(
        "unclean.leader.election.enable",
        [("unclean.leader.election.enable", 1)],
        Boolean,
        "false",
        Check::Bool,
        "Accepted and inert: a single node is always the leader."
    ),
];

/// An int in `lo..=hi`, or one of `also`.
fn int_in(v: &str, lo: i32, hi: i32, also: &[i32]) -> Result<String, BrokerError> {
    match v.parse::<i32>() {
        Ok(n) if (lo..=hi).contains(&n) || also.contains(&n) => Ok(n.to_string()),
        _ => Err(refused(format!("must be an int from {lo} to {hi}"))),
    }
}

/// A [`Check::Custom`] refusal: `what` is wrong with the value. The check
/// that called the function names the config.
fn refused(what: impl Into<String>) -> BrokerError {
    invalid("", what.into())
}

fn gzip_level(v: &str) -> Result<String, BrokerError> {
    int_in(v, 1, 9, &[-1])
}

fn lz4_level(v: &str) -> Result<String, BrokerError> {
    int_in(v, 1, 17, &[])
}

fn zstd_level(v: &str) -> Result<String, BrokerError> {
    int_in(v, -131_072, 22, &[])
}

/// Kafka refuses `remote.storage.enable=true` on a broker without tiered
/// storage, as Weir is.
fn remote_storage(v: &str) -> Result<String, BrokerError> {
    match v.to_ascii_lowercase().as_str() {
        "false" => Ok("false".into()),
        "true" => Err(refused("tiered storage is not available on this broker")),
        _ => Err(refused("must be true or false")),
    }
}

/// Broker configs that are not topic synonyms.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "node.id",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "0",
        check: Check::Int { min: 0 },
        dynamic: false,
        doc: "This broker's id.",
    },
    ConfigDef {
        name: "num.partitions",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "1",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Partitions of a topic created without a count.",
    },
    ConfigDef {
        name: "quota.window.num",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "11",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Samples kept to measure client quota rates.",
    },
    ConfigDef {
        name: "quota.window.size.seconds",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "1",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Length of one client quota sample.",
    },
    ConfigDef {
        name: "default.replication.factor",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "1",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Replication factor of a topic created without one.",
    },
    ConfigDef {
        name: "auto.create.topics.enable",
        synonyms: &[],
        kind: ConfigType::Boolean,
        default: "true",
        check: Check::Bool,
        dynamic: false,
        doc: "Create unknown topics named in Metadata requests.",
    },
    ConfigDef {
        name: "authorizer.class.name",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::OneOf(&[
            "",
            "StandardAuthorizer",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "kafka.security.authorizer.AclAuthorizer",
        ]),
        dynamic: false,
        doc: "Set to StandardAuthorizer to enforce ACLs; empty allows every request.",
    },
    ConfigDef {
        name: "super.users",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Principals,
        dynamic: false,
        doc: "Principals allowed everything, separated by `;` (`User:admin;User:ops`).",
    },
    ConfigDef {
        name: "allow.everyone.if.no.acl.found",
        synonyms: &[],
        kind: ConfigType::Boolean,
        default: "false",
        check: Check::Bool,
        dynamic: false,
        doc: "Allow a request on a resource that has no ACLs at all.",
    },
    ConfigDef {
        name: "delete.topic.enable",
        synonyms: &[],
        kind: ConfigType::Boolean,
        default: "true",
        check: Check::Bool,
        dynamic: false,
        doc: "Allow DeleteTopics.",
    },
    ConfigDef {
        name: "socket.request.max.bytes",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "104857600",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Largest request frame accepted.",
    },
    ConfigDef {
        name: "max.connections",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "10000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Most client connections at once (Kafka's default is unbounded).",
    },
    ConfigDef {
        name: "connections.max.idle.ms",
        synonyms: &[],
        kind: ConfigType::Long,
        default: "600000",
        check: Check::Long { min: 1 },
        dynamic: false,
        doc: "Idle connections are closed after this long.",
    },
    ConfigDef {
        name: "queued.max.requests",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "500",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Requests in flight on one connection before reading pauses.",
    },
    ConfigDef {
        name: "max.incremental.fetch.session.cache.slots",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "1000",
        check: Check::Int { min: 0 },
        dynamic: false,
        doc: "Incremental fetch sessions kept (KIP-227).",
    },
    ConfigDef {
        name: "log.retention.check.interval.ms",
        synonyms: &[],
        kind: ConfigType::Long,
        default: "300000",
        check: Check::Long { min: 1 },
        dynamic: false,
        doc: "How often retention runs.",
    },
    ConfigDef {
        name: "offsets.topic.num.partitions",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "50",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Partitions of __consumer_offsets (fixed once the topic exists).",
    },
    ConfigDef {
        name: "offsets.topic.segment.bytes",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "104857600",
        check: Check::Int { min: 1024 * 1024 },
        dynamic: false,
        doc: "Segment size of __consumer_offsets.",
    },
    ConfigDef {
        name: "transaction.state.log.num.partitions",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "50",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Partitions of __transaction_state (fixed once the topic exists).",
    },
    ConfigDef {
        name: "transaction.state.log.segment.bytes",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "104857600",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "segment.bytes of __transaction_state when it is created.",
    },
    ConfigDef {
        name: "transaction.max.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "900000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Largest transaction.timeout.ms a producer may ask for.",
    },
    ConfigDef {
        name: "transactional.id.expiration.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "604800000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "A transactional id idle this long (no transaction open) is forgotten.",
    },
    ConfigDef {
        // Weir's stand-in for Kafka's finalized feature level, which Kafka
        // sets with `kafka-storage format --feature` or `kafka-features`.
        name: "transaction.version",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "2",
        check: Check::OneOf(&["0", "1", "2"]),
        dynamic: false,
        doc: "The finalized transaction.version feature level clients see in ApiVersions: 2 (KIP-890 part 2, epoch bump per transaction) or lower for older behaviour.",
    },
    ConfigDef {
        name: "producer.id.expiration.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "86400000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Idempotence state of a producer idle this long is forgotten by each partition.",
    },
    ConfigDef {
        name: "offsets.retention.minutes",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "10080",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "How long a group's offsets outlive the group being empty.",
    },
    ConfigDef {
        name: "offset.metadata.max.bytes",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "4096",
        check: Check::Int { min: 0 },
        dynamic: false,
        doc: "Largest metadata string stored with a committed offset.",
    },
    ConfigDef {
        name: "group.min.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "6000",
        check: Check::Int { min: 0 },
        dynamic: false,
        doc: "Shortest session timeout a member may ask for.",
    },
    ConfigDef {
        name: "group.max.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "1800000",
        check: Check::Int { min: 0 },
        dynamic: false,
        doc: "Longest session timeout a member may ask for.",
    },
    ConfigDef {
        name: "group.initial.rebalance.delay.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "3000",
        check: Check::Int { min: 0 },
        dynamic: false,
        doc: "How long a new group waits for more members before its first rebalance.",
    },
    ConfigDef {
        name: "group.max.size",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "2147483647",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Most members of one classic group.",
    },
    ConfigDef {
        name: "group.consumer.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "45000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Session timeout of consumer-protocol (KIP-848) group members.",
    },
    ConfigDef {
        name: "group.consumer.min.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "45000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Least session timeout a consumer-protocol group config may set.",
    },
    ConfigDef {
        name: "group.consumer.max.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "60000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Greatest session timeout a consumer-protocol group config may set.",
    },
    ConfigDef {
        name: "group.consumer.min.heartbeat.interval.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "5000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Least heartbeat interval a consumer-protocol group config may set.",
    },
    ConfigDef {
        name: "group.consumer.max.heartbeat.interval.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "15000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Greatest heartbeat interval a consumer-protocol group config may set.",
    },
    ConfigDef {
        name: "group.consumer.heartbeat.interval.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "5000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Heartbeat interval told to consumer-protocol (KIP-848) group members.",
    },
    // Share groups (KIP-932), with Kafka's names and defaults.
    ConfigDef {
        name: "group.share.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "45000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Default session timeout of share group members (share.session.timeout.ms).",
    },
    ConfigDef {
        name: "group.share.min.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "45000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Least share.session.timeout.ms a group may set.",
    },
    ConfigDef {
        name: "group.share.max.session.timeout.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "60000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Most share.session.timeout.ms a group may set.",
    },
    ConfigDef {
        name: "group.share.heartbeat.interval.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "5000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Default heartbeat interval told to share group members.",
    },
    ConfigDef {
        name: "group.share.min.heartbeat.interval.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "5000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Least share.heartbeat.interval.ms a group may set.",
    },
    ConfigDef {
        name: "group.share.max.heartbeat.interval.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "15000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Most share.heartbeat.interval.ms a group may set.",
    },
    ConfigDef {
        name: "group.share.max.size",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "200",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Most members of one share group.",
    },
    ConfigDef {
        name: "group.share.record.lock.duration.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "30000",
        check: Check::Int { min: 1000 },
        dynamic: false,
        doc: "Default time a delivered record stays locked to its consumer.",
    },
    ConfigDef {
        name: "group.share.min.record.lock.duration.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "15000",
        check: Check::Int { min: 1000 },
        dynamic: false,
        doc: "Least share.record.lock.duration.ms a group may set.",
    },
    ConfigDef {
        name: "group.share.max.record.lock.duration.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "60000",
        check: Check::Int { min: 1000 },
        dynamic: false,
        doc: "Most share.record.lock.duration.ms a group may set.",
    },
    ConfigDef {
        name: "group.share.delivery.count.limit",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "5",
        check: Check::Int { min: 2 },
        dynamic: false,
        doc: "Default delivery attempts after which a record is archived.",
    },
    ConfigDef {
        name: "group.share.min.delivery.count.limit",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "2",
        check: Check::Int { min: 2 },
        dynamic: false,
        doc: "Least share.delivery.count.limit a group may set.",
    },
    ConfigDef {
        name: "group.share.max.delivery.count.limit",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "10",
        check: Check::Int { min: 2 },
        dynamic: false,
        doc: "Most share.delivery.count.limit a group may set.",
    },
    ConfigDef {
        name: "group.share.partition.max.record.locks",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "2000",
        check: Check::Int { min: 100 },
        dynamic: false,
        doc: "Default most records in flight per share-partition.",
    },
    ConfigDef {
        name: "group.share.max.share.sessions",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "2000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Most share sessions the broker keeps.",
    },
    ConfigDef {
        name: "share.coordinator.state.topic.num.partitions",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "50",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "Partitions of __share_group_state (fixed when it is created).",
    },
    ConfigDef {
        name: "share.coordinator.state.topic.segment.bytes",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "104857600",
        check: Check::Int { min: 1048576 },
        dynamic: false,
        doc: "Segment size of __share_group_state.",
    },
    ConfigDef {
        name: "share.coordinator.snapshot.update.records.per.snapshot",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "500",
        check: Check::Int { min: 0 },
        dynamic: false,
        doc: "Updates of a share-partition's state written between two snapshots of it.",
    },
    ConfigDef {
        name: "share.coordinator.state.topic.prune.interval.ms",
        synonyms: &[],
        kind: ConfigType::Int,
        default: "300000",
        check: Check::Int { min: 1 },
        dynamic: false,
        doc: "How often records of __share_group_state that no state needs are deleted.",
    },
    ConfigDef {
        name: "log.cleaner.enable",
        synonyms: &[],
        kind: ConfigType::Boolean,
        default: "true",
        check: Check::Bool,
        dynamic: false,
        doc: "Run compaction for compacted topics.",
    },
    ConfigDef {
        name: "log.cleaner.dedupe.buffer.size",
        synonyms: &[],
        kind: ConfigType::Long,
        default: "16777216",
        check: Check::Long { min: 1024 * 1024 },
        dynamic: false,
        doc: "Memory for the compaction offset map.",
    },
    // Security (listeners, TLS, SASL). Checked again as a whole at start-up.
    ConfigDef {
        name: "listeners",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "Listeners as NAME://HOST:PORT,...; when set it replaces --listen.",
    },
    ConfigDef {
        name: "advertised.listeners",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "Per-listener addresses clients are told to use; default the bound ones.",
    },
    ConfigDef {
        name: "listener.security.protocol.map",
        synonyms: &[],
        kind: ConfigType::String,
        default: "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        check: Check::Custom(|v| {
            weir_auth::listener::parse_protocol_map(v)
                .map(|_| v.to_string())
                .map_err(|e| refused(e.to_string()))
        }),
        dynamic: false,
        doc: "Listener name to security protocol, NAME:PROTOCOL,...",
    },
    ConfigDef {
        name: "ssl.certificate.location",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "PEM certificate chain of TLS listeners; re-read when it changes.",
    },
    ConfigDef {
        name: "ssl.key.location",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "PEM private key of TLS listeners; re-read when it changes.",
    },
    ConfigDef {
        name: "ssl.truststore.location",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "PEM CA certificates that client certificates must chain to.",
    },
    ConfigDef {
        name: "ssl.client.auth",
        synonyms: &[],
        kind: ConfigType::String,
        default: "none",
        check: Check::OneOf(&["none", "requested", "required"]),
        dynamic: false,
        doc: "Client certificates on TLS listeners: none, requested or required.",
    },
    ConfigDef {
        name: "ssl.principal.mapping.rules",
        synonyms: &[],
        kind: ConfigType::String,
        default: "DEFAULT",
        check: Check::Custom(|v| {
            weir_auth::ssl_mapping::PrincipalMapper::parse(v)
                .map(|_| v.to_string())
                .map_err(|e| refused(e.to_string()))
        }),
        dynamic: false,
        doc: "Rules mapping a client certificate's subject DN to a principal name.",
    },
    ConfigDef {
        name: "sasl.enabled.mechanisms",
        synonyms: &[],
        kind: ConfigType::List,
        default: "",
        check: Check::ListOf(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]),
        dynamic: false,
        doc: "SASL mechanisms offered; empty offers every mechanism that is configured.",
    },
    // Kafka's Kerberos settings, which tools and librdkafka's admin test
    // (0081) set through AlterConfigs; dynamic there, as here.
    ConfigDef {
        name: "sasl.kerberos.kinit.cmd",
        synonyms: &[],
        kind: ConfigType::String,
        default: "/usr/bin/kinit",
        check: Check::Text,
        dynamic: true,
        doc: "Accepted and inert: GSSAPI (Kerberos) is not offered.",
    },
    ConfigDef {
        name: "sasl.kerberos.min.time.before.relogin",
        synonyms: &[],
        kind: ConfigType::Long,
        default: "60000",
        check: Check::Long { min: 0 },
        dynamic: true,
        doc: "Accepted and inert: GSSAPI (Kerberos) is not offered.",
    },
    ConfigDef {
        name: "sasl.kerberos.principal.to.local.rules",
        synonyms: &[],
        kind: ConfigType::List,
        default: "DEFAULT",
        check: Check::Text,
        dynamic: true,
        doc: "Accepted and inert: GSSAPI (Kerberos) is not offered.",
    },
    ConfigDef {
        name: "sasl.kerberos.service.name",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: true,
        doc: "Accepted and inert: GSSAPI (Kerberos) is not offered.",
    },
    ConfigDef {
        name: "sasl.kerberos.ticket.renew.jitter",
        synonyms: &[],
        kind: ConfigType::Double,
        default: "0.05",
        check: Check::Ratio,
        dynamic: true,
        doc: "Accepted and inert: GSSAPI (Kerberos) is not offered.",
    },
    ConfigDef {
        name: "sasl.kerberos.ticket.renew.window.factor",
        synonyms: &[],
        kind: ConfigType::Double,
        default: "0.8",
        check: Check::Ratio,
        dynamic: true,
        doc: "Accepted and inert: GSSAPI (Kerberos) is not offered.",
    },
    ConfigDef {
        name: "sasl.plain.credentials.file",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "File of username=password lines for PLAIN; re-read when it changes.",
    },
    ConfigDef {
        name: "sasl.oauthbearer.jwks.endpoint.url",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "file:// URL of the JWKS that OAUTHBEARER tokens are checked against.",
    },
    ConfigDef {
        name: "sasl.oauthbearer.expected.issuer",
        synonyms: &[],
        kind: ConfigType::String,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "The `iss` OAUTHBEARER tokens must carry; empty accepts any.",
    },
    ConfigDef {
        name: "sasl.oauthbearer.expected.audience",
        synonyms: &[],
        kind: ConfigType::List,
        default: "",
        check: Check::Text,
        dynamic: false,
        doc: "Audiences of which an OAUTHBEARER token's `aud` must hold one; empty accepts any.",
    },
    ConfigDef {
        name: "sasl.oauthbearer.sub.claim.name",
        synonyms: &[],
        kind: ConfigType::String,
        default: "sub",
        check: Check::Text,
        dynamic: false,
        doc: "The token claim naming the principal.",
    },
    ConfigDef {
        name: "http.authentication",
        synonyms: &[],
        kind: ConfigType::List,
        default: "",
        check: Check::ListOf(&["basic", "bearer"]),
        dynamic: false,
        doc: "Authentication the HTTP listeners (admin, schema registry) require: basic, bearer or both; empty requires none.",
    },
    ConfigDef {
        name: "http.ssl.enabled",
        synonyms: &[],
        kind: ConfigType::Boolean,
        default: "false",
        check: Check::Bool,
        dynamic: false,
        doc: "Serve the HTTP listeners over TLS with ssl.certificate.location and ssl.key.location.",
    },
    ConfigDef {
        name: "connections.max.reauth.ms",
        synonyms: &[],
        kind: ConfigType::Long,
        default: "0",
        check: Check::Long { min: 0 },
        dynamic: false,
        doc:
            "SASL session lifetime before clients must re-authenticate (KIP-368); 0 means no limit.",
    },
];

/// The broker config names that set topic defaults, with their topic config.
fn broker_synonym(name: &str) -> Option<(&'static ConfigDef, i64)> {
    TOPIC_CONFIGS.iter().find_map(|d| {
        d.synonyms
            .iter()
            .find(|(s, _)| *s == name)
            .map(|&(_, f)| (d, f))
    })
}

/// Finds a topic config by name.
pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// A refused value of config `key`.
pub(crate) fn invalid(key: &str, reason: String) -> BrokerError {
    BrokerError::InvalidConfig {
        key: key.to_string(),
        reason,
    }
}

/// Checks `value` against `def`, returning the normalised value; a refusal
/// explains itself as `invalid value ...`.
fn check(def: &ConfigDef, value: &str) -> Result<String, BrokerError> {
    let v = value.trim();
    let bad = |what: &str| {
        Err(invalid(
            def.name,
            format!("invalid value `{value}`: {what}"),
        ))
    };
    match def.check {
        Check::Int { min } => match v.parse::<i32>() {
            Ok(n) if i64::from(n) >= min => Ok(n.to_string()),
            Ok(_) => bad(&format!("must be at least {min}")),
            Err(_) => bad("not an int"),
        },
        Check::Long { min } => match v.parse::<i64>() {
            Ok(n) if n >= min => Ok(n.to_string()),
            Ok(_) => bad(&format!("must be at least {min}")),
            Err(_) => bad("not a long"),
        },
        Check::Ratio => match v.parse::<f64>() {
            Ok(n) if (0.0..=1.0).contains(&n) => Ok(v.to_string()),
            _ => bad("must be a number between 0 and 1"),
        },
        Check::Bool => match v.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => bad("must be true or false"),
        },
        Check::OneOf(allowed) => match allowed.iter().find(|a| a.eq_ignore_ascii_case(v)) {
            Some(a) => Ok((*a).to_string()),
            None => bad(&format!("must be one of {}", allowed.join(", "))),
        },
        Check::Principals => weir_auth::acl::AuthorizerConfig::parse_super_users(v)
            .map(|_| v.to_string())
            .or_else(|e| bad(&e.to_string())),
        Check::ListOf(allowed) => {
            let mut items = Vec::new();
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match allowed.iter().find(|a| a.eq_ignore_ascii_case(item)) {
                    Some(a) if !items.contains(a) => items.push(*a),
                    Some(_) => {}
                    None => {
                        return bad(&format!("each item must be one of {}", allowed.join(", ")))
                    }
                }
            }
            Ok(items.join(","))
        }
        Check::Text => Ok(v.to_string()),
        Check::Custom(f) => f(v).or_else(|e| match e {
            BrokerError::InvalidConfig { reason, .. } => bad(&reason),
            other => Err(other),
        }),
    }
}

/// The refusal of `name`'s value, prefixed with the name as Kafka's
/// messages are.
fn named(name: &str, e: BrokerError) -> BrokerError {
    match e {
        BrokerError::InvalidConfig { reason, .. } => invalid(name, format!("{name}: {reason}")),
        other => other,
    }
}

/// Validates a topic config override, returning the normalised value.
pub fn validate_topic_config(name: &str, value: &str) -> Result<String, BrokerError> {
    let def =
        topic_def(name).ok_or_else(|| invalid(name, format!("unknown topic config `{name}`")))?;
    check(def, value).map_err(|e| named(name, e))
}

/// Validates a broker config (either a broker-only config or a topic
/// default synonym), returning the normalised value. Refusals explain
/// themselves without the name (callers add it).
fn check_broker_config(name: &str, value: &str) -> Result<String, BrokerError> {
    if let Some(def) = BROKER_CONFIGS.iter().find(|d| d.name == name) {
        return check(def, value);
    }
    let (def, factor) =
        broker_synonym(name).ok_or_else(|| invalid(name, "unknown broker config".into()))?;
    let v = check(def, value)?;
    // A synonym in another unit must still fit the topic config's type.
    if factor != 1
        && v.parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .is_none()
    {
        return Err(invalid(name, format!("invalid value `{value}`: too large")));
    }
    Ok(v)
}

/// Validates a broker config (either a broker-only config or a topic
/// default synonym), returning the normalised value.
pub fn validate_broker_config(name: &str, value: &str) -> Result<String, BrokerError> {
    check_broker_config(name, value).map_err(|e| named(name, e))
}

/// Whether AlterConfigs may set this broker config.
pub fn broker_config_is_dynamic(name: &str) -> bool {
    broker_synonym(name).is_some() || BROKER_CONFIGS.iter().any(|d| d.name == name && d.dynamic)
}

/// A resolved config value with where it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The config's definition.
    pub def: &'static ConfigDef,
    /// The effective value.
    pub value: String,
    /// Where it came from.
    pub source: ConfigSource,
    /// Every place that sets it, most specific first (DescribeConfigs
    /// synonyms): name, value, source.
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// One broker config as DescribeConfigs reports it.
#[derive(Debug, Clone)]
pub struct BrokerConfigEntry {
    /// Kafka's name.
    pub name: String,
    /// Its value, if set or defaulted.
    pub value: Option<String>,
    /// Where the value came from.
    pub source: ConfigSource,
    /// Its type.
    pub kind: ConfigType,
    /// Whether AlterConfigs may not change it.
    pub read_only: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

/// The broker's config layers: static (start-up) and dynamic (AlterConfigs).
#[derive(Debug, Clone, Default)]
pub struct BrokerSettings {
    /// From `--set` and the config file, validated.
    pub static_configs: BTreeMap<String, String>,
    /// Set by AlterConfigs on this broker (`0`).
    pub dynamic_broker: BTreeMap<String, String>,
    /// Set by AlterConfigs as the cluster default (``).
    pub dynamic_default: BTreeMap<String, String>,
}

impl BrokerSettings {
    /// Builds settings from static key/value pairs, validating each.
    pub fn from_static(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, BrokerError> {
        let mut static_configs = BTreeMap::new();
        for (key, value) in pairs {
            let v = check_broker_config(&key, &value).map_err(|e| BrokerError::Config {
                key: key.clone(),
                reason: match e {
                    BrokerError::InvalidConfig { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?;
            static_configs.insert(key, v);
        }
        Ok(Self {
            static_configs,
            ..Self::default()
        })
    }

    /// The layers of broker-level values, most specific first.
    fn layers(&self) -> [(&BTreeMap<String, String>, ConfigSource); 3] {
        [
            (&self.dynamic_broker, ConfigSource::DynamicBroker),
            (&self.dynamic_default, ConfigSource::DynamicDefaultBroker),
            (&self.static_configs, ConfigSource::StaticBroker),
        ]
    }

    /// A broker-only config's value.
    pub fn get(&self, name: &str) -> String {
        self.layers()
            .iter()
            .find_map(|(m, _)| m.get(name).cloned())
            .or_else(|| {
                BROKER_CONFIGS
                    .iter()
                    .find(|d| d.name == name)
                    .map(|d| d.default.to_string())
            })
            .unwrap_or_default()
    }

    /// A broker-only integer config.
    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or_default()
    }

    /// A broker-only boolean config.
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "true"
    }

    /// Resolves a topic config given the topic's overrides.
    pub fn resolve(
        &self,
        def: &'static ConfigDef,
        overrides: &BTreeMap<String, String>,
    ) -> Resolved {
        let mut synonyms = Vec::new();
        if let Some(v) = overrides.get(def.name) {
            synonyms.push((def.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
        }
        for (layer, source) in self.layers() {
            for &(syn, factor) in def.synonyms {
                if let Some(v) = layer.get(syn) {
                    let value = scale(v, factor);
                    synonyms.push((syn.to_string(), value, source));
                }
            }
        }
        let default_name = def.synonyms.first().map_or(def.name, |s| s.0);
        synonyms.push((
            default_name.to_string(),
            def.default.to_string(),
            ConfigSource::Default,
        ));
        let (value, source) = synonyms
            .first()
            .map(|(_, v, s)| (v.clone(), *s))
            .unwrap_or_default();
        Resolved {
            def,
            value,
            source,
            synonyms,
        }
    }

    /// Every topic config of a topic with `overrides`.
    pub fn resolve_all(&self, overrides: &BTreeMap<String, String>) -> Vec<Resolved> {
        TOPIC_CONFIGS
            .iter()
            .map(|d| self.resolve(d, overrides))
            .collect()
    }

    /// The storage settings of a topic with `overrides`.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let get = |name: &str| {
            topic_def(name)
                .map(|d| self.resolve(d, overrides).value)
                .unwrap_or_default()
        };
        let long = |name: &str| get(name).parse::<i64>().unwrap_or(i64::MAX);
        let unsigned = |name: &str| u64::try_from(long(name)).unwrap_or(0);
        let policy = get("cleanup.policy");
        LogConfig {
            segment_bytes: unsigned("segment.bytes"),
            segment_ms: long("segment.ms"),
            segment_index_bytes: unsigned("segment.index.bytes"),
            index_interval_bytes: unsigned("index.interval.bytes"),
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            max_message_bytes: unsigned("max.message.bytes"),
            timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp_before_max_ms: long("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms"),
            cleanup_delete: policy.split(',').any(|p| p == "delete"),
            cleanup_compact: policy.split(',').any(|p| p == "compact"),
            delete_retention_ms: long("delete.retention.ms"),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms"),
            max_compaction_lag_ms: long("max.compaction.lag.ms"),
            flush_messages: long("flush.messages"),
            flush_ms: long("flush.ms"),
            file_delete_delay_ms: long("file.delete.delay.ms"),
        }
    }

    /// Every broker config (broker-only and topic synonyms) with its value
    /// and source, for DescribeConfigs on a broker resource.
    pub fn broker_view(&self) -> Vec<BrokerConfigEntry> {
        let mut out = Vec::new();
        let value_of = |name: &str, default: Option<&str>| {
            self.layers()
                .iter()
                .find_map(|(m, s)| m.get(name).map(|v| (Some(v.clone()), *s)))
                .unwrap_or((default.map(str::to_string), ConfigSource::Default))
        };
        for d in BROKER_CONFIGS {
            let (v, s) = value_of(d.name, Some(d.default));
            out.push(BrokerConfigEntry {
                name: d.name.to_string(),
                value: v,
                source: s,
                kind: d.kind,
                read_only: !d.dynamic,
                doc: d.doc,
            });
        }
        for d in TOPIC_CONFIGS {
            for (i, &(syn, _)) in d.synonyms.iter().enumerate() {
                // Only the first synonym has the default; the others are unset.
                let (v, s) = value_of(syn, (i == 0).then_some(d.default));
                out.push(BrokerConfigEntry {
                    name: syn.to_string(),
                    value: v,
                    source: s,
                    kind: d.kind,
                    read_only: false,
                    doc: d.doc,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        out
    }
}

fn scale(v: &str, factor: i64) -> String {
    if factor == 1 {
        return v.to_string();
    }
    v.parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .map_or_else(|| v.to_string(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_override_wins_and_synonyms_are_listed_in_order() {
        let s = BrokerSettings::from_static([("log.retention.hours".to_string(), "2".to_string())])
            .unwrap();
        let def = topic_def("retention.ms").unwrap();
        let r = s.resolve(def, &BTreeMap::new());
        assert_eq!(
            (r.value.as_str(), r.source),
            ("7200000", ConfigSource::StaticBroker)
        );
        let overrides = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        let r = s.resolve(def, &overrides);
        assert_eq!(
            (r.value.as_str(), r.source),
            ("5", ConfigSource::DynamicTopic)
        );
        let names: Vec<_> = r.synonyms.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            ["retention.ms", "log.retention.hours", "log.retention.ms"]
        );
    }

    #[test]
    fn values_are_checked() {
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert_eq!(
            validate_topic_config("cleanup.policy", "Compact, delete").unwrap(),
            "compact,delete"
        );
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("no.such", "1").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_broker_config("num.partitions", "0").is_err());
        assert!(validate_broker_config("nonsense.key", "0").is_err());
        assert!(validate_broker_config("log.retention.hours", "9223372036854775807").is_err());
    }

    #[test]
    fn every_kafka_4_topic_config_is_known() {
        // TopicConfig's names in kafka-clients 4.3, plus the replication
        // throttles Kafka's LogConfig adds.
        for name in [
            "segment.bytes",
            "segment.ms",
            "segment.jitter.ms",
            "segment.index.bytes",
            "flush.messages",
            "flush.ms",
            "retention.bytes",
            "retention.ms",
            "remote.storage.enable",
            "local.retention.ms",
            "local.retention.bytes",
            "remote.log.copy.disable",
            "remote.log.delete.on.disable",
            "max.message.bytes",
            "index.interval.bytes",
            "file.delete.delay.ms",
            "delete.retention.ms",
            "min.compaction.lag.ms",
            "max.compaction.lag.ms",
            "min.cleanable.dirty.ratio",
            "cleanup.policy",
            "unclean.leader.election.enable",
            "min.insync.replicas",
            "compression.type",
            "compression.gzip.level",
            "compression.lz4.level",
            "compression.zstd.level",
            "preallocate",
            "message.timestamp.type",
            "message.timestamp.before.max.ms",
            "message.timestamp.after.max.ms",
            "message.downconversion.enable",
            "leader.replication.throttled.replicas",
            "follower.replication.throttled.replicas",
        ] {
            let def = topic_def(name).unwrap_or_else(|| panic!("{name} unknown"));
            assert_eq!(
                validate_topic_config(name, def.default).ok().as_deref(),
                Some(def.default),
                "{name}"
            );
        }
    }

    #[test]
    fn kafka_3_leniency_and_tiered_storage() {
        // librdkafka's tests set these; Kafka 3.9 accepts them.
        assert!(validate_topic_config("message.format.version", "0.10.0").is_ok());
        assert_eq!(
            validate_topic_config("segment.bytes", "20000")
                .ok()
                .as_deref(),
            Some("20000")
        );
        assert!(validate_topic_config("segment.bytes", "13").is_err());
        assert!(validate_topic_config("remote.storage.enable", "true").is_err());
        assert!(validate_topic_config("compression.gzip.level", "0").is_err());
        assert!(validate_topic_config("compression.gzip.level", "-1").is_ok());
        assert!(validate_topic_config("compression.lz4.level", "18").is_err());
        assert!(validate_topic_config("compression.zstd.level", "-5").is_ok());
        assert!(validate_broker_config("log.preallocate", "true").is_ok());
    }

    #[test]
    fn log_config_follows_the_layers() {
        let s =
            BrokerSettings::from_static([("log.segment.bytes".to_string(), "2097152".to_string())])
                .unwrap();
        let overrides =
            BTreeMap::from([("cleanup.policy".to_string(), "compact,delete".to_string())]);
        let c = s.log_config(&overrides);
        assert_eq!(c.segment_bytes, 2_097_152);
        assert!(c.cleanup_compact && c.cleanup_delete);
        assert_eq!(c.max_message_bytes, 1_048_588);
    }
}

//! ApiVersions: which APIs and versions this broker serves.
//!
//! The table below is the single source of truth: the codec refuses any
//! other API or version, and ApiVersions advertises exactly this.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::protocol::VersionRange;

use crate::txn_coordinator::MAX_TRANSACTION_VERSION;

/// The APIs Weir serves, with the versions it serves of each. Versions are
/// those of the vendored codec (Kafka 4.3's schemas) unless capped.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 11),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 5),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 10),
    (ApiKey::OffsetFetch, 1, 10),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Share groups (KIP-932), at Kafka 4.3's versions.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 2),
    (ApiKey::ShareAcknowledge, 1, 2),
    (ApiKey::DescribeShareGroupOffsets, 0, 1),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    // Transactions: the request's version says which transaction version
    // the client speaks (EndTxn v5, Produce v12 and TxnOffsetCommit v5 are
    // KIP-890 part 2); clients pick by the finalized `transaction.version`.
    // InitProducerId v6 (KIP-939 two-phase commit) is not served.
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // ACLs (v0 predates prefixed patterns; Kafka 4 dropped it too).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Answered by the connection (weir-server), before the broker.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // Not served: KIP-714's GetTelemetrySubscriptions and PushTelemetry.
    // Kafka leaves them out of ApiVersions when no client metrics receiver
    // is configured, and clients then push nothing; Weir answers the same.
];

/// Feature flags (KIP-584) as ApiVersions v3+ reports them, which is what
/// `Admin.describeFeatures()` shows and what clients pick protocols by:
/// (name, lowest supported, highest supported, finalized level).
/// - `metadata.version` 25 is Kafka 4.0's (4.0-IV3), whose protocol Weir
///   speaks; Weir keeps no KRaft metadata log, so it gates nothing here.
/// - `kraft.version` 0: a static quorum (Weir has no controller quorum).
/// - `group.version` 1: KIP-848's consumer group protocol is on.
/// - `transaction.version` 2 (KIP-890 part 2, an epoch bump per
///   transaction and partitions added by the writes themselves), which
///   Kafka 4 clients use once it is finalized; finalized at the broker
///   setting `transaction.version` (see [`handle`]), 2 by default.
/// - `share.version` 1: share groups (KIP-932) are on, by default as in
///   Kafka 4.2.
const FEATURES: &[(&str, i16, i16, i16)] = &[
    ("group.version", 0, 1, 1),
    ("kraft.version", 0, 0, 0),
    ("metadata.version", 7, 25, 25),
    ("share.version", 0, 1, 1),
    (
        "transaction.version",
        0,
        MAX_TRANSACTION_VERSION,
        MAX_TRANSACTION_VERSION,
    ),
];

/// The epoch of the finalized features: they never change at run time.
const FEATURES_EPOCH: i64 = 0;

/// The versions of `api` this broker serves, or `None` if it serves none.
pub fn supported_versions(api: ApiKey) -> Option<VersionRange> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| VersionRange { min, max })
}

/// What cluster mode does not serve: WriteTxnMarkers, since the
/// transaction coordinator writes its markers through the shared engine
/// itself. Not advertised there.
pub fn served_in_cluster(api: ApiKey) -> bool {
    !matches!(api, ApiKey::WriteTxnMarkers)
}

fn api_keys(cluster: bool) -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .filter(|(k, _, _)| !cluster || served_in_cluster(*k))
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// KIP-511: client software names and versions must match this pattern.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(inner_ok)
}

/// Answers an ApiVersions request, with `transaction.version` finalized at
/// `transaction_version`; in `cluster` mode without the APIs it does not
/// serve yet.
pub fn handle(
    req: &ApiVersionsRequest,
    version: i16,
    transaction_version: i16,
    cluster: bool,
) -> ApiVersionsResponse {
    let resp = ApiVersionsResponse::default()
        .with_api_keys(api_keys(cluster))
        .with_supported_features(
            FEATURES
                .iter()
                .map(|&(name, min, max, _)| {
                    SupportedFeatureKey::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
        .with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(
            FEATURES
                .iter()
                .map(|&(name, _, _, level)| {
                    let level = if name == "transaction.version" {
                        transaction_version
                    } else {
                        level
                    };
                    FinalizedFeatureKey::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_min_version_level(level)
                        .with_max_version_level(level)
                })
                .collect(),
        );
    if version >= 3
        && !(valid_software_field(&req.client_software_name)
            && valid_software_field(&req.client_software_version))
    {
        return resp.with_error_code(ResponseError::InvalidRequest.code());
    }
    resp
}

/// The v0 answer to an ApiVersions request newer than Weir's (KIP-511).
pub fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_versions_are_within_the_codec() {
        for &(k, min, max) in SUPPORTED {
            let r = k.valid_versions();
            assert!(
                r.min <= min && max <= r.max,
                "{k:?} {min}..{max} outside {r:?}"
            );
        }
    }

    #[test]
    fn software_names_follow_kip_511() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("2.16.1"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("a b"));
    }
}

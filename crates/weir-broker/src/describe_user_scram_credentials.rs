//! DescribeUserScramCredentials (KIP-554): which SCRAM mechanisms and
//! iteration counts each user has. Salts and keys are never returned.
//!
//! With authorization on, it needs DESCRIBE on the cluster
//! (CLUSTER_AUTHORIZATION_FAILED for the whole request otherwise).

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::security::Security;

/// Answers a DescribeUserScramCredentials request. No users (null or
/// empty) means every user with a credential, as in Kafka.
pub fn handle(
    security: &Security,
    ctx: &RequestContext<'_>,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let session = ctx.session;
    if !security.authorize_cluster(session, weir_auth::acl::AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let users = security.scram_store().users();
    let result = |user: &str, infos: &[(weir_auth::scram::ScramAlgorithm, i32)]| {
        DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()))
            .with_credential_infos(
                infos
                    .iter()
                    .map(|(alg, iterations)| {
                        CredentialInfo::default()
                            .with_mechanism(alg.type_code())
                            .with_iterations(*iterations)
                    })
                    .collect(),
            )
    };
    let error = |user: &str, e: ResponseError, msg: String| {
        DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()))
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(msg)))
    };
    let results = match r.users.filter(|u| !u.is_empty()) {
        None => users.iter().map(|(u, infos)| result(u, infos)).collect(),
        Some(requested) => {
            let mut seen = BTreeSet::new();
            let dups: BTreeSet<String> = requested
                .iter()
                .filter(|u| !seen.insert(u.name.to_string()))
                .map(|u| u.name.to_string())
                .collect();
            let mut done = BTreeSet::new();
            requested
                .iter()
                .map(|u| u.name.to_string())
                .filter(|u| done.insert(u.clone()))
                .map(|u| {
                    if dups.contains(&u) {
                        error(
                            &u,
                            ResponseError::DuplicateResource,
                            format!("Cannot describe SCRAM credentials for the same user twice in a single request: {u}"),
                        )
                    } else if let Some(infos) = users.get(&u) {
                        result(&u, infos)
                    } else {
                        error(
                            &u,
                            ResponseError::ResourceNotFound,
                            format!("Attempt to describe a user credential that does not exist: {u}"),
                        )
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

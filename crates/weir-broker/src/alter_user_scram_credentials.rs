//! AlterUserScramCredentials (KIP-554): create, replace and delete SCRAM
//! credentials, with the checks of Kafka's `ScramControlManager`.
//!
//! Clients send the salted password (`Hi(password, salt, i)`); the broker
//! derives StoredKey and ServerKey and keeps only those.
//!
//! With authorization on, it needs ALTER on the cluster; without it every
//! user in the request fails with CLUSTER_AUTHORIZATION_FAILED, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use weir_auth::scram::ScramCredentialStore;
use weir_auth::scram::{ScramAlgorithm, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};

use crate::context::{Reply, RequestContext};
use crate::error::BrokerError;
use crate::security::AuditEvent;
use crate::security::Security;

type Outcome = Result<(), BrokerError>;

fn check_user_and_mechanism(user: &str, mechanism: i8) -> Result<ScramAlgorithm, BrokerError> {
    let alg = ScramAlgorithm::from_type_code(mechanism)
        .ok_or(BrokerError::UnsupportedSaslMechanism { mechanism })?;
    if user.is_empty() {
        return Err(unacceptable("Username must not be empty"));
    }
    Ok(alg)
}

fn unacceptable(reason: &'static str) -> BrokerError {
    BrokerError::UnacceptableCredential { reason }
}

/// Answers an AlterUserScramCredentials request: every change that passes
/// its checks is written to `__weir_security`, and the response waits
/// until they are durable.
pub fn handle(
    security: &Security,
    ctx: &RequestContext<'_>,
    r: AlterUserScramCredentialsRequest,
) -> Reply {
    let session = ctx.session;
    if !security.authorize_cluster(session, weir_auth::acl::AclOperation::Alter) {
        let results = r
            .deletions
            .iter()
            .map(|d| &d.name)
            .chain(r.upsertions.iter().map(|u| &u.name))
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(user.clone())
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            })
            .collect();
        return Reply::Ready(ResponseKind::AlterUserScramCredentials(
            AlterUserScramCredentialsResponse::default().with_results(results),
        ));
    }
    // Kafka: a user named twice anywhere in the request is refused with
    // DUPLICATE_RESOURCE, and none of its changes happen.
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<String> = r
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(r.upsertions.iter().map(|u| u.name.to_string()))
        .filter(|u| !seen.insert(u.clone()))
        .collect();
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    for u in &dups {
        outcomes.insert(
            u.clone(),
            Err(BrokerError::DuplicateResource {
                reason: "A user credential cannot be altered twice in the same request",
            }),
        );
    }
    let mut writes = Vec::new();
    let store = security.scram_store();
    for d in &r.deletions {
        let user = d.name.to_string();
        if dups.contains(&user) {
            continue;
        }
        let outcome = check_user_and_mechanism(&user, d.mechanism).and_then(|alg| {
            if store.scram_credential(&user, alg).is_none() {
                return Err(BrokerError::ResourceNotFound {
                    reason: "Attempt to delete a user credential that does not exist",
                });
            }
            Ok(alg)
        });
        match outcome {
            Ok(alg) => {
                outcomes.insert(user.clone(), Ok(()));
                writes.push((user, alg, None, "delete"));
            }
            Err(e) => {
                outcomes.insert(user, Err(e));
            }
        }
    }
    for u in &r.upsertions {
        let user = u.name.to_string();
        if dups.contains(&user) {
            continue;
        }
        let outcome = check_user_and_mechanism(&user, u.mechanism).and_then(|alg| {
            if u.iterations < MIN_ITERATIONS {
                return Err(unacceptable("Too few iterations"));
            }
            if u.iterations > MAX_ITERATIONS {
                return Err(unacceptable("Too many iterations"));
            }
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err(unacceptable("Salt and salted password must not be empty"));
            }
            Ok(alg)
        });
        match outcome {
            Ok(alg) => {
                let cred = ScramCredential::from_salted_password(
                    alg,
                    &u.salt,
                    &u.salted_password,
                    u.iterations,
                );
                outcomes.insert(user.clone(), Ok(()));
                writes.push((user, alg, Some(cred), "upsert"));
            }
            Err(e) => {
                outcomes.insert(user, Err(e));
            }
        }
    }
    let mut waits = Vec::new();
    for (user, alg, cred, op) in writes {
        let mut event = AuditEvent::new("admin", session, "success");
        event.resource = format!("user:{user}");
        event.operation = "AlterUserScramCredentials".into();
        event.detail = format!("{op} {}", alg.mechanism_name());
        match security.put_scram_credential(&user, alg, cred) {
            Ok(w) => waits.push((user, w)),
            Err(e) => {
                event.outcome = "failure";
                outcomes.insert(user, Err(e));
            }
        }
        security.audit(event);
    }
    let respond = |outcomes: BTreeMap<String, Outcome>| {
        let results = outcomes
            .into_iter()
            .map(|(user, o)| {
                let res = AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user));
                match o {
                    Ok(()) => res,
                    Err(e) => {
                        let (code, message) = e.response();
                        res.with_error_code(code).with_error_message(message)
                    }
                }
            })
            .collect();
        ResponseKind::AlterUserScramCredentials(
            AlterUserScramCredentialsResponse::default().with_results(results),
        )
    };
    if waits.is_empty() {
        return Reply::Ready(respond(outcomes));
    }
    Reply::Later(Box::pin(async move {
        for (user, w) in waits {
            if let Err(e) = w.await {
                outcomes.insert(user, Err(e));
            }
        }
        respond(outcomes)
    }))
}

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
use weir_auth::Session;

use crate::broker::{Broker, Reply};
use crate::security::AuditEvent;

type Outcome = Result<(), (ResponseError, String)>;

fn check_user_and_mechanism(
    user: &str,
    mechanism: i8,
) -> Result<ScramAlgorithm, (ResponseError, String)> {
    let alg = ScramAlgorithm::from_type_code(mechanism).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".to_string(),
        )
    })?;
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".to_string(),
        ));
    }
    Ok(alg)
}

/// Answers an AlterUserScramCredentials request: every change that passes
/// its checks is written to `__weir_security`, and the response waits
/// until they are durable.
pub fn handle(broker: &Broker, r: AlterUserScramCredentialsRequest, session: &Session) -> Reply {
    if !broker.authorize_cluster(session, weir_auth::acl::AclOperation::Alter) {
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
            Err((
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request".to_string(),
            )),
        );
    }
    let mut writes = Vec::new();
    let store = broker.scram_store();
    for d in &r.deletions {
        let user = d.name.to_string();
        if dups.contains(&user) {
            continue;
        }
        let outcome = check_user_and_mechanism(&user, d.mechanism).and_then(|alg| {
            if store.scram_credential(&user, alg).is_none() {
                return Err((
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist".to_string(),
                ));
            }
            Ok(alg)
        });
        outcomes.insert(
            user.clone(),
            outcome.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        if let Ok(alg) = outcome {
            writes.push((user, alg, None, "delete"));
        }
    }
    for u in &r.upsertions {
        let user = u.name.to_string();
        if dups.contains(&user) {
            continue;
        }
        let outcome = check_user_and_mechanism(&user, u.mechanism).and_then(|alg| {
            if u.iterations < MIN_ITERATIONS {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "Too few iterations".to_string(),
                ));
            }
            if u.iterations > MAX_ITERATIONS {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "Too many iterations".to_string(),
                ));
            }
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "Salt and salted password must not be empty".to_string(),
                ));
            }
            Ok(alg)
        });
        outcomes.insert(
            user.clone(),
            outcome.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        if let Ok(alg) = outcome {
            let cred = ScramCredential::from_salted_password(
                alg,
                &u.salt,
                &u.salted_password,
                u.iterations,
            );
            writes.push((user, alg, Some(cred), "upsert"));
        }
    }
    let mut waits = Vec::new();
    for (user, alg, cred, op) in writes {
        let mut event = AuditEvent::new("admin", session, "success");
        event.resource = format!("user:{user}");
        event.operation = "AlterUserScramCredentials".into();
        event.detail = format!("{op} {}", alg.mechanism_name());
        match broker.put_scram_credential(&user, alg, cred) {
            Ok(w) => waits.push((user, w)),
            Err(e) => {
                event.outcome = "failure";
                outcomes.insert(
                    user,
                    Err((ResponseError::UnknownServerError, e.to_string())),
                );
            }
        }
        broker.audit(event);
    }
    let respond = |outcomes: BTreeMap<String, Outcome>| {
        let results = outcomes
            .into_iter()
            .map(|(user, o)| {
                let res = AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user));
                match o {
                    Ok(()) => res,
                    Err((e, msg)) => res
                        .with_error_code(e.code())
                        .with_error_message(Some(StrBytes::from_string(msg))),
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
                outcomes.insert(user, Err((ResponseError::KafkaStorageError, e.to_string())));
            }
        }
        respond(outcomes)
    }))
}

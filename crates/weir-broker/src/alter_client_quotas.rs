//! AlterClientQuotas (KIP-546): set and remove user and client-id quotas,
//! with the checks of Kafka's `ClientQuotaControlManager`.
//!
//! With authorization on, it needs ALTER_CONFIGS on the cluster; without it
//! every entry fails with CLUSTER_AUTHORIZATION_FAILED, as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::context::{Reply, RequestContext};
use crate::security::quotas::{validate_entity, validate_value};
use crate::security::AuditEvent;
use crate::security::Security;
use crate::BrokerError;

/// Answers an AlterClientQuotas request. Each entry is checked and applied
/// on its own; the response waits until the changes are durable.
pub fn handle(security: &Security, ctx: &RequestContext<'_>, r: AlterClientQuotasRequest) -> Reply {
    let session = ctx.session;
    let mut results: Vec<(EntryData, Option<usize>)> = Vec::new();
    let mut waits = Vec::new();
    let allowed = security.authorize_cluster(session, weir_auth::acl::AclOperation::AlterConfigs);
    for entry in r.entries {
        let out = EntryData::default().with_entity(
            entry
                .entity
                .iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect(),
        );
        let components: Vec<(String, Option<String>)> = entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect();
        let checked = validate_entity(&components).and_then(|entity| {
            let mut values = security.quotas().get(&entity);
            let mut seen = std::collections::BTreeSet::new();
            for op in &entry.ops {
                let key = op.key.to_string();
                if !seen.insert(key.clone()) {
                    return Err(BrokerError::invalid_request(format!(
                        "Duplicate quota key {key} not updating quota for entity"
                    )));
                }
                if op.remove {
                    if !crate::security::quotas::QUOTA_KEYS
                        .iter()
                        .any(|(k, _)| *k == key)
                    {
                        return Err(BrokerError::invalid_request(format!(
                            "Invalid configuration key {key}"
                        )));
                    }
                    values.remove(&key);
                } else {
                    validate_value(&key, op.value)?;
                    values.insert(key, op.value);
                }
            }
            Ok((entity, values))
        });
        match checked {
            _ if !allowed => results.push((
                out.with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
                None,
            )),
            Err(e) => {
                let (code, message) = e.response();
                results.push((out.with_error_code(code).with_error_message(message), None));
            }
            Ok(_) if r.validate_only => results.push((out, None)),
            Ok((entity, values)) => {
                let mut event = AuditEvent::new("admin", session, "success");
                event.operation = "AlterClientQuotas".into();
                event.resource = format!("quota:{}", entity.record_id());
                event.detail = serde_json::to_string(&values).unwrap_or_default();
                match security.set_client_quotas(entity, values) {
                    Ok(w) => {
                        waits.push(w);
                        results.push((out, Some(waits.len() - 1)));
                    }
                    Err(e) => {
                        event.outcome = "failure";
                        results.push((
                            out.with_error_code(ResponseError::UnknownServerError.code())
                                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                            None,
                        ));
                    }
                }
                security.audit(event);
            }
        }
    }
    let respond = |entries: Vec<EntryData>| {
        ResponseKind::AlterClientQuotas(AlterClientQuotasResponse::default().with_entries(entries))
    };
    if waits.is_empty() {
        return Reply::Ready(respond(results.into_iter().map(|(e, _)| e).collect()));
    }
    Reply::Later(Box::pin(async move {
        let mut failed = Vec::new();
        for w in waits {
            failed.push(w.await.err().map(|e| (e.code(), e.to_string())));
        }
        respond(
            results
                .into_iter()
                .map(
                    |(e, w)| match w.and_then(|i| failed.get(i).cloned().flatten()) {
                        Some((code, msg)) => e
                            .with_error_code(code.code())
                            .with_error_message(Some(StrBytes::from_string(msg))),
                        None => e,
                    },
                )
                .collect(),
        )
    }))
}

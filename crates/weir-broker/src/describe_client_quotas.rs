//! DescribeClientQuotas (KIP-546): the quotas of the entities matching a
//! filter.
//!
//! With authorization on, it needs DESCRIBE_CONFIGS on the cluster
//! (CLUSTER_AUTHORIZATION_FAILED for the whole request otherwise).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::security::quotas::{QuotaEntity, CLIENT_ID, USER};
use crate::security::Security;

/// Kafka's match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

type Filter = Vec<(String, i8, Option<String>)>;

fn validate(r: &DescribeClientQuotasRequest) -> Result<Filter, BrokerError> {
    let invalid = |reason: String| Err(BrokerError::invalid_request(reason));
    let mut out: Filter = Vec::new();
    for c in &r.components {
        let kind = c.entity_type.to_string();
        if out.iter().any(|(k, _, _)| *k == kind) {
            return invalid(format!("Duplicate {kind} filter component entity type"));
        }
        if kind.is_empty() {
            return invalid("Unexpected empty filter component entity type".into());
        }
        match c.match_type {
            MATCH_EXACT if c._match.is_none() => {
                return invalid(format!(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null for {kind}"
                ));
            }
            MATCH_EXACT => {}
            MATCH_DEFAULT | MATCH_SPECIFIED if c._match.is_some() => {
                return invalid(format!("Request specified MATCH_TYPE_DEFAULT or MATCH_TYPE_SPECIFIED, but also specified a match string for {kind}"));
            }
            MATCH_DEFAULT | MATCH_SPECIFIED => {}
            other => return invalid(format!("Unknown match type {other}")),
        }
        out.push((kind, c.match_type, c._match.as_ref().map(|m| m.to_string())));
    }
    Ok(out)
}

fn matches(entity: &QuotaEntity, filter: &Filter, strict: bool) -> bool {
    let comps = entity.components();
    if strict && comps.len() != filter.len() {
        return false;
    }
    filter.iter().all(|(kind, match_type, name)| {
        let Some((_, value)) = comps.iter().find(|(k, _)| k == kind) else {
            return false;
        };
        match *match_type {
            MATCH_EXACT => value.as_deref() == name.as_deref(),
            MATCH_DEFAULT => value.is_none(),
            _ => value.is_some(),
        }
    })
}

/// Answers a DescribeClientQuotas request.
pub fn handle(
    security: &Security,
    ctx: &RequestContext<'_>,
    r: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let session = ctx.session;
    if !security.authorize_cluster(session, weir_auth::acl::AclOperation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let filter = match validate(&r) {
        Ok(f) => f,
        Err(e) => {
            let (code, message) = e.response();
            return DescribeClientQuotasResponse::default()
                .with_error_code(code)
                .with_error_message(message);
        }
    };
    // Filters on other entity types (`ip`) match nothing here.
    let known = filter.iter().all(|(k, _, _)| k == USER || k == CLIENT_ID);
    let entries = security
        .quotas()
        .all()
        .into_iter()
        .filter(|(e, _)| known && matches(e, &filter, r.strict))
        .map(|(e, values)| {
            EntryData::default()
                .with_entity(
                    e.components()
                        .into_iter()
                        .map(|(k, n)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(k))
                                .with_entity_name(n.map(StrBytes::from_string))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(StrBytes::from_string(k))
                                .with_value(v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

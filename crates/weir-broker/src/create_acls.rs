//! CreateAcls: add ACLs. Needs ALTER on the cluster; answers
//! SECURITY_DISABLED when no authorizer is configured, as Kafka does. The
//! response waits until the ACLs are durable in `__weir_security`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclBinding, AclOperation, PatternType, PermissionType, ResourceType};

use crate::context::{Reply, RequestContext};
use crate::error::BrokerError;
use crate::security::Security;

fn result(e: ResponseError, msg: impl Into<String>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(msg.into())))
}

fn respond(results: Vec<AclCreationResult>) -> Reply {
    Reply::Ready(ResponseKind::CreateAcls(
        CreateAclsResponse::default().with_results(results),
    ))
}

/// Answers a CreateAcls request.
pub fn handle(security: &Security, ctx: &RequestContext<'_>, r: CreateAclsRequest) -> Reply {
    let session = ctx.session;
    let all_fail =
        |e: ResponseError, msg: &str| respond(r.creations.iter().map(|_| result(e, msg)).collect());
    if !security.authorize_cluster(session, AclOperation::Alter) {
        return all_fail(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    if !security.authorizer_enabled() {
        return all_fail(
            ResponseError::SecurityDisabled,
            "No Authorizer is configured.",
        );
    }
    // Parse and validate each creation; only the valid ones are stored.
    let parsed: Vec<Result<AclBinding, BrokerError>> = r
        .creations
        .iter()
        .map(|c| {
            let bad = |field: &str, code: i8| {
                BrokerError::invalid_request(format!("Invalid {field} code {code}"))
            };
            let binding = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type)
                    .ok_or_else(|| bad("resourceType", c.resource_type))?,
                name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type)
                    .ok_or_else(|| bad("patternType", c.resource_pattern_type))?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: AclOperation::from_code(c.operation)
                    .ok_or_else(|| bad("operation", c.operation))?,
                permission: PermissionType::from_code(c.permission_type)
                    .ok_or_else(|| bad("permissionType", c.permission_type))?,
            };
            binding
                .validate()
                .map_err(|e| BrokerError::invalid_request(e.to_string()))?;
            Ok(binding)
        })
        .collect();
    let valid: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let durable = match security.create_acls(session, &valid) {
        Ok(f) => f,
        Err(e) => {
            return all_fail(ResponseError::UnknownServerError, &e.to_string());
        }
    };
    let results: Vec<AclCreationResult> = parsed
        .into_iter()
        .map(|p| match p {
            Ok(_) => AclCreationResult::default(),
            Err(e) => result(e.code(), e.to_string()),
        })
        .collect();
    Reply::Later(Box::pin(async move {
        let results = match durable.await {
            Ok(()) => results,
            Err(e) => results
                .into_iter()
                .map(|r| {
                    if r.error_code == 0 {
                        result(e.code(), e.to_string())
                    } else {
                        r
                    }
                })
                .collect(),
        };
        ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
    }))
}

//! DeleteAcls: remove the ACLs passing each filter. Needs ALTER on the
//! cluster; SECURITY_DISABLED without an authorizer. The response waits
//! until the deletions are durable.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::AclOperation;

use crate::context::{Reply, RequestContext};
use crate::describe_acls::parse_filter;
use crate::security::Security;

fn failed(e: ResponseError, msg: &str) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(msg.into())))
}

fn respond(results: Vec<DeleteAclsFilterResult>) -> Reply {
    Reply::Ready(ResponseKind::DeleteAcls(
        DeleteAclsResponse::default().with_filter_results(results),
    ))
}

/// Answers a DeleteAcls request.
pub fn handle(security: &Security, ctx: &RequestContext<'_>, r: DeleteAclsRequest) -> Reply {
    let session = ctx.session;
    let all_fail =
        |e: ResponseError, msg: &str| respond(r.filters.iter().map(|_| failed(e, msg)).collect());
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
    let parsed: Vec<_> = r
        .filters
        .iter()
        .map(|f| {
            parse_filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<_> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let (mut deleted, durable) = match security.delete_acls(session, &valid) {
        Ok(x) => x,
        Err(e) => return all_fail(ResponseError::UnknownServerError, &e.to_string()),
    };
    deleted.reverse();
    let results: Vec<DeleteAclsFilterResult> = parsed
        .into_iter()
        .map(|p| match p {
            Err(e) => failed(e.code(), &e.to_string()),
            Ok(_) => DeleteAclsFilterResult::default().with_matching_acls(
                deleted
                    .pop()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(a.resource_type.code())
                            .with_resource_name(StrBytes::from_string(a.name))
                            .with_pattern_type(a.pattern_type.code())
                            .with_principal(StrBytes::from_string(a.principal))
                            .with_host(StrBytes::from_string(a.host))
                            .with_operation(a.operation.code())
                            .with_permission_type(a.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    Reply::Later(Box::pin(async move {
        let results = match durable.await {
            Ok(()) => results,
            Err(e) => results
                .into_iter()
                .map(|r| {
                    if r.error_code == 0 {
                        failed(e.code(), &e.to_string())
                    } else {
                        r
                    }
                })
                .collect(),
        };
        ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
    }))
}

//! DescribeAcls: list the ACLs passing a filter. Needs DESCRIBE on the
//! cluster; SECURITY_DISABLED without an authorizer, as Kafka answers.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclBindingFilter, AclOperation, PatternType, PermissionType, ResourceType};

use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::security::Security;

/// Builds a filter from the wire fields; an UNKNOWN (or unheard-of) code
/// is INVALID_REQUEST, as Kafka's `validateFilter` says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn parse_filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclBindingFilter, BrokerError> {
    let unknown = |what: &str| {
        BrokerError::invalid_request(format!("The filter contained an unknown {what}"))
    };
    Ok(AclBindingFilter {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| unknown("resource type"))?,
        name: name.map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| unknown("pattern type"))?,
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation: AclOperation::from_code(operation).ok_or_else(|| unknown("operation"))?,
        permission: PermissionType::from_code(permission)
            .ok_or_else(|| unknown("permission type"))?,
    })
}

/// Answers a DescribeAcls request.
pub fn handle(
    security: &Security,
    ctx: &RequestContext<'_>,
    r: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let session = ctx.session;
    let fail = |e: ResponseError, msg: &str| {
        DescribeAclsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(msg.into())))
    };
    if !security.authorize_cluster(session, AclOperation::Describe) {
        return fail(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    let filter = match parse_filter(
        r.resource_type_filter,
        r.resource_name_filter.as_ref(),
        r.pattern_type_filter,
        r.principal_filter.as_ref(),
        r.host_filter.as_ref(),
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return fail(e.code(), &e.to_string()),
    };
    let Some(acls) = security.describe_acls(&filter) else {
        return fail(
            ResponseError::SecurityDisabled,
            "No Authorizer is configured on the broker",
        );
    };
    // One entry per resource pattern, as Kafka's `aclsResources` groups.
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for a in acls {
        resources
            .entry((
                a.resource_type.code(),
                a.name.clone(),
                a.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(a.principal))
                    .with_host(StrBytes::from_string(a.host))
                    .with_operation(a.operation.code())
                    .with_permission_type(a.permission.code()),
            );
    }
    DescribeAclsResponse::default().with_resources(
        resources
            .into_iter()
            .map(|((rt, name, pt), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt)
                    .with_resource_name(StrBytes::from_string(name))
                    .with_pattern_type(pt)
                    .with_acls(acls)
            })
            .collect(),
    )
}

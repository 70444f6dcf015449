//! ACLs: DescribeAcls, CreateAcls and DeleteAcls, in `weir_auth`'s model.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{
    AclBinding, AclBindingFilter, AclOperation, PatternType, PermissionType, ResourceType,
};

use crate::error::{check, ClientError};
use crate::{Admin, Result};

fn opt(s: &Option<String>) -> Option<StrBytes> {
    s.as_ref().map(|s| StrBytes::from_string(s.clone()))
}

/// A binding from the wire's codes; `None` when a code is unknown.
fn binding(
    resource_type: i8,
    name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Option<AclBinding> {
    Some(AclBinding {
        resource_type: ResourceType::from_code(resource_type)?,
        name: name.to_string(),
        pattern_type: PatternType::from_code(pattern_type)?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: AclOperation::from_code(operation)?,
        permission: PermissionType::from_code(permission)?,
    })
}

impl Admin {
    /// The ACLs matching `filter`.
    pub async fn describe_acls(&mut self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(opt(&filter.name))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(opt(&filter.principal))
            .with_host_filter(opt(&filter.host))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let (resp, _) = self.send(req, 3).await?;
        check(
            resp.error_code,
            "cannot describe ACLs",
            resp.error_message.as_deref(),
        )?;
        let mut out = Vec::new();
        for r in &resp.resources {
            for a in &r.acls {
                out.extend(binding(
                    r.resource_type,
                    &r.resource_name,
                    r.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Creates `acls`; the first refusal is the error.
    pub async fn create_acls(&mut self, acls: &[AclBinding]) -> Result<()> {
        let req = CreateAclsRequest::default().with_creations(
            acls.iter()
                .map(|a| {
                    AclCreation::default()
                        .with_resource_type(a.resource_type.code())
                        .with_resource_name(StrBytes::from_string(a.name.clone()))
                        .with_resource_pattern_type(a.pattern_type.code())
                        .with_principal(StrBytes::from_string(a.principal.clone()))
                        .with_host(StrBytes::from_string(a.host.clone()))
                        .with_operation(a.operation.code())
                        .with_permission_type(a.permission.code())
                })
                .collect(),
        );
        let (resp, _) = self.send(req, 3).await?;
        for r in &resp.results {
            check(
                r.error_code,
                "cannot create ACL",
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Deletes the ACLs matching any of `filters`; returns those deleted.
    pub async fn delete_acls(&mut self, filters: &[AclBindingFilter]) -> Result<Vec<AclBinding>> {
        let req = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(opt(&f.name))
                        .with_pattern_type_filter(f.pattern_type.code())
                        .with_principal_filter(opt(&f.principal))
                        .with_host_filter(opt(&f.host))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code())
                })
                .collect(),
        );
        let (resp, _) = self.send(req, 3).await?;
        let mut out = Vec::new();
        for r in &resp.filter_results {
            check(
                r.error_code,
                "cannot delete ACLs",
                r.error_message.as_deref(),
            )?;
            for a in &r.matching_acls {
                if a.error_code != 0 {
                    return Err(ClientError::Kafka {
                        what: "cannot delete ACL".into(),
                        code: a.error_code,
                        message: a.error_message.as_ref().map(|m| m.to_string()),
                    });
                }
                out.extend(binding(
                    a.resource_type,
                    &a.resource_name,
                    a.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                ));
            }
        }
        Ok(out)
    }
}

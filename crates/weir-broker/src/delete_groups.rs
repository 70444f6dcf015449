//! DeleteGroups: remove empty groups and their offsets (or, for share
//! groups, their share-partition state).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};

use weir_auth::acl::{AclOperation, ResourceType};

use crate::context::Reply;
use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::Shares;

/// Answers a DeleteGroups request; a share group's deletion is answered
/// once durable.
///
/// With authorization on, each group needs DELETE.
pub fn handle(
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: DeleteGroupsRequest,
) -> Reply {
    let session = ctx.session;
    let mut waits = Vec::new();
    let results = r
        .groups_names
        .into_iter()
        .map(|g| {
            let code =
                if !security.authorize(session, AclOperation::Delete, ResourceType::Group, &g) {
                    kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code()
                } else if !groups.owns(&g) && !shares.contains(&g) {
                    kafka_protocol::error::ResponseError::NotCoordinator.code()
                } else if shares.contains(&g) {
                    match shares.delete_group(&g) {
                        Ok(w) => {
                            waits.extend(w);
                            0
                        }
                        Err(e) => e.code(),
                    }
                } else {
                    groups.delete(&g).err().map_or(0, |e| e.code())
                };
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code)
        })
        .collect();
    let resp = DeleteGroupsResponse::default().with_results(results);
    for g in &resp.results {
        let resource = format!("group:{}", g.group_id.as_str());
        security.audit_admin(session, "DeleteGroups", resource, g.error_code);
    }
    if waits.is_empty() {
        return Reply::Ready(ResponseKind::DeleteGroups(resp));
    }
    Reply::Later(Box::pin(async move {
        for w in waits {
            if let Err(e) = w.await {
                tracing::warn!(error = %e, "share group deletion not durable");
            }
        }
        ResponseKind::DeleteGroups(resp)
    }))
}

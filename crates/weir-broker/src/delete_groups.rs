//! DeleteGroups: remove empty groups and their offsets (or, for share
//! groups, their share-partition state).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};

use weir_auth::acl::{AclOperation, ResourceType};

use crate::context::Reply;
use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::{Rewrite, Shares};

/// Answers a DeleteGroups request; a share group's deletion is answered
/// once durable.
///
/// With authorization on, each group needs DELETE.
pub fn handle(
    groups: &Groups,
    shares: &Arc<Shares>,
    security: &Arc<Security>,
    ctx: &RequestContext<'_>,
    r: DeleteGroupsRequest,
) -> Reply {
    let session = ctx.session;
    // Share groups are deleted after the others are answered for.
    let mut share_groups = Vec::new();
    let results: Vec<DeletableGroupResult> = r
        .groups_names
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let code =
                if !security.authorize(session, AclOperation::Delete, ResourceType::Group, &g) {
                    ResponseError::GroupAuthorizationFailed.code()
                } else if !groups.owns(&g) {
                    ResponseError::NotCoordinator.code()
                } else if shares.contains(&g) {
                    share_groups.push(i);
                    0
                } else {
                    match groups.delete(&g) {
                        // In a cluster a share group may be known by its
                        // share-partition state alone (written before
                        // membership was persisted); the deletion reads
                        // it, GROUP_ID_NOT_FOUND if there is none.
                        Err(ResponseError::GroupIdNotFound) if shares.in_cluster() => {
                            share_groups.push(i);
                            0
                        }
                        r => r.err().map_or(0, |e| e.code()),
                    }
                };
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code)
        })
        .collect();
    let (shares, security, session) = (shares.clone(), security.clone(), session.clone());
    let answer = move |results: Vec<DeletableGroupResult>| {
        for g in &results {
            let resource = format!("group:{}", g.group_id.as_str());
            security.audit_admin(&session, "DeleteGroups", resource, g.error_code);
        }
        ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
    };
    if share_groups.is_empty() {
        return Reply::Ready(answer(results));
    }
    let mut results = results;
    Reply::Later(Box::pin(async move {
        for i in share_groups {
            let g = results[i].group_id.to_string();
            results[i].error_code = match shares.rewrite(&g, Rewrite::DeleteGroup).await {
                Ok(waits) => {
                    let mut code = 0;
                    for w in waits {
                        if let Err(e) = w.await {
                            tracing::warn!(group = %g, error = %e, "share group deletion not durable");
                            code = ResponseError::KafkaStorageError.code();
                        }
                    }
                    code
                }
                Err(e) => e.code(),
            };
        }
        answer(results)
    }))
}

//! DeleteGroups: remove empty groups and their offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use weir_auth::acl::{AclOperation, ResourceType};
use weir_auth::Session;

use crate::broker::Broker;

/// Answers a DeleteGroups request.
///
/// With authorization on, each group needs DELETE.
pub fn handle(broker: &Broker, r: DeleteGroupsRequest, session: &Session) -> DeleteGroupsResponse {
    let results = r
        .groups_names
        .into_iter()
        .map(|g| {
            let code = if broker.authorize(session, AclOperation::Delete, ResourceType::Group, &g) {
                broker.groups.delete(&g).err().map_or(0, |e| e.code())
            } else {
                kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code()
            };
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code)
        })
        .collect();
    let resp = DeleteGroupsResponse::default().with_results(results);
    for g in &resp.results {
        let resource = format!("group:{}", g.group_id.as_str());
        broker.audit_admin(session, "DeleteGroups", resource, g.error_code);
    }
    resp
}

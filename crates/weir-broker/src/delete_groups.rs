//! DeleteGroups: remove empty groups and their offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use weir_auth::Session;

use crate::broker::Broker;

/// Answers a DeleteGroups request.
pub fn handle(broker: &Broker, r: DeleteGroupsRequest, session: &Session) -> DeleteGroupsResponse {
    let results = r
        .groups_names
        .into_iter()
        .map(|g| {
            let code = broker
                .groups
                .delete(broker, &g)
                .err()
                .map_or(0, |e| e.code());
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

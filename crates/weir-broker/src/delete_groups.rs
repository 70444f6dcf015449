//! DeleteGroups: remove empty groups and their offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::Broker;

/// Answers a DeleteGroups request.
pub fn handle(broker: &Broker, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
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
    DeleteGroupsResponse::default().with_results(results)
}

//! ListGroups, with the state (v4+) and type (v5+) filters.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// Answers a ListGroups request.
pub fn handle(broker: &Broker, r: ListGroupsRequest) -> ListGroupsResponse {
    let state_ok = |s: &str| {
        r.states_filter.is_empty() || r.states_filter.iter().any(|f| f.eq_ignore_ascii_case(s))
    };
    let type_ok = |t: &str| {
        r.types_filter.is_empty() || r.types_filter.iter().any(|f| f.eq_ignore_ascii_case(t))
    };
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, state, _, kind)| type_ok(kind) && state_ok(state))
        .map(|(id, state, protocol_type, kind)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_string(state))
                .with_group_type(StrBytes::from_static_str(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

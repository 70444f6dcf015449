//! ListGroups, with the state (v4+) and type (v5+) filters.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// Answers a ListGroups request. Every group here is a classic group.
pub fn handle(broker: &Broker, r: ListGroupsRequest) -> ListGroupsResponse {
    let state_ok = |s: &str| {
        r.states_filter.is_empty() || r.states_filter.iter().any(|f| f.eq_ignore_ascii_case(s))
    };
    let type_ok = r.types_filter.is_empty()
        || r.types_filter
            .iter()
            .any(|f| f.eq_ignore_ascii_case("classic"));
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, state, _)| type_ok && state_ok(state.name()))
        .map(|(id, state, protocol_type)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_static_str(state.name()))
                .with_group_type(StrBytes::from_static_str("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

//! ListGroups, with the state (v4+) and type (v5+) filters.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::Shares;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a ListGroups request: the groups this broker coordinates (in
/// a cluster, those of the `__consumer_offsets` partitions whose lease it
/// holds), as each Kafka broker lists its own.
///
/// With authorization on, DESCRIBE on the cluster lists every group;
/// otherwise only the groups the client may DESCRIBE are listed.
pub fn handle(
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: ListGroupsRequest,
) -> ListGroupsResponse {
    let session = ctx.session;
    let all = security.is_authorized(
        session,
        AclOperation::Describe,
        ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    );
    let visible = |id: &str| {
        all || security.is_authorized(session, AclOperation::Describe, ResourceType::Group, id)
    };
    let state_ok = |s: &str| {
        r.states_filter.is_empty() || r.states_filter.iter().any(|f| f.eq_ignore_ascii_case(s))
    };
    let type_ok = |t: &str| {
        r.types_filter.is_empty() || r.types_filter.iter().any(|f| f.eq_ignore_ascii_case(t))
    };
    let shares = shares
        .list()
        .into_iter()
        .map(|(id, state)| (id, state.to_string(), "share".to_string(), "share"));
    let groups = groups
        .list()
        .into_iter()
        .chain(shares)
        .filter(|(id, state, _, kind)| {
            type_ok(kind) && state_ok(state) && visible(id) && groups.owns(id)
        })
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

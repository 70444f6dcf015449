//! ConsumerGroupHeartbeat: the KIP-848 consumer protocol's one request.

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use crate::consumer_group::{Assignment, Heartbeat};
use crate::context::RequestContext;
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::Shares;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a ConsumerGroupHeartbeat request.
pub fn handle(
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        return ConsumerGroupHeartbeatResponse::default().with_error_code(
            kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code(),
        );
    }
    // In a cluster, only the broker holding the group's coordinator
    // lease serves it; the client finds the new one.
    if !groups.owns(&r.group_id) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::NotCoordinator.code());
    }
    if shares.contains(&r.group_id) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::GroupIdNotFound.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "Group {} is not a consumer group.",
                r.group_id.as_str()
            ))));
    }
    let owned = r.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        a
    });
    let hb = Heartbeat {
        group_id: r.group_id.to_string(),
        member_id: r.member_id.to_string(),
        member_epoch: r.member_epoch,
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed: r
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|t| t.to_string()).collect()),
        // An empty regex clears it (librdkafka always sends one).
        regex: r
            .subscribed_topic_regex
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string()),
        assignor: r.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: ctx.client_id.to_string(),
        client_host: format!("/{}", session.host()),
        instance_id: r.instance_id.map(|s| s.to_string()),
        rack_id: r.rack_id.map(|s| s.to_string()),
    };
    tracing::debug!(?hb, "consumer group heartbeat");
    let a = groups.consumer_heartbeat(hb);
    if a.error != 0 {
        tracing::debug!(error = a.error, message = ?a.message, "consumer group heartbeat refused");
    }
    let assignment = a.assignment.map(|asg| {
        WireAssignment::default().with_topic_partitions(
            asg.into_iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(a.error)
        .with_error_message(a.message.map(StrBytes::from_string))
        .with_member_id(Some(StrBytes::from_string(a.member_id)))
        .with_member_epoch(a.member_epoch)
        .with_heartbeat_interval_ms(a.interval_ms)
        .with_assignment(assignment)
}

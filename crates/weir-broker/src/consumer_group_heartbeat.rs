//! ConsumerGroupHeartbeat: the KIP-848 consumer protocol's one request.

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ResponseKind;

use crate::consumer_group::{Assignment, Heartbeat};
use crate::context::{Reply, RequestContext};
use crate::groups::Groups;
use crate::security::Security;
use crate::shares::Shares;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a ConsumerGroupHeartbeat request, once the group state it
/// changed is durable.
pub fn handle(
    groups: &Arc<Groups>,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: ConsumerGroupHeartbeatRequest,
) -> Reply {
    let group_id = r.group_id.to_string();
    let (resp, wait) = answer(groups, shares, security, ctx, r);
    let Some(wait) = wait else {
        return Reply::Ready(ResponseKind::ConsumerGroupHeartbeat(resp));
    };
    let groups = groups.clone();
    Reply::Later(Box::pin(async move {
        if let Err(e) = wait.await {
            tracing::warn!(error = %e, group = group_id, "consumer group state not written");
            groups.consumer_write_failed(&group_id);
            // The member retries with the epoch it has; the coordinator
            // remembers what it last answered (or the new one reloads).
            let code = if groups.owns(&group_id) {
                ResponseError::CoordinatorNotAvailable
            } else {
                ResponseError::NotCoordinator
            };
            return ResponseKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default().with_error_code(code.code()),
            );
        }
        ResponseKind::ConsumerGroupHeartbeat(resp)
    }))
}

fn answer(
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: ConsumerGroupHeartbeatRequest,
) -> (
    ConsumerGroupHeartbeatResponse,
    Option<crate::internal_log::Durable>,
) {
    let session = ctx.session;
    if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        let resp = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
        return (resp, None);
    }
    // In a cluster, only the broker holding the group's coordinator
    // lease serves it; the client finds the new one.
    if !groups.owns(&r.group_id) {
        let resp = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code());
        return (resp, None);
    }
    if shares.contains(&r.group_id) {
        let resp = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "Group {} is not a consumer group.",
                r.group_id.as_str()
            ))));
        return (resp, None);
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
    let (a, wait) = groups.consumer_heartbeat(hb);
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
    let resp = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(a.error)
        .with_error_message(a.message.map(StrBytes::from_string))
        .with_member_id(Some(StrBytes::from_string(a.member_id)))
        .with_member_epoch(a.member_epoch)
        .with_heartbeat_interval_ms(a.interval_ms)
        .with_assignment(assignment);
    (resp, wait)
}

//! ShareGroupHeartbeat: joining, staying in and leaving a share group, and
//! the member's assignment (KIP-932).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ResponseKind, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclOperation, ResourceType};

use crate::context::{Reply, RequestContext};
use crate::groups::Groups;
use crate::security::Security;
use crate::share_group::{Heartbeat, HeartbeatAnswer};
use crate::shares::Shares;

fn refuse(e: ResponseError, msg: String) -> Reply {
    Reply::Ready(ResponseKind::ShareGroupHeartbeat(
        ShareGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(msg))),
    ))
}

fn response(a: HeartbeatAnswer) -> ShareGroupHeartbeatResponse {
    let assignment = a.assignment.map(|asg| {
        Assignment::default().with_topic_partitions(
            asg.into_iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ShareGroupHeartbeatResponse::default()
        .with_error_code(a.error)
        .with_error_message(a.message.map(StrBytes::from_string))
        .with_member_id(Some(StrBytes::from_string(a.member_id)))
        .with_member_epoch(a.member_epoch)
        .with_heartbeat_interval_ms(a.interval_ms)
        .with_assignment(assignment)
}

/// Answers a ShareGroupHeartbeat. With authorization on, it needs READ on
/// the group and DESCRIBE on every subscribed topic, as in Kafka. When the
/// assignment brings the group new partitions, the answer waits until
/// their share-partitions are durable.
pub fn handle(
    groups: &Groups,
    shares: &Shares,
    security: &Security,
    ctx: &RequestContext<'_>,
    r: ShareGroupHeartbeatRequest,
) -> Reply {
    let session = ctx.session;
    let group = r.group_id.to_string();
    if !security.authorize(session, AclOperation::Read, ResourceType::Group, &group) {
        return refuse(ResponseError::GroupAuthorizationFailed, String::new());
    }
    let subscribed: Option<Vec<String>> = r
        .subscribed_topic_names
        .map(|v| v.into_iter().map(|t| t.to_string()).collect());
    if let Some(topics) = &subscribed {
        let denied: Vec<&String> = topics
            .iter()
            .filter(|t| {
                !security.authorize(session, AclOperation::Describe, ResourceType::Topic, t)
            })
            .collect();
        if !denied.is_empty() {
            return refuse(
                ResponseError::TopicAuthorizationFailed,
                format!("Topic authorization failed for {denied:?}"),
            );
        }
    }
    if !groups.owns(&group) {
        // In a cluster, the holder of the group's `__consumer_offsets`
        // lease coordinates it, as for consumer groups.
        return refuse(
            ResponseError::NotCoordinator,
            format!("this broker does not coordinate {group}"),
        );
    }
    if groups.exists(&group) {
        return refuse(
            ResponseError::GroupIdNotFound,
            format!("Group {group} is not a share group."),
        );
    }
    let hb = Heartbeat {
        group_id: group,
        member_id: r.member_id.to_string(),
        member_epoch: r.member_epoch,
        rack_id: r.rack_id.map(|s| s.to_string()),
        subscribed,
        client_id: ctx.client_id.to_string(),
        client_host: format!("/{}", session.host()),
    };
    let (answer, waits) = shares.heartbeat(&hb);
    if answer.error != 0 {
        tracing::debug!(error = answer.error, message = ?answer.message, "share group heartbeat refused");
    }
    let resp = response(answer);
    if waits.is_empty() {
        return Reply::Ready(ResponseKind::ShareGroupHeartbeat(resp));
    }
    Reply::Later(Box::pin(async move {
        for w in waits {
            if let Err(e) = w.await {
                tracing::warn!(error = %e, "share-partition state not durable");
                return ResponseKind::ShareGroupHeartbeat(
                    ShareGroupHeartbeatResponse::default()
                        .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
                );
            }
        }
        ResponseKind::ShareGroupHeartbeat(resp)
    }))
}

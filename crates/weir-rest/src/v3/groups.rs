//! Consumer groups, their consumers and assignments, and lag.

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::Json;
use serde_json::{json, Value};
use weir_client::{GroupDescription, GroupProtocol, MemberDescription};

use super::{with, Ctx};
use crate::error::{RestError, Result};

/// `PreparingRebalance` → `PREPARING_REBALANCE`, as v3 spells states.
fn state_name(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    if out.is_empty() {
        "UNKNOWN".into()
    } else {
        out
    }
}

fn group_data(ctx: &Ctx, g: &GroupDescription) -> Value {
    let id = g.group_id.as_str();
    with(
        ctx.resource(
            "KafkaConsumerGroup",
            &["consumer-groups", id],
            &[("consumer-group", id)],
        ),
        json!({
            "consumer_group_id": id,
            "is_simple": g.protocol_type.is_empty(),
            "partition_assignor": g.assignor,
            "state": state_name(&g.state),
            "type": match g.protocol { GroupProtocol::Classic => "CLASSIC", GroupProtocol::Consumer => "CONSUMER" },
            "is_mixed_consumer_group": false,
            "coordinator": ctx.related(&["brokers", &g.coordinator.to_string()]),
            "consumers": ctx.related(&["consumer-groups", id, "consumers"]),
            "lag_summary": ctx.related(&["consumer-groups", id, "lag-summary"]),
        }),
    )
}

/// The group, or 404 when the cluster does not know it.
async fn find_group(ctx: &Ctx, group: &str) -> Result<GroupDescription> {
    let g = group.to_string();
    let d = ctx
        .clients
        .admin(async |a| a.describe_group(&g).await)
        .await?;
    if d.state == "Dead" && d.members.is_empty() {
        return Err(RestError::not_found(
            404,
            format!("Consumer group {group} cannot be found."),
        ));
    }
    Ok(d)
}

/// `GET .../consumer-groups`: groups of consumers (protocol type
/// `consumer`, or none for groups that only commit offsets).
pub(super) async fn list_groups(ctx: Ctx) -> Result<Json<Value>> {
    let listed = ctx.clients.admin(async |a| a.list_groups().await).await?;
    let mut data = Vec::new();
    for g in listed
        .iter()
        .filter(|g| g.protocol_type == "consumer" || g.protocol_type.is_empty())
    {
        let id = g.group_id.clone();
        let d = ctx
            .clients
            .admin(async |a| a.describe_group(&id).await)
            .await?;
        data.push(group_data(&ctx, &d));
    }
    Ok(ctx.list("KafkaConsumerGroupList", &["consumer-groups"], data))
}

/// `GET .../consumer-groups/{group}`.
pub(super) async fn get_group(
    ctx: Ctx,
    Path((_, group)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let d = find_group(&ctx, &group).await?;
    Ok(Json(group_data(&ctx, &d)))
}

fn consumer_data(ctx: &Ctx, group: &str, m: &MemberDescription) -> Value {
    let id = m.member_id.as_str();
    with(
        ctx.resource(
            "KafkaConsumer",
            &["consumer-groups", group, "consumers", id],
            &[("consumer-group", group), ("consumer", id)],
        ),
        json!({
            "consumer_group_id": group,
            "consumer_id": id,
            "instance_id": m.instance_id,
            "client_id": m.client_id,
            "assignments": ctx.related(&["consumer-groups", group, "consumers", id, "assignments"]),
        }),
    )
}

/// `GET .../consumer-groups/{group}/consumers`.
pub(super) async fn list_consumers(
    ctx: Ctx,
    Path((_, group)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let d = find_group(&ctx, &group).await?;
    let data = d
        .members
        .iter()
        .map(|m| consumer_data(&ctx, &group, m))
        .collect();
    Ok(ctx.list(
        "KafkaConsumerList",
        &["consumer-groups", &group, "consumers"],
        data,
    ))
}

async fn find_consumer(ctx: &Ctx, group: &str, consumer: &str) -> Result<MemberDescription> {
    find_group(ctx, group)
        .await?
        .members
        .into_iter()
        .find(|m| m.member_id == consumer)
        .ok_or_else(|| {
            RestError::not_found(
                404,
                format!("Consumer {consumer} cannot be found in group {group}."),
            )
        })
}

/// `GET .../consumer-groups/{group}/consumers/{consumer}`.
pub(super) async fn get_consumer(
    ctx: Ctx,
    Path((_, group, consumer)): Path<(String, String, String)>,
) -> Result<Json<Value>> {
    let m = find_consumer(&ctx, &group, &consumer).await?;
    Ok(Json(consumer_data(&ctx, &group, &m)))
}

fn assignment_data(ctx: &Ctx, group: &str, consumer: &str, topic: &str, partition: i32) -> Value {
    let p = partition.to_string();
    with(
        ctx.resource(
            "KafkaConsumerAssignment",
            &[
                "consumer-groups",
                group,
                "consumers",
                consumer,
                "assignments",
                topic,
                "partitions",
                &p,
            ],
            &[
                ("consumer-group", group),
                ("consumer", consumer),
                ("assignment", topic),
                ("partition", &p),
            ],
        ),
        json!({
            "consumer_group_id": group,
            "consumer_id": consumer,
            "topic_name": topic,
            "partition_id": partition,
            "partition": ctx.related(&["topics", topic, "partitions", &p]),
            "lag": ctx.related(&["consumer-groups", group, "lags", topic, "partitions", &p]),
        }),
    )
}

/// `GET .../consumers/{consumer}/assignments`.
pub(super) async fn list_assignments(
    ctx: Ctx,
    Path((_, group, consumer)): Path<(String, String, String)>,
) -> Result<Json<Value>> {
    let m = find_consumer(&ctx, &group, &consumer).await?;
    let data = m
        .assignment
        .iter()
        .map(|(t, p)| assignment_data(&ctx, &group, &consumer, t, *p))
        .collect();
    Ok(ctx.list(
        "KafkaConsumerAssignmentList",
        &[
            "consumer-groups",
            &group,
            "consumers",
            &consumer,
            "assignments",
        ],
        data,
    ))
}

/// `GET .../consumers/{consumer}/assignments/{topic_name}/partitions/{partition_id}`.
pub(super) async fn get_assignment(
    ctx: Ctx,
    Path((_, group, consumer, topic, partition)): Path<(String, String, String, String, i32)>,
) -> Result<Json<Value>> {
    let m = find_consumer(&ctx, &group, &consumer).await?;
    if !m
        .assignment
        .iter()
        .any(|(t, p)| *t == topic && *p == partition)
    {
        return Err(RestError::not_found(
            404,
            format!("{topic}-{partition} is not assigned to {consumer}."),
        ));
    }
    Ok(Json(assignment_data(
        &ctx, &group, &consumer, &topic, partition,
    )))
}

/// One partition's lag and who consumes it.
struct Lag<'a> {
    topic: String,
    partition: i32,
    current: i64,
    end: i64,
    member: Option<&'a MemberDescription>,
}

/// The lag of every partition the group has committed offsets for.
async fn lags<'a>(ctx: &Ctx, group: &str, d: &'a GroupDescription) -> Result<Vec<Lag<'a>>> {
    let g = group.to_string();
    let (committed, ends) = ctx
        .clients
        .admin(async |a| {
            let committed = a.committed_offsets(&g).await?;
            let mut topics: Vec<String> = committed.keys().map(|k| k.0.clone()).collect();
            topics.dedup();
            let ends = a.end_offsets(&topics).await?;
            Ok((committed, ends))
        })
        .await?;
    let owner: BTreeMap<(&str, i32), &MemberDescription> = d
        .members
        .iter()
        .flat_map(|m| m.assignment.iter().map(move |(t, p)| ((t.as_str(), *p), m)))
        .collect();
    Ok(committed
        .into_iter()
        .filter_map(|((topic, partition), current)| {
            let end = *ends.get(&(topic.clone(), partition))?;
            let member = owner.get(&(topic.as_str(), partition)).copied();
            Some(Lag {
                topic,
                partition,
                current,
                end,
                member,
            })
        })
        .collect())
}

fn lag_data(ctx: &Ctx, group: &str, l: &Lag<'_>) -> Value {
    let p = l.partition.to_string();
    with(
        ctx.resource(
            "KafkaConsumerLag",
            &["consumer-groups", group, "lags", &l.topic, "partitions", &p],
            &[
                ("consumer-group", group),
                ("lag", &l.topic),
                ("partition", &p),
            ],
        ),
        json!({
            "consumer_group_id": group,
            "topic_name": l.topic,
            "partition_id": l.partition,
            "current_offset": l.current,
            "log_end_offset": l.end,
            "lag": (l.end - l.current).max(0),
            "consumer_id": l.member.map_or("", |m| m.member_id.as_str()),
            "instance_id": l.member.and_then(|m| m.instance_id.clone()),
            "client_id": l.member.map_or("", |m| m.client_id.as_str()),
        }),
    )
}

/// `GET .../consumer-groups/{group}/lags`.
pub(super) async fn list_lags(
    ctx: Ctx,
    Path((_, group)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let d = find_group(&ctx, &group).await?;
    let data = lags(&ctx, &group, &d)
        .await?
        .iter()
        .map(|l| lag_data(&ctx, &group, l))
        .collect();
    Ok(ctx.list(
        "KafkaConsumerLagList",
        &["consumer-groups", &group, "lags"],
        data,
    ))
}

/// `GET .../consumer-groups/{group}/lags/{topic_name}/partitions/{partition_id}`.
pub(super) async fn get_lag(
    ctx: Ctx,
    Path((_, group, topic, partition)): Path<(String, String, String, i32)>,
) -> Result<Json<Value>> {
    let d = find_group(&ctx, &group).await?;
    let all = lags(&ctx, &group, &d).await?;
    let l = all
        .iter()
        .find(|l| l.topic == topic && l.partition == partition)
        .ok_or_else(|| {
            RestError::not_found(
                404,
                format!("Group {group} has no offset for {topic}-{partition}."),
            )
        })?;
    Ok(Json(lag_data(&ctx, &group, l)))
}

/// `GET .../consumer-groups/{group}/lag-summary`: the largest and the
/// total lag.
pub(super) async fn lag_summary(
    ctx: Ctx,
    Path((_, group)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let d = find_group(&ctx, &group).await?;
    let all = lags(&ctx, &group, &d).await?;
    let lag = |l: &Lag<'_>| (l.end - l.current).max(0);
    let total: i64 = all.iter().map(lag).sum();
    let max = all.iter().max_by_key(|l| lag(l));
    let consumer = max
        .and_then(|l| l.member)
        .map_or("", |m| m.member_id.as_str());
    let p = max.map(|l| l.partition.to_string()).unwrap_or_default();
    let topic = max.map_or("", |l| l.topic.as_str());
    Ok(Json(with(
        ctx.resource(
            "KafkaConsumerGroupLagSummary",
            &["consumer-groups", &group, "lag-summary"],
            &[("consumer-groups", &group), ("lag-summary", "")],
        ),
        json!({
            "consumer_group_id": group,
            "max_lag_consumer_id": consumer,
            "max_lag_instance_id": max.and_then(|l| l.member).and_then(|m| m.instance_id.clone()),
            "max_lag_client_id": max.and_then(|l| l.member).map_or("", |m| m.client_id.as_str()),
            "max_lag_topic_name": topic,
            "max_lag_partition_id": max.map_or(0, |l| l.partition),
            "max_lag": max.map_or(0, lag),
            "total_lag": total,
            "max_lag_consumer": ctx.related(&["consumer-groups", &group, "consumers", consumer]),
            "max_lag_partition": ctx.related(&["topics", topic, "partitions", &p]),
        }),
    )))
}

#[cfg(test)]
mod tests {
    use super::state_name;

    #[test]
    fn states_are_spelled_as_v3_does() {
        assert_eq!(state_name("PreparingRebalance"), "PREPARING_REBALANCE");
        assert_eq!(state_name("Stable"), "STABLE");
        assert_eq!(state_name("Assigning"), "ASSIGNING");
        assert_eq!(state_name(""), "UNKNOWN");
    }
}

//! `weir group`: list, describe (members, assignments, lag), delete and
//! reset-offsets, like `kafka-consumer-groups.sh`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::json;

use super::output::{self, check, OutputFormat};
use super::{now_ms, parse_duration, parse_time, Common};
use weir_client::{Admin, EARLIEST, LATEST};

/// `weir group`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List consumer groups.
    ///
    /// Examples:
    ///   weir group list
    ///   weir group list --output json
    #[command(verbatim_doc_comment)]
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
    /// Show a group's state, members, their assignments and the lag of
    /// every partition it has offsets for.
    ///
    /// Examples:
    ///   weir group describe billing
    ///   weir group describe billing --output json | jq '[.partitions[].lag] | add'
    #[command(verbatim_doc_comment)]
    Describe {
        /// The group id.
        group: String,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
    /// Delete groups (they must have no active members) and their offsets.
    ///
    /// Examples:
    ///   weir group delete billing
    #[command(verbatim_doc_comment)]
    Delete {
        /// The group ids.
        #[arg(required = true)]
        groups: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Move a group's committed offsets. The group must have no active
    /// members, as with kafka-consumer-groups.sh.
    ///
    /// Examples:
    ///   weir group reset-offsets billing --topic orders --to-earliest
    ///   weir group reset-offsets billing --topic orders:0,1 --to-offset 100
    ///   weir group reset-offsets billing --all-topics --to-datetime 2024-05-01T00:00:00Z --dry-run
    ///   weir group reset-offsets billing --topic orders --by-duration 1h
    ///   weir group reset-offsets billing --topic orders --shift-by -10
    #[command(verbatim_doc_comment)]
    #[command(group(ArgGroup::new("to").required(true).args([
        "to_earliest", "to_latest", "to_offset", "to_datetime", "by_duration", "shift_by"
    ])))]
    #[command(group(ArgGroup::new("which").required(true).args(["topic", "all_topics"])))]
    ResetOffsets {
        /// The group id.
        group: String,
        /// A topic, or `TOPIC:P,P,..` for some partitions; repeatable.
        #[arg(long, value_name = "TOPIC[:PARTITIONS]")]
        topic: Vec<String>,
        /// Every topic the group has committed offsets for.
        #[arg(long)]
        all_topics: bool,
        /// To the log start offset.
        #[arg(long)]
        to_earliest: bool,
        /// To the end of the log.
        #[arg(long)]
        to_latest: bool,
        /// To this offset (kept within the log's start and end).
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// To the first offset at or after this time (Unix ms or RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        to_datetime: Option<i64>,
        /// To the first offset at or after this long ago (`30m`, `2h`, `1d`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        by_duration: Option<std::time::Duration>,
        /// Move the committed offset by N (negative: back).
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Show the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
}

fn gid(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

/// Runs `weir group ...`.
pub async fn run(args: GroupArgs) -> Result<()> {
    match args.command {
        GroupCommand::List {
            output: fmt,
            common,
        } => list(&mut common.admin().await?, fmt).await,
        GroupCommand::Describe {
            group,
            output: fmt,
            common,
        } => describe(&mut common.admin().await?, &group, fmt).await,
        GroupCommand::Delete { groups, common } => {
            let mut admin = common.admin().await?;
            let mut failed = None;
            for g in &groups {
                let node = admin.coordinator(g).await?;
                let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(g)]);
                let (resp, _) = admin.send_to(node, req, 2).await?;
                for r in &resp.results {
                    let what = format!("cannot delete group `{g}`");
                    match check(r.error_code, &what, None) {
                        Ok(()) => output::out(&format!("deleted group {g}\n")),
                        Err(e) => failed = Some(e),
                    }
                }
            }
            failed.map_or(Ok(()), Err)
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            all_topics,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            by_duration,
            shift_by,
            dry_run,
            output: fmt,
            common,
        } => {
            let target = if to_earliest {
                Target::Earliest
            } else if to_latest {
                Target::Latest
            } else if let Some(o) = to_offset {
                Target::Offset(o)
            } else if let Some(t) = to_datetime {
                Target::Time(t)
            } else if let Some(d) = by_duration {
                Target::Time(now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            } else if let Some(n) = shift_by {
                Target::Shift(n)
            } else {
                bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --by-duration or --shift-by");
            };
            let mut admin = common.admin().await?;
            reset(&mut admin, &group, &topic, all_topics, target, dry_run, fmt).await
        }
    }
}

async fn list(admin: &mut Admin, fmt: OutputFormat) -> Result<()> {
    // Each broker lists the groups it coordinates.
    admin.metadata(Some(&[])).await?;
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    for node in admin.nodes() {
        let (resp, _) = admin
            .send_to(node.id, ListGroupsRequest::default(), 4)
            .await?;
        check(resp.error_code, "cannot list groups", None)?;
        for g in resp.groups {
            groups.insert(
                g.group_id.to_string(),
                (g.group_state.to_string(), g.protocol_type.to_string()),
            );
        }
    }
    match fmt {
        OutputFormat::Json => output::json(&json!(groups
            .iter()
            .map(|(g, (s, p))| json!({"group": g, "state": s, "protocol_type": p}))
            .collect::<Vec<_>>())),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|(g, (s, p))| vec![g.clone(), s.clone(), p.clone()])
                .collect();
            output::out(&output::table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows));
        }
    }
    Ok(())
}

/// A group's state and members as DescribeGroups tells.
struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

/// Member id, client id, host, assigned (topic, partition)s.
type Member = (String, String, String, Vec<(String, i32)>);

/// Describes a group: groups of KIP-848's protocol through
/// ConsumerGroupDescribe where the broker has it, classic groups through
/// DescribeGroups.
async fn describe_group(admin: &mut Admin, node: i32, group: &str) -> Result<Described> {
    // A classic group is GROUP_ID_NOT_FOUND to ConsumerGroupDescribe.
    if admin
        .node_supports::<ConsumerGroupDescribeRequest>(node)
        .await
    {
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid(group)]);
        if let Ok((resp, _)) = admin.send_to(node, req, 0).await {
            if let Some(g) = resp.groups.into_iter().next() {
                if g.error_code == 0 && !g.group_state.eq_ignore_ascii_case("dead") {
                    return Ok(Described {
                        state: capitalize(&g.group_state),
                        protocol_type: "consumer".into(),
                        protocol: g.assignor_name.to_string(),
                        members: g
                            .members
                            .iter()
                            .map(|m| {
                                let assigned = m
                                    .assignment
                                    .topic_partitions
                                    .iter()
                                    .flat_map(|t| {
                                        t.partitions.iter().map(|p| (t.topic_name.to_string(), *p))
                                    })
                                    .collect();
                                (
                                    m.member_id.to_string(),
                                    m.client_id.to_string(),
                                    m.client_host.to_string(),
                                    assigned,
                                )
                            })
                            .collect(),
                    });
                }
            }
        }
    }
    describe_classic(admin, node, group).await
}

/// `stable` → `Stable`, the classic protocol's spelling of states.
fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

async fn describe_classic(admin: &mut Admin, node: i32, group: &str) -> Result<Described> {
    let req = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
    let (resp, _) = admin.send_to(node, req, 5).await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no answer for group `{group}`"))?;
    check(
        g.error_code,
        &format!("cannot describe group `{group}`"),
        g.error_message.as_deref(),
    )?;
    let consumer = g.protocol_type.as_str() == "consumer";
    let members = g
        .members
        .iter()
        .map(|m| {
            let assigned = if consumer {
                decode_assignment(&m.member_assignment)
            } else {
                Vec::new()
            };
            (
                m.member_id.to_string(),
                m.client_id.to_string(),
                m.client_host.to_string(),
                assigned,
            )
        })
        .collect();
    Ok(Described {
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members,
    })
}

/// The partitions in a consumer protocol assignment (version-prefixed).
fn decode_assignment(bytes: &Bytes) -> Vec<(String, i32)> {
    let mut b = bytes.clone();
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = bytes::Buf::get_i16(&mut b);
    ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
                .collect()
        })
        .unwrap_or_default()
}

/// Committed offsets of `group`, by topic and partition.
async fn committed(
    admin: &mut Admin,
    node: i32,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(None);
    let (resp, _) = admin.send_to(node, req, 7).await?;
    check(
        resp.error_code,
        &format!("cannot fetch offsets of group `{group}`"),
        None,
    )?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// High watermarks of the partitions of `topics`.
async fn ends(admin: &mut Admin, topics: &[String]) -> Result<HashMap<(String, i32), i64>> {
    let mut out = HashMap::new();
    for t in topics {
        let Ok(parts) = admin.partitions(t).await else {
            continue; // deleted since: lag unknown
        };
        for (p, r) in admin.list_offsets(t, &parts, LATEST).await? {
            if let Ok(o) = r {
                out.insert((t.clone(), p), o);
            }
        }
    }
    Ok(out)
}

async fn describe(admin: &mut Admin, group: &str, fmt: OutputFormat) -> Result<()> {
    let node = admin.coordinator(group).await?;
    let d = describe_group(admin, node, group).await?;
    let offsets = committed(admin, node, group).await?;
    if d.state == "Dead" && offsets.is_empty() {
        bail!("group `{group}` does not exist");
    }
    // Every partition the group has offsets for or is assigned.
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in d.members.iter().enumerate() {
        for tp in &m.3 {
            owner.insert(tp.clone(), i);
        }
    }
    let mut keys: Vec<(String, i32)> = offsets.keys().cloned().collect();
    keys.extend(owner.keys().cloned());
    keys.sort();
    keys.dedup();
    let mut topics: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
    topics.dedup();
    let ends = ends(admin, &topics).await?;
    let rows: Vec<_> = keys
        .iter()
        .map(|k| {
            let c = offsets.get(k).copied();
            let e = ends.get(k).copied();
            let lag = c.zip(e).map(|(c, e)| (e - c).max(0));
            let m = owner.get(k).map(|&i| &d.members[i]);
            (k, c, e, lag, m)
        })
        .collect();
    match fmt {
        OutputFormat::Json => output::json(&json!({
            "group": group,
            "state": d.state,
            "protocol_type": d.protocol_type,
            "protocol": d.protocol,
            "members": d.members.iter().map(|m| json!({
                "member_id": m.0, "client_id": m.1, "host": m.2,
                "assignment": m.3.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "partitions": rows.iter().map(|(k, c, e, lag, m)| json!({
                "topic": k.0, "partition": k.1, "committed_offset": c, "log_end_offset": e,
                "lag": lag, "member_id": m.map(|m| &m.0),
            })).collect::<Vec<_>>(),
            "total_lag": rows.iter().filter_map(|r| r.3).sum::<i64>(),
        })),
        OutputFormat::Table => {
            let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let mut text = format!(
                "GROUP {group}  STATE {}  PROTOCOL {}  MEMBERS {}\n\n",
                d.state,
                if d.protocol.is_empty() {
                    "-"
                } else {
                    &d.protocol
                },
                d.members.len()
            );
            let trows: Vec<Vec<String>> = rows
                .iter()
                .map(|(k, c, e, lag, m)| {
                    vec![
                        k.0.clone(),
                        k.1.to_string(),
                        opt(*c),
                        opt(*e),
                        opt(*lag),
                        m.map_or("-".to_string(), |m| m.0.clone()),
                        m.map_or("-".to_string(), |m| m.2.clone()),
                        m.map_or("-".to_string(), |m| m.1.clone()),
                    ]
                })
                .collect();
            text.push_str(&output::table(
                &[
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ],
                &trows,
            ));
            output::out(&text);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Time(i64),
    Shift(i64),
}

async fn reset(
    admin: &mut Admin,
    group: &str,
    topics: &[String],
    all_topics: bool,
    target: Target,
    dry_run: bool,
    fmt: OutputFormat,
) -> Result<()> {
    let node = admin.coordinator(group).await?;
    let d = describe_group(admin, node, group).await?;
    // As kafka-consumer-groups.sh: only an inactive group can be moved.
    if !matches!(d.state.as_str(), "Empty" | "Dead") {
        bail!(
            "assignments can only be reset if group `{group}` is inactive, but its state is {} ({} members); stop its consumers first",
            d.state,
            d.members.len()
        );
    }
    let current = committed(admin, node, group).await?;
    // (topic, partitions or all).
    let mut wanted: Vec<(String, Option<Vec<i32>>)> = Vec::new();
    if all_topics {
        let mut ts: Vec<String> = current.keys().map(|k| k.0.clone()).collect();
        ts.dedup();
        if ts.is_empty() {
            bail!("group `{group}` has no committed offsets; name the topics with --topic");
        }
        wanted.extend(ts.into_iter().map(|t| (t, None)));
    }
    for t in topics {
        match t.split_once(':') {
            Some((name, ps)) => {
                let ps: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse()).collect();
                let ps = ps.map_err(|_| {
                    anyhow!("--topic {t}: partitions must be numbers, e.g. orders:0,1")
                })?;
                wanted.push((name.to_string(), Some(ps)));
            }
            None => wanted.push((t.clone(), None)),
        }
    }
    let mut plan: Vec<(String, i32, i64)> = Vec::new();
    for (topic, only) in wanted {
        let all = admin.partitions(&topic).await?;
        let parts: Vec<(i32, i32)> = match &only {
            None => all,
            Some(ps) => {
                for p in ps {
                    if !all.iter().any(|a| a.0 == *p) {
                        bail!("topic `{topic}` has no partition {p}");
                    }
                }
                all.into_iter().filter(|a| ps.contains(&a.0)).collect()
            }
        };
        let starts = admin.list_offsets(&topic, &parts, EARLIEST).await?;
        let ends = admin.list_offsets(&topic, &parts, LATEST).await?;
        let at = |m: &HashMap<i32, Result<i64, i16>>, p: i32, what: &str| -> Result<i64> {
            match m.get(&p) {
                Some(Ok(o)) => Ok(*o),
                Some(Err(c)) => bail!("{what} of {topic}-{p}: {}", output::error_text(*c)),
                None => bail!("no {what} for {topic}-{p}"),
            }
        };
        let times = match target {
            Target::Time(t) => Some(admin.list_offsets(&topic, &parts, t).await?),
            _ => None,
        };
        for &(p, _) in &parts {
            let (lo, hi) = (at(&starts, p, "start offset")?, at(&ends, p, "end offset")?);
            let new = match target {
                Target::Earliest => lo,
                Target::Latest => hi,
                Target::Offset(o) => o,
                Target::Time(_) => match times.as_ref().and_then(|t| t.get(&p)) {
                    // No record at or after the time: the end, as Kafka.
                    Some(Ok(-1)) | None => hi,
                    Some(Ok(o)) => *o,
                    Some(Err(c)) => {
                        bail!("offset for time of {topic}-{p}: {}", output::error_text(*c))
                    }
                },
                Target::Shift(n) => match current.get(&(topic.clone(), p)) {
                    Some(c) => c.saturating_add(n),
                    None => bail!(
                        "group `{group}` has no committed offset for {topic}-{p} to shift from"
                    ),
                },
            };
            // Out-of-range offsets are clamped, as kafka-consumer-groups.sh does.
            plan.push((topic.clone(), p, new.clamp(lo, hi)));
        }
    }
    if !dry_run {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (t, p, o) in &plan {
            by_topic.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let (resp, _) = admin.send_to(node, req, 8).await?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    &format!(
                        "cannot commit {}-{} for group `{group}`",
                        t.name.as_str(),
                        p.partition_index
                    ),
                    None,
                )?;
            }
        }
    }
    match fmt {
        OutputFormat::Json => output::json(&json!({
            "group": group,
            "dry_run": dry_run,
            "offsets": plan.iter().map(|(t, p, o)| json!({"topic": t, "partition": p, "new_offset": o})).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|(t, p, o)| vec![group.to_string(), t.clone(), p.to_string(), o.to_string()])
                .collect();
            let mut text = output::table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
            if dry_run {
                text.push_str("(dry run: nothing was committed)\n");
            }
            output::out(&text);
        }
    }
    Ok(())
}

//! `weir group`: list, describe (members, assignments, lag), delete,
//! delete-offsets and reset-offsets, like `kafka-consumer-groups.sh` for
//! consumer groups and `kafka-share-groups.sh` for share groups (KIP-932),
//! whose share-partition start offsets take the place of committed ones.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::output::{self, OutputFormat};
use super::{now_ms, parse_duration, parse_time, Common};
use weir_client::{Admin, GroupDescription, GroupProtocol, OffsetTarget, ShareGroupDescription};

/// `weir group`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List groups (consumer, share and other groups) with their type.
    ///
    /// Examples:
    ///   weir group list
    ///   weir group list --type share
    ///   weir group list --output json
    #[command(verbatim_doc_comment)]
    List {
        /// Only groups of this type.
        #[arg(long = "type", value_enum)]
        kind: Option<GroupType>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
    /// Show a group's state, members, their assignments and the lag of
    /// every partition it has offsets for. For a share group the offsets
    /// are the share-partition start offsets, and the lag counts the
    /// records not yet acknowledged.
    ///
    /// Examples:
    ///   weir group describe billing
    ///   weir group describe jobs --members
    ///   weir group describe billing --output json | jq '[.partitions[].lag] | add'
    #[command(verbatim_doc_comment)]
    Describe {
        /// The group id.
        group: String,
        /// Show the group's state (coordinator, assignor, members count).
        #[arg(long)]
        state: bool,
        /// Show the members and their assignments.
        #[arg(long)]
        members: bool,
        /// Show the offsets and lag of each partition.
        #[arg(long)]
        offsets: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
    /// Delete groups (they must have no active members) and their offsets
    /// (a share group's share-partition state).
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
    /// Delete a group's offsets of some topics: a consumer group's
    /// committed offsets (of topics it is not consuming), or a share
    /// group's share-partition state (the group must have no members;
    /// the topics start afresh by share.auto.offset.reset).
    ///
    /// Examples:
    ///   weir group delete-offsets billing --topic orders
    ///   weir group delete-offsets billing --topic orders:0,1
    #[command(verbatim_doc_comment)]
    DeleteOffsets {
        /// The group id.
        group: String,
        /// A topic, or `TOPIC:P,P,..` for some partitions (consumer
        /// groups only); repeatable.
        #[arg(long, value_name = "TOPIC[:PARTITIONS]", required = true)]
        topic: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Move a group's committed offsets, or a share group's share-partition
    /// start offsets. The group must have no active members, as with
    /// kafka-consumer-groups.sh and kafka-share-groups.sh.
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
        #[arg(long, conflicts_with = "execute")]
        dry_run: bool,
        /// Commit the new offsets (what happens without --dry-run; accepted
        /// for kafka-consumer-groups.sh's spelling).
        #[arg(long)]
        execute: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
}

/// `--type` of `weir group list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GroupType {
    /// Groups of the classic protocol (JoinGroup/SyncGroup).
    Classic,
    /// KIP-848 consumer groups.
    Consumer,
    /// KIP-932 share groups.
    Share,
}

/// Which parts of a group `describe` shows.
#[derive(Debug, Clone, Copy)]
struct Sections {
    state: bool,
    members: bool,
    offsets: bool,
}

/// Runs `weir group ...`.
pub async fn run(args: GroupArgs) -> Result<()> {
    match args.command {
        GroupCommand::List {
            kind,
            output: fmt,
            common,
        } => list(&mut common.admin().await?, kind, fmt).await,
        GroupCommand::Describe {
            group,
            state,
            members,
            offsets,
            output: fmt,
            common,
        } => {
            let all = !(state || members || offsets);
            let sections = Sections {
                state: all || state,
                members: all || members,
                offsets: all || offsets,
            };
            let mut admin = common.admin().await?;
            match admin.describe_share_group(&group).await? {
                Some(d) => describe_share(&mut admin, d, sections, fmt).await,
                None => describe(&mut admin, &group, sections, all, fmt).await,
            }
        }
        GroupCommand::DeleteOffsets {
            group,
            topic,
            common,
        } => {
            let wanted = selection(&topic)?;
            let mut admin = common.admin().await?;
            if admin.describe_share_group(&group).await?.is_some() {
                if let Some(t) = topic.iter().find(|t| t.contains(':')) {
                    bail!("--topic {t}: a share group's offsets are deleted for whole topics");
                }
                admin.delete_share_group_offsets(&group, &topic).await?;
            } else {
                admin.delete_offsets(&group, &wanted).await?;
            }
            for t in &topic {
                output::out(&format!("deleted the offsets of {t} in group {group}\n"));
            }
            Ok(())
        }
        GroupCommand::Delete { groups, common } => {
            let mut admin = common.admin().await?;
            let mut failed = None;
            for g in &groups {
                match admin.delete_group(g).await {
                    Ok(()) => output::out(&format!("deleted group {g}\n")),
                    Err(e) => failed = Some(e.into()),
                }
            }
            failed.map_or(Ok(()), Err)
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            all_topics: _,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            by_duration,
            shift_by,
            dry_run,
            execute: _,
            output: fmt,
            common,
        } => {
            let target = if to_earliest {
                OffsetTarget::Earliest
            } else if to_latest {
                OffsetTarget::Latest
            } else if let Some(o) = to_offset {
                OffsetTarget::Offset(o)
            } else if let Some(t) = to_datetime {
                OffsetTarget::Time(t)
            } else if let Some(d) = by_duration {
                OffsetTarget::Time(now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            } else if let Some(n) = shift_by {
                OffsetTarget::Shift(n)
            } else {
                bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --by-duration or --shift-by");
            };
            let mut admin = common.admin().await?;
            reset(&mut admin, &group, &topic, target, dry_run, fmt).await
        }
    }
}

async fn list(admin: &mut Admin, kind: Option<GroupType>, fmt: OutputFormat) -> Result<()> {
    let wanted = kind.map(|k| match k {
        GroupType::Classic => "classic",
        GroupType::Consumer => "consumer",
        GroupType::Share => "share",
    });
    let groups: BTreeMap<String, (String, String, String)> = admin
        .list_groups()
        .await?
        .into_iter()
        .filter(|g| wanted.is_none_or(|w| g.group_type.eq_ignore_ascii_case(w)))
        .map(|g| (g.group_id, (g.state, g.protocol_type, g.group_type)))
        .collect();
    match fmt {
        OutputFormat::Json => output::json(&json!(groups
            .iter()
            .map(|(g, (s, p, t))| json!({"group": g, "state": s, "protocol_type": p, "type": t}))
            .collect::<Vec<_>>())),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|(g, (s, p, t))| vec![g.clone(), t.clone(), s.clone(), p.clone()])
                .collect();
            output::out(&output::table(
                &["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"],
                &rows,
            ));
        }
    }
    Ok(())
}

/// `--topic` values: a topic, or `TOPIC:P,P,..` for some partitions.
fn selection(topics: &[String]) -> Result<Vec<(String, Option<Vec<i32>>)>> {
    let mut wanted = Vec::new();
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
    Ok(wanted)
}

/// One row of the members table.
struct MemberRow<'a> {
    id: &'a str,
    host: &'a str,
    client: &'a str,
    /// The member epoch (KIP-848 and share groups), `-` for classic ones.
    epoch: String,
    assignment: &'a [(String, i32)],
}

/// The members table: who has which partitions.
fn members_table(members: &[MemberRow<'_>]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.host.to_string(),
                m.client.to_string(),
                m.epoch.clone(),
                m.assignment.len().to_string(),
                m.assignment
                    .iter()
                    .map(|(t, p)| format!("{t}:{p}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    output::table(
        &[
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            "EPOCH",
            "#PARTITIONS",
            "ASSIGNMENT",
        ],
        &rows,
    )
}

async fn describe_share(
    admin: &mut Admin,
    d: ShareGroupDescription,
    sections: Sections,
    fmt: OutputFormat,
) -> Result<()> {
    let group = d.group_id.clone();
    // Partitions with state, and assigned ones that have none yet.
    let mut offsets: BTreeMap<(String, i32), Option<weir_client::ShareOffset>> = BTreeMap::new();
    if sections.offsets {
        for (k, o) in admin.share_group_offsets(&group, None).await? {
            offsets.insert(k, Some(o));
        }
        for m in &d.members {
            for tp in &m.assignment {
                offsets.entry(tp.clone()).or_insert(None);
            }
        }
    }
    let total_lag: i64 = offsets.values().flatten().filter_map(|o| o.lag).sum();
    match fmt {
        OutputFormat::Json => {
            let mut doc = json!({
                "group": group,
                "type": "share",
                "state": d.state,
                "assignor": d.assignor,
                "group_epoch": d.group_epoch,
                "assignment_epoch": d.assignment_epoch,
                "coordinator": d.coordinator,
                "member_count": d.members.len(),
            });
            if sections.members {
                doc["members"] = json!(d.members.iter().map(|m| json!({
                    "member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                    "rack": m.rack, "member_epoch": m.member_epoch,
                    "subscribed_topics": m.subscribed_topics,
                    "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>());
            }
            if sections.offsets {
                doc["partitions"] = json!(offsets
                    .iter()
                    .map(|((t, p), o)| json!({
                        "topic": t, "partition": p,
                        "start_offset": o.map(|o| o.start_offset),
                        "leader_epoch": o.map(|o| o.leader_epoch),
                        "lag": o.and_then(|o| o.lag),
                    }))
                    .collect::<Vec<_>>());
                doc["total_lag"] = json!(total_lag);
            }
            output::json(&doc);
        }
        OutputFormat::Table => {
            let mut text = String::new();
            if sections.state {
                text.push_str(&format!(
                    "GROUP {group}  TYPE share  STATE {}  ASSIGNOR {}  EPOCH {}  COORDINATOR {}  MEMBERS {}\n\n",
                    d.state,
                    if d.assignor.is_empty() { "-" } else { &d.assignor },
                    d.group_epoch,
                    d.coordinator,
                    d.members.len()
                ));
            }
            if sections.members {
                let ms: Vec<_> = d
                    .members
                    .iter()
                    .map(|m| MemberRow {
                        id: &m.member_id,
                        host: &m.host,
                        client: &m.client_id,
                        epoch: m.member_epoch.to_string(),
                        assignment: &m.assignment,
                    })
                    .collect();
                text.push_str(&members_table(&ms));
                text.push('\n');
            }
            if sections.offsets {
                let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
                let rows: Vec<Vec<String>> = offsets
                    .iter()
                    .map(|((t, p), o)| {
                        vec![
                            t.clone(),
                            p.to_string(),
                            opt(o.map(|o| i64::from(o.leader_epoch))),
                            opt(o.map(|o| o.start_offset)),
                            opt(o.and_then(|o| o.lag)),
                        ]
                    })
                    .collect();
                text.push_str(&output::table(
                    &["TOPIC", "PARTITION", "LEADER-EPOCH", "START-OFFSET", "LAG"],
                    &rows,
                ));
            }
            output::out(&text);
        }
    }
    Ok(())
}

async fn describe(
    admin: &mut Admin,
    group: &str,
    sections: Sections,
    all: bool,
    fmt: OutputFormat,
) -> Result<()> {
    let d: GroupDescription = admin.describe_group(group).await?;
    let offsets = admin.committed_offsets(group).await?;
    if d.state == "Dead" && offsets.is_empty() {
        bail!("group `{group}` does not exist");
    }
    // Every partition the group has offsets for or is assigned.
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in d.members.iter().enumerate() {
        for tp in &m.assignment {
            owner.insert(tp.clone(), i);
        }
    }
    let mut keys: Vec<(String, i32)> = offsets.keys().cloned().collect();
    keys.extend(owner.keys().cloned());
    keys.sort();
    keys.dedup();
    let mut topics: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
    topics.dedup();
    let ends = admin.end_offsets(&topics).await?;
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
        OutputFormat::Json => {
            let mut doc = json!({
                "group": group,
                "type": match d.protocol {
                    GroupProtocol::Classic => "classic",
                    GroupProtocol::Consumer => "consumer",
                },
                "state": d.state,
                "protocol_type": d.protocol_type,
                "protocol": d.assignor,
                "coordinator": d.coordinator,
                "member_count": d.members.len(),
            });
            if sections.members {
                doc["members"] = json!(d.members.iter().map(|m| json!({
                    "member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                    "member_epoch": m.member_epoch,
                    "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>());
            }
            if sections.offsets {
                doc["partitions"] =
                    json!(rows.iter().map(|(k, c, e, lag, m)| json!({
                    "topic": k.0, "partition": k.1, "committed_offset": c, "log_end_offset": e,
                    "lag": lag, "member_id": m.map(|m| &m.member_id),
                })).collect::<Vec<_>>());
                doc["total_lag"] = json!(rows.iter().filter_map(|r| r.3).sum::<i64>());
            }
            output::json(&doc);
        }
        OutputFormat::Table => {
            let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let mut text = String::new();
            if sections.state {
                text.push_str(&format!(
                    "GROUP {group}  STATE {}  PROTOCOL {}  COORDINATOR {}  MEMBERS {}\n\n",
                    d.state,
                    if d.assignor.is_empty() {
                        "-"
                    } else {
                        &d.assignor
                    },
                    d.coordinator,
                    d.members.len()
                ));
            }
            // The default view has the members beside their partitions.
            if sections.members && !all {
                let ms: Vec<_> = d
                    .members
                    .iter()
                    .map(|m| MemberRow {
                        id: &m.member_id,
                        host: &m.host,
                        client: &m.client_id,
                        epoch: "-".to_string(),
                        assignment: &m.assignment,
                    })
                    .collect();
                text.push_str(&members_table(&ms));
                text.push('\n');
            }
            if !sections.offsets {
                output::out(&text);
                return Ok(());
            }
            let trows: Vec<Vec<String>> = rows
                .iter()
                .map(|(k, c, e, lag, m)| {
                    vec![
                        k.0.clone(),
                        k.1.to_string(),
                        opt(*c),
                        opt(*e),
                        opt(*lag),
                        m.map_or("-".to_string(), |m| m.member_id.clone()),
                        m.map_or("-".to_string(), |m| m.host.clone()),
                        m.map_or("-".to_string(), |m| m.client_id.clone()),
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

async fn reset(
    admin: &mut Admin,
    group: &str,
    topics: &[String],
    target: OffsetTarget,
    dry_run: bool,
    fmt: OutputFormat,
) -> Result<()> {
    // (topic, partitions or all); `--all-topics` leaves it empty, which
    // means every topic the group has offsets for.
    let wanted = selection(topics)?;
    let plan = if admin.describe_share_group(group).await?.is_some() {
        admin
            .reset_share_group_offsets(group, &wanted, target, dry_run)
            .await?
    } else {
        admin.reset_offsets(group, &wanted, target, dry_run).await?
    };
    match fmt {
        OutputFormat::Json => output::json(&json!({
            "group": group,
            "dry_run": dry_run,
            "offsets": plan.iter().map(|p| json!({"topic": p.topic, "partition": p.partition, "current_offset": p.current, "new_offset": p.new})).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|p| {
                    vec![
                        group.to_string(),
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.current.map_or("-".to_string(), |c| c.to_string()),
                        p.new.to_string(),
                    ]
                })
                .collect();
            let mut text = output::table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "NEW-OFFSET",
                ],
                &rows,
            );
            if dry_run {
                text.push_str("(dry run: nothing was committed)\n");
            }
            output::out(&text);
        }
    }
    Ok(())
}

//! `weir group`: list, describe (members, assignments, lag), delete and
//! reset-offsets, like `kafka-consumer-groups.sh`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::output::{self, OutputFormat};
use super::{now_ms, parse_duration, parse_time, Common};
use weir_client::{Admin, OffsetTarget};

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

async fn list(admin: &mut Admin, fmt: OutputFormat) -> Result<()> {
    let groups: BTreeMap<String, (String, String)> = admin
        .list_groups()
        .await?
        .into_iter()
        .map(|g| (g.group_id, (g.state, g.protocol_type)))
        .collect();
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

async fn describe(admin: &mut Admin, group: &str, fmt: OutputFormat) -> Result<()> {
    let d = admin.describe_group(group).await?;
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
        OutputFormat::Json => output::json(&json!({
            "group": group,
            "state": d.state,
            "protocol_type": d.protocol_type,
            "protocol": d.assignor,
            "members": d.members.iter().map(|m| json!({
                "member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "partitions": rows.iter().map(|(k, c, e, lag, m)| json!({
                "topic": k.0, "partition": k.1, "committed_offset": c, "log_end_offset": e,
                "lag": lag, "member_id": m.map(|m| &m.member_id),
            })).collect::<Vec<_>>(),
            "total_lag": rows.iter().filter_map(|r| r.3).sum::<i64>(),
        })),
        OutputFormat::Table => {
            let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let mut text = format!(
                "GROUP {group}  STATE {}  PROTOCOL {}  MEMBERS {}\n\n",
                d.state,
                if d.assignor.is_empty() {
                    "-"
                } else {
                    &d.assignor
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
    let mut wanted: Vec<(String, Option<Vec<i32>>)> = Vec::new();
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
    let plan = admin.reset_offsets(group, &wanted, target, dry_run).await?;
    match fmt {
        OutputFormat::Json => output::json(&json!({
            "group": group,
            "dry_run": dry_run,
            "offsets": plan.iter().map(|p| json!({"topic": p.topic, "partition": p.partition, "new_offset": p.new})).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|p| {
                    vec![
                        group.to_string(),
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.new.to_string(),
                    ]
                })
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

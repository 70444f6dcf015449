//! `weir topic`: create, list, describe, delete, alter-config and
//! add-partitions.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{self, OutputFormat};
use super::{key_value, Common};
use weir_client::{Admin, AlterConfigOp, ConfigResource, NewTopic, EARLIEST, LATEST};

/// `weir topic`.
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    ///
    /// Examples:
    ///   weir topic create orders
    ///   weir topic create orders --partitions 6 --config retention.ms=86400000
    ///   weir topic create users --config cleanup.policy=compact
    #[command(verbatim_doc_comment)]
    Create {
        /// The topic's name.
        topic: String,
        /// Partitions [default: the broker's num.partitions].
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replicas of each partition [default: the broker's
        /// default.replication.factor].
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `--config retention.ms=60000`; repeatable.
        #[arg(long, short = 'c', value_name = "KEY=VALUE", value_parser = key_value)]
        config: Vec<(String, String)>,
        #[command(flatten)]
        common: Common,
    },
    /// List topics with their partition counts.
    ///
    /// Examples:
    ///   weir topic list
    ///   weir topic list --internal --output json
    #[command(verbatim_doc_comment)]
    List {
        /// Include internal topics such as __consumer_offsets.
        #[arg(long)]
        internal: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
    /// Show a topic's partitions (leader, start and end offsets, size on
    /// disk) and its configs with their sources.
    ///
    /// Examples:
    ///   weir topic describe orders
    ///   weir topic describe orders --output json | jq '.partitions[].end_offset'
    #[command(verbatim_doc_comment)]
    Describe {
        /// The topic's name.
        topic: String,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
    /// Delete topics.
    ///
    /// Examples:
    ///   weir topic delete orders
    ///   weir topic delete orders payments
    #[command(verbatim_doc_comment)]
    Delete {
        /// The topics' names.
        #[arg(required = true)]
        topics: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Set or remove topic configs.
    ///
    /// Examples:
    ///   weir topic alter-config orders --set retention.ms=3600000
    ///   weir topic alter-config orders --delete retention.ms
    #[command(verbatim_doc_comment)]
    AlterConfig {
        /// The topic's name.
        topic: String,
        /// Set a config; repeatable.
        #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Remove an override, back to the broker's default; repeatable.
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Grow a topic to a total number of partitions.
    ///
    /// Examples:
    ///   weir topic add-partitions orders --total 12
    #[command(verbatim_doc_comment)]
    AddPartitions {
        /// The topic's name.
        topic: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: i32,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `weir topic ...`.
pub async fn run(args: TopicArgs) -> Result<()> {
    match args.command {
        TopicCommand::Create {
            topic,
            partitions,
            replication_factor,
            config,
            common,
        } => {
            let t = NewTopic {
                name: topic.clone(),
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs: config,
            };
            common.admin().await?.create_topic(&t, false).await?;
            output::out(&format!("created topic {topic}\n"));
            Ok(())
        }
        TopicCommand::List {
            internal,
            output: fmt,
            common,
        } => {
            let mut admin = common.admin().await?;
            let md = admin.metadata(None).await?;
            let mut topics: Vec<(String, usize, usize, bool)> = md
                .topics
                .iter()
                .filter(|t| internal || !t.is_internal)
                .filter_map(|t| {
                    let n = t.name.as_ref()?.to_string();
                    let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
                    Some((n, t.partitions.len(), rf, t.is_internal))
                })
                .collect();
            topics.sort();
            match fmt {
                OutputFormat::Json => output::json(&json!(topics
                    .iter()
                    .map(|(n, p, rf, i)| json!({"name": n, "partitions": p, "replication_factor": rf, "internal": i}))
                    .collect::<Vec<_>>())),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = topics
                        .iter()
                        .map(|(n, p, rf, _)| vec![n.clone(), p.to_string(), rf.to_string()])
                        .collect();
                    output::out(&output::table(&["TOPIC", "PARTITIONS", "REPLICAS"], &rows));
                }
            }
            Ok(())
        }
        TopicCommand::Describe {
            topic,
            output: fmt,
            common,
        } => describe(&mut common.admin().await?, &topic, fmt).await,
        TopicCommand::Delete { topics, common } => {
            let mut failed = None;
            for (n, r) in common.admin().await?.delete_topics(&topics).await? {
                match r {
                    Ok(()) => output::out(&format!("deleted topic {n}\n")),
                    Err(e) => failed = Some(e.into()),
                }
            }
            failed.map_or(Ok(()), Err)
        }
        TopicCommand::AlterConfig {
            topic,
            set,
            delete,
            common,
        } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            let mut ops: Vec<(String, AlterConfigOp)> = set
                .into_iter()
                .map(|(k, v)| (k, AlterConfigOp::Set(v)))
                .collect();
            ops.extend(delete.into_iter().map(|k| (k, AlterConfigOp::Delete)));
            let resource = ConfigResource::Topic(topic.clone());
            common
                .admin()
                .await?
                .alter_configs(&resource, &ops, false)
                .await?;
            output::out(&format!("altered configs of topic {topic}\n"));
            Ok(())
        }
        TopicCommand::AddPartitions {
            topic,
            total,
            common,
        } => {
            common
                .admin()
                .await?
                .create_partitions(&topic, total, false)
                .await?;
            output::out(&format!("topic {topic} now has {total} partitions\n"));
            Ok(())
        }
    }
}

async fn describe(admin: &mut Admin, topic: &str, fmt: OutputFormat) -> Result<()> {
    let parts = admin.partitions(topic).await?;
    let starts = admin.list_offsets(topic, &parts, EARLIEST).await?;
    let ends = admin.list_offsets(topic, &parts, LATEST).await?;
    // Not every broker serves DescribeLogDirs; sizes are then unknown.
    let sizes = admin.log_dir_sizes(topic).await.ok();
    let configs: Vec<(String, String, &str)> = admin
        .describe_configs(&ConfigResource::Topic(topic.to_string()))
        .await?
        .into_iter()
        .map(|c| {
            let value = if c.sensitive {
                "(sensitive)".to_string()
            } else {
                c.value.unwrap_or_default()
            };
            (c.name, value, c.source)
        })
        .collect();
    let off = |m: &std::collections::HashMap<i32, Result<i64, i16>>, p: i32| -> Option<i64> {
        m.get(&p).and_then(|r| r.ok())
    };
    // partition, leader, start, end, size.
    type Row = (i32, i32, Option<i64>, Option<i64>, Option<i64>);
    let rows: Vec<Row> = parts
        .iter()
        .map(|&(p, leader)| {
            (
                p,
                leader,
                off(&starts, p),
                off(&ends, p),
                sizes.as_ref().and_then(|s| s.get(&p).copied()),
            )
        })
        .collect();
    match fmt {
        OutputFormat::Json => output::json(&json!({
            "topic": topic,
            "partitions": rows.iter().map(|(p, l, s, e, z)| json!({
                "partition": p, "leader": l, "start_offset": s, "end_offset": e,
                "messages": s.zip(*e).map(|(s, e)| e - s), "size_bytes": z,
            })).collect::<Vec<_>>(),
            "configs": configs.iter().map(|(n, v, s)| json!({"name": n, "value": v, "source": s})).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let table_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|(p, l, s, e, z)| {
                    vec![
                        p.to_string(),
                        l.to_string(),
                        opt(*s),
                        opt(*e),
                        opt(s.zip(*e).map(|(s, e)| e - s)),
                        z.map_or("-".to_string(), human_bytes),
                    ]
                })
                .collect();
            let mut text = format!("TOPIC {topic}  PARTITIONS {}\n\n", parts.len());
            text.push_str(&output::table(
                &["PARTITION", "LEADER", "START", "END", "MESSAGES", "SIZE"],
                &table_rows,
            ));
            text.push('\n');
            let crows: Vec<Vec<String>> = configs
                .iter()
                .map(|(n, v, s)| vec![n.clone(), v.clone(), (*s).to_string()])
                .collect();
            text.push_str(&output::table(&["CONFIG", "VALUE", "SOURCE"], &crows));
            output::out(&text);
        }
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

//! `weir consume`: records to stdout, through librdkafka, with or without
//! a consumer group.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use weir_formats::Field;

use super::schemas::{Codecs, SchemaArgs};
use super::{key_value, now_ms, parse_duration, parse_time, Common};

/// `weir consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    topic: String,
    /// Where to start: `earliest`, `latest`, an offset, a time (Unix ms or
    /// RFC 3339) or a duration ago (`30s`, `15m`, `2h`, `1d`). With
    /// `--group`, only `earliest` or `latest`, used where the group has no
    /// committed offset [default: latest].
    #[arg(long, short = 's', value_name = "WHERE")]
    from: Option<String>,
    /// Read only these partitions (without `--group`); repeatable.
    #[arg(long, short = 'p')]
    partition: Vec<i32>,
    /// Consume as this consumer group (joins it and commits offsets).
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Stop after N records.
    #[arg(short = 'n', long = "count", value_name = "N")]
    count: Option<u64>,
    /// Stop at the end of the partitions instead of waiting for more.
    #[arg(long, short = 'e')]
    exit: bool,
    /// `value` (one a line), `json` (an object a line) or a template with
    /// %t topic, %p partition, %o offset, %T timestamp, %k key, %v value,
    /// %h headers (k=v,..), %K/%S key/value size, %% and \n, \t escapes.
    #[arg(long, short = 'F', default_value = "value", value_name = "FORMAT")]
    format: String,
    /// `json` is `--format json`, as the other commands' `--output json`;
    /// records have no table form.
    #[arg(long, value_name = "json", conflicts_with = "format")]
    output: Option<String>,
    /// A librdkafka consumer property, e.g. `-X fetch.min.bytes=1000`;
    /// repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = key_value)]
    property: Vec<(String, String)>,
    #[command(flatten)]
    schemas: SchemaArgs,
    #[command(flatten)]
    common: Common,
}

/// librdkafka's callbacks, without the "global error" log line that
/// reaching the end of a partition produces (we ask for those events).
struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::warn!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

/// Where to start without a group.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Earliest,
    Latest,
    Offset(i64),
    Time(i64),
}

fn parse_start(s: &str) -> Result<Start> {
    Ok(match s {
        "earliest" | "beginning" => Start::Earliest,
        "latest" | "end" => Start::Latest,
        _ => {
            if let Ok(o) = s.parse::<i64>() {
                if o < 0 {
                    bail!("--from {s}: an offset cannot be negative");
                }
                // Numbers that look like Unix ms are still offsets; use a
                // date or a duration for times.
                Start::Offset(o)
            } else if let Ok(d) = parse_duration(s) {
                Start::Time(now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            } else {
                Start::Time(parse_time(s).map_err(|e| {
                    anyhow!("--from: {e}; use earliest, latest, an offset, a time or a duration")
                })?)
            }
        }
    })
}

/// Runs `weir consume`.
pub async fn run(mut args: ConsumeArgs) -> Result<()> {
    match args.output.as_deref() {
        None => {}
        Some("json") => args.format = "json".into(),
        Some(other) => anyhow::bail!(
            "--output {other}: records print as --format value, json or a template; \
             --output takes only json here"
        ),
    }
    let start = args.from.as_deref().map(parse_start).transpose()?;
    // Fail fast and clearly on an unreachable broker or unknown topic.
    let mut admin = args.common.admin().await?;
    let parts: Vec<i32> = admin
        .partitions(&args.topic)
        .await?
        .iter()
        .map(|p| p.0)
        .collect();
    drop(admin);
    for p in &args.partition {
        if !parts.contains(p) {
            bail!("topic `{}` has no partition {p}", args.topic);
        }
    }
    if args.group.is_some() {
        if !args.partition.is_empty() {
            bail!("--partition cannot be used with --group (the group assigns partitions)");
        }
        if let Some(s) = start.filter(|s| !matches!(s, Start::Earliest | Start::Latest)) {
            bail!(
                "--from {s:?} cannot be used with --group; move the group with `weir group reset-offsets` first"
            );
        }
    }
    let parts = if args.partition.is_empty() {
        parts
    } else {
        args.partition.clone()
    };
    // Ctrl-C (or SIGTERM) ends following cleanly: a group member commits
    // what it printed and leaves the group instead of timing out.
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    let watcher = tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        stopper.store(true, Ordering::Relaxed);
    });
    let codecs = args
        .schemas
        .any()
        .then(|| args.schemas.codecs())
        .transpose()?;
    let result = tokio::task::spawn_blocking(move || {
        consume_blocking(&args, start, &parts, &stop, codecs.as_ref())
    })
    .await?;
    watcher.abort();
    result
}

fn consume_blocking(
    args: &ConsumeArgs,
    start: Option<Start>,
    parts: &[i32],
    stop: &AtomicBool,
    codecs: Option<&Codecs>,
) -> Result<()> {
    let mut cfg = args.common.rdkafka_config()?;
    cfg.set("enable.partition.eof", "true").set(
        "auto.offset.reset",
        if start == Some(Start::Earliest) {
            "earliest"
        } else {
            "latest"
        },
    );
    match &args.group {
        Some(g) => {
            cfg.set("group.id", g);
        }
        None => {
            // librdkafka wants a group id even for manual assignment; it
            // is never joined or committed to.
            cfg.set("group.id", "weir-consume")
                .set("enable.auto.commit", "false");
        }
    }
    for (k, v) in &args.property {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer<Quiet> = cfg
        .create_with_context(Quiet)
        .context("cannot create the consumer")?;
    let timeout = args.common.timeout();
    let mut wanted: Option<HashSet<i32>> = None;
    if args.group.is_some() {
        consumer
            .subscribe(&[&args.topic])
            .context("cannot subscribe")?;
    } else {
        let mut tpl = TopicPartitionList::new();
        for &p in parts {
            let off = match start.unwrap_or(Start::Latest) {
                Start::Earliest => Offset::Beginning,
                Start::Latest => Offset::End,
                Start::Offset(o) => Offset::Offset(o),
                Start::Time(t) => Offset::Offset(t),
            };
            tpl.add_partition_offset(&args.topic, p, off)?;
        }
        if let Some(Start::Time(_)) = start {
            tpl = consumer
                .offsets_for_times(tpl, timeout)
                .context("cannot look up offsets for the time")?;
            // No record at or after the time: start at the end.
            for e in tpl.clone().elements() {
                if matches!(e.offset(), Offset::End | Offset::Invalid)
                    || e.offset().to_raw() == Some(-1)
                {
                    tpl.set_partition_offset(e.topic(), e.partition(), Offset::End)?;
                }
            }
        }
        consumer.assign(&tpl).context("cannot assign partitions")?;
        wanted = Some(parts.iter().copied().collect());
    }
    let template = if args.format == "value" || args.format == "json" {
        None
    } else {
        Some(unescape(&args.format))
    };
    let mut printed = 0u64;
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    use std::io::Write;
    loop {
        if args.count.is_some_and(|n| printed >= n) || stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            let _ = out.flush();
            continue;
        };
        match msg {
            Ok(m) => {
                at_end.remove(&m.partition());
                let mut decoded = [None, None];
                if let Some(c) = codecs {
                    for (i, (field, bytes)) in [(Field::Key, m.key()), (Field::Value, m.payload())]
                        .into_iter()
                        .enumerate()
                    {
                        if let Some(b) = bytes {
                            decoded[i] = c.decode(&args.topic, field, b).with_context(|| {
                                format!("partition {} offset {}", m.partition(), m.offset())
                            })?;
                        }
                    }
                }
                let line = render(&m, args.format.as_str(), template.as_deref(), &decoded);
                if out.write_all(&line).is_err() {
                    break; // stdout closed (`| head`)
                }
                printed += 1;
            }
            Err(KafkaError::PartitionEOF(p)) => {
                at_end.insert(p);
                if args.exit {
                    let assigned: HashSet<i32> = match &wanted {
                        Some(w) => w.clone(),
                        None => consumer
                            .assignment()
                            .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                            .unwrap_or_default(),
                    };
                    if !assigned.is_empty() && assigned.is_subset(&at_end) {
                        break;
                    }
                }
            }
            Err(e) => bail!("consume failed: {e}"),
        }
    }
    let _ = out.flush();
    if args.group.is_some() {
        // Commit what was printed, so the group resumes after it.
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => bail!("cannot commit offsets: {e}"),
        }
        consumer.unsubscribe();
    }
    Ok(())
}

/// `\n` and `\t` in a template.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\\\", "\\")
}

fn text(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// A JSON value for bytes: a string if UTF-8, null if absent; otherwise
/// `{"base64": ..}`.
fn json_bytes(b: Option<&[u8]>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(b)}),
        },
    }
}

/// Renders a record; `decoded` holds the key and value decoded from a
/// schema format, which replace the raw bytes.
fn render<M: Message>(
    m: &M,
    format: &str,
    template: Option<&str>,
    decoded: &[Option<serde_json::Value>; 2],
) -> Vec<u8> {
    let text_of = |i: usize| decoded[i].as_ref().map(|j| j.to_string().into_bytes());
    let (key_text, value_text) = (text_of(0), text_of(1));
    let key = key_text.as_deref().or(m.key());
    let payload = value_text.as_deref().or(m.payload());
    let ts = m.timestamp().to_millis().unwrap_or(-1);
    let headers: Vec<(String, Option<Vec<u8>>)> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    match (format, template) {
        ("json", _) => {
            let hs: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| (k.clone(), json_bytes(v.as_deref())))
                .collect();
            let mut line = json!({
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": ts,
                "key": decoded[0].clone().unwrap_or_else(|| json_bytes(m.key())),
                "value": decoded[1].clone().unwrap_or_else(|| json_bytes(m.payload())),
                "headers": hs,
            })
            .to_string()
            .into_bytes();
            line.push(b'\n');
            line
        }
        (_, Some(t)) => {
            let mut out = Vec::new();
            let mut chars = t.chars().peekable();
            while let Some(c) = chars.next() {
                if c != '%' {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
                match chars.next() {
                    Some('t') => out.extend_from_slice(m.topic().as_bytes()),
                    Some('p') => out.extend_from_slice(m.partition().to_string().as_bytes()),
                    Some('o') => out.extend_from_slice(m.offset().to_string().as_bytes()),
                    Some('T') => out.extend_from_slice(ts.to_string().as_bytes()),
                    Some('k') => out.extend_from_slice(key.unwrap_or_default()),
                    Some('v') => out.extend_from_slice(payload.unwrap_or_default()),
                    Some('K') => out.extend_from_slice(
                        m.key()
                            .map_or(-1, |k| k.len() as i64)
                            .to_string()
                            .as_bytes(),
                    ),
                    Some('S') => out.extend_from_slice(
                        m.payload()
                            .map_or(-1, |k| k.len() as i64)
                            .to_string()
                            .as_bytes(),
                    ),
                    Some('h') => {
                        let hs: Vec<String> = headers
                            .iter()
                            .map(|(k, v)| format!("{k}={}", text(v.as_deref())))
                            .collect();
                        out.extend_from_slice(hs.join(",").as_bytes());
                    }
                    Some('%') => out.push(b'%'),
                    Some(other) => {
                        out.push(b'%');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    }
                    None => out.push(b'%'),
                }
            }
            out
        }
        _ => {
            let mut line = payload.unwrap_or_default().to_vec();
            line.push(b'\n');
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_parse() {
        assert_eq!(parse_start("earliest").ok(), Some(Start::Earliest));
        assert_eq!(parse_start("42").ok(), Some(Start::Offset(42)));
        assert!(parse_start("-3").is_err());
        assert_eq!(
            parse_start("1970-01-01T00:00:01Z").ok(),
            Some(Start::Time(1000))
        );
        assert!(matches!(parse_start("15m"), Ok(Start::Time(_))));
        assert!(parse_start("whenever").is_err());
    }
}

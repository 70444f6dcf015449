//! `weir produce`: records from lines of stdin or a file, through
//! librdkafka.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use weir_formats::Field;

use super::schemas::{Codecs, SchemaArgs};
use super::{key_value, Common};

/// How input lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum InputFormat {
    /// Each line is a value (or `KEY<sep>VALUE` with `--key-separator`).
    #[default]
    Lines,
    /// Each line is a JSON object: `{"key": .., "value": .., "headers":
    /// {..}, "timestamp": ms, "partition": n}`; all fields optional.
    Json,
}

/// `weir produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    topic: String,
    /// Read from this file instead of stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// Input format.
    #[arg(long, value_enum, default_value_t)]
    format: InputFormat,
    /// Split each line at the first SEP into key and value.
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// A header for every record; repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Write every record to this partition [default: by key hash, or
    /// sticky for records without key].
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// Compression codec.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// A librdkafka producer property, e.g. `-X linger.ms=50`; repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = key_value)]
    property: Vec<(String, String)>,
    #[command(flatten)]
    schemas: SchemaArgs,
    #[command(flatten)]
    common: Common,
}

/// Counts deliveries and keeps the first failure.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// One record to send.
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
    partition: Option<i32>,
}

/// `schemad` says which of key and value are schema'd: their JSON values
/// are kept as JSON text, strings included, to be serialized.
fn parse_line(args: &ProduceArgs, line: &str, n: usize, schemad: [bool; 2]) -> Result<Rec> {
    let mut rec = Rec {
        key: None,
        value: Some(line.as_bytes().to_vec()),
        headers: args
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.as_bytes().to_vec())))
            .collect(),
        timestamp: None,
        partition: args.partition,
    };
    match args.format {
        InputFormat::Lines => {
            if let Some(sep) = &args.key_separator {
                let (k, v) = line
                    .split_once(sep.as_str())
                    .ok_or_else(|| anyhow!("line {n}: no key separator `{sep}` in the line"))?;
                rec.key = Some(k.as_bytes().to_vec());
                rec.value = Some(v.as_bytes().to_vec());
            }
        }
        InputFormat::Json => {
            let v: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("line {n}: not JSON"))?;
            let obj = v
                .as_object()
                .ok_or_else(|| anyhow!("line {n}: not a JSON object"))?;
            let bytes = |field: &str| -> Result<Option<Vec<u8>>> {
                let as_json = schemad[usize::from(field == "value")];
                match obj.get(field) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) if !as_json => {
                        Ok(Some(s.as_bytes().to_vec()))
                    }
                    // Non-string JSON values are sent as their JSON text.
                    Some(other) => Ok(Some(other.to_string().into_bytes())),
                }
            };
            rec.key = bytes("key")?;
            rec.value = bytes("value")?;
            if let Some(h) = obj.get("headers") {
                let h = h
                    .as_object()
                    .ok_or_else(|| anyhow!("line {n}: `headers` must be an object"))?;
                for (k, v) in h {
                    let v = match v {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
                        other => Some(other.to_string().into_bytes()),
                    };
                    rec.headers.push((k.clone(), v));
                }
            }
            if let Some(t) = obj.get("timestamp") {
                rec.timestamp = Some(
                    t.as_i64()
                        .ok_or_else(|| anyhow!("line {n}: `timestamp` must be milliseconds"))?,
                );
            }
            if let Some(p) = obj.get("partition") {
                rec.partition = Some(
                    p.as_i64()
                        .and_then(|p| i32::try_from(p).ok())
                        .ok_or_else(|| anyhow!("line {n}: `partition` must be an integer"))?,
                );
            }
        }
    }
    Ok(rec)
}

/// Runs `weir produce`.
pub async fn run(args: ProduceArgs) -> Result<()> {
    // Fail fast and clearly on an unreachable broker or unknown topic,
    // rather than after librdkafka's message timeout.
    let mut admin = args.common.admin().await?;
    let parts = admin.partitions(&args.topic).await?;
    if let Some(p) = args.partition {
        if !parts.iter().any(|(i, _)| *i == p) {
            bail!(
                "topic `{}` has no partition {p} (it has {})",
                args.topic,
                parts.len()
            );
        }
    }
    drop(admin);
    let codecs = args
        .schemas
        .any()
        .then(|| args.schemas.codecs())
        .transpose()?;
    tokio::task::spawn_blocking(move || produce_blocking(&args, codecs.as_ref())).await?
}

fn produce_blocking(args: &ProduceArgs, codecs: Option<&Codecs>) -> Result<()> {
    let mut cfg = args.common.rdkafka_config()?;
    cfg.set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            (args.common.timeout().as_millis() * 3).to_string(),
        );
    for (k, v) in &args.property {
        cfg.set(k, v);
    }
    let producer: BaseProducer<Deliveries> = cfg
        .create_with_context(Deliveries::default())
        .context("cannot create the producer")?;
    let input: Box<dyn BufRead> = match &args.file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut sent = 0u64;
    for (i, line) in input.lines().enumerate() {
        let line = line.context("cannot read input")?;
        if args.format == InputFormat::Json && line.trim().is_empty() {
            continue;
        }
        let schemad = [Field::Key, Field::Value].map(|f| codecs.is_some_and(|c| c.has(f)));
        let mut rec = parse_line(args, &line, i + 1, schemad)?;
        if let Some(c) = codecs {
            for (field, slot) in [(Field::Key, &mut rec.key), (Field::Value, &mut rec.value)] {
                if let Some(text) = slot.as_deref() {
                    *slot = Some(
                        c.encode(&args.topic, field, text)
                            .with_context(|| format!("line {}", i + 1))?,
                    );
                }
            }
        }
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (k, v) in &rec.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&args.topic).headers(headers);
        if let Some(k) = &rec.key {
            r = r.key(k.as_slice());
        }
        if let Some(v) = &rec.value {
            r = r.payload(v.as_slice());
        }
        if let Some(p) = rec.partition {
            r = r.partition(p);
        }
        if let Some(t) = rec.timestamp {
            r = r.timestamp(t);
        }
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    r = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => bail!("cannot send record {}: {e}", i + 1),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(args.common.timeout() * 3)
        .map_err(|e| anyhow!("cannot flush: {e}"))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx
            .first_error
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        bail!("{failed} of {sent} records were not delivered: {first}");
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}

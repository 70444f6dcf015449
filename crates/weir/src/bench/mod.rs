//! `weir bench`: a load generator for any Kafka-compatible broker, built
//! on librdkafka (`rdkafka`) so that every broker measured sees the same
//! client.
//!
//! - `produce`: producers send fixed-size records; throughput counts only
//!   records the broker acknowledged (delivery reports), failures are
//!   counted and fail the run.
//! - `consume`: consumers read the backlog that is in the topic when the
//!   run starts (catch-up read).
//! - `e2e`: consumers positioned at the end, then producers; every record
//!   carries its intended send time, and the consumer measures end-to-end
//!   latency from it (see [`stats::Pacer`] for the coordinated-omission
//!   correction at a fixed `--rate`).
//!
//! - `pull`: pull queries against a streaming SQL server's REST API,
//!   many at once over keep-alive HTTP connections (see [`pull`]).
//!
//! Progress goes to stderr once a second; the result is a table on stdout,
//! or one JSON document with `--json`.

pub mod pull;
pub mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use self::stats::{intended_ns, payload, stamp, unix_nanos, Latency, Pacer, Percentiles};
use crate::cli::output::{out, table};
use crate::cli::{key_value, parse_duration, Common};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Produce records; report acknowledged throughput and ack latency.
    Produce,
    /// Read the topic's current backlog from the start (catch-up read).
    Consume,
    /// Produce and consume at once; report end-to-end latency.
    E2e,
    /// Pull queries against a streaming SQL server (`--url`, `--query`);
    /// report their latency and rate.
    Pull,
}

/// `weir bench`.
#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    mode: Mode,
    /// The topic; created with `--partitions` if it does not exist.
    #[arg(long, default_value = "weir-bench")]
    topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Bytes of each record's value (at least 16: the send time and a
    /// sequence number are embedded in it).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records to produce in total (produce, e2e: default 1,000,000), or
    /// the most to read (consume: default the whole backlog).
    #[arg(long, conflicts_with = "duration")]
    records: Option<u64>,
    /// Run for this long instead, e.g. `30s`, `2m`.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Target records per second over all producers; 0 = as fast as
    /// possible. Latency is measured from each record's intended send time.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Concurrent producers (one librdkafka client and thread each).
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Concurrent consumers; partitions are split between them.
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Producer acks: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// Compression codec.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Producer batch.size in bytes [default: librdkafka's, 1000000].
    #[arg(long)]
    batch_size: Option<u64>,
    /// Idempotent producers (enable.idempotence=true).
    #[arg(long)]
    idempotence: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// pull: the SQL server's URL.
    #[arg(long, default_value = "http://127.0.0.1:8088")]
    url: String,
    /// pull: the endpoint, ksqlDB's `/query-stream` or `/query`.
    #[arg(long, value_enum, default_value = "query-stream")]
    endpoint: pull::Endpoint,
    /// pull: the statement; each `{key}` in it is replaced by a random
    /// number below `--keys`, e.g. `SELECT * FROM T WHERE ID = 'k{key}';`.
    #[arg(long)]
    query: Option<String>,
    /// pull: how many distinct `{key}` values.
    #[arg(long, default_value_t = 1)]
    keys: u64,
    /// pull: queries to send in total [default: 10000].
    #[arg(long, conflicts_with = "duration")]
    queries: Option<u64>,
    /// pull: concurrent queries, one keep-alive HTTP/1.1 connection each.
    #[arg(long, default_value_t = 100)]
    concurrency: u32,
    /// A librdkafka property for every client, e.g. `-X
    /// fetch.max.bytes=104857600`; repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = key_value)]
    property: Vec<(String, String)>,
    #[command(flatten)]
    common: Common,
}

impl BenchArgs {
    fn validate(&self) -> Result<()> {
        if self.record_size < stats::HEADER_LEN {
            bail!(
                "--record-size must be at least {} bytes (the send time and sequence number are embedded)",
                stats::HEADER_LEN
            );
        }
        if self.record_size > 64 << 20 {
            bail!("--record-size must be at most 64 MiB");
        }
        if self.partitions < 1 {
            bail!("--partitions must be at least 1");
        }
        if self.producers < 1 || self.consumers < 1 {
            bail!("--producers and --consumers must be at least 1");
        }
        if self.records == Some(0) {
            bail!("--records must be at least 1");
        }
        if self.duration == Some(Duration::ZERO) {
            bail!("--duration must be longer than zero");
        }
        Ok(())
    }

    /// Records each producer sends, `None` when bounded by `--duration`.
    fn records_per_producer(&self) -> Vec<Option<u64>> {
        let n = u64::from(self.producers);
        match (self.records, self.duration) {
            (_, Some(_)) => vec![None; self.producers as usize],
            (r, None) => {
                let total = r.unwrap_or(1_000_000);
                (0..n)
                    .map(|i| Some(total / n + u64::from(i < total % n)))
                    .collect()
            }
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.common.bootstrap);
        cfg
    }

    fn producer_config(&self) -> ClientConfig {
        let mut cfg = self.client_config();
        cfg.set("acks", &self.acks)
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("enable.idempotence", self.idempotence.to_string())
            .set("message.timeout.ms", "60000");
        if let Some(b) = self.batch_size {
            cfg.set("batch.size", b.to_string());
        }
        for (k, v) in &self.property {
            cfg.set(k, v);
        }
        cfg
    }

    fn consumer_config(&self) -> ClientConfig {
        let mut cfg = self.client_config();
        // Manual assignment: the group is never joined or committed to.
        cfg.set("group.id", "weir-bench")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        for (k, v) in &self.property {
            cfg.set(k, v);
        }
        cfg
    }
}

/// Counters the progress line reads while the run goes on.
#[derive(Debug, Default)]
struct Progress {
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    produce_errors: AtomicU64,
    consumed: AtomicU64,
    consumed_bytes: AtomicU64,
    consume_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    done: AtomicBool,
}

impl Progress {
    fn error(&self, e: String) {
        if let Ok(mut f) = self.first_error.lock() {
            f.get_or_insert(e);
        }
    }
}

/// One side (producing or consuming) of the result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    /// 10^6 bytes per second of record values.
    pub mb_per_sec: f64,
}

impl Side {
    fn new(records: u64, bytes: u64, errors: u64, elapsed: Duration) -> Self {
        let s = elapsed.as_secs_f64().max(1e-9);
        Side {
            records,
            bytes,
            errors,
            seconds: round3(elapsed.as_secs_f64()),
            records_per_sec: (records as f64 / s).round(),
            mb_per_sec: round3(bytes as f64 / s / 1e6),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub topic: String,
    pub partitions: i32,
    pub record_size: usize,
    pub producers: u32,
    pub consumers: u32,
    pub acks: String,
    pub compression: String,
    pub linger_ms: u64,
    pub batch_size: Option<u64>,
    pub idempotence: bool,
    pub target_rate: u64,
    pub produce: Option<Side>,
    pub consume: Option<Side>,
    /// From each record's intended send time to its acknowledgement.
    pub ack_latency: Option<Percentiles>,
    /// From each record's intended send time to its arrival at a consumer.
    pub e2e_latency: Option<Percentiles>,
    pub first_error: Option<String>,
}

impl Report {
    /// The table for people.
    pub fn render(&self) -> String {
        let mut rows = Vec::new();
        for (name, side) in [("produce", &self.produce), ("consume", &self.consume)] {
            if let Some(s) = side {
                rows.push(vec![
                    name.to_string(),
                    s.records.to_string(),
                    format!("{:.1}", s.mb_per_sec),
                    format!("{:.0}", s.records_per_sec),
                    s.errors.to_string(),
                    format!("{:.2}", s.seconds),
                ]);
            }
        }
        let mut text = format!(
            "{} to {} ({} partitions, {} B records, {} producer(s), {} consumer(s), acks={}, compression={}, linger.ms={}, rate={})\n",
            match self.mode {
                Mode::Produce => "produce",
                Mode::Consume => "consume",
                Mode::E2e => "e2e",
                Mode::Pull => "pull",
            },
            self.topic,
            self.partitions,
            self.record_size,
            self.producers,
            self.consumers,
            self.acks,
            self.compression,
            self.linger_ms,
            if self.target_rate == 0 {
                "max".to_string()
            } else {
                format!("{}/s", self.target_rate)
            }
        );
        text.push_str(&table(
            &["SIDE", "RECORDS", "MB/s", "RECORDS/s", "ERRORS", "SECONDS"],
            &rows,
        ));
        let mut lat = Vec::new();
        for (name, p) in [
            ("ack", &self.ack_latency),
            ("end-to-end", &self.e2e_latency),
        ] {
            if let Some(p) = p {
                lat.push(vec![
                    name.to_string(),
                    format!("{:.3}", p.p50_ms),
                    format!("{:.3}", p.p99_ms),
                    format!("{:.3}", p.p99_9_ms),
                    format!("{:.3}", p.max_ms),
                ]);
            }
        }
        if !lat.is_empty() {
            text.push('\n');
            text.push_str(&table(
                &["LATENCY (ms)", "p50", "p99", "p99.9", "max"],
                &lat,
            ));
        }
        if let Some(e) = &self.first_error {
            text.push_str(&format!("\nfirst error: {e}\n"));
        }
        text
    }
}

/// Runs `weir bench`.
pub async fn run(args: BenchArgs) -> Result<()> {
    if args.mode == Mode::Pull {
        return run_pull(args).await;
    }
    args.validate()?;
    let partitions = ensure_topic(&args).await?;
    let report = tokio::task::spawn_blocking(move || {
        run_blocking(&args, partitions).map(|r| (r, args.json))
    })
    .await??;
    let (report, json) = report;
    if json {
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ));
    } else {
        out(&report.render());
    }
    let errors = report.produce.as_ref().map_or(0, |s| s.errors)
        + report.consume.as_ref().map_or(0, |s| s.errors);
    if errors > 0 {
        bail!("{errors} errors during the run");
    }
    if let (Some(p), Some(c)) = (&report.produce, &report.consume) {
        if c.records < p.records {
            bail!(
                "{} acknowledged records were never consumed",
                p.records - c.records
            );
        }
    }
    Ok(())
}

/// `weir bench pull`: the report, and exit status 1 on any error.
async fn run_pull(args: BenchArgs) -> Result<()> {
    let query = args
        .query
        .clone()
        .ok_or_else(|| anyhow!("pull needs --query (the statement to send)"))?;
    if args.queries == Some(0) || args.duration == Some(Duration::ZERO) {
        bail!("--queries and --duration must be more than zero");
    }
    let report = pull::run(pull::PullConfig {
        url: args.url.clone(),
        endpoint: args.endpoint,
        query,
        keys: args.keys,
        queries: args.queries,
        duration: args.duration,
        rate: args.rate,
        concurrency: args.concurrency,
        timeout: args.common.timeout(),
    })
    .await?;
    if args.json {
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ));
    } else {
        out(&report.render());
    }
    if report.errors > 0 {
        bail!("{} errors during the run", report.errors);
    }
    Ok(())
}

/// Creates the topic if it is missing; returns its partition count.
async fn ensure_topic(args: &BenchArgs) -> Result<i32> {
    let admin: AdminClient<DefaultClientContext> = args
        .client_config()
        .create()
        .context("cannot create the admin client")?;
    let topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(args.common.timeout()));
    let results = tokio::time::timeout(args.common.timeout(), admin.create_topics([&topic], &opts))
        .await
        .map_err(|_| {
            anyhow!(
                "no answer from {} within {:?}",
                args.common.bootstrap,
                args.common.timeout()
            )
        })?
        .context("cannot create the topic")?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("cannot create topic `{t}`: {e}"),
        }
    }
    let md = admin
        .inner()
        .fetch_metadata(Some(&args.topic), args.common.timeout())
        .context("cannot read the topic's metadata")?;
    let n = md
        .topics()
        .iter()
        .find(|t| t.name() == args.topic)
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    if n == 0 {
        bail!("topic `{}` has no partitions", args.topic);
    }
    if n != args.partitions {
        eprintln!(
            "note: topic `{}` exists with {n} partitions; using them",
            args.topic
        );
    }
    Ok(n)
}

fn run_blocking(args: &BenchArgs, partitions: i32) -> Result<Report> {
    let progress = Arc::new(Progress::default());
    let ticker = {
        let p = Arc::clone(&progress);
        std::thread::spawn(move || report_progress(&p))
    };
    let result = match args.mode {
        Mode::Produce => {
            let (side, ack) = run_producers(args, &progress)?;
            (Some(side), None, ack, None)
        }
        Mode::Consume => {
            let offsets = watermarks(args, partitions)?;
            let backlog: u64 = offsets
                .iter()
                .map(|(_, lo, hi)| u64::try_from(hi - lo).unwrap_or(0))
                .sum();
            let target = args.records.map_or(backlog, |r| r.min(backlog));
            if target == 0 {
                bail!("topic `{}` is empty: nothing to consume", args.topic);
            }
            let starts: Vec<(i32, i64)> = offsets.iter().map(|&(p, lo, _)| (p, lo)).collect();
            let goal = Arc::new(AtomicU64::new(target));
            let producing_done = Arc::new(AtomicBool::new(true));
            let (side, _) = run_consumers(args, &starts, &goal, &producing_done, &progress, false)?;
            (None, Some(side), None, None)
        }
        Mode::E2e => {
            let offsets = watermarks(args, partitions)?;
            let starts: Vec<(i32, i64)> = offsets.iter().map(|&(p, _, hi)| (p, hi)).collect();
            let goal = Arc::new(AtomicU64::new(u64::MAX));
            let producing_done = Arc::new(AtomicBool::new(false));
            let consumers = {
                let (args, goal, done, progress) = (
                    args.clone(),
                    Arc::clone(&goal),
                    Arc::clone(&producing_done),
                    Arc::clone(&progress),
                );
                std::thread::spawn(move || {
                    run_consumers(&args, &starts, &goal, &done, &progress, true)
                })
            };
            // Let the consumers connect and start fetching first, so the
            // first records' latency is not their start-up.
            let warm = Instant::now() + Duration::from_secs(2);
            while Instant::now() < warm && progress.consumed.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            let produced = run_producers(args, &progress);
            if let Ok((side, _)) = &produced {
                goal.store(side.records, Ordering::SeqCst);
            } else {
                goal.store(0, Ordering::SeqCst);
            }
            producing_done.store(true, Ordering::SeqCst);
            let consumed = consumers
                .join()
                .map_err(|_| anyhow!("a consumer thread panicked"))?;
            let (pside, ack) = produced?;
            let (cside, e2e) = consumed?;
            (Some(pside), Some(cside), ack, e2e)
        }
        Mode::Pull => bail!("pull runs on its own path"),
    };
    progress.done.store(true, Ordering::SeqCst);
    let _ = ticker.join();
    let (produce, consume, ack, e2e) = result;
    let first_error = progress.first_error.lock().ok().and_then(|f| f.clone());
    Ok(Report {
        mode: args.mode,
        topic: args.topic.clone(),
        partitions,
        record_size: args.record_size,
        producers: args.producers,
        consumers: args.consumers,
        acks: args.acks.clone(),
        compression: args.compression.clone(),
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        idempotence: args.idempotence,
        target_rate: args.rate,
        produce,
        consume,
        ack_latency: ack,
        e2e_latency: e2e,
        first_error,
    })
}

/// A line on stderr every second: totals and the rate over the last second.
fn report_progress(p: &Progress) {
    let start = Instant::now();
    let mut last = (0u64, 0u64, start);
    let mut next = start + Duration::from_secs(1);
    while !p.done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next {
            continue;
        }
        next += Duration::from_secs(1);
        let (pb, cb) = (
            p.acked_bytes.load(Ordering::Relaxed),
            p.consumed_bytes.load(Ordering::Relaxed),
        );
        let dt = now.duration_since(last.2).as_secs_f64().max(1e-9);
        let errors =
            p.produce_errors.load(Ordering::Relaxed) + p.consume_errors.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4.0}s] produced {} ({:.1} MB/s), consumed {} ({:.1} MB/s), errors {}",
            now.duration_since(start).as_secs_f64(),
            p.acked.load(Ordering::Relaxed),
            (pb - last.0) as f64 / dt / 1e6,
            p.consumed.load(Ordering::Relaxed),
            (cb - last.1) as f64 / dt / 1e6,
            errors,
        );
        last = (pb, cb, now);
    }
}

/// (partition, low, high) watermarks of every partition.
fn watermarks(args: &BenchArgs, partitions: i32) -> Result<Vec<(i32, i64, i64)>> {
    let c: BaseConsumer = args
        .consumer_config()
        .create()
        .context("cannot create the consumer")?;
    (0..partitions)
        .map(|p| {
            let (lo, hi) = c
                .fetch_watermarks(&args.topic, p, args.common.timeout())
                .with_context(|| format!("cannot read the offsets of partition {p}"))?;
            Ok((p, lo, hi))
        })
        .collect()
}

/// Counts acknowledgements into the shared progress and times them.
struct Acks {
    progress: Arc<Progress>,
    latency: Mutex<Latency>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let now = unix_nanos();
                let payload = m.payload().unwrap_or_default();
                self.progress.acked.fetch_add(1, Ordering::Relaxed);
                self.progress
                    .acked_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                if let (Some(t), Ok(mut h)) = (intended_ns(payload), self.latency.lock()) {
                    h.record_us(now.saturating_sub(t) / 1000);
                }
            }
            Err((e, _)) => {
                self.progress.produce_errors.fetch_add(1, Ordering::Relaxed);
                self.progress.error(format!("produce: {e}"));
            }
        }
    }
}

fn run_producers(
    args: &BenchArgs,
    progress: &Arc<Progress>,
) -> Result<(Side, Option<Percentiles>)> {
    let start = Instant::now();
    let start_unix = unix_nanos();
    let deadline = args.duration.map(|d| start + d);
    let (acked0, bytes0) = (
        progress.acked.load(Ordering::Relaxed),
        progress.acked_bytes.load(Ordering::Relaxed),
    );
    let threads: Vec<_> = args
        .records_per_producer()
        .into_iter()
        .enumerate()
        .map(|(i, records)| {
            let index = u32::try_from(i).unwrap_or(0);
            let pacer = Pacer::new(args.rate, args.producers, index, start, start_unix);
            let (args, progress) = (args.clone(), Arc::clone(progress));
            std::thread::spawn(move || {
                produce_one(&args, &progress, index, records, deadline, pacer)
            })
        })
        .collect();
    let mut latency = Latency::new();
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok(h)) => latency.merge(&h),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow!("a producer thread panicked")),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let side = Side::new(
        progress.acked.load(Ordering::Relaxed) - acked0,
        progress.acked_bytes.load(Ordering::Relaxed) - bytes0,
        progress.produce_errors.load(Ordering::Relaxed),
        start.elapsed(),
    );
    Ok((side, latency.percentiles()))
}

fn produce_one(
    args: &BenchArgs,
    progress: &Arc<Progress>,
    index: u32,
    records: Option<u64>,
    deadline: Option<Instant>,
    pacer: Pacer,
) -> Result<Latency> {
    // Delivery reports are served by the threaded producer's own polling
    // thread, which blocks until one arrives, so an ack is timed when it
    // comes in; this thread only paces and sends. (Polling here while
    // waiting for the next record's turn spun: rdkafka's poll takes whole
    // milliseconds and returns at once for less, and at tens of thousands
    // of records a second the next one is always due in less than one, so
    // the client kept a core busy that the broker and its own consumer
    // needed.)
    let producer: ThreadedProducer<Acks> = args
        .producer_config()
        .create_with_context(Acks {
            progress: Arc::clone(progress),
            latency: Mutex::new(Latency::new()),
        })
        .context("cannot create the producer")?;
    let mut buf = payload(args.record_size, 0x9E37_79B9_7F4A_7C15 ^ u64::from(index));
    let seq_base = u64::from(index) << 40;
    let mut i = 0u64;
    loop {
        if records.is_some_and(|n| i >= n) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(wait) = pacer.wait(i, now) {
            // The records that fall due during an oversleep go out together
            // on waking, timed from their intended send times.
            std::thread::sleep(wait.min(Duration::from_millis(100)));
            continue;
        }
        stamp(
            &mut buf,
            pacer.intended_unix_ns(i, unix_nanos()),
            seq_base | i,
        );
        let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(&args.topic).payload(&buf);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("cannot send a record: {e}"),
            }
        }
        i += 1;
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| anyhow!("cannot flush the producer: {e}"))?;
    let latency = producer
        .context()
        .latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    Ok(latency)
}

/// Consumers read from `starts` (partition, offset) until `goal` records
/// have arrived in total; after producing ended they give up once nothing
/// has arrived for the client timeout.
fn run_consumers(
    args: &BenchArgs,
    starts: &[(i32, i64)],
    goal: &Arc<AtomicU64>,
    producing_done: &Arc<AtomicBool>,
    progress: &Arc<Progress>,
    e2e: bool,
) -> Result<(Side, Option<Percentiles>)> {
    let n = (args.consumers as usize).min(starts.len()).max(1);
    let start = Instant::now();
    let (c0, b0) = (
        progress.consumed.load(Ordering::Relaxed),
        progress.consumed_bytes.load(Ordering::Relaxed),
    );
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let mine: Vec<(i32, i64)> = starts.iter().skip(i).step_by(n).copied().collect();
            let (args, goal, done, progress) = (
                args.clone(),
                Arc::clone(goal),
                Arc::clone(producing_done),
                Arc::clone(progress),
            );
            std::thread::spawn(move || consume_one(&args, &mine, &goal, &done, &progress, c0, e2e))
        })
        .collect();
    let mut latency = Latency::new();
    let mut last = start;
    let mut first: Option<Instant> = None;
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok((h, f, at))) => {
                latency.merge(&h);
                last = last.max(at);
                first = match (first, f) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow!("a consumer thread panicked")),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let side = Side::new(
        progress.consumed.load(Ordering::Relaxed) - c0,
        progress.consumed_bytes.load(Ordering::Relaxed) - b0,
        progress.consume_errors.load(Ordering::Relaxed),
        // e2e consumers wait for the producers: their rate runs from the
        // first record's arrival, not from their own warm-up.
        last.duration_since(if e2e { first.unwrap_or(start) } else { start }),
    );
    Ok((side, if e2e { latency.percentiles() } else { None }))
}

/// One consumer; returns its latencies and when its first and last
/// records arrived.
fn consume_one(
    args: &BenchArgs,
    parts: &[(i32, i64)],
    goal: &AtomicU64,
    producing_done: &AtomicBool,
    progress: &Progress,
    consumed_before: u64,
    e2e: bool,
) -> Result<(Latency, Option<Instant>, Instant)> {
    let consumer: BaseConsumer = args
        .consumer_config()
        .create()
        .context("cannot create the consumer")?;
    let mut tpl = TopicPartitionList::new();
    for &(p, off) in parts {
        tpl.add_partition_offset(&args.topic, p, Offset::Offset(off))?;
    }
    consumer.assign(&tpl).context("cannot assign partitions")?;
    let deadline = args
        .duration
        .map(|d| Instant::now() + d + Duration::from_secs(10));
    let mut latency = Latency::new();
    let mut first = None;
    let mut last = Instant::now();
    let mut idle_since = Instant::now();
    // Without e2e timing the clock is read once per CLOCK_EVERY records:
    // at a million records a second, reading it for each one costs the
    // client a tenth of a core it would otherwise spend consuming.
    const CLOCK_EVERY: u64 = 64;
    let mut unclocked = 0u64;
    loop {
        let got = progress.consumed.load(Ordering::Relaxed) - consumed_before;
        if got >= goal.load(Ordering::SeqCst) {
            break;
        }
        if unclocked == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or_default();
                if e2e {
                    if let Some(t) = intended_ns(payload) {
                        latency.record_us(unix_nanos().saturating_sub(t) / 1000);
                    }
                }
                let total = progress.consumed.fetch_add(1, Ordering::Relaxed) + 1;
                progress
                    .consumed_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                unclocked += 1;
                let reached = total - consumed_before >= goal.load(Ordering::Relaxed);
                if e2e || first.is_none() || unclocked >= CLOCK_EVERY || reached {
                    last = Instant::now();
                    first.get_or_insert(last);
                    idle_since = last;
                    unclocked = 0;
                }
            }
            Some(Err(e)) => {
                progress.consume_errors.fetch_add(1, Ordering::Relaxed);
                progress.error(format!("consume: {e}"));
            }
            None => {
                // The last records' arrival stays timed to within
                // CLOCK_EVERY records.
                unclocked = 0;
                if !producing_done.load(Ordering::SeqCst) {
                    idle_since = Instant::now();
                } else if idle_since.elapsed() > args.common.timeout() {
                    // Whatever is missing is reported as a shortfall.
                    break;
                }
            }
        }
    }
    Ok((latency, first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn options_parse_with_perf_test_defaults() {
        let a = parse(&["produce"]).unwrap();
        assert_eq!(a.mode, Mode::Produce);
        assert_eq!((a.partitions, a.record_size, a.rate), (8, 1024, 0));
        assert_eq!(a.acks, "all");
        assert_eq!(a.records_per_producer(), vec![Some(1_000_000)]);
        a.validate().unwrap();

        let a = parse(&[
            "e2e",
            "--records",
            "10",
            "--producers",
            "4",
            "--rate",
            "5000",
            "--acks",
            "1",
            "--compression",
            "lz4",
            "--linger-ms",
            "0",
            "--batch-size",
            "65536",
            "--idempotence",
            "-X",
            "socket.nagle.disable=true",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.mode, Mode::E2e);
        // 10 records over 4 producers: the remainder goes to the first.
        assert_eq!(
            a.records_per_producer(),
            vec![Some(3), Some(3), Some(2), Some(2)]
        );
        assert!(a.idempotence && a.json);
        assert_eq!(a.batch_size, Some(65536));
        assert_eq!(
            a.property,
            vec![("socket.nagle.disable".into(), "true".into())]
        );

        let a = parse(&["produce", "--duration", "30s", "--producers", "2"]).unwrap();
        assert_eq!(a.duration, Some(Duration::from_secs(30)));
        assert_eq!(a.records_per_producer(), vec![None, None]);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&["publish"]).is_err());
        assert!(parse(&["produce", "--acks", "2"]).is_err());
        assert!(parse(&["produce", "--records", "5", "--duration", "1s"]).is_err());
        assert!(parse(&["produce", "--duration", "soon"]).is_err());
        for bad in [
            &["produce", "--record-size", "8"][..],
            &["produce", "--partitions", "0"],
            &["produce", "--producers", "0"],
            &["produce", "--records", "0"],
        ] {
            assert!(parse(bad).unwrap().validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates_and_tables_render() {
        let s = Side::new(2000, 2_000_000, 0, Duration::from_secs(2));
        assert_eq!(s.records_per_sec, 1000.0);
        assert_eq!(s.mb_per_sec, 1.0);
        let r = Report {
            mode: Mode::Produce,
            topic: "t".into(),
            partitions: 1,
            record_size: 1000,
            producers: 1,
            consumers: 1,
            acks: "all".into(),
            compression: "none".into(),
            linger_ms: 5,
            batch_size: None,
            idempotence: false,
            target_rate: 0,
            produce: Some(s),
            consume: None,
            ack_latency: None,
            e2e_latency: None,
            first_error: None,
        };
        let text = r.render();
        assert!(text.contains("produce  2000     1.0   1000"), "{text}");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["produce"]["records"], 2000);
        assert_eq!(v["mode"], "produce");
    }
}

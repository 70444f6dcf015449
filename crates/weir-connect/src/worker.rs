//! Running tasks: each task on a thread of its own with its own Kafka
//! clients (librdkafka), as Kafka's worker does.
//!
//! Source tasks: poll, convert, produce; under exactly-once support each
//! poll's records and the new source offsets go in one transaction (the
//! transactional id `<group>-<connector>-<task>` fences a task's previous
//! incarnation), otherwise offsets are written after the producer has
//! flushed the records they cover, every `offset.flush.interval.ms`.
//! Offsets a task gives without a record are committed at once, the same
//! way.
//!
//! Sink tasks: a consumer in group `connect-<connector>`, records converted
//! and given to `put`; every `offset.flush.interval.ms` (and at stop) the
//! task flushes and the consumer commits the offsets its `pre_commit`
//! returns, with the task's commit metadata. Conversion and transform
//! failures, and records the task reports it could not deliver (Kafka's
//! `ErrantRecordReporter`, stage `TASK_PUT`), follow `errors.tolerance`
//! and go to the dead-letter queue with Kafka's `__connect.errors.*`
//! headers when one is set; the queue's writes are acknowledged before
//! the consumer commits offsets past the records they carry.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header as KHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{list, with_prefix, WorkerConfig};
use crate::connector::{
    ErrantRecord, OffsetReader, Plugin, Props, SinkOffsets, SinkRecord, SourceRecord,
};
use crate::converter::{make_converter, Converter};
use crate::data::SchemaAndValue;
use crate::error::{ConnectError, Result};
use crate::json::Json;
use crate::protocol::Work;
use crate::storage::offset_key;

/// What tasks and connectors report to the herder, for the status topic.
#[derive(Debug, Clone)]
pub enum StatusUpdate {
    /// A state change (`RUNNING`, `PAUSED`, `FAILED`, ...).
    State {
        work: Work,
        state: &'static str,
        trace: Option<String>,
    },
    /// A topic the connector used for the first time (KIP-558).
    Topic {
        connector: String,
        task: i32,
        topic: String,
    },
}

/// A running task.
#[derive(Debug)]
pub struct TaskHandle {
    stop: Arc<AtomicBool>,
    pub paused: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TaskHandle {
    /// Asks the task to stop and waits for it (it commits what it can).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Whether the thread has ended (the task failed or finished).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

/// Everything a task thread needs.
#[derive(Clone)]
pub struct TaskContext {
    pub worker: Arc<WorkerConfig>,
    pub connector: String,
    pub task: i32,
    pub plugin: Plugin,
    /// The connector's config (converters, errors.*, overrides).
    pub connector_config: Props,
    pub task_config: Props,
    pub status: mpsc::UnboundedSender<StatusUpdate>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskContext({}-{})", self.connector, self.task)
    }
}

impl TaskContext {
    fn report(&self, state: &'static str, trace: Option<String>) {
        let _ = self.status.send(StatusUpdate::State {
            work: Work::Task(self.connector.clone(), self.task),
            state,
            trace,
        });
    }

    /// Reports `topic` once per task run.
    fn used_topic(&self, seen: &mut std::collections::HashSet<String>, topic: &str) {
        if !seen.contains(topic) {
            seen.insert(topic.to_string());
            let _ = self.status.send(StatusUpdate::Topic {
                connector: self.connector.clone(),
                task: self.task,
                topic: topic.to_string(),
            });
        }
    }

    fn converter(&self, which: &str) -> Result<Arc<dyn Converter>> {
        let key = format!("{which}.converter");
        let (class, settings) = match self.connector_config.get(&key) {
            Some(c) => (
                c.clone(),
                with_prefix(&self.connector_config, &format!("{key}.")),
            ),
            None => (
                self.worker
                    .props
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| "org.apache.kafka.connect.json.JsonConverter".into()),
                with_prefix(&self.worker.props, &format!("{key}.")),
            ),
        };
        make_converter(&class, &settings, which == "key")
    }

    /// The client overrides this worker's policy refuses, each as
    /// `key: error`. Validation refused them already, but a connector
    /// created before a stricter policy was set still has them: Kafka's
    /// worker checks again when it starts a task and fails the task.
    fn refused_overrides(&self) -> Vec<String> {
        let sink = self.plugin.kind == crate::connector::ConnectorType::Sink;
        self.worker
            .override_policy
            .check(&self.connector_config, sink)
            .into_iter()
            .filter_map(|(k, _, e)| e.map(|e| format!("{k}: {e}")))
            .collect()
    }

    /// Client overrides from the connector config (`producer.override.*`,
    /// `consumer.override.*`), which the override policy allowed at
    /// validation.
    fn overrides(&self, kind: &str) -> Props {
        with_prefix(&self.connector_config, &format!("{kind}.override."))
            .into_iter()
            .filter(|(k, _)| crate::config::RDKAFKA_PASSTHROUGH.contains(&k.as_str()))
            .collect()
    }

    fn tolerate_all(&self) -> bool {
        self.connector_config
            .get("errors.tolerance")
            .map(String::as_str)
            == Some("all")
    }
}

/// `errors.retry.timeout` and `errors.retry.delay.max.ms`: a task's poll
/// or put that fails with a retriable error is tried again with a delay
/// that starts at 300 ms and doubles up to the maximum, until the timeout
/// (0: never, -1: forever); then `errors.tolerance` decides.
#[derive(Debug, Clone, Copy)]
struct Retry {
    timeout: Option<Duration>,
    max_delay: Duration,
}

/// What a retried operation ended with.
enum Retried<T> {
    Done(T),
    /// Retries ran out on a retriable failure: the tolerance decides.
    GaveUp(ConnectError),
}

impl Retry {
    fn from_config(p: &Props) -> Result<Self> {
        let timeout = crate::config::prop_i64(p, "errors.retry.timeout", 0)?;
        let max = crate::config::prop_i64(p, "errors.retry.delay.max.ms", 60_000)?;
        Ok(Self {
            timeout: (timeout >= 0).then(|| Duration::from_millis(timeout as u64)),
            max_delay: Duration::from_millis(max.max(0) as u64),
        })
    }

    fn enabled(&self) -> bool {
        self.timeout != Some(Duration::ZERO)
    }

    /// Runs `op` until it succeeds, fails for good, runs out of retries
    /// or the task is stopped (which answers the last failure).
    fn run<T>(
        &self,
        ctx: &TaskContext,
        stop: &AtomicBool,
        mut op: impl FnMut() -> Result<T>,
    ) -> Result<Retried<T>> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(300);
        loop {
            match op() {
                Ok(v) => return Ok(Retried::Done(v)),
                Err(e @ ConnectError::Retriable { .. }) => {
                    let left = self.timeout.map(|t| t.saturating_sub(started.elapsed()));
                    if left.is_some_and(|l| l.is_zero()) || stop.load(Ordering::SeqCst) {
                        return Ok(Retried::GaveUp(e));
                    }
                    let wait = delay.min(self.max_delay).min(left.unwrap_or(Duration::MAX));
                    warn!(connector = %ctx.connector, task = ctx.task, error = %e, ?wait, "retrying a retriable failure");
                    ctx.metrics.retried(&ctx.connector, ctx.task);
                    // Sleep in slices so a stop is prompt.
                    let until = Instant::now() + wait;
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
                    }
                    delay = delay.saturating_mul(2);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Starts a task thread.
pub fn start_task(ctx: TaskContext, paused: bool) -> TaskHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(paused));
    let (s, p) = (stop.clone(), paused.clone());
    let name = format!("task-{}-{}", ctx.connector, ctx.task);
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        let result = match ctx.plugin.kind {
            _ if !ctx.refused_overrides().is_empty() => Err(ConnectError::Failed {
                message: format!(
                    "Client Config Overrides not allowed {}",
                    ctx.refused_overrides().join(", ")
                ),
            }),
            crate::connector::ConnectorType::Source => run_source(&ctx, &s, &p),
            crate::connector::ConnectorType::Sink => run_sink(&ctx, &s, &p),
        };
        match result {
            Ok(()) => {}
            // Cut short by a stop (a task giving up its retries): not a
            // failure, and nothing past what was flushed is committed.
            Err(e) if s.load(Ordering::SeqCst) => {
                info!(connector = %ctx.connector, task = ctx.task, error = %e, "task stopped before finishing its work");
            }
            Err(e) => {
                warn!(connector = %ctx.connector, task = ctx.task, error = %e, "task failed");
                ctx.metrics.task_failed(&ctx.connector, ctx.task);
                ctx.report("FAILED", Some(trace(&e)));
            }
        }
    });
    TaskHandle {
        stop,
        paused,
        thread: thread.ok(),
    }
}

/// A Java-style trace for a failure, as Kafka's status records carry.
pub fn trace(e: &ConnectError) -> String {
    let class = match e {
        ConnectError::Data { .. } => "org.apache.kafka.connect.errors.DataException",
        ConnectError::Retriable { .. } => "org.apache.kafka.connect.errors.RetriableException",
        _ => "org.apache.kafka.connect.errors.ConnectException",
    };
    match e {
        ConnectError::Authorization { message, cause } => {
            format!("{class}: {message}\nCaused by: {cause}\n")
        }
        _ => format!("{class}: {e}\n"),
    }
}

/// Keeps a source task's first failed delivery. The producer's own error
/// for a failed transaction or flush only counts failures; this names the
/// broker's answer (an ACL denial, say), and without exactly-once it stops
/// offsets being written past records that never arrived.
#[derive(Debug, Default)]
pub struct SourceDelivery {
    failed: Mutex<Option<(String, rdkafka::error::KafkaError)>>,
}

impl rdkafka::ClientContext for SourceDelivery {}

impl ProducerContext for SourceDelivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if failed.is_none() {
                *failed = Some((m.topic().to_string(), e.clone()));
            }
        }
    }
}

impl SourceDelivery {
    /// The first failed delivery as Kafka's worker reports it
    /// ("Unrecoverable exception from producer send callback").
    fn error(&self) -> Option<ConnectError> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let (topic, e) = failed.as_ref()?;
        Some(Self::refused(topic, e))
    }

    /// A record refused for `topic`. librdkafka may refuse it when it is
    /// enqueued (the topic's metadata already says unauthorized); Kafka's
    /// producer reports that through the send callback too, so both read
    /// the same.
    fn refused(topic: &str, e: &rdkafka::error::KafkaError) -> ConnectError {
        const MESSAGE: &str = "Unrecoverable exception from producer send callback";
        match crate::error::authorization_exception(e) {
            Some(class) if class.ends_with(".TopicAuthorizationException") => {
                ConnectError::Authorization {
                    message: MESSAGE.into(),
                    cause: format!("{class}: Not authorized to access topics: [{topic}]"),
                }
            }
            Some(class) => ConnectError::Authorization {
                message: MESSAGE.into(),
                cause: format!("{class}: {e}"),
            },
            None => ConnectError::kafka(format!("{MESSAGE}: delivery to {topic} failed: {e}")),
        }
    }
}

/// Source offsets read from the offset topic.
#[derive(Debug, Default)]
struct Offsets(HashMap<String, serde_json::Value>);

impl OffsetReader for Offsets {
    fn offset(&self, partition: &Json) -> Option<serde_json::Value> {
        self.0.get(&partition.to_text()).cloned()
    }
}

/// Reads the connector's committed source offsets (read_committed) from
/// the start of the offset topic to its end.
fn read_offsets(ctx: &TaskContext) -> Result<Offsets> {
    read_source_offsets(&ctx.worker, &ctx.connector).map(Offsets)
}

/// A connector's committed source offsets (read_committed, the offset
/// topic from its start to its end): source partition as JSON text →
/// offset. Blocks.
pub fn read_source_offsets(
    w: &WorkerConfig,
    connector: &str,
) -> Result<HashMap<String, serde_json::Value>> {
    let mut o = Props::new();
    o.insert("group.id".into(), format!("{}-offsets", w.group_id));
    o.insert("enable.auto.commit".into(), "false".into());
    o.insert("enable.partition.eof".into(), "true".into());
    o.insert("isolation.level".into(), "read_committed".into());
    let consumer: BaseConsumer<Quiet> = w.rdkafka("consumer.", &o).create_with_context(Quiet)?;
    let md = consumer.fetch_metadata(Some(&w.offset_topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    for t in md.topics() {
        for p in t.partitions() {
            let (low, high) =
                consumer.fetch_watermarks(&w.offset_topic, p.id(), Duration::from_secs(10))?;
            if high > low {
                tpl.add_partition_offset(&w.offset_topic, p.id(), Offset::Beginning)?;
                remaining += 1;
            }
        }
    }
    let mut out = HashMap::new();
    if remaining == 0 {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let prefix = Json::Arr(vec![Json::str(connector)]).to_text();
    let prefix = &prefix[..prefix.len() - 1];
    let deadline = Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        if Instant::now() > deadline {
            return Err(ConnectError::kafka("timed out reading the offset topic"));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                if !key.starts_with(prefix) {
                    continue;
                }
                let Ok(serde_json::Value::Array(parts)) = serde_json::from_str(key) else {
                    continue;
                };
                let [_, partition] = parts.as_slice() else {
                    continue;
                };
                let pkey = Json::from_serde(partition).to_text();
                match m.payload().and_then(|v| serde_json::from_slice(v).ok()) {
                    Some(v) => {
                        out.insert(pkey, v);
                    }
                    None => {
                        out.remove(&pkey);
                    }
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => remaining -= 1,
            Some(Err(e)) => warn!(error = %e, "reading the offset topic"),
        }
    }
    Ok(out)
}

fn run_source(ctx: &TaskContext, stop: &AtomicBool, paused: &AtomicBool) -> Result<()> {
    let w = &ctx.worker;
    let key_conv = ctx.converter("key")?;
    let value_conv = ctx.converter("value")?;
    let chain = crate::transforms::Chain::from_config(&ctx.connector_config)?;
    let eos = w.exactly_once_source
        && ctx
            .connector_config
            .get("exactly.once.support")
            .map(String::as_str)
            != Some("unsupported");
    let mut o = ctx.overrides("producer");
    o.insert("enable.idempotence".into(), "true".into());
    o.insert("acks".into(), "all".into());
    o.entry("linger.ms".into()).or_insert_with(|| "5".into());
    if eos {
        o.insert(
            "transactional.id".into(),
            task_transactional_id(w, &ctx.connector, ctx.task),
        );
    }
    let producer: ThreadedProducer<SourceDelivery> = w
        .rdkafka("producer.", &o)
        .create_with_context(SourceDelivery::default())?;
    if eos {
        // Fences the task's previous incarnation and aborts its open
        // transaction before we read the offsets it committed.
        producer.init_transactions(Duration::from_secs(60))?;
    }
    let offsets = read_offsets(ctx)?;
    let mut task = (ctx.plugin.source_task.ok_or_else(|| {
        ConnectError::bad_config(format!("{} has no source task", ctx.plugin.class))
    })?)();
    task.start(&ctx.task_config, &offsets)?;
    // What the task recorded at start is durable before it runs.
    let marks = task.offsets_without_records();
    if !marks.is_empty() {
        let mut at_start: BTreeMap<String, (Json, Json)> = marks
            .into_iter()
            .map(|(p, o)| (p.to_text(), (p, o)))
            .collect();
        let committed = if eos {
            producer
                .begin_transaction()
                .map_err(ConnectError::from)
                .and_then(|()| commit_txn(ctx, &producer, &mut at_start))
        } else {
            flush_offsets(ctx, &producer, &mut at_start)
        };
        if let Err(e) = committed.and_then(|()| task.commit()) {
            task.stop();
            if eos {
                let _ = producer.abort_transaction(Duration::from_secs(10));
            }
            return Err(e);
        }
    }
    ctx.report("RUNNING", None);
    info!(connector = %ctx.connector, task = ctx.task, eos, "source task running");
    let mut was_paused = false;
    let mut pending: BTreeMap<String, (Json, Json)> = BTreeMap::new();
    let mut topics_seen = std::collections::HashSet::new();
    // A transaction spans polls for up to this long (Kafka's
    // `transaction.boundary=interval`), so commits cost little per record.
    let boundary = Duration::from_millis(
        crate::config::prop_i64(
            &ctx.connector_config,
            "transaction.boundary.interval.ms",
            200,
        )?
        .max(0) as u64,
    );
    let retry = Retry::from_config(&ctx.connector_config)?;
    let mut in_txn = false;
    let mut txn_started = Instant::now();
    let mut last_flush = Instant::now();
    let result = (|| -> Result<()> {
        while !stop.load(Ordering::SeqCst) {
            if paused.load(Ordering::SeqCst) {
                if !was_paused {
                    ctx.report("PAUSED", None);
                    was_paused = true;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if was_paused {
                ctx.report("RUNNING", None);
                was_paused = false;
            }
            let records = match retry.run(ctx, stop, || task.poll())? {
                Retried::Done(r) => r,
                Retried::GaveUp(e) if ctx.tolerate_all() => {
                    ctx.metrics.record_error(&ctx.connector, ctx.task);
                    warn!(connector = %ctx.connector, task = ctx.task, error = %e, "error handler skipped a failed poll (TASK_POLL)");
                    continue;
                }
                Retried::GaveUp(e) => return Err(tolerance_exceeded(ctx, &e)),
            };
            let marks = task.offsets_without_records();
            if records.is_empty() && marks.is_empty() {
                if in_txn {
                    commit_txn(ctx, &producer, &mut pending)?;
                    in_txn = false;
                    task.commit()?;
                } else if !eos
                    && !pending.is_empty()
                    && last_flush.elapsed() >= w.offset_flush_interval
                {
                    flush_offsets(ctx, &producer, &mut pending)?;
                    last_flush = Instant::now();
                }
                continue;
            }
            if eos && !in_txn {
                producer.begin_transaction()?;
                in_txn = true;
                txn_started = Instant::now();
            }
            let n = records.len();
            for r in records {
                let SourceRecord {
                    source_partition,
                    source_offset,
                    record,
                } = r;
                let record = match chain.apply(record, None) {
                    Ok(Some(r)) => r,
                    // Filtered: its offset still counts as processed.
                    Ok(None) => {
                        pending.insert(
                            source_partition.to_text(),
                            (source_partition, source_offset),
                        );
                        continue;
                    }
                    Err(e) if ctx.tolerate_all() => {
                        ctx.metrics.record_error(&ctx.connector, ctx.task);
                        warn!(connector = %ctx.connector, task = ctx.task, error = %e, "error handler skipped a record (TRANSFORMATION)");
                        pending.insert(
                            source_partition.to_text(),
                            (source_partition, source_offset),
                        );
                        continue;
                    }
                    Err(e) => return Err(tolerance_exceeded(ctx, &e)),
                };
                let key = key_conv.serialize(&record.topic, &record.key)?;
                let value = value_conv.serialize(&record.topic, &record.value)?;
                let headers = encode_headers(&record.headers);
                let mut br: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&record.topic);
                if let Some(k) = &key {
                    br = br.key(k.as_slice());
                }
                if let Some(v) = &value {
                    br = br.payload(v.as_slice());
                }
                if let Some(p) = record.partition {
                    br = br.partition(p);
                }
                if let Some(ts) = record.timestamp {
                    br = br.timestamp(ts);
                }
                if let Some(h) = headers {
                    br = br.headers(h);
                }
                send(&producer, br).map_err(|e| {
                    match crate::error::authorization_exception(&e) {
                        Some(_) => SourceDelivery::refused(&record.topic, &e),
                        None => e.into(),
                    }
                })?;
                ctx.used_topic(&mut topics_seen, &record.topic);
                pending.insert(
                    source_partition.to_text(),
                    (source_partition, source_offset),
                );
            }
            if n > 0 {
                ctx.metrics
                    .source_polled(&ctx.connector, ctx.task, n as u64);
            }
            // An offset without a record is committed at once: the task
            // waits for it before acting on what it records.
            let urgent = !marks.is_empty();
            for (partition, offset) in marks {
                pending.insert(partition.to_text(), (partition, offset));
            }
            if in_txn && (urgent || txn_started.elapsed() >= boundary) {
                commit_txn(ctx, &producer, &mut pending)?;
                in_txn = false;
                task.commit()?;
            } else if !eos && (urgent || last_flush.elapsed() >= w.offset_flush_interval) {
                flush_offsets(ctx, &producer, &mut pending)?;
                task.commit()?;
                last_flush = Instant::now();
            }
        }
        if in_txn {
            commit_txn(ctx, &producer, &mut pending)?;
        }
        if !eos {
            flush_offsets(ctx, &producer, &mut pending)?;
        }
        Ok(())
    })();
    task.stop();
    // A failed commit or flush because a record was refused: the refusal
    // is the cause worth reporting. The commit can return before the
    // producer's polling thread has handed over the refused record's
    // delivery report, so wait a moment for it (before an abort purges
    // the rest).
    let result = result.map_err(|e| {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(refused) = producer.context().error() {
                break refused;
            }
            if Instant::now() >= deadline {
                break e;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    if eos && result.is_err() {
        let _ = producer.abort_transaction(Duration::from_secs(10));
    }
    result
}

/// Ends the open transaction with the offsets of what it holds.
fn commit_txn(
    ctx: &TaskContext,
    producer: &ThreadedProducer<SourceDelivery>,
    pending: &mut BTreeMap<String, (Json, Json)>,
) -> Result<()> {
    write_offsets(ctx, producer, pending)?;
    let started = Instant::now();
    producer.commit_transaction(Duration::from_secs(60))?;
    ctx.metrics
        .offset_commit(&ctx.connector, ctx.task, started.elapsed());
    Ok(())
}

/// Non-transactional commit: every record acknowledged, then the offsets.
fn flush_offsets(
    ctx: &TaskContext,
    producer: &ThreadedProducer<SourceDelivery>,
    pending: &mut BTreeMap<String, (Json, Json)>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    producer.flush(Duration::from_secs(60))?;
    if let Some(e) = producer.context().error() {
        return Err(e);
    }
    write_offsets(ctx, producer, pending)?;
    producer.flush(Duration::from_secs(60))?;
    if let Some(e) = producer.context().error() {
        return Err(e);
    }
    ctx.metrics
        .offset_commit(&ctx.connector, ctx.task, started.elapsed());
    Ok(())
}

fn write_offsets(
    ctx: &TaskContext,
    producer: &ThreadedProducer<SourceDelivery>,
    pending: &mut BTreeMap<String, (Json, Json)>,
) -> Result<()> {
    for (_, (partition, offset)) in std::mem::take(pending) {
        let key = offset_key(&ctx.connector, &partition);
        let value = offset.to_text();
        let r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&ctx.worker.offset_topic)
            .key(key.as_slice())
            .payload(value.as_bytes());
        send(producer, r)?;
    }
    Ok(())
}

/// A source task's transactional id under exactly-once support (Kafka's
/// `<group.id>-<connector>-<task>`).
pub fn task_transactional_id(w: &WorkerConfig, connector: &str, task: i32) -> String {
    format!("{}-{connector}-{task}", w.group_id)
}

/// Changes a stopped source connector's offsets under exactly-once
/// support, as Kafka's worker does (KIP-875 with KIP-618): first fences
/// the transactional id of each of its `tasks` (InitProducerId bumps the
/// epoch, so a zombie task's producer can neither write nor commit again
/// and its open transaction is aborted), then, with task 0's id, reads
/// the offsets (for a reset: every partition the connector has), lets
/// `check` vouch for them, and writes them in one transaction.
pub fn alter_source_offsets_fenced(
    w: &WorkerConfig,
    connector: &str,
    connector_config: &Props,
    tasks: usize,
    change: Option<Vec<crate::connector::OffsetChange>>,
    check: impl FnOnce(&[crate::connector::OffsetChange]) -> Result<bool>,
) -> Result<bool> {
    let failed = |e: ConnectError| {
        ConnectError::failed(format!(
            "Failed to modify offsets for source connector {connector}: {e}"
        ))
    };
    let mut o: Props = with_prefix(connector_config, "producer.override.")
        .into_iter()
        .filter(|(k, _)| crate::config::RDKAFKA_PASSTHROUGH.contains(&k.as_str()))
        .collect();
    o.insert("enable.idempotence".into(), "true".into());
    o.insert("acks".into(), "all".into());
    let mut writer = None;
    for task in (0..tasks.max(1) as i32).rev() {
        o.insert(
            "transactional.id".into(),
            task_transactional_id(w, connector, task),
        );
        let p: ThreadedProducer<DefaultProducerContext> = w
            .rdkafka("producer.", &o)
            .create()
            .map_err(|e| failed(e.into()))?;
        p.init_transactions(Duration::from_secs(60))
            .map_err(|e| failed(e.into()))?;
        writer = Some(p);
    }
    let producer = writer.ok_or_else(|| ConnectError::failed("no task to fence"))?;
    let offsets = match change {
        Some(c) => c,
        None => read_source_offsets(w, connector)
            .map_err(failed)?
            .into_keys()
            .filter_map(|p| serde_json::from_str(&p).ok())
            .map(|p| (p, None))
            .collect(),
    };
    let complete = check(&offsets)?;
    if offsets.is_empty() {
        return Ok(complete);
    }
    let write = || -> Result<()> {
        producer.begin_transaction()?;
        for (partition, offset) in &offsets {
            let key = offset_key(connector, &Json::from_serde(partition));
            let value = offset.as_ref().map(|o| Json::from_serde(o).to_text());
            let mut r: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&w.offset_topic).key(key.as_slice());
            if let Some(v) = &value {
                r = r.payload(v.as_bytes());
            }
            send(&producer, r)?;
        }
        producer.commit_transaction(Duration::from_secs(60))?;
        Ok(())
    };
    write().map_err(failed)?;
    Ok(complete)
}

/// Enqueues, waiting while librdkafka's queue is full.
fn send<C: ProducerContext<DeliveryOpaque = ()> + 'static>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), rdkafka::error::KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn encode_headers(headers: &[crate::connector::Header]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut out = OwnedHeaders::new_with_capacity(headers.len());
    for h in headers {
        let bytes = header_bytes(&h.value);
        out = out.insert(KHeader {
            key: &h.key,
            value: bytes.as_deref(),
        });
    }
    Some(out)
}

/// Header values as Kafka's SimpleHeaderConverter writes the common cases:
/// strings as UTF-8, other values as their JSON text.
fn header_bytes(v: &SchemaAndValue) -> Option<Vec<u8>> {
    match &v.value {
        crate::data::Value::Null => None,
        crate::data::Value::String(s) => Some(s.clone().into_bytes()),
        crate::data::Value::Bytes(b) => Some(b.clone()),
        other => Some(crate::converter::java_to_string(other).into_bytes()),
    }
}

/// Kafka's error-handling stages, as DLQ headers name them.
#[derive(Debug, Clone, Copy)]
enum Stage {
    KeyConverter,
    ValueConverter,
    Transformation,
    TaskPut,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
        }
    }
}

fn run_sink(ctx: &TaskContext, stop: &Arc<AtomicBool>, paused: &AtomicBool) -> Result<()> {
    let w = &ctx.worker;
    let key_conv = ctx.converter("key")?;
    let value_conv = ctx.converter("value")?;
    let chain = crate::transforms::Chain::from_config(&ctx.connector_config)?;
    let topics = list(&ctx.connector_config, "topics");
    if topics.is_empty() {
        return Err(ConnectError::bad_config("sink connectors need `topics`"));
    }
    let mut o = ctx.overrides("consumer");
    o.insert("group.id".into(), format!("connect-{}", ctx.connector));
    o.insert("enable.auto.commit".into(), "false".into());
    o.entry("auto.offset.reset".into())
        .or_insert_with(|| "earliest".into());
    // A restarted task takes over its partitions at once instead of after
    // the dead incarnation's session times out.
    o.insert(
        "group.instance.id".into(),
        format!("{}-{}-{}", w.group_id, ctx.connector, ctx.task),
    );
    o.entry("session.timeout.ms".into())
        .or_insert_with(|| "10000".into());
    let consumer: BaseConsumer<Quiet> = w.rdkafka("consumer.", &o).create_with_context(Quiet)?;
    let dlq = Dlq::new(ctx)?;
    let mut task = (ctx.plugin.sink_task.ok_or_else(|| {
        ConnectError::bad_config(format!("{} has no sink task", ctx.plugin.class))
    })?)();
    task.watch_stop(stop.clone());
    task.start(&ctx.task_config)?;
    task.restore(committed_metadata(&consumer, &topics)?.as_deref())?;
    let mut errant = Errant {
        ctx,
        dlq: dlq.as_ref(),
        reader: None,
        key_conv: key_conv.clone(),
        value_conv: value_conv.clone(),
    };
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs)?;
    ctx.report("RUNNING", None);
    info!(connector = %ctx.connector, task = ctx.task, "sink task running");
    let retry = Retry::from_config(&ctx.connector_config)?;
    let mut offsets: SinkOffsets = SinkOffsets::new();
    let mut dirty = false;
    let mut last_commit = Instant::now();
    let mut was_paused = false;
    let mut topics_seen = std::collections::HashSet::new();
    let result = (|| -> Result<()> {
        while !stop.load(Ordering::SeqCst) {
            if paused.load(Ordering::SeqCst) != was_paused {
                was_paused = !was_paused;
                let assignment = consumer.assignment()?;
                if was_paused {
                    consumer.pause(&assignment)?;
                    ctx.report("PAUSED", None);
                } else {
                    consumer.resume(&assignment)?;
                    ctx.report("RUNNING", None);
                }
            }
            let mut batch = Vec::new();
            let poll_until = Instant::now() + Duration::from_millis(200);
            while batch.len() < 500 {
                let left = poll_until.saturating_duration_since(Instant::now());
                let m = match consumer.poll(left.min(Duration::from_millis(100))) {
                    None => break,
                    Some(Ok(m)) => m,
                    // A topic not created yet: wait for it, as Kafka's
                    // consumer does.
                    Some(Err(e)) if transient(&e) => break,
                    Some(Err(e)) => return Err(e.into()),
                };
                offsets.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                dirty = true;
                let topic = m.topic();
                ctx.used_topic(&mut topics_seen, topic);
                let key = key_conv
                    .deserialize(topic, m.key())
                    .map_err(|e| (Stage::KeyConverter, e));
                let value = key.and_then(|k| {
                    value_conv
                        .deserialize(topic, m.payload())
                        .map(|v| (k, v))
                        .map_err(|e| (Stage::ValueConverter, e))
                });
                match value {
                    Ok((key, value)) => {
                        let mut record = crate::connector::ConnectRecord::new(topic, value);
                        record.key = key;
                        record.partition = Some(m.partition());
                        record.timestamp = m.timestamp().to_millis();
                        if let Some(hs) = m.headers() {
                            for h in hs.iter() {
                                record.headers.push(crate::connector::Header {
                                    key: h.key.to_string(),
                                    value: SchemaAndValue::schemaless(match h.value {
                                        Some(v) => crate::data::Value::String(
                                            String::from_utf8_lossy(v).into_owned(),
                                        ),
                                        None => crate::data::Value::Null,
                                    }),
                                });
                            }
                        }
                        match chain.apply(record, Some(m.offset())) {
                            Ok(Some(record)) => batch.push(SinkRecord {
                                record,
                                kafka_offset: m.offset(),
                                original_topic: topic.to_string(),
                                original_partition: m.partition(),
                            }),
                            Ok(None) => {}
                            Err(e) => {
                                handle_error(ctx, &m, Stage::Transformation, &e, dlq.as_ref())?
                            }
                        }
                    }
                    Err((stage, e)) => handle_error(ctx, &m, stage, &e, dlq.as_ref())?,
                }
            }
            if !batch.is_empty() {
                let n = batch.len() as u64;
                // A retry needs the records again; copied only when
                // retries are on.
                let outcome = if retry.enabled() {
                    retry.run(ctx, stop, || task.put(batch.clone()))?
                } else {
                    retry.run(ctx, stop, || task.put(std::mem::take(&mut batch)))?
                };
                // What the task gave up on, reported before anything else
                // happens (Kafka's reporter fails the task at once under
                // `errors.tolerance=none`).
                errant.report(task.errant_records())?;
                match outcome {
                    Retried::Done(()) => ctx.metrics.sink_written(&ctx.connector, ctx.task, n),
                    // Stopping mid-retry: the batch is neither delivered nor
                    // skipped, so its offsets must not be committed.
                    Retried::GaveUp(e) if stop.load(Ordering::SeqCst) => return Err(e),
                    Retried::GaveUp(e) if ctx.tolerate_all() => {
                        for _ in 0..n {
                            ctx.metrics.record_error(&ctx.connector, ctx.task);
                        }
                        warn!(connector = %ctx.connector, task = ctx.task, records = n, error = %e, "error handler skipped a failed put (TASK_PUT)");
                    }
                    Retried::GaveUp(e) => return Err(tolerance_exceeded(ctx, &e)),
                }
            }
            if dirty && last_commit.elapsed() >= w.offset_flush_interval {
                // A task that committed less (records in open files) is
                // asked again next interval, so it can finish them on time.
                dirty = !commit(ctx, &consumer, task.as_mut(), &offsets, &mut errant)?;
                last_commit = Instant::now();
            }
        }
        if dirty {
            commit(ctx, &consumer, task.as_mut(), &offsets, &mut errant)?;
        }
        Ok(())
    })();
    task.stop();
    result
}

/// The task failure Kafka reports when `errors.tolerance=none` meets an
/// error.
fn tolerance_exceeded(ctx: &TaskContext, e: &ConnectError) -> ConnectError {
    ConnectError::Connector {
        connector: ctx.connector.clone(),
        message: format!(
            "Tolerance exceeded in error handler\nCaused by: {}",
            trace(e).trim_end()
        ),
    }
}

/// A record that failed a stage: fail the task, or skip it (logged, to
/// the DLQ) under `errors.tolerance=all`.
fn handle_error(
    ctx: &TaskContext,
    m: &rdkafka::message::BorrowedMessage<'_>,
    stage: Stage,
    e: &ConnectError,
    dlq: Option<&Dlq>,
) -> Result<()> {
    ctx.metrics.record_error(&ctx.connector, ctx.task);
    if !ctx.tolerate_all() {
        return Err(tolerance_exceeded(ctx, e));
    }
    if ctx
        .connector_config
        .get("errors.log.enable")
        .map(String::as_str)
        == Some("true")
    {
        warn!(connector = %ctx.connector, task = ctx.task, stage = stage.name(), topic = m.topic(), partition = m.partition(), offset = m.offset(), error = %e, "error handler skipped a record");
    }
    if let Some(d) = dlq {
        d.send(ctx, &Raw::of(m), stage, e)?;
        ctx.metrics.dead_lettered(&ctx.connector, ctx.task);
    }
    Ok(())
}

/// A consumed record's bytes as read, for the dead-letter queue.
#[derive(Debug, Clone)]
struct Raw {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Raw {
    fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        Self {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Records a sink task reports it could not deliver (Kafka's
/// `WorkerErrantRecordReporter`): the tolerance, the log and the
/// dead-letter queue. The queue gets each record as it is in Kafka, read
/// back by offset (errant records are rare, so nothing is kept for them
/// meanwhile); one that cannot be read back any more (deleted by
/// retention) is converted back from what the task reported, as Kafka
/// does for records it did not make.
struct Errant<'a> {
    ctx: &'a TaskContext,
    dlq: Option<&'a Dlq>,
    /// Reads records back by offset; made at the first need.
    reader: Option<BaseConsumer<Quiet>>,
    key_conv: Arc<dyn Converter>,
    value_conv: Arc<dyn Converter>,
}

impl Errant<'_> {
    fn report(&mut self, records: Vec<ErrantRecord>) -> Result<()> {
        let ctx = self.ctx;
        let Some((_, first)) = records.first() else {
            return Ok(());
        };
        if !ctx.tolerate_all() {
            ctx.metrics.record_error(&ctx.connector, ctx.task);
            return Err(tolerance_exceeded(ctx, first));
        }
        let log = ctx
            .connector_config
            .get("errors.log.enable")
            .map(String::as_str)
            == Some("true");
        for (r, e) in &records {
            ctx.metrics.record_error(&ctx.connector, ctx.task);
            if log {
                warn!(connector = %ctx.connector, task = ctx.task, stage = Stage::TaskPut.name(), topic = %r.original_topic, partition = r.original_partition, offset = r.kafka_offset, error = %e, "error handler skipped a record the task could not deliver");
            }
        }
        let Some(d) = self.dlq else { return Ok(()) };
        let mut wanted: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
        for (r, _) in &records {
            wanted
                .entry((r.original_topic.clone(), r.original_partition))
                .or_default()
                .push(r.kafka_offset);
        }
        let mut found: HashMap<(String, i32, i64), Raw> = HashMap::new();
        for ((topic, partition), mut offsets) in wanted {
            offsets.sort_unstable();
            offsets.dedup();
            for raw in self.read_back(&topic, partition, &offsets)? {
                found.insert((topic.clone(), partition, raw.offset), raw);
            }
        }
        for (r, e) in records {
            let key = (
                r.original_topic.clone(),
                r.original_partition,
                r.kafka_offset,
            );
            let raw = match found.remove(&key) {
                Some(raw) => raw,
                None => Raw {
                    topic: r.original_topic.clone(),
                    partition: r.original_partition,
                    offset: r.kafka_offset,
                    key: self.key_conv.serialize(&r.record.topic, &r.record.key)?,
                    payload: self
                        .value_conv
                        .serialize(&r.record.topic, &r.record.value)?,
                    headers: r
                        .record
                        .headers
                        .iter()
                        .map(|h| (h.key.clone(), header_bytes(&h.value)))
                        .collect(),
                },
            };
            d.send(ctx, &raw, Stage::TaskPut, &e)?;
            ctx.metrics.dead_lettered(&ctx.connector, ctx.task);
        }
        Ok(())
    }

    /// The records of `topic`/`partition` at `offsets` (sorted), as they
    /// are in Kafka; those no longer there are left out.
    fn read_back(&mut self, topic: &str, partition: i32, offsets: &[i64]) -> Result<Vec<Raw>> {
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return Ok(Vec::new());
        };
        let reader = match self.reader.take() {
            Some(r) => r,
            None => {
                let mut o = self.ctx.overrides("consumer");
                o.insert(
                    "group.id".into(),
                    format!("connect-{}-errant-reader", self.ctx.connector),
                );
                o.insert("enable.auto.commit".into(), "false".into());
                self.ctx
                    .worker
                    .rdkafka("consumer.", &o)
                    .create_with_context(Quiet)?
            }
        };
        let reader = self.reader.insert(reader);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(first))?;
        reader.assign(&tpl)?;
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while out.len() < offsets.len() && Instant::now() < deadline {
            match reader.poll(Duration::from_millis(200)) {
                None => {}
                Some(Ok(m)) => {
                    if m.offset() > last {
                        break;
                    }
                    if offsets.binary_search(&m.offset()).is_ok() {
                        out.push(Raw::of(&m));
                    }
                }
                Some(Err(e)) if transient(&e) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Waits until the queue has acknowledged every record sent to it;
    /// fails if any was refused, so no offset moves past a record that is
    /// neither delivered nor dead-lettered.
    fn flush(&self) -> Result<()> {
        let Some(d) = self.dlq else { return Ok(()) };
        d.producer.flush(Duration::from_secs(60))?;
        let failed = d.producer.context().failed.swap(0, Ordering::SeqCst);
        if failed > 0 {
            let last = d
                .producer
                .context()
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            return Err(ConnectError::kafka(format!(
                "{failed} record(s) could not be written to the dead-letter queue `{}`: {last}",
                d.topic
            )));
        }
        Ok(())
    }
}

/// Consumer errors that resolve by themselves.
fn transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e {
        rdkafka::error::KafkaError::PartitionEOF(_) => true,
        rdkafka::error::KafkaError::MessageConsumption(c) => matches!(
            c,
            C::UnknownTopicOrPartition
                | C::UnknownTopic
                | C::UnknownPartition
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::BrokerTransportFailure
                | C::AllBrokersDown
        ),
        _ => false,
    }
}

/// A librdkafka context that logs client errors at `warn` (librdkafka's
/// default is `error`), and end-of-partition events not at all: the
/// internal topic readers ask for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::types::RDKafkaErrorCode as C;
        match error.rdkafka_error_code() {
            Some(C::PartitionEOF) => {}
            // Subscribed topics that do not exist yet are waited for.
            Some(C::UnknownTopicOrPartition) | Some(C::UnknownTopic) => {
                tracing::debug!(%error, reason, "librdkafka")
            }
            _ => warn!(%error, reason, "librdkafka"),
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

/// Flush, then commit what the task says is safe, with its metadata;
/// answers whether that was everything consumed.
fn commit(
    ctx: &TaskContext,
    consumer: &BaseConsumer<Quiet>,
    task: &mut dyn crate::connector::SinkTask,
    offsets: &SinkOffsets,
    errant: &mut Errant<'_>,
) -> Result<bool> {
    let started = Instant::now();
    let safe = task.pre_commit(offsets)?;
    errant.report(task.errant_records())?;
    errant.flush()?;
    let metadata = task.commit_metadata();
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in &safe {
        let mut e = tpl.add_partition(t, *p);
        e.set_offset(Offset::Offset(*o))?;
        if let Some(m) = &metadata {
            e.set_metadata(m.clone());
        }
    }
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    // Lag against the high watermarks, asked for once per commit.
    let lag_max = offsets
        .iter()
        .filter_map(|((t, p), next)| {
            let (_, high) = consumer
                .fetch_watermarks(t, *p, Duration::from_secs(1))
                .ok()?;
            (high >= 0).then(|| (high - next).max(0))
        })
        .max()
        .unwrap_or(0);
    ctx.metrics.sink_lag(&ctx.connector, ctx.task, lag_max);
    ctx.metrics
        .offset_commit(&ctx.connector, ctx.task, started.elapsed());
    Ok(safe == *offsets)
}

/// The commit metadata of any partition of `topics` (every partition's
/// commit carries the same), so the task can restore its own state.
fn committed_metadata(consumer: &BaseConsumer<Quiet>, topics: &[String]) -> Result<Option<String>> {
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10))?;
        for mt in md.topics() {
            for p in mt.partitions() {
                tpl.add_partition(t, p.id());
            }
        }
    }
    if tpl.count() == 0 {
        return Ok(None);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| e.metadata().to_string())
        .filter(|m| !m.is_empty())
        .max_by_key(|m| m.len()))
}

/// The dead-letter queue of a sink connector.
struct Dlq {
    topic: String,
    context_headers: bool,
    producer: ThreadedProducer<DlqDelivery>,
}

/// Counts the queue's refused writes (Kafka only logs them; here they
/// fail the task before its offsets move).
#[derive(Default)]
struct DlqDelivery {
    failed: AtomicU64,
    last_error: Mutex<String>,
}

impl rdkafka::ClientContext for DlqDelivery {}

impl ProducerContext for DlqDelivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut last) = self.last_error.lock() {
                *last = e.to_string();
            }
        }
    }
}

impl Dlq {
    fn new(ctx: &TaskContext) -> Result<Option<Self>> {
        let Some(topic) = ctx
            .connector_config
            .get("errors.deadletterqueue.topic.name")
            .filter(|t| !t.trim().is_empty())
        else {
            return Ok(None);
        };
        let mut o = ctx.overrides("producer");
        o.insert("acks".into(), "all".into());
        Ok(Some(Self {
            topic: topic.trim().to_string(),
            context_headers: ctx
                .connector_config
                .get("errors.deadletterqueue.context.headers.enable")
                .map(String::as_str)
                == Some("true"),
            producer: ctx
                .worker
                .rdkafka("producer.", &o)
                .create_with_context(DlqDelivery::default())?,
        }))
    }

    fn send(&self, ctx: &TaskContext, m: &Raw, stage: Stage, e: &ConnectError) -> Result<()> {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &m.headers {
            headers = headers.insert(KHeader {
                key,
                value: value.as_deref(),
            });
        }
        if self.context_headers {
            let class = match e {
                ConnectError::Data { .. } => "org.apache.kafka.connect.errors.DataException",
                ConnectError::Retriable { .. } => {
                    "org.apache.kafka.connect.errors.RetriableException"
                }
                _ => "org.apache.kafka.connect.errors.ConnectException",
            };
            let failing = match stage {
                Stage::KeyConverter | Stage::ValueConverter => {
                    let k = if matches!(stage, Stage::KeyConverter) {
                        "key.converter"
                    } else {
                        "value.converter"
                    };
                    ctx.connector_config
                        .get(k)
                        .or_else(|| ctx.worker.props.get(k))
                        .cloned()
                        .unwrap_or_else(|| "org.apache.kafka.connect.json.JsonConverter".into())
                }
                // Kafka names the failing transform's class; the chain's
                // aliases are what this worker knows here.
                Stage::Transformation => ctx
                    .connector_config
                    .get("transforms")
                    .cloned()
                    .unwrap_or_default(),
                // As Kafka's errant record reporter names it.
                Stage::TaskPut => "org.apache.kafka.connect.sink.SinkTask".to_string(),
            };
            let pairs = [
                ("__connect.errors.topic", m.topic.clone()),
                ("__connect.errors.partition", m.partition.to_string()),
                ("__connect.errors.offset", m.offset.to_string()),
                ("__connect.errors.connector.name", ctx.connector.clone()),
                ("__connect.errors.task.id", ctx.task.to_string()),
                ("__connect.errors.stage", stage.name().to_string()),
                ("__connect.errors.class.name", failing),
                ("__connect.errors.exception.class.name", class.to_string()),
                ("__connect.errors.exception.message", e.to_string()),
                ("__connect.errors.exception.stacktrace", trace(e)),
            ];
            for (k, v) in pairs {
                headers = headers.insert(KHeader {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
        }
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic).headers(headers);
        if let Some(k) = &m.key {
            r = r.key(k.as_slice());
        }
        if let Some(v) = &m.payload {
            r = r.payload(v.as_slice());
        }
        Ok(send(&self.producer, r)?)
    }
}

/// Tasks of one connector share nothing; this keeps the handles.
pub type Tasks = Mutex<BTreeMap<Work, TaskHandle>>;

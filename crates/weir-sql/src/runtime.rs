//! The Kafka side: running a planned query as a Kafka client.
//!
//! A persistent query is one thread with a consumer (read_committed,
//! partitions assigned, offsets in the query's group) and a transactional
//! producer. Each batch is one transaction: the output records, the
//! changelog records of its state and the consumed offsets
//! (`send_offsets_to_transaction`), as Kafka Streams' `exactly_once_v2`
//! does. On start, state is rebuilt from the changelog (aggregations) or
//! by replaying the table's topic up to the committed offsets (joins, and
//! an aggregated table's rows), so
//! a `kill -9` at any point resumes from the last committed transaction.
//!
//! Records of several partitions are processed in timestamp order: the
//! next record is the earliest head among the partitions, once every
//! partition has one buffered or the consumer has caught up. Whether it
//! has caught up comes from the end offsets librdkafka learns from its
//! fetch responses (its statistics), as Kafka Streams uses the lag its
//! consumer knows: asking the broker (ListOffsets) each time a buffer ran
//! dry kept query threads waiting on the answers most of the time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::error::{Result, SqlError};
use crate::format::{windowed_key, Codec, WindowType};
use crate::plan::{Op, Plan};
use crate::processing_log::ProcessingLog;
use crate::task::{Effects, InRecord, OutRow, Task};

/// Kafka client settings shared by every client the server makes.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `bootstrap.servers` and any client property (security, timeouts).
    pub client: BTreeMap<String, String>,
}

impl KafkaSettings {
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }

    pub fn bootstrap(&self) -> String {
        self.client
            .get("bootstrap.servers")
            .cloned()
            .unwrap_or_default()
    }
}

fn kerr(op: &str) -> impl Fn(KafkaError) -> SqlError + '_ {
    move |e| SqlError::kafka(op, e)
}

/// Topic administration through librdkafka's admin API and metadata.
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin")
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a blocking librdkafka call. On a runtime worker the worker is
/// handed over first: inside `weir serve` the broker that must answer the
/// call runs on the same runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Admin {
    pub fn new(settings: &KafkaSettings) -> Result<Admin> {
        Ok(Admin {
            client: settings
                .config()
                .create()
                .map_err(kerr("create admin client"))?,
        })
    }

    /// Partition counts of every topic.
    pub fn topics(&self) -> Result<BTreeMap<String, i32>> {
        let md = blocking(|| self.client.inner().fetch_metadata(None, TIMEOUT))
            .map_err(kerr("Metadata"))?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    /// The partition count of a topic, or `None` if it does not exist.
    /// (Metadata for every topic: asking for one topic by name would make
    /// a broker with `auto.create.topics.enable` create it.)
    pub fn partitions(&self, topic: &str) -> Result<Option<i32>> {
        Ok(self.topics()?.get(topic).copied().filter(|n| *n > 0))
    }

    /// Creates a topic (no error if it exists with that many partitions).
    pub async fn create(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let mut nt = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
        for (k, v) in configs {
            nt = nt.set(k, v);
        }
        let res = self
            .client
            .create_topics([&nt], &AdminOptions::new().operation_timeout(Some(TIMEOUT)))
            .await
            .map_err(kerr("CreateTopics"))?;
        for r in res {
            if let Err((name, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(SqlError::kafka("CreateTopics", format!("{name}: {code}")));
                }
            }
        }
        Ok(())
    }

    pub async fn delete(&self, topics: &[&str]) -> Result<()> {
        let res = self
            .client
            .delete_topics(
                topics,
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
            .map_err(kerr("DeleteTopics"))?;
        for r in res {
            if let Err((name, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Err(SqlError::kafka("DeleteTopics", format!("{name}: {code}")));
                }
            }
        }
        Ok(())
    }
}

/// Kafka's default partitioner: murmur2 of the key bytes, positive, modulo
/// the partition count (so rows land where Java producers put them).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let seed: u32 = 0x9747_b28c;
    let len = data.len();
    let mut h: u32 = seed ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Where a persistent query writes.
#[derive(Debug, Clone)]
pub struct Sink {
    pub topic: String,
    pub partitions: i32,
    pub key_codec: Codec,
    pub value_codec: Codec,
    pub window: Option<WindowType>,
}

/// A serialized row: partition, key and value.
pub type Encoded = (i32, Option<Vec<u8>>, Option<Vec<u8>>);

impl Sink {
    /// Serializes a row.
    pub fn encode(&self, row: &OutRow) -> Result<Encoded> {
        let inner = self.key_codec.try_encode(&row.key)?;
        let partition = inner
            .as_deref()
            .map_or(0, |k| partition_for(k, self.partitions));
        let key = match (row.window, self.window) {
            (Some(w), Some(t)) => Some(windowed_key(inner, w, t == WindowType::Session)),
            _ => inner,
        };
        let value = match &row.value {
            Some(v) => self.value_codec.try_encode(v)?,
            None => None,
        };
        Ok((partition, key, value))
    }
}

/// Live counters of a running query.
#[derive(Debug, Default)]
pub struct QueryStats {
    pub processed: AtomicU64,
    pub skipped: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Set once state is restored and the query consumes.
    pub running: AtomicBool,
}

/// A handle on a running query thread.
#[derive(Debug)]
pub struct QueryHandle {
    pub stop: Arc<AtomicBool>,
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub task: Arc<Mutex<Task>>,
    pub stats: Arc<QueryStats>,
    /// An aggregation: pull queries read its state. (Known without
    /// locking the task, which the query thread holds while it works.)
    pub materialized: bool,
}

impl QueryHandle {
    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a query thread needs.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub id: String,
    pub plan: Plan,
    /// Input topics with partition counts, in plan input order.
    pub inputs: Vec<(String, i32)>,
    pub group_id: String,
    pub settings: KafkaSettings,
    /// `auto.offset.reset` for inputs without a committed offset.
    pub offset_reset: String,
}

/// Where a query's rows go.
#[derive(Debug, Clone)]
pub enum Output {
    /// A persistent query: transactions into a topic, state in a changelog.
    Topic {
        sink: Sink,
        changelog: Option<String>,
        transactional_id: String,
        /// Undeserializable records are also logged here, in the batch's
        /// transaction.
        processing_log: Option<ProcessingLog>,
    },
    /// A push query: rows to the client until it goes away.
    Channel(tokio::sync::mpsc::Sender<OutRow>),
}

/// Starts a query thread.
pub fn start(spec: QuerySpec, output: Output) -> QueryHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let materialized = spec.plan.is_aggregate();
    let task = Arc::new(Mutex::new(Task::new(spec.plan.clone())));
    let stats = Arc::new(QueryStats::default());
    let (s2, t2, st2) = (stop.clone(), task.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name(format!("query-{}", spec.id))
        .spawn(move || {
            let mut backoff = Duration::from_millis(200);
            while !s2.load(Ordering::SeqCst) {
                match run(&spec, &output, &s2, &t2, &st2) {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(query = %spec.id, error = %e, "query failed; restarting from its last commit");
                        *st2.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                        st2.running.store(false, Ordering::SeqCst);
                        let until = Instant::now() + backoff;
                        while Instant::now() < until && !s2.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
        .ok();
    QueryHandle {
        stop,
        thread,
        task,
        stats,
        materialized,
    }
}

fn lock(task: &Mutex<Task>) -> std::sync::MutexGuard<'_, Task> {
    task.lock().unwrap_or_else(|p| p.into_inner())
}

/// A buffered message.
struct Msg {
    input: usize,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// What a query's consumer last heard of an input partition, from its
/// statistics: (end offset for read_committed — the last stable offset —,
/// next offset to fetch, messages prefetched but not yet polled).
type PartitionEnd = (i64, i64, i64);

#[derive(Default)]
struct EndsContext {
    ends: Mutex<HashMap<(String, i32), PartitionEnd>>,
}

impl ClientContext for EndsContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        for (topic, t) in statistics.topics {
            for (p, s) in t.partitions {
                if p < 0 || s.fetch_state != "active" {
                    continue;
                }
                let end = if s.ls_offset >= 0 {
                    s.ls_offset
                } else {
                    s.hi_offset
                };
                if end >= 0 {
                    ends.insert((topic.clone(), p), (end, s.next_offset, s.fetchq_cnt));
                }
            }
        }
    }
}

impl ConsumerContext for EndsContext {}

fn consumer_config(spec: &QuerySpec, with_group: bool) -> ClientConfig {
    let mut c = spec.settings.config();
    c.set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", &spec.offset_reset);
    if with_group {
        c.set("group.id", &spec.group_id);
    } else {
        c.set(
            "group.id",
            format!("{}-{}", spec.group_id, uuid::Uuid::new_v4()),
        );
    }
    c
}

/// Reads a topic from the beginning up to `until` offsets (default: the
/// high watermarks), read_committed, calling `f` for each record.
fn replay(
    spec: &QuerySpec,
    topic: &str,
    partitions: i32,
    until: Option<&HashMap<i32, i64>>,
    stop: &AtomicBool,
    mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> Result<()>,
) -> Result<()> {
    let consumer: BaseConsumer = consumer_config(spec, false)
        .create()
        .map_err(kerr("create restore consumer"))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let end = match until {
            Some(u) => u.get(&p).copied().unwrap_or(0),
            None => {
                consumer
                    .fetch_watermarks(topic, p, TIMEOUT)
                    .map_err(kerr("ListOffsets"))?
                    .1
            }
        };
        if end > 0 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(kerr("assign"))?;
            ends.insert(p, end);
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl).map_err(kerr("assign"))?;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Err(e)) => return Err(SqlError::kafka("restore", e)),
            Some(Ok(m)) => {
                let end = ends.get(&m.partition()).copied();
                if end.is_some_and(|end| m.offset() < end) {
                    f(&m)?;
                }
                if end.is_some_and(|end| m.offset() + 1 >= end) {
                    ends.remove(&m.partition());
                    if ends.is_empty() {
                        return Ok(());
                    }
                }
            }
            None => {
                // Caught up when every partition's position passed its end
                // (transaction markers and aborted records included).
                let pos = consumer.position().map_err(kerr("position"))?;
                let done = ends.iter().all(|(p, end)| {
                    matches!(pos.find_partition(topic, *p).map(|e| e.offset()), Some(Offset::Offset(o)) if o >= *end)
                });
                if done {
                    return Ok(());
                }
            }
        }
    }
}

fn run(
    spec: &QuerySpec,
    output: &Output,
    stop: &AtomicBool,
    task: &Mutex<Task>,
    stats: &QueryStats,
) -> Result<()> {
    let persistent = matches!(output, Output::Topic { .. });
    let consumer: BaseConsumer<EndsContext> = consumer_config(spec, persistent)
        .set("statistics.interval.ms", "100")
        .create_with_context(EndsContext::default())
        .map_err(kerr("create consumer"))?;
    // Committed offsets of the query's group, per input partition.
    let mut committed: Vec<HashMap<i32, i64>> = vec![HashMap::new(); spec.inputs.len()];
    if persistent {
        let mut tpl = TopicPartitionList::new();
        for (topic, n) in &spec.inputs {
            for p in 0..*n {
                tpl.add_partition(topic, p);
            }
        }
        let got = consumer
            .committed_offsets(tpl, TIMEOUT)
            .map_err(kerr("OffsetFetch"))?;
        for (i, (topic, _)) in spec.inputs.iter().enumerate() {
            for e in got.elements_for_topic(topic) {
                if let Offset::Offset(o) = e.offset() {
                    committed[i].insert(e.partition(), o);
                }
            }
        }
    }
    // Rebuild state.
    {
        let mut t = lock(task);
        *t = Task::new(spec.plan.clone());
    }
    if let Output::Topic {
        changelog: Some(cl),
        ..
    } = output
    {
        let partitions = Admin::new(&spec.settings)?.partitions(cl)?.unwrap_or(1);
        replay(spec, cl, partitions, None, stop, |m| {
            lock(task).restore_changelog(m.key().unwrap_or_default(), m.payload())
        })?;
    }
    let table_inputs = spec.plan.table_inputs();
    for input in spec.plan.replayed_inputs() {
        let (topic, n) = &spec.inputs[input];
        let until = committed[input].clone();
        if persistent && !until.is_empty() {
            replay(spec, topic, *n, Some(&until), stop, |m| {
                let rec = InRecord {
                    input,
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(0),
                    key: m.key(),
                    value: m.payload(),
                };
                if let Err(e) = lock(task).restore_table(&rec) {
                    warn!(query = %spec.id, error = %e, "skipping a table record that does not deserialize");
                }
                Ok(())
            })?;
        }
    }
    if matches!(spec.plan.op, Op::TableTable { .. } | Op::TableChain { .. }) && persistent {
        for (input, (topic, n)) in spec.inputs.iter().enumerate() {
            let until = committed[input].clone();
            if until.is_empty() {
                continue;
            }
            replay(spec, topic, *n, Some(&until), stop, |m| {
                let rec = InRecord {
                    input,
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(0),
                    key: m.key(),
                    value: m.payload(),
                };
                if let Err(e) = lock(task).restore_join_record(&rec) {
                    warn!(query = %spec.id, error = %e, "skipping a table record that does not deserialize");
                }
                Ok(())
            })?;
        }
    }
    // Assign every input partition at its committed offset (or the reset
    // policy; a join's table starts from the beginning).
    let mut tpl = TopicPartitionList::new();
    let mut heads: BTreeMap<(usize, i32), VecDeque<Msg>> = BTreeMap::new();
    for (i, (topic, n)) in spec.inputs.iter().enumerate() {
        for p in 0..*n {
            let offset = match committed[i].get(&p) {
                Some(o) => Offset::Offset(*o),
                None if table_inputs.contains(&i) => Offset::Beginning,
                None if spec.offset_reset == "earliest" => Offset::Beginning,
                // `latest` is resolved now, so a query that answered has a
                // fixed starting point.
                None => Offset::Offset(
                    consumer
                        .fetch_watermarks(topic, p, TIMEOUT)
                        .map_err(kerr("ListOffsets"))?
                        .1,
                ),
            };
            tpl.add_partition_offset(topic, p, offset)
                .map_err(kerr("assign"))?;
            heads.insert((i, p), VecDeque::new());
        }
    }
    consumer.assign(&tpl).map_err(kerr("assign"))?;
    let topic_index: HashMap<&str, usize> = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (t.as_str(), i))
        .collect();

    let producer: Option<BaseProducer> = match output {
        Output::Topic {
            transactional_id, ..
        } => {
            let p: BaseProducer = spec
                .settings
                .config()
                .set("transactional.id", transactional_id)
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .set("transaction.timeout.ms", "60000")
                .create()
                .map_err(kerr("create producer"))?;
            p.init_transactions(TIMEOUT)
                .map_err(kerr("InitProducerId"))?;
            Some(p)
        }
        Output::Channel(_) => None,
    };
    stats.running.store(true, Ordering::SeqCst);
    info!(query = %spec.id, "query running");
    let mut in_txn = false;
    let mut positions: HashMap<(usize, i32), i64> = HashMap::new();
    let mut batch_started = Instant::now();
    let mut batch_count = 0usize;
    let mut emitted: u64 = 0;
    let mut blocked_since: Option<Instant> = None;
    let limit = spec.plan.limit;
    loop {
        if stop.load(Ordering::SeqCst) {
            if let Some(p) = &producer {
                if in_txn {
                    let _ = p.abort_transaction(TIMEOUT);
                }
            }
            return Ok(());
        }
        // Fill the per-partition buffers.
        let mut got_any = false;
        for _ in 0..2000 {
            match consumer.poll(if got_any {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            }) {
                None => break,
                Some(Err(e)) => return Err(SqlError::kafka("Fetch", e)),
                Some(Ok(m)) => {
                    got_any = true;
                    let Some(&input) = topic_index.get(m.topic()) else {
                        continue;
                    };
                    let msg = Msg {
                        input,
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp: m.timestamp().to_millis().unwrap_or(0),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                    };
                    if let Some(q) = heads.get_mut(&(input, msg.partition)) {
                        q.push_back(msg);
                    }
                }
            }
        }
        // Merge by timestamp: the next record is the earliest head, once
        // every partition either has one buffered or has nothing more to
        // read (its position at the high watermark of the last fetch, as
        // Kafka Streams decides with max.task.idle.ms=0). A partition
        // whose end is unknown holds the others back at most MAX_IDLE.
        let at_end = partitions_at_end(&consumer, &spec.inputs, &heads);
        let mut fx = Effects::default();
        // The task is locked per chunk of records, not per record; pull
        // queries read it between chunks.
        let mut guard = None;
        loop {
            let waiting = heads
                .iter()
                .any(|(k, q)| q.is_empty() && !at_end.contains(k));
            if waiting {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < MAX_IDLE {
                    break;
                }
            } else {
                blocked_since = None;
            }
            let next = heads
                .iter()
                .filter_map(|(k, q)| q.front().map(|m| (m.timestamp, *k)))
                .min();
            let Some((_, k)) = next else { break };
            let Some(msg) = heads.get_mut(&k).and_then(VecDeque::pop_front) else {
                break;
            };
            if let (Some(p), false) = (&producer, in_txn) {
                p.begin_transaction().map_err(kerr("begin transaction"))?;
                in_txn = true;
                batch_started = Instant::now();
            }
            let rec = InRecord {
                input: msg.input,
                partition: msg.partition,
                offset: msg.offset,
                timestamp: msg.timestamp,
                key: msg.key.as_deref(),
                value: msg.value.as_deref(),
            };
            {
                let t = guard.get_or_insert_with(|| lock(task));
                let before = t.skipped;
                if let Err(e) = t.process(&rec, &mut fx) {
                    t.skipped += 1;
                    t.last_error = Some(e.to_string());
                    *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.to_string());
                    warn!(query = %spec.id, topic = %spec.inputs[msg.input].0, partition = msg.partition, offset = msg.offset, error = %e, "record skipped (processing log)");
                    if let (
                        Output::Topic {
                            processing_log: Some(log),
                            ..
                        },
                        Some(p),
                        SqlError::Serde { .. },
                    ) = (output, &producer, &e)
                    {
                        let target = t.undecodable_part(&rec);
                        let bytes = if target == "key" { rec.key } else { rec.value };
                        let now = now_ms();
                        let event = log.deserialization_error(
                            &spec.id,
                            &spec.inputs[msg.input].0,
                            target,
                            bytes,
                            &e.to_string(),
                            now,
                        );
                        send(p, &log.topic, None, None, Some(&event), now)?;
                    }
                }
                if t.skipped != before {
                    stats
                        .skipped
                        .fetch_add(t.skipped - before, Ordering::Relaxed);
                }
            }
            stats.processed.fetch_add(1, Ordering::Relaxed);
            positions.insert((msg.input, msg.partition), msg.offset + 1);
            batch_count += 1;
            // Short holds: a pull query waits for the lock at most this
            // many records.
            if batch_count % 64 == 0 {
                guard = None;
            }
            match output {
                Output::Topic {
                    sink, changelog, ..
                } => {
                    let p = producer.as_ref().ok_or_else(|| SqlError::Internal {
                        message: "no producer".into(),
                    })?;
                    for row in fx.rows.drain(..) {
                        // A row the sink's schema cannot carry is skipped
                        // and counted, as an undeserializable input is.
                        let (partition, key, value) = match sink.encode(&row) {
                            Ok(parts) => parts,
                            Err(e) => {
                                warn!(query = %spec.id, error = %e, "output row not serializable, skipped");
                                let mut t = lock(task);
                                t.skipped += 1;
                                t.last_error = Some(e.to_string());
                                stats.skipped.fetch_add(1, Ordering::Relaxed);
                                *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(e.to_string());
                                continue;
                            }
                        };
                        send(
                            p,
                            &sink.topic,
                            Some(partition),
                            key.as_deref(),
                            value.as_deref(),
                            row.timestamp,
                        )?;
                    }
                    if let Some(cl) = changelog {
                        for (k, v) in fx.changelog.drain(..) {
                            send(p, cl, None, Some(&k), v.as_deref(), msg.timestamp)?;
                        }
                    }
                }
                Output::Channel(tx) => {
                    fx.changelog.clear();
                    for row in fx.rows.drain(..) {
                        if tx.blocking_send(row).is_err() {
                            return Ok(());
                        }
                        emitted += 1;
                        if limit.is_some_and(|l| emitted >= l) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        drop(guard);
        if let Output::Channel(tx) = output {
            if tx.is_closed() {
                return Ok(());
            }
        }
        let caught_up = !got_any;
        // Commit: every 100 ms or 10,000 records (ksqlDB's commit interval
        // under exactly-once).
        if let Some(p) = &producer {
            if in_txn
                && (batch_count >= 10_000
                    || batch_started.elapsed() >= Duration::from_millis(100)
                    || caught_up)
            {
                if let Output::Topic {
                    changelog: Some(cl),
                    ..
                } = output
                {
                    let mut fx = Effects::default();
                    let st = {
                        let mut t = lock(task);
                        t.checkpoint(&mut fx);
                        t.stream_time
                    };
                    for (k, v) in fx.changelog.drain(..) {
                        send(p, cl, None, Some(&k), v.as_deref(), st.max(0))?;
                    }
                }
                let mut offsets = TopicPartitionList::new();
                for ((input, partition), o) in &positions {
                    offsets
                        .add_partition_offset(
                            &spec.inputs[*input].0,
                            *partition,
                            Offset::Offset(*o),
                        )
                        .map_err(kerr("offsets"))?;
                }
                if offsets.count() > 0 {
                    let gm = consumer
                        .group_metadata()
                        .ok_or_else(|| SqlError::Internal {
                            message: "no group metadata".into(),
                        })?;
                    p.send_offsets_to_transaction(&offsets, &gm, TIMEOUT)
                        .map_err(kerr("send offsets to transaction"))?;
                }
                p.commit_transaction(TIMEOUT)
                    .map_err(kerr("commit transaction"))?;
                in_txn = false;
                batch_count = 0;
            }
            p.poll(Duration::ZERO);
        }
    }
}

/// How long a partition whose end is unknown may hold back the others.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// The input partitions with nothing more to read: empty here, and the
/// consumer's position at (or past) the end offset its last fetch saw (a
/// partition nothing was read from yet: its fetch position, with nothing
/// prefetched).
fn partitions_at_end(
    consumer: &BaseConsumer<EndsContext>,
    inputs: &[(String, i32)],
    heads: &BTreeMap<(usize, i32), VecDeque<Msg>>,
) -> std::collections::HashSet<(usize, i32)> {
    let mut out = std::collections::HashSet::new();
    if heads.values().all(|q| !q.is_empty()) {
        return out;
    }
    let Ok(positions) = consumer.position() else {
        return out;
    };
    let ends = consumer
        .context()
        .ends
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for (&(input, p), q) in heads {
        if !q.is_empty() {
            continue;
        }
        let topic = &inputs[input].0;
        let Some(&(end, next_fetch, prefetched)) = ends.get(&(topic.clone(), p)) else {
            continue;
        };
        let at_end = match positions.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(pos)) => pos >= end,
            _ => prefetched == 0 && next_fetch >= end,
        };
        if at_end {
            out.insert((input, p));
        }
    }
    out
}

/// A pull query on a stream: reads the topic from the beginning up to its
/// end when the scan starts (read_committed), partition by partition, and
/// returns the rows the plan emits, at most `limit`. Records that do not
/// deserialize are skipped, as a push query skips them.
pub fn scan(spec: &QuerySpec, limit: Option<u64>) -> Result<Vec<OutRow>> {
    let mut task = Task::new(spec.plan.clone());
    let mut rows = Vec::new();
    let stop = AtomicBool::new(false);
    let (topic, partitions) = &spec.inputs[0];
    replay(spec, topic, *partitions, None, &stop, |m| {
        let rec = InRecord {
            input: 0,
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or(0),
            key: m.key(),
            value: m.payload(),
        };
        let mut fx = Effects::default();
        if task.process(&rec, &mut fx).is_ok() {
            rows.extend(fx.rows);
        }
        if limit.is_some_and(|l| rows.len() as u64 >= l) {
            stop.store(true, Ordering::SeqCst);
        }
        Ok(())
    })?;
    if let Some(l) = limit {
        rows.truncate(usize::try_from(l).unwrap_or(usize::MAX));
    }
    Ok(rows)
}

/// What `PRINT` asks for.
#[derive(Debug, Clone)]
pub struct PrintSpec {
    pub topic: String,
    pub partitions: i32,
    pub from_beginning: bool,
    /// Every `interval`-th record is printed.
    pub interval: u64,
    pub limit: Option<u64>,
    /// Decodes registry frames (AVRO, PROTOBUF, JSON_SR), when configured.
    pub registry: Option<Arc<crate::registry::Registry>>,
}

/// Starts `PRINT`: a thread reading the topic (read_committed, no group
/// offsets) that sends text lines, the formats first, until `limit`
/// records or until the receiver goes away. Answers once the start
/// offsets are fixed, so records written afterwards are printed.
pub async fn print_topic(
    settings: &KafkaSettings,
    spec: PrintSpec,
) -> Result<tokio::sync::mpsc::Receiver<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(256);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let mut config = settings.config();
    config
        .set(
            "group.id",
            format!("_weir-sql-print-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false");
    std::thread::Builder::new()
        .name(format!("print-{}", spec.topic))
        .spawn(move || {
            let started = (|| -> Result<BaseConsumer> {
                let consumer: BaseConsumer =
                    config.create().map_err(kerr("create print consumer"))?;
                let mut tpl = TopicPartitionList::new();
                for p in 0..spec.partitions {
                    let at = if spec.from_beginning {
                        Offset::Beginning
                    } else {
                        let end = consumer
                            .fetch_watermarks(&spec.topic, p, TIMEOUT)
                            .map_err(kerr("ListOffsets"))?
                            .1;
                        Offset::Offset(end)
                    };
                    tpl.add_partition_offset(&spec.topic, p, at)
                        .map_err(kerr("assign"))?;
                }
                consumer.assign(&tpl).map_err(kerr("assign"))?;
                Ok(consumer)
            })();
            let consumer = match started {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(()));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let (mut seen, mut printed) = (0u64, 0u64);
            let mut schemas = HashMap::new();
            while !tx.is_closed() && spec.limit.is_none_or(|l| printed < l) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        seen += 1;
                        if (seen - 1) % spec.interval.max(1) != 0 {
                            continue;
                        }
                        let mut decode = |bytes: Option<&[u8]>| -> crate::print::Decoded {
                            let (registry, b) = (spec.registry.as_ref()?, bytes?);
                            let (kind, json) = registry.decode_frame(&mut schemas, b)?;
                            Some((kind.name(), json.to_string()))
                        };
                        let (key, value) = (decode(m.key()), decode(m.payload()));
                        if printed == 0 {
                            let head = format!(
                                "{}\n{}",
                                crate::print::format_line("Key", m.key(), &key),
                                crate::print::format_line("Value", m.payload(), &value)
                            );
                            if tx.blocking_send(head).is_err() {
                                return;
                            }
                        }
                        let line = crate::print::record_line(
                            m.timestamp().to_millis().unwrap_or(-1),
                            (m.key(), &key),
                            (m.payload(), &value),
                            m.partition(),
                        );
                        printed += 1;
                        if tx.blocking_send(line).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = tx.blocking_send(format!("error: {e}"));
                        return;
                    }
                    None => {}
                }
            }
        })
        .map_err(|e| SqlError::Internal {
            message: format!("cannot start a thread: {e}"),
        })?;
    ready_rx.await.map_err(|_| SqlError::Internal {
        message: "the PRINT thread ended".into(),
    })??;
    Ok(rx)
}

/// Wall-clock milliseconds (processing-log events carry when they were
/// logged, as ksqlDB's do).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn send(
    p: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    ts: i64,
) -> Result<()> {
    loop {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(ts);
        if let Some(k) = key {
            r = r.key(k);
        }
        if let Some(v) = value {
            r = r.payload(v);
        }
        if let Some(part) = partition {
            r = r.partition(part);
        }
        match p.send(r) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                _,
            )) => {
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(SqlError::kafka("Produce", e)),
        }
    }
}

/// Produces one record and waits for its acknowledgement (INSERT VALUES,
/// the command topic).
pub async fn produce_sync(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: Option<i64>,
) -> Result<(i32, i64)> {
    {
        let mut r: rdkafka::producer::FutureRecord<'_, [u8], [u8]> =
            rdkafka::producer::FutureRecord::to(topic);
        if let Some(k) = &key {
            r = r.key(k.as_slice());
        }
        if let Some(v) = &value {
            r = r.payload(v.as_slice());
        }
        if let Some(p) = partition {
            r = r.partition(p);
        }
        if let Some(t) = ts {
            r = r.timestamp(t);
        }
        producer
            .send(r, TIMEOUT)
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| match e.rdkafka_error_code() {
                // ksqlDB's KsqlTopicAuthorizationException.
                Some(rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed) => {
                    SqlError::Authorization {
                        message: format!("Authorization denied to Write on topic(s): [{topic}]"),
                    }
                }
                _ => SqlError::kafka("Produce", e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's Utils.murmur2 reference values.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }
}

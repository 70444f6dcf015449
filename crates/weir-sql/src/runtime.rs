//! The Kafka side: running a planned query as a Kafka client.
//!
//! A persistent query is split into tasks by input partition when its
//! state allows ([`Plan::partitioned`]), spread over
//! `ksql.streams.num.stream.threads` threads. Each thread has a consumer
//! (read_committed, its tasks' partitions assigned, offsets in the
//! query's group) and a transactional producer. Each batch of a thread is
//! one transaction: the output records, the
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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::error::{Result, SqlError};
use crate::format::{windowed_key, Codec, WindowType};
use crate::plan::{Feed, Op, Plan};
use crate::processing_log::ProcessingLog;
use crate::task::{Effects, InRecord, OutRow, Repartitioned, Task};

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

fn wire_err(op: &str) -> impl Fn(weir_client::ClientError) -> SqlError + Copy + '_ {
    move |e| SqlError::kafka(op, e)
}

/// Topic administration through librdkafka's admin API and metadata.
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    settings: KafkaSettings,
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
            settings: settings.clone(),
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

    /// Per topic, the consumers and consumer groups reading it, as ksqlDB's
    /// `LIST TOPICS EXTENDED` counts them from the admin client's
    /// `listConsumerGroups` and `describeConsumerGroups`: the members'
    /// assignments of every consumer group, classic (DescribeGroups) or
    /// KIP-848 (ConsumerGroupDescribe), a consumer counted once per
    /// partition it is assigned, a group once per topic. librdkafka has no
    /// API for KIP-848 groups, so this goes through Weir's protocol client
    /// with the same settings.
    pub async fn topic_consumers(&self) -> Result<BTreeMap<String, (i32, i32)>> {
        let werr = wire_err("DescribeConsumerGroups");
        let mut admin = self.wire_admin().await.map_err(werr)?;
        let mut counts: BTreeMap<String, (i32, BTreeSet<String>)> = BTreeMap::new();
        for g in admin.list_groups().await.map_err(werr)? {
            if g.protocol_type != "consumer" {
                continue;
            }
            let d = match admin.describe_group(&g.group_id).await {
                Ok(d) => d,
                // GROUP_ID_NOT_FOUND: deleted since it was listed.
                Err(e) if e.code() == Some(69) => continue,
                Err(e) => return Err(werr(e)),
            };
            for m in &d.members {
                for (topic, _) in &m.assignment {
                    let e = counts.entry(topic.clone()).or_default();
                    e.0 += 1;
                    e.1.insert(g.group_id.clone());
                }
            }
        }
        Ok(counts
            .into_iter()
            .map(|(t, (c, gs))| (t, (c, gs.len() as i32)))
            .collect())
    }

    /// A connection of Weir's protocol client, with the server's settings.
    async fn wire_admin(&self) -> weir_client::Result<weir_client::Admin> {
        let config = weir_client::ClientConfig {
            timeout: TIMEOUT,
            client_id: self
                .settings
                .client
                .get("client.id")
                .cloned()
                .unwrap_or_else(|| "weir-sql".into()),
            security: weir_client::ClientSecurity::from_properties(&self.settings.client)?,
        };
        weir_client::Admin::connect_with(&self.settings.bootstrap(), config).await
    }

    /// The committed offsets of `group` and the end offsets of
    /// `partitions` (for EXPLAIN's task metadata).
    pub async fn offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<(BTreeMap<(String, i32), i64>, BTreeMap<(String, i32), i64>)> {
        let werr = wire_err("ListOffsets");
        let mut admin = self.wire_admin().await.map_err(werr)?;
        let committed = admin.committed_offsets(group).await.map_err(werr)?;
        let topics: BTreeSet<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
        let mut end = BTreeMap::new();
        for topic in topics {
            let leaders = admin.partitions(topic).await.map_err(werr)?;
            let answers = admin
                .list_offsets(topic, &leaders, weir_client::LATEST)
                .await
                .map_err(werr)?;
            for (p, answer) in answers {
                if let Ok(o) = answer {
                    end.insert((topic.to_string(), p), o);
                }
            }
        }
        Ok((committed, end))
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
    /// Pull queries waiting for the task: the query thread lets go of it
    /// before its next record.
    pub pulls_waiting: AtomicUsize,
}

/// A query's task: its state, locked by the thread that runs it while it
/// processes records and by pull queries between them.
pub type TaskRef = Arc<Mutex<Task>>;

/// A handle on a running query's threads.
#[derive(Debug)]
pub struct QueryHandle {
    pub stop: Arc<AtomicBool>,
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// One task per input partition number when the plan keeps each
    /// key's state on one partition ([`Plan::partitioned`]), task `p`
    /// owning partition `p` of every input; else one task for all.
    pub tasks: Vec<TaskRef>,
    pub stats: Arc<QueryStats>,
    /// An aggregation: pull queries read its state. (Known without
    /// locking the task, which the query thread holds while it works.)
    pub materialized: bool,
}

impl QueryHandle {
    /// Stops the threads and waits for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
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
    /// How often a persistent query commits its transaction
    /// (`ksql.streams.commit.interval.ms`).
    pub commit_interval: Duration,
    /// A persistent query that re-keys: its repartition topics and
    /// their partition counts, in [`Plan::repartitions`] order.
    pub repartitions: Vec<(String, i32)>,
    /// Per repartition topic, its key codec when the plan's needed a
    /// registry schema of its own (bound when the query started).
    pub repartition_keys: Vec<Option<Codec>>,
    /// How often consumed repartition records are deleted
    /// (`ksql.streams.repartition.purge.interval.ms`).
    pub purge_interval: Duration,
    /// How many tasks: the inputs' partition count when the plan is
    /// [`Plan::partitioned`] and every input, the repartition topic and
    /// the changelog have that many partitions; else 1 (one task reads
    /// every partition).
    pub tasks: usize,
    /// `ksql.streams.num.stream.threads`: threads a persistent query's
    /// tasks are spread over (never more than its tasks).
    pub threads: usize,
    /// How far behind the table's latest time a re-keyed stream–table
    /// join keeps its table's versions (`weir.sql.join.history.retention.ms`).
    pub history_retention_ms: i64,
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

/// Starts a query's threads. Task `p` runs on thread `p % threads`;
/// each thread has its own consumer (its tasks' partitions assigned) and
/// its own transactional producer, so one transaction commits its tasks'
/// outputs, changelog and repartition records and consumed offsets, as
/// Kafka Streams' stream threads do under `exactly_once_v2`. Thread 0
/// keeps the query's transactional id (a transaction a previous run of
/// the query left open is fenced by it); thread `i` uses `<id>-<i>`.
pub fn start(spec: QuerySpec, output: Output) -> QueryHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let materialized = spec.plan.is_aggregate();
    let n = spec.tasks.max(1);
    let tasks: Vec<TaskRef> = (0..n)
        .map(|_| Arc::new(Mutex::new(new_task(&spec, &output))))
        .collect();
    let stats = Arc::new(QueryStats::default());
    // A push query (rows to one client) runs on one thread.
    let threads = match output {
        Output::Topic { .. } => spec.threads.clamp(1, n),
        Output::Channel(_) => 1,
    };
    let spec = Arc::new(spec);
    let mut handles = Vec::new();
    for i in 0..threads {
        let mut output = output.clone();
        if let Output::Topic {
            transactional_id, ..
        } = &mut output
        {
            if i > 0 {
                *transactional_id = format!("{transactional_id}-{i}");
            }
        }
        let worker = Worker {
            tasks: tasks.clone(),
            owned: (0..n).filter(|p| p % threads == i).collect(),
            partitioned: n > 1,
        };
        let (spec, s2, st2) = (spec.clone(), stop.clone(), stats.clone());
        // The thread's index first: the OS keeps 15 bytes of a name.
        let name = if threads == 1 {
            format!("query-{}", spec.id)
        } else {
            format!("q{i}-{}", spec.id)
        };
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut backoff = Duration::from_millis(200);
            while !s2.load(Ordering::SeqCst) {
                match run(&spec, &output, &s2, &worker, &st2) {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(query = %spec.id, thread = i, error = %e, "query failed; restarting from its last commit");
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
        });
        handles.extend(thread.ok());
    }
    QueryHandle {
        stop,
        threads: handles,
        tasks,
        stats,
        materialized,
    }
}

/// The tasks one thread runs.
struct Worker {
    tasks: Vec<TaskRef>,
    /// Indices into `tasks`.
    owned: Vec<usize>,
    /// Task `p` owns partition `p` of every input (else the one task owns
    /// every partition).
    partitioned: bool,
}

impl Worker {
    /// Whether this thread reads input partition `p`.
    fn owns(&self, p: i32) -> bool {
        !self.partitioned || usize::try_from(p).is_ok_and(|p| self.owned.contains(&p))
    }

    /// The task of input partition `p`.
    fn task_of(&self, p: i32) -> usize {
        if self.partitioned {
            usize::try_from(p).unwrap_or(0).min(self.tasks.len() - 1)
        } else {
            0
        }
    }

    /// The changelog partition task `t` writes (and restores from): its
    /// own when partitioned; else left to the producer, as before tasks.
    fn changelog_partition(&self, t: usize) -> Option<i32> {
        self.partitioned.then_some(t as i32)
    }
}

/// Holds task `i`'s lock in `guard`, letting go of another task's first.
fn hold<'g, 't>(
    guard: &'g mut Option<(usize, std::sync::MutexGuard<'t, Task>)>,
    tasks: &'t [TaskRef],
    i: usize,
) -> &'g mut Task {
    if !matches!(guard, Some((j, _)) if *j == i) {
        *guard = None;
    }
    &mut guard.get_or_insert_with(|| (i, lock(&tasks[i]))).1
}

fn lock(task: &Mutex<Task>) -> std::sync::MutexGuard<'_, Task> {
    task.lock().unwrap_or_else(|p| p.into_inner())
}

/// A buffered message: the consumer's own, borrowed until processed
/// rather than copied into owned buffers (two allocations and copies a
/// record saved; `poll` borrows the consumer immutably).
struct Msg<'c> {
    input: usize,
    partition: i32,
    offset: i64,
    timestamp: i64,
    message: BorrowedMessage<'c>,
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

/// The offsets a replay reads of each partition: from `from` (default:
/// the beginning) up to `until` (default: the high watermark).
#[derive(Clone, Copy)]
struct Span<'a> {
    from: Option<&'a HashMap<i32, i64>>,
    until: Option<&'a HashMap<i32, i64>>,
}

impl<'a> Span<'a> {
    const ALL: Self = Span {
        from: None,
        until: None,
    };

    fn until(until: &'a HashMap<i32, i64>) -> Self {
        Span {
            from: None,
            until: Some(until),
        }
    }
}

/// A record's headers as header columns read them: none (and no
/// allocation) when no source of the query declares header columns
/// (`wanted`, [`Plan::reads_headers`]) or the record has none.
fn headers_of<'a>(wanted: bool, m: &'a BorrowedMessage<'_>) -> Vec<(&'a str, Option<&'a [u8]>)> {
    match (wanted, m.headers()) {
        (true, Some(h)) => h.iter().map(|h| (h.key, h.value)).collect(),
        _ => Vec::new(),
    }
}

/// Reads a topic over `span`, read_committed, calling `f` for each
/// record; only the partitions `owns` accepts.
fn replay(
    spec: &QuerySpec,
    topic: &str,
    partitions: i32,
    owns: &dyn Fn(i32) -> bool,
    span: Span<'_>,
    stop: &AtomicBool,
    mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> Result<()>,
) -> Result<()> {
    let consumer: BaseConsumer = consumer_config(spec, false)
        .create()
        .map_err(kerr("create restore consumer"))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in (0..partitions).filter(|p| owns(*p)) {
        let end = match span.until {
            Some(u) => u.get(&p).copied().unwrap_or(0),
            None => {
                consumer
                    .fetch_watermarks(topic, p, TIMEOUT)
                    .map_err(kerr("ListOffsets"))?
                    .1
            }
        };
        let from = span.from.and_then(|f| f.get(&p)).copied();
        if end > from.unwrap_or(0) {
            let start = from.map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(topic, p, start)
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
    worker: &Worker,
    stats: &QueryStats,
) -> Result<()> {
    let persistent = matches!(output, Output::Topic { .. });
    let tasks = worker.tasks.as_slice();
    let headers_wanted = spec.plan.reads_headers();
    // Each repartition topic is read as one more input, after the plan's,
    // and its offsets are committed with theirs.
    let repartitions: &[(String, i32)] = match persistent {
        true => &spec.repartitions,
        false => &[],
    };
    let all_inputs: Vec<(String, i32)> = spec.inputs.iter().chain(repartitions).cloned().collect();
    let first_rekeyed = spec.inputs.len();
    let rekeys = spec.plan.repartitions();
    let is_rekeyed = |i: usize| i >= first_rekeyed;
    let consumer: BaseConsumer<EndsContext> = consumer_config(spec, persistent)
        .set("statistics.interval.ms", "100")
        .create_with_context(EndsContext::default())
        .map_err(kerr("create consumer"))?;
    // The transactional producer first: its InitProducerId aborts a
    // transaction a previous run of this thread left open, whose pending
    // offsets would otherwise hold the committed offsets read next
    // (read_committed asks for stable offsets) until it timed out.
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
                // Nothing reads successful delivery reports (a failed
                // delivery fails the commit); not queueing one per row
                // saves the query thread an event to serve each.
                .set("delivery.report.only.error", "true")
                .set("transaction.timeout.ms", "60000")
                .create()
                .map_err(kerr("create producer"))?;
            p.init_transactions(TIMEOUT)
                .map_err(kerr("InitProducerId"))?;
            Some(p)
        }
        Output::Channel(_) => None,
    };
    // Committed offsets of the query's group, per input partition this
    // thread reads.
    let mut committed: Vec<HashMap<i32, i64>> = vec![HashMap::new(); all_inputs.len()];
    if persistent {
        let mut tpl = TopicPartitionList::new();
        for (topic, n) in &all_inputs {
            for p in (0..*n).filter(|p| worker.owns(*p)) {
                tpl.add_partition(topic, p);
            }
        }
        let got = consumer
            .committed_offsets(tpl, TIMEOUT)
            .map_err(kerr("OffsetFetch"))?;
        for (i, (topic, _)) in all_inputs.iter().enumerate() {
            for e in got.elements_for_topic(topic) {
                if let Offset::Offset(o) = e.offset() {
                    committed[i].insert(e.partition(), o);
                }
            }
        }
    }
    // Rebuild the state of this thread's tasks.
    for &t in &worker.owned {
        *lock(&tasks[t]) = new_task(spec, output);
    }
    let owns = |p: i32| worker.owns(p);
    if let Output::Topic {
        changelog: Some(cl),
        ..
    } = output
    {
        let partitions = Admin::new(&spec.settings)?.partitions(cl)?.unwrap_or(1);
        replay(spec, cl, partitions, &owns, Span::ALL, stop, |m| {
            lock(&tasks[worker.task_of(m.partition())])
                .restore_changelog(m.key().unwrap_or_default(), m.payload())
        })?;
    }
    let table_inputs = spec.plan.table_inputs();
    for input in spec.plan.replayed_inputs() {
        let (topic, n) = &spec.inputs[input];
        let until = committed[input].clone();
        if persistent && !until.is_empty() {
            replay(spec, topic, *n, &owns, Span::until(&until), stop, |m| {
                let rec = InRecord {
                    input,
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(0),
                    key: m.key(),
                    value: m.payload(),
                    headers: &headers_of(headers_wanted, m),
                };
                if let Err(e) = lock(&tasks[worker.task_of(rec.partition)]).restore_table(&rec) {
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
            replay(spec, topic, *n, &owns, Span::until(&until), stop, |m| {
                let rec = InRecord {
                    input,
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(0),
                    key: m.key(),
                    value: m.payload(),
                    headers: &headers_of(headers_wanted, m),
                };
                if let Err(e) =
                    lock(&tasks[worker.task_of(rec.partition)]).restore_join_record(&rec)
                {
                    warn!(query = %spec.id, error = %e, "skipping a table record that does not deserialize");
                }
                Ok(())
            })?;
        }
    }
    // Assign this thread's partitions of every input at the committed
    // offset (or the reset policy; a join's table starts from the
    // beginning).
    let mut tpl = TopicPartitionList::new();
    let mut heads: BTreeMap<(usize, i32), VecDeque<Msg<'_>>> = BTreeMap::new();
    for (i, (topic, n)) in all_inputs.iter().enumerate() {
        for p in (0..*n).filter(|p| worker.owns(*p)) {
            let offset = match committed[i].get(&p) {
                Some(o) => Offset::Offset(*o),
                None if table_inputs.contains(&i) => Offset::Beginning,
                // Everything in a repartition topic was written by this
                // query and is still to be aggregated.
                None if is_rekeyed(i) => Offset::Beginning,
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
    let topic_index: HashMap<&str, usize> = all_inputs
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (t.as_str(), i))
        .collect();

    stats.running.store(true, Ordering::SeqCst);
    info!(query = %spec.id, tasks = ?worker.owned, partitioned = worker.partitioned, "query running");
    let mut in_txn = false;
    let mut positions: HashMap<(usize, i32), i64> = HashMap::new();
    let mut batch_started = Instant::now();
    let mut batch_count = 0usize;
    let mut emitted: u64 = 0;
    let mut blocked_since: Option<Instant> = None;
    let mut in_flight = false;
    let limit = spec.plan.limit;
    let mut purger = match repartitions.is_empty() {
        false => Some(Purger::new(&spec.settings, spec.purge_interval)?),
        true => None,
    };
    let rekeyed_out = RekeyedOut::new(spec, output, repartitions);
    let mut placement_check = worker.partitioned
        && !repartitions.is_empty()
        && matches!(spec.plan.op, Op::StreamTable { .. });
    // The first half: source inputs re-keyed into a repartition topic.
    let fed: Vec<usize> = rekeys
        .iter()
        .filter_map(|r| match r.feed {
            Feed::Input(i) => Some(i),
            Feed::Stage(_) => None,
        })
        .collect();
    // A chain of joins that re-keys: the records that enter the join
    // directly and those read back from another repartition topic wait
    // for the re-keyed rows sent at or before their timestamp to come
    // back, so each row meets the others as of its own time, as the direct
    // join's timestamp merge has it. (A stream–table join waits for
    // nothing: its table is kept as versions, `Task::history`, and a row
    // read back looks it up as of its own time.) `unread` counts the rows sent and not yet
    // read back, by timestamp and merge rank (an input `i` and what it
    // re-keys rank `2 i`, a stage's rows re-keyed for stage `s` rank
    // `2 s - 1`: before the stage's right input, as the direct join has
    // them at once); a held record commits the transaction at once, which
    // makes them readable.
    let join = matches!(spec.plan.op, Op::Joins { .. });
    let rank = |input: usize| match input.checked_sub(first_rekeyed) {
        None => 2 * input,
        Some(j) => match rekeys.get(j).map(|r| r.feed) {
            Some(Feed::Input(i)) => 2 * i,
            Some(Feed::Stage(s)) => 2 * s + 1,
            None => 0,
        },
    };
    let held_inputs: Vec<usize> = match (join, repartitions.is_empty()) {
        (true, false) => (0..all_inputs.len()).filter(|i| !fed.contains(i)).collect(),
        _ => Vec::new(),
    };
    let mut unread = Unread::new();
    // Rows a previous run sent and committed but did not read back are
    // still to come: counted as they were when sent, so a record held for
    // them then is held for them now. Their timestamps are in the records
    // only (a partition's rows are not in timestamp order), so they are
    // read, from the committed offset to the end; this run's producer
    // has aborted whatever the previous run left open.
    if !held_inputs.is_empty() {
        for r in first_rekeyed..all_inputs.len() {
            let (topic, n) = &all_inputs[r];
            let span = Span {
                from: Some(&committed[r]),
                until: None,
            };
            replay(spec, topic, *n, &owns, span, stop, |m| {
                let ts = m.timestamp().to_millis().unwrap_or(0);
                *unread.entry((ts, rank(r), r, m.partition())).or_default() += 1;
                Ok(())
            })?;
        }
        if !unread.is_empty() {
            info!(query = %spec.id, rows = unread.values().sum::<usize>(), "re-keyed rows of a previous run not yet read back");
        }
    }
    // Since when a record has been held with no transaction open, and
    // when the repartition topic's ends were last checked for it.
    let mut held_since: Option<Instant> = None;
    // The earliest count when the last round ended.
    let mut held_for: Option<(i64, usize, usize, i32)> = None;
    let mut checked = Instant::now();
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
                        message: m,
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
        let mut at_end = partitions_at_end(&consumer, &all_inputs, &heads);
        let mut fx = Effects::default();
        // The task is locked per chunk of records, not per record; pull
        // queries read it between chunks.
        let mut guard: Option<(usize, std::sync::MutexGuard<'_, Task>)> = None;
        // Whether a record is held for re-keyed rows (see `held` below):
        // the open transaction is committed as soon as the merge stops,
        // so those rows become readable now rather than at the next
        // commit interval.
        let mut flush = false;
        loop {
            // At equal timestamps the lower rank goes first, as in the
            // timestamp merge. A row read back waits only for other
            // topics' rows (within a topic, the merge orders them), and
            // not for a row queued behind a later one in its partition
            // (that one may be waiting for it: read in partition order,
            // it cannot come first).
            let held = |input: usize, ts: i64| {
                held_inputs.contains(&input)
                    && unread
                        .range(..(ts, rank(input), 0, i32::MIN))
                        .any(|(&(t, r, i, p), _)| {
                            !is_rekeyed(input)
                                || (r != rank(input)
                                    && heads
                                        .get(&(i, p))
                                        .and_then(VecDeque::front)
                                        .is_none_or(|m| m.timestamp <= t))
                        })
            };
            let held_head = || {
                heads
                    .iter()
                    .any(|(&(i, _), q)| q.front().is_some_and(|m| held(i, m.timestamp)))
            };
            let mut waiting = heads
                .iter()
                .any(|(k, q)| q.is_empty() && !at_end.contains(k));
            if waiting && blocked_since.is_none_or(|b| b.elapsed() < MAX_IDLE) {
                // A partition emptied by this merge may be at its end: ask
                // again before waiting a poll for it (not per record once
                // one has held the others back for MAX_IDLE).
                at_end = partitions_at_end(&consumer, &all_inputs, &heads);
                waiting = heads
                    .iter()
                    .any(|(k, q)| q.is_empty() && !at_end.contains(k));
            }
            let holding = heads.values().any(|q| !q.is_empty());
            if !may_merge(&mut blocked_since, waiting, holding, Instant::now()) {
                flush = held_head();
                break;
            }
            let next = heads
                .iter()
                .filter_map(|(k, q)| q.front().map(|m| (m.timestamp, *k)))
                .filter(|(ts, (input, _))| !held(*input, *ts))
                .min();
            let Some((_, k)) = next else {
                flush = held_head();
                break;
            };
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
                key: msg.message.key(),
                value: msg.message.payload(),
                headers: &headers_of(headers_wanted, &msg.message),
            };
            if guard.is_some() && stats.pulls_waiting.load(Ordering::Relaxed) > 0 {
                guard = None;
                let since = Instant::now();
                while stats.pulls_waiting.load(Ordering::Relaxed) > 0
                    && since.elapsed() < PULL_YIELD
                {
                    std::thread::yield_now();
                }
            }
            let ti = worker.task_of(msg.partition);
            {
                let t = hold(&mut guard, tasks, ti);
                let before = t.skipped;
                // A record is processed once it is through the whole query:
                // a re-keyed one when it comes back from the repartition
                // topic (so `messages-processed` reaching the input's size
                // means every record is aggregated).
                let result = if fed.contains(&msg.input) && !repartitions.is_empty() {
                    // A side re-keyed (a join's other inputs are read
                    // directly).
                    let mut out = Vec::new();
                    t.repartition(&rec, &mut out).map(|()| {
                        in_flight = !out.is_empty();
                        fx.rekeyed = out;
                    })
                } else if let Some(j) = msg.input.checked_sub(first_rekeyed) {
                    let at = (msg.timestamp, rank(msg.input), msg.input, msg.partition);
                    if let Some(n) = unread.get_mut(&at) {
                        *n -= 1;
                        if *n == 0 {
                            unread.remove(&at);
                        }
                    }
                    t.process_rekeyed(j, &rec, &mut fx)
                } else {
                    if placement_check && msg.input == 1 {
                        // Split into tasks, a re-keyed join finds a table
                        // row only in the partition the Java client's
                        // partitioner gives its key (where the re-keyed
                        // rows go), as ksqlDB requires: said once.
                        if rec
                            .key
                            .is_some_and(|k| partition_for(k, all_inputs[1].1) != rec.partition)
                        {
                            placement_check = false;
                            warn!(query = %spec.id, topic = %all_inputs[1].0, partition = rec.partition, "a table record is not in the partition the Java client's partitioner gives its key; re-keyed rows for it go to another task and will not meet it (produce the table with the murmur2 partitioner)");
                        }
                    }
                    t.process(&rec, &mut fx)
                };
                // Rows re-keyed by this record, in its transaction.
                let track = join.then_some(&mut unread);
                let result = result.and_then(|()| {
                    rekeyed_out.send(producer.as_ref(), &mut fx.rekeyed, track, rank)
                });
                fx.rekeyed.clear();
                if let Err(e) = result {
                    t.skipped += 1;
                    t.last_error = Some(e.to_string());
                    *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.to_string());
                    warn!(query = %spec.id, topic = %all_inputs[msg.input].0, partition = msg.partition, offset = msg.offset, error = %e, "record skipped (processing log)");
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
                            &all_inputs[msg.input].0,
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
            if !std::mem::take(&mut in_flight) {
                stats.processed.fetch_add(1, Ordering::Relaxed);
            }
            positions.insert((msg.input, msg.partition), msg.offset + 1);
            batch_count += 1;
            // Bounded holds even when no pull query has said it waits.
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
                                let t = hold(&mut guard, tasks, ti);
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
                        let part = worker.changelog_partition(ti);
                        for (k, v) in fx.changelog.drain(..) {
                            send(p, cl, part, Some(&k), v.as_deref(), msg.timestamp)?;
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
        // Caught up after the last commit, the consumer may since have
        // passed the marker that commit wrote to a transactional input (the
        // repartition topic): an offsets-only transaction commits that
        // position, so the group's lag reaches zero.
        if let (Some(p), false, true) = (&producer, in_txn, caught_up) {
            if !passed_markers(&consumer, &all_inputs, &heads, &positions, &committed).is_empty() {
                p.begin_transaction().map_err(kerr("begin transaction"))?;
                in_txn = true;
                batch_started = Instant::now();
            }
        }
        // Commit every commit interval (ksqlDB's 2 s by default), and at
        // once when caught up.
        if let Some(p) = &producer {
            if in_txn && (batch_started.elapsed() >= spec.commit_interval || caught_up || flush) {
                if let Output::Topic {
                    changelog: Some(cl),
                    ..
                } = output
                {
                    for &ti in &worker.owned {
                        let mut fx = Effects::default();
                        let st = {
                            let mut t = lock(&tasks[ti]);
                            t.checkpoint(&mut fx);
                            t.stream_time
                        };
                        let part = worker.changelog_partition(ti);
                        for (k, v) in fx.changelog.drain(..) {
                            send(p, cl, part, Some(&k), v.as_deref(), st.max(0))?;
                        }
                    }
                }
                positions.extend(passed_markers(
                    &consumer,
                    &all_inputs,
                    &heads,
                    &positions,
                    &committed,
                ));
                let mut offsets = TopicPartitionList::new();
                for ((input, partition), o) in &positions {
                    offsets
                        .add_partition_offset(&all_inputs[*input].0, *partition, Offset::Offset(*o))
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
                if let Some(purger) = &mut purger {
                    purger.purge(&all_inputs, first_rekeyed, &positions);
                }
            }
            p.poll(Duration::ZERO);
        }
        // A held record with no transaction open waits only for rows of
        // committed transactions. Once the consumer has read every
        // repartition partition to its end, nothing it counted can still
        // come back: a count left then is stale, and is dropped rather
        // than holding the other side for ever. Checked only after the
        // earliest count has stood for HELD_CHECK: a chain holds some
        // record nearly all the time while its rows go round, and the
        // check asks the broker for every repartition partition's ends.
        let earliest = unread.keys().next().copied();
        let holding = !unread.is_empty()
            && !in_txn
            && earliest == held_for
            && heads
                .iter()
                .any(|((i, _), q)| q.front().is_some_and(|_| held_inputs.contains(i)));
        held_for = earliest;
        if !holding {
            held_since = None;
        } else if held_since.get_or_insert_with(Instant::now).elapsed() >= HELD_CHECK
            && checked.elapsed() >= HELD_CHECK
        {
            checked = Instant::now();
            {
                let behind: Vec<(i32, i64, i64)> = (first_rekeyed..all_inputs.len())
                    .flat_map(|r| {
                        unread_behind(
                            &consumer,
                            &all_inputs[r].0,
                            &heads,
                            r,
                            &positions,
                            &committed[r],
                        )
                    })
                    .collect();
                let (first, rows) = (unread.keys().next(), unread.values().sum::<usize>());
                if behind.is_empty() {
                    warn!(query = %spec.id, rows, earliest = ?first, "re-keyed rows counted but not read back with the repartition topic read to its end; no longer waiting for them");
                    unread.clear();
                } else {
                    warn!(query = %spec.id, rows, earliest = ?first, behind = ?behind, "records held for re-keyed rows not yet read back");
                }
            }
        }
    }
}

/// How long a record is held before the repartition topic's ends are
/// checked (then again at most this often).
const HELD_CHECK: Duration = Duration::from_secs(5);

/// The repartition partitions (of input `r`) the consumer has not read to
/// their high watermark, with its position and the watermark. A
/// partition it has read nothing from in this run has no position: it is
/// at what this run processed of it, else at the committed offset it was
/// assigned from, else (assigned from the beginning) at the log start. A
/// partition whose watermarks are unknown counts as behind.
fn unread_behind(
    consumer: &BaseConsumer<EndsContext>,
    topic: &str,
    heads: &BTreeMap<(usize, i32), VecDeque<Msg<'_>>>,
    r: usize,
    positions: &HashMap<(usize, i32), i64>,
    committed: &HashMap<i32, i64>,
) -> Vec<(i32, i64, i64)> {
    let pos = consumer.position().ok();
    let mut behind = Vec::new();
    for (&(i, p), q) in heads {
        if i != r {
            continue;
        }
        let Ok((low, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) else {
            behind.push((p, -1, i64::MAX));
            continue;
        };
        let at = match pos
            .as_ref()
            .and_then(|t| t.find_partition(topic, p))
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => o,
            _ => positions
                .get(&(i, p))
                .or_else(|| committed.get(&p))
                .copied()
                .unwrap_or(low),
        };
        if !q.is_empty() || at < high {
            behind.push((p, at, high));
        }
    }
    behind
}

/// Re-keyed rows sent and not yet read back, counted by (timestamp, rank,
/// repartition topic input, partition).
type Unread = BTreeMap<(i64, usize, usize, i32), usize>;

/// Where re-keyed rows go: a query's repartition topics, each with its
/// partition count and key format.
struct RekeyedOut<'a> {
    topics: &'a [(String, i32)],
    codecs: Vec<Codec>,
    /// The input number of the first topic (after the plan's inputs).
    first: usize,
}

impl<'a> RekeyedOut<'a> {
    fn new(spec: &QuerySpec, output: &Output, topics: &'a [(String, i32)]) -> Self {
        let codecs = match output {
            Output::Topic { sink, .. } => spec
                .plan
                .repartitions()
                .into_iter()
                .enumerate()
                .map(|(j, r)| match spec.repartition_keys.get(j) {
                    Some(Some(bound)) => bound.clone(),
                    _ => r.key.unwrap_or_else(|| sink.key_codec.clone()),
                })
                .collect(),
            Output::Channel(_) => Vec::new(),
        };
        RekeyedOut {
            topics,
            codecs,
            first: spec.inputs.len(),
        }
    }

    /// Writes re-keyed rows (a source record's, or a join stage's) to
    /// their repartition topics in the open transaction, keyed in the
    /// topic's key format and partitioned with the Java client's
    /// partitioner over the key bytes: for an aggregation, as the sink's
    /// key would be, so each key's aggregate is computed, and lands, on
    /// one partition; for a join, as the join's key format has it, so the
    /// two sides of a key meet on one partition. Each row is counted in
    /// `unread` (by timestamp and the rank of its topic) until read back.
    fn send(
        &self,
        producer: Option<&BaseProducer>,
        rows: &mut Vec<Repartitioned>,
        mut unread: Option<&mut Unread>,
        rank: impl Fn(usize) -> usize,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let p = producer.ok_or_else(|| SqlError::Internal {
            message: "a repartition without a producer".into(),
        })?;
        for r in rows.drain(..) {
            let (Some((topic, partitions)), Some(codec)) =
                (self.topics.get(r.topic), self.codecs.get(r.topic))
            else {
                return Err(SqlError::Internal {
                    message: format!("no repartition topic {}", r.topic),
                });
            };
            let key = codec.try_encode(&r.key)?;
            let partition = key.as_deref().map_or(0, |k| partition_for(k, *partitions));
            send(
                p,
                topic,
                Some(partition),
                key.as_deref(),
                Some(&r.value),
                r.timestamp,
            )?;
            if let Some(u) = unread.as_deref_mut() {
                let input = self.first + r.topic;
                *u.entry((r.timestamp, rank(input), input, partition))
                    .or_default() += 1;
            }
        }
        Ok(())
    }
}

/// Deletes repartition records the query has committed it consumed, as
/// Kafka Streams does (every `repartition.purge.interval.ms`): the topic
/// keeps them forever otherwise (`retention.ms=-1`, so none is lost
/// before it is read).
struct Purger {
    admin: AdminClient<DefaultClientContext>,
    last: Instant,
    interval: Duration,
    purged: HashMap<(usize, i32), i64>,
}

impl Purger {
    fn new(settings: &KafkaSettings, interval: Duration) -> Result<Purger> {
        Ok(Purger {
            admin: settings
                .config()
                .create()
                .map_err(kerr("create admin client"))?,
            last: Instant::now(),
            interval,
            purged: HashMap::new(),
        })
    }

    /// Asks for the deletion of the records before the committed
    /// positions of the repartition topics (`inputs` from `first` on).
    /// The request is sent now; its answer is not awaited (a failed purge
    /// is retried with the next one).
    fn purge(
        &mut self,
        inputs: &[(String, i32)],
        first: usize,
        positions: &HashMap<(usize, i32), i64>,
    ) {
        if self.last.elapsed() < self.interval {
            return;
        }
        self.last = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for (&(i, p), &o) in positions {
            if i >= first
                && self.purged.get(&(i, p)) != Some(&o)
                && tpl
                    .add_partition_offset(&inputs[i].0, p, Offset::Offset(o))
                    .is_ok()
            {
                self.purged.insert((i, p), o);
            }
        }
        if tpl.count() > 0 {
            drop(self.admin.delete_records(&tpl, &AdminOptions::new()));
        }
    }
}

/// How long a query thread waits at most for pull queries to read its
/// task before it takes the task back.
const PULL_YIELD: Duration = Duration::from_millis(2);

/// The input partitions with nothing buffered whose consumer position is
/// past what was last committed (or processed): it has passed transaction
/// markers after its last record. They are committed at that position, as
/// Kafka Streams does.
fn passed_markers(
    consumer: &BaseConsumer<EndsContext>,
    inputs: &[(String, i32)],
    heads: &BTreeMap<(usize, i32), VecDeque<Msg<'_>>>,
    positions: &HashMap<(usize, i32), i64>,
    committed: &[HashMap<i32, i64>],
) -> Vec<((usize, i32), i64)> {
    if heads.values().all(|q| !q.is_empty()) {
        return Vec::new();
    }
    let Ok(pos) = consumer.position() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (&(input, partition), q) in heads {
        if !q.is_empty() {
            continue;
        }
        let Some(Offset::Offset(o)) = pos
            .find_partition(&inputs[input].0, partition)
            .map(|e| e.offset())
        else {
            continue;
        };
        let done = positions
            .get(&(input, partition))
            .or_else(|| committed[input].get(&partition))
            .copied()
            .unwrap_or(-1);
        if o > done {
            out.push(((input, partition), o));
        }
    }
    out
}

/// How long a partition whose end is unknown may hold back the others.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// Whether the merge may go on: when no partition is `waiting` (empty,
/// its end unknown), or once buffered records (`holding`) have been held
/// back for MAX_IDLE. The clock runs only while a record is held: time
/// with nothing buffered at all (a slow first fetch on a loaded machine)
/// must not let the first records that arrive skip a join's table whose
/// first fetch is a moment behind.
fn may_merge(since: &mut Option<Instant>, waiting: bool, holding: bool, now: Instant) -> bool {
    if !waiting || !holding {
        *since = None;
        return !waiting;
    }
    now.duration_since(*since.get_or_insert(now)) >= MAX_IDLE
}

/// The input partitions with nothing more to read: empty here, and the
/// consumer's position at (or past) the end offset its last fetch saw (a
/// partition nothing was read from yet: its fetch position, with nothing
/// prefetched).
fn partitions_at_end(
    consumer: &BaseConsumer<EndsContext>,
    inputs: &[(String, i32)],
    heads: &BTreeMap<(usize, i32), VecDeque<Msg<'_>>>,
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

/// A query's task: through its repartition topics when it writes to a
/// topic and has them, else re-keying in memory (a push query).
fn new_task(spec: &QuerySpec, output: &Output) -> Task {
    match output {
        Output::Topic { .. } if !spec.repartitions.is_empty() => {
            let mut t = Task::through_topics(spec.plan.clone());
            t.history.retention = spec.history_retention_ms;
            t
        }
        _ => Task::new(spec.plan.clone()),
    }
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
    let headers_wanted = spec.plan.reads_headers();
    replay(spec, topic, *partitions, &|_| true, Span::ALL, &stop, |m| {
        let rec = InRecord {
            input: 0,
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or(0),
            key: m.key(),
            value: m.payload(),
            headers: &headers_of(headers_wanted, m),
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
    fn idle_clock_runs_only_while_records_are_held() {
        let t0 = Instant::now();
        let mut since = None;
        // Nothing buffered anywhere for longer than MAX_IDLE: no clock.
        assert!(!may_merge(&mut since, true, false, t0));
        assert!(!may_merge(&mut since, true, false, t0 + 3 * MAX_IDLE));
        // The first records arrive while another partition's end is
        // unknown: held, and the clock starts now.
        let t1 = t0 + 3 * MAX_IDLE;
        assert!(!may_merge(&mut since, true, true, t1));
        assert!(!may_merge(&mut since, true, true, t1 + MAX_IDLE / 2));
        assert!(may_merge(&mut since, true, true, t1 + MAX_IDLE));
        // Nothing waiting: merge, and the clock starts again next time.
        assert!(may_merge(&mut since, false, true, t1 + MAX_IDLE));
        assert!(!may_merge(&mut since, true, true, t1 + 2 * MAX_IDLE));
    }

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

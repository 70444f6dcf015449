//! The engine: partitions whose batches live in intake objects and whose
//! offsets and index live in PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use tokio::sync::{oneshot, watch, Notify};
use tokio_postgres::Client;

use crate::pg_tls::PgTarget;
use tracing::{debug, warn};
use weir_storage::batch::{self, BatchHeader, HEADER_SIZE};
use weir_storage::producer::{
    self, AbortedTxn, BatchMeta, ControlType, ProducerEntry, ProducerStates, Verdict,
};
use weir_storage::{
    AppendInfo, BoxFuture, BrokerAddr, Clock, ClusterLock, JoinRefused, JoinedPartition, Lease,
    LogConfig, LogEngine, LogError, LogOffsets, PartitionLog, ReadLimit, ReadResult, SharedCatalog,
    TimestampOffset, TopicPartition,
};

use crate::error::ClusterError;
use crate::format::{self, Entry};
use crate::schema;

/// How the engine reaches its database and store, and how it gathers.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// A PostgreSQL connection string (`postgres://user@host/db`).
    pub postgres: String,
    /// Where objects go: `s3://bucket/prefix` or `file:///dir`.
    pub object_store: String,
    /// This broker's id, recorded with each object it writes.
    pub node_id: i32,
    /// How long appends gather before one object is written.
    pub flush_ms: u64,
    /// Bytes that make a flush start before the window ends.
    pub flush_bytes: usize,
    /// Upload the next objects while the current one's transaction runs
    /// (the default); off, each object is committed before the next
    /// upload starts (the baseline the pipeline is measured against).
    pub overlap_commits: bool,
    /// Objects being uploaded or waiting for their transaction at once,
    /// about: the memory held is about this many gatherings.
    pub objects_in_flight: usize,
    /// Bytes of recent chunks kept in memory for tail reads.
    pub cache_bytes: usize,
    /// The address clients reach this broker at; with it, the broker
    /// registers and heartbeats in `weir.brokers`.
    pub advertised: Option<(String, i32)>,
    /// A broker that has not heartbeated for this long is out of the
    /// cluster (it heartbeats three times as often).
    pub broker_timeout_ms: u64,
    /// `producer.id.expiration.ms`: an idempotent producer idle this long
    /// loses its stored sequence state, as on one node.
    pub producer_id_expiration_ms: i64,
    /// How long a coordinator lease lasts unless renewed (every
    /// heartbeat). The holder stops serving after two thirds of it
    /// without a renewal, so it has stopped before anyone can take over.
    pub coordinator_lease_ms: u64,
    /// How often the holder of a background job slot runs its jobs
    /// (retention, compaction, the collector).
    pub job_interval_ms: u64,
    /// Background job slots (leases): partitions are spread over them,
    /// and so over the live brokers.
    pub job_slots: i32,
    /// How long an object no index row references is kept before it is
    /// deleted (readers that looked a row up before it went still find
    /// the bytes): Kafka's `log.segment.delete.delay.ms`.
    pub collect_grace_ms: u64,
    /// How old an object in the store that no transaction recorded must
    /// be before the collector takes it; a flush or compaction whose
    /// object's row goes in more than half this long after its upload
    /// began rolls back (it fails instead).
    pub orphan_grace_ms: u64,
    /// Chunks in intake objects committed longer ago than this are
    /// copied into per-partition objects.
    pub compact_after_ms: u64,
    /// Largest per-partition object compaction writes (one chunk more if
    /// a single chunk is larger), and the bytes of chunks the cleaner
    /// reads or rewrites at a time.
    pub compact_object_bytes: usize,
    /// Largest object merging adjacent compacted objects writes (and
    /// holds in memory): the topic's `segment.bytes`, capped by this.
    pub merge_object_bytes: usize,
    /// Bytes of the cleaner's key map (Kafka's
    /// `log.cleaner.dedupe.buffer.size`): a pass maps the dirty records
    /// it fits and cleans up to there.
    pub cleaner_buffer_bytes: usize,
}

impl ClusterConfig {
    /// The defaults for everything but the two locations.
    pub fn new(postgres: impl Into<String>, object_store: impl Into<String>, node_id: i32) -> Self {
        Self {
            postgres: postgres.into(),
            object_store: object_store.into(),
            node_id,
            flush_ms: 25,
            flush_bytes: 4 << 20,
            overlap_commits: true,
            objects_in_flight: 4,
            cache_bytes: 64 << 20,
            advertised: None,
            broker_timeout_ms: 6000,
            producer_id_expiration_ms: 86_400_000,
            coordinator_lease_ms: 15_000,
            job_interval_ms: 30_000,
            job_slots: 4,
            collect_grace_ms: 60_000,
            orphan_grace_ms: 600_000,
            compact_after_ms: 30_000,
            compact_object_bytes: 64 << 20,
            merge_object_bytes: 128 << 20,
            cleaner_buffer_bytes: 16 << 20,
        }
    }
}

/// Wall-clock milliseconds since the epoch.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When an object whose upload starts now must have its row inserted
/// (ms since the epoch, compared with PostgreSQL's clock): half the
/// orphan grace later, so that an upload the collector may take (older
/// than the grace, and whose adopted row it has since deleted) can no
/// longer be recorded even across some clock skew.
pub(crate) fn record_deadline(config: &ClusterConfig) -> i64 {
    wall_ms().saturating_add(i64::try_from(config.orphan_grace_ms / 2).unwrap_or(i64::MAX))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn pg(e: tokio_postgres::Error) -> LogError {
    ClusterError::Postgres(e).into()
}

pub(crate) fn store_err(e: object_store::Error) -> LogError {
    ClusterError::Store(e).into()
}

/// What the engine knows of one partition between database round trips.
#[derive(Debug)]
pub(crate) struct PartState {
    pub(crate) tp: TopicPartition,
    /// `weir.partitions.incarnation` when opened: appends, log start
    /// moves and jobs through this state change the row only while it is
    /// still this one.
    pub(crate) incarnation: i64,
    pub(crate) config: Mutex<LogConfig>,
    pub(crate) offsets: Mutex<Offsets>,
    /// The log end, for long-polling fetches.
    end: watch::Sender<i64>,
    /// Aborted transactions read_committed reads found, by the range
    /// the fetch asks [`PartitionLog::aborted_transactions`] for next.
    aborted: Mutex<HashMap<(i64, i64), Vec<AbortedTxn>>>,
    /// The rows a catch-up read is loading into the cache ahead of the
    /// reader.
    ahead: Mutex<Option<Ahead>>,
}

/// A read-ahead: rows from offset `from` to `until` being loaded into the
/// cache; `done` turns true (or its sender goes) when they are there.
#[derive(Debug)]
struct Ahead {
    from: i64,
    until: i64,
    done: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Offsets {
    pub(crate) log_start: i64,
    pub(crate) log_end: i64,
    pub(crate) size: u64,
    /// The largest leader epoch appended through this broker.
    epoch: i32,
    /// The last stable offset: the first offset of the partition's oldest
    /// open transaction, else the log end.
    last_stable: i64,
    pub(crate) removed: bool,
}

impl PartState {
    fn new(tp: TopicPartition, incarnation: i64, config: LogConfig) -> Self {
        Self {
            tp,
            incarnation,
            config: Mutex::new(config),
            offsets: Mutex::new(Offsets::default()),
            end: watch::channel(0).0,
            aborted: Mutex::new(HashMap::new()),
            ahead: Mutex::new(None),
        }
    }

    /// Moves the known offsets forward (they never move back: commits
    /// and notifications may arrive in any order; a transaction opens at
    /// or after the log end, so the last stable offset never moves back
    /// either). `last_stable` is `None` where the source does not say.
    pub(crate) fn advance(
        &self,
        log_end: i64,
        log_start: i64,
        last_stable: Option<i64>,
        size: Option<u64>,
    ) {
        let mut o = lock(&self.offsets);
        o.log_end = o.log_end.max(log_end);
        o.log_start = o.log_start.max(log_start);
        if let Some(l) = last_stable {
            o.last_stable = o.last_stable.max(l);
        }
        if let Some(s) = size {
            o.size = s;
        }
        let end = o.log_end;
        drop(o);
        self.end.send_if_modified(|e| {
            let moved = *e < end;
            *e = end.max(*e);
            moved
        });
    }

    fn live(&self) -> Result<Offsets, LogError> {
        let o = *lock(&self.offsets);
        if o.removed {
            return Err(LogError::Removed {
                partition: self.tp.to_string(),
            });
        }
        Ok(o)
    }
}

fn log_offsets(o: &Offsets) -> LogOffsets {
    // Every committed offset is durable and readable from any broker, so
    // the high watermark is the log end; the last stable offset is the
    // one the last known commit decided.
    LogOffsets {
        log_start: o.log_start,
        high_watermark: o.log_end,
        last_stable: o.last_stable.min(o.log_end).max(o.log_start),
        log_end: o.log_end,
    }
}

/// One append waiting for the next flush.
struct Pending {
    part: Arc<PartState>,
    chunk: Bytes,
    offset_count: i64,
    max_timestamp: i64,
    log_append_time: i64,
    /// The header of an idempotent or transactional producer's batch, or
    /// of a transaction marker (its only batch), checked against the
    /// producer's state when sequenced.
    producer: Option<BatchHeader>,
    /// For a transaction marker: which one.
    control: Option<ControlType>,
    /// The lease the append was made under (a coordinator partition's
    /// own, or a share lease for share-group state); the commit checks it
    /// is still this broker's at that epoch.
    fence: Option<Lease>,
    /// The lease whose holder's state this append supersedes.
    supersede: Option<Supersede>,
    done: oneshot::Sender<Result<AppendInfo, LogError>>,
}

/// A lease an append supersedes ([`PartitionLog::append_superseding`]):
/// the commit moves its epoch on and notes here the epoch it left and
/// whether a holder's unexpired lease was at it.
#[derive(Clone)]
struct Supersede {
    topic: String,
    partition: i32,
    left: Arc<Mutex<Option<(i64, bool)>>>,
}

/// Coordinator leases: which partitions of the coordinators' topics this
/// broker holds, and who holds the others.
#[derive(Default)]
pub(crate) struct Leases {
    /// Topics led under leases, with their partition counts.
    pub(crate) topics: BTreeMap<String, i32>,
    /// Held leases: epoch, and until when this broker may act on it
    /// without a renewal.
    held: HashMap<(String, i32), (i64, Instant)>,
    /// Held partitions that fell to another broker at the last heartbeat;
    /// released if they still do at the next (one heartbeat of
    /// hysteresis, so brokers' slightly different views do not bounce a
    /// partition).
    leaving: HashSet<(String, i32)>,
    /// The holder of each unexpired lease, as of the last heartbeat.
    holders: HashMap<(String, i32), i32>,
    /// Per topic, the held partitions and epochs.
    watchers: HashMap<String, watch::Sender<BTreeMap<i32, i64>>>,
}

impl Leases {
    pub(crate) fn epoch(&self, topic: &str, partition: i32) -> Option<i64> {
        self.held
            .get(&(topic.to_string(), partition))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(e, _)| *e)
    }

    fn publish(&self) {
        for (topic, tx) in &self.watchers {
            let now = Instant::now();
            let held: BTreeMap<i32, i64> = self
                .held
                .iter()
                .filter(|((t, _), (_, until))| t == topic && *until > now)
                .map(|((_, p), (e, _))| (*p, *e))
                .collect();
            tx.send_if_modified(|cur| {
                if *cur == held {
                    false
                } else {
                    *cur = held;
                    true
                }
            });
        }
    }
}

fn not_coordinator(tp: &TopicPartition) -> LogError {
    LogError::Io {
        path: "cluster storage".into(),
        source: std::io::Error::other(format!(
            "this broker does not hold the coordinator lease of {tp}"
        )),
    }
}

#[derive(Default)]
struct Gather {
    entries: Vec<Pending>,
    bytes: usize,
    since: Option<Instant>,
    closed: bool,
}

/// Recent chunks by partition and base offset, oldest evicted first.
#[derive(Debug, Default)]
struct TailCache {
    chunks: HashMap<(TopicPartition, i64), Bytes>,
    order: VecDeque<(TopicPartition, i64)>,
    bytes: usize,
    limit: usize,
}

impl TailCache {
    fn put(&mut self, tp: &TopicPartition, base: i64, chunk: Bytes) {
        if chunk.len() > self.limit {
            return;
        }
        let key = (tp.clone(), base);
        self.bytes += chunk.len();
        if let Some(old) = self.chunks.insert(key.clone(), chunk) {
            self.bytes -= old.len();
        } else {
            self.order.push_back(key);
        }
        while self.bytes > self.limit {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if let Some(c) = self.chunks.remove(&k) {
                self.bytes -= c.len();
            }
        }
    }

    fn get(&self, tp: &TopicPartition, base: i64) -> Option<Bytes> {
        self.chunks.get(&(tp.clone(), base)).cloned()
    }
}

/// Spaces reconnection attempts while PostgreSQL is unreachable: the
/// first retry after 100 ms, doubling up to 2 s, reset by a success. In
/// between, callers fail at once (a retriable error) instead of each
/// opening a connection to a server that is down.
#[derive(Debug, Default)]
struct Backoff {
    next_try: Option<Instant>,
    delay: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    /// `Err` with the wait left while a retry is not due yet.
    fn check(&self) -> Result<(), Duration> {
        match self.next_try {
            Some(t) if Instant::now() < t => Err(t - Instant::now()),
            _ => Ok(()),
        }
    }

    fn failed(&mut self) -> Duration {
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        self.next_try = Some(Instant::now() + self.delay);
        self.delay
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }
}

/// Opens one connection and spawns its driver; the caller gets the
/// client, which reports `is_closed` once the connection is gone.
pub(crate) async fn connect_pg(target: &PgTarget) -> Result<Client, LogError> {
    let (client, conn) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    // An acknowledged append must survive a crash of PostgreSQL. With
    // `synchronous_commit = off` the server answers COMMIT before its WAL
    // is flushed, and a crash loses the last commits: offsets already
    // acknowledged would be handed out again. A server or database
    // default of `off` is raised to `on` for the engine's sessions;
    // `local`, `remote_write` and `remote_apply` are kept as set.
    let row = client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .map_err(pg)?;
    if row.get::<_, String>(0) == "off" {
        client
            .batch_execute("SET synchronous_commit TO on")
            .await
            .map_err(pg)?;
    }
    Ok(client)
}

/// A connection that reconnects on its next use once it has failed,
/// with [`Backoff`] between failed attempts.
pub(crate) struct Db {
    pub(crate) target: PgTarget,
    client: tokio::sync::Mutex<(Option<Arc<Client>>, Backoff)>,
}

impl Db {
    /// The connection, opened if need be. Within a backoff a caller
    /// waits for the next attempt (at most [`Backoff::MAX`], without
    /// holding the lock) and fails if that attempt fails too, so each
    /// caller waits for one attempt at most, and the first request after
    /// the database returns (a topic change, a fetch) succeeds instead of
    /// meeting a retriable error the client may not retry.
    pub(crate) async fn get(&self) -> Result<Arc<Client>, LogError> {
        let mut waited = false;
        loop {
            let mut c = self.client.lock().await;
            if let Some(client) = c.0.as_ref().filter(|c| !c.is_closed()) {
                return Ok(client.clone());
            }
            c.0 = None;
            if let Err(wait) = c.1.check() {
                if waited {
                    return Err(retriable(&format!(
                        "PostgreSQL is unreachable; the next connection attempt is in {} ms",
                        wait.as_millis()
                    )));
                }
                drop(c);
                tokio::time::sleep(wait).await;
                waited = true;
                continue;
            }
            return match connect_pg(&self.target).await {
                Ok(client) => {
                    c.1.succeeded();
                    let client = Arc::new(client);
                    c.0 = Some(client.clone());
                    Ok(client)
                }
                Err(e) => {
                    let delay = c.1.failed();
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot reach PostgreSQL");
                    Err(e)
                }
            };
        }
    }
}

/// What every partition handle and the background tasks share.
pub(crate) struct Shared {
    pub(crate) config: ClusterConfig,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: ObjectPath,
    /// Reads, opens and DeleteRecords.
    pub(crate) db: Db,
    pub(crate) partitions: Mutex<HashMap<TopicPartition, Arc<PartState>>>,
    gather: Mutex<Gather>,
    wake: Notify,
    cache: Mutex<TailCache>,
    /// Intake objects being loaded whole into the cache, by object id;
    /// the value turns true (or its sender goes) when the load is over.
    loading: Mutex<HashMap<i64, watch::Receiver<bool>>>,
    pub(crate) clock: Clock,
    stats: Arc<weir_storage::EngineStats>,
    /// The newest catalog version notified.
    catalog_version: watch::Sender<i64>,
    /// The live brokers, as of the last heartbeat.
    brokers: Mutex<Vec<BrokerAddr>>,
    /// Coordinator leases.
    pub(crate) leases: Mutex<Leases>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node_id", &self.config.node_id)
            .field("store", &self.store.to_string())
            .finish_non_exhaustive()
    }
}

/// The cluster storage engine. Appends from every partition gather for
/// `flush_ms` and go out as one object, then one PostgreSQL transaction
/// gives their batches offsets; reads look the offsets up in the index
/// and fetch byte ranges. Brokers share nothing but the database and the
/// store.
#[derive(Debug)]
pub struct ClusterEngine {
    shared: Arc<Shared>,
    /// The engine's own runtime: its connections and flusher keep running
    /// whatever runtime (or none) the caller blocks.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    flusher_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// The heartbeat and the background jobs, stopped at shutdown before
    /// the leases go (a heartbeat after that would take them back).
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Opens the store a URL names, and the path prefix inside it.
pub fn open_store(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath), ClusterError> {
    let bad = |reason: String| ClusterError::StoreUrl {
        url: url.to_string(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    match parsed.scheme() {
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|()| bad("not a local path".into()))?;
            std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
            Ok((Arc::new(fs), ObjectPath::default()))
        }
        "s3" => {
            // Endpoint, region and credentials come from the usual AWS
            // environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
            // AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP).
            //
            // Bounded retries and request time: during an outage of the
            // store a flush fails (its produces get a retriable error)
            // within about 10 s rather than after the client's default
            // 3 minutes of retries, far beyond any producer's request
            // timeout, while a short hiccup is still retried unseen.
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(object_store::RetryConfig {
                    backoff: object_store::BackoffConfig::default(),
                    max_retries: 4,
                    retry_timeout: Duration::from_secs(10),
                })
                .with_client_options(
                    object_store::ClientOptions::new()
                        .with_timeout(Duration::from_secs(10))
                        .with_connect_timeout(Duration::from_secs(3)),
                );
            // (The options above replace those read from the environment.)
            //
            // Payloads go unsigned unless AWS_UNSIGNED_PAYLOAD says
            // otherwise: signing one hashes every byte with SHA-256 here
            // and again at the server, which doubled both the broker's
            // and an S3 server's CPU per MB. The bytes stay checked: each
            // record batch carries the CRC-32C consumers verify, an
            // intake object's header has its own, and TLS (an https
            // endpoint) protects them in transit.
            if std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
                b = b.with_unsigned_payload(true);
            }
            if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
                b = b.with_allow_http(true);
            }
            if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                b = b
                    .with_endpoint(endpoint.clone())
                    .with_virtual_hosted_style_request(false)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            let s3 = b.build()?;
            let prefix = ObjectPath::from(parsed.path().trim_matches('/'));
            Ok((Arc::new(s3), prefix))
        }
        other => Err(bad(format!(
            "scheme {other}: use s3://bucket/prefix or file:///directory"
        ))),
    }
}

impl ClusterEngine {
    /// Connects to PostgreSQL and the store, creates the tables if
    /// missing, and starts the flusher and the notification listener.
    pub async fn connect(config: ClusterConfig, clock: Clock) -> Result<Self, ClusterError> {
        // Settings first: an error after the runtime exists would drop it
        // in this async context.
        let (store, prefix) = open_store(&config.object_store)?;
        let target = PgTarget::parse(&config.postgres)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-cluster")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        let shared = Arc::new(Shared {
            store,
            prefix,
            db: Db {
                target,
                client: tokio::sync::Mutex::new((None, Backoff::default())),
            },
            partitions: Mutex::default(),
            gather: Mutex::default(),
            wake: Notify::new(),
            cache: Mutex::new(TailCache {
                limit: config.cache_bytes,
                ..TailCache::default()
            }),
            loading: Mutex::default(),
            clock,
            stats: Arc::default(),
            catalog_version: watch::channel(0).0,
            brokers: Mutex::default(),
            leases: Mutex::default(),
            config,
        });
        let started = Self::start(&shared, &handle).await;
        let (done_rx, background) = match started {
            Ok(started) => started,
            Err(e) => {
                // Dropping a runtime may block, which an async caller
                // must not do.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(Self {
            shared,
            runtime: Mutex::new(Some(runtime)),
            handle,
            flusher_done: Mutex::new(Some(done_rx)),
            background: Mutex::new(background),
        })
    }

    /// Creates the tables if missing and starts the background tasks;
    /// answers the flusher's end signal once this broker listens, and the
    /// heartbeat and job tasks.
    #[allow(clippy::type_complexity)]
    async fn start(
        shared: &Arc<Shared>,
        handle: &tokio::runtime::Handle,
    ) -> Result<
        (
            std::sync::mpsc::Receiver<()>,
            Vec<tokio::task::JoinHandle<()>>,
        ),
        ClusterError,
    > {
        let setup = {
            let shared = shared.clone();
            handle.spawn(async move {
                let client = shared
                    .db
                    .get()
                    .await
                    .map_err(|e| ClusterError::Runtime(e.to_string()))?;
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match client.batch_execute(schema::CREATE).await {
                        Ok(()) => return Ok::<_, ClusterError>(()),
                        // An upgrade's ALTER TABLE may deadlock with
                        // running flushes: PostgreSQL picks one to fail.
                        Err(e)
                            if attempt < 5
                                && e.code()
                                    == Some(
                                        &tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED,
                                    ) =>
                        {
                            let _ = client.batch_execute("ROLLBACK").await;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            })
        };
        setup
            .await
            .map_err(|e| ClusterError::Runtime(e.to_string()))??;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        handle.spawn(flusher(shared.clone(), done_tx));
        let (listening, listens) = oneshot::channel();
        handle.spawn(listener(shared.clone(), listening));
        let mut background = Vec::new();
        if shared.config.advertised.is_some() {
            // The background jobs' slots are leases like the coordinators'.
            lock(&shared.leases).topics.insert(
                crate::jobs::JOBS.to_string(),
                shared.config.job_slots.max(1),
            );
            background.push(handle.spawn(heartbeat(shared.clone())));
            background.push(handle.spawn(crate::jobs::run(shared.clone())));
        }
        // Only once this broker listens can it rely on notifications.
        tokio::time::timeout(Duration::from_secs(30), listens)
            .await
            .map_err(|_| {
                ClusterError::Runtime("no LISTEN connection to PostgreSQL within 30 s".into())
            })?
            .map_err(|_| ClusterError::Runtime("the notification listener stopped".into()))?;
        Ok((done_rx, background))
    }

    /// Runs `fut` on the engine's runtime and waits for it, for the
    /// contract's synchronous calls (open, remove, list).
    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, LogError>> + Send + 'static,
    ) -> Result<T, LogError> {
        block_on(&self.handle, fut)
    }
}

/// Runs `fut` on the engine's runtime `handle` and waits for it.
fn block_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = Result<T, LogError>> + Send + 'static,
) -> Result<T, LogError> {
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let wait = move || rx.recv().map_err(|_| LogError::Closed)?;
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

impl Drop for ClusterEngine {
    fn drop(&mut self) {
        if let Some(rt) = lock(&self.runtime).take() {
            rt.shutdown_background();
        }
    }
}

/// Gathers appends and starts one upload per gathering; the committer
/// takes the uploads in the order they were started and sequences each
/// object once it is written, so offsets follow the order appends were
/// called in while later objects upload during earlier transactions.
async fn flusher(shared: Arc<Shared>, done: std::sync::mpsc::Sender<()>) {
    // The committer holds one upload and the channel the rest: a full
    // channel holds back the next gathering, which bounds the memory.
    let depth = shared.config.objects_in_flight.saturating_sub(1).max(1);
    let (to_commit, committing) = tokio::sync::mpsc::channel::<Upload>(depth);
    let committer = tokio::spawn(committer(shared.clone(), committing));
    loop {
        let (since, full, closed) = {
            let g = lock(&shared.gather);
            (g.since, g.bytes >= shared.config.flush_bytes, g.closed)
        };
        match since {
            None if closed => break,
            None => {
                shared.wake.notified().await;
                continue;
            }
            Some(t) if !full && !closed => {
                let deadline = t + Duration::from_millis(shared.config.flush_ms);
                if Instant::now() < deadline {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline.into()) => {}
                        () = shared.wake.notified() => continue,
                    }
                }
            }
            Some(_) => {}
        }
        let entries = {
            let mut g = lock(&shared.gather);
            g.bytes = 0;
            g.since = None;
            std::mem::take(&mut g.entries)
        };
        if entries.is_empty() {
            continue;
        }
        let serial = !shared.config.overlap_commits;
        let (committed, wait) = oneshot::channel();
        let upload = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut w = write_object(&shared, entries).await?;
                w.committed = serial.then_some(committed);
                Some(w)
            })
        };
        if to_commit.send(upload).await.is_err() {
            // Only if the committer ended: the upload's appends are
            // answered with Closed when it drops them.
            break;
        }
        if serial {
            let _ = wait.await;
        }
    }
    drop(to_commit);
    let _ = committer.await;
    let _ = done.send(());
}

/// An upload under way: the written object, or `None` if the write
/// failed (its appends are answered already).
type Upload = tokio::task::JoinHandle<Option<Written>>;

/// An intake object in the store, waiting for its transaction.
struct Written {
    entries: Vec<Pending>,
    key: ObjectPath,
    size: usize,
    positions: Vec<u64>,
    started: Instant,
    /// The object's row must go in before this (ms since the epoch).
    deadline_ms: i64,
    /// Told when the transaction is over (serial flushing only).
    committed: Option<oneshot::Sender<()>>,
}

fn fail_all(entries: Vec<Pending>, reason: &str) {
    for p in entries {
        let _ = p.done.send(Err(retriable(reason)));
    }
}

/// Commits written objects one at a time, in the order their uploads
/// started.
async fn committer(shared: Arc<Shared>, mut uploads: tokio::sync::mpsc::Receiver<Upload>) {
    let mut client: Option<Client> = None;
    let mut backoff = Backoff::default();
    while let Some(upload) = uploads.recv().await {
        let Ok(Some(mut w)) = upload.await else {
            continue;
        };
        // Dropped (and so signalled) once this object is done with.
        let _committed = w.committed.take();
        if client.as_ref().is_none_or(Client::is_closed) {
            client = None;
            if let Err(wait) = backoff.check() {
                fail_all(
                    w.entries,
                    &format!(
                        "PostgreSQL is unreachable; the next connection attempt is in {} ms",
                        wait.as_millis()
                    ),
                );
                continue;
            }
            match connect_pg(&shared.db.target).await {
                Ok(c) => {
                    backoff.succeeded();
                    client = Some(c);
                }
                Err(e) => {
                    let delay = backoff.failed();
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                        "cannot reach PostgreSQL; failing the gathered appends");
                    fail_all(w.entries, &e.to_string());
                    continue;
                }
            }
        }
        if let Some(c) = client.as_mut() {
            commit(&shared, c, w).await;
        }
    }
}

fn retriable(reason: &str) -> LogError {
    LogError::Io {
        path: "cluster storage".into(),
        source: std::io::Error::other(reason.to_string()),
    }
}

/// Writes one object for `entries`; on failure answers them all and
/// returns `None`.
async fn write_object(shared: &Shared, entries: Vec<Pending>) -> Option<Written> {
    let started = Instant::now();
    let deadline_ms = record_deadline(&shared.config);
    let header: Vec<Entry> = entries
        .iter()
        .map(|p| Entry {
            topic: p.part.tp.topic.clone(),
            partition: p.part.tp.partition,
            offset_count: i32::try_from(p.offset_count).unwrap_or(i32::MAX),
            size: u32::try_from(p.chunk.len()).unwrap_or(u32::MAX),
        })
        .collect();
    let chunks: Vec<Bytes> = entries.iter().map(|p| p.chunk.clone()).collect();
    let (object, positions) = format::encode(&header, &chunks);
    // The payload's clones go with it: the committed chunks are then the
    // only holders of their buffers, placed for the cache in place.
    drop(chunks);
    let name = format!("intake/{}/{}", shared.config.node_id, uuid::Uuid::new_v4());
    let key = if shared.prefix.as_ref().is_empty() {
        ObjectPath::from(name)
    } else {
        ObjectPath::from(format!("{}/{name}", shared.prefix))
    };
    let size = object.content_length();
    if let Err(e) = shared.store.put(&key, object).await {
        warn!(error = %e, "intake object write failed; failing the gathered appends");
        fail_all(entries, &e.to_string());
        return None;
    }
    Some(Written {
        entries,
        key,
        size,
        positions,
        started,
        deadline_ms,
        committed: None,
    })
}

/// Sequences a written object in one transaction and answers each append.
async fn commit(shared: &Shared, client: &mut Client, w: Written) {
    let Written {
        entries,
        key,
        size,
        positions,
        started,
        deadline_ms,
        ..
    } = w;
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match sequence(
            client,
            &key,
            size,
            shared.config.node_id,
            &entries,
            &positions,
            deadline_ms,
            shared.clock.now_ms(),
        )
        .await
        {
            Err(e)
                if attempt < 5
                    && e.code().is_some_and(|c| {
                        *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                            || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    }) =>
            {
                continue
            }
            other => break other,
        }
    };
    match result {
        Ok(None) => {
            warn!(%key, "an intake object's row went in past its deadline; rolled back, failing the gathered appends");
            fail_all(
                entries,
                "the intake object waited too long for its transaction; retry",
            );
        }
        Ok(Some(placed)) => {
            let mut entries = entries;
            let mut cache = lock(&shared.cache);
            for (p, (outcome, (end, start, stable))) in entries
                .iter_mut()
                .zip(placed.outcomes.iter().zip(&placed.ends))
            {
                let Outcome::Placed(base) = outcome else {
                    continue;
                };
                if let Ok(c) = format::place(std::mem::take(&mut p.chunk), *base) {
                    cache.put(&p.part.tp, *base, c);
                }
                p.part.advance(*end, *start, Some(*stable), None);
            }
            drop(cache);
            shared.stats.fsync.observe(started.elapsed());
            for (p, outcome) in entries.into_iter().zip(placed.outcomes) {
                let log_start = lock(&p.part.offsets).log_start;
                let answer = match outcome {
                    Outcome::Placed(base) => Ok(AppendInfo {
                        base_offset: base,
                        last_offset: base + p.offset_count - 1,
                        log_append_time: p.log_append_time,
                        log_start,
                    }),
                    Outcome::Duplicate(m) => Ok(AppendInfo {
                        base_offset: m.first_offset,
                        last_offset: m.last_offset,
                        log_append_time: -1,
                        log_start,
                    }),
                    Outcome::Refused(e) => Err(e),
                };
                let _ = p.done.send(answer);
            }
            debug!(%key, size, "intake object committed");
        }
        Err(e) => {
            // Not acknowledged, whatever happened: usually nothing was
            // committed and the object is unreferenced. If the connection
            // broke during COMMIT the outcome is unknown, and the answer
            // is still an error, never a success: the producer retries,
            // an idempotent one's retry is found in `weir.producers` (a
            // duplicate answered with the original offsets, not a second
            // offset range) and a plain one may write the records again,
            // as after a lost response from Kafka. Offsets stay exact
            // either way: only PostgreSQL assigns them, under the row lock.
            let e = if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                // The collector took the object as an orphan first.
                "the intake object was collected before its transaction; retry".to_string()
            } else {
                crate::error::describe_pg(&e)
            };
            warn!(error = %e, %key, "sequencing failed; failing the gathered appends");
            fail_all(entries, &e);
        }
    }
}

/// What the transaction decided for one append.
enum Outcome {
    /// Written at this base offset.
    Placed(i64),
    /// A retry of a batch already written: answered with its offsets,
    /// its bytes in the object left unreferenced.
    Duplicate(BatchMeta),
    /// Refused by its producer's state (sequence, epoch), or its
    /// partition is gone; the other appends of the object go on.
    Refused(LogError),
}

struct Placed {
    outcomes: Vec<Outcome>,
    /// Each entry's partition's log end, log start and last stable
    /// offset after the commit.
    ends: Vec<(i64, i64, i64)>,
}

/// A producer's recent batches as stored in `weir.producers.batches`:
/// 32 bytes each, oldest first (docs/cluster-format.md).
fn encode_batches(e: &ProducerEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.batches.len() * 32);
    for b in &e.batches {
        out.extend_from_slice(&b.first_seq.to_be_bytes());
        out.extend_from_slice(&b.last_seq.to_be_bytes());
        out.extend_from_slice(&b.first_offset.to_be_bytes());
        out.extend_from_slice(&b.last_offset.to_be_bytes());
        out.extend_from_slice(&b.timestamp.to_be_bytes());
    }
    out
}

fn decode_batches(raw: &[u8]) -> VecDeque<BatchMeta> {
    let be4 = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let be8 = |b: &[u8]| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    raw.chunks_exact(32)
        .map(|c| BatchMeta {
            first_seq: be4(&c[0..4]),
            last_seq: be4(&c[4..8]),
            first_offset: be8(&c[8..16]),
            last_offset: be8(&c[16..24]),
            timestamp: be8(&c[24..32]),
        })
        .collect()
}

/// The stored state of the producers of `entries`' idempotent batches,
/// by partition.
async fn load_producers(
    tx: &tokio_postgres::Transaction<'_>,
    entries: &[Pending],
) -> Result<HashMap<TopicPartition, ProducerStates>, tokio_postgres::Error> {
    let mut states: HashMap<TopicPartition, ProducerStates> = HashMap::new();
    let keyed: Vec<(&TopicPartition, i64)> = entries
        .iter()
        .filter_map(|p| p.producer.map(|h| (&p.part.tp, h.producer_id)))
        .collect();
    if keyed.is_empty() {
        return Ok(states);
    }
    let topics: Vec<&str> = keyed.iter().map(|(tp, _)| tp.topic.as_str()).collect();
    let parts: Vec<i32> = keyed.iter().map(|(tp, _)| tp.partition).collect();
    let pids: Vec<i64> = keyed.iter().map(|(_, pid)| *pid).collect();
    for r in tx
        .query(schema::PRODUCERS, &[&topics, &parts, &pids])
        .await?
    {
        let tp = TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1));
        let entry = ProducerEntry {
            epoch: r.get(3),
            batches: decode_batches(r.get::<_, &[u8]>(4)),
            last_timestamp: r.get(5),
            coordinator_epoch: -1,
            txn_first_offset: r.get(6),
        };
        states.entry(tp).or_default().restore(r.get(2), entry);
    }
    Ok(states)
}

/// The transaction: lock the partitions in order, check idempotent and
/// transactional batches and transaction markers against their
/// producers' stored state, store the producers' new state (open
/// transactions included) and the transactions ABORT markers closed,
/// move the next offsets past the accepted appends and the last stable
/// offsets to the oldest open transactions, index, notify, commit.
/// `None` (rolled back) if the object's row went in after `deadline_ms`.
#[allow(clippy::too_many_arguments)]
async fn sequence(
    client: &mut Client,
    key: &ObjectPath,
    size: usize,
    node_id: i32,
    entries: &[Pending],
    positions: &[u64],
    deadline_ms: i64,
    now_ms: i64,
) -> Result<Option<Placed>, tokio_postgres::Error> {
    // Appends to one name may be for two incarnations (the partition was
    // deleted and created again while they gathered).
    let mut order: Vec<(&TopicPartition, i64)> = Vec::new();
    let mut seen: HashSet<(&TopicPartition, i64)> = HashSet::new();
    for p in entries {
        if seen.insert((&p.part.tp, p.part.incarnation)) {
            order.push((&p.part.tp, p.part.incarnation));
        }
    }
    let topics: Vec<&str> = order.iter().map(|(tp, _)| tp.topic.as_str()).collect();
    let parts: Vec<i32> = order.iter().map(|(tp, _)| tp.partition).collect();
    let incarnations: Vec<i64> = order.iter().map(|(_, i)| *i).collect();
    let tx = client.transaction().await?;
    // Superseding appends move their leases' epochs on first, so a
    // fenced append in this same transaction sees the new epoch too.
    let mut superseded: Vec<&Supersede> = entries
        .iter()
        .filter_map(|p| p.supersede.as_ref())
        .collect();
    superseded.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut bumped: HashMap<(&str, i32), (i64, bool)> = HashMap::new();
    for s in superseded {
        let left = match bumped.entry((s.topic.as_str(), s.partition)) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let r = tx
                    .query_one(schema::SUPERSEDE_LEASE, &[&s.topic, &s.partition])
                    .await?;
                *v.insert((r.get(0), r.get(1)))
            }
        };
        *lock(&s.left) = Some(left);
    }
    // Coordinator appends go in only under the lease they were made
    // under; the rows stay locked until the commit.
    let mut fenced: HashSet<usize> = HashSet::new();
    if entries.iter().any(|p| p.fence.is_some()) {
        let mut leased: Vec<(&str, i32)> = entries
            .iter()
            .filter_map(|p| p.fence.as_ref())
            .map(|l| (l.topic.as_str(), l.partition))
            .collect();
        leased.sort_unstable();
        leased.dedup();
        let topics: Vec<&str> = leased.iter().map(|(t, _)| *t).collect();
        let parts: Vec<i32> = leased.iter().map(|(_, p)| *p).collect();
        let mut epochs: HashMap<(String, i32), i64> = HashMap::new();
        for r in tx
            .query(schema::FENCE, &[&topics, &parts, &node_id])
            .await?
        {
            epochs.insert((r.get(0), r.get(1)), r.get(2));
        }
        for (i, p) in entries.iter().enumerate() {
            if let Some(l) = &p.fence {
                if epochs.get(&(l.topic.clone(), l.partition)) != Some(&l.epoch) {
                    fenced.insert(i);
                }
            }
        }
    }
    // The incarnation and next offset of each partition that still
    // exists at the incarnation its appends were made to.
    let mut next: HashMap<TopicPartition, (i64, i64)> = HashMap::new();
    for r in tx
        .query(schema::LOCK, &[&topics, &parts, &incarnations])
        .await?
    {
        let tp = TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1));
        next.insert(tp, (r.get(2), r.get(3)));
    }
    let mut producers = load_producers(&tx, entries).await?;
    let mut touched: Vec<(TopicPartition, i64)> = Vec::new();
    let mut aborted: Vec<(TopicPartition, AbortedTxn)> = Vec::new();
    // Offsets and bytes taken per partition, in first-seen order.
    let mut totals: HashMap<&TopicPartition, (i64, i64)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(entries.len());
    for (i, p) in entries.iter().enumerate() {
        let tp = &p.part.tp;
        if fenced.contains(&i) {
            outcomes.push(Outcome::Refused(not_coordinator(tp)));
            continue;
        }
        // An append to a deleted partition fails as Kafka's do
        // (UNKNOWN_TOPIC_OR_PARTITION), whatever holds the name now.
        let Some(n) = next
            .get_mut(tp)
            .filter(|(inc, _)| *inc == p.part.incarnation)
            .map(|(_, n)| n)
        else {
            outcomes.push(Outcome::Refused(LogError::Removed {
                partition: tp.to_string(),
            }));
            continue;
        };
        if let (Some(h), Some(kind)) = (p.producer, p.control) {
            // A marker: fenced by the producer's epoch (a zombie
            // coordinator's marker is refused); it closes the producer's
            // open transaction here, if any.
            let states = producers.entry(tp.clone()).or_default();
            if let Err(e) = states.check_marker(&h) {
                outcomes.push(Outcome::Refused(e));
                continue;
            }
            let mut h = h;
            h.base_offset = *n;
            if let Some(a) = states.apply(&h, Some(kind), now_ms) {
                aborted.push((tp.clone(), a));
            }
            if !touched.contains(&(tp.clone(), h.producer_id)) {
                touched.push((tp.clone(), h.producer_id));
            }
        } else if let Some(h) = p.producer {
            let states = producers.entry(tp.clone()).or_default();
            match states.check(&h) {
                Err(e) => {
                    outcomes.push(Outcome::Refused(e));
                    continue;
                }
                Ok(Verdict::Duplicate(m)) => {
                    outcomes.push(Outcome::Duplicate(m));
                    continue;
                }
                Ok(Verdict::Append) => {
                    let mut h = h;
                    h.base_offset = *n;
                    states.apply(&h, None, now_ms);
                    if !touched.contains(&(tp.clone(), h.producer_id)) {
                        touched.push((tp.clone(), h.producer_id));
                    }
                }
            }
        }
        outcomes.push(Outcome::Placed(*n));
        *n += p.offset_count;
        let t = totals.entry(tp).or_default();
        t.0 += p.offset_count;
        t.1 += p.chunk.len() as i64;
    }
    // Before the sequencing, whose last stable offsets read them.
    if !touched.is_empty() {
        let (mut s_topic, mut s_part, mut s_pid, mut s_epoch, mut s_batches, mut s_ts) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut s_open: Vec<Option<i64>> = vec![];
        for (tp, pid) in &touched {
            let Some(e) = producers.get(tp).and_then(|s| s.get(*pid)) else {
                continue;
            };
            s_topic.push(tp.topic.as_str());
            s_part.push(tp.partition);
            s_pid.push(*pid);
            s_epoch.push(e.epoch);
            s_batches.push(encode_batches(e));
            s_ts.push(e.last_timestamp);
            s_open.push(e.txn_first_offset);
        }
        tx.execute(
            schema::SAVE_PRODUCERS,
            &[
                &s_topic, &s_part, &s_pid, &s_epoch, &s_batches, &s_ts, &s_open,
            ],
        )
        .await?;
    }
    if !aborted.is_empty() {
        let topics: Vec<&str> = aborted.iter().map(|(tp, _)| tp.topic.as_str()).collect();
        let parts: Vec<i32> = aborted.iter().map(|(tp, _)| tp.partition).collect();
        let markers: Vec<i64> = aborted.iter().map(|(_, a)| a.last_offset).collect();
        let pids: Vec<i64> = aborted.iter().map(|(_, a)| a.producer_id).collect();
        let firsts: Vec<i64> = aborted.iter().map(|(_, a)| a.first_offset).collect();
        let stables: Vec<i64> = aborted.iter().map(|(_, a)| a.last_stable_offset).collect();
        tx.execute(
            schema::SAVE_ABORTED,
            &[&topics, &parts, &markers, &pids, &firsts, &stables],
        )
        .await?;
    }
    let moved: Vec<&TopicPartition> = order
        .iter()
        .map(|(tp, _)| *tp)
        .filter(|tp| totals.contains_key(tp))
        .collect();
    // (log end after, log start, last stable) of each partition that moved.
    let mut after: HashMap<TopicPartition, (i64, i64, i64)> = HashMap::new();
    if !moved.is_empty() {
        let topics: Vec<&str> = moved.iter().map(|tp| tp.topic.as_str()).collect();
        let parts: Vec<i32> = moved.iter().map(|tp| tp.partition).collect();
        let counts: Vec<i64> = moved.iter().map(|tp| totals[tp].0).collect();
        let bytes: Vec<i64> = moved.iter().map(|tp| totals[tp].1).collect();
        for r in tx
            .query(schema::SEQUENCE, &[&topics, &parts, &counts, &bytes])
            .await?
        {
            let tp = TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1));
            after.insert(tp, (r.get(3), r.get(4), r.get(5)));
        }
    }
    let mut ends = Vec::with_capacity(entries.len());
    let (mut i_topic, mut i_part, mut i_base, mut i_last, mut i_pos, mut i_size, mut i_ts) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for ((p, pos), outcome) in entries.iter().zip(positions).zip(&outcomes) {
        let Outcome::Placed(base) = outcome else {
            ends.push((0, 0, 0));
            continue;
        };
        ends.push(after.get(&p.part.tp).copied().unwrap_or((0, 0, 0)));
        i_topic.push(p.part.tp.topic.as_str());
        i_part.push(p.part.tp.partition);
        i_base.push(*base);
        i_last.push(base + p.offset_count - 1);
        i_pos.push(*pos as i64);
        i_size.push(i32::try_from(p.chunk.len()).unwrap_or(i32::MAX));
        i_ts.push(p.max_timestamp);
    }
    if !i_topic.is_empty() {
        let indexed = tx
            .execute(
                schema::INDEX,
                &[
                    &key.as_ref(),
                    &(size as i64),
                    &node_id,
                    &i_topic,
                    &i_part,
                    &i_base,
                    &i_last,
                    &i_pos,
                    &i_size,
                    &i_ts,
                    &deadline_ms,
                ],
            )
            .await?;
        if indexed != i_topic.len() as u64 {
            // Too late: the collector may have taken the object. Dropping
            // the transaction rolls it back.
            return Ok(None);
        }
    }
    tx.commit().await?;
    Ok(Some(Placed { outcomes, ends }))
}

/// Follows other brokers' commits (LISTEN), so offsets and long polls
/// move without asking the database; after a reconnect, rereads every
/// open partition's offsets, since notifications were missed meanwhile.
async fn listener(shared: Arc<Shared>, listening: oneshot::Sender<()>) {
    let mut listening = Some(listening);
    let mut backoff = Backoff::default();
    loop {
        let target = &shared.db.target;
        let connected = target.config.connect(target.tls.clone()).await.map_err(pg);
        match connected {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    use futures_util::StreamExt;
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                let m = (n.channel().to_string(), n.payload().to_string());
                                if tx.send(m).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                warn!(error = %e, "PostgreSQL listener connection ended");
                                break;
                            }
                        }
                    }
                });
                if client
                    .batch_execute(&format!(
                        "LISTEN {}; LISTEN {}",
                        schema::CHANNEL,
                        schema::CATALOG_CHANNEL
                    ))
                    .await
                    .is_ok()
                {
                    if let Some(l) = listening.take() {
                        let _ = l.send(());
                    }
                    backoff.succeeded();
                    refresh_all(&shared).await;
                    // Missed catalog notifications: have the broker reread.
                    shared.catalog_version.send_modify(|_| {});
                    while let Some((channel, payload)) = rx.recv().await {
                        if channel == schema::CATALOG_CHANNEL {
                            if let Ok(v) = payload.parse::<i64>() {
                                shared.catalog_version.send_modify(|c| *c = v.max(*c));
                            }
                        } else {
                            apply_notification(&shared, &payload);
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => warn!(error = %e, "cannot reach PostgreSQL for notifications"),
        }
        tokio::time::sleep(backoff.failed()).await;
    }
}

fn apply_notification(shared: &Shared, payload: &str) {
    let mut f = payload.split('\t');
    let (Some(topic), Some(p), Some(end), Some(start)) = (f.next(), f.next(), f.next(), f.next())
    else {
        return;
    };
    let (Ok(p), Ok(end), Ok(start)) = (p.parse::<i32>(), end.parse::<i64>(), start.parse::<i64>())
    else {
        return;
    };
    // Commits add the last stable offset; DeleteRecords does not move it.
    let stable = f.next().and_then(|s| s.parse::<i64>().ok());
    // Of another partition of the name (the one before a delete, or after
    // it was created again): not this one's offsets. Brokers of earlier
    // versions do not say.
    let incarnation = f.next().and_then(|s| s.parse::<i64>().ok());
    let part = lock(&shared.partitions)
        .get(&TopicPartition::new(topic, p))
        .filter(|part| incarnation.is_none_or(|i| i == part.incarnation))
        .cloned();
    if let Some(part) = part {
        part.advance(end, start, stable, None);
    }
}

async fn refresh_all(shared: &Shared) {
    let parts: Vec<Arc<PartState>> = lock(&shared.partitions).values().cloned().collect();
    for p in parts {
        if let Err(e) = refresh(shared, &p).await {
            warn!(partition = %p.tp, error = %e, "cannot reread offsets");
        }
    }
}

/// Rereads one partition's offsets; `Removed` if its row is gone.
async fn refresh(shared: &Shared, part: &PartState) -> Result<Offsets, LogError> {
    let client = shared.db.get().await?;
    let row = client
        .query_opt(
            schema::REFRESH,
            &[&part.tp.topic, &part.tp.partition, &part.incarnation],
        )
        .await
        .map_err(pg)?;
    // Gone, or deleted and created again: this handle's partition is gone.
    let Some(row) = row else {
        lock(&part.offsets).removed = true;
        return Err(LogError::Removed {
            partition: part.tp.to_string(),
        });
    };
    part.advance(
        row.get(1),
        row.get(0),
        Some(row.get(3)),
        u64::try_from(row.get::<_, i64>(2)).ok(),
    );
    part.live()
}

/// A partition handle: the shared engine and this partition's state.
#[derive(Debug)]
pub struct ClusterPartition {
    shared: Arc<Shared>,
    part: Arc<PartState>,
    /// The engine's runtime, for the contract's synchronous calls.
    handle: tokio::runtime::Handle,
}

impl ClusterPartition {
    /// Validates and stamps an append and queues it for the next flush.
    fn enqueue(
        &self,
        records: &Bytes,
        epoch: i32,
        lease: Option<&Lease>,
        supersede: Option<Supersede>,
    ) -> Result<oneshot::Receiver<Result<AppendInfo, LogError>>, LogError> {
        self.part.live()?;
        let config = lock(&self.part.config).clone();
        let v = batch::validate_append(records, &config, self.shared.clock.now_ms())?;
        let mut chunk = BytesMut::with_capacity(v.size);
        let mut rel = 0i64;
        let mut max_timestamp = -1i64;
        let mut producer = None;
        let mut control = None;
        for b in &v.batches {
            let h = BatchHeader::parse(&b.header).ok_or_else(|| LogError::InvalidRecord {
                reason: "batch header does not parse".into(),
            })?;
            if h.is_control() {
                // Only the transaction coordinator writes these (the
                // broker refuses them from clients).
                control = Some(
                    producer::control_type(&records.slice(b.range.clone())).ok_or_else(|| {
                        LogError::InvalidRecord {
                            reason: "control batch without a valid control record".into(),
                        }
                    })?,
                );
            }
            if h.producer_id >= 0 {
                // As on one node: one batch per partition from an
                // idempotent producer, so that its sequence check is exact.
                if v.batches.len() > 1 {
                    return Err(LogError::InvalidRecord {
                        reason:
                            "a batch with a producer id must be the only batch for its partition"
                                .into(),
                    });
                }
                producer = Some(h);
            }
            let mut header = b.header;
            batch::set_base_offset(&mut header, rel);
            batch::set_partition_leader_epoch(&mut header, epoch);
            chunk.extend_from_slice(&header);
            chunk.extend_from_slice(&records[b.range.start + HEADER_SIZE..b.range.end]);
            rel += b.offset_count;
            max_timestamp = max_timestamp.max(b.max_timestamp);
        }
        let fence = if let Some(l) = lease {
            Some(l.clone())
        } else {
            let leases = lock(&self.shared.leases);
            // Markers come from the transaction coordinator, which need
            // not hold this partition's lease: they are fenced by the
            // producer's epoch instead.
            if leases.topics.contains_key(&self.part.tp.topic) && control.is_none() {
                let e = leases
                    .epoch(&self.part.tp.topic, self.part.tp.partition)
                    .ok_or_else(|| not_coordinator(&self.part.tp))?;
                Some(Lease {
                    topic: self.part.tp.topic.clone(),
                    partition: self.part.tp.partition,
                    epoch: e,
                })
            } else {
                None
            }
        };
        if epoch >= 0 {
            let mut o = lock(&self.part.offsets);
            o.epoch = o.epoch.max(epoch);
        }
        let (tx, rx) = oneshot::channel();
        let mut g = lock(&self.shared.gather);
        if g.closed {
            return Err(LogError::Closed);
        }
        g.bytes += chunk.len();
        g.entries.push(Pending {
            part: self.part.clone(),
            chunk: chunk.freeze(),
            offset_count: v.offset_count,
            max_timestamp,
            log_append_time: v.log_append_time,
            producer,
            control,
            fence,
            supersede,
            done: tx,
        });
        let first = g.since.is_none();
        if first {
            g.since = Some(Instant::now());
        }
        let full = g.bytes >= self.shared.config.flush_bytes;
        drop(g);
        if first || full {
            self.shared.wake.notify_one();
        }
        Ok(rx)
    }
}

/// The aborted transactions of `tp` overlapping `[from, to)`.
async fn aborted_in(
    shared: &Shared,
    tp: &TopicPartition,
    from: i64,
    to: i64,
) -> Result<Vec<AbortedTxn>, LogError> {
    let client = shared.db.get().await?;
    let rows = client
        .query(schema::ABORTED, &[&tp.topic, &tp.partition, &from, &to])
        .await
        .map_err(pg)?;
    Ok(rows
        .into_iter()
        .map(|r| AbortedTxn {
            producer_id: r.get(0),
            first_offset: r.get(1),
            last_offset: r.get(2),
            last_stable_offset: r.get(3),
        })
        .collect())
}

/// One index row as a read sees it.
#[derive(Clone)]
struct Row {
    base: i64,
    key: String,
    position: u64,
    size: usize,
    /// The object's id and length.
    object: i64,
    object_size: u64,
}

impl Row {
    /// From the columns base offset, last offset, object key, position,
    /// size, object id, object length.
    fn of(r: &tokio_postgres::Row) -> Self {
        Self {
            base: r.get(0),
            key: r.get(2),
            position: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            size: usize::try_from(r.get::<_, i32>(4)).unwrap_or(0),
            object: r.get(5),
            object_size: u64::try_from(r.get::<_, i64>(6)).unwrap_or(u64::MAX),
        }
    }
}

async fn index_rows(
    shared: &Shared,
    tp: &TopicPartition,
    from: i64,
    below: i64,
    limit: i64,
) -> Result<Vec<Row>, LogError> {
    let client = shared.db.get().await?;
    let rows = client
        .query(
            schema::READ,
            &[&tp.topic, &tp.partition, &from, &below, &limit],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(Row::of).collect())
}

/// The byte ranges `spans` (object key, position, length) in the order
/// given, with one ranged read per object, the objects read concurrently.
pub(crate) async fn read_spans(
    shared: &Shared,
    spans: &[(&str, u64, usize)],
) -> Result<Vec<Bytes>, LogError> {
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (key, _, _)) in spans.iter().enumerate() {
        by_key.entry(key).or_default().push(i);
    }
    let fetched = join_all(by_key.into_iter().map(|(key, idx)| async move {
        let ranges: Vec<std::ops::Range<u64>> = idx
            .iter()
            .map(|&i| spans[i].1..spans[i].1 + spans[i].2 as u64)
            .collect();
        let got = shared
            .store
            .get_ranges(&ObjectPath::from(key), &ranges)
            .await
            .map_err(store_err)?;
        Ok::<_, LogError>((idx, got))
    }))
    .await;
    let mut out = vec![Bytes::new(); spans.len()];
    for f in fetched {
        let (idx, got) = f?;
        for (i, b) in idx.into_iter().zip(got) {
            out[i] = b;
        }
    }
    Ok(out)
}

/// The largest intake object a read loads whole (also at most a quarter
/// of the cache: under load a flush writes objects of 5-10 MB, which a
/// sixteenth of the default 64 MiB would leave out).
const WHOLE_OBJECT_MAX: u64 = 16 << 20;

/// How many whole-object loads may run at once; beyond that, reads make
/// ranged reads, so loads hold at most half the cache's size in memory
/// besides the cache.
const WHOLE_OBJECT_LOADS: usize = 2;

/// The cached chunks of `rows` (`None` where missing). A row the cleaner
/// rewrote keeps its base offset but not its length: a cached chunk of
/// another length is the old one.
fn cached(shared: &Shared, tp: &TopicPartition, rows: &[Row]) -> Vec<Option<Bytes>> {
    let cache = lock(&shared.cache);
    rows.iter()
        .map(|r| cache.get(tp, r.base).filter(|c| c.len() == r.size))
        .collect()
}

/// Loads into the cache, whole, the intake objects of `rows` that are
/// small enough, with every chunk in them that an index row still
/// references, for every partition: right after producing, one intake
/// object holds a chunk of each partition written, and a reader catching
/// up on all of them would otherwise make one ranged read of it per
/// partition. A load another read started is waited for, not repeated.
/// Compacted objects hold one partition and keep ranged reads, as do
/// objects a load fails for (the caller reads what is still missing).
async fn load_objects(shared: &Arc<Shared>, rows: &[Row]) {
    let intake = crate::jobs::object_key(shared, "intake").to_string() + "/";
    let cap = WHOLE_OBJECT_MAX.min(shared.config.cache_bytes as u64 / 4);
    let mut waits = Vec::new();
    let mut seen = HashSet::new();
    for r in rows {
        if r.object_size > cap || !r.key.starts_with(&intake) || !seen.insert(r.object) {
            continue;
        }
        let mut loading = lock(&shared.loading);
        if let Some(done) = loading.get(&r.object) {
            waits.push(done.clone());
            continue;
        }
        if loading.len() >= WHOLE_OBJECT_LOADS {
            continue;
        }
        let (tx, done) = watch::channel(false);
        loading.insert(r.object, done.clone());
        drop(loading);
        waits.push(done);
        // Its own task: a read given up on mid-load must not leave the
        // others waiting for a load nobody finishes.
        let (shared, id, key) = (Arc::clone(shared), r.object, r.key.clone());
        tokio::spawn(async move {
            if let Err(e) = load_object(&shared, id, &key).await {
                debug!(%key, error = %e, "whole-object read failed");
            }
            lock(&shared.loading).remove(&id);
            let _ = tx.send(true);
        });
    }
    for mut done in waits {
        let _ = done.wait_for(|d| *d).await;
    }
}

/// One GET of intake object `id` and one query for the index rows still
/// in it; their chunks go into the cache. Rows the cleaner or compaction
/// moved to other objects are not in the answer, so nothing stale is
/// cached.
async fn load_object(shared: &Shared, id: i64, key: &str) -> Result<(), LogError> {
    let client = shared.db.get().await?;
    let path = ObjectPath::from(key);
    let (whole, rows) = tokio::try_join!(
        async {
            let got = shared.store.get(&path).await.map_err(store_err)?;
            got.bytes().await.map_err(store_err)
        },
        async { client.query(schema::OBJECT_ROWS, &[&id]).await.map_err(pg) },
    )?;
    let mut cache = lock(&shared.cache);
    for r in rows {
        let tp = TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1));
        let base: i64 = r.get(2);
        let (Ok(position), Ok(size)) = (
            usize::try_from(r.get::<_, i64>(3)),
            usize::try_from(r.get::<_, i32>(4)),
        ) else {
            continue;
        };
        if position + size > whole.len() || cache.get(&tp, base).is_some_and(|c| c.len() == size) {
            continue;
        }
        // `whole` stays held meanwhile, so `place` copies each chunk
        // out and the cache never keeps the whole object alive.
        if let Ok(placed) = format::place(whole.slice(position..position + size), base) {
            cache.put(&tp, base, placed);
        }
    }
    drop(cache);
    drop(whole);
    Ok(())
}

/// The placed chunks of `rows`, from the cache, from small intake
/// objects loaded whole, or from the store (one ranged read per object).
async fn chunks(
    shared: &Arc<Shared>,
    tp: &TopicPartition,
    rows: &[Row],
) -> Result<Vec<Bytes>, LogError> {
    let mut out = cached(shared, tp, rows);
    if out.iter().any(Option::is_none) {
        load_objects(shared, &uncached(shared, tp, rows)).await;
        for (o, c) in out.iter_mut().zip(cached(shared, tp, rows)) {
            if o.is_none() {
                *o = c;
            }
        }
    }
    let missing: Vec<usize> = (0..rows.len()).filter(|&i| out[i].is_none()).collect();
    let spans: Vec<(&str, u64, usize)> = missing
        .iter()
        .map(|&i| (rows[i].key.as_str(), rows[i].position, rows[i].size))
        .collect();
    let fetched = read_spans(shared, &spans).await?;
    let mut cache = lock(&shared.cache);
    for (i, raw) in missing.into_iter().zip(fetched) {
        let placed = format::place(raw, rows[i].base).map_err(LogError::from)?;
        cache.put(tp, rows[i].base, placed.clone());
        out[i] = Some(placed);
    }
    Ok(out.into_iter().flatten().collect())
}

/// The rows of `rows` whose chunks are not cached.
fn uncached(shared: &Shared, tp: &TopicPartition, rows: &[Row]) -> Vec<Row> {
    rows.iter()
        .zip(cached(shared, tp, rows))
        .filter(|(_, c)| c.is_none())
        .map(|(r, _)| r.clone())
        .collect()
}

/// Loads the rows after a read into the cache in the background, so a
/// reader catching up finds its next fetch there instead of waiting for
/// the store while it works through this one: rows worth two reads of
/// `max_bytes` (at least 1 MiB, at most a sixteenth of the cache), from
/// the first row no read-ahead covers yet.
fn read_ahead(shared: &Arc<Shared>, part: &Arc<PartState>, rest: &[Row], max_bytes: usize) {
    let Some(first) = rest.first() else { return };
    let mut ahead = lock(&part.ahead);
    if ahead
        .as_ref()
        .is_some_and(|a| (a.from..a.until).contains(&first.base))
    {
        return;
    }
    let budget = max_bytes
        .saturating_mul(2)
        .max(1 << 20)
        .min(shared.config.cache_bytes / 16);
    let mut bytes = 0;
    let n = rest
        .iter()
        .take_while(|r| {
            let fits = bytes == 0 || bytes + r.size <= budget;
            bytes += r.size;
            fits
        })
        .count();
    let until = rest.get(n).map_or(rest[n - 1].base + 1, |r| r.base);
    let rows = uncached(shared, &part.tp, &rest[..n]);
    if rows.is_empty() {
        return;
    }
    let (tx, done) = watch::channel(false);
    *ahead = Some(Ahead {
        from: first.base,
        until,
        done,
    });
    drop(ahead);
    let (shared, tp) = (Arc::clone(shared), part.tp.clone());
    tokio::spawn(async move {
        load_objects(&shared, &rows).await;
        let rows = uncached(&shared, &tp, &rows);
        let spans: Vec<(&str, u64, usize)> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.position, r.size))
            .collect();
        // A failure only costs the reader the store read it would have
        // made anyway; the error comes to it then.
        match read_spans(&shared, &spans).await {
            Ok(fetched) => {
                let mut cache = lock(&shared.cache);
                for (r, raw) in rows.iter().zip(fetched) {
                    if let Ok(placed) = format::place(raw, r.base) {
                        cache.put(&tp, r.base, placed);
                    }
                }
            }
            Err(e) => debug!(%tp, error = %e, "read-ahead failed"),
        }
        let _ = tx.send(true);
    });
}

/// Bytes at the start of `chunk` taken by batches whose last offset is
/// below `offset`.
fn skip_below(chunk: &[u8], offset: i64) -> usize {
    let mut pos = 0;
    while pos + HEADER_SIZE <= chunk.len() {
        let Some(h) = BatchHeader::parse(&chunk[pos..]) else {
            break;
        };
        let Some(size) = h.total_size() else { break };
        if h.last_offset() >= offset || pos + size >= chunk.len() {
            break;
        }
        pos += size;
    }
    pos
}

/// The first record at or after `log_start` with a timestamp `>= ts`
/// inside `chunk` (whole batches).
fn find_in(chunk: &Bytes, ts: i64, log_start: i64) -> Result<Option<TimestampOffset>, LogError> {
    let mut pos = 0;
    while pos + HEADER_SIZE <= chunk.len() {
        let Some(h) = BatchHeader::parse(&chunk[pos..]) else {
            break;
        };
        let Some(size) = h.total_size() else { break };
        let b = chunk.slice(pos..(pos + size).min(chunk.len()));
        let mut found = None;
        if h.max_timestamp >= ts {
            batch::walk_records(&b, |r| {
                if found.is_none() && r.timestamp >= ts && r.offset >= log_start {
                    found = Some((r.timestamp, r.offset));
                }
            })?;
        }
        if let Some((timestamp, offset)) = found {
            return Ok(Some(TimestampOffset {
                timestamp,
                offset,
                leader_epoch: h.partition_leader_epoch,
            }));
        }
        pos += size;
    }
    Ok(None)
}

impl PartitionLog for ClusterPartition {
    fn append(
        &self,
        records: Bytes,
        leader_epoch: i32,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        let queued = self.enqueue(&records, leader_epoch, None, None);
        Box::pin(async move { queued?.await.map_err(|_| LogError::Closed)? })
    }

    fn append_fenced(
        &self,
        records: Bytes,
        leader_epoch: i32,
        lease: &Lease,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        let queued = self.enqueue(&records, leader_epoch, Some(lease), None);
        Box::pin(async move { queued?.await.map_err(|_| LogError::Closed)? })
    }

    fn append_superseding(
        &self,
        records: Bytes,
        leader_epoch: i32,
        lease_topic: &str,
        lease_partition: i32,
    ) -> BoxFuture<'static, Result<AppendInfo, LogError>> {
        let s = Supersede {
            topic: lease_topic.to_string(),
            partition: lease_partition,
            left: Arc::default(),
        };
        let queued = self.enqueue(&records, leader_epoch, None, Some(s.clone()));
        let shared = self.shared.clone();
        Box::pin(async move {
            let info = queued?.await.map_err(|_| LogError::Closed)??;
            let left = *lock(&s.left);
            if let Some((epoch, true)) = left {
                // The holder cannot renew at the new epoch: once the row
                // moved on again or ran out, it serves no state it loaded
                // before this append.
                let client = shared.db.get().await?;
                while client
                    .query_opt(schema::LEASE_AT, &[&s.topic, &s.partition, &epoch])
                    .await
                    .map_err(pg)?
                    .is_some()
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok(info)
        })
    }

    fn wait_durable(&self, _end_offset: i64) -> BoxFuture<'static, Result<(), LogError>> {
        // An append resolves only after its transaction committed, and
        // the object was written before that: it is durable already.
        let live = self.part.live().map(|_| ());
        Box::pin(std::future::ready(live))
    }

    fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: ReadLimit,
    ) -> BoxFuture<'static, Result<ReadResult, LogError>> {
        let shared = self.shared.clone();
        let part = self.part.clone();
        Box::pin(async move {
            let mut o = part.live()?;
            if offset > o.log_end || offset < o.log_start {
                // Another broker may have committed (or deleted) since the
                // last notification: ask before refusing.
                o = refresh(&shared, &part).await?;
            }
            if offset < o.log_start || offset > o.log_end {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: o.log_start,
                    log_end: o.log_end,
                });
            }
            let offsets = log_offsets(&o);
            let upper = limit.upper(&offsets);
            if offset >= upper {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    offsets,
                });
            }
            let rows = index_rows(&shared, &part.tp, offset, upper, 500).await?;
            if rows.first().is_none_or(|r| r.base > offset) {
                // The rows of `offset` are gone: retention or DeleteRecords
                // on another broker moved the log start past it.
                let o = refresh(&shared, &part).await?;
                if offset < o.log_start {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start: o.log_start,
                        log_end: o.log_end,
                    });
                }
            }
            // Whole rows up to max_bytes, but at least one.
            let mut take = 0;
            let mut total = 0usize;
            for r in &rows {
                if take > 0 && total + r.size > max_bytes {
                    break;
                }
                total += r.size;
                take += 1;
            }
            // A read-ahead over `offset` is filling the cache: wait for it
            // rather than read the same ranges twice.
            let loading = lock(&part.ahead)
                .as_ref()
                .filter(|a| (a.from..a.until).contains(&offset))
                .map(|a| a.done.clone());
            if let Some(mut done) = loading {
                let _ = done.wait_for(|d| *d).await;
            }
            let got = chunks(&shared, &part.tp, &rows[..take]).await?;
            read_ahead(&shared, &part, &rows[take..], max_bytes);
            // The first chunk may hold batches wholly below `offset`: the
            // answer starts with the batch that contains it.
            let skip = got.first().map_or(0, |c| skip_below(c, offset));
            let records = if let [only] = &got[..] {
                // A tail read of one chunk shares the cached buffer.
                only.slice(skip..)
            } else {
                let mut out = BytesMut::with_capacity(total);
                for (i, c) in got.iter().enumerate() {
                    out.extend_from_slice(&c[if i == 0 { skip } else { 0 }..]);
                }
                out.freeze()
            };
            if limit == ReadLimit::LastStable && !records.is_empty() {
                // What the fetch asks for next: the aborted transactions
                // overlapping [offset, end of the data). Read here, where
                // a failure can fail the read rather than show aborted
                // records.
                let end = batch::iter_batches(&records)
                    .last()
                    .map_or(offset, |(_, h)| h.last_offset() + 1);
                let found = aborted_in(&shared, &part.tp, offset, end).await?;
                let mut cache = lock(&part.aborted);
                if cache.len() >= 64 {
                    cache.clear();
                }
                cache.insert((offset, end), found);
            }
            Ok(ReadResult { records, offsets })
        })
    }

    fn offsets(&self) -> LogOffsets {
        log_offsets(&lock(&self.part.offsets))
    }

    fn current_offsets(&self) -> BoxFuture<'static, Result<LogOffsets, LogError>> {
        let shared = self.shared.clone();
        let part = self.part.clone();
        Box::pin(async move {
            refresh(&shared, &part).await?;
            Ok(log_offsets(&lock(&part.offsets)))
        })
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.part.end.subscribe()
    }

    fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        let shared = self.shared.clone();
        let part = self.part.clone();
        Box::pin(async move {
            let o = part.live()?;
            let client = shared.db.get().await?;
            let rows = client
                .query(
                    "SELECT b.base_offset, b.last_offset, o.key, b.position, b.size, o.id, o.size_bytes
                     FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id
                     WHERE b.topic = $1 AND b.partition = $2 AND b.max_timestamp >= $3 AND b.last_offset >= $4
                     ORDER BY b.base_offset LIMIT 1",
                    &[&part.tp.topic, &part.tp.partition, &timestamp, &o.log_start],
                )
                .await
                .map_err(pg)?;
            let rows: Vec<Row> = rows.iter().map(Row::of).collect();
            let got = chunks(&shared, &part.tp, &rows).await?;
            match got.first() {
                Some(c) => find_in(c, timestamp, o.log_start),
                None => Ok(None),
            }
        })
    }

    fn max_timestamp(&self) -> BoxFuture<'static, Result<Option<TimestampOffset>, LogError>> {
        let shared = self.shared.clone();
        let part = self.part.clone();
        Box::pin(async move {
            let o = part.live()?;
            let client = shared.db.get().await?;
            let row = client
                .query_opt(
                    "SELECT b.base_offset, b.last_offset, o.key, b.position, b.size, o.id, o.size_bytes,
                         b.max_timestamp
                     FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id
                     WHERE b.topic = $1 AND b.partition = $2 AND b.last_offset >= $3
                     ORDER BY b.max_timestamp DESC, b.base_offset LIMIT 1",
                    &[&part.tp.topic, &part.tp.partition, &o.log_start],
                )
                .await
                .map_err(pg)?;
            let Some(r) = row else { return Ok(None) };
            let ts: i64 = r.get(7);
            let rows = vec![Row::of(&r)];
            let got = chunks(&shared, &part.tp, &rows).await?;
            match got.first() {
                Some(c) => find_in(c, ts, o.log_start),
                None => Ok(None),
            }
        })
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        // The broker appends with one leader epoch per partition in cluster
        // mode, so the log is one epoch that ends at the log end.
        let o = lock(&self.part.offsets);
        (epoch >= 0).then(|| (epoch.min(o.epoch), o.log_end))
    }

    fn delete_records(&self, offset: i64) -> BoxFuture<'static, Result<i64, LogError>> {
        let shared = self.shared.clone();
        let part = self.part.clone();
        Box::pin(async move {
            part.live()?;
            let client = shared.db.get().await?;
            // The rows wholly below the new start go in the same statement;
            // their objects, once no row references them, are the
            // collector's.
            let Some((start, end, size)) =
                crate::jobs::move_log_start(&client, &part, offset).await?
            else {
                let o = refresh(&shared, &part).await?;
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: o.log_start,
                    log_end: o.log_end,
                });
            };
            part.advance(end, start, None, u64::try_from(size).ok());
            Ok(start)
        })
    }

    fn size_bytes(&self) -> u64 {
        lock(&self.part.offsets).size
    }

    fn current_size_bytes(&self) -> BoxFuture<'static, Result<u64, LogError>> {
        let shared = self.shared.clone();
        let part = self.part.clone();
        Box::pin(async move { Ok(refresh(&shared, &part).await?.size) })
    }

    fn producers(&self) -> Result<Vec<(i64, ProducerEntry)>, LogError> {
        // Every broker's sequencing transactions keep `weir.producers`, so
        // this is the partition's state whichever broker took the batches.
        let shared = self.shared.clone();
        let tp = self.part.tp.clone();
        block_on(&self.handle, async move {
            let client = shared.db.get().await?;
            let rows = client
                .query(schema::PARTITION_PRODUCERS, &[&tp.topic, &tp.partition])
                .await
                .map_err(pg)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    (
                        r.get(0),
                        ProducerEntry {
                            epoch: r.get(1),
                            batches: decode_batches(r.get::<_, &[u8]>(2)),
                            last_timestamp: r.get(3),
                            coordinator_epoch: -1,
                            txn_first_offset: r.get(4),
                        },
                    )
                })
                .collect())
        })
    }

    fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // A read_committed read found them already (and failed if it
        // could not); otherwise ask now.
        if let Some(found) = lock(&self.part.aborted).remove(&(from, to)) {
            return found;
        }
        let shared = self.shared.clone();
        let tp = self.part.tp.clone();
        block_on(&self.handle, async move {
            aborted_in(&shared, &tp, from, to).await
        })
        .unwrap_or_else(|e| {
            warn!(partition = %self.part.tp, error = %e, "cannot read aborted transactions");
            Vec::new()
        })
    }

    fn set_config(&self, config: LogConfig) {
        *lock(&self.part.config) = config;
    }
}

impl LogEngine for ClusterEngine {
    fn open(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionLog>, LogError> {
        let shared = self.shared.clone();
        let key = tp.clone();
        let (incarnation, log_start, next, size, stable) = self.block(async move {
            let client = shared.db.get().await?;
            // A partition removed between the two statements is created
            // again by the next round.
            for _ in 0..3 {
                client
                    .execute(schema::CREATE_PARTITION, &[&key.topic, &key.partition])
                    .await
                    .map_err(pg)?;
                if let Some(row) = client
                    .query_opt(schema::OPENED, &[&key.topic, &key.partition])
                    .await
                    .map_err(pg)?
                {
                    return Ok((
                        row.get::<_, i64>(0),
                        row.get::<_, i64>(1),
                        row.get::<_, i64>(2),
                        row.get::<_, i64>(3),
                        row.get::<_, i64>(4),
                    ));
                }
            }
            Err(LogError::Removed {
                partition: key.to_string(),
            })
        })?;
        let mut parts = lock(&self.shared.partitions);
        // Another incarnation is a new partition of the same name (the
        // topic was deleted and created again).
        let reuse = parts
            .get(tp)
            .filter(|p| p.incarnation == incarnation && !lock(&p.offsets).removed);
        let (part, created) = match reuse {
            Some(p) => {
                *lock(&p.config) = config;
                (p.clone(), false)
            }
            None => {
                if let Some(old) = parts.get(tp) {
                    lock(&old.offsets).removed = true;
                }
                let p = Arc::new(PartState::new(tp.clone(), incarnation, config));
                parts.insert(tp.clone(), p.clone());
                (p, true)
            }
        };
        drop(parts);
        part.advance(next, log_start, Some(stable), u64::try_from(size).ok());
        if created {
            // A commit notification that came between the read above and
            // the insertion found no state and was dropped; read again now
            // that notifications reach it, or this broker's end of the
            // partition could stay behind until its next commit.
            let (shared, p) = (self.shared.clone(), part.clone());
            self.block(async move { refresh(&shared, &p).await.map(drop) })?;
        }
        Ok(Arc::new(ClusterPartition {
            shared: self.shared.clone(),
            part,
            handle: self.handle.clone(),
        }))
    }

    fn remove(&self, tp: &TopicPartition) -> Result<(), LogError> {
        if let Some(p) = lock(&self.shared.partitions).remove(tp) {
            lock(&p.offsets).removed = true;
        }
        let shared = self.shared.clone();
        let tp = tp.clone();
        self.block(async move {
            let client = shared.db.get().await?;
            // The partition's row first: that waits for a flush or a log
            // start move holding it, and every later statement then sees
            // the rows it committed (each statement takes a new snapshot),
            // so none is left behind to show up in a partition created
            // again under the name. The objects, once no row references
            // them, are the collector's.
            client.batch_execute("BEGIN").await.map_err(pg)?;
            let r = async {
                client
                    .execute(
                        "DELETE FROM weir.partitions WHERE topic = $1 AND partition = $2",
                        &[&tp.topic, &tp.partition],
                    )
                    .await?;
                client
                    .execute(
                        "DELETE FROM weir.batches WHERE topic = $1 AND partition = $2",
                        &[&tp.topic, &tp.partition],
                    )
                    .await?;
                client
                    .execute(
                        "DELETE FROM weir.producers WHERE topic = $1 AND partition = $2",
                        &[&tp.topic, &tp.partition],
                    )
                    .await?;
                client
                    .execute(
                        "DELETE FROM weir.aborted WHERE topic = $1 AND partition = $2",
                        &[&tp.topic, &tp.partition],
                    )
                    .await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            if r.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            r.map_err(pg)
        })
    }

    fn partitions(&self) -> Result<Vec<TopicPartition>, LogError> {
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.db.get().await?;
            let rows = client
                .query(
                    "SELECT topic, partition FROM weir.partitions ORDER BY 1, 2",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .into_iter()
                .map(|r| TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1)))
                .collect())
        })
    }

    fn shutdown(&self) -> Result<(), LogError> {
        lock(&self.shared.gather).closed = true;
        self.shared.wake.notify_one();
        if let Some(rx) = lock(&self.flusher_done).take() {
            let wait = move || rx.recv_timeout(Duration::from_secs(10));
            let r = match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(wait)
                }
                _ => wait(),
            };
            if r.is_err() {
                warn!("the cluster flusher did not finish within 10 s");
            }
        }
        if self.shared.config.advertised.is_some() {
            // Leave the cluster now rather than when the heartbeat expires,
            // as Kafka's controlled shutdown moves leadership first. The
            // heartbeat stops first: one more round would register this
            // broker and take leases again after they were given up.
            let background = std::mem::take(&mut *lock(&self.background));
            for task in &background {
                task.abort();
            }
            let shared = self.shared.clone();
            let left = self.block(async move {
                for task in background {
                    let _ = task.await;
                }
                let client = shared.db.get().await?;
                // Its leases go at once too, so the groups move without
                // waiting for the leases to run out.
                lock(&shared.leases).held.clear();
                lock(&shared.leases).publish();
                client
                    .execute(
                        "UPDATE weir.coordinators SET expires_at = now() - interval '1 millisecond' WHERE holder = $1",
                        &[&shared.config.node_id],
                    )
                    .await
                    .map_err(pg)?;
                client
                    .execute(
                        "DELETE FROM weir.brokers WHERE node_id = $1",
                        &[&shared.config.node_id],
                    )
                    .await
                    .map_err(pg)
            });
            if let Err(e) = left {
                warn!(error = %e, "could not leave the cluster cleanly");
            }
        }
        Ok(())
    }

    fn stats(&self) -> Option<Arc<weir_storage::EngineStats>> {
        Some(self.shared.stats.clone())
    }

    fn shared(&self) -> Option<Arc<dyn SharedCatalog>> {
        Some(Arc::new(PgCatalog {
            shared: self.shared.clone(),
            handle: self.handle.clone(),
        }))
    }
}

/// Registers this broker and keeps its heartbeat fresh; reads the live
/// brokers each time.
async fn heartbeat(shared: Arc<Shared>) {
    let Some((host, port)) = shared.config.advertised.clone() else {
        return;
    };
    let every = Duration::from_millis((shared.config.broker_timeout_ms / 3).max(100));
    let timeout = shared.config.broker_timeout_ms as i64;
    // Expiring producers is idempotent, so every broker may do it; about
    // once a minute is enough for an expiration counted in hours.
    let expire_every = (60_000 / every.as_millis().max(1)).max(1);
    let mut beats: u128 = 0;
    loop {
        beats += 1;
        if beats % expire_every == 0 {
            let oldest = shared.clock.now_ms() - shared.config.producer_id_expiration_ms;
            let expired = async {
                let client = shared.db.get().await?;
                client
                    .execute(schema::EXPIRE_PRODUCERS, &[&oldest])
                    .await
                    .map_err(pg)
            };
            if let Err(e) = expired.await {
                warn!(error = %e, "cannot expire idle producers");
            }
        }
        let beat = async {
            let client = shared.db.get().await?;
            client
                .execute(schema::HEARTBEAT, &[&shared.config.node_id, &host, &port])
                .await
                .map_err(pg)?;
            let rows = client
                .query(schema::LIVE_BROKERS, &[&timeout])
                .await
                .map_err(pg)?;
            Ok::<_, LogError>(
                rows.into_iter()
                    .map(|r| BrokerAddr {
                        node_id: r.get(0),
                        host: r.get(1),
                        port: r.get(2),
                    })
                    .collect::<Vec<_>>(),
            )
        };
        match beat.await {
            Ok(live) => {
                *lock(&shared.brokers) = live.clone();
                if let Err(e) = lead(&shared, &live).await {
                    warn!(error = %e, "cannot renew or take coordinator leases");
                }
            }
            Err(e) => warn!(error = %e, "heartbeat failed"),
        }
        lock(&shared.leases).publish();
        tokio::time::sleep(every).await;
    }
}

/// One round of coordinator leases, after a heartbeat: renews the held
/// ones, releases those that fell to another live broker (after two
/// heartbeats in a row), takes those that fall to this one where nobody
/// holds an unexpired lease, and reads who holds the rest.
async fn lead(shared: &Shared, live: &[BrokerAddr]) -> Result<(), LogError> {
    let topics: Vec<(String, i32)> = lock(&shared.leases)
        .topics
        .iter()
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    if topics.is_empty() {
        return Ok(());
    }
    let me = shared.config.node_id;
    let ttl = i64::try_from(shared.config.coordinator_lease_ms).unwrap_or(i64::MAX);
    let client = shared.db.get().await?;
    let started = Instant::now();
    let valid_until = started + Duration::from_millis(shared.config.coordinator_lease_ms * 2 / 3);
    let held: Vec<((String, i32), i64)> = lock(&shared.leases)
        .held
        .iter()
        .map(|(k, (e, _))| (k.clone(), *e))
        .collect();
    let h_topic: Vec<&str> = held.iter().map(|((t, _), _)| t.as_str()).collect();
    let h_part: Vec<i32> = held.iter().map(|((_, p), _)| *p).collect();
    let h_epoch: Vec<i64> = held.iter().map(|(_, e)| *e).collect();
    let renewed: HashMap<(String, i32), i64> = client
        .query(
            schema::RENEW_LEASES,
            &[&me, &ttl, &h_topic, &h_part, &h_epoch],
        )
        .await
        .map_err(pg)?
        .into_iter()
        .map(|r| ((r.get::<_, String>(0), r.get::<_, i32>(1)), r.get(2)))
        .collect();
    let mut release = Vec::new();
    let mut acquire: Vec<(String, Vec<i32>)> = Vec::new();
    {
        let mut l = lock(&shared.leases);
        // Renewed at the same epoch: nobody took it meanwhile, so the
        // state this broker loaded is still the partition's.
        l.held.retain(|k, (epoch, until)| {
            let kept = renewed.get(k) == Some(epoch);
            if kept {
                *until = valid_until;
            }
            kept
        });
        for (topic, n) in &topics {
            let mut wanted = Vec::new();
            for p in 0..*n {
                let key = (topic.clone(), p);
                let mine = weir_storage::spread(live, topic, p) == me;
                match (l.held.get(&key).copied(), mine) {
                    (Some(_), true) => {
                        l.leaving.remove(&key);
                    }
                    (Some((epoch, _)), false) => {
                        if l.leaving.remove(&key) {
                            l.held.remove(&key);
                            release.push((key, epoch));
                        } else {
                            l.leaving.insert(key);
                        }
                    }
                    (None, true) => wanted.push(p),
                    (None, false) => {}
                }
            }
            if !wanted.is_empty() {
                acquire.push((topic.clone(), wanted));
            }
        }
        // Stop serving before the lease goes.
        l.publish();
    }
    for ((topic, p), epoch) in release {
        client
            .execute(schema::RELEASE_LEASE, &[&topic, &p, &me, &epoch])
            .await
            .map_err(pg)?;
        debug!(%topic, partition = p, "coordinator lease released");
    }
    for (topic, wanted) in acquire {
        let taken = client
            .query(schema::ACQUIRE_LEASES, &[&topic, &wanted, &me, &ttl])
            .await
            .map_err(pg)?;
        for r in taken {
            let (p, epoch): (i32, i64) = (r.get(0), r.get(1));
            // Whatever the former holder committed is in the database now
            // (its flushes hold the lease row until they commit): read the
            // offsets before anyone loads the partition.
            let part = lock(&shared.partitions)
                .get(&TopicPartition::new(topic.clone(), p))
                .cloned();
            if let Some(part) = part {
                refresh(shared, &part).await?;
            }
            lock(&shared.leases)
                .held
                .insert((topic.clone(), p), (epoch, valid_until));
            tracing::info!(%topic, partition = p, epoch, "coordinator lease taken");
        }
    }
    let holders: HashMap<(String, i32), i32> = client
        .query(schema::LEASES, &[])
        .await
        .map_err(pg)?
        .into_iter()
        .map(|r| ((r.get::<_, String>(0), r.get::<_, i32>(1)), r.get(2)))
        .collect();
    lock(&shared.leases).holders = holders;
    Ok(())
}

/// Runs `sql` ([`schema::SEAL_TRANSACTION`], [`schema::OPEN_TRANSACTION`]:
/// `$1` the transactional id, `$2`-`$5` the lease and this broker, then
/// `more`), which changes nothing unless this broker holds `lease`;
/// not-coordinator then. Answers the connection, for what follows.
async fn under_lease(
    shared: &Shared,
    sql: &str,
    id: &str,
    lease: &Lease,
    more: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Arc<Client>, LogError> {
    let client = shared.db.get().await?;
    let me = shared.config.node_id;
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&id, &lease.topic, &lease.partition, &me, &lease.epoch];
    params.extend_from_slice(more);
    let held: i64 = client.query_one(sql, &params).await.map_err(pg)?.get(0);
    if held == 0 {
        return Err(not_coordinator(&TopicPartition::new(
            lease.topic.clone(),
            lease.partition,
        )));
    }
    Ok(client)
}

/// A row of [`schema::JOINED_PARTITIONS`] or [`schema::JOINED_BY_COORDINATOR`].
fn joined_partition(r: &tokio_postgres::Row) -> JoinedPartition {
    JoinedPartition {
        transactional_id: r.get(0),
        producer_id: r.get(1),
        producer_epoch: r.get(2),
        topic: r.get(3),
        partition: r.get(4),
        joined_ms: r.get(5),
    }
}

/// How long [`SharedCatalog::lock`] waits for another holder (a broker
/// that died releases it at once; one that hangs holding it does not).
const CLUSTER_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The catalog and membership in PostgreSQL ([`SharedCatalog`]).
#[derive(Debug)]
pub struct PgCatalog {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
}

impl SharedCatalog for PgCatalog {
    fn load(&self) -> Result<Option<(i64, Vec<u8>)>, LogError> {
        let shared = self.shared.clone();
        block_on(&self.handle, async move {
            let client = shared.db.get().await?;
            let row = client
                .query_opt("SELECT version, body FROM weir.catalog WHERE id = 1", &[])
                .await
                .map_err(pg)?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn save(&self, expected: i64, body: &[u8]) -> Result<Option<i64>, LogError> {
        let shared = self.shared.clone();
        let body = body.to_vec();
        block_on(&self.handle, async move {
            let client = shared.db.get().await?;
            let row = if expected == 0 {
                client.query_opt(schema::FIRST_CATALOG, &[&body]).await
            } else {
                client
                    .query_opt(schema::SAVE_CATALOG, &[&expected, &body])
                    .await
            }
            .map_err(pg)?;
            let version = row.map(|r| r.get::<_, i64>(0));
            if let Some(v) = version {
                shared.catalog_version.send_modify(|c| *c = v.max(*c));
            }
            Ok(version)
        })
    }

    fn watch(&self) -> watch::Receiver<i64> {
        self.shared.catalog_version.subscribe()
    }

    fn brokers(&self) -> Vec<BrokerAddr> {
        lock(&self.shared.brokers).clone()
    }

    fn lock(&self, name: &str) -> Option<BoxFuture<'static, Result<ClusterLock, LogError>>> {
        let target = self.shared.db.target.clone();
        let name = name.to_string();
        Some(Box::pin(async move {
            // A session of its own, held as long as the lock: the server
            // releases the lock when the session ends, also when this
            // broker dies holding it.
            let take = async {
                let client = connect_pg(&target).await?;
                client
                    .execute(schema::CLUSTER_LOCK, &[&name])
                    .await
                    .map_err(pg)?;
                Ok::<_, LogError>(client)
            };
            // Dropping the attempt closes its session, so a lock granted
            // too late is not kept.
            match tokio::time::timeout(CLUSTER_LOCK_WAIT, take).await {
                Ok(client) => client.map(ClusterLock::new),
                Err(_) => Err(retriable(&format!(
                    "another broker held the cluster lock {name} for {} s",
                    CLUSTER_LOCK_WAIT.as_secs()
                ))),
            }
        }))
    }

    fn reserve_producer_ids(&self) -> Result<Option<std::ops::Range<i64>>, LogError> {
        let shared = self.shared.clone();
        block_on(&self.handle, async move {
            let client = shared.db.get().await?;
            let row = client
                .query_one(schema::RESERVE_PRODUCER_IDS, &[])
                .await
                .map_err(pg)?;
            let (first, size): (i64, i64) = (row.get(0), row.get(1));
            Ok(Some(first..first + size))
        })
    }

    fn lead_coordinators(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Option<watch::Receiver<BTreeMap<i32, i64>>> {
        let mut l = lock(&self.shared.leases);
        l.topics.insert(topic.to_string(), partitions);
        Some(
            l.watchers
                .entry(topic.to_string())
                .or_insert_with(|| watch::channel(BTreeMap::new()).0)
                .subscribe(),
        )
    }

    fn coordinator_epoch(&self, topic: &str, partition: i32) -> Option<i64> {
        lock(&self.shared.leases).epoch(topic, partition)
    }

    fn join_transaction(
        &self,
        transactional_id: &str,
        coordinator: i32,
        (producer_id, epoch): (i64, i16),
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Option<JoinRefused>, LogError> {
        let shared = self.shared.clone();
        let id = transactional_id.to_string();
        let mut parts = partitions.to_vec();
        parts.sort_unstable();
        parts.dedup();
        block_on(&self.handle, async move {
            let topics: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
            let nums: Vec<i32> = parts.iter().map(|(_, p)| *p).collect();
            let client = shared.db.get().await?;
            let gate = client
                .query_opt(
                    schema::JOIN_TRANSACTION,
                    &[
                        &id,
                        &producer_id,
                        &epoch,
                        &coordinator,
                        &now_ms,
                        &topics,
                        &nums,
                    ],
                )
                .await
                .map_err(pg)?;
            Ok(match gate {
                None => Some(JoinRefused::UnknownProducer),
                Some(r) if r.get::<_, i64>(0) != producer_id => Some(JoinRefused::UnknownProducer),
                Some(r) if r.get::<_, i16>(1) != epoch => Some(JoinRefused::StaleEpoch),
                Some(r) if !r.get::<_, bool>(2) => Some(JoinRefused::Closed),
                Some(_) => None,
            })
        })
    }

    fn seal_transaction(
        &self,
        transactional_id: &str,
        lease: &Lease,
    ) -> Result<Vec<JoinedPartition>, LogError> {
        let (shared, id) = (self.shared.clone(), transactional_id.to_string());
        let lease = lease.clone();
        block_on(&self.handle, async move {
            let client = under_lease(&shared, schema::SEAL_TRANSACTION, &id, &lease, &[]).await?;
            let rows = client
                .query(schema::JOINED_PARTITIONS, &[&id])
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(joined_partition).collect())
        })
    }

    fn open_transaction(
        &self,
        transactional_id: &str,
        lease: &Lease,
        (producer_id, epoch): (i64, i16),
        keep_current: bool,
    ) -> Result<(), LogError> {
        let (shared, id) = (self.shared.clone(), transactional_id.to_string());
        let lease = lease.clone();
        block_on(&self.handle, async move {
            let more: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [&producer_id, &epoch, &keep_current];
            under_lease(&shared, schema::OPEN_TRANSACTION, &id, &lease, &more).await?;
            Ok(())
        })
    }

    fn joined_transactions(&self, coordinators: &[i32]) -> Result<Vec<JoinedPartition>, LogError> {
        let shared = self.shared.clone();
        let coordinators = coordinators.to_vec();
        block_on(&self.handle, async move {
            let client = shared.db.get().await?;
            let rows = client
                .query(schema::JOINED_BY_COORDINATOR, &[&coordinators])
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(joined_partition).collect())
        })
    }

    fn coordinator_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let me = self.shared.config.node_id;
        let key = (topic.to_string(), partition);
        {
            let l = lock(&self.shared.leases);
            if l.epoch(topic, partition).is_some() {
                return Some(me);
            }
            if let Some(h) = l.holders.get(&key).filter(|h| **h != me) {
                return Some(*h);
            }
        }
        // Not known as of the last heartbeat: another broker may have
        // taken the lease since (up to a heartbeat ago). Ask the database
        // rather than answer COORDINATOR_NOT_AVAILABLE from a stale view;
        // some clients (librdkafka's admin API) wait long before asking
        // again.
        let shared = self.shared.clone();
        let (t, p) = key.clone();
        let holder = block_on(&self.handle, async move {
            let client = shared.db.get().await?;
            let row = client
                .query_opt(schema::LEASE_HOLDER, &[&t, &p])
                .await
                .map_err(pg)?;
            Ok(row.map(|r| r.get::<_, i32>(0)))
        });
        match holder {
            Ok(Some(h)) if h != me => {
                lock(&self.shared.leases).holders.insert(key, h);
                Some(h)
            }
            Ok(_) => None,
            Err(e) => {
                debug!(error = %e, %topic, partition, "cannot read the coordinator lease");
                None
            }
        }
    }
}

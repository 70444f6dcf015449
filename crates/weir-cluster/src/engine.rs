//! The engine: partitions whose batches live in intake objects and whose
//! offsets and index live in PostgreSQL.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use tokio::sync::{oneshot, watch, Notify};
use tokio_postgres::{Client, NoTls};
use tracing::{debug, warn};
use weir_storage::batch::{self, BatchHeader, HEADER_SIZE};
use weir_storage::producer::{AbortedTxn, ProducerEntry};
use weir_storage::{
    AppendInfo, BoxFuture, BrokerAddr, Clock, LogConfig, LogEngine, LogError, LogOffsets,
    PartitionLog, ReadLimit, ReadResult, SharedCatalog, TimestampOffset, TopicPartition,
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
    /// Bytes of recent chunks kept in memory for tail reads.
    pub cache_bytes: usize,
    /// The address clients reach this broker at; with it, the broker
    /// registers and heartbeats in `weir.brokers`.
    pub advertised: Option<(String, i32)>,
    /// A broker that has not heartbeated for this long is out of the
    /// cluster (it heartbeats three times as often).
    pub broker_timeout_ms: u64,
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
            cache_bytes: 64 << 20,
            advertised: None,
            broker_timeout_ms: 6000,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pg(e: tokio_postgres::Error) -> LogError {
    ClusterError::Postgres(e).into()
}

fn store_err(e: object_store::Error) -> LogError {
    ClusterError::Store(e).into()
}

/// What the engine knows of one partition between database round trips.
#[derive(Debug)]
struct PartState {
    tp: TopicPartition,
    config: Mutex<LogConfig>,
    offsets: Mutex<Offsets>,
    /// The log end, for long-polling fetches.
    end: watch::Sender<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Offsets {
    log_start: i64,
    log_end: i64,
    size: u64,
    /// The largest leader epoch appended through this broker.
    epoch: i32,
    removed: bool,
}

impl PartState {
    fn new(tp: TopicPartition, config: LogConfig) -> Self {
        Self {
            tp,
            config: Mutex::new(config),
            offsets: Mutex::new(Offsets::default()),
            end: watch::channel(0).0,
        }
    }

    /// Moves the known offsets forward (they never move back: commits
    /// and notifications may arrive in any order).
    fn advance(&self, log_end: i64, log_start: i64, size: Option<u64>) {
        let mut o = lock(&self.offsets);
        o.log_end = o.log_end.max(log_end);
        o.log_start = o.log_start.max(log_start);
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
    // the high watermark and last stable offset are the log end.
    LogOffsets {
        log_start: o.log_start,
        high_watermark: o.log_end,
        last_stable: o.log_end,
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
    done: oneshot::Sender<Result<AppendInfo, LogError>>,
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

/// A connection that reconnects on its next use once it has failed.
struct Db {
    url: String,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl Db {
    async fn get(&self) -> Result<Arc<Client>, LogError> {
        let mut c = self.client.lock().await;
        if let Some(client) = c.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(pg)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        let client = Arc::new(client);
        *c = Some(client.clone());
        Ok(client)
    }
}

/// What every partition handle and the background tasks share.
struct Shared {
    config: ClusterConfig,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// Reads, opens and DeleteRecords.
    db: Db,
    partitions: Mutex<HashMap<TopicPartition, Arc<PartState>>>,
    gather: Mutex<Gather>,
    wake: Notify,
    cache: Mutex<TailCache>,
    clock: Clock,
    stats: Arc<weir_storage::EngineStats>,
    /// The newest catalog version notified.
    catalog_version: watch::Sender<i64>,
    /// The live brokers, as of the last heartbeat.
    brokers: Mutex<Vec<BrokerAddr>>,
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
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url);
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-cluster")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        let (store, prefix) = open_store(&config.object_store)?;
        let shared = Arc::new(Shared {
            store,
            prefix,
            db: Db {
                url: config.postgres.clone(),
                client: tokio::sync::Mutex::new(None),
            },
            partitions: Mutex::default(),
            gather: Mutex::default(),
            wake: Notify::new(),
            cache: Mutex::new(TailCache {
                limit: config.cache_bytes,
                ..TailCache::default()
            }),
            clock,
            stats: Arc::default(),
            catalog_version: watch::channel(0).0,
            brokers: Mutex::default(),
            config,
        });
        let setup = {
            let shared = shared.clone();
            handle.spawn(async move {
                let client = shared
                    .db
                    .get()
                    .await
                    .map_err(|e| ClusterError::Runtime(e.to_string()))?;
                client.batch_execute(schema::CREATE).await?;
                Ok::<_, ClusterError>(())
            })
        };
        setup
            .await
            .map_err(|e| ClusterError::Runtime(e.to_string()))??;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        handle.spawn(flusher(shared.clone(), done_tx));
        let (listening, listens) = oneshot::channel();
        handle.spawn(listener(shared.clone(), listening));
        if shared.config.advertised.is_some() {
            handle.spawn(heartbeat(shared.clone()));
        }
        // Only once this broker listens can it rely on notifications.
        tokio::time::timeout(Duration::from_secs(30), listens)
            .await
            .map_err(|_| {
                ClusterError::Runtime("no LISTEN connection to PostgreSQL within 30 s".into())
            })?
            .map_err(|_| ClusterError::Runtime("the notification listener stopped".into()))?;
        Ok(Self {
            shared,
            runtime: Mutex::new(Some(runtime)),
            handle,
            flusher_done: Mutex::new(Some(done_rx)),
        })
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

/// Gathers appends and flushes them, one flush at a time, so offsets
/// follow the order appends were called in.
async fn flusher(shared: Arc<Shared>, done: std::sync::mpsc::Sender<()>) {
    let mut client: Option<Client> = None;
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
        if client.as_ref().is_none_or(Client::is_closed) {
            match tokio_postgres::connect(&shared.config.postgres, NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            warn!(error = %e, "PostgreSQL connection ended");
                        }
                    });
                    client = Some(c);
                }
                Err(e) => {
                    warn!(error = %e, "cannot reach PostgreSQL; failing the gathered appends");
                    let err = e.to_string();
                    for p in entries {
                        let _ = p.done.send(Err(retriable(&err)));
                    }
                    continue;
                }
            }
        }
        if let Some(c) = client.as_mut() {
            flush(&shared, c, entries).await;
        }
    }
    let _ = done.send(());
}

fn retriable(reason: &str) -> LogError {
    LogError::Io {
        path: "cluster storage".into(),
        source: std::io::Error::other(reason.to_string()),
    }
}

/// Writes one object for `entries`, sequences them in one transaction,
/// and answers each append.
async fn flush(shared: &Shared, client: &mut Client, entries: Vec<Pending>) {
    let started = Instant::now();
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
    let name = format!("intake/{}/{}", shared.config.node_id, uuid::Uuid::new_v4());
    let key = if shared.prefix.as_ref().is_empty() {
        ObjectPath::from(name)
    } else {
        ObjectPath::from(format!("{}/{name}", shared.prefix))
    };
    let size = object.len();
    if let Err(e) = shared.store.put(&key, object.into()).await {
        warn!(error = %e, "intake object write failed; failing the gathered appends");
        let err = e.to_string();
        for p in entries {
            let _ = p.done.send(Err(retriable(&err)));
        }
        return;
    }
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
        Ok(placed) => {
            let mut cache = lock(&shared.cache);
            for ((p, base), (end, start)) in entries.iter().zip(&placed.bases).zip(&placed.ends) {
                let Some(base) = *base else {
                    continue;
                };
                if let Ok(c) = format::place(&p.chunk, base) {
                    cache.put(&p.part.tp, base, c);
                }
                p.part.advance(*end, *start, None);
            }
            drop(cache);
            shared.stats.fsync.observe(started.elapsed());
            for (p, base) in entries.into_iter().zip(placed.bases) {
                let answer = match base {
                    Some(base) => Ok(AppendInfo {
                        base_offset: base,
                        last_offset: base + p.offset_count - 1,
                        log_append_time: p.log_append_time,
                        log_start: lock(&p.part.offsets).log_start,
                    }),
                    None => Err(LogError::Removed {
                        partition: p.part.tp.to_string(),
                    }),
                };
                let _ = p.done.send(answer);
            }
            debug!(%key, size, "intake object committed");
        }
        Err(e) => {
            // Nothing was committed: the object is unreferenced and the
            // appends were not acknowledged, so the producers retry.
            warn!(error = %e, %key, "sequencing failed; failing the gathered appends");
            let err = e.to_string();
            for p in entries {
                let _ = p.done.send(Err(retriable(&err)));
            }
        }
    }
}

struct Placed {
    /// Each entry's base offset; `None` if its partition is gone.
    bases: Vec<Option<i64>>,
    /// Each entry's partition's log end and start after the commit.
    ends: Vec<(i64, i64)>,
}

/// The transaction: lock the partitions in order, move their next
/// offsets, index every chunk, notify, commit.
async fn sequence(
    client: &mut Client,
    key: &ObjectPath,
    size: usize,
    node_id: i32,
    entries: &[Pending],
    positions: &[u64],
) -> Result<Placed, tokio_postgres::Error> {
    // Offsets and bytes per partition, in first-seen order.
    let mut order: Vec<&TopicPartition> = Vec::new();
    let mut totals: HashMap<&TopicPartition, (i64, i64)> = HashMap::new();
    for p in entries {
        let t = totals.entry(&p.part.tp).or_insert_with(|| {
            order.push(&p.part.tp);
            (0, 0)
        });
        t.0 += p.offset_count;
        t.1 += p.chunk.len() as i64;
    }
    let topics: Vec<&str> = order.iter().map(|tp| tp.topic.as_str()).collect();
    let parts: Vec<i32> = order.iter().map(|tp| tp.partition).collect();
    let counts: Vec<i64> = order.iter().map(|tp| totals[tp].0).collect();
    let bytes: Vec<i64> = order.iter().map(|tp| totals[tp].1).collect();
    let tx = client.transaction().await?;
    tx.execute(schema::LOCK, &[&topics, &parts]).await?;
    let rows = tx
        .query(schema::SEQUENCE, &[&topics, &parts, &counts, &bytes])
        .await?;
    // (next offset to give, log end after, log start)
    let mut next: HashMap<TopicPartition, (i64, i64, i64)> = HashMap::new();
    for r in rows {
        let tp = TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1));
        next.insert(tp, (r.get(2), r.get(3), r.get(4)));
    }
    let mut bases = Vec::with_capacity(entries.len());
    let mut ends = Vec::with_capacity(entries.len());
    let (mut i_topic, mut i_part, mut i_base, mut i_last, mut i_pos, mut i_size, mut i_ts) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (p, pos) in entries.iter().zip(positions) {
        match next.get_mut(&p.part.tp) {
            Some((n, end, start)) => {
                let base = *n;
                *n += p.offset_count;
                bases.push(Some(base));
                ends.push((*end, *start));
                i_topic.push(p.part.tp.topic.as_str());
                i_part.push(p.part.tp.partition);
                i_base.push(base);
                i_last.push(base + p.offset_count - 1);
                i_pos.push(*pos as i64);
                i_size.push(i32::try_from(p.chunk.len()).unwrap_or(i32::MAX));
                i_ts.push(p.max_timestamp);
            }
            None => {
                bases.push(None);
                ends.push((0, 0));
            }
        }
    }
    if !i_topic.is_empty() {
        tx.execute(
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
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Placed { bases, ends })
}

/// Follows other brokers' commits (LISTEN), so offsets and long polls
/// move without asking the database; after a reconnect, rereads every
/// open partition's offsets, since notifications were missed meanwhile.
async fn listener(shared: Arc<Shared>, listening: oneshot::Sender<()>) {
    let mut listening = Some(listening);
    loop {
        match tokio_postgres::connect(&shared.config.postgres, NoTls).await {
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
        tokio::time::sleep(Duration::from_millis(500)).await;
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
    let part = lock(&shared.partitions)
        .get(&TopicPartition::new(topic, p))
        .cloned();
    if let Some(part) = part {
        part.advance(end, start, None);
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
            "SELECT log_start, next_offset, size_bytes FROM weir.partitions WHERE topic = $1 AND partition = $2",
            &[&part.tp.topic, &part.tp.partition],
        )
        .await
        .map_err(pg)?;
    let Some(row) = row else {
        lock(&part.offsets).removed = true;
        return Err(LogError::Removed {
            partition: part.tp.to_string(),
        });
    };
    part.advance(
        row.get(1),
        row.get(0),
        u64::try_from(row.get::<_, i64>(2)).ok(),
    );
    part.live()
}

/// A partition handle: the shared engine and this partition's state.
#[derive(Debug)]
pub struct ClusterPartition {
    shared: Arc<Shared>,
    part: Arc<PartState>,
}

impl ClusterPartition {
    /// Validates and stamps an append and queues it for the next flush.
    fn enqueue(
        &self,
        records: &Bytes,
        epoch: i32,
    ) -> Result<oneshot::Receiver<Result<AppendInfo, LogError>>, LogError> {
        self.part.live()?;
        let config = lock(&self.part.config).clone();
        let v = batch::validate_append(records, &config, self.shared.clock.now_ms())?;
        let mut chunk = BytesMut::with_capacity(v.size);
        let mut rel = 0i64;
        let mut max_timestamp = -1i64;
        for b in &v.batches {
            let h = BatchHeader::parse(&b.header).ok_or_else(|| LogError::InvalidRecord {
                reason: "batch header does not parse".into(),
            })?;
            // Idempotence and transactions need their sequence checks in
            // the sequencing transaction, which this engine does not do
            // yet: refuse rather than accept without the guarantees.
            if h.producer_id >= 0 || h.is_transactional() || h.is_control() {
                return Err(LogError::InvalidRecord {
                    reason: "idempotent and transactional producers are not supported in cluster mode yet".into(),
                });
            }
            let mut header = b.header;
            batch::set_base_offset(&mut header, rel);
            batch::set_partition_leader_epoch(&mut header, epoch);
            chunk.extend_from_slice(&header);
            chunk.extend_from_slice(&records[b.range.start + HEADER_SIZE..b.range.end]);
            rel += b.offset_count;
            max_timestamp = max_timestamp.max(b.max_timestamp);
        }
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

/// One index row as a read sees it.
struct Row {
    base: i64,
    key: String,
    position: u64,
    size: usize,
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
    Ok(rows
        .into_iter()
        .map(|r| Row {
            base: r.get(0),
            key: r.get(2),
            position: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            size: usize::try_from(r.get::<_, i32>(4)).unwrap_or(0),
        })
        .collect())
}

/// The placed chunks of `rows`, from the cache or the store (one ranged
/// read per object).
async fn chunks(
    shared: &Shared,
    tp: &TopicPartition,
    rows: &[Row],
) -> Result<Vec<Bytes>, LogError> {
    let mut out: Vec<Option<Bytes>> = {
        let cache = lock(&shared.cache);
        rows.iter().map(|r| cache.get(tp, r.base)).collect()
    };
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if out[i].is_none() {
            by_key.entry(r.key.as_str()).or_default().push(i);
        }
    }
    let fetched = join_all(by_key.into_iter().map(|(key, idx)| async move {
        let ranges: Vec<std::ops::Range<u64>> = idx
            .iter()
            .map(|&i| rows[i].position..rows[i].position + rows[i].size as u64)
            .collect();
        let got = shared
            .store
            .get_ranges(&ObjectPath::from(key), &ranges)
            .await
            .map_err(store_err)?;
        Ok::<_, LogError>((idx, got))
    }))
    .await;
    let mut cache = lock(&shared.cache);
    for f in fetched {
        let (idx, got) = f?;
        for (i, raw) in idx.into_iter().zip(got) {
            let placed = format::place(&raw, rows[i].base).map_err(LogError::from)?;
            cache.put(tp, rows[i].base, placed.clone());
            out[i] = Some(placed);
        }
    }
    Ok(out.into_iter().flatten().collect())
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
        let queued = self.enqueue(&records, leader_epoch);
        Box::pin(async move { queued?.await.map_err(|_| LogError::Closed)? })
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
            let got = chunks(&shared, &part.tp, &rows[..take]).await?;
            let mut out = BytesMut::with_capacity(total);
            for (i, c) in got.iter().enumerate() {
                // The first chunk may hold batches wholly below `offset`:
                // the answer starts with the batch that contains it.
                let skip = if i == 0 { skip_below(c, offset) } else { 0 };
                out.extend_from_slice(&c[skip..]);
            }
            Ok(ReadResult {
                records: out.freeze(),
                offsets,
            })
        })
    }

    fn offsets(&self) -> LogOffsets {
        log_offsets(&lock(&self.part.offsets))
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
                    "SELECT b.base_offset, b.last_offset, o.key, b.position, b.size FROM weir.batches b
                     JOIN weir.objects o ON o.id = b.object_id
                     WHERE b.topic = $1 AND b.partition = $2 AND b.max_timestamp >= $3 AND b.last_offset >= $4
                     ORDER BY b.base_offset LIMIT 1",
                    &[&part.tp.topic, &part.tp.partition, &timestamp, &o.log_start],
                )
                .await
                .map_err(pg)?;
            let rows: Vec<Row> = rows
                .into_iter()
                .map(|r| Row {
                    base: r.get(0),
                    key: r.get(2),
                    position: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                    size: usize::try_from(r.get::<_, i32>(4)).unwrap_or(0),
                })
                .collect();
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
                    "SELECT b.base_offset, b.last_offset, o.key, b.position, b.size, b.max_timestamp FROM weir.batches b
                     JOIN weir.objects o ON o.id = b.object_id
                     WHERE b.topic = $1 AND b.partition = $2 AND b.last_offset >= $3
                     ORDER BY b.max_timestamp DESC, b.base_offset LIMIT 1",
                    &[&part.tp.topic, &part.tp.partition, &o.log_start],
                )
                .await
                .map_err(pg)?;
            let Some(r) = row else { return Ok(None) };
            let ts: i64 = r.get(5);
            let rows = vec![Row {
                base: r.get(0),
                key: r.get(2),
                position: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                size: usize::try_from(r.get::<_, i32>(4)).unwrap_or(0),
            }];
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
            let row = client
                .query_opt(
                    "UPDATE weir.partitions SET log_start = GREATEST(log_start, $3)
                     WHERE topic = $1 AND partition = $2 AND $3 <= next_offset
                     RETURNING log_start, next_offset,
                        pg_notify('weir_log', topic || E'\\t' || partition || E'\\t' || next_offset || E'\\t' || log_start)",
                    &[&part.tp.topic, &part.tp.partition, &offset],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else {
                let o = refresh(&shared, &part).await?;
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: o.log_start,
                    log_end: o.log_end,
                });
            };
            let (start, end): (i64, i64) = (row.get(0), row.get(1));
            // Rows wholly below the new start are unreachable; their
            // objects are left for the collector (not built yet).
            client
                .execute(
                    "DELETE FROM weir.batches WHERE topic = $1 AND partition = $2 AND last_offset < $3",
                    &[&part.tp.topic, &part.tp.partition, &start],
                )
                .await
                .map_err(pg)?;
            part.advance(end, start, None);
            Ok(start)
        })
    }

    fn size_bytes(&self) -> u64 {
        lock(&self.part.offsets).size
    }

    fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        Vec::new()
    }

    fn aborted_transactions(&self, _from: i64, _to: i64) -> Vec<AbortedTxn> {
        Vec::new()
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
        let (log_start, next, size) = self.block(async move {
            let client = shared.db.get().await?;
            client
                .execute(
                    "INSERT INTO weir.partitions (topic, partition) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&key.topic, &key.partition],
                )
                .await
                .map_err(pg)?;
            let row = client
                .query_one(
                    "SELECT log_start, next_offset, size_bytes FROM weir.partitions WHERE topic = $1 AND partition = $2",
                    &[&key.topic, &key.partition],
                )
                .await
                .map_err(pg)?;
            Ok((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)))
        })?;
        let mut parts = lock(&self.shared.partitions);
        let reuse = parts.get(tp).filter(|p| {
            let o = lock(&p.offsets);
            // A row behind what this broker saw is a new partition of the
            // same name (the topic was deleted and created again).
            !o.removed && o.log_end <= next
        });
        let part = match reuse {
            Some(p) => {
                *lock(&p.config) = config;
                p.clone()
            }
            None => {
                if let Some(old) = parts.get(tp) {
                    lock(&old.offsets).removed = true;
                }
                let p = Arc::new(PartState::new(tp.clone(), config));
                parts.insert(tp.clone(), p.clone());
                p
            }
        };
        drop(parts);
        part.advance(next, log_start, u64::try_from(size).ok());
        Ok(Arc::new(ClusterPartition {
            shared: self.shared.clone(),
            part,
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
            // Index rows first, then the partition; the objects are left
            // for the collector (not built yet).
            client.batch_execute("BEGIN").await.map_err(pg)?;
            let r = async {
                client
                    .execute(
                        "DELETE FROM weir.batches WHERE topic = $1 AND partition = $2",
                        &[&tp.topic, &tp.partition],
                    )
                    .await?;
                client
                    .execute(
                        "DELETE FROM weir.partitions WHERE topic = $1 AND partition = $2",
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
            // Leave the cluster now rather than when the heartbeat expires.
            let shared = self.shared.clone();
            let left = self.block(async move {
                let client = shared.db.get().await?;
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
    loop {
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
            Ok(live) => *lock(&shared.brokers) = live,
            Err(e) => warn!(error = %e, "heartbeat failed"),
        }
        tokio::time::sleep(every).await;
    }
}

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
}

//! Background work: retention, compaction of intake objects, cleaning of
//! compacted topics, merging of compacted objects and the object
//! collector, each run by exactly one live broker at a time.
//!
//! The work is split into `job_slots` slots; a partition belongs to slot
//! `(fnv1a64(topic) + partition) mod job_slots`, and slot 0 also runs the
//! collector. Each slot is a lease row in `weir.coordinators` under the
//! topic [`JOBS`] (a name no Kafka topic can have), taken, renewed and
//! moved by the same heartbeat rounds as the group coordinators' leases:
//! a killed holder's slots go to another live broker once its leases run
//! out. Every transaction a job commits first reads its lease row `FOR
//! SHARE` at the epoch it holds, so a former holder that was paused
//! commits nothing after a takeover. Deleting rows needs no fence (a
//! second deleter deletes nothing more), nor does the collector (it
//! deletes only what stays garbage).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use tokio_postgres::Client;
use tracing::{debug, info, warn};
use weir_storage::batch::{self, BatchHeader, HEADER_SIZE};
use weir_storage::{LogConfig, LogError, TopicPartition};

use crate::engine::{
    connect_pg, lock, pg, read_spans, record_deadline, store_err, wall_ms, PartState, Shared,
};
use crate::format::{self, Entry};
use crate::schema;

/// The lease topic of the background jobs in `weir.coordinators`: the
/// colon keeps it apart from every Kafka topic name.
pub(crate) const JOBS: &str = "weir:jobs";

/// The slot a partition's jobs run in.
pub(crate) fn slot_of(tp: &TopicPartition, slots: i32) -> i32 {
    let h = tp.topic.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let n = u64::from(slots.max(1).unsigned_abs());
    i32::try_from(h.wrapping_add(u64::from(tp.partition.unsigned_abs())) % n).unwrap_or(0)
}

/// The key of an object named `name` under the store's prefix.
pub(crate) fn object_key(shared: &Shared, name: &str) -> ObjectPath {
    if shared.prefix.as_ref().is_empty() {
        ObjectPath::from(name)
    } else {
        ObjectPath::from(format!("{}/{name}", shared.prefix))
    }
}

fn ms(d: u64) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// Every `job_interval_ms`, runs the slots this broker holds.
pub(crate) async fn run(shared: Arc<Shared>) {
    let every = Duration::from_millis(shared.config.job_interval_ms.max(10));
    let slots = shared.config.job_slots.max(1);
    // Transactions need a connection of their own (the shared one
    // interleaves other callers' statements).
    let mut client: Option<Client> = None;
    let mut pass: u64 = 0;
    loop {
        tokio::time::sleep(every).await;
        let held: Vec<(i32, i64)> = {
            let l = lock(&shared.leases);
            (0..slots)
                .filter_map(|s| l.epoch(JOBS, s).map(|e| (s, e)))
                .collect()
        };
        if held.is_empty() {
            continue;
        }
        if client.as_ref().is_none_or(Client::is_closed) {
            match connect_pg(&shared.db.target).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    warn!(error = %e, "background jobs cannot reach PostgreSQL");
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        pass += 1;
        for (slot, epoch) in held {
            run_slot(&shared, c, slot, epoch, pass).await;
        }
    }
}

/// One pass of a slot: retention, compaction, cleaning and merging, of
/// each of its partitions; slot 0 then collects garbage.
async fn run_slot(shared: &Shared, client: &mut Client, slot: i32, epoch: i64, pass: u64) {
    let slots = shared.config.job_slots.max(1);
    let parts: Vec<Arc<PartState>> = lock(&shared.partitions)
        .values()
        .filter(|p| slot_of(&p.tp, slots) == slot && !lock(&p.offsets).removed)
        .cloned()
        .collect();
    for part in parts {
        let config = lock(&part.config).clone();
        if let Err(e) = retain(client, &part, &config, shared.clock.now_ms()).await {
            warn!(partition = %part.tp, error = %e, "retention failed");
        }
        if let Err(e) = compact(shared, client, &part, slot, epoch).await {
            warn!(partition = %part.tp, error = %e, "compaction failed");
        }
        if config.cleanup_compact {
            let now = shared.clock.now_ms();
            if let Err(e) = clean(shared, client, &part, &config, (slot, epoch), now).await {
                warn!(partition = %part.tp, error = %e, "cleaning a compacted partition failed");
            }
        }
        if let Err(e) = merge(shared, client, &part, &config, (slot, epoch)).await {
            warn!(partition = %part.tp, error = %e, "merging compacted objects failed");
        }
    }
    if slot == 0 {
        if let Err(e) = collect(shared, client, pass).await {
            warn!(error = %e, "object collection failed");
        }
    }
}

/// Moves partition `tp`'s log start to `offset` and deletes the index
/// rows wholly below it (DeleteRecords and retention); `None` if `offset`
/// is past the log end. Answers the new (log start, log end, size).
/// `None` too if the partition is no longer `part`'s incarnation.
pub(crate) async fn move_log_start(
    client: &Client,
    part: &PartState,
    offset: i64,
) -> Result<Option<(i64, i64, i64)>, LogError> {
    let tp = &part.tp;
    let row = client
        .query_opt(
            schema::MOVE_LOG_START,
            &[&tp.topic, &tp.partition, &offset, &part.incarnation],
        )
        .await
        .map_err(pg)?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// `retention.ms` and `retention.bytes` (with `cleanup.policy=delete`):
/// the log start moves past the oldest index rows as Kafka's retention
/// deletes the oldest segments (a row is this engine's segment), and
/// rows left below the log start are deleted.
async fn retain(
    client: &Client,
    part: &PartState,
    config: &LogConfig,
    now_ms: i64,
) -> Result<(), LogError> {
    let tp = &part.tp;
    let by_time = config.cleanup_delete && config.retention_ms >= 0;
    let by_size = config.cleanup_delete && config.retention_bytes >= 0;
    let cutoff = if by_time {
        now_ms.saturating_sub(config.retention_ms)
    } else {
        i64::MIN
    };
    let max_bytes = if by_size {
        config.retention_bytes
    } else {
        i64::MAX
    };
    let Some(r) = client
        .query_opt(
            schema::RETENTION,
            &[
                &tp.topic,
                &tp.partition,
                &cutoff,
                &max_bytes,
                &by_time,
                &by_size,
                &part.incarnation,
            ],
        )
        .await
        .map_err(pg)?
    else {
        return Ok(());
    };
    let (end, start): (i64, i64) = (r.get(0), r.get(1));
    // With no row left to keep, everything up to the log end goes.
    let time_start = if by_time {
        r.get::<_, Option<i64>>(2).unwrap_or(end)
    } else {
        start
    };
    let size_start = if by_size {
        r.get::<_, Option<i64>>(3).unwrap_or(end)
    } else {
        start
    };
    let stale_rows: bool = r.get(4);
    let target = start.max(time_start).max(size_start);
    if target == start && !stale_rows {
        return Ok(());
    }
    if let Some((start, end, size)) = move_log_start(client, part, target).await? {
        part.advance(end, start, None, u64::try_from(size).ok());
        debug!(partition = %tp, log_start = start, "retention moved the log start");
    }
    Ok(())
}

/// One index row as the jobs that rewrite objects read it.
struct IndexRow {
    base: i64,
    last: i64,
    object_id: i64,
    key: String,
    position: u64,
    size: usize,
    max_ts: i64,
}

impl IndexRow {
    /// From a row of [`schema::COMPACTION_CANDIDATES`],
    /// [`schema::ROWS_IN_OBJECTS`] or [`schema::CLEAN_ROWS`].
    fn of(r: &tokio_postgres::Row) -> Self {
        Self {
            base: r.get(0),
            last: r.get(1),
            object_id: r.get(2),
            key: r.get(3),
            position: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
            size: usize::try_from(r.get::<_, i32>(5)).unwrap_or(0),
            max_ts: r.get(6),
        }
    }
}

/// Copies the partition's chunks still in intake objects (committed more
/// than `compact_after_ms` ago) into one per-partition object, then
/// points their index rows at it in one transaction ([`move_rows`]).
async fn compact(
    shared: &Shared,
    client: &mut Client,
    part: &PartState,
    slot: i32,
    epoch: i64,
) -> Result<(), LogError> {
    let tp = &part.tp;
    let intake = object_key(shared, "intake").to_string() + "/";
    let after = ms(shared.config.compact_after_ms);
    let rows = client
        .query(
            schema::COMPACTION_CANDIDATES,
            &[&tp.topic, &tp.partition, &intake, &after, &10_000_i64],
        )
        .await
        .map_err(pg)?;
    let mut picked = Vec::new();
    let mut total = 0usize;
    for r in &rows {
        let c = IndexRow::of(r);
        if !picked.is_empty() && total + c.size > shared.config.compact_object_bytes {
            break;
        }
        total += c.size;
        picked.push(c);
    }
    let moved = move_rows(shared, client, tp, &picked, (slot, epoch)).await?;
    if moved > 0 {
        debug!(partition = %tp, rows = moved, "intake chunks compacted");
    }
    Ok(())
}

/// How many merged objects one pass writes per partition at most.
const MERGES_PER_PASS: usize = 4;

/// Merges adjacent compacted objects of a partition (in the order of
/// their first offsets) that together hold at most the topic's
/// `segment.bytes` (capped by `merge_object_bytes`, since a merge holds
/// its object in memory), as Kafka's cleaner groups segments: each group
/// is copied into one object and its rows repointed by [`move_rows`]. A
/// long-lived partition thus keeps few objects, and a read few ranged
/// reads, however many compaction passes wrote it.
async fn merge(
    shared: &Shared,
    client: &mut Client,
    part: &PartState,
    config: &LogConfig,
    fence: (i32, i64),
) -> Result<(), LogError> {
    let tp = &part.tp;
    let target = usize::try_from(config.segment_bytes)
        .unwrap_or(usize::MAX)
        .min(shared.config.merge_object_bytes);
    let compacted = object_key(shared, "compacted").to_string() + "/";
    let objects = client
        .query(
            schema::MERGE_CANDIDATES,
            &[&tp.topic, &tp.partition, &compacted],
        )
        .await
        .map_err(pg)?;
    let live: Vec<usize> = objects
        .iter()
        .map(|r| usize::try_from(r.get::<_, i64>(1)).unwrap_or(usize::MAX))
        .collect();
    for group in merge_groups(&live, target)
        .into_iter()
        .take(MERGES_PER_PASS)
    {
        let ids: Vec<i64> = objects[group].iter().map(|r| r.get(0)).collect();
        let rows = client
            .query(schema::ROWS_IN_OBJECTS, &[&tp.topic, &tp.partition, &ids])
            .await
            .map_err(pg)?;
        let picked: Vec<IndexRow> = rows.iter().map(IndexRow::of).collect();
        let moved = move_rows(shared, client, tp, &picked, fence).await?;
        if moved == 0 {
            // Fenced, or the rows went meanwhile: the next pass decides
            // again from what is there then.
            break;
        }
        debug!(partition = %tp, objects = ids.len(), rows = moved, "compacted objects merged");
    }
    Ok(())
}

/// The groups of adjacent objects (by live bytes, in offset order) to
/// merge: Kafka's grouping of segments up to `target` bytes, each group
/// as long as it can be, with one more rule: no object may hold more than
/// half of its group, so an object is copied again only when merging at
/// least doubles it (a byte is copied about log2(target / object size)
/// times, not once per pass as a growing object would be).
fn merge_groups(live: &[usize], target: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < live.len() {
        let (mut sum, mut max, mut best) = (live[i], live[i], None);
        for (j, &n) in live.iter().enumerate().skip(i + 1) {
            if sum.saturating_add(n) > target {
                break;
            }
            sum += n;
            max = max.max(n);
            if max.saturating_mul(2) <= sum {
                best = Some(j);
            }
        }
        match best {
            Some(j) => {
                out.push(i..j + 1);
                i = j + 1;
            }
            None => i += 1,
        }
    }
    out
}

/// Copies the chunks of `picked` (rows in offset order) byte for byte into
/// one object of the partition's own, then, in one transaction fenced by
/// the job slot's lease, records it and points each row still in the
/// object it was read from at the new one. The bytes, offsets and lengths
/// do not change, so a reader that looked rows up before the swap reads
/// the same bytes from the old object (kept for the collector's grace),
/// one after reads them from the new, and cached chunks stay valid.
/// Answers the rows moved: 0 if fenced or if every row went meanwhile
/// (the unrecorded object is then collected as an orphan).
async fn move_rows(
    shared: &Shared,
    client: &mut Client,
    tp: &TopicPartition,
    picked: &[IndexRow],
    (slot, epoch): (i32, i64),
) -> Result<u64, LogError> {
    if picked.is_empty() {
        return Ok(0);
    }
    let deadline = record_deadline(&shared.config);
    let spans: Vec<(&str, u64, usize)> = picked
        .iter()
        .map(|c| (c.key.as_str(), c.position, c.size))
        .collect();
    let chunks = read_spans(shared, &spans).await?;
    let entries: Vec<Entry> = picked
        .iter()
        .map(|c| Entry {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset_count: i32::try_from(c.last - c.base + 1).unwrap_or(i32::MAX),
            size: u32::try_from(c.size).unwrap_or(u32::MAX),
        })
        .collect();
    let (key, size, positions) = put_partition_object(shared, tp, &entries, &chunks).await?;
    let tx = client.transaction().await.map_err(pg)?;
    let me = shared.config.node_id;
    // The slot moved: its new holder does this; the object is garbage.
    if !holds_slot(&tx, slot, me, epoch).await? {
        return Ok(0);
    }
    let Some(id) = insert_object(&tx, key.as_ref(), size, me, deadline).await? else {
        return Ok(0);
    };
    let bases: Vec<i64> = picked.iter().map(|c| c.base).collect();
    let olds: Vec<i64> = picked.iter().map(|c| c.object_id).collect();
    let pos: Vec<i64> = positions
        .iter()
        .map(|p| i64::try_from(*p).unwrap_or(i64::MAX))
        .collect();
    let moved = tx
        .execute(
            schema::SWAP_ROWS,
            &[&tp.topic, &tp.partition, &id, &bases, &olds, &pos],
        )
        .await
        .map_err(pg)?;
    if moved == 0 {
        return Ok(0);
    }
    tx.commit().await.map_err(pg)?;
    debug!(partition = %tp, rows = moved, bytes = size, %key, "chunks copied into a compacted object");
    Ok(moved)
}

/// Records a job's object in its transaction; `None` if its row went in
/// past `deadline` (the collector may have taken the object: the caller
/// drops the transaction, which rolls it back).
async fn insert_object(
    tx: &tokio_postgres::Transaction<'_>,
    key: &str,
    size: i64,
    node_id: i32,
    deadline: i64,
) -> Result<Option<i64>, LogError> {
    let row = tx
        .query_one(schema::INSERT_OBJECT, &[&key, &size, &node_id, &deadline])
        .await
        .map_err(pg)?;
    if row.get::<_, bool>(1) {
        Ok(Some(row.get(0)))
    } else {
        warn!(%key, "a job's object was recorded past its deadline; rolled back");
        Ok(None)
    }
}

/// The collector: stamps objects no index row references, deletes from
/// the store those stamped more than `collect_grace_ms` ago (a reader
/// that looked a row up before it went has that long to read it) and
/// forgets them; every tenth pass, also adopts the objects in the store
/// that no object row names and that are older than `orphan_grace_ms`
/// (uploads whose transaction failed or never ran), which later passes
/// then delete in the same way.
async fn collect(shared: &Shared, client: &Client, pass: u64) -> Result<(), LogError> {
    client
        .execute(schema::MARK_DROPPED, &[])
        .await
        .map_err(pg)?;
    let grace = ms(shared.config.collect_grace_ms);
    loop {
        let due = client
            .query(schema::DUE_OBJECTS, &[&grace])
            .await
            .map_err(pg)?;
        if due.is_empty() {
            break;
        }
        let mut gone: Vec<i64> = Vec::with_capacity(due.len());
        for r in &due {
            let key: String = r.get(1);
            match shared.store.delete(&ObjectPath::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => gone.push(r.get(0)),
                Err(e) => warn!(%key, error = %e, "cannot delete a collected object"),
            }
        }
        if gone.is_empty() {
            break;
        }
        client
            .execute(schema::FORGET_OBJECTS, &[&gone])
            .await
            .map_err(pg)?;
        info!(objects = gone.len(), "collected unreferenced objects");
        if due.len() < 1000 {
            break;
        }
    }
    if pass % 10 == 1 {
        collect_orphans(shared, client).await?;
    }
    Ok(())
}

/// Gives the old uploads no row names a row of their own, stamped
/// dropped. Listing the store and reading PostgreSQL happen at different
/// instants, so "no row names it" is decided by the insert itself, under
/// the key's unique index: a transaction recording the object, committed
/// or in flight, makes the insert skip the key (after waiting for it), and
/// one recording it after the adoption fails on the key, or, once the
/// adopted row is gone with the object, on its deadline.
async fn collect_orphans(shared: &Shared, client: &Client) -> Result<(), LogError> {
    let oldest = wall_ms().saturating_sub(ms(shared.config.orphan_grace_ms));
    for dir in ["intake", "compacted"] {
        let prefix = object_key(shared, dir);
        let old: Vec<(String, i64)> = shared
            .store
            .list(Some(&prefix))
            .try_filter(|m| std::future::ready(m.last_modified.timestamp_millis() < oldest))
            .map_ok(|m| {
                let size = i64::try_from(m.size).unwrap_or(i64::MAX);
                (m.location.to_string(), size)
            })
            .try_collect()
            .await
            .map_err(store_err)?;
        for batch in old.chunks(1000) {
            let (keys, sizes): (Vec<&str>, Vec<i64>) =
                batch.iter().map(|(k, s)| (k.as_str(), *s)).unzip();
            let adopted = client
                .query(
                    schema::ADOPT_ORPHANS,
                    &[&keys, &sizes, &shared.config.node_id],
                )
                .await
                .map_err(pg)?;
            for r in adopted {
                let key: String = r.get(0);
                info!(%key, "adopted an object no transaction recorded; it goes with the unreferenced ones");
            }
        }
    }
    Ok(())
}

/// What cleaning made of one row.
struct Cleaned {
    /// Index into the rows read.
    row: usize,
    /// The surviving batches, base offsets relative to the row's; empty
    /// when nothing survived.
    chunk: Bytes,
    last: i64,
    max_ts: i64,
}

/// The bytes of `rows` with their absolute offsets (one ranged read per
/// object).
async fn placed_chunks(shared: &Shared, rows: &[IndexRow]) -> Result<Vec<Bytes>, LogError> {
    let spans: Vec<(&str, u64, usize)> = rows
        .iter()
        .map(|r| (r.key.as_str(), r.position, r.size))
        .collect();
    read_spans(shared, &spans)
        .await?
        .into_iter()
        .zip(rows)
        .map(|(raw, r)| format::place(raw, r.base).map_err(LogError::from))
        .collect()
}

/// Each whole batch of a placed chunk with its header.
fn batches_of(chunk: &Bytes) -> Vec<(BatchHeader, Bytes)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_SIZE <= chunk.len() {
        let Some(h) = BatchHeader::parse(&chunk[pos..]) else {
            break;
        };
        let Some(size) = h.total_size().filter(|s| pos + s <= chunk.len()) else {
            break;
        };
        out.push((h, chunk.slice(pos..pos + size)));
        pos += size;
    }
    out
}

/// Writes `chunks` as one object of `tp`'s own under `compacted/`, with
/// `entries` their index; its key, size and each chunk's position.
async fn put_partition_object(
    shared: &Shared,
    tp: &TopicPartition,
    entries: &[Entry],
    chunks: &[Bytes],
) -> Result<(ObjectPath, i64, Vec<u64>), LogError> {
    let (object, positions) = format::encode(entries, chunks);
    let key = object_key(
        shared,
        &format!(
            "compacted/{}/{}/{}",
            tp.topic,
            tp.partition,
            uuid::Uuid::new_v4()
        ),
    );
    let size = i64::try_from(object.content_length()).unwrap_or(i64::MAX);
    shared.store.put(&key, object).await.map_err(store_err)?;
    Ok((key, size, positions))
}

/// Consecutive runs of `rows` of at most `budget` bytes each (a row
/// larger than that alone): what one step of the cleaner holds in memory.
fn by_size(rows: &[IndexRow], budget: usize) -> Vec<&[IndexRow]> {
    let mut out = Vec::new();
    let (mut start, mut total) = (0, 0usize);
    for (i, r) in rows.iter().enumerate() {
        if i > start && total + r.size > budget {
            out.push(&rows[start..i]);
            (start, total) = (i, 0);
        }
        total += r.size;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// `cleanup.policy=compact`, after Kafka's log cleaner: when the dirty
/// part of the partition (rows from the first dirty offset on) reaches
/// `min.cleanable.dirty.ratio` of it (or is older than
/// `max.compaction.lag.ms`), a map of each key's latest offset is built
/// over the dirty part, then every row below the map's end is rewritten
/// keeping each key's latest record (and tombstones until they have been
/// through a pass and `delete.retention.ms` has passed). The cleanable
/// end is the last row (the "active segment") or the first row younger
/// than `min.compaction.lag.ms`. Rewritten rows keep their base offset;
/// their last offset, size and largest timestamp shrink to what
/// survived, and a row left empty is deleted (a gap, as in Kafka's
/// cleaned logs).
///
/// Memory is bounded whatever the partition's size: the map is an
/// [`batch::OffsetMap`] of `cleaner_buffer_bytes` (Kafka's
/// `log.cleaner.dedupe.buffer.size`); when it fills, the pass cleans up to
/// where the map reached and the next pass goes on from there, as Kafka's
/// does. Rows are read, and rewritten, `compact_object_bytes` at a time:
/// each such group's survivors go into one compacted object, swapped in
/// by its own transaction fenced by the slot's lease; the last one moves
/// the first dirty offset. A pass stopped between groups leaves it where
/// it was, and the next redoes the work (cleaning twice with the same map
/// removes nothing more).
async fn clean(
    shared: &Shared,
    client: &mut Client,
    part: &PartState,
    config: &LogConfig,
    fence: (i32, i64),
    now: i64,
) -> Result<(), LogError> {
    let tp = &part.tp;
    let raw = client
        .query(
            schema::CLEAN_ROWS,
            &[&tp.topic, &tp.partition, &part.incarnation],
        )
        .await
        .map_err(pg)?;
    let Some(first) = raw.first() else {
        return Ok(());
    };
    let (log_start, cleaned_to): (i64, i64) = (first.get(7), first.get(9));
    let rows: Vec<IndexRow> = raw.iter().map(IndexRow::of).collect();
    drop(raw);
    let lag_cut = now.saturating_sub(config.min_compaction_lag_ms);
    let mut end = rows.len() - 1;
    if let Some(i) = rows[..end].iter().position(|r| r.max_ts > lag_cut) {
        end = i;
    }
    let first_dirty = cleaned_to.max(log_start);
    if end == 0 || rows[end - 1].last < first_dirty {
        return Ok(());
    }
    let cleanable = &rows[..end];
    let total: usize = cleanable.iter().map(|r| r.size).sum();
    let dirty_from = cleanable.partition_point(|r| r.last < first_dirty);
    let dirty: usize = cleanable[dirty_from..].iter().map(|r| r.size).sum();
    let overdue = cleanable[dirty_from..]
        .iter()
        .map(|r| r.max_ts)
        .min()
        .is_some_and(|ts| ts < now.saturating_sub(config.max_compaction_lag_ms));
    #[allow(clippy::cast_precision_loss)]
    let ratio = dirty as f64 / total.max(1) as f64;
    if ratio < config.min_cleanable_dirty_ratio && !overdue {
        return Ok(());
    }
    let budget = shared.config.compact_object_bytes;
    // Up to one key per dirty byte: a small dirty part does not need the
    // whole buffer zeroed.
    let map_bytes = shared
        .config
        .cleaner_buffer_bytes
        .min(dirty.saturating_mul(24));
    let mut map = batch::OffsetMap::new(map_bytes);
    // Without a full map, the pass covers the cleanable part up to the
    // first row it leaves (records in a cleaned row's gap included).
    let mut map_end = rows[end].base;
    let mut reached = first_dirty;
    'map: for group in by_size(&cleanable[dirty_from..], budget) {
        for chunk in placed_chunks(shared, group).await? {
            for (h, b) in batches_of(&chunk) {
                if h.last_offset() < first_dirty {
                    continue;
                }
                // Transaction markers and transactional records (which
                // may be aborted) do not hide older records of their
                // keys, as in the local cleaner.
                if !h.is_control() && !h.is_transactional() {
                    if map.room() < usize::try_from(h.records_count.max(0)).unwrap_or(usize::MAX) {
                        map_end = reached;
                        break 'map;
                    }
                    let _ = batch::walk_records(&b, |rec| {
                        if let (Some(k), true) = (rec.key, rec.offset >= first_dirty) {
                            map.put(k, rec.offset);
                        }
                    });
                }
                reached = h.last_offset() + 1;
            }
        }
    }
    if map_end <= first_dirty {
        warn!(partition = %tp, "the cleaner's map cannot hold one batch; raise log.cleaner.dedupe.buffer.size");
        return Ok(());
    }
    let rules = batch::CleanRules {
        latest: |k: &[u8]| map.get(k),
        map_end,
        first_dirty,
        delete_horizon: now.saturating_sub(config.delete_retention_ms),
    };
    let rewrite = &cleanable[..cleanable.partition_point(|r| r.base < map_end)];
    let groups = by_size(rewrite, budget);
    let (mut rows_changed, mut saved) = (0, 0);
    for (i, group) in groups.iter().enumerate() {
        let chunks = placed_chunks(shared, group).await?;
        let cleaned = clean_rows(group, &chunks, &rules);
        drop(chunks);
        // The last group moves the first dirty offset, changed or not.
        let last = i + 1 == groups.len();
        if cleaned.is_empty() && !last {
            continue;
        }
        let moved_to = if last { map_end } else { cleaned_to };
        let Some(s) =
            record_cleaning(shared, client, part, group, &cleaned, moved_to, fence).await?
        else {
            return Ok(());
        };
        rows_changed += cleaned.len();
        saved += s;
    }
    info!(partition = %tp, rows = rows_changed, bytes_saved = saved, cleaned_to = map_end, "compacted partition cleaned");
    Ok(())
}

/// Cleans each row of `rows` (whose placed chunks are `chunks`) under
/// `rules`: the rows that changed, with what is left of them.
fn clean_rows<F: Fn(&[u8]) -> Option<i64>>(
    rows: &[IndexRow],
    chunks: &[Bytes],
    rules: &batch::CleanRules<F>,
) -> Vec<Cleaned> {
    let mut cleaned: Vec<Cleaned> = Vec::new();
    for (i, (r, c)) in rows.iter().zip(chunks).enumerate() {
        let mut out = BytesMut::new();
        let (mut last, mut max_ts) = (r.base - 1, i64::MIN);
        let mut changed = false;
        for (h, b) in batches_of(c) {
            // A batch that cannot be re-encoded is kept whole.
            match batch::clean_batch(&h, &b, r.max_ts, rules).unwrap_or_else(|_| Some(b.clone())) {
                Some(kept) => {
                    changed |= kept.len() != b.len();
                    let at = out.len();
                    out.extend_from_slice(&kept);
                    batch::set_base_offset(&mut out[at..], h.base_offset - r.base);
                    last = h.last_offset();
                    max_ts = max_ts.max(
                        BatchHeader::parse(&kept).map_or(h.max_timestamp, |k| k.max_timestamp),
                    );
                }
                None => changed = true,
            }
        }
        if changed {
            cleaned.push(Cleaned {
                row: i,
                chunk: out.freeze(),
                last,
                max_ts,
            });
        }
    }
    cleaned
}

/// Records one group of cleaned rows: their new chunks in one compacted
/// object, then one transaction fenced by the slot's lease that points
/// each changed row at it (only where the row still has the object and
/// size read), deletes rows left empty, moves the first dirty offset to
/// `cleaned_to` (never back) and reduces the partition's size. Answers
/// the bytes saved, or `None` if fenced (nothing recorded).
async fn record_cleaning(
    shared: &Shared,
    client: &mut Client,
    part: &PartState,
    rows: &[IndexRow],
    cleaned: &[Cleaned],
    cleaned_to: i64,
    (slot, epoch): (i32, i64),
) -> Result<Option<i64>, LogError> {
    let tp = &part.tp;
    let saved: i64 = cleaned
        .iter()
        .map(|c| i64::try_from(rows[c.row].size - c.chunk.len()).unwrap_or(0))
        .sum();
    let written: Vec<&Cleaned> = cleaned.iter().filter(|c| !c.chunk.is_empty()).collect();
    let deadline = record_deadline(&shared.config);
    let mut key = None;
    let mut positions = Vec::new();
    if !written.is_empty() {
        let entries: Vec<Entry> = written
            .iter()
            .map(|c| Entry {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset_count: i32::try_from(rows[c.row].last - rows[c.row].base + 1)
                    .unwrap_or(i32::MAX),
                size: u32::try_from(c.chunk.len()).unwrap_or(u32::MAX),
            })
            .collect();
        let bodies: Vec<Bytes> = written.iter().map(|c| c.chunk.clone()).collect();
        let (k, size, pos) = put_partition_object(shared, tp, &entries, &bodies).await?;
        key = Some((k, size));
        positions = pos;
    }
    let me = shared.config.node_id;
    let tx = client.transaction().await.map_err(pg)?;
    if !holds_slot(&tx, slot, me, epoch).await? {
        return Ok(None);
    }
    if let Some((k, size)) = &key {
        let Some(id) = insert_object(&tx, k.as_ref(), *size, me, deadline).await? else {
            return Ok(None);
        };
        let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (c, pos) in written.iter().zip(&positions) {
            let r = &rows[c.row];
            cols.0.push(r.base);
            cols.1.push(r.object_id);
            cols.2.push(i32::try_from(r.size).unwrap_or(i32::MAX));
            cols.3.push(i64::try_from(*pos).unwrap_or(i64::MAX));
            cols.4
                .push(i32::try_from(c.chunk.len()).unwrap_or(i32::MAX));
            cols.5.push(c.last);
            cols.6.push(c.max_ts);
        }
        tx.execute(
            schema::CLEANED_ROWS,
            &[
                &tp.topic,
                &tp.partition,
                &id,
                &cols.0,
                &cols.1,
                &cols.2,
                &cols.3,
                &cols.4,
                &cols.5,
                &cols.6,
            ],
        )
        .await
        .map_err(pg)?;
    }
    let emptied: Vec<&IndexRow> = cleaned
        .iter()
        .filter(|c| c.chunk.is_empty())
        .map(|c| &rows[c.row])
        .collect();
    if !emptied.is_empty() {
        let bases: Vec<i64> = emptied.iter().map(|r| r.base).collect();
        let olds: Vec<i64> = emptied.iter().map(|r| r.object_id).collect();
        let sizes: Vec<i32> = emptied
            .iter()
            .map(|r| i32::try_from(r.size).unwrap_or(i32::MAX))
            .collect();
        tx.execute(
            schema::EMPTIED_ROWS,
            &[&tp.topic, &tp.partition, &bases, &olds, &sizes],
        )
        .await
        .map_err(pg)?;
    }
    let current = tx
        .execute(
            schema::CLEANED,
            &[
                &tp.topic,
                &tp.partition,
                &cleaned_to,
                &saved,
                &part.incarnation,
            ],
        )
        .await
        .map_err(pg)?;
    if current == 0 {
        // Deleted (and perhaps created again) since the rows were read:
        // dropping the transaction rolls it back.
        return Ok(None);
    }
    tx.commit().await.map_err(pg)?;
    Ok(Some(saved))
}

/// Whether this broker still holds job `slot` at `epoch`, checked (and
/// locked) inside the transaction that records the job's work.
async fn holds_slot(
    tx: &tokio_postgres::Transaction<'_>,
    slot: i32,
    me: i32,
    epoch: i64,
) -> Result<bool, LogError> {
    Ok(tx
        .query_opt(schema::JOB_FENCE, &[&JOBS, &slot, &me, &epoch])
        .await
        .map_err(pg)?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::merge_groups;

    #[test]
    fn merge_groups_fill_the_target_without_recopying_a_dominant_object() {
        // Equal small objects merge up to the target.
        assert_eq!(merge_groups(&[2, 2, 2, 2, 2], 8), vec![0..4]);
        // A big object is left until what follows it is as large.
        assert_eq!(merge_groups(&[4, 2], 8), vec![]);
        assert_eq!(merge_groups(&[4, 2, 2], 8), vec![0..3]);
        // Objects at the target, or that cannot join a neighbour, stay.
        assert_eq!(merge_groups(&[8, 1, 1, 9, 3], 8), vec![1..3]);
        assert_eq!(merge_groups(&[], 8), vec![]);
        assert_eq!(merge_groups(&[5, 5], 8), vec![]);
    }
}

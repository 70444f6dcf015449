//! Background work: retention, compaction of intake objects and the
//! object collector, each run by exactly one live broker at a time.
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

use std::collections::HashMap;
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

/// One pass of a slot: retention, then compaction, of each of its
/// partitions; slot 0 then collects garbage.
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
pub(crate) async fn move_log_start(
    client: &Client,
    tp: &TopicPartition,
    offset: i64,
) -> Result<Option<(i64, i64, i64)>, LogError> {
    let row = client
        .query_opt(schema::MOVE_LOG_START, &[&tp.topic, &tp.partition, &offset])
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
    if let Some((start, end, size)) = move_log_start(client, tp, target).await? {
        part.advance(end, start, None, u64::try_from(size).ok());
        debug!(partition = %tp, log_start = start, "retention moved the log start");
    }
    Ok(())
}

/// One row to move into a compacted object.
struct Candidate {
    base: i64,
    last: i64,
    object_id: i64,
    key: String,
    position: u64,
    size: usize,
}

/// Copies the partition's chunks still in intake objects (committed more
/// than `compact_after_ms` ago) into one per-partition object, then
/// points their index rows at it in one transaction. The bytes are copied
/// unchanged and each row keeps its offsets and length, so a reader that
/// looked rows up before the swap reads the same bytes from the old
/// object (kept for the collector's grace), one after reads them from the
/// new, and cached chunks stay valid.
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
    for r in rows {
        let c = Candidate {
            base: r.get(0),
            last: r.get(1),
            object_id: r.get(2),
            key: r.get(3),
            position: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
            size: usize::try_from(r.get::<_, i32>(5)).unwrap_or(0),
        };
        if !picked.is_empty() && total + c.size > shared.config.compact_object_bytes {
            break;
        }
        total += c.size;
        picked.push(c);
    }
    if picked.is_empty() {
        return Ok(());
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
    // The slot moved: its new holder compacts; this object is garbage.
    if !holds_slot(&tx, slot, me, epoch).await? {
        return Ok(());
    }
    let Some(id) = insert_object(&tx, key.as_ref(), size, me, deadline).await? else {
        return Ok(());
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
        // Every row went meanwhile (retention, DeleteRecords): nothing to
        // record; the unrecorded object is collected as an orphan.
        return Ok(());
    }
    tx.commit().await.map_err(pg)?;
    debug!(partition = %tp, rows = moved, bytes = size, %key, "intake chunks compacted");
    Ok(())
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

/// One index row as the cleaner reads it.
struct CleanRow {
    base: i64,
    last: i64,
    object_id: i64,
    key: String,
    position: u64,
    size: usize,
    max_ts: i64,
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
async fn placed_chunks(shared: &Shared, rows: &[CleanRow]) -> Result<Vec<Bytes>, LogError> {
    let spans: Vec<(&str, u64, usize)> = rows
        .iter()
        .map(|r| (r.key.as_str(), r.position, r.size))
        .collect();
    read_spans(shared, &spans)
        .await?
        .iter()
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
    let size = i64::try_from(object.len()).unwrap_or(i64::MAX);
    shared
        .store
        .put(&key, object.into())
        .await
        .map_err(store_err)?;
    Ok((key, size, positions))
}

/// `cleanup.policy=compact`, after Kafka's log cleaner: when the dirty
/// part of the partition (rows from the first dirty offset on) reaches
/// `min.cleanable.dirty.ratio` of it (or is older than
/// `max.compaction.lag.ms`), every row below the cleanable end is
/// rewritten keeping each key's latest record (and tombstones until they
/// have been through a pass and `delete.retention.ms` has passed). The
/// cleanable end is the last row (the "active segment") or the first row
/// younger than `min.compaction.lag.ms`. Rewritten rows keep their base
/// offset; their last offset, size and largest timestamp shrink to what
/// survived, and a row left empty is deleted (a gap, as in Kafka's
/// cleaned logs). The new chunks go into one compacted object, swapped in
/// by one transaction fenced by the slot's lease. A partition larger than
/// four compacted objects below its cleanable end is left (logged).
async fn clean(
    shared: &Shared,
    client: &mut Client,
    part: &PartState,
    config: &LogConfig,
    (slot, epoch): (i32, i64),
    now: i64,
) -> Result<(), LogError> {
    let tp = &part.tp;
    let raw = client
        .query(schema::CLEAN_ROWS, &[&tp.topic, &tp.partition])
        .await
        .map_err(pg)?;
    let Some(first) = raw.first() else {
        return Ok(());
    };
    let (log_start, cleaned_to): (i64, i64) = (first.get(7), first.get(9));
    let rows: Vec<CleanRow> = raw
        .iter()
        .map(|r| CleanRow {
            base: r.get(0),
            last: r.get(1),
            object_id: r.get(2),
            key: r.get(3),
            position: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
            size: usize::try_from(r.get::<_, i32>(5)).unwrap_or(0),
            max_ts: r.get(6),
        })
        .collect();
    let lag_cut = now.saturating_sub(config.min_compaction_lag_ms);
    let mut end = rows.len() - 1;
    if let Some(i) = rows[..end].iter().position(|r| r.max_ts > lag_cut) {
        end = i;
    }
    let first_dirty = cleaned_to.max(log_start);
    if end == 0 || rows[end - 1].last < first_dirty {
        return Ok(());
    }
    let map_end = rows[end].base;
    let total: usize = rows[..end].iter().map(|r| r.size).sum();
    let dirty_rows = || rows[..end].iter().filter(|r| r.last >= first_dirty);
    let dirty: usize = dirty_rows().map(|r| r.size).sum();
    let overdue = dirty_rows()
        .map(|r| r.max_ts)
        .min()
        .is_some_and(|ts| ts < now.saturating_sub(config.max_compaction_lag_ms));
    #[allow(clippy::cast_precision_loss)]
    let ratio = dirty as f64 / total.max(1) as f64;
    if ratio < config.min_cleanable_dirty_ratio && !overdue {
        return Ok(());
    }
    if total > shared.config.compact_object_bytes.saturating_mul(4) {
        warn!(partition = %tp, bytes = total, "compacted partition too large to clean in one pass; left as it is");
        return Ok(());
    }
    let chunks = placed_chunks(shared, &rows[..end]).await?;
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    for (r, c) in rows[..end].iter().zip(&chunks) {
        if r.last < first_dirty {
            continue;
        }
        for (h, b) in batches_of(c) {
            if h.is_control() {
                continue;
            }
            let _ = batch::walk_records(&b, |rec| {
                if let Some(k) = rec.key {
                    if rec.offset >= first_dirty {
                        latest.insert(k.to_vec(), rec.offset);
                    }
                }
            });
        }
    }
    let rules = batch::CleanRules {
        latest: |k: &[u8]| latest.get(k).copied(),
        map_end,
        first_dirty,
        delete_horizon: now.saturating_sub(config.delete_retention_ms),
    };
    let mut cleaned: Vec<Cleaned> = Vec::new();
    for (i, (r, c)) in rows[..end].iter().zip(&chunks).enumerate() {
        let mut out = BytesMut::new();
        let (mut last, mut max_ts) = (r.base - 1, i64::MIN);
        let mut changed = false;
        for (h, b) in batches_of(c) {
            // A batch that cannot be re-encoded is kept whole.
            match batch::clean_batch(&h, &b, r.max_ts, &rules).unwrap_or_else(|_| Some(b.clone())) {
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
        return Ok(());
    }
    if let Some((k, size)) = &key {
        let Some(id) = insert_object(&tx, k.as_ref(), *size, me, deadline).await? else {
            return Ok(());
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
    let emptied: Vec<&CleanRow> = cleaned
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
    tx.execute(
        schema::CLEANED,
        &[&tp.topic, &tp.partition, &map_end, &saved],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    info!(partition = %tp, rows = cleaned.len(), bytes_saved = saved, "compacted partition cleaned");
    Ok(())
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

//! The PostgreSQL tables the engine uses, created on start if missing.
//! docs/cluster-format.md describes each column.

/// Creates the `weir` schema and its tables. Brokers starting together
/// serialise on an advisory lock, so `IF NOT EXISTS` cannot race.
pub const CREATE: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(6172);
CREATE SCHEMA IF NOT EXISTS weir;
CREATE SEQUENCE IF NOT EXISTS weir.incarnations MINVALUE 1 START WITH 1;
CREATE TABLE IF NOT EXISTS weir.partitions (
    topic text NOT NULL,
    partition integer NOT NULL,
    incarnation bigint NOT NULL DEFAULT nextval('weir.incarnations'),
    log_start bigint NOT NULL DEFAULT 0,
    next_offset bigint NOT NULL DEFAULT 0,
    size_bytes bigint NOT NULL DEFAULT 0,
    first_unstable bigint,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS weir.objects (
    id bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    size_bytes bigint NOT NULL,
    node_id integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS weir.batches (
    topic text NOT NULL,
    partition integer NOT NULL,
    base_offset bigint NOT NULL,
    last_offset bigint NOT NULL,
    object_id bigint NOT NULL,
    position bigint NOT NULL,
    size integer NOT NULL,
    max_timestamp bigint NOT NULL,
    PRIMARY KEY (topic, partition, base_offset)
);
CREATE INDEX IF NOT EXISTS batches_last_offset ON weir.batches (topic, partition, last_offset);
CREATE INDEX IF NOT EXISTS batches_object ON weir.batches (object_id);
CREATE TABLE IF NOT EXISTS weir.catalog (
    id integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL,
    body bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS weir.producers (
    topic text NOT NULL,
    partition integer NOT NULL,
    producer_id bigint NOT NULL,
    epoch smallint NOT NULL,
    batches bytea NOT NULL,
    last_timestamp bigint NOT NULL,
    txn_first_offset bigint,
    PRIMARY KEY (topic, partition, producer_id)
);
CREATE INDEX IF NOT EXISTS producers_last_timestamp ON weir.producers (last_timestamp);
CREATE SEQUENCE IF NOT EXISTS weir.producer_ids INCREMENT BY 1000 MINVALUE 0 START WITH 0;
CREATE TABLE IF NOT EXISTS weir.brokers (
    node_id integer PRIMARY KEY,
    host text NOT NULL,
    port integer NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS weir.coordinators (
    topic text NOT NULL,
    partition integer NOT NULL,
    holder integer NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (topic, partition)
);
-- Databases of earlier versions get the newer columns. Checked first:
-- ALTER TABLE and CREATE INDEX lock the table even when there is nothing
-- to do, which would stall (or deadlock with) running flushes.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'weir'
            AND table_name = 'objects' AND column_name = 'dropped_at') THEN
        ALTER TABLE weir.objects ADD COLUMN dropped_at timestamptz;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'weir'
            AND table_name = 'partitions' AND column_name = 'cleaned_to') THEN
        ALTER TABLE weir.partitions ADD COLUMN cleaned_to bigint NOT NULL DEFAULT 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'weir'
            AND table_name = 'partitions' AND column_name = 'first_unstable') THEN
        ALTER TABLE weir.partitions ADD COLUMN first_unstable bigint;
    END IF;
    -- A volatile default: each existing row gets its own number, the
    -- incarnation it is (docs/cluster-format.md).
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'weir'
            AND table_name = 'partitions' AND column_name = 'incarnation') THEN
        ALTER TABLE weir.partitions ADD COLUMN IF NOT EXISTS incarnation bigint NOT NULL
            DEFAULT nextval('weir.incarnations');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'weir'
            AND table_name = 'producers' AND column_name = 'txn_first_offset') THEN
        ALTER TABLE weir.producers ADD COLUMN txn_first_offset bigint;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'weir'
            AND indexname = 'producers_open') THEN
        CREATE INDEX producers_open ON weir.producers (topic, partition, txn_first_offset)
            WHERE txn_first_offset IS NOT NULL;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS weir.aborted (
    topic text NOT NULL,
    partition integer NOT NULL,
    marker_offset bigint NOT NULL,
    producer_id bigint NOT NULL,
    first_offset bigint NOT NULL,
    last_stable bigint NOT NULL,
    PRIMARY KEY (topic, partition, marker_offset)
);
CREATE TABLE IF NOT EXISTS weir.txn_gates (
    transactional_id text PRIMARY KEY,
    producer_id bigint NOT NULL,
    epoch smallint NOT NULL,
    open boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS weir.txn_partitions (
    transactional_id text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    producer_id bigint NOT NULL,
    epoch smallint NOT NULL,
    coordinator integer NOT NULL,
    joined_at bigint NOT NULL,
    PRIMARY KEY (transactional_id, topic, partition)
);
COMMIT;
";

/// The channel commits and DeleteRecords notify on: `topic \t partition
/// \t next_offset \t log_start \t last_stable \t incarnation`, the last
/// stable offset empty from DeleteRecords (brokers of earlier versions
/// sent neither of the last two from DeleteRecords, nor the incarnation
/// from commits).
pub const CHANNEL: &str = "weir_log";

/// The channel catalog saves notify on: the new version.
pub const CATALOG_CHANNEL: &str = "weir_catalog";

/// Saves the catalog over version `$1` (the first save inserts).
pub const SAVE_CATALOG: &str = "
UPDATE weir.catalog SET version = version + 1, body = $2
WHERE id = 1 AND version = $1
RETURNING version, pg_notify('weir_catalog', version::text)";

/// The first catalog.
pub const FIRST_CATALOG: &str = "
INSERT INTO weir.catalog (id, version, body) VALUES (1, 1, $1)
ON CONFLICT (id) DO NOTHING
RETURNING version, pg_notify('weir_catalog', '1')";

/// This broker's heartbeat.
pub const HEARTBEAT: &str = "
INSERT INTO weir.brokers (node_id, host, port, heartbeat_at) VALUES ($1, $2, $3, now())
ON CONFLICT (node_id) DO UPDATE SET host = $2, port = $3, heartbeat_at = now()";

/// The brokers that heartbeated within `$1` milliseconds.
pub const LIVE_BROKERS: &str = "
SELECT node_id, host, port FROM weir.brokers
WHERE heartbeat_at > now() - $1::bigint * interval '1 millisecond'
ORDER BY node_id";

/// Creates partition (`$1`, `$2`) if missing, at a new incarnation.
pub const CREATE_PARTITION: &str =
    "INSERT INTO weir.partitions (topic, partition) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// Partition (`$1`, `$2`)'s incarnation and offsets, read by an open
/// after [`CREATE_PARTITION`] (its own statement, so it sees a row
/// another broker's open inserted meanwhile): every append through the
/// handle must still find that incarnation.
pub const OPENED: &str = "
SELECT incarnation, log_start, next_offset, size_bytes, coalesce(first_unstable, next_offset)
FROM weir.partitions WHERE topic = $1 AND partition = $2";

/// Partition (`$1`, `$2`)'s offsets, if it is still incarnation `$3`.
pub const REFRESH: &str = "
SELECT log_start, next_offset, size_bytes, coalesce(first_unstable, next_offset)
FROM weir.partitions WHERE topic = $1 AND partition = $2 AND incarnation = $3";

/// Locks the flush's partitions in one order, so that two brokers
/// flushing the same partitions cannot deadlock; answers the next offset
/// (which only the lock holder can move) of each one still at the
/// incarnation its appends were made to (`$3`): a partition deleted, or
/// deleted and created again, since then answers nothing.
pub const LOCK: &str = "
SELECT p.topic, p.partition, p.incarnation, p.next_offset FROM weir.partitions p
JOIN unnest($1::text[], $2::integer[], $3::bigint[]) AS d(topic, part, inc)
    ON p.topic = d.topic AND p.partition = d.part AND p.incarnation = d.inc
ORDER BY p.topic, p.partition
FOR UPDATE OF p";

/// Sequences a flush: each partition's next offset moves past the
/// offsets its chunks take, and its first unstable offset to its oldest
/// open transaction (the flush's producers are saved first, in the same
/// transaction); answers each partition's first new offset, next offset,
/// log start and last stable offset, and notifies the other brokers.
pub const SEQUENCE: &str = "
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[]) AS d(topic, part, n, bytes)
), u AS (
    UPDATE weir.partitions p
    SET next_offset = p.next_offset + d.n, size_bytes = p.size_bytes + d.bytes,
        first_unstable = (SELECT min(pr.txn_first_offset) FROM weir.producers pr
            WHERE pr.topic = p.topic AND pr.partition = p.partition AND pr.txn_first_offset IS NOT NULL)
    FROM d WHERE p.topic = d.topic AND p.partition = d.part
    RETURNING p.topic, p.partition, p.next_offset, p.log_start, d.n,
        coalesce(p.first_unstable, p.next_offset) AS last_stable, p.incarnation
)
SELECT topic, partition, next_offset - n, next_offset, log_start, last_stable,
    pg_notify('weir_log', topic || E'\\t' || partition || E'\\t' || next_offset || E'\\t' || log_start
        || E'\\t' || last_stable || E'\\t' || incarnation)
FROM u";

/// Records the object and one index row per chunk, if the object's row
/// went in before `$11` (ms since the epoch, the upload's recording
/// deadline): otherwise no index row is inserted, and the caller, seeing
/// fewer rows than chunks, rolls back. The clock is read after the row's
/// key is in the unique index, so an object the collector adopted either
/// makes this insert fail or was adopted after the check passed, and then
/// waits for this transaction (docs/cluster-format.md, "Orphans").
pub const INDEX: &str = "
WITH o AS (
    INSERT INTO weir.objects (key, size_bytes, node_id) VALUES ($1, $2, $3)
    RETURNING id, clock_timestamp() < to_timestamp($11::bigint / 1000.0) AS fresh
)
INSERT INTO weir.batches (topic, partition, base_offset, last_offset, object_id, position, size, max_timestamp)
SELECT x.topic, x.part, x.base, x.last, o.id, x.pos, x.size, x.ts
FROM o, unnest($4::text[], $5::integer[], $6::bigint[], $7::bigint[], $8::bigint[], $9::integer[], $10::bigint[])
    AS x(topic, part, base, last, pos, size, ts)
WHERE o.fresh";

/// The index rows a read needs, in offset order.
pub const READ: &str = "
SELECT b.base_offset, b.last_offset, o.key, b.position, b.size, o.id, o.size_bytes
FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id
WHERE b.topic = $1 AND b.partition = $2 AND b.last_offset >= $3 AND b.base_offset < $4
ORDER BY b.last_offset
LIMIT $5";

/// The index rows still in object `$1`, for loading it whole into the
/// read cache (the `batches_object` index).
pub const OBJECT_ROWS: &str = "
SELECT topic, partition, base_offset, position, size FROM weir.batches WHERE object_id = $1";

/// The stored state of the producers of a flush's idempotent batches:
/// `$1`-`$3` are (topic, partition, producer id) triples. Read after
/// [`LOCK`], which every writer of those partitions takes first.
pub const PRODUCERS: &str = "
SELECT DISTINCT p.topic, p.partition, p.producer_id, p.epoch, p.batches, p.last_timestamp,
    p.txn_first_offset
FROM weir.producers p
JOIN unnest($1::text[], $2::integer[], $3::bigint[]) AS d(topic, part, pid)
    ON p.topic = d.topic AND p.partition = d.part AND p.producer_id = d.pid";

/// One partition's producers, for DescribeProducers.
pub const PARTITION_PRODUCERS: &str = "
SELECT producer_id, epoch, batches, last_timestamp, txn_first_offset FROM weir.producers
WHERE topic = $1 AND partition = $2 ORDER BY producer_id";

/// Stores the producers a flush appended for, in the same transaction.
pub const SAVE_PRODUCERS: &str = "
INSERT INTO weir.producers (topic, partition, producer_id, epoch, batches, last_timestamp, txn_first_offset)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::smallint[], $5::bytea[], $6::bigint[],
    $7::bigint[])
ON CONFLICT (topic, partition, producer_id) DO UPDATE
SET epoch = excluded.epoch, batches = excluded.batches, last_timestamp = excluded.last_timestamp,
    txn_first_offset = excluded.txn_first_offset";

/// Records the transactions the flush's ABORT markers closed
/// (`$1`-`$6`: topic, partition, marker offset, producer id, first
/// offset, last stable offset), for read_committed fetches on any broker.
pub const SAVE_ABORTED: &str = "
INSERT INTO weir.aborted (topic, partition, marker_offset, producer_id, first_offset, last_stable)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
ON CONFLICT DO NOTHING";

/// The aborted transactions overlapping `[$3, $4)` of one partition: an
/// ABORT marker at or after `$3` and a first record before `$4`.
pub const ABORTED: &str = "
SELECT producer_id, first_offset, marker_offset, last_stable FROM weir.aborted
WHERE topic = $1 AND partition = $2 AND marker_offset >= $3 AND first_offset < $4
ORDER BY marker_offset";

/// Reserves a block of producer ids: the sequence moves by the block
/// size, so its value is the block's first id.
pub const RESERVE_PRODUCER_IDS: &str = "
SELECT nextval('weir.producer_ids'), (SELECT increment_by FROM pg_sequences
    WHERE schemaname = 'weir' AND sequencename = 'producer_ids')";

/// Forgets producers idle for longer than `producer.id.expiration.ms`
/// (`$1` is the oldest broker time kept).
pub const EXPIRE_PRODUCERS: &str = "
DELETE FROM weir.producers WHERE last_timestamp < $1 AND txn_first_offset IS NULL";

/// Renews for `$2` ms the leases broker `$1` holds in memory (`$3`-`$5`:
/// topic, partition, epoch); answers those it still holds. A row of its
/// own it does not hold in memory (from before a restart) is left to run
/// out, or to be taken back at a new epoch.
pub const RENEW_LEASES: &str = "
UPDATE weir.coordinators c SET expires_at = now() + $2::bigint * interval '1 millisecond'
FROM unnest($3::text[], $4::integer[], $5::bigint[]) AS d(topic, part, epoch)
WHERE c.topic = d.topic AND c.partition = d.part AND c.epoch = d.epoch AND c.holder = $1
RETURNING c.topic, c.partition, c.epoch";

/// Takes the leases of `$1`'s partitions `$2` for broker `$3` for `$4`
/// ms, where nobody holds them or the holder's lease ran out (or the
/// holder is this broker, from before a restart); each one taken gets the
/// next epoch, which fences the former holder's writes.
pub const ACQUIRE_LEASES: &str = "
INSERT INTO weir.coordinators AS c (topic, partition, holder, epoch, expires_at)
SELECT $1, p, $3, 1, now() + $4::bigint * interval '1 millisecond'
FROM unnest($2::integer[]) AS p ORDER BY p
ON CONFLICT (topic, partition) DO UPDATE
SET holder = excluded.holder, epoch = c.epoch + 1, expires_at = excluded.expires_at
WHERE c.expires_at < now() OR c.holder = excluded.holder
RETURNING partition, epoch";

/// Gives up a lease at once (the partition falls to another broker).
pub const RELEASE_LEASE: &str = "
UPDATE weir.coordinators SET expires_at = now() - interval '1 millisecond'
WHERE topic = $1 AND partition = $2 AND holder = $3 AND epoch = $4";

/// Supersedes the state loaded under lease (`$1`, `$2`): its epoch moves
/// on, holder and expiry kept, so the holder's fenced writes fail and its
/// next renewal does not return it (it takes it again and reloads). A
/// lease nobody took yet is created expired, so whoever takes it later
/// does so after this commit. Answers the new epoch and whether a holder
/// is at it.
pub const SUPERSEDE_LEASE: &str = "
INSERT INTO weir.coordinators AS c (topic, partition, holder, epoch, expires_at)
VALUES ($1, $2, -1, 1, now() - interval '1 millisecond')
ON CONFLICT (topic, partition) DO UPDATE SET epoch = c.epoch + 1
RETURNING c.epoch, c.expires_at > now()";

/// A row if lease (`$1`, `$2`) is still unexpired at epoch `$3`.
pub const LEASE_AT: &str = "
SELECT 1 FROM weir.coordinators
WHERE topic = $1 AND partition = $2 AND epoch = $3 AND expires_at > now()";

/// Every unexpired lease: who coordinates what.
pub const LEASES: &str = "
SELECT topic, partition, holder FROM weir.coordinators WHERE expires_at > now()";

/// The holder of `$1`'s partition `$2`, if its lease has not run out.
pub const LEASE_HOLDER: &str = "
SELECT holder FROM weir.coordinators
WHERE topic = $1 AND partition = $2 AND expires_at > now()";

/// The fence of a flush's coordinator appends: the leases (`$1`, `$2`
/// pairs) this broker (`$3`) still holds, locked for share until the
/// commit, so a takeover (which updates the row) waits for this flush and
/// a flush after a takeover sees the new holder.
pub const FENCE: &str = "
SELECT c.topic, c.partition, c.epoch FROM weir.coordinators c
JOIN unnest($1::text[], $2::integer[]) AS d(topic, part) ON c.topic = d.topic AND c.partition = d.part
WHERE c.holder = $3 AND c.expires_at > now()
ORDER BY c.topic, c.partition
FOR SHARE OF c";

/// Moves partition (`$1`, `$2`)'s log start to `$3` (never back, never
/// past the log end: no row if `$3` is beyond it) and deletes the index
/// rows wholly below it (and the aborted transactions whose markers are
/// below it), in one statement: DeleteRecords and retention.
/// The partition's row is locked first, so a flush cannot add rows in
/// between; `size_bytes` loses the deleted chunks. Notifies the brokers.
/// Only at incarnation `$4`: a partition created again under the name is
/// not moved by what was decided about the one before.
pub const MOVE_LOG_START: &str = "
WITH p AS (
    SELECT log_start, next_offset FROM weir.partitions
    WHERE topic = $1 AND partition = $2 AND incarnation = $4 FOR UPDATE
), t AS (
    SELECT GREATEST(p.log_start, $3::bigint) AS s FROM p WHERE $3::bigint <= p.next_offset
), d AS (
    DELETE FROM weir.batches b USING t
    WHERE b.topic = $1 AND b.partition = $2 AND b.last_offset < t.s
    RETURNING b.size
), a AS (
    DELETE FROM weir.aborted x USING t
    WHERE x.topic = $1 AND x.partition = $2 AND x.marker_offset < t.s
)
UPDATE weir.partitions q
SET log_start = t.s, size_bytes = GREATEST(0, q.size_bytes - (SELECT COALESCE(sum(size), 0) FROM d))
FROM t WHERE q.topic = $1 AND q.partition = $2 AND q.incarnation = $4
RETURNING q.log_start, q.next_offset, q.size_bytes,
    pg_notify('weir_log', q.topic || E'\\t' || q.partition || E'\\t' || q.next_offset || E'\\t' || q.log_start
        || E'\\t\\t' || q.incarnation)";

/// What retention needs of partition (`$1`, `$2`), from one snapshot:
/// its log end and start, the first row whose largest timestamp is at
/// or after `$3` (rows before it are past `retention.ms`), the first row
/// after which fewer than `$4` bytes follow (rows before it are past
/// `retention.bytes`), and whether rows wholly below the log start are
/// left (a DeleteRecords that raced a compaction). The two searches run
/// only when `$5` (by time) and `$6` (by size) ask for them. Nothing
/// unless the partition is at incarnation `$7`.
pub const RETENTION: &str = "
SELECT p.next_offset, p.log_start,
    CASE WHEN $5::boolean THEN (SELECT b.base_offset FROM weir.batches b
     WHERE b.topic = p.topic AND b.partition = p.partition AND b.max_timestamp >= $3
     ORDER BY b.base_offset LIMIT 1) END,
    CASE WHEN $6::boolean THEN (SELECT x.base_offset FROM (
        SELECT b.base_offset, (sum(b.size) OVER (ORDER BY b.base_offset DESC))::bigint - b.size AS after
        FROM weir.batches b WHERE b.topic = p.topic AND b.partition = p.partition
     ) x WHERE x.after < $4 ORDER BY x.base_offset LIMIT 1) END,
    EXISTS (SELECT 1 FROM weir.batches b
     WHERE b.topic = p.topic AND b.partition = p.partition AND b.last_offset < p.log_start)
FROM weir.partitions p WHERE p.topic = $1 AND p.partition = $2 AND p.incarnation = $7";

/// A partition's index rows still in intake objects (key starting with
/// `$3`) committed more than `$4` ms ago, in offset order, at most `$5`.
pub const COMPACTION_CANDIDATES: &str = "
SELECT b.base_offset, b.last_offset, b.object_id, o.key, b.position, b.size, b.max_timestamp
FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id
WHERE b.topic = $1 AND b.partition = $2 AND left(o.key, length($3)) = $3
    AND o.created_at < now() - $4::bigint * interval '1 millisecond'
ORDER BY b.base_offset LIMIT $5";

/// The fence of a background job's transaction: the job lease (`$1`,
/// `$2`) is still this broker's (`$3`) at epoch `$4`, locked for share
/// until the commit so a takeover waits for it.
pub const JOB_FENCE: &str = "
SELECT 1 FROM weir.coordinators
WHERE topic = $1 AND partition = $2 AND holder = $3 AND epoch = $4 AND expires_at > now()
FOR SHARE";

/// Records a compacted object; answers its id and whether the row went
/// in before `$4` (ms since the epoch, as for [`INDEX`]): if not, the
/// caller rolls back.
pub const INSERT_OBJECT: &str = "
INSERT INTO weir.objects (key, size_bytes, node_id) VALUES ($1, $2, $3)
RETURNING id, clock_timestamp() < to_timestamp($4::bigint / 1000.0)";

/// Points index rows of partition (`$1`, `$2`) at compacted object `$3`:
/// `$4`-`$6` are (base offset, the object the row must still be in, new
/// position). A row deleted or moved meanwhile is left alone.
pub const SWAP_ROWS: &str = "
UPDATE weir.batches b SET object_id = $3, position = d.pos
FROM unnest($4::bigint[], $5::bigint[], $6::bigint[]) AS d(base, old, pos)
WHERE b.topic = $1 AND b.partition = $2 AND b.base_offset = d.base AND b.object_id = d.old";

/// The compacted objects (key starting with `$3`) of partition (`$1`,
/// `$2`) with the bytes of its chunks each still holds, in the order of
/// their first offsets: what merging groups.
pub const MERGE_CANDIDATES: &str = "
SELECT b.object_id, sum(b.size)::bigint
FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id
WHERE b.topic = $1 AND b.partition = $2 AND left(o.key, length($3)) = $3
GROUP BY b.object_id
ORDER BY min(b.base_offset)";

/// The rows of partition (`$1`, `$2`) in objects `$3`, in offset order,
/// as [`COMPACTION_CANDIDATES`] answers them.
pub const ROWS_IN_OBJECTS: &str = "
SELECT b.base_offset, b.last_offset, b.object_id, o.key, b.position, b.size, b.max_timestamp
FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id
WHERE b.topic = $1 AND b.partition = $2 AND b.object_id = ANY($3::bigint[])
ORDER BY b.base_offset";

/// Stamps the objects no index row references any more (their garbage
/// grace starts now). Rows only ever move to newer objects, so an
/// object stamped stays unreferenced.
pub const MARK_DROPPED: &str = "
UPDATE weir.objects o SET dropped_at = now()
WHERE o.dropped_at IS NULL AND NOT EXISTS (SELECT 1 FROM weir.batches b WHERE b.object_id = o.id)";

/// Objects unreferenced for more than `$1` ms, due for deletion.
pub const DUE_OBJECTS: &str = "
SELECT id, key FROM weir.objects
WHERE dropped_at < now() - $1::bigint * interval '1 millisecond'
ORDER BY id LIMIT 1000";

/// Forgets objects deleted from the store.
pub const FORGET_OBJECTS: &str = "DELETE FROM weir.objects WHERE id = ANY($1::bigint[])";

/// Adopts the old uploads `$1` (sizes `$2`) listed in the store that no
/// object row names, as broker `$3`: each gets a row stamped dropped, so
/// the collector deletes it like any unreferenced object; answers the
/// keys adopted. The unique key is the lock: a recording transaction that
/// inserted the key first makes this wait for its end (and skip the key
/// if it commits), and one inserting it later fails.
pub const ADOPT_ORPHANS: &str = "
INSERT INTO weir.objects (key, size_bytes, node_id, dropped_at)
SELECT k, s, $3, now() FROM unnest($1::text[], $2::bigint[]) AS x(k, s)
ON CONFLICT (key) DO NOTHING
RETURNING key";

/// Every index row of partition (`$1`, `$2`) for the cleaner, in offset
/// order, with the partition's log start, log end and first dirty offset
/// (repeated on each row); nothing unless it is at incarnation `$3`.
pub const CLEAN_ROWS: &str = "
SELECT b.base_offset, b.last_offset, b.object_id, o.key, b.position, b.size, b.max_timestamp,
    p.log_start, p.next_offset, p.cleaned_to
FROM weir.partitions p
JOIN weir.batches b ON b.topic = p.topic AND b.partition = p.partition
JOIN weir.objects o ON o.id = b.object_id
WHERE p.topic = $1 AND p.partition = $2 AND p.incarnation = $3
ORDER BY b.base_offset";

/// Points cleaned rows of partition (`$1`, `$2`) at object `$3`:
/// `$4`-`$10` are (base offset, the object and size the row must still
/// have, new position, new size, new last offset, new max timestamp).
pub const CLEANED_ROWS: &str = "
UPDATE weir.batches b SET object_id = $3, position = d.pos, size = d.size,
    last_offset = d.last, max_timestamp = d.ts
FROM unnest($4::bigint[], $5::bigint[], $6::integer[], $7::bigint[], $8::integer[], $9::bigint[], $10::bigint[])
    AS d(base, old, old_size, pos, size, last, ts)
WHERE b.topic = $1 AND b.partition = $2 AND b.base_offset = d.base AND b.object_id = d.old
    AND b.size = d.old_size";

/// Deletes the rows of partition (`$1`, `$2`) the cleaner emptied:
/// (`$3`, `$4`, `$5`) are (base offset, object, size) they must still
/// have.
pub const EMPTIED_ROWS: &str = "
DELETE FROM weir.batches b
USING unnest($3::bigint[], $4::bigint[], $5::integer[]) AS d(base, old, old_size)
WHERE b.topic = $1 AND b.partition = $2 AND b.base_offset = d.base AND b.object_id = d.old
    AND b.size = d.old_size";

/// After a cleaning pass: the first dirty offset moves to `$3` and the
/// partition's size loses `$4` bytes, if it is still incarnation `$5`
/// (no row otherwise: the caller rolls back).
pub const CLEANED: &str = "
UPDATE weir.partitions SET cleaned_to = GREATEST(cleaned_to, $3::bigint),
    size_bytes = GREATEST(0, size_bytes - $4::bigint)
WHERE topic = $1 AND partition = $2 AND incarnation = $5";

/// KIP-890 part 2: a broker taking a transactional write adds its
/// partitions (`$6`, `$7`) to the transaction of `$1` if the gate is open
/// at producer id `$2` and epoch `$3` (`$4`: the id's
/// `__transaction_state` partition, `$5`: now, ms). The gate row is read
/// FOR SHARE, so a coordinator closing it waits for the insert's commit
/// and then reads it; a join after the close sees it closed. Answers the
/// gate as it was (no row: no gate).
pub const JOIN_TRANSACTION: &str = "
WITH g AS (
    SELECT producer_id, epoch, open FROM weir.txn_gates WHERE transactional_id = $1 FOR SHARE
), i AS (
    INSERT INTO weir.txn_partitions (transactional_id, topic, partition, producer_id, epoch,
        coordinator, joined_at)
    SELECT $1, d.topic, d.part, $2, $3, $4, $5
    FROM g, unnest($6::text[], $7::integer[]) AS d(topic, part)
    WHERE g.producer_id = $2 AND g.epoch = $3 AND g.open
    ON CONFLICT (transactional_id, topic, partition) DO UPDATE
    SET producer_id = excluded.producer_id, epoch = excluded.epoch,
        coordinator = excluded.coordinator, joined_at = excluded.joined_at
    WHERE (weir.txn_partitions.producer_id, weir.txn_partitions.epoch)
        <> (excluded.producer_id, excluded.epoch)
)
SELECT producer_id, epoch, open FROM g";

/// Closes the gate of `$1` if broker `$4` holds the lease of `$2`/`$3`
/// at epoch `$5`; answers 1 if it does, 0 if it is fenced. Its own
/// statement, before [`JOINED_PARTITIONS`]: that one's snapshot then
/// holds every join that committed before the close.
pub const SEAL_TRANSACTION: &str = "
WITH f AS (
    SELECT 1 FROM weir.coordinators
    WHERE topic = $2 AND partition = $3 AND holder = $4 AND epoch = $5 FOR SHARE
), u AS (
    UPDATE weir.txn_gates SET open = false
    WHERE transactional_id = $1 AND EXISTS (SELECT 1 FROM f)
)
SELECT count(*) FROM f";

/// The partitions joined to the transaction of `$1`.
pub const JOINED_PARTITIONS: &str = "
SELECT transactional_id, producer_id, epoch, topic, partition, joined_at
FROM weir.txn_partitions WHERE transactional_id = $1";

/// Opens the gate of `$1` to producer id `$6` at epoch `$7` under the
/// lease as in [`SEAL_TRANSACTION`], deleting the joined partitions
/// (but those of `$6`/`$7` when `$8`); answers 1, or 0 if fenced.
pub const OPEN_TRANSACTION: &str = "
WITH f AS (
    SELECT 1 FROM weir.coordinators
    WHERE topic = $2 AND partition = $3 AND holder = $4 AND epoch = $5 FOR SHARE
), d AS (
    DELETE FROM weir.txn_partitions
    WHERE transactional_id = $1 AND EXISTS (SELECT 1 FROM f)
        AND NOT ($8 AND producer_id = $6 AND epoch = $7)
), u AS (
    INSERT INTO weir.txn_gates (transactional_id, producer_id, epoch, open)
    SELECT $1, $6, $7, true FROM f
    ON CONFLICT (transactional_id) DO UPDATE
    SET producer_id = excluded.producer_id, epoch = excluded.epoch, open = true
)
SELECT count(*) FROM f";

/// The partitions joined to transactions of the `__transaction_state`
/// partitions `$1`.
pub const JOINED_BY_COORDINATOR: &str = "
SELECT transactional_id, producer_id, epoch, topic, partition, joined_at
FROM weir.txn_partitions WHERE coordinator = ANY($1)";

/// Takes the session-level advisory lock of the name `$1`: class 6172
/// (as at schema creation, but in the two-key space, which is distinct)
/// and the name's hash. The server releases it when the session ends.
pub const CLUSTER_LOCK: &str = "SELECT pg_advisory_lock(6172, hashtext($1))";

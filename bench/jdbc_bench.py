#!/usr/bin/env python3
"""The JDBC sink's rows/s as a ratio to COPY of the same rows into the same
PostgreSQL, in one run.

    .venv/bin/python bench/jdbc_bench.py            # ROWS=200000
    ROWS=1000000 .venv/bin/python bench/jdbc_bench.py

Knobs (environment): ROWS, WEIR (the weir binary; default the release build
under CARGO_TARGET_DIR or target/), MODE (`insert.mode` of the sink,
default upsert), BATCH (`batch.size`, default 3000).

A throwaway PostgreSQL (Debian's package, as the tests start it: fsync off)
and one `weir serve` broker. ROWS rows of (id int, name text, qty bigint,
price numeric(10,2)) are produced to a topic with JsonConverter's schema
envelope before the clock starts. COPY: `COPY ... FROM STDIN` (CSV) of the
same rows by psql into an empty table. Sink: a `weir connect` worker with
the JDBC sink (`pk.mode=record_key`) into another empty table, timed from
the connector's creation until the table has ROWS rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import free_port, http  # noqa: E402  (bench/ is the script's directory)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import pg_helpers  # noqa: E402

ROWS = int(os.environ.get("ROWS", "200000"))
MODE = os.environ.get("MODE", "upsert")
BATCH = os.environ.get("BATCH", "3000")





SCHEMA = ('{"type":"struct","name":"bench.Row","optional":false,"fields":['
          '{"field":"id","type":"int32","optional":false},'
          '{"field":"name","type":"string","optional":true},'
          '{"field":"qty","type":"int64","optional":true},'
          '{"field":"price","type":"bytes","optional":true,'
          '"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}}]}')
KEY_SCHEMA = '{"type":"struct","optional":false,"fields":[{"field":"id","type":"int32","optional":false}]}'


def price_b64(cents: int) -> str:
    import base64
    n = max(1, (cents.bit_length() + 8) // 8)
    return base64.b64encode(cents.to_bytes(n, "big", signed=True)).decode()


def main() -> None:
    from confluent_kafka import Producer

    root = Path(tempfile.mkdtemp(prefix="weir-jdbc-bench-"))
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    weir = Path(os.environ.get("WEIR", target / "release" / "weir"))
    pg = pg_helpers.Postgres(free_port()).start()
    port = free_port()
    broker = subprocess.Popen(
        [str(weir), "serve", "--data-dir", str(root / "data"), "--listen", f"127.0.0.1:{port}",
         "--registry-listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}",
         "--connect-listen", "off", "--rest-listen", "off", "--console-listen", "off",
         "--sql-listen", "off"], stdout=open(root / "broker.log", "w"), stderr=subprocess.STDOUT)
    bootstrap = f"127.0.0.1:{port}"
    w = None
    try:
        time.sleep(2)
        pg.sql("CREATE DATABASE bench")
        ddl = "(id int PRIMARY KEY, name text, qty bigint, price numeric(10,2))"
        pg.sql(f"CREATE TABLE copied {ddl}; CREATE TABLE sunk {ddl};", "bench")
        rows = [(i, f"name-{i}", i * 3, i % 100000) for i in range(ROWS)]

        # COPY of the rows, from CSV text prepared before the clock starts.
        csv = "".join(f"{i},{n},{q},{c // 100}.{c % 100:02d}\n" for i, n, q, c in rows)
        start = time.monotonic()
        r = subprocess.run([str(pg.bin / "psql"), "-X", "-q", "-h", pg_helpers.HOST, "-p",
                            str(pg.port), "-U", pg.user, "-d", "bench", "-c",
                            "COPY copied FROM STDIN (FORMAT csv)"], input=csv, text=True,
                           capture_output=True)
        copy_s = time.monotonic() - start
        assert r.returncode == 0, r.stderr
        assert pg.rows("SELECT count(*) FROM copied", "bench") == [(str(ROWS),)]

        # The same rows through Kafka and the sink.
        topic = "bench-rows"
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
        for i, n, q, c in rows:
            key = f'{{"schema":{KEY_SCHEMA},"payload":{{"id":{i}}}}}'
            value = (f'{{"schema":{SCHEMA},"payload":{{"id":{i},"name":"{n}","qty":{q},'
                     f'"price":"{price_b64(c)}"}}}}')
            while True:
                try:
                    p.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    p.poll(0.1)
        p.flush(120)
        rest = free_port()
        json_conv = "org.apache.kafka.connect.json.JsonConverter"
        w = subprocess.Popen(
            [str(weir), "connect", "--bootstrap", bootstrap, "--listen", f"127.0.0.1:{rest}",
             "--set", f"key.converter={json_conv}", "--set", f"value.converter={json_conv}",
             "--set", "group.id=jdbc-bench"],
            stdout=open(root / "weir-connect.log", "w"), stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{rest}"
        for _ in range(300):
            try:
                if http("GET", url + "/health")["status"] == "healthy":
                    break
            except OSError:
                time.sleep(0.1)
        start = time.monotonic()
        http("POST", url + "/connectors", {"name": "bench-sink", "config": {
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "connection.url": f"jdbc:postgresql://127.0.0.1:{pg.port}/bench",
            "connection.user": pg.user, "topics": topic, "table.name.format": "sunk",
            "insert.mode": MODE, "pk.mode": "record_key", "batch.size": BATCH,
            "consumer.override.max.poll.records": "5000"}})
        while pg.rows("SELECT count(*) FROM sunk", "bench") != [(str(ROWS),)]:
            time.sleep(0.2)
        sink_s = time.monotonic() - start
        same = pg.rows("SELECT count(*) FROM (SELECT * FROM copied EXCEPT SELECT * FROM sunk) d",
                       "bench") == [("0",)]
    finally:
        if w:
            w.send_signal(signal.SIGTERM)
            w.wait(60)
        broker.send_signal(signal.SIGTERM)
        broker.wait(60)
        pg.stop()
    print(f"{ROWS} rows (int, text, bigint, numeric(10,2)), insert.mode={MODE}, batch.size={BATCH}")
    print(f"COPY      {copy_s:8.2f} s {ROWS / copy_s:10.0f} rows/s")
    print(f"JDBC sink {sink_s:8.2f} s {ROWS / sink_s:10.0f} rows/s  (tables equal: {same})")
    print(f"ratio sink/COPY: {copy_s / sink_s:.3f}")


if __name__ == "__main__":
    main()

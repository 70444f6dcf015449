#!/usr/bin/env python3
"""The streaming SQL benchmark of BENCHMARKS.md: each persistent query's
rate as a ratio to a plain `weir bench consume` of the same input topic,
measured in the same run against the same node, and pull- and push-query
latencies. Standard library and the weir binary only.

  WEIR=path/to/weir python3 bench/sql.py

Knobs (environment):
  WEIR       the weir binary (required)
  CLIENT     the weir binary whose `bench pull` sends the pulls (WEIR): the
             same client against two servers' builds
  RECORDS    input records (1000000; the issue's target run uses 10000000)
  KEYS       distinct keys (100000)
  PARTITIONS partitions of the input topics (4)
  PULLS      pull queries in the latency run (20000), CONCURRENCY at once (100),
             sent by `weir bench pull`
  PULL_RATE  the same pulls again at this fixed rate (1000/s: 100 clients
             asking 10 times a second each), open loop
  PUSH_SECS  length of the push-query latency run (20), PUSH_RATE records/s (500)
  DIR        scratch directory (a new temp dir)
  THREADS    ksql.streams.num.stream.threads of the persistent queries (the
             server's default, ksqlDB's 4, when unset)

The pulls run three times: closed loop and at PULL_RATE on the GROUP BY
table once its query has read every record, then closed loop on a
second such table while its query is still reading
(`pull_while_ingesting` gives how many records it had processed before
and after the pulls).

Each query's time runs from the CREATE ... AS SELECT until the query has
processed every input record (DESCRIBE EXTENDED's messages-processed);
its last transaction commits as soon as it has caught up.
"""

import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

WEIR = os.environ["WEIR"]
CLIENT = os.environ.get("CLIENT", WEIR)
RECORDS = int(os.environ.get("RECORDS", 1_000_000))
KEYS = int(os.environ.get("KEYS", 100_000))
PARTITIONS = int(os.environ.get("PARTITIONS", 4))
PULLS = int(os.environ.get("PULLS", 20_000))
CONCURRENCY = int(os.environ.get("CONCURRENCY", 100))
PULL_RATE = int(os.environ.get("PULL_RATE", 1000))
PUSH_SECS = float(os.environ.get("PUSH_SECS", 20))
PUSH_RATE = int(os.environ.get("PUSH_RATE", 500))
DIR = os.environ.get("DIR") or tempfile.mkdtemp(prefix="weir-sql-bench.")
THREADS = os.environ.get("THREADS")
STREAMS_PROPS = {"ksql.streams.num.stream.threads": THREADS} if THREADS else {}


def log(*a):
    print("==", *a, file=sys.stderr, flush=True)


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Node:
    def __init__(self):
        self.kafka, self.admin, self.sql = freeport(), freeport(), freeport()
        env = dict(os.environ, WEIR_ADMIN_LISTEN=f"127.0.0.1:{self.admin}",
                   WEIR_REGISTRY_LISTEN="127.0.0.1:0", WEIR_SQL_LISTEN=f"127.0.0.1:{self.sql}",
                   WEIR_REST_LISTEN="off", WEIR_CONNECT_LISTEN="off", WEIR_CONSOLE_LISTEN="off")
        self.log = open(os.path.join(DIR, "weir.log"), "ab")
        self.proc = subprocess.Popen(
            [WEIR, "serve", "--data-dir", os.path.join(DIR, "data"),
             "--listen", f"127.0.0.1:{self.kafka}",
             "--client-set", "sql.ksql.service.id=bench_",
             "--client-set", "sql.ksql.streams.auto.offset.reset=earliest"],
            stdout=self.log, stderr=self.log, env=env)
        self.wait(f"http://127.0.0.1:{self.sql}/info", 120)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.kafka}"

    def wait(self, url, limit):
        deadline = time.monotonic() + limit
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"weir did not start; see {self.log.name}")
                time.sleep(0.2)

    def cpu_seconds(self):
        """User and system CPU time the node has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    def ksql(self, text):
        body = json.dumps({"ksql": text, "streamsProperties": STREAMS_PROPS}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.sql}/ksql", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{text}\n-> {e.code} {e.read().decode()}")

    def weir(self, *args, stdin=None):
        return subprocess.run([WEIR, *args, "-b", self.bootstrap], check=True, stdin=stdin,
                              capture_output=True, text=True).stdout


def produce(node, topic, lines_path):
    node.weir("topic", "create", topic, "--partitions", str(PARTITIONS))
    # Keys placed as the Java client places them (murmur2), as ksqlDB
    # expects of a table joined through Join-repartition: a re-keyed row
    # goes to the partition murmur2 gives its key.
    node.weir("produce", topic, "--key-separator", "\t", "--acks", "1", "-X", "partitioner=murmur2_random",
              "--file", lines_path)


def write_inputs():
    """orders: RECORDS JSON records over KEYS keys; users: one per key."""
    rnd = random.Random(7)
    orders = os.path.join(DIR, "orders.txt")
    with open(orders, "w") as f:
        for i in range(RECORDS):
            k = rnd.randrange(KEYS)
            f.write(f'k{k}\t{{"ID":{i},"USER":"k{k}","AMOUNT":{rnd.random() * 100:.2f},'
                    f'"ITEM":"item-{rnd.randrange(1000)}","STATUS":"{"open" if i % 2 else "paid"}"}}\n')
    users = os.path.join(DIR, "users.txt")
    with open(users, "w") as f:
        for k in range(KEYS):
            f.write(f'k{k}\t{{"NAME":"user {k}","REGION":"r{k % 20}"}}\n')
    return orders, users


def consume_rate(node, topic):
    out = node.weir("bench", "consume", "--topic", topic, "--json")
    return json.loads(out)["consume"]["records_per_sec"]


def processed(node, sink):
    d = node.ksql(f"DESCRIBE {sink} EXTENDED;")[0]["sourceDescription"]
    return int(d["statistics"].split(":")[1])


def query_rate(node, sink, statement, total):
    start = time.monotonic()
    node.ksql(statement)
    while processed(node, sink) < total:
        time.sleep(0.05)
    return total / (time.monotonic() - start)


def pull_latency(node, table, keys, rate=0):
    """PULLS pull queries by key, CONCURRENCY at a time, by `weir bench
    pull` (one thread, one keep-alive HTTP/1.1 connection per concurrent
    query, so the client costs little next to the server). Closed loop
    (each connection sends its next query when the last is answered) by
    default: latency is then CONCURRENCY over the rate the node sustains.
    With `rate` the queries are due at that many a second and latency
    counts from the due time."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = node.cpu_seconds()
    out = subprocess.run([CLIENT, "bench", "pull", "--url", f"http://127.0.0.1:{node.sql}",
                          "--query", f"SELECT * FROM {table} WHERE USER = 'k{{key}}';",
                          "--keys", str(keys), "--queries", str(PULLS),
                          "--concurrency", str(CONCURRENCY), "--rate", str(rate), "--json"],
                         check=True, capture_output=True, text=True).stdout
    server = node.cpu_seconds() - server
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    r = json.loads(out)
    assert r["queries"] == PULLS and r["errors"] == 0, r
    lat = r["latency"]
    # CPU seconds the client and the node spent in the run: the client's
    # share shows whether the latency is the server's.
    return {"p50": lat["p50_ms"], "p99": lat["p99_ms"], "max": lat["max_ms"], "n": r["queries"],
            "per_sec": r["queries_per_sec"], "with_rows": r["with_rows"],
            "client_cpu_s": round(client, 2), "server_cpu_s": round(server, 2)}


def pull_while_ingesting(node):
    """The pull run again, on a new GROUP BY table whose query is still
    reading the orders topic from the beginning (the pulls contend with
    it for its state); reports how far it got before and after."""
    node.ksql("CREATE TABLE t2_out AS SELECT USER, COUNT(*) AS N, SUM(AMOUNT) AS TOTAL FROM orders GROUP BY USER;")
    while processed(node, "T2_OUT") == 0:
        time.sleep(0.01)
    before = processed(node, "T2_OUT")
    out = pull_latency(node, "T2_OUT", KEYS)
    out["processed_before"], out["processed_after"] = before, processed(node, "T2_OUT")
    return out


def percentiles(ms):
    ms = sorted(ms)
    at = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    return {"p50": at(0.5), "p99": at(0.99), "max": ms[-1], "n": len(ms)}


def push_latency(node):
    """A push query over a stream fed at PUSH_RATE records/s by `weir
    produce`; each record carries its send time, read back from the
    query's rows."""
    node.weir("topic", "create", "live", "--partitions", "1")
    node.ksql("CREATE STREAM live (K STRING KEY, SENT BIGINT) WITH (KAFKA_TOPIC='live', VALUE_FORMAT='JSON');")
    body = json.dumps({"sql": "SELECT SENT FROM live EMIT CHANGES;",
                       "properties": {"auto.offset.reset": "latest"}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{node.sql}/query-stream", data=body,
                                 headers={"Content-Type": "application/json"})
    resp = urllib.request.urlopen(req, timeout=300)
    resp.readline()  # the header: the query's start offsets are fixed
    lat = []
    done = threading.Event()

    def read():
        try:
            while not done.is_set():
                line = resp.readline()
                if not line:
                    return
                sent = json.loads(line)[0]
                lat.append(time.time() * 1000 - sent)
        except (OSError, ValueError):
            return  # the stream closed under the reader at the end

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    prod = subprocess.Popen([WEIR, "produce", "live", "--key-separator", "\t", "-X", "linger.ms=0",
                             "-b", node.bootstrap], stdin=subprocess.PIPE, text=True)
    interval = 1 / PUSH_RATE
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < PUSH_SECS:
        prod.stdin.write(f'k\t{{"SENT":{int(time.time() * 1000)}}}\n')
        prod.stdin.flush()
        n += 1
        time.sleep(max(0.0, start + n * interval - time.monotonic()))
    prod.stdin.close()
    prod.wait(60)
    time.sleep(2)
    done.set()
    # Closing the response waits for the reader's blocked readline; shut
    # the socket down first so that read returns.
    try:
        resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass
    reader.join(10)
    resp.close()
    # The first second warms the query up.
    return percentiles(lat[PUSH_RATE:] or lat)


def main():
    os.makedirs(DIR, exist_ok=True)
    log(f"scratch {DIR}; {RECORDS} records, {KEYS} keys, {PARTITIONS} partitions, threads {THREADS or 'default'}")
    orders, users = write_inputs()
    node = Node()
    try:
        # Users first: each order is newer than its user's row, so the
        # join meets a row for every order and emits one record each.
        produce(node, "users", users)
        produce(node, "orders", orders)
        node.ksql("CREATE STREAM orders (K STRING KEY, ID BIGINT, USER STRING, AMOUNT DOUBLE, ITEM STRING, STATUS STRING)"
                  " WITH (KAFKA_TOPIC='orders', VALUE_FORMAT='JSON');"
                  "CREATE TABLE users (ID STRING PRIMARY KEY, NAME STRING, REGION STRING)"
                  " WITH (KAFKA_TOPIC='users', VALUE_FORMAT='JSON');")
        results = {}
        base = consume_rate(node, "orders")
        log(f"plain consume of orders: {base:.0f} records/s")
        for name, sink, stmt, total in [
            ("filter and projection", "F_OUT",
             "CREATE STREAM f_out AS SELECT K, ID, UCASE(ITEM) AS ITEM, AMOUNT * 1.2 AS GROSS"
             " FROM orders WHERE STATUS = 'open';", RECORDS),
            ("tumbling COUNT GROUP BY", "W_OUT",
             "CREATE TABLE w_out AS SELECT USER, COUNT(*) AS N FROM orders"
             " WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY USER;", RECORDS),
            ("stream-table join", "J_OUT",
             "CREATE STREAM j_out AS SELECT O.USER, O.ID, O.AMOUNT, U.NAME, U.REGION"
             " FROM orders O JOIN users U ON O.USER = U.ID;", RECORDS + KEYS),
            ("GROUP BY (the pull-query table)", "T_OUT",
             "CREATE TABLE t_out AS SELECT USER, COUNT(*) AS N, SUM(AMOUNT) AS TOTAL FROM orders GROUP BY USER;",
             RECORDS),
        ]:
            rate = query_rate(node, sink, stmt, total)
            # Inputs the join reads include the table's topic.
            ratio = rate * RECORDS / total / base
            results[name] = {"records_per_sec": rate, "ratio_to_consume": ratio}
            log(f"{name}: {rate:.0f} records/s, {ratio:.0%} of the plain consume")
        results["pull"] = pull_latency(node, "T_OUT", KEYS)
        log(f"pull queries: {results['pull']}")
        results["pull_at_rate"] = pull_latency(node, "T_OUT", KEYS, PULL_RATE)
        log(f"pull queries at {PULL_RATE}/s: {results['pull_at_rate']}")
        results["pull_while_ingesting"] = pull_while_ingesting(node)
        log(f"pull queries while ingesting: {results['pull_while_ingesting']}")
        results["push"] = push_latency(node)
        log(f"push query: {results['push']}")
        results["plain_consume_records_per_sec"] = base
        print(json.dumps(results, indent=2))
    finally:
        node.stop()
        if not os.environ.get("DIR"):
            shutil.rmtree(DIR, ignore_errors=True)


if __name__ == "__main__":
    main()

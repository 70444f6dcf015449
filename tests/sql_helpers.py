"""Helpers for the streaming SQL tests: a `weir sql-server` process, a
ksqlDB REST client, and the table-driven case runner (cases in
sql_cases.json: statements, input records with timestamps, and the exact
output records expected, keys compared as bytes)."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import HOST, _die_with_parent, free_port


class SqlServer:
    """One `weir sql-server` process against a broker."""

    def __init__(self, binary: Path, workdir: Path, bootstrap: str, *extra: str,
                 service_id: str = "default_"):
        self.binary = binary
        self.workdir = workdir
        self.bootstrap = bootstrap
        self.extra = list(extra)
        self.service_id = service_id
        self.port = free_port()
        self.log_path = workdir / f"sql-{service_id}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60.0) -> "SqlServer":
        cmd = [str(self.binary), "sql-server", "--bootstrap", self.bootstrap,
               "--listen", f"{HOST}:{self.port}",
               "--set", f"ksql.service.id={self.service_id}", *self.extra]
        env = dict(os.environ, NO_COLOR="1", RUST_BACKTRACE="1")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sql-server exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/info", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"sql-server not ready within {timeout}s\n{self.log_tail()}")

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"sql-server ignored SIGTERM\n{self.log_tail()}")
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 80) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])

    # --- REST -------------------------------------------------------------
    def post(self, path: str, body: dict, accept: str | None = None, timeout: float = 60.0):
        """POST JSON; returns (status, parsed JSON or text)."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Accept": accept} if accept else {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path: str):
        url = self.url + urllib.parse.quote(path, safe="/")
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def ksql(self, statements: str, props: dict | None = None, variables: dict | None = None,
             ok: bool = True):
        body = {"ksql": statements, "streamsProperties": props or {"auto.offset.reset": "earliest"}}
        if variables:
            body["sessionVariables"] = variables
        status, answer = self.post("/ksql", body)
        if ok:
            assert status == 200, f"{statements}\n-> {status} {answer}"
        return status, answer


# --- record encodings, as ksqlDB writes them -------------------------------------

def key_bytes(spec) -> bytes | None:
    """{"int": 1} / {"bigint": 1} / {"double": 1.5} / {"string": "a"} (KAFKA
    format), {"json": value}, {"hex": "00ff"}, {"delimited": "a,b"}, or null;
    with "window": [start, end] (time window: start appended) or
    "session": [start, end] (end then start appended)."""
    if spec is None:
        return None
    if "int" in spec:
        b = struct.pack(">i", spec["int"])
    elif "bigint" in spec:
        b = struct.pack(">q", spec["bigint"])
    elif "double" in spec:
        b = struct.pack(">d", spec["double"])
    elif "string" in spec:
        b = spec["string"].encode()
    elif "json" in spec:
        b = json.dumps(spec["json"], separators=(",", ":")).encode()
    elif "hex" in spec:
        b = bytes.fromhex(spec["hex"])
    elif "delimited" in spec:
        b = spec["delimited"].encode()
    else:
        b = b""
    if "window" in spec:
        b += struct.pack(">q", spec["window"][0])
    if "session" in spec:
        b += struct.pack(">q", spec["session"][1]) + struct.pack(">q", spec["session"][0])
    return b


def value_bytes(v) -> bytes | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":")).encode()


def produce(bootstrap: str, topic: str, records: list[dict]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                  "enable.idempotence": False, "linger.ms": 0})
    errors = []
    for r in records:
        kw = {"key": key_bytes(r.get("key")), "value": value_bytes(r.get("value")),
              "timestamp": r["timestamp"]}
        if "partition" in r:
            kw["partition"] = r["partition"]
        if "headers" in r:  # [(key, bytes or None), ...]
            kw["headers"] = r["headers"]
        p.produce(topic, on_delivery=lambda e, m: errors.append(e) if e else None, **kw)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors


def read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[dict]:
    """Every committed record of a topic (read_committed), by partition then
    offset, with windowless raw keys."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sqltest-read",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = sorted(md.partitions)
        ends = {}
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = hi
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[dict] = []
        pending = set(ends)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                for tp in c.position([TopicPartition(topic, p) for p in list(pending)]):
                    if tp.offset >= ends[tp.partition]:
                        pending.discard(tp.partition)
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    pending.discard(m.partition())
                    continue
                raise AssertionError(m.error())
            out.append({"partition": m.partition(), "offset": m.offset(), "key": m.key(),
                        "value": m.value(), "timestamp": m.timestamp()[1]})
            if m.offset() + 1 >= ends[m.partition()]:
                pending.discard(m.partition())
        assert not pending, f"could not read {topic} to its end: {pending}"
        out.sort(key=lambda r: (r["partition"], r["offset"]))
        return out
    finally:
        c.close()


def wait_caught_up(bootstrap: str, group: str, topics: list[str], timeout: float = 90.0) -> None:
    """Waits until `group` has committed offsets at the end of every
    partition of `topics` (a query has processed all its input), and of the
    query's repartition topics (rows re-keyed but not yet aggregated)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            internal = [t for t in c.list_topics(timeout=10).topics
                        if t.startswith(group + "-") and t.endswith("-repartition")]
            tps = []
            for t in list(topics) + internal:
                md = c.list_topics(t, timeout=10).topics[t]
                tps += [TopicPartition(t, p) for p in md.partitions]
            try:
                committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
            except KafkaException as e:
                # A read_committed OffsetFetch is retried while the query's
                # open transaction holds pending offsets; a query committing
                # back to back can outlast the timeout.
                if e.args[0].code() != KafkaError._TIMED_OUT or time.monotonic() > deadline:
                    raise
                continue
            behind = []
            for tp in tps:
                _, hi = c.get_watermark_offsets(tp, timeout=10)
                got = committed[(tp.topic, tp.partition)]
                if hi > 0 and got < hi:
                    behind.append((tp.topic, tp.partition, got, hi))
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"query group {group} did not catch up: {behind}")
            time.sleep(0.2)
    finally:
        c.close()


def query_topics(server: SqlServer, query_id: str) -> list[str]:
    """The topics a persistent query reads (EXPLAIN, then DESCRIBE)."""
    _, explain = server.ksql(f"EXPLAIN {query_id};")
    topics = []
    for source in explain[0]["queryDescription"]["sources"]:
        _, desc = server.ksql(f"DESCRIBE `{source}`;")
        topics.append(desc[0]["sourceDescription"]["topic"])
    return topics


def query_group(service_id: str, query_id: str) -> str:
    return f"_confluent-ksql-{service_id}query_{query_id}"


def decode_value(raw: bytes | None, fmt: str):
    if raw is None:
        return None
    if fmt == "JSON":
        return json.loads(raw)
    return raw.decode()


def run_case(server: SqlServer, bootstrap: str, case: dict, prefix: str) -> None:
    """Runs one table-driven case: inputs first, then the statements, then
    the output topic compared record by record once the query caught up."""
    sub = lambda s: s.replace("{p}", prefix)  # noqa: E731
    for stmt in case.get("setup", []):
        server.ksql(sub(stmt))
    for inp in case.get("inputs", []):
        produce(bootstrap, sub(inp["topic"]), inp["records"])
    query_ids = []
    for stmt in case["statements"]:
        _, answer = server.ksql(sub(stmt))
        for entity in answer:
            qid = (entity.get("commandStatus") or {}).get("queryId")
            if qid:
                query_ids.append(qid)
    assert query_ids, "the case starts no query"
    for qid in query_ids:
        wait_caught_up(bootstrap, query_group(server.service_id, qid), query_topics(server, qid))
    expected = case["outputs"]
    got = read_all(bootstrap, sub(expected["topic"]))
    fmt = expected.get("format", "JSON")
    want = [{"key": key_bytes(r.get("key")), "value": r.get("value"), "timestamp": r["timestamp"],
             **({"partition": r["partition"]} if "partition" in r else {})} for r in expected["records"]]
    have = [{"key": g["key"], "value": decode_value(g["value"], fmt), "timestamp": g["timestamp"],
             **({"partition": g["partition"]} if any("partition" in r for r in expected["records"]) else {})}
            for g in got]
    if expected.get("unordered"):
        keyf = lambda r: json.dumps([r["key"].hex() if r["key"] else None, r["value"], r["timestamp"]],  # noqa: E731
                                    sort_keys=True)
        want.sort(key=keyf)
        have.sort(key=keyf)
    assert have == want, (f"case {case['name']}: output differs\n"
                          + "\n".join(f"  want {w}\n  have {h}" for w, h in
                                      __import__('itertools').zip_longest(want, have)))

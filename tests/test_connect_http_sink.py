"""The HTTP sink (`io.confluent.connect.http.HttpSinkConnector`) on a
`weir connect` worker, against a real HTTP server started by the test
(Python's http.server on 127.0.0.1:0) that records every request and
answers with statuses the test scripts; records produced and the
dead-letter queue read back with confluent-kafka.

- Batches (`batch.max.size`), bodies (JSON arrays; string values between
  `batch.prefix`/`batch.suffix` joined by `batch.separator`), `headers`,
  basic authentication, `${topic}`/`${key}` in the URL, tombstones as
  DELETE requests.
- 503, 503, 429 then 200: the same batch is sent four times, delivered
  once.
- Per-record delivery failures (KIP-610's errant record reporter, stage
  TASK_PUT): a non-retriable 400 and a 500 that outlasts `max.retries` go
  to the dead-letter queue with the original key, value and headers (not
  as a transform changed them) and
  the `__connect.errors.*` headers, and the group's offset moves past
  them; under `errors.tolerance=none` the task fails with the cause in its
  trace and the offset stays before the record.
- A connector deleted while its task retries: the retries stop at once
  and the record's offset is not committed.
- Kill -9 of the worker mid-stream over three partitions: every record
  arrives, in order per partition (at least once: records sent after the
  last offset commit are sent again after the restart).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from connect_helpers import STRING, ConnectWorker
from weir_helpers import create_topic, wait_until

FAST = {"offset.flush.interval.ms": "500", "heartbeat.interval.ms": "1000",
        "session.timeout.ms": "6000"}
JSON = "org.apache.kafka.connect.json.JsonConverter"
CLASS = "io.confluent.connect.http.HttpSinkConnector"


class Recorder:
    """An HTTP/1.1 server that records requests (method, path, headers
    with lower-case names, body) and answers each with `answer(method, path, body)`'s status
    (200 unless told otherwise), after `delay` seconds."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.lock = threading.Lock()
        self.answer = lambda method, path, body: 200
        self.delay = 0.0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if recorder.delay:
                    time.sleep(recorder.delay)
                with recorder.lock:
                    recorder.requests.append((self.command, self.path,
                                             {k.lower(): v for k, v in self.headers.items()},
                                             body))
                    status = recorder.answer(self.command, self.path, body)
                reply = b"ok" if status < 300 else b"refused: " + body[:40]
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def snapshot(self) -> list[tuple[str, str, dict, bytes]]:
        with self.lock:
            return list(self.requests)

    def bodies(self) -> list[bytes]:
        return [r[3] for r in self.snapshot()]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def server():
    s = Recorder()
    yield s
    s.close()


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("connect-http"),
                      module_broker.bootstrap, sets=FAST).start()
    yield w
    w.kill()


def produce(bootstrap: str, topic: str, records, partition: int | None = None):
    p = Producer({"bootstrap.servers": bootstrap})
    for r in records:
        key, value, headers = (r + (None,))[:3] if isinstance(r, tuple) else (None, r, None)
        kw = {"partition": partition} if partition is not None else {}
        p.produce(topic, value, key=key, headers=headers, **kw)
    assert p.flush(30) == 0


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect:
            assert time.monotonic() < deadline, f"{len(out)} of {expect} records in {topic}"
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m)
        # Nothing more behind them.
        m = c.poll(1.0)
        assert m is None or m.error(), f"unexpected extra record in {topic}: {m.value()!r}"
        return out
    finally:
        c.close()


def committed(bootstrap: str, connector: str, topic: str, partition: int = 0) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"connect-{connector}"})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def sink(server: Recorder, topic: str, **extra) -> dict:
    cfg = {"connector.class": CLASS, "topics": topic, "http.api.url": server.url + "/in",
           "key.converter": STRING, "value.converter": STRING}
    cfg.update({k.replace("_", "."): v for k, v in extra.items()})
    return cfg


def test_batches_bodies_headers_and_auth(worker, module_broker, server):
    topic = "hs-json"
    produce(module_broker.bootstrap, topic, [json.dumps({"n": i}).encode() for i in range(10)])
    worker.create("hs-json", sink(
        server, topic, http_api_url=server.url + "/ingest/${topic}",
        value_converter=JSON, **{"value.converter.schemas.enable": "false"},
        request_body_format="json", batch_max_size="4", batch_json_as_array="true",
        headers="X-Test:yes|X-Trace:a:b", auth_type="BASIC", connection_user="u",
        connection_password="p w"))
    wait_until(lambda: sum(len(json.loads(b)) for b in server.bodies()) >= 10, 30,
               what="ten records posted")
    reqs = server.snapshot()
    batches = [json.loads(r[3]) for r in reqs]
    assert [x for b in batches for x in b] == [{"n": i} for i in range(10)]
    assert len(batches[0]) == 4 and all(1 <= len(b) <= 4 for b in batches)
    method, path, headers, _ = reqs[0]
    assert (method, path) == ("POST", "/ingest/hs-json")
    assert headers["x-test"] == "yes" and headers["x-trace"] == "a:b"
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"u:p w").decode()
    assert worker.status("hs-json")["tasks"][0]["state"] == "RUNNING"
    worker.delete("/connectors/hs-json")


def test_string_bodies_and_tombstones(worker, module_broker, server):
    topic = "hs-str"
    produce(module_broker.bootstrap, topic,
            [(b"k1", b"a"), (b"k2", b"b"), (b"k3", b"c"), (b"k4", None), (b"k5", b"d")])
    worker.create("hs-str", sink(
        server, topic, http_api_url=server.url + "/kv/${key}", batch_max_size="3",
        batch_prefix="<", batch_suffix=">", batch_separator=";",
        behavior_on_null_values="delete", request_method="PUT"))
    wait_until(lambda: len(server.snapshot()) >= 5, 30, what="five requests")
    time.sleep(1)
    got = [(m, p, b) for m, p, _, b in server.snapshot()]
    # A URL with ${key} makes a batch per key; the tombstone is a DELETE
    # in its place in the stream.
    assert got == [("PUT", "/kv/k1", b"<a>"), ("PUT", "/kv/k2", b"<b>"), ("PUT", "/kv/k3", b"<c>"),
                   ("DELETE", "/kv/k4", b""), ("PUT", "/kv/k5", b"<d>")]
    assert server.snapshot()[0][2]["content-type"].startswith("text/plain")
    worker.delete("/connectors/hs-str")


def test_retriable_statuses_are_retried(worker, module_broker, server):
    topic = "hs-retry"
    script = [503, 503, 429]
    server.answer = lambda m, p, b: script.pop(0) if script else 200
    produce(module_broker.bootstrap, topic, [b"x1", b"x2", b"x3"])
    worker.create("hs-retry", sink(server, topic, batch_max_size="3", max_retries="5",
                                   retry_backoff_ms="50", retry_backoff_policy="CONSTANT_VALUE",
                                   retry_on_status_codes="500-"))
    wait_until(lambda: len(server.snapshot()) >= 4, 30, what="three failures and a success")
    wait_until(lambda: committed(module_broker.bootstrap, "hs-retry", topic) == 3, 30,
               what="offsets committed")
    assert server.bodies() == [b"x1,x2,x3"] * 4
    assert worker.status("hs-retry")["tasks"][0]["state"] == "RUNNING"
    worker.delete("/connectors/hs-retry")


def test_a_stop_cuts_retries_short_and_commits_nothing(worker, module_broker, server):
    topic = "hs-stop"
    server.answer = lambda m, p, b: 503
    produce(module_broker.bootstrap, topic, [b"s1"])
    worker.create("hs-stop", sink(server, topic, max_retries="100", retry_backoff_ms="1000",
                                  retry_backoff_policy="CONSTANT_VALUE", errors_tolerance="all"))
    wait_until(lambda: len(server.snapshot()) >= 2, 30, what="a retried request")
    assert worker.delete("/connectors/hs-stop").status_code == 204
    time.sleep(0.5)
    seen = len(server.snapshot())
    time.sleep(2.5)  # a retry would come every second
    assert len(server.snapshot()) == seen
    # Neither delivered nor dead-lettered: the record is not committed.
    assert committed(module_broker.bootstrap, "hs-stop", topic) < 1


def test_failed_records_go_to_the_dead_letter_queue(worker, module_broker, server):
    topic, dlq = "hs-dlq", "hs-dlq-dead"

    def answer(method, path, body):
        if body.startswith(b"bad"):
            return 400
        if body.startswith(b"down"):
            return 500
        return 200
    server.answer = answer
    values = [b"ok0", b"bad1", b"ok2", b"down3", b"ok4"]
    produce(module_broker.bootstrap, topic,
            [(f"k{i}".encode(), v, [("origin", b"test")]) for i, v in enumerate(values)])
    worker.create("hs-dlq", sink(
        server, topic, retry_on_status_codes="500-", max_retries="1", retry_backoff_ms="10",
        errors_tolerance="all", errors_log_enable="true",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_context_headers_enable="true",
        # The queue gets records as they are in Kafka, not as transformed.
        transforms="ih", **{"transforms.ih.type": "org.apache.kafka.connect.transforms.InsertHeader",
                            "transforms.ih.header": "added", "transforms.ih.value.literal": "yes"}))
    dead = read_all(module_broker.bootstrap, dlq, 2)
    assert [(m.key(), m.value()) for m in dead] == [(b"k1", b"bad1"), (b"k3", b"down3")]
    h = [{k: v.decode() for k, v in m.headers()} for m in dead]
    assert h[0]["origin"] == "test" and "added" not in h[0]
    for hh, offset in zip(h, ["1", "3"]):
        assert hh["__connect.errors.topic"] == topic
        assert hh["__connect.errors.partition"] == "0"
        assert hh["__connect.errors.offset"] == offset
        assert hh["__connect.errors.connector.name"] == "hs-dlq"
        assert hh["__connect.errors.task.id"] == "0"
        assert hh["__connect.errors.stage"] == "TASK_PUT"
        assert hh["__connect.errors.class.name"] == "org.apache.kafka.connect.sink.SinkTask"
        assert hh["__connect.errors.exception.class.name"] == \
            "org.apache.kafka.connect.errors.ConnectException"
    assert "HTTP 400" in h[0]["__connect.errors.exception.message"]
    assert "HTTP 500" in h[1]["__connect.errors.exception.message"]
    assert "after 1 retries" in h[1]["__connect.errors.exception.message"]
    wait_until(lambda: committed(module_broker.bootstrap, "hs-dlq", topic) == 5, 30,
               what="the offset past every record")
    ok = [b for b in server.bodies() if b.startswith(b"ok")]
    assert ok == [b"ok0", b"ok2", b"ok4"]
    # `down3` was tried twice (max.retries=1), `bad1` once.
    assert server.bodies().count(b"down3") == 2 and server.bodies().count(b"bad1") == 1
    worker.delete("/connectors/hs-dlq")

    # Without tolerance: the task fails naming the cause, and its offset
    # stays before the record it could not deliver.
    strict = "hs-strict"
    produce(module_broker.bootstrap, strict, [b"fine0", b"bad1", b"fine2"])
    worker.create(strict, sink(server, strict, retry_on_status_codes="500-"))
    st = wait_until(lambda: (s := worker.status(strict))["tasks"]
                    and s["tasks"][0]["state"] == "FAILED" and s, 30, what="a FAILED task")
    trace = st["tasks"][0]["trace"]
    assert "Tolerance exceeded in error handler" in trace
    assert "HTTP 400" in trace and "refused: bad1" in trace
    assert committed(module_broker.bootstrap, strict, strict) in (-1001, 0, 1)
    assert b"fine0" in server.bodies() and b"fine2" not in server.bodies()
    worker.delete(f"/connectors/{strict}")


def test_unreachable_endpoint_and_validation(worker, module_broker, server):
    topic = "hs-down"
    produce(module_broker.bootstrap, topic, [b"v"])
    closed = server.url.rsplit(":", 1)[0] + ":1"
    worker.create("hs-down", {**sink(server, topic, max_retries="1", retry_backoff_ms="10"),
                              "http.api.url": closed + "/x"})
    st = wait_until(lambda: (s := worker.status("hs-down"))["tasks"]
                    and s["tasks"][0]["state"] == "FAILED" and s, 30, what="a FAILED task")
    assert "127.0.0.1:1/x failed" in st["tasks"][0]["trace"]
    worker.delete("/connectors/hs-down")
    r = worker.put(f"/connector-plugins/{CLASS}/config/validate",
                   {"connector.class": CLASS, "name": "v", "topics": "t",
                    "auth.type": "OAUTH2", "batch.max.size": "0"})
    assert r.status_code == 200, r.text
    errs = {c["value"]["name"]: c["value"]["errors"] for c in r.json()["configs"]
            if c["value"]["errors"]}
    assert set(errs) == {"http.api.url", "auth.type", "batch.max.size"}, errs


def test_kill9_mid_stream_loses_nothing(module_broker, weir_binary, tmp_path, server):
    topic, n = "hs-kill", 3000
    create_topic(AdminClient({"bootstrap.servers": module_broker.bootstrap}), topic, partitions=3)
    for p in range(3):
        produce(module_broker.bootstrap, topic, [f"{p}:{i}".encode() for i in range(n // 3)],
                partition=p)
    server.delay = 0.02
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap,
                      sets={**FAST, "group.id": "hs-kill", "config.storage.topic": "hs-kill-c",
                            "offset.storage.topic": "hs-kill-o",
                            "status.storage.topic": "hs-kill-s"}, name="hs-kill").start()

    def received() -> list[bytes]:
        return [v for b in server.bodies() for v in b.split(b"\n") if v]
    try:
        w.create("hs-kill", sink(server, topic, batch_max_size="20", batch_separator="\n"))
        wait_until(lambda: len(received()) >= n // 3, 60, what="a third of the records")
        w.kill()
        assert len(set(received())) < n, "the stream ended before the kill"
        w.start()
        wait_until(lambda: len(set(received())) >= n, 120, what="every record")
    finally:
        w.kill()
    got = received()
    assert set(got) == {f"{p}:{i}".encode() for p in range(3) for i in range(n // 3)}
    for p in range(3):
        seq = [int(v.split(b":")[1]) for v in got if v.startswith(f"{p}:".encode())]
        first = list(dict.fromkeys(seq))
        # In order per partition; a replay starts again from a committed
        # offset and goes forward.
        assert first == list(range(n // 3))

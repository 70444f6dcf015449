"""Weir's Connect runtime (`weir connect`), standalone against a Weir node
started separately, driven through Kafka Connect's REST API with httpx and
checked with confluent-kafka and the files themselves.

- REST: `/`, `/health`, plugins, validation with per-field errors, the
  connector lifecycle (create, config, tasks, status, pause/resume/stop,
  restart, delete) with Kafka's status codes and error bodies.
- The internal topics hold Kafka Connect's keys and JSON values byte for
  byte.
- A 1,000,000-line file → topic → file pipeline; the worker is killed with
  SIGKILL in the middle and restarted: the output file equals the input and
  the topic holds each line once for a read_committed consumer
  (exactly-once source, exactly-once file sink).
- Dead-letter queue with Kafka's context headers under
  `errors.tolerance=all`; a failed task with a trace under `none`.
- Two workers in one group share connectors; when one is killed its work
  moves after `scheduled.rebalance.max.delay.ms`; a third joining stops
  nothing that runs.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from connect_helpers import STRING, ConnectWorker, line_count
from weir_helpers import wait_until

FAST = {"offset.flush.interval.ms": "500", "heartbeat.interval.ms": "1000",
        "session.timeout.ms": "6000"}


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("connect"), module_broker.bootstrap,
                      sets=FAST).start()
    yield w
    w.kill()


def read_topic(bootstrap: str, topic: str, committed: bool = True, timeout: float = 30):
    """Every record of every partition of `topic`, to its end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed" if committed else "read_uncommitted"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = list(md.partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        done, out = set(), []
        deadline = time.monotonic() + timeout
        while len(done) < len(parts):
            assert time.monotonic() < deadline, f"reading {topic} timed out"
            for m in c.consume(10000, timeout=1):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        done.add(m.partition())
                    continue
                out.append(m)
        return out
    finally:
        c.close()


def test_root_health_and_plugins(worker, module_broker):
    r = worker.get("/")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"version", "commit", "kafka_cluster_id"}
    assert body["kafka_cluster_id"]
    assert worker.get("/health").json()["status"] == "healthy"
    plugins = worker.get("/connector-plugins").json()
    assert {"class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "type": "sink",
            "version": "4.3.0"} in plugins
    assert {p["type"] for p in plugins} == {"sink", "source"}
    all_plugins = worker.get("/connector-plugins?connectorsOnly=false").json()
    assert any(p["class"] == "org.apache.kafka.connect.json.JsonConverter" for p in all_plugins)
    defs = worker.get("/connector-plugins/FileStreamSource/config").json()
    # The plugin's own configs, then the runtime's, as Kafka lists them.
    assert [d["name"] for d in defs][:4] == ["file", "topic", "batch.size", "name"]
    assert defs[2]["default_value"] == "2000" and defs[2]["type"] == "INT"
    assert worker.get("/connector-plugins/Nope/config").status_code == 404


def test_validate_reports_errors_per_field(worker):
    r = worker.put("/connector-plugins/FileStreamSourceConnector/config/validate",
                   {"connector.class": "FileStreamSource", "name": "v", "tasks.max": "0"})
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["name"] == "FileStreamSource"  # connector.class as given, as Kafka
    assert v["error_count"] == 2
    errors = {c["value"]["name"]: c["value"]["errors"] for c in v["configs"]}
    assert errors["topic"] == ['Missing required configuration "topic" which has no default value.']
    assert errors["tasks.max"] == ["Invalid value 0 for configuration tasks.max: Value must be at least 1"]
    assert errors["file"] == []
    assert "Common" in v["groups"]
    name_def = next(c["definition"] for c in v["configs"] if c["definition"]["name"] == "name")
    assert name_def["required"] is True and name_def["group"] == "Common"
    r = worker.put("/connector-plugins/FileStreamSink/config/validate",
                   {"connector.class": "FileStreamSource"})
    assert r.status_code == 400


def test_connector_lifecycle(worker, tmp_path):
    name = "life"
    out = tmp_path / "life.txt"
    cfg = {"connector.class": "FileStreamSink", "topics": "life-in", "file": str(out)}
    info = worker.create(name, cfg)
    assert info == {"name": name, "config": {**cfg, "name": name}, "tasks": [], "type": "sink"}
    dup = worker.post("/connectors", {"name": name, "config": cfg})
    assert dup.status_code == 409
    assert dup.json() == {"error_code": 409, "message": f"Connector {name} already exists"}
    worker.wait_state(name)
    assert worker.get(f"/connectors/{name}").json()["tasks"] == [{"connector": name, "task": 0}]
    assert worker.get(f"/connectors/{name}/config").json()["topics"] == "life-in"
    tasks = worker.get(f"/connectors/{name}/tasks").json()
    assert tasks[0]["id"] == {"connector": name, "task": 0}
    assert tasks[0]["config"]["file"] == str(out)
    st = worker.get(f"/connectors/{name}/tasks/0/status").json()
    assert st["id"] == 0 and st["state"] == "RUNNING" and st["worker_id"]
    assert name in worker.get("/connectors").json()
    expanded = worker.get("/connectors?expand=status&expand=info").json()
    assert set(expanded[name]) == {"status", "info"}
    # Updates: PUT answers 200 for an existing connector, PATCH merges.
    r = worker.put(f"/connectors/{name}/config", {**cfg, "topics": "life-in,life-in2"})
    assert r.status_code == 200, r.text
    r = worker.request("PATCH", f"/connectors/{name}/config", {"topics": "life-in"})
    assert r.status_code == 200 and r.json()["config"]["topics"] == "life-in"
    # Pause, resume, stop.
    assert worker.put(f"/connectors/{name}/pause").status_code == 202
    worker.wait_state(name, "PAUSED")
    assert worker.put(f"/connectors/{name}/resume").status_code == 202
    worker.wait_state(name, "RUNNING")
    assert worker.put(f"/connectors/{name}/stop").status_code == 204
    worker.wait_state(name, "STOPPED", tasks=0)
    assert worker.put(f"/connectors/{name}/resume").status_code == 202
    worker.wait_state(name, "RUNNING")
    # Restarts.
    assert worker.post(f"/connectors/{name}/restart").status_code == 204
    r = worker.post(f"/connectors/{name}/restart?includeTasks=true")
    assert r.status_code == 202 and r.json()["tasks"][0]["state"] == "RESTARTING"
    worker.wait_state(name, "RUNNING")
    assert worker.post(f"/connectors/{name}/tasks/0/restart").status_code == 204
    worker.wait_state(name, "RUNNING")
    # Delete, then everything about it is 404.
    assert worker.delete(f"/connectors/{name}").status_code == 204
    r = worker.get(f"/connectors/{name}")
    assert r.status_code == 404
    assert r.json() == {"error_code": 404, "message": f"Connector {name} not found"}
    assert worker.delete(f"/connectors/{name}").status_code == 404
    assert worker.put(f"/connectors/{name}/pause").status_code == 404


def test_bad_requests_are_400_with_a_reason(worker):
    r = worker.post("/connectors", {"name": "bad", "config": {"connector.class": "com.example.Nope"}})
    assert r.status_code == 400
    assert "FileStreamSinkConnector" in r.json()["message"]
    r = worker.post("/connectors", {"name": "bad", "config": {"connector.class": "FileStreamSink"}})
    assert r.status_code == 400
    assert "topics" in r.json()["message"]
    r = httpx_raw(worker, "POST", "/connectors", b"{not json")
    assert r.status_code == 400 and r.json()["error_code"] == 400
    r = worker.put("/connectors/x/config", {"connector.class": "FileStreamSink", "name": "y",
                                            "topics": "t"})
    assert r.status_code == 400
    assert worker.get("/no/such/path").status_code == 404


def httpx_raw(worker, method, path, body: bytes):
    import httpx
    return httpx.request(method, worker.url + path, content=body,
                         headers={"content-type": "application/json"}, timeout=30)


def test_internal_topics_use_kafka_connect_formats(worker, module_broker, tmp_path):
    src = tmp_path / "fmt.txt"
    src.write_text("a\nb\n")
    name = "fmt-src"
    worker.create(name, {"connector.class": "FileStreamSource", "file": str(src),
                         "topic": "fmt-out", "value.converter": STRING})
    worker.wait_state(name)
    wait_until(lambda: len(read_topic(module_broker.bootstrap, "fmt-out")) == 2, 30, what="two records")
    configs = {m.key().decode(): m.value() for m in
               read_topic(module_broker.bootstrap, "connect-configs")}
    assert configs[f"connector-{name}"] == json.dumps(
        {"properties": {"connector.class": "FileStreamSource", "file": str(src), "name": name,
                        "topic": "fmt-out", "value.converter": STRING}},
        separators=(",", ":")).encode()
    assert configs[f"commit-{name}"] == b'{"tasks":1}'
    assert json.loads(configs[f"task-{name}-0"])["properties"]["file"] == str(src)

    def status_records():
        return {m.key().decode(): m.value() for m in
                read_topic(module_broker.bootstrap, "connect-status")}
    statuses = wait_until(lambda: (s := status_records()) and f"status-task-{name}-0" in s and s,
                        30, what="task status")
    task = json.loads(statuses[f"status-task-{name}-0"])
    assert list(task) == ["state", "trace", "worker_id", "generation"]
    assert task["state"] == "RUNNING" and task["trace"] is None
    assert task["worker_id"] == f"127.0.0.1:{worker.port}"
    topic_key = f"status-topic-fmt-out:connector-{name}"
    wait_until(lambda: topic_key in status_records(), 30, what="topic status")
    wait_until(lambda: worker.get(f"/connectors/{name}/topics").json()
             == {name: {"topics": ["fmt-out"]}}, 30, what="the connector's active topics")
    offsets = [(m.key(), m.value()) for m in read_topic(module_broker.bootstrap, "connect-offsets")
               if m.key().startswith(f'["{name}"'.encode())]
    assert offsets[-1] == (json.dumps([name, {"filename": str(src)}], separators=(",", ":")).encode(),
                           b'{"position":4}')
    assert worker.delete(f"/connectors/{name}").status_code == 204
    wait_until(lambda: status_records().get(f"status-connector-{name}", b"") is None, 30, what="a tombstone for the deleted connector's status")


def test_dead_letter_queue_and_failed_task(worker, module_broker, tmp_path):
    topic = "dlq-in"
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    for v in [b'{"n":1}', b"{broken", b'{"n":2}', b"also broken"]:
        p.produce(topic, v, headers={"origin": b"test"})
    p.flush(30)
    out = tmp_path / "dlq-out.txt"
    worker.create("dlq-sink", {
        "connector.class": "FileStreamSink", "topics": topic, "file": str(out),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "errors.tolerance": "all", "errors.log.enable": "true",
        "errors.deadletterqueue.topic.name": "dlq-out",
        "errors.deadletterqueue.context.headers.enable": "true"})
    wait_until(lambda: line_count(out) == 2, 60, what="two good records in the sink's file")
    assert out.read_text() == "{n=1}\n{n=2}\n"
    dead = wait_until(lambda: (d := read_topic(module_broker.bootstrap, "dlq-out")) and len(d) == 2
                    and d, 60, what="two records in the DLQ")
    assert [m.value() for m in dead] == [b"{broken", b"also broken"]
    h = {k: v.decode() for k, v in dead[0].headers()}
    assert h["origin"] == "test"
    assert h["__connect.errors.topic"] == topic
    assert h["__connect.errors.partition"] == "0"
    assert h["__connect.errors.offset"] == "1"
    assert h["__connect.errors.connector.name"] == "dlq-sink"
    assert h["__connect.errors.task.id"] == "0"
    assert h["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert h["__connect.errors.class.name"] == "org.apache.kafka.connect.json.JsonConverter"
    assert h["__connect.errors.exception.class.name"] == \
        "org.apache.kafka.connect.errors.DataException"
    assert "Converting byte[] to Kafka Connect data failed" in h["__connect.errors.exception.message"]
    # Without tolerance the task fails, with a trace in its status.
    worker.create("strict-sink", {
        "connector.class": "FileStreamSink", "topics": topic, "file": str(tmp_path / "strict.txt"),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false"})
    st = wait_until(lambda: (s := worker.status("strict-sink"))["tasks"]
                  and s["tasks"][0]["state"] == "FAILED" and s, 60, what="a FAILED task")
    trace = st["tasks"][0]["trace"]
    assert "Tolerance exceeded in error handler" in trace
    assert "org.apache.kafka.connect.errors.DataException" in trace
    assert st["connector"]["state"] == "RUNNING"


def test_transforms_and_predicates(worker, module_broker, tmp_path):
    """A source's chain: every line hoisted into a struct with a static
    field, routed by RegexRouter; a Filter with a negated TopicNameMatches
    predicate drops the lines that are not routed. The records' JSON is
    what Kafka's JsonConverter writes for those structs."""
    src = tmp_path / "smt.txt"
    src.write_text("keep\nkeep too\n")
    cfg = {"connector.class": "FileStreamSource", "file": str(src), "topic": "smt-raw",
           "value.converter": "org.apache.kafka.connect.json.JsonConverter",
           "transforms": "hoist,tag,route,only",
           "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
           "transforms.hoist.field": "line",
           "transforms.tag.type": "org.apache.kafka.connect.transforms.InsertField$Value",
           "transforms.tag.static.field": "source",
           "transforms.tag.static.value": "file",
           "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
           "transforms.route.regex": "smt-(.*)",
           "transforms.route.replacement": "routed-$1",
           "transforms.only.type": "org.apache.kafka.connect.transforms.Filter",
           "transforms.only.predicate": "is-routed",
           "transforms.only.negate": "true",
           "predicates": "is-routed",
           "predicates.is-routed.type":
               "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
           "predicates.is-routed.pattern": "routed-.*"}
    worker.create("smt", cfg)
    records = wait_until(lambda: (r := read_topic(module_broker.bootstrap, "routed-raw"))
                         and len(r) == 2 and r, 60, what="two routed records")
    schema = ('{"type":"struct","fields":[{"type":"string","optional":false,"field":"line"},'
              '{"type":"string","optional":true,"field":"source"}],"optional":false}')
    assert records[0].value() == (
        '{"schema":' + schema + ',"payload":{"line":"keep","source":"file"}}').encode()
    r = worker.put("/connector-plugins/FileStreamSource/config/validate",
                   {**cfg, "name": "v", "transforms.route.type": "com.example.Nope"})
    errors = [e for c in r.json()["configs"] for e in c["value"]["errors"]]
    assert any("com.example.Nope" in e for e in errors), errors
    plugins = worker.get("/connector-plugins?connectorsOnly=false").json()
    assert {"class": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            "type": "predicate", "version": "4.3.0"} in plugins
    assert worker.delete("/connectors/smt").status_code == 204


def test_million_line_pipeline_survives_kill9(module_broker, weir_binary, tmp_path):
    """1,000,000 lines through FileStreamSource → topic → FileStreamSink with
    the worker killed in the middle: output equals input, topic holds each
    line once."""
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    with open(src, "w") as f:
        f.writelines(f"line {i:07d} {'x' * (i % 23)}\n" for i in range(1_000_000))
    sets = {**FAST, "group.id": "mil", "config.storage.topic": "mil-configs",
            "offset.storage.topic": "mil-offsets", "status.storage.topic": "mil-status",
            "key.converter": STRING, "value.converter": STRING}
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap, sets=sets,
                      name="mil").start()
    try:
        w.create("mil-src", {"connector.class": "FileStreamSource", "file": str(src),
                             "topic": "mil"})
        w.create("mil-sink", {"connector.class": "FileStreamSink", "file": str(dst),
                              "topics": "mil"})
        wait_until(lambda: line_count(dst) >= 200_000, 120, what="a fifth of the lines in the sink")
        w.kill()
        w.start()
        wait_until(lambda: line_count(dst) >= 1_000_000, 240, what="every line in the sink")
        time.sleep(1.5)  # a duplicate would land within a flush interval
        assert line_count(dst) == 1_000_000
        assert dst.read_bytes() == src.read_bytes()
        records = read_topic(module_broker.bootstrap, "mil", timeout=120)
        assert len(records) == 1_000_000
        assert records[0].value() == b"line 0000000 "
        assert records[-1].value() == b"line 0999999 " + b"x" * (999_999 % 23)
    finally:
        w.kill()


def test_two_workers_share_work_and_take_over(module_broker, weir_binary, tmp_path):
    sets = {**FAST, "group.id": "duo", "config.storage.topic": "duo-configs",
            "offset.storage.topic": "duo-offsets", "status.storage.topic": "duo-status",
            "scheduled.rebalance.max.delay.ms": "3000", "value.converter": STRING}
    a = ConnectWorker(weir_binary, tmp_path / "a", module_broker.bootstrap, sets, name="a").start()
    b = ConnectWorker(weir_binary, tmp_path / "b", module_broker.bootstrap, sets, name="b").start()
    c = None
    try:
        # /health answers before a worker has joined the group: wait for
        # both members, so the connectors created next are spread.
        def members():
            out = subprocess.run([str(weir_binary), "group", "describe", "duo", "-b",
                                  module_broker.bootstrap], capture_output=True, text=True,
                                 timeout=30).stdout
            return "STATE Stable" in out and "MEMBERS 2" in out
        wait_until(members, 60, what="both workers in the group")
        names = [f"duo-{i}" for i in range(4)]
        for n in names:
            f = tmp_path / f"{n}.txt"
            f.write_text("x\n")
            # Created through either worker: a follower forwards to the leader.
            (a if n.endswith(("0", "2")) else b).create(
                n, {"connector.class": "FileStreamSource", "file": str(f), "topic": n})
        for n in names:
            a.wait_state(n)

        def owners():
            return {n: a.status(n)["tasks"][0]["worker_id"] for n in names}
        before = owners()
        assert set(before.values()) == {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"}, before
        b.kill()

        def all_on_a():
            o = owners()
            ok = set(o.values()) == {f"127.0.0.1:{a.port}"} and all(
                a.status(n)["tasks"][0]["state"] == "RUNNING" for n in names)
            return ok and o
        wait_until(all_on_a, 60, what="b's tasks moving to a")
        moved = owners()
        c = ConnectWorker(weir_binary, tmp_path / "c", module_broker.bootstrap, sets,
                          name="c").start()
        time.sleep(4)  # a rebalance round with c
        assert owners() == moved, "a join must not move or stop running tasks"
        assert all(a.status(n)["tasks"][0]["state"] == "RUNNING" for n in names)
        f = tmp_path / "duo-new.txt"
        f.write_text("y\n")
        c.create("duo-new", {"connector.class": "FileStreamSource", "file": str(f),
                             "topic": "duo-new"})
        st = c.wait_state("duo-new")
        assert st["tasks"][0]["worker_id"] == f"127.0.0.1:{c.port}", "new work goes to the idle worker"
    finally:
        for w in (a, b, c):
            if w:
                w.kill()


def test_embedded_in_weir_serve(broker_factory, weir_binary, tmp_path):
    """`weir serve --connect-listen` runs a worker against the node's own
    Kafka listener, with its metrics on the admin listener."""
    import httpx
    from conftest import HOST, free_port
    port = free_port()
    # Worker settings come with the service's client settings.
    b = broker_factory("--connect-listen", f"{HOST}:{port}",
                       "--client-set", "connect.offset.flush.interval.ms=500",
                       "--client-set", "connect.group.id=embedded")
    url = f"http://{HOST}:{port}"
    wait_until(lambda: _get_ok(url + "/health"), 60, what="the embedded worker's health")
    assert httpx.get(url + "/").json()["version"] == "4.3.0"
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("".join(f"{i}\n" for i in range(100)))
    for name, cfg in [("emb-src", {"connector.class": "FileStreamSource", "file": str(src),
                                   "topic": "emb", "value.converter": STRING}),
                      ("emb-sink", {"connector.class": "FileStreamSink", "file": str(dst),
                                    "topics": "emb", "value.converter": STRING})]:
        r = httpx.post(url + "/connectors", json={"name": name, "config": cfg}, timeout=30)
        assert r.status_code == 201, r.text
    wait_until(lambda: dst.exists() and dst.read_bytes() == src.read_bytes(), 60,
               what="the file copied through the node")
    metrics = httpx.get(b.admin_url + "/metrics").text
    assert 'weir_connect_source_records_polled_total{connector="emb-src",task="0"} 100' in metrics
    groups = subprocess.run([str(weir_binary), "group", "list", "-b", b.bootstrap],
                            capture_output=True, timeout=60).stdout.decode()
    assert any(line.split()[:1] == ["embedded"] and line.split()[-1] == "connect"
               for line in groups.splitlines()), groups
    b.stop()


def _get_ok(url):
    import httpx
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_datagen_source_and_the_cli(worker, module_broker, weir_binary):
    """The data generator through `weir connect create|list|status|pause|
    resume|restart|delete`: 50 order structs as Kafka's JsonConverter
    writes them, numbered from 0."""
    def cli(*args):
        p = subprocess.run([str(weir_binary), "connect", *args, "--url", worker.url],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout
    out = cli("create", "gen", "-c", "connector.class=DataGenSource", "-c", "topic=gen-orders",
              "-c", "iterations=50", "-c", "max.interval=0",
              "-c", "value.converter=org.apache.kafka.connect.json.JsonConverter",
              "-c", "key.converter=" + STRING)
    assert out.strip() == "created gen"
    worker.wait_state("gen")
    records = wait_until(lambda: (r := read_topic(module_broker.bootstrap, "gen-orders"))
                         and len(r) >= 50 and r, 60, what="50 generated orders")
    time.sleep(1)
    records = read_topic(module_broker.bootstrap, "gen-orders")
    assert len(records) == 50
    assert [m.key() for m in records[:3]] == [b"0", b"1", b"2"]
    first = json.loads(records[0].value())
    assert first["schema"]["name"] == "weir.datagen.Order"
    assert [f["field"] for f in first["schema"]["fields"]] == \
        ["order_id", "customer", "item", "quantity", "price", "ts"]
    assert first["payload"]["order_id"] == 0
    listed = cli("list")
    assert any(line.split("\t")[:3] == ["gen", "source", "RUNNING"] for line in listed.splitlines()), listed
    assert "RUNNING" in cli("status", "gen")
    assert cli("pause", "gen").strip() == "paused gen"
    worker.wait_state("gen", "PAUSED")
    assert cli("resume", "gen").strip() == "resumed gen"
    worker.wait_state("gen", "RUNNING")
    assert cli("restart", "gen", "--include-tasks").strip() == "restarted gen"
    worker.wait_state("gen", "RUNNING")
    time.sleep(1)
    # Resumed from its committed offset: nothing written twice.
    assert len(read_topic(module_broker.bootstrap, "gen-orders")) == 50
    assert cli("delete", "gen").strip() == "deleted gen"
    assert worker.get("/connectors/gen").status_code == 404

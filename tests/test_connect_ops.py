"""Operating a Connect worker (`weir connect`) through Kafka Connect's REST
API with httpx, checked with confluent-kafka and the worker's own log.

- KIP-875 offsets: `GET|PATCH|DELETE /connectors/{c}/offsets` on a source
  (the offsets topic) and a sink (its consumer group's committed offsets,
  read back with confluent-kafka); changes only on a STOPPED connector;
  Kafka's messages and status codes; a resumed connector starts where the
  changed offsets say.
- Exactly-once source: a data generator's worker killed with SIGKILL at
  three random points; a read_committed consumer sees each record once.
  Changing a source's offsets under exactly-once support fences its tasks'
  transactional ids first: zombie task producers (confluent-kafka holding
  those ids, a transaction open) can no longer commit.
- `/admin/loggers`: levels listed with `last_modified`, changed per worker
  and per cluster (through the config topic), and really applied (debug
  lines appear in the worker's log only after the change).
- `connector.client.config.override.policy`: All by default; Principal
  refuses `acks` at validation and creation with Kafka's error.
- `errors.retry.timeout`: a sink's retriable failure retried with backoff
  (the retry metric counts), then the task fails (`none`) or the batch is
  skipped (`all`).
"""

from __future__ import annotations

import random
import time
import uuid

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient

from connect_helpers import STRING, ConnectWorker, line_count
from test_connect import read_topic
from weir_helpers import wait_until

FAST = {"offset.flush.interval.ms": "300", "heartbeat.interval.ms": "1000",
        "session.timeout.ms": "6000", "key.converter": STRING, "value.converter": STRING}

STOPPED_FIRST = ("Connectors must be in the STOPPED state before their offsets can be modified. "
                 "This can be done for the specified connector by issuing a 'PUT' request to the "
                 "'/connectors/{}/stop' endpoint")


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("connect-ops"), module_broker.bootstrap,
                      sets=FAST).start()
    yield w
    w.kill()


def patch(worker, name, body):
    return worker.request("PATCH", f"/connectors/{name}/offsets", body)


def offsets(worker, name):
    r = worker.get(f"/connectors/{name}/offsets")
    assert r.status_code == 200, r.text
    return r.json()["offsets"]


def stop(worker, name):
    assert worker.put(f"/connectors/{name}/stop").status_code == 204
    worker.wait_state(name, "STOPPED", tasks=0)


def test_source_offsets_listed_altered_and_reset(worker, module_broker, tmp_path):
    name, topic = "ops-src", f"ops-src-{uuid.uuid4().hex[:6]}"
    src = tmp_path / "in.txt"
    src.write_text("a\nb\nc\n")
    worker.create(name, {"connector.class": "FileStreamSource", "file": str(src), "topic": topic})
    worker.wait_state(name)
    partition = {"filename": str(src)}
    wait_until(lambda: offsets(worker, name) == [{"partition": partition, "offset": {"position": 6}}],
               30, what="the source's offset committed")
    # Changes need a stopped connector.
    r = patch(worker, name, {"offsets": [{"partition": partition, "offset": {"position": 0}}]})
    assert (r.status_code, r.json()) == (400, {"error_code": 400, "message": STOPPED_FIRST.format(name)})
    assert worker.delete(f"/connectors/{name}/offsets").status_code == 400
    stop(worker, name)
    # Kafka's refusals: an empty request, then FileStreamSource's own checks (500).
    r = patch(worker, name, {"offsets": []})
    assert r.json() == {"error_code": 400,
                        "message": "Partitions / offsets need to be provided for an alter offsets request"}
    bad = [({"position": "2"}, partition,
            "The value for the 'position' key in the offset is expected to be a Long value"),
           ({"position": -1}, partition,
            "The value for the 'position' key in the offset should be a non-negative value"),
           ({"pos": 1}, partition, "Offset objects should either be null or contain the key 'position'"),
           ({"position": 1}, {"file": "x"}, "Partition objects should contain the key 'filename'")]
    for offset, part, message in bad:
        r = patch(worker, name, {"offsets": [{"partition": part, "offset": offset}]})
        assert (r.status_code, r.json()["message"]) == (500, message)
    assert offsets(worker, name) == [{"partition": partition, "offset": {"position": 6}}]
    # Rewind to byte 2: resumed, the task reads "b" and "c" again.
    r = patch(worker, name, {"offsets": [{"partition": partition, "offset": {"position": 2}}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "The offsets for this connector have been altered successfully"}
    assert offsets(worker, name) == [{"partition": partition, "offset": {"position": 2}}]
    assert worker.put(f"/connectors/{name}/resume").status_code == 202
    wait_until(lambda: [m.value() for m in read_topic(module_broker.bootstrap, topic)]
               == [b"a", b"b", b"c", b"b", b"c"], 30, what="the rewound lines")
    stop(worker, name)
    r = worker.delete(f"/connectors/{name}/offsets")
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "The offsets for this connector have been reset successfully"}
    assert offsets(worker, name) == []
    assert worker.delete(f"/connectors/{name}").status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        r = worker.request(method, f"/connectors/{name}/offsets",
                           {"offsets": [{"partition": partition, "offset": None}]})
        assert r.json() == {"error_code": 404, "message": f"Connector {name} not found"}, method


def test_exactly_once_offset_changes_fence_zombie_tasks(worker, module_broker):
    """KIP-875 with KIP-618, as Kafka's worker does it: before a source
    connector's offsets change under exactly-once support (the worker's
    default), every task's transactional id is fenced (InitProducerId), and
    the offsets are written in a transaction. A zombie task (a producer with
    a task's transactional id and a transaction open, as a task left running
    on a partitioned worker would have) cannot commit afterwards, and a
    read_committed consumer never sees what it wrote."""
    name, topic = "ops-fence", f"ops-fence-{uuid.uuid4().hex[:6]}"
    worker.create(name, {"connector.class": "DataGenSource", "topic": topic, "quickstart": "lines",
                         "line.bytes": "8", "iterations": "3", "max.interval": "0",
                         "tasks.max": "2"})
    worker.wait_state(name, tasks=2)
    wait_until(lambda: len(offsets(worker, name)) == 2, 30, what="both tasks' offsets committed")
    before = sorted(m.value() for m in read_topic(module_broker.bootstrap, topic))
    assert len(before) == 6
    stop(worker, name)

    def zombie(task: int) -> Producer:
        p = Producer({"bootstrap.servers": module_broker.bootstrap,
                      "transactional.id": f"connect-cluster-{name}-{task}"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(topic, f"zombie-{task}".encode(), partition=0)
        p.flush(10)
        return p
    zombies = [zombie(0), zombie(1)]
    first = offsets(worker, name)[0]
    changed = {"partition": first["partition"], "offset": {"position": 1}}
    r = patch(worker, name, {"offsets": [changed]})
    assert r.status_code == 200, r.text
    for task, z in enumerate(zombies):
        with pytest.raises(KafkaException) as e:
            z.commit_transaction(30)
        err = e.value.args[0]
        assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                             KafkaError.INVALID_PRODUCER_EPOCH), (task, err)
    # The transactional write of the new offset is what the worker reads.
    assert changed in offsets(worker, name)
    after = sorted(m.value() for m in read_topic(module_broker.bootstrap, topic))
    assert after == before, "a fenced zombie's records became visible"
    # A reset goes through the same fencing.
    z = zombie(1)
    r = worker.delete(f"/connectors/{name}/offsets")
    assert r.status_code == 200, r.text
    with pytest.raises(KafkaException):
        z.commit_transaction(30)
    assert offsets(worker, name) == []
    assert worker.delete(f"/connectors/{name}").status_code == 204


def group_empty(bootstrap: str, group: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    d = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return d.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD)


def committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def test_sink_offsets_are_the_groups_committed_offsets(worker, module_broker, tmp_path):
    name, topic = "ops-sink", f"ops-sink-{uuid.uuid4().hex[:6]}"
    group = f"connect-{name}"
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    for i in range(5):
        p.produce(topic, f"r{i}".encode(), partition=0)
    p.flush(10)
    out = tmp_path / "out.txt"
    worker.create(name, {"connector.class": "FileStreamSink", "topics": topic, "file": str(out)})
    wait_until(lambda: out.exists() and line_count(out) == 5, 30, what="five lines in the sink file")
    partition = {"kafka_topic": topic, "kafka_partition": 0}
    wait_until(lambda: offsets(worker, name) == [{"partition": partition, "offset": {"kafka_offset": 5}}],
               30, what="the sink's committed offset")
    stop(worker, name)
    wait_until(lambda: group_empty(module_broker.bootstrap, group), 30, what="the sink group empty")
    cases = [({"partition": None, "offset": None},
              "The partition for a sink connector offset cannot be null or missing"),
             ({"partition": {"kafka_topic": topic}, "offset": None},
              "The partition for a sink connector offset must contain the keys 'kafka_topic' and 'kafka_partition'"),
             ({"partition": partition, "offset": {"offset": 1}},
              "The offset for a sink connector should either be null or contain the key 'kafka_offset'"),
             ({"partition": {**partition, "kafka_partition": "x"}, "offset": None},
              "Failed to parse the following Kafka partition value in the provided offsets: 'x'. "
              "Partition values for sink connectors need to be integers."),
             ({"partition": partition, "offset": {"kafka_offset": 1.5}},
              "Failed to parse the following Kafka offset value in the provided offsets: '1.5'. "
              "Offset values for sink connectors need to be integers.")]
    for entry, message in cases:
        r = patch(worker, name, {"offsets": [entry]})
        assert r.json() == {"error_code": 400, "message": message}
    r = patch(worker, name, {"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": "0"},
                                          "offset": {"kafka_offset": "2"}}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "The offsets for this connector have been altered successfully"}
    assert committed(module_broker.bootstrap, group, topic) == 2
    assert offsets(worker, name) == [{"partition": partition, "offset": {"kafka_offset": 2}}]
    # Resumed, the sink writes records 2..4 again.
    assert worker.put(f"/connectors/{name}/resume").status_code == 202
    wait_until(lambda: line_count(out) == 8, 30, what="three records written again")
    assert out.read_text().splitlines()[5:] == ["r2", "r3", "r4"]
    stop(worker, name)
    wait_until(lambda: group_empty(module_broker.bootstrap, group), 30, what="the sink group empty")
    r = worker.delete(f"/connectors/{name}/offsets")
    assert r.json() == {"message": "The offsets for this connector have been reset successfully"}
    assert offsets(worker, name) == []
    assert committed(module_broker.bootstrap, group, topic) < 0
    assert worker.delete(f"/connectors/{name}").status_code == 204


def test_admin_loggers_change_levels_at_run_time(worker, tmp_path):
    r = worker.get("/admin/loggers")
    assert r.status_code == 200
    assert r.json()["root"] == {"level": "INFO", "last_modified": None}
    r = worker.get("/admin/loggers/weir_connect.nope")
    assert r.json() == {"error_code": 404, "message": "Logger weir_connect.nope not found."}
    r = worker.put("/admin/loggers/weir_connect", {"level": "LOUD"})
    assert r.json() == {"error_code": 404, "message": "invalid log level 'LOUD'."}
    r = worker.put("/admin/loggers/weir_connect", {})
    assert r.json() == {"error_code": 400, "message": "Desired 'level' parameter was not specified in request."}

    def debug_lines() -> int:
        return sum(" DEBUG " in line and "weir_connect" in line
                   for line in worker.log_path.read_text(errors="replace").splitlines())
    assert debug_lines() == 0
    before = int(time.time() * 1000)
    r = worker.put("/admin/loggers/weir_connect", {"level": "debug"})
    assert (r.status_code, r.json()) == (200, ["weir_connect"])
    level = worker.get("/admin/loggers/weir_connect").json()
    assert level["level"] == "DEBUG" and level["last_modified"] >= before
    # The filter really changed: the herder's debug lines now reach the log.
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    worker.create("ops-log", {"connector.class": "FileStreamSource", "file": str(src), "topic": "ops-log"})
    wait_until(lambda: debug_lines() > 0, 30, what="debug lines in the worker's log")
    assert worker.delete("/connectors/ops-log").status_code == 204
    # A child logger, then its namespace again: both are affected.
    assert worker.put("/admin/loggers/weir_connect::worker", {"level": "TRACE"}).json() == \
        ["weir_connect::worker"]
    assert worker.put("/admin/loggers/weir_connect", {"level": "WARN"}).json() == \
        ["weir_connect", "weir_connect::worker"]
    # Cluster scope: written to the config topic, applied by every worker.
    r = worker.put("/admin/loggers/weir_connect?scope=cluster", {"level": "INFO"})
    assert r.status_code == 204
    wait_until(lambda: worker.get("/admin/loggers").json().get("weir_connect::worker", {}).get("level")
               == "INFO", 30, what="the cluster-scoped level applied")


def test_client_override_policy(worker, module_broker, weir_binary, tmp_path):
    cfg = {"connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"), "topic": "ops-pol",
           "producer.override.acks": "1", "producer.override.sasl.mechanism": "PLAIN",
           "consumer.override.fetch.min.bytes": "1"}
    # The default (All, as Kafka 4.3's) takes any override.
    r = worker.put("/connector-plugins/FileStreamSource/config/validate", {**cfg, "name": "p"})
    assert r.json()["error_count"] == 0
    # A source's producer and admin overrides are checked, not a consumer's.
    assert [c["value"]["name"] for c in r.json()["configs"][-2:]] == \
        ["producer.override.acks", "producer.override.sasl.mechanism"]
    strict = ConnectWorker(weir_binary, tmp_path / "strict", module_broker.bootstrap, name="strict",
                           sets={**FAST, "group.id": "ops-strict", "config.storage.topic": "ops-strict-configs",
                                 "offset.storage.topic": "ops-strict-offsets",
                                 "status.storage.topic": "ops-strict-status",
                                 "connector.client.config.override.policy": "Principal"}).start()
    try:
        message = ("The 'Principal' policy does not allow 'acks' to be overridden in the "
                   "connector configuration.")
        r = strict.put("/connector-plugins/FileStreamSource/config/validate", {**cfg, "name": "p"})
        v = r.json()
        assert v["error_count"] == 1
        by_name = {c["value"]["name"]: c["value"] for c in v["configs"]}
        assert by_name["producer.override.acks"]["errors"] == [message]
        assert by_name["producer.override.sasl.mechanism"]["errors"] == []
        r = strict.post("/connectors", {"name": "p", "config": cfg})
        assert r.status_code == 400
        assert r.json()["message"] == (
            "Connector configuration is invalid and contains the following 1 error(s):\n"
            f"producer.override.acks: {message}\n"
            "You can also find the above list of errors at the endpoint "
            "`/connector-plugins/{connectorType}/config/validate`")
        del cfg["producer.override.acks"]
        assert strict.post("/connectors", {"name": "p", "config": cfg}).status_code == 201
        assert strict.delete("/connectors/p").status_code == 204
    finally:
        strict.kill()


def test_override_policy_rechecked_when_a_task_starts(module_broker, weir_binary, tmp_path):
    """A connector created under All keeps its overrides in the config
    topic; a worker with a stricter policy that picks it up fails its task
    at start, as Kafka's worker does ("Client Config Overrides not
    allowed"), rather than passing the overrides to its client."""
    tag = uuid.uuid4().hex[:6]
    sets = {**FAST, "group.id": f"ops-tight-{tag}", "config.storage.topic": f"ops-tight-{tag}-configs",
            "offset.storage.topic": f"ops-tight-{tag}-offsets",
            "status.storage.topic": f"ops-tight-{tag}-status"}
    (tmp_path / "in.txt").write_text("a\n")
    cfg = {"connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"),
           "topic": f"ops-tight-{tag}", "producer.override.acks": "1"}
    lax = ConnectWorker(weir_binary, tmp_path / "lax", module_broker.bootstrap, name="lax",
                        sets=sets).start()
    try:
        assert lax.post("/connectors", {"name": "t", "config": cfg}).status_code == 201
        wait_until(lambda: (lambda st: st["tasks"] and st["tasks"][0]["state"] == "RUNNING")(
            lax.get("/connectors/t/status").json()), 30, what="the task running under All")
    finally:
        lax.kill()
    strict = ConnectWorker(weir_binary, tmp_path / "strict", module_broker.bootstrap, name="strict",
                           sets={**sets, "scheduled.rebalance.max.delay.ms": "1000",
                                 "connector.client.config.override.policy": "Principal"}).start()
    try:
        def failed():
            r = strict.get("/connectors/t/status")
            if r.status_code != 200:
                return None
            tasks = r.json()["tasks"]
            return tasks[0] if tasks and tasks[0]["state"] == "FAILED" else None
        task = wait_until(failed, 60, what="the task failed by the stricter policy")
        assert "Client Config Overrides not allowed" in task["trace"], task
        assert ("producer.override.acks: The 'Principal' policy does not allow 'acks' to be "
                "overridden") in task["trace"], task
    finally:
        strict.kill()


def metric(worker, name: str, connector: str) -> float:
    for line in worker.get("/metrics").text.splitlines():
        if line.startswith(f'{name}{{connector="{connector}",'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_retriable_put_is_retried_then_the_tolerance_decides(worker, module_broker, tmp_path):
    topic = f"ops-retry-{uuid.uuid4().hex[:6]}"
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    for i in range(3):
        p.produce(topic, f"r{i}".encode(), partition=0)
    p.flush(10)
    # The sink's file is in a directory that appears only later: opening
    # it is a retriable failure, retried with backoff while the timeout lasts.
    later = tmp_path / "later"
    cfg = {"connector.class": "FileStreamSink", "topics": topic, "file": str(later / "out.txt"),
           "errors.retry.timeout": "60000", "errors.retry.delay.max.ms": "500"}
    worker.create("ops-retry", cfg)
    wait_until(lambda: metric(worker, "weir_connect_retries_total", "ops-retry") >= 3, 30,
               what="retries")
    assert worker.status("ops-retry")["tasks"][0]["state"] == "RUNNING"
    later.mkdir()
    wait_until(lambda: (later / "out.txt").exists() and line_count(later / "out.txt") == 3, 30,
               what="the records written once the directory exists")
    assert (later / "out.txt").read_text() == "r0\nr1\nr2\n"
    assert metric(worker, "weir_connect_sink_record_lag_max", "ops-retry") == 0
    assert worker.delete("/connectors/ops-retry").status_code == 204
    # Retries run out: with errors.tolerance=none the task fails ...
    never = tmp_path / "never" / "out.txt"
    worker.create("ops-giveup", {**cfg, "file": str(never), "errors.retry.timeout": "1500"})
    task = wait_until(lambda: (lambda t: t and t[0]["state"] == "FAILED" and t[0])(
        worker.status("ops-giveup")["tasks"]), 30, what="the task failed")
    trace = task["trace"]
    assert "Tolerance exceeded in error handler" in trace and "RetriableException" in trace
    assert metric(worker, "weir_connect_retries_total", "ops-giveup") >= 2
    assert worker.delete("/connectors/ops-giveup").status_code == 204
    # ... with errors.tolerance=all the batch is skipped and the task runs on.
    worker.create("ops-skip", {**cfg, "file": str(never), "errors.retry.timeout": "1000",
                               "errors.tolerance": "all"})
    wait_until(lambda: metric(worker, "weir_connect_record_errors_total", "ops-skip") == 3, 30,
               what="the skipped batch counted")
    assert worker.status("ops-skip")["tasks"][0]["state"] == "RUNNING"
    assert worker.delete("/connectors/ops-skip").status_code == 204


def test_exactly_once_source_survives_kill9_at_random_points(module_broker, weir_binary, tmp_path):
    """A data-generator source under exactly-once support, its worker killed
    with SIGKILL at three random points of its output: a read_committed
    consumer sees every record once, none missing."""
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    n, topic = 400_000, f"ops-eos-{uuid.uuid4().hex[:6]}"
    sets = {**FAST, "group.id": "ops-eos", "config.storage.topic": "ops-eos-configs",
            "offset.storage.topic": "ops-eos-offsets", "status.storage.topic": "ops-eos-status"}
    w = ConnectWorker(weir_binary, tmp_path / "eos", module_broker.bootstrap, sets=sets,
                      name="eos").start()
    watcher = Consumer({"bootstrap.servers": module_broker.bootstrap, "group.id": "ops-eos-watch"})

    def written() -> int:
        try:
            return watcher.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1]
        except Exception:  # noqa: BLE001 - the topic may not exist yet
            return 0
    try:
        w.create("ops-eos", {"connector.class": "DataGenSource", "topic": topic, "quickstart": "lines",
                             "line.bytes": "24", "iterations": str(n), "max.interval": "0",
                             "tasks.max": "1"})
        for _ in range(3):
            # Each kill lands after a random further 2-10 % of the records
            # (the log end counts transaction markers too, which only makes
            # the point earlier): a point in the data, not in time, so a fast
            # machine cannot finish the source before the third kill.
            point = written() + int(rnd.uniform(0.02, 0.10) * n)
            wait_until(lambda: written() >= point, 60, interval=0.005,
                       what="the source writing")
            assert written() < n, f"the source finished before the kill (seed {seed})"
            w.kill()
            w.start()
        wait_until(lambda: written() >= n, 240, what="every record written")
        time.sleep(1.0)  # a duplicate would land within a transaction interval
        records = read_topic(module_broker.bootstrap, topic, timeout=120)
        numbers = [int(m.value()[:12]) for m in records]
        assert numbers == list(range(n)), f"gaps or duplicates (seed {seed})"
    finally:
        watcher.close()
        w.kill()


def test_embedded_worker_logs_in_under_acls_behind_tls_and_basic_auth(broker_factory, tmp_path):
    """`weir serve --connect-listen` when the worker must log in: it connects
    to the node's SASL listener with its own credentials (`--client-set
    connect.*`), the broker's ACLs apply to it as to any client (a topic its
    principal may not write fails the task, the broker's audit log naming
    the denial), and
    the REST API is served over TLS with basic authentication, as the node's
    other HTTP listeners."""
    import ssl

    import httpx
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    from conftest import HOST, free_port
    from security_util import start_secure_broker
    users = {"admin": "admin-pw", "connect": "connect-pw", "ops": "ops-pw"}
    sb = start_secure_broker(broker_factory, tmp_path, users=users,
                             protocols=("PLAINTEXT", "SASL_PLAINTEXT"), start=False,
                             sets={"authorizer.class.name": "StandardAuthorizer",
                                   "super.users": "User:admin", "http.ssl.enabled": "true",
                                   "http.authentication": "basic"})
    sb.broker.start()
    admin = AdminClient(sb.client_config("SASL_PLAINTEXT", "admin", "admin-pw"))
    # The worker's principal: its internal topics, group and transactional
    # ids (all `connect-...`) and the `sec-` topics; nothing else.
    grants = [AclBinding(rtype, prefix, ResourcePatternType.PREFIXED, "User:connect", "*",
                         AclOperation.ALL, AclPermissionType.ALLOW)
              for rtype, prefix in [(ResourceType.TOPIC, "connect-"), (ResourceType.GROUP, "connect-"),
                                    (ResourceType.TRANSACTIONAL_ID, "connect-"),
                                    (ResourceType.TOPIC, "sec-")]]
    grants.append(AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL,
                             "User:connect", "*", AclOperation.IDEMPOTENT_WRITE,
                             AclPermissionType.ALLOW))
    for f in admin.create_acls(grants, request_timeout=15).values():
        f.result(15)
    from confluent_kafka.admin import NewTopic
    for t in ("sec-lines", "denied-lines"):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    # The worker starts once its ACLs exist (without them it cannot create
    # its internal topics and stops).
    sb.broker.stop()
    port = free_port()
    sb.broker.args += ["--connect-listen", f"{HOST}:{port}",
                       "--client-set", "connect.security.protocol=SASL_PLAINTEXT",
                       "--client-set", "connect.sasl.mechanism=PLAIN",
                       "--client-set", "connect.sasl.username=connect",
                       "--client-set", "connect.sasl.password=connect-pw",
                       "--client-set", "connect.offset.flush.interval.ms=300"]
    sb.broker.start()

    def lines(topic: str) -> list[bytes]:
        c = Consumer({**sb.client_config("SASL_PLAINTEXT", "admin", "admin-pw"),
                      "group.id": f"sec-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                      "enable.partition.eof": True, "isolation.level": "read_committed"})
        try:
            c.assign([TopicPartition(topic, 0, 0)])
            out, deadline = [], time.monotonic() + 30
            while time.monotonic() < deadline:
                m = c.poll(1)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        return out
                    raise KafkaException(m.error())
                out.append(m.value())
            raise AssertionError(f"reading {topic} timed out")
        finally:
            c.close()

    ctx = ssl.create_default_context(cafile=str(sb.certs.ca))
    http = httpx.Client(base_url=f"https://{HOST}:{port}", verify=ctx, timeout=30)
    auth = ("ops", "ops-pw")

    def up() -> bool:
        try:
            return http.get("/", auth=auth).status_code == 200
        except httpx.HTTPError:
            return False
    wait_until(up, 60, what="the embedded worker over TLS")
    assert http.get("/connectors").status_code == 401
    assert http.get("/connectors", auth=("ops", "wrong")).status_code == 401
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{HOST}:{port}/", timeout=5)

    def state(name):
        r = http.get(f"/connectors/{name}/status", auth=auth)
        return r.json() if r.status_code == 200 else {}

    src = tmp_path / "in.txt"
    src.write_text("one\ntwo\n")
    for name, topic in [("sec-src", "sec-lines"), ("denied-src", "denied-lines")]:
        body = {"name": name, "config": {"connector.class": "FileStreamSource", "file": str(src),
                                         "topic": topic, "value.converter": STRING}}
        # 409 until the worker has joined its group (Kafka's answer too).
        wait_until(lambda: http.post("/connectors", auth=auth, json=body).status_code == 201, 60,
                   what=f"{name} created")
    wait_until(lambda: lines("sec-lines") == [b"one", b"two"],
               60, what="the lines written by the worker's principal")
    wait_until(lambda: [t.get("state") for t in state("denied-src").get("tasks", [])] == ["FAILED"],
               60, what="the task writing a topic its principal may not write failing")
    # Its trace names the denial as Kafka Connect's does: the producer's
    # send callback failed with the client's authorization exception.
    trace = state("denied-src")["tasks"][0]["trace"]
    assert "ConnectException: Unrecoverable exception from producer send callback" in trace, trace
    assert ("Caused by: org.apache.kafka.common.errors.TopicAuthorizationException: "
            "Not authorized to access topics: [denied-lines]") in trace, trace
    # A sink reading a topic its principal may not read fails the same way.
    body = {"name": "denied-sink", "config": {"connector.class": "FileStreamSink",
                                              "file": str(tmp_path / "out.txt"),
                                              "topics": "denied-lines", "value.converter": STRING}}
    assert http.post("/connectors", auth=auth, json=body).status_code == 201
    wait_until(lambda: [t.get("state") for t in state("denied-sink").get("tasks", [])] == ["FAILED"],
               60, what="the task reading a topic its principal may not read failing")
    trace = state("denied-sink")["tasks"][0]["trace"]
    assert "Caused by: org.apache.kafka.common.errors.TopicAuthorizationException: " in trace, trace
    # The broker refused the worker's principal, as it would any client.
    audit = [line for line in sb.broker.log_tail(2000).splitlines()
             if '"kind":"authorization"' in line and '"principal":"User:connect"' in line
             and '"resource":"topic:denied-lines"' in line]
    assert audit and all('"outcome":"denied"' in line for line in audit), audit
    assert lines("denied-lines") == []
    sb.broker.stop()

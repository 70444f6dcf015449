"""The REST proxy (Confluent REST Proxy's v2 and v3 APIs), embedded in a node
(`weir serve --rest-listen`) and standalone (`weir rest-proxy --bootstrap`), driven with plain HTTP clients (httpx, and raw sockets
for the streaming produce) from the examples in Confluent's documentation;
everything it writes is read back with confluent-kafka and everything
confluent-kafka writes is read through it, byte for byte.

One node with its embedded proxy serves most of the module; the
standalone proxy (a Kafka client of the same node) serves the expiry and
principal propagation tests. The node refuses topic auto-creation (so unknown topics are errors) and runs the ACL authorizer
with User:ANONYMOUS as super user (so the ACL API works while every
plaintext client may do anything)."""

from __future__ import annotations

import base64
import datetime
import json
import random
import socket
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   ConfigResource, ResourcePatternType, ResourceType)

from conftest import HOST, BrokerFactory, ClusterTarget, free_port, start_cluster, suite_target
from rest_helpers import V2, RestApi, RestProxy, error, v2_type
from weir_helpers import (admin, assert_same_records, consume_range, consumer_conf, create_topic,
                          gen_records, producer_conf, produce_records, recent_base_ts, wait_until)


@pytest.fixture(scope="module")
def node(weir_binary, _broker_root, request):
    """A node of the suite's target with its REST proxy; under the
    cluster target every broker has one and the tests use the first's."""
    f = BrokerFactory(weir_binary, _broker_root)
    settings = ("--set", "auto.create.topics.enable=false",
                "--set", "authorizer.class.name=StandardAuthorizer",
                "--set", "super.users=User:ANONYMOUS")
    try:
        if suite_target() == "cluster":
            yield ClusterTarget(start_cluster(
                f, request.getfixturevalue("postgres"), request.getfixturevalue("moto_server"),
                extra_args=settings,
                own_args=lambda port: ["--rest-listen", f"{HOST}:{free_port()}"]))
        else:
            yield f("--rest-listen", f"{HOST}:{free_port()}", *settings, name="rest-node")
    finally:
        f.cleanup()


@pytest.fixture(scope="module")
def kadmin(node):
    """confluent-kafka's admin client, to check what the proxy did."""
    return admin(node.bootstrap)


@pytest.fixture(scope="module")
def proxy(node):
    """The node's own REST proxy."""
    first = node.brokers[0] if isinstance(node, ClusterTarget) else node
    port = int(first.args[first.args.index("--rest-listen") + 1].rsplit(":", 1)[1])
    api = RestApi(port).wait_ready(lambda: node.running, node.log_tail)
    yield api
    api.http.close()


def b64(b: bytes | None):
    return None if b is None else base64.b64encode(b).decode()


def rfc3339(ms: int) -> str:
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --- v3: cluster, brokers, topics, configs ------------------------------------------


def test_v3_cluster_and_brokers(proxy, kadmin):
    r = proxy.http.get("/v3/clusters")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["kind"] == "KafkaClusterList" and len(body["data"]) == 1
    cluster = body["data"][0]
    described = kadmin.describe_cluster(request_timeout=10).result()
    assert cluster["cluster_id"] == described.cluster_id
    assert cluster["kind"] == "KafkaCluster"
    assert cluster["metadata"]["self"] == f"{proxy.url}/v3/clusters/{described.cluster_id}"
    assert cluster["metadata"]["resource_name"] == f"crn:///kafka={described.cluster_id}"
    # Related links lead to the resources they name.
    brokers = proxy.http.get(cluster["brokers"]["related"]).json()
    assert brokers["kind"] == "KafkaBrokerList"
    assert [(b["broker_id"], b["host"], b["port"]) for b in brokers["data"]] == \
        [(n.id, n.host, n.port) for n in described.nodes]
    broker = proxy.http.get(brokers["data"][0]["metadata"]["self"]).json()
    assert broker["kind"] == "KafkaBroker" and broker["broker_id"] == described.nodes[0].id
    assert proxy.http.get(cluster["controller"]["related"]).status_code == 200
    assert error(proxy.http.get("/v3/clusters/no-such-cluster")) == (404, 404)
    assert error(proxy.http.get(f"{proxy.v3}/brokers/77")) == (404, 404)
    assert error(proxy.http.get("/v3/nothing-here")) == (404, 404)
    assert error(proxy.http.delete("/v3/clusters")) == (405, 405)


def topic_config(kadmin, topic, name):
    res = ConfigResource("TOPIC", topic)
    cfg = kadmin.describe_configs([res])[res].result(10)
    return cfg[name].value


def settled(pred, what: str):
    """Until `pred` holds: the admin client may ask any broker, and in a
    cluster the others apply a change made through the proxy's broker a
    moment after it was answered. At once on one node."""
    return wait_until(pred, timeout=15, what=what)


def test_v3_topic_lifecycle(proxy, node, kadmin, topic_name):
    t = topic_name
    r = proxy.http.post(f"{proxy.v3}/topics", json={
        "topic_name": t, "partitions_count": 3, "replication_factor": 1,
        "configs": [{"name": "retention.ms", "value": "12345678"}]})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{proxy.url}{proxy.v3}/topics/{t}"
    body = r.json()
    assert (body["kind"], body["topic_name"], body["partitions_count"], body["replication_factor"],
            body["is_internal"]) == ("KafkaTopic", t, 3, 1, False)
    md = kadmin.list_topics(topic=t, timeout=10)
    assert len(md.topics[t].partitions) == 3
    assert topic_config(kadmin, t, "retention.ms") == "12345678"

    assert error(proxy.http.post(f"{proxy.v3}/topics", json={"topic_name": t})) == (400, 40002)
    dry = proxy.http.post(f"{proxy.v3}/topics", json={"topic_name": t + "-dry", "partitions_count": 2,
                                                       "validate_only": True})
    assert dry.status_code == 200 and dry.json()["partitions_count"] == 2
    assert t + "-dry" not in kadmin.list_topics(timeout=10).topics

    names = [d["topic_name"] for d in proxy.http.get(f"{proxy.v3}/topics").json()["data"]]
    assert t in names and t + "-dry" not in names
    parts = proxy.http.get(body["partitions"]["related"]).json()
    assert parts["kind"] == "KafkaPartitionList"
    assert [p["partition_id"] for p in parts["data"]] == [0, 1, 2]
    p1 = proxy.http.get(f"{proxy.v3}/topics/{t}/partitions/1").json()
    replica = proxy.http.get(p1["leader"]["related"]).json()
    assert (replica["kind"], replica["is_leader"], replica["is_in_sync"]) == ("KafkaReplica", True, True)
    assert error(proxy.http.get(f"{proxy.v3}/topics/{t}/partitions/9")) == (404, 404)
    assert proxy.http.get(f"{proxy.v3}/topics/{t}/partitions/-/reassignment").json()["data"] == []

    # Configs: one, list, update, reset, batch alter.
    c = proxy.http.get(f"{proxy.v3}/topics/{t}/configs/retention.ms").json()
    assert (c["kind"], c["value"], c["source"], c["is_default"]) == \
        ("KafkaTopicConfig", "12345678", "DYNAMIC_TOPIC_CONFIG", False)
    listed = {x["name"]: x for x in proxy.http.get(body["configs"]["related"]).json()["data"]}
    assert listed["retention.ms"]["value"] == "12345678" and "cleanup.policy" in listed
    assert proxy.http.put(f"{proxy.v3}/topics/{t}/configs/cleanup.policy",
                          json={"value": "compact"}).status_code == 204
    settled(lambda: topic_config(kadmin, t, "cleanup.policy") == "compact", "compact")
    assert proxy.http.delete(f"{proxy.v3}/topics/{t}/configs/cleanup.policy").status_code == 204
    settled(lambda: topic_config(kadmin, t, "cleanup.policy") == "delete", "delete")
    r = proxy.http.post(f"{proxy.v3}/topics/{t}/configs:alter", json={"data": [
        {"name": "retention.ms", "operation": "DELETE"},
        {"name": "max.message.bytes", "value": "65536"}]})
    assert r.status_code == 204, r.text
    settled(lambda: topic_config(kadmin, t, "max.message.bytes") == "65536"
            and topic_config(kadmin, t, "retention.ms") != "12345678", "the batch alter")
    r = proxy.http.post(f"{proxy.v3}/topics/{t}/configs:alter", json={
        "data": [{"name": "max.message.bytes", "value": "1000"}], "validate_only": True})
    assert r.status_code == 204 and topic_config(kadmin, t, "max.message.bytes") == "65536"
    assert error(proxy.http.put(f"{proxy.v3}/topics/{t}/configs/no.such.config",
                                json={"value": "1"}))[0] == 400
    every = proxy.http.get(f"{proxy.v3}/topics/-/configs").json()["data"]
    assert any(x["topic_name"] == t and x["name"] == "max.message.bytes" for x in every)

    # More partitions, then delete.
    r = proxy.http.patch(f"{proxy.v3}/topics/{t}", json={"partitions_count": 5})
    assert r.status_code == 200 and r.json()["partitions_count"] == 5
    assert len(kadmin.list_topics(topic=t, timeout=10).topics[t].partitions) == 5
    assert error(proxy.http.patch(f"{proxy.v3}/topics/{t}", json={"partitions_count": 2})) == (400, 40002)
    assert proxy.http.delete(f"{proxy.v3}/topics/{t}").status_code == 204
    assert error(proxy.http.get(f"{proxy.v3}/topics/{t}")) == (404, 40403)
    assert error(proxy.http.delete(f"{proxy.v3}/topics/{t}")) == (404, 40403)
    assert error(proxy.http.post(f"{proxy.v3}/topics", content=b"{not json")) == (400, 400)


def test_v3_broker_and_cluster_configs(proxy, node, kadmin):
    broker = proxy.http.get(f"{proxy.v3}/brokers").json()["data"][0]["broker_id"]
    configs = proxy.http.get(f"{proxy.v3}/brokers/{broker}/configs").json()
    assert configs["kind"] == "KafkaBrokerConfigList"
    by_name = {c["name"]: c for c in configs["data"]}
    assert by_name["auto.create.topics.enable"]["value"] == "false"
    one = proxy.http.get(f"{proxy.v3}/brokers/{broker}/configs/num.partitions").json()
    assert (one["kind"], one["broker_id"]) == ("KafkaBrokerConfig", broker)
    every = proxy.http.get(f"{proxy.v3}/brokers/-/configs").json()["data"]
    all_brokers = {b["broker_id"] for b in proxy.http.get(f"{proxy.v3}/brokers").json()["data"]}
    assert {c["broker_id"] for c in every} == all_brokers

    # A cluster-wide dynamic default, as kafka-configs.sh --entity-default sets it.
    r = proxy.http.put(f"{proxy.v3}/broker-configs/log.retention.ms", json={"value": "7200000"})
    assert r.status_code == 204, r.text
    cluster = proxy.http.get(f"{proxy.v3}/broker-configs").json()
    assert cluster["kind"] == "KafkaClusterConfigList"
    got = {c["name"]: c for c in cluster["data"]}["log.retention.ms"]
    assert (got["value"], got["source"], got["config_type"]) == \
        ("7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG", "BROKER")
    res = ConfigResource("BROKER", str(broker))
    seen = kadmin.describe_configs([res])[res].result(10)["log.retention.ms"]
    assert seen.value == "7200000"
    assert proxy.http.delete(f"{proxy.v3}/broker-configs/log.retention.ms").status_code == 204
    assert "log.retention.ms" not in {c["name"] for c in proxy.http.get(f"{proxy.v3}/broker-configs").json()["data"]}
    assert error(proxy.http.get(f"{proxy.v3}/broker-configs/log.retention.ms")) == (404, 404)


# --- v3: producing records ------------------------------------------------------------


def v3_record(rec) -> dict:
    out = {"partition_id": rec.partition, "timestamp": rfc3339(rec.timestamp)}
    if rec.key is not None:
        out["key"] = {"type": "BINARY", "data": b64(rec.key)}
    if rec.value is not None:
        out["value"] = {"type": "BINARY", "data": b64(rec.value)}
    if rec.headers:
        out["headers"] = [{"name": k, "value": b64(v)} for k, v in rec.headers]
    return out


def test_v3_records_read_byte_for_byte_by_confluent_kafka(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=3)
    recs = gen_records(seed=15, n=300, partitions=3, base_ts=recent_base_ts())
    # One connection, one JSON object per record.
    body = "".join(json.dumps(v3_record(r)) for r in recs)
    r = proxy.http.post(f"{proxy.v3}/topics/{topic_name}/records", content=body,
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    reports = [json.loads(line) for line in r.text.split("\r\n") if line]
    assert len(reports) == len(recs)
    next_offset = [0, 0, 0]
    for rec, rep in zip(recs, reports):
        assert rep["error_code"] == 200, rep
        assert (rep["topic_name"], rep["partition_id"], rep["offset"]) == \
            (topic_name, rec.partition, next_offset[rec.partition])
        assert rep["timestamp"].startswith(rfc3339(rec.timestamp)[:19])
        if rec.value is not None:
            assert rep["value"] == {"type": "BINARY", "size": len(rec.value)}
        next_offset[rec.partition] += 1
    got = consume_range(node.bootstrap, topic_name, range(3))
    for p in range(3):
        assert_same_records([x for x in recs if x.partition == p], got[p], p)


def read_chunked_line(f) -> bytes:
    """The next `\\r\\n`-terminated record of a chunked response body."""
    out = b""
    while not out.endswith(b"\r\n"):
        size = int(f.readline().strip(), 16)
        assert size > 0, "response ended early"
        out += f.read(size)
        assert f.readline() == b"\r\n"
    return out


def test_v3_streaming_produce_is_full_duplex(proxy, node, kadmin, topic_name):
    """As Confluent's streaming example: records are written on one chunked
    request and each delivery report is read before the next record is sent."""
    create_topic(kadmin, topic_name, partitions=1)
    s = socket.create_connection((HOST, proxy.port), timeout=30)
    try:
        s.sendall((f"POST {proxy.v3}/topics/{topic_name}/records HTTP/1.1\r\n"
                   f"Host: {HOST}:{proxy.port}\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n").encode())
        f = s.makefile("rb")

        def chunk(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        for i in range(5):
            rec = json.dumps({"key": {"type": "STRING", "data": f"key_{i}"},
                              "value": {"type": "STRING", "data": f"value_{i}"}}).encode()
            s.sendall(chunk(rec))
            if i == 0:
                assert f.readline().startswith(b"HTTP/1.1 200")
                while f.readline() != b"\r\n":
                    pass
            receipt = json.loads(read_chunked_line(f))
            assert (receipt["error_code"], receipt["offset"]) == (200, i), receipt
            assert receipt["key"] == {"type": "STRING", "size": len(f"key_{i}")}
        s.sendall(b"0\r\n\r\n")
        assert f.readline().strip() == b"0"
    finally:
        s.close()
    got = consume_range(node.bootstrap, topic_name, [0])[0]
    assert [(g.key, g.value) for g in got] == [(f"key_{i}".encode(), f"value_{i}".encode()) for i in range(5)]


def test_v3_produce_errors(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=1)
    url = f"{proxy.v3}/topics/{topic_name}/records"
    ok = {"value": {"type": "JSON", "data": {"n": 1}}}
    # Unknown topic (the node does not auto-create): 404 before any record.
    assert error(proxy.http.post(f"{proxy.v3}/topics/{topic_name}-nope/records", json=ok)) == (404, 40403)
    assert error(proxy.http.post(url, content=b"x", headers={"Content-Type": "text/plain"})) == (415, 415)
    assert error(proxy.http.post(f"/v3/clusters/other/topics/{topic_name}/records", json=ok)) == (404, 404)

    def reports(body: bytes):
        r = proxy.http.post(url, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200
        return [json.loads(x) for x in r.text.split("\r\n") if x]

    # Per record: a good one, an unknown partition, a bad base64, a good one.
    got = reports(b"".join(json.dumps(x).encode() for x in [
        ok, {"partition_id": 4, **ok}, {"value": {"type": "BINARY", "data": "%%"}}, ok]))
    assert [g["error_code"] for g in got] == [200, 40402, 400, 200]
    assert got[3]["offset"] == got[0]["offset"] + 1
    # Malformed JSON ends the stream with an error after what came before.
    got = reports(json.dumps(ok).encode() + b"{oops")
    assert [g["error_code"] for g in got] == [200, 400]
    assert [g["error_code"] for g in reports(b"")] == [422]
    got = reports(json.dumps({"value": {"type": "AVRO", "schema": '{"type": "nope"}', "data": "x"}}).encode())
    assert got[0]["error_code"] == 42205


def test_v3_records_batch(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=2)
    url = f"{proxy.v3}/topics/{topic_name}/records:batch"
    r = proxy.http.post(url, json={"entries": [
        {"id": "1", "value": {"type": "STRING", "data": "My first message"}},
        {"id": "2", "partition_id": 1, "value": {"type": "STRING", "data": "My second message"}},
        {"id": "3", "partition_id": 9, "value": {"type": "STRING", "data": "nowhere"}}]})
    assert r.status_code == 207, r.text
    body = r.json()
    assert [s["id"] for s in body["successes"]] == ["1", "2"]
    assert body["successes"][1]["partition_id"] == 1
    assert [(f["id"], f["error_code"]) for f in body["failures"]] == [("3", 40402)]
    got = consume_range(node.bootstrap, topic_name, [0, 1])
    assert sorted(g.value for p in got for g in got[p]) == [b"My first message", b"My second message"]
    assert b"My second message" in [g.value for g in got[1]]
    dup = {"entries": [{"id": "a", "value": {"type": "STRING", "data": "x"}}] * 2}
    assert error(proxy.http.post(url, json=dup)) == (422, 42208)
    many = {"entries": [{"id": str(i), "value": {"type": "STRING", "data": "x"}} for i in range(11)]}
    assert error(proxy.http.post(url, json=many)) == (422, 42208)
    assert error(proxy.http.post(url, json={"entries": []})) == (422, 42208)


# --- v3: consumer groups and lag -------------------------------------------------------


def test_v3_consumer_groups_and_lag(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=2)
    p = Producer(producer_conf(node.bootstrap))
    for i in range(10):
        p.produce(topic_name, value=b"v", partition=0)
    for i in range(5):
        p.produce(topic_name, value=b"v", partition=1)
    assert p.flush(30) == 0
    group = f"{topic_name}-g"
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": group, "client.id": "lag-client",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "broker.address.family": "v4"})
    try:
        c.subscribe([topic_name])
        wait_until(lambda: (c.poll(0.2), len(c.assignment()) == 2)[1], timeout=30, what="assignment")
        c.commit(offsets=[TopicPartition(topic_name, 0, 4), TopicPartition(topic_name, 1, 1)],
                 asynchronous=False)
        base = f"{proxy.v3}/consumer-groups"
        groups = {g["consumer_group_id"]: g for g in proxy.http.get(base).json()["data"]}
        g = groups[group]
        assert (g["kind"], g["state"], g["type"], g["is_simple"]) == \
            ("KafkaConsumerGroup", "STABLE", "CLASSIC", False)
        assert g["partition_assignor"] in ("range", "roundrobin")
        consumers = proxy.http.get(g["consumers"]["related"]).json()["data"]
        assert len(consumers) == 1 and consumers[0]["client_id"] == "lag-client"
        member = consumers[0]["consumer_id"]
        assignments = proxy.http.get(consumers[0]["assignments"]["related"]).json()["data"]
        assert sorted((a["topic_name"], a["partition_id"]) for a in assignments) == \
            [(topic_name, 0), (topic_name, 1)]
        lags = {l["partition_id"]: l for l in proxy.http.get(f"{base}/{group}/lags").json()["data"]}
        assert {p: (l["current_offset"], l["log_end_offset"], l["lag"], l["consumer_id"])
                for p, l in lags.items()} == {0: (4, 10, 6, member), 1: (1, 5, 4, member)}
        one = proxy.http.get(f"{base}/{group}/lags/{topic_name}/partitions/0").json()
        assert (one["kind"], one["lag"]) == ("KafkaConsumerLag", 6)
        summary = proxy.http.get(g["lag_summary"]["related"]).json()
        assert (summary["max_lag"], summary["total_lag"], summary["max_lag_partition_id"],
                summary["max_lag_topic_name"], summary["max_lag_consumer_id"],
                summary["max_lag_client_id"]) == (6, 10, 0, topic_name, member, "lag-client")
        assert error(proxy.http.get(f"{base}/{group}-none")) == (404, 404)
        assert error(proxy.http.get(f"{base}/{group}/consumers/nobody")) == (404, 404)
    finally:
        c.close()


# --- v3: ACLs -------------------------------------------------------------------------


def test_v3_acls(proxy, node, kadmin):
    url = f"{proxy.v3}/acls"
    acl = {"resource_type": "TOPIC", "resource_name": "rest-acl-", "pattern_type": "PREFIXED",
           "principal": "User:alice", "host": "*", "operation": "READ", "permission": "ALLOW"}
    assert proxy.http.post(url, json=acl).status_code == 201
    batch = {"data": [dict(acl, operation="WRITE"),
                      dict(acl, resource_type="GROUP", resource_name="rest-acl-group",
                           pattern_type="LITERAL", permission="DENY")]}
    assert proxy.http.post(f"{url}:batch", json=batch).status_code == 201
    found = proxy.http.get(url, params={"principal": "User:alice"}).json()
    assert found["kind"] == "KafkaAclList"
    got = sorted((a["resource_type"], a["operation"], a["permission"]) for a in found["data"])
    assert got == [("GROUP", "READ", "DENY"), ("TOPIC", "READ", "ALLOW"), ("TOPIC", "WRITE", "ALLOW")]
    assert all(a["kind"] == "KafkaAcl" and "principal=User%3Aalice" in a["metadata"]["self"]
               for a in found["data"])
    # confluent-kafka's admin client sees the same ACLs.
    f = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                         AclOperation.ANY, AclPermissionType.ANY)
    settled(lambda: len(kadmin.describe_acls(f).result()) == 3, "3 ACLs")
    only_topics = proxy.http.get(url, params={"principal": "User:alice", "resource_type": "TOPIC"}).json()
    assert len(only_topics["data"]) == 2

    assert error(proxy.http.delete(url, params={"resource_type": "TOPIC"})) == (400, 400)
    r = proxy.http.delete(url, params={"resource_type": "TOPIC", "resource_name": "rest-acl-",
                                       "pattern_type": "PREFIXED", "principal": "User:alice",
                                       "operation": "ANY", "permission": "ALLOW"})
    assert r.status_code == 200, r.text
    assert sorted(a["operation"] for a in r.json()["data"]) == ["READ", "WRITE"]
    settled(lambda: len(kadmin.describe_acls(f).result()) == 1, "1 ACL")
    bad = dict(acl, resource_type="CLUSTER", resource_name="other")
    assert error(proxy.http.post(url, json=bad)) == (400, 40002)
    assert error(proxy.http.post(url, json=dict(acl, operation="FLY"))) == (400, 400)


# --- v2: metadata and produce -----------------------------------------------------------


def test_v2_topics_partitions_and_brokers(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=2, config={"retention.ms": "3600000"})
    p = Producer(producer_conf(node.bootstrap))
    for _ in range(3):
        p.produce(topic_name, value=b"x", partition=1)
    assert p.flush(30) == 0
    assert topic_name in proxy.http.get("/topics").json()
    t = proxy.http.get(f"/topics/{topic_name}")
    assert t.status_code == 200 and t.headers["content-type"] == V2
    body = t.json()
    assert body["name"] == topic_name and body["configs"]["retention.ms"] == "3600000"
    assert [x["partition"] for x in body["partitions"]] == [0, 1]
    assert body["partitions"][0]["replicas"][0]["leader"] is True
    assert len(proxy.http.get(f"/topics/{topic_name}/partitions").json()) == 2
    assert proxy.http.get(f"/topics/{topic_name}/partitions/1").json()["partition"] == 1
    assert proxy.http.get(f"/topics/{topic_name}/partitions/1/offsets").json() == \
        {"beginning_offset": 0, "end_offset": 3}
    ids = sorted(kadmin.list_topics(timeout=10).brokers)
    assert proxy.http.get("/brokers").json() == {"brokers": ids}
    assert error(proxy.http.get(f"/topics/{topic_name}-nope")) == (404, 40401)
    assert error(proxy.http.get(f"/topics/{topic_name}/partitions/7")) == (404, 40402)


def test_v2_produce_binary_and_json(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=2)
    keys = [bytes(random.Random(i).randrange(256) for _ in range(16)) for i in range(4)]
    r = proxy.http.post(f"/topics/{topic_name}", headers={"Content-Type": v2_type("binary")}, json={
        "records": [{"key": b64(k), "value": b64(k[::-1]), "partition": i % 2}
                    for i, k in enumerate(keys)]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["key_schema_id"] is None
    assert [(o["partition"], o["offset"], o["error_code"]) for o in body["offsets"]] == \
        [(0, 0, None), (1, 0, None), (0, 1, None), (1, 1, None)]
    r = proxy.http.post(f"/topics/{topic_name}/partitions/1", headers={"Content-Type": v2_type("json")},
                        json={"records": [{"value": {"id": 7, "tags": ["a", "b"]}}, {"key": "k", "value": None}]})
    assert r.status_code == 200 and [o["offset"] for o in r.json()["offsets"]] == [2, 3]
    got = consume_range(node.bootstrap, topic_name, [0, 1])
    assert [(g.key, g.value) for g in got[0]] == [(keys[0], keys[0][::-1]), (keys[2], keys[2][::-1])]
    assert [(g.key, g.value) for g in got[1][:2]] == [(keys[1], keys[1][::-1]), (keys[3], keys[3][::-1])]
    assert json.loads(got[1][2].value) == {"id": 7, "tags": ["a", "b"]} and got[1][2].key is None
    assert (json.loads(got[1][3].key), got[1][3].value) == ("k", None)

    rec = {"records": [{"value": b64(b"x")}]}
    assert error(proxy.http.post(f"/topics/{topic_name}", json=rec)) == (415, 415)
    assert error(proxy.http.post(f"/topics/{topic_name}", headers={"Content-Type": V2}, json=rec)) == (415, 415)
    binary = {"Content-Type": v2_type("binary")}
    assert error(proxy.http.post(f"/topics/{topic_name}-nope", headers=binary, json=rec)) == (404, 40401)
    assert error(proxy.http.post(f"/topics/{topic_name}/partitions/5", headers=binary, json=rec)) == (404, 40402)
    assert error(proxy.http.post(f"/topics/{topic_name}", headers=binary,
                                 json={"records": [{"value": "not base64!"}]})) == (422, 42203)


# --- v2: consumer instances ------------------------------------------------------------


def read_until(proxy, base, fmt, n, timeout=30.0):
    """Reads records from a consumer instance until `n` have arrived."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        assert time.monotonic() < deadline, f"only {len(out)} of {n} records after {timeout}s"
        r = proxy.http.get(f"{base}/records", headers={"Accept": v2_type(fmt)},
                           params={"timeout": 500})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == v2_type(fmt)
        out.extend(r.json())
    return out


def test_v2_consumer_instance_lifecycle(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=2)
    recs = gen_records(seed=7, n=40, partitions=2, base_ts=recent_base_ts())
    produce_records(Producer(producer_conf(node.bootstrap)), topic_name, recs)
    group = f"{topic_name}-g"
    v2 = {"Content-Type": V2}
    r = proxy.http.post(f"/consumers/{group}", headers=v2, json={
        "name": "c1", "format": "binary", "auto.offset.reset": "earliest", "auto.commit.enable": "false"})
    assert r.status_code == 200, r.text
    assert r.json() == {"instance_id": "c1", "base_uri": f"{proxy.url}/consumers/{group}/instances/c1"}
    base = f"/consumers/{group}/instances/c1"
    assert error(proxy.http.post(f"/consumers/{group}", headers=v2, json={"name": "c1"})) == (409, 40902)
    assert error(proxy.http.post(f"/consumers/{group}", headers=v2,
                                 json={"name": "c2", "auto.offset.reset": "sideways"})) == (422, 42204)

    assert proxy.http.post(f"{base}/subscription", headers=v2, json={"topics": [topic_name]}).status_code == 204
    assert proxy.http.get(f"{base}/subscription").json() == {"topics": [topic_name]}
    assert error(proxy.http.post(f"{base}/assignments", headers=v2,
                                 json={"partitions": [{"topic": topic_name, "partition": 0}]})) == (409, 40903)
    assert error(proxy.http.get(f"{base}/records", headers={"Accept": v2_type("json")})) == (406, 40601)

    got = read_until(proxy, base, "binary", len(recs))
    assert len(got) == len(recs)
    for p in range(2):
        mine = [g for g in got if g["partition"] == p]
        want = [x for x in recs if x.partition == p]
        assert [g["offset"] for g in mine] == list(range(len(want)))
        assert [(g["key"], g["value"]) for g in mine] == [(b64(w.key), b64(w.value)) for w in want]
        assert all(g["topic"] == topic_name for g in mine)

    # Commit what was read, then an explicit offset (the last consumed one).
    r = proxy.http.post(f"{base}/offsets", headers=v2)
    assert r.status_code == 200 and r.json() == []
    parts = {"partitions": [{"topic": topic_name, "partition": 0}, {"topic": topic_name, "partition": 1}]}
    committed = proxy.http.request("GET", f"{base}/offsets", headers=v2, json=parts).json()["offsets"]
    ends = {p: len([x for x in recs if x.partition == p]) for p in range(2)}
    assert {c["partition"]: c["offset"] for c in committed} == ends
    assert proxy.http.post(f"{base}/offsets", headers=v2, json={"offsets": [
        {"topic": topic_name, "partition": 0, "offset": 4}]}).status_code == 200
    check = Consumer(consumer_conf(node.bootstrap, **{"group.id": group}))
    try:
        seen = check.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in seen] == [(0, 5), (1, ends[1])]
    finally:
        check.close()

    # Seek back and read again.
    assert proxy.http.post(f"{base}/positions", headers=v2, json={"offsets": [
        {"topic": topic_name, "partition": 0, "offset": ends[0] - 2}]}).status_code == 204
    again = read_until(proxy, base, "binary", 2)
    assert [(g["partition"], g["offset"]) for g in again] == [(0, ends[0] - 2), (0, ends[0] - 1)]
    assert proxy.http.post(f"{base}/positions/beginning", headers=v2, json={"partitions": [
        {"topic": topic_name, "partition": 1}]}).status_code == 204
    assert len(read_until(proxy, base, "binary", ends[1])) == ends[1]
    assert error(proxy.http.post(f"{base}/positions", headers=v2, json={"offsets": [
        {"topic": "not-assigned", "partition": 0, "offset": 0}]})) == (409, 40903)

    assert proxy.http.delete(f"{base}/subscription").status_code == 204
    assert proxy.http.delete(base).status_code == 204
    assert error(proxy.http.delete(base)) == (404, 40403)
    assert error(proxy.http.get(f"{base}/records")) == (404, 40403)


def test_v2_json_consumer_with_assignment_reads_confluent_kafka_records(proxy, node, kadmin, topic_name):
    create_topic(kadmin, topic_name, partitions=1)
    docs = [{"n": i, "name": f"item-{i}", "nested": {"ok": i % 2 == 0}} for i in range(25)]
    p = Producer(producer_conf(node.bootstrap))
    for i, d in enumerate(docs):
        p.produce(topic_name, key=json.dumps(i).encode(), value=json.dumps(d).encode(), partition=0)
    assert p.flush(30) == 0
    v2 = {"Content-Type": V2}
    group = f"{topic_name}-g"
    inst = proxy.http.post(f"/consumers/{group}", headers=v2, json={"format": "json"}).json()
    assert inst["instance_id"].startswith("rest-consumer-")
    base = f"/consumers/{group}/instances/{inst['instance_id']}"
    assert proxy.http.post(f"{base}/assignments", headers=v2, json={
        "partitions": [{"topic": topic_name, "partition": 0}]}).status_code == 204
    assert proxy.http.get(f"{base}/assignments").json() == {"partitions": [{"topic": topic_name, "partition": 0}]}
    assert proxy.http.post(f"{base}/positions/beginning", headers=v2, json={
        "partitions": [{"topic": topic_name, "partition": 0}]}).status_code == 204
    got = read_until(proxy, base, "json", len(docs))
    assert [(g["key"], g["value"]) for g in got] == list(enumerate(docs))
    # max_bytes splits a read without losing the record that did not fit.
    assert proxy.http.post(f"{base}/positions/beginning", headers=v2, json={
        "partitions": [{"topic": topic_name, "partition": 0}]}).status_code == 204
    first = []
    deadline = time.monotonic() + 30
    while not first:
        assert time.monotonic() < deadline
        first = proxy.http.get(f"{base}/records", headers={"Accept": v2_type("json")},
                               params={"max_bytes": 100}).json()
    assert 0 < len(first) < 5
    rest = read_until(proxy, base, "json", len(docs) - len(first))
    assert [g["offset"] for g in first + rest] == list(range(len(docs)))
    assert proxy.http.delete(base).status_code == 204


def test_v2_consumer_instances_expire(weir_binary, node, tmp_path):
    short = RestProxy(weir_binary, tmp_path, node.bootstrap,
                      settings={"consumer.instance.timeout.ms": "1500"})
    try:
        v2 = {"Content-Type": V2}
        assert short.http.post("/consumers/expiring", headers=v2, json={"name": "c"}).status_code == 200
        assert short.http.get("/consumers/expiring/instances/c/subscription").status_code == 200
        # Any request keeps an instance alive, so wait on the proxy's log.
        wait_until(lambda: "consumer instance expired" in short.log(), timeout=20, interval=0.2,
                   what="the idle instance to expire")
        assert error(short.http.get("/consumers/expiring/instances/c/records")) == (404, 40403)
    finally:
        assert short.stop() == 0, short.log()


# --- embedded formats ---------------------------------------------------------------------

USER = {"type": "record", "name": "User", "namespace": "weir.test", "fields": [
    {"name": "name", "type": "string"},
    {"name": "age", "type": "int"},
    {"name": "email", "type": ["null", "string"], "default": None}]}


def test_avro_through_the_proxy_and_confluent_kafka(proxy, node, kadmin, topic_name):
    """Avro records written over HTTP (v2 with inline schemas and ids, v3
    with a schema, an id, a version and the latest) are read by
    confluent-kafka's AvroDeserializer, and records its AvroSerializer
    wrote are read by a v2 avro consumer, all through the node's registry."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    create_topic(kadmin, topic_name, partitions=1)
    avro = {"Content-Type": v2_type("avro")}
    r = proxy.http.post(f"/topics/{topic_name}", headers=avro, json={
        "key_schema": '"string"', "value_schema": json.dumps(USER),
        "records": [{"key": "u1", "value": {"name": "ann", "age": 31, "email": {"string": "a@x"}}},
                    {"key": "u2", "value": {"name": "bob", "age": 40, "email": None}}]})
    assert r.status_code == 200, r.text
    ids = r.json()
    assert isinstance(ids["key_schema_id"], int) and isinstance(ids["value_schema_id"], int)
    r = proxy.http.post(f"/topics/{topic_name}", headers=avro, json={
        "value_schema_id": ids["value_schema_id"],
        "records": [{"value": {"name": "cy", "age": 5, "email": None}}]})
    assert r.status_code == 200, r.text
    url = f"{proxy.v3}/topics/{topic_name}/records"
    sent = [{"value": {"type": "AVRO", "schema": json.dumps(USER), "data": {"name": "di", "age": 1, "email": None}}},
            {"value": {"schema_id": ids["value_schema_id"], "data": {"name": "ed", "age": 2, "email": None}}},
            {"value": {"schema_version": 1, "data": {"name": "fa", "age": 3, "email": None}}},
            {"value": {"data": {"name": "gu", "age": 4, "email": {"string": "g@x"}}}}]
    r = proxy.http.post(url, content="".join(json.dumps(x) for x in sent),
                        headers={"Content-Type": "application/json"})
    reports = [json.loads(x) for x in r.text.split("\r\n") if x]
    assert [x["error_code"] for x in reports] == [200] * 4, reports
    assert {(x["value"]["type"], x["value"]["subject"], x["value"]["schema_id"], x["value"]["schema_version"])
            for x in reports} == {("AVRO", f"{topic_name}-value", ids["value_schema_id"], 1)}

    sr = SchemaRegistryClient({"url": node.registry_url})
    deser = AvroDeserializer(sr)
    got = consume_range(node.bootstrap, topic_name, [0])[0]
    values = [deser(g.value, SerializationContext(topic_name, MessageField.VALUE)) for g in got]
    assert [(v["name"], v["age"], v["email"]) for v in values] == [
        ("ann", 31, "a@x"), ("bob", 40, None), ("cy", 5, None), ("di", 1, None),
        ("ed", 2, None), ("fa", 3, None), ("gu", 4, "g@x")]
    assert AvroDeserializer(sr)(got[0].key, SerializationContext(topic_name, MessageField.KEY)) == "u1"

    # confluent-kafka writes, the proxy reads.
    ser = AvroSerializer(sr, json.dumps(USER))
    p = Producer(producer_conf(node.bootstrap))
    p.produce(topic_name, partition=0, value=ser({"name": "hu", "age": 9, "email": "h@x"},
                                                 SerializationContext(topic_name, MessageField.VALUE)))
    assert p.flush(30) == 0
    v2 = {"Content-Type": V2}
    base = f"/consumers/{topic_name}-g/instances/a"
    assert proxy.http.post(f"/consumers/{topic_name}-g", headers=v2,
                           json={"name": "a", "format": "avro"}).status_code == 200
    assert proxy.http.post(f"{base}/assignments", headers=v2,
                           json={"partitions": [{"topic": topic_name, "partition": 0}]}).status_code == 204
    assert proxy.http.post(f"{base}/positions", headers=v2, json={"offsets": [
        {"topic": topic_name, "partition": 0, "offset": len(got)}]}).status_code == 204
    read = read_until(proxy, base, "avro", 1)
    assert read[0]["value"] == {"name": "hu", "age": 9, "email": {"string": "h@x"}}
    assert proxy.http.delete(base).status_code == 204

    # Errors: no schema for values, a bad schema, a value the schema refuses.
    assert error(proxy.http.post(f"/topics/{topic_name}", headers=avro,
                                 json={"records": [{"value": {"name": "x"}}]})) == (422, 42202)
    assert error(proxy.http.post(f"/topics/{topic_name}", headers=avro, json={
        "value_schema": '{"type": "record"}', "records": [{"value": {}}]})) == (422, 42205)
    assert error(proxy.http.post(f"/topics/{topic_name}", headers=avro, json={
        "value_schema": json.dumps(USER), "records": [{"value": {"name": 7}}]})) == (422, 42203)


READING_PROTO = """syntax = "proto3";
package weir.rest;

message Reading {
  string sensor = 1;
  int32 count = 2;
  double value = 3;
}
"""
READING_JSON = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Reading",
                           "type": "object", "properties": {"sensor": {"type": "string"},
                                                            "count": {"type": "integer"},
                                                            "value": {"type": "number"}},
                           "required": ["sensor", "value"]})


def _reading_class():
    """READING_PROTO's message built through protobuf's compiler-free API."""
    import uuid
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"weir_rest_{uuid.uuid4().hex[:6]}.proto",
                                             package="weir.rest", syntax="proto3")
    m = fdp.message_type.add(name="Reading")
    m.field.add(name="sensor", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="count", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="value", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("weir.rest.Reading"))


@pytest.mark.parametrize("fmt", ["jsonschema", "protobuf"])
def test_jsonschema_and_protobuf_through_the_proxy_and_confluent_kafka(proxy, node, kadmin, topic_name, fmt):
    """JSON Schema and Protobuf records written over HTTP (v2 with an inline
    schema and by id, v3 by id) are read by confluent-kafka's deserializers,
    and records its serializers wrote are read by a v2 consumer of that
    format; values the schema refuses and bad schemas get Confluent's codes."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.serialization import MessageField, SerializationContext
    create_topic(kadmin, topic_name, partitions=1)
    sr = SchemaRegistryClient({"url": node.registry_url})
    ctx = SerializationContext(topic_name, MessageField.VALUE)
    if fmt == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
        Reading = _reading_class()
        conf = {"use.deprecated.format": False}
        schema, schema_type, v3_type = READING_PROTO, "PROTOBUF", "PROTOBUF"
        deser = ProtobufDeserializer(Reading, conf, schema_registry_client=sr)

        def decode(b):
            m = deser(b, ctx)
            return {"sensor": m.sensor, "count": m.count, "value": m.value}
        encode = lambda v, ser=ProtobufSerializer(Reading, sr, conf): ser(Reading(**v), ctx)
    else:
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
        schema, schema_type, v3_type = READING_JSON, "JSON", "JSONSCHEMA"
        deser = JSONDeserializer(READING_JSON, schema_registry_client=sr)
        decode = lambda b: deser(b, ctx)
        encode = lambda v, ser=JSONSerializer(READING_JSON, sr): ser(v, ctx)
    headers = {"Content-Type": v2_type(fmt)}
    sent = [{"sensor": f"s{i}", "count": i + 1, "value": i + 0.5} for i in range(4)]
    r = proxy.http.post(f"/topics/{topic_name}", headers=headers, json={
        "value_schema": schema, "records": [{"value": v} for v in sent[:2]]})
    assert r.status_code == 200, r.text
    value_id = r.json()["value_schema_id"]
    assert isinstance(value_id, int) and all(o["error_code"] is None for o in r.json()["offsets"])
    assert sr.get_latest_version(f"{topic_name}-value").schema.schema_type == schema_type
    r = proxy.http.post(f"/topics/{topic_name}", headers=headers, json={
        "value_schema_id": value_id, "records": [{"value": sent[2]}]})
    assert r.status_code == 200, r.text
    r = proxy.http.post(f"{proxy.v3}/topics/{topic_name}/records", json={
        "value": {"type": v3_type, "schema_id": value_id, "data": sent[3]}})
    assert r.status_code == 200 and r.json()["error_code"] == 200, r.text
    assert (r.json()["value"]["type"], r.json()["value"]["schema_id"]) == (v3_type, value_id)
    got = consume_range(node.bootstrap, topic_name, [0])[0]
    assert [decode(g.value) for g in got] == sent

    # confluent-kafka writes, a v2 consumer of the format reads.
    p = Producer(producer_conf(node.bootstrap))
    mine = {"sensor": "py", "count": 7, "value": 2.25}
    p.produce(topic_name, partition=0, value=encode(mine))
    assert p.flush(30) == 0
    v2 = {"Content-Type": V2}
    base = f"/consumers/{topic_name}-g/instances/a"
    assert proxy.http.post(f"/consumers/{topic_name}-g", headers=v2,
                           json={"name": "a", "format": fmt}).status_code == 200
    assert proxy.http.post(f"{base}/assignments", headers=v2,
                           json={"partitions": [{"topic": topic_name, "partition": 0}]}).status_code == 204
    assert proxy.http.post(f"{base}/positions", headers=v2, json={"offsets": [
        {"topic": topic_name, "partition": 0, "offset": len(got)}]}).status_code == 204
    assert read_until(proxy, base, fmt, 1)[0]["value"] == mine
    assert proxy.http.delete(base).status_code == 204

    # Errors: no schema for values, a bad schema, a value the schema refuses.
    assert error(proxy.http.post(f"/topics/{topic_name}", headers=headers,
                                 json={"records": [{"value": mine}]})) == (422, 42202)
    bad_schema = "message {" if fmt == "protobuf" else '{"type": 7}'
    assert error(proxy.http.post(f"/topics/{topic_name}", headers=headers, json={
        "value_schema": bad_schema, "records": [{"value": mine}]})) == (422, 42205)
    refused = {"sensor": "x", "value": "not a number"}
    assert error(proxy.http.post(f"/topics/{topic_name}", headers=headers, json={
        "value_schema_id": value_id, "records": [{"value": refused}]})) == (422, 42203)


# --- load -------------------------------------------------------------------------------


def test_load_1000_produce_requests_per_second_for_30s(proxy, node, kadmin, topic_name):
    """1,000 produce requests a second for 30 s from concurrent clients, each
    paced to its share of the schedule; every one must succeed and every
    record must be in the topic afterwards."""
    create_topic(kadmin, topic_name, partitions=4)
    rate, seconds, workers = 1000, 30, 64
    total = rate * seconds
    failures, done = [], [0] * workers
    url = f"{proxy.v3}/topics/{topic_name}/records"
    start = time.monotonic() + 0.5

    def work(w):
        import http.client
        conn = http.client.HTTPConnection(HOST, proxy.port, timeout=30)
        for i in range(w, total, workers):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({"value": {"type": "JSON", "data": {"i": i}}})
            conn.request("POST", url, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read()
            if resp.status != 200 or json.loads(text).get("error_code") != 200:
                failures.append((i, resp.status, text[:200]))
            else:
                done[w] += 1
        conn.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    print(f"load: {total} requests in {elapsed:.1f}s ({total / elapsed:.0f}/s) from {workers} clients")
    assert not failures, failures[:5]
    assert sum(done) == total
    c = Consumer(consumer_conf(node.bootstrap))
    try:
        stored = sum(c.get_watermark_offsets(TopicPartition(topic_name, p), timeout=10)[1] for p in range(4))
    finally:
        c.close()
    assert stored == total


# --- principal propagation ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["embedded", "standalone"])
def test_principal_propagation(weir_binary, broker_factory, tmp_path, where):
    """With HTTP basic authentication the proxy logs in to Kafka as each
    user (SASL/PLAIN with their password), so the broker applies that
    user's ACLs and audits them by name: in a node (whose HTTP layer checks
    the password first) and standalone (where the Kafka login is the
    check)."""
    from security_util import start_secure_broker
    from confluent_kafka.admin import AdminClient, NewTopic
    users = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}
    sets = {"authorizer.class.name": "StandardAuthorizer", "super.users": "User:admin"}
    if where == "embedded":
        sets["http.authentication"] = "basic"
    sb = start_secure_broker(broker_factory, tmp_path, users=users,
                             protocols=("PLAINTEXT", "SASL_PLAINTEXT"), sets=sets, start=False)
    rest_port = free_port()
    if where == "embedded":
        sb.broker.args += ["--rest-listen", f"{HOST}:{rest_port}",
                           "--client-set", "rest-proxy.security.protocol=SASL_PLAINTEXT",
                           "--client-set", "rest-proxy.sasl.mechanism=PLAIN"]
    sb.broker.start()
    sasl = sb.bootstrap("SASL_PLAINTEXT")
    as_admin = AdminClient(sb.client_config("SASL_PLAINTEXT", "admin", "admin-pw"))
    topic = "prop-orders"
    as_admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    as_admin.create_topics([NewTopic("secret-topic", 1, 1)])["secret-topic"].result(30)
    grants = [AclBinding(ResourceType.TOPIC, "prop-", ResourcePatternType.PREFIXED, "User:alice", "*",
                         op, AclPermissionType.ALLOW)
              for op in (AclOperation.WRITE, AclOperation.READ)]
    grants.append(AclBinding(ResourceType.GROUP, "prop-", ResourcePatternType.PREFIXED, "User:alice", "*",
                             AclOperation.READ, AclPermissionType.ALLOW))
    for f in as_admin.create_acls(grants).values():
        f.result(10)

    if where == "embedded":
        proxy = RestApi(rest_port).wait_ready(lambda: sb.broker.running, sb.broker.log_tail)
    else:
        proxy = RestProxy(weir_binary, tmp_path, sasl, settings={
            "http.authentication": "basic",
            "client.security.protocol": "SASL_PLAINTEXT",
            "client.sasl.mechanism": "PLAIN"})
    try:
        alice, bob = ("alice", "alice-pw"), ("bob", "bob-pw")
        assert proxy.http.get("/v3/clusters").status_code == 401
        assert proxy.http.get("/v3/clusters", auth=("alice", "wrong")).status_code == 401
        cid = proxy.http.get("/v3/clusters", auth=alice).json()["data"][0]["cluster_id"]
        url = f"/v3/clusters/{cid}/topics/{topic}/records"
        rec = {"value": {"type": "STRING", "data": "from alice"}}
        r = proxy.http.post(url, json=rec, auth=alice)
        assert r.status_code == 200 and json.loads(r.text.split("\r\n")[0])["error_code"] == 200, r.text
        assert error(proxy.http.post(url, json=rec, auth=bob)) == (403, 40301)
        # Each user sees the topics their ACLs let them describe.
        names = lambda who: {t["topic_name"] for t in
                             proxy.http.get(f"/v3/clusters/{cid}/topics", auth=who).json()["data"]}
        assert topic in names(alice) and "secret-topic" not in names(alice)
        assert names(bob) == set()
        assert {topic, "secret-topic"} <= names(("admin", "admin-pw"))
        # A v2 consumer instance reads as alice.
        v2 = {"Content-Type": V2}
        base = "/consumers/prop-g/instances/c"
        assert proxy.http.post("/consumers/prop-g", headers=v2, auth=alice,
                               json={"name": "c", "auto.offset.reset": "earliest"}).status_code == 200
        assert proxy.http.post(f"{base}/assignments", headers=v2, auth=alice,
                               json={"partitions": [{"topic": topic, "partition": 0}]}).status_code == 204
        got = []
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline
            r = proxy.http.get(f"{base}/records", auth=alice, headers={"Accept": v2_type("binary")})
            assert r.status_code == 200, r.text
            got = r.json()
        assert base64.b64decode(got[0]["value"]) == b"from alice"
        assert proxy.http.delete(base, auth=alice).status_code == 204
        # The broker's audit trail names bob, not the proxy.
        c = Consumer({**sb.client_config("SASL_PLAINTEXT", "admin", "admin-pw"),
                      "group.id": "audit-reader", "enable.auto.commit": False})
        try:
            c.assign([TopicPartition("__weir_audit", 0, 0)])

            def bob_denied():
                m = c.poll(0.5)
                return m is not None and not m.error() and b'"principal":"User:bob"' in m.value() \
                    and b"prop-orders" in m.value()
            wait_until(bob_denied, timeout=30, what="an audited denial of User:bob")
        finally:
            c.close()
    finally:
        if where == "standalone":
            assert proxy.stop() == 0, proxy.log()

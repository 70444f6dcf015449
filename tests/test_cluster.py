"""Cluster mode (issue 16): three `weir serve --cluster` brokers on
loopback sharing a throwaway PostgreSQL (the `postgres` fixture) and a
real S3-compatible server (moto, the `moto_server` fixture).

Produce to one broker and read from another, kcat's view of the cluster,
and a kill -9 under acks=all load that loses no acknowledged record while
the clients carry on through the other brokers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


@pytest.fixture
def cluster(broker_factory, postgres, moto_server):
    """Three brokers (node ids 1-3) on one database and one bucket."""
    db = postgres.create_db(f"c{uuid.uuid4().hex[:10]}")
    bucket = moto_server.create_bucket()
    env = {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_REGION": moto_server.REGION,
        "AWS_ACCESS_KEY_ID": moto_server.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": moto_server.SECRET_KEY,
    }
    url = f"postgres://{postgres.user}@127.0.0.1:{postgres.port}/{db}"
    brokers = [
        broker_factory("--cluster", url, "--object-store", f"s3://{bucket}/weir",
                       "--set", f"node.id={i}", name=f"node{i}", env=env)
        for i in (1, 2, 3)
    ]
    # Each broker sees the others once their heartbeats are in.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        md = AdminClient({"bootstrap.servers": brokers[0].bootstrap}).list_topics(timeout=5)
        if len(md.brokers) == 3:
            break
        time.sleep(0.2)
    return {"brokers": brokers, "db": db, "bucket": bucket, "pg": postgres, "s3": moto_server}


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(timeout=30)


def read_partition(bootstrap: str, topic: str, partition: int, until: int,
                   timeout: float = 30) -> list[tuple[int, bytes]]:
    """Every record of one partition below offset `until`, no group."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                  "enable.auto.commit": False, "enable.auto.offset.store": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout
        while (not out or out[-1][0] < until - 1) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append((m.offset(), m.value()))
        return out
    finally:
        c.close()


def test_produce_on_one_broker_and_consume_from_another(cluster, topic_name):
    a, b, c = cluster["brokers"]
    create_topic(a.bootstrap, topic_name, 3)
    # Producing through a broker that only bootstraps the client: leaders
    # are spread over all three, so every broker takes writes.
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    acked: dict[int, list[tuple[int, bytes]]] = {0: [], 1: [], 2: []}

    def on_ack(err, msg):
        assert err is None, err
        acked[msg.partition()].append((msg.offset(), msg.value()))

    for i in range(300):
        p.produce(topic_name, value=f"v{i}".encode(), partition=i % 3, on_delivery=on_ack)
        p.poll(0)
    assert p.flush(30) == 0
    md = AdminClient({"bootstrap.servers": c.bootstrap}).list_topics(topic_name, timeout=10)
    leaders = {pm.leader for pm in md.topics[topic_name].partitions.values()}
    assert leaders <= {1, 2, 3} and len(leaders) >= 2, leaders
    for part in range(3):
        want = sorted(acked[part])
        assert [o for o, _ in want] == list(range(100)), part
        # Read back from the broker the producer never talked to.
        assert read_partition(c.bootstrap, topic_name, part, 100) == want
    # The data is in the bucket and the offsets in PostgreSQL.
    objs = cluster["s3"].client().list_objects_v2(Bucket=cluster["bucket"], Prefix="weir/intake/")
    assert objs.get("KeyCount", 0) >= 1
    rows = cluster["pg"].rows(
        f"SELECT partition, next_offset FROM weir.partitions WHERE topic = '{topic_name}' "
        "ORDER BY 1", db=cluster["db"])
    assert rows == [("0", "100"), ("1", "100"), ("2", "100")]


def test_kcat_sees_three_brokers_and_a_topic_created_elsewhere(cluster, topic_name):
    a, b, c = cluster["brokers"]
    create_topic(a.bootstrap, topic_name, 6)
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed"
    deadline = time.monotonic() + 15
    while True:
        out = subprocess.run([kcat, "-b", c.bootstrap, "-L", "-J", "-t", topic_name],
                             capture_output=True, text=True, timeout=30)
        md = json.loads(out.stdout) if out.returncode == 0 else {}
        topics = md.get("topics", [])
        if topics and not topics[0].get("error") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(br["id"] for br in md["brokers"]) == [1, 2, 3]
    assert {br["name"] for br in md["brokers"]} == {a.bootstrap, b.bootstrap, c.bootstrap}
    (t,) = md["topics"]
    assert len(t["partitions"]) == 6 and not t.get("error")
    assert {pt["leader"] for pt in t["partitions"]} == {1, 2, 3}
    # kcat produces through one broker and consumes through another.
    subprocess.run([kcat, "-b", a.bootstrap, "-P", "-t", topic_name, "-p", "4"],
                   input="one\ntwo\nthree\n", text=True, check=True, timeout=30)
    out = subprocess.run([kcat, "-b", b.bootstrap, "-C", "-t", topic_name, "-p", "4",
                          "-o", "beginning", "-c", "3", "-e", "-f", "%o %s\n"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.splitlines() == ["0 one", "1 two", "2 three"]


def test_coordinator_apis_are_refused_cleanly(cluster, topic_name):
    a = cluster["brokers"][0]
    create_topic(a.bootstrap, topic_name, 1)
    # A group consumer finds no coordinator instead of a half-working one.
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "g1",
                  "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic_name])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            c.poll(0.2)
        assert c.assignment() == []
    finally:
        c.close()


def test_kill_9_under_acks_all_loses_no_acknowledged_record(cluster, topic_name):
    a, b, c = cluster["brokers"]
    create_topic(a.bootstrap, topic_name, 3)
    bootstrap = ",".join(x.bootstrap for x in (a, b, c))
    acked: dict[int, list[tuple[int, bytes]]] = {0: [], 1: [], 2: []}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def produce():
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                      "message.timeout.ms": 60000, "retries": 1000000})

        def on_ack(err, msg):
            if err is not None:
                with lock:
                    errors.append(str(err))
                return
            with lock:
                acked[msg.partition()].append((msg.offset(), msg.value()))

        i = 0
        while not stop.is_set():
            p.produce(topic_name, value=f"r{i}".encode(), partition=i % 3, on_delivery=on_ack)
            p.poll(0.001)
            i += 1
            if i % 200 == 0:
                time.sleep(0.02)
        p.flush(60)

    t = threading.Thread(target=produce)
    t.start()
    try:
        time.sleep(2)
        victim = next(x for x in (a, b, c) if x.running)
        victim.kill()
        time.sleep(3)
        with lock:
            before = sum(len(v) for v in acked.values())
        time.sleep(2)
        with lock:
            after = sum(len(v) for v in acked.values())
        # The clients carry on through the other two brokers.
        assert after > before, (before, after)
    finally:
        stop.set()
        t.join(90)
    assert not t.is_alive()
    survivor = next(x for x in (a, b, c) if x.running)
    for part in range(3):
        want = sorted(acked[part])
        if not want:
            continue
        got = read_partition(survivor.bootstrap, topic_name, part, want[-1][0] + 1)
        got_by_offset = dict(got)
        # Every acknowledged record is there, at the offset it was acked at;
        # offsets have no holes (a flush that failed took none).
        for off, val in want:
            assert got_by_offset.get(off) == val, (part, off)
        assert [o for o, _ in got] == list(range(len(got)))

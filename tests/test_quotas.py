"""Client quotas (KIP-13/KIP-546) with real clients.

Quotas are set and read with kafka-python's AlterClientQuotas and
DescribeClientQuotas protocol messages (its admin client has no wrapper for
them, and confluent-kafka has no client-quota admin API), sent through the
admin client's own connection manager. Enforcement is measured with
confluent-kafka producing and consuming as fast as it can: the achieved
byte rate over 30 s must be within 10% of the quota.

The brokers here use `quota.window.num=2`: Kafka's rate is measured over
whole samples, so a client is allowed a burst of about `num` windows of
quota whenever the oldest sample expires. With Kafka's default of 11 one-
second windows a 30 s measurement would be dominated by where it falls in
that 11 s cycle; with 2 the measured rate is the quota within a few percent.
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

from weir_helpers import wait_until

MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY = 0, 1, 2
QUOTA = 256 * 1024  # bytes per second
MEASURE_S = 30.0


def kp_send(admin: KafkaAdminClient, request, node_id=None):
    async def go():
        return await admin._manager.send(request, node_id=node_id)
    return admin._manager.run(go)


def alter(admin, entries, validate_only=False):
    """entries: [([(type, name)], [(key, value, remove)])] -> [(entity, error_code)]."""
    resp = kp_send(admin, AlterClientQuotasRequest(entries=entries, validate_only=validate_only))
    return [([(e.entity_type, e.entity_name) for e in entry.entity], entry.error_code)
            for entry in resp.entries]


def describe(admin, components, strict=False, node_id=None):
    resp = kp_send(admin, DescribeClientQuotasRequest(components=components, strict=strict),
                   node_id)
    assert resp.error_code == 0, resp.error_message
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity):
            {v.key: v.value for v in entry.values} for entry in resp.entries}


@pytest.fixture
def quota_broker(target_factory):
    return target_factory("--set", "quota.window.num=2", "--set", "quota.window.size.seconds=1")


def test_alter_and_describe_client_quotas(quota_broker):
    admin = KafkaAdminClient(bootstrap_servers=quota_broker.bootstrap, client_id="quota-admin")
    try:
        ok = alter(admin, [
            ([("client-id", "app")], [("producer_byte_rate", 1024.0, False),
                                      ("consumer_byte_rate", 2048.0, False)]),
            ([("user", None)], [("request_percentage", 25.0, False)]),
            ([("user", "alice"), ("client-id", None)], [("producer_byte_rate", 4096.0, False)]),
        ])
        assert [code for _, code in ok] == [0, 0, 0]
        invalid = alter(admin, [
            ([("client-id", "app")], [("no_such_quota", 1.0, False)]),
            ([("client-id", "app")], [("producer_byte_rate", -5.0, False)]),
            ([("client-id", "app")], [("producer_byte_rate", 10.5, False)]),
            ([], [("producer_byte_rate", 1.0, False)]),
            ([("user", "a"), ("user", "b")], [("producer_byte_rate", 1.0, False)]),
        ])
        assert [code for _, code in invalid] == [42] * 5  # INVALID_REQUEST
        # validate_only changes nothing.
        assert alter(admin, [([("client-id", "other")], [("producer_byte_rate", 1.0, False)])],
                     validate_only=True)[0][1] == 0

        expected = {
            (("client-id", "app"),): {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
            (("user", None),): {"request_percentage": 25.0},
            (("user", "alice"), ("client-id", None)): {"producer_byte_rate": 4096.0},
        }
        settle(admin, expected)
        assert describe(admin, []) == expected
        assert list(describe(admin, [("client-id", MATCH_EXACT, "app")], strict=True)) == [
            (("client-id", "app"),)]
        assert list(describe(admin, [("user", MATCH_DEFAULT, None)], strict=True)) == [
            (("user", None),)]
        # Not strict: entities with more components match too.
        assert len(describe(admin, [("user", MATCH_ANY, None)])) == 1
        assert len(describe(admin, [("client-id", MATCH_DEFAULT, None)])) == 1

        # Removing the last key removes the entity; all of it survives a restart.
        assert alter(admin, [([("user", None)], [("request_percentage", 0.0, True)])])[0][1] == 0
        del expected[(("user", None),)]
        settle(admin, expected)
    finally:
        admin.close()
    quota_broker.restart()
    admin = KafkaAdminClient(bootstrap_servers=quota_broker.bootstrap, client_id="quota-admin")
    try:
        # Every entity as it was, default components included.
        assert describe(admin, []) == expected
    finally:
        admin.close()


def settle(admin, expected) -> None:
    """Until every broker describes the quotas as `expected`: the admin
    client may ask any broker, and in a cluster the others apply a change
    a moment after the one that made it answered."""
    nodes = [b.node_id for b in admin._manager.cluster.brokers()]
    assert nodes, "the admin client knows no broker"
    for node in nodes:
        wait_until(lambda: describe(admin, [], node_id=node) == expected,
                   what=f"the quotas on broker {node}")


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)


def set_client_quota(bootstrap: str, client_id: str, key: str, value: float) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="quota-admin")
    try:
        assert alter(admin, [([("client-id", client_id)], [(key, value, False)])]) == [
            ([("client-id", client_id)], 0)]
    finally:
        admin.close()


def test_producer_is_throttled_to_its_byte_rate(quota_broker):
    topic = "quota-produce"
    create_topic(quota_broker.bootstrap, topic)
    set_client_quota(quota_broker.bootstrap, "fast-producer", "producer_byte_rate", QUOTA)
    p = Producer({"bootstrap.servers": quota_broker.bootstrap, "client.id": "fast-producer",
                  "acks": 1, "linger.ms": 5, "batch.size": 32 * 1024,
                  "compression.type": "none", "queue.buffering.max.kbytes": 4096})
    delivered = [0]

    def on_delivery(err, msg):
        if err is None:
            delivered[0] += len(msg.value())

    value = b"x" * 1000
    start = time.monotonic()
    while time.monotonic() - start < MEASURE_S:
        try:
            p.produce(topic, value, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    elapsed = time.monotonic() - start
    achieved = delivered[0] / elapsed
    p.flush(30)
    print(f"producer: {achieved:.0f} B/s against a quota of {QUOTA} B/s")
    assert abs(achieved - QUOTA) / QUOTA < 0.10, f"{achieved:.0f} B/s against a quota of {QUOTA}"


def test_consumer_is_throttled_to_its_byte_rate(quota_broker):
    topic = "quota-fetch"
    create_topic(quota_broker.bootstrap, topic)
    # More than 30 s of quota, written before any quota applies.
    # Small batches: a throttled fetch is answered empty (as in Kafka), so
    # a single batch larger than the quota allows per window would never
    # be delivered.
    p = Producer({"bootstrap.servers": quota_broker.bootstrap, "linger.ms": 20,
                  "batch.size": 16 * 1024, "compression.type": "none"})
    value = b"y" * 1000
    total = int(QUOTA * MEASURE_S * 1.5 / len(value))
    for _ in range(total):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0
    set_client_quota(quota_broker.bootstrap, "fast-consumer", "consumer_byte_rate", QUOTA)
    c = Consumer({"bootstrap.servers": quota_broker.bootstrap, "client.id": "fast-consumer",
                  "group.id": "quota-readers", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False,
                  # Small fetches: a throttled fetch (answered empty) costs
                  # the client about fetch size / quota of waiting.
                  "fetch.max.bytes": 32 * 1024, "message.max.bytes": 32 * 1024,
                  "max.partition.fetch.bytes": 32 * 1024})
    try:
        c.subscribe([topic])
        # Wait for the first record so group join time is not measured.
        first = None
        deadline = time.monotonic() + 30
        while first is None and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                first = m
        assert first is not None
        got = len(first.value())
        start = time.monotonic()
        while time.monotonic() - start < MEASURE_S:
            for m in c.consume(500, 0.2):
                if not m.error():
                    got += len(m.value())
        achieved = got / (time.monotonic() - start)
    finally:
        c.close()
    print(f"consumer: {achieved:.0f} B/s against a quota of {QUOTA} B/s")
    assert got < total * len(value), "the consumer read everything: the test measured nothing"
    assert abs(achieved - QUOTA) / QUOTA < 0.10, f"{achieved:.0f} B/s against a quota of {QUOTA}"


def test_consumer_behind_by_more_than_the_quota_window_still_progresses(quota_broker):
    """Kafka caps a consumer's fetch to what its quota window allows
    (quota x (quota.window.num - 1) x window: 2 KiB here), so a fetch that
    would always be throttled, answered empty and never counted is shrunk
    instead. Without that cap this consumer, whose backlog is ten windows'
    worth, is throttled forever and reads nothing."""
    topic = "quota-backlog"
    create_topic(quota_broker.bootstrap, topic)
    rate = 2048
    # Batches well under the window: one batch is always returned whole.
    p = Producer({"bootstrap.servers": quota_broker.bootstrap, "linger.ms": 5,
                  "batch.size": 1024, "compression.type": "none"})
    value = b"z" * 200
    total = 10 * rate // len(value)
    for _ in range(total):
        p.produce(topic, value)
    assert p.flush(60) == 0
    set_client_quota(quota_broker.bootstrap, "slow-consumer", "consumer_byte_rate", rate)
    throttled = [0]

    def on_stats(raw):
        for b in json.loads(raw)["brokers"].values():
            throttled[0] = max(throttled[0], b["throttle"]["max"])

    c = Consumer({"bootstrap.servers": quota_broker.bootstrap, "client.id": "slow-consumer",
                  "group.id": "quota-backlog-readers", "enable.auto.commit": False,
                  "statistics.interval.ms": 500, "stats_cb": on_stats})
    got = 0
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        # Generous: at the quota this takes about 10 s.
        deadline = time.monotonic() + 120
        while got < total and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                assert m.error() is None, m.error()
                got += 1
        # Let a statistics report cover the last fetches.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            c.poll(0.2)
    finally:
        c.close()
    assert got == total, f"read {got} of {total} records"
    assert throttled[0] > 0, "the consumer was never throttled: the test measured nothing"

"""Share groups (KIP-932) with Apache Kafka's own client (kafka-clients 4.3):
KafkaShareConsumer and the admin client's share-group APIs.

One JVM (tests/java/weir/share/ShareScenarios.java) serves the scenarios
against one broker per module. The broker allows acquisition locks down to
one second (`group.share.min.record.lock.duration.ms`), so the tests that
wait for a lock to expire set a short `share.record.lock.duration.ms` on
their own group and nobody else's.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

import java_harness
from weir_helpers import admin, create_topic

SCENARIOS = "weir.share.ShareScenarios"


@pytest.fixture(scope="module")
def share_broker(broker_factory_module):
    return broker_factory_module("--set", "group.share.min.record.lock.duration.ms=1000",
                                 name="share-broker")


@pytest.fixture(scope="module")
def broker_factory_module(weir_binary, _broker_root):
    from conftest import BrokerFactory
    f = BrokerFactory(weir_binary, _broker_root)
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def java(share_broker):
    java_harness.require()
    proc = java_harness.JavaProcess(SCENARIOS, share_broker.bootstrap)
    yield proc
    proc.close()


def earliest(java, group, **more):
    configs = {"share.auto.offset.reset": "earliest", **more}
    return java.call("configure_group", group=group, configs=configs)


def test_three_consumers_share_one_partition(java, topic_name):
    """Three share consumers on a one-partition topic: each gets a share,
    and together they accept every record exactly once."""
    group = f"g-{topic_name}"
    seen = earliest(java, group)
    assert seen["share.auto.offset.reset"] == "earliest"
    java.call("produce", topic=topic_name, count=60)
    out = java.call("split", topic=topic_name, group=group, consumers=3, count=60, timeout=200)
    per = out["per_consumer"]
    assert all(len(offsets) > 0 for offsets in per), per
    assert out["accepted"] == list(range(60))
    everything = sorted(o for offsets in per for o in offsets)
    assert everything == list(range(60)), "no record went to two consumers"


def test_release_reject_and_the_delivery_count_limit(java, topic_name):
    """RELEASE brings a record back (delivery count 2), REJECT archives it
    for good, and a record released at every delivery is archived once it
    reaches share.delivery.count.limit (2 here)."""
    group = f"g-{topic_name}"
    earliest(java, group, **{"share.delivery.count.limit": "2"})
    java.call("produce", topic=topic_name, count=3)
    out = java.call("ack_types", topic=topic_name, group=group, count=3, timeout=120)
    assert out["deliveries"] == {"v0": [1, 2], "v1": [1], "v2": [1, 2]}
    assert out["start_offset"] == 3


def test_a_killed_consumers_records_go_to_another_after_the_lock_duration(
        java, share_broker, topic_name):
    """A consumer killed (SIGKILL, its JVM) while holding records: once
    their acquisition lock (2 s for this group) expires, another consumer
    gets them, at delivery count 2, and every record is accepted."""
    group = f"g-{topic_name}"
    earliest(java, group, **{"share.record.lock.duration.ms": "2000"})
    java.call("produce", topic=topic_name, count=20)
    victim = java_harness.JavaProcess(SCENARIOS, share_broker.bootstrap)
    try:
        held = victim.call("hold", topic=topic_name, group=group, max=5)
    finally:
        victim.proc.kill()
        victim.proc.wait(30)
        victim.close()
    assert held == [0, 1, 2, 3, 4]
    java.call("open", name="survivor", topic=topic_name, group=group)
    try:
        out = java.call("consume", name="survivor", accepted=20, timeout=150)
    finally:
        java.call("close", name="survivor")
    assert out["confirmed"] == list(range(20))
    last_count = {offset: count for offset, count in out["delivered"]}
    assert all(last_count[o] == 2 for o in held), out["delivered"]


def test_broker_kill_9_neither_loses_acknowledgements_nor_redelivers_them(
        java, share_broker, topic_name):
    """kill -9 of the broker while a consumer holds records: after the
    restart no record whose acknowledgement was confirmed comes back, the
    records that were in flight come back, and every record ends up
    acknowledged."""
    group = f"g-{topic_name}"
    earliest(java, group)
    java.call("produce", topic=topic_name, count=300)
    java.call("open", name="k", topic=topic_name, group=group,
              consumer={"share.acquire.mode": "record_limit", "max.poll.records": "50"})
    try:
        before = java.call("consume", name="k", accepted=100)
        in_flight = java.call("consume", name="k", commit=False)
        share_broker.kill()
        share_broker.start()
        acked = set(before["confirmed"])
        after = java.call("consume", name="k", accepted=300 - len(acked), timeout=200)
    finally:
        java.call("close", name="k")
    assert len(acked) >= 100 and in_flight["delivered"], (before, in_flight)
    redelivered = {offset for offset, _ in after["delivered"]} & acked
    assert not redelivered, f"acknowledged before the crash, delivered again: {sorted(redelivered)}"
    assert {o for o, _ in in_flight["delivered"]} <= {o for o, _ in after["delivered"]}
    assert acked | set(after["confirmed"]) == set(range(300))


def test_admin_describes_lists_alters_and_deletes_a_share_group(java, topic_name):
    """The admin client's share-group APIs: describeShareGroups (member and
    assignment), listShareGroupOffsets (start offset and lag), listGroups of
    type share, alterShareGroupOffsets (refused while the group has
    members), deleteShareGroupOffsets and deleteShareGroups."""
    group = f"g-{topic_name}"
    earliest(java, group)
    java.call("produce", topic=topic_name, count=10)
    java.call("open", name="a", topic=topic_name, group=group,
              consumer={"share.acquire.mode": "record_limit", "max.poll.records": "4"})
    try:
        assert len(java.call("consume", name="a", accepted=4)["confirmed"]) == 4
        d = java.call("describe_group", group=group)
        assert d["state"] == "Stable"
        assert [m["assignment"] for m in d["members"]] == [[f"{topic_name}-0"]]
        assert d["members"][0]["client_id"] == "weir-share-tests"
        assert d["epoch"] >= 1 and d["coordinator"] >= 0
        assert java.call("list_offsets", group=group) == {
            f"{topic_name}-0": {"start_offset": 4, "lag": 6}}
        listed = java.call("list_share_groups")[group]
        assert (listed["type"].lower(), listed["state"]) == ("share", "Stable")
        assert java.call("alter_offsets", group=group, topic=topic_name,
                         offset=8) == "GroupNotEmptyException"
    finally:
        java.call("close", name="a")
    assert java.call("describe_group", group=group)["state"] == "Empty"
    assert java.call("alter_offsets", group=group, topic=topic_name, offset=8) == "ok"
    assert java.call("list_offsets", group=group) == {
        f"{topic_name}-0": {"start_offset": 8, "lag": 2}}
    assert java.call("delete_offsets", group=group, topic=topic_name) == "ok"
    assert java.call("list_offsets", group=group) == {}
    assert java.call("delete_group", group=group) == "ok"
    assert group not in java.call("list_share_groups")
    assert java.call("delete_group", group=group) == "GroupIdNotFoundException"


def test_librdkafka_share_consumers_split_a_partition_and_release(share_broker, topic_name):
    """librdkafka 2.16's share consumer (confluent-kafka 2.16's ShareConsumer):
    while one consumer holds records the other gets different ones; a
    RELEASEd record comes back at delivery count 2; together they accept
    every record."""
    group = f"g-{topic_name}"
    adm = admin(share_broker.bootstrap)
    create_topic(adm, topic_name)
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    adm.incremental_alter_configs([res])[res].result(30)
    p = Producer({"bootstrap.servers": share_broker.bootstrap, "linger.ms": 0})
    for i in range(40):  # one record a batch
        p.produce(topic_name, key=f"k{i}", value=f"v{i}")
        p.flush(30)
    conf = {"bootstrap.servers": share_broker.bootstrap, "group.id": group,
            "share.acknowledgement.mode": "explicit", "max.poll.records": 5}
    c1, c2 = ShareConsumer(conf), ShareConsumer(conf)
    try:
        for c in (c1, c2):
            c.subscribe([topic_name])

        def first_records(c):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                msgs = [m for m in c.poll(0.5) if m.error() is None]
                if msgs:
                    return msgs
            raise AssertionError("no records within 60 s")

        held = first_records(c1)
        other = first_records(c2)
        assert not {m.offset() for m in held} & {m.offset() for m in other}
        released = held[0].offset()
        c1.acknowledge(held[0], AcknowledgeType.RELEASE)
        for m in held[1:]:
            c1.acknowledge(m)
        for m in other:
            c2.acknowledge(m)
        assert all(e is None for e in c1.commit_sync(30).values())
        assert all(e is None for e in c2.commit_sync(30).values())
        accepted = {m.offset() for m in held[1:] + other}
        again = []
        deadline = time.monotonic() + 90
        while len(accepted) < 40 and time.monotonic() < deadline:
            for c in (c1, c2):
                msgs = [m for m in c.poll(0.2) if m.error() is None]
                for m in msgs:
                    c.acknowledge(m)
                    if m.offset() == released:
                        again.append(m.delivery_count())
                if msgs and all(e is None for e in c.commit_sync(30).values()):
                    accepted |= {m.offset() for m in msgs}
        assert accepted == set(range(40))
        assert again == [2]
    finally:
        c1.close()
        c2.close()

"""Share groups (KIP-932) with Apache Kafka's own client (kafka-clients 4.3):
KafkaShareConsumer and the admin client's share-group APIs.

One JVM (tests/java/weir/share/ShareScenarios.java) serves the scenarios
against one broker per module. The broker allows acquisition locks down to
one second (`group.share.min.record.lock.duration.ms`), so the tests that
wait for a lock to expire set a short `share.record.lock.duration.ms` on
their own group and nobody else's.
"""

from __future__ import annotations

import pytest

import java_harness

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

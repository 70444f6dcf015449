"""Apache Kafka's Java client (kafka-clients 4.3) against Weir.

One JVM (tests/java/weir/compat/ClientScenarios.java) serves every scenario
of this module against one shared broker; see java_harness.py.
"""

from __future__ import annotations

import pytest

import java_harness


@pytest.fixture(scope="module")
def java(module_broker):
    java_harness.require()
    proc = java_harness.JavaProcess("weir.compat.ClientScenarios", module_broker.bootstrap)
    yield proc
    proc.close()


def test_create_and_describe_topic(java, topic_name):
    d = java.call("create_and_describe", topic=topic_name, partitions=3)
    assert d["name"] == topic_name
    assert d["internal"] is False
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]
    assert all(p["leader"] >= 0 and p["replicas"] == 1 for p in d["partitions"])


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_roundtrip_per_codec(java, topic_name, codec):
    java.call("create_and_describe", topic=topic_name, partitions=1)
    out = java.call("roundtrip", topic=topic_name, count=500,
                    producer={"compression.type": codec, "acks": "all"})
    assert out["acked"] == list(range(500))
    assert [r["offset"] for r in out["read"]] == list(range(500))
    assert [r["key"] for r in out["read"]] == [f"k{i}" for i in range(500)]
    assert [r["value"] for r in out["read"]] == [f"value-{i}-" + "x" * (i % 50) for i in range(500)]


def test_describe_topics_by_id(java, topic_name):
    created = java.call("create_and_describe", topic=topic_name, partitions=2)
    out = java.call("describe_by_id", topic=topic_name)
    assert out["id"] == created["topic_id"]
    assert out["by_id"]["name"] == topic_name
    assert len(out["by_id"]["partitions"]) == 2
    assert out["unknown_id_error"] == "UnknownTopicIdException"


@pytest.mark.parametrize("protocol", ["consumer", "classic"])
def test_group_members_split_partitions_and_commit(java, topic_name, protocol):
    """Two members of one group (KIP-848 `group.protocol=consumer`, or the
    classic protocol with cooperative-sticky) share four partitions, read
    every record once between them and commit; the admin client then sees
    every partition committed at its end."""
    java.call("create_and_describe", topic=topic_name, partitions=4)
    java.call("produce", topic=topic_name, count=400, partitions=4)
    consumer = {"group.protocol": protocol}
    if protocol == "classic":
        consumer["partition.assignment.strategy"] = (
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor")
    out = java.call("group_members", topic=topic_name, group=f"g-{topic_name}", members=2,
                    count=400, consumer=consumer, timeout=180)
    assert out["distinct_read"] == 400
    assert out["committed"] == {str(p): 100 for p in range(4)}
    assigned = [set(m["assigned"]) for m in out["members"]]
    assert assigned[0] and assigned[1] and not assigned[0] & assigned[1], out["members"]
    assert assigned[0] | assigned[1] == {0, 1, 2, 3}, out["members"]


def test_features_log_dirs_and_offsets(java, topic_name):
    java.call("create_and_describe", topic=topic_name, partitions=1)
    java.call("produce", topic=topic_name, count=10)
    out = java.call("cluster_views", topic=topic_name)
    assert out["finalized"] == {"group.version": 1, "kraft.version": 0,
                                "metadata.version": 25, "share.version": 1,
                                "transaction.version": 1}
    assert out["supported"]["transaction.version"] == [0, 1]
    assert out["supported"]["share.version"] == [0, 1]
    assert out["epoch"] >= 0
    [d] = out["log_dirs"]
    assert d["total"] > 0 and 0 <= d["usable"] <= d["total"], d
    assert d["partitions"] >= 1
    # Records sent in the same millisecond tie: Kafka answers the first.
    assert (out["offsets"]["earliest"], out["offsets"]["latest"]) == (0, 10)
    assert 0 <= out["offsets"]["max_timestamp"] <= 9

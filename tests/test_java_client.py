"""Apache Kafka's Java client (kafka-clients 4.3) against Weir.

One JVM (tests/java/weir/compat/ClientScenarios.java) serves every scenario
of this module against one shared broker; see java_harness.py.
"""

from __future__ import annotations

import re
import urllib.request

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
                                "transaction.version": 2}
    assert out["supported"]["transaction.version"] == [0, 2]
    assert out["supported"]["share.version"] == [0, 1]
    assert out["epoch"] >= 0
    [d] = out["log_dirs"]
    assert d["total"] > 0 and 0 <= d["usable"] <= d["total"], d
    assert d["partitions"] >= 1
    # Records sent in the same millisecond tie: Kafka answers the first.
    assert (out["offsets"]["earliest"], out["offsets"]["latest"]) == (0, 10)
    assert 0 <= out["offsets"]["max_timestamp"] <= 9


def requests_by_api(broker) -> dict[str, float]:
    """The request counters (weir_requests_total) by API name, summed over
    the target's brokers."""
    counts: dict[str, float] = {}
    for url in broker.admin_urls:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        for m in re.finditer(r'^weir_requests_total\{api="(\w+)"\} (\S+)$', text, re.M):
            counts[m[1]] = counts.get(m[1], 0) + float(m[2])
    return counts


@pytest.mark.parametrize("tv", [2, 1])
def test_transactions_with_send_offsets(target_factory, topic_name, tv):
    """Kafka's exactly-once loop (consume, produce in a transaction,
    sendOffsetsToTransaction, commit; the first transaction aborted and
    redone) under each transaction version. The client picks version 2 from
    the finalized `transaction.version` (2 by default); a node set to 1, as
    `kafka-features.sh downgrade --feature transaction.version=1` would,
    gets version 1 clients. Version 2 adds partitions through the writes
    themselves (no AddPartitionsToTxn or AddOffsetsToTxn request reaches
    the broker) and bumps the epoch at every transaction end; version 1
    adds them explicitly and keeps the epoch."""
    java_harness.require()
    b = target_factory(*(["--set", "transaction.version=1"] if tv == 1 else []))
    java = java_harness.JavaProcess("weir.compat.ClientScenarios", b.bootstrap)
    try:
        src, dst = f"{topic_name}-in", f"{topic_name}-out"
        java.call("create_and_describe", topic=src, partitions=2)
        java.call("create_and_describe", topic=dst, partitions=3)
        java.call("produce", topic=src, count=60, partitions=2)
        before = requests_by_api(b)
        out = java.call("transactions", input=src, output=dst, group=f"g-{topic_name}",
                        txn_id=f"t-{topic_name}", count=60,
                        consumer={"max.poll.records": "8"}, timeout=180)
        calls = {k: v - before.get(k, 0) for k, v in requests_by_api(b).items()}
    finally:
        java.close()
    assert out["transaction_version"] == tv
    # Every input exactly once for read_committed; the aborted attempt only
    # for read_uncommitted.
    want = sorted(f"out:value-{i}-" + "x" * (i % 50) for i in range(60))
    assert sorted(out["read_committed"]) == want
    assert out["aborts"] == 1 and 0 < out["aborted_records"] <= 8
    assert len(out["read_uncommitted"]) == 60 + out["aborted_records"]
    assert set(out["read_uncommitted"]) == set(want)
    assert out["committed_offsets"] == {"0": 30, "1": 30}
    ends = out["commits"] + out["aborts"]
    assert ends >= 3
    txn = out["transaction"]
    assert txn["state"] == "CompleteCommit" and txn["partitions"] == 0, txn
    assert calls.get("EndTxn", 0) == ends and calls.get("TxnOffsetCommit", 0) >= ends, calls
    if tv == 2:
        assert txn["producer_epoch"] == ends, txn
        assert calls.get("AddPartitionsToTxn", 0) == 0, calls
        assert calls.get("AddOffsetsToTxn", 0) == 0, calls
    else:
        assert txn["producer_epoch"] == 0, txn
        assert calls.get("AddPartitionsToTxn", 0) >= ends, calls
        assert calls.get("AddOffsetsToTxn", 0) == ends, calls


def test_classic_static_membership(java, topic_name):
    """Classic group members with group.instance.id (cooperative-sticky):
    a static member that closes and comes back with its instance id within
    the session timeout gets its partitions back without a rebalance, and
    describeConsumerGroups shows the instance ids."""
    java.call("create_and_describe", topic=topic_name, partitions=4)
    out = java.call("static_members", topic=topic_name, group=f"g-{topic_name}", consumer={
        "partition.assignment.strategy":
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"}, timeout=180)
    a, b = set(out["before"]["static-a"]), set(out["before"]["static-b"])
    assert a and b and not a & b and a | b == {0, 1, 2, 3}, out
    assert set(out["replacement"]) == b, out
    assert out["generation_after"] == out["generation"], out
    assert out["state"] == "Stable", out
    assert {k: set(v) for k, v in out["described"].items()} == {"static-a": a, "static-b": b}


def test_admin_client_tour(java, topic_name):
    """AdminClient beyond topics: configs (describe, set, delete back to the
    default), partitions, offsets, deleteRecords and the group APIs."""
    java.call("create_and_describe", topic=topic_name, partitions=1)
    java.call("produce", topic=topic_name, count=20)
    out = java.call("admin_tour", topic=topic_name, group=f"g-{topic_name}", count=20)
    assert out["retention_default"] == {"value": "604800000", "source": "DEFAULT_CONFIG",
                                        "default": True}
    assert out["retention_set"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG",
                                    "default": False}
    assert out["retention_deleted"] == out["retention_default"]
    assert out["partitions"] == 3
    assert (out["earliest_after_delete"], out["latest"]) == (5, 20)
    assert out["listed"] is True
    assert (out["group_state"], out["group_members"]) == ("Empty", 0)
    assert out["committed"] == {"0": 20}
    assert out["committed_altered"] == {"0": 7}
    assert out["committed_after_offset_delete"] == {}
    assert out["listed_after_delete"] is False

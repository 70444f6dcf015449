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

"""kafka-python (pure-Python client, its own protocol code) against Weir.

No api_version is configured anywhere: the client negotiates with ApiVersions
and infers a broker version from the advertised ranges. Idempotence is
explicitly disabled (kafka-python 3 enables it by default; Weir has no
InitProducerId yet). Consumers have no group_id and use assign()/seek.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, AlterConfigOp
from kafka.errors import (InvalidPartitionsError, InvalidTopicError, TopicAlreadyExistsError,
                          UnknownTopicOrPartitionError, InvalidConfigurationError)

from weir_helpers import Rec, by_partition, gen_records, recent_base_ts, wait_until

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
N_MESSAGES = 20_000
PARTITIONS = 6
CREATE_TIME = 0


def kp_admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="weir-tests-admin",
                            request_timeout_ms=30_000)


def kp_producer(broker, **kw) -> KafkaProducer:
    conf = dict(bootstrap_servers=broker.bootstrap, enable_idempotence=False, acks="all",
                linger_ms=5, batch_size=256 * 1024, max_in_flight_requests_per_connection=1,
                max_request_size=4 * 1024 * 1024, request_timeout_ms=30_000)
    conf.update(kw)
    return KafkaProducer(**conf)


def kp_consumer(broker, **kw) -> KafkaConsumer:
    conf = dict(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="none", fetch_max_wait_ms=100, request_timeout_ms=30_000)
    conf.update(kw)
    return KafkaConsumer(**conf)


def create(adm, name, partitions=1, configs=None):
    adm.create_topics({name: {"num_partitions": partitions, "replication_factor": 1,
                              "configs": configs or {}}})
    wait_until(lambda: name in adm.list_topics(), what=f"{name} listed")


def consume_all(broker, topic, partitions, timeout=120.0, **kw):
    """assign + seek_to_beginning, then poll until every partition's end offset."""
    c = kp_consumer(broker, **kw)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        ends = c.end_offsets(tps)
        c.seek_to_beginning(*tps)
        out = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, \
                f"timed out: positions { {tp.partition: (c.position(tp), ends[tp]) for tp in tps} }"
            for tp, msgs in c.poll(timeout_ms=500, max_records=5000).items():
                out[tp.partition].extend(msgs)
        return out
    finally:
        c.close()


def assert_records(expected: list[Rec], got, partition: int):
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g.offset == i, f"partition {partition}: offset {g.offset} at index {i}"
        assert g.timestamp_type == CREATE_TIME, f"p{partition}@{i}: timestamp type {g.timestamp_type}"
        actual = Rec(g.partition, g.key, g.value, tuple(g.headers or ()), g.timestamp)
        assert actual == e, f"p{partition}@{i}:\n  expected {e.describe()}\n  got      {actual.describe()}"
    assert len(got) == len(expected), f"partition {partition}: {len(got)} records, expected {len(expected)}"


def kp_compatible(r: Rec) -> Rec:
    """kafka-python's send() refuses null header values and key=value=None
    (client-side checks; its decoder handles both, see
    test_reads_confluent_produced_records), so adapt those records."""
    headers = tuple((k, b"<null>" if v is None else v) for k, v in r.headers)
    key = b"" if r.key is None and r.value is None else r.key
    return Rec(r.partition, key, r.value, headers, r.timestamp)


@pytest.mark.parametrize("codec", CODECS, ids=[c or "none" for c in CODECS])
def test_roundtrip_each_codec(module_broker, topic_name, codec):
    adm = kp_admin(module_broker)
    try:
        create(adm, topic_name, PARTITIONS)
    finally:
        adm.close()
    records = [kp_compatible(r) for r in gen_records(
        seed=2000 + CODECS.index(codec), n=N_MESSAGES, partitions=PARTITIONS,
        base_ts=recent_base_ts())]
    p = kp_producer(module_broker, compression_type=codec)
    try:
        # Auto-detected, and new enough for every codec (zstd needs >= 2.1).
        assert p.config["api_version"] >= (2, 1), p.config["api_version"]
        futures = [p.send(topic_name, key=r.key, value=r.value, partition=r.partition,
                          timestamp_ms=r.timestamp, headers=list(r.headers))
                   for r in records]
        p.flush(120)
        metas = [f.get(timeout=60) for f in futures]
    finally:
        p.close(10)
    expected = by_partition(records, PARTITIONS)
    next_offset = {p_: 0 for p_ in range(PARTITIONS)}
    for r, m in zip(records, metas):
        assert (m.partition, m.offset) == (r.partition, next_offset[r.partition])
        next_offset[r.partition] += 1
    got = consume_all(module_broker, topic_name, range(PARTITIONS))
    for p_ in range(PARTITIONS):
        assert_records(expected[p_], got[p_], p_)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_reads_confluent_produced_records(module_broker, topic_name, codec):
    """kafka-python decoding what librdkafka produced: null header values,
    tombstones with null keys, every codec."""
    from confluent_kafka import Producer
    from weir_helpers import admin, create_topic, produce_records, producer_conf
    create_topic(admin(module_broker.bootstrap), topic_name, 3)
    records = gen_records(seed=2100, n=5000, partitions=3, base_ts=recent_base_ts())
    log = produce_records(Producer(producer_conf(module_broker.bootstrap,
                                                 **{"compression.type": codec})),
                          topic_name, records)
    assert not log.failed
    got = consume_all(module_broker, topic_name, range(3))
    expected = by_partition(records, 3)
    for p_ in range(3):
        assert_records(expected[p_], got[p_], p_)


def test_admin_topic_lifecycle(module_broker, topic_name):
    adm = kp_admin(module_broker)
    try:
        res = adm.create_topics({topic_name: {"num_partitions": 2, "replication_factor": 1,
                                              "configs": {"retention.ms": "1000"}}},
                                validate_only=True)
        assert [t["error_code"] for t in res["topics"]] == [0]
        assert topic_name not in adm.list_topics()

        create(adm, topic_name, 2, {"retention.ms": "3600000", "cleanup.policy": "compact"})
        assert topic_name in adm.list_topics()
        desc = {t["name"]: t for t in adm.describe_topics([topic_name])}
        assert sorted(p["partition_index"] for p in desc[topic_name]["partitions"]) == [0, 1]
        assert desc[topic_name]["error_code"] == 0

        with pytest.raises(TopicAlreadyExistsError):
            adm.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(InvalidPartitionsError):
            adm.create_topics({topic_name + "-zero": {"num_partitions": 0, "replication_factor": 1}})
        with pytest.raises(InvalidTopicError):
            adm.create_topics({"bad name": {"num_partitions": 1, "replication_factor": 1}})

        # describe_configs: only overrides with the default 'modified' filter.
        res = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
        cfg = res["topic"][topic_name]
        assert set(cfg) == {"retention.ms", "cleanup.policy"}, sorted(cfg)
        assert cfg["retention.ms"]["value"] == "3600000"
        assert cfg["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        res = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)],
                                   config_filter="all", include_synonyms=True)
        cfg = res["topic"][topic_name]
        assert cfg["segment.bytes"]["value"] == "1073741824"
        assert cfg["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"
        assert cfg["retention.ms"]["synonyms"][0]["source"] == "DYNAMIC_TOPIC_CONFIG"

        # alter_configs (IncrementalAlterConfigs, negotiated).
        adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name,
                                          configs={"retention.ms": "7200000",
                                                   "cleanup.policy": (AlterConfigOp.DELETE, None)})])
        cfg = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)],
                                   config_filter="all")["topic"][topic_name]
        assert (cfg["retention.ms"]["value"], cfg["retention.ms"]["config_source"]) == \
            ("7200000", "DYNAMIC_TOPIC_CONFIG")
        assert (cfg["cleanup.policy"]["value"], cfg["cleanup.policy"]["config_source"]) == \
            ("delete", "DEFAULT_CONFIG")
        # Legacy AlterConfigs path.
        adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name,
                                          configs={"max.message.bytes": "5000"})], incremental=False)
        cfg = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])["topic"][topic_name]
        # kafka-python re-sends the other modified keys so they survive the full replace.
        assert {k: v["value"] for k, v in cfg.items()} == \
            {"retention.ms": "7200000", "max.message.bytes": "5000"}

        adm.create_partitions({topic_name: 4})
        wait_until(lambda: len({t["name"]: t for t in adm.describe_topics([topic_name])}
                               [topic_name]["partitions"]) == 4, what="4 partitions")
        with pytest.raises(InvalidPartitionsError):
            adm.create_partitions({topic_name: 2})

        adm.delete_topics([topic_name])
        wait_until(lambda: topic_name not in adm.list_topics(), what="topic deleted")
        with pytest.raises(UnknownTopicOrPartitionError):
            adm.delete_topics([topic_name])
    finally:
        adm.close()


def test_invalid_config_rejected(module_broker, topic_name):
    adm = kp_admin(module_broker)
    try:
        with pytest.raises(InvalidConfigurationError):
            adm.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1,
                                            "configs": {"no.such.config": "x"}}})
        assert topic_name not in adm.list_topics()
    finally:
        adm.close()


def test_consumer_offset_lookups(module_broker, topic_name):
    adm = kp_admin(module_broker)
    try:
        create(adm, topic_name, 2)
    finally:
        adm.close()
    t0 = recent_base_ts()
    p = kp_producer(module_broker)
    try:
        # partition 0: 20 records, ts t0 + 1000*i; partition 1: 5 records.
        futs = [p.send(topic_name, value=b"%d" % i, partition=0, timestamp_ms=t0 + 1000 * i)
                for i in range(20)]
        futs += [p.send(topic_name, value=b"x", partition=1, timestamp_ms=t0 + i) for i in range(5)]
        p.flush(30)
        for f in futs:
            f.get(timeout=30)
    finally:
        p.close(10)
    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    c = kp_consumer(module_broker)
    try:
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 20, tp1: 5}
        res = c.offsets_for_times({tp0: t0 + 7500, tp1: t0 + 100})
        assert (res[tp0].offset, res[tp0].timestamp) == (8, t0 + 8000)
        assert res[tp1] is None  # no record that late
        res = c.offsets_for_times({tp0: t0})
        assert (res[tp0].offset, res[tp0].timestamp) == (0, t0)
        # Reading from a looked-up offset.
        c.assign([tp0])
        c.seek(tp0, 8)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 12 and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                got.extend(msgs)
        assert [(m.offset, m.value) for m in got] == [(i, b"%d" % i) for i in range(8, 20)]
    finally:
        c.close()


def test_describe_log_dirs_and_cluster(module_broker, topic_name):
    adm = kp_admin(module_broker)
    try:
        create(adm, topic_name, 2)
        p = kp_producer(module_broker, compression_type=None)
        try:
            for i in range(50):
                p.send(topic_name, value=b"v" * 1000, partition=0, timestamp_ms=recent_base_ts() + i)
            p.flush(30)
        finally:
            p.close(10)
        cluster = adm.describe_cluster()
        brokers = cluster["brokers"]
        assert sorted((b["host"], b["port"]) for b in brokers) == sorted(
            ("127.0.0.1", p) for p in module_broker.ports)
        assert cluster["cluster_id"]
        # One answer from every broker; each partition is listed by the one
        # broker holding it (in a cluster, its leader), as in Kafka.
        res = adm.describe_log_dirs({topic_name: [0, 1]})
        assert sorted(r["broker"] for r in res) == sorted(b["broker_id"] for b in brokers)
        listed = []
        for r in res:
            dirs = r["log_dirs"]
            assert dirs and all(d["error_code"] == 0 for d in dirs), dirs
            for d in dirs:
                for t in d["topics"]:
                    if t["name"] == topic_name:
                        listed += [(part["partition_index"], part["partition_size"], r["broker"])
                                   for part in t["partitions"]]
        assert sorted(p for p, _, _ in listed) == [0, 1], listed
        sizes = {p: size for p, size, _ in listed}
        assert sizes[0] >= 50 * 1000, listed   # at least the payload bytes
        assert sizes[1] == 0, listed
    finally:
        adm.close()

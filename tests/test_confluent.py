"""confluent-kafka (librdkafka) against Weir: data path, admin API and errors."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException,
                             Producer, TopicCollection, TopicPartition,
                             TIMESTAMP_LOG_APPEND_TIME)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic, OffsetSpec)

from weir_helpers import (Rec, admin, assert_same_records, by_partition, consume_range,
                          consumer_conf, create_topic, gen_records, kafka_error_code,
                          produce_records, producer_conf, recent_base_ts, wait_until,
                          watermarks)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N_MESSAGES = 100_000
PARTITIONS = 6

# Kafka's defaults, which a topic without overrides must report.
KAFKA_DEFAULT_RETENTION_MS = "604800000"
KAFKA_DEFAULT_SEGMENT_BYTES = "1073741824"
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = "1048588"


def topic_configs(adm, topic) -> dict:
    """DescribeConfigs for a topic. librdkafka always sets include_synonyms
    (DescribeConfigs v1+), so entries carry their synonyms."""
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return adm.describe_configs([res], request_timeout=15)[res].result(15)


def synonyms_of(entry: ConfigEntry) -> list:
    s = entry.synonyms
    return list(s.values()) if isinstance(s, dict) else list(s or [])


def expect_kafka_error(fut, *codes, timeout=15):
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout)
    code = kafka_error_code(ei.value)
    assert code in codes, f"expected one of {codes}, got {code} ({ei.value})"
    return ei.value


def topic_names(adm) -> set:
    return set(adm.list_topics(timeout=10).topics)


# --- data path -------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip_100k_each_codec(module_broker, topic_name, codec):
    """100k awkward records over 6 partitions, acks=all, byte-for-byte back."""
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, PARTITIONS)
    records = gen_records(seed=1000 + CODECS.index(codec), n=N_MESSAGES,
                          partitions=PARTITIONS, base_ts=recent_base_ts())
    p = Producer(producer_conf(bs, **{"compression.type": codec}))
    log = produce_records(p, topic_name, records)
    assert not log.failed, f"{len(log.failed)} deliveries failed, first: {log.failed[:3]}"
    assert len(log.ok) == N_MESSAGES

    expected = by_partition(records, PARTITIONS)
    # Delivery reports: offsets per partition are 0..n-1 in production order.
    delivered = {p_: [] for p_ in range(PARTITIONS)}
    for idx, part, off in sorted(log.ok):
        delivered[part].append(off)
    for part in range(PARTITIONS):
        assert delivered[part] == list(range(len(expected[part]))), f"partition {part} acked offsets"

    got = consume_range(bs, topic_name, range(PARTITIONS))
    c = Consumer(consumer_conf(bs))
    try:
        for part in range(PARTITIONS):
            assert watermarks(c, topic_name, part) == (0, len(expected[part]))
            assert_same_records(expected[part], got[part], part)
    finally:
        c.close()


@pytest.mark.parametrize("acks", ["0", "1"])
def test_roundtrip_acks_0_and_1(module_broker, topic_name, acks):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 2)
    records = gen_records(seed=7 + int(acks), n=2000, partitions=2, base_ts=recent_base_ts())
    log = produce_records(Producer(producer_conf(bs, acks=acks)), topic_name, records)
    assert not log.failed and len(log.ok) == len(records)
    # With acks=0 there is no response, so the offsets librdkafka reports
    # mean nothing: it counts up from OFFSET_INVALID (-1001) within each
    # batch, so a batch of more than 1001 records shows offsets 0, 1, ...
    # Only the data in the log is checked.
    expected = by_partition(records, 2)
    # acks=0 is fire-and-forget: wait until the broker has appended everything.
    c = Consumer(consumer_conf(bs))
    try:
        for part in range(2):
            wait_until(lambda: watermarks(c, topic_name, part)[1] == len(expected[part]),
                       what=f"high watermark of partition {part}")
    finally:
        c.close()
    got = consume_range(bs, topic_name, range(2))
    for part in range(2):
        assert_same_records(expected[part], got[part], part)


def test_read_uncommitted_and_committed_see_same_data(module_broker, topic_name):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1)
    records = gen_records(seed=11, n=500, partitions=1, base_ts=recent_base_ts())
    produce_records(Producer(producer_conf(bs)), topic_name, records)
    for level in ("read_uncommitted", "read_committed"):
        got = consume_range(bs, topic_name, [0], **{"isolation.level": level})
        assert_same_records(records, got[0], 0)


def test_fetch_from_middle_of_batch(module_broker, topic_name):
    """One 10-record batch; consuming from offset 5 must deliver 5..9.

    The broker returns whole batches; librdkafka drops records before the
    requested offset client-side. If the broker returned nothing for an offset
    inside a batch, the consumer would never get offset 5."""
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1)
    base = recent_base_ts()
    p = Producer(producer_conf(bs, **{"linger.ms": 2000}))
    for i in range(10):
        p.produce(topic_name, partition=0, key=b"k%d" % i, value=b"v%d" % i, timestamp=base + i)
    assert p.flush(30) == 0
    got = consume_range(bs, topic_name, [0], start={0: 5})[0]
    assert [(g.offset, g.key, g.value, g.timestamp) for g in got] == \
        [(i, b"k%d" % i, b"v%d" % i, base + i) for i in range(5, 10)]
    got = consume_range(bs, topic_name, [0], start={0: 9})[0]
    assert [(g.offset, g.value) for g in got] == [(9, b"v9")]


def test_long_poll_wakes_up_on_produce(module_broker, topic_name):
    """A fetch waiting at the log end (fetch.wait.max.ms=5000) must return as
    soon as data arrives, like Kafka's fetch purgatory, not at the timeout."""
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1)
    c = Consumer(consumer_conf(bs, **{"fetch.wait.max.ms": 5000}))
    try:
        c.assign([TopicPartition(topic_name, 0, 0)])
        m = c.poll(1.0)  # a long poll is now parked on the broker
        assert m is None or m.error() is not None, "unexpected record in an empty topic"
        p = Producer(producer_conf(bs, **{"linger.ms": 0}))
        latencies = []
        for i in range(3):
            time.sleep(0.5)
            p.produce(topic_name, partition=0, value=b"ping%d" % i)
            assert p.flush(10) == 0
            sent = time.monotonic()
            msg = None
            while msg is None and time.monotonic() - sent < 15:
                msg = c.poll(0.1)
                if msg is not None and msg.error():
                    msg = None
            assert msg is not None and msg.value() == b"ping%d" % i
            latencies.append(time.monotonic() - sent)
        assert max(latencies) < 2.0, f"fetch did not wake up on new data: latencies {latencies}"
    finally:
        c.close()


def test_fetch_size_limits_still_make_progress(module_broker, topic_name):
    """Batches bigger than fetch.max.bytes / max.partition.fetch.bytes are still
    returned (KIP-74: the first batch is always returned whole)."""
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 2)
    base = recent_base_ts()
    recs = [Rec(i % 2, b"k%d" % i, bytes([i]) * (200_000 if i % 3 else 900_000), (), base + i)
            for i in range(12)]
    log = produce_records(Producer(producer_conf(bs, **{"compression.type": "none",
                                                         "linger.ms": 0})), topic_name, recs)
    assert not log.failed, log.failed[:3]
    got = consume_range(bs, topic_name, range(2), **{"fetch.max.bytes": 1024, "message.max.bytes": 1000,
                                                     "max.partition.fetch.bytes": 1024,
                                                     "receive.message.max.bytes": 2_000_000})
    expected = by_partition(recs, 2)
    for part in range(2):
        assert_same_records(expected[part], got[part], part)


def test_many_partitions(module_broker, topic_name):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 64)
    recs = [Rec(p_, b"%d" % p_, b"partition %d" % p_, (("p", b"%d" % p_),), recent_base_ts() + p_)
            for p_ in range(64) for _ in range(3)]
    assert not produce_records(Producer(producer_conf(bs)), topic_name, recs).failed
    got = consume_range(bs, topic_name, range(64))
    expected = by_partition(recs, 64)
    for p_ in range(64):
        assert_same_records(expected[p_], got[p_], p_)


def test_fetch_out_of_range(module_broker, topic_name):
    """Fetching below the log start or past the high watermark is
    OFFSET_OUT_OF_RANGE (surfaced by librdkafka with auto.offset.reset=error)."""
    bs = module_broker.bootstrap
    adm = admin(bs)
    create_topic(adm, topic_name, 1)
    recs = [Rec(0, None, b"%d" % i, (), recent_base_ts() + i) for i in range(20)]
    assert not produce_records(Producer(producer_conf(bs)), topic_name, recs).failed
    tp = TopicPartition(topic_name, 0, 10)
    adm.delete_records([tp], request_timeout=15)[tp].result(15)
    for start in (3, 25):
        c = Consumer(consumer_conf(bs, **{"auto.offset.reset": "error"}))
        try:
            c.assign([TopicPartition(topic_name, 0, start)])
            err = None
            deadline = time.monotonic() + 15
            while err is None and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None:
                    assert m.error() is not None, f"got a record at {m.offset()} from start {start}"
                    err = m.error()
            assert err is not None, f"no error fetching from offset {start}"
            assert err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), err
        finally:
            c.close()


def test_invalid_required_acks(module_broker, topic_name):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1)
    errs = []
    p = Producer(producer_conf(bs, acks=2, retries=0))
    p.produce(topic_name, partition=0, value=b"x", on_delivery=lambda e, m: errs.append(e))
    assert p.flush(30) == 0
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.INVALID_REQUIRED_ACKS, errs


def test_log_append_time_topic(module_broker, topic_name):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    p = Producer(producer_conf(bs))
    for i in range(5):
        p.produce(topic_name, partition=0, value=b"x%d" % i, timestamp=1_000_000 + i)
    assert p.flush(30) == 0
    after = int(time.time() * 1000)
    got = consume_range(bs, topic_name, [0])[0]
    assert [g.value for g in got] == [b"x%d" % i for i in range(5)]
    for g in got:
        assert g.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= g.timestamp <= after + 1000, (g.timestamp, before, after)


def test_message_too_large(module_broker, topic_name):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1, config={"max.message.bytes": "1000"})
    results = []
    p = Producer(producer_conf(bs, **{"compression.type": "none", "linger.ms": 0}))
    p.produce(topic_name, partition=0, value=b"s" * 100, on_delivery=lambda e, m: results.append(e))
    assert p.flush(30) == 0
    p.produce(topic_name, partition=0, value=b"L" * 5000, on_delivery=lambda e, m: results.append(e))
    assert p.flush(30) == 0
    assert results[0] is None, f"small message failed: {results[0]}"
    assert results[1] is not None and results[1].code() == KafkaError.MSG_SIZE_TOO_LARGE, results[1]
    got = consume_range(bs, topic_name, [0])[0]
    assert [g.value for g in got] == [b"s" * 100]


# --- admin -----------------------------------------------------------------------------


def test_create_topic_with_configs_describe_topics_and_configs(module_broker, topic_name):
    adm = admin(module_broker.bootstrap)
    create_topic(adm, topic_name, 4, config={"retention.ms": "3600000",
                                             "cleanup.policy": "compact"})
    cluster = adm.describe_cluster(request_timeout=15).result(15)
    assert len(cluster.nodes) == len(module_broker.ports)
    node_ids = {n.id for n in cluster.nodes}

    desc = adm.describe_topics(TopicCollection([topic_name]), request_timeout=15)[topic_name].result(15)
    assert desc.name == topic_name
    assert not desc.is_internal
    assert [p.id for p in desc.partitions] == [0, 1, 2, 3]
    for p in desc.partitions:
        # One replica, the leader (on one node, that node).
        assert p.leader.id in node_ids
        assert [r.id for r in p.replicas] == [p.leader.id]
        assert [r.id for r in p.isr] == [p.leader.id]

    cfg = topic_configs(adm, topic_name)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not cfg["retention.ms"].is_default
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["segment.bytes"].value == KAFKA_DEFAULT_SEGMENT_BYTES
    assert cfg["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert cfg["segment.bytes"].is_default
    assert cfg["max.message.bytes"].value == KAFKA_DEFAULT_MAX_MESSAGE_BYTES

    syn = synonyms_of(cfg["retention.ms"])
    assert syn, "retention.ms has no synonyms (librdkafka sets include_synonyms)"
    assert syn[0].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and syn[0].value == "3600000"
    assert any(s.source == ConfigSource.DEFAULT_CONFIG.value for s in syn), \
        [(s.name, s.value, s.source) for s in syn]
    syn = synonyms_of(cfg["segment.bytes"])
    assert [s.source for s in syn] == [ConfigSource.DEFAULT_CONFIG.value], \
        [(s.name, s.value, s.source) for s in syn]
    assert syn[0].name == "log.segment.bytes" and syn[0].value == KAFKA_DEFAULT_SEGMENT_BYTES


def test_static_broker_config_is_topic_default(target_factory, topic_name):
    b = target_factory("--set", "log.segment.bytes=1048576", "--set", "num.partitions=3")
    adm = admin(b.bootstrap)
    fs = adm.create_topics([NewTopic(topic_name)], request_timeout=15)  # broker-default partitions
    fs[topic_name].result(15)
    assert len(adm.list_topics(topic=topic_name, timeout=10).topics[topic_name].partitions) == 3
    cfg = topic_configs(adm, topic_name)
    assert cfg["segment.bytes"].value == "1048576"
    assert cfg["segment.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value


def test_create_topic_validate_only(module_broker, topic_name):
    adm = admin(module_broker.bootstrap)
    fs = adm.create_topics([NewTopic(topic_name, 3, 1, config={"retention.ms": "1000"})],
                           validate_only=True, request_timeout=15)
    assert fs[topic_name].result(15) is None
    assert topic_name not in topic_names(adm)
    # validate_only still validates.
    fs = adm.create_topics([NewTopic(topic_name, 3, 1, config={"no.such.config": "1"})],
                           validate_only=True, request_timeout=15)
    expect_kafka_error(fs[topic_name], KafkaError.INVALID_CONFIG)
    assert topic_name not in topic_names(adm)


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
def test_alter_configs_replaces_whole_set(module_broker, topic_name):
    adm = admin(module_broker.bootstrap)
    create_topic(adm, topic_name, 1, config={"retention.ms": "3600000", "cleanup.policy": "compact"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "7200000"})
    adm.alter_configs([res], request_timeout=15)[res].result(15)
    cfg = topic_configs(adm, topic_name)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Non-incremental AlterConfigs replaces the topic's whole override set.
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "abc"})
    expect_kafka_error(adm.alter_configs([bad], request_timeout=15)[bad], KafkaError.INVALID_CONFIG)
    assert topic_configs(adm, topic_name)["retention.ms"].value == "7200000"


def test_incremental_alter_configs(module_broker, topic_name):
    adm = admin(module_broker.bootstrap)
    create_topic(adm, topic_name, 1, config={"retention.ms": "3600000", "cleanup.policy": "compact"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    adm.incremental_alter_configs([res], request_timeout=15)[res].result(15)
    # As with Kafka, brokers other than the one that answered apply the
    # change a moment later (a cluster target), and DescribeConfigs may
    # go to any of them.
    cfg = wait_until(lambda: (c := topic_configs(adm, topic_name))["max.message.bytes"].value == "2000" and c,
                     what="max.message.bytes=2000 described")
    assert (cfg["max.message.bytes"].value, cfg["max.message.bytes"].source) == \
        ("2000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert (cfg["retention.ms"].value, cfg["retention.ms"].source) == \
        (KAFKA_DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG.value)
    # Untouched override stays.
    assert (cfg["cleanup.policy"].value, cfg["cleanup.policy"].source) == \
        ("compact", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)

    # The new max.message.bytes is enforced (by the partition's leader, once
    # it has the change: until then a record may still be taken).
    p = Producer(producer_conf(module_broker.bootstrap, **{"compression.type": "none"}))

    def refused():
        results = []
        p.produce(topic_name, partition=0, key=b"k", value=b"x" * 3000,
                  on_delivery=lambda e, m: results.append(e))
        assert p.flush(30) == 0
        assert results[0] is None or results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, results[0]
        return results[0] is not None
    wait_until(refused, what="a 3000-byte record refused")

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    expect_kafka_error(adm.incremental_alter_configs([bad], request_timeout=15)[bad],
                       KafkaError.INVALID_CONFIG)


def test_create_partitions(module_broker, topic_name):
    bs = module_broker.bootstrap
    adm = admin(bs)
    create_topic(adm, topic_name, 2)
    fs = adm.create_partitions([NewPartitions(topic_name, 5)], validate_only=True,
                               request_timeout=15)
    fs[topic_name].result(15)
    assert len(adm.list_topics(topic=topic_name, timeout=10).topics[topic_name].partitions) == 2
    fs = adm.create_partitions([NewPartitions(topic_name, 5)], request_timeout=15)
    fs[topic_name].result(15)
    wait_until(lambda: len(adm.list_topics(topic=topic_name, timeout=10).topics[topic_name].partitions) == 5,
               what="5 partitions in metadata")
    desc = adm.describe_topics(TopicCollection([topic_name]), request_timeout=15)[topic_name].result(15)
    assert [p.id for p in desc.partitions] == [0, 1, 2, 3, 4]
    # The new partitions take data.
    records = [Rec(p_, b"k%d" % p_, b"v%d" % p_, (), recent_base_ts() + p_) for p_ in range(5)]
    log = produce_records(Producer(producer_conf(bs)), topic_name, records)
    assert not log.failed
    got = consume_range(bs, topic_name, range(5))
    for p_ in range(5):
        assert_same_records([records[p_]], got[p_], p_)
    # Shrinking is invalid.
    fs = adm.create_partitions([NewPartitions(topic_name, 3)], request_timeout=15)
    expect_kafka_error(fs[topic_name], KafkaError.INVALID_PARTITIONS)
    fs = adm.create_partitions([NewPartitions(topic_name + "-missing", 3)], request_timeout=15)
    expect_kafka_error(fs[topic_name + "-missing"], KafkaError.UNKNOWN_TOPIC_OR_PART)


def test_delete_topic_and_recreate_empty(module_broker, topic_name):
    bs = module_broker.bootstrap
    adm = admin(bs)
    create_topic(adm, topic_name, 3)
    records = gen_records(seed=5, n=300, partitions=3, base_ts=recent_base_ts())
    assert not produce_records(Producer(producer_conf(bs)), topic_name, records).failed
    adm.delete_topics([topic_name], request_timeout=15)[topic_name].result(15)
    wait_until(lambda: topic_name not in topic_names(adm), what="topic gone from metadata")
    md = Consumer(consumer_conf(bs))  # consumer metadata requests never auto-create
    try:
        t = md.list_topics(topic=topic_name, timeout=10).topics[topic_name]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        md.close()
    fs = adm.delete_topics([topic_name], request_timeout=15)
    expect_kafka_error(fs[topic_name], KafkaError.UNKNOWN_TOPIC_OR_PART)

    create_topic(adm, topic_name, 2)
    c = Consumer(consumer_conf(bs))
    try:
        for part in range(2):
            assert watermarks(c, topic_name, part) == (0, 0)
    finally:
        c.close()
    fresh = [Rec(0, b"new", b"data", (), recent_base_ts())]
    assert not produce_records(Producer(producer_conf(bs)), topic_name, fresh).failed
    assert_same_records(fresh, consume_range(bs, topic_name, [0])[0], 0)


def test_list_offsets_specs(module_broker, topic_name):
    bs = module_broker.bootstrap
    adm = admin(bs)
    create_topic(adm, topic_name, 1)
    t0 = recent_base_ts()
    ts = [t0 + 100 * i for i in range(10)]                      # batch A: offsets 0-9
    ts += [t0 + 10_000 + 100 * i for i in range(10)]            # batch B: offsets 10-19
    c_ts = [t0 + 20_000 + 100 * i for i in range(10)]           # batch C: offsets 20-29
    c_ts[5] = t0 + 50_000                                       # offset 25 has the max timestamp
    ts += c_ts
    p = Producer(producer_conf(bs, **{"linger.ms": 1000}))
    for batch in range(3):
        for off in range(batch * 10, batch * 10 + 10):
            p.produce(topic_name, partition=0, value=b"%d" % off, timestamp=ts[off])
        assert p.flush(30) == 0  # one batch each

    tp = TopicPartition(topic_name, 0)

    def q(spec):
        return adm.list_offsets({tp: spec}, request_timeout=15)[tp].result(15)

    assert q(OffsetSpec.earliest()).offset == 0
    assert q(OffsetSpec.latest()).offset == 30
    r = q(OffsetSpec.for_timestamp(t0 + 10_500))     # exact hit inside batch B
    assert (r.offset, r.timestamp) == (15, t0 + 10_500)
    r = q(OffsetSpec.for_timestamp(t0 + 10_550))     # between records -> next one
    assert (r.offset, r.timestamp) == (16, t0 + 10_600)
    r = q(OffsetSpec.for_timestamp(t0 - 1))          # before everything -> first
    assert (r.offset, r.timestamp) == (0, t0)
    r = q(OffsetSpec.for_timestamp(t0 + 5_000))      # in the gap between batches A and B
    assert (r.offset, r.timestamp) == (10, t0 + 10_000)
    r = q(OffsetSpec.for_timestamp(t0 + 20_550))     # first offset with ts >= target is 25
    assert (r.offset, r.timestamp) == (25, t0 + 50_000)
    r = q(OffsetSpec.for_timestamp(t0 + 50_001))     # nothing that late
    assert r.offset == -1
    r = q(OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (25, t0 + 50_000)


def test_delete_records(module_broker, topic_name):
    bs = module_broker.bootstrap
    adm = admin(bs)
    create_topic(adm, topic_name, 2)
    records = [Rec(i % 2, None, b"%d" % i, (), recent_base_ts() + i) for i in range(60)]
    assert not produce_records(Producer(producer_conf(bs)), topic_name, records).failed

    tp0 = TopicPartition(topic_name, 0, 12)
    res = adm.delete_records([tp0], request_timeout=15)
    assert res[tp0].result(15).low_watermark == 12
    tp = TopicPartition(topic_name, 0)
    assert adm.list_offsets({tp: OffsetSpec.earliest()})[tp].result(15).offset == 12
    assert adm.list_offsets({tp: OffsetSpec.latest()})[tp].result(15).offset == 30
    got = consume_range(bs, topic_name, [0])[0]
    assert [g.offset for g in got] == list(range(12, 30))
    assert [g.value for g in got] == [b"%d" % (2 * o) for o in range(12, 30)]
    # Partition 1 untouched.
    tp1 = TopicPartition(topic_name, 1)
    assert adm.list_offsets({tp1: OffsetSpec.earliest()})[tp1].result(15).offset == 0

    # Beyond the high watermark is out of range.
    bad = TopicPartition(topic_name, 0, 31)
    expect_kafka_error(adm.delete_records([bad], request_timeout=15)[bad],
                       KafkaError.OFFSET_OUT_OF_RANGE)
    # OFFSET_END (-1) deletes everything up to the high watermark.
    all_ = TopicPartition(topic_name, 0, -1)
    assert adm.delete_records([all_], request_timeout=15)[all_].result(15).low_watermark == 30
    c = Consumer(consumer_conf(bs))
    try:
        assert watermarks(c, topic_name, 0) == (30, 30)
    finally:
        c.close()


def test_describe_cluster_and_metadata(module_broker):
    adm = admin(module_broker.bootstrap)
    cluster = adm.describe_cluster(request_timeout=15).result(15)
    assert cluster.cluster_id, "empty cluster id"
    # Every broker of the target, each once.
    addresses = sorted(("127.0.0.1", p) for p in module_broker.ports)
    assert sorted((n.host, n.port) for n in cluster.nodes) == addresses
    ids = {n.id for n in cluster.nodes}
    assert len(ids) == len(addresses), cluster.nodes
    assert cluster.controller is not None and cluster.controller.id in ids
    md = adm.list_topics(timeout=10)
    assert md.cluster_id == cluster.cluster_id
    assert set(md.brokers) == ids
    for n in cluster.nodes:
        assert (md.brokers[n.id].host, md.brokers[n.id].port) == (n.host, n.port)


# --- errors --------------------------------------------------------------------------


def test_create_existing_topic(module_broker, topic_name):
    adm = admin(module_broker.bootstrap)
    create_topic(adm, topic_name, 1)
    fs = adm.create_topics([NewTopic(topic_name, 2)], request_timeout=15)
    expect_kafka_error(fs[topic_name], KafkaError.TOPIC_ALREADY_EXISTS)
    # Unchanged.
    assert len(adm.list_topics(topic=topic_name, timeout=10).topics[topic_name].partitions) == 1


@pytest.mark.parametrize("name", ["bad name", "..", ".", "a" * 250, "slash/topic", "t\u00e9st"],
                         ids=["space", "dotdot", "dot", "250chars", "slash", "non-ascii"])
def test_invalid_topic_names(module_broker, name):
    adm = admin(module_broker.bootstrap)
    fs = adm.create_topics([NewTopic(name, 1)], request_timeout=15)
    expect_kafka_error(fs[name], KafkaError.TOPIC_EXCEPTION)
    assert name not in topic_names(adm)


def test_longest_valid_topic_name(module_broker):
    adm = admin(module_broker.bootstrap)
    name = "b" * 249
    create_topic(adm, name, 1)
    assert name in topic_names(adm)


def test_invalid_partitions_and_replication(module_broker, topic_name):
    adm = admin(module_broker.bootstrap)
    fs = adm.create_topics([NewTopic(topic_name, 0)], request_timeout=15)
    expect_kafka_error(fs[topic_name], KafkaError.INVALID_PARTITIONS)
    assert topic_name not in topic_names(adm)
    # -1 means "broker default" (num.partitions, 1 unless configured).
    fs = adm.create_topics([NewTopic(topic_name, -1)], request_timeout=15)
    fs[topic_name].result(15)
    assert len(adm.list_topics(topic=topic_name, timeout=10).topics[topic_name].partitions) == 1
    # One more replica than there are brokers.
    brokers = len(adm.list_topics(timeout=10).brokers)
    fs = adm.create_topics([NewTopic(topic_name + "-rf", 1, replication_factor=brokers + 1)],
                           request_timeout=15)
    expect_kafka_error(fs[topic_name + "-rf"], KafkaError.INVALID_REPLICATION_FACTOR)


@pytest.mark.parametrize("config", [{"no.such.config": "1"}, {"retention.ms": "abc"},
                                    {"cleanup.policy": "sometimes"}],
                         ids=["unknown-key", "bad-number", "bad-enum"])
def test_invalid_topic_config(module_broker, topic_name, config):
    adm = admin(module_broker.bootstrap)
    fs = adm.create_topics([NewTopic(topic_name, 1, config=config)], request_timeout=15)
    expect_kafka_error(fs[topic_name], KafkaError.INVALID_CONFIG)
    assert topic_name not in topic_names(adm)


def test_auto_create_enabled(target_factory, topic_name):
    b = target_factory("--set", "num.partitions=3")
    # A consumer's Metadata request has allow_auto_topic_creation=false: no topic.
    c = Consumer(consumer_conf(b.bootstrap))
    try:
        t = c.list_topics(topic=topic_name, timeout=10).topics[topic_name]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        c.close()
    assert topic_name not in topic_names(admin(b.bootstrap))
    # A producer's Metadata request asks for creation: the topic appears with num.partitions.
    rec = Rec(2, b"k", b"auto", (), recent_base_ts())
    log = produce_records(Producer(producer_conf(b.bootstrap)), topic_name, [rec])
    assert not log.failed, log.failed
    assert len(admin(b.bootstrap).list_topics(topic=topic_name, timeout=10)
               .topics[topic_name].partitions) == 3
    assert_same_records([rec], consume_range(b.bootstrap, topic_name, [2])[2], 2)


def test_auto_create_disabled(target_factory, topic_name):
    b = target_factory("--set", "auto.create.topics.enable=false")
    adm = admin(b.bootstrap)
    # AdminClient metadata requests allow auto-creation; the broker must refuse.
    t = adm.list_topics(topic=topic_name, timeout=10).topics[topic_name]
    assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    errors = []
    p = Producer(producer_conf(b.bootstrap, **{"message.timeout.ms": 5000,
                                               "topic.metadata.propagation.max.ms": 1000}))
    p.produce(topic_name, value=b"nowhere", on_delivery=lambda e, m: errors.append(e))
    assert p.flush(30) == 0
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                ), errors[0]
    assert topic_name not in topic_names(adm)
    # Explicit creation still works.
    create_topic(adm, topic_name, 2)
    rec = Rec(1, None, b"explicit", (), recent_base_ts())
    assert not produce_records(Producer(producer_conf(b.bootstrap)), topic_name, [rec]).failed
    assert_same_records([rec], consume_range(b.bootstrap, topic_name, [1])[1], 1)

"""Client compatibility (issue 18) with librdkafka through confluent-kafka:
record-level produce errors (KIP-467), Kafka 4's full topic config set and
broker-side compression (topic compression.type); legacy message sets
(kafka-python's builder, raw Produce requests) refused.
The Java client's side is in test_java_client.py."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import ConfigResource, NewTopic
from kafka.record.memory_records import MemoryRecordsBuilder

import kafka_wire as kw

from weir_helpers import (admin, assert_same_records, consume_range, create_topic, gen_records,
                          produce_records, producer_conf, recent_base_ts)

# Every topic config Kafka 4 documents (TopicConfig in kafka-clients 4.3,
# plus LogConfig's replication throttles), with Kafka's defaults.
KAFKA_4_TOPIC_DEFAULTS = {
    "cleanup.policy": "delete", "compression.type": "producer",
    "compression.gzip.level": "-1", "compression.lz4.level": "9", "compression.zstd.level": "3",
    "delete.retention.ms": "86400000", "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807", "flush.ms": "9223372036854775807",
    "follower.replication.throttled.replicas": "", "leader.replication.throttled.replicas": "",
    "index.interval.bytes": "4096", "local.retention.bytes": "-2", "local.retention.ms": "-2",
    "max.compaction.lag.ms": "9223372036854775807", "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime", "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0", "min.insync.replicas": "1", "preallocate": "false",
    "remote.log.copy.disable": "false", "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false", "retention.bytes": "-1", "retention.ms": "604800000",
    "segment.bytes": "1073741824", "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0", "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}


def describe(adm, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return adm.describe_configs([res], request_timeout=15)[res].result(15)


def test_every_kafka_4_topic_config_is_described_with_its_default(module_broker, topic_name):
    adm = admin(module_broker.bootstrap)
    create_topic(adm, topic_name, 1)
    cfg = describe(adm, topic_name)
    missing = sorted(set(KAFKA_4_TOPIC_DEFAULTS) - set(cfg))
    assert not missing, f"not described: {missing}"
    wrong = {k: cfg[k].value for k, v in KAFKA_4_TOPIC_DEFAULTS.items() if cfg[k].value != v}
    assert not wrong
    assert all(cfg[k].is_default for k in KAFKA_4_TOPIC_DEFAULTS)


def test_kafka_4_topic_configs_and_kafka_3_leniency_are_accepted(module_broker, topic_name):
    """What librdkafka's tests (0092, 0129) and tools set at creation."""
    adm = admin(module_broker.bootstrap)
    config = {"segment.jitter.ms": "1000", "preallocate": "true",
              "unclean.leader.election.enable": "true", "compression.zstd.level": "9",
              "local.retention.ms": "1000", "remote.log.copy.disable": "false",
              "message.format.version": "0.10.0", "segment.bytes": "20000"}
    fs = adm.create_topics([NewTopic(topic_name, 1, config=config)], request_timeout=15)
    fs[topic_name].result(15)
    cfg = describe(adm, topic_name)
    for k, v in config.items():
        assert (cfg[k].value, cfg[k].is_default) == (v, False), k
    # Kafka without tiered storage refuses remote.storage.enable=true.
    bad = f"{topic_name}-tiered"
    fs = adm.create_topics([NewTopic(bad, 1, config={"remote.storage.enable": "true"})],
                           request_timeout=15)
    err = fs[bad].exception(15)
    assert err is not None and err.args[0].code() == KafkaError.INVALID_CONFIG


def test_keyless_records_on_a_compacted_topic_fail_alone(module_broker, topic_name):
    """KIP-467 as librdkafka's test 0011 (test_message_single_partition_record_fail)
    checks it: one batch of 100 records to a compacted topic, every tenth
    without a key. The broker names the ten bad records; librdkafka fails
    them with INVALID_RECORD and the other 90 with _INVALID_DIFFERENT_RECORD."""
    adm = admin(module_broker.bootstrap)
    create_topic(adm, topic_name, 1, config={"cleanup.policy": "compact"})
    outcomes: dict[int, int] = {}
    p = Producer(producer_conf(module_broker.bootstrap, linger_ms=1000, retries=0))
    # Metadata first: records queued longer than linger.ms while it is
    # fetched (a loaded machine) go out in batches of their own.
    p.list_topics(topic_name, timeout=30)
    for i in range(100):
        def cb(err, _msg, i=i):
            outcomes[i] = err.code() if err else 0
        p.produce(topic_name, value=f"v{i}", key=None if i % 10 == 0 else f"k{i}",
                  partition=0, on_delivery=cb)
    assert p.flush(60) == 0
    bad = {i for i, c in outcomes.items() if c == KafkaError.INVALID_RECORD}
    different = {i for i, c in outcomes.items() if c == KafkaError._INVALID_DIFFERENT_RECORD}
    assert bad == set(range(0, 100, 10)), outcomes
    assert len(different) == 90, outcomes


def stored_codecs(broker, topic: str) -> set[int]:
    """The codec (attribute bits 0-2) of every batch in partition 0's
    segments, read from the data directory (Kafka's batch format on disk,
    docs/storage-format.md)."""
    codecs = set()
    for seg in sorted((broker.data_dir / f"{topic}-0").glob("*.log")):
        data, pos = seg.read_bytes(), 0
        while pos + 61 <= len(data):
            length = int.from_bytes(data[pos + 8:pos + 12], "big")
            if length <= 0:
                break
            codecs.add(int.from_bytes(data[pos + 21:pos + 23], "big") & 7)
            pos += 12 + length
    return codecs


CODEC_BITS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.mark.single_node("reads the stored batches from the node's data directory")
@pytest.mark.parametrize("topic_codec,producer_codec", [
    ("lz4", "none"), ("zstd", "gzip"), ("gzip", "lz4"), ("snappy", "zstd"),
    ("uncompressed", "snappy"), ("zstd", "zstd")])
def test_topic_compression_type_recompresses(module_broker, topic_name, topic_codec,
                                              producer_codec):
    """Kafka's topic compression.type: batches in another codec are stored
    recompressed (librdkafka's test 0081 creates topics with
    compression.type=lz4), and consumers read the same records."""
    adm = admin(module_broker.bootstrap)
    config = {"compression.type": topic_codec}
    if topic_codec == "zstd":
        config["compression.zstd.level"] = "10"
    create_topic(adm, topic_name, 1, config=config)
    records = gen_records(7, 300, 1, recent_base_ts())
    p = Producer(producer_conf(module_broker.bootstrap, compression_type=producer_codec))
    produce_records(p, topic_name, records)
    got = consume_range(module_broker.bootstrap, topic_name, [0])
    assert_same_records(records, got[0], 0)
    assert stored_codecs(module_broker, topic_name) == {CODEC_BITS[topic_codec]}


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("topic_codec", ["producer", "lz4"])
def test_legacy_message_sets_are_refused(module_broker, topic_name, magic, topic_codec):
    """Message sets in the pre-0.11 formats (magic 0 and 1, here gzip
    compressed, as kafka-python builds them) are refused with
    UNSUPPORTED_FOR_MESSAGE_FORMAT on every topic, including one whose
    compression.type would have the broker recompress them, and nothing is
    appended; a record batch (magic 2) is then accepted at offset 0."""
    create_topic(admin(module_broker.bootstrap), topic_name, 1,
                 config={"compression.type": topic_codec})
    b = MemoryRecordsBuilder(magic=magic, compression_type=1, batch_size=1 << 20)
    for i in range(3):
        b.append(timestamp=None if magic == 0 else recent_base_ts(), key=b"k",
                 value=b"v%d" % i, headers=[])
    b.close()
    lo, hi = kw.api_versions("127.0.0.1", module_broker.port)[kw.PRODUCE]
    version = min(hi, 8)

    def produce(batch: bytes, corr: int) -> tuple[int, int]:
        with kw.connect("127.0.0.1", module_broker.port) as s:
            s.sendall(kw.produce_request(corr, version, topic_name, 0, batch))
            c, err, base = kw.parse_produce_response(kw.read_frame(s))
        assert c == corr
        return err, base

    err, _ = produce(bytes(b.buffer()), 1)
    assert err == KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT, err
    assert produce(kw.record_batch([(b"k", b"v")], recent_base_ts()), 2) == (0, 0)

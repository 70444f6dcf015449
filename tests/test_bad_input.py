"""Hostile and malformed input on raw sockets.

Expected behaviour is Apache Kafka's (SocketServer / RequestContext):
  * a size prefix < 0 or > socket.request.max.bytes (100 MiB) -> connection
    closed (InvalidReceiveException), nothing sent back
  * a frame whose header can't be parsed, an unknown API key, or a known API
    at an unsupported version -> connection closed, nothing sent back
  * ApiVersions at an unsupported version -> KIP-511: an ApiVersions *v0*
    response with error_code 35 (UNSUPPORTED_VERSION) listing at least the
    supported ApiVersions range, and the connection stays usable
In every case the broker process survives and an already-connected
confluent-kafka producer/consumer pair keeps working.
"""

from __future__ import annotations

import random
import socket
import struct

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import kafka_wire as kw
from weir_helpers import (admin, consume_range, consumer_conf, create_topic, producer_conf,
                          recent_base_ts, wait_until)

SOCKET_REQUEST_MAX_BYTES = 100 * 1024 * 1024


class Survivor:
    """A producer and an assigned consumer connected before the abuse starts."""

    def __init__(self, broker, topic):
        self.broker = broker
        self.topic = topic
        create_topic(admin(broker.bootstrap), topic, 1)
        self.producer = Producer(producer_conf(broker.bootstrap, **{"linger.ms": 0}))
        self.consumer = Consumer(consumer_conf(broker.bootstrap))
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        self.sent = 0
        self.roundtrip()

    def roundtrip(self):
        value = b"still-alive-%d" % self.sent
        errs = []
        self.producer.produce(self.topic, partition=0, value=value, timestamp=recent_base_ts(),
                              on_delivery=lambda e, m: errs.append(e))
        assert self.producer.flush(30) == 0 and errs == [None], errs
        msg = None
        for _ in range(60):
            msg = self.consumer.poll(0.5)
            if msg is not None and not msg.error():
                break
        assert msg is not None and not msg.error(), msg and msg.error()
        assert (msg.offset(), msg.value()) == (self.sent, value)
        self.sent += 1

    def check(self):
        self.broker.assert_alive()
        self.roundtrip()
        # And a brand-new connection still gets a normal ApiVersions answer.
        assert kw.api_versions_ok("127.0.0.1", self.broker.port, timeout=5)

    def close(self):
        self.consumer.close()


@pytest.fixture
def survivor(module_broker, topic_name):
    s = Survivor(module_broker, topic_name)
    yield s
    s.close()


def raw(broker) -> socket.socket:
    return kw.connect("127.0.0.1", broker.port)


# --- framing ---------------------------------------------------------------------------------

def test_http_request_is_garbage(module_broker, survivor):
    with raw(module_broker) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # size prefix 0x47455420 > 100 MiB
        assert kw.wait_closed(s) == b""
    survivor.check()


def test_random_garbage_frame(module_broker, survivor):
    rng = random.Random(99)
    body = bytearray(rng.randbytes(4096))
    body[0:2] = struct.pack(">h", 0x7F7F)  # api key that doesn't exist
    with raw(module_broker) as s:
        s.sendall(kw.frame(bytes(body)))
        assert kw.wait_closed(s) == b""
    survivor.check()


def test_truncated_frame_then_close(module_broker, survivor):
    for cut in (1, 3, 4, 10, 30):
        req = kw.api_versions_request(7, 0) + b"x" * 40
        req = struct.pack(">i", 100) + req[4:]  # claims 100 bytes
        with raw(module_broker) as s:
            s.sendall(req[:cut])
    # An abortive close (RST) half way through a frame.
    s = raw(module_broker)
    s.sendall(struct.pack(">i", 1000) + b"\x00" * 10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    survivor.check()


@pytest.mark.parametrize("size", [SOCKET_REQUEST_MAX_BYTES + 1, 200 * 1024 * 1024, 0x7FFFFFFF],
                         ids=["limit+1", "200MiB", "int32max"])
def test_oversized_frame_closes_connection(module_broker, survivor, size):
    with raw(module_broker) as s:
        s.sendall(struct.pack(">i", size) + b"\x00" * 64)
        assert kw.wait_closed(s) == b""
    survivor.check()


@pytest.mark.parametrize("size", [-1, -4, -(2 ** 31)])
def test_negative_frame_size_closes_connection(module_broker, survivor, size):
    with raw(module_broker) as s:
        s.sendall(struct.pack(">i", size) + b"\x00" * 16)
        assert kw.wait_closed(s) == b""
    survivor.check()


def test_zero_length_frame_closes_connection(module_broker, survivor):
    with raw(module_broker) as s:
        s.sendall(struct.pack(">i", 0))
        assert kw.wait_closed(s) == b""
    survivor.check()


def test_malformed_request_header(module_broker, survivor):
    # client_id length says 1000 bytes but the frame ends after 3.
    payload = struct.pack(">hhih", kw.API_VERSIONS, 0, 1, 1000) + b"abc"
    with raw(module_broker) as s:
        s.sendall(kw.frame(payload))
        assert kw.wait_closed(s) == b""
    survivor.check()


def test_many_abandoned_connections(module_broker, survivor):
    socks = []
    try:
        for i in range(200):
            s = raw(module_broker)
            s.sendall(struct.pack(">i", 50) + b"\x00\x12")  # half a header, then silence
            socks.append(s)
    finally:
        for s in socks:
            s.close()
    survivor.check()


# --- API keys / versions ----------------------------------------------------------------------

def test_unknown_api_key_closes_connection(module_broker, survivor):
    with raw(module_broker) as s:
        s.sendall(kw.frame(kw.request_header(9999, 0, 42)))
        assert kw.wait_closed(s) == b""
    survivor.check()


def test_known_api_unsupported_version_closes_connection(module_broker, survivor):
    # Metadata v99 (a flexible version number -> request header v2).
    body = b"\x01" + b"\x00" + b"\x00"  # compact array of 0 topics, allow_auto_topic_creation, tags
    with raw(module_broker) as s:
        s.sendall(kw.frame(kw.request_header(kw.METADATA, 99, 43, flexible=True) + body))
        assert kw.wait_closed(s) == b""
    survivor.check()


@pytest.mark.parametrize("version", [99, 5, 32767])
def test_api_versions_unsupported_version_kip511(module_broker, survivor, version):
    with raw(module_broker) as s:
        s.sendall(kw.api_versions_request(1234, version))
        corr, err, apis = kw.parse_api_versions_v0(kw.read_frame(s))
        assert corr == 1234
        assert err == kw.ERR_UNSUPPORTED_VERSION
        assert kw.API_VERSIONS in apis, apis
        lo, hi = apis[kw.API_VERSIONS]
        assert lo == 0 and 3 <= hi < version, (lo, hi)
        # The connection stays open: retry at a supported version on the same socket.
        s.sendall(kw.api_versions_request(1235, 0))
        corr, err, apis = kw.parse_api_versions_v0(kw.read_frame(s))
        assert (corr, err) == (1235, kw.ERR_NONE)
        assert kw.METADATA in apis and kw.API_VERSIONS in apis
    survivor.check()


# --- the happy path of the same hand-written encoder, as a control -----------------------------

REQUIRED_APIS = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions",
    19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 23: "OffsetForLeaderEpoch",
    32: "DescribeConfigs", 33: "AlterConfigs", 35: "DescribeLogDirs", 37: "CreatePartitions",
    44: "IncrementalAlterConfigs", 60: "DescribeCluster",
}


def _parse_api_versions_v3(payload: bytes):
    corr, err = struct.unpack_from(">ih", payload, 0)
    n, pos = kw.read_uvarint(payload, 6)
    apis = {}
    for _ in range(n - 1):
        key, lo, hi = struct.unpack_from(">hhh", payload, pos)
        pos = kw.skip_tags(payload, pos + 6)
        apis[key] = (lo, hi)
    (throttle,) = struct.unpack_from(">i", payload, pos)
    return corr, err, apis, throttle


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_api_versions_supported_versions(module_broker, version):
    with raw(module_broker) as s:
        s.sendall(kw.api_versions_request(77, version))
        payload = kw.read_frame(s)
    if version == 0:
        corr, err, apis = kw.parse_api_versions_v0(payload)
    elif version < 3:
        corr, err = struct.unpack_from(">ih", payload, 0)
        (n,) = struct.unpack_from(">i", payload, 6)
        apis = {}
        for i in range(n):
            key, lo, hi = struct.unpack_from(">hhh", payload, 10 + 6 * i)
            apis[key] = (lo, hi)
        (throttle,) = struct.unpack_from(">i", payload, 10 + 6 * n)
        assert len(payload) == 10 + 6 * n + 4, "trailing bytes after ApiVersions v1/v2 body"
    else:
        corr, err, apis, _ = _parse_api_versions_v3(payload)
    assert (corr, err) == (77, 0)
    missing = {name for key, name in REQUIRED_APIS.items() if key not in apis}
    assert not missing, f"not advertised: {sorted(missing)}"
    for key, (lo, hi) in apis.items():
        assert 0 <= lo <= hi, (key, lo, hi)
    assert apis[kw.API_VERSIONS][0] == 0 and apis[kw.API_VERSIONS][1] >= 3


# --- hand-made Produce requests: corrupt batches must be rejected, not stored -------------------

ERR_CORRUPT_MESSAGE = 2
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_INVALID_RECORD = 87


@pytest.fixture
def produce_raw(module_broker, topic_name):
    """Sends one Produce request (acks=-1) on a fresh connection to a fresh
    1-partition topic; returns (error_code, base_offset)."""
    topic_name = topic_name + "-raw"
    create_topic(admin(module_broker.bootstrap), topic_name, 1)
    lo, hi = kw.api_versions("127.0.0.1", module_broker.port)[kw.PRODUCE]
    version = min(hi, 8)
    assert version >= max(lo, 3), (lo, hi)
    corr = [100]

    def send(batch, partition=0):
        corr[0] += 1
        with raw(module_broker) as s:
            s.sendall(kw.produce_request(corr[0], version, topic_name, partition, batch))
            c, err, base = kw.parse_produce_response(kw.read_frame(s))
        assert c == corr[0]
        return err, base
    send.topic = topic_name
    return send


def _log_end(broker, topic) -> tuple[int, int]:
    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()


def test_handmade_batch_is_accepted(module_broker, produce_raw):
    """Control for the corrupt cases below: the same encoder, done right."""
    ts = recent_base_ts()
    assert produce_raw(kw.record_batch([(b"k0", b"v0"), (None, b"v1")], ts)) == (0, 0)
    # The client's base offset is ignored: the broker assigns offsets.
    assert produce_raw(kw.record_batch([(b"k2", None)], ts, base_offset=1234)) == (0, 2)
    c = Consumer(consumer_conf(module_broker.bootstrap))
    try:
        c.assign([TopicPartition(produce_raw.topic, 0, 0)])
        got = []
        for _ in range(60):
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.key(), m.value(), m.timestamp()[1]))
            if len(got) == 3:
                break
    finally:
        c.close()
    assert got == [(0, b"k0", b"v0", ts), (1, None, b"v1", ts + 1), (2, b"k2", None, ts)]


@pytest.mark.parametrize("case", [
    "bad-crc", "length-too-long", "magic-99",
    "count-too-high", "garbage-gzip", "truncated-record",
])
def test_corrupt_batch_rejected(module_broker, survivor, produce_raw, case):
    ts = recent_base_ts()
    recs = [(b"k", b"value-%d" % i) for i in range(5)]
    if case == "bad-crc":
        batch = kw.record_batch(recs, ts, corrupt_crc=True)
    elif case == "length-too-long":
        batch = bytearray(kw.record_batch(recs, ts))
        struct.pack_into(">i", batch, 8, struct.unpack_from(">i", batch, 8)[0] + 50)
        batch = bytes(batch)
    elif case == "count-too-high":
        batch = kw.record_batch(recs, ts, count=9)
    elif case == "garbage-gzip":
        batch = kw.record_batch(recs, ts, attributes=1,
                                records_payload=random.Random(5).randbytes(200))
    elif case == "magic-99":
        batch = kw.record_batch(recs, ts, magic=99)
    else:  # last record cut short, CRC recomputed so only the structure is wrong
        payload = b"".join(kw.record(i, i, k, v) for i, (k, v) in enumerate(recs))[:-3]
        batch = kw.record_batch(recs, ts, records_payload=payload)
    err, _ = produce_raw(batch)
    assert err != 0, f"{case}: corrupt batch was accepted"
    if case in ("bad-crc", "length-too-long", "truncated-record", "count-too-high"):
        assert err in (ERR_CORRUPT_MESSAGE, ERR_INVALID_RECORD), err
    # Nothing was appended.
    assert _log_end(module_broker, produce_raw.topic) == (0, 0)
    # A good batch on the same partition still lands at offset 0.
    assert produce_raw(kw.record_batch(recs, ts)) == (0, 0)
    survivor.check()


def test_produce_to_missing_partition(module_broker, produce_raw):
    err, _ = produce_raw(kw.record_batch([(None, b"x")], recent_base_ts()), partition=7)
    assert err == ERR_UNKNOWN_TOPIC_OR_PARTITION


# --- acks=0 Produce: no answer, but a failed partition closes the connection ------------------
# As Kafka's KafkaApis.handleProduceRequest: the client expects no response,
# so closing is how it learns that it must refresh its metadata.


def _acks0(topic: str, partition: int = 0, corr: int = 7) -> bytes:
    batch = kw.record_batch([(None, b"fire-and-forget")], recent_base_ts())
    return kw.produce_request(corr, 8, topic, partition, batch, acks=0)


def test_acks0_produce_to_a_missing_topic_closes_the_connection(module_broker, topic_name):
    # Produce never creates a topic (only Metadata does), so this topic
    # stays unknown whatever auto.create.topics.enable says.
    with raw(module_broker) as s:
        s.sendall(_acks0(topic_name + "-missing"))
        assert kw.wait_closed(s) == b""
    module_broker.assert_alive()


def test_acks0_produce_to_a_missing_partition_closes_the_connection(module_broker, topic_name):
    create_topic(admin(module_broker.bootstrap), topic_name, 1)
    with raw(module_broker) as s:
        s.sendall(_acks0(topic_name, partition=5))
        assert kw.wait_closed(s) == b""


def test_acks0_good_produce_keeps_the_connection_open(module_broker, topic_name):
    create_topic(admin(module_broker.bootstrap), topic_name, 1)
    with raw(module_broker) as s:
        s.sendall(_acks0(topic_name, corr=7))
        # No answer to the produce: the next frame is the ApiVersions one.
        s.sendall(kw.api_versions_request(8))
        corr, err, _ = kw.parse_api_versions_v0(kw.read_frame(s))
        assert (corr, err) == (8, 0)
    c = Consumer(consumer_conf(module_broker.bootstrap))
    try:
        wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10,
                                                   cached=False)[1] == 1,
                   what="the acks=0 record")
    finally:
        c.close()


def test_acks0_librdkafka_producer_recovers_when_its_topic_comes_back(module_broker, topic_name):
    """An acks=0 producer whose topic is deleted under it is disconnected,
    refreshes its metadata, and its records arrive once the topic exists
    again."""
    bs = module_broker.bootstrap
    adm = admin(bs)
    create_topic(adm, topic_name, 1)
    p = Producer(producer_conf(bs, acks="0", **{"linger.ms": 0, "message.timeout.ms": 60000}))
    p.produce(topic_name, value=b"before", partition=0)
    assert p.flush(30) == 0
    c = Consumer(consumer_conf(bs))
    tp = TopicPartition(topic_name, 0)
    try:
        # acks=0: flushed is only sent; delete the topic once it holds it.
        wait_until(lambda: c.get_watermark_offsets(tp, timeout=10, cached=False)[1] == 1,
                   what="the first record")
    finally:
        c.close()
    adm.delete_topics([topic_name], request_timeout=15)[topic_name].result(15)
    wait_until(lambda: topic_name not in adm.list_topics(timeout=10).topics,
               what="the topic deleted")
    # Sent to a topic the broker no longer has: the connection closes.
    p.produce(topic_name, value=b"lost", partition=0)
    p.flush(5)
    create_topic(adm, topic_name, 1)
    c = Consumer(consumer_conf(bs))
    try:
        def arrived():
            p.produce(topic_name, value=b"after", partition=0)
            p.flush(5)
            return c.get_watermark_offsets(tp, timeout=10, cached=False)[1] > 0
        wait_until(arrived, timeout=60, interval=0.5, what="records after the topic came back")
    finally:
        c.close()
    got = consume_range(bs, topic_name, [0])[0]
    assert got and {g.value for g in got} == {b"after"}, got

"""Client-side helpers shared by the integration tests (confluent-kafka based).

Consumers here never join a group: the broker has no group coordinator yet, so
they use assign() with explicit offsets and never commit. librdkafka insists
on a group.id string anyway, so one is set but never used for subscribe().
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, Producer,
                             TopicPartition, TIMESTAMP_CREATE_TIME)
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire

# --- configs ---------------------------------------------------------------------


def producer_conf(bootstrap: str, **overrides) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,  # broker has no InitProducerId yet
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        # One in-flight request per connection: retries can't reorder batches,
        # so per-partition order is exactly production order.
        "max.in.flight.requests.per.connection": 1,
        "message.timeout.ms": 60_000,
        "broker.address.family": "v4",
    }
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return conf


def consumer_conf(bootstrap: str, **overrides) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "weir-tests-unused",  # required by librdkafka; never subscribed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "broker.address.family": "v4",
    }
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return conf


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})


def wait_until(pred, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {last!r})")


def create_topic(adm: AdminClient, name: str, partitions: int = 1, config: dict | None = None,
                 timeout: float = 30.0) -> None:
    fs = adm.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                     config=config or {})], operation_timeout=timeout,
                           request_timeout=timeout)
    fs[name].result(timeout)
    # The topic must be visible in metadata with all partitions afterwards,
    # on every broker (in a cluster, the others learn of it a moment later,
    # and one that does not know it yet drops acks=0 records for it).
    wait_until(lambda: _partition_count(adm, name) == partitions, what=f"metadata for {name}")
    for b in adm.list_topics(timeout=10).brokers.values():
        wait_until(lambda: kafka_wire.topic_partition_count(b.host, b.port, name) == partitions,
                   what=f"metadata for {name} on {b.host}:{b.port}")


def _partition_count(adm: AdminClient, name: str) -> int | None:
    md = adm.list_topics(topic=name, timeout=10)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


# --- records ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple  # tuple of (str, bytes | None); () when none
    timestamp: int  # CreateTime, ms

    def describe(self) -> str:
        def short(b):
            return None if b is None else (b[:40] + (b"..." if len(b) > 40 else b""))
        return (f"Rec(p={self.partition}, key={short(self.key)!r}, value={short(self.value)!r} "
                f"len={None if self.value is None else len(self.value)}, headers={self.headers!r}, "
                f"ts={self.timestamp})")


HEADER_SHAPES = [
    (),
    (("trace-id", b"abc123"),),
    (("dup", b"first"), ("dup", b"second"), ("dup", b"")),   # duplicate keys, order matters
    (("null-value", None),),                                   # null header value
    (("bin", bytes(range(256))), ("utf8-\u00e9\u4e2d", b"\xff\x00\xfe")),
    (("empty", b""), ("null-value", None), ("x", b"y")),
]


def gen_records(seed: int, n: int, partitions: int, base_ts: int) -> list[Rec]:
    """n records from iter_records(); see there."""
    it = iter_records(seed, partitions, base_ts)
    return [next(it) for _ in range(n)]


def iter_records(seed: int, partitions: int, base_ts: int):
    """Endless deterministic mix of awkward records.

    Covers null keys, empty keys, binary keys, null values (tombstones), empty
    values, binary values, compressible text, a few large values, multiple /
    duplicate / null-valued headers, and explicit CreateTime timestamps that are
    mostly increasing but sometimes go backwards (allowed by Kafka)."""
    rng = random.Random(seed)
    ts = base_ts
    i = -1
    while True:
        i += 1
        r = rng.random()
        if r < 0.10:
            key = None
        elif r < 0.15:
            key = b""
        elif r < 0.60:
            key = b"key-%d" % i
        else:
            key = rng.randbytes(rng.randint(1, 40))
        r = rng.random()
        if r < 0.05:
            value = None
        elif r < 0.10:
            value = b""
        elif r < 0.50:
            value = rng.randbytes(rng.randint(1, 300))
        elif r < 0.995:
            value = (b"value %d lorem ipsum dolor sit amet " % i) * rng.randint(1, 12)
        else:
            value = rng.randbytes(rng.randint(10_000, 60_000))
        headers = HEADER_SHAPES[rng.randrange(len(HEADER_SHAPES))] if rng.random() < 0.6 else ()
        ts += rng.randint(0, 3)
        stamp = ts - rng.randint(1, 5000) if rng.random() < 0.02 else ts
        yield Rec(rng.randrange(partitions), key, value, headers, stamp)


def by_partition(records: list[Rec], partitions: int) -> dict[int, list[Rec]]:
    out = {p: [] for p in range(partitions)}
    for r in records:
        out[r.partition].append(r)
    return out


def recent_base_ts() -> int:
    """A CreateTime base an hour in the past, whole seconds.

    Not a fixed historical date: a broker enforcing retention.ms by timestamp
    (default 7 days) could legitimately delete old-timestamped data, and Kafka
    4 rejects timestamps more than an hour in the future by default."""
    return (int(time.time()) - 3600) * 1000


# --- produce / consume -----------------------------------------------------------


@dataclass
class DeliveryLog:
    ok: list = field(default_factory=list)      # (index, partition, offset)
    failed: list = field(default_factory=list)  # (index, KafkaError)

    def callback(self, index):
        def cb(err, msg):
            if err is not None:
                self.failed.append((index, err))
            else:
                self.ok.append((index, msg.partition(), msg.offset()))
        return cb


def produce_records(producer: Producer, topic: str, records: list[Rec],
                    log: DeliveryLog | None = None, flush_timeout: float = 120.0) -> DeliveryLog:
    log = log or DeliveryLog()
    for i, r in enumerate(records):
        kwargs = dict(partition=r.partition, key=r.key, value=r.value, timestamp=r.timestamp,
                      on_delivery=log.callback(i))
        if r.headers:
            kwargs["headers"] = list(r.headers)
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(flush_timeout)
    assert remaining == 0, f"{remaining} messages still queued after flush({flush_timeout})"
    return log


@dataclass(frozen=True)
class Got:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple
    timestamp_type: int
    timestamp: int

    def as_rec(self) -> Rec:
        return Rec(self.partition, self.key, self.value, self.headers, self.timestamp)


def _got(msg) -> Got:
    ts_type, ts = msg.timestamp()
    hdrs = msg.headers()
    return Got(msg.partition(), msg.offset(), msg.key(), msg.value(),
               tuple(hdrs) if hdrs else (), ts_type, ts)


def watermarks(consumer: Consumer, topic: str, partition: int, timeout: float = 10.0):
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout,
                                          cached=False)


def consume_range(bootstrap: str, topic: str, partitions, start=OFFSET_BEGINNING,
                  timeout: float = 120.0, ends: dict[int, int] | None = None,
                  **conf_overrides) -> dict[int, list[Got]]:
    """assign() the partitions at `start` (an offset, or dict partition->offset)
    and read until each partition's high watermark (queried once up front
    unless given in `ends`). Fails on any consumer error or on a timeout."""
    partitions = list(partitions)
    c = Consumer(consumer_conf(bootstrap, **conf_overrides))
    try:
        marks = {p: watermarks(c, topic, p) for p in partitions}
        if ends is None:
            ends = {p: marks[p][1] for p in partitions}
        starts = {p: (start[p] if isinstance(start, dict) else start) for p in partitions}
        out = {p: [] for p in partitions}
        todo = set()
        tps = []
        for p in partitions:
            tps.append(TopicPartition(topic, p, starts[p]))
            first = starts[p] if starts[p] >= 0 else marks[p][0]
            if ends[p] > first:
                todo.add(p)
        if not todo:
            return out
        c.assign(tps)
        deadline = time.monotonic() + timeout
        errors = []
        while todo:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"consume timed out after {timeout}s; progress "
                    f"{ {p: (out[p][-1].offset if out[p] else None, ends[p]) for p in partitions} }; "
                    f"errors {errors[:5]}")
            msgs = c.consume(num_messages=10_000, timeout=0.5)
            for m in msgs:
                if m.error():
                    errors.append(m.error())
                    if m.error().fatal() or m.topic() == topic:
                        raise AssertionError(f"consumer error: {m.error()}")
                    continue
                p = m.partition()
                out[p].append(_got(m))
                if m.offset() >= ends[p] - 1:
                    todo.discard(p)
        return out
    finally:
        c.close()


def assert_same_records(expected: list[Rec], got: list[Got], partition: int,
                        start_offset: int = 0, check_offsets: bool = True) -> None:
    """Byte-for-byte comparison of one partition, with a precise first-difference message."""
    for i, (e, g) in enumerate(zip(expected, got)):
        if check_offsets and g.offset != start_offset + i:
            raise AssertionError(f"partition {partition} index {i}: offset {g.offset}, "
                                 f"expected {start_offset + i}")
        if g.timestamp_type != TIMESTAMP_CREATE_TIME:
            raise AssertionError(f"partition {partition} offset {g.offset}: timestamp type "
                                 f"{g.timestamp_type}, expected CreateTime")
        if g.as_rec() != e:
            raise AssertionError(f"partition {partition} offset {g.offset} differs:\n"
                                 f"  expected {e.describe()}\n  got      {g.as_rec().describe()}")
    if len(expected) != len(got):
        raise AssertionError(f"partition {partition}: got {len(got)} records, expected {len(expected)}")


def kafka_error_code(exc: BaseException):
    """KafkaError code from a KafkaException raised by a future, else None."""
    if exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None

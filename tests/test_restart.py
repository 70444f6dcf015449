"""Durability across restarts: graceful (SIGTERM) and kill -9.

Rule under test: every record whose acks=all delivery report succeeded is
present after a restart, at the offset the broker reported, byte for byte,
and nothing else is reordered or invented.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions)

from weir_helpers import (DeliveryLog, admin, assert_same_records, by_partition,
                          consume_range, consumer_conf, create_topic, gen_records,
                          iter_records, produce_records, producer_conf, recent_base_ts, wait_until,
                          watermarks)

SMALL_SEGMENTS = ("--set", "log.segment.bytes=1048576")


def _stop(broker, how: str) -> None:
    if how == "sigterm":
        broker.stop()          # asserts exit code 0
    else:
        broker.kill()


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_acked_data_survives_restart(broker_factory, topic_name, how):
    b = broker_factory(*SMALL_SEGMENTS)
    create_topic(admin(b.bootstrap), topic_name, 3)
    records = gen_records(seed=300, n=20_000, partitions=3, base_ts=recent_base_ts())
    log = produce_records(Producer(producer_conf(b.bootstrap, **{"compression.type": "lz4"})),
                          topic_name, records)
    assert not log.failed and len(log.ok) == len(records)

    _stop(b, how)
    b.start()
    expected = by_partition(records, 3)
    got = consume_range(b.bootstrap, topic_name, range(3))
    for p in range(3):
        assert_same_records(expected[p], got[p], p)

    # The log keeps going at the right offsets after the restart.
    more = gen_records(seed=301, n=300, partitions=3, base_ts=recent_base_ts())
    log = produce_records(Producer(producer_conf(b.bootstrap)), topic_name, more)
    assert not log.failed
    for idx, part, off in log.ok:
        assert off >= len(expected[part])
    more_by_p = by_partition(more, 3)
    got = consume_range(b.bootstrap, topic_name, range(3),
                        start={p: len(expected[p]) for p in range(3)})
    for p in range(3):
        assert_same_records(more_by_p[p], got[p], p, start_offset=len(expected[p]))

    # And a second restart of the same data dir still has everything.
    _stop(b, how)
    b.start()
    got = consume_range(b.bootstrap, topic_name, range(3))
    for p in range(3):
        assert_same_records(expected[p] + more_by_p[p], got[p], p)


def _describe(adm, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = adm.describe_configs([res], request_timeout=15)[res].result(15)
    return {k: (v.value, v.source) for k, v in cfg.items()}


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_topic_metadata_survives_restart(broker_factory, topic_name, how):
    b = broker_factory()
    adm = admin(b.bootstrap)
    t_cfg, t_grow, t_del = topic_name + "-cfg", topic_name + "-grow", topic_name + "-del"
    create_topic(adm, t_cfg, 2, config={"retention.ms": "3600000", "cleanup.policy": "compact",
                                        "max.message.bytes": "20000"})
    create_topic(adm, t_grow, 1)
    create_topic(adm, t_del, 4)
    adm.create_partitions([NewPartitions(t_grow, 3)], request_timeout=15)[t_grow].result(15)
    res = ConfigResource(ConfigResource.Type.TOPIC, t_cfg, incremental_configs=[
        ConfigEntry("segment.bytes", "2097152", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    adm.incremental_alter_configs([res], request_timeout=15)[res].result(15)
    adm.delete_topics([t_del], request_timeout=15)[t_del].result(15)
    wait_until(lambda: t_del not in adm.list_topics(timeout=10).topics, what="deleted topic gone")
    cluster_id = adm.describe_cluster(request_timeout=15).result(15).cluster_id
    before = _describe(adm, t_cfg)

    _stop(b, how)
    b.start()
    adm = admin(b.bootstrap)
    md = adm.list_topics(timeout=10)
    ours = {t: len(md.topics[t].partitions) for t in md.topics if t.startswith(topic_name)}
    assert ours == {t_cfg: 2, t_grow: 3}
    assert adm.describe_cluster(request_timeout=15).result(15).cluster_id == cluster_id
    after = _describe(adm, t_cfg)
    assert after == before
    assert after["retention.ms"] == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert after["cleanup.policy"] == ("compact", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert after["segment.bytes"] == ("2097152", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert after["max.message.bytes"] == ("1048588", ConfigSource.DEFAULT_CONFIG.value)
    # The deleted topic stays deleted and its name is reusable.
    create_topic(adm, t_del, 1)
    c = Consumer(consumer_conf(b.bootstrap))
    try:
        assert watermarks(c, t_del, 0) == (0, 0)
    finally:
        c.close()


class BackgroundProducer(threading.Thread):
    """Produces gen_records() round-robin as fast as possible until stopped."""

    def __init__(self, bootstrap, topic, partitions, seed):
        super().__init__(daemon=True)
        self.topic = topic
        self.source = iter_records(seed=seed, partitions=partitions, base_ts=recent_base_ts())
        self.records = []  # every record handed to produce(), in order
        self.producer = Producer(producer_conf(
            bootstrap, **{"message.timeout.ms": 4000, "linger.ms": 2,
                          "reconnect.backoff.max.ms": 200, "retries": 1_000_000}))
        self.log = DeliveryLog()
        self.stop_flag = threading.Event()
        self.produced = 0
        self.error = None

    def run(self):
        try:
            for i, r in enumerate(self.source):
                if self.stop_flag.is_set():
                    break
                self.records.append(r)
                kwargs = dict(partition=r.partition, key=r.key, value=r.value,
                              timestamp=r.timestamp, on_delivery=self.log.callback(i))
                if r.headers:
                    kwargs["headers"] = list(r.headers)
                while not self.stop_flag.is_set():
                    try:
                        self.producer.produce(self.topic, **kwargs)
                        self.produced = i + 1
                        break
                    except BufferError:
                        self.producer.poll(0.01)
                if i % 200 == 0:
                    self.producer.poll(0)
        except Exception as e:  # surfaced by the test
            self.error = e


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill9_while_producing(broker_factory, topic_name, seed):
    rng = random.Random(seed)
    b = broker_factory(*SMALL_SEGMENTS)
    create_topic(admin(b.bootstrap), topic_name, 3)
    bp = BackgroundProducer(b.bootstrap, topic_name, 3, seed=400 + seed)
    bp.start()
    # Wait for some acknowledged traffic, then kill at a random moment.
    wait_until(lambda: (bp.producer.poll(0) or True) and len(bp.log.ok) > 1000, timeout=60,
               what="first acks")
    time.sleep(rng.uniform(0.0, 1.5))
    b.kill()
    bp.stop_flag.set()
    bp.join(30)
    assert not bp.is_alive() and bp.error is None, bp.error
    # Everything not acked by now fails (message.timeout.ms) while the broker is down.
    assert bp.producer.flush(60) == 0
    acked = sorted(bp.log.ok)
    assert acked, "nothing was acknowledged before the kill"
    assert len(acked) + len(bp.log.failed) == bp.produced
    bad = [e for _, e in bp.log.failed if e.code() not in (
        KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT, KafkaError._TIMED_OUT_QUEUE)]
    assert not bad, f"unexpected delivery errors: {bad[:5]}"

    print(f"kill -9 after {bp.produced} produced: {len(acked)} acked, {len(bp.log.failed)} failed")
    b.start()
    produced_by_p = {p: [] for p in range(3)}
    for i in range(bp.produced):
        produced_by_p[bp.records[i].partition].append(i)
    acked_by_p = {p: [] for p in range(3)}
    for idx, part, off in acked:
        acked_by_p[part].append((idx, off))
    got = consume_range(b.bootstrap, topic_name, range(3))
    for p in range(3):
        # Acked offsets are the record's position in this partition's production order.
        for idx, off in acked_by_p[p]:
            assert produced_by_p[p][off] == idx, f"partition {p}: record {idx} acked at offset {off}"
        n_acked = len(acked_by_p[p])
        log = got[p]
        assert len(log) >= n_acked, (f"partition {p}: only {len(log)} records after kill -9 but "
                                     f"{n_acked} were acknowledged (acks=all)")
        # The log is exactly a prefix of what was produced (unacked tail may or may not be there).
        expected = [bp.records[i] for i in produced_by_p[p][:len(log)]]
        assert len(log) <= len(produced_by_p[p]), f"partition {p}: more records than produced"
        assert_same_records(expected, log, p)

    print("recovered per partition (log, acked, produced):",
          [(len(got[p]), len(acked_by_p[p]), len(produced_by_p[p])) for p in range(3)])
    # The restarted broker keeps appending after the recovered log end.
    ends = {p: len(got[p]) for p in range(3)}
    more = gen_records(seed=500 + seed, n=30, partitions=3, base_ts=recent_base_ts())
    log = produce_records(Producer(producer_conf(b.bootstrap)), topic_name, more)
    assert not log.failed
    got = consume_range(b.bootstrap, topic_name, range(3), start=ends)
    more_by_p = by_partition(more, 3)
    for p in range(3):
        assert_same_records(more_by_p[p], got[p], p, start_offset=ends[p])


def test_graceful_stop_while_producing(broker_factory, topic_name):
    b = broker_factory()
    create_topic(admin(b.bootstrap), topic_name, 2)
    bp = BackgroundProducer(b.bootstrap, topic_name, 2, seed=77)
    bp.start()
    wait_until(lambda: (bp.producer.poll(0) or True) and len(bp.log.ok) > 2000, timeout=60,
               what="first acks")
    b.stop()  # SIGTERM with clients connected and producing: exit code 0
    bp.stop_flag.set()
    bp.join(30)
    assert bp.producer.flush(60) == 0
    b.start()
    got = consume_range(b.bootstrap, topic_name, range(2))
    for idx, part, off in bp.log.ok:
        g = got[part][off]
        assert g.offset == off and g.as_rec() == bp.records[idx], \
            f"acked record {idx} at {part}/{off} differs after graceful restart"


def test_sigterm_is_prompt_with_parked_long_poll(broker_factory, topic_name):
    """Kafka closes client sockets and completes delayed fetches on shutdown;
    a consumer long-polling with a 20 s max wait must not hold it up."""
    b = broker_factory()
    create_topic(admin(b.bootstrap), topic_name, 1)
    c = Consumer(consumer_conf(b.bootstrap, **{"fetch.wait.max.ms": 20000,
                                               "socket.timeout.ms": 60000}))
    try:
        c.assign([TopicPartition(topic_name, 0, 0)])
        m = c.poll(2.0)  # a fetch is now parked at the (empty) log end
        assert m is None or m.error() is not None, "unexpected record in an empty topic"
        start = time.monotonic()
        b.stop(timeout=40)
        took = time.monotonic() - start
    finally:
        c.close()
    assert took < 5.0, f"graceful shutdown took {took:.1f}s with a parked 20s fetch"

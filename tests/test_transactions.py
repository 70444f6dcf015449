"""Idempotent producers and transactions with real clients.

- librdkafka (confluent-kafka) idempotent producer while the broker closes
  connections after applying produce requests (lost responses): no
  duplicates, no gaps, order kept.
- Transactional producers: committed records visible to read_committed,
  aborted ones only to read_uncommitted, and read_committed never passes the
  last stable offset.
- A consume-transform-produce pipeline (send_offsets_to_transaction) killed
  with SIGKILL at random points and restarted: every input exactly once in
  the output.
- The broker killed with SIGKILL while a transaction is open: after restart
  the transaction is aborted by its timeout and nothing of it is visible;
  a new producer instance fences the old one.
- kafka-python's idempotent and transactional producers.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from weir_helpers import admin, consumer_conf, create_topic, wait_until

HERE = Path(__file__).parent


def txn_producer(bootstrap: str, txn_id: str, **extra) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "transactional.id": txn_id,
        "linger.ms": 5,
        "transaction.timeout.ms": 60_000,
    }
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return Producer(conf)


def drain(bootstrap: str, topic: str, partitions: int, isolation: str,
          idle: float = 3.0, timeout: float = 60.0) -> list[tuple[int, int, bytes]]:
    """Reads every partition from the beginning until nothing new arrives for
    `idle` seconds. Returns (partition, offset, value) in read order."""
    c = Consumer(consumer_conf(bootstrap, isolation_level=isolation,
                               auto_offset_reset="earliest"))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out = []
        last = time.monotonic()
        deadline = last + timeout
        while time.monotonic() - last < idle:
            assert time.monotonic() < deadline, "drain did not settle"
            for m in c.consume(num_messages=1000, timeout=0.3):
                if m.error():
                    raise AssertionError(f"consumer error: {m.error()}")
                out.append((m.partition(), m.offset(), m.value()))
                last = time.monotonic()
        return out
    finally:
        c.close()


def values(recs) -> list[bytes]:
    return [v for _, _, v in recs]


def committed_watermark(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    """(low, high) as a read_committed consumer sees them: high is the LSO."""
    c = Consumer(consumer_conf(bootstrap, isolation_level="read_committed"))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


# --- idempotence -------------------------------------------------------------------


@pytest.mark.single_node("fault injection on one node; test_cluster.py has the cluster's "
                         "lost-response test")
def test_idempotent_producer_lost_responses_no_duplicates_no_gaps(broker_factory, topic_name):
    b = broker_factory(name="faulty", env={"WEIR_FAULT_CLOSE_AFTER_PRODUCE_EVERY": "5"})
    create_topic(admin(b.bootstrap), topic_name, partitions=3)
    p = Producer({
        "bootstrap.servers": b.bootstrap,
        "broker.address.family": "v4",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 40,
        "message.timeout.ms": 120_000,
        "retry.backoff.ms": 20,
    })
    n = 3000
    failed = []

    def cb(err, msg):
        if err is not None:
            failed.append(err)

    for i in range(n):
        while True:
            try:
                p.produce(topic_name, value=b"%d" % i, partition=i % 3, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    assert not failed, failed[:3]
    injected = b.log_text().count("fault injection: closing the connection")
    assert injected >= 5, ("the fault injection did not trigger (is the binary built with "
                           "`--features fault-injection`?)")
    got = drain(b.bootstrap, topic_name, 3, "read_uncommitted")
    by_part = collections.defaultdict(list)
    for part, _, v in got:
        by_part[part].append(int(v))
    for part in range(3):
        assert by_part[part] == list(range(part, n, 3)), (
            f"partition {part}: duplicates or gaps after {injected} lost responses")


def test_kafka_python_idempotent_producer(broker, topic_name):
    from kafka import KafkaConsumer, KafkaProducer

    create_topic(admin(broker.bootstrap), topic_name, partitions=2)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    futures = [prod.send(topic_name, value=b"v%d" % i, partition=i % 2) for i in range(400)]
    prod.flush(30)
    offsets = sorted((f.get(10).partition, f.get(10).offset) for f in futures)
    assert offsets == sorted([(0, i) for i in range(200)] + [(1, i) for i in range(200)])
    prod.close()
    c = KafkaConsumer(topic_name, bootstrap_servers=broker.bootstrap,
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    got = sorted(m.value for m in c)
    c.close()
    assert got == sorted(b"v%d" % i for i in range(400))


# --- transactions ------------------------------------------------------------------


def test_committed_visible_aborted_hidden_from_read_committed(broker, topic_name):
    create_topic(admin(broker.bootstrap), topic_name, partitions=2)
    p = txn_producer(broker.bootstrap, f"tx-{topic_name}")
    p.init_transactions(30)
    for tag, commit in (("c1", True), ("a1", False), ("c2", True), ("a2", False)):
        p.begin_transaction()
        for i in range(10):
            p.produce(topic_name, value=f"{tag}-{i}".encode(), partition=i % 2)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(30)  # the aborted records are really in the log
            p.abort_transaction(30)
    committed = values(drain(broker.bootstrap, topic_name, 2, "read_committed"))
    assert sorted(committed) == sorted(f"{t}-{i}".encode() for t in ("c1", "c2") for i in range(10))
    uncommitted = values(drain(broker.bootstrap, topic_name, 2, "read_uncommitted"))
    assert len(uncommitted) == 40
    assert {v.split(b"-")[0] for v in uncommitted} == {b"c1", b"a1", b"c2", b"a2"}
    # Four markers per partition sit between the records.
    lo, hi = committed_watermark(broker.bootstrap, topic_name, 0)
    assert hi == 20 + 4


def test_read_committed_stops_at_the_last_stable_offset(broker, topic_name):
    create_topic(admin(broker.bootstrap), topic_name)
    tx = txn_producer(broker.bootstrap, f"tx-{topic_name}")
    tx.init_transactions(30)
    tx.begin_transaction()
    for i in range(5):
        tx.produce(topic_name, value=b"open-%d" % i, partition=0)
    tx.flush(30)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4",
                      "enable.idempotence": True})
    for i in range(5):
        plain.produce(topic_name, value=b"after-%d" % i, partition=0)
    assert plain.flush(30) == 0
    assert committed_watermark(broker.bootstrap, topic_name, 0)[1] == 0
    c = Consumer(consumer_conf(broker.bootstrap, isolation_level="read_committed"))
    c.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
    try:
        early = []
        end = time.monotonic() + 3
        while time.monotonic() < end:
            early += [m for m in c.consume(100, timeout=0.3) if not m.error()]
        assert early == [], "read_committed read past the last stable offset"
        tx.commit_transaction(30)
        got = []
        wait_until(lambda: got.extend(m.value() for m in c.consume(100, timeout=0.3)
                                      if not m.error()) or len(got) >= 10,
                   timeout=20, what="records after commit")
        assert got == [b"open-%d" % i for i in range(5)] + [b"after-%d" % i for i in range(5)]
    finally:
        c.close()
    assert committed_watermark(broker.bootstrap, topic_name, 0)[1] == 11


def test_a_new_instance_fences_the_old_one(broker, topic_name):
    create_topic(admin(broker.bootstrap), topic_name)
    txn_id = f"tx-{topic_name}"
    old = txn_producer(broker.bootstrap, txn_id)
    old.init_transactions(30)
    old.begin_transaction()
    old.produce(topic_name, value=b"zombie", partition=0)
    old.flush(30)
    new = txn_producer(broker.bootstrap, txn_id)
    new.init_transactions(30)  # aborts the old instance's transaction
    new.begin_transaction()
    new.produce(topic_name, value=b"alive", partition=0)
    new.commit_transaction(30)
    with pytest.raises(KafkaException) as e:
        old.produce(topic_name, value=b"zombie-2", partition=0)
        old.commit_transaction(10)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower()
    assert values(drain(broker.bootstrap, topic_name, 1, "read_committed")) == [b"alive"]


@pytest.mark.single_node("kills and restarts the only broker; test_cluster.py kills "
                         "transaction coordinators")
def test_broker_kill_during_open_transaction(broker_factory, topic_name):
    b = broker_factory(name="txkill")
    create_topic(admin(b.bootstrap), topic_name, partitions=2)
    txn_id = f"tx-{topic_name}"
    p = txn_producer(b.bootstrap, txn_id, transaction_timeout_ms=5000)
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic_name, value=b"kept-%d" % i, partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(20):
        p.produce(topic_name, value=b"doomed-%d" % i, partition=i % 2)
    p.flush(30)
    b.kill()
    del p
    b.start()
    # Half-written: the records are there but not readable as committed.
    assert len(drain(b.bootstrap, topic_name, 2, "read_uncommitted", idle=1.0)) == 30
    # The coordinator aborts the open transaction once it times out.
    wait_until(lambda: all(committed_watermark(b.bootstrap, topic_name, part)[1] == 17
                           for part in range(2)),
               timeout=30, what="the timed-out transaction to be aborted (LSO at the end)")
    assert sorted(values(drain(b.bootstrap, topic_name, 2, "read_committed"))) == sorted(
        b"kept-%d" % i for i in range(10))
    # The transactional id still works.
    q = txn_producer(b.bootstrap, txn_id)
    q.init_transactions(30)
    q.begin_transaction()
    q.produce(topic_name, value=b"later", partition=0)
    q.commit_transaction(30)
    assert b"later" in values(drain(b.bootstrap, topic_name, 2, "read_committed"))


def _start_worker(bootstrap, src, dst, group, txn_id, exit_when_idle=False):
    args = [sys.executable, str(HERE / "eos_worker.py"), bootstrap, src, dst, group, txn_id]
    if exit_when_idle:
        args.append("--exit-when-idle")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_consume_transform_produce_exactly_once_across_sigkills(broker, topic_name):
    src, dst = f"{topic_name}-in", f"{topic_name}-out"
    adm = admin(broker.bootstrap)
    create_topic(adm, src, partitions=3)
    create_topic(adm, dst, partitions=3)
    n = 3000
    p = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4",
                  "enable.idempotence": True, "linger.ms": 5})
    for i in range(n):
        p.produce(src, key=b"%d" % i, value=b"in-%d" % i, partition=i % 3)
        p.poll(0)
    assert p.flush(60) == 0
    group, txn_id = f"g-{topic_name}", f"eos-{topic_name}"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        w = _start_worker(broker.bootstrap, src, dst, group, txn_id)
        time.sleep(rng.uniform(6.0, 10.0))
        if w.poll() is None:
            os.kill(w.pid, signal.SIGKILL)
            kills += 1
        out = w.communicate()[0]
        assert w.returncode in (-signal.SIGKILL, 0), out[-2000:]
    assert kills >= 3
    w = _start_worker(broker.bootstrap, src, dst, group, txn_id, exit_when_idle=True)
    out = w.communicate(timeout=180)[0]
    assert w.returncode == 0, out[-3000:]
    got = values(drain(broker.bootstrap, dst, 3, "read_committed"))
    counts = collections.Counter(got)
    dups = [v for v, c in counts.items() if c > 1]
    missing = {b"out-in-%d" % i for i in range(n)} - set(counts)
    assert not dups and not missing, f"{len(dups)} duplicated, {len(missing)} missing"
    assert len(got) == n


def test_kafka_python_transactions(broker, topic_name):
    from kafka import KafkaConsumer, KafkaProducer

    create_topic(admin(broker.bootstrap), topic_name)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap,
                         transactional_id=f"kp-{topic_name}")
    prod.init_transactions()
    prod.begin_transaction()
    prod.send(topic_name, b"yes-1", partition=0)
    prod.send(topic_name, b"yes-2", partition=0)
    prod.commit_transaction()
    prod.begin_transaction()
    prod.send(topic_name, b"no-1", partition=0)
    prod.flush()
    prod.abort_transaction()
    prod.close()

    def read(isolation):
        c = KafkaConsumer(topic_name, bootstrap_servers=broker.bootstrap,
                          auto_offset_reset="earliest", consumer_timeout_ms=3000,
                          isolation_level=isolation)
        got = [m.value for m in c]
        c.close()
        return got

    assert read("read_committed") == [b"yes-1", b"yes-2"]
    assert read("read_uncommitted") == [b"yes-1", b"yes-2", b"no-1"]


def test_compaction_keeps_transactions_correct(broker, topic_name):
    """A compacted topic with committed and aborted transactions between
    plain records: after the cleaner has run (plain duplicates are gone),
    read_committed still sees exactly the committed values."""
    create_topic(admin(broker.bootstrap), topic_name, config={
        "cleanup.policy": "compact", "segment.bytes": str(1 << 20),
        "min.cleanable.dirty.ratio": "0.01"})
    pad = b"x" * 1024
    plain = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4",
                      "enable.idempotence": True, "linger.ms": 5})

    def plain_round(tag):
        for i in range(600):
            plain.produce(topic_name, key=b"plain-%d" % (i % 10), value=tag + pad, partition=0)
        assert plain.flush(30) == 0

    plain_round(b"p1")
    tx = txn_producer(broker.bootstrap, f"tx-{topic_name}")
    tx.init_transactions(30)
    for tag, keys, commit in ((b"c1", range(10), True), (b"ab", range(10), False),
                              (b"c2", range(5), True)):
        tx.begin_transaction()
        for k in keys:
            tx.produce(topic_name, key=b"t-%d" % k, value=tag, partition=0)
        if commit:
            tx.commit_transaction(30)
        else:
            tx.flush(30)
            tx.abort_transaction(30)
    plain_round(b"p2")
    total = 1200 + 25
    wait_until(lambda: len(drain(broker.bootstrap, topic_name, 1, "read_uncommitted",
                                 idle=1.0)) < total,
               timeout=90, interval=2, what="the cleaner to compact the plain records")
    c = Consumer(consumer_conf(broker.bootstrap, isolation_level="read_committed"))
    c.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
    latest, seen_aborted = {}, False
    try:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            for m in c.consume(1000, timeout=0.3):
                assert not m.error(), m.error()
                if m.key().startswith(b"t-"):
                    latest[m.key()] = m.value()
                    seen_aborted |= m.value() == b"ab"
    finally:
        c.close()
    assert not seen_aborted
    assert latest == {**{b"t-%d" % k: b"c1" for k in range(5, 10)},
                      **{b"t-%d" % k: b"c2" for k in range(5)}}


def test_kafka_python_admin_inspects_producers_and_transactions(broker, topic_name):
    """kafka-python's transactions admin (what kafka-transactions.sh does):
    ListTransactions, DescribeTransactions and DescribeProducers against an
    open transaction, then after its commit."""
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP

    create_topic(admin(broker.bootstrap), topic_name)
    txn_id = f"tx-{topic_name}"
    p = txn_producer(broker.bootstrap, txn_id)
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic_name, value=b"%d" % i, partition=0)
    p.flush(30)
    adm = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # A dict of broker id to listings.
        listed = [t for ts in adm.list_transactions().values() for t in ts]
        mine = [t for t in listed if t.transactional_id == txn_id]
        assert len(mine) == 1 and str(mine[0].state.value) == "Ongoing", listed
        done = adm.list_transactions(state_filters=["CompleteCommit"])
        assert [t for ts in done.values() for t in ts] == []
        desc = adm.describe_transactions([txn_id])[txn_id]
        assert str(desc.state.value) == "Ongoing"
        assert desc.producer_id == mine[0].producer_id
        assert {(tp.topic, tp.partition) for tp in desc.topic_partitions} == {(topic_name, 0)}
        producers = adm.describe_producers([KTP(topic_name, 0)])[KTP(topic_name, 0)]
        [state] = producers.active_producers
        assert state.producer_id == desc.producer_id
        assert state.last_sequence == 2
        assert state.current_transaction_start_offset == 0
        p.commit_transaction(30)
        desc = adm.describe_transactions([txn_id])[txn_id]
        assert str(desc.state.value) == "CompleteCommit"
        [state] = adm.describe_producers([KTP(topic_name, 0)])[KTP(topic_name, 0)].active_producers
        assert state.current_transaction_start_offset == -1
    finally:
        adm.close()

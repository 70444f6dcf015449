"""Consumer groups with kafka-python (pure-Python client, its own group code) against Weir.

No api_version is configured: the client negotiates with ApiVersions.
Producers disable idempotence (Weir has no InitProducerId).
"""

from __future__ import annotations

import threading
import time

import pytest
from kafka import (ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer,
                   TopicPartition)
from kafka.admin import NewTopic
from kafka.errors import GroupSubscribedToTopicError, NoError, NonEmptyGroupError
from kafka.structs import OffsetAndMetadata

from group_helpers import GROUP_BROKER_ARGS
from weir_helpers import wait_until

PARTITIONS = 4


@pytest.fixture
def gbroker(target_factory):
    return target_factory(*GROUP_BROKER_ARGS)


def kp_admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="weir-groups-admin",
                            request_timeout_ms=30_000)


def produce(broker, topic: str, per_partition: int, tag: str) -> None:
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, acks="all",
                      linger_ms=5, request_timeout_ms=30_000)
    try:
        futs = [p.send(topic, key=f"{tag}-{part}-{i}".encode(), value=b"v", partition=part)
                for part in range(PARTITIONS) for i in range(per_partition)]
        p.flush(60)
        for f in futs:
            f.get(timeout=30)
    finally:
        p.close(timeout=10)


def delete_groups(adm: KafkaAdminClient, group: str) -> str:
    """delete_groups for one group: the error's class name, "NoError" on success.
    (kafka-python 3.0.12 returns {group: "OK" or error class name}; its
    docstring says a list of (group, error class) tuples: accept both.)"""
    err = dict(adm.delete_groups([group]))[group]
    if err == "OK" or err is NoError:
        return "NoError"
    return err if isinstance(err, str) else err.__name__


def group_consumer(broker, group: str, name: str) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, client_id=name,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=6000, heartbeat_interval_ms=500,
                         fetch_max_wait_ms=100, request_timeout_ms=30_000)


class Listener(ConsumerRebalanceListener):
    def __init__(self, member: "Member"):
        self.member = member

    def on_partitions_revoked(self, revoked):
        with self.member.lock:
            self.member.rebalances.append(
                ("revoke", time.time(), sorted(tp.partition for tp in revoked)))

    def on_partitions_assigned(self, assigned):
        with self.member.lock:
            self.member.rebalances.append(
                ("assign", time.time(), sorted(tp.partition for tp in assigned)))


class Member:
    """A KafkaConsumer polling in its own thread; commits after each non-empty poll."""

    def __init__(self, broker, group: str, topic: str, name: str):
        self.name = name
        self.lock = threading.Lock()
        self.rebalances: list = []
        self.msgs: list[tuple[int, int]] = []
        self.assignment: set[int] = set()
        self.commits = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.consumer = group_consumer(broker, group, name)
        self.consumer.subscribe([topic], listener=Listener(self))
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        c = self.consumer
        try:
            while not self.stop.is_set():
                batches = c.poll(timeout_ms=200)
                got = [(r.partition, r.offset) for recs in batches.values() for r in recs]
                with self.lock:
                    self.msgs.extend(got)
                    self.assignment = {tp.partition for tp in c.assignment()}
                if got:
                    c.commit()
                    self.commits += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            c.close(autocommit=False)  # sends LeaveGroup

    def owned(self) -> set[int]:
        with self.lock:
            return set(self.assignment)

    def consumed(self) -> list[tuple[int, int]]:
        with self.lock:
            return list(self.msgs)

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), f"{self.name} did not stop"
        assert self.error is None, f"{self.name}: {self.error!r}"


def test_kafka_python_group_split_commit_resume_and_admin(gbroker, topic_name):
    group = f"kp-{topic_name}"
    adm = kp_admin(gbroker)
    adm.create_topics([NewTopic(topic_name, PARTITIONS, 1)])
    wait_until(lambda: topic_name in adm.list_topics(), what="topic listed")

    members = [Member(gbroker, group, topic_name, f"kp-member-{i}") for i in range(2)]
    try:
        def split():
            owned = [m.owned() for m in members]
            last = max((r[1] for m in members for r in m.rebalances), default=0)
            return (all(len(o) == 2 for o in owned)
                    and owned[0] | owned[1] == set(range(PARTITIONS))
                    and time.time() - last > 1.5)
        wait_until(split, timeout=40, what="a 2/2 split")
        owned = {m.name: m.owned() for m in members}

        produce(gbroker, topic_name, 50, "a")
        want = {(p, o) for p in range(PARTITIONS) for o in range(50)}
        wait_until(lambda: {x for m in members for x in m.consumed()} >= want, timeout=30,
                   what="everything consumed")
        for m in members:
            assert {p for p, _o in m.consumed()} <= owned[m.name], (m.name, owned)
        tps = [TopicPartition(topic_name, p) for p in range(PARTITIONS)]
        wait_until(lambda: {tp: om.offset for tp, om in
                            adm.list_group_offsets({group: None})[group].items()}
                   == {tp: 50 for tp in tps}, timeout=20, what="offsets committed")

        # admin views of the active group
        listed = {g["group_id"]: g for g in adm.list_groups()}
        assert group in listed, listed
        assert listed[group]["protocol_type"] == "consumer", listed[group]
        stable = {g["group_id"] for g in adm.list_groups(states_filter=["Stable"])}
        assert group in stable, stable
        assert group not in {g["group_id"] for g in adm.list_groups(states_filter=["Empty"])}
        desc = adm.describe_groups([group])[group]
        assert desc["group_state"] == "Stable", desc
        assert desc["protocol_type"] == "consumer" and desc["protocol_data"], desc
        assert sorted(m["client_id"] for m in desc["members"]) == ["kp-member-0", "kp-member-1"]
        for md in desc["members"]:
            assignment = md["member_assignment"]
            parts = {p for t in assignment["assigned_partitions"] for p in t["partitions"]}
            assert parts == owned[md["client_id"]], (md, owned)

        # deleting offsets of a topic the active group is subscribed to is refused
        res = adm.delete_group_offsets(group, [TopicPartition(topic_name, 0)])
        assert res == {TopicPartition(topic_name, 0): GroupSubscribedToTopicError}, res
        # and so is deleting the group
        assert delete_groups(adm, group) == NonEmptyGroupError.__name__
    finally:
        for m in members:
            m.shutdown()

    wait_until(lambda: adm.describe_groups([group])[group]["group_state"] == "Empty", timeout=10,
               what="group empty")

    # A new consumer in the group resumes exactly at the committed offsets.
    produce(gbroker, topic_name, 10, "b")
    c = group_consumer(gbroker, group, "kp-resumer")
    try:
        tps = [TopicPartition(topic_name, p) for p in range(PARTITIONS)]
        assert {tp: c.committed(tp) for tp in tps} == {tp: 50 for tp in tps}
        c.subscribe([topic_name])
        got: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 30
        while any(len(v) < 10 for v in got.values()):
            assert time.monotonic() < deadline, f"resumer got {got}"
            for recs in c.poll(timeout_ms=200).values():
                for r in recs:
                    got[r.partition].append(r.offset)
        assert got == {p: list(range(50, 60)) for p in range(PARTITIONS)}, got
        c.commit({TopicPartition(topic_name, p): OffsetAndMetadata(60, "", -1)
                  for p in range(PARTITIONS)})
    finally:
        c.close()

    # Alter, then delete some offsets of the now-empty group, then the group.
    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    res = adm.alter_group_offsets(group, {tp1: OffsetAndMetadata(7, "set-by-admin", -1)})
    assert res == {tp1: NoError}, res
    res = adm.delete_group_offsets(group, [tp0])
    assert res == {tp0: NoError}, res
    offs = adm.list_group_offsets({group: None})[group]
    assert {tp: om.offset for tp, om in offs.items()} == {
        tp1: 7, TopicPartition(topic_name, 2): 60, TopicPartition(topic_name, 3): 60}, offs
    assert offs[tp1].metadata == "set-by-admin"
    assert delete_groups(adm, group) == NoError.__name__
    assert group not in {g["group_id"] for g in adm.list_groups()}
    adm.close()

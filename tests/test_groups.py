"""Consumer groups (classic protocol) with confluent-kafka / librdkafka against Weir.

Group members are child processes (see group_helpers.py) so they can be
SIGKILLed; each test uses its own broker (short initial rebalance delay), its
own topic and its own group ids. Producers set enable.idempotence=false.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions,
                             ConsumerGroupType, KafkaError, KafkaException, OFFSET_INVALID,
                             Producer, TopicPartition)

from group_helpers import (API_CONSUMER_GROUP_HEARTBEAT, GROUP_BROKER_ARGS, ChildPool,
                           broker_advertises, group_consumer_conf, wait_assignment)
from weir_helpers import (DeliveryLog, admin, create_topic, kafka_error_code, producer_conf,
                          wait_until)

SESSION_MS = 6000


# KIP-848 groups: the broker owns session timeout and heartbeat interval.
KIP848_BROKER_ARGS = ("--set", f"group.consumer.session.timeout.ms={SESSION_MS}",
                      "--set", "group.consumer.heartbeat.interval.ms=500")


def kip848_consumer_conf(bootstrap: str, group: str) -> dict:
    """group.protocol=consumer rejects the classic session/heartbeat/assignor settings."""
    return {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": False, "fetch.wait.max.ms": 100,
            "broker.address.family": "v4", "topic.metadata.refresh.interval.ms": 2000}


# --- fixtures / small helpers ------------------------------------------------------

@pytest.fixture
def gbroker(target_factory):
    return target_factory(*GROUP_BROKER_ARGS)


@pytest.fixture
def pool(tmp_path):
    p = ChildPool(tmp_path / "members")
    yield p
    p.cleanup()


@pytest.fixture
def group(topic_name) -> str:
    return f"grp-{topic_name}"


def produce_keyed(bootstrap: str, topic: str, n: int, prefix: str = "key",
                  partition: int | None = None) -> dict[int, int]:
    """Produce n keyed messages (default partitioner unless `partition`);
    returns {partition: number of messages written there}."""
    p = Producer(producer_conf(bootstrap))
    log = DeliveryLog()
    try:
        for i in range(n):
            kw = {} if partition is None else {"partition": partition}
            p.produce(topic, key=f"{prefix}-{i}".encode(), value=f"value-{i}".encode(),
                      on_delivery=log.callback(i), **kw)
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(60) == 0, "messages still queued after flush(60)"
    finally:
        p.close()
    assert not log.failed, f"delivery failures: {log.failed[:5]}"
    counts: dict[int, int] = {}
    for _i, part, _off in log.ok:
        counts[part] = counts.get(part, 0) + 1
    return counts


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "weir-hw-probe",
                  "broker.address.family": "v4"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def describe_group(adm, group: str):
    return adm.describe_consumer_groups([group], request_timeout=15)[group].result(20)


def group_offsets(adm, group: str) -> dict[tuple[str, int], int]:
    res = adm.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                          request_timeout=15)[group].result(20)
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, f"{group} {tp}: {tp.error}"
        if tp.offset >= 0:
            out[(tp.topic, tp.partition)] = tp.offset
    return out


def listed_groups(adm, states=None) -> dict[str, object]:
    kw = {"request_timeout": 15}
    if states is not None:
        kw["states"] = set(states)
    res = adm.list_consumer_groups(**kw).result(20)
    assert not res.errors, f"list_consumer_groups errors: {res.errors}"
    return {g.group_id: g for g in res.valid}


def assign_time(member, since: float) -> float:
    ts = [e["t"] for e in member.of("assign", since=since)]
    assert ts, f"{member.name}: no assign event since {since}\n{member.describe()}"
    return max(ts)


# --- 1. membership, leave, kill, at-least-once ------------------------------------

def test_three_members_split_six_partitions_then_one_leaves(gbroker, pool, topic_name, group):
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=6)
    conf = group_consumer_conf(gbroker.bootstrap, group, session_timeout_ms=SESSION_MS)
    members = [pool.spawn(f"m{i}", conf, [topic_name]) for i in range(3)]
    owned = wait_assignment(members, 6, counts=[2, 2, 2], timeout=40)

    desc = describe_group(adm, group)
    assert desc.state == ConsumerGroupState.STABLE, desc.state
    assert len(desc.members) == 3, desc.members
    by_id = {m.member_id: {tp.partition for tp in m.assignment.topic_partitions}
             for m in desc.members}
    assert by_id == {m.member_id(): owned[m.name] for m in members}, (by_id, owned)

    # A clean close() sends LeaveGroup: the survivors must get the partitions
    # well before the leaver's session could have expired.
    leaver, survivors = members[2], members[:2]
    t0 = time.time()
    leaver.close()
    owned2 = wait_assignment(survivors, 6, counts=[3, 3], timeout=20, settle=1.0)
    took = max(assign_time(m, t0) for m in survivors) - t0
    print(f"rebalance after LeaveGroup: {took:.2f}s")
    assert took < SESSION_MS / 1000 - 1, (
        f"rebalance after LeaveGroup took {took:.1f}s; as slow as a session timeout "
        f"({SESSION_MS} ms): was the LeaveGroup ignored?")
    assert owned[leaver.name] <= owned2[survivors[0].name] | owned2[survivors[1].name]
    desc = describe_group(adm, group)
    assert len(desc.members) == 2 and desc.state == ConsumerGroupState.STABLE, desc

    # The two survivors consume everything produced now, each its own partitions.
    hw = produce_keyed(gbroker.bootstrap, topic_name, 300)
    assert set(hw) == set(range(6)), hw

    def consumed():
        got: dict[int, set[int]] = {p: set() for p in range(6)}
        for m in survivors:
            for p, o in m.messages():
                got[p].add(o)
        return all(got[p] == set(range(hw[p])) for p in range(6))
    wait_until(consumed, timeout=30, what="all 300 messages consumed by the survivors")
    for m in survivors:
        assert {p for p, _o in m.messages()} <= owned2[m.name]
        assert not m.errors(), m.errors()


@pytest.mark.parametrize("protocol", [
    "classic",
    pytest.param("consumer", marks=pytest.mark.skipif(
        f"not broker_advertises({API_CONSUMER_GROUP_HEARTBEAT})",
        reason="broker does not advertise ConsumerGroupHeartbeat (API key 68, KIP-848) "
               "in ApiVersions yet")),
])
def test_killed_member_partitions_move_and_nothing_is_lost(target_factory, pool, topic_name,
                                                           group, protocol):
    """Manual commit after each processed message; one member is SIGKILLed
    midway (no LeaveGroup): after its session times out its partitions move to
    the other two, which resume at its last committed offsets, so the union
    of processed offsets covers every partition completely. Both with the
    classic protocol and with KIP-848's group.protocol=consumer (whose session
    timeout is the broker's group.consumer.session.timeout.ms)."""
    n = 900
    if protocol == "classic":
        gbroker = target_factory(*GROUP_BROKER_ARGS)
        conf = group_consumer_conf(gbroker.bootstrap, group, session_timeout_ms=SESSION_MS)
    else:
        gbroker = target_factory(*GROUP_BROKER_ARGS, *KIP848_BROKER_ARGS)
        conf = kip848_consumer_conf(gbroker.bootstrap, group)
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=6)
    members = [pool.spawn(f"m{i}", conf, [topic_name], commit="sync", delay_ms=10)
               for i in range(3)]
    wait_assignment(members, 6, counts=[2, 2, 2], timeout=40)
    hw = produce_keyed(gbroker.bootstrap, topic_name, n)
    assert set(hw) == set(range(6)) and sum(hw.values()) == n, hw

    victim, survivors = members[2], members[:2]
    victim.wait_for(lambda: len(victim.messages()) >= 40, 30, "victim to process 40 messages")
    victim_parts = victim.owned()
    t_kill = time.time()
    victim.kill()
    victim_msgs = victim.messages()
    victim_acked = victim.acked_commits()
    assert len(victim_msgs) < sum(hw[p] for p in victim_parts), "victim finished before the kill"

    owned = wait_assignment(survivors, 6, counts=[3, 3], timeout=SESSION_MS / 1000 + 20,
                            settle=1.0)
    took = max(assign_time(m, t_kill) for m in survivors) - t_kill
    print(f"takeover after SIGKILL: {took:.2f}s (session.timeout.ms={SESSION_MS})")
    assert took < SESSION_MS / 1000 + 10, f"takeover took {took:.1f}s"

    def coverage():
        got: dict[int, set[int]] = {p: set() for p in range(6)}
        for m in members:
            for p, o in m.messages():
                got[p].add(o)
        return {p: hw[p] - len(got[p] & set(range(hw[p]))) for p in range(6)}
    wait_until(lambda: not any(coverage().values()), timeout=40,
               what="every offset of every partition processed by some member")

    # Each taken-over partition resumed exactly at what the victim committed:
    # not before its last acknowledged commit, not after its last processed message.
    for p in sorted(victim_parts):
        first = min(o for m in survivors for q, o in m.messages() if q == p)
        lo = victim_acked.get(p, 0)
        processed = [o for q, o in victim_msgs if q == p]
        hi = max(processed) + 1 if processed else 0
        assert lo <= first <= hi, (
            f"partition {p}: new owner started at {first}, victim's last acked commit {lo}, "
            f"last processed {hi - 1}")

    # Everything ends up committed.
    wait_until(lambda: group_offsets(adm, group) == {(topic_name, p): hw[p] for p in range(6)},
               timeout=20, what="committed offsets == high watermarks")
    final = {m.name: m.owned() for m in survivors}
    assert final == owned and all(m.alive for m in survivors), (
        "assignment changed without a membership change:\n"
        + "\n".join(f"{m.describe()}\ncrash: {m.crashed()}\n{m.stderr_tail()}"
                    for m in survivors))
    for m in survivors:
        m.close()
    assert describe_group(adm, group).state == ConsumerGroupState.EMPTY


def test_frozen_member_is_evicted_then_rejoins(gbroker, pool, topic_name, group):
    """A member that stops heartbeating (SIGSTOP) is removed after its session
    timeout; when it wakes up it finds out (UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION),
    loses its partitions and rejoins, and the group splits 2/2 again."""
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=4)
    conf = group_consumer_conf(gbroker.bootstrap, group, session_timeout_ms=SESSION_MS)
    a, b = pool.spawn("a", conf, [topic_name]), pool.spawn("b", conf, [topic_name])
    wait_assignment([a, b], 4, counts=[2, 2], timeout=40)
    old_b_id = b.member_id()
    b.pause()
    try:
        wait_assignment([a], 4, counts=[4], timeout=SESSION_MS / 1000 + 15, settle=0.5)
        desc = describe_group(adm, group)
        assert [m.member_id for m in desc.members] == [a.member_id()], desc.members
    finally:
        # Taken before SIGCONT: the woken member may report at once, before
        # this process runs again.
        t_resume = time.time()
        b.resume()
    b.wait_for(lambda: b.of("lost", since=t_resume) or b.of("revoke", since=t_resume), 20,
               "the frozen member to give up its partitions")
    final = wait_assignment([a, b], 4, counts=[2, 2], timeout=30)
    desc = describe_group(adm, group)
    assert desc.state == ConsumerGroupState.STABLE
    ids = {m.member_id: {tp.partition for tp in m.assignment.topic_partitions}
           for m in desc.members}
    assert ids == {a.member_id(): final["a"], b.member_id(): final["b"]}, (ids, final)
    assert b.member_id() != old_b_id, "evicted member came back with its old member id"


def test_commit_errors(gbroker, topic_name, group):
    """OffsetCommit errors Kafka reports per partition."""
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=2)
    c = Consumer(group_consumer_conf(gbroker.bootstrap, group))
    try:
        ok = c.commit(offsets=[TopicPartition(topic_name, 0, 5, "x" * 100)], asynchronous=False)
        assert [t.error for t in ok] == [None], ok

        def commit_error(tp):
            try:
                res = c.commit(offsets=[tp], asynchronous=False)
            except KafkaException as e:
                return e.args[0].code()
            errs = [t.error for t in res if t.error is not None]
            return errs[0].code() if errs else None
        # metadata longer than offset.metadata.max.bytes (4096)
        assert commit_error(TopicPartition(topic_name, 1, 5, "x" * 5000)) == \
            KafkaError.OFFSET_METADATA_TOO_LARGE
        # a partition that does not exist
        assert commit_error(TopicPartition(topic_name, 7, 5)) == \
            KafkaError.UNKNOWN_TOPIC_OR_PART
        assert commit_error(TopicPartition(f"{topic_name}-missing", 0, 5)) == \
            KafkaError.UNKNOWN_TOPIC_OR_PART
        got = c.committed([TopicPartition(topic_name, p) for p in range(2)], timeout=15)
        assert [(t.partition, t.offset, t.metadata) for t in got] == [
            (0, 5, "x" * 100), (1, OFFSET_INVALID, None)], got
    finally:
        c.close()


# --- 2. cooperative-sticky --------------------------------------------------------

def test_cooperative_sticky_revokes_only_moved_partitions(gbroker, pool, topic_name, group):
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=6)
    conf = group_consumer_conf(gbroker.bootstrap, group, session_timeout_ms=SESSION_MS,
                               partition_assignment_strategy="cooperative-sticky")
    a, b = pool.spawn("a", conf, [topic_name]), pool.spawn("b", conf, [topic_name])
    before = wait_assignment([a, b], 6, counts=[3, 3], timeout=40)
    assert describe_group(adm, group).partition_assignor == "cooperative-sticky"

    t_join = time.time()
    c = pool.spawn("c", conf, [topic_name])
    after = wait_assignment([a, b, c], 6, counts=[2, 2, 2], timeout=40)

    moved = set()
    for m in (a, b):
        kept = after[m.name]
        assert kept <= before[m.name], (
            f"{m.name} owned {sorted(before[m.name])}, now {sorted(kept)}: not sticky")
        revoked = [set(p for _t, p in e["tps"]) for e in m.of("revoke", since=t_join)]
        revoked_all = set().union(*revoked) if revoked else set()
        assert revoked_all == before[m.name] - kept, (
            f"{m.name}: revoked {revoked} but only {sorted(before[m.name] - kept)} moved "
            f"(kept {sorted(kept)}): an eager (full) revoke?")
        gained = set().union(*[set(p for _t, p in e["tps"])
                               for e in m.of("assign", since=t_join)])
        assert not gained, f"{m.name} was assigned {gained} but only had to give up partitions"
        assert not m.of("lost"), m.of("lost")
        moved |= revoked_all
    assert moved == after["c"], (moved, after["c"])
    c_assigned = [set(p for _t, p in e["tps"]) for e in c.of("assign") if e["tps"]]
    assert set().union(*c_assigned) == after["c"] and not c.of("revoke"), c.describe()

    # When c leaves, a and b only gain partitions: nothing is revoked from them.
    t_leave = time.time()
    c.close()
    final = wait_assignment([a, b], 6, counts=[3, 3], timeout=30)
    for m in (a, b):
        assert final[m.name] >= after[m.name], (m.name, after[m.name], final[m.name])
        assert not m.of("revoke", since=t_leave), m.of("revoke", since=t_leave)


# --- 3. static membership ---------------------------------------------------------

@pytest.mark.parametrize("how", ["close", "kill"])
def test_static_member_restart_causes_no_rebalance(gbroker, pool, topic_name, group, how):
    session_ms = 10_000
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=4)

    def conf(inst):
        return group_consumer_conf(gbroker.bootstrap, group, session_timeout_ms=session_ms,
                                   group_instance_id=f"{group}-{inst}")
    # a joins first (so it is the leader: the harder case on a static rejoin).
    a = pool.spawn("a", conf("a"), [topic_name])
    wait_assignment([a], 4, timeout=30, settle=0.5)
    b = pool.spawn("b", conf("b"), [topic_name])
    owned = wait_assignment([a, b], 4, counts=[2, 2], timeout=40)

    desc = describe_group(adm, group)
    insts = {m.group_instance_id: m for m in desc.members}
    assert set(insts) == {f"{group}-a", f"{group}-b"}, desc.members
    assert {tp.partition for tp in insts[f"{group}-a"].assignment.topic_partitions} == owned["a"]

    t0 = time.time()
    if how == "close":
        a.close()  # librdkafka does not send LeaveGroup for a static member
    else:
        a.kill()
    desc = describe_group(adm, group)
    assert {m.group_instance_id for m in desc.members} == {f"{group}-a", f"{group}-b"}, (
        f"static member gone right after {how}: {desc.members}")

    a2 = pool.spawn("a2", conf("a"), [topic_name])
    a2.wait_for(lambda: a2.owned(), 20, "restarted static member's assignment")
    rejoined = time.time() - t0
    print(f"static member back after {how}: {rejoined:.2f}s")
    assert rejoined < session_ms / 1000, f"rejoin took {rejoined:.1f}s (> session timeout)"
    # Give the other member several heartbeats to notice a rebalance, if any.
    time.sleep(3)
    assert a2.owned() == owned["a"], f"restarted member got {a2.owned()}, had {owned['a']}"
    assert b.owned() == owned["b"]
    b_events = [e for e in b.snapshot() if e["ev"] in ("assign", "revoke", "lost")
                and e["t"] >= t0]
    assert not b_events, f"the other member saw a rebalance: {b_events}"

    desc = describe_group(adm, group)
    assert desc.state == ConsumerGroupState.STABLE, desc.state
    insts = {m.group_instance_id: m for m in desc.members}
    assert set(insts) == {f"{group}-a", f"{group}-b"}, desc.members
    assert insts[f"{group}-a"].member_id == a2.member_id(), (insts[f"{group}-a"], a2.member_id())
    assert {tp.partition for tp in insts[f"{group}-a"].assignment.topic_partitions} == owned["a"]

    # The group still works: both consume new data from their own partitions.
    hw = produce_keyed(gbroker.bootstrap, topic_name, 200)
    wait_until(lambda: len(a2.messages()) + len(b.messages()) >= 200, timeout=20,
               what="200 messages consumed")
    assert {p for p, _o in a2.messages()} <= owned["a"]
    assert {p for p, _o in b.messages()} <= owned["b"]
    assert sum(hw.values()) == 200


def test_static_member_that_stays_away_expires(gbroker, pool, topic_name, group):
    """A static member that does not come back is removed after its session
    timeout (it never sends LeaveGroup) and its partitions move."""
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=4)

    def conf(inst):
        return group_consumer_conf(gbroker.bootstrap, group, session_timeout_ms=SESSION_MS,
                                   group_instance_id=f"{group}-{inst}")
    a = pool.spawn("a", conf("a"), [topic_name])
    b = pool.spawn("b", conf("b"), [topic_name])
    wait_assignment([a, b], 4, counts=[2, 2], timeout=40)
    t0 = time.time()
    a.close()
    # still a member right after close() (static members don't leave) ...
    assert {m.group_instance_id for m in describe_group(adm, group).members} == {
        f"{group}-a", f"{group}-b"}
    # ... until the session times out
    wait_assignment([b], 4, counts=[4], timeout=SESSION_MS / 1000 + 15, settle=0.5)
    took = assign_time(b, t0) - t0
    assert took >= SESSION_MS / 1000 - 1.5, f"static member removed after {took:.1f}s only"
    desc = describe_group(adm, group)
    assert [m.group_instance_id for m in desc.members] == [f"{group}-b"], desc.members


def test_static_member_duplicate_instance_id_fences_the_old_one(gbroker, pool, topic_name,
                                                                  group):
    """A second consumer with the same group.instance.id replaces the first
    (which gets FENCED_INSTANCE_ID, fatal in librdkafka) and takes over its
    partitions without a rebalance of the other member."""
    session_ms = 10_000
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=4)

    def conf(inst):
        return group_consumer_conf(gbroker.bootstrap, group, session_timeout_ms=session_ms,
                                   group_instance_id=f"{group}-{inst}")
    a = pool.spawn("a", conf("a"), [topic_name])
    b = pool.spawn("b", conf("b"), [topic_name])
    owned = wait_assignment([a, b], 4, counts=[2, 2], timeout=40)
    t0 = time.time()
    a2 = pool.spawn("a2", conf("a"), [topic_name])
    a2.wait_for(lambda: a2.owned(), 20, "the duplicate's assignment")
    assert a2.owned() == owned["a"], (a2.owned(), owned)

    def fatal():
        return [e for e in a.errors() if e.get("fatal") or e["code"] == KafkaError._FATAL]
    a.wait_for(fatal, session_ms / 1000, "a fatal error on the fenced member")
    assert any("fenced" in e["text"].lower() or e["code"] == KafkaError.FENCED_INSTANCE_ID
               for e in fatal()), fatal()
    time.sleep(2)
    b_events = [e for e in b.snapshot() if e["ev"] in ("assign", "revoke", "lost")
                and e["t"] >= t0]
    assert not b_events, f"the other member saw a rebalance: {b_events}"
    desc = describe_group(adm, group)
    insts = {m.group_instance_id: m.member_id for m in desc.members}
    assert insts == {f"{group}-a": a2.member_id(), f"{group}-b": b.member_id()}, insts


# --- 4. committed offsets survive a broker restart --------------------------------

@pytest.mark.single_node("restarts the only broker; test_cluster.py kills group coordinators")
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_committed_offsets_survive_broker_restart(broker_factory, pool, topic_name, how):
    b = broker_factory(*GROUP_BROKER_ARGS, "--set", "offsets.topic.num.partitions=10",
                       name="broker")
    adm = admin(b.bootstrap)
    create_topic(adm, topic_name, partitions=3)
    for p in range(3):
        produce_keyed(b.bootstrap, topic_name, 100, prefix=f"p{p}", partition=p)

    # Several groups (spread over __consumer_offsets partitions), each one member
    # committing a run of increasing offsets; the last acknowledged one counts.
    groups = [f"grp{i}-{topic_name}" for i in range(4)]
    expected: dict[str, dict[int, tuple[int, str]]] = {}
    members = []
    for gi, g in enumerate(groups):
        m = pool.spawn(f"m{gi}", group_consumer_conf(b.bootstrap, g), [topic_name])
        members.append(m)
    for m in members:
        wait_assignment([m], 3, timeout=30, settle=0.5)
    for gi, (g, m) in enumerate(zip(groups, members)):
        for step in range(10):
            offs = [(topic_name, p, 5 * step + 7 * gi + p, f"meta-{gi}-{step}-{p}")
                    for p in range(3)]
            ev = m.commit_offsets(offs)
            assert ev["ok"] and all(r[3] is None for r in ev["offsets"]), ev
        expected[g] = {p: (o, meta) for _t, p, o, meta in offs}
    for g in groups:
        assert group_offsets(adm, g) == {(topic_name, p): expected[g][p][0] for p in range(3)}

    if how == "sigterm":
        b.stop()
    else:
        b.kill()
    for m in members:
        m.kill()
    b.start()

    adm = admin(b.bootstrap)
    assert set(groups) <= set(listed_groups(adm)), sorted(listed_groups(adm))
    for g in groups:
        assert group_offsets(adm, g) == {(topic_name, p): expected[g][p][0] for p in range(3)}, g
        c = Consumer(group_consumer_conf(b.bootstrap, g))
        try:
            got = c.committed([TopicPartition(topic_name, p) for p in range(3)], timeout=15)
            assert {t.partition: (t.offset, t.metadata) for t in got} == expected[g], g
        finally:
            c.close()

    # A consumer of the first group resumes exactly at the committed offsets
    # (after the pre-restart member, restored with the group, times out).
    g = groups[0]
    m = pool.spawn("resumer", group_consumer_conf(b.bootstrap, g), [topic_name])
    wait_until(lambda: {p for p, _o in m.messages()} == {0, 1, 2}, timeout=40,
               what="a message from each partition")
    firsts = {}
    for p, o in m.messages():
        firsts.setdefault(p, o)
    assert firsts == {p: expected[g][p][0] for p in range(3)}, (firsts, expected[g])
    m.close()


# --- 5. admin API -----------------------------------------------------------------

def test_admin_list_describe_alter_delete_groups(gbroker, pool, topic_name, group):
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=4)
    hw = produce_keyed(gbroker.bootstrap, topic_name, 200)
    assert sum(hw.values()) == 200
    conf = group_consumer_conf(gbroker.bootstrap, group, client_id="weir-admin-test")
    members = [pool.spawn(f"m{i}", conf, [topic_name], commit="sync") for i in range(2)]
    owned = wait_assignment(members, 4, counts=[2, 2], timeout=40)
    wait_until(lambda: group_offsets(adm, group) == {(topic_name, p): hw[p] for p in range(4)},
               timeout=30, what="everything consumed and committed")
    other_empty = f"{group}-other"
    ev = pool.spawn("x", group_consumer_conf(gbroker.bootstrap, other_empty), [topic_name])
    wait_assignment([ev], 4, timeout=30, settle=0.5)
    ev.close()

    # list, with and without a state filter
    everything = listed_groups(adm)
    assert group in everything and other_empty in everything, sorted(everything)
    assert everything[group].state == ConsumerGroupState.STABLE
    assert everything[group].type == ConsumerGroupType.CLASSIC, everything[group].type
    assert not everything[group].is_simple_consumer_group
    stable = listed_groups(adm, {ConsumerGroupState.STABLE})
    assert group in stable and other_empty not in stable, sorted(stable)
    empty = listed_groups(adm, {ConsumerGroupState.EMPTY})
    assert other_empty in empty and group not in empty, sorted(empty)

    # describe
    desc = describe_group(adm, group)
    assert desc.group_id == group and desc.state == ConsumerGroupState.STABLE
    assert desc.type == ConsumerGroupType.CLASSIC, desc.type
    assert not desc.is_simple_consumer_group
    assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
    assert len(desc.members) == 2
    ids = {m.member_id() for m in members}
    assert {m.member_id for m in desc.members} == ids, (desc.members, ids)
    for md in desc.members:
        assert md.client_id == "weir-admin-test", md.client_id
        assert "127.0.0.1" in md.host, md.host
        assert md.group_instance_id is None
        mine = {tp.partition for tp in md.assignment.topic_partitions}
        assert {tp.topic for tp in md.assignment.topic_partitions} == {topic_name}
        assert mine in owned.values(), (mine, owned)

    # delete / alter refused while the group has members
    fut = adm.delete_consumer_groups([group], request_timeout=15)[group]
    with pytest.raises(KafkaException) as ei:
        fut.result(20)
    assert kafka_error_code(ei.value) == KafkaError.NON_EMPTY_GROUP, ei.value
    fut = adm.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic_name, 0, 1)])],
        request_timeout=15)[group]
    with pytest.raises(KafkaException) as ei:
        res = fut.result(20)
        errs = [tp.error for tp in res.topic_partitions if tp.error is not None]
        if errs:
            raise KafkaException(errs[0])
    assert kafka_error_code(ei.value) == KafkaError.UNKNOWN_MEMBER_ID, ei.value
    assert group_offsets(adm, group)[(topic_name, 0)] == hw[0], "offset changed anyway"

    for m in members:
        m.close()
    wait_until(lambda: describe_group(adm, group).state == ConsumerGroupState.EMPTY,
               timeout=10, what="group empty after both members left")
    desc = describe_group(adm, group)
    assert desc.members == [], desc.members

    # alter works on the empty group; a new member starts at the altered offsets
    new = {0: 3, 1: 0, 2: hw[2] - 1, 3: hw[3]}
    res = adm.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic_name, p, o)
                                              for p, o in new.items()])],
        request_timeout=15)[group].result(20)
    assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions
    assert group_offsets(adm, group) == {(topic_name, p): o for p, o in new.items()}
    m = pool.spawn("after-alter", conf, [topic_name])
    want = sum(hw[p] - o for p, o in new.items())
    wait_until(lambda: len(m.messages()) >= want, timeout=30, what=f"{want} messages")
    time.sleep(0.5)
    firsts: dict[int, int] = {}
    for p, o in m.messages():
        firsts.setdefault(p, o)
    assert firsts == {p: o for p, o in new.items() if o < hw[p]}, firsts
    assert len(m.messages()) == want
    m.close()

    # delete works once empty; then the group and its offsets are gone
    adm.delete_consumer_groups([group], request_timeout=15)[group].result(20)
    assert group not in listed_groups(adm)
    assert group_offsets(adm, group) == {}
    try:
        desc = describe_group(adm, group)
        assert desc.state == ConsumerGroupState.DEAD and desc.members == [], desc
    except KafkaException as e:
        assert kafka_error_code(e) == KafkaError.GROUP_ID_NOT_FOUND, e
    # deleting again: GROUP_ID_NOT_FOUND
    with pytest.raises(KafkaException) as ei:
        adm.delete_consumer_groups([group], request_timeout=15)[group].result(20)
    assert kafka_error_code(ei.value) == KafkaError.GROUP_ID_NOT_FOUND, ei.value
    # the other (empty) group is untouched
    assert other_empty in listed_groups(adm)


# --- 7. lag ---------------------------------------------------------------------
# Burrow (Debian's 1.2.1) cannot monitor Weir: its cluster module sends
# ListOffsets v0 (sarama.OffsetRequest{} with no Version, whatever
# kafka-version is configured), which Weir does not serve (1-10, like Kafka 4
# after KIP-896), so Burrow never learns the high watermarks and drops every
# consumer offset it reads from __consumer_offsets ("dropped ... no topic").
# It also needs a ZooKeeper for itself. So lag is computed here from the
# committed offsets and the high watermarks, the way lag exporters do.

def test_lag_from_committed_offsets_and_high_watermarks(gbroker, pool, topic_name, group):
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=3)
    for p, n in enumerate((50, 80, 20)):
        produce_keyed(gbroker.bootstrap, topic_name, n, prefix=f"p{p}", partition=p)
    m = pool.spawn("m", group_consumer_conf(gbroker.bootstrap, group), [topic_name])
    wait_assignment([m], 3, timeout=30, settle=0.5)
    committed = {0: 10, 1: 80, 2: 0}
    ev = m.commit_offsets([(topic_name, p, o, "") for p, o in committed.items()])
    assert ev["ok"], ev
    m.kill()

    hw = high_watermarks(gbroker.bootstrap, topic_name, 3)
    assert hw == {0: 50, 1: 80, 2: 20}, hw
    offs = group_offsets(adm, group)
    lag = {p: hw[p] - offs[(topic_name, p)] for p in range(3)}
    assert lag == {0: 40, 1: 0, 2: 20}, lag
    # the same via list_offsets (ListOffsets latest)
    from confluent_kafka.admin import OffsetSpec
    latest = adm.list_offsets({TopicPartition(topic_name, p): OffsetSpec.latest()
                               for p in range(3)}, request_timeout=15)
    assert {tp.partition: f.result(20).offset for tp, f in latest.items()} == hw


# --- 8. KIP-848 consumer protocol ---------------------------------------------------

def kip848_members(binary, bootstrap: str, group: str) -> dict[str, tuple[int, list[int]]]:
    """ConsumerGroupDescribe through `weir group describe`: member id ->
    (member epoch, assigned partitions)."""
    p = subprocess.run([str(binary), "group", "describe", group, "--output", "json",
                        "--bootstrap", bootstrap], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    d = json.loads(p.stdout)
    return {m["member_id"]: (m["member_epoch"], sorted(a["partition"] for a in m["assignment"]))
            for m in d.get("members", [])}


@pytest.mark.single_node("kills and restarts the only broker; test_cluster.py kills KIP-848 "
                         "coordinators")
def test_kip848_member_keeps_its_epoch_and_assignment_across_a_broker_kill(
        weir_binary, broker_factory, pool, topic_name, group):
    """KIP-848 group state is in __consumer_offsets (Kafka's ConsumerGroup*
    records): after kill -9 and a restart of the only broker, the member's
    heartbeats carry on with the same member id and epoch, nothing moves and
    nothing committed is delivered again."""
    b = broker_factory(*GROUP_BROKER_ARGS, *KIP848_BROKER_ARGS, name="broker")
    adm = admin(b.bootstrap)
    create_topic(adm, topic_name, partitions=4)
    conf = kip848_consumer_conf(b.bootstrap, group)
    a = pool.spawn("a", conf, [topic_name], commit="sync")
    wait_assignment([a], 4, counts=[4], timeout=45)
    # A second member joins and leaves, so the epoch is past what a rejoin
    # on a fresh coordinator would give.
    x = pool.spawn("x", conf, [topic_name], commit="sync")
    wait_assignment([a, x], 4, counts=[2, 2], timeout=45)
    x.close()
    wait_assignment([a], 4, counts=[4], timeout=45)
    hw = produce_keyed(b.bootstrap, topic_name, 100)
    wait_until(lambda: group_offsets(adm, group) == {(topic_name, p): hw[p] for p in range(4)},
               timeout=30, what="the first 100 consumed and committed")
    before = wait_until(lambda: (lambda m: len(m) == 1 and next(iter(m.values()))[1] == [0, 1, 2, 3]
                                 and m)(kip848_members(weir_binary, b.bootstrap, group)),
                        timeout=30, what="a stable one-member group")
    (member_id, (epoch, _)), = before.items()
    assert epoch > 1, before

    b.kill()
    restarted = time.time()
    b.start()
    adm = admin(b.bootstrap)
    hw2 = produce_keyed(b.bootstrap, topic_name, 100, prefix="after")
    total = {p: hw.get(p, 0) + hw2.get(p, 0) for p in range(4)}
    wait_until(lambda: group_offsets(adm, group) == {(topic_name, p): total[p] for p in range(4)},
               timeout=60, what="the next 100 consumed and committed after the restart")
    assert kip848_members(weir_binary, b.bootstrap, group) == {member_id: (epoch, [0, 1, 2, 3])}
    # The member was never told to give anything up or start again.
    assert a.of("revoke", since=restarted) == [] and a.of("lost", since=restarted) == []
    assert a.member_id() == member_id
    msgs = a.messages()
    assert len(msgs) == len(set(msgs)), "a record was delivered twice"
    assert sorted(msgs) == sorted((p, o) for p in range(4) for o in range(total[p]))
    a.close()


@pytest.mark.skipif(f"not broker_advertises({API_CONSUMER_GROUP_HEARTBEAT})",
                    reason="broker does not advertise ConsumerGroupHeartbeat (API key 68, KIP-848) "
                           "in ApiVersions yet")
def test_kip848_consumer_protocol_two_members_then_one(gbroker, pool, topic_name, group):
    adm = admin(gbroker.bootstrap)
    create_topic(adm, topic_name, partitions=4)
    # group.protocol=consumer rejects the classic session/heartbeat/assignor settings.
    conf = kip848_consumer_conf(gbroker.bootstrap, group)
    a = pool.spawn("a", conf, [topic_name], commit="sync")
    b = pool.spawn("b", conf, [topic_name], commit="sync")
    owned = wait_assignment([a, b], 4, counts=[2, 2], timeout=45)
    desc = describe_group(adm, group)
    assert len(desc.members) == 2, desc.members
    assert desc.type == ConsumerGroupType.CONSUMER, desc.type
    assert {m.member_id for m in desc.members} == {a.member_id(), b.member_id()}
    for md in desc.members:
        assert {tp.partition for tp in md.assignment.topic_partitions} in owned.values()
    assert listed_groups(adm)[group].type == ConsumerGroupType.CONSUMER

    hw = produce_keyed(gbroker.bootstrap, topic_name, 200)
    wait_until(lambda: len(a.messages()) + len(b.messages()) >= 200, timeout=30,
               what="200 messages consumed")
    assert {p for p, _o in a.messages()} <= owned["a"]
    assert {p for p, _o in b.messages()} <= owned["b"]
    wait_until(lambda: group_offsets(adm, group) == {(topic_name, p): hw[p] for p in range(4)},
               timeout=20, what="everything committed")

    b.close()
    wait_assignment([a], 4, counts=[4], timeout=30)
    # a resumes b's partitions exactly at b's commits
    hw2 = produce_keyed(gbroker.bootstrap, topic_name, 100, prefix="more")
    total = {p: hw.get(p, 0) + hw2.get(p, 0) for p in range(4)}
    wait_until(lambda: group_offsets(adm, group) == {(topic_name, p): total[p] for p in range(4)},
               timeout=30, what="the rest consumed and committed by the survivor")
    for p in owned["b"]:
        offs = sorted(o for q, o in a.messages() if q == p)
        assert offs == list(range(hw.get(p, 0), total[p])), (p, offs[:5], hw, total)
    a.close()

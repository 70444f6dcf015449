"""Share groups (KIP-932) with Apache Kafka's own client (kafka-clients 4.3):
KafkaShareConsumer and the admin client's share-group APIs.

One JVM (tests/java/weir/share/ShareScenarios.java) serves the scenarios
against one broker per module. The broker allows acquisition locks down to
one second (`group.share.min.record.lock.duration.ms`), so the tests that
wait for a lock to expire set a short `share.record.lock.duration.ms` on
their own group and nobody else's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

import java_harness
import kafka_wire
from conftest import HOST
from weir_helpers import admin, create_topic, wait_until

SCENARIOS = "weir.share.ShareScenarios"


@pytest.fixture(scope="module")
def share_broker(broker_factory_module, request):
    """A broker of the suite's target (under the cluster target, a kill
    and start are the whole cluster's)."""
    from conftest import _start_target
    return _start_target(broker_factory_module, request,
                         ("--set", "group.share.min.record.lock.duration.ms=1000"), "share-broker")


@pytest.fixture(scope="module")
def broker_factory_module(weir_binary, _broker_root):
    from conftest import BrokerFactory
    f = BrokerFactory(weir_binary, _broker_root)
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def java(share_broker):
    java_harness.require()
    proc = java_harness.JavaProcess(SCENARIOS, share_broker.bootstrap)
    yield proc
    proc.close()


def earliest(java, group, **more):
    configs = {"share.auto.offset.reset": "earliest", **more}
    return java.call("configure_group", group=group, configs=configs)


def test_three_consumers_share_one_partition(java, topic_name):
    """Three share consumers on a one-partition topic: each gets a share,
    and together they accept every record exactly once."""
    group = f"g-{topic_name}"
    seen = earliest(java, group)
    assert seen["share.auto.offset.reset"] == "earliest"
    java.call("produce", topic=topic_name, count=60)
    out = java.call("split", topic=topic_name, group=group, consumers=3, count=60, timeout=200)
    per = out["per_consumer"]
    assert all(len(offsets) > 0 for offsets in per), per
    assert out["accepted"] == list(range(60))
    everything = sorted(o for offsets in per for o in offsets)
    assert everything == list(range(60)), "no record went to two consumers"


def test_release_reject_and_the_delivery_count_limit(java, topic_name):
    """RELEASE brings a record back (delivery count 2), REJECT archives it
    for good, and a record released at every delivery is archived once it
    reaches share.delivery.count.limit (2 here)."""
    group = f"g-{topic_name}"
    earliest(java, group, **{"share.delivery.count.limit": "2"})
    java.call("produce", topic=topic_name, count=3)
    out = java.call("ack_types", topic=topic_name, group=group, count=3, timeout=120)
    assert out["deliveries"] == {"v0": [1, 2], "v1": [1], "v2": [1, 2]}
    assert out["start_offset"] == 3


def test_a_killed_consumers_records_go_to_another_after_the_lock_duration(
        java, share_broker, topic_name):
    """A consumer killed (SIGKILL, its JVM) while holding records: once
    their acquisition lock (2 s for this group) expires, another consumer
    gets them, at delivery count 2, and every record is accepted."""
    group = f"g-{topic_name}"
    earliest(java, group, **{"share.record.lock.duration.ms": "2000"})
    java.call("produce", topic=topic_name, count=20)
    victim = java_harness.JavaProcess(SCENARIOS, share_broker.bootstrap)
    try:
        held = victim.call("hold", topic=topic_name, group=group, max=5)
    finally:
        victim.proc.kill()
        victim.proc.wait(30)
        victim.close()
    assert held == [0, 1, 2, 3, 4]
    java.call("open", name="survivor", topic=topic_name, group=group)
    try:
        out = java.call("consume", name="survivor", accepted=20, timeout=150)
    finally:
        java.call("close", name="survivor")
    assert out["confirmed"] == list(range(20))
    last_count = {offset: count for offset, count in out["delivered"]}
    assert all(last_count[o] == 2 for o in held), out["delivered"]


def test_broker_kill_9_neither_loses_acknowledgements_nor_redelivers_them(
        java, share_broker, topic_name):
    """kill -9 of the broker while a consumer holds records: after the
    restart no record whose acknowledgement was confirmed comes back, the
    records that were in flight come back, and every record ends up
    acknowledged."""
    group = f"g-{topic_name}"
    earliest(java, group)
    java.call("produce", topic=topic_name, count=300)
    java.call("open", name="k", topic=topic_name, group=group,
              consumer={"share.acquire.mode": "record_limit", "max.poll.records": "50"})
    try:
        before = java.call("consume", name="k", accepted=100)
        in_flight = java.call("consume", name="k", commit=False)
        share_broker.kill()
        share_broker.start()
        acked = set(before["confirmed"])
        after = java.call("consume", name="k", accepted=300 - len(acked), timeout=200)
    finally:
        java.call("close", name="k")
    assert len(acked) >= 100 and in_flight["delivered"], (before, in_flight)
    redelivered = {offset for offset, _ in after["delivered"]} & acked
    assert not redelivered, f"acknowledged before the crash, delivered again: {sorted(redelivered)}"
    assert {o for o, _ in in_flight["delivered"]} <= {o for o, _ in after["delivered"]}
    assert acked | set(after["confirmed"]) == set(range(300))


def test_share_members_keep_their_ids_and_epochs_across_a_broker_kill(
        java, share_broker, topic_name):
    """kill -9 of the broker: the membership comes back from
    `__consumer_offsets`, so the member keeps its id and epoch (a second
    member joined and left first, so the epoch is past what a rejoin would
    give), and consumption goes on with nothing acknowledged delivered
    again."""
    group = f"g-{topic_name}"
    earliest(java, group)
    java.call("produce", topic=topic_name, count=200)
    conf = {"share.acquire.mode": "record_limit", "max.poll.records": "10"}
    java.call("open", name="stay", topic=topic_name, group=group, consumer=conf)
    java.call("open", name="leave", topic=topic_name, group=group, consumer=conf)
    try:
        acked = set(java.call("consume", name="stay", accepted=30)["confirmed"])
        acked |= set(java.call("consume", name="leave", accepted=10)["confirmed"])
        java.call("close", name="leave")
        before = wait_until(
            lambda: (d := java.call("describe_group", group=group))
            and len(d["members"]) == 1 and d["members"][0]["epoch"] == d["epoch"] and d,
            timeout=60, what="the second member's departure, heard of by the first")
        [member] = before["members"]
        assert member["epoch"] > 1, before
        share_broker.kill()
        share_broker.start()
        after = java.call("describe_group", group=group)
        assert after["state"] == "Stable", after
        assert [(m["member_id"], m["epoch"], m["assignment"]) for m in after["members"]] == \
            [(member["member_id"], member["epoch"], member["assignment"])]
        assert after["epoch"] == before["epoch"], (before, after)
        rest = java.call("consume", name="stay", accepted=200 - len(acked), timeout=200)
        again = java.call("describe_group", group=group)
    finally:
        java.call("close", name="stay")
    assert [(m["member_id"], m["epoch"]) for m in again["members"]] == \
        [(member["member_id"], member["epoch"])], again
    redelivered = {offset for offset, _ in rest["delivered"]} & acked
    assert not redelivered, f"acknowledged before the crash, delivered again: {sorted(redelivered)}"
    assert acked | set(rest["confirmed"]) == set(range(200))


def test_admin_describes_lists_alters_and_deletes_a_share_group(java, topic_name):
    """The admin client's share-group APIs: describeShareGroups (member and
    assignment), listShareGroupOffsets (start offset and lag), listGroups of
    type share, alterShareGroupOffsets (refused while the group has
    members), deleteShareGroupOffsets and deleteShareGroups."""
    group = f"g-{topic_name}"
    earliest(java, group)
    java.call("produce", topic=topic_name, count=10)
    java.call("open", name="a", topic=topic_name, group=group,
              consumer={"share.acquire.mode": "record_limit", "max.poll.records": "4"})
    try:
        assert len(java.call("consume", name="a", accepted=4)["confirmed"]) == 4
        d = java.call("describe_group", group=group)
        assert d["state"] == "Stable"
        assert [m["assignment"] for m in d["members"]] == [[f"{topic_name}-0"]]
        assert d["members"][0]["client_id"] == "weir-share-tests"
        assert d["epoch"] >= 1 and d["coordinator"] >= 0
        assert java.call("list_offsets", group=group) == {
            f"{topic_name}-0": {"start_offset": 4, "lag": 6}}
        listed = java.call("list_share_groups")[group]
        assert (listed["type"].lower(), listed["state"]) == ("share", "Stable")
        # DescribeGroups (and ConsumerGroupDescribe) do not describe share
        # groups, as in Kafka.
        assert java.call("describe_as_consumer_group", group=group) == \
            "GroupIdNotFoundException"
        assert java.call("alter_offsets", group=group, topic=topic_name,
                         offset=8) == "GroupNotEmptyException"
    finally:
        java.call("close", name="a")
    assert java.call("describe_group", group=group)["state"] == "Empty"
    assert java.call("alter_offsets", group=group, topic=topic_name, offset=8) == "ok"
    assert java.call("list_offsets", group=group) == {
        f"{topic_name}-0": {"start_offset": 8, "lag": 2}}
    assert java.call("delete_offsets", group=group, topic=topic_name) == "ok"
    assert java.call("list_offsets", group=group) == {}
    assert java.call("delete_group", group=group) == "ok"
    assert group not in java.call("list_share_groups")
    assert java.call("delete_group", group=group) == "GroupIdNotFoundException"


def test_librdkafka_share_consumers_split_a_partition_and_release(share_broker, topic_name):
    """librdkafka 2.16's share consumer (confluent-kafka 2.16's ShareConsumer):
    while one consumer holds records the other gets different ones; a
    RELEASEd record comes back at delivery count 2; together they accept
    every record."""
    group = f"g-{topic_name}"
    adm = admin(share_broker.bootstrap)
    create_topic(adm, topic_name)
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    adm.incremental_alter_configs([res])[res].result(30)
    p = Producer({"bootstrap.servers": share_broker.bootstrap, "linger.ms": 0})
    for i in range(40):  # one record a batch
        p.produce(topic_name, key=f"k{i}", value=f"v{i}")
        p.flush(30)
    conf = {"bootstrap.servers": share_broker.bootstrap, "group.id": group,
            "share.acknowledgement.mode": "explicit", "max.poll.records": 5}
    c1, c2 = ShareConsumer(conf), ShareConsumer(conf)
    try:
        for c in (c1, c2):
            c.subscribe([topic_name])

        def first_records(c):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                msgs = [m for m in c.poll(0.5) if m.error() is None]
                if msgs:
                    return msgs
            raise AssertionError("no records within 60 s")

        held = first_records(c1)
        other = first_records(c2)
        assert not {m.offset() for m in held} & {m.offset() for m in other}
        released = held[0].offset()
        c1.acknowledge(held[0], AcknowledgeType.RELEASE)
        for m in held[1:]:
            c1.acknowledge(m)
        for m in other:
            c2.acknowledge(m)
        assert all(e is None for e in c1.commit_sync(30).values())
        assert all(e is None for e in c2.commit_sync(30).values())
        accepted = {m.offset() for m in held[1:] + other}
        again = []
        deadline = time.monotonic() + 90
        while len(accepted) < 40 and time.monotonic() < deadline:
            for c in (c1, c2):
                msgs = [m for m in c.poll(0.2) if m.error() is None]
                for m in msgs:
                    c.acknowledge(m)
                    if m.offset() == released:
                        again.append(m.delivery_count())
                if msgs and all(e is None for e in c.commit_sync(30).values()):
                    accepted |= {m.offset() for m in msgs}
        assert accepted == set(range(40))
        assert again == [2]
    finally:
        c1.close()
        c2.close()


def test_read_committed_groups_skip_aborted_records(java, topic_name):
    """share.isolation.level: a read_committed group gets only the records
    of committed transactions; a read_uncommitted group (the default) gets
    the aborted ones too. Both start offsets end past the markers."""
    end = java.call("produce_txn", topic=topic_name)
    committed, everything = f"rc-{topic_name}", f"ru-{topic_name}"
    earliest(java, committed, **{"share.isolation.level": "read_committed"})
    earliest(java, everything)
    out = java.call("drain", topic=topic_name, group=committed, until=end)
    assert out == {"values": ["c0", "c1", "c2", "c3", "c4", "c5"], "start_offset": end}
    out = java.call("drain", topic=topic_name, group=everything, until=end)
    assert out["values"] == ["c0", "c1", "c2", "a0", "a1", "c3", "c4", "c5"]


def test_auto_offset_reset_by_duration_starts_at_that_age(java, topic_name):
    """share.auto.offset.reset=by_duration:PT1H: a new share-partition
    starts at the first record at most an hour old (records two hours old
    are never delivered); latest (the default) delivers only what comes
    after the group starts."""
    end = java.call("produce_aged", topic=topic_name, old=5, new=4, age_ms=2 * 3600 * 1000)
    group = f"d-{topic_name}"
    seen = java.call("configure_group", group=group,
                     configs={"share.auto.offset.reset": "by_duration:PT1H"})
    assert seen["share.auto.offset.reset"] == "by_duration:PT1H"
    out = java.call("drain", topic=topic_name, group=group, until=end)
    assert out == {"values": ["new0", "new1", "new2", "new3"], "start_offset": end}


@pytest.mark.single_node("joins over the raw protocol at the first broker, which need not be the "
                        "coordinator; test_cluster.py's ..._in_a_cluster_too finds it")
def test_latest_is_resolved_at_the_first_fetch_not_at_the_assignment(
        java, share_broker, topic_name):
    """share.auto.offset.reset=latest (the default) is resolved where Kafka
    resolves it: by the share-partition at its first ShareFetch
    (SharePartition.maybeInitialize), not when the group coordinator first
    assigns the partition. Records produced after a member was assigned
    the partition but before anyone fetched it are never delivered."""
    end = java.call("produce_aged", topic=topic_name, old=0, new=3, age_ms=0)
    group = f"l-{topic_name}"
    member, _ = kafka_wire.join_share_group(HOST, share_broker.port, group, topic_name)
    p = Producer({"bootstrap.servers": share_broker.bootstrap, "acks": "all"})
    for i in range(2):
        p.produce(topic_name, value=f"mid{i}".encode(), partition=0)
    assert p.flush(30) == 0
    kafka_wire.leave_share_group(HOST, share_broker.port, group, member)
    out = java.call("drain", topic=topic_name, group=group, until=end + 2)
    assert out == {"values": [], "start_offset": end + 2}


@pytest.mark.single_node("joins over the raw protocol at the first broker, which need not be the "
                        "coordinator; test_cluster.py's ..._in_a_cluster twin finds it")
def test_a_partition_assigned_but_never_fetched_is_listed_without_a_start_offset(
        java, share_broker, topic_name):
    """listShareGroupOffsets of a whole group (DescribeShareGroupOffsets
    naming no topic) lists a share-partition that is assigned but was never
    fetched, as Kafka lists one whose state is initialized without a start
    offset: start offset -1, which the Java admin client gives as no
    offset information."""
    java.call("produce", topic=topic_name, count=3)
    group = f"u-{topic_name}"
    member, _ = kafka_wire.join_share_group(HOST, share_broker.port, group, topic_name)
    try:
        assert java.call("list_offsets", group=group) == {f"{topic_name}-0": None}
    finally:
        kafka_wire.leave_share_group(HOST, share_broker.port, group, member)


def test_renew_keeps_records_locked_past_the_lock_duration(java, topic_name):
    """RENEW (KIP-1222, share.renew.acknowledge.enable defaults to true):
    a consumer renewing its records' locks every 700 ms keeps them for 5 s
    although the group's lock lasts 2 s; another consumer of the group gets
    none of them meanwhile, and the holder then accepts them."""
    group = f"g-{topic_name}"
    seen = earliest(java, group, **{"share.record.lock.duration.ms": "2000"})
    assert seen["share.renew.acknowledge.enable"] == "true"
    java.call("produce", topic=topic_name, count=3)
    out = java.call("renew", topic=topic_name, group=group, hold_ms=5000, every_ms=700)
    assert out["other_got"] == [], out
    assert out["renewals"] and all(out["renewals"]), out
    assert out["accepted"] and set(out["delivery_counts"]) == {1}, out
    assert len(out["delivery_counts"]) == 3 * (len(out["renewals"]) + 1), out
    assert out["start_offset"] == 3


def test_renew_refused_when_the_group_disables_it_and_the_lock_expires(java, topic_name):
    """With share.renew.acknowledge.enable=false a RENEW is not confirmed,
    and the records go to the other consumer once the 2 s lock expires."""
    group = f"g-{topic_name}"
    earliest(java, group, **{"share.record.lock.duration.ms": "2000",
                             "share.renew.acknowledge.enable": "false"})
    java.call("produce", topic=topic_name, count=3)
    out = java.call("renew", topic=topic_name, group=group, hold_ms=5000, every_ms=700)
    assert out["renewals"] == [False], out
    assert sorted(set(out["other_got"])) == [0, 1, 2], out


def test_share_consumers_need_read_on_the_group_and_the_topic(broker_factory_module, topic_name):
    """ACLs as Kafka checks them for share groups: without READ on the
    group the consumer's poll fails with GroupAuthorizationException;
    with READ on the group but only DESCRIBE on the topic, with
    TopicAuthorizationException; with READ on both, records arrive."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType)
    from confluent_kafka.admin import ResourceType as RT
    secured = broker_factory_module(
        "--set", "authorizer.class.name=StandardAuthorizer",
        "--set", "allow.everyone.if.no.acl.found=true", name="share-acl-broker")
    java_harness.require()
    j = java_harness.JavaProcess(SCENARIOS, secured.bootstrap)
    adm = admin(secured.bootstrap)

    def allow(rtype, name, op, who="User:ANONYMOUS"):
        b = AclBinding(rtype, name, ResourcePatternType.LITERAL, who, "*", op,
                       AclPermissionType.ALLOW)
        for f in adm.create_acls([b]).values():
            f.result(30)

    try:
        j.call("produce", topic=topic_name, count=3)
        earliest(j, "no-read")
        earliest(j, "describe-only")
        earliest(j, "allowed")
        # Each resource gets an ACL for someone else, so ANONYMOUS is no
        # longer let in by allow.everyone.if.no.acl.found.
        allow(RT.GROUP, "no-read", AclOperation.READ, who="User:other")
        allow(RT.TOPIC, topic_name, AclOperation.DESCRIBE)
        for g in ("describe-only", "allowed"):
            allow(RT.GROUP, g, AclOperation.READ)
        time.sleep(1)  # let the authorizer's cache see the new ACLs
        assert j.call("first_poll", topic=topic_name, group="no-read", secs=30) == \
            "GroupAuthorizationException"
        assert j.call("first_poll", topic=topic_name, group="describe-only", secs=30) == \
            "TopicAuthorizationException"
        allow(RT.TOPIC, topic_name, AclOperation.READ)
        time.sleep(1)
        assert j.call("first_poll", topic=topic_name, group="allowed", secs=60) == "records"
    finally:
        j.close()


def weir_cli(binary, broker, *args, check=None):
    """Runs `weir ARGS --bootstrap BROKER`; returns (exit code, stdout, stderr)."""
    cmd = [str(binary), *args, "--bootstrap", broker.bootstrap]
    env = dict(os.environ, NO_COLOR="1")
    env.pop("WEIR_BOOTSTRAP", None)
    p = subprocess.run(cmd, capture_output=True, timeout=60, env=env, text=True)
    if check is not None:
        assert p.returncode == check, (cmd, p.returncode, p.stdout, p.stderr)
    return p.returncode, p.stdout, p.stderr


def cli_json(binary, broker, *args):
    return json.loads(weir_cli(binary, broker, *args, "--output", "json", check=0)[1])


def test_weir_group_lists_describes_resets_and_deletes_a_share_group(
        java, share_broker, weir_binary, topic_name):
    """`weir group` on a share group driven by KafkaShareConsumer, checked
    against what Kafka's admin client reports: list --type share,
    describe (state, members, assignment, start offset and lag, and each
    of --state/--members/--offsets alone), reset-offsets (refused while
    the group has a member; --dry-run changes nothing; --to-offset,
    --to-earliest, --to-latest, --to-datetime move the start offset, and a
    new consumer then gets exactly the records from there), delete-offsets
    and delete."""
    b, group, tp = weir_binary, f"g-{topic_name}", f"{topic_name}-0"
    earliest(java, group)
    java.call("produce", topic=topic_name, count=10)
    java.call("open", name="cli", topic=topic_name, group=group,
              consumer={"share.acquire.mode": "record_limit", "max.poll.records": "4"})
    try:
        assert len(java.call("consume", name="cli", accepted=4)["confirmed"]) == 4
        listed = {g["group"]: g for g in cli_json(b, share_broker, "group", "list", "--type", "share")}
        assert (listed[group]["type"], listed[group]["state"]) == ("share", "Stable")
        assert set(listed) == set(java.call("list_share_groups"))

        d = cli_json(b, share_broker, "group", "describe", group)
        j = java.call("describe_group", group=group)
        assert (d["type"], d["state"], d["assignor"]) == ("share", j["state"], "simple")
        assert (d["group_epoch"], d["assignment_epoch"], d["coordinator"]) == \
            (j["epoch"], j["assignment_epoch"], j["coordinator"])
        assert [(m["member_id"], m["client_id"], m["host"], m["member_epoch"],
                 [f"{a['topic']}-{a['partition']}" for a in m["assignment"]])
                for m in d["members"]] == \
            [(m["member_id"], m["client_id"], m["host"], m["epoch"], m["assignment"])
             for m in j["members"]]
        assert d["members"][0]["subscribed_topics"] == [topic_name]
        offsets = java.call("list_offsets", group=group)
        assert offsets == {tp: {"start_offset": 4, "lag": 6}}
        assert [(f"{p['topic']}-{p['partition']}", p["start_offset"], p["lag"])
                for p in d["partitions"]] == [(tp, 4, 6)]
        assert d["total_lag"] == 6

        _, state, _ = weir_cli(b, share_broker, "group", "describe", group, "--state", check=0)
        assert "TYPE share  STATE Stable  ASSIGNOR simple" in state and "START-OFFSET" not in state
        _, members, _ = weir_cli(b, share_broker, "group", "describe", group, "--members", check=0)
        assert j["members"][0]["member_id"] in members and "START-OFFSET" not in members
        assert f"{topic_name}:0" in members and "STATE" not in members
        _, offs, _ = weir_cli(b, share_broker, "group", "describe", group, "--offsets", check=0)
        header, row = offs.strip().splitlines()
        assert header.split() == ["TOPIC", "PARTITION", "LEADER-EPOCH", "START-OFFSET", "LAG"]
        assert row.split()[0:2] == [topic_name, "0"] and row.split()[3:] == ["4", "6"]

        code, _, err = weir_cli(b, share_broker, "group", "reset-offsets", group,
                                "--topic", topic_name, "--to-earliest")
        assert code != 0 and "stop its consumers first" in err, err
    finally:
        java.call("close", name="cli")
    wait_until(lambda: cli_json(b, share_broker, "group", "describe", group)["state"] == "Empty",
               timeout=30, what="the share group to empty")

    def reset(*how, which=("--topic", topic_name)):
        out = cli_json(b, share_broker, "group", "reset-offsets", group, *which, *how)
        return [(p["partition"], p["current_offset"], p["new_offset"]) for p in out["offsets"]]

    assert reset("--to-offset", "8", "--dry-run") == [(0, 4, 8)]
    assert java.call("list_offsets", group=group) == {tp: {"start_offset": 4, "lag": 6}}
    assert reset("--to-offset", "8", "--execute") == [(0, 4, 8)]
    assert java.call("list_offsets", group=group) == {tp: {"start_offset": 8, "lag": 2}}
    assert reset("--to-earliest") == [(0, 8, 0)]
    assert java.call("list_offsets", group=group) == {tp: {"start_offset": 0, "lag": 10}}
    assert reset("--to-latest") == [(0, 0, 10)]
    assert java.call("list_offsets", group=group) == {tp: {"start_offset": 10, "lag": 0}}
    assert reset("--to-datetime", "1970-01-01T00:00:00Z") == [(0, 10, 0)]
    assert reset("--to-offset", "6", which=("--all-topics",)) == [(0, 0, 6)]
    java.call("open", name="after", topic=topic_name, group=group)
    try:
        out = java.call("consume", name="after", distinct=4)
    finally:
        java.call("close", name="after")
    assert out["confirmed"] == [6, 7, 8, 9], out
    wait_until(lambda: cli_json(b, share_broker, "group", "describe", group)["state"] == "Empty",
               timeout=30, what="the share group to empty")

    code, _, err = weir_cli(b, share_broker, "group", "delete-offsets", group,
                            "--topic", f"{topic_name}:0")
    assert code != 0 and "whole topics" in err, err
    weir_cli(b, share_broker, "group", "delete-offsets", group, "--topic", topic_name, check=0)
    assert java.call("list_offsets", group=group) == {}
    weir_cli(b, share_broker, "group", "delete", group, check=0)
    assert group not in java.call("list_share_groups")
    code, _, err = weir_cli(b, share_broker, "group", "describe", group)
    assert code != 0 and "does not exist" in err, err

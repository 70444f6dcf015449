#!/usr/bin/env python3
"""The S3 sink's throughput as a ratio to plain PUTs of the same bytes to
the same S3-compatible server (moto) in the same run.

    .venv/bin/python bench/s3_bench.py                 # MIB=256
    MIB=64 WEIR=target/debug/weir .venv/bin/python bench/s3_bench.py

Knobs (environment): MIB (data through the sink), RECORD (record size in
bytes, default 1024), FLUSH (records per object, default 16384: 16 MiB
objects of 1 KiB records), PART (s3.part.size, default 25 MiB, Confluent's),
WEIR (the weir binary; default the release build under CARGO_TARGET_DIR or
target/), DIR (scratch directory).

One `weir serve` broker and one `weir connect` worker. The topic (one
partition) is filled first; then the sink (ByteArrayFormat, so the objects
hold the records' bytes and a newline each) runs from its creation until
the last object is in the bucket. The baseline is boto3 PUTting the same
number of objects of the same size, one after another, to the same server
(a bucket of its own), as one sink task uploads them. MB = 10^6 bytes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import free_port, http  # noqa: E402  (bench/ is the script's directory)

import boto3
from boto3.s3.transfer import TransferConfig
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
MIB = int(os.environ.get("MIB", "256"))
RECORD = int(os.environ.get("RECORD", "1024"))
FLUSH = int(os.environ.get("FLUSH", "16384"))
PART = int(os.environ.get("PART", str(25 << 20)))
KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"





def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 - not up yet (connection refused)
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    root = Path(os.environ.get("DIR") or tempfile.mkdtemp(prefix="weir-s3-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    weir = Path(os.environ.get("WEIR", target / "release" / "weir"))
    n = (MIB << 20) // RECORD
    if n % FLUSH:
        # The sink uploads full objects only (no time rotation here).
        raise SystemExit(f"MIB MiB of RECORD-byte records ({n}) is not a multiple of FLUSH")
    objects = n // FLUSH
    procs = []
    try:
        s3_port, kafka_port, rest_port = free_port(), free_port(), free_port()
        s3_url = f"http://127.0.0.1:{s3_port}"
        procs.append(subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p",
             str(s3_port)], stdout=open(root / "moto.log", "w"), stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [str(weir), "serve", "--data-dir", str(root / "data"), "--listen",
             f"127.0.0.1:{kafka_port}", "--registry-listen", f"127.0.0.1:{free_port()}",
             "--admin-listen", f"127.0.0.1:{free_port()}", "--connect-listen", "off",
             "--rest-listen", "off", "--console-listen", "off", "--sql-listen", "off"],
            stdout=open(root / "broker.log", "w"), stderr=subprocess.STDOUT))
        bootstrap = f"127.0.0.1:{kafka_port}"
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name=REGION,
                          aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        wait(lambda: s3.list_buckets() is not None, 60, "moto_server")
        adm = AdminClient({"bootstrap.servers": bootstrap})
        wait(lambda: adm.list_topics(timeout=2) is not None, 60, "the broker")
        for f in adm.create_topics([NewTopic("s3bench", 1, 1)]).values():
            f.result()
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                      "queue.buffering.max.kbytes": 1 << 20})
        value = b"x" * RECORD
        for i in range(n):
            while True:
                try:
                    p.produce("s3bench", value, partition=0)
                    break
                except BufferError:
                    p.poll(0.05)
        assert p.flush(300) == 0

        # Baseline: the same objects PUT by a plain client.
        obj = (value + b"\n") * FLUSH
        s3.create_bucket(Bucket="raw")
        cfg = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, use_threads=False)
        start = time.monotonic()
        for k in range(objects):
            s3.upload_fileobj(io.BytesIO(obj), "raw", f"raw/{k}", Config=cfg)
        raw_secs = time.monotonic() - start
        total = len(obj) * objects

        procs.append(subprocess.Popen(
            [str(weir), "connect", "--bootstrap", bootstrap, "--listen",
             f"127.0.0.1:{rest_port}", "--set", "group.id=s3bench",
             "--set", "offset.flush.interval.ms=1000"],
            stdout=open(root / "connect.log", "w"), stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{rest_port}"
        wait(lambda: http("GET", url + "/health")["status"] == "healthy", 60, "the worker")
        s3.create_bucket(Bucket="sink")
        config = {"connector.class": "io.confluent.connect.s3.S3SinkConnector",
                  "topics": "s3bench", "s3.bucket.name": "sink", "s3.region": REGION,
                  "store.url": s3_url, "aws.access.key.id": KEY, "aws.secret.access.key": SECRET,
                  "format.class": "io.confluent.connect.s3.format.bytearray.ByteArrayFormat",
                  "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
                  "flush.size": str(FLUSH), "s3.part.size": str(PART)}
        start = time.monotonic()
        http("POST", url + "/connectors", {"name": "s3bench", "config": config})

        def done():
            keys = s3.list_objects_v2(Bucket="sink").get("KeyCount", 0)
            return keys >= objects
        wait(done, 3600, "every object in the sink's bucket")
        sink_secs = time.monotonic() - start
        stored = sum(o["Size"] for o in s3.list_objects_v2(Bucket="sink")["Contents"])
        assert stored == total, (stored, total)
    finally:
        for pr in reversed(procs):
            pr.kill()
    mb = total / 1e6
    print("| MIB | records | objects | raw PUTs MB/s | S3 sink MB/s | sink / raw |")
    print("|---|---|---|---|---|---|")
    print(f"| {MIB} | {n} | {objects} | {mb / raw_secs:.1f} | {mb / sink_secs:.1f} | "
          f"{raw_secs / sink_secs:.2f} |")


if __name__ == "__main__":
    main()

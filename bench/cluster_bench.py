#!/usr/bin/env python3
"""Cluster mode (issue 16) against the single-node engine, same client,
same run: `weir bench` against one local broker, one `--cluster` broker
and three, the cluster on PostgreSQL and moto's S3 server started as the
tests start them.

    .venv/bin/python bench/cluster_bench.py
    PRODUCE_SECONDS=5 WEIR=target/debug/weir .venv/bin/python bench/cluster_bench.py

Knobs (environment): PRODUCE_SECONDS (how long the produce phase runs,
default 15: long enough that flushing and the database's own work show
in the rate, not only a burst into the brokers' and the client's
queues), RECORDS (the most records the catch-up read takes, default
2000000), SIZE (value bytes, default 1024), PARTITIONS (default 6),
SECONDS (each paced phase, default 20), RATE (the paced phases'
records/s instead of half the produce throughput), FLUSH_MS
(`--cluster-flush-ms`, default the broker's), WEIR (the binary; default
the release build under CARGO_TARGET_DIR or target/), KEEP (set: keep
the brokers' logs and data), SETUPS (comma-separated subset of single,
cluster1, cluster3, cluster1-serial, cluster3-serial, cluster3-file,
cluster1-s3s, cluster3-s3s; `-serial` runs the brokers with
`--cluster-serial-flush`, each object committed before the next upload
starts, the baseline for the flush pipeline; `-file` puts the objects in
a local directory (`file://`) instead of moto; `-s3s` uses the S3 server
of the `s3s-fs` crate, written in Rust, instead of moto, which is one
Python process: set S3S_FS to its binary, built with `cargo install
s3s-fs@0.14.1 --locked --features binary`).

Per setup: `weir bench produce` (acks=all, as fast as one client goes:
throughput and ack latency), `weir bench consume` (catch-up read of the
produce phase's topic; on moto, also the store's GET requests per MB
read, from moto's request log); then, on fresh brokers with a fresh
database and bucket, `weir bench produce` paced at half the produce
throughput (ack p50/p99, and the brokers' own Produce request time from
their `/metrics` histogram, as the bound of the bucket the p50/p99 falls
in), and `weir bench e2e` at the same rate (a consumer reading along:
ack and end-to-end p99). For cluster setups, during the produce phase:
objects committed (`weir.objects`) and PostgreSQL commits
(`pg_stat_database.xact_commit`) per second; for every setup, CPU
seconds of the brokers (and of PostgreSQL and the S3 server) per MB
produced. Prints one JSON object per setup, then a table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tools import free_port  # noqa: E402  (bench/ is the script's directory)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from pg_helpers import Postgres  # noqa: E402

PRODUCE_SECONDS = int(os.environ.get("PRODUCE_SECONDS", "15"))
RECORDS = int(os.environ.get("RECORDS", "2000000"))
SIZE = int(os.environ.get("SIZE", "1024"))
PARTITIONS = int(os.environ.get("PARTITIONS", "6"))
SECONDS = int(os.environ.get("SECONDS", "20"))
FLUSH_MS = os.environ.get("FLUSH_MS")
RATE = int(os.environ.get("RATE", "0"))
SETUPS = os.environ.get(
    "SETUPS", "single,cluster1,cluster3,cluster1-serial,cluster3-serial,cluster3-file").split(",")
KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"
HOST = "127.0.0.1"


def weir_binary() -> Path:
    if os.environ.get("WEIR"):
        return Path(os.environ["WEIR"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "weir"


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU of processes and their reaped children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick
    return total


def postgres_pids(pg: Postgres) -> list[int]:
    """This server's postmaster and its backends (not other servers')."""
    master = int((pg.data / "postmaster.pid").read_text().split()[0])
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return [master] + [int(p) for p in out.stdout.split()]


def wait_port(port: int, seconds: float) -> None:
    import socket
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {seconds}s")


class Brokers:
    def __init__(self, weir: Path, root: Path, n: int, extra: list[str], env: dict):
        self.procs: list[subprocess.Popen] = []
        self.ports: list[int] = []
        self.admin_ports: list[int] = []
        for i in range(1, n + 1):
            port, admin = free_port(), free_port()
            data = root / f"node{i}"
            data.mkdir()
            cmd = [str(weir), "serve", "--data-dir", str(data), "--listen", f"{HOST}:{port}",
                   "--registry-listen", f"{HOST}:{free_port()}",
                   "--admin-listen", f"{HOST}:{admin}",
                   "--rest-listen", "off", "--connect-listen", "off",
                   "--console-listen", "off", "--sql-listen", "off",
                   "--set", f"node.id={i}", *extra]
            log = open(root / f"node{i}.log", "ab")
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, env=env))
            self.ports.append(port)
            self.admin_ports.append(admin)
        for p in self.ports:
            wait_port(p, 60)
        # Cluster brokers see each other once their heartbeats are in, and
        # every broker creates its internal topics after it listens.
        time.sleep(4)

    def produce_buckets(self) -> dict[float, int]:
        """The brokers' Produce request-time histogram, summed: cumulative
        count per bucket bound in seconds."""
        total: dict[float, int] = {}
        prefix = 'weir_request_duration_seconds_bucket{api="Produce",le="'
        for port in self.admin_ports:
            with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(prefix):
                        le, count = line[len(prefix):].split('"} ')
                        bound = float("inf") if le == "+Inf" else float(le)
                        total[bound] = total.get(bound, 0) + int(float(count))
        return total

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{p}" for p in self.ports)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def bucket_quantile(before: dict[float, int], after: dict[float, int], q: float) -> str:
    """The bucket bound (ms) under which a fraction q of the requests
    between two scrapes finished: "<= 50" and the like."""
    bounds = sorted(after)
    n = after[bounds[-1]] - before.get(bounds[-1], 0) if bounds else 0
    for b in bounds:
        if n and after[b] - before.get(b, 0) >= q * n:
            return "<= inf" if b == float("inf") else f"<= {b * 1000:g}"
    return "-"


def bench(weir: Path, bootstrap: str, *args: str, must: bool = True) -> dict:
    """One `weir bench` run's JSON; a run that fails stops the benchmark,
    unless `must` is false: then its error, e.g. a consumer that fell
    behind the producer for good."""
    cmd = [str(weir), "bench", *args, "-b", bootstrap, "--json",
           "--record-size", str(SIZE), "--partitions", str(PARTITIONS)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        if not must:
            return {"error": out.stderr.strip().splitlines()[-1]}
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def start_brokers(name: str, part: str, weir: Path, root: Path, pg: Postgres | None,
                  s3: dict[str, tuple[str, int]]) -> tuple[Brokers, str | None]:
    """The setup's brokers on a database, bucket and data directories of
    their own (`part` tells the setup's two environments apart)."""
    env = dict(os.environ)
    extra: list[str] = []
    db = None
    workdir = root / name / part
    workdir.mkdir(parents=True)
    if name != "single":
        db = f"bench_{name.replace('-', '_')}_{part}"
        pg.sql(f"CREATE DATABASE {db}")
        if name.endswith("-file"):
            store = f"file://{workdir / 'store'}"
        else:
            import boto3
            bucket = f"bench-{name}-{part}"
            s3_url, _ = s3[server_of(name)]
            boto3.client("s3", endpoint_url=s3_url, aws_access_key_id=KEY,
                         aws_secret_access_key=SECRET,
                         region_name=REGION).create_bucket(Bucket=bucket)
            env.update(AWS_ENDPOINT_URL=s3_url, AWS_REGION=REGION, AWS_ACCESS_KEY_ID=KEY,
                       AWS_SECRET_ACCESS_KEY=SECRET)
            store = f"s3://{bucket}/weir"
        extra = ["--cluster", f"postgres://{pg.user}@{HOST}:{pg.port}/{db}",
                 "--object-store", store]
        if FLUSH_MS:
            extra += ["--cluster-flush-ms", FLUSH_MS]
        if name.endswith("-serial"):
            extra.append("--cluster-serial-flush")
    n = 3 if name.startswith("cluster3") else 1
    return Brokers(weir, workdir, n, extra, env), db


def run_setup(name: str, weir: Path, root: Path, pg: Postgres | None,
              s3: dict[str, tuple[str, int]]) -> dict:
    brokers, db = start_brokers(name, "full", weir, root, pg, s3)
    n = len(brokers.procs)
    try:
        broker_pids = [p.pid for p in brokers.procs]
        pg_pids = postgres_pids(pg) if db else []
        side_pids = pg_pids + ([s3[server_of(name)][1]] if db and "file" not in name else [])

        def counters():
            c = {"broker_cpu": cpu_seconds(broker_pids), "side_cpu": cpu_seconds(side_pids),
                 "t": time.monotonic()}
            if db:
                (objs,), = pg.rows("SELECT count(*) FROM weir.objects", db=db)
                (xacts,), = pg.rows(
                    f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'")
                c.update(objects=int(objs), xacts=int(xacts))
            return c

        before = counters()
        produce = bench(weir, brokers.bootstrap, "produce", "--topic", "bench-produce",
                        "--duration", f"{PRODUCE_SECONDS}s", "--acks", "all")
        after = counters()
        secs = after["t"] - before["t"]
        mb = produce["produce"]["bytes"] / 1e6
        rate = RATE or max(1, int(produce["produce"]["records_per_sec"] / 2))
        gets_before = store_gets(root, name)
        consume = bench(weir, brokers.bootstrap, "consume", "--topic", "bench-produce",
                        "--records", str(RECORDS))
        gets = store_gets(root, name) - gets_before if gets_before is not None else None
    finally:
        brokers.stop()
    if not os.environ.get("KEEP"):
        # Gigabytes at full speed: the disk holds one environment at a time.
        shutil.rmtree(root / name / "full", ignore_errors=True)
        shutil.rmtree(root / "s3s" / f"bench-{name}-full", ignore_errors=True)
    # The paced phases measure half load, not the produce phase's
    # leftovers (its write-back on one node; its compaction, the
    # database's vacuum and the store's writes in a cluster): fresh
    # brokers on a fresh database and bucket, the disk synced.
    subprocess.run(["sync"], check=True)
    brokers, _ = start_brokers(name, "paced", weir, root, pg, s3)
    try:
        produce_before = brokers.produce_buckets()
        paced = bench(weir, brokers.bootstrap, "produce", "--topic", "bench-paced",
                      "--rate", str(rate), "--duration", f"{SECONDS}s", "--acks", "all")
        produce_after = brokers.produce_buckets()
        # The same rate with a consumer reading along: twice the work on
        # the same cores, for the end-to-end latency.
        e2e = bench(weir, brokers.bootstrap, "e2e", "--topic", "bench-e2e",
                    "--rate", str(rate), "--duration", f"{SECONDS}s", "--acks", "all",
                    must=False)
        result = {
            "setup": name,
            "brokers": n,
            "produce_records_per_sec": produce["produce"]["records_per_sec"],
            "produce_mb_per_sec": produce["produce"]["mb_per_sec"],
            "produce_errors": produce["produce"]["errors"],
            "ack_latency_full_speed": produce["ack_latency"],
            "paced_rate": rate,
            "ack_latency_half_load": paced["ack_latency"],
            "ack_latency_half_load_e2e": e2e.get("ack_latency"),
            "e2e_latency_half_load": e2e.get("e2e_latency"),
            "e2e_error": e2e.get("error"),
            # Inside the brokers, from a Produce request read to its
            # answer written: what of the ack's latency is theirs.
            "broker_produce_half_load": {
                "p50_ms": bucket_quantile(produce_before, produce_after, 0.5),
                "p99_ms": bucket_quantile(produce_before, produce_after, 0.99),
            },
            "consume_mb_per_sec": consume["consume"]["mb_per_sec"],
            "broker_cpu_s_per_mb": round((after["broker_cpu"] - before["broker_cpu"]) / mb, 4),
            "pg_s3_cpu_s_per_mb": round((after["side_cpu"] - before["side_cpu"]) / mb, 4),
        }
        if gets is not None:
            result["store_gets_per_mb_read"] = round(
                gets / max(consume["consume"]["bytes"] / 1e6, 1e-9), 2)
        if db:
            result["objects_per_sec"] = round((after["objects"] - before["objects"]) / secs, 1)
            result["pg_commits_per_sec"] = round((after["xacts"] - before["xacts"]) / secs, 1)
        return result
    finally:
        brokers.stop()


def server_of(setup: str) -> str:
    return "s3s" if setup.endswith("-s3s") else "moto"


def store_gets(root: Path, setup: str) -> int | None:
    """GET requests moto has logged for the setup's bucket so far (None
    for the other stores: s3s-fs logs no requests)."""
    if setup == "single" or server_of(setup) != "moto" or setup.endswith("-file"):
        return None
    with open(root / "moto.log", "rb") as f:
        return sum(1 for line in f if f"GET /bench-{setup}-full/".encode() in line)


def start_s3(kind: str, root: Path) -> subprocess.Popen:
    port = free_port()
    if kind == "s3s":
        exe = os.environ.get("S3S_FS")
        if not exe:
            raise SystemExit("the -s3s setups need S3S_FS, the path of an s3s-fs binary")
        (root / "s3s").mkdir()
        cmd = [exe, "--host", HOST, "--port", str(port), "--access-key", KEY,
               "--secret-key", SECRET, str(root / "s3s")]
    else:
        cmd = [str(Path(sys.executable).with_name("moto_server")), "-H", HOST, "-p", str(port)]
    # moto logs one line per request: the catch-up read's GETs are
    # counted from it.
    log = open(root / f"{kind}.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    proc.url = f"http://{HOST}:{port}"
    wait_port(port, 60)
    return proc


def e2e_cell(r: dict) -> str:
    if r["e2e_error"]:
        return r["e2e_error"]
    return f"{r['ack_latency_half_load_e2e']['p99_ms']} / {r['e2e_latency_half_load']['p99_ms']}"


def main() -> None:
    weir = weir_binary()
    if not weir.exists():
        raise SystemExit(f"no weir binary at {weir}: build it or set WEIR")
    root = Path(tempfile.mkdtemp(prefix="weir-cluster-bench-", dir=os.environ.get("DIR")))
    pg = None
    servers: dict[str, subprocess.Popen] = {}
    try:
        if any(s != "single" for s in SETUPS):
            pg = Postgres(free_port()).start()
        for kind in {server_of(s) for s in SETUPS if s != "single" and not s.endswith("-file")}:
            servers[kind] = start_s3(kind, root)
        s3 = {kind: (p.url, p.pid) for kind, p in servers.items()}
        results = []
        for name in SETUPS:
            r = run_setup(name, weir, root, pg, s3)
            print(json.dumps(r), flush=True)
            results.append(r)
        base = next((r for r in results if r["setup"] == "single"), None)
        print("\n| setup | produce rec/s (ratio) | ack p50 / p99 ms (full speed) "
              "| ack p50 / p99 ms at 50 % | broker Produce p50 / p99 ms at 50 % "
              "| ack p99 / e2e p99 ms at 50 % with a consumer | catch-up MB/s "
              "| broker CPU s/MB | PG+S3 CPU s/MB | objects/s | PG commits/s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            ratio = (f" ({r['produce_records_per_sec'] / base['produce_records_per_sec']:.2f})"
                     if base else "")
            full, half = r["ack_latency_full_speed"], r["ack_latency_half_load"]
            inside = r["broker_produce_half_load"]
            print(f"| {r['setup']} | {r['produce_records_per_sec']:.0f}{ratio} "
                  f"| {full['p50_ms']} / {full['p99_ms']} | {half['p50_ms']} / {half['p99_ms']} "
                  f"| {inside['p50_ms']} / {inside['p99_ms']} "
                  f"| {e2e_cell(r)} | {r['consume_mb_per_sec']} "
                  f"| {r['broker_cpu_s_per_mb']} | {r['pg_s3_cpu_s_per_mb']} "
                  f"| {r.get('objects_per_sec', '-')} | {r.get('pg_commits_per_sec', '-')} |")
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait(10)
        if pg:
            pg.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

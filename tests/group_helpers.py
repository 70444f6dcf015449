"""Helpers for the consumer-group integration tests (test_groups*.py).

Group members run as child processes (this file is also the child's program:
`python group_helpers.py '<json spec>'`), so that a member can be killed with
SIGKILL (no LeaveGroup, no final commit) and restarted, and so that every
member has its own librdkafka instance. A child subscribes with
confluent-kafka and reports everything it sees as JSON lines on stdout:

    {"ev": "assign" | "revoke" | "lost", "tps": [[topic, partition], ...]}
    {"ev": "msg", "topic": ..., "p": ..., "o": ..., "key": ...}   after processing
    {"ev": "commit", "p": ..., "o": ...}  a synchronous commit of offset o was acknowledged
    {"ev": "commit_error", ...} / {"ev": "error", ...}
    {"ev": "committed", "offsets": [[topic, partition, offset], ...]}
    {"ev": "closed"}

The parent (ChildConsumer) sends one-word commands on the child's stdin:
"close" (consumer.close(), then exit 0) and "committed" (report committed()
of the current assignment). EOF on stdin also closes the consumer.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"

# Broker args for every group test: a short initial-rebalance delay keeps the
# first join of each new group fast (Kafka's default is 3 s).
GROUP_BROKER_ARGS = ("--set", "group.initial.rebalance.delay.ms=200")

API_CONSUMER_GROUP_HEARTBEAT = 68


def group_consumer_conf(bootstrap: str, group: str, **overrides) -> dict:
    """confluent-kafka consumer config for a classic-protocol group member."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "broker.address.family": "v4",
        # Notice new topics/partitions quickly.
        "topic.metadata.refresh.interval.ms": 2000,
    }
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return conf


# --- the child program -------------------------------------------------------------


def _child_main(spec: dict) -> int:
    from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: F401

    out_lock = threading.Lock()

    def emit(ev: str, **kw) -> None:
        kw["ev"] = ev
        kw["t"] = time.time()
        line = json.dumps(kw)
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    cmds: queue.Queue = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            cmds.put(line.strip())
        cmds.put("eof")

    threading.Thread(target=read_stdin, daemon=True).start()

    conf = dict(spec["conf"])
    conf["error_cb"] = lambda err: emit("error", where="error_cb", code=err.code(),
                                        name=err.name(), text=str(err), fatal=err.fatal())
    c = Consumer(conf)

    def tps(parts):
        return [[p.topic, p.partition] for p in parts]

    def on_assign(consumer, parts):
        emit("assign", tps=tps(parts), member_id=_safe_memberid(consumer))

    def on_revoke(consumer, parts):
        emit("revoke", tps=tps(parts))

    def on_lost(consumer, parts):
        emit("lost", tps=tps(parts))

    c.subscribe(spec["topics"], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit("started", pid=os.getpid())
    delay = spec.get("delay_ms", 0) / 1000.0
    commit = spec.get("commit", "none")
    while True:
        try:
            cmd = cmds.get_nowait()
        except queue.Empty:
            cmd = None
        if cmd in ("close", "eof"):
            c.close()
            emit("closed")
            return 0
        if cmd and cmd.startswith("commit "):
            # "commit [[topic, partition, offset, metadata], ...]": one synchronous commit
            offs = [TopicPartition(t, p, o, m) for t, p, o, m in json.loads(cmd[len("commit "):])]
            try:
                res = c.commit(offsets=offs, asynchronous=False)
                emit("commit_offsets", ok=True, offsets=[[r.topic, r.partition, r.offset,
                                                         None if r.error is None else str(r.error)]
                                                        for r in res])
            except KafkaException as e:
                emit("commit_offsets", ok=False, text=str(e))
        if cmd == "committed":
            try:
                got = c.committed(c.assignment(), timeout=10)
                emit("committed", offsets=[[p.topic, p.partition, p.offset] for p in got])
            except KafkaException as e:
                emit("committed_error", text=str(e))
        msg = c.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            err = msg.error()
            emit("error", where="poll", code=err.code(), name=err.name(), text=str(err),
                 fatal=err.fatal())
            continue
        if delay:
            time.sleep(delay)
        key = msg.key()
        emit("msg", topic=msg.topic(), p=msg.partition(), o=msg.offset(),
             key=None if key is None else key.decode("utf-8", "replace"))
        if commit == "sync":
            try:
                c.commit(message=msg, asynchronous=False)
                emit("commit", topic=msg.topic(), p=msg.partition(), o=msg.offset() + 1)
            except KafkaException as e:
                err = e.args[0]
                emit("commit_error", p=msg.partition(), o=msg.offset() + 1, code=err.code(),
                     name=err.name(), text=str(err))


def _safe_memberid(consumer):
    try:
        return consumer.memberid()
    except Exception:  # noqa: BLE001 - informational only
        return None


# --- the parent side -------------------------------------------------------------


def die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ChildConsumer:
    """One group member in a child process; see the module docstring."""

    def __init__(self, name: str, conf: dict, topics: list[str], *, commit: str = "none",
                 delay_ms: int = 0, log_dir: Path | None = None):
        self.name = name
        self.conf = conf
        self.topics = list(topics)
        spec = {"conf": conf, "topics": self.topics, "commit": commit, "delay_ms": delay_ms}
        log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="weir-group-"))
        self.stderr_path = log_dir / f"{name}-{time.monotonic_ns()}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, bufsize=1, preexec_fn=die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line}
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"ev": "eof", "t": time.time()})
            self._cond.notify_all()

    # --- state derived from the events ------------------------------------------
    def snapshot(self) -> list[dict]:
        with self._cond:
            return list(self.events)

    def of(self, kind: str, since: float = 0.0) -> list[dict]:
        return [e for e in self.snapshot() if e["ev"] == kind and e.get("t", 0) >= since]

    def owned(self) -> set[int]:
        """Partitions currently owned, replaying assign (adds: eager assigns
        follow a full revoke, cooperative ones are increments), revoke and lost."""
        owned: set[int] = set()
        for e in self.snapshot():
            if e["ev"] == "assign":
                owned |= {p for _t, p in e["tps"]}
            elif e["ev"] in ("revoke", "lost"):
                owned -= {p for _t, p in e["tps"]}
        return owned

    def last_rebalance_event_time(self) -> float:
        ts = [e["t"] for e in self.snapshot() if e["ev"] in ("assign", "revoke", "lost")]
        return max(ts) if ts else 0.0

    def messages(self) -> list[tuple[int, int]]:
        return [(e["p"], e["o"]) for e in self.snapshot() if e["ev"] == "msg"]

    def acked_commits(self) -> dict[int, int]:
        """partition -> highest offset whose synchronous commit was acknowledged."""
        out: dict[int, int] = {}
        for e in self.of("commit"):
            out[e["p"]] = max(out.get(e["p"], -1), e["o"])
        return out

    def member_id(self) -> str | None:
        ids = [e.get("member_id") for e in self.of("assign") if e.get("member_id")]
        return ids[-1] if ids else None

    def errors(self) -> list[dict]:
        return self.of("error")

    def crashed(self) -> list[dict]:
        return self.of("crash")

    # --- control ---------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def committed(self, timeout: float = 15.0) -> dict[int, int]:
        n = len(self.of("committed"))
        self.send("committed")
        self.wait_for(lambda: len(self.of("committed")) > n, timeout, "committed() answer")
        return {p: o for _t, p, o in self.of("committed")[-1]["offsets"]}

    def commit_offsets(self, offsets: list[tuple], timeout: float = 15.0) -> dict:
        """One synchronous commit of [(topic, partition, offset, metadata)]; returns the event."""
        n = len(self.of("commit_offsets"))
        self.send("commit " + json.dumps([list(o) for o in offsets]))
        self.wait_for(lambda: len(self.of("commit_offsets")) > n, timeout, "commit answer")
        return self.of("commit_offsets")[-1]

    def close(self, timeout: float = 30.0) -> None:
        """consumer.close() in the child (a dynamic member sends LeaveGroup)."""
        if not self.alive:
            return
        try:
            self.send("close")
        except (BrokenPipeError, OSError):
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name}: close() did not finish within {timeout}s\n"
                                 f"{self.stderr_tail()}")
        self._reader.join(5)
        assert rc == 0, f"{self.name} exited with {rc} on close\n{self.stderr_tail()}"
        assert self.of("closed"), f"{self.name}: no 'closed' event\n{self.stderr_tail()}"

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no final commit."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)

    def pause(self) -> None:
        """SIGSTOP: the member stops heartbeating (a long GC pause / frozen VM)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._stderr.close()

    def stderr_tail(self, n: int = 40) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return f"--- {self.name} stderr (last {n} lines) ---\n" + "\n".join(lines[-n:])

    def describe(self) -> str:
        evs = [e for e in self.snapshot() if e["ev"] not in ("msg", "commit")]
        return (f"{self.name} (alive={self.alive}, owned={sorted(self.owned())}, "
                f"msgs={len(self.messages())}): " + json.dumps(evs[-15:]))

    def wait_for(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for {what}\n"
                                     f"{self.describe()}\n{self.stderr_tail()}")
            with self._cond:
                self._cond.wait(0.1)


def wait_assignment(members: list[ChildConsumer], partitions: int, counts: list[int] | None = None,
                    timeout: float = 30.0, settle: float = 1.5) -> dict[str, set[int]]:
    """Wait until the members own disjoint partition sets covering 0..partitions-1
    (with exactly `counts[i]` partitions for member i, if given) and no member
    has seen an assign/revoke/lost event for `settle` seconds. Returns
    {member name: owned partitions}."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        owned = {m.name: m.owned() for m in members}
        union = set().union(*owned.values()) if owned else set()
        disjoint = sum(len(s) for s in owned.values()) == len(union)
        ok = (disjoint and union == set(range(partitions))
              and (counts is None or [len(owned[m.name]) for m in members] == list(counts)))
        quiet = time.time() - max(m.last_rebalance_event_time() for m in members) >= settle
        if ok and quiet:
            return owned
        last = owned
        for m in members:
            if not m.alive:
                raise AssertionError(f"{m.name} died while waiting for an assignment\n"
                                     f"{m.describe()}\n{m.stderr_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no settled assignment of {partitions} partitions (counts {counts}) within "
                f"{timeout}s; last {last}\n" + "\n".join(m.describe() for m in members))
        time.sleep(0.1)


class ChildPool:
    """Owns the ChildConsumers of one test; kills any still alive at teardown."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[ChildConsumer] = []

    def spawn(self, name: str, conf: dict, topics, **kw) -> ChildConsumer:
        c = ChildConsumer(name, conf, list(topics), log_dir=self.log_dir, **kw)
        self.children.append(c)
        return c

    def cleanup(self) -> None:
        for c in self.children:
            c.cleanup()


# --- ApiVersions probe for tests of not-yet-served APIs ------------------------------

_ADVERTISED: dict[int, bool] = {}


def broker_advertises(api_key: int) -> bool:
    """Whether a freshly started `weir serve` advertises `api_key` in ApiVersions.

    Starts a throwaway broker (same binary the suite uses) once per API key and
    process. Meant for lazily evaluated `pytest.mark.skipif("...")` strings, so
    it only runs when the marked test is actually about to run."""
    if api_key not in _ADVERTISED:
        import shutil
        from conftest import Broker, weir_bin  # tests/ is on sys.path (conftest adds it)
        import kafka_wire
        binary = weir_bin()
        if not binary.exists():
            return True  # don't skip: let the test fail on the missing binary instead
        workdir = Path(tempfile.mkdtemp(prefix="weir-apiprobe-"))
        b = Broker(binary, workdir, name="api-probe")
        try:
            b.start()
            _ADVERTISED[api_key] = api_key in kafka_wire.api_versions(HOST, b.port)
        finally:
            try:
                b.cleanup()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    return _ADVERTISED[api_key]


if __name__ == "__main__":
    try:
        sys.exit(_child_main(json.loads(sys.argv[1])))
    except Exception:
        import traceback
        sys.stdout.write(json.dumps({"ev": "crash", "t": time.time(),
                                     "traceback": traceback.format_exc()}) + "\n")
        sys.stdout.flush()
        raise

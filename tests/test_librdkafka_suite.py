"""librdkafka's own integration tests against Weir: 0011 (batch produce,
with the record-level errors of KIP-467) and 0081 (the admin API), run by
librdkafka's `test-runner` from its source release.

The source comes from crates.io, a registry Weir's setup already uses:
the crate rdkafka-sys 4.10.0+2.12.1 carries librdkafka v2.12.1's whole
tree, `tests/` and the test-runner's sources included. `cargo fetch`
downloads it into Cargo's cache, its checksum is compared with the one
pinned here, and librdkafka plus the test-runner are built once per
checksum in the temp dir (no GSSAPI, curl or zstd, unoptimized: a few
minutes on two cores). The runner then runs one test against a node set
as the suite's default scenario expects (`num.partitions=4`, topics
auto-created) with an authorizer that lets everyone in, as the suite's
clusters have (0081 creates, lists and deletes ACLs).

To run it by hand, build as `build_runner()` does, start `weir serve --set
num.partitions=4 --set authorizer.class.name=StandardAuthorizer --set
allow.everyone.if.no.acl.found=true`, write `metadata.broker.list=HOST:PORT`
to a test.conf and run `TESTS=0011 RDKAFKA_TEST_CONF=test.conf
TEST_KAFKA_VERSION=4.0.0 ./test-runner` in librdkafka's `tests/`
directory with `LD_LIBRARY_PATH=../src:../src-cpp`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

CRATE = "rdkafka-sys"
CRATE_VERSION = "4.10.0+2.12.1"
CRATE_SHA256 = "e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOOLS = ("cargo", "gcc", "g++", "make", "perl")
# Weir speaks Kafka 4.0's protocol (metadata.version 25); the suite gates
# its sub-tests on the broker version it is told.
KAFKA_VERSION = "4.0.0"


def _require_tools() -> None:
    lack = [t for t in TOOLS if not shutil.which(t)]
    if lack:
        msg = "librdkafka's suite needs " + ", ".join(lack)
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def _run(cmd: list[str], cwd: Path, log: Path, timeout: float, env: dict | None = None) -> None:
    with open(log, "a") as out:
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             + log.read_text(errors="replace")[-4000:])


def _fetch_crate(work: Path) -> Path:
    """The pinned crate from crates.io through cargo, checksum verified."""
    manifest = work / "fetch"
    (manifest / "src").mkdir(parents=True, exist_ok=True)
    (manifest / "src" / "lib.rs").write_text("")
    (manifest / "Cargo.toml").write_text(
        '[package]\nname = "librdkafka-source"\nversion = "0.0.0"\nedition = "2021"\n\n'
        f'[dependencies]\n{CRATE} = {{ version = "={CRATE_VERSION}", default-features = false }}\n')
    _run(["cargo", "fetch", "--manifest-path", str(manifest / "Cargo.toml")], work,
         work / "fetch.log", 600)
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = sorted(home.glob(f"registry/cache/*/{CRATE}-{CRATE_VERSION}.crate"))
    assert found, f"{CRATE} {CRATE_VERSION} not in Cargo's cache after cargo fetch"
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    assert digest == CRATE_SHA256, f"{found[0]}: sha256 {digest}, expected {CRATE_SHA256}"
    return found[0]


def build_runner() -> Path:
    """librdkafka's tests/ directory with a built test-runner (cached)."""
    work = Path(tempfile.gettempdir()) / f"weir-librdkafka-{CRATE_SHA256[:16]}"
    work.mkdir(exist_ok=True)
    tests = work / f"{CRATE}-{CRATE_VERSION}" / "librdkafka" / "tests"
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build, even across processes
        if (work / "done").exists():
            return tests
        shutil.rmtree(work / f"{CRATE}-{CRATE_VERSION}", ignore_errors=True)
        with tarfile.open(_fetch_crate(work)) as t:
            t.extractall(work, filter="data")
        src = tests.parent
        log = work / "build.log"
        _run(["./configure", "--no-download", "--disable-gssapi", "--disable-curl",
              "--disable-zstd", "--disable-optimization", "--disable-debug-symbols"],
             src, log, 300)
        for d in ("src", "src-cpp"):
            _run(["make", "-j2", "-C", d], src, log, 1800)
        _run(["make", "-j2", "-C", "tests", "test-runner"], src, log, 1800)
        (work / "done").write_text("ok\n")
    return tests


@pytest.fixture(scope="module")
def runner() -> Path:
    _require_tools()
    return build_runner()


# 0081 runs every admin API's sub-tests, several minutes on two cores.
@pytest.mark.parametrize("test", ["0011", pytest.param("0081", marks=pytest.mark.timeout(900))])
def test_librdkafka_suite(target_factory, runner, tmp_path, test):
    b = target_factory("--set", "num.partitions=4",
                       "--set", "authorizer.class.name=StandardAuthorizer",
                       "--set", "allow.everyone.if.no.acl.found=true")
    conf = tmp_path / "test.conf"
    conf.write_text(f"metadata.broker.list={b.bootstrap}\nbroker.address.family=v4\n")
    env = dict(os.environ, TESTS=test, RDKAFKA_TEST_CONF=str(conf),
               TEST_KAFKA_VERSION=KAFKA_VERSION,
               LD_LIBRARY_PATH=os.pathsep.join(str(runner.parent / d) for d in ("src", "src-cpp")))
    proc = subprocess.run(["./test-runner"], cwd=runner, env=env, capture_output=True,
                          text=True, errors="replace", timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "ALL TESTS PASSED" in out, out[-6000:]
    b.assert_alive()

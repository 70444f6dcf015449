"""`weir serve` as a node of services: a service that fails to start stops
the others and the log closes cleanly; SIGTERM drains the services newest
first (the Kafka listener before the registry, the log last).

The start failure is injected (`WEIR_FAULT_FAIL_START`, in binaries built
with `--features fault-injection`, as the suite's binary is)."""

from __future__ import annotations

import re
import urllib.request

import kafka_wire as kw

CLEAN_MARKER = ".clean-shutdown"


def _order(log: str, lines: list[str]) -> list[int]:
    """Where each line first appears in the log (AssertionError if not)."""
    at = []
    for line in lines:
        m = re.search(line, log)
        assert m, f"no {line!r} in the log:\n{log[-3000:]}"
        at.append(m.start())
    return at


def test_a_service_failing_to_start_stops_the_others_and_closes_the_log(broker_factory):
    b = broker_factory(start=False, env={"WEIR_FAULT_FAIL_START": "schema-registry"})
    b.start_process()
    rc = b.proc.wait(60)
    log = b.log_text()
    assert "fault injection: failing the start" in log, (
        "the binary was built without --features fault-injection")
    assert rc == 1, log[-3000:]
    assert "schema-registry: injected start failure" in log
    # The log had opened; it was closed, then the admin listener stopped.
    at = _order(log, [r"starting service=log", r"stopping service=log",
                      r"closing the log", r"stopping service=admin"])
    assert at == sorted(at), log[-3000:]
    assert "starting service=kafka" not in log
    assert (b.data_dir / CLEAN_MARKER).exists(), "the log was not closed cleanly"
    assert not kw.api_versions_ok("127.0.0.1", b.port, timeout=0.5)


def test_sigterm_drains_the_services_newest_first(broker_factory):
    b = broker_factory()
    with urllib.request.urlopen(f"{b.admin_url}/health/ready", timeout=10) as r:
        assert r.status == 200
    b.stop()
    log = b.log_text()
    at = _order(log, [r"SIGTERM received", r"stopping service=kafka", r"stopped service=kafka",
                      r"stopping service=schema-registry", r"stopping service=log",
                      r"closing the log", r"stopped service=log", r"stopping service=admin",
                      r"stopped cleanly"])
    assert at == sorted(at), log[-3000:]
    assert (b.data_dir / CLEAN_MARKER).exists()

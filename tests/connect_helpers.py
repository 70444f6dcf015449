"""Helpers for the Connect tests: a `weir connect` worker process, a small
REST client, and waits with deadlines.

    w = ConnectWorker(weir_binary, tmp_path, broker.bootstrap, sets={...}).start()
    w.post("/connectors", {...}); w.wait_running("name", tasks=1)
    w.kill()  # kill -9; w.start() again on the same port
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from conftest import HOST, _die_with_parent, free_port

STRING = "org.apache.kafka.connect.storage.StringConverter"


class ConnectWorker:
    def __init__(self, binary: Path, workdir: Path, bootstrap: str,
                 sets: dict[str, str] | None = None, name: str = "worker",
                 port: int | None = None):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bootstrap = bootstrap
        self.sets = dict(sets or {})
        self.name = name
        self.port = port or free_port()
        self.log_path = self.workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "connect", "--bootstrap", self.bootstrap,
               "--listen", f"{HOST}:{self.port}"]
        for k, v in self.sets.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    def start(self, timeout: float = 60) -> "ConnectWorker":
        env = dict(os.environ, RUST_BACKTRACE="1", NO_COLOR="1")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, cwd=self.workdir, env=env,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited\n{self.log_tail()}"
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not healthy within {timeout}s\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"{self.name} ignored SIGTERM\n{self.log_tail()}")
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])

    # --- REST --------------------------------------------------------------
    def request(self, method: str, path: str, body=None) -> httpx.Response:
        return httpx.request(method, self.url + path, json=body, timeout=60)

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, body=None) -> httpx.Response:
        return self.request("POST", path, body)

    def put(self, path: str, body=None) -> httpx.Response:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)

    def create(self, name: str, config: dict) -> dict:
        r = self.post("/connectors", {"name": name, "config": config})
        assert r.status_code == 201, r.text
        return r.json()

    def status(self, name: str) -> dict:
        r = self.get(f"/connectors/{name}/status")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_state(self, name: str, state: str = "RUNNING", tasks: int = 1,
                   timeout: float = 60) -> dict:
        """Waits until the connector and `tasks` tasks are in `state`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = self.get(f"/connectors/{name}/status")
            if r.status_code == 200:
                last = r.json()
                ts = last["tasks"]
                if (last["connector"]["state"] == state and len(ts) == tasks
                        and all(t["state"] == state for t in ts)):
                    return last
            time.sleep(0.2)
        raise AssertionError(f"{name} not {state} with {tasks} task(s): {last}\n{self.log_tail()}")


def line_count(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0

"""A `weir rest-proxy` process for the REST proxy tests, and small HTTP
helpers (httpx) around Confluent REST Proxy's API."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from conftest import HOST, _die_with_parent, free_port

V2 = "application/vnd.kafka.v2+json"


def v2_type(fmt: str) -> str:
    return f"application/vnd.kafka.{fmt}.v2+json"


class RestApi:
    """A REST proxy listening on 127.0.0.1:`port`, embedded in a node
    (`weir serve --rest-listen`) or standalone (`RestProxy`)."""

    def __init__(self, port: int, auth=None):
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=60, auth=auth)
        self._cluster_id = None

    def wait_ready(self, alive=lambda: True, log=lambda: "") -> "RestApi":
        deadline = time.monotonic() + 30
        while True:
            if not alive():
                raise AssertionError(f"the REST proxy's process exited:\n{log()}")
            try:
                if self.http.get("/").status_code in (200, 401):
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the REST proxy did not answer within 30s:\n{log()}")
            time.sleep(0.05)

    @property
    def cluster_id(self) -> str:
        if self._cluster_id is None:
            r = self.http.get("/v3/clusters")
            assert r.status_code == 200, r.text
            self._cluster_id = r.json()["data"][0]["cluster_id"]
        return self._cluster_id

    @property
    def v3(self) -> str:
        """Path of this cluster's v3 resources."""
        return f"/v3/clusters/{self.cluster_id}"



class RestProxy(RestApi):
    """One `weir rest-proxy --bootstrap ...` process on a free port."""

    def __init__(self, binary: Path, workdir: Path, bootstrap: str, settings: dict | None = None,
                 env: dict | None = None):
        super().__init__(free_port())
        self.log_path = Path(workdir) / f"rest-proxy-{self.port}.log"
        args = [str(binary), "rest-proxy", "--bootstrap", bootstrap, "--listen", f"{HOST}:{self.port}"]
        for k, v in (settings or {}).items():
            args += ["--set", f"{k}={v}"]
        full_env = dict(os.environ, NO_COLOR="1", **(env or {}))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=full_env, preexec_fn=_die_with_parent)
        self.wait_ready(lambda: self.proc.poll() is None, self.log)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"rest-proxy ignored SIGTERM:\n{self.log()}")
        return self.proc.returncode


def error(resp: httpx.Response) -> tuple[int, int]:
    """(HTTP status, Confluent error_code) of an error response."""
    return resp.status_code, resp.json()["error_code"]

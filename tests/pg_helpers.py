"""A throwaway PostgreSQL cluster for the CDC tests: Debian's `postgresql`
package (installed by .ci/install-system-deps), initdb'd into a temp dir
with wal_level=logical and started on a free 127.0.0.1 port. One server
serves a whole session (see the `postgres` fixture in conftest.py); tests
keep apart by database.

SQL runs through `psql` (same package), so the suite needs no Python
driver: `pg.sql(text, db=...)` runs a script, `pg.rows(query, db=...)`
returns rows as tuples of strings (None for NULL).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


class Postgres:
    def __init__(self, port: int):
        self.port = port
        self.user = "postgres"
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="weir-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        # initdb refuses root: run the server as Debian's `postgres` user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.as_user + args, capture_output=True, text=True, **kw)

    def start(self, extra_opts: str = "", hba: str | None = None) -> "Postgres":
        """Starts the cluster; `extra_opts` are more `-c` settings, `hba`
        replaces pg_hba.conf."""
        assert self.bin, "PostgreSQL is not installed (run .ci/install-system-deps)"
        if self.as_user:
            shutil.chown(self.root, "postgres")
        r = self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                       "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C"], timeout=120)
        assert r.returncode == 0, r.stderr
        if hba is not None:
            (self.data / "pg_hba.conf").write_text(hba)
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c wal_level=logical "
                "-c max_wal_senders=20 -c max_replication_slots=20 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 "
                + extra_opts)
        self._opts = opts
        self.resume()
        return self

    def resume(self) -> None:
        """Starts the server again on its data directory (after `crash`)."""
        r = self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", self._opts, "-l",
                       str(self.log), "-w", "-t", "60", "start"], timeout=90)
        assert r.returncode == 0, r.stderr + self.log_tail()

    def crash(self) -> None:
        """Stops the server as a crash would (`-m immediate`: every
        connection cut, no checkpoint; recovery replays the WAL on
        `resume`), keeping its data."""
        r = self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                       "stop"], timeout=60)
        assert r.returncode == 0, r.stderr

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.data.exists():
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                      timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def _psql(self, args: list[str], db: str, text: str) -> str:
        r = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                            "-h", HOST, "-p", str(self.port), "-U", self.user, "-d", db, *args],
                           input=text, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr}")
        return r.stdout

    def sql(self, text: str, db: str = "postgres") -> None:
        self._psql([], db, text)

    def rows(self, query: str, db: str = "postgres") -> list[tuple]:
        out = self._psql(["-A", "-t", "-F", "\x1f", "-P", "null=\x1e"], db, query)
        return [tuple(None if v == "\x1e" else v for v in line.split("\x1f"))
                for line in out.splitlines() if line]

    def create_db(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def wait_slot_confirmed(self, slot: str, db: str, at_least: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            r = self.rows(f"SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots "
                          f"WHERE slot_name = '{slot}'", db)
            lsn = int(r[0][0]) if r and r[0][0] else 0
            if lsn >= at_least or time.monotonic() > deadline:
                return lsn
            time.sleep(0.2)

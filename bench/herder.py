"""Kafka Connect 4.3's standalone herder in a JVM of its own, driven one
JSON command a line (tests/java/weir/connect/HerderScenarios.java): the
reference worker the Connect and CDC benchmarks compare Weir against."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import java_harness  # noqa: E402


class Herder:
    """`settings` are extra worker settings, `key=value` each."""

    def __init__(self, bootstrap: str, offsets: Path, log: Path, *settings: str):
        classes = java_harness.compile_sources()
        cp = os.pathsep.join([str(classes), java_harness.classpath()])
        cmd = ["java", "-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={java_harness.LOG4J2_CONFIG}", "-cp", cp,
               "weir.connect.HerderScenarios", bootstrap, str(offsets), *settings]
        self.log = log
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log, "w"), text=True, bufsize=1)
        self.pid = self.proc.pid

    def call(self, scenario: str, **args):
        self.proc.stdin.write(json.dumps({"scenario": scenario, "args": args}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"Kafka Connect's herder exited ({self.proc.poll()}):\n"
                                 + self.log.read_text(errors="replace")[-3000:])
            if line.startswith("{"):
                answer = json.loads(line)
                if not answer.get("ok"):
                    raise SystemExit(f"{scenario}: {answer.get('error')}")
                return answer["result"]

    def create(self, name: str, config: dict) -> None:
        self.call("create", name=name, config={**config, "name": name})

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

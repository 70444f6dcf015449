"""kafkajs against Weir (see tests/js/roundtrip.js for exactly what it covers).

kafkajs produces with acks=-1 (none + gzip, send and sendBatch), queries
offsets through its admin client, and reads the records back through its own
Fetch implementation (no consumer group). This test then checks its output
against an independent read with confluent-kafka (librdkafka).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from weir_helpers import Rec, assert_same_records, consume_range

JS_DIR = Path(__file__).resolve().parent / "js"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unb64(s):
    return None if s is None else base64.b64decode(s)


@pytest.fixture(scope="session")
def node_exe() -> str:
    node = shutil.which("node")
    missing = []
    if not node:
        missing.append("node")
    if not (JS_DIR / "node_modules" / "kafkajs" / "package.json").exists():
        missing.append("tests/js/node_modules (run `npm ci` in tests/js)")
    if missing:
        msg = "kafkajs test needs " + ", ".join(missing)
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return node


def test_kafkajs_roundtrip(broker, topic_name, node_exe, tmp_path):
    out_file = tmp_path / "kafkajs.json"
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    proc = subprocess.run([node_exe, str(JS_DIR / "roundtrip.js"), broker.bootstrap, topic_name,
                           str(out_file)], cwd=JS_DIR, env=env, capture_output=True, timeout=180)
    assert proc.returncode == 0, (f"roundtrip.js exited {proc.returncode}\n"
                                  f"stdout: {proc.stdout.decode(errors='replace')}\n"
                                  f"stderr: {proc.stderr.decode(errors='replace')}")
    out = json.loads(out_file.read_text())
    assert out["topics"] == [topic_name]

    produced = [Rec(m["partition"], _unb64(m["key"]), _unb64(m["value"]),
                    tuple((k, _unb64(v)) for k, v in m["headers"]), m["timestamp"])
                for m in out["produced"]]
    assert len(produced) == 800
    per_part = {p: [r for r in produced if r.partition == p] for p in range(3)}
    assert all(per_part[p] for p in range(3)), "every partition should get data"

    # Produce responses: every batch accepted, base offsets consistent with order.
    for rnd in out["sendResults"]:
        for res in rnd["results"]:
            assert res["errorCode"] == 0, rnd

    # ListOffsets via kafkajs admin.
    offsets = {o["partition"]: o for o in out["offsets"]}
    assert sorted(offsets) == [0, 1, 2]
    for p in range(3):
        assert int(offsets[p]["low"]) == 0
        assert int(offsets[p]["high"]) == len(per_part[p])
        assert int(offsets[p]["offset"]) == len(per_part[p])

    # By timestamp: first offset in each partition with timestamp >= queryTs.
    by_ts = {o["partition"]: int(o["offset"]) for o in out["offsetsByTimestamp"]}
    for p in range(3):
        idx = next((i for i, r in enumerate(per_part[p]) if r.timestamp >= out["queryTs"]),
                   len(per_part[p]))
        assert by_ts[p] == idx, (p, by_ts[p], idx)
    # Past every record, Kafka answers -1 and kafkajs maps that to the high watermark.
    after = {o["partition"]: int(o["offset"]) for o in out["offsetsAfterEnd"]}
    assert after == {p: len(per_part[p]) for p in range(3)}

    # kafkajs' own Fetch decoding.
    for p in range(3):
        fetched = out["fetched"][str(p)]
        got = [Rec(p, _unb64(m["key"]), _unb64(m["value"]),
                   tuple((k, _unb64(v)) for k, v in m["headers"]), m["timestamp"]) for m in fetched]
        assert [m["offset"] for m in fetched] == list(range(len(per_part[p])))
        assert got == per_part[p]

    # Independent read with librdkafka.
    got = consume_range(broker.bootstrap, topic_name, range(3))
    for p in range(3):
        assert_same_records(per_part[p], got[p], p)

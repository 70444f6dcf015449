"""weir-formats against real clients: `weir produce`/`weir consume` with
`--key-format`/`--value-format` (Avro, Protobuf, JSON Schema) serialize and
decode through Weir's schema registry with the crate, and confluent-kafka's
serializers read what they write and write what they read, in Confluent's
wire format."""

from __future__ import annotations

import datetime
import json
import os
import struct
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from weir_helpers import admin, consumer_conf, create_topic, producer_conf

ORDER = json.dumps({
    "type": "record", "name": "Order", "namespace": "weir.fmt", "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "status", "type": {"type": "enum", "name": "Status",
                                    "symbols": ["NEW", "PAID", "SHIPPED"]}},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "Line",
            "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
        {"name": "attrs", "type": {"type": "map", "values": "double"}},
        {"name": "raw", "type": "bytes"},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    ]})


def order(i: int) -> dict:
    return {"id": i, "item": f"thing-{i}", "note": None if i % 2 else f"n{i}",
            "status": ["NEW", "PAID", "SHIPPED"][i % 3],
            "lines": [{"sku": f"s{j}", "qty": j} for j in range(i % 3)],
            "attrs": {"w": i * 0.5}, "raw": bytes([i % 256, 255]), "day": 19000 + i}


def avro_json(o: dict) -> dict:
    """An order in Avro's JSON encoding (what the weir CLI reads and prints)."""
    j = dict(o)
    j["note"] = None if o["note"] is None else {"string": o["note"]}
    j["raw"] = "".join(chr(b) for b in o["raw"])
    return j


def epoch_days(o: dict) -> dict:
    """fastavro reads a `date` as a datetime.date: back to days since 1970."""
    if isinstance(o.get("day"), datetime.date):
        o = dict(o, day=(o["day"] - datetime.date(1970, 1, 1)).days)
    return o


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def weir(binary, broker, *args, input=None, check=0):
    env = dict(os.environ, NO_COLOR="1")
    env.pop("WEIR_BOOTSTRAP", None)
    env.pop("WEIR_SCHEMA_REGISTRY", None)
    cmd = [str(binary), *args, "--bootstrap", broker.bootstrap]
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=60, env=env)
    if check is not None:
        assert p.returncode == check, (cmd, p.returncode, p.stdout.decode(errors="replace"),
                                       p.stderr.decode(errors="replace"))
    return p


@pytest.fixture(scope="module")
def sr(module_broker):
    return SchemaRegistryClient({"url": module_broker.registry_url})


def produce_raw(broker, topic, values, keys=None):
    p = Producer(producer_conf(broker.bootstrap))
    for i, v in enumerate(values):
        p.produce(topic, value=v, key=None if keys is None else keys[i])
    assert p.flush(30) == 0


def consume_raw(broker, topic, n):
    c = Consumer(consumer_conf(broker.bootstrap))
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    try:
        while len(out) < n:
            m = c.poll(10)
            assert m is not None, f"only {len(out)} of {n} records came back"
            assert m.error() is None, m.error()
            out.append((m.key(), m.value()))
    finally:
        c.close()
    return out


def consume_json(binary, broker, topic, *flags):
    p = weir(binary, broker, "consume", topic, "--from", "earliest", "--exit",
             "--format", "json", "--schema-registry", broker.registry_url, *flags)
    return [json.loads(line) for line in p.stdout.decode().splitlines()]


def test_avro_python_writes_weir_reads(weir_binary, module_broker, sr):
    topic = unique("avro-py2weir")
    create_topic(admin(module_broker.bootstrap), topic)
    ser = AvroSerializer(sr, ORDER)
    kser = AvroSerializer(sr, '"string"')
    orders = [order(i) for i in range(6)]
    produce_raw(module_broker, topic,
                [ser(o, SerializationContext(topic, MessageField.VALUE)) for o in orders],
                [kser(f"k{i}", SerializationContext(topic, MessageField.KEY)) for i in range(6)])
    got = consume_json(weir_binary, module_broker, topic, "--value-format", "avro",
                       "--key-format", "avro")
    assert [g["value"] for g in got] == [avro_json(o) for o in orders]
    assert [g["key"] for g in got] == [f"k{i}" for i in range(6)]


def test_avro_weir_writes_python_reads(weir_binary, module_broker, sr, tmp_path):
    topic = unique("avro-weir2py")
    create_topic(admin(module_broker.bootstrap), topic)
    schema_file = tmp_path / "order.avsc"
    schema_file.write_text(ORDER)
    orders = [order(i) for i in range(6)]
    lines = "".join(json.dumps(avro_json(o)) + "\n" for o in orders).encode()
    weir(weir_binary, module_broker, "produce", topic, "--value-format", "avro",
         "--value-schema", f"@{schema_file}", "--schema-registry", module_broker.registry_url,
         input=lines)
    raw = consume_raw(module_broker, topic, len(orders))
    de = AvroDeserializer(sr)
    back = [de(v, SerializationContext(topic, MessageField.VALUE)) for _, v in raw]
    assert [epoch_days(b) for b in back] == orders
    # Registered under TopicNameStrategy's subject, under the id Python finds.
    sid = struct.unpack(">I", raw[0][1][1:5])[0]
    assert sr.get_latest_version(f"{topic}-value").schema_id == sid
    # The same bytes as confluent-kafka's serializer writes.
    ser = AvroSerializer(sr, ORDER)
    assert [ser(o, SerializationContext(topic, MessageField.VALUE)) for o in orders] == \
        [v for _, v in raw]


def test_avro_references_and_schema_id(weir_binary, module_broker, sr):
    topic = unique("avro-refs")
    create_topic(admin(module_broker.bootstrap), topic)
    money = json.dumps({"type": "record", "name": "Money", "namespace": "weir.common",
                        "fields": [{"name": "cents", "type": "long"},
                                   {"name": "currency", "type": "string"}]})
    dep = unique("money")
    sr.register_schema(dep, Schema(money, "AVRO"))
    invoice = json.dumps({"type": "record", "name": "Invoice", "namespace": "weir.billing",
                          "fields": [{"name": "number", "type": "string"},
                                     {"name": "total", "type": "weir.common.Money"}]})
    sid = sr.register_schema(f"{topic}-value", Schema(
        invoice, "AVRO", [SchemaReference("weir.common.Money", dep, 1)]))
    items = [{"number": f"n{i}", "total": {"cents": i * 100, "currency": "EUR"}} for i in range(4)]
    lines = "".join(json.dumps(x) + "\n" for x in items).encode()
    weir(weir_binary, module_broker, "produce", topic, "--value-format", "avro",
         "--value-schema-id", str(sid), "--schema-registry", module_broker.registry_url,
         input=lines)
    raw = consume_raw(module_broker, topic, len(items))
    assert all(struct.unpack(">I", v[1:5])[0] == sid for _, v in raw)
    de = AvroDeserializer(sr)
    assert [de(v, SerializationContext(topic, MessageField.VALUE)) for _, v in raw] == items
    got = consume_json(weir_binary, module_broker, topic, "--value-format", "avro")
    assert [g["value"] for g in got] == items


def test_avro_serializer_settings_and_errors(weir_binary, module_broker, sr):
    topic = unique("avro-settings")
    create_topic(admin(module_broker.bootstrap), topic)
    v1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    v2 = json.dumps({"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": "x"}]})
    base = ["produce", topic, "--value-format", "avro", "--schema-registry",
            module_broker.registry_url]
    # auto.register.schemas=false and nothing registered: the lookup fails.
    p = weir(weir_binary, module_broker, *base, "--value-schema", v1,
             "--schema-property", "auto.register.schemas=false", input=b'{"a":1}\n', check=1)
    assert "40401" in p.stderr.decode(), p.stderr
    sr.register_schema(f"{topic}-value", Schema(v1, "AVRO"))
    id2 = sr.register_schema(f"{topic}-value", Schema(v2, "AVRO"))
    # use.latest.version: written with the latest schema (v2), whatever was given.
    weir(weir_binary, module_broker, *base, "--value-schema", v2,
         "--schema-property", "auto.register.schemas=false",
         "--schema-property", "use.latest.version=true", input=b'{"a":2,"b":"y"}\n')
    # RecordNameStrategy registers under the record's full name.
    weir(weir_binary, module_broker, *base, "--value-schema", v1, "--schema-property",
         "value.subject.name.strategy=io.confluent.kafka.serializers.subject.RecordNameStrategy",
         input=b'{"a":3}\n')
    assert sr.get_latest_version("R").schema_id == sr.lookup_schema(
        f"{topic}-value", Schema(v1, "AVRO")).schema_id
    # A value that does not fit the schema, and a record without the magic byte.
    p = weir(weir_binary, module_broker, *base, "--value-schema", v1, input=b'{"a":"x"}\n',
             check=1)
    assert "line 1" in p.stderr.decode() and "expected an int" in p.stderr.decode(), p.stderr
    raw = consume_raw(module_broker, topic, 2)
    assert struct.unpack(">I", raw[0][1][1:5])[0] == id2
    produce_raw(module_broker, topic, [b"not framed"])
    p = weir(weir_binary, module_broker, "consume", topic, "--from", "earliest", "--exit",
             "--value-format", "avro", "--schema-registry", module_broker.registry_url, check=1)
    assert "magic byte" in p.stderr.decode(), p.stderr


PROTO = """syntax = "proto3";
package weir.fmt;
import "google/protobuf/timestamp.proto";
message Order {
  int64 id = 1;
  string item = 2;
  repeated string tags = 3;
  message Line { string sku = 1; int32 qty = 2; }
  repeated Line lines = 4;
  map<string, double> attrs = 5;
  google.protobuf.Timestamp at = 6;
  oneof pay { string card = 7; bool cash = 8; }
}
"""


def _proto_classes():
    """The Order message of PROTO, built at run time through protobuf's own
    compiler-free API (its descriptor, as protoc would make it)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"weir_fmt_{uuid.uuid4().hex[:6]}.proto",
                                             package="weir.fmt", syntax="proto3",
                                             dependency=["google/protobuf/timestamp.proto"])
    m = fdp.message_type.add(name="Order")
    m.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="item", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="tags", number=3, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    line = m.nested_type.add(name="Line")
    line.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    line.field.add(name="qty", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="lines", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                type_name=".weir.fmt.Order.Line")
    entry = m.nested_type.add(name="AttrsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    m.field.add(name="attrs", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                type_name=".weir.fmt.Order.AttrsEntry")
    m.field.add(name="at", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".google.protobuf.Timestamp")
    m.oneof_decl.add(name="pay")
    m.field.add(name="card", number=7, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0)
    m.field.add(name="cash", number=8, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL, oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("weir.fmt.Order"))


def proto_orders(Order, n):
    out = []
    for i in range(n):
        o = Order(id=i * 1000003, item=f"thing-{i}", tags=[f"t{j}" for j in range(i % 3)])
        for j in range(i % 2 + 1):
            o.lines.add(sku=f"s{j}", qty=j + 1)
        o.attrs["w"] = i * 0.5
        o.at.FromSeconds(1700000000 + i)
        if i % 2:
            o.card = f"c{i}"
        else:
            o.cash = True
        out.append(o)
    return out


def test_protobuf_both_ways(weir_binary, module_broker, sr):
    from google.protobuf.json_format import MessageToDict
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    Order = _proto_classes()
    orders = proto_orders(Order, 5)
    conf = {"use.deprecated.format": False}
    # confluent-kafka writes, weir reads: protobuf's canonical JSON mapping.
    topic = unique("proto-py2weir")
    create_topic(admin(module_broker.bootstrap), topic)
    ser = ProtobufSerializer(Order, sr, conf)
    frames = [ser(o, SerializationContext(topic, MessageField.VALUE)) for o in orders]
    produce_raw(module_broker, topic, frames)
    got = consume_json(weir_binary, module_broker, topic, "--value-format", "protobuf")
    assert [g["value"] for g in got] == [MessageToDict(o) for o in orders]
    # weir writes from .proto text (well-known import resolved), confluent-kafka reads.
    topic2 = unique("proto-weir2py")
    create_topic(admin(module_broker.bootstrap), topic2)
    lines = "".join(json.dumps(MessageToDict(o)) + "\n" for o in orders).encode()
    weir(weir_binary, module_broker, "produce", topic2, "--value-format", "protobuf",
         "--value-schema", PROTO, "--schema-registry", module_broker.registry_url, input=lines)
    raw = consume_raw(module_broker, topic2, len(orders))
    de = ProtobufDeserializer(Order, conf, schema_registry_client=sr)
    assert [de(v, SerializationContext(topic2, MessageField.VALUE)) for _, v in raw] == orders
    # Message indexes [0] as the single 0 byte, as confluent-kafka writes them
    # (the message bytes may differ: encoders may leave out default values
    # in map entries).
    assert all(v[5] == 0 for _, v in raw) and all(f[5] == 0 for f in frames)
    assert sr.get_latest_version(f"{topic2}-value").schema.schema_type == "PROTOBUF"


JSON_ORDER = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order",
                         "type": "object", "properties": {
                             "id": {"type": "integer", "minimum": 0},
                             "item": {"type": "string"},
                             "qty": {"type": "number"}}, "required": ["id", "item"]})


def test_json_schema_both_ways_and_validation(weir_binary, module_broker, sr):
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
    orders = [{"id": i, "item": f"thing{i}", "qty": i * 1.5} for i in range(5)]
    topic = unique("json-py2weir")
    create_topic(admin(module_broker.bootstrap), topic)
    ser = JSONSerializer(JSON_ORDER, sr)
    produce_raw(module_broker, topic,
                [ser(o, SerializationContext(topic, MessageField.VALUE)) for o in orders])
    got = consume_json(weir_binary, module_broker, topic, "--value-format", "json-schema")
    assert [g["value"] for g in got] == orders
    topic2 = unique("json-weir2py")
    create_topic(admin(module_broker.bootstrap), topic2)
    base = ["produce", topic2, "--value-format", "json-schema", "--value-schema", JSON_ORDER,
            "--schema-registry", module_broker.registry_url]
    weir(weir_binary, module_broker, *base,
         input="".join(json.dumps(o) + "\n" for o in orders).encode())
    raw = consume_raw(module_broker, topic2, len(orders))
    de = JSONDeserializer(JSON_ORDER, schema_registry_client=sr)
    assert [de(v, SerializationContext(topic2, MessageField.VALUE)) for _, v in raw] == orders
    # json.fail.invalid.schema: an invalid record is refused before it is sent.
    p = weir(weir_binary, module_broker, *base, "--schema-property", "json.fail.invalid.schema=true",
             input=b'{"id": -1, "item": "x"}\n', check=1)
    assert "minimum" in p.stderr.decode() or "less than" in p.stderr.decode(), p.stderr


def test_registry_client_over_https_with_basic_auth(weir_binary, broker_factory, tmp_path):
    from security_util import start_secure_broker
    sb = start_secure_broker(broker_factory, tmp_path, users={"alice": "alice-secret"},
                             protocols=("PLAINTEXT",),
                             sets={"http.ssl.enabled": "true", "http.authentication": "basic"})
    b = sb.broker
    url = f"https://127.0.0.1:{b.registry_port}"
    topic = unique("avro-https")
    create_topic(admin(b.bootstrap), topic)
    base = ["produce", topic, "--value-format", "avro", "--value-schema", '"string"',
            "--schema-registry", url]
    ca = ["--schema-property", f"ssl.ca.location={sb.certs.ca}"]
    user = ["--schema-property", "basic.auth.user.info=alice:alice-secret"]
    # No trusted CA: the certificate is refused; wrong password: 401.
    p = weir(weir_binary, b, *base, *user, input=b'"x"\n', check=1)
    assert "certificate" in p.stderr.decode().lower(), p.stderr
    p = weir(weir_binary, b, *base, *ca, "--schema-property", "basic.auth.user.info=alice:nope",
             input=b'"x"\n', check=1)
    assert "401" in p.stderr.decode(), p.stderr
    weir(weir_binary, b, *base, *ca, *user, input=b'"hello"\n"world"\n')
    p = weir(weir_binary, b, "consume", topic, "--from", "earliest", "--exit", "--value-format",
             "avro", "--schema-registry", url, *ca, *user)
    assert p.stdout.decode().splitlines() == ['"hello"', '"world"']

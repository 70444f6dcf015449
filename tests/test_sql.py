"""Streaming SQL (ksqlDB-compatible): `weir sql-server` started standalone
against a separately started Weir node, driven through ksqlDB's REST API.

The language cases are table-driven (sql_cases.json): inputs produced with
timestamps, statements through /ksql, the output topic read back with
read_committed and compared record by record, keys as bytes."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

import pytest

from sql_helpers import (SqlServer, key_bytes, produce, query_group, read_all, run_case,
                         wait_caught_up)

CASES = json.loads((Path(__file__).parent / "sql_cases.json").read_text())


@pytest.fixture(scope="module")
def node(module_broker):
    return module_broker


@pytest.fixture(scope="module")
def sql(node, weir_binary, _broker_root):
    s = SqlServer(weir_binary, _broker_root, node.bootstrap,
                  "--set", f"ksql.schema.registry.url={node.registry_url}", service_id="sqltest_").start()
    yield s
    rc = s.stop()
    assert rc == 0, s.log_tail()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_language_case(sql, node, case):
    prefix = f"C{CASES.index(case)}"
    run_case(sql, node.bootstrap, case, prefix)


def test_bad_records_are_counted(sql, node):
    """The case above skipped three records; DESCRIBE EXTENDED counts them."""
    idx = next(i for i, c in enumerate(CASES) if c["name"].startswith("records that do not"))
    status, answer = sql.ksql(f"DESCRIBE C{idx}_OUT EXTENDED;", ok=False)
    if status != 200:  # the case did not run in this session (-k)
        run_case(sql, node.bootstrap, CASES[idx], f"C{idx}")
        status, answer = sql.ksql(f"DESCRIBE C{idx}_OUT EXTENDED;")
    assert answer[0]["sourceDescription"]["errorStats"] == "records-skipped: 3"


# --- statements and errors ---------------------------------------------------------

def test_processing_log(node, weir_binary, _broker_root):
    """With ksqlDB's auto-create settings, the server creates the
    processing-log topic and the KSQL_PROCESSING_LOG stream over it, and a
    query writes one event per record that does not deserialize."""
    s = SqlServer(weir_binary, _broker_root, node.bootstrap,
                  "--set", "ksql.logging.processing.topic.auto.create=true",
                  "--set", "ksql.logging.processing.stream.auto.create=true",
                  "--set", "ksql.logging.processing.rows.include=true",
                  service_id="plog_").start()
    try:
        s.ksql("CREATE STREAM pl (ID INT KEY, V INT) WITH (KAFKA_TOPIC='pl', VALUE_FORMAT='JSON', PARTITIONS=1);"
               "CREATE STREAM pl_out AS SELECT ID, V FROM pl;")
        qid = next(q["id"] for q in s.ksql("SHOW QUERIES;")[1][0]["queries"])
        produce(node.bootstrap, "pl", [{"key": {"int": 1}, "value": {"V": 1}, "timestamp": 1},
                                       {"key": {"int": 2}, "value": "{not json", "timestamp": 2},
                                       {"key": {"hex": "01"}, "value": {"V": 3}, "timestamp": 3}])
        wait_caught_up(node.bootstrap, query_group("plog_", qid), ["pl"])
        events = [json.loads(r["value"]) for r in read_all(node.bootstrap, "plog_ksql_processing_log")]
        assert [e["logger"] for e in events] == [f"processing.{qid}.KsqlTopic.Source.deserializer"] * 2
        assert all(e["level"] == "ERROR" and e["message"]["type"] == 0 for e in events)
        value_err, key_err = (e["message"]["deserializationError"] for e in events)
        assert value_err["target"] == "value" and value_err["topic"] == "pl"
        assert value_err["recordB64"] == "e25vdCBqc29u"  # base64 of the bad value
        assert value_err["errorMessage"].startswith("Failed to deserialize value from topic: pl.")
        assert key_err["target"] == "key" and key_err["recordB64"] == "AQ=="
        # The stream reads the same events.
        _, desc = s.ksql("DESCRIBE KSQL_PROCESSING_LOG;")
        assert [f["name"] for f in desc[0]["sourceDescription"]["fields"]] == ["LOGGER", "LEVEL", "TIME", "MESSAGE"]
        r = _http(s, "/query-stream", {"sql": "SELECT MESSAGE->DESERIALIZATIONERROR->TARGET AS T "
                                              "FROM KSQL_PROCESSING_LOG EMIT CHANGES LIMIT 2;",
                                       "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
        assert r.json()[1:] == [["value"], ["key"]], r.text
        # A restart does not create the stream twice.
        s.kill()
        s.start()
        assert s.ksql("DESCRIBE KSQL_PROCESSING_LOG;")[0] == 200
    finally:
        s.kill()


def test_statement_errors(sql):
    cases = [
        ("SELEC * FROM x;", "line 1:1: Syntax Error"),
        ("CREATE STREAM e1 (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='e1', VALUE_FORMAT='JSON', PARTITIONS=1);\n"
         "CREATE STREAM e1_out AS SELECT ID, NOPE FROM e1;", "SELECT column 'NOPE' cannot be resolved."),
        ("CREATE STREAM e2_out AS SELECT ID, V + 1 AS X FROM e1;", "Unsupported arithmetic types. STRING INTEGER"),
        ("CREATE STREAM e3_out AS SELECT ID, FOO(V) FROM e1;", "Can't find any functions with the name 'FOO'"),
        ("CREATE STREAM e4 (ID INT KEY) WITH (KAFKA_TOPIC='does-not-exist', VALUE_FORMAT='JSON');",
         "Topic 'does-not-exist' does not exist."),
        ("CREATE STREAM e5_out AS SELECT V, ID FROM e1 WHERE V;", "Type error in WHERE expression"),
        ("CREATE STREAM e6_out AS SELECT V FROM e1;", "Key missing from projection"),
        ("DROP STREAM nope;", "Stream NOPE does not exist."),
        ("SELECT * FROM\n  e1 WHERE;", "line 2:11: Syntax Error"),
        ("CREATE TABLE e7 (ID INT PRIMARY KEY, V STRING) WITH (KAFKA_TOPIC='e7', VALUE_FORMAT='JSON', PARTITIONS=1);\n"
         "CREATE TABLE e7_out AS SELECT V, MAX(ID) AS M, COUNT(*) AS C, MIN(ID) AS N FROM e7 GROUP BY V;",
         "The aggregation functions MAX and MIN cannot be applied to a table source, only to a stream source."),
        ("CREATE TABLE e8_out AS SELECT V, COUNT(*) AS C FROM e7 WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY V;",
         "Windowing not supported for table aggregations."),
    ]
    for text, fragment in cases:
        status, answer = sql.ksql(text, ok=False)
        assert status == 400, (text, answer)
        assert answer["@type"] == "statement_error" and answer["error_code"] == 40001, answer
        assert fragment in answer["message"], (text, answer["message"])
        assert answer["statementText"].strip().endswith(";")
    # The server is unaffected.
    assert sql.get("/healthcheck")[0] == 200


def test_show_describe_explain_functions(sql, node):
    sql.ksql("CREATE STREAM d1 (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='d1', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE TABLE d1_counts AS SELECT V, COUNT(*) AS N FROM d1 GROUP BY V;")
    _, streams = sql.ksql("SHOW STREAMS;")
    assert streams[0]["@type"] == "streams"
    d1 = next(s for s in streams[0]["streams"] if s["name"] == "D1")
    assert d1 == {"type": "STREAM", "name": "D1", "topic": "d1", "keyFormat": "KAFKA",
                  "valueFormat": "JSON", "isWindowed": False}
    _, tables = sql.ksql("LIST TABLES;")
    assert any(t["name"] == "D1_COUNTS" for t in tables[0]["tables"])
    _, queries = sql.ksql("SHOW QUERIES;")
    q = next(q for q in queries[0]["queries"] if q["sinks"] == ["D1_COUNTS"])
    assert q["id"].startswith("CTAS_D1_COUNTS_") and q["state"] == "RUNNING"
    _, desc = sql.ksql("DESCRIBE d1_counts EXTENDED;")
    sd = desc[0]["sourceDescription"]
    assert sd["type"] == "TABLE" and sd["keyFormat"] == "KAFKA" and sd["partitions"] == 2
    assert [f["name"] for f in sd["fields"]] == ["V", "N"]
    assert sd["fields"][0]["type"] == "KEY" and sd["fields"][1]["schema"]["type"] == "BIGINT"
    assert sd["writeQueries"][0]["id"] == q["id"]
    _, explain = sql.ksql(f"EXPLAIN {q['id']};")
    assert explain[0]["queryDescription"]["sources"] == ["D1"]
    _, topics = sql.ksql("SHOW TOPICS;")
    assert {"name": "d1", "replicaInfo": [1, 1]} in topics[0]["topics"]
    _, funcs = sql.ksql("SHOW FUNCTIONS;")
    names = {f["name"]: f["type"] for f in funcs[0]["functions"]}
    assert names["UCASE"] == "SCALAR" and names["TOPK"] == "AGGREGATE"
    _, df = sql.ksql("DESCRIBE FUNCTION SUBSTRING;")
    assert df[0]["@type"] == "describe_function" and df[0]["type"] == "SCALAR"
    assert len(df[0]["functions"]) == 2
    _, props = sql.ksql("SHOW PROPERTIES;")
    assert any(p["name"] == "ksql.service.id" and p["value"] == "sqltest_" for p in props[0]["properties"])
    # DEFINE'd variables, sent as sessionVariables.
    status, _ = sql.ksql("CREATE STREAM ${name} (ID INT KEY) WITH (KAFKA_TOPIC='${name}', VALUE_FORMAT='JSON', PARTITIONS=1);",
                         variables={"name": "d_var"})
    assert status == 200
    assert sql.ksql("DESCRIBE d_var;")[0] == 200
    # DROP with running queries is refused; TERMINATE then DROP ... DELETE TOPIC works.
    status, answer = sql.ksql("DROP STREAM d1;", ok=False)
    assert status == 400 and "terminate them before dropping" in answer["message"]
    _, t = sql.ksql(f"TERMINATE {q['id']};")
    assert t[0]["commandStatus"]["message"] == "Query terminated."
    sql.ksql("DROP TABLE d1_counts DELETE TOPIC; DROP STREAM d1;")
    _, topics = sql.ksql("SHOW TOPICS;")
    assert not any(t["name"] == "D1_COUNTS" for t in topics[0]["topics"])
    status, st = sql.get("/status/stream/`D1`/drop")
    assert status == 200 and st["status"] == "SUCCESS"


# --- queries over REST ---------------------------------------------------------------

def _http(sql, path: str, body: dict, accept: str | None = None, http2: bool = False):
    import httpx
    headers = {"Accept": accept} if accept else {}
    with httpx.Client(http2=http2, http1=not http2, timeout=30) as c:
        return c.post(sql.url + path, json=body, headers=headers)


def test_push_and_pull_queries(sql, node):
    sql.ksql("CREATE STREAM pq (ID INT KEY, V STRING, N INT) WITH (KAFKA_TOPIC='pq', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE TABLE pq_t AS SELECT V, SUM(N) AS S FROM pq GROUP BY V;")
    produce(node.bootstrap, "pq", [
        {"key": {"int": i}, "value": {"V": f"v{i % 3}", "N": i}, "timestamp": 1000 + i} for i in range(12)])
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["PQ_T"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["pq"])
    # Pull query by key, delimited (the default) and JSON.
    r = _http(sql, "/query-stream", {"sql": "SELECT * FROM pq_t WHERE V = 'v1';"})
    lines = r.text.strip().splitlines()
    header = json.loads(lines[0])
    assert header["columnNames"] == ["V", "S"] and header["columnTypes"] == ["STRING", "INTEGER"]
    assert [json.loads(x) for x in lines[1:]] == [["v1", 1 + 4 + 7 + 10]]
    r = _http(sql, "/query-stream", {"sql": "SELECT V, S FROM pq_t WHERE S > 13;"}, accept="application/json")
    rows = r.json()
    assert sorted(rows[1:]) == [["v0", 18], ["v1", 22], ["v2", 26]]
    status, body = sql.post("/query", {"ksql": "SELECT * FROM pq_t WHERE V = 'v2';"})
    assert status == 200 and body[0]["header"]["schema"] == "`V` STRING, `S` INTEGER"
    assert body[1] == {"row": {"columns": ["v2", 26]}}
    # A pull query on a stream scans its topic up to its current end.
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, N FROM pq WHERE N >= 9;"}, accept="application/json")
    assert r.json()[0]["columnNames"] == ["ID", "N"] and sorted(r.json()[1:]) == [[9, 9], [10, 10], [11, 11]]
    r = _http(sql, "/query-stream", {"sql": "SELECT V FROM pq LIMIT 2;"}, accept="application/json")
    assert len(r.json()[1:]) == 2
    # A pull query on a table nothing materializes is refused.
    sql.ksql("CREATE TABLE pq_src (ID INT PRIMARY KEY, V STRING) WITH (KAFKA_TOPIC='pq', VALUE_FORMAT='JSON');")
    status, err = sql.post("/query", {"ksql": "SELECT * FROM pq_src WHERE ID = 1;"})
    assert status == 400 and "isn't queryable" in err["message"]
    # Push query with LIMIT over HTTP/1.1 and HTTP/2 (prior knowledge).
    for http2 in (False, True):
        r = _http(sql, "/query-stream", {"sql": "SELECT ID, N * 2 AS D FROM pq WHERE N >= 10 EMIT CHANGES LIMIT 2;",
                                         "properties": {"auto.offset.reset": "earliest"}}, http2=http2)
        lines = r.text.strip().splitlines()
        assert json.loads(lines[0])["columnNames"] == ["ID", "D"]
        assert sorted(json.loads(x) for x in lines[1:]) == [[10, 20], [11, 22]]
        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    # The old /query endpoint streams chunks and ends at the limit.
    status, body = sql.post("/query", {"ksql": "SELECT V FROM pq WHERE ID = 3 EMIT CHANGES LIMIT 1;",
                                       "streamsProperties": {"auto.offset.reset": "earliest"}})
    assert status == 200 and body[1] == {"row": {"columns": ["v0"]}}
    assert body[-1] == {"finalMessage": "Limit Reached"}


def test_push_query_sees_new_rows_and_closes(sql, node):
    sql.ksql("CREATE STREAM live (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='live', VALUE_FORMAT='JSON', PARTITIONS=1);")
    import httpx
    with httpx.Client(timeout=60) as c:
        with c.stream("POST", sql.url + "/query-stream",
                      json={"sql": "SELECT * FROM live EMIT CHANGES;"}) as r:
            lines = r.iter_lines()
            header = json.loads(next(lines))
            # New rows arrive as they are written (INSERT VALUES through /ksql).
            sql.ksql("INSERT INTO live (ID, V) VALUES (1, 'one');")
            assert json.loads(next(lines)) == [1, "one"]
            # /inserts-stream writes more rows.
            ack = httpx.post(sql.url + "/inserts-stream",
                             content='{"target": "LIVE"}\n{"ID": 2, "V": "two"}\n{"ID": "x"}\n')
            acks = [json.loads(x) for x in ack.text.splitlines()]
            assert acks[0] == {"status": "ok", "seq": 0} and acks[1]["status"] == "error"
            assert json.loads(next(lines)) == [2, "two"]
            assert sql.post("/close-query", {"queryId": header["queryId"]})[0] == 200


# --- schema-registry formats: AVRO, PROTOBUF, JSON_SR ---------------------------------

SR_ORDER = json.dumps({
    "type": "record", "name": "Order", "namespace": "weir.sqltest", "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "price", "type": "double"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "addr", "type": {"type": "record", "name": "Addr",
                                  "fields": [{"name": "city", "type": "string"}]}},
        {"name": "attrs", "type": {"type": "map", "values": "double"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ]})


def _sr_read(bootstrap: str, topic: str, n: int, key_de, value_de) -> list:
    """`n` records of `topic`, deserialized by confluent-kafka."""
    from confluent_kafka.serialization import MessageField, SerializationContext
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sr-{random.random()}",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([topic])
    out, deadline = [], time.monotonic() + 60
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        k = key_de(m.key(), SerializationContext(topic, MessageField.KEY)) if key_de else m.key()
        v = value_de(m.value(), SerializationContext(topic, MessageField.VALUE))
        out.append((k, v))
    c.close()
    assert len(out) == n, out
    return out


def _sr_produce(bootstrap: str, topic: str, frames: list[tuple]) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap})
    for k, v in frames:
        p.produce(topic, key=k, value=v, timestamp=1_700_000_000_000)
    assert p.flush(30) == 0


def test_avro_in_and_out_through_the_registry(sql, node):
    """confluent-kafka's AvroSerializer writes a topic; a stream infers its
    columns from the registry; CSAS and CTAS write AVRO, registering
    ksqlDB's schemas under <topic>-key/-value, read back by
    confluent-kafka's AvroDeserializer; push and pull queries decode it."""
    import datetime
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from weir_helpers import admin, create_topic
    reg = SchemaRegistryClient({"url": node.registry_url})
    topic = "sr_orders"
    create_topic(admin(node.bootstrap), topic)
    ser = AvroSerializer(reg, SR_ORDER)
    orders = [{"id": i, "item": f"it{i % 2}", "price": 0.5 * i,
               "at": datetime.datetime.fromtimestamp(1_700_000_000 + i, datetime.timezone.utc),
               "tags": [f"t{j}" for j in range(i % 3)], "addr": {"city": f"c{i}"},
               "attrs": {"w": i * 1.5}, "note": None if i % 2 else f"n{i}"} for i in range(5)]
    _sr_produce(node.bootstrap, topic, [(f"k{i}".encode(), ser(o, SerializationContext(topic, MessageField.VALUE)))
                                        for i, o in enumerate(orders)])
    # Columns inferred from the subject's latest schema, names upper-cased.
    sql.ksql(f"CREATE STREAM sr_orders WITH (KAFKA_TOPIC='{topic}', KEY_FORMAT='KAFKA', VALUE_FORMAT='AVRO');")
    desc = sql.ksql("DESCRIBE sr_orders;")[1][0]["sourceDescription"]
    assert [(f["name"], f["schema"]["type"]) for f in desc["fields"]] == [
        ("ID", "BIGINT"), ("ITEM", "STRING"), ("PRICE", "DOUBLE"), ("AT", "TIMESTAMP"), ("TAGS", "ARRAY"),
        ("ADDR", "STRUCT"), ("ATTRS", "MAP"), ("NOTE", "STRING")]
    assert desc["valueFormat"] == "AVRO"
    # The schema id names the same schema; declaring columns with it is refused.
    sid = reg.get_latest_version(f"{topic}-value").schema_id
    sql.ksql(f"CREATE STREAM sr_orders_id WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='AVRO', VALUE_SCHEMA_ID={sid});")
    status, err = sql.ksql(f"CREATE STREAM sr_bad (A INT) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='AVRO', "
                           f"VALUE_SCHEMA_ID={sid});", ok=False)
    assert status == 400 and "VALUE_SCHEMA_ID cannot both exist" in err["message"], err
    status, err = sql.ksql("CREATE STREAM sr_none WITH (KAFKA_TOPIC='sr_none', VALUE_FORMAT='AVRO', PARTITIONS=1);",
                           ok=False)
    assert status == 400 and "Subject: sr_none-value" in err["message"], err
    # A persistent query writing AVRO keys and values.
    sql.ksql("CREATE STREAM sr_out WITH (KAFKA_TOPIC='sr_out', FORMAT='AVRO') AS "
             "SELECT ID, ITEM, PRICE * 2 AS P2, ADDR->CITY AS CITY, AT, TAGS FROM sr_orders "
             "WHERE PRICE > 0.7 PARTITION BY ID EMIT CHANGES;")
    value_schema = json.loads(reg.get_latest_version("sr_out-value").schema.schema_str)
    assert value_schema["name"] == "KsqlDataSourceSchema"
    assert value_schema["namespace"] == "io.confluent.ksql.avro_schemas"
    assert value_schema["fields"][0] == {"name": "ITEM", "type": ["null", "string"], "default": None}
    assert json.loads(reg.get_latest_version("sr_out-key").schema.schema_str) == ["null", "long"]
    got = _sr_read(node.bootstrap, "sr_out", 3, AvroDeserializer(reg), AvroDeserializer(reg))
    assert sorted(got, key=lambda kv: kv[0]) == [
        (i, {"ITEM": f"it{i % 2}", "P2": float(i), "CITY": f"c{i}",
             "AT": datetime.datetime.fromtimestamp(1_700_000_000 + i, datetime.timezone.utc),
             "TAGS": [f"t{j}" for j in range(i % 3)]}) for i in (2, 3, 4)]
    # PRINT decodes registry frames with their writer schemas.
    status, text = sql.post("/query", {"ksql": "PRINT 'sr_out' FROM BEGINNING LIMIT 1;"})
    assert status == 200, text
    head_key, head_value, line = text.strip().splitlines()
    assert (head_key, head_value) == ("Key format: AVRO", "Value format: AVRO"), text
    key = int(line.split(", key: ")[1].split(", value: ")[0])
    value = json.loads(line.split(", value: ")[1].rsplit(", partition: ", 1)[0])
    assert key in (2, 3, 4) and value["ITEM"] == f"it{key % 2}" and value["P2"] == float(key), line
    # INSERT VALUES writes with the inferred schema; confluent-kafka reads it.
    sql.ksql("INSERT INTO sr_orders (ID, ITEM, PRICE, AT, TAGS, ADDR, ATTRS) VALUES "
             "(9, 'it9', 4.5, 1700000009000, ARRAY['x'], STRUCT(CITY := 'c9'), MAP('w' := 1.0));")
    got = _sr_read(node.bootstrap, topic, 6, None, AvroDeserializer(reg))
    assert got[5][1]["id"] == 9 and got[5][1]["addr"] == {"city": "c9"} and got[5][1]["note"] is None
    # A table in AVRO: pull query by key and a push query through the REST API.
    sql.ksql("CREATE TABLE sr_counts WITH (FORMAT='AVRO') AS SELECT ITEM, COUNT(*) AS N FROM sr_orders GROUP BY ITEM;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["SR_COUNTS"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), [topic])
    r = _http(sql, "/query-stream", {"sql": "SELECT * FROM sr_counts WHERE ITEM = 'it0';"})
    assert [json.loads(x) for x in r.text.strip().splitlines()[1:]] == [["it0", 3]]
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, P2, CITY FROM sr_out EMIT CHANGES LIMIT 4;",
                                     "properties": {"auto.offset.reset": "earliest"}})
    assert sorted(json.loads(x) for x in r.text.strip().splitlines()[1:]) == [
        [2, 2.0, "c2"], [3, 3.0, "c3"], [4, 4.0, "c4"], [9, 9.0, "c9"]]
    assert json.loads(reg.get_latest_version("SR_COUNTS-key").schema.schema_str) == ["null", "string"]


def test_avro_nosr(sql, node):
    """AVRO_NOSR: Avro bodies without the registry frame, in the schema ksqlDB
    derives from the columns; fastavro reads what a query writes and writes
    what a query reads."""
    import io
    import fastavro
    schema = fastavro.parse_schema({
        "type": "record", "name": "KsqlDataSourceSchema", "namespace": "io.confluent.ksql.avro_schemas",
        "fields": [{"name": "NAME", "type": ["null", "string"], "default": None},
                   {"name": "N2", "type": ["null", "long"], "default": None}]})
    sql.ksql("CREATE STREAM nj (ID INT KEY, NAME STRING, N BIGINT) WITH (KAFKA_TOPIC='nj', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM nosr WITH (KAFKA_TOPIC='nosr', VALUE_FORMAT='AVRO_NOSR') AS SELECT ID, NAME, N * 2 AS N2 FROM nj;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["NOSR"])
    produce(node.bootstrap, "nj", [{"key": {"int": 1}, "value": {"NAME": "a", "N": 5}, "timestamp": 1}])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["nj"])
    (out,) = read_all(node.bootstrap, "nosr")
    assert out["key"] == key_bytes({"int": 1})
    assert fastavro.schemaless_reader(io.BytesIO(out["value"]), schema) == {"NAME": "a", "N2": 10}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, {"NAME": "b", "N2": None})
    _sr_produce(node.bootstrap, "nosr", [(key_bytes({"int": 2}), buf.getvalue())])
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, NAME, N2 FROM nosr EMIT CHANGES LIMIT 2;",
                                     "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
    assert r.json()[1:] == [[1, "a", 10], [2, "b", None]], r.text
    _, desc = sql.ksql("DESCRIBE nosr;")
    assert desc[0]["sourceDescription"]["valueFormat"] == "AVRO_NOSR"
    status, err = sql.ksql("CREATE STREAM nosr_none WITH (KAFKA_TOPIC='nosr', VALUE_FORMAT='AVRO_NOSR');", ok=False)
    assert status == 400 and "needs declared value columns" in err["message"], err


def test_protobuf_nosr(sql, node):
    """PROTOBUF_NOSR: Protobuf messages without the registry frame or
    message indexes, in the schema derived from the columns, the message
    named by VALUE_SCHEMA_FULL_NAME; Python's protobuf runtime parses what
    a query writes and writes what a query reads."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="sqltest_nosr.proto", package="weir.sqltest", syntax="proto3")
    m = fdp.message_type.add(name="Reading")
    m.field.add(name="NAME", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="N2", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    Reading = message_factory.GetMessageClass(pool.FindMessageTypeByName("weir.sqltest.Reading"))
    sql.ksql("CREATE STREAM pnj (ID INT KEY, NAME STRING, N BIGINT) WITH (KAFKA_TOPIC='pnj', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM pnosr WITH (KAFKA_TOPIC='pnosr', VALUE_FORMAT='PROTOBUF_NOSR', "
             "VALUE_SCHEMA_FULL_NAME='weir.sqltest.Reading') AS SELECT ID, NAME, N * 2 AS N2 FROM pnj;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["PNOSR"])
    produce(node.bootstrap, "pnj", [{"key": {"int": 1}, "value": {"NAME": "a", "N": 5}, "timestamp": 1}])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["pnj"])
    (out,) = read_all(node.bootstrap, "pnosr")
    assert out["key"] == key_bytes({"int": 1})
    msg = Reading.FromString(out["value"])
    assert (msg.NAME, msg.N2) == ("a", 10)
    _sr_produce(node.bootstrap, "pnosr", [(key_bytes({"int": 2}), Reading(NAME="b", N2=7).SerializeToString())])
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, NAME, N2 FROM pnosr EMIT CHANGES LIMIT 2;",
                                     "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
    assert r.json()[1:] == [[1, "a", 10], [2, "b", 7]], r.text
    _, desc = sql.ksql("DESCRIBE pnosr;")
    assert desc[0]["sourceDescription"]["valueFormat"] == "PROTOBUF_NOSR"
    status, err = sql.ksql("CREATE STREAM pnosr_none WITH (KAFKA_TOPIC='pnosr', VALUE_FORMAT='PROTOBUF_NOSR');", ok=False)
    assert status == 400 and "needs declared value columns" in err["message"], err
    status, err = sql.ksql("CREATE STREAM pn_bad (A INT) WITH (KAFKA_TOPIC='pnj', VALUE_FORMAT='JSON', "
                           "VALUE_SCHEMA_FULL_NAME='x.Y');", ok=False)
    assert status == 400 and "only with the PROTOBUF_NOSR format" in err["message"], err


def test_protobuf_and_json_sr_through_the_registry(sql, node):
    """confluent-kafka's ProtobufSerializer and JSONSerializer write topics
    whose streams infer their columns; queries convert PROTOBUF to JSON_SR
    and JSON_SR to PROTOBUF, read back by confluent-kafka's deserializers."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from weir_helpers import admin, create_topic
    reg = SchemaRegistryClient({"url": node.registry_url})
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="sqltest_reading.proto", package="sqltest", syntax="proto3")
    m = fdp.message_type.add(name="Reading")
    m.field.add(name="sensor", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="level", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="tags", number=3, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    Reading = message_factory.GetMessageClass(pool.FindMessageTypeByName("sqltest.Reading"))
    for t in ("sr_pb_in", "sr_js_in"):
        create_topic(admin(node.bootstrap), t)
    pser = ProtobufSerializer(Reading, reg, {"use.deprecated.format": False})
    _sr_produce(node.bootstrap, "sr_pb_in", [
        (None, pser(Reading(sensor=f"s{i}", level=i * 10, tags=["a"] * i),
                    SerializationContext("sr_pb_in", MessageField.VALUE))) for i in range(3)])
    js = json.dumps({"type": "object", "title": "Reading", "properties": {
        "sensor": {"type": "string"}, "level": {"type": "integer"},
        "loc": {"type": "object", "properties": {"lat": {"type": "number"}}}}})
    jser = JSONSerializer(js, reg)
    _sr_produce(node.bootstrap, "sr_js_in", [
        (None, jser({"sensor": f"j{i}", "level": i, "loc": {"lat": i + 0.5}},
                    SerializationContext("sr_js_in", MessageField.VALUE))) for i in range(3)])
    sql.ksql("CREATE STREAM sr_pb_in WITH (KAFKA_TOPIC='sr_pb_in', VALUE_FORMAT='PROTOBUF');"
             "CREATE STREAM sr_js_in WITH (KAFKA_TOPIC='sr_js_in', VALUE_FORMAT='JSON_SR');")
    fields = lambda name: [(f["name"], f["schema"]["type"]) for f in
                           sql.ksql(f"DESCRIBE {name};")[1][0]["sourceDescription"]["fields"]]
    assert fields("sr_pb_in") == [("SENSOR", "STRING"), ("LEVEL", "INTEGER"), ("TAGS", "ARRAY")]
    # JSON Schema properties are unordered: by name unless `connect.index` orders them.
    assert fields("sr_js_in") == [("LEVEL", "BIGINT"), ("LOC", "STRUCT"), ("SENSOR", "STRING")]
    # PROTOBUF in, JSON_SR out, read by confluent-kafka's JSONDeserializer.
    sql.ksql("CREATE STREAM sr_pb2js WITH (KAFKA_TOPIC='sr_pb2js', VALUE_FORMAT='JSON_SR') AS "
             "SELECT SENSOR, LEVEL + 1 AS V1, TAGS FROM sr_pb_in;")
    got = _sr_read(node.bootstrap, "sr_pb2js", 3, None, JSONDeserializer(None, schema_registry_client=reg))
    assert sorted((v for _, v in got), key=str) == sorted(
        [{"SENSOR": f"s{i}", "V1": i * 10 + 1, "TAGS": ["a"] * i} for i in range(3)], key=str)
    # JSON_SR in, PROTOBUF out (ksqlDB's ConnectDefault1), read by
    # confluent-kafka's ProtobufDeserializer with a class built from the
    # registered schema's descriptor.
    sql.ksql("CREATE STREAM sr_js2pb WITH (KAFKA_TOPIC='sr_js2pb', VALUE_FORMAT='PROTOBUF') AS "
             "SELECT SENSOR, LEVEL, LOC->LAT AS LAT FROM sr_js_in;")
    text = reg.get_latest_version("sr_js2pb-value").schema.schema_str
    assert "message ConnectDefault1 {" in text, text
    out = descriptor_pb2.FileDescriptorProto(name="sqltest_out.proto", syntax="proto3")
    om = out.message_type.add(name="ConnectDefault1")
    om.field.add(name="SENSOR", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    om.field.add(name="LEVEL", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    om.field.add(name="LAT", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    opool = descriptor_pool.DescriptorPool()
    opool.Add(out)
    Out = message_factory.GetMessageClass(opool.FindMessageTypeByName("ConnectDefault1"))
    got = _sr_read(node.bootstrap, "sr_js2pb", 3, None,
                   ProtobufDeserializer(Out, {"use.deprecated.format": False}))
    assert sorted((v.SENSOR, v.LEVEL, v.LAT) for _, v in got) == [(f"j{i}", i, i + 0.5) for i in range(3)]
    r = _http(sql, "/query-stream", {"sql": "SELECT * FROM sr_js2pb EMIT CHANGES LIMIT 3;",
                                     "properties": {"auto.offset.reset": "earliest"}})
    assert sorted(json.loads(x) for x in r.text.strip().splitlines()[1:]) == [[f"j{i}", i, i + 0.5] for i in range(3)]


SR_PAYMENT = json.dumps({
    "type": "record", "name": "Payment", "namespace": "weir.sqltest", "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
    ]})


def test_decimal_through_every_format(sql, node):
    """DECIMAL as ksqlDB has it: confluent-kafka's AvroSerializer writes
    `bytes`/`decimal` fields, a stream infers DECIMAL(6, 2) from the
    registry; arithmetic takes ksqlDB's result types; casts; SUM/MIN/MAX
    keep the type and AVG is DOUBLE; AVRO, PROTOBUF (confluent.type.Decimal,
    with DATE and TIME as google.type messages), JSON_SR, JSON and
    DELIMITED outputs read back by confluent-kafka; the REST API's schemas
    and rows."""
    import datetime
    from decimal import Decimal
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, protobuf_to_decimal
    from confluent_kafka.schema_registry.confluent.type import decimal_pb2  # noqa: F401 (registers the file)
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.type import date_pb2, timeofday_pb2  # noqa: F401 (register the files)
    from weir_helpers import admin, create_topic
    reg = SchemaRegistryClient({"url": node.registry_url})
    topic = "dec_in"
    create_topic(admin(node.bootstrap), topic)
    ser = AvroSerializer(reg, SR_PAYMENT)
    amounts = ["12.34", "0.50", "1.00", "-3.25", "999.99"]
    _sr_produce(node.bootstrap, topic, [
        (None, ser({"id": i, "item": f"it{i % 2}", "amount": Decimal(a)},
                   SerializationContext(topic, MessageField.VALUE))) for i, a in enumerate(amounts)])
    sql.ksql(f"CREATE STREAM dec_in WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='AVRO');")
    desc = sql.ksql("DESCRIBE dec_in;")[1][0]["sourceDescription"]
    amount_field = next(f for f in desc["fields"] if f["name"] == "AMOUNT")
    assert amount_field["schema"] == {"type": "DECIMAL", "fields": None, "memberSchema": None,
                                      "parameters": {"precision": 6, "scale": 2}}, amount_field
    # Arithmetic with ksqlDB's result precision and scale, casts, a literal.
    sql.ksql("CREATE STREAM dec_out WITH (KAFKA_TOPIC='dec_out', VALUE_FORMAT='AVRO') AS SELECT ID, AMOUNT, "
             "AMOUNT * 2 AS DOUBLED, AMOUNT + 0.005 AS BUMPED, AMOUNT / 4 AS QUARTER, AMOUNT % 1 AS FRAC, "
             "CAST(AMOUNT AS INT) AS WHOLE, CAST(AMOUNT AS STRING) AS TXT, CAST(AMOUNT AS DOUBLE) AS D, "
             "CAST(ID AS DECIMAL(4, 1)) AS IDD, CAST('7.255' AS DECIMAL(5, 2)) AS ROUNDED "
             "FROM dec_in WHERE AMOUNT > 0.75;")
    types = {f["name"]: f["schema"] for f in sql.ksql("DESCRIBE dec_out;")[1][0]["sourceDescription"]["fields"]}
    dec = lambda p, s: {"type": "DECIMAL", "fields": None, "memberSchema": None,
                        "parameters": {"precision": p, "scale": s}}
    assert types["DOUBLED"] == dec(17, 2) and types["BUMPED"] == dec(8, 3)
    assert types["QUARTER"] == dec(17, 13) and types["FRAC"] == dec(6, 2)
    assert types["WHOLE"]["type"] == "INTEGER" and types["D"]["type"] == "DOUBLE"
    value_schema = json.loads(reg.get_latest_version("dec_out-value").schema.schema_str)
    bumped = next(f for f in value_schema["fields"] if f["name"] == "BUMPED")["type"][1]
    assert (bumped["type"], bumped["logicalType"], bumped["precision"], bumped["scale"]) == \
        ("bytes", "decimal", 8, 3), bumped
    got = sorted((v for _, v in _sr_read(node.bootstrap, "dec_out", 3, None, AvroDeserializer(reg))),
                 key=lambda v: v["ID"])
    expected = [
        {"ID": 0, "AMOUNT": Decimal("12.34"), "DOUBLED": Decimal("24.68"), "BUMPED": Decimal("12.345"),
         "QUARTER": Decimal("3.0850000000000"), "FRAC": Decimal("0.34"), "WHOLE": 12, "TXT": "12.34",
         "D": 12.34, "IDD": Decimal("0.0"), "ROUNDED": Decimal("7.26")},
        {"ID": 2, "AMOUNT": Decimal("1.00"), "DOUBLED": Decimal("2.00"), "BUMPED": Decimal("1.005"),
         "QUARTER": Decimal("0.2500000000000"), "FRAC": Decimal("0.00"), "WHOLE": 1, "TXT": "1.00",
         "D": 1.0, "IDD": Decimal("2.0"), "ROUNDED": Decimal("7.26")},
        {"ID": 4, "AMOUNT": Decimal("999.99"), "DOUBLED": Decimal("1999.98"), "BUMPED": Decimal("999.995"),
         "QUARTER": Decimal("249.9975000000000"), "FRAC": Decimal("0.99"), "WHOLE": 999, "TXT": "999.99",
         "D": 999.99, "IDD": Decimal("4.0"), "ROUNDED": Decimal("7.26")},
    ]
    assert got == expected, got
    # Aggregates: SUM, MIN and MAX keep DECIMAL(6, 2), AVG is a DOUBLE.
    sql.ksql("CREATE TABLE dec_sum WITH (FORMAT='AVRO') AS SELECT ITEM, SUM(AMOUNT) AS TOTAL, "
             "MIN(AMOUNT) AS LO, MAX(AMOUNT) AS HI, AVG(AMOUNT) AS MEAN FROM dec_in GROUP BY ITEM;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["DEC_SUM"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), [topic])
    status, body = sql.post("/query", {"ksql": "SELECT * FROM dec_sum WHERE ITEM = 'it0';"})
    assert status == 200, body
    assert body[0]["header"]["schema"] == \
        "`ITEM` STRING, `TOTAL` DECIMAL(6, 2), `LO` DECIMAL(6, 2), `HI` DECIMAL(6, 2), `MEAN` DOUBLE", body
    assert body[1]["row"]["columns"][:4] == ["it0", 1013.33, 1.0, 999.99], body
    assert abs(body[1]["row"]["columns"][4] - 1013.33 / 3) < 1e-9, body
    got = _sr_read(node.bootstrap, "DEC_SUM", 5, AvroDeserializer(reg), AvroDeserializer(reg))
    assert got[-1][1]["TOTAL"] in (Decimal("1013.33"), Decimal("-2.75")), got
    # JSON (a number), DELIMITED (the text) and JSON_SR (a number; the
    # schema Connect's JsonSchemaData writes).
    sql.ksql("CREATE STREAM dec_js WITH (KAFKA_TOPIC='dec_js', VALUE_FORMAT='JSON') AS "
             "SELECT ID, AMOUNT, AMOUNT * 1.5 AS M FROM dec_in;"
             "CREATE STREAM dec_del WITH (KAFKA_TOPIC='dec_del', VALUE_FORMAT='DELIMITED') AS "
             "SELECT ID, AMOUNT, ITEM FROM dec_in;"
             "CREATE STREAM dec_jsr WITH (KAFKA_TOPIC='dec_jsr', VALUE_FORMAT='JSON_SR') AS "
             "SELECT ID, AMOUNT FROM dec_in;")
    for q in ("DEC_JS", "DEC_DEL", "DEC_JSR"):
        qid = next(x["id"] for x in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if x["sinks"] == [q])
        wait_caught_up(node.bootstrap, query_group("sqltest_", qid), [topic])
    assert [json.loads(r["value"]) for r in read_all(node.bootstrap, "dec_js")] == [
        {"ID": i, "AMOUNT": float(a), "M": float(Decimal(a) * Decimal("1.5"))} for i, a in enumerate(amounts)]
    assert [r["value"].decode() for r in read_all(node.bootstrap, "dec_del")] == [
        f"{i},{a},it{i % 2}" for i, a in enumerate(amounts)]
    got = _sr_read(node.bootstrap, "dec_jsr", 5, None, JSONDeserializer(None, schema_registry_client=reg))
    assert [v["AMOUNT"] for _, v in got] == [float(a) for a in amounts]
    jsr = json.loads(reg.get_latest_version("dec_jsr-value").schema.schema_str)
    amount_schema = jsr["properties"]["AMOUNT"]["oneOf"][1]
    assert amount_schema["title"] == "org.apache.kafka.connect.data.Decimal", jsr
    assert amount_schema["connect.parameters"] == {"scale": "2", "connect.decimal.precision": "6"}
    # JSON and DELIMITED read decimals back; JSON_SR infers DECIMAL(6, 2).
    sql.ksql("CREATE STREAM dec_js_back (ID BIGINT, AMOUNT DECIMAL(6, 2), M DECIMAL(9, 3)) "
             "WITH (KAFKA_TOPIC='dec_js', VALUE_FORMAT='JSON');"
             "CREATE STREAM dec_del_back (ID BIGINT, AMOUNT DECIMAL(6, 2), ITEM STRING) "
             "WITH (KAFKA_TOPIC='dec_del', VALUE_FORMAT='DELIMITED');"
             "CREATE STREAM dec_jsr_back WITH (KAFKA_TOPIC='dec_jsr', VALUE_FORMAT='JSON_SR');")
    types = {f["name"]: f["schema"] for f in
             sql.ksql("DESCRIBE dec_jsr_back;")[1][0]["sourceDescription"]["fields"]}
    assert types["AMOUNT"] == dec(6, 2), types
    for src in ("dec_js_back", "dec_del_back", "dec_jsr_back"):
        r = _http(sql, "/query-stream", {"sql": f"SELECT ID, AMOUNT FROM {src} WHERE AMOUNT < 1 EMIT CHANGES LIMIT 2;",
                                         "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
        assert r.json()[0]["columnTypes"] == ["BIGINT", "DECIMAL(6, 2)"], r.text
        assert r.json()[1:] == [[1, 0.5], [3, -3.25]], (src, r.text)
    # PROTOBUF: confluent.type.Decimal with its precision and scale in the
    # field's metadata, DATE and TIME as google.type.Date and TimeOfDay.
    sql.ksql("CREATE STREAM dec_pb WITH (KAFKA_TOPIC='dec_pb', VALUE_FORMAT='PROTOBUF') AS "
             "SELECT ID, AMOUNT, FROM_DAYS(CAST(19000 + ID AS INT)) AS DAY, PARSE_TIME('10:11:12.500', 'HH:mm:ss.SSS') AS AT "
             "FROM dec_in;")
    text = reg.get_latest_version("dec_pb-value").schema.schema_str
    assert 'import "confluent/type/decimal.proto";' in text and 'import "google/type/date.proto";' in text, text
    assert "confluent.type.Decimal AMOUNT = 2 [(confluent.field_meta)" in text, text
    assert "google.type.Date DAY = 3;" in text and "google.type.TimeOfDay AT = 4;" in text, text
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="sqltest_dec_out.proto", syntax="proto3",
        dependency=["confluent/type/decimal.proto", "google/type/date.proto", "google/type/timeofday.proto"])
    m = fdp.message_type.add(name="ConnectDefault1")
    m.field.add(name="ID", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="AMOUNT", number=2, type=F.TYPE_MESSAGE, type_name=".confluent.type.Decimal",
                label=F.LABEL_OPTIONAL)
    m.field.add(name="DAY", number=3, type=F.TYPE_MESSAGE, type_name=".google.type.Date", label=F.LABEL_OPTIONAL)
    m.field.add(name="AT", number=4, type=F.TYPE_MESSAGE, type_name=".google.type.TimeOfDay",
                label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.Add(fdp)
    Out = message_factory.GetMessageClass(pool.FindMessageTypeByName("ConnectDefault1"))
    got = _sr_read(node.bootstrap, "dec_pb", 5, None, ProtobufDeserializer(Out, {"use.deprecated.format": False}))
    day0 = datetime.date(1970, 1, 1) + datetime.timedelta(days=19000)
    assert [(v.ID, protobuf_to_decimal(v.AMOUNT), (v.DAY.year, v.DAY.month, v.DAY.day),
             (v.AT.hours, v.AT.minutes, v.AT.seconds, v.AT.nanos)) for _, v in got] == [
        (i, Decimal(a), (day0.year, day0.month, day0.day + i), (10, 11, 12, 500_000_000))
        for i, a in enumerate(amounts)]
    # A stream over it infers DECIMAL(6, 2), DATE and TIME from the registry.
    sql.ksql("CREATE STREAM dec_pb_back WITH (KAFKA_TOPIC='dec_pb', VALUE_FORMAT='PROTOBUF');")
    types = {f["name"]: f["schema"]["type"] for f in
             sql.ksql("DESCRIBE dec_pb_back;")[1][0]["sourceDescription"]["fields"]}
    assert types == {"ID": "BIGINT", "AMOUNT": "DECIMAL", "DAY": "DATE", "AT": "TIME"}, types
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, AMOUNT, DAY, AT FROM dec_pb_back WHERE ID = 4 EMIT CHANGES LIMIT 1;",
                                     "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
    # (Rows carry DATE as days and TIME as milliseconds.)
    assert r.json()[1:] == [[4, 999.99, 19004, 36_672_500]], r.text
    # Bad declarations are refused with ksqlDB's messages; a value that
    # does not fit is NULL.
    for decl, msg in [("DECIMAL(0, 0)", "DECIMAL precision must be >= 1"),
                      ("DECIMAL(2, 3)", "DECIMAL precision must be >= scale"),
                      ("DECIMAL(40, 2)", "precision above 38")]:
        status, err = sql.ksql(f"CREATE STREAM dec_bad (A {decl}) WITH (KAFKA_TOPIC='dec_bad', "
                               "VALUE_FORMAT='JSON', PARTITIONS=1);", ok=False)
        assert status == 400 and msg in err["message"], err
    r = _http(sql, "/query-stream", {"sql": "SELECT CAST(AMOUNT AS DECIMAL(3, 1)) AS C, AMOUNT / 3 AS T "
                                            "FROM dec_in WHERE ID = 4 EMIT CHANGES LIMIT 1;",
                                     "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
    assert r.json()[1:] == [[None, 333.33]], r.text


def test_info_healthcheck(sql):
    status, info = sql.get("/info")
    assert status == 200 and info["KsqlServerInfo"]["ksqlServiceId"] == "sqltest_"
    assert info["KsqlServerInfo"]["serverStatus"] == "RUNNING"
    status, health = sql.get("/healthcheck")
    assert status == 200 and health["isHealthy"] is True


def test_curl_ksql(sql):
    import subprocess
    out = subprocess.run(["curl", "-sS", "-X", "POST", sql.url + "/ksql",
                          "-H", "Content-Type: application/vnd.ksql.v1+json",
                          "-d", '{"ksql": "LIST STREAMS;", "streamsProperties": {}}'],
                         capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)[0]["@type"] == "streams"


# --- restarts and exactly once -----------------------------------------------------

def test_definitions_survive_restart(node, weir_binary, _broker_root):
    s = SqlServer(weir_binary, _broker_root, node.bootstrap, service_id="restart_").start()
    try:
        s.ksql("CREATE STREAM r1 (ID INT KEY, V INT) WITH (KAFKA_TOPIC='r1', VALUE_FORMAT='JSON', PARTITIONS=1);"
               "CREATE TABLE r1_sum AS SELECT ID, SUM(V) AS S FROM r1 GROUP BY ID;")
        produce(node.bootstrap, "r1", [{"key": {"int": 1}, "value": {"V": 5}, "timestamp": 1}])
        qid = next(q["id"] for q in s.ksql("SHOW QUERIES;")[1][0]["queries"])
        wait_caught_up(node.bootstrap, query_group("restart_", qid), ["r1"])
        assert s.stop() == 0
        s.start()
        _, queries = s.ksql("SHOW QUERIES;")
        assert [q["id"] for q in queries[0]["queries"]] == [qid]
        produce(node.bootstrap, "r1", [{"key": {"int": 1}, "value": {"V": 7}, "timestamp": 2}])
        wait_caught_up(node.bootstrap, query_group("restart_", qid), ["r1"])
        values = [json.loads(r["value"]) for r in read_all(node.bootstrap, "R1_SUM")]
        assert values == [{"S": 5}, {"S": 12}]
    finally:
        s.kill()


def test_stream_join_window_state_survives_kill9(node, weir_binary, _broker_root):
    """A LEFT JOIN's buffered and unmatched rows live in its changelog: after
    a kill -9 the restarted query still joins a right row to a left row read
    before the kill, and emits the unmatched left row once, when its window
    closes."""
    s = SqlServer(weir_binary, _broker_root, node.bootstrap, service_id="ssjoin_").start()
    try:
        s.ksql("CREATE STREAM sl (ID INT KEY, A STRING) WITH (KAFKA_TOPIC='sl', VALUE_FORMAT='JSON', PARTITIONS=1);"
               "CREATE STREAM sr (ID INT KEY, B STRING) WITH (KAFKA_TOPIC='sr', VALUE_FORMAT='JSON', PARTITIONS=1);"
               "CREATE STREAM sj AS SELECT L.ID AS ID, L.A, R.B FROM sl L LEFT JOIN sr R "
               "WITHIN 10 SECONDS GRACE PERIOD 5 SECONDS ON L.ID = R.ID;")
        qid = next(q["id"] for q in s.ksql("SHOW QUERIES;")[1][0]["queries"])
        produce(node.bootstrap, "sl", [{"key": {"int": 1}, "value": {"A": "a"}, "timestamp": 1000},
                                       {"key": {"int": 2}, "value": {"A": "b"}, "timestamp": 2000}])
        produce(node.bootstrap, "sr", [{"key": {"int": 7}, "value": {"B": "q"}, "timestamp": 1500}])
        wait_caught_up(node.bootstrap, query_group("ssjoin_", qid), ["sl", "sr"])
        assert read_all(node.bootstrap, "SJ", timeout=3) == []
        s.kill()
        s.start()
        produce(node.bootstrap, "sr", [{"key": {"int": 2}, "value": {"B": "x"}, "timestamp": 8000}])
        produce(node.bootstrap, "sl", [{"key": {"int": 3}, "value": {"A": "c"}, "timestamp": 40000}])
        wait_caught_up(node.bootstrap, query_group("ssjoin_", qid), ["sl", "sr"])
        got = [(r["key"], json.loads(r["value"]), r["timestamp"])
               for r in read_all(node.bootstrap, "SJ")]
        assert got == [(key_bytes({"int": 2}), {"A": "b", "B": "x"}, 8000),
                       (key_bytes({"int": 1}), {"A": "a", "B": None}, 1000)], got
    finally:
        s.kill()


def test_table_aggregation_state_survives_kill9(node, weir_binary, _broker_root):
    """A table aggregation keeps its input table's rows to undo them: after a
    kill -9 they are rebuilt from the input topic (up to the committed
    offsets) and the aggregates from the changelog, so an update of a row
    read before the kill takes that row's old contribution back."""
    s = SqlServer(weir_binary, _broker_root, node.bootstrap, service_id="tagg_").start()
    try:
        s.ksql("CREATE TABLE ta (ID INT PRIMARY KEY, G STRING, V INT) WITH (KAFKA_TOPIC='ta', VALUE_FORMAT='JSON', PARTITIONS=1);"
               "CREATE TABLE ta_sum AS SELECT G, COUNT(*) AS C, SUM(V) AS S FROM ta GROUP BY G;")
        qid = next(q["id"] for q in s.ksql("SHOW QUERIES;")[1][0]["queries"])
        produce(node.bootstrap, "ta", [{"key": {"int": 1}, "value": {"G": "x", "V": 5}, "timestamp": 1},
                                       {"key": {"int": 2}, "value": {"G": "x", "V": 7}, "timestamp": 2}])
        wait_caught_up(node.bootstrap, query_group("tagg_", qid), ["ta"])
        s.kill()
        s.start()
        produce(node.bootstrap, "ta", [{"key": {"int": 1}, "value": {"G": "y", "V": 6}, "timestamp": 3},
                                       {"key": {"int": 2}, "value": None, "timestamp": 4}])
        wait_caught_up(node.bootstrap, query_group("tagg_", qid), ["ta"])
        got = [(r["key"], json.loads(r["value"]), r["timestamp"]) for r in read_all(node.bootstrap, "TA_SUM")]
        x, y = key_bytes({"string": "x"}), key_bytes({"string": "y"})
        assert got == [(x, {"C": 1, "S": 5}, 1), (x, {"C": 2, "S": 12}, 2), (x, {"C": 1, "S": 7}, 3),
                       (y, {"C": 1, "S": 6}, 3), (x, {"C": 0, "S": 0}, 4)], got
    finally:
        s.kill()


def test_table_join_chain_state_survives_kill9(node, weir_binary, _broker_root):
    """A chain of table joins rebuilds every stage from its tables' topics
    after a kill -9: later updates join rows read before the kill."""
    s = SqlServer(weir_binary, _broker_root, node.bootstrap, service_id="tchain_").start()
    try:
        for t in ("ca", "cb", "cc"):
            s.ksql(f"CREATE TABLE {t} (ID INT PRIMARY KEY, V STRING) WITH (KAFKA_TOPIC='{t}', VALUE_FORMAT='JSON', PARTITIONS=1);")
        s.ksql("CREATE TABLE cj AS SELECT ca.ID, ca.V AS A, cb.V AS B, cc.V AS C FROM ca "
               "JOIN cb ON ca.ID = cb.ID LEFT JOIN cc ON ca.ID = cc.ID;")
        qid = next(q["id"] for q in s.ksql("SHOW QUERIES;")[1][0]["queries"])
        produce(node.bootstrap, "ca", [{"key": {"int": 1}, "value": {"V": "a"}, "timestamp": 1}])
        produce(node.bootstrap, "cb", [{"key": {"int": 1}, "value": {"V": "b"}, "timestamp": 2}])
        produce(node.bootstrap, "cc", [{"key": {"int": 1}, "value": {"V": "c"}, "timestamp": 3}])
        wait_caught_up(node.bootstrap, query_group("tchain_", qid), ["ca", "cb", "cc"])
        s.kill()
        s.start()
        produce(node.bootstrap, "cc", [{"key": {"int": 1}, "value": None, "timestamp": 4}])
        produce(node.bootstrap, "ca", [{"key": {"int": 1}, "value": {"V": "a2"}, "timestamp": 5}])
        wait_caught_up(node.bootstrap, query_group("tchain_", qid), ["ca", "cb", "cc"])
        got = [(json.loads(r["value"]), r["timestamp"]) for r in read_all(node.bootstrap, "CJ")]
        assert got == [({"A": "a", "B": "b", "C": None}, 2), ({"A": "a", "B": "b", "C": "c"}, 3),
                       ({"A": "a", "B": "b", "C": None}, 4), ({"A": "a2", "B": "b", "C": None}, 5)], got
    finally:
        s.kill()


def _kill_test(node, weir_binary, root, service: str, setup: list[str], inputs: dict, query: str,
               sink: str, sources: list[str]):
    s = SqlServer(weir_binary, root, node.bootstrap, service_id=service).start()
    try:
        for stmt in setup:
            s.ksql(stmt)
        for topic, records in inputs.items():
            produce(node.bootstrap, topic, records)
        # Reference: an uninterrupted run.
        ref = s.ksql(query.format(sink=sink + "_REF"))[1][0]["commandStatus"]["queryId"]
        wait_caught_up(node.bootstrap, query_group(service, ref), sources, timeout=120)
        expected = read_all(node.bootstrap, sink + "_REF")
        # The same query, killed with kill -9 at random points and restarted.
        qid = s.ksql(query.format(sink=sink))[1][0]["commandStatus"]["queryId"]
        # Kill when the output's end offset passes random points of the
        # expected output (transaction markers count too), three times.
        rnd = random.Random(14)
        points = sorted(rnd.uniform(0.1, 0.9) * len(expected) for _ in range(3))
        seen = []
        c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "kill9-watch"})
        try:
            for point in points:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    md = c.list_topics(sink, timeout=10).topics.get(sink)
                    if md and md.partitions:
                        end = sum(c.get_watermark_offsets(TopicPartition(sink, p), timeout=10)[1]
                                  for p in md.partitions)
                        if end >= point:
                            break
                    time.sleep(0.01)
                s.kill()
                seen.append(len(read_all(node.bootstrap, sink)))
                s.start()
        finally:
            c.close()
        print(f"committed output records at each kill: {seen} of {len(expected)}")
        wait_caught_up(node.bootstrap, query_group(service, qid), sources, timeout=120)
        got = read_all(node.bootstrap, sink)
        strip = lambda rs: [(r["partition"], r["key"], r["value"], r["timestamp"]) for r in rs]  # noqa: E731
        assert strip(got) == strip(expected), f"{len(got)} records after kills, {len(expected)} uninterrupted"
        assert len(expected) > 0
    finally:
        s.kill()


def test_kill9_windowed_aggregation_is_exactly_once(node, weir_binary, _broker_root):
    records = [{"key": {"int": i}, "value": {"K": f"k{i % 50}", "V": i}, "timestamp": 1_000_000 + i * 37}
               for i in range(60_000)]
    _kill_test(node, weir_binary, _broker_root, "kwin_",
               ["CREATE STREAM kw (ID INT KEY, K STRING, V INT) WITH (KAFKA_TOPIC='kw', VALUE_FORMAT='JSON', PARTITIONS=1);"],
               {"kw": records},
               "CREATE TABLE {sink} AS SELECT K, COUNT(*) AS C, SUM(V) AS S FROM kw "
               "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY K;",
               "KW_OUT", ["kw"])


def test_kill9_stream_table_join_is_exactly_once(node, weir_binary, _broker_root):
    users = [{"key": {"int": u}, "value": {"NAME": f"user{u}"}, "timestamp": u} for u in range(200)]
    orders = [{"key": {"int": i}, "value": {"UID": i % 250, "AMT": i}, "timestamp": 10_000 + i}
              for i in range(60_000)]
    _kill_test(node, weir_binary, _broker_root, "kjoin_",
               ["CREATE TABLE ku (ID INT PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='ku', VALUE_FORMAT='JSON', PARTITIONS=1);",
                "CREATE STREAM ko (OID INT KEY, UID INT, AMT INT) WITH (KAFKA_TOPIC='ko', VALUE_FORMAT='JSON', PARTITIONS=1);"],
               {"ku": users, "ko": orders},
               "CREATE STREAM {sink} AS SELECT O.UID, O.OID, O.AMT, U.NAME FROM ko O LEFT JOIN ku U ON O.UID = U.ID;",
               "KJ_OUT", ["ku", "ko"])


def test_embedded_in_weir_serve(broker_factory):
    """`weir serve --sql-listen` runs the same server inside the node, as a
    Kafka client of the node's own listener."""
    from conftest import free_port
    port = free_port()
    b = broker_factory("--sql-listen", f"127.0.0.1:{port}", "--client-set", "sql.ksql.service.id=embedded_")
    url = f"http://127.0.0.1:{port}"
    import httpx
    deadline = time.monotonic() + 60
    while True:
        try:
            info = httpx.get(url + "/info", timeout=5).json()
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, b.log_tail()
            time.sleep(0.1)
    assert info["KsqlServerInfo"]["ksqlServiceId"] == "embedded_"
    r = httpx.post(url + "/ksql", json={"ksql": "CREATE STREAM emb (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='emb', VALUE_FORMAT='JSON', PARTITIONS=1);"
                                                "INSERT INTO emb (ID, V) VALUES (1, 'x');"}, timeout=60)
    assert r.status_code == 200, r.text
    r = httpx.post(url + "/query-stream", json={"sql": "SELECT * FROM emb EMIT CHANGES LIMIT 1;",
                                                "properties": {"auto.offset.reset": "earliest"}}, timeout=60)
    assert r.text.strip().splitlines()[1] == '[1,"x"]'
    # AVRO through the node's own schema registry.
    r = httpx.post(url + "/ksql", json={"ksql": "CREATE STREAM emb_avro (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='emb_avro', FORMAT='AVRO', PARTITIONS=1);"
                                                "INSERT INTO emb_avro (ID, V) VALUES (2, 'y');"}, timeout=60)
    assert r.status_code == 200, r.text
    r = httpx.post(url + "/query-stream", json={"sql": "SELECT * FROM emb_avro EMIT CHANGES LIMIT 1;",
                                                "properties": {"auto.offset.reset": "earliest"}}, timeout=60)
    assert r.text.strip().splitlines()[1] == '[2,"y"]'
    subjects = httpx.get(f"http://127.0.0.1:{b.registry_port}/subjects", timeout=10).json()
    assert {"emb_avro-key", "emb_avro-value"} <= set(subjects), subjects
    b.stop()


def test_embedded_against_an_authenticated_listener(broker_factory, tmp_path):
    """The embedded server as a Kafka client of its own: on a node whose
    listeners need SASL and whose authorizer applies ACLs it logs in with
    SCRAM-SHA-256 credentials of its own (`--client-set sql.*`); its
    principal's ACLs let a persistent query run, and once the ACL on the
    query's topics is removed the broker refuses it."""
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       AdminClient, ResourcePatternType, ResourceType, ScramCredentialInfo,
                                       ScramMechanism, UserScramCredentialUpsertion)
    from conftest import free_port
    from security_util import start_secure_broker
    import httpx
    sb = start_secure_broker(broker_factory, tmp_path, users={"admin": "admin-pw"},
                             protocols=("PLAINTEXT", "SASL_PLAINTEXT"),
                             sets={"authorizer.class.name": "StandardAuthorizer", "super.users": "User:admin"})
    admin = AdminClient(sb.client_config("SASL_PLAINTEXT", "admin", "admin-pw"))
    for f in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "ksql", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"ksql-pw")]).values():
        assert f.result(timeout=30) is None
    acl = lambda rt, name, pattern: AclBinding(rt, name, pattern, "User:ksql", "*", AclOperation.ALL,
                                               AclPermissionType.ALLOW)
    topics_acl = acl(ResourceType.TOPIC, "auth_", ResourcePatternType.PREFIXED)
    grants = [topics_acl, acl(ResourceType.TOPIC, "_confluent-ksql-", ResourcePatternType.PREFIXED),
              acl(ResourceType.TOPIC, "default_ksql_processing_log", ResourcePatternType.LITERAL),
              acl(ResourceType.GROUP, "*", ResourcePatternType.LITERAL),
              acl(ResourceType.TRANSACTIONAL_ID, "*", ResourcePatternType.LITERAL),
              acl(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL)]
    for f in admin.create_acls(grants).values():
        f.result(10)
    # The node again, now with the SQL server logging in as `ksql`.
    sb.broker.stop()
    port = free_port()
    sb.broker.args += ["--sql-listen", f"127.0.0.1:{port}",
                       "--client-set", "sql.security.protocol=SASL_PLAINTEXT",
                       "--client-set", "sql.sasl.mechanism=SCRAM-SHA-256",
                       "--client-set", "sql.sasl.username=ksql",
                       "--client-set", "sql.sasl.password=ksql-pw"]
    sb.broker.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/info", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, sb.broker.log_tail()
        time.sleep(0.2)
    ksql = lambda text: httpx.post(url + "/ksql", json={"ksql": text, "streamsProperties": {
        "auto.offset.reset": "earliest"}}, timeout=60)
    r = ksql("CREATE STREAM auth_in (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='auth_in', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM auth_out WITH (KAFKA_TOPIC='auth_out') AS SELECT ID, UCASE(V) AS U FROM auth_in;"
             "INSERT INTO auth_in (ID, V) VALUES (1, 'granted');")
    assert r.status_code == 200, r.text
    # The query's output, read by confluent-kafka as the admin.
    c = Consumer(sb.client_config("SASL_PLAINTEXT", "admin", "admin-pw", **{
        "group.id": "auth-read", "auto.offset.reset": "earliest", "isolation.level": "read_committed"}))
    c.subscribe(["auth_out"])
    got, deadline = None, time.monotonic() + 60
    while got is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got = json.loads(m.value())
    c.close()
    assert got == {"U": "GRANTED"}, sb.broker.log_tail()
    # The broker saw the SQL server as User:ksql (its audit trail says so):
    # writing a topic its ACLs do not cover is refused (CREATE on the
    # cluster lets it create the topic), and so are its own topics once
    # their ACL goes.
    assert '"principal":"User:ksql"' in sb.broker.log_text()
    r = ksql("CREATE STREAM other_in (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='other_in', VALUE_FORMAT='JSON', PARTITIONS=1);")
    assert r.status_code == 200, r.text
    r = ksql("INSERT INTO other_in (ID, V) VALUES (1, 'x');")
    assert r.status_code == 403 and r.json()["error_code"] == 40301, r.text
    assert r.json()["message"] == "Authorization denied to Write on topic(s): [other_in]", r.text
    for f in admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, "auth_", ResourcePatternType.PREFIXED,
                                                 "User:ksql", "*", AclOperation.ALL,
                                                 AclPermissionType.ALLOW)]).values():
        assert len(f.result(10)) == 1
    r = ksql("INSERT INTO auth_in (ID, V) VALUES (2, 'denied');")
    assert r.status_code == 403 and "[auth_in]" in r.json()["message"], r.text
    sb.broker.stop()


# --- the `weir sql` shell, typed into a terminal -------------------------------------

class Tmux:
    """A tmux server of its own with one window running a command."""

    def __init__(self, name: str, command: list[str], env: dict):
        self.name = name
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        self.run("new-session", "-d", "-s", "sh", "-x", "200", "-y", "50",
                 f"env {exports} {shlex.join(command)}; echo SHELL-EXITED=$?; sleep 600")

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.name, *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-t", "sh", "-S", "-1000")

    def prompt(self, timeout: float = 60.0) -> None:
        """Waits until the shell waits for a line (keys typed ahead of the
        prompt may be dropped when the line editor takes the terminal)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [ln for ln in self.screen().splitlines() if ln.strip()]
            if lines and lines[-1].strip() in ("ksql>", ">"):
                # The line editor may still be setting up the terminal
                # once the prompt shows: keys sent in that moment were seen
                # dropped on a loaded machine, so let it settle.
                time.sleep(0.3)
                return
            assert time.monotonic() < deadline, "no prompt:\n" + "\n".join(lines[-20:])
            time.sleep(0.05)

    def type(self, *lines: str) -> None:
        for line in lines:
            self.prompt()
            # tmux takes an argument's final ';' for a command separator.
            if line.endswith(";"):
                line = line[:-1] + "\\;"
            self.run("send-keys", "-t", "sh", "-l", line)
            self.run("send-keys", "-t", "sh", "Enter")

    def key(self, key: str) -> None:
        self.run("send-keys", "-t", "sh", key)

    def wait_for(self, text: str, after: int = 0, timeout: float = 60.0) -> int:
        """Waits until `text` is on the screen past character `after`;
        returns where it ends."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            at = screen.find(text, after)
            if at >= 0:
                return at + len(text)
            assert time.monotonic() < deadline, f"{text!r} not on the screen:\n{screen}"
            time.sleep(0.1)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True)


def test_shell_in_a_terminal(sql, weir_binary, tmp_path):
    """`weir sql` typed into a terminal: multi-line statements, local SET,
    tables, PRINT, a push query streaming rows until Ctrl-C, history
    recall, RUN SCRIPT, errors with line and column, and the history file."""
    if shutil.which("tmux") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("tmux is missing (.ci/install-system-deps installs it)", pytrace=False)
        pytest.skip("tmux is missing")
    history = tmp_path / "history"
    script = tmp_path / "upper.sql"
    script.write_text("-- made by RUN SCRIPT\n"
                      "CREATE STREAM sh_upper AS\n  SELECT ID, UCASE(NAME) AS UP FROM sh_in;\n"
                      "SELECT * FROM sh_upper EMIT CHANGES LIMIT 3;\n")
    term = Tmux(f"weirsql{os.getpid()}",
                [str(weir_binary), "sql", sql.url, "--history", str(history)],
                {"NO_COLOR": "1", "HOME": str(tmp_path)})
    try:
        at = term.wait_for("ksql> ")
        term.type("SET 'auto.offset.reset' = 'earliest';")
        at = term.wait_for("Successfully changed local property 'auto.offset.reset' to 'earliest'", at)
        term.type("CREATE STREAM sh_in (ID INT KEY, NAME STRING)",
                  "  WITH (KAFKA_TOPIC='sh_in', VALUE_FORMAT='JSON', PARTITIONS=1);")
        at = term.wait_for("Stream created", at)
        term.type("INSERT INTO sh_in (ID, NAME) VALUES (1, 'alice'); INSERT INTO sh_in (ID, NAME) VALUES (2, 'bob');",
                  "SHOW STREAMS;")
        at = term.wait_for(" Stream Name ", at)
        at = term.wait_for(" SH_IN ", at)
        term.type("PRINT 'sh_in' FROM BEGINNING LIMIT 2;")
        at = term.wait_for("Key format: KAFKA_INT", at)
        at = term.wait_for("Value format: JSON or KAFKA_STRING", at)
        at = term.wait_for('key: 1, value: {"NAME":"alice"}, partition: 0', at)
        at = term.wait_for('key: 2, value: {"NAME":"bob"}, partition: 0', at)
        term.type("SELECT ID, NAME", "FROM sh_in EMIT CHANGES;")
        at = term.wait_for("| ID ", at)
        at = term.wait_for("| bob ", term.wait_for("| alice ", at))
        # A row inserted elsewhere streams in while the query runs.
        sql.ksql("INSERT INTO sh_in (ID, NAME) VALUES (3, 'carol');")
        at = term.wait_for("| 3 ", at)
        term.key("C-c")
        at = term.wait_for("Query terminated", at)
        at = term.wait_for("ksql> ", at)
        # The statement typed over two lines comes back as one history entry.
        term.key("Up")
        at = term.wait_for("SELECT ID, NAME\nFROM sh_in EMIT CHANGES;", at)
        term.key("C-c")
        term.type(f"RUN SCRIPT '{script}';")
        at = term.wait_for("Created query with ID CSAS_SH_UPPER", at)
        for name in ("ALICE", "BOB", "CAROL"):
            at = term.wait_for(f"| {name} ", at)
        term.type("SELECT * FROM", "  sh_in WHERE;")
        at = term.wait_for("line 2:", at)
        at = term.wait_for("Syntax Error", at)
        term.type("DESCRIBE sh_upper;")
        at = term.wait_for(" UP ", term.wait_for(" Field ", at))
        term.type("exit")
        term.wait_for("SHELL-EXITED=0", at)
    finally:
        screen = term.screen()
        term.kill()
    saved = history.read_text()
    assert "CREATE STREAM sh_in (ID INT KEY, NAME STRING)" in saved, (saved, screen)
    # The persistent query RUN SCRIPT started kept running.
    status, answer = sql.ksql("SHOW QUERIES;")
    assert any(q["sinks"] == ["SH_UPPER"] for q in answer[0]["queries"]), answer


def test_shell_execute_and_file(sql, weir_binary, tmp_path):
    """`weir sql --execute` and `--file` run statements and exit: 0 when all
    succeed, 1 at the first error (later statements do not run)."""
    def shell(*args):
        return subprocess.run([str(weir_binary), "sql", sql.url, *args], capture_output=True,
                              text=True, timeout=120, env=dict(os.environ, NO_COLOR="1"))

    r = shell("--define", "topic=sh_ex", "--set", "auto.offset.reset=earliest", "--execute",
              "CREATE STREAM sh_ex (ID INT KEY, V DOUBLE) WITH (KAFKA_TOPIC='${topic}', VALUE_FORMAT='JSON', PARTITIONS=1);"
              "INSERT INTO sh_ex (ID, V) VALUES (7, 1.5);"
              "CREATE TABLE sh_ex_sum AS SELECT ID, SUM(V) AS TOTAL FROM sh_ex GROUP BY ID;")
    assert r.returncode == 0, r.stderr
    assert "Stream created" in r.stdout and "Created query with ID CTAS_SH_EX_SUM" in r.stdout, r.stdout
    # A pull query by key on the table the aggregation materializes.
    deadline = time.monotonic() + 60
    while True:
        r = shell("--execute", "SELECT * FROM sh_ex_sum WHERE ID = 7;")
        assert r.returncode == 0, r.stderr
        if "| 7 " in r.stdout:
            break
        assert time.monotonic() < deadline, r.stdout
        time.sleep(0.5)
    assert [c.strip() for c in r.stdout.splitlines()[3].strip("|").split("|")] == ["7", "1.5"], r.stdout
    r = shell("--output", "json", "--execute", "DESCRIBE sh_ex;")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["sourceDescription"]["name"] == "SH_EX"
    r = shell("--execute", "PRINT 'sh_missing' LIMIT 1;")
    assert r.returncode == 1 and "Could not find topic 'sh_missing'" in r.stderr, (r.stdout, r.stderr)
    script = tmp_path / "bad.sql"
    script.write_text("SHOW TOPICS;\nDROP STREAM sh_nope;\n"
                      "CREATE STREAM sh_never (ID INT KEY) WITH (KAFKA_TOPIC='sh_ex', VALUE_FORMAT='JSON');\n")
    r = shell("--file", str(script))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "sh_ex" in r.stdout and "Stream SH_NOPE does not exist." in r.stderr, (r.stdout, r.stderr)
    assert sql.ksql("DESCRIBE sh_never;", ok=False)[0] == 400

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
def node(weir_binary, _broker_root):
    """The module's broker. The cases' records carry fixed timestamps from
    1970, which time retention (Kafka's rule, the active segment included)
    deletes at its next check, every 5 minutes by default: inputs a query
    has not read yet (a query killed and restarted then finds its offsets
    out of range) and outputs not yet checked. Here retention is checked
    once a day, so no test depends on missing that moment."""
    from conftest import BrokerFactory
    f = BrokerFactory(weir_binary, _broker_root)
    b = f("--set", "log.retention.check.interval.ms=86400000", name="module-broker")
    yield b
    f.cleanup()


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
        # A FULL OUTER join's key is the synthetic ROWKEY, which must be projected.
        ("CREATE STREAM e9 (ID INT KEY, W STRING) WITH (KAFKA_TOPIC='e9', VALUE_FORMAT='JSON', PARTITIONS=1);\n"
         "CREATE STREAM e9_out AS SELECT e1.ID AS ID, V, W FROM e1 FULL OUTER JOIN e9 WITHIN 1 SECOND ON e1.ID = e9.ID;",
         "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\n"
         "The query used to build `E9_OUT` must include the join expression ROWKEY in its projection (eg, SELECT ROWKEY...).\n"
         "ROWKEY was added as a synthetic key column because the join criteria did not match any source column."),
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


def test_list_topics_extended_counts_consumers_and_groups(sql, node):
    """LIST TOPICS EXTENDED (and SHOW ... EXTENDED) answer ksqlDB's
    kafka_topics_extended: per topic, the consumers reading it (a member
    counted once per partition it is assigned) and the groups, from the
    cluster's groups, classic and KIP-848 alike (ksqlDB asks the admin
    client's describeConsumerGroups). Two confluent-kafka consumers share
    one classic group over a 2-partition topic, a third reads it alone in
    another, and a fourth alone in a `group.protocol=consumer` group."""
    sql.ksql("CREATE STREAM lte (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='lte', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE STREAM lte_idle (ID INT KEY) WITH (KAFKA_TOPIC='lte_idle', VALUE_FORMAT='JSON', PARTITIONS=1);")
    consumers = [Consumer({"bootstrap.servers": node.bootstrap, "group.id": g, "session.timeout.ms": 10000})
                 for g in ("lte-a", "lte-a", "lte-b")]
    consumers.append(Consumer({"bootstrap.servers": node.bootstrap, "group.id": "lte-c",
                               "group.protocol": "consumer"}))
    try:
        for c in consumers:
            c.subscribe(["lte"])
        deadline = time.monotonic() + 60
        while True:
            for c in consumers:
                c.poll(0.1)
            sizes = [len(c.assignment()) for c in consumers]
            if sizes == [1, 1, 2, 2]:
                break
            assert time.monotonic() < deadline, sizes
        for stmt in ("LIST TOPICS EXTENDED;", "SHOW TOPICS EXTENDED;", "SHOW ALL TOPICS EXTENDED;"):
            _, answer = sql.ksql(stmt)
            assert answer[0]["@type"] == "kafka_topics_extended", answer
            assert answer[0]["statementText"] == stmt
            topics = {t["name"]: t for t in answer[0]["topics"]}
            assert topics["lte"] == {"name": "lte", "replicaInfo": [1, 1], "consumerCount": 6,
                                     "consumerGroupCount": 3}, topics["lte"]
            assert topics["lte_idle"] == {"name": "lte_idle", "replicaInfo": [1], "consumerCount": 0,
                                          "consumerGroupCount": 0}
        # Without EXTENDED: the plain shape, no counts.
        _, answer = sql.ksql("LIST TOPICS;")
        assert answer[0]["@type"] == "kafka_topics"
        assert {"name": "lte", "replicaInfo": [1, 1]} in answer[0]["topics"]
    finally:
        for c in consumers:
            c.close()


def _java_partitions(bootstrap: str, keys: list[bytes], partitions: int) -> dict[bytes, int]:
    """Where the Java client's default partitioner puts each key: produced
    to a scratch topic by confluent-kafka with its Java-compatible
    partitioner (murmur2), and the partitions read from the deliveries."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = f"java-partitions-{partitions}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])
    deadline = time.monotonic() + 30
    while topic not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    placed: dict[bytes, int] = {}
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for k in keys:
        p.produce(topic, key=k, value=b"", on_delivery=lambda e, m: placed.__setitem__(m.key(), m.partition()))
    assert p.flush(30) == 0
    return placed


def test_explain_describes_tasks_and_host_state(sql, node):
    """EXPLAIN <query id> answers ksqlDB's QueryDescription of a running
    query: its state on this server (ksqlHostQueryStatus, keyed by
    host:port), its consumer group, its output fields, and Kafka Streams'
    task metadata: a task per partition (two stream threads here), named
    `<sub-topology>_<partition>`, with each partition's end and committed
    offsets; a re-keying query's second sub-topology reads its repartition
    topic. EXPLAIN of a statement has no tasks and no host state."""
    props = {"auto.offset.reset": "earliest", "ksql.streams.num.stream.threads": "2"}
    sql.ksql("CREATE STREAM ex (ID INT KEY, USR STRING, V INT) WITH (KAFKA_TOPIC='ex', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE STREAM ex_big AS SELECT ID, V FROM ex WHERE V > 1;"
             "CREATE TABLE ex_by_user AS SELECT USR, COUNT(*) AS C FROM ex GROUP BY USR;", props=props)
    produce(node.bootstrap, "ex", [{"key": {"int": i}, "value": {"USR": f"u{i % 2}", "V": i}, "timestamp": 1000 + i,
                                    "partition": 0 if i < 3 else 1} for i in range(5)])
    queries = {q["sinks"][0]: q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"]}
    for sink in ("EX_BIG", "EX_BY_USER"):
        wait_caught_up(node.bootstrap, query_group("sqltest_", queries[sink]), ["ex"])
    host = sql.url.split("://", 1)[1]

    def explain(qid):
        _, answer = sql.ksql(f"EXPLAIN {qid};")
        assert answer[0]["@type"] == "queryDescription", answer
        qd = answer[0]["queryDescription"]
        assert qd["id"] == qid and qd["queryType"] == "PERSISTENT" and qd["state"] == "RUNNING"
        assert qd["ksqlHostQueryStatus"] == {host: "RUNNING"}, qd["ksqlHostQueryStatus"]
        assert qd["consumerGroupId"] == query_group("sqltest_", qid)
        assert qd["queryErrors"] == [] and qd["overriddenProperties"] == {}
        return qd, {t["taskId"]: t for t in qd["tasksMetadata"]}

    def offsets(topic, partition, n):
        return {"topicPartitionEntity": {"topic": topic, "partition": partition},
                "endOffset": n, "committedOffset": n}

    qd, tasks = explain(queries["EX_BIG"])
    assert qd["sinks"] == ["EX_BIG"] and qd["sources"] == ["EX"] and qd["windowType"] is None
    assert [(f["name"], f["schema"]["type"]) for f in qd["fields"]] == [("ID", "INTEGER"), ("V", "INTEGER")]
    assert tasks == {
        "0_0": {"taskId": "0_0", "topicOffsets": [offsets("ex", 0, 3)], "timeCurrentIdlingStarted": None},
        "0_1": {"taskId": "0_1", "topicOffsets": [offsets("ex", 1, 2)], "timeCurrentIdlingStarted": None},
    }, tasks
    # executionPlan: ksqlDB's plan summary, sink first, one step a line.
    src = "`ID` INTEGER KEY, `USR` STRING, `V` INTEGER"
    big = queries["EX_BIG"]
    assert qd["executionPlan"].splitlines() == [
        f" > [ SINK ] | Schema: `ID` INTEGER KEY, `V` INTEGER | Logger: {big}.EX_BIG",
        f"\t > [ PROJECT ] | Schema: `ID` INTEGER KEY, `V` INTEGER | Logger: {big}.Project",
        f"\t\t > [ FILTER ] | Schema: {src} | Logger: {big}.WhereFilter",
        f"\t\t\t > [ SOURCE ] | Schema: {src} | Logger: {big}.KsqlTopic.Source",
    ], qd["executionPlan"]
    # Re-keyed: sub-topology 1 reads the repartition topic.
    qid = queries["EX_BY_USER"]
    repartition = f"{query_group('sqltest_', qid)}-Aggregate-GroupBy-repartition"
    qd, tasks = explain(qid)
    assert [line.split(" | ")[0] for line in qd["executionPlan"].splitlines()] == [
        " > [ SINK ]", "\t > [ PROJECT ]", "\t\t > [ AGGREGATE ]", "\t\t\t > [ GROUP_BY ]",
        "\t\t\t\t > [ SOURCE ]"], qd["executionPlan"]
    assert sorted(tasks) == ["0_0", "0_1", "1_0", "1_1"], tasks
    assert tasks["0_0"]["topicOffsets"] == [offsets("ex", 0, 3)]
    assert tasks["0_1"]["topicOffsets"] == [offsets("ex", 1, 2)]
    for p in (0, 1):
        [tp] = tasks[f"1_{p}"]["topicOffsets"]
        assert tp["topicPartitionEntity"] == {"topic": repartition, "partition": p}, tp
        assert tp["committedOffset"] == tp["endOffset"], tp
    assert sum(tasks[f"1_{p}"]["topicOffsets"][0]["endOffset"] for p in (0, 1)) > 0, tasks
    # A statement: what it would run, nothing running.
    _, answer = sql.ksql("EXPLAIN SELECT * FROM ex EMIT CHANGES;")
    qd = answer[0]["queryDescription"]
    assert qd["tasksMetadata"] == [] and qd["ksqlHostQueryStatus"] == {} and qd["state"] is None, qd


def test_explain_execution_plan_of_a_join(sql):
    """A join's executionPlan has a JOIN step over its two sources, each
    with its own schema and ksqlDB's Left/Right logger names."""
    sql.ksql("CREATE STREAM exj_s (ID INT KEY, USR STRING) WITH (KAFKA_TOPIC='exj_s', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE TABLE exj_t (USR STRING PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='exj_t', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM exj AS SELECT S.USR, S.ID, T.NAME FROM exj_s S JOIN exj_t T ON S.USR = T.USR;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["EXJ"])
    plan = sql.ksql(f"EXPLAIN {qid};")[1][0]["queryDescription"]["executionPlan"]
    steps = [line.split(" | ") for line in plan.splitlines()]
    assert [s[0] for s in steps] == [" > [ SINK ]", "\t > [ PROJECT ]", "\t\t > [ JOIN ]",
                                     "\t\t\t > [ SOURCE ]", "\t\t\t > [ SOURCE ]"], plan
    assert steps[3][1:] == ["Schema: `ID` INTEGER KEY, `USR` STRING", f"Logger: {qid}.KafkaTopic_Left.Source"], plan
    assert steps[4][1:] == ["Schema: `USR` STRING KEY, `NAME` STRING", f"Logger: {qid}.KafkaTopic_Right.Source"], plan
    assert steps[0][2] == f"Logger: {qid}.EXJ", plan


def test_group_by_repartitions_through_an_internal_topic(sql, node):
    """GROUP BY on a value column re-keys: the rows go through the query's
    repartition topic, named and sized as ksqlDB makes it, partitioned by
    the new key as the Java client would, and each key's aggregate lands
    on that one partition. GROUP BY the stream's key does not re-key. The
    internal topics are listed by SHOW ALL TOPICS and EXPLAIN's topology,
    and deleted by TERMINATE."""
    sql.ksql("CREATE STREAM rp (ID INT KEY, USR STRING, V INT) WITH (KAFKA_TOPIC='rp', VALUE_FORMAT='JSON', PARTITIONS=4);"
             "CREATE TABLE rp_by_user AS SELECT USR, COUNT(*) AS C, SUM(V) AS S FROM rp GROUP BY USR;"
             "CREATE TABLE rp_by_id AS SELECT ID, COUNT(*) AS C FROM rp GROUP BY ID;")
    users = [f"user-{u}" for u in range(12)]
    records = [{"key": {"int": i}, "value": {"USR": users[i * 7 % 12], "V": i}, "timestamp": 1000 + i}
               for i in range(240)]
    produce(node.bootstrap, "rp", records)
    queries = {q["sinks"][0]: q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"]}
    qid = queries["RP_BY_USER"]
    prefix = f"_confluent-ksql-sqltest_query_{qid}"
    repartition = f"{prefix}-Aggregate-GroupBy-repartition"
    changelog = f"{prefix}-Aggregate-Aggregate-Materialize-changelog"
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["rp"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", queries["RP_BY_ID"]), ["rp"])
    java = _java_partitions(node.bootstrap, [u.encode() for u in users], 4)
    # The repartition topic: as many partitions as the source, every row
    # keyed by its user (KAFKA format: UTF-8) where the Java client puts it.
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[repartition].partitions) == 4
    rows = read_all(node.bootstrap, repartition)
    assert len(rows) == len(records)
    assert all(java[r["key"]] == r["partition"] for r in rows)
    assert sorted(r["key"] for r in rows) == sorted(users[i * 7 % 12].encode() for i in range(240))
    # The output: each user's aggregates on one partition, the Java
    # client's, the last one complete.
    out = read_all(node.bootstrap, "RP_BY_USER")
    last = {}
    for r in out:
        assert r["partition"] == java[r["key"]], r
        last[r["key"]] = json.loads(r["value"])
    want = {}
    for i in range(240):
        c, s_ = want.get(users[i * 7 % 12].encode(), (0, 0))
        want[users[i * 7 % 12].encode()] = (c + 1, s_ + i)
    assert last == {k: {"C": c, "S": s_} for k, (c, s_) in want.items()}
    # GROUP BY the key: no repartition topic.
    assert not any(t.startswith(f"_confluent-ksql-sqltest_query_{queries['RP_BY_ID']}-")
                   and t.endswith("-repartition") for t in topics)
    # Listed as ksqlDB lists internal topics.
    names = lambda ts: {t["name"] for t in ts[0]["topics"]}  # noqa: E731
    assert {repartition, changelog} <= names(sql.ksql("SHOW ALL TOPICS;")[1])
    assert not {repartition, changelog} & names(sql.ksql("SHOW TOPICS;")[1])
    topology = sql.ksql(f"EXPLAIN {qid};")[1][0]["queryDescription"]["topology"]
    assert "(topics: [rp])" in topology and "(topic: Aggregate-GroupBy-repartition)" in topology
    assert "(topics: [Aggregate-GroupBy-repartition])" in topology and "(topic: RP_BY_USER)" in topology
    assert "Aggregate-Aggregate-Materialize" in topology
    # TERMINATE deletes the query's internal topics.
    sql.ksql(f"TERMINATE {qid};")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = {repartition, changelog} & set(admin.list_topics(timeout=10).topics)
        if not left:
            break
        time.sleep(0.2)
    assert not left


def _java_client_partitions(bootstrap: str, keys: list[str], partitions: int) -> dict[bytes, int]:
    """Where Kafka's Java client (kafka-clients 4.3, its default
    partitioner) puts each UTF-8 key, produced to a scratch topic."""
    import java_harness
    java_harness.require()
    java = java_harness.JavaProcess("weir.compat.ClientScenarios", bootstrap)
    try:
        topic = f"java-client-partitions-{partitions}"
        java.call("create_and_describe", topic=topic, partitions=partitions)
        placed = java.call("keyed_partitions", topic=topic, keys=keys)
        return {k.encode(): p for k, p in placed.items()}
    finally:
        java.close()


def test_join_on_a_non_key_column_repartitions_through_an_internal_topic(sql, node):
    """A stream-table join whose ON is not the stream's key (the benchmark's
    `orders O JOIN users U ON O.USER = U.ID`) re-keys the stream through
    the query's `Join-repartition` topic: as many partitions as the table,
    every row keyed by its join key in the table's key format where the
    Java client's partitioner puts it (so it meets its table partition).
    Each output record is keyed by the join key and on the partition
    Kafka's Java client (kafka-clients 4.3) puts that key. A join on the stream's key does not
    re-key. SHOW ALL TOPICS and EXPLAIN name the topic; TERMINATE deletes
    it."""
    sql.ksql("CREATE STREAM jr_orders (K STRING KEY, ID BIGINT, USER STRING, AMOUNT DOUBLE)"
             " WITH (KAFKA_TOPIC='jr_orders', VALUE_FORMAT='JSON', PARTITIONS=4);"
             "CREATE TABLE jr_users (ID STRING PRIMARY KEY, NAME STRING)"
             " WITH (KAFKA_TOPIC='jr_users', VALUE_FORMAT='JSON', PARTITIONS=3);"
             "CREATE STREAM jr_out AS SELECT O.USER, O.ID, O.AMOUNT, U.NAME"
             " FROM jr_orders O JOIN jr_users U ON O.USER = U.ID;"
             "CREATE STREAM jr_by_key AS SELECT O.K, O.ID, U.NAME"
             " FROM jr_orders O JOIN jr_users U ON O.K = U.ID;")
    queries = {q["sinks"][0]: q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"]}
    qid = queries["JR_OUT"]
    repartition = f"_confluent-ksql-sqltest_query_{qid}-Join-repartition"
    users = [f"u{u}" for u in range(20)]
    produce(node.bootstrap, "jr_users", [{"key": {"string": u}, "value": {"NAME": u.upper()}, "timestamp": 1 + i}
                                         for i, u in enumerate(users)])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["jr_users"])
    # Users u0..u24: the last five have no table row (an inner join drops
    # them); every seventh order has no user (a NULL join key is dropped).
    orders = [{"key": {"string": f"o{i}"},
               "value": {"ID": i, "USER": None if i % 7 == 3 else f"u{i % 25}", "AMOUNT": i + 0.5},
               "timestamp": 10_000 + i} for i in range(300)]
    produce(node.bootstrap, "jr_orders", orders)
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["jr_orders", "jr_users"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", queries["JR_BY_KEY"]), ["jr_orders", "jr_users"])
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    keyed = [o for o in orders if o["value"]["USER"] is not None]
    all_users = sorted({o["value"]["USER"].encode() for o in keyed})
    java3 = _java_partitions(node.bootstrap, all_users, 3)
    # confluent-kafka's murmur2 partitioner agrees with the Java client's.
    assert java3 == _java_client_partitions(node.bootstrap, [u.decode() for u in all_users], 3)
    # The repartition topic: the table's partition count, one record per
    # order with a user, keyed by the user (KAFKA format: UTF-8).
    assert len(topics[repartition].partitions) == 3
    rows = read_all(node.bootstrap, repartition)
    assert sorted(r["key"] for r in rows) == sorted(o["value"]["USER"].encode() for o in keyed)
    assert all(java3[r["key"]] == r["partition"] for r in rows)
    # The output: keyed by the join key, placed by the Java partitioner
    # over the sink's partitions, the joined values exact.
    sink_partitions = len(topics["JR_OUT"].partitions)
    java_sink = _java_client_partitions(node.bootstrap, [u.decode() for u in all_users], sink_partitions)
    out = read_all(node.bootstrap, "JR_OUT")
    for r in out:
        assert r["partition"] == java_sink[r["key"]], r
    got = sorted((r["key"], r["value"], r["timestamp"]) for r in out)
    want = sorted((o["value"]["USER"].encode(),
                   json.dumps({"ID": o["value"]["ID"], "AMOUNT": o["value"]["AMOUNT"],
                               "NAME": o["value"]["USER"].upper()}, separators=(",", ":"), sort_keys=True).encode(),
                   o["timestamp"])
                  for o in keyed if int(o["value"]["USER"][1:]) < 20)
    assert got == want
    # A join on the stream's key reads the stream directly.
    assert not any(t.startswith(f"_confluent-ksql-sqltest_query_{queries['JR_BY_KEY']}-")
                   and t.endswith("-repartition") for t in topics)
    names = lambda ts: {t["name"] for t in ts[0]["topics"]}  # noqa: E731
    assert repartition in names(sql.ksql("SHOW ALL TOPICS;")[1])
    assert repartition not in names(sql.ksql("SHOW TOPICS;")[1])
    topology = sql.ksql(f"EXPLAIN {qid};")[1][0]["queryDescription"]["topology"]
    assert "(topics: [jr_orders])" in topology and "(topic: Join-repartition)" in topology, topology
    assert "(topics: [Join-repartition, jr_users])" in topology and "(topic: JR_OUT)" in topology, topology
    sql.ksql(f"TERMINATE {qid};")
    deadline = time.monotonic() + 30
    while repartition in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, "the repartition topic outlived TERMINATE"
        time.sleep(0.2)


def test_stream_stream_join_on_a_non_key_column_repartitions_one_side(sql, node):
    """A stream-stream join whose left side is not keyed by its join
    expression re-keys that side through `Join-left-repartition`, sized as
    the right stream and placed as the Java client places the key; the
    joined rows are those of the window."""
    sql.ksql("CREATE STREAM ssl (ID INT KEY, A STRING, RID INT)"
             " WITH (KAFKA_TOPIC='ssl', VALUE_FORMAT='JSON', PARTITIONS=4);"
             "CREATE STREAM ssr (ID INT KEY, B STRING)"
             " WITH (KAFKA_TOPIC='ssr', VALUE_FORMAT='JSON', PARTITIONS=3);"
             "CREATE STREAM ss_out AS SELECT L.RID, L.A, R.B FROM ssl L JOIN ssr R"
             " WITHIN 10 SECONDS ON L.RID = R.ID;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["SS_OUT"])
    repartition = f"_confluent-ksql-sqltest_query_{qid}-Join-left-repartition"
    rights = [{"key": {"int": r}, "value": {"B": f"b{r}"}, "timestamp": 100_000 + r * 1000} for r in range(10)]
    # Left rows name rights 0..11 (10 and 11 have none); half of them
    # fall outside the 10 s window of their right row.
    lefts = [{"key": {"int": i}, "value": {"A": f"a{i}", "RID": i % 12},
              "timestamp": 100_000 + (i % 12) * 1000 + (5_000 if i % 2 else 15_000)} for i in range(60)]
    produce(node.bootstrap, "ssr", rights)
    produce(node.bootstrap, "ssl", lefts)
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["ssl", "ssr"])
    from confluent_kafka.admin import AdminClient
    topics = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=10).topics
    assert len(topics[repartition].partitions) == 3
    java3 = _java_partitions(node.bootstrap, [key_bytes({"int": r}) for r in range(12)], 3)
    sent = read_all(node.bootstrap, repartition)
    assert len(sent) == len(lefts) and all(java3[r["key"]] == r["partition"] for r in sent)
    out = read_all(node.bootstrap, "SS_OUT")
    got = sorted((r["key"], json.loads(r["value"])["A"], json.loads(r["value"])["B"]) for r in out)
    want = sorted((key_bytes({"int": i % 12}), f"a{i}", f"b{i % 12}") for i in range(60) if i % 12 < 10 and i % 2)
    assert got == want


@pytest.fixture(scope="module")
def sql_kept(node, weir_binary, _broker_root):
    """A server whose queries keep their repartition records for an hour
    (not purged after 30 s), so a test on a slow machine can read them."""
    s = SqlServer(weir_binary, _broker_root, node.bootstrap,
                  "--set", "ksql.streams.repartition.purge.interval.ms=3600000", service_id="kept_").start()
    yield s
    rc = s.stop()
    assert rc == 0, s.log_tail()


def _internal_topics_of(sql, admin, qid: str, suffixes: list[str], sink: str) -> dict[str, int]:
    """The query's repartition topics by suffix, with their partition
    counts; each listed by SHOW ALL TOPICS (not SHOW TOPICS) and written
    by one sub-topology of EXPLAIN's topology."""
    prefix = f"_confluent-ksql-{sql.service_id}query_{qid}-"
    topics = admin.list_topics(timeout=10).topics
    mine = sorted(t[len(prefix):] for t in topics if t.startswith(prefix) and t.endswith("-repartition"))
    assert mine == sorted(suffixes)
    names = lambda ts: {t["name"] for t in ts[0]["topics"]}  # noqa: E731
    assert {prefix + s for s in suffixes} <= names(sql.ksql("SHOW ALL TOPICS;")[1])
    assert not {prefix + s for s in suffixes} & names(sql.ksql("SHOW TOPICS;")[1])
    topology = sql.ksql(f"EXPLAIN {qid};")[1][0]["queryDescription"]["topology"]
    for s in suffixes:
        assert f"(topic: {s})" in topology, topology
    assert f"(topic: {sink})" in topology, topology
    return {s: len(topics[prefix + s].partitions) for s in suffixes}


def _terminated(sql, admin, qid: str) -> None:
    """TERMINATE deletes every internal topic of the query."""
    prefix = f"_confluent-ksql-{sql.service_id}query_{qid}-"
    sql.ksql(f"TERMINATE {qid};")
    deadline = time.monotonic() + 30
    while any(t.startswith(prefix) for t in admin.list_topics(timeout=10).topics):
        assert time.monotonic() < deadline, "internal topics outlived TERMINATE"
        time.sleep(0.2)


def _placed_by_murmur2(node, rows: list[dict], partitions: int) -> None:
    """Every record on the partition the Java client's partitioner gives its
    key bytes."""
    java = _java_partitions(node.bootstrap, sorted({r["key"] for r in rows}), partitions)
    assert all(java[r["key"]] == r["partition"] for r in rows)


def _canon(value) -> str:
    """A JSON value (bytes or decoded) in one spelling, for sorting."""
    return json.dumps(json.loads(value) if isinstance(value, bytes) else value, sort_keys=True)


def _window_pairs(lefts: list[dict], rights: list[dict], lkey, rkey, within: int) -> list[tuple]:
    """An inner stream-stream join's pairs, as ksqlDB's semantics give them
    (no record late for its window): every (left, right) with equal join
    keys within `within` ms, stamped with the later timestamp."""
    return [(lkey(l_), l_, r, max(l_["timestamp"], r["timestamp"]))
            for l_ in lefts for r in rights
            if lkey(l_) == rkey(r) and abs(l_["timestamp"] - r["timestamp"]) <= within]


def test_stream_stream_join_re_keying_both_sides_uses_two_topics(sql_kept, node):
    """A stream-stream join with neither side keyed by its join expression
    re-keys both, through `Join-left-repartition` and
    `Join-right-repartition`: both sized as the larger side, keyed in the
    first source's key format, every record where the Java client's
    partitioner puts its key; the output is every pair of the window,
    record by record."""
    sql = sql_kept
    sql.ksql("CREATE STREAM bsl (ID INT KEY, A STRING, J INT)"
             " WITH (KAFKA_TOPIC='bsl', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE STREAM bsr (ID INT KEY, B STRING, J INT)"
             " WITH (KAFKA_TOPIC='bsr', VALUE_FORMAT='JSON', PARTITIONS=3);"
             "CREATE STREAM bs_out AS SELECT L.J, L.A, R.B FROM bsl L JOIN bsr R"
             " WITHIN 10 SECONDS ON L.J = R.J;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["BS_OUT"])
    # Join values 0..7 on the right; the left also names 8 and 9 (no
    # match) and NULL (dropped); half the lefts are outside the window.
    rights = [{"key": {"int": r}, "value": {"B": f"b{r}", "J": r % 8}, "timestamp": 100_000 + r * 1000}
              for r in range(12)]
    lefts = [{"key": {"int": i}, "value": {"A": f"a{i}", "J": None if i % 13 == 5 else i % 10},
              "timestamp": 100_000 + (i % 10) * 1000 + (5_000 if i % 2 else 15_000)} for i in range(40)]
    produce(node.bootstrap, "bsr", rights)
    produce(node.bootstrap, "bsl", lefts)
    wait_caught_up(node.bootstrap, query_group("kept_", qid), ["bsl", "bsr"])
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    prefix = f"_confluent-ksql-kept_query_{qid}-"
    counts = _internal_topics_of(sql, admin, qid, ["Join-left-repartition", "Join-right-repartition"], "BS_OUT")
    assert counts == {"Join-left-repartition": 3, "Join-right-repartition": 3}
    topology = sql.ksql(f"EXPLAIN {qid};")[1][0]["queryDescription"]["topology"]
    assert "(topics: [Join-left-repartition, Join-right-repartition])" in topology, topology
    sent_left = read_all(node.bootstrap, prefix + "Join-left-repartition")
    sent_right = read_all(node.bootstrap, prefix + "Join-right-repartition")
    assert sorted(r["key"] for r in sent_left) == sorted(
        key_bytes({"int": l_["value"]["J"]}) for l_ in lefts if l_["value"]["J"] is not None)
    assert sorted(r["key"] for r in sent_right) == sorted(key_bytes({"int": r["value"]["J"]}) for r in rights)
    _placed_by_murmur2(node, sent_left + sent_right, 3)
    out = read_all(node.bootstrap, "BS_OUT")
    got = sorted((r["key"], _canon(r["value"]), r["timestamp"]) for r in out)
    want = sorted((key_bytes({"int": k}), _canon({"A": l_["value"]["A"], "B": r["value"]["B"]}), ts)
                  for k, l_, r, ts in _window_pairs([x for x in lefts if x["value"]["J"] is not None], rights,
                                                    lambda x: x["value"]["J"], lambda x: x["value"]["J"], 10_000))
    assert len(want) > 10 and got == want
    _terminated(sql, admin, qid)


@pytest.fixture(scope="module")
def sql_slow_commits(node, weir_binary, _broker_root):
    """A server committing its queries' transactions once an hour unless
    something else commits them, repartition records kept an hour too: a
    query whose held records waited for the commit interval would not
    finish within a test."""
    s = SqlServer(weir_binary, _broker_root, node.bootstrap,
                  "--set", "ksql.streams.commit.interval.ms=3600000",
                  "--set", "ksql.streams.repartition.purge.interval.ms=3600000",
                  "--set", f"ksql.schema.registry.url={node.registry_url}", service_id="hour_").start()
    yield s
    rc = s.stop()
    assert rc == 0, s.log_tail()


def test_chain_of_joins_re_keys_through_each_stage_topics(sql_slow_commits, node):
    """A chain of three streams joined on non-key columns re-keys every
    side through ksqlDB's per-stage topics: the first stage's inputs
    through `L_Join-left-repartition` and `L_Join-right-repartition` (both
    sized as the larger of S1 and S2), the first stage's rows (joined on
    another column next) and the third stream through
    `Join-left-repartition` and `Join-right-repartition` (sized as the
    larger of those and S3). Every record sits where the Java client's
    partitioner puts its key bytes; the output is every triple of the
    windows, record by record. The server commits once an hour: rows held
    for an earlier stage's rows go on as soon as those are read back, not
    at the next commit interval."""
    sql = sql_slow_commits
    sql.ksql("CREATE STREAM ch1 (ID INT KEY, K INT, V INT) WITH (KAFKA_TOPIC='ch1', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE STREAM ch2 (ID INT KEY, K INT) WITH (KAFKA_TOPIC='ch2', VALUE_FORMAT='JSON', PARTITIONS=3);"
             "CREATE STREAM ch3 (ID INT KEY, V INT) WITH (KAFKA_TOPIC='ch3', VALUE_FORMAT='JSON', PARTITIONS=4);"
             "CREATE STREAM ch_out AS SELECT ch1.V, ch1.ID AS I1, ch2.ID AS I2, ch3.ID AS I3 FROM ch1"
             " JOIN ch2 WITHIN 10 SECONDS ON ch1.K = ch2.K"
             " JOIN ch3 WITHIN 10 SECONDS ON ch1.V = ch3.V;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["CH_OUT"])
    s1 = [{"key": {"int": i}, "value": {"K": None if i % 11 == 7 else i % 8, "V": i % 5},
           "timestamp": 100_000 + i * 700} for i in range(40)]
    s2 = [{"key": {"int": 100 + j}, "value": {"K": j % 10}, "timestamp": 100_000 + j * 900} for j in range(30)]
    s3 = [{"key": {"int": 200 + m}, "value": {"V": m % 6}, "timestamp": 100_000 + m * 1300} for m in range(20)]
    produce(node.bootstrap, "ch1", s1)
    produce(node.bootstrap, "ch2", s2)
    produce(node.bootstrap, "ch3", s3)
    wait_caught_up(node.bootstrap, query_group(sql.service_id, qid), ["ch1", "ch2", "ch3"])
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    prefix = query_group(sql.service_id, qid) + "-"
    counts = _internal_topics_of(sql, admin, qid, ["L_Join-left-repartition", "L_Join-right-repartition",
                                                   "Join-left-repartition", "Join-right-repartition"], "CH_OUT")
    assert counts == {"L_Join-left-repartition": 3, "L_Join-right-repartition": 3,
                      "Join-left-repartition": 4, "Join-right-repartition": 4}
    sent = {s: read_all(node.bootstrap, prefix + s) for s in counts}
    key = lambda v: key_bytes({"int": v})  # noqa: E731
    pairs = [(a, b, max(a["timestamp"], b["timestamp"])) for a in s1 for b in s2
             if a["value"]["K"] is not None and a["value"]["K"] == b["value"]["K"]
             and abs(a["timestamp"] - b["timestamp"]) <= 10_000]
    assert sorted(r["key"] for r in sent["L_Join-left-repartition"]) == sorted(
        key(a["value"]["K"]) for a in s1 if a["value"]["K"] is not None)
    assert sorted(r["key"] for r in sent["L_Join-right-repartition"]) == sorted(key(b["value"]["K"]) for b in s2)
    # The first stage's rows, re-keyed by ch1.V for the second.
    assert sorted((r["key"], r["timestamp"]) for r in sent["Join-left-repartition"]) == sorted(
        (key(a["value"]["V"]), ts) for a, _, ts in pairs)
    assert sorted(r["key"] for r in sent["Join-right-repartition"]) == sorted(key(c["value"]["V"]) for c in s3)
    _placed_by_murmur2(node, sent["L_Join-left-repartition"] + sent["L_Join-right-repartition"], 3)
    _placed_by_murmur2(node, sent["Join-left-repartition"] + sent["Join-right-repartition"], 4)
    out = read_all(node.bootstrap, "CH_OUT")
    got = sorted((r["key"], _canon(r["value"]), r["timestamp"]) for r in out)
    want = sorted((key(a["value"]["V"]),
                   _canon({"I1": a["key"]["int"], "I2": b["key"]["int"], "I3": c["key"]["int"]}),
                   max(ts, c["timestamp"]))
                  for a, b, ts in pairs for c in s3
                  if a["value"]["V"] == c["value"]["V"] and abs(ts - c["timestamp"]) <= 10_000)
    assert len(want) > 20 and got == want
    _terminated(sql, admin, qid)


def test_join_re_keying_into_a_registry_key_format_registers_the_topic_key_schema(sql_slow_commits, node):
    """Both sides of a stream-stream join keyed by an AVRO INT re-key by a
    STRING column: the repartition topics' keys need a schema of their
    own, registered under each topic's `-key` subject as ksqlDB does, and
    the rows go through the topics in it (placed by murmur2 on the framed
    key bytes); the output is every pair of the window."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    sql = sql_slow_commits
    reg = SchemaRegistryClient({"url": node.registry_url})
    sql.ksql("CREATE STREAM akl (ID INT KEY, A STRING, J STRING)"
             " WITH (KAFKA_TOPIC='akl', KEY_FORMAT='AVRO', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE STREAM akr (ID INT KEY, B STRING, J STRING)"
             " WITH (KAFKA_TOPIC='akr', KEY_FORMAT='AVRO', VALUE_FORMAT='JSON', PARTITIONS=3);"
             "CREATE STREAM ak_out AS SELECT L.J, L.A, R.B FROM akl L JOIN akr R"
             " WITHIN 10 SECONDS ON L.J = R.J;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["AK_OUT"])

    def avro_int_key(topic: str, v: int) -> bytes:
        # Confluent's frame, then the union branch 1 (int) and the zigzag varint.
        sid = reg.get_latest_version(f"{topic}-key").schema_id
        return b"\x00" + sid.to_bytes(4, "big") + b"\x02" + bytes([v << 1])

    rights = [(avro_int_key("akr", r), {"B": f"b{r}", "J": f"j{r % 6}"}, 100_000 + r * 1000) for r in range(10)]
    lefts = [(avro_int_key("akl", i), {"A": f"a{i}", "J": f"j{i % 8}"},
              100_000 + (i % 10) * 1000 + (4_000 if i % 2 else 14_000)) for i in range(30)]
    produce(node.bootstrap, "akr", [{"key": {"hex": k.hex()}, "value": v, "timestamp": t} for k, v, t in rights])
    produce(node.bootstrap, "akl", [{"key": {"hex": k.hex()}, "value": v, "timestamp": t} for k, v, t in lefts])
    wait_caught_up(node.bootstrap, query_group(sql.service_id, qid), ["akl", "akr"])
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    prefix = query_group(sql.service_id, qid) + "-"
    counts = _internal_topics_of(sql, admin, qid, ["Join-left-repartition", "Join-right-repartition"], "AK_OUT")
    assert counts == {"Join-left-repartition": 3, "Join-right-repartition": 3}
    deser = AvroDeserializer(reg)
    for suffix, rows in (("Join-left-repartition", lefts), ("Join-right-repartition", rights)):
        topic = prefix + suffix
        assert json.loads(reg.get_latest_version(f"{topic}-key").schema.schema_str) == ["null", "string"]
        sent = read_all(node.bootstrap, topic)
        keys = [deser(r["key"], SerializationContext(topic, MessageField.KEY)) for r in sent]
        assert sorted(keys) == sorted(v["J"] for _, v, _ in rows)
        _placed_by_murmur2(node, sent, 3)
    out = read_all(node.bootstrap, "AK_OUT")
    got = sorted((deser(r["key"], SerializationContext("AK_OUT", MessageField.KEY)), _canon(r["value"]),
                  r["timestamp"]) for r in out)
    want = sorted((lv["J"], _canon({"A": lv["A"], "B": rv["B"]}), max(lt, rt))
                  for _, lv, lt in lefts for _, rv, rt in rights
                  if lv["J"] == rv["J"] and abs(lt - rt) <= 10_000)
    assert len(want) > 5 and got == want
    _terminated(sql, admin, qid)


def test_group_by_over_a_table_sends_old_and_new_rows_through_a_topic(sql, node):
    """GROUP BY over a table re-keys through the query's
    Aggregate-GroupBy-repartition topic as Kafka Streams' table groupBy
    does: an update that moves a row to another group sends an undo to the
    old group's partition and an add to the new one's; each group's
    aggregate lands on the partition the Java client picks for its key."""
    sql.ksql("CREATE TABLE tg (ID INT PRIMARY KEY, REGION STRING, AMT INT)"
             " WITH (KAFKA_TOPIC='tg', VALUE_FORMAT='JSON', PARTITIONS=4);"
             "CREATE TABLE tg_by_region AS SELECT REGION, COUNT(*) AS N, SUM(AMT) AS S FROM tg GROUP BY REGION;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["TG_BY_REGION"])
    repartition = f"_confluent-ksql-sqltest_query_{qid}-Aggregate-GroupBy-repartition"
    regions = [f"r{r}" for r in range(6)]
    rows = {}
    records = []
    rnd = random.Random(7)
    for i in range(200):
        rid = rnd.randrange(30)
        if rnd.random() < 0.1:
            value = None
            rows.pop(rid, None)
        else:
            value = {"REGION": rnd.choice(regions), "AMT": rnd.randrange(100)}
            rows[rid] = value
        records.append({"key": {"int": rid}, "value": value, "timestamp": 1000 + i})
    produce(node.bootstrap, "tg", records)
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["tg"])
    java = _java_partitions(node.bootstrap, [r.encode() for r in regions], 4)
    sent = read_all(node.bootstrap, repartition)
    assert sent and all(java[r["key"]] == r["partition"] for r in sent)
    # At least one update moved a row: more records than updates with a row.
    assert len(sent) > sum(1 for r in records if r["value"] is not None)
    last = {}
    for r in read_all(node.bootstrap, "TG_BY_REGION"):
        assert r["partition"] == java[r["key"]], r
        last[r["key"]] = json.loads(r["value"])
    want = {}
    for v in rows.values():
        n, s_ = want.get(v["REGION"].encode(), (0, 0))
        want[v["REGION"].encode()] = (n + 1, s_ + v["AMT"])
    got = {k: (v["N"], v["S"]) for k, v in last.items() if v["N"] > 0}
    assert got == want
    assert all(v == {"N": 0, "S": 0} for k, v in last.items() if k not in want)


def test_consumed_repartition_records_are_purged(node, weir_binary, _broker_root):
    """Repartition records the query has committed it consumed are deleted
    (DeleteRecords), every ksql.streams.repartition.purge.interval.ms."""
    s = SqlServer(weir_binary, _broker_root, node.bootstrap,
                  "--set", "ksql.streams.repartition.purge.interval.ms=0", service_id="purge_").start()
    try:
        s.ksql("CREATE STREAM pg (ID INT KEY, G STRING) WITH (KAFKA_TOPIC='pg', VALUE_FORMAT='JSON', PARTITIONS=2);"
               "CREATE TABLE pg_n AS SELECT G, COUNT(*) AS N FROM pg GROUP BY G;")
        qid = next(q["id"] for q in s.ksql("SHOW QUERIES;")[1][0]["queries"])
        produce(node.bootstrap, "pg", [{"key": {"int": i}, "value": {"G": f"g{i % 5}"}, "timestamp": i}
                                       for i in range(100)])
        wait_caught_up(node.bootstrap, query_group("purge_", qid), ["pg"])
        topic = f"{query_group('purge_', qid)}-Aggregate-GroupBy-repartition"
        c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "purge-watch"})
        try:
            deadline = time.monotonic() + 30
            while True:
                marks = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in (0, 1)]
                # Every record consumed is gone: the log start reached the
                # last record's end (only the final transaction marker may
                # be left).
                if all(hi - lo <= 1 for lo, hi in marks) and sum(lo for lo, _ in marks) >= 100:
                    break
                assert time.monotonic() < deadline, marks
                time.sleep(0.2)
        finally:
            c.close()
        last = {r["key"]: json.loads(r["value"]) for r in read_all(node.bootstrap, "PG_N")}
        assert last == {f"g{g}".encode(): {"N": 20} for g in range(5)}
    finally:
        s.kill()


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


def test_pull_queries_read_the_task_of_the_key(sql, node):
    """Tables materialized by 4 tasks on 2 threads: a pull by key reads the
    task of the partition the key hashes to (the re-keyed GROUP BY puts
    every key there), and the other tasks when the source was not
    partitioned by the key's hash (GROUP BY the key, records written to
    partitions of the producer's choosing); a scan reads every task."""
    props = {"auto.offset.reset": "earliest", "ksql.streams.num.stream.threads": "2"}
    sql.ksql("CREATE STREAM pt (ID INT KEY, V STRING, N INT) WITH (KAFKA_TOPIC='pt', VALUE_FORMAT='JSON', PARTITIONS=4);")
    sql.ksql("CREATE TABLE pt_v AS SELECT V, SUM(N) AS S FROM pt GROUP BY V;", props)
    sql.ksql("CREATE TABLE pt_id AS SELECT ID, COUNT(*) AS C FROM pt GROUP BY ID;", props)
    # Every record to partition ID % 4, not where murmur2 of the key points.
    produce(node.bootstrap, "pt", [{"key": {"int": i % 40}, "value": {"V": f"v{i % 13}", "N": i},
                                    "timestamp": 1000 + i, "partition": (i % 40) % 4} for i in range(400)])
    for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"]:
        if q["sinks"][0] in ("PT_V", "PT_ID"):
            wait_caught_up(node.bootstrap, query_group("sqltest_", q["id"]), ["pt"])
    for v in range(13):
        r = _http(sql, "/query-stream", {"sql": f"SELECT * FROM pt_v WHERE V = 'v{v}';"}, accept="application/json")
        assert r.json()[1:] == [[f"v{v}", sum(i for i in range(400) if i % 13 == v)]], r.text
    for k in range(40):
        r = _http(sql, "/query-stream", {"sql": f"SELECT * FROM pt_id WHERE ID = {k};"}, accept="application/json")
        assert r.json()[1:] == [[k, 10]], r.text
    r = _http(sql, "/query-stream", {"sql": "SELECT * FROM pt_id WHERE ID = 40;"}, accept="application/json")
    assert r.json()[1:] == []
    r = _http(sql, "/query-stream", {"sql": "SELECT V, S FROM pt_v;"}, accept="application/json")
    assert sorted(r.json()[1:]) == sorted([f"v{v}", sum(i for i in range(400) if i % 13 == v)] for v in range(13))
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, C FROM pt_id;"}, accept="application/json")
    assert sorted(r.json()[1:]) == [[k, 10] for k in range(40)]


def test_bench_pull(sql, node, weir_binary):
    """`weir bench pull`: many pull queries at once over keep-alive
    connections, each answered and counted; errors fail the run."""
    sql.ksql("CREATE STREAM bp (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='bp', VALUE_FORMAT='JSON', PARTITIONS=2);"
             "CREATE TABLE bp_t AS SELECT V, COUNT(*) AS N FROM bp GROUP BY V;")
    produce(node.bootstrap, "bp", [
        {"key": {"int": i}, "value": {"V": f"k{i % 5}"}, "timestamp": 1000 + i} for i in range(20)])
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["BP_T"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["bp"])

    def bench(*args):
        return subprocess.run([str(weir_binary), "bench", "pull", "--url", sql.url, "--json", *args],
                              capture_output=True, text=True, timeout=120)

    # Keys 0-4 exist, 5-9 do not: about half the answers have no row.
    for endpoint in ("query-stream", "query"):
        r = bench("--endpoint", endpoint, "--query", "SELECT * FROM bp_t WHERE V = 'k{key}';",
                  "--keys", "10", "--queries", "400", "--concurrency", "20")
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        assert rep["queries"] == 400 and rep["errors"] == 0 and rep["latency"]["count"] == 400, rep
        assert rep["rows"] == rep["with_rows"] and 100 < rep["with_rows"] < 300, rep
    # Every key present: one row each.
    r = bench("--query", "SELECT N FROM bp_t WHERE V = 'k{key}';", "--keys", "5", "--queries", "100",
              "--concurrency", "100", "--rate", "500")
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["with_rows"] == 100 and rep["target_rate"] == 500, rep
    # A statement the server refuses is an error, and the exit status says so.
    r = bench("--query", "SELECT * FROM no_such_table WHERE V = 'k{key}';", "--queries", "10",
              "--concurrency", "2")
    assert r.returncode == 1, r.stdout
    rep = json.loads(r.stdout)
    assert rep["errors"] == 10 and "NO_SUCH_TABLE" in rep["first_error"], rep


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


# --- header columns ---------------------------------------------------------------

_HEADERS_TYPE = "ARRAY<STRUCT<key STRING, value BYTES>>"


def _b64(b: bytes | None):
    import base64
    return None if b is None else base64.b64encode(b).decode()


def test_header_columns(sql, node):
    """HEADERS reads every header in order, HEADER('k') the last one with
    key k (NULL without one); both project, filter and convert like value
    columns, in persistent queries and push queries."""
    # ksqlDB refuses header columns after a HEADERS column, not before.
    sql.ksql(f"CREATE STREAM hd (ID INT KEY, V STRING, A BYTES HEADER('a'), HS {_HEADERS_TYPE} HEADERS) "
             "WITH (KAFKA_TOPIC='hd', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM hd_out AS SELECT ID, V, HS, A, FROM_BYTES(A, 'utf8') AS AT FROM hd "
             "WHERE A IS NULL OR FROM_BYTES(A, 'utf8') <> 'skip';")
    records = [
        [("a", b"1"), ("b", b"2"), ("a", b"3")],  # duplicate keys: the last wins
        None,                                     # no headers at all
        [("b", None)],                            # a null header value, no 'a'
        [("a", b"skip")],                         # filtered out by WHERE
        [("a", None)],                            # 'a' with a null value
    ]
    produce(node.bootstrap, "hd", [
        {"key": {"int": i}, "value": {"V": f"v{i}"}, "timestamp": 1000 + i, **({"headers": h} if h else {})}
        for i, h in enumerate(records)])
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["HD_OUT"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["hd"])
    out = read_all(node.bootstrap, "HD_OUT")
    entries = lambda hs: [{"KEY": k, "VALUE": _b64(v)} for k, v in hs or []]
    assert [(r["key"], json.loads(r["value"]), r["timestamp"]) for r in out] == [
        (key_bytes({"int": 0}), {"V": "v0", "HS": entries(records[0]), "A": _b64(b"3"), "AT": "3"}, 1000),
        (key_bytes({"int": 1}), {"V": "v1", "HS": [], "A": None, "AT": None}, 1001),
        (key_bytes({"int": 2}), {"V": "v2", "HS": entries(records[2]), "A": None, "AT": None}, 1002),
        (key_bytes({"int": 4}), {"V": "v4", "HS": entries(records[4]), "A": None, "AT": None}, 1004),
    ]
    # The result's header columns are ordinary value columns.
    _, desc = sql.ksql("DESCRIBE hd_out;")
    assert all("type" not in f for f in desc[0]["sourceDescription"]["fields"][1:])
    # DESCRIBE marks the source's header columns as ksqlDB does.
    _, desc = sql.ksql("DESCRIBE hd;")
    fields = desc[0]["sourceDescription"]["fields"]
    assert [(f["name"], f.get("type"), f.get("headerKey")) for f in fields] == [
        ("ID", "KEY", None), ("V", None, None), ("A", "HEADER", "a"), ("HS", "HEADER", None)]
    assert fields[3]["schema"]["type"] == "ARRAY"
    # A push query reads them from each record.
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, FROM_BYTES(A, 'utf8') AS AT, HS FROM hd "
                                            "WHERE ID < 2 EMIT CHANGES LIMIT 2;",
                                     "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
    assert r.json()[1:] == [[0, "3", entries(records[0])], [1, None, []]], r.text


def test_header_columns_on_a_table(sql, node):
    """A table's header columns come from the record that last updated the key."""
    sql.ksql("CREATE TABLE hdt (ID INT PRIMARY KEY, V STRING, A BYTES HEADER('a')) "
             "WITH (KAFKA_TOPIC='hdt', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE TABLE hdt_out AS SELECT ID, V, FROM_BYTES(A, 'hex') AS AX FROM hdt;")
    produce(node.bootstrap, "hdt", [
        {"key": {"int": 1}, "value": {"V": "x"}, "timestamp": 1, "headers": [("a", b"\x01")]},
        {"key": {"int": 1}, "value": {"V": "y"}, "timestamp": 2},
        {"key": {"int": 2}, "value": {"V": "z"}, "timestamp": 3, "headers": [("a", b"\xff"), ("a", b"\x0a")]}])
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["HDT_OUT"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["hdt"])
    out = read_all(node.bootstrap, "HDT_OUT")
    assert [(r["key"], json.loads(r["value"])) for r in out] == [
        (key_bytes({"int": 1}), {"V": "x", "AX": "01"}),
        (key_bytes({"int": 1}), {"V": "y", "AX": None}),
        (key_bytes({"int": 2}), {"V": "z", "AX": "0a"}),
    ]


def test_header_columns_through_a_join_and_select_star(sql, node):
    """A header column of a stream joined to a table sits where the join's
    rows expect it, and SELECT * includes the header columns (as ksqlDB's)."""
    sql.ksql(f"CREATE TABLE hdj_t (ID INT PRIMARY KEY, NAME STRING) "
             "WITH (KAFKA_TOPIC='hdj_t', VALUE_FORMAT='JSON', PARTITIONS=1);"
             f"CREATE STREAM hdj (ID INT KEY, N INT, T BYTES HEADER('trace'), HS {_HEADERS_TYPE} HEADERS) "
             "WITH (KAFKA_TOPIC='hdj', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM hdj_out AS SELECT hdj.ID AS ID, N, NAME, FROM_BYTES(T, 'utf8') AS TRACE, "
             "ARRAY_LENGTH(HS) AS NH FROM hdj JOIN hdj_t ON hdj.ID = hdj_t.ID;")
    produce(node.bootstrap, "hdj_t", [{"key": {"int": 1}, "value": {"NAME": "one"}, "timestamp": 1}])
    produce(node.bootstrap, "hdj", [
        {"key": {"int": 1}, "value": {"N": 10}, "timestamp": 5, "headers": [("trace", b"t-1"), ("x", b"")]},
        {"key": {"int": 2}, "value": {"N": 20}, "timestamp": 6, "headers": [("trace", b"t-2")]},
        {"key": {"int": 1}, "value": {"N": 30}, "timestamp": 7}])
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["HDJ_OUT"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["hdj", "hdj_t"])
    out = read_all(node.bootstrap, "HDJ_OUT")
    assert [(r["key"], json.loads(r["value"])) for r in out] == [
        (key_bytes({"int": 1}), {"N": 10, "NAME": "one", "TRACE": "t-1", "NH": 2}),
        (key_bytes({"int": 1}), {"N": 30, "NAME": "one", "TRACE": None, "NH": 0}),
    ]
    r = _http(sql, "/query-stream", {"sql": "SELECT * FROM hdj EMIT CHANGES LIMIT 1;",
                                     "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
    assert r.json()[0]["columnNames"] == ["ID", "N", "T", "HS"], r.text
    assert r.json()[1] == [1, 10, _b64(b"t-1"), [{"KEY": "trace", "VALUE": _b64(b"t-1")},
                                                 {"KEY": "x", "VALUE": ""}]], r.text


def test_header_column_rules(sql, node):
    """ksqlDB's rules and messages: HEADER('k') is BYTES, HEADERS is an
    array of key/value structs, one HEADERS column, one column per key, and
    header columns are never written."""
    base = "WITH (KAFKA_TOPIC='hdr', VALUE_FORMAT='JSON', PARTITIONS=1);"
    cases = [
        (f"CREATE STREAM hdr1 (ID INT KEY, H STRING HEADER('a')) {base}",
         "Invalid type for HEADER('a') column: expected BYTES, got STRING"),
        (f"CREATE STREAM hdr2 (ID INT KEY, H ARRAY<STRING> HEADERS) {base}",
         "Invalid type for HEADERS column: expected ARRAY<STRUCT<`KEY` STRING, `VALUE` BYTES>>, got ARRAY<STRING>"),
        (f"CREATE STREAM hdr3 (ID INT KEY, H {_HEADERS_TYPE} HEADERS, G {_HEADERS_TYPE} HEADERS) {base}",
         "Schema already contains a HEADERS column."),
        (f"CREATE STREAM hdr4 (ID INT KEY, H BYTES HEADER('a'), G BYTES HEADER('a')) {base}",
         "Schema already contains a HEADER('a') column."),
    ]
    for text, message in cases:
        status, answer = sql.ksql(text, ok=False)
        assert status == 400 and message in answer["message"], (text, answer)
    sql.ksql(f"CREATE STREAM hdr (ID INT KEY, V STRING, H BYTES HEADER('a')) {base}"
             "CREATE STREAM hdr_plain (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='hdr_plain', VALUE_FORMAT='JSON', PARTITIONS=1);")
    for text, message in [
        ("INSERT INTO hdr VALUES (1, 'v', TO_BYTES('x', 'utf8'));", "Cannot insert into HEADER columns: H"),
        ("INSERT INTO hdr (ID, H) VALUES (1, TO_BYTES('x', 'utf8'));", "Cannot insert into HEADER columns: H"),
        ("INSERT INTO hdr SELECT * FROM hdr_plain;", "Cannot insert into HDR because it has header columns"),
    ]:
        status, answer = sql.ksql(text, ok=False)
        assert status == 400 and message in answer["message"], (text, answer)
    # Values for the other columns are written, with no headers.
    sql.ksql("INSERT INTO hdr (ID, V) VALUES (7, 'w');")
    [rec] = read_all(node.bootstrap, "hdr")
    assert rec["key"] == key_bytes({"int": 7}) and json.loads(rec["value"]) == {"V": "w"}
    r = _http(sql, "/query-stream", {"sql": "SELECT ID, V, H FROM hdr EMIT CHANGES LIMIT 1;",
                                     "properties": {"auto.offset.reset": "earliest"}}, accept="application/json")
    assert r.json()[1:] == [[7, "w", None]], r.text


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
    # (REST rows carry DATE and TIME as their text, as ksqlDB's do.)
    assert r.json()[1:] == [[4, 999.99, "2022-01-12", "10:11:12.500"]], r.text
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


def test_json_decimals_keep_their_digits(sql, node):
    """DECIMAL columns in JSON are read from the number's text and written
    as numbers with their scale, as ksqlDB does: values a double would
    round come back digit for digit (records compared by bytes)."""
    sql.ksql("CREATE STREAM jdec (ID INT KEY, D DECIMAL(20, 2), F DECIMAL(38, 20))"
             " WITH (KAFKA_TOPIC='jdec', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM jdec_out AS SELECT ID, D, D + 0.01 AS E, F FROM jdec;")
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["JDEC_OUT"])
    produce(node.bootstrap, "jdec", [
        {"key": {"int": 1}, "value": '{"D":12345678901234567.89,"F":0.12345678901234567891}', "timestamp": 1},
        {"key": {"int": 2}, "value": '{"D":"99999999999999999.98","F":1.5E-19}', "timestamp": 2},
        {"key": {"int": 3}, "value": '{"D":1.1,"F":-7}', "timestamp": 3},
    ])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["jdec"])
    got = [(r["key"], r["value"].decode()) for r in read_all(node.bootstrap, "JDEC_OUT")]
    assert got == [
        (key_bytes({"int": 1}),
         '{"D":12345678901234567.89,"E":12345678901234567.90,"F":0.12345678901234567891}'),
        (key_bytes({"int": 2}),
         '{"D":99999999999999999.98,"E":99999999999999999.99,"F":0.00000000000000000015}'),
        (key_bytes({"int": 3}), '{"D":1.10,"E":1.11,"F":-7.00000000000000000000}'),
    ], got


def test_decimals_exact_nested_and_over_rest(sql, node):
    """DECIMALs nested in structs, arrays and maps keep their digits too,
    read from the number's text and written with the column's scale, in
    JSON and JSON_SR topics and in the REST API's rows (/query and
    /query-stream in both encodings, push and pull), and /inserts-stream
    reads them from their text: ksqlDB's JSON has exact BigDecimals."""
    import httpx
    sql.ksql("CREATE STREAM ndec (ID INT KEY, D DECIMAL(19, 2), S STRUCT<E DECIMAL(19, 2)>, "
             "A ARRAY<DECIMAL(19, 2)>, M MAP<STRING, DECIMAL(19, 2)>) "
             "WITH (KAFKA_TOPIC='ndec', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE STREAM ndec_out AS SELECT ID, S, A, M, S->E + 0.01 AS E, TO_JSON_STRING(A) AS J FROM ndec;"
             "CREATE STREAM ndec_sr WITH (VALUE_FORMAT='JSON_SR') AS SELECT ID, S, A FROM ndec;"
             "CREATE TABLE ndec_t AS SELECT ID, LATEST_BY_OFFSET(D) AS D FROM ndec GROUP BY ID;")
    produce(node.bootstrap, "ndec", [{"key": {"int": 1}, "timestamp": 1, "value":
        '{"D":12345678901234567.89,"S":{"E":12345678901234567.8},"A":[12345678901234567.89,null,0.1],'
        '"M":{"k":-98765432109876543.21}}'}])
    ack = httpx.post(sql.url + "/inserts-stream", timeout=60, content=(
        '{"target": "NDEC"}\n{"ID": 2, "D": 98765432109876543.21, "S": {"E": 1.5}, '
        '"A": [99999999999999999.99], "M": {"x": 12345678901234567.89}}\n'))
    assert [json.loads(x) for x in ack.text.splitlines()] == [{"status": "ok", "seq": 0}], ack.text
    queries = sql.ksql("SHOW QUERIES;")[1][0]["queries"]
    for q in queries:
        if q["sinks"][0] in ("NDEC_OUT", "NDEC_SR", "NDEC_T"):
            wait_caught_up(node.bootstrap, query_group("sqltest_", q["id"]), ["ndec"])
    got = [(r["key"], r["value"].decode()) for r in read_all(node.bootstrap, "NDEC_OUT")]
    assert got == [
        (key_bytes({"int": 1}),
         '{"A":[12345678901234567.89,null,0.10],"E":12345678901234567.81,'
         '"J":"[12345678901234567.89,null,0.10]","M":{"k":-98765432109876543.21},'
         '"S":{"E":12345678901234567.80}}'),
        (key_bytes({"int": 2}),
         '{"A":[99999999999999999.99],"E":1.51,"J":"[99999999999999999.99]",'
         '"M":{"x":12345678901234567.89},"S":{"E":1.50}}'),
    ], got
    # JSON_SR: the registry frame (magic byte, schema id), then the same text.
    got = [r["value"][5:].decode() for r in read_all(node.bootstrap, "NDEC_SR")]
    assert got == ['{"A":[12345678901234567.89,null,0.10],"S":{"E":12345678901234567.80}}',
                   '{"A":[99999999999999999.99],"S":{"E":1.50}}'], got

    exact = lambda text: json.loads(text, parse_float=str)  # noqa: E731 (numbers as their text)
    row1 = [1, "12345678901234567.89", {"E": "12345678901234567.80"},
            ["12345678901234567.89", None, "0.10"], {"k": "-98765432109876543.21"}]
    row2 = [2, "98765432109876543.21", {"E": "1.50"}, ["99999999999999999.99"],
            {"x": "12345678901234567.89"}]
    push = {"sql": "SELECT * FROM ndec EMIT CHANGES LIMIT 2;", "properties": {"auto.offset.reset": "earliest"}}
    r = _http(sql, "/query-stream", push, accept="application/json")
    assert exact(r.text)[1:] == [row1, row2], r.text
    r = _http(sql, "/query-stream", push)
    assert [exact(x) for x in r.text.strip().splitlines()[1:]] == [row1, row2], r.text
    r = _http(sql, "/query", {"ksql": push["sql"], "streamsProperties": push["properties"]})
    assert [x["row"]["columns"] for x in exact(r.text)[1:] if "row" in x] == [row1, row2], r.text
    # Pull queries.
    pull = "SELECT * FROM ndec_t WHERE ID = 2;"
    r = _http(sql, "/query-stream", {"sql": pull}, accept="application/json")
    assert exact(r.text)[1:] == [[2, "98765432109876543.21"]], r.text
    r = _http(sql, "/query-stream", {"sql": pull})
    assert exact(r.text.strip().splitlines()[1]) == [2, "98765432109876543.21"], r.text
    r = _http(sql, "/query", {"ksql": pull})
    assert exact(r.text)[1] == {"row": {"columns": [2, "98765432109876543.21"]}}, r.text


def test_temporal_values_as_text_over_rest(sql, node):
    """ksqlDB's REST API writes TIMESTAMP, DATE and TIME values as text
    (`2024-01-02T03:04:05.006`, `2024-01-02`, `03:04:05`), nested ones
    too, in /query and /query-stream (both encodings, push and pull), and
    /inserts-stream reads that text back; topics keep numbers."""
    import httpx
    sql.ksql("CREATE STREAM tmp_in (ID INT KEY, TS TIMESTAMP, D DATE, T TIME, "
             "S STRUCT<TS TIMESTAMP>, A ARRAY<DATE>, M MAP<STRING, TIME>) "
             "WITH (KAFKA_TOPIC='tmp_in', VALUE_FORMAT='JSON', PARTITIONS=1);"
             "CREATE TABLE tmp_t AS SELECT ID, LATEST_BY_OFFSET(TS) AS TS, LATEST_BY_OFFSET(D) AS D, "
             "LATEST_BY_OFFSET(T) AS T FROM tmp_in GROUP BY ID;")
    # 2024-01-02T03:04:05.006Z, 2024-01-02 (day 19724), 03:04:05.
    produce(node.bootstrap, "tmp_in", [{"key": {"int": 1}, "timestamp": 1, "value": {
        "TS": 1704164645006, "D": 19724, "T": 11045000, "S": {"TS": 0}, "A": [19724, None],
        "M": {"k": 11045006}}}])
    ack = httpx.post(sql.url + "/inserts-stream", timeout=60, content=(
        '{"target": "TMP_IN"}\n{"ID": 2, "TS": "2024-01-02T03:04:05.006", "D": "2024-01-02", '
        '"T": "03:04:05", "S": {"TS": "1970-01-01T00:00:00.000"}, "A": ["2024-01-02", null], '
        '"M": {"k": "03:04:05.006"}}\n'))
    assert [json.loads(x) for x in ack.text.splitlines()] == [{"status": "ok", "seq": 0}], ack.text
    qid = next(q["id"] for q in sql.ksql("SHOW QUERIES;")[1][0]["queries"] if q["sinks"] == ["TMP_T"])
    wait_caught_up(node.bootstrap, query_group("sqltest_", qid), ["tmp_in"])
    # The topic keeps ksqlDB's numbers: the text written over REST went in as the same values.
    values = [json.loads(r["value"]) for r in read_all(node.bootstrap, "tmp_in")]
    assert values[0] == values[1] == {"TS": 1704164645006, "D": 19724, "T": 11045000, "S": {"TS": 0},
                                      "A": [19724, None], "M": {"k": 11045006}}, values
    row = ["2024-01-02T03:04:05.006", "2024-01-02", "03:04:05", {"TS": "1970-01-01T00:00:00.000"},
           ["2024-01-02", None], {"k": "03:04:05.006"}]
    push = {"sql": "SELECT TS, D, T, S, A, M FROM tmp_in EMIT CHANGES LIMIT 2;",
            "properties": {"auto.offset.reset": "earliest"}}
    r = _http(sql, "/query-stream", push, accept="application/json")
    assert r.json()[1:] == [row, row], r.text
    r = _http(sql, "/query-stream", push)
    assert [json.loads(x) for x in r.text.strip().splitlines()[1:]] == [row, row], r.text
    r = _http(sql, "/query", {"ksql": push["sql"], "streamsProperties": push["properties"]})
    assert [x["row"]["columns"] for x in r.json()[1:] if "row" in x] == [row, row], r.text
    pull = "SELECT * FROM tmp_t WHERE ID = 2;"
    prow = [2] + row[:3]
    r = _http(sql, "/query-stream", {"sql": pull}, accept="application/json")
    assert r.json()[1:] == [prow], r.text
    r = _http(sql, "/query-stream", {"sql": pull})
    assert json.loads(r.text.strip().splitlines()[1]) == prow, r.text
    r = _http(sql, "/query", {"ksql": pull})
    assert r.json()[1] == {"row": {"columns": prow}}, r.text


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


def _query_threads(s: SqlServer) -> list[str]:
    """Names of the server's query threads with several threads per query
    (`q<thread>-<query id>`, cut to 15 bytes by the OS)."""
    names = []
    for comm in Path(f"/proc/{s.proc.pid}/task").glob("*/comm"):
        try:
            names.append(comm.read_text().strip())
        except OSError:
            pass  # the thread ended meanwhile
    return sorted(n for n in names if n[:1] == "q" and n[1:2].isdigit())


def _kill_test(node, weir_binary, root, service: str, setup: list[str], inputs: dict, query: str,
               sink: str, sources: list[str], ordered: bool = True, props: dict | None = None,
               check=None, threads: int = 1, extra: tuple = ()):
    """`check(got, expected)` compares the outputs (default: record by
    record, or as sets when not `ordered`); with `threads` > 1, each query
    (the reference and the killed one) is checked to run on that many
    threads before every kill. `extra`: the server's arguments."""
    s = SqlServer(weir_binary, root, node.bootstrap, *extra, service_id=service).start()
    try:
        for stmt in setup:
            s.ksql(stmt)
        for topic, records in inputs.items():
            produce(node.bootstrap, topic, records)
        # Reference: an uninterrupted run.
        ref = s.ksql(query.format(sink=sink + "_REF"), props)[1][0]["commandStatus"]["queryId"]
        wait_caught_up(node.bootstrap, query_group(service, ref), sources, timeout=120)
        expected = read_all(node.bootstrap, sink + "_REF")
        # The same query, killed with kill -9 at random points and restarted.
        qid = s.ksql(query.format(sink=sink), props)[1][0]["commandStatus"]["queryId"]
        # Kill when the output's end offset passes random points of the
        # expected output (transaction markers count too), three times.
        rnd = random.Random(14)
        points = sorted(rnd.uniform(0.1, 0.9) * len(expected) for _ in range(3))
        seen = []
        # Records a killed run wrote but never committed count in the end
        # offsets too: after a restart, the next kill also waits for 5 % of
        # the output written anew, so every kill lands mid-stream, not
        # during the restart.
        last_end = 0
        c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "kill9-watch"})
        try:
            for point in points:
                # (Or once the output holds every record and stopped
                # growing for 3 s: the query has written everything.)
                deadline, grown, end = time.monotonic() + 60, time.monotonic(), -1
                while time.monotonic() < deadline and (
                        end < len(expected) or time.monotonic() - grown < 3):
                    md = c.list_topics(sink, timeout=10).topics.get(sink)
                    if md and md.partitions:
                        now = sum(c.get_watermark_offsets(TopicPartition(sink, p), timeout=10)[1]
                                  for p in md.partitions)
                        if now != end:
                            end, grown = now, time.monotonic()
                        if end >= max(point, last_end + 0.05 * len(expected)):
                            break
                    time.sleep(0.01)
                last_end = max(end, 0)
                if threads > 1:
                    names = _query_threads(s)
                    assert sorted({n.split("-")[0] for n in names}) == [f"q{i}" for i in range(threads)], names
                    assert len(names) == 2 * threads, names
                s.kill()
                seen.append(len(read_all(node.bootstrap, sink)))
                s.start()
        finally:
            c.close()
        print(f"committed output records at each kill: {seen} of {len(expected)}")
        wait_caught_up(node.bootstrap, query_group(service, qid), sources, timeout=120)
        got = read_all(node.bootstrap, sink)
        assert len(expected) > 0
        if check is not None:
            check(got, expected)
            return
        strip = lambda rs: [(r["partition"], r["key"], r["value"], r["timestamp"]) for r in rs]  # noqa: E731
        got, expected = strip(got), strip(expected)
        if not ordered:
            # Several partitions merge in whatever order their fetches
            # return: the same records (no duplicate, no gap), each on the
            # same partition.
            got, expected = sorted(got), sorted(expected)
        # Compared here rather than by `assert got == expected`: pytest's
        # diff of two lists this long takes minutes.
        if got != expected:
            i = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            differ = sum(a != b for a, b in zip(got, expected))
            pytest.fail(f"{len(got)} records after kills, {len(expected)} uninterrupted; {differ} differ, "
                        f"the first at {i}: {got[i:i + 3]} != {expected[i:i + 3]}", pytrace=False)
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


PARALLEL = {"auto.offset.reset": "earliest", "ksql.streams.num.stream.threads": "2"}


def test_kill9_parallel_windowed_aggregation_is_exactly_once(node, weir_binary, _broker_root):
    """A windowed count over a 4-partition stream, re-keyed through the
    repartition topic, run as 4 tasks on 2 threads (each with its own
    transactional producer), killed with kill -9 three times mid-stream.
    The threads interleave their re-keyed rows differently in every run, so
    running sums may differ from the uninterrupted run's; what exactly once
    fixes is checked: every (key, window)'s counts in the output are 1, 2,
    ..., n in order with no repeat or gap, n is the number of its input
    records, and the last row of each (key, window) equals the
    uninterrupted run's."""
    records = [{"key": {"int": i}, "value": {"K": f"k{i % 50}", "V": i}, "timestamp": 1_000_000 + i * 37}
               for i in range(40_000)]
    want: dict[tuple, int] = {}
    for r in records:
        start = (r["timestamp"] // 10_000) * 10_000
        want[(r["value"]["K"], start)] = want.get((r["value"]["K"], start), 0) + 1

    def by_window(rows):
        seqs: dict[tuple, list] = {}
        for r in rows:
            k = r["key"]
            name, start = k[:-8].decode(), int.from_bytes(k[-8:], "big")
            seqs.setdefault((r["partition"], name, start), []).append(json.loads(r["value"]))
        return seqs

    def check(got, expected):
        seqs = by_window(got)
        assert len(got) == len(records), f"{len(got)} rows for {len(records)} records"
        assert {(k, s) for _, k, s in seqs} == set(want)
        for (_, k, s), vals in seqs.items():
            assert [v["C"] for v in vals] == list(range(1, want[(k, s)] + 1)), (k, s)
        # One partition per key: every key's windows are written by one task.
        assert len({(k, s) for _, k, s in seqs}) == len(seqs)
        last = {w: vals[-1] for w, vals in seqs.items()}
        assert last == {w: vals[-1] for w, vals in by_window(expected).items()}

    _kill_test(node, weir_binary, _broker_root, "kpwin_",
               ["CREATE STREAM kpw (ID INT KEY, K STRING, V INT) WITH (KAFKA_TOPIC='kpw', VALUE_FORMAT='JSON', PARTITIONS=4);"],
               {"kpw": records},
               "CREATE TABLE {sink} AS SELECT K, COUNT(*) AS C, SUM(V) AS S FROM kpw "
               "WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 HOUR) GROUP BY K;",
               "KPW_OUT", ["kpw"], props=PARALLEL, check=check, threads=2)


def test_kill9_parallel_stream_table_join_is_exactly_once(node, weir_binary, _broker_root):
    """A stream–table join on the key over 4 co-partitioned partitions, 4
    tasks on 2 threads, killed with kill -9 three times mid-stream: the
    output (each key on the partition of its task) equals the uninterrupted
    run's record by record."""
    users = [{"key": {"int": u}, "value": {"NAME": f"user{u}"}, "timestamp": u} for u in range(200)]
    orders = [{"key": {"int": i % 250}, "value": {"OID": i, "AMT": i}, "timestamp": 10_000 + i}
              for i in range(40_000)]
    _kill_test(node, weir_binary, _broker_root, "kpjoin_",
               ["CREATE TABLE kpu (ID INT PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='kpu', VALUE_FORMAT='JSON', PARTITIONS=4);",
                "CREATE STREAM kpo (UID INT KEY, OID INT, AMT INT) WITH (KAFKA_TOPIC='kpo', VALUE_FORMAT='JSON', PARTITIONS=4);"],
               {"kpu": users, "kpo": orders},
               "CREATE STREAM {sink} AS SELECT O.UID, O.OID, O.AMT, U.NAME FROM kpo O LEFT JOIN kpu U ON O.UID = U.ID;",
               "KPJ_OUT", ["kpu", "kpo"], props=PARALLEL, threads=2)


def _kill9_repartitioned_join(node, weir_binary, root, name: str, table_partitions: int, renames: int, **kw):
    """The benchmark's join shape: 40,000 orders on 4 partitions re-keyed
    by user through the Join-repartition topic onto a table of 200 users
    (each renamed `renames` times while the orders go by), killed with
    kill -9 at random points; the output equals the uninterrupted run's
    (as a set). Short transactions, so the kills fall between them."""
    users = [{"key": {"string": f"u{u}"}, "value": {"NAME": f"user{u}v{v}"}, "timestamp": v * 10_000 + u}
             for v in range(renames + 1) for u in range(200)]
    orders = [{"key": {"string": f"o{i}"}, "value": {"ID": i, "USER": f"u{i % 250}", "AMOUNT": i * 0.5},
               "timestamp": 5_000 + i} for i in range(40_000)]
    _kill_test(node, weir_binary, root, f"{name}_",
               [f"CREATE TABLE {name}u (ID STRING PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='{name}u', "
                f"VALUE_FORMAT='JSON', PARTITIONS={table_partitions});",
                f"CREATE STREAM {name}o (K STRING KEY, ID BIGINT, USER STRING, AMOUNT DOUBLE) WITH (KAFKA_TOPIC='{name}o', "
                "VALUE_FORMAT='JSON', PARTITIONS=4);"],
               {f"{name}u": users, f"{name}o": orders},
               f"CREATE STREAM {{sink}} AS SELECT O.USER, O.ID, O.AMOUNT, U.NAME FROM {name}o O LEFT JOIN {name}u U "
               "ON O.USER = U.ID;",
               f"{name.upper()}_OUT", [f"{name}u", f"{name}o"], ordered=False,
               extra=("--set", "ksql.streams.commit.interval.ms=200"), **kw)


def test_kill9_repartitioned_join_over_partitions_is_exactly_once(node, weir_binary, _broker_root):
    """Table on 3 partitions, stream on 4: one task."""
    _kill9_repartitioned_join(node, weir_binary, _broker_root, "kjrp", 3, 0)


def test_kill9_parallel_repartitioned_join_with_history_is_exactly_once(node, weir_binary, _broker_root):
    """Table and stream on 4 partitions: 4 tasks on 2 threads, the users
    renamed three times. A restarted task rebuilds its table's versions
    from the table's topic and rows left in flight meet them as of their
    time."""
    _kill9_repartitioned_join(node, weir_binary, _broker_root, "kjph", 4, 3, props=PARALLEL, threads=2)


def test_kill9_repartitioned_stream_stream_join_is_exactly_once(node, weir_binary, _broker_root):
    """A stream-stream join re-keying its left side through
    Join-left-repartition, killed with kill -9 at random points: the window
    store restores from its changelog (rows named by their repartition
    records) and every pair within the window is joined exactly once."""
    rights = [{"key": {"int": r}, "value": {"B": f"b{r}"}, "timestamp": 10_000 + r * 500} for r in range(200)]
    lefts = [{"key": {"int": i}, "value": {"A": f"a{i}", "RID": i % 200}, "timestamp": 10_000 + i * 5}
             for i in range(60_000)]
    _kill_test(node, weir_binary, _broker_root, "kssj_",
               ["CREATE STREAM kssr (ID INT KEY, B STRING) WITH (KAFKA_TOPIC='kssr', VALUE_FORMAT='JSON', PARTITIONS=3);",
                "CREATE STREAM kssl (ID INT KEY, A STRING, RID INT) WITH (KAFKA_TOPIC='kssl', VALUE_FORMAT='JSON', PARTITIONS=2);"],
               {"kssr": rights, "kssl": lefts},
               "CREATE STREAM {sink} AS SELECT L.RID, L.A, R.B FROM kssl L JOIN kssr R WITHIN 5 SECONDS ON L.RID = R.ID;",
               "KSSJ_OUT", ["kssr", "kssl"], ordered=False,
               # Short transactions, so the kills fall between them.
               extra=("--set", "ksql.streams.commit.interval.ms=200"))


def test_kill9_stream_stream_join_re_keying_both_sides_is_exactly_once(node, weir_binary, _broker_root):
    """A stream-stream join re-keying both sides (two repartition topics,
    each with its offsets committed in the query's transactions), killed
    with kill -9 at three random points: the output read_committed holds
    the uninterrupted run's records, no duplicate and no gap."""
    rights = [{"key": {"int": r}, "value": {"B": f"b{r}", "J": r % 150}, "timestamp": 10_000 + r * 400}
              for r in range(300)]
    lefts = [{"key": {"int": i}, "value": {"A": f"a{i}", "J": i % 150}, "timestamp": 10_000 + i * 5}
             for i in range(30_000)]
    _kill_test(node, weir_binary, _broker_root, "kbsj_",
               ["CREATE STREAM kbsr (ID INT KEY, B STRING, J INT) WITH (KAFKA_TOPIC='kbsr', VALUE_FORMAT='JSON', PARTITIONS=3);",
                "CREATE STREAM kbsl (ID INT KEY, A STRING, J INT) WITH (KAFKA_TOPIC='kbsl', VALUE_FORMAT='JSON', PARTITIONS=2);"],
               {"kbsr": rights, "kbsl": lefts},
               "CREATE STREAM {sink} AS SELECT L.J, L.A, R.B FROM kbsl L JOIN kbsr R WITHIN 5 SECONDS ON L.J = R.J;",
               "KBSJ_OUT", ["kbsr", "kbsl"], ordered=False,
               # Short transactions, so the kills fall between them.
               extra=("--set", "ksql.streams.commit.interval.ms=200"))


def test_kill9_chain_of_joins_through_its_topics_is_exactly_once(node, weir_binary, _broker_root):
    """A chain of three streams re-keying every side through its four
    repartition topics (the first stage's rows among them), killed with
    kill -9 at three random points: the output read_committed holds the
    uninterrupted run's records, no duplicate and no gap."""
    s1 = [{"key": {"int": i}, "value": {"K": i % 40, "V": i % 30}, "timestamp": 10_000 + i * 40}
          for i in range(600)]
    s2 = [{"key": {"int": j}, "value": {"K": j % 40}, "timestamp": 10_000 + j * 300} for j in range(80)]
    s3 = [{"key": {"int": m}, "value": {"V": m % 30}, "timestamp": 10_000 + m * 500} for m in range(48)]
    _kill_test(node, weir_binary, _broker_root, "kchain_",
               ["CREATE STREAM kc1 (ID INT KEY, K INT, V INT) WITH (KAFKA_TOPIC='kc1', VALUE_FORMAT='JSON', PARTITIONS=2);",
                "CREATE STREAM kc2 (ID INT KEY, K INT) WITH (KAFKA_TOPIC='kc2', VALUE_FORMAT='JSON', PARTITIONS=3);",
                "CREATE STREAM kc3 (ID INT KEY, V INT) WITH (KAFKA_TOPIC='kc3', VALUE_FORMAT='JSON', PARTITIONS=2);"],
               {"kc1": s1, "kc2": s2, "kc3": s3},
               "CREATE STREAM {sink} AS SELECT kc1.V, kc1.ID AS I1, kc2.ID AS I2, kc3.ID AS I3 FROM kc1"
               " JOIN kc2 WITHIN 2 SECONDS ON kc1.K = kc2.K JOIN kc3 WITHIN 2 SECONDS ON kc1.V = kc3.V;",
               "KCH_OUT", ["kc1", "kc2", "kc3"], ordered=False,
               # Short transactions, so the kills fall between them.
               extra=("--set", "ksql.streams.commit.interval.ms=200"))


def _rekeyed_lookup_join(s: SqlServer, p: str, table_partitions: int = 1) -> tuple[str, str]:
    """Creates table `<p>u`, stream `<p>o` (one partition) and the query
    `<P>_OUT` joining the stream to the table on a non-key column; answers
    the query's group and its Join-repartition topic."""
    s.ksql(f"CREATE TABLE {p}u (ID INT PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='{p}u', VALUE_FORMAT='JSON', "
           f"PARTITIONS={table_partitions});"
           f"CREATE STREAM {p}o (OID INT KEY, UID INT) WITH (KAFKA_TOPIC='{p}o', VALUE_FORMAT='JSON', PARTITIONS=1);")
    qid = s.ksql(f"CREATE STREAM {p.upper()}_OUT AS SELECT O.UID, O.OID, U.NAME FROM {p}o O LEFT JOIN {p}u U "
                 "ON O.UID = U.ID;")[1][0]["commandStatus"]["queryId"]
    group = query_group(s.service_id, qid)
    topic = next(t for t in s.ksql("SHOW ALL TOPICS;")[1][0]["topics"]
                 if t["name"].startswith(group) and t["name"].endswith("-repartition"))["name"]
    return group, topic


def test_rekeyed_rows_read_back_retimed_meet_the_table_as_of_their_own_time(node, weir_binary, _broker_root):
    """A row of a re-keyed join read back with another timestamp (here the
    repartition topic is switched to LogAppendTime, so the record comes back
    later than the table update) still meets the table as of the time it
    carries: the update at 5000 is a later version than the order at 1000
    sees. The repartition topic has two partitions and one receives
    nothing: the consumer has no position in it, yet it is at its end."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    s = SqlServer(weir_binary, _broker_root, node.bootstrap, service_id="retime_").start()
    try:
        group, topic = _rekeyed_lookup_join(s, "rt", table_partitions=2)
        admin = AdminClient({"bootstrap.servers": node.bootstrap})
        res = ConfigResource("topic", topic, incremental_configs=[
            ConfigEntry("message.timestamp.type", "LogAppendTime",
                        incremental_operation=AlterConfigOpType.SET)])
        for f in admin.incremental_alter_configs([res]).values():
            f.result(timeout=30)
        assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 2
        produce(node.bootstrap, "rto", [{"key": {"int": 1}, "value": {"UID": 7}, "timestamp": 1000}])
        produce(node.bootstrap, "rtu", [{"key": {"int": 7}, "value": {"NAME": "n7"}, "timestamp": 5000}])
        wait_caught_up(node.bootstrap, group, ["rto", "rtu"], timeout=60)
        got = [json.loads(r["value"]) for r in read_all(node.bootstrap, "RT_OUT")]
        assert got == [{"OID": 1, "NAME": None}], got
    finally:
        s.kill()


def _rekeyed_as_of_join(sql_kept, node, name: str, table_partitions: int, props=None) -> str:
    """Joins a 4-partition stream of 3000 orders, re-keyed through
    Join-repartition, to a table of 150 updates interleaved in time, and
    checks every order's name against its user's name as of the order's
    time, computed here record by record. Answers the query id."""
    sql_kept.ksql(
        f"CREATE TABLE {name}u (ID STRING PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='{name}u', VALUE_FORMAT='JSON', "
        f"PARTITIONS={table_partitions});"
        f"CREATE STREAM {name}o (K STRING KEY, ID BIGINT, USER STRING) WITH (KAFKA_TOPIC='{name}o', VALUE_FORMAT='JSON', "
        "PARTITIONS=4);")
    # Updates at odd times, orders at even ones, interleaved.
    users = [{"key": {"string": f"u{j % 30}"}, "value": {"NAME": f"u{j % 30}v{j // 30}"}, "timestamp": 10_001 + 80 * j}
             for j in range(150)]
    orders = [{"key": {"string": f"o{i}"}, "value": {"ID": i, "USER": f"u{i * 7 % 30}"}, "timestamp": 10_000 + 4 * i}
              for i in range(3000)]
    produce(node.bootstrap, f"{name}u", users)
    produce(node.bootstrap, f"{name}o", orders)
    qid = sql_kept.ksql(f"CREATE STREAM {name.upper()}_OUT AS SELECT O.USER, O.ID, U.NAME FROM {name}o O "
                        f"LEFT JOIN {name}u U ON O.USER = U.ID;", props=props)[1][0]["commandStatus"]["queryId"]
    wait_caught_up(node.bootstrap, query_group("kept_", qid), [f"{name}o", f"{name}u"], timeout=180)
    names = {}
    want = []
    for r in sorted(users + orders, key=lambda r: r["timestamp"]):
        if "NAME" in r["value"]:
            names[r["key"]["string"]] = r["value"]["NAME"]
        else:
            v = r["value"]
            want.append((v["USER"], v["ID"], names.get(v["USER"]), r["timestamp"]))
    assert len({w[2] for w in want}) > 100, "orders meet many versions"
    rows = [(r["key"].decode(), json.loads(r["value"]), r["timestamp"])
            for r in read_all(node.bootstrap, f"{name.upper()}_OUT")]
    got = sorted((k, v["ID"], v["NAME"], ts) for k, v, ts in rows)
    wrong = [(g, w) for g, w in zip(got, sorted(want)) if g != w]
    assert len(got) == len(want) and not wrong, f"{len(wrong)} rows differ, first {wrong[:3]}"
    return qid


def test_rekeyed_stream_table_join_meets_each_row_as_of_its_time(sql_kept, node):
    """A stream–table join through Join-repartition (a 4-partition stream
    re-keyed onto the table's 3 partitions: one task): every order meets
    its user's name as of the order's time, as the direct join's timestamp
    merge has it. Table updates are not held for the re-keyed rows: a row
    read back after the table moved on looks up the version of its time."""
    _rekeyed_as_of_join(sql_kept, node, "rta", 3)


def test_rekeyed_stream_table_join_split_into_tasks_meets_each_row_as_of_its_time(sql_kept, node):
    """The same join with the table on 4 partitions, as the stream: one
    task per partition on 2 threads (EXPLAIN's tasksMetadata: the
    re-keying sub-topology reads the stream's partitions, the join's the
    table's and Join-repartition's). Rows from both threads land in a
    repartition partition in the order their transactions commit, not in
    time order, and the table partition's task reads them after its table
    has moved on; each still meets the name as of its time."""
    qid = _rekeyed_as_of_join(sql_kept, node, "rtb", 4, props={"auto.offset.reset": "earliest",
                                                              "ksql.streams.num.stream.threads": "2"})
    _, answer = sql_kept.ksql(f"EXPLAIN {qid};")
    tasks = {t["taskId"]: [(o["topicPartitionEntity"]["topic"], o["topicPartitionEntity"]["partition"])
                           for o in t["topicOffsets"]] for t in answer[0]["queryDescription"]["tasksMetadata"]}
    assert sorted(tasks) == ["0_0", "0_1", "0_2", "0_3", "1_0", "1_1", "1_2", "1_3"], tasks
    for p in range(4):
        assert tasks[f"0_{p}"] == [("rtbo", p)], tasks
        assert sorted(t for t, _ in tasks[f"1_{p}"]) == sorted(
            ["rtbu", f"{query_group('kept_', qid)}-Join-repartition"]), tasks
        assert {q for _, q in tasks[f"1_{p}"]} == {p}, tasks


def test_rekeyed_rows_in_flight_at_a_restart_meet_the_table_as_of_their_time(node, weir_binary, _broker_root):
    """Re-keyed rows a killed run committed to the Join-repartition topic
    but did not read back meet the table as of their own time after the
    restart, although a table update (time 20) is read before them: the
    row at time 10 does not see it, the row at time 100 does (a
    partition's rows are in the order sent, not by time, so the update
    goes before the row at 100 at the head of the repartition partition,
    and a table kept only as its latest rows let the row at 10 meet it
    too). Copies of the query's own repartition records, written while it
    is down, stand in for such rows: the query cannot tell them apart."""
    from confluent_kafka import Producer
    s = SqlServer(weir_binary, _broker_root, node.bootstrap,
                  "--set", "ksql.streams.repartition.purge.interval.ms=3600000", service_id="inflight_").start()
    try:
        group, topic = _rekeyed_lookup_join(s, "if")
        produce(node.bootstrap, "ifo", [{"key": {"int": 1}, "value": {"UID": 7}, "timestamp": 100},
                                        {"key": {"int": 2}, "value": {"UID": 7}, "timestamp": 10}])
        wait_caught_up(node.bootstrap, group, ["ifo", "ifu"], timeout=60)
        sent = read_all(node.bootstrap, topic)
        assert [r["timestamp"] for r in sent] == [100, 10]
        s.kill()
        p = Producer({"bootstrap.servers": node.bootstrap})
        for r in sent:
            p.produce(topic, partition=r["partition"], key=r["key"], value=r["value"], timestamp=r["timestamp"])
        assert p.flush(30) == 0
        produce(node.bootstrap, "ifu", [{"key": {"int": 7}, "value": {"NAME": "n7"}, "timestamp": 20}])
        s.start()
        wait_caught_up(node.bootstrap, group, ["ifo", "ifu"], timeout=60)
        got = [json.loads(r["value"]) for r in read_all(node.bootstrap, "IF_OUT")]
        assert got == [{"OID": 1, "NAME": None}, {"OID": 2, "NAME": None},
                       {"OID": 1, "NAME": "n7"}, {"OID": 2, "NAME": None}], got
    finally:
        s.kill()


def test_queries_logged_before_tasks_keep_one_task(node, weir_binary, _broker_root):
    """A persistent query whose logged statement carries no thread count
    (as a server before queries had tasks logged it) runs as one task on
    one thread after a restart: its changelog's records were placed by the
    producer's partitioner, not by task. A new query over the same
    4-partition stream logs its thread count and runs on 4 threads; both
    tables answer the same counts."""
    from confluent_kafka import Producer
    svc = "legacy_"
    s = SqlServer(weir_binary, _broker_root, node.bootstrap, service_id=svc).start()
    try:
        s.ksql("CREATE STREAM lg (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='lg', VALUE_FORMAT='JSON', PARTITIONS=4);")
        produce(node.bootstrap, "lg", [{"key": {"int": i}, "value": {"V": f"v{i % 7}"}, "timestamp": 1000 + i}
                                       for i in range(700)])
        p = Producer({"bootstrap.servers": node.bootstrap})
        p.produce(f"_confluent-ksql-{svc}_command_topic", partition=0, key=b"table/LG_OLD/create",
                  value=json.dumps({"statement": "CREATE TABLE LG_OLD AS SELECT V, COUNT(*) AS C FROM lg GROUP BY V;",
                                    "streamsProperties": {"auto.offset.reset": "earliest"},
                                    "originalProperties": {}}).encode())
        assert p.flush(30) == 0
        s.kill()
        s.start()
        s.ksql("CREATE TABLE LG_NEW AS SELECT V, COUNT(*) AS C FROM lg GROUP BY V;")
        for q in s.ksql("SHOW QUERIES;")[1][0]["queries"]:
            wait_caught_up(node.bootstrap, query_group(svc, q["id"]), ["lg"])
        names = []
        for comm in Path(f"/proc/{s.proc.pid}/task").glob("*/comm"):
            try:
                names.append(comm.read_text().strip())
            except OSError:
                pass
        assert sorted(n for n in names if "CTAS_LG_O" in n) == ["query-CTAS_LG_O"], names
        assert sorted(n.split("-")[0] for n in names if "CTAS_LG_N" in n) == ["q0", "q1", "q2", "q3"], names
        for table in ("LG_OLD", "LG_NEW"):
            r = _http(s, "/query-stream", {"sql": f"SELECT V, C FROM {table};"}, accept="application/json")
            assert sorted(r.json()[1:]) == [[f"v{v}", 100] for v in range(7)], (table, r.text)
    finally:
        s.kill()


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
    # DECIMALs print with every digit, TIMESTAMPs as ksqlDB's text, in
    # tables and in JSON output.
    exact = ("SELECT ID, CAST('12345678901234567.89' AS DECIMAL(19, 2)) AS D, "
             "CAST('2024-01-02T03:04:05.006' AS TIMESTAMP) AS TS FROM sh_ex_sum WHERE ID = 7;")
    r = shell("--execute", exact)
    assert r.returncode == 0, r.stderr
    assert [c.strip() for c in r.stdout.splitlines()[3].strip("|").split("|")] == [
        "7", "12345678901234567.89", "2024-01-02T03:04:05.006"], r.stdout
    r = shell("--output", "json", "--execute", exact)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == '[7,12345678901234567.89,"2024-01-02T03:04:05.006"]', r.stdout
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

"""The web console in a real headless browser: Debian's chromium driven by
Playwright, against a node serving the console (`--console-listen`) with
data written by kcat and confluent-kafka. Each page is checked against
what the clients wrote, each action against what the clients see
afterwards, and a screenshot of each page is saved in the test's
temporary directory (the path is printed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   ConfigResource, ResourcePatternType, ResourceType)

from conftest import HOST, BrokerFactory, free_port
from weir_helpers import admin, consume_range, create_topic, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# CI installs chromium, so there a missing browser fails the tests instead
# of skipping them.
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def node(weir_binary, _broker_root):
    """A node serving the console, Connect and the SQL server."""
    f = BrokerFactory(weir_binary, _broker_root)
    b = f("--console-listen", f"{HOST}:{free_port()}",
          "--connect-listen", f"{HOST}:{free_port()}",
          "--sql-listen", f"{HOST}:{free_port()}",
          "--client-set", "connect.offset.flush.interval.ms=500",
          "--client-set", "sql.ksql.service.id=console_",
          "--set", "authorizer.class.name=StandardAuthorizer",
          "--set", "super.users=User:ANONYMOUS",
          name="console-node")
    b.console_url = f"http://{b.args[b.args.index('--console-listen') + 1]}"
    b.connect_url = f"http://{b.args[b.args.index('--connect-listen') + 1]}"
    b.sql_url = f"http://{b.args[b.args.index('--sql-listen') + 1]}"
    for url in (b.connect_url + "/", b.sql_url + "/info"):
        wait_until(lambda: _get_ok(url), 60, what=f"{url} to answer")
    yield b
    f.cleanup()


def _get_ok(url):
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="weir-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                   args=ARGS, viewport={"width": 1280, "height": 900})
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    pg = browser.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def kcat_produce(bootstrap, topic, lines, partition=0):
    subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-p", str(partition), "-K:",
                    "-H", "source=kcat"], input="\n".join(lines).encode(), check=True, timeout=30)


def test_overview_shows_the_cluster_and_live_charts(node, page, tmp_path):
    kadmin = admin(node.bootstrap)
    create_topic(kadmin, "console-overview", partitions=3)
    page.goto(f"{node.console_url}/#/overview")
    page.wait_for_selector("[data-card=brokers]")
    assert page.inner_text("[data-card=brokers] .value") == "1"
    topics = [t for t in kadmin.list_topics(timeout=10).topics if not t.startswith("__")]
    assert page.inner_text("[data-card=topics] .value") == str(len(topics))
    assert "127.0.0.1" in page.inner_text("#brokers")
    # Charts fill in as samples arrive (two are enough for a rate).
    page.wait_for_function("document.querySelectorAll('.chart svg path').length >= 3", timeout=20000)
    shot(page, tmp_path, "overview")


def test_topics_list_search_and_create(node, page, tmp_path):
    kadmin = admin(node.bootstrap)
    create_topic(kadmin, "console-alpha", partitions=2)
    create_topic(kadmin, "console-beta", partitions=1)
    page.goto(f"{node.console_url}/#/topics")
    page.wait_for_selector("#topics")
    page.fill("#topic-search", "alpha")
    rows = page.inner_text("#topics")
    assert "console-alpha" in rows and "console-beta" not in rows
    shot(page, tmp_path, "topics")
    page.click("#new-topic")
    page.fill("#new-topic-name", "console-created")
    page.fill("#new-topic-partitions", "4")
    page.fill("#new-topic-configs", "retention.ms=7200000\ncleanup.policy=compact")
    page.click("#create-topic-submit")
    page.wait_for_selector("#partitions")
    md = kadmin.list_topics(topic="console-created", timeout=10)
    assert len(md.topics["console-created"].partitions) == 4
    res = ConfigResource("TOPIC", "console-created")
    cfg = kadmin.describe_configs([res])[res].result(10)
    assert (cfg["retention.ms"].value, cfg["cleanup.policy"].value) == ("7200000", "compact")


def test_topic_pages_show_kcat_records_and_act(node, page, tmp_path):
    kadmin = admin(node.bootstrap)
    topic = "console-orders"
    create_topic(kadmin, topic, partitions=2)
    kcat_produce(node.bootstrap, topic, [f"k{i}:" + json.dumps({"order": i, "item": f"item-{i}"}) for i in range(5)], 0)
    kcat_produce(node.bootstrap, topic, ["plain:just text", "other:more text"], 1)
    page.goto(f"{node.console_url}/#/topics/{topic}")
    page.wait_for_selector("#partitions")
    cells = page.locator("#partitions tbody tr").all_inner_texts()
    assert cells[0].split("\t")[:5] == ["0", "0", "0", "5", "5"], cells
    assert cells[1].split("\t")[:5] == ["1", "0", "0", "2", "2"], cells
    shot(page, tmp_path, "topic-partitions")

    # The message browser shows exactly what kcat wrote.
    page.click("[data-tab=messages]")
    page.wait_for_selector("#records")
    text = page.inner_text("#records")
    for i in range(5):
        assert f"k{i}" in text and f'"item": "item-{i}"' in text
    assert "just text" in text and "source=kcat" in text
    page.fill("#browse-filter", "item-3")
    page.click("#browse")
    page.wait_for_function("document.querySelectorAll('#records tbody tr').length === 1")
    assert "k3" in page.inner_text("#records")
    page.select_option("#browse-partition", "0")
    page.select_option("#browse-from", "offset")
    page.fill("#browse-at", "3")
    page.fill("#browse-filter", "")
    page.click("#browse")
    page.wait_for_function("document.querySelectorAll('#records tbody tr').length === 2")
    assert [r.split("\t")[1] for r in page.locator("#records tbody tr").all_inner_texts()] == ["3", "4"]
    shot(page, tmp_path, "topic-messages")

    # Produce a record; confluent-kafka reads it.
    page.click("[data-tab=produce]")
    page.fill("#produce-partition", "1")
    page.fill("#produce-key", "from-console")
    page.fill("#produce-value", '{"made": "in the browser"}')
    page.fill("#produce-headers", "via=console")
    page.click("#produce-submit")
    page.wait_for_function("document.getElementById('produce-result')?.textContent?.includes('offset 2')")
    shot(page, tmp_path, "topic-produce")
    got = consume_range(node.bootstrap, topic, [1])[1]
    assert (got[2].key, json.loads(got[2].value), got[2].headers) == \
        (b"from-console", {"made": "in the browser"}, (("via", b"console"),))

    # Edit a config.
    page.click("[data-tab=configs]")
    page.wait_for_selector("#configs")
    page.fill("input[data-config='retention.ms']", "3600000")
    page.click("button[data-save='retention.ms']")
    res = ConfigResource("TOPIC", topic)
    wait_until(lambda: kadmin.describe_configs([res])[res].result(10)["retention.ms"].value == "3600000",
               what="retention.ms to change")
    shot(page, tmp_path, "topic-configs")

    # Add partitions, then delete the topic.
    page.click("[data-tab=settings]")
    page.fill("#partition-count", "3")
    page.click("#add-partitions")
    wait_until(lambda: len(kadmin.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 3,
               what="a third partition")
    page.wait_for_selector("#partitions")
    page.click("[data-tab=settings]")
    shot(page, tmp_path, "topic-settings")
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-topic")
    wait_until(lambda: topic not in kadmin.list_topics(timeout=10).topics, what="the topic to go")


def rows(page, selector):
    return [r.split("\t") for r in page.locator(f"{selector} tbody tr").all_inner_texts()]


def committed(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return [tp.offset for tp in got]
    finally:
        c.close()


def group_state(kadmin, group):
    return kadmin.describe_consumer_groups([group])[group].result(10).state.name


def test_groups_page_lag_members_reset_and_delete(node, page, tmp_path):
    kadmin = admin(node.bootstrap)
    topic, group = "console-lag", "console-group"
    create_topic(kadmin, topic, partitions=2)
    p = Producer({"bootstrap.servers": node.bootstrap})
    for i in range(10):
        p.produce(topic, value=f"a{i}".encode(), partition=0)
    for i in range(5):
        p.produce(topic, value=f"b{i}".encode(), partition=1)
    assert p.flush(30) == 0
    # confluent-kafka commits 4 of 10 and 5 of 5: a lag of 6 and 0.
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 5)], asynchronous=False)
    c.close()

    page.goto(f"{node.console_url}/#/groups")
    page.wait_for_selector("#groups")
    row = next(r for r in rows(page, "#groups") if r[0] == group)
    assert (row[1], row[4], row[5]) == ("EMPTY", "6", "6"), row
    shot(page, tmp_path, "groups")

    # A live member: its client id and assignment show.
    m = Consumer({"bootstrap.servers": node.bootstrap, "group.id": group, "client.id": "console-member",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    m.subscribe([topic])
    wait_until(lambda: (m.poll(0.2), m.assignment())[1], 30, what="an assignment")
    page.goto(f"{node.console_url}/#/groups/{group}")
    page.wait_for_selector("#lags")
    assert page.inner_text("[data-card=state] .value") == "STABLE"
    members = rows(page, "#members")
    assert len(members) == 1 and members[0][2] == "console-member"
    assert sorted(members[0][3].split(", ")) == [f"{topic}-0", f"{topic}-1"]
    assert [r[:5] for r in rows(page, "#lags")] == [[topic, "0", "4", "10", "6"], [topic, "1", "5", "5", "0"]]
    assert page.locator(".chart svg rect").count() == 2
    shot(page, tmp_path, "group-members")
    # Resetting an active group is refused with the reason.
    page.select_option("#reset-to", "earliest")
    page.click("#reset-dry-run")
    page.wait_for_function("document.getElementById('toast')?.textContent?.includes('inactive')")
    m.close()
    wait_until(lambda: group_state(kadmin, group) == "EMPTY", 30, what="the group to empty")

    # A dry run changes nothing; applying it does.
    page.reload()
    page.wait_for_selector("p#members")
    assert page.inner_text("[data-card=state] .value") == "EMPTY"
    page.select_option("#reset-topic", topic)
    page.select_option("#reset-to", "offset")
    page.fill("#reset-value", "2")
    page.click("#reset-dry-run")
    page.wait_for_selector("#reset-plan")
    assert [r[:4] for r in rows(page, "#reset-plan")] == [[topic, "0", "4", "2"], [topic, "1", "5", "2"]]
    shot(page, tmp_path, "group-reset-preview")
    assert committed(node.bootstrap, group, topic, [0, 1]) == [4, 5]
    page.click("#reset-apply")
    page.wait_for_selector("#reset-done")
    assert committed(node.bootstrap, group, topic, [0, 1]) == [2, 2]
    page.wait_for_function("document.querySelector('[data-card=lag] .value')?.textContent === '11'")

    page.once("dialog", lambda d: d.accept())
    page.click("#delete-group")
    page.wait_for_selector("#groups, .muted")
    wait_until(lambda: group not in [g.group_id for g in kadmin.list_consumer_groups().result(10).valid],
               what="the group to go")


def test_schemas_page_versions_diff_compatibility_and_register(node, page, tmp_path):
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    sr = SchemaRegistryClient({"url": f"http://{HOST}:{node.registry_port}"})
    subject = "console-orders-value"
    v1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int"}]}
    v2 = {**v1, "fields": v1["fields"] + [{"name": "note", "type": "string", "default": ""}]}
    sr.register_schema(subject, Schema(json.dumps(v1), "AVRO"))
    sr.register_schema(subject, Schema(json.dumps(v2), "AVRO"))

    page.goto(f"{node.console_url}/#/schemas")
    page.wait_for_selector("#subjects")
    assert subject in page.inner_text("#subjects")
    shot(page, tmp_path, "schemas")
    page.goto(f"{node.console_url}/#/schemas/{subject}")
    page.wait_for_selector("#schema-text")
    assert page.locator("#version option").count() == 2
    assert '"note"' in page.inner_text("#schema-text")
    added = page.locator("#diff .add").all_inner_texts()
    assert any('"note"' in line for line in added) and not page.locator("#diff .del").count()
    shot(page, tmp_path, "schema-diff")

    page.select_option("#compatibility", "FULL")
    page.click("#save-compatibility")
    def level():
        try:
            return sr.get_compatibility(subject)
        except Exception:  # 40408 until the level is set
            return None
    wait_until(lambda: level() == "FULL", what="FULL compatibility")

    # An incompatible version is checked, shown and not registrable.
    bad = {**v2, "fields": [{"name": "id", "type": "string"}, v2["fields"][1]]}
    page.fill("#new-schema", json.dumps(bad))
    page.click("#check-compatibility")
    page.wait_for_selector("#compat-result .bad")
    assert page.is_disabled("#register-schema")
    shot(page, tmp_path, "schema-incompatible")
    good = {**v2, "fields": v2["fields"] + [{"name": "qty", "type": "int", "default": 0}]}
    page.fill("#new-schema", json.dumps(good))
    page.click("#check-compatibility")
    page.wait_for_selector("#compat-result .ok")
    page.click("#register-schema")
    page.wait_for_function("document.getElementById('toast')?.textContent?.includes('Registered schema id')")
    wait_until(lambda: sr.get_latest_version(subject).version == 3, what="version 3")
    assert json.loads(sr.get_latest_version(subject).schema.schema_str)["fields"][2]["name"] == "qty"
    page.wait_for_function("document.querySelectorAll('#version option').length === 3")


def read_values(bootstrap, topic, n, timeout=60.0):
    """The first `n` values of partition 0 (committed records only: the
    worker's transaction markers take offsets too)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "console-reader", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m.value())
        return out
    finally:
        c.close()


def connect_status(node, name):
    r = httpx.get(f"{node.connect_url}/connectors/{name}/status", timeout=10)
    return r.json() if r.status_code == 200 else None


def test_connect_page_create_validate_act_and_traces(node, page, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("l1\nl2\nl3\n")
    page.goto(f"{node.console_url}/#/connect")
    page.wait_for_selector("#connectors")
    page.click("#new-connector")
    # The worker's validation errors show per field; nothing is created.
    spec = {"name": "console-src", "config": {"connector.class": "FileStreamSource", "file": str(src),
                                              "value.converter": "org.apache.kafka.connect.storage.StringConverter"}}
    page.fill("#connector-json", json.dumps(spec))
    page.click("#create-connector-submit")
    page.wait_for_selector("#validation-errors [data-field=topic]")
    assert "Missing required configuration" in page.inner_text("[data-field=topic]")
    assert httpx.get(f"{node.connect_url}/connectors").json() == []
    shot(page, tmp_path, "connect-validation")
    spec["config"]["topic"] = "console-lines"
    page.fill("#connector-json", json.dumps(spec))
    page.click("#create-connector-submit")
    page.wait_for_selector("#tasks")
    wait_until(lambda: (s := connect_status(node, "console-src")) and s["connector"]["state"] == "RUNNING"
               and s["tasks"] and s["tasks"][0]["state"] == "RUNNING", 60, what="the source to run")
    assert read_values(node.bootstrap, "console-lines", 3) == [b"l1", b"l2", b"l3"]

    for button, state in [("#pause", "PAUSED"), ("#resume", "RUNNING")]:
        page.click(button)
        wait_until(lambda: connect_status(node, "console-src")["connector"]["state"] == state, 30, what=state)
        page.wait_for_function(f"document.querySelector('[data-card=state] .value')?.textContent === '{state}'")
        if state == "PAUSED":
            shot(page, tmp_path, "connector-paused")
    page.click("#restart")
    page.wait_for_function("document.getElementById('toast')?.textContent?.includes('Restarting')")
    wait_until(lambda: connect_status(node, "console-src")["tasks"][0]["state"] == "RUNNING", 30, what="running again")

    # A task that fails shows its trace.
    r = httpx.post(f"{node.connect_url}/connectors", json={"name": "console-strict", "config": {
        "connector.class": "FileStreamSink", "topics": "console-lines", "file": str(tmp_path / "out.txt"),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false"}}, timeout=30)
    assert r.status_code == 201, r.text
    wait_until(lambda: (s := connect_status(node, "console-strict")) and s["tasks"]
               and s["tasks"][0]["state"] == "FAILED", 60, what="a FAILED task")
    page.goto(f"{node.console_url}/#/connect")
    page.wait_for_selector("#connectors")
    listed = {r[0]: r for r in rows(page, "#connectors")}
    assert listed["console-src"][3] == "RUNNING" and listed["console-src"][4] == "1/1 running"
    assert listed["console-strict"][5] == "failed tasks"
    shot(page, tmp_path, "connectors")
    page.goto(f"{node.console_url}/#/connect/console-strict")
    page.wait_for_selector("#tasks")
    assert "FAILED" in page.inner_text("#tasks")
    page.click("#tasks summary")
    assert "org.apache.kafka.connect.errors.DataException" in page.inner_text("#tasks .trace")
    shot(page, tmp_path, "connector-trace")
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-connector")
    wait_until(lambda: "console-strict" not in httpx.get(f"{node.connect_url}/connectors").json(), 30,
               what="the connector to go")


def test_sql_page_statements_push_and_pull_queries(node, page, tmp_path):
    from sql_helpers import produce, query_group, wait_caught_up
    page.goto(f"{node.console_url}/#/sql")
    page.wait_for_selector("#sql-streams")

    def run(text):
        page.fill("#sql-editor", text)
        page.click("#sql-run")

    run("CREATE STREAM console_s (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='console-sql', VALUE_FORMAT='JSON', PARTITIONS=1);")
    page.wait_for_function("document.getElementById('sql-streams')?.textContent?.includes('CONSOLE_S')")
    produce(node.bootstrap, "console-sql", [{"key": {"int": i}, "value": {"V": v}, "timestamp": 1000 + i}
                                            for i, v in enumerate(["a", "b", "a"])])
    # A push query streams rows into the table as confluent-kafka writes them.
    run("SELECT ID, V FROM console_s EMIT CHANGES;")
    page.wait_for_function("document.querySelectorAll('#sql-rows tbody tr').length === 3")
    assert rows(page, "#sql-rows") == [["0", "a"], ["1", "b"], ["2", "a"]]
    assert page.is_enabled("#sql-stop")
    produce(node.bootstrap, "console-sql", [{"key": {"int": 3}, "value": {"V": "c"}, "timestamp": 1003}])
    page.wait_for_function("document.querySelectorAll('#sql-rows tbody tr').length === 4")
    assert rows(page, "#sql-rows")[3] == ["3", "c"]
    shot(page, tmp_path, "sql-push")
    page.click("#sql-stop")
    assert page.inner_text("#sql-status") == "Stopped."

    run("CREATE TABLE console_t AS SELECT V, COUNT(*) AS N FROM console_s GROUP BY V;")
    page.wait_for_function("document.getElementById('sql-queries')?.textContent?.includes('CONSOLE_T')")
    assert "CONSOLE_T" in page.inner_text("#sql-tables")
    shows = httpx.post(f"{node.sql_url}/ksql", json={"ksql": "SHOW QUERIES;"}, timeout=30).json()
    qid = next(q["id"] for q in shows[0]["queries"] if q["sinks"] == ["CONSOLE_T"])
    assert qid in page.inner_text("#sql-queries")
    wait_caught_up(node.bootstrap, query_group("console_", qid), ["console-sql"])
    # A pull query runs to its end.
    run("SELECT V, N FROM console_t WHERE V = 'a';")
    page.wait_for_function("document.getElementById('sql-status')?.textContent?.includes('done')")
    assert rows(page, "#sql-rows") == [["a", "2"]]
    assert page.is_disabled("#sql-stop")
    shot(page, tmp_path, "sql-pull")
    run("SELECT * FROM no_such_stream EMIT CHANGES;")
    page.wait_for_selector("#sql-error")
    page.once("dialog", lambda d: d.accept())
    page.click(f"[data-terminate='{qid}']")
    wait_until(lambda: not httpx.post(f"{node.sql_url}/ksql", json={"ksql": "SHOW QUERIES;"},
                                      timeout=30).json()[0]["queries"], 30, what="the query to stop")


def test_security_page_acls_users_quotas_and_audit(node, page, tmp_path):
    from kafka import KafkaAdminClient
    from test_quotas import describe
    kadmin = admin(node.bootstrap)
    bob = AclBinding(ResourceType.TOPIC, "console-secret", ResourcePatternType.LITERAL, "User:bob", "*",
                     AclOperation.READ, AclPermissionType.ALLOW)
    kadmin.create_acls([bob])[bob].result(10)
    page.goto(f"{node.console_url}/#/security/acls")
    page.wait_for_selector("#acls")
    assert ["User:bob", "TOPIC", "console-secret", "LITERAL", "READ", "ALLOW", "*"] in [r[:7] for r in rows(page, "#acls")]
    page.fill("#acl-principal", "User:carol")
    page.fill("#acl-resource-name", "console-")
    page.select_option("#acl-pattern", "PREFIXED")
    page.select_option("#acl-operation", "WRITE")
    page.click("#create-acl-submit")
    page.wait_for_function("document.getElementById('acls')?.textContent?.includes('User:carol')")
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)

    def acls():
        return {(a.principal, a.name, a.resource_pattern_type.name, a.operation.name)
                for a in kadmin.describe_acls(everything).result(10)}
    assert ("User:carol", "console-", "PREFIXED", "WRITE") in acls()
    shot(page, tmp_path, "security-acls")
    page.once("dialog", lambda d: d.accept())
    page.click("[data-delete-acl='User:bob|console-secret|READ']")
    wait_until(lambda: ("User:bob", "console-secret", "LITERAL", "READ") not in acls(), what="bob's ACL to go")

    page.goto(f"{node.console_url}/#/security/users")
    page.wait_for_selector("#scram-users")
    page.fill("#scram-user", "console-alice")
    page.fill("#scram-password", "s3cret")
    page.select_option("#scram-mechanism", "SCRAM-SHA-512")
    page.fill("#scram-iterations", "8192")
    page.click("#scram-save")
    page.wait_for_function("document.getElementById('scram-users')?.textContent?.includes('console-alice')")
    creds = kadmin.describe_user_scram_credentials(["console-alice"])["console-alice"].result(10)
    assert [(c.mechanism.name, c.iterations) for c in creds.scram_credential_infos] == [("SCRAM_SHA_512", 8192)]
    shot(page, tmp_path, "security-users")

    page.goto(f"{node.console_url}/#/security/quotas")
    page.wait_for_selector("#quotas")
    page.select_option("#quota-entity-type", "client-id")
    page.fill("#quota-entity-name", "console-app")
    page.select_option("#quota-key", "producer_byte_rate")
    page.fill("#quota-value", "2048")
    page.click("#quota-save")
    page.wait_for_function("document.getElementById('quotas')?.textContent?.includes('console-app')")
    kp = KafkaAdminClient(bootstrap_servers=node.bootstrap, client_id="console-quota-check")
    try:
        assert describe(kp, [])[(("client-id", "console-app"),)] == {"producer_byte_rate": 2048.0}
        shot(page, tmp_path, "security-quotas")
        page.click("[data-delete-quota='client-id=console-app|producer_byte_rate']")
        wait_until(lambda: (("client-id", "console-app"),) not in describe(kp, []), what="the quota to go")
    finally:
        kp.close()

    # The audit trail has the SCRAM change, found by searching.
    page.goto(f"{node.console_url}/#/security/audit")
    page.wait_for_selector("#audit")
    page.fill("#audit-search", "console-alice")
    page.click("#audit-go")
    page.wait_for_function("document.querySelectorAll('#audit tbody tr').length >= 1")
    assert all("console-alice" in " ".join(r) for r in rows(page, "#audit"))
    shot(page, tmp_path, "security-audit")


def test_pages_say_when_a_service_is_off(weir_binary, _broker_root, page, tmp_path):
    """A console without Connect or SQL marks them off and says so."""
    f = BrokerFactory(weir_binary, _broker_root)
    try:
        b = f("--console-listen", f"{HOST}:{free_port()}", name="console-bare")
        url = f"http://{b.args[b.args.index('--console-listen') + 1]}"
        page.goto(f"{url}/#/connect")
        page.wait_for_selector(".notice")
        assert "Kafka Connect is off" in page.inner_text(".notice")
        page.wait_for_selector("#nav a.off[data-page=sql]")
        assert not page.locator("#nav a.off[data-page=schemas]").count()
        shot(page, tmp_path, "connect-off")
    finally:
        f.cleanup()


def test_each_user_sees_what_their_acls_allow(broker_factory, tmp_path, page):
    """With HTTP basic authentication the console acts as the signed-in
    user (SASL/PLAIN with their password), so the broker applies that
    user's ACLs to what the pages show."""
    import base64
    from confluent_kafka.admin import AdminClient, NewTopic
    from security_util import start_secure_broker
    users = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}
    sb = start_secure_broker(broker_factory, tmp_path, users=users, protocols=("PLAINTEXT", "SASL_PLAINTEXT"),
                             sets={"authorizer.class.name": "StandardAuthorizer", "super.users": "User:admin",
                                   "http.authentication": "basic"}, start=False)
    port = free_port()
    sb.broker.args += ["--console-listen", f"{HOST}:{port}",
                       "--client-set", "console.security.protocol=SASL_PLAINTEXT",
                       "--client-set", "console.sasl.mechanism=PLAIN"]
    sb.broker.start()
    as_admin = AdminClient(sb.client_config("SASL_PLAINTEXT", "admin", "admin-pw"))
    for t in ("team-orders", "secret-topic"):
        as_admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    grant = AclBinding(ResourceType.TOPIC, "team-", ResourcePatternType.PREFIXED, "User:alice", "*",
                       AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    as_admin.create_acls([grant])[grant].result(10)
    url = f"http://{HOST}:{port}"
    assert httpx.get(f"{url}/api/rest/v3/clusters", timeout=10).status_code == 401

    def topics_as(user):
        token = base64.b64encode(f"{user}:{users[user]}".encode()).decode()
        page.set_extra_http_headers({"Authorization": f"Basic {token}"})
        page.goto(f"{url}/?as={user}#/topics")
        page.wait_for_selector("#topics, main p.muted")
        return [r[0] for r in rows(page, "#topics")] if page.locator("#topics").count() else []
    assert topics_as("alice") == ["team-orders"]
    shot(page, tmp_path, "topics-as-alice")
    assert topics_as("bob") == []
    assert {"team-orders", "secret-topic"} <= set(topics_as("admin"))


def test_message_browser_decodes_avro_json_schema_and_protobuf(node, page, tmp_path):
    """Records confluent-kafka's Avro, JSON Schema and Protobuf serializers
    wrote show decoded through the node's registry."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from test_rest_proxy import READING_JSON, _reading_class
    kadmin = admin(node.bootstrap)
    sr = SchemaRegistryClient({"url": f"http://{HOST}:{node.registry_port}"})
    Reading = _reading_class()
    avro = {"type": "record", "name": "Reading", "namespace": "weir.console", "fields": [
        {"name": "sensor", "type": "string"}, {"name": "count", "type": "int"}, {"name": "value", "type": "double"}]}
    cases = {
        "avro": (AvroSerializer(sr, json.dumps(avro)), dict),
        "jsonschema": (JSONSerializer(READING_JSON, sr), dict),
        "protobuf": (ProtobufSerializer(Reading, sr, {"use.deprecated.format": False}), lambda v: Reading(**v)),
    }
    p = Producer({"bootstrap.servers": node.bootstrap})
    for kind, (ser, make) in cases.items():
        topic = f"console-{kind}"
        create_topic(kadmin, topic)
        v = {"sensor": f"s-{kind}", "count": 3, "value": 1.5}
        p.produce(topic, key=b"k", value=ser(make(v), SerializationContext(topic, MessageField.VALUE)))
        assert p.flush(30) == 0
        page.goto(f"{node.console_url}/#/topics/{topic}")
        page.wait_for_selector("#partitions")
        page.click("[data-tab=messages]")
        page.wait_for_selector("#records")
        assert page.locator("#records td .kind").nth(1).text_content().startswith(kind), kind
        text = page.inner_text("#records")
        assert f'"sensor": "s-{kind}"' in text and '"count": 3' in text and '"value": 1.5' in text, text
        shot(page, tmp_path, f"browser-{kind}")

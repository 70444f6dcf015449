"""The web console in a real headless browser: Debian's chromium driven by
Playwright, against a node serving the console (`--console-listen`) with
data written by kcat and confluent-kafka. Each page is checked against
what the clients wrote, each action against what the clients see
afterwards, and a screenshot of each page is saved in the test's
temporary directory (the path is printed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

import pytest
from confluent_kafka.admin import ConfigResource

from conftest import HOST, BrokerFactory, free_port
from weir_helpers import admin, consume_range, create_topic, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not __import__("os").path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def node(weir_binary, _broker_root):
    f = BrokerFactory(weir_binary, _broker_root)
    b = f("--console-listen", f"{HOST}:{free_port()}", name="console-node")
    b.console_url = f"http://{b.args[b.args.index('--console-listen') + 1]}"
    yield b
    f.cleanup()


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
    page.wait_for_function("document.getElementById('produce-result').textContent.includes('offset 2')")
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

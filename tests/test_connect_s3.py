"""The S3 sink (`io.confluent.connect.s3.S3SinkConnector`) against a real
S3-compatible server (moto, the `moto_server` fixture), read back with
boto3, pyarrow and fastavro.

- 1,000,000 records in JSON with the worker killed -9 in the middle, and
  1,000,000 in Parquet: every record in exactly one object, objects named
  as Confluent names them.
- Partitioners' paths (Field, TimeBased), `flush.size` and the offsets it
  commits, `rotate.interval.ms`, `rotate.schedule.interval.ms`, Avro.
- A large object goes up as a multipart upload of `s3.part.size` parts.
- A bucket that does not exist and an unreachable endpoint fail the task
  with a trace naming the cause; fixed and restarted, nothing is lost.
"""

from __future__ import annotations

import io
import json
import time

import fastavro
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import free_port
from connect_helpers import ConnectWorker
from weir_helpers import create_topic, wait_until

FAST = {"offset.flush.interval.ms": "500", "heartbeat.interval.ms": "1000",
        "session.timeout.ms": "6000"}
JSON = "org.apache.kafka.connect.json.JsonConverter"
BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"
FMT = "io.confluent.connect.s3.format."
PART = "io.confluent.connect.storage.partitioner."


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("s3"), module_broker.bootstrap,
                      sets=FAST).start()
    yield w
    w.kill()


def sink_config(s3, bucket: str, topic: str, **extra) -> dict:
    cfg = {"connector.class": "io.confluent.connect.s3.S3SinkConnector", "topics": topic,
           "s3.bucket.name": bucket, "s3.region": s3.REGION, "store.url": s3.url,
           "aws.access.key.id": s3.ACCESS_KEY, "aws.secret.access.key": s3.SECRET_KEY,
           "storage.class": "io.confluent.connect.s3.storage.S3Storage",
           "format.class": FMT + "json.JsonFormat", "flush.size": "3",
           "value.converter": JSON, "value.converter.schemas.enable": "false",
           "key.converter": "org.apache.kafka.connect.storage.StringConverter"}
    cfg.update({k.replace("_", "."): v for k, v in extra.items()})
    return cfg


def keys(s3, bucket: str) -> list[str]:
    out = []
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def body(s3, bucket: str, key: str) -> bytes:
    return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def lines(s3, bucket: str, key: str) -> list:
    return [json.loads(line) for line in body(s3, bucket, key).splitlines()]


def produce(bootstrap: str, topic: str, records) -> None:
    """records: (partition, value bytes, timestamp ms or None)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50,
                  "batch.num.messages": 10000, "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1_048_576})
    for i, (part, value, ts) in enumerate(records):
        kw = {"timestamp": ts} if ts is not None else {}
        while True:
            try:
                p.produce(topic, value, partition=part, **kw)
                break
            except BufferError:
                p.poll(0.05)
        if i % 20000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def committed(bootstrap: str, connector: str, topic: str, partitions: int = 1) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"connect-{connector}"})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        c.close()


def new_topic(broker, name: str, partitions: int = 1) -> str:
    create_topic(AdminClient({"bootstrap.servers": broker.bootstrap}), name, partitions)
    return name


def test_million_json_records_exactly_once_across_kill9(module_broker, moto_server, weir_binary,
                                                        tmp_path, topic_name, monkeypatch):
    """1,000,000 records over two partitions, flush.size 50,000; the worker
    is killed -9 once objects exist and started again. Credentials come from
    the AWS_* environment here."""
    s3, bucket = moto_server, moto_server.create_bucket()
    topic = new_topic(module_broker, topic_name, 2)
    n = 1_000_000
    produce(module_broker.bootstrap, topic,
            ((i % 2, b'{"id":%d,"v":"r%d"}' % (i, i), None) for i in range(n)))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
    sets = {**FAST, "group.id": "s3mil", "config.storage.topic": "s3mil-configs",
            "offset.storage.topic": "s3mil-offsets", "status.storage.topic": "s3mil-status"}
    w = ConnectWorker(weir_binary, tmp_path / "w", module_broker.bootstrap, sets=sets,
                      name="s3mil").start()
    try:
        cfg = sink_config(s3, bucket, topic, flush_size="50000")
        del cfg["aws.access.key.id"], cfg["aws.secret.access.key"]
        w.create("s3mil", cfg)
        wait_until(lambda: len(keys(s3, bucket)) >= 4, 120, what="the first objects")
        w.kill()
        expected = sorted(f"topics/{topic}/partition={p}/{topic}+{p}+{o:010d}.json"
                          for p in (0, 1) for o in range(0, n // 2, 50000))
        # Otherwise the run below would prove nothing about recovery.
        assert len(keys(s3, bucket)) < len(expected), "the sink finished before the kill"
        w.start()
        wait_until(lambda: keys(s3, bucket) == expected, 240, interval=1,
                   what="every object")
        wait_until(lambda: committed(module_broker.bootstrap, "s3mil", topic, 2)
                   == [n // 2, n // 2], 30, what="offsets of every record committed")
        ids = []
        for k in expected:
            part = int(k.split("+")[1])
            for line in body(s3, bucket, k).splitlines():
                rec = json.loads(line)
                assert rec["id"] % 2 == part
                ids.append(rec["id"])
        assert len(ids) == n
        assert sorted(ids) == list(range(n))
    finally:
        w.kill()


def test_million_parquet_records_read_with_pyarrow(worker, module_broker, moto_server,
                                                   topic_name):
    """1,000,000 structs (JsonConverter with schemas) into Parquet objects
    whose columns are the struct's fields."""
    s3, bucket = moto_server, moto_server.create_bucket()
    topic = new_topic(module_broker, topic_name)
    n = 1_000_000
    schema = ('{"type":"struct","fields":[{"field":"id","type":"int64"},'
              '{"field":"name","type":"string","optional":true},'
              '{"field":"at","type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}]}')

    def value(i):
        name = "null" if i % 10 == 0 else f'"n{i}"'
        return f'{{"schema":{schema},"payload":{{"id":{i},"name":{name},"at":{i}}}}}'.encode()

    produce(module_broker.bootstrap, topic, ((0, value(i), None) for i in range(n)))
    worker.create("s3pq", sink_config(s3, bucket, topic, flush_size="100000",
                                      format_class=FMT + "parquet.ParquetFormat",
                                      **{"value.converter.schemas.enable": "true"}))
    expected = [f"topics/{topic}/partition=0/{topic}+0+{o:010d}.snappy.parquet"
                for o in range(0, n, 100000)]
    wait_until(lambda: keys(s3, bucket) == expected, 240, interval=1, what="every object")
    ids = []
    for k in expected:
        t = pq.read_table(io.BytesIO(body(s3, bucket, k)))
        assert t.schema.names == ["id", "name", "at"]
        assert str(t.schema.field("id").type) == "int64"
        assert not t.schema.field("id").nullable and t.schema.field("name").nullable
        assert str(t.schema.field("at").type) == "timestamp[ms, tz=UTC]"
        cols = t.to_pydict()
        ids += cols["id"]
        first = cols["id"][0]
        assert cols["name"][:2] == [None if first % 10 == 0 else f"n{first}", f"n{first + 1}"]
        assert int(t.column("at")[0].value) == first
    assert ids == list(range(n))
    assert worker.delete("/connectors/s3pq").status_code == 204


def test_flush_size_commits_only_uploaded_records(worker, module_broker, moto_server,
                                                  topic_name):
    """10 records, flush.size 3: objects at 0, 3 and 6; the tenth record's
    file stays open, so the committed offset is 9, not 10."""
    s3, bucket = moto_server, moto_server.create_bucket()
    topic = new_topic(module_broker, topic_name)
    produce(module_broker.bootstrap, topic,
            ((0, json.dumps({"i": i}).encode(), None) for i in range(10)))
    worker.create("s3flush", sink_config(s3, bucket, topic))
    expected = [f"topics/{topic}/partition=0/{topic}+0+{o:010d}.json" for o in (0, 3, 6)]
    wait_until(lambda: keys(s3, bucket) == expected, 60, what="three objects")
    assert body(s3, bucket, expected[1]) == b'{"i":3}\n{"i":4}\n{"i":5}\n'
    wait_until(lambda: committed(module_broker.bootstrap, "s3flush", topic) == [9], 30,
               what="offset 9 committed")
    time.sleep(1.5)
    assert keys(s3, bucket) == expected
    assert committed(module_broker.bootstrap, "s3flush", topic) == [9]
    assert worker.delete("/connectors/s3flush").status_code == 204


def test_field_and_time_based_paths_and_rotation(worker, module_broker, moto_server, topic_name):
    s3, bucket = moto_server, moto_server.create_bucket()
    topic = new_topic(module_broker, topic_name)
    hour = 3_600_000
    t0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z
    # Record times: two in hour 0 (5 s apart), one in hour 1, then one 4 s on.
    times = [t0, t0 + 5000, t0 + hour, t0 + hour + 4000]
    regions = ["eu", "us", "eu", "eu"]
    produce(module_broker.bootstrap, topic,
            ((0, json.dumps({"region": r, "n": i}).encode(), ts)
             for i, (r, ts) in enumerate(zip(regions, times))))
    produce(module_broker.bootstrap, topic, [(0, b'{"region":"eu","n":4}', t0 + 2 * hour)])
    worker.create("s3field", sink_config(s3, bucket, topic, topics_dir="by-field",
                                         partitioner_class=PART + "FieldPartitioner",
                                         **{"partition.field.name": "region",
                                            "flush.size": "2"}))
    # Time-based, hourly paths in UTC+1 from the record's time; a file also
    # rotates when a record is 3 s past its first (rotate.interval.ms).
    worker.create("s3time", sink_config(s3, bucket, topic, topics_dir="by-time",
                                        partitioner_class=PART + "TimeBasedPartitioner",
                                        **{"path.format": "'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH",
                                           "partition.duration.ms": str(hour),
                                           "locale": "en-US", "timezone": "+01:00",
                                           "timestamp.extractor": "Record",
                                           "rotate.interval.ms": "3000",
                                           "flush.size": "100"}))
    # A named zone: 2024-03-01T00:00Z is 19:00 on February 29th in New York.
    worker.create("s3zone", sink_config(s3, bucket, topic, topics_dir="by-zone",
                                        partitioner_class=PART + "HourlyPartitioner",
                                        **{"locale": "en-US", "timezone": "America/New_York",
                                           "timestamp.extractor": "Record",
                                           "flush.size": "1"}))
    field = [f"by-field/{topic}/region=eu/{topic}+0+{o:010d}.json" for o in (0, 3)]
    h = "year=2024/month=03/day=01/hour="
    timed = [f"by-time/{topic}/{h}01/{topic}+0+0000000000.json",
             f"by-time/{topic}/{h}02/{topic}+0+0000000002.json"]
    ny = "year=2024/month=02/day=29/hour="
    zoned = [f"by-zone/{topic}/{ny}{hh}/{topic}+0+{o:010d}.json"
             for hh, o in (("19", 0), ("19", 1), ("20", 2), ("20", 3), ("21", 4))]
    wait_until(lambda: keys(s3, bucket) == sorted(field + timed + zoned), 60,
               what="the objects")
    assert lines(s3, bucket, field[1]) == [{"region": "eu", "n": 3}, {"region": "eu", "n": 4}]
    # Record 1 came 5 s after record 0 (rotation), record 3 4 s after record
    # 2; the files of records 1, 3 and 4 stay open (nothing later in them).
    assert lines(s3, bucket, timed[0]) == [{"region": "eu", "n": 0}]
    assert lines(s3, bucket, timed[1]) == [{"region": "eu", "n": 2}]
    for name in ("s3field", "s3time", "s3zone"):
        assert worker.delete(f"/connectors/{name}").status_code == 204


def test_rotate_schedule_interval_closes_idle_files(worker, module_broker, moto_server,
                                                     topic_name):
    s3, bucket = moto_server, moto_server.create_bucket()
    topic = new_topic(module_broker, topic_name)
    produce(module_broker.bootstrap, topic,
            ((0, json.dumps({"i": i}).encode(), None) for i in range(5)))
    worker.create("s3sched", sink_config(s3, bucket, topic, flush_size="1000",
                                         **{"rotate.schedule.interval.ms": "2000",
                                            "timezone": "UTC"}))
    key = f"topics/{topic}/partition=0/{topic}+0+0000000000.json"
    wait_until(lambda: keys(s3, bucket) == [key], 30, what="the scheduled rotation")
    assert body(s3, bucket, key).count(b"\n") == 5
    wait_until(lambda: committed(module_broker.bootstrap, "s3sched", topic) == [5], 30,
               what="offset 5 committed")
    assert worker.delete("/connectors/s3sched").status_code == 204


def test_avro_objects(worker, module_broker, moto_server, topic_name):
    s3, bucket = moto_server, moto_server.create_bucket()
    topic = new_topic(module_broker, topic_name)
    schema = '{"type":"struct","fields":[{"field":"id","type":"int32"}]}'
    produce(module_broker.bootstrap, topic,
            ((0, f'{{"schema":{schema},"payload":{{"id":{i}}}}}'.encode(), None)
             for i in range(4)))
    worker.create("s3avro", sink_config(s3, bucket, topic, flush_size="2",
                                        format_class=FMT + "avro.AvroFormat",
                                        **{"value.converter.schemas.enable": "true"}))
    expected = [f"topics/{topic}/partition=0/{topic}+0+{o:010d}.avro" for o in (0, 2)]
    wait_until(lambda: keys(s3, bucket) == expected, 60, what="two Avro objects")
    rows = [r for k in expected for r in fastavro.reader(io.BytesIO(body(s3, bucket, k)))]
    assert rows == [{"id": i} for i in range(4)]
    assert worker.delete("/connectors/s3avro").status_code == 204


def test_large_object_is_a_multipart_upload(worker, module_broker, moto_server, topic_name):
    """120 records of 100 KiB with ByteArrayFormat: one 12 MiB object sent
    in 5 MiB parts (its ETag counts the parts)."""
    s3, bucket = moto_server, moto_server.create_bucket()
    topic = new_topic(module_broker, topic_name)
    values = [bytes([65 + i % 26]) * 102_400 for i in range(120)]
    produce(module_broker.bootstrap, topic, ((0, v, None) for v in values))
    worker.create("s3multi", sink_config(s3, bucket, topic, flush_size="120",
                                         format_class=FMT + "bytearray.ByteArrayFormat",
                                         value_converter=BYTES,
                                         **{"s3.part.size": str(5 * 1024 * 1024)}))
    key = f"topics/{topic}/partition=0/{topic}+0+0000000000.bin"
    wait_until(lambda: keys(s3, bucket) == [key], 60, what="the object")
    assert body(s3, bucket, key) == b"".join(v + b"\n" for v in values)
    etag = s3.client().head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    assert etag.endswith("-3"), etag
    assert worker.delete("/connectors/s3multi").status_code == 204


def task_trace(worker, name: str) -> str:
    def failed():
        ts = worker.status(name)["tasks"]
        return ts and ts[0]["state"] == "FAILED" and ts[0]
    return wait_until(failed, 90, what=f"{name}'s task FAILED").get("trace", "")


def test_missing_bucket_and_unreachable_endpoint_fail_then_recover(worker, module_broker,
                                                                   moto_server, topic_name):
    s3 = moto_server
    topic = new_topic(module_broker, topic_name)
    produce(module_broker.bootstrap, topic,
            ((0, json.dumps({"i": i}).encode(), None) for i in range(6)))
    missing = f"missing-{topic_name[-8:]}"
    worker.create("s3nobucket", sink_config(s3, missing, topic))
    trace = task_trace(worker, "s3nobucket")
    assert "Non-existent S3 bucket" in trace and missing in trace, trace
    s3.create_bucket(missing)
    assert worker.post("/connectors/s3nobucket/tasks/0/restart").status_code == 204
    expected = [f"topics/{topic}/partition=0/{topic}+0+{o:010d}.json" for o in (0, 3)]
    wait_until(lambda: keys(s3, missing) == expected, 60, what="the objects after the fix")

    bucket = s3.create_bucket()
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = sink_config(s3, bucket, topic, **{"store.url": dead, "s3.part.retries": "1",
                                            "s3.retry.backoff.ms": "50"})
    worker.create("s3unreach", cfg)
    trace = task_trace(worker, "s3unreach")
    assert dead.split("//")[1] in trace and "onnect" in trace, trace
    cfg["store.url"] = s3.url
    assert worker.put("/connectors/s3unreach/config", cfg).status_code == 200
    wait_until(lambda: keys(s3, bucket) == expected, 60, what="the objects after the fix")
    got = [json.loads(line)["i"] for k in expected for line in body(s3, bucket, k).splitlines()]
    assert got == list(range(6))
    for name in ("s3nobucket", "s3unreach"):
        assert worker.delete(f"/connectors/{name}").status_code == 204

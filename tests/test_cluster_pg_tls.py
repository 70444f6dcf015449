"""Cluster mode over TLS to PostgreSQL: the `--cluster` URL's `sslmode`,
`sslrootcert` (and `sslcert`, `sslkey`) with libpq's meanings, against
the `hostssl`-only PostgreSQL of test_pg_tls.py (its certificate names
the DNS name `localhost` only, so `127.0.0.1` is a wrong host name)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from test_cluster import create_topic, read_partition, wait_for
from security_util import client_cert
from test_pg_tls import tls_pg  # noqa: F401 (the fixture)


def cluster_url(pg, db: str, host: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"postgres://{pg.user}@{host}:{pg.port}/{db}?{query}"


def s3_env(moto_server) -> dict:
    return {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_REGION": moto_server.REGION,
        "AWS_ACCESS_KEY_ID": moto_server.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": moto_server.SECRET_KEY,
    }


def test_three_brokers_with_verify_full(broker_factory, tls_pg, moto_server, topic_name):  # noqa: F811
    db = tls_pg.create_db(f"c{uuid.uuid4().hex[:10]}")
    bucket = moto_server.create_bucket()
    url = cluster_url(tls_pg, db, "localhost", sslmode="verify-full",
                      sslrootcert=str(tls_pg.certs.ca))
    brokers = [
        broker_factory("--cluster", url, "--object-store", f"s3://{bucket}/weir",
                       "--set", f"node.id={i}", name=f"tls{i}", env=s3_env(moto_server))
        for i in (1, 2, 3)
    ]
    a, b, c = brokers
    create_topic(a.bootstrap, topic_name, 3)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    acked: dict[int, list[tuple[int, bytes]]] = {0: [], 1: [], 2: []}

    def on_ack(err, msg):
        assert err is None, err
        acked[msg.partition()].append((msg.offset(), msg.value()))

    for i in range(150):
        p.produce(topic_name, value=f"v{i}".encode(), partition=i % 3, on_delivery=on_ack)
        p.poll(0)
    assert p.flush(30) == 0
    for part in range(3):
        want = sorted(acked[part])
        assert [o for o, _ in want] == list(range(50)), part
        # Read back from the broker the producer never talked to.
        assert read_partition(c.bootstrap, topic_name, part, 50) == want
    # Every broker's sessions (the shared connection and the LISTEN one
    # at least) are encrypted; the server would refuse plaintext, but
    # see it.
    sessions = wait_for(lambda: (lambda r: r if len(r) >= 6 else None)(tls_pg.rows(
        "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        f"WHERE a.datname = '{db}' AND a.backend_type = 'client backend'")),
        30, "the brokers' sessions")
    assert {s for (s,) in sessions} == {"t"}, sessions


def test_a_host_name_the_certificate_does_not_name_is_refused_at_start(
        broker_factory, tls_pg, moto_server):  # noqa: F811
    db = tls_pg.create_db(f"c{uuid.uuid4().hex[:10]}")
    bucket = moto_server.create_bucket()
    url = cluster_url(tls_pg, db, "127.0.0.1", sslmode="verify-full",
                      sslrootcert=str(tls_pg.certs.ca))
    b = broker_factory("--cluster", url, "--object-store", f"s3://{bucket}/weir",
                       name="wrong-host", env=s3_env(moto_server), start=False)
    b.start_process()
    assert b.proc.wait(60) != 0
    log = b.log_text()
    assert "not valid for name" in log and "127.0.0.1" in log and "verify-full" in log, log
    # Without a root certificate verify-full cannot check anything.
    url = cluster_url(tls_pg, db, "localhost", sslmode="verify-full")
    b = broker_factory("--cluster", url, "--object-store", f"s3://{bucket}/weir",
                       name="no-root", env=s3_env(moto_server), start=False)
    b.start_process()
    assert b.proc.wait(60) != 0
    assert "sslrootcert" in b.log_text(), b.log_text()


def test_client_certificate_authentication(broker_factory, tls_pg, moto_server, topic_name):  # noqa: F811
    """`certuser` may log in only with a certificate (pg_hba `cert`)."""
    db = tls_pg.create_db(f"c{uuid.uuid4().hex[:10]}")
    bucket = moto_server.create_bucket()
    cert, key = client_cert(tls_pg.certs, cn="certuser")
    base = {"sslmode": "verify-full", "sslrootcert": str(tls_pg.certs.ca)}
    url = cluster_url(tls_pg, db, "localhost", **base).replace(f"{tls_pg.user}@", "certuser@")
    # Without the certificate PostgreSQL refuses the login, and the broker
    # stops at start with its message.
    b = broker_factory("--cluster", url, "--object-store", f"s3://{bucket}/weir",
                       name="no-cert", env=s3_env(moto_server), start=False)
    b.start_process()
    assert b.proc.wait(60) != 0
    assert "requires a valid client certificate" in b.log_text(), b.log_text()
    url = cluster_url(tls_pg, db, "localhost", **base, sslcert=str(cert),
                      sslkey=str(key)).replace(f"{tls_pg.user}@", "certuser@")
    b = broker_factory("--cluster", url, "--object-store", f"s3://{bucket}/weir",
                       name="cert", env=s3_env(moto_server))
    create_topic(b.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce(topic_name, value=f"v{i}".encode())
    assert p.flush(30) == 0
    got = read_partition(b.bootstrap, topic_name, 0, 10)
    assert [v for _, v in got] == [f"v{i}".encode() for i in range(10)]
    dns = tls_pg.rows(
        "SELECT DISTINCT s.client_dn FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        f"WHERE a.datname = '{db}' AND a.backend_type = 'client backend'")
    assert len(dns) == 1 and "CN=certuser" in dns[0][0], dns

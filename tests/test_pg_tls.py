"""TLS to PostgreSQL for the CDC source (`database.sslmode`,
`database.sslrootcert`, `database.sslcert`, `database.sslkey`) and for the
JDBC sink (the same settings as `connection.url` parameters).

The session's shared PostgreSQL has no TLS; this module starts a second,
throwaway one with `ssl=on`, a server certificate made here (issued by a
test CA for the DNS name `localhost` only, so `127.0.0.1` is a wrong host
name), and a pg_hba.conf that accepts TCP connections over TLS only
(`hostssl`), for the `postgres` user by trust and for `certuser` by client
certificate (`cert`).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from conftest import free_port
from connect_helpers import ConnectWorker
from security_util import _key, _name, _write_cert, _write_key, client_cert, make_certs
from test_cdc_postgres import FAST, connector_config, consume
from weir_helpers import wait_until

HBA = """local all all trust
hostssl all certuser 127.0.0.1/32 cert
hostssl replication certuser 127.0.0.1/32 cert
hostssl all all 127.0.0.1/32 trust
hostssl replication all 127.0.0.1/32 trust
"""


def localhost_cert(certs, dir: Path) -> tuple[Path, Path]:
    """A server certificate for the DNS name localhost only."""
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name("localhost", o="Weir")).issuer_name(certs.ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(certs.ca_key, hashes.SHA256()))
    c, k = dir / "pg-server.pem", dir / "pg-server.key"
    _write_cert(c, cert)
    _write_key(k, key)
    return c, k


@pytest.fixture(scope="module")
def tls_pg(postgres, tmp_path_factory):
    """A PostgreSQL with ssl=on and hostssl-only TCP access, and its CA.
    (Depends on `postgres` so a missing PostgreSQL skips or fails alike.)"""
    from pg_helpers import Postgres
    certs = make_certs(tmp_path_factory.mktemp("pg-ca"))
    pg = Postgres(free_port())
    tls = pg.root / "tls"
    tls.mkdir()
    cert, key = localhost_cert(certs, tls)
    shutil.copy(certs.ca, tls / "ca.pem")
    os.chmod(key, 0o600)
    if pg.as_user:
        for p in (pg.root, tls, cert, key, tls / "ca.pem"):
            shutil.chown(p, "postgres")
    pg.start(extra_opts=f"-c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key} "
                        f"-c ssl_ca_file={tls / 'ca.pem'}", hba=HBA)
    pg.sql("CREATE ROLE certuser LOGIN SUPERUSER REPLICATION")
    pg.certs = certs
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def worker(module_broker, weir_binary, tmp_path_factory):
    w = ConnectWorker(weir_binary, tmp_path_factory.mktemp("pgtls"), module_broker.bootstrap,
                      sets=FAST).start()
    yield w
    w.kill()


def new_db(pg) -> str:
    name = pg.create_db(f"tls_{uuid.uuid4().hex[:8]}")
    pg.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');", name)
    return name


def failed_trace(worker, name: str) -> str:
    st = wait_until(lambda: (lambda s: s if s["tasks"] and s["tasks"][0]["state"] == "FAILED"
                             else None)(worker.status(name)), 60, what=f"{name}'s task failed")
    return st["tasks"][0]["trace"]


def streams(worker, bootstrap, pg, dbname, prefix, cfg) -> None:
    """The connector runs, snapshots row 1 and streams row 2."""
    worker.create(prefix, cfg)
    worker.wait_state(prefix)
    pg.sql("INSERT INTO t VALUES (2, 'b')", dbname)
    recs = consume(bootstrap, [f"{prefix}.public.t"], 2)
    assert sorted(json.loads(m.key())["payload"]["id"] for m in recs) == [1, 2]


def ssl_of_backends(pg, dbname: str) -> list[tuple]:
    """(backend_type, ssl) of the connector's backends on `dbname`."""
    return sorted(pg.rows(
        "SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        f"WHERE a.application_name = 'weir-connect' AND a.datname = '{dbname}'"))


def test_require_streams_over_tls(worker, module_broker, tls_pg):
    name = new_db(tls_pg)
    cfg = connector_config(tls_pg, name, "req", **{"database.sslmode": "require"})
    streams(worker, module_broker.bootstrap, tls_pg, name, "req", cfg)
    # Both the query connection and the replication connection are
    # encrypted (the server would refuse them otherwise, but see it).
    assert ssl_of_backends(tls_pg, name) == [("client backend", "t"), ("walsender", "t")]
    worker.delete("/connectors/req")


def test_prefer_uses_tls_when_offered(worker, module_broker, tls_pg):
    name = new_db(tls_pg)
    streams(worker, module_broker.bootstrap, tls_pg, name, "pref",
            connector_config(tls_pg, name, "pref"))
    assert ssl_of_backends(tls_pg, name) == [("client backend", "t"), ("walsender", "t")]
    worker.delete("/connectors/pref")


def test_verify_full_checks_the_root_and_the_host_name(worker, module_broker, tls_pg,
                                                       tmp_path):
    name = new_db(tls_pg)
    full = {"database.sslmode": "verify-full", "database.sslrootcert": str(tls_pg.certs.ca)}
    # The certificate names localhost, not 127.0.0.1.
    cfg = connector_config(tls_pg, name, "vfhost", **full)
    worker.create("vfhost", cfg)
    trace = failed_trace(worker, "vfhost")
    assert "not valid for name" in trace and "127.0.0.1" in trace, trace
    worker.delete("/connectors/vfhost")
    # Another CA's root.
    other = make_certs(tmp_path / "other", ca_name="Other CA")
    cfg = connector_config(tls_pg, name, "vfroot", **{
        **full, "database.hostname": "localhost", "database.sslrootcert": str(other.ca)})
    worker.create("vfroot", cfg)
    trace = failed_trace(worker, "vfroot")
    assert "UnknownIssuer" in trace and "verify-full" in trace, trace
    worker.delete("/connectors/vfroot")
    # verify-ca checks the chain only: 127.0.0.1 is fine.
    name2 = new_db(tls_pg)
    streams(worker, module_broker.bootstrap, tls_pg, name2, "vca", connector_config(
        tls_pg, name2, "vca", **{"database.sslmode": "verify-ca",
                                  "database.sslrootcert": str(tls_pg.certs.ca)}))
    worker.delete("/connectors/vca")
    # The right root and host name.
    streams(worker, module_broker.bootstrap, tls_pg, name, "vf", connector_config(
        tls_pg, name, "vf", **full, **{"database.hostname": "localhost"}))
    assert ssl_of_backends(tls_pg, name) == [("client backend", "t"), ("walsender", "t")]
    worker.delete("/connectors/vf")


def test_disable_is_refused_by_a_hostssl_only_server(worker, tls_pg):
    name = new_db(tls_pg)
    worker.create("dis", connector_config(tls_pg, name, "dis",
                                          **{"database.sslmode": "disable"}))
    trace = failed_trace(worker, "dis")
    assert "no pg_hba.conf entry" in trace and "no encryption" in trace, trace
    worker.delete("/connectors/dis")


def test_client_certificate_authentication(worker, module_broker, tls_pg):
    name = new_db(tls_pg)
    base = {"database.user": "certuser", "database.sslmode": "verify-full",
            "database.hostname": "localhost", "database.sslrootcert": str(tls_pg.certs.ca)}
    # Without a certificate the server's cert rule refuses the login.
    worker.create("nocert", connector_config(tls_pg, name, "nocert", **base))
    trace = failed_trace(worker, "nocert")
    assert "connection requires a valid client certificate" in trace, trace
    worker.delete("/connectors/nocert")
    cert, key = client_cert(tls_pg.certs, cn="certuser")
    streams(worker, module_broker.bootstrap, tls_pg, name, "withcert", connector_config(
        tls_pg, name, "withcert", **base,
        **{"database.sslcert": str(cert), "database.sslkey": str(key)}))
    worker.delete("/connectors/withcert")


def test_unusable_tls_settings_fail_the_task_by_name(worker, tls_pg):
    name = new_db(tls_pg)
    worker.create("noroot", connector_config(tls_pg, name, "noroot",
                                             **{"database.sslmode": "verify-ca"}))
    trace = failed_trace(worker, "noroot")
    assert "database.sslrootcert" in trace and "verify-ca" in trace, trace
    worker.delete("/connectors/noroot")


def test_jdbc_sink_reads_tls_settings_from_its_url(worker, module_broker, tls_pg):
    """The JDBC sink's `connection.url` parameters as PgJDBC reads them:
    `sslmode`, `sslrootcert`, `sslcert`/`sslkey` (client certificate
    login), `currentSchema` and `ApplicationName`."""
    from test_jdbc_sink import key, produce, row

    name = new_db(tls_pg)
    tls_pg.sql("CREATE SCHEMA shop", name)
    topic = f"tls-orders-{uuid.uuid4().hex[:6]}"
    produce(module_broker.bootstrap, topic, [(key(i), row(i)) for i in range(1, 4)])
    cert, key_file = client_cert(tls_pg.certs, cn="certuser")
    base = {"connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "topics": topic, "table.name.format": "orders", "insert.mode": "upsert",
            "pk.mode": "record_key", "auto.create": "true", "max.retries": "0",
            "connection.user": "certuser"}

    def url(host: str, **params) -> str:
        return (f"jdbc:postgresql://{host}:{tls_pg.port}/{name}?"
                + "&".join(f"{k}={v}" for k, v in params.items()))

    full = {"sslmode": "verify-full", "sslrootcert": str(tls_pg.certs.ca),
            "sslcert": str(cert), "sslkey": str(key_file)}
    # verify-full against a host name the certificate does not carry.
    worker.create("jtls-host", {**base, "connection.url": url("127.0.0.1", **full)})
    trace = failed_trace(worker, "jtls-host")
    assert "not valid for name" in trace and "127.0.0.1" in trace, trace
    worker.delete("/connectors/jtls-host")
    # Plaintext, which this server refuses.
    worker.create("jtls-plain", {**base, "connection.url": url("localhost", sslmode="disable")})
    trace = failed_trace(worker, "jtls-plain")
    assert "no pg_hba.conf entry" in trace and "no encryption" in trace, trace
    worker.delete("/connectors/jtls-plain")
    # Without the client certificate the cert rule refuses certuser.
    no_cert = {k: v for k, v in full.items() if k not in ("sslcert", "sslkey")}
    worker.create("jtls-nocert", {**base, "connection.url": url("localhost", **no_cert)})
    trace = failed_trace(worker, "jtls-nocert")
    assert "connection requires a valid client certificate" in trace, trace
    worker.delete("/connectors/jtls-nocert")
    # Everything right: rows in shop.orders over an encrypted session.
    worker.create("jtls", {**base, "connection.url": url(
        "localhost", **full, currentSchema="shop", ApplicationName="weir-jdbc-tls")})
    wait_until(lambda: tls_pg.rows("SELECT id, name FROM shop.orders ORDER BY id", name)
               == [("1", "n1"), ("2", "n2"), ("3", "n3")] or None
               if tls_pg.rows("SELECT 1 FROM pg_tables WHERE schemaname = 'shop' "
                              "AND tablename = 'orders'", name) else None,
               60, what="the rows in shop.orders")
    assert tls_pg.rows(
        "SELECT a.usename, s.ssl, s.client_dn IS NOT NULL FROM pg_stat_activity a "
        "JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'weir-jdbc-tls' "
        f"AND a.datname = '{name}'") == [("certuser", "t", "t")]
    worker.delete("/connectors/jtls")

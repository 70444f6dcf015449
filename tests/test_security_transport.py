"""Transport security and authentication with real clients: listeners per
protocol, TLS (server and client certificates, reload), SASL PLAIN over
plaintext and TLS, re-authentication (KIP-368), and refusals that leave
the broker serving everyone else."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

import kafka_wire
from security_util import client_cert, make_certs, start_secure_broker, write_users

USER, PASSWORD = "alice", "alice-secret"


@pytest.fixture
def secure(broker_factory, tmp_path):
    return start_secure_broker(broker_factory, tmp_path, users={USER: PASSWORD, "bob": "bob-pw"})


def produce_and_consume(conf: dict, topic: str, n: int = 5) -> list[bytes]:
    p = Producer({**conf, "linger.ms": 0})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), key=b"k")
    assert p.flush(30) == 0, "messages left unsent"
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value())
    c.close()
    return got


def auth_fails(conf: dict) -> str:
    """Runs a metadata request that must fail to authenticate; returns the
    error text."""
    errors = []
    a = AdminClient({**conf, "error_cb": lambda e: errors.append(e)})
    with pytest.raises(KafkaException) as exc:
        a.list_topics(timeout=5)
    a.poll(1.0)  # serves error_cb
    return str(exc.value) + " " + " ".join(str(e) for e in errors)


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_confluent_kafka_produces_and_consumes_with_plain(secure, topic_name, listener):
    conf = secure.client_config(listener, USER, PASSWORD)
    got = produce_and_consume(conf, topic_name)
    assert got == [f"v{i}".encode() for i in range(5)]
    log = secure.broker.log_text()
    assert '"principal":"User:alice"' in log and '"outcome":"success"' in log


def test_confluent_kafka_over_ssl(secure, topic_name):
    got = produce_and_consume(secure.client_config("SSL"), topic_name)
    assert len(got) == 5


def test_metadata_advertises_the_listener_the_client_used(secure):
    for listener in ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"):
        a = AdminClient(secure.client_config(listener, USER, PASSWORD))
        md = a.list_topics(timeout=10)
        (b,) = md.brokers.values()
        assert (b.host, b.port) == ("127.0.0.1", secure.ports[listener]), listener


@pytest.mark.parametrize("user,password", [(USER, "wrong"), ("mallory", PASSWORD), (USER, PASSWORD + "x")])
def test_bad_credentials_are_refused_and_the_broker_serves_others(secure, topic_name,
                                                                  user, password):
    text = auth_fails(secure.client_config("SASL_PLAINTEXT", user, password))
    assert "Authentication failed" in text or "SASL" in text, text
    # Nothing about which part was wrong, nor the password itself.
    assert PASSWORD not in text and "unknown user" not in text.lower()
    log = secure.broker.log_text()
    assert '"kind":"authentication"' in log and '"outcome":"failure"' in log
    got = produce_and_consume(secure.client_config("SASL_PLAINTEXT", USER, PASSWORD), topic_name, 2)
    assert len(got) == 2


def test_unsupported_mechanism_is_refused(broker_factory, tmp_path):
    # SCRAM is on by default; an explicit list without it turns it off.
    secure = start_secure_broker(broker_factory, tmp_path, users={USER: PASSWORD},
                                 sets={"sasl.enabled.mechanisms": "PLAIN"})
    text = auth_fails(secure.client_config("SASL_PLAINTEXT", USER, PASSWORD,
                                           mechanism="SCRAM-SHA-512"))
    assert "mechanism" in text.lower(), text


def test_requests_before_authentication_close_the_connection(secure):
    # ApiVersions is allowed before SASL; Metadata is not.
    s = kafka_wire.connect("127.0.0.1", secure.ports["SASL_PLAINTEXT"])
    s.sendall(kafka_wire.api_versions_request(1))
    resp = kafka_wire.read_frame(s)
    _, err, apis = kafka_wire.parse_api_versions_v0(resp)
    assert err == 0 and 17 in apis and 36 in apis  # SaslHandshake, SaslAuthenticate
    metadata_v1 = kafka_wire.frame(kafka_wire.request_header(3, 1, 2) + b"\xff\xff\xff\xff")
    s.sendall(metadata_v1)
    assert kafka_wire.wait_closed(s) == b""
    assert kafka_wire.api_versions_ok("127.0.0.1", secure.ports["SASL_PLAINTEXT"])


def test_plaintext_sent_to_a_tls_port_is_refused(secure, topic_name):
    for listener in ("SSL", "SASL_SSL"):
        s = kafka_wire.connect("127.0.0.1", secure.ports[listener])
        s.sendall(kafka_wire.api_versions_request(1))
        # The TLS layer rejects the bytes and closes; no Kafka answer.
        data = kafka_wire.wait_closed(s)
        assert not data.startswith(b"\x00\x00"), data[:16]
    # A plaintext client library fails too, and the broker keeps serving.
    a = AdminClient({"bootstrap.servers": secure.bootstrap("SSL"), "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        a.list_topics(timeout=4)
    assert len(produce_and_consume(secure.client_config("SSL"), topic_name, 1)) == 1


def test_mtls_maps_the_certificate_subject_to_the_principal(broker_factory, tmp_path, topic_name):
    certs = make_certs(tmp_path / "certs")
    sb = start_secure_broker(broker_factory, tmp_path, certs=certs, sets={
        "ssl.client.auth": "required",
        "ssl.truststore.location": str(certs.ca),
    })
    cert, key = client_cert(certs, "alice", "eng", "acme")
    conf = sb.client_config("SSL", **{"ssl.certificate.location": str(cert),
                                      "ssl.key.location": str(key)})
    assert len(produce_and_consume(conf, topic_name, 2)) == 2
    log = sb.broker.log_text()
    assert '"principal":"User:CN=alice,OU=eng,O=acme"' in log, log[-3000:]
    # Without a client certificate the handshake fails.
    a = AdminClient({**sb.client_config("SSL"), "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        a.list_topics(timeout=4)
    # A certificate from another CA is refused.
    other = make_certs(tmp_path / "other", ca_name="Other CA")
    bad_cert, bad_key = client_cert(other, "alice", "eng", "acme")
    a = AdminClient({**sb.client_config("SSL"), "ssl.certificate.location": str(bad_cert),
                     "ssl.key.location": str(bad_key), "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        a.list_topics(timeout=4)


def test_mapping_rules_shorten_the_principal(broker_factory, tmp_path, topic_name):
    certs = make_certs(tmp_path / "certs")
    sb = start_secure_broker(broker_factory, tmp_path, certs=certs, sets={
        "ssl.client.auth": "required",
        "ssl.truststore.location": str(certs.ca),
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]*),OU=eng,.*$/$1/U,DEFAULT",
    })
    cert, key = client_cert(certs, "carol", "eng", "acme")
    conf = sb.client_config("SSL", **{"ssl.certificate.location": str(cert),
                                      "ssl.key.location": str(key)})
    assert len(produce_and_consume(conf, topic_name, 1)) == 1
    assert '"principal":"User:CAROL"' in sb.broker.log_text()


def test_kafka_python_connects_with_ssl_and_sasl(secure, topic_name):
    from kafka import KafkaConsumer, KafkaProducer
    for listener in ("SASL_PLAINTEXT", "SSL", "SASL_SSL"):
        conf = secure.kafka_python_config(listener, USER, PASSWORD)
        topic = f"{topic_name}-{listener.lower()}"
        p = KafkaProducer(**conf)
        p.send(topic, b"hello").get(timeout=30)
        p.close()
        c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000,
                          group_id=None, **conf)
        values = [m.value for m in c]
        c.close()
        assert values == [b"hello"], listener


def test_kafka_python_wrong_password_is_refused(secure):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    with pytest.raises((KafkaError, Exception)) as exc:
        KafkaProducer(**secure.kafka_python_config("SASL_PLAINTEXT", USER, "nope"),
                      api_version_auto_timeout_ms=5000, request_timeout_ms=5000,
                      max_block_ms=5000).send("x", b"y").get(timeout=5)
    assert "nope" not in str(exc.value)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_kcat_with_sasl_plain(secure, topic_name, listener):
    base = ["kcat", "-b", secure.bootstrap(listener),
            "-X", f"security.protocol={listener}", "-X", "sasl.mechanisms=PLAIN",
            "-X", f"sasl.username={USER}", "-X", f"sasl.password={PASSWORD}"]
    if listener == "SASL_SSL":
        base += ["-X", f"ssl.ca.location={secure.certs.ca}"]
    subprocess.run(base + ["-P", "-t", topic_name], input=b"one\ntwo\n", check=True, timeout=60)
    out = subprocess.run(base + ["-C", "-t", topic_name, "-o", "beginning", "-e", "-q"],
                         capture_output=True, check=True, timeout=60)
    assert out.stdout.split() == [b"one", b"two"]
    bad = subprocess.run([*base[:-2], "-X", "sasl.password=wrong", "-L"],
                         capture_output=True, timeout=60)
    assert bad.returncode != 0


def test_reauthentication_keeps_a_producer_going(broker_factory, tmp_path, topic_name):
    sb = start_secure_broker(broker_factory, tmp_path, users={USER: PASSWORD},
                             protocols=("PLAINTEXT", "SASL_PLAINTEXT"),
                             sets={"connections.max.reauth.ms": "1500"})
    p = Producer({**sb.client_config("SASL_PLAINTEXT", USER, PASSWORD), "linger.ms": 0})
    delivered = []
    deadline = time.monotonic() + 7
    i = 0
    while time.monotonic() < deadline:
        p.produce(topic_name, value=str(i).encode(),
                  on_delivery=lambda err, m: delivered.append(err))
        p.flush(10)
        i += 1
        time.sleep(0.2)
    assert all(e is None for e in delivered), delivered
    assert len(delivered) == i
    log = sb.broker.log_text()
    reauths = log.count('"detail":"re-authentication"')
    assert reauths >= 2, f"expected several re-authentications, saw {reauths}"
    assert "session expired" not in log


def test_an_expired_session_is_closed(broker_factory, tmp_path):
    """A client that never re-authenticates (the raw protocol, by hand)
    is disconnected on its first request after the session lifetime."""
    import struct
    sb = start_secure_broker(broker_factory, tmp_path, users={USER: PASSWORD},
                             protocols=("PLAINTEXT", "SASL_PLAINTEXT"),
                             sets={"connections.max.reauth.ms": "500"})
    s = kafka_wire.connect("127.0.0.1", sb.ports["SASL_PLAINTEXT"])
    mech = b"PLAIN"
    s.sendall(kafka_wire.frame(kafka_wire.request_header(17, 1, 1)
                               + struct.pack(">h", len(mech)) + mech))
    resp = kafka_wire.read_frame(s)
    assert struct.unpack(">h", resp[4:6])[0] == 0
    token = f"\0{USER}\0{PASSWORD}".encode()
    s.sendall(kafka_wire.frame(kafka_wire.request_header(36, 1, 2)
                               + struct.pack(">i", len(token)) + token))
    resp = kafka_wire.read_frame(s)
    err = struct.unpack(">h", resp[4:6])[0]
    assert err == 0
    # error message (null), auth bytes (empty), then the session lifetime.
    lifetime = struct.unpack(">q", resp[4 + 2 + 2 + 4:4 + 2 + 2 + 4 + 8])[0]
    assert lifetime == 500
    s.sendall(kafka_wire.api_versions_request(3))
    kafka_wire.read_frame(s)
    time.sleep(0.8)
    metadata_v1 = kafka_wire.frame(kafka_wire.request_header(3, 1, 4) + b"\xff\xff\xff\xff")
    s.sendall(metadata_v1)
    assert kafka_wire.wait_closed(s) == b""


def test_certificate_reload_without_restart(broker_factory, tmp_path, topic_name):
    certs = make_certs(tmp_path / "certs")
    sb = start_secure_broker(broker_factory, tmp_path, certs=certs,
                             protocols=("PLAINTEXT", "SSL"))
    assert len(produce_and_consume(sb.client_config("SSL"), topic_name, 1)) == 1
    # Replace the certificate and key in place with ones from a new CA.
    new = make_certs(tmp_path / "new", ca_name="Renewed CA")
    time.sleep(1.1)  # a distinct modification time on coarse file systems
    shutil.copy(new.server_key, certs.server_key)
    shutil.copy(new.server_cert, certs.server_cert)
    ok = {**sb.client_config("SSL"), "ssl.ca.location": str(new.ca)}
    md = AdminClient(ok).list_topics(timeout=10)
    assert md.brokers
    stale = AdminClient({**sb.client_config("SSL"), "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        stale.list_topics(timeout=4)
    assert "TLS certificate reloaded" in sb.broker.log_text()


def test_python_ssl_handshake_sees_the_served_certificate(secure):
    ctx = ssl.create_default_context(cafile=str(secure.certs.ca))
    with socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(kafka_wire.api_versions_request(1))
            hdr = tls.recv(4)
            assert len(hdr) == 4

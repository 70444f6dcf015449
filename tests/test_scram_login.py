"""SCRAM-SHA-256 and SCRAM-SHA-512 logins with real clients.

Users are created with confluent-kafka's AlterUserScramCredentials on the
PLAINTEXT listener, then confluent-kafka, kafka-python and kcat log in
with them over SASL_PLAINTEXT and SASL_SSL. Wrong passwords and unknown
users are refused alike, and the broker keeps serving.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from security_util import start_secure_broker
from test_security_transport import auth_fails, produce_and_consume

MECHANISMS = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
              "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}
USERS = {"SCRAM-SHA-256": ("sam", "sam-pw-256"), "SCRAM-SHA-512": ("sue", "sue-pw-512")}


@pytest.fixture
def scram(broker_factory, tmp_path):
    sb = start_secure_broker(broker_factory, tmp_path, users={"admin": "admin-pw"})
    admin = AdminClient({"bootstrap.servers": sb.bootstrap("PLAINTEXT")})
    futs = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(user, ScramCredentialInfo(MECHANISMS[mech], 4096),
                                     pw.encode())
        for mech, (user, pw) in USERS.items()])
    for f in futs.values():
        assert f.result(timeout=30) is None
    return sb


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_confluent_kafka_logs_in_with_scram(scram, topic_name, listener, mechanism):
    user, pw = USERS[mechanism]
    conf = scram.client_config(listener, user, pw, mechanism=mechanism)
    assert produce_and_consume(conf, topic_name, 3) == [b"v0", b"v1", b"v2"]
    log = scram.broker.log_text()
    assert f'"principal":"User:{user}"' in log


@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_wrong_passwords_and_unknown_users_are_refused_alike(scram, topic_name, mechanism):
    user, pw = USERS[mechanism]
    wrong = auth_fails(scram.client_config("SASL_PLAINTEXT", user, pw + "x", mechanism=mechanism))
    unknown = auth_fails(scram.client_config("SASL_PLAINTEXT", "nobody", pw,
                                             mechanism=mechanism))
    for text in (wrong, unknown):
        assert "Authentication failed" in text, text
        assert pw not in text and "nobody" not in text.replace("User:nobody", "")
    # A credential of the other mechanism does not work for this one.
    other = next(m for m in MECHANISMS if m != mechanism)
    auth_fails(scram.client_config("SASL_PLAINTEXT", *USERS[other], mechanism=mechanism))
    # The broker still serves the right password.
    conf = scram.client_config("SASL_PLAINTEXT", user, pw, mechanism=mechanism)
    assert len(produce_and_consume(conf, topic_name, 1)) == 1


@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_kafka_python_logs_in_with_scram(scram, topic_name, mechanism):
    from kafka import KafkaConsumer, KafkaProducer
    user, pw = USERS[mechanism]
    for listener in ("SASL_PLAINTEXT", "SASL_SSL"):
        conf = scram.kafka_python_config(listener, user, pw, mechanism=mechanism)
        topic = f"{topic_name}-{listener.lower()}"
        p = KafkaProducer(**conf)
        p.send(topic, b"hello").get(timeout=30)
        p.close()
        c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000,
                          group_id=None, **conf)
        assert [m.value for m in c] == [b"hello"], listener
        c.close()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_kcat_logs_in_with_scram(scram, topic_name, mechanism):
    user, pw = USERS[mechanism]
    base = ["kcat", "-b", scram.bootstrap("SASL_SSL"), "-X", "security.protocol=SASL_SSL",
            "-X", f"ssl.ca.location={scram.certs.ca}", "-X", f"sasl.mechanisms={mechanism}",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={pw}"]
    put = subprocess.run(base + ["-P", "-t", topic_name], input=b"one\ntwo\n",
                         capture_output=True, timeout=60)
    assert put.returncode == 0, put.stderr.decode()
    out = subprocess.run(base + ["-C", "-t", topic_name, "-o", "beginning", "-e", "-q"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.split() == [b"one", b"two"]
    bad = subprocess.run([*base[:-2], "-X", "sasl.password=wrong", "-L"],
                         capture_output=True, timeout=60)
    assert bad.returncode != 0

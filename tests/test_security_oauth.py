"""OAUTHBEARER with real clients: confluent-kafka's oauth_cb hands the
broker JWTs signed by a key the test made; the broker checks them against
a JWKS file (reloaded when it changes)."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from cryptography.hazmat.primitives.asymmetric import rsa

from security_util import start_secure_broker

ISSUER = "https://idp.test"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_jwks(path, *keys_and_kids):
    keys = []
    for key, kid in keys_and_kids:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
        keys.append(jwk)
    path.write_text(json.dumps({"keys": keys}))
    return path


def make_token(key, kid, sub="svc-orders", lifetime=300, **claims):
    now = int(time.time())
    body = {"sub": sub, "iss": ISSUER, "aud": "weir", "iat": now, "exp": now + lifetime}
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def oauth(broker_factory, tmp_path):
    key = rsa_key()
    jwks = write_jwks(tmp_path / "jwks.json", (key, "k1"))
    sb = start_secure_broker(broker_factory, tmp_path,
                             protocols=("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"),
                             sets={"sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
                                   "sasl.oauthbearer.expected.issuer": ISSUER,
                                   "sasl.oauthbearer.expected.audience": "weir"})
    return sb, key, jwks


def client_conf(sb, listener, token_fn):
    def oauth_cb(_config):
        tok, exp = token_fn()
        return tok, exp
    return {**sb.client_config(listener, mechanism="OAUTHBEARER"), "oauth_cb": oauth_cb}


def produce_one(conf, topic, timeout=15):
    errors = []
    p = Producer({**conf, "error_cb": lambda e: errors.append(str(e)),
                  "message.timeout.ms": int(timeout * 1000)})
    delivered = []
    p.produce(topic, b"v", on_delivery=lambda err, m: delivered.append(err))
    # Flush past the message timeout, so a refused record always has its
    # delivery report by the time we look, however loaded the machine is.
    p.flush(timeout + 30)
    return delivered, errors


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_a_valid_token_authenticates(oauth, topic_name, listener):
    sb, key, _ = oauth
    conf = client_conf(sb, listener, lambda: (make_token(key, "k1"), time.time() + 300))
    delivered, errors = produce_one(conf, topic_name)
    assert delivered == [None], errors
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic_name])
    m = None
    deadline = time.monotonic() + 20
    while m is None and time.monotonic() < deadline:
        m = c.poll(1.0)
    c.close()
    assert m is not None and m.value() == b"v"
    log = sb.broker.log_text()
    assert '"principal":"User:svc-orders"' in log and '"operation":"OAUTHBEARER"' in log


@pytest.mark.parametrize("case", ["expired", "wrong-key", "wrong-issuer", "wrong-audience"])
def test_bad_tokens_are_refused_and_the_broker_keeps_serving(oauth, topic_name, case):
    sb, key, _ = oauth
    other = rsa_key()
    tokens = {
        "expired": lambda: make_token(key, "k1", lifetime=-120),
        "wrong-key": lambda: make_token(other, "k1"),
        "wrong-issuer": lambda: make_token(key, "k1", iss="https://evil.test"),
        "wrong-audience": lambda: make_token(key, "k1", aud="someone-else"),
    }
    conf = client_conf(sb, "SASL_PLAINTEXT", lambda: (tokens[case](), time.time() + 300))
    delivered, errors = produce_one(conf, topic_name, timeout=6)
    assert delivered and delivered[0] is not None, "a bad token must not produce"
    assert any("Authentication failed" in e or "SASL" in e for e in errors), errors
    log = sb.broker.log_text()
    assert '"operation":"OAUTHBEARER","outcome":"failure"' in log
    good = client_conf(sb, "SASL_PLAINTEXT", lambda: (make_token(key, "k1"), time.time() + 300))
    delivered, errors = produce_one(good, topic_name)
    assert delivered == [None], errors


def test_the_jwks_is_reloaded_when_it_changes(oauth, topic_name):
    sb, key, jwks = oauth
    new_key = rsa_key()
    conf = client_conf(sb, "SASL_PLAINTEXT", lambda: (make_token(new_key, "k2"), time.time() + 300))
    delivered, _ = produce_one(conf, topic_name, timeout=5)
    assert delivered[0] is not None, "k2 is not in the JWKS yet"
    time.sleep(1.1)
    write_jwks(jwks, (key, "k1"), (new_key, "k2"))
    delivered, errors = produce_one(conf, topic_name)
    assert delivered == [None], errors


def test_session_lifetime_follows_the_token_expiry(broker_factory, tmp_path, topic_name):
    """A token that expires in a few seconds makes librdkafka refresh it and
    re-authenticate (KIP-368); producing keeps working throughout."""
    key = rsa_key()
    jwks = write_jwks(tmp_path / "jwks.json", (key, "k1"))
    sb = start_secure_broker(broker_factory, tmp_path, protocols=("PLAINTEXT", "SASL_PLAINTEXT"),
                             sets={"sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}"})
    issued = []

    def token():
        issued.append(time.time())
        return make_token(key, "k1", lifetime=4), time.time() + 4

    p = Producer({**client_conf(sb, "SASL_PLAINTEXT", token), "linger.ms": 0})
    results = []
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        p.produce(topic_name, b"x", on_delivery=lambda err, m: results.append(err))
        p.flush(10)
        time.sleep(0.25)
    assert results and all(e is None for e in results), results
    assert len(issued) >= 2, "librdkafka should have refreshed the token"
    assert sb.broker.log_text().count('"detail":"re-authentication"') >= 1

"""weir-client's TLS and SASL, through the `weir` commands' `--command-config`
(Kafka client settings in a .properties file, as Kafka's tools take them).

One broker with SASL_PLAINTEXT, SSL and SASL_SSL listeners, PLAIN users,
SCRAM users made with confluent-kafka, and OAUTHBEARER against a JWKS. The
admin commands log in over Weir's own protocol client (weir-client); produce
and consume go through librdkafka with the same file, and what one writes
the other reads. Wrong credentials and an untrusted CA fail with a clear
message and exit status 1.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from security_util import make_certs, start_secure_broker
from test_security_oauth import make_token, rsa_key, write_jwks

ISSUER = "https://idp.test"


@pytest.fixture(scope="module")
def secure(weir_binary, _broker_root, tmp_path_factory):
    from conftest import BrokerFactory
    tmp = tmp_path_factory.mktemp("client-security")
    key = rsa_key()
    jwks = write_jwks(tmp / "jwks.json", (key, "k1"))
    factory = BrokerFactory(weir_binary, _broker_root)
    sb = start_secure_broker(factory, tmp, users={"alice": "alice-pw"},
                             sets={"sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
                                   "sasl.oauthbearer.expected.issuer": ISSUER,
                                   "sasl.oauthbearer.expected.audience": "weir"})
    admin = AdminClient({"bootstrap.servers": sb.bootstrap("PLAINTEXT")})
    futs = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("sam", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256,
                                                                4096), b"sam-pw"),
        UserScramCredentialUpsertion("sue", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512,
                                                                4096), b"sue-pw")])
    for f in futs.values():
        assert f.result(timeout=30) is None
    token = tmp / "token.jwt"
    token.write_text(make_token(key, "k1", sub="svc-cli"))
    yield sb, tmp, token
    factory.cleanup()


def weir(binary, *args, stdin=None, timeout=60):
    return subprocess.run([str(binary), *args], input=stdin, capture_output=True,
                          timeout=timeout)


def props(path, **kv):
    path.write_text("".join(f"{k}={v}\n" for k, v in kv.items()))
    return path


def jaas(module, user, pw):
    return (f'org.apache.kafka.common.security.{module} required '
            f'username="{user}" password="{pw}";')


CASES = {
    "plain": ("SASL_PLAINTEXT", {"sasl.mechanism": "PLAIN",
                                 "sasl.jaas.config": jaas("plain.PlainLoginModule", "alice",
                                                          "alice-pw")}),
    "scram256-ssl": ("SASL_SSL", {"sasl.mechanism": "SCRAM-SHA-256",
                                  "sasl.jaas.config": jaas("scram.ScramLoginModule", "sam",
                                                           "sam-pw")}),
    "scram512": ("SASL_PLAINTEXT", {"sasl.mechanism": "SCRAM-SHA-512",
                                    "sasl.jaas.config": jaas("scram.ScramLoginModule", "sue",
                                                             "sue-pw")}),
    "ssl": ("SSL", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_admin_produce_and_consume_log_in(secure, weir_binary, case):
    sb, tmp, _ = secure
    listener, extra = CASES[case]
    settings = {"security.protocol": listener, **extra}
    if "SSL" in listener:
        settings["ssl.truststore.location"] = str(sb.certs.ca)
        settings["ssl.truststore.type"] = "PEM"
    cfg = props(tmp / f"{case}.properties", **settings)
    boot = sb.bootstrap(listener)
    topic = f"sec-{case}"
    r = weir(weir_binary, "topic", "create", topic, "-b", boot, "--command-config", str(cfg))
    assert r.returncode == 0, r.stderr.decode()
    r = weir(weir_binary, "topic", "list", "-b", boot, "--command-config", str(cfg))
    assert r.returncode == 0 and topic in r.stdout.decode(), r.stderr.decode()
    r = weir(weir_binary, "produce", topic, "-b", boot, "--command-config", str(cfg),
             stdin=b"one\ntwo\n")
    assert r.returncode == 0, r.stderr.decode()
    r = weir(weir_binary, "consume", topic, "--from", "earliest", "--exit", "-b", boot,
             "--command-config", str(cfg))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == ["one", "two"]


def test_oauthbearer_token_file_logs_in(secure, weir_binary):
    sb, tmp, token = secure
    cfg = props(tmp / "oauth.properties", **{
        "security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.token.endpoint.url": f"file://{token}",
        "ssl.truststore.location": str(sb.certs.ca)})
    r = weir(weir_binary, "cluster", "info", "-b", sb.bootstrap("SASL_SSL"),
             "--command-config", str(cfg))
    assert r.returncode == 0, r.stderr.decode()
    deadline = time.monotonic() + 10
    while '"principal":"User:svc-cli"' not in sb.broker.log_text():
        assert time.monotonic() < deadline, "the token's subject never logged in"
        time.sleep(0.1)


def test_bad_credentials_and_untrusted_ca_fail_clearly(secure, weir_binary):
    sb, tmp, _ = secure
    wrong = props(tmp / "wrong.properties", **{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.jaas.config": jaas("scram.ScramLoginModule", "sam", "nope")})
    r = weir(weir_binary, "topic", "list", "-b", sb.bootstrap("SASL_PLAINTEXT"),
             "--command-config", str(wrong))
    assert r.returncode == 1
    assert "authentication" in r.stderr.decode().lower(), r.stderr.decode()
    other_ca = make_certs(tmp / "other-ca", ca_name="Other CA")
    untrusted = props(tmp / "untrusted.properties", **{
        "security.protocol": "SSL", "ssl.truststore.location": str(other_ca.ca)})
    r = weir(weir_binary, "topic", "list", "-b", sb.bootstrap("SSL"),
             "--command-config", str(untrusted))
    assert r.returncode == 1
    assert "TLS handshake failed" in r.stderr.decode(), r.stderr.decode()
    bad = props(tmp / "bad.properties", **{"security.protocol": "SASL_SSL",
                                           "sasl.mechanism": "GSSAPI"})
    r = weir(weir_binary, "topic", "list", "-b", sb.bootstrap("SASL_SSL"),
             "--command-config", str(bad))
    assert r.returncode == 1 and "sasl" in r.stderr.decode(), r.stderr.decode()

"""SCRAM credential management (KIP-554) through real admin clients.

confluent-kafka and kafka-python create, describe, replace and delete SCRAM
users on a plain listener; the stored record is then checked against
RFC 5802 from the client's own password and the stored salt, which proves
the broker keeps StoredKey/ServerKey derived exactly as SCRAM clients
derive them, and never the password. Logging in over SASL is covered
where SASL listeners are tested.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaAdminClient
from kafka.admin._users import ScramMechanism as KpMechanism
from kafka.admin._users import UserScramCredentialDeletion as KpDeletion
from kafka.admin._users import UserScramCredentialUpsertion as KpUpsertion


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of partition 0 of `topic`, read with confluent-kafka."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        c.subscribe([topic])
        out = []
        deadline = time.time() + 20
        while time.time() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    return out
                raise AssertionError(m.error())
            out.append((m.key(), m.value()))
        raise AssertionError(f"{topic} was not read to its end in time")
    finally:
        c.close()


def live_scram_records(bootstrap: str) -> dict[str, dict[str, str]]:
    live: dict[str, dict[str, str]] = {}
    for k, v in read_topic(bootstrap, "__weir_security"):
        key = k.decode()
        if not key.startswith("scram/"):
            continue
        if v is None:
            live.pop(key, None)
        else:
            live[key] = dict(p.split("=", 1) for p in v.decode().split(","))
    return live


def check_scram(record: dict[str, str], hash_name: str, password: bytes) -> bool:
    """RFC 5802: StoredKey = H(HMAC(Hi(password, salt, i), "Client Key"))."""
    salt = base64.b64decode(record["salt"])
    salted = hashlib.pbkdf2_hmac(hash_name, password, salt, int(record["iterations"]))
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    return (base64.b64decode(record["stored_key"]) == hashlib.new(hash_name, client_key).digest()
            and base64.b64decode(record["server_key"]) == server_key)


def test_confluent_admin_manages_scram_users(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    sha256 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    sha512 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    futs = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("alice", sha256, b"alice-secret"),
        UserScramCredentialUpsertion("bob", sha512, b"bob-secret", b"fixed-salt"),
    ])
    for f in futs.values():
        assert f.result(timeout=30) is None

    described = admin.describe_user_scram_credentials().result(timeout=30)
    assert sorted(described) == ["alice", "bob"]
    infos = {(i.mechanism, i.iterations) for i in described["bob"].scram_credential_infos}
    assert infos == {(ScramMechanism.SCRAM_SHA_512, 8192)}

    per_user = admin.describe_user_scram_credentials(["alice", "nobody"])
    assert [i.mechanism for i in per_user["alice"].result(timeout=30).scram_credential_infos] \
        == [ScramMechanism.SCRAM_SHA_256]
    with pytest.raises(KafkaException) as e:
        per_user["nobody"].result(timeout=30)
    assert e.value.args[0].name() == "RESOURCE_NOT_FOUND"

    # Too few and too many iterations are refused as Kafka refuses them.
    for iterations in (1000, 20000):
        bad = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, iterations), b"pw")])
        with pytest.raises(KafkaException) as e:
            bad["carol"].result(timeout=30)
        assert e.value.args[0].name() == "UNACCEPTABLE_CREDENTIAL"

    # Deleting a credential that does not exist.
    gone = admin.alter_user_scram_credentials(
        [UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_512)])
    with pytest.raises(KafkaException) as e:
        gone["alice"].result(timeout=30)
    assert e.value.args[0].name() == "RESOURCE_NOT_FOUND"

    # What is stored is SCRAM's StoredKey/ServerKey for the password, and
    # no form of the password itself.
    records = live_scram_records(broker.bootstrap)
    assert set(records) == {"scram/alice/SCRAM-SHA-256", "scram/bob/SCRAM-SHA-512"}
    assert check_scram(records["scram/alice/SCRAM-SHA-256"], "sha256", b"alice-secret")
    assert not check_scram(records["scram/alice/SCRAM-SHA-256"], "sha256", b"alice-secreT")
    assert check_scram(records["scram/bob/SCRAM-SHA-512"], "sha512", b"bob-secret")
    assert base64.b64decode(records["scram/bob/SCRAM-SHA-512"]["salt"]) == b"fixed-salt"
    raw = b"".join(v or b"" for _, v in read_topic(broker.bootstrap, "__weir_security"))
    assert b"secret" not in raw

    # Credentials survive a restart; a deletion too.
    assert admin.alter_user_scram_credentials([UserScramCredentialDeletion(
        "bob", ScramMechanism.SCRAM_SHA_512)])["bob"].result(timeout=30) is None
    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_user_scram_credentials().result(timeout=30)
    assert sorted(described) == ["alice"]


def test_kafka_python_admin_manages_scram_users(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="scram-admin")
    try:
        result = admin.alter_user_scram_credentials([
            KpUpsertion("dora", KpMechanism.SCRAM_SHA_512, "dora-pw", iterations=4096),
            KpUpsertion("ed", KpMechanism.SCRAM_SHA_256, "ed-pw", iterations=10000),
            KpUpsertion("ed", KpMechanism.SCRAM_SHA_512, "ed-pw"),
        ])
        assert result["dora"] is None
        # One user twice in one request: DUPLICATE_RESOURCE, nothing stored.
        assert result["ed"]
        described = admin.describe_user_scram_credentials()
        assert sorted(described) == ["dora"]
        assert described["dora"]["credential_infos"] == [
            {"mechanism": KpMechanism.SCRAM_SHA_512, "iterations": 4096}]
        dup = admin.describe_user_scram_credentials(["dora", "dora"])
        assert dup["dora"]["error"]
        assert admin.alter_user_scram_credentials(
            [KpDeletion("dora", KpMechanism.SCRAM_SHA_512)])["dora"] is None
        assert admin.describe_user_scram_credentials() == {}
    finally:
        admin.close()


def test_credential_changes_are_in_the_audit_topic(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "frank", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"frank-pw")]
    )["frank"].result(timeout=30)
    admin.create_topics([NewTopic("audited", 1, 1)])["audited"].result(timeout=30)
    events = [json.loads(v) for _, v in read_topic(broker.bootstrap, "__weir_audit")]
    ops = {(e["operation"], e["resource"], e["outcome"]) for e in events}
    assert ("AlterUserScramCredentials", "user:frank", "success") in ops
    assert ("CreateTopics", "topic:audited", "success") in ops
    for e in events:
        assert e["principal"] == "User:ANONYMOUS"
        assert e["client"] == "127.0.0.1"
        assert "frank-pw" not in json.dumps(e)

"""ACLs with real clients: the admin clients' create/describe/delete_acls,
and an authorization matrix in which each API is allowed or denied exactly
as Apache Kafka decides.

The expected outcomes come from the operations table of Kafka's
documentation ("Authorization and ACLs" -> "Operations and Resources on
Protocols"), restated in REQUIRED below, and from Kafka's rules:

* DENY wins over ALLOW;
* READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
  DESCRIBE_CONFIGS;
* a resource with no ACL at all is allowed only with
  allow.everyone.if.no.acl.found=true; once it has any ACL, only matching
  ALLOWs (and no DENY) let a principal in;
* principals in super.users may do anything.

The principal here is the one of a plain connection, User:ANONYMOUS, on a
broker with allow.everyone.if.no.acl.found=true, so the test can set up
ACLs through the cluster resource (which has none until the end) before
closing it. The same decisions apply to any principal.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewTopic, ResourcePatternType,
                                   ResourceType)

from conftest import HOST
from weir_helpers import wait_until

ME = "User:ANONYMOUS"
OTHER = "User:other"

# Kafka's table: the operation and resource each API needs.
REQUIRED = {
    "produce": [("WRITE", "TOPIC")],
    "transactional produce": [("WRITE", "TRANSACTIONAL_ID"), ("WRITE", "TOPIC")],
    "fetch": [("READ", "TOPIC")],
    "metadata": [("DESCRIBE", "TOPIC")],
    "join group": [("READ", "GROUP")],
    "offset commit": [("READ", "GROUP"), ("READ", "TOPIC")],
    "create topic": [("CREATE", "CLUSTER or TOPIC")],
    "delete topic": [("DELETE", "TOPIC")],
    "describe configs": [("DESCRIBE_CONFIGS", "TOPIC")],
    "init producer id (transactional)": [("WRITE", "TRANSACTIONAL_ID")],
}


def acl(rtype, name, op, principal=ME, perm=AclPermissionType.ALLOW,
        pattern=ResourcePatternType.LITERAL):
    return AclBinding(rtype, name, pattern, principal, "*", op, perm)


@pytest.fixture
def secured(target_factory):
    return target_factory("--set", "authorizer.class.name=StandardAuthorizer",
                          "--set", "allow.everyone.if.no.acl.found=true",
                          "--set", "auto.create.topics.enable=false",
                          name="acl")


def admin(b) -> AdminClient:
    return AdminClient({"bootstrap.servers": b.bootstrap})


EVERYTHING = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                              AclOperation.ANY, AclPermissionType.ANY)


def on_every_broker(target, what: str, pred) -> None:
    """Until `pred(admin client)` holds on every broker of the target: a
    change made through one broker of a cluster is in effect on the others
    a moment later (each follows `__weir_security`). A new client's
    requests go to its bootstrap broker, the only one it is connected to."""
    for port in target.ports:
        wait_until(lambda: pred(AdminClient({"bootstrap.servers": f"{HOST}:{port}"})),
                   timeout=30, what=f"{what} on the broker at port {port}")


def acl_count(n: int):
    return lambda a: len(a.describe_acls(EVERYTHING, request_timeout=15).result()) == n


def create_acls(a: AdminClient, bindings):
    for f in a.create_acls(bindings, request_timeout=15).values():
        f.result()


def test_admin_clients_create_describe_and_delete_acls(secured):
    """confluent-kafka and kafka-python both drive the three ACL APIs."""
    from kafka import KafkaAdminClient
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, ResourcePattern, ResourcePatternFilter)
    from kafka.admin import ResourceType as KpResourceType

    a = admin(secured)
    create_acls(a, [
        acl(ResourceType.TOPIC, "orders", AclOperation.READ, principal="User:alice"),
        acl(ResourceType.TOPIC, "orders-", AclOperation.WRITE, principal="User:bob",
            pattern=ResourcePatternType.PREFIXED),
        acl(ResourceType.GROUP, "g", AclOperation.READ, principal="User:alice",
            perm=AclPermissionType.DENY),
    ])
    everything = EVERYTHING
    on_every_broker(secured, "3 ACLs", acl_count(3))
    found = a.describe_acls(everything, request_timeout=15).result()
    assert len(found) == 3
    # MATCH finds the literal and the prefixed ACLs that apply to orders-eu.
    match = AclBindingFilter(ResourceType.TOPIC, "orders-eu", ResourcePatternType.MATCH, None,
                             None, AclOperation.ANY, AclPermissionType.ANY)
    got = a.describe_acls(match, request_timeout=15).result()
    assert [(b.name, b.resource_pattern_type) for b in got] == [
        ("orders-", ResourcePatternType.PREFIXED)]

    kp = KafkaAdminClient(bootstrap_servers=secured.bootstrap, request_timeout_ms=15_000)
    try:
        result = kp.create_acls([ACL("User:carol", "*", ACLOperation.DESCRIBE,
                                     ACLPermissionType.ALLOW,
                                     ResourcePattern(KpResourceType.TOPIC, "orders",
                                                     ACLResourcePatternType.LITERAL))])
        assert not result["failed"], result
        on_every_broker(secured, "4 ACLs", acl_count(4))
        acls, err = kp.describe_acls(ACLFilter(
            principal=None, host=None, operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(KpResourceType.TOPIC, "orders",
                                                   ACLResourcePatternType.LITERAL)))
        assert sorted(x.principal for x in acls) == ["User:alice", "User:carol"]
        deleted = kp.delete_acls([ACLFilter(
            principal="User:carol", host=None, operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(KpResourceType.ANY, None,
                                                   ACLResourcePatternType.ANY))])
        assert len(deleted) == 1 and len(deleted[0][1]) == 1, deleted
        on_every_broker(secured, "3 ACLs", acl_count(3))
    finally:
        kp.close()

    # confluent-kafka deletes the prefixed ACL; the rest survive a restart.
    res = a.delete_acls([AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.PREFIXED,
                                          None, None, AclOperation.ANY, AclPermissionType.ANY)],
                        request_timeout=15)
    assert [len(f.result()) for f in res.values()] == [1]
    secured.restart()
    a2 = admin(secured)
    left = a2.describe_acls(everything, request_timeout=15).result()
    assert sorted((b.name, b.principal) for b in left) == [("g", "User:alice"),
                                                          ("orders", "User:alice")]


def test_acl_apis_without_an_authorizer_answer_security_disabled(broker):
    a = admin(broker)
    fut = a.create_acls([acl(ResourceType.TOPIC, "t", AclOperation.READ)], request_timeout=15)
    with pytest.raises(KafkaException) as e:
        list(fut.values())[0].result()
    assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED


def _produce(b, topic, **conf):
    """The error of producing one record, or None."""
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 10_000,
                  "enable.idempotence": False, **conf})
    errs = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: errs.append(err))
    p.flush(15)
    assert errs, "no delivery report"
    return errs[0]


def _fetch_denied(b, topic) -> bool:
    """Whether kafka-python's consumer is refused READ on the topic (by
    Metadata for a hidden topic, or by Fetch)."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition
    from kafka.errors import TopicAuthorizationFailedError

    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15_000)
    try:
        c.assign([KpTopicPartition(topic, 0)])
        c.seek(KpTopicPartition(topic, 0), 0)
        deadline = time.time() + 8
        while time.time() < deadline:
            c.poll(timeout_ms=500)
            # A topic hidden by Metadata is never fetched: kafka-python
            # records Metadata's TOPIC_AUTHORIZATION_FAILED here.
            if topic in c._client.cluster.unauthorized_topics:
                return True
        return False
    except TopicAuthorizationFailedError:
        return True
    finally:
        c.close()


def test_authorization_matrix(secured):
    """Each API allowed or denied as Kafka decides, for one principal."""
    a = admin(secured)
    topics = ["m-read", "m-write", "m-none", "m-deny", "m-commit"]
    for f in a.create_topics([NewTopic(t, 1, 1) for t in topics],
                             request_timeout=15).values():
        f.result()
    create_acls(a, [
        acl(ResourceType.TOPIC, "m-read", AclOperation.READ),
        acl(ResourceType.TOPIC, "m-write", AclOperation.WRITE),
        # Has ACLs, none for ME: denied despite allow.everyone.
        acl(ResourceType.TOPIC, "m-none", AclOperation.ALL, principal=OTHER),
        # Everyone may do everything, but ME is denied WRITE: DENY wins.
        acl(ResourceType.TOPIC, "m-deny", AclOperation.ALL, principal="User:*"),
        acl(ResourceType.TOPIC, "m-deny", AclOperation.WRITE, perm=AclPermissionType.DENY),
        acl(ResourceType.TOPIC, "m-commit", AclOperation.READ),
        acl(ResourceType.TOPIC, "m-cfg", AclOperation.ALTER_CONFIGS,
            pattern=ResourcePatternType.PREFIXED),
        acl(ResourceType.TOPIC, "team-", AclOperation.CREATE,
            pattern=ResourcePatternType.PREFIXED),
        acl(ResourceType.TOPIC, "locked-", AclOperation.ALL, principal=OTHER,
            pattern=ResourcePatternType.PREFIXED),
        acl(ResourceType.GROUP, "g-ok", AclOperation.READ),
        acl(ResourceType.GROUP, "g-no", AclOperation.READ, principal=OTHER),
        acl(ResourceType.TRANSACTIONAL_ID, "tx-ok", AclOperation.WRITE),
        acl(ResourceType.TRANSACTIONAL_ID, "tx-no", AclOperation.WRITE, principal=OTHER),
    ])
    on_every_broker(secured, "13 ACLs", acl_count(13))
    # Last: the cluster gets an ACL (for someone else), so from now on
    # ME has no cluster rights (no CREATE on the cluster, no ACL changes).
    create_acls(a, [acl(ResourceType.BROKER, "kafka-cluster", AclOperation.ALTER, principal=OTHER)])
    # DescribeAcls is refused from now on (librdkafka gives no ACLs).
    on_every_broker(secured, "no DESCRIBE on the cluster", acl_count(0))
    for f in a.create_topics([NewTopic("m-cfg-1", 1, 1)], request_timeout=15).values():
        with pytest.raises(KafkaException) as e:
            f.result()
        assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    results: dict[tuple[str, str], bool] = {}

    def check(api, resource, allowed_expected, allowed_actual):
        results[(api, resource)] = allowed_actual
        assert allowed_actual == allowed_expected, (api, resource, REQUIRED.get(api))

    # Produce: WRITE on the topic.
    for t, ok in [("m-write", True), ("m-read", False), ("m-none", False), ("m-deny", False)]:
        err = _produce(secured, t)
        check("produce", t, ok, err is None)
        if err is not None:
            assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    # Fetch: READ on the topic (WRITE does not imply READ).
    for t, ok in [("m-read", True), ("m-write", False), ("m-deny", True), ("m-none", False)]:
        check("fetch", t, ok, not _fetch_denied(secured, t))

    # Metadata: DESCRIBE, implied by READ and WRITE; others are hidden.
    md = a.list_topics(timeout=15)
    visible = {t for t in md.topics if t.startswith("m-")}
    assert visible == {"m-read", "m-write", "m-deny", "m-commit"}, visible
    check("metadata", "m-none", False, "m-none" in visible)
    check("metadata", "m-read", True, "m-read" in visible)

    # Create topic: CREATE on the cluster or the topic (prefixed here).
    # A name without any ACL falls to allow.everyone.if.no.acl.found.
    fs = a.create_topics([NewTopic("team-a", 1, 1), NewTopic("locked-a", 1, 1),
                          NewTopic("free-a", 1, 1)], request_timeout=15)
    fs["team-a"].result()
    check("create topic", "team-a", True, True)
    fs["free-a"].result()
    check("create topic", "free-a", True, True)
    with pytest.raises(KafkaException) as e:
        fs["locked-a"].result()
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    check("create topic", "locked-a", False, False)

    # Delete topic: DELETE (READ is not enough).
    with pytest.raises(KafkaException) as e:
        a.delete_topics(["m-read"], request_timeout=15)["m-read"].result()
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    check("delete topic", "m-read", False, False)

    # Describe configs: DESCRIBE_CONFIGS, implied by ALTER_CONFIGS.
    for t, ok in [("m-cfg-x", True), ("m-read", False)]:
        res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t)],
                                 request_timeout=15)
        fut = list(res.values())[0]
        try:
            fut.result()
            got = True
        except KafkaException as e:
            code = e.args[0].code()
            # m-cfg-x does not exist: past authorization, unknown topic.
            got = code != KafkaError.TOPIC_AUTHORIZATION_FAILED
        check("describe configs", t, ok, got)

    # Group join and commit: READ on the group, and READ on the topic.
    def consume_commit(group, topic):
        c = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": group,
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": 6000})
        try:
            c.assign([TopicPartition(topic, 0)])
            return c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        finally:
            c.close()

    consume_commit("g-ok", "m-commit")
    check("offset commit", "g-ok/m-commit", True, True)
    # FindCoordinator already needs DESCRIBE on the group, so librdkafka
    # (as against Kafka) gives up waiting for a coordinator it may not see.
    with pytest.raises(KafkaException) as e:
        consume_commit("g-no", "m-commit")
    assert e.value.args[0].code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                                      KafkaError._WAIT_COORD), e.value
    check("offset commit", "g-no/m-commit", False, False)
    with pytest.raises(KafkaException) as e:
        consume_commit("g-ok", "m-write")
    assert "TOPIC_AUTHORIZATION_FAILED" in str(e.value) or \
        e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, e.value
    check("offset commit", "g-ok/m-write", False, False)

    # Join: subscribe() joins the group.
    def join(group):
        c = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": group,
                      "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
        try:
            c.subscribe(["m-read"])
            deadline = time.time() + 15
            while time.time() < deadline:
                m = c.poll(0.5)
                if m is not None and m.error():
                    return m.error()
                if c.assignment():
                    return None
            return "timeout"
        finally:
            c.close()

    assert join("g-ok") is None
    check("join group", "g-ok", True, True)
    err = join("g-no")
    assert isinstance(err, KafkaError), err
    assert err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    check("join group", "g-no", False, False)

    # Transactions: WRITE on the transactional id.
    def init_txn(txn_id):
        p = Producer({"bootstrap.servers": secured.bootstrap, "transactional.id": txn_id})
        p.init_transactions(15)
        return p

    p = init_txn("tx-ok")
    p.begin_transaction()
    p.produce("m-write", b"in-txn")
    p.commit_transaction(15)
    check("transactional produce", "tx-ok/m-write", True, True)
    with pytest.raises(KafkaException) as e:
        init_txn("tx-no")
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, e.value
    check("init producer id (transactional)", "tx-no", False, False)

    # ACL changes need ALTER on the cluster, which now has ACLs.
    with pytest.raises(KafkaException) as e:
        create_acls(a, [acl(ResourceType.TOPIC, "x", AclOperation.READ)])
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert len(results) >= 18


def test_sasl_principals_get_their_own_acls(broker_factory, tmp_path):
    """Real principals over SASL/PLAIN: a super user administers, alice
    has the ACLs she was given, bob and the anonymous PLAINTEXT client
    none; each denial reaches the audit trail."""
    from security_util import start_secure_broker

    users = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
    sb = start_secure_broker(broker_factory, tmp_path, users=users,
                             protocols=("PLAINTEXT", "SASL_PLAINTEXT"),
                             sets={"authorizer.class.name": "StandardAuthorizer",
                                   "super.users": "User:admin"},
                             name="acl-sasl")

    def conf(user):
        return sb.client_config("SASL_PLAINTEXT", user, users[user])

    root = AdminClient(conf("admin"))
    for f in root.create_topics([NewTopic("s-orders", 1, 1), NewTopic("s-secret", 1, 1)],
                                request_timeout=15).values():
        f.result()
    create_acls(root, [acl(ResourceType.TOPIC, "s-orders", AclOperation.WRITE,
                           principal="User:alice")])

    def produce_as(c, topic):
        p = Producer({**c, "message.timeout.ms": 10_000, "enable.idempotence": False})
        errs = []
        p.produce(topic, b"v", on_delivery=lambda err, msg: errs.append(err))
        p.flush(15)
        assert errs
        return errs[0]

    assert produce_as(conf("alice"), "s-orders") is None
    for c in (conf("bob"), {"bootstrap.servers": sb.bootstrap("PLAINTEXT")}):
        err = produce_as(c, "s-orders")
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    alice = AdminClient(conf("alice"))
    assert {t for t in alice.list_topics(timeout=15).topics} == {"s-orders"}
    assert {"s-orders", "s-secret", "__consumer_offsets"} <= set(
        root.list_topics(timeout=15).topics)
    with pytest.raises(KafkaException) as e:
        create_acls(alice, [acl(ResourceType.TOPIC, "s-secret", AclOperation.READ,
                                principal="User:alice")])
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    deadline = time.time() + 10
    while time.time() < deadline:
        log = sb.broker.log_text()
        if '"principal":"User:bob"' in log and '"resource":"topic:s-orders"' in log:
            break
        time.sleep(0.2)
    denied = [line for line in log.splitlines()
              if "weir::audit" in line and '"outcome":"denied"' in line]
    # librdkafka stops at Metadata (DESCRIBE) before any Produce.
    assert any('"principal":"User:bob"' in line and '"resource":"topic:s-orders"' in line
               for line in denied), denied
    assert any('"principal":"User:alice"' in line and '"operation":"ALTER"' in line
               and '"resource":"cluster"' in line for line in denied), denied
    assert any('"principal":"User:ANONYMOUS"' in line for line in denied), denied

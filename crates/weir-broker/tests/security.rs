//! The security store: `__weir_security` records across restarts, SCRAM
//! credentials through DescribeUserScramCredentials and
//! AlterUserScramCredentials, and the SCRAM mechanisms over them.

mod common;

use weir_broker::internal_log::read_records;

use std::sync::Arc;

use bytes::Bytes;
use common::{broker_with, open};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_auth::sasl::SaslStep;
use weir_auth::scram::ScramAlgorithm;
use weir_broker::{Broker, Reply};

async fn call(b: &Arc<Broker>, api: ApiKey, body: RequestKind) -> ResponseKind {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(0)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    match b.handle(&header, body) {
        Reply::None | Reply::Close => panic!("no response"),
        Reply::Ready(r) => r,
        Reply::Later(f) => f.await,
    }
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn upsert(user: &str, mechanism: i8, iterations: i32, password: &str) -> ScramCredentialUpsertion {
    let salt = b"some salt".to_vec();
    let salted = ScramAlgorithm::from_type_code(mechanism)
        .unwrap_or(ScramAlgorithm::Sha256)
        .salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
    ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from(salt))
        .with_salted_password(Bytes::from(salted))
}

async fn alter(
    b: &Arc<Broker>,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Vec<(String, i16)> {
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(deletions)
        .with_upsertions(upsertions);
    let ResponseKind::AlterUserScramCredentials(r) = call(
        b,
        ApiKey::AlterUserScramCredentials,
        RequestKind::AlterUserScramCredentials(req),
    )
    .await
    else {
        panic!()
    };
    let mut v: Vec<_> = r
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    v.sort();
    v
}

async fn describe(b: &Arc<Broker>, users: Option<&[&str]>) -> DescribeUserScramCredentialsResponse {
    let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(s(n)))
            .collect()
    }));
    let ResponseKind::DescribeUserScramCredentials(r) = call(
        b,
        ApiKey::DescribeUserScramCredentials,
        RequestKind::DescribeUserScramCredentials(req),
    )
    .await
    else {
        panic!()
    };
    r
}

/// Runs a whole SCRAM exchange against the broker's mechanism.
fn login(b: &Broker, mechanism: &str, user: &str, password: &str) -> bool {
    let alg = ScramAlgorithm::from_mechanism_name(mechanism).unwrap();
    let mut server = b.security().sasl_start(mechanism).unwrap();
    let bare = format!("n={user},r=clientnonce123");
    let Ok(SaslStep::Challenge(sf)) = server.step(format!("n,,{bare}").as_bytes()) else {
        return false;
    };
    let sf = String::from_utf8(sf).unwrap();
    let attr = |p: &str| {
        sf.split(',')
            .find_map(|a| a.strip_prefix(p))
            .unwrap()
            .to_string()
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(attr("s=")).unwrap();
    let iters: u32 = attr("i=").parse().unwrap();
    // The client side of RFC 5802 through the public credential API:
    // StoredKey and the proof.
    let salted = alg.salted_password(password.as_bytes(), &salt, iters);
    let cred = weir_auth::scram::ScramCredential::from_salted_password(alg, &salt, &salted, 0);
    let without_proof = format!("c=biws,r={}", attr("r="));
    let auth = format!("{bare},{sf},{without_proof}");
    let client_key = hmac(alg, &salted, b"Client Key");
    let sig = hmac(alg, &cred.stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let fin = format!("{without_proof},p={}", b64.encode(proof));
    matches!(server.step(fin.as_bytes()), Ok(SaslStep::Done { .. }))
}

fn hmac(alg: ScramAlgorithm, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC(key, data) = H((k ^ opad) || H((k ^ ipad) || data)), for keys
    // no longer than the block size; enough for a test client.
    let block = match alg {
        ScramAlgorithm::Sha256 => 64,
        ScramAlgorithm::Sha512 => 128,
    };
    let mut k = key.to_vec();
    k.resize(block, 0);
    let h = |d: &[u8]| -> Vec<u8> {
        use sha2::Digest;
        match alg {
            ScramAlgorithm::Sha256 => sha2::Sha256::digest(d).to_vec(),
            ScramAlgorithm::Sha512 => sha2::Sha512::digest(d).to_vec(),
        }
    };
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&h(&inner));
    h(&outer)
}

#[tokio::test]
async fn security_records_and_tombstones_survive_a_restart() {
    let t = broker_with(&[]).await;
    let b = &t.broker;
    assert!(b
        .security()
        .security_records("test")
        .await
        .unwrap()
        .is_empty());
    b.security()
        .put_security_record("test", "a", Some(Bytes::from_static(b"1")))
        .unwrap()
        .await
        .unwrap();
    b.security()
        .put_security_record("test", "b/c", Some(Bytes::from_static(b"2")))
        .unwrap()
        .await
        .unwrap();
    b.security()
        .put_security_record("test", "a", None)
        .unwrap()
        .await
        .unwrap();
    b.security()
        .put_security_record("other", "x", Some(Bytes::from_static(b"3")))
        .unwrap()
        .await
        .unwrap();
    t.broker.shutdown().unwrap();
    drop(t.broker);
    let b = open(t.dir.path(), &[]).await;
    assert_eq!(
        b.security().security_records("test").await.unwrap(),
        vec![("b/c".to_string(), Bytes::from_static(b"2"))]
    );
    assert_eq!(
        b.security().security_records("other").await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn scram_credentials_are_managed_described_persisted_and_used() {
    let t = broker_with(&[]).await;
    let b = &t.broker;
    let mechs = b.security().sasl_mechanisms();
    assert!(mechs.contains(&"SCRAM-SHA-256".to_string()));
    assert!(mechs.contains(&"SCRAM-SHA-512".to_string()));
    assert_eq!(
        alter(b, vec![], vec![upsert("alice", 1, 4096, "pw-a")]).await,
        vec![("alice".into(), 0)]
    );
    assert_eq!(
        alter(b, vec![], vec![upsert("bob", 2, 8192, "pw-b")]).await,
        vec![("bob".into(), 0)]
    );
    assert!(login(b, "SCRAM-SHA-256", "alice", "pw-a"));
    assert!(!login(b, "SCRAM-SHA-256", "alice", "pw-b"));
    assert!(!login(b, "SCRAM-SHA-512", "alice", "pw-a"));
    assert!(login(b, "SCRAM-SHA-512", "bob", "pw-b"));
    assert!(!login(b, "SCRAM-SHA-256", "nobody", "pw-a"));
    assert!(b.security().verify_scram_password("alice", "pw-a"));
    assert!(!b.security().verify_scram_password("alice", "pw-b"));
    assert!(!b.security().verify_scram_password("nobody", ""));

    // Kafka's checks.
    let del = |u: &str, m: i8| {
        ScramCredentialDeletion::default()
            .with_name(s(u))
            .with_mechanism(m)
    };
    let unacceptable = ResponseError::UnacceptableCredential.code();
    assert_eq!(
        alter(
            b,
            vec![del("carol", 1), del("alice", 0)],
            vec![
                upsert("dave", 1, 4095, "x"),
                upsert("erin", 2, 16385, "x"),
                upsert("frank", 3, 4096, "x"),
                upsert("", 1, 4096, "x"),
                upsert("gina", 1, 4096, "x"),
                upsert("gina", 2, 4096, "x"),
            ]
        )
        .await,
        vec![
            ("".into(), unacceptable),
            (
                "alice".into(),
                ResponseError::UnsupportedSaslMechanism.code()
            ),
            ("carol".into(), ResponseError::ResourceNotFound.code()),
            ("dave".into(), unacceptable),
            ("erin".into(), unacceptable),
            (
                "frank".into(),
                ResponseError::UnsupportedSaslMechanism.code()
            ),
            ("gina".into(), ResponseError::DuplicateResource.code()),
        ]
    );

    let all = describe(b, None).await;
    let users: Vec<_> = all
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        users,
        vec![
            ("alice".to_string(), vec![(1, 4096)]),
            ("bob".to_string(), vec![(2, 8192)])
        ]
    );
    let some = describe(b, Some(&["bob", "zed", "alice", "alice"])).await;
    let codes: Vec<_> = some
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("bob".into(), 0),
            ("zed".into(), ResponseError::ResourceNotFound.code()),
            ("alice".into(), ResponseError::DuplicateResource.code()),
        ]
    );

    // Delete one, restart: the rest are back and still work.
    assert_eq!(
        alter(b, vec![del("bob", 2)], vec![]).await,
        vec![("bob".into(), 0)]
    );
    assert!(!login(b, "SCRAM-SHA-512", "bob", "pw-b"));
    t.broker.shutdown().unwrap();
    drop(t.broker);
    let b = open(t.dir.path(), &[]).await;
    assert!(login(&b, "SCRAM-SHA-256", "alice", "pw-a"));
    assert!(!login(&b, "SCRAM-SHA-512", "bob", "pw-b"));
    // No secret is stored: neither the password nor the salted password.
    let raw = b.security().security_records("scram").await.unwrap();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].0, "alice/SCRAM-SHA-256");
    let text = String::from_utf8(raw[0].1.to_vec()).unwrap();
    assert!(text.contains("stored_key=") && !text.contains("pw-a"));
}

#[tokio::test]
async fn credential_changes_are_audited_to_the_audit_topic() {
    let t = broker_with(&[]).await;
    let b = &t.broker;
    let meta = b.topic(weir_broker::security::audit::AUDIT_TOPIC).unwrap();
    assert_eq!(meta.partition_count(), 1);
    assert_eq!(meta.configs.get("cleanup.policy").unwrap(), "delete");
    alter(b, vec![], vec![upsert("alice", 2, 4096, "pw")]).await;
    let events: Vec<serde_json::Value> = read_records(
        &*b.internal_log(),
        weir_broker::security::audit::AUDIT_TOPIC,
        0,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(_, v)| serde_json::from_slice(&v.unwrap()).unwrap())
    .collect();
    let e = events
        .iter()
        .find(|e| e["operation"] == "AlterUserScramCredentials")
        .expect("an audit event for the credential change");
    assert_eq!(e["kind"], "admin");
    assert_eq!(e["resource"], "user:alice");
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["principal"], "User:ANONYMOUS");
    assert_eq!(e["detail"], "upsert SCRAM-SHA-512");
    // No secret leaks into the trail.
    assert!(!serde_json::to_string(&events).unwrap().contains("pw"));
}

#[tokio::test]
async fn client_quotas_are_altered_described_persisted_and_enforced() {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    let t = broker_with(&[]).await;
    let b = &t.broker;
    let entity = |parts: &[(&str, Option<&str>)]| {
        parts
            .iter()
            .map(|(k, n)| {
                EntityData::default()
                    .with_entity_type(s(k))
                    .with_entity_name(n.map(s))
            })
            .collect::<Vec<_>>()
    };
    let op = |k: &str, v: f64| OpData::default().with_key(s(k)).with_value(v);
    let req = AlterClientQuotasRequest::default().with_entries(vec![
        EntryData::default()
            .with_entity(entity(&[("client-id", Some("slow"))]))
            .with_ops(vec![op("producer_byte_rate", 1000.0)]),
        EntryData::default()
            .with_entity(entity(&[("user", None)]))
            .with_ops(vec![op("request_percentage", 50.0)]),
        EntryData::default()
            .with_entity(entity(&[("user", Some("a")), ("client-id", None)]))
            .with_ops(vec![op("consumer_byte_rate", 1.5)]),
        EntryData::default()
            .with_entity(entity(&[("user", Some("a"))]))
            .with_ops(vec![op("bogus", 1.0)]),
        EntryData::default()
            .with_entity(entity(&[]))
            .with_ops(vec![op("producer_byte_rate", 1.0)]),
    ]);
    let ResponseKind::AlterClientQuotas(r) = call(
        b,
        ApiKey::AlterClientQuotas,
        RequestKind::AlterClientQuotas(req),
    )
    .await
    else {
        panic!()
    };
    let codes: Vec<i16> = r.entries.iter().map(|e| e.error_code).collect();
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(codes, vec![0, 0, invalid, invalid, invalid]);

    let describe = |components: Vec<ComponentData>, strict: bool| {
        let b = b.clone();
        async move {
            let req = DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(strict);
            let ResponseKind::DescribeClientQuotas(r) = call(
                &b,
                ApiKey::DescribeClientQuotas,
                RequestKind::DescribeClientQuotas(req),
            )
            .await
            else {
                panic!()
            };
            r
        }
    };
    let all = describe(vec![], false).await;
    assert_eq!(all.entries.as_ref().unwrap().len(), 2);
    let slow = describe(
        vec![ComponentData::default()
            .with_entity_type(s("client-id"))
            .with_match_type(0)
            .with_match(Some(s("slow")))],
        true,
    )
    .await;
    let e = &slow.entries.unwrap()[0];
    assert_eq!(e.values[0].key.as_str(), "producer_byte_rate");
    assert_eq!(e.values[0].value, 1000.0);
    let defaults = describe(
        vec![ComponentData::default()
            .with_entity_type(s("user"))
            .with_match_type(1)
            .with_match(None)],
        false,
    )
    .await;
    assert_eq!(defaults.entries.unwrap().len(), 1);
    let bad = describe(
        vec![ComponentData::default()
            .with_entity_type(s("user"))
            .with_match_type(0)
            .with_match(None)],
        false,
    )
    .await;
    assert_eq!(bad.error_code, invalid);

    // Produce as client `slow`: ~22 kB within the 10 s minimum span is
    // over 1000 B/s, so the response carries a
    // throttle time.
    let mut throttled = 0;
    for _ in 0..20 {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s("q")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(common::batch(100, 0))),
                ])]);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(9)
            .with_client_id(Some(s("slow")));
        let resp = match b.handle(&header, RequestKind::Produce(req)) {
            Reply::Ready(r) => r,
            Reply::Later(f) => f.await,
            Reply::None | Reply::Close => panic!(),
        };
        throttled = weir_broker::security::client_quotas::response_throttle_ms(&resp);
    }
    assert!(throttled > 0, "no throttle after 20 batches over quota");

    // Removal by op, and persistence.
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(entity(&[("user", None)]))
        .with_ops(vec![OpData::default()
            .with_key(s("request_percentage"))
            .with_remove(true)])]);
    call(
        b,
        ApiKey::AlterClientQuotas,
        RequestKind::AlterClientQuotas(req),
    )
    .await;
    t.broker.shutdown().unwrap();
    drop(t.broker);
    let b = open(t.dir.path(), &[]).await;
    let all = b.security().quotas().all();
    assert_eq!(all.len(), 1);
    assert!(b
        .security()
        .quotas()
        .resolve(
            weir_broker::security::quotas::QuotaType::Produce,
            "x",
            "slow"
        )
        .is_some());
}

/// With advertised listeners set, FindCoordinator answers with the
/// listener's address in the fields its version has, and every version
/// still encodes (v4+ has only the `coordinators` array).
#[tokio::test]
async fn find_coordinator_names_the_listener_in_every_version() {
    let b = broker_with(&[]).await;
    b.broker.security().set_advertised_listeners(vec![
        ("PLAINTEXT".into(), "plain.example".into(), 9092),
        ("SASL_SSL".into(), "secure.example".into(), 9093),
    ]);
    let mut session = weir_auth::Session::anonymous(None);
    session.listener = "SASL_SSL".into();
    for version in 0..=6 {
        let req = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g"))
        };
        let header = common::header(ApiKey::FindCoordinator, version);
        let Reply::Ready(resp) =
            b.broker
                .handle_as(&header, RequestKind::FindCoordinator(req), &session)
        else {
            panic!("FindCoordinator answers at once");
        };
        let ResponseKind::FindCoordinator(f) = &resp else {
            panic!("unexpected {resp:?}");
        };
        let (host, port) = if version >= 4 {
            assert!(f.host.is_empty(), "v{version} top-level host stays unset");
            (f.coordinators[0].host.to_string(), f.coordinators[0].port)
        } else {
            (f.host.to_string(), f.port)
        };
        assert_eq!(
            (host.as_str(), port),
            ("secure.example", 9093),
            "v{version}"
        );
        weir_broker::codec::encode_response(ApiKey::FindCoordinator, version, 1, &resp)
            .unwrap_or_else(|e| panic!("v{version} does not encode: {e}"));
    }
}

//! ACL APIs and per-API authorization, through `Broker::handle_as` with
//! sessions of different principals.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{batch, broker_with, header, open};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{AclOperation as Op, PatternType, PermissionType, ResourceType as Rt};
use weir_auth::{KafkaPrincipal, SecurityProtocol, Session};
use weir_broker::{Broker, Reply};

const AUTHZ: &[(&str, &str)] = &[
    ("authorizer.class.name", "StandardAuthorizer"),
    ("super.users", "User:admin"),
    ("auto.create.topics.enable", "false"),
];

fn session(user: &str) -> Session {
    Session {
        principal: KafkaPrincipal::user(user),
        client_host: Some("10.1.2.3".parse().unwrap()),
        listener: "SASL_PLAINTEXT".into(),
        protocol: SecurityProtocol::SaslPlaintext,
    }
}

async fn call_as(
    broker: &Arc<Broker>,
    who: &Session,
    api: ApiKey,
    version: i16,
    body: RequestKind,
) -> ResponseKind {
    match broker.handle_as(&header(api, version), body, who) {
        Reply::None | Reply::Close => panic!("no response"),
        Reply::Ready(r) => r,
        Reply::Later(f) => f.await,
    }
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn creation(rt: Rt, name: &str, pt: PatternType, principal: &str, op: Op) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt.code())
        .with_resource_name(s(name))
        .with_resource_pattern_type(pt.code())
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op.code())
        .with_permission_type(PermissionType::Allow.code())
}

async fn create_acls(broker: &Arc<Broker>, who: &Session, acls: Vec<AclCreation>) -> Vec<i16> {
    let ResponseKind::CreateAcls(r) = call_as(
        broker,
        who,
        ApiKey::CreateAcls,
        3,
        RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(acls)),
    )
    .await
    else {
        panic!("wrong response")
    };
    r.results.iter().map(|x| x.error_code).collect()
}

async fn grant(broker: &Arc<Broker>, acls: &[(Rt, &str, Op)]) {
    let codes = create_acls(
        broker,
        &session("admin"),
        acls.iter()
            .map(|(rt, n, op)| creation(*rt, n, PatternType::Literal, "User:alice", *op))
            .collect(),
    )
    .await;
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
}

async fn create_topic(broker: &Arc<Broker>, name: &str) {
    let r = call_as(
        broker,
        &session("admin"),
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])),
    )
    .await;
    let ResponseKind::CreateTopics(r) = r else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, 0);
}

fn describe_all_filter() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(Rt::Any.code())
        .with_pattern_type_filter(PatternType::Any.code())
        .with_operation(Op::Any.code())
        .with_permission_type(PermissionType::Any.code())
}

async fn describe_acls(
    broker: &Arc<Broker>,
    who: &Session,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let ResponseKind::DescribeAcls(r) = call_as(
        broker,
        who,
        ApiKey::DescribeAcls,
        3,
        RequestKind::DescribeAcls(req),
    )
    .await
    else {
        panic!()
    };
    r
}

#[tokio::test]
async fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let b = broker_with(&[]).await;
    let codes = create_acls(
        &b.broker,
        &session("admin"),
        vec![creation(
            Rt::Topic,
            "t",
            PatternType::Literal,
            "User:a",
            Op::Read,
        )],
    )
    .await;
    assert_eq!(codes, vec![ResponseError::SecurityDisabled.code()]);
    let r = describe_acls(&b.broker, &session("admin"), describe_all_filter()).await;
    assert_eq!(r.error_code, ResponseError::SecurityDisabled.code());
}

#[tokio::test]
async fn acl_apis_need_alter_and_describe_on_the_cluster() {
    let b = broker_with(AUTHZ).await;
    let codes = create_acls(
        &b.broker,
        &session("alice"),
        vec![creation(
            Rt::Topic,
            "t",
            PatternType::Literal,
            "User:alice",
            Op::Read,
        )],
    )
    .await;
    assert_eq!(
        codes,
        vec![ResponseError::ClusterAuthorizationFailed.code()]
    );
    let r = describe_acls(&b.broker, &session("alice"), describe_all_filter()).await;
    assert_eq!(
        r.error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    // ALTER on the cluster implies DESCRIBE, so alice may then list ACLs.
    grant(&b.broker, &[(Rt::Cluster, "kafka-cluster", Op::Alter)]).await;
    let r = describe_acls(&b.broker, &session("alice"), describe_all_filter()).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.resources.len(), 1);
}

#[tokio::test]
async fn create_acls_rejects_invalid_bindings_one_by_one() {
    let b = broker_with(AUTHZ).await;
    let good = creation(Rt::Topic, "t", PatternType::Literal, "User:a", Op::Read);
    let codes = create_acls(
        &b.broker,
        &session("admin"),
        vec![
            good.clone(),
            good.clone()
                .with_resource_pattern_type(PatternType::Match.code()),
            good.clone().with_resource_type(Rt::Any.code()),
            good.clone().with_operation(0),
            good.clone().with_principal(s("alice")),
            good.clone().with_resource_name(s("")),
            creation(
                Rt::Cluster,
                "other",
                PatternType::Literal,
                "User:a",
                Op::Alter,
            ),
        ],
    )
    .await;
    let bad = ResponseError::InvalidRequest.code();
    assert_eq!(codes, vec![0, bad, bad, bad, bad, bad, bad]);
    let r = describe_acls(&b.broker, &session("admin"), describe_all_filter()).await;
    assert_eq!(r.resources.len(), 1);
}

#[tokio::test]
async fn describe_and_delete_acls_use_kafka_filters_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let admin = session("admin");
    {
        let broker = open(dir.path(), AUTHZ).await;
        let codes = create_acls(
            &broker,
            &admin,
            vec![
                creation(
                    Rt::Topic,
                    "orders-eu",
                    PatternType::Literal,
                    "User:a",
                    Op::Read,
                ),
                creation(
                    Rt::Topic,
                    "orders-",
                    PatternType::Prefixed,
                    "User:b",
                    Op::Write,
                ),
                creation(Rt::Topic, "*", PatternType::Literal, "User:c", Op::Describe),
                creation(Rt::Group, "g", PatternType::Literal, "User:a", Op::Read),
            ],
        )
        .await;
        assert_eq!(codes, vec![0; 4]);
        // MATCH: every ACL that applies to topic orders-eu.
        let r = describe_acls(
            &broker,
            &admin,
            describe_all_filter()
                .with_resource_type_filter(Rt::Topic.code())
                .with_resource_name_filter(Some(s("orders-eu")))
                .with_pattern_type_filter(PatternType::Match.code()),
        )
        .await;
        assert_eq!(r.resources.len(), 3, "{r:?}");
        // An unknown operation in a filter is INVALID_REQUEST.
        let r = describe_acls(&broker, &admin, describe_all_filter().with_operation(0)).await;
        assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
        // Delete the prefixed one; the literal ones stay.
        let ResponseKind::DeleteAcls(d) = call_as(
            &broker,
            &admin,
            ApiKey::DeleteAcls,
            3,
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                DeleteAclsFilter::default()
                    .with_resource_name_filter(None)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_resource_type_filter(Rt::Topic.code())
                    .with_pattern_type_filter(PatternType::Prefixed.code())
                    .with_operation(Op::Any.code())
                    .with_permission_type(PermissionType::Any.code()),
                DeleteAclsFilter::default().with_pattern_type_filter(0),
            ])),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(d.filter_results[0].error_code, 0);
        assert_eq!(d.filter_results[0].matching_acls.len(), 1);
        assert_eq!(
            d.filter_results[0].matching_acls[0].resource_name.as_str(),
            "orders-"
        );
        assert_eq!(
            d.filter_results[1].error_code,
            ResponseError::InvalidRequest.code()
        );
        broker.shutdown().unwrap();
    }
    // ACLs come back from __weir_security after a restart.
    let broker = open(dir.path(), AUTHZ).await;
    let r = describe_acls(&broker, &admin, describe_all_filter()).await;
    let mut names: Vec<_> = r
        .resources
        .iter()
        .map(|x| x.resource_name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["*", "g", "orders-eu"]);
}

fn produce(topic: &str, txn: Option<&str>) -> RequestKind {
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(1, 0)))])]),
    )
}

async fn produce_code(b: &Arc<Broker>, who: &Session, topic: &str) -> i16 {
    let ResponseKind::Produce(r) = call_as(b, who, ApiKey::Produce, 9, produce(topic, None)).await
    else {
        panic!()
    };
    r.responses[0].partition_responses[0].error_code
}

async fn fetch_code(b: &Arc<Broker>, who: &Session, topic: &str) -> i16 {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(r) = call_as(b, who, ApiKey::Fetch, 12, RequestKind::Fetch(req)).await
    else {
        panic!()
    };
    r.responses[0].partitions[0].error_code
}

async fn metadata(b: &Arc<Broker>, who: &Session, topics: Option<&[&str]>) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect()
        }))
        .with_include_topic_authorized_operations(true);
    let ResponseKind::Metadata(r) =
        call_as(b, who, ApiKey::Metadata, 12, RequestKind::Metadata(req)).await
    else {
        panic!()
    };
    r
}

const DENIED_TOPIC: i16 = ResponseError::TopicAuthorizationFailed.code();
const DENIED_GROUP: i16 = ResponseError::GroupAuthorizationFailed.code();

#[tokio::test]
async fn produce_needs_write_and_fetch_needs_read() {
    let b = broker_with(AUTHZ).await;
    let (broker, alice) = (&b.broker, session("alice"));
    create_topic(broker, "r").await;
    create_topic(broker, "w").await;
    grant(
        broker,
        &[(Rt::Topic, "r", Op::Read), (Rt::Topic, "w", Op::Write)],
    )
    .await;
    assert_eq!(produce_code(broker, &alice, "w").await, 0);
    assert_eq!(produce_code(broker, &alice, "r").await, DENIED_TOPIC);
    // A topic that does not exist is denied too: existence does not leak.
    assert_eq!(produce_code(broker, &alice, "nope").await, DENIED_TOPIC);
    assert_eq!(fetch_code(broker, &alice, "r").await, 0);
    assert_eq!(fetch_code(broker, &alice, "w").await, DENIED_TOPIC);
    // The anonymous principal has no ACLs at all.
    let anon = Session::anonymous(None);
    assert_eq!(produce_code(broker, &anon, "w").await, DENIED_TOPIC);
    // Super users need no ACLs.
    assert_eq!(fetch_code(broker, &session("admin"), "w").await, 0);
}

#[tokio::test]
async fn transactional_produce_needs_write_on_the_transactional_id() {
    let b = broker_with(AUTHZ).await;
    let (broker, alice) = (&b.broker, session("alice"));
    create_topic(broker, "w").await;
    grant(broker, &[(Rt::Topic, "w", Op::Write)]).await;
    let ResponseKind::Produce(r) =
        call_as(broker, &alice, ApiKey::Produce, 9, produce("w", Some("tx"))).await
    else {
        panic!()
    };
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    let init = |txn: Option<&str>| {
        RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
                .with_transaction_timeout_ms(10_000),
        )
    };
    let ResponseKind::InitProducerId(r) =
        call_as(broker, &alice, ApiKey::InitProducerId, 4, init(Some("tx"))).await
    else {
        panic!()
    };
    assert_eq!(
        r.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    // Idempotence: WRITE on some topic is enough.
    let ResponseKind::InitProducerId(r) =
        call_as(broker, &alice, ApiKey::InitProducerId, 4, init(None)).await
    else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    let ResponseKind::InitProducerId(r) = call_as(
        broker,
        &session("bob"),
        ApiKey::InitProducerId,
        4,
        init(None),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(
        r.error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    grant(broker, &[(Rt::TransactionalId, "tx", Op::Write)]).await;
    let ResponseKind::InitProducerId(r) =
        call_as(broker, &alice, ApiKey::InitProducerId, 4, init(Some("tx"))).await
    else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn metadata_hides_topics_the_client_may_not_describe() {
    let b = broker_with(AUTHZ).await;
    let (broker, alice) = (&b.broker, session("alice"));
    for t in ["visible", "secret"] {
        create_topic(broker, t).await;
    }
    grant(broker, &[(Rt::Topic, "visible", Op::Read)]).await;
    let all = metadata(broker, &alice, None).await;
    let names: Vec<_> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, vec!["visible"]);
    // READ implies DESCRIBE; the bit field says what alice may do.
    let ops = all.topics[0].topic_authorized_operations;
    assert_eq!(ops, (1 << Op::Read.code()) | (1 << Op::Describe.code()));
    let named = metadata(broker, &alice, Some(&["secret", "missing"])).await;
    assert_eq!(named.topics[0].error_code, DENIED_TOPIC);
    assert!(named.topics[0].partitions.is_empty());
    assert_eq!(named.topics[1].error_code, DENIED_TOPIC);
    // The super user sees internal topics and everything else.
    let admin = metadata(broker, &session("admin"), None).await;
    assert!(admin.topics.len() >= 4);
}

#[tokio::test]
async fn allow_everyone_if_no_acl_found_opens_resources_without_acls() {
    let mut settings = AUTHZ.to_vec();
    settings.push(("allow.everyone.if.no.acl.found", "true"));
    let b = broker_with(&settings).await;
    let broker = &b.broker;
    create_topic(broker, "open").await;
    create_topic(broker, "closed").await;
    grant(broker, &[(Rt::Topic, "closed", Op::Read)]).await;
    let bob = session("bob");
    assert_eq!(produce_code(broker, &bob, "open").await, 0);
    assert_eq!(produce_code(broker, &bob, "closed").await, DENIED_TOPIC);
}

async fn create_topic_code(b: &Arc<Broker>, who: &Session, name: &str) -> i16 {
    let ResponseKind::CreateTopics(r) = call_as(
        b,
        who,
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])),
    )
    .await
    else {
        panic!()
    };
    r.topics[0].error_code
}

#[tokio::test]
async fn admin_apis_need_create_delete_and_describe_configs() {
    let b = broker_with(AUTHZ).await;
    let (broker, alice) = (&b.broker, session("alice"));
    assert_eq!(create_topic_code(broker, &alice, "a1").await, DENIED_TOPIC);
    // CREATE on a prefix allows topics under it; on the cluster, any.
    create_acls(
        broker,
        &session("admin"),
        vec![creation(
            Rt::Topic,
            "team-",
            PatternType::Prefixed,
            "User:alice",
            Op::Create,
        )],
    )
    .await;
    assert_eq!(create_topic_code(broker, &alice, "team-x").await, 0);
    assert_eq!(create_topic_code(broker, &alice, "a1").await, DENIED_TOPIC);
    grant(broker, &[(Rt::Cluster, "kafka-cluster", Op::Create)]).await;
    assert_eq!(create_topic_code(broker, &alice, "a1").await, 0);

    let delete = |name: &str| {
        RequestKind::DeleteTopics(
            DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s(name))]),
        )
    };
    let ResponseKind::DeleteTopics(r) =
        call_as(broker, &alice, ApiKey::DeleteTopics, 5, delete("a1")).await
    else {
        panic!()
    };
    assert_eq!(r.responses[0].error_code, DENIED_TOPIC);
    assert!(broker.topic("a1").is_some());

    let describe = |rt: i8, name: &str| {
        RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(rt)
                .with_resource_name(s(name))
                .with_configuration_keys(None),
        ]))
    };
    let ResponseKind::DescribeConfigs(r) = call_as(
        broker,
        &alice,
        ApiKey::DescribeConfigs,
        4,
        describe(2, "a1"),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, DENIED_TOPIC);
    let ResponseKind::DescribeConfigs(r) =
        call_as(broker, &alice, ApiKey::DescribeConfigs, 4, describe(4, "0")).await
    else {
        panic!()
    };
    assert_eq!(
        r.results[0].error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    grant(broker, &[(Rt::Topic, "a1", Op::AlterConfigs)]).await;
    let ResponseKind::DescribeConfigs(r) = call_as(
        broker,
        &alice,
        ApiKey::DescribeConfigs,
        4,
        describe(2, "a1"),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, 0);
    assert!(!r.results[0].configs.is_empty());
}

async fn join_code(b: &Arc<Broker>, who: &Session, group: &str) -> i16 {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::new())]);
    let ResponseKind::JoinGroup(r) =
        call_as(b, who, ApiKey::JoinGroup, 3, RequestKind::JoinGroup(req)).await
    else {
        panic!()
    };
    r.error_code
}

#[tokio::test]
async fn groups_need_read_on_the_group_and_commits_read_on_the_topic() {
    let mut settings = AUTHZ.to_vec();
    settings.push(("group.initial.rebalance.delay.ms", "0"));
    let b = broker_with(&settings).await;
    let (broker, alice) = (&b.broker, session("alice"));
    // The group coordinator's timers complete rebalances.
    let ticker = broker.clone();
    tokio::spawn(async move {
        loop {
            ticker.tick();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    create_topic(broker, "r").await;
    create_topic(broker, "other").await;
    assert_eq!(join_code(broker, &alice, "g").await, DENIED_GROUP);
    grant(
        broker,
        &[(Rt::Group, "g", Op::Read), (Rt::Topic, "r", Op::Read)],
    )
    .await;
    assert_eq!(join_code(broker, &alice, "g").await, 0);
    assert_eq!(join_code(broker, &alice, "g2").await, DENIED_GROUP);

    let commit = |group: &str| {
        RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(
                    ["r", "other"]
                        .iter()
                        .map(|t| {
                            OffsetCommitRequestTopic::default()
                                .with_name(TopicName(s(t)))
                                .with_partitions(vec![OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(0)])
                        })
                        .collect(),
                ),
        )
    };
    let ResponseKind::OffsetCommit(r) =
        call_as(broker, &alice, ApiKey::OffsetCommit, 8, commit("solo")).await
    else {
        panic!()
    };
    assert_eq!(r.topics[0].partitions[0].error_code, DENIED_GROUP);
    grant(broker, &[(Rt::Group, "solo", Op::Read)]).await;
    let ResponseKind::OffsetCommit(r) =
        call_as(broker, &alice, ApiKey::OffsetCommit, 8, commit("solo")).await
    else {
        panic!()
    };
    let codes: Vec<_> = r
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, vec![0, DENIED_TOPIC]);

    // ListGroups shows only the groups alice may describe.
    let ResponseKind::ListGroups(r) = call_as(
        broker,
        &alice,
        ApiKey::ListGroups,
        4,
        RequestKind::ListGroups(ListGroupsRequest::default()),
    )
    .await
    else {
        panic!()
    };
    let mut ids: Vec<_> = r.groups.iter().map(|g| g.group_id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, vec!["g", "solo"]);
}

#[tokio::test]
async fn deny_acls_win_over_allows() {
    let b = broker_with(AUTHZ).await;
    let broker = &b.broker;
    create_topic(broker, "t").await;
    let admin = session("admin");
    let codes = create_acls(
        broker,
        &admin,
        vec![
            creation(Rt::Topic, "*", PatternType::Literal, "User:*", Op::All),
            creation(
                Rt::Topic,
                "t",
                PatternType::Literal,
                "User:alice",
                Op::Write,
            )
            .with_permission_type(PermissionType::Deny.code()),
        ],
    )
    .await;
    assert_eq!(codes, vec![0, 0]);
    assert_eq!(
        produce_code(broker, &session("alice"), "t").await,
        DENIED_TOPIC
    );
    assert_eq!(produce_code(broker, &session("bob"), "t").await, 0);
    assert_eq!(fetch_code(broker, &session("alice"), "t").await, 0);
}

#[tokio::test]
async fn scram_and_quota_apis_need_their_cluster_operations() {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    let b = broker_with(AUTHZ).await;
    let upsert = || {
        RequestKind::AlterUserScramCredentials(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                ScramCredentialUpsertion::default()
                    .with_name(s("carol"))
                    .with_mechanism(1)
                    .with_iterations(4096)
                    .with_salt(Bytes::from_static(b"salt"))
                    .with_salted_password(Bytes::from_static(&[7; 32])),
            ]),
        )
    };
    let quota = || {
        RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default().with_entries(vec![
            EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(s("client-id"))
                    .with_entity_name(Some(s("app")))])
                .with_ops(vec![OpData::default()
                    .with_key(s("producer_byte_rate"))
                    .with_value(1024.0)]),
        ]))
    };
    let describe_scram = || {
        RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default())
    };
    let describe_quotas =
        || RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default());
    let codes = |r: ResponseKind| -> Vec<i16> {
        match r {
            ResponseKind::AlterUserScramCredentials(r) => {
                r.results.iter().map(|x| x.error_code).collect()
            }
            ResponseKind::AlterClientQuotas(r) => r.entries.iter().map(|x| x.error_code).collect(),
            ResponseKind::DescribeUserScramCredentials(r) => vec![r.error_code],
            ResponseKind::DescribeClientQuotas(r) => vec![r.error_code],
            other => panic!("unexpected {other:?}"),
        }
    };
    let denied = ResponseError::ClusterAuthorizationFailed.code();
    let alice = session("alice");
    let calls: [(ApiKey, &dyn Fn() -> RequestKind); 4] = [
        (ApiKey::AlterUserScramCredentials, &upsert),
        (ApiKey::AlterClientQuotas, &quota),
        (ApiKey::DescribeUserScramCredentials, &describe_scram),
        (ApiKey::DescribeClientQuotas, &describe_quotas),
    ];
    for (api, body) in &calls {
        let got = codes(call_as(&b.broker, &alice, *api, 0, body()).await);
        assert_eq!(got, vec![denied], "{api:?} without ACLs");
    }
    // ALTER implies DESCRIBE and ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    grant(
        &b.broker,
        &[
            (Rt::Cluster, "kafka-cluster", Op::Alter),
            (Rt::Cluster, "kafka-cluster", Op::AlterConfigs),
        ],
    )
    .await;
    for (api, body) in &calls {
        let got = codes(call_as(&b.broker, &alice, *api, 0, body()).await);
        assert_eq!(got, vec![0], "{api:?} with ACLs");
    }
}

//! The listener on port 0: framing, bad input, pipelining and drain.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_broker::{Broker, BrokerConfig, BrokerSettings};
use weir_server::{run, ServerConfig};

struct Running {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(max_request_bytes: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let engine = weir_log::LocalEngine::open(weir_log::EngineConfig {
        data_dir: dir.path().to_path_buf(),
        ..weir_log::EngineConfig::default()
    })
    .unwrap();
    let broker = Broker::open(
        BrokerConfig {
            node_id: 0,
            data_dir: dir.path().to_path_buf(),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 0,
            settings: BrokerSettings::default(),
            clock: weir_log::Clock::system(),
        },
        engine,
    )
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel();
    let config = ServerConfig {
        max_request_bytes,
        ..ServerConfig::from_broker(&broker)
    };
    let done = tokio::spawn(run(listener, Arc::clone(&broker), config, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop,
        done,
        _dir: dir,
    }
}

fn api_versions_frame(version: i16, correlation_id: i32) -> BytesMut {
    let mut body = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("t")));
    let hv = ApiKey::ApiVersions.request_header_version(version.min(4));
    header.encode(&mut body, hv).unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("weir-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
        .encode(&mut body, version.min(4))
        .unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

fn frame(key: ApiKey, version: i16, correlation_id: i32, req: &impl Encodable) -> BytesMut {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("t")))
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

/// A sessionless Fetch of partition 0 of `topic` from offset 0 that waits
/// up to `max_wait_ms` for a byte.
fn long_poll(topic: &str, max_wait_ms: i32, correlation_id: i32) -> BytesMut {
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    frame(ApiKey::Fetch, 11, correlation_id, &req)
}

/// Reads one response frame: (correlation id, the rest).
async fn read_response(s: &mut TcpStream) -> Option<(i32, BytesMut)> {
    let len = s.read_i32().await.ok()?;
    let mut buf = BytesMut::zeroed(len as usize);
    s.read_exact(&mut buf).await.ok()?;
    let cid = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    Some((cid, buf.split_off(4)))
}

async fn is_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let r = start(1 << 20).await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let mut all = BytesMut::new();
    for cid in 0..50 {
        all.extend_from_slice(&api_versions_frame(3, cid));
    }
    s.write_all(&all).await.unwrap();
    for cid in 0..50 {
        let (got, mut body) = read_response(&mut s).await.unwrap();
        assert_eq!(got, cid);
        let resp = ApiVersionsResponse::decode(&mut body, 3).unwrap();
        assert_eq!(resp.error_code, 0);
        assert!(resp
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16));
    }
}

#[tokio::test]
async fn an_answer_does_not_wait_for_the_next_requests_answer() {
    let r = start(1 << 20).await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("quiet")))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    s.write_all(&frame(ApiKey::CreateTopics, 5, 1, &create))
        .await
        .unwrap();
    let (_, mut body) = read_response(&mut s).await.unwrap();
    let _tagged_fields = body.split_to(1);
    let created = CreateTopicsResponse::decode(&mut body, 5).unwrap();
    assert_eq!(created.topics[0].error_code, 0);
    // Pipelined: a short long-poll, then one that waits for a minute. The
    // first's answer must come while the second still waits.
    let mut both = long_poll("quiet", 200, 2);
    both.extend_from_slice(&long_poll("quiet", 60_000, 3));
    s.write_all(&both).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), read_response(&mut s))
        .await
        .expect("the first answer is held back behind the second request");
    assert_eq!(first.unwrap().0, 2);
}

#[tokio::test]
async fn newer_api_versions_gets_a_v0_unsupported_version_answer() {
    let r = start(1 << 20).await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let mut f = api_versions_frame(4, 7);
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&f).await.unwrap();
    let (cid, mut body) = read_response(&mut s).await.unwrap();
    assert_eq!(cid, 7);
    let resp = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    let av = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let r = start(1024).await;
    let mut good = TcpStream::connect(r.addr).await.unwrap();
    let cases: Vec<Vec<u8>> = vec![
        b"\x00\x00\x00\x0cgarbage!!!!!".to_vec(),    // undecodable
        [&2000i32.to_be_bytes()[..], b"x"].concat(), // over the limit
        (-5i32).to_be_bytes().to_vec(),              // negative size
        [
            &10i32.to_be_bytes()[..],
            &[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0],
        ]
        .concat(), // unknown API key 9999
        [&10i32.to_be_bytes()[..], &[0, 3, 0, 99, 0, 0, 0, 1, 0, 0]].concat(), // Metadata v99
    ];
    for bytes in cases {
        let mut bad = TcpStream::connect(r.addr).await.unwrap();
        bad.write_all(&bytes).await.unwrap();
        assert!(
            is_closed(&mut bad).await,
            "connection for {bytes:?} should close"
        );
        good.write_all(&api_versions_frame(3, 1)).await.unwrap();
        assert_eq!(read_response(&mut good).await.unwrap().0, 1);
    }
    // A truncated frame: the client goes away mid-frame.
    let mut bad = TcpStream::connect(r.addr).await.unwrap();
    bad.write_all(&100i32.to_be_bytes()).await.unwrap();
    bad.write_all(b"half").await.unwrap();
    drop(bad);
    good.write_all(&api_versions_frame(3, 2)).await.unwrap();
    assert_eq!(read_response(&mut good).await.unwrap().0, 2);
}

#[tokio::test]
async fn shutdown_answers_what_was_read_then_closes() {
    let r = start(1 << 20).await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    s.write_all(&api_versions_frame(3, 1)).await.unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().0, 1);
    r.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), r.done)
        .await
        .expect("server drains")
        .unwrap();
    assert!(is_closed(&mut s).await);
    assert!(TcpStream::connect(r.addr).await.is_err());
}

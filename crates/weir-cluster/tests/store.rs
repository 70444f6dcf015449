//! How the engine talks to an S3 store: what its requests carry. A
//! listener on loopback stands in for the server, so a request's headers
//! can be read as sent (the S3 servers the integration tests start do
//! not show them).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use object_store::{path::Path, ObjectStore, PutPayload};

/// Answers one PUT with 200 and returns its request head.
fn accept_one_put(listener: &TcpListener) -> String {
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let mut stream = stream;
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    head
}

/// Opens the store as the engine does and puts one object through it.
fn put_and_capture(listener: &TcpListener) -> String {
    let listener = listener.try_clone().unwrap();
    let server = std::thread::spawn(move || accept_one_put(&listener));
    let (store, prefix) = weir_cluster::open_store("s3://bucket/prefix").unwrap();
    let payload = PutPayload::from_static(b"record batches");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.put(&Path::from(format!("{prefix}/object")), payload))
        .unwrap();
    server.join().unwrap()
}

#[test]
fn payloads_go_unsigned_unless_the_environment_asks_for_signing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // One test in this binary, so nothing else reads the environment.
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "key");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
    std::env::remove_var("AWS_UNSIGNED_PAYLOAD");

    let head = put_and_capture(&listener);
    assert!(head.starts_with("put /bucket/prefix/object"), "{head}");
    assert!(
        head.contains("x-amz-content-sha256: unsigned-payload"),
        "{head}"
    );

    std::env::set_var("AWS_UNSIGNED_PAYLOAD", "false");
    let head = put_and_capture(&listener);
    // The payload's SHA-256, in hex.
    let signed = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amz-content-sha256:"))
        .unwrap_or_default();
    assert_eq!(signed.trim().len(), 64, "{head}");
}

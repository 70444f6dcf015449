//! A small HTTP/1.1 client (hyper) for what a worker asks of other
//! workers (requests forwarded to the leader) and for the `weir connect`
//! commands against any Connect REST API.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{ConnectError, Result};

/// A response: status, content type and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

fn unreachable(url: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Io {
        context: format!("request to {url}"),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Sends `method url` with an optional JSON `body` and extra `headers`.
pub async fn request(
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ConnectError::bad_request(format!("`{url}` is not an http:// URL")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let work = async {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| unreachable(url, e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(url, e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority)
            .header("accept", "application/json");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ConnectError::bad_request(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(url, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(url, e))?
            .to_bytes()
            .to_vec();
        Ok(Response { status, body })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| unreachable(url, "timed out"))?
}

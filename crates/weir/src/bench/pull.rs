//! `weir bench pull`: pull queries against a streaming SQL server
//! (ksqlDB's REST API: `POST /query-stream` or `/query`), `--concurrency`
//! at once over that many keep-alive HTTP/1.1 connections.
//!
//! The client is meant to cost far less than the server it measures: one
//! thread, one task per connection, the request body formatted into a
//! reused buffer and the response read without parsing its rows. Closed
//! loop by default (each connection sends its next query when the last
//! is answered); with `--rate`, queries are due at fixed intervals and
//! latency counts from the due time, so a query that waits for a free
//! connection is charged for the wait (see [`super::stats::Pacer`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use super::stats::{xorshift64, Latency, Pacer, Percentiles};

/// Which endpoint the queries go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `POST /query-stream` (`{"sql": ...}`, delimited rows).
    QueryStream,
    /// `POST /query` (`{"ksql": ...}`, a JSON array of rows).
    Query,
}

/// What a pull run needs from the command line.
#[derive(Debug, Clone)]
pub struct PullConfig {
    pub url: String,
    pub endpoint: Endpoint,
    /// The statement; `{key}` is replaced by a random number below `keys`.
    pub query: String,
    pub keys: u64,
    pub queries: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: u64,
    pub concurrency: u32,
    pub timeout: Duration,
}

/// The result of a pull run.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub url: String,
    pub endpoint: Endpoint,
    pub query: String,
    pub concurrency: u32,
    pub target_rate: u64,
    pub queries: u64,
    /// Queries answered with at least one row.
    pub with_rows: u64,
    pub rows: u64,
    pub errors: u64,
    pub seconds: f64,
    pub queries_per_sec: f64,
    /// From each query's send (or, at a `--rate`, due) time to the end of
    /// its response.
    pub latency: Option<Percentiles>,
    pub first_error: Option<String>,
}

impl PullReport {
    /// The table for people.
    pub fn render(&self) -> String {
        let mut s = format!(
            "pull queries to {} ({:?}, {} connections, rate={})\n",
            self.url,
            self.endpoint,
            self.concurrency,
            if self.target_rate == 0 {
                "max".to_string()
            } else {
                format!("{}/s", self.target_rate)
            }
        );
        s.push_str(&crate::cli::output::table(
            &[
                "QUERIES",
                "WITH ROWS",
                "ROWS",
                "ERRORS",
                "QUERIES/s",
                "SECONDS",
            ],
            &[vec![
                self.queries.to_string(),
                self.with_rows.to_string(),
                self.rows.to_string(),
                self.errors.to_string(),
                format!("{:.0}", self.queries_per_sec),
                format!("{:.2}", self.seconds),
            ]],
        ));
        if let Some(p) = &self.latency {
            s.push('\n');
            s.push_str(&crate::cli::output::table(
                &["LATENCY (ms)", "p50", "p99", "p99.9", "max"],
                &[vec![
                    "pull".to_string(),
                    format!("{:.3}", p.p50_ms),
                    format!("{:.3}", p.p99_ms),
                    format!("{:.3}", p.p99_9_ms),
                    format!("{:.3}", p.max_ms),
                ]],
            ));
        }
        if let Some(e) = &self.first_error {
            s.push_str(&format!("\nfirst error: {e}\n"));
        }
        s
    }
}

/// `http://HOST:PORT[/...]` to the address to connect to and the Host
/// header; only plain HTTP (a TLS handshake per connection would not
/// change what is measured once connections are kept alive, but it is
/// not provided).
fn parse_url(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--url must start with http:// (got `{url}`)"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("cannot resolve `{authority}`"))?
        .next()
        .ok_or_else(|| anyhow!("`{authority}` has no address"))?;
    Ok((addr, authority.to_string()))
}

/// The JSON request body for `query` with `{key}` replaced by `key`.
fn body(endpoint: Endpoint, query: &str, key: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(match endpoint {
        Endpoint::QueryStream => b"{\"sql\":",
        Endpoint::Query => b"{\"ksql\":",
    });
    let text = query.replace("{key}", &key.to_string());
    // A JSON string of the statement; serde_json cannot fail on a str.
    let _ = serde_json::to_writer(&mut *buf, &text);
    buf.extend_from_slice(match endpoint {
        Endpoint::QueryStream => b",\"properties\":{}}",
        Endpoint::Query => b",\"streamsProperties\":{}}",
    });
}

/// Rows in a response body: lines after the header for `/query-stream`'s
/// delimited format, `{"row"` objects for `/query`.
fn count_rows(endpoint: Endpoint, body: &[u8]) -> u64 {
    match endpoint {
        Endpoint::QueryStream => body
            .split(|&b| b == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
            .count() as u64,
        Endpoint::Query => body.windows(6).filter(|w| w == b"{\"row\"").count() as u64,
    }
}

#[derive(Default)]
struct Totals {
    latency: Latency,
    queries: u64,
    with_rows: u64,
    rows: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Totals {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

/// Runs the pull benchmark on the current (single-threaded) runtime.
pub async fn run(cfg: PullConfig) -> Result<PullReport> {
    if cfg.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if cfg.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let (addr, host) = parse_url(&cfg.url)?;
    let path = match cfg.endpoint {
        Endpoint::QueryStream => "/query-stream",
        Endpoint::Query => "/query",
    };
    let limit = match (cfg.queries, cfg.duration) {
        (_, Some(_)) => u64::MAX,
        (q, None) => q.unwrap_or(10_000),
    };
    // Connect every connection first, so connection setup is not timed.
    let mut senders = Vec::new();
    for _ in 0..cfg.concurrency {
        let stream = tokio::time::timeout(cfg.timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("no answer from {addr} within {:?}", cfg.timeout))?
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        senders.push(sender);
    }
    let next = Arc::new(AtomicU64::new(0));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let start = Instant::now();
    let stop_at = cfg.duration.map(|d| start + d);
    let pacer = Pacer::new(cfg.rate, 1, 0, start, 0);
    let mut tasks = Vec::new();
    for (i, mut sender) in senders.into_iter().enumerate() {
        let next = Arc::clone(&next);
        let totals = Arc::clone(&totals);
        let (host, query, endpoint, timeout) =
            (host.clone(), cfg.query.clone(), cfg.endpoint, cfg.timeout);
        let keys = cfg.keys;
        tasks.push(tokio::spawn(async move {
            let mut seed =
                0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut buf = Vec::with_capacity(query.len() + 64);
            let mut local = Totals::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                if let Some(wait) = pacer.wait(n, Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let now = Instant::now();
                if stop_at.is_some_and(|s| now >= s) {
                    break;
                }
                let from = if pacer.paced() { pacer.due(n) } else { now };
                body(endpoint, &query, xorshift64(&mut seed) % keys, &mut buf);
                let req = hyper::Request::post(path)
                    .header(hyper::header::HOST, &host)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::copy_from_slice(&buf)));
                let req = match req {
                    Ok(r) => r,
                    Err(e) => {
                        local.error(e.to_string());
                        break;
                    }
                };
                let answer = tokio::time::timeout(timeout, async {
                    sender.ready().await?;
                    let resp = sender.send_request(req).await?;
                    let status = resp.status();
                    let body = resp.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>((status, body))
                })
                .await;
                local.queries += 1;
                match answer {
                    Ok(Ok((status, body))) if status.is_success() => {
                        let us = u64::try_from(from.elapsed().as_micros()).unwrap_or(u64::MAX);
                        local.latency.record_us(us);
                        let rows = count_rows(endpoint, &body);
                        local.rows += rows;
                        local.with_rows += u64::from(rows > 0);
                    }
                    Ok(Ok((status, body))) => {
                        local.error(format!("{status}: {}", String::from_utf8_lossy(&body)));
                    }
                    Ok(Err(e)) => {
                        // The connection is gone; this task stops.
                        local.error(e.to_string());
                        break;
                    }
                    Err(_) => {
                        local.error(format!("no answer within {timeout:?}"));
                        break;
                    }
                }
            }
            if let Ok(mut t) = totals.lock() {
                t.latency.merge(&local.latency);
                t.queries += local.queries;
                t.with_rows += local.with_rows;
                t.rows += local.rows;
                t.errors += local.errors;
                if t.first_error.is_none() {
                    t.first_error = local.first_error;
                }
            }
        }));
    }
    for t in tasks {
        t.await.context("a connection's task failed")?;
    }
    let elapsed = start.elapsed();
    let t = std::mem::take(&mut *totals.lock().map_err(|_| anyhow!("poisoned totals"))?);
    let secs = elapsed.as_secs_f64().max(1e-9);
    Ok(PullReport {
        url: cfg.url,
        endpoint: cfg.endpoint,
        query: cfg.query,
        concurrency: cfg.concurrency,
        target_rate: cfg.rate,
        queries: t.queries,
        with_rows: t.with_rows,
        rows: t.rows,
        errors: t.errors,
        seconds: (secs * 1000.0).round() / 1000.0,
        queries_per_sec: (t.queries as f64 / secs).round(),
        latency: t.latency.percentiles(),
        first_error: t.first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_the_key_in_place() {
        let mut buf = Vec::new();
        body(
            Endpoint::QueryStream,
            "SELECT * FROM T WHERE K = 'k{key}';",
            42,
            &mut buf,
        );
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["sql"], "SELECT * FROM T WHERE K = 'k42';");
        assert!(v["properties"].is_object());
        body(Endpoint::Query, "SELECT \"x\" FROM T;", 1, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["ksql"], "SELECT \"x\" FROM T;");
        assert!(v["streamsProperties"].is_object());
    }

    #[test]
    fn rows_are_counted_per_endpoint() {
        let delimited = b"{\"queryId\":\"q\",\"columnNames\":[\"A\"]}\n[1]\n[2]\n";
        assert_eq!(count_rows(Endpoint::QueryStream, delimited), 2);
        assert_eq!(
            count_rows(Endpoint::QueryStream, b"{\"queryId\":\"q\"}\n"),
            0
        );
        let query = b"[{\"header\":{}},{\"row\":{\"columns\":[1]}},{\"row\":{\"columns\":[2]}}]";
        assert_eq!(count_rows(Endpoint::Query, query), 2);
    }

    #[test]
    fn urls_need_plain_http_and_a_port() {
        let (addr, host) = parse_url("http://127.0.0.1:8088").unwrap();
        assert_eq!(addr.port(), 8088);
        assert_eq!(host, "127.0.0.1:8088");
        assert!(parse_url("https://127.0.0.1:8088").is_err());
    }
}

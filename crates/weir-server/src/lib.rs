//! `weir-server` owns the Kafka listener: it accepts connections (up to a
//! limit), cuts the byte stream into request frames (up to a size limit),
//! hands each to the broker and writes the responses back in request order.
//!
//! Requests on one connection are pipelined: the broker does the part that
//! must follow request order (appends) at once, and the rest (waiting for
//! fsync, long polling) runs concurrently, while a writer task sends the
//! responses strictly in order. A malformed, truncated or oversized frame
//! closes only its own connection.
//!
//! [`run`] follows mini-redis: it serves until `shutdown` resolves, then
//! stops accepting, lets each connection finish the requests it has read,
//! and returns once all connections are closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use weir_broker::codec::{decode_request, encode_response, peek_api, Decoded};
use weir_broker::{api_versions, Broker, Reply};

/// Limits for the listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request frame (`socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Most connections at once (`max.connections`).
    pub max_connections: usize,
    /// Close connections idle this long (`connections.max.idle.ms`).
    pub idle_timeout: Duration,
    /// Requests read ahead of their responses on one connection
    /// (`queued.max.requests`).
    pub max_in_flight: usize,
    /// Fault injection for tests: every Nth Produce request is applied but
    /// its connection is closed instead of answered, as if the network
    /// failed after the write. 0 turns it off.
    pub close_after_produce_every: u64,
    /// Log 1 in this many requests at info (api, client, latency, error
    /// code); 0 logs none.
    pub request_log_sample: u64,
}

/// Produce requests seen, for [`ServerConfig::close_after_produce_every`].
static PRODUCE_COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl ServerConfig {
    /// Reads the limits from the broker's configs.
    pub fn from_broker(broker: &Broker) -> Self {
        let s = broker.settings();
        let get = |k: &str| usize::try_from(s.get_i64(k)).unwrap_or(1).max(1);
        Self {
            max_request_bytes: get("socket.request.max.bytes"),
            max_connections: get("max.connections"),
            idle_timeout: Duration::from_millis(
                u64::try_from(s.get_i64("connections.max.idle.ms")).unwrap_or(600_000),
            ),
            max_in_flight: get("queued.max.requests"),
            close_after_produce_every: 0,
            request_log_sample: 0,
        }
    }
}

/// Serves Kafka clients on `listener` until `shutdown` resolves, then
/// drains connections and returns.
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: ServerConfig,
    shutdown: impl Future,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    // The group coordinator's clock: session timeouts, rebalance delays.
    let ticker = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                broker.tick();
            }
        })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        broker
            .metrics()
            .connections_accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let broker = broker.clone();
        let config = config.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            serve_connection(socket, peer, broker, config, stop).await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    info!(
        connections = tasks.len(),
        "shutting down: draining connections"
    );
    broker.begin_shutdown();
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    ticker.abort();
}

/// A response slot, in request order.
enum Pending {
    Ready(Bytes),
    Later(JoinHandle<Option<Bytes>>),
}

async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    config: ServerConfig,
    mut stop: watch::Receiver<bool>,
) {
    debug!(%peer, "connection opened");
    let _open = broker.metrics().connections.enter();
    let (mut reader, writer) = socket.into_split();
    let (tx, mut rx) = mpsc::channel::<Pending>(config.max_in_flight);
    let writer_task = tokio::spawn(async move {
        let mut w = BufWriter::with_capacity(64 * 1024, writer);
        while let Some(p) = rx.recv().await {
            let bytes = match p {
                Pending::Ready(b) => Some(b),
                Pending::Later(h) => h.await.ok().flatten(),
            };
            // A response that could not be built leaves the client
            // waiting for a correlation id; closing is the honest answer.
            let Some(bytes) = bytes else { break };
            if w.write_all(&bytes).await.is_err() {
                break;
            }
            if rx.is_empty() && w.flush().await.is_err() {
                break;
            }
        }
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    });

    let mut len_buf = [0u8; 4];
    // Client quotas: a throttled connection is not read until its
    // throttle time has passed (KIP-219).
    let mute = weir_broker::client_quotas::Mute::default();
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = mute.wait() => {}
        }
        let read_len = tokio::select! {
            _ = stop.changed() => break,
            r = tokio::time::timeout(config.idle_timeout, reader.read_exact(&mut len_buf)) => r,
        };
        match read_len {
            Err(_) => {
                debug!(%peer, "closing idle connection");
                break;
            }
            Ok(Err(_)) => break, // closed by the client
            Ok(Ok(_)) => {}
        }
        let len = i32::from_be_bytes(len_buf);
        let Ok(len) = usize::try_from(len) else {
            warn!(%peer, len, "closing connection: negative frame size");
            break;
        };
        if len > config.max_request_bytes {
            warn!(%peer, len, max = config.max_request_bytes, "closing connection: frame larger than socket.request.max.bytes");
            break;
        }
        let mut frame = BytesMut::zeroed(len);
        match tokio::time::timeout(config.idle_timeout, reader.read_exact(&mut frame)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                warn!(%peer, len, "closing connection: frame truncated");
                break;
            }
            Err(_) => {
                warn!(%peer, len, "closing connection: frame not completed in time");
                break;
            }
        }
        let frame = frame.freeze();
        let api = peek_api(&frame);
        let pending = match decode_request(frame) {
            Ok(Decoded::NewerApiVersions { correlation_id }) => {
                let body = ResponseKind::ApiVersions(api_versions::unsupported_version());
                match encode_response(ApiKey::ApiVersions, 0, correlation_id, &body) {
                    Ok(b) => Pending::Ready(b),
                    Err(e) => {
                        warn!(%peer, error = %e, "closing connection");
                        break;
                    }
                }
            }
            Ok(Decoded::Request { header, body }) => {
                let done = Finish {
                    broker: broker.clone(),
                    api: header.request_api_key,
                    started: Instant::now(),
                    client: header.client_id.as_ref().map(|c| c.to_string()),
                    peer,
                    sample: config.request_log_sample,
                };
                let (Ok(key), version, correlation_id) = (
                    ApiKey::try_from(header.request_api_key),
                    header.request_api_version,
                    header.correlation_id,
                ) else {
                    break;
                };
                let encode = move |resp: ResponseKind| match encode_response(
                    key,
                    version,
                    correlation_id,
                    &resp,
                ) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        warn!(error = %e, "dropping connection: response could not be encoded");
                        None
                    }
                };
                let every = config.close_after_produce_every;
                let inject = every > 0
                    && key == ApiKey::Produce
                    && PRODUCE_COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % every
                        == every - 1;
                let reply = broker.handle_from(&header, body, &peer.ip().to_string());
                if inject {
                    warn!(%peer, "fault injection: closing the connection instead of answering a produce");
                    if let Reply::Later(fut) = reply {
                        fut.await;
                    }
                    break;
                }
                match reply {
                    Reply::None => {
                        done.finish(None);
                        continue;
                    }
                    Reply::Ready(resp) => {
                        done.finish(Some(&resp));
                        mute.note(&resp);
                        match encode(resp) {
                            Some(b) => Pending::Ready(b),
                            None => break,
                        }
                    }
                    Reply::Later(fut) => {
                        let mute = mute.clone();
                        Pending::Later(tokio::spawn(async move {
                            let resp = fut.await;
                            done.finish(Some(&resp));
                            mute.note(&resp);
                            encode(resp)
                        }))
                    }
                }
            }
            Err(e) => {
                broker.metrics().record_bad_request(api.map_or(-1, |a| a.0));
                warn!(%peer, api = ?api, error = %e, "closing connection: bad request");
                break;
            }
        };
        if tx.send(pending).await.is_err() {
            break; // the writer stopped: the client is gone
        }
    }
    // Let the writer send what was already accepted, then close.
    drop(tx);
    let _ = writer_task.await;
    debug!(%peer, "connection closed");
}

/// Requests seen, for request-log sampling.
static REQUESTS_SEEN: AtomicU64 = AtomicU64::new(0);

/// What is needed to account for a request once its response is ready.
struct Finish {
    broker: Arc<Broker>,
    api: i16,
    started: Instant,
    client: Option<String>,
    peer: SocketAddr,
    sample: u64,
}

impl Finish {
    /// Records the request's metrics and, if sampled, logs it.
    fn finish(self, resp: Option<&ResponseKind>) {
        let elapsed = self.started.elapsed();
        let code = self
            .broker
            .metrics()
            .record_request(self.api, elapsed, resp);
        if self.sample > 0 && REQUESTS_SEEN.fetch_add(1, Ordering::Relaxed) % self.sample == 0 {
            let api = ApiKey::try_from(self.api)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|()| self.api.to_string());
            info!(
                target: "weir::request",
                api,
                client_id = self.client.as_deref().unwrap_or(""),
                client = %self.peer,
                latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                error_code = code,
                "request"
            );
        }
    }
}

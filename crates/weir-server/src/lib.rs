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
//! [`serve`] runs several listeners, each with its own security protocol
//! (Kafka's `listeners`): TLS comes from `weir-tls`, and the SASL
//! exchange happens on the connection itself, before requests reach the
//! broker, as in Kafka's authenticator ([`auth`] holds the states). The
//! broker sees each request with the connection's [`Session`].
//!
//! [`run`] follows mini-redis: it serves until `shutdown` resolves, then
//! stops accepting, lets each connection finish the requests it has read,
//! and returns once all connections are closed.

mod auth;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use weir_auth::{KafkaPrincipal, SecurityProtocol, Session};
use weir_broker::codec::{decode_request, encode_response, peek_api, Decoded};
use weir_broker::security::AuditEvent;
use weir_broker::{api_versions, Broker, Reply};

use weir_auth::ssl_mapping::PrincipalMapper;
use weir_tls::TlsSource;

use crate::auth::{ConnAuth, Gate};

/// One bound listener.
#[derive(Debug)]
pub struct Listener {
    /// Its name (`PLAINTEXT`, `EXTERNAL`): sessions carry it and the
    /// broker advertises its address to clients that came through it.
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// The bound socket.
    pub socket: TcpListener,
    /// TLS; required when the protocol uses TLS.
    pub tls: Option<ListenerTls>,
}

/// A TLS listener's certificate source and how a client certificate's
/// subject becomes a principal (`ssl.principal.mapping.rules`).
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// The certificate, key and client-certificate settings.
    pub source: Arc<TlsSource>,
    /// Kafka's mapping rules.
    pub principal_mapper: Arc<PrincipalMapper>,
}

impl Listener {
    /// A PLAINTEXT listener named `PLAINTEXT`.
    pub fn plaintext(socket: TcpListener) -> Self {
        Self {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            socket,
            tls: None,
        }
    }
}

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

/// Serves Kafka clients on `listener` (PLAINTEXT) until `shutdown`
/// resolves, then drains connections and returns.
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: ServerConfig,
    shutdown: impl Future,
) {
    serve(
        vec![Listener::plaintext(listener)],
        broker,
        config,
        shutdown,
    )
    .await;
}

/// Serves Kafka clients on every listener until `shutdown` resolves, then
/// stops accepting, drains connections and returns.
pub async fn serve(
    listeners: Vec<Listener>,
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
    let (accepting_tx, accepting_rx) = watch::channel(true);
    let mut loops = tokio::task::JoinSet::new();
    for l in listeners {
        loops.spawn(accept_loop(
            l,
            broker.clone(),
            config.clone(),
            limit.clone(),
            accepting_rx.clone(),
            stop_rx.clone(),
        ));
    }
    shutdown.await;
    let _ = accepting_tx.send(false);
    broker.begin_shutdown();
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
    ticker.abort();
}

/// Accepts on one listener until `accepting` turns false, then waits for
/// its connections to drain.
async fn accept_loop(
    listener: Listener,
    broker: Arc<Broker>,
    config: ServerConfig,
    limit: Arc<Semaphore>,
    mut accepting: watch::Receiver<bool>,
    stop_rx: watch::Receiver<bool>,
) {
    let Listener {
        name,
        protocol,
        socket: tcp,
        tls,
    } = listener;
    let name: Arc<str> = name.into();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        if !*accepting.borrow() {
            break;
        }
        let permit = tokio::select! {
            _ = accepting.changed() => continue,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (socket, peer) = tokio::select! {
            _ = accepting.changed() => continue,
            accepted = tcp.accept() => match accepted {
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
        let session = Session {
            principal: KafkaPrincipal::anonymous(),
            client_host: Some(peer.ip()),
            listener: name.to_string(),
            protocol,
        };
        let tls = tls.clone();
        tasks.spawn(async move {
            match tls {
                Some(tls) => {
                    if let Some((stream, session)) =
                        tls_accept(&broker, &tls, socket, session).await
                    {
                        serve_connection(stream, peer, broker, config, stop, session).await;
                    }
                }
                None => serve_connection(socket, peer, broker, config, stop, session).await,
            }
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    info!(
        listener = %name,
        connections = tasks.len(),
        "shutting down: draining connections"
    );
    while tasks.join_next().await.is_some() {}
}

/// Completes the TLS handshake and, with a client certificate, sets the
/// session's principal from its subject. `None` closes the connection.
async fn tls_accept(
    broker: &Broker,
    tls: &ListenerTls,
    socket: TcpStream,
    mut session: Session,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, Session)> {
    let stream = match tls.source.accept(socket).await {
        Ok(s) => s,
        Err(e) => {
            // Plaintext sent to a TLS port ends here, as does a refused
            // client certificate or a client that never finishes.
            debug!(client = %session.host(), error = %e, "TLS handshake failed");
            return None;
        }
    };
    if let Some(cert) = weir_tls::peer_certificate(&stream) {
        let mut event = AuditEvent::new("authentication", &session, "success");
        event.operation = "SSL".into();
        event.resource = format!("listener:{}", session.listener);
        match weir_tls::subject_dn(&cert).and_then(|dn| tls.principal_mapper.map(&dn)) {
            Some(name) => {
                session.principal = KafkaPrincipal::user(name);
                event.principal = session.principal.to_string();
                broker.audit(event);
            }
            None => {
                event.outcome = "failure";
                event.detail = "no ssl.principal.mapping.rules rule matches the certificate".into();
                broker.audit(event);
                return None;
            }
        }
    }
    Some((stream, session))
}

/// A response slot, in request order.
enum Pending {
    Ready(Bytes),
    Later(JoinHandle<Option<Bytes>>),
}

async fn serve_connection<S>(
    socket: S,
    peer: SocketAddr,
    broker: Arc<Broker>,
    config: ServerConfig,
    mut stop: watch::Receiver<bool>,
    session: Session,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    debug!(%peer, listener = %session.listener, "connection opened");
    let _open = broker.metrics().connections.enter();
    let mut auth = ConnAuth::new(session.protocol.uses_sasl(), session);
    let (mut reader, writer) = tokio::io::split(socket);
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
        // Read into uninitialised capacity: zeroing each request buffer
        // first was a tenth of the produce path's CPU.
        let mut frame = BytesMut::with_capacity(len);
        let read_frame = async {
            let mut body = (&mut reader).take(len as u64);
            while frame.len() < len {
                if body.read_buf(&mut frame).await? == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
            }
            Ok(())
        };
        match tokio::time::timeout(config.idle_timeout, read_frame).await {
            Ok(Ok(())) => {}
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
        if auth.expects_raw_token() {
            // After a v0 SaslHandshake the exchange uses raw SASL tokens,
            // each length-prefixed, without Kafka headers.
            match auth.raw_token(&broker, &frame) {
                Ok(token) => {
                    let mut out = BytesMut::with_capacity(4 + token.len());
                    out.extend_from_slice(&u32::try_from(token.len()).unwrap_or(0).to_be_bytes());
                    out.extend_from_slice(&token);
                    if tx.send(Pending::Ready(out.freeze())).await.is_err() {
                        break;
                    }
                    continue;
                }
                Err(()) => break,
            }
        }
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
                // SASL requests are answered by the connection itself;
                // everything else passes the authentication gate.
                let body = match body {
                    RequestKind::SaslHandshake(r) => Err(auth.handshake(&broker, r, version)),
                    RequestKind::SaslAuthenticate(r) => Err(auth.authenticate(&broker, r, version)),
                    other => Ok(other),
                };
                let body = match body {
                    Ok(body) => {
                        if key != ApiKey::ApiVersions {
                            if let Gate::Close(why) = auth.gate() {
                                info!(%peer, api = ?key, "closing connection: {why}");
                                break;
                            }
                        }
                        body
                    }
                    Err(reply) => {
                        done.finish(Some(&reply.response));
                        let Some(b) = encode(reply.response) else {
                            break;
                        };
                        if tx.send(Pending::Ready(b)).await.is_err() || reply.close {
                            break;
                        }
                        continue;
                    }
                };
                let every = config.close_after_produce_every;
                let inject = every > 0
                    && key == ApiKey::Produce
                    && PRODUCE_COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % every
                        == every - 1;
                let reply = broker.handle_as(&header, body, &auth.session);
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

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
//!
//! Modules: the accept loops are here; `connection` is one connection
//! (framing, SASL and the gate, the hand-off to the broker, in-order
//! replies); `auth` its authentication state; `accounting` the request
//! metrics and sampled request log; [`error`] why a connection closes.

mod accounting;
mod auth;
mod connection;
pub mod error;
#[cfg(feature = "fault-injection")]
mod fault;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};
use weir_auth::ssl_mapping::PrincipalMapper;
use weir_auth::{KafkaPrincipal, SecurityProtocol, Session};
use weir_broker::security::AuditEvent;
use weir_broker::Broker;
use weir_tls::TlsSource;

use crate::connection::Connection;
pub use crate::error::ServerError;
#[cfg(feature = "fault-injection")]
pub use crate::fault::Faults;

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
    /// Log 1 in this many requests at info (api, client, latency, error
    /// code); 0 logs none.
    pub request_log_sample: u64,
    /// Faults to inject (test builds only).
    #[cfg(feature = "fault-injection")]
    pub faults: Faults,
}

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
            request_log_sample: 0,
            #[cfg(feature = "fault-injection")]
            faults: Faults::default(),
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
                        Connection::serve(stream, peer, broker, config, stop, session).await;
                    }
                }
                None => Connection::serve(socket, peer, broker, config, stop, session).await,
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
                broker.security().audit(event);
            }
            None => {
                event.outcome = "failure";
                event.detail = "no ssl.principal.mapping.rules rule matches the certificate".into();
                broker.security().audit(event);
                return None;
            }
        }
    }
    Some((stream, session))
}

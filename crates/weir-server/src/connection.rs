//! One client connection: framing, the SASL exchange and the
//! authentication gate, the hand-off to the broker, and in-order replies.
//!
//! A `Connection` reads frames one at a time and hands each request to
//! the broker in order. What the broker must do in request order (appends)
//! happens there; what waits (fsync for acks=all, long polling) runs in
//! its own task, while the writer task sends the replies strictly in
//! request order. A throttled connection (client quotas) is not read until
//! its throttle time has passed (KIP-219).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use weir_auth::Session;
use weir_broker::codec::{decode_request, encode_response_chunks, peek_api, Decoded};
use weir_broker::security::client_quotas::Mute;
use weir_broker::{api_versions, Broker, Reply};

use crate::accounting::Accounting;
use crate::auth::{ConnAuth, Gate, SaslReply};
use crate::{ServerConfig, ServerError};

/// One encoded response: chunks to send back to back (see
/// `encode_response_chunks`).
type Frame = Vec<Bytes>;

/// A reply slot, in request order.
enum Pending {
    Ready(Frame),
    /// `None` when the response could not be built: the connection closes.
    Later(JoinHandle<Option<Frame>>),
}

/// How to frame the response to one request.
#[derive(Clone, Copy)]
struct Respond {
    key: ApiKey,
    version: i16,
    correlation_id: i32,
}

impl Respond {
    fn encode(self, resp: &ResponseKind) -> Result<Frame, ServerError> {
        encode_response_chunks(self.key, self.version, self.correlation_id, resp).map_err(|e| {
            ServerError::Encode {
                api: self.key as i16,
                detail: e.to_string(),
            }
        })
    }
}

/// One client connection.
pub(crate) struct Connection<S> {
    reader: ReadHalf<S>,
    peer: SocketAddr,
    broker: Arc<Broker>,
    config: ServerConfig,
    auth: ConnAuth,
    replies: mpsc::Sender<Pending>,
    mute: Mute,
    /// Large frames are read into this buffer's free capacity; see
    /// `read_frame`.
    rbuf: BytesMut,
}

/// Frames up to this size reuse the connection's read buffer.
const REUSE_MAX: usize = 8 * 1024 * 1024;
/// Frames from this size use it; smaller ones get their own allocation, so
/// a long-lived slice of a small request (a name kept by a handler) never
/// pins a large buffer.
const REUSE_MIN: usize = 64 * 1024;

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    /// Serves `socket` until the client leaves, a request closes it, or
    /// `stop` turns true; then sends the replies already accepted and
    /// closes.
    pub(crate) async fn serve(
        socket: S,
        peer: SocketAddr,
        broker: Arc<Broker>,
        config: ServerConfig,
        mut stop: watch::Receiver<bool>,
        session: Session,
    ) {
        debug!(%peer, listener = %session.listener, "connection opened");
        let _open = broker.metrics().connections.enter();
        let (reader, writer) = tokio::io::split(socket);
        let (replies, queue) = mpsc::channel(config.max_in_flight);
        // TLS encrypts into its own buffer anyway: there the chunks are
        // copied into one buffer, as before.
        let vectored = !session.protocol.uses_tls();
        let writer = tokio::spawn(write_replies(queue, writer, vectored));
        let mut conn = Self {
            reader,
            peer,
            auth: ConnAuth::new(session.protocol.uses_sasl(), session),
            broker,
            config,
            replies,
            mute: Mute::default(),
            rbuf: BytesMut::new(),
        };
        match conn.run(&mut stop).await {
            Ok(()) => {}
            Err(e) if e.is_warning() => warn!(%peer, "closing connection: {e}"),
            Err(e @ ServerError::NotAuthenticated { .. }) => {
                info!(%peer, "closing connection: {e}");
            }
            Err(e) => debug!(%peer, "closing connection: {e}"),
        }
        // Let the writer send what was already accepted, then close.
        drop(conn);
        let _ = writer.await;
        debug!(%peer, "connection closed");
    }

    /// The request loop; `Ok` when stopped by the server.
    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), ServerError> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                () = self.mute.wait() => {}
            }
            let frame = tokio::select! {
                _ = stop.changed() => return Ok(()),
                f = self.read_frame() => f?,
            };
            self.handle(frame).await?;
        }
    }

    /// Reads one length-prefixed frame within the idle timeout.
    async fn read_frame(&mut self) -> Result<Bytes, ServerError> {
        let timeout = self.config.idle_timeout;
        let mut len_buf = [0u8; 4];
        match tokio::time::timeout(timeout, self.reader.read_exact(&mut len_buf)).await {
            Err(_) => return Err(ServerError::Idle { timeout }),
            Ok(Err(_)) => return Err(ServerError::Closed),
            Ok(Ok(_)) => {}
        }
        let len = i32::from_be_bytes(len_buf);
        let len = usize::try_from(len).map_err(|_| ServerError::NegativeFrameSize { len })?;
        let max = self.config.max_request_bytes;
        if len > max {
            return Err(ServerError::FrameTooLarge { len, max });
        }
        // Read into uninitialised capacity: zeroing each request buffer
        // first was a tenth of the produce path's CPU. A large frame (a
        // produce request) takes the connection's buffer, whose allocation
        // `reserve` reclaims in place once the previous frames are dropped.
        // A fresh allocation per request is new memory the kernel faults in
        // and clears page by page: anonymous page faults were about a tenth
        // of the broker's CPU in a profile of an acks=all produce.
        let reuse = (REUSE_MIN..=REUSE_MAX).contains(&len);
        let mut frame = if reuse {
            self.rbuf.reserve(len);
            std::mem::take(&mut self.rbuf)
        } else {
            BytesMut::with_capacity(len)
        };
        let read = async {
            let mut body = (&mut self.reader).take(len as u64);
            while frame.len() < len {
                if body.read_buf(&mut frame).await? == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(())) if reuse => {
                // The rest of the allocation stays for the next frame.
                let whole = frame.split_to(len);
                self.rbuf = frame;
                Ok(whole.freeze())
            }
            Ok(Ok(())) => Ok(frame.freeze()),
            Ok(Err(_)) => Err(ServerError::Truncated { len }),
            Err(_) => Err(ServerError::SlowFrame { len, timeout }),
        }
    }

    /// Queues a reply for the writer. (`&mut self`: a shared borrow held
    /// across the await would need the SASL state to be `Sync`.)
    async fn send(&mut self, pending: Pending) -> Result<(), ServerError> {
        // A stopped writer means the client is gone.
        self.replies
            .send(pending)
            .await
            .map_err(|_| ServerError::Closed)
    }

    async fn handle(&mut self, frame: Bytes) -> Result<(), ServerError> {
        if self.auth.expects_raw_token() {
            // After a v0 SaslHandshake the exchange uses raw SASL tokens,
            // each length-prefixed, without Kafka headers.
            let token = self
                .auth
                .raw_token(&self.broker, &frame)
                .map_err(|()| ServerError::SaslFailed)?;
            let mut out = BytesMut::with_capacity(4 + token.len());
            out.extend_from_slice(&u32::try_from(token.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&token);
            return self.send(Pending::Ready(vec![out.freeze()])).await;
        }
        let api = peek_api(&frame);
        match decode_request(frame) {
            Ok(Decoded::NewerApiVersions { correlation_id }) => {
                let body = ResponseKind::ApiVersions(api_versions::unsupported_version());
                let respond = Respond {
                    key: ApiKey::ApiVersions,
                    version: 0,
                    correlation_id,
                };
                self.send(Pending::Ready(respond.encode(&body)?)).await
            }
            Ok(Decoded::Request { header, body }) => self.request(header, body).await,
            Err(e) => {
                let api = api.map(|a| a.0);
                self.broker.metrics().record_bad_request(api.unwrap_or(-1));
                Err(ServerError::BadRequest {
                    api,
                    detail: e.to_string(),
                })
            }
        }
    }

    async fn request(
        &mut self,
        header: RequestHeader,
        body: RequestKind,
    ) -> Result<(), ServerError> {
        let key =
            ApiKey::try_from(header.request_api_key).map_err(|()| ServerError::BadRequest {
                api: Some(header.request_api_key),
                detail: "unknown API key".into(),
            })?;
        let respond = Respond {
            key,
            version: header.request_api_version,
            correlation_id: header.correlation_id,
        };
        let accounting = Accounting::start(
            &self.broker,
            &header,
            self.peer,
            self.config.request_log_sample,
        );
        // SASL requests are answered by the connection itself; everything
        // else passes the authentication gate.
        let sasl = match body {
            RequestKind::SaslHandshake(r) => self.auth.handshake(&self.broker, r, respond.version),
            RequestKind::SaslAuthenticate(r) => {
                self.auth.authenticate(&self.broker, r, respond.version)
            }
            body => return self.pass_to_broker(header, body, respond, accounting).await,
        };
        let SaslReply { response, close } = sasl;
        accounting.finish(Some(&response));
        self.send(Pending::Ready(respond.encode(&response)?))
            .await?;
        if close {
            return Err(ServerError::SaslFailed);
        }
        Ok(())
    }

    async fn pass_to_broker(
        &mut self,
        header: RequestHeader,
        body: RequestKind,
        respond: Respond,
        accounting: Accounting,
    ) -> Result<(), ServerError> {
        if respond.key != ApiKey::ApiVersions {
            if let Gate::Close(reason) = self.auth.gate() {
                return Err(ServerError::NotAuthenticated {
                    api: respond.key as i16,
                    reason,
                });
            }
        }
        #[cfg(feature = "fault-injection")]
        let drop_answer = self.config.faults.drop_answer(respond.key);
        let reply = self.broker.handle_as(&header, body, &self.auth.session);
        #[cfg(feature = "fault-injection")]
        if drop_answer {
            warn!(peer = %self.peer, "fault injection: closing the connection instead of answering a produce");
            if let Reply::Later(fut) = reply {
                fut.await;
            }
            return Err(ServerError::InjectedFault);
        }
        let pending = match reply {
            Reply::None => {
                accounting.finish(None);
                return Ok(());
            }
            Reply::Close => {
                accounting.finish(None);
                return Err(ServerError::ProduceFailed);
            }
            Reply::Ready(resp) => {
                accounting.finish(Some(&resp));
                self.mute.note(&resp);
                Pending::Ready(respond.encode(&resp)?)
            }
            Reply::Later(fut) => {
                let mute = self.mute.clone();
                let (answered, held) = tokio::sync::oneshot::channel::<()>();
                let held = self
                    .broker
                    .over_quota(&header, &self.auth.session)
                    .then_some(held);
                let pending = Pending::Later(tokio::spawn(async move {
                    let resp = fut.await;
                    accounting.finish(Some(&resp));
                    mute.note(&resp);
                    let _ = answered.send(());
                    match respond.encode(&resp) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            warn!("closing connection: {e}");
                            None
                        }
                    }
                }));
                self.send(pending).await?;
                // Over its quota: nothing more is read until the throttle
                // time is known (then `mute` holds the reads).
                if let Some(held) = held {
                    let _ = held.await;
                }
                return Ok(());
            }
        };
        self.send(pending).await
    }
}

/// Small chunks are copied into one buffer up to this size before it is
/// queued for the socket.
const STAGE_BYTES: usize = 64 * 1024;
/// Queued bytes that make the writer write before the reply queue is empty.
const WRITE_BYTES: usize = 1024 * 1024;
/// Chunks per vectored write (the kernel takes up to 1024).
const MAX_IOV: usize = 64;

/// Sends replies in request order, writing whenever none is queued or the
/// next is not answered yet. With `vectored` (plaintext), the large chunks
/// of a frame (a Fetch response's record sets, which borrow the mapped
/// segment) go to the socket in vectored writes without being copied;
/// small chunks, and every chunk without `vectored`, are copied into a
/// staging buffer.
async fn write_replies<S: AsyncWrite>(
    mut queue: mpsc::Receiver<Pending>,
    writer: WriteHalf<S>,
    vectored: bool,
) {
    let mut w = Out {
        writer,
        stage: BytesMut::with_capacity(STAGE_BYTES),
        queued: VecDeque::new(),
        queued_bytes: 0,
    };
    while let Some(p) = queue.recv().await {
        let frame = match p {
            Pending::Ready(b) => Some(b),
            Pending::Later(h) => {
                // Answers already built go out before waiting on one that
                // is not: a pipelining producer must not wait for its
                // next request's answer to get this one.
                if !h.is_finished() && !w.is_empty() && w.write_out().await.is_err() {
                    break;
                }
                h.await.ok().flatten()
            }
        };
        // A response that could not be built leaves the client waiting
        // for a correlation id; closing is the honest answer.
        let Some(frame) = frame else { break };
        for chunk in frame {
            w.push(chunk, vectored);
        }
        let full = w.queued_bytes + w.stage.len() >= WRITE_BYTES;
        if (full || queue.is_empty()) && w.write_out().await.is_err() {
            break;
        }
    }
    let _ = w.write_out().await;
    let _ = w.writer.shutdown().await;
}

/// The writer's side of a connection with what is waiting to be written.
struct Out<W> {
    writer: W,
    /// Small chunks, copied.
    stage: BytesMut,
    /// Chunks in order, each written after the previous one.
    queued: VecDeque<Bytes>,
    queued_bytes: usize,
}

impl<W: AsyncWrite + Unpin> Out<W> {
    fn push(&mut self, chunk: Bytes, vectored: bool) {
        if vectored && chunk.len() >= weir_broker::codec::SHARED_CHUNK_MIN {
            self.stage_out();
            self.queue(chunk);
        } else {
            self.stage.extend_from_slice(&chunk);
            if self.stage.len() >= STAGE_BYTES {
                self.stage_out();
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.stage.is_empty() && self.queued.is_empty()
    }

    fn queue(&mut self, chunk: Bytes) {
        self.queued_bytes += chunk.len();
        self.queued.push_back(chunk);
    }

    /// Moves the staged bytes to the queue.
    fn stage_out(&mut self) {
        if !self.stage.is_empty() {
            let staged = self.stage.split().freeze();
            self.queue(staged);
        }
    }

    /// Writes everything queued, handling partial writes, then flushes.
    async fn write_out(&mut self) -> std::io::Result<()> {
        self.stage_out();
        while !self.queued.is_empty() {
            let n = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut used = 0;
                for (slot, chunk) in iov.iter_mut().zip(&self.queued) {
                    *slot = IoSlice::new(chunk);
                    used += 1;
                }
                self.writer.write_vectored(&iov[..used]).await?
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.consume(n);
        }
        self.writer.flush().await
    }

    /// Drops the first `n` written bytes from the queue.
    fn consume(&mut self, mut n: usize) {
        self.queued_bytes = self.queued_bytes.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queued.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.queued.pop_front();
        }
    }
}

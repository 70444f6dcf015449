//! One connection to one broker: TCP or TLS, ApiVersions negotiation, the
//! SASL login when the listener wants one, then typed requests one at a
//! time.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::error::{check, ClientError};
use crate::sasl::SaslClient;
use crate::security::ClientSecurity;
use crate::Result;

/// How long connecting to a broker (TCP, TLS and SASL) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a client reaches brokers: request timeout, client id and security.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long a request may wait for its answer.
    pub timeout: Duration,
    /// The `client.id` sent in every request header.
    pub client_id: String,
    /// `security.protocol`, TLS and SASL settings.
    pub security: ClientSecurity,
}

impl ClientConfig {
    /// Plaintext connections with `timeout`, as the CLI's `weir-cli`.
    pub fn plaintext(timeout: Duration) -> Self {
        Self {
            timeout,
            client_id: "weir-cli".into(),
            security: ClientSecurity::default(),
        }
    }
}

/// A plain or TLS byte stream.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One connection to one broker.
pub(crate) struct Conn {
    pub(crate) addr: String,
    stream: Stream,
    next_id: i32,
    client_id: StrBytes,
    pub(crate) versions: HashMap<i16, (i16, i16)>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

/// The host of `host:port` (IPv6 brackets removed).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Conn {
    /// Connects, negotiates versions and logs in as `config` says.
    pub(crate) async fn open(addr: &str, config: &ClientConfig) -> Result<Self> {
        let connect_error = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let security = &config.security;
        let setup = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| connect_error(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let stream = if security.protocol.uses_tls() {
                let tls: Arc<rustls::ClientConfig> = security.tls_config()?;
                let name = rustls::pki_types::ServerName::try_from(host_of(addr).to_string())
                    .map_err(|e| connect_error(format!("bad TLS server name: {e}")))?;
                let s = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| connect_error(format!("TLS handshake failed: {e}")))?;
                Stream::Tls(Box::new(s))
            } else {
                Stream::Plain(tcp)
            };
            let mut c = Conn {
                addr: addr.to_string(),
                stream,
                next_id: 1,
                client_id: StrBytes::from_string(config.client_id.clone()),
                versions: HashMap::new(),
            };
            // ApiVersions v0 works everywhere (and is what a newer broker
            // answers an unknown version with), so negotiate from there.
            let resp: ApiVersionsResponse = c
                .send_at(ApiVersionsRequest::default(), 0, config.timeout)
                .await?;
            check(
                resp.error_code,
                &format!("{addr} refused ApiVersions"),
                None,
            )?;
            c.versions = resp
                .api_keys
                .iter()
                .map(|k: &ApiVersion| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if security.protocol.uses_sasl() {
                c.login(security, config.timeout).await?;
            }
            Ok::<_, ClientError>(c)
        };
        tokio::time::timeout(CONNECT_TIMEOUT.max(config.timeout), setup)
            .await
            .map_err(|_| connect_error("timed out".into()))?
    }

    /// SaslHandshake v1, then SaslAuthenticate until the mechanism is done.
    async fn login(&mut self, security: &ClientSecurity, timeout: Duration) -> Result<()> {
        let login = security.sasl.as_ref().ok_or_else(|| ClientError::Config {
            key: "sasl.mechanism".into(),
            reason: "the protocol needs a SASL login".into(),
        })?;
        let auth_failed = |addr: &str, reason: String| ClientError::Authentication {
            addr: addr.to_string(),
            reason,
        };
        let mechanism = login.mechanism();
        let v = self.version::<SaslHandshakeRequest>(1)?;
        let resp = self
            .send_at(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
                v,
                timeout,
            )
            .await?;
        if resp.error_code != 0 {
            let offered: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(auth_failed(
                &self.addr,
                format!(
                    "{mechanism} is not enabled (the listener offers {})",
                    offered.join(", ")
                ),
            ));
        }
        let mut client = SaslClient::start(login).map_err(|e| auth_failed(&self.addr, e))?;
        let v = self.version::<SaslAuthenticateRequest>(2)?;
        let mut server: Option<Bytes> = None;
        while let Some(msg) = client
            .step(server.as_deref())
            .map_err(|e| auth_failed(&self.addr, e))?
        {
            let resp = self
                .send_at(
                    SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(msg)),
                    v,
                    timeout,
                )
                .await?;
            if resp.error_code != 0 {
                let why = resp
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| crate::error::error_text(resp.error_code));
                return Err(auth_failed(&self.addr, why));
            }
            server = Some(resp.auth_bytes);
        }
        Ok(())
    }

    /// The version to send `R` at: the highest both sides speak, at most `cap`.
    pub(crate) fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        let &(min, max) = self
            .versions
            .get(&R::KEY)
            .ok_or_else(|| ClientError::Unsupported {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
            })?;
        let v = max.min(cap).min(R::VERSIONS.max);
        if v < min.max(R::VERSIONS.min) {
            return Err(ClientError::NoCommonVersion {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
            });
        }
        Ok(v)
    }

    /// Sends `req` at `version` and waits up to `timeout` for its answer.
    pub(crate) async fn send_at<R: Request>(
        &mut self,
        req: R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .and_then(|()| req.encode(&mut buf, version))
            .map_err(|e| ClientError::Encode {
                api: api_name(R::KEY),
                reason: e.to_string(),
            })?;
        let len = i32::try_from(buf.len() - 4).map_err(|_| ClientError::Encode {
            api: api_name(R::KEY),
            reason: "request larger than 2 GiB".into(),
        })?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let addr = self.addr.clone();
        let io = async {
            self.stream.write_all(&buf).await?;
            self.stream.flush().await?;
            let n = self.stream.read_i32().await?;
            let n = usize::try_from(n).map_err(|_| std::io::Error::other("negative frame"))?;
            let mut frame = BytesMut::zeroed(n);
            self.stream.read_exact(&mut frame).await?;
            Ok::<_, std::io::Error>(frame.freeze())
        };
        let mut frame = tokio::time::timeout(timeout, io)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.clone(),
                secs: timeout.as_secs(),
            })?
            .map_err(|source| ClientError::Io {
                addr: addr.clone(),
                source,
            })?;
        let protocol = |reason: String| ClientError::Protocol {
            addr: addr.clone(),
            reason,
        };
        let rh = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| protocol(format!("bad response header: {e}")))?;
        if rh.correlation_id != id {
            return Err(protocol("answered out of order".into()));
        }
        let resp = R::Response::decode(&mut frame, version)
            .map_err(|e| protocol(format!("{} v{version}: {e}", api_name(R::KEY))))?;
        let _ = frame.remaining();
        Ok(resp)
    }

    /// Sends `req` at the best version up to `cap`.
    pub(crate) async fn send<R: Request>(
        &mut self,
        req: R,
        cap: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let v = self.version::<R>(cap)?;
        self.send_at(req, v, timeout).await
    }
}

/// The API's name as kafka-protocol spells it (`OffsetFetch`), or its key.
pub(crate) fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("API {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("kafka.example.com:9093"), "kafka.example.com");
        assert_eq!(host_of("[::1]:9093"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}

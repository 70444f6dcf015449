//! TLS for the engine's PostgreSQL connections: libpq's `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` in the `--cluster` URL, read by
//! the same config as the PostgreSQL connectors (`weir_tls::client`), and
//! a tokio-postgres connector over tokio-rustls.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require` and
//! refuses the file parameters, so the four are taken out of the URL
//! before it parses the rest. It cannot try plaintext first, so `allow` is
//! taken as `prefer`; `verify-ca` and `verify-full` ask it for TLS
//! (`require`) and the rustls config does the checking.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use weir_tls::client::{PgTlsConfig, SslMode};

use crate::ClusterError;

/// How long a connection attempt may take when the URL does not say
/// (`connect_timeout`): a host that drops packets must not hold a
/// flush, a fetch or the listener for the system's TCP timeout.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where to connect and how: the URL's other settings, and the
/// connector (its rustls config read once from the files).
#[derive(Clone)]
pub(crate) struct PgTarget {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustls,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("sslmode", &self.tls.mode.name())
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Parses `url` (`postgres://...?sslmode=verify-full&sslrootcert=...`)
    /// and reads the certificate files, so bad settings fail at start.
    pub(crate) fn parse(url: &str) -> Result<PgTarget, ClusterError> {
        let (rest, tls) = split_tls(url)?;
        let mut config: tokio_postgres::Config = rest.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let client = tls
            .client_config()
            .map_err(|e| ClusterError::PgTls(e.to_string()))?;
        config.ssl_mode(match (tls.mode, &client) {
            (_, None) | (SslMode::Disable, _) => tokio_postgres::config::SslMode::Disable,
            (SslMode::Allow | SslMode::Prefer, _) => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(PgTarget {
            config,
            tls: MakeRustls {
                mode: tls.mode,
                client,
            },
        })
    }
}

/// `url` without the TLS parameters, and the TLS settings they give
/// (libpq's default `prefer` when there is no `sslmode`).
fn split_tls(url: &str) -> Result<(String, PgTlsConfig), ClusterError> {
    let mut tls = PgTlsConfig::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), tls));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = url::form_urlencoded::parse(pair.as_bytes()).next() else {
            continue;
        };
        match k.as_ref() {
            "sslmode" => {
                tls.mode = SslMode::parse(&v).ok_or_else(|| {
                    ClusterError::PgTls(format!(
                        "sslmode={v}: use disable, allow, prefer, require, verify-ca or verify-full"
                    ))
                })?
            }
            "sslrootcert" => tls.rootcert = Some(v.into_owned().into()),
            "sslcert" => tls.cert = Some(v.into_owned().into()),
            "sslkey" => tls.key = Some(v.into_owned().into()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, tls))
}

/// tokio-postgres's connector over tokio-rustls.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    mode: SslMode,
    /// `None` for `disable`, when tokio-postgres never asks for TLS.
    client: Option<Arc<rustls::ClientConfig>>,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, io::Error> {
        // Asked even under `disable`, where the connector is never used.
        let client = self.client.clone();
        // Only verify-full checks the name; the others still send it
        // (SNI) when it is one, as the connectors do.
        let name = match ServerName::try_from(host.to_string()) {
            Ok(n) => n,
            Err(e) if self.mode == SslMode::VerifyFull => {
                return Err(io::Error::other(format!("host name {host}: {e}")))
            }
            Err(_) => ServerName::try_from("localhost").expect("a valid name"),
        };
        Ok(RustlsConnect {
            client,
            name,
            host: host.to_string(),
            mode: self.mode,
        })
    }
}

/// One handshake.
pub(crate) struct RustlsConnect {
    client: Option<Arc<rustls::ClientConfig>>,
    name: ServerName<'static>,
    host: String,
    mode: SslMode,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let client = self
                .client
                .ok_or_else(|| io::Error::other("TLS asked for under sslmode=disable"))?;
            let connector = tokio_rustls::TlsConnector::from(client);
            let tls = tokio::time::timeout(
                weir_tls::HANDSHAKE_TIMEOUT,
                connector.connect(self.name, stream),
            )
            .await
            .map_err(|_| io::Error::other("TLS handshake timed out"))?
            // Say which check refused it: a wrong host name or CA is an
            // operator's mistake to be read at start.
            .map_err(|e| {
                io::Error::other(format!(
                    "TLS handshake with {} (sslmode={}) failed: {e}",
                    self.host,
                    self.mode.name()
                ))
            })?;
            Ok(RustlsStream(tls))
        })
    }
}

/// The encrypted stream.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    /// No channel binding: SCRAM then works as without TLS
    /// (SCRAM-SHA-256, not -PLUS).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_leave_the_url() {
        let (rest, tls) = split_tls(
            "postgres://u@db.example:5432/d?sslmode=verify-full&application_name=x&sslrootcert=%2Fca%20dir%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@db.example:5432/d?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.rootcert.unwrap().to_str(), Some("/ca dir/ca.pem"));
        let (rest, tls) = split_tls("postgres://u@h/d").unwrap();
        assert_eq!(
            (rest.as_str(), tls.mode),
            ("postgres://u@h/d", SslMode::Prefer)
        );
        let (rest, _) = split_tls("postgres://u@h/d?sslmode=disable").unwrap();
        assert_eq!(rest, "postgres://u@h/d");
        let e = split_tls("postgres://u@h/d?sslmode=on")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=on"), "{e}");
    }

    #[test]
    fn settings_that_cannot_work_fail_before_connecting() {
        let e = PgTarget::parse("postgres://u@h/d?sslmode=verify-full")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslrootcert") && e.contains("verify-full"),
            "{e}"
        );
        let t = PgTarget::parse("postgres://u@h/d?sslmode=require").unwrap();
        assert!(matches!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        ));
        let t = PgTarget::parse("postgres://u@h/d?sslmode=allow").unwrap();
        assert!(matches!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        ));
        let t = PgTarget::parse("postgres://u@h/d?sslmode=disable").unwrap();
        assert!(matches!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        ));
    }
}

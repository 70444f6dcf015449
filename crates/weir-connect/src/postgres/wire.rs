//! A small blocking PostgreSQL client over the frontend/backend protocol:
//! startup (trust, cleartext, MD5 and SCRAM-SHA-256 through
//! `postgres-protocol`), the simple query protocol (every value as the
//! type's text output, the same form pgoutput streams, so snapshot and
//! stream rows go through one decoder), the extended query protocol's
//! pipelines (text parameters, for the JDBC sink's batches), and the
//! replication connection's copy-both mode.
//!
//! TLS as libpq's `sslmode` defines it ([`SslMode`]): an SSLRequest, then
//! a rustls handshake on the same socket, with `prefer` and `allow`
//! falling back the way libpq does.
//!
//! Blocking on purpose: a source task runs on a thread of its own and
//! polls with a bounded wait, which a socket read timeout gives directly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use postgres_protocol::authentication::{md5_hash, sasl};
use rustls::pki_types::ServerName;
pub use weir_tls::client::{PgTlsConfig as TlsConfig, SslMode};

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
}

/// The socket, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Plain",
            Stream::Tls(_) => "Tls",
        })
    }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// How long the TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client failure.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The server's ErrorResponse.
    #[error("{severity}: {message} (SQLSTATE {code})")]
    Server {
        severity: String,
        code: String,
        message: String,
    },
    #[error("protocol: {0}")]
    Protocol(String),
    /// TLS settings that cannot be used, or a failed handshake.
    #[error("TLS: {0}")]
    Tls(String),
}

impl PgError {
    /// The SQLSTATE of a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The shared TLS config's own messages are this client's (`sslrootcert
/// ...: ...`); the rest keep weir-tls's wording.
impl From<weir_tls::TlsError> for PgError {
    fn from(e: weir_tls::TlsError) -> Self {
        match e {
            weir_tls::TlsError::PgSettings(m) => PgError::Tls(m),
            other => PgError::Tls(other.to_string()),
        }
    }
}

type R<T> = std::result::Result<T, PgError>;

/// A result column.
#[derive(Debug, Clone)]
pub struct Col {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// One statement's result: its columns and rows (text values).
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub columns: Vec<Col>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// A connection.
#[derive(Debug)]
pub struct PgConn {
    stream: Stream,
    buf: Vec<u8>,
    /// Read position in `buf`.
    pos: usize,
}

const MAX_MESSAGE: usize = 1 << 30;

impl PgConn {
    /// Connects and authenticates without TLS settings: `sslmode=prefer`,
    /// the default of libpq and PgJDBC.
    pub fn connect(cfg: &ConnConfig, replication: bool) -> R<PgConn> {
        Self::connect_tls(cfg, &TlsConfig::default(), replication)
    }

    /// Connects as `tls` says and authenticates; `replication` opens a
    /// logical replication connection (`replication=database`).
    pub fn connect_tls(cfg: &ConnConfig, tls: &TlsConfig, replication: bool) -> R<PgConn> {
        let Some(client) = tls.client_config()? else {
            return Self::attempt(cfg, None, replication);
        };
        match tls.mode {
            SslMode::Disable => Self::attempt(cfg, None, replication),
            // libpq retries with TLS when the server refused the
            // plaintext connection (pg_hba `hostssl`).
            SslMode::Allow => match Self::attempt(cfg, None, replication) {
                Err(PgError::Server { .. }) => {
                    Self::attempt(cfg, Some((&client, tls.mode)), replication)
                }
                r => r,
            },
            // And without it when TLS failed: the handshake or the login
            // over it (pg_hba `hostnossl`).
            SslMode::Prefer => match Self::attempt(cfg, Some((&client, tls.mode)), replication) {
                Err(PgError::Tls(_) | PgError::Server { .. }) => {
                    Self::attempt(cfg, None, replication)
                }
                r => r,
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                Self::attempt(cfg, Some((&client, tls.mode)), replication)
            }
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    fn tcp(cfg: &ConnConfig) -> R<TcpStream> {
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let io = |context: String| move |source| PgError::Io { context, source };
        let addrs: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .map_err(io(format!("resolving {addr}")))?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(PgError::Io {
            context: format!("connecting to {addr}"),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })
    }

    /// SSLRequest and the handshake on `tcp`; `None` when the server
    /// declined and `mode` lets the connection go on in plaintext.
    fn start_tls(
        mut tcp: TcpStream,
        cfg: &ConnConfig,
        client: &Arc<rustls::ClientConfig>,
        mode: SslMode,
    ) -> R<Stream> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| PgError::Io { context, source }
        };
        // Length 8, code 80877103.
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .map_err(io("sending SSLRequest"))?;
        // One byte, read straight from the socket: nothing sent after it
        // in plaintext may be taken as part of the encrypted session.
        let mut answer = [0u8; 1];
        let _ = tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
        tcp.read_exact(&mut answer)
            .map_err(io("reading the answer to SSLRequest"))?;
        match answer[0] {
            b'S' => {}
            b'N' if mode == SslMode::Prefer => return Ok(Stream::Plain(tcp)),
            b'N' => {
                return Err(PgError::Tls(format!(
                    "the server does not support SSL, but sslmode={} requires it",
                    mode.name()
                )))
            }
            other => {
                return Err(PgError::Protocol(format!(
                    "unexpected answer to SSLRequest: {other:#04x}"
                )))
            }
        }
        // The name is checked only by verify-full; others still send it
        // (SNI) when it is one.
        let name = ServerName::try_from(cfg.host.clone())
            .or_else(|e| {
                if mode == SslMode::VerifyFull {
                    Err(e)
                } else {
                    Ok(ServerName::try_from("localhost").expect("a valid name"))
                }
            })
            .map_err(|e| PgError::Tls(format!("host name {}: {e}", cfg.host)))?;
        let mut conn = rustls::ClientConnection::new(client.clone(), name)
            .map_err(|e| PgError::Tls(e.to_string()))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| {
                PgError::Tls(format!(
                    "handshake with {}:{} (sslmode={}) failed: {e}",
                    cfg.host,
                    cfg.port,
                    mode.name()
                ))
            })?;
        }
        let _ = tcp.set_read_timeout(None);
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }

    /// One connection: TLS with `tls`'s client config, or plaintext.
    fn attempt(
        cfg: &ConnConfig,
        tls: Option<(&Arc<rustls::ClientConfig>, SslMode)>,
        replication: bool,
    ) -> R<PgConn> {
        let tcp = Self::tcp(cfg)?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some((client, mode)) => Self::start_tls(tcp, cfg, client, mode)?,
        };
        let mut c = PgConn {
            stream,
            buf: Vec::new(),
            pos: 0,
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        let mut params = vec![
            ("user", cfg.user.as_str()),
            ("database", cfg.dbname.as_str()),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("extra_float_digits", "3"),
            ("application_name", "weir-connect"),
        ];
        if replication {
            params.push(("replication", "database"));
        }
        for (k, v) in params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        c.write_all(&msg)?;
        c.authenticate(cfg)?;
        // Parameter statuses and the backend key, until ReadyForQuery.
        loop {
            let (tag, body) = c.read_message(None)?.ok_or_else(timeout_err)?;
            match tag {
                b'Z' => return Ok(c),
                b'E' => return Err(server_error(&body)),
                _ => {}
            }
        }
    }

    fn authenticate(&mut self, cfg: &ConnConfig) -> R<()> {
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let (tag, body) = self.read_message(None)?.ok_or_else(timeout_err)?;
            match tag {
                b'E' => return Err(server_error(&body)),
                b'R' => {}
                _ => {
                    return Err(PgError::Protocol(format!(
                        "unexpected message {}",
                        tag as char
                    )))
                }
            }
            let kind = be_i32(&body, 0)?;
            match kind {
                0 => return Ok(()),
                3 => {
                    let mut b = cfg.password.as_bytes().to_vec();
                    b.push(0);
                    self.send(b'p', &b)?;
                }
                5 => {
                    let salt: [u8; 4] = body
                        .get(4..8)
                        .and_then(|s| s.try_into().ok())
                        .ok_or_else(|| PgError::Protocol("short MD5 request".into()))?;
                    let mut b =
                        md5_hash(cfg.user.as_bytes(), cfg.password.as_bytes(), salt).into_bytes();
                    b.push(0);
                    self.send(b'p', &b)?;
                }
                10 => {
                    let mechanisms = &body[4..];
                    if !mechanisms
                        .split(|&b| b == 0)
                        .any(|m| m == sasl::SCRAM_SHA_256.as_bytes())
                    {
                        return Err(PgError::Protocol(
                            "the server offers no SASL mechanism this client has".into(),
                        ));
                    }
                    let s = sasl::ScramSha256::new(
                        cfg.password.as_bytes(),
                        sasl::ChannelBinding::unsupported(),
                    );
                    let mut b = sasl::SCRAM_SHA_256.as_bytes().to_vec();
                    b.push(0);
                    b.extend_from_slice(&(s.message().len() as i32).to_be_bytes());
                    b.extend_from_slice(s.message());
                    self.send(b'p', &b)?;
                    scram = Some(s);
                }
                11 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::Protocol("SASL continue before start".into()))?;
                    s.update(&body[4..])
                        .map_err(|e| PgError::Protocol(e.to_string()))?;
                    let m = s.message().to_vec();
                    self.send(b'p', &m)?;
                }
                12 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::Protocol("SASL final before start".into()))?;
                    s.finish(&body[4..])
                        .map_err(|e| PgError::Protocol(e.to_string()))?;
                }
                other => {
                    return Err(PgError::Protocol(format!(
                        "authentication method {other} is not supported"
                    )))
                }
            }
        }
    }

    fn write_all(&mut self, b: &[u8]) -> R<()> {
        self.stream
            .write_all(b)
            .and_then(|_| self.stream.flush())
            .map_err(|source| PgError::Io {
                context: "writing to PostgreSQL".into(),
                source,
            })
    }

    fn send(&mut self, tag: u8, body: &[u8]) -> R<()> {
        let mut m = Vec::with_capacity(body.len() + 5);
        m.push(tag);
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        self.write_all(&m)
    }

    /// The next message; `None` when `wait` passed without one (a `None`
    /// wait blocks).
    fn read_message(&mut self, wait: Option<Duration>) -> R<Option<(u8, Vec<u8>)>> {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.len() >= 5 {
                let len = u32::from_be_bytes([avail[1], avail[2], avail[3], avail[4]]) as usize;
                if !(4..=MAX_MESSAGE).contains(&len) {
                    return Err(PgError::Protocol(format!("message length {len}")));
                }
                if avail.len() > len {
                    let tag = avail[0];
                    let body = avail[5..len + 1].to_vec();
                    self.pos += len + 1;
                    if self.pos == self.buf.len() {
                        self.buf.clear();
                        self.pos = 0;
                    }
                    return Ok(Some((tag, body)));
                }
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let _ = self.stream.tcp().set_read_timeout(wait);
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(PgError::Io {
                        context: "reading from PostgreSQL".into(),
                        source: std::io::ErrorKind::UnexpectedEof.into(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && wait.is_some() =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PgError::Io {
                        context: "reading from PostgreSQL".into(),
                        source,
                    })
                }
            }
        }
    }

    /// Runs `sql` (one or more statements) with the simple query protocol.
    pub fn query(&mut self, sql: &str) -> R<Vec<QueryResult>> {
        let mut b = sql.as_bytes().to_vec();
        b.push(0);
        self.send(b'Q', &b)?;
        let mut out = Vec::new();
        let mut cur = QueryResult::default();
        let mut err = None;
        loop {
            let (tag, body) = self.read_message(None)?.ok_or_else(timeout_err)?;
            match tag {
                b'T' => cur.columns = parse_row_description(&body)?,
                b'D' => cur.rows.push(parse_data_row(&body)?),
                b'C' | b'I' => out.push(std::mem::take(&mut cur)),
                b'E' => err = Some(server_error(&body)),
                b'Z' => break,
                // Notices, parameter changes, notifications.
                _ => {}
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Sends a pipeline and its closing Sync, then reads every answer.
    /// Statements run in order until the first error, which is returned
    /// with the index of the Execute that failed.
    pub fn run_pipeline(&mut self, p: &mut Pipeline) -> std::result::Result<u64, (usize, PgError)> {
        p.buf.extend_from_slice(&[b'S', 0, 0, 0, 4]);
        let buf = std::mem::take(&mut p.buf);
        p.executes = 0;
        self.write_all(&buf).map_err(|e| (0, e))?;
        let (mut done, mut affected, mut err) = (0usize, 0u64, None);
        loop {
            let (tag, body) = self
                .read_message(None)
                .and_then(|m| m.ok_or_else(timeout_err))
                .map_err(|e| (done, e))?;
            match tag {
                b'C' => {
                    done += 1;
                    // "INSERT 0 n", "UPDATE n", "DELETE n".
                    let tag = String::from_utf8_lossy(&body);
                    affected += tag
                        .trim_end_matches('\0')
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                }
                b'E' => err = Some(server_error(&body)),
                b'Z' => break,
                // ParseComplete, BindComplete, notices.
                _ => {}
            }
        }
        match err {
            Some(e) => Err((done, e)),
            None => Ok(affected),
        }
    }

    /// The first result of `sql`.
    pub fn query_one(&mut self, sql: &str) -> R<QueryResult> {
        Ok(self.query(sql)?.into_iter().next().unwrap_or_default())
    }

    /// Sends `START_REPLICATION ...` and waits for copy-both mode.
    pub fn start_copy_both(&mut self, sql: &str) -> R<()> {
        let mut b = sql.as_bytes().to_vec();
        b.push(0);
        self.send(b'Q', &b)?;
        loop {
            let (tag, body) = self.read_message(None)?.ok_or_else(timeout_err)?;
            match tag {
                b'W' => return Ok(()),
                b'E' => {
                    let e = server_error(&body);
                    // Drain to ReadyForQuery so the error is the server's.
                    while let Some((t, _)) = self.read_message(Some(Duration::from_secs(5)))? {
                        if t == b'Z' {
                            break;
                        }
                    }
                    return Err(e);
                }
                _ => {}
            }
        }
    }

    /// The next CopyData payload of copy-both mode within `wait`.
    pub fn read_copy(&mut self, wait: Duration) -> R<Option<Vec<u8>>> {
        loop {
            match self.read_message(Some(wait))? {
                None => return Ok(None),
                Some((b'd', body)) => return Ok(Some(body)),
                Some((b'E', body)) => return Err(server_error(&body)),
                Some((b'c', _)) => {
                    return Err(PgError::Protocol(
                        "the server ended the replication stream".into(),
                    ))
                }
                Some(_) => {}
            }
        }
    }

    /// Sends a CopyData payload (a standby status update).
    pub fn send_copy(&mut self, data: &[u8]) -> R<()> {
        self.send(b'd', data)
    }

    /// Says goodbye (Terminate); errors do not matter any more.
    pub fn close(mut self) {
        let _ = self.send(b'X', &[]);
    }
}

/// Extended-protocol messages to send at once: a Parse of a statement
/// (the unnamed one, or a named one kept for reuse), then a Bind and
/// Execute per parameter row (text format, types inferred by the server
/// from the statement).
#[derive(Debug, Default)]
pub struct Pipeline {
    buf: Vec<u8>,
    executes: usize,
}

impl Pipeline {
    fn message(&mut self, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
        self.buf.push(tag);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        body(&mut self.buf);
        let len = (self.buf.len() - at) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Makes `sql` the statement the following executes run.
    pub fn parse(&mut self, sql: &str) {
        self.parse_named("", sql);
    }

    /// Prepares `sql` as the statement `name` (empty: the unnamed one),
    /// which stays prepared on the connection until closed.
    pub fn parse_named(&mut self, name: &str, sql: &str) {
        self.message(b'P', |b| {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(sql.as_bytes());
            b.push(0);
            b.extend_from_slice(&0i16.to_be_bytes());
        });
    }

    /// Runs the unnamed statement with `params` (`None`: NULL).
    pub fn execute(&mut self, params: &[Option<&str>]) {
        self.execute_named("", params.iter().copied());
    }

    /// Runs the statement `name` with `params` (`None`: NULL).
    pub fn execute_named<'a>(
        &mut self,
        name: &str,
        params: impl ExactSizeIterator<Item = Option<&'a str>>,
    ) {
        self.message(b'B', |b| {
            // The unnamed portal.
            b.push(0);
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&(params.len() as i16).to_be_bytes());
            for p in params {
                match p {
                    None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        b.extend_from_slice(v.as_bytes());
                    }
                }
            }
            b.extend_from_slice(&0i16.to_be_bytes());
        });
        self.message(b'E', |b| {
            b.push(0);
            b.extend_from_slice(&0i32.to_be_bytes());
        });
        self.executes += 1;
    }

    /// Drops the prepared statement `name`.
    pub fn close_named(&mut self, name: &str) {
        self.message(b'C', |b| {
            b.push(b'S');
            b.extend_from_slice(name.as_bytes());
            b.push(0);
        });
    }

    /// Executes queued since the last run.
    pub fn len(&self) -> usize {
        self.executes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn timeout_err() -> PgError {
    PgError::Protocol("no message".into())
}

fn be_i32(b: &[u8], at: usize) -> R<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| PgError::Protocol("short message".into()))
}

fn be_i16(b: &[u8], at: usize) -> R<i16> {
    b.get(at..at + 2)
        .map(|s| i16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| PgError::Protocol("short message".into()))
}

fn cstr(b: &[u8], at: usize) -> R<(String, usize)> {
    let rest = b
        .get(at..)
        .ok_or_else(|| PgError::Protocol("short message".into()))?;
    let end = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| PgError::Protocol("unterminated string".into()))?;
    Ok((
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        at + end + 1,
    ))
}

fn parse_row_description(b: &[u8]) -> R<Vec<Col>> {
    let n = be_i16(b, 0)?;
    let mut at = 2;
    let mut cols = Vec::new();
    for _ in 0..n.max(0) {
        let (name, next) = cstr(b, at)?;
        at = next;
        let type_oid = be_i32(b, at + 6)? as u32;
        let type_modifier = be_i32(b, at + 12)?;
        at += 18;
        cols.push(Col {
            name,
            type_oid,
            type_modifier,
        });
    }
    Ok(cols)
}

fn parse_data_row(b: &[u8]) -> R<Vec<Option<String>>> {
    let n = be_i16(b, 0)?;
    let mut at = 2;
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n.max(0) {
        let len = be_i32(b, at)?;
        at += 4;
        if len < 0 {
            row.push(None);
            continue;
        }
        let v = b
            .get(at..at + len as usize)
            .ok_or_else(|| PgError::Protocol("short data row".into()))?;
        row.push(Some(String::from_utf8_lossy(v).into_owned()));
        at += len as usize;
    }
    Ok(row)
}

fn server_error(b: &[u8]) -> PgError {
    let (mut severity, mut code, mut message) = (String::new(), String::new(), String::new());
    let mut at = 0;
    while at < b.len() && b[at] != 0 {
        let field = b[at];
        let Ok((v, next)) = cstr(b, at + 1) else {
            break;
        };
        at = next;
        match field {
            b'S' => severity = v,
            b'C' => code = v,
            b'M' => message = v,
            _ => {}
        }
    }
    PgError::Server {
        severity,
        code,
        message,
    }
}

/// `s` as an SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `s` as an SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

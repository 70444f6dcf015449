//! A decoder for PostgreSQL's logical replication protocol (the
//! `pgoutput` plugin's messages, protocol version 1) and the replication
//! stream's copy-data framing (`XLogData`, keepalives).
//!
//! Pure and total: any input gives a message or an error, never a panic,
//! so it is fuzzed as it comes off the wire.

use thiserror::Error;

/// A malformed message.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(pub &'static str);

type R<T> = std::result::Result<T, DecodeError>;

/// A column value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    Null,
    /// A TOASTed value the change did not touch (not sent).
    Unchanged,
    /// The type's text output.
    Text(String),
    /// The type's binary output (only with the `binary` option).
    Binary(Vec<u8>),
}

/// A column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Part of the replica identity (the key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A relation (table) description, sent before its first change in a
/// session and again after its definition changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<Column>,
}

/// A logical replication message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: u64,
        /// Microseconds since 2000-01-01.
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts: i64,
    },
    Origin,
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        rel: u32,
        new: Vec<Datum>,
    },
    Update {
        rel: u32,
        /// The old key (`K`) or whole old row (`O`, replica identity full).
        old: Option<Vec<Datum>>,
        new: Vec<Datum>,
    },
    Delete {
        rel: u32,
        old: Vec<Datum>,
    },
    Truncate {
        cascade: bool,
        restart_identity: bool,
        rels: Vec<u32>,
    },
    /// `pg_logical_emit_message` content, or anything else this decoder
    /// skips.
    Other(u8),
}

/// A message of the replication copy stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyMessage {
    /// WAL data: where it starts, the server's end of WAL, and the payload
    /// (a pgoutput message).
    XLogData {
        wal_start: u64,
        wal_end: u64,
        data: Vec<u8>,
    },
    /// The server's keepalive; `reply` asks for a status update now.
    Keepalive { wal_end: u64, reply: bool },
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.buf.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> R<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> R<i32> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn i64(&mut self) -> R<i64> {
        Ok(self.u64()? as i64)
    }
    fn cstr(&mut self) -> R<String> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError("unterminated string"))?;
        let s = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| DecodeError("string not UTF-8"))?
            .to_string();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }
    fn tuple(&mut self) -> R<Vec<Datum>> {
        let n = self.i16()?;
        if n < 0 {
            return Err(DecodeError("negative column count"));
        }
        // Each column takes at least one byte: bounds the allocation.
        if n as usize > self.buf.len() {
            return Err(DecodeError("truncated"));
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                kind @ (b't' | b'b') => {
                    let len = self.i32()?;
                    if len < 0 {
                        return Err(DecodeError("negative length"));
                    }
                    let bytes = self.take(len as usize)?;
                    if kind == b't' {
                        Datum::Text(
                            String::from_utf8(bytes.to_vec())
                                .map_err(|_| DecodeError("text not UTF-8"))?,
                        )
                    } else {
                        Datum::Binary(bytes.to_vec())
                    }
                }
                _ => return Err(DecodeError("unknown tuple data kind")),
            });
        }
        Ok(out)
    }
}

/// Decodes one pgoutput message.
pub fn decode(buf: &[u8]) -> R<Message> {
    let mut r = Reader { buf };
    let tag = r.u8()?;
    Ok(match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_ts: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
                commit_ts: r.i64()?,
            }
        }
        b'O' => Message::Origin,
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            if n < 0 {
                return Err(DecodeError("negative column count"));
            }
            let mut columns = Vec::new();
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                columns.push(Column {
                    key: flags & 1 == 1,
                    name,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => {
            let oid = r.u32()?;
            Message::Type {
                oid,
                namespace: r.cstr()?,
                name: r.cstr()?,
            }
        }
        b'I' => {
            let rel = r.u32()?;
            if r.u8()? != b'N' {
                return Err(DecodeError("insert without a new tuple"));
            }
            Message::Insert {
                rel,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(DecodeError("update without a new tuple"));
            }
            Message::Update {
                rel,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(DecodeError("delete without an old tuple"));
            }
            Message::Delete {
                rel,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            let flags = r.u8()?;
            if n as usize > r.buf.len() / 4 {
                return Err(DecodeError("truncated"));
            }
            let mut rels = Vec::with_capacity(n as usize);
            for _ in 0..n {
                rels.push(r.u32()?);
            }
            Message::Truncate {
                cascade: flags & 1 != 0,
                restart_identity: flags & 2 != 0,
                rels,
            }
        }
        other => Message::Other(other),
    })
}

/// Decodes one CopyData payload of a replication stream.
pub fn decode_copy(buf: &[u8]) -> R<CopyMessage> {
    let mut r = Reader { buf };
    match r.u8()? {
        b'w' => {
            let wal_start = r.u64()?;
            let wal_end = r.u64()?;
            let _send_time = r.i64()?;
            Ok(CopyMessage::XLogData {
                wal_start,
                wal_end,
                data: r.buf.to_vec(),
            })
        }
        b'k' => {
            let wal_end = r.u64()?;
            let _send_time = r.i64()?;
            Ok(CopyMessage::Keepalive {
                wal_end,
                reply: r.u8()? != 0,
            })
        }
        _ => Err(DecodeError("unknown copy message")),
    }
}

/// The standby status update that reports `lsn` as written, flushed and
/// applied (the slot's confirmed position moves to it).
pub fn status_update(lsn: u64, now_pg_us: i64, reply: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(34);
    b.push(b'r');
    for _ in 0..3 {
        b.extend_from_slice(&lsn.to_be_bytes());
    }
    b.extend_from_slice(&now_pg_us.to_be_bytes());
    b.push(u8::from(reply));
    b
}

/// An LSN as PostgreSQL prints it (`16/B374D848`).
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses PostgreSQL's LSN text.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_relation_and_changes() {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16384u32.to_be_bytes());
        m.extend_from_slice(b"public\0t\0d");
        m.extend_from_slice(&2i16.to_be_bytes());
        m.push(1);
        m.extend_from_slice(b"id\0");
        m.extend_from_slice(&23u32.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
        m.push(0);
        m.extend_from_slice(b"v\0");
        m.extend_from_slice(&25u32.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
        let Message::Relation(rel) = decode(&m).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(rel.columns.len(), 2);
        assert!(rel.columns[0].key && !rel.columns[1].key);

        let mut i = vec![b'I'];
        i.extend_from_slice(&16384u32.to_be_bytes());
        i.push(b'N');
        i.extend_from_slice(&2i16.to_be_bytes());
        i.push(b't');
        i.extend_from_slice(&1i32.to_be_bytes());
        i.push(b'7');
        i.push(b'n');
        assert_eq!(
            decode(&i).unwrap(),
            Message::Insert {
                rel: 16384,
                new: vec![Datum::Text("7".into()), Datum::Null]
            }
        );
        // Every prefix is an error, not a panic.
        for n in 0..i.len() {
            let _ = decode(&i[..n]);
        }
        assert!(decode(&i[..i.len() - 1]).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        // The fuzz target's property, on every `cargo test`.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..4000usize {
            let buf: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Bias towards the tags and tuple kinds.
                    let alphabet = b"BCORYIUDTwkKNOntub\0";
                    alphabet[(x % alphabet.len() as u64) as usize].wrapping_add((x >> 40) as u8 & 1)
                })
                .collect();
            let _ = decode(&buf);
            let _ = decode_copy(&buf);
            if let Ok(text) = std::str::from_utf8(&buf) {
                for c in [
                    crate::postgres::types::Conv::Interval,
                    crate::postgres::types::Conv::TimestampTz(3),
                    crate::postgres::types::Conv::VarDecimal,
                    crate::postgres::types::Conv::Array(Box::new(
                        crate::postgres::types::Conv::Int32,
                    )),
                ] {
                    let _ = crate::postgres::types::convert(&c, text);
                }
            }
        }
    }

    #[test]
    fn lsn_text_round_trips() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nope"), None);
    }
}

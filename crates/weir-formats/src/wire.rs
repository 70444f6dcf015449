//! Confluent's wire format: magic byte 0, the schema id as a 4-byte
//! big-endian integer, then (Protobuf only) the message-index array, then
//! the payload.
//!
//! The message-index array locates the message type in its `.proto` file:
//! the index of a top-level message, then of each nested message down to
//! the one written. It is a zig-zag varint count followed by zig-zag
//! varint indexes, except that `[0]` (the first top-level message, by far
//! the most common) is written as the single byte `0`, a count of zero.

use crate::FormatError;

/// The first byte of every framed record.
pub const MAGIC_BYTE: u8 = 0;

/// Magic byte and schema id.
pub const HEADER_LEN: usize = 5;

/// At most this many indexes are read, which bounds the work a hostile
/// frame can cause (real files nest a few levels).
pub const MAX_MESSAGE_INDEXES: usize = 256;

/// Appends the magic byte and `id`.
pub fn write_header(id: i32, out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
}

/// Splits a frame into its schema id and the rest.
pub fn split(frame: &[u8]) -> Result<(i32, &[u8]), FormatError> {
    match frame {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => Ok((i32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [] => Err(FormatError::ShortFrame {
            len: 0,
            needed: HEADER_LEN,
        }),
        [MAGIC_BYTE, ..] => Err(FormatError::ShortFrame {
            len: frame.len(),
            needed: HEADER_LEN,
        }),
        [found, ..] => Err(FormatError::UnknownMagicByte { found: *found }),
    }
}

/// Appends the message-index array for `indexes` (the empty path is the
/// first message, as `[0]` is).
pub fn write_message_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes.is_empty() || indexes == [0] {
        out.push(0);
        return;
    }
    write_zigzag(i64::try_from(indexes.len()).unwrap_or(i64::MAX), out);
    for i in indexes {
        write_zigzag(i64::from(*i), out);
    }
}

/// Reads a message-index array: the path and the rest of the payload.
pub fn read_message_indexes(buf: &[u8]) -> Result<(Vec<i32>, &[u8]), FormatError> {
    let (count, mut rest) = read_zigzag(buf)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|n| *n <= MAX_MESSAGE_INDEXES)
        .ok_or_else(|| FormatError::InvalidMessageIndexes {
            reason: format!("count {count} is out of range"),
        })?;
    let mut out = Vec::with_capacity(count.min(rest.len()));
    for _ in 0..count {
        let (i, r) = read_zigzag(rest)?;
        let i = i32::try_from(i).ok().filter(|i| *i >= 0).ok_or_else(|| {
            FormatError::InvalidMessageIndexes {
                reason: format!("index {i} is out of range"),
            }
        })?;
        out.push(i);
        rest = r;
    }
    Ok((out, rest))
}

fn write_zigzag(v: i64, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn read_zigzag(buf: &[u8]) -> Result<(i64, &[u8]), FormatError> {
    let mut u = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        u |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let v = ((u >> 1) as i64) ^ -((u & 1) as i64);
            return Ok((v, &buf[i + 1..]));
        }
    }
    Err(FormatError::InvalidMessageIndexes {
        reason: "truncated or overlong varint".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trip_and_errors() {
        let mut b = Vec::new();
        write_header(258, &mut b);
        b.extend_from_slice(b"payload");
        assert_eq!(&b[..5], &[0, 0, 0, 1, 2]);
        assert_eq!(split(&b).unwrap(), (258, &b"payload"[..]));
        assert!(matches!(
            split(&[1, 0, 0, 0, 1]),
            Err(FormatError::UnknownMagicByte { found: 1 })
        ));
        assert!(matches!(
            split(&[0, 0, 1]),
            Err(FormatError::ShortFrame { len: 3, needed: 5 })
        ));
        assert!(matches!(split(&[]), Err(FormatError::ShortFrame { .. })));
        assert_eq!(split(&[0, 0, 0, 0, 7]).unwrap(), (7, &[][..]));
    }

    #[test]
    fn message_indexes_as_confluent_writes_them() {
        let enc = |ix: &[i32]| {
            let mut b = Vec::new();
            write_message_indexes(ix, &mut b);
            b
        };
        // The first message: the single 0 shortcut.
        assert_eq!(enc(&[0]), [0]);
        assert_eq!(enc(&[]), [0]);
        // [1]: count 1 (zig-zag 2), index 1 (zig-zag 2).
        assert_eq!(enc(&[1]), [2, 2]);
        // [0, 2]: count 2, then 0 and 2.
        assert_eq!(enc(&[0, 2]), [4, 0, 4]);
        assert_eq!(enc(&[70]), [2, 0x8c, 0x01]);
        assert_eq!(read_message_indexes(&[0, 9]).unwrap(), (vec![0], &[9][..]));
        assert_eq!(read_message_indexes(&[4, 0, 4]).unwrap().0, vec![0, 2]);
        for bad in [&[][..], &[3, 2][..], &[2][..], &[2, 1][..], &[0xff; 11][..]] {
            assert!(read_message_indexes(bad).is_err(), "{bad:?}");
        }
        // A huge count is refused before anything is allocated.
        assert!(read_message_indexes(&[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    proptest! {
        #[test]
        fn message_indexes_round_trip(ix in proptest::collection::vec(0i32..i32::MAX, 1..20), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut b = Vec::new();
            write_message_indexes(&ix, &mut b);
            b.extend_from_slice(&tail);
            let (back, rest) = read_message_indexes(&b).unwrap();
            prop_assert_eq!(back, ix);
            prop_assert_eq!(rest, &tail[..]);
        }

        #[test]
        fn split_never_panics(b in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = split(&b);
            let _ = read_message_indexes(&b);
        }
    }
}

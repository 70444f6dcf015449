//! The intake object: what one flush writes to the object store.
//!
//! A header naming each chunk (one partition's batches from one append),
//! then the chunks' bytes back to back. Each chunk holds whole record
//! batches as a producer sent them, except that a batch's base offset is
//! its offset relative to the chunk's first offset and the partition
//! leader epoch is stamped: offsets are assigned by PostgreSQL after the
//! object is written, and the index row (`weir.batches`) says where the
//! chunk lands. The base offset field is outside the batch CRC, so a read
//! adds the row's base offset without recomputing anything.
//! docs/cluster-format.md describes it byte by byte.

use bytes::{BufMut, Bytes, BytesMut};
use object_store::PutPayload;

use crate::error::ClusterError;

/// The first eight bytes of every intake object.
pub const MAGIC: &[u8; 8] = b"WEIRINTK";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the first entry: magic, version, header length, count.
const FIXED: usize = 8 + 2 + 4 + 4;

/// One chunk in an intake object, as its header entry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Offsets the chunk's batches take.
    pub offset_count: i32,
    /// Byte length of the chunk.
    pub size: u32,
}

/// Encodes an object: the header for `entries`, then `chunks` in order.
/// Returns it as parts (the header, then the chunks themselves: a flush
/// hands the store its chunks without copying them into one buffer) and
/// each chunk's position in the object.
pub fn encode(entries: &[Entry], chunks: &[Bytes]) -> (PutPayload, Vec<u64>) {
    let entries_len: usize = entries.iter().map(|e| 2 + e.topic.len() + 4 + 4 + 4).sum();
    let header_len = FIXED + entries_len + 4;
    let mut out = BytesMut::with_capacity(header_len);
    out.put_slice(MAGIC);
    out.put_u16(VERSION);
    out.put_u32(header_len as u32);
    out.put_u32(entries.len() as u32);
    for e in entries {
        out.put_u16(e.topic.len() as u16);
        out.put_slice(e.topic.as_bytes());
        out.put_i32(e.partition);
        out.put_i32(e.offset_count);
        out.put_u32(e.size);
    }
    let crc = crc32c::crc32c(&out);
    out.put_u32(crc);
    let mut positions = Vec::with_capacity(chunks.len());
    let mut at = out.len() as u64;
    for c in chunks {
        positions.push(at);
        at += c.len() as u64;
    }
    let parts = std::iter::once(out.freeze()).chain(chunks.iter().cloned());
    (parts.collect(), positions)
}

fn bad(reason: impl Into<String>) -> ClusterError {
    ClusterError::Format(reason.into())
}

/// Decodes an object's header: its entries and where the data starts.
/// Used by tools and tests that read an object without the index.
pub fn decode_header(object: &[u8]) -> Result<(Vec<Entry>, usize), ClusterError> {
    if object.len() < FIXED + 4 || &object[..8] != MAGIC {
        return Err(bad("not a Weir intake object"));
    }
    let version = u16::from_be_bytes([object[8], object[9]]);
    if version != VERSION {
        return Err(bad(format!(
            "intake object version {version}, this build reads {VERSION}"
        )));
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([object[at], object[at + 1], object[at + 2], object[at + 3]])
    };
    let header_len = be32(10) as usize;
    if header_len < FIXED + 4 || header_len > object.len() {
        return Err(bad("header length outside the object"));
    }
    let crc = be32(header_len - 4);
    if crc32c::crc32c(&object[..header_len - 4]) != crc {
        return Err(bad("header checksum mismatch"));
    }
    let count = be32(14) as usize;
    let mut pos = FIXED;
    let mut entries = Vec::new();
    for _ in 0..count {
        let need = |pos: usize, n: usize| {
            if pos + n > header_len - 4 {
                Err(bad("entry runs past the header"))
            } else {
                Ok(())
            }
        };
        need(pos, 2)?;
        let len = u16::from_be_bytes([object[pos], object[pos + 1]]) as usize;
        pos += 2;
        need(pos, len + 12)?;
        let topic = std::str::from_utf8(&object[pos..pos + len])
            .map_err(|_| bad("topic name is not UTF-8"))?
            .to_string();
        pos += len;
        let partition = be32(pos) as i32;
        let offset_count = be32(pos + 4) as i32;
        let size = be32(pos + 8);
        pos += 12;
        entries.push(Entry {
            topic,
            partition,
            offset_count,
            size,
        });
    }
    let data: usize = entries.iter().map(|e| e.size as usize).sum();
    if header_len + data != object.len() {
        return Err(bad("chunk sizes do not add up to the object's length"));
    }
    Ok((entries, header_len))
}

/// A chunk read from an object with each batch's relative base offset
/// turned into its place in the partition (`base` plus the relative one).
/// Rewrites `chunk` in place when nothing else holds its buffer (a chunk
/// just committed, a span just read), copies it otherwise.
pub fn place(chunk: Bytes, base: i64) -> Result<Bytes, ClusterError> {
    let mut out = chunk
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let mut pos = 0usize;
    while pos < out.len() {
        if pos + 12 > out.len() {
            return Err(bad("chunk ends inside a batch header"));
        }
        let rel = i64::from_be_bytes(out[pos..pos + 8].try_into().unwrap_or_default());
        let len = i32::from_be_bytes(out[pos + 8..pos + 12].try_into().unwrap_or_default());
        let size = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|s| pos + s <= out.len())
            .ok_or_else(|| bad("batch length runs past the chunk"))?;
        let offset = base
            .checked_add(rel)
            .ok_or_else(|| bad("batch offset overflows"))?;
        out[pos..pos + 8].copy_from_slice(&offset.to_be_bytes());
        pos += size;
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rel: i64, body: usize) -> Vec<u8> {
        let mut b = rel.to_be_bytes().to_vec();
        b.extend_from_slice(&(body as i32).to_be_bytes());
        b.extend(std::iter::repeat_n(7u8, body));
        b
    }

    /// The object the store receives: the parts back to back.
    fn flat(object: &PutPayload) -> Bytes {
        object.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn header_round_trips_and_chunks_follow_it() {
        let entries = vec![
            Entry {
                topic: "a".into(),
                partition: 0,
                offset_count: 3,
                size: 20,
            },
            Entry {
                topic: "bee".into(),
                partition: 7,
                offset_count: 1,
                size: 13,
            },
        ];
        let chunks = vec![Bytes::from(vec![1u8; 20]), Bytes::from(vec![2u8; 13])];
        let (parts, pos) = encode(&entries, &chunks);
        // The chunks go to the store as they are, not copied.
        let sent: Vec<&Bytes> = parts.iter().skip(1).collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].as_ptr(), chunks[0].as_ptr());
        assert_eq!(sent[1].as_ptr(), chunks[1].as_ptr());
        let obj = flat(&parts);
        assert_eq!(obj.len(), parts.content_length());
        let (back, data) = decode_header(&obj).unwrap();
        assert_eq!(back, entries);
        assert_eq!(pos, vec![data as u64, data as u64 + 20]);
        assert_eq!(&obj[pos[0] as usize..pos[1] as usize], &[1u8; 20][..]);
        assert_eq!(&obj[pos[1] as usize..], &[2u8; 13][..]);
    }

    #[test]
    fn a_chunk_read_back_from_its_position_is_placed_at_its_base() {
        let mut second = batch(0, 5);
        second.extend(batch(2, 4));
        let chunks = vec![Bytes::from(batch(0, 9)), Bytes::from(second.clone())];
        let entries: Vec<Entry> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| Entry {
                topic: "t".into(),
                partition: i as i32,
                offset_count: 3,
                size: c.len() as u32,
            })
            .collect();
        let (parts, pos) = encode(&entries, &chunks);
        let obj = flat(&parts);
        let at = pos[1] as usize;
        let span = obj.slice(at..at + second.len());
        let placed = place(span, 1000).unwrap();
        assert_eq!(i64::from_be_bytes(placed[0..8].try_into().unwrap()), 1000);
        assert_eq!(i64::from_be_bytes(placed[17..25].try_into().unwrap()), 1002);
        assert_eq!(&placed[8..17], &second[8..17]);
        assert_eq!(&placed[25..], &second[25..]);
        // Placing a span of a buffer still shared copies it: the object
        // itself is untouched.
        assert_eq!(&obj[at..at + second.len()], &second[..]);
    }

    #[test]
    fn place_rewrites_a_chunk_nothing_else_holds_in_place() {
        let chunk = Bytes::from(batch(3, 4));
        let at = chunk.as_ptr();
        let placed = place(chunk, 10).unwrap();
        assert_eq!(placed.as_ptr(), at);
        assert_eq!(i64::from_be_bytes(placed[0..8].try_into().unwrap()), 13);
        let shared = Bytes::from(batch(3, 4));
        let placed = place(shared.clone(), 10).unwrap();
        assert_ne!(placed.as_ptr(), shared.as_ptr());
        assert_eq!(i64::from_be_bytes(shared[0..8].try_into().unwrap()), 3);
        assert_eq!(i64::from_be_bytes(placed[0..8].try_into().unwrap()), 13);
    }

    #[test]
    fn damaged_headers_are_refused() {
        let entries = vec![Entry {
            topic: "t".into(),
            partition: 0,
            offset_count: 1,
            size: 1,
        }];
        let (parts, _) = encode(&entries, &[Bytes::from_static(b"x")]);
        let obj = flat(&parts);
        let mut flipped = obj.to_vec();
        flipped[20] ^= 1;
        assert!(decode_header(&flipped).is_err());
        assert!(decode_header(&obj[..obj.len() - 1]).is_err());
        assert!(decode_header(b"WEIRINTK").is_err());
    }

    #[test]
    fn place_adds_the_base_offset_to_every_batch() {
        let mut chunk = batch(0, 5);
        chunk.extend(batch(4, 3));
        let placed = place(Bytes::from(chunk.clone()), 100).unwrap();
        assert_eq!(i64::from_be_bytes(placed[0..8].try_into().unwrap()), 100);
        assert_eq!(i64::from_be_bytes(placed[17..25].try_into().unwrap()), 104);
        assert_eq!(&placed[8..17], &chunk[8..17]);
        assert!(place(Bytes::copy_from_slice(&chunk[..chunk.len() - 1]), 0).is_err());
        // A damaged relative offset errs rather than overflowing.
        assert!(place(Bytes::from(batch(1, 0)), i64::MAX).is_err());
    }
}

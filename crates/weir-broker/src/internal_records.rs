//! Primitives of Kafka's internal record formats (the coordinator topics
//! `__consumer_offsets`, `__transaction_state` and `__share_group_state`):
//! big-endian writers and a bounds-checked reader shared by
//! [`crate::group_store`], [`crate::txn_store`] and
//! [`crate::share_state_store`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    // Kafka strings are at most i16::MAX bytes; longer names and ids are refused
    // before they get here.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    b.put_i16(len);
    b.put_slice(&s.as_bytes()[..usize::try_from(len).unwrap_or(0)]);
}

pub(crate) fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

pub(crate) fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
    b.put_slice(v);
}

pub(crate) fn put_len(b: &mut BytesMut, n: usize) {
    b.put_i32(i32::try_from(n).unwrap_or(i32::MAX));
}

/// An unsigned varint, as flexible versions write lengths and tags.
pub(crate) fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// A flexible-version (compact) array or string length: `n + 1`.
pub(crate) fn put_compact_len(b: &mut BytesMut, n: usize) {
    put_uvarint(b, u32::try_from(n).unwrap_or(u32::MAX - 1) + 1);
}

/// A compact (flexible-version) string: its length plus one, then the bytes.
pub(crate) fn put_compact_str(b: &mut BytesMut, s: &str) {
    put_compact_len(b, s.len());
    b.put_slice(s.as_bytes());
}

/// A compact nullable string: 0 for null, otherwise as a compact string.
pub(crate) fn put_compact_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(b, s),
        None => b.put_u8(0),
    }
}

/// A bounds-checked big-endian reader: every method returns `None` on
/// short or malformed input instead of panicking.
pub(crate) struct Reader(pub(crate) Bytes);

impl Reader {
    pub(crate) fn need(&self, n: usize) -> Option<()> {
        (self.0.remaining() >= n).then_some(())
    }
    pub(crate) fn i8(&mut self) -> Option<i8> {
        self.need(1)?;
        Some(self.0.get_i8())
    }
    pub(crate) fn i16(&mut self) -> Option<i16> {
        self.need(2)?;
        Some(self.0.get_i16())
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.need(4)?;
        Some(self.0.get_i32())
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.need(8)?;
        Some(self.0.get_i64())
    }
    pub(crate) fn uvarint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            self.need(1)?;
            let byte = self.0.get_u8();
            v |= u32::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    pub(crate) fn raw_str(&mut self, len: usize) -> Option<String> {
        self.need(len)?;
        String::from_utf8(self.0.split_to(len).to_vec()).ok()
    }
    pub(crate) fn str(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        self.raw_str(len)
    }
    pub(crate) fn compact_str(&mut self) -> Option<String> {
        // Compact strings store length + 1; 0 would be null, which these
        // fields are not.
        let len = usize::try_from(self.uvarint()?.checked_sub(1)?).ok()?;
        self.raw_str(len)
    }
    /// A compact nullable string: `Some(None)` for null.
    pub(crate) fn compact_nullable_str(&mut self) -> Option<Option<String>> {
        match usize::try_from(self.uvarint()?).ok()? {
            0 => Some(None),
            n => self.raw_str(n - 1).map(Some),
        }
    }
    pub(crate) fn uuid(&mut self) -> Option<uuid::Uuid> {
        self.need(16)?;
        uuid::Uuid::from_slice(&self.0.split_to(16)).ok()
    }
    /// An array length: `None` on bad bytes, `Some(None)` for null.
    pub(crate) fn array_len(&mut self, flexible: bool) -> Option<Option<usize>> {
        if flexible {
            let n = self.uvarint()?;
            Some(n.checked_sub(1).and_then(|n| usize::try_from(n).ok()))
        } else {
            let n = self.i32()?;
            Some(usize::try_from(n).ok())
        }
    }
    /// Reads a tagged-field section, handing each field to `f`, which
    /// returns `None` when a known field is malformed.
    pub(crate) fn tagged(&mut self, mut f: impl FnMut(u32, Bytes) -> Option<()>) -> Option<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            self.need(size)?;
            let data = self.0.split_to(size);
            f(tag, data)?;
        }
        Some(())
    }
    pub(crate) fn nullable_str(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        self.need(len)?;
        let s = self.0.split_to(len);
        Some(Some(String::from_utf8(s.to_vec()).ok()?))
    }
    pub(crate) fn bytes(&mut self) -> Option<Bytes> {
        let len = usize::try_from(self.i32()?).ok()?;
        self.need(len)?;
        Some(self.0.split_to(len))
    }
}

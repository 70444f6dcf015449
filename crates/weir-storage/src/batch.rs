//! Kafka RecordBatch v2: header layout, validation on append, and helpers
//! to inspect and decode stored batches.
//!
//! A batch on the wire and on disk (all integers big-endian):
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            (assigned by the log)
//!      8     4  batchLength           (bytes after this field)
//!     12     4  partitionLeaderEpoch  (assigned by the log)
//!     16     1  magic                 (must be 2)
//!     17     4  crc                   (CRC-32C of bytes 21..end)
//!     21     2  attributes
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61     …  records (possibly compressed)
//! ```
//!
//! The CRC does not cover the base offset, the length or the leader epoch, so
//! the log assigns those without recomputing it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

use crate::config::{LogConfig, TimestampType};
use crate::error::{LogError, RecordError};

/// Byte offset of `baseOffset`.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Byte offset of `batchLength`.
pub const LENGTH_OFFSET: usize = 8;
/// Byte offset of `partitionLeaderEpoch`.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Byte offset of `magic`.
pub const MAGIC_OFFSET: usize = 16;
/// Byte offset of `crc`.
pub const CRC_OFFSET: usize = 17;
/// Byte offset of `attributes`; the CRC covers from here to the end.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Byte offset of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Byte offset of `baseTimestamp`.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Byte offset of `maxTimestamp`.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Byte offset of `producerId`.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Byte offset of `producerEpoch`.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Byte offset of `baseSequence`.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Byte offset of `recordsCount`.
pub const RECORDS_COUNT_OFFSET: usize = 57;
/// Size of the v2 batch header; also the smallest valid batch.
pub const HEADER_SIZE: usize = 61;
/// Bytes before the part counted by `batchLength` (base offset + length).
pub const LOG_OVERHEAD: usize = 12;
/// The only supported magic byte.
pub const MAGIC_V2: i8 = 2;

/// Attribute bits 0–2: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamp type (set = LogAppendTime).
pub const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
/// Attribute bit 4: transactional batch.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit 5: control batch.
pub const ATTR_CONTROL: i16 = 1 << 5;
/// Attribute bit 6: the batch carries a delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// The smallest possible encoded record: length, attributes, timestamp delta,
/// offset delta, key length, value length and header count, one byte each.
const MIN_RECORD_SIZE: usize = 7;

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// The fixed 61-byte header of a v2 record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (bytes 0..8).
    pub base_offset: i64,
    /// Bytes following the length field (bytes 8..12).
    pub batch_length: i32,
    /// Leader epoch stamped by the log (bytes 12..16).
    pub partition_leader_epoch: i32,
    /// Format version (byte 16).
    pub magic: i8,
    /// CRC-32C of bytes 21..end (bytes 17..21).
    pub crc: u32,
    /// Attribute bits (bytes 21..23).
    pub attributes: i16,
    /// Last record's offset minus the base offset (bytes 23..27).
    pub last_offset_delta: i32,
    /// Timestamp of the first record, or the delete horizon (bytes 27..35).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (bytes 35..43).
    pub max_timestamp: i64,
    /// Producer id, `-1` when not idempotent (bytes 43..51).
    pub producer_id: i64,
    /// Producer epoch (bytes 51..53).
    pub producer_epoch: i16,
    /// Sequence of the first record (bytes 53..57).
    pub base_sequence: i32,
    /// Number of records (bytes 57..61).
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`, without any validation.
    /// `None` when fewer than [`HEADER_SIZE`] bytes are available.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        if buf.len() < HEADER_SIZE {
            return None;
        }
        Some(Self {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: be_i32(buf, LENGTH_OFFSET),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: be_u32(buf, CRC_OFFSET),
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Total size of the batch in bytes (`batchLength + 12`), or `None`
    /// when the length field is too small to hold a v2 header.
    pub fn total_size(&self) -> Option<usize> {
        let len = usize::try_from(self.batch_length).ok()?;
        let total = len.checked_add(LOG_OVERHEAD)?;
        (total >= HEADER_SIZE).then_some(total)
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`), saturating.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The compression codec, or `None` for an unknown codec id.
    pub fn compression(&self) -> Option<Compression> {
        match self.attributes & ATTR_COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The timestamp type (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch holds control records (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch carries a delete horizon (attribute bit 6).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTR_DELETE_HORIZON != 0
    }

    /// Whether the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// CRC-32C of a whole batch as Kafka defines it (bytes 21..end).
/// `batch` must be at least [`HEADER_SIZE`] bytes long.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or(&[]))
}

/// Writes `base_offset` into bytes 0..8 of a batch header.
pub fn set_base_offset(header: &mut [u8], base_offset: i64) {
    header[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch into bytes 12..16 of a batch header.
pub fn set_partition_leader_epoch(header: &mut [u8], epoch: i32) {
    header[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Sets LogAppendTime on a batch the way Kafka's `setMaxTimestamp` does:
/// attribute bit 3 and `maxTimestamp`, then recomputes the CRC. The base
/// timestamp is left alone. `batch` is the whole batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = be_i16(batch, ATTRIBUTES_OFFSET) | ATTR_TIMESTAMP_TYPE;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// One batch of an append that passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedBatch {
    /// Byte range of the batch within the request's records.
    pub range: std::ops::Range<usize>,
    /// The batch header as it will be written (LogAppendTime applied; the
    /// base offset and leader epoch are filled in by the log).
    pub header: [u8; HEADER_SIZE],
    /// Offsets the batch takes: `lastOffsetDelta + 1`.
    pub offset_count: i64,
    /// The batch's largest timestamp after validation.
    pub max_timestamp: i64,
    /// Number of records the header claims.
    pub records_count: i32,
}

/// The outcome of validating one append.
#[derive(Debug, Clone)]
pub struct ValidatedAppend {
    /// Every batch, in request order.
    pub batches: Vec<ValidatedBatch>,
    /// Sum of `offset_count` over all batches.
    pub offset_count: i64,
    /// Total bytes of all batches.
    pub size: usize,
    /// The LogAppendTime used, or `-1` for CreateTime topics.
    pub log_append_time: i64,
}

fn corrupt(position: usize, reason: impl Into<String>) -> LogError {
    LogError::CorruptMessage {
        position,
        reason: reason.into(),
    }
}

fn invalid(reason: impl Into<String>) -> LogError {
    LogError::InvalidRecord {
        reason: reason.into(),
    }
}

/// Validates the records of one produce request for one partition, as Kafka's
/// broker does before appending. Checks, per batch: framing (length field
/// against the bytes available, at least [`HEADER_SIZE`]), magic 2, size
/// against `max.message.bytes`, CRC-32C, record count against
/// `lastOffsetDelta + 1`, timestamps for CreateTime topics and, for compacted
/// topics, that every record has a key (this decodes the records). Applies
/// LogAppendTime when the topic asks for it (to the returned headers, not to
/// `records`). Nothing is written, so on error the log is untouched.
///
/// This is the function the `batch_parser` fuzz target drives; it never
/// panics on any input.
pub fn validate_append(
    records: &Bytes,
    config: &LogConfig,
    now_ms: i64,
) -> Result<ValidatedAppend, LogError> {
    let buf: &[u8] = records;
    if buf.is_empty() {
        return Err(invalid("produce request has no record batches"));
    }
    let log_append_time = match config.timestamp_type {
        TimestampType::LogAppendTime => now_ms,
        TimestampType::CreateTime => -1,
    };
    let mut batches = Vec::new();
    let mut offset_count: i64 = 0;
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < LOG_OVERHEAD + 5 {
            return Err(corrupt(
                pos,
                format!(
                    "{} trailing bytes are too few for a batch header",
                    rest.len()
                ),
            ));
        }
        let length = be_i32(rest, LENGTH_OFFSET);
        let magic = rest[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic { magic });
        }
        let size = match usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(LOG_OVERHEAD))
        {
            Some(s) if s >= HEADER_SIZE => s,
            _ => {
                return Err(corrupt(
                    pos,
                    format!("batch length {length} is below the minimum v2 batch size"),
                ))
            }
        };
        if size as u64 > config.max_message_bytes {
            return Err(LogError::MessageTooLarge {
                size,
                max: config.max_message_bytes,
            });
        }
        if size > rest.len() {
            return Err(corrupt(
                pos,
                format!(
                    "batch length {size} exceeds the {} bytes available",
                    rest.len()
                ),
            ));
        }
        let batch = &rest[..size];
        let Some(header) = BatchHeader::parse(batch) else {
            return Err(corrupt(pos, "truncated batch header"));
        };
        let crc = compute_crc(batch);
        if crc != header.crc {
            return Err(corrupt(
                pos,
                format!(
                    "CRC-32C mismatch: stored {:#010x}, computed {crc:#010x}",
                    header.crc
                ),
            ));
        }
        if header.compression().is_none() {
            return Err(invalid(format!(
                "unknown compression codec {}",
                header.attributes & ATTR_COMPRESSION_MASK
            )));
        }
        if header.last_offset_delta < 0 {
            return Err(invalid(format!(
                "batch has an invalid offset range (lastOffsetDelta {})",
                header.last_offset_delta
            )));
        }
        let count_from_offsets = i64::from(header.last_offset_delta) + 1;
        if header.records_count <= 0 {
            return Err(invalid(format!(
                "invalid reported count for record batch: {}",
                header.records_count
            )));
        }
        if count_from_offsets != i64::from(header.records_count) {
            return Err(invalid(format!(
                "inconsistent batch offset range [0, {}] and count of records {}",
                header.last_offset_delta, header.records_count
            )));
        }
        let check_time = config.timestamp_type == TimestampType::CreateTime && !header.is_control();
        // Like Kafka's LogValidator, every record is walked (decompressing
        // if needed): a batch whose records do not match its header (count,
        // offset deltas, framing, codec) would poison the partition for
        // every consumer. Every bad record is reported with its index
        // (KIP-467), so clients fail only those.
        {
            let body = records.slice(pos..pos + size);
            let mut bad = Vec::new();
            let mut bad_time = false;
            let mut index = 0i32;
            let need_key = config.cleanup_compact && !header.is_control();
            // The CRC was checked above.
            walk_records_crc_checked(&body, |rec| {
                let message = if need_key && rec.key.is_none() {
                    Some("compacted topic cannot accept a record without a key".to_string())
                } else if check_time && !timestamp_in_range(rec.timestamp, config, now_ms) {
                    bad_time = true;
                    Some(format!(
                        "timestamp {} is outside the allowed range [now - {}, now + {}] ms",
                        rec.timestamp,
                        config.timestamp_before_max_ms,
                        config.timestamp_after_max_ms
                    ))
                } else {
                    None
                };
                if let Some(message) = message {
                    bad.push(RecordError {
                        batch_index: index,
                        message,
                    });
                }
                index = index.saturating_add(1);
            })
            .map_err(|e| match e {
                LogError::CorruptMessage { reason, .. } => corrupt(pos, reason),
                other => other,
            })?;
            if !bad.is_empty() {
                return Err(LogError::InvalidRecords {
                    timestamp: bad_time,
                    records: bad,
                });
            }
        }
        if check_time {
            check_timestamp(header.max_timestamp, config, now_ms)?;
            check_timestamp(header.base_timestamp, config, now_ms)?;
        }
        let mut head = [0u8; HEADER_SIZE];
        head.copy_from_slice(&batch[..HEADER_SIZE]);
        let mut max_timestamp = header.max_timestamp;
        if log_append_time >= 0 && !header.is_control() {
            // Kafka's setMaxTimestamp: attributes and maxTimestamp only.
            // The CRC covers the records, so it is recomputed over the body.
            let attrs = header.attributes | ATTR_TIMESTAMP_TYPE;
            head[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
            head[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
                .copy_from_slice(&log_append_time.to_be_bytes());
            let mut hasher = crc32c::crc32c(&head[ATTRIBUTES_OFFSET..]);
            hasher = crc32c::crc32c_append(hasher, &batch[HEADER_SIZE..]);
            head[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&hasher.to_be_bytes());
            max_timestamp = log_append_time;
        }
        offset_count = offset_count.saturating_add(count_from_offsets);
        batches.push(ValidatedBatch {
            range: pos..pos + size,
            header: head,
            offset_count: count_from_offsets,
            max_timestamp,
            records_count: header.records_count,
        });
        pos += size;
    }
    Ok(ValidatedAppend {
        batches,
        offset_count,
        size: buf.len(),
        log_append_time,
    })
}

fn timestamp_in_range(ts: i64, config: &LogConfig, now_ms: i64) -> bool {
    ts == -1
        || (now_ms.saturating_sub(ts) <= config.timestamp_before_max_ms
            && ts.saturating_sub(now_ms) <= config.timestamp_after_max_ms)
}

fn check_timestamp(ts: i64, config: &LogConfig, now_ms: i64) -> Result<(), LogError> {
    if !timestamp_in_range(ts, config, now_ms) {
        return Err(LogError::InvalidTimestamp { timestamp: ts });
    }
    Ok(())
}

/// What a stored batch looked like when checked by [`check_stored_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredBatch {
    /// A complete batch with a matching CRC.
    Valid(BatchHeader),
    /// Fewer bytes remain than a header or the batch needs (a torn tail).
    Truncated,
    /// The bytes cannot be a batch (bad length, magic or CRC).
    Corrupt(&'static str),
}

/// Checks the batch at the start of `buf` as recovery does: framing, magic
/// and, when `verify_crc`, the CRC. Never panics.
pub fn check_stored_batch(buf: &[u8], verify_crc: bool) -> StoredBatch {
    let Some(header) = BatchHeader::parse(buf) else {
        return if buf.len() >= LOG_OVERHEAD && be_i32(buf, LENGTH_OFFSET) <= 0 {
            StoredBatch::Corrupt("non-positive batch length")
        } else {
            StoredBatch::Truncated
        };
    };
    if header.magic != MAGIC_V2 {
        return StoredBatch::Corrupt("bad magic");
    }
    let Some(size) = header.total_size() else {
        return StoredBatch::Corrupt("bad batch length");
    };
    if size > buf.len() {
        return StoredBatch::Truncated;
    }
    if header.last_offset_delta < 0 || header.base_offset < 0 {
        return StoredBatch::Corrupt("bad offsets");
    }
    if verify_crc && compute_crc(&buf[..size]) != header.crc {
        return StoredBatch::Corrupt("CRC mismatch");
    }
    StoredBatch::Valid(header)
}

/// A record as seen by [`walk_records`]: borrowed, nothing allocated.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// Absolute offset (`baseOffset + offsetDelta`).
    pub offset: i64,
    /// Absolute timestamp; for LogAppendTime batches the batch's
    /// `maxTimestamp`, as Kafka's clients read it.
    pub timestamp: i64,
    /// The key, `None` when null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` when null (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The whole encoded record (length prefix included), as found in the
    /// decompressed records section.
    pub raw: &'a [u8],
}

/// A batch whose bytes are not well formed (framing, CRC, compression),
/// positioned at the start of the records given.
fn corrupt_batch(reason: impl Into<String>) -> LogError {
    LogError::CorruptMessage {
        position: 0,
        reason: reason.into(),
    }
}

/// A batch whose records are framed but break a rule (count, offsets,
/// sizes).
fn invalid_batch(reason: impl Into<String>) -> LogError {
    LogError::InvalidRecord {
        reason: reason.into(),
    }
}

/// Upper bound on what one batch may decompress to (guards against
/// decompression bombs when a batch is decoded).
pub const MAX_DECOMPRESSED_BATCH: usize = 256 << 20;

/// Reads a decompressing stream, stopping one byte past
/// [`MAX_DECOMPRESSED_BATCH`]: a small batch that expands to gigabytes
/// (a decompression bomb) costs at most the limit, never the whole.
fn bounded_read(reader: impl std::io::Read) -> std::io::Result<Bytes> {
    use std::io::Read;
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_DECOMPRESSED_BATCH)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader.take(limit).read_to_end(&mut out)?;
    Ok(Bytes::from(out))
}

/// Returns the records section of a whole batch, decompressed (snappy with
/// kafka-protocol's codec, the others with bounded streaming decoders).
/// Checks framing and CRC first.
pub fn decompressed_records(batch: &Bytes) -> Result<(BatchHeader, Bytes), LogError> {
    decompress(batch, true)
}

/// [`decompressed_records`], checking the CRC only when `verify_crc`
/// (callers that have just checked it pass false: CRC-32C over every
/// produced byte twice was a tenth of the produce path's CPU).
fn decompress(batch: &Bytes, verify_crc: bool) -> Result<(BatchHeader, Bytes), LogError> {
    let header = match check_stored_batch(batch, verify_crc) {
        StoredBatch::Valid(h) => h,
        StoredBatch::Truncated => return Err(corrupt_batch("truncated batch")),
        StoredBatch::Corrupt(why) => return Err(corrupt_batch(why)),
    };
    let size = header.total_size().unwrap_or(HEADER_SIZE);
    let mut body = batch.slice(HEADER_SIZE..size.min(batch.len()));
    let failed = |e: &dyn std::fmt::Display| corrupt_batch(format!("decompression failed: {e}"));
    let out = match header.compression() {
        Some(Compression::None) => body,
        Some(Compression::Gzip) => {
            bounded_read(flate2::read::GzDecoder::new(&body[..])).map_err(|e| failed(&e))?
        }
        Some(Compression::Snappy) => {
            snappy_precheck(&body)?;
            Snappy::decompress(&mut body, |b: &mut Bytes| Ok(b.clone()))
                .map_err(|e| failed(&format_args!("{e:#}")))?
        }
        Some(Compression::Lz4) => lz4::Decoder::new(&body[..])
            .and_then(bounded_read)
            .map_err(|e| failed(&e))?,
        Some(Compression::Zstd) => zstd::stream::read::Decoder::new(&body[..])
            .and_then(bounded_read)
            .map_err(|e| failed(&e))?,
        None => return Err(corrupt_batch("unknown compression codec")),
    };
    if out.len() > MAX_DECOMPRESSED_BATCH {
        return Err(invalid_batch(format!(
            "batch decompresses to {} bytes, above the {MAX_DECOMPRESSED_BATCH} byte limit",
            out.len()
        )));
    }
    Ok((header, out))
}

/// Snappy's length prefixes announce how much memory decompression will
/// allocate. A snappy block cannot expand more than ~22×, so reject claims
/// beyond that before the codec allocates them.
fn snappy_precheck(body: &[u8]) -> Result<(), LogError> {
    const XERIAL: &[u8; 8] = b"\x82SNAPPY\x00";
    fn claimed_len(block: &[u8]) -> Option<u64> {
        let mut v: u64 = 0;
        for (i, b) in block.iter().take(5).enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let check = |block: &[u8]| -> Result<(), LogError> {
        let claim = claimed_len(block).unwrap_or(0);
        let bound = (block.len() as u64).saturating_mul(32).saturating_add(64);
        if claim > bound || claim > MAX_DECOMPRESSED_BATCH as u64 {
            return Err(corrupt_batch(format!(
                "snappy block claims {claim} bytes from {} compressed bytes",
                block.len()
            )));
        }
        Ok(())
    };
    if body.len() >= 16 && &body[..8] == XERIAL {
        let mut at = 16usize;
        let mut total: u64 = 0;
        while at + 4 <= body.len() {
            let n = be_u32(body, at) as usize;
            at += 4;
            let end = at.saturating_add(n).min(body.len());
            let block = &body[at..end];
            check(block)?;
            total = total.saturating_add(claimed_len(block).unwrap_or(0));
            if total > MAX_DECOMPRESSED_BATCH as u64 {
                return Err(corrupt_batch("snappy stream too large"));
            }
            at = end;
        }
        Ok(())
    } else {
        check(body)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn varint(&mut self) -> Option<i32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((v >> 1) as i32) ^ -((v & 1) as i32));
            }
        }
        None
    }
    fn varlong(&mut self) -> Option<i64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        None
    }
    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    /// A length-prefixed field (`None` for length -1); the error says why
    /// the bytes do not frame one.
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, &'static str> {
        let len = self.varint().ok_or("truncated length")?;
        match len {
            -1 => Ok(None),
            l if l < -1 => Err("negative length"),
            l => self
                .bytes(l as usize)
                .map(Some)
                .ok_or("length beyond record"),
        }
    }
}

/// Walks every record of a whole batch (decompressing it if needed) and
/// checks the framing that kafka-protocol's decoder relies on: exactly
/// `recordsCount` records, each consuming exactly its length, offset deltas
/// strictly increasing within `[0, lastOffsetDelta]`, absolute offsets and
/// timestamps without overflow. Calls `f` for each record. Never panics.
pub fn walk_records(batch: &Bytes, f: impl FnMut(RecordView<'_>)) -> Result<BatchHeader, LogError> {
    let (header, data) = decompressed_records(batch)?;
    walk_decompressed(&header, &data, f)?;
    Ok(header)
}

/// [`walk_records`] for a batch whose CRC the caller has already checked.
fn walk_records_crc_checked(
    batch: &Bytes,
    f: impl FnMut(RecordView<'_>),
) -> Result<BatchHeader, LogError> {
    let (header, data) = decompress(batch, false)?;
    walk_decompressed(&header, &data, f)?;
    Ok(header)
}

fn walk_decompressed(
    header: &BatchHeader,
    data: &[u8],
    mut f: impl FnMut(RecordView<'_>),
) -> Result<(), LogError> {
    let count = usize::try_from(header.records_count)
        .map_err(|_| invalid_batch(format!("negative record count {}", header.records_count)))?;
    if count > data.len() / MIN_RECORD_SIZE + 1 {
        return Err(invalid_batch(format!(
            "record count {count} cannot fit in {} bytes",
            data.len()
        )));
    }
    let lat = header.timestamp_type() == TimestampType::LogAppendTime;
    let mut r = Reader { buf: data, pos: 0 };
    let mut prev_delta: i64 = -1;
    let mut min_ts = i64::MAX;
    let mut max_ts = i64::MIN;
    for i in 0..count {
        let bad = |why: String| invalid_batch(format!("record {i}: {why}"));
        let record_start = r.pos;
        let len = r
            .varint()
            .ok_or_else(|| bad("truncated record length".into()))?;
        let len = usize::try_from(len).map_err(|_| bad(format!("negative record length {len}")))?;
        let body = r
            .bytes(len)
            .ok_or_else(|| bad("record length beyond batch".into()))?;
        let mut rr = Reader { buf: body, pos: 0 };
        rr.u8().ok_or_else(|| bad("missing attributes".into()))?;
        let ts_delta = rr
            .varlong()
            .ok_or_else(|| bad("bad timestamp delta".into()))?;
        let off_delta = rr.varint().ok_or_else(|| bad("bad offset delta".into()))?;
        let key = rr.nullable().map_err(|e| bad(format!("key: {e}")))?;
        let value = rr.nullable().map_err(|e| bad(format!("value: {e}")))?;
        let headers = rr.varint().ok_or_else(|| bad("bad header count".into()))?;
        if headers < 0 {
            return Err(bad(format!("negative header count {headers}")));
        }
        for _ in 0..headers {
            match rr.nullable() {
                Ok(Some(_)) => {}
                Ok(None) => return Err(bad("null header key".into())),
                Err(e) => return Err(bad(format!("header key: {e}"))),
            }
            rr.nullable()
                .map_err(|e| bad(format!("header value: {e}")))?;
        }
        if rr.pos != body.len() {
            return Err(bad(format!(
                "{} unread bytes in record",
                body.len() - rr.pos
            )));
        }
        let delta = i64::from(off_delta);
        if delta <= prev_delta || delta > i64::from(header.last_offset_delta) {
            return Err(bad(format!("offset delta {delta} out of order")));
        }
        prev_delta = delta;
        let offset = header
            .base_offset
            .checked_add(delta)
            .ok_or_else(|| bad("offset overflow".into()))?;
        let ts = header
            .base_timestamp
            .checked_add(ts_delta)
            .ok_or_else(|| bad("timestamp overflow".into()))?;
        min_ts = min_ts.min(ts);
        max_ts = max_ts.max(ts);
        let timestamp = if lat { header.max_timestamp } else { ts };
        f(RecordView {
            offset,
            timestamp,
            key,
            value,
            raw: &data[record_start..r.pos],
        });
    }
    if r.pos != data.len() {
        return Err(invalid_batch(format!(
            "{} bytes after the last record",
            data.len() - r.pos
        )));
    }
    if count > 0 && max_ts.checked_sub(min_ts).is_none() {
        return Err(invalid_batch("timestamp range overflows"));
    }
    Ok(())
}

/// Decodes a whole stored batch into kafka-protocol [`Record`]s, after
/// [`walk_records`] has checked everything the decoder would otherwise trip
/// over (it reserves memory by the claimed count and adds deltas unchecked).
/// For LogAppendTime batches the records' timestamps are set to the batch's
/// `maxTimestamp`, as clients read them.
pub fn decode_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<Record>), LogError> {
    let (header, data) = decompressed_records(batch)?;
    walk_decompressed(&header, &data, |_| {})?;
    let size = header.total_size().unwrap_or(HEADER_SIZE).min(batch.len());
    let mut buf = batch.slice(..size);
    let set = RecordBatchDecoder::decode_with_custom_compression(
        &mut buf,
        Some(|_: &mut Bytes, _: Compression| Ok(data.clone())),
    )
    .map_err(|e| corrupt_batch(format!("decode failed: {e:#}")))?;
    let mut records = set.records;
    if header.timestamp_type() == TimestampType::LogAppendTime {
        for r in &mut records {
            r.timestamp = header.max_timestamp;
            r.timestamp_type = kafka_protocol::records::TimestampType::LogAppend;
        }
    }
    Ok((header, records))
}

/// The rules of a log-cleaning pass (Kafka's log cleaner), shared by the
/// local cleaner and the cluster's: `latest` gives a key's latest offset
/// in the dirty section, records at or past `map_end` are beyond the
/// section cleaned, and tombstones before `first_dirty` (cleaned once
/// already) in a container whose largest timestamp is at or before
/// `delete_horizon` go.
pub struct CleanRules<F: Fn(&[u8]) -> Option<i64>> {
    pub latest: F,
    pub map_end: i64,
    pub first_dirty: i64,
    pub delete_horizon: i64,
}

impl<F: Fn(&[u8]) -> Option<i64>> std::fmt::Debug for CleanRules<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanRules")
            .field("map_end", &self.map_end)
            .field("first_dirty", &self.first_dirty)
            .field("delete_horizon", &self.delete_horizon)
            .finish_non_exhaustive()
    }
}

/// One batch after cleaning under `rules`: itself when nothing goes,
/// `None` when nothing stays, else rebuilt from the surviving records
/// (base offset, last offset delta, producer fields and codec kept).
/// Control and transactional batches are kept whole, and so is a batch
/// that cannot be walked; the error is the re-encoding's (the caller
/// keeps the batch whole). `container_max_ts` is the largest timestamp
/// of the segment (or row) holding the batch.
pub fn clean_batch<F: Fn(&[u8]) -> Option<i64>>(
    h: &BatchHeader,
    bytes: &Bytes,
    container_max_ts: i64,
    rules: &CleanRules<F>,
) -> Result<Option<Bytes>, LogError> {
    if h.is_control() || h.is_transactional() || h.base_offset >= rules.map_end {
        return Ok(Some(bytes.clone()));
    }
    let mut section = Vec::new();
    let (mut kept, mut dropped) = (0i32, 0i32);
    let mut max_ts = i64::MIN;
    let walked = walk_records(bytes, |r| {
        let keep = if r.offset >= rules.map_end {
            true
        } else if let Some(key) = r.key {
            let latest = (rules.latest)(key).is_none_or(|o| o <= r.offset);
            let expired_tombstone = r.value.is_none()
                && r.offset < rules.first_dirty
                && container_max_ts <= rules.delete_horizon;
            latest && !expired_tombstone
        } else {
            false
        };
        if keep {
            section.extend_from_slice(r.raw);
            kept += 1;
            max_ts = max_ts.max(r.timestamp);
        } else {
            dropped += 1;
        }
    });
    match walked {
        Err(_) => Ok(Some(bytes.clone())),
        Ok(_) if dropped == 0 => Ok(Some(bytes.clone())),
        Ok(_) if kept == 0 => Ok(None),
        Ok(header) => {
            let max_ts = if header.timestamp_type() == TimestampType::LogAppendTime {
                header.max_timestamp
            } else {
                max_ts
            };
            build_batch(&header, &section, kept, max_ts).map(Some)
        }
    }
}

/// Bytes per offset map slot: 128-bit hash + 64-bit offset.
const SLOT_BYTES: usize = 24;
/// Kafka's `log.cleaner.io.buffer.load.factor`.
const LOAD_FACTOR: f64 = 0.9;

/// The cleaner's offset map (Kafka's `log.cleaner.dedupe.buffer.size`):
/// a fixed-size open-addressing map from a key's 128-bit hash to its
/// latest offset, shared by the local cleaner and the cluster's, so that
/// a pass needs this much memory whatever the number of keys.
#[derive(Debug)]
pub struct OffsetMap {
    slots: Vec<(u64, u64, i64)>,
    len: usize,
    max_len: usize,
}

fn key_hash(key: &[u8]) -> (u64, u64) {
    let mut a = DefaultHasher::new();
    0x5745_4952u32.hash(&mut a);
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x4c4f_4721u32.hash(&mut b);
    key.hash(&mut b);
    (a.finish(), b.finish())
}

impl OffsetMap {
    /// A map of about `bytes` bytes (24 per key, at least 16 keys).
    pub fn new(bytes: usize) -> Self {
        let n = (bytes / SLOT_BYTES).max(16);
        Self {
            slots: vec![(0, 0, -1); n],
            len: 0,
            max_len: ((n as f64) * LOAD_FACTOR) as usize,
        }
    }

    /// Forgets every key, keeping the memory.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = (0, 0, -1));
        self.len = 0;
    }

    /// Room left before the load factor is reached.
    pub fn room(&self) -> usize {
        self.max_len.saturating_sub(self.len)
    }

    fn slot(&self, h: (u64, u64)) -> usize {
        let n = self.slots.len();
        let mut i = (h.0 % n as u64) as usize;
        loop {
            let s = self.slots[i];
            if s.2 < 0 || (s.0 == h.0 && s.1 == h.1) {
                return i;
            }
            i = (i + 1) % n;
        }
    }

    /// Records `offset` as the latest for `key`. The caller checks `room()`.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        let h = key_hash(key);
        let i = self.slot(h);
        if self.slots[i].2 < 0 {
            if self.len >= self.max_len {
                return;
            }
            self.len += 1;
        }
        let prev = self.slots[i].2;
        self.slots[i] = (h.0, h.1, prev.max(offset));
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let s = self.slots[self.slot(key_hash(key))];
        (s.2 >= 0).then_some(s.2)
    }
}

/// Builds a batch from `template`'s header fields and an uncompressed
/// records section (concatenated encoded records, e.g. the `raw` slices
/// retained by the cleaner), compressing it with the template's codec via
/// kafka-protocol. Base offset, last offset delta, base timestamp, producer
/// fields and attributes are kept; length, records count, max timestamp and
/// the CRC are set.
pub fn build_batch(
    template: &BatchHeader,
    records_section: &[u8],
    records_count: i32,
    max_timestamp: i64,
) -> Result<Bytes, LogError> {
    build(
        template,
        records_section,
        records_count,
        max_timestamp,
        None,
    )
}

/// [`build_batch`], compressing at `level` when given (else at the codec
/// library's default).
fn build(
    template: &BatchHeader,
    records_section: &[u8],
    records_count: i32,
    max_timestamp: i64,
    level: Option<i32>,
) -> Result<Bytes, LogError> {
    let compression = template
        .compression()
        .ok_or_else(|| corrupt_batch("unknown compression codec"))?;
    let mut out = BytesMut::with_capacity(HEADER_SIZE + records_section.len());
    out.resize(HEADER_SIZE, 0);
    let fill = |b: &mut BytesMut| {
        b.extend_from_slice(records_section);
        Ok(())
    };
    let res = match (compression, level) {
        (c, Some(level)) => compress_at(c, level, records_section, &mut out),
        (Compression::None, None) => {
            out.extend_from_slice(records_section);
            Ok(())
        }
        (Compression::Gzip, None) => Gzip::compress(&mut out, fill).map_err(|e| format!("{e:#}")),
        (Compression::Snappy, None) => {
            Snappy::compress(&mut out, fill).map_err(|e| format!("{e:#}"))
        }
        (Compression::Lz4, None) => Lz4::compress(&mut out, fill).map_err(|e| format!("{e:#}")),
        (Compression::Zstd, None) => Zstd::compress(&mut out, fill).map_err(|e| format!("{e:#}")),
    };
    res.map_err(|e| corrupt_batch(format!("compression failed: {e}")))?;
    let length =
        i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| invalid_batch("batch too large"))?;
    let h = &mut out[..];
    h[BASE_OFFSET_OFFSET..8].copy_from_slice(&template.base_offset.to_be_bytes());
    h[LENGTH_OFFSET..12].copy_from_slice(&length.to_be_bytes());
    h[PARTITION_LEADER_EPOCH_OFFSET..16]
        .copy_from_slice(&template.partition_leader_epoch.to_be_bytes());
    h[MAGIC_OFFSET] = MAGIC_V2 as u8;
    h[ATTRIBUTES_OFFSET..23].copy_from_slice(&template.attributes.to_be_bytes());
    h[LAST_OFFSET_DELTA_OFFSET..27].copy_from_slice(&template.last_offset_delta.to_be_bytes());
    h[BASE_TIMESTAMP_OFFSET..35].copy_from_slice(&template.base_timestamp.to_be_bytes());
    h[MAX_TIMESTAMP_OFFSET..43].copy_from_slice(&max_timestamp.to_be_bytes());
    h[PRODUCER_ID_OFFSET..51].copy_from_slice(&template.producer_id.to_be_bytes());
    h[PRODUCER_EPOCH_OFFSET..53].copy_from_slice(&template.producer_epoch.to_be_bytes());
    h[BASE_SEQUENCE_OFFSET..57].copy_from_slice(&template.base_sequence.to_be_bytes());
    h[RECORDS_COUNT_OFFSET..61].copy_from_slice(&records_count.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

/// Broker-side compression (a topic `compression.type` other than
/// `producer`), as Kafka's LogValidator does it: every batch whose codec is
/// not `codec` is rebuilt with it at `level` (`compression.<codec>.level`;
/// ignored by snappy), keeping every header field but the codec bits. A
/// rebuilt batch's CRC is checked first, so a corrupt batch is not made
/// valid. Control batches and batches already in `codec` are kept as they
/// are, and when nothing needs rebuilding `records` itself is returned:
/// matching codecs stay on the zero-copy path.
pub fn recompress(records: &Bytes, codec: Compression, level: i32) -> Result<Bytes, LogError> {
    let mut pos = 0usize;
    let mut out: Option<BytesMut> = None;
    while pos < records.len() {
        let rest = records.slice(pos..);
        // A pre-v2 message set keeps its magic byte at the same offset: it
        // is refused as the append path refuses it, not as corrupt.
        if let Some(&magic) = rest.get(MAGIC_OFFSET) {
            if magic as i8 != MAGIC_V2 {
                return Err(LogError::UnsupportedMagic { magic: magic as i8 });
            }
        }
        let header = match check_stored_batch(&rest, false) {
            StoredBatch::Valid(h) => h,
            StoredBatch::Truncated => return Err(corrupt_batch("truncated batch")),
            StoredBatch::Corrupt(why) => return Err(corrupt_batch(why)),
        };
        let size = header
            .total_size()
            .ok_or_else(|| corrupt_batch("batch length out of range"))?;
        let batch = rest.slice(..size.min(rest.len()));
        if header.is_control() || header.compression() == Some(codec) {
            if let Some(o) = out.as_mut() {
                o.extend_from_slice(&batch);
            }
        } else {
            let o = out.get_or_insert_with(|| {
                let mut o = BytesMut::with_capacity(records.len());
                o.extend_from_slice(&records[..pos]);
                o
            });
            let (_, section) = decompress(&batch, true)?;
            let mut template = header;
            template.attributes = (header.attributes & !ATTR_COMPRESSION_MASK) | codec_bits(codec);
            o.extend_from_slice(&build(
                &template,
                &section,
                header.records_count,
                header.max_timestamp,
                Some(level),
            )?);
        }
        pos += size;
    }
    Ok(out.map_or_else(|| records.clone(), BytesMut::freeze))
}

/// Every codec of the v2 batch format, in attribute order.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Compresses `section` with `codec` at a Kafka `compression.<codec>.level`
/// (gzip -1 is zlib's default), in the frame formats Kafka uses.
fn compress_at(
    codec: Compression,
    level: i32,
    section: &[u8],
    out: &mut BytesMut,
) -> Result<(), String> {
    use bytes::BufMut;
    use std::io::Write;
    let e = |e: std::io::Error| e.to_string();
    match codec {
        Compression::Gzip => {
            let level = u32::try_from(level)
                .map_or(flate2::Compression::default(), flate2::Compression::new);
            let mut enc = flate2::write::GzEncoder::new(out.writer(), level);
            enc.write_all(section).map_err(e)?;
            enc.finish().map(drop).map_err(e)
        }
        Compression::Lz4 => {
            let mut enc = lz4::EncoderBuilder::new()
                .level(u32::try_from(level).unwrap_or(1))
                .block_mode(lz4::BlockMode::Independent)
                .build(out.writer())
                .map_err(e)?;
            enc.write_all(section).map_err(e)?;
            enc.finish().1.map_err(e)
        }
        Compression::Zstd => zstd::stream::copy_encode(section, out.writer(), level).map_err(e),
        Compression::Snappy => Snappy::compress(out, |b: &mut BytesMut| {
            b.extend_from_slice(section);
            Ok(())
        })
        .map_err(|e| format!("{e:#}")),
        Compression::None => {
            out.extend_from_slice(section);
            Ok(())
        }
    }
}

/// Iterates over the whole batches at the start of `buf` without checking
/// CRCs, yielding `(position, header)`; stops at the first incomplete or
/// malformed batch.
pub fn iter_batches(buf: &[u8]) -> impl Iterator<Item = (usize, BatchHeader)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rest = buf.get(pos..)?;
        match check_stored_batch(rest, false) {
            StoredBatch::Valid(h) => {
                let at = pos;
                pos += h.total_size()?;
                Some((at, h))
            }
            _ => None,
        }
    })
}

/// Drives every parser in this module with arbitrary bytes; the entry point
/// of the `batch_parser` fuzz target (and of a property test). The first
/// byte picks the topic config. Never panics.
pub fn fuzz_batch_bytes(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let config = LogConfig {
        cleanup_compact: selector & 1 != 0,
        timestamp_type: if selector & 2 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        timestamp_before_max_ms: if selector & 4 != 0 { 1000 } else { i64::MAX },
        max_message_bytes: if selector & 8 != 0 { 256 } else { 1 << 20 },
        ..LogConfig::default()
    };
    let mut owned = rest.to_vec();
    if selector & 16 != 0 {
        // Repair framing (magic, CRC) so random bytes reach the record
        // decoders instead of stopping at the checksum.
        let mut pos = 0usize;
        while owned.len() - pos >= HEADER_SIZE {
            owned[pos + MAGIC_OFFSET] = MAGIC_V2 as u8;
            let len = be_i32(&owned, pos + LENGTH_OFFSET);
            let Some(size) = usize::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(LOG_OVERHEAD))
            else {
                break;
            };
            if size < HEADER_SIZE || size > owned.len() - pos {
                break;
            }
            let crc = compute_crc(&owned[pos..pos + size]);
            owned[pos + CRC_OFFSET..pos + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            pos += size;
        }
    }
    let rest = &owned[..];
    let bytes = Bytes::copy_from_slice(rest);
    // Broker-side compression sees the same untrusted bytes first.
    let codec = CODECS[usize::from(selector >> 5) % CODECS.len()];
    let _ = recompress(&bytes, codec, 1);
    if let Ok(v) = validate_append(&bytes, &config, 1_700_000_000_000) {
        // What would be written must itself be valid stored data.
        for b in &v.batches {
            let mut full = b.header.to_vec();
            set_base_offset(&mut full, 0);
            full.extend_from_slice(&rest[b.range.start + HEADER_SIZE..b.range.end]);
            debug_assert!(matches!(
                check_stored_batch(&full, true),
                StoredBatch::Valid(_)
            ));
        }
    }
    let mut pos = 0usize;
    while pos < rest.len() {
        let _ = check_stored_batch(&rest[pos..], true);
        let one = bytes.slice(pos..);
        let _ = walk_records(&one, |_| {});
        if let Ok((h, recs)) = decode_batch(&one) {
            debug_assert!(recs.len() == usize::try_from(h.records_count).unwrap_or(0));
        }
        match check_stored_batch(&rest[pos..], false) {
            StoredBatch::Valid(h) => pos += h.total_size().unwrap_or(rest.len()),
            _ => break,
        }
    }
    for _ in iter_batches(rest) {}
}

#[cfg(test)]
mod tests {
    /// A gzip batch that expands past the limit is refused, having read
    /// only up to the limit (the test would need gigabytes otherwise).
    #[test]
    fn decompression_bombs_stop_at_the_limit() {
        use std::io::Read;
        let expanded = u64::try_from(MAX_DECOMPRESSED_BATCH).unwrap() + (64 << 20);
        let mut payload = Vec::new();
        flate2::read::GzEncoder::new(
            std::io::repeat(0).take(expanded),
            flate2::Compression::fast(),
        )
        .read_to_end(&mut payload)
        .unwrap();
        assert!(
            (payload.len() as u64) * 100 < expanded,
            "the bomb itself is small: {} bytes",
            payload.len()
        );
        let mut b = vec![0u8; HEADER_SIZE];
        b.extend_from_slice(&payload);
        let length = i32::try_from(b.len() - LOG_OVERHEAD).unwrap();
        b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&1i16.to_be_bytes());
        b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&(-1i64).to_be_bytes());
        b[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&1i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        match decompressed_records(&Bytes::from(b)) {
            Err(LogError::InvalidRecord { reason }) => {
                assert!(reason.contains("limit"), "{reason}")
            }
            other => panic!("expected the size limit, got {other:?}"),
        }
    }

    use super::*;

    #[test]
    fn offset_map_keeps_latest_and_respects_capacity() {
        let mut m = OffsetMap::new(24 * 20);
        assert_eq!(m.room(), 18);
        m.put(b"a", 5);
        m.put(b"a", 3);
        m.put(b"b", 7);
        assert_eq!(m.get(b"a"), Some(5));
        assert_eq!(m.get(b"b"), Some(7));
        assert_eq!(m.get(b"c"), None);
        for i in 0..100u32 {
            m.put(&i.to_be_bytes(), i64::from(i));
        }
        assert_eq!(m.room(), 0);
        m.clear();
        assert_eq!(m.get(b"a"), None);
    }
    use bytes::BytesMut;
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};

    pub(crate) fn record(offset: i64, ts: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset,
            // Kafka producers without idempotence: base sequence -1.
            sequence: (offset as i32).wrapping_sub(1),
            timestamp: ts,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn validates_a_plain_batch() {
        let recs: Vec<_> = (0..3)
            .map(|i| record(i, 1000 + i, Some("k"), Some("v")))
            .collect();
        let b = encode(&recs, Compression::None);
        let cfg = LogConfig::default();
        let v = validate_append(&b, &cfg, 1000).unwrap();
        assert_eq!(v.batches.len(), 1);
        assert_eq!(v.offset_count, 3);
        assert_eq!(v.log_append_time, -1);
    }

    #[test]
    fn rejects_bad_crc_magic_and_length() {
        let b = encode(&[record(0, 5, Some("k"), Some("v"))], Compression::None);
        let cfg = LogConfig {
            timestamp_after_max_ms: i64::MAX,
            ..LogConfig::default()
        };
        let mut bad = b.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            validate_append(&Bytes::from(bad), &cfg, 0),
            Err(LogError::CorruptMessage { .. })
        ));
        let mut bad = b.to_vec();
        bad[MAGIC_OFFSET] = 1;
        assert!(matches!(
            validate_append(&Bytes::from(bad), &cfg, 0),
            Err(LogError::UnsupportedMagic { magic: 1 })
        ));
        let short = b.slice(..b.len() - 1);
        assert!(matches!(
            validate_append(&short, &cfg, 0),
            Err(LogError::CorruptMessage { .. })
        ));
        let small = LogConfig {
            max_message_bytes: 10,
            ..cfg.clone()
        };
        assert!(matches!(
            validate_append(&b, &small, 0),
            Err(LogError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn log_append_time_sets_max_timestamp_and_crc() {
        let b = encode(&[record(0, 5, Some("k"), Some("v"))], Compression::Gzip);
        let cfg = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let v = validate_append(&b, &cfg, 123_456).unwrap();
        assert_eq!(v.log_append_time, 123_456);
        let mut full = v.batches[0].header.to_vec();
        full.extend_from_slice(&b[HEADER_SIZE..]);
        let h = BatchHeader::parse(&full).unwrap();
        assert_eq!(h.max_timestamp, 123_456);
        assert_eq!(h.base_timestamp, 5);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(compute_crc(&full), h.crc);
    }

    #[test]
    fn compacted_topics_need_keys_and_every_keyless_record_is_named() {
        let b = encode(
            &[
                record(0, 5, None, Some("v")),
                record(1, 5, Some("k"), Some("v")),
                record(2, 5, None, Some("v")),
            ],
            Compression::Lz4,
        );
        let cfg = LogConfig {
            cleanup_compact: true,
            timestamp_after_max_ms: i64::MAX,
            ..LogConfig::default()
        };
        match validate_append(&b, &cfg, 0) {
            Err(LogError::InvalidRecords {
                timestamp: false,
                records,
            }) => assert_eq!(
                records.iter().map(|r| r.batch_index).collect::<Vec<_>>(),
                vec![0, 2]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamps_are_checked() {
        let b = encode(
            &[record(0, 10_000_000, Some("k"), Some("v"))],
            Compression::None,
        );
        let cfg = LogConfig::default();
        match validate_append(&b, &cfg, 0) {
            Err(LogError::InvalidRecords {
                timestamp: true,
                records,
            }) => assert_eq!(records[0].batch_index, 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recompress_refuses_legacy_message_sets_by_their_magic() {
        for magic in [0u8, 1] {
            // A legacy message: offset, size, CRC, then the magic byte.
            let mut legacy = vec![0u8; 40];
            legacy[8..12].copy_from_slice(&28i32.to_be_bytes());
            legacy[MAGIC_OFFSET] = magic;
            let r = recompress(&Bytes::from(legacy), Compression::Lz4, 9);
            assert!(
                matches!(r, Err(LogError::UnsupportedMagic { magic: m }) if m == magic as i8),
                "{r:?}"
            );
        }
    }

    #[test]
    fn recompress_changes_only_the_codec() {
        let all = CODECS;
        let recs: Vec<_> = (0..20)
            .map(|i| record(i, 100 + i, Some("key"), Some("value value value")))
            .collect();
        for from in all {
            let b = encode(&recs, from);
            let (h0, r0) = decode_batch(&b).unwrap();
            for to in all {
                let out = recompress(&b, to, if to == Compression::Gzip { -1 } else { 1 }).unwrap();
                if from == to {
                    assert_eq!(out.as_ptr(), b.as_ptr(), "{from:?}: not zero-copy");
                    continue;
                }
                let (h, r) = decode_batch(&out).unwrap();
                assert_eq!(h.compression(), Some(to));
                assert_eq!(compute_crc(&out), h.crc);
                let same = |h: &BatchHeader| {
                    (
                        h.base_offset,
                        h.last_offset_delta,
                        h.base_timestamp,
                        h.max_timestamp,
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        h.records_count,
                    )
                };
                assert_eq!(same(&h), same(&h0), "{from:?} -> {to:?}");
                let kv = |r: &[Record]| {
                    r.iter()
                        .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(kv(&r), kv(&r0), "{from:?} -> {to:?}");
            }
        }
        // A corrupt batch is refused, not re-checksummed into a valid one.
        let mut bad = encode(&recs, Compression::None).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(recompress(&Bytes::from(bad), Compression::Zstd, 3).is_err());
    }

    #[test]
    fn build_batch_keeps_a_subset_of_records() {
        for c in CODECS {
            let recs: Vec<_> = (0..6)
                .map(|i| record(i, 100 + i, Some("k"), Some("v")))
                .collect();
            let b = encode(&recs, c);
            let mut section = Vec::new();
            let mut kept = 0;
            let header = walk_records(&b, |r| {
                if r.offset % 2 == 1 {
                    section.extend_from_slice(r.raw);
                    kept += 1;
                }
            })
            .unwrap();
            let nb = build_batch(&header, &section, kept, 105).unwrap();
            let (h, out) = decode_batch(&nb).unwrap();
            assert_eq!(h.last_offset_delta, 5);
            assert_eq!(h.compression(), Some(c));
            let offs: Vec<_> = out.iter().map(|r| (r.offset, r.timestamp)).collect();
            assert_eq!(offs, vec![(1, 101), (3, 103), (5, 105)]);
        }
    }

    #[test]
    fn decode_roundtrip_all_codecs() {
        for c in CODECS {
            let recs: Vec<_> = (0..5)
                .map(|i| record(i, 100 + i, Some("k"), None))
                .collect();
            let b = encode(&recs, c);
            let (_, out) = decode_batch(&b).unwrap();
            assert_eq!(out.len(), 5);
            assert_eq!(out[4].offset, 4);
            assert_eq!(out[4].timestamp, 104);
        }
    }
}

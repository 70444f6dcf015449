//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_log::{EngineConfig, LocalEngine};

/// A record for `RecordBatchEncoder`, offsets relative to the batch.
pub fn record(offset: i64, ts: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // Base sequence -1 (no idempotence); the encoder derives it from
        // the first record.
        sequence: (offset as i32).wrapping_sub(1),
        timestamp: ts,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Default::default(),
    }
}

/// Encodes records into one v2 batch, as a producer would.
pub fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// A batch of `n` records with values `"{tag}-{i}"`, keys `"k{i}"`.
pub fn batch(n: usize, ts: i64, tag: &str) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| {
            let v = format!("{tag}-{i}");
            let k = format!("k{i}");
            record(
                i as i64,
                ts + i as i64,
                Some(k.as_bytes()),
                Some(v.as_bytes()),
            )
        })
        .collect();
    encode(&recs, Compression::None)
}

/// Engine config for tests: threads on, small budgets.
pub fn engine_config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        cleaner_enabled: false,
        retention_check_interval_ms: 3_600_000,
        ..EngineConfig::default()
    }
}

pub fn open(dir: &std::path::Path) -> Arc<LocalEngine> {
    LocalEngine::open(engine_config(dir)).expect("open engine")
}

/// Splits stored bytes into `(base offset, last offset, bytes)` batches.
pub fn split_batches(mut b: &[u8]) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 61 {
        let h = weir_log::batch::BatchHeader::parse(b).expect("header");
        let size = h.total_size().expect("size");
        out.push((h.base_offset, h.last_offset(), b[..size].to_vec()));
        b = &b[size..];
    }
    assert!(b.is_empty(), "trailing bytes in read result");
    out
}

/// Decodes stored bytes into `(offset, timestamp, key, value)`.
pub fn decode_all(b: &Bytes) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
    let mut out = Vec::new();
    for (_, _, raw) in split_batches(b) {
        let (_, recs) = weir_log::batch::decode_batch(&Bytes::from(raw)).expect("decode");
        for r in recs {
            out.push((r.offset, r.timestamp, r.key, r.value));
        }
    }
    out
}

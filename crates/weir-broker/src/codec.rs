//! Turning a request frame into a typed request, and a response into a frame.
//!
//! The server hands over the bytes of one frame (without its length prefix);
//! everything that can go wrong with untrusted bytes is caught here and
//! reported as a [`DecodeError`], never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::api_versions::supported_versions;

/// Why a frame could not be turned into a request. The connection that sent
/// it is closed, as Apache Kafka does.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a request header needs.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An API key Weir does not know.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// A known API at a version Weir does not serve.
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
    },
    /// The header or body does not parse.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
}

/// A decoded request frame.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built and consumed once per frame
pub enum Decoded {
    /// A request Weir serves.
    Request {
        /// Its header.
        header: RequestHeader,
        /// Its body.
        body: RequestKind,
    },
    /// An ApiVersions request at a version newer than Weir's. KIP-511: the
    /// answer is an ApiVersions v0 response carrying UNSUPPORTED_VERSION and
    /// the supported versions, so the client can retry at one it shares.
    NewerApiVersions {
        /// The request's correlation id.
        correlation_id: i32,
    },
}

/// Decodes one request frame.
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, DecodeError> {
    // api key (2), version (2), correlation id (4), client id length (2).
    if frame.len() < 10 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey(raw_key))?;
    let Some(range) = supported_versions(api) else {
        return Err(DecodeError::UnknownApiKey(raw_key));
    };
    if version < range.min || version > range.max {
        if api == ApiKey::ApiVersions && version > range.max {
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            return Ok(Decoded::NewerApiVersions { correlation_id });
        }
        return Err(DecodeError::UnsupportedVersion { api, version });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let body =
        RequestKind::decode(api, &mut frame, version).map_err(|e| malformed(e.to_string()))?;
    Ok(Decoded::Request { header, body })
}

/// Encodes a response frame, length prefix included.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, crate::BrokerError> {
    // A fetch response is mostly record bytes: sizing the buffer up front
    // saves growing it (a realloc and copy per doubling) while encoding.
    let size_hint = match body {
        ResponseKind::Fetch(f) => f.compute_size(version).unwrap_or(0),
        _ => 0,
    };
    let mut buf = BytesMut::with_capacity(256 + size_hint);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api.response_header_version(version))
        .and_then(|()| body.encode(&mut buf, version))
        .map_err(|e| crate::BrokerError::Internal(format!("encoding {api:?} v{version}: {e}")))?;
    let len = i32::try_from(buf.len() - 4)
        .map_err(|_| crate::BrokerError::Internal(format!("{api:?} response over 2 GiB")))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Record sets at least this long are referenced, not copied, by
/// [`encode_response_chunks`]: below it a copy costs less than an extra
/// entry in the writer's vectored write.
pub const SHARED_CHUNK_MIN: usize = 1024;

/// Encodes a response frame as a list of chunks whose concatenation is
/// exactly [`encode_response`]'s output. For Fetch, each partition's
/// records of at least [`SHARED_CHUNK_MIN`] bytes is its own chunk, a clone
/// of the `Bytes` the log returned (backed by the mapped segment), so the
/// record bytes reach the socket without being copied in user space; the
/// first chunk is the 4-byte length prefix. Other responses are one chunk.
pub fn encode_response_chunks(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Vec<Bytes>, crate::BrokerError> {
    let ResponseKind::Fetch(fetch) = body else {
        return encode_response(api, version, correlation_id, body).map(|b| vec![b]);
    };
    let err = |e: String| crate::BrokerError::Internal(format!("encoding {api:?} v{version}: {e}"));
    let mut buf = Chunked::default();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api.response_header_version(version))
        .and_then(|()| fetch.encode(&mut buf, version))
        .map_err(|e| err(e.to_string()))?;
    buf.finish().map_err(err)
}

/// A `BufMut` that copies small writes into a buffer and keeps shared
/// `Bytes` of at least [`SHARED_CHUNK_MIN`] bytes as chunks of their own.
struct Chunked {
    /// Slot 0 is the length prefix, filled in by `finish`.
    chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    frozen: usize,
    cur: BytesMut,
    /// A gap was asked for inside a frozen chunk (no Fetch field does
    /// that); the encoding is refused rather than produced wrong.
    broken: bool,
    /// Where such a request writes, so it need not panic.
    scratch: Vec<u8>,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            chunks: vec![Bytes::new()],
            frozen: 0,
            cur: BytesMut::with_capacity(4096),
            broken: false,
            scratch: Vec::new(),
        }
    }
}

impl Chunked {
    fn finish(mut self) -> Result<Vec<Bytes>, String> {
        if self.broken {
            return Err("a gap reached a frozen chunk".into());
        }
        let total = self.frozen + self.cur.len();
        if !self.cur.is_empty() {
            self.chunks.push(self.cur.freeze());
        }
        let len = i32::try_from(total).map_err(|_| "response over 2 GiB".to_string())?;
        self.chunks[0] = Bytes::copy_from_slice(&len.to_be_bytes());
        Ok(self.chunks)
    }
}

// SAFETY: every method forwards to the inner `BytesMut`, whose `BufMut`
// implementation upholds the trait's contract.
#[allow(unsafe_code)]
unsafe impl BufMut for Chunked {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee (cnt bytes of `chunk_mut` were
        // initialised) holds for `cur`, whose `chunk_mut` it was.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.cur.put_slice(src);
    }
}

impl kafka_protocol::protocol::buf::ByteBufMut for Chunked {
    fn offset(&self) -> usize {
        self.frozen + self.cur.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.frozen) {
            Some(o) => self.cur.resize(o, 0),
            None => self.broken = true,
        }
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let (Some(start), Some(end)) = (
            r.start.checked_sub(self.frozen),
            r.end.checked_sub(self.frozen),
        ) else {
            self.broken = true;
            self.scratch.resize(r.len(), 0);
            return &mut self.scratch;
        };
        match self.cur.get_mut(start..end) {
            Some(s) => s,
            None => {
                self.broken = true;
                self.scratch.resize(r.len(), 0);
                &mut self.scratch
            }
        }
    }

    fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARED_CHUNK_MIN {
            self.cur.put_slice(bytes);
            return;
        }
        if !self.cur.is_empty() {
            let head = self.cur.split().freeze();
            self.frozen += head.len();
            self.chunks.push(head);
        }
        self.frozen += bytes.len();
        self.chunks.push(bytes.clone());
    }
}

/// Reads the API key and version of a frame, for logging frames that fail.
pub fn peek_api(frame: &[u8]) -> Option<(i16, i16)> {
    let mut b = frame;
    (b.len() >= 4).then(|| (b.get_i16(), b.get_i16()))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
        PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, FetchResponse, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn records(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    /// A Fetch response with what each version can carry: two topics,
    /// partitions with large, small, empty and absent records, an error,
    /// aborted transactions, throttling and a session.
    fn response(version: i16, big: &[Bytes]) -> FetchResponse {
        let partition = |i: i32, recs: Option<Bytes>| {
            let mut p = PartitionData::default()
                .with_partition_index(i)
                .with_high_watermark(1000 + i64::from(i))
                .with_last_stable_offset(990)
                .with_records(recs);
            if version >= 5 {
                p = p.with_log_start_offset(7);
            }
            if version >= 11 {
                p = p.with_preferred_read_replica(BrokerId(-1));
            }
            p
        };
        let aborted = Some(vec![
            AbortedTransaction::default()
                .with_producer_id(ProducerId(42))
                .with_first_offset(3),
            AbortedTransaction::default()
                .with_producer_id(ProducerId(43))
                .with_first_offset(9),
        ]);
        let mut with_error = partition(3, Some(Bytes::new()))
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_high_watermark(-1);
        if version >= 12 {
            with_error = with_error
                .with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(2))
                        .with_leader_epoch(5),
                )
                .with_diverging_epoch(EpochEndOffset::default().with_epoch(4).with_end_offset(80));
        }
        let topic = |name: &str, n: u128, parts: Vec<PartitionData>| {
            let t = FetchableTopicResponse::default().with_partitions(parts);
            if version >= 13 {
                t.with_topic_id(uuid::Uuid::from_u128(n))
            } else {
                t.with_topic(TopicName(StrBytes::from_string(name.into())))
            }
        };
        let mut r = FetchResponse::default()
            .with_throttle_time_ms(250)
            .with_session_id(if version >= 7 { 77 } else { 0 })
            .with_responses(vec![
                topic(
                    "a",
                    1,
                    vec![
                        partition(0, Some(big[0].clone()))
                            .with_aborted_transactions(aborted.clone()),
                        partition(1, Some(records(100, 1))),
                        partition(2, Some(Bytes::new())),
                        with_error,
                    ],
                ),
                topic(
                    "b",
                    2,
                    vec![
                        partition(0, None),
                        partition(1, Some(big[1].clone())),
                        partition(2, Some(records(SHARED_CHUNK_MIN - 1, 2))),
                        partition(3, Some(big[2].clone())),
                    ],
                ),
            ]);
        if version >= 16 {
            r = r.with_node_endpoints(vec![NodeEndpoint::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("localhost"))
                .with_port(9092)]);
        }
        r
    }

    #[test]
    fn chunked_fetch_equals_the_copying_encoding_at_every_version() {
        let range = supported_versions(ApiKey::Fetch).expect("Fetch is served");
        let big = [
            records(SHARED_CHUNK_MIN, 3),
            records(70_000, 4),
            records(5000, 5),
        ];
        for version in range.min..=range.max {
            for body in [
                response(version, &big),
                FetchResponse::default().with_throttle_time_ms(10),
                FetchResponse::default()
                    .with_error_code(ResponseError::FetchSessionIdNotFound.code()),
            ] {
                let body = ResponseKind::Fetch(body);
                let copied = encode_response(ApiKey::Fetch, version, 9, &body)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
                let chunks = encode_response_chunks(ApiKey::Fetch, version, 9, &body)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
                assert_eq!(chunks.concat(), copied.to_vec(), "Fetch v{version}");
            }
            // The large record sets are sent from the log's own buffers.
            let body = ResponseKind::Fetch(response(version, &big));
            let chunks = encode_response_chunks(ApiKey::Fetch, version, 9, &body).unwrap();
            for b in &big {
                assert!(
                    chunks
                        .iter()
                        .any(|c| c.as_ptr() == b.as_ptr() && c.len() == b.len()),
                    "v{version}: a {}-byte record set was copied",
                    b.len()
                );
            }
        }
    }

    #[test]
    fn other_responses_are_one_chunk() {
        let body = ResponseKind::ApiVersions(crate::api_versions::unsupported_version());
        let chunks = encode_response_chunks(ApiKey::ApiVersions, 0, 1, &body).unwrap();
        let copied = encode_response(ApiKey::ApiVersions, 0, 1, &body).unwrap();
        assert_eq!(chunks, vec![copied]);
    }
}

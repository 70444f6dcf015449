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

/// Reads the API key and version of a frame, for logging frames that fail.
pub fn peek_api(frame: &[u8]) -> Option<(i16, i16)> {
    let mut b = frame;
    (b.len() >= 4).then(|| (b.get_i16(), b.get_i16()))
}

//! API v2: topics and partitions, producing with the embedded formats
//! of `application/vnd.kafka.{binary,json,...}.v2+json`, and consumer
//! instances. Responses are `application/vnd.kafka.v2+json`.

pub mod consumers;
mod produce;
mod topics;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::error::{RestError, Result};
use crate::RestProxy;

/// The generic v2 media type.
pub(crate) const V2_JSON: &str = "application/vnd.kafka.v2+json";

/// How keys and values are embedded in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Base64 of the bytes.
    Binary,
    /// The bytes are JSON, embedded as is.
    Json,
    /// Avro, Confluent's wire format; embedded as Avro's JSON.
    Avro,
    /// JSON Schema, Confluent's wire format.
    JsonSchema,
    /// Protobuf, Confluent's wire format; embedded as protobuf JSON.
    Protobuf,
}

impl Format {
    /// The name in content types and instance configs.
    pub fn name(self) -> &'static str {
        match self {
            Format::Binary => "binary",
            Format::Json => "json",
            Format::Avro => "avro",
            Format::JsonSchema => "jsonschema",
            Format::Protobuf => "protobuf",
        }
    }

    /// Parses a format name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Format::Binary,
            Format::Json,
            Format::Avro,
            Format::JsonSchema,
            Format::Protobuf,
        ]
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(s))
    }

    /// `application/vnd.kafka.{format}.v2+json`.
    pub fn media_type(self) -> String {
        format!("application/vnd.kafka.{}.v2+json", self.name())
    }
}

/// What a v2 media type says: `Some(format)` for an embedded type,
/// `None` for the generic ones; `Err` for anything else.
fn media(value: &str) -> std::result::Result<Option<Format>, ()> {
    let m = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match m.as_str() {
        "application/json" | "application/octet-stream" | V2_JSON | "*/*" | "application/*" => {
            Ok(None)
        }
        _ => {
            let inner = m
                .strip_prefix("application/vnd.kafka.")
                .and_then(|r| r.strip_suffix(".v2+json"))
                .ok_or(())?;
            Format::parse(inner).map(Some).ok_or(())
        }
    }
}

/// The embedded format a request body is in (415 unless one is named).
pub(crate) fn body_format(headers: &HeaderMap) -> Result<Format> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| media(v).ok().flatten())
        .ok_or(RestError::UnsupportedMediaType)
}

/// Checks a request body that carries no embedded data is JSON of some
/// v2 flavour (or untyped).
pub(crate) fn check_body_type(headers: &HeaderMap) -> Result<()> {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => Ok(()),
        Some(v) => media(v)
            .map(|_| ())
            .map_err(|_| RestError::UnsupportedMediaType),
    }
}

/// The embedded format an `Accept` header asks records in: generic or
/// missing means binary, as Confluent's resource matching does.
pub(crate) fn accepted_format(headers: &HeaderMap) -> Format {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(|m| media(m).ok().flatten()))
        .unwrap_or(Format::Binary)
}

/// Gives JSON responses of v2 routes the v2 media type, unless a handler
/// chose an embedded one.
async fn v2_content_type(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let plain_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if plain_json {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(V2_JSON));
    }
    resp
}

/// The v2 routes.
pub(crate) fn router() -> Router<Arc<RestProxy>> {
    let g = "/consumers/{group}/instances/{instance}";
    Router::new()
        .route("/", get(topics::root).post(topics::root))
        .route("/brokers", get(topics::list_brokers))
        .route("/topics", get(topics::list_topics))
        .route(
            "/topics/{topic}",
            get(topics::get_topic).post(produce::produce_to_topic),
        )
        .route("/topics/{topic}/partitions", get(topics::list_partitions))
        .route(
            "/topics/{topic}/partitions/{partition}",
            get(topics::get_partition).post(produce::produce_to_partition),
        )
        .route(
            "/topics/{topic}/partitions/{partition}/offsets",
            get(topics::partition_offsets),
        )
        .route("/consumers/{group}", post(consumers::create))
        .route(g, axum::routing::delete(consumers::delete))
        .route(
            &format!("{g}/subscription"),
            post(consumers::subscribe)
                .get(consumers::subscription)
                .delete(consumers::unsubscribe),
        )
        .route(
            &format!("{g}/assignments"),
            post(consumers::assign).get(consumers::assignment),
        )
        .route(&format!("{g}/positions"), post(consumers::seek))
        .route(
            &format!("{g}/positions/beginning"),
            post(consumers::seek_to_beginning),
        )
        .route(&format!("{g}/positions/end"), post(consumers::seek_to_end))
        .route(&format!("{g}/records"), get(consumers::records))
        .route(
            &format!("{g}/offsets"),
            post(consumers::commit).get(consumers::committed),
        )
        .layer(axum::middleware::from_fn(v2_content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            media("application/vnd.kafka.binary.v2+json"),
            Ok(Some(Format::Binary))
        );
        assert_eq!(
            media("application/vnd.kafka.jsonschema.v2+json; charset=utf-8"),
            Ok(Some(Format::JsonSchema))
        );
        assert_eq!(media("application/vnd.kafka.v2+json"), Ok(None));
        assert_eq!(media("application/json"), Ok(None));
        assert_eq!(media("text/plain"), Err(()));
        assert_eq!(media("application/vnd.kafka.xml.v2+json"), Err(()));
        let mut h = HeaderMap::new();
        assert_eq!(accepted_format(&h), Format::Binary);
        h.insert(
            header::ACCEPT,
            "application/vnd.kafka.json.v2+json".parse().unwrap(),
        );
        assert_eq!(accepted_format(&h), Format::Json);
        h.insert(
            header::CONTENT_TYPE,
            "application/vnd.kafka.v2+json".parse().unwrap(),
        );
        assert!(body_format(&h).is_err());
    }
}

//! v2 produce: `POST /topics/{topic}` and
//! `POST /topics/{topic}/partitions/{partition}` with
//! `{"records": [{"key", "value", "partition"}], ...}` in an embedded
//! format; answered with each record's partition and offset, or its error.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};

use super::topics::partition_not_found;
use super::{body_format, Format};
use crate::error::{RestError, Result};
use crate::produce::{enqueue, Record};
use crate::v3::parse_body;
use crate::Proxy;

/// One record's key or value in `format`.
fn embedded(format: Format, v: Option<&Value>, what: &str) -> Result<Option<Vec<u8>>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match format {
        Format::Binary => {
            let s = v
                .as_str()
                .ok_or_else(|| RestError::bad_request(format!("{what} must be a base64 string")))?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(Some)
                .map_err(|e| RestError::Unprocessable {
                    code: 42203,
                    message: format!("Conversion of JSON to Object failed: {what} is not valid base64: {e}"),
                })
        }
        Format::Json => Ok(Some(v.to_string().into_bytes())),
        Format::Avro | Format::JsonSchema | Format::Protobuf => Err(RestError::Unprocessable {
            code: 42207,
            message: format!(
                "Error serializing message. The {} format needs a schema registry, and none is configured.",
                format.name()
            ),
        }),
    }
}

/// A record's error code in a v2 produce answer, as Confluent's
/// `errorCodeFromProducerException`.
fn record_error_code(e: &RestError) -> u32 {
    match e {
        RestError::Unauthenticated { .. } => 40101,
        RestError::Forbidden { .. } => 40301,
        RestError::Kafka {
            retriable: true, ..
        }
        | RestError::NotFound { .. }
        | RestError::Unavailable { .. }
        | RestError::Throttled { .. } => 50003,
        _ => 50002,
    }
}

async fn produce(
    p: Proxy,
    headers: HeaderMap,
    topic: String,
    partition: Option<i32>,
    body: Bytes,
) -> Result<Response> {
    let format = body_format(&headers)?;
    let clients = p.clients_for(&headers)?;
    let req: Value = parse_body(&body)?;
    let records = req
        .get("records")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| RestError::Unprocessable {
            code: 422,
            message: "records may not be empty".into(),
        })?;
    let partitions = match clients.partition_count(&topic).await {
        Err(RestError::NotFound { .. }) => {
            return Err(RestError::not_found(40401, "Topic not found."))
        }
        other => other?,
    };
    let mut batch = Vec::with_capacity(records.len());
    for r in records {
        let part = match r.get("partition").filter(|v| !v.is_null()) {
            Some(v) => Some(
                v.as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .ok_or_else(|| RestError::bad_request("partition must be an integer"))?,
            ),
            None => partition,
        };
        if part.is_some_and(|p| p < 0 || p >= partitions) {
            return Err(partition_not_found());
        }
        batch.push(Record {
            partition: part,
            key: embedded(format, r.get("key"), "key")?,
            value: embedded(format, r.get("value"), "value")?,
            ..Record::default()
        });
    }
    let producer = clients.producer().await?;
    let mut pending = Vec::with_capacity(batch.len());
    for r in &batch {
        pending.push(enqueue(producer, &topic, r).await);
    }
    let results =
        futures_util::future::join_all(pending.into_iter().map(async |p| p?.delivered().await))
            .await;
    let mut status = StatusCode::OK;
    let offsets: Vec<Value> = results
        .iter()
        .map(|r| match r {
            Ok(d) => json!({"partition": d.partition, "offset": d.offset, "error_code": null, "error": null}),
            Err(e) => {
                let code = record_error_code(e);
                match code {
                    40101 => status = StatusCode::UNAUTHORIZED,
                    40301 => status = StatusCode::FORBIDDEN,
                    _ => {}
                }
                json!({"partition": null, "offset": null, "error_code": code, "error": e.to_string()})
            }
        })
        .collect();
    Ok((
        status,
        Json(json!({"offsets": offsets, "key_schema_id": null, "value_schema_id": null})),
    )
        .into_response())
}

/// `POST /topics/{topic}`.
pub(super) async fn produce_to_topic(
    p: Proxy,
    headers: HeaderMap,
    Path(topic): Path<String>,
    body: Bytes,
) -> Result<Response> {
    produce(p, headers, topic, None, body).await
}

/// `POST /topics/{topic}/partitions/{partition}`.
pub(super) async fn produce_to_partition(
    p: Proxy,
    headers: HeaderMap,
    Path((topic, partition)): Path<(String, i32)>,
    body: Bytes,
) -> Result<Response> {
    produce(p, headers, topic, Some(partition), body).await
}

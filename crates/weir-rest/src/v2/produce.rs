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
use crate::formats::SchemaSpec;
use crate::produce::{enqueue, Record};
use crate::v3::parse_body;
use crate::Proxy;
use weir_formats::{Field, SchemaType};

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
                    message: format!(
                        "Conversion of JSON to Object failed: {what} is not valid base64: {e}"
                    ),
                })
        }
        Format::Json => Ok(Some(v.to_string().into_bytes())),
        Format::Avro | Format::JsonSchema | Format::Protobuf => Err(RestError::Internal(
            "schema-based records are serialized with their schema".into(),
        )),
    }
}

/// The schema of the request's keys or values (`key_schema`,
/// `key_schema_id`, ...), or Confluent's 42201/42202 when records carry
/// keys or values without one.
fn schema_spec(req: &Value, records: &[Value], field: Field) -> Result<Option<SchemaSpec>> {
    let (name, what, code) = match field {
        Field::Key => ("key", "keys", 42201),
        Field::Value => ("value", "values", 42202),
    };
    let raw = req
        .get(format!("{name}_schema"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = req
        .get(format!("{name}_schema_id"))
        .and_then(Value::as_i64)
        .and_then(|i| i32::try_from(i).ok());
    let used = records
        .iter()
        .any(|r| r.get(name).is_some_and(|v| !v.is_null()));
    if raw.is_none() && id.is_none() {
        if used {
            return Err(RestError::Unprocessable {
                code,
                message: format!("Request includes {what} but does not include {name} schema"),
            });
        }
        return Ok(None);
    }
    Ok(Some(SchemaSpec {
        raw,
        id,
        ..SchemaSpec::default()
    }))
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
    let kind = match format {
        Format::Avro => Some(SchemaType::Avro),
        Format::JsonSchema => Some(SchemaType::Json),
        Format::Protobuf => Some(SchemaType::Protobuf),
        Format::Binary | Format::Json => None,
    };
    let specs = if let Some(kind) = kind {
        let schemas = p.schemas()?;
        Some((
            kind,
            schemas,
            schema_spec(&req, records, Field::Key)?,
            schema_spec(&req, records, Field::Value)?,
        ))
    } else {
        None
    };
    let (mut key_id, mut value_id) = (None, None);
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
        let (key, value) = match &specs {
            Some((kind, schemas, key_spec, value_spec)) => {
                let write = async |spec: &Option<SchemaSpec>,
                                   field,
                                   id: &mut Option<i32>|
                       -> Result<Option<Vec<u8>>> {
                    let name = if field == Field::Key { "key" } else { "value" };
                    match (spec, r.get(name).filter(|v| !v.is_null())) {
                        (Some(spec), Some(data)) => {
                            let w = schemas.write(*kind, &topic, field, spec, data).await?;
                            *id = Some(w.id);
                            Ok(Some(w.bytes))
                        }
                        _ => Ok(None),
                    }
                };
                (
                    write(key_spec, Field::Key, &mut key_id).await?,
                    write(value_spec, Field::Value, &mut value_id).await?,
                )
            }
            None => (
                embedded(format, r.get("key"), "key")?,
                embedded(format, r.get("value"), "value")?,
            ),
        };
        batch.push(Record {
            partition: part,
            key,
            value,
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
        Json(json!({"offsets": offsets, "key_schema_id": key_id, "value_schema_id": value_id})),
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

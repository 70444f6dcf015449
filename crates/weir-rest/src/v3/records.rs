//! Producing records: `records` (one JSON object per record, streamed:
//! each delivery report is written as soon as it and every one before it
//! is known, on the same connection) and `records:batch`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures_util::StreamExt;
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{parse_body, Ctx};
use crate::error::{RestError, Result};
use crate::produce::{enqueue, Delivered, Record};
use crate::time::{format_ms, parse_ms};
use crate::Proxy;

/// Records in flight on one streaming connection before reading pauses.
const MAX_IN_FLIGHT: usize = 1024;

/// How a key or value was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    Binary,
    Json,
    String,
}

impl DataType {
    fn name(self) -> &'static str {
        match self {
            DataType::Binary => "BINARY",
            DataType::Json => "JSON",
            DataType::String => "STRING",
        }
    }
}

/// One parsed request: the record and how its key and value were typed.
struct Parsed {
    record: Record,
    key_type: Option<(DataType, usize)>,
    value_type: Option<(DataType, usize)>,
}

/// Serializes a `{type, data, ...}` key or value.
fn data(v: Option<&Value>, what: &str) -> Result<Option<(DataType, Option<Vec<u8>>)>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let obj = v
        .as_object()
        .ok_or_else(|| RestError::bad_request(format!("{what} must be an object")))?;
    let schema_fields = [
        "schema",
        "schema_id",
        "schema_version",
        "subject",
        "subject_name_strategy",
    ];
    let ty = match obj.get("type").and_then(Value::as_str) {
        Some(t) => match t.to_ascii_uppercase().as_str() {
            "BINARY" => DataType::Binary,
            "JSON" => DataType::Json,
            "STRING" => DataType::String,
            "AVRO" | "JSONSCHEMA" | "PROTOBUF" => return Err(no_registry()),
            other => {
                return Err(RestError::bad_request(format!(
                    "{what}.type {other} is invalid: use BINARY, JSON, STRING, AVRO, JSONSCHEMA or PROTOBUF"
                )))
            }
        },
        None if schema_fields.iter().any(|f| obj.contains_key(*f)) => return Err(no_registry()),
        // Without a type or schema, Confluent uses the subject's latest
        // schema.
        None => return Err(no_registry()),
    };
    let bytes = match obj.get("data") {
        None | Some(Value::Null) => None,
        Some(d) => Some(match ty {
            DataType::Binary => {
                let s = d.as_str().ok_or_else(|| {
                    RestError::bad_request(format!("{what}.data must be a base64 string"))
                })?;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| {
                        RestError::bad_request(format!("{what}.data is not valid base64: {e}"))
                    })?
            }
            DataType::Json => {
                serde_json::to_vec(d).map_err(|e| RestError::Internal(e.to_string()))?
            }
            DataType::String => match d {
                Value::String(s) => s.clone().into_bytes(),
                Value::Number(_) | Value::Bool(_) => d.to_string().into_bytes(),
                _ => {
                    return Err(RestError::bad_request(format!(
                        "{what}.data must be a string"
                    )))
                }
            },
        }),
    };
    Ok(Some((ty, bytes)))
}

fn no_registry() -> RestError {
    RestError::Unprocessable {
        code: 42207,
        message: "Error serializing message. Schema-based formats need a schema registry, and none is configured.".into(),
    }
}

/// Parses one produce request (`{partition_id, headers, key, value, timestamp}`).
fn parse_record(v: &Value, partitions: i32) -> Result<Parsed> {
    let obj = v
        .as_object()
        .ok_or_else(|| RestError::bad_request("a record must be a JSON object"))?;
    let partition = match obj.get("partition_id") {
        None | Some(Value::Null) => None,
        Some(p) => {
            let p = p
                .as_i64()
                .ok_or_else(|| RestError::bad_request("partition_id must be an integer"))?;
            if p < 0 || p >= i64::from(partitions) {
                return Err(RestError::not_found(40402, "Partition not found."));
            }
            Some(p as i32)
        }
    };
    let mut headers = Vec::new();
    if let Some(hs) = obj.get("headers").filter(|h| !h.is_null()) {
        for h in hs
            .as_array()
            .ok_or_else(|| RestError::bad_request("headers must be an array"))?
        {
            let name = h
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| RestError::bad_request("a header needs a name"))?;
            let value = match h.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| {
                            RestError::bad_request(format!(
                                "header {name}: value is not valid base64: {e}"
                            ))
                        })?,
                ),
                Some(_) => {
                    return Err(RestError::bad_request(format!(
                        "header {name}: value must be a base64 string"
                    )))
                }
            };
            headers.push((name.to_string(), value));
        }
    }
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_ms(s).ok_or_else(|| {
            RestError::bad_request(format!("timestamp {s} is not an RFC 3339 time"))
        })?),
        Some(_) => {
            return Err(RestError::bad_request(
                "timestamp must be an RFC 3339 string",
            ))
        }
    };
    let key = data(obj.get("key"), "key")?;
    let value = data(obj.get("value"), "value")?;
    let size = |d: &Option<(DataType, Option<Vec<u8>>)>| {
        d.as_ref()
            .map(|(t, b)| (*t, b.as_ref().map_or(0, Vec::len)))
    };
    Ok(Parsed {
        key_type: size(&key),
        value_type: size(&value),
        record: Record {
            partition,
            key: key.and_then(|k| k.1),
            value: value.and_then(|v| v.1),
            headers,
            timestamp,
        },
    })
}

/// The delivery report of a produced record.
fn report(cluster_id: &str, topic: &str, parsed: &Parsed, d: Delivered) -> Value {
    let typed =
        |t: Option<(DataType, usize)>| t.map(|(t, size)| json!({"type": t.name(), "size": size}));
    json!({
        "error_code": 200,
        "cluster_id": cluster_id,
        "topic_name": topic,
        "partition_id": d.partition,
        "offset": d.offset,
        "timestamp": format_ms(d.timestamp),
        "key": typed(parsed.key_type),
        "value": typed(parsed.value_type),
    })
}

/// What one produce stream shares.
struct Target {
    producer: FutureProducer,
    cluster_id: String,
    topic: String,
    partitions: i32,
}

impl Target {
    /// Parses and enqueues one request's record now (so records keep
    /// their order), and answers its report, or the error as a body, once
    /// it is acknowledged.
    async fn start(self: &Arc<Self>, v: Value) -> tokio::task::JoinHandle<Value> {
        let parsed = match parse_record(&v, self.partitions) {
            Ok(p) => p,
            Err(e) => return tokio::spawn(async move { e.body() }),
        };
        let pending = enqueue(&self.producer, &self.topic, &parsed.record).await;
        let t = self.clone();
        tokio::spawn(async move {
            match pending {
                Ok(pending) => match pending.delivered().await {
                    Ok(d) => report(&t.cluster_id, &t.topic, &parsed, d),
                    Err(e) => e.body(),
                },
                Err(e) => e.body(),
            }
        })
    }
}

/// Requests are JSON; a missing content type is taken as JSON too.
fn check_json(headers: &HeaderMap) -> Result<()> {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => Ok(()),
        Some(ct)
            if ct
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) =>
        {
            Ok(())
        }
        Some(_) => Err(RestError::UnsupportedMediaType),
    }
}

async fn target(ctx: Ctx, headers: &HeaderMap, topic: &str) -> Result<Target> {
    check_json(headers)?;
    let partitions = ctx.clients.partition_count(topic).await?;
    Ok(Target {
        producer: ctx.clients.producer().await?.clone(),
        cluster_id: ctx.cluster_id,
        topic: topic.to_string(),
        partitions,
    })
}

/// `POST .../topics/{topic_name}/records`: reads concatenated JSON
/// objects as they arrive and answers each with its delivery report (or
/// error), in order, each followed by `\r\n`.
pub(super) async fn produce(
    ctx: Ctx,
    headers: HeaderMap,
    Path((_, topic)): Path<(String, String)>,
    body: Body,
) -> Result<Response> {
    let target = Arc::new(target(ctx, &headers, &topic).await?);
    let (tx, rx) = mpsc::channel::<tokio::task::JoinHandle<Value>>(MAX_IN_FLIGHT);
    tokio::spawn(read_records(body, target, tx));
    let reports = futures_util::stream::unfold(rx, |mut rx| async move {
        let handle = rx.recv().await?;
        let v = handle
            .await
            .unwrap_or_else(|e| RestError::Internal(e.to_string()).body());
        let mut line = v.to_string().into_bytes();
        line.extend_from_slice(b"\r\n");
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(reports),
    )
        .into_response())
}

/// Reads the request body, starting a produce for each complete JSON
/// object; stops at the end of the body, a client going away, or
/// malformed JSON (reported, as nothing after it can be trusted).
async fn read_records(
    body: Body,
    target: Arc<Target>,
    tx: mpsc::Sender<tokio::task::JoinHandle<Value>>,
) {
    let ready = |v: Value| tokio::spawn(async move { v });
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut any = false;
    loop {
        let chunk = match stream.next().await {
            Some(Ok(c)) => c,
            Some(Err(_)) => return,
            None => break,
        };
        buf.extend_from_slice(&chunk);
        let mut values = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        let mut consumed = 0;
        loop {
            match values.next() {
                Some(Ok(v)) => {
                    consumed = values.byte_offset();
                    any = true;
                    if tx.send(target.start(v).await).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    let err = RestError::bad_request(format!("Error processing JSON: {e}"));
                    let _ = tx.send(ready(err.body())).await;
                    return;
                }
                None => {
                    consumed = buf.len();
                    break;
                }
            }
        }
        buf.drain(..consumed);
    }
    if !buf.iter().all(u8::is_ascii_whitespace) {
        let err = RestError::bad_request("Error processing JSON: the body ends inside a record");
        let _ = tx.send(ready(err.body())).await;
    } else if !any {
        let err = RestError::Unprocessable {
            code: 422,
            message: "Payload error. Request body is empty. Data is required.".into(),
        };
        let _ = tx.send(ready(err.body())).await;
    }
}

/// `POST .../topics/{topic_name}/records:batch`: `{"entries": [{id,
/// ...record}]}`, answered 207 with `successes` and `failures` by id.
pub(super) async fn produce_batch(
    p: Proxy,
    ctx: Ctx,
    headers: HeaderMap,
    Path((_, topic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let target = Arc::new(target(ctx, &headers, &topic).await?);
    let req: Value = parse_body(&body)?;
    let batch_error = |m: &str| RestError::Unprocessable {
        code: 42208,
        message: m.to_string(),
    };
    let entries = req
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| batch_error("Request body is empty. Data is required."))?;
    if entries.is_empty() {
        return Err(batch_error("Empty batch."));
    }
    if entries.len() > p.config().produce_batch_max_entries {
        return Err(batch_error("Too many entries in batch."));
    }
    let mut ids = HashSet::new();
    for e in entries {
        let id = e.get("id").and_then(Value::as_str).unwrap_or("");
        if id.is_empty() || id.len() > 80 {
            return Err(batch_error("Batch entry identifier is not a valid string."));
        }
        if !ids.insert(id) {
            return Err(batch_error("Batch entry IDs are not distinct."));
        }
    }
    let mut started = Vec::with_capacity(entries.len());
    for e in entries {
        started.push(target.start(e.clone()).await);
    }
    let (mut successes, mut failures) = (Vec::new(), Vec::new());
    for (e, handle) in entries.iter().zip(started) {
        let mut r = handle
            .await
            .unwrap_or_else(|e| RestError::Internal(e.to_string()).body());
        r["id"] = e["id"].clone();
        if r["error_code"] == 200 {
            if let Value::Object(m) = &mut r {
                m.remove("error_code");
            }
            successes.push(r);
        } else {
            failures.push(r);
        }
    }
    Ok((
        StatusCode::MULTI_STATUS,
        Json(json!({"successes": successes, "failures": failures})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_as_confluent_documents_them() {
        let v = json!({
            "partition_id": 1,
            "headers": [{"name": "Header-1", "value": "SGVhZGVyLTE="}, {"name": "h2", "value": null}],
            "key": {"type": "BINARY", "data": "Zm9vYmFy"},
            "value": {"type": "JSON", "data": {"foo": "bar"}},
            "timestamp": "2021-02-05T19:14:42Z",
        });
        let p = parse_record(&v, 2).unwrap();
        assert_eq!(p.record.partition, Some(1));
        assert_eq!(p.record.key.as_deref(), Some(&b"foobar"[..]));
        assert_eq!(p.record.value.as_deref(), Some(&br#"{"foo":"bar"}"#[..]));
        assert_eq!(
            p.record.headers[0],
            ("Header-1".into(), Some(b"Header-1".to_vec()))
        );
        assert_eq!(p.record.headers[1], ("h2".into(), None));
        assert_eq!(p.record.timestamp, Some(1_612_552_482_000));
        assert_eq!(p.key_type, Some((DataType::Binary, 6)));
    }

    #[test]
    fn bad_records_get_confluents_codes() {
        let code = |v: Value| parse_record(&v, 1).err().unwrap().status_and_code().1;
        assert_eq!(code(json!({"partition_id": 5})), 40402);
        assert_eq!(code(json!({"key": {"type": "BINARY", "data": "%%%"}})), 400);
        assert_eq!(code(json!({"value": {"type": "NOPE", "data": 1}})), 400);
        assert_eq!(code(json!({"value": {"schema_id": 1, "data": 1}})), 42207);
        assert_eq!(code(json!({"headers": [{"name": "h", "value": "%"}]})), 400);
        assert_eq!(code(json!([1])), 400);
    }

    #[test]
    fn string_and_null_data() {
        let p = parse_record(&json!({"value": {"type": "STRING", "data": "hi"}, "key": {"type": "JSON", "data": null}}), 1).unwrap();
        assert_eq!(p.record.value.as_deref(), Some(&b"hi"[..]));
        assert_eq!(p.record.key, None);
        assert_eq!(p.key_type, Some((DataType::Json, 0)));
    }
}

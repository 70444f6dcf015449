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
use weir_formats::{Field, SchemaType, SubjectNameStrategy};

use super::{parse_body, Ctx};
use crate::error::{RestError, Result};
use crate::formats::{SchemaSpec, Written};
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
    Avro,
    JsonSchema,
    Protobuf,
}

impl DataType {
    fn name(self) -> &'static str {
        match self {
            DataType::Binary => "BINARY",
            DataType::Json => "JSON",
            DataType::String => "STRING",
            DataType::Avro => "AVRO",
            DataType::JsonSchema => "JSONSCHEMA",
            DataType::Protobuf => "PROTOBUF",
        }
    }

    /// The registry's schema type of a schema-based type.
    fn schema_type(self) -> Option<SchemaType> {
        match self {
            DataType::Avro => Some(SchemaType::Avro),
            DataType::JsonSchema => Some(SchemaType::Json),
            DataType::Protobuf => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

/// A key or value: serialized already, or to be serialized with a schema.
#[derive(Debug)]
enum Data {
    Plain(DataType, Option<Vec<u8>>),
    Schema(DataType, SchemaSpec, Value),
}

/// One parsed request: the record, and its key and value still to be
/// serialized where they need a schema.
struct Parsed {
    record: Record,
    key: Option<Data>,
    value: Option<Data>,
}

/// How a written key or value is reported: `{type, size, subject,
/// schema_id, schema_version}`.
type Typed = Option<Value>;

fn typed(ty: DataType, size: usize, schema: Option<&Written>) -> Value {
    let mut v = json!({"type": ty.name(), "size": size});
    if let Some(w) = schema {
        v["subject"] = json!(w.subject);
        v["schema_id"] = json!(w.id);
        v["schema_version"] = json!(w.version);
    }
    v
}

/// Reads a `{type, data, schema, ...}` key or value.
fn data(v: Option<&Value>, what: &str) -> Result<Option<Data>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let obj = v
        .as_object()
        .ok_or_else(|| RestError::bad_request(format!("{what} must be an object")))?;
    let payload = obj.get("data").filter(|d| !d.is_null());
    let ty = match obj.get("type").and_then(Value::as_str) {
        Some(t) => match t.to_ascii_uppercase().as_str() {
            "BINARY" => DataType::Binary,
            "JSON" => DataType::Json,
            "STRING" => DataType::String,
            "AVRO" => DataType::Avro,
            "JSONSCHEMA" => DataType::JsonSchema,
            "PROTOBUF" => DataType::Protobuf,
            other => {
                return Err(RestError::bad_request(format!(
                    "{what}.type {other} is invalid: use BINARY, JSON, STRING, AVRO, JSONSCHEMA or PROTOBUF"
                )))
            }
        },
        // Without a type the record uses a schema: given, or the
        // subject's latest.
        None => DataType::Avro,
    };
    if ty.schema_type().is_some() {
        let int = |k: &str| -> Result<Option<i32>> {
            match obj.get(k).filter(|v| !v.is_null()) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        RestError::bad_request(format!("{what}.{k} must be an integer"))
                    }),
            }
        };
        let strategy = match obj.get("subject_name_strategy").and_then(Value::as_str) {
            None => None,
            Some(s) => Some(match s.to_ascii_uppercase().as_str() {
                "TOPIC_NAME" => SubjectNameStrategy::TopicName,
                "RECORD_NAME" => SubjectNameStrategy::RecordName,
                "TOPIC_RECORD_NAME" => SubjectNameStrategy::TopicRecordName,
                other => {
                    return Err(RestError::bad_request(format!(
                        "{what}.subject_name_strategy {other} is invalid"
                    )))
                }
            }),
        };
        let spec = SchemaSpec {
            raw: obj
                .get("schema")
                .and_then(Value::as_str)
                .map(str::to_string),
            id: int("schema_id")?,
            version: int("schema_version")?,
            subject: obj
                .get("subject")
                .and_then(Value::as_str)
                .map(str::to_string),
            strategy,
        };
        return Ok(Some(Data::Schema(
            ty,
            spec,
            payload.cloned().unwrap_or(Value::Null),
        )));
    }
    let bytes = match payload {
        None => None,
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
            DataType::String => match d {
                Value::String(s) => s.clone().into_bytes(),
                Value::Number(_) | Value::Bool(_) => d.to_string().into_bytes(),
                _ => {
                    return Err(RestError::bad_request(format!(
                        "{what}.data must be a string"
                    )))
                }
            },
            DataType::Json | DataType::Avro | DataType::JsonSchema | DataType::Protobuf => {
                serde_json::to_vec(d).map_err(|e| RestError::Internal(e.to_string()))?
            }
        }),
    };
    Ok(Some(Data::Plain(ty, bytes)))
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
    Ok(Parsed {
        key: data(obj.get("key"), "key")?,
        value: data(obj.get("value"), "value")?,
        record: Record {
            partition,
            headers,
            timestamp,
            ..Record::default()
        },
    })
}

/// The delivery report of a produced record.
fn report(cluster_id: &str, topic: &str, key: &Typed, value: &Typed, d: Delivered) -> Value {
    json!({
        "error_code": 200,
        "cluster_id": cluster_id,
        "topic_name": topic,
        "partition_id": d.partition,
        "offset": d.offset,
        "timestamp": format_ms(d.timestamp),
        "key": key,
        "value": value,
    })
}

/// What one produce stream shares.
struct Target {
    proxy: Arc<crate::RestProxy>,
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
        let (record, key, value) = match self.prepare(&v).await {
            Ok(p) => p,
            Err(e) => return tokio::spawn(async move { e.body() }),
        };
        let pending = enqueue(&self.producer, &self.topic, &record).await;
        let t = self.clone();
        tokio::spawn(async move {
            match pending {
                Ok(pending) => match pending.delivered().await {
                    Ok(d) => report(&t.cluster_id, &t.topic, &key, &value, d),
                    Err(e) => e.body(),
                },
                Err(e) => e.body(),
            }
        })
    }

    /// Parses a request and serializes its key and value.
    async fn prepare(&self, v: &Value) -> Result<(Record, Typed, Typed)> {
        let mut parsed = parse_record(v, self.partitions)?;
        let (key, key_typed) = self.serialize(parsed.key.take(), Field::Key).await?;
        let (value, value_typed) = self.serialize(parsed.value.take(), Field::Value).await?;
        parsed.record.key = key;
        parsed.record.value = value;
        Ok((parsed.record, key_typed, value_typed))
    }

    async fn serialize(&self, d: Option<Data>, field: Field) -> Result<(Option<Vec<u8>>, Typed)> {
        match d {
            None => Ok((None, None)),
            Some(Data::Plain(ty, bytes)) => {
                let size = bytes.as_ref().map_or(0, Vec::len);
                Ok((bytes, Some(typed(ty, size, None))))
            }
            Some(Data::Schema(ty, spec, data)) => {
                let kind = ty.schema_type().unwrap_or_default();
                let w = self
                    .proxy
                    .schemas()?
                    .write(kind, &self.topic, field, &spec, &data)
                    .await?;
                let t = typed(ty, w.bytes.len(), Some(&w));
                Ok((Some(w.bytes), Some(t)))
            }
        }
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

async fn target(p: Proxy, ctx: Ctx, headers: &HeaderMap, topic: &str) -> Result<Target> {
    check_json(headers)?;
    let partitions = ctx.clients.partition_count(topic).await?;
    Ok(Target {
        proxy: p.0,
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
    p: Proxy,
    ctx: Ctx,
    headers: HeaderMap,
    Path((_, topic)): Path<(String, String)>,
    body: Body,
) -> Result<Response> {
    let target = match target(p, ctx, &headers, &topic).await {
        Ok(t) => Arc::new(t),
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
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

/// Reads and drops what is left of a refused request's body, up to a
/// bound. hyper closes a keep-alive connection whose request body was left
/// unread, and a client already sending its next request on it sees the
/// connection drop instead of an answer.
async fn drain(body: Body) {
    const LIMIT: usize = 1 << 20;
    let mut stream = body.into_data_stream();
    let mut read = 0;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > LIMIT {
                break;
            }
        }
    })
    .await;
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
    let max_entries = p.config().produce_batch_max_entries;
    let target = Arc::new(target(p, ctx, &headers, &topic).await?);
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
    if entries.len() > max_entries {
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
        assert!(matches!(&p.key, Some(Data::Plain(DataType::Binary, Some(k))) if k == b"foobar"));
        assert!(
            matches!(&p.value, Some(Data::Plain(DataType::Json, Some(v))) if v == br#"{"foo":"bar"}"#)
        );
        assert_eq!(
            p.record.headers[0],
            ("Header-1".into(), Some(b"Header-1".to_vec()))
        );
        assert_eq!(p.record.headers[1], ("h2".into(), None));
        assert_eq!(p.record.timestamp, Some(1_612_552_482_000));
    }

    #[test]
    fn bad_records_get_confluents_codes() {
        let code = |v: Value| parse_record(&v, 1).err().unwrap().status_and_code().1;
        assert_eq!(code(json!({"partition_id": 5})), 40402);
        assert_eq!(code(json!({"key": {"type": "BINARY", "data": "%%%"}})), 400);
        assert_eq!(code(json!({"value": {"type": "NOPE", "data": 1}})), 400);
        // Schema-based types are serialized later, through the registry.
        let p = parse_record(&json!({"value": {"type": "PROTOBUF", "data": {}}}), 1).unwrap();
        assert!(matches!(
            p.value,
            Some(Data::Schema(DataType::Protobuf, _, _))
        ));
        assert_eq!(code(json!({"value": {"schema_id": "x", "data": 1}})), 400);
        assert_eq!(code(json!({"headers": [{"name": "h", "value": "%"}]})), 400);
        assert_eq!(code(json!([1])), 400);
    }

    #[test]
    fn string_and_null_data() {
        let p = parse_record(&json!({"value": {"type": "STRING", "data": "hi"}, "key": {"type": "JSON", "data": null}}), 1).unwrap();
        assert!(matches!(&p.value, Some(Data::Plain(DataType::String, Some(v))) if v == b"hi"));
        assert!(matches!(&p.key, Some(Data::Plain(DataType::Json, None))));
        let p = parse_record(
            &json!({"value": {"schema_version": 2, "data": {"a": 1}}}),
            1,
        )
        .unwrap();
        assert!(matches!(&p.value, Some(Data::Schema(_, s, _)) if s.version == Some(2)));
    }
}

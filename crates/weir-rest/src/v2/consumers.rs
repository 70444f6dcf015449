//! v2 consumer instances: one librdkafka consumer each, created by
//! `POST /consumers/{group}`, driven by later requests, closed by
//! `DELETE` or after `consumer.instance.timeout.ms` without a request.
//!
//! Offsets are stored only for records a read returned, so committing
//! "everything read so far" never commits a record the client did not
//! get; a record fetched but left out of a response (`max_bytes`) waits
//! in the instance for the next read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{accepted_format, check_body_type, Format};
use crate::error::{RestError, Result};
use crate::v3::parse_body;
use crate::{Proxy, RestProxy};
use weir_formats::Field;

/// How a consumer instance gets its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    Subscribed,
    Assigned,
}

/// What only one request at a time may touch.
struct State {
    mode: Mode,
    /// Records fetched but not yet returned.
    pending: VecDeque<OwnedMessage>,
}

/// One consumer instance.
pub(crate) struct Instance {
    format: Format,
    consumer: Arc<BaseConsumer>,
    /// `consumer.request.timeout.ms` of this instance, if set.
    request_timeout: Option<Duration>,
    /// `fetch.min.bytes` of this instance: a read returns once it has
    /// more than this many bytes (`None`: only at its timeout).
    min_bytes: Option<u64>,
    state: tokio::sync::Mutex<State>,
    last_used: Mutex<Instant>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Instance {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Runs blocking librdkafka calls off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer) -> T + Send + 'static,
    ) -> Result<T> {
        let c = self.consumer.clone();
        tokio::task::spawn_blocking(move || f(&c))
            .await
            .map_err(|e| RestError::Internal(e.to_string()))
    }
}

/// Every live consumer instance, by (group, name).
#[derive(Debug, Default)]
pub struct Consumers {
    instances: Mutex<HashMap<(String, String), Arc<Instance>>>,
}

impl Consumers {
    fn get(&self, group: &str, name: &str) -> Result<Arc<Instance>> {
        let i = self
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(group.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| RestError::not_found(40403, "Consumer instance not found."))?;
        i.touch();
        Ok(i)
    }

    fn remove(&self, group: &str, name: &str) -> Option<Arc<Instance>> {
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(group.to_string(), name.to_string()))
    }

    /// Closes instances idle for longer than `timeout`.
    async fn expire(&self, timeout: Duration) {
        let expired: Vec<(String, String, Arc<Instance>)> = {
            let mut map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<_> = map
                .iter()
                .filter(|(_, i)| i.idle() > timeout)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| map.remove(&k).map(|i| (k.0, k.1, i)))
                .collect()
        };
        for (group, name, i) in expired {
            tracing::info!(%group, instance = %name, "consumer instance expired");
            close(i).await;
        }
    }

    /// Closes every instance.
    pub(crate) async fn close_all(&self) {
        let all: Vec<Arc<Instance>> = {
            let mut map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
            map.drain().map(|(_, i)| i).collect()
        };
        for i in all {
            close(i).await;
        }
    }
}

/// Leaves the group and closes the consumer, off the async workers
/// (librdkafka's close blocks), once no request uses the instance.
async fn close(i: Arc<Instance>) {
    let _ = i.state.lock().await;
    let _ = tokio::task::spawn_blocking(move || drop(i)).await;
}

/// Closes expired instances every second while the proxy lives.
pub(crate) async fn expire_loop(proxy: Weak<RestProxy>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(p) = proxy.upgrade() else { return };
        let timeout = p.config().consumer_instance_timeout;
        p.consumers.expire(timeout).await;
    }
}

/// The instance a request's `{group}` and `{instance}` name, for a
/// request whose body (if any) is of a v2 type.
pub(super) struct Found(Arc<Instance>);

impl FromRequestParts<Arc<RestProxy>> for Found {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, proxy: &Arc<RestProxy>) -> Result<Self> {
        check_body_type(&parts.headers)?;
        let Path((group, name)) = Path::<(String, String)>::from_request_parts(parts, proxy)
            .await
            .map_err(|_| RestError::no_route())?;
        Ok(Found(proxy.consumers.get(&group, &name)?))
    }
}

#[derive(Debug, Default, Deserialize)]
struct CreateRequest {
    name: Option<String>,
    id: Option<String>,
    format: Option<String>,
    #[serde(rename = "auto.offset.reset")]
    auto_offset_reset: Option<String>,
    #[serde(rename = "auto.commit.enable")]
    auto_commit_enable: Option<Value>,
    #[serde(rename = "fetch.min.bytes", alias = "responseMinBytes")]
    fetch_min_bytes: Option<i64>,
    #[serde(rename = "consumer.request.timeout.ms", alias = "requestWaitMs")]
    request_timeout_ms: Option<i64>,
}

fn invalid_config(m: String) -> RestError {
    RestError::Unprocessable {
        code: 42204,
        message: format!("Invalid consumer configuration: {m}"),
    }
}

/// `POST /consumers/{group}`: `{"instance_id", "base_uri"}`.
pub(super) async fn create(
    p: Proxy,
    headers: HeaderMap,
    Path(group): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    check_body_type(&headers)?;
    let req: CreateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRequest::default()
    } else {
        parse_body(&body)?
    };
    let format = match req.format.as_deref() {
        None => Format::Binary,
        Some(f) => Format::parse(f).ok_or_else(|| {
            invalid_config(format!(
                "format {f} is not one of binary, json, avro, jsonschema, protobuf"
            ))
        })?,
    };
    let name = req
        .id
        .clone()
        .or(req.name.clone())
        .unwrap_or_else(|| format!("rest-consumer-{}", uuid::Uuid::new_v4()));
    let clients = p.clients_for(&headers)?;
    let settings = clients.settings();
    let mut props = settings.consumer.clone();
    props.insert("group.id".into(), group.clone());
    props.insert("client.id".into(), name.clone());
    props.insert("enable.auto.offset.store".into(), "false".into());
    if let Some(r) = &req.auto_offset_reset {
        let v = match r.as_str() {
            "earliest" | "smallest" => "earliest",
            "latest" | "largest" => "latest",
            "none" => "error",
            other => {
                return Err(invalid_config(format!(
                    "auto.offset.reset {other} is not one of earliest, latest, none"
                )))
            }
        };
        props.insert("auto.offset.reset".into(), v.into());
    }
    if let Some(v) = &req.auto_commit_enable {
        let b = match v {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            other => {
                return Err(invalid_config(format!(
                    "auto.commit.enable {other} is not true or false"
                )))
            }
        };
        props.insert("enable.auto.commit".into(), b.to_string());
    }
    let consumer: BaseConsumer = clients
        .rdkafka_config(&props)?
        .create()
        .map_err(|e| invalid_config(e.to_string()))?;
    let instance = Arc::new(Instance {
        format,
        consumer: Arc::new(consumer),
        request_timeout: req
            .request_timeout_ms
            .filter(|t| *t > 0)
            .map(|t| Duration::from_millis(t as u64)),
        min_bytes: req.fetch_min_bytes.filter(|b| *b >= 0).map(|b| b as u64),
        state: tokio::sync::Mutex::new(State {
            mode: Mode::None,
            pending: VecDeque::new(),
        }),
        last_used: Mutex::new(Instant::now()),
    });
    let duplicate = {
        let mut map = p
            .consumers
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match map.entry((group.clone(), name.clone())) {
            std::collections::hash_map::Entry::Occupied(_) => Some(instance),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(instance);
                None
            }
        }
    };
    if let Some(instance) = duplicate {
        let _ = tokio::task::spawn_blocking(move || drop(instance)).await;
        return Err(RestError::Conflict {
            code: 40902,
            message: "Consumer with specified consumer ID already exists in the specified consumer group.".into(),
        });
    }
    let base_uri = format!(
        "{}/consumers/{}/instances/{}",
        p.base_url(&headers),
        crate::v3::encode(&group),
        crate::v3::encode(&name)
    );
    Ok(Json(json!({"instance_id": name, "base_uri": base_uri})))
}

/// `DELETE /consumers/{group}/instances/{instance}`: 204.
pub(super) async fn delete(
    p: Proxy,
    headers: HeaderMap,
    Path((group, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    check_body_type(&headers)?;
    let i = p
        .consumers
        .remove(&group, &name)
        .ok_or_else(|| RestError::not_found(40403, "Consumer instance not found."))?;
    close(i).await;
    Ok(StatusCode::NO_CONTENT)
}

fn illegal_state(m: &str) -> RestError {
    RestError::Conflict {
        code: 40903,
        message: format!("Illegal state: {m}"),
    }
}

const EXCLUSIVE: &str = "Subscription to topics, partitions and pattern are mutually exclusive";

#[derive(Debug, Deserialize)]
struct Subscription {
    topics: Option<Vec<String>>,
    topic_pattern: Option<String>,
}

/// `POST .../subscription`: `{"topics": [...]}` or `{"topic_pattern"}`.
pub(super) async fn subscribe(Found(i): Found, body: Bytes) -> Result<StatusCode> {
    let req: Subscription = parse_body(&body)?;
    let topics: Vec<String> = match (req.topics, req.topic_pattern) {
        (Some(t), None) if !t.is_empty() => t,
        // librdkafka takes topics starting with `^` as regular expressions.
        (None, Some(pattern)) => vec![if pattern.starts_with('^') {
            pattern
        } else {
            format!("^{pattern}")
        }],
        _ => {
            return Err(RestError::bad_request(
                "give either topics or topic_pattern",
            ))
        }
    };
    let mut state = i.state.lock().await;
    if state.mode == Mode::Assigned {
        return Err(illegal_state(EXCLUSIVE));
    }
    i.blocking(move |c| {
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        c.subscribe(&refs)
    })
    .await??;
    state.mode = Mode::Subscribed;
    state.pending.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// The (topic, partition)s of an instance's subscription or assignment.
async fn partitions_of(
    i: &Instance,
    list: fn(&BaseConsumer) -> rdkafka::error::KafkaResult<TopicPartitionList>,
) -> Result<Vec<(String, i32)>> {
    let _state = i.state.lock().await;
    Ok(list(&i.consumer)?
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect())
}

/// `GET .../subscription`: `{"topics": [...]}`.
pub(super) async fn subscription(Found(i): Found) -> Result<Json<Value>> {
    let topics: Vec<String> = partitions_of(&i, |c| c.subscription())
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    Ok(Json(json!({ "topics": topics })))
}

/// `DELETE .../subscription`: 204.
pub(super) async fn unsubscribe(Found(i): Found) -> Result<StatusCode> {
    let mut state = i.state.lock().await;
    i.blocking(|c| c.unsubscribe()).await?;
    state.mode = Mode::None;
    state.pending.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct TopicPartition {
    topic: String,
    partition: i32,
}

#[derive(Debug, Deserialize)]
struct Partitions {
    partitions: Vec<TopicPartition>,
}

fn tpl(parts: &[TopicPartition], offset: Offset) -> Result<TopicPartitionList> {
    let mut l = TopicPartitionList::new();
    for p in parts {
        l.add_partition_offset(&p.topic, p.partition, offset)?;
    }
    Ok(l)
}

/// `POST .../assignments`: `{"partitions": [{topic, partition}]}`.
pub(super) async fn assign(Found(i): Found, body: Bytes) -> Result<StatusCode> {
    let req: Partitions = parse_body(&body)?;
    let mut state = i.state.lock().await;
    if state.mode == Mode::Subscribed {
        return Err(illegal_state(EXCLUSIVE));
    }
    let l = tpl(&req.partitions, Offset::Invalid)?;
    i.blocking(move |c| c.assign(&l)).await??;
    state.mode = if req.partitions.is_empty() {
        Mode::None
    } else {
        Mode::Assigned
    };
    state.pending.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../assignments`: `{"partitions": [{topic, partition}]}`.
pub(super) async fn assignment(Found(i): Found) -> Result<Json<Value>> {
    let parts: Vec<Value> = partitions_of(&i, |c| c.assignment())
        .await?
        .into_iter()
        .map(|(t, p)| json!({"topic": t, "partition": p}))
        .collect();
    Ok(Json(json!({ "partitions": parts })))
}

/// How long a seek may wait for librdkafka to start fetching a newly
/// assigned partition.
const SEEK_WAIT: Duration = Duration::from_secs(5);

/// Moves the positions of `targets` (topic, partition, offset).
async fn seek_to(
    i: &Instance,
    state: &mut State,
    targets: Vec<(String, i32, Offset)>,
) -> Result<()> {
    let assigned: Vec<(String, i32)> = i
        .consumer
        .assignment()?
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    for (t, p, _) in &targets {
        if !assigned.iter().any(|(at, ap)| at == t && ap == p) {
            return Err(illegal_state(&format!(
                "No current assignment for partition {t}-{p}"
            )));
        }
    }
    state.pending.retain(|m| {
        !targets
            .iter()
            .any(|(t, p, _)| m.topic() == t && m.partition() == *p)
    });
    let assigned_mode = state.mode == Mode::Assigned;
    i.blocking(move |c| {
        if assigned_mode {
            // librdkafka cannot seek a partition that has not started
            // fetching yet; assigning again with the new offsets works in
            // every state, and keeps the others where they are.
            let mut l = TopicPartitionList::new();
            for e in c.position()?.elements() {
                let (t, p) = (e.topic(), e.partition());
                let o = targets
                    .iter()
                    .find(|(tt, tp, _)| tt == t && *tp == p)
                    .map_or(e.offset(), |x| x.2);
                l.add_partition_offset(t, p, o)?;
            }
            return c.assign(&l).map_err(RestError::from);
        }
        for (t, p, o) in &targets {
            // A partition assigned by a rebalance a moment ago may not
            // fetch yet.
            let deadline = Instant::now() + SEEK_WAIT;
            loop {
                match c.seek(t, *p, *o, Duration::from_secs(5)) {
                    Ok(()) => break,
                    Err(KafkaError::Seek(e))
                        if Instant::now() < deadline
                            && e.to_ascii_lowercase().contains("state") =>
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => return Err(RestError::from(e)),
                }
            }
        }
        Ok(())
    })
    .await?
}

#[derive(Debug, Deserialize)]
struct SeekOffset {
    topic: String,
    partition: i32,
    offset: i64,
}

#[derive(Debug, Deserialize)]
struct SeekTimestamp {
    topic: String,
    partition: i32,
    timestamp: String,
}

#[derive(Debug, Deserialize)]
struct SeekRequest {
    #[serde(default)]
    offsets: Vec<SeekOffset>,
    #[serde(default)]
    timestamps: Vec<SeekTimestamp>,
}

/// `POST .../positions`: `{"offsets": [...], "timestamps": [...]}`.
pub(super) async fn seek(Found(i): Found, body: Bytes) -> Result<StatusCode> {
    let req: SeekRequest = parse_body(&body)?;
    let mut state = i.state.lock().await;
    let mut targets: Vec<(String, i32, Offset)> = req
        .offsets
        .into_iter()
        .map(|o| (o.topic, o.partition, Offset::Offset(o.offset)))
        .collect();
    if !req.timestamps.is_empty() {
        let mut l = TopicPartitionList::new();
        for t in &req.timestamps {
            let ms = crate::time::parse_ms(&t.timestamp).ok_or_else(|| {
                RestError::bad_request(format!("timestamp {} is not an RFC 3339 time", t.timestamp))
            })?;
            l.add_partition_offset(&t.topic, t.partition, Offset::Offset(ms))?;
        }
        let found = i
            .blocking(move |c| c.offsets_for_times(l, Duration::from_secs(10)))
            .await??;
        for e in found.elements() {
            // No record at or after the time: the end, as Kafka's seek.
            let o = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::End,
            };
            targets.push((e.topic().to_string(), e.partition(), o));
        }
    }
    seek_to(&i, &mut state, targets).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn seek_all(i: Arc<Instance>, body: Bytes, offset: Offset) -> Result<StatusCode> {
    let req: Partitions = parse_body(&body)?;
    let mut state = i.state.lock().await;
    let targets = req
        .partitions
        .into_iter()
        .map(|tp| (tp.topic, tp.partition, offset))
        .collect();
    seek_to(&i, &mut state, targets).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../positions/beginning`: `{"partitions": [...]}`.
pub(super) async fn seek_to_beginning(Found(i): Found, body: Bytes) -> Result<StatusCode> {
    seek_all(i, body, Offset::Beginning).await
}

/// `POST .../positions/end`: `{"partitions": [...]}`.
pub(super) async fn seek_to_end(Found(i): Found, body: Bytes) -> Result<StatusCode> {
    seek_all(i, body, Offset::End).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ReadParams {
    timeout: Option<i64>,
    max_bytes: Option<i64>,
}

fn record_size(m: &OwnedMessage) -> u64 {
    (m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len)) as u64
}

/// A record in the instance's format.
async fn record_json(p: &RestProxy, format: Format, m: &OwnedMessage) -> Result<Value> {
    let unreadable = |e: String| RestError::Kafka {
        retriable: false,
        message: format!(
            "Kafka error: the record at {}-{} offset {} cannot be read as {}: {e}",
            m.topic(),
            m.partition(),
            m.offset(),
            format.name()
        ),
    };
    let mut out = [Value::Null, Value::Null];
    for (slot, (field, bytes)) in out
        .iter_mut()
        .zip([(Field::Key, m.key()), (Field::Value, m.payload())])
    {
        let Some(b) = bytes else { continue };
        *slot = match format {
            Format::Binary => json!(base64::engine::general_purpose::STANDARD.encode(b)),
            Format::Json => serde_json::from_slice(b).map_err(|e| unreadable(e.to_string()))?,
            Format::Avro => p
                .schemas()?
                .read_avro(m.topic(), field, b)
                .await
                .map_err(|e| unreadable(e.to_string()))?,
            Format::JsonSchema => p
                .schemas()?
                .read(weir_formats::SchemaType::Json, b)
                .await
                .map_err(|e| unreadable(e.to_string()))?,
            Format::Protobuf => p
                .schemas()?
                .read(weir_formats::SchemaType::Protobuf, b)
                .await
                .map_err(|e| unreadable(e.to_string()))?,
        };
    }
    let [key, value] = out;
    Ok(json!({
        "topic": m.topic(),
        "key": key,
        "value": value,
        "partition": m.partition(),
        "offset": m.offset(),
    }))
}

/// `GET .../records?timeout=&max_bytes=`: records fetched until the
/// request timeout, `max_bytes` or the instance's `fetch.min.bytes`.
pub(super) async fn records(
    p: Proxy,
    headers: HeaderMap,
    Found(i): Found,
    Query(q): Query<ReadParams>,
) -> Result<Response> {
    if accepted_format(&headers) != i.format {
        return Err(RestError::NotAcceptable {
            code: 40601,
            message: "The requested embedded data format does not match the deserializer for this consumer instance".into(),
        });
    }
    let config = p.config();
    let default_timeout = i.request_timeout.unwrap_or(config.consumer_request_timeout);
    let timeout = match q.timeout {
        Some(t) if t > 0 => default_timeout.min(Duration::from_millis(t as u64)),
        _ => default_timeout,
    };
    let max_bytes = match q.max_bytes {
        Some(b) if b > 0 => (b as u64).min(config.consumer_request_max_bytes),
        _ => config.consumer_request_max_bytes,
    };
    let min_bytes = i.min_bytes;
    let mut state = i.state.lock().await;
    let mut pending = std::mem::take(&mut state.pending);
    let (taken, left) = i
        .blocking(move |c| {
            read(c, &mut pending, timeout, max_bytes, min_bytes).map(|t| (t, pending))
        })
        .await??;
    state.pending = left;
    let mut out = Vec::with_capacity(taken.len());
    let mut returned = Vec::new();
    for (n, m) in taken.iter().enumerate() {
        match record_json(&p, i.format, m).await {
            Ok(v) => {
                out.push(v);
                returned.push((m.topic().to_string(), m.partition(), m.offset()));
            }
            Err(e) if n == 0 => {
                // The first record cannot be shown: keep it for the next
                // read (a client can seek past it) and report why.
                for m in taken.into_iter().rev() {
                    state.pending.push_front(m);
                }
                return Err(e);
            }
            Err(_) => {
                for m in taken.into_iter().skip(n).rev() {
                    state.pending.push_front(m);
                }
                break;
            }
        }
    }
    // Only records the client gets count as consumed for commits.
    i.blocking(move |c| {
        for (t, p, o) in returned {
            let _ = c.store_offset(&t, p, o);
        }
    })
    .await?;
    Ok((
        [(header::CONTENT_TYPE, i.format.media_type())],
        Json(Value::Array(out)),
    )
        .into_response())
}

/// Takes records from `pending`, then polls, until `timeout`, `max_bytes`
/// or more than `min_bytes`. A record that would pass `max_bytes` stays
/// in `pending`.
fn read(
    c: &BaseConsumer,
    pending: &mut VecDeque<OwnedMessage>,
    timeout: Duration,
    max_bytes: u64,
    min_bytes: Option<u64>,
) -> Result<Vec<OwnedMessage>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut bytes = 0u64;
    loop {
        let next = match pending.pop_front() {
            Some(m) => Some(m),
            None => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match c.poll(left.min(Duration::from_millis(100))) {
                    Some(Ok(m)) => Some(m.detach()),
                    Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF))) => {
                        None
                    }
                    Some(Err(e)) => {
                        if out.is_empty() {
                            return Err(RestError::from(e));
                        }
                        tracing::debug!(error = %e, "consumer error after records were read");
                        break;
                    }
                    None => None,
                }
            }
        };
        let Some(m) = next else { continue };
        let size = record_size(&m);
        if bytes + size >= max_bytes {
            pending.push_front(m);
            break;
        }
        bytes += size;
        out.push(m);
        if min_bytes.is_some_and(|min| bytes > min) {
            break;
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct CommitOffset {
    topic: String,
    partition: i32,
    offset: i64,
    metadata: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CommitRequest {
    offsets: Option<Vec<CommitOffset>>,
}

/// `POST .../offsets`: commits the given offsets (each the last record
/// consumed, so `offset + 1` is committed), or without a body every
/// record read so far.
pub(super) async fn commit(Found(i): Found, body: Bytes) -> Result<Json<Value>> {
    let req: Option<CommitRequest> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(parse_body(&body)?)
    };
    let _state = i.state.lock().await;
    match req.and_then(|r| r.offsets).filter(|o| !o.is_empty()) {
        None => match i
            .blocking(|c| c.commit_consumer_state(CommitMode::Sync))
            .await?
        {
            // Nothing read yet: nothing to commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            other => other?,
        },
        Some(offsets) => {
            let mut l = TopicPartitionList::new();
            for o in &offsets {
                l.add_partition_offset(&o.topic, o.partition, Offset::Offset(o.offset + 1))?;
                if let (Some(m), Some(mut e)) =
                    (&o.metadata, l.find_partition(&o.topic, o.partition))
                {
                    e.set_metadata(m.clone());
                }
            }
            i.blocking(move |c| c.commit(&l, CommitMode::Sync))
                .await??;
        }
    }
    Ok(Json(json!([])))
}

/// `GET .../offsets` with `{"partitions": [...]}`: the committed offsets.
pub(super) async fn committed(Found(i): Found, body: Bytes) -> Result<Json<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::not_found(40402, "Partition not found."));
    }
    let req: Partitions = parse_body(&body)?;
    let l = tpl(&req.partitions, Offset::Invalid)?;
    let _state = i.state.lock().await;
    let found = i
        .blocking(move |c| c.committed_offsets(l, Duration::from_secs(10)))
        .await??;
    let offsets: Vec<Value> = found
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(json!({
                "topic": e.topic(), "partition": e.partition(), "offset": o, "metadata": e.metadata(),
            })),
            _ => None,
        })
        .collect();
    Ok(Json(json!({ "offsets": offsets })))
}

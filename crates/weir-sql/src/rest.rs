//! ksqlDB's REST API over axum: `/ksql`, `/query`, `/query-stream`,
//! `/close-query`, `/inserts-stream`, `/info`, `/healthcheck` and
//! `/status/{commandId}`, with ksqlDB's request and response shapes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{json, Value as J};
use tokio::sync::Mutex;

use crate::ast::Emit;
use crate::engine::{row_json, Engine, Session};
use crate::error::SqlError;
use crate::plan::Plan;
use crate::runtime::QueryHandle;
use crate::types::{SqlType, Value};

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct Api {
    pub engine: Arc<Engine>,
    /// Push queries of /query-stream by id, for /close-query.
    push: Arc<Mutex<HashMap<String, Arc<std::sync::atomic::AtomicBool>>>>,
}

/// The router.
pub fn router(engine: Arc<Engine>) -> Router {
    let api = Api {
        engine,
        push: Arc::default(),
    };
    Router::new()
        .route("/ksql", post(ksql))
        .route("/query", post(query))
        .route("/query-stream", post(query_stream))
        .route("/close-query", post(close_query))
        .route("/inserts-stream", post(inserts_stream))
        .route("/info", get(info))
        .route("/healthcheck", get(healthcheck))
        .route("/status/{*command_id}", get(status))
        .with_state(api)
}

const KSQL_JSON: &str = "application/vnd.ksql.v1+json";
const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";

fn json_response(status: StatusCode, body: J) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, KSQL_JSON)],
        body.to_string(),
    )
        .into_response()
}

/// ksqlDB's error body for a statement.
fn statement_error(e: &SqlError, statement: &str, entities: Vec<J>) -> Response {
    let (status, code) = if e.is_user_error() {
        (StatusCode::BAD_REQUEST, 40001)
    } else if matches!(e, SqlError::Authorization { .. }) {
        (StatusCode::FORBIDDEN, 40301)
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, 50000)
    };
    json_response(
        status,
        json!({
            "@type": "statement_error",
            "error_code": code,
            "message": e.to_string(),
            "statementText": statement,
            "entities": entities,
        }),
    )
}

fn generic_error(status: StatusCode, code: u32, message: &str) -> Response {
    json_response(
        status,
        json!({"@type": "generic_error", "error_code": code, "message": message}),
    )
}

fn props(v: &J) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// Handlers answer errors as responses; boxing them buys nothing here.
#[allow(clippy::result_large_err)]
fn parse_body(body: &Bytes) -> Result<J, Response> {
    serde_json::from_slice(body).map_err(|e| {
        generic_error(
            StatusCode::BAD_REQUEST,
            40000,
            &format!("Invalid JSON in request: {e}"),
        )
    })
}

/// A statement request: the statement text in `field`, properties in
/// `props_field` and `sessionVariables`.
#[allow(clippy::result_large_err)]
fn statement_request(
    body: &Bytes,
    field: &str,
    props_field: &str,
) -> Result<(String, Session), Response> {
    let req = parse_body(body)?;
    let Some(text) = req[field].as_str() else {
        return Err(generic_error(
            StatusCode::BAD_REQUEST,
            40000,
            &format!("The request has no \"{field}\" field"),
        ));
    };
    let session = Session {
        properties: props(&req[props_field]),
        variables: props(&req["sessionVariables"]),
    };
    Ok((text.to_string(), session))
}

async fn ksql(State(api): State<Api>, body: Bytes) -> Response {
    let (text, session) = match statement_request(&body, "ksql", "streamsProperties") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let text = text.as_str();
    match api.engine.execute(text, &session).await {
        Ok(entities) => json_response(StatusCode::OK, J::Array(entities)),
        Err((e, statement, entities)) => statement_error(&e, &statement, entities),
    }
}

/// The header schema text: "`ID` STRING, `N` BIGINT".
fn schema_text(plan: &Plan) -> String {
    plan.projection()
        .iter()
        .map(|(n, t)| format!("`{n}` {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn columns(plan: &Plan) -> (Vec<String>, Vec<String>) {
    plan.projection()
        .into_iter()
        .map(|(n, t)| (n, t.to_string()))
        .unzip()
}

/// A stream of output rows of a push query, in SELECT order; the query
/// thread stops when the stream is dropped.
fn push_rows(
    plan: Plan,
    handle: QueryHandle,
    rx: tokio::sync::mpsc::Receiver<crate::task::OutRow>,
) -> impl futures_util::Stream<Item = Vec<Value>> + Send {
    struct Guard(QueryHandle);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let guard = Guard(handle);
    futures_util::stream::unfold((rx, guard, plan), |(mut rx, guard, plan)| async move {
        let row = rx.recv().await?;
        let values = plan.project(&row.key, row.value.as_deref().unwrap_or_default());
        Some((values, (rx, guard, plan)))
    })
}

#[allow(clippy::result_large_err)]
/// Runs a SELECT: pull (`Ok(Err(rows))`) or push (`Ok(Ok(stream))`).
/// A pull query's id, as unique as a random one within this server
/// (ksqlDB's shape, `query_` and 32 hex digits) without a random-number
/// syscall per query: a pull is answered in tens of microseconds.
fn pull_query_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("query_{prefix:016x}{n:016x}")
}

async fn run_select(
    api: &Api,
    text: &str,
    session: &Session,
) -> Result<
    (
        Plan,
        Result<futures_util::stream::BoxStream<'static, Vec<Value>>, Vec<Vec<Value>>>,
        String,
    ),
    Response,
> {
    let (query, plan) = match api.engine.plan_select(text, session).await {
        Ok(x) => x,
        Err(e) => return Err(statement_error(&e, text, vec![])),
    };
    if query.emit == Emit::None {
        return match api.engine.pull_query(&query, plan).await {
            Ok((plan, rows)) => Ok((plan, Err(rows), pull_query_id())),
            Err(e) => Err(statement_error(&e, text, vec![])),
        };
    }
    if query.emit == Emit::Final && !plan.is_aggregate() {
        let e = SqlError::invalid("EMIT FINAL is only supported for windowed aggregations.");
        return Err(statement_error(&e, text, vec![]));
    }
    match api.engine.push_query(plan.clone(), session).await {
        Ok((handle, rx)) => {
            let id = format!("transient_{}", uuid::Uuid::new_v4().simple());
            api.push
                .lock()
                .await
                .insert(id.clone(), handle.stop.clone());
            Ok((plan.clone(), Ok(push_rows(plan, handle, rx).boxed()), id))
        }
        Err(e) => Err(statement_error(&e, text, vec![])),
    }
}

async fn query(State(api): State<Api>, body: Bytes) -> Response {
    let (text, session) = match statement_request(&body, "ksql", "streamsProperties") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let text = text.as_str();
    if let Ok(crate::ast::Parsed {
        statement:
            crate::ast::Statement::Print {
                topic,
                from_beginning,
                interval,
                limit,
            },
        ..
    }) = crate::parser::parse_one(text, &session.variables)
    {
        return print(&api, text, &topic, from_beginning, interval, limit).await;
    }
    let (plan, rows, id) = match run_select(&api, text, &session).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let header = json!({"header": {"queryId": id, "schema": schema_text(&plan)}}).to_string();
    match rows {
        Err(rows) => {
            let mut parts = vec![header];
            parts.extend(rows.iter().map(|r| row_object(r)));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, KSQL_JSON)],
                format!("[{}]", parts.join(",")),
            )
                .into_response()
        }
        Ok(stream) => {
            let limit = plan.limit;
            let head = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(Bytes::from(format!("[{header},\n")))
            });
            let mut n = 0u64;
            let body = stream.map(move |r| {
                n += 1;
                let mut s = row_object(&r);
                if limit.is_some_and(|l| n >= l) {
                    s.push_str(",\n{\"finalMessage\":\"Limit Reached\"}]\n");
                } else {
                    s.push_str(",\n");
                }
                Ok(Bytes::from(s))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, KSQL_JSON)
                .body(Body::from_stream(head.chain(body)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// A row of `/query`: `{"row":{"columns":[...]}}`.
fn row_object(values: &[Value]) -> String {
    format!("{{\"row\":{{\"columns\":{}}}}}", row_json(values))
}

/// `PRINT` on `/query`: the topic's records as text lines, streamed.
async fn print(
    api: &Api,
    text: &str,
    topic: &str,
    from_beginning: bool,
    interval: Option<u64>,
    limit: Option<u64>,
) -> Response {
    match api
        .engine
        .print(topic, from_beginning, interval, limit)
        .await
    {
        Ok(rx) => {
            let lines = futures_util::stream::unfold(rx, |mut rx| async move {
                let line = rx.recv().await?;
                Some((Ok::<_, std::io::Error>(Bytes::from(line + "\n")), rx))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from_stream(lines))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Err(e) => statement_error(&e, text, vec![]),
    }
}

async fn query_stream(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let (text, session) = match statement_request(&body, "sql", "properties") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let text = text.as_str();
    let json_array = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let (plan, rows, id) = match run_select(&api, text, &session).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (names, types) = columns(&plan);
    let header = json!({"queryId": id, "columnNames": names, "columnTypes": types}).to_string();
    let content_type = if json_array {
        "application/json"
    } else {
        DELIMITED
    };
    let body: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>> = match rows {
        Err(rows) => {
            let text = if json_array {
                let mut parts = vec![header];
                parts.extend(rows.iter().map(|r| row_json(r)));
                format!("[{}]", parts.join(","))
            } else {
                let mut s = header + "\n";
                for r in &rows {
                    s.push_str(&row_json(r));
                    s.push('\n');
                }
                s
            };
            // One body with a length: written in one piece, and the
            // client knows it has everything without a final chunk.
            return Response::builder()
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(text))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Ok(stream) => {
            let first = if json_array {
                format!("[{header}")
            } else {
                header + "\n"
            };
            let head = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
            let limit = plan.limit;
            let mut n = 0u64;
            let rows = stream.map(move |r| {
                n += 1;
                let row = row_json(&r);
                let done = limit.is_some_and(|l| n >= l);
                Ok(Bytes::from(match (json_array, done) {
                    (true, true) => format!(",{row}]"),
                    (true, false) => format!(",{row}"),
                    (false, _) => row + "\n",
                }))
            });
            head.chain(rows).boxed()
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn close_query(State(api): State<Api>, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let id = req["queryId"].as_str().unwrap_or_default();
    match api.push.lock().await.remove(id) {
        Some(stop) => {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            StatusCode::OK.into_response()
        }
        None => generic_error(
            StatusCode::BAD_REQUEST,
            40004,
            &format!("No query with id {id}"),
        ),
    }
}

/// Body: a JSON object `{"target": "S"}`, then one JSON object a row;
/// answers one `{"status":"ok","seq":N}` (or an error) a row.
async fn inserts_stream(State(api): State<Api>, body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    // Rows stay text until the target's columns say which numbers are
    // DECIMALs, read from their digits.
    let mut objects: Vec<std::result::Result<&RawValue, String>> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk);
    }
    let mut de = serde_json::Deserializer::from_slice(&buf).into_iter::<&RawValue>();
    for v in de.by_ref() {
        match v {
            Ok(v) => objects.push(Ok(v)),
            Err(e) => {
                objects.push(Err(format!("Invalid JSON: {e}")));
                break;
            }
        }
    }
    let Some(first) = objects.first() else {
        return generic_error(StatusCode::BAD_REQUEST, 40000, "No target given");
    };
    let first: J = first
        .as_ref()
        .ok()
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(J::Null);
    let Some(target) = first["target"].as_str() else {
        return generic_error(
            StatusCode::BAD_REQUEST,
            40000,
            "The first object must be {\"target\": \"STREAM\"}",
        );
    };
    let src = match api.engine.source(&target.to_ascii_uppercase()).await {
        Ok(s) => s,
        Err(e) => return generic_error(StatusCode::BAD_REQUEST, 40001, &e.to_string()),
    };
    let row_type = SqlType::Struct(src.columns().cloned().collect());
    let mut out = String::new();
    for (seq, row) in objects.iter().skip(1).enumerate() {
        let row = match row {
            Ok(raw) => crate::json::exact_tree(raw.get(), &row_type)
                .unwrap_or_else(|e| J::String(format!("Invalid JSON: {e}"))),
            Err(e) => J::String(e.clone()),
        };
        let result = match &row {
            J::Object(o) => {
                let mut values = BTreeMap::new();
                let mut bad = None;
                for (name, ty) in src.columns() {
                    let v = o
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v);
                    match v.map(|v| crate::format::from_json(v, ty)) {
                        Some(Ok(v)) => {
                            values.insert(name.clone(), v);
                        }
                        Some(Err(e)) => bad = Some(e),
                        None => {}
                    }
                }
                match bad {
                    Some(e) => Err(e),
                    None => api.engine.insert_row(&src, &values, None).await,
                }
            }
            J::String(e) => Err(SqlError::invalid(e.clone())),
            _ => Err(SqlError::invalid("each row must be a JSON object")),
        };
        out.push_str(
            &match result {
                Ok(()) => json!({"status": "ok", "seq": seq}),
                Err(e) => json!({"status": "error", "seq": seq, "error_code": 40000, "message": e.to_string()}),
            }
            .to_string(),
        );
        out.push('\n');
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

async fn info(State(api): State<Api>) -> Response {
    Json(json!({
        "KsqlServerInfo": {
            "version": concat!(env!("CARGO_PKG_VERSION"), "-weir"),
            "kafkaClusterId": api.engine.cluster_id(),
            "ksqlServiceId": api.engine.config.service_id,
            "serverStatus": "RUNNING",
        }
    }))
    .into_response()
}

async fn healthcheck(State(api): State<Api>) -> Response {
    let kafka = tokio::task::spawn_blocking({
        let settings = api.engine.kafka().clone();
        move || {
            crate::runtime::Admin::new(&settings)
                .and_then(|a| a.topics())
                .is_ok()
        }
    })
    .await
    .unwrap_or(false);
    let body = json!({
        "isHealthy": kafka,
        "details": {
            "metastore": {"isHealthy": true},
            "kafka": {"isHealthy": kafka},
            "commandRunner": {"isHealthy": true},
        },
        "serverState": "READY",
    });
    json_response(
        if kafka {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        body,
    )
}

async fn status(State(api): State<Api>, Path(command_id): Path<String>) -> Response {
    match api.engine.status(&command_id).await {
        Some(message) => Json(json!({"status": "SUCCESS", "message": message})).into_response(),
        None => generic_error(
            StatusCode::NOT_FOUND,
            40400,
            &format!("Command not found: {command_id}"),
        ),
    }
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        engine.set_listener(addr);
    }
    // Without Nagle's algorithm: streamed rows and a response's pieces go
    // out at once instead of after the client's delayed ACK.
    let listener = listener.tap_io(|s| {
        let _ = s.set_nodelay(true);
    });
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}

//! Kafka Connect's REST API: same paths, shapes and status codes. Reads are
//! answered from this worker's view of the internal topics; changes are
//! made by the group's leader, to which a follower forwards them. Errors
//! are `{"error_code": <HTTP status>, "message": ...}`.

// Helpers fail with the response to send, as handlers do.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use crate::config::{config_infos, config_key_info};
use crate::connector::Props;
use crate::converter::CONVERTER_CLASSES;
use crate::error::ConnectError;
use crate::herder::{Change, Shared};
use crate::json::Json;
use crate::plugins;
use crate::storage::{Status, TargetState};

/// The state the routes share.
#[derive(Debug, Clone)]
pub struct Api {
    pub shared: Arc<Shared>,
    /// The Kafka cluster id, for `GET /`.
    pub cluster_id: String,
    /// Whether the worker finished starting (`GET /health`).
    pub ready: tokio::sync::watch::Receiver<bool>,
}

const FORWARDED: &str = "x-weir-forwarded";

/// The router of the Connect REST API.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/connectors", get(list_connectors).post(create_connector))
        .route(
            "/connectors/{c}",
            get(connector_info).delete(delete_connector),
        )
        .route(
            "/connectors/{c}/config",
            get(connector_config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{c}/status", get(connector_status))
        .route("/connectors/{c}/tasks", get(connector_tasks))
        .route("/connectors/{c}/tasks/{t}/status", get(task_status))
        .route("/connectors/{c}/tasks/{t}/restart", post(restart_task))
        .route("/connectors/{c}/restart", post(restart_connector))
        .route("/connectors/{c}/{action}", put(target_state))
        .route(
            "/connectors/{c}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .route("/connectors/{c}/topics", get(topics))
        .route("/connectors/{c}/topics/reset", put(reset_topics))
        .route("/connector-plugins", get(list_plugins))
        .route("/connector-plugins/{p}/config", get(plugin_config))
        .route("/connector-plugins/{p}/config/validate", put(validate))
        .route("/admin/loggers", get(list_loggers))
        .route("/admin/loggers/{l}", get(get_logger).put(set_logger))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(api)
}

fn json(status: StatusCode, body: Json) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_text(),
    )
        .into_response()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        code,
        Json::obj([
            ("error_code", Json::Int(i64::from(status))),
            ("message", Json::str(message)),
        ]),
    )
}

fn from_error(e: &ConnectError) -> Response {
    error(e.http_status(), e.to_string())
}

async fn not_found() -> Response {
    error(404, "HTTP 404 Not Found")
}

/// Weir's addition: the worker's metrics in Prometheus's text format.
async fn metrics(State(api): State<Api>) -> Response {
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        api.shared.metrics.render(),
    )
        .into_response()
}

async fn root(State(api): State<Api>) -> Response {
    json(
        StatusCode::OK,
        Json::obj([
            ("version", Json::str(crate::KAFKA_VERSION)),
            (
                "commit",
                Json::str(concat!("weir-", env!("CARGO_PKG_VERSION"))),
            ),
            ("kafka_cluster_id", Json::str(api.cluster_id.clone())),
        ]),
    )
}

async fn health(State(api): State<Api>) -> Response {
    if *api.ready.borrow() {
        json(
            StatusCode::OK,
            Json::obj([
                ("status", Json::str("healthy")),
                (
                    "message",
                    Json::str("Worker has completed startup and is ready to handle requests."),
                ),
            ]),
        )
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            Json::obj([
                ("status", Json::str("starting")),
                ("message", Json::str("Worker is still starting up.")),
            ]),
        )
    }
}

fn props_json(p: &Props) -> Json {
    Json::Obj(
        p.iter()
            .map(|(k, v)| (k.clone(), Json::str(v.clone())))
            .collect(),
    )
}

fn connector_type(config: &Props) -> &'static str {
    config
        .get("connector.class")
        .and_then(|c| plugins::find(c))
        .map_or("unknown", |p| p.kind.name())
}

/// `ConnectorInfo`: name, config, tasks, type.
fn info(shared: &Shared, name: &str) -> Option<Json> {
    let c = shared.cluster();
    let config = c.connectors.get(name)?;
    let tasks = (0..c.tasks.get(name).map_or(0, Vec::len))
        .map(|i| {
            Json::obj([
                ("connector", Json::str(name)),
                ("task", Json::Int(i as i64)),
            ])
        })
        .collect();
    Some(Json::obj([
        ("name", Json::str(name)),
        ("config", props_json(config)),
        ("tasks", Json::Arr(tasks)),
        ("type", Json::str(connector_type(config))),
    ]))
}

/// The version of the plugin a connector config names (Kafka 4 reports it
/// in statuses).
fn plugin_version(config: Option<&Props>) -> Option<&'static str> {
    config
        .and_then(|c| c.get("connector.class"))
        .and_then(|c| plugins::find(c))
        .map(|p| p.version)
}

fn state_json(status: Option<Status>, version: Option<&'static str>) -> Vec<(String, Json)> {
    let st = status.unwrap_or(Status {
        state: "UNASSIGNED".into(),
        trace: None,
        worker_id: String::new(),
        generation: -1,
    });
    let mut out = vec![
        ("state".to_string(), Json::str(st.state)),
        ("worker_id".to_string(), Json::str(st.worker_id)),
    ];
    if let Some(t) = st.trace {
        out.push(("trace".to_string(), Json::str(t)));
    }
    if let Some(v) = version {
        out.push(("version".to_string(), Json::str(v)));
    }
    out
}

/// `ConnectorStateInfo`.
fn status(shared: &Shared, name: &str) -> Option<Json> {
    let (config, n) = {
        let c = shared.cluster();
        (
            c.connectors.get(name)?.clone(),
            c.tasks.get(name).map_or(0, Vec::len),
        )
    };
    let version = plugin_version(Some(&config));
    let tasks = (0..n)
        .map(|i| {
            let mut pairs = vec![("id".to_string(), Json::Int(i as i64))];
            pairs.extend(state_json(
                shared.status(&format!("status-task-{name}-{i}")),
                version,
            ));
            Json::Obj(pairs)
        })
        .collect();
    Some(Json::obj([
        ("name", Json::str(name)),
        (
            "connector",
            Json::Obj(state_json(
                shared.status(&format!("status-connector-{name}")),
                version,
            )),
        ),
        ("tasks", Json::Arr(tasks)),
        ("type", Json::str(connector_type(&config))),
    ]))
}

fn missing(name: &str) -> Response {
    error(404, format!("Connector {name} not found"))
}

async fn list_connectors(State(api): State<Api>, RawQuery(q): RawQuery) -> Response {
    let names: Vec<String> = api.shared.cluster().connectors.keys().cloned().collect();
    let expand: Vec<String> = q
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("expand="))
        .map(str::to_string)
        .collect();
    if expand.is_empty() {
        return json(
            StatusCode::OK,
            Json::Arr(names.into_iter().map(Json::Str).collect()),
        );
    }
    let mut out = Vec::new();
    for n in names {
        let mut e = Vec::new();
        for x in &expand {
            match x.as_str() {
                "status" => {
                    if let Some(s) = status(&api.shared, &n) {
                        e.push(("status".to_string(), s));
                    }
                }
                "info" => {
                    if let Some(i) = info(&api.shared, &n) {
                        e.push(("info".to_string(), i));
                    }
                }
                _ => {}
            }
        }
        out.push((n, Json::Obj(e)));
    }
    json(StatusCode::OK, Json::Obj(out))
}

/// Sends a change to the leader: here when this worker leads, else over
/// HTTP to the leader's URL (once; a forwarded request that finds no
/// leader here answers 409).
async fn submit(
    api: &Api,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
    change: Change,
) -> Result<bool, Response> {
    let shared = &api.shared;
    if shared.is_leader.load(Ordering::SeqCst) || matches!(change, Change::RestartTask { .. }) {
        return shared.submit(change).await.map_err(|e| from_error(&e));
    }
    let leader = shared
        .leader_url
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(leader) = leader.filter(|_| !headers.contains_key(FORWARDED)) else {
        return Err(error(
            409,
            "Cannot complete request because of a conflicting operation (e.g. worker rebalance)",
        ));
    };
    Err(forward(&leader, method, uri, body).await)
}

async fn forward(base: &str, method: &Method, uri: &Uri, body: &Bytes) -> Response {
    let url = format!(
        "{}{}",
        base.trim_end_matches('/'),
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let body = (!body.is_empty()).then(|| body.to_vec());
    match crate::http::request(
        method.as_str(),
        &url,
        body,
        &[(FORWARDED, "true".to_string())],
        Duration::from_secs(90),
    )
    .await
    {
        Ok(r) => (
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", "application/json")],
            r.body,
        )
            .into_response(),
        Err(e) => error(500, format!("Error trying to forward REST request: {e}")),
    }
}

fn parse_body(body: &Bytes) -> Result<serde_json::Value, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(400, format!("Cannot deserialize the request body: {e}")))
}

fn to_props(v: &serde_json::Value) -> Result<Props, Response> {
    let obj = v
        .as_object()
        .ok_or_else(|| error(400, "Connector configuration must be a JSON object"))?;
    Ok(obj
        .iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k.clone(), s.clone())),
            serde_json::Value::Null => None,
            other => Some((k.clone(), other.to_string())),
        })
        .collect())
}

/// Kafka's check before a connector config is accepted, the worker's
/// client override policy included.
fn check_config(api: &Api, name: &str, config: &mut Props) -> Result<(), Response> {
    if name.trim().is_empty() {
        return Err(error(400, "Connector name cannot be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(error(
            400,
            format!("Connector name {name} cannot contain ISO control characters"),
        ));
    }
    match config.get("name") {
        Some(n) if n != name => {
            return Err(error(
                400,
                "Connector name configuration (name) doesn't match connector name in the URL",
            ))
        }
        _ => {
            config.insert("name".into(), name.to_string());
        }
    }
    let class = config.get("connector.class").cloned().unwrap_or_default();
    let Some(plugin) = plugins::find(&class) else {
        return Err(error(
            400,
            if class.is_empty() {
                "Connector config {} contains no connector type"
                    .replace("{}", &format!("{config:?}"))
            } else {
                plugins::unknown_class_message(&class)
            },
        ));
    };
    let (_, values) = plugins::validate(&plugin, config);
    let mut errors: Vec<String> = values
        .iter()
        .flat_map(|v| {
            v.errors
                .iter()
                .map(move |e| format!("{}: {e}", v.full_name()))
        })
        .collect();
    let sink = plugin.kind == crate::connector::ConnectorType::Sink;
    for (key, _, error) in api.shared.worker.override_policy.check(config, sink) {
        if let Some(e) = error {
            errors.push(format!("{key}: {e}"));
        }
    }
    if !errors.is_empty() {
        return Err(error(
            400,
            format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
                errors.len(),
                errors.join("\n")
            ),
        ));
    }
    Ok(())
}

async fn create_connector(
    State(api): State<Api>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = v.get("name").and_then(|n| n.as_str()).map(str::to_string) else {
        return error(400, "Connector name cannot be empty");
    };
    let mut config = match to_props(v.get("config").unwrap_or(&serde_json::Value::Null)) {
        Ok(c) => c,
        Err(_) => return error(400, "Connector configuration must be a JSON object"),
    };
    let initial_state = match v.get("initial_state").and_then(|s| s.as_str()) {
        None => None,
        Some("RUNNING") => Some(TargetState::Started),
        Some("PAUSED") => Some(TargetState::Paused),
        Some("STOPPED") => Some(TargetState::Stopped),
        Some(other) => {
            return error(
                400,
                format!("Invalid initial state {other}: must be one of RUNNING, PAUSED, STOPPED"),
            )
        }
    };
    if let Err(r) = check_config(&api, &name, &mut config) {
        return r;
    }
    let change = Change::PutConnector {
        name: name.clone(),
        config,
        create_only: true,
        initial_state,
    };
    match submit(&api, &headers, &method, &uri, &body, change).await {
        Ok(_) => match info(&api.shared, &name) {
            Some(i) => json(StatusCode::CREATED, i),
            None => missing(&name),
        },
        Err(r) => r,
    }
}

async fn connector_info(State(api): State<Api>, Path(c): Path<String>) -> Response {
    info(&api.shared, &c).map_or_else(|| missing(&c), |i| json(StatusCode::OK, i))
}

async fn delete_connector(
    State(api): State<Api>,
    Path(c): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let change = Change::DeleteConnector { name: c };
    match submit(&api, &headers, &method, &uri, &Bytes::new(), change).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn connector_config(State(api): State<Api>, Path(c): Path<String>) -> Response {
    let config = api.shared.cluster().connectors.get(&c).cloned();
    config.map_or_else(|| missing(&c), |p| json(StatusCode::OK, props_json(&p)))
}

async fn put_config(
    State(api): State<Api>,
    Path(c): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut config = match parse_body(&body).and_then(|v| to_props(&v)) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = check_config(&api, &c, &mut config) {
        return r;
    }
    let change = Change::PutConnector {
        name: c.clone(),
        config,
        create_only: false,
        initial_state: None,
    };
    match submit(&api, &headers, &method, &uri, &body, change).await {
        Ok(created) => match info(&api.shared, &c) {
            Some(i) => json(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                i,
            ),
            None => missing(&c),
        },
        Err(r) => r,
    }
}

async fn patch_config(
    State(api): State<Api>,
    Path(c): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let patch = match parse_body(&body) {
        Ok(serde_json::Value::Object(o)) => o,
        Ok(_) => return error(400, "Connector configuration must be a JSON object"),
        Err(r) => return r,
    };
    let Some(mut config) = api.shared.cluster().connectors.get(&c).cloned() else {
        return missing(&c);
    };
    for (k, v) in patch {
        match v {
            serde_json::Value::Null => {
                config.remove(&k);
            }
            serde_json::Value::String(s) => {
                config.insert(k, s);
            }
            other => {
                config.insert(k, other.to_string());
            }
        }
    }
    if let Err(r) = check_config(&api, &c, &mut config) {
        return r;
    }
    let change = Change::PutConnector {
        name: c.clone(),
        config,
        create_only: false,
        initial_state: None,
    };
    match submit(&api, &headers, &method, &uri, &body, change).await {
        Ok(_) => info(&api.shared, &c).map_or_else(|| missing(&c), |i| json(StatusCode::OK, i)),
        Err(r) => r,
    }
}

async fn connector_status(State(api): State<Api>, Path(c): Path<String>) -> Response {
    status(&api.shared, &c).map_or_else(|| missing(&c), |s| json(StatusCode::OK, s))
}

async fn connector_tasks(State(api): State<Api>, Path(c): Path<String>) -> Response {
    let cluster = api.shared.cluster();
    if !cluster.connectors.contains_key(&c) {
        drop(cluster);
        return missing(&c);
    }
    let tasks = cluster
        .tasks
        .get(&c)
        .map(|ts| {
            ts.iter()
                .enumerate()
                .map(|(i, p)| {
                    Json::obj([
                        (
                            "id",
                            Json::obj([
                                ("connector", Json::str(c.clone())),
                                ("task", Json::Int(i as i64)),
                            ]),
                        ),
                        ("config", props_json(p)),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    json(StatusCode::OK, Json::Arr(tasks))
}

async fn task_status(State(api): State<Api>, Path((c, t)): Path<(String, i32)>) -> Response {
    let exists = api
        .shared
        .cluster()
        .tasks
        .get(&c)
        .is_some_and(|ts| t >= 0 && (t as usize) < ts.len());
    if !exists {
        return error(404, format!("No status found for task {c}-{t}"));
    }
    let version = plugin_version(api.shared.cluster().connectors.get(&c));
    let mut pairs = vec![("id".to_string(), Json::Int(i64::from(t)))];
    pairs.extend(state_json(
        api.shared.status(&format!("status-task-{c}-{t}")),
        version,
    ));
    json(StatusCode::OK, Json::Obj(pairs))
}

async fn restart_task(
    State(api): State<Api>,
    Path((c, t)): Path<(String, i32)>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let runs_here = api
        .shared
        .local
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&crate::protocol::Work::Task(c.clone(), t));
    if !runs_here {
        // Forward to the worker the status names, as Kafka forwards to
        // the task's owner.
        let owner = api.shared.status(&format!("status-task-{c}-{t}"));
        return match owner.filter(|_| !headers.contains_key(FORWARDED)) {
            Some(o) if !o.worker_id.is_empty() => {
                forward(
                    &format!("http://{}", o.worker_id),
                    &method,
                    &uri,
                    &Bytes::new(),
                )
                .await
            }
            _ => error(404, format!("Task {c}-{t} not found")),
        };
    }
    match api
        .shared
        .submit(Change::RestartTask { name: c, task: t })
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_error(&e),
    }
}

#[derive(Debug, serde::Deserialize)]
struct RestartQuery {
    #[serde(default, rename = "includeTasks")]
    include_tasks: Option<String>,
    #[serde(default, rename = "onlyFailed")]
    only_failed: Option<String>,
}

async fn restart_connector(
    State(api): State<Api>,
    Path(c): Path<String>,
    Query(q): Query<RestartQuery>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let flag = |v: &Option<String>| v.as_deref() == Some("true");
    let (include_tasks, only_failed) = (flag(&q.include_tasks), flag(&q.only_failed));
    let change = Change::Restart {
        name: c.clone(),
        include_tasks,
        only_failed,
    };
    match submit(&api, &headers, &method, &uri, &Bytes::new(), change).await {
        Ok(_) if !include_tasks && !only_failed => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => {
            // Kafka answers 202 with the states as they will be: what is
            // restarted shows RESTARTING.
            let Some(Json::Obj(mut s)) = status(&api.shared, &c) else {
                return missing(&c);
            };
            for (k, v) in s.iter_mut() {
                match (k.as_str(), v) {
                    ("connector", Json::Obj(pairs)) => restarting(pairs, only_failed),
                    ("tasks", Json::Arr(tasks)) => {
                        for t in tasks {
                            if let Json::Obj(pairs) = t {
                                restarting(pairs, only_failed);
                            }
                        }
                    }
                    _ => {}
                }
            }
            json(StatusCode::ACCEPTED, Json::Obj(s))
        }
        Err(r) => r,
    }
}

fn restarting(pairs: &mut [(String, Json)], only_failed: bool) {
    let failed = pairs
        .iter()
        .any(|(k, v)| k == "state" && *v == Json::str("FAILED"));
    if !only_failed || failed {
        for (k, v) in pairs.iter_mut() {
            if k == "state" {
                *v = Json::str("RESTARTING");
            }
        }
    }
}

/// `PUT /connectors/{c}/pause|resume|stop`.
async fn target_state(
    State(api): State<Api>,
    Path((c, action)): Path<(String, String)>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let (state, ok) = match action.as_str() {
        "pause" => (TargetState::Paused, StatusCode::ACCEPTED),
        "resume" => (TargetState::Started, StatusCode::ACCEPTED),
        "stop" => (TargetState::Stopped, StatusCode::NO_CONTENT),
        _ => return not_found().await,
    };
    let change = Change::SetTarget { name: c, state };
    match submit(&api, &headers, &method, &uri, &Bytes::new(), change).await {
        Ok(_) => ok.into_response(),
        Err(r) => r,
    }
}

/// `GET /connectors/{c}/offsets` (KIP-875), answered by any worker.
async fn offsets(State(api): State<Api>, Path(c): Path<String>) -> Response {
    let Some(config) = api.shared.cluster().connectors.get(&c).cloned() else {
        return missing(&c);
    };
    match crate::offsets::list(&api.shared.worker, &c, &config).await {
        Ok(j) => json(StatusCode::OK, j),
        Err(e) => from_error(&e),
    }
}

/// `PATCH /connectors/{c}/offsets`: made by the leader on a stopped
/// connector.
async fn alter_offsets(
    State(api): State<Api>,
    Path(c): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let offsets = match parse_body(&body)
        .and_then(|v| crate::offsets::parse_request(&v).map_err(|e| from_error(&e)))
    {
        Ok(o) => o,
        Err(r) => return r,
    };
    let change = Change::AlterOffsets {
        name: c,
        offsets: Some(offsets),
    };
    offsets_answer(
        submit(&api, &headers, &method, &uri, &body, change).await,
        false,
    )
}

/// `DELETE /connectors/{c}/offsets`.
async fn reset_offsets(
    State(api): State<Api>,
    Path(c): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let change = Change::AlterOffsets {
        name: c,
        offsets: None,
    };
    offsets_answer(
        submit(&api, &headers, &method, &uri, &Bytes::new(), change).await,
        true,
    )
}

fn offsets_answer(r: Result<bool, Response>, reset: bool) -> Response {
    match r {
        Ok(complete) => json(
            StatusCode::OK,
            Json::obj([(
                "message",
                Json::str(crate::offsets::message(complete, reset)),
            )]),
        ),
        Err(r) => r,
    }
}

fn logger_json(level: String, modified: Option<i64>) -> Json {
    Json::obj([
        ("level", Json::str(level)),
        ("last_modified", modified.map_or(Json::Null, Json::Int)),
    ])
}

/// `GET /admin/loggers`: every logger with a level set.
async fn list_loggers() -> Response {
    let all = crate::loggers::all()
        .into_iter()
        .map(|(name, (level, modified))| (name, logger_json(level, modified)))
        .collect();
    json(StatusCode::OK, Json::Obj(all))
}

async fn get_logger(Path(l): Path<String>) -> Response {
    match crate::loggers::level(&l) {
        Some((level, modified)) => json(StatusCode::OK, logger_json(level, modified)),
        None => error(404, format!("Logger {l} not found.")),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ScopeQuery {
    #[serde(default)]
    scope: Option<String>,
}

/// `PUT /admin/loggers/{l}?scope=worker|cluster` with `{"level": ...}`:
/// this worker's loggers (200, the loggers affected), or every worker's
/// through the config topic (204).
async fn set_logger(
    State(api): State<Api>,
    Path(l): Path<String>,
    Query(q): Query<ScopeQuery>,
    body: Bytes,
) -> Response {
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(level) = v.get("level").and_then(|l| l.as_str()).map(str::to_string) else {
        return error(
            400,
            "Desired 'level' parameter was not specified in request.",
        );
    };
    if !crate::loggers::is_level(&level) {
        return error(404, format!("invalid log level '{level}'."));
    }
    // Kafka takes an unknown scope as `worker`.
    if q.scope.as_deref().map(str::to_ascii_lowercase).as_deref() == Some("cluster") {
        return match api
            .shared
            .submit(Change::ClusterLogger {
                namespace: l,
                level,
            })
            .await
        {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => from_error(&e),
        };
    }
    match crate::loggers::set(&l, &level, crate::now_ms()) {
        Ok(affected) => json(
            StatusCode::OK,
            Json::Arr(affected.into_iter().map(Json::Str).collect()),
        ),
        Err(crate::loggers::SetError::InvalidLevel) => {
            error(404, format!("invalid log level '{level}'."))
        }
        Err(crate::loggers::SetError::Refused(e)) => error(500, e),
    }
}

async fn topics(State(api): State<Api>, Path(c): Path<String>) -> Response {
    if !api.shared.cluster().connectors.contains_key(&c) {
        return missing(&c);
    }
    let suffix = format!(":connector-{c}");
    let names: Vec<Json> = api
        .shared
        .statuses
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .filter_map(|k| k.strip_prefix("status-topic-")?.strip_suffix(&suffix))
        .map(Json::str)
        .collect();
    json(
        StatusCode::OK,
        Json::obj([(c.clone(), Json::obj([("topics", Json::Arr(names))]))]),
    )
}

async fn reset_topics(
    State(api): State<Api>,
    Path(c): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let change = Change::ResetTopics { name: c };
    match submit(&api, &headers, &method, &uri, &Bytes::new(), change).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, serde::Deserialize)]
struct PluginsQuery {
    #[serde(default, rename = "connectorsOnly")]
    connectors_only: Option<String>,
}

fn plugin_json(class: &str, kind: &str, version: Option<&str>) -> Json {
    let mut pairs = vec![
        ("class".to_string(), Json::str(class)),
        ("type".to_string(), Json::str(kind)),
    ];
    if let Some(v) = version {
        pairs.push(("version".to_string(), Json::str(v)));
    }
    Json::Obj(pairs)
}

async fn list_plugins(Query(q): Query<PluginsQuery>) -> Response {
    let mut out: Vec<Json> = plugins::PLUGINS
        .iter()
        .map(|p| plugin_json(p.class, p.kind.name(), Some(p.version)))
        .collect();
    if q.connectors_only.as_deref() == Some("false") {
        for c in CONVERTER_CLASSES {
            out.push(plugin_json(c, "converter", Some(crate::KAFKA_VERSION)));
        }
        for c in crate::transforms::TRANSFORM_CLASSES {
            out.push(plugin_json(c, "transformation", Some(crate::KAFKA_VERSION)));
        }
        for c in crate::transforms::PREDICATE_CLASSES {
            out.push(plugin_json(c, "predicate", Some(crate::KAFKA_VERSION)));
        }
    }
    json(StatusCode::OK, Json::Arr(out))
}

async fn plugin_config(Path(p): Path<String>) -> Response {
    let Some(plugin) = plugins::find(&p) else {
        return error(404, format!("Unknown plugin {p}."));
    };
    // The plugin's own configs, then the runtime's, as Kafka lists them.
    let mut keys = (plugin.config_def)().keys;
    keys.extend(plugins::common_keys(&plugin));
    json(
        StatusCode::OK,
        Json::Arr(keys.iter().map(config_key_info).collect()),
    )
}

async fn validate(State(api): State<Api>, Path(p): Path<String>, body: Bytes) -> Response {
    let config = match parse_body(&body).and_then(|v| to_props(&v)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let class = config.get("connector.class").cloned().unwrap_or_default();
    if class.is_empty() {
        return error(
            400,
            "Connector config {} contains no connector type".replace("{}", &format!("{config:?}")),
        );
    }
    let Some(plugin) = plugins::find(&p) else {
        return error(400, plugins::unknown_class_message(&p));
    };
    if !plugin.matches(&class) {
        return error(
            400,
            "Included connector type ".to_string() + &class + " does not match request type " + &p,
        );
    }
    let (groups, values) = plugins::validate(&plugin, &config);
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    // Kafka names the result after `connector.class` as it was given.
    let mut infos = config_infos(class.trim(), &groups, &values);
    // The client overrides follow, as Kafka appends its policy's answers
    // (their definitions are the Kafka clients' own, which Weir does not
    // carry: null, as Kafka gives for a setting its client does not know).
    let sink = plugin.kind == crate::connector::ConnectorType::Sink;
    let overrides = api.shared.worker.override_policy.check(&config, sink);
    if let Json::Obj(fields) = &mut infos {
        for (k, v) in fields.iter_mut() {
            match (k.as_str(), v) {
                ("error_count", Json::Int(n)) => {
                    *n += overrides.iter().filter(|o| o.2.is_some()).count() as i64;
                }
                ("configs", Json::Arr(configs)) => {
                    for (key, value, error) in &overrides {
                        configs.push(Json::obj([
                            ("definition", Json::Null),
                            (
                                "value",
                                Json::obj([
                                    ("name", Json::str(key.clone())),
                                    ("value", Json::str(value.clone())),
                                    ("recommended_values", Json::Arr(Vec::new())),
                                    (
                                        "errors",
                                        Json::Arr(error.iter().cloned().map(Json::Str).collect()),
                                    ),
                                    ("visible", Json::Bool(true)),
                                ]),
                            ),
                        ]));
                    }
                }
                _ => {}
            }
        }
    }
    json(StatusCode::OK, infos)
}

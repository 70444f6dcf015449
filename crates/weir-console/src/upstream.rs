//! `/api/upstream/{service}/...`: the schema registry's, Connect's and the
//! SQL server's own REST APIs, forwarded as they are (with the caller's
//! credentials, so their authentication and ACLs apply), and streamed
//! back chunk by chunk so push queries arrive row by row.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Console;

/// The services the console forwards to: (name in the path, setting that
/// names its URL, what the pages call it).
pub(crate) const SERVICES: &[(&str, &str, &str)] = &[
    ("registry", "schema.registry.url", "The schema registry"),
    ("connect", "connect.url", "Kafka Connect"),
    ("sql", "sql.url", "The SQL server"),
];

/// Request headers passed on to the service.
const FORWARDED: &[header::HeaderName] =
    &[header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION];

fn unavailable(status: StatusCode, message: String) -> Response {
    (
        status,
        axum::Json(json!({"error_code": status.as_u16(), "message": message})),
    )
        .into_response()
}

/// `GET /api/services`: which services this console reaches, so pages can
/// say clearly when one is off.
pub(crate) async fn services(State(c): State<Arc<Console>>) -> axum::Json<serde_json::Value> {
    let map: serde_json::Map<String, serde_json::Value> = SERVICES
        .iter()
        .map(|(name, _, _)| (name.to_string(), json!(c.upstreams.contains_key(*name))))
        .collect();
    axum::Json(map.into())
}

/// Forwards one request to `service` and streams its answer back.
pub(crate) async fn forward(
    State(c): State<Arc<Console>>,
    Path((service, path)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((_, setting, what)) = SERVICES.iter().find(|(n, _, _)| *n == service) else {
        return unavailable(StatusCode::NOT_FOUND, format!("no service `{service}`"));
    };
    let Some(base) = c.upstreams.get(service.as_str()) else {
        return unavailable(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} is off: this console has no {setting}"),
        );
    };
    let mut url = format!("{}/{}", base.trim_end_matches('/'), path);
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    let mut req = c.http.request(method, &url);
    for name in FORWARDED {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v);
        }
    }
    if !body.is_empty() {
        req = req.body(body);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return unavailable(
                StatusCode::BAD_GATEWAY,
                format!("{what} at {base} cannot be reached: {e}"),
            )
        }
    };
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    // Chunk by chunk: a push query's rows as they come; dropping the
    // response (the browser stops) drops the connection to the service.
    let chunks = futures_util::stream::unfold(Some(resp), |state| async move {
        let mut resp = state?;
        match resp.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(resp))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    let mut out = Response::new(Body::from_stream(chunks));
    *out.status_mut() = status;
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    out
}

//! The pages, compiled into the binary: one HTML shell, a stylesheet and
//! JavaScript modules (no framework, no build step).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(path under /assets/, content type, body)`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/ui.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/chart.js"),
    ),
    (
        "pages/overview.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages/overview.js"),
    ),
    (
        "pages/topics.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages/topics.js"),
    ),
    (
        "pages/groups.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages/groups.js"),
    ),
    (
        "pages/schemas.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages/schemas.js"),
    ),
    (
        "pages/connect.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages/connect.js"),
    ),
    (
        "pages/sql.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages/sql.js"),
    ),
    (
        "pages/security.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages/security.js"),
    ),
];

/// `GET /`: the shell every page renders into.
pub(crate) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../assets/index.html"),
    )
        .into_response()
}

/// `GET /assets/{file}`.
pub(crate) async fn file(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, ty, body)) => (
            [
                (header::CONTENT_TYPE, *ty),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

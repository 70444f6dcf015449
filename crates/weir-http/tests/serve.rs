//! `weir_http::serve` on port 0, without any broker: authentication with
//! a PLAIN credentials file, the principal handed to handlers, open health
//! checks, audited refusals, and a graceful stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_auth::plain::PlainCredentials;
use weir_http::security::{AuthAudit, Refusal};
use weir_http::{Authenticated, HttpAuth, HttpSecurity};

#[derive(Debug, Default)]
struct Audit(Mutex<Vec<String>>);

impl AuthAudit for Audit {
    fn refused(&self, r: &Refusal<'_>) {
        let client = r.client.map(|c| c.ip().to_string()).unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {} {}", r.path, client, r.reason));
    }
}

/// One HTTP/1.1 request; returns the status and body.
async fn request(addr: std::net::SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    (status, body.to_string())
}

fn basic(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

async fn whoami(who: Authenticated) -> String {
    format!("{} {}", who.principal, who.method.unwrap_or("none"))
}

#[tokio::test]
async fn a_router_is_served_with_basic_authentication_and_no_broker() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice=secret\n").unwrap();
    let audit = Arc::new(Audit::default());
    let security = HttpSecurity {
        tls: None,
        auth: Arc::new(HttpAuth {
            basic: Some(Arc::new(PlainCredentials::open(&users).unwrap())),
            bearer: None,
            audit: Some(audit.clone()),
        }),
    };
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/health/live", get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        weir_http::serve(listener, router, &security, async {
            let _ = stopped.await;
        })
        .await
    });

    assert_eq!(request(addr, "/health/live", None).await.0, 200);
    assert_eq!(
        request(addr, "/whoami", Some(&basic("alice:secret"))).await,
        (200, "User:alice HTTP-BASIC".to_string())
    );
    assert_eq!(
        request(addr, "/whoami", Some(&basic("alice:wrong")))
            .await
            .0,
        401
    );
    assert_eq!(request(addr, "/whoami", None).await.0, 401);
    let refusals = audit.0.lock().unwrap().clone();
    assert_eq!(
        refusals,
        [
            "/whoami 127.0.0.1 invalid username or password",
            "/whoami 127.0.0.1 no credentials"
        ]
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn without_authentication_handlers_see_the_anonymous_principal() {
    let router = Router::new().route("/whoami", get(whoami));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        weir_http::serve(
            listener,
            router,
            &HttpSecurity::default(),
            std::future::pending(),
        )
        .await
    });
    assert_eq!(
        request(addr, "/whoami", None).await,
        (200, "User:ANONYMOUS none".to_string())
    );
    server.abort();
}

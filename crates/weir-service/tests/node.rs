//! The node's lifecycle: start order, reverse drain, failures, signals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use weir_auth::SecurityProtocol;
use weir_http::{HttpSecurity, MetricsRegistry};
use weir_service::{
    service_fn, Context, KafkaAccess, KafkaEndpoint, Node, Running, Service, ServiceError,
};

type Events = Arc<Mutex<Vec<String>>>;

fn note(events: &Events, e: impl Into<String>) {
    events.lock().unwrap().push(e.into());
}

fn seen(events: &Events) -> Vec<String> {
    events.lock().unwrap().clone()
}

/// How a test service behaves.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Starts, serves until told to stop, drains.
    Good,
    /// Fails to start.
    FailsToStart,
    /// Starts, then fails on its own.
    Crashes,
    /// Waits in `start` until told to stop, then gives up.
    SlowStart,
}

fn service(name: &'static str, kind: Kind, events: &Events) -> impl Service {
    let events = events.clone();
    service_fn(name, move |ctx: Context| async move {
        note(&events, format!("start {name}"));
        match kind {
            Kind::FailsToStart => return Err(ServiceError::start(name, "port eaten by a grue")),
            Kind::SlowStart => {
                ctx.shutdown().wait().await;
                note(&events, format!("gave up {name}"));
                return Err(ServiceError::start(name, "stopped while starting"));
            }
            Kind::Good | Kind::Crashes => {}
        }
        let shutdown = ctx.shutdown().clone();
        Ok(Running::new(async move {
            if kind == Kind::Crashes {
                tokio::time::sleep(Duration::from_millis(20)).await;
                note(&events, format!("crash {name}"));
                return Err(ServiceError::failed(name, "disk on fire"));
            }
            shutdown.wait().await;
            note(&events, format!("stop {name}"));
            // Draining takes a while; the next service must wait for it.
            tokio::time::sleep(Duration::from_millis(20)).await;
            note(&events, format!("drained {name}"));
            Ok(())
        }))
    })
}

fn node() -> Node {
    Node::new(HttpSecurity::default(), MetricsRegistry::default())
}

#[tokio::test]
async fn services_start_in_order_and_drain_in_reverse() {
    let events = Events::default();
    let mut n = node();
    n.add(service("log", Kind::Good, &events))
        .add(service("kafka", Kind::Good, &events))
        .add(service("connect", Kind::Good, &events));
    let signal = {
        let events = events.clone();
        async move {
            // Once everything has started.
            while !seen(&events).contains(&"start connect".to_string()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            note(&events, "signal");
        }
    };
    n.run(signal).await.unwrap();
    assert_eq!(
        seen(&events),
        [
            "start log",
            "start kafka",
            "start connect",
            "signal",
            "stop connect",
            "drained connect",
            "stop kafka",
            "drained kafka",
            "stop log",
            "drained log",
        ]
    );
}

#[tokio::test]
async fn a_failed_start_stops_the_started_ones_newest_first() {
    let events = Events::default();
    let mut n = node();
    n.add(service("log", Kind::Good, &events))
        .add(service("kafka", Kind::Good, &events))
        .add(service("registry", Kind::FailsToStart, &events))
        .add(service("connect", Kind::Good, &events));
    let err = n.run(std::future::pending()).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::Start { service, .. } if service == "registry"),
        "{err}"
    );
    assert_eq!(
        seen(&events),
        [
            "start log",
            "start kafka",
            "start registry",
            "stop kafka",
            "drained kafka",
            "stop log",
            "drained log",
        ]
    );
}

#[tokio::test]
async fn a_service_that_fails_while_running_stops_the_node() {
    let events = Events::default();
    let mut n = node();
    n.add(service("log", Kind::Good, &events))
        .add(service("sql", Kind::Crashes, &events))
        .add(service("connect", Kind::Good, &events));
    let err = tokio::time::timeout(Duration::from_secs(10), n.run(std::future::pending()))
        .await
        .expect("the node stops by itself")
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Failed { service, .. } if service == "sql"),
        "{err}"
    );
    let e = seen(&events);
    let at = |x: &str| e.iter().position(|y| y == x).unwrap();
    assert!(at("crash sql") < at("stop connect"));
    assert!(at("drained connect") < at("stop log"));
    assert_eq!(e.last().unwrap(), "drained log");
}

#[tokio::test]
async fn a_signal_during_start_stops_the_node_once_that_start_ends() {
    let events = Events::default();
    let mut n = node();
    n.add(service("log", Kind::Good, &events))
        .add(service("connect", Kind::SlowStart, &events))
        .add(service("rest", Kind::Good, &events));
    let signal = tokio::time::sleep(Duration::from_millis(30));
    let err = tokio::time::timeout(Duration::from_secs(10), n.run(signal))
        .await
        .expect("the node stops")
        .unwrap_err();
    assert!(matches!(err, ServiceError::Start { .. }), "{err}");
    assert_eq!(
        seen(&events),
        [
            "start log",
            "start connect",
            "gave up connect",
            "stop log",
            "drained log"
        ]
    );
}

#[tokio::test]
async fn readiness_holds_only_between_start_and_shutdown() {
    let observed = Arc::new(Mutex::new(Vec::new()));
    let mut n = node();
    let o = observed.clone();
    let (serving, signal) = oneshot::channel::<()>();
    n.add(service_fn("admin", move |ctx: Context| async move {
        let ready = ctx.node_ready();
        o.lock().unwrap().push(("starting", *ready.borrow()));
        let shutdown = ctx.shutdown().clone();
        Ok(Running::new(async move {
            let mut r = ready.clone();
            let _ = r.wait_for(|ready| *ready).await;
            o.lock().unwrap().push(("serving", true));
            let _ = serving.send(());
            shutdown.wait().await;
            o.lock().unwrap().push(("stopping", *ready.borrow()));
            Ok(())
        }))
    }));
    n.run(async {
        let _ = signal.await;
    })
    .await
    .unwrap();
    assert_eq!(
        *observed.lock().unwrap(),
        [("starting", false), ("serving", true), ("stopping", false)]
    );
}

#[tokio::test]
async fn the_node_is_ready_once_the_services_before_the_mark_started() {
    let ready_seen = Arc::new(Mutex::new(Vec::new()));
    let mut n = node();
    for name in ["log", "kafka", "connect"] {
        let r = ready_seen.clone();
        n.add(service_fn(name, move |ctx: Context| async move {
            r.lock().unwrap().push((name, *ctx.node_ready().borrow()));
            Ok(Running::until(ctx.shutdown().clone(), || Ok(())))
        }));
        if name == "kafka" {
            n.ready_here();
        }
    }
    n.run(async {}).await.unwrap();
    assert_eq!(
        *ready_seen.lock().unwrap(),
        [("log", false), ("kafka", false), ("connect", true)]
    );
}

#[tokio::test]
async fn services_get_the_kafka_client_settings_of_the_node() {
    let mut n = node();
    n.set_kafka(KafkaAccess::node(vec![KafkaEndpoint {
        listener: "PLAINTEXT".into(),
        protocol: SecurityProtocol::Plaintext,
        address: "127.0.0.1:19092".parse().unwrap(),
    }]));
    let got = Arc::new(Mutex::new(None));
    let g = got.clone();
    n.add(service_fn("connect", move |ctx: Context| async move {
        *g.lock().unwrap() = Some(ctx.kafka_client());
        Ok(Running::until(ctx.shutdown().clone(), || Ok(())))
    }));
    // Everything has started once the signal is first polled.
    n.run(async {}).await.unwrap();
    let client = got.lock().unwrap().take().unwrap().unwrap();
    assert_eq!(client.bootstrap_servers(), "127.0.0.1:19092");
}

#[tokio::test]
async fn a_busy_port_is_a_bind_error_naming_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = weir_service::bind(&addr, "connect").await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&addr) && msg.contains("connect"), "{msg}");
}

//! `weir bench` against a real `weir serve`: the JSON result counts what
//! was actually sent, acknowledged and read back.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.env("WEIR_REGISTRY_LISTEN", "127.0.0.1:0");
    c.env("WEIR_ADMIN_LISTEN", "127.0.0.1:0");
    c.env("WEIR_SQL_LISTEN", "off");
    c
}

/// A broker on a free port; killed on drop.
struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let mut child = weir()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("WEIR_CONNECT_LISTEN", "off")
        .env("WEIR_REST_LISTEN", "off")
        .env("WEIR_CONSOLE_LISTEN", "off")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addr = None;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on ").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    // Keep draining stderr so the broker never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Broker {
        child,
        addr: addr.expect("broker did not report its listener"),
        _dir: dir,
    }
}

fn bench(broker: &Broker, args: &[&str]) -> Value {
    let out = weir()
        .arg("bench")
        .args(args)
        .args(["--bootstrap", &broker.addr, "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn produce_consume_and_e2e_count_every_record() {
    let broker = start_broker();
    let common = [
        "--topic",
        "bench-t",
        "--partitions",
        "3",
        "--record-size",
        "200",
    ];

    let p = bench(
        &broker,
        &[
            &common[..],
            &["produce", "--records", "3000", "--producers", "2"],
        ]
        .concat(),
    );
    assert_eq!(p["mode"], "produce");
    assert_eq!(p["partitions"], 3);
    assert_eq!(p["produce"]["records"], 3000, "{p}");
    assert_eq!(p["produce"]["bytes"], 3000 * 200, "{p}");
    assert_eq!(p["produce"]["errors"], 0);
    assert!(p["produce"]["mb_per_sec"].as_f64().unwrap() > 0.0);
    assert!(p["ack_latency"]["count"].as_u64() == Some(3000), "{p}");
    assert!(p["consume"].is_null());

    // The whole backlog, split over two consumers.
    let c = bench(
        &broker,
        &[&common[..], &["consume", "--consumers", "2"]].concat(),
    );
    assert_eq!(c["consume"]["records"], 3000, "{c}");
    assert_eq!(c["consume"]["bytes"], 3000 * 200, "{c}");
    assert!(c["produce"].is_null());

    // At most --records.
    let c = bench(
        &broker,
        &[&common[..], &["consume", "--records", "1000"]].concat(),
    );
    assert_eq!(c["consume"]["records"], 1000, "{c}");

    // A fixed rate: every acknowledged record arrives, with a latency.
    let e = bench(
        &broker,
        &[
            &common[..],
            &["e2e", "--records", "1000", "--rate", "2000", "--acks", "1"],
        ]
        .concat(),
    );
    assert_eq!(e["produce"]["records"], 1000, "{e}");
    assert_eq!(e["consume"]["records"], 1000, "{e}");
    let lat = &e["e2e_latency"];
    assert_eq!(lat["count"], 1000, "{e}");
    let (p50, p99, max) = (
        lat["p50_ms"].as_f64().unwrap(),
        lat["p99_ms"].as_f64().unwrap(),
        lat["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{lat}");
    // 1000 records at 2000/s take about half a second to send.
    assert!(e["produce"]["seconds"].as_f64().unwrap() >= 0.45, "{e}");
}

#[test]
fn an_unreachable_broker_fails_with_a_message() {
    let out = weir()
        .args([
            "bench",
            "produce",
            "--bootstrap",
            "127.0.0.1:1",
            "--timeout",
            "2",
            "--records",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error:"), "{stderr}");
}

/// CPU seconds (user + system) a finished, not yet reaped child used,
/// from its zombie's /proc entry.
#[cfg(target_os = "linux")]
fn cpu_seconds_at_exit(child: &mut Child) -> f64 {
    let stat = format!("/proc/{}/stat", child.id());
    loop {
        let s = std::fs::read_to_string(&stat).unwrap();
        // The fields after the command name, which is in parentheses.
        let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
        if f[0] == "Z" {
            let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
            // USER_HZ is 100 on every Linux this runs on.
            return ticks / 100.0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A paced producer waits for each record's turn asleep: the client's
/// CPU is the broker's and its own consumer's to share, and a client that
/// spins between records measures its own contention for it.
#[cfg(target_os = "linux")]
#[test]
fn a_paced_producer_sleeps_between_records() {
    let broker = start_broker();
    let mut child = weir()
        .args(["bench", "produce", "--topic", "paced", "--partitions", "1"])
        .args([
            "--record-size",
            "100",
            "--records",
            "6000",
            "--rate",
            "2000",
        ])
        .args(["--acks", "1", "--json", "--bootstrap", &broker.addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cpu = cpu_seconds_at_exit(&mut child);
    assert!(child.wait().unwrap().success());
    // Three seconds of pacing; a loop that polls instead of sleeping uses
    // all of them, a sleeping one a small part.
    assert!(cpu < 1.0, "the client used {cpu:.2} CPU seconds in 3 s");
}

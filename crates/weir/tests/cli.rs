//! The `weir` binary: config errors exit 2 naming the key; SIGTERM stops
//! cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    // Any free ports for the schema registry and the admin listener, so
    // tests never need 8081 or 9644.
    c.env("WEIR_REGISTRY_LISTEN", "127.0.0.1:0");
    c.env("WEIR_ADMIN_LISTEN", "127.0.0.1:0");
    c.env("WEIR_SQL_LISTEN", "off");
    c
}

fn fails_with_2_naming(args: &[&str], key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = weir()
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env_remove("WEIR_LISTEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(key),
        "{args:?}: stderr should name `{key}`: {stderr}"
    );
}

#[test]
fn bad_configs_exit_2_and_name_the_key() {
    fails_with_2_naming(&["--set", "num.partitions=0"], "num.partitions");
    fails_with_2_naming(&["--set", "no.such.setting=1"], "no.such.setting");
    fails_with_2_naming(&["--set", "log.retention.ms=soon"], "log.retention.ms");
    fails_with_2_naming(&["--listen", "nonsense"], "listen");
    fails_with_2_naming(&["--registry-listen", "nonsense"], "registry-listen");
    fails_with_2_naming(
        &["--advertised-listener", "host:99999"],
        "advertised-listener",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nbogus = 1\n").unwrap();
    fails_with_2_naming(&["--config", file.to_str().unwrap()], "bogus");
    std::fs::write(
        &file,
        "[broker]\n\"auto.create.topics.enable\" = \"maybe\"\n",
    )
    .unwrap();
    fails_with_2_naming(
        &["--config", file.to_str().unwrap()],
        "auto.create.topics.enable",
    );
    std::fs::write(&file, "listen = [\n").unwrap();
    fails_with_2_naming(&["--config", file.to_str().unwrap()], "--config");
    // The file's registry-listen is checked too (the environment would win).
    std::fs::write(&file, "registry-listen = \"nope\"\n").unwrap();
    let out = weir()
        .args(["serve", "--config", file.to_str().unwrap()])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("WEIR_REGISTRY_LISTEN")
        .env_remove("WEIR_LISTEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("registry-listen"), "{stderr}");
}

#[test]
fn environment_and_file_settings_apply_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\n[broker]\n\"num.partitions\" = 2\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    // The environment wins over the file; the flag-less data dir comes from the environment.
    let mut child = weir()
        .args(["serve", "--config", file.to_str().unwrap()])
        .env("WEIR_LISTEN", "127.0.0.1:0")
        .env("WEIR_CONNECT_LISTEN", "off")
        .env("WEIR_REST_LISTEN", "off")
        .env("WEIR_CONSOLE_LISTEN", "off")
        .env("WEIR_DATA_DIR", &data)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut listening = false;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains("listening on 127.0.0.1:") {
            listening = true;
            break;
        }
    }
    assert!(listening, "broker did not report its listener");
    assert!(data.join("meta").join("catalog.json").exists());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("stopped cleanly")),
        "{rest:?}"
    );
}

#[test]
fn help_shows_examples() {
    let out = weir().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in [
        "--data-dir",
        "--listen",
        "--registry-listen",
        "--advertised-listener",
        "--config",
        "--set",
        "WEIR_DATA_DIR",
    ] {
        assert!(text.contains(flag), "help lacks {flag}: {text}");
    }
}

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn client_commands_fail_fast_with_one_line_on_an_unreachable_broker() {
    let addr = format!("127.0.0.1:{}", dead_port());
    for args in [
        vec!["topic", "list"],
        vec!["topic", "describe", "t"],
        vec!["group", "describe", "g"],
        vec!["cluster", "info"],
        vec!["produce", "t"],
    ] {
        let started = Instant::now();
        let out = weir()
            .args(&args)
            .args(["--bootstrap", &addr])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{args:?} was slow"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot connect to ") && stderr.contains(&addr),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn client_usage_errors_exit_2_and_completions_work() {
    for args in [
        vec!["topic", "create"],
        vec!["consume", "t", "--format"],
        vec!["group", "reset-offsets", "g", "--topic", "t"],
        vec!["topic", "list", "--output", "yaml"],
    ] {
        let out = weir().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = weir().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("reset-offsets") && script.contains("--bootstrap"));
}

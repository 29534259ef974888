//! The `orizuru` binary as an operator runs it: the demo config from the
//! README, a bad config, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orizuru::ledger::{Ledger, SqliteLedger};

mod common;
use common::{build_plugins, workspace};

/// Starts the binary on the demo config and `data`, on a free port; the
/// child, the rest of its banner, and its URL.
fn spawn_demo(data: &Path) -> (Child, BufReader<ChildStdout>, String) {
    spawn_demo_logging(data, Stdio::null())
}

/// Like [`spawn_demo`], writing JSON log lines to `log`.
fn spawn_demo_logging(data: &Path, log: Stdio) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orizuru"))
        .args(["serve", "--log-format", "json", "--config"])
        .arg(workspace().join("plugins/demo.toml"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the binary starts");
    let mut banner = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut first = String::new();
    banner.read_line(&mut first).expect("a banner line");
    let url = first
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in the banner: {first}"))
        .to_owned();
    (child, banner, url)
}

#[test]
fn serves_the_demo_config_and_stops_cleanly_on_sigterm() {
    build_plugins();
    let data = tempfile::tempdir().expect("a temporary data dir");
    let log_path = data.path().join("host.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let (mut child, mut banner, url) = spawn_demo_logging(data.path(), log.into());
    let mut services = String::new();
    banner.read_line(&mut services).expect("a service line");
    assert!(
        services.contains(&format!("{url}/services/fake")),
        "{services}"
    );
    assert!(
        services.contains("password \"fake-demo-password\""),
        "{services}"
    );

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let plans = client
            .get(format!("{url}/services/queue/resources/plans"))
            .basic_auth("queue", Some("queue-demo-password"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(plans.status(), 200);
        let plans: serde_json::Value = plans.json().await.expect("JSON plans");
        assert_eq!(plans[0]["name"], "small");

        let created = client
            .post(format!("{url}/resources"))
            .basic_auth("fake", Some("fake-demo-password"))
            .form(&[("name", "demo"), ("team", "t")])
            .send()
            .await
            .expect("an answer");
        assert_eq!(created.status(), 201);
    });

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited on") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the host did not stop within 10s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert!(
        data.path().join("ledger.sqlite3").exists(),
        "the ledger was written where --data-dir said"
    );

    // --log-format json: one JSON object per line; the create's answer is
    // logged in its request's span, with its request id.
    let log = std::fs::read_to_string(&log_path).expect("the log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let answered = lines
        .iter()
        .find(|line| line["span"]["path"] == "/resources" && line["fields"]["status"] == 201)
        .unwrap_or_else(|| panic!("no line for the create's answer in\n{log}"));
    assert_eq!(answered["span"]["method"], "POST", "{answered}");
    assert_eq!(
        answered["span"]["request_id"].as_str().map(str::len),
        Some(36),
        "a generated UUID: {answered}"
    );
    assert!(
        lines.iter().any(
            |line| line["fields"]["message"] == "stopped: every request in flight was answered"
        ),
        "{log}"
    );
}

#[test]
fn a_bad_config_stops_start_up_naming_the_file_key_and_reason() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let cases = [
        (
            "listen = \"127.0.0.1:1\"\nport = 3\n",
            "unknown field `port`",
        ),
        (
            "[[services]]\nid = \"Bad Id\"\nplugin = \"x.wasm\"\npassword = \"p\"\n",
            "is not a tsuru service id",
        ),
        (
            "[[services]]\nid = \"ok\"\nplugin = \"missing.wasm\"\npassword = \"p\"\n",
            "cannot read the plugin file",
        ),
    ];
    for (text, reason) in cases {
        let path = dir.path().join("orizuru.toml");
        std::fs::write(&path, text).expect("config written");
        let output = Command::new(env!("CARGO_BIN_EXE_orizuru"))
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text}");
        assert!(stderr.contains(reason), "{text}: {stderr}");
        assert!(
            stderr.lines().any(|line| line.starts_with("orizuru: ")),
            "{stderr}"
        );
    }
}

/// Rounds of kill -9 in the middle of a stream of creates and binds.
const KILL_ROUNDS: usize = 4;
/// Acknowledged writes each round waits for before its kill.
const WRITES_PER_ROUND: usize = 1_000;

/// What the clients were told succeeded.
#[derive(Default)]
struct Acknowledged {
    instances: Vec<String>,
    /// (instance, app)
    bindings: Vec<(String, String)>,
}

#[test]
fn every_acknowledged_write_survives_kill_9() {
    build_plugins();
    let data = tempfile::tempdir().expect("a temporary data dir");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut checked = 0;
    for round in 0..KILL_ROUNDS {
        let (mut child, _banner, url) = spawn_demo(data.path());
        let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
        let count = Arc::new(AtomicUsize::new(0));
        runtime.block_on(async {
            let clients: Vec<_> = (0..4)
                .map(|worker| {
                    let (url, acknowledged, count) =
                        (url.clone(), acknowledged.clone(), count.clone());
                    tokio::spawn(async move {
                        let client = reqwest::Client::new();
                        for n in 0.. {
                            let name = format!("r{round}-w{worker}-{n}");
                            let created = client
                                .post(format!("{url}/resources"))
                                .basic_auth("fake", Some("fake-demo-password"))
                                .form(&[("name", name.as_str()), ("team", "t")])
                                .send()
                                .await;
                            // A connection cut by the kill is no acknowledgement.
                            let Ok(created) = created else { return };
                            if created.status() != 201 {
                                continue;
                            }
                            acknowledged
                                .lock()
                                .expect("not poisoned")
                                .instances
                                .push(name.clone());
                            count.fetch_add(1, Ordering::SeqCst);
                            let bound = client
                                .post(format!("{url}/resources/{name}/bind-app"))
                                .basic_auth("fake", Some("fake-demo-password"))
                                .form(&[("app-name", "web")])
                                .send()
                                .await;
                            let Ok(bound) = bound else { return };
                            if bound.status() == 201 {
                                acknowledged
                                    .lock()
                                    .expect("not poisoned")
                                    .bindings
                                    .push((name, "web".to_owned()));
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            while count.load(Ordering::SeqCst) < WRITES_PER_ROUND {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // A point the clients cannot predict: a few more writes land first.
            let jitter = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|since| since.subsec_nanos() % 150)
                .unwrap_or(75);
            tokio::time::sleep(Duration::from_millis(u64::from(jitter))).await;
            child.kill().expect("kill -9");
            child.wait().expect("the host is gone");
            for client in clients {
                client.await.expect("the client ends with the host");
            }
        });

        let ledger = SqliteLedger::open(data.path()).expect("the ledger opens after kill -9");
        let acknowledged = acknowledged.lock().expect("not poisoned");
        runtime.block_on(async {
            for name in &acknowledged.instances {
                let record = ledger.instance("fake", name).await.expect("readable");
                assert!(
                    record.is_some(),
                    "round {round}: acknowledged create {name} was lost"
                );
                checked += 1;
            }
            for (name, app) in &acknowledged.bindings {
                let bindings = ledger.bindings("fake", name).await.expect("readable");
                assert!(
                    bindings.iter().any(|binding| &binding.target == app),
                    "round {round}: acknowledged bind of {app} to {name} was lost"
                );
                checked += 1;
            }
        });
    }
    assert!(
        checked >= KILL_ROUNDS * WRITES_PER_ROUND,
        "{checked} writes checked"
    );
    // And the host serves again on what the kills left.
    let (mut child, _banner, url) = spawn_demo(data.path());
    runtime.block_on(async {
        let answer = reqwest::Client::new()
            .get(format!("{url}/resources/r0-w0-0"))
            .basic_auth("fake", Some("fake-demo-password"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), 200);
    });
    child.kill().expect("stopped");
    child.wait().expect("gone");
}

//! The `orizuru` binary as an operator runs it: the demo config from the
//! README, a bad config, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the workspace")
        .to_owned()
}

/// Builds the example plugins the demo config serves (a no-op when fresh),
/// as the README's `cargo plugins` does.
fn build_plugins() {
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .arg("plugins")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo plugins failed; is the wasm32-wasip2 target installed?"
    );
}

#[test]
fn serves_the_demo_config_and_stops_cleanly_on_sigterm() {
    build_plugins();
    let data = tempfile::tempdir().expect("a temporary data dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orizuru"))
        .args(["serve", "--config"])
        .arg(workspace().join("plugins/demo.toml"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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

//! Capabilities are granted per service: a plugin gets its service's config
//! and secrets and logs through the host, its secrets never reach the log
//! or an answer, and a plugin importing what its service is not granted is
//! refused at load with the key that grants it.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use orizuru_tests::{Server, plugin_bytes, service};
use reqwest::Method;

const TOKEN: &str = "tok-3f9a-very-secret-value";

/// Everything the host logs in this test binary, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    captured
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_plugin_reads_its_config_and_logs_without_leaking_secrets() {
    let logs = capture_logs();
    let secrets = tempfile::tempdir().expect("a temporary dir");
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("the token is written");
    let server = Server::start(&[service(
        "configured",
        "configured",
        &format!(
            "logging = true\n[services.config]\nregion = \"eu-west\"\n[services.secrets]\ntoken = {{ file = \"{}\" }}\n",
            token_file.display()
        ),
    )])
    .await;
    let api = server.tsuru("configured");

    let created = api
        .send(
            api.request(Method::POST, "/resources")
                .header("X-Tsuru-Eventid", "evt-42")
                .header("X-Request-Id", "req-7")
                .form(&[("name", "one")]),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let info = api.get("/resources/one").await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(
        info.info_items(),
        [
            ("Region".to_owned(), "eu-west".to_owned()),
            ("Tier".to_owned(), "standard".to_owned()),
            ("Token length".to_owned(), TOKEN.len().to_string()),
            ("Keys".to_owned(), "region,token".to_owned()),
        ]
    );

    // A refusal quoting the secret reaches tsuru's user with it blanked out.
    let leaky = api
        .form(Method::POST, "/resources", &[("name", "leaky")])
        .await;
    assert_eq!(leaky.status, 500);
    assert_eq!(leaky.body, "the token [secret] was refused");

    // Nor does the admin API show it.
    let admin = server.admin().service("configured").await.to_string();
    assert!(!admin.contains(TOKEN), "{admin}");

    let text = logs.text();
    assert!(!text.contains(TOKEN), "a secret reached the log:\n{text}");
    let line = text
        .lines()
        .find(|line| line.contains("creating one in eu-west"))
        .unwrap_or_else(|| panic!("the plugin's info line is not in the log:\n{text}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("with token [secret]"), "{line}");
    for tag in [
        "service=configured",
        "instance=\"one\"",
        "request_id=\"req-7\"",
        "event_id=\"evt-42\"",
    ] {
        assert!(line.contains(tag), "{tag} missing from {line}");
    }
    assert!(
        text.lines()
            .any(|line| line.contains("WARN") && line.contains("one is a test instance")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.contains("DEBUG") && line.contains("creating one")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_importing_an_ungranted_capability_is_refused_with_the_key_that_grants_it() {
    let server = Server::start(&[
        service("nothing", "fake", ""),
        service("logs-only", "fake", "logging = true"),
        service(
            "config-only",
            "fake",
            "[services.config]\nregion = \"eu-west\"",
        ),
    ])
    .await;
    let admin = server.admin();
    let bytes = plugin_bytes("configured");
    for (id, names) in [
        ("nothing", "wasi:"),
        ("logs-only", "wasi:config/store@0.2.0-rc.1"),
        ("config-only", "wasi:logging/logging@0.1.0-draft"),
    ] {
        let refused = admin.upload(id, bytes.clone()).await;
        assert_eq!(refused.status, 422, "{id}: {}", refused.body);
        assert!(
            refused.body.starts_with("the uploaded plugin imports ")
                && refused.body.contains(names),
            "{id}: {}",
            refused.body
        );
        assert!(
            refused
                .body
                .contains(&format!("which service \"{id}\" is not granted; add ")),
            "{id}: {}",
            refused.body
        );
        let key = if refused.body.contains("wasi:logging") {
            "add `logging = true` to its [[services]] entry"
        } else {
            "add a [services.config] or [services.secrets] table to its [[services]] entry"
        };
        assert!(refused.body.contains(key), "{id}: {}", refused.body);
        // The old version serves on.
        assert_eq!(server.tsuru(id).get("/resources/plans").await.status, 200);
    }
    // A plugin that imports nothing beyond WASI needs no grant, even where
    // capabilities are granted.
    assert_eq!(
        admin
            .upload("logs-only", plugin_bytes("queue"))
            .await
            .status,
        200
    );
}

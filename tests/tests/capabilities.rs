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

/// The log of this test binary, shared by its tests (a subscriber is set once).
fn capture_logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            captured
        })
        .clone()
}

/// The `configured` plugin as service `id`, its token read from a file.
async fn configured(id: &str) -> (Server, tempfile::TempDir) {
    let secrets = tempfile::tempdir().expect("a temporary dir");
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("the token is written");
    let server = Server::start(&[service(
        id,
        "configured",
        &format!(
            "logging = true\n[services.config]\nregion = \"eu-west\"\n[services.secrets]\ntoken = {{ file = \"{}\" }}\n",
            token_file.display()
        ),
    )])
    .await;
    (server, secrets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_across_a_log_cut_is_logged_in_no_form() {
    let logs = capture_logs();
    let (server, _secrets) = configured("straddler").await;
    let api = server.tsuru("straddler");
    let created = api
        .form(Method::POST, "/resources", &[("name", "straddle")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);

    let text = logs.text();
    // The secret is written across the cut of a long stdout line, across
    // the end of the stdout budget, and past the cut of a wasi:logging
    // context: no half of it, nor its first bytes, reaches the log.
    for piece in [TOKEN, "tok-3", "f9a-very", "-secret-value"] {
        assert!(!text.contains(piece), "{piece:?} reached the log");
    }
    let long_line = text
        .lines()
        .find(|line| line.contains(&"a".repeat(4091)))
        .unwrap_or_else(|| panic!("the long line is not in the log"));
    assert!(long_line.contains(&format!("{}[secret]", "a".repeat(4091))));
    // The context is cut too.
    let context = text
        .lines()
        .find(|line| line.contains("a line with a long context"))
        .unwrap_or_else(|| panic!("the line with a context is not in the log"));
    assert!(
        context.contains(&format!("{} [cut]", "c".repeat(256))),
        "{context}"
    );
    assert!(!context.contains(&"c".repeat(257)), "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_plans_info_or_status_reaches_tsuru_blanked_out() {
    let (server, _secrets) = configured("shower").await;
    let api = server.tsuru("shower");
    let plans = api.get("/resources/plans").await;
    assert_eq!(plans.status, 200, "{}", plans.body);
    assert_eq!(
        plans.json(),
        serde_json::json!([{ "name": "standard", "description": "uses token [secret]" }])
    );
    let created = api
        .form(Method::POST, "/resources", &[("name", "shown")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let info = api.get("/resources/shown").await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(
        info.info_items(),
        [("Token".to_owned(), "[secret]".to_owned())]
    );
    let status = api.get("/resources/shown/status").await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body, "serving with token [secret]");
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

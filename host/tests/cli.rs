//! The commands an author and an operator run by hand: `check`, `call`,
//! `instances`, `template` and `new`, as the binary answers them.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{plugin, workspace};

/// Runs `orizuru ARGS` with its compiled cache under the test's target dir.
fn orizuru(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orizuru"))
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .env_remove("RUST_LOG")
        .env_remove("ORIZURU_CONFIG")
        .env_remove("ORIZURU_DATA_DIR")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure is exit code 1 and one `orizuru: ...` sentence on stderr.
fn assert_fails_with(output: &Output, sentence: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let stderr = stderr(output);
    let line = stderr
        .lines()
        .find(|line| line.starts_with("orizuru: "))
        .unwrap_or_else(|| panic!("no orizuru: line in {stderr}"));
    assert!(line.contains(sentence), "{line}");
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn check_reports_contract_capabilities_and_size_or_why_not() {
    let fake = plugin("fake");
    let output = orizuru(&["check", path(&fake)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("fake.wasm: a valid Orizuru plugin"), "{text}");
    assert!(text.contains("orizuru:service/handler@0.1.0"), "{text}");
    assert!(text.contains("capabilities  none beyond WASI"), "{text}");
    assert!(text.contains("compiled in"), "{text}");

    // Capabilities, each with the key that grants it.
    let output = orizuru(&["check", path(&plugin("http-probe")), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["valid"], true);
    assert_eq!(report["contract"], "orizuru:service/handler@0.1.0");
    assert!(report["size_bytes"].as_u64().unwrap() > 1000);
    let capabilities = report["capabilities"].as_array().expect("a list");
    assert!(
        capabilities.iter().any(|capability| {
            capability["import"]
                .as_str()
                .unwrap()
                .starts_with("wasi:http/outgoing-handler")
                && capability["granted_by"]
                    == "a [services.http] table with the origins it may call"
        }),
        "{report:#}"
    );

    let dir = tempfile::tempdir().expect("a temporary dir");
    let text_file = dir.path().join("notes.wasm");
    std::fs::write(&text_file, "hello").expect("written");
    assert_fails_with(
        &orizuru(&["check", path(&text_file)]),
        "is not WebAssembly (it does not start with the wasm magic bytes)",
    );
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").expect("wat")).expect("written");
    assert_fails_with(
        &orizuru(&["check", path(&core)]),
        "is a core wasm module, not a component",
    );
    assert_fails_with(
        &orizuru(&["check", path(&dir.path().join("missing.wasm"))]),
        "cannot read",
    );
}

#[test]
fn call_answers_as_tsuru_would_see_it() {
    let fake = plugin("fake");
    let output = orizuru(&[
        "call",
        path(&fake),
        "bind-app",
        "--instance",
        "db1",
        "--app",
        "web",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "201 Created\n{\n  \"SOMEVAR\": \"somevalue\"\n}\n"
    );
    let output = orizuru(&["call", path(&fake), "plans"]);
    assert_eq!(stdout(&output), "200 OK\n[]\n");

    // The queue's parameters are checked by the plugin, as tsuru's would be.
    let queue = plugin("queue");
    let output = orizuru(&[
        "call",
        path(&queue),
        "create",
        "--instance",
        "orders",
        "--plan",
        "small",
        "--param",
        "retention_hours=lots",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.starts_with("400 Bad Request\n"), "{text}");
    assert!(
        text.contains(
            "parameter \"retention_hours\" of instance \"orders\" must be a whole number, not \"lots\""
        ),
        "{text}"
    );

    // What a call needs is named before anything runs.
    assert_fails_with(
        &orizuru(&["call", path(&queue), "bind-app", "--instance", "orders"]),
        "bind-app needs --app NAME",
    );
    assert_fails_with(
        &orizuru(&["call", path(&queue), "status"]),
        "status needs --instance NAME",
    );
    assert_fails_with(
        &orizuru(&[
            "call",
            path(&queue),
            "create",
            "--instance",
            "a",
            "--param",
            "size",
        ]),
        "--param \"size\" has no '='; write it as key=value",
    );
    // A plugin that needs a grant says which key gives it.
    assert_fails_with(
        &orizuru(&["call", path(&plugin("http-probe")), "plans"]),
        "add a [services.http] table with the origins it may call",
    );
}

#[test]
fn calls_on_a_data_dir_add_up_and_instances_lists_them() {
    let queue = plugin("queue");
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data = path(dir.path());
    let create = orizuru(&[
        "call",
        path(&queue),
        "create",
        "--instance",
        "orders",
        "--plan",
        "small",
        "--team",
        "shop",
        "--data-dir",
        data,
    ]);
    assert!(create.status.success(), "{}", stdout(&create));
    assert!(
        stdout(&create).starts_with("201 Created"),
        "{}",
        stdout(&create)
    );
    // On a kept ledger nothing is recorded for the caller: unknown is 404.
    let unknown = orizuru(&[
        "call",
        path(&queue),
        "info",
        "--instance",
        "nope",
        "--data-dir",
        data,
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stdout(&unknown).starts_with("404 Not Found\n"),
        "{}",
        stdout(&unknown)
    );
    let bind = orizuru(&[
        "call",
        path(&queue),
        "bind-app",
        "--instance",
        "orders",
        "--app",
        "web",
        "-p",
        "prefix=orders-",
        "--data-dir",
        data,
    ]);
    let text = stdout(&bind);
    assert!(text.starts_with("201 Created\n"), "{text}");
    assert!(text.contains("\"QUEUE_URL\""), "{text}");
    // A bind's --param are the binding's, as tsuru's `bind -p` sends them.
    assert!(text.contains("\"QUEUE_PREFIX\": \"orders-\""), "{text}");

    let table = orizuru(&["instances", "--service", "queue", "--data-dir", data]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    let row = text
        .lines()
        .find(|line| line.starts_with("orders"))
        .unwrap_or_else(|| panic!("no orders row in {text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["orders", "ready", "small", "shop", "app", "web"],
        "{text}"
    );
    assert!(text.contains("bind-app   succeeded  web"), "{text}");
    // Env values are credentials: names only.
    let json = orizuru(&[
        "instances",
        "--service",
        "queue",
        "--data-dir",
        data,
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let instance = &report["instances"][0];
    assert_eq!(instance["name"], "orders");
    assert_eq!(instance["bindings"][0]["name"], "web");
    assert!(
        instance["bindings"][0]["env"]
            .as_array()
            .unwrap()
            .contains(&"QUEUE_URL".into())
    );
    assert!(!String::from_utf8_lossy(&json.stdout).contains("amqp://"));
    assert_eq!(instance["events"].as_array().unwrap().len(), 2);

    let empty = orizuru(&["instances", "--service", "other", "--data-dir", data]);
    assert_eq!(
        stdout(&empty),
        "service \"other\" has no instances in this ledger\n"
    );
    assert_fails_with(
        &orizuru(&[
            "instances",
            "--service",
            "queue",
            "--data-dir",
            path(&dir.path().join("nothing")),
        ]),
        "there is no ledger in",
    );
}

#[test]
fn template_writes_a_manifest_tsuru_accepts() {
    let demo = workspace().join("plugins/demo.toml");
    let output = orizuru(&[
        "template",
        "--config",
        path(&demo),
        "--service",
        "queue",
        "--public-url",
        "https://orizuru.example.com/",
        "--team",
        "platform",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "id: queue\npassword: \"queue-demo-password\"\nteam: \"platform\"\nendpoint:\n  production: \"https://orizuru.example.com/services/queue\"\nmulti-cluster: false\n"
    );
    // Without --public-url, the listen address, and a warning that tsuru may not reach it.
    let output = orizuru(&["template", "--config", path(&demo), "--service", "fake"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("  production: \"http://127.0.0.1:8080/services/fake\"\n"),
        "{}",
        stdout(&output)
    );
    assert!(!stdout(&output).contains("team:"));
    assert!(
        stderr(&output).contains("pass --public-url"),
        "{}",
        stderr(&output)
    );

    assert_fails_with(
        &orizuru(&["template", "--config", path(&demo), "--service", "redis"]),
        "has no service \"redis\" (it has \"fake\", \"queue\"",
    );
    assert_fails_with(
        &orizuru(&[
            "template",
            "--config",
            path(&demo),
            "--service",
            "fake",
            "--public-url",
            "orizuru.example.com",
        ]),
        "--public-url \"orizuru.example.com\" is not an http or https URL",
    );
}

/// `orizuru new` for one language, then the project's own test, which
/// builds it and runs it through `orizuru check` and `orizuru call`.
fn new_project_passes_its_own_test(lang: &str) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let project = dir.path().join(format!("my-{lang}-cache"));
    let output = orizuru(&[
        "new",
        &format!("my-{lang}-cache"),
        "--lang",
        lang,
        "--dir",
        path(&project),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("./test"), "{}", stdout(&output));
    let test = Command::new(project.join("test"))
        .current_dir(&project)
        .env("ORIZURU", env!("CARGO_BIN_EXE_orizuru"))
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        // The Rust template shares the compiled SDK with the other plugins.
        .env("CARGO_TARGET_DIR", workspace().join("target/plugins"))
        .output()
        .expect("the project's test runs");
    assert!(
        test.status.success(),
        "{lang}: {}\n{}",
        stdout(&test),
        stderr(&test)
    );
    assert!(stdout(&test).contains("ok"), "{}", stdout(&test));

    // A second `new` into the same place is refused; so is a name tsuru refuses.
    assert_fails_with(
        &orizuru(&["new", "again", "--lang", lang, "--dir", path(&project)]),
        "already exists and is not empty",
    );
}

#[test]
fn new_rust_project_passes_its_own_test() {
    new_project_passes_its_own_test("rust");
}

#[test]
fn new_python_project_passes_its_own_test() {
    new_project_passes_its_own_test("python");
}

#[test]
fn new_js_project_passes_its_own_test() {
    new_project_passes_its_own_test("js");
}

#[test]
fn new_c_project_passes_its_own_test() {
    new_project_passes_its_own_test("c");
}

#[test]
fn new_refuses_names_tsuru_would_refuse() {
    for name in ["My_Cache", "9lives", "a.b"] {
        assert_fails_with(
            &orizuru(&["new", name, "--lang", "rust", "--dir", "/nonexistent/never"]),
            "cannot name a plugin",
        );
    }
}

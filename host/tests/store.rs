//! `orizuru store migrate`, as the binary answers it: a host's data_dir
//! copied into a fresh PostgreSQL database, then copied again.

use std::path::Path;
use std::process::{Command, Output};

use orizuru::ledger::{Change, Event, EventOutcome, InstanceRecord, Ledger, SqliteLedger};
use orizuru::model::{Action, Instance, InstanceState};
use orizuru::store::postgres::testing::TestDatabase;

/// Runs `orizuru store migrate ARGS` with `URL` set to `url`.
fn migrate(args: &[&str], url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orizuru"))
        .args(["store", "migrate"])
        .args(args)
        .env("ORIZURU_TEST_STORE_URL", url)
        .env_remove("RUST_LOG")
        .env_remove("ORIZURU_CONFIG")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A data_dir with two instances and the events of their creates.
async fn data_dir(dir: &Path) {
    let ledger = SqliteLedger::open(dir).expect("a ledger");
    for name in ["db1", "db2"] {
        let record = InstanceRecord {
            instance: Instance {
                name: name.into(),
                plan: Some("small".into()),
                team: None,
                description: None,
                tags: Vec::new(),
                parameters: serde_json::Map::new(),
                data: None,
            },
            state: InstanceState::Ready,
        };
        let event = Event {
            action: Action::Create,
            instance: name.into(),
            target: String::new(),
            event_id: Some(format!("create-{name}")),
            user: None,
            outcome: EventOutcome::Succeeded(serde_json::json!({})),
        };
        ledger
            .commit("svc", vec![Change::Put(record)], Some(event))
            .await
            .expect("a create");
    }
}

#[tokio::test]
async fn migrate_prints_its_counts_and_a_second_run_finds_everything_there() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data = dir.path().join("data");
    data_dir(&data).await;
    let database = TestDatabase::create().await;

    let first = migrate(
        &["--from", path(&data), "--to-env", "ORIZURU_TEST_STORE_URL"],
        &database.url,
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let printed = stdout(&first);
    for line in [
        "instances: 2 in the source, 2 copied, 0 already there",
        "events: 2 in the source, 2 copied, 0 already there",
        "kv: 0 in the source, 0 copied, 0 already there",
        &format!(
            "every row of {} is in the store: 4 copied, 0 already there",
            data.display()
        ),
    ] {
        assert!(
            printed.lines().any(|printed| printed == line),
            "{line}:\n{printed}"
        );
    }
    assert!(
        !printed.contains(&database.url) && !stderr(&first).contains(&database.url),
        "the URL is never printed"
    );

    // Again, from a config file's [store] and data_dir.
    std::fs::write(dir.path().join("store-url"), format!("{}\n", database.url))
        .expect("a URL file");
    let config = dir.path().join("orizuru.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[store]\nurl_file = \"store-url\"\n",
    )
    .expect("a config");
    let second = migrate(&["--config", path(&config)], "");
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let printed = stdout(&second);
    assert!(
        printed
            .lines()
            .any(|line| line == "instances: 2 in the source, 0 copied, 2 already there"),
        "{printed}"
    );
}

#[test]
fn migrate_says_where_to_copy_to_when_nothing_does() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let output = migrate(&["--from", path(dir.path())], "");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "orizuru: say where to copy to: --to-env NAME or --to-file PATH (a variable or file holding the store's URL), or --config FILE with a [store] table"
    );
    let unset = migrate(
        &[
            "--from",
            path(dir.path()),
            "--to-env",
            "ORIZURU_TEST_STORE_URL",
        ],
        "",
    );
    assert_eq!(unset.status.code(), Some(1));
    assert!(
        stderr(&unset).starts_with(
            "orizuru: --to-env ORIZURU_TEST_STORE_URL: the environment variable ORIZURU_TEST_STORE_URL is not set or empty"
        ),
        "{}",
        stderr(&unset)
    );
}

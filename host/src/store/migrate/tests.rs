//! The migration's tests: a data_dir written through the host's own
//! stores, copied into a fresh PostgreSQL database.

use std::path::Path;

use serde_json::json;

use super::{Report, migrate};
use crate::capabilities::Start;
use crate::capabilities::keyvalue::{KeyValueQuota, KvStore};
use crate::deploy::PluginFiles;
use crate::ledger::{
    Binding, BindingKind, Change, Deployments as _, Event, EventOutcome, InstanceRecord, Ledger,
    PluginEvent, SqliteLedger,
};
use crate::model::{Action, Instance, InstanceState};
use crate::store::postgres::Postgres;
use crate::store::postgres::testing::TestDatabase;

fn instance(name: &str) -> Instance {
    Instance {
        name: name.into(),
        plan: Some("small".into()),
        team: Some("team".into()),
        description: Some("the main database".into()),
        tags: vec!["a".into(), "b".into()],
        parameters: json!({"size": {"gb": "3"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        data: Some("plugin's own".into()),
    }
}

fn event(action: Action, instance: &str, target: &str, outcome: EventOutcome) -> Option<Event> {
    Some(Event {
        action,
        instance: instance.into(),
        target: target.into(),
        event_id: Some(format!("{}-{instance}-{target}", action.as_str())),
        user: Some("admin@example.com".into()),
        outcome,
    })
}

/// The wasm the data dir keeps (any bytes do: the migration checks their
/// sha256, not what they are).
const WASM: &[u8] = b"\0asm\x0d\0\x01\0 a kept version";

/// Writes a data_dir as a host would: two instances (one still being
/// created), a binding, events that succeeded and failed, a deployment
/// with its plugin event and wasm, and keys.
async fn source(dir: &Path) -> String {
    let ledger = SqliteLedger::open(dir).expect("a ledger");
    let ready = InstanceRecord {
        instance: instance("db"),
        state: InstanceState::Ready,
    };
    ledger
        .commit(
            "svc",
            vec![Change::Put(ready)],
            event(
                Action::Create,
                "db",
                "",
                EventOutcome::Succeeded(json!({"created": true})),
            ),
        )
        .await
        .expect("a create");
    let binding = Binding {
        kind: BindingKind::App,
        target: "web".into(),
        env: [(
            "DATABASE_URL".to_owned(),
            "postgres://web@db/web".to_owned(),
        )]
        .into(),
    };
    ledger
        .commit(
            "svc",
            vec![Change::Bind {
                instance: "db".into(),
                binding,
            }],
            event(
                Action::BindApp,
                "db",
                "web",
                EventOutcome::Succeeded(json!({"DATABASE_URL": "postgres://web@db/web"})),
            ),
        )
        .await
        .expect("a bind");
    ledger
        .commit(
            "svc",
            Vec::new(),
            event(
                Action::BindApp,
                "db",
                "worker",
                EventOutcome::Failed("the plugin refused: no room".into()),
            ),
        )
        .await
        .expect("a failed bind");
    assert!(
        ledger
            .reserve("svc", &instance("half"), "run-1/7")
            .await
            .expect("a reservation")
    );
    let sha256 = crate::runtime::sha256(WASM);
    PluginFiles::open(dir)
        .expect("a plugin store")
        .put(&sha256, WASM)
        .expect("a kept plugin");
    ledger
        .save_deployment(
            "svc",
            Some(json!({"active": sha256, "versions": [], "file_sha256": null})),
            Some(PluginEvent {
                kind: "load".into(),
                sha256: Some(sha256.clone()),
                previous: None,
                source: "config-file".into(),
                detail: "first version".into(),
            }),
        )
        .await
        .expect("a deployment");
    // A service added through the admin API by an older host, which kept
    // its password in plain text.
    ledger
        .save_deployment(
            "added",
            Some(
                json!({"added": {"username": "u", "password": "plain secret", "timeout_ms": 5000,
                                  "memory_mb": 64, "added_at": "2026-01-02T03:04:05.678Z"},
                        "active": null, "versions": []}),
            ),
            None,
        )
        .await
        .expect("an added service");
    drop(ledger);
    let path = dir.join("keyvalue.sqlite3");
    let keys = KvStore::open(&Start {
        keyvalue_path: Some(&path),
        store: None,
    })
    .expect("a key-value store");
    for (service, bucket, key, value) in [
        ("svc", "b", "k1", &[1u8, 2][..]),
        ("svc", "b", "ké", &[][..]),
        ("other", "cache", "k", &[0xff, 0, 0xff][..]),
    ] {
        keys.set(service, KeyValueQuota::default(), bucket, key, value)
            .await
            .map_err(|_| "a write")
            .expect("keys");
    }
    sha256
}

/// `(table, in the source, copied, already there)` of every table.
fn counts(report: &Report) -> Vec<(&'static str, u64, u64, u64)> {
    report
        .tables
        .iter()
        .map(|counts| {
            (
                counts.table,
                counts.in_source,
                counts.copied,
                counts.already_there,
            )
        })
        .collect()
}

/// One column of every row of a SQLite table, as text, in the given order.
fn sqlite_texts(path: &Path, sql: &str) -> Vec<String> {
    let connection = rusqlite::Connection::open(path).expect("the source");
    let mut statement = connection.prepare(sql).expect("a query");
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// The same of the store, times written as the ledger writes them.
async fn store_texts(store: &Postgres, sql: &str) -> Vec<String> {
    let client = store.client().await.expect("a connection");
    client
        .query(sql, &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

const AS_LEDGER: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

#[tokio::test]
async fn everything_is_copied_counted_and_a_second_run_finds_it_there() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let sha256 = source(dir.path()).await;
    let ledger_bytes = std::fs::read(dir.path().join("ledger.sqlite3")).expect("the ledger");
    let database = TestDatabase::create().await;
    let store = Postgres::open(&database.settings("test"))
        .await
        .expect("the store");

    let report = migrate(dir.path(), &store).await.expect("the migration");
    assert!(report.complete(), "{report}");
    assert_eq!(
        counts(&report),
        [
            ("instances", 2, 2, 0),
            ("bindings", 1, 1, 0),
            ("events", 3, 3, 0),
            ("deployments", 2, 2, 0),
            ("plugin_events", 1, 1, 0),
            ("plugins", 1, 1, 0),
            ("kv", 3, 3, 0),
        ]
    );
    let printed = report.to_string();
    assert!(
        printed.contains("instances: 2 in the source, 2 copied, 0 already there\n"),
        "{printed}"
    );
    assert!(
        printed.ends_with(&format!(
            "every row of {} is in the store: 13 copied, 0 already there\n",
            dir.path().display()
        )),
        "{printed}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("ledger.sqlite3")).expect("the ledger"),
        ledger_bytes,
        "the source is not changed"
    );

    // What hosts on the store will read: the rows as they were, times
    // exact to the millisecond.
    let ledger = dir.path().join("ledger.sqlite3");
    let rows = |columns: &str| {
        format!("SELECT concat_ws('|', {columns}) FROM instances ORDER BY service, name")
    };
    assert_eq!(
        store_texts(
            &store,
            &rows(&format!(
                "service, name, state, plan, team, description, tags, parameters, data, owner, to_char(created_at AT TIME ZONE 'UTC', {AS_LEDGER}), to_char(updated_at AT TIME ZONE 'UTC', {AS_LEDGER})"
            ))
        )
        .await,
        sqlite_texts(
            &ledger,
            "SELECT concat_ws('|', service, name, state, plan, team, description, tags, parameters, data, owner, created_at, updated_at) FROM instances ORDER BY service, name"
        ),
    );
    assert_eq!(
        store_texts(&store, "SELECT owner FROM instances WHERE name = 'half'").await,
        ["run-1/7"],
        "a reservation keeps its owner"
    );
    assert_eq!(
        store_texts(
            &store,
            &format!(
                "SELECT concat_ws('|', service, instance, action, target, event_id, \"user\", outcome, answer, reason, to_char(at AT TIME ZONE 'UTC', {AS_LEDGER})) FROM events ORDER BY id"
            )
        )
        .await,
        sqlite_texts(
            &ledger,
            "SELECT concat_ws('|', service, instance, action, target, event_id, user, outcome, answer, reason, at) FROM events ORDER BY id"
        ),
    );
    assert_eq!(
        store_texts(
            &store,
            &format!(
                "SELECT concat_ws('|', service, instance, kind, target, env, to_char(bound_at AT TIME ZONE 'UTC', {AS_LEDGER})) FROM bindings"
            )
        )
        .await,
        sqlite_texts(
            &ledger,
            "SELECT concat_ws('|', service, instance, kind, target, env, bound_at) FROM bindings"
        ),
    );
    assert_eq!(
        store_texts(
            &store,
            &format!(
                "SELECT concat_ws('|', service, document, to_char(updated_at AT TIME ZONE 'UTC', {AS_LEDGER})) FROM deployments WHERE revision > 0 AND service = 'svc'"
            )
        )
        .await,
        sqlite_texts(
            &ledger,
            "SELECT concat_ws('|', service, document, updated_at) FROM deployments WHERE service = 'svc'"
        ),
    );
    let added = store_texts(
        &store,
        "SELECT document FROM deployments WHERE service = 'added'",
    )
    .await
    .join("");
    assert!(
        !added.contains("plain secret") && !added.contains("\"password\""),
        "the store never holds the password: {added}"
    );
    assert!(
        added.contains(&format!(
            "\"password_sha256\":\"{}\"",
            crate::runtime::sha256(b"plain secret")
        )),
        "{added}"
    );
    assert_eq!(
        store_texts(
            &store,
            &format!(
                "SELECT concat_ws('|', service, kind, sha256, previous, source, detail, to_char(at AT TIME ZONE 'UTC', {AS_LEDGER})) FROM plugin_events"
            )
        )
        .await,
        sqlite_texts(
            &ledger,
            "SELECT concat_ws('|', service, kind, sha256, previous, source, detail, at) FROM plugin_events"
        ),
    );
    assert_eq!(
        store_texts(
            &store,
            &format!("SELECT encode(bytes, 'hex') FROM plugins WHERE sha256 = '{sha256}'")
        )
        .await,
        [WASM
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()]
    );
    assert_eq!(
        store_texts(
            &store,
            "SELECT concat_ws('|', service, bucket, key, encode(value, 'hex')) FROM kv ORDER BY service, bucket, key"
        )
        .await,
        ["other|cache|k|ff00ff", "svc|b|k1|0102", "svc|b|ké|"]
    );
    assert_eq!(
        store_texts(
            &store,
            "SELECT concat_ws('|', service, keys, bytes) FROM kv_usage ORDER BY service"
        )
        .await,
        ["other|1|9", "svc|2|9"],
        "the trigger counts what was copied"
    );

    let again = migrate(dir.path(), &store).await.expect("a second run");
    assert!(again.complete(), "{again}");
    assert_eq!(
        counts(&again),
        [
            ("instances", 2, 0, 2),
            ("bindings", 1, 0, 1),
            ("events", 3, 0, 3),
            ("deployments", 2, 0, 2),
            ("plugin_events", 1, 0, 1),
            ("plugins", 1, 0, 1),
            ("kv", 3, 0, 3),
        ]
    );
    assert_eq!(
        store_texts(&store, "SELECT count(*)::text FROM events").await,
        ["3"],
        "no event is copied twice"
    );
}

#[tokio::test]
async fn a_row_that_differs_in_the_store_is_a_conflict_and_nothing_is_copied() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    source(dir.path()).await;
    let database = TestDatabase::create().await;
    let store = Postgres::open(&database.settings("test"))
        .await
        .expect("the store");
    // Hosts on the store have an instance of the same name, created otherwise.
    store
        .client()
        .await
        .expect("a connection")
        .batch_execute(
            "INSERT INTO instances (service, name, state, plan, tags, parameters)
             VALUES ('svc', 'db', 'ready', 'large', '[]', '{}')",
        )
        .await
        .expect("a row of the store's own");

    let report = migrate(dir.path(), &store).await.expect("the migration");
    assert!(!report.complete());
    assert!(!report.written);
    assert_eq!(report.conflicts.len(), 1, "{report}");
    assert!(
        report.conflicts[0].starts_with(
            "the instances row service \"svc\", name \"db\" is in the store with another plan, "
        ),
        "{}",
        report.conflicts[0]
    );
    let printed = report.to_string();
    assert!(
        printed.contains(
            "instances: 2 in the source, 0 copied, 0 already there, 1 in conflict, 1 held back\n"
        ),
        "{printed}"
    );
    assert!(
        printed.contains("conflict: the instances row service \"svc\", name \"db\""),
        "{printed}"
    );
    let failure = report.failure().expect("a failure");
    assert!(
        failure.starts_with("nothing was copied: 1 row(s) of "),
        "{failure}"
    );
    assert_eq!(
        store_texts(
            &store,
            "SELECT concat_ws('|', (SELECT count(*) FROM instances), (SELECT count(*) FROM events), (SELECT count(*) FROM kv), (SELECT count(*) FROM plugins))"
        )
        .await,
        ["1|0|0|0"],
        "the store is as it was"
    );
}

#[tokio::test]
async fn a_damaged_plugin_is_reported_and_the_rest_copied() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let sha256 = source(dir.path()).await;
    let kept = dir.path().join("plugins").join(format!("{sha256}.wasm"));
    std::fs::write(&kept, b"\0asm but cut sh").expect("a damaged file");
    let database = TestDatabase::create().await;
    let store = Postgres::open(&database.settings("test"))
        .await
        .expect("the store");

    let report = migrate(dir.path(), &store).await.expect("the migration");
    assert!(!report.complete());
    assert!(report.written, "the rest is copied");
    assert_eq!(report.damaged.len(), 1, "{report}");
    assert!(
        report.damaged[0].starts_with(&format!(
            "the kept plugin {} does not hold what its name says",
            kept.display()
        )),
        "{}",
        report.damaged[0]
    );
    assert!(
        report
            .to_string()
            .contains("plugins: 1 in the source, 0 copied, 0 already there, 1 damaged\n"),
        "{report}"
    );
    assert!(
        report
            .failure()
            .is_some_and(|failure| failure.starts_with("1 plugin file(s) in ")),
        "{:?}",
        report.failure()
    );
    assert_eq!(
        store_texts(
            &store,
            "SELECT concat_ws('|', (SELECT count(*) FROM instances), (SELECT count(*) FROM plugins))"
        )
        .await,
        ["2|0"]
    );
}

#[tokio::test]
async fn a_data_dir_a_host_serves_from_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    source(dir.path()).await;
    let _host = crate::private::lock(dir.path()).expect("the host's lock");
    let database = TestDatabase::create().await;
    let store = Postgres::open(&database.settings("test"))
        .await
        .expect("the store");

    let err = migrate(dir.path(), &store)
        .await
        .expect_err("a served data_dir");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is in use by an Orizuru host (process {}); stop that host first, then run the migration again",
            dir.path().display(),
            std::process::id()
        )
    );
    assert_eq!(
        store_texts(&store, "SELECT count(*)::text FROM instances").await,
        ["0"]
    );
}

#[tokio::test]
async fn a_folder_without_a_ledger_is_named() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let database = TestDatabase::create().await;
    let store = Postgres::open(&database.settings("test"))
        .await
        .expect("the store");
    let err = migrate(&dir.path().join("nothing"), &store)
        .await
        .expect_err("no ledger");
    assert_eq!(
        err.to_string(),
        format!(
            "there is no ledger (ledger.sqlite3) in {}; pass the data_dir of the host to migrate from",
            dir.path().join("nothing").display()
        )
    );
    assert!(
        !dir.path().join("nothing").exists(),
        "no folder is made for it"
    );
}

#[tokio::test]
async fn rows_still_in_the_write_ahead_log_of_a_host_that_died_are_copied() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    // Open, as a host killed with -9 leaves it: its last commits are in
    // ledger.sqlite3-wal, not yet in the file itself.
    let ledger = SqliteLedger::open(dir.path()).expect("a ledger");
    let record = InstanceRecord {
        instance: instance("db"),
        state: InstanceState::Pending,
    };
    ledger
        .commit("svc", vec![Change::Put(record)], None)
        .await
        .expect("a create");
    let wal = dir.path().join("ledger.sqlite3-wal");
    assert!(
        std::fs::metadata(&wal).is_ok_and(|meta| meta.len() > 0),
        "the commit is in the log"
    );
    let database = TestDatabase::create().await;
    let store = Postgres::open(&database.settings("test"))
        .await
        .expect("the store");

    let report = migrate(dir.path(), &store).await.expect("the migration");
    assert!(report.complete(), "{report}");
    assert_eq!(counts(&report)[0], ("instances", 1, 1, 0));
    assert_eq!(
        store_texts(&store, "SELECT state FROM instances WHERE name = 'db'").await,
        ["pending"]
    );
    drop(ledger);
}

#[tokio::test]
async fn a_row_the_store_refuses_leaves_it_as_it_was_and_a_run_after_the_fix_completes() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    source(dir.path()).await;
    // A binding whose instance is gone: SQLite has no foreign key to stop it.
    let ledger = dir.path().join("ledger.sqlite3");
    rusqlite::Connection::open(&ledger)
        .expect("the ledger")
        .execute_batch(
            "INSERT INTO bindings VALUES ('svc', 'ghost', 'app', 'web', '{}', '2026-01-02T03:04:05.678Z')",
        )
        .expect("an orphan binding");
    let database = TestDatabase::create().await;
    let store = Postgres::open(&database.settings("test"))
        .await
        .expect("the store");

    let err = migrate(dir.path(), &store)
        .await
        .expect_err("the store refuses the binding");
    let sentence = format!("{err:#}");
    assert!(
        sentence.starts_with(
            "cannot copy the table bindings: the store refused the bindings row service \"svc\", instance \"ghost\", kind \"app\", target \"web\": "
        ),
        "{sentence}"
    );
    assert_eq!(
        store_texts(
            &store,
            "SELECT concat_ws('|', (SELECT count(*) FROM instances), (SELECT count(*) FROM bindings), (SELECT count(*) FROM kv))"
        )
        .await,
        ["0|0|0"],
        "the store is as it was"
    );

    rusqlite::Connection::open(&ledger)
        .expect("the ledger")
        .execute_batch("DELETE FROM bindings WHERE instance = 'ghost'")
        .expect("the fix");
    let report = migrate(dir.path(), &store).await.expect("the migration");
    assert!(report.complete(), "{report}");
    assert_eq!(counts(&report)[1], ("bindings", 1, 1, 0));
}

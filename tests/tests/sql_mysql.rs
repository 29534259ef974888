//! The SQL capability on MySQL/MariaDB (`[services.sql.NAME]` with a
//! `mysql://` URL), through the probe plugin (`plugins/sql-probe`) on the
//! machine's MariaDB at 127.0.0.1:3306: `?` parameters bound as text,
//! values answered as text, refusals with their SQLSTATE and MySQL error
//! number, a statement past its timeout killed on the server, rows capped,
//! no session state carried from one statement to the next, and a wrong
//! password answered without the URL. Each test works in a database of its
//! own prefix, dropped at the end.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use orizuru_tests::mysql::{Cleanup, root, unique_prefix};
use orizuru_tests::{Server, Tsuru};
use reqwest::Method;
use serde_json::{Value, json};

/// A host serving the probe on a connection `admin` to `url`, with `extra`
/// lines in its table, and an instance to call it through.
async fn probe(url: &str, extra: &str) -> (Server, Tsuru, tempfile::TempDir) {
    orizuru_tests::probe("sql-probe", "sql", url, extra).await
}

/// A database of the run's own (`<prefix>_probe`, with a table `t`), and
/// the URL of root on it.
async fn database() -> (Cleanup, String) {
    let prefix = unique_prefix();
    let cleanup = Cleanup(prefix.clone());
    let database = format!("{prefix}_probe");
    let mut root = root().await;
    root.query_drop(format!(
        "CREATE DATABASE `{database}`; CREATE TABLE `{database}`.t (x INT); CREATE TABLE `{database}`.u (x INT)"
    ))
    .await
    .expect("the run's database is made");
    drop(root.disconnect().await);
    (cleanup, format!("mysql://root@127.0.0.1:3306/{database}"))
}

async fn run(api: &Tsuru, action: &str, body: Value) -> Value {
    let answer = api
        .json(Method::POST, &format!("/resources/probe/{action}"), body)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

async fn query(api: &Tsuru, statement: &str) -> Value {
    run(api, "query", json!({ "statement": statement })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_go_as_text_and_values_come_back_as_mysql_writes_them() {
    let (_cleanup, url) = database().await;
    let (_server, api, _dir) = probe(&url, "").await;

    let answer = run(
        &api,
        "query",
        json!({
            "statement": "SELECT ? + 1 AS n, ? IS NULL AS missing, 1.5e0 AS f, 'x' AS v,
                                 CAST('2024-01-02' AS DATE) AS d,
                                 CAST('2024-01-02 03:04:05.123' AS DATETIME(3)) AS dt,
                                 CAST('-27:01:02' AS TIME) AS tm,
                                 NULL AS nothing, 1.50 AS price, 'a\\b' AS backslash",
            "params": ["41", null],
        }),
    )
    .await;
    assert_eq!(
        answer,
        json!({
            "columns": ["n", "missing", "f", "v", "d", "dt", "tm", "nothing", "price", "backslash"],
            "rows": [["42", "1", "1.5", "x", "2024-01-02", "2024-01-02 03:04:05.123", "-27:01:02", null, "1.50", "a\\b"]],
        })
    );
    let answer = run(
        &api,
        "execute",
        json!({ "statement": "INSERT INTO t (x) VALUES (?), (?)", "params": ["1", "2"] }),
    )
    .await;
    assert_eq!(answer, json!({ "count": 2 }));
    let answer = run(
        &api,
        "query",
        json!({ "statement": "SELECT x FROM t WHERE x > ? ORDER BY x", "params": ["0"] }),
    )
    .await;
    assert_eq!(answer["rows"], json!([["1"], ["2"]]));

    for (statement, params, kind, code, sentence) in [
        (
            "SELECT * FROM nope",
            json!([]),
            "query-failed",
            json!("42S02"),
            format!(
                "MySQL refused a statement on SQL connection \"admin\": Table '{}.nope' doesn't exist (SQLSTATE 42S02, MySQL error 1146)",
                url.rsplit('/').next().unwrap_or_default()
            ),
        ),
        (
            "SELECT ?",
            json!([]),
            "query-failed",
            json!("07001"),
            "MySQL refused a statement on SQL connection \"admin\": the statement takes 1 parameters but was given 0 (SQLSTATE 07001); hint: pass one value for each ?".to_owned(),
        ),
        (
            "SELECT UNHEX('FF') AS b",
            json!([]),
            "unsupported-type",
            Value::Null,
            "column \"b\" of a statement on SQL connection \"admin\" holds bytes that are not UTF-8 text, which the host does not hand plugins; select it as text in the statement (HEX(b) or TO_BASE64(b))".to_owned(),
        ),
    ] {
        let answer = run(
            &api,
            "query",
            json!({ "statement": statement, "params": params }),
        )
        .await;
        assert_eq!(
            answer,
            json!({ "error": kind, "code": code, "sentence": sentence }),
            "{statement}"
        );
    }
    // Two statements in one are refused by the server's parser.
    let answer = query(&api, "SELECT 1; SELECT 2").await;
    assert_eq!(answer["code"], "42000", "{answer}");
    // A statement the prepared protocol does not take still runs.
    let answer = query(&api, "SHOW DATABASES LIKE 'mysql'").await;
    assert_eq!(answer["rows"], json!([["mysql"]]), "{answer}");

    // Another database is named in the statement, not in the connection's
    // name as on PostgreSQL.
    let answer = run(
        &api,
        "query",
        json!({ "connection": "admin@mysql", "statement": "SELECT 1" }),
    )
    .await;
    assert_eq!(
        answer,
        json!({
            "error": "no-such-connection",
            "code": null,
            "sentence": "the SQL connection \"admin\" is a MySQL one, which reaches database \"mysql\" by qualified names (`mysql`.`table`); name the connection \"admin\" alone",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_state_outlives_its_statement() {
    let (cleanup, url) = database().await;
    // One connection, so every statement runs on the one the last one left.
    let (_server, api, _dir) = probe(&url, "max_connections = 1\n").await;
    let id = query(&api, "SELECT CONNECTION_ID() AS id").await["rows"][0][0].clone();

    query(&api, "SET @x = 42").await;
    assert_eq!(
        query(&api, "SELECT CONNECTION_ID() AS id").await["rows"][0][0],
        id,
        "after SET"
    );
    assert_eq!(query(&api, "SELECT @x AS x").await["rows"], json!([[null]]));

    query(&api, "SET SESSION sql_mode = ''").await;
    let mode = query(&api, "SELECT @@SESSION.sql_mode AS mode").await;
    assert_eq!(
        mode["rows"],
        json!([[
            "NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
        ]])
    );
    let zone = query(&api, "SELECT @@SESSION.time_zone AS zone").await;
    assert_eq!(zone["rows"], json!([["+00:00"]]));

    assert_eq!(
        query(&api, "SELECT CONNECTION_ID() AS id").await["rows"][0][0],
        id,
        "after sql_mode"
    );
    query(&api, "CREATE TEMPORARY TABLE scratch (x INT)").await;
    let answer = query(&api, "SELECT * FROM scratch").await;
    assert_eq!(answer["code"], "42S02", "{answer}");

    let lock = format!("{}-lock", cleanup.prefix());
    let answer = run(
        &api,
        "query",
        json!({ "statement": "SELECT GET_LOCK(?, 0) AS got", "params": [lock] }),
    )
    .await;
    assert_eq!(answer["rows"], json!([["1"]]));
    let answer = run(
        &api,
        "query",
        json!({ "statement": "SELECT IS_FREE_LOCK(?) AS free", "params": [lock] }),
    )
    .await;
    assert_eq!(
        answer["rows"],
        json!([["1"]]),
        "the named lock outlived its statement"
    );

    assert_eq!(
        query(&api, "SELECT CONNECTION_ID() AS id").await["rows"][0][0],
        id,
        "after locks"
    );
    query(&api, "LOCK TABLES t READ").await;
    // Under LOCK TABLES, a table it did not lock is refused (1100).
    let answer = query(&api, "SELECT COUNT(*) AS n FROM u").await;
    assert_eq!(answer["rows"], json!([["0"]]), "{answer}");

    assert_eq!(
        query(&api, "SELECT CONNECTION_ID() AS id").await["rows"][0][0],
        id,
        "after LOCK TABLES"
    );
    let answer = query(&api, "START TRANSACTION").await;
    assert_eq!(answer["error"], "query-failed", "{answer}");
    assert_eq!(answer["code"], "25000", "{answer}");
    let answer = run(
        &api,
        "execute",
        json!({ "statement": "INSERT INTO t (x) VALUES (7)" }),
    )
    .await;
    assert_eq!(answer, json!({ "count": 1 }));
    // Committed on its own: another session sees it.
    let seen: Option<u64> = root()
        .await
        .query_first(format!(
            "SELECT COUNT(*) FROM `{}_probe`.t WHERE x = 7",
            cleanup.prefix()
        ))
        .await
        .expect("root reads");
    assert_eq!(seen, Some(1));

    // All of it on the one connection: reset, never replaced.
    assert_eq!(
        query(&api, "SELECT CONNECTION_ID() AS id").await["rows"][0][0],
        id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_timeout_or_caps_is_killed_on_the_server() {
    let (cleanup, url) = database().await;
    let (_server, api, _dir) =
        probe(&url, "timeout_ms = 300\nmax_rows = 5\nmax_result_kb = 4\n").await;
    let tag = format!("orizuru-timeout-{}", cleanup.prefix());
    let started = Instant::now();
    let answer = query(&api, &format!("SELECT SLEEP(30) /* {tag} */")).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        answer,
        json!({
            "error": "timeout",
            "code": null,
            "sentence": "a statement on SQL connection \"admin\" ran past its timeout of 300ms and was cancelled; make it cheaper, or ask the operator to raise the connection's timeout_ms",
        })
    );
    let mut root = root().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running: Option<u64> = root
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
                (format!("%{tag}%"),),
            )
            .await
            .expect("the processlist is read");
        if running == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "the statement still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(root.disconnect().await);

    let rows = "WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) SELECT n FROM s";
    let answer = query(&api, rows).await;
    assert_eq!(answer["code"], "54000", "{answer}");
    assert_eq!(
        answer["sentence"],
        "MySQL refused a statement on SQL connection \"admin\": it returned more than 5 rows, past the cap of SQL connection \"admin\" (max_rows in [services.sql.admin]), so the host stopped reading and cancelled it (SQLSTATE 54000); hint: add a LIMIT or a WHERE, or ask the host's operator to raise max_rows"
    );
    let answer = query(&api, "SELECT REPEAT('x', 5000) AS big").await;
    assert_eq!(answer["code"], "54000", "{answer}");
    // The connection after a cut is a fresh one, and works.
    assert_eq!(query(&api, "SELECT 1 AS one").await["rows"], json!([["1"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_sentence_without_the_url() {
    let (_server, api, _dir) = probe("mysql://root:hunter2-pw@127.0.0.1:3306/", "").await;
    let answer = query(&api, "SELECT 1").await;
    assert_eq!(answer["error"], "connection-failed", "{answer}");
    let sentence = answer["sentence"].as_str().expect("a sentence");
    assert!(
        sentence.starts_with(
            "cannot connect to SQL connection \"admin\" (Access denied for user 'root'"
        ),
        "{sentence}"
    );
    assert!(
        sentence.ends_with("; check that the server is up and that the connection's URL is right"),
        "{sentence}"
    );
    for secret in ["hunter2", "mysql://", "3306"] {
        assert!(!sentence.contains(secret), "{secret} in {sentence}");
    }
}

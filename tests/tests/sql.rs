//! The SQL capability itself (`orizuru:service/sql`), through a test plugin
//! that runs the statements its proxied calls carry (`plugins/sql-probe`),
//! on the real server at 127.0.0.1:5432: parameters bound as text, values
//! answered as text, errors as sentences naming the connection, a statement
//! past its timeout cancelled on the server, and a server the host cannot
//! reach answered without its URL or password.

use std::time::{Duration, Instant};

use orizuru_tests::{Server, Tsuru};
use reqwest::Method;
use serde_json::{Value, json};

/// A host serving the probe as service `probe` on a connection `admin` to
/// `url`, with `extra` lines in that connection's table, and an instance
/// to call it through.
async fn probe(url: &str, extra: &str) -> (Server, Tsuru, tempfile::TempDir) {
    orizuru_tests::probe("sql-probe", "sql", url, extra).await
}

/// What the probe answered for one statement.
async fn run(api: &Tsuru, action: &str, body: Value) -> Value {
    let answer = api
        .json(Method::POST, &format!("/resources/probe/{action}"), body)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_go_as_text_and_values_come_back_as_text() {
    let (_server, api, _dir) = probe(LOCAL, "").await;

    let answer = run(
        &api,
        "query",
        json!({
            "statement": "SELECT $1::int + 1 AS n, $2::text IS NULL AS missing, 1.5::float8 AS f,
                                 'x'::varchar AS v, 7::int8 AS big, 'r'::\"char\" AS c,
                                 NULL::text AS nothing, 'NaN'::float4 AS nan",
            "params": ["41", null],
        }),
    )
    .await;
    assert_eq!(
        answer,
        json!({
            "columns": ["n", "missing", "f", "v", "big", "c", "nothing", "nan"],
            "rows": [["42", "true", "1.5", "x", "7", "r", null, "NaN"]],
        })
    );
    // Rows by name, from the catalog, with a parameter whose type the server infers.
    let answer = run(
        &api,
        "query",
        json!({
            "statement": "SELECT datname, datallowconn FROM pg_database WHERE datname = $1",
            "params": ["postgres"],
        }),
    )
    .await;
    assert_eq!(answer["rows"], json!([["postgres", "true"]]));
    let answer = run(
        &api,
        "execute",
        json!({ "statement": "SELECT generate_series(1, 3)" }),
    )
    .await;
    assert_eq!(answer, json!({ "count": 3 }));

    for (statement, params, kind, code, sentence) in [
        (
            "SELECT 1.5::numeric AS price",
            json!([]),
            "unsupported-type",
            Value::Null,
            "column \"price\" of a statement on SQL connection \"admin\" is of type numeric, which the host does not hand plugins; cast it to text in the statement (price::text)",
        ),
        (
            "SELECT $1::int",
            json!(["abc"]),
            "query-failed",
            json!("22P02"),
            "PostgreSQL refused a statement on SQL connection \"admin\": invalid input syntax for type integer: \"abc\" (SQLSTATE 22P02)",
        ),
        (
            "SELECT $1::int",
            json!([]),
            "query-failed",
            json!("08P01"),
            "PostgreSQL refused a statement on SQL connection \"admin\": the statement takes 1 parameters but was given 0 (SQLSTATE 08P01); hint: pass one value for each of $1..$n",
        ),
        (
            "SELECT 1; SELECT 2",
            json!([]),
            "query-failed",
            json!("42601"),
            "PostgreSQL refused a statement on SQL connection \"admin\": cannot insert multiple commands into a prepared statement (SQLSTATE 42601)",
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

    let answer = run(
        &api,
        "query",
        json!({ "connection": "reporting", "statement": "SELECT 1" }),
    )
    .await;
    assert_eq!(
        answer,
        json!({
            "error": "no-such-connection",
            "code": null,
            "sentence": "the service has no SQL connection \"reporting\" (it has \"admin\"); its operator must declare it as a [services.sql.reporting] table",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_timeout_is_cancelled_on_the_server() {
    let (_server, api, _dir) = probe(LOCAL, "timeout_ms = 300\n").await;
    let tag = format!(
        "orizuru-timeout-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let started = Instant::now();
    let answer = run(
        &api,
        "query",
        json!({ "statement": format!("SELECT pg_sleep(30) /* {tag} */") }),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        answer,
        json!({
            "error": "timeout",
            "code": null,
            "sentence": "a statement on SQL connection \"admin\" ran past its timeout of 300ms and was cancelled; make it cheaper, or ask the operator to raise the connection's timeout_ms",
        })
    );
    assert!(took < Duration::from_secs(3), "answered after {took:?}");

    // The server stops running it.
    let still_running = json!({
        "statement": "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
        "params": [format!("%{tag}%")],
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = run(&api, "query", still_running.clone()).await;
        if answer["rows"] == json!([["0"]]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the statement still runs: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_reach_is_named_by_its_connection_never_its_url() {
    // Nothing listens on port 1.
    let (_server, api, _dir) =
        probe("postgres://postgres:hunter2-pw@127.0.0.1:1/postgres", "").await;
    let answer = run(&api, "query", json!({ "statement": "SELECT 1" })).await;
    assert_eq!(answer["error"], "connection-failed", "{answer}");
    let sentence = answer["sentence"].as_str().expect("a sentence");
    assert!(
        sentence.starts_with("cannot connect to SQL connection \"admin\" (")
            && sentence
                .ends_with("); check that the server is up and that the connection's URL is right"),
        "{sentence}"
    );
    for secret in ["hunter2", "postgres://", ":1/"] {
        assert!(!sentence.contains(secret), "{secret} in {sentence}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_requires_tls_never_gets_plain_text() {
    // The local server's certificate (if it offers TLS at all) is not one
    // the Mozilla roots vouch for, so the host must refuse to go on.
    let (_server, api, _dir) = probe(
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=require",
        "",
    )
    .await;
    let answer = run(&api, "query", json!({ "statement": "SELECT 1" })).await;
    assert_eq!(answer["error"], "connection-failed", "{answer}");
    let sentence = answer["sentence"].as_str().expect("a sentence");
    assert!(
        sentence.starts_with("cannot connect to SQL connection \"admin\" ("),
        "{sentence}"
    );
    // The local server offers TLS with Debian's self-signed certificate.
    if sentence.contains("certificate") {
        assert!(
            sentence.ends_with("add sslmode=disable to the connection's URL"),
            "{sentence}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_state_carries_over_to_the_next_statement() {
    // One connection, so every statement runs in the same session.
    let (_server, api, _dir) = probe(LOCAL, "max_connections = 1\n").await;

    let set = run(
        &api,
        "execute",
        json!({ "statement": "SET application_name = 'leaked'" }),
    )
    .await;
    assert_eq!(set, json!({ "count": 0 }));
    let shown = run(
        &api,
        "query",
        json!({ "statement": "SELECT current_setting('application_name') AS name" }),
    )
    .await;
    assert_ne!(shown["rows"], json!([["leaked"]]), "a SET carried over");
    // Even one that could stop the host's own reset is answered as it ran.
    let set = run(
        &api,
        "execute",
        json!({ "statement": "SET statement_timeout = 1" }),
    )
    .await;
    assert_eq!(set, json!({ "count": 0 }));
    let shown = run(
        &api,
        "query",
        json!({ "statement": "SELECT current_setting('statement_timeout') AS t" }),
    )
    .await;
    assert_eq!(shown["rows"], json!([["0"]]), "a SET carried over");

    let made = run(
        &api,
        "execute",
        json!({ "statement": "CREATE TEMP TABLE scratch (n int)" }),
    )
    .await;
    assert_eq!(made, json!({ "count": 0 }));
    let gone = run(
        &api,
        "query",
        json!({ "statement": "SELECT to_regclass('pg_temp.scratch') IS NULL AS gone" }),
    )
    .await;
    assert_eq!(
        gone["rows"],
        json!([["true"]]),
        "a temporary table carried over"
    );

    // A transaction cannot outlive its statement: BEGIN is refused, and
    // a failure after it does not leave later statements failing.
    let begun = run(&api, "execute", json!({ "statement": "BEGIN" })).await;
    assert_eq!(
        begun,
        json!({
            "error": "query-failed",
            "code": "25000",
            "sentence": "PostgreSQL refused a statement on SQL connection \"admin\": the statement opened a transaction, which the host rolled back: each statement runs in a transaction of its own, and its connection goes back to the pool when it ends (SQLSTATE 25000); hint: do what must be atomic in one statement (a DO block, a WITH query changing several tables, or a function) instead of BEGIN ... COMMIT",
        })
    );
    let divided = run(&api, "query", json!({ "statement": "SELECT 1/0" })).await;
    assert_eq!(divided["code"], "22012", "{divided}");
    let after = run(&api, "query", json!({ "statement": "SELECT 1 AS one" })).await;
    assert_eq!(after["rows"], json!([["1"]]), "{after}");
}

/// The host process's resident memory (the test host runs in this process).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_a_cap_are_not_read_and_the_plugin_is_told_the_key() {
    let (_server, api, _dir) = probe(LOCAL, "").await;
    let (_roomy, roomy, _roomy_dir) = probe(LOCAL, "max_rows = 10000000\n").await;
    // 8 million NULLs once took the host from 274 MB to 1.34 GB.
    let nulls =
        json!({ "statement": "SELECT NULL::text AS nothing FROM generate_series(1, 8000000)" });
    let before = resident_bytes();

    let answer = run(&api, "query", nulls.clone()).await;
    assert_eq!(
        answer,
        json!({
            "error": "query-failed",
            "code": "54000",
            "sentence": "PostgreSQL refused a statement on SQL connection \"admin\": it returned more than 10000 rows, past the cap of SQL connection \"admin\" (max_rows in [services.sql.admin]), so the host stopped reading and cancelled it (SQLSTATE 54000); hint: add a LIMIT or a WHERE, or ask the host's operator to raise max_rows",
        })
    );
    // With the rows allowed, their size stops them: a NULL is not free.
    let answer = run(&roomy, "query", nulls).await;
    assert_eq!(
        answer,
        json!({
            "error": "query-failed",
            "code": "54000",
            "sentence": "PostgreSQL refused a statement on SQL connection \"admin\": it returned rows larger than 16 MiB, past the cap of SQL connection \"admin\" (max_result_kb in [services.sql.admin]), so the host stopped reading and cancelled it (SQLSTATE 54000); hint: add a LIMIT, or select fewer or smaller columns, or ask the host's operator to raise max_result_kb",
        })
    );
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 200 * 1024 * 1024,
        "the host grew by {} MiB",
        grown / (1024 * 1024)
    );

    // Within the caps, rows come back, on the same pools.
    for api in [&api, &roomy] {
        let answer = run(
            api,
            "query",
            json!({ "statement": "SELECT count(*) AS n FROM (SELECT NULL::text FROM generate_series(1, 10000)) AS rows" }),
        )
        .await;
        assert_eq!(answer["rows"], json!([["10000"]]), "{answer}");
        let answer = run(
            api,
            "query",
            json!({ "statement": "SELECT NULL::text AS nothing FROM generate_series(1, 10000)" }),
        )
        .await;
        assert_eq!(
            answer["rows"].as_array().map(Vec::len),
            Some(10000),
            "{answer}"
        );
    }
}

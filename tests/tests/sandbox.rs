//! A plugin that panics, loops, sleeps, hoards memory or recurses without end costs
//! its own request, answered with one sentence, and nothing else.

use std::time::{Duration, Instant};

use orizuru_tests::{Server, service};
use reqwest::Method;

async fn server() -> Server {
    Server::start(&[
        service("misbehave", "misbehave", "timeout_ms = 500\nmemory_mb = 32"),
        service("fake", "fake", ""),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misdeed_is_one_sentence_and_the_host_keeps_serving() {
    let server = server().await;
    let api = server.tsuru("misbehave");
    let neighbour = server.tsuru("fake");
    let cases = [
        (
            "panic",
            500,
            "plugin \"misbehave\" stopped: it trapped (wasm `unreachable` instruction executed)",
        ),
        (
            "loop",
            504,
            "plugin \"misbehave\" stopped: deadline of 500ms exceeded",
        ),
        (
            "sleep",
            504,
            "plugin \"misbehave\" stopped: deadline of 500ms exceeded",
        ),
        (
            "hog",
            500,
            "plugin \"misbehave\" stopped: memory limit of 32 MiB reached",
        ),
        (
            "deep",
            500,
            "plugin \"misbehave\" stopped: it trapped (call stack exhausted)",
        ),
    ];
    for (name, status, sentence) in cases {
        let started = Instant::now();
        let answer = api
            .form(Method::POST, "/resources", &[("name", name)])
            .await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (status, sentence),
            "{name}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
        assert!(!answer.body.contains('\n'), "one line, no backtrace");
        // A create that never finished leaves no instance behind.
        assert!(
            server
                .host
                .ledger
                .instance("misbehave", name)
                .await
                .expect("ledger")
                .is_none(),
            "{name}"
        );
        let events = server
            .host
            .ledger
            .events("misbehave", name)
            .await
            .expect("ledger");
        assert_eq!(events.len(), 1, "{name}: the failure is recorded");

        // The host, the same plugin and its neighbour all go on serving.
        let fine = format!("after-{name}");
        assert_eq!(
            api.form(Method::POST, "/resources", &[("name", &fine)])
                .await
                .status,
            201
        );
        assert_eq!(neighbour.get("/resources/plans").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_floods_of_output_are_not_faults() {
    let server = server().await;
    let api = server.tsuru("misbehave");
    let refused = api
        .form(Method::POST, "/resources", &[("name", "refuse")])
        .await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (400, "this plugin refuses instances named \"refuse\"")
    );
    assert!(
        server
            .host
            .ledger
            .instance("misbehave", "refuse")
            .await
            .expect("ledger")
            .is_none()
    );
    // Printing 20,000 lines (a megabyte) is dropped past the log budget, not a failure.
    let chatty = api
        .form(Method::POST, "/resources", &[("name", "chatty")])
        .await;
    assert_eq!(chatty.status, 201, "{}", chatty.body);
}

/// A call that outlives its deadline does not hold up calls to other services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_block_its_neighbours() {
    let server = server().await;
    let api = server.tsuru("misbehave");
    let looping = tokio::spawn(async move {
        api.form(Method::POST, "/resources", &[("name", "loop")])
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let neighbour = server.tsuru("fake");
    for _ in 0..20 {
        assert_eq!(neighbour.get("/resources/plans").await.status, 200);
    }
    assert!(
        !looping.is_finished(),
        "the neighbour's calls were answered while the loop ran"
    );
    assert_eq!(looping.await.expect("the looping call ends").status, 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_instance_limit_a_service_answers_503_and_its_neighbours_serve() {
    let server = Server::start_config(&format!(
        "queue_wait_ms = 200\n{}{}",
        service(
            "misbehave",
            "misbehave",
            "timeout_ms = 1500\nmax_concurrent_calls = 1",
        ),
        service("fake", "fake", ""),
    ))
    .await;
    let api = server.tsuru("misbehave");
    // One request parks the service's only place for its deadline.
    let parked = {
        let api = api.clone();
        tokio::spawn(async move {
            api.form(Method::POST, "/resources", &[("name", "sleep")])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = api.get("/resources/plans").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(
        refused.body,
        "service \"misbehave\" is already running as many requests as it may at once (1) and none ended within 200ms; try again in a moment"
    );
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|value| value.to_str().ok()),
        Some("1")
    );
    // A refused create reserves nothing: the name is free afterwards.
    let create = api
        .form(Method::POST, "/resources", &[("name", "later")])
        .await;
    assert_eq!(create.status, 503, "{}", create.body);
    assert_eq!(
        server.tsuru("fake").get("/resources/plans").await.status,
        200
    );

    assert_eq!(parked.await.expect("the parked request ends").status, 504);
    assert_eq!(api.get("/resources/plans").await.status, 200);
    let create = api
        .form(Method::POST, "/resources", &[("name", "later")])
        .await;
    assert_eq!(create.status, 201, "{}", create.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_requests_past_their_size_limits_get_one_sentence() {
    let server = Server::start(&[service("misbehave", "misbehave", "max_info_items = 50")]).await;
    let api = server.tsuru("misbehave");
    for name in ["plain", "big-info", "big-body"] {
        let created = api
            .form(Method::POST, "/resources", &[("name", name)])
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let broke = "plugin \"misbehave\" stopped: its answer broke the contract: ";
    let many = api
        .form(
            Method::POST,
            "/resources/plain/bind-app",
            &[("app-name", "many-env")],
        )
        .await;
    assert_eq!(
        (many.status, many.body.as_str()),
        (
            500,
            format!("{broke}it returned 500 env vars, more than the 100 its service allows (max_env_vars)").as_str()
        )
    );
    let fat = api
        .form(
            Method::POST,
            "/resources/plain/bind-app",
            &[("app-name", "fat-env")],
        )
        .await;
    assert_eq!(fat.status, 500);
    assert_eq!(
        fat.body,
        format!(
            "{broke}it returned 101 KiB of env vars, more than the 64 KiB its service allows (max_env_kb)"
        )
    );
    // Nothing was bound.
    assert!(
        server
            .host
            .ledger
            .bindings("misbehave", "plain")
            .await
            .expect("ledger")
            .is_empty()
    );
    let info = api.get("/resources/big-info").await;
    assert_eq!(
        (info.status, info.body.as_str()),
        (
            500,
            format!("{broke}it returned 1000 info items, more than the 50 its service allows (max_info_items)").as_str()
        )
    );
    assert_eq!(api.get("/resources/plain").await.status, 200);
    let body = api.get("/resources/big-body/export").await;
    assert_eq!(
        (body.status, body.body.as_str()),
        (
            500,
            format!("{broke}it returned a body of 2048 KiB, more than the 1024 KiB its service allows (max_proxy_body_kb)").as_str()
        )
    );
    assert_eq!(api.get("/resources/plain/export").await.status, 200);

    // A request body past max_request_kb (1 MiB by default) is refused before any plugin runs.
    let huge = "x".repeat(2 << 20);
    let refused = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "huge"), ("description", &huge)],
        )
        .await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (
            413,
            "the request body is larger than this host accepts (1024 KiB); send a smaller one"
        )
    );
    assert!(
        server
            .host
            .ledger
            .instance("misbehave", "huge")
            .await
            .expect("ledger")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_sees_none_of_the_hosts_environment_files_or_network() {
    let server = server().await;
    let api = server.tsuru("misbehave");
    // There is something to see: the host has env vars.
    assert!(std::env::vars().count() > 0);
    let snooped = api
        .form(Method::POST, "/resources", &[("name", "snoop")])
        .await;
    assert_eq!(snooped.status, 400, "{}", snooped.body);
    assert!(
        snooped
            .body
            .starts_with("env vars: 0; /etc/passwd: refused ("),
        "{}",
        snooped.body
    );
    assert!(
        snooped.body.contains("127.0.0.1:22: refused ("),
        "{}",
        snooped.body
    );

    // Slow but within its deadline is simply slow.
    let started = Instant::now();
    let slow = api
        .form(Method::POST, "/resources", &[("name", "slow")])
        .await;
    assert_eq!(slow.status, 201, "{}", slow.body);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

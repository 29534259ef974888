//! What an operator's tooling reads off a running host: `GET /healthz`,
//! `GET /readyz` (which names a service whose plugin did not load), the
//! `X-Request-Id` every answer carries (tsuru's, or a new one), `GET
//! /metrics`, and a stop that drains for a bounded time and names what it cut.

use std::time::Duration;

use orizuru_tests::{ADMIN_TOKEN, Server, password, plugin_bytes, service};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_say_alive_and_which_services_are_not_ready() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    std::fs::write(dir.path().join("fake.wasm"), plugin_bytes("fake")).expect("written");
    let config = dir.path().join("orizuru.toml");
    let base = format!(
        "admin_token = \"{ADMIN_TOKEN}\"\n[[services]]\nid = \"fake\"\nplugin = \"fake.wasm\"\npassword = \"{}\"\n",
        password("fake")
    );
    std::fs::write(&config, &base).expect("written");
    let server = Server::start_file(&config).await;
    let client = reqwest::Client::new();
    let probe = |path: &'static str| {
        let request = client.get(format!("{}{path}", server.url));
        async move {
            let response = request.send().await.expect("the probe answers");
            let status = response.status().as_u16();
            (status, response.text().await.expect("a body"))
        }
    };
    // The config file is watched: its changes show within a few seconds.
    let readyz_becomes = |expected: (u16, String)| {
        let probe = &probe;
        async move {
            let mut seen = probe("/readyz").await;
            for _ in 0..200 {
                if seen == expected {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                seen = probe("/readyz").await;
            }
            assert_eq!(seen, expected);
        }
    };
    assert_eq!(probe("/healthz").await, (200, "alive\n".to_owned()));
    assert_eq!(
        probe("/readyz").await,
        (200, "ready: every service is serving\n".to_owned())
    );

    // A service added to the file whose plugin does not load.
    std::fs::write(dir.path().join("broken.wasm"), b"not wasm").expect("written");
    let with_broken = format!(
        "{base}[[services]]\nid = \"broken\"\nplugin = \"broken.wasm\"\npassword = \"{}\"\n",
        password("broken")
    );
    std::fs::write(&config, with_broken).expect("written");
    let not_ready = (
        503,
        "not ready: service \"broken\" is not serving, its plugin did not load; GET /admin/services/broken says why\n"
            .to_owned(),
    );
    readyz_becomes(not_ready).await;
    // Alive all the same, and the other service serves on.
    assert_eq!(probe("/healthz").await.0, 200);
    assert_eq!(
        server.tsuru("fake").get("/resources/plans").await.status,
        200
    );

    // The plugin file fixed: ready again.
    std::fs::write(dir.path().join("broken.wasm"), plugin_bytes("fake")).expect("written");
    let ready = (200, "ready: every service is serving\n".to_owned());
    readyz_becomes(ready).await;

    let refused = client
        .post(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status().as_u16(), 405);
    let sentence = refused.text().await.expect("a body");
    assert!(sentence.contains("the health probes"), "{sentence}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let server = Server::start(&[orizuru_tests::service("fake", "fake", "")]).await;
    let api = server.tsuru("fake");

    // tsuru's own id comes back as sent.
    let response = api
        .request(Method::GET, "/resources/plans")
        .header("X-Request-Id", "tsuru-4f1c")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.headers()["x-request-id"], "tsuru-4f1c");

    // Without one, each answer gets an id of its own, errors included.
    let mut ids = Vec::new();
    for path in [
        "/resources/plans",
        "/resources/nothing-here/status",
        "/healthz",
    ] {
        let response = api
            .request(Method::GET, path)
            .send()
            .await
            .expect("an answer");
        let id = response.headers()["x-request-id"]
            .to_str()
            .expect("text")
            .to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

/// The value of one sample line of a metrics page, by its name and labels as written.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a sample value is a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_stops_busy_swaps_and_failed_loads() {
    let server = Server::start_config(&format!(
        "admin_token = \"{ADMIN_TOKEN}\"\nqueue_wait_ms = 0\n{}{}",
        service("queue", "queue", ""),
        service(
            "misbehave",
            "misbehave",
            "timeout_ms = 500\nmax_concurrent_calls = 1",
        ),
    ))
    .await;
    let queue = server.tsuru("queue");
    let misbehave = server.tsuru("misbehave");
    let create = [("name", "orders"), ("plan", "small")];
    assert_eq!(
        queue.form(Method::POST, "/resources", &create).await.status,
        201
    );
    assert_eq!(
        queue
            .form(
                Method::POST,
                "/resources",
                &[("name", "orders"), ("plan", "large")]
            )
            .await
            .status,
        409
    );
    assert_eq!(
        queue
            .form(
                Method::POST,
                "/resources/orders/bind-app",
                &[("app-name", "web")]
            )
            .await
            .status,
        201
    );
    assert_eq!(queue.get("/resources/plans").await.status, 200);
    // Credentials of no service: counted, but never under the name sent.
    let stranger = orizuru_tests::Tsuru::new(&server.url, "nobody-at-all", "guess");
    assert_eq!(stranger.get("/resources/plans").await.status, 401);
    // A trap, a deadline, and a 503 while the deadline holds the only place.
    assert_eq!(
        misbehave
            .form(Method::POST, "/resources", &[("name", "panic")])
            .await
            .status,
        500
    );
    let parked = {
        let misbehave = misbehave.clone();
        tokio::spawn(async move {
            misbehave
                .form(Method::POST, "/resources", &[("name", "loop")])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(misbehave.get("/resources/plans").await.status, 503);
    assert_eq!(parked.await.expect("the parked request ends").status, 504);
    // A swap, and an upload refused.
    let admin = server.admin();
    assert_eq!(
        admin.upload("queue", plugin_bytes("fake")).await.status,
        200
    );
    assert_eq!(
        admin.upload("queue", b"not wasm".to_vec()).await.status,
        422
    );

    let response = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("/metrics answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let page = response.text().await.expect("a page");
    let expected = [
        (
            r#"orizuru_requests_total{service="queue",action="create",status="201"}"#,
            1.0,
        ),
        (
            r#"orizuru_requests_total{service="queue",action="create",status="409"}"#,
            1.0,
        ),
        (
            r#"orizuru_requests_total{service="queue",action="bind-app",status="201"}"#,
            1.0,
        ),
        (
            r#"orizuru_requests_total{service="queue",action="plans",status="200"}"#,
            1.0,
        ),
        (
            r#"orizuru_requests_total{service="unknown",action="plans",status="401"}"#,
            1.0,
        ),
        (
            r#"orizuru_requests_total{service="misbehave",action="create",status="504"}"#,
            1.0,
        ),
        (
            r#"orizuru_request_duration_seconds_count{service="queue",action="create"}"#,
            2.0,
        ),
        (
            r#"orizuru_plugin_stops_total{service="misbehave",reason="trap"}"#,
            1.0,
        ),
        (
            r#"orizuru_plugin_stops_total{service="misbehave",reason="deadline"}"#,
            1.0,
        ),
        (r#"orizuru_busy_total{service="misbehave"}"#, 1.0),
        (r#"orizuru_plugin_swaps_total{service="queue"}"#, 1.0),
        (r#"orizuru_plugin_failed_loads_total{service="queue"}"#, 1.0),
        (r#"orizuru_instances_in_use{service="queue"}"#, 0.0),
        (r#"orizuru_ledger_instances{service="queue"}"#, 1.0),
        (r#"orizuru_ledger_instances{service="misbehave"}"#, 0.0),
    ];
    for (series, value) in expected {
        assert_eq!(sample(&page, series), Some(value), "{series} in\n{page}");
    }
    // Instantiate and call are timed per plugin call: the queue's create,
    // bind and plans, and the plans call that checks each version it loads
    // (at start and at the upload); a duplicate create never reaches it.
    for series in [
        r#"orizuru_plugin_instantiate_duration_seconds_count{service="queue"}"#,
        r#"orizuru_plugin_call_duration_seconds_count{service="queue"}"#,
    ] {
        assert_eq!(sample(&page, series), Some(5.0), "{series} in\n{page}");
    }
    assert!(!page.contains("nobody-at-all"), "{page}");
    assert!(page.ends_with("# EOF\n"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_requests_in_flight_then_cuts_and_names_the_rest() {
    let mut server = Server::start_config(&format!(
        "drain_timeout_secs = 1\n{}",
        service("misbehave", "misbehave", "timeout_ms = 3000")
    ))
    .await;
    let api = server.tsuru("misbehave");
    let send = |name: &'static str| {
        let api = api.clone();
        tokio::spawn(async move {
            api.request(Method::POST, "/resources")
                .header("x-request-id", format!("stop-{name}"))
                .form(&[("name", name)])
                .send()
                .await
        })
    };
    // One that would run for its whole 3 s deadline, one that takes 300 ms.
    let sleeping = send("sleep");
    let slow = send("slow");
    for _ in 0..100 {
        if server.host.in_flight.now().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.host.in_flight.now().len(), 2);

    let drained = server.stop().await;
    let cut: Vec<(String, String, String)> = drained
        .cut
        .iter()
        .map(|request| {
            (
                request.method.clone(),
                request.path.clone(),
                request.request_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        cut,
        [(
            "POST".to_owned(),
            "/resources".to_owned(),
            "stop-sleep".to_owned()
        )]
    );
    let slow = slow
        .await
        .expect("the task ends")
        .expect("the slow request is answered before the drain ends");
    assert_eq!(slow.status(), 201);
    // The cut request's connection is closed without an answer; its
    // create ran on to its deadline, and the stop waited for it to be
    // undone: nothing of it is in the ledger.
    assert!(sleeping.await.expect("the task ends").is_err());
    assert_eq!(
        server
            .host
            .ledger
            .instance("misbehave", "sleep")
            .await
            .expect("the ledger answers"),
        None
    );
}

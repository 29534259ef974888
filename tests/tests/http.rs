//! Outbound HTTP (`wasi:http/outgoing-handler`) through a test plugin that
//! sends the requests its proxied calls carry (`plugins/http-probe`), to
//! upstream servers on loopback: an allowed origin answers; any other origin,
//! an answer past `max_response_kb`, a wait past `timeout_ms` and a request
//! past `max_requests` fail inside the plugin with a sentence it can read;
//! the operator's credentials for an origin reach that origin only, in place
//! of the plugin's own, and never across a redirect; and a plugin importing `wasi:http` without a `[services.http]` table is
//! refused at load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use orizuru_tests::{Server, Tsuru, plugin_bytes, service};
use reqwest::Method;
use serde_json::{Value, json};

/// An upstream server on `127.0.0.1:0` that counts the requests it gets.
struct Upstream {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Upstream {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new()
            .route(
                "/hello",
                get(|headers: HeaderMap| async move {
                    let probe = headers
                        .get("x-probe")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    (
                        [(header::CONTENT_TYPE, "text/plain")],
                        format!("hello, {probe}"),
                    )
                }),
            )
            .route(
                "/echo",
                post(|headers: HeaderMap, body: Bytes| async move {
                    let kind = headers
                        .get(header::CONTENT_TYPE)
                        .cloned()
                        .unwrap_or(header::HeaderValue::from_static("none"));
                    ([(header::CONTENT_TYPE, kind)], body)
                }),
            )
            .route(
                "/sized",
                get(|Query(query): Query<Vec<(String, String)>>| async move {
                    let kib: usize = query
                        .iter()
                        .find(|(key, _)| key == "kb")
                        .and_then(|(_, value)| value.parse().ok())
                        .unwrap_or(1);
                    let body = vec![b'x'; kib * 1024];
                    if query.iter().any(|(key, _)| key == "streamed") {
                        // Chunks with no Content-Length: the cap must count them.
                        let chunks = body
                            .chunks(4096)
                            .map(|chunk| Ok::<_, std::io::Error>(Bytes::copy_from_slice(chunk)))
                            .collect::<Vec<_>>();
                        Body::from_stream(futures_util::stream::iter(chunks))
                    } else {
                        Body::from(body)
                    }
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "too late"
                }),
            )
            .route(
                "/auth",
                get(|headers: HeaderMap| async move {
                    headers
                        .get(header::AUTHORIZATION)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("none")
                        .to_owned()
                }),
            )
            .route(
                "/redirect",
                get(|Query(query): Query<Vec<(String, String)>>| async move {
                    let to = query
                        .iter()
                        .find(|(key, _)| key == "to")
                        .map(|(_, value)| value.clone())
                        .unwrap_or_default();
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)], "")
                }),
            )
            .route(
                "/missing",
                get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
            )
            .layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    next.run(request)
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the upstream");
        let port = listener.local_addr().expect("its address").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A host serving the probe as service `probe`, allowed to call
/// `allowed`, with an instance to call it through.
async fn probe(allowed: &Upstream, extra: &str) -> (Server, Tsuru) {
    let server = Server::start(&[service(
        "probe",
        "http-probe",
        &format!(
            "timeout_ms = 10000\n[services.http]\nallow = [\"http://127.0.0.1:{}\"]\n{extra}",
            allowed.port
        ),
    )])
    .await;
    let api = server.tsuru("probe");
    let created = api
        .form(Method::POST, "/resources", &[("name", "probe")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    (server, api)
}

/// What the probe answered for one order.
async fn send(api: &Tsuru, order: Value) -> Value {
    let answer = api.json(Method::POST, "/resources/probe/send", order).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_answers_and_every_other_is_refused_inside_the_plugin() {
    let allowed = Upstream::start().await;
    let other = Upstream::start().await;
    let (_server, api) = probe(&allowed, "").await;
    let base = format!("http://127.0.0.1:{}", allowed.port);

    let hello = send(
        &api,
        json!({ "url": format!("{base}/hello"), "headers": { "x-probe": "from-the-plugin" } }),
    )
    .await;
    assert_eq!(
        hello,
        json!({ "status": 200, "content_type": "text/plain", "body": "hello, from-the-plugin" })
    );
    let echoed = send(
        &api,
        json!({
            "method": "POST",
            "url": format!("{base}/echo?and=a-query"),
            "headers": { "content-type": "application/json" },
            "body": "{\"plan\":\"small\"}",
        }),
    )
    .await;
    assert_eq!(
        echoed,
        json!({ "status": 200, "content_type": "application/json", "body": "{\"plan\":\"small\"}" })
    );
    // A status the server chose is an answer, not a failure.
    let missing = send(&api, json!({ "url": format!("{base}/missing") })).await;
    assert_eq!(missing["status"], 404, "{missing}");
    assert_eq!(missing["body"], "no such thing", "{missing}");
    assert_eq!(allowed.hits(), 3);

    for (url, origin) in [
        (
            format!("http://127.0.0.1:{}/hello", other.port),
            format!("http://127.0.0.1:{}", other.port),
        ),
        // The same server under another name, or another scheme, is another origin.
        (
            format!("http://localhost:{}/hello", allowed.port),
            format!("http://localhost:{}", allowed.port),
        ),
        (
            format!("https://127.0.0.1:{}/hello", allowed.port),
            format!("https://127.0.0.1:{}", allowed.port),
        ),
        // Refused before any name is looked up.
        (
            "https://metadata.internal.example/latest".to_owned(),
            "https://metadata.internal.example".to_owned(),
        ),
    ] {
        let refused = send(&api, json!({ "url": url })).await;
        assert_eq!(
            refused,
            json!({
                "error": "ErrorCode::HttpRequestDenied",
                "denied": true,
                "sentence": format!(
                    "the request to {origin} was refused: the service may not call it; ask the operator to add it to [services.http] allow"
                ),
            }),
            "{url}"
        );
    }
    assert_eq!(other.hits(), 0, "a refused request never leaves the host");
    assert_eq!(allowed.hits(), 3);

    let invalid = send(&api, json!({ "url": "ftp://127.0.0.1/file" })).await;
    assert_eq!(
        invalid["sentence"],
        "the request to ftp://127.0.0.1/file cannot be sent: it is not an absolute http:// or https:// URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_credentials_reach_their_origin_only() {
    let held = Upstream::start().await;
    let other = Upstream::start().await;
    let dir = tempfile::tempdir().expect("a temporary dir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "s3cret-pw\n").expect("the password is written");
    let held_origin = format!("http://127.0.0.1:{}", held.port);
    let other_origin = format!("http://127.0.0.1:{}", other.port);
    let server = Server::start(&[service(
        "probe",
        "http-probe",
        &format!(
            "timeout_ms = 10000\n[services.http]\nallow = [\"{held_origin}\", \"{other_origin}\"]\n[services.http.auth.\"{held_origin}\"]\nbasic_user = \"operator\"\nbasic_password_file = \"{}\"\n",
            password_file.display()
        ),
    )])
    .await;
    let api = server.tsuru("probe");
    let created = api
        .form(Method::POST, "/resources", &[("name", "probe")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    // base64("operator:s3cret-pw")
    let basic = "Basic b3BlcmF0b3I6czNjcmV0LXB3";

    let sent = send(&api, json!({ "url": format!("{held_origin}/auth") })).await;
    assert_eq!(sent["body"], basic, "{sent}");
    // A plugin's own Authorization to that origin is replaced by the operator's.
    let forged = send(
        &api,
        json!({ "url": format!("{held_origin}/auth"), "headers": { "authorization": "Basic Z3Vlc3Q6Z3Vlc3Q=" } }),
    )
    .await;
    assert_eq!(forged["body"], basic, "{forged}");
    // Another allowed origin gets nothing from the host, and keeps what the plugin sets.
    let elsewhere = send(&api, json!({ "url": format!("{other_origin}/auth") })).await;
    assert_eq!(elsewhere["body"], "none", "{elsewhere}");
    let own = send(
        &api,
        json!({ "url": format!("{other_origin}/auth"), "headers": { "authorization": "Bearer the-plugins" } }),
    )
    .await;
    assert_eq!(own["body"], "Bearer the-plugins", "{own}");
    // A redirect is not followed: it reaches the plugin, and nothing reaches its target.
    let before = other.hits();
    let redirected = send(
        &api,
        json!({ "url": format!("{held_origin}/redirect?to={other_origin}/auth") }),
    )
    .await;
    assert_eq!(redirected["status"], 307, "{redirected}");
    assert_eq!(other.hits(), before, "the host followed a redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_past_the_size_cap_waits_past_the_timeout_and_requests_past_the_count_fail_inside_the_plugin()
 {
    let upstream = Upstream::start().await;
    let (_server, api) = probe(
        &upstream,
        "timeout_ms = 300\nmax_response_kb = 64\nmax_requests = 3",
    )
    .await;
    let base = format!("http://127.0.0.1:{}", upstream.port);

    // Up to the cap, with or without a Content-Length.
    for url in [
        format!("{base}/sized?kb=64"),
        format!("{base}/sized?kb=64&streamed"),
    ] {
        let answer = send(&api, json!({ "url": url })).await;
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["body"].as_str().map(str::len), Some(64 * 1024));
    }
    let too_large = format!(
        "the answer from http://127.0.0.1:{} is larger than [services.http] max_response_kb allows",
        upstream.port
    );
    for (url, code) in [
        (
            format!("{base}/sized?kb=65"),
            "ErrorCode::HttpResponseBodySize(Some(66560))",
        ),
        (
            format!("{base}/sized?kb=2048&streamed"),
            "ErrorCode::HttpResponseBodySize(None)",
        ),
    ] {
        let answer = send(&api, json!({ "url": url })).await;
        assert_eq!(answer["error"], code, "{answer}");
        assert_eq!(answer["sentence"], too_large, "{answer}");
    }

    let late = send(&api, json!({ "url": format!("{base}/slow") })).await;
    assert_eq!(
        late["sentence"],
        format!(
            "http://127.0.0.1:{} did not answer in time (the service's [services.http] timeout_ms)",
            upstream.port
        ),
        "{late}"
    );
    // A plugin asking for longer waits gets the service's bound still.
    let late = send(
        &api,
        json!({ "url": format!("{base}/slow"), "timeout_ms": 60_000 }),
    )
    .await;
    assert!(
        late["sentence"].as_str().is_some_and(|sentence| sentence
            .ends_with("did not answer in time (the service's [services.http] timeout_ms)")),
        "{late}"
    );

    // Each call may send max_requests; the next call starts afresh.
    let hello = json!({ "url": format!("{base}/hello"), "times": 3 });
    assert_eq!(send(&api, hello.clone()).await["status"], 200);
    assert_eq!(send(&api, hello).await["status"], 200);
    let one_too_many = send(&api, json!({ "url": format!("{base}/hello"), "times": 4 })).await;
    assert_eq!(
        one_too_many["sentence"],
        format!(
            "the request to http://127.0.0.1:{} was refused: this call already sent as many requests as [services.http] max_requests allows",
            upstream.port
        ),
        "{one_too_many}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_calling_out_without_the_grant_is_refused_at_load() {
    let server = Server::start(&[service("quiet", "fake", "logging = true")]).await;
    let refused = server
        .admin()
        .upload("quiet", plugin_bytes("http-probe"))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .starts_with("the uploaded plugin imports wasi:http/"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(
            "which service \"quiet\" is not granted; add a [services.http] table with the origins it may call to its [[services]] entry"
        ),
        "{}",
        refused.body
    );
    // The old version serves on.
    assert_eq!(
        server.tsuru("quiet").get("/resources/plans").await.status,
        200
    );
}

//! What an operator's tooling reads off a running host: `GET /healthz`,
//! `GET /readyz` (which names a service whose plugin did not load), and the
//! `X-Request-Id` every answer carries (tsuru's, or a new one).

use orizuru_tests::{ADMIN_TOKEN, Server, password, plugin_bytes};
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

//! Plugins built against an older WIT version keep loading: each version
//! the host serves has a test plugin whose bindings come straight from its
//! folder (`guest-sdk/wit/since_v0.1.0` for `plugins/wit-0-1-0`), not from
//! the SDK, which moves on, and is answered as its version says.

use orizuru_tests::{Server, plugin_bytes, service};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_plugin_built_against_0_1_0_is_served_as_0_1_0_says() {
    let server = Server::start(&[service("frozen", "wit-0-1-0", "")]).await;
    assert_eq!(
        server.admin().service("frozen").await["active"]["wit"],
        "0.1.0"
    );
    let api = server.tsuru("frozen");

    let plans = api.get("/resources/plans").await;
    assert_eq!(plans.status, 200, "{}", plans.body);
    assert_eq!(
        plans.json(),
        json!([{"name": "single", "description": "the one plan of version 0.1.0"}])
    );

    // create: ready, pending, and two of the version's refusals.
    let created = api
        .form(
            Method::POST,
            "/resources",
            &[
                ("name", "kept"),
                ("user", "ana@example.com"),
                ("parameters.size", "8"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let slow = api
        .form(Method::POST, "/resources", &[("name", "slow")])
        .await;
    assert_eq!(slow.status, 202, "{}", slow.body);
    let taken = api
        .form(Method::POST, "/resources", &[("name", "taken")])
        .await;
    assert_eq!(
        (taken.status, taken.body.as_str()),
        (
            409,
            "instance \"taken\" is held by another team; pick another name"
        )
    );
    let asks = api
        .form(Method::POST, "/resources", &[("name", "asks")])
        .await;
    assert_eq!(
        (asks.status, asks.body.as_str()),
        (400, "service \"frozen\" needs these parameters: size")
    );

    // The instance's data and parameters come back as the plugin keeps them.
    let info = api.get("/resources/kept").await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(
        info.info_items(),
        [
            ("Data".to_owned(), "made by ana@example.com".to_owned()),
            ("Parameters".to_owned(), r#"{"size":"8"}"#.to_owned()),
        ]
    );

    // status: up, pending, and the plugin's own words.
    assert_eq!(api.get("/resources/kept/status").await.status, 204);
    let pending = api.get("/resources/slow/status").await;
    assert_eq!(pending.status, 202, "{}", pending.body);
    assert!(
        pending.body.starts_with("still provisioning"),
        "{}",
        pending.body
    );
    let odd = api
        .form(Method::POST, "/resources", &[("name", "odd")])
        .await;
    assert_eq!(odd.status, 201, "{}", odd.body);
    let own_words = api.get("/resources/odd/status").await;
    assert_eq!(
        (own_words.status, own_words.body.as_str()),
        (200, "in its own words")
    );

    // Binds answer the plugin's env; unbinds, the undoing of update and remove answer as tsuru expects.
    let bound = api
        .form(
            Method::POST,
            "/resources/kept/bind-app",
            &[("app-name", "web"), ("app-hosts", "web.example.com")],
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    assert_eq!(
        bound.json(),
        json!({"FROZEN_INSTANCE": "kept", "FROZEN_APP": "web", "FROZEN_HOSTS": "web.example.com"})
    );
    let job = api
        .form(
            Method::PUT,
            "/resources/kept/binds/jobs/nightly",
            &[("job-name", "nightly")],
        )
        .await;
    assert_eq!(job.status, 201, "{}", job.body);
    assert_eq!(
        job.json(),
        json!({"FROZEN_INSTANCE": "kept", "FROZEN_JOB": "nightly"})
    );
    let proxied = api.get("/resources/kept/anything").await;
    assert_eq!(
        (proxied.status, proxied.body.as_str()),
        (200, "GET /anything reached kept")
    );
    let update = api
        .form(Method::PUT, "/resources/kept", &[("plan", "single")])
        .await;
    assert_eq!(update.status, 404, "{}", update.body);
    assert_eq!(
        api.form(Method::DELETE, "/resources/kept/binds/jobs/nightly", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        api.form(
            Method::DELETE,
            "/resources/kept/bind-app",
            &[("app-name", "web")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        api.form(Method::DELETE, "/resources/kept", &[])
            .await
            .status,
        200
    );
    assert_eq!(api.get("/resources/kept").await.status, 404);
}

/// The admin API takes it as an upload too, as a hot swap would.
#[tokio::test]
async fn a_plugin_built_against_0_1_0_is_taken_as_an_upload() {
    let server = Server::start(&[service("frozen", "fake", "")]).await;
    let uploaded = server
        .admin()
        .upload("frozen", plugin_bytes("wit-0-1-0"))
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    assert_eq!(uploaded.json()["wit"], "0.1.0");
    let plans = server.tsuru("frozen").get("/resources/plans").await;
    assert_eq!(plans.json()[0]["name"], "single", "{}", plans.body);
}

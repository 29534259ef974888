//! `wasi:keyvalue`: a plugin's state is kept by the host, for its service
//! alone, through restarts and hot swaps.

use orizuru_tests::{Server, Tsuru, plugin_bytes, service};
use reqwest::Method;

async fn info(api: &Tsuru, name: &str) -> Vec<(String, String)> {
    let answer = api.get(&format!("/resources/{name}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.info_items()
}

fn items(creates: &str, plan: &str, keys: &str) -> Vec<(String, String)> {
    [("Creates", creates), ("Plan", plan), ("Keys", keys)]
        .into_iter()
        .map(|(label, value)| (label.to_owned(), value.to_owned()))
        .collect()
}

async fn create(api: &Tsuru, name: &str, plan: &str) {
    let created = api
        .form(
            Method::POST,
            "/resources",
            &[("name", name), ("plan", plan)],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_per_service_and_outlives_restarts_and_swaps() {
    let server = Server::start(&[
        service("left", "counter", "keyvalue = true"),
        service("right", "counter", "keyvalue = true"),
    ])
    .await;
    let (left, right) = (server.tsuru("left"), server.tsuru("right"));
    create(&left, "db-a", "small").await;
    create(&left, "db-b", "large").await;
    create(&right, "db-a", "tiny").await;

    // The same bucket and keys, but each service sees only its own.
    assert_eq!(
        info(&left, "db-a").await,
        items("2", "small", "creates,plan:db-a,plan:db-b")
    );
    assert_eq!(
        info(&right, "db-a").await,
        items("1", "tiny", "creates,plan:db-a")
    );

    // A swap to another plugin and back: the state was never in the plugin.
    let admin = server.admin();
    assert_eq!(admin.upload("left", plugin_bytes("fake")).await.status, 200);
    assert_eq!(admin.rollback("left", None).await.status, 200);
    assert_eq!(
        info(&left, "db-b").await,
        items("2", "large", "creates,plan:db-a,plan:db-b")
    );

    // A restart keeps it too; a removal forgets what the plugin deletes.
    let server = server.restart().await;
    let left = server.tsuru("left");
    let removed = left
        .send(left.request(Method::DELETE, "/resources/db-b"))
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        info(&left, "db-a").await,
        items("2", "small", "creates,plan:db-a")
    );
    create(&left, "db-c", "small").await;
    assert_eq!(
        info(&left, "db-c").await,
        items("3", "small", "creates,plan:db-a,plan:db-c")
    );
    assert_eq!(
        info(&server.tsuru("right"), "db-a").await,
        items("1", "tiny", "creates,plan:db-a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_using_the_store_needs_the_grant() {
    let server = Server::start(&[service("plain", "fake", "")]).await;
    let refused = server
        .admin()
        .upload("plain", plugin_bytes("counter"))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.starts_with("the uploaded plugin imports wasi:keyvalue/")
            && refused.body.contains(
                "which service \"plain\" is not granted; add `keyvalue = true` to its [[services]] entry to grant it"
            ),
        "{}",
        refused.body
    );
}

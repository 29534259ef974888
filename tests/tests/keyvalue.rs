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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_past_its_quota_is_told_the_quota_and_the_key_that_raises_it() {
    let server = Server::start(&[
        service("few", "counter", "keyvalue = true\nmax_keyvalue_keys = 3"),
        service("small", "counter", "keyvalue = true\nmax_keyvalue_kb = 1"),
    ])
    .await;

    // Keys: "creates", then one per instance.
    let few = server.tsuru("few");
    create(&few, "first", "small").await;
    create(&few, "second", "small").await;
    let refused = few
        .form(
            Method::POST,
            "/resources",
            &[("name", "third"), ("plan", "small")],
        )
        .await;
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert_eq!(
        refused.body,
        "the key-value bucket \"counts\" refused: service \"few\" keeps 3 keys, its quota (max_keyvalue_keys = 3), so \"plan:third\" was not stored; delete keys it no longer needs, or ask the host's operator to raise max_keyvalue_keys"
    );
    // What it kept is whole, and rewriting a key takes no more room.
    assert_eq!(
        info(&few, "first").await,
        items("3", "small", "creates,plan:first,plan:second")
    );
    // Deleting makes room.
    let removed = few
        .send(few.request(Method::DELETE, "/resources/first"))
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    create(&few, "third", "small").await;
    assert_eq!(
        info(&few, "third").await,
        items("4", "small", "creates,plan:second,plan:third")
    );

    // Bytes: bucket names, keys and values.
    let small = server.tsuru("small");
    let mut refusal = None;
    for number in 0..40 {
        let name = format!("an-instance-with-a-long-name-{number:02}");
        let answer = small
            .form(
                Method::POST,
                "/resources",
                &[("name", &name), ("plan", "small")],
            )
            .await;
        if answer.status != 201 {
            refusal = Some((name, answer));
            break;
        }
    }
    let (name, refused) = refusal.expect("1 KiB held 40 instances");
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert!(
        refused.body.starts_with(&format!(
            "the key-value bucket \"counts\" refused: storing \"plan:{name}\" would take service \"small\" to 2 KiB of keys and values, past its quota of 1 KiB (max_keyvalue_kb), so it was not stored; "
        )) && refused.body.ends_with("or ask the host's operator to raise max_keyvalue_kb"),
        "{}",
        refused.body
    );
}

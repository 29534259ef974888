//! A service that opts in to reusing plugin instances (`reuse_calls`) has
//! its calls served by instances of its own: what one keeps in its memory
//! reaches the calls it serves next, and never another service's call, nor
//! a call after it served its calls, trapped or ran out of time. A service
//! that does not opt in gets a fresh instance per call, also now that a
//! memory slot is reset by copying its pages back.

use orizuru_tests::{Server, Tsuru, service};
use reqwest::Method;

/// What the misbehave plugin instance serving this info call has seen.
async fn seen(api: &Tsuru, instance: &str) -> String {
    let answer = api.get(&format!("/resources/{instance}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let items = answer.info_items();
    assert_eq!(items.len(), 1, "{items:?}");
    items[0].1.clone()
}

async fn create(api: &Tsuru, name: &str) {
    let answer = api
        .form(Method::POST, "/resources", &[("name", name)])
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_serves_its_own_service_and_forgets_after_a_trap_or_a_deadline() {
    let server = Server::start(&[
        service("one", "misbehave", "reuse_calls = 1000\ntimeout_ms = 500"),
        service("two", "misbehave", "reuse_calls = 1000"),
        service("fresh", "misbehave", ""),
    ])
    .await;
    let (one, two, fresh) = (
        server.tsuru("one"),
        server.tsuru("two"),
        server.tsuru("fresh"),
    );
    for api in [&one, &two, &fresh] {
        create(api, "seen-a").await;
        create(api, "seen-b").await;
    }

    // One call at a time: each is served by the instance the last one left.
    assert_eq!(seen(&one, "seen-a").await, "seen-a");
    assert_eq!(seen(&one, "seen-b").await, "seen-a,seen-b");
    // The other service's instance never saw service one's calls.
    assert_eq!(seen(&two, "seen-b").await, "seen-b");
    assert_eq!(seen(&one, "seen-a").await, "seen-a,seen-b,seen-a");
    // Without reuse, every call starts from the plugin's first state,
    // though the pool hands it a memory slot another instance wrote in.
    for name in ["seen-a", "seen-b", "seen-a"] {
        assert_eq!(seen(&fresh, name).await, name);
    }

    // A trap ends the instance: the next call gets a fresh one.
    let trapped = one
        .form(Method::POST, "/resources", &[("name", "panic")])
        .await;
    assert_eq!(trapped.status, 500, "{}", trapped.body);
    assert_eq!(seen(&one, "seen-b").await, "seen-b");

    // So does a deadline.
    let looped = one
        .form(Method::POST, "/resources", &[("name", "loop")])
        .await;
    assert_eq!(looped.status, 504, "{}", looped.body);
    assert_eq!(seen(&one, "seen-a").await, "seen-a");
    assert_eq!(seen(&two, "seen-a").await, "seen-b,seen-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_serves_at_most_reuse_calls_calls_and_lives_at_most_reuse_secs() {
    let server = Server::start(&[
        service("three", "misbehave", "reuse_calls = 3"),
        service("brief", "misbehave", "reuse_calls = 1000\nreuse_secs = 1"),
    ])
    .await;
    let three = server.tsuru("three");
    // The create's instance ends holding a handle of its call (it logged
    // to stderr), so it is not kept: the infos start on a fresh instance.
    create(&three, "seen").await;
    assert_eq!(seen(&three, "seen").await, "seen");
    assert_eq!(seen(&three, "seen").await, "seen,seen");
    assert_eq!(seen(&three, "seen").await, "seen,seen,seen");
    // That instance served its three calls; this is a new one's first.
    assert_eq!(seen(&three, "seen").await, "seen");
    assert_eq!(seen(&three, "seen").await, "seen,seen");

    let brief = server.tsuru("brief");
    create(&brief, "seen").await;
    assert_eq!(seen(&brief, "seen").await, "seen");
    assert_eq!(seen(&brief, "seen").await, "seen,seen");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(seen(&brief, "seen").await, "seen");
}

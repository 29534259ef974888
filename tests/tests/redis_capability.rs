//! The Redis capability itself (`orizuru:redis/client`), through a test
//! plugin that runs the commands its proxied calls carry
//! (`plugins/redis-probe`), on the real server at 127.0.0.1:6379: replies
//! nest, server errors come back as the server wrote them, a command past
//! its timeout or a reply past its size is refused, commands that would
//! change a pooled connection are refused, a login the server refuses is
//! answered without the URL or password, and a service without the table
//! cannot load a plugin that imports the interface.

use orizuru_tests::redis::{Cleanup, unique_prefix};
use orizuru_tests::{Server, Tsuru, plugin_bytes, service};
use reqwest::Method;
use serde_json::{Value, json};

/// A host serving the probe as service `probe` on a connection `admin` to
/// `url`, with `extra` lines in that connection's table, and an instance
/// to call it through.
async fn probe(url: &str, extra: &str) -> (Server, Tsuru, tempfile::TempDir) {
    orizuru_tests::probe("redis-probe", "redis", url, extra).await
}

/// What the probe answered for one command.
async fn run(api: &Tsuru, args: &[&str]) -> Value {
    let answer = api
        .json(
            Method::POST,
            "/resources/probe/command",
            json!({ "args": args }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

const LOCAL: &str = "redis://127.0.0.1:6379";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_nest_and_refusals_are_sentences() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let (_server, api, _dir) = probe(LOCAL, "timeout_ms = 300\nmax_reply_kb = 1\n").await;
    let key = format!("{prefix}:list");

    assert_eq!(
        run(&api, &["RPUSH", &key, "a", "b"]).await,
        json!({ "reply": 2 })
    );
    assert_eq!(
        run(&api, &["LRANGE", &key, "0", "-1"]).await,
        json!({ "reply": ["a", "b"] })
    );
    assert_eq!(
        run(&api, &["GET", &format!("{prefix}:none")]).await,
        json!({ "reply": null })
    );
    let scanned = run(
        &api,
        &[
            "SCAN",
            "0",
            "MATCH",
            &format!("{prefix}:*"),
            "COUNT",
            "1000",
        ],
    )
    .await;
    assert!(scanned["reply"][1].is_array(), "{scanned}");

    let answer = run(&api, &["GET", &key]).await;
    assert_eq!(answer["error"], "server", "{answer}");
    assert_eq!(answer["code"], "WRONGTYPE", "{answer}");
    assert_eq!(
        answer["sentence"],
        "Redis refused a command on Redis connection \"admin\": WRONGTYPE Operation against a key holding the wrong kind of value"
    );

    // A reply past max_reply_kb.
    let big = "x".repeat(4096);
    run(&api, &["SET", &format!("{prefix}:big"), &big]).await;
    let answer = run(&api, &["GET", &format!("{prefix}:big")]).await;
    assert_eq!(answer["error"], "too-large", "{answer}");
    assert!(
        answer["sentence"]
            .as_str()
            .is_some_and(|sentence| sentence.starts_with("the reply to GET on Redis connection \"admin\" takes more than its max_reply_kb of 1 KiB")),
        "{answer}"
    );

    // A command past timeout_ms; the pool still serves afterwards.
    let answer = run(&api, &["BLPOP", &format!("{prefix}:empty"), "5"]).await;
    assert_eq!(answer["error"], "timeout", "{answer}");
    assert_eq!(
        answer["sentence"],
        "BLPOP on Redis connection \"admin\" ran past its timeout of 300ms; make it cheaper, or ask the operator to raise the connection's timeout_ms"
    );
    assert_eq!(run(&api, &["PING"]).await, json!({ "reply": "PONG" }));

    // Commands that would change a pooled connection for the next call.
    for (args, shown) in [
        (&["MULTI"][..], "MULTI"),
        (&["SUBSCRIBE", "news"], "SUBSCRIBE"),
        (&["SELECT", "1"], "SELECT"),
        (&["CLIENT", "SETNAME", "x"], "CLIENT SETNAME"),
        (&["HELLO", "3"], "HELLO"),
    ] {
        let answer = run(&api, args).await;
        assert_eq!(answer["error"], "refused", "{answer}");
        assert!(
            answer["sentence"]
                .as_str()
                .is_some_and(|sentence| sentence.starts_with(&format!(
                    "the host does not run {shown} on Redis connection \"admin\": "
                ))),
            "{answer}"
        );
    }
    let answer = api
        .json(
            Method::POST,
            "/resources/probe/command",
            json!({ "connection": "reporting", "args": ["PING"] }),
        )
        .await
        .json();
    assert_eq!(
        answer["sentence"],
        "the service has no Redis connection \"reporting\" (it has \"admin\"); its operator must declare it as a [services.redis.reporting] table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_a_sentence_without_the_url() {
    let (_server, api, _dir) = probe("redis://nobody:wr0ng-pa55@127.0.0.1:6379", "").await;
    let answer = run(&api, &["PING"]).await;
    assert_eq!(answer["error"], "connection-failed", "{answer}");
    let sentence = answer["sentence"].as_str().expect("a sentence");
    assert!(
        sentence.starts_with("cannot connect to Redis connection \"admin\" ("),
        "{sentence}"
    );
    assert!(
        sentence.ends_with(
            "check the user name and password in the connection's URL, and that the user is enabled"
        ),
        "{sentence}"
    );
    for secret in ["wr0ng-pa55", "redis://", "nobody:"] {
        assert!(!sentence.contains(secret), "{secret} in {sentence}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_needs_a_declared_connection() {
    let server = Server::start(&[service("plain", "fake", "")]).await;
    let refused = server
        .admin()
        .upload("plain", plugin_bytes("redis-probe"))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.starts_with(
            "the uploaded plugin imports orizuru:redis/client@0.1.0, which service \"plain\" is not granted; add a [services.redis.NAME] table to its [[services]] entry"
        ),
        "{}",
        refused.body
    );
}

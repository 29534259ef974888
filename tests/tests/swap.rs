//! Hot swaps: plugins replaced through the admin API while tsuru keeps
//! calling, with no failed request and no answer mixing two versions;
//! broken uploads refused with a reason while the old version serves;
//! rollback; the admin token; a restart serving the uploaded version from
//! the compiled cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use orizuru_tests::{ADMIN_TOKEN, Server, Tsuru, file_names, password, plugin_bytes, service};
use reqwest::Method;

/// Which generation gave an answer, or why the answer is wrong.
fn generation_of_bind(body: &serde_json::Value) -> Result<String, String> {
    let generation = body["GENERATION"]
        .as_str()
        .ok_or("no GENERATION")?
        .to_owned();
    let url = body["GENERATION_URL"].as_str().ok_or("no GENERATION_URL")?;
    let token = body["GENERATION_TOKEN"]
        .as_str()
        .ok_or("no GENERATION_TOKEN")?;
    if url.starts_with(&format!("{generation}://")) && token == format!("{generation}-token") {
        Ok(generation)
    } else {
        Err(format!("a mixed answer: {body}"))
    }
}

fn generation_of_status(body: &str) -> Result<String, String> {
    body.strip_prefix("served by generation ")
        .map(str::to_owned)
        .ok_or_else(|| format!("not a generation's status: {body:?}"))
}

async fn create(api: &Tsuru, name: &str) {
    let answer = api
        .form(Method::POST, "/resources", &[("name", name), ("team", "t")])
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    calls: AtomicUsize,
    one: AtomicUsize,
    two: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn saw(&self, generation: Result<String, String>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match generation.as_deref() {
            Ok("one") => self.one.fetch_add(1, Ordering::SeqCst),
            Ok("two") => self.two.fetch_add(1, Ordering::SeqCst),
            Ok(other) => {
                self.fail(format!("an answer from generation {other}"));
                0
            }
            Err(why) => {
                self.fail(why.to_owned());
                0
            }
        };
    }

    fn fail(&self, why: String) {
        self.failures.lock().expect("not poisoned").push(why);
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("not poisoned").clone()
    }
}

/// A tsuru client binding apps and asking for status until `stop`.
fn client(
    api: Tsuru,
    worker: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let app = format!("app-{worker}-{n}");
            let answer = api
                .form(
                    Method::POST,
                    "/resources/shared/bind-app",
                    &[("app-name", app.as_str()), ("app-hosts", "app.example.com")],
                )
                .await;
            if answer.status == 201 {
                tally.saw(generation_of_bind(&answer.json()));
            } else {
                tally.fail(format!(
                    "bind-app answered {}: {}",
                    answer.status, answer.body
                ));
            }
            let answer = api.get("/resources/shared/status").await;
            if answer.status == 200 {
                tally.saw(generation_of_status(&answer.body));
            } else {
                tally.fail(format!(
                    "status answered {}: {}",
                    answer.status, answer.body
                ));
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_under_load_never_fail_a_request_or_mix_two_versions() {
    let server = Server::start(&[service("gen", "generation-one", "")]).await;
    let api = server.tsuru("gen");
    create(&api, "shared").await;
    let (one, two) = (
        plugin_bytes("generation-one"),
        plugin_bytes("generation-two"),
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|worker| client(api.clone(), worker, tally.clone(), stop.clone()))
        .collect();

    let admin = server.admin();
    let mut swaps = 0;
    let mut shas = std::collections::BTreeSet::new();
    while swaps < 24 || tally.calls.load(Ordering::SeqCst) < 3000 {
        let next = if swaps % 2 == 0 {
            two.clone()
        } else {
            one.clone()
        };
        let answer = admin.upload("gen", next).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let swapped = answer.json();
        assert_eq!(swapped["unchanged"], false, "{swapped}");
        assert_ne!(swapped["sha256"], swapped["previous"]);
        shas.insert(swapped["sha256"].as_str().expect("a sha256").to_owned());
        swaps += 1;
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("the client ran to the end");
    }

    let failures = tally.failures();
    assert!(
        failures.is_empty(),
        "{} failed or mixed answers, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let calls = tally.calls.load(Ordering::SeqCst);
    assert!(swaps >= 24 && calls >= 3000, "{swaps} swaps, {calls} calls");
    assert_eq!(shas.len(), 2, "two versions took turns");
    assert!(
        tally.one.load(Ordering::SeqCst) > 0 && tally.two.load(Ordering::SeqCst) > 0,
        "both generations answered"
    );
    // Every swap is in the ledger's event log.
    let described = admin.service("gen").await;
    let swapped_events = described["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["kind"] == "swap" && event["source"] == "upload")
        .count();
    assert_eq!(swapped_events, swaps.min(50), "{described}");
}

/// Components that are not plugins this host can serve.
fn broken_uploads() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let wat = |text: &str| wat::parse_str(text).expect("valid wat");
    vec![
        (
            "not wasm",
            b"#!/bin/sh\necho not a plugin\n".to_vec(),
            "is not WebAssembly",
        ),
        (
            "a core module",
            wat("(module (func (export \"plans\")))"),
            "is a core wasm module, not a component",
        ),
        (
            "a component of another world",
            wat(
                "(component (core module $m (func (export \"run\"))) (core instance $i (instantiate $m)) (func $run (canon lift (core func $i \"run\"))) (export \"run\" (func $run)))",
            ),
            "does not export orizuru:service/handler (it exports run)",
        ),
        (
            "a component of a newer contract",
            wat(
                "(component (instance $h) (export \"orizuru:service/handler@0.2.0\" (instance $h)))",
            ),
            "exports orizuru:service/handler at 0.2.0, but this host serves orizuru:service 0.1.x",
        ),
        (
            "a component importing what is not granted",
            wat(
                "(component (import \"orizuru:service/telepathy@0.1.0\" (instance (export \"query\" (func)))) (instance $h) (export \"orizuru:service/handler@0.1.0\" (instance $h)))",
            ),
            "imports orizuru:service/telepathy@0.1.0, which this host does not grant to service \"gen\"",
        ),
        (
            "a plugin that traps in plans",
            plugin_bytes("broken-plans"),
            "failed the check call of plans: it trapped",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_uploads_are_refused_with_a_reason_while_the_old_version_serves() {
    let server = Server::start(&[service("gen", "generation-one", "")]).await;
    let api = server.tsuru("gen");
    create(&api, "shared").await;
    let admin = server.admin();
    let before = admin.service("gen").await["active"].clone();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|worker| client(api.clone(), worker, tally.clone(), stop.clone()))
        .collect();

    for (what, bytes, reason) in broken_uploads() {
        let answer = admin.upload("gen", bytes).await;
        assert_eq!(answer.status, 422, "{what}: {}", answer.body);
        assert!(answer.body.contains(reason), "{what}: {}", answer.body);
        let described = admin.service("gen").await;
        assert_eq!(
            described["active"]["sha256"], before["sha256"],
            "{what}: the old version serves"
        );
        let failure = &described["last_failure"];
        assert!(
            failure["reason"]
                .as_str()
                .is_some_and(|shown| shown.contains(reason)),
            "{what}: GET /admin/services shows the failure: {failure}"
        );
        assert_eq!(failure["source"], "upload");
    }
    let empty = admin.upload("gen", Vec::new()).await;
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("has no body"), "{}", empty.body);

    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("the client ran to the end");
    }
    assert!(tally.failures().is_empty(), "{:?}", tally.failures());
    assert_eq!(tally.two.load(Ordering::SeqCst), 0);
    assert!(tally.one.load(Ordering::SeqCst) > 0);

    let events = admin.service("gen").await["events"].clone();
    let failed = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["kind"] == "failed-load")
        .count();
    assert_eq!(failed, broken_uploads().len(), "{events}");

    // A good upload after them clears the failure.
    let answer = admin.upload("gen", plugin_bytes("generation-two")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(admin.service("gen").await["last_failure"].is_null());
}

#[tokio::test]
async fn rollback_returns_to_the_previous_or_a_named_version_and_old_versions_are_pruned() {
    let server = Server::start_config(&format!(
        "admin_token = \"{ADMIN_TOKEN}\"\nkeep_versions = 2\n{}",
        service("gen", "generation-one", "")
    ))
    .await;
    let api = server.tsuru("gen");
    create(&api, "shared").await;
    let admin = server.admin();
    let status = || async { api.get("/resources/shared/status").await.body };

    let nothing = admin.rollback("gen", None).await;
    assert_eq!(nothing.status, 409);
    assert!(
        nothing.body.contains("no previous version"),
        "{}",
        nothing.body
    );

    let one = admin.service("gen").await["active"]["sha256"]
        .as_str()
        .expect("active")
        .to_owned();
    let two = admin
        .upload("gen", plugin_bytes("generation-two"))
        .await
        .json()["sha256"]
        .as_str()
        .expect("sha256")
        .to_owned();
    assert_eq!(status().await, "served by generation two");
    // The same bytes again swap nothing.
    let again = admin
        .upload("gen", plugin_bytes("generation-two"))
        .await
        .json();
    assert_eq!(again["unchanged"], true, "{again}");

    let back = admin.rollback("gen", None).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.json()["sha256"], one.as_str());
    assert_eq!(back.json()["previous"], two.as_str());
    assert_eq!(status().await, "served by generation one");
    let described = admin.service("gen").await;
    assert_eq!(described["active"]["source"], "rollback");
    assert_eq!(
        described["previous"][0]["sha256"],
        two.as_str(),
        "{described}"
    );

    let forward = admin.rollback("gen", Some(&two)).await;
    assert_eq!(forward.status, 200, "{}", forward.body);
    assert_eq!(status().await, "served by generation two");

    // keep_versions = 2: a third version drops the oldest, wasm and all.
    let fake = admin.upload("gen", plugin_bytes("fake")).await;
    assert_eq!(fake.status, 200, "{}", fake.body);
    let gone = admin.rollback("gen", Some(&one)).await;
    assert_eq!(gone.status, 404);
    assert!(
        gone.body.contains(&format!("keeps no version {one}")),
        "{}",
        gone.body
    );
    let kept: Vec<String> = file_names(&server.data_dir().join("plugins"))
        .into_iter()
        .filter(|name| name.ends_with(".wasm"))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&format!("{one}.wasm")), "{kept:?}");

    let unknown = admin.rollback("nope", None).await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body.contains("no service \"nope\""),
        "{}",
        unknown.body
    );
}

#[tokio::test]
async fn the_admin_api_needs_its_own_token() {
    let server = Server::start(&[service("gen", "generation-one", "")]).await;
    let admin = server.admin();
    let bare = admin
        .send(reqwest::Client::new().get(format!("{}/admin/services", server.url)))
        .await;
    assert_eq!(bare.status, 401);
    assert!(bare.body.contains("Authorization: Bearer"), "{}", bare.body);
    assert_eq!(
        bare.headers
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok()),
        Some("Bearer realm=\"orizuru-admin\"")
    );
    let wrong = admin
        .with_token("not-the-token")
        .upload("gen", plugin_bytes("generation-two"))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("wrong admin token"), "{}", wrong.body);
    // A service's basic auth opens tsuru's routes, not the admin API.
    let basic = admin
        .send(
            reqwest::Client::new()
                .get(format!("{}/admin/services", server.url))
                .basic_auth("gen", Some(password("gen"))),
        )
        .await;
    assert_eq!(basic.status, 401);
    // Nothing was swapped.
    assert_eq!(
        server.tsuru("gen").get("/resources/plans").await.json()[0]["name"],
        "one"
    );

    let capped = Server::start_config(&format!(
        "admin_token = \"{ADMIN_TOKEN}\"\nmax_plugin_mb = 1\n{}",
        service("gen", "generation-one", "")
    ))
    .await;
    let oversized = capped.admin().upload("gen", vec![0; 2 << 20]).await;
    assert_eq!(oversized.status, 413);
    assert!(
        oversized.body.contains("raise max_plugin_mb"),
        "{}",
        oversized.body
    );

    let off = Server::start_config(&service("gen", "generation-one", "")).await;
    let answer = off
        .admin()
        .upload("gen", plugin_bytes("generation-two"))
        .await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.body.contains("the admin API is off"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_restart_serves_the_uploaded_version_from_the_compiled_cache() {
    let server = Server::start(&[service("gen", "generation-one", "")]).await;
    let uploaded = server
        .admin()
        .upload("gen", plugin_bytes("generation-two"))
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    assert_eq!(uploaded.json()["from"], "compiled");

    let server = server.restart().await;
    let active = server.admin().service("gen").await["active"].clone();
    assert_eq!(
        active["sha256"],
        uploaded.json()["sha256"],
        "the upload outlives the restart"
    );
    assert_eq!(
        active["from"], "cache",
        "loaded without compiling: {active}"
    );
    assert_eq!(active["source"], "kept");
    assert_eq!(
        server.tsuru("gen").get("/resources/plans").await.json()[0]["name"],
        "two"
    );
}

#[tokio::test]
async fn services_added_at_run_time_outlive_a_restart_until_removed() {
    let server = Server::start(&[service("gen", "generation-one", "")]).await;
    let admin = server.admin();
    let added = admin
        .send(
            admin
                .request(Method::PUT, "/admin/services/extra")
                .query(&[("timeout_ms", "5000"), ("username", "extra-user")])
                .body(plugin_bytes("generation-two")),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let added = added.json();
    let secret = added["password"].as_str().expect("a password").to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(added["endpoint"], "/services/extra");
    let extra = Tsuru::new(&server.url, "extra-user", &secret);
    assert_eq!(extra.get("/resources/plans").await.json()[0]["name"], "two");
    create(&extra, "kept").await;

    // Ids and usernames stay unique; config services belong to the file.
    for (path, expected) in [
        ("/admin/services/extra", "exists already"),
        ("/admin/services/gen", "exists already"),
    ] {
        let again = admin
            .send(admin.request(Method::PUT, path).body(plugin_bytes("fake")))
            .await;
        assert_eq!(again.status, 409, "{}", again.body);
        assert!(again.body.contains(expected), "{}", again.body);
    }
    let config_owned = admin
        .send(admin.request(Method::DELETE, "/admin/services/gen"))
        .await;
    assert_eq!(config_owned.status, 409);
    assert!(
        config_owned.body.contains("comes from the config file"),
        "{}",
        config_owned.body
    );
    let bad = admin
        .send(
            admin
                .request(Method::PUT, "/admin/services/other")
                .query(&[("memory", "5")])
                .body(plugin_bytes("fake")),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("username, timeout_ms, memory_mb and max_concurrent_calls"),
        "{}",
        bad.body
    );
    let too_big = admin
        .send(
            admin
                .request(Method::PUT, "/admin/services/other")
                .query(&[("memory_mb", "2048")])
                .body(plugin_bytes("fake")),
        )
        .await;
    assert_eq!(too_big.status, 422);
    assert!(
        too_big.body.contains("restart the host to apply it"),
        "{}",
        too_big.body
    );

    let server = server.restart().await;
    let extra = Tsuru::new(&server.url, "extra-user", &secret);
    assert_eq!(
        extra.get("/resources/kept/status").await.body,
        "served by generation two"
    );
    let described = server.admin().service("extra").await;
    assert_eq!(described["defined_in"], "admin-api");
    assert_eq!(described["timeout_ms"], 5000);

    let admin = server.admin();
    let refused = admin
        .send(admin.request(Method::DELETE, "/admin/services/extra"))
        .await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.body.contains("still has 1 instance(s)"),
        "{}",
        refused.body
    );
    let removed = admin
        .send(
            admin
                .request(Method::DELETE, "/admin/services/extra")
                .query(&[("force", "true")]),
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(extra.get("/resources/plans").await.status, 401);

    let server = server.restart().await;
    let extra = Tsuru::new(&server.url, "extra-user", &secret);
    assert_eq!(
        extra.get("/resources/plans").await.status,
        401,
        "still removed"
    );
    let ids: Vec<_> = server
        .admin()
        .services()
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(ids, ["gen"]);
}

/// Polls `check` until it holds, for up to 20 s.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 20 s");
}

/// Replaces a file as `mv` does: written beside it, renamed over it.
fn replace(path: &std::path::Path, contents: &[u8]) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, contents).expect("written");
    std::fs::rename(&temporary, path).expect("renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_plugin_and_config_files_are_applied_while_serving() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let plugin = dir.path().join("gen.wasm");
    std::fs::write(&plugin, plugin_bytes("generation-one")).expect("written");
    let config = dir.path().join("orizuru.toml");
    let base = format!(
        "admin_token = \"{ADMIN_TOKEN}\"\n[[services]]\nid = \"gen\"\nplugin = \"gen.wasm\"\npassword = \"{}\"\n",
        password("gen")
    );
    std::fs::write(&config, &base).expect("written");
    let server = Server::start_file(&config).await;
    let api = server.tsuru("gen");
    create(&api, "shared").await;
    let status = || async { api.get("/resources/shared/status").await.body };
    assert_eq!(status().await, "served by generation one");

    // mv of a new build over the plugin file.
    replace(&plugin, &plugin_bytes("generation-two"));
    eventually("the new plugin file serving", || async {
        status().await == "served by generation two"
    })
    .await;
    let active = server.admin().service("gen").await["active"].clone();
    assert_eq!(active["source"], "file-change");

    // A broken file written in place: refused, the old version serves.
    std::fs::write(&plugin, b"garbage").expect("written");
    eventually("the broken file's failure showing", || async {
        server.admin().service("gen").await["last_failure"]["source"] == "file-change"
    })
    .await;
    assert_eq!(status().await, "served by generation two");

    // A service added to the config file, then removed from it.
    std::fs::write(dir.path().join("fake.wasm"), plugin_bytes("fake")).expect("written");
    let with_fake = format!(
        "{base}[[services]]\nid = \"fake\"\nplugin = \"fake.wasm\"\npassword = \"{}\"\n",
        password("fake")
    );
    replace(&config, with_fake.as_bytes());
    let fake = server.tsuru("fake");
    eventually("the added service serving", || async {
        fake.get("/resources/plans").await.status == 200
    })
    .await;
    // A config that cannot be used changes nothing.
    replace(&config, b"[[services]]\nid = 3\n");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(fake.get("/resources/plans").await.status, 200);
    replace(&config, base.as_bytes());
    eventually("the removed service gone", || async {
        fake.get("/resources/plans").await.status == 401
    })
    .await;
    assert_eq!(status().await, "served by generation two");
}

#[tokio::test]
async fn a_plugin_file_broken_while_the_host_was_down_leaves_the_last_version_serving() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let plugin = dir.path().join("gen.wasm");
    std::fs::write(&plugin, plugin_bytes("generation-two")).expect("written");
    let config = dir.path().join("orizuru.toml");
    std::fs::write(
        &config,
        format!(
            "admin_token = \"{ADMIN_TOKEN}\"\nwatch = false\n[[services]]\nid = \"gen\"\nplugin = \"gen.wasm\"\npassword = \"{}\"\n",
            password("gen")
        ),
    )
    .expect("written");
    let server = Server::start_file(&config).await;
    let server = server
        .restart_with(|_| std::fs::write(&plugin, b"half a build").expect("written"))
        .await;
    assert_eq!(
        server.tsuru("gen").get("/resources/plans").await.json()[0]["name"],
        "two"
    );
    let described = server.admin().service("gen").await;
    assert_eq!(described["active"]["source"], "kept", "{described}");
    let reason = described["last_failure"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("is not WebAssembly"), "{described}");
}

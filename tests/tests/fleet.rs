//! Several hosts, one state: three hosts on one PostgreSQL database serve
//! the same services as one. An instance made through one host is seen,
//! bound and removed through the others; concurrent creates of one name
//! run the plugin once; a retried tsuru event is answered from the shared
//! ledger wherever it lands; key-value increments add up across hosts;
//! swaps and rollbacks reach every host; a store taken away is answered
//! 503 and served again when it is back, without a restart; a host killed
//! with SIGKILL loses nothing tsuru was told was done.
//!
//! Each test makes its own database (`TestDatabase`) on the machine's
//! PostgreSQL, 127.0.0.1:5432, and drops it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use orizuru::ledger::EventOutcome;
use orizuru::store::RETRY_AFTER_SECS;
use orizuru::store::postgres::testing::TestDatabase;
use orizuru_tests::fleet::{Fleet, ProcessHost, eventually, fleet_of, host_id};
use orizuru_tests::proxy::Proxy;
use orizuru_tests::{Answer, Tsuru, password, plugin_bytes, service};
use reqwest::Method;
use serde_json::json;

/// How long a change made through one host may take to reach another: a
/// bound on a wait, not a measure of speed.
const REACH: Duration = Duration::from_secs(10);

fn queue() -> String {
    service("queue", "queue", "")
}

fn books() -> String {
    service("books", "bookkeeper", "keyvalue = true\ntimeout_ms = 10000")
}

fn counter() -> String {
    service("counter", "counter", "keyvalue = true")
}

fn generations() -> String {
    service("gen", "generation-one", "")
}

async fn create(api: &Tsuru, fields: &[(&str, &str)]) -> Answer {
    api.form(Method::POST, "/resources", fields).await
}

/// The keys the bookkeeper holds, through a host's proxied route.
async fn books_of(api: &Tsuru) -> BTreeSet<String> {
    let answer = api.get("/authenticated-resources/books").await;
    assert_eq!(
        answer.status, 200,
        "the bookkeeper's books: {}",
        answer.body
    );
    serde_json::from_str(&answer.body).expect("the books are a JSON list")
}

/// Which generation serves `shared` on this host, from its status answer.
async fn generation(api: &Tsuru) -> Option<String> {
    let answer = api.get("/resources/shared/status").await;
    (answer.status == 200)
        .then(|| {
            answer
                .body
                .strip_prefix("served by generation ")
                .map(str::to_owned)
        })
        .flatten()
}

#[tokio::test]
async fn the_proxy_cuts_the_store_away_and_gives_it_back() {
    let database = TestDatabase::create().await;
    let proxy = Proxy::to_url(&database.url).await;
    let url = proxy.url(&database.url);
    assert_ne!(url, database.url, "the proxy's URL names the proxy");
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok::<_, tokio_postgres::Error>(client)
    };
    let before = connect().await.expect("PostgreSQL through the proxy");
    let one: i32 = before
        .query_one("SELECT 1", &[])
        .await
        .expect("a query through the proxy")
        .get(0);
    assert_eq!(one, 1);

    proxy.cut();
    assert!(
        before.query_one("SELECT 1", &[]).await.is_err(),
        "an open connection is closed by the cut"
    );
    assert!(
        connect().await.is_err(),
        "a new connection is refused while cut"
    );

    proxy.restore();
    let after = connect().await.expect("PostgreSQL through the proxy again");
    let two: i32 = after
        .query_one("SELECT 2", &[])
        .await
        .expect("a query after the restore")
        .get(0);
    assert_eq!(two, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_in_its_own_process_serves_until_killed() {
    let database = TestDatabase::create().await;
    let binary = Path::new(env!("CARGO_BIN_EXE_test-host"));
    let mut host = ProcessHost::spawn(binary, &database.url, "solo", &[queue()]);
    let api = host.tsuru("queue");
    assert_eq!(create(&api, &[("name", "solo")]).await.status, 201);
    host.kill();
    let refused = api
        .request(Method::GET, "/resources/solo/status")
        .send()
        .await;
    assert!(refused.is_err(), "a killed host answers nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_host_sees_the_same_instance_through_its_life() {
    let database = TestDatabase::create().await;
    let fleet = Fleet::start(&database.url, 3, &[queue()]).await;
    let [a, b, c] = [0, 1, 2].map(|index| fleet.tsuru(index, "queue"));

    let created = create(&a, &[("name", "orders"), ("plan", "small"), ("team", "t")]).await;
    assert_eq!(created.status, 201, "create on A: {}", created.body);
    let bound = b.bind_app("orders", "web").await;
    assert_eq!(bound.status, 201, "bind on B: {}", bound.body);
    assert_eq!(bound.json()["QUEUE_VHOST"], "/orders");
    let status = c.get("/resources/orders/status").await;
    assert_eq!(status.status, 204, "status on C: {}", status.body);
    let info = a.get("/resources/orders").await;
    assert_eq!(info.status, 200, "info on A: {}", info.body);
    assert_eq!(info.json()[0], json!({"label": "Plan", "value": "small"}));
    // A different ask for the name is a duplicate on any host.
    let duplicate = create(&c, &[("name", "orders"), ("plan", "large")]).await;
    assert_eq!(duplicate.status, 409, "{}", duplicate.body);
    assert_eq!(
        duplicate.body,
        "instance \"orders\" already exists in service \"queue\"; choose another name"
    );

    let unbound = c.unbind_app("orders", "web").await;
    assert_eq!(unbound.status, 200, "unbind on C: {}", unbound.body);
    let removed = b
        .form(Method::DELETE, "/resources/orders", &[("user", "ana")])
        .await;
    assert_eq!(removed.status, 200, "remove on B: {}", removed.body);
    for (label, api) in [("A", &a), ("B", &b), ("C", &c)] {
        let gone = api.get("/resources/orders").await;
        assert_eq!(gone.status, 404, "{label} still sees it: {}", gone.body);
        let unbind = api.unbind_app("orders", "web").await;
        assert_eq!(unbind.status, 404, "{label}: {}", unbind.body);
    }
}

/// Creates `fields` on each of `apis` at once; their answers in order.
async fn at_once(apis: &[Tsuru], asks: Vec<Vec<(&'static str, String)>>) -> Vec<Answer> {
    let calls: Vec<_> = apis
        .iter()
        .cloned()
        .zip(asks)
        .map(|(api, fields)| {
            tokio::spawn(async move {
                api.send(api.request(Method::POST, "/resources").form(&fields))
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("a create ends"));
    }
    answers
}

/// The creates the plugin ran for an instance and that succeeded, from the shared ledger.
async fn creates_run(fleet: &Fleet, service: &str, name: &str) -> usize {
    fleet.hosts[0]
        .host
        .ledger
        .events(service, name)
        .await
        .expect("the shared ledger answers")
        .iter()
        .filter(|event| {
            event.action == "create" && matches!(event.outcome, EventOutcome::Succeeded(_))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_on_three_hosts_run_the_plugin_once() {
    let database = TestDatabase::create().await;
    let fleet = Fleet::start(&database.url, 3, &[books()]).await;
    let apis: Vec<Tsuru> = (0..3).map(|index| fleet.tsuru(index, "books")).collect();
    // Each create takes 600 ms in the plugin, so all three overlap.
    let ask = |name: &str, plan: &str, event: Option<String>| {
        let mut fields = vec![
            ("name", name.to_owned()),
            ("plan", plan.to_owned()),
            ("parameters.delay_ms", "600".to_owned()),
        ];
        if let Some(event) = event {
            fields.push(("eventid", event));
        }
        fields
    };

    // The same ask, as tsuru retrying through another host: 201 everywhere.
    let same = at_once(&apis, (0..3).map(|_| ask("same", "small", None)).collect()).await;
    // The same ask under one tsuru event id.
    let one_event = at_once(
        &apis,
        (0..3)
            .map(|_| ask("one-event", "small", Some("ev-1".into())))
            .collect(),
    )
    .await;
    // The same ask under three event ids.
    let three_events = at_once(
        &apis,
        (0..3)
            .map(|k| ask("three-events", "small", Some(format!("ev-3-{k}"))))
            .collect(),
    )
    .await;
    for (name, answers) in [
        ("same", &same),
        ("one-event", &one_event),
        ("three-events", &three_events),
    ] {
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        assert_eq!(statuses, [201, 201, 201], "{name}: {answers:?}");
        assert_eq!(creates_run(&fleet, "books", name).await, 1, "{name}");
    }

    // Three different asks: one is made, the others are duplicates.
    let different = at_once(
        &apis,
        ["small", "medium", "large"]
            .iter()
            .map(|plan| ask("contested", plan, None))
            .collect(),
    )
    .await;
    let mut statuses: Vec<u16> = different.iter().map(|answer| answer.status).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409], "{different:?}");
    for refused in different.iter().filter(|answer| answer.status == 409) {
        assert!(
            refused.body.contains("instance \"contested\""),
            "a sentence naming the instance: {}",
            refused.body
        );
    }
    assert_eq!(creates_run(&fleet, "books", "contested").await, 1);

    // The plugin's own books, read through each host, agree: one of each.
    let expected: BTreeSet<String> = ["contested", "one-event", "same", "three-events"]
        .iter()
        .map(|name| format!("instance:{name}"))
        .collect();
    for api in &apis {
        assert_eq!(books_of(api).await, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_event_on_another_host_gets_the_same_answer_from_the_shared_ledger() {
    let database = TestDatabase::create().await;
    let fleet = Fleet::start(&database.url, 3, &[queue()]).await;
    let [a, b, c] = [0, 1, 2].map(|index| fleet.tsuru(index, "queue"));

    let create_event = [("name", "orders"), ("eventid", "ev-create")];
    assert_eq!(create(&a, &create_event).await.status, 201);
    let retried = create(&b, &create_event).await;
    assert_eq!(retried.status, 201, "a retry elsewhere: {}", retried.body);
    let other = create(
        &c,
        &[
            ("name", "orders"),
            ("plan", "large"),
            ("eventid", "ev-other"),
        ],
    )
    .await;
    assert_eq!(
        other.status, 409,
        "another event, another ask: {}",
        other.body
    );

    // The queue plugin makes a random password per bind: a second run of
    // the plugin would answer another.
    let bind = |api: &Tsuru| {
        api.request(Method::POST, "/resources/orders/bind-app")
            .header("X-Tsuru-EventID", "ev-bind")
            .form(&[("app-name", "web")])
    };
    let first = a.send(bind(&a)).await;
    assert_eq!(first.status, 201, "{}", first.body);
    for (label, api) in [("B", &b), ("C", &c)] {
        let again = api.send(bind(api)).await;
        assert_eq!(again.status, 201, "{label}: {}", again.body);
        assert_eq!(again.json(), first.json(), "{label} answers the same env");
    }
    let binds: Vec<_> = fleet.hosts[2]
        .host
        .ledger
        .events("queue", "orders")
        .await
        .expect("the shared ledger answers")
        .into_iter()
        .filter(|event| event.action == "bind-app")
        .collect();
    assert_eq!(binds.len(), 1, "the plugin bound once: {binds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyvalue_increments_through_every_host_add_up() {
    let database = TestDatabase::create().await;
    let fleet = Fleet::start(&database.url, 3, &[counter()]).await;
    let spread = fleet.spread("counter");
    // The counter plugin increments one key per create.
    const CLIENTS: usize = 6;
    const EACH: usize = 10;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let spread = spread.clone();
            tokio::spawn(async move {
                for k in 0..EACH {
                    let name = format!("n-{client}-{k}");
                    let answer = create(spread.next(), &[("name", &name)]).await;
                    assert_eq!(answer.status, 201, "{name}: {}", answer.body);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client ran to the end");
    }
    for index in 0..3 {
        let info = fleet.tsuru(index, "counter").get("/resources/n-0-0").await;
        assert_eq!(info.status, 200, "{}", info.body);
        let items: BTreeMap<String, String> = info.info_items().into_iter().collect();
        assert_eq!(
            items.get("Creates").map(String::as_str),
            Some((CLIENTS * EACH).to_string().as_str()),
            "host {}: {items:?}",
            host_id(index)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_and_rollbacks_reach_every_host_and_the_fleet_view_shows_them() {
    let database = TestDatabase::create().await;
    let fleet = Fleet::start(&database.url, 3, &[generations()]).await;
    let apis: Vec<Tsuru> = (0..3).map(|index| fleet.tsuru(index, "gen")).collect();
    assert_eq!(create(&apis[0], &[("name", "shared")]).await.status, 201);
    for api in &apis {
        assert_eq!(generation(api).await.as_deref(), Some("one"));
    }
    let one = fleet.hosts[0].admin().service("gen").await["active"]["sha256"]
        .as_str()
        .expect("an active version")
        .to_owned();

    let uploaded = fleet.hosts[0]
        .admin()
        .upload("gen", plugin_bytes("generation-two"))
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    let two = uploaded.json()["sha256"]
        .as_str()
        .expect("the new version's sha256")
        .to_owned();
    for (index, api) in apis.iter().enumerate() {
        let reached = eventually(REACH, || async {
            (generation(api).await.as_deref() == Some("two")).then_some(())
        })
        .await;
        assert!(
            reached.is_some(),
            "host {} serves generation two within {REACH:?}",
            host_id(index)
        );
    }
    assert_fleet_serves(&fleet, &two).await;

    // A rollback through another host reaches every host too.
    let back = fleet.hosts[1].admin().rollback("gen", None).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.json()["sha256"], one.as_str());
    for (index, api) in apis.iter().enumerate() {
        let reached = eventually(REACH, || async {
            (generation(api).await.as_deref() == Some("one")).then_some(())
        })
        .await;
        assert!(
            reached.is_some(),
            "host {} serves generation one again within {REACH:?}",
            host_id(index)
        );
    }
    assert_fleet_serves(&fleet, &one).await;
}

/// Every host's `GET /admin/services` lists the three hosts serving `sha256`.
async fn assert_fleet_serves(fleet: &Fleet, sha256: &str) {
    let expected: BTreeMap<String, String> = (0..3)
        .map(|index| (host_id(index), sha256.to_owned()))
        .collect();
    for host in &fleet.hosts {
        let admin = host.admin();
        let seen = eventually(REACH, || async {
            let listed = admin.services().await;
            let service = listed
                .as_array()
                .expect("a list of services")
                .iter()
                .find(|service| service["id"] == "gen")
                .expect("service gen is listed")
                .clone();
            let view = fleet_of(&service);
            (view == expected).then_some(view)
        })
        .await;
        assert!(
            seen.is_some(),
            "the fleet view of {} shows every host serving {sha256}: {}",
            host.url,
            admin.services().await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_taken_away_is_answered_503_and_served_again_without_a_restart() {
    let database = TestDatabase::create().await;
    let proxy = Proxy::to_url(&database.url).await;
    let fleet = Fleet::start(&proxy.url(&database.url), 3, &[queue()]).await;
    let apis: Vec<Tsuru> = (0..3).map(|index| fleet.tsuru(index, "queue")).collect();
    assert_eq!(create(&apis[0], &[("name", "before")]).await.status, 201);
    let http = reqwest::Client::new();
    let ready = |url: String| {
        let http = http.clone();
        async move {
            let answer = http
                .get(format!("{url}/readyz"))
                .send()
                .await
                .expect("the host answers its probe");
            Answer::of(answer).await
        }
    };

    proxy.cut();
    for (index, api) in apis.iter().enumerate() {
        let name = format!("during-{index}");
        let refused = create(api, &[("name", &name)]).await;
        assert_eq!(
            refused.status,
            503,
            "host {}: {}",
            host_id(index),
            refused.body
        );
        let retry_after = refused
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok());
        assert_eq!(
            retry_after,
            Some(RETRY_AFTER_SECS.to_string().as_str()),
            "{refused:?}"
        );
        assert!(
            refused.body.contains("cannot be reached") && refused.body.contains("try again"),
            "a sentence saying the store is away and what to do: {}",
            refused.body
        );
        let url = fleet.hosts[index].url.clone();
        let not_ready = eventually(REACH, || async {
            let answer = ready(url.clone()).await;
            (answer.status == 503).then_some(answer)
        })
        .await;
        let not_ready = not_ready.unwrap_or_else(|| {
            panic!(
                "host {}'s /readyz did not answer 503 while the store was away",
                host_id(index)
            )
        });
        assert!(
            not_ready.body.contains("store"),
            "readyz names the store: {}",
            not_ready.body
        );
    }

    proxy.restore();
    for (index, api) in apis.iter().enumerate() {
        let name = format!("after-{index}");
        let created = create(api, &[("name", &name)]).await;
        assert_eq!(
            created.status,
            201,
            "host {}, the first create after the store came back: {}",
            host_id(index),
            created.body
        );
        let url = fleet.hosts[index].url.clone();
        let back = eventually(REACH, || async {
            (ready(url.clone()).await.status == 200).then_some(())
        })
        .await;
        assert!(
            back.is_some(),
            "host {}'s /readyz is 200 again",
            host_id(index)
        );
    }
    // Nothing asked during the outage was half made.
    for api in &apis {
        for index in 0..3 {
            let name = format!("during-{index}");
            let answer = api.get(&format!("/resources/{name}")).await;
            assert_eq!(answer.status, 404, "{name}: {}", answer.body);
            assert_eq!(create(api, &[("name", &name)]).await.status, 201);
            let removed = api
                .request(Method::DELETE, &format!("/resources/{name}"))
                .send()
                .await
                .expect("the host answers")
                .status();
            assert_eq!(removed.as_u16(), 200);
        }
    }
    let names: BTreeSet<String> = fleet.hosts[2]
        .host
        .ledger
        .instance_names("queue")
        .await
        .expect("the shared ledger answers")
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = ["after-0", "after-1", "after-2", "before"]
        .map(str::to_owned)
        .into();
    assert_eq!(names, expected);
}

/// The live hosts of a fleet of processes, by index; a killed one is `None`.
type Live = Arc<RwLock<Vec<Option<String>>>>;

/// One call, sent to host `turn` or, when that host is gone or its
/// connection breaks, to the next live one; its status, or `None` if no
/// host answered.
async fn spread_call(
    live: &Live,
    turn: usize,
    method: Method,
    path: &str,
    fields: &[(&str, &str)],
) -> Option<u16> {
    let hosts = live.read().expect("the live hosts").clone();
    for step in 0..hosts.len() {
        let Some(url) = &hosts[(turn + step) % hosts.len()] else {
            continue;
        };
        let api = Tsuru::new(url, "books", &password("books"));
        match api.request(method.clone(), path).form(fields).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                if response.bytes().await.is_ok() {
                    return Some(status);
                }
            }
            // Cut: the host was killed under it, and the call is not known
            // to be done. tsuru tries again; so does this client.
            Err(_) => continue,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_killed_under_load_loses_no_acknowledged_write() {
    const CLIENTS: usize = 6;
    const NAMES: usize = 12;
    let database = TestDatabase::create().await;
    let binary = Path::new(env!("CARGO_BIN_EXE_test-host"));
    let mut hosts: Vec<ProcessHost> = (0..3)
        .map(|index| ProcessHost::spawn(binary, &database.url, &host_id(index), &[books()]))
        .collect();
    let live: Live = Arc::new(RwLock::new(
        hosts.iter().map(|host| Some(host.url.clone())).collect(),
    ));
    let done = Arc::new(AtomicUsize::new(0));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (live, done) = (live.clone(), done.clone());
            tokio::spawn(async move {
                let mut created = Vec::new();
                let mut bound = Vec::new();
                for k in 0..NAMES {
                    let name = format!("w{client}-{k}");
                    let turn = client + k;
                    let fields = [("name", name.as_str()), ("parameters.delay_ms", "40")];
                    let answer =
                        spread_call(&live, turn, Method::POST, "/resources", &fields).await;
                    done.fetch_add(1, Ordering::SeqCst);
                    if !answer.is_some_and(|status| (200..300).contains(&status)) {
                        continue;
                    }
                    created.push(name.clone());
                    let path = format!("/resources/{name}/bind-app");
                    let answer =
                        spread_call(&live, turn + 1, Method::POST, &path, &[("app-name", "web")])
                            .await;
                    done.fetch_add(1, Ordering::SeqCst);
                    if answer.is_some_and(|status| (200..300).contains(&status)) {
                        bound.push(name);
                    }
                }
                (created, bound)
            })
        })
        .collect();

    // Kill host b once about a third of the calls are done.
    let third = CLIENTS * NAMES * 2 / 3;
    let started = eventually(Duration::from_secs(120), || async {
        (done.load(Ordering::SeqCst) >= third).then_some(())
    })
    .await;
    assert!(
        started.is_some(),
        "the clients made progress before the kill"
    );
    live.write().expect("the live hosts")[1] = None;
    hosts[1].kill();

    let mut created = Vec::new();
    let mut bound = Vec::new();
    for client in clients {
        let (part_created, part_bound) = client.await.expect("a client ran to the end");
        created.extend(part_created);
        bound.extend(part_bound);
    }
    assert!(
        created.len() >= CLIENTS * NAMES / 2,
        "most creates were acknowledged: {} of {}",
        created.len(),
        CLIENTS * NAMES
    );

    // Every acknowledged write is in the store, read through each survivor.
    for survivor in [&hosts[0], &hosts[2]] {
        let api = survivor.tsuru("books");
        for name in &created {
            let status = api.get(&format!("/resources/{name}/status")).await;
            assert!(
                (200..300).contains(&status.status),
                "{name} was acknowledged, and {} answers {}: {}",
                survivor.host_id,
                status.status,
                status.body
            );
        }
        let books = books_of(&api).await;
        for name in &bound {
            assert!(
                books.contains(&format!("binding:{name}:web")),
                "web was bound to {name}, and the plugin's books through {} do not hold it",
                survivor.host_id
            );
        }
        // The survivors keep answering changes.
        let name = format!("after-{}", survivor.host_id);
        assert_eq!(create(&api, &[("name", &name)]).await.status, 201);
        assert_eq!(api.bind_app(&name, "web").await.status, 201);
    }
    // And the shared ledger holds every acknowledged binding.
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .expect("the test database");
    tokio::spawn(connection);
    let held: BTreeSet<String> = client
        .query(
            "SELECT instance FROM orizuru.bindings WHERE service = 'books' AND target = 'web'",
            &[],
        )
        .await
        .expect("the bindings table")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for name in &bound {
        assert!(held.contains(name), "the ledger lost the binding of {name}");
    }
}

/// The readiness of a host: its status and body.
async fn readyz(url: &str) -> (u16, String) {
    let response = reqwest::get(format!("{url}/readyz"))
        .await
        .expect("/readyz answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_version_one_host_cannot_load_leaves_it_serving_the_old_one_and_saying_so() {
    let database = TestDatabase::create().await;
    // Host a grants the key-value store; host b's config file does not.
    let a = orizuru_tests::Server::start_shared(
        &database.url,
        "a",
        &[service("gen", "generation-one", "keyvalue = true")],
    )
    .await;
    let b = orizuru_tests::Server::start_shared(
        &database.url,
        "b",
        &[service("gen", "generation-one", "")],
    )
    .await;
    let (on_a, on_b) = (a.tsuru("gen"), b.tsuru("gen"));
    assert_eq!(create(&on_a, &[("name", "shared")]).await.status, 201);
    assert_eq!(generation(&on_b).await.as_deref(), Some("one"));

    // A version importing wasi:keyvalue passes on a, and cannot serve on b.
    let uploaded = a.admin().upload("gen", plugin_bytes("counter")).await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    let counter = uploaded.json()["sha256"]
        .as_str()
        .expect("the new version's sha256")
        .to_owned();
    let said = eventually(REACH, || async {
        let (status, body) = readyz(&b.url).await;
        (status == 503).then_some(body)
    })
    .await
    .expect("b's /readyz says it is behind the fleet");
    assert!(
        said.contains("service \"gen\"") && said.contains(&counter) && said.contains("keyvalue"),
        "{said}"
    );
    // b keeps serving the old version, without a failed request.
    assert_eq!(generation(&on_b).await.as_deref(), Some("one"));
    assert_eq!(readyz(&a.url).await.0, 200);
    // The fleet view, from either host, says which host is behind and why.
    let behind = eventually(REACH, || async {
        let listed = a.admin().service("gen").await;
        listed["fleet"]
            .as_array()?
            .iter()
            .find(|host| host["host_id"] == "b" && host["behind"].is_object())
            .cloned()
    })
    .await
    .expect("the fleet view shows b behind");
    assert_eq!(behind["behind"]["sha256"], counter.as_str());
    assert_ne!(behind["sha256"], counter.as_str(), "{behind}");
    assert!(
        behind["behind"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("keyvalue")),
        "{behind}"
    );

    // The next version that b can load puts it back in step, and ready.
    let two = a
        .admin()
        .upload("gen", plugin_bytes("generation-two"))
        .await;
    assert_eq!(two.status, 200, "{}", two.body);
    let reached = eventually(REACH, || async {
        (generation(&on_b).await.as_deref() == Some("two")).then_some(())
    })
    .await;
    assert!(reached.is_some(), "b serves generation two");
    assert_eq!(
        readyz(&b.url).await,
        (200, "ready: every service is serving\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosts_with_different_plugin_files_never_flip_a_service_back_and_forth() {
    let database = TestDatabase::create().await;
    let a = orizuru_tests::Server::start_shared(
        &database.url,
        "a",
        &[service("gen", "generation-one", "")],
    )
    .await;
    assert_eq!(
        create(&a.tsuru("gen"), &[("name", "shared")]).await.status,
        201
    );
    assert_eq!(generation(&a.tsuru("gen")).await.as_deref(), Some("one"));
    // b's file is one the fleet has not seen: applied to every host, once.
    let b = orizuru_tests::Server::start_shared(
        &database.url,
        "b",
        &[service("gen", "generation-two", "")],
    )
    .await;
    for (name, host) in [("a", &a), ("b", &b)] {
        let reached = eventually(REACH, || async {
            (generation(&host.tsuru("gen")).await.as_deref() == Some("two")).then_some(())
        })
        .await;
        assert!(reached.is_some(), "host {name} serves b's file");
    }
    // Restarts never take the fleet back to a file it has seen.
    let a = a.restart().await;
    assert_eq!(generation(&a.tsuru("gen")).await.as_deref(), Some("two"));
    let b = b.restart().await;
    let a = a.restart().await;
    for host in [&a, &b] {
        assert_eq!(generation(&host.tsuru("gen")).await.as_deref(), Some("two"));
    }
    let events = a.admin().service("gen").await["events"].clone();
    let swaps = events
        .as_array()
        .expect("the plugin events")
        .iter()
        .filter(|event| event["kind"] == "swap")
        .count();
    assert_eq!(swaps, 1, "one swap, to b's file: {events}");
}

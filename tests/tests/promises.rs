//! What tsuru is told is true: a create cut halfway ends recorded whole or
//! not at all, an instance still being created is not an instance, a remove
//! waits for the create it rolls back, a retried create gets the first
//! one's answer, the host's instance limit answers 503 after a bounded wait,
//! a stop waits for the changes it cut, and a create a killed host left
//! behind is undone at the next start. Then a chaos run checks it all at
//! once against the plugin's own books.

use std::time::Duration;

use orizuru::ledger::{Change, InstanceRecord};
use orizuru::model::{Action, Instance, InstanceState};
use orizuru_tests::{Answer, Server, Tsuru, service};
use reqwest::Method;

const BOOKS: &str = "keyvalue = true\ntimeout_ms = 10000";

async fn books_server(host_lines: &str) -> Server {
    Server::start_config(&format!(
        "{host_lines}\n{}",
        service("books", "bookkeeper", BOOKS)
    ))
    .await
}

/// Sends a create that its client gives up on after `cut_after`.
async fn cut_create(api: &Tsuru, fields: &[(&str, &str)], cut_after: Duration) {
    let sent = api
        .request(Method::POST, "/resources")
        .form(fields)
        .timeout(cut_after)
        .send()
        .await;
    assert!(
        sent.as_ref().is_err_and(reqwest::Error::is_timeout),
        "the client gave up before the answer: {sent:?}"
    );
}

/// The bookkeeper's own record: every key it holds.
async fn books(api: &Tsuru) -> Vec<String> {
    let answer = api.get("/authenticated-resources/books").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body).expect("a JSON list")
}

async fn state(server: &Server, name: &str) -> Option<InstanceState> {
    server
        .host
        .ledger
        .instance("books", name)
        .await
        .expect("the ledger answers")
        .map(|record| record.state)
}

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never came true: {what}");
}

/// The successful creates the ledger recorded for an instance, and its events.
async fn creates_recorded(
    server: &Server,
    name: &str,
) -> (usize, Vec<orizuru::ledger::EventRecord>) {
    let events = server
        .host
        .ledger
        .events("books", name)
        .await
        .expect("the ledger answers");
    let creates = events
        .iter()
        .filter(|event| {
            event.action == Action::Create.as_str()
                && matches!(event.outcome, orizuru::ledger::EventOutcome::Succeeded(_))
        })
        .count();
    (creates, events)
}

async fn metric(server: &Server, series: &str) -> Option<f64> {
    let page = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a page");
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cut_halfway_ends_recorded_whole_and_is_no_instance_until_then() {
    let server = books_server("").await;
    let api = server.tsuru("books");
    cut_create(
        &api,
        &[("name", "slow"), ("parameters.delay_ms", "1500")],
        Duration::from_millis(300),
    )
    .await;

    // Still being created: not an instance, whatever is asked.
    let being_created = "instance \"slow\" of service \"books\" is still being created; try again once its create has ended";
    let status = api.get("/resources/slow/status").await;
    assert_eq!(
        (status.status, status.body.as_str()),
        (202, "instance \"slow\" is still being created")
    );
    let bind = api.bind_app("slow", "web").await;
    assert_eq!((bind.status, bind.body.as_str()), (412, being_created));
    let info = api.get("/resources/slow").await;
    assert_eq!((info.status, info.body.as_str()), (409, being_created));
    let update = api
        .form(Method::PUT, "/resources/slow", &[("plan", "large")])
        .await;
    assert_eq!((update.status, update.body.as_str()), (409, being_created));
    assert_eq!(
        metric(&server, "orizuru_ledger_instances{service=\"books\"}").await,
        Some(0.0),
        "a create not ended is not counted"
    );
    assert_eq!(state(&server, "slow").await, Some(InstanceState::Creating));

    // The create ran on without its client, and was recorded whole.
    eventually("the create ends", || async {
        state(&server, "slow").await == Some(InstanceState::Ready)
    })
    .await;
    assert_eq!(api.get("/resources/slow/status").await.status, 204);
    assert_eq!(books(&api).await, ["instance:slow"]);
    let bind = api.bind_app("slow", "web").await;
    assert_eq!(
        (bind.status, bind.body.as_str()),
        (201, "{\"BOOK\":\"slow\"}")
    );
    assert_eq!(
        books(&api).await,
        ["binding:slow:web", "instance:slow"],
        "the bind made during the create was never made"
    );
    assert_eq!(
        metric(&server, "orizuru_ledger_instances{service=\"books\"}").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_during_a_create_waits_for_it_and_leaves_nothing() {
    let server = books_server("").await;
    let api = server.tsuru("books");
    for (name, fail) in [("rolled", "false"), ("refused", "true")] {
        cut_create(
            &api,
            &[
                ("name", name),
                ("parameters.delay_ms", "1200"),
                ("parameters.fail", fail),
            ],
            Duration::from_millis(200),
        )
        .await;
        // tsuru's rollback of a create it could not record.
        let removed = api
            .send(api.request(Method::DELETE, &format!("/resources/{name}")))
            .await;
        assert_eq!(removed.status, 200, "{name}: {}", removed.body);
        assert_eq!(state(&server, name).await, None, "{name}");
        assert!(books(&api).await.is_empty(), "{name}: nothing remains");
    }
    let ghost = api
        .send(api.request(Method::DELETE, "/resources/ghost"))
        .await;
    assert_eq!(
        ghost.status, 404,
        "an instance never asked for is still unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_gets_the_answer_of_the_first() {
    let server = books_server("").await;
    let api = server.tsuru("books");
    let ask = [
        ("name", "twice"),
        ("plan", "small"),
        ("parameters.delay_ms", "1000"),
        ("eventid", "e1"),
    ];
    let first = {
        let api = api.clone();
        tokio::spawn(async move { api.form(Method::POST, "/resources", &ask).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The same event, and the same create without one, wait for the first.
    let same_event = {
        let api = api.clone();
        tokio::spawn(async move { api.form(Method::POST, "/resources", &ask).await })
    };
    let same_ask = api.form(Method::POST, "/resources", &ask[..3]).await;
    // Another create of the name is a duplicate, at once.
    let other = api
        .form(
            Method::POST,
            "/resources",
            &[
                ("name", "twice"),
                ("plan", "large"),
                ("parameters.delay_ms", "1000"),
            ],
        )
        .await;
    assert_eq!(
        (other.status, other.body.as_str()),
        (
            409,
            "instance \"twice\" already exists in service \"books\"; choose another name"
        )
    );
    for answer in [
        first.await.expect("answered"),
        same_event.await.expect("answered"),
        same_ask,
    ] {
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let (creates, events) = creates_recorded(&server, "twice").await;
    assert_eq!(creates, 1, "the plugin created it once: {events:?}");
    assert_eq!(books(&api).await, ["instance:twice"]);

    // A create tsuru gave up on, retried once it ended: the same answer, not 409.
    cut_create(
        &api,
        &[("name", "late"), ("parameters.delay_ms", "600")],
        Duration::from_millis(100),
    )
    .await;
    eventually("the create ends", || async {
        state(&server, "late").await == Some(InstanceState::Ready)
    })
    .await;
    let retried = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "late"), ("parameters.delay_ms", "600")],
        )
        .await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    let changed = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "late"), ("parameters.delay_ms", "601")],
        )
        .await;
    assert_eq!(changed.status, 409, "{}", changed.body);
    assert_eq!(books(&api).await, ["instance:late", "instance:twice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_replay_window_the_same_create_is_a_duplicate() {
    let server = books_server("replay_window_secs = 1").await;
    let api = server.tsuru("books");
    let ask = [("name", "once"), ("plan", "small")];
    assert_eq!(api.form(Method::POST, "/resources", &ask).await.status, 201);
    assert_eq!(
        api.form(Method::POST, "/resources", &ask).await.status,
        201,
        "within the window, a retry"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let late = api.form(Method::POST, "/resources", &ask).await;
    assert_eq!(
        (late.status, late.body.as_str()),
        (
            409,
            "instance \"once\" already exists in service \"books\"; choose another name"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_hosts_instance_limit_a_call_waits_briefly_then_gets_503() {
    let server = books_server("max_concurrent_calls = 2\nqueue_wait_ms = 300").await;
    let api = server.tsuru("books");
    let calls: Vec<_> = ["q1", "q2", "q3", "q4"]
        .into_iter()
        .map(|name| {
            let api = api.clone();
            tokio::spawn(async move {
                let answer = api
                    .form(
                        Method::POST,
                        "/resources",
                        &[("name", name), ("parameters.delay_ms", "2000")],
                    )
                    .await;
                (name, answer)
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut refused: Vec<Answer> = Vec::new();
    for call in calls {
        let (name, answer) = call.await.expect("answered");
        match answer.status {
            201 => created.push(name),
            503 => refused.push(answer),
            other => panic!("{name}: {other} {}", answer.body),
        }
    }
    assert_eq!((created.len(), refused.len()), (2, 2), "{created:?}");
    for answer in &refused {
        assert_eq!(
            answer.body,
            "the host is already running as many plugin calls as it may at once (max_concurrent_calls) and none ended within queue_wait_ms; try again in a moment"
        );
        assert_eq!(
            answer
                .headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok()),
            Some("1")
        );
    }
    let mut names = server
        .host
        .ledger
        .instance_names("books")
        .await
        .expect("the ledger answers");
    names.sort();
    created.sort_unstable();
    assert_eq!(names, created, "a refused create reserves nothing");
    let booked: Vec<String> = created
        .iter()
        .map(|name| format!("instance:{name}"))
        .collect();
    assert_eq!(books(&api).await, booked);
    let waits = metric(
        &server,
        "orizuru_queue_wait_duration_seconds_count{service=\"books\"}",
    )
    .await;
    assert!(
        waits.is_some_and(|count| count >= 2.0),
        "the waits are counted: {waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_create_queued_behind_a_full_pool_never_runs_twice() {
    let server = books_server("max_concurrent_calls = 1\nqueue_wait_ms = 5000").await;
    let api = server.tsuru("books");
    let send = |name: &'static str, plan: &'static str, delay: &'static str| {
        let api = api.clone();
        tokio::spawn(async move {
            api.form(
                Method::POST,
                "/resources",
                &[
                    ("name", name),
                    ("plan", plan),
                    ("parameters.delay_ms", delay),
                ],
            )
            .await
        })
    };
    let holder = send("holder", "small", "1500");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = send("dup", "small", "0");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = send("dup", "small", "0");
    let other = send("dup", "large", "0").await.expect("answered");
    assert_eq!(other.status, 409, "{}", other.body);
    for answer in [holder, queued, again] {
        let answer = answer.await.expect("answered");
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let (creates, events) = creates_recorded(&server, "dup").await;
    assert_eq!(creates, 1, "{events:?}");
    assert_eq!(books(&api).await, ["instance:dup", "instance:holder"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_the_changes_it_cut_to_end_recorded() {
    let mut server = books_server("drain_timeout_secs = 1").await;
    let api = server.tsuru("books");
    let create = {
        let api = api.clone();
        tokio::spawn(async move {
            api.request(Method::POST, "/resources")
                .form(&[("name", "kept"), ("parameters.delay_ms", "2500")])
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let drained = server.stop().await;
    assert_eq!(drained.cut.len(), 1, "the drain cut the create's request");
    assert!(
        create.await.expect("ended").is_err(),
        "its client got no answer"
    );
    assert_eq!(
        state(&server, "kept").await,
        Some(InstanceState::Ready),
        "the stop waited for the create, which was recorded whole"
    );
    let server = server.restart().await;
    let api = server.tsuru("books");
    assert_eq!(api.get("/resources/kept/status").await.status, 204);
    assert_eq!(books(&api).await, ["instance:kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_a_killed_host_left_behind_is_undone_at_the_next_start() {
    let mut server = books_server("").await;
    let api = server.tsuru("books");
    let made = api
        .form(Method::POST, "/resources", &[("name", "orphan")])
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    server.stop().await;
    // As a host killed halfway through the create leaves it: made by the
    // plugin, reserved in the ledger by a run that is gone.
    let ledger = orizuru::ledger::SqliteLedger::open(server.data_dir()).expect("the ledger opens");
    let record = InstanceRecord {
        instance: Instance {
            name: "orphan".into(),
            plan: None,
            team: None,
            description: None,
            tags: Vec::new(),
            parameters: serde_json::Map::new(),
            data: None,
        },
        state: InstanceState::Creating,
    };
    orizuru::ledger::Ledger::commit(&ledger, "books", vec![Change::Put(record)], None)
        .await
        .expect("written");
    drop(ledger);

    let server = server.restart().await;
    let api = server.tsuru("books");
    eventually("the start undoes the create", || async {
        state(&server, "orphan").await.is_none()
    })
    .await;
    assert!(
        books(&api).await.is_empty(),
        "undone through the plugin's remove"
    );
    let again = api
        .form(Method::POST, "/resources", &[("name", "orphan")])
        .await;
    assert_eq!(again.status, 201, "the name is free: {}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_on_the_same_data_dir_is_refused() {
    // Its reservations would be the first one's, undone as a killed run's.
    let server = books_server("").await;
    let dir = server.data_dir().to_owned();
    let overrides = orizuru::config::Overrides {
        listen: Some("127.0.0.1:0".parse().expect("an address")),
        data_dir: Some(dir.clone()),
    };
    let config = orizuru::config::Config::parse(
        &service("books", "bookkeeper", BOOKS),
        &dir,
        &overrides,
        |_| None,
    )
    .expect("a valid config");
    let refused = orizuru::Host::start(&config)
        .await
        .err()
        .expect("the second host is refused");
    assert_eq!(
        format!("{refused:#}"),
        format!(
            "data_dir {} is in use by another Orizuru host (process {}); give each host a data_dir of its own",
            dir.display(),
            std::process::id()
        )
    );
    let api = server.tsuru("books");
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "still")])
            .await
            .status,
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaos_run_leaves_the_ledger_and_the_plugin_agreeing() {
    let seed = std::env::var("ORIZURU_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let report = orizuru_tests::chaos::run(1_300, 13, 10, seed).await;
    println!("{report}");
    assert!(
        report.creates + report.binds >= 1_000,
        "at least 1,000 creates and binds: {report}"
    );
    assert!(report.cut_by_clients > 150, "clients cut calls: {report}");
    assert!(report.cut_by_stops > 0, "the stop cut calls: {report}");
    assert!(
        report.facts > 100,
        "enough of what tsuru was told is checked: {report}"
    );
    assert!(
        report.mismatches.is_empty(),
        "{report}\n{}",
        report.mismatches.join("\n")
    );
}

/// Whether any file under `dir` holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable dir") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path)
            .expect("a readable file")
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binds_env_is_kept_only_while_a_retry_can_come() {
    let server = Server::start_config(&format!(
        "replay_window_secs = 1\n{}",
        service("queue", "queue", "")
    ))
    .await;
    let api = server.tsuru("queue");
    let created = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "orders"), ("plan", "small")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let bind = |event: &'static str| {
        let api = api.clone();
        async move {
            let answer = api
                .form(
                    Method::POST,
                    "/resources/orders/bind-app",
                    &[("app-name", "web"), ("eventid", event)],
                )
                .await;
            assert_eq!(answer.status, 201, "{}", answer.body);
            answer.json()["QUEUE_PASSWORD"]
                .as_str()
                .expect("a password")
                .to_owned()
        }
    };
    let unbind = || {
        let api = api.clone();
        async move {
            let answer = api.unbind_app("orders", "web").await;
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
    };
    // A retry within the window gets the same env; after an unbind, the
    // answer is forgotten and a bind is a bind again.
    let first = bind("b1").await;
    assert_eq!(
        bind("b1").await,
        first,
        "the retry is answered from the ledger"
    );
    unbind().await;
    let second = bind("b1").await;
    assert_ne!(second, first, "the answer went with the unbind");
    // Past the window, a retry is a new bind too, and a prune forgets the answer.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let third = bind("b1").await;
    assert_ne!(third, second, "the answer is past the replay window");
    let pruned = server.host.ledger.prune().await.expect("pruned");
    assert!(pruned.answers >= 1, "{pruned:?}");
    unbind().await;
    let removed = api
        .send(api.request(Method::DELETE, "/resources/orders"))
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);

    let passwords = [first, second, third];
    server
        .restart_with(|dir| {
            for password in &passwords {
                assert_eq!(
                    files_holding(dir, password),
                    Vec::<String>::new(),
                    "no bind's password is kept once it is unbound"
                );
            }
        })
        .await;
}

//! The conformance cases of `shared/tsuru-service-api.md`, against the host
//! over real HTTP with the example plugins built from source.
//!
//! The cases that use the queue example run once per SDK language, against
//! `plugins/queue` (Rust), `plugins/queue-python`, `plugins/queue-js` and
//! `plugins/queue-c`, served as the same service: every SDK must keep the
//! contract alike (`guest-sdk/CONTRACT.md`): the same statuses, env names
//! and values, JSON shapes, and refusals of parameters.

use std::path::Path;

use orizuru_tests::{ADMIN_TOKEN, Server, Tsuru, service};
use reqwest::Method;
use serde_json::{Value, json};

/// The conformance cases, once per SDK language.
macro_rules! conformance {
    ($($language:ident: $plugin:literal),* $(,)?) => {$(
        mod $language {
            cases!($plugin;
                lifecycle_in_both_encodings_and_both_routings,
                every_route_needs_the_services_credentials,
                plans_are_a_json_list_never_an_empty_body,
                unknown_instances_are_404_on_every_instance_route,
                pending_instances_refuse_binds_until_up_and_can_be_removed,
                jobs_bind_and_unbind,
                status_codes_follow_tsuru,
                proxy_reaches_the_plugin_intact,
                bad_requests_get_a_sentence,
                typed_parameters_read_the_text_tsuru_sends,
                parameter_refusals_name_the_parameter,
            );
        }
    )*};
}

macro_rules! cases {
    ($plugin:literal; $($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            super::$case($plugin).await
        }
    )*};
}

conformance! {
    rust: "queue",
    python: "queue-python",
    js: "queue-js",
    c: "queue-c",
}

/// Hosts are started one at a time, so that a plugin is compiled once, by
/// the first, into the cache they share (an interpreted one takes seconds).
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A host serving the fake API as `fake` and the queue example built by
/// `queue` (the plugin's name in `plugins/`) as `queue`.
async fn server(queue: &str) -> Server {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-compiled");
    let _one_at_a_time = STARTING.lock().await;
    Server::start_config(&format!(
        "admin_token = \"{ADMIN_TOKEN}\"\ncache_dir = \"{}\"\n{}{}",
        cache.display(),
        service("fake", "fake", ""),
        service("queue", queue, "")
    ))
    .await
}

/// Both of tsuru's routings: `/resources` with the service named by the
/// basic-auth user, and `/services/{id}/resources`.
fn routings(server: &Server, id: &str) -> [Tsuru; 2] {
    [server.tsuru(id), server.tsuru_prefixed(id)]
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Form,
    Json,
}

/// Sends `fields` form-encoded or as tsuru's JSON (camelCase names,
/// parameters as an object).
async fn call(
    api: &Tsuru,
    encoding: Encoding,
    method: Method,
    path: &str,
    fields: &[(&str, &str)],
) -> orizuru_tests::Answer {
    match encoding {
        Encoding::Form => api.form(method, path, fields).await,
        Encoding::Json => {
            let mut body = serde_json::Map::new();
            let mut parameters = serde_json::Map::new();
            for (key, value) in fields {
                if let Some(name) = key.strip_prefix("parameters.") {
                    parameters.insert(name.to_owned(), json!(value));
                    continue;
                }
                let name = match *key {
                    "eventid" => "eventID".to_owned(),
                    other => camel(other),
                };
                let list = matches!(
                    *key,
                    "tags" | "app-hosts" | "app-internal-hosts" | "app-cluster-addresses"
                );
                match body.get_mut(&name) {
                    Some(Value::Array(items)) => items.push(json!(value)),
                    _ if list => {
                        body.insert(name, json!([value]));
                    }
                    _ => {
                        body.insert(name, json!(value));
                    }
                }
            }
            if !parameters.is_empty() {
                body.insert("parameters".into(), Value::Object(parameters));
            }
            api.json(method, path, Value::Object(body)).await
        }
    }
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Every action once, in each encoding and each routing.
async fn lifecycle_in_both_encodings_and_both_routings(queue: &str) {
    let server = server(queue).await;
    for encoding in [Encoding::Form, Encoding::Json] {
        for (routing, api) in routings(&server, "queue").into_iter().enumerate() {
            let name = format!("q-{encoding:?}-{routing}").to_lowercase();
            let created = call(
                &api,
                encoding,
                Method::POST,
                "/resources",
                &[
                    ("name", &name),
                    ("team", "platform"),
                    ("user", "ana@example.com"),
                    ("eventid", "ev-1"),
                    ("plan", "small"),
                    ("tags", "a"),
                    ("tags", "b"),
                    ("parameters.retention_hours", "48"),
                ],
            )
            .await;
            assert_eq!(
                created.status, 201,
                "{encoding:?} {routing}: {}",
                created.body
            );

            let info = api.get(&format!("/resources/{name}")).await;
            assert_eq!(info.status, 200);
            assert_eq!(
                info.json(),
                json!([
                    {"label": "Plan", "value": "small"},
                    {"label": "Virtual host", "value": format!("/{name}")},
                    {"label": "Retention", "value": "48 hours"},
                    {"label": "Durable", "value": "yes"},
                    {"label": "Max rate", "value": "unlimited"},
                ])
            );

            let bind = call(
                &api,
                encoding,
                Method::POST,
                &format!("/resources/{name}/bind-app"),
                &[
                    ("app-name", "web"),
                    ("app-hosts", "web.example.com"),
                    ("user", "ana@example.com"),
                ],
            )
            .await;
            assert_eq!(bind.status, 201, "{}", bind.body);
            let env = bind.json();
            assert_eq!(env["QUEUE_VHOST"], json!(format!("/{name}")));
            assert_eq!(env["QUEUE_PORT"], json!("5672"), "every value is a string");
            assert!(
                env.as_object()
                    .is_some_and(|vars| vars.values().all(Value::is_string))
            );
            let names: Vec<&String> = env.as_object().expect("an object").keys().collect();
            assert_eq!(
                names,
                [
                    "QUEUE_HOST",
                    "QUEUE_PASSWORD",
                    "QUEUE_PORT",
                    "QUEUE_URL",
                    "QUEUE_USER",
                    "QUEUE_VHOST"
                ]
            );
            let password = env["QUEUE_PASSWORD"].as_str().expect("text");
            assert!(
                password.len() == 32
                    && password
                        .bytes()
                        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)),
                "32 hex digits: {password}"
            );
            assert_eq!(
                env["QUEUE_URL"],
                json!(format!(
                    "amqp://web:{password}@queue.example.com:5672/{name}"
                ))
            );
            assert_eq!(env["QUEUE_USER"], "web");
            assert_eq!(env["QUEUE_HOST"], "queue.example.com");

            let unbind = call(
                &api,
                encoding,
                Method::DELETE,
                &format!("/resources/{name}/bind-app"),
                &[("app-name", "web")],
            )
            .await;
            assert_eq!(unbind.status, 200, "{}", unbind.body);

            let update = call(
                &api,
                encoding,
                Method::PUT,
                &format!("/resources/{name}"),
                &[
                    ("plan", "large"),
                    ("team", "platform"),
                    ("description", "bigger"),
                    ("parameters.retention_hours", "72"),
                ],
            )
            .await;
            assert_eq!(update.status, 200, "{}", update.body);
            let info = api.get(&format!("/resources/{name}")).await;
            assert_eq!(info.json()[0]["value"], "large");
            assert_eq!(info.json()[2]["value"], "72 hours");

            assert_eq!(
                api.get(&format!("/resources/{name}/status")).await.status,
                204
            );
            let removed = call(
                &api,
                encoding,
                Method::DELETE,
                &format!("/resources/{name}"),
                &[("user", "ana@example.com")],
            )
            .await;
            assert_eq!(removed.status, 200, "{}", removed.body);
            assert_eq!(api.get(&format!("/resources/{name}")).await.status, 404);
        }
    }
}

/// Cases 1 and 2: nested form keys and nested JSON decode to the same record.
#[tokio::test]
async fn nested_parameters_decode_alike_from_form_and_json() {
    let server = server("queue").await;
    let api = server.tsuru("fake");
    let form = api
        .form(
            Method::POST,
            "/resources",
            &[
                ("name", "from-form"),
                ("team", "t"),
                ("tags", "x"),
                ("tags", "y"),
                ("parameters.p1", "v1"),
                ("parameters.p2.complex1", "c1"),
                ("parameters.p2.complex2", "c2"),
            ],
        )
        .await;
    assert_eq!(form.status, 201, "{}", form.body);
    let from_json = api
        .json(
            Method::POST,
            "/resources",
            json!({"name": "from-json", "team": "t", "tags": ["x", "y"],
                   "parameters": {"p1": "v1", "p2": {"complex1": "c1", "complex2": "c2"}}}),
        )
        .await;
    assert_eq!(from_json.status, 201, "{}", from_json.body);

    let ledger = &server.host.ledger;
    let form = ledger
        .instance("fake", "from-form")
        .await
        .expect("ledger")
        .expect("recorded");
    let from_json = ledger
        .instance("fake", "from-json")
        .await
        .expect("ledger")
        .expect("recorded");
    assert_eq!(
        Value::Object(form.instance.parameters.clone()),
        json!({"p1": "v1", "p2": {"complex1": "c1", "complex2": "c2"}})
    );
    assert_eq!(form.instance.parameters, from_json.instance.parameters);
    assert_eq!(form.instance.tags, ["x", "y"]);
    assert_eq!(from_json.instance.tags, ["x", "y"]);
}

/// Case 3.
#[tokio::test]
async fn duplicate_create_is_409_naming_the_instance() {
    let server = server("queue").await;
    let api = server.tsuru("fake");
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "dup")])
            .await
            .status,
        201
    );
    // The same create again is tsuru retrying one it gave up on: the same answer.
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "dup")])
            .await
            .status,
        201
    );
    let again = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "dup"), ("plan", "large")],
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.body,
        "instance \"dup\" already exists in service \"fake\"; choose another name"
    );
}

/// Case 4: every route, both routings, without and with wrong credentials.
async fn every_route_needs_the_services_credentials(queue: &str) {
    let server = server(queue).await;
    let routes: &[(Method, &str)] = &[
        (Method::GET, "/resources/plans"),
        (Method::POST, "/resources"),
        (Method::GET, "/resources/x"),
        (Method::PUT, "/resources/x"),
        (Method::DELETE, "/resources/x"),
        (Method::POST, "/resources/x"),
        (Method::GET, "/resources/x/status"),
        (Method::POST, "/resources/x/bind-app"),
        (Method::DELETE, "/resources/x/bind-app"),
        (Method::POST, "/resources/x/bind"),
        (Method::DELETE, "/resources/x/bind"),
        (Method::PUT, "/resources/x/binds/jobs/j"),
        (Method::DELETE, "/resources/x/binds/jobs/j"),
        (Method::DELETE, "/resources/x/hostname/h"),
        (Method::POST, "/resources/x/backup"),
        (Method::GET, "/authenticated-resources/anything"),
        (Method::GET, "/some-callback"),
    ];
    let client = reqwest::Client::new();
    for prefix in ["", "/services/queue"] {
        for (method, path) in routes {
            let url = format!("{}{prefix}{path}", server.url);
            let bare = orizuru_tests::Answer::of(
                client
                    .request(method.clone(), &url)
                    .send()
                    .await
                    .expect("answer"),
            )
            .await;
            assert_eq!(bare.status, 401, "{method} {prefix}{path} without auth");
            assert!(bare.body.contains("needs basic auth"), "{}", bare.body);
            assert!(bare.headers.contains_key("www-authenticate"));

            for (user, password) in [
                ("queue", "wrong"),
                ("nobody", "secret-queue"),
                ("fake", "secret-queue"),
            ] {
                let wrong = orizuru_tests::Answer::of(
                    client
                        .request(method.clone(), &url)
                        .basic_auth(user, Some(password))
                        .send()
                        .await
                        .expect("answer"),
                )
                .await;
                assert_eq!(
                    wrong.status, 401,
                    "{method} {prefix}{path} as {user}:{password}"
                );
                assert!(
                    wrong.body.starts_with("wrong username or password"),
                    "{}",
                    wrong.body
                );
            }
        }
    }
    // One service's credentials never open another's routes.
    let as_fake = Tsuru::new(
        &format!("{}/services/queue", server.url),
        "fake",
        "secret-fake",
    );
    assert_eq!(as_fake.get("/resources/plans").await.status, 401);
    // A wrong endpoint is named to a caller holding some service's credentials, to nobody else.
    let unknown = server
        .tsuru("fake")
        .get("/services/nope/resources/plans")
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.body,
        "no service \"nope\" is served here; check the endpoint in the service's tsuru manifest"
    );
    let stranger = Tsuru::new(&server.url, "fake", "guess")
        .get("/services/nope/resources/plans")
        .await;
    assert_eq!(stranger.status, 401);
}

/// Case 5.
async fn plans_are_a_json_list_never_an_empty_body(queue: &str) {
    let server = server(queue).await;
    for api in routings(&server, "queue") {
        let plans = api.get("/resources/plans?pool=main").await;
        assert_eq!(plans.status, 200);
        assert_eq!(
            plans.json()[0],
            json!({"name": "small", "description": "One queue, 100 messages a second"})
        );
        assert_eq!(plans.json().as_array().map(Vec::len), Some(2));
    }
    let none = server.tsuru("fake").get("/resources/plans").await;
    assert_eq!((none.status, none.body.as_str()), (200, "[]"));
    assert!(
        none.content_type
            .is_some_and(|kind| kind.starts_with("application/json"))
    );
}

/// Cases 6, 7, 8, 11, 12 and 13 on unknown instances: the host answers 404.
async fn unknown_instances_are_404_on_every_instance_route(queue: &str) {
    let server = server(queue).await;
    let api = server.tsuru("queue");
    let expected = "instance \"ghost\" does not exist in service \"queue\"";
    type Call<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>);
    let calls: Vec<Call> = vec![
        (Method::GET, "/resources/ghost", vec![]),
        (Method::PUT, "/resources/ghost", vec![("plan", "small")]),
        (Method::DELETE, "/resources/ghost", vec![]),
        (Method::GET, "/resources/ghost/status", vec![]),
        (
            Method::POST,
            "/resources/ghost/bind-app",
            vec![("app-name", "web")],
        ),
        (
            Method::POST,
            "/resources/ghost/bind",
            vec![("app-name", "web")],
        ),
        (
            Method::DELETE,
            "/resources/ghost/bind-app",
            vec![("app-name", "web")],
        ),
        (
            Method::PUT,
            "/resources/ghost/binds/jobs/nightly",
            vec![("job-name", "nightly")],
        ),
        (
            Method::DELETE,
            "/resources/ghost/binds/jobs/nightly",
            vec![],
        ),
        (Method::POST, "/resources/ghost/backup", vec![]),
    ];
    for (method, path, fields) in calls {
        let answer = api.form(method.clone(), path, &fields).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (404, expected),
            "{method} {path}"
        );
    }
}

/// Cases 8 and 10: a pending instance refuses binds with 412, reports 202,
/// can be removed, and becomes bindable once its plugin says it is up.
async fn pending_instances_refuse_binds_until_up_and_can_be_removed(queue: &str) {
    let server = server(queue).await;
    let api = server.tsuru("queue");
    let created = api
        .form(
            Method::POST,
            "/resources",
            &[
                ("name", "slow"),
                ("plan", "large"),
                ("parameters.provision_seconds", "2"),
            ],
        )
        .await;
    assert_eq!(
        created.status, 202,
        "a pending create is accepted: {}",
        created.body
    );

    let status = api.get("/resources/slow/status").await;
    assert_eq!(status.status, 202);
    assert!(status.body.starts_with("provisioning"), "{}", status.body);

    let early = api
        .form(
            Method::POST,
            "/resources/slow/bind-app",
            &[("app-name", "web")],
        )
        .await;
    assert_eq!(early.status, 412);
    assert!(
        early
            .body
            .starts_with("instance \"slow\" is not ready yet (provisioning"),
        "{}",
        early.body
    );

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let bound = api
        .form(
            Method::POST,
            "/resources/slow/bind-app",
            &[("app-name", "web")],
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.body);

    let half = api
        .form(
            Method::POST,
            "/resources",
            &[
                ("name", "half"),
                ("plan", "large"),
                ("parameters.provision_seconds", "60"),
            ],
        )
        .await;
    assert_eq!(half.status, 202);
    assert_eq!(
        api.form(Method::DELETE, "/resources/half", &[])
            .await
            .status,
        200
    );
    assert_eq!(api.get("/resources/half").await.status, 404);
}

/// Case 9, and the host's rule that a bind is never an empty body.
#[tokio::test]
async fn bind_answers_an_object_of_strings() {
    let server = server("queue").await;
    let api = server.tsuru("fake");
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "db")])
            .await
            .status,
        201
    );
    for path in ["/resources/db/bind-app", "/resources/db/bind"] {
        let bound = api
            .form(
                Method::POST,
                path,
                &[("app-name", "web"), ("app-host", "web.io")],
            )
            .await;
        assert_eq!(bound.status, 201, "{path}");
        assert_eq!(bound.json(), json!({"SOMEVAR": "somevalue"}));
        assert!(
            bound
                .content_type
                .is_some_and(|kind| kind.starts_with("application/json"))
        );
    }
    let missing = api.form(Method::POST, "/resources/db/bind-app", &[]).await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.body.contains("\"app-name\" is missing"),
        "{}",
        missing.body
    );
}

/// Case 13: jobs bind and unbind like apps.
async fn jobs_bind_and_unbind(queue: &str) {
    let server = server(queue).await;
    let api = server.tsuru("queue");
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "jobs")])
            .await
            .status,
        201
    );
    let bound = api
        .form(
            Method::PUT,
            "/resources/jobs/binds/jobs/nightly",
            &[("job-name", "nightly"), ("user", "ana")],
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    assert_eq!(bound.json()["QUEUE_USER"], "job-nightly");
    let bindings = server
        .host
        .ledger
        .bindings("queue", "jobs")
        .await
        .expect("ledger");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].target, "nightly");
    assert_eq!(
        api.form(Method::DELETE, "/resources/jobs/binds/jobs/nightly", &[])
            .await
            .status,
        200
    );
    assert!(
        server
            .host
            .ledger
            .bindings("queue", "jobs")
            .await
            .expect("ledger")
            .is_empty()
    );

    // The fake API binds no jobs: a sentence, not a 404 tsuru would misread.
    let fake = server.tsuru("fake");
    assert_eq!(
        fake.form(Method::POST, "/resources", &[("name", "ff")])
            .await
            .status,
        201
    );
    let refused = fake
        .form(Method::PUT, "/resources/ff/binds/jobs/nightly", &[])
        .await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (400, "service \"fake\" does not support binding jobs")
    );
    assert_eq!(
        fake.form(Method::DELETE, "/resources/ff/binds/jobs/nightly", &[])
            .await
            .status,
        200
    );
}

/// Case 14: 204 up, 202 pending, 500 down, 200 with a text.
async fn status_codes_follow_tsuru(queue: &str) {
    let server = server(queue).await;
    let api = server.tsuru("queue");
    for (name, simulate, provision, expected, body) in [
        ("up", "", "0", 204, ""),
        ("wait", "", "600", 202, "provisioning"),
        ("down", "down", "0", 500, "the broker does not answer"),
        ("odd", "degraded", "0", 200, "degraded: 1 of 2 nodes up"),
    ] {
        let mut fields = vec![("name", name), ("parameters.provision_seconds", provision)];
        if !simulate.is_empty() {
            fields.push(("parameters.simulate", simulate));
        }
        let created = api.form(Method::POST, "/resources", &fields).await;
        assert!(
            created.status == 201 || created.status == 202,
            "{}",
            created.body
        );
        let status = api.get(&format!("/resources/{name}/status")).await;
        assert_eq!(status.status, expected, "{name}");
        assert!(status.body.starts_with(body), "{name}: {}", status.body);
    }
}

/// Case 15: the 2013 guide's routes, with the guide's fake API.
#[tokio::test]
async fn legacy_routes_answer_as_the_guide_says() {
    let server = server("queue").await;
    let api = server.tsuru("fake");
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "myinstance")])
            .await
            .status,
        201
    );
    let bound = api
        .form(
            Method::POST,
            "/resources/myinstance",
            &[
                ("app-hostname", "myapp.cloud.io"),
                ("unit-hostname", "10.0.0.1"),
            ],
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    assert_eq!(bound.json(), json!({"SOMEVAR": "somevalue"}));
    let bindings = server
        .host
        .ledger
        .bindings("fake", "myinstance")
        .await
        .expect("ledger");
    assert_eq!(bindings[0].target, "myapp.cloud.io");
    assert_eq!(
        api.form(
            Method::DELETE,
            "/resources/myinstance/hostname/myapp.cloud.io",
            &[]
        )
        .await
        .status,
        200
    );
    assert!(
        server
            .host
            .ledger
            .bindings("fake", "myinstance")
            .await
            .expect("ledger")
            .is_empty()
    );
    assert_eq!(api.get("/resources/myinstance/status").await.status, 204);
    assert_eq!(
        api.form(Method::DELETE, "/resources/myinstance", &[])
            .await
            .status,
        200
    );
    // Old tsuru's per-unit unbind on /bind.
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "old")])
            .await
            .status,
        201
    );
    assert_eq!(
        api.form(
            Method::POST,
            "/resources/old/bind",
            &[("app-host", "old.io"), ("unit-host", "10.0.0.2")]
        )
        .await
        .status,
        201
    );
    assert_eq!(
        api.form(
            Method::DELETE,
            "/resources/old/bind",
            &[("app-host", "old.io"), ("unit-host", "10.0.0.2")]
        )
        .await
        .status,
        200
    );
}

/// Case 16: a proxied call reaches the plugin intact, and so do tsuru's headers.
async fn proxy_reaches_the_plugin_intact(queue: &str) {
    let server = server(queue).await;
    for api in routings(&server, "queue") {
        let name = "proxied";
        let created = api
            .form(Method::POST, "/resources", &[("name", name)])
            .await;
        assert!(created.status == 201 || created.status == 409);
        let answer = api
            .send(
                api.request(
                    Method::POST,
                    &format!("/resources/{name}/backup?names=a&names=b"),
                )
                .header("X-Backup-Note", "nightly")
                .header("X-Tsuru-User", "ana@example.com")
                .header("X-Tsuru-Eventid", "ev-42")
                .header("X-Request-Id", "req-7")
                .header("X-Tsuru-Pool-Name", "prod")
                .header("X-Tsuru-Cluster-Name", "c1")
                .header("X-Tsuru-Cluster-Addresses", "https://a.k8s")
                .header("X-Tsuru-Cluster-Addresses", "https://b.k8s")
                .body("full backup"),
            )
            .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        assert_eq!(
            answer
                .headers
                .get("x-queue-backup")
                .and_then(|v| v.to_str().ok()),
            Some("started")
        );
        assert_eq!(
            answer.json(),
            json!({
                "instance": name, "method": "POST", "path": "/backup", "names": ["a", "b"],
                "header": "nightly", "body": "full backup", "user": "ana@example.com",
                "event_id": "ev-42", "request_id": "req-7", "pool": "prod", "cluster": "c1",
                "cluster_addresses": ["https://a.k8s", "https://b.k8s"],
            })
        );
        let unknown_path = api.get(&format!("/resources/{name}/nothing-here")).await;
        assert_eq!(unknown_path.status, 404);
        assert!(
            unknown_path.body.contains("try POST /backup"),
            "{}",
            unknown_path.body
        );
    }
    let service_level = server.tsuru("fake").get("/some-callback").await;
    assert_eq!(
        (service_level.status, service_level.body.as_str()),
        (404, "service \"fake\" does not support proxied requests")
    );
}

async fn bad_requests_get_a_sentence(queue: &str) {
    let server = server(queue).await;
    let api = server.tsuru("queue");
    /// Method, path, content type, body, expected status, part of the expected sentence.
    type Case<'a> = (Method, &'a str, Option<&'a str>, &'a str, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/resources",
            None,
            "team=t",
            400,
            "the field \"name\" is missing",
        ),
        (
            Method::POST,
            "/resources",
            None,
            "name=9lives",
            400,
            "instance name \"9lives\" is not valid",
        ),
        (
            Method::POST,
            "/resources",
            None,
            "name=a",
            400,
            "is not valid",
        ),
        (
            Method::POST,
            "/resources",
            Some("application/json"),
            "{\"name\":",
            400,
            "the JSON body is not valid",
        ),
        (
            Method::POST,
            "/resources",
            Some("text/xml"),
            "<name/>",
            415,
            "is not one tsuru sends",
        ),
        (
            Method::POST,
            "/resources",
            None,
            "name=x1&parameters.a=1&parameters.a.b=2",
            400,
            "both as a value and as a group",
        ),
        (
            Method::POST,
            "/resources",
            None,
            "name=x2&plan=huge",
            400,
            "plan \"huge\" does not exist",
        ),
        (
            Method::POST,
            "/resources",
            None,
            "name=x3&parameters.colour=red",
            400,
            "instance \"x3\" has no parameter \"colour\"",
        ),
        (
            Method::PATCH,
            "/resources/x",
            None,
            "",
            405,
            "PATCH is not a method tsuru uses",
        ),
    ];
    for (method, path, content_type, body, status, sentence) in cases {
        let mut request = api.request(method.clone(), path).body(body.to_owned());
        request = request.header(
            "Content-Type",
            content_type.unwrap_or("application/x-www-form-urlencoded"),
        );
        let answer = api.send(request).await;
        assert_eq!(
            answer.status, status,
            "{method} {path} {body}: {}",
            answer.body
        );
        assert!(
            answer.body.contains(sentence),
            "{method} {path} {body}: {}",
            answer.body
        );
        assert!(!answer.body.contains('\n'), "one sentence: {}", answer.body);
    }
    // A refused create leaves nothing behind.
    for name in ["x1", "x2", "x3"] {
        assert!(
            server
                .host
                .ledger
                .instance("queue", name)
                .await
                .expect("ledger")
                .is_none()
        );
    }
}

/// tsuru's CLI sends every parameter as text, in both encodings; a typed
/// parameter reads it (and a JSON client's typed value) with no code of the
/// plugin's own.
async fn typed_parameters_read_the_text_tsuru_sends(queue: &str) {
    let server = server(queue).await;
    let api = server.tsuru("queue");
    let info = |name: &str, durable: &str, rate: &str| {
        json!([
            {"label": "Plan", "value": "small"},
            {"label": "Virtual host", "value": format!("/{name}")},
            {"label": "Retention", "value": "48 hours"},
            {"label": "Durable", "value": durable},
            {"label": "Max rate", "value": rate},
        ])
    };
    for encoding in [Encoding::Form, Encoding::Json] {
        let name = format!("typed-{encoding:?}").to_lowercase();
        let created = call(
            &api,
            encoding,
            Method::POST,
            "/resources",
            &[
                ("name", &name),
                ("parameters.retention_hours", "48"),
                ("parameters.durable", "false"),
                ("parameters.max_rate", "12.5"),
                ("parameters.provision_seconds", " 0 "),
            ],
        )
        .await;
        assert_eq!(created.status, 201, "{encoding:?}: {}", created.body);
        let answer = api.get(&format!("/resources/{name}")).await;
        assert_eq!(answer.json(), info(&name, "no", "12.5 messages a second"));

        let bound = call(
            &api,
            encoding,
            Method::POST,
            &format!("/resources/{name}/bind-app"),
            &[("app-name", "web"), ("parameters.prefix", "orders-")],
        )
        .await;
        assert_eq!(bound.status, 201, "{encoding:?}: {}", bound.body);
        assert_eq!(bound.json()["QUEUE_PREFIX"], "orders-");
    }

    // A client of the JSON encoding may send typed values; they read alike.
    let typed = api
        .json(
            Method::POST,
            "/resources",
            json!({"name": "typed-values", "parameters": {
                "retention_hours": 48, "durable": true, "max_rate": 100, "provision_seconds": 0,
            }}),
        )
        .await;
    assert_eq!(typed.status, 201, "{}", typed.body);
    assert_eq!(
        api.get("/resources/typed-values").await.json(),
        info("typed-values", "yes", "100 messages a second")
    );
    // Booleans in any case, as people type them.
    let shouted = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "shouted"), ("parameters.durable", "TRUE")],
        )
        .await;
    assert_eq!(shouted.status, 201, "{}", shouted.body);
    assert_eq!(
        api.get("/resources/shouted").await.json()[3]["value"],
        "yes"
    );
}

/// Each refusal names the parameter and what it must be, in both
/// encodings, and records nothing.
async fn parameter_refusals_name_the_parameter(queue: &str) {
    let server = server(queue).await;
    let api = server.tsuru("queue");
    let declared = "retention_hours, provision_seconds, simulate, durable, max_rate";
    let cases = [
        (
            ("parameters.retention_hours", "lots"),
            "parameter \"retention_hours\" of instance \"bad\" must be a whole number, not \"lots\"".to_owned(),
        ),
        (
            ("parameters.retention_hours", "1.5"),
            "parameter \"retention_hours\" of instance \"bad\" must be a whole number, not \"1.5\"".to_owned(),
        ),
        (
            ("parameters.durable", "yes"),
            "parameter \"durable\" of instance \"bad\" must be true or false, not \"yes\"".to_owned(),
        ),
        (
            ("parameters.max_rate", "fast"),
            "parameter \"max_rate\" of instance \"bad\" must be a number, not \"fast\"".to_owned(),
        ),
        (
            ("parameters.colour", "red"),
            format!("instance \"bad\" has no parameter \"colour\"; the parameters are: {declared}"),
        ),
        // The plugin's own checks are its own sentences.
        (
            ("parameters.max_rate", "0"),
            "max_rate is 0; give a number of messages a second above 0".to_owned(),
        ),
        (
            ("parameters.retention_hours", "721"),
            "retention_hours is 721; give a number of hours from 1 to 720".to_owned(),
        ),
    ];
    for encoding in [Encoding::Form, Encoding::Json] {
        for (parameter, sentence) in &cases {
            let refused = call(
                &api,
                encoding,
                Method::POST,
                "/resources",
                &[("name", "bad"), *parameter],
            )
            .await;
            assert_eq!(
                (refused.status, refused.body.as_str()),
                (400, sentence.as_str()),
                "{encoding:?} {parameter:?}"
            );
        }
    }
    refused_as_json(
        &api,
        "/resources",
        json!({"name": "bad", "parameters": {"simulate": 5}}),
        "parameter \"simulate\" of instance \"bad\" must be text, not 5",
    )
    .await;
    assert!(
        server
            .host
            .ledger
            .instance("queue", "bad")
            .await
            .expect("ledger")
            .is_none(),
        "a refused create records nothing"
    );

    // A bind's parameters are refused alike, naming the app.
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "good")])
            .await
            .status,
        201
    );
    for encoding in [Encoding::Form, Encoding::Json] {
        let refused = call(
            &api,
            encoding,
            Method::POST,
            "/resources/good/bind-app",
            &[("app-name", "web"), ("parameters.prefx", "x")],
        )
        .await;
        assert_eq!(
            (refused.status, refused.body.as_str()),
            (
                400,
                "the binding of app \"web\" has no parameter \"prefx\"; the parameters are: prefix"
            ),
            "{encoding:?}"
        );
    }
    refused_as_json(
        &api,
        "/resources/good/bind-app",
        json!({"appName": "web", "parameters": {"prefix": 5}}),
        "parameter \"prefix\" of the binding of app \"web\" must be text, not 5",
    )
    .await;
    assert!(
        server
            .host
            .ledger
            .bindings("queue", "good")
            .await
            .expect("ledger")
            .is_empty(),
        "a refused bind records nothing"
    );
}

/// A JSON client's typed value is refused with `sentence` (400).
async fn refused_as_json(api: &Tsuru, path: &str, body: Value, sentence: &str) {
    let refused = api.json(Method::POST, path, body).await;
    assert_eq!((refused.status, refused.body.as_str()), (400, sentence));
}

//! The ledger belongs to the host: retried tsuru events are answered from it,
//! and it survives restarts.

use orizuru::ledger::EventOutcome;
use orizuru_tests::{Server, service};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_retried_event_is_answered_from_the_ledger_without_the_plugin() {
    let server = Server::start(&[service("queue", "queue", "")]).await;
    let api = server.tsuru("queue");
    let create = [
        ("name", "orders"),
        ("eventid", "ev-create"),
        ("user", "ana@example.com"),
    ];
    assert_eq!(
        api.form(Method::POST, "/resources", &create).await.status,
        201
    );
    let retried = api.form(Method::POST, "/resources", &create).await;
    assert_eq!(
        retried.status, 201,
        "a retry of the same event is not a duplicate: {}",
        retried.body
    );
    let other_event = api
        .form(
            Method::POST,
            "/resources",
            &[
                ("name", "orders"),
                ("plan", "large"),
                ("eventid", "ev-other"),
            ],
        )
        .await;
    assert_eq!(
        other_event.status, 409,
        "another event asking for another plan is"
    );

    let bind = [("app-name", "web"), ("eventid", "ev-bind")];
    let first = api
        .form(Method::POST, "/resources/orders/bind-app", &bind)
        .await;
    let again = api
        .form(Method::POST, "/resources/orders/bind-app", &bind)
        .await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.json(), again.json(), "the same env, from the record");

    // The event id may come in the header instead of the body, as tsuru sends it.
    let remove = || {
        api.request(Method::DELETE, "/resources/orders")
            .header("X-Tsuru-Eventid", "ev-remove")
    };
    assert_eq!(api.send(remove()).await.status, 200);
    assert_eq!(
        api.send(remove()).await.status,
        200,
        "a retried remove is not a 404"
    );
    assert_eq!(api.get("/resources/orders").await.status, 404);

    // The plugin was called once per event: one record each, none for the retries.
    let events = server
        .host
        .ledger
        .events("queue", "orders")
        .await
        .expect("ledger");
    let summary: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|event| (event.action.as_str(), event.event_id.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("create", Some("ev-create")),
            ("bind-app", Some("ev-bind")),
            ("remove", Some("ev-remove"))
        ]
    );
    assert_eq!(events[0].user.as_deref(), Some("ana@example.com"));
    // The bind's answer, passwords and all, went with the instance.
    assert_ne!(first.json(), serde_json::Value::Null);
    assert_eq!(
        events[1].outcome,
        EventOutcome::Succeeded(serde_json::Value::Null)
    );
}

#[tokio::test]
async fn instances_bindings_and_data_survive_a_restart() {
    let server = Server::start(&[service("queue", "queue", "")]).await;
    let api = server.tsuru("queue");
    assert_eq!(
        api.form(
            Method::POST,
            "/resources",
            &[
                ("name", "kept"),
                ("plan", "large"),
                ("parameters.provision_seconds", "0"),
                ("parameters.retention_hours", "12")
            ]
        )
        .await
        .status,
        201
    );
    assert_eq!(
        api.form(
            Method::POST,
            "/resources/kept/bind-app",
            &[("app-name", "web")]
        )
        .await
        .status,
        201
    );

    let server = server.restart().await;
    let api = server.tsuru("queue");
    let info = api.get("/resources/kept").await;
    assert_eq!(info.status, 200);
    assert_eq!(
        info.json()[2],
        json!({"label": "Retention", "value": "12 hours"}),
        "the plugin's data came back"
    );
    let bindings = server
        .host
        .ledger
        .bindings("queue", "kept")
        .await
        .expect("ledger");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].env["QUEUE_USER"], "web");
    assert_eq!(
        api.form(Method::POST, "/resources", &[("name", "kept")])
            .await
            .status,
        409
    );
}

#[tokio::test]
async fn a_failed_action_is_recorded_and_changes_nothing() {
    let server = Server::start(&[service("queue", "queue", "")]).await;
    let api = server.tsuru("queue");
    assert_eq!(
        api.form(
            Method::POST,
            "/resources",
            &[("name", "steady"), ("plan", "small")]
        )
        .await
        .status,
        201
    );
    let refused = api
        .form(
            Method::PUT,
            "/resources/steady",
            &[("plan", "gigantic"), ("eventid", "ev-up")],
        )
        .await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (
            400,
            "plan \"gigantic\" does not exist; choose small or large"
        )
    );
    let record = server
        .host
        .ledger
        .instance("queue", "steady")
        .await
        .expect("ledger")
        .expect("kept");
    assert_eq!(record.instance.plan.as_deref(), Some("small"));
    let events = server
        .host
        .ledger
        .events("queue", "steady")
        .await
        .expect("ledger");
    assert_eq!(
        events.last().map(|event| &event.outcome),
        Some(&EventOutcome::Failed(refused.body.clone()))
    );
    // A failed event is not replayed: the retry reaches the plugin again.
    let retried = api
        .form(
            Method::PUT,
            "/resources/steady",
            &[("plan", "large"), ("eventid", "ev-up")],
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
}

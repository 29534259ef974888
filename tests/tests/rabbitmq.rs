//! The RabbitMQ provisioner (`plugins/rabbitmq`) on the machine's broker,
//! through the management API and the HTTP capability, with a
//! least-privileged admin (tagged `administrator`, no permissions) whose
//! credentials the host holds: an instance is a vhost its apps share over
//! AMQP (lapin), an app reaches no other instance's vhost, cannot lift its
//! limits nor rewrite what marks the vhost, an unbound app is cut off, and a
//! removed instance leaves nothing on the broker. Every run uses a prefix of
//! its own and deletes whatever carries it at the end, even after a failure.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use orizuru_tests::rabbitmq::{Management, Run, encode};
use orizuru_tests::{Answer, Server, Tsuru};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn env_of(answer: &Answer) -> serde_json::Map<String, Value> {
    answer.json().as_object().expect("an env object").clone()
}

fn var<'a>(env: &'a serde_json::Map<String, Value>, name: &str) -> &'a str {
    env[name].as_str().expect("a string")
}

async fn connect(url: &str) -> lapin::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default()).await
}

/// Declares `queue` and publishes `body` to it.
async fn publish(connection: &Connection, queue: &str, body: &str) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(queue, QueueDeclareOptions::default(), FieldTable::default())
        .await?;
    channel
        .basic_publish(
            "",
            queue,
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await?
        .await?;
    Ok(())
}

/// The next message on `queue`, waiting a little for it.
async fn next_message(connection: &Connection, queue: &str) -> lapin::Result<Option<String>> {
    let channel = connection.create_channel().await?;
    for _ in 0..50 {
        if let Some(message) = channel
            .basic_get(queue, BasicGetOptions { no_ack: true })
            .await?
        {
            return Ok(Some(
                String::from_utf8_lossy(&message.delivery.data).into_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// Waits until `connection` is closed by the broker.
async fn closed(connection: &Connection) -> bool {
    for _ in 0..100 {
        if !connection.status().connected() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn create(api: &Tsuru, name: &str, plan: &str) -> Answer {
    api.form(
        Method::POST,
        "/resources",
        &[("name", name), ("plan", plan), ("team", "shop")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_a_vhost_its_apps_share_and_remove_leaves_nothing() {
    let run = Run::start().await;
    let prefix = &run.prefix;
    let server = run.server().await;
    let api = server.tsuru("rabbitmq");
    let broker = Management::superuser();

    assert_eq!(api.plan_names().await, ["small", "large"]);

    let created = create(&api, "orders", "small").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = create(&api, "billing", "small").await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(api.get("/resources/orders/status").await.status, 204);
    let vhost = format!("{prefix}/orders");
    let found = broker.vhost(&vhost).await.expect("the vhost is made");
    assert_eq!(
        found["description"],
        "orizuru: the vhost of tsuru instance orders"
    );
    assert_eq!(
        broker.limits(&vhost).await,
        json!({ "max-connections": 20, "max-queues": 100 })
    );
    let info = api.get("/resources/orders").await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert!(
        info.info_items()
            .contains(&("Virtual host".to_owned(), vhost.clone())),
        "{:?}",
        info.info_items()
    );

    // Two apps of one instance, one of another.
    let web = api.bind_app("orders", "web").await;
    assert_eq!(web.status, 201, "{}", web.body);
    let web = env_of(&web);
    let worker = api.bind_app("orders", "worker").await;
    assert_eq!(worker.status, 201, "{}", worker.body);
    let worker = env_of(&worker);
    let spy = api.bind_app("billing", "spy").await;
    assert_eq!(spy.status, 201, "{}", spy.body);
    let spy = env_of(&spy);
    assert_eq!(var(&web, "RABBITMQ_VHOST"), vhost);
    assert_eq!(
        var(&web, "RABBITMQ_USERNAME"),
        format!("{prefix}/orders/web")
    );
    assert_eq!(var(&web, "RABBITMQ_HOST"), "127.0.0.1");
    assert_eq!(var(&web, "RABBITMQ_PORT"), "5672");
    assert_eq!(var(&web, "RABBITMQ_PASSWORD").len(), 32);
    assert_eq!(
        var(&web, "RABBITMQ_URL"),
        format!(
            "amqp://{}:{}@127.0.0.1:5672/{}",
            encode(var(&web, "RABBITMQ_USERNAME")),
            var(&web, "RABBITMQ_PASSWORD"),
            encode(&vhost)
        )
    );
    let user = Management::superuser()
        .call(
            Method::GET,
            &format!("users/{}", encode(var(&web, "RABBITMQ_USERNAME"))),
            None,
        )
        .await
        .1;
    assert_eq!(user["tags"], json!([]), "an app's user has no tags");

    // Each app writes; each reads what the other wrote.
    let web_amqp = connect(var(&web, "RABBITMQ_URL"))
        .await
        .expect("web connects");
    let worker_amqp = connect(var(&worker, "RABBITMQ_URL"))
        .await
        .expect("worker connects");
    publish(&web_amqp, "jobs", "from web")
        .await
        .expect("web publishes");
    assert_eq!(
        next_message(&worker_amqp, "jobs")
            .await
            .expect("worker reads"),
        Some("from web".to_owned())
    );
    publish(&worker_amqp, "jobs", "from worker")
        .await
        .expect("worker publishes");
    assert_eq!(
        next_message(&web_amqp, "jobs").await.expect("web reads"),
        Some("from worker".to_owned())
    );

    // One instance's credentials reach no other instance's vhost.
    let elsewhere = format!(
        "amqp://{}:{}@127.0.0.1:5672/{}",
        encode(var(&spy, "RABBITMQ_USERNAME")),
        var(&spy, "RABBITMQ_PASSWORD"),
        encode(&vhost)
    );
    let refused = connect(&elsewhere).await.expect_err("refused");
    assert!(
        format!("{refused:?}").to_lowercase().contains("access"),
        "{refused:?}"
    );

    // An app cannot lift its limits, nor rewrite what marks its vhost:
    // its user has no tag, so the management API refuses it everything.
    let as_web = Management::as_user(
        var(&web, "RABBITMQ_USERNAME"),
        var(&web, "RABBITMQ_PASSWORD"),
    );
    for (method, path, body) in [
        (
            Method::PUT,
            format!("vhost-limits/{}/max-queues", encode(&vhost)),
            json!({ "value": -1 }),
        ),
        (
            Method::DELETE,
            format!("vhost-limits/{}/max-connections", encode(&vhost)),
            json!({}),
        ),
        (
            Method::PUT,
            format!("vhosts/{}", encode(&vhost)),
            json!({ "description": "mine now" }),
        ),
        (
            Method::PUT,
            format!(
                "permissions/{}/{}",
                encode(&format!("{prefix}/billing")),
                encode(var(&web, "RABBITMQ_USERNAME"))
            ),
            json!({ "configure": ".*", "write": ".*", "read": ".*" }),
        ),
    ] {
        let (status, body) = as_web.call(method, &path, Some(body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    assert_eq!(
        broker.limits(&vhost).await,
        json!({ "max-connections": 20, "max-queues": 100 })
    );
    // AMQP has no verb to change a limit; the queue limit holds over it.
    let channel = web_amqp.create_channel().await.expect("a channel");
    for number in 1..100 {
        channel
            .queue_declare(
                &format!("filler-{number}"),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("a queue within the limit");
    }
    let over = channel
        .queue_declare(
            "one-too-many",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("the 101st queue is refused");
    assert!(format!("{over:?}").contains("queue limit"), "{over:?}");

    // A plan change is the vhost's limits.
    let updated = api
        .form(Method::PUT, "/resources/orders", &[("plan", "large")])
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(
        broker.limits(&vhost).await,
        json!({ "max-connections": 200, "max-queues": 1000 })
    );

    // Unbinding web cuts it off, its open connection too; worker goes on.
    let unbound = api.unbind_app("orders", "web").await;
    assert_eq!(unbound.status, 200, "{}", unbound.body);
    assert!(closed(&web_amqp).await, "web's connection is still open");
    assert!(
        connect(var(&web, "RABBITMQ_URL")).await.is_err(),
        "web still logs in"
    );
    publish(&worker_amqp, "jobs", "still here")
        .await
        .expect("worker publishes");
    assert_eq!(
        next_message(&worker_amqp, "jobs")
            .await
            .expect("worker reads"),
        Some("still here".to_owned())
    );

    // Remove leaves nothing of the instance, and cuts its apps off.
    let removed = api.form(Method::DELETE, "/resources/orders", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(
        closed(&worker_amqp).await,
        "worker's connection is still open"
    );
    assert_eq!(
        broker.names_starting(&format!("{prefix}/orders")).await,
        (vec![], vec![])
    );
    assert!(connect(var(&worker, "RABBITMQ_URL")).await.is_err());
    let removed = api.form(Method::DELETE, "/resources/billing", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        broker.names_starting(&format!("{prefix}/")).await,
        (vec![], vec![])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_made_and_foreign_things_are_handled_safely() {
    let run = Run::start().await;
    let prefix = &run.prefix;
    // The same broker and prefix; "tight" may send three requests a call,
    // so its creates stop halfway, after making the vhost.
    let server = Server::start(&[
        run.service("tight", "max_requests = 3"),
        run.service("rabbitmq", ""),
    ])
    .await;
    let tight = server.tsuru("tight");
    let api = server.tsuru("rabbitmq");
    let broker = Management::superuser();
    let vhost = format!("{prefix}/retried");

    let failed = create(&tight, "retried", "small").await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert!(
        failed
            .body
            .starts_with("cannot create the vhost of instance \"retried\": "),
        "{}",
        failed.body
    );
    assert!(
        failed.body.contains("max_requests")
            && failed.body.contains("removing what was made also failed"),
        "{}",
        failed.body
    );
    assert!(broker.vhost(&vhost).await.is_some(), "the half-made vhost");

    // Tried again, the create finishes it: one vhost, with its limits.
    let created = create(&api, "retried", "small").await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        broker.names_starting(&format!("{prefix}/")).await,
        (vec![vhost.clone()], vec![])
    );
    assert_eq!(
        broker.limits(&vhost).await,
        json!({ "max-connections": 20, "max-queues": 100 })
    );
    let bound = api.bind_app("retried", "web").await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    let web = env_of(&bound);
    let amqp = connect(var(&web, "RABBITMQ_URL"))
        .await
        .expect("web connects");
    publish(&amqp, "jobs", "hello")
        .await
        .expect("web publishes");

    // A vhost of the same name that create did not make is never taken over.
    let taken = format!("{prefix}/taken");
    let (status, _) = broker
        .call(
            Method::PUT,
            &format!("vhosts/{}", encode(&taken)),
            Some(json!({})),
        )
        .await;
    assert!(status.is_success());
    let refused = create(&api, "taken", "small").await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        refused.body,
        format!(
            "the vhost {taken} of instance \"taken\" is taken on the broker by another vhost; choose another instance name"
        )
    );
    assert!(
        broker.vhost(&taken).await.is_some(),
        "the foreign vhost was deleted"
    );

    // An unknown plan is the caller's mistake.
    let wrong = create(&api, "wrong", "huge").await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(
        wrong.body,
        "plan \"huge\" does not exist; choose one of small, large"
    );

    // Remove of an instance whose vhost was lost still deletes its users.
    let (status, _) = broker
        .call(Method::DELETE, &format!("vhosts/{}", encode(&vhost)), None)
        .await;
    assert!(status.is_success());
    let status = api.get("/resources/retried/status").await;
    assert_eq!(status.status, 500, "{}", status.body);
    assert!(
        status.body.contains("is missing from the broker"),
        "{}",
        status.body
    );
    let removed = api.form(Method::DELETE, "/resources/retried", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        broker.names_starting(&format!("{prefix}/")).await,
        (vec![taken], vec![])
    );
}

//! Two services served by the same plugin are strangers: each sees only its
//! own instances, bindings and instance data, and one's credentials open
//! nothing of the other's. (What a plugin can reach of the host itself —
//! files, environment, network — is tested in `sandbox.rs`.)

use orizuru_tests::{Server, Tsuru, password, service};
use reqwest::Method;

fn info_value(answer: &orizuru_tests::Answer, label: &str) -> String {
    answer
        .json()
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|item| item["label"] == label)
                .and_then(|item| item["value"].as_str())
        })
        .unwrap_or_else(|| panic!("no {label:?} in the info answer: {}", answer.body))
        .to_owned()
}

#[tokio::test]
async fn services_sharing_a_plugin_see_only_their_own_instances() {
    let server =
        Server::start(&[service("north", "queue", ""), service("south", "queue", "")]).await;
    let north = server.tsuru("north");
    let south = server.tsuru("south");

    // The same instance name, made in both, with different parameters.
    let made = north
        .form(
            Method::POST,
            "/resources",
            &[("name", "shared"), ("parameters.retention_hours", "5")],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    // Before south makes its own, "shared" does not exist there.
    for (method, path) in [
        (Method::GET, "/resources/shared"),
        (Method::GET, "/resources/shared/status"),
        (Method::DELETE, "/resources/shared"),
    ] {
        let answer = south.send(south.request(method.clone(), path)).await;
        assert_eq!(answer.status, 404, "{method} {path} on south");
        assert_eq!(
            answer.body,
            "instance \"shared\" does not exist in service \"south\""
        );
    }
    // North's binding opens nothing in south.
    let bound = north
        .form(
            Method::POST,
            "/resources/shared/bind-app",
            &[("app-name", "web"), ("app-host", "web.example.com")],
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    for method in [Method::POST, Method::DELETE] {
        let answer = south
            .form(
                method.clone(),
                "/resources/shared/bind-app",
                &[("app-name", "web"), ("app-host", "web.example.com")],
            )
            .await;
        assert_eq!(answer.status, 404, "{method} bind-app on south");
        assert_eq!(
            answer.body,
            "instance \"shared\" does not exist in service \"south\""
        );
    }

    let made = south
        .form(
            Method::POST,
            "/resources",
            &[("name", "shared"), ("parameters.retention_hours", "7")],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);

    // Each plugin call is handed its own service's instance data.
    assert_eq!(
        info_value(&north.get("/resources/shared").await, "Retention"),
        "5 hours"
    );
    assert_eq!(
        info_value(&south.get("/resources/shared").await, "Retention"),
        "7 hours"
    );

    // Removing south's instance leaves north's, binding and all.
    let removed = south
        .send(south.request(Method::DELETE, "/resources/shared"))
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(north.get("/resources/shared/status").await.status, 204);
    let ledger = &server.host.ledger;
    assert!(
        ledger
            .instance("south", "shared")
            .await
            .expect("the ledger answers")
            .is_none()
    );
    assert!(
        ledger
            .instance("north", "shared")
            .await
            .expect("the ledger answers")
            .is_some()
    );
    assert_eq!(
        ledger
            .bindings("north", "shared")
            .await
            .expect("the ledger answers")
            .len(),
        1
    );

    // North's credentials open nothing of south's, whichever routing is used.
    let north_on_south = Tsuru::new(
        &format!("{}/services/south", server.url),
        "north",
        &password("north"),
    );
    assert_eq!(north_on_south.get("/resources/plans").await.status, 401);
    let south_password_as_north = Tsuru::new(&server.url, "north", &password("south"));
    assert_eq!(
        south_password_as_north.get("/resources/plans").await.status,
        401
    );
}

//! The MySQL/MariaDB provisioner (`plugins/mysql`) on the machine's MariaDB
//! at 127.0.0.1:3306, served as an admin user made with exactly the grants
//! the README documents: an instance is a database its apps use with what
//! their binds answered and the `mysql_async` client, apps of one instance
//! share it and reach nothing else, cannot lift their plan's limit, lose
//! their access when unbound, and a removed instance leaves nothing on the
//! server. Every run uses a prefix of its own, dropped at the end even
//! after a failure.

use std::time::Instant;

use mysql_async::Conn;
use mysql_async::prelude::Queryable as _;
use orizuru_tests::mysql::{connect, env_value, leftovers, root, start};
use orizuru_tests::{Answer, Tsuru};
use reqwest::Method;

/// Binds `app` and answers its env.
async fn bind(api: &Tsuru, instance: &str, app: &str) -> serde_json::Value {
    let bound = api.bind_app(instance, app).await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    bound.json()
}

/// Whether `conn` can still run a statement.
async fn alive(conn: &mut Conn) -> bool {
    conn.query_drop("SELECT 1").await.is_ok()
}

/// The MySQL error number of a refused statement.
fn number(result: Result<(), mysql_async::Error>) -> u16 {
    match result {
        Err(mysql_async::Error::Server(err)) => err.code,
        other => panic!("expected a refusal from the server, got {other:?}"),
    }
}

fn database_of(info: &Answer) -> String {
    info.info_items()
        .into_iter()
        .find(|(label, _)| label == "Database")
        .map(|(_, value)| value)
        .expect("the database is named")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_a_database_its_apps_share_and_nothing_else() {
    let (server, cleanup, _admin, _dir) = start("mysql").await;
    let prefix = cleanup.prefix().to_owned();
    let api = server.tsuru("mysql");

    assert_eq!(api.plan_names().await, ["small", "large"]);

    let started = Instant::now();
    let created = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "Orders-DB"), ("plan", "small"), ("team", "shop")],
        )
        .await;
    let create_took = started.elapsed();
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(api.get("/resources/Orders-DB/status").await.status, 204);
    let info = api.get("/resources/Orders-DB").await;
    assert_eq!(info.status, 200, "{}", info.body);
    let database = database_of(&info);
    assert!(
        database.starts_with(&format!("{prefix}_orders_db_")),
        "{database}"
    );

    // Two apps, each with a user of its own.
    let started = Instant::now();
    let web_env = bind(&api, "Orders-DB", "web").await;
    let bind_took = started.elapsed();
    assert_eq!(env_value(&web_env, "MYSQL_HOST"), "127.0.0.1");
    assert_eq!(env_value(&web_env, "MYSQL_PORT"), "3306");
    assert_eq!(env_value(&web_env, "MYSQL_DATABASE_NAME"), database);
    let web_user = env_value(&web_env, "MYSQL_USER");
    let web_password = env_value(&web_env, "MYSQL_PASSWORD");
    assert!(web_user.starts_with(&format!("{prefix}_u")), "{web_user}");
    assert!(web_user.len() <= 32, "{web_user}");
    assert_eq!(web_password.len(), 32);
    let web_url = env_value(&web_env, "DATABASE_URL");
    assert_eq!(
        web_url,
        format!("mysql://{web_user}:{web_password}@127.0.0.1:3306/{database}")
    );
    let worker_env = bind(&api, "Orders-DB", "worker").await;
    let worker_url = env_value(&worker_env, "DATABASE_URL");
    assert_ne!(env_value(&worker_env, "MYSQL_USER"), web_user);

    // Each writes, reads, and sees what the other wrote.
    let mut web = connect(&web_url).await.expect("web connects");
    web.query_drop("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item TEXT NOT NULL)")
        .await
        .expect("web creates a table");
    web.exec_drop("INSERT INTO orders (item) VALUES (?)", ("a crane",))
        .await
        .expect("web writes");
    let mut worker = connect(&worker_url).await.expect("worker connects");
    worker
        .exec_drop("INSERT INTO orders (item) VALUES (?)", ("a frog",))
        .await
        .expect("worker writes to web's table");
    let items: Vec<String> = web
        .query("SELECT item FROM orders ORDER BY id")
        .await
        .expect("web reads");
    assert_eq!(items, ["a crane", "a frog"]);
    let items: Vec<String> = worker
        .query("SELECT item FROM orders ORDER BY id")
        .await
        .expect("worker reads");
    assert_eq!(items, ["a crane", "a frog"]);

    // Another instance, and an app of it: neither reaches the other's database.
    let other = api
        .form(Method::POST, "/resources", &[("name", "other")])
        .await;
    assert_eq!(other.status, 201, "{}", other.body);
    let other_database = database_of(&api.get("/resources/other").await);
    let spy_env = bind(&api, "other", "spy").await;
    let mut spy = connect(&env_value(&spy_env, "DATABASE_URL"))
        .await
        .expect("spy connects");
    let foreign = format!("SELECT item FROM `{database}`.orders");
    assert!(matches!(
        number(spy.query_drop(&foreign).await),
        1142 | 1044
    ));
    assert_eq!(
        number(spy.query_drop(format!("USE `{database}`")).await),
        1044
    );
    assert_eq!(
        number(
            web.query_drop(format!("CREATE TABLE `{other_database}`.t (x INT)"))
                .await
        ),
        1142
    );
    let foreign_login =
        format!("mysql://{web_user}:{web_password}@127.0.0.1:3306/{other_database}");
    assert!(
        connect(&foreign_login).await.is_err(),
        "web logs in to the other database"
    );
    // Nor the provisioner's registry, nor any database it could create.
    let registry = format!("{prefix}_registry");
    assert!(matches!(
        number(
            web.query_drop(format!("SELECT * FROM `{registry}`.users"))
                .await
        ),
        1142 | 1044
    ));
    assert_eq!(
        number(
            web.query_drop(format!("CREATE DATABASE `{prefix}_mine_1`"))
                .await
        ),
        1044
    );

    // An app cannot widen its limits nor make users.
    for statement in [
        "ALTER USER CURRENT_USER() WITH MAX_USER_CONNECTIONS 0".to_owned(),
        format!("ALTER USER '{web_user}'@'%' WITH MAX_USER_CONNECTIONS 0"),
        format!("CREATE USER '{prefix}_sneak'@'%' IDENTIFIED BY 'x'"),
        format!("GRANT ALL PRIVILEGES ON `{database}`.* TO '{prefix}_sneak'@'%'"),
        format!("GRANT SELECT ON `{other_database}`.* TO CURRENT_USER()"),
        format!("GRANT ALL PRIVILEGES ON `{database}`.* TO '{web_user}'@'%' WITH GRANT OPTION"),
    ] {
        let refused = number(web.query_drop(&statement).await);
        assert!(
            matches!(refused, 1227 | 1044 | 1045 | 1410),
            "{statement}: {refused}"
        );
    }
    // The plan's limit holds: 10 connections per app on small.
    let mut extra = Vec::new();
    for _ in 0..9 {
        extra.push(connect(&web_url).await.expect("within the plan's limit"));
    }
    match connect(&web_url).await {
        Err(mysql_async::Error::Server(err)) => assert_eq!(err.code, 1226, "{err}"),
        other => panic!("an 11th connection was not refused: {other:?}"),
    }
    for conn in extra {
        drop(conn.disconnect().await);
    }

    // A plan change reaches every app's user.
    let updated = api
        .form(Method::PUT, "/resources/Orders-DB", &[("plan", "large")])
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let limits: Vec<u64> = root()
        .await
        .exec(
            "SELECT max_user_connections FROM mysql.user WHERE User IN (?, ?) ORDER BY 1",
            (web_user.clone(), env_value(&worker_env, "MYSQL_USER")),
        )
        .await
        .expect("limits listed");
    assert_eq!(limits, [50, 50]);

    // Unbound, web's session ends and its login is refused; worker goes on.
    let started = Instant::now();
    let unbound = api.unbind_app("Orders-DB", "web").await;
    let unbind_took = started.elapsed();
    assert_eq!(unbound.status, 200, "{}", unbound.body);
    assert!(!alive(&mut web).await, "web's session survived its unbind");
    assert!(connect(&web_url).await.is_err(), "web still logs in");
    assert!(alive(&mut worker).await, "worker lost its session");
    let count: Option<u64> = worker
        .query_first("SELECT COUNT(*) FROM orders")
        .await
        .expect("worker still reads");
    assert_eq!(count, Some(2));

    // Removed, nothing of the instance is left, the other instance untouched.
    let started = Instant::now();
    let removed = api.form(Method::DELETE, "/resources/Orders-DB", &[]).await;
    let remove_took = started.elapsed();
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(
        !alive(&mut worker).await,
        "worker's session survived remove"
    );
    let (databases, users) = leftovers(&prefix).await;
    assert_eq!(databases, [other_database.clone(), registry.clone()]);
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(
        alive(&mut spy).await,
        "the other instance's app lost its session"
    );

    let removed = api.form(Method::DELETE, "/resources/other", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let (databases, users) = leftovers(&prefix).await;
    assert_eq!(databases, std::slice::from_ref(&registry));
    assert_eq!(users, [format!("'{prefix}_admin'@'%'")]);
    let rows: Option<u64> = root()
        .await
        .query_first(format!(
            "SELECT (SELECT COUNT(*) FROM `{registry}`.instances) + (SELECT COUNT(*) FROM `{registry}`.users)"
        ))
        .await
        .expect("the registry is read");
    assert_eq!(rows, Some(0));

    println!(
        "create: {:.1} ms, bind: {:.1} ms, unbind: {:.1} ms, remove: {:.1} ms",
        create_took.as_secs_f64() * 1e3,
        bind_took.as_secs_f64() * 1e3,
        unbind_took.as_secs_f64() * 1e3,
        remove_took.as_secs_f64() * 1e3,
    );
}

/// Runs statements as root (the test's hand on the admin's grants).
async fn as_root(statements: &[String]) {
    let mut root = root().await;
    for statement in statements {
        root.query_drop(statement).await.expect(statement);
    }
    drop(root.disconnect().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_failed_halfway_is_retried_and_remove_says_what_remains() {
    let (server, cleanup, admin, _dir) = start("mysql").await;
    let prefix = cleanup.prefix().to_owned();
    let api = server.tsuru("mysql");
    let pattern = format!("`{prefix}\\_%`.*");
    let account = format!("'{}'@'%'", admin.user);

    // The first create makes the registry; the second fails after registering
    // the instance, when the admin may no longer create databases.
    let first = api
        .form(Method::POST, "/resources", &[("name", "first")])
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    as_root(&[format!("REVOKE CREATE ON {pattern} FROM {account}")]).await;
    let failed = api
        .form(Method::POST, "/resources", &[("name", "second")])
        .await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert!(
        failed
            .body
            .starts_with("cannot create the database of instance \"second\": MySQL refused a statement on SQL connection \"admin\": Access denied"),
        "{}",
        failed.body
    );
    assert!(!failed.body.contains(&admin.password), "{}", failed.body);
    as_root(&[format!("GRANT CREATE ON {pattern} TO {account}")]).await;
    let retried = api
        .form(Method::POST, "/resources", &[("name", "second")])
        .await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    let (databases, _) = leftovers(&prefix).await;
    let seconds: Vec<_> = databases
        .iter()
        .filter(|name| name.starts_with(&format!("{prefix}_second_")))
        .collect();
    assert_eq!(seconds.len(), 1, "{databases:?}");
    let rows: Option<u64> = root()
        .await
        .exec_first(
            format!("SELECT COUNT(*) FROM `{prefix}_registry`.instances WHERE name = ?"),
            ("second",),
        )
        .await
        .expect("the registry is read");
    assert_eq!(rows, Some(1));

    // A bind tried again gives the app a new password, and one user still.
    let env = bind(&api, "second", "web").await;
    let again = bind(&api, "second", "web").await;
    assert_eq!(
        env_value(&env, "MYSQL_USER"),
        env_value(&again, "MYSQL_USER")
    );
    assert!(connect(&env_value(&env, "DATABASE_URL")).await.is_err());
    let mut web = connect(&env_value(&again, "DATABASE_URL"))
        .await
        .expect("the new password works");

    // Remove answers 200 only when nothing is left: without DROP, the database stays, and it says so.
    as_root(&[format!("REVOKE DROP ON {pattern} FROM {account}")]).await;
    let refused = api.form(Method::DELETE, "/resources/second", &[]).await;
    assert_eq!(refused.status, 500, "{}", refused.body);
    let database = seconds[0].clone();
    assert!(
        refused.body.starts_with(&format!(
            "cannot remove instance \"second\": the database {database} is still on the server ("
        )),
        "{}",
        refused.body
    );
    assert!(!alive(&mut web).await, "the app's session survived");
    as_root(&[format!("GRANT DROP ON {pattern} TO {account}")]).await;
    let removed = api.form(Method::DELETE, "/resources/second", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let (databases, users) = leftovers(&prefix).await;
    assert!(!databases.contains(&database), "{databases:?}");
    assert_eq!(users, [format!("'{prefix}_admin'@'%'")]);

    // An app that drops its own database cannot make remove fail or lie.
    let env = bind(&api, "first", "web").await;
    let mut web = connect(&env_value(&env, "DATABASE_URL"))
        .await
        .expect("connects");
    let own = env_value(&env, "MYSQL_DATABASE_NAME");
    web.query_drop(format!("DROP DATABASE `{own}`"))
        .await
        .expect("an app may drop its own database");
    let status = api.get("/resources/first/status").await;
    assert_eq!(status.status, 500, "{}", status.body);
    let removed = api.form(Method::DELETE, "/resources/first", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        leftovers(&prefix).await.1,
        [format!("'{prefix}_admin'@'%'")]
    );

    // Bad input is answered with a sentence.
    let wrong = api
        .form(
            Method::POST,
            "/resources",
            &[("name", "wrong"), ("plan", "huge")],
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(
        wrong.body,
        "plan \"huge\" does not exist; choose one of small, large"
    );
    drop(cleanup);
}

//! The PostgreSQL provisioner (`plugins/postgres`) on the real server at
//! 127.0.0.1:5432, through the SQL capability: an instance is a database an
//! app connects to with what its bind answered, an unbound app's role is
//! gone, and a removed instance leaves nothing on the server. Every run
//! uses a prefix of its own, so runs never meet, and drops whatever carries
//! it at the end, even after a failure.

use std::time::Instant;

use orizuru_tests::{Server, plugin_bytes, service};
use reqwest::Method;
use tokio_postgres::NoTls;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A name no other run uses: `orz` and 8 hex digits.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos() ^ (elapsed.as_secs() as u32))
        .unwrap_or_default();
    format!("orz{:08x}", nanos ^ std::process::id().rotate_left(16))
}

/// A host serving the provisioner as service `id`, with its admin URL in a
/// file and `extra` TOML in its `[services.config]`.
async fn provisioner(id: &str, prefix: &str, extra_config: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let url_file = dir.path().join("admin-url");
    std::fs::write(&url_file, format!("{ADMIN_URL}\n")).expect("the URL is written");
    let server = Server::start(&[service(
        id,
        "postgres",
        &format!(
            "[services.sql.admin]\nurl_file = \"{}\"\n[services.config]\nhost = \"127.0.0.1\"\nport = \"5432\"\nprefix = \"{prefix}\"\n{extra_config}",
            url_file.display()
        ),
    )])
    .await;
    (server, dir)
}

async fn admin() -> tokio_postgres::Client {
    connect(ADMIN_URL).await.expect("the admin connects")
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("connection ended: {err}");
        }
    });
    Ok(client)
}

/// Databases and roles whose names start with `prefix`.
async fn leftovers(admin: &tokio_postgres::Client, prefix: &str) -> (Vec<String>, Vec<String>) {
    let like = format!("{prefix}\\_%");
    let names = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|row| row.get(0)).collect();
    let databases = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&like],
        )
        .await
        .expect("databases listed");
    let roles = admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1",
            &[&like],
        )
        .await
        .expect("roles listed");
    (names(databases), names(roles))
}

/// Drops everything a run's prefix names when the test ends, passed or not.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        // A test's runtime may be gone by now: this one is its own.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let admin = admin().await;
                let (databases, roles) = leftovers(&admin, &prefix).await;
                for database in databases {
                    admin
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                        ))
                        .await
                        .expect("a leftover database is dropped");
                }
                // Members before the roles they belong to.
                for role in roles.iter().filter(|role| !role.ends_with("_owner")) {
                    admin
                        .batch_execute(&format!(
                            "DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""
                        ))
                        .await
                        .expect("a leftover role is dropped");
                }
                for role in roles.iter().filter(|role| role.ends_with("_owner")) {
                    admin
                        .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
                        .await
                        .expect("a leftover role is dropped");
                }
            });
        })
        .join();
        if cleaned.is_err() && !std::thread::panicking() {
            panic!("the test's databases and roles could not be dropped");
        }
    }
}

fn env_of(answer: &orizuru_tests::Answer) -> serde_json::Map<String, serde_json::Value> {
    answer.json().as_object().expect("an env object").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_a_database_its_apps_use_and_remove_leaves_nothing() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let (server, _dir) = provisioner("postgres", &prefix, "").await;
    let api = server.tsuru("postgres");
    let admin = admin().await;

    let plans = api.get("/resources/plans").await;
    assert_eq!(plans.status, 200, "{}", plans.body);
    let names: Vec<_> = plans.json().as_array().expect("a list")[..]
        .iter()
        .map(|plan| plan["name"].as_str().expect("a name").to_owned())
        .collect();
    assert_eq!(names, ["small", "large"]);

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
    let info = info.info_items();
    let database = info
        .iter()
        .find(|(label, _)| label == "Database")
        .map(|(_, value)| value.clone())
        .expect("the database is named");
    assert!(
        database.starts_with(&format!("{prefix}_orders_db_")),
        "{database}"
    );
    for expected in [
        ("Plan", "small"),
        ("Address", "127.0.0.1:5432"),
        ("Connections", "0 of 20"),
    ] {
        assert!(
            info.iter()
                .any(|(label, value)| (label.as_str(), value.as_str()) == expected),
            "{expected:?} missing from {info:?}"
        );
    }
    let row = admin
        .query_one(
            "SELECT datconnlimit, pg_get_userbyid(datdba)::text,
                    has_database_privilege('public', oid, 'CONNECT')
               FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("the database exists");
    assert_eq!(row.get::<_, i32>(0), 20);
    assert_eq!(row.get::<_, String>(1), format!("{database}_owner"));
    assert!(
        !row.get::<_, bool>(2),
        "every role may connect to the database"
    );

    // A plan change is the database's connection limit.
    let updated = api
        .form(
            Method::PUT,
            "/resources/Orders-DB",
            &[("plan", "large"), ("team", "shop")],
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let limit: i32 = admin
        .query_one(
            "SELECT datconnlimit FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("the database exists")
        .get(0);
    assert_eq!(limit, 100);

    let started = Instant::now();
    let bound = api
        .form(
            Method::POST,
            "/resources/Orders-DB/bind-app",
            &[("app-name", "web"), ("app-host", "web.example.com")],
        )
        .await;
    let bind_took = started.elapsed();
    assert_eq!(bound.status, 201, "{}", bound.body);
    let env = env_of(&bound);
    let value = |name: &str| {
        env.get(name)
            .and_then(|value| value.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
            .to_owned()
    };
    let (user, password) = (value("PGUSER"), value("PGPASSWORD"));
    assert_eq!(value("PGHOST"), "127.0.0.1");
    assert_eq!(value("PGPORT"), "5432");
    assert_eq!(value("PGDATABASE"), database);
    assert!(user.starts_with(&format!("{database}_a_web_")), "{user}");
    assert_eq!(password.len(), 32);
    let url = value("DATABASE_URL");
    assert_eq!(
        url,
        format!("postgres://{user}:{password}@127.0.0.1:5432/{database}")
    );

    // The app uses its database, and what it makes is the instance's.
    let app = connect(&url).await.expect("the app connects");
    app.batch_execute("CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL)")
        .await
        .expect("the app creates a table");
    app.execute("INSERT INTO orders (item) VALUES ($1)", &[&"a crane"])
        .await
        .expect("the app writes a row");
    let item: String = app
        .query_one("SELECT item FROM orders", &[])
        .await
        .expect("the app reads its row")
        .get(0);
    assert_eq!(item, "a crane");
    let owner: String = app
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'orders'",
            &[],
        )
        .await
        .expect("the table is listed")
        .get(0);
    assert_eq!(owner, format!("{database}_owner"));

    // A second app, still bound when the instance is removed.
    let other = api
        .form(
            Method::POST,
            "/resources/Orders-DB/bind-app",
            &[("app-name", "worker")],
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.body);
    let other_url = env_of(&other)["DATABASE_URL"]
        .as_str()
        .expect("a URL")
        .to_owned();
    let worker = connect(&other_url).await.expect("the worker connects");
    let count: i64 = worker
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("the worker reads the app's table")
        .get(0);
    assert_eq!(count, 1);

    let unbound = api
        .form(
            Method::DELETE,
            "/resources/Orders-DB/bind-app",
            &[("app-name", "web")],
        )
        .await;
    assert_eq!(unbound.status, 200, "{}", unbound.body);
    let Err(refused) = connect(&url).await else {
        panic!("the unbound app still connects");
    };
    assert!(
        refused.to_string().contains("does not exist")
            || refused
                .as_db_error()
                .is_some_and(|db| db.message().contains(&user)),
        "{refused}"
    );
    assert!(app.is_closed() || app.simple_query("SELECT 1").await.is_err());
    // The data stays with the instance.
    let count: i64 = worker
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("the worker still reads")
        .get(0);
    assert_eq!(count, 1);

    let removed = api.form(Method::DELETE, "/resources/Orders-DB", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        leftovers(&admin, &prefix).await,
        (Vec::new(), Vec::new()),
        "the instance left databases or roles"
    );
    assert!(connect(&other_url).await.is_err());

    println!(
        "create: {:.1} ms, bind: {:.1} ms",
        create_took.as_secs_f64() * 1e3,
        bind_took.as_secs_f64() * 1e3
    );
}

/// The names the provisioner gives an instance (its docs say how).
fn names_of(prefix: &str, instance: &str) -> (String, String) {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in instance.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let slug: String = instance
        .to_ascii_lowercase()
        .replace('-', "_")
        .chars()
        .take(16)
        .collect();
    let database = format!("{prefix}_{slug}_{hash:08x}");
    (database.clone(), format!("{database}_owner"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_made_and_foreign_things_are_handled_safely() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let (server, _dir) = provisioner("postgres", &prefix, "").await;
    let api = server.tsuru("postgres");
    let admin = admin().await;

    // A create that stopped after making the owner role is finished by the next one.
    let (database, owner) = names_of(&prefix, "retried");
    admin
        .batch_execute(&format!("CREATE ROLE \"{owner}\" NOLOGIN"))
        .await
        .expect("a half-made owner");
    let created = api
        .form(Method::POST, "/resources", &[("name", "retried")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        leftovers(&admin, &prefix).await.0,
        std::slice::from_ref(&database),
        "the database was made"
    );

    // A database of the same name that create did not make is never taken over.
    let (taken, _) = names_of(&prefix, "taken");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{taken}\""))
        .await
        .expect("a foreign database");
    let refused = api
        .form(Method::POST, "/resources", &[("name", "taken")])
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        refused.body,
        format!(
            "the database name {taken} of instance \"taken\" is taken on the server by another database; choose another instance name"
        )
    );
    assert!(
        admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&taken])
            .await
            .expect("listed")
            .is_some(),
        "the foreign database was dropped"
    );

    // An unknown plan is the caller's mistake.
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

    // Remove of an instance whose database was lost still drops its roles.
    admin
        .batch_execute(&format!("DROP DATABASE \"{database}\""))
        .await
        .expect("the database is lost");
    let status = api.get("/resources/retried/status").await;
    assert_eq!(status.status, 500, "{}", status.body);
    assert!(
        status.body.contains("is missing from the server"),
        "{}",
        status.body
    );
    let removed = api.form(Method::DELETE, "/resources/retried", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let (_, roles) = leftovers(&admin, &prefix).await;
    assert!(roles.is_empty(), "{roles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_needs_a_declared_connection() {
    // A plugin that imports the SQL interface is refused where no connection is declared.
    let server = Server::start(&[service(
        "plain",
        "fake",
        "[services.config]\nhost = \"127.0.0.1\"",
    )])
    .await;
    let refused = server
        .admin()
        .upload("plain", plugin_bytes("postgres"))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.starts_with(
            "the uploaded plugin imports orizuru:service/sql@0.1.0, which service \"plain\" is not granted; add a [services.sql.NAME] table to its [[services]] entry"
        ),
        "{}",
        refused.body
    );

    // A connection name the service does not declare is answered as such.
    let prefix = unique_prefix();
    let (server, _dir) = provisioner("misnamed", &prefix, "connection = \"reporting\"\n").await;
    let create = server
        .tsuru("misnamed")
        .form(Method::POST, "/resources", &[("name", "orders")])
        .await;
    assert_eq!(create.status, 500, "{}", create.body);
    assert_eq!(
        create.body,
        "cannot create the database of instance \"orders\": the service has no SQL connection \"reporting\" (it has \"admin\"); its operator must declare it as a [services.sql.reporting] table"
    );
}

//! The PostgreSQL provisioner (`plugins/postgres`) on the real server at
//! 127.0.0.1:5432, through the SQL capability, run by an admin role with
//! exactly the grants the README documents: apps of one instance share its
//! data and nothing else, cannot widen their plan or make remove lie, an
//! unbound app's login is gone, a removed instance leaves nothing on the
//! server, and a create stopped halfway is finished by the next one. Every
//! run uses a prefix of its own (`orizuru_tests::postgres`).

use std::time::Instant;

use orizuru_tests::postgres::{Provisioner, connect, env_of, superuser};
use orizuru_tests::{Server, plugin_bytes, service};
use reqwest::Method;

/// A bound app's DATABASE_URL and user.
fn login(answer: &orizuru_tests::Answer) -> (String, String) {
    let env = env_of(answer);
    let value = |name: &str| {
        env.get(name)
            .and_then(|value| value.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
            .to_owned()
    };
    (value("DATABASE_URL"), value("PGUSER"))
}

fn info_value(info: &[(String, String)], label: &str) -> String {
    info.iter()
        .find(|(name, _)| name == label)
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| panic!("{label} missing from {info:?}"))
}

/// The SQLSTATE and message of a statement the app was refused.
async fn refused(client: &tokio_postgres::Client, statement: &str) -> (String, String) {
    match client.batch_execute(statement).await {
        Ok(()) => panic!("the app could run {statement}"),
        Err(err) => match err.as_db_error() {
            Some(db) => (db.code().code().to_owned(), db.message().to_owned()),
            None => (String::new(), err.to_string()),
        },
    }
}

async fn connection_limit(root: &tokio_postgres::Client, database: &str) -> i32 {
    root.query_one(
        "SELECT datconnlimit FROM pg_database WHERE datname = $1",
        &[&database],
    )
    .await
    .expect("the database exists")
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_share_their_instance_and_nothing_else_and_remove_leaves_nothing() {
    let pg = Provisioner::start("postgres", "").await;
    let api = pg.server.tsuru("postgres");
    let root = superuser().await;

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
    let info = info.info_items();
    let database = info_value(&info, "Database");
    assert_eq!(database, format!("{}_orders_db", pg.prefix));
    assert_eq!(info_value(&info, "Address"), "127.0.0.1:5432");
    assert_eq!(info_value(&info, "Connections"), "0 of 20");

    // The admin owns the database; nobody else may connect.
    let row = root
        .query_one(
            "SELECT datconnlimit, pg_get_userbyid(datdba)::text,
                    has_database_privilege('public', oid, 'CONNECT')
               FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("the database exists");
    assert_eq!(row.get::<_, i32>(0), 20);
    assert_eq!(row.get::<_, String>(1), pg.admin_role);
    assert!(!row.get::<_, bool>(2), "every role may connect");

    // A plan change is the database's connection limit.
    let updated = api
        .form(
            Method::PUT,
            "/resources/Orders-DB",
            &[("plan", "large"), ("team", "shop")],
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(connection_limit(&root, &database).await, 100);

    let started = Instant::now();
    let web = api.bind_app("Orders-DB", "web").await;
    let bind_took = started.elapsed();
    assert_eq!(web.status, 201, "{}", web.body);
    let env = env_of(&web);
    for (name, expected) in [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", "5432"),
        ("PGDATABASE", database.as_str()),
    ] {
        assert_eq!(env[name].as_str(), Some(expected), "{name}");
    }
    let (web_url, web_user) = login(&web);
    assert_eq!(web_user, format!("{database}_web"));
    assert_eq!(env["PGPASSWORD"].as_str().map(str::len), Some(32));
    let worker = api.bind_app("Orders-DB", "worker").await;
    assert_eq!(worker.status, 201, "{}", worker.body);
    let (worker_url, _) = login(&worker);

    // Each app writes, reads, and sees what the other wrote; what they
    // make is the instance's group's.
    let web_client = connect(&web_url).await.expect("web connects");
    web_client
        .batch_execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);
             INSERT INTO orders (item) VALUES ('a crane')",
        )
        .await
        .expect("web creates a table and writes");
    let worker_client = connect(&worker_url).await.expect("worker connects");
    worker_client
        .batch_execute("INSERT INTO orders (item) VALUES ('a boat'); CREATE TABLE jobs (id int)")
        .await
        .expect("worker writes into web's table and makes its own");
    let items: Vec<String> = web_client
        .query("SELECT item FROM orders ORDER BY id", &[])
        .await
        .expect("web reads")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(items, ["a crane", "a boat"]);
    web_client
        .batch_execute("INSERT INTO jobs VALUES (1)")
        .await
        .expect("web writes into worker's table");
    let owners: Vec<String> = web_client
        .query(
            "SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .expect("tables listed")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(owners, [database.as_str()]);

    // Another instance, which Orders-DB's apps cannot reach.
    let other = api
        .form(Method::POST, "/resources", &[("name", "other")])
        .await;
    assert_eq!(other.status, 201, "{}", other.body);
    let other_database = format!("{}_other", pg.prefix);
    // The same login, the other database: only the URL's path changes
    // (the user's name starts with the database's, so no replace).
    let (server_part, _) = web_url.rsplit_once('/').expect("a URL with a path");
    let elsewhere = format!("{server_part}/{other_database}");
    let Err(refusal) = connect(&elsewhere).await else {
        panic!("web reached another instance's database");
    };
    assert_eq!(
        refusal.as_db_error().map(|db| db.code().code()),
        Some("42501"),
        "{refusal}"
    );

    // An app cannot widen its limits, take another's data or the
    // provisioner's markers, or make remove lie.
    // 42501: insufficient privilege, whatever each version's message says.
    for statement in [
        format!("ALTER DATABASE \"{database}\" CONNECTION LIMIT -1"),
        format!("ALTER DATABASE \"{database}\" WITH IS_TEMPLATE true"),
        format!("COMMENT ON DATABASE \"{database}\" IS 'mine'"),
        format!("COMMENT ON ROLE \"{database}\" IS 'mine'"),
        format!("COMMENT ON ROLE \"{web_user}\" IS 'mine'"),
        format!("ALTER ROLE \"{web_user}\" CONNECTION LIMIT -1"),
        format!("ALTER ROLE \"{database}\" LOGIN"),
        format!("SET ROLE \"{other_database}\""),
        format!("SET ROLE \"{}\"", pg.admin_role),
        "CREATE SCHEMA mine".to_owned(),
        // As itself, not the group, the app can make nothing it would own.
        "SET ROLE NONE; CREATE TABLE owned_by_the_app (id int)".to_owned(),
    ] {
        let (code, said) = refused(&web_client, &statement).await;
        assert_eq!(code, "42501", "{statement}: {said}");
    }
    assert_eq!(connection_limit(&root, &database).await, 100);

    // Unbind: web's login is gone, its session ended; worker keeps working.
    let unbound = api.unbind_app("Orders-DB", "web").await;
    assert_eq!(unbound.status, 200, "{}", unbound.body);
    assert!(connect(&web_url).await.is_err(), "the unbound app connects");
    assert!(web_client.is_closed() || web_client.simple_query("SELECT 1").await.is_err());
    let count: i64 = worker_client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("worker still reads")
        .get(0);
    assert_eq!(count, 2);

    // Remove, with worker still bound and connected, and the admin a
    // member of the group as PostgreSQL 16 makes it of the roles it
    // creates: teardown never ends the admin's own sessions.
    root.batch_execute(&format!("GRANT \"{database}\" TO \"{}\"", pg.admin_role))
        .await
        .expect("the admin is made a member of the group");
    let admin_session = connect(&pg.admin_url).await.expect("the admin connects");
    let started = Instant::now();
    let removed = api.form(Method::DELETE, "/resources/Orders-DB", &[]).await;
    let remove_took = started.elapsed();
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        pg.leftovers().await,
        (vec![other_database.clone()], vec![other_database.clone()]),
        "Orders-DB left databases or roles"
    );
    assert!(connect(&worker_url).await.is_err());
    let removed = api.form(Method::DELETE, "/resources/other", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(pg.leftovers().await, (Vec::new(), Vec::new()));
    // The admin's own sessions were never touched.
    admin_session
        .simple_query("SELECT 1")
        .await
        .expect("the admin's session works");

    println!(
        "create: {:.1} ms, bind: {:.1} ms, remove: {:.1} ms",
        create_took.as_secs_f64() * 1e3,
        bind_took.as_secs_f64() * 1e3,
        remove_took.as_secs_f64() * 1e3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halfway_creates_are_finished_and_names_never_meet() {
    let pg = Provisioner::start("postgres", "").await;
    let api = pg.server.tsuru("postgres");
    let root = superuser().await;
    let prefix = &pg.prefix;

    // A create that stopped after making the group and the database (the
    // comment is what the provisioner writes on its group) is finished by
    // the next one, which leaves one instance's worth of things.
    let group = format!("{prefix}_retried");
    root.batch_execute(&format!(
        "CREATE ROLE \"{group}\" NOLOGIN;
         COMMENT ON ROLE \"{group}\" IS 'orizuru: the group of tsuru instance \"retried\" under prefix {prefix}'"
    ))
    .await
    .expect("a half-made group");
    root.batch_execute(&format!(
        "CREATE DATABASE \"{group}\" OWNER \"{}\"",
        pg.admin_role
    ))
    .await
    .expect("a half-made database");
    let created = api
        .form(Method::POST, "/resources", &[("name", "retried")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        pg.leftovers().await,
        (vec![group.clone()], vec![group.clone()])
    );
    // Once more, as tsuru retries a create whose answer it lost.
    let again = api
        .form(Method::POST, "/resources", &[("name", "retried")])
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(
        pg.leftovers().await,
        (vec![group.clone()], vec![group.clone()])
    );

    // Apps whose names differ but slug alike get roles of their own.
    let first = api.bind_app("retried", "web-1").await;
    let second = api.bind_app("retried", "web_1").await;
    assert_eq!((first.status, second.status), (201, 201));
    let (first_url, first_user) = login(&first);
    let (second_url, second_user) = login(&second);
    assert_eq!(first_user, format!("{group}_web_1"));
    assert_eq!(second_user, format!("{group}_web_1_2"));
    let first_client = connect(&first_url).await.expect("web-1 connects");
    first_client
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .expect("web-1 makes a table in the finished instance");
    // A bind tried again gives the same role a new password. The test
    // server trusts loopback (no password is checked), so the stored
    // verifier is what shows the change.
    let verifier = || async {
        root.query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&first_user],
        )
        .await
        .expect("the role exists")
        .get::<_, Option<String>>(0)
        .expect("the role has a password")
    };
    let before = verifier().await;
    let rebound = api.bind_app("retried", "web-1").await;
    assert_eq!(rebound.status, 201, "{}", rebound.body);
    let (rebound_url, rebound_user) = login(&rebound);
    assert_eq!(rebound_user, first_user);
    assert_ne!(rebound_url, first_url, "the same password twice");
    assert_ne!(verifier().await, before, "the password was not changed");
    connect(&rebound_url).await.expect("the new URL connects");
    // Unbinding one never takes the other.
    let unbound = api.unbind_app("retried", "web-1").await;
    assert_eq!(unbound.status, 200, "{}", unbound.body);
    let second_client = connect(&second_url).await.expect("web_1 still connects");
    second_client
        .query_one("SELECT id FROM t", &[])
        .await
        .expect("web_1 reads web-1's table");

    // Instances whose names slug alike, or whose name is taken by a
    // database create did not make, get names of their own.
    root.batch_execute(&format!("CREATE DATABASE \"{prefix}_taken\""))
        .await
        .expect("a foreign database");
    for name in ["My-DB", "my_db", "taken"] {
        let created = api
            .form(Method::POST, "/resources", &[("name", name)])
            .await;
        assert_eq!(created.status, 201, "{name}: {}", created.body);
    }
    let database = |name: &str| {
        let api = &api;
        let name = name.to_owned();
        async move {
            info_value(
                &api.get(&format!("/resources/{name}")).await.info_items(),
                "Database",
            )
        }
    };
    assert_eq!(database("My-DB").await, format!("{prefix}_my_db"));
    assert_eq!(database("my_db").await, format!("{prefix}_my_db_2"));
    assert_eq!(database("taken").await, format!("{prefix}_taken_2"));

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
    root.batch_execute(&format!("DROP DATABASE \"{group}\" WITH (FORCE)"))
        .await
        .expect("the database is lost");
    let status = api.get("/resources/retried/status").await;
    assert_eq!(status.status, 500, "{}", status.body);
    assert!(
        status.body.contains("is missing from the server"),
        "{}",
        status.body
    );
    for name in ["retried", "My-DB", "my_db", "taken"] {
        let removed = api
            .form(Method::DELETE, &format!("/resources/{name}"), &[])
            .await;
        assert_eq!(removed.status, 200, "{name}: {}", removed.body);
    }
    // Only the database create did not make is left, untouched.
    assert_eq!(
        pg.leftovers().await,
        (vec![format!("{prefix}_taken")], Vec::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_leaves_nothing_and_remove_names_what_remains() {
    // The admin connection may not reach the new database: create fails
    // halfway, says why, and takes back what it made.
    let pg = Provisioner::start_reaching("postgres", Some("[\"elsewhere_*\"]"), "").await;
    let api = pg.server.tsuru("postgres");
    let failed = api
        .form(Method::POST, "/resources", &[("name", "orders")])
        .await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert!(
        failed.body.starts_with(&format!(
            "cannot create the database of instance \"orders\": SQL connection \"admin\" may not reach database \"{}_orders\" (it may reach \"elsewhere_*\"); its operator must add a pattern matching it to databases in [services.sql.admin]",
            pg.prefix
        )),
        "{}",
        failed.body
    );
    assert_eq!(pg.leftovers().await, (Vec::new(), Vec::new()));

    // What remove cannot drop, it names instead of answering 200.
    let pg = Provisioner::start("postgres", "").await;
    let api = pg.server.tsuru("postgres");
    let root = superuser().await;
    let created = api
        .form(Method::POST, "/resources", &[("name", "orders")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let group = format!("{}_orders", pg.prefix);
    let table = format!("{}_kept", pg.prefix);
    // As on PostgreSQL 13 and 14 where PUBLIC may create in public schemas:
    // the group owns a table outside its database.
    root.batch_execute(&format!(
        "CREATE TABLE \"{table}\" (id int); ALTER TABLE \"{table}\" OWNER TO \"{group}\""
    ))
    .await
    .expect("a table the group owns elsewhere");
    let removed = api.form(Method::DELETE, "/resources/orders", &[]).await;
    assert_eq!(removed.status, 500, "{}", removed.body);
    assert!(
        removed.body.starts_with(&format!(
            "instance \"orders\" is not fully removed; still on the server: role {group} (role {group} cannot be dropped"
        )),
        "{}",
        removed.body
    );
    root.batch_execute(&format!("DROP TABLE \"{table}\""))
        .await
        .expect("the table is dropped");
    let removed = api.form(Method::DELETE, "/resources/orders", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(pg.leftovers().await, (Vec::new(), Vec::new()));
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
    let pg = Provisioner::start("misnamed", "connection = \"reporting\"\n").await;
    let create = pg
        .server
        .tsuru("misnamed")
        .form(Method::POST, "/resources", &[("name", "orders")])
        .await;
    assert_eq!(create.status, 500, "{}", create.body);
    assert_eq!(
        create.body,
        "cannot create the database of instance \"orders\": the service has no SQL connection \"reporting\" (it has \"admin\"); its operator must declare it as a [services.sql.reporting] table"
    );
}

/// The role the provisioner's earlier version gave an app: the database,
/// `_a_`, 12 characters of the app's name and its 32-bit FNV-1a.
fn earlier_app_role(database: &str, app: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in app.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{database}_a_{app}_{hash:08x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_the_earlier_version_made_is_removed_whole() {
    let pg = Provisioner::start("postgres", "").await;
    let prefix = pg.prefix.clone();
    let root = superuser().await;
    let created = pg
        .server
        .tsuru("postgres")
        .form(Method::POST, "/resources", &[("name", "legacy")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    // What the earlier version made, as it made it: a database its owner
    // role holds, with a table in it, and an app's login that is a member
    // of the owner; the admin is neither. A role that is a member of the
    // owner under another name is no app of the instance and stays.
    let database = format!("{prefix}_legacy_0badc0de");
    let owner = format!("{database}_owner");
    let app = earlier_app_role(&database, "web");
    let stranger = format!("{prefix}_stranger");
    root.batch_execute(&format!("DROP DATABASE \"{prefix}_legacy\""))
        .await
        .expect("this version's database is dropped");
    root.batch_execute(&format!(
        "DROP ROLE \"{prefix}_legacy\";
         CREATE ROLE \"{owner}\" NOLOGIN;
         CREATE ROLE \"{app}\" LOGIN IN ROLE \"{owner}\";
         CREATE ROLE \"{stranger}\" LOGIN IN ROLE \"{owner}\";"
    ))
    .await
    .expect("the earlier roles");
    root.batch_execute(&format!("CREATE DATABASE \"{database}\" OWNER \"{owner}\""))
        .await
        .expect("the earlier database");
    let inside = connect(&format!("postgres://postgres@127.0.0.1:5432/{database}"))
        .await
        .expect("the superuser reaches the earlier database");
    inside
        .batch_execute(&format!(
            "CREATE TABLE t (id int); ALTER TABLE t OWNER TO \"{owner}\""
        ))
        .await
        .expect("a table the owner holds");
    drop(inside);
    let data = serde_json::json!({ "database": database, "owner": owner }).to_string();
    let server = pg
        .server
        .restart_with(|dir| {
            let ledger =
                rusqlite::Connection::open(dir.join("ledger.sqlite3")).expect("the ledger opens");
            let changed = ledger
                .execute(
                    "UPDATE instances SET data = ?1 WHERE service = 'postgres' AND name = 'legacy'",
                    [&data],
                )
                .expect("the instance's data is rewritten");
            assert_eq!(changed, 1);
        })
        .await;
    let api = server.tsuru("postgres");
    let app_session = connect(&format!("postgres://{app}@127.0.0.1:5432/{database}"))
        .await
        .expect("the earlier app connects");
    let admin = connect(&pg.admin_url).await.expect("the admin connects");

    // It is not served as one of this version's, and says so.
    let made_earlier = "instance \"legacy\" was made by an earlier version of this provisioner, whose apps could act as its database's owner; remove the instance (which drops what that version made) and create it again";
    let status = api.get("/resources/legacy/status").await;
    assert_eq!(status.status, 500, "{}", status.body);
    assert_eq!(status.body, made_earlier);
    let bound = api.bind_app("legacy", "worker").await;
    assert_eq!(bound.status, 500, "{}", bound.body);
    assert!(bound.body.ends_with(made_earlier), "{}", bound.body);

    // Remove drops its database, owner and app; the stranger, the admin and
    // the admin's session stay.
    let removed = api.form(Method::DELETE, "/resources/legacy", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        orizuru_tests::postgres::leftovers(&root, &prefix).await,
        (Vec::new(), vec![stranger.clone()])
    );
    assert!(app_session.simple_query("SELECT 1").await.is_err());
    admin
        .simple_query("SELECT 1")
        .await
        .expect("the admin's session was not ended");
}

//! The Redis provisioner (`plugins/redis`) on the real server at
//! 127.0.0.1:6379, through the Redis capability, served as the
//! least-privileged admin user the README documents: an instance is a key
//! prefix two apps share with what their binds answered, no app reaches
//! another instance or widens its own rights, an unbound app is cut, a
//! removed instance leaves no key and no user, and a create finishes what
//! an earlier one left. Every run uses a prefix of its own and deletes
//! whatever carries it at the end, even after a failure.

use orizuru_tests::redis::{Cleanup, connect, leftovers, provisioner, superuser, unique_prefix};
use redis::AsyncCommands as _;
use reqwest::Method;

fn env_of(answer: &orizuru_tests::Answer) -> serde_json::Map<String, serde_json::Value> {
    answer.json().as_object().expect("an env object").clone()
}

fn var<'a>(env: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> &'a str {
    env[name].as_str().expect("a string")
}

/// The code of the server's refusal (`NOPERM`), or the panic that says it ran.
fn refused<T: std::fmt::Debug>(answer: redis::RedisResult<T>, what: &str) -> String {
    match answer {
        Ok(value) => panic!("{what} ran and answered {value:?}"),
        Err(err) => err.code().unwrap_or("not a server error").to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_a_prefix_its_apps_share_and_remove_leaves_nothing() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let (server, _dir) = provisioner("redis", &prefix, "").await;
    let api = server.tsuru("redis");

    let plans = api.get("/resources/plans").await;
    assert_eq!(plans.status, 200, "{}", plans.body);
    assert_eq!(plans.json()[0]["name"], "shared");

    for name in ["orders", "other"] {
        let created = api
            .form(
                Method::POST,
                "/resources",
                &[("name", name), ("team", "shop")],
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    assert_eq!(api.get("/resources/orders/status").await.status, 204);

    let web = api.bind_app("orders", "web").await;
    assert_eq!(web.status, 201, "{}", web.body);
    let web = env_of(&web);
    let worker = env_of(&api.bind_app("orders", "worker").await);
    let spy = env_of(&api.bind_app("other", "spy").await);
    let keys = format!("{prefix}:orders:");
    assert_eq!(var(&web, "REDIS_PREFIX"), keys);
    assert_eq!(var(&web, "REDIS_USER"), format!("{prefix}.orders.web"));
    assert_eq!(var(&web, "REDIS_HOST"), "127.0.0.1");
    assert_eq!(var(&web, "REDIS_PORT"), "6379");
    assert_eq!(
        var(&web, "REDIS_URL"),
        format!(
            "redis://{}:{}@127.0.0.1:6379",
            var(&web, "REDIS_USER"),
            var(&web, "REDIS_PASSWORD")
        )
    );
    let info = api.get("/resources/orders").await.info_items();
    assert!(
        info.contains(&("Key prefix".to_owned(), keys.clone())),
        "{info:?}"
    );
    assert!(
        info.contains(&("Users".to_owned(), "2".to_owned())),
        "{info:?}"
    );

    // App names are free text: ".", ":", "*" and "=" are escaped, so two
    // names never meet in one user, and none carries a separator or a glob.
    for (app, user) in [
        ("web.x", "web=2Ex"),
        ("web=2Ex", "web=3D2Ex"),
        ("a:b*", "a=3Ab=2A"),
    ] {
        let bound = api.bind_app("orders", app).await;
        assert_eq!(bound.status, 201, "{}", bound.body);
        let env = env_of(&bound);
        assert_eq!(var(&env, "REDIS_USER"), format!("{prefix}.orders.{user}"));
        let mut as_app = connect(var(&env, "REDIS_URL")).await.expect("it logs in");
        let whoami: String = redis::cmd("ACL")
            .arg("WHOAMI")
            .query_async(&mut as_app)
            .await
            .expect("ACL WHOAMI");
        assert_eq!(whoami, format!("{prefix}.orders.{user}"));
    }
    for app in ["web.x", "web=2Ex", "a:b*"] {
        let unbound = api.unbind_app("orders", app).await;
        assert_eq!(unbound.status, 200, "{}", unbound.body);
    }
    assert_eq!(
        leftovers(&format!("{prefix}.orders.")).await.1,
        [
            format!("{prefix}.orders.web"),
            format!("{prefix}.orders.worker")
        ]
    );

    // Each app writes, reads, and sees what the other wrote.
    let mut as_web = connect(var(&web, "REDIS_URL")).await.expect("web logs in");
    let mut as_worker = connect(var(&worker, "REDIS_URL"))
        .await
        .expect("worker logs in");
    let mut as_spy = connect(var(&spy, "REDIS_URL")).await.expect("spy logs in");
    let () = as_web
        .set(format!("{keys}greeting"), "hello")
        .await
        .expect("web writes");
    let () = as_worker
        .rpush(format!("{keys}jobs"), "ship")
        .await
        .map(|_: i64| ())
        .expect("worker writes");
    let greeting: String = as_worker
        .get(format!("{keys}greeting"))
        .await
        .expect("worker reads");
    assert_eq!(greeting, "hello");
    let jobs: Vec<String> = as_web
        .lrange(format!("{keys}jobs"), 0, -1)
        .await
        .expect("web reads");
    assert_eq!(jobs, ["ship"]);
    let other_key = format!("{}secret", var(&spy, "REDIS_PREFIX"));
    let () = as_spy.set(&other_key, "mine").await.expect("spy writes");

    // Another instance's keys and channels, and keys of no instance, are out of reach.
    assert_eq!(
        refused(as_web.get::<_, String>(&other_key).await, "GET"),
        "NOPERM"
    );
    assert_eq!(
        refused(as_web.set::<_, _, ()>(&other_key, "x").await, "SET"),
        "NOPERM"
    );
    assert_eq!(
        refused(as_web.get::<_, String>("unprefixed").await, "GET"),
        "NOPERM"
    );
    assert_eq!(
        refused(
            as_web
                .publish::<_, _, i64>(format!("{}news", var(&spy, "REDIS_PREFIX")), "x")
                .await,
            "PUBLISH"
        ),
        "NOPERM"
    );
    let _receivers: i64 = as_web
        .publish(format!("{keys}news"), "x")
        .await
        .expect("its own channel");
    // No command reaches beyond the prefix or widens the app's rights. The
    // server's own ACL DRYRUN says so first (a command the ACL let through
    // must not run for real: SHUTDOWN, FLUSHALL, MONITOR); then the app
    // tries each, except those the server refuses before its ACL (DEBUG,
    // unless enable-debug-command) or that would stop the server.
    let web_user = var(&web, "REDIS_USER").to_owned();
    let mut superuser = superuser().await;
    let other_prefix = var(&spy, "REDIS_PREFIX");
    let moved = format!("{keys}moved");
    for (what, args, try_it) in [
        ("FLUSHALL", vec!["FLUSHALL"], true),
        ("FLUSHDB", vec!["FLUSHDB"], true),
        ("CONFIG SET", vec!["CONFIG", "SET", "maxmemory", "1"], true),
        (
            "ACL SETUSER",
            vec!["ACL", "SETUSER", &web_user, "~*", "+@all"],
            true,
        ),
        (
            "ACL SETUSER",
            vec!["ACL", "SETUSER", &web_user, "allkeys"],
            true,
        ),
        ("KEYS", vec!["KEYS", "*"], true),
        ("SCAN", vec!["SCAN", "0"], true),
        ("RANDOMKEY", vec!["RANDOMKEY"], true),
        ("DBSIZE", vec!["DBSIZE"], true),
        ("PUBSUB", vec!["PUBSUB", "CHANNELS"], true),
        ("SELECT", vec!["SELECT", "1"], true),
        ("MOVE", vec!["MOVE", &moved, "1"], true),
        ("SWAPDB", vec!["SWAPDB", "0", "1"], true),
        (
            "EVAL",
            vec!["EVAL", "return redis.call('FLUSHALL')", "0"],
            true,
        ),
        ("FUNCTION FLUSH", vec!["FUNCTION", "FLUSH"], true),
        (
            "CLIENT KILL",
            vec!["CLIENT", "KILL", "USER", "default"],
            true,
        ),
        ("CLIENT LIST", vec!["CLIENT", "LIST"], true),
        ("MODULE LIST", vec!["MODULE", "LIST"], true),
        (
            "SORT",
            vec!["SORT", &moved, "BY", "nosort", "GET", other_prefix],
            true,
        ),
        ("MONITOR", vec!["MONITOR"], true),
        ("DEBUG", vec!["DEBUG", "SLEEP", "0"], false),
        ("SHUTDOWN", vec!["SHUTDOWN", "NOSAVE"], false),
    ] {
        let mut dryrun = redis::cmd("ACL");
        dryrun.arg("DRYRUN").arg(&web_user).arg(&args);
        let verdict: String = dryrun
            .query_async(&mut superuser)
            .await
            .expect("the server judges the command");
        assert!(
            verdict.starts_with("This user has no permissions to run the"),
            "{what}: {verdict}"
        );
        if try_it {
            let mut command = redis::cmd(args[0]);
            command.arg(&args[1..]);
            assert_eq!(
                refused(command.query_async::<redis::Value>(&mut as_web).await, what),
                "NOPERM",
                "{what}"
            );
        }
    }
    let still: String = as_spy
        .get(&other_key)
        .await
        .expect("the other instance's key");
    assert_eq!(still, "mine");

    // Unbind cuts that app; the other keeps working.
    let unbound = api.unbind_app("orders", "worker").await;
    assert_eq!(unbound.status, 200, "{}", unbound.body);
    assert!(
        as_worker
            .get::<_, String>(format!("{keys}greeting"))
            .await
            .is_err(),
        "the unbound app's connection still works"
    );
    assert!(
        connect(var(&worker, "REDIS_URL")).await.is_err(),
        "the unbound app still logs in"
    );
    let greeting: String = as_web
        .get(format!("{keys}greeting"))
        .await
        .expect("web still reads");
    assert_eq!(greeting, "hello");

    // Remove leaves no key and no user of the instance; the other's stay.
    let removed = api.form(Method::DELETE, "/resources/orders", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(leftovers(&keys).await.0, Vec::<String>::new());
    assert_eq!(
        leftovers(&format!("{prefix}.orders.")).await.1,
        Vec::<String>::new()
    );
    assert!(connect(var(&web, "REDIS_URL")).await.is_err());
    let still: String = as_spy
        .get(&other_key)
        .await
        .expect("the other instance's key");
    assert_eq!(still, "mine");
    let removed = api.form(Method::DELETE, "/resources/other", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let (keys_left, users_left) = leftovers(&prefix).await;
    assert_eq!(keys_left, Vec::<String>::new());
    assert_eq!(users_left, [format!("{prefix}-admin")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_clears_what_an_earlier_one_left() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let (server, _dir) = provisioner("redis", &prefix, "").await;
    let api = server.tsuru("redis");
    let mut superuser = superuser().await;

    // What an earlier instance of the name left halfway: a key and a user.
    let stale_key = format!("{prefix}:retried:stale");
    let () = superuser.set(&stale_key, "old").await.expect("a stale key");
    let stale_user = format!("{prefix}.retried.ghost");
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&stale_user)
        .arg("on")
        .arg(">ghost-password")
        .query_async(&mut superuser)
        .await
        .expect("a stale user");
    // And things of a name that only looks alike, which must stay.
    let neighbour = format!("{prefix}:retried-2:kept");
    let () = superuser
        .set(&neighbour, "kept")
        .await
        .expect("a neighbour");
    let created = api
        .form(Method::POST, "/resources", &[("name", "retried")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let (keys, users) = leftovers(&prefix).await;
    assert_eq!(keys, std::slice::from_ref(&neighbour));
    assert_eq!(users, [format!("{prefix}-admin")]);

    let removed = api.form(Method::DELETE, "/resources/retried", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(leftovers(&prefix).await.0, std::slice::from_ref(&neighbour));

    // A remove that stops halfway (the server refuses UNLINK to the admin
    // for a while) says what remains and is not a 200; the next one
    // finishes, and only then answers 200.
    let created = api
        .form(Method::POST, "/resources", &[("name", "halfway")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let app = env_of(&api.bind_app("halfway", "web").await);
    let mut as_app = connect(var(&app, "REDIS_URL")).await.expect("it logs in");
    let () = as_app
        .set(format!("{prefix}:halfway:k"), "v")
        .await
        .expect("it writes");
    let admin = format!("{prefix}-admin");
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&admin)
        .arg("-unlink")
        .query_async(&mut superuser)
        .await
        .expect("UNLINK taken from the admin");
    let failed = api.form(Method::DELETE, "/resources/halfway", &[]).await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert!(
        failed.body.starts_with(
            "cannot remove the keys and users of instance \"halfway\": Redis refused a command on Redis connection \"admin\": NOPERM"
        ),
        "{}",
        failed.body
    );
    assert_eq!(
        leftovers(&format!("{prefix}:halfway:")).await.0,
        [format!("{prefix}:halfway:k")]
    );
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&admin)
        .arg("+unlink")
        .query_async(&mut superuser)
        .await
        .expect("UNLINK given back");
    let removed = api.form(Method::DELETE, "/resources/halfway", &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(leftovers(&prefix).await, (vec![neighbour], vec![admin]));

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
        "plan \"huge\" does not exist; choose one of shared"
    );
}

//! What the Redis tests and the bench share: the machine's Redis 7.0 at
//! 127.0.0.1:6379 (default user, no password), a per-run prefix, the
//! provisioner's least-privileged admin user created with exactly the rules
//! the README documents, a host serving the provisioner as that user, and
//! a guard that deletes every key and user of the run's prefix, even after
//! a failure.

use redis::aio::MultiplexedConnection;

use crate::{Server, service};

/// The machine's server, as its default user (a superuser): only the
/// tests' setup and cleanup use it, never the provisioner.
pub const SERVER: &str = "redis://127.0.0.1:6379";

pub use crate::unique_prefix;

/// The rules of the provisioner's admin user for a service whose
/// `[services.config] prefix` is `prefix`, with its password: exactly what
/// the README documents, in its order (`reset` first, since it also
/// forgets a password given before it).
pub fn admin_rules(prefix: &str, password: &str) -> Vec<String> {
    [
        "reset",
        "on",
        &format!(">{password}"),
        &format!("~{prefix}:*"),
        "resetchannels",
        "-@all",
        "+ping",
        "+scan",
        "+unlink",
        "+acl|users",
        "+acl|setuser",
        "+acl|deluser",
        "+client|kill",
    ]
    .iter()
    .map(|rule| (*rule).to_owned())
    .collect()
}

/// Connects to Redis at `url` (`redis://user:password@host:port`).
pub async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

/// The default user's connection, for setup and checks.
pub async fn superuser() -> MultiplexedConnection {
    connect(SERVER).await.expect("the machine's Redis answers")
}

/// Creates the provisioner's admin user `<prefix>-admin` with
/// [`admin_rules`] and answers its URL.
pub async fn create_admin(prefix: &str) -> String {
    let user = format!("{prefix}-admin");
    let password = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let mut command = redis::cmd("ACL");
    command.arg("SETUSER").arg(&user);
    for rule in admin_rules(prefix, &password) {
        command.arg(rule);
    }
    let () = command
        .query_async(&mut superuser().await)
        .await
        .expect("the admin user is created");
    format!("redis://{user}:{password}@127.0.0.1:6379")
}

/// A host serving the provisioner as service `id`, as the admin user of
/// `prefix` (its URL in a file), with `extra` TOML in its `[services.config]`.
pub async fn provisioner(
    id: &str,
    prefix: &str,
    extra_config: &str,
) -> (Server, tempfile::TempDir) {
    let url = create_admin(prefix).await;
    let dir = tempfile::tempdir().expect("a temporary dir");
    let url_file = dir.path().join("admin-url");
    std::fs::write(&url_file, format!("{url}\n")).expect("the URL is written");
    let server = Server::start(&[service(
        id,
        "redis",
        &format!(
            "[services.redis.admin]\nurl_file = \"{}\"\n[services.config]\nhost = \"127.0.0.1\"\nport = \"6379\"\nprefix = \"{prefix}\"\n{extra_config}",
            url_file.display()
        ),
    )])
    .await;
    (server, dir)
}

/// The keys and the users whose names start with `prefix`.
pub async fn leftovers(prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut admin = superuser().await;
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut admin)
            .await
            .expect("keys listed");
        keys.extend(found);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut admin)
        .await
        .expect("users listed");
    let mut users: Vec<String> = users
        .into_iter()
        .filter(|user| user.starts_with(prefix))
        .collect();
    users.sort();
    (keys, users)
}

/// Deletes every key and user a run's prefix names when the test ends,
/// passed or not.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        crate::clean_up_after_test("the run's keys and users", async move {
            let (keys, users) = leftovers(&prefix).await;
            let mut admin = superuser().await;
            for batch in keys.chunks(500) {
                let _unlinked: i64 = redis::cmd("UNLINK")
                    .arg(batch)
                    .query_async(&mut admin)
                    .await
                    .expect("leftover keys are deleted");
            }
            for user in users {
                let _deleted: i64 = redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(&user)
                    .query_async(&mut admin)
                    .await
                    .expect("a leftover user is deleted");
            }
        });
    }
}

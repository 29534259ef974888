//! What the MySQL/MariaDB tests (and the lead's bench) share: the machine's
//! MariaDB at 127.0.0.1:3306, a per-run prefix, an admin user made with
//! exactly the grants the README documents, a host serving the provisioner
//! (`plugins/mysql`) as that admin, and a guard that drops whatever carries
//! the prefix when the test ends, passed or not.

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::{Server, service};

/// The server's root, which only sets up and cleans up; the provisioner
/// never runs as it.
pub const ROOT_URL: &str = "mysql://root@127.0.0.1:3306/";

pub use crate::unique_prefix;

/// A connection to `url` over TCP, where the URL says (not a socket the
/// driver finds on its own).
pub async fn connect(url: &str) -> Result<Conn, mysql_async::Error> {
    let opts = Opts::from_url(url)?;
    Conn::new(OptsBuilder::from_opts(opts).prefer_socket(false)).await
}

pub async fn root() -> Conn {
    connect(ROOT_URL).await.expect("root connects")
}

/// The admin user of a run: `<prefix>_admin`, with exactly the README's grants.
pub struct Admin {
    pub user: String,
    pub password: String,
}

impl Admin {
    pub fn url(&self) -> String {
        format!("mysql://{}:{}@127.0.0.1:3306/", self.user, self.password)
    }
}

/// The statements that make a provisioner's admin user on MariaDB 10.5 or
/// later, as the README gives them.
pub fn admin_grants(prefix: &str, user: &str, password: &str) -> Vec<String> {
    vec![
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
        format!("GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO '{user}'@'%'"),
        format!("GRANT ALL PRIVILEGES ON `{prefix}\\_%`.* TO '{user}'@'%' WITH GRANT OPTION"),
    ]
}

/// Makes the run's admin user, as root.
pub async fn make_admin(prefix: &str) -> Admin {
    let admin = Admin {
        user: format!("{prefix}_admin"),
        password: format!("pw{prefix}"),
    };
    let mut root = root().await;
    for statement in admin_grants(prefix, &admin.user, &admin.password) {
        root.query_drop(statement)
            .await
            .expect("the admin user is made");
    }
    drop(root.disconnect().await);
    admin
}

/// A host serving the provisioner as service `id` on `admin_url` (kept in
/// a file), with `extra` TOML in its `[services.config]`.
pub async fn provisioner(
    id: &str,
    prefix: &str,
    admin_url: &str,
    extra_config: &str,
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let url_file = dir.path().join("admin-url");
    std::fs::write(&url_file, format!("{admin_url}\n")).expect("the URL is written");
    let server = Server::start(&[service(
        id,
        "mysql",
        &format!(
            "[services.sql.admin]\nurl_file = \"{}\"\n[services.config]\nhost = \"127.0.0.1\"\nport = \"3306\"\nprefix = \"{prefix}\"\n{extra_config}",
            url_file.display()
        ),
    )])
    .await;
    (server, dir)
}

/// A run's admin and a host serving the provisioner as it: what a test or
/// a bench starts from.
pub async fn start(id: &str) -> (Server, Cleanup, Admin, tempfile::TempDir) {
    let prefix = unique_prefix();
    let cleanup = Cleanup(prefix.clone());
    let admin = make_admin(&prefix).await;
    let (server, dir) = provisioner(id, &prefix, &admin.url(), "").await;
    (server, cleanup, admin, dir)
}

/// Databases and users whose names start with `prefix_`, as root sees them.
pub async fn leftovers(prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut root = root().await;
    let like = format!("{prefix}\\_%");
    let databases: Vec<String> = root
        .exec(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ? ORDER BY 1",
            (like.clone(),),
        )
        .await
        .expect("databases listed");
    let users: Vec<String> = root
        .exec(
            "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user WHERE User LIKE ? ORDER BY 1",
            (like,),
        )
        .await
        .expect("users listed");
    drop(root.disconnect().await);
    (databases, users)
}

/// Drops everything a run's prefix names when the test ends, passed or not.
pub struct Cleanup(pub String);

impl Cleanup {
    pub fn prefix(&self) -> &str {
        &self.0
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        crate::clean_up_after_test("the run's databases and users", async move {
            let (databases, users) = leftovers(&prefix).await;
            let mut root = root().await;
            for user in users {
                root.query_drop(format!("DROP USER IF EXISTS {user}"))
                    .await
                    .expect("a leftover user is dropped");
            }
            for database in databases {
                root.query_drop(format!("DROP DATABASE IF EXISTS `{database}`"))
                    .await
                    .expect("a leftover database is dropped");
            }
            drop(root.disconnect().await);
        });
    }
}

/// The value of `name` in a bind's env.
pub fn env_value(env: &serde_json::Value, name: &str) -> String {
    env.get(name)
        .and_then(|value| value.as_str())
        .unwrap_or_else(|| panic!("{name} missing from {env}"))
        .to_owned()
}

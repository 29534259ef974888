//! The PostgreSQL provisioner (`plugins/postgres`) on the real server at
//! 127.0.0.1:5432, for the tests and benches: a host serving it with an
//! admin role made with exactly the grants the README documents (never a
//! superuser), a prefix of its own per run, and a guard that drops whatever
//! carries that prefix when the run ends, even after a failure.

use tokio_postgres::NoTls;

use crate::{Server, service};

/// The server's superuser, with which the tests make the admin role,
/// look at what is left, and clean up; the provisioner never uses it.
pub const SUPERUSER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The grants the README documents for the provisioner's admin role on
/// PostgreSQL 15 and later, for a role named `role`.
pub fn admin_grants(role: &str) -> String {
    format!(
        "CREATE ROLE \"{role}\" LOGIN PASSWORD 'admin-secret' CREATEDB CREATEROLE; GRANT pg_signal_backend TO \"{role}\";"
    )
}

pub use crate::unique_prefix;

/// A host serving the provisioner, its run's prefix, and its admin role.
pub struct Provisioner {
    pub server: Server,
    pub prefix: String,
    /// The admin role's name: the prefix and `admin`, outside `prefix_%`.
    pub admin_role: String,
    pub admin_url: String,
    _dir: tempfile::TempDir,
    // Last: the server stops before what it made is dropped.
    _cleanup: Cleanup,
}

impl Provisioner {
    /// A host serving the provisioner as service `id`, on an admin role
    /// made with [`admin_grants`], with `extra` TOML in its `[services.config]`.
    pub async fn start(id: &str, extra_config: &str) -> Provisioner {
        Self::start_reaching(id, None, extra_config).await
    }

    /// As [`Provisioner::start`], its connection allowed to reach the
    /// databases `databases` lists (TOML) instead of `PREFIX_*`.
    pub async fn start_reaching(
        id: &str,
        databases: Option<&str>,
        extra_config: &str,
    ) -> Provisioner {
        let prefix = unique_prefix();
        let databases = databases
            .map(str::to_owned)
            .unwrap_or_else(|| format!("[\"{prefix}_*\"]"));
        let cleanup = Cleanup(prefix.clone());
        let admin_role = format!("{prefix}admin");
        superuser()
            .await
            .batch_execute(&admin_grants(&admin_role))
            .await
            .expect("the admin role is made");
        let admin_url = format!("postgres://{admin_role}:admin-secret@127.0.0.1:5432/postgres");
        let dir = tempfile::tempdir().expect("a temporary dir");
        let url_file = dir.path().join("admin-url");
        std::fs::write(&url_file, format!("{admin_url}\n")).expect("the URL is written");
        let server = Server::start(&[service(
            id,
            "postgres",
            &format!(
                "[services.sql.admin]\nurl_file = \"{}\"\ndatabases = {databases}\n[services.config]\nhost = \"127.0.0.1\"\nport = \"5432\"\nprefix = \"{prefix}\"\n{extra_config}",
                url_file.display()
            ),
        )])
        .await;
        Provisioner {
            server,
            prefix,
            admin_role,
            admin_url,
            _dir: dir,
            _cleanup: cleanup,
        }
    }

    /// Databases and roles of this run (the admin role aside).
    pub async fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        leftovers(&superuser().await, &self.prefix).await
    }
}

pub async fn superuser() -> tokio_postgres::Client {
    connect(SUPERUSER_URL)
        .await
        .expect("the superuser connects")
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("connection ended: {err}");
        }
    });
    Ok(client)
}

/// Databases and roles whose names start with `prefix_`.
pub async fn leftovers(
    client: &tokio_postgres::Client,
    prefix: &str,
) -> (Vec<String>, Vec<String>) {
    let like = format!("{prefix}\\_%");
    let names = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|row| row.get(0)).collect();
    let databases = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&like],
        )
        .await
        .expect("databases listed");
    let roles = client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1",
            &[&like],
        )
        .await
        .expect("roles listed");
    (names(databases), names(roles))
}

/// Drops everything a run's prefix names when the test ends, passed or not.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        crate::clean_up_after_test("the run's databases and roles", async move {
            let client = superuser().await;
            let (databases, mut roles) = leftovers(&client, &prefix).await;
            for database in databases {
                client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                    ))
                    .await
                    .expect("a leftover database is dropped");
            }
            roles.push(format!("{prefix}admin"));
            for role in roles {
                let exists = client
                    .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
                    .await
                    .expect("roles listed")
                    .is_some();
                if exists {
                    client
                        .batch_execute(&format!(
                            "DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""
                        ))
                        .await
                        .expect("a leftover role is dropped");
                }
            }
        });
    }
}

/// The values of a bind's answer, by name.
pub fn env_of(answer: &crate::Answer) -> serde_json::Map<String, serde_json::Value> {
    answer.json().as_object().expect("an env object").clone()
}

//! The `[services.sql.NAME]` tables: where each connection's URL is read
//! from, the bounds of its pool and its statements, and which other
//! databases of its server it may reach with the same credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::capability::Reading;
use crate::setting::{Secret, one_to};

/// Connections a service's pool may open to one server, unless its table says.
pub const DEFAULT_SQL_MAX_CONNECTIONS: u32 = 4;
/// The most connections one `[services.sql.NAME]` pool may open.
pub const MAX_SQL_CONNECTIONS: u32 = 100;
/// Rows one statement may hand its plugin, unless its table says.
pub const DEFAULT_SQL_MAX_ROWS: u64 = 10_000;
/// The most `max_rows` may be.
pub const MAX_SQL_ROWS: u64 = 10_000_000;
/// KiB one statement's rows may take, unless its table says.
pub const DEFAULT_SQL_MAX_RESULT_KB: u64 = 16 * 1024;
/// The most `max_result_kb` may be (1 GiB).
pub const MAX_SQL_RESULT_KB: u64 = 1024 * 1024;

/// A PostgreSQL or MySQL connection a service's plugin may use by name
/// (which one its URL's scheme says).
#[derive(Clone, PartialEq)]
pub struct SqlConnection {
    /// Read at start; never logged or shown, nor its password.
    pub url: Secret,
    /// The URL's password, which the host blanks out of the plugin's text.
    pub password: Option<Secret>,
    /// Connections its pool may open at once.
    pub max_connections: u32,
    /// How long one statement may run before it is cancelled.
    pub timeout: Duration,
    /// Rows one statement may hand the plugin; past them it is cancelled.
    pub max_rows: u64,
    /// Bytes one statement's rows may take, as the host holds them plus
    /// as the plugin receives them; past them it is cancelled.
    pub max_result_bytes: u64,
    /// Name patterns (`*` for any run of characters) of the other
    /// databases of the URL's server a plugin may reach with the URL's
    /// credentials, as `NAME@DATABASE`; none unless the table lists them.
    pub databases: Vec<String>,
}

impl SqlConnection {
    /// What the host blanks out of its plugin's text: the URL and its password.
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.url).chain(self.password.as_ref())
    }
}

impl std::fmt::Debug for SqlConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConnection")
            .field("max_connections", &self.max_connections)
            .field("timeout", &self.timeout)
            .field("max_rows", &self.max_rows)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("databases", &self.databases)
            .finish_non_exhaustive()
    }
}

/// One `[services.sql.NAME]` table: where its URL is read from (`url_env`
/// or `url_file`), how many connections its pool may open, how long one
/// statement may run, and the other databases it may reach.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlFile {
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    pub max_connections: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_rows: Option<u64>,
    pub max_result_kb: Option<u64>,
    pub databases: Option<Vec<String>>,
}

/// The connections a service's plugin may use, by name.
#[derive(Clone, Default, PartialEq)]
pub struct SqlGrant {
    pub connections: BTreeMap<String, SqlConnection>,
}

impl std::fmt::Debug for SqlGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.connections.keys()).finish()
    }
}

/// The connections of `[services.sql.NAME]`, their URLs read and checked;
/// the service's timeout bounds a statement unless a table says otherwise.
pub fn sql_connections(
    tables: Option<BTreeMap<String, SqlFile>>,
    reading: &Reading<'_>,
) -> Result<BTreeMap<String, SqlConnection>, String> {
    let mut connections = BTreeMap::new();
    for (name, table) in tables.unwrap_or_default() {
        if name.is_empty() {
            return Err(
                "a [services.sql] table has an empty name; name it as the plugin does ([services.sql.admin])".into(),
            );
        }
        let at = format!("[services.sql.{name}]");
        if name.contains(super::pool::DATABASE_SEPARATOR) {
            return Err(format!(
                "{at}: a connection's name cannot hold {:?}, which a plugin writes between a connection and another database it reaches (admin@orders); rename the table",
                super::pool::DATABASE_SEPARATOR
            ));
        }
        let databases = table.databases.unwrap_or_default();
        if let Some(bad) = databases
            .iter()
            .find(|pattern| pattern.trim().is_empty() || pattern.chars().all(|c| c == '*'))
        {
            return Err(format!(
                "{at}: databases lists {bad:?}, which names no database or every one; write a name, or a pattern with a fixed part such as \"tsuru_*\""
            ));
        }
        let url = reading
            .env_or_file(&at, "url", "URL", table.url_env, table.url_file)?
            .trim()
            .to_owned();
        // A mysql:// or mariadb:// URL is a MySQL connection; anything else is PostgreSQL's.
        let password = if super::mysql::speaks_mysql(&url) {
            // MySQL grants name databases server-wide (`db`.*), so its
            // connection reaches them all with qualified names already.
            if !databases.is_empty() {
                return Err(format!(
                    "{at}: databases is for PostgreSQL connections; a MySQL connection reaches the server's other databases by qualified names (`db`.`table`), so remove the key"
                ));
            }
            super::mysql::password(&at, &url)?.map(Secret::new)
        } else {
            // The parser's own message may quote a character of the URL (of the
            // password, even), so only its messages about options are passed on.
            let parsed = url.parse::<tokio_postgres::Config>().map_err(|err| {
                let why = err.to_string();
                let why = if why.contains("option `") {
                    format!(" ({why})")
                } else {
                    String::new()
                };
                format!(
                    "{at}: its URL is not one PostgreSQL reads{why}; write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE (or mysql://USER:PASSWORD@HOST:PORT/DATABASE for MySQL or MariaDB)"
                )
            })?;
            parsed
                .get_password()
                .map(|password| Secret::new(String::from_utf8_lossy(password)))
        };
        let max_connections = table.max_connections.unwrap_or(DEFAULT_SQL_MAX_CONNECTIONS);
        if !(1..=MAX_SQL_CONNECTIONS).contains(&max_connections) {
            return Err(format!(
                "{at}: max_connections is {max_connections}; give a value from 1 to {MAX_SQL_CONNECTIONS}"
            ));
        }
        let timeout = match table.timeout_ms {
            Some(0) => return Err(format!("{at}: timeout_ms is 0; give at least 1")),
            Some(millis) => Duration::from_millis(millis),
            None => reading.service_timeout,
        };
        let max_rows = table.max_rows.unwrap_or(DEFAULT_SQL_MAX_ROWS);
        one_to("max_rows", max_rows, MAX_SQL_ROWS).map_err(|why| format!("{at}: {why}"))?;
        let max_result_kb = table.max_result_kb.unwrap_or(DEFAULT_SQL_MAX_RESULT_KB);
        one_to("max_result_kb", max_result_kb, MAX_SQL_RESULT_KB)
            .map_err(|why| format!("{at}: {why}"))?;
        connections.insert(
            name,
            SqlConnection {
                url: Secret::new(url),
                password,
                max_connections,
                timeout,
                max_rows,
                max_result_bytes: max_result_kb * 1024,
                databases,
            },
        );
    }
    Ok(connections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_connections_read_their_urls_and_never_show_them() {
        let dir = tempfile::tempdir().expect("a temporary dir");
        std::fs::write(
            dir.path().join("admin-url"),
            "postgres://admin:s3cr%40t@db.internal:5433/postgres\n",
        )
        .expect("the URL is written");
        let env = |name: &str| match name {
            "PG_URL" => Some("postgres://reader:hunter22@127.0.0.1/app".to_owned()),
            "MY_URL" => Some("mysql://admin:hunter22@127.0.0.1:3306/mysql".to_owned()),
            _ => None,
        };
        let parse = |extra: &str| {
            crate::config::Config::parse(
                &format!(
                    "[[services]]\nid = \"pg\"\nplugin = \"pg.wasm\"\npassword = \"p\"\ntimeout_ms = 9000\n{extra}"
                ),
                dir.path(),
                &crate::config::Overrides::default(),
                env,
            )
            .map_err(|err| err.to_string())
        };
        let config = parse(
            "[services.sql.admin]\nurl_file = \"admin-url\"\nmax_connections = 2\ndatabases = [\"tsuru_*\", \"orders\"]\n[services.sql.reader]\nurl_env = \"PG_URL\"\ntimeout_ms = 250\n",
        )
        .expect("two connections");
        let sql = &config.services[0].grants.sql.connections;
        assert_eq!(sql.keys().collect::<Vec<_>>(), ["admin", "reader"]);
        let admin = &sql["admin"];
        assert_eq!(
            admin.url.expose(),
            "postgres://admin:s3cr%40t@db.internal:5433/postgres"
        );
        assert_eq!(admin.password.as_ref().map(Secret::expose), Some("s3cr@t"));
        assert_eq!(admin.max_connections, 2);
        assert_eq!(admin.timeout, Duration::from_millis(9000));
        assert_eq!(admin.max_rows, DEFAULT_SQL_MAX_ROWS);
        assert_eq!(admin.max_result_bytes, DEFAULT_SQL_MAX_RESULT_KB * 1024);
        assert_eq!(admin.databases, ["tsuru_*", "orders"]);
        let reader = &sql["reader"];
        assert_eq!(reader.max_connections, DEFAULT_SQL_MAX_CONNECTIONS);
        assert_eq!(reader.timeout, Duration::from_millis(250));
        assert!(reader.databases.is_empty());
        assert_eq!(
            reader.secrets().map(Secret::expose).collect::<Vec<_>>(),
            ["postgres://reader:hunter22@127.0.0.1/app", "hunter22"]
        );
        let shown = format!("{:?}", config.services[0]);
        assert!(shown.contains("sql: [\"admin\", \"reader\"]"), "{shown}");
        for secret in ["s3cr", "hunter22", "db.internal", "postgres://"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            parse("").expect("no sql").services[0]
                .grants
                .sql
                .connections
                .is_empty()
        );

        for (table, says) in [
            (
                "[services.sql.admin]\nurl_env = \"UNSET\"\n",
                "[services.sql.admin]: url_env names the environment variable UNSET, which is not set or empty; set it, or remove the table",
            ),
            (
                "[services.sql.admin]\nurl_file = \"missing\"\n",
                "[services.sql.admin]: url_file names",
            ),
            (
                "[services.sql.admin]\n",
                "[services.sql.admin] must say where its URL is read from: url_env = \"NAME\" or url_file = \"PATH\", one of them",
            ),
            (
                "[services.sql.admin]\nurl_env = \"PG_URL\"\nurl_file = \"admin-url\"\n",
                "must say where its URL is read from",
            ),
            (
                "[services.sql.admin]\nurl_env = \"PG_URL\"\nmax_connections = 0\n",
                "[services.sql.admin]: max_connections is 0; give a value from 1 to 100",
            ),
            (
                "[services.sql.admin]\nurl_env = \"PG_URL\"\ntimeout_ms = 0\n",
                "[services.sql.admin]: timeout_ms is 0; give at least 1",
            ),
            (
                "[services.sql.admin]\nurl_env = \"PG_URL\"\nmax_rows = 0\n",
                "[services.sql.admin]: max_rows is 0; give a value from 1 to 10000000",
            ),
            (
                "[services.sql.admin]\nurl_env = \"PG_URL\"\nmax_result_kb = 2000000\n",
                "[services.sql.admin]: max_result_kb is 2000000; give a value from 1 to 1048576",
            ),
            (
                "[services.sql.admin]\nurl_env = \"PG_URL\"\ndatabases = [\"*\"]\n",
                "[services.sql.admin]: databases lists \"*\", which names no database or every one; write a name, or a pattern with a fixed part such as \"tsuru_*\"",
            ),
            (
                "[services.sql.admin]\nurl_env = \"MY_URL\"\ndatabases = [\"tsuru_*\"]\n",
                "[services.sql.admin]: databases is for PostgreSQL connections; a MySQL connection reaches the server's other databases by qualified names",
            ),
            (
                "[services.sql.\"admin@x\"]\nurl_env = \"PG_URL\"\n",
                "[services.sql.admin@x]: a connection's name cannot hold '@'",
            ),
            (
                "[services.sql.admin]\nurl_env = \"PG_URL\"\nurl = \"x\"\n",
                "unknown field `url`",
            ),
        ] {
            let err = parse(table).expect_err(table);
            assert!(err.contains(says), "{table}: {err}");
            // A misspelt key is refused by the parser, with its line.
            if !says.starts_with("unknown field") {
                assert!(err.contains("services[0] (id \"pg\")"), "{table}: {err}");
            }
        }

        // A URL PostgreSQL cannot read is refused without quoting any of it.
        std::fs::write(
            dir.path().join("bad-url"),
            "postgres://admin:pa$$@host:port/db",
        )
        .expect("the URL is written");
        let err = parse("[services.sql.admin]\nurl_file = \"bad-url\"\n").expect_err("a bad URL");
        assert!(
            err.contains("[services.sql.admin]: its URL is not one PostgreSQL reads"),
            "{err}"
        );
        assert!(!err.contains("pa$$"), "{err}");
    }
}

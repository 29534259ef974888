//! The pools of a service's SQL connections: one per `[services.sql.NAME]`,
//! made when its plugin is loaded and shared by every call of that plugin
//! version, and how each talks to its server (plain or TLS).
//!
//! A table that lists `databases` lets its plugin reach those other
//! databases of the URL's server with the URL's credentials, naming the
//! connection `NAME@DATABASE` (`admin@tsuru_orders`): a provisioner must
//! sometimes act inside a database it just made (grant on its `public`
//! schema). Such a statement gets a connection of its own, closed when the
//! statement ends, so no pool of idle connections grows per database the
//! plugin ever reached. Whichever database it reaches, at most
//! `max_connections` statements of a connection run at once, and idle
//! connections of the URL's pool close to make room for one to another
//! database: the server never holds more than `max_connections` of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{CancelToken, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::grant::SqlConnection;

/// What a plugin writes between a connection's name and another database
/// it reaches: `admin@tsuru_orders`. No connection's name holds it.
pub const DATABASE_SEPARATOR: char = '@';

/// One service's connections, by name, as its plugin's calls use them.
#[derive(Default)]
pub struct Connections {
    by_name: BTreeMap<String, Connection>,
}

pub struct Connection {
    /// The pool, or why the host could not make one.
    pub pool: Result<Pool, String>,
    pub tls: Tls,
    pub timeout: Duration,
    pub max_rows: u64,
    pub max_result_bytes: u64,
    /// The URL's settings, from which a connection to another database is made.
    config: Option<tokio_postgres::Config>,
    /// Patterns of the other databases it may reach (`databases`).
    databases: Vec<String>,
    /// One place per statement running, whichever database it is on.
    places: Arc<Semaphore>,
    max_connections: usize,
    /// Connections open to other databases than the URL's.
    elsewhere: Arc<AtomicUsize>,
}

/// How a connection talks to its server.
#[derive(Clone)]
pub enum Tls {
    /// `sslmode=disable`, or a server on this machine that the URL does not
    /// ask to reach over TLS.
    Plain,
    /// Anything else: TLS when the server offers it (required with
    /// `sslmode=require`), its certificate checked against the Mozilla roots.
    Rustls(MakeRustlsConnect),
}

/// Where one statement runs: a pool, and its place among its connection's
/// statements. A statement on another database has a pool of its own,
/// whose connection closes when the lease is dropped.
pub struct Lease {
    pub pool: Pool,
    _place: OwnedSemaphorePermit,
    elsewhere: Option<Arc<AtomicUsize>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(elsewhere) = &self.elsewhere {
            self.pool.retain(|_, _| false);
            elsewhere.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Connections {
    /// Pools for a service's connections; none connects until it is used.
    pub fn of(connections: &BTreeMap<String, SqlConnection>) -> Self {
        let by_name = connections
            .iter()
            .filter(|(_, connection)| !super::mysql::speaks_mysql(connection.url.expose()))
            .map(|(name, connection)| (name.clone(), Connection::new(name, connection)))
            .collect();
        Self { by_name }
    }

    /// The connection a plugin named, `NAME` or `NAME@DATABASE`, and the
    /// other database it asks for; or the sentence that says it may not.
    pub fn get<'a>(&self, named: &'a str) -> Result<(&Connection, Option<&'a str>), String> {
        let (name, database) = match named.split_once(DATABASE_SEPARATOR) {
            Some((name, database)) => (name, Some(database)),
            None => (named, None),
        };
        let connection = self.by_name.get(name).ok_or_else(|| {
            let declared = if self.by_name.is_empty() {
                "none".to_owned()
            } else {
                self.by_name
                    .keys()
                    .map(|name| format!("\"{name}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "the service has no SQL connection \"{name}\" (it has {declared}); its operator must declare it as a [services.sql.{name}] table"
            )
        })?;
        if let Some(database) = database {
            connection.may_reach(name, database)?;
        }
        Ok((connection, database))
    }
}

impl Connection {
    fn new(name: &str, connection: &SqlConnection) -> Self {
        let config = connection
            .url
            .expose()
            .parse::<tokio_postgres::Config>()
            .ok();
        let (pool, tls) = match &config {
            Some(config) => {
                let tls = Tls::for_config(config);
                let pool = pool_of(config.clone(), &tls, connection.max_connections as usize)
                    .map_err(|err| {
                        format!("the host could not set up SQL connection \"{name}\" ({err}); report it to the host's operator")
                    });
                (pool, tls)
            }
            // The config was checked when it was read; this is only reached
            // if that check and this one ever disagree.
            None => (
                Err(format!(
                    "the URL of SQL connection \"{name}\" is not one PostgreSQL reads; its operator must fix [services.sql.{name}]"
                )),
                Tls::Plain,
            ),
        };
        let max_connections = connection.max_connections.max(1) as usize;
        Self {
            pool,
            tls,
            timeout: connection.timeout,
            max_rows: connection.max_rows,
            max_result_bytes: connection.max_result_bytes,
            config,
            databases: connection.databases.clone(),
            places: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            elsewhere: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether the table lets its plugin reach `database`, or the sentence
    /// that says it does not.
    fn may_reach(&self, name: &str, database: &str) -> Result<(), String> {
        if database.is_empty() {
            return Err(format!(
                "the SQL connection \"{name}{DATABASE_SEPARATOR}\" names no database after {DATABASE_SEPARATOR:?}; name one, or drop the {DATABASE_SEPARATOR:?}"
            ));
        }
        if self
            .databases
            .iter()
            .any(|pattern| matches(pattern, database))
        {
            return Ok(());
        }
        let allowed = if self.databases.is_empty() {
            "it may reach no other database than its URL's".to_owned()
        } else {
            format!(
                "it may reach {}",
                self.databases
                    .iter()
                    .map(|pattern| format!("\"{pattern}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(format!(
            "SQL connection \"{name}\" may not reach database \"{database}\" ({allowed}); its operator must add a pattern matching it to databases in [services.sql.{name}]"
        ))
    }

    /// A place for one statement, on the URL's database or on `database`
    /// (which [`Connections::get`] checked), once one is free.
    pub async fn lease(&self, database: Option<&str>) -> Result<Lease, String> {
        let place = self
            .places
            .clone()
            .acquire_owned()
            .await
            .map_err(|_closed| "the host is shutting down; try again".to_owned())?;
        let main = self.pool.as_ref().map_err(Clone::clone)?;
        let Some(database) = database else {
            return Ok(Lease {
                pool: main.clone(),
                _place: place,
                elsewhere: None,
            });
        };
        let mut config = self.config.clone().ok_or_else(|| {
            "the connection's URL could not be read; report it to the host's operator".to_owned()
        })?;
        config.dbname(database);
        let pool = pool_of(config, &self.tls, 1).map_err(|err| {
            format!("the host could not set up a connection to database \"{database}\" ({err}); report it to the host's operator")
        })?;
        let open_elsewhere = self.elsewhere.fetch_add(1, Ordering::AcqRel) + 1;
        // The URL's pool keeps at most what the others leave of
        // max_connections; it opens a new one only when none is idle, and
        // the places bound those in use.
        let room = self.max_connections.saturating_sub(open_elsewhere);
        let mut excess = main.status().size.saturating_sub(room);
        if excess > 0 {
            main.retain(|_, _| {
                let keep = excess == 0;
                excess = excess.saturating_sub(1);
                keep
            });
        }
        Ok(Lease {
            pool,
            _place: place,
            elsewhere: Some(self.elsewhere.clone()),
        })
    }
}

/// A pool of up to `max_size` connections made from `config`.
fn pool_of(
    config: tokio_postgres::Config,
    tls: &Tls,
    max_size: usize,
) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Tls::Plain => Manager::from_config(config, NoTls, manager),
        Tls::Rustls(connect) => Manager::from_config(config, connect.clone(), manager),
    };
    Pool::builder(manager).max_size(max_size).build()
}

/// Whether `name` matches `pattern`, in which `*` stands for any run of
/// characters (none included) and every other character for itself.
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Tls {
    pub(crate) fn for_config(config: &tokio_postgres::Config) -> Self {
        use tokio_postgres::config::{Host, SslMode};
        let on_this_machine = config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|address| address.is_loopback())
            }
            #[cfg(unix)]
            Host::Unix(_) => true,
        });
        match config.get_ssl_mode() {
            SslMode::Disable => Tls::Plain,
            SslMode::Prefer if on_this_machine => Tls::Plain,
            _ => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                match rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                {
                    Ok(builder) => Tls::Rustls(MakeRustlsConnect::new(
                        builder.with_root_certificates(roots).with_no_client_auth(),
                    )),
                    // ring supports the default versions; keep the URL's
                    // sslmode, which refuses plain text where it says `require`.
                    Err(err) => {
                        tracing::error!("cannot set up TLS for SQL connections: {err}");
                        Tls::Plain
                    }
                }
            }
        }
    }

    pub async fn cancel(self, token: CancelToken) -> Result<(), tokio_postgres::Error> {
        match self {
            Tls::Plain => token.cancel_query(NoTls).await,
            Tls::Rustls(connect) => token.cancel_query(connect).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_plain_only_when_asked_or_on_this_machine() {
        let plain = |url: &str| matches!(Tls::for_config(&url.parse().expect("a URL")), Tls::Plain);
        assert!(plain("postgres://u@127.0.0.1:5432/db"));
        assert!(plain("postgres://u@localhost/db"));
        assert!(plain("postgres://u@[::1]/db"));
        assert!(plain("postgres://u@db.example.com/db?sslmode=disable"));
        assert!(!plain("postgres://u@db.example.com/db"));
        assert!(!plain("postgres://u@10.0.0.5/db"));
        assert!(!plain("postgres://u@127.0.0.1/db?sslmode=require"));
    }

    #[test]
    fn database_patterns_match_whole_names() {
        for (pattern, name, expected) in [
            ("tsuru_*", "tsuru_orders", true),
            ("tsuru_*", "tsuru_", true),
            ("tsuru_*", "tsuru", false),
            ("tsuru_*", "x_tsuru_orders", false),
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("orders", "order", false),
            ("*_db", "shop_db", true),
            ("*_db", "shop_db_x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a_b_c", true),
            ("a*b*c", "a_c_b", false),
            ("ab*ba", "aba", false),
            ("ab*ba", "abba", true),
        ] {
            assert_eq!(matches(pattern, name), expected, "{pattern} ~ {name}");
        }
    }

    fn connections(databases: &[&str]) -> Connections {
        let connection = SqlConnection {
            url: crate::setting::Secret::new("postgres://admin@127.0.0.1/postgres"),
            password: None,
            max_connections: 2,
            timeout: Duration::from_secs(1),
            max_rows: 1,
            max_result_bytes: 1024,
            databases: databases
                .iter()
                .map(|pattern| (*pattern).to_owned())
                .collect(),
        };
        Connections::of(&BTreeMap::from([("admin".to_owned(), connection)]))
    }

    #[test]
    fn another_database_is_reached_only_where_the_table_allows() {
        let reaching = connections(&["tsuru_*"]);
        let (_, database) = reaching.get("admin").expect("the connection");
        assert_eq!(database, None);
        let (_, database) = reaching
            .get("admin@tsuru_orders")
            .expect("an allowed database");
        assert_eq!(database, Some("tsuru_orders"));
        // Only the first separator splits: a database name may hold another.
        let (_, database) = reaching
            .get("admin@tsuru_a@b")
            .expect("an allowed database");
        assert_eq!(database, Some("tsuru_a@b"));
        let refused = |connections: &Connections, name: &str| match connections.get(name) {
            Ok(_) => panic!("{name} was allowed"),
            Err(why) => why,
        };
        assert_eq!(
            refused(&reaching, "admin@postgres"),
            "SQL connection \"admin\" may not reach database \"postgres\" (it may reach \"tsuru_*\"); its operator must add a pattern matching it to databases in [services.sql.admin]"
        );
        assert_eq!(
            refused(&reaching, "admin@"),
            "the SQL connection \"admin@\" names no database after '@'; name one, or drop the '@'"
        );
        assert_eq!(
            refused(&connections(&[]), "admin@tsuru_orders"),
            "SQL connection \"admin\" may not reach database \"tsuru_orders\" (it may reach no other database than its URL's); its operator must add a pattern matching it to databases in [services.sql.admin]"
        );
        assert!(
            refused(&reaching, "reader@tsuru_orders")
                .starts_with("the service has no SQL connection \"reader\"")
        );
    }

    #[tokio::test]
    async fn statements_on_other_databases_share_the_connections_places() {
        let reaching = connections(&["tsuru_*"]);
        let (connection, _) = reaching.get("admin").expect("the connection");
        let first = connection.lease(Some("tsuru_a")).await.expect("a place");
        let second = connection.lease(None).await.expect("a place");
        assert_eq!(connection.elsewhere.load(Ordering::Acquire), 1);
        // max_connections is 2: a third waits for one of them to end.
        let third =
            tokio::time::timeout(Duration::from_millis(50), connection.lease(Some("tsuru_b")))
                .await;
        assert!(third.is_err(), "a third statement ran beside two");
        drop(first);
        assert_eq!(connection.elsewhere.load(Ordering::Acquire), 0);
        let third = connection
            .lease(Some("tsuru_b"))
            .await
            .expect("a freed place");
        drop((second, third));
        assert_eq!(connection.places.available_permits(), 2);
    }

    #[test]
    fn an_unknown_connection_is_named_with_the_key_that_declares_it() {
        let connections = Connections::default();
        let Err(why) = connections.get("admin") else {
            panic!("an unknown connection was found");
        };
        assert_eq!(
            why,
            "the service has no SQL connection \"admin\" (it has none); its operator must declare it as a [services.sql.admin] table"
        );
    }
}

//! The pools of a service's SQL connections: one per `[services.sql.NAME]`,
//! made when its plugin is loaded and shared by every call of that plugin
//! version, and how each talks to its server (plain or TLS).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{CancelToken, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::grant::SqlConnection;

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

    /// The connection named `name`, or the sentence that says it has none.
    pub fn get(&self, name: &str) -> Result<&Connection, String> {
        self.by_name.get(name).ok_or_else(|| {
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
        })
    }
}

impl Connection {
    fn new(name: &str, connection: &SqlConnection) -> Self {
        let (pool, tls) = match connection.url.expose().parse::<tokio_postgres::Config>() {
            Ok(config) => {
                let tls = Tls::for_config(&config);
                let manager = ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                };
                let manager = match &tls {
                    Tls::Plain => Manager::from_config(config, NoTls, manager),
                    Tls::Rustls(connect) => Manager::from_config(config, connect.clone(), manager),
                };
                let pool = Pool::builder(manager)
                    .max_size(connection.max_connections as usize)
                    .build()
                    .map_err(|err| {
                        format!("the host could not set up SQL connection \"{name}\" ({err}); report it to the host's operator")
                    });
                (pool, tls)
            }
            // The config was checked when it was read; this is only reached
            // if that check and this one ever disagree.
            Err(_) => (
                Err(format!(
                    "the URL of SQL connection \"{name}\" is not one PostgreSQL reads; its operator must fix [services.sql.{name}]"
                )),
                Tls::Plain,
            ),
        };
        Self {
            pool,
            tls,
            timeout: connection.timeout,
            max_rows: connection.max_rows,
            max_result_bytes: connection.max_result_bytes,
        }
    }
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

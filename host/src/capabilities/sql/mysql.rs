//! The SQL capability on MySQL and MariaDB: a `[services.sql.NAME]` whose
//! URL is `mysql://` (or `mariadb://`) gets a `mysql_async` pool instead of
//! a PostgreSQL one, with the same shape and the same guarantees.
//!
//! A statement is prepared and run with its `?` parameters sent as text
//! (the server converts them as it converts a quoted literal), and its
//! values come back as text as MySQL's own client writes them. A statement
//! the prepared protocol does not take (MySQL answers error 1295) and that
//! has no parameters runs as plain text instead; several statements in one
//! are refused by the server's parser either way.
//!
//! Every session is pinned when it connects, and again after each reset: a
//! `sql_mode` with `NO_BACKSLASH_ESCAPES` (so that the SDK's
//! `sql::mysql::quote_literal`, which only doubles quotes, is exact), the
//! `utf8mb4` character set and UTC as the time zone, the same whatever the
//! server's defaults.
//!
//! A connection goes back to the pool as it was taken: after each statement
//! the host sends `COM_RESET_CONNECTION`, which rolls back what was left
//! open, drops temporary tables, releases `LOCK TABLES` and `GET_LOCK`
//! locks, and forgets user variables, prepared statements and `SET`s. A
//! statement that leaves a transaction open (`START TRANSACTION`, `BEGIN`)
//! is answered with an error after that rollback, as on PostgreSQL. A
//! statement past its timeout or a cap, or whose call is cut, is stopped
//! with `KILL QUERY` on a connection of its own, and its connection is
//! closed rather than drained.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::consts::{ColumnType, StatusFlags};
use mysql_async::prelude::Queryable as _;
use mysql_async::{
    BinaryProtocol, Column, Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts,
    QueryResult, SslOpts, TextProtocol, Value,
};
use tokio::time::{Instant, timeout_at};

use super::grant::SqlConnection;
use super::statement::bindings::orizuru::service::sql::{DbError, RowSet, SqlError};
use super::statement::{Caps, Done, Want, capped, cost};
use crate::setting::humanize;

/// How long a pooled connection may stay idle before it is closed.
const IDLE: Duration = Duration::from_secs(300);
/// How long the `KILL QUERY` of a stopped statement may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// What every session is set to, when it connects and after each reset.
/// The modes are those MySQL 8 and MariaDB 10.11 both know (MariaDB's
/// default, less `NO_AUTO_CREATE_USER`, which MySQL 8 refuses), plus
/// `NO_BACKSLASH_ESCAPES`: a string literal is then exactly what it says
/// between its quotes, with `''` for a quote.
pub const SESSION: &str = "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_BACKSLASH_ESCAPES', time_zone = '+00:00', NAMES utf8mb4";

/// MySQL's error for a statement the prepared protocol cannot run.
const ER_UNSUPPORTED_PS: u16 = 1295;

/// Whether `url` names a MySQL or MariaDB server.
pub fn speaks_mysql(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    matches!(scheme, Some(scheme) if scheme.eq_ignore_ascii_case("mysql") || scheme.eq_ignore_ascii_case("mariadb"))
}

/// The driver's options for `url` (`mariadb://` read as `mysql://`), or
/// the sentence that says it cannot be read without quoting any of it.
pub fn options(at: &str, url: &str) -> Result<Opts, String> {
    let url = match url.split_once("://") {
        Some((_, rest)) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    Opts::from_url(&url).map_err(|err| {
        use mysql_async::UrlError;
        // Only what names a parameter is passed on: other messages may
        // quote a part of the URL, its password even.
        let why = match err {
            UrlError::UnknownParameter { param } => {
                format!(" (it has a parameter `{param}` the MySQL driver does not know)")
            }
            UrlError::InvalidParamValue { param, .. } => {
                format!(" (its parameter `{param}` has a value the MySQL driver cannot read)")
            }
            UrlError::FeatureRequired { param, .. } => {
                format!(" (its parameter `{param}` is not supported by this host)")
            }
            _ => String::new(),
        };
        format!(
            "{at}: its URL is not one MySQL reads{why}; write it as mysql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    })
}

/// The URL's password, percent-decoded, which the host blanks out of the
/// plugin's text.
pub fn password(at: &str, url: &str) -> Result<Option<String>, String> {
    Ok(options(at, url)?
        .pass()
        .filter(|password| !password.is_empty())
        .map(str::to_owned))
}

/// Whether `host` is this machine, where plain text is fine.
fn on_this_machine(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// One service's MySQL connections, by name.
#[derive(Default)]
pub struct Connections {
    by_name: BTreeMap<String, Connection>,
}

struct Connection {
    pool: Result<Pool, String>,
    /// Where `KILL QUERY` is sent from: the pool's options, outside it.
    opts: Option<Opts>,
    timeout: Duration,
    caps: Caps,
}

impl Connections {
    /// Pools for the service's MySQL connections (the others are
    /// PostgreSQL's); none connects until it is used.
    pub fn of(connections: &BTreeMap<String, SqlConnection>) -> Self {
        let by_name = connections
            .iter()
            .filter(|(_, connection)| speaks_mysql(connection.url.expose()))
            .map(|(name, connection)| (name.clone(), Connection::new(name, connection)))
            .collect();
        Self { by_name }
    }

    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

impl Connection {
    fn new(name: &str, connection: &SqlConnection) -> Self {
        let at = format!("[services.sql.{name}]");
        let url = connection.url.expose();
        let opts = options(&at, url).map(|opts| {
            let constraints =
                PoolConstraints::new(0, connection.max_connections as usize).unwrap_or_default();
            let pool = PoolOpts::default()
                .with_constraints(constraints)
                // The host resets each connection itself, and learns whether it could.
                .with_reset_connection(false)
                // The driver closes an idle connection above the pool's lower
                // bound (0) after this long; its default, 0, closes every
                // connection as it comes back, and each statement connects anew.
                .with_inactive_connection_ttl(IDLE);
            // As on PostgreSQL: a server off this machine is reached over
            // TLS, its certificate checked against the Mozilla roots, unless
            // the URL says otherwise (`require_ssl=false`).
            let tls = opts.ssl_opts().cloned().or_else(|| {
                (!on_this_machine(opts.ip_or_hostname()) && !url.contains("require_ssl="))
                    .then(SslOpts::default)
            });
            Opts::from(
                OptsBuilder::from_opts(opts)
                    .ssl_opts(tls)
                    .pool_opts(pool)
                    .setup(vec![SESSION])
                    // Statements are not kept: a reset forgets them anyway.
                    .stmt_cache_size(0)
                    // Where the URL says, not a socket the driver finds on its own.
                    .prefer_socket(false),
            )
        });
        let (pool, opts) = match opts {
            Ok(opts) => (Ok(Pool::new(opts.clone())), Some(opts)),
            // Checked when the config was read; only reached if the two disagree.
            Err(why) => (Err(why), None),
        };
        Self {
            pool,
            opts,
            timeout: connection.timeout,
            caps: Caps {
                rows: connection.max_rows,
                bytes: connection.max_result_bytes,
            },
        }
    }
}

/// Runs one statement on MySQL connection `name`, within its timeout.
pub async fn run(
    connections: &Connections,
    name: &str,
    statement: &str,
    params: Vec<Option<String>>,
    want: Want,
) -> Result<Done, SqlError> {
    let Some(connection) = connections.by_name.get(name) else {
        return Err(SqlError::NoSuchConnection(format!(
            "the service has no MySQL connection \"{name}\"; its operator must declare it as a [services.sql.{name}] table"
        )));
    };
    let pool = connection
        .pool
        .as_ref()
        .map_err(|why| SqlError::ConnectionFailed(why.clone()))?;
    let deadline = Instant::now() + connection.timeout;
    let timeout = humanize(connection.timeout);
    let conn = match timeout_at(deadline, pool.get_conn()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => {
            return Err(SqlError::ConnectionFailed(format!(
                "cannot connect to SQL connection \"{name}\" ({}); check that the server is up and that the connection's URL is right",
                describe(&err)
            )));
        }
        Err(_elapsed) => {
            return Err(SqlError::Timeout(format!(
                "no connection to SQL connection \"{name}\" was free or could be opened within {timeout}; check that the server is up, or raise the connection's max_connections or timeout_ms"
            )));
        }
    };
    let running = Running {
        conn: Some(conn),
        opts: connection.opts.clone(),
    };
    match timeout_at(
        deadline,
        running.run(name, statement, params, want, connection.caps),
    )
    .await
    {
        Ok(answer) => answer.map_err(by_the_host),
        // Dropping the statement's future stopped it (see `Running`).
        Err(_elapsed) => Err(SqlError::Timeout(format!(
            "a statement on SQL connection \"{name}\" ran past its timeout of {timeout} and was cancelled; make it cheaper, or ask the operator to raise the connection's timeout_ms"
        ))),
    }
}

/// A pooled connection running a statement. Dropped before the statement
/// ended (a timeout, a cap, or the call was cut), it kills the statement
/// on the server from a connection of its own and closes its connection:
/// never drained, never back in the pool.
struct Running {
    conn: Option<Conn>,
    opts: Option<Opts>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let opts = self.opts.clone();
        runtime.spawn(async move {
            let id = conn.id();
            if let Some(opts) = opts {
                let killed = tokio::time::timeout(KILL_TIMEOUT, async {
                    let mut killer = Conn::new(opts).await?;
                    // 1094: the statement ended meanwhile; nothing to kill.
                    match killer.query_drop(format!("KILL QUERY {id}")).await {
                        Err(mysql_async::Error::Server(err)) if err.code == 1094 => {}
                        other => other?,
                    }
                    killer.disconnect().await
                })
                .await;
                match killed {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::warn!("cannot kill a MySQL statement: {}", describe(&err));
                    }
                    Err(_elapsed) => tracing::warn!("cannot kill a MySQL statement: no answer"),
                }
            }
            // Quits without reading what the server may still be sending.
            let _ = conn.disconnect().await;
        });
    }
}

impl Running {
    async fn run(
        mut self,
        name: &str,
        statement: &str,
        params: Vec<Option<String>>,
        want: Want,
        caps: Caps,
    ) -> Result<Done, SqlError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(SqlError::ConnectionFailed(format!(
                "SQL connection \"{name}\" lost its connection; try again"
            )));
        };
        let answer = match statement_on(conn, name, statement, params, want, caps).await {
            Ok(done) => Ok(done),
            Err(Stopped::Answered(error)) => Err(error),
            // Rows are still coming: dropping `self` kills the statement
            // and closes the connection instead of reading the rest.
            Err(Stopped::Cut(error)) => return Err(error),
        };
        let left_open = conn.last_ok_packet().is_some_and(|ok| {
            ok.status_flags()
                .contains(StatusFlags::SERVER_STATUS_IN_TRANS)
        });
        match conn.reset().await {
            // The session is as it connected: rolled back, unlocked, pinned again.
            Ok(true) => {}
            Ok(false) | Err(_) => {
                // A connection the host could not reset never serves again.
                if let Some(conn) = self.conn.take() {
                    let _ = conn.disconnect().await;
                }
                tracing::warn!(
                    "cannot reset a MySQL connection after a statement (COM_RESET_CONNECTION needs MySQL 5.7.3 or MariaDB 10.2.4); it was closed"
                );
            }
        }
        // Ended and reset: the connection goes back to the pool.
        drop(self.conn.take());
        if left_open {
            return Err(SqlError::QueryFailed(DbError {
                code: "25000".into(),
                message: "the statement opened a transaction, which the host rolled back: each statement runs on its own, and its connection goes back to the pool when it ends".into(),
                detail: None,
                hint: Some("do what must be atomic in one statement (a multi-table UPDATE or DELETE, INSERT ... SELECT, or a stored procedure) instead of START TRANSACTION ... COMMIT".into()),
            }));
        }
        answer
    }
}

/// Why a statement gave no answer.
enum Stopped {
    /// It ended with an error; the connection is fit to reset and reuse.
    Answered(SqlError),
    /// The host stopped reading its rows while the server may still be sending them.
    Cut(SqlError),
}

async fn statement_on(
    conn: &mut Conn,
    name: &str,
    statement: &str,
    params: Vec<Option<String>>,
    want: Want,
    caps: Caps,
) -> Result<Done, Stopped> {
    let values: Vec<Value> = params
        .into_iter()
        .map(|param| param.map_or(Value::NULL, |text| Value::Bytes(text.into_bytes())))
        .collect();
    let given = values.len();
    let prepared = match conn.prep(statement).await {
        Ok(prepared) => Some(prepared),
        Err(mysql_async::Error::Server(err)) if err.code == ER_UNSUPPORTED_PS && given == 0 => None,
        Err(err) => return Err(Stopped::Answered(failed(name, &err))),
    };
    match prepared {
        Some(prepared) => {
            let expected = usize::from(prepared.num_params());
            if expected != given {
                return Err(Stopped::Answered(SqlError::QueryFailed(DbError {
                    code: "07001".into(),
                    message: format!(
                        "the statement takes {expected} parameters but was given {given}"
                    ),
                    detail: None,
                    hint: Some("pass one value for each ?".into()),
                })));
            }
            let params = if values.is_empty() {
                Params::Empty
            } else {
                Params::Positional(values)
            };
            let result: QueryResult<'_, '_, BinaryProtocol> = conn
                .exec_iter(&prepared, params)
                .await
                .map_err(|err| Stopped::Answered(failed(name, &err)))?;
            read(result, name, want, caps).await
        }
        None => {
            let result: QueryResult<'_, '_, TextProtocol> = conn
                .query_iter(statement)
                .await
                .map_err(|err| Stopped::Answered(failed(name, &err)))?;
            read(result, name, want, caps).await
        }
    }
}

/// Reads a statement's first result set, as rows or a count.
async fn read<P: mysql_async::prelude::Protocol>(
    mut result: QueryResult<'_, '_, P>,
    name: &str,
    want: Want,
    caps: Caps,
) -> Result<Done, Stopped> {
    let columns: Vec<Column> = result.columns_ref().to_vec();
    if columns.is_empty() {
        let count = result.affected_rows();
        result
            .drop_result()
            .await
            .map_err(|err| Stopped::Answered(failed(name, &err)))?;
        return Ok(match want {
            Want::Count => Done::Count(count),
            Want::Rows => Done::Rows(RowSet {
                columns: Vec::new(),
                rows: Vec::new(),
            }),
        });
    }
    let mut rows = Vec::new();
    let mut counted = 0u64;
    let mut bytes = 0u64;
    loop {
        // An error in the middle of the rows is the server's answer; the
        // connection can be reset.
        let row = match result.next().await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(err @ mysql_async::Error::Server(_)) => {
                return Err(Stopped::Answered(failed(name, &err)));
            }
            Err(err) => return Err(Stopped::Cut(failed(name, &err))),
        };
        if want == Want::Count {
            counted += 1;
            continue;
        }
        if rows.len() as u64 == caps.rows {
            return Err(Stopped::Cut(capped(
                name,
                format!("more than {} rows", caps.rows),
                "max_rows",
                "add a LIMIT or a WHERE",
            )));
        }
        let values = row
            .unwrap()
            .into_iter()
            .zip(&columns)
            .map(|(value, column)| text(value, column, name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Stopped::Cut)?;
        bytes += cost(&values);
        if bytes > caps.bytes {
            return Err(Stopped::Cut(capped(
                name,
                format!("rows larger than {}", super::statement::kib(caps.bytes)),
                "max_result_kb",
                "add a LIMIT, or select fewer or smaller columns",
            )));
        }
        rows.push(values);
    }
    // Any further result sets (a procedure's) are read and left.
    result
        .drop_result()
        .await
        .map_err(|err| Stopped::Answered(failed(name, &err)))?;
    Ok(match want {
        Want::Count => Done::Count(counted),
        Want::Rows => Done::Rows(RowSet {
            columns: columns
                .iter()
                .map(|column| column.name_str().into_owned())
                .collect(),
            rows,
        }),
    })
}

/// A value as MySQL's own client writes it.
fn text(value: Value, column: &Column, name: &str) -> Result<Option<String>, SqlError> {
    let fraction = |micros: u32| {
        let digits = usize::from(column.decimals()).min(6);
        if digits == 0 {
            String::new()
        } else {
            format!(".{:06}", micros)[..=digits].to_owned()
        }
    };
    Ok(Some(match value {
        Value::NULL => return Ok(None),
        Value::Bytes(bytes) => String::from_utf8(bytes).map_err(|_| {
            let column = column.name_str();
            SqlError::UnsupportedType(format!(
                "column \"{column}\" of a statement on SQL connection \"{name}\" holds bytes that are not UTF-8 text, which the host does not hand plugins; select it as text in the statement (HEX({column}) or TO_BASE64({column}))"
            ))
        })?,
        Value::Int(value) => value.to_string(),
        Value::UInt(value) => value.to_string(),
        Value::Float(value) => value.to_string(),
        Value::Double(value) => value.to_string(),
        Value::Date(year, month, day, hour, minute, second, micros) => {
            if column.column_type() == ColumnType::MYSQL_TYPE_DATE {
                format!("{year:04}-{month:02}-{day:02}")
            } else {
                format!(
                    "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}",
                    fraction(micros)
                )
            }
        }
        Value::Time(negative, days, hours, minutes, seconds, micros) => format!(
            "{}{:02}:{minutes:02}:{seconds:02}{}",
            if negative { "-" } else { "" },
            days * 24 + u32::from(hours),
            fraction(micros)
        ),
    }))
}

/// The detail of a refusal the host made on a MySQL connection (a cap, a
/// transaction left open), so that the SDK names MySQL, not PostgreSQL.
pub const HOST_REFUSED: &str = "on a MySQL connection, refused by the host";

fn by_the_host(error: SqlError) -> SqlError {
    match error {
        SqlError::QueryFailed(db) if db.detail.is_none() => SqlError::QueryFailed(DbError {
            detail: Some(HOST_REFUSED.to_owned()),
            ..db
        }),
        other => other,
    }
}

/// What went wrong with a statement, as the plugin gets it: the server's
/// refusal with its SQLSTATE, and its error number in `detail`.
fn failed(name: &str, err: &mysql_async::Error) -> SqlError {
    match err {
        mysql_async::Error::Server(server) => SqlError::QueryFailed(DbError {
            code: server.state.clone(),
            message: server.message.clone(),
            detail: Some(format!("MySQL error {}", server.code)),
            hint: None,
        }),
        other => SqlError::ConnectionFailed(format!(
            "SQL connection \"{name}\" failed while running a statement ({}); try again, and check that the server is up",
            describe(other)
        )),
    }
}

/// A driver error in a few words: the server's message when it sent one.
fn describe(err: &mysql_async::Error) -> String {
    match err {
        mysql_async::Error::Server(server) => server.message.clone(),
        mysql_async::Error::Url(_) => "its URL cannot be read".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setting::Secret;

    #[test]
    fn mysql_and_mariadb_urls_are_told_apart_from_postgres_ones() {
        assert!(speaks_mysql("mysql://root@127.0.0.1:3306/"));
        assert!(speaks_mysql("MariaDB://root@db.internal/app"));
        assert!(!speaks_mysql("postgres://postgres@127.0.0.1/postgres"));
        assert!(!speaks_mysql("host=127.0.0.1 user=mysql"));
        assert!(!speaks_mysql("mysqlx://root@127.0.0.1"));
    }

    #[test]
    fn a_mysql_table_is_read_as_a_postgres_one_is() {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let env = |name: &str| match name {
            "MYSQL_URL" => Some("mariadb://admin:hunter22@127.0.0.1:3306/".to_owned()),
            "BAD_URL" => Some("mysql://admin:hunter22@db:port/".to_owned()),
            _ => None,
        };
        let parse = |table: &str| {
            crate::config::Config::parse(
                &format!(
                    "[[services]]\nid = \"my\"\nplugin = \"my.wasm\"\npassword = \"p\"\n{table}"
                ),
                dir.path(),
                &crate::config::Overrides::default(),
                env,
            )
            .map_err(|err| err.to_string())
        };
        let config = parse("[services.sql.admin]\nurl_env = \"MYSQL_URL\"\nmax_rows = 5\n")
            .expect("a MySQL connection");
        let admin = &config.services[0].grants.sql.connections["admin"];
        assert_eq!(
            admin.secrets().map(Secret::expose).collect::<Vec<_>>(),
            ["mariadb://admin:hunter22@127.0.0.1:3306/", "hunter22"]
        );
        assert_eq!(admin.max_rows, 5);
        let connections = Connections::of(&config.services[0].grants.sql.connections);
        assert!(connections.has("admin"));
        let err = parse("[services.sql.admin]\nurl_env = \"BAD_URL\"\n").expect_err("a bad URL");
        assert!(
            err.contains(
                "[services.sql.admin]: its URL is not one MySQL reads; write it as mysql://"
            ),
            "{err}"
        );
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn a_url_is_read_without_ever_quoting_it() {
        let at = "[services.sql.admin]";
        assert_eq!(
            password(at, "mariadb://admin:s3cr%40t@127.0.0.1:3306/mysql"),
            Ok(Some("s3cr@t".to_owned()))
        );
        assert_eq!(password(at, "mysql://root@127.0.0.1:3306/"), Ok(None));
        let opts = options(at, "mariadb://admin:pw@db.internal:3307/app").expect("read");
        assert_eq!(opts.ip_or_hostname(), "db.internal");
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!(opts.db_name(), Some("app"));
        for (url, says) in [
            (
                "mysql://admin:hunter2@db:port/app",
                "[services.sql.admin]: its URL is not one MySQL reads; write it as mysql://USER:PASSWORD@HOST:PORT/DATABASE",
            ),
            (
                "mysql://admin:hunter2@db/app?colour=hunter2",
                "[services.sql.admin]: its URL is not one MySQL reads (it has a parameter `colour` the MySQL driver does not know)",
            ),
            (
                "mysql://admin:hunter2@db/app?pool_min=hunter2",
                "(its parameter `pool_min` has a value the MySQL driver cannot read)",
            ),
        ] {
            let err = options(at, url).expect_err(url);
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }
}

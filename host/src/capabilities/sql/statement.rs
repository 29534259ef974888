//! One statement on a pooled connection: bounded by its connection's
//! `timeout_ms`, `max_rows` and `max_result_kb`, cancelled on the server
//! when it runs past one of them or its call is cut, its parameters sent and
//! its results read as text, and the connection reset before it goes back
//! to the pool.

use std::pin::pin;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::Object;
use futures_util::StreamExt as _;
use tokio::time::{Instant, timeout_at};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Format, FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::pool::{Connections, Tls};
use crate::setting::humanize;

pub mod bindings {
    wasmtime::component::bindgen!({
        inline: "package orizuru:host-sql; world sql { import orizuru:service/sql@0.1.0; }",
        path: "../guest-sdk/wit/since_v0.1.0",
        imports: { default: async },
    });
}

use bindings::orizuru::service::sql::{DbError, RowSet, SqlError};

/// What a row costs beyond its values: the host's `Vec` of values (24
/// bytes) and the plugin's `list` of them (8 bytes on wasm32).
const ROW_COST: u64 = 24 + 8;
/// What a value costs beyond its text: the host's `Option<String>` (24
/// bytes) and the plugin's `option<string>` (12 bytes); its text is held
/// by both, so it counts twice.
const VALUE_COST: u64 = 24 + 12;
/// How long a cancel request may take to reach the server.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a call wants back.
#[derive(Clone, Copy, PartialEq)]
pub enum Want {
    Rows,
    Count,
}

/// What a statement answered, as the call wanted it.
pub enum Done {
    Rows(RowSet),
    Count(u64),
}

impl Done {
    pub fn rows(self) -> RowSet {
        match self {
            Done::Rows(rows) => rows,
            Done::Count(_) => RowSet {
                columns: Vec::new(),
                rows: Vec::new(),
            },
        }
    }

    pub fn count(self) -> u64 {
        match self {
            Done::Count(count) => count,
            Done::Rows(rows) => rows.rows.len() as u64,
        }
    }
}

/// Runs one statement on connection `name` of the service, within its timeout.
pub async fn run(
    connections: &Connections,
    name: &str,
    statement: &str,
    params: Vec<Option<String>>,
    want: Want,
) -> Result<Done, SqlError> {
    let (connection, database) = connections.get(name).map_err(SqlError::NoSuchConnection)?;
    let deadline = Instant::now() + connection.timeout;
    let timeout = humanize(connection.timeout);
    // Dropped after the statement: its place frees, and a connection to
    // another database closes.
    let lease = match timeout_at(deadline, connection.lease(database)).await {
        Ok(Ok(lease)) => lease,
        Ok(Err(why)) => return Err(SqlError::ConnectionFailed(why)),
        Err(_elapsed) => {
            return Err(SqlError::Timeout(format!(
                "SQL connection \"{name}\" had max_connections statements running for all of {timeout}; try again, or ask the operator to raise the connection's max_connections or timeout_ms"
            )));
        }
    };
    let client = match timeout_at(deadline, lease.pool.get()).await {
        Ok(Ok(client)) => client,
        Ok(Err(err)) => {
            let cause = match &err {
                deadpool_postgres::PoolError::Backend(err) => describe(err),
                other => other.to_string(),
            };
            let what_to_do = if cause.contains("certificate") {
                "the server's certificate is not vouched for by a public CA this host trusts (a private CA is not supported yet); give the server such a certificate, or, on a network you trust, add sslmode=disable to the connection's URL"
            } else {
                "check that the server is up and that the connection's URL is right"
            };
            return Err(SqlError::ConnectionFailed(format!(
                "cannot connect to SQL connection \"{name}\" ({cause}); {what_to_do}"
            )));
        }
        Err(_elapsed) => {
            return Err(SqlError::Timeout(format!(
                "no connection to SQL connection \"{name}\" was free or could be opened within {timeout}; check that the server is up, or raise the connection's max_connections or timeout_ms"
            )));
        }
    };
    let running = Running {
        client: Some(client),
        tls: connection.tls.clone(),
    };
    let caps = Caps {
        rows: connection.max_rows,
        bytes: connection.max_result_bytes,
    };
    match timeout_at(deadline, running.run(name, statement, params, want, caps)).await {
        Ok(answer) => answer,
        // Dropping the statement's future cancelled it (see `Running`).
        Err(_elapsed) => Err(SqlError::Timeout(format!(
            "a statement on SQL connection \"{name}\" ran past its timeout of {timeout} and was cancelled; make it cheaper, or ask the operator to raise the connection's timeout_ms"
        ))),
    }
}

/// A pooled connection running a statement. Dropped before the statement
/// ended (a timeout, or the call was cut), it asks the server to cancel
/// the statement and keeps the connection out of the pool.
struct Running {
    client: Option<Object>,
    tls: Tls,
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let token = client.cancel_token();
        // Closes this connection rather than hand it to the next call while
        // the server may still be answering the cancelled statement.
        drop(Object::take(client));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let tls = self.tls.clone();
        runtime.spawn(async move {
            match tokio::time::timeout(CANCEL_TIMEOUT, tls.cancel(token)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!("cannot cancel a SQL statement: {err}"),
                Err(_elapsed) => tracing::warn!("cannot cancel a SQL statement: no answer"),
            }
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
        let Some(client) = &self.client else {
            return Err(SqlError::ConnectionFailed(format!(
                "SQL connection \"{name}\" lost its connection; try again"
            )));
        };
        let answer = match statement_on(client, name, statement, params, want, caps).await {
            Ok(done) => Ok(done),
            Err(Stopped::Answered(error)) => Err(error),
            // Rows are still coming: dropping `self` cancels the statement
            // and closes the connection instead of reading the rest.
            Err(Stopped::Cut(error)) => return Err(error),
        };
        match reset(client).await {
            Ok(Session::Clean) => {}
            Ok(Session::LeftTransactionOpen) => {
                return Err(SqlError::QueryFailed(DbError {
                    code: "25000".into(),
                    message: "the statement opened a transaction, which the host rolled back: each statement runs in a transaction of its own, and its connection goes back to the pool when it ends".into(),
                    detail: None,
                    hint: Some("do what must be atomic in one statement (a DO block, a WITH query changing several tables, or a function) instead of BEGIN ... COMMIT".into()),
                }));
            }
            Err(err) => {
                // A connection the host could not reset never serves again.
                if let Some(client) = self.client.take() {
                    drop(Object::take(client));
                }
                tracing::warn!("cannot reset a SQL connection after a statement: {err}");
            }
        }
        // Ended and reset: the connection goes back to the pool.
        drop(self.client.take());
        answer
    }
}

/// What a connection was left with by the statement it ran.
enum Session {
    Clean,
    LeftTransactionOpen,
}

/// Rolls back what a statement left open and discards its session state
/// (`SET`, temporary tables, prepared statements, advisory locks, `LISTEN`),
/// saying whether it had left a transaction open. The three requests are
/// pipelined: one round trip.
async fn reset(client: &Object) -> Result<Session, tokio_postgres::Error> {
    // Outside a transaction block, a statement's transaction starts with
    // it; inside one (even a failed one, which refuses the query), it began
    // at an earlier statement.
    let (open, rolled_back, discarded) = futures_util::future::join3(
        client.simple_query("SELECT transaction_timestamp() = statement_timestamp()"),
        client.batch_execute("ROLLBACK"),
        client.batch_execute("DISCARD ALL"),
    )
    .await;
    rolled_back?;
    discarded?;
    let messages = match open {
        Ok(messages) => messages,
        Err(err) if err.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
            return Ok(Session::LeftTransactionOpen);
        }
        // Anything else (a `statement_timeout` the statement set, say)
        // leaves the answer unknown: the caller closes the connection.
        Err(err) => return Err(err),
    };
    let in_own_transaction = messages.into_iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|value| value == "t"),
        _ => None,
    });
    Ok(if in_own_transaction == Some(false) {
        Session::LeftTransactionOpen
    } else {
        Session::Clean
    })
}

/// How much of a statement's rows the host reads before it stops.
#[derive(Clone, Copy)]
pub(super) struct Caps {
    pub(super) rows: u64,
    pub(super) bytes: u64,
}

/// Why a statement gave no answer.
enum Stopped {
    /// It ended with an error; the connection is fit to reuse.
    Answered(SqlError),
    /// The host stopped reading its rows (past a cap, or at a value it
    /// cannot hand over) while the server may still be sending them.
    Cut(SqlError),
}

impl From<SqlError> for Stopped {
    fn from(error: SqlError) -> Self {
        Stopped::Answered(error)
    }
}

async fn statement_on(
    client: &Object,
    name: &str,
    statement: &str,
    params: Vec<Option<String>>,
    want: Want,
    caps: Caps,
) -> Result<Done, Stopped> {
    // Not cached: a provisioner's statements carry names and differ every
    // time, and a cache per connection would only grow.
    let prepared = client
        .prepare(statement)
        .await
        .map_err(|err| failed(name, &err))?;
    let expected = prepared.params().len();
    if expected != params.len() {
        return Err(Stopped::Answered(SqlError::QueryFailed(DbError {
            code: "08P01".into(),
            message: format!(
                "the statement takes {expected} parameters but was given {}",
                params.len()
            ),
            detail: None,
            hint: Some("pass one value for each of $1..$n".into()),
        })));
    }
    let params: Vec<TextParam> = params.into_iter().map(TextParam).collect();
    let params = params.iter().map(|param| param as &(dyn ToSql + Sync));
    if want == Want::Count {
        let count = client
            .execute_raw(&prepared, params)
            .await
            .map_err(|err| failed(name, &err))?;
        return Ok(Done::Count(count));
    }
    let columns: Vec<String> = prepared
        .columns()
        .iter()
        .map(|column| column.name().to_owned())
        .collect();
    let mut stream = pin!(
        client
            .query_raw(&prepared, params)
            .await
            .map_err(|err| failed(name, &err))?
    );
    let mut rows = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = stream.next().await {
        let row = row.map_err(|err| failed(name, &err))?;
        if rows.len() as u64 == caps.rows {
            return Err(Stopped::Cut(capped(
                name,
                format!("more than {} rows", caps.rows),
                "max_rows",
                "add a LIMIT or a WHERE",
            )));
        }
        let values = texts(&row, name).map_err(Stopped::Cut)?;
        bytes += cost(&values);
        if bytes > caps.bytes {
            return Err(Stopped::Cut(capped(
                name,
                format!("rows larger than {}", kib(caps.bytes)),
                "max_result_kb",
                "add a LIMIT, or select fewer or smaller columns",
            )));
        }
        rows.push(values);
    }
    Ok(Done::Rows(RowSet { columns, rows }))
}

/// What a row costs in memory: as the host holds it, and again as the
/// plugin receives it.
pub(super) fn cost(values: &[Option<String>]) -> u64 {
    let texts: usize = values.iter().flatten().map(String::len).sum();
    ROW_COST + VALUE_COST * values.len() as u64 + 2 * texts as u64
}

/// A size as an operator writes it in `max_result_kb`.
pub(super) fn kib(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// The refusal of a statement whose rows passed a cap of its connection.
pub(super) fn capped(name: &str, what: String, key: &str, hint: &str) -> SqlError {
    SqlError::QueryFailed(DbError {
        code: "54000".into(),
        message: format!(
            "it returned {what}, past the cap of SQL connection \"{name}\" ({key} in [services.sql.{name}]), so the host stopped reading and cancelled it"
        ),
        detail: None,
        hint: Some(format!("{hint}, or ask the host's operator to raise {key}")),
    })
}

/// A column read as `T` and written as text.
fn written<'a, T: FromSql<'a> + ToString>(
    row: &'a Row,
    index: usize,
) -> Result<Option<String>, tokio_postgres::Error> {
    row.try_get::<_, Option<T>>(index)
        .map(|value| value.map(|value| value.to_string()))
}

/// A row's values as text, as PostgreSQL writes them.
fn texts(row: &Row, name: &str) -> Result<Vec<Option<String>>, SqlError> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let ty = column.type_();
            let text = match *ty {
                Type::BOOL => written::<bool>(row, index),
                Type::INT2 => written::<i16>(row, index),
                Type::INT4 => written::<i32>(row, index),
                Type::INT8 => written::<i64>(row, index),
                Type::OID => written::<u32>(row, index),
                Type::FLOAT4 => row
                    .try_get::<_, Option<f32>>(index)
                    .map(|value| value.map(|value| float(f64::from(value)))),
                Type::FLOAT8 => row
                    .try_get::<_, Option<f64>>(index)
                    .map(|value| value.map(float)),
                // The one-byte `"char"` of the catalogs (`relkind`).
                Type::CHAR => row
                    .try_get::<_, Option<i8>>(index)
                    .map(|value| value.map(|value| char::from(value.cast_unsigned()).to_string())),
                _ if <String as FromSql>::accepts(ty) => row.try_get::<_, Option<String>>(index),
                _ => {
                    let column = column.name();
                    return Err(SqlError::UnsupportedType(format!(
                        "column \"{column}\" of a statement on SQL connection \"{name}\" is of type {ty}, which the host does not hand plugins; cast it to text in the statement ({column}::text)"
                    )));
                }
            };
            text.map_err(|err| failed(name, &err))
        })
        .collect()
}

/// A float as PostgreSQL writes it (`Infinity`, `NaN`).
fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        value.to_string()
    }
}

/// What went wrong with a statement, as the plugin gets it.
fn failed(name: &str, err: &tokio_postgres::Error) -> SqlError {
    match err.as_db_error() {
        Some(db) => SqlError::QueryFailed(DbError {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            hint: db.hint().map(str::to_owned),
        }),
        None => SqlError::ConnectionFailed(format!(
            "SQL connection \"{name}\" failed while running a statement ({}); try again, and check that the server is up",
            describe(err)
        )),
    }
}

/// A connection error in a few words: the server's message when it sent one.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            use std::error::Error as _;
            match err.source() {
                Some(source) => format!("{err}: {source}"),
                None => err.to_string(),
            }
        }
    }
}

/// A parameter sent as text: the server reads it with the input function
/// of the type it inferred for its `$n`.
#[derive(Debug)]
struct TextParam(Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cost_what_they_take_in_the_host_and_the_plugin() {
        // A NULL is not free: 8 million of them took the host past 1 GB.
        assert_eq!(cost(&[None]), 32 + 36);
        assert_eq!(cost(&[Some("abc".into()), None]), 32 + 2 * 36 + 6);
        assert_eq!(kib(16 * 1024 * 1024), "16 MiB");
        assert_eq!(kib(1536), "2 KiB");
    }

    #[test]
    fn floats_read_as_postgres_writes_them() {
        assert_eq!(float(1.5), "1.5");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "Infinity");
        assert_eq!(float(f64::NEG_INFINITY), "-Infinity");
    }
}

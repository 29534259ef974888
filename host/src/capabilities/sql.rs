//! `orizuru:service/sql`: statements on the PostgreSQL connections the
//! operator declared for a service (`[services.sql.NAME]`), and on MySQL
//! and MariaDB ones: a `mysql://` or `mariadb://` URL is served by `mysql`,
//! with the same shape and guarantees (its opening comment says how).
//!
//! A plugin names a connection; the host holds its URL and password and
//! never hands them over. Each connection has a pool, made when the plugin
//! is loaded and shared by every call of that plugin version; it connects
//! when a call first needs it. Parameters are sent as text, so the server
//! reads each `$n` as the type it infers (as libpq's `PQexecParams` does),
//! and results come back as text for the types a plugin can read without a
//! cast. Every statement is bounded by the connection's `timeout_ms`, its
//! `max_rows` and its `max_result_kb`, and cancelled on the server when it
//! runs past one of them or its call is cut.
//!
//! A connection goes back to the pool as it was taken: after each
//! statement the host rolls back what it left open and runs `DISCARD ALL`,
//! so no `SET`, temporary table, prepared statement, advisory lock or
//! transaction carries over to the next statement, whichever call runs it.
//! A statement that opens a transaction (`BEGIN`) is refused, since the
//! transaction could not outlive it: work that must be atomic goes in one
//! statement (a `DO` block, a `WITH` query changing several tables, a
//! function).

mod grant;
mod mysql;
pub(crate) mod pool;
mod statement;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::error::Context as _;

use super::capability::{CallInfo, Capability, Holds, Reading, Start};
use crate::call_log::Redactor;
use crate::setting::Secret;
pub use grant::{SqlConnection, SqlFile, SqlGrant};
use pool::Connections;
use statement::bindings::orizuru::service::sql::{self, RowSet, SqlError};
use statement::{Done, Want, run};

/// `orizuru:service/sql`, granted by `[services.sql.NAME]` tables.
pub struct Sql;

/// One call's `orizuru:service/sql`: its service's pools, and what its
/// warnings carry.
pub struct SqlCall {
    connections: Arc<Pools>,
    service: Arc<str>,
    request_id: Option<String>,
    redactor: Redactor,
}

impl Capability for Sql {
    const PREFIX: &'static str = "orizuru:service/sql";
    const KEY: &'static str = "a [services.sql.NAME] table";

    type File = Option<std::collections::BTreeMap<String, SqlFile>>;
    type Grant = SqlGrant;
    type Host = ();
    /// The pools of `[services.sql.NAME]`, shared by every call of this plugin version.
    type Granted = Arc<Pools>;
    type Call = SqlCall;

    fn check(file: Self::File, reading: &Reading<'_>) -> Result<SqlGrant, String> {
        grant::sql_connections(file, reading).map(|connections| SqlGrant { connections })
    }

    fn is_granted(grant: &SqlGrant) -> bool {
        !grant.connections.is_empty()
    }

    fn secrets(grant: &SqlGrant) -> Vec<&Secret> {
        grant
            .connections
            .values()
            .flat_map(SqlConnection::secrets)
            .collect()
    }

    fn start(_start: &Start<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn granted(grant: &SqlGrant, _host: &(), _service: &Arc<str>) -> Arc<Pools> {
        Arc::new(Pools {
            postgres: Connections::of(&grant.connections),
            mysql: mysql::Connections::of(&grant.connections),
            declared: grant.connections.keys().cloned().collect(),
        })
    }

    fn call(granted: &Arc<Pools>, call: &CallInfo) -> SqlCall {
        SqlCall {
            connections: granted.clone(),
            service: call.service.clone(),
            request_id: call.tags.request_id.clone(),
            redactor: call.redactor.clone(),
        }
    }

    fn add_to_linker<T: Holds<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        sql::add_to_linker::<T, HasSelf<SqlCall>>(linker, |store| {
            <T as Holds<Sql>>::call_state(store).0
        })
        .context("cannot link orizuru:service/sql for plugins")
    }
}

impl sql::Host for SqlCall {
    async fn query(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<Option<String>>,
    ) -> Result<RowSet, SqlError> {
        let pools = self.connections.clone();
        let answer = pools.run(&connection, &statement, params, Want::Rows).await;
        self.note(&connection, answer.map(Done::rows))
    }

    async fn execute(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<Option<String>>,
    ) -> Result<u64, SqlError> {
        let pools = self.connections.clone();
        let answer = pools
            .run(&connection, &statement, params, Want::Count)
            .await;
        self.note(&connection, answer.map(Done::count))
    }

    async fn quote_identifier(&mut self, name: String) -> String {
        postgres_protocol::escape::escape_identifier(&name)
    }

    async fn quote_literal(&mut self, value: String) -> String {
        // It starts with a space (` E'...'`) when the value has a backslash.
        postgres_protocol::escape::escape_literal(&value)
            .trim_start()
            .to_owned()
    }
}

/// A service's pools: PostgreSQL's and MySQL's, each connection in one of them.
pub struct Pools {
    postgres: Connections,
    mysql: mysql::Connections,
    /// Every connection's name, for the sentence that says one is missing.
    declared: Vec<String>,
}

impl Pools {
    /// Runs a statement on connection `name`, on whichever server it is.
    async fn run(
        &self,
        name: &str,
        statement: &str,
        params: Vec<Option<String>>,
        want: Want,
    ) -> Result<Done, SqlError> {
        // `NAME@DATABASE` is connection NAME, reaching another database.
        let (connection, database) = match name.split_once(pool::DATABASE_SEPARATOR) {
            Some((connection, database)) => (connection, Some(database)),
            None => (name, None),
        };
        if self.mysql.has(connection) {
            if let Some(database) = database {
                return Err(SqlError::NoSuchConnection(format!(
                    "the SQL connection \"{connection}\" is a MySQL one, which reaches database \"{database}\" by qualified names (`{database}`.`table`); name the connection \"{connection}\" alone"
                )));
            }
            mysql::run(&self.mysql, name, statement, params, want).await
        } else if self.declared.iter().any(|declared| declared == connection) {
            run(&self.postgres, name, statement, params, want).await
        } else {
            let declared = if self.declared.is_empty() {
                "none".to_owned()
            } else {
                self.declared
                    .iter()
                    .map(|name| format!("\"{name}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(SqlError::NoSuchConnection(format!(
                "the service has no SQL connection \"{name}\" (it has {declared}); its operator must declare it as a [services.sql.{name}] table"
            )))
        }
    }
}

impl SqlCall {
    /// Logs what the operator must fix (a server the host cannot reach);
    /// what the plugin's own statements get wrong is the plugin's to say.
    fn note<T>(&self, connection: &str, answer: Result<T, SqlError>) -> Result<T, SqlError> {
        if let Err(SqlError::ConnectionFailed(why) | SqlError::Timeout(why)) = &answer {
            tracing::warn!(
                service = %self.service,
                connection,
                request_id = self.request_id.as_deref(),
                "{}",
                self.redactor.redact(why)
            );
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_url_and_its_password_are_blanked_out_of_plugin_text() {
        let url = "postgres://admin:hunter2@db.internal/postgres";
        let grant = SqlGrant {
            connections: BTreeMap::from([(
                "admin".to_owned(),
                SqlConnection {
                    url: Secret::new(url),
                    password: Some(Secret::new("hunter2")),
                    max_connections: 1,
                    timeout: Duration::from_secs(1),
                    max_rows: 1,
                    max_result_bytes: 1024,
                    databases: Vec::new(),
                },
            )]),
        };
        let redactor = Redactor::new(Sql::secrets(&grant).into_iter().map(Secret::expose));
        assert_eq!(
            redactor.redact(&format!("connecting to {url} with hunter2")),
            "connecting to [secret] with [secret]"
        );
    }
}

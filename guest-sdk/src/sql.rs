//! SQL on the PostgreSQL, MySQL and MariaDB connections the service's
//! operator declared (`[services.sql.NAME]`); the [`mysql`] module quotes
//! for the latter two, whose parameters are `?` rather than `$n`. A plugin names a connection; the host holds its
//! URL and password, and the plugin never sees them.
//!
//! Needs a `[services.sql.NAME]` table in the service's `[[services]]`
//! entry: a plugin that calls these functions is refused at load without one.
//!
//! ```no_run
//! use orizuru_sdk::sql::{self, Connection};
//!
//! # fn f() -> orizuru_sdk::Result<()> {
//! let admin = Connection::named("admin");
//!
//! // Parameters are bound as text; the server reads each as the type it
//! // infers for its `$n`, and `None` is NULL.
//! let rows = admin.query(
//!     "SELECT datname, pg_database_size(datname) AS bytes FROM pg_database WHERE datname = $1",
//!     &[&"orders"],
//! )?;
//! for row in &rows {
//!     let name = row.require("datname")?;
//!     let bytes: i64 = row.parse("bytes")?.unwrap_or(0);
//!     println!("{name}: {bytes} bytes");
//! }
//!
//! // Statements that take no parameters (CREATE ROLE, CREATE DATABASE) quote
//! // names and values themselves.
//! let role = sql::quote_identifier("orders_app");
//! let password = sql::quote_literal("n0t-in-the-url");
//! admin.execute(&format!("CREATE ROLE {role} LOGIN PASSWORD {password}"), &[])?;
//! # Ok(()) }
//! ```
//!
//! Every call runs one statement on a connection of the service's pool, in
//! a transaction of its own: `SET`, temporary tables and `BEGIN` do not
//! carry over to the next call. Values come back as `::text` writes them
//! (`true`, `42`, `1.5`); a column of another type (`numeric`, `timestamptz`,
//! `uuid`, ...) is refused with [`ErrorKind::UnsupportedType`] until the
//! statement casts it (`created_at::text`).
//!
//! An [`Error`] says what went wrong in a sentence and turns into the SDK's
//! [`crate::Error`] with `?`; look at [`Error::code`] to handle a refusal
//! the server gave (`42710`: the role already exists).

use std::fmt;

use crate::__private::bindings::orizuru::service::sql as wit;

/// What PostgreSQL reported when it refused a statement.
pub use wit::DbError;
/// Why a statement gave no answer.
pub use wit::SqlError as ErrorKind;

/// A connection the operator declared as `[services.sql.NAME]`, on the
/// database its URL names or on another one its table lets it reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    name: String,
    database: Option<String>,
}

impl Connection {
    /// The connection declared as `[services.sql.<name>]`. Nothing is
    /// checked until a statement runs.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            database: None,
        }
    }

    /// The same connection's server and credentials, on another of its
    /// databases: one whose name matches a pattern of the table's
    /// `databases = ["tsuru_*"]`, or every statement is refused with a
    /// sentence saying so. Each statement on it opens a connection of its
    /// own and closes it, so it suits a provisioner's few statements
    /// inside a database it just made (a grant on its schema), not traffic.
    ///
    /// ```no_run
    /// use orizuru_sdk::sql::{self, Connection};
    /// # fn f() -> orizuru_sdk::Result<()> {
    /// let inside = Connection::named("admin").database("tsuru_orders");
    /// inside.execute(&format!("GRANT USAGE, CREATE ON SCHEMA public TO {}", sql::quote_identifier("tsuru_orders")), &[])?;
    /// # Ok(()) }
    /// ```
    pub fn database(&self, database: impl Into<String>) -> Self {
        Self {
            name: self.name.clone(),
            database: Some(database.into()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The other database it reaches, if any.
    pub fn reached_database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The connection as the host reads it: `NAME`, or `NAME@DATABASE`
    /// while the WIT (0.1.0) takes one string; 0.2.0 should make the
    /// database a parameter of its own.
    fn wire_name(&self) -> String {
        match &self.database {
            Some(database) => format!("{}@{database}", self.name),
            None => self.name.clone(),
        }
    }

    /// Runs one statement and answers its rows.
    pub fn query(&self, statement: &str, params: &[&dyn ToParam]) -> Result<Rows, Error> {
        wit::query(&self.wire_name(), statement, &texts(params))
            .map(|set| Rows {
                columns: set.columns,
                rows: set.rows,
            })
            .map_err(|kind| self.error(kind))
    }

    /// Runs one statement and answers how many rows it changed.
    pub fn execute(&self, statement: &str, params: &[&dyn ToParam]) -> Result<u64, Error> {
        wit::execute(&self.wire_name(), statement, &texts(params)).map_err(|kind| self.error(kind))
    }

    fn error(&self, kind: ErrorKind) -> Error {
        Error {
            connection: self.wire_name(),
            kind,
        }
    }
}

fn texts(params: &[&dyn ToParam]) -> Vec<Option<String>> {
    params.iter().map(|param| param.to_param()).collect()
}

/// `name` quoted as an identifier: `we"ird` → `"we""ird"`.
pub fn quote_identifier(name: &str) -> String {
    wit::quote_identifier(name)
}

/// `value` quoted as a string literal: `it's` → `'it''s'`.
pub fn quote_literal(value: &str) -> String {
    wit::quote_literal(value)
}

/// Quoting for MySQL and MariaDB connections (a `mysql://` or `mariadb://`
/// URL), whose syntax is not PostgreSQL's: [`quote_identifier`] and
/// [`quote_literal`] above write PostgreSQL's.
///
/// ```no_run
/// use orizuru_sdk::sql::{Connection, mysql};
///
/// # fn f() -> orizuru_sdk::Result<()> {
/// let admin = Connection::named("admin");
/// // Parameters are `?`, bound as text.
/// admin.execute("DELETE FROM audit WHERE app = ?", &[&"web"])?;
/// // CREATE USER and GRANT take none: names and values are quoted.
/// let user = mysql::quote_literal("orders_app");
/// let password = mysql::quote_literal("n0t-in-the-url");
/// admin.execute(&format!("CREATE USER {user}@'%' IDENTIFIED BY {password}"), &[])?;
/// admin.execute(
///     &format!("GRANT ALL ON {}.* TO {user}@'%'", mysql::quote_identifier("orders")),
///     &[],
/// )?;
/// # Ok(()) }
/// ```
pub mod mysql {
    /// `name` quoted as an identifier (a database, a table): `` we`ird `` →
    /// `` `we``ird` ``.
    pub fn quote_identifier(name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    /// `value` quoted as a string literal: `it's` → `'it''s'`, a backslash
    /// left as it is. Exact on the host's MySQL connections, whose sessions
    /// run with `NO_BACKSLASH_ESCAPES` in their `sql_mode` whatever the
    /// server's default; a statement that changes `sql_mode` must not use it.
    pub fn quote_literal(value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// A value bound to a `$n` parameter, as text; `None` is NULL.
pub trait ToParam {
    fn to_param(&self) -> Option<String>;
}

impl ToParam for str {
    fn to_param(&self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl ToParam for String {
    fn to_param(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Option<String> {
        (**self).to_param()
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Option<String> {
        self.as_ref().and_then(ToParam::to_param)
    }
}

macro_rules! to_param_by_display {
    ($($ty:ty),*) => {
        $(impl ToParam for $ty {
            fn to_param(&self) -> Option<String> {
                Some(self.to_string())
            }
        })*
    };
}

to_param_by_display!(
    bool, char, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
);

/// The rows a query answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    /// The columns' names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> RowsIter<'_> {
        RowsIter {
            columns: &self.columns,
            rows: self.rows.iter(),
        }
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = RowsIter<'a>;

    fn into_iter(self) -> RowsIter<'a> {
        self.iter()
    }
}

/// The rows of [`Rows`], in order.
pub struct RowsIter<'a> {
    columns: &'a [String],
    rows: std::slice::Iter<'a, Vec<Option<String>>>,
}

impl<'a> Iterator for RowsIter<'a> {
    type Item = Row<'a>;

    fn next(&mut self) -> Option<Row<'a>> {
        self.rows.next().map(|values| Row {
            columns: self.columns,
            values,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}

impl ExactSizeIterator for RowsIter<'_> {}

/// One row: its values by column name.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Option<String>],
}

impl<'a> Row<'a> {
    /// The value of `column`; `None` when it is NULL. A column the query
    /// did not select is the plugin's mistake, answered as an error.
    pub fn get(&self, column: &str) -> crate::Result<Option<&'a str>> {
        let index = self
            .columns
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| {
                crate::Error::failed(format!(
                    "the query's rows have no column \"{column}\" (they have {}); select it, or read another",
                    self.columns.join(", ")
                ))
            })?;
        Ok(self.values.get(index).and_then(Option::as_deref))
    }

    /// The value of `column`, which must not be NULL.
    pub fn require(&self, column: &str) -> crate::Result<&'a str> {
        self.get(column)?.ok_or_else(|| {
            crate::Error::failed(format!(
                "column \"{column}\" of the query's row is NULL where a value was expected"
            ))
        })
    }

    /// The value of `column` parsed as `T` (`i64`, `bool`, `f64`, ...); `None` when it is NULL.
    pub fn parse<T: std::str::FromStr>(&self, column: &str) -> crate::Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        self.get(column)?
            .map(|text| {
                text.parse().map_err(|err| {
                    crate::Error::failed(format!(
                        "column \"{column}\" of the query's row holds {text:?}, which cannot be read as {}: {err}",
                        std::any::type_name::<T>()
                    ))
                })
            })
            .transpose()
    }
}

/// A statement that gave no answer, and on which connection.
#[derive(Debug, Clone)]
pub struct Error {
    connection: String,
    kind: ErrorKind,
}

impl Error {
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The connection the statement was for.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// The SQLSTATE, when the server refused the statement (`42P04`: the
    /// database already exists).
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::QueryFailed(db) => Some(&db.code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::NoSuchConnection(sentence)
            | ErrorKind::ConnectionFailed(sentence)
            | ErrorKind::UnsupportedType(sentence)
            | ErrorKind::Timeout(sentence) => f.write_str(sentence),
            // A refusal on a MySQL connection says so in its detail: the
            // server's error number (`MySQL error 1146`), or that the host
            // refused it (a cap).
            ErrorKind::QueryFailed(db)
                if db.detail.as_deref().is_some_and(|detail| {
                    detail.starts_with("MySQL error ")
                        || detail.starts_with("on a MySQL connection")
                }) =>
            {
                write!(
                    f,
                    "MySQL refused a statement on SQL connection \"{}\": {} (SQLSTATE {}",
                    self.connection, db.message, db.code,
                )?;
                match db.detail.as_deref() {
                    Some(number) if number.starts_with("MySQL error ") => write!(f, ", {number})")?,
                    _ => f.write_str(")")?,
                }
                if let Some(hint) = &db.hint {
                    write!(f, "; hint: {hint}")?;
                }
                Ok(())
            }
            ErrorKind::QueryFailed(db) => {
                write!(
                    f,
                    "PostgreSQL refused a statement on SQL connection \"{}\": {} (SQLSTATE {})",
                    self.connection, db.message, db.code
                )?;
                if let Some(detail) = &db.detail {
                    write!(f, "; {detail}")?;
                }
                if let Some(hint) = &db.hint {
                    write!(f, "; hint: {hint}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::Error {
    fn from(error: Error) -> Self {
        crate::Error::failed(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_quoting_doubles_its_quote_and_nothing_else() {
        assert_eq!(mysql::quote_identifier("orders"), "`orders`");
        assert_eq!(mysql::quote_identifier("we`ird"), "`we``ird`");
        assert_eq!(mysql::quote_literal("it's"), "'it''s'");
        // NO_BACKSLASH_ESCAPES: a backslash is itself.
        assert_eq!(mysql::quote_literal("a\\'b"), "'a\\''b'");
        assert_eq!(mysql::quote_literal(""), "''");
    }

    #[test]
    fn a_mysql_refusal_names_mysql_and_its_error_number() {
        let error = Error {
            connection: "admin".into(),
            kind: ErrorKind::QueryFailed(DbError {
                code: "42000".into(),
                message: "Access denied".into(),
                detail: Some("MySQL error 1044".into()),
                hint: None,
            }),
        };
        assert_eq!(
            error.to_string(),
            "MySQL refused a statement on SQL connection \"admin\": Access denied (SQLSTATE 42000, MySQL error 1044)"
        );
    }
}

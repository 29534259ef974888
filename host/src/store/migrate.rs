//! `orizuru store migrate`: copies what one host kept in its `data_dir`
//! (the embedded store) into the shared store, so that hosts on
//! PostgreSQL take over its services as they were.
//!
//! - **Refuses a served data_dir.** It takes `data_dir`'s lock, as a host
//!   does, so no host writes to the files while they are read.
//! - **Reads without changing.** The SQLite files are opened read-only, in
//!   one read transaction each (a consistent snapshot), and left in place.
//! - **All or nothing.** Every row goes in one PostgreSQL transaction: an
//!   error or a conflict leaves the store as it was.
//! - **Safe to run again.** A row whose key is in the store already, with
//!   the same content, is counted as already there and left alone. Events
//!   and plugin events have no key of their own; each gets an `import_key`
//!   (`sqlite:<id>:<hash of its content>`), so a second copy finds them.
//! - **A conflict stops it.** A row whose key is in the store with other
//!   content (the store is in use by hosts, or the source changed since an
//!   earlier copy) is a conflict: every conflict is listed, nothing is
//!   copied, and the store is left as it was. Merging two histories of the
//!   same instance is not something to do silently.
//! - **A damaged plugin is left out.** A `plugins/*.wasm` file whose bytes
//!   no longer match the sha256 it is named by is reported and not copied;
//!   the rest is copied (fixing the store cannot repair that file).
//!
//! What is counted: the rows of every table (and the plugin files), in the
//! source, copied, already there, in conflict, damaged. Every row of the
//! source is in the store afterwards exactly when [`Report::complete`].
//!
//! Times are RFC 3339 text in SQLite and `timestamptz` in PostgreSQL;
//! PostgreSQL parses the text itself, exact to the microsecond (the ledger
//! writes milliseconds).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures_util::future::try_join_all;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest as _, Sha256};
use tokio_postgres::types::{ToSql, Type};

use super::postgres::{Postgres, postgres_error};
use crate::ledger::SqliteLedger;

/// The ledger's file in `data_dir`.
const LEDGER_FILE: &str = "ledger.sqlite3";
/// The key-value store's file in `data_dir`.
const KEYVALUE_FILE: &str = "keyvalue.sqlite3";
/// The kept plugins' folder in `data_dir`.
const PLUGINS_DIR: &str = "plugins";
/// Rows sent to the store at once.
const BATCH: usize = 256;

/// How a column's text is given to PostgreSQL.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Text, or NULL.
    Text,
    /// RFC 3339 text, cast to `timestamptz`.
    Time,
    /// Bytes (`bytea`).
    Bytes,
}

/// A column copied as it is.
struct Column {
    name: &'static str,
    kind: Kind,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Text,
    }
}

const fn time(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Time,
    }
}

const fn bytes(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Bytes,
    }
}

/// Which SQLite file a table is read from.
#[derive(Clone, Copy, PartialEq)]
enum File {
    Ledger,
    KeyValue,
}

/// A table copied row by row: the SQLite query that reads it (its columns
/// in [`Table::columns`]' order, after the row's id when [`Table::imported`])
/// and what identifies a row in PostgreSQL.
struct Table {
    name: &'static str,
    file: File,
    select: &'static str,
    columns: &'static [Column],
    /// The primary key, when the table has one of its own.
    key: &'static [&'static str],
    /// Rows are keyed by an `import_key` made from the SQLite id and the
    /// row's content (the table's own id is the store's).
    imported: bool,
    /// Columns not compared, nor part of the import key: an event's
    /// answer, which the host forgets once the replay window has passed.
    unchecked: &'static [&'static str],
    /// The row takes a new revision from `deployment_revisions`.
    revision: bool,
    /// The columns that name a row in a sentence.
    label: &'static [&'static str],
}

/// Every table but `plugins` (files) and the counts the store keeps itself
/// (`kv_usage`, by its trigger), in the order the foreign keys need.
const TABLES: &[Table] = &[
    Table {
        name: "instances",
        file: File::Ledger,
        select:
            "SELECT service, name, state, plan, team, description, tags, parameters, data, owner,
                        created_at, updated_at
                 FROM instances ORDER BY service, name",
        columns: &[
            text("service"),
            text("name"),
            text("state"),
            text("plan"),
            text("team"),
            text("description"),
            text("tags"),
            text("parameters"),
            text("data"),
            text("owner"),
            time("created_at"),
            time("updated_at"),
        ],
        key: &["service", "name"],
        imported: false,
        unchecked: &[],
        revision: false,
        label: &["service", "name"],
    },
    Table {
        name: "bindings",
        file: File::Ledger,
        select: "SELECT service, instance, kind, target, env, bound_at
                 FROM bindings ORDER BY service, instance, kind, target",
        columns: &[
            text("service"),
            text("instance"),
            text("kind"),
            text("target"),
            text("env"),
            time("bound_at"),
        ],
        key: &["service", "instance", "kind", "target"],
        imported: false,
        unchecked: &[],
        revision: false,
        label: &["service", "instance", "kind", "target"],
    },
    Table {
        name: "events",
        file: File::Ledger,
        select: "SELECT id, service, instance, action, target, event_id, user, outcome, answer,
                        reason, at
                 FROM events ORDER BY id",
        columns: &[
            text("service"),
            text("instance"),
            text("action"),
            text("target"),
            text("event_id"),
            text("user"),
            text("outcome"),
            text("answer"),
            text("reason"),
            time("at"),
        ],
        key: &["import_key"],
        imported: true,
        unchecked: &["answer"],
        revision: false,
        label: &["service", "instance", "action", "at"],
    },
    Table {
        name: "deployments",
        file: File::Ledger,
        select: "SELECT service, document, updated_at FROM deployments ORDER BY service",
        columns: &[text("service"), text("document"), time("updated_at")],
        key: &["service"],
        imported: false,
        unchecked: &[],
        revision: true,
        label: &["service"],
    },
    Table {
        name: "plugin_events",
        file: File::Ledger,
        select: "SELECT id, service, kind, sha256, previous, source, detail, at
                 FROM plugin_events ORDER BY id",
        columns: &[
            text("service"),
            text("kind"),
            text("sha256"),
            text("previous"),
            text("source"),
            text("detail"),
            time("at"),
        ],
        key: &["import_key"],
        imported: true,
        unchecked: &[],
        revision: false,
        label: &["service", "kind", "at"],
    },
    Table {
        name: "kv",
        file: File::KeyValue,
        select: "SELECT service, bucket, key, value FROM kv ORDER BY service, bucket, key",
        columns: &[text("service"), text("bucket"), text("key"), bytes("value")],
        key: &["service", "bucket", "key"],
        imported: false,
        unchecked: &[],
        revision: false,
        label: &["service", "bucket", "key"],
    },
];

/// One value of a row, as read from SQLite.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(Option<String>),
    Bytes(Vec<u8>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Text(text) => text,
            Cell::Bytes(bytes) => bytes,
        }
    }

    /// How it reads in a sentence.
    fn shown(&self) -> String {
        match self {
            Cell::Text(Some(text)) => format!("{text:?}"),
            Cell::Text(None) => "null".into(),
            Cell::Bytes(bytes) => format!("{} bytes", bytes.len()),
        }
    }
}

/// A table's rows, as read, with the import key last when it has one.
struct Rows {
    table: &'static Table,
    rows: Vec<Vec<Cell>>,
}

/// What one table (or the plugin files) came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// The table's name in the store (`plugins` for the wasm files).
    pub table: &'static str,
    /// Rows (files) in the source.
    pub in_source: u64,
    /// Rows written to the store by this run.
    pub copied: u64,
    /// Rows the store had already, with the same content.
    pub already_there: u64,
    /// Rows the store has under the same key with other content.
    pub conflicting: u64,
    /// Plugin files whose bytes do not match their name.
    pub damaged: u64,
    /// Rows that would have been copied, but were not because of a
    /// conflict elsewhere (nothing is written then).
    pub held_back: u64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} in the source, {} copied, {} already there",
            self.table, self.in_source, self.copied, self.already_there
        )?;
        if self.conflicting > 0 {
            write!(f, ", {} in conflict", self.conflicting)?;
        }
        if self.damaged > 0 {
            write!(f, ", {} damaged", self.damaged)?;
        }
        if self.held_back > 0 {
            write!(f, ", {} held back", self.held_back)?;
        }
        Ok(())
    }
}

/// What a migration did: per table, and each row it could not copy.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The data dir copied from.
    pub from: PathBuf,
    /// Per table, in the order they were copied.
    pub tables: Vec<Counts>,
    /// Each row in conflict, as a sentence.
    pub conflicts: Vec<String>,
    /// Each damaged plugin file, as a sentence.
    pub damaged: Vec<String>,
    /// Whether this run's rows were committed (false after a conflict).
    pub written: bool,
}

impl Report {
    /// Every row and plugin of the source is in the store: nothing in
    /// conflict, nothing damaged, each counted as copied or already there.
    pub fn complete(&self) -> bool {
        self.written
            && self.conflicts.is_empty()
            && self.damaged.is_empty()
            && self
                .tables
                .iter()
                .all(|counts| counts.copied + counts.already_there == counts.in_source)
    }

    /// What went wrong, as one sentence, when not [`Report::complete`].
    pub fn failure(&self) -> Option<String> {
        if self.complete() {
            return None;
        }
        let from = self.from.display();
        Some(if !self.conflicts.is_empty() {
            format!(
                "nothing was copied: {} row(s) of {from} differ from the store's rows of the same key (listed above), so the store is in use or changed since an earlier copy; remove those rows from one side, or migrate into an empty database, then run this again",
                self.conflicts.len()
            )
        } else if !self.damaged.is_empty() {
            format!(
                "{} plugin file(s) in {from} are damaged and were not copied (listed above); every other row was. Hosts cannot roll back to those versions; upload them again to the store's hosts if they are still needed",
                self.damaged.len()
            )
        } else {
            format!(
                "not every row of {from} is in the store after the copy (see the counts above); run this again"
            )
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for counts in &self.tables {
            writeln!(f, "{counts}")?;
        }
        for conflict in &self.conflicts {
            writeln!(f, "conflict: {conflict}")?;
        }
        for damaged in &self.damaged {
            writeln!(f, "damaged: {damaged}")?;
        }
        if self.complete() {
            let copied: u64 = self.tables.iter().map(|counts| counts.copied).sum();
            let there: u64 = self.tables.iter().map(|counts| counts.already_there).sum();
            writeln!(
                f,
                "every row of {} is in the store: {copied} copied, {there} already there",
                self.from.display()
            )?;
        }
        Ok(())
    }
}

/// Copies everything `data_dir` holds into `store` (opened, so its schema
/// is current). Fails, leaving the store as it was, when a host serves
/// from `data_dir`, when a file cannot be read, or when the store refuses
/// a row; conflicts and damaged plugins are in the [`Report`].
pub async fn migrate(data_dir: &Path, store: &Postgres) -> anyhow::Result<Report> {
    let ledger = data_dir.join(LEDGER_FILE);
    if !ledger.is_file() {
        anyhow::bail!(
            "there is no ledger ({LEDGER_FILE}) in {}; pass the data_dir of the host to migrate from",
            data_dir.display()
        );
    }
    let _lock = crate::private::lock(data_dir).map_err(|err| {
        match err.downcast_ref::<crate::private::InUse>() {
            Some(in_use) => anyhow::anyhow!(
                "{} is in use by an Orizuru host{}; stop that host first, then run the migration again",
                data_dir.display(),
                in_use.holder
            ),
            None => err.context(format!("cannot lock {}", data_dir.display())),
        }
    })?;
    let sources = {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || read_tables(&data_dir))
            .await
            .context("the thread reading the SQLite files stopped")??
    };

    let mut client = store.client().await?;
    let transaction = client.transaction().await.map_err(postgres_error)?;
    let mut report = Report {
        from: data_dir.to_owned(),
        ..Report::default()
    };
    for rows in &sources {
        let counts = copy_table(&transaction, rows, &mut report.conflicts)
            .await
            .with_context(|| format!("cannot copy the table {}", rows.table.name))?;
        report.tables.push(counts);
    }
    let plugins = copy_plugins(&transaction, &data_dir.join(PLUGINS_DIR), &mut report)
        .await
        .context("cannot copy the kept plugins")?;
    report.tables.insert(
        TABLES
            .iter()
            .position(|table| table.name == "kv")
            .unwrap_or(report.tables.len()),
        plugins,
    );
    if report.conflicts.is_empty() {
        transaction.commit().await.map_err(postgres_error)?;
        report.written = true;
    } else {
        transaction.rollback().await.map_err(postgres_error)?;
        for counts in &mut report.tables {
            counts.held_back = counts.copied;
            counts.copied = 0;
        }
    }
    Ok(report)
}

/// Reads every table of [`TABLES`], each file in one read transaction.
fn read_tables(data_dir: &Path) -> anyhow::Result<Vec<Rows>> {
    let mut sources = Vec::with_capacity(TABLES.len());
    for file in [File::Ledger, File::KeyValue] {
        let path = data_dir.join(match file {
            File::Ledger => LEDGER_FILE,
            File::KeyValue => KEYVALUE_FILE,
        });
        let tables = TABLES.iter().filter(|table| table.file == file);
        if file == File::KeyValue && !path.is_file() {
            // No plugin ever kept a key.
            sources.extend(tables.map(|table| Rows {
                table,
                rows: Vec::new(),
            }));
            continue;
        }
        let mut connection = open_read_only(&path)?;
        if file == File::Ledger {
            check_ledger_version(&connection, &path)?;
        }
        let snapshot = connection
            .transaction()
            .with_context(|| format!("cannot read {}", path.display()))?;
        for table in tables {
            let mut rows = read_table(&snapshot, table).with_context(|| {
                format!("cannot read the table {} of {}", table.name, path.display())
            })?;
            hash_plain_passwords(table, &mut rows)?;
            sources.push(Rows { table, rows });
        }
        snapshot
            .finish()
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(sources)
}

/// A service record written by an older host keeps an added service's
/// password in plain text. It is copied as this version's hosts write it,
/// with the password's digest only: the shared store never holds the
/// password (hosts would rewrite it at start, after it had been there).
fn hash_plain_passwords(table: &Table, rows: &mut [Vec<Cell>]) -> anyhow::Result<()> {
    let Some(index) = table
        .columns
        .iter()
        .position(|column| column.name == "document")
    else {
        return Ok(());
    };
    for row in rows {
        let Some(Cell::Text(Some(text))) = row.get_mut(index) else {
            continue;
        };
        let Ok(document) = serde_json::from_str::<serde_json::Value>(text) else {
            // Copied as it is: the hosts reading it name the damage.
            continue;
        };
        if !crate::deploy::keeps_plain_password(&document) {
            continue;
        }
        let record: crate::deploy::Deployment = serde_json::from_value(document)
            .context("a service record with a plain password cannot be read")?;
        *text = serde_json::to_value(&record)?.to_string();
    }
    Ok(())
}

/// Opens a SQLite file so that it is not changed: read-only, and never
/// created.
fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} to read it", path.display()))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .with_context(|| format!("cannot open {} to read it", path.display()))?;
    Ok(connection)
}

/// A ledger this host has not opened has other columns: it is refused,
/// saying which Orizuru to open it with first.
fn check_ledger_version(connection: &Connection, path: &Path) -> anyhow::Result<()> {
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let current = SqliteLedger::schema_version();
    match usize::try_from(version) {
        Ok(version) if version == current => Ok(()),
        Ok(version) if version < current => anyhow::bail!(
            "the ledger {} was written by an older Orizuru (schema {version}, this one writes {current}); start this version's host on it once (`orizuru serve`) so that it is updated, stop it, then migrate",
            path.display()
        ),
        _ => anyhow::bail!(
            "the ledger {} was written by a newer Orizuru (schema {version}, this one knows {current}); migrate with that version or a newer one",
            path.display()
        ),
    }
}

/// A table's rows, with the import key appended when the table has one.
fn read_table(connection: &Connection, table: &Table) -> anyhow::Result<Vec<Vec<Cell>>> {
    let mut statement = connection.prepare(table.select)?;
    let offset = usize::from(table.imported);
    let rows = statement.query_map([], |row| {
        let id: Option<i64> = if table.imported {
            Some(row.get(0)?)
        } else {
            None
        };
        let mut cells = Vec::with_capacity(table.columns.len() + 1);
        for (index, column) in table.columns.iter().enumerate() {
            cells.push(match column.kind {
                Kind::Text | Kind::Time => Cell::Text(row.get(index + offset)?),
                Kind::Bytes => Cell::Bytes(row.get(index + offset)?),
            });
        }
        if let Some(id) = id {
            cells.push(Cell::Text(Some(import_key(table, id, &cells))));
        }
        Ok(cells)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `sqlite:<id>:<hash>`: the row's id in its ledger, and a hash of what
/// it says (its columns but the unchecked ones), so that the same row
/// copied again has the same key and another ledger's row of the same id
/// has another.
fn import_key(table: &Table, id: i64, cells: &[Cell]) -> String {
    let mut hash = Sha256::new();
    for (column, cell) in table.columns.iter().zip(cells) {
        if table.unchecked.contains(&column.name) {
            continue;
        }
        // Each value with its length first, so that no two rows run together.
        match cell {
            Cell::Text(None) => hash.update([0]),
            Cell::Text(Some(text)) => {
                hash.update([1]);
                hash.update((text.len() as u64).to_be_bytes());
                hash.update(text.as_bytes());
            }
            Cell::Bytes(bytes) => {
                hash.update([2]);
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            }
        }
    }
    let digest = hash.finalize();
    let short: String = digest[..12]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sqlite:{id}:{short}")
}

/// `$n`, cast as PostgreSQL needs the column's text.
fn placeholder(index: usize, kind: Kind) -> String {
    match kind {
        Kind::Time => format!("${index}::text::timestamptz"),
        Kind::Text => format!("${index}::text"),
        Kind::Bytes => format!("${index}::bytea"),
    }
}

/// The INSERT of one row that leaves a row of the same key alone.
fn insert_sql(table: &Table) -> String {
    let mut names: Vec<String> = table
        .columns
        .iter()
        .map(|column| format!("\"{}\"", column.name))
        .collect();
    let mut values: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| placeholder(index + 1, column.kind))
        .collect();
    if table.imported {
        names.push("import_key".into());
        values.push(format!("${}::text", table.columns.len() + 1));
    }
    if table.revision {
        names.push("revision".into());
        values.push("nextval('deployment_revisions')".into());
    }
    let key: Vec<String> = table.key.iter().map(|name| format!("\"{name}\"")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
        table.name,
        names.join(", "),
        values.join(", "),
        key.join(", ")
    )
}

/// The index of a key column among the row's cells (the import key is last).
fn key_index(table: &Table, name: &str) -> Option<usize> {
    if name == "import_key" {
        return Some(table.columns.len());
    }
    table.columns.iter().position(|column| column.name == name)
}

/// The columns in which the store's row of the same key differs, from the
/// row as given: `$1..` are the row's cells, as for the INSERT.
fn differences_sql(table: &Table) -> String {
    let checks: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, column)| !table.unchecked.contains(&column.name))
        .map(|(index, column)| {
            format!(
                "CASE WHEN \"{}\" IS DISTINCT FROM {} THEN '{}' END",
                column.name,
                placeholder(index + 1, column.kind),
                column.name
            )
        })
        .collect();
    let kinds = |name: &str| {
        table
            .columns
            .iter()
            .find(|column| column.name == name)
            .map_or(Kind::Text, |column| column.kind)
    };
    let matches: Vec<String> = table
        .key
        .iter()
        .filter_map(|name| {
            key_index(table, name)
                .map(|index| format!("\"{name}\" = {}", placeholder(index + 1, kinds(name))))
        })
        .collect();
    format!(
        "SELECT array_remove(ARRAY[{}]::text[], NULL) FROM {} WHERE {}",
        checks.join(", "),
        table.name,
        matches.join(" AND ")
    )
}

/// A row named in a sentence: `instances row service "a", name "db"`.
fn describe(table: &Table, row: &[Cell]) -> String {
    let named: Vec<String> = table
        .label
        .iter()
        .filter_map(|name| {
            key_index(table, name).map(|index| format!("{name} {}", row[index].shown()))
        })
        .collect();
    format!("{} row {}", table.name, named.join(", "))
}

/// Copies a table's rows; a row whose key the store has is compared.
async fn copy_table(
    transaction: &tokio_postgres::Transaction<'_>,
    rows: &Rows,
    conflicts: &mut Vec<String>,
) -> anyhow::Result<Counts> {
    let table = rows.table;
    // Typed, since the comparison leaves the unchecked columns' parameters unused.
    let mut types: Vec<Type> = table
        .columns
        .iter()
        .map(|column| match column.kind {
            Kind::Text | Kind::Time => Type::TEXT,
            Kind::Bytes => Type::BYTEA,
        })
        .collect();
    if table.imported {
        types.push(Type::TEXT);
    }
    let insert = transaction
        .prepare_typed(&insert_sql(table), &types)
        .await
        .map_err(postgres_error)?;
    let differences = transaction
        .prepare_typed(&differences_sql(table), &types)
        .await
        .map_err(postgres_error)?;
    let mut counts = Counts {
        table: table.name,
        in_source: rows.rows.len() as u64,
        ..Counts::default()
    };
    // Statements of a batch are sent together (tokio-postgres pipelines the
    // futures of one connection), not one round trip each.
    for batch in rows.rows.chunks(BATCH) {
        let inserted = try_join_all(batch.iter().map(|row| async {
            let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Cell::as_sql).collect();
            transaction
                .execute(&insert, &params)
                .await
                .map_err(postgres_error)
                .with_context(|| format!("the store refused the {}", describe(table, row)))
        }))
        .await?;
        counts.copied += inserted.iter().filter(|&&count| count == 1).count() as u64;
        let there: Vec<&Vec<Cell>> = batch
            .iter()
            .zip(&inserted)
            .filter(|(_, count)| **count == 0)
            .map(|(row, _)| row)
            .collect();
        let compared = try_join_all(there.iter().map(|row| async {
            let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Cell::as_sql).collect();
            transaction
                .query_opt(&differences, &params)
                .await
                .map_err(postgres_error)
                .with_context(|| format!("cannot compare the {}", describe(table, row)))
        }))
        .await?;
        for (row, found) in there.into_iter().zip(compared) {
            let differing: Option<Vec<String>> = found.map(|found| found.get(0));
            match differing {
                Some(columns) if columns.is_empty() => counts.already_there += 1,
                Some(columns) => {
                    counts.conflicting += 1;
                    conflicts.push(format!(
                        "the {} is in the store with another {}",
                        describe(table, row),
                        columns.join(", ")
                    ));
                }
                // Removed between the two statements by a host on the store.
                None => anyhow::bail!(
                    "the {} was in the store and then not; run the migration again",
                    describe(table, row)
                ),
            }
        }
    }
    Ok(counts)
}

/// Copies every `plugins/<sha256>.wasm` whose bytes have that sha256; the
/// others are reported as damaged.
async fn copy_plugins(
    transaction: &tokio_postgres::Transaction<'_>,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<Counts> {
    let mut counts = Counts {
        table: "plugins",
        ..Counts::default()
    };
    let mut files = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let path = entry
                    .with_context(|| format!("cannot list {}", dir.display()))?
                    .path();
                if path
                    .extension()
                    .is_some_and(|extension| extension == "wasm")
                {
                    files.push(path);
                }
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot list {}", dir.display()));
        }
    }
    files.sort();
    let insert = transaction
        .prepare(
            "INSERT INTO plugins (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
        )
        .await
        .map_err(postgres_error)?;
    let same = transaction
        .prepare("SELECT bytes = $2 FROM plugins WHERE sha256 = $1")
        .await
        .map_err(postgres_error)?;
    for path in files {
        counts.in_source += 1;
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let bytes = tokio::fs::read(&path)
            .await
            .with_context(|| format!("cannot read the kept plugin {}", path.display()))?;
        let sha256 = crate::runtime::sha256(&bytes);
        if sha256 != name {
            counts.damaged += 1;
            report.damaged.push(format!(
                "the kept plugin {} does not hold what its name says (its sha256 is {sha256})",
                path.display()
            ));
            continue;
        }
        let inserted = transaction
            .execute(&insert, &[&sha256, &bytes])
            .await
            .map_err(postgres_error)
            .with_context(|| format!("the store refused the kept plugin {}", path.display()))?;
        if inserted == 1 {
            counts.copied += 1;
            continue;
        }
        let equal: Option<bool> = transaction
            .query_opt(&same, &[&sha256, &bytes])
            .await
            .map_err(postgres_error)?
            .map(|row| row.get(0));
        match equal {
            Some(true) => counts.already_there += 1,
            Some(false) => {
                counts.conflicting += 1;
                report.conflicts.push(format!(
                    "the plugin {sha256} is in the store with other bytes (the store's copy is damaged)"
                ));
            }
            None => anyhow::bail!(
                "the plugin {sha256} was in the store and then not; run the migration again"
            ),
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests;

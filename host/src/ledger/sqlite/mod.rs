//! The embedded ledger: one SQLite file under `data_dir`, written in WAL mode
//! with a full sync at every commit, so an answered request survives a crash.
//!
//! This file owns the connections: opening them, the readers that run the
//! SQL of the files below off the async threads, and the instance counts
//! commits keep. Writes go to the one writer ([`writer`]), which commits
//! the writes of concurrent requests together, one sync for the group;
//! reads have connections of their own, so a read never waits behind a
//! sync (WAL lets them read beside the writer, and a commit is done before
//! its write is answered, so a read after the answer sees it).

mod changes;
mod deployments;
mod events;
mod instances;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::Connection;
use serde_json::Value;

use super::{Binding, Change, Event, EventRecord, InstanceRecord, Ledger, Pruned, Retention};
use crate::model::{Action, Instance, InstanceState};
use events::ago;
use writer::Writer;

/// Statements each connection keeps prepared: every statement of the ledger
/// fits, so none is prepared twice.
const STATEMENTS: usize = 64;

/// Read connections kept open between reads; more are opened when more
/// reads run at once, and closed after.
const IDLE_READERS: usize = 8;

pub struct SqliteLedger {
    // Readers before the writer: fields drop in order, and the writer's
    // connection, closed last, folds the WAL back into the file.
    readers: Arc<Readers>,
    writer: Writer,
    retention: Retention,
    /// Each service's instances, kept as commits change them, so that
    /// `/metrics` never scans the table.
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl SqliteLedger {
    /// Opens (or creates) `ledger.sqlite3` in `data_dir`, keeping events as
    /// long as the default [`Retention`] says.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(data_dir, Retention::default())
    }

    /// Opens (or creates) `ledger.sqlite3` in `data_dir`.
    pub fn open_with(data_dir: &Path, retention: Retention) -> anyhow::Result<Self> {
        crate::private::dir(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let path = data_dir.join("ledger.sqlite3");
        crate::private::database(&path)?;
        let mut connection = Connection::open(&path)
            .with_context(|| format!("cannot open the ledger {}", path.display()))?;
        connection
            .execute_batch(
                // secure_delete: what is deleted (a removed binding's env, a
                // forgotten answer) is overwritten, not left in free pages.
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                 PRAGMA secure_delete = ON;",
            )
            .context("cannot set up the ledger's journal")?;
        connection.set_prepared_statement_cache_capacity(STATEMENTS);
        schema::migrate(&mut connection)
            .with_context(|| format!("cannot update the ledger {}", path.display()))?;
        let counts = instances::count_all(&connection)
            .with_context(|| format!("cannot count the instances in {}", path.display()))?;
        let readers = Readers {
            path,
            idle: Mutex::new(Vec::new()),
        };
        // One reader now, so that a ledger that cannot be read fails here.
        let first = readers.take()?;
        readers.give_back(first);
        Ok(Self {
            readers: Arc::new(readers),
            writer: Writer::start(connection)?,
            retention,
            counts: Arc::new(Mutex::new(counts)),
        })
    }

    /// The schema version (`PRAGMA user_version`) this host's ledgers have
    /// once opened; a ledger at another version has not been opened by it.
    pub fn schema_version() -> usize {
        schema::version()
    }

    /// The oldest time an answer may have been recorded and still be replayed.
    fn replay_cutoff(&self) -> anyhow::Result<String> {
        ago(self.retention.replay_window)
    }

    /// Runs `work` on a read connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = readers.take()?;
            let answer = work(&connection);
            readers.give_back(connection);
            answer
        })
        .await
        .context("the ledger's reader thread stopped")?
    }

    /// Queues `work` to the writer: Ok once the transaction holding it is
    /// synced.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<T>> + Send + 'static {
        self.writer.write(work, |_| {})
    }
}

/// The read connections, opened as reads need them.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// An idle connection, or a new one.
    fn take(&self) -> anyhow::Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(connection) = idle {
            return Ok(connection);
        }
        let connection = Connection::open(&self.path)
            .with_context(|| format!("cannot open the ledger {}", self.path.display()))?;
        // query_only: a read connection that tried to write would commit
        // beside the writer's groups, outside their promise.
        connection
            .execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")
            .context("cannot set up a read connection to the ledger")?;
        connection.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(connection)
    }

    /// Keeps `connection` for the next read, unless enough are idle.
    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn instance(&self, service: &str, name: &str) -> anyhow::Result<Option<InstanceRecord>> {
        let (service, name) = (service.to_owned(), name.to_owned());
        self.read(move |connection| instances::instance(connection, &service, &name))
            .await
    }

    async fn reserve(
        &self,
        service: &str,
        instance: &Instance,
        owner: &str,
    ) -> anyhow::Result<bool> {
        let (service, owner) = (service.to_owned(), owner.to_owned());
        let record = InstanceRecord {
            instance: instance.clone(),
            state: InstanceState::Creating,
        };
        self.write(move |connection| changes::reserve(connection, &service, &record, owner))
            .await
    }

    async fn orphans(&self, service: &str, host: &str) -> anyhow::Result<Vec<InstanceRecord>> {
        let names: Vec<String> = {
            let (service, prefix) = (service.to_owned(), format!("{host}/"));
            self.read(move |connection| {
                instances::unowned_reservations(connection, &service, &prefix)
            })
            .await?
        };
        let mut orphans = Vec::with_capacity(names.len());
        for name in names {
            if let Some(record) = self.instance(service, &name).await? {
                orphans.push(record);
            }
        }
        Ok(orphans)
    }

    fn instance_count(&self, service: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(service)
            .copied()
            .unwrap_or(0)
    }

    async fn commit(
        &self,
        service: &str,
        changes: Vec<Change>,
        event: Option<Event>,
    ) -> anyhow::Result<()> {
        let service = service.to_owned();
        let counts = self.counts.clone();
        let counted = service.clone();
        self.writer
            .write(
                move |connection| changes::commit(connection, &service, &changes, event.as_ref()),
                // Counted on the writer thread once committed, so a commit
                // whose caller went away is counted too, and one undone is not.
                move |instances| {
                    if *instances != 0 {
                        let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                        let count = counts.entry(counted).or_default();
                        *count = count.saturating_add_signed(*instances);
                    }
                },
            )
            .await?;
        Ok(())
    }

    async fn replay(
        &self,
        service: &str,
        action: Action,
        instance: &str,
        target: &str,
        event_id: &str,
    ) -> anyhow::Result<Option<Value>> {
        let key = (
            service.to_owned(),
            action.as_str(),
            instance.to_owned(),
            target.to_owned(),
            event_id.to_owned(),
            self.replay_cutoff()?,
        );
        self.read(move |connection| {
            events::replay(connection, &key.0, key.1, &key.2, &key.3, &key.4, &key.5)
        })
        .await
    }

    async fn instance_names(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let service = service.to_owned();
        self.read(move |connection| instances::names(connection, &service))
            .await
    }

    async fn bindings(&self, service: &str, instance: &str) -> anyhow::Result<Vec<Binding>> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        self.read(move |connection| instances::bindings(connection, &service, &instance))
            .await
    }

    async fn events(&self, service: &str, instance: &str) -> anyhow::Result<Vec<EventRecord>> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        self.read(move |connection| events::events(connection, &service, &instance))
            .await
    }

    async fn prune(&self) -> anyhow::Result<Pruned> {
        let (answers_before, events_before) = (self.replay_cutoff()?, ago(self.retention.events)?);
        self.write(move |connection| events::prune(connection, &answers_before, &events_before))
            .await
    }
}

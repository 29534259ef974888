//! The embedded ledger: one SQLite file under `data_dir`, written in WAL mode
//! with a full sync at every commit, so an answered request survives a crash.
//!
//! This file owns the connection: opening it, running the SQL of the files
//! below off the async threads, and the instance counts commits keep.

mod changes;
mod deployments;
mod events;
mod instances;
mod schema;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::Connection;
use serde_json::Value;

use super::{Binding, Change, Event, EventRecord, InstanceRecord, Ledger, Pruned, Retention};
use crate::model::{Action, Instance, InstanceState};
use events::ago;

pub struct SqliteLedger {
    connection: Arc<Mutex<Connection>>,
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
        schema::migrate(&mut connection)
            .with_context(|| format!("cannot update the ledger {}", path.display()))?;
        let counts = instances::count_all(&connection)
            .with_context(|| format!("cannot count the instances in {}", path.display()))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
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

    /// Runs `work` on the connection off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock rolled its transaction back; the connection is sound.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        })
        .await
        .context("the ledger's worker thread stopped")?
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn instance(&self, service: &str, name: &str) -> anyhow::Result<Option<InstanceRecord>> {
        let (service, name) = (service.to_owned(), name.to_owned());
        self.with(move |connection| instances::instance(connection, &service, &name))
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
        self.with(move |connection| changes::reserve(connection, &service, &record, owner))
            .await
    }

    async fn orphans(&self, service: &str, host: &str) -> anyhow::Result<Vec<InstanceRecord>> {
        let names: Vec<String> = {
            let (service, prefix) = (service.to_owned(), format!("{host}/"));
            self.with(move |connection| {
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
        self.with(move |connection| {
            let instances = changes::commit(connection, &service, &changes, event.as_ref())?;
            if instances != 0 {
                let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                let count = counts.entry(service).or_default();
                *count = count.saturating_add_signed(instances);
            }
            Ok(())
        })
        .await
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
        self.with(move |connection| {
            events::replay(connection, &key.0, key.1, &key.2, &key.3, &key.4, &key.5)
        })
        .await
    }

    async fn instance_names(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let service = service.to_owned();
        self.with(move |connection| instances::names(connection, &service))
            .await
    }

    async fn bindings(&self, service: &str, instance: &str) -> anyhow::Result<Vec<Binding>> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        self.with(move |connection| instances::bindings(connection, &service, &instance))
            .await
    }

    async fn events(&self, service: &str, instance: &str) -> anyhow::Result<Vec<EventRecord>> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        self.with(move |connection| events::events(connection, &service, &instance))
            .await
    }

    async fn prune(&self) -> anyhow::Result<Pruned> {
        let (answers_before, events_before) = (self.replay_cutoff()?, ago(self.retention.events)?);
        self.with(move |connection| events::prune(connection, &answers_before, &events_before))
            .await
    }
}

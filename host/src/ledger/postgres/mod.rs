//! The shared ledger: the same instances, bindings and events as the
//! embedded one, in the shared store's PostgreSQL tables, so that any number
//! of hosts answer tsuru as one.
//!
//! This file owns the pools and the instance counts; the SQL is in the
//! files below. Times come from the database's clock, the one clock every
//! host shares. Actions on one instance are serialised across hosts by a
//! session advisory lock ([`lock`]), held on a connection of a second pool so
//! that actions holding locks never take the connections their commits need.

mod changes;
mod lock;
mod reads;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Binding, Change, Event, EventRecord, InstanceRecord, Ledger, LedgerLock, Pruned, Retention,
};
use crate::model::{Action, Instance, InstanceState};
use crate::store::postgres::{Postgres, postgres_error};

/// How often the instance counts are read again, so that other hosts'
/// creates and removes show in this host's `/metrics`.
const COUNTS_REFRESH: Duration = Duration::from_secs(5);

/// How long after its last heartbeat a host's run is taken for dead: its
/// reservations are then orphans. The fleet's heartbeat writes every 2 s.
pub const RUN_ALIVE_SECS: u32 = 15;

/// The ledger on the shared store (PostgreSQL).
pub struct PgLedger {
    store: Postgres,
    /// The pool the instance locks' connections come from, apart from the
    /// store's, so that N actions holding locks cannot starve the commits
    /// they wait for.
    locks: Postgres,
    retention: Retention,
    counts: Arc<Counts>,
}

/// Each service's instances: changed by this host's commits at once, and
/// read again from the store every [`COUNTS_REFRESH`].
#[derive(Default)]
struct Counts {
    by_service: Mutex<HashMap<String, u64>>,
    /// Commits of this host begun, and ended. A refresh that saw one
    /// running, or one begin while it read, keeps the counts as they are
    /// (it may have read before that commit), and the next refresh reads again.
    begun: AtomicU64,
    ended: AtomicU64,
}

/// Counts a commit as ended however it ends.
struct CommitEnded<'a>(&'a Counts);

impl Drop for CommitEnded<'_> {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::SeqCst);
    }
}

impl PgLedger {
    /// The ledger on an opened (migrated) store, keeping events as long as
    /// `retention` says. Counts the instances, then keeps counting in the
    /// background while the ledger lives.
    pub async fn open(store: &Postgres, retention: Retention) -> anyhow::Result<Self> {
        let mut lock_settings = store.settings().clone();
        lock_settings.pool_size = lock_settings.pool_size.max(1);
        let locks = Postgres::pool(&lock_settings)?;
        let counts = Arc::new(Counts::default());
        refresh(store, &counts).await?;
        keep_counting(store.clone(), Arc::downgrade(&counts));
        Ok(Self {
            store: store.clone(),
            locks,
            retention,
            counts,
        })
    }

    /// The store the ledger is kept in.
    pub fn store(&self) -> &Postgres {
        &self.store
    }
}

/// Reads every service's count from the store, unless this host committed
/// a change meanwhile.
async fn refresh(store: &Postgres, counts: &Counts) -> anyhow::Result<()> {
    let begun = counts.begun.load(Ordering::SeqCst);
    if counts.ended.load(Ordering::SeqCst) != begun {
        return Ok(());
    }
    let client = store.client().await?;
    let read = reads::count_all(&client).await?;
    if counts.begun.load(Ordering::SeqCst) == begun {
        *counts
            .by_service
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = read;
    }
    Ok(())
}

/// Reads the counts again every [`COUNTS_REFRESH`] until the ledger is dropped.
fn keep_counting(store: Postgres, counts: Weak<Counts>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(COUNTS_REFRESH);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(counts) = counts.upgrade() else {
                return;
            };
            if let Err(err) = refresh(&store, &counts).await {
                tracing::warn!(
                    "cannot count the instances in the shared store; /metrics shows the counts last read: {err:#}"
                );
            }
        }
    });
}

/// Seconds as the database's intervals take them; longer than any clock
/// goes back is the same as forever.
fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64().min(1e10)
}

#[async_trait]
impl Ledger for PgLedger {
    async fn instance(&self, service: &str, name: &str) -> anyhow::Result<Option<InstanceRecord>> {
        let client = self.store.client().await?;
        reads::instance(&client, service, name).await
    }

    async fn reserve(
        &self,
        service: &str,
        instance: &Instance,
        owner: &str,
    ) -> anyhow::Result<bool> {
        let record = InstanceRecord {
            instance: instance.clone(),
            state: InstanceState::Creating,
        };
        let client = self.store.client().await?;
        changes::reserve(&client, service, &record, owner).await
    }

    async fn orphans(&self, service: &str, host: &str) -> anyhow::Result<Vec<InstanceRecord>> {
        let client = self.store.client().await?;
        reads::orphans(&client, service, host).await
    }

    async fn lock(&self, service: &str, instance: &str) -> anyhow::Result<LedgerLock> {
        lock::lock(&self.locks, service, instance).await
    }

    fn shared(&self) -> bool {
        true
    }

    fn instance_count(&self, service: &str) -> u64 {
        self.counts
            .by_service
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
        let mut client = self.store.client().await?;
        self.counts.begun.fetch_add(1, Ordering::SeqCst);
        let _ended = CommitEnded(&self.counts);
        let instances = changes::commit(&mut client, service, &changes, event.as_ref()).await?;
        if instances != 0 {
            let mut counts = self
                .counts
                .by_service
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(service.to_owned()).or_default();
            *count = count.saturating_add_signed(instances);
        }
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
        let client = self.store.client().await?;
        let window = seconds(self.retention.replay_window);
        reads::replay(&client, service, action, instance, target, event_id, window).await
    }

    async fn instance_names(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let client = self.store.client().await?;
        reads::names(&client, service).await
    }

    async fn bindings(&self, service: &str, instance: &str) -> anyhow::Result<Vec<Binding>> {
        let client = self.store.client().await?;
        reads::bindings(&client, service, instance).await
    }

    async fn events(&self, service: &str, instance: &str) -> anyhow::Result<Vec<EventRecord>> {
        let client = self.store.client().await?;
        reads::events(&client, service, instance).await
    }

    async fn prune(&self) -> anyhow::Result<Pruned> {
        let mut client = self.store.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let (answers, events) = (
            seconds(self.retention.replay_window),
            seconds(self.retention.events),
        );
        let answers = transaction
            .execute(
                "UPDATE events SET answer = NULL
                 WHERE answer IS NOT NULL AND at < now() - make_interval(secs => $1)",
                &[&answers],
            )
            .await
            .map_err(postgres_error)?;
        let events = transaction
            .execute(
                "DELETE FROM events WHERE at < now() - make_interval(secs => $1)",
                &[&events],
            )
            .await
            .map_err(postgres_error)?;
        transaction.commit().await.map_err(postgres_error)?;
        Ok(Pruned { answers, events })
    }
}

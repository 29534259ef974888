//! What every service of a host shares: the ledger, the metrics, the
//! actions running on their own (which a stop waits for), the creates
//! running and the requests that may share their answer, the owner tokens of
//! reservations, and one lock per instance.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};
use tokio::sync::{OwnedMutexGuard, watch};
use tokio_util::task::TaskTracker;

use super::{ActionError, Created};
use crate::ledger::{Ledger, LedgerLock};
use crate::metrics::Metrics;
use crate::model::{Context, Instance};

/// What every service of a host shares to keep what tsuru is told true: the
/// ledger, the creates running, one lock per instance, and the work that
/// outlives the request that started it.
///
/// An action that changes an instance (create, update, remove, bind,
/// unbind) runs as a task of its own once it has begun: a client that gives
/// up, or a stop that cuts the connection, does not cut it between the
/// plugin's change and the ledger's record. A stopping host waits for these
/// tasks ([`Steward::settled`]); each ends within its plugin's deadlines.
pub struct Steward {
    pub(super) ledger: Arc<dyn Ledger>,
    pub(super) metrics: Arc<Metrics>,
    /// How long a call waits for a place under its service's `max_concurrent_calls`.
    pub(super) queue_wait: std::time::Duration,
    /// How long after a create ended a create asking the same is its retry.
    pub(super) replay_window: std::time::Duration,
    pub(super) work: TaskTracker,
    /// This run of the host, the prefix of every reservation's owner token.
    pub(super) run: String,
    next_owner: AtomicU64,
    pub(super) creates: Mutex<HashMap<InstanceKey, Attempt>>,
    locks: Mutex<HashMap<InstanceKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// A service id and an instance name.
pub(super) type InstanceKey = (String, String);

/// How a create ended, for every request waiting on it.
type CreateOutcome = Result<Created, Arc<ActionError>>;

/// A create running on this host, and the requests that may share its answer.
#[derive(Clone)]
pub(super) struct Attempt {
    pub(super) asked: Asked,
    pub(super) event_id: Option<String>,
    pub(super) outcome: watch::Receiver<Option<CreateOutcome>>,
}

/// What makes two creates of one name the same create: tsuru sends the
/// same team, plan and parameters when it retries.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Asked {
    team: Option<String>,
    plan: Option<String>,
    parameters: Map<String, Value>,
}

impl Asked {
    pub(super) fn of(instance: &Instance) -> Self {
        Self {
            team: instance.team.clone(),
            plan: instance.plan.clone(),
            parameters: instance.parameters.clone(),
        }
    }
}

impl Attempt {
    /// Whether a create asking for `instance` is a retry of this one.
    pub(super) fn retried_by(&self, instance: &Instance, context: &Context) -> bool {
        let same_event = matches!(
            (&self.event_id, &context.event_id),
            (Some(mine), Some(theirs)) if !mine.is_empty() && mine == theirs
        );
        same_event || self.asked == Asked::of(instance)
    }
}

impl Steward {
    pub fn new(
        ledger: Arc<dyn Ledger>,
        metrics: Arc<Metrics>,
        queue_wait: std::time::Duration,
        replay_window: std::time::Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            ledger,
            metrics,
            queue_wait,
            replay_window,
            work: TaskTracker::new(),
            run: uuid::Uuid::new_v4().simple().to_string(),
            next_owner: AtomicU64::new(1),
            creates: Mutex::default(),
            locks: Mutex::default(),
        })
    }

    /// Actions still running on their own (their requests may be gone).
    pub fn running(&self) -> usize {
        self.work.len()
    }

    /// Runs `work` as an action of its own, which a stop waits for.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.work.spawn(work);
    }

    /// Waits until every action that began has ended, recorded or undone.
    pub async fn settled(&self) {
        self.work.close();
        self.work.wait().await;
        self.work.reopen();
    }

    /// A token no other reservation holds: this run, then a number.
    pub(super) fn owner(&self) -> String {
        format!(
            "{}/{}",
            self.run,
            self.next_owner.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub(super) fn running_create(&self, service: &str, name: &str) -> Option<Attempt> {
        self.creates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(service.to_owned(), name.to_owned()))
            .cloned()
    }

    /// This run of the host: the prefix of its reservations' owner tokens,
    /// and how the fleet's heartbeat names it in a shared store.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The instance's lock: one action changes an instance at a time, in
    /// the order they asked for it, on this host and then on every host
    /// sharing the ledger ([`Ledger::lock`]). Taken while the request is
    /// still there (a request dropped while it waits never happened), then
    /// held by the action's own task to its end. Fails when the ledger
    /// cannot be reached.
    pub(super) async fn lock(
        self: &Arc<Self>,
        service: &str,
        name: &str,
    ) -> anyhow::Result<InstanceLock> {
        let key = (service.to_owned(), name.to_owned());
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let mut held = InstanceLock {
            guard: Some(lock.lock_owned().await),
            ledger: None,
            steward: self.clone(),
            key,
        };
        held.ledger = Some(self.ledger.lock(service, name).await?);
        Ok(held)
    }
}

/// Held while an action changes an instance; forgets the lock when no one
/// else waits for it.
pub(super) struct InstanceLock {
    guard: Option<OwnedMutexGuard<()>>,
    /// The ledger's lock, taken under this host's and given back before it.
    ledger: Option<LedgerLock>,
    steward: Arc<Steward>,
    key: InstanceKey,
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        self.ledger.take();
        let mut locks = self
            .steward
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.guard.take();
        // Only the map holds it now: no one waits.
        if locks
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

/// Takes a create off the list of those running when its task ends, however it ends.
pub(super) struct CreateDone {
    pub(super) steward: Arc<Steward>,
    pub(super) key: InstanceKey,
}

impl Drop for CreateDone {
    fn drop(&mut self) {
        self.steward
            .creates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

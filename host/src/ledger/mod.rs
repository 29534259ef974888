//! The instance ledger: every service's instances, their bindings and every
//! provisioning event. It belongs to the host, not to plugins, so 404s, 409s
//! and retried events are answered the same for every plugin, and the state
//! survives restarts and plugin swaps.

#[cfg(test)]
mod conformance;
mod postgres;
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::model::{Action, Env, Instance, InstanceState};

pub use postgres::PgLedger;
pub use sqlite::SqliteLedger;

/// RFC 3339 in UTC with milliseconds, fixed width so that text order is time order.
pub fn timestamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// [`timestamp`] of now.
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

/// An instance and how far its provisioning got.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub instance: Instance,
    pub state: InstanceState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    App,
    Job,
}

impl BindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::App => "app",
            BindingKind::Job => "job",
        }
    }
}

/// An app or job bound to an instance, with the env it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub kind: BindingKind,
    /// The app or job name.
    pub target: String,
    pub env: Env,
}

/// One change to the ledger; a commit applies several at once, or none.
#[derive(Debug, Clone)]
pub enum Change {
    /// Writes an instance, keeping its creation time if it exists.
    Put(InstanceRecord),
    /// Turns the reservation `owner` holds into the instance a create made;
    /// fails when the reservation is no longer that owner's.
    Settle {
        record: InstanceRecord,
        owner: String,
    },
    /// Gives up the reservation `owner` holds, after a create that made nothing.
    Release { instance: String, owner: String },
    /// Marks a pending instance ready; nothing if it is gone or not pending.
    Promote { instance: String },
    /// Deletes an instance and its bindings, and forgets the answers kept
    /// for retries of its events.
    Remove { instance: String },
    /// Records a binding; fails when the instance is gone or not created yet.
    Bind { instance: String, binding: Binding },
    /// Deletes a binding, and forgets the answers kept for retries of its binds.
    Unbind {
        instance: String,
        kind: BindingKind,
        target: String,
    },
}

/// How long an answer is kept for a retry of the same tsuru event, unless the
/// config file says (`replay_window_secs`).
pub const DEFAULT_REPLAY_WINDOW_SECS: u64 = 3600;
/// How long events are kept, unless the config file says (`events_retention_days`).
pub const DEFAULT_EVENTS_RETENTION_DAYS: u64 = 90;

/// How long the ledger keeps what it keeps of events. The config builds it;
/// the ledger knows nothing of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long a success's answer (a bind's env, passwords and all) is kept
    /// to answer a retry of the same tsuru event.
    pub replay_window: Duration,
    /// How long an event is kept at all.
    pub events: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            replay_window: Duration::from_secs(DEFAULT_REPLAY_WINDOW_SECS),
            events: Duration::from_secs(DEFAULT_EVENTS_RETENTION_DAYS * 86_400),
        }
    }
}

/// What a prune dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Answers older than the replay window.
    pub answers: u64,
    /// Events older than the retention.
    pub events: u64,
}

/// What tsuru asked for and how it ended.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: Action,
    pub instance: String,
    /// The app or job a binding event is about; empty otherwise.
    pub target: String,
    pub event_id: Option<String>,
    pub user: Option<String>,
    pub outcome: EventOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventOutcome {
    /// Carries the answer, given again to a retry of the same tsuru event.
    Succeeded(Value),
    /// Carries the sentence the caller was given.
    Failed(String),
}

/// An event as the ledger keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub action: String,
    pub instance: String,
    pub target: String,
    pub event_id: Option<String>,
    pub user: Option<String>,
    pub outcome: EventOutcome,
    /// RFC 3339.
    pub at: String,
}

/// Something that happened to a service's plugin: a swap, a rollback, a
/// load that failed, the service added or removed.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginEvent {
    /// `load` (a service's first version), `swap`, `rollback`,
    /// `failed-load`, `added`, `removed`, `settings`.
    pub kind: String,
    /// The version it is about.
    pub sha256: Option<String>,
    /// The version serving before.
    pub previous: Option<String>,
    /// What asked for it: `upload`, `file-change`, `config-file`, ...
    pub source: String,
    /// A sentence: the reason of a failure, what changed.
    pub detail: String,
}

/// A plugin event as the ledger keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginEventRecord {
    pub event: PluginEvent,
    /// RFC 3339.
    pub at: String,
}

/// What the host keeps of its services' plugins between starts: one JSON
/// document per service (kept versions, the active one, services added
/// through the admin API), and a log of plugin events.
#[async_trait]
pub trait Deployments: Send + Sync {
    /// Every service's document.
    async fn deployments(&self) -> anyhow::Result<Vec<(String, Value)>>;

    /// Writes a service's document (`None` deletes it) and the event, all or nothing.
    async fn save_deployment(
        &self,
        service: &str,
        document: Option<Value>,
        event: Option<PluginEvent>,
    ) -> anyhow::Result<()>;

    /// The newest `limit` plugin events of a service, newest first.
    async fn plugin_events(
        &self,
        service: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<PluginEventRecord>>;

    /// How many instances a service has in the ledger (reservations of
    /// creates not ended are not instances).
    async fn count_instances(&self, service: &str) -> anyhow::Result<u64>;
}

/// Held while an action changes an instance, so that one action at a time
/// changes it on every host sharing the ledger. A ledger one host owns
/// ([`SqliteLedger`]) gives one that holds nothing: the host's own lock
/// suffices. Dropping it lets the next action in.
#[must_use = "the instance is unlocked when this is dropped"]
pub struct LedgerLock {
    _held: Option<Box<dyn Send + Sync>>,
}

impl LedgerLock {
    /// A lock that holds nothing, for a ledger one host owns.
    pub fn local() -> Self {
        Self { _held: None }
    }

    /// A lock held for as long as `held` lives (its drop unlocks).
    pub fn holding(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Some(Box::new(held)),
        }
    }
}

impl std::fmt::Debug for LedgerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerLock")
            .field("shared", &self._held.is_some())
            .finish()
    }
}

/// Where the ledger is kept. One small interface, so that a shared store can
/// replace the embedded one for several hosts.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn instance(&self, service: &str, name: &str) -> anyhow::Result<Option<InstanceRecord>>;

    /// Takes the name for a create, as an instance in state `Creating`
    /// held by `owner` (a token of the create's own); false when the name is
    /// taken, by an instance or by another create's reservation. Only its
    /// owner settles or releases a reservation ([`Change::Settle`],
    /// [`Change::Release`]); one its host left behind is undone by
    /// [`Ledger::orphans`]' caller, never taken over on a clock's guess.
    async fn reserve(
        &self,
        service: &str,
        instance: &Instance,
        owner: &str,
    ) -> anyhow::Result<bool>;

    /// The reservations of a service held by no create of `host`: creates
    /// that an earlier run of the host began and never ended (it was
    /// killed). `host` is the prefix of every owner token this run makes.
    /// A shared ledger also leaves out those of other runs still alive
    /// (their creates may be running); its caller checks each again under
    /// [`Ledger::lock`].
    async fn orphans(&self, service: &str, host: &str) -> anyhow::Result<Vec<InstanceRecord>>;

    /// Waits until no other action changes the instance, on any host
    /// sharing the ledger, and holds it until the lock is dropped. The
    /// default, for a ledger one host owns, holds nothing.
    async fn lock(&self, service: &str, instance: &str) -> anyhow::Result<LedgerLock> {
        let _ = (service, instance);
        Ok(LedgerLock::local())
    }

    /// Whether several hosts share the ledger: then a host that dies may
    /// never start again, and the survivors look for its orphans now and
    /// then, not only at their own start.
    fn shared(&self) -> bool {
        false
    }

    /// The instances a service has, without scanning: kept as commits change them.
    fn instance_count(&self, service: &str) -> u64;

    /// Applies the changes and records the event, all or nothing.
    async fn commit(
        &self,
        service: &str,
        changes: Vec<Change>,
        event: Option<Event>,
    ) -> anyhow::Result<()>;

    /// The answer of an earlier success of the same tsuru event, if any
    /// and if it is still within the replay window.
    async fn replay(
        &self,
        service: &str,
        action: Action,
        instance: &str,
        target: &str,
        event_id: &str,
    ) -> anyhow::Result<Option<Value>>;

    /// The names of a service's instances, in order.
    async fn instance_names(&self, service: &str) -> anyhow::Result<Vec<String>>;

    async fn bindings(&self, service: &str, instance: &str) -> anyhow::Result<Vec<Binding>>;

    /// The events of one instance, oldest first.
    async fn events(&self, service: &str, instance: &str) -> anyhow::Result<Vec<EventRecord>>;

    /// Forgets answers past the replay window and events past the retention.
    async fn prune(&self) -> anyhow::Result<Pruned>;
}

//! The instance ledger: every service's instances, their bindings and every
//! provisioning event. It belongs to the host, not to plugins, so 404s, 409s
//! and retried events are answered the same for every plugin, and the state
//! survives restarts and plugin swaps.

mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::model::{Action, Env, Instance, InstanceState};

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
    /// Deletes an instance and its bindings.
    Remove {
        instance: String,
    },
    Bind {
        instance: String,
        binding: Binding,
    },
    Unbind {
        instance: String,
        kind: BindingKind,
        target: String,
    },
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

    /// How many instances a service has in the ledger.
    async fn count_instances(&self, service: &str) -> anyhow::Result<u64>;
}

/// Where the ledger is kept. One small interface, so that a shared store can
/// replace the embedded one for several hosts.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn instance(&self, service: &str, name: &str) -> anyhow::Result<Option<InstanceRecord>>;

    /// Takes the name for a create, as an instance in state `Creating`;
    /// false when the name is taken. A `Creating` reservation older than
    /// `stale_after` is taken over: no create runs that long, so its host
    /// crashed or could not release it.
    async fn reserve(
        &self,
        service: &str,
        instance: &Instance,
        stale_after: Duration,
    ) -> anyhow::Result<bool>;

    /// Applies the changes and records the event, all or nothing.
    async fn commit(
        &self,
        service: &str,
        changes: Vec<Change>,
        event: Option<Event>,
    ) -> anyhow::Result<()>;

    /// The answer of an earlier success of the same tsuru event, if any.
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
}

//! What each tsuru action does for one service: the ledger's checks (unknown
//! instance, duplicate create, retried event), the plugin call, the record.
//! The HTTP contract turns the results into tsuru's statuses and bodies.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::task::TaskTracker;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::ServiceConfig;
use crate::ledger::{Binding, BindingKind, Change, Event, EventOutcome, InstanceRecord, Ledger};
use crate::metrics::Metrics;
use crate::model::{
    Action, AppBinding, Context, Env, InfoItem, Instance, InstanceState, JobBinding, Plan,
    Provisioned, ProxyRequest, ProxyResponse, Refusal, Status,
};
use crate::runtime::{CompiledFrom, Failure, Outcome, Plugin, PluginVersion, Stop};

/// One tsuru service: its config, its plugin and its share of the ledger.
///
/// The plugin can be swapped while requests run: each request takes the
/// active plugin once, when it starts, and makes every call of that request
/// to it, so a request never sees two versions; a version is dropped when
/// the last request holding it ends.
pub struct Service {
    config: ServiceConfig,
    active: ArcSwap<Active>,
    /// One permit per request running the plugin; none free within the
    /// queue wait means 503.
    running: Arc<Semaphore>,
    steward: Arc<Steward>,
}

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
    ledger: Arc<dyn Ledger>,
    metrics: Arc<Metrics>,
    /// How long a call waits for a place under its service's `max_instances`.
    queue_wait: std::time::Duration,
    /// How long after a create ended a create asking the same is its retry.
    replay_window: std::time::Duration,
    work: TaskTracker,
    /// This run of the host, the prefix of every reservation's owner token.
    run: String,
    next_owner: AtomicU64,
    creates: Mutex<HashMap<InstanceKey, Attempt>>,
    locks: Mutex<HashMap<InstanceKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// A service id and an instance name.
type InstanceKey = (String, String);

/// How a create ended, for every request waiting on it.
type CreateOutcome = Result<Created, Arc<ActionError>>;

/// A create running on this host, and the requests that may share its answer.
#[derive(Clone)]
struct Attempt {
    asked: Asked,
    event_id: Option<String>,
    outcome: watch::Receiver<Option<CreateOutcome>>,
}

/// What makes two creates of one name the same create: tsuru sends the
/// same team, plan and parameters when it retries.
#[derive(Debug, Clone, PartialEq)]
struct Asked {
    team: Option<String>,
    plan: Option<String>,
    parameters: Map<String, Value>,
}

impl Asked {
    fn of(instance: &Instance) -> Self {
        Self {
            team: instance.team.clone(),
            plan: instance.plan.clone(),
            parameters: instance.parameters.clone(),
        }
    }
}

impl Attempt {
    /// Whether a create asking for `instance` is a retry of this one.
    fn retried_by(&self, instance: &Instance, context: &Context) -> bool {
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
    fn owner(&self) -> String {
        format!(
            "{}/{}",
            self.run,
            self.next_owner.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn running_create(&self, service: &str, name: &str) -> Option<Attempt> {
        self.creates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(service.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The instance's lock: one action changes an instance at a time, in
    /// the order they asked for it. Taken while the request is still there
    /// (a request dropped while it waits never happened), then held by the
    /// action's own task to its end.
    async fn lock(self: &Arc<Self>, service: &str, name: &str) -> InstanceLock {
        let key = (service.to_owned(), name.to_owned());
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        InstanceLock {
            guard: Some(lock.lock_owned().await),
            steward: self.clone(),
            key,
        }
    }
}

/// Held while an action changes an instance; forgets the lock when no one
/// else waits for it.
struct InstanceLock {
    guard: Option<OwnedMutexGuard<()>>,
    steward: Arc<Steward>,
    key: InstanceKey,
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
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
struct CreateDone {
    steward: Arc<Steward>,
    key: InstanceKey,
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

/// The plugin a request runs on, and its place among the service's
/// requests at once, held until the request ends.
struct Pinned {
    plugin: Arc<dyn Plugin>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pinned {
    type Target = dyn Plugin;
    fn deref(&self) -> &(dyn Plugin + 'static) {
        self.plugin.as_ref()
    }
}

/// The plugin serving a service, replaced as one piece by a swap.
pub struct Active {
    pub plugin: Arc<dyn Plugin>,
    /// `None` for a plugin that is not a wasm component.
    pub version: Option<ActiveVersion>,
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(active) = &self.version {
            tracing::debug!(
                sha256 = %active.version.sha256,
                "plugin version released: no request runs on it any more"
            );
        }
    }
}

/// Which wasm component serves a service, and how it came to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveVersion {
    pub version: PluginVersion,
    pub compiled_from: CompiledFrom,
    /// How long loading took (reading, compiling or loading from the cache, checking).
    pub took: std::time::Duration,
    /// When it started serving.
    pub loaded_at: jiff::Timestamp,
    /// Why it is serving.
    pub source: Source,
}

/// What put a plugin version in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The plugin file named in the config, at start.
    ConfigFile,
    /// A change to the plugin file or the config file, seen while running.
    FileChange,
    /// An upload through the admin API.
    Upload,
    /// A rollback through the admin API.
    Rollback,
    /// The version that served before the restart, kept in `data_dir`.
    Kept,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::ConfigFile => "config-file",
            Source::FileChange => "file-change",
            Source::Upload => "upload",
            Source::Rollback => "rollback",
            Source::Kept => "kept",
        }
    }
}

/// Why an action was not done. Every message is a sentence for the person
/// running `tsuru`, who sees it word for word.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("instance \"{instance}\" does not exist in service \"{service}\"")]
    UnknownInstance { service: String, instance: String },
    #[error("instance \"{instance}\" already exists in service \"{service}\"; choose another name")]
    Duplicate { service: String, instance: String },
    #[error(
        "instance \"{instance}\" of service \"{service}\" is still being created; try again once its create has ended"
    )]
    BeingCreated {
        service: String,
        instance: String,
        action: Action,
    },
    #[error(
        "instance \"{instance}\" is not ready yet ({note}); try again once `tsuru service instance status` says it is up"
    )]
    NotReady { instance: String, note: String },
    #[error("service \"{service}\" does not support {}", unsupported_what(*.action))]
    Unsupported { service: String, action: Action },
    /// The plugin's own answer.
    #[error("{}", describe_refusal(.service, .refusal))]
    Refused { service: String, refusal: Refusal },
    #[error("plugin \"{service}\" stopped: {stop}")]
    Stopped { service: String, stop: Stop },
    #[error("{}", busy(.service, *.limit, *.waited))]
    Busy {
        service: String,
        limit: u32,
        waited: std::time::Duration,
    },
    #[error(
        "the host is already running as many plugin calls as it may at once (max_instances) and none ended within queue_wait_ms; try again in a moment"
    )]
    HostBusy,
    #[error(
        "the {} of instance \"{instance}\" in service \"{service}\" ended without an answer; the host's log says why",
        .action.as_str()
    )]
    Interrupted {
        service: String,
        action: Action,
        instance: String,
    },
    /// The answer of a create this request waited on, shared with every request that waited.
    #[error(transparent)]
    Shared(Arc<ActionError>),
    #[error("service \"{service}\" could not reach its ledger for the {} of instance \"{instance}\"; try again", .action.as_str())]
    Ledger {
        service: String,
        action: Action,
        instance: String,
        #[source]
        source: anyhow::Error,
    },
}

fn busy(service: &str, limit: u32, waited: std::time::Duration) -> String {
    let waited = if waited.is_zero() {
        String::new()
    } else {
        format!(
            " and none ended within {}",
            crate::runtime::humanize(waited)
        )
    };
    format!(
        "service \"{service}\" is already running as many requests as it may at once ({limit}){waited}; try again in a moment"
    )
}

fn unsupported_what(action: Action) -> &'static str {
    match action {
        Action::Plans => "listing plans",
        Action::Info => "instance info",
        Action::Status => "reporting instance status",
        Action::Proxy => "proxied requests",
        Action::Create => "creating instances",
        Action::Update => "updating instances",
        Action::Remove => "removing instances",
        Action::BindApp => "binding apps",
        Action::UnbindApp => "unbinding apps",
        Action::BindJob => "binding jobs",
        Action::UnbindJob => "unbinding jobs",
    }
}

/// The sentence a plugin's refusal is answered with.
pub(crate) fn describe_refusal(service: &str, refusal: &Refusal) -> String {
    match refusal {
        Refusal::Invalid(sentence)
        | Refusal::NotFound(sentence)
        | Refusal::Conflict(sentence)
        | Refusal::NotReady(sentence)
        | Refusal::Failed(sentence)
            if !sentence.trim().is_empty() =>
        {
            sentence.trim().to_owned()
        }
        Refusal::MissingParams(names) => format!(
            "service \"{service}\" needs these parameters: {}",
            names.join(", ")
        ),
        Refusal::Unsupported => format!("service \"{service}\" does not support this action"),
        _ => format!("service \"{service}\" refused the request without saying why"),
    }
}

/// How a create ended; a retry of the same event gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Created {
    Ready,
    Pending,
}

/// What a bind or unbind is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Bindee {
    App(AppBinding),
    Job(JobBinding),
}

impl Bindee {
    fn name(&self) -> &str {
        match self {
            Bindee::App(app) => &app.app_name,
            Bindee::Job(job) => &job.job_name,
        }
    }

    fn kind(&self) -> BindingKind {
        match self {
            Bindee::App(_) => BindingKind::App,
            Bindee::Job(_) => BindingKind::Job,
        }
    }

    fn bind_action(&self) -> Action {
        match self {
            Bindee::App(_) => Action::BindApp,
            Bindee::Job(_) => Action::BindJob,
        }
    }

    fn unbind_action(&self) -> Action {
        match self {
            Bindee::App(_) => Action::UnbindApp,
            Bindee::Job(_) => Action::UnbindJob,
        }
    }
}

/// What tsuru sends to update an instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceUpdate {
    /// Empty means "keep the current plan".
    pub plan: Option<String>,
    pub team: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub parameters: Map<String, Value>,
}

impl Service {
    /// A service on a ledger of its own making: for embedding Orizuru with
    /// plugins of another kind, and for tests.
    pub fn new(config: ServiceConfig, plugin: Arc<dyn Plugin>, ledger: Arc<dyn Ledger>) -> Self {
        Self::serving(
            config,
            Active {
                plugin,
                version: None,
            },
            Steward::new(
                ledger,
                Arc::new(Metrics::new()),
                std::time::Duration::from_millis(crate::config::DEFAULT_QUEUE_WAIT_MS),
                crate::ledger::Retention::default().replay_window,
            ),
        )
    }

    /// A service whose plugin is `active`, among the services `steward` keeps.
    pub fn serving(config: ServiceConfig, active: Active, steward: Arc<Steward>) -> Self {
        let permits = usize::try_from(config.max_instances).unwrap_or(usize::MAX);
        Self {
            config,
            active: ArcSwap::from_pointee(active),
            running: Arc::new(Semaphore::new(permits)),
            steward,
        }
    }

    /// The plugin serving now. A request takes it once and keeps it.
    pub fn active(&self) -> Arc<Active> {
        self.active.load_full()
    }

    /// Puts `next` in service for the requests that start from now on, and
    /// gives back the one it replaces; requests running on that one finish on it.
    pub fn swap(&self, next: Active) -> Arc<Active> {
        self.active.swap(Arc::new(next))
    }

    /// The wasm component serving this service; `None` for a plugin that is not wasm.
    pub fn version(&self) -> Option<ActiveVersion> {
        self.active.load().version.clone()
    }

    /// Plugin calls of this service running now.
    pub fn in_use(&self) -> usize {
        let permits = usize::try_from(self.config.max_instances).unwrap_or(usize::MAX);
        permits.saturating_sub(self.running.available_permits())
    }

    pub fn steward(&self) -> &Arc<Steward> {
        &self.steward
    }

    fn ledger(&self) -> &dyn Ledger {
        self.steward.ledger.as_ref()
    }

    /// The active plugin, for the rest of this request, once the service
    /// runs fewer requests than it may; refused when none ends within the
    /// queue wait.
    async fn plugin(&self) -> Result<Pinned, ActionError> {
        let permit = crate::runtime::within(
            &self.running,
            self.steward.queue_wait,
            &self.steward.metrics,
            self.id(),
        )
        .await;
        let Some(permit) = permit else {
            tracing::warn!(
                service = self.id(),
                limit = self.config.max_instances,
                "request refused: the service ran as many plugin calls as it may for the whole queue wait (max_instances, queue_wait_ms)"
            );
            return Err(ActionError::Busy {
                service: self.id().to_owned(),
                limit: self.config.max_instances,
                waited: self.steward.queue_wait,
            });
        };
        Ok(Pinned {
            plugin: self.active.load().plugin.clone(),
            _permit: permit,
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub async fn plans(&self, context: Context) -> Result<Vec<Plan>, ActionError> {
        match self.plugin().await?.plans(context).await {
            Err(Failure::Refused(Refusal::Unsupported)) => Ok(Vec::new()),
            outcome => outcome.map_err(|failure| self.failure(Action::Plans, failure)),
        }
    }

    /// Creates an instance: recorded whole, or nothing at all.
    ///
    /// Once begun, a create runs to its end whatever happens to the request.
    /// A create of the same name asking the same (same team, plan and
    /// parameters, or the same tsuru event) while it runs waits for it and
    /// gets its answer; after it ended, it gets the same answer again. Any
    /// other create of the name is refused.
    pub async fn create(
        self: &Arc<Self>,
        instance: Instance,
        context: Context,
    ) -> Result<Created, ActionError> {
        let name = instance.name.clone();
        if let Some(created) = self.replayed(Action::Create, &name, "", &context).await? {
            return Ok(created);
        }
        let key = (self.id().to_owned(), name.clone());
        let running = self.steward.running_create(self.id(), &name);
        let mut outcome = match running {
            Some(attempt) if attempt.retried_by(&instance, &context) => {
                tracing::info!(
                    service = self.id(),
                    instance = name,
                    "the same create is running: waiting for its answer"
                );
                attempt.outcome
            }
            Some(_) => {
                return Err(ActionError::Duplicate {
                    service: self.id().to_owned(),
                    instance: name,
                });
            }
            None => {
                // In line behind the actions on this name that came first;
                // whoever held the lock has ended, and left the list of
                // creates running, by the time it is ours.
                let lock = self.steward.lock(self.id(), &name).await;
                let (answer, outcome) = watch::channel(None);
                let attempt = Attempt {
                    asked: Asked::of(&instance),
                    event_id: context.event_id.clone(),
                    outcome: outcome.clone(),
                };
                self.steward
                    .creates
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.clone(), attempt);
                let (service, steward) = (self.clone(), self.steward.clone());
                self.steward.work.spawn(async move {
                    // Dropped in reverse: off the list of creates running, then unlocked.
                    let _lock = lock;
                    let _done = CreateDone { steward, key };
                    let created = service.run_create(instance, context).await;
                    answer.send_replace(Some(created.map_err(Arc::new)));
                });
                outcome
            }
        };
        let ended = outcome
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|ended| ended.clone());
        match ended {
            Some(created) => created.map_err(ActionError::Shared),
            None => Err(ActionError::Interrupted {
                service: self.id().to_owned(),
                action: Action::Create,
                instance: name,
            }),
        }
    }

    async fn run_create(
        &self,
        instance: Instance,
        context: Context,
    ) -> Result<Created, ActionError> {
        let name = instance.name.clone();
        let mut found = self.find(Action::Create, &name).await?;
        if let Some(orphan) = found.take_if(|found| found.state == InstanceState::Creating) {
            // Under this lock no create of this host holds the name: it is
            // one that never ended (a killed run, a ledger that failed). Undo it first.
            self.undo_orphan(orphan, context.clone()).await?;
        }
        if let Some(current) = found {
            // tsuru retries a create it gave up on within minutes; long
            // after, the same ask is someone else's, and a duplicate.
            if Asked::of(&current.instance) == Asked::of(&instance)
                && self.created_lately(&name).await?
            {
                tracing::info!(
                    service = self.id(),
                    instance = name,
                    "a create asking what an ended one asked: answered as that one ended"
                );
                return Ok(match current.state {
                    InstanceState::Pending => Created::Pending,
                    _ => Created::Ready,
                });
            }
            return Err(ActionError::Duplicate {
                service: self.id().to_owned(),
                instance: name,
            });
        }
        let plugin = self.plugin().await?;
        let owner = self.steward.owner();
        let reserved = self
            .ledger()
            .reserve(self.id(), &instance, &owner)
            .await
            .map_err(|source| self.ledger_error(Action::Create, &name, source))?;
        if !reserved {
            // Taken between the look and the reservation: by another host.
            return Err(self.being_created(Action::Create, &name));
        }
        let provisioned = match plugin.create(instance.clone(), context.clone()).await {
            Ok(provisioned) => provisioned,
            Err(failure) => {
                // A plugin stopped halfway may have made part of it: undo that.
                if let Failure::Stopped(stop) = &failure
                    && !matches!(stop, Stop::Busy)
                {
                    self.undo_create(&*plugin, instance, context.clone()).await;
                }
                let error = self.failure(Action::Create, failure);
                let release = vec![Change::Release {
                    instance: name.clone(),
                    owner,
                }];
                self.record_failure(Action::Create, &name, "", &context, release, &error)
                    .await;
                return Err(error);
            }
        };
        let (record, created) = match provisioned {
            Provisioned::Ready(data) => (
                with_state(instance, data, InstanceState::Ready),
                Created::Ready,
            ),
            Provisioned::Pending(data) => (
                with_state(instance, data, InstanceState::Pending),
                Created::Pending,
            ),
        };
        let made = record.instance.clone();
        let settle = vec![Change::Settle {
            record,
            owner: owner.clone(),
        }];
        if let Err(error) = self
            .record(Action::Create, &name, "", &context, settle, &created)
            .await
        {
            // The service made it but the ledger does not know: undo it, so
            // that tsuru and the service never disagree.
            self.undo_create(&*plugin, made, context).await;
            self.release(&name, owner).await;
            return Err(error);
        }
        Ok(created)
    }

    pub async fn update(
        self: &Arc<Self>,
        name: &str,
        update: InstanceUpdate,
        context: Context,
    ) -> Result<(), ActionError> {
        if self
            .replayed::<Value>(Action::Update, name, "", &context)
            .await?
            .is_some()
        {
            return Ok(());
        }
        self.change(Action::Update, name, |service, name| async move {
            service.run_update(&name, update, context).await
        })
        .await
    }

    async fn run_update(
        &self,
        name: &str,
        update: InstanceUpdate,
        context: Context,
    ) -> Result<(), ActionError> {
        let current = self.load(Action::Update, name).await?;
        let next = Instance {
            name: name.to_owned(),
            plan: update
                .plan
                .filter(|plan| !plan.is_empty())
                .or(current.instance.plan.clone()),
            team: update.team.or(current.instance.team.clone()),
            description: update.description,
            tags: update.tags,
            parameters: update.parameters,
            data: current.instance.data.clone(),
        };
        let outcome = self
            .plugin()
            .await?
            .update(current.instance, next.clone(), context.clone())
            .await;
        let provisioned = self
            .checked(Action::Update, name, "", &context, outcome)
            .await?;
        let record = match provisioned {
            Provisioned::Ready(data) => with_state(next, data, InstanceState::Ready),
            Provisioned::Pending(data) => with_state(next, data, InstanceState::Pending),
        };
        self.record(
            Action::Update,
            name,
            "",
            &context,
            vec![Change::Put(record)],
            &Value::Null,
        )
        .await
    }

    /// Removes an instance; answers success only when nothing of it remains.
    ///
    /// tsuru follows a create it could not record with a remove, its
    /// rollback: a remove that finds that create still running waits for it
    /// to end, then removes what it made.
    pub async fn remove(self: &Arc<Self>, name: &str, context: Context) -> Result<(), ActionError> {
        if self
            .replayed::<Value>(Action::Remove, name, "", &context)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let waited = match self.steward.running_create(self.id(), name) {
            Some(_) => {
                tracing::info!(
                    service = self.id(),
                    instance = name,
                    "a remove of an instance still being created: waiting for its create to end"
                );
                true
            }
            None => false,
        };
        // Waits for the create (which holds the lock to its end), if one runs.
        let lock = self.steward.lock(self.id(), name).await;
        let (service, owned) = (self.clone(), name.to_owned());
        let work = async move { service.run_remove(&owned, context, waited).await };
        self.detached(Action::Remove, name, lock, work).await
    }

    /// Removes an instance; the caller holds its lock.
    async fn run_remove(
        &self,
        name: &str,
        context: Context,
        waited: bool,
    ) -> Result<(), ActionError> {
        let Some(current) = self.find(Action::Remove, name).await? else {
            if waited {
                // The create it waited for made nothing: nothing remains.
                return self
                    .record(Action::Remove, name, "", &context, Vec::new(), &Value::Null)
                    .await;
            }
            return Err(self.unknown(name));
        };
        if current.state == InstanceState::Creating {
            // Under this lock no create of this host holds the name.
            return self.undo_orphan(current, context).await;
        }
        let outcome = undo(
            self.plugin()
                .await?
                .remove(current.instance, context.clone())
                .await,
        );
        self.checked(Action::Remove, name, "", &context, outcome)
            .await?;
        let changes = vec![Change::Remove {
            instance: name.to_owned(),
        }];
        self.record(Action::Remove, name, "", &context, changes, &Value::Null)
            .await
    }

    /// Undoes the creates an earlier run of the host began and never ended
    /// (it was killed): through the plugin's `remove`, then out of the ledger.
    pub async fn recover(self: &Arc<Self>) {
        let orphans = match self.ledger().orphans(self.id(), &self.steward.run).await {
            Ok(orphans) => orphans,
            Err(err) => {
                tracing::error!(
                    service = self.id(),
                    "cannot look for creates an earlier run left unfinished: {err:#}"
                );
                return;
            }
        };
        for orphan in orphans {
            let name = orphan.instance.name;
            let context = Context {
                user: Some("orizuru".into()),
                ..Context::default()
            };
            let _lock = self.steward.lock(self.id(), &name).await;
            // Looked at again under the lock: a remove may have undone it meanwhile.
            let orphan = match self.find(Action::Remove, &name).await {
                Ok(Some(orphan)) if orphan.state == InstanceState::Creating => orphan,
                Ok(_) => continue,
                Err(err) => {
                    tracing::error!(service = self.id(), instance = name, "{err}");
                    continue;
                }
            };
            if let Err(err) = self.undo_orphan(orphan, context).await {
                tracing::error!(
                    service = self.id(),
                    instance = name,
                    "a create an earlier run of the host never ended could not be undone; the next create or remove of the name tries again: {err}"
                );
            }
        }
    }

    /// Undoes a create no request of this host runs any more, which may
    /// have made something, through the plugin's `remove`; then the name is free.
    async fn undo_orphan(
        &self,
        orphan: InstanceRecord,
        context: Context,
    ) -> Result<(), ActionError> {
        let name = orphan.instance.name.clone();
        let outcome = undo(
            self.plugin()
                .await?
                .remove(orphan.instance, context.clone())
                .await,
        );
        self.checked(Action::Remove, &name, "", &context, outcome)
            .await?;
        let error = ActionError::Interrupted {
            service: self.id().to_owned(),
            action: Action::Create,
            instance: name.clone(),
        };
        let changes = vec![Change::Remove {
            instance: name.clone(),
        }];
        self.record_failure(Action::Create, &name, "", &context, changes, &error)
            .await;
        // Whether it is gone: the record above may have failed too.
        match self.find(Action::Remove, &name).await? {
            None => {
                tracing::warn!(
                    service = self.id(),
                    instance = name,
                    "undid a create that never ended (the host was stopped or its ledger failed)"
                );
                Ok(())
            }
            Some(_) => Err(self.ledger_error(
                Action::Remove,
                &name,
                anyhow::anyhow!("the undone create of {name} is still in the ledger"),
            )),
        }
    }

    pub async fn info(&self, name: &str, context: Context) -> Result<Vec<InfoItem>, ActionError> {
        let current = self.load(Action::Info, name).await?;
        match self.plugin().await?.info(current.instance, context).await {
            Err(Failure::Refused(Refusal::Unsupported)) => Ok(Vec::new()),
            outcome => outcome.map_err(|failure| self.failure(Action::Info, failure)),
        }
    }

    /// How the instance is. One still being created is pending, whatever the
    /// plugin would say: it is not an instance yet.
    pub async fn status(&self, name: &str, context: Context) -> Result<Status, ActionError> {
        let current = match self.load(Action::Status, name).await {
            Err(ActionError::BeingCreated { .. }) => {
                return Ok(Status::Pending(format!(
                    "instance \"{name}\" is still being created"
                )));
            }
            loaded => loaded?,
        };
        self.health(&*self.plugin().await?, current, context).await
    }

    /// Binds an app or a job: the env vars it gets.
    pub async fn bind(
        self: &Arc<Self>,
        name: &str,
        bindee: Bindee,
        context: Context,
    ) -> Result<Env, ActionError> {
        let (action, target) = (bindee.bind_action(), bindee.name().to_owned());
        if let Some(env) = self.replayed(action, name, &target, &context).await? {
            return Ok(env);
        }
        self.change(action, name, |service, name| async move {
            service.run_bind(&name, bindee, context).await
        })
        .await
    }

    async fn run_bind(
        &self,
        name: &str,
        bindee: Bindee,
        context: Context,
    ) -> Result<Env, ActionError> {
        let (action, kind, target) = (
            bindee.bind_action(),
            bindee.kind(),
            bindee.name().to_owned(),
        );
        let plugin = self.plugin().await?;
        let current = self.ready(&*plugin, action, name, &context).await?;
        let outcome = match bindee {
            Bindee::App(app) => {
                plugin
                    .bind_app(current.instance, app, context.clone())
                    .await
            }
            Bindee::Job(job) => {
                plugin
                    .bind_job(current.instance, job, context.clone())
                    .await
            }
        };
        let env = self
            .checked(action, name, &target, &context, outcome)
            .await?;
        let binding = Binding {
            kind,
            target: target.clone(),
            env: env.clone(),
        };
        let changes = vec![Change::Bind {
            instance: name.to_owned(),
            binding,
        }];
        self.record(action, name, &target, &context, changes, &env)
            .await?;
        Ok(env)
    }

    /// Unbinds an app or a job; also what tsuru calls after a bind that
    /// failed half-way, so an app the ledger never bound still reaches the plugin.
    pub async fn unbind(
        self: &Arc<Self>,
        name: &str,
        bindee: Bindee,
        context: Context,
    ) -> Result<(), ActionError> {
        let (action, target) = (bindee.unbind_action(), bindee.name().to_owned());
        if self
            .replayed::<Value>(action, name, &target, &context)
            .await?
            .is_some()
        {
            return Ok(());
        }
        self.change(action, name, |service, name| async move {
            service.run_unbind(&name, bindee, context).await
        })
        .await
    }

    async fn run_unbind(
        &self,
        name: &str,
        bindee: Bindee,
        context: Context,
    ) -> Result<(), ActionError> {
        let (action, kind, target) = (
            bindee.unbind_action(),
            bindee.kind(),
            bindee.name().to_owned(),
        );
        let current = self.load(action, name).await?;
        let plugin = self.plugin().await?;
        let outcome = match bindee {
            Bindee::App(app) => {
                plugin
                    .unbind_app(current.instance, app, context.clone())
                    .await
            }
            Bindee::Job(job) => {
                plugin
                    .unbind_job(current.instance, job, context.clone())
                    .await
            }
        };
        self.checked(action, name, &target, &context, undo(outcome))
            .await?;
        let changes = vec![Change::Unbind {
            instance: name.to_owned(),
            kind,
            target: target.clone(),
        }];
        self.record(action, name, &target, &context, changes, &Value::Null)
            .await
    }

    /// Forwards a request as it came: to an instance, or to the service when
    /// `name` is `None`.
    pub async fn proxy(
        &self,
        name: Option<&str>,
        request: ProxyRequest,
        context: Context,
    ) -> Result<ProxyResponse, ActionError> {
        let instance = match name {
            Some(name) => Some(self.load(Action::Proxy, name).await?.instance),
            None => None,
        };
        self.plugin()
            .await?
            .proxy(instance, request, context)
            .await
            .map_err(|failure| self.failure(Action::Proxy, failure))
    }

    /// Changes an existing instance: refused at once while it is being
    /// created, else in line for its lock, then run by `run` as a task of
    /// its own.
    async fn change<T, F>(
        self: &Arc<Self>,
        action: Action,
        name: &str,
        run: impl FnOnce(Arc<Self>, String) -> F,
    ) -> Result<T, ActionError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ActionError>> + Send + 'static,
    {
        self.not_being_created(action, name)?;
        let lock = self.steward.lock(self.id(), name).await;
        let work = run(self.clone(), name.to_owned());
        self.detached(action, name, lock, work).await
    }

    /// Runs an action that changes an instance as a task of its own,
    /// holding the instance's lock, so that it ends, recorded, whatever
    /// happens to the request.
    async fn detached<T: Send + 'static>(
        &self,
        action: Action,
        name: &str,
        lock: InstanceLock,
        work: impl Future<Output = Result<T, ActionError>> + Send + 'static,
    ) -> Result<T, ActionError> {
        let work = async move {
            let _lock = lock;
            work.await
        };
        match self.steward.work.spawn(work).await {
            Ok(ended) => ended,
            Err(err) => {
                tracing::error!(
                    service = self.id(),
                    action = action.as_str(),
                    instance = name,
                    "an action ended without an answer: {err}"
                );
                Err(ActionError::Interrupted {
                    service: self.id().to_owned(),
                    action,
                    instance: name.to_owned(),
                })
            }
        }
    }

    /// The instance as the ledger holds it, reservations included.
    async fn find(
        &self,
        action: Action,
        name: &str,
    ) -> Result<Option<InstanceRecord>, ActionError> {
        self.ledger()
            .instance(self.id(), name)
            .await
            .map_err(|source| self.ledger_error(action, name, source))
    }

    /// The instance, once its create has ended.
    async fn load(&self, action: Action, name: &str) -> Result<InstanceRecord, ActionError> {
        match self.find(action, name).await? {
            None => Err(self.unknown(name)),
            Some(record) if record.state == InstanceState::Creating => {
                Err(self.being_created(action, name))
            }
            Some(record) => Ok(record),
        }
    }

    /// Whether the instance's create ended within the replay window.
    async fn created_lately(&self, name: &str) -> Result<bool, ActionError> {
        let events = self
            .ledger()
            .events(self.id(), name)
            .await
            .map_err(|source| self.ledger_error(Action::Create, name, source))?;
        let since = crate::ledger::timestamp(
            jiff::Timestamp::now()
                .checked_sub(
                    jiff::SignedDuration::try_from(self.steward.replay_window)
                        .unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(jiff::Timestamp::MIN),
        );
        Ok(events
            .iter()
            .rev()
            .find(|event| {
                event.action == Action::Create.as_str()
                    && matches!(event.outcome, EventOutcome::Succeeded(_))
            })
            .is_some_and(|created| created.at >= since))
    }

    /// Refused at once while a create of the name runs on this host.
    fn not_being_created(&self, action: Action, name: &str) -> Result<(), ActionError> {
        match self.steward.running_create(self.id(), name) {
            Some(_) => Err(self.being_created(action, name)),
            None => Ok(()),
        }
    }

    fn being_created(&self, action: Action, name: &str) -> ActionError {
        ActionError::BeingCreated {
            service: self.id().to_owned(),
            instance: name.to_owned(),
            action,
        }
    }

    fn unknown(&self, name: &str) -> ActionError {
        ActionError::UnknownInstance {
            service: self.id().to_owned(),
            instance: name.to_owned(),
        }
    }

    /// Asks the plugin how the instance is, and records that a pending one is up.
    async fn health(
        &self,
        plugin: &dyn Plugin,
        current: InstanceRecord,
        context: Context,
    ) -> Result<Status, ActionError> {
        let status = plugin
            .status(current.instance.clone(), context)
            .await
            .map_err(|failure| self.failure(Action::Status, failure))?;
        if status == Status::Up && current.state == InstanceState::Pending {
            let name = current.instance.name;
            let promote = vec![Change::Promote {
                instance: name.clone(),
            }];
            self.ledger()
                .commit(self.id(), promote, None)
                .await
                .map_err(|source| self.ledger_error(Action::Status, &name, source))?;
        }
        Ok(status)
    }

    /// The instance, once it is ready to be bound: a pending one is asked
    /// for its status first, and answers "not ready" until it is up.
    async fn ready(
        &self,
        plugin: &dyn Plugin,
        action: Action,
        name: &str,
        context: &Context,
    ) -> Result<InstanceRecord, ActionError> {
        let current = self.load(action, name).await?;
        if current.state == InstanceState::Ready {
            return Ok(current);
        }
        let note = match self
            .health(plugin, current.clone(), context.clone())
            .await?
        {
            Status::Up => {
                return Ok(InstanceRecord {
                    state: InstanceState::Ready,
                    ..current
                });
            }
            Status::Pending(note) | Status::Down(note) | Status::Custom(note) => note,
        };
        Err(ActionError::NotReady {
            instance: name.to_owned(),
            note: if note.trim().is_empty() {
                "still provisioning".to_owned()
            } else {
                note.trim().to_owned()
            },
        })
    }

    /// The answer recorded for an earlier success of the same tsuru event.
    async fn replayed<T: DeserializeOwned>(
        &self,
        action: Action,
        instance: &str,
        target: &str,
        context: &Context,
    ) -> Result<Option<T>, ActionError> {
        let Some(event_id) = context.event_id.as_deref().filter(|id| !id.is_empty()) else {
            return Ok(None);
        };
        let answer = self
            .ledger()
            .replay(self.id(), action, instance, target, event_id)
            .await
            .map_err(|source| self.ledger_error(action, instance, source))?;
        let Some(answer) = answer else {
            return Ok(None);
        };
        match serde_json::from_value(answer) {
            Ok(answer) => {
                tracing::info!(
                    service = self.id(),
                    action = action.as_str(),
                    instance,
                    event_id,
                    "answered a retried tsuru event from the ledger"
                );
                Ok(Some(answer))
            }
            Err(err) => {
                tracing::warn!(
                    service = self.id(),
                    event_id,
                    "a recorded answer does not fit; calling the plugin again: {err}"
                );
                Ok(None)
            }
        }
    }

    /// A plugin's answer, or the error it means, with failures recorded.
    async fn checked<T>(
        &self,
        action: Action,
        instance: &str,
        target: &str,
        context: &Context,
        outcome: Outcome<T>,
    ) -> Result<T, ActionError> {
        match outcome {
            Ok(answer) => Ok(answer),
            Err(failure) => {
                let error = self.failure(action, failure);
                self.record_failure(action, instance, target, context, Vec::new(), &error)
                    .await;
                Err(error)
            }
        }
    }

    async fn record<T: Serialize>(
        &self,
        action: Action,
        instance: &str,
        target: &str,
        context: &Context,
        changes: Vec<Change>,
        answer: &T,
    ) -> Result<(), ActionError> {
        let answer = serde_json::to_value(answer)
            .map_err(|err| self.ledger_error(action, instance, err.into()))?;
        let event = event(
            action,
            instance,
            target,
            context,
            EventOutcome::Succeeded(answer),
        );
        self.ledger()
            .commit(self.id(), changes, Some(event))
            .await
            .map_err(|source| self.ledger_error(action, instance, source))
    }

    async fn record_failure(
        &self,
        action: Action,
        instance: &str,
        target: &str,
        context: &Context,
        changes: Vec<Change>,
        error: &ActionError,
    ) {
        let event = event(
            action,
            instance,
            target,
            context,
            EventOutcome::Failed(error.to_string()),
        );
        if let Err(err) = self.ledger().commit(self.id(), changes, Some(event)).await {
            tracing::error!(
                service = self.id(),
                action = action.as_str(),
                instance,
                "cannot record a failed action in the ledger: {err:#}"
            );
        }
    }

    /// Asks the plugin to remove what a create made that will not be recorded.
    async fn undo_create(&self, plugin: &dyn Plugin, instance: Instance, context: Context) {
        let name = instance.name.clone();
        match undo(plugin.remove(instance, context).await) {
            Ok(()) => tracing::warn!(
                service = self.id(),
                instance = name,
                "removed what a create made that the ledger will not record"
            ),
            Err(failure) => tracing::error!(
                service = self.id(),
                instance = name,
                "a create the ledger will not record may still be provisioned; its removal failed: {}",
                self.failure(Action::Remove, failure)
            ),
        }
    }

    /// Gives up a reservation after its create was undone.
    async fn release(&self, name: &str, owner: String) {
        let release = vec![Change::Release {
            instance: name.to_owned(),
            owner,
        }];
        if let Err(err) = self.ledger().commit(self.id(), release, None).await {
            tracing::error!(
                service = self.id(),
                instance = name,
                "cannot release the name of an undone create; the next start of the host undoes it: {err:#}"
            );
        }
    }

    fn failure(&self, action: Action, failure: Failure) -> ActionError {
        let service = self.id().to_owned();
        match failure {
            Failure::Refused(Refusal::Unsupported) => ActionError::Unsupported { service, action },
            Failure::Refused(refusal) => ActionError::Refused { service, refusal },
            Failure::Stopped(Stop::Busy) => ActionError::HostBusy,
            Failure::Stopped(stop) => ActionError::Stopped { service, stop },
        }
    }

    fn ledger_error(&self, action: Action, instance: &str, source: anyhow::Error) -> ActionError {
        tracing::error!(
            service = self.id(),
            action = action.as_str(),
            instance,
            "ledger failure: {source:#}"
        );
        ActionError::Ledger {
            service: self.id().to_owned(),
            action,
            instance: instance.to_owned(),
            source,
        }
    }
}

/// An undo (remove, unbind) is done when the plugin has nothing to undo:
/// it does not support the action, or the thing is already gone.
fn undo(outcome: Outcome<()>) -> Outcome<()> {
    match outcome {
        Err(Failure::Refused(Refusal::Unsupported | Refusal::NotFound(_))) => Ok(()),
        other => other,
    }
}

fn with_state(instance: Instance, data: Option<String>, state: InstanceState) -> InstanceRecord {
    InstanceRecord {
        instance: Instance {
            data: data.or(instance.data),
            ..instance
        },
        state,
    }
}

fn event(
    action: Action,
    instance: &str,
    target: &str,
    context: &Context,
    outcome: EventOutcome,
) -> Event {
    Event {
        action,
        instance: instance.to_owned(),
        target: target.to_owned(),
        event_id: context.event_id.clone(),
        user: context.user.clone(),
        outcome,
    }
}

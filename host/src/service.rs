//! What each tsuru action does for one service: the ledger's checks (unknown
//! instance, duplicate create, retried event), the plugin call, the record.
//! The HTTP contract turns the results into tsuru's statuses and bodies.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::ServiceConfig;
use crate::ledger::{Binding, BindingKind, Change, Event, EventOutcome, InstanceRecord, Ledger};
use crate::model::{
    Action, AppBinding, Context, Env, InfoItem, Instance, InstanceState, JobBinding, Plan,
    Provisioned, ProxyRequest, ProxyResponse, Refusal, Status,
};
use crate::runtime::{Failure, Origin, Outcome, Plugin, Stop};

/// One tsuru service: its config, its plugin and its share of the ledger.
///
/// The plugin can be swapped while requests run: each request takes the
/// active plugin once, when it starts, and makes every call of that request
/// to it, so a request never sees two versions; a version is dropped when
/// the last request holding it ends.
pub struct Service {
    config: ServiceConfig,
    active: ArcSwap<Active>,
    /// One permit per request running the plugin; none left means 503.
    running: Arc<Semaphore>,
    ledger: Arc<dyn Ledger>,
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
    pub version: Option<PluginVersion>,
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(version) = &self.version {
            tracing::debug!(
                sha256 = %version.sha256,
                "plugin version released: no request runs on it any more"
            );
        }
    }
}

/// Which wasm component serves a service, and how it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    /// The sha256 of the component, in hex.
    pub sha256: String,
    pub size: usize,
    /// The version of `orizuru:service/handler` it exports.
    pub wit: String,
    pub origin: Origin,
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
    #[error(
        "service \"{service}\" is already running as many requests as it may at once ({limit}); try again in a moment"
    )]
    Busy { service: String, limit: u32 },
    #[error("service \"{service}\" could not reach its ledger for the {} of instance \"{instance}\"; try again", .action.as_str())]
    Ledger {
        service: String,
        action: Action,
        instance: String,
        #[source]
        source: anyhow::Error,
    },
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
    pub fn new(config: ServiceConfig, plugin: Arc<dyn Plugin>, ledger: Arc<dyn Ledger>) -> Self {
        Self::serving(
            config,
            Active {
                plugin,
                version: None,
            },
            ledger,
        )
    }

    /// A service whose plugin is `active`.
    pub fn serving(config: ServiceConfig, active: Active, ledger: Arc<dyn Ledger>) -> Self {
        let permits = usize::try_from(config.max_instances).unwrap_or(usize::MAX);
        Self {
            config,
            active: ArcSwap::from_pointee(active),
            running: Arc::new(Semaphore::new(permits)),
            ledger,
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
    pub fn version(&self) -> Option<PluginVersion> {
        self.active.load().version.clone()
    }

    /// Plugin calls of this service running now.
    pub fn in_use(&self) -> usize {
        let permits = usize::try_from(self.config.max_instances).unwrap_or(usize::MAX);
        permits.saturating_sub(self.running.available_permits())
    }

    /// The active plugin, for the rest of this request; refused when the
    /// service already runs as many requests as it may.
    fn plugin(&self) -> Result<Pinned, ActionError> {
        let permit = self.running.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!(
                service = self.id(),
                limit = self.config.max_instances,
                "request refused: the service runs as many plugin calls as it may"
            );
            ActionError::Busy {
                service: self.id().to_owned(),
                limit: self.config.max_instances,
            }
        })?;
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
        match self.plugin()?.plans(context).await {
            Err(Failure::Refused(Refusal::Unsupported)) => Ok(Vec::new()),
            outcome => outcome.map_err(|failure| self.failure(Action::Plans, failure)),
        }
    }

    pub async fn create(
        &self,
        instance: Instance,
        context: Context,
    ) -> Result<Created, ActionError> {
        let name = instance.name.clone();
        if let Some(created) = self.replayed(Action::Create, &name, "", &context).await? {
            return Ok(created);
        }
        let plugin = self.plugin()?;
        // No create runs past its deadline: a reservation older than that
        // was left by a crash or a ledger failure, and may be taken over.
        let stale_after = self.config.timeout + std::time::Duration::from_secs(1);
        let reserved = self
            .ledger
            .reserve(self.id(), &instance, stale_after)
            .await
            .map_err(|source| self.ledger_error(Action::Create, &name, source))?;
        if !reserved {
            return Err(ActionError::Duplicate {
                service: self.id().to_owned(),
                instance: name,
            });
        }
        let provisioned = match plugin.create(instance.clone(), context.clone()).await {
            Ok(provisioned) => provisioned,
            Err(failure) => {
                // A refused create leaves no instance behind.
                let error = self.failure(Action::Create, failure);
                let release = vec![Change::Remove {
                    instance: name.clone(),
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
        if let Err(error) = self
            .record(
                Action::Create,
                &name,
                "",
                &context,
                vec![Change::Put(record)],
                &created,
            )
            .await
        {
            // The service made it but the ledger does not know: undo it, so
            // that tsuru and the service never disagree.
            self.undo_create(&*plugin, made, context).await;
            return Err(error);
        }
        Ok(created)
    }

    pub async fn update(
        &self,
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
            .plugin()?
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

    pub async fn remove(&self, name: &str, context: Context) -> Result<(), ActionError> {
        if self
            .replayed::<Value>(Action::Remove, name, "", &context)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let current = self.load(Action::Remove, name).await?;
        let outcome = undo(
            self.plugin()?
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

    pub async fn info(&self, name: &str, context: Context) -> Result<Vec<InfoItem>, ActionError> {
        let current = self.load(Action::Info, name).await?;
        match self.plugin()?.info(current.instance, context).await {
            Err(Failure::Refused(Refusal::Unsupported)) => Ok(Vec::new()),
            outcome => outcome.map_err(|failure| self.failure(Action::Info, failure)),
        }
    }

    pub async fn status(&self, name: &str, context: Context) -> Result<Status, ActionError> {
        let current = self.load(Action::Status, name).await?;
        self.health(&*self.plugin()?, current, context).await
    }

    /// Binds an app or a job: the env vars it gets.
    pub async fn bind(
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
        if let Some(env) = self.replayed(action, name, &target, &context).await? {
            return Ok(env);
        }
        let plugin = self.plugin()?;
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
        if self
            .replayed::<Value>(action, name, &target, &context)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let current = self.load(action, name).await?;
        let plugin = self.plugin()?;
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
        self.plugin()?
            .proxy(instance, request, context)
            .await
            .map_err(|failure| self.failure(Action::Proxy, failure))
    }

    async fn load(&self, action: Action, name: &str) -> Result<InstanceRecord, ActionError> {
        self.ledger
            .instance(self.id(), name)
            .await
            .map_err(|source| self.ledger_error(action, name, source))?
            .ok_or_else(|| ActionError::UnknownInstance {
                service: self.id().to_owned(),
                instance: name.to_owned(),
            })
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
        if status == Status::Up && current.state != InstanceState::Ready {
            let name = current.instance.name.clone();
            let record = InstanceRecord {
                state: InstanceState::Ready,
                ..current
            };
            self.ledger
                .commit(self.id(), vec![Change::Put(record)], None)
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
            .ledger
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
        self.ledger
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
        if let Err(err) = self.ledger.commit(self.id(), changes, Some(event)).await {
            tracing::error!(
                service = self.id(),
                action = action.as_str(),
                instance,
                "cannot record a failed action in the ledger: {err:#}"
            );
        }
    }

    async fn undo_create(&self, plugin: &dyn Plugin, instance: Instance, context: Context) {
        let name = instance.name.clone();
        match plugin.remove(instance, context).await {
            Ok(()) => tracing::warn!(
                service = self.id(),
                instance = name,
                "removed an instance the ledger could not record"
            ),
            Err(failure) => tracing::error!(
                service = self.id(),
                instance = name,
                "an instance the ledger could not record is still provisioned; its removal failed: {}",
                self.failure(Action::Remove, failure)
            ),
        }
        let release = vec![Change::Remove {
            instance: name.clone(),
        }];
        if let Err(err) = self.ledger.commit(self.id(), release, None).await {
            tracing::error!(
                service = self.id(),
                instance = name,
                "cannot release the name of an undone create: {err:#}"
            );
        }
    }

    fn failure(&self, action: Action, failure: Failure) -> ActionError {
        let service = self.id().to_owned();
        match failure {
            Failure::Refused(Refusal::Unsupported) => ActionError::Unsupported { service, action },
            Failure::Refused(refusal) => ActionError::Refused { service, refusal },
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

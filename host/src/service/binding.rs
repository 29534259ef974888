//! Binding and unbinding apps and jobs to an instance: a pending instance is
//! asked whether it is up first, and every binding is recorded with its env.

use std::sync::Arc;

use serde_json::Value;

use super::change::undo;
use super::{ActionError, Service};
use crate::ledger::{Binding, BindingKind, Change, InstanceRecord};
use crate::model::{Action, AppBinding, Context, Env, InstanceState, JobBinding, Status};
use crate::runtime::Plugin;

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

impl Service {
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
}

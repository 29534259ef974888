//! Changing an instance that exists: update and remove, each in line for
//! the instance's lock and run as a task of its own so that it ends recorded
//! whatever happens to the request.

use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::record::with_state;
use super::steward::InstanceLock;
use super::{ActionError, Service};
use crate::ledger::Change;
use crate::model::{Action, Context, Instance, InstanceState, Provisioned, Refusal};
use crate::runtime::{Failure, Outcome};

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
        let waited = self.steward.running_create(self.id(), name).is_some()
            || self.created_elsewhere(Action::Remove, name).await?;
        if waited {
            tracing::info!(
                service = self.id(),
                instance = name,
                "a remove of an instance still being created: waiting for its create to end"
            );
        }
        // Waits for the create (which holds the lock to its end), if one runs.
        let lock = self
            .steward
            .lock(self.id(), name)
            .await
            .map_err(|source| self.ledger_error(Action::Remove, name, source))?;
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
            // Under this lock no create of any host sharing the ledger holds the name.
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

    /// Changes an existing instance: refused at once while it is being
    /// created, else in line for its lock, then run by `run` as a task of
    /// its own.
    pub(super) async fn change<T, F>(
        self: &Arc<Self>,
        action: Action,
        name: &str,
        run: impl FnOnce(Arc<Self>, String) -> F,
    ) -> Result<T, ActionError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ActionError>> + Send + 'static,
    {
        self.not_being_created(action, name).await?;
        let lock = self
            .steward
            .lock(self.id(), name)
            .await
            .map_err(|source| self.ledger_error(action, name, source))?;
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

    /// Refused at once while a create of the name runs, on this host or, on
    /// a shared ledger, on another.
    async fn not_being_created(&self, action: Action, name: &str) -> Result<(), ActionError> {
        if self.steward.running_create(self.id(), name).is_some()
            || self.created_elsewhere(action, name).await?
        {
            return Err(self.being_created(action, name));
        }
        Ok(())
    }

    /// Whether, on a shared ledger, the instance is a reservation: a create
    /// another host runs (or one a dead host left, until it is undone).
    /// Answered as for a create running on this host, not by waiting for
    /// the instance's lock, which that create holds to its end.
    async fn created_elsewhere(&self, action: Action, name: &str) -> Result<bool, ActionError> {
        if !self.ledger().shared() {
            return Ok(false);
        }
        Ok(self
            .find(action, name)
            .await?
            .is_some_and(|record| record.state == InstanceState::Creating))
    }
}

/// An undo (remove, unbind) is done when the plugin has nothing to undo:
/// it does not support the action, or the thing is already gone.
pub(super) fn undo(outcome: Outcome<()>) -> Outcome<()> {
    match outcome {
        Err(Failure::Refused(Refusal::Unsupported | Refusal::NotFound(_))) => Ok(()),
        other => other,
    }
}

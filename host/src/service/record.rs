//! What an action reads from and writes to the ledger: the instance as it is
//! kept, the answer of a retried tsuru event, and the record of how the
//! action ended, success or failure.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ActionError, Service};
use crate::ledger::{Change, Event, EventOutcome, InstanceRecord};
use crate::model::{Action, Context, Instance, InstanceState};
use crate::runtime::Outcome;

impl Service {
    /// The instance as the ledger holds it, reservations included.
    pub(super) async fn find(
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
    pub(super) async fn load(
        &self,
        action: Action,
        name: &str,
    ) -> Result<InstanceRecord, ActionError> {
        match self.find(action, name).await? {
            None => Err(self.unknown(name)),
            Some(record) if record.state == InstanceState::Creating => {
                Err(self.being_created(action, name))
            }
            Some(record) => Ok(record),
        }
    }

    /// The answer recorded for an earlier success of the same tsuru event.
    pub(super) async fn replayed<T: DeserializeOwned>(
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
    pub(super) async fn checked<T>(
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

    pub(super) async fn record<T: Serialize>(
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

    pub(super) async fn record_failure(
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
}

pub(super) fn with_state(
    instance: Instance,
    data: Option<String>,
    state: InstanceState,
) -> InstanceRecord {
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

//! Creating an instance: recorded whole or not at all, run to its end
//! whatever happens to the request, its retries answered as it ended; and
//! the undoing of creates that never ended (orphans of a killed run).

use std::sync::{Arc, PoisonError};

use serde::Serialize;
use tokio::sync::watch;

use super::record::with_state;
use super::steward::{Asked, Attempt, CreateDone};
use super::{ActionError, Service, change::undo};
use crate::ledger::{Change, EventOutcome, InstanceRecord};
use crate::model::{Action, Context, Instance, InstanceState, Provisioned};
use crate::runtime::{Failure, Plugin, Stop};

/// How a create ended; a retry of the same event gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Created {
    Ready,
    Pending,
}

impl Service {
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
                // On a shared ledger, a create of the name on another host
                // holds it too: this one waits, then finds the instance and
                // answers as for a retry, or a duplicate.
                let lock = self
                    .steward
                    .lock(self.id(), &name)
                    .await
                    .map_err(|source| self.ledger_error(Action::Create, &name, source))?;
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
            // Under this lock no create of any host sharing the ledger holds
            // the name (each holds it to its end): it is one that never
            // ended (a killed host, a ledger that failed). Undo it first.
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

    /// Undoes the creates an earlier run of the host began and never ended
    /// (it was killed), or, on a shared ledger, that a host no longer alive
    /// began: through the plugin's `remove`, then out of the ledger.
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
            let _lock = match self.steward.lock(self.id(), &name).await {
                Ok(lock) => lock,
                Err(err) => {
                    tracing::error!(
                        service = self.id(),
                        instance = name,
                        "cannot lock a create an earlier run left unfinished to undo it; the next look tries again: {err:#}"
                    );
                    continue;
                }
            };
            // Looked at again under the lock: a remove (or another host
            // undoing the same orphan) may have undone it meanwhile.
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
    pub(super) async fn undo_orphan(
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
}

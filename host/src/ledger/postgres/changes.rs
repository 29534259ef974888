//! Changing the shared ledger: the reservation a create takes, and the
//! changes a commit applies in one transaction with its event.
//!
//! Transactions run in READ COMMITTED. A change that depends on an
//! instance's state reads it `FOR UPDATE` (or `FOR SHARE`) first, so that a
//! host removing or settling the same instance at the same moment waits
//! for this one or is waited for, and never acts on what it read before.

use tokio_postgres::{Client, Transaction};

use crate::ledger::{BindingKind, Change, Event, EventOutcome, InstanceRecord};
use crate::model::Action;
use crate::store::postgres::postgres_error;

/// Takes the name for a create, held by `owner`; false when it is taken.
pub(super) async fn reserve(
    client: &Client,
    service: &str,
    record: &InstanceRecord,
    owner: &str,
) -> anyhow::Result<bool> {
    let instance = &record.instance;
    let (tags, parameters) = (
        serde_json::to_string(&instance.tags)?,
        serde_json::to_string(&instance.parameters)?,
    );
    let written = client
        .execute(
            "INSERT INTO instances
                (service, name, state, plan, team, description, tags, parameters, data, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (service, name) DO NOTHING",
            &[
                &service,
                &instance.name,
                &record.state.as_str(),
                &instance.plan,
                &instance.team,
                &instance.description,
                &tags,
                &parameters,
                &instance.data,
                &owner,
            ],
        )
        .await
        .map_err(postgres_error)?;
    Ok(written == 1)
}

/// Applies the changes and records the event, all or nothing; answers how
/// the service's instance count changed.
pub(super) async fn commit(
    client: &mut Client,
    service: &str,
    changes: &[Change],
    event: Option<&Event>,
) -> anyhow::Result<i64> {
    let transaction = client.transaction().await.map_err(postgres_error)?;
    let mut instances = 0_i64;
    for change in changes {
        instances += apply(&transaction, service, change).await?;
    }
    if let Some(event) = event {
        insert_event(&transaction, service, event).await?;
    }
    transaction.commit().await.map_err(postgres_error)?;
    Ok(instances)
}

/// Records what tsuru asked and how it ended, in the commit's transaction.
async fn insert_event(
    transaction: &Transaction<'_>,
    service: &str,
    event: &Event,
) -> anyhow::Result<()> {
    let (outcome, answer, reason) = match &event.outcome {
        EventOutcome::Succeeded(answer) => ("succeeded", Some(answer.to_string()), None),
        EventOutcome::Failed(reason) => ("failed", None, Some(reason.as_str())),
    };
    transaction
        .execute(
            r#"INSERT INTO events (service, instance, action, target, event_id, "user", outcome, answer, reason)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
            &[
                &service,
                &event.instance,
                &event.action.as_str(),
                &event.target,
                &event.event_id,
                &event.user,
                &outcome,
                &answer,
                &reason,
            ],
        )
        .await
        .map_err(postgres_error)?;
    Ok(())
}

/// The state of an instance row, if there is one, locked until the
/// transaction ends (`lock` is `FOR UPDATE` or `FOR SHARE`).
async fn state_of(
    transaction: &Transaction<'_>,
    service: &str,
    name: &str,
    lock: &str,
) -> anyhow::Result<Option<String>> {
    let row = transaction
        .query_opt(
            &format!("SELECT state FROM instances WHERE service = $1 AND name = $2 {lock}"),
            &[&service, &name],
        )
        .await
        .map_err(postgres_error)?;
    row.map(|row| row.try_get(0).map_err(anyhow::Error::from))
        .transpose()
}

/// Whether a row in `state` counts as an instance.
fn counted(state: Option<&str>) -> i64 {
    i64::from(matches!(state, Some(state) if state != "creating"))
}

/// Applies one change; answers how it changed the service's instance count.
async fn apply(
    transaction: &Transaction<'_>,
    service: &str,
    change: &Change,
) -> anyhow::Result<i64> {
    match change {
        Change::Put(record) => {
            let instance = &record.instance;
            let before = state_of(transaction, service, &instance.name, "FOR UPDATE").await?;
            let (tags, parameters) = (
                serde_json::to_string(&instance.tags)?,
                serde_json::to_string(&instance.parameters)?,
            );
            transaction
                .execute(
                    "INSERT INTO instances
                        (service, name, state, plan, team, description, tags, parameters, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (service, name) DO UPDATE SET
                        state = excluded.state, plan = excluded.plan, team = excluded.team,
                        description = excluded.description, tags = excluded.tags,
                        parameters = excluded.parameters, data = excluded.data, updated_at = now()",
                    &[
                        &service,
                        &instance.name,
                        &record.state.as_str(),
                        &instance.plan,
                        &instance.team,
                        &instance.description,
                        &tags,
                        &parameters,
                        &instance.data,
                    ],
                )
                .await
                .map_err(postgres_error)?;
            Ok(counted(Some(record.state.as_str())) - counted(before.as_deref()))
        }
        Change::Settle { record, owner } => {
            let instance = &record.instance;
            let settled = transaction
                .execute(
                    "UPDATE instances SET state = $3, data = $4, owner = NULL, updated_at = now()
                     WHERE service = $1 AND name = $2 AND state = 'creating' AND owner = $5",
                    &[
                        &service,
                        &instance.name,
                        &record.state.as_str(),
                        &instance.data,
                        owner,
                    ],
                )
                .await
                .map_err(postgres_error)?;
            if settled != 1 {
                anyhow::bail!(
                    "the reservation of instance {} is no longer this create's",
                    instance.name
                );
            }
            Ok(counted(Some(record.state.as_str())))
        }
        Change::Release { instance, owner } => {
            transaction
                .execute(
                    "DELETE FROM instances
                     WHERE service = $1 AND name = $2 AND state = 'creating' AND owner = $3",
                    &[&service, instance, owner],
                )
                .await
                .map_err(postgres_error)?;
            Ok(0)
        }
        Change::Promote { instance } => {
            transaction
                .execute(
                    "UPDATE instances SET state = 'ready', updated_at = now()
                     WHERE service = $1 AND name = $2 AND state = 'pending'",
                    &[&service, instance],
                )
                .await
                .map_err(postgres_error)?;
            Ok(0)
        }
        Change::Remove { instance } => {
            // Its bindings go with it (ON DELETE CASCADE).
            let removed = transaction
                .query_opt(
                    "DELETE FROM instances WHERE service = $1 AND name = $2 RETURNING state",
                    &[&service, instance],
                )
                .await
                .map_err(postgres_error)?;
            let before: Option<String> = removed
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(anyhow::Error::from)?;
            transaction
                .execute(
                    "UPDATE events SET answer = NULL
                     WHERE service = $1 AND instance = $2 AND answer IS NOT NULL",
                    &[&service, instance],
                )
                .await
                .map_err(postgres_error)?;
            Ok(-counted(before.as_deref()))
        }
        Change::Bind { instance, binding } => {
            // Locked until the commit: a remove on another host waits for
            // this binding (and deletes it with the instance), or this
            // waits for the remove and finds nothing.
            let state = state_of(transaction, service, instance, "FOR SHARE").await?;
            if !matches!(state.as_deref(), Some(state) if state != "creating") {
                anyhow::bail!(
                    "instance {instance} is gone or not created yet; the binding of {} was not recorded",
                    binding.target
                );
            }
            transaction
                .execute(
                    "INSERT INTO bindings (service, instance, kind, target, env)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (service, instance, kind, target)
                     DO UPDATE SET env = excluded.env, bound_at = now()",
                    &[
                        &service,
                        instance,
                        &binding.kind.as_str(),
                        &binding.target,
                        &serde_json::to_string(&binding.env)?,
                    ],
                )
                .await
                .map_err(postgres_error)?;
            Ok(0)
        }
        Change::Unbind {
            instance,
            kind,
            target,
        } => {
            transaction
                .execute(
                    "DELETE FROM bindings
                     WHERE service = $1 AND instance = $2 AND kind = $3 AND target = $4",
                    &[&service, instance, &kind.as_str(), target],
                )
                .await
                .map_err(postgres_error)?;
            let binds = match kind {
                BindingKind::App => Action::BindApp,
                BindingKind::Job => Action::BindJob,
            };
            transaction
                .execute(
                    "UPDATE events SET answer = NULL
                     WHERE service = $1 AND instance = $2 AND action = $3 AND target = $4
                       AND answer IS NOT NULL",
                    &[&service, instance, &binds.as_str(), target],
                )
                .await
                .map_err(postgres_error)?;
            Ok(0)
        }
    }
}

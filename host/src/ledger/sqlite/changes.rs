//! Changing instances and bindings: the reservation a create takes, and
//! the changes a commit applies in one transaction with its event.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::events::insert_event;
use crate::ledger::{BindingKind, Change, Event, InstanceRecord, now};
use crate::model::Action;

/// Takes the name for a create, held by `owner`; false when it is taken.
pub(super) fn reserve(
    connection: &mut Connection,
    service: &str,
    record: &InstanceRecord,
    owner: String,
) -> anyhow::Result<bool> {
    let transaction = connection.transaction()?;
    let inserted = insert_instance(&transaction, service, record, OnConflict::Keep { owner })?;
    transaction.commit()?;
    Ok(inserted)
}

/// Applies the changes and records the event, all or nothing; answers how
/// the service's instance count changed.
pub(super) fn commit(
    connection: &mut Connection,
    service: &str,
    changes: &[Change],
    event: Option<&Event>,
) -> anyhow::Result<i64> {
    let transaction = connection.transaction()?;
    let mut instances = 0_i64;
    for change in changes {
        instances += apply(&transaction, service, change)?;
    }
    if let Some(event) = event {
        insert_event(&transaction, service, event)?;
    }
    transaction.commit()?;
    Ok(instances)
}

/// What writing an instance does to one of the same name.
enum OnConflict {
    /// Overwrites it, keeping its creation time.
    Replace,
    /// Writes nothing (a reservation), recording who holds the new row.
    Keep { owner: String },
}

/// Writes an instance; answers whether a row was written.
fn insert_instance(
    transaction: &Transaction<'_>,
    service: &str,
    record: &InstanceRecord,
    on_conflict: OnConflict,
) -> anyhow::Result<bool> {
    const OVERWRITE: &str = "state = excluded.state, plan = excluded.plan, team = excluded.team,
        description = excluded.description, tags = excluded.tags, parameters = excluded.parameters,
        data = excluded.data, updated_at = excluded.updated_at";
    let (on_conflict, owner) = match on_conflict {
        OnConflict::Replace => (
            format!("ON CONFLICT (service, name) DO UPDATE SET {OVERWRITE}"),
            None,
        ),
        OnConflict::Keep { owner } => (
            "ON CONFLICT (service, name) DO NOTHING".to_owned(),
            Some(owner),
        ),
    };
    let instance = &record.instance;
    let (tags, parameters) = (
        serde_json::to_string(&instance.tags)?,
        serde_json::to_string(&instance.parameters)?,
    );
    let (at, state) = (now(), record.state.as_str());
    let values: Vec<&dyn rusqlite::ToSql> = vec![
        &service,
        &instance.name,
        &state,
        &instance.plan,
        &instance.team,
        &instance.description,
        &tags,
        &parameters,
        &instance.data,
        &at,
        &owner,
    ];
    let written = transaction.execute(
        &format!(
            "INSERT INTO instances
                (service, name, state, plan, team, description, tags, parameters, data, created_at, updated_at, owner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11) {on_conflict}"
        ),
        values.as_slice(),
    )?;
    Ok(written == 1)
}

/// The state of an instance row, if there is one.
fn state_of(
    transaction: &Transaction<'_>,
    service: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    Ok(transaction
        .query_row(
            "SELECT state FROM instances WHERE service = ?1 AND name = ?2",
            params![service, name],
            |row| row.get(0),
        )
        .optional()?)
}

/// Whether a row in `state` counts as an instance.
fn counted(state: Option<&str>) -> i64 {
    i64::from(matches!(state, Some(state) if state != "creating"))
}

/// Applies one change; answers how it changed the service's instance count.
fn apply(transaction: &Transaction<'_>, service: &str, change: &Change) -> anyhow::Result<i64> {
    match change {
        Change::Put(record) => {
            let before = state_of(transaction, service, &record.instance.name)?;
            insert_instance(transaction, service, record, OnConflict::Replace)?;
            Ok(counted(Some(record.state.as_str())) - counted(before.as_deref()))
        }
        Change::Settle { record, owner } => {
            let instance = &record.instance;
            let settled = transaction.execute(
                "UPDATE instances SET state = ?3, data = ?4, owner = NULL, updated_at = ?5
                 WHERE service = ?1 AND name = ?2 AND state = 'creating' AND owner = ?6",
                params![
                    service,
                    instance.name,
                    record.state.as_str(),
                    instance.data,
                    now(),
                    owner
                ],
            )?;
            if settled != 1 {
                anyhow::bail!(
                    "the reservation of instance {} is no longer this create's",
                    instance.name
                );
            }
            Ok(counted(Some(record.state.as_str())))
        }
        Change::Release { instance, owner } => {
            transaction.execute(
                "DELETE FROM instances
                 WHERE service = ?1 AND name = ?2 AND state = 'creating' AND owner = ?3",
                params![service, instance, owner],
            )?;
            Ok(0)
        }
        Change::Promote { instance } => {
            transaction.execute(
                "UPDATE instances SET state = 'ready', updated_at = ?3
                 WHERE service = ?1 AND name = ?2 AND state = 'pending'",
                params![service, instance, now()],
            )?;
            Ok(0)
        }
        Change::Remove { instance } => {
            let before = state_of(transaction, service, instance)?;
            transaction.execute(
                "DELETE FROM bindings WHERE service = ?1 AND instance = ?2",
                params![service, instance],
            )?;
            transaction.execute(
                "DELETE FROM instances WHERE service = ?1 AND name = ?2",
                params![service, instance],
            )?;
            transaction.execute(
                "UPDATE events SET answer = NULL
                 WHERE service = ?1 AND instance = ?2 AND answer IS NOT NULL",
                params![service, instance],
            )?;
            Ok(-counted(before.as_deref()))
        }
        Change::Bind { instance, binding } => {
            let written = transaction.execute(
                "INSERT INTO bindings (service, instance, kind, target, env, bound_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (
                     SELECT 1 FROM instances
                     WHERE service = ?1 AND name = ?2 AND state != 'creating')
                 ON CONFLICT (service, instance, kind, target)
                 DO UPDATE SET env = excluded.env, bound_at = excluded.bound_at",
                params![
                    service,
                    instance,
                    binding.kind.as_str(),
                    binding.target,
                    serde_json::to_string(&binding.env)?,
                    now(),
                ],
            )?;
            if written != 1 {
                anyhow::bail!(
                    "instance {instance} is gone or not created yet; the binding of {} was not recorded",
                    binding.target
                );
            }
            Ok(0)
        }
        Change::Unbind {
            instance,
            kind,
            target,
        } => {
            transaction.execute(
                "DELETE FROM bindings WHERE service = ?1 AND instance = ?2 AND kind = ?3 AND target = ?4",
                params![service, instance, kind.as_str(), target],
            )?;
            let binds = match kind {
                BindingKind::App => Action::BindApp,
                BindingKind::Job => Action::BindJob,
            };
            transaction.execute(
                "UPDATE events SET answer = NULL
                 WHERE service = ?1 AND instance = ?2 AND action = ?3 AND target = ?4
                   AND answer IS NOT NULL",
                params![service, instance, binds.as_str(), target],
            )?;
            Ok(0)
        }
    }
}

//! Changing instances and bindings: the reservation a create takes, and
//! the changes a commit applies with its event. Each runs inside the
//! writer's transaction, in a savepoint of its own ([`super::writer`]), so
//! that a change that fails undoes the others of its commit and no one
//! else's.

use rusqlite::{Connection, OptionalExtension, params};

use super::events::insert_event;
use crate::ledger::{BindingKind, Change, Event, InstanceRecord, now};
use crate::model::Action;

/// Takes the name for a create, held by `owner`; false when it is taken.
pub(super) fn reserve(
    connection: &Connection,
    service: &str,
    record: &InstanceRecord,
    owner: String,
) -> anyhow::Result<bool> {
    insert_instance(connection, service, record, OnConflict::Keep { owner })
}

/// Applies the changes and records the event; answers how the service's
/// instance count changed. On an error the caller undoes what was applied.
pub(super) fn commit(
    connection: &Connection,
    service: &str,
    changes: &[Change],
    event: Option<&Event>,
) -> anyhow::Result<i64> {
    let mut instances = 0_i64;
    for change in changes {
        instances += apply(connection, service, change)?;
    }
    if let Some(event) = event {
        insert_event(connection, service, event)?;
    }
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
    connection: &Connection,
    service: &str,
    record: &InstanceRecord,
    on_conflict: OnConflict,
) -> anyhow::Result<bool> {
    // Two whole statements, not one formatted per call, so that each is
    // prepared once per connection.
    const REPLACE: &str = "INSERT INTO instances
            (service, name, state, plan, team, description, tags, parameters, data, created_at, updated_at, owner)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)
         ON CONFLICT (service, name) DO UPDATE SET state = excluded.state, plan = excluded.plan,
             team = excluded.team, description = excluded.description, tags = excluded.tags,
             parameters = excluded.parameters, data = excluded.data, updated_at = excluded.updated_at";
    const KEEP: &str = "INSERT INTO instances
            (service, name, state, plan, team, description, tags, parameters, data, created_at, updated_at, owner)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)
         ON CONFLICT (service, name) DO NOTHING";
    let (sql, owner) = match on_conflict {
        OnConflict::Replace => (REPLACE, None),
        OnConflict::Keep { owner } => (KEEP, Some(owner)),
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
    let written = connection.prepare_cached(sql)?.execute(values.as_slice())?;
    Ok(written == 1)
}

/// The state of an instance row, if there is one.
fn state_of(connection: &Connection, service: &str, name: &str) -> anyhow::Result<Option<String>> {
    Ok(connection
        .prepare_cached("SELECT state FROM instances WHERE service = ?1 AND name = ?2")?
        .query_row(params![service, name], |row| row.get(0))
        .optional()?)
}

/// Whether a row in `state` counts as an instance.
fn counted(state: Option<&str>) -> i64 {
    i64::from(matches!(state, Some(state) if state != "creating"))
}

/// Applies one change; answers how it changed the service's instance count.
fn apply(connection: &Connection, service: &str, change: &Change) -> anyhow::Result<i64> {
    match change {
        Change::Put(record) => {
            let before = state_of(connection, service, &record.instance.name)?;
            insert_instance(connection, service, record, OnConflict::Replace)?;
            Ok(counted(Some(record.state.as_str())) - counted(before.as_deref()))
        }
        Change::Settle { record, owner } => {
            let instance = &record.instance;
            let settled = connection
                .prepare_cached(
                    "UPDATE instances SET state = ?3, data = ?4, owner = NULL, updated_at = ?5
                 WHERE service = ?1 AND name = ?2 AND state = 'creating' AND owner = ?6",
                )?
                .execute(params![
                    service,
                    instance.name,
                    record.state.as_str(),
                    instance.data,
                    now(),
                    owner
                ])?;
            if settled != 1 {
                anyhow::bail!(
                    "the reservation of instance {} is no longer this create's",
                    instance.name
                );
            }
            Ok(counted(Some(record.state.as_str())))
        }
        Change::Release { instance, owner } => {
            connection
                .prepare_cached(
                    "DELETE FROM instances
                 WHERE service = ?1 AND name = ?2 AND state = 'creating' AND owner = ?3",
                )?
                .execute(params![service, instance, owner])?;
            Ok(0)
        }
        Change::Promote { instance } => {
            connection
                .prepare_cached(
                    "UPDATE instances SET state = 'ready', updated_at = ?3
                 WHERE service = ?1 AND name = ?2 AND state = 'pending'",
                )?
                .execute(params![service, instance, now()])?;
            Ok(0)
        }
        Change::Remove { instance } => {
            let before = state_of(connection, service, instance)?;
            connection
                .prepare_cached("DELETE FROM bindings WHERE service = ?1 AND instance = ?2")?
                .execute(params![service, instance])?;
            connection
                .prepare_cached("DELETE FROM instances WHERE service = ?1 AND name = ?2")?
                .execute(params![service, instance])?;
            connection
                .prepare_cached(
                    "UPDATE events SET answer = NULL
                 WHERE service = ?1 AND instance = ?2 AND answer IS NOT NULL",
                )?
                .execute(params![service, instance])?;
            Ok(-counted(before.as_deref()))
        }
        Change::Bind { instance, binding } => {
            let written = connection
                .prepare_cached(
                    "INSERT INTO bindings (service, instance, kind, target, env, bound_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (
                     SELECT 1 FROM instances
                     WHERE service = ?1 AND name = ?2 AND state != 'creating')
                 ON CONFLICT (service, instance, kind, target)
                 DO UPDATE SET env = excluded.env, bound_at = excluded.bound_at",
                )?
                .execute(params![
                    service,
                    instance,
                    binding.kind.as_str(),
                    binding.target,
                    serde_json::to_string(&binding.env)?,
                    now(),
                ])?;
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
            connection.prepare_cached(
                "DELETE FROM bindings WHERE service = ?1 AND instance = ?2 AND kind = ?3 AND target = ?4",
            )?.execute(
                params![service, instance, kind.as_str(), target],
            )?;
            let binds = match kind {
                BindingKind::App => Action::BindApp,
                BindingKind::Job => Action::BindJob,
            };
            connection
                .prepare_cached(
                    "UPDATE events SET answer = NULL
                 WHERE service = ?1 AND instance = ?2 AND action = ?3 AND target = ?4
                   AND answer IS NOT NULL",
                )?
                .execute(params![service, instance, binds.as_str(), target])?;
            Ok(0)
        }
    }
}

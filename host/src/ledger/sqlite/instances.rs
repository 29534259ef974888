//! Reading instances and bindings: one instance, a service's names, an
//! instance's bindings, the reservations no create of this run holds, and
//! the count of every service's instances at open.

use std::collections::HashMap;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};

use crate::ledger::{Binding, BindingKind, InstanceRecord};
use crate::model::{Env, Instance, InstanceState};

/// The instance `name` of `service`, reservations included.
pub(super) fn instance(
    connection: &Connection,
    service: &str,
    name: &str,
) -> anyhow::Result<Option<InstanceRecord>> {
    connection
        .prepare_cached(
            "SELECT name, state, plan, team, description, tags, parameters, data
                     FROM instances WHERE service = ?1 AND name = ?2",
        )?
        .query_row(params![service, name], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, Option<String>>(7)?,
            ))
        })
        .optional()?
        .map(
            |(name, state, plan, team, description, tags, parameters, data)| {
                Ok(InstanceRecord {
                    state: InstanceState::parse(&state).with_context(|| {
                        format!("instance {name} has an unknown state {state:?}")
                    })?,
                    instance: Instance {
                        tags: serde_json::from_str(&tags)
                            .with_context(|| format!("the tags of instance {name} are damaged"))?,
                        parameters: serde_json::from_str(&parameters).with_context(|| {
                            format!("the parameters of instance {name} are damaged")
                        })?,
                        name,
                        plan,
                        team,
                        description,
                        data,
                    },
                })
            },
        )
        .transpose()
}

/// The names of a service's reservations held by no owner token starting
/// with `prefix`, in order.
pub(super) fn unowned_reservations(
    connection: &Connection,
    service: &str,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let mut statement = connection.prepare_cached(
        "SELECT name FROM instances WHERE service = ?1 AND state = 'creating'
                       AND (owner IS NULL OR substr(owner, 1, length(?2)) != ?2) ORDER BY name",
    )?;
    let rows = statement.query_map(params![service, prefix], |row| row.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The names of a service's instances, in order.
pub(super) fn names(connection: &Connection, service: &str) -> anyhow::Result<Vec<String>> {
    let mut statement =
        connection.prepare_cached("SELECT name FROM instances WHERE service = ?1 ORDER BY name")?;
    let rows = statement.query_map(params![service], |row| row.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The bindings of an instance, by kind and target.
pub(super) fn bindings(
    connection: &Connection,
    service: &str,
    instance: &str,
) -> anyhow::Result<Vec<Binding>> {
    let mut statement = connection.prepare_cached(
        "SELECT kind, target, env FROM bindings WHERE service = ?1 AND instance = ?2
                 ORDER BY kind, target",
    )?;
    let rows = statement.query_map(params![service, instance], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (kind, target, env) = row?;
        let kind = match kind.as_str() {
            "app" => BindingKind::App,
            "job" => BindingKind::Job,
            other => anyhow::bail!("binding {target} has an unknown kind {other:?}"),
        };
        let env: Env = serde_json::from_str(&env)
            .with_context(|| format!("the env of binding {target} is damaged"))?;
        Ok(Binding { kind, target, env })
    })
    .collect()
}

/// Every service's instances, counted once at open.
pub(super) fn count_all(connection: &Connection) -> anyhow::Result<HashMap<String, u64>> {
    let mut statement = connection.prepare(
        "SELECT service, COUNT(*) FROM instances WHERE state != 'creating' GROUP BY service",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })?;
    rows.map(|row| {
        let (service, count) = row?;
        Ok((service, u64::try_from(count)?))
    })
    .collect()
}

//! Reading the shared ledger: one instance, a service's names, an
//! instance's bindings and events, a retried event's answer, the orphaned
//! reservations, and every service's count.

use crate::store::postgres::utc_text;
use std::collections::HashMap;

use anyhow::Context as _;
use serde_json::Value;
use tokio_postgres::{Client, Row};

use super::RUN_ALIVE_SECS;
use crate::ledger::{Binding, BindingKind, EventOutcome, EventRecord, InstanceRecord};
use crate::model::{Action, Env, Instance, InstanceState};
use crate::store::postgres::postgres_error;

/// The columns [`record`] reads, in its order.
const INSTANCE_COLUMNS: &str = "name, state, plan, team, description, tags, parameters, data";

/// A column of a row the ledger wrote.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> anyhow::Result<T> {
    row.try_get(index)
        .with_context(|| format!("the ledger's column {index} holds what it never writes"))
}

/// An instance row, as [`INSTANCE_COLUMNS`] reads it.
fn record(row: &Row) -> anyhow::Result<InstanceRecord> {
    let name: String = column(row, 0)?;
    let state: String = column(row, 1)?;
    let tags: String = column(row, 5)?;
    let parameters: String = column(row, 6)?;
    Ok(InstanceRecord {
        state: InstanceState::parse(&state)
            .with_context(|| format!("instance {name} has an unknown state {state:?}"))?,
        instance: Instance {
            tags: serde_json::from_str(&tags)
                .with_context(|| format!("the tags of instance {name} are damaged"))?,
            parameters: serde_json::from_str(&parameters)
                .with_context(|| format!("the parameters of instance {name} are damaged"))?,
            plan: column(row, 2)?,
            team: column(row, 3)?,
            description: column(row, 4)?,
            data: column(row, 7)?,
            name,
        },
    })
}

/// The instance `name` of `service`, reservations included.
pub(super) async fn instance(
    client: &Client,
    service: &str,
    name: &str,
) -> anyhow::Result<Option<InstanceRecord>> {
    client
        .query_opt(
            &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE service = $1 AND name = $2"),
            &[&service, &name],
        )
        .await
        .map_err(postgres_error)?
        .as_ref()
        .map(record)
        .transpose()
}

/// The reservations of a service that no create of run `host` holds and
/// whose owner's run is not alive (no heartbeat within [`RUN_ALIVE_SECS`]),
/// in order of name.
pub(super) async fn orphans(
    client: &Client,
    service: &str,
    host: &str,
) -> anyhow::Result<Vec<InstanceRecord>> {
    let alive = f64::from(RUN_ALIVE_SECS);
    let rows = client
        .query(
            &format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances AS i
                 WHERE service = $1 AND state = 'creating'
                   AND (owner IS NULL OR (split_part(owner, '/', 1) <> $2 AND NOT EXISTS (
                       SELECT 1 FROM hosts
                       WHERE run = split_part(i.owner, '/', 1)
                         AND last_seen > now() - make_interval(secs => $3))))
                 ORDER BY name"
            ),
            &[&service, &host, &alive],
        )
        .await
        .map_err(postgres_error)?;
    rows.iter().map(record).collect()
}

/// The names of a service's instances, in order.
pub(super) async fn names(client: &Client, service: &str) -> anyhow::Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT name FROM instances WHERE service = $1 ORDER BY name COLLATE \"C\"",
            &[&service],
        )
        .await
        .map_err(postgres_error)?;
    rows.iter().map(|row| column(row, 0)).collect()
}

/// The bindings of an instance, by kind and target.
pub(super) async fn bindings(
    client: &Client,
    service: &str,
    instance: &str,
) -> anyhow::Result<Vec<Binding>> {
    let rows = client
        .query(
            "SELECT kind, target, env FROM bindings WHERE service = $1 AND instance = $2
             ORDER BY kind COLLATE \"C\", target COLLATE \"C\"",
            &[&service, &instance],
        )
        .await
        .map_err(postgres_error)?;
    rows.iter()
        .map(|row| {
            let (kind, target, env): (String, String, String) =
                (column(row, 0)?, column(row, 1)?, column(row, 2)?);
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

/// The events of one instance, oldest first.
pub(super) async fn events(
    client: &Client,
    service: &str,
    instance: &str,
) -> anyhow::Result<Vec<EventRecord>> {
    let rows = client
        .query(
            &format!(
                r#"SELECT action, instance, target, event_id, "user", outcome, answer, reason, {}
                   FROM events WHERE service = $1 AND instance = $2 ORDER BY id"#,
                utc_text("at")
            ),
            &[&service, &instance],
        )
        .await
        .map_err(postgres_error)?;
    rows.iter()
        .map(|row| {
            let outcome: String = column(row, 5)?;
            let outcome = if outcome == "succeeded" {
                let answer: Option<String> = column(row, 6)?;
                EventOutcome::Succeeded(
                    serde_json::from_str(answer.as_deref().unwrap_or("null"))
                        .context("a recorded answer is damaged")?,
                )
            } else {
                let reason: Option<String> = column(row, 7)?;
                EventOutcome::Failed(reason.unwrap_or_default())
            };
            Ok(EventRecord {
                action: column(row, 0)?,
                instance: column(row, 1)?,
                target: column(row, 2)?,
                event_id: column(row, 3)?,
                user: column(row, 4)?,
                outcome,
                at: column(row, 8)?,
            })
        })
        .collect()
}

/// The answer of the newest success of the same tsuru event recorded
/// within the last `window` seconds, if it is still kept.
pub(super) async fn replay(
    client: &Client,
    service: &str,
    action: Action,
    instance: &str,
    target: &str,
    event_id: &str,
    window: f64,
) -> anyhow::Result<Option<Value>> {
    let row = client
        .query_opt(
            "SELECT answer FROM events
             WHERE service = $1 AND action = $2 AND instance = $3 AND target = $4
               AND event_id = $5 AND outcome = 'succeeded' AND answer IS NOT NULL
               AND at >= now() - make_interval(secs => $6)
             ORDER BY id DESC LIMIT 1",
            &[
                &service,
                &action.as_str(),
                &instance,
                &target,
                &event_id,
                &window,
            ],
        )
        .await
        .map_err(postgres_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let answer: String = column(&row, 0)?;
    Ok(Some(
        serde_json::from_str(&answer).context("a recorded answer is damaged")?,
    ))
}

/// Every service's instances (reservations are not instances).
pub(super) async fn count_all(client: &Client) -> anyhow::Result<HashMap<String, u64>> {
    let rows = client
        .query(
            "SELECT service, count(*) FROM instances WHERE state <> 'creating' GROUP BY service",
            &[],
        )
        .await
        .map_err(postgres_error)?;
    rows.iter()
        .map(|row| {
            let count: i64 = column(row, 1)?;
            Ok((column(row, 0)?, u64::try_from(count)?))
        })
        .collect()
}

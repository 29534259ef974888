//! Events: recording what tsuru asked and how it ended, answering a retry
//! of the same tsuru event within the replay window, listing an instance's
//! events, and pruning answers and events past their retention.

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::ledger::{Event, EventOutcome, EventRecord, Pruned, now, timestamp};

/// Records what tsuru asked and how it ended, with the commit's changes.
pub(super) fn insert_event(
    connection: &Connection,
    service: &str,
    event: &Event,
) -> anyhow::Result<()> {
    let (outcome, answer, reason) = match &event.outcome {
        EventOutcome::Succeeded(answer) => ("succeeded", Some(answer.to_string()), None),
        EventOutcome::Failed(reason) => ("failed", None, Some(reason.as_str())),
    };
    let mut statement = connection.prepare_cached(
        "INSERT INTO events (service, instance, action, target, event_id, user, outcome, answer, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    statement.execute(params![
        service,
        event.instance,
        event.action.as_str(),
        event.target,
        event.event_id,
        event.user,
        outcome,
        answer,
        reason,
        now(),
    ])?;
    Ok(())
}

/// The answer of the newest success of the same tsuru event recorded at or
/// after `since`, if it is still kept.
pub(super) fn replay(
    connection: &Connection,
    service: &str,
    action: &str,
    instance: &str,
    target: &str,
    event_id: &str,
    since: &str,
) -> anyhow::Result<Option<Value>> {
    let answer: Option<String> = connection
        .prepare_cached(
            "SELECT answer FROM events
                     WHERE service = ?1 AND action = ?2 AND instance = ?3 AND target = ?4
                       AND event_id = ?5 AND outcome = 'succeeded' AND answer IS NOT NULL
                       AND at >= ?6
                     ORDER BY id DESC LIMIT 1",
        )?
        .query_row(
            params![service, action, instance, target, event_id, since],
            |row| row.get(0),
        )
        .optional()?
        .flatten();
    answer
        .map(|text| serde_json::from_str(&text).context("a recorded answer is damaged"))
        .transpose()
}

/// The events of one instance, oldest first.
pub(super) fn events(
    connection: &Connection,
    service: &str,
    instance: &str,
) -> anyhow::Result<Vec<EventRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT action, instance, target, event_id, user, outcome, answer, reason, at
                 FROM events WHERE service = ?1 AND instance = ?2 ORDER BY id",
    )?;
    let rows = statement.query_map(params![service, instance], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, Option<String>>(6)?,
            row.get::<_, Option<String>>(7)?,
            row.get::<_, String>(8)?,
        ))
    })?;
    rows.map(|row| {
        let (action, instance, target, event_id, user, outcome, answer, reason, at) = row?;
        let outcome = if outcome == "succeeded" {
            let answer = answer.as_deref().unwrap_or("null");
            EventOutcome::Succeeded(
                serde_json::from_str(answer).context("a recorded answer is damaged")?,
            )
        } else {
            EventOutcome::Failed(reason.unwrap_or_default())
        };
        Ok(EventRecord {
            action,
            instance,
            target,
            event_id,
            user,
            outcome,
            at,
        })
    })
    .collect()
}

/// Forgets answers recorded before `answers_before` and events recorded
/// before `events_before`, both or neither (the writer's savepoint).
pub(super) fn prune(
    connection: &Connection,
    answers_before: &str,
    events_before: &str,
) -> anyhow::Result<Pruned> {
    let answers = connection.execute(
        "UPDATE events SET answer = NULL WHERE answer IS NOT NULL AND at < ?1",
        params![answers_before],
    )?;
    let events = connection.execute("DELETE FROM events WHERE at < ?1", params![events_before])?;
    Ok(Pruned {
        answers: u64::try_from(answers)?,
        events: u64::try_from(events)?,
    })
}

/// `at` as far back from now as the ledger writes times.
pub(super) fn ago(at: std::time::Duration) -> anyhow::Result<String> {
    let at = jiff::SignedDuration::try_from(at)?;
    Ok(timestamp(
        jiff::Timestamp::now()
            .checked_sub(at)
            .unwrap_or(jiff::Timestamp::MIN),
    ))
}

//! The embedded ledger: one SQLite file under `data_dir`, written in WAL mode
//! with a full sync at every commit, so an answered request survives a crash.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use super::{
    Binding, BindingKind, Change, Deployments, Event, EventOutcome, EventRecord, InstanceRecord,
    Ledger, PluginEvent, PluginEventRecord, Pruned, Retention,
};
use super::{now, timestamp};
use crate::model::{Action, Env, Instance, InstanceState};

/// The schema, by version; each step runs once, in order.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE instances (
        service     TEXT NOT NULL,
        name        TEXT NOT NULL,
        state       TEXT NOT NULL,
        plan        TEXT,
        team        TEXT,
        description TEXT,
        tags        TEXT NOT NULL,
        parameters  TEXT NOT NULL,
        data        TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (service, name)
    );
    CREATE TABLE bindings (
        service  TEXT NOT NULL,
        instance TEXT NOT NULL,
        kind     TEXT NOT NULL,
        target   TEXT NOT NULL,
        env      TEXT NOT NULL,
        bound_at TEXT NOT NULL,
        PRIMARY KEY (service, instance, kind, target)
    );
    CREATE TABLE events (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        service  TEXT NOT NULL,
        instance TEXT NOT NULL,
        action   TEXT NOT NULL,
        target   TEXT NOT NULL,
        event_id TEXT,
        user     TEXT,
        outcome  TEXT NOT NULL,
        answer   TEXT,
        reason   TEXT,
        at       TEXT NOT NULL
    );
    CREATE INDEX events_by_instance ON events (service, instance);
    CREATE INDEX events_replay ON events (service, instance, action, target, event_id)
        WHERE event_id IS NOT NULL AND outcome = 'succeeded';
"#,
    r#"
    CREATE TABLE deployments (
        service    TEXT PRIMARY KEY,
        document   TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE plugin_events (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        service  TEXT NOT NULL,
        kind     TEXT NOT NULL,
        sha256   TEXT,
        previous TEXT,
        source   TEXT NOT NULL,
        detail   TEXT NOT NULL,
        at       TEXT NOT NULL
    );
    CREATE INDEX plugin_events_by_service ON plugin_events (service, id);
"#,
    r#"
    ALTER TABLE instances ADD COLUMN owner TEXT;
    CREATE INDEX events_by_time ON events (at);
"#,
];

pub struct SqliteLedger {
    connection: Arc<Mutex<Connection>>,
    retention: Retention,
    /// Each service's instances, kept as commits change them, so that
    /// `/metrics` never scans the table.
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl SqliteLedger {
    /// Opens (or creates) `ledger.sqlite3` in `data_dir`, keeping events as
    /// long as the default [`Retention`] says.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(data_dir, Retention::default())
    }

    /// Opens (or creates) `ledger.sqlite3` in `data_dir`.
    pub fn open_with(data_dir: &Path, retention: Retention) -> anyhow::Result<Self> {
        crate::private::dir(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let path = data_dir.join("ledger.sqlite3");
        crate::private::database(&path)?;
        let mut connection = Connection::open(&path)
            .with_context(|| format!("cannot open the ledger {}", path.display()))?;
        connection
            .execute_batch(
                // secure_delete: what is deleted (a removed binding's env, a
                // forgotten answer) is overwritten, not left in free pages.
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                 PRAGMA secure_delete = ON;",
            )
            .context("cannot set up the ledger's journal")?;
        migrate(&mut connection)
            .with_context(|| format!("cannot update the ledger {}", path.display()))?;
        let counts = count_all(&connection)
            .with_context(|| format!("cannot count the instances in {}", path.display()))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            retention,
            counts: Arc::new(Mutex::new(counts)),
        })
    }

    /// The oldest time an answer may have been recorded and still be replayed.
    fn replay_cutoff(&self) -> anyhow::Result<String> {
        ago(self.retention.replay_window)
    }

    /// Runs `work` on the connection off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock rolled its transaction back; the connection is sound.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        })
        .await
        .context("the ledger's worker thread stopped")?
    }
}

fn migrate(connection: &mut Connection) -> anyhow::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "it was written by a newer Orizuru (schema {version}, this one knows {}); run that version or a newer one",
            MIGRATIONS.len()
        );
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(step)?;
        transaction.pragma_update(None, "user_version", i64::try_from(index + 1)?)?;
        transaction.commit()?;
    }
    Ok(())
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn instance(&self, service: &str, name: &str) -> anyhow::Result<Option<InstanceRecord>> {
        let (service, name) = (service.to_owned(), name.to_owned());
        self.with(move |connection| {
            connection
                .query_row(
                    "SELECT name, state, plan, team, description, tags, parameters, data
                     FROM instances WHERE service = ?1 AND name = ?2",
                    params![service, name],
                    |row| {
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
                    },
                )
                .optional()?
                .map(
                    |(name, state, plan, team, description, tags, parameters, data)| {
                        Ok(InstanceRecord {
                            state: InstanceState::parse(&state).with_context(|| {
                                format!("instance {name} has an unknown state {state:?}")
                            })?,
                            instance: Instance {
                                tags: serde_json::from_str(&tags).with_context(|| {
                                    format!("the tags of instance {name} are damaged")
                                })?,
                                parameters: serde_json::from_str(&parameters).with_context(
                                    || format!("the parameters of instance {name} are damaged"),
                                )?,
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
        })
        .await
    }

    async fn reserve(
        &self,
        service: &str,
        instance: &Instance,
        owner: &str,
    ) -> anyhow::Result<bool> {
        let (service, owner) = (service.to_owned(), owner.to_owned());
        let record = InstanceRecord {
            instance: instance.clone(),
            state: InstanceState::Creating,
        };
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            let inserted =
                insert_instance(&transaction, &service, &record, OnConflict::Keep { owner })?;
            transaction.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn orphans(&self, service: &str, host: &str) -> anyhow::Result<Vec<InstanceRecord>> {
        let names: Vec<String> = {
            let (service, prefix) = (service.to_owned(), format!("{host}/"));
            self.with(move |connection| {
                let mut statement = connection.prepare(
                    "SELECT name FROM instances WHERE service = ?1 AND state = 'creating'
                       AND (owner IS NULL OR substr(owner, 1, length(?2)) != ?2) ORDER BY name",
                )?;
                let rows =
                    statement.query_map(params![service, prefix], |row| row.get::<_, String>(0))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?
        };
        let mut orphans = Vec::with_capacity(names.len());
        for name in names {
            if let Some(record) = self.instance(service, &name).await? {
                orphans.push(record);
            }
        }
        Ok(orphans)
    }

    fn instance_count(&self, service: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(service)
            .copied()
            .unwrap_or(0)
    }

    async fn commit(
        &self,
        service: &str,
        changes: Vec<Change>,
        event: Option<Event>,
    ) -> anyhow::Result<()> {
        let service = service.to_owned();
        let counts = self.counts.clone();
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            let mut instances = 0_i64;
            for change in &changes {
                instances += apply(&transaction, &service, change)?;
            }
            if let Some(event) = &event {
                insert_event(&transaction, &service, event)?;
            }
            transaction.commit()?;
            if instances != 0 {
                let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                let count = counts.entry(service).or_default();
                *count = count.saturating_add_signed(instances);
            }
            Ok(())
        })
        .await
    }

    async fn replay(
        &self,
        service: &str,
        action: Action,
        instance: &str,
        target: &str,
        event_id: &str,
    ) -> anyhow::Result<Option<Value>> {
        let key = (
            service.to_owned(),
            action.as_str(),
            instance.to_owned(),
            target.to_owned(),
            event_id.to_owned(),
            self.replay_cutoff()?,
        );
        self.with(move |connection| {
            let answer: Option<String> = connection
                .query_row(
                    "SELECT answer FROM events
                     WHERE service = ?1 AND action = ?2 AND instance = ?3 AND target = ?4
                       AND event_id = ?5 AND outcome = 'succeeded' AND answer IS NOT NULL
                       AND at >= ?6
                     ORDER BY id DESC LIMIT 1",
                    params![key.0, key.1, key.2, key.3, key.4, key.5],
                    |row| row.get(0),
                )
                .optional()?
                .flatten();
            answer
                .map(|text| serde_json::from_str(&text).context("a recorded answer is damaged"))
                .transpose()
        })
        .await
    }

    async fn instance_names(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let service = service.to_owned();
        self.with(move |connection| {
            let mut statement = connection
                .prepare("SELECT name FROM instances WHERE service = ?1 ORDER BY name")?;
            let rows = statement.query_map(params![service], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn bindings(&self, service: &str, instance: &str) -> anyhow::Result<Vec<Binding>> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        self.with(move |connection| {
            let mut statement = connection.prepare(
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
        })
        .await
    }

    async fn events(&self, service: &str, instance: &str) -> anyhow::Result<Vec<EventRecord>> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        self.with(move |connection| {
            let mut statement = connection.prepare(
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
        })
        .await
    }

    async fn prune(&self) -> anyhow::Result<Pruned> {
        let (answers_before, events_before) = (self.replay_cutoff()?, ago(self.retention.events)?);
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            let answers = transaction.execute(
                "UPDATE events SET answer = NULL WHERE answer IS NOT NULL AND at < ?1",
                params![answers_before],
            )?;
            let events =
                transaction.execute("DELETE FROM events WHERE at < ?1", params![events_before])?;
            transaction.commit()?;
            Ok(Pruned {
                answers: u64::try_from(answers)?,
                events: u64::try_from(events)?,
            })
        })
        .await
    }
}

#[async_trait]
impl Deployments for SqliteLedger {
    async fn deployments(&self) -> anyhow::Result<Vec<(String, Value)>> {
        self.with(|connection| {
            let mut statement =
                connection.prepare("SELECT service, document FROM deployments ORDER BY service")?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (service, document) = row?;
                let document = serde_json::from_str(&document).with_context(|| {
                    format!("the plugin record of service {service} is damaged")
                })?;
                Ok((service, document))
            })
            .collect()
        })
        .await
    }

    async fn save_deployment(
        &self,
        service: &str,
        document: Option<Value>,
        event: Option<PluginEvent>,
    ) -> anyhow::Result<()> {
        let service = service.to_owned();
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            let at = now();
            match document {
                Some(document) => transaction.execute(
                    "INSERT INTO deployments (service, document, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (service) DO UPDATE SET document = ?2, updated_at = ?3",
                    params![service, document.to_string(), at],
                )?,
                None => transaction.execute(
                    "DELETE FROM deployments WHERE service = ?1",
                    params![service],
                )?,
            };
            if let Some(event) = event {
                transaction.execute(
                    "INSERT INTO plugin_events (service, kind, sha256, previous, source, detail, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        service,
                        event.kind,
                        event.sha256,
                        event.previous,
                        event.source,
                        event.detail,
                        at
                    ],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn plugin_events(
        &self,
        service: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<PluginEventRecord>> {
        let service = service.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |connection| {
            let mut statement = connection.prepare(
                "SELECT kind, sha256, previous, source, detail, at FROM plugin_events
                 WHERE service = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![service, limit], |row| {
                Ok(PluginEventRecord {
                    event: PluginEvent {
                        kind: row.get(0)?,
                        sha256: row.get(1)?,
                        previous: row.get(2)?,
                        source: row.get(3)?,
                        detail: row.get(4)?,
                    },
                    at: row.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn count_instances(&self, service: &str) -> anyhow::Result<u64> {
        Ok(self.instance_count(service))
    }
}

/// `at` as far back from now as the ledger writes times.
fn ago(at: std::time::Duration) -> anyhow::Result<String> {
    let at = jiff::SignedDuration::try_from(at)?;
    Ok(timestamp(
        jiff::Timestamp::now()
            .checked_sub(at)
            .unwrap_or(jiff::Timestamp::MIN),
    ))
}

/// Every service's instances, counted once at open.
fn count_all(connection: &Connection) -> anyhow::Result<HashMap<String, u64>> {
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

fn insert_event(transaction: &Transaction<'_>, service: &str, event: &Event) -> anyhow::Result<()> {
    let (outcome, answer, reason) = match &event.outcome {
        EventOutcome::Succeeded(answer) => ("succeeded", Some(answer.to_string()), None),
        EventOutcome::Failed(reason) => ("failed", None, Some(reason.as_str())),
    };
    transaction.execute(
        "INSERT INTO events (service, instance, action, target, event_id, user, outcome, answer, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
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
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance(name: &str) -> Instance {
        Instance {
            name: name.into(),
            plan: Some("small".into()),
            team: Some("team".into()),
            description: None,
            tags: vec!["a".into()],
            parameters: json!({"size": {"gb": "3"}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            data: None,
        }
    }

    fn event(action: Action, instance: &str, event_id: &str, answer: Value) -> Option<Event> {
        Some(Event {
            action,
            instance: instance.into(),
            target: String::new(),
            event_id: Some(event_id.into()),
            user: Some("admin@example.com".into()),
            outcome: EventOutcome::Succeeded(answer),
        })
    }

    #[tokio::test]
    async fn reserve_commit_replay_and_survive_reopen() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = SqliteLedger::open(dir.path())?;
        assert!(ledger.reserve("svc", &instance("db"), "h1/1").await?);
        assert!(
            !ledger.reserve("svc", &instance("db"), "h1/2").await?,
            "a taken name is refused, however old the reservation"
        );
        assert!(
            ledger.reserve("other", &instance("db"), "h1/3").await?,
            "names are per service"
        );
        assert_eq!(
            ledger.instance_count("svc"),
            0,
            "a reservation is no instance"
        );
        assert!(ledger.reserve("svc", &instance("left"), "h0/9").await?);
        let orphans: Vec<String> = ledger
            .orphans("svc", "h1")
            .await?
            .into_iter()
            .map(|record| record.instance.name)
            .collect();
        assert_eq!(
            orphans,
            ["left"],
            "only another run's reservations are orphans"
        );

        let mut ready = instance("db");
        ready.data = Some("{\"id\":1}".into());
        let record = InstanceRecord {
            instance: ready,
            state: InstanceState::Ready,
        };
        let settle = |owner: &str| Change::Settle {
            record: record.clone(),
            owner: owner.into(),
        };
        assert!(
            ledger
                .commit("svc", vec![settle("h1/2")], None)
                .await
                .is_err(),
            "only the reservation's owner settles it"
        );
        ledger
            .commit(
                "svc",
                vec![settle("h1/1")],
                event(Action::Create, "db", "e1", json!("ready")),
            )
            .await?;
        assert_eq!(ledger.instance_count("svc"), 1);
        drop(ledger);

        let ledger = SqliteLedger::open(dir.path())?;
        assert_eq!(ledger.instance_count("svc"), 1, "counted again at open");
        assert_eq!(ledger.instance("svc", "db").await?, Some(record));
        assert_eq!(
            ledger.replay("svc", Action::Create, "db", "", "e1").await?,
            Some(json!("ready"))
        );
        assert_eq!(
            ledger.replay("svc", Action::Create, "db", "", "e2").await?,
            None
        );
        assert_eq!(
            ledger.replay("svc", Action::Remove, "db", "", "e1").await?,
            None
        );

        let binding = Binding {
            kind: BindingKind::App,
            target: "web".into(),
            env: Env::from([("A".into(), "1".into())]),
        };
        ledger
            .commit(
                "svc",
                vec![Change::Bind {
                    instance: "db".into(),
                    binding: binding.clone(),
                }],
                event(Action::BindApp, "db", "e3", json!({"A": "1"})),
            )
            .await?;
        assert_eq!(ledger.bindings("svc", "db").await?, vec![binding.clone()]);
        assert_eq!(
            ledger
                .replay("svc", Action::BindApp, "db", "", "e3")
                .await?,
            Some(json!({"A": "1"}))
        );

        ledger
            .commit(
                "svc",
                vec![Change::Remove {
                    instance: "db".into(),
                }],
                event(Action::Remove, "db", "e4", Value::Null),
            )
            .await?;
        assert_eq!(ledger.instance("svc", "db").await?, None);
        assert_eq!(ledger.instance_count("svc"), 0);
        assert!(ledger.bindings("svc", "db").await?.is_empty());
        assert_eq!(
            ledger
                .replay("svc", Action::BindApp, "db", "", "e3")
                .await?,
            None,
            "a removed instance's answers are forgotten"
        );
        assert!(
            ledger
                .commit(
                    "svc",
                    vec![Change::Bind {
                        instance: "db".into(),
                        binding: binding.clone(),
                    }],
                    None
                )
                .await
                .is_err(),
            "no binding of an instance that is gone"
        );
        let actions: Vec<String> = ledger
            .events("svc", "db")
            .await?
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["create", "bind-app", "remove"]);
        Ok(())
    }

    #[tokio::test]
    async fn prune_forgets_answers_past_the_window_and_events_past_the_retention()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hour = std::time::Duration::from_secs(3600);
        let ledger = SqliteLedger::open_with(
            dir.path(),
            Retention {
                replay_window: hour,
                events: 24 * hour,
            },
        )?;
        for (id, age_hours) in [("old", 48_u64), ("stale", 2), ("fresh", 0)] {
            ledger
                .commit(
                    "svc",
                    Vec::new(),
                    event(Action::BindApp, "db", id, json!({"PASSWORD": id})),
                )
                .await?;
            let at = ago(std::time::Duration::from_secs(age_hours * 3600))?;
            let id = id.to_owned();
            ledger
                .with(move |connection| {
                    connection.execute(
                        "UPDATE events SET at = ?1 WHERE event_id = ?2",
                        params![at, id],
                    )?;
                    Ok(())
                })
                .await?;
        }
        assert_eq!(
            ledger
                .replay("svc", Action::BindApp, "db", "", "stale")
                .await?,
            None,
            "past the window, a retry is not answered from the ledger"
        );
        assert_eq!(
            ledger
                .replay("svc", Action::BindApp, "db", "", "fresh")
                .await?,
            Some(json!({"PASSWORD": "fresh"}))
        );
        assert_eq!(
            ledger.prune().await?,
            Pruned {
                answers: 2,
                events: 1
            }
        );
        let kept: Vec<(Option<String>, EventOutcome)> = ledger
            .events("svc", "db")
            .await?
            .into_iter()
            .map(|event| (event.event_id, event.outcome))
            .collect();
        assert_eq!(
            kept,
            [
                (Some("stale".into()), EventOutcome::Succeeded(Value::Null)),
                (
                    Some("fresh".into()),
                    EventOutcome::Succeeded(json!({"PASSWORD": "fresh"}))
                ),
            ]
        );
        Ok(())
    }
}

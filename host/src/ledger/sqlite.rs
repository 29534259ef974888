//! The embedded ledger: one SQLite file under `data_dir`, written in WAL mode
//! with a full sync at every commit, so an answered request survives a crash.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use super::{
    Binding, BindingKind, Change, Deployments, Event, EventOutcome, EventRecord, InstanceRecord,
    Ledger, PluginEvent, PluginEventRecord,
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
];

pub struct SqliteLedger {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteLedger {
    /// Opens (or creates) `ledger.sqlite3` in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        crate::private::dir(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let path = data_dir.join("ledger.sqlite3");
        crate::private::database(&path)?;
        let mut connection = Connection::open(&path)
            .with_context(|| format!("cannot open the ledger {}", path.display()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .context("cannot set up the ledger's journal")?;
        migrate(&mut connection)
            .with_context(|| format!("cannot update the ledger {}", path.display()))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
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
        stale_after: Duration,
    ) -> anyhow::Result<bool> {
        let service = service.to_owned();
        let record = InstanceRecord {
            instance: instance.clone(),
            state: InstanceState::Creating,
        };
        let cutoff =
            timestamp(jiff::Timestamp::now() - jiff::SignedDuration::try_from(stale_after)?);
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            let inserted = insert_instance(
                &transaction,
                &service,
                &record,
                OnConflict::TakeStale { cutoff },
            )?;
            transaction.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn commit(
        &self,
        service: &str,
        changes: Vec<Change>,
        event: Option<Event>,
    ) -> anyhow::Result<()> {
        let service = service.to_owned();
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            for change in &changes {
                apply(&transaction, &service, change)?;
            }
            if let Some(event) = &event {
                insert_event(&transaction, &service, event)?;
            }
            transaction.commit()?;
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
        );
        self.with(move |connection| {
            let answer: Option<String> = connection
                .query_row(
                    "SELECT answer FROM events
                     WHERE service = ?1 AND action = ?2 AND instance = ?3 AND target = ?4
                       AND event_id = ?5 AND outcome = 'succeeded'
                     ORDER BY id DESC LIMIT 1",
                    params![key.0, key.1, key.2, key.3, key.4],
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
        let service = service.to_owned();
        self.with(move |connection| {
            let count: i64 = connection.query_row(
                "SELECT COUNT(*) FROM instances WHERE service = ?1",
                params![service],
                |row| row.get(0),
            )?;
            Ok(u64::try_from(count)?)
        })
        .await
    }
}

/// What writing an instance does to one of the same name.
enum OnConflict {
    /// Overwrites it, keeping its creation time.
    Replace,
    /// Takes it over only if it is a `Creating` reservation older than `cutoff`.
    TakeStale { cutoff: String },
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
    let (on_conflict, cutoff) = match on_conflict {
        OnConflict::Replace => (format!("ON CONFLICT (service, name) DO UPDATE SET {OVERWRITE}"), None),
        OnConflict::TakeStale { cutoff } => (
            format!(
                "ON CONFLICT (service, name) DO UPDATE SET {OVERWRITE}, created_at = excluded.created_at
                 WHERE instances.state = 'creating' AND instances.updated_at < ?11"
            ),
            Some(cutoff),
        ),
    };
    let instance = &record.instance;
    let (tags, parameters) = (
        serde_json::to_string(&instance.tags)?,
        serde_json::to_string(&instance.parameters)?,
    );
    let (at, state) = (now(), record.state.as_str());
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
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
    ];
    if let Some(cutoff) = &cutoff {
        values.push(cutoff);
    }
    let written = transaction.execute(
        &format!(
            "INSERT INTO instances
                (service, name, state, plan, team, description, tags, parameters, data, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) {on_conflict}"
        ),
        values.as_slice(),
    )?;
    Ok(written == 1)
}

fn apply(transaction: &Transaction<'_>, service: &str, change: &Change) -> anyhow::Result<()> {
    match change {
        Change::Put(record) => {
            insert_instance(transaction, service, record, OnConflict::Replace)?;
        }
        Change::Remove { instance } => {
            transaction.execute(
                "DELETE FROM bindings WHERE service = ?1 AND instance = ?2",
                params![service, instance],
            )?;
            transaction.execute(
                "DELETE FROM instances WHERE service = ?1 AND name = ?2",
                params![service, instance],
            )?;
        }
        Change::Bind { instance, binding } => {
            transaction.execute(
                "INSERT INTO bindings (service, instance, kind, target, env, bound_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
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
        }
    }
    Ok(())
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
        let minute = Duration::from_secs(60);
        assert!(ledger.reserve("svc", &instance("db"), minute).await?);
        assert!(
            !ledger.reserve("svc", &instance("db"), minute).await?,
            "a taken name is refused"
        );
        assert!(
            ledger.reserve("other", &instance("db"), minute).await?,
            "names are per service"
        );
        assert!(ledger.reserve("svc", &instance("stale"), minute).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            ledger
                .reserve("svc", &instance("stale"), Duration::from_millis(10))
                .await?,
            "a reservation older than any create can run is taken over"
        );

        let mut ready = instance("db");
        ready.data = Some("{\"id\":1}".into());
        let record = InstanceRecord {
            instance: ready,
            state: InstanceState::Ready,
        };
        ledger
            .commit(
                "svc",
                vec![Change::Put(record.clone())],
                event(Action::Create, "db", "e1", json!("ready")),
            )
            .await?;
        drop(ledger);

        let ledger = SqliteLedger::open(dir.path())?;
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
        assert_eq!(ledger.bindings("svc", "db").await?, vec![binding]);

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
        assert!(ledger.bindings("svc", "db").await?.is_empty());
        let actions: Vec<String> = ledger
            .events("svc", "db")
            .await?
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["create", "bind-app", "remove"]);
        Ok(())
    }
}

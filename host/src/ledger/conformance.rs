//! What every ledger does, run against each store: the embedded one
//! (SQLite in a temporary dir) and the shared one (PostgreSQL in a test
//! database of its own). A create's reservation, settle, replay and removal
//! surviving a reopen; bindings and their answers; pruning by the retention.
//!
//! Each case is an async fn taking a [`Store`]; `both_stores!` makes a test
//! of it for each store (`ledger::conformance::sqlite::CASE`,
//! `ledger::conformance::postgres::CASE`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::ledger::{
    Binding, BindingKind, Change, Event, EventOutcome, InstanceRecord, Ledger, PgLedger, Pruned,
    Retention, SqliteLedger,
};
use crate::model::{Action, Env, Instance, InstanceState};
use crate::store::postgres::Postgres;
use crate::store::postgres::testing::TestDatabase;

/// Where a ledger under test is kept.
#[async_trait]
trait Store: Send + Sync {
    /// A ledger on the store; a second one sees what the first wrote (a restart).
    async fn open(&self, retention: Retention) -> anyhow::Result<Arc<dyn Ledger>>;

    /// Moves the time of the events of tsuru event `event_id` back by `age`.
    async fn backdate(&self, event_id: &str, age: Duration) -> anyhow::Result<()>;
}

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    async fn new() -> anyhow::Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
        })
    }
}

#[async_trait]
impl Store for Sqlite {
    async fn open(&self, retention: Retention) -> anyhow::Result<Arc<dyn Ledger>> {
        Ok(Arc::new(SqliteLedger::open_with(
            self.dir.path(),
            retention,
        )?))
    }

    async fn backdate(&self, event_id: &str, age: Duration) -> anyhow::Result<()> {
        let at = crate::ledger::timestamp(
            jiff::Timestamp::now().checked_sub(jiff::SignedDuration::try_from(age)?)?,
        );
        let connection = rusqlite::Connection::open(self.dir.path().join("ledger.sqlite3"))?;
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.execute(
            "UPDATE events SET at = ?1 WHERE event_id = ?2",
            rusqlite::params![at, event_id],
        )?;
        Ok(())
    }
}

/// A test database, and the store opened on it.
pub(super) struct Pg {
    pub(super) database: TestDatabase,
    pub(super) store: Postgres,
}

impl Pg {
    pub(super) async fn new() -> anyhow::Result<Self> {
        let database = TestDatabase::create().await;
        let store = Postgres::open(&database.settings("test")).await?;
        Ok(Self { database, store })
    }
}

#[async_trait]
impl Store for Pg {
    async fn open(&self, retention: Retention) -> anyhow::Result<Arc<dyn Ledger>> {
        let store = Postgres::open(&self.database.settings("test")).await?;
        Ok(Arc::new(PgLedger::open(&store, retention).await?))
    }

    async fn backdate(&self, event_id: &str, age: Duration) -> anyhow::Result<()> {
        self.store
            .client()
            .await?
            .execute(
                "UPDATE events SET at = now() - make_interval(secs => $1) WHERE event_id = $2",
                &[&age.as_secs_f64(), &event_id],
            )
            .await?;
        Ok(())
    }
}

/// A test of each case for each store.
macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    super::$case(&super::Sqlite::new().await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    super::$case(&super::Pg::new().await?).await
                }
            )*
        }
    };
}

both_stores!(
    reserve_commit_replay_and_survive_reopen,
    bindings_are_ordered_and_unbind_forgets_their_answers,
    names_are_in_order_and_events_are_timed_in_utc,
    prune_forgets_answers_past_the_window_and_events_past_the_retention,
);

pub(super) fn instance(name: &str) -> Instance {
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

fn ready(name: &str) -> InstanceRecord {
    InstanceRecord {
        instance: instance(name),
        state: InstanceState::Ready,
    }
}

fn bind(instance: &str, kind: BindingKind, target: &str, env: &[(&str, &str)]) -> Change {
    Change::Bind {
        instance: instance.into(),
        binding: Binding {
            kind,
            target: target.into(),
            env: env
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        },
    }
}

async fn reserve_commit_replay_and_survive_reopen(store: &dyn Store) -> anyhow::Result<()> {
    let ledger = store.open(Retention::default()).await?;
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

    let mut made = instance("db");
    made.data = Some("{\"id\":1}".into());
    let record = InstanceRecord {
        instance: made,
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

    let ledger = store.open(Retention::default()).await?;
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
    let refused = ledger
        .commit(
            "svc",
            vec![Change::Bind {
                instance: "db".into(),
                binding: binding.clone(),
            }],
            None,
        )
        .await
        .expect_err("no binding of an instance that is gone");
    assert_eq!(
        refused.to_string(),
        "instance db is gone or not created yet; the binding of web was not recorded"
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

async fn bindings_are_ordered_and_unbind_forgets_their_answers(
    store: &dyn Store,
) -> anyhow::Result<()> {
    let ledger = store.open(Retention::default()).await?;
    ledger
        .commit("svc", vec![Change::Put(ready("db"))], None)
        .await?;
    assert!(ledger.reserve("svc", &instance("new"), "h1/1").await?);
    assert!(
        ledger
            .commit("svc", vec![bind("new", BindingKind::App, "web", &[])], None)
            .await
            .is_err(),
        "no binding of an instance still being created"
    );
    for (kind, target, id) in [
        (BindingKind::Job, "nightly", "j1"),
        (BindingKind::App, "web", "a1"),
        (BindingKind::App, "api", "a2"),
    ] {
        let action = match kind {
            BindingKind::App => Action::BindApp,
            BindingKind::Job => Action::BindJob,
        };
        let mut event = event(action, "db", id, json!({"TARGET": target}));
        if let Some(event) = &mut event {
            event.target = target.into();
        }
        ledger
            .commit(
                "svc",
                vec![bind("db", kind, target, &[("TARGET", target)])],
                event,
            )
            .await?;
    }
    let bound: Vec<(BindingKind, String)> = ledger
        .bindings("svc", "db")
        .await?
        .into_iter()
        .map(|binding| (binding.kind, binding.target))
        .collect();
    assert_eq!(
        bound,
        [
            (BindingKind::App, "api".into()),
            (BindingKind::App, "web".into()),
            (BindingKind::Job, "nightly".into()),
        ],
        "bindings by kind, then target"
    );
    ledger
        .commit(
            "svc",
            vec![Change::Unbind {
                instance: "db".into(),
                kind: BindingKind::App,
                target: "web".into(),
            }],
            None,
        )
        .await?;
    assert_eq!(
        ledger
            .replay("svc", Action::BindApp, "db", "web", "a1")
            .await?,
        None,
        "an unbound app's env is not given again"
    );
    assert_eq!(
        ledger
            .replay("svc", Action::BindApp, "db", "api", "a2")
            .await?,
        Some(json!({"TARGET": "api"})),
        "another app's answer is kept"
    );
    assert_eq!(ledger.bindings("svc", "db").await?.len(), 2);

    ledger
        .commit(
            "svc",
            vec![Change::Put(InstanceRecord {
                instance: instance("slow"),
                state: InstanceState::Pending,
            })],
            None,
        )
        .await?;
    assert_eq!(ledger.instance_count("svc"), 2);
    ledger
        .commit(
            "svc",
            vec![Change::Promote {
                instance: "slow".into(),
            }],
            None,
        )
        .await?;
    assert_eq!(
        ledger.instance("svc", "slow").await?.map(|r| r.state),
        Some(InstanceState::Ready)
    );
    Ok(())
}

async fn names_are_in_order_and_events_are_timed_in_utc(store: &dyn Store) -> anyhow::Result<()> {
    let ledger = store.open(Retention::default()).await?;
    for name in ["b", "a-2", "B", "a"] {
        ledger
            .commit(
                "svc",
                vec![Change::Put(ready(name))],
                event(Action::Create, name, name, json!("ready")),
            )
            .await?;
    }
    assert_eq!(
        ledger.instance_names("svc").await?,
        ["B", "a", "a-2", "b"],
        "names in byte order"
    );
    assert!(ledger.instance_names("other").await?.is_empty());
    let before = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(60))?;
    let events = ledger.events("svc", "a").await?;
    assert_eq!(events.len(), 1);
    let at = &events[0].at;
    assert_eq!(at.len(), "2026-01-01T00:00:00.000Z".len(), "{at}");
    assert!(at.ends_with('Z') && at.as_bytes()[19] == b'.', "{at}");
    let parsed: jiff::Timestamp = at.parse()?;
    assert_eq!(&crate::ledger::timestamp(parsed), at, "written as read");
    assert!(parsed > before, "{at} is now");
    Ok(())
}

async fn prune_forgets_answers_past_the_window_and_events_past_the_retention(
    store: &dyn Store,
) -> anyhow::Result<()> {
    let hour = Duration::from_secs(3600);
    let ledger = store
        .open(Retention {
            replay_window: hour,
            events: 24 * hour,
        })
        .await?;
    for (id, age_hours) in [("old", 48_u64), ("stale", 2), ("fresh", 0)] {
        ledger
            .commit(
                "svc",
                Vec::new(),
                event(Action::BindApp, "db", id, json!({"PASSWORD": id})),
            )
            .await?;
        store.backdate(id, hour * u32::try_from(age_hours)?).await?;
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

//! The SQLite ledger's tests: a create's reservation, settle, replay and
//! removal surviving a reopen, and pruning by the retention.

use rusqlite::params;
use serde_json::{Value, json};

use super::SqliteLedger;
use super::events::ago;
use crate::ledger::{
    Binding, BindingKind, Change, Event, EventOutcome, InstanceRecord, Ledger, Pruned, Retention,
};
use crate::model::{Action, Env, Instance, InstanceState};

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
async fn prune_forgets_answers_past_the_window_and_events_past_the_retention() -> anyhow::Result<()>
{
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

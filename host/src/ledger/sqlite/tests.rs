//! The embedded ledger's group commit: writes queued together commit
//! together, a write that fails undoes only itself, a read never waits
//! behind the writer, and a dropped ledger or caller leaves every write
//! whole or absent. What every ledger does is in `ledger::conformance`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::json;

use super::{SqliteLedger, changes};
use crate::ledger::conformance::instance;
use crate::ledger::{Binding, BindingKind, Change, Event, EventOutcome, InstanceRecord, Ledger};
use crate::model::{Action, Env, InstanceState};

fn ready(name: &str) -> InstanceRecord {
    InstanceRecord {
        instance: instance(name),
        state: InstanceState::Ready,
    }
}

/// A bind-app's binding of `target` to `db`.
fn bind(target: &str) -> Change {
    Change::Bind {
        instance: "db".into(),
        binding: Binding {
            kind: BindingKind::App,
            target: target.into(),
            env: Env::from([("TARGET".to_owned(), target.to_owned())]),
        },
    }
}

/// A bind-app's event for `target`, its answer kept for a retry.
fn bound(target: &str) -> Option<Event> {
    Some(Event {
        action: Action::BindApp,
        instance: "db".into(),
        target: target.into(),
        event_id: Some(format!("event-{target}")),
        user: None,
        outcome: EventOutcome::Succeeded(json!({"TARGET": target})),
    })
}

/// A ledger in a fresh directory with the instance `db` of service `svc`.
async fn ledger_with_db() -> anyhow::Result<(tempfile::TempDir, SqliteLedger)> {
    let dir = tempfile::tempdir()?;
    let ledger = SqliteLedger::open(dir.path())?;
    ledger
        .commit("svc", vec![Change::Put(ready("db"))], None)
        .await?;
    Ok((dir, ledger))
}

/// Holds the writer in a write of its own until the returned sender is
/// dropped, so that the writes queued meanwhile make one group.
fn hold_writer(ledger: &SqliteLedger) -> std::sync::mpsc::Sender<()> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    // Its answer is not awaited: the holding write commits nothing.
    drop(ledger.write(move |_| {
        // Nothing is sent: recv answers Err once the sender is dropped.
        while held.recv().is_ok() {}
        Ok(())
    }));
    release
}

async fn targets(ledger: &SqliteLedger) -> anyhow::Result<Vec<String>> {
    Ok(ledger
        .bindings("svc", "db")
        .await?
        .into_iter()
        .map(|binding| binding.target)
        .collect())
}

#[tokio::test]
async fn a_failing_write_in_a_group_does_not_take_its_neighbours_down() -> anyhow::Result<()> {
    let (_dir, ledger) = ledger_with_db().await?;
    let release = hold_writer(&ledger);
    let mut valid = Vec::new();
    for index in 0..20 {
        let target = format!("app-{index:02}");
        valid.push(ledger.write(move |connection| {
            changes::commit(connection, "svc", &[bind(&target)], bound(&target).as_ref())
        }));
    }
    // Its first change applies, its second fails: the savepoint undoes both.
    let refused = ledger.write(|connection| {
        changes::commit(
            connection,
            "svc",
            &[
                bind("half"),
                Change::Bind {
                    instance: "gone".into(),
                    binding: Binding {
                        kind: BindingKind::App,
                        target: "half".into(),
                        env: Env::new(),
                    },
                },
            ],
            bound("half").as_ref(),
        )
    });
    // A constraint SQLite itself enforces (an event needs its columns).
    let violation = ledger.write(|connection| {
        connection.execute("INSERT INTO events (service) VALUES ('svc')", [])?;
        Ok(0)
    });
    let mut more = Vec::new();
    for index in 20..40 {
        let target = format!("app-{index:02}");
        more.push(ledger.write(move |connection| {
            changes::commit(connection, "svc", &[bind(&target)], bound(&target).as_ref())
        }));
    }
    drop(release);

    for write in valid {
        write.await?;
    }
    for write in more {
        write.await?;
    }
    let refused = refused
        .await
        .expect_err("a bind of an instance that is gone");
    assert_eq!(
        refused.to_string(),
        "instance gone is gone or not created yet; the binding of half was not recorded",
        "the write's own error, not the group's"
    );
    let violation = violation.await.expect_err("a row missing its columns");
    assert!(
        format!("{violation:#}").contains("NOT NULL"),
        "{violation:#}"
    );

    let expected: Vec<String> = (0..40).map(|index| format!("app-{index:02}")).collect();
    assert_eq!(
        targets(&ledger).await?,
        expected,
        "the neighbours committed"
    );
    assert_eq!(
        ledger
            .replay("svc", Action::BindApp, "db", "half", "event-half")
            .await?,
        None,
        "nothing of the failed write is kept, its event neither"
    );
    assert_eq!(
        ledger
            .replay("svc", Action::BindApp, "db", "app-39", "event-app-39")
            .await?,
        Some(json!({"TARGET": "app-39"}))
    );
    Ok(())
}

#[tokio::test]
async fn many_concurrent_commits_all_land_and_are_read_back() -> anyhow::Result<()> {
    let (dir, ledger) = ledger_with_db().await?;
    let ledger = Arc::new(ledger);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..300 {
        let ledger = ledger.clone();
        tasks.spawn(async move {
            let target = format!("app-{index:03}");
            ledger
                .commit("svc", vec![bind(&target)], bound(&target))
                .await?;
            // A read after the answer sees the write.
            let replayed = ledger
                .replay(
                    "svc",
                    Action::BindApp,
                    "db",
                    &target,
                    &format!("event-{target}"),
                )
                .await?;
            anyhow::ensure!(
                replayed == Some(json!({"TARGET": target})),
                "{target} not read back"
            );
            let name = format!("made-{index:03}");
            ledger
                .commit("svc", vec![Change::Put(ready(&name))], None)
                .await
        });
    }
    while let Some(task) = tasks.join_next().await {
        task??;
    }
    let expected: Vec<String> = (0..300).map(|index| format!("app-{index:03}")).collect();
    assert_eq!(targets(&ledger).await?, expected);
    assert_eq!(ledger.instance_count("svc"), 301, "db and every made-N");
    assert_eq!(ledger.events("svc", "db").await?.len(), 300);

    drop(ledger);
    let ledger = SqliteLedger::open(dir.path())?;
    assert_eq!(targets(&ledger).await?, expected, "synced, and kept");
    assert_eq!(ledger.instance_count("svc"), 301);
    Ok(())
}

#[tokio::test]
async fn a_read_does_not_wait_behind_the_writer() -> anyhow::Result<()> {
    let (_dir, ledger) = ledger_with_db().await?;
    let release = hold_writer(&ledger);
    let write = ledger.write(|connection| {
        changes::commit(connection, "svc", &[bind("web")], bound("web").as_ref())
    });
    let read = tokio::time::timeout(Duration::from_secs(5), ledger.instance("svc", "db")).await;
    assert_eq!(
        read.map_err(|_| anyhow::anyhow!("the read waited behind the writer"))??,
        Some(ready("db"))
    );
    assert!(targets(&ledger).await?.is_empty(), "nothing committed yet");
    drop(release);
    write.await?;
    assert_eq!(targets(&ledger).await?, ["web"]);
    Ok(())
}

#[tokio::test]
async fn dropping_the_ledger_writes_and_answers_what_is_queued() -> anyhow::Result<()> {
    let (dir, ledger) = ledger_with_db().await?;
    let release = hold_writer(&ledger);
    let mut queued = Vec::new();
    for index in 0..50 {
        let target = format!("app-{index:02}");
        queued.push(ledger.write(move |connection| {
            changes::commit(connection, "svc", &[bind(&target)], bound(&target).as_ref())
        }));
    }
    // A caller that goes away once its commit is queued: the commit is
    // written whole all the same (the binding and its event).
    assert!(
        ledger
            .commit("svc", vec![bind("left")], bound("left"))
            .now_or_never()
            .is_none(),
        "the writer is held: the commit cannot be answered yet"
    );
    // The drop waits for the writer, which waits for the release.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(release);
    });
    drop(ledger);
    releaser
        .join()
        .map_err(|_| anyhow::anyhow!("the releasing thread panicked"))?;
    for write in queued {
        write.await?;
    }

    let ledger = SqliteLedger::open(dir.path())?;
    let mut expected: Vec<String> = (0..50).map(|index| format!("app-{index:02}")).collect();
    expected.push("left".into());
    assert_eq!(targets(&ledger).await?, expected);
    assert_eq!(
        ledger
            .replay("svc", Action::BindApp, "db", "left", "event-left")
            .await?,
        Some(json!({"TARGET": "left"})),
        "the event of the abandoned commit is there with its binding"
    );
    Ok(())
}

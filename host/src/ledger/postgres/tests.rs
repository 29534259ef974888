//! What only a shared ledger does: several hosts (here, several ledgers on
//! one test database) reserving one name, locking one instance, and telling
//! a live host's reservations from a dead one's. The cases every ledger
//! passes are in `ledger::conformance`.

use std::sync::Arc;
use std::time::Duration;

use super::PgLedger;
use crate::ledger::conformance::{Pg, instance};
use crate::ledger::{Ledger, Retention};
use crate::store::Unreachable;
use crate::store::postgres::Postgres;

/// A second host's ledger on the same database.
async fn another(pg: &Pg) -> anyhow::Result<PgLedger> {
    let store = Postgres::open(&pg.database.settings("other")).await?;
    PgLedger::open(&store, Retention::default()).await
}

/// Whether the instance's lock is free, asked on a connection of its own.
async fn free(pg: &Pg, key: &str) -> anyhow::Result<bool> {
    let client = pg.store.client().await?;
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await?;
    let free: bool = row.try_get(0)?;
    if free {
        client
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&key],
            )
            .await?;
    }
    Ok(free)
}

/// Waits until someone on this database waits for an advisory lock (not yet granted).
async fn someone_waits(pg: &Pg) -> anyhow::Result<()> {
    let client = pg.store.client().await?;
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()",
                &[],
            )
            .await?;
        if row.try_get::<_, i64>(0)? > 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the lock is free (a give-back runs as a task of its own).
async fn until_free(pg: &Pg, key: &str) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !free(pg, key).await? {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("the lock on {key} was never given back"))?
}

#[tokio::test]
async fn of_two_hosts_reserving_one_name_exactly_one_wins() -> anyhow::Result<()> {
    let pg = Pg::new().await?;
    let (one, two) = (
        PgLedger::open(&pg.store, Retention::default()).await?,
        another(&pg).await?,
    );
    for round in 0..20 {
        let wanted = instance(&format!("db{round}"));
        let (first, second) = tokio::join!(
            one.reserve("svc", &wanted, "run1/1"),
            two.reserve("svc", &wanted, "run2/1"),
        );
        let name = &wanted.name;
        assert!(first? ^ second?, "exactly one reservation of {name} wins");
    }
    Ok(())
}

#[tokio::test]
async fn an_instance_lock_excludes_other_hosts_until_dropped() -> anyhow::Result<()> {
    let pg = Pg::new().await?;
    let one = Arc::new(PgLedger::open(&pg.store, Retention::default()).await?);
    let two = Arc::new(another(&pg).await?);
    let held = one.lock("svc", "db").await?;
    assert!(!free(&pg, "svc/db").await?, "the lock is held on the store");
    assert!(
        free(&pg, "svc/other").await?,
        "another instance is not locked"
    );
    let other = one.lock("svc", "other").await?;
    drop(other);

    let mut waiter = tokio::spawn({
        let two = two.clone();
        async move { two.lock("svc", "db").await }
    });
    tokio::select! {
        taken = &mut waiter => panic!("the second host took a lock the first holds: {taken:?}"),
        waits = someone_waits(&pg) => waits?,
    }
    drop(held);
    let taken = waiter.await??;
    assert!(!free(&pg, "svc/db").await?, "the second host holds it now");
    drop(taken);
    until_free(&pg, "svc/db").await?;

    // A wait given up (its request dropped) is never granted later.
    let held = one.lock("svc", "db").await?;
    let waiter = tokio::spawn({
        let two = two.clone();
        async move { two.lock("svc", "db").await }
    });
    someone_waits(&pg).await?;
    waiter.abort();
    assert!(waiter.await.is_err_and(|err| err.is_cancelled()));
    drop(held);
    until_free(&pg, "svc/db").await?;
    Ok(())
}

#[tokio::test]
async fn a_reservation_of_a_live_run_is_no_orphan_one_of_a_dead_run_is() -> anyhow::Result<()> {
    let pg = Pg::new().await?;
    let ledger = PgLedger::open(&pg.store, Retention::default()).await?;
    pg.store
        .client()
        .await?
        .batch_execute(
            "INSERT INTO hosts (run, host_id, last_seen) VALUES
                ('alive', 'a', now()), ('dead', 'd', now() - interval '1 minute')",
        )
        .await?;
    for (name, owner) in [
        ("mine", "me/1"),
        ("live", "alive/1"),
        ("stale", "dead/1"),
        ("unknown", "gone/7"),
    ] {
        assert!(ledger.reserve("svc", &instance(name), owner).await?);
    }
    let orphans: Vec<String> = ledger
        .orphans("svc", "me")
        .await?
        .into_iter()
        .map(|record| record.instance.name)
        .collect();
    assert_eq!(orphans, ["stale", "unknown"]);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_store_is_named_in_every_error() -> anyhow::Result<()> {
    let settings = crate::store::StoreSettings {
        url: crate::setting::Secret::new("postgres://nobody@127.0.0.1:1/none".to_owned()),
        url_from: "url_env = \"X\"".into(),
        pool_size: 1,
        host_id: "test".into(),
    };
    let store = Postgres::pool(&settings)?;
    let err = PgLedger::open(&store, Retention::default())
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(Unreachable::in_chain(&err), "{err:#}");
    let ledger = PgLedger {
        store: store.clone(),
        locks: store,
        retention: Retention::default(),
        counts: Arc::default(),
    };
    let err = ledger
        .instance("svc", "db")
        .await
        .expect_err("nothing listens on port 1");
    assert!(Unreachable::in_chain(&err), "{err:#}");
    let err = ledger
        .lock("svc", "db")
        .await
        .expect_err("nothing listens on port 1");
    assert!(Unreachable::in_chain(&err), "{err:#}");
    let err = ledger
        .commit("svc", Vec::new(), None)
        .await
        .expect_err("nothing listens on port 1");
    assert!(Unreachable::in_chain(&err), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn another_hosts_creates_show_in_the_counts_soon() -> anyhow::Result<()> {
    let pg = Pg::new().await?;
    let (one, two) = (
        PgLedger::open(&pg.store, Retention::default()).await?,
        another(&pg).await?,
    );
    let record = crate::ledger::InstanceRecord {
        instance: instance("db"),
        state: crate::model::InstanceState::Ready,
    };
    one.commit("svc", vec![crate::ledger::Change::Put(record)], None)
        .await?;
    assert_eq!(
        one.instance_count("svc"),
        1,
        "at once on the committing host"
    );
    assert_eq!(two.instance_count("svc"), 0, "counted without a query");
    tokio::time::timeout(Duration::from_secs(30), async {
        while two.instance_count("svc") != 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the other host never counted the new instance"))?;
    Ok(())
}

#[tokio::test]
async fn a_bind_racing_a_remove_on_another_host_records_nothing() -> anyhow::Result<()> {
    use crate::ledger::{Binding, BindingKind, Change, InstanceRecord};
    let pg = Pg::new().await?;
    let binder = Arc::new(PgLedger::open(&pg.store, Retention::default()).await?);
    let record = InstanceRecord {
        instance: instance("db"),
        state: crate::model::InstanceState::Ready,
    };
    binder
        .commit("svc", vec![Change::Put(record)], None)
        .await?;
    // Another host's remove, begun and not yet committed.
    let mut remover = pg.store.client().await?;
    let removing = remover.transaction().await?;
    removing
        .execute(
            "DELETE FROM instances WHERE service = 'svc' AND name = 'db'",
            &[],
        )
        .await?;
    let bind = tokio::spawn({
        let binder = binder.clone();
        async move {
            let binding = Binding {
                kind: BindingKind::App,
                target: "web".into(),
                env: Default::default(),
            };
            binder
                .commit(
                    "svc",
                    vec![Change::Bind {
                        instance: "db".into(),
                        binding,
                    }],
                    None,
                )
                .await
        }
    });
    // The bind waits for the remove's row.
    let probe = pg.store.client().await?;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let row = probe
                .query_one(
                    "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
                     WHERE NOT l.granted AND a.datname = current_database()",
                    &[],
                )
                .await?;
            if row.try_get::<_, i64>(0)? > 0 {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the bind never waited for the remove"))??;
    removing.commit().await?;
    let err = bind.await?.expect_err("the instance is gone");
    assert_eq!(
        err.to_string(),
        "instance db is gone or not created yet; the binding of web was not recorded"
    );
    let left: i64 = probe
        .query_one("SELECT count(*) FROM bindings", &[])
        .await?
        .try_get(0)?;
    assert_eq!(left, 0, "no binding of a removed instance");
    Ok(())
}

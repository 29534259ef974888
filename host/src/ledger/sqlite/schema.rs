//! The ledger's schema: the SQLite tables by version, and the migration that
//! brings a ledger written by an older Orizuru up to this one.

use rusqlite::Connection;

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

/// The schema version this host writes (SQLite's `user_version`).
pub(super) fn version() -> usize {
    MIGRATIONS.len()
}

/// Runs the steps this ledger has not run yet, each in a transaction of its own.
pub(super) fn migrate(connection: &mut Connection) -> anyhow::Result<()> {
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

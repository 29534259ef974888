//! The key-value store of every service: one SQLite file
//! (`data_dir/keyvalue.sqlite3`), with what each service keeps counted as
//! it changes (`kv_usage`, kept by triggers) so that checking a quota
//! costs one lookup.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use rusqlite::Connection;

/// The store failed; the cause is in the host's log.
#[derive(Debug)]
pub struct Unavailable;

/// Every service's keys, in one SQLite file.
pub struct KvStore {
    connection: Mutex<Connection>,
}

impl KvStore {
    /// Opens (or creates) the store at `path`; `None` keeps it in memory.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let connection = match path {
            Some(path) => crate::private::database(path)
                .and_then(|()| Ok(Connection::open(path)?))
                .with_context(|| format!("cannot open the key-value store {}", path.display()))?,
            None => Connection::open_in_memory().context("cannot open a key-value store")?,
        };
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                 CREATE TABLE IF NOT EXISTS kv (
                     service TEXT NOT NULL,
                     bucket  TEXT NOT NULL,
                     key     TEXT NOT NULL,
                     value   BLOB NOT NULL,
                     PRIMARY KEY (service, bucket, key)
                 ) WITHOUT ROWID;
                 BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS kv_usage (
                     service TEXT PRIMARY KEY,
                     keys    INTEGER NOT NULL,
                     bytes   INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 -- A store from before the quotas: count what it holds, once
                 -- (the triggers below keep every service's row from then on).
                 INSERT INTO kv_usage (service, keys, bytes)
                     SELECT service, count(*), sum(length(CAST(bucket AS BLOB)) + length(CAST(key AS BLOB)) + length(value))
                     FROM kv
                     WHERE NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'kv_usage_insert')
                     GROUP BY service;
                 CREATE TRIGGER IF NOT EXISTS kv_usage_insert AFTER INSERT ON kv BEGIN
                     INSERT INTO kv_usage (service, keys, bytes)
                         VALUES (NEW.service, 1, length(CAST(NEW.bucket AS BLOB)) + length(CAST(NEW.key AS BLOB)) + length(NEW.value))
                         ON CONFLICT (service) DO UPDATE SET keys = keys + 1, bytes = bytes + excluded.bytes;
                 END;
                 CREATE TRIGGER IF NOT EXISTS kv_usage_update AFTER UPDATE ON kv BEGIN
                     UPDATE kv_usage SET bytes = bytes + length(NEW.value) - length(OLD.value)
                         WHERE service = NEW.service;
                 END;
                 CREATE TRIGGER IF NOT EXISTS kv_usage_delete AFTER DELETE ON kv BEGIN
                     UPDATE kv_usage SET keys = keys - 1,
                         bytes = bytes - length(CAST(OLD.bucket AS BLOB)) - length(CAST(OLD.key AS BLOB)) - length(OLD.value)
                         WHERE service = OLD.service;
                 END;
                 COMMIT;",
            )
            .context("cannot set up the key-value store")?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    /// Runs `work` on the store's connection; a failure is logged here,
    /// and the plugin is told only that the store failed.
    pub fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Unavailable> {
        // A panic while holding the lock rolled its statement back; the connection is sound.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        work(&mut connection).map_err(|err| {
            tracing::error!("key-value store failure: {err}");
            Unavailable
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{OptionalExtension, params};

    fn usage(store: &KvStore, service: &str) -> Option<(i64, i64)> {
        store
            .with(|connection| {
                connection
                    .query_row(
                        "SELECT keys, bytes FROM kv_usage WHERE service = ?1",
                        params![service],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
            })
            .ok()
            .flatten()
    }

    #[test]
    fn usage_is_counted_as_keys_change_and_from_a_store_older_than_quotas() {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let path = dir.path().join("keyvalue.sqlite3");
        {
            // A store written before quotas existed.
            let old = Connection::open(&path).expect("an old store");
            old.execute_batch(
                "CREATE TABLE kv (service TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
                     value BLOB NOT NULL, PRIMARY KEY (service, bucket, key)) WITHOUT ROWID;
                 INSERT INTO kv VALUES ('a', 'b', 'k1', x'0102'), ('a', 'b', 'ké', x'03'), ('z', 'b', 'k', x'');",
            )
            .expect("old rows");
        }
        let store = KvStore::open(Some(&path)).expect("the store opens");
        // Bytes of bucket, key and value: "ké" is 3 bytes.
        assert_eq!(usage(&store, "a"), Some((2, (1 + 2 + 2) + (1 + 3 + 1))));
        assert_eq!(usage(&store, "z"), Some((1, 2)));
        drop(store);
        // Opened again, it is not counted twice.
        let store = KvStore::open(Some(&path)).expect("the store opens again");
        assert_eq!(usage(&store, "a"), Some((2, 10)));

        let write = |sql: &str| {
            store
                .with(|connection| connection.execute_batch(sql))
                .map_err(|_| sql.to_owned())
                .expect("the write");
        };
        write("INSERT INTO kv VALUES ('a', 'b', 'new', x'01020304')");
        assert_eq!(usage(&store, "a"), Some((3, 10 + 1 + 3 + 4)));
        write("UPDATE kv SET value = x'01' WHERE service = 'a' AND key = 'new'");
        assert_eq!(usage(&store, "a"), Some((3, 10 + 1 + 3 + 1)));
        write(
            "INSERT INTO kv VALUES ('a', 'b', 'new', x'0102') ON CONFLICT (service, bucket, key) DO UPDATE SET value = excluded.value",
        );
        assert_eq!(usage(&store, "a"), Some((3, 10 + 1 + 3 + 2)));
        write("DELETE FROM kv WHERE service = 'a'");
        assert_eq!(usage(&store, "a"), Some((0, 0)));
        assert_eq!(usage(&store, "z"), Some((1, 2)));
        assert_eq!(usage(&store, "new-service"), None);
        write("INSERT INTO kv VALUES ('new-service', 'b', 'k', x'00')");
        assert_eq!(usage(&store, "new-service"), Some((1, 3)));
    }
}

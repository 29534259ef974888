//! The key-value store embedded in the host: one SQLite file
//! (`data_dir/keyvalue.sqlite3`), with what each service keeps counted as
//! it changes (`kv_usage`, kept by triggers) so that checking a quota
//! costs one lookup.
//!
//! Its work is short and runs under a lock, on the thread of the plugin's
//! call (plugin code has threads of its own, `runtime::threads`), so it
//! blocks no thread that serves HTTP; one lock makes each write, and so
//! each increment, whole.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};

use super::store::{Failure, Usage, Write};

/// Every service's keys, in one SQLite file.
pub struct SqliteKv {
    connection: Mutex<Connection>,
}

impl SqliteKv {
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

    /// Runs `work` on the store's connection for `service`; a failure of
    /// the store is logged here, and the plugin is told only that it failed.
    fn with<T>(
        &self,
        service: &str,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<Result<T, Failure>>,
    ) -> Result<T, Failure> {
        // A panic while holding the lock rolled its statement back; the connection is sound.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        work(&mut connection).unwrap_or_else(|err| {
            tracing::error!(service, "key-value store failure: {err}");
            Err(Failure::Unavailable)
        })
    }

    /// The value of `key` in `bucket` of `service`, if it has one.
    pub fn get(&self, service: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.with(service, |connection| {
            connection
                .prepare_cached(
                    "SELECT value FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
                )?
                .query_row(params![service, bucket, key], |row| row.get(0))
                .optional()
                .map(Ok)
        })
    }

    /// Keeps `value` under the write's key, unless that takes its service past its quota.
    pub fn set(&self, write: &Write<'_>, value: &[u8]) -> Result<(), Failure> {
        self.with(write.service, |connection| {
            let transaction = connection.transaction()?;
            let (usage, old) = (
                service_usage(&transaction, write.service)?,
                old_length(&transaction, write)?,
            );
            if let Err(refusal) = write.admit(usage, old, value.len()) {
                return Ok(Err(refusal));
            }
            put(&transaction, write, value)?;
            transaction.commit().map(Ok)
        })
    }

    /// Forgets `key`; a key that has no value is no error.
    pub fn delete(&self, service: &str, bucket: &str, key: &str) -> Result<(), Failure> {
        self.with(service, |connection| {
            connection
                .prepare_cached("DELETE FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3")?
                .execute(params![service, bucket, key])
                .map(|_| Ok(()))
        })
    }

    /// Up to `limit` keys of `bucket` in byte order, past the first `offset`.
    pub fn keys(
        &self,
        service: &str,
        bucket: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<String>, Failure> {
        self.with(service, |connection| {
            connection
                .prepare_cached(
                    "SELECT key FROM kv WHERE service = ?1 AND bucket = ?2 ORDER BY key LIMIT ?3 OFFSET ?4",
                )?
                .query_map(
                    params![service, bucket, sql_count(limit), sql_count(offset)],
                    |row| row.get::<_, String>(0),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(Ok)
        })
    }

    /// Adds `delta` to the whole number under the write's key and keeps the sum.
    pub fn increment(&self, write: &Write<'_>, delta: u64) -> Result<u64, Failure> {
        self.with(write.service, |connection| {
            let transaction = connection.transaction()?;
            let (usage, old) = (
                service_usage(&transaction, write.service)?,
                old_value(&transaction, write)?,
            );
            let next = match write.incremented(old.as_deref(), delta) {
                Ok(next) => next,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let value = next.to_string().into_bytes();
            let old = old.map(|old| old.len() as u64);
            if let Err(refusal) = write.admit(usage, old, value.len()) {
                return Ok(Err(refusal));
            }
            put(&transaction, write, &value)?;
            transaction.commit().map(|()| Ok(next))
        })
    }
}

/// SQLite counts in i64; a count is never negative.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// What `service` keeps.
fn service_usage(connection: &Connection, service: &str) -> rusqlite::Result<Usage> {
    connection
        .prepare_cached("SELECT keys, bytes FROM kv_usage WHERE service = ?1")?
        .query_row(params![service], |row| {
            Ok(Usage {
                keys: count(row.get(0)?),
                bytes: count(row.get(1)?),
            })
        })
        .optional()
        .map(Option::unwrap_or_default)
}

/// The bytes of the value under the write's key, if it has one.
fn old_length(connection: &Connection, write: &Write<'_>) -> rusqlite::Result<Option<u64>> {
    connection
        .prepare_cached(
            "SELECT length(value) FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
        )?
        .query_row(params![write.service, write.bucket, write.key], |row| {
            row.get(0).map(count)
        })
        .optional()
}

/// The value under the write's key, if it has one.
fn old_value(connection: &Connection, write: &Write<'_>) -> rusqlite::Result<Option<Vec<u8>>> {
    connection
        .prepare_cached("SELECT value FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3")?
        .query_row(params![write.service, write.bucket, write.key], |row| {
            row.get(0)
        })
        .optional()
}

fn put(connection: &Connection, write: &Write<'_>, value: &[u8]) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO kv (service, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (service, bucket, key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![write.service, write.bucket, write.key, value])
        .map(drop)
}

/// A count as SQLite takes it; past its range, its greatest.
fn sql_count(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_of(store: &SqliteKv, service: &str) -> Option<(i64, i64)> {
        store
            .with(service, |connection| {
                connection
                    .query_row(
                        "SELECT keys, bytes FROM kv_usage WHERE service = ?1",
                        params![service],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .map(Ok)
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
        let store = SqliteKv::open(Some(&path)).expect("the store opens");
        // Bytes of bucket, key and value: "ké" is 3 bytes.
        assert_eq!(usage_of(&store, "a"), Some((2, (1 + 2 + 2) + (1 + 3 + 1))));
        assert_eq!(usage_of(&store, "z"), Some((1, 2)));
        drop(store);
        // Opened again, it is not counted twice.
        let store = SqliteKv::open(Some(&path)).expect("the store opens again");
        assert_eq!(usage_of(&store, "a"), Some((2, 10)));

        let write = |sql: &str| {
            store
                .with("test", |connection| connection.execute_batch(sql).map(Ok))
                .map_err(|_| sql.to_owned())
                .expect("the write");
        };
        write("INSERT INTO kv VALUES ('a', 'b', 'new', x'01020304')");
        assert_eq!(usage_of(&store, "a"), Some((3, 10 + 1 + 3 + 4)));
        write("UPDATE kv SET value = x'01' WHERE service = 'a' AND key = 'new'");
        assert_eq!(usage_of(&store, "a"), Some((3, 10 + 1 + 3 + 1)));
        write(
            "INSERT INTO kv VALUES ('a', 'b', 'new', x'0102') ON CONFLICT (service, bucket, key) DO UPDATE SET value = excluded.value",
        );
        assert_eq!(usage_of(&store, "a"), Some((3, 10 + 1 + 3 + 2)));
        write("DELETE FROM kv WHERE service = 'a'");
        assert_eq!(usage_of(&store, "a"), Some((0, 0)));
        assert_eq!(usage_of(&store, "z"), Some((1, 2)));
        assert_eq!(usage_of(&store, "new-service"), None);
        write("INSERT INTO kv VALUES ('new-service', 'b', 'k', x'00')");
        assert_eq!(usage_of(&store, "new-service"), Some((1, 3)));
    }
}

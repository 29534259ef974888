//! `wasi:keyvalue` (store and atomics), kept by the host in SQLite
//! (`data_dir/keyvalue.sqlite3`), namespaced per service: a plugin can never
//! reach another service's keys, and its own outlive restarts and hot swaps
//! because they were never in the plugin.
//!
//! Each service has a quota of keys and of bytes (bucket names, keys and
//! values), `max_keyvalue_keys` and `max_keyvalue_kb`: a write that would
//! take it past either is refused, while deleting and shrinking always
//! work. What a service keeps is counted as it changes (`kv_usage`, kept
//! by triggers), so checking the quota costs one lookup.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};
use wasmtime::component::{HasSelf, Linker, Resource};

use super::sandbox::Sandbox;
use crate::config::KeyValueQuota;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/since_v0.1.0/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use bindings::wasi::keyvalue::{atomics, store};
use store::{Error, KeyResponse};

/// The longest key, bucket name and value a plugin may use.
const MAX_KEY_BYTES: usize = 1024;
const MAX_BUCKET_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Keys per page of `list-keys`.
const PAGE: u64 = 1000;

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

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        // A panic while holding the lock rolled its statement back; the connection is sound.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        work(&mut connection).map_err(|err| {
            tracing::error!("key-value store failure: {err}");
            Error::Other("the host's key-value store failed; try again".into())
        })
    }
}

/// One service's view of the store, in its calls' sandboxes.
#[derive(Clone)]
pub struct Namespace {
    pub store: Arc<KvStore>,
    pub service: Arc<str>,
    pub quota: KeyValueQuota,
}

impl Namespace {
    /// Refuses a write of `value_bytes` under `bucket`/`key` that would take
    /// the service past its quota; one that takes nothing more always passes.
    fn check_quota(
        &self,
        connection: &Connection,
        bucket: &str,
        key: &str,
        value_bytes: usize,
    ) -> rusqlite::Result<Result<(), String>> {
        // SQLite counts in i64; a count is never negative.
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        let (keys, bytes) = connection
            .query_row(
                "SELECT keys, bytes FROM kv_usage WHERE service = ?1",
                params![&*self.service],
                |row| Ok((count(row.get(0)?), count(row.get(1)?))),
            )
            .optional()?
            .unwrap_or((0, 0));
        let old = connection
            .query_row(
                "SELECT length(value) FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
                params![&*self.service, bucket, key],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .map(count);
        let service = &self.service;
        let (next_keys, next_bytes) = match old {
            Some(old) => (keys, (bytes + value_bytes as u64).saturating_sub(old)),
            None => (
                keys + 1,
                bytes + (bucket.len() + key.len() + value_bytes) as u64,
            ),
        };
        if next_keys > keys && next_keys > self.quota.keys {
            return Ok(Err(format!(
                "service \"{service}\" keeps {keys} keys, its quota (max_keyvalue_keys = {}), so {key:?} was not stored; delete keys it no longer needs, or ask the host's operator to raise max_keyvalue_keys",
                self.quota.keys
            )));
        }
        if next_bytes > bytes && next_bytes > self.quota.bytes {
            return Ok(Err(format!(
                "storing {key:?} would take service \"{service}\" to {} KiB of keys and values, past its quota of {} KiB (max_keyvalue_kb), so it was not stored; delete or shrink what it no longer needs, or ask the host's operator to raise max_keyvalue_kb",
                next_bytes.div_ceil(1024),
                self.quota.bytes / 1024
            )));
        }
        Ok(Ok(()))
    }
}

/// An open bucket of the calling service.
pub struct Bucket {
    name: String,
}

/// Links `wasi:keyvalue/store` and `atomics`.
pub fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    store::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |sandbox| sandbox)?;
    atomics::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |sandbox| sandbox)?;
    Ok(())
}

impl Sandbox {
    fn namespace(&self) -> Result<&Namespace, Error> {
        // Never reached: a plugin importing the store is refused at load
        // unless its service grants it.
        self.keyvalue.as_ref().ok_or(Error::AccessDenied)
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<String, Error> {
        self.table
            .get(bucket)
            .map(|bucket| bucket.name.clone())
            .map_err(|err| Error::Other(format!("that bucket is not open ({err})")))
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::Other(format!(
            "a key of {} bytes is longer than the {MAX_KEY_BYTES} this host keeps; use a shorter one",
            key.len()
        )));
    }
    Ok(())
}

impl store::Host for Sandbox {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        self.namespace()?;
        if identifier.len() > MAX_BUCKET_BYTES {
            return Err(Error::Other(format!(
                "a bucket name of {} bytes is longer than the {MAX_BUCKET_BYTES} this host keeps; use a shorter one",
                identifier.len()
            )));
        }
        self.table
            .push(Bucket { name: identifier })
            .map_err(|err| Error::Other(format!("cannot open another bucket ({err})")))
    }
}

impl store::HostBucket for Sandbox {
    fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        namespace.store.with(|connection| {
            connection
                .query_row(
                    "SELECT value FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
                    params![&*namespace.service, bucket, key],
                    |row| row.get(0),
                )
                .optional()
        })
    }

    fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), Error> {
        check_key(&key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::Other(format!(
                "a value of {} KiB is larger than the {} KiB this host keeps; store less under one key",
                value.len().div_ceil(1024),
                MAX_VALUE_BYTES / 1024
            )));
        }
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        namespace
            .store
            .with(|connection| {
                let transaction = connection.transaction()?;
                if let Err(refusal) =
                    namespace.check_quota(&transaction, &bucket, &key, value.len())?
                {
                    return Ok(Err(refusal));
                }
                transaction.execute(
                    "INSERT INTO kv (service, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (service, bucket, key) DO UPDATE SET value = excluded.value",
                    params![&*namespace.service, bucket, key, value],
                )?;
                transaction.commit().map(Ok)
            })?
            .map_err(Error::Other)
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        namespace.store.with(|connection| {
            connection
                .execute(
                    "DELETE FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
                    params![&*namespace.service, bucket, key],
                )
                .map(drop)
        })
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, Error> {
        self.get(bucket, key).map(|value| value.is_some())
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<KeyResponse, Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        let offset = cursor.unwrap_or(0);
        let keys = namespace.store.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT key FROM kv WHERE service = ?1 AND bucket = ?2 ORDER BY key LIMIT ?3 OFFSET ?4",
            )?;
            statement
                .query_map(
                    params![
                        &*namespace.service,
                        bucket,
                        PAGE as i64 + 1,
                        i64::try_from(offset).unwrap_or(i64::MAX)
                    ],
                    |row| row.get::<_, String>(0),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let more = keys.len() as u64 > PAGE;
        Ok(KeyResponse {
            keys: keys.into_iter().take(PAGE as usize).collect(),
            cursor: more.then_some(offset + PAGE),
        })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for Sandbox {
    fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, Error> {
        check_key(&key)?;
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        let mut refusal = None;
        let next = namespace.store.with(|connection| {
            let transaction = connection.transaction()?;
            let current: Option<Vec<u8>> = transaction
                .query_row(
                    "SELECT value FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
                    params![&*namespace.service, bucket, key],
                    |row| row.get(0),
                )
                .optional()?;
            let current = match current {
                None => 0,
                Some(bytes) => match std::str::from_utf8(&bytes).ok().and_then(|text| text.parse::<u64>().ok()) {
                    Some(number) => number,
                    None => {
                        refusal = Some(format!("the value of {key:?} is not a whole number; increment only keys that hold one"));
                        return Ok(None);
                    }
                },
            };
            let Some(next) = current.checked_add(delta) else {
                refusal = Some(format!("incrementing {key:?} by {delta} would overflow"));
                return Ok(None);
            };
            if let Err(why) = namespace.check_quota(&transaction, &bucket, &key, next.to_string().len())? {
                refusal = Some(why);
                return Ok(None);
            }
            transaction.execute(
                "INSERT INTO kv (service, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (service, bucket, key) DO UPDATE SET value = excluded.value",
                params![&*namespace.service, bucket, key, next.to_string().into_bytes()],
            )?;
            transaction.commit()?;
            Ok(Some(next))
        })?;
        match (next, refusal) {
            (Some(next), _) => Ok(next),
            (None, refusal) => Err(Error::Other(refusal.unwrap_or_default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

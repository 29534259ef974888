//! `wasi:keyvalue` (store and atomics), kept by the host in SQLite
//! (`data_dir/keyvalue.sqlite3`), namespaced per service: a plugin can never
//! reach another service's keys, and its own outlive restarts and hot swaps
//! because they were never in the plugin.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};
use wasmtime::component::{HasSelf, Linker, Resource};

use super::sandbox::Sandbox;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/deps/keyvalue",
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
                 ) WITHOUT ROWID;",
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
        namespace.store.with(|connection| {
            connection
                .execute(
                    "INSERT INTO kv (service, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (service, bucket, key) DO UPDATE SET value = excluded.value",
                    params![&*namespace.service, bucket, key, value],
                )
                .map(drop)
        })
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

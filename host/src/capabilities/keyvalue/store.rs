//! The key-value store every service's keys are kept in, one store with two
//! backends (the shape of Spin's key-value factor): SQLite, embedded in the
//! host (`data_dir/keyvalue.sqlite3`), or the shared store on PostgreSQL,
//! so that every host of a fleet sees the same keys.
//!
//! What a plugin sees does not depend on the backend: the limits, the
//! quota's arithmetic, the increment's parsing and every sentence are
//! decided here, once; a backend only reads and writes rows, holding the
//! service's usage still while it decides a write.

use std::sync::Arc;

use super::KeyValueQuota;
use super::postgres::PostgresKv;
use super::sqlite::SqliteKv;
use crate::capabilities::Start;

/// The longest key a plugin may use, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest bucket name a plugin may use, in bytes.
pub const MAX_BUCKET_BYTES: usize = 256;
/// The largest value a plugin may keep under one key, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Keys per page of `list-keys`.
pub const PAGE: u64 = 1000;

/// What a plugin is told when the store itself failed; the cause is in the
/// host's log.
pub const FAILED: &str = "the host's key-value store failed; try again";

/// Why a key-value operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The plugin asked for something the store does not do (past a limit
    /// or its quota, an increment of a non-number); the sentence says what
    /// and what to do.
    Refused(String),
    /// The store failed or cannot be reached; logged where it happened.
    Unavailable,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(why) => f.write_str(why),
            Failure::Unavailable => f.write_str(FAILED),
        }
    }
}

/// One page of a bucket's keys, and where the next starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// At most [`PAGE`] keys, in byte order.
    pub keys: Vec<String>,
    /// `None` on the last page.
    pub cursor: Option<u64>,
}

/// What one service keeps, over all its buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Keys over all its buckets.
    pub keys: u64,
    /// Bytes of bucket names, keys and values.
    pub bytes: u64,
}

/// Every service's keys, on the host's chosen backend.
// One per host, behind an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum KvStore {
    /// Embedded: one SQLite file of this host's.
    Sqlite(SqliteKv),
    /// Shared by every host on the store's PostgreSQL.
    Postgres(PostgresKv),
}

impl KvStore {
    /// The shared store when the host has one, else the SQLite file
    /// `start.keyvalue_path` (in memory without one).
    pub fn open(start: &Start<'_>) -> anyhow::Result<Arc<Self>> {
        let store = match start.store {
            Some(shared) => KvStore::Postgres(PostgresKv::new(shared.clone())),
            None => KvStore::Sqlite(SqliteKv::open(start.keyvalue_path)?),
        };
        Ok(Arc::new(store))
    }

    /// The value of `key` in `bucket` of `service`, if it has one.
    pub async fn get(
        &self,
        service: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, Failure> {
        if !storable(key) {
            return Ok(None);
        }
        match self {
            KvStore::Sqlite(store) => store.get(service, bucket, key),
            KvStore::Postgres(store) => store.get(service, bucket, key).await,
        }
    }

    /// Whether `key` in `bucket` of `service` has a value.
    pub async fn exists(&self, service: &str, bucket: &str, key: &str) -> Result<bool, Failure> {
        self.get(service, bucket, key)
            .await
            .map(|value| value.is_some())
    }

    /// Keeps `value` under `key`, unless that takes `service` past `quota`.
    pub async fn set(
        &self,
        service: &str,
        quota: KeyValueQuota,
        bucket: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), Failure> {
        check_key(key).map_err(Failure::Refused)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Failure::Refused(format!(
                "a value of {} KiB is larger than the {} KiB this host keeps; store less under one key",
                value.len().div_ceil(1024),
                MAX_VALUE_BYTES / 1024
            )));
        }
        let write = Write {
            service,
            quota,
            bucket,
            key,
        };
        match self {
            KvStore::Sqlite(store) => store.set(&write, value),
            KvStore::Postgres(store) => store.set(&write, value).await,
        }
    }

    /// Forgets `key`; a key that has no value is no error.
    pub async fn delete(&self, service: &str, bucket: &str, key: &str) -> Result<(), Failure> {
        if !storable(key) {
            return Ok(());
        }
        match self {
            KvStore::Sqlite(store) => store.delete(service, bucket, key),
            KvStore::Postgres(store) => store.delete(service, bucket, key).await,
        }
    }

    /// A page of the keys of `bucket`, in byte order, from `cursor` (what
    /// the previous page gave; `None` for the first).
    pub async fn list_keys(
        &self,
        service: &str,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<KeyPage, Failure> {
        let offset = cursor.unwrap_or(0);
        // One more than a page tells whether another follows.
        let mut keys = match self {
            KvStore::Sqlite(store) => store.keys(service, bucket, offset, PAGE + 1),
            KvStore::Postgres(store) => store.keys(service, bucket, offset, PAGE + 1).await,
        }?;
        let more = keys.len() as u64 > PAGE;
        keys.truncate(PAGE as usize);
        Ok(KeyPage {
            keys,
            cursor: more.then(|| offset.saturating_add(PAGE)),
        })
    }

    /// Adds `delta` to the whole number kept under `key` (0 when it has no
    /// value) and keeps the sum, atomically: concurrent increments, from
    /// any host, never lose one another's.
    pub async fn increment(
        &self,
        service: &str,
        quota: KeyValueQuota,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, Failure> {
        check_key(key).map_err(Failure::Refused)?;
        let write = Write {
            service,
            quota,
            bucket,
            key,
        };
        match self {
            KvStore::Sqlite(store) => store.increment(&write, delta),
            KvStore::Postgres(store) => store.increment(&write, delta).await,
        }
    }
}

/// One write's place and its service's quota, as a backend decides it.
pub struct Write<'a> {
    /// The service whose namespace is written.
    pub service: &'a str,
    /// What the service may keep.
    pub quota: KeyValueQuota,
    /// The bucket, as the plugin opened it.
    pub bucket: &'a str,
    /// The key written.
    pub key: &'a str,
}

impl Write<'_> {
    /// Refuses a value of `value_bytes` that would take the service, which
    /// keeps `usage` (and `old` bytes under this key, if it has a value),
    /// past its quota; one that takes nothing more always passes.
    pub fn admit(&self, usage: Usage, old: Option<u64>, value_bytes: usize) -> Result<(), Failure> {
        let Usage { keys, bytes } = usage;
        let (service, key) = (self.service, self.key);
        let (next_keys, next_bytes) = match old {
            Some(old) => (keys, (bytes + value_bytes as u64).saturating_sub(old)),
            None => (
                keys + 1,
                bytes + (self.bucket.len() + key.len() + value_bytes) as u64,
            ),
        };
        if next_keys > keys && next_keys > self.quota.keys {
            return Err(Failure::Refused(format!(
                "service \"{service}\" keeps {keys} keys, its quota (max_keyvalue_keys = {}), so {key:?} was not stored; delete keys it no longer needs, or ask the host's operator to raise max_keyvalue_keys",
                self.quota.keys
            )));
        }
        if next_bytes > bytes && next_bytes > self.quota.bytes {
            return Err(Failure::Refused(format!(
                "storing {key:?} would take service \"{service}\" to {} KiB of keys and values, past its quota of {} KiB (max_keyvalue_kb), so it was not stored; delete or shrink what it no longer needs, or ask the host's operator to raise max_keyvalue_kb",
                next_bytes.div_ceil(1024),
                self.quota.bytes / 1024
            )));
        }
        Ok(())
    }

    /// What an increment by `delta` of `current` (the key's value, if it
    /// has one) comes to, or why it cannot be done.
    pub fn incremented(&self, current: Option<&[u8]>, delta: u64) -> Result<u64, Failure> {
        let key = self.key;
        let current = match current {
            None => 0,
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| {
                    Failure::Refused(format!(
                        "the value of {key:?} is not a whole number; increment only keys that hold one"
                    ))
                })?,
        };
        current.checked_add(delta).ok_or_else(|| {
            Failure::Refused(format!("incrementing {key:?} by {delta} would overflow"))
        })
    }
}

/// Refuses a bucket name the store cannot keep.
pub fn check_bucket(name: &str) -> Result<(), String> {
    if name.len() > MAX_BUCKET_BYTES {
        return Err(format!(
            "a bucket name of {} bytes is longer than the {MAX_BUCKET_BYTES} this host keeps; use a shorter one",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err(
            "a bucket name may not hold a NUL character, which the store cannot keep; use another name"
                .into(),
        );
    }
    Ok(())
}

/// Refuses a key the store cannot keep.
fn check_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "a key of {} bytes is longer than the {MAX_KEY_BYTES} this host keeps; use a shorter one",
            key.len()
        ));
    }
    if !storable(key) {
        return Err(format!(
            "the key {key:?} holds a NUL character, which the store cannot keep; use another key"
        ));
    }
    Ok(())
}

/// Whether a key could ever have been stored: PostgreSQL's text holds no
/// NUL, so neither backend keeps one, and reading one finds nothing.
fn storable(key: &str) -> bool {
    !key.contains('\0')
}

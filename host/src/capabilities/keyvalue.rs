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

mod store;

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::error::Context as _;

use super::capability::{CallInfo, Capability, Holds, Reading, Start};
use crate::setting::one_to;
pub use store::KvStore;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/since_v0.1.0/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use bindings::wasi::keyvalue::{atomics, store as kv};
use kv::{Error, KeyResponse};

/// The longest key, bucket name and value a plugin may use.
const MAX_KEY_BYTES: usize = 1024;
const MAX_BUCKET_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Keys per page of `list-keys`.
const PAGE: u64 = 1000;

impl From<store::Unavailable> for Error {
    fn from(_: store::Unavailable) -> Self {
        Error::Other("the host's key-value store failed; try again".into())
    }
}

/// Keys a service may keep in the key-value store, unless it says otherwise.
pub const DEFAULT_KEYVALUE_MAX_KEYS: u64 = 100_000;
/// The most `max_keyvalue_keys` may be.
pub const MAX_KEYVALUE_KEYS: u64 = 100_000_000;
/// KiB of buckets, keys and values a service may keep, unless it says otherwise.
pub const DEFAULT_KEYVALUE_MAX_KB: u64 = 64 * 1024;
/// The most `max_keyvalue_kb` may be (64 GiB).
pub const MAX_KEYVALUE_KB: u64 = 64 * 1024 * 1024;

/// How much one service may keep in the key-value store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValueQuota {
    /// Keys over all its buckets (`max_keyvalue_keys`).
    pub keys: u64,
    /// Bytes of bucket names, keys and values over all its buckets (`max_keyvalue_kb`).
    pub bytes: u64,
}

impl Default for KeyValueQuota {
    fn default() -> Self {
        Self {
            keys: DEFAULT_KEYVALUE_MAX_KEYS,
            bytes: DEFAULT_KEYVALUE_MAX_KB * 1024,
        }
    }
}

/// `keyvalue`, `max_keyvalue_keys` and `max_keyvalue_kb`, as written.
#[derive(Debug, Default)]
pub struct KeyValueFile {
    /// Grants `wasi:keyvalue`.
    pub keyvalue: Option<bool>,
    /// Keys the service may keep in the key-value store.
    pub max_keyvalue_keys: Option<u64>,
    /// Bytes of buckets, keys and values it may keep there.
    pub max_keyvalue_kb: Option<u64>,
}

/// `keyvalue = true`, and what the service may keep in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyValueGrant {
    pub granted: bool,
    /// Checked and kept even while the store is not granted.
    pub quota: KeyValueQuota,
}

/// `wasi:keyvalue/store` and `atomics`, granted by `keyvalue = true`.
pub struct KeyValue;

/// One call's `wasi:keyvalue`: its service's keys, and the buckets it opened.
pub struct KeyValueCall {
    namespace: Option<Namespace>,
    buckets: ResourceTable,
}

impl Capability for KeyValue {
    const PREFIX: &'static str = "wasi:keyvalue/";
    const KEY: &'static str = "`keyvalue = true`";

    type File = KeyValueFile;
    type Grant = KeyValueGrant;
    type Host = Arc<KvStore>;
    type Granted = Option<Namespace>;
    type Call = KeyValueCall;

    fn check(file: KeyValueFile, _reading: &Reading<'_>) -> Result<KeyValueGrant, String> {
        let max_keyvalue_keys = file.max_keyvalue_keys.unwrap_or(DEFAULT_KEYVALUE_MAX_KEYS);
        one_to("max_keyvalue_keys", max_keyvalue_keys, MAX_KEYVALUE_KEYS)?;
        let max_keyvalue_kb = file.max_keyvalue_kb.unwrap_or(DEFAULT_KEYVALUE_MAX_KB);
        one_to("max_keyvalue_kb", max_keyvalue_kb, MAX_KEYVALUE_KB)?;
        Ok(KeyValueGrant {
            granted: file.keyvalue.unwrap_or(false),
            quota: KeyValueQuota {
                keys: max_keyvalue_keys,
                bytes: max_keyvalue_kb * 1024,
            },
        })
    }

    fn is_granted(grant: &KeyValueGrant) -> bool {
        grant.granted
    }

    fn start(start: &Start<'_>) -> anyhow::Result<Arc<KvStore>> {
        KvStore::open(start.keyvalue_path).map(Arc::new)
    }

    fn granted(
        grant: &KeyValueGrant,
        store: &Arc<KvStore>,
        service: &Arc<str>,
    ) -> Option<Namespace> {
        grant.granted.then(|| Namespace {
            store: store.clone(),
            service: service.clone(),
            quota: grant.quota,
        })
    }

    fn call(granted: &Option<Namespace>, _call: &CallInfo) -> KeyValueCall {
        KeyValueCall {
            namespace: granted.clone(),
            buckets: ResourceTable::new(),
        }
    }

    fn add_to_linker<T: Holds<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        kv::add_to_linker::<T, HasSelf<KeyValueCall>>(linker, |store| {
            <T as Holds<KeyValue>>::call_state(store).0
        })
        .and_then(|()| {
            atomics::add_to_linker::<T, HasSelf<KeyValueCall>>(linker, |store| {
                <T as Holds<KeyValue>>::call_state(store).0
            })
        })
        .context("cannot link wasi:keyvalue for plugins")
    }
}

/// An open bucket of the calling service.
pub struct Bucket {
    name: String,
}

impl KeyValueCall {
    fn namespace(&self) -> Result<&Namespace, Error> {
        // Never reached: a plugin importing the store is refused at load
        // unless its service grants it.
        self.namespace.as_ref().ok_or(Error::AccessDenied)
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<String, Error> {
        self.buckets
            .get(bucket)
            .map(|bucket| bucket.name.clone())
            .map_err(|err| Error::Other(format!("that bucket is not open ({err})")))
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

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::Other(format!(
            "a key of {} bytes is longer than the {MAX_KEY_BYTES} this host keeps; use a shorter one",
            key.len()
        )));
    }
    Ok(())
}

impl kv::Host for KeyValueCall {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        self.namespace()?;
        if identifier.len() > MAX_BUCKET_BYTES {
            return Err(Error::Other(format!(
                "a bucket name of {} bytes is longer than the {MAX_BUCKET_BYTES} this host keeps; use a shorter one",
                identifier.len()
            )));
        }
        self.buckets
            .push(Bucket { name: identifier })
            .map_err(|err| Error::Other(format!("cannot open another bucket ({err})")))
    }
}

impl kv::HostBucket for KeyValueCall {
    fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        namespace
            .store
            .with(|connection| {
                connection
                    .query_row(
                        "SELECT value FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
                        params![&*namespace.service, bucket, key],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .map_err(Error::from)
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
        namespace
            .store
            .with(|connection| {
                connection
                    .execute(
                        "DELETE FROM kv WHERE service = ?1 AND bucket = ?2 AND key = ?3",
                        params![&*namespace.service, bucket, key],
                    )
                    .map(drop)
            })
            .map_err(Error::from)
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
        self.buckets.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueCall {
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

    fn parse(text: &str) -> Result<crate::config::Config, String> {
        crate::config::Config::parse(
            text,
            std::path::Path::new("/etc/orizuru"),
            &crate::config::Overrides::default(),
            |_| None,
        )
        .map_err(|err| err.to_string())
    }

    #[test]
    fn keyvalue_quotas_have_defaults_and_ranges() {
        let parse = |extra: &str| {
            parse(&format!(
                "[[services]]\nid = \"kv\"\nplugin = \"kv.wasm\"\npassword = \"p\"\nkeyvalue = true\n{extra}"
            ))
        };
        let quota = |extra: &str| parse(extra).expect(extra).services[0].grants.keyvalue.quota;
        assert_eq!(quota(""), KeyValueQuota::default());
        assert_eq!(
            quota("max_keyvalue_keys = 10\nmax_keyvalue_kb = 2\n"),
            KeyValueQuota {
                keys: 10,
                bytes: 2048
            }
        );
        for (line, says) in [
            (
                "max_keyvalue_keys = 0",
                "services[0] (id \"kv\"): max_keyvalue_keys is 0; give a value from 1 to 100000000",
            ),
            (
                "max_keyvalue_kb = 0",
                "services[0] (id \"kv\"): max_keyvalue_kb is 0; give a value from 1 to 67108864",
            ),
            (
                "max_keyvalue_kb = 9223372036854775807",
                "max_keyvalue_kb is 9223372036854775807; give a value from 1 to 67108864",
            ),
        ] {
            let err = parse(line).expect_err(line);
            assert!(err.contains(says), "{line}: {err}");
        }
    }
}

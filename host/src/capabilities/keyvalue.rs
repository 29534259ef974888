//! `wasi:keyvalue` (store and atomics), kept by the host in SQLite
//! (`data_dir/keyvalue.sqlite3`) or, with a `[store]`, in the shared store
//! every host of a fleet sees (see [`KvStore`]), namespaced per service: a
//! plugin can never reach another service's keys, and its own outlive
//! restarts and hot swaps because they were never in the plugin.
//!
//! Each service has a quota of keys and of bytes (bucket names, keys and
//! values), `max_keyvalue_keys` and `max_keyvalue_kb`: a write that would
//! take it past either is refused, while deleting and shrinking always
//! work. What a service keeps is counted as it changes (`kv_usage`, kept
//! by triggers), so checking the quota costs one lookup.

#[cfg(test)]
mod conformance;
mod postgres;
mod sqlite;
mod store;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::error::Context as _;

use super::capability::{CallInfo, Capability, Holds, Reading, Start};
use crate::setting::one_to;
pub use postgres::PostgresKv;
pub use sqlite::SqliteKv;
pub use store::{
    FAILED, Failure, KeyPage, KvStore, MAX_BUCKET_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES, PAGE,
    Usage, Write,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/since_v0.1.0/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async },
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use bindings::wasi::keyvalue::{atomics, store as kv};
use kv::{Error, KeyResponse};

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        Error::Other(failure.to_string())
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
        KvStore::open(start)
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

impl kv::Host for KeyValueCall {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        self.namespace()?;
        store::check_bucket(&identifier).map_err(Error::Other)?;
        self.buckets
            .push(Bucket { name: identifier })
            .map_err(|err| Error::Other(format!("cannot open another bucket ({err})")))
    }
}

impl kv::HostBucket for KeyValueCall {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        Ok(namespace
            .store
            .get(&namespace.service, &bucket, &key)
            .await?)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        Ok(namespace
            .store
            .set(&namespace.service, namespace.quota, &bucket, &key, &value)
            .await?)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        Ok(namespace
            .store
            .delete(&namespace.service, &bucket, &key)
            .await?)
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        Ok(namespace
            .store
            .exists(&namespace.service, &bucket, &key)
            .await?)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<KeyResponse, Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        let page = namespace
            .store
            .list_keys(&namespace.service, &bucket, cursor)
            .await?;
        Ok(KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.buckets.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueCall {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, Error> {
        let (bucket, namespace) = (self.bucket(&bucket)?, self.namespace()?);
        Ok(namespace
            .store
            .increment(&namespace.service, namespace.quota, &bucket, &key, delta)
            .await?)
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

//! Durable key-value state, kept by the host for this service alone: it
//! outlives restarts and hot swaps, and no other service can read it.
//!
//! Needs `keyvalue = true` in the service's `[[services]]` entry: a plugin
//! that calls these functions is refused at load without it.
//!
//! ```no_run
//! # fn f() -> orizuru_sdk::Result<()> {
//! use orizuru_sdk::kv::Bucket;
//!
//! let bucket = Bucket::open("ports")?;
//! let port = 5000 + bucket.increment("next", 1)?;
//! bucket.set_json("instance:orders", &port)?;
//! let kept: Option<u64> = bucket.get_json("instance:orders")?;
//! # Ok(()) }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::bindings::wasi::keyvalue::{atomics, store};
use crate::Error;

/// A bucket of values by key.
pub struct Bucket {
    inner: store::Bucket,
    name: String,
}

impl Bucket {
    /// Opens the bucket `name` (the empty name is the service's default bucket).
    pub fn open(name: &str) -> crate::Result<Bucket> {
        store::open(name)
            .map(|inner| Bucket {
                inner,
                name: name.to_owned(),
            })
            .map_err(|error| refused(name, error))
    }

    /// The value of `key`, or `None`.
    pub fn get(&self, key: &str) -> crate::Result<Option<Vec<u8>>> {
        self.inner.get(key).map_err(|error| self.refused(error))
    }

    /// The value of `key` read as JSON, or `None`.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> crate::Result<Option<T>> {
        let Some(bytes) = self.get(key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            Error::failed(format!(
                "the value of {key:?} in bucket {:?} is not the JSON expected: {err}",
                self.name
            ))
        })
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> crate::Result<()> {
        self.inner
            .set(key, value.as_ref())
            .map_err(|error| self.refused(error))
    }

    /// Sets `key` to `value` written as JSON.
    pub fn set_json<T: Serialize>(&self, key: &str, value: &T) -> crate::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|err| {
            Error::failed(format!(
                "the value for {key:?} cannot be written as JSON: {err}"
            ))
        })?;
        self.set(key, bytes)
    }

    /// Removes `key` (removing a missing key is no error).
    pub fn delete(&self, key: &str) -> crate::Result<()> {
        self.inner.delete(key).map_err(|error| self.refused(error))
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> crate::Result<bool> {
        self.inner.exists(key).map_err(|error| self.refused(error))
    }

    /// Every key of the bucket, in order.
    pub fn keys(&self) -> crate::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .inner
                .list_keys(cursor)
                .map_err(|error| self.refused(error))?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Adds `delta` to the number at `key` (0 when missing) in one step no
    /// other call can split, and answers the new number.
    pub fn increment(&self, key: &str, delta: u64) -> crate::Result<u64> {
        atomics::increment(&self.inner, key, delta).map_err(|error| self.refused(error))
    }

    fn refused(&self, error: store::Error) -> Error {
        refused(&self.name, error)
    }
}

fn refused(bucket: &str, error: store::Error) -> Error {
    let why = match error {
        store::Error::NoSuchStore => "it does not exist".to_owned(),
        store::Error::AccessDenied => {
            "this service is not granted the key-value store (keyvalue = true)".to_owned()
        }
        store::Error::Other(why) => why,
    };
    Error::failed(format!("the key-value bucket {bucket:?} refused: {why}"))
}

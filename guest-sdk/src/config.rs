//! The service's settings and secrets, as its operator wrote them under
//! `[services.config]` (values) and `[services.secrets]` (read by the host
//! from the environment or a file; the plugin gets the value, the host's
//! log and admin API never show it).
//!
//! Needs one of those tables in the service's `[[services]]` entry: a
//! plugin that calls these functions is refused at load without it.
//!
//! ```no_run
//! # fn f() -> orizuru_sdk::Result<()> {
//! let region = orizuru_sdk::config::require("region")?;
//! let tier = orizuru_sdk::config::get("tier")?.unwrap_or_else(|| "standard".into());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use crate::__private::bindings::wasi::config::store;
use crate::Error;

/// The value of `key`, or `None` when the operator did not set it.
pub fn get(key: &str) -> crate::Result<Option<String>> {
    store::get(key).map_err(unreadable)
}

/// The value of `key`, or an error saying which key to set.
pub fn require(key: &str) -> crate::Result<String> {
    get(key)?.ok_or_else(|| {
        Error::failed(format!(
            "the service's config has no \"{key}\"; its operator must set it under [services.config] or [services.secrets]"
        ))
    })
}

/// Every value and secret, by key.
pub fn all() -> crate::Result<BTreeMap<String, String>> {
    store::get_all()
        .map(|pairs| pairs.into_iter().collect())
        .map_err(unreadable)
}

fn unreadable(error: store::Error) -> Error {
    let why = match error {
        store::Error::Upstream(why) | store::Error::Io(why) => why,
    };
    Error::failed(format!("the service's config could not be read: {why}"))
}

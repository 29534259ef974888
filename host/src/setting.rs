//! What every part of the config reads a setting with: the [`Secret`]
//! newtype, the range checks whose sentences all keys share, and durations
//! written back as an operator wrote them.
//!
//! A leaf: the config file and each capability's own keys use it, and it
//! uses neither.

use std::time::Duration;

/// A value that never appears in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `value` units in bytes, refused with a sentence when it does not fit.
pub fn in_bytes(key: &str, value: u64, unit: u64) -> Result<u64, String> {
    value.checked_mul(unit).ok_or_else(|| {
        format!("{key} is {value}, too large to count in bytes; give a smaller value")
    })
}

/// A value from 1 to `max`.
pub fn one_to(key: &str, value: u64, max: u64) -> Result<(), String> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{key} is {value}; give a value from 1 to {max}"))
    }
}

pub fn at_least_one(key: &str, value: u64) -> Result<(), String> {
    if value == 0 {
        Err(format!("{key} is 0; give at least 1"))
    } else {
        Ok(())
    }
}

/// `30s`, `1.5s`, `250ms`: how an operator wrote it.
pub fn humanize(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else if millis > 1000 {
        format!("{}s", duration.as_secs_f64())
    } else {
        format!("{millis}ms")
    }
}

//! Lines into the host's log, at a level, tagged by the host with the
//! service, the instance, the request id and tsuru's event id.
//!
//! Needs `logging = true` in the service's `[[services]]` entry: a plugin that
//! calls these functions is refused at load without it. (What a plugin
//! prints to stdout or stderr reaches the log too, without a level.)
//!
//! ```no_run
//! orizuru_sdk::log::info("creating the database");
//! ```

use crate::__private::bindings::wasi::logging::logging::{Level, log};

/// Logs at the trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, "", message.as_ref());
}

/// Logs at the debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, "", message.as_ref());
}

/// Logs at the info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, "", message.as_ref());
}

/// Logs at the warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, "", message.as_ref());
}

/// Logs at the error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, "", message.as_ref());
}

//! What one capability is made of, so that one list in
//! [`super`] can hold them all: its keys in a service's entry and their
//! check, the state it keeps for the whole host, for one plugin version and
//! for one call, its linking, and the import prefix it answers for.
//!
//! The shape is Spin's factors and wasmtime's `WasiView`: a capability's
//! host functions are implemented on its own per-call state, which the
//! linker reaches through a projection of the store's data ([`Holds`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};

use crate::call_log::{CallTags, Redactor};
use crate::setting::Secret;

/// One capability a service may grant its plugin.
pub trait Capability: Sized + 'static {
    /// Import names start with this (`wasi:logging/`).
    const PREFIX: &'static str;
    /// What an operator writes in the service's entry to grant it.
    const KEY: &'static str;

    /// Its keys in a `[[services]]` entry, as written.
    type File;
    /// Its keys, checked: what the service may do with it.
    type Grant: Clone + Default + PartialEq + std::fmt::Debug;
    /// What it keeps for the whole host (the key-value store).
    type Host: Send + Sync;
    /// What every call of one plugin version shares (the SQL pools).
    type Granted: Send + Sync;
    /// What one call holds; its host functions are implemented on it.
    type Call: Send + 'static;

    /// Checks its keys; the sentence says what is wrong and what to do.
    fn check(file: Self::File, reading: &Reading<'_>) -> Result<Self::Grant, String>;
    /// Whether the service's entry grants it at all.
    fn is_granted(grant: &Self::Grant) -> bool;
    /// What the host blanks out of the plugin's text.
    fn secrets(_grant: &Self::Grant) -> Vec<&Secret> {
        Vec::new()
    }
    /// Its state for the whole host, made once at start.
    fn start(start: &Start<'_>) -> anyhow::Result<Self::Host>;
    /// Its state for the calls of one plugin version of `service`.
    fn granted(grant: &Self::Grant, host: &Self::Host, service: &Arc<str>) -> Self::Granted;
    /// Its state for one call.
    fn call(granted: &Self::Granted, call: &CallInfo) -> Self::Call;
    /// Logs what is left of the call's use of it.
    fn finish(_call: &Self::Call) {}
    /// Links its interfaces; the import check decides who may use them.
    fn add_to_linker<T: Holds<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()>;
}

/// A store whose data holds the per-call state of capability `C`, and the
/// resource table it shares with WASI (wasi:http's bodies are WASI streams).
pub trait Holds<C: Capability>: Send + 'static {
    fn call_state(&mut self) -> (&mut C::Call, &mut ResourceTable);
}

/// What a capability's keys are read with.
pub struct Reading<'a> {
    /// The config file's folder: relative paths are read from it.
    pub base: &'a Path,
    /// Looks up environment variables (tests give a fake one).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The service's `timeout_ms`: what bounds a request or statement unless
    /// the capability's own table says otherwise.
    pub service_timeout: Duration,
}

impl Reading<'_> {
    /// A value table `at` gives by `KEY_env` (an environment variable's
    /// name) or `KEY_file` (a file's path, relative to the config's folder),
    /// exactly one of them: the variable's value, or the file's text without
    /// its last line break. A missing variable, an unreadable or empty file,
    /// or neither key (or both) is a sentence naming the key; the value is
    /// never in it. `what` names the value for people (`URL`, `password`).
    pub fn env_or_file(
        &self,
        at: &str,
        key: &str,
        what: &str,
        variable: Option<String>,
        file: Option<std::path::PathBuf>,
    ) -> Result<String, String> {
        match (variable, file) {
            (Some(variable), None) => (self.env)(&variable).filter(|value| !value.is_empty()).ok_or_else(|| {
                format!("{at}: {key}_env names the environment variable {variable}, which is not set or empty; set it, or remove the table")
            }),
            (None, Some(file)) => {
                let path = self.base.join(file);
                let text = std::fs::read_to_string(&path).map_err(|err| {
                    format!("{at}: {key}_file names {}, which cannot be read ({err}); create it, or remove the table", path.display())
                })?;
                // A file written by `echo` ends with a line break that is not part of the value.
                let value = text
                    .strip_suffix('\n')
                    .map(|text| text.strip_suffix('\r').unwrap_or(text))
                    .unwrap_or(&text);
                if value.is_empty() {
                    return Err(format!(
                        "{at}: {key}_file names {}, which is empty; write the {what} in it",
                        path.display()
                    ));
                }
                Ok(value.to_owned())
            }
            _ => Err(format!(
                "{at} must say where its {what} is read from: {key}_env = \"NAME\" or {key}_file = \"PATH\", one of them"
            )),
        }
    }
}

/// What the host tells the capabilities at start.
pub struct Start<'a> {
    /// The key-value store's file; `None` keeps it in memory.
    pub keyvalue_path: Option<&'a Path>,
    /// The shared store; when there is one, the key-value store is kept
    /// there and `keyvalue_path` is not used.
    pub store: Option<&'a crate::store::postgres::Postgres>,
}

/// What one call is, as its capabilities log it.
pub struct CallInfo {
    pub service: Arc<str>,
    pub tags: CallTags,
    pub redactor: Redactor,
    /// The service's `max_log_lines`.
    pub log_lines: u32,
}

//! `wasi:config/store` (`[services.config]`, `[services.secrets]`): values
//! the operator gives a service's plugin, and secrets read at start from the
//! environment or files, which the plugin reads alike and the host blanks
//! out of everything the plugin writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use serde::Deserialize;
use wasmtime::component::Linker;
use wasmtime::error::Context as _;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::capability::{CallInfo, Capability, Holds, Reading, Start};
use crate::setting::Secret;

/// `wasi:config/store`, granted by a `[services.config]` or `[services.secrets]` table.
pub struct Config;

/// The `[services.config]` and `[services.secrets]` tables, as written.
pub struct ConfigTables {
    pub values: Option<BTreeMap<String, String>>,
    pub secrets: Option<BTreeMap<String, SecretFile>>,
}

/// Where a secret of `[services.secrets]` is read from: `{ env = "NAME" }`
/// or `{ file = "/run/secrets/name" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

/// The values a plugin reads through `wasi:config/store`.
#[derive(Clone, Default, PartialEq)]
pub struct ConfigValues {
    pub values: BTreeMap<String, String>,
    /// Read at start from the environment or files; never logged or shown.
    pub secrets: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for ConfigValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigValues")
            .field("config", &self.values.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One call's `wasi:config/store`: its service's values and secrets together.
pub struct ConfigCall {
    variables: Option<Arc<WasiConfigVariables>>,
}

/// What a plugin whose service has no config table would read (it is
/// refused at load, so this is never seen).
static NO_CONFIG: LazyLock<WasiConfigVariables> = LazyLock::new(WasiConfigVariables::new);

impl Capability for Config {
    const PREFIX: &'static str = "wasi:config/";
    const KEY: &'static str = "a [services.config] or [services.secrets] table";

    type File = ConfigTables;
    /// `None` when neither table is there.
    type Grant = Option<ConfigValues>;
    type Host = ();
    /// Values and secrets together, as `wasi:config/store` hands them out.
    type Granted = Option<Arc<WasiConfigVariables>>;
    type Call = ConfigCall;

    fn check(file: ConfigTables, reading: &Reading<'_>) -> Result<Option<ConfigValues>, String> {
        config_values(file, reading)
    }

    fn is_granted(grant: &Option<ConfigValues>) -> bool {
        grant.is_some()
    }

    fn secrets(grant: &Option<ConfigValues>) -> Vec<&Secret> {
        grant
            .iter()
            .flat_map(|config| config.secrets.values())
            .collect()
    }

    fn start(_start: &Start<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn granted(
        grant: &Option<ConfigValues>,
        _host: &(),
        _service: &Arc<str>,
    ) -> Option<Arc<WasiConfigVariables>> {
        grant.as_ref().map(|config| {
            Arc::new(
                config
                    .values
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str()))
                    .chain(
                        config
                            .secrets
                            .iter()
                            .map(|(key, secret)| (key.as_str(), secret.expose())),
                    )
                    .collect(),
            )
        })
    }

    fn call(granted: &Option<Arc<WasiConfigVariables>>, _call: &CallInfo) -> ConfigCall {
        ConfigCall {
            variables: granted.clone(),
        }
    }

    fn add_to_linker<T: Holds<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, |store: &mut T| {
            let (call, _) = <T as Holds<Config>>::call_state(store);
            WasiConfig::from(call.variables.as_deref().unwrap_or(&NO_CONFIG))
        })
        .context("cannot link wasi:config for plugins")
    }
}

/// The values of `[services.config]` and `[services.secrets]`, secrets read.
fn config_values(
    tables: ConfigTables,
    reading: &Reading<'_>,
) -> Result<Option<ConfigValues>, String> {
    let ConfigTables { values, secrets } = tables;
    if values.is_none() && secrets.is_none() {
        return Ok(None);
    }
    let values = values.unwrap_or_default();
    let mut read = BTreeMap::new();
    for (key, from) in secrets.unwrap_or_default() {
        if values.contains_key(&key) {
            return Err(format!(
                "\"{key}\" is both in [services.config] and in [services.secrets]; keep one"
            ));
        }
        let value = match (from.env, from.file) {
            (Some(name), None) => (reading.env)(&name).filter(|value| !value.is_empty()).ok_or_else(|| {
                format!("secret \"{key}\" reads the environment variable {name}, which is not set or empty; set it, or remove the secret")
            })?,
            (None, Some(file)) => {
                let path = reading.base.join(file);
                let text = std::fs::read_to_string(&path).map_err(|err| {
                    format!("secret \"{key}\" reads the file {}, which cannot be read ({err}); create it, or remove the secret", path.display())
                })?;
                // A file written by `echo` ends with a newline that is not part of the secret.
                text.strip_suffix('\n').unwrap_or(&text).to_owned()
            }
            _ => {
                return Err(format!(
                    "secret \"{key}\" must say where it is read from: {{ env = \"NAME\" }} or {{ file = \"PATH\" }}"
                ));
            }
        };
        read.insert(key, Secret::new(value));
    }
    if let Some(key) = values.keys().chain(read.keys()).find(|key| key.is_empty()) {
        return Err(format!(
            "the config key {key:?} is empty; give every value a name"
        ));
    }
    Ok(Some(ConfigValues {
        values,
        secrets: read,
    }))
}

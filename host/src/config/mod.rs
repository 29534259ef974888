//! The operator's config file: one TOML file, every key checked. This module
//! reads and checks the host's own settings and builds [`Config`]; a
//! service's settings are in `service`, the capabilities' keys are read by
//! their own modules (`runtime::capabilities`), the schema as written is
//! `file`, the defaults and bounds `defaults`, the error sentences `problem`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::capabilities::Grants;
use crate::capabilities::config::{ConfigTables, SecretFile};
use crate::capabilities::http::HttpFile;
use crate::capabilities::keyvalue::KeyValueFile;
use crate::capabilities::redis::RedisFile;
use crate::capabilities::sql::SqlFile;
use crate::capabilities::{GrantsFile, Reading};
pub use crate::setting::Secret;
pub(crate) use crate::setting::{at_least_one, in_bytes, one_to};

mod defaults;
mod file;
mod problem;
mod secret;
mod service;
#[cfg(test)]
mod tests;

pub use defaults::*;
pub use file::*;
pub use problem::Problem;
use problem::describe_toml_error;
pub use secret::PasswordSource;
use secret::secret;
use service::renamed;
pub use service::*;

/// The config the host runs with: checked, defaults filled in, secrets read.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where compiled plugins are kept (`data_dir/compiled` unless the file
    /// says): hosts sharing it compile a plugin once between them.
    pub cache_dir: PathBuf,
    /// The bearer token of the admin API; `None` turns the admin API off.
    pub admin: Option<AdminToken>,
    /// Plugin versions kept per service for rollback, the active one included.
    pub keep_versions: usize,
    /// The largest plugin the admin API accepts, in bytes.
    pub max_plugin_bytes: u64,
    /// Whether the config file and the plugin files it names are watched.
    pub watch: bool,
    /// Plugin calls that may run at once over all services (the size of the instance pool).
    pub max_concurrent_calls: u32,
    /// Sentences about deprecated keys the file uses, for the start-up log.
    pub deprecated: Vec<String>,
    /// The largest request body tsuru may send, in bytes; past it, 413.
    pub max_request_bytes: u64,
    /// How long a request's headers may take to arrive (past it the
    /// connection is closed), and then its body (past it, 408).
    pub request_read_timeout: Duration,
    /// How long a stop (Ctrl-C, SIGTERM) waits for the requests in flight
    /// before it cuts them.
    pub drain_timeout: Duration,
    /// How long a call waits for a free place under the host's or its
    /// service's `max_concurrent_calls` before it is answered 503.
    pub queue_wait: Duration,
    /// How long the ledger keeps answers and events.
    pub retention: crate::ledger::Retention,
    /// HTTP connections that may be open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// The shared store (`[store]`); `None` keeps everything embedded under `data_dir`.
    pub store: Option<crate::store::StoreSettings>,
    pub services: Vec<ServiceConfig>,
    /// The file this config was read from, if any.
    pub source: Option<PathBuf>,
}

/// The admin API's bearer token and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub token: Secret,
    pub source: PasswordSource,
}

/// A config that cannot be used, with the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {} is not valid: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("the config file {} is not valid: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Overrides from the command line, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Reads and checks a config file; `env` looks up `password_env` names.
    pub fn load(
        path: &Path,
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let config = Self::parse(&text, base, overrides, env).map_err(|err| match err {
            Problem::Syntax(message) => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            Problem::Meaning(message) => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
        })?;
        Ok(Config {
            source: Some(path.to_owned()),
            ..config
        })
    }

    /// Checks config text; relative paths in it are resolved against `base`.
    pub fn parse(
        text: &str,
        base: &Path,
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Problem> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|err| Problem::Syntax(describe_toml_error(&err, text)))?;
        let listen = match (overrides.listen, file.listen) {
            (Some(addr), _) | (None, Some(addr)) => addr,
            (None, None) => DEFAULT_LISTEN
                .parse()
                .map_err(|_| Problem::Meaning("the default listen address is invalid".into()))?,
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.data_dir.map(|dir| base.join(dir)))
            .unwrap_or_else(|| base.join("data"));
        let cache_dir = file
            .cache_dir
            .map(|dir| base.join(dir))
            .unwrap_or_else(|| data_dir.join("compiled"));

        let mut deprecated = Vec::new();
        let max_concurrent_calls = renamed(
            ("max_concurrent_calls", file.max_concurrent_calls),
            ("max_instances", file.max_instances),
            "",
            &mut deprecated,
        )
        .map_err(Problem::Meaning)?
        .unwrap_or(DEFAULT_MAX_CONCURRENT_CALLS);
        check_concurrent_calls("max_concurrent_calls", max_concurrent_calls)
            .map_err(Problem::Meaning)?;
        let max_request_kb = file.max_request_kb.unwrap_or(DEFAULT_MAX_REQUEST_KB);
        at_least_one("max_request_kb", max_request_kb).map_err(Problem::Meaning)?;
        let request_read_timeout_secs = file
            .request_read_timeout_secs
            .unwrap_or(DEFAULT_REQUEST_READ_TIMEOUT_SECS);
        one_to(
            "request_read_timeout_secs",
            request_read_timeout_secs,
            MAX_REQUEST_READ_TIMEOUT_SECS,
        )
        .map_err(Problem::Meaning)?;
        let drain_timeout_secs = file
            .drain_timeout_secs
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT_SECS);
        one_to(
            "drain_timeout_secs",
            drain_timeout_secs,
            MAX_DRAIN_TIMEOUT_SECS,
        )
        .map_err(Problem::Meaning)?;
        let queue_wait_ms = file.queue_wait_ms.unwrap_or(DEFAULT_QUEUE_WAIT_MS);
        if queue_wait_ms > MAX_QUEUE_WAIT_MS {
            return Err(Problem::Meaning(format!(
                "queue_wait_ms is {queue_wait_ms}; give a value from 0 (answer 503 at once) to {MAX_QUEUE_WAIT_MS}"
            )));
        }
        let replay_window_secs = file
            .replay_window_secs
            .unwrap_or(DEFAULT_REPLAY_WINDOW_SECS);
        one_to(
            "replay_window_secs",
            replay_window_secs,
            MAX_REPLAY_WINDOW_SECS,
        )
        .map_err(Problem::Meaning)?;
        let events_retention_days = file
            .events_retention_days
            .unwrap_or(DEFAULT_EVENTS_RETENTION_DAYS);
        one_to(
            "events_retention_days",
            events_retention_days,
            MAX_EVENTS_RETENTION_DAYS,
        )
        .map_err(Problem::Meaning)?;
        let max_connections = file
            .max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS as u64);
        one_to("max_connections", max_connections, MAX_CONNECTIONS).map_err(Problem::Meaning)?;
        let mut ids = HashSet::new();
        let mut usernames = HashSet::new();
        let mut services = Vec::with_capacity(file.services.len());
        for (index, entry) in file.services.into_iter().enumerate() {
            let service = ServiceConfig::check(entry, index, base, &env, &mut deprecated)
                .map_err(Problem::Meaning)?;
            if !ids.insert(service.id.clone()) {
                return Err(Problem::Meaning(format!(
                    "service id \"{}\" is used twice; give each [[services]] entry its own id",
                    service.id
                )));
            }
            if !usernames.insert(service.username.clone()) {
                return Err(Problem::Meaning(format!(
                    "username \"{}\" is used by two services; tsuru's /resources routes find the service by its username, so give each its own",
                    service.username
                )));
            }
            services.push(service);
        }
        let admin = secret("admin_token", file.admin_token, file.admin_token_env, &env)
            .map_err(Problem::Meaning)?
            .map(|(token, source)| AdminToken { token, source });
        if let Some(AdminToken { token, .. }) = &admin
            && token.expose().len() < 16
        {
            return Err(Problem::Meaning(
                "admin_token is shorter than 16 characters; use a long random one (openssl rand -hex 32)".into(),
            ));
        }
        let keep_versions = file.keep_versions.unwrap_or(DEFAULT_KEEP_VERSIONS);
        if keep_versions == 0 {
            return Err(Problem::Meaning(
                "keep_versions must be at least 1 (the active version is one of them)".into(),
            ));
        }
        let max_plugin_mb = file.max_plugin_mb.unwrap_or(DEFAULT_MAX_PLUGIN_MB);
        if max_plugin_mb == 0 {
            return Err(Problem::Meaning("max_plugin_mb must be at least 1".into()));
        }
        let max_plugin_bytes =
            in_bytes("max_plugin_mb", max_plugin_mb, 1024 * 1024).map_err(Problem::Meaning)?;
        let max_request_bytes =
            in_bytes("max_request_kb", max_request_kb, 1024).map_err(Problem::Meaning)?;
        let store = file
            .store
            .map(|store| check_store(store, base, &env))
            .transpose()
            .map_err(Problem::Meaning)?;
        Ok(Config {
            listen,
            data_dir,
            cache_dir,
            admin,
            keep_versions,
            max_plugin_bytes,
            watch: file.watch.unwrap_or(true),
            max_concurrent_calls,
            deprecated,
            max_request_bytes,
            request_read_timeout: Duration::from_secs(request_read_timeout_secs),
            drain_timeout: Duration::from_secs(drain_timeout_secs),
            queue_wait: Duration::from_millis(queue_wait_ms),
            retention: crate::ledger::Retention {
                replay_window: Duration::from_secs(replay_window_secs),
                events: Duration::from_secs(events_retention_days * 86_400),
            },
            max_connections: usize::try_from(max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
            store,
            services,
            source: None,
        })
    }
}

/// `[store]`: the URL read from where it says, the pool's size, the host's name.
fn check_store(
    store: StoreFile,
    base: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<crate::store::StoreSettings, String> {
    use crate::store::{DEFAULT_STORE_POOL_SIZE, MAX_STORE_POOL_SIZE};
    let (url, url_from) = match (store.url_env, store.url_file) {
        (Some(variable), None) => {
            let url = env(&variable).filter(|url| !url.is_empty()).ok_or_else(|| {
                format!(
                    "[store] reads its URL from the environment variable {variable}, which is not set or empty; set it, or remove [store] to keep the embedded store"
                )
            })?;
            (url, format!("url_env = \"{variable}\""))
        }
        (None, Some(file)) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|err| {
                format!(
                    "[store] reads its URL from the file {}, which cannot be read ({err}); create it, or remove [store] to keep the embedded store",
                    path.display()
                )
            })?;
            (
                text.trim().to_owned(),
                format!("url_file = \"{}\"", path.display()),
            )
        }
        _ => {
            return Err(
                "[store] must say where its PostgreSQL URL is read from: url_env = \"NAME\" or url_file = \"PATH\", one of them".into(),
            );
        }
    };
    // The parser's message may quote a character of the password: not passed on.
    if url.parse::<tokio_postgres::Config>().is_err() {
        return Err(format!(
            "[store] {url_from}: the URL is not one PostgreSQL reads; write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ));
    }
    let pool_size = store.pool_size.unwrap_or(DEFAULT_STORE_POOL_SIZE as u64);
    one_to("[store] pool_size", pool_size, MAX_STORE_POOL_SIZE as u64)?;
    let host_id = match store.host_id {
        Some(id) if id.trim().is_empty() || id.len() > 253 => {
            return Err(
                "[store] host_id is empty or longer than 253 characters; give a short name, or leave it out to use the machine's host name".into(),
            );
        }
        Some(id) => id,
        None => machine_name(),
    };
    Ok(crate::store::StoreSettings {
        url: Secret::new(url),
        url_from,
        pool_size: usize::try_from(pool_size).unwrap_or(DEFAULT_STORE_POOL_SIZE),
        host_id,
    })
}

/// The machine's host name (a Kubernetes pod's name): `HOSTNAME`, else the
/// kernel's, else `orizuru`.
fn machine_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "orizuru".into())
}

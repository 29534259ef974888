//! The operator's config file: one TOML file, every key checked.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::runtime::capabilities::Grants;
use crate::runtime::capabilities::config::{ConfigTables, SecretFile};
use crate::runtime::capabilities::http::HttpFile;
use crate::runtime::capabilities::keyvalue::KeyValueFile;
use crate::runtime::capabilities::sql::SqlFile;
use crate::runtime::capabilities::{GrantsFile, Reading};
pub use crate::setting::Secret;
pub(crate) use crate::setting::{at_least_one, in_bytes, one_to};

/// Where the host listens when neither the file nor `--listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How long one plugin call may run unless the service says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// How much memory one plugin instance may use unless the service says otherwise.
pub const DEFAULT_MEMORY_MB: u64 = 128;
/// The most memory a service may grant its plugin.
pub const MAX_MEMORY_MB: u64 = 4096;
/// How many plugin versions each service keeps for rollback, unless the file says.
pub const DEFAULT_KEEP_VERSIONS: usize = 5;
/// Plugin calls that may run at once over all services, unless the file says.
pub const DEFAULT_MAX_INSTANCES: u32 = 100;
/// Plugin calls that may run at once for one service, unless the service says.
pub const DEFAULT_SERVICE_MAX_INSTANCES: u32 = 32;
/// The most plugin calls a host may run at once.
pub const MAX_INSTANCES: u32 = 10_000;
/// The largest request body tsuru may send, unless the file says.
pub const DEFAULT_MAX_REQUEST_KB: u64 = 1024;
/// The largest plugin the admin API accepts, unless the file says.
pub const DEFAULT_MAX_PLUGIN_MB: u64 = 256;
/// How long a request's headers, and then its body, may take to arrive, unless the file says.
pub const DEFAULT_REQUEST_READ_TIMEOUT_SECS: u64 = 30;
/// The longest `request_read_timeout_secs`; tsuru gives up on a call after 300 s anyway.
pub const MAX_REQUEST_READ_TIMEOUT_SECS: u64 = 3600;
/// How long a stopping host waits for the requests in flight, unless the file says.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 30;
/// The longest `drain_timeout_secs`.
pub const MAX_DRAIN_TIMEOUT_SECS: u64 = 3600;
/// How long a call waits for a free place under `max_instances` (the host's
/// or its service's) before it is answered 503, unless the file says.
pub const DEFAULT_QUEUE_WAIT_MS: u64 = 500;
/// The longest `queue_wait_ms`.
pub const MAX_QUEUE_WAIT_MS: u64 = 30_000;
/// How long an answer is kept for a retry of the same tsuru event, and how
/// long events are kept, unless the file says: the ledger's defaults.
pub use crate::ledger::{DEFAULT_EVENTS_RETENTION_DAYS, DEFAULT_REPLAY_WINDOW_SECS};
/// The longest `replay_window_secs`: a week.
pub const MAX_REPLAY_WINDOW_SECS: u64 = 7 * 86_400;
/// The longest `events_retention_days`: ten years.
pub const MAX_EVENTS_RETENTION_DAYS: u64 = 3650;
/// Connections open at once, unless the file says: well under the usual
/// limit of 1024 open files, which the ledger, the compiled plugins, the
/// watcher and the SQL pools share.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The most `max_connections` a host may be given.
pub const MAX_CONNECTIONS: u64 = 100_000;

/// The whole config file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub admin_token_env: Option<String>,
    pub keep_versions: Option<usize>,
    pub max_plugin_mb: Option<u64>,
    pub max_instances: Option<u32>,
    pub max_request_kb: Option<u64>,
    pub request_read_timeout_secs: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
    pub queue_wait_ms: Option<u64>,
    pub replay_window_secs: Option<u64>,
    pub events_retention_days: Option<u64>,
    pub max_connections: Option<u64>,
    pub watch: Option<bool>,
    #[serde(default)]
    pub services: Vec<ServiceFile>,
}

/// One `[[services]]` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub id: String,
    pub plugin: PathBuf,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_instances: Option<u32>,
    pub max_env_vars: Option<u32>,
    pub max_env_kb: Option<u64>,
    pub max_info_items: Option<u32>,
    pub max_proxy_body_kb: Option<u64>,
    pub max_log_lines: Option<u32>,
    /// Grants `wasi:logging`.
    pub logging: Option<bool>,
    /// Grants `wasi:keyvalue`.
    pub keyvalue: Option<bool>,
    /// Keys the service may keep in the key-value store.
    pub max_keyvalue_keys: Option<u64>,
    /// Bytes of buckets, keys and values it may keep there.
    pub max_keyvalue_kb: Option<u64>,
    /// Grants `wasi:config/store`, with these values.
    pub config: Option<BTreeMap<String, String>>,
    /// Grants `wasi:config/store`, with these values read at start.
    pub secrets: Option<BTreeMap<String, SecretFile>>,
    /// Grants `orizuru:service/sql`, on these PostgreSQL connections.
    pub sql: Option<BTreeMap<String, SqlFile>>,
    /// Grants `wasi:http/outgoing-handler`, to these origins.
    pub http: Option<HttpFile>,
}

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
    pub max_instances: u32,
    /// The largest request body tsuru may send, in bytes; past it, 413.
    pub max_request_bytes: u64,
    /// How long a request's headers may take to arrive (past it the
    /// connection is closed), and then its body (past it, 408).
    pub request_read_timeout: Duration,
    /// How long a stop (Ctrl-C, SIGTERM) waits for the requests in flight
    /// before it cuts them.
    pub drain_timeout: Duration,
    /// How long a call waits for a free place under the host's or its
    /// service's `max_instances` before it is answered 503.
    pub queue_wait: Duration,
    /// How long the ledger keeps answers and events.
    pub retention: crate::ledger::Retention,
    /// HTTP connections that may be open at once; one more is answered 503 and closed.
    pub max_connections: usize,
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

#[derive(Clone, PartialEq)]
pub struct ServiceConfig {
    /// The tsuru service id, also the path segment of `/services/{id}`.
    pub id: String,
    /// The wasm component, resolved against the config file's folder;
    /// `None` for a service added through the admin API.
    pub plugin: Option<PathBuf>,
    /// The basic-auth user tsuru sends: the manifest's `username`, else the id.
    pub username: String,
    pub password: Secret,
    /// Where the password came from, for the start-up banner.
    pub password_source: PasswordSource,
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// Requests running this service's plugin at once; past it, 503.
    pub max_instances: u32,
    /// How big the plugin's answers may be.
    pub answers: AnswerLimits,
    /// The capabilities its plugin may import.
    pub grants: Grants,
}

/// How big a plugin's answers may be; an answer past one is refused as a
/// broken contract (500), and log lines past the last are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimits {
    /// Env vars one bind may return (`max_env_vars`).
    pub env_vars: u32,
    /// Bytes of names and values one bind may return (`max_env_kb`).
    pub env_bytes: u64,
    /// Items one info call may return (`max_info_items`).
    pub info_items: u32,
    /// Bytes of a proxied response's body (`max_proxy_body_kb`).
    pub proxy_body_bytes: u64,
    /// Lines one call may log, per stream (`max_log_lines`).
    pub log_lines: u32,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        Self {
            env_vars: 100,
            env_bytes: 64 * 1024,
            info_items: 100,
            proxy_body_bytes: 1024 * 1024,
            log_lines: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    ConfigFile,
    Environment(String),
    /// Generated when the service was added through the admin API.
    AdminApi,
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("id", &self.id)
            .field("plugin", &self.plugin)
            .field("username", &self.username)
            .field("password_source", &self.password_source)
            .field("timeout", &self.timeout)
            .field("memory_bytes", &self.memory_bytes)
            .field("max_instances", &self.max_instances)
            .field("answers", &self.answers)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
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

        let max_instances = file.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        check_instances("max_instances", max_instances).map_err(Problem::Meaning)?;
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
            let service =
                ServiceConfig::check(entry, index, base, &env).map_err(Problem::Meaning)?;
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
        Ok(Config {
            listen,
            data_dir,
            cache_dir,
            admin,
            keep_versions,
            max_plugin_bytes,
            watch: file.watch.unwrap_or(true),
            max_instances,
            max_request_bytes,
            request_read_timeout: Duration::from_secs(request_read_timeout_secs),
            drain_timeout: Duration::from_secs(drain_timeout_secs),
            queue_wait: Duration::from_millis(queue_wait_ms),
            retention: crate::ledger::Retention {
                replay_window: Duration::from_secs(replay_window_secs),
                events: Duration::from_secs(events_retention_days * 86_400),
            },
            max_connections: usize::try_from(max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
            services,
            source: None,
        })
    }
}

impl ServiceConfig {
    fn check(
        entry: ServiceFile,
        index: usize,
        base: &Path,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let ServiceFile {
            id,
            plugin,
            username,
            password,
            password_env,
            timeout_ms,
            memory_mb,
            max_instances,
            max_env_vars,
            max_env_kb,
            max_info_items,
            max_proxy_body_kb,
            max_log_lines,
            logging,
            keyvalue,
            max_keyvalue_keys,
            max_keyvalue_kb,
            config,
            secrets,
            sql,
            http,
        } = entry;
        let at = format!("services[{index}] (id \"{id}\")");
        let settings = ServiceSettings::new(&id, username, timeout_ms, memory_mb, max_instances);
        settings.check().map_err(|why| format!("{at}: {why}"))?;
        let ServiceSettings {
            username,
            timeout_ms,
            memory_mb,
            max_instances,
            ..
        } = settings;
        let (password, password_source) = secret("password", password, password_env, env)
            .map_err(|why| format!("{at}: {why}"))?
            .ok_or_else(|| {
                format!(
                    "{at}: no password; set password_env to the name of an environment variable holding it (or password, for a demo)"
                )
            })?;
        if password.expose().is_empty() {
            return Err(format!("{at}: the password is empty; tsuru requires one"));
        }
        let defaults = AnswerLimits::default();
        let kib = |key: &str, value: Option<u64>, default: u64| match value {
            Some(kb) => in_bytes(key, kb, 1024).map_err(|why| format!("{at}: {why}")),
            None => Ok(default),
        };
        let answers = AnswerLimits {
            env_vars: max_env_vars.unwrap_or(defaults.env_vars),
            env_bytes: kib("max_env_kb", max_env_kb, defaults.env_bytes)?,
            info_items: max_info_items.unwrap_or(defaults.info_items),
            proxy_body_bytes: kib(
                "max_proxy_body_kb",
                max_proxy_body_kb,
                defaults.proxy_body_bytes,
            )?,
            log_lines: max_log_lines.unwrap_or(defaults.log_lines),
        };
        for (key, value) in [
            ("max_env_vars", u64::from(answers.env_vars)),
            ("max_env_kb", answers.env_bytes),
            ("max_info_items", u64::from(answers.info_items)),
            ("max_proxy_body_kb", answers.proxy_body_bytes),
            ("max_log_lines", u64::from(answers.log_lines)),
        ] {
            at_least_one(key, value).map_err(|why| format!("{at}: {why}"))?;
        }
        let file = GrantsFile {
            logging,
            keyvalue: KeyValueFile {
                keyvalue,
                max_keyvalue_keys,
                max_keyvalue_kb,
            },
            config: ConfigTables {
                values: config,
                secrets,
            },
            http,
            sql,
        };
        let reading = Reading {
            base,
            env,
            service_timeout: Duration::from_millis(timeout_ms),
        };
        let grants = Grants::check(file, &reading).map_err(|why| format!("{at}: {why}"))?;
        Ok(ServiceConfig {
            max_instances,
            answers,
            grants,
            plugin: Some(base.join(plugin)),
            id,
            username,
            password,
            password_source,
            timeout: Duration::from_millis(timeout_ms),
            memory_bytes: memory_mb * 1024 * 1024,
        })
    }
}

/// The settings every service has, whether the config file or the admin
/// API defines it: both check them here, with the same sentences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    pub id: String,
    pub username: String,
    pub timeout_ms: u64,
    pub memory_mb: u64,
    pub max_instances: u32,
}

impl ServiceSettings {
    /// The settings given, and the defaults for those not given (the
    /// username defaults to the id).
    pub fn new(
        id: &str,
        username: Option<String>,
        timeout_ms: Option<u64>,
        memory_mb: Option<u64>,
        max_instances: Option<u32>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            username: username.unwrap_or_else(|| id.to_owned()),
            timeout_ms: timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            memory_mb: memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
            max_instances: max_instances.unwrap_or(DEFAULT_SERVICE_MAX_INSTANCES),
        }
    }

    /// The first setting that cannot be used, as a sentence.
    pub fn check(&self) -> Result<(), String> {
        check_service_id(&self.id)?;
        let username = &self.username;
        if username.is_empty() || username.contains(':') {
            return Err(format!(
                "username \"{username}\" cannot be used for basic auth; use a non-empty name without ':'"
            ));
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be at least 1".into());
        }
        if !(1..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return Err(format!(
                "memory_mb is {}; give a value from 1 to {MAX_MEMORY_MB}",
                self.memory_mb
            ));
        }
        check_instances("max_instances", self.max_instances)
    }
}

/// A number of plugin calls at once: 1 to [`MAX_INSTANCES`].
pub fn check_instances(key: &str, value: u32) -> Result<(), String> {
    if (1..=MAX_INSTANCES).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key} is {value}; give a value from 1 to {MAX_INSTANCES}"
        ))
    }
}

/// A secret given inline as `<key>` or by name as `<key>_env`; `None` when neither is set.
fn secret(
    key: &str,
    inline: Option<String>,
    by_name: Option<String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(Secret, PasswordSource)>, String> {
    match (inline, by_name) {
        (Some(_), Some(_)) => Err(format!("both {key} and {key}_env are set; keep one")),
        (None, None) => Ok(None),
        (Some(value), None) => Ok(Some((Secret::new(value), PasswordSource::ConfigFile))),
        (None, Some(name)) => match env(&name) {
            Some(value) if !value.is_empty() => Ok(Some((
                Secret::new(value),
                PasswordSource::Environment(name),
            ))),
            _ => Err(format!(
                "{key}_env names the environment variable {name}, which is not set or empty"
            )),
        },
    }
}

/// tsuru's own rule for service ids: at most 40 characters of `[a-z][a-z0-9-]*`.
pub fn check_service_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !well_formed {
        return Err(format!(
            "id \"{id}\" is not a tsuru service id; use a lowercase letter followed by lowercase letters, digits and '-'"
        ));
    }
    if id.len() > 40 {
        return Err(format!(
            "id \"{id}\" is {} characters long; tsuru allows at most 40",
            id.len()
        ));
    }
    Ok(())
}

/// Why config text was refused: its syntax, or what it says.
#[derive(Debug)]
pub enum Problem {
    Syntax(String),
    Meaning(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Syntax(message) | Problem::Meaning(message) => f.write_str(message),
        }
    }
}

/// toml's message on one line, with the line it points at and the key
/// written there. Never a value: the line may hold a password or a token.
fn describe_toml_error(err: &toml::de::Error, text: &str) -> String {
    let message = without_value(err.message().trim()).replace('\n', "; ");
    match err.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
            // The key names the setting, which the message may not.
            match text.lines().nth(line - 1).and_then(key_of) {
                Some(key) => format!("line {line} ({key}): {message}"),
                None => format!("line {line}: {message}"),
            }
        }
        None => message,
    }
}

/// What a config line sets, without its value: `key password` for
/// `password = "..."`, `[services.sql.admin]` for a table header; `None`
/// for a line of something else (a multi-line value's, say).
fn key_of(line: &str) -> Option<String> {
    let line = line.trim();
    let plausible = |key: &str| {
        !key.is_empty()
            && key.len() <= 80
            && key.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' ')
            })
    };
    if line.starts_with('[') {
        let brackets = if line.starts_with("[[") { 2 } else { 1 };
        let name = line[brackets..].split(']').next()?.trim();
        let (open, close) = ("[".repeat(brackets), "]".repeat(brackets));
        return plausible(name).then(|| format!("{open}{name}{close}"));
    }
    let (key, _value) = line.split_once('=')?;
    let key = key.trim();
    plausible(key).then(|| format!("key {key}"))
}

/// serde's "invalid type: string \"hunter2\", expected u64" without the
/// value it quotes: "invalid type: a string, expected u64".
fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((found, expected)) = rest.split_once(", expected ") else {
            continue;
        };
        let kind = match found.split([' ', '`', '"']).next().unwrap_or_default() {
            "string" => "a string",
            "integer" => "an integer",
            "floating" => "a number with a fraction",
            "boolean" => "true or false",
            "sequence" => "an array",
            "map" => "a table",
            "character" => "a character",
            _ => "another value",
        };
        return format!("{prefix}{kind}, expected {expected}");
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(
            text,
            Path::new("/etc/orizuru"),
            &Overrides::default(),
            |name| (name == "FAKE_PASSWORD").then(|| "from-env".to_owned()),
        )
        .map_err(|err| err.to_string())
    }

    #[test]
    fn sizes_too_large_to_count_in_bytes_are_refused() {
        for (text, says) in [
            (
                "max_request_kb = 18014398509481984\n",
                "max_request_kb is 18014398509481984, too large",
            ),
            (
                "max_plugin_mb = 17592186044416\n",
                "max_plugin_mb is 17592186044416, too large",
            ),
            (
                "[[services]]\nid = \"pg\"\nplugin = \"pg.wasm\"\npassword = \"p\"\nmax_env_kb = 18014398509481985\n",
                "max_env_kb is 18014398509481985, too large",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn grants_are_off_unless_given_and_secrets_are_read_and_hidden() {
        let base = "[[services]]\nid = \"pg\"\nplugin = \"pg.wasm\"\npassword = \"p\"\n";
        let bare = parse(base).expect("a bare service");
        assert_eq!(bare.services[0].grants, Grants::default());

        let granted = parse(&format!(
            "{base}logging = true\n[services.config]\nregion = \"eu\"\n[services.secrets]\nadmin = {{ env = \"FAKE_PASSWORD\" }}\n"
        ))
        .expect("a granted service");
        let grants = &granted.services[0].grants;
        assert!(grants.logging);
        let config = grants.config.as_ref().expect("config granted");
        assert_eq!(config.values["region"], "eu");
        assert_eq!(config.secrets["admin"].expose(), "from-env");
        let shown = format!("{:?}", granted.services[0]);
        assert!(
            shown.contains("\"admin\"") && !shown.contains("from-env"),
            "{shown}"
        );

        // An empty secrets table grants wasi:config with nothing in it.
        let empty = parse(&format!("{base}[services.secrets]\n")).expect("an empty table");
        assert!(empty.services[0].grants.config.is_some());

        for (extra, says) in [
            (
                "[services.secrets]\nadmin = { env = \"UNSET\" }\n",
                "secret \"admin\" reads the environment variable UNSET, which is not set or empty; set it, or remove the secret",
            ),
            (
                "[services.secrets]\nadmin = { file = \"missing-secret\" }\n",
                "secret \"admin\" reads the file /etc/orizuru/missing-secret, which cannot be read",
            ),
            (
                "[services.secrets]\nadmin = { env = \"A\", file = \"b\" }\n",
                "secret \"admin\" must say where it is read from",
            ),
            (
                "[services.secrets]\nadmin = {}\n",
                "secret \"admin\" must say where it is read from",
            ),
            (
                "[services.config]\nadmin = \"x\"\n[services.secrets]\nadmin = { env = \"FAKE_PASSWORD\" }\n",
                "\"admin\" is both in [services.config] and in [services.secrets]; keep one",
            ),
            (
                "[services.config]\n\"\" = \"x\"\n",
                "the config key \"\" is empty",
            ),
            ("logging = \"yes\"\n", "logging"),
        ] {
            let err = parse(&format!("{base}{extra}")).expect_err(extra);
            assert!(err.contains(says), "{extra}: {err}");
        }
    }

    #[test]
    fn fills_defaults_and_resolves_paths() {
        let config = parse(
            r#"
            [[services]]
            id = "fake"
            plugin = "fake.wasm"
            password_env = "FAKE_PASSWORD"
            "#,
        )
        .expect("valid config");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_dir, Path::new("/etc/orizuru/data"));
        assert_eq!(config.cache_dir, Path::new("/etc/orizuru/data/compiled"));
        let shared = parse("cache_dir = \"/var/cache/orizuru\"\n").expect("a cache dir");
        assert_eq!(shared.cache_dir, Path::new("/var/cache/orizuru"));
        let fake = &config.services[0];
        assert_eq!(fake.username, "fake");
        assert_eq!(fake.password.expose(), "from-env");
        assert_eq!(
            fake.plugin.as_deref(),
            Some(Path::new("/etc/orizuru/fake.wasm"))
        );
        assert_eq!(fake.timeout, Duration::from_secs(30));
        assert_eq!(fake.memory_bytes, 128 * 1024 * 1024);
        assert!(!format!("{fake:?}").contains("from-env"));
    }

    #[test]
    fn queue_wait_and_retention_have_defaults_and_ranges() {
        let config = parse("").expect("an empty config");
        assert_eq!(
            config.queue_wait,
            Duration::from_millis(DEFAULT_QUEUE_WAIT_MS)
        );
        assert_eq!(config.retention, crate::ledger::Retention::default());
        let set = parse("queue_wait_ms = 0\nreplay_window_secs = 60\nevents_retention_days = 7\n")
            .expect("valid values");
        assert_eq!(set.queue_wait, Duration::ZERO);
        assert_eq!(set.retention.replay_window, Duration::from_secs(60));
        assert_eq!(set.retention.events, Duration::from_secs(7 * 86_400));
        for (text, why) in [
            (
                "queue_wait_ms = 30001",
                "queue_wait_ms is 30001; give a value from 0 (answer 503 at once) to 30000",
            ),
            (
                "replay_window_secs = 0",
                "replay_window_secs is 0; give a value from 1 to 604800",
            ),
            (
                "events_retention_days = 0",
                "events_retention_days is 0; give a value from 1 to 3650",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn request_read_timeout_has_a_default_and_a_range() {
        assert_eq!(
            parse("").expect("an empty config").request_read_timeout,
            Duration::from_secs(DEFAULT_REQUEST_READ_TIMEOUT_SECS)
        );
        assert_eq!(
            parse("request_read_timeout_secs = 1\n")
                .expect("a valid timeout")
                .request_read_timeout,
            Duration::from_secs(1)
        );
        for (value, expected) in [
            (
                "0",
                "request_read_timeout_secs is 0; give a value from 1 to 3600",
            ),
            (
                "3601",
                "request_read_timeout_secs is 3601; give a value from 1 to 3600",
            ),
        ] {
            let err = parse(&format!("request_read_timeout_secs = {value}\n")).unwrap_err();
            assert!(err.contains(expected), "{value}: {err}");
        }
        let err = parse("request_read_timeout = 3\n").unwrap_err();
        assert!(err.contains("request_read_timeout"), "{err}");
    }

    #[test]
    fn drain_timeout_has_a_default_and_a_range() {
        assert_eq!(
            parse("").expect("an empty config").drain_timeout,
            Duration::from_secs(DEFAULT_DRAIN_TIMEOUT_SECS)
        );
        assert_eq!(
            parse("drain_timeout_secs = 2\n")
                .expect("a valid timeout")
                .drain_timeout,
            Duration::from_secs(2)
        );
        let err = parse("drain_timeout_secs = 0\n").unwrap_err();
        assert!(
            err.contains("drain_timeout_secs is 0; give a value from 1 to 3600"),
            "{err}"
        );
    }

    #[test]
    fn max_connections_has_a_default_and_a_range() {
        assert_eq!(
            parse("").expect("an empty config").max_connections,
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(
            parse("max_connections = 3\n")
                .expect("a valid cap")
                .max_connections,
            3
        );
        for value in ["0", "100001"] {
            let err = parse(&format!("max_connections = {value}\n")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "max_connections is {value}; give a value from 1 to 100000"
                )),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_line_and_key_never_the_value() {
        let secret = "hunter2-very-secret";
        for (text, says) in [
            (
                format!(
                    "listen = \"127.0.0.1:1\"\n[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = \"{secret}\"\npassword = \"{secret}\"\n"
                ),
                "line 6 (key password): ",
            ),
            (
                format!("admin_token = \"{secret}\"\nadmin_token = \"{secret}\"\n"),
                "line 2 (key admin_token): ",
            ),
            (
                format!(
                    "[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = [\"{secret}\"]\n"
                ),
                "invalid type: an array, expected a string",
            ),
            (
                format!("admin_token = {{ value = \"{secret}\" }}\n"),
                "line 1 (key admin_token): ",
            ),
            (
                format!("max_instances = \"{secret}\"\n"),
                "line 1 (key max_instances): invalid type: a string, expected u32",
            ),
            (
                format!("admin_token = \"\"\"\n{secret}\"\"\"\nadmin_token = 1\n"),
                "line 3 (key admin_token): ",
            ),
            (
                format!(
                    "[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = \"p\"\n[services.sql.admin]\nurl_env = \"X\"\nurl_env = \"postgres://u:{secret}@h/d\"\n"
                ),
                "line 7 (key url_env): ",
            ),
        ] {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains(secret), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{text}: {err}");
        }
    }

    #[test]
    fn meaning_errors_never_show_a_secret() {
        let base = "[[services]]\nid = \"api\"\nplugin = \"api.wasm\"\npassword = \"p\"\n";
        for (extra, says) in [
            (
                "[services.http]\nallow = [\"https://user:hunter2@api.example.com\"]\n",
                "carries a user name or password",
            ),
            (
                "[services.http]\nallow = [\"https://user:hun ter2@api.example.com\"]\n",
                "is not a URL",
            ),
        ] {
            let err = parse(&format!("{base}{extra}")).expect_err(extra);
            assert!(err.contains(says), "{extra}: {err}");
            assert!(
                !err.contains("hunter2") && !err.contains("hun ter2"),
                "{extra}: {err}"
            );
        }
        let short = parse("admin_token = \"hunter2\"\n").expect_err("a short token");
        assert!(!short.contains("hunter2"), "{short}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(err.contains("listen_port"), "{err}");
        let err =
            parse("[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = \"p\"\nmemory = 3\n")
                .unwrap_err();
        assert!(err.contains("memory"), "{err}");
    }

    #[test]
    fn bad_services_are_refused_with_a_reason() {
        let cases = [
            (
                "id = \"My_Service\"\nplugin = \"a\"\npassword = \"p\"",
                "not a tsuru service id",
            ),
            ("id = \"a\"\nplugin = \"a\"", "no password"),
            (
                "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\npassword_env = \"X\"",
                "keep one",
            ),
            (
                "id = \"a\"\nplugin = \"a\"\npassword_env = \"UNSET\"",
                "UNSET, which is not set",
            ),
            (
                "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\ntimeout_ms = 0",
                "timeout_ms",
            ),
            (
                "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nmemory_mb = 9000",
                "memory_mb is 9000",
            ),
            (
                "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nusername = \"x:y\"",
                "without ':'",
            ),
            (
                "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nmax_instances = 0",
                "max_instances is 0; give a value from 1",
            ),
            (
                "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nmax_env_kb = 0",
                "max_env_kb is 0; give at least 1",
            ),
        ];
        for (service, expected) in cases {
            let err = parse(&format!("[[services]]\n{service}\n")).unwrap_err();
            assert!(err.contains(expected), "{service}: {err}");
        }
        let twice = "[[services]]\nid = \"a\"\nplugin = \"a\"\npassword = \"p\"\n[[services]]\nid = \"a\"\nplugin = \"b\"\npassword = \"q\"\n";
        assert!(parse(twice).unwrap_err().contains("used twice"));
        let long = format!(
            "[[services]]\nid = \"{}\"\nplugin = \"a\"\npassword = \"p\"\n",
            "a".repeat(41)
        );
        assert!(parse(&long).unwrap_err().contains("at most 40"));
    }
}

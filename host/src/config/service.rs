//! One service's settings as the host runs them (`ServiceConfig`), built
//! from its `[[services]]` entry, and the checks a service's settings share
//! with the admin API (`ServiceSettings`, ids, calls at once).

use super::*;

#[derive(Clone, PartialEq)]
pub struct ServiceConfig {
    /// The tsuru service id, also the path segment of `/services/{id}`.
    pub id: String,
    /// The wasm component, resolved against the config file's folder;
    /// `None` for a service added through the admin API.
    pub plugin: Option<PathBuf>,
    /// The basic-auth user tsuru sends: the manifest's `username`, else the id.
    pub username: String,
    /// Empty for a service added through the admin API, whose password
    /// the host keeps only as [`ServiceConfig::password_sha256`].
    pub password: Secret,
    /// The SHA-256 of the password of a service added through the admin
    /// API; `None` for the config file's, whose password is `password`.
    pub password_sha256: Option<[u8; 32]>,
    /// Where the password came from, for the start-up banner.
    pub password_source: PasswordSource,
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// Requests running this service's plugin at once; past it, 503.
    pub max_concurrent_calls: u32,
    /// How big the plugin's answers may be.
    pub answers: AnswerLimits,
    /// Whether a plugin instance serves more than one call; `None` (the
    /// default) gives every call a fresh instance.
    pub reuse: Option<Reuse>,
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

/// How long one plugin instance may serve calls of its service when the
/// service opts in (`reuse_calls`, `reuse_secs`): it is dropped after
/// `calls` calls, once `age` has passed since it was made, and after any
/// call that did not end with an answer (a trap, a deadline, the memory
/// limit, a cut request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    pub calls: u32,
    pub age: Duration,
}

impl Reuse {
    /// The reuse the two keys ask for; `None` when `reuse_calls` is unset.
    pub fn of(calls: Option<u32>, secs: Option<u64>) -> Result<Option<Self>, String> {
        let Some(calls) = calls else {
            return match secs {
                Some(_) => Err(
                    "reuse_secs is set without reuse_calls; set reuse_calls too (how many calls one plugin instance may serve), or drop reuse_secs"
                        .into(),
                ),
                None => Ok(None),
            };
        };
        if !(1..=MAX_REUSE_CALLS).contains(&calls) {
            return Err(format!(
                "reuse_calls is {calls}; give a value from 1 (a fresh instance per call, the default) to {MAX_REUSE_CALLS}"
            ));
        }
        let secs = secs.unwrap_or(DEFAULT_REUSE_SECS);
        if !(1..=MAX_REUSE_SECS).contains(&secs) {
            return Err(format!(
                "reuse_secs is {secs}; give a value from 1 to {MAX_REUSE_SECS}"
            ));
        }
        Ok((calls > 1).then(|| Self {
            calls,
            age: Duration::from_secs(secs),
        }))
    }
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

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("id", &self.id)
            .field("plugin", &self.plugin)
            .field("username", &self.username)
            .field("password_source", &self.password_source)
            .field("timeout", &self.timeout)
            .field("memory_bytes", &self.memory_bytes)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("answers", &self.answers)
            .field("reuse", &self.reuse)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

impl ServiceConfig {
    pub(super) fn check(
        entry: ServiceFile,
        index: usize,
        base: &Path,
        env: &impl Fn(&str) -> Option<String>,
        deprecated: &mut Vec<String>,
    ) -> Result<Self, String> {
        let ServiceFile {
            id,
            plugin,
            username,
            password,
            password_env,
            timeout_ms,
            memory_mb,
            max_concurrent_calls,
            max_instances,
            max_env_vars,
            max_env_kb,
            max_info_items,
            max_proxy_body_kb,
            max_log_lines,
            reuse_calls,
            reuse_secs,
            logging,
            keyvalue,
            max_keyvalue_keys,
            max_keyvalue_kb,
            config,
            secrets,
            sql,
            redis,
            http,
        } = entry;
        let at = format!("services[{index}] (id \"{id}\")");
        let max_concurrent_calls = renamed(
            ("max_concurrent_calls", max_concurrent_calls),
            ("max_instances", max_instances),
            &format!("{at}: "),
            deprecated,
        )?;
        let settings =
            ServiceSettings::new(&id, username, timeout_ms, memory_mb, max_concurrent_calls);
        settings.check().map_err(|why| format!("{at}: {why}"))?;
        let ServiceSettings {
            username,
            timeout_ms,
            memory_mb,
            max_concurrent_calls,
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
        let reuse = Reuse::of(reuse_calls, reuse_secs).map_err(|why| format!("{at}: {why}"))?;
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
            redis,
        };
        let reading = Reading {
            base,
            env,
            service_timeout: Duration::from_millis(timeout_ms),
        };
        let grants = Grants::check(file, &reading).map_err(|why| format!("{at}: {why}"))?;
        Ok(ServiceConfig {
            max_concurrent_calls,
            answers,
            reuse,
            grants,
            plugin: Some(base.join(plugin)),
            id,
            username,
            password,
            password_sha256: None,
            password_source,
            timeout: Duration::from_millis(timeout_ms),
            memory_bytes: memory_mb * 1024 * 1024,
        })
    }
}

impl ServiceConfig {
    /// The SHA-256 of the password tsuru must send, which basic auth is
    /// checked against.
    pub fn password_digest(&self) -> [u8; 32] {
        use sha2::Digest as _;
        self.password_sha256
            .unwrap_or_else(|| sha2::Sha256::digest(self.password.expose().as_bytes()).into())
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
    pub max_concurrent_calls: u32,
}

impl ServiceSettings {
    /// The settings given, and the defaults for those not given (the
    /// username defaults to the id).
    pub fn new(
        id: &str,
        username: Option<String>,
        timeout_ms: Option<u64>,
        memory_mb: Option<u64>,
        max_concurrent_calls: Option<u32>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            username: username.unwrap_or_else(|| id.to_owned()),
            timeout_ms: timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            memory_mb: memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
            max_concurrent_calls: max_concurrent_calls
                .unwrap_or(DEFAULT_SERVICE_MAX_CONCURRENT_CALLS),
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
        check_concurrent_calls("max_concurrent_calls", self.max_concurrent_calls)
    }
}

/// A number of plugin calls at once: 1 to [`MAX_CONCURRENT_CALLS`].
pub fn check_concurrent_calls(key: &str, value: u32) -> Result<(), String> {
    if (1..=MAX_CONCURRENT_CALLS).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key} is {value}; give a value from 1 to {MAX_CONCURRENT_CALLS}"
        ))
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

/// A key under its new name or its old one (deprecated, noted in
/// `deprecated` for the start-up log); both at once are refused.
pub(super) fn renamed<T>(
    (key, value): (&str, Option<T>),
    (old_key, old_value): (&str, Option<T>),
    at: &str,
    deprecated: &mut Vec<String>,
) -> Result<Option<T>, String> {
    match (value, old_value) {
        (Some(_), Some(_)) => Err(format!(
            "{at}both {key} and {old_key} (its old name) are set; keep {key}"
        )),
        (None, Some(old)) => {
            deprecated.push(format!(
                "{at}{old_key} is deprecated: it is now called {key}, with the same meaning; rename it in the config file"
            ));
            Ok(Some(old))
        }
        (value, None) => Ok(value),
    }
}

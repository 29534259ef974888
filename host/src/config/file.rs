//! The config file as an operator writes it: the serde schema of the
//! top level and of a `[[services]]` entry, before anything is checked.

use super::*;

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
    pub max_concurrent_calls: Option<u32>,
    /// The old name of `max_concurrent_calls`, still read (deprecated).
    pub max_instances: Option<u32>,
    pub max_request_kb: Option<u64>,
    pub request_read_timeout_secs: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
    pub queue_wait_ms: Option<u64>,
    pub replay_window_secs: Option<u64>,
    pub events_retention_days: Option<u64>,
    pub max_connections: Option<u64>,
    pub watch: Option<bool>,
    /// The shared store; without it, the embedded one under `data_dir`.
    pub store: Option<StoreFile>,
    #[serde(default)]
    pub services: Vec<ServiceFile>,
}

/// The `[store]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// The environment variable holding the PostgreSQL URL.
    pub url_env: Option<String>,
    /// The file holding the PostgreSQL URL (relative to the config file).
    pub url_file: Option<PathBuf>,
    /// Connections this host may open to the store at once.
    pub pool_size: Option<u64>,
    /// How this host names itself in the fleet view.
    pub host_id: Option<String>,
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
    pub max_concurrent_calls: Option<u32>,
    /// The old name of `max_concurrent_calls`, still read (deprecated).
    pub max_instances: Option<u32>,
    pub max_env_vars: Option<u32>,
    pub max_env_kb: Option<u64>,
    pub max_info_items: Option<u32>,
    pub max_proxy_body_kb: Option<u64>,
    pub max_log_lines: Option<u32>,
    /// Calls one plugin instance may serve before it is dropped; unset, a
    /// fresh instance serves every call.
    pub reuse_calls: Option<u32>,
    /// Seconds one reused plugin instance may live.
    pub reuse_secs: Option<u64>,
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
    /// Grants `orizuru:redis/client`, on these Redis connections.
    pub redis: Option<BTreeMap<String, RedisFile>>,
    /// Grants `wasi:http/outgoing-handler`, to these origins.
    pub http: Option<HttpFile>,
}

//! The defaults and the bounds of the host's and a service's settings, in
//! one place, as the README's configuration tables list them.

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
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 100;
/// Plugin calls that may run at once for one service, unless the service says.
pub const DEFAULT_SERVICE_MAX_CONCURRENT_CALLS: u32 = 32;
/// The most calls one plugin instance may serve (`reuse_calls`).
pub const MAX_REUSE_CALLS: u32 = 1_000_000;
/// How long a reused plugin instance lives unless the service says (`reuse_secs`).
pub const DEFAULT_REUSE_SECS: u64 = 60;
/// The longest `reuse_secs`: a day.
pub const MAX_REUSE_SECS: u64 = 86_400;
/// The most plugin calls a host may run at once.
pub const MAX_CONCURRENT_CALLS: u32 = 10_000;
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
/// How long a call waits for a free place under `max_concurrent_calls` (the host's
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

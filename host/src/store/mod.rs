//! Where the host keeps what outlives a request: embedded, or shared by
//! several hosts.
//!
//! - **Embedded** (no `[store]` table): SQLite files under `data_dir` (the
//!   ledger, the key-value store) and the kept plugins' wasm beside them. One
//!   host owns them (`data_dir` is locked while it runs).
//! - **Shared** (`[store]` with a PostgreSQL URL): the same state in one
//!   PostgreSQL database, so that any number of hosts serve the same
//!   services as one. See [`postgres`] for the schema and the pool.
//!
//! What stays on each host either way: the compiled cache (`cache_dir`), and
//! the config file's own settings.

pub mod migrate;
pub mod postgres;

use std::time::Duration;

use crate::setting::Secret;

/// Connections a host opens to the shared store, unless `[store]` says (`pool_size`).
pub const DEFAULT_STORE_POOL_SIZE: usize = 16;
/// The most `pool_size` may be.
pub const MAX_STORE_POOL_SIZE: usize = 1000;
/// How long a request waits for a connection to the shared store, or for
/// one to open, before it is answered 503.
pub const STORE_WAIT: Duration = Duration::from_secs(5);
/// What a 503 for an unreachable store tells a client to wait, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The shared store, as `[store]` gives it.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// A PostgreSQL URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`).
    pub url: Secret,
    /// Where the URL was read from, for error sentences: `url_env = "X"` or
    /// `url_file = "PATH"`; never the URL itself, which holds a password.
    pub url_from: String,
    /// Connections this host may open to it at once.
    pub pool_size: usize,
    /// How this host names itself in the fleet view (`host_id`); the
    /// machine's host name unless `[store]` says.
    pub host_id: String,
}

/// The shared store could not be reached (connection refused or cut, no
/// connection free within [`STORE_WAIT`]). Requests that need it are
/// answered 503 with `Retry-After`; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error(
    "the shared store (PostgreSQL) cannot be reached ({0}); nothing was changed, try again shortly"
)]
pub struct Unreachable(pub String);

impl Unreachable {
    /// Whether an error, or any cause in its chain, is an unreachable store.
    pub fn in_chain(err: &anyhow::Error) -> bool {
        err.chain().any(|cause| cause.is::<Unreachable>())
    }
}

//! One tsuru service and what each of its actions does: the ledger's checks
//! (unknown instance, duplicate create, retried event), the plugin call, the
//! record. The HTTP contract turns the results into tsuru's statuses and bodies.
//!
//! This file owns [`Service`] itself: its config, its active plugin and the
//! places its calls take. The actions live by job in the modules below.

mod binding;
mod change;
mod create;
mod error;
mod read;
mod record;
mod steward;
mod version;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServiceConfig;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::runtime::Plugin;

pub use binding::Bindee;
pub use change::InstanceUpdate;
pub use create::Created;
pub use error::ActionError;
pub(crate) use error::describe_refusal;
pub use steward::Steward;
pub use version::{Active, ActiveVersion, Source};

/// One tsuru service: its config, its plugin and its share of the ledger.
///
/// The plugin can be swapped while requests run: each request takes the
/// active plugin once, when it starts, and makes every call of that request
/// to it, so a request never sees two versions; a version is dropped when
/// the last request holding it ends.
pub struct Service {
    config: ServiceConfig,
    active: ArcSwap<Active>,
    /// One permit per request running the plugin; none free within the
    /// queue wait means 503.
    running: Arc<Semaphore>,
    steward: Arc<Steward>,
}

/// The plugin a request runs on, and its place among the service's
/// requests at once, held until the request ends.
struct Pinned {
    plugin: Arc<dyn Plugin>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pinned {
    type Target = dyn Plugin;
    fn deref(&self) -> &(dyn Plugin + 'static) {
        self.plugin.as_ref()
    }
}

impl Service {
    /// A service on a ledger of its own making: for embedding Orizuru with
    /// plugins of another kind, and for tests.
    pub fn new(config: ServiceConfig, plugin: Arc<dyn Plugin>, ledger: Arc<dyn Ledger>) -> Self {
        Self::serving(
            config,
            Active {
                plugin,
                version: None,
            },
            Steward::new(
                ledger,
                Arc::new(Metrics::new()),
                std::time::Duration::from_millis(crate::config::DEFAULT_QUEUE_WAIT_MS),
                crate::ledger::Retention::default().replay_window,
            ),
        )
    }

    /// A service whose plugin is `active`, among the services `steward` keeps.
    pub fn serving(config: ServiceConfig, active: Active, steward: Arc<Steward>) -> Self {
        let permits = usize::try_from(config.max_concurrent_calls).unwrap_or(usize::MAX);
        Self {
            config,
            active: ArcSwap::from_pointee(active),
            running: Arc::new(Semaphore::new(permits)),
            steward,
        }
    }

    /// The plugin serving now. A request takes it once and keeps it.
    pub fn active(&self) -> Arc<Active> {
        self.active.load_full()
    }

    /// Puts `next` in service for the requests that start from now on, and
    /// gives back the one it replaces; requests running on that one finish on it.
    pub fn swap(&self, next: Active) -> Arc<Active> {
        self.active.swap(Arc::new(next))
    }

    /// The wasm component serving this service; `None` for a plugin that is not wasm.
    pub fn version(&self) -> Option<ActiveVersion> {
        self.active.load().version.clone()
    }

    /// Plugin calls of this service running now.
    pub fn calls_running(&self) -> usize {
        let permits = usize::try_from(self.max_calls()).unwrap_or(usize::MAX);
        permits.saturating_sub(self.running.available_permits())
    }

    /// How many plugin calls of this service may run at once (the config
    /// key `max_concurrent_calls`).
    fn max_calls(&self) -> u32 {
        self.config.max_concurrent_calls
    }

    pub fn steward(&self) -> &Arc<Steward> {
        &self.steward
    }

    fn ledger(&self) -> &dyn Ledger {
        self.steward.ledger.as_ref()
    }

    /// The active plugin, for the rest of this request, once the service
    /// runs fewer requests than it may; refused when none ends within the
    /// queue wait.
    async fn plugin(&self) -> Result<Pinned, ActionError> {
        let permit = crate::runtime::within(
            &self.running,
            self.steward.queue_wait,
            &self.steward.metrics,
            self.id(),
        )
        .await;
        let Some(permit) = permit else {
            tracing::warn!(
                service = self.id(),
                limit = self.max_calls(),
                "request refused: the service ran as many plugin calls as it may for the whole queue wait (max_concurrent_calls, queue_wait_ms)"
            );
            return Err(ActionError::Busy {
                service: self.id().to_owned(),
                limit: self.max_calls(),
                waited: self.steward.queue_wait,
            });
        };
        Ok(Pinned {
            plugin: self.active.load().plugin.clone(),
            _permit: permit,
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }
}

//! The runtime: runs one plugin call in a fresh sandbox.
//!
//! The rest of the host sees a plugin only through [`Plugin`], one method per
//! tsuru action, so the HTTP contract and the ledger can be tested without
//! compiling wasm and the runtime without HTTP.

mod cache;
mod engine;
mod guest_log;
mod sandbox;
mod threads;
mod wasm;
mod wit;

use std::time::Duration;

use async_trait::async_trait;

use crate::model::{
    AppBinding, Context, Env, InfoItem, Instance, JobBinding, Plan, Provisioned, ProxyRequest,
    ProxyResponse, Refusal, Status,
};

pub use crate::setting::humanize;
pub use cache::{CompiledFrom, sha256};
pub use engine::{Inspection, Loaded, PluginVersion, Runtime, RuntimeSettings};
pub use threads::within;
pub use wasm::WasmPlugin;
pub use wit::{WIT_PACKAGE, WIT_VERSIONS};

/// The answer of one plugin call.
pub type Outcome<T> = Result<T, Failure>;

/// Why a plugin call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The plugin answered with an error of its own.
    #[error("the plugin refused: {0:?}")]
    Refused(Refusal),
    /// The plugin was stopped, or could not be started.
    #[error(transparent)]
    Stopped(#[from] Stop),
}

/// Why the host stopped a plugin, or could not start it. Each one is a fault
/// of the plugin or the host, never of the caller; the message completes the
/// sentence `plugin "<id>" stopped: ...`.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("deadline of {} exceeded", humanize(*.0))]
    Deadline(Duration),
    #[error("memory limit of {} MiB reached", .0 / (1024 * 1024))]
    Memory(u64),
    #[error("it trapped ({0})")]
    Trap(String),
    /// Every sandbox the host may run at once is in use.
    #[error("too many calls are running at once")]
    Busy,
    /// The plugin's answer broke the WIT's rules or its service's limits
    /// on answers, so the host cannot use it.
    #[error("{0}")]
    BrokenAnswer(String),
    /// Anything else that kept the call from running, with its cause chain.
    #[error("the host could not run it: {0:#}")]
    Host(anyhow::Error),
}

impl Stop {
    /// The reason as the metrics label it: `deadline`, `memory`, `trap`,
    /// `busy`, `contract` or `host`.
    pub fn reason(&self) -> &'static str {
        match self {
            Stop::Deadline(_) => "deadline",
            Stop::Memory(_) => "memory",
            Stop::Trap(_) => "trap",
            Stop::Busy => "busy",
            Stop::BrokenAnswer(_) => "contract",
            Stop::Host(_) => "host",
        }
    }
}

/// One tsuru service's plugin, one method per action. Each call runs on its
/// own; nothing a call does is seen by the next except through the ledger.
#[async_trait]
pub trait Plugin: Send + Sync {
    async fn plans(&self, context: Context) -> Outcome<Vec<Plan>>;
    async fn create(&self, instance: Instance, context: Context) -> Outcome<Provisioned>;
    async fn update(
        &self,
        current: Instance,
        next: Instance,
        context: Context,
    ) -> Outcome<Provisioned>;
    async fn remove(&self, instance: Instance, context: Context) -> Outcome<()>;
    async fn info(&self, instance: Instance, context: Context) -> Outcome<Vec<InfoItem>>;
    async fn status(&self, instance: Instance, context: Context) -> Outcome<Status>;
    async fn bind_app(&self, instance: Instance, app: AppBinding, context: Context)
    -> Outcome<Env>;
    async fn unbind_app(
        &self,
        instance: Instance,
        app: AppBinding,
        context: Context,
    ) -> Outcome<()>;
    async fn bind_job(&self, instance: Instance, job: JobBinding, context: Context)
    -> Outcome<Env>;
    async fn unbind_job(
        &self,
        instance: Instance,
        job: JobBinding,
        context: Context,
    ) -> Outcome<()>;
    /// The same plugin under a service's new limits and grants, without
    /// compiling again; `None` when this kind of plugin has none to change.
    /// An error says why the plugin cannot serve under them (it imports a
    /// capability the service no longer grants).
    fn with_limits(
        &self,
        _service: &crate::config::ServiceConfig,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn Plugin>>> {
        Ok(None)
    }

    async fn proxy(
        &self,
        instance: Option<Instance>,
        request: ProxyRequest,
        context: Context,
    ) -> Outcome<ProxyResponse>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
        assert_eq!(
            Stop::Deadline(Duration::from_secs(30)).to_string(),
            "deadline of 30s exceeded"
        );
        assert_eq!(
            Stop::Memory(64 << 20).to_string(),
            "memory limit of 64 MiB reached"
        );
    }
}

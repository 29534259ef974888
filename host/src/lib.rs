//! Orizuru: a WebAssembly plugin host for tsuru service APIs.
//!
//! A request travels through the modules in this order: [`contract`] (HTTP
//! routes, auth, decoding, tsuru's status rules) → [`service`] (the ledger's
//! checks and the plugin call for each action) → [`ledger`] (instances,
//! bindings, events) and [`runtime`] (a fresh sandbox per call) → back to
//! [`contract`] for tsuru's answer.

pub mod config;
pub mod contract;
pub mod ledger;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod service;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use contract::app;

use crate::config::Config;
use crate::ledger::{Ledger, SqliteLedger};
use crate::registry::Registry;
use crate::runtime::{Origin, Runtime, RuntimeSettings};
use crate::service::{PluginVersion, Service};

/// Everything a running host holds.
pub struct Host {
    pub registry: Registry,
    pub ledger: Arc<dyn Ledger>,
    // Kept for as long as plugins run: it drives their deadlines.
    _runtime: Option<Runtime>,
}

impl Host {
    /// Opens the ledger and compiles every service's plugin.
    pub async fn start(config: &Config) -> anyhow::Result<Arc<Host>> {
        let ledger: Arc<dyn Ledger> = Arc::new(SqliteLedger::open(&config.data_dir)?);
        let settings = RuntimeSettings {
            max_memory_bytes: config
                .services
                .iter()
                .map(|service| service.memory_bytes)
                .max()
                .unwrap_or(RuntimeSettings::default().max_memory_bytes),
            cache_dir: Some(config.data_dir.join("compiled")),
            ..RuntimeSettings::default()
        };
        let runtime = Runtime::new(&settings).map_err(anyhow::Error::from)?;
        let mut services = Vec::with_capacity(config.services.len());
        for service in &config.services {
            let loaded = runtime
                .load(service)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("service \"{}\" cannot start", service.id))?;
            tracing::info!(
                service = %service.id,
                plugin = %service.plugin.display(),
                sha256 = %loaded.sha256,
                from_cache = loaded.origin == Origin::Cache,
                load_ms = loaded.took.as_millis() as u64,
                "plugin loaded"
            );
            let version = PluginVersion {
                sha256: loaded.sha256,
                size: loaded.size,
                origin: loaded.origin,
                took: loaded.took,
            };
            services.push(
                Service::new(service.clone(), Arc::new(loaded.plugin), ledger.clone())
                    .with_version(version),
            );
        }
        Ok(Arc::new(Host {
            registry: Registry::new(services),
            ledger,
            _runtime: Some(runtime),
        }))
    }

    /// A host around services built elsewhere, for embedding Orizuru with
    /// plugins of another kind (and for testing the contract without wasm).
    pub fn with_services(services: Vec<Service>, ledger: Arc<dyn Ledger>) -> Arc<Host> {
        Arc::new(Host {
            registry: Registry::new(services),
            ledger,
            _runtime: None,
        })
    }
}

/// Serves the contract on `listener` until `shutdown` completes, then
/// finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    host: Arc<Host>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, app(host))
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server stopped")
}

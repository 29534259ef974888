//! Orizuru: a WebAssembly plugin host for tsuru service APIs.
//!
//! A request travels through the modules in this order: [`contract`] (HTTP
//! routes, auth, decoding, tsuru's status rules) → [`service`] (the ledger's
//! checks and the plugin call for each action) → [`ledger`] (instances,
//! bindings, events) and [`runtime`] (a fresh sandbox per call) → back to
//! [`contract`] for tsuru's answer. [`deploy`] puts plugins in service (at
//! start, on an upload through [`admin`], when files change) and [`registry`]
//! finds the service a request is for.

pub mod admin;
pub mod config;
pub mod contract;
pub mod deploy;
pub mod ledger;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod service;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::{Config, Secret};
use crate::deploy::Deployer;
use crate::deploy::watch::Watcher;
use crate::ledger::{Ledger, SqliteLedger};
use crate::registry::Registry;
use crate::runtime::{Runtime, RuntimeSettings};
use crate::service::Service;

/// Everything a running host holds.
pub struct Host {
    pub registry: Arc<Registry>,
    pub ledger: Arc<dyn Ledger>,
    /// Puts plugins in service; `None` for a host of services built elsewhere.
    pub deployer: Option<Arc<Deployer>>,
    /// The admin API's bearer token; `None` turns the admin API off.
    pub admin_token: Option<Secret>,
    /// The largest plugin the admin API accepts, in bytes.
    pub max_plugin_bytes: u64,
    /// The largest request body tsuru may send, in bytes.
    pub max_request_bytes: u64,
    /// How long a request's body may take to arrive once its headers have.
    pub request_body_timeout: std::time::Duration,
    _watcher: Option<Watcher>,
}

impl Host {
    /// Opens the ledger, loads every service's plugin and, if the config
    /// says so, watches the config and plugin files.
    pub async fn start(config: &Config) -> anyhow::Result<Arc<Host>> {
        let ledger = Arc::new(SqliteLedger::open(&config.data_dir)?);
        let settings = RuntimeSettings {
            max_memory_bytes: config
                .services
                .iter()
                .map(|service| service.memory_bytes)
                .max()
                .unwrap_or(0)
                .max(RuntimeSettings::default().max_memory_bytes),
            cache_dir: Some(config.data_dir.join("compiled")),
            max_instances: config.max_instances,
        };
        let runtime = Runtime::new(&settings).map_err(anyhow::Error::from)?;
        let (registry, deployer) =
            Deployer::start(config, runtime, ledger.clone(), ledger.clone()).await?;
        let deployer = Arc::new(deployer);
        let watcher = if config.watch {
            Some(Watcher::start(deployer.clone()).await?)
        } else {
            None
        };
        Ok(Arc::new(Host {
            registry,
            ledger,
            deployer: Some(deployer),
            admin_token: config.admin.as_ref().map(|admin| admin.token.clone()),
            max_plugin_bytes: config.max_plugin_bytes,
            max_request_bytes: config.max_request_bytes,
            request_body_timeout: config.request_body_timeout,
            _watcher: watcher,
        }))
    }

    /// A host around services built elsewhere, for embedding Orizuru with
    /// plugins of another kind (and for testing the contract without wasm).
    /// It has no admin API.
    pub fn with_services(services: Vec<Service>, ledger: Arc<dyn Ledger>) -> Arc<Host> {
        Arc::new(Host {
            registry: Arc::new(Registry::new(services)),
            ledger,
            deployer: None,
            admin_token: None,
            max_plugin_bytes: 0,
            max_request_bytes: config::DEFAULT_MAX_REQUEST_KB * 1024,
            request_body_timeout: std::time::Duration::from_secs(
                config::DEFAULT_REQUEST_BODY_TIMEOUT_SECS,
            ),
            _watcher: None,
        })
    }
}

/// The whole HTTP surface: tsuru's contract and the admin API.
pub fn app(host: Arc<Host>) -> Router {
    admin::routes(&host).merge(contract::app(host))
}

/// Serves tsuru's contract and the admin API on `listener` until `shutdown`
/// completes, then finishes the requests in flight.
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

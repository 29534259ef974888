//! Orizuru: a WebAssembly plugin host for tsuru service APIs.
//!
//! A request travels through the modules in this order: [`api`] (HTTP
//! routes, auth, decoding, tsuru's status rules) → [`service`] (the ledger's
//! checks and the plugin call for each action) → [`ledger`] (instances,
//! bindings, events) and [`runtime`] (a fresh sandbox per call) → back to
//! [`api`] for tsuru's answer. [`deploy`] puts plugins in service (at
//! start, on an upload through [`admin`], when files change) and [`registry`]
//! finds the service a request is for.

pub mod admin;
pub mod api;
pub mod call_log;
pub mod capabilities;
pub mod config;
pub mod connections;
pub mod deploy;
pub mod drain;
pub mod health;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod private;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod setting;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderName;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::{Config, Secret};
use crate::connections::Connections;
use crate::deploy::Deployer;
use crate::deploy::watch::Watcher;
use crate::drain::{Drained, InFlight};
use crate::ledger::{Deployments, Ledger, PgLedger, SqliteLedger};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::runtime::{Runtime, RuntimeSettings};
use crate::service::Service;

/// Everything a running host holds.
pub struct Host {
    pub registry: Arc<Registry>,
    pub ledger: Arc<dyn Ledger>,
    /// Puts plugins in service; `None` for a host of services built elsewhere.
    pub deployer: Option<Arc<Deployer>>,
    /// What `GET /metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The admin API's bearer token; `None` turns the admin API off.
    pub admin_token: Option<Secret>,
    /// The largest plugin the admin API accepts, in bytes.
    pub max_plugin_bytes: u64,
    /// The largest request body tsuru may send, in bytes.
    pub max_request_bytes: u64,
    /// How long a request's headers, and then its body, may take to arrive.
    pub request_read_timeout: std::time::Duration,
    /// How long a stop waits for the requests in flight before cutting them.
    pub drain_timeout: std::time::Duration,
    /// Connections that may be open at once; past it, 503 and closed.
    pub max_connections: usize,
    /// The requests being answered now.
    pub in_flight: Arc<InFlight>,
    /// The shared store; `None` on the embedded one.
    pub store: Option<store::postgres::Postgres>,
    _watcher: Option<Watcher>,
    /// Holds `data_dir` for this host alone while it runs.
    _data_dir_lock: Option<std::fs::File>,
}

impl Host {
    /// Opens the ledger, loads every service's plugin and, if the config
    /// says so, watches the config and plugin files.
    pub async fn start(config: &Config) -> anyhow::Result<Arc<Host>> {
        open_files_for(config.max_connections);
        for note in &config.deprecated {
            tracing::warn!("config: {note}");
        }
        // Taken with a shared store too: the compiled cache is there.
        let data_dir_lock = private::lock(&config.data_dir)?;
        let store = match &config.store {
            Some(settings) => Some(store::postgres::Postgres::open(settings).await?),
            None => None,
        };
        let (ledger, deployments): (Arc<dyn Ledger>, Arc<dyn Deployments>) = match &store {
            Some(store) => (
                Arc::new(PgLedger::open(store, config.retention).await?),
                Arc::new(deploy::shared::SharedDeployments::new(store.clone())),
            ),
            None => {
                let embedded =
                    Arc::new(SqliteLedger::open_with(&config.data_dir, config.retention)?);
                (embedded.clone(), embedded)
            }
        };
        let settings = RuntimeSettings {
            max_memory_bytes: config
                .services
                .iter()
                .map(|service| service.memory_bytes)
                .max()
                .unwrap_or(0)
                .max(RuntimeSettings::default().max_memory_bytes),
            cache_dir: Some(config.cache_dir.clone()),
            keyvalue_path: Some(config.data_dir.join("keyvalue.sqlite3")),
            max_concurrent_calls: config.max_concurrent_calls,
            queue_wait: config.queue_wait,
            store: store.clone(),
        };
        let metrics = Arc::new(Metrics::new());
        let runtime = Runtime::new(&settings, metrics.clone()).map_err(anyhow::Error::from)?;
        let (registry, deployer) =
            Deployer::start(config, runtime, ledger.clone(), deployments, store.as_ref()).await?;
        let deployer = Arc::new(deployer);
        deployer.follow();
        for service in registry.all() {
            // Creates a killed run of the host never ended are undone first thing.
            let steward = service.steward().clone();
            steward.spawn(async move { service.recover().await });
        }
        if ledger.shared() {
            keep_recovering(&registry);
        }
        keep_pruning(ledger.clone());
        let watcher = if config.watch {
            Some(Watcher::start(deployer.clone()).await?)
        } else {
            None
        };
        Ok(Arc::new(Host {
            registry,
            ledger,
            deployer: Some(deployer),
            metrics,
            admin_token: config.admin.as_ref().map(|admin| admin.token.clone()),
            max_plugin_bytes: config.max_plugin_bytes,
            max_request_bytes: config.max_request_bytes,
            request_read_timeout: config.request_read_timeout,
            drain_timeout: config.drain_timeout,
            max_connections: config.max_connections,
            in_flight: Arc::default(),
            store,
            _watcher: watcher,
            _data_dir_lock: Some(data_dir_lock),
        }))
    }

    /// A host around services built elsewhere, for embedding Orizuru with
    /// plugins of another kind (and for testing the API without wasm).
    /// It has no admin API.
    pub fn with_services(services: Vec<Service>, ledger: Arc<dyn Ledger>) -> Arc<Host> {
        Arc::new(Host {
            registry: Arc::new(Registry::new(services)),
            ledger,
            deployer: None,
            metrics: Arc::new(Metrics::new()),
            admin_token: None,
            max_plugin_bytes: 0,
            max_request_bytes: config::DEFAULT_MAX_REQUEST_KB * 1024,
            request_read_timeout: std::time::Duration::from_secs(
                config::DEFAULT_REQUEST_READ_TIMEOUT_SECS,
            ),
            drain_timeout: std::time::Duration::from_secs(config::DEFAULT_DRAIN_TIMEOUT_SECS),
            max_connections: config::DEFAULT_MAX_CONNECTIONS,
            in_flight: Arc::default(),
            store: None,
            _watcher: None,
            _data_dir_lock: None,
        })
    }
}

/// Files the host keeps open besides its connections: the ledger, the
/// key-value store, compiled plugins, the watcher, SQL pools, its threads.
const FILES_BESIDES_CONNECTIONS: u64 = 256;

/// Raises the process's soft limit of open files to its hard limit, as Go
/// and most servers do, so that `max_connections` can be reached; warns
/// when even the hard limit leaves too little room.
fn open_files_for(max_connections: usize) {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            if let Err(err) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!("cannot raise the limit of open files to its maximum: {err}");
            }
        }
        let needed = u64::try_from(max_connections)
            .unwrap_or(u64::MAX)
            .saturating_add(FILES_BESIDES_CONNECTIONS);
        if let Some(current) = getrlimit(Resource::Nofile).current
            && current < needed
        {
            tracing::warn!(
                "the process may open {current} files, fewer than max_connections ({max_connections}) needs with the host's own {FILES_BESIDES_CONNECTIONS}; lower max_connections or raise the limit (ulimit -n, LimitNOFILE=)"
            );
        }
    }
}

/// How often, on a shared ledger, each service looks for creates that a
/// host no longer alive began and never ended.
const ORPHANS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// On a shared ledger a host that dies may never start again, so every
/// [`ORPHANS_EVERY`] each service undoes the creates dead hosts left; two
/// hosts looking at once undo each orphan once (each takes the instance's
/// lock and looks again under it).
fn keep_recovering(registry: &Arc<Registry>) {
    let registry = Arc::downgrade(registry);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ORPHANS_EVERY);
        // The first tick is now, and the start has just looked.
        every.tick().await;
        loop {
            every.tick().await;
            // Stops once the host is gone.
            let Some(registry) = registry.upgrade() else {
                return;
            };
            for service in registry.all() {
                let steward = service.steward().clone();
                steward.spawn(async move { service.recover().await });
            }
        }
    });
}

/// Forgets the ledger's answers past the replay window and its events past
/// their retention: once at start, then every ten minutes.
fn keep_pruning(ledger: Arc<dyn Ledger>) {
    let ledger = Arc::downgrade(&ledger);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            // Stops once the host is gone.
            let Some(ledger) = ledger.upgrade() else {
                return;
            };
            match ledger.prune().await {
                Ok(pruned) if pruned != ledger::Pruned::default() => tracing::info!(
                    answers = pruned.answers,
                    events = pruned.events,
                    "forgot answers past replay_window_secs and events past events_retention_days"
                ),
                Ok(_) => {}
                Err(err) => tracing::error!("cannot prune the ledger's events: {err:#}"),
            }
        }
    });
}

/// The whole HTTP surface: tsuru's API, the admin API, the health
/// probes and the metrics. Every request gets an `X-Request-Id` (tsuru's, or a new UUID),
/// which its answer carries back, its plugin call sees, and every log line
/// about it is tagged with, in a span that also names tsuru's event and user.
pub fn app(host: Arc<Host>) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    admin::routes(&host)
        .merge(health::routes(&host))
        .merge(api::metrics::routes(&host))
        .merge(api::app(host.clone()))
        .layer(axum::middleware::from_fn_with_state(host, drain::track))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// The span of one request: what it asked, and who asked, as tsuru said.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = header("x-request-id"),
        event_id = header("x-tsuru-eventid"),
        user = header("x-tsuru-user"),
    )
}

/// Serves tsuru's API and the admin API on `listener` until `shutdown`
/// completes, then finishes the requests in flight: those still running
/// after the host's `drain_timeout` are cut, logged one by one, and named in
/// the answer.
///
/// It speaks HTTP/1.1 only, as tsuru does; a client opening HTTP/2 is told
/// so in an HTTP/2 GOAWAY frame (see [`connections`]). A client gets
/// `request_read_timeout` to send a request's first byte and headers, and
/// an idle keep-alive connection as long for its next request (past it the
/// connection is closed: there is no request to answer), then as long again
/// for a body (408 with a sentence), so no slow or silent client holds a
/// connection, or the shutdown, for as long as it likes. At most
/// `max_connections` are open at once; one more is answered 503 and closed.
pub async fn serve(
    listener: TcpListener,
    host: Arc<Host>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Drained> {
    let mut http = Builder::new(TokioExecutor::new()).http1_only();
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(host.request_read_timeout);
    let http = Arc::new(http);
    let (drain_timeout, in_flight) = (host.drain_timeout, host.in_flight.clone());
    let registry = host.registry.clone();
    let read_timeout = host.request_read_timeout;
    let cap = Connections::new(host.max_connections, host.metrics.clone());
    let app = app(host);
    let graceful = GracefulShutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Forget the connections that have closed.
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!("cannot accept a connection: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(open) = cap.admit() else {
            cap.refuse(stream, peer);
            continue;
        };
        let (app, http, watcher) = (app.clone(), http.clone(), graceful.watcher());
        tasks.spawn(async move {
            let _open = open;
            let Some(stream) = connections::http1_or_close(stream, peer, read_timeout).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%peer, "a connection ended with an error: {err}");
            }
        });
    }
    drop(listener);
    let waiting = in_flight.now().len();
    if waiting > 0 {
        tracing::info!(
            "stopping: waiting up to {} for {waiting} request(s) in flight (drain_timeout_secs)",
            runtime::humanize(drain_timeout)
        );
    }
    let drained = tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_ok();
    let cut = if drained { Vec::new() } else { in_flight.now() };
    if !drained {
        // Dropping a connection drops its request. A read (plans, info,
        // status) stops there; a change already begun runs to its end below.
        tasks.shutdown().await;
        for request in &cut {
            tracing::warn!(
                method = %request.method,
                path = %request.path,
                request_id = %request.request_id,
                "cut at stop after the drain timeout: {request}"
            );
        }
        tracing::warn!(
            "stopped after waiting {} (drain_timeout_secs): cut {} request(s) still in flight",
            runtime::humanize(drain_timeout),
            cut.len()
        );
    }
    settle(&registry).await;
    Ok(Drained { cut })
}

/// Waits for the changes to instances that began and have not ended
/// (their requests may be gone): each ends recorded or undone, within its
/// plugin's deadlines, so a stop never leaves half an instance.
async fn settle(registry: &Registry) {
    let mut stewards: Vec<_> = registry
        .all()
        .iter()
        .map(|service| service.steward().clone())
        .collect();
    stewards.dedup_by(|one, other| Arc::ptr_eq(one, other));
    let running: usize = stewards.iter().map(|steward| steward.running()).sum();
    if running > 0 {
        tracing::info!(
            "stopping: waiting for {running} change(s) to instances to end, recorded or undone"
        );
    }
    for steward in stewards {
        steward.settled().await;
    }
}

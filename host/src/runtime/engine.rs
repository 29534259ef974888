//! The engine every plugin shares: compilation, the instance pool and the epoch clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::{CompiledCache, CompiledFrom};
use super::sandbox::{EPOCH_TICK, Limits, Sandbox};
use super::threads::GuestThreads;
use super::wasm::WasmPlugin;
use super::wit::{PluginPre, WIT_PACKAGE, exported_version};
use crate::capabilities::{self, HostState};
use crate::config::ServiceConfig;
use crate::metrics::Metrics;
use crate::store::postgres::Postgres;

/// How much of each linear memory's slot stays resident between instances.
const MEMORY_KEEP_RESIDENT: usize = 8 << 20;
/// How much of each table's slot stays resident between instances.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// How big the instance pool is.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Plugin calls that may run at once, over all services; past it a call
    /// waits up to `queue_wait` for a place, then is answered "busy".
    pub max_concurrent_calls: u32,
    /// How long a call waits for a place under `max_concurrent_calls`.
    pub queue_wait: Duration,
    /// The largest memory any service grants its plugin.
    pub max_memory_bytes: u64,
    /// Where compiled plugins are kept between starts; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// The key-value store's file; `None` keeps it in memory.
    pub keyvalue_path: Option<PathBuf>,
    /// The shared store (`[store]`); when set, the key-value store is kept
    /// there instead of in `keyvalue_path`.
    pub store: Option<Postgres>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 100,
            queue_wait: Duration::from_millis(crate::config::DEFAULT_QUEUE_WAIT_MS),
            max_memory_bytes: crate::config::DEFAULT_MEMORY_MB * 1024 * 1024,
            cache_dir: None,
            keyvalue_path: None,
            store: None,
        }
    }
}

/// Compiles plugins and runs their calls.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<Sandbox>>,
    cache: Option<CompiledCache>,
    max_memory_bytes: u64,
    threads: Arc<GuestThreads>,
    capabilities: Arc<HostState>,
    metrics: Arc<Metrics>,
    _clock: EpochClock,
}

/// Which wasm component a plugin is: the one version type that `orizuru
/// check`, the load pipeline, the serving service and the kept versions
/// share. Its field names are those of the deployment store's JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginVersion {
    /// The sha256 of the component, in hex.
    pub sha256: String,
    pub size: usize,
    /// The version of `orizuru:service/handler` the component exports.
    pub wit: String,
}

/// What a component is, as `orizuru check` reports it.
pub struct Inspection {
    pub version: PluginVersion,
    /// How long compiling it took (no cache is used).
    pub took: Duration,
    /// Each capability import, with the config key that grants it.
    pub capabilities: Vec<(String, &'static str)>,
}

/// A plugin ready to serve, and how it was loaded.
pub struct Loaded {
    pub plugin: WasmPlugin,
    pub version: PluginVersion,
    pub compiled_from: CompiledFrom,
    /// How long loading took (reading, compiling or loading from the cache, checking).
    pub took: Duration,
}

impl Runtime {
    /// A runtime whose plugin calls are recorded in `metrics`.
    pub fn new(settings: &RuntimeSettings, metrics: Arc<Metrics>) -> wasmtime::Result<Self> {
        let running = settings.max_concurrent_calls.max(1);
        // Room for as many instances again kept idle between calls by the
        // services that reuse them (`reuse_calls`); a slot is only address
        // space until an instance uses it.
        let instances = running.saturating_mul(2);
        let mut pool = PoolingAllocationConfig::default();
        // A component built by componentize-py or the preview1 adapter holds
        // several core instances, memories and tables; size the pool for them.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(16))
            .total_memories(instances.saturating_mul(4))
            .total_tables(instances.saturating_mul(16))
            .total_stacks(instances)
            .max_memory_size(usize::try_from(settings.max_memory_bytes).unwrap_or(usize::MAX))
            // A memory's slot is reset for its next instance by copying back
            // the pages the last one wrote (found with PAGEMAP_SCAN where the
            // kernel has it), up to this much, instead of unmapping them: the
            // next instance then writes without a page fault, and no
            // `madvise` shoots down every thread's TLB.
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Plugins are called one export at a time (no component-model
            // async): without the state for concurrent calls a store is
            // lighter to make, and dropping it disposes of no idle fiber
            // (which costs an error and, under RUST_BACKTRACE, a backtrace).
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).context("cannot set up the wasm engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .context("cannot link WASI for plugins")?;
        super::wit::add_to_linker(&mut linker)
            .context("cannot link the Orizuru contract for plugins")?;
        capabilities::add_to_linker(&mut linker)?;

        let cache = settings
            .cache_dir
            .as_deref()
            .map(|dir| CompiledCache::open(dir, &engine))
            .transpose()?;
        let clock = EpochClock::start(engine.clone())?;
        let threads = Arc::new(
            GuestThreads::start(
                usize::try_from(running).unwrap_or(usize::MAX),
                settings.queue_wait,
            )
            .map_err(wasmtime::Error::from_anyhow)?,
        );
        let capabilities = Arc::new(
            HostState::start(&capabilities::Start {
                keyvalue_path: settings.keyvalue_path.as_deref(),
                store: settings.store.as_ref(),
            })
            .map_err(wasmtime::Error::from_anyhow)?,
        );
        Ok(Self {
            capabilities,
            engine,
            linker: Arc::new(linker),
            cache,
            max_memory_bytes: settings.max_memory_bytes,
            threads,
            metrics,
            _clock: clock,
        })
    }

    /// The host's metrics, which this runtime records its plugin calls in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Loads a service's plugin from the bytes of a wasm component, whose
    /// sha256 the caller has computed (from the
    /// compiled cache when it can), and checks it is a component this host
    /// can serve: it exports a WIT version of the contract the host speaks
    /// and imports nothing the host does not grant. `label` names the bytes
    /// in errors ("plugins/fake.wasm", "the uploaded plugin").
    ///
    /// Compiling takes a while for a large component: call this off the
    /// async threads.
    pub fn load(
        &self,
        service: &ServiceConfig,
        bytes: &[u8],
        sha256: &str,
        label: &str,
    ) -> wasmtime::Result<Loaded> {
        let started = Instant::now();
        self.check_limits(service)?;
        let (component, compiled_from, wit) = self.compile(bytes, sha256, label)?;
        capabilities::check(
            &self.engine,
            &component,
            &service.grants,
            label,
            &service.id,
        )?;
        let pre = self.pre(&component, label, Some(&service.id), &wit)?;
        let plugin = WasmPlugin::new(
            self.engine.clone(),
            pre,
            Limits::of(service, &self.capabilities),
            self.threads.clone(),
            self.capabilities.clone(),
            self.metrics.clone(),
        );
        Ok(Loaded {
            plugin,
            version: PluginVersion {
                sha256: sha256.to_owned(),
                size: bytes.len(),
                wit,
            },
            compiled_from,
            took: started.elapsed(),
        })
    }

    /// What `orizuru check` says of a component: everything [`Runtime::load`]
    /// checks but the grants of a service, and the capabilities it imports
    /// with the config key that grants each.
    pub fn inspect(&self, bytes: &[u8], label: &str) -> wasmtime::Result<Inspection> {
        let started = Instant::now();
        let sha256 = super::sha256(bytes);
        let (component, _, wit) = self.compile(bytes, &sha256, label)?;
        let took = started.elapsed();
        self.pre(&component, label, None, &wit)?;
        Ok(Inspection {
            version: PluginVersion {
                sha256,
                size: bytes.len(),
                wit,
            },
            took,
            capabilities: capabilities::requested(&self.engine, &component),
        })
    }

    /// Checks the bytes are a component of this host's contract, and compiles them.
    fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
        label: &str,
    ) -> wasmtime::Result<(Component, CompiledFrom, String)> {
        if bytes.is_empty() {
            wasmtime::bail!("{label} is empty; send the bytes of a wasm component");
        }
        if !bytes.starts_with(b"\0asm") {
            wasmtime::bail!(
                "{label} is not WebAssembly (it does not start with the wasm magic bytes); send a component built for wasm32-wasip2"
            );
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            wasmtime::bail!(
                "{label} is a core wasm module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
            );
        }
        let (component, compiled_from) = match &self.cache {
            Some(cache) => cache.component(&self.engine, sha256, bytes),
            None => {
                Component::new(&self.engine, bytes).map(|component| (component, CompiledFrom::Wasm))
            }
        }
        .with_context(|| format!("{label} is not a wasm component this host can run"))?;
        let wit = exported_version(&self.engine, &component, label)?;
        Ok((component, compiled_from, wit))
    }

    /// Links a component: every import it has must be one the host links.
    fn pre(
        &self,
        component: &Component,
        label: &str,
        service: Option<&str>,
        wit: &str,
    ) -> wasmtime::Result<PluginPre> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|err| self.ungranted(component, label, service, err))?;
        PluginPre::new(pre, wit).with_context(|| {
            format!(
                "{label} exports orizuru:service/handler@{wit} with functions this host does not expect; rebuild it with the Orizuru SDK for {WIT_PACKAGE}"
            )
        })
    }

    /// Whether the instance pool, sized at start, can hold a service's limits.
    pub fn check_limits(&self, service: &ServiceConfig) -> wasmtime::Result<()> {
        if service.memory_bytes > self.max_memory_bytes {
            wasmtime::bail!(
                "service \"{}\" grants its plugin {} MiB, more than the {} MiB this host's instance pool was sized for at start; restart the host to apply it",
                service.id,
                service.memory_bytes / (1024 * 1024),
                self.max_memory_bytes / (1024 * 1024)
            );
        }
        Ok(())
    }

    /// Why a component cannot be linked: the first import the host does
    /// not grant, by name.
    fn ungranted(
        &self,
        component: &Component,
        label: &str,
        service: Option<&str>,
        err: wasmtime::Error,
    ) -> wasmtime::Error {
        let to_service = service
            .map(|id| format!(" to service \"{id}\""))
            .unwrap_or_default();
        let detail = format!("{err:#}");
        let missing = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .find(|name| detail.contains(&format!("`{name}`")));
        match missing {
            Some(name) => wasmtime::format_err!(
                "{label} imports {name}, which this host does not grant{to_service}; plugins get WASI 0.2 clocks, random and stdio (no files, network or environment), so build the plugin without that import"
            ),
            None => wasmtime::format_err!(
                "{label} asks for imports this host does not grant{to_service}: {detail}"
            ),
        }
    }
}

impl Runtime {
    /// Drops the compiled form of a version no service keeps any more.
    pub fn forget(&self, sha256: &str) {
        if let Some(cache) = &self.cache {
            cache.forget(sha256);
        }
    }
}

/// Advances the engine's epoch every tick, so deadlines are checked while
/// plugins run; stops when the runtime is dropped.
struct EpochClock {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochClock {
    fn start(engine: Engine) -> wasmtime::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("orizuru-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("cannot start the thread that enforces plugin deadlines")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and ticks; it cannot have panicked in a way worth reporting.
            thread.join().ok();
        }
    }
}

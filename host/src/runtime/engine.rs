//! The engine every plugin shares: compilation, the instance pool and the epoch clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::{self, CompiledCache, Origin};
use super::sandbox::{EPOCH_TICK, Limits, Sandbox};
use super::wasm::{WasmPlugin, bindings};
use crate::config::ServiceConfig;

/// How big the instance pool is.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Plugin calls that may run at once, over all services; past it a call
    /// is answered "busy" at once instead of waiting.
    pub max_instances: u32,
    /// The largest memory any service grants its plugin.
    pub max_memory_bytes: u64,
    /// Where compiled plugins are kept between starts; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            max_instances: 100,
            max_memory_bytes: crate::config::DEFAULT_MEMORY_MB * 1024 * 1024,
            cache_dir: None,
        }
    }
}

/// Compiles plugins and runs their calls.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<Sandbox>>,
    cache: Option<CompiledCache>,
    _clock: EpochClock,
}

/// A plugin ready to serve, and how it was loaded.
pub struct Loaded {
    pub plugin: WasmPlugin,
    /// The sha256 of the wasm component, in hex.
    pub sha256: String,
    pub size: usize,
    pub origin: Origin,
    pub took: Duration,
}

impl Runtime {
    pub fn new(settings: &RuntimeSettings) -> wasmtime::Result<Self> {
        let instances = settings.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A component built by componentize-py or the preview1 adapter holds
        // several core instances, memories and tables; size the pool for them.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(16))
            .total_memories(instances.saturating_mul(4))
            .total_tables(instances.saturating_mul(16))
            .total_stacks(instances)
            .max_memory_size(usize::try_from(settings.max_memory_bytes).unwrap_or(usize::MAX));

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).context("cannot set up the wasm engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .context("cannot link WASI for plugins")?;
        bindings::Plugin::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |sandbox| {
            sandbox
        })
        .context("cannot link the Orizuru contract for plugins")?;

        let cache = settings
            .cache_dir
            .as_deref()
            .map(|dir| CompiledCache::open(dir, &engine))
            .transpose()?;
        let clock = EpochClock::start(engine.clone())?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
            _clock: clock,
        })
    }

    /// Loads a service's plugin (from the compiled cache when it can) and
    /// checks it is a component exporting the contract.
    pub fn load(&self, service: &ServiceConfig) -> wasmtime::Result<Loaded> {
        let started = Instant::now();
        let path = &service.plugin;
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the plugin file {}", path.display()))?;
        if wasmparser::Parser::is_core_wasm(&bytes) {
            wasmtime::bail!(
                "{} is a core wasm module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)",
                path.display()
            );
        }
        let sha256 = cache::sha256(&bytes);
        let (component, origin) = match &self.cache {
            Some(cache) => cache.component(&self.engine, &sha256, &bytes),
            None => {
                Component::new(&self.engine, &bytes).map(|component| (component, Origin::Compiled))
            }
        }
        .with_context(|| {
            format!(
                "{} is not a wasm component this host can run",
                path.display()
            )
        })?;
        let pre = self.linker.instantiate_pre(&component).with_context(|| {
            format!(
                "{} asks for imports this host does not grant",
                path.display()
            )
        })?;
        let pre = bindings::PluginPre::new(pre).with_context(|| {
            format!(
                "{} does not export the orizuru:service/handler@0.1.0 interface; build it with the Orizuru SDK",
                path.display()
            )
        })?;
        let plugin = WasmPlugin::new(
            self.engine.clone(),
            pre,
            Limits {
                service: Arc::from(service.id.as_str()),
                timeout: service.timeout,
                memory_bytes: service.memory_bytes,
            },
        );
        Ok(Loaded {
            plugin,
            sha256,
            size: bytes.len(),
            origin,
            took: started.elapsed(),
        })
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

//! The per-call store: WASI with nothing granted, a memory cap and a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_log::GuestLog;

/// What one call's store holds.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub memory: MemoryCap,
    stdout: GuestLog,
    stderr: GuestLog,
}

// The contract's types interface has no functions for the host to provide.
impl super::wasm::bindings::orizuru::service::types::Host for Sandbox {}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The error the epoch callback raises once the call's time is up.
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed")]
pub struct DeadlineExceeded;

/// How often the engine's epoch advances; a deadline is checked this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The limits of one call.
#[derive(Clone)]
pub struct Limits {
    pub service: Arc<str>,
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub answers: crate::config::AnswerLimits,
}

impl Limits {
    /// The limits a service's config sets.
    pub fn of(service: &crate::config::ServiceConfig) -> Self {
        Self {
            service: Arc::from(service.id.as_str()),
            timeout: service.timeout,
            memory_bytes: service.memory_bytes,
            answers: service.answers,
        }
    }
}

impl Sandbox {
    /// A store for one call: no files, no environment, no network, stdio to
    /// the log, the memory cap and the deadline armed before any guest code runs.
    pub fn store(engine: &Engine, limits: &Limits, request_id: Option<&str>) -> Store<Sandbox> {
        let stdout = GuestLog::new(
            limits.service.clone(),
            "stdout",
            request_id.map(str::to_owned),
            limits.answers.log_lines,
        );
        let stderr = GuestLog::new(
            limits.service.clone(),
            "stderr",
            request_id.map(str::to_owned),
            limits.answers.log_lines,
        );
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let sandbox = Sandbox {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(limits.memory_bytes),
            stdout,
            stderr,
        };
        let mut store = Store::new(engine, sandbox);
        store.limiter(|sandbox| &mut sandbox.memory);
        let deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(DeadlineExceeded.into())
            } else {
                // Let other requests run on this thread, then check again next tick.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Logs what is left of the plugin's output.
    pub fn finish(&self) {
        self.stdout.finish();
        self.stderr.finish();
    }
}

/// Caps the memory of a whole instance: all its linear memories together.
pub struct MemoryCap {
    cap: u64,
    used: u64,
    /// Set when a growth was refused, so a trap that follows is reported as
    /// the memory limit rather than as whatever the guest did about it.
    pub hit: bool,
}

impl MemoryCap {
    fn new(cap: u64) -> Self {
        Self {
            cap,
            used: 0,
            hit: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        if self.used.saturating_add(growth) > self.cap {
            self.hit = true;
            return Ok(false);
        }
        self.used += growth;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

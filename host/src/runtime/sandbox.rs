//! The per-call store: WASI with nothing granted, a memory cap, a deadline,
//! stdout and stderr into the log, and the state of each capability the
//! service grants (which the capabilities own; the store only holds them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_log::GuestLog;
use crate::call_log::{CallTags, Redactor};
use crate::capabilities::{CallInfo, CallStore, Calls, Granted, HostState};

/// What one call's store holds.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub memory: MemoryCap,
    stdout: GuestLog,
    stderr: GuestLog,
    /// Each granted capability's state for this call.
    capabilities: Calls,
}

impl CallStore for Sandbox {
    fn capabilities(&mut self) -> (&mut Calls, &mut ResourceTable) {
        (&mut self.capabilities, &mut self.table)
    }
}

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
    /// Whether an instance serves more than one call, and for how long.
    pub reuse: Option<crate::config::Reuse>,
    /// What the service's plugin may import, as its calls share it.
    pub granted: Arc<Granted>,
    /// Blanks the service's secrets out of what its plugin logs and answers.
    pub redactor: Redactor,
}

impl Limits {
    /// The limits a service's config sets; `host` is what the capabilities
    /// keep for the whole host (the key-value store).
    pub fn of(service: &crate::config::ServiceConfig, host: &HostState) -> Self {
        let id: Arc<str> = Arc::from(service.id.as_str());
        Self {
            timeout: service.timeout,
            memory_bytes: service.memory_bytes,
            answers: service.answers,
            reuse: service.reuse,
            granted: Arc::new(Granted::of(&service.grants, host, &id)),
            redactor: Redactor::new(service.grants.secrets().map(|secret| secret.expose())),
            service: id,
        }
    }
}

impl Sandbox {
    /// A store for one call: no files, no environment, no network, stdio to
    /// the log, the memory cap and the deadline armed before any guest code runs.
    pub fn store(engine: &Engine, limits: &Limits, tags: CallTags) -> Store<Sandbox> {
        let stdout = GuestLog::new(
            limits.service.clone(),
            "stdout",
            tags.request_id.clone(),
            limits.answers.log_lines,
            limits.redactor.clone(),
        );
        let stderr = GuestLog::new(
            limits.service.clone(),
            "stderr",
            tags.request_id.clone(),
            limits.answers.log_lines,
            limits.redactor.clone(),
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
            capabilities: Calls::new(&limits.granted, &call_info(limits, tags)),
            stdout,
            stderr,
        };
        let mut store = Store::new(engine, sandbox);
        store.limiter(|sandbox| &mut sandbox.memory);
        arm_deadline(&mut store, limits.timeout);
        store
    }

    /// Readies the store of an instance that served a call for the next
    /// one, as a fresh store would be: that call's request on the output,
    /// new log budgets, each capability's state begun anew (handles the
    /// plugin kept from the last call no longer reach anything), and the
    /// deadline armed again. What the guest keeps in its own memory stays:
    /// that is what reuse is.
    pub fn renew(store: &mut Store<Sandbox>, limits: &Limits, tags: CallTags) {
        let sandbox = store.data_mut();
        let lines = limits.answers.log_lines;
        sandbox.stdout.renew(tags.request_id.clone(), lines);
        sandbox.stderr.renew(tags.request_id.clone(), lines);
        sandbox.capabilities = Calls::new(&limits.granted, &call_info(limits, tags));
        sandbox.memory.hit = false;
        arm_deadline(store, limits.timeout);
    }

    /// Whether the instance may serve another call: the resource table
    /// holds nothing but its stdout and stderr streams, so no handle from
    /// this call (a socket, a body, a stream of a capability) can reach the next.
    pub fn reusable(&mut self) -> bool {
        self.table.iter_mut().all(|entry| {
            let entry: &dyn std::any::Any = entry;
            entry.is::<wasmtime_wasi::p2::DynOutputStream>()
        })
    }

    /// Logs what is left of the plugin's output.
    pub fn finish(&self) {
        self.stdout.finish();
        self.stderr.finish();
        self.capabilities.finish();
    }
}

/// What the capabilities know of a call.
fn call_info(limits: &Limits, tags: CallTags) -> CallInfo {
    CallInfo {
        service: limits.service.clone(),
        tags,
        redactor: limits.redactor.clone(),
        log_lines: limits.answers.log_lines,
    }
}

/// Stops guest code once `timeout` has passed from now.
fn arm_deadline(store: &mut Store<Sandbox>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(DeadlineExceeded.into())
        } else {
            // Let other requests run on this thread, then check again next tick.
            Ok(UpdateDeadline::Yield(1))
        }
    });
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

//! The per-call store: WASI with nothing granted, a memory cap and a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;

use super::capabilities::{Granted, LogBudget, Redactor};
use super::guest_log::GuestLog;
use super::http::OutboundHttp;
use super::keyvalue::{KvStore, Namespace};

/// What one call's store holds.
pub struct Sandbox {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub memory: MemoryCap,
    stdout: GuestLog,
    stderr: GuestLog,
    /// What the service's plugin may import, and this call's share of it.
    pub granted: Arc<Granted>,
    pub tags: CallTags,
    pub log_budget: LogBudget,
    pub redactor: Redactor,
    /// The service's keys, when it is granted `wasi:keyvalue`.
    pub keyvalue: Option<Namespace>,
    pub(super) http_ctx: WasiHttpCtx,
    /// Where the plugin may send HTTP requests, and what it has sent.
    pub(super) outbound: OutboundHttp,
}

/// What one call is about, for the lines it logs.
#[derive(Debug, Clone, Default)]
pub struct CallTags {
    pub request_id: Option<String>,
    /// tsuru's event id (`X-Tsuru-Eventid`).
    pub event_id: Option<String>,
    pub instance: Option<String>,
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
    pub granted: Arc<Granted>,
    /// Blanks the service's secrets out of what its plugin logs and answers.
    pub redactor: Redactor,
    pub keyvalue: Option<Namespace>,
}

impl Limits {
    /// The limits a service's config sets; `store` holds its keys when it
    /// is granted `wasi:keyvalue`.
    pub fn of(service: &crate::config::ServiceConfig, store: &Arc<KvStore>) -> Self {
        Self {
            service: Arc::from(service.id.as_str()),
            timeout: service.timeout,
            memory_bytes: service.memory_bytes,
            answers: service.answers,
            granted: Arc::new(Granted::of(&service.grants)),
            redactor: Redactor::of(&service.grants),
            keyvalue: service.grants.keyvalue.then(|| Namespace {
                store: store.clone(),
                service: Arc::from(service.id.as_str()),
                quota: service.grants.keyvalue_quota,
            }),
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
            stdout,
            stderr,
            granted: limits.granted.clone(),
            log_budget: LogBudget::new(limits.service.clone(), limits.answers.log_lines),
            redactor: limits.redactor.clone(),
            keyvalue: limits.keyvalue.clone(),
            http_ctx: WasiHttpCtx::new(),
            outbound: OutboundHttp::new(
                limits.granted.http.clone(),
                limits.service.clone(),
                tags.request_id.clone(),
            ),
            tags,
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
        self.log_budget.finish(&self.tags);
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

//! The threads plugin code runs on.
//!
//! Guest code never runs on the threads that serve HTTP and write the
//! ledger: each call gets a thread of this pool for its whole length. On
//! Linux these threads also run at a lower priority (nice 10), so the host's
//! own work — reading requests, writing the ledger, answering — comes before
//! any plugin's, and a plugin burning its whole deadline takes CPU only from
//! other plugin code, which the kernel shares fairly: a short call that
//! wakes up is scheduled ahead of one that has been running.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// How much lower than the host's own threads plugin code runs (a nice value).
#[cfg(target_os = "linux")]
const GUEST_NICENESS: i32 = 10;

pub struct GuestThreads {
    /// Used only for its pool of blocking threads; the calls' timers and I/O
    /// stay with the runtime that asked for them.
    pool: Option<Runtime>,
    /// One place per thread: a call runs only once it holds one, so no call
    /// ever queues inside the pool, where its wait would be unbounded.
    places: Arc<Semaphore>,
    /// As many places for instances kept idle between calls (services
    /// with `reuse_calls`): the instance pool holds both.
    idle: Arc<Semaphore>,
    /// How long a call may wait for a place.
    queue_wait: Duration,
}

/// A call's place on the pool, held until the call's thread is done with it.
pub struct Place {
    _permit: OwnedSemaphorePermit,
}

impl GuestThreads {
    /// A pool of up to `max` threads, started as calls need them; a call
    /// waits at most `queue_wait` for one to be free.
    pub fn start(max: usize, queue_wait: Duration) -> anyhow::Result<Self> {
        let pool = Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(max.max(1))
            .thread_name("orizuru-guest")
            .on_thread_start(lower_priority)
            .build()
            .context("cannot start the threads that run plugin code")?;
        Ok(Self {
            pool: Some(pool),
            places: Arc::new(Semaphore::new(max.max(1))),
            idle: Arc::new(Semaphore::new(max.max(1))),
            queue_wait,
        })
    }

    /// A place for one call of `service`, as soon as one is free; `None`
    /// when none came free within the queue wait.
    pub async fn place(&self, metrics: &Metrics, service: &str) -> Option<Place> {
        within(&self.places, self.queue_wait, metrics, service)
            .await
            .map(|permit| Place { _permit: permit })
    }

    /// The host's places for idle instances, which every reusing service shares.
    pub fn idle_places(&self) -> Arc<Semaphore> {
        self.idle.clone()
    }

    /// Runs `call` to its end on a thread of the pool, with the timers and
    /// I/O of the runtime this is called from; `place` is given back when
    /// the thread is done.
    pub fn run<F>(&self, place: Place, call: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let caller = Handle::current();
        let pool = self
            .pool
            .as_ref()
            .map_or_else(|| caller.clone(), |pool| pool.handle().clone());
        pool.spawn_blocking(move || {
            let output = caller.block_on(call);
            drop(place);
            output
        })
    }
}

impl Drop for GuestThreads {
    fn drop(&mut self) {
        // A host may be dropped inside async code, where a runtime may not
        // block to shut down; calls still running end at their deadlines.
        if let Some(pool) = self.pool.take() {
            pool.shutdown_background();
        }
    }
}

/// A permit of `places` as soon as one is free, waiting at most `wait`
/// for it; `None` when none came free. A call that had to wait has its
/// wait recorded in `metrics` for `service`.
pub async fn within(
    places: &Arc<Semaphore>,
    wait: Duration,
    metrics: &Metrics,
    service: &str,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = places.clone().try_acquire_owned() {
        return Some(permit);
    }
    let waiting = std::time::Instant::now();
    let permit = tokio::time::timeout(wait, places.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok);
    metrics.queue_wait(service, waiting.elapsed());
    permit
}

/// Lowers the calling thread's priority (on Linux, a nice value is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        if let Err(err) = rustix::process::setpriority_process(Some(thread), GUEST_NICENESS) {
            tracing::warn!("cannot lower the priority of a plugin thread: {err}");
        }
    }
}

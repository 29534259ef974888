//! Where plugin code runs.
//!
//! A call starts on the task that made it, so the common call — a few
//! hundred microseconds of guest code — pays for no hand-over between
//! threads. Once it has run for [`INLINE_BUDGET`] it moves to a thread of
//! this pool for the rest of its length (the engine makes the guest yield
//! at every epoch tick, so that is at most a tick later). On Linux these
//! threads run at a lower priority (nice 10), so the host's own work —
//! reading requests, writing the ledger, answering — comes before a long
//! call's, and a plugin burning its whole deadline takes CPU only from
//! other plugin code, which the kernel shares fairly.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// How long a call may run on the task that made it before it moves to a
/// plugin thread: the time it spends running, not waiting on the host.
const INLINE_BUDGET: Duration = Duration::from_millis(2);

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

    /// Runs `call` to its end: on the calling task while it is short, on
    /// a thread of the pool once it has run for [`INLINE_BUDGET`], with the
    /// timers and I/O of the runtime this is called from. Most plugin calls
    /// end well within the budget, so they pay for no hand-over between
    /// threads; one that computes for longer goes on at the pool's lower
    /// priority, having held an HTTP thread for one epoch tick at most (the
    /// tick at which the guest yields). `place` is given back when the call
    /// ends. A panic in the call is caught and answered as an error.
    pub async fn run<F>(&self, place: Place, call: F) -> Result<F::Output, String>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut call = Box::pin(call);
        let mut ran = Duration::ZERO;
        let inline = std::future::poll_fn(|cx| {
            let polled = Instant::now();
            let poll = std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx)));
            ran += polled.elapsed();
            match poll {
                Ok(Poll::Ready(output)) => Poll::Ready(Some(Ok(output))),
                Err(panic) => Poll::Ready(Some(Err(panic_text(&*panic)))),
                Ok(Poll::Pending) if ran >= INLINE_BUDGET => Poll::Ready(None),
                Ok(Poll::Pending) => Poll::Pending,
            }
        })
        .await;
        if let Some(ended) = inline {
            drop(place);
            return ended;
        }
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
        .await
        .map_err(|err| err.to_string())
    }
}

/// What a panic said, when it said it in text.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let said = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("it panicked: {said}")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn thread() -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_short_or_waiting_call_stays_where_it_was_made_and_a_computing_one_moves() {
        let threads = GuestThreads::start(2, Duration::from_millis(100)).expect("a pool");
        let metrics = Metrics::new();
        let here = thread();
        let place = threads.place(&metrics, "s").await.expect("a place");
        let short = threads.run(place, async { thread() }).await;
        assert_eq!(short, Ok(here.clone()));

        // Waiting on the host costs the budget nothing.
        let place = threads.place(&metrics, "s").await.expect("a place");
        let waiting = threads.run(place, async {
            tokio::time::sleep(INLINE_BUDGET * 5).await;
            thread()
        });
        assert_eq!(waiting.await, Ok(here.clone()));

        // Computing past the budget, yielding as the engine makes a guest
        // yield at each epoch tick, moves it to a plugin thread.
        let place = threads.place(&metrics, "s").await.expect("a place");
        let computing = threads.run(place, async {
            let started = Instant::now();
            while started.elapsed() < INLINE_BUDGET * 3 {
                std::thread::sleep(Duration::from_millis(1));
                tokio::task::yield_now().await;
            }
            thread()
        });
        assert_eq!(computing.await, Ok(Some("orizuru-guest".to_owned())));
        assert_eq!(threads.places.available_permits(), 2, "every place is back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_panic_in_a_call_is_an_error_and_gives_its_place_back() {
        let threads = GuestThreads::start(1, Duration::from_millis(100)).expect("a pool");
        let metrics = Metrics::new();
        let place = threads.place(&metrics, "s").await.expect("a place");
        let panicked = threads
            .run(place, async {
                if threads_are_up() {
                    panic!("a host function broke");
                }
            })
            .await;
        assert_eq!(panicked, Err("it panicked: a host function broke".to_owned()));
        assert!(threads.place(&metrics, "s").await.is_some(), "its place is back");
    }

    /// True; keeps the compiler from seeing the panic as unconditional.
    fn threads_are_up() -> bool {
        std::hint::black_box(true)
    }
}

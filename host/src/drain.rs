//! The requests in flight, so that a stopping host can wait for them for a
//! bounded time and then say which ones it cut.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::Host;

/// One request being answered.
#[derive(Clone, Debug)]
pub struct InFlightRequest {
    pub method: String,
    pub path: String,
    /// Its `X-Request-Id`.
    pub request_id: String,
    started: Instant,
}

impl InFlightRequest {
    /// How long it has been running.
    pub fn running_for(&self) -> Duration {
        self.started.elapsed()
    }
}

impl std::fmt::Display for InFlightRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (request id {}, running for {:.1}s)",
            self.method,
            self.path,
            self.request_id,
            self.running_for().as_secs_f64()
        )
    }
}

/// The requests the host is answering now.
#[derive(Debug, Default)]
pub struct InFlight {
    next: AtomicU64,
    requests: Mutex<BTreeMap<u64, InFlightRequest>>,
}

impl InFlight {
    /// The requests running now, oldest first.
    pub fn now(&self) -> Vec<InFlightRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn enter(self: &Arc<Self>, request: InFlightRequest) -> Leaving {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key, request);
        Leaving {
            in_flight: self.clone(),
            key,
        }
    }
}

/// Takes a request off the list when it is answered, or dropped.
struct Leaving {
    in_flight: Arc<InFlight>,
    key: u64,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        self.in_flight
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.key);
    }
}

/// Keeps every request on [`Host::in_flight`] while it runs.
pub async fn track(State(host): State<Arc<Host>>, request: Request, next: Next) -> Response {
    let entry = InFlightRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        request_id: request
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none")
            .to_owned(),
        started: Instant::now(),
    };
    let _leaving = host.in_flight.enter(entry);
    next.run(request).await
}

/// How a stop ended: the requests still running when the drain timed out,
/// which were cut (their clients see the connection close).
#[derive(Debug, Default)]
pub struct Drained {
    pub cut: Vec<InFlightRequest>,
}

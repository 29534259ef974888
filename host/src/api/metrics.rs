//! The HTTP side of the host's [`Metrics`]: the middleware that counts each
//! request of tsuru's API under the service and action its handlers found,
//! and the `GET /metrics` page.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::answer::{self, ApiError};
use crate::Host;
use crate::metrics::{Metrics, ServiceGauges, UNKNOWN_SERVICE};
use crate::model::Action;

/// Which served service a request is for, as its handler finds out. The
/// middleware puts an empty one in each request's extensions and reads it
/// once the request is answered; the auth extractors fill it in.
#[derive(Clone, Default)]
pub(super) struct Served(Arc<OnceLock<String>>);

impl Served {
    /// Notes `service` as the request's, if the request is counted and no
    /// service was noted before.
    pub(super) fn note(parts: &Parts, service: &str) {
        if let Some(served) = parts.extensions.get::<Served>() {
            served.0.get_or_init(|| service.to_owned());
        }
    }
}

/// Counts each request of tsuru's API once answered: its service (as
/// [`Served`] says), its action (as the route it took put in its answer; a
/// request no route took is a proxied call), its status and how long it
/// took.
pub(super) async fn record(
    State(metrics): State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let served = Served::default();
    request.extensions_mut().insert(served.clone());
    let response = next.run(request).await;
    let action = response
        .extensions()
        .get::<Action>()
        .copied()
        .unwrap_or(Action::Proxy);
    metrics.request(
        served.0.get().map_or(UNKNOWN_SERVICE, String::as_str),
        action.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`, without credentials, like the health probes.
pub fn routes(host: &Arc<Host>) -> Router {
    Router::new()
        .route("/metrics", get(page))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(host.clone())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    answer::method_not_allowed(method.as_str(), uri.path(), "the metrics")
}

/// The page, with the gauges read from the host now.
async fn page(State(host): State<Arc<Host>>) -> Result<Response, ApiError> {
    let services = host.registry.all();
    let page = host
        .metrics
        .encode(services.iter().map(|service| ServiceGauges {
            service: service.id(),
            in_use: service.calls_running(),
            ledger_instances: host.ledger.instance_count(service.id()),
        }))
        .map_err(|err| {
            tracing::error!("cannot encode /metrics: {err}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the metrics could not be written; the host's log says why",
            )
        })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        page,
    )
        .into_response())
}

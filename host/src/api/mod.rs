//! tsuru's service API over HTTP: the route table, the handlers, basic auth,
//! request decoding, and the statuses and bodies tsuru reads (see
//! `shared/tsuru-service-api.md`); and the metrics' HTTP side, which counts
//! each of its requests and serves `GET /metrics`. The plugin's WIT
//! contract is not here: it is the runtime's.

pub mod answer;
mod auth;
pub use auth::same_secret;
pub mod decode;
mod extract;
mod handlers;
pub mod metrics;
pub mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router, middleware};

use crate::Host;

/// Every route of tsuru's API, served both at the root (the service is the
/// one whose username the basic-auth header names) and under
/// `/services/{id}` (the service is named by the path). A path with tricks
/// in it (`//`, `..`) is refused before routing.
pub fn app(host: Arc<Host>) -> Router {
    let limits = extract::BodyLimits {
        max_bytes: host.max_request_bytes,
        timeout: host.request_read_timeout,
    };
    Router::new()
        .merge(routes::resources())
        .nest("/services/{service}", routes::resources())
        .route(
            "/services/{service}/",
            axum::routing::any(handlers::proxy_service_root),
        )
        .layer(middleware::from_fn_with_state(
            host.metrics.clone(),
            metrics::record,
        ))
        .layer(DefaultBodyLimit::max(
            usize::try_from(limits.max_bytes).unwrap_or(usize::MAX),
        ))
        .layer(Extension(limits))
        .layer(middleware::from_fn(extract::plain_path))
        .with_state(host)
}

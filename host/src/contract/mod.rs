//! The HTTP contract tsuru speaks: routes, decoding, auth, and the statuses
//! and bodies tsuru reads. See `shared/tsuru-service-api.md`.

pub mod answer;
mod auth;
pub use auth::{same_secret, username as basic_auth_username};
pub mod decode;
mod extract;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router, middleware};

use crate::Host;

/// Every route of the contract, served both at the root (the service is the
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
            axum::routing::any(routes::proxy_service_root),
        )
        .layer(middleware::from_fn_with_state(
            host.clone(),
            crate::metrics::record,
        ))
        .layer(DefaultBodyLimit::max(
            usize::try_from(limits.max_bytes).unwrap_or(usize::MAX),
        ))
        .layer(Extension(limits))
        .layer(middleware::from_fn(extract::plain_path))
        .with_state(host)
}

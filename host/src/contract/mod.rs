//! The HTTP contract tsuru speaks: routes, decoding, auth, and the statuses
//! and bodies tsuru reads. See `shared/tsuru-service-api.md`.

pub mod answer;
mod auth;
pub mod decode;
mod extract;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};

use crate::Host;

/// Every route of the contract, served both at the root (the service is the
/// one whose username the basic-auth header names) and under
/// `/services/{id}` (the service is named by the path).
pub fn app(host: Arc<Host>) -> Router {
    let limit = host.max_request_bytes;
    Router::new()
        .merge(routes::resources())
        .nest("/services/{service}", routes::resources())
        .layer(DefaultBodyLimit::max(
            usize::try_from(limit).unwrap_or(usize::MAX),
        ))
        .layer(Extension(extract::BodyLimit(limit)))
        .with_state(host)
}

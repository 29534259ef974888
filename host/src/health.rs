//! Probes for whoever runs the host (a load balancer, Kubernetes, systemd):
//! `GET /healthz` answers while the process serves HTTP at all, and
//! `GET /readyz` while every service it should serve is serving. Neither
//! needs credentials, and neither says more than which services are down.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;

use crate::Host;
use crate::api::answer::{self, ApiError};

pub fn routes(host: &Arc<Host>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(host.clone())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    answer::method_not_allowed(method.as_str(), uri.path(), "the health probes")
}

async fn healthz() -> &'static str {
    "alive\n"
}

async fn readyz(State(host): State<Arc<Host>>) -> (StatusCode, String) {
    if let Some(store) = &host.store {
        let reached = tokio::time::timeout(crate::store::STORE_WAIT, async {
            let client = store.client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(crate::store::postgres::postgres_error)?;
            anyhow::Ok(())
        })
        .await;
        let why = match reached {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(format!("{err:#}")),
            Err(_) => Some(format!(
                "it did not answer within {} s",
                crate::store::STORE_WAIT.as_secs()
            )),
        };
        if let Some(why) = why {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: the shared store (PostgreSQL) cannot be reached: {why}\n"),
            );
        }
    }
    let behind = host
        .deployer
        .as_ref()
        .map(|deployer| deployer.behind())
        .unwrap_or_default();
    if let Some((id, behind)) = behind.iter().next() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: service \"{id}\" serves an older version here, because the fleet's version {} did not load on this host ({}); GET /admin/services/{id} shows every host\n",
                behind.sha256, behind.reason
            ),
        );
    }
    let down = host
        .deployer
        .as_ref()
        .map(|deployer| deployer.unserved())
        .unwrap_or_default();
    let quoted: Vec<String> = down.iter().map(|id| format!("\"{id}\"")).collect();
    match quoted.as_slice() {
        [] => (StatusCode::OK, "ready: every service is serving\n".into()),
        [one] => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: service {one} is not serving, its plugin did not load; GET /admin/services/{} says why\n",
                down[0]
            ),
        ),
        many => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: services {} are not serving, their plugins did not load; GET /admin/services says why\n",
                many.join(", ")
            ),
        ),
    }
}

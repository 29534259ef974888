//! The operators' API under `/admin`, behind a bearer token of its own:
//! upload a plugin, roll back, add and remove services, see what serves.
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/services` | every service: active version, kept versions, last failed load |
//! | `GET /admin/services/{id}` | one service, with its newest plugin events |
//! | `PUT /admin/services/{id}/plugin` | validate the body (a wasm component) and swap it in |
//! | `POST /admin/services/{id}/rollback[?to=<sha256>]` | swap back to the previous (or named) kept version |
//! | `PUT /admin/services/{id}[?username=&timeout_ms=&memory_mb=&max_concurrent_calls=]` | add a service with the body as its plugin; answers its password |
//! | `DELETE /admin/services/{id}[?force=true]` | stop serving a service added here |

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::routing::{get, post, put};
use serde::Deserialize;

use crate::Host;
use crate::api::answer::{self, ApiError};
use crate::deploy::{
    AddedView, DeployError, DeployedView, Deployer, ErrorKind, NewService, RemovedView, ServiceView,
};

/// The admin routes, answering "off" when no token is configured.
pub fn routes(host: &Arc<Host>) -> Router {
    let limit = usize::try_from(host.max_plugin_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/admin/services", get(list))
        .route("/admin/services/{id}", get(show).put(add).delete(remove))
        .route("/admin/services/{id}/plugin", put(upload))
        .route("/admin/services/{id}/rollback", post(rollback))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(host.clone())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    answer::method_not_allowed(method.as_str(), uri.path(), "the admin API")
}

/// A request that carries the admin token.
struct Admin(Arc<Deployer>);

const NEEDS_TOKEN: &str = "the admin API needs the header `Authorization: Bearer <token>` with the admin_token of the host's config";

impl FromRequestParts<Arc<Host>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, host: &Arc<Host>) -> Result<Self, ApiError> {
        let (Some(expected), Some(deployer)) = (&host.admin_token, &host.deployer) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "the admin API is off on this host; set admin_token_env (or admin_token) in the config and restart it",
            ));
        };
        let unauthorized = |sentence: &str| {
            let mut error = ApiError::new(StatusCode::UNAUTHORIZED, sentence);
            error.headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"orizuru-admin\""),
            ));
            error
        };
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized(NEEDS_TOKEN))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| unauthorized(NEEDS_TOKEN))?;
        if bool::from(crate::api::same_secret(token, expected.expose())) {
            Ok(Admin(deployer.clone()))
        } else {
            Err(unauthorized(
                "wrong admin token; use the admin_token of the host's config",
            ))
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        let status = match error.kind() {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Host => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut answer = ApiError::new(status, error.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answer.headers.push((
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(crate::store::RETRY_AFTER_SECS),
            ));
        }
        answer
    }
}

async fn list(Admin(deployer): Admin) -> Result<Json<Vec<ServiceView>>, ApiError> {
    Ok(Json(deployer.describe_all().await?))
}

async fn show(
    Admin(deployer): Admin,
    Path(id): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    Ok(Json(deployer.describe_one(&id).await?))
}

async fn upload(
    Admin(deployer): Admin,
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DeployedView>, ApiError> {
    let body = plugin_body(&host, body)?;
    let deployed = deployer.upload(&id, body).await?;
    Ok(Json(DeployedView::from(&deployed)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackQuery {
    to: Option<String>,
}

async fn rollback(
    Admin(deployer): Admin,
    Path(id): Path<String>,
    query: Result<Query<RollbackQuery>, QueryRejection>,
) -> Result<Json<DeployedView>, ApiError> {
    let Query(query) = query.map_err(|err| query_error(err, "to=<sha256>"))?;
    let deployed = deployer.rollback(&id, query.to.as_deref()).await?;
    Ok(Json(DeployedView::from(&deployed)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddQuery {
    username: Option<String>,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    /// Also read as `max_instances`, its old name.
    #[serde(alias = "max_instances")]
    max_concurrent_calls: Option<u32>,
}

async fn add(
    Admin(deployer): Admin,
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    query: Result<Query<AddQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AddedView>), ApiError> {
    let Query(query) = query.map_err(|err| {
        query_error(
            err,
            "username, timeout_ms, memory_mb and max_concurrent_calls",
        )
    })?;
    let body = plugin_body(&host, body)?;
    let settings = NewService {
        username: query.username,
        timeout_ms: query.timeout_ms,
        memory_mb: query.memory_mb,
        max_concurrent_calls: query.max_concurrent_calls,
    };
    let added = deployer.add(&id, settings, body).await?;
    Ok((StatusCode::CREATED, Json(AddedView::from(&added))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

async fn remove(
    Admin(deployer): Admin,
    Path(id): Path<String>,
    query: Result<Query<RemoveQuery>, QueryRejection>,
) -> Result<Json<RemovedView>, ApiError> {
    let Query(query) = query.map_err(|err| query_error(err, "force=true"))?;
    deployer.remove(&id, query.force).await?;
    Ok(Json(RemovedView { removed: id }))
}

/// The uploaded component, or why it cannot be read.
fn plugin_body(host: &Host, body: Result<Bytes, BytesRejection>) -> Result<Vec<u8>, ApiError> {
    match body {
        Ok(body) if body.is_empty() => Err(ApiError::bad_request(
            "the request has no body; send the wasm component as the body (curl --data-binary @plugin.wasm)",
        )),
        Ok(body) => Ok(body.to_vec()),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the plugin is larger than this host accepts ({} MiB); raise max_plugin_mb in the config",
                    host.max_plugin_bytes / (1024 * 1024)
                ),
            ))
        }
        Err(rejection) => Err(ApiError::bad_request(format!(
            "the plugin could not be read from the request: {}",
            rejection.body_text()
        ))),
    }
}

fn query_error(rejection: QueryRejection, known: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the query string is not valid ({}); this route takes {known}",
        rejection.body_text()
    ))
}

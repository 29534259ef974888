//! What a request carries, read into the host's model: the body's fields,
//! tsuru's headers, and the path's names.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::answer::ApiError;
use super::decode::{DecodeError, Encoding, Fields};
use crate::model::Context;

impl From<DecodeError> for ApiError {
    fn from(error: DecodeError) -> Self {
        ApiError::bad_request(error.0)
    }
}

/// The body, decoded from either of tsuru's encodings.
pub struct Payload(pub Fields);

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = match request.headers().get(CONTENT_TYPE) {
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the Content-Type header is not readable text",
                )
            })?),
            None => None,
        };
        let encoding = Encoding::of(content_type)
            .map_err(|error| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, error.0))?;
        let body = RawBody::from_request(request, state).await?;
        Ok(Payload(Fields::decode(encoding, &body.0)?))
    }
}

/// The body as bytes, with a sentence when it cannot be read.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let limit = request.extensions().get::<BodyLimit>().copied();
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| body_error(&rejection, limit))
    }
}

/// The largest body the host reads, in bytes (the config's `max_request_kb`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub u64);

fn body_error(rejection: &BytesRejection, limit: Option<BodyLimit>) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let size = match limit {
            Some(BodyLimit(bytes)) => format!(" ({} KiB)", bytes / 1024),
            None => String::new(),
        };
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this host accepts{size}; send a smaller one"),
        )
    } else {
        ApiError::bad_request(format!(
            "the request body could not be read: {}",
            rejection.body_text()
        ))
    }
}

/// tsuru's headers: who asked, for which event, from which pool and cluster.
pub struct Tsuru(pub Context);

impl<S: Send + Sync> FromRequestParts<S> for Tsuru {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(Tsuru(context(&parts.headers)))
    }
}

pub fn context(headers: &HeaderMap) -> Context {
    let one = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    Context {
        user: one("x-tsuru-user"),
        event_id: one("x-tsuru-eventid"),
        request_id: one("x-request-id"),
        pool_name: one("x-tsuru-pool-name"),
        pool_provisioner: one("x-tsuru-pool-provisioner"),
        cluster_name: one("x-tsuru-cluster-name"),
        cluster_provisioner: one("x-tsuru-cluster-provisioner"),
        cluster_addresses: headers
            .get_all("x-tsuru-cluster-addresses")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect(),
        cluster_kube_config: one("x-tsuru-cluster-kube-config"),
    }
}

/// tsuru repeats the user and event id in the body; the headers win.
pub fn with_body(mut context: Context, fields: &Fields) -> Context {
    context.user = context.user.or_else(|| fields.one("user"));
    context.event_id = context.event_id.or_else(|| fields.one("eventid"));
    context
}

/// Names taken from the path, with a sentence when they cannot be read.
pub struct Named<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Named<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(names)| Named(names))
            .map_err(|rejection| {
                ApiError::bad_request(format!(
                    "the request's path could not be read: {}",
                    rejection.body_text()
                ))
            })
    }
}

/// tsuru's rule for instance names, `^[A-Za-z][-a-zA-Z0-9_]+$`, and a length
/// no service should need more of.
pub fn check_instance_name(name: &str) -> Result<(), ApiError> {
    const MAX: usize = 100;
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !well_formed {
        return Err(ApiError::bad_request(format!(
            "instance name \"{name}\" is not valid; use a letter followed by at least one letter, digit, '-' or '_'"
        )));
    }
    if name.len() > MAX {
        return Err(ApiError::bad_request(format!(
            "instance name \"{}...\" is {} characters long; use at most {MAX}",
            &name[..20],
            name.len()
        )));
    }
    Ok(())
}

//! What a request carries, read into the host's model: the body's fields,
//! tsuru's headers, and the path's names.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

use super::answer::{ApiError, quoted};
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
                    "the Content-Type header is not readable text; use application/x-www-form-urlencoded or application/json",
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

/// The body as bytes, with a sentence when it cannot be read: too large,
/// too slow, cut off or badly framed.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let limits = request.extensions().get::<BodyLimits>().copied();
        let framing = Framing::of(request.headers());
        let read = Bytes::from_request(request, state);
        let read = match limits {
            // A client that sends its headers and then stalls would hold the
            // request (and its service's place) for as long as it likes.
            Some(limits) => tokio::time::timeout(limits.timeout, read)
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request body did not arrive within {}s; send it whole and at once",
                            limits.timeout.as_secs()
                        ),
                    )
                })?,
            None => read.await,
        };
        read.map(RawBody)
            .map_err(|rejection| body_error(&rejection, limits, framing))
    }
}

/// What the host reads of a body: at most `max_bytes` (the config's
/// `max_request_kb`), all of it within `timeout` (`request_read_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub timeout: Duration,
}

/// How the client said its body would be delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
    Unknown,
}

impl Framing {
    fn of(headers: &HeaderMap) -> Self {
        let chunked = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return Framing::Chunked;
        }
        headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok())
            .map_or(Framing::Unknown, Framing::Length)
    }
}

fn body_error(
    rejection: &BytesRejection,
    limits: Option<BodyLimits>,
    framing: Framing,
) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let size = match limits {
            Some(limits) => format!(" ({} KiB)", limits.max_bytes / 1024),
            None => String::new(),
        };
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this host accepts{size}; send a smaller one"),
        );
    }
    // The cause is hyper's and names its internals; the client gets what it
    // can act on, the log keeps the cause.
    tracing::debug!(cause = %rejection.body_text(), "a request body could not be read");
    ApiError::bad_request(match framing {
        Framing::Length(length) => format!(
            "the request body ended before the {length} bytes its Content-Length header announced; send the whole body"
        ),
        Framing::Chunked => "the request body's chunked encoding is broken or cut off; send well-formed chunks ending with a zero-size chunk".to_owned(),
        Framing::Unknown => "the request body could not be read to its end; send it whole and at once".to_owned(),
    })
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

/// Path names that include an instance's, checked by tsuru's rule before
/// any lookup: no request reaches the ledger or a plugin with a name tsuru
/// could never have created.
pub trait NamesInstance: DeserializeOwned + Send {
    fn instance(&self) -> &str;
}

/// Names taken from the path, with a sentence when they cannot be read.
pub struct Named<T>(pub T);

impl<S: Send + Sync, T: NamesInstance> FromRequestParts<S> for Named<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(names) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                // Paths that are not UTF-8 are refused before routing (see
                // `plain_path`); what is left is a route without its names.
                tracing::debug!(cause = %rejection.body_text(), "a request path could not be read");
                ApiError::bad_request(
                    "the names in the request path could not be read; send /resources/<instance>/... with the instance's name",
                )
            })?;
        check_instance_name(names.instance())?;
        Ok(Named(names))
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
            "instance name {} is not valid; use a letter followed by at least one letter, digit, '-' or '_'",
            quoted(name)
        )));
    }
    if name.len() > MAX {
        return Err(ApiError::bad_request(format!(
            "instance name {} is {} characters long; use at most {MAX}",
            quoted(name),
            name.len()
        )));
    }
    Ok(())
}

/// Refuses, before routing and auth, paths tsuru never sends and that could
/// make a name or a proxied path mean something else: an empty segment
/// (`//`), a `.` or `..` segment (raw, percent-encoded, or made by an
/// encoded slash), or a segment that is not UTF-8 once decoded.
pub async fn plain_path(request: Request, next: Next) -> Response {
    match check_path(request.uri().path()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check_path(path: &str) -> Result<(), ApiError> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        // A trailing slash is a proxied path's own business.
        if segment.is_empty() && index != last {
            return Err(ApiError::bad_request(format!(
                "the request path {} has an empty segment (\"//\"); send it without doubled slashes",
                quoted(path)
            )));
        }
        let decoded = String::from_utf8(percent_decode_str(segment).collect()).map_err(|_| {
            ApiError::bad_request(format!(
                "the request path segment {} is not UTF-8 once percent-decoded; send names in UTF-8",
                quoted(segment)
            ))
        })?;
        if decoded.split('/').any(|part| part == "." || part == "..") {
            return Err(ApiError::bad_request(format!(
                "the request path segment {} has a \".\" or \"..\" part (perhaps percent-encoded); name the instance and the route directly",
                quoted(segment)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_tricks_are_refused() {
        for path in [
            "/resources/plans",
            "/services/queue/resources/db/status",
            "/resources/db/backup/",
            "/resources/db/files/a%2Fb",
            "/resources/caf%C3%A9/status",
            "/resources/100%/status",
        ] {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
        for (path, expected) in [
            ("//resources/plans", "empty segment"),
            ("/resources//status", "empty segment"),
            ("/resources/../x", "\"..\" has a"),
            ("/resources/%2e%2E/bind-app", "\"%2e%2E\" has a"),
            ("/resources/./status", "\".\" has a \".\" or"),
            ("/resources/..%2F..%2Fetc/status", "\"..%2F..%2Fetc\""),
            ("/resources/a%2F..%2Fb/status", "has a \".\" or"),
            ("/resources/%FF/status", "\"%FF\" is not UTF-8"),
        ] {
            let refused = check_path(path).expect_err(path);
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}");
            assert!(
                refused.sentence.contains(expected),
                "{path}: {}",
                refused.sentence
            );
        }
    }

    #[test]
    fn instance_names_follow_tsurus_rule() {
        for name in ["db", "My-db_2", "ab"] {
            assert_eq!(check_instance_name(name), Ok(()), "{name}");
        }
        for (name, expected) in [
            ("9lives", "instance name \"9lives\" is not valid"),
            ("-x", "instance name \"-x\" is not valid"),
            ("a", "instance name \"a\" is not valid"),
            ("a\0b", "instance name \"a\\0b\" is not valid"),
            ("a\nb", "instance name \"a\\nb\" is not valid"),
            ("café", "instance name \"café\" is not valid"),
        ] {
            let refused = check_instance_name(name).expect_err(name);
            assert!(
                refused.sentence.starts_with(expected),
                "{name}: {}",
                refused.sentence
            );
        }
        let long = "a".repeat(1000);
        let refused = check_instance_name(&long).expect_err("too long");
        assert!(
            refused
                .sentence
                .ends_with("...\" is 1000 characters long; use at most 100"),
            "{}",
            refused.sentence
        );
    }
}

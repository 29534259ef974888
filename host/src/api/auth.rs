//! Basic auth per service, as tsuru sends it.
//!
//! Under `/services/{id}/...` the path names the service; under
//! `/resources/...` the basic-auth username does. Either way the pair must
//! match that service's, compared in constant time. The service found is
//! noted for the metrics as soon as it is known, so that a refused request
//! is counted under it too.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::answer::{ApiError, quoted};
use super::metrics::Served;
use crate::Host;
use crate::service::Service;

/// The service a request is for, once its credentials are checked.
pub struct Authed(pub Arc<Service>);

const NEEDS_AUTH: &str = "this service API needs basic auth with the username and password of the service's tsuru manifest";
const WRONG_AUTH: &str = "wrong username or password for this service; use the username and password of the service's tsuru manifest";

impl FromRequestParts<Arc<Host>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, host: &Arc<Host>) -> Result<Self, ApiError> {
        let named = named_service(parts, host).await;
        let by_path = named.as_deref().and_then(|id| host.registry.by_id(id));
        // Counted under the service the path names, whatever the credentials.
        if let Some(service) = &by_path {
            Served::note(parts, service.id());
        }
        let (username, password) = credentials(&parts.headers)?;
        let service = match (named, by_path) {
            (Some(_), Some(service)) => service,
            // Tell a caller who holds some service's credentials that the
            // endpoint is wrong; tell anyone else nothing.
            (Some(id), None)
                if matching(
                    host.registry.by_username(&username).as_ref(),
                    &username,
                    &password,
                ) =>
            {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no service {} is served here; check the endpoint in the service's tsuru manifest",
                        quoted(&id)
                    ),
                ));
            }
            (Some(_), None) => return Err(ApiError::unauthorized(WRONG_AUTH)),
            (None, _) => match host.registry.by_username(&username) {
                Some(service) => {
                    // Counted under the service the username names, even
                    // when the password is wrong.
                    Served::note(parts, service.id());
                    service
                }
                None => {
                    // Spend the same time as a real comparison, so that a
                    // username's existence cannot be timed.
                    matching(None, &username, &password);
                    return Err(ApiError::unauthorized(WRONG_AUTH));
                }
            },
        };
        if matching(Some(&service), &username, &password) {
            Ok(Authed(service))
        } else {
            Err(ApiError::unauthorized(WRONG_AUTH))
        }
    }
}

/// The service a request claims to be for, unchecked: it only counts a
/// request no handler reads (a method its route does not take) under the
/// service [`Authed`] would have counted it under.
pub struct Claimed;

impl FromRequestParts<Arc<Host>> for Claimed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        host: &Arc<Host>,
    ) -> Result<Self, Self::Rejection> {
        let service = match named_service(parts, host).await {
            Some(id) => host.registry.by_id(&id),
            None => credentials(&parts.headers)
                .ok()
                .and_then(|(username, _)| host.registry.by_username(&username)),
        };
        if let Some(service) = service {
            Served::note(parts, service.id());
        }
        Ok(Claimed)
    }
}

/// The id of the service the path names (`/services/{service}/...`), if it
/// names one.
async fn named_service(parts: &mut Parts, host: &Arc<Host>) -> Option<String> {
    RawPathParams::from_request_parts(parts, host)
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(key, _)| *key == "service")
                .map(|(_, id)| id.to_owned())
        })
}

/// Whether the pair is the service's, compared in constant time.
fn matching(service: Option<&Arc<Service>>, username: &str, password: &str) -> bool {
    let (expected_user, expected_password) = match service {
        Some(service) => (
            service.config().username.as_str(),
            service.config().password_digest(),
        ),
        None => (
            "orizuru-no-such-user",
            Sha256::digest(b"orizuru-no-such-password").into(),
        ),
    };
    let user_ok = same_secret(username, expected_user);
    let password_ok = same_digest(
        &Sha256::digest(password.as_bytes()).into(),
        &expected_password,
    );
    service.is_some() && bool::from(user_ok & password_ok)
}

/// Whether `given` is `expected`, in constant time. Both are hashed first
/// and their digests compared, so that neither the time nor the result of
/// the comparison depends on how long the expected secret is.
pub fn same_secret(given: &str, expected: &str) -> Choice {
    same_digest(
        &Sha256::digest(given.as_bytes()).into(),
        &Sha256::digest(expected.as_bytes()).into(),
    )
}

/// Compares two SHA-256 digests in constant time: always 32 bytes each.
fn same_digest(given: &[u8; 32], expected: &[u8; 32]) -> Choice {
    given.ct_eq(expected)
}

/// The username and password of an `Authorization: Basic` header.
fn credentials(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized(NEEDS_AUTH))?;
    let malformed = || {
        ApiError::unauthorized(format!(
            "the Authorization header is not valid basic auth; {NEEDS_AUTH}"
        ))
    };
    let value = header.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok((username.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_any_length_are_compared_as_digests() {
        let expected = "a-long-service-password-0123456789";
        assert!(bool::from(same_secret(expected, expected)));
        let (longer, huge) = (format!("{expected}0"), "x".repeat(4096));
        for given in [
            "",
            "a",
            "a-long-service-password",
            longer.as_str(),
            huge.as_str(),
        ] {
            assert!(!bool::from(same_secret(given, expected)), "{given:?}");
        }
        // What is compared is always two 32-byte digests, whatever the lengths.
        let (short, long) = (
            Sha256::digest(b"a").into(),
            Sha256::digest([b'a'; 300]).into(),
        );
        assert!(!bool::from(same_digest(&short, &long)));
        assert!(bool::from(same_digest(&long, &long)));
    }
}

//! tsuru's reading rules, in one place: which status and body each outcome
//! gets. tsuru prints error bodies word for word, so every error is one plain
//! sentence; success bodies are always what tsuru decodes (`{}` and `[]` at
//! least, never an empty bind).

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::model::{Action, Env, ProxyResponse, Refusal, Status};
use crate::runtime::Stop;
use crate::service::{ActionError, Created};

/// Text from a request, quoted for a sentence: control characters and
/// quotes escaped (a name with a newline or a NUL stays on one line), and
/// cut after 40 characters, so that no request can make an answer long.
pub fn quoted(text: &str) -> String {
    const SHOWN: usize = 40;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(SHOWN).collect();
    let more = if chars.next().is_some() { "..." } else { "" };
    format!("\"{}{more}\"", head.escape_debug())
}

/// 405 for a method `who` (tsuru, the admin API) does not use on `path`.
pub fn method_not_allowed(method: &str, path: &str, who: &str) -> ApiError {
    // A method is a token (no spaces or control characters), but any length.
    let method: String = method.chars().take(20).collect();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not a method {who} uses on {}", quoted(path)),
    )
}

/// An error answer: a status and one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub sentence: String,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, sentence: impl Into<String>) -> Self {
        Self {
            status,
            sentence: sentence.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(sentence: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, sentence)
    }

    pub fn unauthorized(sentence: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, sentence);
        error.headers.push((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"orizuru\""),
        ));
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.sentence,
        )
            .into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        let status = status_of(&error);
        let mut answer = ApiError::new(status, error.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let seconds = if unreachable(&error) {
                crate::store::RETRY_AFTER_SECS
            } else {
                1
            };
            answer
                .headers
                .push((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        answer
    }
}

/// Whether an action was not done because the shared store cannot be reached.
fn unreachable(error: &ActionError) -> bool {
    match error {
        ActionError::StoreUnreachable(_) => true,
        ActionError::Shared(error) => unreachable(error),
        _ => false,
    }
}

/// The status tsuru is answered for an action that was not done.
fn status_of(error: &ActionError) -> StatusCode {
    match error {
        ActionError::UnknownInstance { .. } => StatusCode::NOT_FOUND,
        ActionError::Duplicate { .. } => StatusCode::CONFLICT,
        // tsuru waits and tries a bind again on 412; the rest is a conflict.
        ActionError::BeingCreated { action, .. } => match action {
            Action::BindApp | Action::BindJob => StatusCode::PRECONDITION_FAILED,
            _ => StatusCode::CONFLICT,
        },
        ActionError::NotReady { .. } => StatusCode::PRECONDITION_FAILED,
        ActionError::Unsupported { action, .. } => unsupported_status(*action),
        ActionError::Refused { refusal, .. } => match refusal {
            Refusal::Invalid(_) | Refusal::MissingParams(_) => StatusCode::BAD_REQUEST,
            Refusal::NotFound(_) | Refusal::Unsupported => StatusCode::NOT_FOUND,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::NotReady(_) => StatusCode::PRECONDITION_FAILED,
            Refusal::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        ActionError::Stopped { stop, .. } => match stop {
            Stop::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            Stop::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        ActionError::Busy { .. } | ActionError::HostBusy | ActionError::StoreUnreachable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ActionError::Ledger { .. } | ActionError::Interrupted { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        ActionError::Shared(error) => status_of(error),
    }
}

/// What tsuru makes of "this service does not do that", per action: a 404
/// where tsuru reads it as "optional, not implemented" (update, status,
/// info, proxy), a 400 with the sentence where the user asked for something
/// the service cannot give (create, binds).
fn unsupported_status(action: Action) -> StatusCode {
    match action {
        Action::Create | Action::BindApp | Action::BindJob => StatusCode::BAD_REQUEST,
        Action::Plans
        | Action::Info
        | Action::Status
        | Action::Proxy
        | Action::Update
        | Action::Remove
        | Action::UnbindApp
        | Action::UnbindJob => StatusCode::NOT_FOUND,
    }
}

/// A plans call the plugin answered with missing parameters: tsuru reads
/// this exact shape and asks its user for them (a pool, usually).
pub fn missing_params(names: &[String]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "missing_params": names })),
    )
        .into_response()
}

/// 201 for a ready instance, 202 for one still provisioning; tsuru reads
/// any 2xx as success and ignores the body.
pub fn created(created: Created) -> Response {
    match created {
        Created::Ready => StatusCode::CREATED.into_response(),
        Created::Pending => StatusCode::ACCEPTED.into_response(),
    }
}

/// A bind's env vars: always a JSON object of strings, `{}` at least.
pub fn env(env: Env) -> Response {
    (StatusCode::CREATED, Json(env)).into_response()
}

/// tsuru's status codes: 204 up, 202 pending, 500 down, 200 with the text.
pub fn status(status: Status) -> Response {
    let text = |code: StatusCode, body: String| {
        (
            code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match status {
        Status::Up => StatusCode::NO_CONTENT.into_response(),
        Status::Pending(note) => text(StatusCode::ACCEPTED, note),
        Status::Down(reason) => text(StatusCode::INTERNAL_SERVER_ERROR, reason),
        Status::Custom(shown) => text(StatusCode::OK, shown),
    }
}

/// Headers a proxy must not pass on: they describe one hop, not the message.
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    ];
    HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
}

/// The plugin's own response to a proxied call, as it gave it.
pub fn proxied(service: &str, response: ProxyResponse) -> Response {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "plugin \"{service}\" answered the proxied call with status {}, which is not valid",
                response.status
            ),
        )
        .into_response();
    };
    // Built bare, so the plugin's own headers are the only ones (no default content type).
    let mut answer = Response::new(axum::body::Body::from(response.body));
    *answer.status_mut() = status;
    for (name, value) in response.headers {
        if is_hop_by_hop(&name) {
            continue;
        }
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => {
                answer.headers_mut().append(name, value);
            }
            _ => tracing::warn!(
                service,
                header = name,
                "dropped a header the plugin answered that HTTP cannot carry"
            ),
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status_of(error: ActionError) -> (StatusCode, String) {
        let answer = ApiError::from(error);
        (answer.status, answer.sentence)
    }

    #[test]
    fn quoted_text_is_escaped_and_short() {
        assert_eq!(quoted("db"), "\"db\"");
        assert_eq!(quoted("a\0b\n\"c\""), r#""a\0b\n\"c\"""#);
        assert_eq!(quoted("café"), "\"café\"");
        assert_eq!(
            quoted(&"x".repeat(1000)),
            format!("\"{}...\"", "x".repeat(40))
        );
    }

    #[test]
    fn refusals_map_to_tsuru_statuses() {
        let refused = |refusal| ActionError::Refused {
            service: "pg".into(),
            refusal,
        };
        assert_eq!(
            status_of(refused(Refusal::Invalid("bad plan".into()))),
            (StatusCode::BAD_REQUEST, "bad plan".into())
        );
        assert_eq!(
            status_of(refused(Refusal::NotFound("gone".into()))).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(refused(Refusal::Conflict("taken".into()))).0,
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_of(refused(Refusal::NotReady("wait".into()))).0,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            status_of(refused(Refusal::Failed("broke".into()))).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status_of(refused(Refusal::Failed("  ".into()))).1,
            "service \"pg\" refused the request without saying why"
        );
    }

    #[test]
    fn stops_are_one_sentence_with_the_right_status() {
        let stopped = |stop| ActionError::Stopped {
            service: "mysql".into(),
            stop,
        };
        assert_eq!(
            status_of(stopped(Stop::Deadline(Duration::from_secs(30)))),
            (
                StatusCode::GATEWAY_TIMEOUT,
                "plugin \"mysql\" stopped: deadline of 30s exceeded".into()
            )
        );
        assert_eq!(
            status_of(stopped(Stop::Trap("x".into()))).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let busy = ApiError::from(stopped(Stop::Busy));
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            busy.headers
                .iter()
                .any(|(name, _)| name == header::RETRY_AFTER)
        );
    }

    #[test]
    fn an_unreachable_store_is_503_with_its_retry_after_even_shared() {
        let sentence = crate::store::Unreachable("connection refused".into()).to_string();
        let alone = ActionError::StoreUnreachable(sentence.clone());
        let shared = ActionError::Shared(std::sync::Arc::new(ActionError::StoreUnreachable(
            sentence.clone(),
        )));
        for error in [alone, shared] {
            let answer = ApiError::from(error);
            assert_eq!(
                (answer.status, answer.sentence.as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, sentence.as_str())
            );
            assert_eq!(
                answer.headers,
                [(header::RETRY_AFTER, HeaderValue::from_static("5"))]
            );
        }
    }

    #[test]
    fn unsupported_actions_answer_as_tsuru_expects() {
        let unsupported = |action| {
            status_of(ActionError::Unsupported {
                service: "s".into(),
                action,
            })
        };
        assert_eq!(unsupported(Action::Update).0, StatusCode::NOT_FOUND);
        assert_eq!(unsupported(Action::Status).0, StatusCode::NOT_FOUND);
        assert_eq!(
            unsupported(Action::BindApp),
            (
                StatusCode::BAD_REQUEST,
                "service \"s\" does not support binding apps".into()
            )
        );
    }
}

//! Outbound HTTP to the origins the service's operator allowed
//! (`[services.http] allow = ["https://api.example.com"]`), through the
//! standard `wasi:http/outgoing-handler`. A call blocks until the whole
//! answer is read, as plugin actions do.
//!
//! Needs a `[services.http]` table in the service's `[[services]]` entry: a
//! plugin that calls these functions is refused at load without one.
//!
//! ```no_run
//! # fn f() -> orizuru_sdk::Result<()> {
//! use orizuru_sdk::http::{self, Request};
//!
//! let health = http::get("https://broker.example.com/api/health")?;
//! if health.status() != 200 {
//!     return Err(orizuru_sdk::Error::failed("the broker is not healthy; try again later"));
//! }
//!
//! let created = Request::post("https://broker.example.com/api/vhosts/orders")
//!     .header("authorization", "Bearer from-the-config")
//!     .json(&serde_json::json!({ "tracing": false }))
//!     .send()?
//!     .error_for_status()?;
//! let vhost: serde_json::Value = created.json()?;
//! # Ok(()) }
//! ```
//!
//! The host refuses a request to an origin the operator did not allow, past
//! the call's share of requests (`max_requests`), an answer larger than
//! `max_response_kb` and a wait longer than `timeout_ms`; each comes back as
//! an [`Error`] whose sentence says which key to ask the operator about.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// The method of a [`Request::new`].
pub use http::Method;
/// Why a request gave no answer.
pub use wasip2::http::types::ErrorCode as Failure;

/// `GET url`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

/// A request being built; nothing is sent until [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    /// A mistake found while building, reported by `send`.
    invalid: Option<String>,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            invalid: None,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }

    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::PUT, url)
    }

    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::PATCH, url)
    }

    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::DELETE, url)
    }

    /// Adds a header (a name may be given more than once).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body, sent as it is.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The body as JSON, with `content-type: application/json`.
    pub fn json(mut self, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => self.body = body,
            Err(err) => self.invalid = Some(format!("its body cannot be written as JSON: {err}")),
        }
        self.header("content-type", "application/json")
    }

    /// The body as a form (`application/x-www-form-urlencoded`).
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.body(body)
            .header("content-type", "application/x-www-form-urlencoded")
    }

    /// Waits at most this long to connect, for the answer to start, and
    /// between its parts; the service's `timeout_ms` bounds the whole
    /// request still.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole answer.
    pub fn send(self) -> Result<Response, Error> {
        let target = Target::of(&self.url)?;
        let fail = |kind: ErrorKind| Error {
            target: target.shown(),
            kind,
        };
        if let Some(why) = &self.invalid {
            return Err(fail(ErrorKind::Invalid(why.clone())));
        }
        let mut entries: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone().into_bytes()))
            .collect();
        let sends_body = !self.body.is_empty()
            || matches!(self.method, Method::POST | Method::PUT | Method::PATCH);
        if sends_body && !entries.iter().any(|(name, _)| name == "content-length") {
            entries.push((
                "content-length".into(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&entries).map_err(|err| {
            fail(ErrorKind::Invalid(format!(
                "a header is not one HTTP allows ({err:?})"
            )))
        })?;
        let request = OutgoingRequest::new(fields);
        let invalid = |what: &str| fail(ErrorKind::Invalid(format!("its {what} is not valid")));
        request
            .set_method(&method(&self.method))
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&target.scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&target.authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(&target.path))
            .map_err(|()| invalid("path"))?;
        let options = self.timeout.map(|timeout| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            // The host bounds each wait by the service's timeout_ms anyway;
            // one it does not take is left to that bound.
            options.set_connect_timeout(Some(nanos)).ok();
            options.set_first_byte_timeout(Some(nanos)).ok();
            options.set_between_bytes_timeout(Some(nanos)).ok();
            options
        });
        let body = request
            .body()
            .map_err(|()| fail(ErrorKind::Invalid("its body was taken twice".into())))?;
        let pending = outgoing_handler::handle(request, options)
            .map_err(|code| fail(ErrorKind::Failed(code)))?;
        write_body(body, &self.body).map_err(&fail)?;

        let response = loop {
            match pending.get() {
                Some(Ok(response)) => break response,
                Some(Err(())) => {
                    return Err(fail(ErrorKind::Failed(ErrorCode::InternalError(Some(
                        "its answer was taken twice".into(),
                    )))));
                }
                None => pending.subscribe().block(),
            }
        }
        .map_err(|code| fail(ErrorKind::Failed(code)))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| fail(ErrorKind::Failed(ErrorCode::HttpResponseIncomplete)))?;
        let body = read_body(incoming).map_err(fail)?;
        Ok(Response {
            target: target.shown(),
            status,
            headers,
            body,
        })
    }
}

/// The largest write an output stream takes at once.
const WRITE_CHUNK: usize = 4096;

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), ErrorKind> {
    {
        let stream = body
            .write()
            .map_err(|()| ErrorKind::Invalid("its body was written twice".into()))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(stream_failure)?;
        }
    }
    OutgoingBody::finish(body, None).map_err(ErrorKind::Failed)
}

fn read_body(incoming: IncomingBody) -> Result<Vec<u8>, ErrorKind> {
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| ErrorKind::Failed(ErrorCode::HttpResponseIncomplete))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(err) => return Err(stream_failure(err)),
            }
        }
    }
    drop(IncomingBody::finish(incoming));
    Ok(body)
}

fn stream_failure(err: StreamError) -> ErrorKind {
    match err {
        StreamError::LastOperationFailed(io) => ErrorKind::Failed(
            wasip2::http::types::http_error_code(&io)
                .unwrap_or_else(|| ErrorCode::InternalError(Some(io.to_debug_string()))),
        ),
        StreamError::Closed => ErrorKind::Failed(ErrorCode::HttpResponseIncomplete),
    }
}

fn method(method: &Method) -> WasiMethod {
    match *method {
        Method::GET => WasiMethod::Get,
        Method::HEAD => WasiMethod::Head,
        Method::POST => WasiMethod::Post,
        Method::PUT => WasiMethod::Put,
        Method::DELETE => WasiMethod::Delete,
        Method::CONNECT => WasiMethod::Connect,
        Method::OPTIONS => WasiMethod::Options,
        Method::TRACE => WasiMethod::Trace,
        Method::PATCH => WasiMethod::Patch,
        ref other => WasiMethod::Other(other.as_str().to_owned()),
    }
}

/// Where a URL points, split as `wasi:http` takes it.
struct Target {
    scheme: Scheme,
    authority: String,
    path: String,
}

impl Target {
    fn of(url: &str) -> Result<Target, Error> {
        let invalid = || Error {
            target: url.to_owned(),
            kind: ErrorKind::Invalid("it is not an absolute http:// or https:// URL".to_owned()),
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid())?;
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            _ => return Err(invalid()),
        };
        let authority = uri.authority().ok_or_else(invalid)?.to_string();
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |path| path.to_string());
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        Ok(Target {
            scheme,
            authority,
            path,
        })
    }

    /// The origin, for sentences: no path, so no token in a query shows.
    fn shown(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            _ => "http",
        };
        format!("{scheme}://{}", self.authority)
    }
}

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    target: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every header, as the server sent them.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|_| Error {
            target: self.target.clone(),
            kind: ErrorKind::Answer("is not UTF-8 text".into()),
        })
    }

    /// The body read as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|err| Error {
            target: self.target.clone(),
            kind: ErrorKind::Answer(format!("is not the JSON expected ({err})")),
        })
    }

    /// The answer itself if its status is below 400, else an [`Error`]
    /// naming the status.
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.status < 400 {
            return Ok(self);
        }
        Err(Error {
            target: self.target.clone(),
            kind: ErrorKind::Status(self.status),
        })
    }
}

/// A request that gave no answer, or an answer the plugin could not use.
#[derive(Debug, Clone)]
pub struct Error {
    /// The origin (or the URL, when it could not be read).
    target: String,
    kind: ErrorKind,
}

/// What went wrong with a request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request could not be made as written.
    Invalid(String),
    /// The host or the network gave no answer; WASI's code says why.
    Failed(Failure),
    /// The server answered with this status ([`Response::error_for_status`]).
    Status(u16),
    /// The answer's body is not what was expected.
    Answer(String),
}

impl Error {
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether the host refused the request because its origin is not on
    /// the service's allow list.
    pub fn is_denied(&self) -> bool {
        matches!(self.kind, ErrorKind::Failed(ErrorCode::HttpRequestDenied))
    }

    /// The status the server answered, for [`ErrorKind::Status`].
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Status(status) => Some(status),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = &self.target;
        match &self.kind {
            ErrorKind::Invalid(why) => write!(f, "the request to {target} cannot be sent: {why}"),
            ErrorKind::Status(status) => write!(f, "{target} answered with status {status}"),
            ErrorKind::Answer(why) => write!(f, "the answer from {target} {why}"),
            ErrorKind::Failed(code) => match code {
                ErrorCode::HttpRequestDenied => write!(
                    f,
                    "the request to {target} was refused: the service may not call it; ask the operator to add it to [services.http] allow"
                ),
                ErrorCode::ConnectionLimitReached => write!(
                    f,
                    "the request to {target} was refused: this call already sent as many requests as [services.http] max_requests allows"
                ),
                ErrorCode::HttpResponseBodySize(_) => write!(
                    f,
                    "the answer from {target} is larger than [services.http] max_response_kb allows"
                ),
                ErrorCode::HttpResponseTimeout
                | ErrorCode::ConnectionTimeout
                | ErrorCode::ConnectionReadTimeout
                | ErrorCode::ConnectionWriteTimeout => write!(
                    f,
                    "{target} did not answer in time (the service's [services.http] timeout_ms)"
                ),
                ErrorCode::ConnectionRefused => {
                    write!(f, "{target} refused the connection; is it running?")
                }
                ErrorCode::DnsError(_) | ErrorCode::DnsTimeout => {
                    write!(f, "the name of {target} cannot be resolved")
                }
                ErrorCode::TlsProtocolError
                | ErrorCode::TlsCertificateError
                | ErrorCode::TlsAlertReceived(_) => write!(
                    f,
                    "the TLS connection to {target} failed ({code:?}); check its certificate"
                ),
                other => write!(f, "the request to {target} failed ({other:?})"),
            },
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::Error {
    fn from(error: Error) -> Self {
        crate::Error::failed(error.to_string())
    }
}

//! Outbound HTTP (`wasi:http/outgoing-handler`) for the plugins of services
//! with a `[services.http]` table: requests go to the origins on its allow
//! list only, each exchange is bounded by its timeout, each answer by its
//! size cap and each call by a number of requests. Whatever falls outside is
//! refused with the error code WASI gives for it (`HTTP-request-denied`,
//! `connection-limit-reached`, `HTTP-response-body-size`,
//! `HTTP-response-timeout`), which the plugin reads like any other failure.
//!
//! The operator may hold credentials for an allowed origin
//! (`[services.http.auth."ORIGIN"]`): the host sets them as the
//! `Authorization` header of every request to that origin, in place of any
//! the plugin set, and of no other. The plugin never sees them, and the host
//! blanks them out of its text. Redirects are not followed (an answer's 3xx
//! reaches the plugin as it is), so a request a plugin sends on to the
//! `Location` is a new one, admitted and credited by its own origin.

mod auth;
mod origin;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use wasmtime::component::Linker;
use wasmtime::error::Context as _;
use wasmtime_wasi_http::p2::bindings::{LinkOptions, http as wasi_http};
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttp, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
};

use super::capability::{CallInfo, Capability, Holds, Reading, Start};
use crate::setting::{Secret, at_least_one, in_bytes};
pub use auth::{HttpAuthFile, HttpCredential};
pub use origin::AllowedOrigin;

/// The `[services.http]` table: the origins a plugin may call, how long a
/// request may take, how big an answer may be, and how many requests one
/// call may send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub allow: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub max_response_kb: Option<u64>,
    pub max_requests: Option<u32>,
    /// Credentials the host adds to requests to an allowed origin, by origin.
    pub auth: Option<std::collections::BTreeMap<String, HttpAuthFile>>,
}

/// The largest answer an outbound HTTP request may bring back, unless the table says.
pub const DEFAULT_HTTP_MAX_RESPONSE_KB: u64 = 1024;
/// Outbound HTTP requests one plugin call may send, unless the table says.
pub const DEFAULT_HTTP_MAX_REQUESTS: u32 = 32;

/// Where a service's plugin may send HTTP requests, and within what bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpGrant {
    /// Requests go to these origins only.
    pub allow: Vec<AllowedOrigin>,
    /// How long one request may take, from connecting to the answer's last byte.
    pub timeout: Duration,
    /// The largest answer body, in bytes.
    pub max_response_bytes: u64,
    /// Requests one call may send.
    pub max_requests: u32,
    /// What the host sends as `Authorization` to some of those origins.
    pub auth: Vec<HttpCredential>,
}

/// `wasi:http/types` and `outgoing-handler`, granted by a `[services.http]` table.
pub struct Http;

/// One call's `wasi:http`: its context, and the hooks that admit its requests.
pub struct HttpCall {
    ctx: WasiHttpCtx,
    outbound: OutboundHttp,
}

impl Capability for Http {
    const PREFIX: &'static str = "wasi:http/";
    const KEY: &'static str = "a [services.http] table with the origins it may call";

    type File = Option<HttpFile>;
    type Grant = Option<HttpGrant>;
    type Host = ();
    type Granted = Option<Arc<HttpGrant>>;
    type Call = HttpCall;

    fn check(file: Option<HttpFile>, reading: &Reading<'_>) -> Result<Option<HttpGrant>, String> {
        file.map(|table| http_grant(table, reading))
            .transpose()
            .map_err(|why| format!("[services.http]: {why}"))
    }

    fn is_granted(grant: &Option<HttpGrant>) -> bool {
        grant.is_some()
    }

    fn secrets(grant: &Option<HttpGrant>) -> Vec<&Secret> {
        grant
            .iter()
            .flat_map(|grant| &grant.auth)
            .flat_map(HttpCredential::secrets)
            .collect()
    }

    fn start(_start: &Start<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn granted(
        grant: &Option<HttpGrant>,
        _host: &(),
        _service: &Arc<str>,
    ) -> Option<Arc<HttpGrant>> {
        grant.clone().map(Arc::new)
    }

    fn call(granted: &Option<Arc<HttpGrant>>, call: &CallInfo) -> HttpCall {
        HttpCall {
            ctx: WasiHttpCtx::new(),
            outbound: OutboundHttp::new(
                granted.clone(),
                call.service.clone(),
                call.tags.request_id.clone(),
            ),
        }
    }

    /// Links `wasi:http/types` and `wasi:http/outgoing-handler`, as
    /// `add_only_http_to_linker_async` does, through this call's state.
    fn add_to_linker<T: Holds<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        fn view<T: Holds<Http>>(store: &mut T) -> WasiHttpCtxView<'_> {
            let (call, table) = store.call_state();
            WasiHttpCtxView {
                ctx: &mut call.ctx,
                table,
                hooks: &mut call.outbound,
            }
        }
        let options = LinkOptions::default();
        wasi_http::outgoing_handler::add_to_linker::<T, WasiHttp>(linker, view::<T>)
            .and_then(|()| {
                wasi_http::types::add_to_linker::<T, WasiHttp>(linker, &options.into(), view::<T>)
            })
            .context("cannot link wasi:http for plugins")
    }
}

/// The `[services.http]` table, checked; the service's timeout bounds a
/// request unless the table says otherwise.
fn http_grant(table: HttpFile, reading: &Reading<'_>) -> Result<HttpGrant, String> {
    if table.allow.is_empty() {
        return Err(
            "allow is empty; list the origins the plugin may call (allow = [\"https://api.example.com\"]), or remove the table".into(),
        );
    }
    let allow = table
        .allow
        .iter()
        .map(|entry| AllowedOrigin::parse(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = match table.timeout_ms {
        Some(0) => return Err("timeout_ms is 0; give at least 1".into()),
        Some(millis) => Duration::from_millis(millis),
        None => reading.service_timeout,
    };
    let max_response_kb = table
        .max_response_kb
        .unwrap_or(DEFAULT_HTTP_MAX_RESPONSE_KB);
    at_least_one("max_response_kb", max_response_kb)?;
    let max_requests = table.max_requests.unwrap_or(DEFAULT_HTTP_MAX_REQUESTS);
    at_least_one("max_requests", u64::from(max_requests))?;
    let auth = auth::credentials(table.auth.unwrap_or_default(), &allow, reading)?;
    Ok(HttpGrant {
        allow,
        timeout,
        max_response_bytes: in_bytes("max_response_kb", max_response_kb, 1024)?,
        max_requests,
        auth,
    })
}

/// One call's outbound HTTP: its service's grant and what it has sent so far.
pub struct OutboundHttp {
    grant: Option<Arc<HttpGrant>>,
    service: Arc<str>,
    request_id: Option<String>,
    sent: u32,
}

impl OutboundHttp {
    pub fn new(
        grant: Option<Arc<HttpGrant>>,
        service: Arc<str>,
        request_id: Option<String>,
    ) -> Self {
        Self {
            grant,
            service,
            request_id,
            sent: 0,
        }
    }

    /// The grant a request falls under, or why it is refused; a request to
    /// an origin the operator holds credentials for gets them, in place of
    /// whatever `Authorization` the plugin set.
    fn admit(&mut self, request: &mut http::Request<WasiBody>) -> Result<Arc<HttpGrant>, Error> {
        let Some(grant) = &self.grant else {
            // A plugin importing wasi:http without the grant is refused at load.
            return Err(Error::HttpRequestDenied);
        };
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let origin = AllowedOrigin::new(https, uri.host().unwrap_or_default(), uri.port_u16());
        if !grant.allow.contains(&origin) {
            tracing::warn!(
                service = %self.service,
                request_id = self.request_id.as_deref(),
                %origin,
                "a plugin's request was refused: its origin is not in the service's [services.http] allow list"
            );
            return Err(Error::HttpRequestDenied);
        }
        if self.sent >= grant.max_requests {
            tracing::warn!(
                service = %self.service,
                request_id = self.request_id.as_deref(),
                max_requests = grant.max_requests,
                "a plugin's request was refused: the call already sent the [services.http] max_requests"
            );
            return Err(Error::ConnectionLimitReached);
        }
        self.sent += 1;
        if let Some(credential) = grant.auth.iter().find(|held| held.origin == origin) {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, credential.header_value()?);
        }
        Ok(grant.clone())
    }
}

type Sent = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Sent,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Sent), Error>> + Send> {
        let admitted = self.admit(&mut request);
        Box::new(async move {
            let grant = admitted?;
            // The whole exchange, from connecting to the answer's last byte.
            tokio::time::timeout(grant.timeout, exchange(request, options, &grant))
                .await
                .map_err(|_| Error::HttpResponseTimeout)?
        })
    }
}

/// Sends `request` and reads its answer whole, so that an answer past the
/// cap fails with its own error code (one failing as the plugin reads it
/// would reach the plugin without a code).
async fn exchange(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    grant: &HttpGrant,
) -> Result<(http::Response<WasiBody>, Sent), Error> {
    let options = bounded(options, grant.timeout);
    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
    let cap = grant.max_response_bytes;
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = length.filter(|&length| length > cap) {
        return Err(Error::HttpResponseBodySize(Some(length)));
    }
    // The connection is driven while the body is read; dropping the
    // exchange (the call ended) stops it.
    let io = wasmtime_wasi::runtime::spawn(io);
    let (parts, body) = response.into_parts();
    let limit = usize::try_from(cap).unwrap_or(usize::MAX);
    let body = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|err| {
            if err.is::<LengthLimitError>() {
                Error::HttpResponseBodySize(None)
            } else {
                err.downcast::<Error>()
                    .map(|err| *err)
                    .unwrap_or_else(|err| Error::InternalError(Some(err.to_string())))
            }
        })?
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok((
        http::Response::from_parts(parts, body),
        Box::new(io) as Sent,
    ))
}

/// The plugin's request options, none longer than the service allows.
fn bounded(options: Option<RequestOptions>, limit: Duration) -> RequestOptions {
    let options = options.unwrap_or_default();
    let bound = |asked: Option<Duration>| Some(asked.map_or(limit, |asked| asked.min(limit)));
    RequestOptions {
        connect_timeout: bound(options.connect_timeout),
        first_byte_timeout: bound(options.first_byte_timeout),
        between_bytes_timeout: bound(options.between_bytes_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::config::Config, String> {
        crate::config::Config::parse(
            text,
            std::path::Path::new("/etc/orizuru"),
            &crate::config::Overrides::default(),
            |_| None,
        )
        .map_err(|err| err.to_string())
    }

    #[test]
    fn http_grants_read_their_origins_and_bounds() {
        let base = "[[services]]\nid = \"api\"\nplugin = \"api.wasm\"\npassword = \"p\"\ntimeout_ms = 900\n";
        let config = parse(&format!(
            "{base}[services.http]\nallow = [\"https://API.example.com\", \"http://127.0.0.1:8080/\", \"http://[::1]:9000\"]\n"
        ))
        .expect("an http grant");
        let http = config.services[0].grants.http.as_ref().expect("granted");
        let shown: Vec<String> = http.allow.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "https://api.example.com:443",
                "http://127.0.0.1:8080",
                "http://[::1]:9000"
            ]
        );
        assert_eq!(http.timeout, Duration::from_millis(900));
        assert_eq!(http.max_response_bytes, DEFAULT_HTTP_MAX_RESPONSE_KB * 1024);
        assert_eq!(http.max_requests, DEFAULT_HTTP_MAX_REQUESTS);
        assert!(
            parse(base).expect("no table").services[0]
                .grants
                .http
                .is_none()
        );

        let bounded = parse(&format!(
            "{base}[services.http]\nallow = [\"http://a\"]\ntimeout_ms = 50\nmax_response_kb = 2\nmax_requests = 1\n"
        ))
        .expect("bounds");
        let http = bounded.services[0].grants.http.as_ref().expect("granted");
        assert_eq!(http.allow[0].to_string(), "http://a:80");
        assert_eq!(
            (http.timeout, http.max_response_bytes, http.max_requests),
            (Duration::from_millis(50), 2048, 1)
        );

        for (table, says) in [
            (
                "allow = []",
                "[services.http]: allow is empty; list the origins",
            ),
            ("", "missing field `allow`"),
            (
                "allow = [\"api.example.com\"]",
                "the allowed origin \"api.example.com\" is not http or https; write it as scheme://host or scheme://host:port",
            ),
            (
                "allow = [\"ftp://files.example.com\"]",
                "the allowed origin \"ftp://files.example.com\" is not http or https",
            ),
            (
                "allow = [\"https://api.example.com/v1\"]",
                "the allowed origin \"https://api.example.com/v1\" has a path; origins allow every path of a host",
            ),
            (
                "allow = [\"https://user:pw@api.example.com\"]",
                "carries a user name or password; put credentials in [services.secrets]",
            ),
            (
                "allow = [\"https://*.example.com\"]",
                "names no single host (wildcards are not read)",
            ),
            (
                "allow = [\"not a url\"]",
                "the allowed origin \"not a url\" is not a URL",
            ),
            (
                "allow = [\"http://a\"]\ntimeout_ms = 0",
                "[services.http]: timeout_ms is 0; give at least 1",
            ),
            (
                "allow = [\"http://a\"]\nmax_response_kb = 0",
                "[services.http]: max_response_kb is 0; give at least 1",
            ),
            (
                "allow = [\"http://a\"]\nmax_requests = 0",
                "[services.http]: max_requests is 0; give at least 1",
            ),
            ("allow = [\"http://a\"]\nproxy = \"x\"", "proxy"),
        ] {
            let err = parse(&format!("{base}[services.http]\n{table}\n")).expect_err(table);
            assert!(err.contains(says), "{table}: {err}");
        }
    }
}

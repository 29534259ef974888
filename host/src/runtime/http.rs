//! Outbound HTTP (`wasi:http/outgoing-handler`) for the plugins of services
//! with a `[services.http]` table: requests go to the origins on its allow
//! list only, each exchange is bounded by its timeout, each answer by its
//! size cap and each call by a number of requests. Whatever falls outside is
//! refused with the error code WASI gives for it (`HTTP-request-denied`,
//! `connection-limit-reached`, `HTTP-response-body-size`,
//! `HTTP-response-timeout`), which the plugin reads like any other failure.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::sandbox::Sandbox;
use crate::config::{HttpGrant, Origin};

/// Links `wasi:http/types` and `wasi:http/outgoing-handler`; a plugin
/// importing them is refused at load unless its service has `[services.http]`.
pub fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
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

    /// The grant a request falls under, or why it is refused.
    fn admit(&mut self, request: &http::Request<WasiBody>) -> Result<Arc<HttpGrant>, Error> {
        let Some(grant) = &self.grant else {
            // A plugin importing wasi:http without the grant is refused at load.
            return Err(Error::HttpRequestDenied);
        };
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let origin = Origin::new(https, uri.host().unwrap_or_default(), uri.port_u16());
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
        Ok(grant.clone())
    }
}

type Sent = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Sent,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Sent), Error>> + Send> {
        let admitted = self.admit(&request);
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

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

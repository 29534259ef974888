//! The fake API of tsuru's guide as a plain `wasi:http` component, for the
//! `wasmtime serve` column of the throughput bench (`tests/benches/throughput.rs`):
//! the routes and bodies Orizuru answers for the fake plugin, with the same
//! basic auth check, so the bench can compare a fresh instance per request
//! under `wasmtime serve` with a fresh sandbox per call under Orizuru.
//!
//! A fresh instance keeps nothing between requests, so the instances it
//! knows are fixed: [`KNOWN_INSTANCES`] (the bench creates the same names on
//! the other servers). A create is answered 201 and a bind 201 with the
//! fake's env, as the fake plugin does, but neither is kept anywhere.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The service's username and password, as the bench configures `fake`.
const USERNAME: &str = "fake";
const PASSWORD: &str = "secret-fake";

/// The instances a status or bind finds.
const KNOWN_INSTANCES: &[&str] = &["bench"];

/// What the fake plugin answers to plans: no plans.
const PLANS: &[u8] = b"[]";

/// What the fake plugin answers to a bind.
const BIND_ENV: &[u8] = b"{\"SOMEVAR\":\"somevalue\"}";

struct BenchHttp;

impl Guest for BenchHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, content_type, body) = answer(request);
        let headers = Fields::new();
        if let Some(content_type) = content_type {
            // A name and value that are valid by construction.
            headers.append("content-type", content_type.as_bytes()).ok();
        }
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).ok();
        let Ok(outgoing) = response.body() else {
            return;
        };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(stream) = outgoing.write() {
            for chunk in body.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
        }
        OutgoingBody::finish(outgoing, None).ok();
    }
}

/// The status, content type and body for a request.
fn answer(request: IncomingRequest) -> (u16, Option<&'static str>, Vec<u8>) {
    if !authorized(&request) {
        return (
            401,
            Some("text/plain; charset=utf-8"),
            b"wrong username or password".to_vec(),
        );
    }
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method();
    match (&method, segments.as_slice()) {
        (Method::Get, ["resources", "plans"]) => (200, Some("application/json"), PLANS.to_vec()),
        (Method::Post, ["resources"]) => (201, None, Vec::new()),
        (Method::Get, ["resources", name, "status"]) if known(name) => (204, None, Vec::new()),
        (Method::Post, ["resources", name, "bind-app"]) if known(name) => {
            match app_name(&read_body(request)) {
                Some(_) => (201, Some("application/json"), BIND_ENV.to_vec()),
                None => (
                    400,
                    Some("text/plain; charset=utf-8"),
                    b"a bind needs an app-name".to_vec(),
                ),
            }
        }
        (_, ["resources", name, ..]) if !known(name) => (
            404,
            Some("text/plain; charset=utf-8"),
            format!("instance \"{name}\" does not exist in service \"{USERNAME}\"").into_bytes(),
        ),
        _ => (
            404,
            Some("text/plain; charset=utf-8"),
            b"no such route".to_vec(),
        ),
    }
}

fn known(name: &str) -> bool {
    KNOWN_INSTANCES.contains(&name)
}

/// Whether the request carries the service's basic auth, decoded and compared.
fn authorized(request: &IncomingRequest) -> bool {
    let values = request.headers().get("authorization");
    let Some(value) = values.first() else {
        return false;
    };
    let Some(encoded) = value.strip_prefix(b"Basic ") else {
        return false;
    };
    let Some(decoded) = base64_decode(encoded) else {
        return false;
    };
    let expected = format!("{USERNAME}:{PASSWORD}");
    decoded == expected.as_bytes()
}

/// Standard base64 with padding, as basic auth sends it.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn value(byte: u8) -> Option<u32> {
        match byte {
            b'A'..=b'Z' => Some(u32::from(byte - b'A')),
            b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quad in text.chunks(4) {
        let padding = quad.iter().rev().take_while(|byte| **byte == b'=').count();
        let mut bits = 0u32;
        for byte in &quad[..4 - padding] {
            bits = (bits << 6) | value(*byte)?;
        }
        bits <<= 6 * padding as u32;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}

/// The whole request body.
fn read_body(request: IncomingRequest) -> Vec<u8> {
    let mut body = Vec::new();
    let Ok(incoming) = request.consume() else {
        return body;
    };
    if let Ok(stream) = incoming.stream() {
        // Closed at the body's end; a failed read ends it too.
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            body.extend_from_slice(&chunk);
        }
    }
    body
}

/// The `app-name` field of a form body.
fn app_name(body: &[u8]) -> Option<&[u8]> {
    body.split(|byte| *byte == b'&').find_map(|field| {
        field
            .strip_prefix(b"app-name=")
            .filter(|value| !value.is_empty())
    })
}

wasip2::http::proxy::export!(BenchHttp);

//! Runs Redis commands for the tests: a proxied `POST /resources/<instance>/command`
//! with `{"connection": .., "args": [..]}` runs the command through the
//! SDK's `redis` module and answers, as JSON, its reply (strings as text,
//! arrays nested) or the error's kind, code and sentence.

use orizuru_sdk::redis::{Connection, ErrorKind, Value};
use orizuru_sdk::{Error, Instance, ProxyRequest, ProxyResponse, Result, Service};
use serde_json::json;

struct Probe;

fn to_json(value: Value<'_>) -> serde_json::Value {
    if value.is_nil() {
        return serde_json::Value::Null;
    }
    if let Ok(n) = value.integer()
        && value.text().is_err()
    {
        return json!(n);
    }
    if let Some(error) = value.error() {
        return json!({ "error": error });
    }
    if let Ok(elements) = value.array() {
        return elements.into_iter().map(to_json).collect();
    }
    match value.bytes() {
        Ok(Some(bytes)) => json!(String::from_utf8_lossy(bytes)),
        _ => serde_json::Value::Null,
    }
}

impl Service for Probe {
    fn proxy(_instance: Option<Instance>, request: ProxyRequest) -> Result<ProxyResponse> {
        let body: serde_json::Value = serde_json::from_slice(&request.body)
            .map_err(|err| Error::invalid(format!("the body is not JSON: {err}")))?;
        let connection = Connection::named(body["connection"].as_str().unwrap_or("admin"));
        let args: Vec<String> = body["args"]
            .as_array()
            .map(|args| {
                args.iter()
                    .map(|arg| arg.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let answer = match connection.command(&args[..]) {
            Ok(reply) => json!({ "reply": to_json(reply.value()) }),
            Err(error) => {
                let kind = match error.kind() {
                    ErrorKind::NoSuchConnection(_) => "no-such-connection",
                    ErrorKind::ConnectionFailed(_) => "connection-failed",
                    ErrorKind::Server(_) => "server",
                    ErrorKind::Timeout(_) => "timeout",
                    ErrorKind::TooLarge(_) => "too-large",
                    ErrorKind::Refused(_) => "refused",
                };
                json!({ "error": kind, "code": error.code(), "sentence": error.to_string() })
            }
        };
        Ok(ProxyResponse::new(200, answer.to_string()).header("Content-Type", "application/json"))
    }
}

orizuru_sdk::export!(Probe);

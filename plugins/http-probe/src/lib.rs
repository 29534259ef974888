//! Sends HTTP requests for the tests: a proxied `POST /resources/<instance>/send`
//! with `{"method": .., "url": .., "headers": {..}, "body": "..",
//! "timeout_ms": .., "times": n}` sends the request `times` times (once by
//! default) through the SDK's `http` module and answers, as JSON, the last
//! answer's status, headers and body, or the error's sentence.

use std::time::Duration;

use orizuru_sdk::http::{ErrorKind, Method, Request};
use orizuru_sdk::{Error, Instance, ProxyRequest, ProxyResponse, Result, Service};
use serde_json::{Value, json};

struct Probe;

impl Service for Probe {
    fn proxy(_instance: Option<Instance>, request: ProxyRequest) -> Result<ProxyResponse> {
        let order: Value = serde_json::from_slice(&request.body)
            .map_err(|err| Error::invalid(format!("the body is not JSON: {err}")))?;
        let method = order["method"].as_str().unwrap_or("GET");
        let method: Method = method
            .parse()
            .map_err(|_| Error::invalid(format!("{method:?} is not an HTTP method")))?;
        let times = order["times"].as_u64().unwrap_or(1);
        let mut answer = json!(null);
        for _ in 0..times {
            let mut outgoing =
                Request::new(method.clone(), order["url"].as_str().unwrap_or_default());
            for (name, value) in order["headers"].as_object().into_iter().flatten() {
                outgoing = outgoing.header(name, value.as_str().unwrap_or_default());
            }
            if let Some(body) = order["body"].as_str() {
                outgoing = outgoing.body(body);
            }
            if let Some(millis) = order["timeout_ms"].as_u64() {
                outgoing = outgoing.timeout(Duration::from_millis(millis));
            }
            answer = match outgoing.send() {
                Ok(response) => json!({
                    "status": response.status(),
                    "content_type": response.header("content-type"),
                    "body": String::from_utf8_lossy(response.body()),
                }),
                Err(error) => {
                    let kind = match error.kind() {
                        ErrorKind::Invalid(_) => "invalid".to_owned(),
                        ErrorKind::Failed(code) => format!("{code:?}"),
                        ErrorKind::Status(_) => "status".to_owned(),
                        ErrorKind::Answer(_) => "answer".to_owned(),
                        _ => "other".to_owned(),
                    };
                    let answer = json!({
                        "error": kind,
                        "denied": error.is_denied(),
                        "sentence": error.to_string(),
                    });
                    return Ok(ProxyResponse::new(200, answer.to_string())
                        .header("Content-Type", "application/json"));
                }
            };
        }
        Ok(ProxyResponse::new(200, answer.to_string()).header("Content-Type", "application/json"))
    }
}

orizuru_sdk::export!(Probe);

//! Runs SQL for the tests: a proxied `POST /resources/<instance>/query` (or
//! `/execute`) with `{"connection": .., "statement": .., "params": [..]}`
//! runs the statement through the SDK's `sql` module and answers, as JSON,
//! the rows or count, or the error's kind, code and sentence.

use orizuru_sdk::sql::{Connection, ErrorKind, ToParam};
use orizuru_sdk::{Error, Instance, ProxyRequest, ProxyResponse, Result, Service};
use serde_json::{Value, json};

struct Probe;

impl Service for Probe {
    fn proxy(_instance: Option<Instance>, request: ProxyRequest) -> Result<ProxyResponse> {
        let body: Value = serde_json::from_slice(&request.body)
            .map_err(|err| Error::invalid(format!("the body is not JSON: {err}")))?;
        let connection = Connection::named(body["connection"].as_str().unwrap_or("admin"));
        let statement = body["statement"].as_str().unwrap_or_default();
        let params: Vec<Option<String>> = body["params"]
            .as_array()
            .map(|params| {
                params
                    .iter()
                    .map(|param| param.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let params: Vec<&dyn ToParam> = params.iter().map(|param| param as &dyn ToParam).collect();
        let answer = if request.path.ends_with("/execute") {
            connection
                .execute(statement, &params)
                .map(|count| json!({ "count": count }))
        } else {
            connection.query(statement, &params).map(|rows| {
                let values: Vec<Value> = rows
                    .iter()
                    .map(|row| {
                        rows.columns()
                            .iter()
                            .map(|column| json!(row.get(column).ok().flatten()))
                            .collect()
                    })
                    .collect();
                json!({ "columns": rows.columns(), "rows": values })
            })
        };
        let answer = answer.unwrap_or_else(|error| {
            let kind = match error.kind() {
                ErrorKind::NoSuchConnection(_) => "no-such-connection",
                ErrorKind::ConnectionFailed(_) => "connection-failed",
                ErrorKind::QueryFailed(_) => "query-failed",
                ErrorKind::UnsupportedType(_) => "unsupported-type",
                ErrorKind::Timeout(_) => "timeout",
            };
            json!({ "error": kind, "code": error.code(), "sentence": error.to_string() })
        });
        Ok(ProxyResponse::new(200, answer.to_string()).header("Content-Type", "application/json"))
    }
}

orizuru_sdk::export!(Probe);

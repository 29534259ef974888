//! The native baseline of the throughput bench (`tests/benches/throughput.rs`):
//! an axum server doing natively what Orizuru does for the fake plugin, with
//! no sandbox and no ledger. It answers the routes the bench loads with the
//! bodies Orizuru answers for the fake plugin:
//!
//! - `GET /resources/plans`: 200 `[]` (the fake has no plans);
//! - `POST /resources` (form `name`): 201, the instance kept in memory;
//! - `GET /resources/{name}/status`: 204 for a known instance, else 404;
//! - `POST /resources/{name}/bind-app` (form `app-name`): 201 with
//!   `{"SOMEVAR":"somevalue"}`, the binding kept in memory; 404 for an
//!   unknown instance;
//!
//! each behind the same basic auth check (the header decoded, then user and
//! password compared), 401 otherwise.
//!
//! `bench-native ADDRESS USERNAME PASSWORD`; prints
//! `bench-native listening on http://ADDRESS` once it listens.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Instances by name, each with the apps bound to it.
#[derive(Default)]
struct Ledger {
    instances: Mutex<HashMap<String, HashSet<String>>>,
}

struct Credentials {
    username: String,
    password: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, username, password] = args.as_slice() else {
        eprintln!("bench-native: give ADDRESS USERNAME PASSWORD");
        return ExitCode::from(2);
    };
    let Ok(address) = address.parse::<SocketAddr>() else {
        eprintln!("bench-native: {address} is not an address (IP:PORT)");
        return ExitCode::from(2);
    };
    let credentials = Arc::new(Credentials {
        username: username.clone(),
        password: password.clone(),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bench-native: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(address, credentials)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-native: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(address: SocketAddr, credentials: Arc<Credentials>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    println!(
        "bench-native listening on http://{}",
        listener.local_addr()?
    );
    let app = Router::new()
        .route("/resources/plans", get(plans))
        .route("/resources", post(create))
        .route("/resources/{name}/status", get(status))
        .route("/resources/{name}/bind-app", post(bind_app))
        .with_state(Arc::new(Ledger::default()))
        .layer(middleware::from_fn_with_state(credentials, authenticate));
    axum::serve(listener, app).await?;
    Ok(())
}

/// 401 unless the request carries the service's basic auth.
async fn authenticate(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    let decoded = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let allowed = decoded.as_deref().and_then(|pair| pair.split_once(':'))
        == Some((&credentials.username, &credentials.password));
    if allowed {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "wrong username or password").into_response()
    }
}

async fn plans() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], "[]").into_response()
}

async fn create(
    State(ledger): State<Arc<Ledger>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(name) = form.get("name").filter(|name| !name.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "a create needs a name").into_response();
    };
    let mut instances = ledger
        .instances
        .lock()
        .unwrap_or_else(|err| err.into_inner());
    if instances.contains_key(name) {
        return (
            StatusCode::CONFLICT,
            format!("instance \"{name}\" already exists"),
        )
            .into_response();
    }
    instances.insert(name.clone(), HashSet::new());
    StatusCode::CREATED.into_response()
}

async fn status(State(ledger): State<Arc<Ledger>>, Path(name): Path<String>) -> Response {
    let instances = ledger
        .instances
        .lock()
        .unwrap_or_else(|err| err.into_inner());
    if instances.contains_key(&name) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        unknown(&name)
    }
}

async fn bind_app(
    State(ledger): State<Arc<Ledger>>,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(app) = form.get("app-name").filter(|app| !app.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "a bind needs an app-name").into_response();
    };
    let mut instances = ledger
        .instances
        .lock()
        .unwrap_or_else(|err| err.into_inner());
    let Some(apps) = instances.get_mut(&name) else {
        return unknown(&name);
    };
    apps.insert(app.clone());
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"SOMEVAR":"somevalue"}"#,
    )
        .into_response()
}

fn unknown(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("instance \"{name}\" does not exist"),
    )
        .into_response()
}

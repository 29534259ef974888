//! `orizuru call PLUGIN.wasm ACTION`: one action of a plugin, without a
//! server, answered as tsuru would see it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use http_body_util::BodyExt;
use orizuru::Host;
use orizuru::api::routes::{Route, current_routes};
use orizuru::config::{Config, Overrides};
use orizuru::ledger::{Binding, BindingKind, Change, InstanceRecord};
use orizuru::model::{Action, Instance, InstanceState};
use serde_json::{Map, Value};
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;

#[derive(clap::Args)]
pub struct Args {
    /// The plugin to run (a wasm component built with an Orizuru SDK).
    #[arg(value_name = "PLUGIN.wasm")]
    plugin: PathBuf,
    /// The action, as tsuru names it.
    #[arg(value_parser = action_parser())]
    action: Action,
    /// The instance the action is about (every action but plans).
    #[arg(long, short, value_name = "NAME")]
    instance: Option<String>,
    /// The plan of the instance (create, update).
    #[arg(long, value_name = "PLAN")]
    plan: Option<String>,
    /// The team that owns the instance (create, update).
    #[arg(long, value_name = "TEAM")]
    team: Option<String>,
    /// A tag of the instance (create, update); repeat for more.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// A parameter, as tsuru's `-p key=value` sends it (as text); repeat for more. For
    /// create and update, the instance's; for bind-app, the binding's
    /// (`tsuru service instance bind -p`); for other actions, those of the instance the
    /// throw-away ledger records.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// The app to bind or unbind (bind-app, unbind-app).
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// A host of the app (bind-app, unbind-app); repeat for more.
    #[arg(long = "app-host", value_name = "HOST")]
    app_hosts: Vec<String>,
    /// The job to bind or unbind (bind-job, unbind-job).
    #[arg(long, value_name = "NAME")]
    job: Option<String>,
    /// Keep the ledger here, so that calls add up (create, then bind, ...);
    /// without it each call gets a throw-away ledger. Give it a directory
    /// of its own, never a serving host's data_dir (a call records its
    /// plugin there as the service's version).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Take the service's settings (limits, grants: config, secrets, SQL,
    /// HTTP origins) from this config file, running PLUGIN.wasm in its place.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The service of --config to run as (needed when it has several); the
    /// service id otherwise (default: from the file name).
    #[arg(long, value_name = "ID")]
    service: Option<String>,
}

/// The actions with a route of their own (all but a proxied call), as the
/// route table names them.
fn action_parser() -> impl TypedValueParser<Value = Action> {
    let actions = || current_routes().map(|route| route.action);
    PossibleValuesParser::new(actions().map(Action::as_str)).try_map(move |name| {
        actions()
            .find(|action| action.as_str() == name)
            .ok_or_else(|| format!("{name} is not an action with a route of its own"))
    })
}

pub fn run(args: Args) -> ExitCode {
    init_tracing();
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(sentence) => return super::fail(sentence),
    };
    let result = runtime.block_on(call(args));
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(status) if status.is_success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(sentence) => super::fail(sentence),
    }
}

/// The plugin's own log lines, and the host's warnings, on stderr.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,orizuru::plugin=trace"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

async fn call(args: Args) -> Result<StatusCode, String> {
    let request = tsuru_request(&args)?;
    let plugin = std::path::absolute(&args.plugin)
        .map_err(|err| format!("cannot resolve {}: {err}", args.plugin.display()))?;
    if !plugin.is_file() {
        return Err(format!(
            "{} is not a file; pass the path of a built plugin (.wasm)",
            args.plugin.display()
        ));
    }
    // Kept until the call ends, then deleted.
    let (data_dir, _throwaway) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("orizuru-call-")
                .tempdir()
                .map_err(|err| format!("cannot make a throw-away ledger directory: {err}"))?;
            (dir.path().to_owned(), Some(dir))
        }
    };
    let config = config(&args, &plugin, &data_dir)?;
    let service = config.services[0].clone();
    let host = Host::start(&config)
        .await
        .map_err(|err| format!("{err:#}"))?;
    if let Some(deployer) = &host.deployer
        && !deployer.unserved().is_empty()
    {
        let reason = deployer
            .describe_one(&service.id)
            .await
            .ok()
            .and_then(|described| described.last_failure)
            .map(|failure| failure.reason)
            .unwrap_or_else(|| "the lines above say why".to_owned());
        return Err(format!("the plugin cannot be served: {reason}"));
    }
    if args.data_dir.is_none() {
        seed(&host, &service.id, &args).await?;
    }
    let request = request
        .header(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                STANDARD.encode(format!(
                    "{}:{}",
                    service.username,
                    service.password.expose()
                ))
            ),
        )
        .body(Body::from(request_body(&args)))
        .map_err(|err| format!("cannot make the request: {err}"))?;
    let response = orizuru::app(host.clone())
        .oneshot(request)
        .await
        .map_err(|err| format!("the request failed: {err}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("cannot read the answer: {err}"))?
        .to_bytes();
    println!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(json) => println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            ),
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                println!("{}", text.trim_end());
            }
        }
    }
    Ok(status)
}

/// One service: the config file's (with this plugin), or a bare one.
fn config(args: &Args, plugin: &Path, data_dir: &Path) -> Result<Config, String> {
    let overrides = Overrides {
        listen: None,
        data_dir: Some(data_dir.to_owned()),
    };
    let mut config = match &args.config {
        Some(path) => {
            let loaded = super::load_config(path, &overrides)?;
            let mut service = super::pick_service(&loaded, args.service.as_deref(), path)?.clone();
            service.plugin = Some(plugin.to_owned());
            // A call runs on a scratch store of its own, never on a shared one.
            Config {
                services: vec![service],
                admin: None,
                store: None,
                ..loaded
            }
        }
        None => {
            let id = match &args.service {
                Some(id) => id.clone(),
                None => id_from(plugin),
            };
            let text = format!(
                "[[services]]\nid = {}\nplugin = {}\npassword = \"orizuru-call\"\n",
                toml::Value::String(id),
                toml::Value::String(plugin.display().to_string()),
            );
            Config::parse(&text, Path::new("."), &overrides, |_| None)
                .map_err(|err| format!("{err}"))?
        }
    };
    config.watch = false;
    config.cache_dir = compiled_cache();
    Ok(config)
}

/// A service id from a file name: `my_cache.wasm` → `my-cache`.
fn id_from(plugin: &Path) -> String {
    let stem = plugin
        .file_stem()
        .map(|stem| stem.to_string_lossy().to_lowercase().replace('_', "-"))
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(40)
        .collect();
    if id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id
    } else {
        "plugin".to_owned()
    }
}

/// Where `call` keeps compiled plugins between runs, so a large plugin
/// (Python, JavaScript) is compiled once per version, not once per call.
fn compiled_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("orizuru")
        .join("compiled")
}

/// The method, path and content type of the action, as tsuru sends it.
fn tsuru_request(args: &Args) -> Result<axum::http::request::Builder, String> {
    let instance = || {
        args.instance.as_deref().ok_or_else(|| {
            format!(
                "{} needs --instance NAME, the instance it is about",
                args.action.as_str()
            )
        })
    };
    let job = || {
        args.job.as_deref().ok_or_else(|| {
            format!(
                "{} needs --job NAME, the job to bind or unbind",
                args.action.as_str()
            )
        })
    };
    if matches!(args.action, Action::BindApp | Action::UnbindApp) && args.app.is_none() {
        return Err(format!(
            "{} needs --app NAME, the app to bind or unbind",
            args.action.as_str()
        ));
    }
    for param in &args.params {
        if !param.contains('=') {
            return Err(format!(
                "--param {param:?} has no '='; write it as key=value"
            ));
        }
    }
    let segment = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    // A create names its instance in the body, not in the path.
    if args.action == Action::Create {
        instance()?;
    }
    let route = Route::current(args.action)
        .ok_or_else(|| format!("{} has no route of its own", args.action.as_str()))?;
    let method = route
        .method
        .clone()
        .ok_or_else(|| format!("{} has no method of its own", args.action.as_str()))?;
    let path = route.path_with(|param| match param {
        "name" => instance().map(segment),
        "job" => job().map(segment),
        other => Err(format!(
            "{} names {{{other}}} in its path, which call has no flag for",
            route.path
        )),
    })?;
    Ok(Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-tsuru-user", "orizuru-call"))
}

/// Each `--param key=value` as its key and value (checked to hold '=' before
/// anything runs).
fn params(args: &Args) -> impl Iterator<Item = (&str, &str)> {
    args.params
        .iter()
        .map(|param| param.split_once('=').unwrap_or((param, "")))
}

/// The form tsuru would send for the action.
fn request_body(args: &Args) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    match args.action {
        Action::Create | Action::Update => {
            if let (Action::Create, Some(name)) = (args.action, &args.instance) {
                form.append_pair("name", name);
            }
            for (key, value) in [("plan", &args.plan), ("team", &args.team)] {
                if let Some(value) = value {
                    form.append_pair(key, value);
                }
            }
            for tag in &args.tags {
                form.append_pair("tag", tag);
            }
            for (key, value) in params(args) {
                form.append_pair(&format!("parameters.{key}"), value);
            }
        }
        Action::BindApp | Action::UnbindApp => {
            if let Some(app) = &args.app {
                form.append_pair("app-name", app);
            }
            for host in &args.app_hosts {
                form.append_pair("app-hosts", host);
            }
            if args.action == Action::BindApp {
                for (key, value) in params(args) {
                    form.append_pair(&format!("parameters.{key}"), value);
                }
            }
        }
        _ => {}
    }
    form.finish()
}

/// Records what the action needs in a throw-away ledger: the instance it
/// names, ready, and the binding an unbind removes.
async fn seed(host: &Arc<Host>, service: &str, args: &Args) -> Result<(), String> {
    let Some(name) = &args.instance else {
        return Ok(());
    };
    if matches!(args.action, Action::Plans | Action::Create) {
        return Ok(());
    }
    // A bind's --param are the binding's, sent with the bind itself.
    let mut parameters = Map::new();
    if args.action != Action::BindApp {
        for (key, value) in params(args) {
            parameters.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
    let mut changes = vec![Change::Put(InstanceRecord {
        instance: Instance {
            name: name.clone(),
            plan: args.plan.clone(),
            team: args.team.clone(),
            description: None,
            tags: args.tags.clone(),
            parameters,
            data: None,
        },
        state: InstanceState::Ready,
    })];
    let bound = match (args.action, &args.app, &args.job) {
        (Action::UnbindApp, Some(app), _) => Some((BindingKind::App, app)),
        (Action::UnbindJob, _, Some(job)) => Some((BindingKind::Job, job)),
        _ => None,
    };
    if let Some((kind, target)) = bound {
        changes.push(Change::Bind {
            instance: name.clone(),
            binding: Binding {
                kind,
                target: target.clone(),
                env: Default::default(),
            },
        });
    }
    host.ledger
        .commit(service, changes, None)
        .await
        .map_err(|err| format!("cannot record the instance in the throw-away ledger: {err:#}"))
}

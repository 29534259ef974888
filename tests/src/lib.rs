//! What the end-to-end tests share: a host started on `127.0.0.1:0` with
//! plugins built from source, and a tsuru-like client for it.

pub mod chaos;
pub mod fleet;
pub mod mysql;
pub mod postgres;
pub mod proxy;
pub mod rabbitmq;
pub mod redis;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use orizuru::Host;
use orizuru::config::{Config, Overrides};
use reqwest::{Method, RequestBuilder, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A plugin built from `plugins/<name>` by this crate's build script
/// (cargo names the file after the crate, with `_` for `-`).
pub fn plugin(name: &str) -> PathBuf {
    Path::new(env!("ORIZURU_TEST_PLUGINS")).join(format!("{}.wasm", name.replace('-', "_")))
}

/// The password every test service gets: `secret-<id>`.
pub fn password(id: &str) -> String {
    format!("secret-{id}")
}

/// A `[[services]]` entry serving `plugin` as service `id`, with extra TOML lines.
pub fn service(id: &str, plugin_name: &str, extra: &str) -> String {
    format!(
        "[[services]]\nid = \"{id}\"\nplugin = \"{}\"\npassword = \"{}\"\n{extra}\n",
        plugin(plugin_name).display(),
        password(id)
    )
}

/// The admin token of every test host started by [`Server::start`].
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The environment variable a fleet host's `[store] url_env` names.
pub const STORE_URL_ENV: &str = "ORIZURU_TEST_STORE_URL";

/// The environment a fleet host reads its store's URL from.
pub fn store_env(store_url: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(STORE_URL_ENV.to_owned(), store_url.to_owned())])
}

/// The config text of a fleet host: `top` (top-level keys), the admin API
/// on with [`ADMIN_TOKEN`], `[store]` reading its URL from
/// [`STORE_URL_ENV`] with this `host_id`, and these `[[services]]` entries.
pub fn shared_config(host_id: &str, top: &str, services: &[String]) -> String {
    format!(
        "admin_token = \"{ADMIN_TOKEN}\"\n{top}\n[store]\nurl_env = \"{STORE_URL_ENV}\"\nhost_id = \"{host_id}\"\npool_size = 8\n\n{}",
        services.concat()
    )
}

/// A running host.
pub struct Server {
    pub url: String,
    pub host: Arc<Host>,
    config: ConfigAt,
    /// What the host's config may read from the environment (`url_env`).
    env: Arc<BTreeMap<String, String>>,
    data_dir: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<orizuru::drain::Drained>>>,
}

/// Where a test host's config comes from.
#[derive(Clone)]
enum ConfigAt {
    Text(String),
    /// A file, read (and watched) as `orizuru serve --config` does.
    File(PathBuf),
}

impl Server {
    /// Starts a host with these `[[services]]` entries, the admin API on
    /// with [`ADMIN_TOKEN`], and a fresh data dir.
    pub async fn start(services: &[String]) -> Server {
        Self::start_config(&format!(
            "admin_token = \"{ADMIN_TOKEN}\"\n{}",
            services.concat()
        ))
        .await
    }

    /// Starts a host on this whole config text and a fresh data dir.
    pub async fn start_config(text: &str) -> Server {
        Self::start_config_env(text, BTreeMap::new()).await
    }

    /// Starts a host on this whole config text, whose `*_env` names are
    /// looked up in `env`, and a fresh data dir.
    pub async fn start_config_env(text: &str, env: BTreeMap<String, String>) -> Server {
        let data_dir = Arc::new(tempfile::tempdir().expect("a temporary data dir"));
        Self::start_in(ConfigAt::Text(text.to_owned()), Arc::new(env), data_dir).await
    }

    /// Starts a host on a config file, which it watches, and a fresh data dir.
    pub async fn start_file(path: &Path) -> Server {
        let data_dir = Arc::new(tempfile::tempdir().expect("a temporary data dir"));
        Self::start_in(ConfigAt::File(path.to_owned()), Arc::default(), data_dir).await
    }

    /// Starts a host of a fleet: these `[[services]]` entries, the admin API
    /// on with [`ADMIN_TOKEN`], a data dir of its own (hosts share no disk),
    /// and the shared store at `store_url` (a PostgreSQL URL, read through
    /// `[store] url_env`), naming itself `host_id`.
    pub async fn start_shared(store_url: &str, host_id: &str, services: &[String]) -> Server {
        Self::start_config_env(&shared_config(host_id, "", services), store_env(store_url)).await
    }

    async fn start_in(
        config_at: ConfigAt,
        env: Arc<BTreeMap<String, String>>,
        data_dir: Arc<tempfile::TempDir>,
    ) -> Server {
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".parse().expect("a loopback address")),
            data_dir: Some(data_dir.path().to_owned()),
        };
        let lookup = |name: &str| env.get(name).cloned();
        let config = match &config_at {
            ConfigAt::Text(text) => Config::parse(text, data_dir.path(), &overrides, lookup)
                .unwrap_or_else(|err| panic!("test config is invalid: {err}\n{text}")),
            ConfigAt::File(path) => Config::load(path, &overrides, lookup)
                .unwrap_or_else(|err| panic!("test config is invalid: {err}")),
        };
        let host = Host::start(&config).await.expect("the host starts");
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(orizuru::serve(listener, host.clone(), async {
            stopped.await.ok();
        }));
        Server {
            url,
            host,
            config: config_at,
            env,
            data_dir,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Stops this host after its requests in flight, and starts another on
    /// the same config and data dir.
    pub async fn restart(self) -> Server {
        self.restart_with(|_| {}).await
    }

    /// Like [`Server::restart`], doing `meanwhile` to the data dir while no
    /// host runs (the old host and its mapped files are gone by then).
    pub async fn restart_with(mut self, meanwhile: impl FnOnce(&Path)) -> Server {
        self.stop().await;
        let (config, env, data_dir) =
            (self.config.clone(), self.env.clone(), self.data_dir.clone());
        drop(self);
        meanwhile(data_dir.path());
        Self::start_in(config, env, data_dir).await
    }

    /// Stops this host as Ctrl-C does: no new connections, then the
    /// requests in flight are finished (or cut at the drain timeout, and
    /// named in the answer).
    pub async fn stop(&mut self) -> orizuru::drain::Drained {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
        match self.task.take() {
            Some(task) => task
                .await
                .expect("the server task ends")
                .expect("the server stops cleanly"),
            None => orizuru::drain::Drained::default(),
        }
    }

    /// Where this host keeps its ledger and compiled plugins.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// A client authenticated as service `id`, using the `/resources` routes.
    pub fn tsuru(&self, id: &str) -> Tsuru {
        Tsuru::new(&self.url, id, &password(id))
    }

    /// A client of the admin API with [`ADMIN_TOKEN`].
    pub fn admin(&self) -> AdminClient {
        AdminClient {
            base: self.url.clone(),
            token: ADMIN_TOKEN.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// A client for service `id` under `/services/{id}`.
    pub fn tsuru_prefixed(&self, id: &str) -> Tsuru {
        Tsuru::new(&format!("{}/services/{id}", self.url), id, &password(id))
    }
}

/// What tsuru would see of a response.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub content_type: Option<String>,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub async fn of(response: Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.expect("a readable body");
        Answer {
            status,
            body,
            content_type,
            headers,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {:?}", self.body))
    }

    /// An info answer's items, label then value.
    pub fn info_items(&self) -> Vec<(String, String)> {
        self.json()
            .as_array()
            .unwrap_or_else(|| panic!("info is not a list: {:?}", self.body))
            .iter()
            .map(|item| {
                (
                    item["label"].as_str().expect("a label").to_owned(),
                    item["value"].as_str().expect("a value").to_owned(),
                )
            })
            .collect()
    }
}

/// A client that calls the service API as tsuru does.
#[derive(Clone)]
pub struct Tsuru {
    base: String,
    username: String,
    password: String,
    client: reqwest::Client,
}

impl Tsuru {
    pub fn new(base: &str, username: &str, password: &str) -> Tsuru {
        Tsuru {
            base: base.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub fn with_password(&self, password: &str) -> Tsuru {
        Tsuru {
            password: password.to_owned(),
            ..self.clone()
        }
    }

    /// A request with tsuru's auth and headers.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(&self.password))
            .header("Accept", "application/json")
    }

    pub async fn send(&self, request: RequestBuilder) -> Answer {
        Answer::of(request.send().await.expect("the host answers")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path)).await
    }

    /// A form-encoded call, as tsuru sends by default.
    pub async fn form(&self, method: Method, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.send(self.request(method, path).form(fields)).await
    }

    /// `POST /resources/{instance}/bind-app` for `app`, as tsuru binds an app.
    pub async fn bind_app(&self, instance: &str, app: &str) -> Answer {
        self.form(
            Method::POST,
            &format!("/resources/{instance}/bind-app"),
            &[("app-name", app)],
        )
        .await
    }

    /// `DELETE /resources/{instance}/bind-app` for `app`.
    pub async fn unbind_app(&self, instance: &str, app: &str) -> Answer {
        self.form(
            Method::DELETE,
            &format!("/resources/{instance}/bind-app"),
            &[("app-name", app)],
        )
        .await
    }

    /// The names of the service's plans, in the order `/resources/plans` lists them.
    pub async fn plan_names(&self) -> Vec<String> {
        let plans = self.get("/resources/plans").await;
        assert_eq!(plans.status, 200, "{}", plans.body);
        plans.json().as_array().expect("a list")[..]
            .iter()
            .map(|plan| plan["name"].as_str().expect("a name").to_owned())
            .collect()
    }

    /// A JSON call, as tsuru sends to services registered with `encoding: json`.
    pub async fn json(&self, method: Method, path: &str, body: serde_json::Value) -> Answer {
        self.send(self.request(method, path).json(&body)).await
    }
}

/// A client of the admin API.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl AdminClient {
    pub fn with_token(&self, token: &str) -> AdminClient {
        AdminClient {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    /// A request with the bearer token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn send(&self, request: RequestBuilder) -> Answer {
        Answer::of(request.send().await.expect("the host answers")).await
    }

    /// `GET /admin/services`.
    pub async fn services(&self) -> serde_json::Value {
        let answer = self
            .send(self.request(Method::GET, "/admin/services"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    /// One service as `GET /admin/services` shows it.
    pub async fn service(&self, id: &str) -> serde_json::Value {
        let answer = self
            .send(self.request(Method::GET, &format!("/admin/services/{id}")))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    /// `PUT /admin/services/{id}/plugin` with these bytes.
    pub async fn upload(&self, id: &str, bytes: Vec<u8>) -> Answer {
        self.send(
            self.request(Method::PUT, &format!("/admin/services/{id}/plugin"))
                .body(bytes),
        )
        .await
    }

    /// `POST /admin/services/{id}/rollback`, to a named version or the previous one.
    pub async fn rollback(&self, id: &str, to: Option<&str>) -> Answer {
        let mut request = self.request(Method::POST, &format!("/admin/services/{id}/rollback"));
        if let Some(to) = to {
            request = request.query(&[("to", to)]);
        }
        self.send(request).await
    }
}

/// The bytes of a plugin built from `plugins/<name>`.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    std::fs::read(plugin(name)).expect("the plugin was built")
}

/// The names of the files in a folder.
pub fn file_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// A host serving the probe plugin `plugin` as service `probe`, with a
/// connection `admin` to `url` (kept in a file) declared as
/// `[services.TABLE.admin]` (`sql`, `redis`) with `extra` lines in that
/// table, and an instance `probe` to call it through.
pub async fn probe(
    plugin: &str,
    table: &str,
    url: &str,
    extra: &str,
) -> (Server, Tsuru, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let url_file = dir.path().join("admin-url");
    std::fs::write(&url_file, url).expect("the URL is written");
    let server = Server::start(&[service(
        "probe",
        plugin,
        &format!(
            "timeout_ms = 5000\n[services.{table}.admin]\nurl_file = \"{}\"\n{extra}",
            url_file.display()
        ),
    )])
    .await;
    let api = server.tsuru("probe");
    let created = api
        .form(Method::POST, "/resources", &[("name", "probe")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    (server, api, dir)
}

/// A name no other run uses, for what a test makes on a shared server: `orz`
/// and 8 hex digits (letters and digits only, so it also starts a MySQL
/// grant's pattern exactly).
pub fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos() ^ (elapsed.as_secs() as u32))
        .unwrap_or_default();
    format!(
        "orz{:08x}",
        nanos ^ std::process::id().rotate_left(16) ^ fastrand::u32(..)
    )
}

/// Runs `clean` to its end, for a guard that drops what a test made on a
/// shared server when the test ends, passed or not: on a runtime and a
/// thread of its own, since the test's runtime may be gone by then. When it
/// fails, and the test has not failed already, the test fails saying that
/// `what` could not be cleaned up.
pub fn clean_up_after_test(what: &str, clean: impl Future<Output = ()> + Send + 'static) {
    let cleaned = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(clean);
    })
    .join();
    if cleaned.is_err() && !std::thread::panicking() {
        panic!("{what} could not be cleaned up after the test");
    }
}

/// Prints the median, p99, mean and max of some latencies, for the benches.
pub fn report(label: &str, mut samples: Vec<std::time::Duration>) {
    samples.sort();
    let at = |quantile: f64| {
        samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)]
    };
    let mean = samples.iter().sum::<std::time::Duration>() / samples.len() as u32;
    println!(
        "{label:<40} n={:<5} median={:>8.3}ms  p99={:>8.3}ms  mean={:>8.3}ms  max={:>8.3}ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
    );
}

/// `calls` sequential calls of one route after 50 warm-ups (connection
/// pool, code paths), each checked for `expected`; how long each took.
pub async fn timed_calls(
    api: &Tsuru,
    calls: usize,
    method: Method,
    path: &str,
    fields: &[(&str, &str)],
    expected: u16,
) -> Vec<std::time::Duration> {
    for _ in 0..50 {
        api.form(method.clone(), path, fields).await;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = std::time::Instant::now();
        let answer = api.form(method.clone(), path, fields).await;
        samples.push(started.elapsed());
        assert_eq!(answer.status, expected, "{path}: {}", answer.body);
    }
    samples
}

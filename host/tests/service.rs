//! The contract and the ledger's rules with a plugin written in Rust, no wasm:
//! what the host does around a plugin, and when the ledger itself fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, header};
use orizuru::config::Config;
use orizuru::ledger::{
    Binding, Change, Event, EventRecord, InstanceRecord, Ledger, LedgerLock, PgLedger, SqliteLedger,
};
use orizuru::model::{
    Action, AppBinding, Context, Env, InfoItem, Instance, JobBinding, Plan, Provisioned,
    ProxyRequest, ProxyResponse, Status,
};
use orizuru::runtime::{Outcome, Plugin};
use orizuru::service::Service;
use orizuru::store::postgres::Postgres;
use orizuru::store::postgres::testing::TestDatabase;
use orizuru::{Host, app};
use tower::ServiceExt as _;

/// A plugin that says yes to everything and writes down what it was asked.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<&'static str>>,
    /// When set, a create waits for a permit of it once written down.
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Recorder {
    fn called(&self, action: &'static str) {
        self.calls.lock().expect("not poisoned").push(action);
    }
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl Plugin for Recorder {
    async fn plans(&self, _: Context) -> Outcome<Vec<Plan>> {
        self.called("plans");
        Ok(Vec::new())
    }
    async fn create(&self, _: Instance, _: Context) -> Outcome<Provisioned> {
        self.called("create");
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("the gate stays open").forget();
        }
        Ok(Provisioned::Ready(Some("made".into())))
    }
    async fn update(&self, _: Instance, _: Instance, _: Context) -> Outcome<Provisioned> {
        self.called("update");
        Ok(Provisioned::Ready(None))
    }
    async fn remove(&self, _: Instance, _: Context) -> Outcome<()> {
        self.called("remove");
        Ok(())
    }
    async fn info(&self, _: Instance, _: Context) -> Outcome<Vec<InfoItem>> {
        self.called("info");
        Ok(Vec::new())
    }
    async fn status(&self, _: Instance, _: Context) -> Outcome<Status> {
        self.called("status");
        Ok(Status::Up)
    }
    async fn bind_app(&self, _: Instance, _: AppBinding, _: Context) -> Outcome<Env> {
        self.called("bind-app");
        Ok(Env::from([("URL".to_owned(), "db://x".to_owned())]))
    }
    async fn unbind_app(&self, _: Instance, _: AppBinding, _: Context) -> Outcome<()> {
        self.called("unbind-app");
        Ok(())
    }
    async fn bind_job(&self, _: Instance, _: JobBinding, _: Context) -> Outcome<Env> {
        self.called("bind-job");
        Ok(Env::new())
    }
    async fn unbind_job(&self, _: Instance, _: JobBinding, _: Context) -> Outcome<()> {
        self.called("unbind-job");
        Ok(())
    }
    async fn proxy(
        &self,
        _: Option<Instance>,
        _: ProxyRequest,
        _: Context,
    ) -> Outcome<ProxyResponse> {
        self.called("proxy");
        Ok(ProxyResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

/// The embedded ledger, whose commits can be made to fail like a full disk,
/// and whose locks like a shared store out of reach.
struct Flaky {
    inner: SqliteLedger,
    failing: AtomicBool,
    unreachable: AtomicBool,
}

#[async_trait]
impl Ledger for Flaky {
    async fn instance(&self, service: &str, name: &str) -> anyhow::Result<Option<InstanceRecord>> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(orizuru::store::Unreachable("connection refused".into()).into());
        }
        self.inner.instance(service, name).await
    }
    async fn reserve(
        &self,
        service: &str,
        instance: &Instance,
        owner: &str,
    ) -> anyhow::Result<bool> {
        self.inner.reserve(service, instance, owner).await
    }
    async fn orphans(&self, service: &str, host: &str) -> anyhow::Result<Vec<InstanceRecord>> {
        self.inner.orphans(service, host).await
    }
    fn instance_count(&self, service: &str) -> u64 {
        self.inner.instance_count(service)
    }
    async fn lock(&self, service: &str, instance: &str) -> anyhow::Result<LedgerLock> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(orizuru::store::Unreachable("connection refused".into()).into());
        }
        self.inner.lock(service, instance).await
    }
    async fn prune(&self) -> anyhow::Result<orizuru::ledger::Pruned> {
        self.inner.prune().await
    }
    async fn commit(
        &self,
        service: &str,
        changes: Vec<Change>,
        event: Option<Event>,
    ) -> anyhow::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            anyhow::bail!("database or disk is full");
        }
        self.inner.commit(service, changes, event).await
    }
    async fn replay(
        &self,
        service: &str,
        action: Action,
        instance: &str,
        target: &str,
        event_id: &str,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        self.inner
            .replay(service, action, instance, target, event_id)
            .await
    }
    async fn instance_names(&self, service: &str) -> anyhow::Result<Vec<String>> {
        self.inner.instance_names(service).await
    }
    async fn bindings(&self, service: &str, instance: &str) -> anyhow::Result<Vec<Binding>> {
        self.inner.bindings(service, instance).await
    }
    async fn events(&self, service: &str, instance: &str) -> anyhow::Result<Vec<EventRecord>> {
        self.inner.events(service, instance).await
    }
}

struct Setup {
    host: Arc<Host>,
    plugin: Arc<Recorder>,
    ledger: Arc<Flaky>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let config = Config::parse(
        "[[services]]\nid = \"svc\"\nplugin = \"none.wasm\"\npassword = \"pw\"\ntimeout_ms = 100\n",
        dir.path(),
        &Default::default(),
        |_| None,
    )
    .expect("a valid config");
    let ledger = Arc::new(Flaky {
        inner: SqliteLedger::open(dir.path()).expect("a ledger"),
        failing: AtomicBool::new(false),
        unreachable: AtomicBool::new(false),
    });
    let plugin = Arc::new(Recorder::default());
    let service = Service::new(config.services[0].clone(), plugin.clone(), ledger.clone());
    Setup {
        host: Host::with_services(vec![service], ledger.clone()),
        plugin,
        ledger,
        _dir: dir,
    }
}

/// Sends a form call through the router, as tsuru would, and reads the answer.
async fn call(host: &Arc<Host>, method: &str, path: &str, body: &str) -> (u16, String) {
    call_as(host, Some("c3ZjOnB3"), method, path, body).await // svc:pw
}

/// [`call`] with `basic` (base64 `user:password`) as its credentials, or none.
async fn call_as(
    host: &Arc<Host>,
    basic: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(basic) = basic {
        request = request.header(header::AUTHORIZATION, format!("Basic {basic}"));
    }
    let request = request
        .body(Body::from(body.to_owned()))
        .expect("a request");
    let response = app(host.clone()).oneshot(request).await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_create_the_ledger_cannot_record_is_undone_through_the_plugin() {
    let setup = setup();
    setup.ledger.failing.store(true, Ordering::SeqCst);
    let (status, body) = call(&setup.host, "POST", "/resources", "name=db").await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "service \"svc\" could not reach its ledger for the create of instance \"db\"; try again"
    );
    assert_eq!(
        setup.plugin.calls(),
        ["create", "remove"],
        "what was made is removed again"
    );

    // The reservation the failed ledger could not release is undone by the
    // next create of the name, which then goes ahead.
    setup.ledger.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        call(&setup.host, "POST", "/resources", "name=db").await.0,
        201,
        "the name is free again"
    );
    assert_eq!(
        setup.plugin.calls(),
        ["create", "remove", "remove", "create"]
    );
}

#[tokio::test]
async fn an_unreachable_store_is_answered_503_with_retry_after() {
    let setup = setup();
    assert_eq!(
        call(&setup.host, "POST", "/resources", "name=db").await.0,
        201
    );
    setup.ledger.unreachable.store(true, Ordering::SeqCst);
    let sentence = orizuru::store::Unreachable("connection refused".into()).to_string();
    for (method, path, body) in [
        ("POST", "/resources", "name=other"),
        ("PUT", "/resources/db", "team=t"),
        ("PUT", "/resources/db/binds/jobs/cron", ""),
        ("DELETE", "/resources/db/binds/jobs/cron", ""),
        ("DELETE", "/resources/db", ""),
        ("GET", "/resources/db", ""),
        ("GET", "/resources/db/status", ""),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, "Basic c3ZjOnB3")
            .body(Body::from(body.to_owned()))
            .expect("a request");
        let response = app(setup.host.clone())
            .oneshot(request)
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 503, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok()),
            Some("5"),
            "{method} {path}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        assert_eq!(String::from_utf8_lossy(&bytes), sentence, "{method} {path}");
    }
    assert_eq!(
        setup.plugin.calls(),
        ["create"],
        "no plugin call without the lock"
    );
}

#[tokio::test]
async fn host_rules_are_answered_without_calling_the_plugin() {
    let setup = setup();
    assert_eq!(
        call(&setup.host, "POST", "/resources", "name=db&eventid=e1")
            .await
            .0,
        201
    );
    assert_eq!(
        call(&setup.host, "POST", "/resources", "name=db&eventid=e1")
            .await
            .0,
        201
    );
    assert_eq!(
        call(&setup.host, "POST", "/resources", "name=db").await.0,
        201,
        "a create asking what the ended one asked gets its answer again"
    );
    assert_eq!(
        call(&setup.host, "POST", "/resources", "name=db&plan=large")
            .await
            .0,
        409,
        "a create asking for something else is a duplicate"
    );
    assert_eq!(
        call(&setup.host, "GET", "/resources/ghost", "").await.0,
        404
    );
    assert_eq!(
        call(
            &setup.host,
            "POST",
            "/resources/ghost/bind-app",
            "app-name=web"
        )
        .await
        .0,
        404
    );
    assert_eq!(
        setup.plugin.calls(),
        ["create"],
        "one create; the retries, the duplicate and the unknowns never reached it"
    );

    let (status, env) = call(
        &setup.host,
        "POST",
        "/resources/db/bind-app",
        "app-name=web&eventid=e2",
    )
    .await;
    assert_eq!((status, env.as_str()), (201, "{\"URL\":\"db://x\"}"));
    assert_eq!(
        call(
            &setup.host,
            "POST",
            "/resources/db/bind-app",
            "app-name=web&eventid=e2"
        )
        .await
        .1,
        env
    );
    assert_eq!(setup.plugin.calls(), ["create", "bind-app"]);
}

#[tokio::test]
async fn each_request_is_counted_under_the_service_and_the_action_of_its_route() {
    let setup = setup();
    let host = &setup.host;
    let svc = Some("c3ZjOnB3"); // svc:pw
    let wrong_password = Some("c3ZjOm5v"); // svc:no
    let stranger = Some("bm9ib2R5Om5v"); // nobody:no
    // (credentials, method, path, body, status)
    let requests = [
        (svc, "GET", "/resources/plans", "", 200),
        (svc, "GET", "/services/svc/resources/plans", "", 200),
        (svc, "POST", "/resources", "name=db", 201),
        (svc, "GET", "/resources/db", "", 200),
        (svc, "GET", "/resources/db/status", "", 204),
        (svc, "PUT", "/services/svc/resources/db", "plan=big", 200),
        (svc, "POST", "/resources/db", "app-hostname=web", 201),
        (svc, "POST", "/resources/db/bind", "app-host=api", 201),
        (svc, "DELETE", "/resources/db/hostname/web", "", 200),
        (svc, "PUT", "/resources/db/binds/jobs/cron", "", 201),
        (svc, "DELETE", "/resources/db/binds/jobs/cron", "", 200),
        (svc, "GET", "/resources/db/stats", "", 200),
        (svc, "GET", "/authenticated-resources/stats", "", 200),
        (svc, "GET", "/elsewhere", "", 200),
        (svc, "GET", "/services/svc/", "", 200),
        // A method no route of the path takes, and a HEAD a GET route answers.
        (svc, "PATCH", "/resources/plans", "", 405),
        (None, "PATCH", "/services/svc/resources/plans", "", 405),
        (svc, "HEAD", "/resources/plans", "", 200),
        // Refused: under the service the path or the username names, if served.
        (None, "GET", "/services/svc/resources/plans", "", 401),
        (wrong_password, "GET", "/resources/plans", "", 401),
        (stranger, "GET", "/resources/plans", "", 401),
        (svc, "GET", "/services/ghost/resources/plans", "", 404),
        (svc, "DELETE", "/services/svc/resources/gone", "", 404),
    ];
    for (basic, method, path, body, status) in requests {
        assert_eq!(
            call_as(host, basic, method, path, body).await.0,
            status,
            "{method} {path}"
        );
    }
    let (status, page) = call_as(host, None, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let count = |service: &str, action: &str, status: u16| {
        let series = format!(
            r#"orizuru_requests_total{{service="{service}",action="{action}",status="{status}"}} "#
        );
        page.lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or("0")
            .to_owned()
    };
    let expected = [
        ("svc", "plans", 200, "2"),
        ("svc", "create", 201, "1"),
        ("svc", "info", 200, "1"),
        ("svc", "status", 204, "1"),
        ("svc", "update", 200, "1"),
        ("svc", "bind-app", 201, "2"),
        ("svc", "unbind-app", 200, "1"),
        ("svc", "bind-job", 201, "1"),
        ("svc", "unbind-job", 200, "1"),
        ("svc", "proxy", 200, "5"),
        ("svc", "proxy", 405, "2"),
        ("svc", "plans", 401, "2"),
        ("unknown", "plans", 401, "1"),
        ("unknown", "plans", 404, "1"),
        ("svc", "remove", 404, "1"),
    ];
    for (service, action, status, value) in expected {
        assert_eq!(
            count(service, action, status),
            value,
            "{service} {action} {status} in\n{page}"
        );
    }
}

/// Two hosts on one shared store (a test database): each its own ledger
/// (pools, locks) and its own services, sharing the plugin.
struct Fleet {
    hosts: [Arc<Host>; 2],
    services: [Arc<Service>; 2],
    ledger: Arc<PgLedger>,
    plugin: Arc<Recorder>,
    database: TestDatabase,
    _dir: tempfile::TempDir,
}

async fn fleet(plugin: Recorder) -> Fleet {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let config = Config::parse(
        "[[services]]\nid = \"svc\"\nplugin = \"none.wasm\"\npassword = \"pw\"\ntimeout_ms = 30000\n",
        dir.path(),
        &Default::default(),
        |_| None,
    )
    .expect("a valid config");
    let database = TestDatabase::create().await;
    let plugin = Arc::new(plugin);
    let mut hosts = Vec::new();
    let mut services = Vec::new();
    let mut ledgers = Vec::new();
    for name in ["one", "two"] {
        let store = Postgres::open(&database.settings(name))
            .await
            .expect("the store opens");
        let ledger = Arc::new(
            PgLedger::open(&store, Default::default())
                .await
                .expect("a ledger"),
        );
        let service = Service::new(config.services[0].clone(), plugin.clone(), ledger.clone());
        hosts.push(Host::with_services(vec![service], ledger.clone()));
        services.push(hosts[hosts.len() - 1].registry.all().remove(0));
        ledgers.push(ledger);
    }
    let [one, two] = <[Arc<Host>; 2]>::try_from(hosts).ok().expect("two hosts");
    let services = <[Arc<Service>; 2]>::try_from(services)
        .ok()
        .expect("two services");
    Fleet {
        hosts: [one, two],
        services,
        ledger: ledgers.remove(0),
        plugin,
        database,
        _dir: dir,
    }
}

/// Waits (30 s at most, else fails) until `done` says so.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !done().await {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} never happened"));
}

#[tokio::test]
async fn a_create_on_another_host_waits_for_the_running_one_and_shares_its_answer() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let fleet = fleet(Recorder {
        gate: Some(gate.clone()),
        ..Recorder::default()
    })
    .await;
    let [one, two] = fleet.hosts.clone();
    let first = tokio::spawn(async move { call(&one, "POST", "/resources", "name=db").await });
    until("the first host's create", || async {
        fleet.plugin.calls() == ["create"]
    })
    .await;
    assert_eq!(
        call(&fleet.hosts[1], "PUT", "/resources/db/binds/jobs/cron", "").await,
        (
            412,
            "instance \"db\" of service \"svc\" is still being created; try again once its create has ended".into()
        ),
        "a bind on another host is told at once, as on the creating host"
    );
    let second = tokio::spawn(async move { call(&two, "POST", "/resources", "name=db").await });
    let store = Postgres::open(&fleet.database.settings("probe"))
        .await
        .expect("the store opens");
    until(
        "the second host waiting for the instance's lock",
        || async {
            let client = store.client().await.expect("a connection");
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()",
                    &[],
                )
                .await
                .expect("the locks");
            row.get::<_, i64>(0) > 0
        },
    )
    .await;
    gate.add_permits(1);
    assert_eq!(first.await.expect("answered").0, 201);
    assert_eq!(
        second.await.expect("answered").0,
        201,
        "the same ask, on another host, is the same create"
    );
    assert_eq!(fleet.plugin.calls(), ["create"], "made once");
    assert_eq!(
        call(&fleet.hosts[1], "POST", "/resources", "name=db&plan=large").await,
        (
            409,
            "instance \"db\" already exists in service \"svc\"; choose another name".into()
        ),
        "another ask of the name is a duplicate on every host"
    );
    assert_eq!(
        fleet.ledger.instance_names("svc").await.expect("names"),
        ["db"]
    );
}

#[tokio::test]
async fn two_hosts_looking_for_orphans_undo_each_once() {
    let fleet = fleet(Recorder::default()).await;
    for name in ["left", "behind"] {
        let instance = Instance {
            name: name.into(),
            plan: None,
            team: None,
            description: None,
            tags: Vec::new(),
            parameters: Default::default(),
            data: None,
        };
        assert!(
            fleet
                .ledger
                .reserve("svc", &instance, "dead/1")
                .await
                .expect("reserved")
        );
    }
    let [one, two] = fleet.services.clone();
    tokio::join!(one.recover(), two.recover());
    assert_eq!(
        fleet.plugin.calls(),
        ["remove", "remove"],
        "each orphan undone once, by one host"
    );
    assert!(
        fleet
            .ledger
            .instance_names("svc")
            .await
            .expect("names")
            .is_empty()
    );
}

#[tokio::test]
async fn a_host_with_a_store_keeps_its_ledger_there() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let database = TestDatabase::create().await;
    let config = Config::parse(
        "data_dir = \"data\"\ncache_dir = \"cache\"\n[store]\nurl_env = \"STORE_URL\"\n",
        dir.path(),
        &Default::default(),
        |name| (name == "STORE_URL").then(|| database.url.clone()),
    )
    .expect("a valid config");
    let host = Host::start(&config).await.expect("the host starts");
    assert!(host.ledger.shared(), "the ledger is the shared store's");
    let store = Postgres::open(&database.settings("probe"))
        .await
        .expect("the store opens");
    host.ledger
        .reserve(
            "svc",
            &Instance {
                name: "db".into(),
                plan: None,
                team: None,
                description: None,
                tags: Vec::new(),
                parameters: Default::default(),
                data: None,
            },
            "run/1",
        )
        .await
        .expect("reserved");
    let row = store
        .client()
        .await
        .expect("a connection")
        .query_one("SELECT owner FROM instances WHERE name = 'db'", &[])
        .await
        .expect("the reservation is in the store");
    assert_eq!(row.get::<_, String>(0), "run/1");
}

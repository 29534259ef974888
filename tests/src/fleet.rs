//! Several hosts on one shared store, as the fleet tests and bench run
//! them: in this process ([`Fleet`]), or each in a process of its own
//! ([`ProcessHost`], which a test can `kill -9`); and a tsuru client that
//! spreads its calls over them ([`Spread`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{ADMIN_TOKEN, AdminClient, Server, Tsuru, password, shared_config, store_env};

/// What the `test-host` binary prints once it listens, before its URL.
pub const LISTENING: &str = "test-host listening on ";

/// Hosts in this process, sharing the store at one URL; each with a data
/// dir of its own, named `a`, `b`, `c`, ...
pub struct Fleet {
    pub hosts: Vec<Server>,
}

impl Fleet {
    /// Starts `count` hosts on the store at `store_url`, one after another
    /// (the first migrates the schema), serving these `[[services]]` entries.
    pub async fn start(store_url: &str, count: usize, services: &[String]) -> Fleet {
        let mut hosts = Vec::with_capacity(count);
        for index in 0..count {
            hosts.push(Server::start_shared(store_url, &host_id(index), services).await);
        }
        Fleet { hosts }
    }

    /// A client of service `id` that sends each call to the next host in turn.
    pub fn spread(&self, id: &str) -> Spread {
        Spread::new(self.hosts.iter().map(|host| host.url.clone()).collect(), id)
    }

    /// Host `index`'s client of service `id`.
    pub fn tsuru(&self, index: usize, id: &str) -> Tsuru {
        self.hosts[index].tsuru(id)
    }
}

/// The name of host `index` of a fleet: `a`, `b`, `c`, ...
pub fn host_id(index: usize) -> String {
    char::from(b'a' + (index % 26) as u8).to_string()
}

/// A tsuru client that sends each call to the next of several hosts, as a
/// load balancer in front of a fleet does.
#[derive(Clone)]
pub struct Spread {
    hosts: Arc<Vec<Tsuru>>,
    next: Arc<AtomicUsize>,
}

impl Spread {
    /// A client of service `id` on the hosts at these base URLs.
    pub fn new(urls: Vec<String>, id: &str) -> Spread {
        Spread {
            hosts: Arc::new(
                urls.iter()
                    .map(|url| Tsuru::new(url, id, &password(id)))
                    .collect(),
            ),
            next: Arc::default(),
        }
    }

    /// The client of the host whose turn it is.
    pub fn next(&self) -> &Tsuru {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.hosts[turn % self.hosts.len()]
    }

    /// How many hosts it spreads over.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether it has no host at all.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// A host in a process of its own (the tests crate's `test-host` binary),
/// on the shared store, for tests that kill one with SIGKILL. Killed when
/// dropped.
pub struct ProcessHost {
    pub url: String,
    pub host_id: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl ProcessHost {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_test-host")`) on a
    /// config file serving these `[[services]]` entries on the store at
    /// `store_url`, with a data dir of its own, and waits until it listens.
    pub fn spawn(binary: &Path, store_url: &str, host_id: &str, services: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary dir for the host");
        let data_dir = dir.path().join("data");
        let top = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nwatch = false\n",
            data_dir.display()
        );
        let config = dir.path().join("orizuru.toml");
        std::fs::write(&config, shared_config(host_id, &top, services))
            .expect("the host's config is written");
        let mut command = Command::new(binary);
        command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in store_env(store_url) {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let stdout = child.stdout.take().expect("a piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix(LISTENING) {
                        break url.trim().to_owned();
                    }
                }
                _ => {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        pipe.read_to_string(&mut stderr).ok();
                    }
                    let status = child.wait().ok();
                    panic!("host {host_id} ended before it listened ({status:?}):\n{stderr}");
                }
            }
        };
        // Keep draining both pipes, so the host never blocks on a full one.
        std::thread::spawn(move || lines.for_each(drop));
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || BufReader::new(stderr).lines().for_each(drop));
        }
        ProcessHost {
            url,
            host_id: host_id.to_owned(),
            child,
            _dir: dir,
        }
    }

    /// A client authenticated as service `id`.
    pub fn tsuru(&self, id: &str) -> Tsuru {
        Tsuru::new(&self.url, id, &password(id))
    }

    /// A client of the admin API.
    pub fn admin(&self) -> AdminClient {
        AdminClient {
            base: self.url.clone(),
            token: ADMIN_TOKEN.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// `kill -9`: the process ends at once, whatever it was doing.
    pub fn kill(&mut self) {
        // Child::kill sends SIGKILL on Unix.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for ProcessHost {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits, up to `bound`, until `probe` answers `Some`; `None` if it never did.
/// A wait for something that happens elsewhere, not a measure of its speed.
pub async fn eventually<T, F, Fut>(bound: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fleet view of one service in `GET /admin/services`: each host's id
/// and the sha256 of the version it serves, by host id.
pub fn fleet_of(service: &serde_json::Value) -> BTreeMap<String, String> {
    service["fleet"]
        .as_array()
        .unwrap_or_else(|| panic!("the service shows no fleet: {service}"))
        .iter()
        // Hosts that stopped beating are listed for ten minutes, as not alive.
        .filter(|host| host["alive"] == serde_json::Value::Bool(true))
        .map(|host| {
            let id = host["host_id"]
                .as_str()
                .unwrap_or_else(|| panic!("a host without host_id: {host}"));
            let sha = host["sha256"].as_str().unwrap_or("not serving");
            (id.to_owned(), sha.to_owned())
        })
        .collect()
}

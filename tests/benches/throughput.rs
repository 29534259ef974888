//! Throughput under load, the figures of issue 18, side by side in one run:
//! the release binary as an operator runs it (`orizuru serve --config F`,
//! default limits, the default log level), a native axum server doing the
//! same work (`bench-native`), and `wasmtime serve` running an equivalent
//! wasi:http component (`plugins/bench-http`), each loaded by `wrk`.
//!
//! ```sh
//! cargo bench -p orizuru-tests --bench throughput                      # every part
//! cargo bench -p orizuru-tests --bench throughput -- compare startup  # some parts
//! ```
//!
//! The parts: `compare` (native, Orizuru with the fake plugin, `wasmtime
//! serve`), `languages` (the queue example in each SDK language), `scaling`
//! (1 to 256 connections), `memory` (the host's RSS with 1, 10 and 100
//! services) and `startup` (20 services, cold and from the compiled cache).
//! The tables are printed as markdown and written to
//! `target/bench/throughput.md`.
//!
//! - Each figure is the median of `BENCH_RUNS` runs (default 3) of
//!   `wrk -t2 -cN -d{BENCH_SECONDS}s --latency` (default 10 s; one thread
//!   at one connection), with tsuru's basic auth header and keep-alive.
//! - Only the expected answer counts: req/s is the requests answered 2xx
//!   (wrk's count less its "Non-2xx or 3xx responses") per second, and
//!   every other answer is printed beside it. For Orizuru, the statuses of
//!   all answers come from the host's own `/metrics`, read before and after
//!   each run, so a 2xx other than the expected one is caught too; the
//!   other servers are checked with one call before each load.
//! - bind-app POSTs a form with an app name no other request of the run
//!   uses (a Lua script: the run, wrk's thread and a counter), so each one
//!   is a new binding written to the ledger; plans and status are GETs.
//! - The bench builds the host itself with `cargo build --release -p
//!   orizuru` and spawns `target/release/orizuru serve --config F` on a free
//!   loopback port with a temporary data dir, waits for `/readyz` 200 and
//!   kills it after its part (also on a panic). `RUST_LOG` is removed from
//!   its environment; other variables (`RUST_BACKTRACE`) are kept, and the
//!   header says which were set. Its log goes to a file in the temp dir.
//!   The hosts of a run share one `cache_dir`, so each plugin compiles once
//!   per run; `startup` uses a data dir of its own with the default cache
//!   (`data_dir/compiled`), empty for the cold start and kept for the
//!   second.
//! - `wasmtime serve` is `wasmtime serve --addr 127.0.0.1:PORT
//!   -O pooling-allocator=y --max-instance-reuse-count 1 bench_http.wasm`:
//!   a fresh instance per request from the pooling allocator (both are its
//!   defaults for a WASIp2 component in 48, given here so they stay so). It comes from PATH or `~/.cargo/bin` and
//!   must be 48.x, the wasmtime Orizuru embeds; otherwise its column is
//!   skipped, saying how to install it.
//!
//! Needs `wrk` (`apt-get install wrk`) and what `tests/setup` installs.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orizuru_tests::{password, plugin, service};

const PARTS: [&str; 5] = ["compare", "languages", "scaling", "memory", "startup"];

/// The service the comparison loads, and the instance it creates.
const FAKE: &str = "fake";
const INSTANCE: &str = "bench";

/// The queue example in each SDK language: (label, service, plugin, the
/// service's extra keys). Python and JavaScript are measured twice: with a
/// fresh instance per call, and with instances reused (`reuse_calls`).
const LANGUAGES: [(&str, &str, &str, &str); 6] = [
    ("Rust", "queue", "queue", ""),
    ("C", "queue-c", "queue-c", ""),
    ("Python", "queue-python", "queue-python", ""),
    ("JavaScript", "queue-js", "queue-js", ""),
    (
        "Python, reused",
        "queue-python-reused",
        "queue-python",
        "reuse_calls = 10000",
    ),
    (
        "JavaScript, reused",
        "queue-js-reused",
        "queue-js",
        "reuse_calls = 10000",
    ),
];

/// The plugins of the start-up part's 20 services, taken in turn (those not
/// built are left out), with the grants each needs.
const STARTUP_PLUGINS: [(&str, &str); 11] = [
    ("fake", ""),
    ("queue", ""),
    ("queue-c", ""),
    ("queue-python", ""),
    ("queue-js", ""),
    ("counter", "keyvalue = true"),
    ("bookkeeper", "keyvalue = true"),
    ("generation-one", ""),
    ("generation-two", ""),
    ("wit-0-1-0", ""),
    ("misbehave", ""),
];

/// The issue's bind-app rate before its changes, which goal 4 triples.
const ISSUE_BIND_APP_RATE: f64 = 3_887.0;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("throughput: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // cargo bench passes `--bench`; the rest are part names.
    let mut parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if let Some(unknown) = parts.iter().find(|part| !PARTS.contains(&part.as_str())) {
        bail!(
            "there is no part \"{unknown}\"; the parts are: {}",
            PARTS.join(", ")
        );
    }
    if parts.is_empty() {
        parts = PARTS.iter().map(|part| part.to_string()).collect();
    }
    if Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!(
            "This bench loads the servers with wrk, which is not installed: install it with `apt-get install wrk` and run the bench again."
        );
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("tests/ sits in the workspace")?
        .to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let orizuru = build_orizuru(&workspace, &target)?;
    let scratch = tempfile::tempdir().context("a temporary dir")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let bench = Bench {
        settings,
        orizuru,
        scratch: scratch.path().to_owned(),
        client: Client {
            runtime,
            http: reqwest::Client::new(),
        },
    };

    let mut out = Markdown::default();
    out.header(&bench, &workspace);
    for part in &parts {
        eprintln!("throughput: part {part}");
        match part.as_str() {
            "compare" => bench.compare(&mut out)?,
            "languages" => bench.languages(&mut out)?,
            "scaling" => bench.scaling(&mut out)?,
            "memory" => bench.memory(&mut out)?,
            "startup" => bench.startup(&mut out)?,
            _ => unreachable!("parts are checked above"),
        }
    }
    out.goals();
    println!("{}", out.text);
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("throughput.md");
    std::fs::write(&file, &out.text)?;
    eprintln!("throughput: written to {}", file.display());
    Ok(())
}

struct Settings {
    seconds: u64,
    runs: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let read = |name: &str, default: u64| -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(text) => match text.parse::<u64>() {
                    Ok(value) if value > 0 => Ok(value),
                    _ => bail!("{name} must be a whole number above 0, not {text:?}"),
                },
                Err(_) => Ok(default),
            }
        };
        Ok(Settings {
            seconds: read("BENCH_SECONDS", 10)?,
            runs: read("BENCH_RUNS", 3)? as usize,
        })
    }
}

/// `cargo build --release -p orizuru`, as an operator builds the host.
fn build_orizuru(workspace: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("throughput: cargo build --release -p orizuru");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "-p", "orizuru"])
        .status()
        .context("cannot run cargo to build the host")?;
    if !status.success() {
        bail!("cargo build --release -p orizuru failed (see above)");
    }
    let binary = target.join("release").join("orizuru");
    if !binary.exists() {
        bail!("the build made no {}", binary.display());
    }
    Ok(binary)
}

struct Bench {
    settings: Settings,
    orizuru: PathBuf,
    scratch: PathBuf,
    client: Client,
}

/// A process the bench started: killed when dropped, on a panic too.
struct Process {
    name: String,
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL; wait reaps it.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Process {
    fn spawn(name: &str, mut command: Command, base: String, log: PathBuf) -> anyhow::Result<Self> {
        let file = File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            base,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of its log, for a failure's message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until `path` answers `ready` (any status when None); how long
    /// since `since`.
    fn wait_ready(
        &mut self,
        client: &Client,
        path: &str,
        ready: Option<u16>,
        since: Instant,
    ) -> anyhow::Result<Duration> {
        let deadline = since + Duration::from_secs(600);
        loop {
            if let Some(exit) = self.child.try_wait()? {
                bail!(
                    "{} stopped ({exit}) before it was ready:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok((status, _)) = client.get(&format!("{}{path}", self.base), None)
                && ready.is_none_or(|ready| ready == status)
            {
                return Ok(since.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} was not ready after 10 minutes:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process's resident memory now, from /proc.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// A free loopback port (free when asked; the server binds it next).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Blocking calls with reqwest, for the probes around the loads.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(u16, String)> {
        self.runtime.block_on(async {
            let response = request.timeout(Duration::from_secs(60)).send().await?;
            let status = response.status().as_u16();
            Ok((status, response.text().await?))
        })
    }

    fn get(&self, url: &str, auth: Option<&Auth>) -> anyhow::Result<(u16, String)> {
        let mut request = self.http.get(url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth.header());
        }
        self.send(request)
    }

    fn post_form(
        &self,
        url: &str,
        auth: &Auth,
        form: &[(&str, &str)],
    ) -> anyhow::Result<(u16, String)> {
        self.send(
            self.http
                .post(url)
                .header("Authorization", auth.header())
                .form(form),
        )
    }
}

/// A service's basic auth, as tsuru sends it.
#[derive(Clone)]
struct Auth {
    username: String,
    password: String,
}

impl Auth {
    fn of(id: &str) -> Auth {
        Auth {
            username: id.to_owned(),
            password: password(id),
        }
    }

    fn header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// Which server a load goes to.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Native,
    Orizuru,
    WasmtimeServe,
}

/// A running server under test.
struct Target {
    process: Process,
    kind: Kind,
}

/// What one figure loads.
#[derive(Clone)]
struct Load {
    label: String,
    method: &'static str,
    path: String,
    connections: u32,
    expected: u16,
    auth: Auth,
}

impl Load {
    fn plans(service: &str, connections: u32) -> Load {
        Load {
            label: format!("plans @{connections}"),
            method: "GET",
            path: "/resources/plans".to_owned(),
            connections,
            expected: 200,
            auth: Auth::of(service),
        }
    }

    fn status(connections: u32) -> Load {
        Load {
            label: format!("status @{connections}"),
            method: "GET",
            path: format!("/resources/{INSTANCE}/status"),
            connections,
            expected: 204,
            auth: Auth::of(FAKE),
        }
    }

    fn bind_app(connections: u32) -> Load {
        Load {
            label: format!("bind-app @{connections}"),
            method: "POST",
            path: format!("/resources/{INSTANCE}/bind-app"),
            connections,
            expected: 201,
            auth: Auth::of(FAKE),
        }
    }
}

/// One wrk run.
#[derive(Clone, Debug, Default)]
struct Run {
    requests: u64,
    seconds: f64,
    /// Answers that were not 2xx or 3xx (wrk's count).
    not_ok: u64,
    socket_errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// Orizuru's own count of what it answered, by status (from /metrics).
    statuses: BTreeMap<u16, u64>,
    /// The host's largest RSS seen while wrk ran, in KiB.
    peak_rss_kib: Option<u64>,
}

impl Run {
    fn ok_per_second(&self) -> f64 {
        self.requests.saturating_sub(self.not_ok) as f64 / self.seconds
    }
}

/// The median of several runs, each value on its own.
#[derive(Clone, Debug, Default)]
struct Figure {
    label: String,
    ok_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    not_ok: u64,
    socket_errors: u64,
    /// Over every run: the answers by status (Orizuru only), and the other
    /// 2xx answers than the expected one.
    statuses: BTreeMap<u16, u64>,
    unexpected_2xx: u64,
    expected: u16,
    peak_rss_kib: Option<u64>,
    runs: usize,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Figure {
    fn of(load: &Load, runs: &[Run]) -> Figure {
        let mut statuses = BTreeMap::new();
        for run in runs {
            for (status, count) in &run.statuses {
                *statuses.entry(*status).or_insert(0) += count;
            }
        }
        let unexpected_2xx = statuses
            .iter()
            .filter(|(status, _)| (200..300).contains(*status) && **status != load.expected)
            .map(|(_, count)| count)
            .sum();
        let per_run = |value: fn(&Run) -> f64| median(runs.iter().map(value).collect());
        let peaks: Vec<f64> = runs
            .iter()
            .filter_map(|run| run.peak_rss_kib)
            .map(|kib| kib as f64)
            .collect();
        Figure {
            label: load.label.clone(),
            ok_per_second: per_run(Run::ok_per_second),
            p50_ms: per_run(|run| run.p50_ms),
            p99_ms: per_run(|run| run.p99_ms),
            not_ok: per_run(|run| run.not_ok as f64) as u64,
            socket_errors: runs.iter().map(|run| run.socket_errors).sum(),
            statuses,
            unexpected_2xx,
            expected: load.expected,
            peak_rss_kib: (!peaks.is_empty()).then(|| median(peaks) as u64),
            runs: runs.len(),
        }
    }

    /// `8,593 req/s (p99 5.7 ms)`, and what else was answered.
    fn cell(&self) -> String {
        let mut cell = format!(
            "{} req/s (p99 {})",
            thousands(self.ok_per_second),
            millis(self.p99_ms)
        );
        cell.push_str(&self.trouble());
        cell
    }

    /// `, **11,060 answered 503**` and the like; empty when all went well.
    fn trouble(&self) -> String {
        let mut trouble = String::new();
        if self.not_ok > 0 {
            let others: Vec<String> = self
                .statuses
                .iter()
                .filter(|(status, _)| **status >= 400)
                .map(|(status, _)| status.to_string())
                .collect();
            let named = if others.is_empty() {
                "non-2xx".to_owned()
            } else {
                others.join("/")
            };
            trouble.push_str(&format!(
                ", **{} answered {named}** (median of {} runs)",
                thousands(self.not_ok as f64),
                self.runs
            ));
        }
        if self.unexpected_2xx > 0 {
            trouble.push_str(&format!(
                ", **{} answered another 2xx than {}**",
                thousands(self.unexpected_2xx as f64),
                self.expected
            ));
        }
        if self.socket_errors > 0 {
            trouble.push_str(&format!(
                ", {} socket errors over {} runs",
                self.socket_errors, self.runs
            ));
        }
        trouble
    }
}

fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn millis(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

fn ratio(top: f64, bottom: f64) -> String {
    if top.is_finite() && bottom.is_finite() && bottom > 0.0 {
        format!("{:.2}×", top / bottom)
    } else {
        "—".to_owned()
    }
}

impl Bench {
    fn spawn_native(&self) -> anyhow::Result<Target> {
        let port = free_port()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_bench-native"));
        command.args([format!("127.0.0.1:{port}"), FAKE.to_owned(), password(FAKE)]);
        let mut process = Process::spawn(
            "bench-native",
            command,
            format!("http://127.0.0.1:{port}"),
            self.scratch.join("native.log"),
        )?;
        process.wait_ready(&self.client, "/", None, Instant::now())?;
        let (status, body) = self.client.post_form(
            &format!("{}/resources", process.base),
            &Auth::of(FAKE),
            &[("name", INSTANCE)],
        )?;
        if status != 201 {
            bail!("bench-native answered {status} to creating {INSTANCE}: {body}");
        }
        Ok(Target {
            process,
            kind: Kind::Native,
        })
    }

    /// `orizuru serve` on this config (top-level keys, then services); how
    /// long it took to be ready.
    fn spawn_orizuru(
        &self,
        name: &str,
        data_dir: &Path,
        top: &str,
        services: &[String],
    ) -> anyhow::Result<(Target, Duration)> {
        std::fs::create_dir_all(data_dir)?;
        let port = free_port()?;
        let config = self.scratch.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{top}\n{}",
                data_dir.display(),
                services.concat()
            ),
        )?;
        let mut command = Command::new(&self.orizuru);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG");
        let started = Instant::now();
        let mut process = Process::spawn(
            "orizuru",
            command,
            format!("http://127.0.0.1:{port}"),
            self.scratch.join(format!("{name}.log")),
        )?;
        let ready = process.wait_ready(&self.client, "/readyz", Some(200), started)?;
        Ok((
            Target {
                process,
                kind: Kind::Orizuru,
            },
            ready,
        ))
    }

    /// The host the comparison, languages and scaling load: the fake
    /// service and the queue example in each language that was built, with
    /// the instance `bench` created on fake.
    fn spawn_main_host(&self) -> anyhow::Result<Target> {
        let services: Vec<String> = std::iter::once((FAKE, FAKE, ""))
            .chain(
                LANGUAGES
                    .iter()
                    .map(|(_, id, name, extra)| (*id, *name, *extra)),
            )
            .filter(|(_, name, _)| plugin(name).exists())
            .map(|(id, name, extra)| service(id, name, extra))
            .collect();
        let (target, _) = self.spawn_orizuru(
            "main",
            &self.scratch.join("main-data"),
            &self.shared_cache(),
            &services,
        )?;
        let (status, body) = self.client.post_form(
            &format!("{}/resources", target.process.base),
            &Auth::of(FAKE),
            &[("name", INSTANCE)],
        )?;
        if status != 201 {
            bail!("Orizuru answered {status} to creating {INSTANCE}: {body}");
        }
        Ok(target)
    }

    /// The cache_dir line every host but start-up's shares.
    fn shared_cache(&self) -> String {
        format!(
            "cache_dir = \"{}\"",
            self.scratch.join("compiled").display()
        )
    }

    /// `wasmtime serve` on the bench-http component, or why not.
    fn spawn_wasmtime(&self) -> anyhow::Result<Result<Target, String>> {
        let Some(wasmtime) = wasmtime_48() else {
            return Ok(Err(
                "`wasmtime serve` skipped: no wasmtime 48.x on PATH or in ~/.cargo/bin; install it with `cargo install wasmtime-cli --version 48.0.8 --locked`".to_owned(),
            ));
        };
        let port = free_port()?;
        let mut command = Command::new(wasmtime);
        command
            .arg("serve")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-O",
                "pooling-allocator=y",
                "--max-instance-reuse-count",
                "1",
            ])
            .arg(plugin("bench-http"));
        let mut process = Process::spawn(
            "wasmtime serve",
            command,
            format!("http://127.0.0.1:{port}"),
            self.scratch.join("wasmtime.log"),
        )?;
        process.wait_ready(&self.client, "/", None, Instant::now())?;
        Ok(Ok(Target {
            process,
            kind: Kind::WasmtimeServe,
        }))
    }

    /// The median figure of `runs` wrk runs of `load` against `target`,
    /// after checking one call answers as expected.
    fn measure(&self, target: &Target, load: &Load) -> anyhow::Result<Figure> {
        self.check_one(target, load)?;
        let mut runs = Vec::new();
        for run in 0..self.settings.runs {
            runs.push(self.wrk(target, load, run)?);
        }
        let figure = Figure::of(load, &runs);
        eprintln!(
            "throughput:   {} {}: {}",
            kind_name(target.kind),
            load.label,
            figure.cell()
        );
        Ok(figure)
    }

    /// One call of `load`, which must answer its expected status.
    fn check_one(&self, target: &Target, load: &Load) -> anyhow::Result<()> {
        let url = format!("{}{}", target.process.base, load.path);
        let (status, body) = match load.method {
            "GET" => self.client.get(&url, Some(&load.auth))?,
            _ => self
                .client
                .post_form(&url, &load.auth, &[("app-name", &check_app_name())])?,
        };
        if status != load.expected {
            bail!(
                "{} answered {status} to {} {} (expected {}): {body}",
                kind_name(target.kind),
                load.method,
                load.path,
                load.expected
            );
        }
        Ok(())
    }

    fn wrk(&self, target: &Target, load: &Load, run: usize) -> anyhow::Result<Run> {
        let threads = load.connections.min(2);
        let mut command = Command::new("wrk");
        command
            .arg(format!("-t{threads}"))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{}s", self.settings.seconds))
            .arg("--latency")
            .arg("-H")
            .arg(format!("Authorization: {}", load.auth.header()));
        if load.method == "POST" {
            let script = self.scratch.join(format!("bind-{run}.lua"));
            std::fs::write(&script, bind_script(&load.auth, run))?;
            command.arg("-s").arg(&script);
        }
        command
            .arg(format!("{}{}", target.process.base, load.path))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let before = self.statuses(target, &load.auth.username)?;
        let mut child = command.spawn().context("cannot run wrk")?;
        let mut peak: Option<u64> = None;
        while child.try_wait()?.is_none() {
            if target.kind == Kind::Orizuru
                && let Some(rss) = target.process.rss_kib()
            {
                peak = Some(peak.map_or(rss, |peak| peak.max(rss)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed ({}): {text}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut run =
            parse_wrk(&text).with_context(|| format!("cannot read wrk's output:\n{text}"))?;
        run.peak_rss_kib = peak;
        if let (Some(before), Some(after)) = (before, self.statuses(target, &load.auth.username)?) {
            for (status, count) in after {
                let delta = count.saturating_sub(before.get(&status).copied().unwrap_or(0));
                if delta > 0 {
                    run.statuses.insert(status, delta);
                }
            }
        }
        Ok(run)
    }

    /// What Orizuru answered `service` so far, by status (None for the
    /// other servers).
    fn statuses(
        &self,
        target: &Target,
        service: &str,
    ) -> anyhow::Result<Option<BTreeMap<u16, u64>>> {
        if target.kind != Kind::Orizuru {
            return Ok(None);
        }
        let (status, page) = self
            .client
            .get(&format!("{}/metrics", target.process.base), None)?;
        if status != 200 {
            bail!("Orizuru answered {status} to /metrics: {page}");
        }
        let mut statuses = BTreeMap::new();
        for line in page.lines() {
            let Some(rest) = line.strip_prefix("orizuru_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            if !labels.contains(&format!("service=\"{service}\"")) {
                continue;
            }
            let status = labels
                .split(',')
                .find_map(|label| label.strip_prefix("status=\""))
                .and_then(|status| status.trim_end_matches('"').parse::<u16>().ok());
            if let (Some(status), Ok(value)) = (status, value.trim().parse::<f64>()) {
                *statuses.entry(status).or_insert(0) += value as u64;
            }
        }
        Ok(Some(statuses))
    }

    fn compare(&self, out: &mut Markdown) -> anyhow::Result<()> {
        let loads = [
            Load::plans(FAKE, 16),
            Load::status(16),
            Load::plans(FAKE, 64),
            Load::status(64),
            Load::bind_app(16),
        ];
        let mut columns: Vec<(Kind, Result<Vec<Figure>, String>)> = Vec::new();
        {
            let native = self.spawn_native()?;
            let figures = loads
                .iter()
                .map(|load| self.measure(&native, load))
                .collect::<anyhow::Result<Vec<_>>>()?;
            columns.push((Kind::Native, Ok(figures)));
        }
        {
            let host = self.spawn_main_host()?;
            let figures = loads
                .iter()
                .map(|load| self.measure(&host, load))
                .collect::<anyhow::Result<Vec<_>>>()?;
            columns.push((Kind::Orizuru, Ok(figures)));
        }
        match self.spawn_wasmtime()? {
            Ok(server) => {
                let figures = loads
                    .iter()
                    .map(|load| self.measure(&server, load))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                columns.push((Kind::WasmtimeServe, Ok(figures)));
            }
            Err(why) => columns.push((Kind::WasmtimeServe, Err(why))),
        }
        out.compare(&loads, &columns);
        Ok(())
    }

    fn languages(&self, out: &mut Markdown) -> anyhow::Result<()> {
        let host = self.spawn_main_host()?;
        let mut rows = Vec::new();
        for (language, id, name, _) in LANGUAGES {
            if !plugin(name).exists() {
                rows.push((language, id, None));
                continue;
            }
            let many = self.measure(&host, &Load::plans(id, 16))?;
            let alone = self.measure(&host, &Load::plans(id, 1))?;
            rows.push((language, id, Some((many, alone))));
        }
        out.languages(&rows);
        Ok(())
    }

    fn scaling(&self, out: &mut Markdown) -> anyhow::Result<()> {
        let host = self.spawn_main_host()?;
        let figures = [1, 16, 64, 256]
            .into_iter()
            .map(|connections| self.measure(&host, &Load::plans(FAKE, connections)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.scaling(&figures);
        Ok(())
    }

    fn memory(&self, out: &mut Markdown) -> anyhow::Result<()> {
        let mut rows = Vec::new();
        for count in [1, 10, 100] {
            let services: Vec<String> = (0..count)
                .map(|index| {
                    let id = if index == 0 {
                        FAKE.to_owned()
                    } else {
                        format!("{FAKE}-{index}")
                    };
                    service(&id, FAKE, "")
                })
                .collect();
            let name = format!("memory-{count}");
            let (host, _) = self.spawn_orizuru(
                &name,
                &self.scratch.join(format!("{name}-data")),
                &self.shared_cache(),
                &services,
            )?;
            std::thread::sleep(Duration::from_secs(1));
            let idle = host.process.rss_kib();
            let loaded = self.measure(&host, &Load::plans(FAKE, 16))?;
            rows.push((count, idle, loaded));
        }
        out.memory(&rows);
        Ok(())
    }

    fn startup(&self, out: &mut Markdown) -> anyhow::Result<()> {
        let plugins: Vec<(&str, &str)> = STARTUP_PLUGINS
            .iter()
            .copied()
            .filter(|(name, _)| plugin(name).exists())
            .collect();
        let services: Vec<String> = (0..20)
            .map(|index| {
                let (name, grants) = plugins[index % plugins.len()];
                service(&format!("start-{index}"), name, grants)
            })
            .collect();
        let plugins: Vec<&str> = plugins.iter().map(|(name, _)| *name).collect();
        let (mut cold, mut cached) = (Vec::new(), Vec::new());
        for run in 0..self.settings.runs {
            let data_dir = self.scratch.join(format!("startup-{run}"));
            for times in [&mut cold, &mut cached] {
                let (host, ready) = self.spawn_orizuru("startup", &data_dir, "", &services)?;
                drop(host);
                times.push(ready.as_secs_f64());
                eprintln!(
                    "throughput:   start-up with 20 services: {:.2} s",
                    ready.as_secs_f64()
                );
            }
        }
        out.startup(&plugins, median(cold), median(cached), self.settings.runs);
        Ok(())
    }
}

/// An app name no earlier check bound, so each check writes a new binding
/// as the load does (binding an app again overwrites its row).
fn check_app_name() -> String {
    static CHECKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let check = CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("check-{}-{check}", std::process::id())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Native => "native",
        Kind::Orizuru => "Orizuru",
        Kind::WasmtimeServe => "wasmtime serve",
    }
}

/// wasmtime from PATH or ~/.cargo/bin, if it is 48.x.
fn wasmtime_48() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("wasmtime")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/wasmtime"));
    }
    candidates.into_iter().find(|candidate| {
        Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).starts_with("wasmtime 48."))
    })
}

fn wasmtime_version() -> String {
    wasmtime_48()
        .and_then(|wasmtime| Command::new(wasmtime).arg("--version").output().ok())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "none (48.x not found)".to_owned())
}

/// A wrk script POSTing a bind of an app no other request of the run binds:
/// `b<run>-<thread>-<counter>`.
fn bind_script(auth: &Auth, run: usize) -> String {
    format!(
        r#"-- bind-app with a distinct app name per request
local next_thread = 0
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end
local counter = 0
local headers = {{
  ["Authorization"] = "{auth}",
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "application/json",
}}
function request()
  counter = counter + 1
  local body = "app-name=b{run}-" .. thread_id .. "-" .. counter
  return wrk.format("POST", nil, headers, body)
end
"#,
        auth = auth.header()
    )
}

/// Reads wrk's `--latency` report.
fn parse_wrk(text: &str) -> anyhow::Result<Run> {
    let mut run = Run::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("50%") {
            run.p50_ms = duration_ms(rest.trim())?;
        } else if let Some(rest) = line.strip_prefix("99%") {
            run.p99_ms = duration_ms(rest.trim())?;
        } else if line.contains(" requests in ") {
            let (requests, rest) = line
                .split_once(" requests in ")
                .context("a requests line")?;
            run.requests = requests.trim().parse()?;
            let seconds = rest.split(',').next().context("a duration")?;
            run.seconds = duration_ms(seconds.trim())? / 1000.0;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.not_ok = rest.trim().parse()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            run.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last())
                .filter_map(|count| count.parse::<u64>().ok())
                .sum();
        }
    }
    if run.seconds <= 0.0 {
        bail!("no \"requests in\" line");
    }
    Ok(run)
}

/// `5.70ms`, `812.00us`, `1.02s`, `2.00m` in milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .context("a unit")?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit.trim() {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        other => bail!("unknown unit {other:?}"),
    })
}

/// A language's row: its name, its service, and its figures at 16
/// connections and at one (None when its plugin was not built).
type LanguageRow<'a> = (&'a str, &'a str, Option<(Figure, Figure)>);

/// The report, built as markdown as the parts run.
#[derive(Default)]
struct Markdown {
    text: String,
    /// For the goals: what the parts found.
    goals: Goals,
}

#[derive(Default)]
struct Goals {
    /// (row, Orizuru / wasmtime serve, Orizuru / native) for plans and status.
    ratios: Vec<(String, Option<f64>, f64)>,
    /// 503s (all non-2xx) at 64 connections on plans, per run's median.
    not_ok_at_64: Option<u64>,
    bind_app: Option<f64>,
    /// (language, req/s at 16, one call alone in ms).
    interpreted: Vec<(String, f64, f64)>,
}

impl Markdown {
    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn header(&mut self, bench: &Bench, workspace: &Path) {
        let commit = Command::new("git")
            .current_dir(workspace)
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
        let set: Vec<String> = ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"]
            .iter()
            .filter_map(|name| {
                std::env::var(name)
                    .ok()
                    .map(|value| format!("{name}={value}"))
            })
            .collect();
        self.line("# Throughput (issue 18)");
        self.line("");
        self.line(&format!(
            "Commit {commit}, {cores} cores. Each figure is the median of {} run(s) of `wrk -t2 -cN -d{}s --latency` (keep-alive, tsuru's basic auth); req/s counts only the expected answer. Orizuru: `target/release/orizuru serve`, default limits, default log level, environment {}. wasmtime: {}.",
            bench.settings.runs,
            bench.settings.seconds,
            if set.is_empty() { "without RUST_BACKTRACE".to_owned() } else { set.join(" ") },
            wasmtime_version(),
        ));
        self.line("");
    }

    fn compare(&mut self, loads: &[Load], columns: &[(Kind, Result<Vec<Figure>, String>)]) {
        let column = |kind: Kind| {
            columns
                .iter()
                .find(|(each, _)| *each == kind)
                .map(|(_, figures)| figures)
        };
        let (native, orizuru, wasmtime) = (
            column(Kind::Native),
            column(Kind::Orizuru),
            column(Kind::WasmtimeServe),
        );
        self.line("## Orizuru, native and `wasmtime serve`");
        self.line("");
        self.line("| call | native axum handler doing the same work | Orizuru, Rust plugin (fake) | `wasmtime serve` 48, equivalent wasi:http component | Orizuru / `wasmtime serve` | Orizuru / native |");
        self.line("|---|---|---|---|---|---|");
        for (index, load) in loads.iter().enumerate() {
            let cell = |figures: Option<&Result<Vec<Figure>, String>>| match figures {
                Some(Ok(figures)) => Some(figures[index].clone()),
                _ => None,
            };
            let (n, o, w) = (cell(native), cell(orizuru), cell(wasmtime));
            let call = match load.label.as_str() {
                label if label.starts_with("plans") => {
                    format!("GET /resources/plans, {} connections", load.connections)
                }
                label if label.starts_with("status") => format!(
                    "GET /resources/NAME/status, {} connections",
                    load.connections
                ),
                _ => format!(
                    "bind-app, {} connections (durable ledger write)",
                    load.connections
                ),
            };
            let text =
                |figure: &Option<Figure>| figure.as_ref().map_or("—".to_owned(), Figure::cell);
            let native_text = match (&n, load.method) {
                (Some(figure), "POST") => format!("{} (in memory)", figure.cell()),
                _ => text(&n),
            };
            let wasmtime_text = match (&w, load.method) {
                (Some(figure), "POST") => format!("{} (nothing kept)", figure.cell()),
                _ => text(&w),
            };
            let rate = |figure: &Option<Figure>| {
                figure
                    .as_ref()
                    .map_or(f64::NAN, |figure| figure.ok_per_second)
            };
            self.line(&format!(
                "| {call} | {native_text} | {} | {wasmtime_text} | {} | {} |",
                text(&o),
                ratio(rate(&o), rate(&w)),
                ratio(rate(&o), rate(&n)),
            ));
            if let Some(o) = &o {
                if load.method == "GET" {
                    self.goals.ratios.push((
                        call.clone(),
                        w.as_ref().map(|w| o.ok_per_second / w.ok_per_second),
                        o.ok_per_second / rate(&n),
                    ));
                    if load.connections == 64 && load.path.ends_with("plans") {
                        self.goals.not_ok_at_64 = Some(o.not_ok);
                    }
                } else {
                    self.goals.bind_app = Some(o.ok_per_second);
                }
            }
        }
        self.line("");
        if let Some(Err(why)) = wasmtime {
            self.line(why);
            self.line("");
        }
        self.line("bind-app: Orizuru syncs each binding to its ledger before its 201; native keeps it in a map; the wasi:http component, a fresh instance per request, keeps nothing.");
        self.line("");
    }

    fn languages(&mut self, rows: &[LanguageRow]) {
        self.line("## Plugin languages");
        self.line("");
        self.line("| plugin language, plans, 16 connections | req/s | one call alone (median, 1 connection) | req/s / Rust | one call / Rust |");
        self.line("|---|---|---|---|---|");
        let rust = rows
            .iter()
            .find(|(language, _, _)| *language == "Rust")
            .and_then(|(_, _, figures)| figures.clone());
        for (language, id, figures) in rows {
            let Some((many, alone)) = figures else {
                self.line(&format!(
                    "| {language} ({id}) | not built (see tests/setup) | — | — | — |"
                ));
                continue;
            };
            let (rust_rate, rust_alone) =
                rust.as_ref().map_or((f64::NAN, f64::NAN), |(many, alone)| {
                    (many.ok_per_second, alone.p50_ms)
                });
            self.line(&format!(
                "| {language} ({id}) | {}{} | {}{} | {} | {} |",
                thousands(many.ok_per_second),
                many.trouble(),
                millis(alone.p50_ms),
                alone.trouble(),
                ratio(many.ok_per_second, rust_rate),
                ratio(alone.p50_ms, rust_alone),
            ));
            if *language == "Python" || *language == "JavaScript" {
                self.goals.interpreted.push((
                    format!("{language} ({id})"),
                    many.ok_per_second,
                    alone.p50_ms,
                ));
            }
        }
        self.line("");
    }

    fn scaling(&mut self, figures: &[Figure]) {
        self.line("## Scaling with connections (plans, fake plugin)");
        self.line("");
        self.line("| connections | req/s | p50 | p99 | answered other than 200 (median of runs) |");
        self.line("|---|---|---|---|---|");
        for figure in figures {
            let connections = figure.label.trim_start_matches("plans @");
            let others: Vec<String> = figure
                .statuses
                .iter()
                .filter(|(status, _)| **status != 200)
                .map(|(status, count)| {
                    format!(
                        "{status}: {} over {} runs",
                        thousands(*count as f64),
                        figure.runs
                    )
                })
                .collect();
            self.line(&format!(
                "| {connections} | {} | {} | {} | {}{} |",
                thousands(figure.ok_per_second),
                millis(figure.p50_ms),
                millis(figure.p99_ms),
                thousands(figure.not_ok as f64),
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", others.join(", "))
                },
            ));
        }
        self.line("");
    }

    fn memory(&mut self, rows: &[(usize, Option<u64>, Figure)]) {
        self.line("## Memory (the host's VmRSS)");
        self.line("");
        self.line("| configured services (copies of fake) | RSS idle | RSS under load (plans, 16 connections, largest seen) | req/s meanwhile |");
        self.line("|---|---|---|---|");
        let mib = |kib: Option<u64>| {
            kib.map_or("—".to_owned(), |kib| {
                format!("{:.0} MiB", kib as f64 / 1024.0)
            })
        };
        for (count, idle, loaded) in rows {
            self.line(&format!(
                "| {count} | {} | {} | {}{} |",
                mib(*idle),
                mib(loaded.peak_rss_kib),
                thousands(loaded.ok_per_second),
                loaded.trouble(),
            ));
        }
        self.line("");
    }

    fn startup(&mut self, plugins: &[&str], cold: f64, cached: f64, runs: usize) {
        self.line("## Start-up, 20 configured services");
        self.line("");
        self.line(&format!(
            "From spawning `orizuru serve` to `/readyz` 200, median of {runs} run(s); the services take the plugins {} in turn.",
            plugins.join(", ")
        ));
        self.line("");
        self.line("| cold (empty compiled cache) | again, from the compiled cache |");
        self.line("|---|---|");
        self.line(&format!("| {cold:.2} s | {cached:.2} s |"));
        self.line("");
    }

    fn goals(&mut self) {
        let goals = std::mem::take(&mut self.goals);
        self.line("## Issue 18's goals, as measured");
        self.line("");
        if !goals.ratios.is_empty() {
            let versus_wasmtime: Vec<String> = goals
                .ratios
                .iter()
                .map(|(call, wasmtime, _)| {
                    format!(
                        "{call}: {}",
                        wasmtime.map_or("—".to_owned(), |ratio| format!("{ratio:.2}×"))
                    )
                })
                .collect();
            let versus_native: Vec<String> = goals
                .ratios
                .iter()
                .map(|(call, _, native)| format!("{call}: {native:.2}×"))
                .collect();
            self.line(&format!(
                "1. Orizuru / `wasmtime serve` (goal at least 1.5×): {}.",
                versus_wasmtime.join("; ")
            ));
            self.line(&format!(
                "   Orizuru / native (goal at least 0.2×): {}.",
                versus_native.join("; ")
            ));
        }
        if !goals.interpreted.is_empty() {
            let text: Vec<String> = goals
                .interpreted
                .iter()
                .map(|(language, rate, alone)| {
                    format!(
                        "{language} {} req/s, one call {}",
                        thousands(*rate),
                        millis(*alone)
                    )
                })
                .collect();
            self.line(&format!(
                "2. Python and JavaScript (goal at least 5,000 req/s at 16 connections, one call under 200 µs of host time; the one call here is wrk's whole round trip): {}.",
                text.join("; ")
            ));
        }
        if let Some(count) = goals.not_ok_at_64 {
            self.line(&format!(
                "3. Plans at 64 connections, default limits (goal: no 503): {} answered other than 200 (median of runs).",
                thousands(count as f64)
            ));
        }
        if let Some(rate) = goals.bind_app {
            self.line(&format!(
                "4. bind-app at 16 connections (goal at least 3× the issue's {} req/s): {} req/s, {}.",
                thousands(ISSUE_BIND_APP_RATE),
                thousands(rate),
                ratio(rate, ISSUE_BIND_APP_RATE)
            ));
        }
        self.line("5. Scaling, memory and start-up: the tables above.");
    }
}

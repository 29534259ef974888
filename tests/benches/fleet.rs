//! What one shared store costs and what several hosts on it give:
//!
//! - bind-app throughput and latency, 8 clients at once (each binding to an
//!   instance of its own, so that no two wait on one instance's lock), on
//!   one host with the embedded SQLite store, one host on PostgreSQL, and
//!   three hosts on PostgreSQL with each client spreading its calls over
//!   them as a load balancer would;
//! - how long a swap takes to reach another host: from the end of an
//!   upload to host A to the first answer of the new version from host C,
//!   over 20 swaps.
//!
//! Run with `cargo bench -p orizuru-tests --bench fleet`, or name the parts
//! to run: `-- sqlite postgres three propagation` (the PostgreSQL parts need
//! PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`, or
//! `ORIZURU_TEST_POSTGRES_URL`).

use std::time::{Duration, Instant};

use orizuru::store::postgres::testing::TestDatabase;
use orizuru_tests::fleet::{Fleet, Spread};
use orizuru_tests::{Server, Tsuru, plugin_bytes, report, service};
use reqwest::Method;

/// Clients calling at once.
const CLIENTS: usize = 8;
/// Binds each client times, after its warm-up.
const CALLS_EACH: usize = 250;
const WARM_UP_EACH: usize = 25;
const SWAPS: usize = 20;
/// How long a swap may take to reach host C before the bench gives up.
const REACH: Duration = Duration::from_secs(30);

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let chosen = |part: &str| parts.is_empty() || parts.iter().any(|named| named == part);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let fake = [service("fake", "fake", "")];
        if chosen("sqlite") {
            let server = Server::start(&fake).await;
            let spread = Spread::new(vec![server.url.clone()], "fake");
            binds("one host, SQLite", &spread).await;
        }
        if chosen("postgres") {
            let database = TestDatabase::create().await;
            let fleet = Fleet::start(&database.url, 1, &fake).await;
            binds("one host, PostgreSQL", &fleet.spread("fake")).await;
        }
        if chosen("three") {
            let database = TestDatabase::create().await;
            let fleet = Fleet::start(&database.url, 3, &fake).await;
            binds("three hosts, PostgreSQL", &fleet.spread("fake")).await;
        }
        if chosen("propagation") {
            propagation().await;
        }
    });
}

/// Creates an instance per client, then times [`CALLS_EACH`] binds per
/// client, all clients at once; prints requests/s and the latencies.
async fn binds(label: &str, spread: &Spread) {
    for client in 0..CLIENTS {
        let name = format!("bench-{client}");
        let created = spread
            .next()
            .form(Method::POST, "/resources", &[("name", name.as_str())])
            .await;
        assert_eq!(created.status, 201, "{name}: {}", created.body);
    }
    let run = |calls: usize| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let spread = spread.clone();
                tokio::spawn(async move {
                    let name = format!("bench-{client}");
                    let mut samples = Vec::with_capacity(calls);
                    for _ in 0..calls {
                        let api: Tsuru = spread.next().clone();
                        let started = Instant::now();
                        let answer = api.bind_app(&name, "web").await;
                        samples.push(started.elapsed());
                        assert_eq!(answer.status, 201, "{name}: {}", answer.body);
                    }
                    samples
                })
            })
            .collect();
        async move {
            let mut samples = Vec::new();
            for client in clients {
                samples.extend(client.await.expect("a client ran to the end"));
            }
            samples
        }
    };
    run(WARM_UP_EACH).await;
    let started = Instant::now();
    let samples = run(CALLS_EACH).await;
    let took = started.elapsed();
    println!(
        "{label:<40} {:>8.0} bind-app/s ({} calls, {CLIENTS} clients, {:.2}s)",
        samples.len() as f64 / took.as_secs_f64(),
        samples.len(),
        took.as_secs_f64()
    );
    report(&format!("{label}: bind-app"), samples);
}

/// Which generation serves `shared` on this host.
async fn generation(api: &Tsuru) -> Option<String> {
    let answer = api.get("/resources/shared/status").await;
    (answer.status == 200)
        .then(|| {
            answer
                .body
                .strip_prefix("served by generation ")
                .map(str::to_owned)
        })
        .flatten()
}

/// [`SWAPS`] uploads to host A, each timed from the end of the upload to
/// the first answer of the new version from host C.
async fn propagation() {
    let database = TestDatabase::create().await;
    let fleet = Fleet::start(&database.url, 3, &[service("gen", "generation-one", "")]).await;
    let (a, c) = (fleet.hosts[0].admin(), fleet.tsuru(2, "gen"));
    let created = fleet
        .tsuru(0, "gen")
        .form(Method::POST, "/resources", &[("name", "shared")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let versions = [
        ("two", plugin_bytes("generation-two")),
        ("one", plugin_bytes("generation-one")),
    ];
    let mut samples = Vec::with_capacity(SWAPS);
    for swap in 0..SWAPS {
        let (expected, bytes) = &versions[swap % 2];
        let uploaded = a.upload("gen", bytes.clone()).await;
        assert_eq!(uploaded.status, 200, "{}", uploaded.body);
        let started = Instant::now();
        loop {
            if generation(&c).await.as_deref() == Some(*expected) {
                break;
            }
            assert!(
                started.elapsed() < REACH,
                "swap {swap}: host C did not serve generation {expected} within {REACH:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(started.elapsed());
    }
    report("a swap on A reaching C", samples);
}

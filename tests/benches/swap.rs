//! What a hot swap costs the operator and tsuru, and what a restart costs:
//!
//! - upload → first request served by the new version, for a small plugin
//!   and a large one, with a cold compiled cache (the version was never
//!   compiled here) and a warm one (it was, earlier);
//! - a host's start with every example plugin compiled, and with every one
//!   in the compiled cache.
//!
//! Run with `cargo bench -p orizuru-tests --bench swap`. The large plugin
//! is the file named by `ORIZURU_BENCH_LARGE_PLUGIN` (a Python or
//! JavaScript component), else the largest example plugin.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orizuru::Host;
use orizuru::config::{Config, Overrides};
use orizuru_tests::{ADMIN_TOKEN, Server, plugin, plugin_bytes, service};

const WARM_ROUNDS: usize = 5;

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Uploads `bytes` and calls the service until the answer is the new
/// version's; the time to the upload's answer and to that first answer.
async fn swap_to(server: &Server, bytes: Vec<u8>) -> (Duration, Duration, String) {
    let started = Instant::now();
    let answer = server.admin().upload("svc", bytes).await;
    let uploaded = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let from = answer.json()["from"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Every request after the upload's answer runs the new version; the
    // first one is what tsuru would see.
    let first = server.tsuru("svc").get("/resources/plans").await;
    assert_eq!(first.status, 200, "{}", first.body);
    (uploaded, started.elapsed(), from)
}

async fn upload_to_first_request(label: &str, bytes: Vec<u8>) {
    let size = bytes.len();
    let other = plugin_bytes("generation-one");
    let other = if other == bytes {
        plugin_bytes("generation-two")
    } else {
        other
    };
    // Cold: a fresh data dir, so the version was never compiled here.
    let server = Server::start(&[service("svc", "generation-two", "")]).await;
    let (uploaded, served, from) = swap_to(&server, bytes.clone()).await;
    assert_eq!(from, "compiled");
    println!(
        "{label:<34} {size:>10} B  cold cache: upload answered {:>8.1} ms, first request served {:>8.1} ms",
        ms(uploaded),
        ms(served)
    );
    // Warm: swapped away and back; the version is in the compiled cache.
    let mut uploads = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..WARM_ROUNDS {
        swap_to(&server, other.clone()).await;
        let (uploaded, served, from) = swap_to(&server, bytes.clone()).await;
        assert_eq!(from, "cache");
        uploads.push(uploaded);
        firsts.push(served);
    }
    println!(
        "{label:<34} {size:>10} B  warm cache: upload answered {:>8.1} ms, first request served {:>8.1} ms (median of {WARM_ROUNDS})",
        ms(median(uploads)),
        ms(median(firsts))
    );
}

/// A host's start on a config serving every example plugin.
async fn restart_times() {
    let data_dir = tempfile::tempdir().expect("a data dir");
    let services: String = ["fake", "queue", "misbehave"]
        .iter()
        .map(|id| service(id, id, ""))
        .collect();
    let text = format!("admin_token = \"{ADMIN_TOKEN}\"\nwatch = false\n{services}");
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().expect("an address")),
        data_dir: Some(data_dir.path().to_owned()),
    };
    let config = Config::parse(&text, data_dir.path(), &overrides, |_| None).expect("a config");
    let mut cached = Vec::new();
    for round in 0..=WARM_ROUNDS {
        let started = Instant::now();
        let host = Host::start(&config).await.expect("the host starts");
        let took = started.elapsed();
        drop(host);
        if round == 0 {
            println!(
                "{:<34} start with fake, queue, misbehave compiled: {:>8.1} ms",
                "restart",
                ms(took)
            );
        } else {
            cached.push(took);
        }
    }
    println!(
        "{:<34} start with fake, queue, misbehave cached:   {:>8.1} ms (median of {WARM_ROUNDS})",
        "restart",
        ms(median(cached))
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        upload_to_first_request("small (generation-one)", plugin_bytes("generation-one")).await;
        let large = std::env::var_os("ORIZURU_BENCH_LARGE_PLUGIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                ["fake", "queue", "misbehave"]
                    .into_iter()
                    .map(plugin)
                    .max_by_key(|path| std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0))
                    .expect("an example plugin")
            });
        let label = format!(
            "large ({})",
            large.file_name().unwrap_or_default().to_string_lossy()
        );
        let bytes = std::fs::read(&large).expect("the large plugin is readable");
        upload_to_first_request(&label, bytes).await;
        restart_times().await;
    });
}

//! Per-call latency through real HTTP on loopback: 1,000 sequential calls
//! each of bind-app and status, for the fake API and the stateful example.
//! Each call is a fresh sandbox, a ledger read, and for binds a ledger write.
//!
//! Run with `cargo bench -p orizuru-tests --bench latency`.

use std::time::{Duration, Instant};

use orizuru_tests::{Server, Tsuru, service};
use reqwest::Method;

const CALLS: usize = 1_000;

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |quantile: f64| {
        samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)]
    };
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{label:<28} n={:<5} median={:>8.3}ms  p99={:>8.3}ms  mean={:>8.3}ms  max={:>8.3}ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
    );
}

async fn measure(
    api: &Tsuru,
    method: Method,
    path: &str,
    fields: &[(&str, &str)],
    expected: u16,
) -> Vec<Duration> {
    // Warm the connection pool and the code paths first.
    for _ in 0..50 {
        api.form(method.clone(), path, fields).await;
    }
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        let answer = api.form(method.clone(), path, fields).await;
        samples.push(started.elapsed());
        assert_eq!(answer.status, expected, "{path}: {}", answer.body);
    }
    samples
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let server =
            Server::start(&[service("fake", "fake", ""), service("queue", "queue", "")]).await;
        for id in ["fake", "queue"] {
            let api = server.tsuru(id);
            assert_eq!(
                api.form(Method::POST, "/resources", &[("name", "bench")])
                    .await
                    .status,
                201
            );
            let bind = measure(
                &api,
                Method::POST,
                "/resources/bench/bind-app",
                &[("app-name", "web")],
                201,
            )
            .await;
            report(&format!("{id}: bind-app"), bind);
            let status = measure(&api, Method::GET, "/resources/bench/status", &[], 204).await;
            report(&format!("{id}: status"), status);
        }
    });
}

//! Per-call latency through real HTTP on loopback: 1,000 sequential calls
//! each of bind-app and status, for the fake API and the stateful example.
//! Each call is a fresh sandbox, a ledger read, and for binds a ledger write.
//!
//! Run with `cargo bench -p orizuru-tests --bench latency`.

use std::time::{Duration, Instant};

use orizuru_tests::{Server, Tsuru, report, service};
use reqwest::Method;

const CALLS: usize = 1_000;

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

//! Per-call latency through real HTTP on loopback: 1,000 sequential calls
//! each of bind-app and status, for the fake API and the stateful example.
//! Each call is a fresh sandbox, a ledger read, and for binds a ledger write.
//!
//! Run with `cargo bench -p orizuru-tests --bench latency`.

use orizuru_tests::{Server, report, service, timed_calls};
use reqwest::Method;

const CALLS: usize = 1_000;

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
            let bind = timed_calls(
                &api,
                CALLS,
                Method::POST,
                "/resources/bench/bind-app",
                &[("app-name", "web")],
                201,
            )
            .await;
            report(&format!("{id}: bind-app"), bind);
            let status = timed_calls(
                &api,
                CALLS,
                Method::GET,
                "/resources/bench/status",
                &[],
                204,
            )
            .await;
            report(&format!("{id}: status"), status);
        }
    });
}

//! Per-call latency through real HTTP on loopback: 1,000 sequential calls
//! each of bind-app and status, for the fake API and the stateful example
//! in every SDK language, and of plans (no instance to read, the least a
//! plugin can do) for the examples, which shows what a fresh instance of
//! each language's runtime costs. Each call is a fresh sandbox, a ledger
//! read, and for binds a ledger write.
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
        let ids = ["fake", "queue", "queue-python", "queue-js", "queue-c"];
        let services: Vec<String> = ids.iter().map(|id| service(id, id, "")).collect();
        let server = Server::start(&services).await;
        for id in ids {
            let api = server.tsuru(id);
            if id != "fake" {
                let plans =
                    timed_calls(&api, CALLS, Method::GET, "/resources/plans", &[], 200).await;
                report(&format!("{id}: plans"), plans);
            }
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

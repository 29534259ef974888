//! What a hostile plugin costs the other services: the latency of a
//! well-behaved service's status calls, alone and while another service's
//! plugin is attacked with endless loops, memory bombs, stack overflows and
//! floods of output, each cut at its deadline or limit.
//!
//! Run with `cargo bench -p orizuru-tests --bench neighbour`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orizuru_tests::{Server, Tsuru, report, service, timed_calls};
use reqwest::Method;

const CALLS: usize = 1_000;
/// Attacking clients, each sending one hostile request after another.
const ATTACKERS: usize = 4;

async fn statuses(api: &Tsuru) -> Vec<Duration> {
    timed_calls(api, CALLS, Method::GET, "/resources/bench/status", &[], 204).await
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let server = Server::start(&[
            service("fake", "fake", ""),
            service("misbehave", "misbehave", "timeout_ms = 500\nmemory_mb = 32"),
        ])
        .await;
        let neighbour = server.tsuru("fake");
        let created = neighbour
            .form(Method::POST, "/resources", &[("name", "bench")])
            .await;
        assert_eq!(created.status, 201);

        report("fake: status, alone", statuses(&neighbour).await);

        let stop = Arc::new(AtomicBool::new(false));
        let attacks = Arc::new(AtomicUsize::new(0));
        let attackers: Vec<_> = (0..ATTACKERS)
            .map(|n| {
                let (api, stop, attacks) =
                    (server.tsuru("misbehave"), stop.clone(), attacks.clone());
                tokio::spawn(async move {
                    let kinds = ["loop", "hog", "deep", "chatty", "panic"];
                    let mut round = n;
                    while !stop.load(Ordering::SeqCst) {
                        let kind = kinds[round % kinds.len()];
                        let answer = api
                            .form(Method::POST, "/resources", &[("name", kind)])
                            .await;
                        assert!(
                            answer.status >= 400 || kind == "chatty",
                            "{kind}: {}",
                            answer.status
                        );
                        if kind == "chatty" {
                            // Free the name for the next flood.
                            api.send(api.request(Method::DELETE, "/resources/chatty"))
                                .await;
                        }
                        attacks.fetch_add(1, Ordering::SeqCst);
                        round += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let attacked = statuses(&neighbour).await;
        stop.store(true, Ordering::SeqCst);
        for attacker in attackers {
            attacker.await.expect("the attacker ran to the end");
        }
        report(
            &format!(
                "fake: status, {ATTACKERS} attackers ({} attacks)",
                attacks.load(Ordering::SeqCst)
            ),
            attacked,
        );
    });
}

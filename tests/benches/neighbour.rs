//! What a hostile plugin costs the other services: the latency of a
//! well-behaved service's status calls, alone and while another service's
//! plugin is attacked with endless loops, memory bombs, stack overflows and
//! floods of output, each cut at its deadline or limit.
//!
//! First it prints what each misdeed is answered, and how long the answer
//! takes (the median of five), with a deadline of 500 ms and 32 MiB.
//!
//! Run with `cargo bench -p orizuru-tests --bench neighbour`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orizuru_tests::{Server, Tsuru, report, service, timed_calls};
use reqwest::Method;

const CALLS: usize = 1_000;
/// Attacking clients, each sending one hostile request after another.
const ATTACKERS: usize = 4;

/// The form fields of a request.
type Fields = &'static [(&'static str, &'static str)];

/// Each misdeed: its label, and the request that sets it off.
const MISDEEDS: [(&str, Method, &str, Fields); 11] = [
    ("panic", Method::POST, "/resources", &[("name", "panic")]),
    (
        "endless loop",
        Method::POST,
        "/resources",
        &[("name", "loop")],
    ),
    (
        "sleep in a host call",
        Method::POST,
        "/resources",
        &[("name", "sleep")],
    ),
    (
        "memory bomb",
        Method::POST,
        "/resources",
        &[("name", "hog")],
    ),
    (
        "deep recursion",
        Method::POST,
        "/resources",
        &[("name", "deep")],
    ),
    (
        "20,000 log lines",
        Method::POST,
        "/resources",
        &[("name", "chatty")],
    ),
    (
        "slow (300 ms) within the deadline",
        Method::POST,
        "/resources",
        &[("name", "slow")],
    ),
    (
        "500 env vars",
        Method::POST,
        "/resources/plain/bind-app",
        &[("app-name", "many-env")],
    ),
    (
        "100 KiB of env",
        Method::POST,
        "/resources/plain/bind-app",
        &[("app-name", "fat-env")],
    ),
    ("1,000 info items", Method::GET, "/resources/big-info", &[]),
    (
        "2 MiB proxied body",
        Method::GET,
        "/resources/big-body/export",
        &[],
    ),
];

/// Prints each misdeed's status, median time and answer.
async fn misdeeds(api: &Tsuru) {
    for name in ["plain", "big-info", "big-body"] {
        assert_eq!(
            api.form(Method::POST, "/resources", &[("name", name)])
                .await
                .status,
            201
        );
    }
    println!("| misdeed | status | median time | answer |");
    println!("|---|---|---|---|");
    for (label, method, path, fields) in MISDEEDS {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let started = Instant::now();
            let answer = api.form(method.clone(), path, fields).await;
            times.push(started.elapsed());
            if answer.status < 300 && method == Method::POST && path == "/resources" {
                // Free the name for the next round.
                api.send(api.request(Method::DELETE, &format!("/resources/{}", fields[0].1)))
                    .await;
            }
            last = Some(answer);
        }
        times.sort();
        let answer = last.expect("five answers");
        let shown = if answer.body.len() > 160 {
            format!("{} bytes", answer.body.len())
        } else {
            answer.body.clone()
        };
        println!(
            "| {label} | {} | {:.1} ms | {shown} |",
            answer.status,
            times[2].as_secs_f64() * 1e3
        );
    }
}

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

        misdeeds(&server.tsuru("misbehave")).await;
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

//! What each provisioner costs against the real server on this machine:
//! `ROUNDS` rounds of create, bind-app, unbind-app and remove over HTTP,
//! each provisioner run as the least-privileged admin its README section
//! documents, exactly as the end-to-end tests run it.
//!
//! Run with `cargo bench -p orizuru-tests --bench provisioners`, or name
//! some of them: `cargo bench -p orizuru-tests --bench provisioners --
//! postgres redis` (needs the servers `.ci/servers` starts: PostgreSQL,
//! MariaDB, Redis and RabbitMQ with its management API, on 127.0.0.1).

use std::time::{Duration, Instant};

use orizuru_tests::{Tsuru, report};
use reqwest::Method;

const ROUNDS: usize = 100;
const PROVISIONERS: &[&str] = &["postgres", "mysql", "redis", "rabbitmq"];

fn main() {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    for name in &named {
        assert!(
            PROVISIONERS.contains(&name.as_str()),
            "no provisioner is called {name}; name some of {}",
            PROVISIONERS.join(", ")
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for provisioner in PROVISIONERS {
        if !named.is_empty() && !named.iter().any(|name| name == provisioner) {
            continue;
        }
        runtime.block_on(bench(provisioner));
    }
}

async fn bench(provisioner: &str) {
    match provisioner {
        "postgres" => {
            let run = orizuru_tests::postgres::Provisioner::start("postgres", "").await;
            rounds("postgres", &run.server.tsuru("postgres"), "small").await;
        }
        "mysql" => {
            let (server, _cleanup, _admin, _dir) = orizuru_tests::mysql::start("mysql").await;
            rounds("mysql", &server.tsuru("mysql"), "small").await;
        }
        "redis" => {
            let prefix = orizuru_tests::redis::unique_prefix();
            let _cleanup = orizuru_tests::redis::Cleanup(prefix.clone());
            let (server, _dir) = orizuru_tests::redis::provisioner("redis", &prefix, "").await;
            rounds("redis", &server.tsuru("redis"), "shared").await;
        }
        "rabbitmq" => {
            let run = orizuru_tests::rabbitmq::Run::start().await;
            let server = run.server().await;
            rounds("rabbitmq", &server.tsuru("rabbitmq"), "small").await;
        }
        _ => unreachable!("main checks the names"),
    }
}

/// One call of a round: its method, path, form fields and expected status.
type Step<'a> = (Method, String, Vec<(&'a str, &'a str)>, u16);

/// `ROUNDS` rounds of create, bind-app, unbind-app and remove of one
/// instance each, every answer checked; prints each action's latencies.
async fn rounds(label: &str, api: &Tsuru, plan: &str) {
    let mut timings: [Vec<Duration>; 4] = Default::default();
    for round in 0..ROUNDS {
        let name = format!("bench-{round}");
        let bind = format!("/resources/{name}/bind-app");
        let steps: [Step; 4] = [
            (
                Method::POST,
                "/resources".to_owned(),
                vec![("name", &name), ("plan", plan)],
                201,
            ),
            (Method::POST, bind.clone(), vec![("app-name", "web")], 201),
            (Method::DELETE, bind.clone(), vec![("app-name", "web")], 200),
            (
                Method::DELETE,
                format!("/resources/{name}"),
                Vec::new(),
                200,
            ),
        ];
        for ((method, path, fields, expected), samples) in steps.into_iter().zip(&mut timings) {
            let started = Instant::now();
            let answer = api.form(method, &path, &fields).await;
            samples.push(started.elapsed());
            assert_eq!(answer.status, expected, "{label} {path}: {}", answer.body);
        }
    }
    for (action, samples) in ["create", "bind-app", "unbind-app", "remove"]
        .into_iter()
        .zip(timings)
    {
        report(&format!("{label}: {action}"), samples);
    }
}
